//! Node lifecycle and garbage collection, as pure functions. A node whose heartbeat is older
//! than the grace period is marked NotReady (`Ready=Unknown`) and its pods' `Ready` condition is
//! set to False (Kubernetes' MarkPodsNotReady), so the endpoints controller withdraws them at
//! once; once it has been NotReady for the eviction timeout, its pods are deleted so their
//! controllers replace them elsewhere. An object whose controlling owner no longer exists is
//! deleted.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::core::{Node, Pod};
use crate::api::meta::ObjectMeta;

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

/// How long ago the node's agent last posted its Ready condition (zero when it never said).
fn silent_for(c: &crate::api::meta::Condition, now: DateTime<Utc>) -> Duration {
    c.last_heartbeat_time
        .or(c.last_transition_time)
        .map(|b| (now - b).to_std().unwrap_or_default())
        .unwrap_or_default()
}

/// Whether [`nodes`] needs the pods: only when some node is not Ready or fell silent past
/// `grace`. With every node well (the usual case) the pass reads no pod: it runs on each
/// heartbeat, 100 a second with 1,000 nodes.
pub fn needs_pods<N: Borrow<Node>>(nodes: &[N], now: DateTime<Utc>, grace: Duration) -> bool {
    nodes
        .iter()
        .filter_map(|n| ready_condition(n.borrow()))
        .any(|c| c.status != "True" || silent_for(c, now) > grace)
}

/// The actions the node lifecycle takes now: nodes to mark NotReady, their pods to mark not
/// ready, and the pods of nodes NotReady past `eviction` to delete.
pub fn nodes<N: Borrow<Node>, P: Borrow<Pod>>(
    nodes: &[N],
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
            let silent = silent_for(c, now);
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
        if (now - since).to_std().unwrap_or_default() > eviction {
            for p in on_node() {
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
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.metadata.namespace = Some("default".into());
        p.spec.node_name = Some("a".into());
        let fresh = node("a", "True", t0);
        assert!(nodes(
            std::slice::from_ref(&fresh),
            &[p.clone()],
            t0 + chrono::Duration::seconds(30),
            g,
            e
        )
        .is_empty());
        let acts = nodes(
            std::slice::from_ref(&fresh),
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
        let acts = nodes(&[fresh], &pods, later, g, e);
        assert!(
            matches!(&acts[..], [
            NodeAction::MarkNotReady { .. },
            NodeAction::MarkPodNotReady { name, node, .. },
        ] if name == "p" && node == "a"),
            "{acts:?}"
        );
        let down = node("a", "Unknown", t0);
        let acts = nodes(std::slice::from_ref(&down), &pods, later, g, e);
        assert!(matches!(&acts[..], [NodeAction::MarkPodNotReady { name, .. }] if name == "p"));
        ready.status = Some(ready_status("False"));
        let acts = nodes(
            std::slice::from_ref(&down),
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
            &[p.clone()],
            t0 + chrono::Duration::seconds(59),
            g,
            e
        )
        .is_empty());
        let acts = nodes(&[down], &[p], t0 + chrono::Duration::seconds(61), g, e);
        assert!(matches!(&acts[..], [NodeAction::Evict { name, .. }] if name == "p"));
    }

    #[test]
    fn pods_are_read_only_when_a_node_is_unwell() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let g = Duration::from_secs(40);
        let at = |s| t0 + chrono::Duration::seconds(s);
        let well = [node("a", "True", t0), node("b", "True", t0)];
        assert!(!needs_pods(&well, at(40), g));
        assert!(needs_pods(&well, at(41), g), "silent past the grace");
        let one_down = [node("a", "True", t0), node("b", "Unknown", t0)];
        assert!(needs_pods(&one_down, at(1), g));
        assert!(needs_pods(&[node("a", "False", t0)], at(1), g));
        // whenever it says no, the pass would have done nothing with any pods
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.spec.node_name = Some("a".into());
        p.status = Some(ready_status("True"));
        for s in [0, 20, 40] {
            assert!(nodes(&well, std::slice::from_ref(&p), at(s), g, g).is_empty());
        }
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
