//! The `apps/v1` StatefulSet: pods with a stable identity (`NAME-ORDINAL`, a hostname under the
//! governing headless service) and stable storage (a claim per pod from each of its
//! `volumeClaimTemplates`), created, updated and removed in ordinal order. The types, with every
//! field of upstream's `StatefulSetSpec` and `StatefulSetStatus`, and the label names the
//! controller puts on its pods; their defaults and validation (see `admit`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::admit::{self, Errors};
use super::core::{
    object, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodTemplateSpec, Volume,
};
use super::labels;
use super::meta::{Condition, IntOrString, LabelSelector, ObjectMeta};

/// On a StatefulSet's pod: the pod's own name (selects one pod of the set).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// On a StatefulSet's pod: its ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// On a StatefulSet's pod: the name of the ControllerRevision it was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// On a ControllerRevision: the hash its name ends with.
pub const REVISION_HASH_LABEL: &str = "controller.kubernetes.io/hash";

object!(
    /// StatefulSet represents a set of pods with consistent identities. Identities are defined as: network (a single stable DNS and hostname) and storage (as many VolumeClaims as requested). The StatefulSet guarantees that a given network identity will always map to the same storage identity.
    StatefulSet { spec: StatefulSetSpec, status: StatefulSetStatus }
);

/// A StatefulSetSpec is the specification of a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetSpec {
    /// replicas is the desired number of replicas of the given Template. These are replicas in the sense that they are instantiations of the same Template, but individual replicas also have a consistent identity. If unspecified, defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// selector is a label query over pods that should match the replica count. It must match the pod template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// template is the object that describes the pod that will be created if insufficient replicas are detected. Each pod stamped out by the StatefulSet will fulfill this Template, but have a unique identity from the rest of the StatefulSet. Each pod will be named with the format <statefulsetname>-<podindex>. For example, a pod in a StatefulSet named "web" with index number "3" would be named "web-3". The only allowed template.spec.restartPolicy value is "Always".
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// volumeClaimTemplates is a list of claims that pods are allowed to reference. The StatefulSet controller is responsible for mapping network identities to claims in a way that maintains the identity of a pod. Every claim in this list must have at least one matching (by name) volumeMount in one container in the template. A claim in this list takes precedence over any volumes in the template, with the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub volume_claim_templates: Vec<PersistentVolumeClaim>,
    /// serviceName is the name of the service that governs this StatefulSet. This service must exist before the StatefulSet, and is responsible for the network identity of the set. Pods get DNS/hostnames that follow the pattern: pod-specific-string.serviceName.default.svc.cluster.local where "pod-specific-string" is managed by the StatefulSet controller.
    #[serde(default)]
    pub service_name: String,
    /// podManagementPolicy controls how pods are created during initial scale up, when replacing pods on nodes, or when scaling down. The default policy is `OrderedReady`, where pods are created in increasing order (pod-0, then pod-1, etc) and the controller will wait until each pod is ready before continuing. When scaling down, the pods are removed in the opposite order. The alternative policy is `Parallel` which will create pods in parallel to match the desired scale without waiting, and on scale down will delete all pods at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<String>,
    /// updateStrategy indicates the StatefulSetUpdateStrategy that will be employed to update Pods in the StatefulSet when a revision is made to Template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    /// revisionHistoryLimit is the maximum number of revisions that will be maintained in the StatefulSet's revision history. The revision history consists of all revisions not represented by a currently applied StatefulSetSpec version. The default value is 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Minimum number of seconds for which a newly created pod should be ready without any of its container crashing for it to be considered available. Defaults to 0 (pod will be considered available as soon as it is ready)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i64>,
    /// persistentVolumeClaimRetentionPolicy describes the lifecycle of persistent volume claims created from volumeClaimTemplates. By default, all persistent volume claims are created as needed and retained until manually deleted. This policy allows the lifecycle to be altered, for example by deleting persistent volume claims when their stateful set is deleted, or when their pod is scaled down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy:
        Option<StatefulSetPersistentVolumeClaimRetentionPolicy>,
    /// ordinals controls the numbering of replica indices in a StatefulSet. The default ordinals behavior assigns a "0" index to the first replica and increments the index by one for each additional replica requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinals: Option<StatefulSetOrdinals>,
}

