//! The ReplicaSet controller: a pure reconciler from a replica set and the pods it controls to
//! the pods to create and delete and its status, and the pass that applies it. As Kubernetes'
//! ReplicaSet controller: at most [`BURST`](super::BURST) creates or deletes per object and
//! pass, surplus pods removed unscheduled first, then pending, then not ready, then the ones
//! ready for the shortest time, then the newest; a pod is available once it has been ready for
//! `minReadySeconds`. A `v1` ReplicationController is run by the same code, seen as a replica
//! set whose selector is its equality selector (`ReplicationController::as_replica_set`); its
//! pods name it as their controller.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::runtime::{split_key, Action as Next, Ctx};
use super::ApiError;
use crate::api::core::Pod;
use crate::api::labels::Selector;
use crate::api::meta::Condition;
use crate::api::workloads::{ReplicaSet, ReplicaSetStatus};
use crate::api::{About, Kind};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `count` pods (`pod` is the pod object, from the template); `count` ≤ BURST.
    Create { pod: Value, count: usize },
    /// Delete a surplus pod (name).
    Delete(String),
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: ReplicaSetStatus,
}

pub(super) fn ready_condition(p: &Pod) -> Option<&Condition> {
    let s = p.status.as_ref()?;
    if s.phase.as_deref() != Some("Running") {
        return None;
    }
    s.conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
}

/// Ready for at least `min_ready` seconds at `now` (a pod whose Ready condition carries no
/// transition time counts as ready since forever).
pub(super) fn available(p: &Pod, min_ready: i64, now: DateTime<Utc>) -> bool {
    ready_condition(p).is_some_and(|c| {
        min_ready <= 0
            || c.last_transition_time
                .is_none_or(|t| now - t >= chrono::Duration::seconds(min_ready))
    })
}

/// Not being deleted and not finished: the pods that count towards `replicas`.
pub fn active(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Kubernetes' deletion ranking: the pod first in this order costs the least to remove.
fn removal_order(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| {
        let phase = match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Running") => 2,
            _ => 1,
        };
        let ready_since = ready_condition(p).and_then(|c| c.last_transition_time);
        let restarts: i64 = p
            .status
            .as_ref()
            .map(|s| s.container_statuses.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        (
            p.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()),
            phase,
            ready_since.is_some(),
            std::cmp::Reverse(ready_since),
            std::cmp::Reverse(restarts),
            std::cmp::Reverse(p.metadata.creation_timestamp),
        )
    });
}

/// `owned`: the pods whose controller is this replica set (any state). Pods its selector no
/// longer matches are not counted.
pub fn reconcile<P: std::borrow::Borrow<Pod>>(
    rs: &ReplicaSet,
    owned: &[P],
    now: DateTime<Utc>,
) -> Plan {
    reconcile_as(Kind::ReplicaSet, rs, owned, now)
}

/// [`reconcile`] for a set of `kind` (ReplicaSet, or a ReplicationController seen as one): the
/// kind its new pods name as their controller.
pub fn reconcile_as<P: std::borrow::Borrow<Pod>>(
    kind: Kind,
    rs: &ReplicaSet,
    owned: &[P],
    now: DateTime<Utc>,
) -> Plan {
    let replicas = rs.spec.replicas.unwrap_or(1).max(0);
    let selector = Selector::from_label_selector(&rs.spec.selector).unwrap_or_default();
    let mut live: Vec<&Pod> = owned
        .iter()
        .map(|p| -> &Pod { p.borrow() })
        .filter(|p| active(p) && !selector.is_empty() && selector.matches(&p.metadata.labels))
        .collect();
    let have = live.len() as i64;
    let mut actions = Vec::new();
    if have < replicas {
        let template = serde_json::to_value(&rs.spec.template).unwrap_or(Value::Null);
        actions.push(Action::Create {
            pod: super::pod_from_template(
                &template,
                format!("{}-", rs.metadata.name()),
                rs.metadata.namespace(),
                &[],
                super::controller_ref(kind.api_version(), kind.name(), &rs.metadata),
            ),
            count: super::burst(replicas - have),
        });
    } else if have > replicas {
        removal_order(&mut live);
        for p in live.iter().take(super::burst(have - replicas)) {
            actions.push(Action::Delete(p.metadata.name().to_string()));
        }
    }
    let template_labels = &rs.spec.template.metadata.labels;
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let prev = rs.status.clone().unwrap_or_default();
    let status = ReplicaSetStatus {
        replicas: have,
        fully_labeled_replicas: live
            .iter()
            .filter(|p| {
                template_labels
                    .iter()
                    .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
            })
            .count() as i64,
        ready_replicas: live.iter().filter(|p| ready_condition(p).is_some()).count() as i64,
        available_replicas: live.iter().filter(|p| available(p, min_ready, now)).count() as i64,
        observed_generation: rs.metadata.generation,
        conditions: prev.conditions,
    };
    Plan { actions, status }
}

