//! The OpenAPI schemas of the kinds orkops serves, generated from the Rust types in `core`,
//! `meta` and `workloads` (serde structs that refuse unknown fields, so a field orkops does not
//! serve is absent here too). Definitions are named as upstream (`io.k8s.api.core.v1.Pod`) and
//! carry Kubernetes' patch metadata (`x-kubernetes-patch-merge-key`, `-patch-strategy`,
//! `-list-type`, `-list-map-keys`) and `x-kubernetes-group-version-kind` on the kinds. Read by
//! the API server's `/openapi` documents, by strategic merge patch, and by field validation.

use std::borrow::Cow;
use std::sync::LazyLock;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::admit::with_kind_type;
use super::meta::{IntOrString, Quantity};
use super::Kind;

/// How a v3 definition refers to another: `#/components/schemas/NAME`.
pub const REF_PREFIX: &str = "#/components/schemas/";

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const CORE: &str = "io.k8s.api.core.v1";

impl JsonSchema for IntOrString {
    fn schema_name() -> Cow<'static, str> {
        "IntOrString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "IntOrString is a type that can hold an int32 or a string. When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type. This allows you to have, for example, a JSON field that can accept a name or number.",
            "type": "string",
            "format": "int-or-string",
            "x-kubernetes-int-or-string": true,
        })
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Quantity is a fixed-point representation of a number, written with an optional SI or binary suffix: 500m, 2, 128Mi, 1G.",
            "type": "string",
        })
    }
}

/// Rust type names whose upstream definition is not `<package of their kind>.<same name>`.
const RENAMED: &[(&str, &str)] = &[
    (
        "IntOrString",
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    ),
    ("Quantity", "io.k8s.apimachinery.pkg.api.resource.Quantity"),
    (
        "ObjectMeta",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ),
    (
        "OwnerReference",
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
    ),
    (
        "LabelSelector",
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    ),
    (
        "LabelSelectorRequirement",
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
    ),
    ("NameReference", "io.k8s.api.core.v1.LocalObjectReference"),
    (
        "MetaCondition",
        "io.k8s.apimachinery.pkg.apis.meta.v1.Condition",
    ),
    ("HttpGetAction", "io.k8s.api.core.v1.HTTPGetAction"),
    ("HttpHeader", "io.k8s.api.core.v1.HTTPHeader"),
    ("TcpSocketAction", "io.k8s.api.core.v1.TCPSocketAction"),
    ("ClientIpConfig", "io.k8s.api.core.v1.ClientIPConfig"),
    ("FieldSelectorRef", "io.k8s.api.core.v1.ObjectFieldSelector"),
    (
        "RollingUpdateDeployment",
        "io.k8s.api.apps.v1.RollingUpdateDeployment",
    ),
    (
        "RollingUpdateStatefulSetStrategy",
        "io.k8s.api.apps.v1.RollingUpdateStatefulSetStrategy",
    ),
    (
        "RollingUpdateDaemonSet",
        "io.k8s.api.apps.v1.RollingUpdateDaemonSet",
    ),
    (
        "CsiPersistentVolumeSource",
        "io.k8s.api.core.v1.CSIPersistentVolumeSource",
    ),
    ("NfsVolumeSource", "io.k8s.api.core.v1.NFSVolumeSource"),
];

