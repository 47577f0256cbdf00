//! Node lifecycle and garbage collection, as pure functions. A node whose heartbeat (its
//! Lease's renewal in `kube-node-lease`, or its Ready condition's `lastHeartbeatTime`, whichever
//! is later) is older than the grace period is marked NotReady (`Ready=Unknown`) and its pods' `Ready` condition is
//! set to False (Kubernetes' MarkPodsNotReady), so the endpoints controller withdraws them at
//! once; once it has been NotReady for the eviction timeout, its pods are deleted so their
//! controllers replace them elsewhere (but those that tolerate the node's `not-ready` or
//! `unreachable` NoExecute taint without `tolerationSeconds`, as daemons do). An object whose controlling owner no longer exists is
//! deleted.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::coordination::{Lease, NODE_LEASE_NAMESPACE};
use crate::api::core::{Node, Pod};
use crate::api::meta::{ObjectMeta, OwnerReference, Time};

#[derive(Debug, Clone, PartialEq)]
pub enum NodeAction {
    /// Set the node's Ready condition to Unknown: its agent stopped posting.
    MarkNotReady { node: String, silent_for: Duration },
    /// Set the `Ready` condition of a pod of an Unknown node to False (its agent cannot say).
    MarkPodNotReady {
        namespace: String,
        name: String,
        node: String,
    },
    /// Delete a pod of a node that has been NotReady past the eviction timeout.
    Evict {
        namespace: String,
        name: String,
        node: String,
    },
}

