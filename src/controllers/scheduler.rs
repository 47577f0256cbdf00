//! The scheduler's decision, as a pure function: the pending pods, highest `priority` first,
//! each go to a Ready node that fits its CPU/memory requests, pod count, host ports,
//! nodeSelector, taints (tolerations), node affinity, pod (anti-)affinity and DoNotSchedule
//! topology spread constraints, preferring fewer untolerated PreferNoSchedule taints, then the
//! pod's preferred affinities, then its ScheduleAnyway spread, then the node (and zone) with
//! the fewest pods of the same owner, then the least loaded one. A pod that fits nowhere gets
//! a message saying why, node by node.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::api::core::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration,
};
use crate::api::meta::Quantity;

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Bind {
        namespace: String,
        name: String,
        uid: String,
        node: String,
        /// Claims of the pod that were on no node yet: their volume will live on `node`.
        pin_claims: Vec<String>,
    },
    Unschedulable {
        namespace: String,
        name: String,
        uid: String,
        message: String,
    },
}

struct Slot {
    name: String,
    labels: Arc<BTreeMap<String, String>>,
    zone: Option<String>,
    free_cpu: i128,
    free_mem: i128,
    free_pods: i128,
    /// Allocatable of every other resource the node reports (ephemeral-storage, hugepages,
    /// extended resources), less what its pods ask for.
    free_other: BTreeMap<String, i128>,
    owners: HashMap<String, u32>,
    ready: bool,
    schedulable: bool,
    taints: Vec<Taint>,
    /// The host ports in use: (protocol, port, host IP; "" for all addresses).
    ports: Vec<(String, i64, String)>,
}

/// The host ports a pod takes on its node (its containers', init containers included).
fn host_ports(p: &Pod) -> Vec<(String, i64, String)> {
    p.spec
        .init_containers
        .iter()
        .chain(&p.spec.containers)
        .flat_map(|c| &c.ports)
        .filter_map(|port| {
            let hp = port.host_port.filter(|h| *h > 0)?;
            let ip = port
                .host_ip
                .clone()
                .filter(|i| i != "0.0.0.0")
                .unwrap_or_default();
            Some((
                port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                hp,
                ip,
            ))
        })
        .collect()
}

/// Whether `wanted` collides with ports in use (kube-scheduler's NodePorts: an unspecified host
/// address overlaps every address).
fn ports_conflict(used: &[(String, i64, String)], wanted: &[(String, i64, String)]) -> bool {
    wanted.iter().any(|(proto, port, ip)| {
        used.iter().any(|(p2, port2, ip2)| {
            p2 == proto && port2 == port && (ip.is_empty() || ip2.is_empty() || ip == ip2)
        })
    })
}

fn q(m: &BTreeMap<String, Quantity>, k: &str) -> Option<i128> {
    m.get(k).and_then(|q| q.millis().ok())
}

fn container_requests(ct: &crate::api::core::Container) -> (i128, i128) {
    let r = ct.resources.clone().unwrap_or_default();
    let cpu = q(&r.requests, "cpu").or(q(&r.limits, "cpu")).unwrap_or(0);
    let mem = q(&r.requests, "memory")
        .or(q(&r.limits, "memory"))
        .unwrap_or(0);
    (cpu, mem)
}

/// The resources other than cpu and memory a pod asks for (in thousandths), summed and maxed
/// with its init containers as `requests` does; empty for most pods.
pub fn other_requests(p: &Pod) -> Vec<(String, i128)> {
    fn of(ct: &crate::api::core::Container) -> Vec<(String, i128)> {
        let Some(r) = &ct.resources else {
            return Vec::new();
        };
        r.limits
            .keys()
            .chain(r.requests.keys().filter(|k| !r.limits.contains_key(*k)))
            .filter(|k| *k != "cpu" && *k != "memory")
            .filter_map(|k| Some((k.clone(), q(&r.requests, k).or(q(&r.limits, k))?)))
            .collect()
    }
    let mut out: BTreeMap<String, i128> = BTreeMap::new();
    for (k, v) in p.spec.containers.iter().flat_map(of) {
        *out.entry(k).or_default() += v;
    }
    for (k, v) in p.spec.init_containers.iter().flat_map(of) {
        let e = out.entry(k).or_default();
        *e = (*e).max(v);
    }
    out.into_iter().filter(|(_, v)| *v > 0).collect()
}

fn take_other(free: &mut BTreeMap<String, i128>, wanted: &[(String, i128)]) {
    for (k, v) in wanted {
        *free.entry(k.clone()).or_default() -= v;
    }
}

/// CPU (millicores) and memory (milli-bytes) a pod asks for: its requests, or its limits; as
/// in Kubernetes, the app containers' and sidecars' sum, or the most any init container
/// needs while it runs (with the sidecars started before it), whichever is larger, plus the
/// pod's overhead.
pub fn requests(p: &Pod) -> (i128, i128) {
    let (mut cpu, mut mem) = p.spec.containers.iter().fold((0, 0), |(c, m), ct| {
        let (cpu, mem) = container_requests(ct);
        (c + cpu, m + mem)
    });
    let (mut side_cpu, mut side_mem, mut init_cpu, mut init_mem) = (0, 0, 0, 0);
    for ct in &p.spec.init_containers {
        let (c, m) = container_requests(ct);
        let (need_cpu, need_mem) = if crate::api::podfields::is_sidecar(ct) {
            (cpu, mem) = (cpu + c, mem + m);
            (side_cpu, side_mem) = (side_cpu + c, side_mem + m);
            (side_cpu, side_mem)
        } else {
            (side_cpu + c, side_mem + m)
        };
        (init_cpu, init_mem) = (init_cpu.max(need_cpu), init_mem.max(need_mem));
    }
    let over = &p.spec.overhead;
    (
        cpu.max(init_cpu) + q(over, "cpu").unwrap_or(0),
        mem.max(init_mem) + q(over, "memory").unwrap_or(0),
    )
}

