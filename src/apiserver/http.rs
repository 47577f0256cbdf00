//! The HTTP layer: authenticates the bearer token, decodes the Kubernetes-shaped path, method,
//! query and body into a typed `Command`, hands it to the engine and encodes the reply. No
//! object logic lives here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use futures::StreamExt;
use serde_json::Value;

use super::auth::Credentials;
use super::engine::{Command, DeleteOptions, Engine, ListQuery, Reply};
use super::error::ApiError;
use crate::api::labels::{self, Selector};
use crate::api::Kind;

pub struct AppState {
    pub engine: Arc<Engine>,
    pub credentials: Arc<Credentials>,
    /// How to reach node agents (logs, exec, image load); None when not configured.
    pub agents: Option<super::proxy::AgentAccess>,
}

pub fn router(state: Arc<AppState>) -> Router {
    use super::proxy;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(proxy::logs))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/exec",
            axum::routing::post(proxy::exec).get(proxy::exec),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/attach",
            axum::routing::post(proxy::attach).get(proxy::attach),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            axum::routing::post(super::portforward::portforward)
                .get(super::portforward::portforward),
        )
        .route(
            "/orkops/v1/images/load",
            axum::routing::post(proxy::load_image),
        )
        .fallback(dispatch)
        .with_state(state)
}

/// The only anonymous endpoint: says whether this master can reach its store.
async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    match st.engine.store().revision().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// Prometheus text for the admin, as kube-apiserver's `/metrics` (only the store list counter
/// so far: how often a full or paged list reached etcd, per resource).
async fn metrics(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    match st.credentials.authenticate(auth, Utc::now()) {
        Ok(c) if c.is_superuser() => {}
        Ok(c) => {
            return ApiError::Forbidden(format!("{c:?} may not read /metrics; only the admin may"))
                .into_response()
        }
        Err(e) => return e.into_response(),
    }
    let mut out = String::from(
        "# HELP apiserver_storage_list_total Number of LIST requests served from storage\n# TYPE apiserver_storage_list_total counter\n",
    );
    for (resource, n) in super::paging::storage_lists() {
        out.push_str(&format!(
            "apiserver_storage_list_total{{resource=\"{resource}\"}} {n}\n"
        ));
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}

async fn dispatch(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let body = match super::body::read(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    // discovery documents are for every authenticated caller, as kube-apiserver's
    // system:discovery role has it
    let discovery = (method == Method::GET)
        .then(|| super::discovery::document(uri.path()))
        .flatten();
    if method == Method::GET && super::openapi::is_openapi_path(uri.path()) {
        return match st.credentials.authenticate(auth, Utc::now()) {
            Ok(_) => super::openapi::serve(uri.path(), &headers),
            Err(e) => e.into_response(),
        };
    }
    let mut warnings = Vec::new();
    let result = match st.credentials.authenticate(auth, Utc::now()) {
        Ok(_) if discovery.is_some() => Ok(Reply::Ok(discovery.unwrap_or_default())),
        Ok(caller) => {
            let kind = parse_path(uri.path()).ok().map(|t| t.kind);
            // YAML and protobuf bodies become JSON first: everything past here reads JSON
            let json = super::fieldvalidation::directive(&query)
                .and_then(|d| super::body::to_json(&method, &mut headers, d, body));
            let prepared = json.and_then(|(body, unknown)| {
                warnings = unknown;
                super::fieldvalidation::prepare(&method, kind, &query, &headers, body)
            });
            let decoded = prepared.and_then(|(body, dropped)| {
                warnings.extend(dropped);
                let cmd = decode(&method, uri.path(), &query, &headers, &body)?;
                Ok((cmd, super::write::options(&query, &headers)?))
            });
            let r = match decoded {
                Ok((cmd, opts)) => st.engine.handle_with(&caller, cmd, &opts).await,
                Err(e) => Err(e),
            };
            tracing::debug!(%method, path = uri.path(), ?caller, ok = r.is_ok(), elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
            r
        }
        Err(e) => {
            tracing::info!(%method, path = uri.path(), "unauthenticated request refused");
            Err(e)
        }
    };
    let mut resp = match result {
        Ok(Reply::Created(v)) => (StatusCode::CREATED, axum::Json(v)).into_response(),
        Ok(Reply::Ok(v)) => (
            StatusCode::OK,
            axum::Json(shaped(&method, uri.path(), &headers, &query, v)),
        )
            .into_response(),
        Ok(Reply::Json(bytes)) => {
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Ok(Reply::Watch(stream)) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json;stream=watch")
            .body(Body::from_stream(stream.map(Ok::<_, Infallible>)))
            .unwrap_or_else(|e| ApiError::Internal(e.to_string()).into_response()),
        Err(e) => e.into_response(),
    };
    for w in super::fieldvalidation::warning_headers(&warnings) {
        resp.headers_mut().append(header::WARNING, w);
    }
    resp
}

/// `POST /orkops/v1/nodes/NAME/join-token` with an optional body
/// `{"instanceID": "i-...", "address": "10.0.0.5"}`.
fn join_token_request(node: &str, body: &Bytes) -> Result<Command, ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        super::body::parse_json(body)?
    };
    let obj = v.as_object().ok_or_else(|| {
        ApiError::BadRequest("the body must be a JSON object {\"instanceID\", \"address\"}".into())
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["instanceID", "address"].contains(&k.as_str()))
    {
        return Err(ApiError::BadRequest(format!(
            "unknown field {k:?} in the join-token request (known: instanceID, address)"
        )));
    }
    let text = |k: &str| -> Result<String, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::BadRequest(format!("{k} must be a string"))),
        }
    };
    Ok(Command::IssueJoinToken {
        node: node.to_string(),
        instance: text("instanceID")?,
        address: text("address")?,
    })
}

