//! The PersistentVolume controller (kube-controller-manager's `persistentvolume-binder`) and
//! what the scheduler must know of a pod's claims (its volume binding plugin).
//!
//! [`plan`] is a pure function from the claims, volumes, classes and nodes to the actions of
//! one pass, as upstream's controller decides them: a claim naming a volume binds to it; any
//! other binds to the smallest Available volume of its class, access modes, volume mode and
//! labels (its `selector`) that holds its request; a claim of a `WaitForFirstConsumer` class
//! waits until the scheduler chose a node (`volume.kubernetes.io/selected-node`), then binds to
//! a volume that node reaches, or has one provisioned there by `orkops.io/local` (a volume
//! `pvc-UID` whose Docker volume the node's agent makes). Both sides get their half of the
//! binding (`claimRef`, `volumeName`, phase Bound). A volume whose claim is gone is Released;
//! one orkops provisioned with reclaim policy Delete is then deleted, a Retain one stays.
//! [`placement`] tells the scheduler where a pod's claims let it go; [`pass`] runs a plan
//! through the executor in `apply`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::runtime::Ctx;
use super::scheduler::term_matches;
use super::ApiError;
use crate::api::core::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaim, Pod,
};
use crate::api::labels::Selector;
use crate::api::storage::{PersistentVolume, StorageClass, LOCAL_PROVISIONER, PROVISIONED_BY};
use crate::api::Kind;

mod apply;

/// On a claim: its binding is complete (`"yes"`).
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim or a volume: the controller, not a user, made the binding (`"yes"`).
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim of a `WaitForFirstConsumer` class: the node the scheduler chose for its first pod.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Which object an event is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Claim { namespace: String, name: String },
    Volume(String),
}

/// One step of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Bind claim `namespace/claim` and `volume` both ways (whatever half is missing).
    Bind {
        namespace: String,
        claim: String,
        volume: String,
        by_controller: bool,
    },
    /// Create `volume` (a PersistentVolume pre-bound to the claim) for `namespace/claim`.
    Provision {
        namespace: String,
        claim: String,
        volume: Value,
    },
    /// Give a claim that has no class the default one (retroactively, as upstream).
    SetClass {
        namespace: String,
        claim: String,
        class: String,
    },
    /// The claim's phase, when it is another.
    ClaimPhase {
        namespace: String,
        claim: String,
        phase: &'static str,
    },
    /// The volume's phase (and message), when it is another.
    VolumePhase {
        volume: String,
        phase: &'static str,
        message: Option<String>,
    },
    /// Drop the claimRef the controller set on a volume whose claim is bound elsewhere.
    Unbind(String),
    /// Delete a released volume orkops provisioned.
    Delete(String),
    Event {
        about: Subject,
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// What a pass sees.
pub struct World<'a> {
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    pub volumes: &'a [Arc<PersistentVolume>],
    pub classes: &'a [Arc<StorageClass>],
    pub nodes: &'a [Arc<Node>],
}

fn annotated(m: &crate::api::meta::ObjectMeta, key: &str) -> bool {
    m.annotations.get(key).is_some_and(|v| v == "yes")
}

fn node_labels(n: &Node) -> (&BTreeMap<String, String>, &str) {
    (&n.metadata.labels, n.metadata.name())
}

/// Whether `v` can be used from node `n` (its node affinity, when it has one).
pub fn volume_reaches(v: &PersistentVolume, n: &Node) -> bool {
    let (labels, name) = node_labels(n);
    v.spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .is_none_or(|sel| {
            sel.node_selector_terms
                .iter()
                .any(|t| term_matches(t, labels, name))
        })
}

/// Why `v` cannot back claim `c` (size, class, volume mode, access modes), or None.
pub fn mismatch(c: &PersistentVolumeClaim, v: &PersistentVolume) -> Option<String> {
    let class = c.spec.storage_class_name.as_deref().unwrap_or("");
    if v.spec.class() != class {
        return Some("storageClassName does not match".into());
    }
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    if mode(&c.spec.volume_mode) != mode(&v.spec.volume_mode) {
        return Some("incompatible volumeMode".into());
    }
    if v.spec.storage() < c.spec.storage() {
        return Some("requested PV is too small".into());
    }
    if c.spec
        .access_modes
        .iter()
        .any(|m| !v.spec.access_modes.contains(m))
    {
        return Some("incompatible accessMode".into());
    }
    None
}

