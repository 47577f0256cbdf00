//! The patch metadata of the kinds orkops serves — upstream's `patchStrategy`/`patchMergeKey`
//! struct tags (and the list types server-side apply reads) — as a small table of OpenAPI v3
//! component schemas in the shape `openapi::definitions()` serves: definitions keyed by
//! upstream name, refs `#/components/schemas/NAME`, `x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type` and `x-kubernetes-list-map-keys` on
//! list fields. Only fields that carry patch metadata (and the paths that lead to them) are
//! listed: every other field merges as a map or is replaced as a list, as upstream does.
//! Until the generated OpenAPI is available the strategic merge patch and server-side apply
//! read this table; both accept any map of this shape.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::Kind;

/// The upstream definition name of a kind: `io.k8s.api.apps.v1.Deployment`.
pub fn definition_name(kind: Kind) -> String {
    let (group, version) = match kind.api_version().split_once('/') {
        Some((g, v)) => (g.split('.').next().unwrap_or(g), v),
        None => ("core", kind.api_version()),
    };
    format!("io.k8s.api.{group}.{version}.{}", kind.name())
}

/// The component schemas, keyed by definition name.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFS: LazyLock<Map<String, Value>> = LazyLock::new(table);
    &DEFS
}

fn r(name: &str) -> Value {
    json!({"allOf": [{"$ref": format!("#/components/schemas/{name}")}]})
}

/// A list merged by `key` (a list-map in server-side apply).
fn by(key: &str, item: Option<&str>) -> Value {
    let mut v = json!({"type": "array", "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": key, "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": [key], "items": {"type": "object"}});
    if let Some(i) = item {
        v["items"] = r(i);
    }
    v
}

/// A list of primitives merged as a set.
fn set() -> Value {
    json!({"type": "array", "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-list-type": "set", "items": {"type": "string"}})
}

fn obj(props: Value) -> Value {
    json!({"type": "object", "properties": props})
}

/// A kind with its metadata, spec and status definitions.
fn top(spec: Option<&str>, status: Option<&str>) -> Value {
    let mut p = json!({"metadata": r("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")});
    if let Some(s) = spec {
        p["spec"] = r(s);
    }
    if let Some(s) = status {
        p["status"] = r(s);
    }
    obj(p)
}

