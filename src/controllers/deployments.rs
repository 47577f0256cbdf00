//! The Deployment controller on top of ReplicaSets, as Kubernetes' own: a pure reconciler from a
//! deployment and the replica sets it controls to the replica sets to create, scale and delete
//! and the deployment's status, and the pass that applies it.
//!
//! One replica set per pod template, named `NAME-HASH` and labelled `pod-template-hash=HASH`,
//! numbered by `deployment.kubernetes.io/revision` in rollout order (a template that comes back,
//! as by `rollout undo`, gets the next number). RollingUpdate grows the new set up to
//! `replicas + maxSurge` pods in all and shrinks the old ones while `replicas - maxUnavailable`
//! stay available; Recreate empties the old sets before the new one starts. Old sets beyond
//! `revisionHistoryLimit` are deleted once empty. orkops adds `orkops.io/auto-rollback`: a
//! rollout that exceeds its progress deadline returns to the newest set that once completed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::runtime::{split_key, Action as Next, Ctx};
use super::{Api, ApiError};
use crate::api::core::Pod;
use crate::api::meta::{Condition, IntOrString};
use crate::api::workloads::{Deployment, DeploymentStatus, ReplicaSet};
use crate::api::{About, Kind};

pub const HASH_LABEL: &str = "pod-template-hash";
/// On a Deployment and its ReplicaSets: the revision (rollout order) of the template.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// On a ReplicaSet: the deployment's `replicas` when the set was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// On a ReplicaSet: `replicas + maxSurge` when the set was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// On a Deployment: return to the last good revision when a rollout exceeds its deadline.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "orkops.io/auto-rollback";
/// On a ReplicaSet: this template once rolled out completely.
pub const GOOD_ANNOTATION: &str = "orkops.io/rollout-complete";
/// Copied from the Deployment onto its replica sets, shown by `rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Annotations never copied from the deployment to its new set (the rest is, as upstream, so
/// that `kubectl rollout undo`, which copies a set's annotations back, restores them).
const NOT_COPIED: &[&str] = &[
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deployment.kubernetes.io/revision-history",
    "kubectl.kubernetes.io/last-applied-configuration",
    GOOD_ANNOTATION,
];

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the replica set of the current template (the value is the ReplicaSet).
    CreateReplicaSet(Value),
    /// Set a replica set's `spec.replicas` and add `annotations` to it.
    Scale {
        name: String,
        replicas: i64,
        annotations: BTreeMap<String, String>,
    },
    /// Drop an empty old replica set beyond `revisionHistoryLimit`.
    DeleteReplicaSet(String),
    /// Record the current revision on the deployment itself.
    SetRevision(i64),
}

/// A short, stable hash of a pod template.
pub fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex::encode(&d.as_ref()[..5])
}

/// The revision annotation of a replica set (0 when missing or garbled).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A replica set's template as a deployment template: without the `pod-template-hash` label.
pub fn template_of(rs: &ReplicaSet) -> Value {
    let mut t = serde_json::to_value(&rs.spec.template).unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    t
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: DeploymentStatus,
    /// The rollout exceeded its progress deadline in this pass.
    pub stalled: bool,
    /// Roll back to this (revision, template): the deadline passed and auto-rollback is on.
    pub rollback: Option<(i64, Value)>,
}

/// One replica set as the plan sees it: its current counts and the replicas planned for it.
struct Set<'a> {
    rs: Option<&'a ReplicaSet>,
    name: String,
    spec: i64,
    planned: i64,
}

impl Set<'_> {
    fn status(&self) -> (i64, i64, i64) {
        let s = self.rs.and_then(|r| r.status.clone()).unwrap_or_default();
        (s.replicas, s.ready_replicas, s.available_replicas)
    }
    /// Available pods, counted no higher than the set's size.
    fn available(&self) -> i64 {
        self.status().2.min(self.spec)
    }
    fn synced(&self) -> bool {
        self.rs.is_none_or(|r| {
            r.status.as_ref().and_then(|s| s.observed_generation) >= r.metadata.generation
        })
    }
}

