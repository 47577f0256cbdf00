//! The StatefulSet controller, as Kubernetes' own: a pure reconciler from a stateful set, the
//! pods, ControllerRevisions and claims it owns to the writes that bring them in line and the
//! set's status, and the executor that applies them from the shared caches.
//!
//! Pods are named `NAME-ORDINAL` (ordinals from `spec.ordinals.start`), with that hostname, the
//! set's `serviceName` as subdomain and the labels `statefulset.kubernetes.io/pod-name`,
//! `apps.kubernetes.io/pod-index` and `controller-revision-hash`. Each claim template gives
//! every pod a claim `TEMPLATE-NAME-ORDINAL`, made before the pod and mounted in place of the
//! template's volume of that name; claims are kept, or handed to the set or the pod for the
//! garbage collector, per `persistentVolumeClaimRetentionPolicy`. `OrderedReady` creates pods in
//! ordinal order, each once all before it are Running and Ready (and available), and removes
//! surplus pods from the highest ordinal, one at a time; `Parallel` does it all at once.
//! Templates are recorded as ControllerRevisions (`NAME-HASH`, the data a strategic merge patch
//! that puts the template back, numbered in rollout order); `RollingUpdate` replaces pods from
//! the highest ordinal down to `partition`, `maxUnavailable` at a time, each once the pods are
//! ready again; `OnDelete` gives the new template only to pods made anew. A failed or deleted
//! pod comes back with the same name and claims. Work per pass is bounded by the pods that
//! exist and [`BURST`](super::BURST), whatever `replicas` says.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::runtime::{split_key, Action as Next, Ctx};
use super::{ApiError, BURST};
use crate::api::core::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use crate::api::labels::Selector;
use crate::api::meta::{IntOrString, OwnerReference};
use crate::api::statefulset::{
    ordinal_of, template_with_claims, StatefulSet, StatefulSetStatus, POD_INDEX_LABEL,
    POD_NAME_LABEL, REVISION_HASH_LABEL, REVISION_LABEL,
};
use crate::api::workloads::ControllerRevision;
use crate::api::{About, Kind};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the ControllerRevision of the set's template (the body).
    CreateRevision(Value),
    /// Give an existing revision a new number: its template came back (`rollout undo`).
    Renumber { name: String, revision: i64 },
    /// Drop a revision beyond `revisionHistoryLimit`.
    DeleteRevision(String),
    /// Create the missing claims (bodies) of a pod that exists, pending.
    CreateClaims { pod: String, claims: Vec<Value> },
    /// Create the missing claims (bodies), then the pod.
    CreatePod { pod: Value, claims: Vec<Value> },
    /// Delete a pod: failed, surplus, or of an old revision.
    DeletePod(String),
    /// Set the owner references of a claim, as the retention policy wants them.
    SetClaimOwners {
        claim: String,
        owners: Vec<OwnerReference>,
    },
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: StatefulSetStatus,
}

/// What the set owns, as the caches hold it.
pub struct Observed<'a> {
    pub pods: &'a [&'a Pod],
    pub revisions: &'a [&'a ControllerRevision],
    /// The claims of the set's namespace (those of other sets are ignored).
    pub claims: &'a [&'a PersistentVolumeClaim],
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn running_and_ready(p: &Pod) -> bool {
    phase(p) == "Running"
        && p.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Running and Ready for `min_ready` seconds (a Ready condition without a time counts as ready
/// since forever).
fn available(p: &Pod, min_ready: i64, now: DateTime<Utc>) -> bool {
    running_and_ready(p)
        && (min_ready <= 0
            || p.status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .and_then(|c| c.last_transition_time)
                .is_none_or(|t| now - t >= chrono::Duration::seconds(min_ready)))
}

fn healthy(p: &Pod) -> bool {
    running_and_ready(p) && !terminating(p)
}

fn revision_of(p: &Pod) -> &str {
    p.metadata
        .labels
        .get(REVISION_LABEL)
        .map_or("", String::as_str)
}

/// Kubernetes' `SafeEncodeString`: the digits of a hash as letters and digits that spell no
/// word.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The hash in a revision's name, as Kubernetes' `HashControllerRevision`: FNV-1 (32 bits) of
/// the data and the collision count.
pub fn revision_hash(data: &Value, collisions: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let text = serde_json::to_string(data).unwrap_or_default();
    for b in text.bytes().chain(collisions.to_string().into_bytes()) {
        h = h.wrapping_mul(0x0100_0193);
        h ^= u32::from(b);
    }
    safe_encode(&h.to_string())
}

/// A revision's data: the strategic merge patch that puts `template` back on the set.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or(json!({}));
    t["$patch"] = json!("replace");
    json!({"spec": {"template": t}})
}

/// The template a revision's data puts back.
fn template_of(r: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = r.data.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// The current and update revisions: (name, template), and the revision writes.
struct Revisions {
    current: (String, PodTemplateSpec),
    update: (String, PodTemplateSpec),
    actions: Vec<Action>,
    collisions: i64,
}

fn revisions(set: &StatefulSet, owned: &[&ControllerRevision], pods: &[&Pod]) -> Revisions {
    let mut owned: Vec<&ControllerRevision> = owned.to_vec();
    owned.sort_by(|a, b| {
        (a.revision, a.metadata.creation_timestamp)
            .cmp(&(b.revision, b.metadata.creation_timestamp))
    });
    let status = set.status.clone().unwrap_or_default();
    let collisions = status.collision_count.unwrap_or(0);
    let data = revision_data(&set.spec.template);
    let next = owned.last().map_or(1, |r| r.revision.saturating_add(1));
    let mut actions = Vec::new();
    let update_name = match owned.iter().rev().find(|r| r.data == data) {
        Some(r) => {
            if Some(r.revision) != owned.last().map(|l| l.revision) {
                actions.push(Action::Renumber {
                    name: r.metadata.name().to_string(),
                    revision: next,
                });
            }
            r.metadata.name().to_string()
        }
        None => {
            let hash = revision_hash(&data, collisions);
            let prefix: String = set.metadata.name().chars().take(223).collect();
            let name = format!("{prefix}-{hash}");
            let mut labels = set.spec.template.metadata.labels.clone();
            labels.insert(REVISION_HASH_LABEL.into(), hash);
            actions.push(Action::CreateRevision(json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "namespace": set.metadata.namespace(),
                    "labels": labels, "annotations": set.metadata.annotations,
                    "ownerReferences": [super::controller_ref("apps/v1", "StatefulSet", &set.metadata)]},
                "data": data, "revision": next,
            })));
            name
        }
    };
    let update = (update_name.clone(), set.spec.template.clone());
    let current = status
        .current_revision
        .as_deref()
        .and_then(|n| owned.iter().find(|r| r.metadata.name() == n))
        .and_then(|r| Some((r.metadata.name().to_string(), template_of(r)?)))
        .unwrap_or_else(|| update.clone());
    // history: the revisions no pod and neither status uses, oldest first, beyond the limit
    let limit = set.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let live =
        |n: &str| n == update.0 || n == current.0 || pods.iter().any(|p| revision_of(p) == n);
    let old: Vec<&&ControllerRevision> =
        owned.iter().filter(|r| !live(r.metadata.name())).collect();
    for r in old.iter().take(old.len().saturating_sub(limit)) {
        actions.push(Action::DeleteRevision(r.metadata.name().to_string()));
    }
    Revisions {
        current,
        update,
        actions,
        collisions,
    }
}