/// Whether volume `v` is bound, or pre-bound, to claim `c`.
fn refers_to(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    v.spec.claim_ref.as_ref().is_some_and(|r| {
        r.name.as_deref() == Some(c.metadata.name())
            && r.namespace.as_deref() == Some(c.metadata.namespace())
            && r.uid
                .as_deref()
                .is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
    })
}

/// The volume claim `c` binds to: one pre-bound to it, else the smallest Available one that
/// fits (its labels picked by the claim's selector), not in `taken`; for a claim waiting for
/// its first pod, only volumes `node` reaches. Ties go to the first by name.
pub fn best_volume<'a>(
    c: &PersistentVolumeClaim,
    volumes: &'a [Arc<PersistentVolume>],
    taken: &HashSet<String>,
    node: Option<&Node>,
) -> Option<&'a PersistentVolume> {
    let selector = match &c.spec.selector {
        Some(ls) => match Selector::from_label_selector(ls) {
            Ok(s) => Some(s),
            Err(_) => return None,
        },
        None => None,
    };
    let fits = |v: &&PersistentVolume| {
        v.metadata.deletion_timestamp.is_none()
            && !taken.contains(v.metadata.name())
            && mismatch(c, v).is_none()
            && selector
                .as_ref()
                .is_none_or(|s| s.matches(&v.metadata.labels))
            && node.is_none_or(|n| volume_reaches(v, n))
    };
    let mut candidates: Vec<&PersistentVolume> =
        volumes.iter().map(|v| &**v).filter(fits).collect();
    if let Some(v) = candidates.iter().find(|v| refers_to(v, c)) {
        return Some(v);
    }
    candidates.retain(|v| v.spec.claim_ref.is_none());
    candidates.into_iter().min_by(|a, b| {
        (a.spec.storage(), a.metadata.name()).cmp(&(b.spec.storage(), b.metadata.name()))
    })
}

/// The volume orkops' provisioner makes for claim `c` on `node`: `pvc-UID`, of the claim's size
/// and access modes, reachable from that node only, pre-bound to the claim.
pub fn provisioned_volume(c: &PersistentVolumeClaim, class: &StorageClass, node: &str) -> Value {
    let uid = c.metadata.uid.as_deref().unwrap_or("");
    let storage = c
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.get("storage"))
        .map_or_else(|| "0".to_string(), |q| q.0.clone());
    json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("pvc-{uid}"),
            "annotations": {PROVISIONED_BY: LOCAL_PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": c.spec.access_modes,
            "persistentVolumeReclaimPolicy": class.reclaim_policy.as_deref().unwrap_or("Delete"),
            "storageClassName": class.metadata.name(),
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": c.metadata.namespace(), "name": c.metadata.name(), "uid": uid},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}},
            "csi": {"driver": LOCAL_PROVISIONER,
                "volumeHandle": crate::agent::inputs::claim_volume(uid)},
        }
    })
}

/// A class's allowed topologies as a node selector (None: no restriction).
pub fn topology_selector(class: &StorageClass) -> Option<NodeSelector> {
    if class.allowed_topologies.is_empty() {
        return None;
    }
    let terms = class
        .allowed_topologies
        .iter()
        .map(|t| NodeSelectorTerm {
            match_expressions: t
                .match_label_expressions
                .iter()
                .map(|r| NodeSelectorRequirement {
                    key: r.key.clone(),
                    operator: "In".into(),
                    values: r.values.clone(),
                })
                .collect(),
            match_fields: Vec::new(),
        })
        .collect();
    Some(NodeSelector {
        node_selector_terms: terms,
    })
}

fn claim_event(
    c: &PersistentVolumeClaim,
    type_: &'static str,
    reason: &'static str,
    message: String,
) -> Action {
    Action::Event {
        about: Subject::Claim {
            namespace: c.metadata.namespace().into(),
            name: c.metadata.name().into(),
        },
        type_,
        reason,
        message,
    }
}

fn pending(c: &PersistentVolumeClaim, out: &mut Vec<Action>) {
    claim_phase(c, "Pending", out);
}

fn claim_phase(c: &PersistentVolumeClaim, phase: &'static str, out: &mut Vec<Action>) {
    if c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(phase) {
        out.push(Action::ClaimPhase {
            namespace: c.metadata.namespace().into(),
            claim: c.metadata.name().into(),
            phase,
        });
    }
}

