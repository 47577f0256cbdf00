//! Pod topology spread for the scheduler, as kube-scheduler's PodTopologySpread plugin has it:
//! for each of a pod's `topologySpreadConstraints`, the pods its selector picks (in the pod's
//! namespace, with `matchLabelKeys` values taken from the pod) are counted per domain (the
//! value of `topologyKey` on their node) over the eligible nodes (those with the key and, by
//! `nodeAffinityPolicy` Honor, matching the pod's node selector and required node affinity;
//! by `nodeTaintsPolicy` Honor, whose taints it tolerates). `DoNotSchedule` keeps the pod off
//! a node where placing it would make its domain's count exceed the smallest one by more than
//! `maxSkew` (with fewer than `minDomains` domains the smallest counts as 0); `ScheduleAnyway`
//! only prefers the nodes whose domain holds fewer.

use std::collections::{BTreeMap, HashMap};

use crate::api::core::{Pod, Taint, TopologySpreadConstraint};
use crate::api::labels::{Requirement, Selector};

/// A node as the spread sees it.
pub struct NodeView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [Taint],
}

/// A placed pod as the spread counts it: its namespace, labels and node (an index of the
/// nodes given to [`prepare`]).
pub struct Counted<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub node: usize,
}

/// One constraint, its pods counted.
struct Prepared {
    key: String,
    max_skew: i64,
    hard: bool,
    counts: HashMap<String, i64>,
    /// The smallest count over the eligible domains (0 below minDomains).
    min: i64,
    self_match: i64,
}

/// A pending pod's constraints, counted over the cluster as it stands.
pub struct Spread(Vec<Prepared>);

pub const MISMATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

fn selector(pod: &Pod, c: &TopologySpreadConstraint) -> Option<Selector> {
    let ls = c.label_selector.as_ref()?;
    let mut sel = Selector::from_label_selector(ls).ok()?;
    for k in &c.match_label_keys {
        if let Some(v) = pod.metadata.labels.get(k) {
            sel.0.push(Requirement::Equals(k.clone(), v.clone()));
        }
    }
    Some(sel)
}

fn eligible(pod: &Pod, c: &TopologySpreadConstraint, n: &NodeView) -> bool {
    if !n.labels.contains_key(&c.topology_key) {
        return false;
    }
    let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
    if honor_affinity
        && (pod
            .spec
            .node_selector
            .iter()
            .any(|(k, v)| n.labels.get(k) != Some(v))
            || !super::scheduler::node_affinity_fits(pod, n.labels, n.name))
    {
        return false;
    }
    let honor_taints = c.node_taints_policy.as_deref() == Some("Honor");
    !honor_taints || super::scheduler::untolerated(n.taints, &pod.spec.tolerations).is_none()
}

/// Counts the pods each constraint of `pod` picks, per domain.
pub fn prepare(pod: &Pod, nodes: &[NodeView], placed: &[Counted]) -> Spread {
    let ns = pod.metadata.namespace();
    let mut out = Vec::new();
    for c in &pod.spec.topology_spread_constraints {
        let ok: Vec<bool> = nodes.iter().map(|n| eligible(pod, c, n)).collect();
        let mut counts: HashMap<String, i64> = HashMap::new();
        for (n, _) in nodes.iter().zip(&ok).filter(|(_, ok)| **ok) {
            counts.entry(n.labels[&c.topology_key].clone()).or_default();
        }
        let sel = selector(pod, c);
        for p in placed {
            let picked = p.namespace == ns
                && ok.get(p.node).copied().unwrap_or(false)
                && sel.as_ref().is_some_and(|s| s.matches(p.labels));
            if picked {
                let domain = &nodes[p.node].labels[&c.topology_key];
                *counts.entry(domain.clone()).or_default() += 1;
            }
        }
        let below_min = c.min_domains.is_some_and(|m| (counts.len() as i64) < m);
        let min = if below_min {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        out.push(Prepared {
            key: c.topology_key.clone(),
            max_skew: c.max_skew.max(1),
            hard: c.when_unsatisfiable != "ScheduleAnyway",
            counts,
            min,
            self_match: sel.is_some_and(|s| s.matches(&pod.metadata.labels)) as i64,
        });
    }
    Spread(out)
}

impl Spread {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Why the DoNotSchedule constraints keep the pod off a node with `labels`, in
    /// kube-scheduler's words.
    pub fn misfit(&self, labels: &BTreeMap<String, String>) -> Option<&'static str> {
        for c in self.0.iter().filter(|c| c.hard) {
            let Some(domain) = labels.get(&c.key) else {
                return Some(MISSING_LABEL);
            };
            let count = c.counts.get(domain).copied().unwrap_or(0);
            if count + c.self_match - c.min > c.max_skew {
                return Some(MISMATCH);
            }
        }
        None
    }

    /// How much the ScheduleAnyway constraints dislike a node (the smaller the better): the
    /// pods already in its domains; a node without a key is the least preferred.
    pub fn penalty(&self, labels: &BTreeMap<String, String>) -> i64 {
        self.0
            .iter()
            .filter(|c| !c.hard)
            .map(|c| match labels.get(&c.key) {
                Some(d) => c.counts.get(d).copied().unwrap_or(0),
                None => 1 << 32,
            })
            .sum()
    }
}