/// One Rust type behind several upstream definitions: where it is used (definition, field)
/// and the upstream name of that use.
const SPLIT: &[(&str, &str, &str, &str)] = &[
    (
        "Condition",
        "core.v1.PodStatus",
        "conditions",
        "core.v1.PodCondition",
    ),
    (
        "Condition",
        "core.v1.NodeStatus",
        "conditions",
        "core.v1.NodeCondition",
    ),
    (
        "Condition",
        "apps.v1.DeploymentStatus",
        "conditions",
        "apps.v1.DeploymentCondition",
    ),
    (
        "Condition",
        "apps.v1.ReplicaSetStatus",
        "conditions",
        "apps.v1.ReplicaSetCondition",
    ),
    (
        "Condition",
        "batch.v1.JobStatus",
        "conditions",
        "batch.v1.JobCondition",
    ),
    (
        "Condition",
        "apps.v1.StatefulSetStatus",
        "conditions",
        "apps.v1.StatefulSetCondition",
    ),
    (
        "Condition",
        "apps.v1.DaemonSetStatus",
        "conditions",
        "apps.v1.DaemonSetCondition",
    ),
    (
        "Condition",
        "core.v1.ReplicationControllerStatus",
        "conditions",
        "core.v1.ReplicationControllerCondition",
    ),
    (
        "KeySelector",
        "core.v1.EnvVarSource",
        "configMapKeyRef",
        "core.v1.ConfigMapKeySelector",
    ),
    (
        "KeySelector",
        "core.v1.EnvVarSource",
        "secretKeyRef",
        "core.v1.SecretKeySelector",
    ),
    (
        "NameRef",
        "core.v1.EnvFromSource",
        "configMapRef",
        "core.v1.ConfigMapEnvSource",
    ),
    (
        "NameRef",
        "core.v1.EnvFromSource",
        "secretRef",
        "core.v1.SecretEnvSource",
    ),
    ("PodIP", "core.v1.PodStatus", "hostIPs", "core.v1.HostIP"),
];

/// The integer fields Kubernetes types as int32 (orkops holds them as i64 and checks the int32
/// range at admission), by definition (after `io.k8s.api.`).
const INT32: &[(&str, &[&str])] = &[
    ("core.v1.ContainerPort", &["containerPort", "hostPort"]),
    ("core.v1.ServicePort", &["port", "nodePort"]),
    ("core.v1.EndpointPort", &["port"]),
    ("core.v1.ClientIPConfig", &["timeoutSeconds"]),
    ("core.v1.ContainerStatus", &["restartCount"]),
    ("core.v1.ContainerStateTerminated", &["exitCode", "signal"]),
    ("core.v1.Event", &["count"]),
    ("core.v1.PreferredSchedulingTerm", &["weight"]),
    ("core.v1.WeightedPodAffinityTerm", &["weight"]),
    ("core.v1.PodSpec", &["priority"]),
    (
        "core.v1.TopologySpreadConstraint",
        &["maxSkew", "minDomains"],
    ),
    (
        "core.v1.Probe",
        &[
            "initialDelaySeconds",
            "periodSeconds",
            "timeoutSeconds",
            "successThreshold",
            "failureThreshold",
        ],
    ),
    (
        "apps.v1.DeploymentSpec",
        &[
            "replicas",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "minReadySeconds",
        ],
    ),
    (
        "apps.v1.DeploymentStatus",
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ],
    ),
    (
        "batch.v1.JobSpec",
        &[
            "completions",
            "parallelism",
            "backoffLimit",
            "ttlSecondsAfterFinished",
        ],
    ),
    ("batch.v1.JobStatus", &["active", "succeeded", "failed"]),
    (
        "apps.v1.StatefulSetSpec",
        &["replicas", "revisionHistoryLimit", "minReadySeconds"],
    ),
    (
        "apps.v1.StatefulSetStatus",
        &[
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "collisionCount",
            "availableReplicas",
        ],
    ),
    ("apps.v1.RollingUpdateStatefulSetStrategy", &["partition"]),
    ("apps.v1.StatefulSetOrdinals", &["start"]),
    (
        "batch.v1.CronJobSpec",
        &["successfulJobsHistoryLimit", "failedJobsHistoryLimit"],
    ),
    (
        "apps.v1.DaemonSetSpec",
        &["minReadySeconds", "revisionHistoryLimit"],
    ),
    (
        "apps.v1.DaemonSetStatus",
        &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
            "updatedNumberScheduled",
            "numberAvailable",
            "numberUnavailable",
            "collisionCount",
        ],
    ),
    (
        "core.v1.ReplicationControllerSpec",
        &["replicas", "minReadySeconds"],
    ),
    (
        "core.v1.ReplicationControllerStatus",
        &[
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
        ],
    ),
];

