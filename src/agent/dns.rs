//! The cluster DNS server the node agent runs for its pods (the role of CoreDNS's kubernetes
//! plugin): it owns the DNS protocol side only — UDP and TCP listeners, decoding queries and
//! encoding answers with `hickory-proto`, authoritative answers for cluster names, forwarding
//! everything else to the node's upstream resolver, and reading that upstream from a
//! `resolv.conf`. What a cluster name resolves to is decided by the caller's [`Resolver`].
//!
//! Answers for cluster names are authoritative with a TTL of [`TTL`] seconds. Any query type for
//! a name that exists gets NOERROR (with A records only for A and ANY queries), a missing name
//! gets NXDOMAIN, so resolvers that ask A and AAAA in parallel (musl, busybox) are satisfied.
//! Other names are relayed to the upstream over UDP (and again over TCP when a TCP client's
//! answer came back truncated); no upstream, a timeout or an error is SERVFAIL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// What the cluster knows about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A cluster name with these IPv4 addresses (may be empty: the name exists, no A record).
    Found(Vec<Ipv4Addr>),
    /// A name inside the cluster domain that does not exist: NXDOMAIN.
    NoSuchName,
    /// Not a cluster name: forward to the upstream resolver.
    NotOurs,
}

/// Looks up a fully-qualified name, lower-cased, without the trailing dot, e.g.
/// "web.default.svc.cluster.local".
pub type Resolver = Arc<dyn Fn(&str) -> Answer + Send + Sync>;

/// TTL of the records answered for cluster names, in seconds.
pub const TTL: u32 = 5;
/// How long a forwarded query waits for the upstream's reply.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// A TCP connection with no complete query for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP queries being answered at once; past that, datagrams are dropped (clients retry).
const MAX_UDP_IN_FLIGHT: usize = 1024;
/// Open TCP connections at once; past that, new connections are closed at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// The largest UDP answer we send to an EDNS(0) client, whatever larger size it offers
/// (the DNS flag day 2020 value); without EDNS(0) the limit is 512 bytes.
const MAX_UDP_PAYLOAD: u16 = 1232;
/// Without EDNS(0), a UDP message is at most this long (RFC 1035 §4.2.1).
const CLASSIC_UDP_PAYLOAD: usize = 512;
/// How many times `bind` with port 0 looks for a port free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 16;

/// The cluster DNS server: one UDP socket and one TCP listener on the same address.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
}

