//! The DaemonSet controller, as Kubernetes' own: a pure reconciler from a daemon set, the
//! nodes, its pods and its ControllerRevisions to the revisions and pods to create and delete
//! and its status, and the executor that applies it.
//!
//! A node runs the daemon pod when it matches the template's `nodeName`, `nodeSelector` and
//! required node affinity and the pod tolerates its NoSchedule and NoExecute taints (with
//! those Kubernetes' node lifecycle would put on it for its conditions and cordon); a pod
//! already there stays while it tolerates the NoExecute ones. Every pod gets upstream's daemon
//! tolerations, the labels `controller-revision-hash` and `pod-template-generation`, and a
//! required node affinity `matchFields metadata.name In [node]` that the scheduler binds by.
//! The template's history is kept in ControllerRevisions named `NAME-HASH` whose `data` is the
//! patch that restores it (what `kubectl rollout history|undo` read); a template that comes
//! back gets the next revision number, and old revisions beyond `revisionHistoryLimit` no pod
//! uses are deleted. RollingUpdate replaces old pods at most `maxUnavailable` at a time, or with
//! `maxSurge` starts the new pod first and removes the old one once the new one is available
//! (ready for `minReadySeconds`); OnDelete replaces only the pods the user deleted. Failed pods
//! are deleted with a per-node back-off (1 s doubling to 15 min). The pods of a node that is
//! gone are left to the pod garbage collector, as upstream.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::runtime::{split_key, Action as Next, Caches, Ctx, Queue};
use super::{replicasets, scheduler, Api, ApiError};
use crate::api::admit::DAEMON_SET_TEMPLATE_GENERATION;
use crate::api::core::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use crate::api::labels::Selector;
use crate::api::meta::IntOrString;
use crate::api::workloads::{ControllerRevision, DaemonSet, DaemonSetStatus};
use crate::api::{About, Kind};
use crate::apiserver::engine::{Command, Reply};

/// On a daemon pod and a ControllerRevision: the hash of the revision's template.
pub const HASH_LABEL: &str = "controller-revision-hash";
/// On a daemon pod: the daemon set's template generation when the pod was made.
pub const GENERATION_LABEL: &str = "pod-template-generation";
const SOURCE: &str = "orkops-daemonset-controller";

/// The tolerations the DaemonSet controller adds to every pod it makes (upstream's
/// AddOrUpdateDaemonPodTolerations): node problems never evict a daemon, and cordoned or
/// pressured nodes still run it.
const DAEMON_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
/// Added too for a pod on the host's network.
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Adds `toleration` to `spec`, replacing one for the same key, operator, value and effect
/// (upstream's AddOrUpdateTolerationInPodSpec).
fn add_or_update(spec: &mut PodSpec, toleration: Toleration) {
    let same = |t: &Toleration| {
        t.key == toleration.key
            && t.operator.as_deref().unwrap_or("Equal")
                == toleration.operator.as_deref().unwrap_or("Equal")
            && t.value.as_deref().unwrap_or("") == toleration.value.as_deref().unwrap_or("")
            && t.effect == toleration.effect
    };
    match spec.tolerations.iter_mut().find(|t| same(t)) {
        Some(t) => *t = toleration,
        None => spec.tolerations.push(toleration),
    }
}

/// Adds the daemon tolerations to a pod spec.
pub fn add_daemon_tolerations(spec: &mut PodSpec, host_network: bool) {
    let extra = host_network.then_some((NETWORK_UNAVAILABLE, "NoSchedule"));
    for (key, effect) in DAEMON_TOLERATIONS.iter().copied().chain(extra) {
        add_or_update(
            spec,
            Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            },
        );
    }
}

/// The taints Kubernetes' node lifecycle controller keeps on a node for its conditions and
/// cordon (TaintNodesByCondition and taint-based eviction), which orkops' does not write: a
/// node not Ready is `not-ready` (False or no condition) or `unreachable` (Unknown), both
/// NoSchedule and NoExecute; pressure and a cordon are NoSchedule.
pub fn implied_taints(n: &Node) -> Vec<Taint> {
    let taint = |key: &str, effect: &str| Taint {
        key: format!("node.kubernetes.io/{key}"),
        effect: effect.into(),
        ..Default::default()
    };
    let conditions = n.status.as_ref().map(|s| &s.conditions[..]).unwrap_or(&[]);
    let status = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.status.as_str())
    };
    let mut out = Vec::new();
    let not_ready = match status("Ready") {
        Some("True") => None,
        Some("Unknown") => Some("unreachable"),
        _ => Some("not-ready"),
    };
    if let Some(key) = not_ready {
        out.push(taint(key, "NoSchedule"));
        out.push(taint(key, "NoExecute"));
    }
    for (condition, key) in [
        ("MemoryPressure", "memory-pressure"),
        ("DiskPressure", "disk-pressure"),
        ("PIDPressure", "pid-pressure"),
        ("NetworkUnavailable", "network-unavailable"),
    ] {
        if status(condition) == Some("True") {
            out.push(taint(key, "NoSchedule"));
        }
    }
    if n.spec.unschedulable == Some(true) {
        out.push(taint("unschedulable", "NoSchedule"));
    }
    out
}