/// Whether `t` tolerates `taint` (Kubernetes' ToleratesTaint): an empty effect matches every
/// effect, an empty key with `Exists` every taint; `Equal` (the default) compares the values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`, which lets it onto
/// a cordoned node (Kubernetes' NodeUnschedulable filter; DaemonSet pods carry it).
pub fn tolerates_unschedulable(p: &Pod) -> bool {
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    p.spec.tolerations.iter().any(|t| tolerates(t, &taint))
}

/// The first of `taints` with a NoSchedule or NoExecute effect that none of `tolerations`
/// tolerates: such a taint keeps the pod off the node.
pub fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let num = |v: &str| v.parse::<i64>().ok();
    match (r.operator.as_str(), value) {
        ("In", Some(v)) => r.values.iter().any(|x| x == v),
        ("NotIn", v) => v.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        ("Exists", v) => v.is_some(),
        ("DoesNotExist", v) => v.is_none(),
        ("Gt", Some(v)) => {
            matches!((num(v), r.values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a > b)
        }
        ("Lt", Some(v)) => {
            matches!((num(v), r.values.first().and_then(|x| num(x))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

/// Whether a node (its labels and name) matches a node selector term: every expression on
/// the labels and every field (`metadata.name`) requirement. An empty term matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, labels: &BTreeMap<String, String>, name: &str) -> bool {
    if t.match_expressions.is_empty() && t.match_fields.is_empty() {
        return false;
    }
    t.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && t.match_fields
            .iter()
            .all(|r| requirement_matches(r, (r.key == "metadata.name").then_some(name)))
}

/// Whether the pod's required node affinity admits the node (any of its terms matches).
pub fn node_affinity_fits(p: &Pod, labels: &BTreeMap<String, String>, name: &str) -> bool {
    let required = p
        .spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    required.is_none_or(|sel| {
        sel.node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name))
    })
}

/// The sum of the weights of the pod's preferred node affinity terms the node matches.
pub fn node_affinity_score(p: &Pod, labels: &BTreeMap<String, String>, name: &str) -> i64 {
    p.spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .map_or(0, |n| {
            n.preferred_during_scheduling_ignored_during_execution
                .iter()
                .filter(|t| term_matches(&t.preference, labels, name))
                .map(|t| t.weight)
                .sum()
        })
}

/// A pod on a node (bound before, or placed earlier in this pass), as pod affinity sees it.
#[derive(Debug, Clone)]
pub struct Placed {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// The index of its node among the nodes scheduled over.
    pub node: usize,
    /// The labels of the node it is on (shared by every pod of the node).
    pub node_labels: Arc<BTreeMap<String, String>>,
    /// Its own required anti-affinity terms (they keep other pods away from it too).
    pub anti: Vec<PodAffinityTerm>,
}

impl Placed {
    pub fn of(p: &Pod, node: usize, node_labels: &Arc<BTreeMap<String, String>>) -> Placed {
        Placed {
            namespace: p.metadata.namespace().to_string(),
            labels: p.metadata.labels.clone(),
            node,
            node_labels: node_labels.clone(),
            anti: p
                .spec
                .affinity
                .as_ref()
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .map(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .clone()
                })
                .unwrap_or_default(),
        }
    }
}

/// The pods placed so far. The few that carry required anti-affinity terms are indexed apart:
/// every candidate node of every pending pod is checked against those terms, so that check
/// must not walk every placed pod (10,000 pending pods × 1,000 nodes × 10,000 placed pods).
#[derive(Debug, Default)]
pub struct Placements {
    all: Vec<Placed>,
    with_anti: Vec<usize>,
}

impl Placements {
    pub fn push(&mut self, p: Placed) {
        if !p.anti.is_empty() {
            self.with_anti.push(self.all.len());
        }
        self.all.push(p);
    }

    fn with_anti(&self) -> impl Iterator<Item = &Placed> {
        self.with_anti.iter().map(|&i| &self.all[i])
    }
}

/// Whether a term of a pod in namespace `own_ns` picks the pod (`ns`, `labels`): its
/// namespaces (the owner's if none) and its label selector (none: no pod).
pub fn pod_term_picks(
    term: &PodAffinityTerm,
    own_ns: &str,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let in_ns = if term.namespaces.is_empty() {
        ns == own_ns
    } else {
        term.namespaces.iter().any(|n| n == ns)
    };
    in_ns
        && term
            .label_selector
            .as_ref()
            .and_then(|ls| crate::api::labels::Selector::from_label_selector(ls).ok())
            .is_some_and(|sel| sel.matches(labels))
}

/// Whether two nodes are in the same domain of `key` (both have the label, same value).
fn same_domain(key: &str, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    matches!((a.get(key), b.get(key)), (Some(x), Some(y)) if x == y)
}

/// Why the pod's required pod affinity / anti-affinity (or an existing pod's anti-affinity)
/// keeps it off a node with `labels`, in Kubernetes' words; `None` when it may go there.
pub fn pod_affinity_misfit(
    p: &Pod,
    labels: &BTreeMap<String, String>,
    placed: &Placements,
) -> Option<&'static str> {
    let ns = p.metadata.namespace();
    let aff = p.spec.affinity.as_ref();
    let required = |a: Option<&crate::api::core::PodAffinity>| {
        a.map(|a| {
            a.required_during_scheduling_ignored_during_execution
                .clone()
        })
        .unwrap_or_default()
    };
    let affinity = required(aff.and_then(|a| a.pod_affinity.as_ref()));
    for t in &affinity {
        let matching: Vec<&Placed> = placed
            .all
            .iter()
            .filter(|o| pod_term_picks(t, ns, &o.namespace, &o.labels))
            .collect();
        // the first pod of a group that picks itself may go anywhere the key exists
        let alone = matching.is_empty()
            && pod_term_picks(t, ns, ns, &p.metadata.labels)
            && labels.contains_key(&t.topology_key);
        if !alone
            && !matching
                .iter()
                .any(|o| same_domain(&t.topology_key, labels, &o.node_labels))
        {
            return Some("node(s) didn't match pod affinity rules");
        }
    }
    let anti = required(aff.and_then(|a| a.pod_anti_affinity.as_ref()));
    for t in &anti {
        if placed.all.iter().any(|o| {
            pod_term_picks(t, ns, &o.namespace, &o.labels)
                && same_domain(&t.topology_key, labels, &o.node_labels)
        }) {
            return Some("node(s) didn't match pod anti-affinity rules");
        }
    }
    let existing = placed.with_anti().any(|o| {
        o.anti.iter().any(|t| {
            pod_term_picks(t, &o.namespace, ns, &p.metadata.labels)
                && same_domain(&t.topology_key, labels, &o.node_labels)
        })
    });
    existing.then_some("node(s) didn't satisfy existing pods anti-affinity rules")
}