/// What every query handler needs.
struct Shared {
    resolver: Resolver,
    upstream: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 allowed: the bound address is `local_addr()`).
    pub async fn bind(
        addr: SocketAddr,
        resolver: Resolver,
        upstream: Option<SocketAddr>,
    ) -> std::io::Result<DnsServer> {
        let attempts = if addr.port() == 0 { BIND_ATTEMPTS } else { 1 };
        let mut last_err = None;
        for _ in 0..attempts {
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|e| with_context(e, format!("binding DNS on UDP {addr}")))?;
            let local = udp.local_addr()?;
            // With port 0 the UDP port is chosen first; TCP must then take the same port, which
            // another program may hold: try another UDP port.
            match TcpListener::bind(local).await {
                Ok(tcp) => {
                    let shared = Arc::new(Shared { resolver, upstream });
                    return Ok(DnsServer {
                        udp,
                        tcp,
                        local,
                        shared,
                    });
                }
                Err(e) => last_err = Some(with_context(e, format!("binding DNS on TCP {local}"))),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::Error::other("no bind attempt was made")))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `stop` turns true (or its sender is dropped). Queries and connections still
    /// being handled then are abandoned.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let DnsServer {
            udp,
            tcp,
            local,
            shared,
        } = self;
        let udp = Arc::new(udp);
        let udp_slots = Arc::new(Semaphore::new(MAX_UDP_IN_FLIGHT));
        let tcp_slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
        // Dropping the set when `serve` returns aborts every query and connection still running.
        let mut tasks = JoinSet::new();
        let mut buf = vec![0u8; usize::from(u16::MAX)];
        tracing::info!(%local, upstream = ?shared.upstream, "cluster DNS serving");
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                received = udp.recv_from(&mut buf) => match received {
                    Ok((n, peer)) => {
                        let Ok(slot) = udp_slots.clone().try_acquire_owned() else {
                            tracing::debug!(%peer, "too many DNS queries in flight; dropping one");
                            continue;
                        };
                        let query = buf[..n].to_vec();
                        let (udp, shared) = (udp.clone(), shared.clone());
                        tasks.spawn(async move {
                            if let Some(reply) = handle(&shared, &query, peer, Transport::Udp).await {
                                if let Err(e) = udp.send_to(&reply, peer).await {
                                    tracing::debug!(%peer, error = %e, "cannot send DNS answer");
                                }
                            }
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        // e.g. an ICMP error reported for an earlier answer; do not spin on it.
                        tracing::debug!(error = %e, "DNS UDP receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                accepted = tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = tcp_slots.clone().try_acquire_owned() else {
                            tracing::debug!(%peer, "too many DNS TCP connections; closing a new one");
                            continue;
                        };
                        let shared = shared.clone();
                        tasks.spawn(async move {
                            serve_tcp(&shared, stream, peer).await;
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        // e.g. out of file descriptors: wait a little rather than spin.
                        tracing::warn!(error = %e, "cannot accept a DNS TCP connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "a DNS query task failed");
                    }
                }
            }
        }
        tracing::info!(%local, "cluster DNS stopped");
    }
}

/// Returns when `stop` turns true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn with_context(e: std::io::Error, what: String) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// One TCP connection: length-prefixed messages (RFC 1035 §4.2.2) answered in turn, until the
/// client closes, an error, or [`TCP_IDLE`] without a complete query.
async fn serve_tcp(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    loop {
        let query = match tokio::time::timeout(TCP_IDLE, read_frame(&mut stream)).await {
            Err(_) => {
                tracing::debug!(%peer, "closing idle DNS TCP connection");
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = format!("{e:#}"), "closing DNS TCP connection");
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Ok(Some(query))) => query,
        };
        let Some(reply) = handle(shared, &query, peer, Transport::Tcp).await else {
            tracing::debug!(%peer, "closing DNS TCP connection after an unreadable message");
            return;
        };
        match tokio::time::timeout(TCP_IDLE, write_frame(&mut stream, &reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = format!("{e:#}"), "closing DNS TCP connection");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "closing DNS TCP connection: the client does not read");
                return;
            }
        }
    }
}

/// Reads one length-prefixed message; `None` when the peer closed between messages.
async fn read_frame(stream: &mut TcpStream) -> anyhow::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("reading a DNS message length"),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        bail!("empty DNS message");
    }
    let mut message = vec![0u8; len];
    stream
        .read_exact(&mut message)
        .await
        .with_context(|| format!("reading a DNS message of {len} bytes"))?;
    Ok(Some(message))
}