/// The owner references `claim` should have for the pod `pod_name` (uid `pod_uid` once it
/// exists), per the set's retention policy; None when the claim is not the set's to touch (it
/// has another controller, or references an older set or pod of the same name).
fn claim_owners(
    set: &StatefulSet,
    claim: Option<&PersistentVolumeClaim>,
    pod_name: &str,
    pod_uid: Option<&str>,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let set_uid = set.metadata.uid.as_deref().unwrap_or("");
    let refs = claim
        .map(|c| c.metadata.owner_references.clone())
        .unwrap_or_default();
    let ours = |r: &OwnerReference| {
        (r.kind == "StatefulSet" && r.api_version == "apps/v1" && r.name == set.metadata.name())
            || (r.kind == "Pod" && r.api_version == "v1" && r.name == pod_name)
    };
    let (when_deleted, when_scaled) = set.retention();
    if when_deleted || when_scaled {
        let stale = refs
            .iter()
            .any(|r| ours(r) && r.uid != set_uid && pod_uid.is_none_or(|u| r.uid != u));
        let other = refs.iter().any(|r| !ours(r) && r.controller == Some(true));
        if stale || other {
            return None;
        }
    }
    let mut out: Vec<OwnerReference> = refs.into_iter().filter(|r| !ours(r)).collect();
    let pod_ref = || {
        pod_uid.map(|uid| OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod_name.to_string(),
            uid: uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        })
    };
    let set_ref = || super::controller_ref("apps/v1", "StatefulSet", &set.metadata);
    match (when_deleted, when_scaled, scaled_down) {
        (false, false, _) => {}
        (true, false, _) | (true, true, false) => out.push(set_ref()),
        (_, true, true) => out.extend(pod_ref()),
        (false, true, false) => {}
    }
    Some(out)
}

/// The claims of the pod of `ordinal` that do not exist yet, and whether one that exists
/// keeps the pod from being made: it is being deleted, or still belongs to an earlier pod of
/// that name (the garbage collector is about to remove it).
fn missing_claims(
    set: &StatefulSet,
    ordinal: i64,
    claims: &HashMap<&str, &PersistentVolumeClaim>,
    pod: Option<&Pod>,
) -> (Vec<Value>, bool) {
    let pod_name = set.pod_name(ordinal);
    let mut missing = Vec::new();
    let mut blocked = false;
    for t in &set.spec.volume_claim_templates {
        let name = set.claim_name(t.metadata.name(), ordinal);
        match claims.get(name.as_str()) {
            Some(c) => {
                let old_pod = c.metadata.owner_references.iter().any(|r| {
                    r.kind == "Pod"
                        && r.name == pod_name
                        && pod.is_none_or(|p| p.metadata.uid.as_deref() != Some(r.uid.as_str()))
                });
                blocked |= c.metadata.deletion_timestamp.is_some() || old_pod;
            }
            None => {
                let mut c = t.clone();
                c.metadata.name = Some(name);
                c.metadata.namespace = Some(set.metadata.namespace().to_string());
                for (k, v) in &set.spec.selector.match_labels {
                    c.metadata.labels.insert(k.clone(), v.clone());
                }
                c.metadata.owner_references =
                    claim_owners(set, None, &pod_name, None, false).unwrap_or_default();
                c.status = None;
                c.api_version = Some("v1".into());
                c.kind = Some("PersistentVolumeClaim".into());
                missing.push(serde_json::to_value(&c).unwrap_or_default());
            }
        }
    }
    (missing, blocked)
}