/// The `ReplicaFailure` condition after a pass: set while creates fail, dropped once they work.
fn with_failure(
    mut status: ReplicaSetStatus,
    failure: Option<String>,
    now: DateTime<Utc>,
) -> ReplicaSetStatus {
    match failure {
        Some(message) => {
            let since = status
                .conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
                .and_then(|c| c.last_transition_time)
                .unwrap_or(now);
            status.conditions.retain(|c| c.type_ != "ReplicaFailure");
            status.conditions.push(Condition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                last_transition_time: Some(since),
                reason: Some("FailedCreate".into()),
                message: Some(message),
                ..Default::default()
            });
        }
        None => status.conditions.retain(|c| c.type_ != "ReplicaFailure"),
    }
    status
}

/// Reconciles replica set `key` (`namespace/name`) from the caches: creates and deletes its
/// pods, writes its status. While pods wait out `minReadySeconds` it comes back every second
/// (availability comes with time, not with a change).
pub(super) async fn reconcile_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    let (ns, name) = split_key(key);
    match ctx.caches.replica_sets.get(ns, name) {
        Some(rs) => reconcile_set(ctx, Kind::ReplicaSet, &rs).await,
        None => Ok(Next::await_change()),
    }
}

/// Reconciles replication controller `key` (`namespace/name`) as a replica set.
pub(super) async fn reconcile_controller_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    let (ns, name) = split_key(key);
    match ctx.caches.replication_controllers.get(ns, name) {
        Some(rc) => reconcile_set(ctx, Kind::ReplicationController, &rc.as_replica_set()).await,
        None => Ok(Next::await_change()),
    }
}