/// The rolling update step: the new set grows within the surge, old ones shrink while enough
/// pods stay available (both bounded by the planned sizes, not by possibly stale counts).
fn roll(new: &mut Set, old: &mut [Set], replicas: i64, surge: i64, max_unavailable: i64) {
    if new.planned > replicas {
        new.planned = replicas;
    } else if new.planned < replicas {
        let total: i64 = new.planned + old.iter().map(|s| s.planned).sum::<i64>();
        let room = (replicas + surge - total)
            .min(replicas - new.planned)
            .max(0);
        if room > 0 {
            new.planned += room;
            return;
        }
    }
    if old.iter().all(|s| s.planned == 0) {
        return;
    }
    let all: i64 = new.planned + old.iter().map(|s| s.planned).sum::<i64>();
    let min_available = replicas - max_unavailable;
    let new_unavailable = (new.planned - new.available()).max(0);
    let mut budget = all - min_available - new_unavailable;
    // unhealthy old pods first: removing them costs no availability
    for s in old.iter_mut() {
        let unhealthy = (s.planned - s.available()).max(0);
        let down = unhealthy.min(budget).max(0);
        s.planned -= down;
        budget -= down;
    }
    let available: i64 = new.available()
        + old
            .iter()
            .map(|s| s.available().min(s.planned))
            .sum::<i64>();
    let mut removable = (available - min_available).min(budget).max(0);
    for s in old.iter_mut() {
        let down = s.planned.min(removable);
        s.planned -= down;
        removable -= down;
    }
}

/// Paused or a pure scale: the sizes follow `replicas` without rolling anything out.
fn rescale(new: Option<&mut Set>, old: &mut [Set], replicas: i64) {
    let current =
        new.as_ref().map_or(0, |s| s.planned) + old.iter().map(|s| s.planned).sum::<i64>();
    let diff = replicas - current;
    if diff == 0 {
        return;
    }
    match new {
        Some(n) if diff > 0 || old.iter().all(|s| s.planned == 0) => {
            n.planned = (n.planned + diff).max(0)
        }
        _ if diff > 0 => {
            if let Some(newest) = old.last_mut() {
                newest.planned += diff;
            }
        }
        n => {
            let mut cut = -diff;
            for s in old.iter_mut() {
                let down = s.planned.min(cut);
                s.planned -= down;
                cut -= down;
            }
            if let Some(n) = n {
                n.planned = (n.planned - cut).max(0);
            }
        }
    }
}

/// Recreate: every old set to 0 first; the new one at full size once their pods are gone.
fn recreate_step(new: Option<&mut Set>, old: &mut [Set], replicas: i64) {
    if old.iter().any(|s| s.planned > 0) {
        old.iter_mut().for_each(|s| s.planned = 0);
    } else if let Some(n) = new.filter(|_| old.iter().all(|s| s.status().0 == 0)) {
        n.planned = replicas;
    }
}