/// Whether the daemon set's pods are on the host's network (a field orkops' pod spec may not
/// serve: read from the template as written).
fn host_network(ds: &DaemonSet) -> bool {
    serde_json::to_value(&ds.spec.template.spec)
        .ok()
        .and_then(|s| s.get("hostNetwork").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// The daemon pod of `ds` as the node filter sees it: its template, with the tolerations added.
pub fn daemon_pod(ds: &DaemonSet) -> Pod {
    let mut pod = Pod {
        metadata: ds.spec.template.metadata.clone(),
        spec: ds.spec.template.spec.clone(),
        ..Default::default()
    };
    add_daemon_tolerations(&mut pod.spec, host_network(ds));
    pod
}

/// Whether a node should run the daemon pod, and whether a daemon pod already on it should
/// keep running (upstream's NodeShouldRunDaemonPod).
pub fn node_fit(pod: &Pod, node: &Node) -> (bool, bool) {
    let name = node.metadata.name();
    if pod
        .spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let labels = &node.metadata.labels;
    let selected = pod
        .spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selected || !scheduler::node_affinity_fits(pod, labels, name) {
        return (false, false);
    }
    let mut taints = node.spec.taints.clone();
    taints.extend(implied_taints(node));
    let untolerated = |effects: &[&str]| {
        taints.iter().any(|taint| {
            effects.contains(&taint.effect.as_str())
                && !pod
                    .spec
                    .tolerations
                    .iter()
                    .any(|t| scheduler::tolerates(t, taint))
        })
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        (false, !untolerated(&["NoExecute"]))
    } else {
        (true, true)
    }
}

/// The node a daemon pod is for: its `nodeName`, or the one its required node affinity names
/// (`matchFields metadata.name In [node]`) before it is bound.
pub fn target_node(p: &Pod) -> Option<&str> {
    if let Some(n) = p.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n);
    }
    let required = p
        .spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    required
        .node_selector_terms
        .iter()
        .flat_map(|t| &t.match_fields)
        .find(|r| r.key == "metadata.name" && r.operator == "In" && r.values.len() == 1)
        .map(|r| r.values[0].as_str())
}

/// The affinity of a daemon pod for `node`: the template's, its required node terms replaced
/// by the one that names the node (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity).
fn pinned_affinity(affinity: Option<Box<Affinity>>, node: &str) -> Box<Affinity> {
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: vec![node.into()],
            }],
            ..Default::default()
        }],
    });
    a
}

/// The template generation of a daemon set (its deprecated annotation), if readable.
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .get(DAEMON_SET_TEMPLATE_GENERATION)
        .and_then(|g| g.parse().ok())
}

/// The pod the daemon set runs on `node`, labelled with revision `hash`.
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Value {
    let mut template = ds.spec.template.clone();
    add_daemon_tolerations(&mut template.spec, host_network(ds));
    let labels = &mut template.metadata.labels;
    if let Some(g) = template_generation(ds) {
        labels.insert(GENERATION_LABEL.into(), g.to_string());
    }
    labels.insert(HASH_LABEL.into(), hash.into());
    template.spec.affinity = Some(pinned_affinity(template.spec.affinity.take(), node));
    let value = serde_json::to_value(&template).unwrap_or(Value::Null);
    super::pod_from_template(
        &value,
        format!("{}-", ds.metadata.name()),
        ds.metadata.namespace(),
        &[],
        super::controller_ref("apps/v1", "DaemonSet", &ds.metadata),
    )
}

/// What a ControllerRevision of the daemon set holds: the strategic merge patch that puts its
/// template back (upstream's getPatch; `kubectl rollout undo` sends it as it is).
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = serde_json::to_value(&ds.spec.template).unwrap_or(json!({}));
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The ControllerRevision of the daemon set's current template, as revision `revision`.
fn new_revision(ds: &DaemonSet, hash: &str, revision: i64) -> Value {
    let mut labels = ds.spec.template.metadata.labels.clone();
    labels.insert(HASH_LABEL.into(), hash.into());
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {
            "name": format!("{}-{hash}", ds.metadata.name()),
            "namespace": ds.metadata.namespace(),
            "labels": labels,
            "annotations": ds.metadata.annotations,
            "ownerReferences": [super::controller_ref("apps/v1", "DaemonSet", &ds.metadata)],
        },
        "data": revision_data(ds),
        "revision": revision,
    })
}

/// The hash naming a new revision of the template: with the collision count, so that a
/// revision of that name that is not this template's gives way to another name.
fn hash_of(ds: &DaemonSet) -> String {
    let template = serde_json::to_value(&ds.spec.template).unwrap_or(Value::Null);
    match ds.status.as_ref().and_then(|s| s.collision_count) {
        Some(c) => super::deployments::template_hash(&json!([template, c])),
        None => super::deployments::template_hash(&template),
    }
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its node should not run it (any more).
    Misscheduled,
    /// It failed: it is replaced (after the node's back-off).
    Failed,
    /// It finished (a daemon should not): it is replaced.
    Succeeded,
    /// A second pod on its node.
    Surplus,
    /// An old revision's pod, replaced by the rolling update.
    Update,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the ControllerRevision of the current template.
    CreateRevision(Value),
    /// Give revision `name` the number `revision` (a template that came back).
    Renumber { name: String, revision: i64 },
    /// Create the daemon pod of `node`.
    CreatePod { node: String, pod: Value },
    /// Delete pod `name` (of node `node`).
    DeletePod {
        name: String,
        node: String,
        why: Why,
    },
    /// Delete an old revision beyond `revisionHistoryLimit` that no pod uses.
    DeleteRevision(String),
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: DaemonSetStatus,
    /// The revision hash of the current template.
    pub hash: String,
    /// Come back after this long even without a change (availability, failed-pod back-off).
    pub requeue: Option<Duration>,
}