/// The preferred pod affinity score of a node: for each preferred term, its weight times the
/// pods it picks in the node's domain (added for affinity, taken off for anti-affinity).
pub fn pod_affinity_score(p: &Pod, labels: &BTreeMap<String, String>, placed: &Placements) -> i64 {
    let ns = p.metadata.namespace();
    let Some(aff) = p.spec.affinity.as_ref() else {
        return 0;
    };
    let mut score = 0;
    for (sign, a) in [(1, &aff.pod_affinity), (-1, &aff.pod_anti_affinity)] {
        for w in a
            .iter()
            .flat_map(|a| &a.preferred_during_scheduling_ignored_during_execution)
        {
            let t = &w.pod_affinity_term;
            let n = placed
                .all
                .iter()
                .filter(|o| {
                    pod_term_picks(t, ns, &o.namespace, &o.labels)
                        && same_domain(&t.topology_key, labels, &o.node_labels)
                })
                .count() as i64;
            score += sign * w.weight * n;
        }
    }
    score
}

/// How many PreferNoSchedule taints of a node the pod does not tolerate (the fewer the better).
pub fn intolerable_preferences(taints: &[Taint], tolerations: &[Toleration]) -> u32 {
    taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .filter(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
        .count() as u32
}

/// The uid of the pod's controlling owner (what replicas are spread by).
pub fn owner(p: &Pod) -> Option<&str> {
    super::controller_of(&p.metadata)
}

pub fn node_ready(n: &Node) -> bool {
    n.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn is_terminal(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Where each PersistentVolumeClaim's volume lives, by (namespace, claim): `Some(node)` once a
/// pod using it was placed, `None` before. A claim absent from the map does not exist.
pub type Claims = BTreeMap<(String, String), Option<String>>;

fn claims_of(p: &Pod) -> Vec<String> {
    p.spec
        .volumes
        .iter()
        .filter_map(|v| {
            v.persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.clone())
        })
        .collect()
}

/// How a node ranks for a pod, the smallest first: untolerated PreferNoSchedule taints, minus
/// the pod's affinity weights, its ScheduleAnyway spread, siblings in the zone, siblings on the
/// node, minus free share.
type Rank = (u32, i64, i64, u32, u32, i128);

/// Why node `s` cannot take pod `p` (kube-scheduler's reasons), or `None` when it can.
#[allow(clippy::too_many_arguments)]
fn misfit(
    p: &Pod,
    s: &Slot,
    required: Option<&(String, String)>,
    (cpu, mem, other): (i128, i128, &[(String, i128)]),
    ports: &[(String, i64, String)],
    placed: &Placements,
    spread: &super::spread::Spread,
) -> Option<String> {
    let taint = untolerated(&s.taints, &p.spec.tolerations);
    if required.is_some_and(|(_, n)| *n != s.name) {
        Some("node(s) didn't hold the pod's volume".to_string())
    } else if !s.ready {
        Some("node(s) were not Ready".to_string())
    } else if !s.schedulable && !tolerates_unschedulable(p) {
        Some("node(s) were unschedulable".to_string())
    } else if let Some(t) = taint {
        // Kubernetes' wording: "node(s) had untolerated taint {key: value}"
        Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t.key,
            t.value.as_deref().unwrap_or("")
        ))
    } else if p
        .spec
        .node_selector
        .iter()
        .any(|(k, v)| s.labels.get(k) != Some(v))
    {
        Some("node(s) didn't match the pod's nodeSelector".to_string())
    } else if !node_affinity_fits(p, &s.labels, &s.name) {
        Some("node(s) didn't match Pod's node affinity/selector".to_string())
    } else if ports_conflict(&s.ports, ports) {
        Some("node(s) didn't have free ports for the requested pod ports".to_string())
    } else if let Some(why) = pod_affinity_misfit(p, &s.labels, placed) {
        Some(why.to_string())
    } else if let Some(why) = spread.misfit(&s.labels) {
        Some(why.to_string())
    } else if s.free_pods < 1 {
        Some("Too many pods".to_string())
    } else if s.free_cpu < cpu {
        Some("Insufficient cpu".to_string())
    } else if s.free_mem < mem {
        Some("Insufficient memory".to_string())
    } else if let Some((k, _)) = other
        .iter()
        .find(|(k, v)| s.free_other.get(k).copied().unwrap_or(0) < *v)
    {
        Some(format!("Insufficient {k}"))
    } else {
        None
    }
}

