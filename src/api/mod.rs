//! The object model: the kinds orkops serves, in the Kubernetes JSON shape, with their
//! defaults, validation and selectors. Shared by the master, the agent and the CLI.

pub mod admit;
pub mod columns;
pub mod coordination;
pub mod core;
pub mod cron;
pub mod kinds;
pub mod labels;
pub mod managed;
pub mod meta;
pub mod openapi;
pub mod podfields;
pub mod policy;
pub mod protobuf;
pub mod smp;
pub mod statefulset;
pub mod storage;
pub mod workloads;

pub use admit::{admit, FieldError, Object};
pub use kinds::Kind;
pub use meta::{ObjectMeta, Time};

use serde_json::Value;

/// The Kubernetes minor version whose API orkops follows (kubectl warns past one minor of skew).
pub const KUBE_MINOR: &str = "32";

/// The semver version orkops reports for its API server, and for its agents as the kubelet's
/// and kube-proxy's.
pub fn git_version() -> String {
    format!("v1.{KUBE_MINOR}.0-orkops.{}", env!("CARGO_PKG_VERSION"))
}

/// `metadata.name` of a JSON object, or "".
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace` of a JSON object, or "".
pub fn namespace_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion` of a JSON object, parsed.
pub fn resource_version_of(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// Removes the metadata fields the server owns (a user's manifest does not set them).
pub fn clear_server_fields(obj: &mut Value) {
    for f in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ] {
        set_meta(obj, f, Value::Null);
    }
}

/// Annotation prefixes the controllers own on the objects users write (a Deployment's
/// `deployment.kubernetes.io/revision`): a client replacing an object with its manifest keeps
/// them, as `kubectl apply` does for what the last applied configuration did not set.
const CONTROLLER_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/",
    // a claim's binding and placement (`pv.kubernetes.io/bind-completed`,
    // `volume.kubernetes.io/selected-node`)
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
];

/// Copies onto `body` the controller-owned annotations of `current` that `body` does not set.
pub fn keep_controller_annotations(body: &mut Value, current: &Value) {
    let Some(theirs) = current
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return;
    };
    for (k, v) in theirs {
        if !CONTROLLER_ANNOTATIONS.iter().any(|p| k.starts_with(p)) {
            continue;
        }
        if body
            .pointer("/metadata/annotations")
            .is_none_or(|a| !a.is_object())
        {
            set_meta(body, "annotations", Value::Object(Default::default()));
        }
        if let Some(mine) = body
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            mine.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Sets `metadata.<field>` on a JSON object, creating `metadata` when absent.
pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(m) = meta.as_object_mut() {
            if value.is_null() {
                m.remove(field);
            } else {
                m.insert(field.to_string(), value);
            }
        }
    }
}

/// The object an event is about.
pub struct About<'a> {
    pub ns: &'a str,
    pub kind: Kind,
    pub name: &'a str,
    pub uid: Option<&'a str>,
}

/// A new Event about `about`, from `component` (on `host`), named by the server.
pub fn new_event(
    about: About<'_>,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
    host: Option<&str>,
) -> Value {
    let now = chrono::Utc::now();
    let About {
        ns,
        kind,
        name,
        uid,
    } = about;
    let mut source = serde_json::json!({"component": component});
    if let Some(h) = host {
        source["host"] = serde_json::json!(h);
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "involvedObject": {"apiVersion": kind.api_version(), "kind": kind.name(),
            "namespace": ns, "name": name, "uid": uid},
        "reason": reason, "message": message, "type": type_, "count": 1,
        "firstTimestamp": now, "lastTimestamp": now, "source": source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replacing_client_keeps_the_controllers_annotations_only() {
        let current = json!({"metadata": {"annotations": {
            "deployment.kubernetes.io/revision": "4", "team": "old"}}});
        let mut body = json!({"metadata": {"name": "web"}});
        keep_controller_annotations(&mut body, &current);
        assert_eq!(
            body["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/revision": "4"})
        );
        let mut mine =
            json!({"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}});
        keep_controller_annotations(&mut mine, &current);
        assert_eq!(
            mine["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
    }
}