/// The current revision and the old ones: the revision whose data is the current template's
/// (the newest if several), or a new one to create; the actions that make it current.
fn history<'a>(
    ds: &DaemonSet,
    revisions: &[&'a ControllerRevision],
) -> (String, Vec<&'a ControllerRevision>, Vec<Action>) {
    let data = revision_data(ds);
    let (mut current, mut old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) =
        revisions.iter().partition(|r| r.data == data);
    current.sort_by_key(|r| r.revision);
    let cur = current.pop();
    old.extend(current);
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    let mut actions = Vec::new();
    let hash = match cur {
        None => {
            let hash = hash_of(ds);
            actions.push(Action::CreateRevision(new_revision(ds, &hash, next)));
            hash
        }
        Some(r) => {
            if r.revision < next {
                actions.push(Action::Renumber {
                    name: r.metadata.name().to_string(),
                    revision: next,
                });
            }
            r.metadata
                .labels
                .get(HASH_LABEL)
                .cloned()
                .unwrap_or_else(|| r.metadata.name().to_string())
        }
    };
    (hash, old, actions)
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Upstream's podByCreationTimestampAndPhase: scheduled first, then the oldest, then by name.
fn oldest_first(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        let key = |p: &Pod| {
            (
                p.spec.node_name.as_deref().is_none_or(str::is_empty),
                p.metadata.creation_timestamp,
            )
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.metadata.name().cmp(b.metadata.name()))
    });
}

/// Whether a pod runs the current template (its hash, or the template generation it was made
/// from).
fn updated(p: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = &p.metadata.labels;
    labels.get(HASH_LABEL).map(String::as_str) == Some(hash)
        || generation.is_some_and(|g| labels.get(GENERATION_LABEL) == Some(&g.to_string()))
}

/// What the pass sees: the daemon set, its daemon pod, its pods by node and the nodes' fits.
struct View<'a> {
    ds: &'a DaemonSet,
    hash: &'a str,
    generation: Option<i64>,
    /// The nodes, each with (should run, should continue running).
    nodes: Vec<(&'a Node, (bool, bool))>,
    by_node: BTreeMap<&'a str, Vec<&'a Pod>>,
    min_ready: i64,
    now: DateTime<Utc>,
    surge: bool,
}

impl View<'_> {
    fn available(&self, p: &Pod) -> bool {
        replicasets::available(p, self.min_ready, self.now)
    }
}

/// Upstream's manage loop, node by node (podsShouldBeOnNode). `backoff` says how long a node's failed pod must still wait before it is deleted.
fn manage(v: &View, backoff: &dyn Fn(&str) -> Option<Duration>) -> (Vec<Action>, Option<Duration>) {
    let mut actions = Vec::new();
    let mut wait: Option<Duration> = None;
    let delete = |p: &Pod, why| Action::DeletePod {
        name: p.metadata.name().to_string(),
        node: target_node(p).unwrap_or("").to_string(),
        why,
    };
    for (node, (run, keep)) in &v.nodes {
        let name = node.metadata.name();
        let pods = v.by_node.get(name);
        if *run && pods.is_none() {
            actions.push(Action::CreatePod {
                node: name.to_string(),
                pod: pod_for(v.ds, name, v.hash),
            });
            continue;
        }
        let Some(pods) = pods else { continue };
        let live = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none());
        if !keep {
            actions.extend(live.map(|p| delete(p, Why::Misscheduled)));
            continue;
        }
        let mut running = Vec::new();
        for p in live {
            match phase(p) {
                Some("Failed") => match backoff(name) {
                    Some(d) => wait = Some(wait.map_or(d, |w| w.min(d))),
                    None => actions.push(delete(p, Why::Failed)),
                },
                Some("Succeeded") => actions.push(delete(p, Why::Succeeded)),
                _ => running.push(*p),
            }
        }
        oldest_first(&mut running);
        if !v.surge {
            actions.extend(running.iter().skip(1).map(|p| delete(p, Why::Surplus)));
            continue;
        }
        if running.is_empty() && *run {
            actions.push(Action::CreatePod {
                node: name.to_string(),
                pod: pod_for(v.ds, name, v.hash),
            });
            continue;
        }
        // surging: the oldest new and oldest old pods may both stay, the rest go; the old
        // one goes too once it is not ready, or once the new one is available
        let (mut new, mut old) = (None, None);
        for p in running {
            let slot = if updated(p, v.hash, v.generation) {
                &mut new
            } else {
                &mut old
            };
            match slot {
                None => *slot = Some(p),
                Some(_) => actions.push(delete(p, Why::Surplus)),
            }
        }
        if let (Some(n), Some(o)) = (new, old) {
            if replicasets::ready_condition(o).is_none() || v.available(n) {
                actions.push(delete(o, Why::Update));
            }
        }
    }
    // the pods of a deleted node are the pod GC's (`pods_of_gone_nodes_gc`), as upstream
    (actions, wait)
}

/// maxSurge and maxUnavailable against the nodes that should run the pod, rounded up; an
/// impossible zero-zero counts as maxUnavailable 1, as upstream.
fn limits(ds: &DaemonSet, desired: i64) -> (i64, i64) {
    let ru = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let scaled = |v: Option<&IntOrString>, default: i64| {
        v.map_or(Ok(default), |v| v.scaled(desired, true))
            .unwrap_or(default)
            .max(0)
    };
    let surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), 0);
    let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), 1);
    if desired > 0 && surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// The new and old pod of a node (not being deleted), or None when there is more than one of