/// The pod's topology spread, counted over the nodes and the pods placed so far.
fn spread_of(p: &Pod, slots: &[Slot], placed: &Placements) -> super::spread::Spread {
    use super::spread::{prepare, Counted, NodeView};
    if p.spec.topology_spread_constraints.is_empty() {
        return prepare(p, &[], &[]);
    }
    let nodes: Vec<NodeView> = slots
        .iter()
        .map(|s| NodeView {
            name: &s.name,
            labels: &s.labels,
            taints: &s.taints,
        })
        .collect();
    let counted: Vec<Counted> = placed
        .all
        .iter()
        .map(|o| Counted {
            namespace: &o.namespace,
            labels: &o.labels,
            node: o.node,
        })
        .collect();
    prepare(p, &nodes, &counted)
}

/// Why a pod fits no node, in kube-scheduler's words: `0/N nodes are available: ...`, the
/// reasons counted.
fn unschedulable(
    why: &BTreeMap<String, usize>,
    required: Option<&(String, String)>,
    nodes: usize,
) -> String {
    if nodes == 0 {
        return "0/0 nodes are available: the cluster has no nodes".to_string();
    }
    let detail: Vec<String> = why
        .iter()
        .map(|(r, n)| match required {
            Some((c, node)) if r.contains("didn't hold") => {
                format!("{n} {r} (claim {c:?} lives on node {node})")
            }
            _ => format!("{n} {r}"),
        })
        .collect();
    format!("0/{nodes} nodes are available: {}", detail.join(", "))
}