/// The new set's actions: create it, or resize and annotate it (`annotations` plus the
/// deployment's own, as upstream copies them), and record its revision on the deployment.
fn new_set_actions(
    d: &Deployment,
    n: &Set,
    template: &Value,
    hash: &str,
    mut annotations: BTreeMap<String, String>,
) -> Vec<Action> {
    for (k, v) in &d.metadata.annotations {
        if !NOT_COPIED.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let revision = annotations.get(REVISION).cloned().unwrap_or_default();
    let mut actions = Vec::new();
    match n.rs {
        None => actions.push(Action::CreateReplicaSet(replica_set_for(
            d,
            template,
            hash,
            n.planned,
            &annotations,
        ))),
        Some(rs) => {
            let missing = annotations
                .iter()
                .any(|(k, v)| rs.metadata.annotations.get(k) != Some(v));
            if n.planned != n.spec || missing {
                actions.push(Action::Scale {
                    name: n.name.clone(),
                    replicas: n.planned,
                    annotations,
                });
            }
        }
    }
    if d.metadata.annotations.get(REVISION) != Some(&revision) {
        actions.push(Action::SetRevision(revision.parse().unwrap_or(0)));
    }
    actions
}

/// `owned`: the replica sets whose controller is this deployment.
pub fn reconcile(d: &Deployment, owned: &[ReplicaSet], now: DateTime<Utc>) -> Plan {
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    let template = serde_json::to_value(&d.spec.template).unwrap_or(Value::Null);
    let hash = template_hash(&template);
    let recreate = d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let (surge, max_unavailable) = fenceposts(d, replicas, recreate);
    let paused = d.spec.paused == Some(true);
    let live: Vec<&ReplicaSet> = owned
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    let existing_new = live
        .iter()
        .copied()
        .find(|r| r.metadata.labels.get(HASH_LABEL) == Some(&hash));
    let mut olds: Vec<&ReplicaSet> = live
        .iter()
        .copied()
        .filter(|r| r.metadata.labels.get(HASH_LABEL) != Some(&hash))
        .collect();
    olds.sort_by_key(|r| (revision_of(r), r.metadata.creation_timestamp));
    fn set(r: &ReplicaSet) -> Set<'_> {
        let spec = r.spec.replicas.unwrap_or(1).max(0);
        Set {
            rs: Some(r),
            name: r.metadata.name().to_string(),
            spec,
            planned: spec,
        }
    }
    let mut old: Vec<Set> = olds.iter().map(|r| set(r)).collect();
    let mut new = existing_new.map(set);
    if !paused && new.is_none() && !(recreate && old.iter().any(|s| s.spec > 0 || s.status().0 > 0))
    {
        new = Some(Set {
            rs: None,
            name: format!("{}-{hash}", d.metadata.name()),
            spec: 0,
            planned: 0,
        });
    }
    if paused {
        rescale(new.as_mut(), &mut old, replicas);
    } else if recreate {
        recreate_step(new.as_mut(), &mut old, replicas);
    } else if let Some(n) = new.as_mut() {
        roll(n, &mut old, replicas, surge, max_unavailable);
    }
    let max_old_revision = olds.iter().map(|r| revision_of(r)).max().unwrap_or(0);
    let revision = match existing_new.map(revision_of) {
        Some(r) if r > max_old_revision => r,
        _ => max_old_revision + 1,
    };
    let mut actions = Vec::new();
    let sizes = || {
        BTreeMap::from([
            (DESIRED_REPLICAS.to_string(), replicas.to_string()),
            (MAX_REPLICAS.to_string(), (replicas + surge).to_string()),
        ])
    };
    for s in old.iter().filter(|s| s.planned != s.spec) {
        actions.push(Action::Scale {
            name: s.name.clone(),
            replicas: s.planned,
            annotations: sizes(),
        });
    }
    let status = status_of(d, new.as_ref(), &old);
    let complete = new
        .as_ref()
        .is_some_and(|n| n.rs.is_some() && n.planned == replicas)
        && old.iter().all(|s| s.planned == 0)
        && status.updated_replicas == replicas
        && status.replicas == replicas
        && status.available_replicas == replicas
        && new.iter().chain(old.iter()).all(Set::synced);
    if let Some(n) = &new {
        let mut annotations = sizes();
        annotations.insert(REVISION.into(), revision.to_string());
        if complete {
            annotations.insert(GOOD_ANNOTATION.into(), "true".into());
        }
        actions.extend(new_set_actions(d, n, &template, &hash, annotations));
    }
    // history: empty old sets beyond the limit, oldest revision first
    if complete || paused {
        let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let empty: Vec<&Set> = old
            .iter()
            .filter(|s| s.planned == 0 && s.status().0 == 0 && s.synced())
            .collect();
        for s in empty.iter().take(empty.len().saturating_sub(limit)) {
            actions.push(Action::DeleteReplicaSet(s.name.clone()));
        }
    }
    let progress = Progress {
        complete,
        paused,
        created: new.as_ref().is_some_and(|n| n.rs.is_none()),
        moved: !actions.is_empty(),
    };
    let (status, stalled) = with_conditions(
        d,
        status,
        &progress,
        new.as_ref(),
        replicas,
        max_unavailable,
        now,
    );
    // automatic rollback (orkops): back to the newest set that once rolled out completely
    let rollback = (stalled
        && d.metadata
            .annotations
            .get(AUTO_ROLLBACK_ANNOTATION)
            .map(String::as_str)
            == Some("true"))
    .then(|| {
        olds.iter()
            .rev()
            .find(|r| {
                r.metadata
                    .annotations
                    .get(GOOD_ANNOTATION)
                    .map(String::as_str)
                    == Some("true")
            })
            .map(|r| (revision_of(r), template_of(r)))
    })
    .flatten();
    Plan {
        actions,
        status,
        stalled,
        rollback,
    }
}

/// (maxSurge, maxUnavailable) resolved against `replicas`: surge rounds up, unavailability
/// down, and they are never both 0. Recreate has neither.
fn fenceposts(d: &Deployment, replicas: i64, recreate: bool) -> (i64, i64) {
    if recreate {
        return (0, replicas);
    }
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let surge = ru
        .max_surge
        .unwrap_or(IntOrString::Int(1))
        .scaled(replicas, true)
        .unwrap_or(1)
        .max(0);
    let max_unavailable = ru
        .max_unavailable
        .unwrap_or(IntOrString::Int(0))
        .scaled(replicas, false)
        .unwrap_or(0)
        .clamp(0, replicas);
    if surge == 0 && max_unavailable == 0 {
        (1, 0)
    } else {
        (surge, max_unavailable)
    }
}

/// The counts, from the replica sets' own status (what their pods are now).
fn status_of(d: &Deployment, new: Option<&Set>, old: &[Set]) -> DeploymentStatus {
    let all = || new.into_iter().chain(old.iter());
    let available: i64 = all().map(|s| s.status().2).sum();
    let total_planned: i64 = all().map(|s| s.planned).sum();
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: all().map(|s| s.status().0).sum(),
        updated_replicas: new.map_or(0, |s| s.status().0),
        ready_replicas: all().map(|s| s.status().1).sum(),
        available_replicas: available,
        unavailable_replicas: (total_planned - available).max(0),
        conditions: Vec::new(),
    }
}

