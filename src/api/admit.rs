//! Admission of an object body: decoding into the kind's typed struct (unknown fields and wrong
//! types are errors naming the field path), server-side defaults, and semantic validation.
//! Used by the API server on every write and by the CLI before it sends anything.

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::coordination::Lease;
use super::core::*;
use super::kinds::Kind;
use super::labels::{self, Selector};
use super::meta::{IntOrString, ObjectMeta, Quantity};
use super::policy::PodDisruptionBudget;
use super::storage::{self, PersistentVolume, StorageClass};
use super::workloads::*;

/// One problem with one field, e.g. `spec.replicas: must be >= 0`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// What every stored kind offers to the generic code.
pub trait Object: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    fn apply_defaults(&mut self) {}
    fn validate(&self, _errs: &mut Errors) {}
}

macro_rules! impl_object {
    ($t:ty, $k:expr) => {
        impl_object!($t, $k, |_o: &mut $t| {}, |_o: &$t, _e: &mut Errors| {});
    };
    ($t:ty, $k:expr, $default:expr, $validate:expr) => {
        impl Object for $t {
            const KIND: Kind = $k;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
            fn apply_defaults(&mut self) {
                ($default)(self)
            }
            fn validate(&self, errs: &mut Errors) {
                ($validate)(self, errs)
            }
        }
    };
}

impl_object!(Namespace, Kind::Namespace);
impl_object!(
    Node,
    Kind::Node,
    |_n: &mut Node| {},
    |n: &Node, e: &mut Errors| { validate_taints(&n.spec.taints, e) }
);
impl_object!(
    Pod,
    Kind::Pod,
    |p: &mut Pod| {
        default_pod_spec(&mut p.spec);
        super::podfields::default_pod(&mut p.spec);
    },
    |p: &Pod, e: &mut Errors| validate_pod_spec(&p.spec, "spec", e)
);
impl_object!(Service, Kind::Service, default_service, validate_service);
impl_object!(
    Endpoints,
    Kind::Endpoints,
    |_e: &mut Endpoints| {},
    validate_endpoints
);
impl_object!(
    ConfigMap,
    Kind::ConfigMap,
    |_c: &mut ConfigMap| {},
    validate_config_map
);
impl_object!(Secret, Kind::Secret, default_secret, validate_secret);
impl_object!(
    PersistentVolumeClaim,
    Kind::PersistentVolumeClaim,
    default_pvc,
    validate_pvc
);
impl_object!(Event, Kind::Event);
impl_object!(ServiceAccount, Kind::ServiceAccount);
impl_object!(
    Deployment,
    Kind::Deployment,
    default_deployment,
    validate_deployment
);
impl_object!(
    ReplicaSet,
    Kind::ReplicaSet,
    default_replica_set,
    validate_replica_set
);
impl_object!(ControllerRevision, Kind::ControllerRevision);
impl_object!(
    Job,
    Kind::Job,
    |j: &mut Job| default_job_spec(&mut j.spec),
    |j: &Job, e: &mut Errors| validate_job_spec(&j.spec, "spec", e)
);
impl_object!(CronJob, Kind::CronJob, default_cron_job, validate_cron_job);
impl_object!(
    PodDisruptionBudget,
    Kind::PodDisruptionBudget,
    |_p: &mut PodDisruptionBudget| {},
    validate_pdb
);
impl_object!(Lease, Kind::Lease, |_l: &mut Lease| {}, validate_lease);
impl_object!(
    super::statefulset::StatefulSet,
    Kind::StatefulSet,
    super::statefulset::default_stateful_set,
    super::statefulset::validate_stateful_set
);
impl_object!(
    DaemonSet,
    Kind::DaemonSet,
    default_daemon_set,
    validate_daemon_set
);
impl_object!(
    ReplicationController,
    Kind::ReplicationController,
    default_replication_controller,
    validate_replication_controller
);
impl_object!(
    StorageClass,
    Kind::StorageClass,
    storage::default_storage_class,
    storage::validate_storage_class
);
impl_object!(
    PersistentVolume,
    Kind::PersistentVolume,
    storage::default_persistent_volume,
    storage::validate_persistent_volume
);

/// Decodes `value` as `T`, reporting the path of the first field that does not fit.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let message = match strict_unknown_field(&path, &message) {
            Some(m) => m,
            None => explain_number(message),
        };
        FieldError {
            field: if path == "." { String::new() } else { path },
            message,
        }
    })
}

/// serde's "unknown field `foo`, expected one of `a`, `b`" in kube-apiserver's words,
/// `strict decoding error: unknown field "spec.foo"`, with the fields orkops serves there.
fn strict_unknown_field(path: &str, message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_, expected) = rest.split_once('`')?;
    let known = expected
        .trim_start_matches(", ")
        .trim_start_matches("expected one of ")
        .trim_start_matches("expected ")
        .replace('`', "");
    let field = path.rsplit('.').next().unwrap_or(path);
    if let Some(hint) = volume_plugin_hint(field) {
        return Some(format!(
            "strict decoding error: unknown field {path:?}: orkops does not serve the {field} volume plugin ({hint}); use a persistentVolumeClaim (the cluster's default StorageClass), emptyDir or hostPath"
        ));
    }
    Some(format!(
        "strict decoding error: unknown field {path:?} (orkops does not serve it; known fields here: {known})"
    ))
}

/// Why an upstream volume source that orkops does not serve is missing, for the error a
/// manifest written for another platform gets.
fn volume_plugin_hint(field: &str) -> Option<&'static str> {
    Some(match field {
        "awsElasticBlockStore" => "Kubernetes removed its in-tree EBS plugin in 1.27",
        "gcePersistentDisk"
        | "azureDisk"
        | "azureFile"
        | "cinder"
        | "vsphereVolume"
        | "photonPersistentDisk"
        | "portworxVolume"
        | "scaleIO"
        | "storageos"
        | "quobyte"
        | "flocker" => "another cloud's or storage vendor's plugin, removed from Kubernetes",
        "nfs" | "iscsi" | "fc" | "rbd" | "cephfs" | "glusterfs" | "flexVolume" | "csi"
        | "ephemeral" | "gitRepo" | "image" => {
            "a network or driver plugin that needs a node driver orkops does not install"
        }
        _ => return None,
    })
}

/// serde says "invalid type: floating point `1e20`, expected i64" both for a fraction and for
/// an integer too large for 64 bits (JSON hands those over as floats): say what is wrong instead.
fn explain_number(message: String) -> String {
    match message
        .strip_prefix("invalid type: floating point `")
        .and_then(|m| m.split_once('`'))
    {
        Some((n, rest)) if rest.contains("expected i") || rest.contains("expected u") => {
            format!("invalid value {n}: must be an integer within range")
        }
        _ => message,
    }
}

fn admit_typed<T: Object>(value: Value) -> Result<Value, Vec<FieldError>> {
    let mut obj: T = decode(value).map_err(|e| vec![e])?;
    obj.apply_defaults();
    let mut errs = Errors::default();
    validate_meta(obj.metadata(), "metadata", &mut errs);
    obj.validate(&mut errs);
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    serde_json::to_value(&obj).map_err(|e| {
        vec![FieldError {
            field: String::new(),
            message: format!("cannot encode: {e}"),
        }]
    })
}

/// Calls the generic function `$f::<T>(args...)` with `T` the typed struct of `$kind`: the one
/// place that maps a `Kind` to its Rust type.
macro_rules! with_kind_type {
    ($kind:expr, $f:ident ( $($arg:expr),* )) => {{
        use $crate::api::core::*;
        use $crate::api::workloads::*;
        use $crate::api::Kind;
        match $kind {
            Kind::Namespace => $f::<Namespace>($($arg),*),
            Kind::Node => $f::<Node>($($arg),*),
            Kind::Pod => $f::<Pod>($($arg),*),
            Kind::Service => $f::<Service>($($arg),*),
            Kind::Endpoints => $f::<Endpoints>($($arg),*),
            Kind::ConfigMap => $f::<ConfigMap>($($arg),*),
            Kind::Secret => $f::<Secret>($($arg),*),
            Kind::PersistentVolumeClaim => $f::<PersistentVolumeClaim>($($arg),*),
            Kind::Event => $f::<Event>($($arg),*),
            Kind::Deployment => $f::<Deployment>($($arg),*),
            Kind::ReplicaSet => $f::<ReplicaSet>($($arg),*),
            Kind::ControllerRevision => $f::<ControllerRevision>($($arg),*),
            Kind::Job => $f::<Job>($($arg),*),
            Kind::CronJob => $f::<CronJob>($($arg),*),
            Kind::ServiceAccount => $f::<ServiceAccount>($($arg),*),
            Kind::PodDisruptionBudget => $f::<$crate::api::policy::PodDisruptionBudget>($($arg),*),
            Kind::Lease => $f::<$crate::api::coordination::Lease>($($arg),*),
            Kind::StatefulSet => $f::<$crate::api::statefulset::StatefulSet>($($arg),*),
            Kind::DaemonSet => $f::<DaemonSet>($($arg),*),
            Kind::ReplicationController => $f::<ReplicationController>($($arg),*),
            Kind::StorageClass => $f::<$crate::api::storage::StorageClass>($($arg),*),
            Kind::PersistentVolume => $f::<$crate::api::storage::PersistentVolume>($($arg),*),
        }
    }};
}
pub(crate) use with_kind_type;

/// Decodes, defaults and validates an object of `kind`, returning its normalized JSON.
pub fn admit(kind: Kind, value: Value) -> Result<Value, Vec<FieldError>> {
    with_kind_type!(kind, admit_typed(value))
}

pub(super) fn validate_meta(m: &ObjectMeta, path: &str, e: &mut Errors) {
    for (k, v) in &m.labels {
        if let Err(msg) =
            labels::validate_label_key(k).and_then(|_| labels::validate_label_value(v))
        {
            e.add(format!("{path}.labels"), msg);
        }
    }
    for k in m.annotations.keys() {
        if let Err(msg) = labels::validate_label_key(k) {
            e.add(
                format!("{path}.annotations"),
                msg.replace("label key", "annotation key"),
            );
        }
    }
}

