//! The OpenAPI documents kube-apiserver serves, built once from `api::openapi`'s schemas:
//! `/openapi/v3` (the index of group versions), `/openapi/v3/api/v1`, `/openapi/v3/apis/G/V`
//! (schemas and paths whose operations list the query parameters orkops accepts — kubectl
//! looks for `fieldValidation` there), and `/openapi/v2` (as protobuf, which is what client-go
//! asks for, or JSON). Every document has an ETag; a matching `If-None-Match` gets a 304.

use std::sync::LazyLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::api::openapi::{self as schemas, definition_name, REF_PREFIX};
use crate::api::Kind;

/// The query parameters each operation accepts, as `decode` in `http.rs` reads them.
const LIST_PARAMS: &[&str] = &[
    "labelSelector",
    "fieldSelector",
    "watch",
    "resourceVersion",
    "timeoutSeconds",
    "limit",
];
const WRITE_PARAMS: &[&str] = &["fieldValidation", "fieldManager", "dryRun", "force"];
const DELETE_PARAMS: &[&str] = &["gracePeriodSeconds", "propagationPolicy", "dryRun"];
/// The patch content types `decode` in `http.rs` accepts.
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// Every query parameter an operation advertises (they must all be accepted by `decode`).
pub fn advertised_params() -> impl Iterator<Item = &'static str> {
    LIST_PARAMS
        .iter()
        .chain(WRITE_PARAMS)
        .chain(DELETE_PARAMS)
        .copied()
}

/// A document ready to send: its bytes, content type and ETag.
struct Doc {
    body: Vec<u8>,
    content_type: &'static str,
    etag: String,
}

impl Doc {
    fn new(body: Vec<u8>, content_type: &'static str) -> Doc {
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        Doc {
            etag: hex::encode_upper(digest.as_ref()),
            body,
            content_type,
        }
    }
    fn json(v: &Value) -> Doc {
        Doc::new(
            serde_json::to_vec(v).unwrap_or_default(),
            "application/json",
        )
    }
}

/// The group versions served, as the v3 index names them (`api/v1`, `apis/apps/v1`).
fn group_versions() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in Kind::all() {
        if !out.contains(&k.api_version()) {
            out.push(k.api_version());
        }
    }
    out
}

fn index_key(gv: &str) -> String {
    if gv == "v1" {
        "api/v1".into()
    } else {
        format!("apis/{gv}")
    }
}

static V3_VALUES: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    group_versions()
        .into_iter()
        .map(|gv| (index_key(gv), v3_document(gv)))
        .collect()
});

/// The v3 document of every group version, keyed as the index names them (`apis/apps/v1`).
pub(super) fn v3_documents() -> &'static [(String, Value)] {
    &V3_VALUES
}

static V3: LazyLock<Vec<(String, Doc)>> = LazyLock::new(|| {
    v3_documents()
        .iter()
        .map(|(key, v)| (key.clone(), Doc::json(v)))
        .collect()
});