async fn write_frame(stream: &mut TcpStream, message: &[u8]) -> anyhow::Result<()> {
    let len = u16::try_from(message.len())
        .with_context(|| format!("a DNS message of {} bytes is too long", message.len()))?;
    let mut frame = Vec::with_capacity(message.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(message);
    stream
        .write_all(&frame)
        .await
        .context("writing a DNS message")
}

/// What to do with one received message.
enum Decision {
    /// Send this message back; over UDP, in at most this many bytes.
    Reply(Message, usize),
    /// Not a cluster name: relay the raw query to the upstream.
    Forward(Message),
    /// Not even a readable header, or not a query: say nothing.
    Drop,
}

/// Answers one raw message: the encoded reply, or `None` to stay silent.
async fn handle(
    shared: &Shared,
    raw: &[u8],
    peer: SocketAddr,
    transport: Transport,
) -> Option<Vec<u8>> {
    let query = match decide(&shared.resolver, raw) {
        Decision::Drop => {
            tracing::debug!(%peer, transport = transport.name(), "ignoring an unreadable DNS message");
            return None;
        }
        Decision::Reply(reply, udp_limit) => {
            log_query(peer, transport, &reply, "answered");
            return Some(encode(&reply, transport, udp_limit));
        }
        Decision::Forward(query) => query,
    };
    let Some(upstream) = shared.upstream else {
        let reply = response(&query, ResponseCode::ServFail);
        log_query(peer, transport, &reply, "no upstream");
        return Some(encode(&reply, transport, udp_limit(&query)));
    };
    match forward(upstream, raw, query.metadata.id, transport).await {
        Ok(reply) => {
            let question = query.queries.first();
            tracing::debug!(
                %peer,
                transport = transport.name(),
                name = question.map(|q| q.name().to_string()),
                qtype = question.map(|q| q.query_type().to_string()),
                rcode = Header::read(&mut BinDecoder::new(&reply))
                    .map(|h| h.response_code.to_string())
                    .ok(),
                %upstream,
                "dns query forwarded"
            );
            Some(reply)
        }
        Err(e) => {
            let name = query.queries.first().map(|q| q.name().to_string());
            tracing::warn!(%upstream, name, error = format!("{e:#}"), "upstream DNS query failed");
            let reply = response(&query, ResponseCode::ServFail);
            Some(encode(&reply, transport, udp_limit(&query)))
        }
    }
}

fn log_query(peer: SocketAddr, transport: Transport, message: &Message, how: &str) {
    let question = message.queries.first();
    tracing::debug!(
        %peer,
        transport = transport.name(),
        name = question.map(|q| q.name().to_string()),
        qtype = question.map(|q| q.query_type().to_string()),
        rcode = %message.metadata.response_code,
        answers = message.answers.len(),
        how,
        "dns query"
    );
}

/// The protocol decision for one raw message, without any I/O.
fn decide(resolver: &Resolver, raw: &[u8]) -> Decision {
    let query = match Message::from_vec(raw) {
        Ok(query) => query,
        Err(_) => {
            // FORMERR needs the id, so a message without a readable header gets nothing.
            return match Header::read(&mut BinDecoder::new(raw)) {
                Ok(header) if header.message_type == MessageType::Query => {
                    let mut metadata = Metadata::response_from_request(&header.metadata);
                    metadata.recursion_available = true;
                    metadata.response_code = ResponseCode::FormErr;
                    let mut reply =
                        Message::new(metadata.id, MessageType::Response, metadata.op_code);
                    reply.metadata = metadata;
                    Decision::Reply(reply, CLASSIC_UDP_PAYLOAD)
                }
                _ => Decision::Drop,
            };
        }
    };
    if query.metadata.message_type != MessageType::Query {
        return Decision::Drop;
    }
    let limit = udp_limit(&query);
    if query.metadata.op_code != OpCode::Query {
        return Decision::Reply(response(&query, ResponseCode::NotImp), limit);
    }
    let [question] = query.queries.as_slice() else {
        return Decision::Reply(response(&query, ResponseCode::FormErr), limit);
    };
    if question.query_class() != DNSClass::IN {
        return Decision::Forward(query);
    }
    let ascii = question.name().to_lowercase().to_ascii();
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    match resolver(name) {
        Answer::NotOurs => Decision::Forward(query),
        Answer::NoSuchName => {
            let mut reply = response(&query, ResponseCode::NXDomain);
            reply.metadata.authoritative = true;
            Decision::Reply(reply, limit)
        }
        Answer::Found(ips) => {
            let mut reply = response(&query, ResponseCode::NoError);
            reply.metadata.authoritative = true;
            if matches!(question.query_type(), RecordType::A | RecordType::ANY) {
                for ip in ips {
                    let record = Record::from_rdata(question.name().clone(), TTL, RData::A(A(ip)));
                    reply.add_answer(record);
                }
            }
            Decision::Reply(reply, limit)
        }
    }
}

/// The largest UDP answer `query`'s sender takes: 512 bytes, or what it offers with EDNS(0) up
/// to [`MAX_UDP_PAYLOAD`].
fn udp_limit(query: &Message) -> usize {
    match &query.edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, MAX_UDP_PAYLOAD)),
        None => CLASSIC_UDP_PAYLOAD,
    }
}

/// A reply to `query` with its questions, its RD and CD flags, RA set, and EDNS(0) when the
/// query had it.
fn response(query: &Message, code: ResponseCode) -> Message {
    let mut metadata = Metadata::response_from_request(&query.metadata);
    metadata.recursion_available = true;
    metadata.response_code = code;
    let mut reply = Message::new(metadata.id, MessageType::Response, metadata.op_code);
    reply.metadata = metadata;
    reply.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        reply.set_edns(edns);
    }
    reply
}