/// A new pod of the set: `template` (with the pod's claims), its identity and revision.
fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i64) -> Value {
    let t = serde_json::to_value(template_with_claims(set, template, ordinal)).unwrap_or_default();
    let name = set.pod_name(ordinal);
    let index = ordinal.to_string();
    let mut pod = super::pod_from_template(
        &t,
        String::new(),
        set.metadata.namespace(),
        &[
            (POD_NAME_LABEL, &name),
            (POD_INDEX_LABEL, &index),
            (REVISION_LABEL, revision),
        ],
        super::controller_ref("apps/v1", "StatefulSet", &set.metadata),
    );
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("generateName");
        m.insert("name".into(), json!(name));
    }
    pod["spec"]["hostname"] = json!(name);
    if !set.spec.service_name.is_empty() {
        pod["spec"]["subdomain"] = json!(set.spec.service_name);
    }
    pod
}

fn partition(set: &StatefulSet) -> i64 {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0)
}

/// `maxUnavailable` in pods, at least 1 (a percentage of `replicas` rounded up).
fn max_unavailable(set: &StatefulSet) -> i64 {
    let v = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    v.scaled(set.replicas(), true).unwrap_or(1).max(1)
}

/// The pods' part of a pass, in upstream's order: replicas in ordinal order (made, failed ones
/// removed; in `OrderedReady` stopping at the first that is not there yet or not ready), then
/// the surplus from the highest ordinal, then the rolling update.
fn pod_actions(
    set: &StatefulSet,
    members: &[&Pod],
    revs: &Revisions,
    claims: &HashMap<&str, &PersistentVolumeClaim>,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let (start, replicas) = (set.start_ordinal(), set.replicas());
    let end = start.saturating_add(replicas);
    let monotonic = !set.parallel();
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let ord = |p: &Pod| ordinal_of(set.metadata.name(), p.metadata.name()).unwrap_or(-1);
    let in_range: BTreeMap<i64, &Pod> = members
        .iter()
        .filter(|p| (start..end).contains(&ord(p)))
        .map(|p| (ord(p), *p))
        .collect();
    let mut condemned: Vec<&Pod> = members
        .iter()
        .filter(|p| !(start..end).contains(&ord(p)))
        .copied()
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ord(p)));
    let mut actions = Vec::new();
    let mut created = 0usize;
    let update_from = start.saturating_add(partition(set));
    let create = |o: i64, actions: &mut Vec<Action>| -> bool {
        let (claims, blocked) = missing_claims(set, o, claims, None);
        if blocked {
            return false;
        }
        let use_current = set.strategy() == "RollingUpdate" && o < update_from;
        let (rev, template) = if use_current {
            &revs.current
        } else {
            &revs.update
        };
        let pod = new_pod(set, template, rev, o);
        actions.push(Action::CreatePod { pod, claims });
        true
    };
    // the replicas, walking the ordinals that exist and the gaps between them (a gap is
    // a pod to make; past BURST of them the rest wait for the next pass)
    let existing: Vec<(i64, &Pod)> = in_range.iter().map(|(o, p)| (*o, *p)).collect();
    let (mut next, mut i, mut blocked) = (start, 0, false);
    while next < end && !blocked {
        let here = existing.get(i).map(|(o, _)| *o);
        if here != Some(next) {
            if created >= BURST {
                match here {
                    Some(o) => next = o,
                    None => break,
                }
                continue;
            }
            created += usize::from(create(next, &mut actions));
            next += 1;
            blocked = monotonic;
            continue;
        }
        let p = existing[i].1;
        (i, next) = (i + 1, next + 1);
        if matches!(phase(p), "Failed" | "Succeeded") {
            // made again, with the same name, once it is gone
            if !terminating(p) {
                actions.push(Action::DeletePod(p.metadata.name().to_string()));
            }
            blocked = monotonic;
            continue;
        }
        if phase(p) == "Pending" {
            let (missing, _) = missing_claims(set, next - 1, claims, Some(p));
            if !missing.is_empty() {
                actions.push(Action::CreateClaims {
                    pod: p.metadata.name().to_string(),
                    claims: missing,
                });
            }
        }
        blocked = monotonic && (terminating(p) || !available(p, min_ready, now));
    }
    if blocked {
        return actions;
    }
    // the surplus, from the highest ordinal
    let first_unhealthy = condemned
        .iter()
        .rev()
        .find(|p| !healthy(p))
        .map(|p| p.metadata.name());
    for p in &condemned {
        if terminating(p) {
            if monotonic {
                return actions;
            }
            continue;
        }
        let first = first_unhealthy == Some(p.metadata.name());
        if monotonic && !available(p, min_ready, now) && !first {
            return actions;
        }
        actions.push(Action::DeletePod(p.metadata.name().to_string()));
        if monotonic {
            return actions;
        }
    }
    if set.strategy() != "RollingUpdate" {
        return actions;
    }
    // the rolling update: from the highest ordinal down to the partition, while no more than
    // maxUnavailable of the replicas are unavailable
    let missing = replicas - in_range.len() as i64;
    let unavailable = missing
        + in_range
            .values()
            .filter(|p| terminating(p) || !available(p, min_ready, now))
            .count() as i64;
    let mut room = max_unavailable(set) - unavailable;
    for (_, p) in in_range.range(update_from..).rev() {
        if room <= 0 {
            break;
        }
        if revision_of(p) != revs.update.0 && !terminating(p) {
            actions.push(Action::DeletePod(p.metadata.name().to_string()));
            room -= 1;
        }
    }
    actions
}