/// The actions of one pass over everything.
pub fn plan(w: &World) -> Vec<Action> {
    let mut out = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    let default = w.classes.iter().filter(|c| c.is_default()).max_by_key(|c| {
        (
            c.metadata.creation_timestamp,
            std::cmp::Reverse(c.metadata.name().to_string()),
        )
    });
    for c in w
        .claims
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
    {
        if annotated(&c.metadata, BIND_COMPLETED) {
            sync_bound_claim(c, w, &mut out);
        } else {
            sync_unbound_claim(c, w, default.map(|d| &**d), &mut taken, &mut out);
        }
    }
    for v in w
        .volumes
        .iter()
        .filter(|v| v.metadata.deletion_timestamp.is_none())
    {
        sync_volume(v, w, &mut out);
    }
    out
}

fn bind(c: &PersistentVolumeClaim, v: &PersistentVolume, by_controller: bool) -> Action {
    Action::Bind {
        namespace: c.metadata.namespace().into(),
        claim: c.metadata.name().into(),
        volume: v.metadata.name().into(),
        by_controller,
    }
}

fn phase_of(v: &PersistentVolume) -> &str {
    v.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn sync_bound_claim(c: &PersistentVolumeClaim, w: &World, out: &mut Vec<Action>) {
    let lost = |message: &str, reason: &'static str, out: &mut Vec<Action>| {
        if c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Lost") {
            out.push(claim_event(c, "Warning", reason, message.into()));
        }
        claim_phase(c, "Lost", out);
    };
    let Some(name) = c.spec.volume() else {
        return lost(
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
            "ClaimLost",
            out,
        );
    };
    let Some(v) = w.volumes.iter().find(|v| v.metadata.name() == name) else {
        return lost(
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
            "ClaimLost",
            out,
        );
    };
    let uid_matches = v
        .spec
        .claim_ref
        .as_ref()
        .and_then(|r| r.uid.as_deref())
        .is_none_or(|u| Some(u) == c.metadata.uid.as_deref());
    if !uid_matches {
        return lost(
            "Two claims are bound to the same volume, this one is bound incorrectly",
            "ClaimMisbound",
            out,
        );
    }
    let complete = refers_to(v, c)
        && v.spec
            .claim_ref
            .as_ref()
            .and_then(|r| r.uid.as_deref())
            .is_some()
        && phase_of(v) == "Bound"
        && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if !complete {
        out.push(bind(c, v, annotated(&c.metadata, BOUND_BY_CONTROLLER)));
    }
}

fn sync_unbound_claim(
    c: &PersistentVolumeClaim,
    w: &World,
    default: Option<&StorageClass>,
    taken: &mut HashSet<String>,
    out: &mut Vec<Action>,
) {
    if let Some(name) = c.spec.volume() {
        let Some(v) = w.volumes.iter().find(|v| v.metadata.name() == name) else {
            return pending(c, out);
        };
        if v.spec.claim_ref.is_none() {
            if let Some(why) = mismatch(c, v) {
                out.push(claim_event(
                    c,
                    "Warning",
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume {name:?}: {why}"),
                ));
                return pending(c, out);
            }
            taken.insert(name.to_string());
            return out.push(bind(c, v, false));
        }
        if refers_to(v, c) {
            taken.insert(name.to_string());
            return out.push(bind(c, v, false));
        }
        return pending(c, out);
    }
    let class = match c.spec.storage_class_name.as_deref() {
        None => {
            if let Some(d) = default {
                return out.push(Action::SetClass {
                    namespace: c.metadata.namespace().into(),
                    claim: c.metadata.name().into(),
                    class: d.metadata.name().into(),
                });
            }
            ""
        }
        Some(n) => n,
    };
    let sc = w
        .classes
        .iter()
        .find(|s| s.metadata.name() == class && !class.is_empty());
    let delayed = sc.is_some_and(|s| s.waits_for_first_consumer());
    let selected = c.metadata.annotations.get(SELECTED_NODE);
    if delayed && selected.is_none() {
        out.push(claim_event(
            c,
            "Normal",
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ));
        return pending(c, out);
    }
    let node = selected.and_then(|n| w.nodes.iter().find(|x| x.metadata.name() == n));
    if delayed && node.is_none() {
        let n = selected.map(String::as_str).unwrap_or("");
        out.push(claim_event(
            c,
            "Warning",
            "ProvisioningFailed",
            format!("the selected node {n:?} does not exist"),
        ));
        return pending(c, out);
    }
    if let Some(v) = best_volume(c, w.volumes, taken, node.map(|n| &**n)) {
        taken.insert(v.metadata.name().to_string());
        return out.push(bind(c, v, true));
    }
    let Some(sc) = sc else {
        let message = if class.is_empty() {
            (
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set"
                    .to_string(),
            )
        } else {
            (
                "Warning",
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io {class:?} not found"),
            )
        };
        out.push(claim_event(c, message.0, message.1, message.2));
        return pending(c, out);
    };
    match (sc.provisioner.as_str(), node) {
        (LOCAL_PROVISIONER, Some(n)) => {
            let name = format!("pvc-{}", c.metadata.uid.as_deref().unwrap_or(""));
            if w.volumes.iter().any(|v| v.metadata.name() == name) {
                // made in an earlier pass, and not fitting any more (resized claim): say so
                out.push(claim_event(c, "Warning", "ProvisioningFailed", format!("volume {name:?} was provisioned for this claim but no longer fits it")));
            } else if let Some(why) = topology_selector(sc)
                .filter(|sel| !sel.node_selector_terms.iter().any(|t| term_matches(t, &n.metadata.labels, n.metadata.name())))
                .map(|_| format!("node {:?} is outside the allowedTopologies of storage class {class:?}", n.metadata.name()))
            {
                out.push(claim_event(c, "Warning", "ProvisioningFailed", why));
            } else {
                out.push(Action::Provision {
                    namespace: c.metadata.namespace().into(),
                    claim: c.metadata.name().into(),
                    volume: provisioned_volume(c, sc, n.metadata.name()),
                });
            }
        }
        (p, _) => out.push(claim_event(c, "Normal", "ExternalProvisioning", format!("Waiting for a volume to be created either by the external provisioner '{p}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."))),
    }
    pending(c, out)
}