fn ready_condition(n: &Node) -> Option<&crate::api::meta::Condition> {
    n.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

fn pod_is_ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// When each node's agent last renewed its Lease, by node name.
pub type Renewals = HashMap<String, Time>;

/// How long ago the node's agent last said it is there: its Lease renewal or its Ready
/// condition's heartbeat, whichever is later (zero when it never said).
fn silent_for(
    node: &str,
    c: &crate::api::meta::Condition,
    renewed: &Renewals,
    now: DateTime<Utc>,
) -> Duration {
    let posted = c.last_heartbeat_time.or(c.last_transition_time);
    posted
        .into_iter()
        .chain(renewed.get(node).copied())
        .max()
        .map(|b| (now - b).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Whether [`nodes`] needs the pods: only when some node is not Ready or fell silent past
/// `grace`. With every node well (the usual case) the pass reads no pod.
pub fn needs_pods<N: Borrow<Node>>(
    nodes: &[N],
    renewed: &Renewals,
    now: DateTime<Utc>,
    grace: Duration,
) -> bool {
    nodes.iter().any(|n| {
        let n: &Node = n.borrow();
        ready_condition(n).is_some_and(|c| {
            c.status != "True" || silent_for(n.metadata.name(), c, renewed, now) > grace
        })
    })
}

/// The actions the node lifecycle takes now: nodes to mark NotReady, their pods to mark not
/// ready, and the pods of nodes NotReady past `eviction` to delete.
pub fn nodes<N: Borrow<Node>, P: Borrow<Pod>>(
    nodes: &[N],
    renewed: &Renewals,
    pods: &[P],
    now: DateTime<Utc>,
    grace: Duration,
    eviction: Duration,
) -> Vec<NodeAction> {
    let mut out = Vec::new();
    for n in nodes {
        let n: &Node = n.borrow();
        let Some(c) = ready_condition(n) else {
            continue;
        };
        let name = n.metadata.name().to_string();
        let on_node = || {
            pods.iter()
                .map(|p| -> &Pod { p.borrow() })
                .filter(|p| p.spec.node_name.as_deref() == Some(name.as_str()))
        };
        let not_ready = |p: &Pod| NodeAction::MarkPodNotReady {
            namespace: p.metadata.namespace().to_string(),
            name: p.metadata.name().to_string(),
            node: name.clone(),
        };
        if c.status == "True" {
            let silent = silent_for(&name, c, renewed, now);
            if silent > grace {
                out.push(NodeAction::MarkNotReady {
                    node: name.clone(),
                    silent_for: silent,
                });
                out.extend(on_node().filter(|p| pod_is_ready(p)).map(not_ready));
            }
            continue;
        }
        // the node is Unknown (its agent is silent) or False: no pod of it may look Ready
        // (one still does when a write failed, or the agent wrote it before going silent)
        if c.status == "Unknown" {
            out.extend(on_node().filter(|p| pod_is_ready(p)).map(not_ready));
        }
        let since = c.last_transition_time.unwrap_or(now);
        // the NoExecute taint Kubernetes puts on such a node: a pod that tolerates it for
        // good (a DaemonSet's) stays
        let taint = crate::api::core::Taint {
            key: match c.status.as_str() {
                "Unknown" => "node.kubernetes.io/unreachable",
                _ => "node.kubernetes.io/not-ready",
            }
            .into(),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let stays = |p: &Pod| {
            p.spec
                .tolerations
                .iter()
                .any(|t| t.toleration_seconds.is_none() && super::scheduler::tolerates(t, &taint))
        };
        if (now - since).to_std().unwrap_or_default() > eviction {
            for p in on_node().filter(|p| !stays(p)) {
                out.push(NodeAction::Evict {
                    namespace: p.metadata.namespace().to_string(),
                    name: p.metadata.name().to_string(),
                    node: name.clone(),
                });
            }
        }
    }
    out
}

/// When each node last renewed its Lease, from the Leases in `kube-node-lease`.
pub fn renewals<L: Borrow<Lease>>(leases: &[L]) -> Renewals {
    leases
        .iter()
        .map(|l| l.borrow())
        .filter(|l| l.metadata.namespace() == NODE_LEASE_NAMESPACE)
        .filter_map(|l| Some((l.metadata.name().to_string(), l.renewed()?)))
        .collect()
}

/// The Leases in `kube-node-lease` (by metadata) owned by a Node whose uid is not among
/// `nodes`, with that owner reference.
pub fn leases_of_gone_nodes<'a>(
    leases: impl Iterator<Item = &'a ObjectMeta>,
    nodes: &HashSet<&str>,
) -> Vec<(&'a ObjectMeta, &'a OwnerReference)> {
    leases
        .filter(|m| m.namespace() == NODE_LEASE_NAMESPACE && m.deletion_timestamp.is_none())
        .filter_map(|m| {
            let owner = m
                .owner_references
                .iter()
                .find(|o| o.kind == "Node" && o.api_version == "v1")?;
            (!nodes.contains(owner.uid.as_str())).then_some((m, owner))
        })
        .collect()
}

/// The pods bound to a node that is not among `nodes` (by name), as Kubernetes' pod garbage
/// collector finds them: no agent will ever finish them, so they are deleted at once (grace 0)
/// and their controllers replace them elsewhere. Pods already finishing are included: their
/// node cannot confirm it either.
pub fn pods_of_gone_nodes<'a, P: Borrow<Pod> + 'a>(
    pods: impl Iterator<Item = &'a P>,
    nodes: &HashSet<&str>,
) -> Vec<&'a Pod> {
    pods.map(Borrow::borrow)
        .filter(|p| {
            p.spec
                .node_name
                .as_deref()
                .is_some_and(|n| !n.is_empty() && !nodes.contains(n))
        })
        .collect()
}

/// The objects (by metadata) whose controlling owner's uid is not among `existing`.
pub fn orphans<'a>(
    objects: impl Iterator<Item = &'a ObjectMeta>,
    existing: &HashSet<String>,
) -> Vec<&'a ObjectMeta> {
    objects
        .filter(|m| super::controller_of(m).is_some_and(|uid| !existing.contains(uid)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::NodeStatus;
    use crate::api::meta::{Condition, OwnerReference};

    fn node(name: &str, status: &str, at: DateTime<Utc>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.status = Some(NodeStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: status.into(),
                last_heartbeat_time: Some(at),
                last_transition_time: Some(at),
                ..Default::default()
            }],
            ..Default::default()
        });
        n
    }

    fn ready_status(ready: &str) -> crate::api::core::PodStatus {
        crate::api::core::PodStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_silent_node_is_marked_then_its_pods_evicted() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (g, e) = (Duration::from_secs(40), Duration::from_secs(60));
        let none = Renewals::new();
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("default".into());
        p.spec.node_name = Some("a".into());
        let fresh = node("a", "True", t0);
        assert!(nodes(
            std::slice::from_ref(&fresh),
            &none,
            &[p.clone()],
            t0 + chrono::Duration::seconds(30),
            g,
            e
        )
        .is_empty());
        let acts = nodes(
            std::slice::from_ref(&fresh),
            &none,
            &[p.clone()],
            t0 + chrono::Duration::seconds(41),
            g,
            e,
        );
        assert!(matches!(&acts[..], [NodeAction::MarkNotReady { node, .. }] if node == "a"));
        // a Ready pod of the silent node is marked not ready with it; one of another node is not
        let (mut ready, mut elsewhere) = (p.clone(), p.clone());
        ready.status = Some(ready_status("True"));
        elsewhere.metadata.name = Some("q".into());
        elsewhere.spec.node_name = Some("b".into());
        elsewhere.status = Some(ready_status("True"));
        let pods = [ready.clone(), elsewhere.clone()];
        let later = t0 + chrono::Duration::seconds(41);
        let acts = nodes(&[fresh], &none, &pods, later, g, e);
        assert!(
            matches!(&acts[..], [
            NodeAction::MarkNotReady { .. },
            NodeAction::MarkPodNotReady { name, node, .. },
        ] if name == "p" && node == "a"),
            "{acts:?}"
        );
        let down = node("a", "Unknown", t0);
        let acts = nodes(std::slice::from_ref(&down), &none, &pods, later, g, e);
        assert!(matches!(&acts[..], [NodeAction::MarkPodNotReady { name, .. }] if name == "p"));
        ready.status = Some(ready_status("False"));
        let acts = nodes(
            std::slice::from_ref(&down),
            &none,
            &[ready, elsewhere],
            later,
            g,
            e,
        );
        assert!(
            acts.is_empty(),
            "a pod already not ready is left alone: {acts:?}"
        );
        assert!(nodes(
            std::slice::from_ref(&down),
            &none,
            &[p.clone()],
            t0 + chrono::Duration::seconds(59),
            g,
            e
        )
        .is_empty());
        let acts = nodes(
            &[down],
            &none,
            &[p.clone()],
            t0 + chrono::Duration::seconds(61),
            g,
            e,
        );
        assert!(matches!(&acts[..], [NodeAction::Evict { name, .. }] if name == "p"));
        // a pod that tolerates the node's NoExecute taint for good (a daemon) stays
        let mut daemon = p.clone();
        daemon.metadata.name = Some("daemon".into());
        daemon.spec.tolerations = vec![crate::api::core::Toleration {
            key: Some("node.kubernetes.io/unreachable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        }];
        let acts = nodes(
            &[node("a", "Unknown", t0)],
            &none,
            &[daemon],
            t0 + chrono::Duration::seconds(61),
            g,
            e,
        );
        assert!(acts.is_empty(), "{acts:?}");
    }

    #[test]
    fn pods_are_read_only_when_a_node_is_unwell() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let g = Duration::from_secs(40);
        let none = Renewals::new();
        let at = |s| t0 + chrono::Duration::seconds(s);
        let well = [node("a", "True", t0), node("b", "True", t0)];
        assert!(!needs_pods(&well, &none, at(40), g));
        assert!(needs_pods(&well, &none, at(41), g), "silent past the grace");
        let one_down = [node("a", "True", t0), node("b", "Unknown", t0)];
        assert!(needs_pods(&one_down, &none, at(1), g));
        assert!(needs_pods(&[node("a", "False", t0)], &none, at(1), g));
        // whenever it says no, the pass would have done nothing with any pods
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.spec.node_name = Some("a".into());
        p.status = Some(ready_status("True"));
        for s in [0, 20, 40] {
            assert!(nodes(&well, &none, std::slice::from_ref(&p), at(s), g, g).is_empty());
        }
    }

    #[test]
    fn a_renewed_lease_keeps_a_node_whose_status_is_old() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let g = Duration::from_secs(40);
        let at = |s| t0 + chrono::Duration::seconds(s);
        // the status was posted five minutes ago; the lease renewed ten seconds ago
        let well = [node("a", "True", t0)];
        let renewed = Renewals::from([("a".to_string(), at(290))]);
        assert!(!needs_pods(&well, &renewed, at(300), g));
        assert!(nodes(&well, &renewed, &[] as &[Pod], at(300), g, g).is_empty());
        // the lease stops being renewed: silent from its last renewal on
        assert!(!needs_pods(&well, &renewed, at(330), g));
        let acts = nodes(&well, &renewed, &[] as &[Pod], at(331), g, g);
        assert!(
            matches!(&acts[..], [NodeAction::MarkNotReady { node, silent_for }]
                if node == "a" && silent_for.as_secs() == 41),
            "{acts:?}"
        );
        // another node's lease says nothing of this one
        let other = Renewals::from([("b".to_string(), at(290))]);
        assert!(needs_pods(&well, &other, at(300), g));
    }

    #[test]
    fn the_leases_of_gone_nodes_are_found() {
        let lease = |ns: &str, name: &str, owner: Option<(&str, &str)>| {
            let mut l = Lease::default();
            l.metadata.namespace = Some(ns.into());
            l.metadata.name = Some(name.into());
            l.spec.renew_time = DateTime::from_timestamp(1_700_000_000, 0);
            if let Some((kind, uid)) = owner {
                l.metadata.owner_references.push(OwnerReference {
                    api_version: "v1".into(),
                    kind: kind.into(),
                    name: name.into(),
                    uid: uid.into(),
                    ..Default::default()
                });
            }
            l
        };
        let leases = [
            lease(NODE_LEASE_NAMESPACE, "a", Some(("Node", "uid-a"))),
            lease(NODE_LEASE_NAMESPACE, "b", Some(("Node", "uid-b-old"))),
            lease(NODE_LEASE_NAMESPACE, "c", None),
            lease("default", "election", Some(("Node", "uid-gone"))),
            lease(NODE_LEASE_NAMESPACE, "d", Some(("Pod", "uid-gone"))),
        ];
        let nodes = HashSet::from(["uid-a", "uid-b-new"]);
        let gone = leases_of_gone_nodes(leases.iter().map(|l| &l.metadata), &nodes);
        let names: Vec<&str> = gone.iter().map(|(m, _)| m.name()).collect();
        assert_eq!(names, ["b"], "only a node lease whose Node is gone");
        let r = renewals(&leases);
        assert!(r.contains_key("a") && r.contains_key("c") && !r.contains_key("election"));
    }

    #[test]
    fn pods_bound_to_a_node_that_is_gone_are_found() {
        let pod = |name: &str, node: Option<&str>| {
            let mut p = Pod::default();
            p.metadata.name = Some(name.into());
            p.spec.node_name = node.map(Into::into);
            p
        };
        let pods = [
            pod("on-a", Some("a")),
            pod("on-gone", Some("gone")),
            pod("pending", None),
            pod("blank", Some("")),
        ];
        let nodes = HashSet::from(["a"]);
        let out = pods_of_gone_nodes(pods.iter(), &nodes);
        let names: Vec<&str> = out.iter().map(|p| p.metadata.name()).collect();
        assert_eq!(names, ["on-gone"]);
    }

    #[test]
    fn objects_of_a_missing_owner_are_orphans() {
        let mut a = ObjectMeta::default();
        a.owner_references.push(OwnerReference {
            uid: "gone".into(),
            controller: Some(true),
            ..Default::default()
        });
        let mut b = ObjectMeta::default();
        b.owner_references.push(OwnerReference {
            uid: "here".into(),
            controller: Some(true),
            ..Default::default()
        });
        let c = ObjectMeta::default();
        let existing = HashSet::from(["here".to_string()]);
        let out = orphans([&a, &b, &c].into_iter(), &existing);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].owner_references[0].uid, "gone");
    }
}
