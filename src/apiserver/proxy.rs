//! What the master relays to node agents (over TLS, showing its client certificate): pod logs,
//! exec and attach (orkops' own upgraded connection is copied byte for byte; Kubernetes'
//! WebSocket channel protocols are translated by `streams`), port-forward connections (opened
//! here, relayed by `portforward`), and image archives loaded into the nodes' engines. Only the
//! admin may use these; the request is checked before anything is forwarded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::engine::{Command, Reply};
use super::http::AppState;
use super::{podlog, streams};
use super::{ApiError, Caller};
use crate::api::Kind;
use crate::execproto;

/// What the master needs to reach agents.
pub struct AgentAccess {
    /// HTTPS client trusting the cluster CA and presenting the master's client certificate.
    /// It connects to `https://NODE:PORT` and checks that the agent's certificate names the
    /// node: node names resolve only through `nodes` (never DNS), so a node's certificate need
    /// not carry an address that may also be a master's. A certificate issued before its
    /// node's credentials were revoked (the Node deleted) is refused (`AgentVerifier`), and no
    /// connection is kept idle, so each request is checked against the current revocation.
    pub client: reqwest::Client,
    nodes: Arc<NodeAddresses>,
    revoked: Arc<Revocations>,
    /// Where the revocation records are (the store and the cluster's key prefix).
    records: Option<(Arc<dyn crate::store::Store>, String)>,
    /// Where image archives are spooled while they are sent to the nodes.
    pub spool_dir: PathBuf,
}

impl AgentAccess {
    pub fn new(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        spool_dir: PathBuf,
    ) -> Result<AgentAccess, String> {
        let origin = std::path::Path::new("the master's agent client");
        let mut roots = rustls::RootCertStore::empty();
        for c in crate::pki::parse_certs(ca_pem, std::path::Path::new("the CA"))
            .map_err(|e| e.to_string())?
        {
            roots.add(c).map_err(|e| format!("the CA: {e}"))?;
        }
        let provider = crate::pki::crypto_provider();
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("the CA: {e}"))?;
        let revoked = Arc::new(Revocations::default());
        let verifier = Arc::new(AgentVerifier {
            webpki,
            revoked: revoked.clone(),
        });
        let certs = crate::pki::parse_certs(cert_pem, origin).map_err(|e| e.to_string())?;
        let key = crate::pki::parse_key(key_pem, origin).map_err(|e| e.to_string())?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("the master's client certificate: {e}"))?;
        // a resumed TLS session skips the certificate check: every connection verifies anew
        let mut tls = tls;
        tls.resumption = rustls::client::Resumption::disabled();
        let nodes = Arc::new(NodeAddresses::default());
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .dns_resolver(nodes.clone())
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .http1_only()
            .build()
            .map_err(|e| format!("cannot set up the agent client: {e}"))?;
        Ok(AgentAccess {
            client,
            nodes,
            revoked,
            records: None,
            spool_dir,
        })
    }

    /// Reads the nodes' revocation records from `store` (under the cluster's `prefix`) before
    /// each connection; without them no agent certificate is refused as revoked.
    pub fn with_revocations(
        mut self,
        store: Arc<dyn crate::store::Store>,
        prefix: &str,
    ) -> AgentAccess {
        // (the engine's keys: its prefix without a trailing '/')
        self.records = Some((store, prefix.trim_end_matches('/').to_string()));
        self
    }

    /// `https://NODE:PORT` of a node's agent, with NODE resolving to its reported address and
    /// the node's latest revocation known to the certificate check.
    async fn url(&self, node: &Value) -> Result<String, ApiError> {
        let (name, addr) = agent_address(node)?;
        if let Some((store, prefix)) = &self.records {
            let at = super::identity::revoked_at(store.as_ref(), prefix, &name).await?;
            self.revoked.set(&name, at);
        }
        self.nodes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), addr);
        Ok(format!("https://{name}:{}", addr.port()))
    }
}

/// When each node's credentials were last revoked (ms since the epoch), as last read.
#[derive(Debug, Default)]
struct Revocations(std::sync::Mutex<std::collections::HashMap<String, i64>>);

impl Revocations {
    fn set(&self, node: &str, at: Option<i64>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match at {
            Some(at) => m.insert(node.to_string(), at),
            None => m.remove(node),
        };
    }

    fn get(&self, node: &str) -> Option<i64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .copied()
    }
}

/// The agents' certificate check: the cluster CA's (webpki: chain, names, validity), then
/// the node's revocation: a certificate issued before it is refused.
#[derive(Debug)]
struct AgentVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    revoked: Arc<Revocations>,
}

