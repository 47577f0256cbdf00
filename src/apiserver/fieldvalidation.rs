//! The `fieldValidation` query parameter of writes, as kube-apiserver reads it: `Strict` (the
//! default: a field the kind does not have is refused, naming it), `Warn` (the field is dropped
//! and named in a `Warning` header) and `Ignore`. Kubernetes drops a field silently under
//! `Ignore`; orkops never ignores a field silently, so `Ignore` is `Warn`. Unknown fields are
//! found by walking the body against the kind's OpenAPI schema.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use serde_json::Value;

use super::error::ApiError;
use crate::api::openapi::{definition_name, definitions, resolve};
use crate::api::Kind;

/// How many unknown fields are named one by one in `Warning` headers.
const MAX_WARNINGS: usize = 50;
/// How deep the walk goes into a body (objects are a few levels deep; bodies are bounded).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    Strict,
    Warn,
    Ignore,
}

/// The directive of a request: `Strict` when the parameter is absent, as kube-apiserver has it.
pub fn directive(query: &HashMap<String, String>) -> Result<Directive, ApiError> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("" | "Strict") => Ok(Directive::Strict),
        Some("Warn") => Ok(Directive::Warn),
        Some("Ignore") => Ok(Directive::Ignore),
        Some(other) => Err(ApiError::BadRequest(format!(
            "query parameter fieldValidation={other:?} is not one of Strict, Warn, Ignore"
        ))),
    }
}

/// Applies the request's `fieldValidation` to the body of a create, update or (merge or
/// strategic) patch of `kind`: under `Warn` and `Ignore`, the fields the kind does not have are
/// dropped and each is named in a warning; under `Strict` the body is left for admission to
/// refuse. Other requests pass unchanged.
pub fn prepare(
    method: &Method,
    kind: Option<Kind>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Bytes, Vec<String>), ApiError> {
    let d = directive(query)?;
    let write = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| {
            ct.starts_with("application/json")
                || ct.starts_with("application/merge-patch+json")
                || ct.starts_with("application/strategic-merge-patch+json")
        });
    let (Some(kind), true, true, false) = (kind, write, json_body, d == Directive::Strict) else {
        return Ok((body, Vec::new()));
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&body) else {
        // not JSON: decode refuses it with its own message
        return Ok((body, Vec::new()));
    };
    let dropped = drop_unknown_fields(kind, &mut value);
    if dropped.is_empty() {
        return Ok((body, dropped));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((Bytes::from(bytes), dropped))
}

/// Removes from `body` every field `kind`'s schema does not have, returning their paths
/// (`spec.template.spec.containers[0].foo`). Patch directives (`$patch`, `$setElementOrder/…`)
/// are kept.
pub fn drop_unknown_fields(kind: Kind, body: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(schema) = definitions().get(definition_name(kind)) {
        walk(schema, body, "", &mut out, 0);
    }
    out
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Vec<String>, depth: usize) {
    let s = resolve(schema);
    if depth > MAX_DEPTH
        || s.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
    {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                let unknown: Vec<String> = m
                    .keys()
                    .filter(|k| !k.starts_with('$') && !props.contains_key(*k))
                    .cloned()
                    .collect();
                for k in unknown {
                    m.remove(&k);
                    out.push(join(&k));
                }
                for (k, child) in m.iter_mut() {
                    if let Some(p) = props.get(k) {
                        walk(p, child, &join(k), out, depth + 1);
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m.iter_mut() {
                    walk(ap, child, &join(k), out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = s.get("items") {
                for (i, child) in items.iter_mut().enumerate() {
                    walk(item, child, &format!("{path}[{i}]"), out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// The `Warning` headers naming the dropped fields, as kube-apiserver writes them:
/// `299 - "unknown field \"spec.foo\""`.
pub fn warning_headers(dropped: &[String]) -> Vec<HeaderValue> {
    let mut texts: Vec<String> = dropped
        .iter()
        .take(MAX_WARNINGS)
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if dropped.len() > MAX_WARNINGS {
        texts.push(format!(
            "and {} more unknown fields",
            dropped.len() - MAX_WARNINGS
        ));
    }
    texts
        .iter()
        .filter_map(|t| HeaderValue::from_str(&format!("299 - \"{}\"", t.escape_default())).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_dropped_and_named_with_their_path() {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1,
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"replicas": 2, "foo": true, "template": {"spec": {
                "containers": [{"name": "a", "image": "x", "imagee": "y"}],
                "$setElementOrder/containers": [{"name": "a"}]}}},
        });
        let dropped = drop_unknown_fields(Kind::Deployment, &mut d);
        assert_eq!(
            dropped,
            [
                "bogus",
                "spec.foo",
                "spec.template.spec.containers[0].imagee"
            ]
        );
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(d["metadata"]["labels"]["a"], "b");
        assert!(d["spec"]["template"]["spec"]["$setElementOrder/containers"].is_array());
        let h = warning_headers(&dropped);
        assert_eq!(h[1], "299 - \"unknown field \\\"spec.foo\\\"\"");
    }

    #[test]
    fn the_directive_is_strict_unless_warn_or_ignore() {
        let q = |v: &str| HashMap::from([("fieldValidation".to_string(), v.to_string())]);
        assert_eq!(directive(&HashMap::new()).unwrap(), Directive::Strict);
        assert_eq!(directive(&q("Warn")).unwrap(), Directive::Warn);
        assert_eq!(directive(&q("Ignore")).unwrap(), Directive::Ignore);
        let e = directive(&q("warn")).unwrap_err().to_string();
        assert!(
            e.contains("fieldValidation") && e.contains("Strict, Warn, Ignore"),
            "{e}"
        );
        let body = Bytes::from_static(br#"{"metadata":{"name":"a"},"spec":{"foo":1}}"#);
        let (kept, w) = prepare(
            &Method::POST,
            Some(Kind::Pod),
            &q("Strict"),
            &HeaderMap::new(),
            body.clone(),
        )
        .unwrap();
        assert_eq!((kept, w.len()), (body.clone(), 0));
        let (kept, w) = prepare(
            &Method::POST,
            Some(Kind::Pod),
            &q("Ignore"),
            &HeaderMap::new(),
            body,
        )
        .unwrap();
        assert_eq!(w, ["spec.foo"]);
        assert_eq!(
            kept,
            Bytes::from_static(br#"{"metadata":{"name":"a"},"spec":{}}"#)
        );
    }
}
