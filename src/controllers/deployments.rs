//! The Deployment reconciler, as a pure function: from a deployment and the pods it owns, which
//! pods to create and delete, and its status. Pods carry the hash of the template they were made
//! from (`pod-template-hash`); a template change rolls out within `maxSurge`/`maxUnavailable`:
//! new pods are added up to `replicas + maxSurge`, and an old pod is removed only while at least
//! `replicas - maxUnavailable` pods stay ready.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::core::Pod;
use crate::api::meta::{Condition, IntOrString};
use crate::api::workloads::{ControllerRevision, Deployment, DeploymentStatus};

pub const HASH_LABEL: &str = "pod-template-hash";
/// On a Deployment: return to the last good revision when a rollout exceeds its deadline.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "orkops.io/auto-rollback";
/// On a ControllerRevision: this template once rolled out completely.
pub const GOOD_ANNOTATION: &str = "orkops.io/rollout-complete";
/// Copied from the Deployment onto its revision, shown by `rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `count` pods from the current template (`pod` is the pod object); `count` is at
    /// most [`BURST`](super::BURST), whatever `replicas` asks, and the executor creates them in
    /// slow-start batches.
    Create { pod: Value, count: usize },
    /// Delete a pod (name) that is surplus or of an old template.
    Delete(String),
    /// Record the current template as a new revision (the value is a ControllerRevision).
    CreateRevision(Value),
    /// Renumber a revision (a rollback makes an old template current again) or mark it good
    /// (it rolled out completely).
    SetRevision {
        name: String,
        revision: i64,
        good: bool,
    },
    /// Drop a revision beyond `revisionHistoryLimit`.
    DeleteRevision(String),
}

/// A short, stable hash of a pod template.
pub fn template_hash(template: &Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex::encode(&d.as_ref()[..5])
}

fn ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn alive(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Removal order: unscheduled, then not ready, then the newest first.
fn removal_order(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| {
        (
            p.spec.node_name.is_some(),
            ready(p),
            std::cmp::Reverse(p.metadata.creation_timestamp),
        )
    });
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: DeploymentStatus,
    /// The rollout exceeded its progress deadline in this pass.
    pub stalled: bool,
    /// Roll back to this (revision, template): the deadline passed and auto-rollback is on.
    pub rollback: Option<(i64, Value)>,
}