/// The claims whose owners the retention policy wants otherwise, for every pod of the set.
fn claim_owner_actions(
    set: &StatefulSet,
    members: &[&Pod],
    claims: &HashMap<&str, &PersistentVolumeClaim>,
) -> Vec<Action> {
    let (start, end) = (
        set.start_ordinal(),
        set.start_ordinal().saturating_add(set.replicas()),
    );
    let mut out = Vec::new();
    for p in members {
        let Some(o) = ordinal_of(set.metadata.name(), p.metadata.name()) else {
            continue;
        };
        for t in &set.spec.volume_claim_templates {
            let name = set.claim_name(t.metadata.name(), o);
            let Some(c) = claims.get(name.as_str()) else {
                continue;
            };
            let scaled_down = !(start..end).contains(&o);
            let want = claim_owners(
                set,
                Some(c),
                p.metadata.name(),
                p.metadata.uid.as_deref(),
                scaled_down,
            );
            if let Some(owners) = want.filter(|w| *w != c.metadata.owner_references) {
                out.push(Action::SetClaimOwners {
                    claim: name,
                    owners,
                });
            }
        }
    }
    out
}

fn status_of(
    set: &StatefulSet,
    members: &[&Pod],
    revs: &Revisions,
    now: DateTime<Utc>,
) -> StatefulSetStatus {
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let prev = set.status.clone().unwrap_or_default();
    let mut s = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(revs.current.0.clone()),
        update_revision: Some(revs.update.0.clone()),
        collision_count: Some(revs.collisions),
        conditions: prev.conditions,
        ..Default::default()
    };
    for p in members.iter().filter(|p| !phase(p).is_empty()) {
        s.replicas += 1;
        s.ready_replicas += i64::from(running_and_ready(p));
        s.available_replicas += i64::from(available(p, min_ready, now));
        if !terminating(p) {
            s.current_replicas += i64::from(revision_of(p) == revs.current.0);
            s.updated_replicas += i64::from(revision_of(p) == revs.update.0);
        }
    }
    // a rolling update is complete once every pod is of the update revision and ready
    if set.strategy() == "RollingUpdate"
        && s.updated_replicas == s.replicas
        && s.ready_replicas == s.replicas
    {
        s.current_replicas = s.updated_replicas;
        s.current_revision = s.update_revision.clone();
    }
    s
}

/// `owned`: the pods whose controller is this set; only those its selector picks and named
/// as its pods count.
pub fn reconcile(set: &StatefulSet, seen: &Observed<'_>, now: DateTime<Utc>) -> Plan {
    let selector = Selector::from_label_selector(&set.spec.selector).unwrap_or_default();
    let members: Vec<&Pod> = seen
        .pods
        .iter()
        .copied()
        .filter(|p| {
            !selector.is_empty()
                && selector.matches(&p.metadata.labels)
                && ordinal_of(set.metadata.name(), p.metadata.name()).is_some()
        })
        .collect();
    let claims: HashMap<&str, &PersistentVolumeClaim> = seen
        .claims
        .iter()
        .filter(|c| c.metadata.namespace() == set.metadata.namespace())
        .map(|c| (c.metadata.name(), *c))
        .collect();
    let revs = revisions(set, seen.revisions, &members);
    let status = status_of(set, &members, &revs, now);
    let mut actions = revs.actions.clone();
    if set.metadata.deletion_timestamp.is_none() {
        actions.extend(claim_owner_actions(set, &members, &claims));
        actions.extend(pod_actions(set, &members, &revs, &claims, now));
    }
    Plan { actions, status }
}

/// Kubernetes' event words: `create Pod web-0 in StatefulSet web successful`.
fn note(verb: &str, what: &str, set: &str) -> (String, String) {
    let reason = format!("Successful{verb}");
    (
        reason,
        format!(
            "{} {what} in StatefulSet {set} successful",
            verb.to_lowercase()
        ),
    )
}