async fn reconcile_set(ctx: &Ctx, kind: Kind, rs: &ReplicaSet) -> Result<Next, ApiError> {
    let api = &ctx.api;
    let now = Utc::now();
    let source = match kind {
        Kind::ReplicationController => "orkops-replication-controller",
        _ => "orkops-replicaset-controller",
    };
    {
        if rs.metadata.deletion_timestamp.is_some() {
            return Ok(Next::await_change());
        }
        let uid = rs.metadata.uid.as_deref().unwrap_or("");
        let owned = ctx.caches.pods.owned_by(uid);
        let (ns, name) = (rs.metadata.namespace(), rs.metadata.name());
        let about = || About {
            ns,
            kind,
            name,
            uid: Some(uid),
        };
        let plan = reconcile_as(kind, rs, &owned, now);
        let mut failure = None;
        let mut create_error = None;
        let mut deleted = Vec::new();
        for a in plan.actions {
            match a {
                Action::Create { pod, count } => {
                    let (n, failed) =
                        super::create_in_batches(api, ns, &pod, count, (kind, name)).await;
                    if n > 0 {
                        api.event(
                            about(),
                            "Normal",
                            "SuccessfulCreate",
                            &format!("created {n} pod(s)"),
                            source,
                        )
                        .await;
                    }
                    if let Some(e) = failed {
                        let message = format!("cannot create a pod: {e}");
                        api.event(about(), "Warning", "FailedCreate", &message, source)
                            .await;
                        failure = Some(message);
                        create_error = Some(e);
                    }
                }
                Action::Delete(pod) => {
                    api.delete(Kind::Pod, Some(ns), &pod, None).await?;
                    deleted.push(pod);
                }
            }
        }
        if !deleted.is_empty() {
            let message = format!("deleted pod(s): {}", deleted.join(", "));
            api.event(about(), "Normal", "SuccessfulDelete", &message, source)
                .await;
        }
        let status = with_failure(plan.status, failure, now);
        let waiting = rs.spec.min_ready_seconds.unwrap_or(0) > 0
            && status.available_replicas < status.ready_replicas;
        super::write_status(api, kind, ns, name, rs.status.as_ref(), &status).await?;
        if let Some(e) = create_error {
            // back off on this replica set alone, and try again
            return Err(e);
        }
        if waiting {
            return Ok(Next::requeue(std::time::Duration::from_secs(1)));
        }
    }
    Ok(Next::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, PodStatus};
    use crate::controllers::BURST;

    fn replica_set(replicas: i64) -> ReplicaSet {
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some("web-abc".into());
        rs.metadata.namespace = Some("default".into());
        rs.metadata.uid = Some("rs-uid".into());
        rs.metadata.generation = Some(2);
        rs.spec.replicas = Some(replicas);
        rs.spec
            .selector
            .match_labels
            .insert("app".into(), "web".into());
        rs.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        rs.spec.template.spec.containers.push(Container {
            name: "c".into(),
            image: "img:1".into(),
            ..Default::default()
        });
        rs
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, ready_since: Option<DateTime<Utc>>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels.insert("app".into(), "web".into());
        p.spec.node_name = node.map(str::to_string);
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready_since.is_some() {
                    "True"
                } else {
                    "False"
                }
                .into(),
                last_transition_time: ready_since,
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn counts(a: &[Action]) -> (usize, Vec<&str>) {
        let created = a
            .iter()
            .map(|x| match x {
                Action::Create { count, .. } => *count,
                _ => 0,
            })
            .sum();
        let deleted = a
            .iter()
            .filter_map(|x| match x {
                Action::Delete(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        (created, deleted)
    }

    #[test]
    fn creates_what_is_missing_in_one_action_owned_by_the_set() {
        let rs = replica_set(3);
        let now = Utc::now();
        let plan = reconcile(&rs, &[pod("a", Some("n1"), "Running", Some(now))], now);
        assert_eq!(counts(&plan.actions), (2, vec![]));
        let Action::Create { pod, .. } = &plan.actions[0] else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(pod["metadata"]["generateName"], "web-abc-");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(plan.status.replicas, 1);
        assert_eq!(plan.status.observed_generation, Some(2));
        let huge = reconcile::<Pod>(&replica_set(i64::from(i32::MAX)), &[], now);
        assert_eq!(counts(&huge.actions).0, BURST);
    }

    #[test]
    fn a_replication_controller_is_run_as_a_replica_set_of_its_equality_selector() {
        let rc: crate::api::workloads::ReplicationController =
            serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid"},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}))
            .unwrap();
        let now = Utc::now();
        let plan = reconcile_as(
            Kind::ReplicationController,
            &rc.as_replica_set(),
            &[pod("a", Some("n1"), "Running", Some(now))],
            now,
        );
        assert_eq!(counts(&plan.actions), (1, vec![]));
        let Action::Create { pod, .. } = &plan.actions[0] else {
            panic!("{:?}", plan.actions)
        };
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["apiVersion"], &owner["kind"], &owner["uid"]),
            (
                &"v1".into(),
                &"ReplicationController".into(),
                &"rc-uid".into()
            )
        );
        assert_eq!(plan.status.ready_replicas, 1);
    }

    #[test]
    fn surplus_goes_unscheduled_then_pending_then_not_ready_then_newest_ready() {
        let now = Utc::now();
        let long_ago = now - chrono::Duration::seconds(600);
        let pods = vec![
            pod("old-ready", Some("n1"), "Running", Some(long_ago)),
            pod("new-ready", Some("n1"), "Running", Some(now)),
            pod("not-ready", Some("n1"), "Running", None),
            pod("pending", Some("n1"), "Pending", None),
            pod("unscheduled", None, "Pending", None),
        ];
        let order = |n: i64| {
            let plan = reconcile(&replica_set(n), &pods, now);
            counts(&plan.actions)
                .1
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(order(4), ["unscheduled"]);
        assert_eq!(
            order(0),
            [
                "unscheduled",
                "pending",
                "not-ready",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn status_counts_ready_available_after_min_ready_and_ignores_leavers() {
        let now = Utc::now();
        let mut rs = replica_set(4);
        rs.spec.min_ready_seconds = Some(30);
        let mut gone = pod("gone", Some("n1"), "Running", Some(now));
        gone.metadata.deletion_timestamp = Some(now);
        let mut other = pod("relabelled", Some("n1"), "Running", Some(now));
        other.metadata.labels.insert("app".into(), "db".into());
        let pods = vec![
            pod(
                "a",
                Some("n1"),
                "Running",
                Some(now - chrono::Duration::seconds(60)),
            ),
            pod(
                "b",
                Some("n1"),
                "Running",
                Some(now - chrono::Duration::seconds(5)),
            ),
            pod("done", Some("n1"), "Succeeded", None),
            gone,
            other,
        ];
        let plan = reconcile(&rs, &pods, now);
        assert_eq!(plan.status.replicas, 2);
        assert_eq!(plan.status.fully_labeled_replicas, 2);
        assert_eq!(plan.status.ready_replicas, 2);
        assert_eq!(plan.status.available_replicas, 1);
        assert_eq!(counts(&plan.actions), (2, vec![]));
        let failing = with_failure(plan.status, Some("quota".into()), now);
        assert_eq!(
            failing.conditions[0].reason.as_deref(),
            Some("FailedCreate")
        );
        assert!(with_failure(failing, None, now).conditions.is_empty());
    }
}
