//! `coordination.k8s.io/v1`: the Lease kind. Every agent renews a Lease named after its node in
//! the `kube-node-lease` namespace (the node's cheap heartbeat: a few hundred bytes every
//! interval instead of the whole Node status), and the node lifecycle controller reads when it
//! was last renewed, as Kubernetes' kubelet and node controller do. Users' own leader
//! elections (client-go's `leaderelection`) use Leases too.

use chrono::SecondsFormat;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use super::meta::{ObjectMeta, Time};

/// The namespace that holds the nodes' Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// The only value `spec.strategy` takes in Kubernetes 1.32 (coordinated leader election).
pub const STRATEGIES: &[&str] = &["OldestEmulationVersion"];

/// A lease on a named thing (a node's liveness, a leader election), held by `holderIdentity`
/// until `renewTime` + `leaseDurationSeconds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lease {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// spec contains the specification of the Lease.
    #[serde(default)]
    pub spec: LeaseSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaseSpec {
    /// holderIdentity contains the identity of the holder of a current lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    /// leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it. This is measured against the time of last observed renewTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i64>,
    /// acquireTime is a time when the current lease was acquired.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "micro_time"
    )]
    pub acquire_time: Option<Time>,
    /// renewTime is a time when the current holder of a lease has last updated the lease.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "micro_time"
    )]
    pub renew_time: Option<Time>,
    /// leaseTransitions is the number of transitions of a lease between holders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i64>,
    /// Strategy indicates the strategy for picking the leader for coordinated leader election (OldestEmulationVersion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// PreferredHolder signals to a lease holder that the lease has a more optimal holder and should be given up. This field can only be set if Strategy is also set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_holder: Option<String>,
}

/// A `MicroTime` as Kubernetes writes it: RFC 3339 with exactly six fractional digits.
fn micro_time<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        None => s.serialize_none(),
    }
}

impl Lease {
    /// When the lease was last renewed (else acquired).
    pub fn renewed(&self) -> Option<Time> {
        self.spec.renew_time.or(self.spec.acquire_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_times_have_six_fractional_digits_and_read_back() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 120_000_789).unwrap();
        let mut l = Lease::default();
        l.spec.renew_time = Some(t);
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["spec"]["renewTime"], "2023-11-14T22:13:20.120000Z");
        assert!(v["spec"].get("acquireTime").is_none());
        let back: Lease = serde_json::from_value(v).unwrap();
        assert_eq!(
            back.renewed().unwrap().timestamp_micros(),
            t.timestamp_micros()
        );
        let bad = serde_json::json!({"spec": {"renewTime": "yesterday"}});
        assert!(serde_json::from_value::<Lease>(bad).is_err());
    }
}
