//! Allocation of the cluster's shared numbers: service ClusterIPs from the service CIDR,
//! NodePorts from the node-port range, and each node's pod CIDR from the cluster CIDR.
//!
//! Every allocated value is a reservation key in the store (`PREFIX/_alloc/POOL/VALUE`) created
//! with create-if-absent, so two API servers can never hand out the same value. A reservation
//! names its owner (kind, namespace, name, uid) and when it was made; one whose owner no longer
//! exists, or is now a different object, is stale and may be taken over once it is older than
//! a grace period. The grace matters: a value is reserved *before* its owner is written, so a
//! young reservation whose owner is not there yet is a create still under way, not a leak.
//! Releasing on delete is an optimisation rather than a duty: a crash between reserving and
//! writing the object, or a namespace deleted wholesale, leaks nothing for long.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::api::Kind;
use crate::store::{Store, StoreError};

/// The address ranges of a cluster, set by master flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRanges {
    /// Pod addresses; each node gets a `/node_mask` slice of it.
    pub cluster_cidr: Ipv4Net,
    pub node_mask: u8,
    /// ClusterIPs.
    pub service_cidr: Ipv4Net,
    pub node_port_min: u16,
    pub node_port_max: u16,
    /// The DNS suffix of service names: `NAME.NAMESPACE.svc.DOMAIN`.
    pub cluster_domain: String,
}

impl Default for NetworkRanges {
    fn default() -> Self {
        NetworkRanges {
            cluster_cidr: "10.244.0.0/16".parse().expect("valid"),
            node_mask: 24,
            service_cidr: "10.96.0.0/16".parse().expect("valid"),
            node_port_min: 30000,
            node_port_max: 32767,
            cluster_domain: "cluster.local".into(),
        }
    }
}

impl NetworkRanges {
    /// Checks the ranges make sense together; the message names the master flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_mask < self.cluster_cidr.prefix_len() || self.node_mask > 30 {
            return Err(format!(
                "--node-cidr-mask-size {} must be between the cluster CIDR's prefix length ({}) and 30",
                self.node_mask,
                self.cluster_cidr.prefix_len()
            ));
        }
        if self.cluster_cidr.contains(&self.service_cidr.network())
            || self.service_cidr.contains(&self.cluster_cidr.network())
        {
            return Err(format!(
                "--service-cluster-ip-range {} overlaps --cluster-cidr {}",
                self.service_cidr, self.cluster_cidr
            ));
        }
        if self.service_cidr.prefix_len() > 28 {
            return Err(format!(
                "--service-cluster-ip-range {} is too small (at most /28)",
                self.service_cidr
            ));
        }
        if self.node_port_min == 0 || self.node_port_min > self.node_port_max {
            return Err(format!(
                "--service-node-port-range {}-{} is empty",
                self.node_port_min, self.node_port_max
            ));
        }
        Ok(())
    }

    pub fn node_ports(&self) -> RangeInclusive<u16> {
        self.node_port_min..=self.node_port_max
    }
}

/// Which kind of number a reservation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    ClusterIp,
    NodePort,
    PodCidr,
}

impl Pool {
    fn dir(self) -> &'static str {
        match self {
            Pool::ClusterIp => "clusterips",
            Pool::NodePort => "nodeports",
            Pool::PodCidr => "podcidrs",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Pool::ClusterIp => "ClusterIP",
            Pool::NodePort => "node port",
            Pool::PodCidr => "pod CIDR",
        }
    }
}

/// Who holds a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl Owner {
    pub fn new(kind: Kind, namespace: Option<&str>, name: &str, uid: &str) -> Owner {
        Owner {
            kind: kind.plural().to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            uid: uid.to_string(),
        }
    }
    fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// What a reservation key holds: its owner and when it was made (unix milliseconds; 0 in
/// records written before reservations carried a time, which are old enough by definition).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    #[serde(flatten)]
    owner: Owner,
    #[serde(default)]
    reserved_at_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long a reservation whose owner is missing is taken for a create still under way: longer
/// than any request may run (the API's request timeout is 60 s).
pub const RESERVATION_GRACE: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The value asked for is held by another object.
    #[error("{value} is already allocated to {holder}")]
    Taken { value: String, holder: String },
    #[error("{0}")]
    OutOfRange(String),
    #[error("no free {0} is left")]
    Exhausted(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Clone)]