/// Encodes a reply; one too long for the transport goes without its answers and with TC set
/// (a UDP client then asks again over TCP), and one that cannot be encoded becomes SERVFAIL.
fn encode(reply: &Message, transport: Transport, udp_limit: usize) -> Vec<u8> {
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => udp_limit,
    };
    let bytes = match reply.to_vec() {
        Ok(bytes) if bytes.len() <= limit => return bytes,
        Ok(bytes) => {
            tracing::debug!(
                len = bytes.len(),
                limit,
                "DNS answer too long; sending it truncated"
            );
            let mut short = reply.clone();
            short.answers.clear();
            short.authorities.clear();
            short.additionals.clear();
            short.metadata.truncation = true;
            short.to_vec()
        }
        Err(e) => Err(e),
    };
    bytes.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot encode a DNS answer; sending SERVFAIL");
        let mut failed = Message::new(
            reply.metadata.id,
            MessageType::Response,
            reply.metadata.op_code,
        );
        failed.metadata = reply.metadata;
        failed.metadata.response_code = ResponseCode::ServFail;
        failed.metadata.authoritative = false;
        // A bare header always encodes.
        failed.to_vec().unwrap_or_default()
    })
}

/// Relays a raw query to the upstream over UDP and returns its raw reply; a TCP client whose
/// answer came back truncated gets it again over TCP.
async fn forward(
    upstream: SocketAddr,
    raw: &[u8],
    id: u16,
    transport: Transport,
) -> anyhow::Result<Vec<u8>> {
    let reply = tokio::time::timeout(UPSTREAM_TIMEOUT, forward_udp(upstream, raw, id))
        .await
        .with_context(|| format!("no answer over UDP within {UPSTREAM_TIMEOUT:?}"))??;
    if transport == Transport::Tcp && truncated(&reply) {
        return tokio::time::timeout(UPSTREAM_TIMEOUT, forward_tcp(upstream, raw, id))
            .await
            .with_context(|| format!("no answer over TCP within {UPSTREAM_TIMEOUT:?}"))?;
    }
    Ok(reply)
}

fn truncated(reply: &[u8]) -> bool {
    Header::read(&mut BinDecoder::new(reply)).is_ok_and(|h| h.truncation)
}

/// Whether `reply` is a response with the query's id.
fn answers(reply: &[u8], id: u16) -> bool {
    Header::read(&mut BinDecoder::new(reply))
        .is_ok_and(|h| h.id == id && h.message_type == MessageType::Response)
}

async fn forward_udp(upstream: SocketAddr, raw: &[u8], id: u16) -> anyhow::Result<Vec<u8>> {
    let any: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket (random port) per query, connected so only the upstream's datagrams arrive.
    let socket = UdpSocket::bind(any)
        .await
        .context("binding a UDP socket for the upstream")?;
    socket
        .connect(upstream)
        .await
        .context("connecting the UDP socket to the upstream")?;
    socket.send(raw).await.context("sending over UDP")?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        let n = socket.recv(&mut buf).await.context("receiving over UDP")?;
        if answers(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
        tracing::debug!(%upstream, "ignoring a UDP datagram that does not answer the query");
    }
}

async fn forward_tcp(upstream: SocketAddr, raw: &[u8], id: u16) -> anyhow::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream)
        .await
        .context("connecting over TCP")?;
    write_frame(&mut stream, raw).await?;
    let reply = read_frame(&mut stream)
        .await?
        .context("the upstream closed the TCP connection without answering")?;
    if !answers(&reply, id) {
        bail!("the upstream's TCP reply does not answer the query");
    }
    Ok(reply)
}

/// The first `nameserver` of a resolv.conf text, port 53, if any (for `upstream`).
pub fn upstream_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    nameservers(text).next()
}

/// Like [`upstream_from_resolv_conf`], skipping loopback nameservers when `skip_loopback` is
/// true (e.g. systemd-resolved's 127.0.0.53, which a container's network namespace cannot
/// reach, or this very server listening on loopback).
pub fn upstream_from_resolv_conf_with(text: &str, skip_loopback: bool) -> Option<SocketAddr> {
    nameservers(text).find(|addr| !(skip_loopback && addr.ip().is_loopback()))
}

