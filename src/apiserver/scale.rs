//! The `autoscaling/v1` Scale subresource of Deployments, ReplicaSets, StatefulSets and
//! ReplicationControllers
//! (`.../deployments/NAME/scale`): `spec.replicas` read and written through a small object of
//! its own, with `status.replicas` and the pod selector as a string, as kube-apiserver serves it
//! to `kubectl scale`, the client libraries and autoscalers. A write is a compare-and-swap
//! replace of the parent's `spec.replicas`, so the parent's admission and generation apply.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method};
use serde_json::{json, Value};

use super::engine::{merge_patch, Command, Engine, Reply};
use super::{ApiError, Caller};
use crate::api::admit::FieldError;
use crate::api::labels::Selector;
use crate::api::meta::LabelSelector;
use crate::api::Kind;

/// What a request does with a Scale.
#[derive(Debug)]
pub enum ScaleOp {
    Get,
    /// PUT: a whole Scale; a `metadata.resourceVersion` in it is a precondition.
    Replace(Value),
    /// PATCH: a JSON merge patch (a strategic merge patch of a Scale is the same thing: a
    /// Scale has no lists).
    Patch(Value),
}

/// The kinds with a scale subresource.
pub fn scalable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet | Kind::ReplicationController
    )
}

/// Decodes a request on `.../NAME/scale` into a command.
pub fn decode(
    method: &Method,
    kind: Kind,
    namespace: Option<String>,
    name: String,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Command, ApiError> {
    if !scalable(kind) {
        return Err(ApiError::PathNotFound(format!(
            "{kind} has no subresource \"scale\" (only deployments, replicasets, statefulsets and replicationcontrollers have one)"
        )));
    }
    let json_body = || -> Result<Value, ApiError> {
        if body.is_empty() {
            return Err(ApiError::BadRequest("the request needs a JSON body".into()));
        }
        super::body::parse_json(body)
    };
    let op = match *method {
        Method::GET => ScaleOp::Get,
        Method::PUT => ScaleOp::Replace(json_body()?),
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let merge = [
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/json",
            ];
            if !merge.iter().any(|m| ct.starts_with(m)) {
                return Err(ApiError::BadRequest(format!(
                    "patch content type {ct:?} is not supported on a scale subresource: send a merge patch (application/merge-patch+json) such as {{\"spec\":{{\"replicas\":3}}}}"
                )));
            }
            ScaleOp::Patch(json_body()?)
        }
        _ => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{method} is not allowed on a scale subresource (use GET, PUT or PATCH)"
            )))
        }
    };
    Ok(Command::Scale {
        kind,
        namespace,
        name,
        op,
    })
}

/// The Scale of a deployment, replica set or stateful set.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    let mut m = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            m.insert(f.into(), v.clone());
        }
    }
    let raw = obj.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    // a ReplicationController's selector is a plain map of labels
    let selector: LabelSelector = if obj.get("kind") == Some(&json!("ReplicationController")) {
        LabelSelector {
            match_labels: serde_json::from_value(raw).unwrap_or_default(),
            match_expressions: Vec::new(),
        }
    } else {
        serde_json::from_value(raw).unwrap_or_default()
    };
    let selector = Selector::from_label_selector(&selector)
        .map(|s| s.to_string())
        .unwrap_or_default();
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": m,
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// Checks a Scale as kube-apiserver does; returns its `spec.replicas` and its pinned
/// `resourceVersion`, if any.
fn check(kind: Kind, name: &str, scale: &Value) -> Result<(i64, Option<String>), ApiError> {
    let invalid = |field: &str, message: String| ApiError::Invalid {
        kind,
        name: name.to_string(),
        causes: vec![FieldError {
            field: field.into(),
            message,
        }],
    };
    if !scale.is_object() {
        return Err(ApiError::BadRequest("a Scale must be a JSON object".into()));
    }
    if let Some(k) = scale.get("kind").and_then(Value::as_str) {
        if k != "Scale" {
            return Err(ApiError::BadRequest(format!(
                "kind {k:?}: the scale subresource takes an autoscaling/v1 Scale"
            )));
        }
    }
    match scale.pointer("/metadata/name").and_then(Value::as_str) {
        Some(n) if n != name => {
            return Err(invalid(
                "metadata.name",
                format!("{n:?} does not match the name in the URL ({name:?})"),
            ))
        }
        _ => {}
    }
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            invalid(
                "spec.replicas",
                format!("invalid value {v}: must be an integer"),
            )
        })?,
    };
    if replicas < 0 {
        return Err(invalid(
            "spec.replicas",
            format!("invalid value {replicas}: must be greater than or equal to 0"),
        ));
    }
    if replicas > i64::from(i32::MAX) {
        return Err(invalid(
            "spec.replicas",
            format!("invalid value {replicas}: must be <= {}", i32::MAX),
        ));
    }
    let rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok((replicas, rv))
}