struct Progress {
    complete: bool,
    paused: bool,
    created: bool,
    moved: bool,
}

/// Adds the `Available` and `Progressing` conditions; also says whether the rollout stalled in
/// this pass (it exceeded `progressDeadlineSeconds` without progress).
fn with_conditions(
    d: &Deployment,
    mut status: DeploymentStatus,
    p: &Progress,
    new: Option<&Set>,
    replicas: i64,
    max_unavailable: i64,
    now: DateTime<Utc>,
) -> (DeploymentStatus, bool) {
    let prev = d.status.clone().unwrap_or_default();
    let prev_cond = |t: &str| prev.conditions.iter().find(|c| c.type_ == t).cloned();
    let condition = |type_: &str, status: &str, reason: &str, message: String, touched: bool| {
        let old = prev_cond(type_);
        let same = old.as_ref().is_some_and(|c| c.status == status);
        let keep =
            |f: fn(&Condition) -> Option<DateTime<Utc>>| old.as_ref().and_then(f).unwrap_or(now);
        Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(if same {
                keep(|c| c.last_transition_time)
            } else {
                now
            }),
            last_update_time: Some(
                if touched
                    || !same
                    || old.as_ref().and_then(|c| c.reason.as_deref()) != Some(reason)
                {
                    now
                } else {
                    keep(|c| c.last_update_time)
                },
            ),
            reason: Some(reason.into()),
            message: Some(message),
            ..Default::default()
        }
    };
    let rs_name = new.map(|s| s.name.as_str()).unwrap_or_default();
    let moved = p.moved
        || (
            prev.updated_replicas,
            prev.ready_replicas,
            prev.available_replicas,
            prev.replicas,
        ) != (
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.replicas,
        )
        || prev.observed_generation != d.metadata.generation;
    let was = prev_cond("Progressing");
    let was_reason = was
        .as_ref()
        .and_then(|c| c.reason.clone())
        .unwrap_or_default();
    let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
    let last_progress = was.as_ref().and_then(|c| c.last_update_time).unwrap_or(now);
    let timed_out = now - last_progress > chrono::Duration::seconds(deadline);
    let mut stalled = false;
    let progressing = if p.paused {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            false,
        )
    } else if p.complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs_name:?} has successfully progressed."),
            moved,
        )
    } else if p.created {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set {rs_name:?}"),
            true,
        )
    } else if moved || was_reason == "DeploymentPaused" || was_reason.is_empty() {
        condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet {rs_name:?} is progressing."),
            true,
        )
    } else if was_reason == "ProgressDeadlineExceeded" || timed_out {
        stalled = was_reason != "ProgressDeadlineExceeded";
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            format!(
                "ReplicaSet {rs_name:?} has timed out progressing ({deadline}s without progress)."
            ),
            false,
        )
    } else {
        condition(
            "Progressing",
            "True",
            &was_reason,
            was.and_then(|c| c.message).unwrap_or_default(),
            false,
        )
    };
    let ok = status.available_replicas >= replicas - max_unavailable;
    let available = if ok {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            false,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            false,
        )
    };
    status.conditions = vec![available, progressing];
    (status, stalled)
}

fn replica_set_for(
    d: &Deployment,
    template: &Value,
    hash: &str,
    replicas: i64,
    annotations: &BTreeMap<String, String>,
) -> Value {
    let mut template = template.clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = serde_json::to_value(&d.spec.selector).unwrap_or(json!({}));
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let mut labels = d.spec.template.metadata.labels.clone();
    labels.insert(HASH_LABEL.into(), hash.into());
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", d.metadata.name()),
            "namespace": d.metadata.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [super::controller_ref("apps/v1", "Deployment", &d.metadata)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d.spec.min_ready_seconds.unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

/// Pods a Deployment controls directly, as orkops made them before ReplicaSets: once the
/// deployment's replica sets have rolled out completely, they are surplus (until then they
/// serve, so an upgrade loses no availability).
pub fn legacy_pods<'a, P: std::borrow::Borrow<Pod>>(
    pods: &'a [P],
    deployments: &[Deployment],
) -> Vec<&'a Pod> {
    let complete: std::collections::HashSet<&str> = deployments
        .iter()
        .filter(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.observed_generation == d.metadata.generation
                    && s.conditions.iter().any(|c| {
                        c.type_ == "Progressing"
                            && c.reason.as_deref() == Some("NewReplicaSetAvailable")
                    })
            })
        })
        .filter_map(|d| d.metadata.uid.as_deref())
        .collect();
    pods.iter()
        .map(|p| -> &Pod { p.borrow() })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata.owner_references.iter().any(|o| {
                o.controller == Some(true)
                    && o.kind == "Deployment"
                    && complete.contains(o.uid.as_str())
            })
        })
        .collect()
}