/// Kubernetes' words for a value that is not an RFC 1123 label.
pub(super) fn not_a_dns_label(v: &str) -> String {
    format!("Invalid value: {v:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
}

pub(super) fn one_of(e: &mut Errors, path: &str, value: &Option<String>, allowed: &[&str]) {
    if let Some(v) = value {
        if !allowed.contains(&v.as_str()) {
            e.add(
                path,
                format!(
                    "unsupported value {v:?}: must be one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// For the fields Kubernetes types as int64 (durations in seconds): only the lower bound.
fn at_least(e: &mut Errors, path: &str, value: Option<i64>, min: i64) {
    if let Some(v) = value {
        if v < min {
            e.add(path, format!("invalid value {v}: must be >= {min}"));
        }
    }
}

/// For the fields Kubernetes types as int32 (counts, limits, probe settings): `min` up to
/// 2147483647, so no count a request sets can exceed what Kubernetes itself accepts.
pub(super) fn int32_at_least(e: &mut Errors, path: &str, value: Option<i64>, min: i64) {
    match value {
        Some(v) if v > i64::from(i32::MAX) => {
            e.add(path, format!("invalid value {v}: must be <= {}", i32::MAX))
        }
        _ => at_least(e, path, value, min),
    }
}

fn port_range(e: &mut Errors, path: &str, port: i64) {
    if !(1..=65535).contains(&port) {
        e.add(
            path,
            format!("invalid value {port}: must be between 1 and 65535"),
        );
    }
}

/// How a container may ask for a resource, as Kubernetes' `ValidateContainerResourceName` sorts
/// them: cpu and memory may be overcommitted (a request below its limit); ephemeral-storage is
/// a plain quantity too; hugepages and extended resources (`vendor.example/gpu`) may not.
#[derive(Debug, PartialEq)]
pub enum ResourceClass {
    Overcommittable,
    /// hugepages-SIZE and extended resources: whole units, the request equal to the limit.
    Unshared,
}

pub fn container_resource(name: &str) -> Result<ResourceClass, String> {
    match name {
        "cpu" | "memory" | "ephemeral-storage" => return Ok(ResourceClass::Overcommittable),
        _ if name.starts_with("hugepages-") => return Ok(ResourceClass::Unshared),
        _ => {}
    }
    let native = |domain: &str| domain == "kubernetes.io" || domain.ends_with(".kubernetes.io");
    let extended = name.split_once('/').is_some_and(|(domain, rest)| {
        let quota = name.starts_with("requests.");
        let malformed = rest.is_empty() || labels::validate_label_key(name).is_err();
        !(native(domain) || quota || malformed)
    });
    if extended {
        Ok(ResourceClass::Unshared)
    } else {
        Err(format!(
            "Invalid value: {name:?}: must be a standard resource for containers (cpu, memory, \
             ephemeral-storage, hugepages-SIZE) or an extended resource named DOMAIN/NAME"
        ))
    }
}

/// Kubernetes' rules for resources that cannot be overcommitted: the limit must be set, a
/// request must equal it, and an extended resource comes in whole units.
fn validate_unshared_resources(r: &ResourceRequirements, path: &str, e: &mut Errors) {
    let unshared = |k: &String| container_resource(k) == Ok(ResourceClass::Unshared);
    for (k, lim) in r.limits.iter().filter(|(k, _)| unshared(k)) {
        if !k.starts_with("hugepages-") && lim.millis().is_ok_and(|m| m % 1000 != 0) {
            e.add(
                format!("{path}.limits.{k}"),
                format!("Invalid value: {:?}: must be an integer", lim.0),
            );
        }
        if let Some(req) = r.requests.get(k) {
            if req.millis().ok() != lim.millis().ok() {
                e.add(
                    format!("{path}.requests.{k}"),
                    format!(
                        "Invalid value: {:?}: must be equal to {k} limit of {}",
                        req.0, lim.0
                    ),
                );
            }
        }
    }
    for k in r.requests.keys().filter(|k| unshared(k)) {
        if !r.limits.contains_key(k) {
            e.add(
                format!("{path}.limits.{k}"),
                "Required value: Limit must be set for non overcommitable resources",
            );
        }
    }
    let huge = r
        .limits
        .keys()
        .chain(r.requests.keys())
        .any(|k| k.starts_with("hugepages-"));
    let cpu_or_mem = ["cpu", "memory"]
        .iter()
        .any(|k| r.limits.contains_key(*k) || r.requests.contains_key(*k));
    if huge && !cpu_or_mem {
        e.add(path, "Forbidden: HugePages require cpu or memory");
    }
}

pub(super) fn quantity(e: &mut Errors, path: &str, q: &Quantity) {
    if let Err(msg) = q.millis() {
        e.add(path, msg);
    }
}

pub fn default_pod_spec(s: &mut PodSpec) {
    s.restart_policy.get_or_insert_with(|| "Always".into());
    // a volume that names no source is an emptyDir, as upstream's SetDefaults_Volume has it
    for v in &mut s.volumes {
        let none = v.empty_dir.is_none()
            && v.config_map.is_none()
            && v.secret.is_none()
            && v.persistent_volume_claim.is_none()
            && v.host_path.is_none()
            && v.downward_api.is_none()
            && v.projected.is_none();
        if none {
            v.empty_dir = Some(Default::default());
        }
    }
    s.termination_grace_period_seconds.get_or_insert(30);
    // serviceAccount is the deprecated alias of serviceAccountName: both say the same
    if s.service_account_name.as_deref().is_none_or(str::is_empty) {
        s.service_account_name = s.service_account.clone().filter(|n| !n.is_empty());
    }
    s.service_account.clone_from(&s.service_account_name);
    for c in s.init_containers.iter_mut().chain(s.containers.iter_mut()) {
        if c.image_pull_policy.is_none() {
            let tag = c.image.rsplit_once(':');
            let latest = match tag {
                Some((_, t)) if !t.contains('/') => t == "latest",
                _ => true,
            };
            c.image_pull_policy = Some(if latest { "Always" } else { "IfNotPresent" }.into());
        }
        for p in &mut c.ports {
            p.protocol.get_or_insert_with(|| "TCP".into());
        }
        // `resources: {}` (what Go clients send for an unset struct) is no resources: the same
        // template, so the same template hash (kubectl rollout undo sends it)
        if c.resources
            .as_ref()
            .is_some_and(|r| *r == Default::default())
        {
            c.resources = None;
        }
        for probe in [
            &mut c.liveness_probe,
            &mut c.readiness_probe,
            &mut c.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            probe.initial_delay_seconds.get_or_insert(0);
            probe.period_seconds.get_or_insert(10);
            probe.timeout_seconds.get_or_insert(1);
            probe.success_threshold.get_or_insert(1);
            probe.failure_threshold.get_or_insert(3);
            if let Some(h) = &mut probe.http_get {
                h.path.get_or_insert_with(|| "/".into());
                h.scheme.get_or_insert_with(|| "HTTP".into());
            }
        }
    }
    super::podfields::default_spec(s);
}

pub fn validate_pod_spec(s: &PodSpec, path: &str, e: &mut Errors) {
    if s.containers.is_empty() {
        e.add(
            format!("{path}.containers"),
            "required: a pod needs at least one container",
        );
    }
    one_of(
        e,
        &format!("{path}.restartPolicy"),
        &s.restart_policy,
        &["Always", "OnFailure", "Never"],
    );
    super::podfields::validate_spec(s, path, path == "spec", e);
    at_least(
        e,
        &format!("{path}.terminationGracePeriodSeconds"),
        s.termination_grace_period_seconds,
        0,
    );
    at_least(
        e,
        &format!("{path}.activeDeadlineSeconds"),
        s.active_deadline_seconds,
        1,
    );
    let mut volumes = BTreeSet::new();
    for (i, v) in s.volumes.iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        let sources = [
            v.config_map
                .as_ref()
                .map(|c| ("configMap", c.default_mode, &c.items)),
            v.secret
                .as_ref()
                .map(|c| ("secret", c.default_mode, &c.items)),
        ];
        for (src, default_mode, items) in sources.into_iter().flatten() {
            let modes = std::iter::once((format!("{vp}.{src}.defaultMode"), default_mode)).chain(
                items
                    .iter()
                    .enumerate()
                    .map(|(j, it)| (format!("{vp}.{src}.items[{j}].mode"), it.mode)),
            );
            for (field, mode) in modes {
                if let Some(m) = mode.filter(|m| !(0..=0o777).contains(m)) {
                    e.add(
                        field,
                        format!("{m} is not a file mode (0 to 0777 octal, 511 decimal)"),
                    );
                }
            }
        }
        if !labels::is_dns_label(&v.name) {
            e.add(
                format!("{vp}.name"),
                format!(
                    "{:?} must be a DNS label (lower-case letters, digits, '-')",
                    v.name
                ),
            );
        }
        if !volumes.insert(v.name.as_str()) {
            e.add(
                format!("{vp}.name"),
                format!("duplicate volume name {:?}", v.name),
            );
        }
        let sources = [
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.persistent_volume_claim.is_some(),
            v.host_path.is_some(),
            v.downward_api.is_some(),
            v.projected.is_some(),
        ];
        match sources.iter().filter(|x| **x).count() {
            1 => {}
            0 => e.add(
                &vp,
                "a volume needs one source: emptyDir, configMap, secret, persistentVolumeClaim, hostPath, downwardAPI or projected",
            ),
            _ => e.add(&vp, "a volume may have only one source"),
        }
        if let Some(m) = v.empty_dir.as_ref().and_then(|d| d.medium.clone()) {
            if !m.is_empty() && m != "Memory" {
                e.add(
                    format!("{vp}.emptyDir.medium"),
                    format!("unsupported value {m:?}: must be \"\" or \"Memory\""),
                );
            }
        }
        if let Some(h) = &v.host_path {
            validate_host_path(h, &format!("{vp}.hostPath"), e);
        }
        if let Some(c) = &v.persistent_volume_claim {
            if !labels::is_dns_subdomain(&c.claim_name) {
                e.add(
                    format!("{vp}.persistentVolumeClaim.claimName"),
                    "required: the name of a PersistentVolumeClaim",
                );
            }
        }
    }
    if let Some(d) = s.subdomain.as_deref().filter(|d| !d.is_empty()) {
        if !labels::is_dns_label(d) {
            e.add(format!("{path}.subdomain"), not_a_dns_label(d));
        }
    }
    if let Some(n) = s.service_account_name.as_deref().filter(|n| !n.is_empty()) {
        if !labels::is_dns_subdomain(n) {
            e.add(
                format!("{path}.serviceAccountName"),
                format!("Invalid value: {n:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
            );
        }
    }
    for (i, t) in s.tolerations.iter().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), e);
    }
    if let Some(a) = &s.affinity {
        validate_affinity(a, &format!("{path}.affinity"), e);
    }
    if s.automount_service_account_token == Some(true) {
        e.add(
            format!("{path}.automountServiceAccountToken"),
            "Unsupported value: true: orkops issues no service account tokens yet (issue 20); hint: leave it unset or set it to false",
        );
    }
    for (i, r) in s.image_pull_secrets.iter().enumerate() {
        if r.name.is_empty() {
            e.add(
                format!("{path}.imagePullSecrets[{i}].name"),
                "Required value",
            );
        }
    }
    if let Some(sc) = &s.security_context {
        let sp = format!("{path}.securityContext");
        for (field, id) in [
            ("runAsUser", sc.run_as_user),
            ("runAsGroup", sc.run_as_group),
            ("fsGroup", sc.fs_group),
        ] {
            id_range(e, &format!("{sp}.{field}"), id);
        }
        for (j, g) in sc.supplemental_groups.iter().enumerate() {
            id_range(e, &format!("{sp}.supplementalGroups[{j}]"), Some(*g));
        }
        if let Some(p) = &sc.seccomp_profile {
            validate_seccomp(p, &format!("{sp}.seccompProfile"), e);
        }
    }
    let mut names = BTreeSet::new();
    for (i, c) in s.init_containers.iter().enumerate() {
        let cp = format!("{path}.initContainers[{i}]");
        validate_container(c, &cp, path, &volumes, &mut names, e);
        if super::podfields::is_sidecar(c) {
            continue;
        }
        // what Kubernetes says of an init container without restartPolicy: Always
        for (name, set) in [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ] {
            if set {
                e.add(
                    format!("{cp}.{name}"),
                    "Forbidden: may not be set for init containers without restartPolicy=Always",
                );
            }
        }
    }
    for (i, c) in s.containers.iter().enumerate() {
        let cp = format!("{path}.containers[{i}]");
        validate_container(c, &cp, path, &volumes, &mut names, e);
    }
}

/// A hostPath source (of a pod volume or a PersistentVolume), as kube-apiserver checks it.
pub(super) fn validate_host_path(h: &HostPathVolumeSource, hp: &str, e: &mut Errors) {
    if h.path.is_empty() {
        e.add(format!("{hp}.path"), "Required value");
    } else if h.path.split('/').any(|part| part == "..") {
        e.add(
            format!("{hp}.path"),
            format!("Invalid value: {:?}: must not contain '..'", h.path),
        );
    }
    const TYPES: [&str; 8] = [
        "",
        "DirectoryOrCreate",
        "Directory",
        "FileOrCreate",
        "File",
        "Socket",
        "CharDevice",
        "BlockDevice",
    ];
    if let Some(t) = h.type_.as_deref().filter(|t| !TYPES.contains(t)) {
        e.add(
                format!("{hp}.type"),
                format!("Unsupported value: {t:?}: supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\""),
            );
    }
}

const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";

fn weight(e: &mut Errors, path: &str, w: i64) {
    if !(1..=100).contains(&w) {
        e.add(
            path,
            format!("Invalid value: {w}: must be in the range 1-100"),
        );
    }
}

pub(super) fn validate_node_term(t: &NodeSelectorTerm, path: &str, e: &mut Errors) {
    for (list, reqs) in [
        ("matchExpressions", &t.match_expressions),
        ("matchFields", &t.match_fields),
    ] {
        for (j, r) in reqs.iter().enumerate() {
            let rp = format!("{path}.{list}[{j}]");
            if list == "matchFields" && r.key != "metadata.name" {
                e.add(
                    format!("{rp}.key"),
                    format!("Invalid value: {:?}: not a valid field selector key", r.key),
                );
            }
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => e.add(
                    format!("{rp}.values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ),
                "Exists" | "DoesNotExist" if !r.values.is_empty() => e.add(
                    format!("{rp}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ),
                "Gt" | "Lt" if r.values.len() != 1 || r.values[0].parse::<i64>().is_err() => e.add(
                    format!("{rp}.values"),
                    "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                op => e.add(
                    format!("{rp}.operator"),
                    format!("Invalid value: {op:?}: not a valid selector operator"),
                ),
            }
        }
    }
}

fn validate_pod_term(t: &PodAffinityTerm, path: &str, e: &mut Errors) {
    if t.topology_key.is_empty() {
        e.add(
            format!("{path}.topologyKey"),
            "Required value: can not be empty",
        );
    }
    if let Some(ls) = &t.label_selector {
        selector_of(ls, &format!("{path}.labelSelector"), e);
    }
}

/// Kubernetes' rules for node affinity and pod (anti-)affinity, in its words.
fn validate_affinity(a: &Affinity, path: &str, e: &mut Errors) {
    if let Some(n) = &a.node_affinity {
        let np = format!("{path}.nodeAffinity");
        if let Some(sel) = &n.required_during_scheduling_ignored_during_execution {
            let rp = format!("{np}.{REQUIRED}.nodeSelectorTerms");
            if sel.node_selector_terms.is_empty() {
                e.add(
                    &rp,
                    "Required value: must have at least one node selector term",
                );
            }
            for (i, t) in sel.node_selector_terms.iter().enumerate() {
                validate_node_term(t, &format!("{rp}[{i}]"), e);
            }
        }
        for (i, t) in n
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = format!("{np}.{PREFERRED}[{i}]");
            weight(e, &format!("{tp}.weight"), t.weight);
            validate_node_term(&t.preference, &format!("{tp}.preference"), e);
        }
    }
    for (name, pa) in [
        ("podAffinity", &a.pod_affinity),
        ("podAntiAffinity", &a.pod_anti_affinity),
    ] {
        let Some(pa) = pa else { continue };
        let pp = format!("{path}.{name}");
        for (i, t) in pa
            .required_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            validate_pod_term(t, &format!("{pp}.{REQUIRED}[{i}]"), e);
        }
        for (i, t) in pa
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = format!("{pp}.{PREFERRED}[{i}]");
            weight(e, &format!("{tp}.weight"), t.weight);
            validate_pod_term(&t.pod_affinity_term, &format!("{tp}.podAffinityTerm"), e);
        }
    }
}

const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// Kubernetes' rules for a toleration (ValidateTolerations), in its words.
fn validate_toleration(t: &Toleration, path: &str, e: &mut Errors) {
    let key = t.key.as_deref().unwrap_or("");
    let op = t.operator.as_deref().unwrap_or("Equal");
    let value = t.value.as_deref().unwrap_or("");
    if key.is_empty() && op != "Exists" {
        e.add(
            format!("{path}.operator"),
            format!("Invalid value: {op:?}: operator must be Exists when `key` is empty, which means \"match all values and all keys\""),
        );
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        e.add(
            format!("{path}.effect"),
            format!(
                "Invalid value: {:?}: effect must be 'NoExecute' when `tolerationSeconds` is set",
                t.effect.as_deref().unwrap_or("")
            ),
        );
    }
    match op {
        "Equal" => {}
        "Exists" if !value.is_empty() => e.add(
            format!("{path}.operator"),
            format!("Invalid value: {t:?}: value must be empty when `operator` is 'Exists'"),
        ),
        "Exists" => {}
        other => e.add(
            format!("{path}.operator"),
            format!("Unsupported value: {other:?}: supported values: \"Equal\", \"Exists\""),
        ),
    }
    if let Some(eff) = t.effect.as_deref().filter(|x| !x.is_empty()) {
        if !TAINT_EFFECTS.contains(&eff) {
            e.add(
                format!("{path}.effect"),
                format!("Unsupported value: {eff:?}: supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\""),
            );
        }
    }
}

/// A node's taints: a key and one of the three effects, each (key, effect) once.
fn validate_taints(taints: &[Taint], e: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, t) in taints.iter().enumerate() {
        let tp = format!("spec.taints[{i}]");
        if t.key.is_empty() {
            e.add(format!("{tp}.key"), "Required value");
        }
        if t.effect.is_empty() {
            e.add(format!("{tp}.effect"), "Required value");
        } else if t.effect == "NoExecute" {
            e.add(
                format!("{tp}.effect"),
                "Unsupported value: \"NoExecute\": orkops does not evict running pods for a taint yet; hint: use NoSchedule (keeps new pods off) and drain the node's pods",
            );
        } else if !TAINT_EFFECTS.contains(&t.effect.as_str()) {
            e.add(
                format!("{tp}.effect"),
                format!("Unsupported value: {:?}: supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\"", t.effect),
            );
        }
        if !seen.insert((t.key.as_str(), t.effect.as_str())) {
            e.add(
                &tp,
                format!(
                    "Duplicate value: taints must be unique by key and effect pair ({}:{})",
                    t.key, t.effect
                ),
            );
        }
    }
}

/// A lifecycle hook: exactly one handler, as Kubernetes words it.
fn validate_handler(h: &LifecycleHandler, path: &str, e: &mut Errors) {
    let n = [h.exec.is_some(), h.http_get.is_some(), h.sleep.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    match n {
        0 => e.add(path, "Required value: must specify a handler type"),
        1 => {}
        _ => e.add(path, "Forbidden: may not specify more than 1 handler type"),
    }
    if let Some(x) = &h.exec {
        if x.command.is_empty() {
            e.add(format!("{path}.exec.command"), "Required value");
        }
    }
    if let Some(g) = &h.http_get {
        if let IntOrString::Int(p) = g.port {
            port_range(e, &format!("{path}.httpGet.port"), p);
        }
        one_of(
            e,
            &format!("{path}.httpGet.scheme"),
            &g.scheme,
            &["HTTP", "HTTPS"],
        );
    }
    if let Some(s) = &h.sleep {
        if s.seconds <= 0 {
            e.add(
                format!("{path}.sleep.seconds"),
                format!("Invalid value: {}: must be greater than 0", s.seconds),
            );
        }
    }
}

/// A user or group id, as Kubernetes' ValidateUserID / ValidateGroupID word it.
fn id_range(e: &mut Errors, path: &str, id: Option<i64>) {
    if let Some(v) = id.filter(|v| !(0..=i64::from(i32::MAX)).contains(v)) {
        e.add(
            path,
            format!("Invalid value: {v}: must be between 0 and 2147483647, inclusive"),
        );
    }
}

fn validate_seccomp(p: &SeccompProfile, path: &str, e: &mut Errors) {
    match p.type_.as_str() {
        "RuntimeDefault" | "Unconfined" => {
            if p.localhost_profile.is_some() {
                e.add(
                    format!("{path}.localhostProfile"),
                    "Invalid value: can only be set if seccomp type is Localhost",
                );
            }
        }
        "Localhost" => e.add(
            format!("{path}.type"),
            "Unsupported value: \"Localhost\": orkops does not load seccomp profiles from the node's files; hint: use RuntimeDefault (the engine's default profile) or Unconfined",
        ),
        "" => e.add(format!("{path}.type"), "Required value"),
        t => e.add(
            format!("{path}.type"),
            format!("Unsupported value: {t:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""),
        ),
    }
}

fn validate_security_context(sc: &SecurityContext, path: &str, e: &mut Errors) {
    id_range(e, &format!("{path}.runAsUser"), sc.run_as_user);
    id_range(e, &format!("{path}.runAsGroup"), sc.run_as_group);
    if let Some(p) = &sc.seccomp_profile {
        validate_seccomp(p, &format!("{path}.seccompProfile"), e);
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            e.add(
                path,
                "Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds_sys_admin = sc.capabilities.as_ref().is_some_and(|c| {
            c.add
                .iter()
                .any(|a| a == "SYS_ADMIN" || a == "CAP_SYS_ADMIN")
        });
        if adds_sys_admin {
            e.add(
                path,
                "Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
    if let Some(caps) = &sc.capabilities {
        for (list, names) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (j, n) in names.iter().enumerate() {
                let ok = !n.is_empty()
                    && n.chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
                if !ok {
                    e.add(
                        format!("{path}.capabilities.{list}[{j}]"),
                        format!("Invalid value: {n:?}: a capability name in capitals, like NET_ADMIN or ALL"),
                    );
                }
            }
        }
    }
}

fn validate_container(
    c: &Container,
    cp: &str,
    path: &str,
    volumes: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    e: &mut Errors,
) {
    {
        if let Some(sc) = &c.security_context {
            validate_security_context(sc, &format!("{cp}.securityContext"), e);
        }
        if let Some(l) = &c.lifecycle {
            for (name, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
                if let Some(h) = h {
                    validate_handler(h, &format!("{cp}.lifecycle.{name}"), e);
                }
            }
        }
        if !labels::is_dns_label(&c.name) {
            e.add(
                format!("{cp}.name"),
                format!(
                    "{:?} must be a DNS label (lower-case letters, digits, '-')",
                    c.name
                ),
            );
        } else if !names.insert(c.name.clone()) {
            e.add(
                format!("{cp}.name"),
                format!("Duplicate value: {:?}", c.name),
            );
        }
        if c.image.trim().is_empty() {
            e.add(format!("{cp}.image"), "required: the image to run");
        }
        one_of(
            e,
            &format!("{cp}.imagePullPolicy"),
            &c.image_pull_policy,
            &["Always", "IfNotPresent", "Never"],
        );
        let mut port_names = BTreeSet::new();
        for (j, p) in c.ports.iter().enumerate() {
            let pp = format!("{cp}.ports[{j}]");
            port_range(e, &format!("{pp}.containerPort"), p.container_port);
            if let Some(h) = p.host_port {
                port_range(e, &format!("{pp}.hostPort"), h);
            }
            one_of(e, &format!("{pp}.protocol"), &p.protocol, &["TCP", "UDP"]);
            if let Some(n) = &p.name {
                if !port_names.insert(n.as_str()) {
                    e.add(format!("{pp}.name"), format!("duplicate port name {n:?}"));
                }
            }
        }
        for (j, v) in c.env.iter().enumerate() {
            let ep = format!("{cp}.env[{j}]");
            if v.name.is_empty() || v.name.contains('=') {
                e.add(
                    format!("{ep}.name"),
                    "required: a variable name without '='",
                );
            }
            if let Some(src) = &v.value_from {
                let n = [
                    src.config_map_key_ref.is_some(),
                    src.secret_key_ref.is_some(),
                    src.field_ref.is_some(),
                    src.resource_field_ref.is_some(),
                ]
                .iter()
                .filter(|x| **x)
                .count();
                match n {
                    0 => e.add(
                        format!("{ep}.valueFrom"),
                        "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                    ),
                    1 => {}
                    _ => e.add(
                        format!("{ep}.valueFrom"),
                        "Invalid value: \"\": may not have more than one field specified at a time",
                    ),
                }
                if v.value.is_some() {
                    e.add(
                        format!("{ep}.value"),
                        "may not be set together with valueFrom",
                    );
                }
            }
        }
        for (j, src) in c.env_from.iter().enumerate() {
            if src.config_map_ref.is_some() == src.secret_ref.is_some() {
                e.add(
                    format!("{cp}.envFrom[{j}]"),
                    "exactly one of configMapRef or secretRef",
                );
            }
        }
        if let Some(r) = &c.resources {
            for (section, map) in [("limits", &r.limits), ("requests", &r.requests)] {
                for (k, q) in map {
                    let qp = format!("{cp}.resources.{section}.{k}");
                    match container_resource(k) {
                        Err(msg) => e.add(&qp, msg),
                        Ok(_) => quantity(e, &qp, q),
                    }
                }
            }
            validate_unshared_resources(r, &format!("{cp}.resources"), e);
            for (k, req) in &r.requests {
                if let (Some(lim), Ok(rq)) = (r.limits.get(k), req.millis()) {
                    if lim.millis().is_ok_and(|l| l < rq) {
                        e.add(
                            format!("{cp}.resources.requests.{k}"),
                            format!("{req} must be <= the limit {lim}"),
                        );
                    }
                }
            }
        }
        for (j, m) in c.volume_mounts.iter().enumerate() {
            let mp = format!("{cp}.volumeMounts[{j}]");
            if !volumes.contains(m.name.as_str()) {
                e.add(
                    format!("{mp}.name"),
                    format!("no volume named {:?} in {path}.volumes", m.name),
                );
            }
            if !m.mount_path.starts_with('/') {
                e.add(
                    format!("{mp}.mountPath"),
                    format!("{:?} must be an absolute path", m.mount_path),
                );
            }
        }
        for (name, probe) in [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                validate_probe(p, &format!("{cp}.{name}"), e);
            }
        }
    }
}

fn validate_probe(p: &Probe, path: &str, e: &mut Errors) {
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
    ];
    if handlers.iter().filter(|x| **x).count() != 1 {
        e.add(path, "exactly one of exec, httpGet or tcpSocket");
    }
    if let Some(x) = &p.exec {
        if x.command.is_empty() {
            e.add(
                format!("{path}.exec.command"),
                "required: the command to run",
            );
        }
    }
    let port = p
        .http_get
        .as_ref()
        .map(|h| (&h.port, "httpGet"))
        .or(p.tcp_socket.as_ref().map(|t| (&t.port, "tcpSocket")));
    if let Some((IntOrString::Int(n), which)) = port {
        port_range(e, &format!("{path}.{which}.port"), *n);
    }
    if let Some(h) = &p.http_get {
        one_of(
            e,
            &format!("{path}.httpGet.scheme"),
            &h.scheme,
            &["HTTP", "HTTPS"],
        );
    }
    int32_at_least(
        e,
        &format!("{path}.initialDelaySeconds"),
        p.initial_delay_seconds,
        0,
    );
    int32_at_least(e, &format!("{path}.periodSeconds"), p.period_seconds, 1);
    int32_at_least(e, &format!("{path}.timeoutSeconds"), p.timeout_seconds, 1);
    int32_at_least(
        e,
        &format!("{path}.successThreshold"),
        p.success_threshold,
        1,
    );
    int32_at_least(
        e,
        &format!("{path}.failureThreshold"),
        p.failure_threshold,
        1,
    );
}

pub(super) fn validate_template(
    selector: &Selector,
    template: &PodTemplateSpec,
    path: &str,
    allowed_restart: &[&str],
    e: &mut Errors,
) {
    validate_meta(&template.metadata, &format!("{path}.metadata"), e);
    validate_pod_spec(&template.spec, &format!("{path}.spec"), e);
    one_of(
        e,
        &format!("{path}.spec.restartPolicy"),
        &template.spec.restart_policy,
        allowed_restart,
    );
    if !selector.is_empty() && !selector.matches(&template.metadata.labels) {
        e.add(
            format!("{path}.metadata.labels"),
            format!("the selector `{selector}` does not match the template labels"),
        );
    }
}

fn default_deployment(d: &mut Deployment) {
    let s = &mut d.spec;
    s.replicas.get_or_insert(1);
    s.revision_history_limit.get_or_insert(10);
    s.progress_deadline_seconds.get_or_insert(600);
    s.min_ready_seconds.get_or_insert(0);
    let strategy = s.strategy.get_or_insert_with(Default::default);
    let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
    if kind == "RollingUpdate" {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_surge.get_or_insert(IntOrString::Int(1));
        ru.max_unavailable.get_or_insert(IntOrString::Int(0));
    }
    default_pod_spec(&mut s.template.spec);
}

fn validate_deployment(d: &Deployment, e: &mut Errors) {
    let s = &d.spec;
    int32_at_least(e, "spec.replicas", s.replicas, 0);
    int32_at_least(e, "spec.revisionHistoryLimit", s.revision_history_limit, 0);
    int32_at_least(
        e,
        "spec.progressDeadlineSeconds",
        s.progress_deadline_seconds,
        1,
    );
    int32_at_least(e, "spec.minReadySeconds", s.min_ready_seconds, 0);
    let selector = selector_of(&s.selector, "spec.selector", e);
    if s.selector.match_labels.is_empty() && s.selector.match_expressions.is_empty() {
        e.add(
            "spec.selector",
            "required: a deployment needs a non-empty selector",
        );
    }
    validate_template(&selector, &s.template, "spec.template", &["Always"], e);
    if let Some(st) = &s.strategy {
        one_of(
            e,
            "spec.strategy.type",
            &st.type_,
            &["RollingUpdate", "Recreate"],
        );
        if let Some(ru) = &st.rolling_update {
            if st.type_.as_deref() == Some("Recreate") {
                e.add(
                    "spec.strategy.rollingUpdate",
                    "may not be set when type is Recreate",
                );
            }
            let surge = ru
                .max_surge
                .as_ref()
                .map(|v| (v.scaled(100, true), "maxSurge"));
            let unavail = ru
                .max_unavailable
                .as_ref()
                .map(|v| (v.scaled(100, false), "maxUnavailable"));
            let mut zero = 0;
            for (r, name) in [surge, unavail].into_iter().flatten() {
                match r {
                    Err(msg) => e.add(format!("spec.strategy.rollingUpdate.{name}"), msg),
                    Ok(v) if v < 0 => e.add(
                        format!("spec.strategy.rollingUpdate.{name}"),
                        "must be >= 0",
                    ),
                    Ok(v) if v > i64::from(i32::MAX) => e.add(
                        format!("spec.strategy.rollingUpdate.{name}"),
                        format!("invalid value {v}: must be <= {}", i32::MAX),
                    ),
                    Ok(0) => zero += 1,
                    Ok(_) => {}
                }
            }
            if zero == 2 {
                e.add(
                    "spec.strategy.rollingUpdate",
                    "maxSurge and maxUnavailable may not both be 0",
                );
            }
        }
    }
}

/// As kube-apiserver's ValidatePositiveIntOrPercent and IsNotMoreThan100Percent.
pub(super) fn int_or_percent(e: &mut Errors, path: &str, v: &Option<IntOrString>) {
    match v {
        None => {}
        Some(IntOrString::Int(i)) => {
            int32_at_least(e, path, Some(*i), 0);
        }
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                None => e.add(
                    path,
                    format!("invalid value {s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%', or '93%')"),
                ),
                Some(d) if d.parse::<u64>().map_or(true, |p| p > 100) => {
                    e.add(path, format!("invalid value {s:?}: must not be greater than 100%"))
                }
                Some(_) => {}
            }
        }
    }
}

fn validate_pdb(p: &crate::api::policy::PodDisruptionBudget, e: &mut Errors) {
    let s = &p.spec;
    if s.min_available.is_some() && s.max_unavailable.is_some() {
        e.add("spec", "minAvailable and maxUnavailable cannot be both set");
    }
    int_or_percent(e, "spec.minAvailable", &s.min_available);
    int_or_percent(e, "spec.maxUnavailable", &s.max_unavailable);
    if let Some(sel) = &s.selector {
        selector_of(sel, "spec.selector", e);
    }
    one_of(
        e,
        "spec.unhealthyPodEvictionPolicy",
        &s.unhealthy_pod_eviction_policy,
        crate::api::policy::UNHEALTHY_POLICIES,
    );
}

/// As kube-apiserver's ValidateLeaseSpec: a positive duration, no negative transition count,
/// a known strategy, and a preferred holder only with a strategy.
fn validate_lease(l: &Lease, e: &mut Errors) {
    let s = &l.spec;
    int32_at_least(e, "spec.leaseDurationSeconds", s.lease_duration_seconds, 1);
    int32_at_least(e, "spec.leaseTransitions", s.lease_transitions, 0);
    one_of(
        e,
        "spec.strategy",
        &s.strategy,
        crate::api::coordination::STRATEGIES,
    );
    if s.preferred_holder.is_some() && s.strategy.is_none() {
        e.add(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        );
    }
}

fn default_replica_set(r: &mut ReplicaSet) {
    r.spec.replicas.get_or_insert(1);
    r.spec.min_ready_seconds.get_or_insert(0);
    default_pod_spec(&mut r.spec.template.spec);
}

/// As kube-apiserver: a non-empty selector that matches the template's labels, int32 counts.
fn validate_replica_set(r: &ReplicaSet, e: &mut Errors) {
    let s = &r.spec;
    int32_at_least(e, "spec.replicas", s.replicas, 0);
    int32_at_least(e, "spec.minReadySeconds", s.min_ready_seconds, 0);
    let selector = selector_of(&s.selector, "spec.selector", e);
    if s.selector.match_labels.is_empty() && s.selector.match_expressions.is_empty() {
        e.add(
            "spec.selector",
            "required: a replica set needs a non-empty selector",
        );
    }
    validate_template(&selector, &s.template, "spec.template", &["Always"], e);
    if let Some(st) = &r.status {
        for (field, v) in [
            ("replicas", st.replicas),
            ("fullyLabeledReplicas", st.fully_labeled_replicas),
            ("readyReplicas", st.ready_replicas),
            ("availableReplicas", st.available_replicas),
        ] {
            int32_at_least(e, &format!("status.{field}"), Some(v), 0);
        }
    }
}

/// On a DaemonSet: the number of its template changes, plus one (upstream's deprecated
/// `templateGeneration`, still written by kube-apiserver and labelled on the pods as
/// `pod-template-generation`). Set to 1 here; the API server carries it over on updates.
pub const DAEMON_SET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// As kube-apiserver's SetDefaults_DaemonSet: RollingUpdate with maxUnavailable 1 and maxSurge
/// 0, 10 old revisions kept; the template's pod spec as a pod's.
fn default_daemon_set(d: &mut DaemonSet) {
    let s = &mut d.spec;
    let strategy = s.update_strategy.get_or_insert_with(Default::default);
    let kind = strategy.type_.get_or_insert_with(|| "RollingUpdate".into());
    if kind == "RollingUpdate" {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    s.revision_history_limit.get_or_insert(10);
    default_pod_spec(&mut s.template.spec);
    d.metadata
        .annotations
        .entry(DAEMON_SET_TEMPLATE_GENERATION.into())
        .or_insert_with(|| "1".into());
}

/// As kube-apiserver's ValidateDaemonSetSpec: a non-empty selector matching the template's
/// labels, restartPolicy Always, no activeDeadlineSeconds, int32 counts, and a rolling update
/// with exactly one of maxUnavailable and maxSurge non-zero.
fn validate_daemon_set(d: &DaemonSet, e: &mut Errors) {
    let s = &d.spec;
    let selector = selector_of(&s.selector, "spec.selector", e);
    if s.selector.match_labels.is_empty() && s.selector.match_expressions.is_empty() {
        e.add(
            "spec.selector",
            "required: empty selector is invalid for daemonset",
        );
    }
    validate_template(&selector, &s.template, "spec.template", &["Always"], e);
    if s.template.spec.active_deadline_seconds.is_some() {
        e.add(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in DaemonSet is not Supported",
        );
    }
    int32_at_least(e, "spec.minReadySeconds", s.min_ready_seconds, 0);
    int32_at_least(e, "spec.revisionHistoryLimit", s.revision_history_limit, 0);
    if let Some(st) = &s.update_strategy {
        validate_daemon_set_strategy(st, e);
    }
    if let Some(st) = &d.status {
        for (field, v) in [
            ("currentNumberScheduled", st.current_number_scheduled),
            ("numberMisscheduled", st.number_misscheduled),
            ("desiredNumberScheduled", st.desired_number_scheduled),
            ("numberReady", st.number_ready),
            ("updatedNumberScheduled", st.updated_number_scheduled),
            ("numberAvailable", st.number_available),
            ("numberUnavailable", st.number_unavailable),
        ] {
            int32_at_least(e, &format!("status.{field}"), Some(v), 0);
        }
        int32_at_least(e, "status.collisionCount", st.collision_count, 0);
        at_least(e, "status.observedGeneration", st.observed_generation, 0);
    }
}

fn validate_daemon_set_strategy(st: &DaemonSetUpdateStrategy, e: &mut Errors) {
    const PATH: &str = "spec.updateStrategy";
    match st.type_.as_deref() {
        Some("OnDelete") | None => {}
        Some("RollingUpdate") => {
            let Some(ru) = &st.rolling_update else {
                e.add(format!("{PATH}.rollingUpdate"), "Required value");
                return;
            };
            let unavailable = format!("{PATH}.rollingUpdate.maxUnavailable");
            let surge = format!("{PATH}.rollingUpdate.maxSurge");
            int_or_percent(e, &unavailable, &ru.max_unavailable);
            int_or_percent(e, &surge, &ru.max_surge);
            // a percentage counts by its number, as upstream's getIntOrPercentValue
            let non_zero = |v: &Option<IntOrString>| match v {
                None => false,
                Some(IntOrString::Int(i)) => *i != 0,
                Some(IntOrString::String(t)) => t.trim_end_matches('%').parse::<i64>() != Ok(0),
            };
            match (non_zero(&ru.max_unavailable), non_zero(&ru.max_surge)) {
                (true, true) => e.add(surge, "may not be set when maxUnavailable is non-zero"),
                (false, false) => e.add(unavailable, "cannot be 0 when maxSurge is 0"),
                _ => {}
            }
        }
        Some(_) => one_of(
            e,
            &format!("{PATH}.type"),
            &st.type_,
            &["RollingUpdate", "OnDelete"],
        ),
    }
}

fn default_replication_controller(r: &mut ReplicationController) {
    // as upstream: an empty selector, and empty labels, are the template's labels
    if let Some(t) = &mut r.spec.template {
        if !t.metadata.labels.is_empty() {
            if r.spec.selector.is_empty() {
                r.spec.selector = t.metadata.labels.clone();
            }
            if r.metadata.labels.is_empty() {
                r.metadata.labels = t.metadata.labels.clone();
            }
        }
        default_pod_spec(&mut t.spec);
    }
    r.spec.replicas.get_or_insert(1);
    r.spec.min_ready_seconds.get_or_insert(0);
}

/// As kube-apiserver's ValidateReplicationController: a selector (given or the template's
/// labels) that matches the template, a template that restarts Always, int32 counts.
fn validate_replication_controller(r: &ReplicationController, e: &mut Errors) {
    let s = &r.spec;
    int32_at_least(e, "spec.replicas", s.replicas, 0);
    int32_at_least(e, "spec.minReadySeconds", s.min_ready_seconds, 0);
    if s.selector.is_empty() {
        e.add("spec.selector", "Required value");
    }
    for (k, v) in &s.selector {
        if let Err(msg) =
            labels::validate_label_key(k).and_then(|_| labels::validate_label_value(v))
        {
            e.add("spec.selector", msg);
        }
    }
    let Some(t) = &s.template else {
        e.add("spec.template", "Required value");
        return;
    };
    let selector = Selector::from_label_selector(&super::meta::LabelSelector {
        match_labels: s.selector.clone(),
        match_expressions: Vec::new(),
    })
    .unwrap_or_default();
    validate_template(&selector, t, "spec.template", &["Always"], e);
    if t.spec.active_deadline_seconds.is_some() {
        e.add(
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in ReplicationController is not Supported",
        );
    }
}

pub(super) fn selector_of(ls: &super::meta::LabelSelector, path: &str, e: &mut Errors) -> Selector {
    Selector::from_label_selector(ls).unwrap_or_else(|msg| {
        e.add(format!("{path}.matchExpressions"), msg);
        Selector::default()
    })
}

pub fn default_job_spec(s: &mut JobSpec) {
    s.completions.get_or_insert(1);
    s.parallelism.get_or_insert(1);
    s.backoff_limit.get_or_insert(6);
    s.template
        .spec
        .restart_policy
        .get_or_insert_with(|| "Never".into());
    default_pod_spec(&mut s.template.spec);
}

pub fn validate_job_spec(s: &JobSpec, path: &str, e: &mut Errors) {
    int32_at_least(e, &format!("{path}.completions"), s.completions, 0);
    int32_at_least(e, &format!("{path}.parallelism"), s.parallelism, 0);
    int32_at_least(e, &format!("{path}.backoffLimit"), s.backoff_limit, 0);
    at_least(
        e,
        &format!("{path}.activeDeadlineSeconds"),
        s.active_deadline_seconds,
        1,
    );
    int32_at_least(
        e,
        &format!("{path}.ttlSecondsAfterFinished"),
        s.ttl_seconds_after_finished,
        0,
    );
    let selector = s
        .selector
        .as_ref()
        .map(|ls| selector_of(ls, &format!("{path}.selector"), e))
        .unwrap_or_default();
    validate_template(
        &selector,
        &s.template,
        &format!("{path}.template"),
        &["OnFailure", "Never"],
        e,
    );
}

fn default_cron_job(c: &mut CronJob) {
    let s = &mut c.spec;
    s.concurrency_policy.get_or_insert_with(|| "Allow".into());
    s.suspend.get_or_insert(false);
    s.successful_jobs_history_limit.get_or_insert(3);
    s.failed_jobs_history_limit.get_or_insert(1);
    default_job_spec(&mut s.job_template.spec);
}

fn validate_cron_job(c: &CronJob, e: &mut Errors) {
    let s = &c.spec;
    if let Err(msg) = check_schedule_shape(&s.schedule) {
        e.add("spec.schedule", msg);
    }
    if let Some(tz) = &s.time_zone {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            e.add(
                "spec.timeZone",
                format!("{tz:?} is not a known time zone (an IANA name such as \"Europe/Paris\")"),
            );
        }
    }
    one_of(
        e,
        "spec.concurrencyPolicy",
        &s.concurrency_policy,
        &["Allow", "Forbid", "Replace"],
    );
    at_least(
        e,
        "spec.startingDeadlineSeconds",
        s.starting_deadline_seconds,
        0,
    );
    int32_at_least(
        e,
        "spec.successfulJobsHistoryLimit",
        s.successful_jobs_history_limit,
        0,
    );
    int32_at_least(
        e,
        "spec.failedJobsHistoryLimit",
        s.failed_jobs_history_limit,
        0,
    );
    validate_meta(&s.job_template.metadata, "spec.jobTemplate.metadata", e);
    validate_job_spec(&s.job_template.spec, "spec.jobTemplate.spec", e);
}

/// Checks a schedule: five cron fields or an `@hourly`-style shortcut, every value in range.
fn check_schedule_shape(schedule: &str) -> Result<(), String> {
    if schedule.trim().is_empty() {
        return Err("required: a cron schedule such as \"*/5 * * * *\" or \"@hourly\"".into());
    }
    super::cron::Schedule::parse(schedule).map(|_| ())
}

fn validate_endpoints(ep: &Endpoints, e: &mut Errors) {
    for (i, sub) in ep.subsets.iter().enumerate() {
        let sp = format!("subsets[{i}]");
        for (list, addrs) in [
            ("addresses", &sub.addresses),
            ("notReadyAddresses", &sub.not_ready_addresses),
        ] {
            for (j, a) in addrs.iter().enumerate() {
                if a.ip.parse::<std::net::Ipv4Addr>().is_err() {
                    e.add(
                        format!("{sp}.{list}[{j}].ip"),
                        format!("{:?} must be an IPv4 address", a.ip),
                    );
                }
            }
        }
        for (j, p) in sub.ports.iter().enumerate() {
            port_range(e, &format!("{sp}.ports[{j}].port"), p.port);
            one_of(
                e,
                &format!("{sp}.ports[{j}].protocol"),
                &p.protocol,
                &["TCP", "UDP"],
            );
        }
    }
}

fn default_service(svc: &mut Service) {
    let s = &mut svc.spec;
    s.type_.get_or_insert_with(|| "ClusterIP".into());
    s.session_affinity.get_or_insert_with(|| "None".into());
    // orkops clusters are IPv4 single-stack: what kube-apiserver sets on such a cluster
    if s.ip_families.is_empty() {
        s.ip_families.push("IPv4".into());
    }
    s.ip_family_policy
        .get_or_insert_with(|| "SingleStack".into());
    s.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    if s.type_.as_deref() == Some("LoadBalancer") {
        s.allocate_load_balancer_node_ports.get_or_insert(true);
    }
    for p in &mut s.ports {
        p.protocol.get_or_insert_with(|| "TCP".into());
        p.target_port.get_or_insert(IntOrString::Int(p.port));
        // 0 is the unset value of upstream's int32 (`nodePort: 0` asks for an allocated port)
        if p.node_port == Some(0) {
            p.node_port = None;
        }
    }
}

/// The address fields of a Service: IP families and policies as an IPv4 single-stack
/// kube-apiserver judges them, and the fields AWS load balancers and orkops' proxy cannot honour,
/// refused by name rather than accepted and ignored.
fn validate_service_addressing(s: &ServiceSpec, e: &mut Errors) {
    let mut families = BTreeSet::new();
    for (i, f) in s.ip_families.iter().enumerate() {
        let at = format!("spec.ipFamilies[{i}]");
        match f.as_str() {
            "IPv4" => {}
            "IPv6" => e.add(at.clone(), "Invalid value: \"IPv6\": not configured on this cluster (orkops clusters are IPv4 single-stack)"),
            _ => e.add(at.clone(), format!("Unsupported value: {f:?}: supported values: \"IPv4\", \"IPv6\"")),
        }
        if !families.insert(f) {
            e.add(at, format!("Duplicate value: {f:?}"));
        }
    }
    one_of(
        e,
        "spec.ipFamilyPolicy",
        &s.ip_family_policy,
        &["SingleStack", "PreferDualStack", "RequireDualStack"],
    );
    if s.ip_family_policy.as_deref() == Some("RequireDualStack") {
        e.add("spec.ipFamilyPolicy", "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services");
    }
    if s.internal_traffic_policy.as_deref() == Some("Local") {
        e.add("spec.internalTrafficPolicy", "\"Local\" is not supported yet: the cluster IP always spreads over every ready pod (\"Cluster\")");
    } else {
        one_of(
            e,
            "spec.internalTrafficPolicy",
            &s.internal_traffic_policy,
            &["Cluster"],
        );
    }
    one_of(
        e,
        "spec.trafficDistribution",
        &s.traffic_distribution,
        &["PreferClose"],
    );
    if s.allocate_load_balancer_node_ports == Some(false) {
        e.add("spec.allocateLoadBalancerNodePorts", "false is not supported: orkops' load balancers send traffic to the service's node ports");
    }
    if !s.external_ips.is_empty() {
        e.add("spec.externalIPs", "not supported: nodes accept service traffic on cluster IPs and node ports only; use type LoadBalancer for an outside address");
    }
    if s.load_balancer_ip
        .as_deref()
        .is_some_and(|ip| !ip.is_empty())
    {
        e.add("spec.loadBalancerIP", "AWS load balancers cannot be given an IP address (as with the in-tree AWS provider); leave it out and use the load balancer's DNS name");
    }
    for (i, p) in s.ports.iter().enumerate() {
        if let Some(proto) = &p.app_protocol {
            if let Err(msg) = labels::validate_label_key(proto) {
                e.add(
                    format!("spec.ports[{i}].appProtocol"),
                    msg.replace("label key", "appProtocol"),
                );
            }
        }
    }
}

fn validate_service(svc: &Service, e: &mut Errors) {
    let s = &svc.spec;
    one_of(
        e,
        "spec.type",
        &s.type_,
        &["ClusterIP", "NodePort", "LoadBalancer"],
    );
    one_of(
        e,
        "spec.sessionAffinity",
        &s.session_affinity,
        &["None", "ClientIP"],
    );
    if s.external_traffic_policy.as_deref() == Some("Local") {
        e.add(
            "spec.externalTrafficPolicy",
            "\"Local\" is not supported yet: node ports always spread over every ready pod (\"Cluster\")",
        );
    } else {
        one_of(
            e,
            "spec.externalTrafficPolicy",
            &s.external_traffic_policy,
            &["Cluster"],
        );
    }
    validate_service_addressing(s, e);
    if let Some(t) = s
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
    {
        if !(1..=86400).contains(&t) {
            e.add(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                format!("{t} must be between 1 and 86400"),
            );
        }
    }
    let headless = s.cluster_ip.as_deref() == Some("None");
    if s.ports.is_empty() && !headless {
        e.add("spec.ports", "required: a service needs at least one port");
    }
    if let Some(ip) = s.cluster_ip.as_deref() {
        if !ip.is_empty() && ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_err() {
            e.add(
                "spec.clusterIP",
                format!("{ip:?} must be an IPv4 address, \"None\" or empty"),
            );
        }
    }
    let node_ports = matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, p) in s.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        port_range(e, &format!("{pp}.port"), p.port);
        one_of(e, &format!("{pp}.protocol"), &p.protocol, &["TCP", "UDP"]);
        match &p.name {
            Some(n) if !labels::is_dns_label(n) => {
                e.add(format!("{pp}.name"), format!("{n:?} must be a DNS label"))
            }
            Some(n) if !names.insert(n.as_str()) => {
                e.add(format!("{pp}.name"), format!("duplicate port name {n:?}"))
            }
            None if s.ports.len() > 1 => e.add(
                format!("{pp}.name"),
                "required when a service has more than one port",
            ),
            _ => {}
        }
        if !seen.insert((p.port, p.protocol.clone())) {
            e.add(
                format!("{pp}.port"),
                format!("duplicate port {} for the same protocol", p.port),
            );
        }
        match &p.target_port {
            Some(IntOrString::Int(t)) => port_range(e, &format!("{pp}.targetPort"), *t),
            Some(IntOrString::String(n)) if !labels::is_dns_label(n) => e.add(
                format!("{pp}.targetPort"),
                format!("{n:?} must be a port number or a container port name"),
            ),
            _ => {}
        }
        if let Some(np) = p.node_port {
            if !node_ports {
                e.add(
                    format!("{pp}.nodePort"),
                    "may only be set for type NodePort or LoadBalancer",
                );
            } else if !(30000..=32767).contains(&np) {
                e.add(
                    format!("{pp}.nodePort"),
                    format!("invalid value {np}: must be between 30000 and 32767"),
                );
            }
        }
    }
    for r in &s.load_balancer_source_ranges {
        if r.split_once('/').is_none_or(|(ip, len)| {
            ip.parse::<std::net::Ipv4Addr>().is_err() || len.parse::<u8>().map_or(true, |l| l > 32)
        }) {
            e.add(
                "spec.loadBalancerSourceRanges",
                format!("{r:?} is not an IPv4 CIDR"),
            );
        }
    }
}

