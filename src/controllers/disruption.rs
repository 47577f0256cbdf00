//! The disruption controller: keeps each PodDisruptionBudget's status — expected pods,
//! desired and current healthy, disruptions allowed, the `DisruptionAllowed` condition — in
//! step with the pods it selects, as Kubernetes' does. The eviction handler spends from that
//! status and records the pods it let go in `disruptedPods`; this controller drops them once
//! they are being deleted, or after two minutes if they never were.
//!
//! With `maxUnavailable`, or `minAvailable` as a percentage, the expected count is the scale
//! of the pods' controllers (a ReplicaSet's Deployment counts, not the ReplicaSet); pods with
//! no controller do not count, and a pod whose controller has no scale (a Job) makes the
//! budget fail safe (no disruption allowed, `SyncFailed`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::runtime::{split_key, Action as Next, Caches, Ctx};
use super::ApiError;
use crate::api::core::Pod;
use crate::api::meta::{IntOrString, MetaCondition};
use crate::api::policy::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use crate::api::Kind;
use crate::apiserver::eviction::{pod_ready, selects};

/// How long an eviction may take to show as a deletion before its pod counts again.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

/// The scale of a pod's controller: `Ok(Some((uid, replicas)))`, `Ok(None)` for a pod with
/// no controller, `Err` for a controller whose scale is unknown.
pub type ScaleOf<'a> = dyn Fn(&Pod) -> Result<Option<(String, i64)>, String> + 'a;

/// Sets `DisruptionAllowed` from `disruptionsAllowed` (kube's UpdateDisruptionAllowedCondition).
pub fn set_allowed_condition(s: &mut PodDisruptionBudgetStatus, now: DateTime<Utc>) {
    let (status, reason) = if s.disruptions_allowed > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let generation = s.observed_generation;
    set_condition(s, status, reason, String::new(), generation, now);
}

/// meta.SetStatusCondition of `DisruptionAllowed`: the transition time moves only when the
/// status does.
fn set_condition(
    s: &mut PodDisruptionBudgetStatus,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: DateTime<Utc>,
) {
    let c = match s
        .conditions
        .iter_mut()
        .find(|c| c.type_ == "DisruptionAllowed")
    {
        Some(c) => c,
        None => {
            s.conditions.push(MetaCondition {
                type_: "DisruptionAllowed".into(),
                ..Default::default()
            });
            s.conditions.last_mut().expect("just pushed")
        }
    };
    if c.status != status || c.last_transition_time.is_none() {
        c.status = status.into();
        c.last_transition_time = Some(now);
    }
    c.reason = reason.into();
    c.message = message;
    c.observed_generation = generation;
}

/// (expected pods, desired healthy) of a budget over its pods (kube's getExpectedPodCount).
fn expected_and_desired(
    b: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleOf,
) -> Result<(i64, i64), String> {
    let scale = || -> Result<i64, String> {
        let mut seen: HashMap<String, i64> = HashMap::new();
        for p in pods {
            if let Some((uid, n)) = scale_of(p)? {
                seen.insert(uid, n);
            }
        }
        Ok(seen.values().sum())
    };
    let scaled = |v: &IntOrString, total: i64| v.scaled(total, true);
    match (&b.spec.max_unavailable, &b.spec.min_available) {
        (Some(max), _) => {
            let expected = scale()?;
            let max = scaled(max, expected)?;
            Ok((expected, (expected - max).max(0)))
        }
        (None, Some(IntOrString::Int(min))) => Ok((pods.len() as i64, *min)),
        (None, Some(min)) => {
            let expected = scale()?;
            Ok((expected, scaled(min, expected)?))
        }
        (None, None) => Ok((0, 0)),
    }
}

/// The status a budget should have now, and when to look again (a disrupted pod's time runs
/// out). `Err` is a sync failure, to be written fail-safe.
pub fn desired_status(
    b: &PodDisruptionBudget,
    pods: &[&Pod],
    scale_of: &ScaleOf,
    now: DateTime<Utc>,
) -> Result<(PodDisruptionBudgetStatus, Option<Duration>), String> {
    let (expected, desired) = expected_and_desired(b, pods, scale_of)?;
    let old = b.status.clone().unwrap_or_default();
    let timeout = chrono::Duration::from_std(DELETION_TIMEOUT).unwrap_or_default();
    let mut disrupted = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let Some(at) = old.disrupted_pods.get(p.metadata.name()) else {
            continue;
        };
        let due = *at + timeout;
        if due < now {
            continue; // the eviction never became a deletion: the pod counts again
        }
        let left = (due - now).to_std().unwrap_or_default();
        recheck = Some(recheck.map_or(left, |r| r.min(left)));
        disrupted.insert(p.metadata.name().to_string(), *at);
    }
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name()))
        .filter(|p| pod_ready(p))
        .count() as i64;
    let allowed = healthy - desired;
    let mut s = PodDisruptionBudgetStatus {
        observed_generation: b.metadata.generation,
        disrupted_pods: disrupted,
        disruptions_allowed: if expected <= 0 || allowed <= 0 {
            0
        } else {
            allowed
        },
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        conditions: old.conditions,
    };
    set_allowed_condition(&mut s, now);
    Ok((s, recheck))
}

