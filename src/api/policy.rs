//! `policy/v1`: the PodDisruptionBudget kind and the Eviction a client POSTs to a pod's
//! `eviction` subresource (`kubectl drain`, `orkops drain`). The budget's status is written by
//! the disruption controller (`controllers::disruption`) and spent by the eviction handler
//! (`apiserver::eviction`), as in Kubernetes.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::core::object;
use super::meta::{IntOrString, LabelSelector, MetaCondition, ObjectMeta, Time};

object!(
    /// The least number of a group of pods that voluntary disruptions (evictions) must leave
    /// healthy, or the most they may take down.
    PodDisruptionBudget { spec: PodDisruptionBudgetSpec, status: PodDisruptionBudgetStatus }
);

/// `IfHealthyBudget` (the default) or `AlwaysAllow`: when a pod that is not ready may be evicted.
pub const UNHEALTHY_POLICIES: &[&str] = &["IfHealthyBudget", "AlwaysAllow"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetSpec {
    /// An eviction is allowed if at least "minAvailable" pods selected by "selector" will still be available after the eviction, i.e. even in the absence of the evicted pod. So for example you can prevent all voluntary evictions by specifying "100%".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Label query over pods whose evictions are managed by the disruption budget. A null selector will match no pods, while an empty ({}) selector will select all pods within the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// An eviction is allowed if at most "maxUnavailable" pods selected by "selector" are unavailable after the eviction, i.e. even in absence of the evicted pod. For example, one can prevent all voluntary evictions by specifying 0. This is a mutually exclusive setting with "minAvailable".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// UnhealthyPodEvictionPolicy defines the criteria for when unhealthy pods should be considered for eviction: IfHealthyBudget (the default) or AlwaysAllow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetStatus {
    /// Most recent generation observed when updating this PDB status. DisruptionsAllowed and other status information is valid only if observedGeneration equals to PDB's object generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// DisruptedPods contains information about pods whose eviction was processed by the API server eviction subresource handler but has not yet been observed by the PodDisruptionBudget controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disrupted_pods: BTreeMap<String, Time>,
    /// Number of pod disruptions that are currently allowed.
    #[serde(default)]
    pub disruptions_allowed: i64,
    /// current number of healthy pods
    #[serde(default)]
    pub current_healthy: i64,
    /// minimum desired number of healthy pods
    #[serde(default)]
    pub desired_healthy: i64,
    /// total number of pods counted by this disruption budget
    #[serde(default)]
    pub expected_pods: i64,
    /// Conditions contain conditions for PDB: DisruptionAllowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-patch-merge-key" = "type", "x-kubernetes-patch-strategy" = "merge", "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<MetaCondition>,
}

/// The body of a POST to `pods/NAME/eviction`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eviction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// DeleteOptions may be provided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_options: Option<serde_json::Value>,
}