/// Creates `body` of `kind` in `ns`; one that exists already is no error (the caches lag, or
/// an earlier pass made it).
async fn create_new(ctx: &Ctx, kind: Kind, ns: &str, body: Value) -> Result<bool, ApiError> {
    match ctx.api.create(kind, ns, body).await {
        Ok(()) => Ok(true),
        Err(ApiError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the claims of pod `pod` of set `set` (those that exist already are kept as they are).
async fn create_claims(
    ctx: &Ctx,
    ns: &str,
    (set, uid): (&str, &str),
    pod: &str,
    claims: Vec<Value>,
) -> Result<(), ApiError> {
    for c in claims {
        let claim = crate::api::name_of(&c).to_string();
        if create_new(ctx, Kind::PersistentVolumeClaim, ns, c).await? {
            let about = About {
                ns,
                kind: Kind::StatefulSet,
                name: set,
                uid: Some(uid),
            };
            let msg = format!("create Claim {claim} Pod {pod} in StatefulSet {set} success");
            (ctx.api)
                .event(
                    about,
                    "Normal",
                    "SuccessfulCreate",
                    &msg,
                    "orkops-statefulset-controller",
                )
                .await;
        }
    }
    Ok(())
}

/// Creates a revision; one of that name already there is ours when it holds the same data
/// and is owned by the set, else a hash collision (Some: the collision count to retry with).
async fn create_revision(
    ctx: &Ctx,
    ns: &str,
    body: Value,
    set_uid: &str,
    collisions: i64,
) -> Result<Option<i64>, ApiError> {
    let name = crate::api::name_of(&body).to_string();
    if create_new(ctx, Kind::ControllerRevision, ns, body.clone()).await? {
        return Ok(None);
    }
    let existing = ctx
        .api
        .get(Kind::ControllerRevision, Some(ns), &name)
        .await?;
    let ours = existing.pointer("/metadata/ownerReferences/0/uid") == Some(&json!(set_uid))
        && existing.get("data") == body.get("data");
    Ok((!ours).then_some(collisions + 1))
}

/// Reconciles stateful set `key` (`namespace/name`) from the caches: its revisions, claims and
/// pods, then its status. While pods wait out `minReadySeconds` it comes back every second.
pub(super) async fn reconcile_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    const SOURCE: &str = "orkops-statefulset-controller";
    let api = &ctx.api;
    let (ns, name) = split_key(key);
    let Some(set) = ctx.caches.stateful_sets.get(ns, name) else {
        return Ok(Next::await_change());
    };
    let uid = set.metadata.uid.as_deref().unwrap_or("");
    let pods = ctx.caches.pods.owned_by(uid);
    let revisions = ctx.caches.revisions.owned_by(uid);
    let prefixes: Vec<String> = (set.spec.volume_claim_templates.iter())
        .map(|t| format!("{}-{name}-", t.metadata.name()))
        .collect();
    let claims = ctx.caches.claims.filter(|c| {
        c.metadata.namespace() == ns && prefixes.iter().any(|p| c.metadata.name().starts_with(p))
    });
    let (pods, revisions, claims): (
        Vec<&Pod>,
        Vec<&ControllerRevision>,
        Vec<&PersistentVolumeClaim>,
    ) = (
        pods.iter().map(|p| &**p).collect(),
        revisions.iter().map(|r| &**r).collect(),
        claims.iter().map(|c| &**c).collect(),
    );
    let seen = Observed {
        pods: &pods,
        revisions: &revisions,
        claims: &claims,
    };
    let plan = reconcile(&set, &seen, Utc::now());
    let about = || About {
        ns,
        kind: Kind::StatefulSet,
        name,
        uid: Some(uid),
    };
    let mut status = plan.status;
    let mut failed = None;
    for a in plan.actions {
        let r: Result<(), ApiError> = async {
            match a {
                Action::CreateRevision(body) => {
                    let collisions = status.collision_count.unwrap_or(0);
                    if let Some(n) = create_revision(ctx, ns, body, uid, collisions).await? {
                        status.collision_count = Some(n);
                        return Err(ApiError::Conflict(format!(
                            "a ControllerRevision of another template has the name of this one; trying again with collisionCount {n}"
                        )));
                    }
                }
                Action::Renumber { name: rev, revision } => {
                    let mut r = api.get(Kind::ControllerRevision, Some(ns), &rev).await?;
                    r["revision"] = json!(revision);
                    api.replace(Kind::ControllerRevision, Some(ns), &rev, r).await?;
                }
                Action::DeleteRevision(rev) => {
                    api.delete(Kind::ControllerRevision, Some(ns), &rev, None).await?
                }
                Action::CreateClaims { pod, claims } => {
                    create_claims(ctx, ns, (name, uid), &pod, claims).await?
                }
                Action::CreatePod { pod, claims } => {
                    let pod_name = crate::api::name_of(&pod).to_string();
                    create_claims(ctx, ns, (name, uid), &pod_name, claims).await?;
                    if create_new(ctx, Kind::Pod, ns, pod).await? {
                        let (reason, msg) = note("Create", &format!("Pod {pod_name}"), name);
                        api.event(about(), "Normal", &reason, &msg, SOURCE).await;
                    }
                }
                Action::DeletePod(pod) => {
                    api.delete(Kind::Pod, Some(ns), &pod, None).await?;
                    let (reason, msg) = note("Delete", &format!("Pod {pod}"), name);
                    api.event(about(), "Normal", &reason, &msg, SOURCE).await;
                }
                Action::SetClaimOwners { claim, owners } => {
                    let mut c = api.get(Kind::PersistentVolumeClaim, Some(ns), &claim).await?;
                    c["metadata"]["ownerReferences"] = json!(owners);
                    api.replace(Kind::PersistentVolumeClaim, Some(ns), &claim, c).await?;
                }
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => {
                if !matches!(e, ApiError::Conflict(_)) {
                    let msg = format!("cannot reconcile the set: {e}");
                    api.event(about(), "Warning", "FailedUpdate", &msg, SOURCE)
                        .await;
                }
                failed = Some(e);
                break;
            }
        }
    }
    super::write_status(
        api,
        Kind::StatefulSet,
        ns,
        name,
        set.status.as_ref(),
        &status,
    )
    .await?;
    if let Some(e) = failed {
        // back off on this set alone, and try again
        return Err(e);
    }
    if set.spec.min_ready_seconds.unwrap_or(0) > 0
        && status.available_replicas < status.ready_replicas
    {
        return Ok(Next::requeue(std::time::Duration::from_secs(1)));
    }
    Ok(Next::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, PodStatus, VolumeMount};
    use crate::api::meta::Condition;
    use crate::api::statefulset::{
        RollingUpdateStatefulSetStrategy, StatefulSetPersistentVolumeClaimRetentionPolicy,
        StatefulSetUpdateStrategy,
    };

    fn set(replicas: i64, image: &str) -> StatefulSet {
        let mut s: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 3},
            "spec": {"replicas": replicas, "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": image,
                        "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"},
                    "spec": {"accessModes": ["ReadWriteOnce"]}}]}}))
        .unwrap();
        s.spec.template.spec.containers[0].volume_mounts = vec![VolumeMount {
            name: "www".into(),
            mount_path: "/www".into(),
            ..Default::default()
        }];
        s.spec.template.spec.containers.push(Container {
            name: "side".into(),
            image: "side:1".into(),
            ..Default::default()
        });
        s
    }

    /// The revision the controller makes for `s`'s template (numbered `n`).
    fn revision(s: &StatefulSet, n: i64) -> ControllerRevision {
        let plan = reconcile(&s.clone(), &observed(&[], &[], &[]), Utc::now());
        let Some(Action::CreateRevision(body)) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        let mut r: ControllerRevision = serde_json::from_value(body.clone()).unwrap();
        r.revision = n;
        r
    }

    fn observed<'a>(
        pods: &'a [&'a Pod],
        revisions: &'a [&'a ControllerRevision],
        claims: &'a [&'a PersistentVolumeClaim],
    ) -> Observed<'a> {
        Observed {
            pods,
            revisions,
            claims,
        }
    }

    fn pod(ordinal: i64, revision: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(format!("web-{ordinal}"));
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("pod-{ordinal}"));
        p.metadata.labels.insert("app".into(), "web".into());
        p.metadata
            .labels
            .insert(REVISION_LABEL.into(), revision.into());
        p.status = Some(PodStatus {
            phase: Some(if ready { "Running" } else { "Pending" }.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::CreatePod { pod, .. } => Some(crate::api::name_of(pod).to_string()),
                _ => None,
            })
            .collect()
    }

    fn deleted(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::DeletePod(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_first_pod_comes_with_its_identity_its_claim_and_a_revision() {
        let s = set(3, "img:1");
        let plan = reconcile(&s, &observed(&[], &[], &[]), Utc::now());
        let Action::CreateRevision(rev) = &plan.actions[0] else {
            panic!("{:?}", plan.actions)
        };
        let rev_name = crate::api::name_of(rev).to_string();
        let hash = rev["metadata"]["labels"][REVISION_HASH_LABEL]
            .as_str()
            .unwrap();
        assert_eq!(rev_name, format!("web-{hash}"));
        assert_eq!(rev["revision"], 1);
        assert_eq!(rev["data"]["spec"]["template"]["$patch"], "replace");
        assert_eq!(rev["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(created(&plan), ["web-0"], "OrderedReady: one pod at a time");
        let Some(Action::CreatePod { pod, claims }) = plan.actions.get(1) else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(pod["spec"]["hostname"], "web-0");
        assert_eq!(pod["spec"]["subdomain"], "nginx");
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels[POD_NAME_LABEL], "web-0");
        assert_eq!(labels[POD_INDEX_LABEL], "0");
        assert_eq!(labels[REVISION_LABEL], rev_name.as_str());
        assert_eq!(labels["app"], "web");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "set-uid");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0", "readOnly": false}}])
        );
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0]["metadata"]["name"], "www-web-0");
        assert_eq!(claims[0]["metadata"]["labels"]["app"], "web");
        assert!(
            claims[0]["metadata"].get("ownerReferences").is_none(),
            "Retain: no owner"
        );
        assert_eq!(
            plan.status.update_revision.as_deref(),
            Some(rev_name.as_str())
        );
        assert_eq!(plan.status.observed_generation, Some(3));
    }

    #[test]
    fn ordered_ready_waits_for_each_pod_and_parallel_does_not() {
        let s = set(3, "img:1");
        let r = revision(&s, 1);
        let name = r.metadata.name().to_string();
        let now = Utc::now();
        let (p0, p0_ready) = (pod(0, &name, false), pod(0, &name, true));
        let plan = reconcile(&s, &observed(&[&p0], &[&r], &[]), now);
        // a pending pod whose claim went missing gets it again, and nothing else happens
        assert!(
            matches!(plan.actions.as_slice(), [Action::CreateClaims { pod, claims }] if pod == "web-0" && claims.len() == 1),
            "{:?}",
            plan.actions
        );
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = Some("www-web-0".into());
        claim.metadata.namespace = Some("default".into());
        let plan = reconcile(&s, &observed(&[&p0], &[&r], &[&claim]), now);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.ready_replicas, 0);
        let plan = reconcile(&s, &observed(&[&p0_ready], &[&r], &[]), now);
        assert_eq!(created(&plan), ["web-1"]);
        let mut par = s.clone();
        par.spec.pod_management_policy = Some("Parallel".into());
        let plan = reconcile(&par, &observed(&[&p0], &[&r], &[]), now);
        assert_eq!(created(&plan), ["web-1", "web-2"]);
        // no replicas count makes a pass do more than BURST creates
        par.spec.replicas = Some(i64::from(i32::MAX));
        let plan = reconcile(&par, &observed(&[&p0], &[&r], &[]), now);
        assert_eq!(created(&plan).len(), BURST);
        let mut huge = s.clone();
        huge.spec.replicas = Some(i64::from(i32::MAX));
        assert_eq!(
            created(&reconcile(&huge, &observed(&[&p0_ready], &[&r], &[]), now)),
            ["web-1"]
        );
    }

    #[test]
    fn scaling_down_removes_the_highest_ordinal_first() {
        let s = set(3, "img:1");
        let r = revision(&s, 1);
        let name = r.metadata.name().to_string();
        let pods: Vec<Pod> = (0..5).map(|o| pod(o, &name, true)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&s, &observed(&refs, &[&r], &[]), Utc::now());
        assert_eq!(deleted(&plan), ["web-4"]);
        let mut gone = pods.clone();
        gone[4].metadata.deletion_timestamp = Some(Utc::now());
        let refs: Vec<&Pod> = gone.iter().collect();
        let plan = reconcile(&s, &observed(&refs, &[&r], &[]), Utc::now());
        assert!(deleted(&plan).is_empty(), "waits for web-4 to be gone");
        let mut par = s.clone();
        par.spec.pod_management_policy = Some("Parallel".into());
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&par, &observed(&refs, &[&r], &[]), Utc::now());
        assert_eq!(deleted(&plan), ["web-4", "web-3"]);
    }

    #[test]
    fn a_failed_pod_is_deleted_and_made_again_with_its_name_and_claim() {
        let s = set(3, "img:1");
        let r = revision(&s, 1);
        let name = r.metadata.name().to_string();
        let mut failed = pod(1, &name, true);
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let (p0, p2) = (pod(0, &name, true), pod(2, &name, true));
        let plan = reconcile(&s, &observed(&[&p0, &failed, &p2], &[&r], &[]), Utc::now());
        assert_eq!(deleted(&plan), ["web-1"]);
        let mut claim = PersistentVolumeClaim::default();
        claim.metadata.name = Some("www-web-1".into());
        claim.metadata.namespace = Some("default".into());
        let plan = reconcile(&s, &observed(&[&p0, &p2], &[&r], &[&claim]), Utc::now());
        let Some(Action::CreatePod { pod, claims }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(crate::api::name_of(pod), "web-1");
        assert!(claims.is_empty(), "the claim that is there is used again");
        // a claim on its way out holds the pod back
        claim.metadata.deletion_timestamp = Some(Utc::now());
        let plan = reconcile(&s, &observed(&[&p0, &p2], &[&r], &[&claim]), Utc::now());
        assert!(created(&plan).is_empty(), "{:?}", plan.actions);
    }

    #[test]
    fn a_rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
        let old = set(3, "img:1");
        let r1 = revision(&old, 1);
        let mut s = set(3, "img:2");
        s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(1),
                max_unavailable: None,
            }),
        });
        s.status = Some(StatefulSetStatus {
            current_revision: Some(r1.metadata.name().to_string()),
            ..Default::default()
        });
        let r2 = revision(&s, 2);
        let (a, b) = (r1.metadata.name(), r2.metadata.name());
        assert_ne!(a, b);
        let now = Utc::now();
        let run = |pods: &[Pod], revs: &[&ControllerRevision]| {
            let refs: Vec<&Pod> = pods.iter().collect();
            reconcile(&s, &observed(&refs, revs, &[]), now)
        };
        // a new template: its revision, then the highest ordinal goes
        let plan = run(&[pod(0, a, true), pod(1, a, true), pod(2, a, true)], &[&r1]);
        assert!(matches!(&plan.actions[0], Action::CreateRevision(v) if v["revision"] == 2));
        assert_eq!(deleted(&plan), ["web-2"]);
        let pods = [pod(0, a, true), pod(1, a, true), pod(2, b, true)];
        let plan = run(&pods, &[&r1, &r2]);
        assert_eq!(deleted(&plan), ["web-1"]);
        assert_eq!(
            (plan.status.current_replicas, plan.status.updated_replicas),
            (2, 1)
        );
        // the new web-2 not ready yet: wait
        let plan = run(
            &[pod(0, a, true), pod(1, a, true), pod(2, b, false)],
            &[&r1, &r2],
        );
        assert!(deleted(&plan).is_empty());
        // below the partition nothing changes, and a pod made again there keeps the old one
        let plan = run(
            &[pod(0, a, true), pod(1, b, true), pod(2, b, true)],
            &[&r1, &r2],
        );
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.status.current_revision.as_deref(), Some(a));
        let plan = run(&[pod(1, b, true), pod(2, b, true)], &[&r1, &r2]);
        let Some(Action::CreatePod { pod: p0, .. }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(p0["metadata"]["labels"][REVISION_LABEL], a);
        assert_eq!(p0["spec"]["containers"][0]["image"], "img:1");
        // partition 0: the last one, then the update is complete
        let mut all = s.clone();
        all.spec
            .update_strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .partition = Some(0);
        let pods = [pod(0, b, true), pod(1, b, true), pod(2, b, true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&all, &observed(&refs, &[&r1, &r2], &[]), now);
        assert_eq!(plan.status.current_revision.as_deref(), Some(b));
        assert_eq!(plan.status.current_replicas, 3);
    }

    #[test]
    fn on_delete_replaces_only_what_is_deleted_and_max_unavailable_widens_the_update() {
        let r1 = revision(&set(3, "img:1"), 1);
        let a = r1.metadata.name().to_string();
        let mut s = set(3, "img:2");
        s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let r2 = revision(&s, 2);
        let pods = [pod(0, &a, true), pod(2, &a, true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&s, &observed(&refs, &[&r1, &r2], &[]), Utc::now());
        assert!(deleted(&plan).is_empty());
        let Some(Action::CreatePod { pod: p1, .. }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(p1["spec"]["containers"][0]["image"], "img:2");
        s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(0),
                max_unavailable: Some(IntOrString::String("50%".into())),
            }),
        });
        let pods = [pod(0, &a, true), pod(1, &a, true), pod(2, &a, true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&s, &observed(&refs, &[&r1, &r2], &[]), Utc::now());
        assert_eq!(deleted(&plan), ["web-2", "web-1"], "50% of 3, rounded up");
    }

    #[test]
    fn claims_go_to_the_set_or_the_scaled_down_pod_per_the_retention_policy() {
        let mut s = set(1, "img:1");
        s.spec.persistent_volume_claim_retention_policy =
            Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Delete".into()),
                when_scaled: Some("Delete".into()),
            });
        let r = revision(&s, 1);
        let name = r.metadata.name().to_string();
        let plan = reconcile(&s, &observed(&[], &[&r], &[]), Utc::now());
        let Some(Action::CreatePod { claims, .. }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        let owners = &claims[0]["metadata"]["ownerReferences"];
        assert_eq!(owners[0]["kind"], "StatefulSet");
        assert_eq!(owners[0]["uid"], "set-uid");
        assert_eq!(owners[0]["controller"], true);
        // web-1 is beyond replicas now: its claim goes to web-1, which is removed next
        let mut claim: PersistentVolumeClaim = serde_json::from_value(claims[0].clone()).unwrap();
        claim.metadata.name = Some("www-web-1".into());
        let pods = [pod(0, &name, true), pod(1, &name, true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let plan = reconcile(&s, &observed(&refs, &[&r], &[&claim]), Utc::now());
        let Some(Action::SetClaimOwners { claim: c, owners }) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(c, "www-web-1");
        assert_eq!(
            (
                owners.len(),
                owners[0].kind.as_str(),
                owners[0].uid.as_str()
            ),
            (1, "Pod", "pod-1")
        );
        assert_eq!(deleted(&plan), ["web-1"]);
        // Retain: the claims are left alone
        s.spec.persistent_volume_claim_retention_policy = None;
        let mut plain = claim.clone();
        plain.metadata.owner_references.clear();
        let plan = reconcile(&s, &observed(&refs, &[&r], &[&plain]), Utc::now());
        assert!(!plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetClaimOwners { .. })));
    }

    #[test]
    fn a_template_that_comes_back_is_renumbered_and_old_history_goes() {
        let mut s = set(1, "img:1");
        s.spec.revision_history_limit = Some(1);
        let old = revision(&s, 1);
        let mut others = Vec::new();
        for (i, img) in ["img:2", "img:3", "img:4"].iter().enumerate() {
            others.push(revision(&set(1, img), i as i64 + 2));
        }
        let pod0 = pod(0, old.metadata.name(), true);
        let mut revs: Vec<&ControllerRevision> = others.iter().collect();
        revs.push(&old);
        let plan = reconcile(&s, &observed(&[&pod0], &revs, &[]), Utc::now());
        assert_eq!(
            plan.actions[0],
            Action::Renumber {
                name: old.metadata.name().to_string(),
                revision: 5
            }
        );
        let dropped: Vec<&str> = plan
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::DeleteRevision(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            dropped,
            [others[0].metadata.name(), others[1].metadata.name()],
            "the oldest beyond the limit of 1"
        );
    }

    #[test]
    fn revision_names_hash_the_data_and_the_collision_count() {
        let d = revision_data(&set(1, "img:1").spec.template);
        assert_eq!(revision_hash(&d, 0), revision_hash(&d, 0));
        assert_ne!(revision_hash(&d, 0), revision_hash(&d, 1));
        assert!(revision_hash(&d, 0)
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }
}