/// Every usable `nameserver` line of a resolv.conf text, in order, with port 53. Comments
/// (`#` or `;`) and other keywords are skipped, and so are addresses that do not parse or
/// carry an interface name rather than a numeric IPv6 zone.
fn nameservers(text: &str) -> impl Iterator<Item = SocketAddr> + '_ {
    text.lines().filter_map(|line| {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        let word = words.next()?;
        let (ip, zone) = match word.split_once('%') {
            Some((ip, zone)) => (ip, Some(zone)),
            None => (word, None),
        };
        match (ip.parse::<IpAddr>().ok()?, zone) {
            (ip, None) => Some(SocketAddr::new(ip, 53)),
            (IpAddr::V6(ip), Some(zone)) => {
                let scope = zone.parse::<u32>().ok()?;
                Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
            }
            (IpAddr::V4(_), Some(_)) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::Mutex;
    use tokio::task::JoinHandle;

    const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    const WAIT: Duration = Duration::from_secs(5);

    /// A cluster whose domain is cluster.local, with the given names.
    fn cluster(names: &[(&str, &[Ipv4Addr])]) -> (Resolver, Arc<Mutex<Vec<String>>>) {
        let names: HashMap<String, Vec<Ipv4Addr>> = names
            .iter()
            .map(|(n, ips)| (n.to_string(), ips.to_vec()))
            .collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let resolver: Resolver = Arc::new(move |name: &str| {
            seen.lock().unwrap().push(name.to_string());
            match names.get(name) {
                Some(ips) => Answer::Found(ips.clone()),
                None if name == "cluster.local" || name.ends_with(".cluster.local") => {
                    Answer::NoSuchName
                }
                None => Answer::NotOurs,
            }
        });
        (resolver, asked)
    }

    struct Running {
        addr: SocketAddr,
        stop: watch::Sender<bool>,
        task: JoinHandle<()>,
    }

    impl Running {
        async fn stop(self) {
            self.stop.send(true).unwrap();
            tokio::time::timeout(WAIT, self.task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    async fn start(resolver: Resolver, upstream: Option<SocketAddr>) -> Running {
        let server = DnsServer::bind(LOOPBACK, resolver, upstream).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server.serve(stopped));
        Running { addr, stop, task }
    }

    fn next_id() -> u16 {
        static ID: AtomicU16 = AtomicU16::new(4242);
        ID.fetch_add(1, Ordering::Relaxed)
    }

    fn query(name: &str, rtype: RecordType) -> Message {
        let mut m = Message::new(next_id(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        m
    }

    async fn exchange_udp(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        socket.send_to(raw, addr).await.unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, from) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .expect("no UDP answer")
            .unwrap();
        assert_eq!(from, addr);
        buf.truncate(n);
        buf
    }

    async fn ask_udp(addr: SocketAddr, q: &Message) -> Message {
        let reply = Message::from_vec(&exchange_udp(addr, &q.to_vec().unwrap()).await).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        reply
    }

    async fn ask_tcp(stream: &mut TcpStream, q: &Message) -> Message {
        write_frame(stream, &q.to_vec().unwrap()).await.unwrap();
        let raw = tokio::time::timeout(WAIT, read_frame(stream))
            .await
            .expect("no TCP answer")
            .unwrap()
            .expect("connection closed");
        let reply = Message::from_vec(&raw).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        reply
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0,
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    const WEB: &str = "web.default.svc.cluster.local";
    const WEB_IPS: &[Ipv4Addr] = &[Ipv4Addr::new(10, 96, 0, 10), Ipv4Addr::new(10, 96, 0, 11)];
    const HEADLESS: &str = "empty.default.svc.cluster.local";

    fn test_cluster() -> (Resolver, Arc<Mutex<Vec<String>>>) {
        cluster(&[(WEB, WEB_IPS), (HEADLESS, &[])])
    }

    #[tokio::test]
    async fn a_lookup_found_with_two_ips() {
        let (resolver, asked) = test_cluster();
        let dns = start(resolver, None).await;
        // The resolver sees the name lower-cased and without the trailing dot; the answer keeps
        // the query's spelling.
        let q = query("Web.Default.svc.cluster.local.", RecordType::A);
        let reply = ask_udp(dns.addr, &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert!(reply.metadata.recursion_desired);
        assert!(reply.metadata.recursion_available);
        assert_eq!(reply.queries, q.queries);
        assert_eq!(a_records(&reply), WEB_IPS);
        for r in &reply.answers {
            assert_eq!(r.ttl, TTL);
            assert_eq!(r.name.to_ascii(), "Web.Default.svc.cluster.local.");
        }
        assert_eq!(asked.lock().unwrap().as_slice(), [WEB]);
        dns.stop().await;
    }

    #[tokio::test]
    async fn found_empty_is_noerror_without_answers() {
        let dns = start(test_cluster().0, None).await;
        let reply = ask_udp(dns.addr, &query(&format!("{HEADLESS}."), RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert!(reply.answers.is_empty());
        dns.stop().await;
    }

    #[tokio::test]
    async fn missing_cluster_name_is_nxdomain() {
        let dns = start(test_cluster().0, None).await;
        for rtype in [RecordType::A, RecordType::AAAA] {
            let q = query("nope.default.svc.cluster.local.", rtype);
            let reply = ask_udp(dns.addr, &q).await;
            assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
            assert!(reply.metadata.authoritative);
            assert!(reply.answers.is_empty());
        }
        dns.stop().await;
    }

    #[tokio::test]
    async fn aaaa_and_other_types_for_a_cluster_name_are_noerror_empty() {
        let dns = start(test_cluster().0, None).await;
        for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let reply = ask_udp(dns.addr, &query(&format!("{WEB}."), rtype)).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{rtype}"
            );
            assert!(reply.metadata.authoritative);
            assert!(reply.answers.is_empty(), "{rtype}");
        }
        dns.stop().await;
    }

    #[tokio::test]
    async fn rd_flag_is_kept_and_edns_is_answered() {
        let dns = start(test_cluster().0, None).await;
        let mut q = query(&format!("{WEB}."), RecordType::A);
        q.metadata.recursion_desired = false;
        q.set_edns(Edns::new());
        let reply = ask_udp(dns.addr, &q).await;
        assert!(!reply.metadata.recursion_desired);
        assert!(reply.metadata.recursion_available);
        assert!(reply.edns.is_some());
        assert_eq!(a_records(&reply), WEB_IPS);
        dns.stop().await;
    }

    #[tokio::test]
    async fn forwards_other_names_to_the_upstream() {
        // The upstream is another DnsServer, authoritative for example.com.
        let up_asked = Arc::new(Mutex::new(Vec::new()));
        let seen = up_asked.clone();
        let up_resolver: Resolver = Arc::new(move |name: &str| {
            seen.lock().unwrap().push(name.to_string());
            match name {
                "example.com" => Answer::Found(vec![Ipv4Addr::new(192, 0, 2, 7)]),
                n if n.ends_with(".example.com") => Answer::NoSuchName,
                _ => Answer::NotOurs,
            }
        });
        let upstream = start(up_resolver, None).await;
        let (resolver, asked) = test_cluster();
        let dns = start(resolver, Some(upstream.addr)).await;

        let q = query("Example.COM.", RecordType::A);
        let reply = ask_udp(dns.addr, &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply), [Ipv4Addr::new(192, 0, 2, 7)]);
        assert_eq!(reply.queries, q.queries);
        assert_eq!(asked.lock().unwrap().as_slice(), ["example.com"]);
        assert_eq!(up_asked.lock().unwrap().as_slice(), ["example.com"]);

        // The upstream's NXDOMAIN is relayed as it is.
        let reply = ask_udp(dns.addr, &query("missing.example.com.", RecordType::AAAA)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert!(reply.metadata.authoritative);

        // Over TCP, the query still goes to the upstream.
        let mut stream = TcpStream::connect(dns.addr).await.unwrap();
        let reply = ask_tcp(&mut stream, &query("example.com.", RecordType::A)).await;
        assert_eq!(a_records(&reply), [Ipv4Addr::new(192, 0, 2, 7)]);
        assert_eq!(up_asked.lock().unwrap().len(), 3);

        dns.stop().await;
        upstream.stop().await;
    }

    #[tokio::test]
    async fn a_truncated_upstream_answer_is_fetched_again_over_tcp_for_tcp_clients() {
        let many: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
        let upstream = start(cluster(&[("big.example.com", &many)]).0, None).await;
        let dns = start(test_cluster().0, Some(upstream.addr)).await;
        let q = query("big.example.com.", RecordType::A);
        // A UDP client gets the truncated answer as it is, and asks again over TCP.
        let reply = ask_udp(dns.addr, &q).await;
        assert!(reply.metadata.truncation);
        let mut stream = TcpStream::connect(dns.addr).await.unwrap();
        let reply = ask_tcp(&mut stream, &q).await;
        assert!(!reply.metadata.truncation);
        assert_eq!(a_records(&reply), many);
        dns.stop().await;
        upstream.stop().await;
    }

    #[tokio::test]
    async fn no_upstream_is_servfail() {
        let dns = start(test_cluster().0, None).await;
        let q = query("example.com.", RecordType::A);
        let reply = ask_udp(dns.addr, &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(!reply.metadata.authoritative);
        assert_eq!(reply.queries, q.queries);
        dns.stop().await;
    }

    #[tokio::test]
    async fn unreachable_upstream_is_servfail() {
        let closed = UdpSocket::bind(LOOPBACK)
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let dns = start(test_cluster().0, Some(closed)).await;
        let reply = ask_udp(dns.addr, &query("example.com.", RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        dns.stop().await;
    }

    #[tokio::test]
    async fn a_silent_upstream_does_not_delay_cluster_answers() {
        // An upstream that never answers.
        let silent = UdpSocket::bind(LOOPBACK).await.unwrap();
        let dns = start(test_cluster().0, Some(silent.local_addr().unwrap())).await;
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        let forwarded = query("example.com.", RecordType::A);
        socket
            .send_to(&forwarded.to_vec().unwrap(), dns.addr)
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let reply = ask_udp(dns.addr, &query(&format!("{WEB}."), RecordType::A)).await;
        assert_eq!(a_records(&reply), WEB_IPS);
        assert!(started.elapsed() < Duration::from_secs(1));
        // The forwarded query fails after the upstream timeout.
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(reply.metadata.id, forwarded.metadata.id);
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        assert!(started.elapsed() >= UPSTREAM_TIMEOUT - Duration::from_millis(100));
        dns.stop().await;
    }

    #[tokio::test]
    async fn garbage_does_not_stop_the_server() {
        let dns = start(test_cluster().0, None).await;
        let socket = UdpSocket::bind(LOOPBACK).await.unwrap();
        // Too short for a header: dropped.
        socket.send_to(&[0x12, 0x34, 0x01], dns.addr).await.unwrap();
        socket.send_to(&[], dns.addr).await.unwrap();
        // A readable header announcing a question that is not there: FORMERR with its id.
        let mut header_only = query(&format!("{WEB}."), RecordType::A).to_vec().unwrap();
        header_only.truncate(12 + 3);
        let reply = Message::from_vec(&exchange_udp(dns.addr, &header_only).await).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(
            reply.metadata.id,
            u16::from_be_bytes([header_only[0], header_only[1]])
        );
        // Still answering, and the dropped datagrams got nothing.
        let q = query(&format!("{WEB}."), RecordType::A);
        socket
            .send_to(&q.to_vec().unwrap(), dns.addr)
            .await
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let reply = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        assert_eq!(a_records(&reply), WEB_IPS);
        dns.stop().await;
    }

    #[tokio::test]
    async fn more_than_one_question_is_formerr() {
        let dns = start(test_cluster().0, None).await;
        let mut q = query(&format!("{WEB}."), RecordType::A);
        q.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        ));
        let reply = ask_udp(dns.addr, &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert!(reply.answers.is_empty());
        dns.stop().await;
    }

    #[tokio::test]
    async fn tcp_answers_several_queries_per_connection() {
        let dns = start(test_cluster().0, None).await;
        let mut stream = TcpStream::connect(dns.addr).await.unwrap();
        let reply = ask_tcp(&mut stream, &query(&format!("{WEB}."), RecordType::A)).await;
        assert_eq!(a_records(&reply), WEB_IPS);
        assert!(reply.metadata.authoritative);
        let reply = ask_tcp(&mut stream, &query("x.cluster.local.", RecordType::A)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        // Garbage closes the connection; the server keeps serving others.
        write_frame(&mut stream, &[1]).await.unwrap();
        let closed = tokio::time::timeout(WAIT, read_frame(&mut stream))
            .await
            .unwrap();
        assert!(matches!(closed, Ok(None) | Err(_)));
        let mut stream = TcpStream::connect(dns.addr).await.unwrap();
        let reply = ask_tcp(&mut stream, &query(&format!("{WEB}."), RecordType::A)).await;
        assert_eq!(a_records(&reply), WEB_IPS);
        dns.stop().await;
    }

    #[tokio::test]
    async fn long_answers_are_truncated_over_udp_and_whole_over_tcp() {
        let many: Vec<Ipv4Addr> = (0..100).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
        let name = "big.default.svc.cluster.local";
        let dns = start(cluster(&[(name, &many)]).0, None).await;
        let q = query(&format!("{name}."), RecordType::A);
        let reply = ask_udp(dns.addr, &q).await;
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        let mut stream = TcpStream::connect(dns.addr).await.unwrap();
        let reply = ask_tcp(&mut stream, &q).await;
        assert!(!reply.metadata.truncation);
        assert_eq!(a_records(&reply), many);
        dns.stop().await;
    }

    #[tokio::test]
    async fn edns_clients_get_up_to_their_payload_size_over_udp() {
        // 60 A records: about 1 KB, more than 512 bytes, less than 1232.
        let many: Vec<Ipv4Addr> = (0..60).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect();
        let name = "sixty.default.svc.cluster.local";
        let dns = start(cluster(&[(name, &many)]).0, None).await;
        let mut q = query(&format!("{name}."), RecordType::A);
        assert!(ask_udp(dns.addr, &q).await.metadata.truncation);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        q.set_edns(edns);
        let reply = ask_udp(dns.addr, &q).await;
        assert!(!reply.metadata.truncation);
        assert_eq!(a_records(&reply), many);
        dns.stop().await;
    }

    #[tokio::test]
    async fn bind_reports_the_address_it_could_not_take() {
        let dns = start(test_cluster().0, None).await;
        let err = DnsServer::bind(dns.addr, test_cluster().0, None)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains(&dns.addr.to_string()), "{err}");
        dns.stop().await;
    }

    #[test]
    fn resolv_conf_first_nameserver() {
        let text = "# generated by NetworkManager\n\
                    ; another comment\n\
                    search example.internal\n\
                    options ndots:5 timeout:1\n\
                    nameserver 10.0.0.2 # the VPC resolver\n\
                    nameserver 10.0.0.3\n";
        assert_eq!(
            upstream_from_resolv_conf(text),
            Some("10.0.0.2:53".parse().unwrap())
        );
    }

    #[test]
    fn resolv_conf_ipv6_nameserver() {
        let text = "options edns0\nnameserver 2001:db8::53\nnameserver 10.0.0.2\n";
        assert_eq!(
            upstream_from_resolv_conf(text),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        let scoped = "nameserver fe80::1%2\n";
        let SocketAddr::V6(v6) = upstream_from_resolv_conf(scoped).unwrap() else {
            panic!()
        };
        assert_eq!((v6.port(), v6.scope_id()), (53, 2));
        assert_eq!(upstream_from_resolv_conf("nameserver fe80::1%eth0\n"), None);
    }

    #[test]
    fn resolv_conf_without_nameserver() {
        assert_eq!(upstream_from_resolv_conf(""), None);
        let text =
            "# nameserver 10.0.0.2\nsearch cluster.local\nnameserver\nnameserver not-an-ip\n";
        assert_eq!(upstream_from_resolv_conf(text), None);
    }

    #[test]
    fn resolv_conf_loopback_skipped_when_asked() {
        let text = "nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\n";
        assert_eq!(
            upstream_from_resolv_conf(text),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            upstream_from_resolv_conf_with(text, true),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            upstream_from_resolv_conf_with(text, false),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            upstream_from_resolv_conf_with("nameserver 127.0.0.1\n", true),
            None
        );
    }
}
