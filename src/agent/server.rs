//! The agent's own HTTPS endpoint, reached only by the master (mutual TLS: the client must show
//! a certificate of the cluster CA made for client authentication, which only the master has):
//! container logs, exec (an upgraded connection speaking `execproto`), and image loading.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecResults};
use bollard::query_parameters::{
    AttachContainerOptions, ImportImageOptions, LogsOptions, ResizeContainerTTYOptions,
};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use super::plan;
use super::runtime::{Observed, Runtime};
use crate::apiserver::ApiError;
use crate::execproto::{self, Exit, Resize};

pub fn router(rt: Runtime) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/pods/{ns}/{name}/{uid}/log", get(logs))
        .route("/pods/{ns}/{name}/{uid}/exec", post(exec))
        .route("/pods/{ns}/{name}/{uid}/attach", post(attach))
        .route("/pods/{ns}/{name}/{uid}/portforward", post(portforward))
        .route("/images/load", post(load))
        .with_state(Arc::new(rt))
}

/// The container `container` of pod `uid`: its newest attempt, or the one before.
async fn find(
    rt: &Runtime,
    ns: &str,
    name: &str,
    uid: &str,
    container: &str,
    previous: bool,
) -> Result<Observed, ApiError> {
    let all = rt
        .list(Some(uid))
        .await
        .map_err(|e| ApiError::Internal(e.0))?;
    let cur = plan::latest(&all, container).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "container {container:?} in pod {ns}/{name} has not been created on this node (yet)"
        ))
    })?;
    if !previous {
        return Ok(cur.clone());
    }
    all.iter()
        .filter(|o| o.container == container && o.attempt < cur.attempt)
        .max_by_key(|o| o.attempt)
        .cloned()
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "previous terminated container {container:?} in pod {ns}/{name} not found"
            ))
        })
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

async fn logs(
    State(rt): State<Arc<Runtime>>,
    Path((ns, name, uid)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let container = q.get("container").cloned().unwrap_or_default();
    let o = match find(&rt, &ns, &name, &uid, &container, flag(&q, "previous")).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let tail = match q.get("tailLines") {
        Some(n) if n.parse::<u64>().is_err() => {
            return ApiError::BadRequest(format!("tailLines={n:?} is not a number")).into_response()
        }
        Some(n) => n.clone(),
        None => "all".into(),
    };
    let since = match q.get("since").map(|s| s.parse::<i64>()) {
        Some(Ok(t)) => i32::try_from(t).unwrap_or(i32::MAX),
        Some(Err(_)) => {
            return ApiError::BadRequest("since must be a Unix time in seconds".into())
                .into_response()
        }
        None => 0,
    };
    let stream = rt.docker.logs(
        &o.id,
        Some(LogsOptions {
            follow: flag(&q, "follow"),
            stdout: true,
            stderr: true,
            timestamps: flag(&q, "timestamps"),
            since,
            tail,
            ..Default::default()
        }),
    );
    let body = stream.map(|r| r.map(|l| l.into_bytes()).map_err(std::io::Error::other));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response())
}

/// What an upgraded stream talks to: a new exec in a container, or the container's own process.
enum Target {
    Exec(String),
    Attach(String),
}