static V3_INDEX: LazyLock<Doc> = LazyLock::new(|| {
    let paths: Map<String, Value> = V3
        .iter()
        .map(|(key, doc)| {
            let url = format!("/openapi/v3/{key}?hash={}", doc.etag);
            (key.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    Doc::json(&json!({"paths": paths}))
});

static V2_JSON: LazyLock<Doc> = LazyLock::new(|| Doc::json(&super::openapi_v2::document()));
static V2_PROTO: LazyLock<Doc> = LazyLock::new(|| {
    Doc::new(
        super::openapi_v2::protobuf(&super::openapi_v2::document()),
        // what kube-openapi answers the protobuf Accept with: Go's MIME parser refuses the
        // `@` of the requested type
        "application/octet-stream",
    )
});

/// Whether `path` is an OpenAPI document path (answered by [`serve`]).
pub fn is_openapi_path(path: &str) -> bool {
    path == "/openapi/v2" || path == "/openapi/v3" || path.starts_with("/openapi/v3/")
}

/// Answers `GET` of an OpenAPI path for an authenticated caller.
pub fn serve(path: &str, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let doc: &Doc = match path {
        "/openapi/v3" => &V3_INDEX,
        "/openapi/v2" if accept.contains("protobuf") => &V2_PROTO,
        "/openapi/v2" => &V2_JSON,
        p => match V3
            .iter()
            .find(|(k, _)| p.strip_prefix("/openapi/v3/") == Some(k))
        {
            Some((_, d)) => d,
            None => {
                return ApiError::PathNotFound(format!(
                    "no OpenAPI document at {p} (see /openapi/v3 for the group versions)"
                ))
                .into_response()
            }
        },
    };
    let etag = format!("\"{}\"", doc.etag);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(doc.content_type),
            )],
            doc.body.clone(),
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{name}")})
}

fn content(name: &str) -> Value {
    json!({"application/json": {"schema": schema_ref(name)}})
}

fn query_param(name: &str) -> Value {
    let (ty, doc) = match name {
        "limit" | "timeoutSeconds" | "gracePeriodSeconds" => ("integer", ""),
        "watch" => ("boolean", ""),
        "fieldValidation" => ("string", "How the server treats unknown fields in the body: Strict (refused, the default), Warn or Ignore (dropped, with a Warning header naming each: orkops never ignores a field silently)."),
        "fieldManager" => ("string", "The name of the actor making the change."),
        _ => ("string", ""),
    };
    json!({"name": name, "in": "query", "description": doc, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

/// One operation on `kind`: its action, the query parameters, a body of `body_types`, and
/// what it answers.
fn operation(
    kind: Kind,
    action: &str,
    op_id: String,
    params: &[&str],
    body_types: &[&str],
    answers: &str,
) -> Value {
    let (group, version) = kind.api_version().split_once('/').unwrap_or(("", "v1"));
    let mut op = json!({
        "operationId": op_id,
        "description": format!("{action} {}", kind.name()),
        "parameters": params.iter().map(|p| query_param(p)).collect::<Vec<_>>(),
        "responses": {
            "200": {"description": "OK", "content": content(answers)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": kind.name()},
    });
    if !body_types.is_empty() {
        let body_schema = if action == "patch" {
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".to_string()
        } else if action == "delete" {
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".to_string()
        } else {
            definition_name(kind).to_string()
        };
        let types: Map<String, Value> = body_types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema_ref(&body_schema)})))
            .collect();
        op["requestBody"] = json!({"content": types, "required": action != "delete"});
    }
    if action == "post" {
        op["responses"]["201"] = json!({"description": "Created", "content": content(answers)});
    }
    op
}

/// The paths of `kind`: the collection, the object, its status, and the list across
/// namespaces.
fn kind_paths(kind: Kind, paths: &mut Map<String, Value>) {
    let name = kind.name();
    let def = definition_name(kind);
    let list = format!("{def}List");
    let ns_word = if kind.namespaced() { "Namespaced" } else { "" };
    let collection = kind.path(Some("{namespace}"), None);
    let mut path_params = Vec::new();
    if kind.namespaced() {
        path_params.push(path_param("namespace"));
    }
    paths.insert(
        collection.clone(),
        json!({
            "parameters": path_params.clone(),
            "get": operation(kind, "list", format!("list{ns_word}{name}"), LIST_PARAMS, &[], &list),
            "post": operation(kind, "post", format!("create{ns_word}{name}"), WRITE_PARAMS, &["application/json"], def),
        }),
    );
    path_params.push(path_param("name"));
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "parameters": path_params.clone(),
            "get": operation(kind, "get", format!("read{ns_word}{name}"), &[], &[], def),
            "put": operation(kind, "put", format!("replace{ns_word}{name}"), WRITE_PARAMS, &["application/json"], def),
            "patch": operation(kind, "patch", format!("patch{ns_word}{name}"), WRITE_PARAMS, PATCH_TYPES, def),
            "delete": operation(kind, "delete", format!("delete{ns_word}{name}"), DELETE_PARAMS, &["application/json"], def),
        }),
    );
    if kind.has_status() {
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "parameters": path_params,
                "get": operation(kind, "get", format!("read{ns_word}{name}Status"), &[], &[], def),
                "put": operation(kind, "put", format!("replace{ns_word}{name}Status"), WRITE_PARAMS, &["application/json"], def),
                "patch": operation(kind, "patch", format!("patch{ns_word}{name}Status"), WRITE_PARAMS, PATCH_TYPES, def),
            }),
        );
    }
    if kind.namespaced() {
        paths.insert(
            kind.path(None, None),
            json!({"get": operation(kind, "list", format!("list{name}ForAllNamespaces"), LIST_PARAMS, &[], &list)}),
        );
    }
}

/// The OpenAPI v3 document of one group version: its kinds' paths and every schema they
/// refer to.
fn v3_document(group_version: &str) -> Value {
    let kinds: Vec<Kind> = Kind::all()
        .filter(|k| k.api_version() == group_version)
        .collect();
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions".into(),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
    ];
    for kind in &kinds {
        kind_paths(*kind, &mut paths);
        roots.push(definition_name(*kind).into());
        roots.push(format!("{}List", definition_name(*kind)));
    }
    let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
    let defs = schemas::definitions();
    let components: Map<String, Value> = schemas::closure(&roots)
        .into_iter()
        .filter_map(|n| defs.get(&n).map(|d| (n, d.clone())))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.32.0-orkops.{}", env!("CARGO_PKG_VERSION"))},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: Response) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        })
    }

    #[test]
    fn the_index_lists_every_group_version_with_a_hash_and_documents_answer_etags() {
        let index: Value =
            serde_json::from_slice(&body(serve("/openapi/v3", &HeaderMap::new()))).unwrap();
        for key in ["api/v1", "apis/apps/v1", "apis/batch/v1"] {
            let url = index["paths"][key]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                "{url}"
            );
        }
        let resp = serve("/openapi/v3/apis/apps/v1", &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::OK);
        let etag = resp.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            serve("/openapi/v3/apis/apps/v1", &h).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            serve("/openapi/v3/apis/networking.k8s.io/v1", &h).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn every_advertised_query_parameter_is_accepted_by_decode() {
        for p in advertised_params() {
            assert!(super::super::http::QUERY_PARAMS.contains(&p), "{p}");
        }
    }

    #[test]
    fn patch_operations_advertise_field_validation_and_every_ref_is_in_the_document() {
        let doc = v3_document("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let params: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"fieldValidation"), "{params:?}");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        // apps refers to core's pod template and meta's ObjectMeta: both are in the document
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        for r in text.split(&format!("\"{REF_PREFIX}")).skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referred to but missing"
            );
        }
    }
}