/// `io.k8s.api.apps.v1` for `apps/v1`: the package upstream definitions of a group live in.
fn package(api_version: &str) -> String {
    match api_version.split_once('/') {
        None => CORE.to_string(),
        Some((group, version)) => {
            let short = group.split('.').next().unwrap_or(group);
            format!("io.k8s.api.{short}.{version}")
        }
    }
}

/// The upstream definition name of a kind: `io.k8s.api.apps.v1.Deployment`.
pub fn definition_name(kind: Kind) -> &'static str {
    static NAMES: LazyLock<Vec<(Kind, String)>> = LazyLock::new(|| {
        Kind::all()
            .map(|k| (k, format!("{}.{}", package(k.api_version()), k.name())))
            .collect()
    });
    NAMES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, n)| n.as_str())
        .unwrap_or_default()
}

/// The upstream name of a generated Rust type: renamed, or in the package of the kind whose
/// name is its longest prefix (`DeploymentSpec` is apps), or core.
fn upstream_name(rust: &str) -> String {
    if let Some((_, n)) = RENAMED.iter().find(|(r, _)| *r == rust) {
        return n.to_string();
    }
    let owner = Kind::all()
        .filter(|k| rust.starts_with(k.name()))
        .max_by_key(|k| k.name().len());
    let pkg = owner.map_or_else(|| CORE.to_string(), |k| package(k.api_version()));
    format!("{pkg}.{rust}")
}

/// The v3 component schemas of every served kind and of what they refer to, keyed by
/// upstream definition name; refs are `#/components/schemas/NAME`, wrapped in
/// `allOf: [{$ref}]` as upstream v3 writes them. Built once.
pub fn definitions() -> &'static Map<String, Value> {
    static DEFS: LazyLock<Map<String, Value>> = LazyLock::new(generate);
    &DEFS
}