/// Where a request points: a kind, maybe a namespace, maybe a name, maybe `status`.
#[derive(Debug, PartialEq)]
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let not_found = || ApiError::PathNotFound(format!("no API resource at {path}"));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Err(not_found()),
    };
    let kind_of = |plural: &str| {
        Kind::from_path(&gv, plural).ok_or_else(|| {
            ApiError::PathNotFound(format!(
                "the server has no resource {plural:?} in {gv} (see `orkops api-resources`)"
            ))
        })
    };
    let (kind, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if *plural != "status" => {
            let kind = kind_of(plural)?;
            if !kind.namespaced() {
                return Err(ApiError::PathNotFound(format!(
                    "{kind} is not namespaced: use {}",
                    kind.path(None, None)
                )));
            }
            (kind, Some(ns.to_string()), tail)
        }
        [plural, tail @ ..] => (kind_of(plural)?, None, tail),
        [] => return Err(not_found()),
    };
    let (name, status) = match tail {
        [] => (None, false),
        [name] => (Some(name.to_string()), false),
        [name, "status"] => (Some(name.to_string()), true),
        [_, sub] => {
            return Err(ApiError::PathNotFound(format!(
                "{kind} has no subresource {sub:?}"
            )))
        }
        _ => return Err(not_found()),
    };
    Ok(Target {
        kind,
        namespace,
        name,
        status,
    })
}

pub(super) const QUERY_PARAMS: &[&str] = &[
    "labelSelector",
    "fieldSelector",
    "watch",
    "resourceVersion",
    "timeoutSeconds",
    "gracePeriodSeconds",
    // lists are paged as kube-apiserver pages them (see `paging`)
    "limit",
    "continue",
    "resourceVersionMatch",
    "allowWatchBookmarks",
    "sendInitialEvents",
    // Tables (see `table`)
    "includeObject",
    // Strict (the default), Warn or Ignore: see fieldvalidation.rs
    "fieldValidation",
    // write parameters (see write.rs)
    "fieldManager",
    "dryRun",
    "force",
    "propagationPolicy",
];