/// StatefulSetUpdateStrategy indicates the strategy that the StatefulSet controller will use to perform updates. It includes any additional parameters necessary to perform the update for the indicated strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetUpdateStrategy {
    /// Type indicates the type of the StatefulSetUpdateStrategy. Default is RollingUpdate.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// RollingUpdate is used to communicate parameters when Type is RollingUpdateStatefulSetStrategyType.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStatefulSetStrategy>,
}

/// RollingUpdateStatefulSetStrategy is used to communicate parameter for RollingUpdateStatefulSetStrategyType.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateStatefulSetStrategy {
    /// Partition indicates the ordinal at which the StatefulSet should be partitioned for updates. During a rolling update, all pods from ordinal Replicas-1 to Partition are updated. All pods from ordinal Partition-1 to 0 remain untouched. This is helpful in being able to do a canary based deployment. The default value is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i64>,
    /// The maximum number of pods that can be unavailable during the update. Value can be an absolute number (ex: 5) or a percentage of desired pods (ex: 10%). Absolute number is calculated from percentage by rounding up. This can not be 0. Defaults to 1. The field applies to all pods in the range 0 to Replicas-1. That means if there is any unavailable pod in the range 0 to Replicas-1, it will be counted towards MaxUnavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// StatefulSetPersistentVolumeClaimRetentionPolicy describes the policy used for PVCs created from the StatefulSet VolumeClaimTemplates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetPersistentVolumeClaimRetentionPolicy {
    /// WhenDeleted specifies what happens to PVCs created from StatefulSet VolumeClaimTemplates when the StatefulSet is deleted. The default policy of `Retain` causes PVCs to not be affected by StatefulSet deletion. The `Delete` policy causes those PVCs to be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<String>,
    /// WhenScaled specifies what happens to PVCs created from StatefulSet VolumeClaimTemplates when the StatefulSet is scaled down. The default policy of `Retain` causes PVCs to not be affected by a scaledown. The `Delete` policy causes the associated PVCs for any excess pods above the replica count to be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_scaled: Option<String>,
}

/// StatefulSetOrdinals describes the policy used for replica ordinal assignment in this StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetOrdinals {
    /// start is the number representing the first replica's index. It may be used to number replicas from an alternate index (eg: 1-indexed) over the default 0-indexed names, or to orchestrate progressive movement of replicas from one StatefulSet to another. If set, replica indices will be in the range: [.spec.ordinals.start, .spec.ordinals.start + .spec.replicas). If unset, defaults to 0. Replica indices will be in the range: [0, .spec.replicas).
    #[serde(default)]
    pub start: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// StatefulSetStatus represents the current state of a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetStatus {
    /// observedGeneration is the most recent generation observed for this StatefulSet. It corresponds to the StatefulSet's generation, which is updated on mutation by the API Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// replicas is the number of Pods created by the StatefulSet controller.
    #[serde(default)]
    pub replicas: i64,
    /// readyReplicas is the number of pods created for this StatefulSet with a Ready Condition.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ready_replicas: i64,
    /// currentReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by currentRevision.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current_replicas: i64,
    /// updatedReplicas is the number of Pods created by the StatefulSet controller from the StatefulSet version indicated by updateRevision.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_replicas: i64,
    /// currentRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [0,currentReplicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// updateRevision, if not empty, indicates the version of the StatefulSet used to generate Pods in the sequence [replicas-updatedReplicas,replicas)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// collisionCount is the count of hash collisions for the StatefulSet. The StatefulSet controller uses this field as a collision avoidance mechanism when it needs to create the name for the newest ControllerRevision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i64>,
    /// Represents the latest available observations of a statefulset's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-patch-merge-key" = "type", "x-kubernetes-patch-strategy" = "merge", "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Total number of available pods (ready for at least minReadySeconds) targeted by this statefulset.
    #[serde(default)]
    pub available_replicas: i64,
}

impl StatefulSet {
    /// `spec.replicas`, defaulted, never negative.
    pub fn replicas(&self) -> i64 {
        self.spec.replicas.unwrap_or(1).max(0)
    }

    /// The first ordinal (`spec.ordinals.start`, 0 when unset).
    pub fn start_ordinal(&self) -> i64 {
        self.spec.ordinals.as_ref().map_or(0, |o| o.start.max(0))
    }