pub struct Allocator {
    store: Arc<dyn Store>,
    /// The store prefix of the cluster (`/orkops`); object keys are `PREFIX/PLURAL/[NS/]NAME`.
    prefix: String,
    pub ranges: NetworkRanges,
    grace: Duration,
}

impl Allocator {
    pub fn new(store: Arc<dyn Store>, prefix: &str, ranges: NetworkRanges) -> Allocator {
        Allocator {
            store,
            prefix: prefix.to_string(),
            ranges,
            grace: RESERVATION_GRACE,
        }
    }

    /// The same allocator with another grace period for reservations whose owner is missing.
    pub fn with_grace(mut self, grace: Duration) -> Allocator {
        self.grace = grace;
        self
    }

    fn key(&self, pool: Pool, value: &str) -> String {
        format!(
            "{}/_alloc/{}/{}",
            self.prefix,
            pool.dir(),
            value.replace('/', "_")
        )
    }

    /// Reserves exactly `value` for `owner`. Reserving what the owner already holds succeeds.
    pub async fn reserve(&self, pool: Pool, value: &str, owner: &Owner) -> Result<(), AllocError> {
        let key = self.key(pool, value);
        for _ in 0..5 {
            let body = serde_json::to_vec(&Reservation {
                owner: owner.clone(),
                reserved_at_ms: now_ms(),
            })
            .expect("a reservation encodes");
            match self.store.create(&key, body.clone()).await {
                Ok(_) => return Ok(()),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(held) = self.store.get(&key).await? else {
                continue; // released meanwhile
            };
            let holder: Option<Reservation> = serde_json::from_slice(&held.value).ok();
            if holder.as_ref().map(|h| &h.owner) == Some(owner) {
                return Ok(());
            }
            if let Some(h) = &holder {
                let age = Duration::from_millis(now_ms().saturating_sub(h.reserved_at_ms));
                if age < self.grace || self.holds(&h.owner).await? {
                    return Err(AllocError::Taken {
                        value: value.to_string(),
                        holder: h.owner.describe(),
                    });
                }
            }
            // stale: its owner is gone; take it over unless someone else is faster
            match self.store.update(&key, body, held.revision).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AllocError::Taken {
            value: value.to_string(),
            holder: "a concurrent request".into(),
        })
    }

    /// Whether the owner object still exists as the same object (same uid).
    async fn holds(&self, owner: &Owner) -> Result<bool, StoreError> {
        let key = match &owner.namespace {
            Some(ns) => format!("{}/{}/{ns}/{}", self.prefix, owner.kind, owner.name),
            None => format!("{}/{}/{}", self.prefix, owner.kind, owner.name),
        };
        let Some(v) = self.store.get(&key).await? else {
            return Ok(false);
        };
        let obj: serde_json::Value = serde_json::from_slice(&v.value).unwrap_or_default();
        Ok(obj.pointer("/metadata/uid").and_then(|u| u.as_str()) == Some(owner.uid.as_str()))
    }

    /// Frees `value` if `owner` holds it (best effort: stale reservations are reclaimed anyway).
    pub async fn release(&self, pool: Pool, value: &str, owner: &Owner) {
        let key = self.key(pool, value);
        if let Ok(Some(held)) = self.store.get(&key).await {
            let holder = serde_json::from_slice::<Reservation>(&held.value).ok();
            if holder.as_ref().map(|h| &h.owner) == Some(owner) {
                let _ = self.store.delete(&key, Some(held.revision)).await;
            }
        }
    }

    /// A free ClusterIP: random tries first (the range is mostly empty), then a full scan.
    pub async fn allocate_cluster_ip(&self, owner: &Owner) -> Result<Ipv4Addr, AllocError> {
        let net = self.ranges.service_cidr;
        let first = u32::from(net.network()) + 1;
        let last = u32::from(net.broadcast()) - 1;
        let mut candidates: Vec<u32> = {
            let mut rng = rand::thread_rng();
            (0..16).map(|_| rng.gen_range(first..=last)).collect()
        };
        candidates.extend(first..=last);
        self.first_free(
            Pool::ClusterIp,
            candidates.into_iter().map(Ipv4Addr::from),
            owner,
        )
        .await
    }

    /// A free node port, chosen the same way.
    pub async fn allocate_node_port(&self, owner: &Owner) -> Result<u16, AllocError> {
        let range = self.ranges.node_ports();
        let mut candidates: Vec<u16> = {
            let mut rng = rand::thread_rng();
            (0..16).map(|_| rng.gen_range(range.clone())).collect()
        };
        candidates.extend(range);
        self.first_free(Pool::NodePort, candidates.into_iter(), owner)
            .await
    }

    /// The lowest free pod CIDR.
    pub async fn allocate_pod_cidr(&self, owner: &Owner) -> Result<Ipv4Net, AllocError> {
        let subnets = self
            .ranges
            .cluster_cidr
            .subnets(self.ranges.node_mask)
            .map_err(|e| AllocError::OutOfRange(e.to_string()))?;
        self.first_free(Pool::PodCidr, subnets, owner).await
    }

    async fn first_free<T: ToString>(
        &self,
        pool: Pool,
        candidates: impl Iterator<Item = T>,
        owner: &Owner,
    ) -> Result<T, AllocError> {
        // skip what is visibly taken without a store round trip each
        let dir = format!("{}/_alloc/{}/", self.prefix, pool.dir());
        let (held, _) = self.store.list(&dir).await?;
        let held: std::collections::HashSet<String> = held
            .iter()
            .map(|v| v.key.trim_start_matches(&dir).replace('_', "/"))
            .collect();
        let mut stale_candidates = Vec::new();
        for c in candidates {
            let v = c.to_string();
            if held.contains(&v) {
                stale_candidates.push(c);
                continue;
            }
            match self.reserve(pool, &v, owner).await {
                Ok(()) => return Ok(c),
                Err(AllocError::Taken { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        // everything looked taken: reclaim a stale one if there is any
        for c in stale_candidates {
            match self.reserve(pool, &c.to_string(), owner).await {
                Ok(()) => return Ok(c),
                Err(AllocError::Taken { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(AllocError::Exhausted(pool.what()))
    }

    /// Checks a user-chosen ClusterIP lies in the service range.
    pub fn check_cluster_ip(&self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let net = self.ranges.service_cidr;
        if !net.contains(&ip) || ip == net.network() || ip == net.broadcast() {
            return Err(AllocError::OutOfRange(format!(
                "{ip} is not a usable address of the service range {net}"
            )));
        }
        Ok(())
    }

    pub fn check_node_port(&self, port: i64) -> Result<(), AllocError> {
        let r = self.ranges.node_ports();
        if port < i64::from(*r.start()) || port > i64::from(*r.end()) {
            return Err(AllocError::OutOfRange(format!(
                "{port} is outside the node-port range {}-{}",
                r.start(),
                r.end()
            )));
        }
        Ok(())
    }

    pub fn check_pod_cidr(&self, cidr: &str) -> Result<Ipv4Net, AllocError> {
        let net: Ipv4Net = cidr
            .parse()
            .map_err(|_| AllocError::OutOfRange(format!("{cidr:?} is not an IPv4 CIDR")))?;
        if net.trunc() != net
            || !self.ranges.cluster_cidr.contains(&net)
            || net.prefix_len() != self.ranges.node_mask
        {
            return Err(AllocError::OutOfRange(format!(
                "{cidr} is not a /{} subnet of the cluster CIDR {}",
                self.ranges.node_mask, self.ranges.cluster_cidr
            )));
        }
        Ok(net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn alloc(ranges: NetworkRanges) -> Allocator {
        Allocator::new(Arc::new(MemoryStore::default()), "/t", ranges)
    }

    fn owner(name: &str) -> Owner {
        Owner::new(Kind::Service, Some("default"), name, &format!("uid-{name}"))
    }

    async fn put_service(a: &Allocator, name: &str) {
        let obj = serde_json::json!({"metadata": {"uid": format!("uid-{name}")}});
        a.store
            .create(
                &format!("/t/services/default/{name}"),
                serde_json::to_vec(&obj).unwrap(),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_held_value_is_refused_and_a_stale_one_taken_over() {
        let a = alloc(NetworkRanges::default());
        put_service(&a, "web").await;
        a.reserve(Pool::ClusterIp, "10.96.0.7", &owner("web"))
            .await
            .unwrap();
        // the holder asking again is fine
        a.reserve(Pool::ClusterIp, "10.96.0.7", &owner("web"))
            .await
            .unwrap();
        let err = a
            .reserve(Pool::ClusterIp, "10.96.0.7", &owner("api"))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("10.96.0.7 is already allocated to services/default/web"),
            "{err}"
        );
        // "ghost" is not written yet: while its reservation is young it is a create under way
        a.reserve(Pool::ClusterIp, "10.96.0.8", &owner("ghost"))
            .await
            .unwrap();
        let err = a
            .reserve(Pool::ClusterIp, "10.96.0.8", &owner("api"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("services/default/ghost"), "{err}");
        // past the grace it never got written (a crashed create): the reservation is stale
        let a = a.with_grace(Duration::ZERO);
        a.reserve(Pool::ClusterIp, "10.96.0.8", &owner("api"))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_create_under_way_keeps_its_pod_cidr_from_a_second_node() {
        // one /24 to hand out; node a has reserved it and is not written yet, as in the create
        // path, when node b asks: b must not take it over as stale
        let ranges = NetworkRanges {
            cluster_cidr: "10.244.0.0/24".parse().unwrap(),
            node_mask: 24,
            ..Default::default()
        };
        let a = alloc(ranges);
        let node = |n: &str| Owner::new(Kind::Node, None, n, &format!("uid-{n}"));
        assert_eq!(
            a.allocate_pod_cidr(&node("a")).await.unwrap().to_string(),
            "10.244.0.0/24"
        );
        let err = a.allocate_pod_cidr(&node("b")).await.unwrap_err();
        assert_eq!(err.to_string(), "no free pod CIDR is left");
        // had a's create crashed, b gets the CIDR once the grace is over
        let a = a.with_grace(Duration::ZERO);
        assert_eq!(
            a.allocate_pod_cidr(&node("b")).await.unwrap().to_string(),
            "10.244.0.0/24"
        );
    }

    #[tokio::test]
    async fn allocation_fills_a_small_range_then_reports_exhaustion() {
        let a = alloc(NetworkRanges {
            service_cidr: "10.96.0.0/29".parse().unwrap(),
            ..Default::default()
        });
        let mut got = std::collections::BTreeSet::new();
        for i in 0..6 {
            let name = format!("s{i}");
            put_service(&a, &name).await;
            let ip = a.allocate_cluster_ip(&owner(&name)).await.unwrap();
            a.check_cluster_ip(ip).unwrap();
            assert!(got.insert(ip), "{ip} handed out twice");
        }
        put_service(&a, "s6").await;
        let err = a.allocate_cluster_ip(&owner("s6")).await.unwrap_err();
        assert_eq!(err.to_string(), "no free ClusterIP is left");
        // releasing one makes it available again
        let ip = *got.iter().next().unwrap();
        let holder = (0..6).map(|i| owner(&format!("s{i}"))).collect::<Vec<_>>();
        for o in &holder {
            a.release(Pool::ClusterIp, &ip.to_string(), o).await;
        }
        assert_eq!(a.allocate_cluster_ip(&owner("s6")).await.unwrap(), ip);
    }

    #[tokio::test]
    async fn pod_cidrs_are_handed_out_in_order_and_checked() {
        let a = alloc(NetworkRanges::default());
        let node = |n: &str| Owner::new(Kind::Node, None, n, &format!("uid-{n}"));
        for n in ["a", "b"] {
            a.store
                .create(
                    &format!("/t/nodes/{n}"),
                    serde_json::to_vec(
                        &serde_json::json!({"metadata": {"uid": format!("uid-{n}")}}),
                    )
                    .unwrap(),
                )
                .await
                .unwrap();
        }
        assert_eq!(
            a.allocate_pod_cidr(&node("a")).await.unwrap().to_string(),
            "10.244.0.0/24"
        );
        assert_eq!(
            a.allocate_pod_cidr(&node("b")).await.unwrap().to_string(),
            "10.244.1.0/24"
        );
        assert!(a.check_pod_cidr("10.244.3.0/24").is_ok());
        assert!(a.check_pod_cidr("10.244.3.0/25").is_err());
        assert!(a.check_pod_cidr("10.245.0.0/24").is_err());
        assert!(a.check_pod_cidr("nonsense").is_err());
    }

    #[test]
    fn ranges_are_validated_with_the_flag_named() {
        assert!(NetworkRanges::default().validate().is_ok());
        let overlap = NetworkRanges {
            service_cidr: "10.244.128.0/20".parse().unwrap(),
            ..Default::default()
        };
        assert!(overlap
            .validate()
            .unwrap_err()
            .contains("--service-cluster-ip-range"));
        let mask = NetworkRanges {
            node_mask: 8,
            ..Default::default()
        };
        assert!(mask
            .validate()
            .unwrap_err()
            .contains("--node-cidr-mask-size"));
    }
}