/// `owned`: the pods whose controller is this deployment (including ones being deleted).
pub fn reconcile(
    d: &Deployment,
    owned: &[Pod],
    revisions: &[ControllerRevision],
    now: DateTime<Utc>,
) -> Plan {
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    let template = serde_json::to_value(&d.spec.template).unwrap_or(Value::Null);
    let hash = template_hash(&template);
    let live: Vec<&Pod> = owned.iter().filter(|p| alive(p)).collect();
    let (mut new, mut old): (Vec<&Pod>, Vec<&Pod>) = live
        .iter()
        .partition(|p| p.metadata.labels.get(HASH_LABEL) == Some(&hash));
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let recreate = d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
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
        .max(0);
    let surge = if surge == 0 && max_unavailable == 0 {
        1
    } else {
        surge
    };
    let mut actions = Vec::new();
    let paused = d.spec.paused == Some(true);
    if !paused {
        let new_ready = new.iter().filter(|p| ready(p)).count() as i64;
        let old_ready = old.iter().filter(|p| ready(p)).count() as i64;
        let create = |actions: &mut Vec<Action>, missing: i64| {
            if missing > 0 {
                actions.push(Action::Create {
                    pod: pod_for(d, &template, &hash),
                    count: super::burst(missing),
                });
            }
        };
        if recreate && !old.is_empty() {
            for p in old.iter().take(super::BURST) {
                actions.push(Action::Delete(p.metadata.name().to_string()));
            }
        } else if old.is_empty() || recreate {
            let have = new.len() as i64;
            if have < replicas {
                create(&mut actions, replicas - have);
            } else if have > replicas {
                removal_order(&mut new);
                for p in new.iter().take(super::burst(have - replicas)) {
                    actions.push(Action::Delete(p.metadata.name().to_string()));
                }
            }
        } else {
            // rolling update: grow the new set within the surge...
            let total = (new.len() + old.len()) as i64;
            let room = (replicas + surge - total)
                .min(replicas - new.len() as i64)
                .max(0);
            create(&mut actions, room);
            // ...and shrink the old one while enough pods stay ready
            let min_ready = replicas - max_unavailable;
            let mut removable = (new_ready + old_ready - min_ready).max(0);
            removal_order(&mut old);
            let surplus_old = (total - replicas - room.min(0)).max(0);
            let doomed = old.iter().filter(|p| {
                // a pod that is not ready costs no availability
                if !ready(p) {
                    true
                } else if removable > 0 && (surplus_old > 0 || new_ready > 0) {
                    removable -= 1;
                    true
                } else {
                    false
                }
            });
            for p in doomed.take(super::BURST) {
                actions.push(Action::Delete(p.metadata.name().to_string()));
            }
        }
    }
    let updated = new.len() as i64;
    let ready_all = live.iter().filter(|p| ready(p)).count() as i64;
    let total = live.len() as i64;
    let complete = updated == replicas && total == replicas && ready_all == replicas;
    let prev = d.status.clone().unwrap_or_default();
    let name = d.metadata.name();
    let available = ready_all >= replicas - max_unavailable;
    let prev_cond = |t: &str| prev.conditions.iter().find(|c| c.type_ == t).cloned();
    let condition = |type_: &str, ok: bool, reason: &str, message: String, touched: bool| {
        let status = if ok { "True" } else { "False" };
        let old = prev_cond(type_);
        let same = old.as_ref().is_some_and(|c| c.status == status);
        Condition {
            type_: type_.into(),
            status: status.into(),
            last_transition_time: Some(
                old.as_ref()
                    .filter(|_| same)
                    .and_then(|c| c.last_transition_time)
                    .unwrap_or(now),
            ),
            last_update_time: Some(if touched || !same {
                now
            } else {
                old.and_then(|c| c.last_update_time).unwrap_or(now)
            }),
            reason: Some(reason.into()),
            message: Some(message),
            ..Default::default()
        }
    };
    // progress: the counts moved, or pods were created or deleted in this pass
    let moved = (prev.updated_replicas, prev.ready_replicas, prev.replicas)
        != (updated, ready_all, total)
        || !actions.is_empty()
        || prev.observed_generation != d.metadata.generation;
    let last_progress = prev_cond("Progressing")
        .and_then(|c| c.last_update_time)
        .unwrap_or(now);
    let deadline = d.spec.progress_deadline_seconds.unwrap_or(600);
    let stalled =
        !complete && !moved && !paused && now - last_progress > chrono::Duration::seconds(deadline);
    let already_stalled = prev_cond("Progressing")
        .is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        && !moved;
    let progressing = if complete {
        condition(
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            format!("deployment {name:?} has successfully progressed"),
            moved,
        )
    } else if stalled || already_stalled {
        condition("Progressing", false, "ProgressDeadlineExceeded", format!("deployment {name:?} has timed out progressing ({deadline}s without progress): {updated} of {replicas} updated, {ready_all} ready"), false)
    } else {
        condition(
            "Progressing",
            true,
            "ReplicaSetUpdated",
            format!("deployment {name:?} is progressing: {updated} of {replicas} updated"),
            moved,
        )
    };
    let newly_stalled = stalled && !already_stalled;
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: total,
        updated_replicas: updated,
        ready_replicas: ready_all,
        available_replicas: ready_all,
        unavailable_replicas: (replicas - ready_all).max(0),
        conditions: vec![
            condition(
                "Available",
                available,
                if available {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                format!("{ready_all} of {replicas} replicas ready"),
                false,
            ),
            progressing,
        ],
    };
    // history: one ControllerRevision per template, numbered in rollout order
    let max_rev = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let current = revisions
        .iter()
        .find(|r| r.metadata.labels.get(HASH_LABEL) == Some(&hash));
    match current {
        None => actions.push(Action::CreateRevision(revision_for(
            d,
            &template,
            &hash,
            max_rev + 1,
        ))),
        Some(r) if r.revision < max_rev => actions.push(Action::SetRevision {
            name: r.metadata.name().into(),
            revision: max_rev + 1,
            good: false,
        }),
        Some(r)
            if complete
                && r.metadata
                    .annotations
                    .get(GOOD_ANNOTATION)
                    .map(String::as_str)
                    != Some("true") =>
        {
            actions.push(Action::SetRevision {
                name: r.metadata.name().into(),
                revision: r.revision,
                good: true,
            })
        }
        _ => {}
    }
    let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let mut old_revs: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| r.metadata.labels.get(HASH_LABEL) != Some(&hash))
        .collect();
    old_revs.sort_by_key(|r| std::cmp::Reverse(r.revision));
    for r in old_revs.iter().skip(limit) {
        actions.push(Action::DeleteRevision(r.metadata.name().into()));
    }
    // automatic rollback (orkops): back to the newest revision that once rolled out completely
    let mut rollback = None;
    if newly_stalled
        && d.metadata
            .annotations
            .get(AUTO_ROLLBACK_ANNOTATION)
            .map(String::as_str)
            == Some("true")
    {
        rollback = old_revs
            .iter()
            .find(|r| {
                r.metadata
                    .annotations
                    .get(GOOD_ANNOTATION)
                    .map(String::as_str)
                    == Some("true")
            })
            .map(|r| (r.revision, r.data.clone()));
    }
    Plan {
        actions,
        status,
        stalled: newly_stalled,
        rollback,
    }
}