/// Serves a Scale command: reads the parent, and for a write replaces its `spec.replicas` at
/// the resourceVersion it was read at (again, five times at most, when a concurrent write wins
/// and the caller pinned none).
pub async fn handle(
    engine: &Engine,
    caller: &Caller,
    kind: Kind,
    namespace: Option<String>,
    name: String,
    op: ScaleOp,
) -> Result<Reply, ApiError> {
    let get = || Command::Get {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
    };
    for _ in 0..5 {
        let Reply::Ok(current) = Box::pin(engine.handle(caller, get())).await? else {
            return Err(ApiError::Internal(
                "a get answered with something else".into(),
            ));
        };
        let wanted = match &op {
            ScaleOp::Get => return Ok(Reply::Ok(scale_of(&current))),
            ScaleOp::Replace(body) => body.clone(),
            ScaleOp::Patch(patch) => {
                if !patch.is_object() {
                    return Err(ApiError::BadRequest(
                        "a merge patch must be a JSON object".into(),
                    ));
                }
                let mut s = scale_of(&current);
                if let Some(m) = s["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                merge_patch(&mut s, patch);
                s
            }
        };
        let (replicas, pinned) = check(kind, &name, &wanted)?;
        let mut new = current.clone();
        new["spec"]["replicas"] = json!(replicas);
        if let Some(rv) = &pinned {
            new["metadata"]["resourceVersion"] = json!(rv);
        }
        let replace = Command::Replace {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            body: new,
        };
        match Box::pin(engine.handle(caller, replace)).await {
            Ok(Reply::Ok(v)) => return Ok(Reply::Ok(scale_of(&v))),
            Ok(_) => {
                return Err(ApiError::Internal(
                    "an update answered with something else".into(),
                ))
            }
            Err(ApiError::Conflict(_)) if pinned.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict(format!(
        "{kind} {name:?} is changing too fast to scale; retry"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scale_shows_the_selector_as_a_string_and_is_checked() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "tier": "fe"}}},
            "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["kind"], "Scale");
        assert_eq!(s["apiVersion"], "autoscaling/v1");
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=web,tier=fe");
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        assert_eq!(
            check(Kind::Deployment, "web", &s).unwrap(),
            (3, Some("7".into()))
        );
        let bad = |v: Value| check(Kind::Deployment, "web", &v).unwrap_err().to_string();
        assert!(bad(json!({"spec": {"replicas": -1}})).contains("spec.replicas"));
        assert!(bad(json!({"spec": {"replicas": 1.5}})).contains("spec.replicas"));
        assert!(bad(json!({"spec": {"replicas": 2147483648_i64}})).contains("spec.replicas"));
        assert!(
            bad(json!({"metadata": {"name": "db"}, "spec": {"replicas": 1}}))
                .contains("metadata.name")
        );
        assert!(bad(json!({"kind": "Deployment"})).contains("Scale"));
        let rc = json!({"kind": "ReplicationController", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"app": "web"}}});
        assert_eq!(scale_of(&rc)["status"]["selector"], "app=web");
    }
}