/// either (the manage loop prunes those first).
fn new_and_old<'a>(v: &View, pods: &[&'a Pod]) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if updated(p, v.hash, v.generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(*p).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Upstream's rollingUpdate: without surge, old pods are deleted (unavailable ones at once,
/// available ones while fewer than maxUnavailable nodes are unavailable); with surge, new pods
/// start beside available old ones (at most maxSurge at a time, at once where the old one is
/// unavailable) and the old ones go when the new ones are available.
fn rolling_update(v: &View) -> Vec<Action> {
    let desired = v.nodes.iter().filter(|(_, (run, _))| *run).count() as i64;
    let (max_surge, max_unavailable) = limits(v.ds, desired);
    let mut nodes: Vec<(&str, bool, &[&Pod])> = v
        .nodes
        .iter()
        .filter(|(n, (run, _))| *run || v.by_node.contains_key(n.metadata.name()))
        .map(|(n, (run, _))| {
            let name = n.metadata.name();
            (name, *run, v.by_node.get(name).map_or(&[][..], |p| &p[..]))
        })
        .collect();
    nodes.sort_by_key(|(n, ..)| *n);
    let delete = |p: &Pod| Action::DeletePod {
        name: p.metadata.name().to_string(),
        node: target_node(p).unwrap_or("").to_string(),
        why: Why::Update,
    };
    let mut actions = Vec::new();
    if max_surge == 0 {
        let (mut unavailable, mut candidates) = (0, Vec::new());
        for (_, _, pods) in &nodes {
            match new_and_old(v, pods) {
                None | Some((None, None) | (Some(_), Some(_))) => unavailable += 1,
                Some((Some(n), None)) => unavailable += i64::from(!v.available(n)),
                Some((None, Some(o))) if !v.available(o) => actions.push(delete(o)),
                Some((None, Some(o))) => candidates.push(o),
            }
        }
        let room = usize::try_from((max_unavailable - unavailable).max(0)).unwrap_or(0);
        actions.extend(candidates.into_iter().take(room).map(delete));
        return actions;
    }
    let (mut surging, mut creates) = (0, Vec::new());
    let mut candidates = Vec::new();
    for (name, run, pods) in &nodes {
        match new_and_old(v, pods) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(o))) if !*run => actions.push(delete(o)),
            Some((None, Some(o))) if !v.available(o) => creates.push(*name),
            Some((None, Some(_))) => candidates.push(*name),
            Some((Some(n), Some(o))) => {
                if v.available(n) {
                    actions.push(delete(o));
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = usize::try_from((max_surge - surging).max(0)).unwrap_or(0);
    creates.extend(candidates.into_iter().take(room));
    actions.extend(creates.into_iter().map(|n| Action::CreatePod {
        node: n.to_string(),
        pod: pod_for(v.ds, n, v.hash),
    }));
    actions
}

/// Upstream's updateDaemonSetStatus, from the pods before this pass's actions.
fn status_of(v: &View) -> DaemonSetStatus {
    let prev = v.ds.status.clone().unwrap_or_default();
    let mut s = DaemonSetStatus {
        observed_generation: v.ds.metadata.generation,
        collision_count: prev.collision_count,
        conditions: prev.conditions,
        ..Default::default()
    };
    for (node, (run, _)) in &v.nodes {
        let pods = v.by_node.get(node.metadata.name());
        if !run {
            s.number_misscheduled += i64::from(pods.is_some());
            continue;
        }
        s.desired_number_scheduled += 1;
        let Some(pods) = pods else { continue };
        s.current_number_scheduled += 1;
        let mut pods = pods.clone();
        oldest_first(&mut pods);
        let p = pods[0];
        if replicasets::ready_condition(p).is_some() {
            s.number_ready += 1;
            s.number_available += i64::from(v.available(p));
        }
        s.updated_number_scheduled += i64::from(updated(p, v.hash, v.generation));
    }
    s.number_unavailable = s.desired_number_scheduled - s.number_available;
    s
}

/// Old revisions beyond `revisionHistoryLimit`, oldest first, that no pod of the set uses.
fn cleanup(ds: &DaemonSet, mut old: Vec<&ControllerRevision>, pods: &[&Pod]) -> Vec<Action> {
    let keep = usize::try_from(ds.spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(0);
    let Some(mut kill) = old.len().checked_sub(keep).filter(|k| *k > 0) else {
        return Vec::new();
    };
    let live: std::collections::HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.get(HASH_LABEL).map(String::as_str))
        .collect();
    old.sort_by_key(|r| r.revision);
    let mut out = Vec::new();
    for r in old {
        if kill == 0 {
            break;
        }
        if r.metadata
            .labels
            .get(HASH_LABEL)
            .is_some_and(|h| live.contains(h.as_str()))
        {
            continue;
        }
        out.push(Action::DeleteRevision(r.metadata.name().to_string()));
        kill -= 1;
    }
    out
}

/// Reconciles one daemon set. `pods` and `revisions`: those it controls; `backoff`: how long
/// the failed pod of a node must still wait before it is deleted (None: it may go now).
pub fn reconcile<N, P, R>(
    ds: &DaemonSet,
    nodes: &[N],
    pods: &[P],
    revisions: &[R],
    now: DateTime<Utc>,
    backoff: &dyn Fn(&str) -> Option<Duration>,
) -> Plan
where
    N: std::borrow::Borrow<Node>,
    P: std::borrow::Borrow<Pod>,
    R: std::borrow::Borrow<ControllerRevision>,
{
    let revisions: Vec<&ControllerRevision> = revisions.iter().map(|r| r.borrow()).collect();
    let (hash, old, mut actions) = history(ds, &revisions);
    let selector = Selector::from_label_selector(&ds.spec.selector).unwrap_or_default();
    let mine: Vec<&Pod> = pods
        .iter()
        .map(|p| -> &Pod { p.borrow() })
        .filter(|p| !selector.is_empty() && selector.matches(&p.metadata.labels))
        .collect();
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for p in &mine {
        let gone = p.metadata.deletion_timestamp.is_some()
            && matches!(phase(p), Some("Succeeded" | "Failed"));
        if let (false, Some(n)) = (gone, target_node(p)) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let daemon = daemon_pod(ds);
    let strategy = ds.spec.update_strategy.as_ref();
    let rolling = strategy.is_none_or(|s| s.type_.as_deref() != Some("OnDelete"));
    let v = View {
        ds,
        hash: &hash,
        generation: template_generation(ds),
        nodes: nodes
            .iter()
            .map(|n| {
                let n: &Node = n.borrow();
                (n, node_fit(&daemon, n))
            })
            .collect(),
        by_node,
        min_ready: ds.spec.min_ready_seconds.unwrap_or(0),
        now,
        surge: rolling && limits(ds, 1).0 > 0,
    };
    let status = status_of(&v);
    let (managed, mut requeue) = manage(&v, backoff);
    if !managed.is_empty() {
        actions.extend(managed);
    } else {
        // as upstream's expectations: the update runs once the pass's creates and deletes are
        // seen, and the history is cleaned once the pods stand still
        let update = if rolling {
            rolling_update(&v)
        } else {
            Vec::new()
        };
        if update.is_empty() {
            actions.extend(cleanup(ds, old, &mine));
        }
        actions.extend(update);
    }
    if v.min_ready > 0 && status.number_ready != status.number_available {
        requeue = Some(requeue.map_or(Duration::from_secs(1), |r| r.min(Duration::from_secs(1))));
    }
    Plan {
        actions,
        status,
        hash,
        requeue,
    }
}

/// The back-off of failed daemon pods, per daemon set and node: 1 s, doubling to 15 min, as
/// upstream's failedPodsBackoff; forgotten after 30 min without a failure.
#[derive(Default)]
pub struct FailedBackoff(Mutex<HashMap<String, (Duration, Instant)>>);

impl FailedBackoff {
    const INITIAL: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(15 * 60);

    /// How long `key`'s failed pod must still wait (None: it may be deleted now).
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (delay, at) = map.get(key)?;
        (*at + *delay).checked_duration_since(now)
    }

    /// Records that `key`'s failed pod was deleted now.
    pub fn next(&self, key: &str, now: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| now.duration_since(*at) < 2 * Self::MAX);
        let entry = map.entry(key.to_string()).or_insert((Duration::ZERO, now));
        entry.0 = (entry.0 * 2).clamp(Self::INITIAL, Self::MAX);
        entry.1 = now;
    }
}

/// A mapper from Node changes: every daemon set is queued when a node comes, goes, or changes
/// what decides where daemons run (labels, taints, cordon, conditions); heartbeats queue
/// nothing.
pub(super) fn on_node(
    caches: &Arc<Caches>,
    queue: &Arc<Queue>,
) -> super::runtime::store::Subscriber<Node> {
    let (caches, queue) = (caches.clone(), queue.clone());
    let seen: Mutex<HashMap<String, u64>> = Mutex::default();
    Arc::new(move |n: &Node| {
        use std::hash::{Hash, Hasher};
        let name = n.metadata.name();
        let present = caches.nodes.get("", name).is_some();
        let fingerprint = present.then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            n.metadata.labels.hash(&mut h);
            serde_json::to_string(&n.spec.taints)
                .unwrap_or_default()
                .hash(&mut h);
            n.spec.unschedulable.hash(&mut h);
            for c in n.status.iter().flat_map(|s| &s.conditions) {
                (&c.type_, &c.status).hash(&mut h);
            }
            h.finish()
        });
        let changed = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            match fingerprint {
                Some(f) => seen.insert(name.to_string(), f) != Some(f),
                None => seen.remove(name).is_some(),
            }
        };
        if changed {
            for ds in caches.daemon_sets.list() {
                queue.add(super::runtime::key_of(&ds.metadata));
            }
        }
    })
}