/// The definition a schema refers to, following `$ref` and a one-element `allOf`; the schema
/// itself when it refers to nothing.
pub fn resolve(schema: &Value) -> &Value {
    let mut s = schema;
    for _ in 0..8 {
        let target = s
            .get("$ref")
            .or_else(|| s.pointer("/allOf/0/$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(REF_PREFIX))
            .and_then(|n| definitions().get(n));
        match target {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}

fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
    g.subschema_for::<T>();
}

fn generate() -> Map<String, Value> {
    let mut g = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    for kind in Kind::all() {
        with_kind_type!(kind, add(&mut g));
    }
    let raw = g.take_definitions(true);
    let names: Vec<(String, String)> = raw
        .keys()
        .map(|k| {
            (
                format!("{REF_PREFIX}{k}"),
                format!("{REF_PREFIX}{}", upstream_name(k)),
            )
        })
        .collect();
    let mut defs = Map::new();
    for (k, mut v) in raw {
        normalize(&mut v);
        rename_refs(&mut v, &names);
        defs.insert(upstream_name(&k), v);
    }
    split(&mut defs);
    for (def, fields) in INT32 {
        for f in *fields {
            let path = format!("/properties/{f}/format");
            if let Some(format) = defs
                .get_mut(&format!("io.k8s.api.{def}"))
                .and_then(|d| d.pointer_mut(&path))
            {
                *format = json!("int32");
            }
        }
    }
    for kind in Kind::all() {
        let (group, version) = kind.api_version().split_once('/').unwrap_or(("", "v1"));
        let gvk = json!([{"group": group, "kind": kind.name(), "version": version}]);
        if let Some(d) = defs
            .get_mut(definition_name(kind))
            .and_then(Value::as_object_mut)
        {
            d.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
        let list = list_schema(kind, group, version);
        defs.insert(format!("{}List", definition_name(kind)), list);
    }
    for (name, schema) in meta_schemas() {
        defs.insert(name, schema);
    }
    defs
}

/// Turns schemars' output into the OpenAPI v3.0 that Kubernetes clients read: no `null`
/// types, `nullable`, titles or defaults; unsigned formats as int32/int64; every `$ref`
/// wrapped in `allOf`; no `additionalProperties: false` (unknown fields are the server's call).
fn normalize(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    for k in ["nullable", "title", "default", "$schema", "examples"] {
        obj.remove(k);
    }
    if obj.get("const") == Some(&Value::Null) {
        obj.remove("const");
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        obj.remove("additionalProperties");
    }
    if let Some(Value::Array(types)) = obj.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if kept.len() == 1 {
            obj.insert("type".into(), kept[0].clone());
        }
    }
    let unsigned = match obj.get("format").and_then(Value::as_str) {
        Some("uint8" | "uint16" | "uint32") => Some("int32"),
        Some("uint64" | "uint") => Some("int64"),
        _ => None,
    };
    if let Some(f) = unsigned {
        obj.insert("format".into(), f.into());
        obj.remove("minimum");
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(alts)) = obj.get(key) else {
            continue;
        };
        let kept: Vec<Value> = alts
            .iter()
            .filter(|a| !is_null_schema(a))
            .cloned()
            .collect();
        if kept.len() == 1 {
            obj.remove(key);
            if let Some(Value::Object(only)) = kept.into_iter().next() {
                for (k, v) in only {
                    obj.entry(k).or_insert(v);
                }
            }
        }
    }
    if let Some(r) = obj.remove("$ref") {
        let mut wrapped = json!([{"$ref": r}]);
        if let Some(Value::Array(more)) = obj.remove("allOf") {
            wrapped
                .as_array_mut()
                .into_iter()
                .for_each(|w| w.extend(more.clone()));
        }
        obj.insert("allOf".into(), wrapped);
    }
    for (k, child) in obj.iter_mut() {
        match k.as_str() {
            "properties" => child
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .for_each(normalize),
            "items" | "additionalProperties" => normalize(child),
            "allOf" | "anyOf" | "oneOf" => child
                .as_array_mut()
                .into_iter()
                .flatten()
                .filter(|c| c.get("$ref").is_none())
                .for_each(normalize),
            _ => {}
        }
    }
}

/// `{type: null}`, `{const: null}` or `{enum: [null]}`: how schemars writes an `Option`'s None.
fn is_null_schema(s: &Value) -> bool {
    s.get("type") == Some(&json!("null"))
        || s.get("const") == Some(&Value::Null)
        || s.get("enum") == Some(&json!([null]))
}

fn rename_refs(v: &mut Value, names: &[(String, String)]) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if let Some((_, new)) = names.iter().find(|(old, _)| old == r) {
                    *r = new.clone();
                }
            }
            m.values_mut().for_each(|c| rename_refs(c, names));
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rename_refs(c, names)),
        _ => {}
    }
}

/// Gives each use of a shared Rust type (`Condition`) its upstream definition
/// (`PodCondition`, `JobCondition`, ...), and drops the shared one once nothing refers to it.
fn split(defs: &mut Map<String, Value>) {
    for (rust, parent, field, new) in SPLIT {
        let shared = upstream_name(rust);
        let (parent, new) = (format!("io.k8s.api.{parent}"), format!("io.k8s.api.{new}"));
        let Some(schema) = defs.get(&shared).cloned() else {
            continue;
        };
        let Some(prop) = defs
            .get_mut(&parent)
            .and_then(|p| p.pointer_mut(&format!("/properties/{field}")))
        else {
            continue;
        };
        let names = [(
            format!("{REF_PREFIX}{shared}"),
            format!("{REF_PREFIX}{new}"),
        )];
        rename_refs(prop, &names);
        defs.insert(new, schema);
    }
    for (rust, ..) in SPLIT {
        let shared = format!("{REF_PREFIX}{}", upstream_name(rust));
        let used = defs.values().any(|d| refers_to(d, &shared));
        if !used {
            defs.remove(&upstream_name(rust));
        }
    }
}

fn refers_to(v: &Value, target: &str) -> bool {
    match v {
        Value::Object(m) => {
            m.get("$ref").and_then(Value::as_str) == Some(target)
                || m.values().any(|c| refers_to(c, target))
        }
        Value::Array(a) => a.iter().any(|c| refers_to(c, target)),
        _ => false,
    }
}