    /// `spec.podManagementPolicy` is `Parallel`.
    pub fn parallel(&self) -> bool {
        self.spec.pod_management_policy.as_deref() == Some("Parallel")
    }

    /// `spec.updateStrategy.type`, defaulted.
    pub fn strategy(&self) -> &str {
        self.spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref())
            .unwrap_or("RollingUpdate")
    }

    /// The claim retention policy, `(whenDeleted, whenScaled)`, each `Retain` unless `Delete`.
    pub fn retention(&self) -> (bool, bool) {
        let p = self.spec.persistent_volume_claim_retention_policy.as_ref();
        let delete = |v: Option<&String>| v.is_some_and(|v| v == "Delete");
        (
            delete(p.and_then(|p| p.when_deleted.as_ref())),
            delete(p.and_then(|p| p.when_scaled.as_ref())),
        )
    }

    /// The name of the pod of `ordinal`: `NAME-ORDINAL`.
    pub fn pod_name(&self, ordinal: i64) -> String {
        format!("{}-{ordinal}", self.metadata.name())
    }

    /// The name of the claim of template `template` for the pod of `ordinal`:
    /// `TEMPLATE-NAME-ORDINAL`.
    pub fn claim_name(&self, template: &str, ordinal: i64) -> String {
        format!("{template}-{}-{ordinal}", self.metadata.name())
    }
}

/// The ordinal of a pod of set `set` from the pod's name (`set-3` -> 3), if it is one.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i64> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i32>().ok().map(i64::from)
}

/// The pod template as the pods of `set` get it: each volume named like a claim template
/// replaced by (or, with no such volume, added as) that claim of the pod of `ordinal`, as
/// upstream's `updateStorage` does.
pub fn template_with_claims(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    ordinal: i64,
) -> PodTemplateSpec {
    let mut t = template.clone();
    for c in &set.spec.volume_claim_templates {
        let name = c.metadata.name().to_string();
        let volume = Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: set.claim_name(&name, ordinal),
                read_only: Some(false),
            }),
            ..Default::default()
        };
        match t.spec.volumes.iter_mut().find(|v| v.name == name) {
            Some(v) => *v = volume,
            None => t.spec.volumes.push(volume),
        }
    }
    t
}

/// Upstream's defaults (`SetDefaults_StatefulSet`, and the claim templates' as claims').
pub(super) fn default_stateful_set(s: &mut StatefulSet) {
    let sp = &mut s.spec;
    sp.replicas.get_or_insert(1);
    sp.pod_management_policy
        .get_or_insert_with(|| "OrderedReady".into());
    sp.revision_history_limit.get_or_insert(10);
    let st = sp.update_strategy.get_or_insert_with(Default::default);
    if st.type_.get_or_insert_with(|| "RollingUpdate".into()) == "RollingUpdate" {
        let ru = st.rolling_update.get_or_insert_with(Default::default);
        ru.partition.get_or_insert(0);
    }
    let p = sp
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(Default::default);
    p.when_deleted.get_or_insert_with(|| "Retain".into());
    p.when_scaled.get_or_insert_with(|| "Retain".into());
    for c in &mut sp.volume_claim_templates {
        c.spec
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
        c.status
            .get_or_insert_with(Default::default)
            .phase
            .get_or_insert_with(|| "Pending".into());
    }
    admit::default_pod_spec(&mut sp.template.spec);
}

