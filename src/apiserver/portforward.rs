//! `pods/portforward` as its clients speak it, relayed to the agent of the pod's node (one
//! agent connection, `Upgrade: orkops-portforward.v1`, per forwarded TCP connection):
//! - kubectl 1.32: SPDY/3.1, tunnelled in a WebSocket (subprotocol
//!   `SPDY/3.1+portforward.k8s.io`) or on a plain `Upgrade: SPDY/3.1` connection. The client
//!   opens an error stream and a data stream per connection (headers `streamtype`, `port`,
//!   `requestid`); the master answers each, relays the data stream, and closes the error
//!   stream, with the reason first when the pod's port could not be reached.
//! - the Python client: WebSocket channels (`v4.channel.k8s.io`) with the ports in the query
//!   (`ports=80,8080`): port i has data channel 2i and error channel 2i+1, and each channel's
//!   first message is the port as two little-endian bytes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::http::AppState;
use super::proxy::{admin, agent_upgrade, pod_target};
use super::spdy::{self, Frame};
use super::ApiError;
use crate::execproto::PORTFORWARD_PROTOCOL;

/// The WebSocket subprotocol of SPDY tunnelled in WebSocket binary messages.
pub const SPDY_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
/// The WebSocket subprotocols of the channel protocol.
pub const CHANNEL_PROTOCOLS: [&str; 1] = ["v4.channel.k8s.io"];
const SPDY_UPGRADE: &str = "SPDY/3.1";
const PORTFORWARD_V1: &str = "portforward.k8s.io";
/// The most ports one channel-protocol request may forward.
const MAX_PORTS: usize = 32;
const READ_CHUNK: usize = 32 * 1024;
/// The most connections one SPDY session forwards at once; more streams are refused.
const MAX_CONNECTIONS: usize = 256;

/// The subprotocols a WebSocket request offers, in its order.
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The `ports` of the channel protocol: repeated or comma-separated, each 1-65535, no repeats.
pub fn parse_ports(raw: Option<&str>) -> Result<Vec<u16>, ApiError> {
    let mut ports = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k != "ports" {
            return Err(ApiError::BadRequest(format!(
                "unsupported query parameter {k:?} (supported: ports)"
            )));
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let n = p.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::BadRequest(format!("ports: {p:?} is not a port number from 1 to 65535"))
            })?;
            if ports.contains(&n) {
                return Err(ApiError::BadRequest(format!("ports: {n} is given twice")));
            }
            ports.push(n);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::BadRequest(
            "query parameter ports is required (e.g. ports=8080)".into(),
        ));
    }
    if ports.len() > MAX_PORTS {
        return Err(ApiError::BadRequest(format!(
            "ports: at most {MAX_PORTS} ports per request"
        )));
    }
    Ok(ports)
}

/// What reaches a pod's port: the master's state and the pod's agent URL.
#[derive(Clone)]
struct Target {
    st: Arc<AppState>,
    base: String,
}

