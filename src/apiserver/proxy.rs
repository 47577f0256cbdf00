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
    /// not carry an address that may also be a master's.
    pub client: reqwest::Client,
    nodes: Arc<NodeAddresses>,
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
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| format!("the CA: {e}"))?;
        let id = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
            .map_err(|e| format!("the master's client certificate: {e}"))?;
        let nodes = Arc::new(NodeAddresses::default());
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .dns_resolver(nodes.clone())
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .identity(id)
            .connect_timeout(Duration::from_secs(5))
            .http1_only()
            .build()
            .map_err(|e| format!("cannot set up the agent client: {e}"))?;
        Ok(AgentAccess {
            client,
            nodes,
            spool_dir,
        })
    }

    /// `https://NODE:PORT` of a node's agent, with NODE resolving to its reported address.
    fn url(&self, node: &Value) -> Result<String, ApiError> {
        let (name, addr) = agent_address(node)?;
        self.nodes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), addr);
        Ok(format!("https://{name}:{}", addr.port()))
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
        Caller::Admin | Caller::Master => Ok(()),
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
        format!("{}/pods/{ns}/{name}/{uid}", access.url(&node_obj)?),
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
                        access.url(node).map_err(|e| e.to_string())?
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