fn volume_phase(
    v: &PersistentVolume,
    phase: &'static str,
    message: Option<String>,
    out: &mut Vec<Action>,
) {
    let st = v.status.clone().unwrap_or_default();
    if st.phase.as_deref() != Some(phase) || st.message != message {
        out.push(Action::VolumePhase {
            volume: v.metadata.name().into(),
            phase,
            message,
        });
    }
}

fn sync_volume(v: &PersistentVolume, w: &World, out: &mut Vec<Action>) {
    let Some(r) = &v.spec.claim_ref else {
        return volume_phase(v, "Available", None, out);
    };
    let Some(uid) = r.uid.as_deref().filter(|u| !u.is_empty()) else {
        // pre-bound by a user: the claim's sync binds it
        return volume_phase(v, "Available", None, out);
    };
    let claim = w.claims.iter().find(|c| {
        Some(c.metadata.namespace()) == r.namespace.as_deref()
            && Some(c.metadata.name()) == r.name.as_deref()
            && c.metadata.uid.as_deref() == Some(uid)
    });
    let provisioned = v
        .metadata
        .annotations
        .get(PROVISIONED_BY)
        .is_some_and(|p| p == LOCAL_PROVISIONER);
    let delete = v.spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete");
    match claim {
        None => {
            if !matches!(phase_of(v), "Released" | "Failed") {
                volume_phase(v, "Released", None, out);
            }
            if !delete {
                return;
            }
            if provisioned {
                out.push(Action::Delete(v.metadata.name().into()));
            } else if phase_of(v) != "Failed" {
                let message = format!("orkops deletes only the volumes its {LOCAL_PROVISIONER} provisioner made: remove the data of volume {:?} and the PersistentVolume yourself, or set its reclaim policy to Retain", v.metadata.name());
                out.push(Action::Event {
                    about: Subject::Volume(v.metadata.name().into()),
                    type_: "Warning",
                    reason: "VolumeFailedDelete",
                    message: message.clone(),
                });
                volume_phase(v, "Failed", Some(message), out);
            }
        }
        Some(c) => match c.spec.volume() {
            // the claim's sync finishes the binding
            None => {}
            Some(n) if n == v.metadata.name() && annotated(&c.metadata, BIND_COMPLETED) => {
                volume_phase(v, "Bound", None, out)
            }
            // asked for by name, not bound yet: the claim's sync binds it
            Some(n) if n == v.metadata.name() => {}
            Some(_) if provisioned && delete => {
                volume_phase(v, "Released", None, out);
                out.push(Action::Delete(v.metadata.name().into()));
            }
            Some(_) if annotated(&v.metadata, BOUND_BY_CONTROLLER) => {
                out.push(Action::Unbind(v.metadata.name().into()))
            }
            Some(_) => {}
        },
    }
}

/// Where a pending pod's claims let it go.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Anywhere its other constraints allow (its unbound claims are pinned by the scheduler).
    AsIs,
    /// As this copy of the pod: its bound claims taken out and the node affinity of their
    /// volumes (and of its classes' allowed topologies) added to its own.
    Constrained(Box<Pod>),
    /// Nowhere yet, and why.
    Unschedulable(String),
}