/// The POST-only endpoints outside the object paths: a node's token, join token and
/// certificate, and a pod's binding and eviction. `None` for every other path.
fn post_only_command(
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Result<Option<Command>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let known = matches!(
        segs.as_slice(),
        [
            "orkops",
            "v1",
            "nodes",
            _,
            "token" | "join-token" | "certificate"
        ] | [
            "api",
            "v1",
            "namespaces",
            _,
            "pods",
            _,
            "binding" | "eviction"
        ]
    );
    if !known {
        return Ok(None);
    }
    if *method != Method::POST {
        return Err(ApiError::MethodNotAllowed(format!(
            "{method} is not allowed on {path}: use POST"
        )));
    }
    let cmd = match segs.as_slice() {
        ["orkops", "v1", "nodes", node, "token"] => Command::IssueNodeToken {
            node: node.to_string(),
        },
        ["orkops", "v1", "nodes", node, "join-token"] => {
            return join_token_request(node, body).map(Some)
        }
        ["orkops", "v1", "nodes", node, "certificate"] => {
            let v: Value = super::body::parse_json(body)?;
            let csr = v["csr"].as_str().ok_or_else(|| {
                ApiError::BadRequest("the body needs \"csr\": a PEM certificate request".into())
            })?;
            Command::SignNodeCertificate {
                node: node.to_string(),
                csr: csr.to_string(),
            }
        }
        [_, _, _, ns, _, name, "eviction"] => {
            return super::eviction::decode(ns, name, body).map(Some)
        }
        [_, _, _, ns, _, name, _] => {
            let v: Value = super::body::parse_json(body)?;
            let node = v
                .pointer("/target/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::BadRequest("a Binding needs target.name: the node".into())
                })?;
            Command::Bind {
                namespace: ns.to_string(),
                name: name.to_string(),
                node: node.to_string(),
                uid: v
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(cmd))
}

fn decode(
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Command, ApiError> {
    if let Some(unknown) = query.keys().find(|k| !QUERY_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "unsupported query parameter {unknown:?} (supported: {})",
            QUERY_PARAMS.join(", ")
        )));
    }
    if let Some(cmd) = post_only_command(method, path, body)? {
        return Ok(cmd);
    }
    if let Some(parent) = path.trim_end_matches('/').strip_suffix("/scale") {
        if let Ok(Target {
            kind,
            namespace,
            name: Some(name),
            status: false,
        }) = parse_path(parent)
        {
            return super::scale::decode(method, kind, namespace, name, headers, body);
        }
    }
    let t = parse_path(path)?;
    let Target {
        kind,
        namespace,
        name,
        status,
    } = t;
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Err(ApiError::BadRequest("the request needs a JSON body".into()));
        }
        super::body::parse_json(body)
    };
    let int = |key: &str| query_int(query, key);
    let not_allowed =
        |what: &str| ApiError::MethodNotAllowed(format!("{method} is not allowed on {what}"));
    match (method.clone(), name, status) {
        (Method::GET, None, false) => {
            let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
            let q = ListQuery {
                paging: super::paging::Paging::from_query(
                    query,
                    watch,
                    query.get("resourceVersion").map(String::as_str),
                    non_negative(int("limit")?, "limit")?,
                )?,
                output: table_output(kind, headers, query)?,
                labels: Selector::parse(
                    query.get("labelSelector").map(String::as_str).unwrap_or(""),
                )
                .map_err(|e| ApiError::BadRequest(format!("labelSelector: {e}")))?,
                fields: labels::parse_field_selector(
                    query.get("fieldSelector").map(String::as_str).unwrap_or(""),
                )
                .map_err(ApiError::BadRequest)?,
                resource_version: non_negative(int("resourceVersion")?, "resourceVersion")?,
                timeout: non_negative(int("timeoutSeconds")?, "timeoutSeconds")?
                    .map(|s| Duration::from_secs(s as u64)),
            };
            Ok(if watch {
                Command::Watch {
                    kind,
                    namespace,
                    query: q,
                }
            } else {
                Command::List {
                    kind,
                    namespace,
                    query: q,
                }
            })
        }
        (Method::GET, Some(name), _) => Ok(Command::Get {
            kind,
            namespace,
            name,
        }),
        (Method::POST, None, false) => Ok(Command::Create {
            kind,
            namespace,
            body: json_body()?,
        }),
        (Method::PUT, Some(name), false) => Ok(Command::Replace {
            kind,
            namespace,
            name,
            body: json_body()?,
        }),
        (Method::PUT, Some(name), true) => Ok(Command::ReplaceStatus {
            kind,
            namespace,
            name,
            body: json_body()?,
        }),
        (Method::PATCH, Some(name), status) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let patch_type = super::write::PatchType::from_content_type(ct)?;
            let patch = match patch_type {
                super::write::PatchType::Apply => {
                    if !query.contains_key("fieldManager") {
                        return Err(ApiError::BadRequest(
                            "fieldManager is required for apply requests (kubectl apply --server-side sends one)".into(),
                        ));
                    }
                    super::write::apply_body(body)?
                }
                _ => json_body()?,
            };
            Ok(Command::Patch {
                kind,
                namespace,
                name,
                patch,
                patch_type,
                status,
            })
        }
        (Method::DELETE, Some(name), false) => {
            let mut options = DeleteOptions {
                grace_period_seconds: int("gracePeriodSeconds")?,
                ..Default::default()
            };
            if let Some(p) = query.get("propagationPolicy") {
                options.propagation = super::write::propagation(p)?;
            }
            if !body.iter().all(u8::is_ascii_whitespace) {
                let b = super::write::delete_body(&json_body()?)?;
                options.grace_period_seconds =
                    b.grace_period_seconds.or(options.grace_period_seconds);
                options.precondition_resource_version = b.precondition_resource_version;
                options.precondition_uid = b.precondition_uid;
                options.propagation = b.propagation.unwrap_or(options.propagation);
                options.dry_run = b.dry_run;
            }
            Ok(Command::Delete {
                kind,
                namespace,
                name,
                options,
            })
        }
        (_, None, _) => Err(not_allowed(&format!(
            "a {kind} collection (use GET or POST)"
        ))),
        (_, Some(_), true) => Err(not_allowed("a status subresource (use GET, PUT or PATCH)")),
        (_, Some(_), false) => Err(not_allowed(&format!(
            "a {kind} (use GET, PUT, PATCH or DELETE)"
        ))),
    }
}