fn valid_data_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn validate_config_map(c: &ConfigMap, e: &mut Errors) {
    for k in c.data.keys().chain(c.binary_data.keys()) {
        if !valid_data_key(k) {
            e.add(
                "data",
                format!("key {k:?} must consist of letters, digits, '-', '_' or '.'"),
            );
        }
        if c.data.contains_key(k) && c.binary_data.contains_key(k) {
            e.add("binaryData", format!("key {k:?} is also in data"));
        }
    }
    for (k, v) in &c.binary_data {
        if base64::engine::general_purpose::STANDARD.decode(v).is_err() {
            e.add(format!("binaryData.{k}"), "must be base64");
        }
    }
}

fn default_secret(s: &mut Secret) {
    s.type_.get_or_insert_with(|| "Opaque".into());
    for (k, v) in std::mem::take(&mut s.string_data) {
        s.data
            .insert(k, base64::engine::general_purpose::STANDARD.encode(v));
    }
}

fn validate_secret(s: &Secret, e: &mut Errors) {
    for (k, v) in &s.data {
        if !valid_data_key(k) {
            e.add(
                "data",
                format!("key {k:?} must consist of letters, digits, '-', '_' or '.'"),
            );
        }
        if base64::engine::general_purpose::STANDARD.decode(v).is_err() {
            // never echo the value: it is secret
            e.add(
                format!("data.{k}"),
                "must be base64 (use stringData for plain text)",
            );
        }
    }
}