/// Sets `spec.replicas` and adds `annotations` on replica set `name`; returns the size it had.
async fn scale(
    api: &Api,
    ns: &str,
    name: &str,
    replicas: i64,
    annotations: &BTreeMap<String, String>,
) -> Result<i64, ApiError> {
    let mut rs = api.get(Kind::ReplicaSet, Some(ns), name).await?;
    let before = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    rs["spec"]["replicas"] = json!(replicas);
    for (k, v) in annotations {
        rs["metadata"]["annotations"][k] = json!(v);
    }
    api.replace(Kind::ReplicaSet, Some(ns), name, rs).await?;
    Ok(before)
}

/// Reconciles deployment `key` (`namespace/name`) from the caches: creates, scales and
/// deletes its replica sets, writes its status. While a rollout is under way it comes back
/// every few seconds (the clock of `progressDeadlineSeconds`).
pub(super) async fn reconcile_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    const SOURCE: &str = "orkops-deployment-controller";
    let api = &ctx.api;
    let (ns, name) = split_key(key);
    let Some(d) = ctx.caches.deployments.get(ns, name) else {
        return Ok(Next::await_change());
    };
    {
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Next::await_change());
        }
        let uid = d.metadata.uid.as_deref().unwrap_or("");
        let owned: Vec<ReplicaSet> = (ctx.caches.replica_sets.owned_by(uid).iter())
            .map(|r| ReplicaSet::clone(r))
            .collect();
        let (ns, name) = (d.metadata.namespace(), d.metadata.name());
        let about = || About {
            ns,
            kind: Kind::Deployment,
            name,
            uid: Some(uid),
        };
        let plan = reconcile(&d, &owned, Utc::now());
        if plan.stalled {
            let msg = plan
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == "Progressing")
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            api.event(about(), "Warning", "ProgressDeadlineExceeded", &msg, SOURCE)
                .await;
        }
        if let Some((revision, template)) = &plan.rollback {
            let mut current = api.get(Kind::Deployment, Some(ns), name).await?;
            current["spec"]["template"] = template.clone();
            api.replace(Kind::Deployment, Some(ns), name, current)
                .await?;
            let msg = format!("rolled back to revision {revision}, the last one that rolled out completely ({AUTO_ROLLBACK_ANNOTATION} is set)");
            api.event(about(), "Warning", "RolledBack", &msg, SOURCE)
                .await;
            // the change of the template queues the deployment again
            return Ok(Next::await_change());
        }
        for a in plan.actions {
            let r = match a {
                Action::CreateReplicaSet(body) => {
                    let set = crate::api::name_of(&body).to_string();
                    let n = body
                        .pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    match api.create(Kind::ReplicaSet, ns, body).await {
                        Ok(()) => {
                            let msg = format!("Scaled up replica set {set} from 0 to {n}");
                            api.event(about(), "Normal", "ScalingReplicaSet", &msg, SOURCE)
                                .await;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Action::Scale {
                    name: set,
                    replicas,
                    annotations,
                } => match scale(api, ns, &set, replicas, &annotations).await {
                    Ok(before) if before != replicas => {
                        let how = if replicas > before { "up" } else { "down" };
                        let msg =
                            format!("Scaled {how} replica set {set} from {before} to {replicas}");
                        api.event(about(), "Normal", "ScalingReplicaSet", &msg, SOURCE)
                            .await;
                        Ok(())
                    }
                    other => other.map(|_| ()),
                },
                Action::DeleteReplicaSet(set) => {
                    api.delete(Kind::ReplicaSet, Some(ns), &set, None).await
                }
                Action::SetRevision(revision) => {
                    let mut current = api.get(Kind::Deployment, Some(ns), name).await?;
                    current["metadata"]["annotations"][REVISION] = json!(revision.to_string());
                    api.replace(Kind::Deployment, Some(ns), name, current).await
                }
            };
            match r {
                // a racing write, or a set named like ours that is not ours: the next pass
                Ok(())
                | Err(
                    ApiError::Conflict(_)
                    | ApiError::NotFound { .. }
                    | ApiError::AlreadyExists { .. },
                ) => {}
                Err(e) => return Err(e),
            }
        }
        super::write_status(
            api,
            Kind::Deployment,
            ns,
            name,
            d.status.as_ref(),
            &plan.status,
        )
        .await?;
        let progressing = plan.status.conditions.iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "True"
                && c.reason.as_deref() != Some("NewReplicaSetAvailable")
        });
        if progressing {
            return Ok(Next::requeue(std::time::Duration::from_secs(5)));
        }
    }
    Ok(Next::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::Container;
    use crate::api::workloads::{DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment};

    fn deployment(replicas: i64, image: &str) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.namespace = Some("default".into());
        d.metadata.uid = Some("d-uid".into());
        d.metadata.generation = Some(1);
        d.spec.replicas = Some(replicas);
        d.spec
            .selector
            .match_labels
            .insert("app".into(), "web".into());
        d.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        d.spec.template.spec.containers.push(Container {
            name: "c".into(),
            image: image.into(),
            ..Default::default()
        });
        d
    }

    /// The replica set `d` makes for its template, at `spec` replicas of which `available`
    /// are available, with `revision`.
    fn set_of(d: &Deployment, spec: i64, available: i64, revision: i64) -> ReplicaSet {
        let template = serde_json::to_value(&d.spec.template).unwrap();
        let hash = template_hash(&template);
        let replicas = d.spec.replicas.unwrap_or(1);
        let annotations = BTreeMap::from([
            (REVISION.to_string(), revision.to_string()),
            (DESIRED_REPLICAS.to_string(), replicas.to_string()),
            (MAX_REPLICAS.to_string(), (replicas + 1).to_string()),
        ]);
        let mut rs: ReplicaSet =
            serde_json::from_value(replica_set_for(d, &template, &hash, spec, &annotations))
                .unwrap();
        rs.metadata.generation = Some(1);
        rs.metadata.uid = Some(format!("rs-{revision}"));
        rs.status = Some(ReplicaSetStatus {
            replicas: spec.max(available),
            ready_replicas: available,
            available_replicas: available,
            observed_generation: Some(1),
            ..Default::default()
        });
        rs
    }

    fn scales(plan: &Plan) -> Vec<(String, i64)> {
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Scale { name, replicas, .. } => Some((name.clone(), *replicas)),
                Action::CreateReplicaSet(v) => Some((
                    crate::api::name_of(v).to_string(),
                    v["spec"]["replicas"].as_i64().unwrap(),
                )),
                _ => None,
            })
            .collect()
    }

    fn reason(plan: &Plan) -> &str {
        plan.status.conditions[1].reason.as_deref().unwrap()
    }

    #[test]
    fn a_new_deployment_makes_one_replica_set_with_every_replica_and_revision_1() {
        let d = deployment(3, "img:1");
        let plan = reconcile(&d, &[], Utc::now());
        let Some(Action::CreateReplicaSet(rs)) = plan.actions.first() else {
            panic!("{:?}", plan.actions)
        };
        let hash = rs["metadata"]["labels"][HASH_LABEL].as_str().unwrap();
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH_LABEL], hash);
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
            hash
        );
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        assert_eq!(rs["metadata"]["annotations"][DESIRED_REPLICAS], "3");
        assert_eq!(rs["metadata"]["annotations"][MAX_REPLICAS], "4");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
        assert!(plan.actions.contains(&Action::SetRevision(1)));
        assert_eq!(reason(&plan), "NewReplicaSetCreated");
        assert_eq!(plan.status.observed_generation, Some(1));
        // its template round-trips to the deployment's: what `rollout undo` copies back
        let typed: ReplicaSet = serde_json::from_value(rs.clone()).unwrap();
        assert_eq!(
            template_of(&typed),
            serde_json::to_value(&d.spec.template).unwrap()
        );
    }

    #[test]
    fn a_rolling_update_surges_one_and_shrinks_the_old_set_as_new_pods_become_available() {
        let v1 = deployment(3, "img:1");
        let mut v2 = deployment(3, "img:2");
        v2.metadata.generation = Some(2);
        let old = set_of(&v1, 3, 3, 1);
        // step 1: the new set, at 1 (surge 1), the old one untouched
        let plan = reconcile(&v2, std::slice::from_ref(&old), Utc::now());
        let new_name = format!(
            "web-{}",
            template_hash(&serde_json::to_value(&v2.spec.template).unwrap())
        );
        assert_eq!(scales(&plan), [(new_name.clone(), 1)]);
        assert!(plan.actions.contains(&Action::SetRevision(2)));
        // step 2: the new pod is not available yet: nothing moves
        let new = set_of(&v2, 1, 0, 2);
        let plan = reconcile(&v2, &[old.clone(), new.clone()], Utc::now());
        assert_eq!(scales(&plan), []);
        // step 3: it is: the old set loses one
        let new = set_of(&v2, 1, 1, 2);
        let plan = reconcile(&v2, &[old.clone(), new.clone()], Utc::now());
        assert_eq!(scales(&plan), [(old.metadata.name().to_string(), 2)]);
        // step 4: then the new one grows again
        let old2 = set_of(&v1, 2, 2, 1);
        let plan = reconcile(&v2, &[old2, new], Utc::now());
        assert_eq!(scales(&plan), [(new_name.clone(), 2)]);
        // the end: all new and available, old empty: complete, marked good
        let done = set_of(&v2, 3, 3, 2);
        let empty = set_of(&v1, 0, 0, 1);
        let mut d = v2.clone();
        d.metadata.annotations.insert(REVISION.into(), "2".into());
        let plan = reconcile(&d, &[empty, done], Utc::now());
        assert_eq!(
            scales(&plan),
            [(new_name, 3)],
            "only the good mark: {:?}",
            plan.actions
        );
        let Some(Action::Scale { annotations, .. }) = plan.actions.first() else {
            panic!()
        };
        assert_eq!(
            annotations.get(GOOD_ANNOTATION).map(String::as_str),
            Some("true")
        );
        assert_eq!(reason(&plan), "NewReplicaSetAvailable");
        assert_eq!(plan.status.updated_replicas, 3);
        assert_eq!(plan.status.available_replicas, 3);
        assert_eq!(plan.status.conditions[0].status, "True");
    }

    #[test]
    fn unavailable_old_pods_go_first_and_max_unavailable_allows_shrinking_before_growing() {
        let v1 = deployment(4, "img:1");
        let mut v2 = deployment(4, "img:2");
        v2.spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(0)),
                max_unavailable: Some(IntOrString::String("50%".into())),
            }),
        });
        // no surge: the new set cannot grow, two old pods may go
        let plan = reconcile(&v2, &[set_of(&v1, 4, 4, 1)], Utc::now());
        let new_name = format!(
            "web-{}",
            template_hash(&serde_json::to_value(&v2.spec.template).unwrap())
        );
        assert!(
            scales(&plan).contains(&(
                "web-".to_string()
                    + &template_hash(&serde_json::to_value(&v1.spec.template).unwrap()),
                2
            )),
            "{:?}",
            plan.actions
        );
        assert!(scales(&plan).contains(&(new_name, 0)));
        // an old set with 2 unavailable pods of 4: they go first, within the surge budget (1)
        let mut d = deployment(4, "img:2");
        d.spec.strategy = v2.spec.strategy.clone();
        d.spec
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .max_unavailable = Some(IntOrString::Int(0));
        d.spec
            .strategy
            .as_mut()
            .unwrap()
            .rolling_update
            .as_mut()
            .unwrap()
            .max_surge = Some(IntOrString::Int(1));
        let sick = set_of(&v1, 4, 2, 1);
        let new = set_of(&d, 1, 1, 2);
        let plan = reconcile(&d, &[sick.clone(), new], Utc::now());
        assert_eq!(scales(&plan), [(sick.metadata.name().to_string(), 3)]);
    }

    #[test]
    fn recreate_empties_old_sets_before_the_new_one_starts() {
        let v1 = deployment(2, "img:1");
        let mut v2 = deployment(2, "img:2");
        v2.spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        let old = set_of(&v1, 2, 2, 1);
        let plan = reconcile(&v2, std::slice::from_ref(&old), Utc::now());
        assert_eq!(scales(&plan), [(old.metadata.name().to_string(), 0)]);
        // scaled to 0 but its pods are still there: wait
        let mut draining = set_of(&v1, 0, 0, 1);
        draining.status.as_mut().unwrap().replicas = 2;
        assert_eq!(scales(&reconcile(&v2, &[draining], Utc::now())), []);
        // gone: the new set at full size
        let plan = reconcile(&v2, &[set_of(&v1, 0, 0, 1)], Utc::now());
        let created = scales(&plan);
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].1, 2);
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_oldest_first_and_an_old_template_gets_the_next_revision()
    {
        let mut d = deployment(1, "img:5");
        d.spec.revision_history_limit = Some(2);
        d.metadata.annotations.insert(REVISION.into(), "5".into());
        let mut sets: Vec<ReplicaSet> = (1..=4)
            .map(|i| set_of(&deployment(1, &format!("img:{i}")), 0, 0, i))
            .collect();
        sets.push(set_of(&d, 1, 1, 5));
        let plan = reconcile(&d, &sets, Utc::now());
        let deleted: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::DeleteReplicaSet(_)))
            .collect();
        assert_eq!(
            deleted,
            [
                &Action::DeleteReplicaSet(sets[0].metadata.name().into()),
                &Action::DeleteReplicaSet(sets[1].metadata.name().into())
            ]
        );
        // back to img:3 (an undo): its set is the new one, renumbered 6
        let mut back = deployment(1, "img:3");
        back.metadata
            .annotations
            .insert(REVISION.into(), "5".into());
        let plan = reconcile(&back, &sets, Utc::now());
        assert!(
            plan.actions.contains(&Action::SetRevision(6)),
            "{:?}",
            plan.actions
        );
        assert!(plan.actions.iter().any(|a| matches!(a, Action::Scale { name, replicas: 1, annotations } if *name == sets[2].metadata.name() && annotations[REVISION] == "6")), "{:?}", plan.actions);
    }

    #[test]
    fn a_stalled_rollout_says_so_and_rolls_back_to_the_last_complete_set_when_asked() {
        let good = deployment(2, "img:1");
        let mut d = deployment(2, "img:bad");
        d.metadata
            .annotations
            .insert(AUTO_ROLLBACK_ANNOTATION.into(), "true".into());
        d.metadata.annotations.insert(REVISION.into(), "2".into());
        d.spec.progress_deadline_seconds = Some(30);
        let mut old = set_of(&good, 2, 2, 1);
        old.metadata
            .annotations
            .insert(GOOD_ANNOTATION.into(), "true".into());
        let mut new = set_of(&d, 1, 0, 2);
        // as the controller left it: sizes, and the deployment's annotations copied
        for (k, v) in [
            (DESIRED_REPLICAS, "2"),
            (MAX_REPLICAS, "3"),
            (AUTO_ROLLBACK_ANNOTATION, "true"),
        ] {
            new.metadata.annotations.insert(k.into(), v.into());
        }
        let sets = [old, new];
        let t0 = Utc::now();
        let first = reconcile(&d, &sets, t0);
        assert!(!first.stalled);
        assert_eq!(reason(&first), "ReplicaSetUpdated");
        d.status = Some(first.status);
        let later = reconcile(&d, &sets, t0 + chrono::Duration::seconds(31));
        assert!(later.stalled, "{:?}", later.actions);
        assert_eq!(reason(&later), "ProgressDeadlineExceeded");
        let (rev, template) = later.rollback.expect("rolls back");
        assert_eq!(rev, 1);
        assert_eq!(template["spec"]["containers"][0]["image"], "img:1");
        assert!(template["metadata"]["labels"].get(HASH_LABEL).is_none());
        // reported once: the pass after says it timed out, but is not newly stalled
        d.status = Some(later.status);
        let again = reconcile(&d, &sets, t0 + chrono::Duration::seconds(40));
        assert!(!again.stalled);
        assert_eq!(reason(&again), "ProgressDeadlineExceeded");
        // without the annotation: the condition, no rollback
        d.metadata.annotations.remove(AUTO_ROLLBACK_ANNOTATION);
        d.status = None;
        let _ = reconcile(&d, &sets, t0);
        assert!(reconcile(&d, &sets, t0).rollback.is_none());
    }

    #[test]
    fn paused_deployments_scale_but_do_not_roll_out() {
        let v1 = deployment(2, "img:1");
        let mut d = deployment(5, "img:2");
        d.spec.paused = Some(true);
        let old = set_of(&v1, 2, 2, 1);
        let plan = reconcile(&d, std::slice::from_ref(&old), Utc::now());
        assert_eq!(scales(&plan), [(old.metadata.name().to_string(), 5)]);
        assert_eq!(reason(&plan), "DeploymentPaused");
        assert_eq!(plan.status.conditions[1].status, "Unknown");
    }

    #[test]
    fn pods_a_deployment_owned_directly_go_once_its_replica_set_completed() {
        let mut d = deployment(1, "img:1");
        let mut legacy = Pod::default();
        legacy.metadata.name = Some("web-old".into());
        legacy
            .metadata
            .owner_references
            .push(crate::controllers::controller_ref(
                "apps/v1",
                "Deployment",
                &d.metadata,
            ));
        let mut of_set = legacy.clone();
        of_set.metadata.owner_references[0].kind = "ReplicaSet".into();
        let pods = [legacy, of_set];
        assert!(
            legacy_pods(&pods, std::slice::from_ref(&d)).is_empty(),
            "not complete yet"
        );
        let plan = reconcile(&d, &[set_of(&d, 1, 1, 1)], Utc::now());
        d.status = Some(plan.status);
        let gone = legacy_pods(&pods, std::slice::from_ref(&d));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].metadata.name(), "web-old");
    }

    #[test]
    fn a_huge_scale_is_a_single_size_change() {
        let d = deployment(i64::from(i32::MAX), "img:1");
        let plan = reconcile(&d, &[set_of(&d, 3, 3, 1)], Utc::now());
        assert_eq!(scales(&plan)[0].1, i64::from(i32::MAX));
        assert_eq!(plan.actions.len(), 2, "{:?}", plan.actions);
    }
}