/// The output a GET asks for (`Accept`, `includeObject`): the objects or a Table.
fn table_output(
    kind: Kind,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<super::table::Output, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    super::table::negotiate(kind, accept, query.get("includeObject").map(String::as_str))
}

/// A single object read back as the request asks: a GET of one object (not `status`) that
/// asks for a Table gets a Table of one row.
fn shaped(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    obj: Value,
) -> Value {
    let target = (*method == Method::GET)
        .then(|| parse_path(path).ok())
        .flatten();
    match target {
        Some(Target {
            kind,
            name: Some(_),
            status: false,
            ..
        }) => match table_output(kind, headers, query) {
            Ok(super::table::Output::Table {
                kind,
                version,
                include,
            }) => super::table::single(kind, &obj, version, include),
            _ => obj,
        },
        _ => obj,
    }
}

/// An integer query parameter: absent or empty is None; anything but a decimal i64 (also one
/// past its range) is a 400 naming the parameter.
fn query_int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(key)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>().map_err(|e| {
                ApiError::BadRequest(format!(
                    "query parameter {key}={v:?} is not an integer from {} to {}: {e}",
                    i64::MIN,
                    i64::MAX
                ))
            })
        })
        .transpose()
}

/// Refuses a negative value of the integer query parameter `key`.
fn non_negative(v: Option<i64>, key: &str) -> Result<Option<i64>, ApiError> {
    match v {
        Some(n) if n < 0 => Err(ApiError::BadRequest(format!(
            "query parameter {key}={n} must not be negative"
        ))),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_query_parameters_are_parsed_without_overflow() {
        let q = |v: &str| HashMap::from([("resourceVersion".to_string(), v.to_string())]);
        let max = i64::MAX.to_string();
        assert_eq!(
            query_int(&q(&max), "resourceVersion").unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(query_int(&q(""), "resourceVersion").unwrap(), None);
        for bad in [
            "9223372036854775808",
            "-9223372036854775809",
            "abc",
            "1e3",
            " 1",
        ] {
            let e = query_int(&q(bad), "resourceVersion").unwrap_err();
            assert!(
                matches!(&e, ApiError::BadRequest(m) if m.contains("resourceVersion")),
                "{bad}: {e}"
            );
        }
        let e = non_negative(Some(-1), "resourceVersion").unwrap_err();
        assert!(e
            .to_string()
            .contains("resourceVersion=-1 must not be negative"));
        assert_eq!(non_negative(Some(0), "timeoutSeconds").unwrap(), Some(0));
    }

    #[test]
    fn paths_decode_to_targets() {
        let t = parse_path("/api/v1/namespaces/default/pods/web/status").unwrap();
        assert_eq!(
            t,
            Target {
                kind: Kind::Pod,
                namespace: Some("default".into()),
                name: Some("web".into()),
                status: true
            }
        );
        let t = parse_path("/api/v1/namespaces/dev").unwrap();
        assert_eq!(
            t,
            Target {
                kind: Kind::Namespace,
                namespace: None,
                name: Some("dev".into()),
                status: false
            }
        );
        let t = parse_path("/api/v1/namespaces/dev/status").unwrap();
        assert_eq!(
            t,
            Target {
                kind: Kind::Namespace,
                namespace: None,
                name: Some("dev".into()),
                status: true
            }
        );
        let t = parse_path("/apis/apps/v1/deployments").unwrap();
        assert_eq!(
            t,
            Target {
                kind: Kind::Deployment,
                namespace: None,
                name: None,
                status: false
            }
        );
        assert!(parse_path("/api/v1/namespaces/x/nodes").is_err());
        assert!(parse_path("/apis/autoscaling/v2/namespaces/x/horizontalpodautoscalers").is_err());
        assert!(parse_path("/api/v1/namespaces/x/pods/p/exec").is_err());
        assert!(parse_path("/metrics").is_err());
    }
}