/// Why an agent's certificate is refused although the CA signed it.
#[derive(Debug, thiserror::Error)]
#[error("the serving certificate of node {node:?} was issued before the node's credentials were revoked (its Node was deleted); refusing the agent. hint: a node that joined again has a new certificate: the machine answering at the node's address is not it")]
struct IssuedBeforeRevocation {
    node: String,
}

impl rustls::client::danger::ServerCertVerifier for AgentVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ok = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let rustls::pki_types::ServerName::DnsName(name) = server_name else {
            return Ok(ok);
        };
        let node = name.as_ref();
        let Some(revoked) = self.revoked.get(node) else {
            return Ok(ok);
        };
        let issued = super::identity::certificate_issued_ms(end_entity)
            .map_err(|e| rustls::Error::General(format!("node {node:?}: {e}")))?;
        if super::identity::issued_after_revocation(issued, revoked) {
            return Ok(ok);
        }
        // (`Error::Other` shows the reason; a `CertificateError` would show only its debug form)
        Err(rustls::Error::Other(rustls::OtherError(Arc::new(
            IssuedBeforeRevocation {
                node: node.to_string(),
            },
        ))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The agents' addresses by node name, as the Nodes reported them: the agent client's only
/// name resolution.
#[derive(Default)]
struct NodeAddresses(std::sync::Mutex<std::collections::HashMap<String, std::net::SocketAddr>>);

impl reqwest::dns::Resolve for NodeAddresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let found = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name.as_str())
            .copied();
        let name = name.as_str().to_string();
        Box::pin(async move {
            match found {
                Some(a) => Ok(Box::new(std::iter::once(a)) as reqwest::dns::Addrs),
                None => Err(format!("no node {name:?} with a reported address").into()),
            }
        })
    }
}

pub(super) fn admin(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match st.credentials.authenticate(auth, Utc::now())? {
        c if c.is_superuser() => Ok(()),
        other => Err(ApiError::Forbidden(format!(
            "{other:?} may not use logs, exec or image loading; only the admin may"
        ))),
    }
}

async fn get(st: &AppState, kind: Kind, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
    let cmd = Command::Get {
        kind,
        namespace: ns.map(str::to_string),
        name: name.to_string(),
    };
    match st.engine.handle(&Caller::Master, cmd).await? {
        Reply::Ok(v) => Ok(v),
        _ => Err(ApiError::Internal("unexpected reply to a get".into())),
    }
}

/// The name of a node and the address of its agent's endpoint.
fn agent_address(node: &Value) -> Result<(String, std::net::SocketAddr), ApiError> {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let addrs = node.pointer("/status/addresses").and_then(Value::as_array);
    let ip = addrs
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| {
            ApiError::BadGateway(format!(
                "node {name:?} has not reported its address; is its agent running?"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/agentEndpoint/Port")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            ApiError::BadGateway(format!(
                "node {name:?} has not reported its agent port; is its agent running?"
            ))
        })?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| {
        ApiError::BadGateway(format!(
            "node {name:?} reported an address {ip:?} that is not an IP address"
        ))
    })?;
    let port = u16::try_from(port).map_err(|_| {
        ApiError::BadGateway(format!(
            "node {name:?} reported an invalid agent port {port}"
        ))
    })?;
    Ok((name.to_string(), std::net::SocketAddr::new(ip, port)))
}

/// The pod, and the URL of its agent's endpoint for it (`.../pods/NS/NAME/UID`).
pub(super) async fn pod_target(
    st: &AppState,
    access: &AgentAccess,
    ns: &str,
    name: &str,
) -> Result<(Value, String), ApiError> {
    let pod = get(st, Kind::Pod, Some(ns), name).await?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "pod {ns}/{name} is not running on a node yet (it has no spec.nodeName)"
            ))
        })?;
    let node_obj = get(st, Kind::Node, None, node).await?;
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok((
        pod.clone(),
        format!("{}/pods/{ns}/{name}/{uid}", access.url(&node_obj).await?),
    ))
}

/// The container a request names, checked to exist, or the pod's first one.
pub(super) fn container_of(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    match asked {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::BadRequest(format!(
            "container {c} is not valid for pod {pod_name}: choose one of [{}]",
            names.join(" ")
        ))),
        None => names
            .first()
            .map(|c| c.to_string())
            .ok_or_else(|| ApiError::BadRequest(format!("pod {pod_name} has no containers"))),
    }
}

pub(super) fn unreachable(url: &str, e: reqwest::Error) -> ApiError {
    ApiError::BadGateway(format!(
        "cannot reach the node's agent at {url}: {}",
        crate::client::error_chain(&e)
    ))
}