fn revision_for(d: &Deployment, template: &Value, hash: &str, revision: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {
            "name": format!("{}-{hash}", d.metadata.name()),
            "namespace": d.metadata.namespace(),
            "labels": {HASH_LABEL: hash},
            "annotations": d.metadata.annotations.get(CHANGE_CAUSE).map(|c| json!({CHANGE_CAUSE: c})).unwrap_or(json!({})),
            "ownerReferences": [super::controller_ref("apps/v1", "Deployment", &d.metadata)],
        },
        "data": template,
        "revision": revision,
    })
}

fn pod_for(d: &Deployment, template: &Value, hash: &str) -> Value {
    super::pod_from_template(
        template,
        format!("{}-{hash}-", d.metadata.name()),
        d.metadata.namespace(),
        &[(HASH_LABEL, hash)],
        super::controller_ref("apps/v1", "Deployment", &d.metadata),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, PodStatus};

    fn deployment(replicas: i64, image: &str) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.namespace = Some("default".into());
        d.metadata.uid = Some("d-uid".into());
        d.spec.replicas = Some(replicas);
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

    fn pods_from(d: &Deployment, n: usize, is_ready: bool, prefix: &str) -> Vec<Pod> {
        let template = serde_json::to_value(&d.spec.template).unwrap();
        let hash = template_hash(&template);
        (0..n)
            .map(|i| {
                let mut p: Pod = serde_json::from_value(pod_for(d, &template, &hash)).unwrap();
                p.metadata.name = Some(format!("{prefix}{i}"));
                p.spec.node_name = Some("n1".into());
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: vec![Condition {
                        type_: "Ready".into(),
                        status: if is_ready { "True" } else { "False" }.into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                p
            })
            .collect()
    }

    fn revision(d: &Deployment, n: i64, good: bool) -> ControllerRevision {
        let template = serde_json::to_value(&d.spec.template).unwrap();
        let mut r: ControllerRevision =
            serde_json::from_value(revision_for(d, &template, &template_hash(&template), n))
                .unwrap();
        if good {
            r.metadata
                .annotations
                .insert(GOOD_ANNOTATION.into(), "true".into());
        }
        r
    }

    #[test]
    fn a_stalled_rollout_says_so_and_rolls_back_when_asked() {
        let good = deployment(2, "img:1");
        let mut d = deployment(2, "img:bad");
        d.metadata
            .annotations
            .insert(AUTO_ROLLBACK_ANNOTATION.into(), "true".into());
        d.spec.progress_deadline_seconds = Some(30);
        let t0 = Utc::now();
        let mut pods = pods_from(&good, 2, true, "old");
        pods.extend(pods_from(&d, 1, false, "new"));
        let revs = [revision(&good, 1, true), revision(&d, 2, false)];
        let first = reconcile(&d, &pods, &revs, t0);
        assert!(!first.stalled);
        d.status = Some(first.status);
        let later = reconcile(&d, &pods, &revs, t0 + chrono::Duration::seconds(31));
        assert!(later.stalled);
        assert_eq!(
            later.status.conditions[1].reason.as_deref(),
            Some("ProgressDeadlineExceeded")
        );
        let (rev, template) = later.rollback.expect("rolls back");
        assert_eq!(rev, 1);
        assert_eq!(template["spec"]["containers"][0]["image"], "img:1");
        // without the annotation: the condition, no rollback
        d.metadata.annotations.clear();
        assert!(
            reconcile(&d, &pods, &revs, t0 + chrono::Duration::seconds(31))
                .rollback
                .is_none()
        );
    }

    #[test]
    fn an_old_template_coming_back_gets_the_next_revision_number() {
        let v1 = deployment(1, "img:1");
        let v2 = deployment(1, "img:2");
        let revs = [revision(&v1, 1, true), revision(&v2, 2, true)];
        let plan = reconcile(&v1, &pods_from(&v1, 1, true, "p"), &revs, Utc::now());
        assert!(
            plan.actions
                .iter()
                .any(|a| matches!(a, Action::SetRevision { revision: 3, .. })),
            "{:?}",
            plan.actions
        );
    }

    fn counts(a: &[Action]) -> (usize, usize) {
        (
            a.iter()
                .map(|x| match x {
                    Action::Create { count, .. } => *count,
                    _ => 0,
                })
                .sum(),
            a.iter().filter(|x| matches!(x, Action::Delete(_))).count(),
        )
    }

    #[test]
    fn a_huge_scale_is_worked_through_one_burst_per_pass() {
        use crate::controllers::BURST;
        let d = deployment(i64::from(i32::MAX), "img:1");
        let plan = reconcile(&d, &pods_from(&d, 3, true, "p"), &[], Utc::now());
        assert_eq!(counts(&plan.actions), (BURST, 0));
        let creates = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::Create { .. }))
            .count();
        assert_eq!(creates, 1, "one action carries the count, not one per pod");
        let d = deployment(0, "img:1");
        let plan = reconcile(&d, &pods_from(&d, BURST + 7, false, "p"), &[], Utc::now());
        assert_eq!(counts(&plan.actions), (0, BURST));
        let mut rolling = deployment(2000, "img:2");
        rolling.spec.strategy = Some(crate::api::workloads::DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(crate::api::workloads::RollingUpdateDeployment {
                max_surge: Some(IntOrString::String("100%".into())),
                max_unavailable: Some(IntOrString::String("100%".into())),
            }),
        });
        let old = pods_from(&deployment(2000, "img:1"), 2000, false, "o");
        let plan = reconcile(&rolling, &old, &[], Utc::now());
        assert_eq!(counts(&plan.actions), (BURST, BURST));
    }

    #[test]
    fn scales_up_and_down() {
        let d = deployment(5, "img:1");
        let plan = reconcile(&d, &[], &[], Utc::now());
        assert_eq!(counts(&plan.actions), (5, 0));
        if let Action::Create { pod: p, .. } = &plan.actions[0] {
            assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "d-uid");
            assert_eq!(p["metadata"]["labels"]["app"], "web");
            assert!(p["metadata"]["generateName"]
                .as_str()
                .unwrap()
                .starts_with("web-"));
        }
        let pods = pods_from(&d, 8, true, "p");
        assert_eq!(
            counts(&reconcile(&d, &pods, &[], Utc::now()).actions),
            (0, 3)
        );
        let done = reconcile(&d, &pods[..5], &[], Utc::now());
        assert_eq!(counts(&done.actions), (0, 0));
        assert!(matches!(&done.actions[..], [Action::CreateRevision(r)] if r["revision"] == 1));
        assert_eq!(done.status.ready_replicas, 5);
    }

    #[test]
    fn a_rolling_update_surges_one_and_removes_old_only_when_replacements_are_ready() {
        let old_d = deployment(3, "img:1");
        let old = pods_from(&old_d, 3, true, "old");
        let d = deployment(3, "img:2");
        // step 1: one new pod (surge 1), no old pod removed (nothing new is ready yet)
        let plan = reconcile(&d, &old, &[], Utc::now());
        assert_eq!(counts(&plan.actions), (1, 0));
        // step 2: the new pod exists but is not ready: wait
        let mut pods = old.clone();
        pods.extend(pods_from(&d, 1, false, "new"));
        assert_eq!(
            counts(&reconcile(&d, &pods, &[], Utc::now()).actions),
            (0, 0)
        );
        // step 3: it is ready: one old pod goes
        let mut pods = old.clone();
        pods.extend(pods_from(&d, 1, true, "new"));
        assert_eq!(
            counts(&reconcile(&d, &pods, &[], Utc::now()).actions),
            (0, 1)
        );
        // step 4: after that, one more new pod
        let mut pods: Vec<Pod> = old[..2].to_vec();
        pods.extend(pods_from(&d, 1, true, "new"));
        assert_eq!(
            counts(&reconcile(&d, &pods, &[], Utc::now()).actions),
            (1, 0)
        );
        // the end: all new and ready, nothing to do, progressing complete
        let done = reconcile(&d, &pods_from(&d, 3, true, "new"), &[], Utc::now());
        assert_eq!(counts(&done.actions), (0, 0));
        assert_eq!(done.status.updated_replicas, 3);
        assert_eq!(
            done.status.conditions[1].reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
    }
}