/// The fail-safe status of a budget that cannot be computed (kube's failSafe).
pub fn failed_status(
    b: &PodDisruptionBudget,
    why: &str,
    now: DateTime<Utc>,
) -> PodDisruptionBudgetStatus {
    let mut s = b.status.clone().unwrap_or_default();
    s.disruptions_allowed = 0;
    let generation = s.observed_generation;
    set_condition(
        &mut s,
        "False",
        "SyncFailed",
        why.to_string(),
        generation,
        now,
    );
    s
}

/// The scale of `p`'s controller, from the caches: a ReplicaSet's Deployment if it has one.
fn scale_in_caches(c: &Caches, p: &Pod) -> Result<Option<(String, i64)>, String> {
    let Some(r) = p
        .metadata
        .owner_references
        .iter()
        .find(|r| r.controller == Some(true))
    else {
        return Ok(None);
    };
    let ns = p.metadata.namespace();
    let missing = || format!("found no controllers for pod {:?}", p.metadata.name());
    match r.kind.as_str() {
        "ReplicaSet" => {
            let rs = c
                .replica_sets
                .get(ns, &r.name)
                .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
                .ok_or_else(missing)?;
            let owner = rs
                .metadata
                .owner_references
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment");
            if let Some(o) = owner {
                let d = c
                    .deployments
                    .get(ns, &o.name)
                    .filter(|d| d.metadata.uid.as_deref() == Some(o.uid.as_str()))
                    .ok_or_else(missing)?;
                return Ok(Some((o.uid.clone(), d.spec.replicas.unwrap_or(1))));
            }
            Ok(Some((r.uid.clone(), rs.spec.replicas.unwrap_or(1))))
        }
        "Deployment" => {
            let d = c.deployments.get(ns, &r.name).ok_or_else(missing)?;
            Ok(Some((r.uid.clone(), d.spec.replicas.unwrap_or(1))))
        }
        "StatefulSet" => {
            let s = c.stateful_sets.get(ns, &r.name).ok_or_else(missing)?;
            Ok(Some((r.uid.clone(), s.replicas())))
        }
        "ReplicationController" => {
            let rc = c
                .replication_controllers
                .get(ns, &r.name)
                .ok_or_else(missing)?;
            Ok(Some((r.uid.clone(), rc.spec.replicas.unwrap_or(1))))
        }
        _ => Err(missing()),
    }
}

fn same(a: &PodDisruptionBudgetStatus, b: &PodDisruptionBudgetStatus) -> bool {
    // conditions compared without their times: a time alone is no change
    let strip = |s: &PodDisruptionBudgetStatus| {
        let mut s = s.clone();
        s.conditions
            .iter_mut()
            .for_each(|c| c.last_transition_time = None);
        s
    };
    strip(a) == strip(b)
}