fn reference(name: &str) -> Value {
    json!({"allOf": [{"$ref": format!("{REF_PREFIX}{name}")}]})
}

/// `PodList` and the like: what a list request answers.
fn list_schema(kind: Kind, group: &str, version: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", kind.name(), kind.plural()),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": reference(&format!("{META}.ListMeta")),
            "items": {"type": "array", "items": reference(definition_name(kind))},
        },
        "x-kubernetes-group-version-kind": [{"group": group, "kind": format!("{}List", kind.name()), "version": version}],
    })
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.";
const KIND_DOC: &str =
    "Kind is a string value representing the REST resource this object represents. In CamelCase.";

/// The meta/v1 definitions the API paths use besides the kinds: list metadata, `Status`,
/// `DeleteOptions` (the fields orkops reads) and `Patch`.
fn meta_schemas() -> Vec<(String, Value)> {
    let string = json!({"type": "string"});
    vec![
        (
            format!("{META}.ListMeta"),
            json!({
                "description": "ListMeta describes metadata that synthetic resources must have, including lists.",
                "type": "object",
                "properties": {
                    "resourceVersion": {"type": "string", "description": "The store revision the list was read at; watch from it to see every later change."},
                    "continue": {"type": "string", "description": "Set when more items are available (orkops answers lists whole, so never)."},
                },
            }),
        ),
        (
            format!("{META}.Status"),
            json!({
                "description": "Status is a return value for calls that don't return other objects.",
                "type": "object",
                "properties": {
                    "apiVersion": string, "kind": string, "status": string, "message": string,
                    "reason": string, "code": {"type": "integer", "format": "int32"},
                    "details": {"type": "object"},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
            }),
        ),
        (
            format!("{META}.Preconditions"),
            json!({
                "description": "Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.",
                "type": "object",
                "properties": {"resourceVersion": string, "uid": string},
            }),
        ),
        (
            format!("{META}.DeleteOptions"),
            json!({
                "description": "DeleteOptions may be provided when deleting an API object.",
                "type": "object",
                "properties": {
                    "apiVersion": string, "kind": string,
                    "gracePeriodSeconds": {"type": "integer", "format": "int64"},
                    "preconditions": reference(&format!("{META}.Preconditions")),
                    "propagationPolicy": string,
                },
            }),
        ),
        (
            format!("{META}.Patch"),
            json!({
                "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
                "type": "object",
            }),
        ),
    ]
}

/// Every definition `name` refers to, itself included, in a stable order.
pub fn closure(roots: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut todo: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    while let Some(n) = todo.pop() {
        if out.contains(&n) {
            continue;
        }
        if let Some(d) = definitions().get(&n) {
            collect_refs(d, &mut todo);
            out.push(n);
        }
    }
    out.sort();
    out
}

fn collect_refs(v: &Value, into: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                if let Some(n) = r.strip_prefix(REF_PREFIX) {
                    into.push(n.to_string());
                }
            }
            m.values().for_each(|c| collect_refs(c, into));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_refs(c, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop<'a>(def: &str, field: &str) -> &'a Value {
        definitions()
            .get(def)
            .and_then(|d| d.pointer(&format!("/properties/{field}")))
            .unwrap_or_else(|| panic!("{def}.{field} missing"))
    }

    #[test]
    fn every_kind_has_its_upstream_definition_with_its_group_version_kind() {
        for kind in Kind::all() {
            let name = definition_name(kind);
            let d = definitions()
                .get(name)
                .unwrap_or_else(|| panic!("{kind}: {name} missing"));
            let gvk = &d["x-kubernetes-group-version-kind"][0];
            assert_eq!(gvk["kind"], kind.name(), "{name}");
            assert!(d["properties"]["metadata"].is_object(), "{name}");
            assert!(definitions().contains_key(&format!("{name}List")));
        }
        assert_eq!(definition_name(Kind::Pod), "io.k8s.api.core.v1.Pod");
        assert_eq!(
            definition_name(Kind::Deployment),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(
            definition_name(Kind::CronJob),
            "io.k8s.api.batch.v1.CronJob"
        );
        for name in [
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.api.core.v1.PodSpec",
            "io.k8s.api.core.v1.HTTPGetAction",
            "io.k8s.api.core.v1.PodCondition",
            "io.k8s.api.apps.v1.DeploymentSpec",
            "io.k8s.api.batch.v1.JobTemplateSpec",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        ] {
            assert!(definitions().contains_key(name), "{name} missing");
        }
        // shared Rust types are split into their upstream names
        assert!(!definitions().keys().any(|k| (k.ends_with(".Condition")
            && !k.starts_with("io.k8s.apimachinery.pkg.apis.meta.v1."))
            || k.ends_with(".NameRef")));
    }

    #[test]
    fn every_ref_resolves() {
        let mut refs = Vec::new();
        for d in definitions().values() {
            collect_refs(d, &mut refs);
        }
        assert!(refs.len() > 50);
        for r in refs {
            assert!(definitions().contains_key(&r), "dangling ref {r}");
        }
    }

    #[test]
    fn lists_carry_the_upstream_merge_keys() {
        let pod_spec = "io.k8s.api.core.v1.PodSpec";
        let container = "io.k8s.api.core.v1.Container";
        for (def, field, key, strategy) in [
            (pod_spec, "containers", "name", "merge"),
            (pod_spec, "volumes", "name", "merge,retainKeys"),
            (container, "env", "name", "merge"),
            (container, "ports", "containerPort", "merge"),
            (container, "volumeMounts", "mountPath", "merge"),
            ("io.k8s.api.core.v1.ServiceSpec", "ports", "port", "merge"),
            (
                "io.k8s.api.core.v1.PodStatus",
                "conditions",
                "type",
                "merge",
            ),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                "ownerReferences",
                "uid",
                "merge",
            ),
        ] {
            let p = prop(def, field);
            assert_eq!(p["x-kubernetes-patch-merge-key"], key, "{def}.{field}: {p}");
            assert_eq!(p["x-kubernetes-patch-strategy"], strategy, "{def}.{field}");
            assert_eq!(p["type"], "array", "{def}.{field}");
        }
        let ports = prop("io.k8s.api.core.v1.ServiceSpec", "ports");
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["port", "protocol"])
        );
        assert_eq!(
            prop(container, "command")["x-kubernetes-list-type"],
            "atomic"
        );
        // items refer to the element definition through allOf, as upstream v3 does
        let item = resolve(&prop(pod_spec, "containers")["items"]);
        assert!(item["properties"]["image"].is_object());
    }

    #[test]
    fn fields_orkops_does_not_serve_are_absent_and_types_are_upstream() {
        let container = "io.k8s.api.core.v1.Container";
        let d = &definitions()[container];
        assert!(d["properties"].get("volumeDevices").is_none());
        assert!(d["properties"].get("securityContext").is_some());
        assert!(d["properties"].get("env").is_some());
        let replicas = prop("io.k8s.api.apps.v1.DeploymentSpec", "replicas");
        assert_eq!(replicas["type"], "integer");
        assert_eq!(replicas["format"], "int32");
        for (def, fields) in INT32 {
            for f in *fields {
                let p = prop(&format!("io.k8s.api.{def}"), f);
                assert_eq!(p["format"], "int32", "{def}.{f}");
            }
        }
        let grace = prop(
            "io.k8s.api.core.v1.PodSpec",
            "terminationGracePeriodSeconds",
        );
        assert_eq!(grace["format"], "int64");
        assert!(replicas.get("nullable").is_none());
        let target = resolve(prop("io.k8s.api.core.v1.ServicePort", "targetPort"));
        assert_eq!(target["format"], "int-or-string");
        let port = prop("io.k8s.api.core.v1.DaemonEndpoint", "Port");
        assert_eq!(port["format"], "int32");
        let text = serde_json::to_string(definitions()).unwrap();
        assert!(!text.contains("\"null\""), "null types left");
        assert!(!text.contains("additionalProperties\":false"));
    }
}