/// Upstream's `ValidateStatefulSetSpec`, in its words where orkops has none of its own; the
/// pod template is checked as its pods will be made (with the claims in place of the volumes
/// of the same name), so a set whose pods could not be created is refused here.
pub(super) fn validate_stateful_set(s: &StatefulSet, e: &mut Errors) {
    let sp = &s.spec;
    match sp.pod_management_policy.as_deref() {
        None | Some("OrderedReady" | "Parallel") => {}
        Some(p) => e.add(
            "spec.podManagementPolicy",
            format!("Invalid value: {p:?}: must be 'OrderedReady' or 'Parallel'"),
        ),
    }
    if let Some(st) = &sp.update_strategy {
        match st.type_.as_deref() {
            Some("OnDelete") if st.rolling_update.is_some() => e.add(
                "spec.updateStrategy.rollingUpdate",
                "Invalid value: only allowed for updateStrategy 'RollingUpdate'",
            ),
            None | Some("OnDelete" | "RollingUpdate") => {}
            Some(t) => e.add(
                "spec.updateStrategy",
                format!("Invalid value: {t:?}: must be 'RollingUpdate' or 'OnDelete'"),
            ),
        }
        if let Some(ru) = &st.rolling_update {
            let rp = "spec.updateStrategy.rollingUpdate";
            admit::int32_at_least(e, &format!("{rp}.partition"), ru.partition, 0);
            let mp = format!("{rp}.maxUnavailable");
            admit::int_or_percent(e, &mp, &ru.max_unavailable);
            let zero = match &ru.max_unavailable {
                Some(IntOrString::Int(0)) => true,
                Some(IntOrString::String(p)) => p.trim_end_matches('%').parse() == Ok(0u64),
                _ => false,
            };
            if zero {
                e.add(mp, "Invalid value: cannot be 0");
            }
        }
    }
    admit::int32_at_least(e, "spec.replicas", sp.replicas, 0);
    admit::int32_at_least(e, "spec.minReadySeconds", sp.min_ready_seconds, 0);
    admit::int32_at_least(e, "spec.revisionHistoryLimit", sp.revision_history_limit, 0);
    if let Some(o) = &sp.ordinals {
        admit::int32_at_least(e, "spec.ordinals.start", Some(o.start), 0);
    }
    if let Some(p) = &sp.persistent_volume_claim_retention_policy {
        for (field, v) in [
            ("whenDeleted", &p.when_deleted),
            ("whenScaled", &p.when_scaled),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !["Retain", "Delete"].contains(v)) {
                e.add(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{field}"),
                    format!("Unsupported value: {v:?}: supported values: \"Delete\", \"Retain\""),
                );
            }
        }
    }
    if !sp.service_name.is_empty() && !labels::is_dns_label(&sp.service_name) {
        e.add("spec.serviceName", admit::not_a_dns_label(&sp.service_name));
    }
    let selector = admit::selector_of(&sp.selector, "spec.selector", e);
    if sp.selector.match_labels.is_empty() && sp.selector.match_expressions.is_empty() {
        e.add(
            "spec.selector",
            "Invalid value: empty selector is invalid for statefulset",
        );
    }
    validate_claim_templates(s, e);
    let template = template_with_claims(s, &sp.template, s.start_ordinal());
    admit::validate_template(&selector, &template, "spec.template", &["Always"], e);
    if sp.template.spec.active_deadline_seconds.is_some() {
        e.add(
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
        );
    }
}