fn default_pvc(p: &mut PersistentVolumeClaim) {
    p.spec
        .volume_mode
        .get_or_insert_with(|| "Filesystem".into());
}

/// As kube-apiserver's ValidatePersistentVolumeClaim: access modes and a storage request,
/// a valid selector and names; a data source is refused (orkops populates no volume).
pub(super) fn validate_pvc(p: &PersistentVolumeClaim, e: &mut Errors) {
    let s = &p.spec;
    if s.access_modes.is_empty() {
        e.add(
            "spec.accessModes",
            "Required value: at least 1 access mode is required",
        );
    }
    storage::validate_access_modes(&s.access_modes, "spec.accessModes", false, e);
    storage::validate_volume_mode(&s.volume_mode, "spec.volumeMode", e);
    let requests = s.resources.as_ref().map(|r| &r.requests);
    match requests.and_then(|r| r.get("storage")) {
        None => e.add("spec.resources[storage]", "Required value"),
        Some(q) => {
            quantity(e, "spec.resources.requests.storage", q);
            if q.millis().is_ok_and(|m| m <= 0) {
                e.add(
                    "spec.resources[storage]",
                    format!("Invalid value: {:?}: must be greater than zero", q.0),
                );
            }
        }
    }
    if let Some(r) = &s.resources {
        for k in r.requests.keys().chain(r.limits.keys()) {
            if k != "storage" {
                e.add(
                    format!("spec.resources.requests.{k}"),
                    "unsupported resource: use storage",
                );
            }
        }
        if let Some(q) = r.limits.get("storage") {
            quantity(e, "spec.resources.limits.storage", q);
        }
    }
    if let Some(sel) = &s.selector {
        selector_of(sel, "spec.selector", e);
    }
    let subdomain = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
    for (field, v) in [
        ("spec.storageClassName", s.storage_class_name.as_deref()),
        ("spec.volumeName", s.volume_name.as_deref()),
    ] {
        if let Some(n) = v.filter(|n| !n.is_empty() && !labels::is_dns_subdomain(n)) {
            e.add(field, format!("Invalid value: {n:?}: {subdomain}"));
        }
    }
    for (field, set) in [
        ("spec.dataSource", s.data_source.is_some()),
        ("spec.dataSourceRef", s.data_source_ref.is_some()),
    ] {
        if set {
            e.add(
                field,
                "Unsupported value: orkops' provisioner makes empty volumes only (no clone of a claim, no restore of a snapshot); hint: create the claim without it and copy the data in from a pod",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let v = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "imagee": "busybox"}]}});
        let err = admit(Kind::Pod, v).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(
            err[0].field.starts_with("spec.containers[0]"),
            "{:?}",
            err[0]
        );
        assert!(err[0].message.contains("imagee"), "{:?}", err[0]);
        // worded as kube-apiserver's strict decoding, with what orkops serves there
        assert!(
            err[0]
                .message
                .starts_with("strict decoding error: unknown field \"spec.containers[0].imagee\"")
                && err[0].message.contains("volumeMounts"),
            "{:?}",
            err[0]
        );
    }

    #[test]
    fn container_resources_are_sorted_as_kubernetes_sorts_them() {
        let pod = |resources: Value| {
            json!({"metadata": {"name": "x"}, "spec": {"containers": [
                {"name": "a", "image": "busybox:1", "resources": resources}]}})
        };
        let ok = pod(json!({
            "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi",
                       "nvidia.com/gpu": "1", "hugepages-2Mi": "64Mi"},
            "requests": {"cpu": "500m", "ephemeral-storage": "1Gi", "nvidia.com/gpu": "1",
                         "hugepages-2Mi": "64Mi"}}));
        assert!(admit(Kind::Pod, ok).is_ok());
        let refused = |resources: Value, field: &str, words: &str| {
            let err = admit(Kind::Pod, pod(resources)).unwrap_err();
            assert!(
                err.iter()
                    .any(|e| e.field == field && e.message.contains(words)),
                "{field}: {err:?}"
            );
        };
        let at = "spec.containers[0].resources";
        refused(
            json!({"limits": {"gpu": "1"}}),
            &format!("{at}.limits.gpu"),
            "must be a standard resource",
        );
        refused(
            json!({"limits": {"storage": "1Gi"}}),
            &format!("{at}.limits.storage"),
            "must be a standard resource",
        );
        refused(
            json!({"limits": {"kubernetes.io/made-up": "1"}}),
            &format!("{at}.limits.kubernetes.io/made-up"),
            "standard resource",
        );
        refused(
            json!({"limits": {"example.com/dev": "500m"}}),
            &format!("{at}.limits.example.com/dev"),
            "must be an integer",
        );
        refused(
            json!({"limits": {"example.com/dev": "2"}, "requests": {"example.com/dev": "1"}}),
            &format!("{at}.requests.example.com/dev"),
            "must be equal to example.com/dev limit",
        );
        refused(
            json!({"requests": {"example.com/dev": "1"}}),
            &format!("{at}.limits.example.com/dev"),
            "Limit must be set",
        );
        refused(
            json!({"limits": {"hugepages-2Mi": "2Mi"}}),
            at,
            "HugePages require cpu or memory",
        );
    }

    #[test]
    fn node_port_zero_is_unset_and_other_platforms_volumes_are_refused_by_name() {
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP",
            "ports": [{"port": 80, "nodePort": 0}]}});
        let out = admit(Kind::Service, svc).unwrap();
        assert!(out["spec"]["ports"][0].get("nodePort").is_none(), "{out}");
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        assert_eq!(
            admit(Kind::Service, svc).unwrap_err()[0].field,
            "spec.ports[0].nodePort"
        );
        let pod = json!({"metadata": {"name": "x"}, "spec": {
            "containers": [{"name": "a", "image": "busybox:1"}],
            "volumes": [{"name": "d", "awsElasticBlockStore": {"volumeID": "vol-1"}}]}});
        let err = admit(Kind::Pod, pod).unwrap_err();
        assert!(
            err[0]
                .message
                .contains("does not serve the awsElasticBlockStore volume plugin")
                && err[0].message.contains("persistentVolumeClaim"),
            "{err:?}"
        );
    }

    #[test]
    fn services_get_the_ipv4_single_stack_defaults_and_unservable_fields_are_refused() {
        let svc = |extra: Value| {
            let mut spec = json!({"type": "LoadBalancer", "selector": {"app": "a"},
                "ports": [{"port": 80, "appProtocol": "http"}]});
            spec.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"metadata": {"name": "s"}, "spec": spec})
        };
        let out = admit(
            Kind::Service,
            svc(json!({"publishNotReadyAddresses": true,
            "ipFamilyPolicy": "PreferDualStack", "trafficDistribution": "PreferClose"})),
        )
        .unwrap();
        assert_eq!(out["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(out["spec"]["ipFamilyPolicy"], "PreferDualStack");
        assert_eq!(out["spec"]["internalTrafficPolicy"], "Cluster");
        assert_eq!(out["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(out["spec"]["ports"][0]["appProtocol"], "http");
        let plain = admit(Kind::Service, svc(json!({}))).unwrap();
        assert_eq!(plain["spec"]["ipFamilyPolicy"], "SingleStack");
        for (extra, field, words) in [
            (
                json!({"ipFamilies": ["IPv6"]}),
                "spec.ipFamilies[0]",
                "not configured on this cluster",
            ),
            (
                json!({"ipFamilyPolicy": "RequireDualStack"}),
                "spec.ipFamilyPolicy",
                "dual-stack",
            ),
            (
                json!({"internalTrafficPolicy": "Local"}),
                "spec.internalTrafficPolicy",
                "not supported yet",
            ),
            (
                json!({"allocateLoadBalancerNodePorts": false}),
                "spec.allocateLoadBalancerNodePorts",
                "node ports",
            ),
            (
                json!({"externalIPs": ["1.2.3.4"]}),
                "spec.externalIPs",
                "not supported",
            ),
            (
                json!({"loadBalancerIP": "1.2.3.4"}),
                "spec.loadBalancerIP",
                "AWS load balancers",
            ),
        ] {
            let err = admit(Kind::Service, svc(extra)).unwrap_err();
            assert!(
                err.iter()
                    .any(|e| e.field == field && e.message.contains(words)),
                "{field}: {err:?}"
            );
        }
    }

    #[test]
    fn a_volume_without_a_source_is_an_empty_dir() {
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "containers": [{"name": "a", "image": "busybox:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data"}]}});
        let out = admit(Kind::Pod, v).unwrap();
        assert_eq!(out["spec"]["volumes"][0]["emptyDir"], json!({}));
    }

    #[test]
    fn kubectl_runs_pods_take_cluster_first_dns_and_stdin_once() {
        let pod = |dns: &str| {
            json!({"metadata": {"name": "x"}, "spec": {"dnsPolicy": dns, "containers": [
                {"name": "a", "image": "busybox:1", "stdin": true, "stdinOnce": true}]}})
        };
        let out = admit(Kind::Pod, pod("ClusterFirst")).unwrap();
        assert_eq!(out["spec"]["containers"][0]["stdinOnce"], true);
        let err = admit(Kind::Pod, pod("Sometimes")).unwrap_err();
        assert_eq!(err[0].field, "spec.dnsPolicy");
        assert!(err[0].message.contains("ClusterFirst"), "{:?}", err[0]);
        let err = admit(Kind::Pod, pod("None")).unwrap_err();
        assert_eq!(err[0].field, "spec.dnsConfig");
    }

    #[test]
    fn init_containers_are_defaulted_and_validated_like_containers() {
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "initContainers": [{"name": "a", "image": "busybox"}],
            "containers": [{"name": "b", "image": "busybox:1"}]}});
        let out = admit(Kind::Pod, v).unwrap();
        assert_eq!(
            out["spec"]["initContainers"][0]["imagePullPolicy"],
            "Always"
        );
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "initContainers": [{"name": "a", "image": "busybox:1",
                "readinessProbe": {"exec": {"command": ["true"]}}}],
            "containers": [{"name": "a", "image": "busybox:1"}]}});
        let err = admit(Kind::Pod, v).unwrap_err();
        let text: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&"spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always".to_string()),
            "{text:?}"
        );
        assert!(
            text.contains(&"spec.containers[0].name: Duplicate value: \"a\"".to_string()),
            "{text:?}"
        );
        // fields orkops does not serve stay refused by path
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "containers": [{"name": "b", "image": "busybox:1", "volumeDevices": []}]}});
        let err = admit(Kind::Pod, v).unwrap_err();
        assert!(err[0].message.contains("volumeDevices"), "{:?}", err[0]);
        // a sidecar may have probes and hooks
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "initContainers": [{"name": "s", "image": "busybox:1", "restartPolicy": "Always",
                "readinessProbe": {"exec": {"command": ["true"]}}}],
            "containers": [{"name": "b", "image": "busybox:1"}]}});
        admit(Kind::Pod, v).unwrap();
    }

    #[test]
    fn security_contexts_are_refused_as_kubernetes_words_it() {
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "securityContext": {"runAsUser": -1, "supplementalGroups": [1, 3000000000i64],
                "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
            "containers": [{"name": "b", "image": "busybox:1", "securityContext": {
                "privileged": true, "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["net admin"]},
                "seccompProfile": {"type": "Bogus"}}}]}});
        let err = admit(Kind::Pod, v).unwrap_err();
        let text: Vec<String> = err.iter().map(ToString::to_string).collect();
        for want in [
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
            "spec.securityContext.supplementalGroups[1]: Invalid value: 3000000000: must be between 0 and 2147483647, inclusive",
            "spec.containers[0].securityContext: Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
        ] {
            assert!(text.iter().any(|t| t == want), "{want} not in {text:?}");
        }
        assert!(
            text.iter().any(|t| t.starts_with(
                "spec.securityContext.seccompProfile.type: Unsupported value: \"Localhost\""
            ) && t.contains("hint")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.starts_with("spec.containers[0].securityContext.seccompProfile.type: Unsupported value: \"Bogus\"")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("spec.containers[0].securityContext.capabilities.drop[0]")),
            "{text:?}"
        );
        let ok = json!({"metadata": {"name": "x"}, "spec": {
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": true, "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "b", "image": "busybox:1", "securityContext": {
                "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]}});
        admit(Kind::Pod, ok).unwrap();
    }

    #[test]
    fn tolerations_and_taints_are_refused_as_kubernetes_words_it() {
        let v = json!({"metadata": {"name": "x"}, "spec": {
            "tolerations": [
                {"operator": "Equal", "value": "x"},
                {"key": "k", "operator": "Exists", "value": "v"},
                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "containers": [{"name": "b", "image": "busybox:1"}]}});
        let err = admit(Kind::Pod, v).unwrap_err();
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.tolerations[0].operator",
                "spec.tolerations[1].operator",
                "spec.tolerations[2].effect"
            ],
            "{err:?}"
        );
        assert!(err[2]
            .message
            .contains("effect must be 'NoExecute' when `tolerationSeconds` is set"));
        let node = json!({"metadata": {"name": "n"}, "spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"},
            {"key": "b", "effect": "NoExecute"}, {"key": "", "effect": "Never"}]}});
        let err = admit(Kind::Node, node).unwrap_err();
        let fields: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.taints[1]",
                "spec.taints[2].effect",
                "spec.taints[3].key",
                "spec.taints[3].effect"
            ],
            "{err:?}"
        );
        assert!(err[1].message.contains("hint"), "{err:?}");
    }

    #[test]
    fn wrong_types_are_named_with_their_path() {
        let v = json!({"metadata": {"name": "x"}, "spec": {"replicas": "three", "selector": {}}});
        let err = admit(Kind::Deployment, v).unwrap_err();
        assert_eq!(err[0].field, "spec.replicas");
    }

    #[test]
    fn deployment_defaults_roll_one_pod_at_a_time() {
        let v = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "busybox:1"}]}}}});
        let out = admit(Kind::Deployment, v).unwrap();
        assert_eq!(out["spec"]["replicas"], 1);
        assert_eq!(out["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
        assert_eq!(
            out["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn semantic_errors_name_every_bad_field() {
        let v = json!({"metadata": {"name": "web"}, "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "w", "image": ""}]}}}});
        let err = admit(Kind::Deployment, v).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.replicas"), "{fields:?}");
        assert!(
            fields.contains(&"spec.template.metadata.labels"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.template.spec.containers[0].image"),
            "{fields:?}"
        );
    }

    #[test]
    fn a_replica_set_needs_a_selector_matching_its_template_and_int32_replicas() {
        let rs = |replicas: Value, selector: Value| {
            json!({"metadata": {"name": "web-1"}, "spec": {
                "replicas": replicas, "selector": selector,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "busybox:1"}]}}}})
        };
        let ok = admit(
            Kind::ReplicaSet,
            rs(json!(2), json!({"matchLabels": {"app": "web"}})),
        )
        .unwrap();
        assert_eq!(ok["spec"]["minReadySeconds"], 0);
        let mut no_replicas = rs(json!(1), json!({"matchLabels": {"app": "web"}}));
        no_replicas["spec"]
            .as_object_mut()
            .unwrap()
            .remove("replicas");
        assert_eq!(
            admit(Kind::ReplicaSet, no_replicas).unwrap()["spec"]["replicas"],
            1
        );
        let err = admit(
            Kind::ReplicaSet,
            rs(json!(-1), json!({"matchLabels": {"app": "db"}})),
        )
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"spec.replicas"), "{fields:?}");
        assert!(
            fields.contains(&"spec.template.metadata.labels"),
            "{fields:?}"
        );
        let err = admit(Kind::ReplicaSet, rs(json!(2147483648_i64), json!({}))).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.replicas") && fields.contains(&"spec.selector"),
            "{fields:?}"
        );
    }

    #[test]
    fn a_replication_controller_selects_its_template_labels_by_default() {
        let rc = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2,
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "busybox:1"}]}}}});
        let out = admit(Kind::ReplicationController, rc).unwrap();
        assert_eq!(out["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let bad = json!({"metadata": {"name": "web"}, "spec": {"replicas": -1, "selector": {"app": "db"},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "w", "image": "busybox:1"}]}}}});
        let err = admit(Kind::ReplicationController, bad).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "spec.replicas",
            "spec.template.metadata.labels",
            "spec.template.spec.restartPolicy",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
        let err = admit(
            Kind::ReplicationController,
            json!({"metadata": {"name": "x"}}),
        )
        .unwrap_err();
        let text: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "spec.selector: Required value",
                "spec.template: Required value"
            ]
        );
    }

    #[test]
    fn a_claim_needs_modes_and_a_request_and_refuses_data_sources() {
        let err = admit(
            Kind::PersistentVolumeClaim,
            json!({"metadata": {"name": "c"}, "spec": {"dataSource": {"kind": "PersistentVolumeClaim", "name": "src"}}}),
        )
        .unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.accessModes",
                "spec.resources[storage]",
                "spec.dataSource"
            ]
        );
        let ok = admit(
            Kind::PersistentVolumeClaim,
            json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "volumeName": "pv1", "selector": {"matchLabels": {"disk": "ssd"}},
                "resources": {"requests": {"storage": "1Gi"}}}}),
        )
        .unwrap();
        assert_eq!(ok["spec"]["volumeMode"], "Filesystem");
        assert_eq!(ok["spec"]["volumeName"], "pv1");
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let v = json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}});
        let out = admit(Kind::Secret, v).unwrap();
        assert_eq!(out["data"]["password"], "aHVudGVyMg==");
        assert!(out.get("stringData").is_none());
    }

    #[test]
    fn service_ports_are_checked() {
        let v = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "nodePort": 31000}]}});
        let err = admit(Kind::Service, v).unwrap_err();
        assert_eq!(err[0].field, "spec.ports[0].nodePort");
        let ok = admit(
            Kind::Service,
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap();
        assert_eq!(ok["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(ok["spec"]["type"], "ClusterIP");
    }

    fn deployment(spec_extra: Value) -> Value {
        let mut v = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "w", "image": "busybox:1"}]}}}});
        for (k, x) in spec_extra.as_object().unwrap() {
            v["spec"][k] = x.clone();
        }
        v
    }

    #[test]
    fn int32_counts_are_refused_above_their_range() {
        let err = admit(
            Kind::Deployment,
            deployment(json!({"replicas": 2147483648u64})),
        )
        .unwrap_err();
        assert_eq!(
            err[0].to_string(),
            "spec.replicas: invalid value 2147483648: must be <= 2147483647"
        );
        assert!(admit(
            Kind::Deployment,
            deployment(json!({"replicas": 2147483647}))
        )
        .is_ok());
        let err = admit(
            Kind::Deployment,
            deployment(json!({"strategy": {"rollingUpdate": {"maxSurge": 4294967296u64}}})),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "spec.strategy.rollingUpdate.maxSurge");
        let err = admit(
            Kind::Deployment,
            deployment(json!({"strategy": {"rollingUpdate": {"maxSurge": "92233720368547758%"}}})),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "spec.strategy.rollingUpdate.maxSurge");
        let job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3000000000u64, "completions": 2147483648u64,
            "template": {"spec": {"containers": [{"name": "w", "image": "busybox:1"}]}}}});
        let err = admit(Kind::Job, job).unwrap_err();
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.completions", "spec.parallelism"]);
    }

    #[test]
    fn huge_and_fractional_numbers_are_refused_with_the_field_named() {
        for body in [
            r#"{"replicas": 99999999999999999999}"#,
            r#"{"replicas": 1.5}"#,
            r#"{"replicas": 18446744073709551615}"#,
        ] {
            let extra: Value = serde_json::from_str(body).unwrap();
            let err = admit(Kind::Deployment, deployment(extra)).unwrap_err();
            assert_eq!(err[0].field, "spec.replicas", "{body}: {err:?}");
            assert!(
                err[0].message.starts_with("invalid value"),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn cron_schedules_need_five_fields() {
        assert!(check_schedule_shape("*/5 * * * *").is_ok());
        assert!(check_schedule_shape("@hourly").is_ok());
        assert!(check_schedule_shape("* * *").is_err());
        assert!(check_schedule_shape("@sometimes").is_err());
    }

    fn daemon_set(spec_extra: Value) -> Value {
        let mut spec = json!({"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}});
        for (k, v) in spec_extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": spec})
    }

    #[test]
    fn daemon_sets_default_to_rolling_one_node_at_a_time() {
        let out = admit(Kind::DaemonSet, daemon_set(json!({}))).unwrap();
        assert_eq!(
            out["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(out["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            out["metadata"]["annotations"][DAEMON_SET_TEMPLATE_GENERATION],
            "1"
        );
        let on_delete = daemon_set(json!({"updateStrategy": {"type": "OnDelete"}}));
        let out = admit(Kind::DaemonSet, on_delete).unwrap();
        assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn daemon_sets_are_refused_as_kube_apiserver_refuses_them() {
        let fields = |extra: Value| -> Vec<String> {
            admit(Kind::DaemonSet, daemon_set(extra))
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(
            fields(json!({"selector": {"matchLabels": {"app": "other"}}})),
            ["spec.template.metadata.labels"]
        );
        assert_eq!(fields(json!({"selector": {}})), ["spec.selector"]);
        let never = json!({"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "image": "agent:1"}]}}});
        assert_eq!(fields(never), ["spec.template.spec.restartPolicy"]);
        let both =
            json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}});
        assert_eq!(fields(both), ["spec.updateStrategy.rollingUpdate.maxSurge"]);
        let neither = json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": "0%"}}});
        assert_eq!(
            fields(neither),
            ["spec.updateStrategy.rollingUpdate.maxUnavailable"]
        );
        let odd = json!({"updateStrategy": {"type": "Recreate"}});
        assert_eq!(fields(odd), ["spec.updateStrategy.type"]);
        assert_eq!(
            fields(json!({"minReadySeconds": -1, "revisionHistoryLimit": 2147483648_i64})),
            ["spec.minReadySeconds", "spec.revisionHistoryLimit"]
        );
        // maxSurge alone keeps the default maxUnavailable 1: refused, as upstream
        let surge = json!({"updateStrategy": {"rollingUpdate": {"maxSurge": 1}}});
        assert_eq!(
            fields(surge),
            ["spec.updateStrategy.rollingUpdate.maxSurge"]
        );
        let surge_only =
            json!({"updateStrategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
        assert!(admit(Kind::DaemonSet, daemon_set(surge_only)).is_ok());
    }
}