/// Decides for every pod of `pending` (unbound), given the nodes, the pods already bound and
/// where claims live (a claim's volume is local to one node, so its pods must follow it).
pub fn schedule(pending: &[&Pod], nodes: &[Node], bound: &[&Pod], claims: &Claims) -> Vec<Outcome> {
    let mut claims = claims.clone();
    let mut slots: Vec<Slot> = nodes
        .iter()
        .map(|n| {
            let alloc = n
                .status
                .as_ref()
                .map(|s| {
                    if s.allocatable.is_empty() {
                        &s.capacity
                    } else {
                        &s.allocatable
                    }
                })
                .cloned()
                .unwrap_or_default();
            Slot {
                name: n.metadata.name().to_string(),
                labels: Arc::new(n.metadata.labels.clone()),
                zone: n.metadata.labels.get(ZONE_LABEL).cloned(),
                free_cpu: q(&alloc, "cpu").unwrap_or(0),
                free_mem: q(&alloc, "memory").unwrap_or(0),
                free_pods: q(&alloc, "pods").map_or(110, |m| m / 1000),
                free_other: alloc
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "cpu" | "memory" | "pods"))
                    .filter_map(|(k, v)| Some((k.clone(), v.millis().ok()?)))
                    .collect(),
                owners: HashMap::new(),
                ready: node_ready(n),
                schedulable: n.spec.unschedulable != Some(true),
                taints: n.spec.taints.clone(),
                ports: Vec::new(),
            }
        })
        .collect();
    let index: HashMap<String, usize> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let mut zone_owners: HashMap<(String, String), u32> = HashMap::new();
    let mut placed = Placements::default();
    for p in bound.iter().filter(|p| !is_terminal(p)) {
        let Some(&i) = p.spec.node_name.as_ref().and_then(|n| index.get(n)) else {
            continue;
        };
        placed.push(Placed::of(p, i, &slots[i].labels));
        let (cpu, mem) = requests(p);
        let s = &mut slots[i];
        s.free_cpu -= cpu;
        s.free_mem -= mem;
        s.free_pods -= 1;
        take_other(&mut s.free_other, &other_requests(p));
        s.ports.extend(host_ports(p));
        if let Some(o) = owner(p) {
            *s.owners.entry(o.to_string()).or_default() += 1;
            if let Some(z) = &s.zone {
                *zone_owners.entry((z.clone(), o.to_string())).or_default() += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(pending.len());
    // the scheduling queue: higher priority first, then the older pod
    let mut pending = pending.to_vec();
    pending.sort_by_key(|p| (-p.spec.priority.unwrap_or(0), p.metadata.creation_timestamp));
    for p in pending {
        let (cpu, mem) = requests(p);
        let other = other_requests(p);
        let own = owner(p).map(str::to_string);
        let ns = p.metadata.namespace().to_string();
        let wanted = claims_of(p);
        let (namespace, name, uid) = (
            ns.clone(),
            p.metadata.name().to_string(),
            p.metadata.uid.clone().unwrap_or_default(),
        );
        if let Some(missing) = wanted
            .iter()
            .find(|c| !claims.contains_key(&(ns.clone(), (*c).clone())))
        {
            out.push(Outcome::Unschedulable {
                namespace,
                name,
                uid,
                message: format!("persistentvolumeclaim {missing:?} not found"),
            });
            continue;
        }
        let mut pinned: Vec<(&String, String)> = wanted
            .iter()
            .filter_map(|c| claims[&(ns.clone(), c.clone())].clone().map(|n| (c, n)))
            .collect();
        pinned.dedup_by(|a, b| a.1 == b.1);
        if pinned.len() > 1 {
            out.push(Outcome::Unschedulable {
                namespace,
                name,
                uid,
                message: format!(
                    "the pod's claims live on different nodes ({})",
                    pinned
                        .iter()
                        .map(|(c, n)| format!("{c} on {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
            continue;
        }
        let required = pinned.first().map(|(c, n)| ((*c).clone(), n.clone()));
        let mut why: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(usize, Rank)> = None;
        let spread = spread_of(p, &slots, &placed);
        let ports = host_ports(p);
        for (i, s) in slots.iter().enumerate() {
            let reason = misfit(
                p,
                s,
                required.as_ref(),
                (cpu, mem, &other),
                &ports,
                &placed,
                &spread,
            );
            if let Some(r) = reason {
                *why.entry(r).or_default() += 1;
                continue;
            }
            let same_node = own
                .as_ref()
                .and_then(|o| s.owners.get(o))
                .copied()
                .unwrap_or(0);
            let same_zone = match (&own, &s.zone) {
                (Some(o), Some(z)) => zone_owners
                    .get(&(z.clone(), o.clone()))
                    .copied()
                    .unwrap_or(0),
                _ => 0,
            };
            // fewer PreferNoSchedule taints not tolerated, fewer siblings in the zone, then on
            // the node, then the most free CPU+memory share
            let key = (
                intolerable_preferences(&s.taints, &p.spec.tolerations),
                // then the pod's own preferences (node and pod affinity weights)
                -(node_affinity_score(p, &s.labels, &s.name)
                    + pod_affinity_score(p, &s.labels, &placed)),
                spread.penalty(&s.labels),
                same_zone,
                same_node,
                -(s.free_cpu / 10 + s.free_mem / (1 << 30)),
            );
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((i, key));
            }
        }
        match best {
            Some((i, _)) => {
                placed.push(Placed::of(p, i, &slots[i].labels));
                let s = &mut slots[i];
                s.free_cpu -= cpu;
                s.free_mem -= mem;
                s.free_pods -= 1;
                take_other(&mut s.free_other, &other);
                s.ports.extend(ports);
                if let Some(o) = &own {
                    *s.owners.entry(o.clone()).or_default() += 1;
                    if let Some(z) = &s.zone {
                        *zone_owners.entry((z.clone(), o.clone())).or_default() += 1;
                    }
                }
                let mut pin_claims = Vec::new();
                for c in &wanted {
                    let slot = claims.entry((ns.clone(), c.clone())).or_default();
                    if slot.is_none() {
                        *slot = Some(s.name.clone());
                        pin_claims.push(c.clone());
                    }
                }
                out.push(Outcome::Bind {
                    namespace,
                    name,
                    uid,
                    node: s.name.clone(),
                    pin_claims,
                });
            }
            None => {
                let message = unschedulable(&why, required.as_ref(), slots.len());
                out.push(Outcome::Unschedulable {
                    namespace,
                    name,
                    uid,
                    message,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, NodeStatus, ResourceRequirements};
    use crate::api::meta::{Condition, OwnerReference};

    fn node(name: &str, cpu: &str, mem: &str, zone: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        if let Some(z) = zone {
            n.metadata.labels.insert(ZONE_LABEL.into(), z.into());
        }
        let cap = BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
            ("pods".to_string(), Quantity("110".into())),
        ]);
        n.status = Some(NodeStatus {
            capacity: cap.clone(),
            allocatable: cap,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        n
    }

    fn pod(name: &str, cpu: &str, owner_uid: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        if let Some(o) = owner_uid {
            p.metadata.owner_references.push(OwnerReference {
                uid: o.into(),
                controller: Some(true),
                ..Default::default()
            });
        }
        p.spec.containers.push(Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))]),
                ..Default::default()
            }),
            ..Default::default()
        });
        p
    }

    fn nodes_of(out: &[Outcome]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Outcome::Bind { node, .. } => node.clone(),
                Outcome::Unschedulable { message, .. } => format!("none: {message}"),
            })
            .collect()
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_taints_as_kubernetes_does() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        assert!(tolerates(
            &toleration("dedicated", "Equal", "gpu", "NoSchedule"),
            &t
        ));
        assert!(tolerates(&toleration("dedicated", "", "gpu", ""), &t));
        assert!(tolerates(&toleration("dedicated", "Exists", "", ""), &t));
        assert!(tolerates(&toleration("", "Exists", "", ""), &t));
        assert!(!tolerates(&toleration("dedicated", "Equal", "cpu", ""), &t));
        assert!(!tolerates(
            &toleration("dedicated", "Exists", "", "NoExecute"),
            &t
        ));
        assert!(!tolerates(&toleration("other", "Exists", "", ""), &t));
        let taints = [taint("soft", "", "PreferNoSchedule"), t.clone()];
        assert_eq!(untolerated(&taints, &[]), Some(&t));
        assert_eq!(intolerable_preferences(&taints, &[]), 1);
        let all = [toleration("", "Exists", "", "")];
        assert_eq!(untolerated(&taints, &all), None);
        assert_eq!(intolerable_preferences(&taints, &all), 0);
    }

    #[test]
    fn taints_keep_pods_off_a_node_unless_tolerated() {
        let mut tainted = node("a", "4", "8Gi", None);
        tainted.spec.taints = vec![taint("dedicated", "gpu", "NoSchedule")];
        let mut soft = node("b", "4", "8Gi", None);
        soft.spec.taints = vec![taint("spare", "", "PreferNoSchedule")];
        let plain = pod("plain", "100m", None);
        let out = nodes_of(&schedule(
            &[&plain],
            &[tainted.clone()],
            &[],
            &Claims::new(),
        ));
        assert_eq!(
            out,
            vec!["none: 0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}"]
        );
        // PreferNoSchedule only: used when nothing else fits, avoided otherwise
        let out = nodes_of(&schedule(
            &[&plain],
            &[tainted.clone(), soft.clone()],
            &[],
            &Claims::new(),
        ));
        assert_eq!(out, vec!["b"]);
        let mut tolerant = pod("tolerant", "100m", None);
        tolerant.spec.tolerations = vec![toleration("dedicated", "Equal", "gpu", "NoSchedule")];
        let out = nodes_of(&schedule(
            &[&tolerant],
            &[tainted, soft],
            &[],
            &Claims::new(),
        ));
        assert_eq!(
            out,
            vec!["a"],
            "the tolerated node has no PreferNoSchedule taint"
        );
    }

    #[test]
    fn a_cordoned_node_takes_only_pods_that_tolerate_unschedulable() {
        let mut cordoned = node("a", "4", "8Gi", None);
        cordoned.spec.unschedulable = Some(true);
        let plain = pod("plain", "100m", None);
        let out = nodes_of(&schedule(
            &[&plain],
            &[cordoned.clone()],
            &[],
            &Claims::new(),
        ));
        assert_eq!(
            out,
            vec!["none: 0/1 nodes are available: 1 node(s) were unschedulable"]
        );
        let mut daemon = pod("daemon", "100m", None);
        daemon.spec.tolerations = vec![toleration(
            "node.kubernetes.io/unschedulable",
            "Exists",
            "",
            "NoSchedule",
        )];
        let out = nodes_of(&schedule(&[&daemon], &[cordoned], &[], &Claims::new()));
        assert_eq!(out, vec!["a"]);
    }

    fn hosts(names: &[(&str, &str)]) -> Vec<Node> {
        names
            .iter()
            .map(|(n, z)| {
                let mut node = node(n, "4", "8Gi", Some(z));
                node.metadata
                    .labels
                    .insert("kubernetes.io/hostname".into(), n.to_string());
                node
            })
            .collect()
    }

    fn term(key: &str, app: &str) -> crate::api::core::PodAffinityTerm {
        crate::api::core::PodAffinityTerm {
            label_selector: Some(crate::api::meta::LabelSelector {
                match_labels: BTreeMap::from([("app".to_string(), app.to_string())]),
                ..Default::default()
            }),
            topology_key: key.into(),
            ..Default::default()
        }
    }

    fn labelled(name: &str, app: &str) -> Pod {
        let mut p = pod(name, "100m", None);
        p.metadata.labels.insert("app".into(), app.into());
        p
    }

    #[test]
    fn pod_anti_affinity_spreads_replicas_and_refuses_a_third() {
        use crate::api::core::{Affinity, PodAffinity};
        let nodes = hosts(&[("a", "z1"), ("b", "z1")]);
        let pods: Vec<Pod> = (0..3)
            .map(|i| {
                let mut p = labelled(&format!("web{i}"), "web");
                p.spec.affinity = Some(Box::new(Affinity {
                    pod_anti_affinity: Some(PodAffinity {
                        required_during_scheduling_ignored_during_execution: vec![term(
                            "kubernetes.io/hostname",
                            "web",
                        )],
                        ..Default::default()
                    }),
                    ..Default::default()
                }));
                p
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = nodes_of(&schedule(&refs, &nodes, &[], &Claims::new()));
        assert_eq!(out[0..2].iter().filter(|n| *n == "a").count(), 1, "{out:?}");
        assert_eq!(
            out[2],
            "none: 0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules"
        );
        // a pod without anti-affinity of its own is still kept off by theirs
        let mut placed = pods[0].clone();
        placed.spec.node_name = Some("a".into());
        let other = labelled("other", "web");
        let out = nodes_of(&schedule(
            &[&other],
            &nodes[..1],
            &[&placed],
            &Claims::new(),
        ));
        assert!(
            out[0].contains("didn't satisfy existing pods anti-affinity rules"),
            "{out:?}"
        );
        // by zone: both nodes are one domain
        let mut zonal = pods[1].clone();
        zonal.spec.affinity.as_mut().unwrap().pod_anti_affinity = Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: vec![term(ZONE_LABEL, "web")],
            ..Default::default()
        });
        let out = nodes_of(&schedule(&[&zonal], &nodes, &[&placed], &Claims::new()));
        assert!(out[0].starts_with("none"), "{out:?}");
    }

    #[test]
    fn pod_affinity_follows_the_pods_it_picks() {
        use crate::api::core::{Affinity, PodAffinity};
        let nodes = hosts(&[("a", "z1"), ("b", "z2")]);
        let mut db = labelled("db", "db");
        db.spec.node_name = Some("b".into());
        let mut web = labelled("web", "web");
        web.spec.affinity = Some(Box::new(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: vec![term(ZONE_LABEL, "db")],
                ..Default::default()
            }),
            ..Default::default()
        }));
        let out = nodes_of(&schedule(&[&web], &nodes, &[&db], &Claims::new()));
        assert_eq!(out, vec!["b"]);
        let out = nodes_of(&schedule(&[&web], &nodes, &[], &Claims::new()));
        assert!(
            out[0].contains("didn't match pod affinity rules"),
            "{out:?}"
        );
    }

    #[test]
    fn node_affinity_requires_and_prefers_labels() {
        use crate::api::core::{
            Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
            PreferredSchedulingTerm,
        };
        let nodes = hosts(&[("a", "z1"), ("b", "z2"), ("c", "z2")]);
        let zone = |op: &str, v: &[&str]| NodeSelectorTerm {
            match_expressions: vec![NodeSelectorRequirement {
                key: ZONE_LABEL.into(),
                operator: op.into(),
                values: v.iter().map(|s| s.to_string()).collect(),
            }],
            ..Default::default()
        };
        let mut p = pod("p", "100m", None);
        p.spec.affinity = Some(Box::new(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![zone("In", &["z2"])],
                }),
                preferred_during_scheduling_ignored_during_execution: vec![
                    PreferredSchedulingTerm {
                        weight: 10,
                        preference: NodeSelectorTerm {
                            match_fields: vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: vec!["c".into()],
                            }],
                            ..Default::default()
                        },
                    },
                ],
            }),
            ..Default::default()
        }));
        assert_eq!(
            nodes_of(&schedule(&[&p], &nodes, &[], &Claims::new())),
            vec!["c"]
        );
        let out = nodes_of(&schedule(&[&p], &nodes[..1], &[], &Claims::new()));
        assert_eq!(
            out,
            vec!["none: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector"]
        );
        assert!(term_matches(
            &zone("NotIn", &["z1"]),
            &nodes[1].metadata.labels,
            "b"
        ));
        assert!(!term_matches(
            &zone("DoesNotExist", &[]),
            &nodes[1].metadata.labels,
            "b"
        ));
    }

    #[test]
    fn init_containers_count_by_the_largest_not_the_sum() {
        let mut p = pod("p", "100m", None);
        let mut big = p.spec.containers[0].clone();
        big.name = "init".into();
        big.resources = Some(ResourceRequirements {
            requests: BTreeMap::from([("cpu".to_string(), Quantity("2".into()))]),
            ..Default::default()
        });
        p.spec.init_containers = vec![big.clone(), big];
        assert_eq!(requests(&p).0, 2000);
    }

    #[test]
    fn replicas_of_one_owner_spread_over_nodes_and_zones() {
        let nodes = vec![
            node("a", "4", "8Gi", Some("z1")),
            node("b", "4", "8Gi", Some("z1")),
            node("c", "4", "8Gi", Some("z2")),
        ];
        let pods: Vec<Pod> = (0..4)
            .map(|i| pod(&format!("p{i}"), "100m", Some("d1")))
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = nodes_of(&schedule(&refs, &nodes, &[], &Claims::new()));
        // zone z2 (one node) gets as many as zone z1 (two nodes)
        let z2 = out.iter().filter(|n| *n == "c").count();
        assert_eq!(z2, 2, "{out:?}");
        assert!(
            out.contains(&"a".to_string()) && out.contains(&"b".to_string()),
            "{out:?}"
        );
    }

    #[test]
    fn requests_and_selectors_decide_and_a_misfit_says_why() {
        let mut nodes = vec![
            node("small", "1", "1Gi", None),
            node("big", "8", "16Gi", None),
        ];
        nodes[1].metadata.labels.insert("disk".into(), "ssd".into());
        let big = pod("big", "2", None);
        let mut picky = pod("picky", "100m", None);
        picky.spec.node_selector.insert("disk".into(), "ssd".into());
        let huge = pod("huge", "64", None);
        let out = nodes_of(&schedule(
            &[&big, &picky, &huge],
            &nodes,
            &[],
            &Claims::new(),
        ));
        assert_eq!(out[0], "big");
        assert_eq!(out[1], "big");
        assert!(
            out[2].contains("0/2 nodes are available: 2 Insufficient cpu"),
            "{}",
            out[2]
        );
        let mut down = node("down", "8", "16Gi", None);
        down.status.as_mut().unwrap().conditions[0].status = "Unknown".into();
        let out = nodes_of(&schedule(&[&picky], &[down], &[], &Claims::new()));
        assert!(out[0].contains("1 node(s) were not Ready"), "{}", out[0]);
    }

    #[test]
    fn extended_resources_and_ephemeral_storage_are_counted_per_node() {
        let mut gpu = node("gpu", "8", "16Gi", None);
        let alloc = &mut gpu.status.as_mut().unwrap().allocatable;
        alloc.insert("example.com/gpu".into(), Quantity("2".into()));
        alloc.insert("ephemeral-storage".into(), Quantity("10Gi".into()));
        let plain = node("plain", "8", "16Gi", None);
        let asks = |name: &str, res: &str, n: &str| {
            let mut p = pod(name, "100m", None);
            let r = p.spec.containers[0].resources.as_mut().unwrap();
            r.limits.insert(res.into(), Quantity(n.into()));
            p
        };
        let (a, b, c) = (
            asks("a", "example.com/gpu", "1"),
            asks("b", "example.com/gpu", "1"),
            asks("c", "example.com/gpu", "1"),
        );
        let disk = asks("disk", "ephemeral-storage", "20Gi");
        let nodes = [plain, gpu];
        let out = nodes_of(&schedule(&[&a, &b, &c, &disk], &nodes, &[], &Claims::new()));
        assert_eq!(out[0], "gpu");
        assert_eq!(out[1], "gpu");
        assert!(
            out[2].contains("2 Insufficient example.com/gpu"),
            "{}",
            out[2]
        );
        assert!(
            out[3].contains("2 Insufficient ephemeral-storage"),
            "{}",
            out[3]
        );
        // a bound pod holds its units
        let mut held = asks("held", "example.com/gpu", "2");
        held.spec.node_name = Some("gpu".into());
        let out = nodes_of(&schedule(&[&a], &nodes, &[&held], &Claims::new()));
        assert!(
            out[0].contains("Insufficient example.com/gpu"),
            "{}",
            out[0]
        );
    }

    #[test]
    fn a_pod_follows_its_claim_to_the_node_that_holds_it() {
        let nodes = vec![node("a", "4", "8Gi", None), node("b", "4", "8Gi", None)];
        let with_claim = |n: &str, claim: &str| {
            let mut p = pod(n, "100m", None);
            p.spec.volumes.push(crate::api::core::Volume {
                name: "data".into(),
                persistent_volume_claim: Some(
                    crate::api::core::PersistentVolumeClaimVolumeSource {
                        claim_name: claim.into(),
                        read_only: None,
                    },
                ),
                ..Default::default()
            });
            p
        };
        let mut claims = Claims::new();
        claims.insert(("default".into(), "db".into()), Some("b".into()));
        claims.insert(("default".into(), "new".into()), None);
        let (p1, p2, p3, p4) = (
            with_claim("p1", "db"),
            with_claim("p2", "new"),
            with_claim("p3", "new"),
            with_claim("p4", "gone"),
        );
        let out = schedule(&[&p1, &p2, &p3, &p4], &nodes, &[], &claims);
        assert!(
            matches!(&out[0], Outcome::Bind { node, pin_claims, .. } if node == "b" && pin_claims.is_empty())
        );
        let Outcome::Bind {
            node: first,
            pin_claims,
            ..
        } = &out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!(pin_claims, &vec!["new".to_string()]);
        assert!(
            matches!(&out[2], Outcome::Bind { node, pin_claims, .. } if node == first && pin_claims.is_empty()),
            "the second pod of a claim follows the first"
        );
        assert!(
            matches!(&out[3], Outcome::Unschedulable { message, .. } if message.contains("\"gone\" not found"))
        );
        let mut b_down = nodes.clone();
        b_down[1].status.as_mut().unwrap().conditions[0].status = "False".into();
        let out = schedule(&[&p1], &b_down, &[], &claims);
        assert!(
            matches!(&out[0], Outcome::Unschedulable { message, .. } if message.contains("lives on node b")),
            "{out:?}"
        );
    }

    fn spread(
        key: &str,
        skew: i64,
        when: &str,
        app: &str,
    ) -> crate::api::core::TopologySpreadConstraint {
        crate::api::core::TopologySpreadConstraint {
            max_skew: skew,
            topology_key: key.into(),
            when_unsatisfiable: when.into(),
            label_selector: term(key, app).label_selector,
            ..Default::default()
        }
    }

    #[test]
    fn topology_spread_keeps_zones_within_max_skew() {
        // three nodes in z1, one in z2: without the constraint most pods would go to z1
        let nodes = hosts(&[("a", "z1"), ("b", "z1"), ("c", "z1"), ("d", "z2")]);
        let pods: Vec<Pod> = (0..6)
            .map(|i| {
                let mut p = labelled(&format!("web{i}"), "web");
                p.spec.topology_spread_constraints =
                    vec![spread(ZONE_LABEL, 1, "DoNotSchedule", "web")];
                p
            })
            .collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = nodes_of(&schedule(&refs, &nodes, &[], &Claims::new()));
        let z2 = out.iter().filter(|n| *n == "d").count();
        assert_eq!(z2, 3, "{out:?}");
        // with z2 full (taken out of the cluster by a taint it does not tolerate, counted
        // by the default nodeTaintsPolicy Ignore), the skew forbids a fourth pod in z1
        let mut placed: Vec<Pod> = pods[..3].to_vec();
        for (p, n) in placed.iter_mut().zip(["a", "b", "d"]) {
            p.spec.node_name = Some(n.into());
        }
        let mut tainted = nodes.clone();
        tainted[3].spec.taints = vec![taint("full", "", "NoSchedule")];
        let bound: Vec<&Pod> = placed.iter().collect();
        let out = nodes_of(&schedule(&[&pods[4]], &tainted, &bound, &Claims::new()));
        assert!(out[0].starts_with("none"), "{out:?}");
        let out = nodes_of(&schedule(
            &[&pods[5]],
            &tainted[..3],
            &bound,
            &Claims::new(),
        ));
        assert_eq!(
            out[0].len(),
            1,
            "without z2 in the cluster z1 is the only domain: {out:?}"
        );
        // a node without the key does not match
        let mut bare = node("e", "4", "8Gi", None);
        bare.metadata
            .labels
            .insert("kubernetes.io/hostname".into(), "e".into());
        let out = nodes_of(&schedule(&[&pods[0]], &[bare], &[], &Claims::new()));
        assert!(
            out[0].contains(
                "1 node(s) didn't match pod topology spread constraints (missing required label)"
            ),
            "{out:?}"
        );
    }

    #[test]
    fn schedule_anyway_prefers_the_emptier_domain() {
        let nodes = hosts(&[("a", "z1"), ("b", "z2")]);
        let mut first = labelled("w0", "web");
        first.spec.node_name = Some("b".into());
        let mut p = labelled("w1", "web");
        p.spec.topology_spread_constraints = vec![spread(ZONE_LABEL, 1, "ScheduleAnyway", "web")];
        // the least-loaded rule would not mind; the spread does
        let out = nodes_of(&schedule(&[&p], &nodes, &[&first], &Claims::new()));
        assert_eq!(out, vec!["a"]);
    }

    #[test]
    fn host_ports_conflict_and_priority_orders_the_queue() {
        let nodes = vec![node("a", "4", "8Gi", None)];
        let with_port = |n: &str, prio: i64| {
            let mut p = pod(n, "100m", None);
            p.spec.priority = Some(prio);
            p.spec.containers[0].ports = vec![crate::api::core::ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }];
            p
        };
        let (low, high) = (with_port("low", 0), with_port("high", 1000));
        let out = schedule(&[&low, &high], &nodes, &[], &Claims::new());
        assert!(
            matches!(&out[0], Outcome::Bind { name, .. } if name == "high"),
            "{out:?}"
        );
        assert!(
            matches!(&out[1], Outcome::Unschedulable { message, .. } if message.contains("1 node(s) didn't have free ports for the requested pod ports")),
            "{out:?}"
        );
    }

    #[test]
    fn sidecars_add_to_the_requests() {
        let mut p = pod("p", "100m", None);
        let mut sidecar = p.spec.containers[0].clone();
        sidecar.name = "proxy".into();
        sidecar.restart_policy = Some("Always".into());
        let mut init = sidecar.clone();
        init.name = "init".into();
        init.restart_policy = None;
        init.resources = Some(ResourceRequirements {
            requests: BTreeMap::from([("cpu".to_string(), Quantity("1".into()))]),
            ..Default::default()
        });
        p.spec.init_containers = vec![sidecar, init];
        // app 100m + sidecar 100m, against the init container's 1 + the sidecar's 100m
        assert_eq!(requests(&p).0, 1100);
        p.spec.init_containers.pop();
        assert_eq!(requests(&p).0, 200);
    }

    #[test]
    fn pods_already_bound_use_up_the_node() {
        let nodes = vec![node("a", "1", "1Gi", None), node("b", "1", "1Gi", None)];
        let mut running = pod("r", "900m", None);
        running.spec.node_name = Some("a".into());
        let out = nodes_of(&schedule(
            &[&pod("n", "500m", None)],
            &nodes,
            &[&running],
            &Claims::new(),
        ));
        assert_eq!(out, vec!["b"]);
    }
}