/// Relays a non-success answer of an agent as it came.
async fn relay_error(resp: reqwest::Response) -> Response {
    let code = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = resp.bytes().await.unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /api/v1/namespaces/NS/pods/NAME/log` with the query of `podlog::LogOptions`.
pub async fn logs(
    State(st): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let r = async {
        admin(&st, &headers)?;
        let access = st
            .agents
            .as_ref()
            .ok_or_else(|| ApiError::BadGateway("this master cannot reach agents".into()))?;
        let (pod, base) = pod_target(&st, access, &ns, &name).await?;
        let opts = podlog::LogOptions::parse(raw.as_deref(), Utc::now())?;
        let container = container_of(&pod, opts.container.as_deref())?;
        let url = format!("{base}/log?{}", opts.agent_query(&container));
        let resp = access
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(&url, e))?;
        if !resp.status().is_success() {
            return Ok(relay_error(resp).await);
        }
        let limit = opts.limit_bytes.unwrap_or(u64::MAX);
        // limitBytes: the stream ends once that many bytes have been sent
        let body = resp.bytes_stream().scan(limit, |left, r| {
            let item = match r {
                _ if *left == 0 => None,
                Ok(mut b) => {
                    if (b.len() as u64) > *left {
                        b.truncate(*left as usize);
                    }
                    *left -= b.len() as u64;
                    Some(Ok(b))
                }
                Err(e) => Some(Err(std::io::Error::other(e))),
            };
            futures::future::ready(item)
        });
        Ok::<_, ApiError>(
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Body::from_stream(body))
                .unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response()),
        )
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/v1/namespaces/NS/pods/NAME/exec?container=&command=...&stdin=&tty=` with
/// `Upgrade: orkops-exec.v1`.
pub async fn exec(
    State(st): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    upgraded(st, ns, name, raw, req, "exec").await
}

/// `POST /api/v1/namespaces/NS/pods/NAME/attach?container=&stdin=&tty=`: the same stream,
/// connected to the container's own process.
pub async fn attach(
    State(st): State<Arc<AppState>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    upgraded(st, ns, name, raw, req, "attach").await
}

async fn upgraded(
    st: Arc<AppState>,
    ns: String,
    name: String,
    raw: Option<String>,
    req: Request,
    sub: &'static str,
) -> Response {
    let r = async {
        admin(&st, req.headers())?;
        let access = st
            .agents
            .as_ref()
            .ok_or_else(|| ApiError::BadGateway("this master cannot reach agents".into()))?;
        let (pod, base) = pod_target(&st, access, &ns, &name).await?;
        let opts = streams::StreamOptions::parse(raw.as_deref(), sub == "exec")?;
        let container = container_of(&pod, opts.container.as_deref())?;
        not_running(&pod, &container)?;
        let websocket = streams::wants_websocket(req.headers());
        let own = req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(execproto::PROTOCOL));
        if !websocket && !own {
            return Err(ApiError::BadRequest(format!(
                "{sub} needs an upgraded connection: a WebSocket (Upgrade: websocket) with \
                 subprotocol {}, or Upgrade: {}",
                streams::EXEC_PROTOCOLS.join(", "),
                execproto::PROTOCOL
            )));
        }
        let (mut parts, _) = req.into_parts();
        let ws = if websocket {
            Some(
                WebSocketUpgrade::from_request_parts(&mut parts, &())
                    .await
                    .map_err(|e| {
                        ApiError::BadRequest(format!("the WebSocket upgrade: {}", e.body_text()))
                    })?,
            )
        } else {
            None
        };
        let url = format!("{base}/{sub}?{}", opts.agent_query(&container));
        let mut upstream = match agent_upgrade(access, &url, execproto::PROTOCOL).await? {
            Ok(u) => u,
            Err(refused) => return Ok(refused),
        };
        if let Some(ws) = ws {
            return Ok(ws.protocols(streams::EXEC_PROTOCOLS).on_upgrade(
                move |socket| async move {
                    let ch = streams::Channels::from_protocol(
                        socket.protocol().and_then(|p| p.to_str().ok()),
                    );
                    streams::bridge(socket, upstream, ch, opts).await
                },
            ));
        }
        let downstream = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{sub}: this connection cannot be upgraded"))
            })?;
        tokio::spawn(async move {
            match downstream.await {
                Ok(d) => {
                    let mut d = TokioIo::new(d);
                    let _ = tokio::io::copy_bidirectional(&mut d, &mut upstream).await;
                    let _ = d.shutdown().await;
                }
                Err(e) => tracing::debug!(error = %e, "exec upgrade from the client failed"),
            }
        });
        Ok(switching(execproto::PROTOCOL))
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// Refuses a stream to a container the pod's status says is not running (answered before any
/// upgrade, so that a client falling back to another protocol hears the same reason).
fn not_running(pod: &Value, container: &str) -> Result<(), ApiError> {
    let status = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container);
    match status {
        Some(c) if !c["state"]["running"].is_object() => Err(ApiError::BadRequest(format!(
            "container {container} is not running in pod {}/{} (phase {})",
            pod.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            pod.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            pod.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        ))),
        _ => Ok(()),
    }
}