/// The node affinity `extra` added (ANDed) to the pod's own required node affinity.
pub fn require(p: &mut Pod, extra: &NodeSelector) {
    let affinity = p.spec.affinity.get_or_insert_with(Default::default);
    let na = affinity.node_affinity.get_or_insert_with(Default::default);
    let merged = match na
        .required_during_scheduling_ignored_during_execution
        .take()
    {
        None => extra.clone(),
        Some(own) => NodeSelector {
            node_selector_terms: own
                .node_selector_terms
                .iter()
                .flat_map(|a| {
                    extra
                        .node_selector_terms
                        .iter()
                        .map(move |b| NodeSelectorTerm {
                            match_expressions: [
                                a.match_expressions.clone(),
                                b.match_expressions.clone(),
                            ]
                            .concat(),
                            match_fields: [a.match_fields.clone(), b.match_fields.clone()].concat(),
                        })
                })
                .collect(),
        },
    };
    na.required_during_scheduling_ignored_during_execution = Some(merged);
}

/// What the scheduler must do of pod `p`'s claims: bound ones follow their volume's node
/// affinity; unbound ones of a `WaitForFirstConsumer` class are placed with the pod (within
/// the class's allowed topologies, and where a volume fits when the class provisions none);
/// unbound ones of any other class keep the pod waiting, as upstream's
/// "pod has unbound immediate PersistentVolumeClaims".
pub fn placement(p: &Pod, w: &World) -> Placement {
    let ns = p.metadata.namespace();
    let default = w.classes.iter().find(|c| c.is_default());
    let mut copy: Option<Pod> = None;
    let mut bound_claims = Vec::new();
    let mut unbound_immediate = false;
    for v in &p.spec.volumes {
        let Some(src) = &v.persistent_volume_claim else {
            continue;
        };
        let Some(c) = w
            .claims
            .iter()
            .find(|c| c.metadata.namespace() == ns && c.metadata.name() == src.claim_name)
        else {
            continue; // the scheduler says it is missing
        };
        if annotated(&c.metadata, BIND_COMPLETED) {
            let Some(pv) = c
                .spec
                .volume()
                .and_then(|n| w.volumes.iter().find(|v| v.metadata.name() == n))
            else {
                return Placement::Unschedulable(format!(
                    "persistentvolumeclaim {:?} is bound to a volume that is gone",
                    src.claim_name
                ));
            };
            bound_claims.push(src.claim_name.clone());
            if let Some(sel) = pv
                .spec
                .node_affinity
                .as_ref()
                .and_then(|a| a.required.as_ref())
            {
                require(copy.get_or_insert_with(|| p.clone()), sel);
            }
            continue;
        }
        if c.metadata.annotations.contains_key(SELECTED_NODE) {
            continue; // placed with an earlier pod: the scheduler follows it there
        }
        let class = match c.spec.storage_class_name.as_deref() {
            Some(n) => w.classes.iter().find(|s| s.metadata.name() == n),
            None => default,
        };
        match class {
            Some(sc) if sc.waits_for_first_consumer() => {
                if sc.provisioner == LOCAL_PROVISIONER {
                    if let Some(sel) = topology_selector(sc) {
                        require(copy.get_or_insert_with(|| p.clone()), &sel);
                    }
                    continue;
                }
                // no provisioner: only where an Available volume of the claim's fits
                let taken = HashSet::new();
                let fitting: Vec<&PersistentVolume> = w
                    .volumes
                    .iter()
                    .filter(|v| v.spec.claim_ref.is_none() || refers_to(v, c))
                    .filter(|v| best_volume(c, std::slice::from_ref(v), &taken, None).is_some())
                    .map(|v| &**v)
                    .collect();
                if fitting.is_empty() {
                    return Placement::Unschedulable(format!(
                        "0/{} nodes are available: {} node(s) didn't find available persistent volumes to bind.",
                        w.nodes.len(),
                        w.nodes.len()
                    ));
                }
                let anywhere = fitting.iter().any(|v| {
                    v.spec
                        .node_affinity
                        .as_ref()
                        .and_then(|a| a.required.as_ref())
                        .is_none()
                });
                if !anywhere {
                    let sel = NodeSelector {
                        node_selector_terms: fitting
                            .iter()
                            .filter_map(|v| {
                                v.spec
                                    .node_affinity
                                    .as_ref()
                                    .and_then(|a| a.required.as_ref())
                            })
                            .flat_map(|s| s.node_selector_terms.clone())
                            .collect(),
                    };
                    require(copy.get_or_insert_with(|| p.clone()), &sel);
                }
            }
            _ => unbound_immediate = true,
        }
    }
    if unbound_immediate {
        return Placement::Unschedulable(format!(
            "0/{} nodes are available: pod has unbound immediate PersistentVolumeClaims.",
            w.nodes.len()
        ));
    }
    if !bound_claims.is_empty() {
        let c = copy.get_or_insert_with(|| p.clone());
        c.spec.volumes.retain(|v| {
            v.persistent_volume_claim
                .as_ref()
                .is_none_or(|s| !bound_claims.contains(&s.claim_name))
        });
    }
    match copy {
        Some(c) => Placement::Constrained(Box::new(c)),
        None => Placement::AsIs,
    }
}