fn table() -> Map<String, Value> {
    const CORE: &str = "io.k8s.api.core.v1.";
    let conditions = || by("type", None);
    let mut m = Map::new();
    let mut put = |name: &str, v: Value| {
        m.insert(name.to_string(), v);
    };
    put(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        obj(json!({
            "finalizers": set(),
            "ownerReferences": by("uid", None),
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "managedFields": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "object"}},
        })),
    );
    put(
        &format!("{CORE}PodSpec"),
        obj(json!({
            "containers": by("name", Some("io.k8s.api.core.v1.Container")),
            "initContainers": by("name", Some("io.k8s.api.core.v1.Container")),
            "volumes": {"type": "array", "x-kubernetes-patch-strategy": "merge,retainKeys",
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
            "imagePullSecrets": by("name", None),
            "hostAliases": by("ip", None),
            "topologySpreadConstraints": by("topologyKey", None),
            "readinessGates": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "object"}},
            "tolerations": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "object"}},
        })),
    );
    put(
        &format!("{CORE}Container"),
        obj(json!({
            "ports": by("containerPort", None),
            "env": by("name", None),
            "volumeMounts": by("mountPath", None),
            "volumeDevices": by("devicePath", None),
        })),
    );
    put(
        &format!("{CORE}PodStatus"),
        obj(
            json!({"conditions": conditions(), "podIPs": by("ip", None), "hostIPs": by("ip", None)}),
        ),
    );
    put(
        &format!("{CORE}PodTemplateSpec"),
        top(Some("io.k8s.api.core.v1.PodSpec"), None),
    );
    put(
        &format!("{CORE}Pod"),
        top(
            Some("io.k8s.api.core.v1.PodSpec"),
            Some("io.k8s.api.core.v1.PodStatus"),
        ),
    );
    put(
        &format!("{CORE}ServiceSpec"),
        obj(
            json!({"ports": {"type": "array", "x-kubernetes-patch-strategy": "merge",
            "x-kubernetes-patch-merge-key": "port", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["port", "protocol"], "items": {"type": "object"}}}),
        ),
    );
    put(
        &format!("{CORE}ServiceStatus"),
        obj(json!({"conditions": conditions()})),
    );
    put(
        &format!("{CORE}Service"),
        top(
            Some("io.k8s.api.core.v1.ServiceSpec"),
            Some("io.k8s.api.core.v1.ServiceStatus"),
        ),
    );
    put(&format!("{CORE}NodeSpec"), obj(json!({"podCIDRs": set()})));
    put(
        &format!("{CORE}NodeStatus"),
        obj(json!({"conditions": conditions(), "addresses": by("type", None)})),
    );
    put(
        &format!("{CORE}Node"),
        top(
            Some("io.k8s.api.core.v1.NodeSpec"),
            Some("io.k8s.api.core.v1.NodeStatus"),
        ),
    );
    for (kind, status) in [
        ("Namespace", "NamespaceStatus"),
        ("PersistentVolumeClaim", "PersistentVolumeClaimStatus"),
    ] {
        put(
            &format!("{CORE}{status}"),
            obj(json!({"conditions": conditions()})),
        );
        put(
            &format!("{CORE}{kind}"),
            top(None, Some(&format!("{CORE}{status}"))),
        );
    }
    for kind in ["ConfigMap", "Secret", "Endpoints", "Event"] {
        put(&format!("{CORE}{kind}"), top(None, None));
    }
    put(
        "io.k8s.api.apps.v1.DeploymentSpec",
        obj(json!({
            "template": r("io.k8s.api.core.v1.PodTemplateSpec"),
            "strategy": {"allOf": [{"type": "object"}], "x-kubernetes-patch-strategy": "retainKeys"},
        })),
    );
    put(
        "io.k8s.api.apps.v1.DeploymentStatus",
        obj(json!({"conditions": conditions()})),
    );
    put(
        "io.k8s.api.apps.v1.Deployment",
        top(
            Some("io.k8s.api.apps.v1.DeploymentSpec"),
            Some("io.k8s.api.apps.v1.DeploymentStatus"),
        ),
    );
    put("io.k8s.api.apps.v1.ControllerRevision", top(None, None));
    put(
        "io.k8s.api.batch.v1.JobSpec",
        obj(json!({"template": r("io.k8s.api.core.v1.PodTemplateSpec")})),
    );
    put(
        "io.k8s.api.batch.v1.JobStatus",
        obj(json!({"conditions": conditions()})),
    );
    put(
        "io.k8s.api.batch.v1.Job",
        top(
            Some("io.k8s.api.batch.v1.JobSpec"),
            Some("io.k8s.api.batch.v1.JobStatus"),
        ),
    );
    put(
        "io.k8s.api.batch.v1.JobTemplateSpec",
        top(Some("io.k8s.api.batch.v1.JobSpec"), None),
    );
    put(
        "io.k8s.api.batch.v1.CronJobSpec",
        obj(json!({"jobTemplate": r("io.k8s.api.batch.v1.JobTemplateSpec")})),
    );
    put(
        "io.k8s.api.batch.v1.CronJob",
        top(Some("io.k8s.api.batch.v1.CronJobSpec"), None),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_definition_and_every_ref_resolves() {
        let d = definitions();
        for kind in Kind::all() {
            assert!(d.contains_key(&definition_name(kind)), "{kind}");
        }
        assert_eq!(
            definition_name(Kind::Deployment),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(definition_name(Kind::Pod), "io.k8s.api.core.v1.Pod");
        let text = serde_json::to_string(d).unwrap();
        for r in text.split("#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(d.contains_key(name), "{name} does not resolve");
        }
    }
}