/// A `101 Switching Protocols` answer for an `Upgrade: PROTOCOL` request.
pub(super) fn switching(protocol: &'static str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static(protocol));
    resp
}

/// An upgraded connection to an agent endpoint (`Upgrade: PROTOCOL`), or the agent's refusal
/// as the answer to relay.
pub(super) async fn agent_upgrade(
    access: &AgentAccess,
    url: &str,
    protocol: &'static str,
) -> Result<Result<reqwest::Upgraded, Response>, ApiError> {
    let resp = access
        .client
        .post(url)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, protocol)
        .send()
        .await
        .map_err(|e| unreachable(url, e))?;
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Err(relay_error(resp).await));
    }
    Ok(Ok(resp.upgrade().await.map_err(|e| unreachable(url, e))?))
}

/// `POST /orkops/v1/images/load[?node=N]`: the body is a `docker save` archive. It is spooled to
/// disk, then sent to the named node or to every Ready node; the answer lists each node's result.
pub async fn load_image(
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    let r = async {
        admin(&st, req.headers())?;
        let access = st
            .agents
            .as_ref()
            .ok_or_else(|| ApiError::BadGateway("this master cannot reach agents".into()))?;
        let mut only = None;
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "node" => only = Some(v.into_owned()),
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported query parameter {other:?} (supported: node)"
                    )))
                }
            }
        }
        // which nodes, checked before the upload is accepted
        let targets: Vec<Value> = match &only {
            Some(n) => vec![get(&st, Kind::Node, None, n).await?],
            None => {
                let list = st
                    .engine
                    .handle(
                        &Caller::Master,
                        Command::List {
                            kind: Kind::Node,
                            namespace: None,
                            query: Default::default(),
                        },
                    )
                    .await?;
                let Reply::Json(bytes) = list else {
                    return Err(ApiError::Internal("unexpected reply to a list".into()));
                };
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                v["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|n| {
                        n.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                    .collect()
            }
        };
        if targets.is_empty() {
            return Err(ApiError::BadRequest(
                "there is no Ready node to load the image into".into(),
            ));
        }
        std::fs::create_dir_all(&access.spool_dir).map_err(|e| {
            ApiError::Internal(format!("cannot create {}: {e}", access.spool_dir.display()))
        })?;
        let spool = access
            .spool_dir
            .join(format!("image-{}.tar", uuid::Uuid::new_v4()));
        let _cleanup = RemoveOnDrop(spool.clone());
        let mut file = tokio::fs::File::create(&spool)
            .await
            .map_err(|e| ApiError::Internal(format!("cannot spool the image: {e}")))?;
        let mut body = req.into_body().into_data_stream();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("the upload was interrupted: {e}")))?;
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::Internal(format!("cannot spool the image: {e}")))?;
        }
        file.flush()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        drop(file);
        if size == 0 {
            return Err(ApiError::BadRequest(
                "the request body is empty: send a `docker save` archive".into(),
            ));
        }
        let sends = targets.iter().map(|node| {
            let spool = spool.clone();
            let client = access.client.clone();
            async move {
                let name = node
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let r = async {
                    let url = format!(
                        "{}/images/load",
                        access.url(node).await.map_err(|e| e.to_string())?
                    );
                    let f = tokio::fs::File::open(&spool)
                        .await
                        .map_err(|e| e.to_string())?;
                    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f));
                    let resp = client
                        .post(&url)
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| unreachable(&url, e).to_string())?;
                    let ok = resp.status().is_success();
                    let v: Value = resp.json().await.map_err(|e| e.to_string())?;
                    if ok {
                        Ok(v["loaded"].clone())
                    } else {
                        Err(v["message"]
                            .as_str()
                            .unwrap_or("the agent refused the image")
                            .to_string())
                    }
                }
                .await;
                match r {
                    Ok(loaded) => json!({"node": name, "loaded": loaded}),
                    Err(e) => json!({"node": name, "error": e}),
                }
            }
        });
        let results = futures::future::join_all(sends).await;
        tracing::info!(
            bytes = size,
            nodes = results.len(),
            "image archive sent to nodes"
        );
        Ok(axum::Json(json!({"apiVersion": "orkops.io/v1", "kind": "ImageLoad", "bytes": size, "nodes": results})).into_response())
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