impl Target {
    /// A new TCP connection to the pod's port, through its agent; or why not, in words.
    async fn dial(&self, port: u16) -> Result<reqwest::Upgraded, String> {
        let access = self
            .st
            .agents
            .as_ref()
            .ok_or("this master cannot reach agents")?;
        let url = format!("{}/portforward?port={port}", self.base);
        match agent_upgrade(access, &url, PORTFORWARD_PROTOCOL).await {
            Ok(Ok(up)) => Ok(up),
            Ok(Err(refused)) => {
                let body = axum::body::to_bytes(refused.into_body(), 64 * 1024)
                    .await
                    .unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                Err(v["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// `GET|POST /api/v1/namespaces/NS/pods/NAME/portforward`
pub async fn portforward(
    State(st): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    let r = async {
        admin(&st, req.headers())?;
        let access = st
            .agents
            .as_ref()
            .ok_or_else(|| ApiError::BadGateway("this master cannot reach agents".into()))?;
        let (_, base) = pod_target(&st, access, &ns, &name).await?;
        let target = Target {
            st: st.clone(),
            base,
        };
        let upgrade = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if upgrade.eq_ignore_ascii_case("websocket") {
            let tunnel = offered(req.headers()).iter().any(|p| p == SPDY_TUNNEL);
            let ports = if tunnel {
                Vec::new()
            } else {
                parse_ports(raw.as_deref())?
            };
            let (mut parts, _) = req.into_parts();
            let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
                .await
                .map_err(|e| {
                    ApiError::BadRequest(format!("the WebSocket upgrade: {}", e.body_text()))
                })?;
            if tunnel {
                return Ok(ws
                    .protocols([SPDY_TUNNEL])
                    .on_upgrade(move |socket| spdy_over_websocket(socket, target)));
            }
            return Ok(ws
                .protocols(CHANNEL_PROTOCOLS)
                .on_upgrade(move |socket| channels(socket, target, ports)));
        }
        if upgrade.eq_ignore_ascii_case(SPDY_UPGRADE) {
            let mut req = req;
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                match on.await {
                    Ok(io) => spdy_session(TokioIo::new(io), target).await,
                    Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
                }
            });
            let mut resp = super::proxy::switching(SPDY_UPGRADE);
            resp.headers_mut().insert(
                "X-Stream-Protocol-Version",
                HeaderValue::from_static(PORTFORWARD_V1),
            );
            return Ok(resp);
        }
        Err(ApiError::BadRequest(format!(
            "portforward needs an upgraded connection: Upgrade: {SPDY_UPGRADE}, or a WebSocket \
             with subprotocol {SPDY_TUNNEL} or {}",
            CHANNEL_PROTOCOLS.join(", ")
        )))
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// The channel protocol: one agent connection per port, for the life of the WebSocket.
async fn channels(socket: WebSocket, target: Target, ports: Vec<u16>) {
    let (mut tx, mut rx) = socket.split();
    for (i, port) in ports.iter().enumerate() {
        let [lo, hi] = port.to_le_bytes();
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            if tx
                .send(Message::Binary(vec![ch, lo, hi].into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let mut writers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data_ch = 2 * i as u8;
        match target.dial(*port).await {
            Ok(up) => {
                let (mut rd, wr) = tokio::io::split(up);
                writers.push(Some(wr));
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; READ_CHUNK];
                    while let Ok(n @ 1..) = rd.read(&mut buf).await {
                        let mut m = Vec::with_capacity(n + 1);
                        m.push(data_ch);
                        m.extend_from_slice(&buf[..n]);
                        if out.send(Message::Binary(m.into())).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                writers.push(None);
                let mut m = vec![data_ch + 1];
                m.extend_from_slice(e.as_bytes());
                let _ = out_tx.send(Message::Binary(m.into())).await;
            }
        }
    }
    // the WebSocket ends when every port's connection has ended (all senders dropped)
    drop(out_tx);
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(m) => if tx.send(m).await.is_err() { return },
                None => break,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let Some((&ch, data)) = b.split_first() else { continue };
                    if ch % 2 != 0 {
                        continue;
                    }
                    if let Some(slot) = writers.get_mut(usize::from(ch / 2)) {
                        if let Some(wr) = slot.as_mut() {
                            if wr.write_all(data).await.is_err() {
                                *slot = None;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
}

/// SPDY frames carried in WebSocket binary messages: the messages' payloads are one byte
/// stream, served by the same SPDY session as a plain upgraded connection.
async fn spdy_over_websocket(socket: WebSocket, target: Target) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let session = tokio::spawn(spdy_session(ours, target));
    let (mut rd, mut wr) = tokio::io::split(theirs);
    let (mut tx, mut rx) = socket.split();
    let inbound = async {
        while let Some(Ok(m)) = rx.next().await {
            match m {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; READ_CHUNK];
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            if tx
                .send(Message::Binary(buf[..n].to_vec().into()))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
    session.abort();
}

/// What the session's reader passes to a data stream's relay.
enum Inbound {
    Data(Vec<u8>),
    Fin,
}

/// A server-side SPDY session for port forwarding, until the client goes away.
async fn spdy_session<IO>(io: IO, target: Target)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut enc = spdy::Encoder::default();
        while let Some(f) = out_rx.recv().await {
            let bytes = match enc.encode(&f) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot encode a SPDY frame");
                    continue;
                }
            };
            if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut dec = spdy::Decoder::default();
    // error streams by request id, waiting for their data stream; data streams' relays
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut relays: HashMap<u32, mpsc::Sender<Inbound>> = HashMap::new();
    loop {
        let (head, body) = match spdy::read_raw(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward SPDY connection ended");
                break;
            }
        };
        let frame = match dec.decode(head, &body) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "bad SPDY frame from a port-forward client");
                let _ = out
                    .send(Frame::GoAway {
                        last_stream: 0,
                        status: 1,
                    })
                    .await;
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream, headers, ..
            } => {
                let reply = Frame::SynReply {
                    stream,
                    fin: false,
                    headers: vec![],
                };
                if out.send(reply).await.is_err() {
                    break;
                }
                let rid = spdy::header(&headers, "requestid")
                    .unwrap_or_default()
                    .to_string();
                match spdy::header(&headers, "streamtype") {
                    Some("error") => {
                        if errors.len() < 1024 {
                            errors.insert(rid, stream);
                        }
                    }
                    Some("data") if relays.len() >= MAX_CONNECTIONS => {
                        let _ = out
                            .send(Frame::RstStream {
                                stream,
                                status: spdy::RST_REFUSED_STREAM,
                            })
                            .await;
                    }
                    Some("data") => {
                        let port = spdy::header(&headers, "port")
                            .and_then(|p| p.parse::<u16>().ok())
                            .filter(|p| *p > 0);
                        let (tx, rx) = mpsc::channel(16);
                        relays.insert(stream, tx);
                        let err = errors.remove(&rid);
                        tokio::spawn(relay(target.clone(), port, stream, err, rx, out.clone()));
                    }
                    _ => {
                        let _ = out
                            .send(Frame::RstStream {
                                stream,
                                status: spdy::RST_PROTOCOL_ERROR,
                            })
                            .await;
                    }
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some(tx) = relays.get(&stream) {
                    if !data.is_empty() {
                        let _ = tx.send(Inbound::Data(data)).await;
                    }
                    if fin {
                        let _ = tx.send(Inbound::Fin).await;
                    }
                }
            }
            // the client is done with the stream: its relay sees its sender dropped
            Frame::RstStream { stream, .. } => {
                relays.remove(&stream);
            }
            Frame::Ping(id) => {
                let _ = out.send(Frame::Ping(id)).await;
            }
            Frame::GoAway { .. } => break,
            _ => {}
        }
        relays.retain(|_, tx| !tx.is_closed());
    }
    drop(relays);
    drop(out);
    let _ = writer.await;
}

/// One forwarded connection: the data stream `data` to the pod's port, and the error stream
/// `err` (if the client opened one), closed when the connection ends.
async fn relay(
    target: Target,
    port: Option<u16>,
    data: u32,
    err: Option<u32>,
    mut inbound: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<Frame>,
) {
    let conn = match port {
        Some(p) => target.dial(p).await,
        None => Err("the stream's port header is not a port number from 1 to 65535".into()),
    };
    let mut failure = Vec::new();
    match conn {
        Err(e) => failure = e.into_bytes(),
        Ok(up) => {
            let (mut rd, mut wr) = tokio::io::split(up);
            let down = async {
                let mut buf = vec![0u8; READ_CHUNK];
                while let Ok(n @ 1..) = rd.read(&mut buf).await {
                    let f = Frame::Data {
                        stream: data,
                        fin: false,
                        data: buf[..n].to_vec(),
                    };
                    if out.send(f).await.is_err() {
                        break;
                    }
                }
            };
            let up = async {
                while let Some(m) = inbound.recv().await {
                    match m {
                        Inbound::Data(d) => {
                            if wr.write_all(&d).await.is_err() {
                                break;
                            }
                        }
                        Inbound::Fin => {
                            let _ = wr.shutdown().await;
                        }
                    }
                }
            };
            tokio::select! {
                _ = down => {}
                _ = up => {}
            }
        }
    }
    if let Some(e) = err {
        let _ = out
            .send(Frame::Data {
                stream: e,
                fin: true,
                data: failure,
            })
            .await;
    }
    let _ = out
        .send(Frame::Data {
            stream: data,
            fin: true,
            data: vec![],
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_as_the_python_client_sends_them() {
        assert_eq!(parse_ports(Some("ports=80")).unwrap(), [80]);
        assert_eq!(
            parse_ports(Some("ports=80,8080&ports=9")).unwrap(),
            [80, 8080, 9]
        );
        for bad in [
            "",
            "ports=0",
            "ports=70000",
            "ports=x",
            "ports=80,80",
            "port=80",
        ] {
            assert!(parse_ports(Some(bad)).is_err(), "{bad}");
        }
        let many = (1..=40)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_ports(Some(&format!("ports={many}"))).is_err());
    }

    #[test]
    fn offered_subprotocols_are_split() {
        let mut h = HeaderMap::new();
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SPDY_TUNNEL),
        );
        assert_eq!(
            offered(&h),
            ["v5.channel.k8s.io", "v4.channel.k8s.io", SPDY_TUNNEL]
        );
    }
}