/// Each claim template: a name that makes valid claim names, once, and a valid claim.
fn validate_claim_templates(s: &StatefulSet, e: &mut Errors) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in s.spec.volume_claim_templates.iter().enumerate() {
        let cp = format!("spec.volumeClaimTemplates[{i}]");
        let name = c.metadata.name();
        if name.is_empty() {
            e.add(format!("{cp}.metadata.name"), "Required value");
        } else if !labels::is_dns_label(name) {
            e.add(format!("{cp}.metadata.name"), admit::not_a_dns_label(name));
        } else if !seen.insert(name) {
            e.add(
                format!("{cp}.metadata.name"),
                format!("Duplicate value: {name:?}"),
            );
        }
        admit::validate_meta(&c.metadata, &format!("{cp}.metadata"), e);
        let mut claim = Errors::default();
        admit::validate_pvc(c, &mut claim);
        for f in claim.0 {
            e.add(format!("{cp}.{}", f.field), f.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_names_the_set_made() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "webs-1"), None);
        assert_eq!(ordinal_of("web", "web-1-2"), None);
        assert_eq!(ordinal_of("web", "web-99999999999"), None);
        let mut s = StatefulSet::default();
        s.metadata.name = Some("db".into());
        assert_eq!(s.pod_name(2), "db-2");
        assert_eq!(s.claim_name("data", 2), "data-db-2");
        assert_eq!(s.retention(), (false, false));
        assert_eq!(s.strategy(), "RollingUpdate");
    }

    fn sts(extra: serde_json::Value) -> serde_json::Value {
        let mut v = serde_json::json!({"metadata": {"name": "web"}, "spec": {
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "w", "image": "busybox:1", "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}});
        for (k, x) in extra.as_object().unwrap() {
            v["spec"][k] = x.clone();
        }
        v
    }

    fn fields(extra: serde_json::Value) -> Vec<String> {
        crate::api::admit(crate::api::Kind::StatefulSet, sts(extra))
            .unwrap_err()
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn defaults_are_upstreams_and_a_mount_of_a_claim_template_is_valid() {
        let out =
            crate::api::admit(crate::api::Kind::StatefulSet, sts(serde_json::json!({}))).unwrap();
        let spec = &out["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["updateStrategy"],
            serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            serde_json::json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Always");
        let on_delete = crate::api::admit(
            crate::api::Kind::StatefulSet,
            sts(serde_json::json!({"updateStrategy": {"type": "OnDelete"}})),
        )
        .unwrap();
        assert!(on_delete["spec"]["updateStrategy"]
            .get("rollingUpdate")
            .is_none());
    }

    #[test]
    fn invalid_sets_are_refused_naming_the_field() {
        assert_eq!(
            fields(serde_json::json!({"replicas": -1})),
            ["spec.replicas"]
        );
        assert_eq!(
            fields(serde_json::json!({"replicas": 2147483648_i64})),
            ["spec.replicas"]
        );
        assert_eq!(
            fields(serde_json::json!({"podManagementPolicy": "Random"})),
            ["spec.podManagementPolicy"]
        );
        assert_eq!(
            fields(serde_json::json!({"updateStrategy": {"type": "Sometimes"}})),
            ["spec.updateStrategy"]
        );
        assert_eq!(
            fields(
                serde_json::json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}})
            ),
            ["spec.updateStrategy.rollingUpdate"]
        );
        assert_eq!(
            fields(
                serde_json::json!({"updateStrategy": {"rollingUpdate": {"partition": -1, "maxUnavailable": 0}}})
            ),
            [
                "spec.updateStrategy.rollingUpdate.partition",
                "spec.updateStrategy.rollingUpdate.maxUnavailable"
            ]
        );
        assert_eq!(
            fields(serde_json::json!({"ordinals": {"start": -2}})),
            ["spec.ordinals.start"]
        );
        assert_eq!(
            fields(
                serde_json::json!({"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Keep"}})
            ),
            ["spec.persistentVolumeClaimRetentionPolicy.whenScaled"]
        );
        assert_eq!(
            fields(serde_json::json!({"serviceName": "Not_A_Label"})),
            ["spec.serviceName"]
        );
        assert_eq!(
            fields(serde_json::json!({"selector": {}})),
            ["spec.selector"]
        );
        assert_eq!(
            fields(serde_json::json!({"selector": {"matchLabels": {"app": "db"}}})),
            ["spec.template.metadata.labels"]
        );
        let mut never = sts(serde_json::json!({}));
        never["spec"]["template"]["spec"]["restartPolicy"] = serde_json::json!("Never");
        never["spec"]["template"]["spec"]["activeDeadlineSeconds"] = serde_json::json!(5);
        let err = crate::api::admit(crate::api::Kind::StatefulSet, never).unwrap_err();
        let f: Vec<&str> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "spec.template.spec.restartPolicy",
                "spec.template.spec.activeDeadlineSeconds"
            ]
        );
        assert_eq!(
            fields(
                serde_json::json!({"volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["Sometimes"], "resources": {"requests": {"storage": "1Gi"}}}},
                {"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]})
            ),
            [
                "spec.volumeClaimTemplates[0].spec.accessModes[0]",
                "spec.volumeClaimTemplates[1].metadata.name"
            ]
        );
        // a mount of a volume that neither the template nor a claim template has
        assert_eq!(
            fields(serde_json::json!({"volumeClaimTemplates": []})),
            ["spec.template.spec.containers[0].volumeMounts[0].name"]
        );
        let mut pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"subdomain": "Bad.Name",
            "containers": [{"name": "w", "image": "busybox:1"}]}});
        let err = crate::api::admit(crate::api::Kind::Pod, pod.clone()).unwrap_err();
        assert_eq!(err[0].field, "spec.subdomain");
        pod["spec"]["subdomain"] = serde_json::json!("nginx");
        assert!(crate::api::admit(crate::api::Kind::Pod, pod).is_ok());
    }
}