/// Reconciles one budget (`ns/name`) from the caches.
pub(super) async fn reconcile_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    let (ns, name) = split_key(key);
    let Some(b) = ctx.caches.pdbs.get(ns, name) else {
        return Ok(Next::await_change());
    };
    let now = Utc::now();
    let pods: Vec<std::sync::Arc<Pod>> = ctx
        .caches
        .pods
        .list()
        .into_iter()
        .filter(|p| selects(&b, p))
        .collect();
    let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let scale_of = |p: &Pod| scale_in_caches(&ctx.caches, p);
    let (status, recheck) = match desired_status(&b, &pods, &scale_of, now) {
        Ok(r) => r,
        Err(why) => (failed_status(&b, &why, now), None),
    };
    if b.status.as_ref().is_none_or(|old| !same(old, &status)) {
        let mut body = serde_json::to_value(&*b).map_err(|e| ApiError::Internal(e.to_string()))?;
        body["status"] =
            serde_json::to_value(&status).map_err(|e| ApiError::Internal(e.to_string()))?;
        // at the revision read: an eviction that spent from the budget meanwhile wins, and
        // the budget is reconciled again from its new status
        ctx.api
            .replace_status_at(Kind::PodDisruptionBudget, Some(ns), name, body)
            .await?;
    }
    Ok(recheck.map_or_else(Next::await_change, Next::requeue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::{Condition, LabelSelector};

    fn pod(name: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.labels.insert("app".into(), "web".into());
        p.status = Some(crate::api::core::PodStatus {
            phase: Some("Running".into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    fn budget(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        let mut b = PodDisruptionBudget::default();
        b.metadata.name = Some("web".into());
        b.metadata.namespace = Some("default".into());
        b.metadata.generation = Some(3);
        b.spec.selector = Some(LabelSelector::default());
        b.spec.min_available = min;
        b.spec.max_unavailable = max;
        b
    }

    fn five_of_four_ready() -> Vec<Pod> {
        (0..5).map(|i| pod(&format!("web-{i}"), i != 4)).collect()
    }

    #[test]
    fn min_available_counts_the_pods_and_allows_the_healthy_surplus() {
        let pods = five_of_four_ready();
        let refs: Vec<&Pod> = pods.iter().collect();
        let none = |_: &Pod| Ok(None);
        let now = Utc::now();
        let (s, _) =
            desired_status(&budget(Some(IntOrString::Int(2)), None), &refs, &none, now).unwrap();
        assert_eq!(
            (
                s.expected_pods,
                s.desired_healthy,
                s.current_healthy,
                s.disruptions_allowed
            ),
            (5, 2, 4, 2)
        );
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.conditions[0].reason, "SufficientPods");
        let (s, _) =
            desired_status(&budget(Some(IntOrString::Int(4)), None), &refs, &none, now).unwrap();
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(
            (
                s.conditions[0].status.as_str(),
                s.conditions[0].reason.as_str()
            ),
            ("False", "InsufficientPods")
        );
    }

    #[test]
    fn max_unavailable_and_percentages_count_the_controllers_scale() {
        let pods = five_of_four_ready();
        let refs: Vec<&Pod> = pods.iter().collect();
        // all five pods belong to one deployment of 6 replicas
        let deployment = |_: &Pod| Ok(Some(("d-uid".to_string(), 6)));
        let now = Utc::now();
        let (s, _) = desired_status(
            &budget(None, Some(IntOrString::Int(1))),
            &refs,
            &deployment,
            now,
        )
        .unwrap();
        assert_eq!(
            (s.expected_pods, s.desired_healthy, s.disruptions_allowed),
            (6, 5, 0)
        );
        // 50% of 6 rounded up is 3 unavailable: 3 must stay healthy, 4 are
        let (s, _) = desired_status(
            &budget(None, Some(IntOrString::String("50%".into()))),
            &refs,
            &deployment,
            now,
        )
        .unwrap();
        assert_eq!((s.desired_healthy, s.disruptions_allowed), (3, 1));
        let (s, _) = desired_status(
            &budget(Some(IntOrString::String("50%".into())), None),
            &refs,
            &deployment,
            now,
        )
        .unwrap();
        assert_eq!((s.desired_healthy, s.disruptions_allowed), (3, 1));
        let job = |p: &Pod| {
            Err(format!(
                "found no controllers for pod {:?}",
                p.metadata.name()
            ))
        };
        let b = budget(None, Some(IntOrString::Int(1)));
        let why = desired_status(&b, &refs, &job, now).unwrap_err();
        let s = failed_status(&b, &why, now);
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.conditions[0].reason, "SyncFailed");
        assert!(s.conditions[0].message.contains("found no controllers"));
    }

    #[test]
    fn disrupted_pods_do_not_count_until_their_time_runs_out() {
        let pods = five_of_four_ready();
        let refs: Vec<&Pod> = pods.iter().collect();
        let none = |_: &Pod| Ok(None);
        let now = Utc::now();
        let mut b = budget(Some(IntOrString::Int(1)), None);
        let mut st = PodDisruptionBudgetStatus::default();
        st.disrupted_pods
            .insert("web-0".into(), now - chrono::Duration::seconds(30));
        st.disrupted_pods
            .insert("web-1".into(), now - chrono::Duration::seconds(600));
        st.disrupted_pods.insert("gone".into(), now);
        b.status = Some(st);
        let (s, recheck) = desired_status(&b, &refs, &none, now).unwrap();
        assert_eq!(s.disrupted_pods.keys().collect::<Vec<_>>(), ["web-0"]);
        assert_eq!(
            s.current_healthy, 3,
            "web-0 is on its way out; web-1's eviction expired"
        );
        let left = recheck.unwrap();
        assert!(
            left <= Duration::from_secs(90) && left >= Duration::from_secs(80),
            "{left:?}"
        );
    }
}