async fn exec(
    State(rt): State<Arc<Runtime>>,
    Path((ns, name, uid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    stream(rt, ns, name, uid, raw, req, true).await
}

async fn attach(
    State(rt): State<Arc<Runtime>>,
    Path((ns, name, uid)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> Response {
    stream(rt, ns, name, uid, raw, req, false).await
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    rt: Arc<Runtime>,
    ns: String,
    name: String,
    uid: String,
    raw: Option<String>,
    mut req: Request,
    is_exec: bool,
) -> Response {
    let mut container = String::new();
    let mut command = Vec::new();
    let (mut stdin, mut tty) = (false, false);
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "container" => container = v.into_owned(),
            "command" => command.push(v.into_owned()),
            "stdin" => stdin = v == "true",
            "tty" => tty = v == "true",
            _ => {}
        }
    }
    if is_exec && command.is_empty() {
        return ApiError::BadRequest("exec needs a command".into()).into_response();
    }
    let o = match find(&rt, &ns, &name, &uid, &container, false).await {
        Ok(o) if o.state == super::runtime::RunState::Running => o,
        Ok(_) => {
            return ApiError::BadRequest(format!(
                "container {container:?} in pod {ns}/{name} is not running"
            ))
            .into_response()
        }
        Err(e) => return e.into_response(),
    };
    let target = if is_exec {
        let created = rt
            .docker
            .create_exec(
                &o.id,
                CreateExecOptions {
                    cmd: Some(command),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    ..Default::default()
                },
            )
            .await;
        match created {
            Ok(c) => Target::Exec(c.id),
            Err(e) => {
                return ApiError::BadRequest(super::runtime::docker_message(&e)).into_response()
            }
        }
    } else {
        Target::Attach(o.id.clone())
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "stream upgrade failed");
                return;
            }
        };
        let (mut rd, mut wr) = tokio::io::split(io);
        let started = match &target {
            Target::Exec(id) => rt
                .docker
                .start_exec(
                    id,
                    Some(bollard::exec::StartExecOptions {
                        detach: false,
                        tty,
                        output_capacity: None,
                    }),
                )
                .await
                .map(|r| match r {
                    StartExecResults::Attached { output, input } => Some((output, input)),
                    StartExecResults::Detached => None,
                }),
            Target::Attach(id) => rt
                .docker
                .attach_container(
                    id,
                    Some(AttachContainerOptions {
                        stdin,
                        stdout: true,
                        stderr: true,
                        stream: true,
                        logs: true,
                        detach_keys: None,
                    }),
                )
                .await
                .map(|r| Some((r.output, r.input))),
        };
        let (mut output, mut input) = match started {
            Ok(Some(x)) => x,
            Ok(None) => return,
            Err(e) => {
                let exit = Exit {
                    exit_code: None,
                    error: Some(super::runtime::docker_message(&e)),
                };
                let _ = execproto::write_frame(
                    &mut wr,
                    execproto::EXIT,
                    &serde_json::to_vec(&exit).unwrap_or_default(),
                )
                .await;
                return;
            }
        };
        let docker = rt.docker.clone();
        let resize_target = match &target {
            Target::Exec(id) => (true, id.clone()),
            Target::Attach(id) => (false, id.clone()),
        };
        let pump_in = tokio::spawn(async move {
            while let Ok(Some((ch, data))) = execproto::read_frame(&mut rd).await {
                match ch {
                    execproto::STDIN if data.is_empty() => {
                        let _ = input.shutdown().await;
                    }
                    execproto::STDIN => {
                        if input.write_all(&data).await.is_err() {
                            break;
                        }
                        let _ = input.flush().await;
                    }
                    execproto::RESIZE => {
                        if let Ok(r) = serde_json::from_slice::<Resize>(&data) {
                            let _ = match &resize_target {
                                (true, id) => {
                                    docker
                                        .resize_exec(
                                            id,
                                            ResizeExecOptions {
                                                height: r.rows,
                                                width: r.cols,
                                            },
                                        )
                                        .await
                                }
                                (false, id) => {
                                    docker
                                        .resize_container_tty(
                                            id,
                                            ResizeContainerTTYOptions {
                                                h: r.rows as i32,
                                                w: r.cols as i32,
                                            },
                                        )
                                        .await
                                }
                            };
                        }
                    }
                    _ => {}
                }
            }
        });
        while let Some(chunk) = output.next().await {
            let Ok(chunk) = chunk else { break };
            let ch = match chunk {
                bollard::container::LogOutput::StdErr { .. } => execproto::STDERR,
                _ => execproto::STDOUT,
            };
            if execproto::write_frame(&mut wr, ch, &chunk.into_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        pump_in.abort();
        let exit = match &target {
            Target::Exec(id) => match rt.docker.inspect_exec(id).await {
                Ok(i) => Exit {
                    exit_code: Some(i.exit_code.unwrap_or(-1)),
                    error: None,
                },
                Err(e) => Exit {
                    exit_code: None,
                    error: Some(super::runtime::docker_message(&e)),
                },
            },
            Target::Attach(id) => {
                // the stream ends when the process exits; its exit code follows shortly
                let mut exit = Exit {
                    exit_code: None,
                    error: Some(execproto::STILL_RUNNING.into()),
                };
                for _ in 0..50 {
                    match rt.inspect(id).await {
                        Ok(Some(o)) if o.state == super::runtime::RunState::Exited => {
                            exit = Exit {
                                exit_code: Some(o.exit_code),
                                error: None,
                            };
                            break;
                        }
                        Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                        Err(e) => {
                            exit = Exit {
                                exit_code: None,
                                error: Some(e.0),
                            };
                            break;
                        }
                    }
                }
                exit
            }
        };
        let _ = execproto::write_frame(
            &mut wr,
            execproto::EXIT,
            &serde_json::to_vec(&exit).unwrap_or_default(),
        )
        .await;
        let _ = wr.shutdown().await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut().insert(
        header::UPGRADE,
        HeaderValue::from_static(execproto::PROTOCOL),
    );
    resp
}

/// `POST .../portforward?port=N` with `Upgrade: orkops-portforward.v1`: connects to the port
/// on the pod's address (its sandbox's), then relays that TCP connection on the upgraded one.
async fn portforward(
    State(rt): State<Arc<Runtime>>,
    Path((ns, name, uid)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let port = match q.get("port").map(|p| p.parse::<u16>()) {
        Some(Ok(p)) if p > 0 => p,
        _ => {
            return ApiError::BadRequest("port must be a port number from 1 to 65535".into())
                .into_response()
        }
    };
    let sandbox = match find(&rt, &ns, &name, &uid, super::runtime::SANDBOX, false).await {
        Ok(o) if o.state == super::runtime::RunState::Running => o,
        Ok(_) => {
            return ApiError::BadRequest(format!("pod {ns}/{name} is not running")).into_response()
        }
        Err(e) => return e.into_response(),
    };
    let Some(ip) = sandbox
        .ip
        .as_deref()
        .and_then(|i| i.parse::<std::net::IpAddr>().ok())
    else {
        return ApiError::BadRequest(format!("pod {ns}/{name} has no address yet")).into_response();
    };
    let addr = std::net::SocketAddr::new(ip, port);
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    );
    let mut tcp = match connect.await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return ApiError::BadRequest(format!(
                "error forwarding port {port} to pod {ns}/{name}: failed to connect to {addr}: {e}"
            ))
            .into_response()
        }
        Err(_) => {
            return ApiError::BadRequest(format!(
                "error forwarding port {port} to pod {ns}/{name}: connecting to {addr} timed out"
            ))
            .into_response()
        }
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(u) => {
                let mut io = TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut io, &mut tcp).await;
            }
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    resp.headers_mut().insert(
        header::UPGRADE,
        HeaderValue::from_static(execproto::PORTFORWARD_PROTOCOL),
    );
    resp
}

/// Loads a `docker save` archive (the request body) into this node's engine.
async fn load(State(rt): State<Arc<Runtime>>, body: Body) -> Response {
    let data = body
        .into_data_stream()
        .filter_map(|r| async move { r.ok() });
    let mut s = rt.docker.import_image_stream(
        ImportImageOptions {
            quiet: false,
            ..Default::default()
        },
        data,
        None,
    );
    let mut loaded = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return ApiError::BadRequest(format!(
                        "the engine refused the image archive: {e}"
                    ))
                    .into_response();
                }
                if let Some(line) = info.stream {
                    if let Some(img) = line
                        .trim()
                        .strip_prefix("Loaded image: ")
                        .or_else(|| line.trim().strip_prefix("Loaded image ID: "))
                    {
                        loaded.push(img.to_string());
                    }
                }
            }
            Err(e) => {
                return ApiError::BadRequest(format!(
                    "the engine refused the image archive: {}",
                    super::runtime::docker_message(&e)
                ))
                .into_response()
            }
        }
    }
    tracing::info!(images = ?loaded, "loaded images");
    axum::Json(serde_json::json!({ "loaded": loaded })).into_response()
}