/// Creates a pod and returns its name (given by the server from `generateName`).
async fn create_pod(api: &Api, ns: &str, pod: Value) -> Result<String, ApiError> {
    let reply = api
        .run(Command::Create {
            kind: Kind::Pod,
            namespace: Some(ns.into()),
            body: pod,
        })
        .await?;
    Ok(match reply {
        Reply::Ok(v) | Reply::Created(v) => crate::api::name_of(&v).to_string(),
        _ => String::new(),
    })
}

/// Applies the revision actions; Ok(false) when the new revision's name is taken by another
/// (the collision count is raised, and the next pass names it again).
async fn apply_history(
    ctx: &Ctx,
    ds: &DaemonSet,
    actions: &[Action],
    status: &DaemonSetStatus,
) -> Result<bool, ApiError> {
    let (api, ns) = (&ctx.api, ds.metadata.namespace());
    for a in actions {
        match a {
            Action::CreateRevision(body) => {
                match api.create(Kind::ControllerRevision, ns, body.clone()).await {
                    Ok(()) => {}
                    Err(ApiError::AlreadyExists { .. }) => {
                        let name = crate::api::name_of(body);
                        let theirs = api.get(Kind::ControllerRevision, Some(ns), name).await?;
                        let ours = theirs.pointer("/metadata/ownerReferences/0/uid")
                            == body.pointer("/metadata/ownerReferences/0/uid")
                            && theirs.get("data") == body.get("data");
                        if !ours {
                            let mut status = status.clone();
                            status.collision_count =
                                Some(status.collision_count.unwrap_or(0).saturating_add(1));
                            super::write_status(
                                api,
                                Kind::DaemonSet,
                                ns,
                                ds.metadata.name(),
                                ds.status.as_ref(),
                                &status,
                            )
                            .await?;
                            return Ok(false);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Action::Renumber { name, revision } => {
                let mut r = api.get(Kind::ControllerRevision, Some(ns), name).await?;
                r["revision"] = json!(revision);
                match api
                    .replace(Kind::ControllerRevision, Some(ns), name, r)
                    .await
                {
                    Ok(()) | Err(ApiError::Conflict(_) | ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            _ => {}
        }
    }
    Ok(true)
}

/// Reconciles daemon set `key` (`namespace/name`) from the caches: its revisions, its pods
/// (creates in slow-start batches, a failed create stops the pass and backs off), its status.
pub(super) async fn reconcile_key(
    ctx: &Ctx,
    key: &str,
    backoff: &FailedBackoff,
) -> Result<Next, ApiError> {
    let (ns, name) = split_key(key);
    let Some(ds) = ctx.caches.daemon_sets.get(ns, name) else {
        return Ok(Next::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Next::await_change());
    }
    let api = &ctx.api;
    let uid = ds.metadata.uid.as_deref().unwrap_or("");
    let nodes = ctx.caches.nodes.list();
    let pods = ctx.caches.pods.owned_by(uid);
    let revisions = ctx.caches.revisions.owned_by(uid);
    let clock = Instant::now();
    let node_key = |node: &str| format!("{uid}/{node}");
    let plan = reconcile(&ds, &nodes, &pods, &revisions, Utc::now(), &|node| {
        backoff.wait(&node_key(node), clock)
    });
    if !apply_history(ctx, &ds, &plan.actions, &plan.status).await? {
        return Ok(Next::await_change());
    }
    let about = || About {
        ns,
        kind: Kind::DaemonSet,
        name,
        uid: Some(uid),
    };
    let mut creates = Vec::new();
    for a in &plan.actions {
        match a {
            Action::DeletePod {
                name: pod,
                node,
                why,
            } => {
                if *why == Why::Failed {
                    let msg = format!(
                        "Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"
                    );
                    api.event(about(), "Warning", "FailedDaemonPod", &msg, SOURCE)
                        .await;
                    backoff.next(&node_key(node), clock);
                }
                api.delete(Kind::Pod, Some(ns), pod, None).await?;
                let msg = format!("Deleted pod: {pod}");
                api.event(about(), "Normal", "SuccessfulDelete", &msg, SOURCE)
                    .await;
            }
            Action::CreatePod { pod, .. } => creates.push(pod.clone()),
            Action::DeleteRevision(r) => {
                api.delete(Kind::ControllerRevision, Some(ns), r, None)
                    .await?
            }
            _ => {}
        }
    }
    let failed = create_pods(api, ns, creates, &about).await;
    super::write_status(
        api,
        Kind::DaemonSet,
        ns,
        name,
        ds.status.as_ref(),
        &plan.status,
    )
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(plan.requeue.map_or_else(Next::await_change, Next::requeue))
}

/// Creates the pods in slow-start batches (at most [`super::BURST`] a pass), each batch's
/// creates at once; stops after a batch in which one failed, and returns that error.
async fn create_pods<'a>(
    api: &Api,
    ns: &str,
    mut pods: Vec<Value>,
    about: &(impl Fn() -> About<'a> + Sync),
) -> Option<ApiError> {
    pods.truncate(super::BURST);
    let mut rest = pods.into_iter();
    for size in super::slow_start_batches(rest.len()) {
        let batch: Vec<Value> = rest.by_ref().take(size).collect();
        let results =
            futures::future::join_all(batch.into_iter().map(|p| create_pod(api, ns, p))).await;
        let mut first = None;
        for r in results {
            match r {
                Ok(pod) => {
                    let msg = format!("Created pod: {pod}");
                    api.event(about(), "Normal", "SuccessfulCreate", &msg, SOURCE)
                        .await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {e}");
                    api.event(about(), "Warning", "FailedCreate", &msg, SOURCE)
                        .await;
                    first.get_or_insert(e);
                }
            }
        }
        if first.is_some() {
            return first;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, NodeStatus, PodStatus};
    use crate::api::meta::{Condition, OwnerReference};
    use crate::api::workloads::{DaemonSetUpdateStrategy, RollingUpdateDaemonSet};

    /// The daemon set at template generation `n` (image `agent:n`), as the API server keeps it.
    fn ds(n: i64) -> DaemonSet {
        let image = format!("agent:{n}");
        let mut d = DaemonSet::default();
        d.metadata.name = Some("agent".into());
        d.metadata.namespace = Some("default".into());
        d.metadata.uid = Some("ds-uid".into());
        d.metadata.generation = Some(1);
        d.spec
            .selector
            .match_labels
            .insert("app".into(), "agent".into());
        let t = &mut d.spec.template;
        t.metadata.labels.insert("app".into(), "agent".into());
        t.spec.containers.push(Container {
            name: "a".into(),
            image,
            ..Default::default()
        });
        let mut v = serde_json::to_value(&d).unwrap();
        let mut d: DaemonSet = crate::api::admit::admit(Kind::DaemonSet, v.take())
            .map(|v| serde_json::from_value(v).unwrap())
            .unwrap();
        d.metadata
            .annotations
            .insert(DAEMON_SET_TEMPLATE_GENERATION.into(), n.to_string());
        d
    }

    fn node(name: &str, ready: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.status = Some(NodeStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        n
    }

    /// The pod the set made for `node` at revision `hash`, Running and Ready since `ready`.
    fn pod(d: &DaemonSet, node: &str, hash: &str, ready: Option<DateTime<Utc>>) -> Pod {
        let mut p: Pod = serde_json::from_value(pod_for(d, node, hash)).unwrap();
        p.metadata.name = Some(format!("agent-{node}-{hash}"));
        p.spec.node_name = Some(node.into());
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready.is_some() { "True" } else { "False" }.into(),
                last_transition_time: ready,
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    /// The revision the set would make of its template, as stored.
    fn revision(d: &DaemonSet, number: i64) -> ControllerRevision {
        let mut v = new_revision(d, &hash_of(d), number);
        v["metadata"]["uid"] = json!(format!("rev-{number}"));
        serde_json::from_value(v).unwrap()
    }

    fn plan(d: &DaemonSet, nodes: &[Node], pods: &[Pod], revs: &[ControllerRevision]) -> Plan {
        reconcile(d, nodes, pods, revs, Utc::now(), &|_| None)
    }

    fn created(p: &Plan) -> Vec<&str> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreatePod { node, .. } => Some(node.as_str()),
                _ => None,
            })
            .collect()
    }

    fn deleted(p: &Plan) -> Vec<(&str, Why)> {
        p.actions
            .iter()
            .filter_map(|a| match a {
                Action::DeletePod { node, why, .. } => Some((node.as_str(), *why)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn one_pod_per_eligible_node_pinned_to_it_with_the_daemon_tolerations() {
        let d = ds(1);
        let mut tainted = node("c", "True");
        tainted.spec.taints = vec![Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        }];
        let mut cordoned = node("e", "True");
        cordoned.spec.unschedulable = Some(true);
        let nodes = [
            node("a", "True"),
            node("b", "True"),
            tainted,
            node("d", "Unknown"),
            cordoned,
        ];
        let p = plan(&d, &nodes, &[], &[]);
        assert!(matches!(&p.actions[0], Action::CreateRevision(r) if r["revision"] == 1));
        assert_eq!(
            created(&p),
            ["a", "b", "e"],
            "not tainted c, not unreachable d"
        );
        assert_eq!(p.status.desired_number_scheduled, 3);
        assert_eq!(p.status.number_unavailable, 3);
        let Action::CreatePod { pod, .. } = &p.actions[1] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["metadata"]["labels"][HASH_LABEL], p.hash.as_str());
        assert_eq!(pod["metadata"]["labels"][GENERATION_LABEL], "1");
        assert_eq!(
            pod["spec"]["affinity"]["nodeAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}])
        );
        let tolerations = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(tolerations.len(), DAEMON_TOLERATIONS.len());
        assert!(
            tolerations.contains(&json!({"key": "node.kubernetes.io/unreachable",
            "operator": "Exists", "effect": "NoExecute"}))
        );
        // the pod targets its node before it is bound
        let unbound: Pod = serde_json::from_value(pod.clone()).unwrap();
        assert_eq!(target_node(&unbound), Some("a"));

        // tolerated, the tainted node runs it too; a node selector narrows it down
        let mut tolerant = d.clone();
        tolerant.spec.template.spec.tolerations = vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        assert_eq!(
            created(&plan(&tolerant, &nodes, &[], &[])),
            ["a", "b", "c", "e"]
        );
        let mut picky = d.clone();
        picky
            .spec
            .template
            .spec
            .node_selector
            .insert("disk".into(), "ssd".into());
        let mut ssd = node("f", "True");
        ssd.metadata.labels.insert("disk".into(), "ssd".into());
        assert_eq!(
            created(&plan(&picky, &[node("a", "True"), ssd], &[], &[])),
            ["f"]
        );
    }

    #[test]
    fn pods_follow_nodes_and_misfits_surplus_and_failures_go() {
        let d = ds(1);
        let revs = [revision(&d, 1)];
        let hash = hash_of(&d);
        let now = Some(Utc::now());
        let mut labelled = node("b", "True");
        labelled.metadata.labels.insert("x".into(), "y".into());
        let mut second = pod(&d, "a", &hash, now);
        second.metadata.name = Some("agent-a-2".into());
        second.metadata.creation_timestamp = Some(Utc::now());
        let mut failed = pod(&d, "b", &hash, None);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let pods = [
            pod(&d, "a", &hash, now),
            second,
            failed,
            pod(&d, "gone", &hash, now),
        ];
        let nodes = [node("a", "True"), labelled, node("new", "True")];
        let p = plan(&d, &nodes, &pods, &revs);
        assert_eq!(created(&p), ["new"]);
        assert_eq!(deleted(&p), [("a", Why::Surplus), ("b", Why::Failed)]);
        assert_eq!(p.status.current_number_scheduled, 2);
        assert_eq!(p.status.desired_number_scheduled, 3);
        assert_eq!(p.status.number_ready, 1);
        // in back-off, the failed pod waits, and the pass comes back when it may go
        let later = reconcile(&d, &nodes, &pods, &revs, Utc::now(), &|n| {
            (n == "b").then_some(Duration::from_secs(4))
        });
        assert!(!deleted(&later).contains(&("b", Why::Failed)));
        assert_eq!(later.requeue, Some(Duration::from_secs(4)));
        // a node selector that no longer matches: the pod is misscheduled and goes
        let mut picky = d.clone();
        picky
            .spec
            .template
            .spec
            .node_selector
            .insert("x".into(), "y".into());
        let p = plan(&picky, &nodes[..2], &pods[..1], &revs);
        assert_eq!(deleted(&p), [("a", Why::Misscheduled)]);
        assert_eq!(p.status.number_misscheduled, 1);
    }

    #[test]
    fn an_unreachable_node_keeps_its_daemon_but_gets_no_new_one() {
        let d = ds(1);
        let daemon = daemon_pod(&d);
        assert_eq!(node_fit(&daemon, &node("a", "True")), (true, true));
        assert_eq!(node_fit(&daemon, &node("a", "Unknown")), (false, true));
        let mut hard = node("a", "True");
        hard.spec.taints = vec![Taint {
            key: "evict".into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }];
        assert_eq!(node_fit(&daemon, &hard), (false, false));
        let hash = hash_of(&d);
        let p = plan(
            &d,
            &[node("a", "Unknown")],
            &[pod(&d, "a", &hash, None)],
            &[revision(&d, 1)],
        );
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }

    #[test]
    fn history_numbers_templates_in_rollout_order_and_keeps_the_limit() {
        let v1 = ds(1);
        let v2 = ds(2);
        let p = plan(&v2, &[], &[], &[revision(&v1, 1)]);
        let Action::CreateRevision(r) = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(r["revision"], 2);
        assert_eq!(r["metadata"]["name"], format!("agent-{}", p.hash));
        assert_eq!(r["metadata"]["labels"]["app"], "agent");
        assert_eq!(r["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            r["data"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "agent:2"
        );
        // rolled back to v1: its revision becomes the newest
        let p = plan(&v1, &[], &[], &[revision(&v1, 1), revision(&v2, 2)]);
        assert_eq!(p.hash, hash_of(&v1));
        assert_eq!(
            p.actions,
            [Action::Renumber {
                name: format!("agent-{}", hash_of(&v1)),
                revision: 3
            }]
        );
        // beyond the limit, the oldest revisions no pod uses go
        let mut limited = ds(4);
        limited.spec.revision_history_limit = Some(2);
        limited.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let revs = [
            revision(&v1, 1),
            revision(&v2, 2),
            revision(&ds(3), 3),
            revision(&limited, 4),
        ];
        let in_use = pod(&limited, "a", &hash_of(&v1), Some(Utc::now()));
        let p = plan(&limited, &[node("a", "True")], &[in_use], &revs);
        assert_eq!(
            p.actions,
            [Action::DeleteRevision(format!("agent-{}", hash_of(&v2)))],
            "v1 is in use, v3 is kept"
        );
    }

    #[test]
    fn a_rolling_update_replaces_max_unavailable_pods_at_a_time() {
        let (v1, v2) = (ds(1), ds(2));
        let revs = [revision(&v1, 1), revision(&v2, 2)];
        let (old, new) = (hash_of(&v1), hash_of(&v2));
        let nodes: Vec<Node> = ["a", "b", "c"].iter().map(|n| node(n, "True")).collect();
        let long_ago = Some(Utc::now() - chrono::Duration::seconds(60));
        let olds: Vec<Pod> = ["a", "b", "c"]
            .iter()
            .map(|n| pod(&v1, n, &old, long_ago))
            .collect();
        let p = plan(&v2, &nodes, &olds, &revs);
        assert_eq!(deleted(&p), [("a", Why::Update)]);
        assert_eq!(p.status.updated_number_scheduled, 0);
        // a's new pod not ready yet: nothing more goes
        let mut pods = vec![pod(&v2, "a", &new, None), olds[1].clone(), olds[2].clone()];
        assert!(plan(&v2, &nodes, &pods, &revs).actions.is_empty());
        // ready: the next one goes
        pods[0] = pod(&v2, "a", &new, long_ago);
        let p = plan(&v2, &nodes, &pods, &revs);
        assert_eq!(deleted(&p), [("b", Why::Update)]);
        assert_eq!(p.status.updated_number_scheduled, 1);
        // an unavailable old pod is replaced at once, without counting
        pods[2] = pod(&v1, "c", &old, None);
        let p = plan(&v2, &nodes, &pods, &revs);
        assert_eq!(deleted(&p), [("c", Why::Update), ("b", Why::Update)]);
        // minReadySeconds: ready is not yet available
        let mut slow = v2.clone();
        slow.spec.min_ready_seconds = Some(30);
        pods[0] = pod(&v2, "a", &new, Some(Utc::now()));
        pods[2] = olds[2].clone();
        let p = plan(&slow, &nodes, &pods, &revs);
        assert!(deleted(&p).is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue, Some(Duration::from_secs(1)));
        // OnDelete: nothing is replaced, a deleted pod comes back new
        let mut on_delete = v2.clone();
        on_delete.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let p = plan(&on_delete, &nodes, &olds[1..], &revs);
        assert!(deleted(&p).is_empty());
        let Action::CreatePod { pod: made, .. } = &p.actions[0] else {
            panic!("{:?}", p.actions)
        };
        assert_eq!(made["metadata"]["labels"][HASH_LABEL], new.as_str());
    }

    #[test]
    fn a_surge_starts_the_new_pod_first_and_removes_the_old_once_available() {
        let v1 = ds(1);
        let mut v2 = ds(2);
        v2.spec.update_strategy = Some(DaemonSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDaemonSet {
                max_unavailable: Some(IntOrString::Int(0)),
                max_surge: Some(IntOrString::Int(1)),
            }),
        });
        let revs = [revision(&v1, 1), revision(&v2, 2)];
        let (old, new) = (hash_of(&v1), hash_of(&v2));
        let nodes: Vec<Node> = ["a", "b"].iter().map(|n| node(n, "True")).collect();
        let ready = Some(Utc::now());
        let olds = vec![pod(&v1, "a", &old, ready), pod(&v1, "b", &old, ready)];
        let p = plan(&v2, &nodes, &olds, &revs);
        assert_eq!(created(&p), ["a"]);
        assert!(deleted(&p).is_empty());
        let mut pods = olds.clone();
        pods.push(pod(&v2, "a", &new, None));
        assert!(plan(&v2, &nodes, &pods, &revs).actions.is_empty());
        pods[2] = pod(&v2, "a", &new, ready);
        let p = plan(&v2, &nodes, &pods, &revs);
        assert_eq!(deleted(&p), [("a", Why::Update)]);
    }

    #[test]
    fn failed_pods_back_off_per_node() {
        let b = FailedBackoff::default();
        let t = Instant::now();
        assert_eq!(b.wait("n", t), None);
        b.next("n", t);
        assert_eq!(b.wait("n", t), Some(Duration::from_secs(1)));
        assert_eq!(b.wait("n", t + Duration::from_secs(2)), None);
        b.next("n", t + Duration::from_secs(2));
        assert_eq!(
            b.wait("n", t + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(b.wait("other", t), None);
    }

    #[test]
    fn tolerations_are_added_once_and_replace_their_match() {
        let mut spec = PodSpec::default();
        spec.tolerations.push(Toleration {
            key: Some("node.kubernetes.io/unreachable".into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(30),
            ..Default::default()
        });
        add_daemon_tolerations(&mut spec, true);
        add_daemon_tolerations(&mut spec, true);
        assert_eq!(spec.tolerations.len(), DAEMON_TOLERATIONS.len() + 1);
        assert!(spec
            .tolerations
            .iter()
            .all(|t| t.toleration_seconds.is_none()));
        let _ = OwnerReference::default();
    }
}