/// The events already recorded, by object and reason: a pass that decides the same thing again
/// records nothing new (upstream's recorder aggregates them instead). Kept for a term.
#[derive(Clone, Default)]
pub struct Reported(Arc<Mutex<HashMap<String, String>>>);

impl Reported {
    /// Whether `message` is news for `key` (and remembers it).
    fn news(&self, key: String, message: &str) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(key, message.to_string()).as_deref() != Some(message)
    }

    /// Forgets the objects that are gone (keys start with a uid).
    fn keep(&self, live: &HashSet<String>) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|k, _| k.split('/').next().is_some_and(|u| live.contains(u)));
    }
}

/// One pass of the binder over the caches.
pub(super) async fn pass(ctx: &Ctx, reported: &Reported) -> Result<(), ApiError> {
    let api = &ctx.api;
    let claims: Vec<Arc<PersistentVolumeClaim>> = api.shared(Kind::PersistentVolumeClaim).await?;
    let volumes: Vec<Arc<PersistentVolume>> = api.shared(Kind::PersistentVolume).await?;
    let classes: Vec<Arc<StorageClass>> = api.shared(Kind::StorageClass).await?;
    let nodes: Vec<Arc<Node>> = api.shared(Kind::Node).await?;
    let w = World {
        claims: &claims,
        volumes: &volumes,
        classes: &classes,
        nodes: &nodes,
    };
    let live: HashSet<String> = claims
        .iter()
        .filter_map(|c| c.metadata.uid.clone())
        .chain(volumes.iter().filter_map(|v| v.metadata.uid.clone()))
        .collect();
    reported.keep(&live);
    let mut first_error = None;
    for a in plan(&w) {
        if let Err(e) = apply::apply(api, &w, reported, a).await {
            tracing::debug!(error = %e, "a volume binding step failed; the next pass retries");
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None | Some(ApiError::Conflict(_) | ApiError::NotFound { .. }) => Ok(()),
        Some(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(name: &str, extra: Value) -> Arc<PersistentVolumeClaim> {
        let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "manual", "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}});
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn volume(name: &str, size: &str, extra: Value) -> Arc<PersistentVolume> {
        let mut v = json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                "storageClassName": "manual", "volumeMode": "Filesystem",
                "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/srv"}},
            "status": {"phase": "Available"}});
        merge(&mut v, extra);
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn class(name: &str, provisioner: &str, mode: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name}, "provisioner": provisioner,
                "reclaimPolicy": "Delete", "volumeBindingMode": mode}),
            )
            .unwrap(),
        )
    }

    fn node(name: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"zone": "a"}}}))
                .unwrap(),
        )
    }

    fn merge(v: &mut Value, extra: Value) {
        crate::apiserver::engine::merge_patch(v, &extra);
    }

    fn run(
        claims: &[Arc<PersistentVolumeClaim>],
        volumes: &[Arc<PersistentVolume>],
        classes: &[Arc<StorageClass>],
    ) -> Vec<Action> {
        let nodes = [node("n1"), node("n2")];
        plan(&World {
            claims,
            volumes,
            classes,
            nodes: &nodes,
        })
    }

    fn binds(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Bind { claim, volume, .. } => Some((claim.clone(), volume.clone())),
                _ => None,
            })
            .collect()
    }

    fn reasons(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_claim_binds_the_smallest_volume_that_fits_and_one_volume_backs_one_claim() {
        let vols = [
            volume("big", "10Gi", json!({})),
            volume("small", "2Gi", json!({})),
            volume("tiny", "500Mi", json!({})),
            volume(
                "other-class",
                "1Gi",
                json!({"spec": {"storageClassName": "fast"}}),
            ),
            volume(
                "rwx-only",
                "1Gi",
                json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
            ),
        ];
        let out = run(&[claim("a", json!({})), claim("b", json!({}))], &vols, &[]);
        assert_eq!(
            binds(&out),
            [("a".into(), "small".into()), ("b".into(), "big".into())]
        );
        // a third finds nothing left, and there is no class "manual" to provision it
        let out = run(
            &[
                claim("a", json!({})),
                claim("b", json!({})),
                claim("c", json!({})),
            ],
            &vols,
            &[],
        );
        assert_eq!(binds(&out).len(), 2);
        assert!(
            out.contains(&Action::Event {
                about: Subject::Claim {
                    namespace: "default".into(),
                    name: "c".into()
                },
                type_: "Warning",
                reason: "ProvisioningFailed",
                message: "storageclass.storage.k8s.io \"manual\" not found".into(),
            }),
            "{out:?}"
        );
    }

    #[test]
    fn a_selector_picks_among_the_volumes_by_their_labels() {
        let vols = [
            volume(
                "fast",
                "5Gi",
                json!({"metadata": {"labels": {"disk": "ssd"}}}),
            ),
            volume(
                "slow",
                "1Gi",
                json!({"metadata": {"labels": {"disk": "hdd"}}}),
            ),
        ];
        let c = claim(
            "a",
            json!({"spec": {"selector": {"matchLabels": {"disk": "ssd"}}}}),
        );
        assert_eq!(binds(&run(&[c], &vols, &[])), [("a".into(), "fast".into())]);
        let c = claim(
            "a",
            json!({"spec": {"selector": {"matchExpressions": [
            {"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}}}),
        );
        assert_eq!(binds(&run(&[c], &vols, &[])), [("a".into(), "slow".into())]);
    }

    #[test]
    fn a_named_volume_is_bound_or_the_mismatch_is_told() {
        let vols = [
            volume("pv1", "1Gi", json!({})),
            volume("pv0", "100Mi", json!({})),
        ];
        let out = run(
            &[claim("a", json!({"spec": {"volumeName": "pv1"}}))],
            &vols,
            &[],
        );
        assert_eq!(
            out,
            [Action::Bind {
                namespace: "default".into(),
                claim: "a".into(),
                volume: "pv1".into(),
                by_controller: false
            }]
        );
        let out = run(
            &[claim("a", json!({"spec": {"volumeName": "pv0"}}))],
            &vols,
            &[],
        );
        assert_eq!(reasons(&out), ["VolumeMismatch"]);
        assert!(binds(&out).is_empty());
        // pre-bound by the volume's claimRef: that claim only
        let pre = volume(
            "pv2",
            "1Gi",
            json!({"spec": {"claimRef": {"namespace": "default", "name": "b"}}}),
        );
        let out = run(&[claim("a", json!({})), claim("b", json!({}))], &[pre], &[]);
        assert_eq!(binds(&out), [("b".into(), "pv2".into())]);
    }

    #[test]
    fn a_delayed_claim_waits_for_its_node_then_binds_there_or_is_provisioned() {
        let local = class("manual", LOCAL_PROVISIONER, "WaitForFirstConsumer");
        let out = run(&[claim("a", json!({}))], &[], std::slice::from_ref(&local));
        assert_eq!(reasons(&out), ["WaitForFirstConsumer"]);
        let placed = claim(
            "a",
            json!({"metadata": {"annotations": {SELECTED_NODE: "n2"}}}),
        );
        let on_n1 = volume(
            "on-n1",
            "1Gi",
            json!({"spec": {"local": {"path": "/mnt"}, "hostPath": null,
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
        );
        let out = run(
            std::slice::from_ref(&placed),
            &[on_n1],
            std::slice::from_ref(&local),
        );
        let Some(Action::Provision { volume, .. }) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(volume["metadata"]["name"], "pvc-uid-a");
        assert_eq!(volume["spec"]["claimRef"]["uid"], "uid-a");
        assert_eq!(volume["spec"]["csi"]["volumeHandle"], "orkops-pvc-uid-a");
        assert_eq!(
            volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchFields"][0]
                ["values"][0],
            "n2"
        );
        // the volume made, pre-bound: the next pass binds it
        let made: Arc<PersistentVolume> = Arc::new(serde_json::from_value(volume.clone()).unwrap());
        let out = run(&[placed], &[made], &[local]);
        assert_eq!(binds(&out), [("a".into(), "pvc-uid-a".into())]);
    }

    #[test]
    fn a_claim_without_a_class_takes_the_default_and_no_class_binds_only_classless_volumes() {
        let mut d = (*class("local", LOCAL_PROVISIONER, "WaitForFirstConsumer")).clone();
        d.metadata.annotations.insert(
            crate::api::storage::DEFAULT_CLASS_ANNOTATION.into(),
            "true".into(),
        );
        let unset = claim("a", json!({"spec": {"storageClassName": null}}));
        let out = run(&[unset], &[], &[Arc::new(d)]);
        assert_eq!(
            out,
            [Action::SetClass {
                namespace: "default".into(),
                claim: "a".into(),
                class: "local".into()
            }]
        );
        let none = claim("a", json!({"spec": {"storageClassName": ""}}));
        let out = run(
            std::slice::from_ref(&none),
            &[volume("pv1", "1Gi", json!({}))],
            &[],
        );
        assert_eq!(reasons(&out), ["FailedBinding"]);
        let classless = volume("pv2", "1Gi", json!({"spec": {"storageClassName": null}}));
        assert_eq!(
            binds(&run(&[none], &[classless], &[])),
            [("a".into(), "pv2".into())]
        );
    }

    #[test]
    fn a_volume_whose_claim_is_gone_is_released_and_deleted_only_when_orkops_made_it() {
        let bound = json!({"spec": {"claimRef": {"namespace": "default", "name": "gone", "uid": "u1"}},
            "status": {"phase": "Bound"}});
        let retain = volume("keep", "1Gi", bound.clone());
        let out = run(&[], &[retain], &[]);
        assert_eq!(
            out,
            [Action::VolumePhase {
                volume: "keep".into(),
                phase: "Released",
                message: None
            }]
        );
        let mut made = bound.clone();
        merge(
            &mut made,
            json!({"metadata": {"annotations": {PROVISIONED_BY: LOCAL_PROVISIONER}},
            "spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        let out = run(&[], &[volume("made", "1Gi", made)], &[]);
        assert!(out.contains(&Action::Delete("made".into())), "{out:?}");
        let mut manual_delete = bound;
        merge(
            &mut manual_delete,
            json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
        );
        let out = run(&[], &[volume("manual", "1Gi", manual_delete)], &[]);
        assert_eq!(reasons(&out), ["VolumeFailedDelete"]);
        assert!(!out.iter().any(|a| matches!(a, Action::Delete(_))));
        // a claim of the same name made again is another claim
        let again = claim(
            "gone",
            json!({"metadata": {"uid": "u2"}, "spec": {"storageClassName": "x"}}),
        );
        let out = run(
            &[again],
            &[volume(
                "keep",
                "1Gi",
                json!({"spec": {"claimRef": {"namespace": "default", "name": "gone", "uid": "u1"}}, "status": {"phase": "Released"}}),
            )],
            &[],
        );
        assert!(binds(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn a_bound_claim_that_lost_its_volume_is_lost() {
        let c = claim(
            "a",
            json!({"metadata": {"annotations": {BIND_COMPLETED: "yes"}},
            "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}),
        );
        let out = run(&[c], &[], &[]);
        assert_eq!(reasons(&out), ["ClaimLost"]);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::ClaimPhase { phase: "Lost", .. })));
    }

    #[test]
    fn the_scheduler_follows_bound_volumes_and_holds_pods_of_unbound_immediate_claims() {
        let pod = |claim: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "i"}],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}}))
            .unwrap()
        };
        let pinned = volume(
            "pv1",
            "1Gi",
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}),
        );
        let bound = claim(
            "b",
            json!({"metadata": {"annotations": {BIND_COMPLETED: "yes"}}, "spec": {"volumeName": "pv1"}}),
        );
        let unbound = claim("u", json!({}));
        let wffc = claim("w", json!({"spec": {"storageClassName": "local"}}));
        let claims = [bound, unbound, wffc];
        let classes = [class("local", LOCAL_PROVISIONER, "WaitForFirstConsumer")];
        let nodes = [node("n1"), node("n2")];
        let w = World {
            claims: &claims,
            volumes: &[pinned],
            classes: &classes,
            nodes: &nodes,
        };
        let Placement::Constrained(p) = placement(&pod("b"), &w) else {
            panic!()
        };
        assert!(
            p.spec.volumes.is_empty(),
            "a bound claim is not pinned again"
        );
        let terms = &p
            .spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(
            (
                terms[0].match_expressions.len(),
                terms[0].match_fields.len()
            ),
            (1, 1)
        );
        assert_eq!(
            placement(&pod("u"), &w),
            Placement::Unschedulable(
                "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.".into()
            )
        );
        assert_eq!(placement(&pod("w"), &w), Placement::AsIs);
    }
}
