//! The Job reconciler, as a pure function: keep `parallelism` pods running until `completions`
//! succeeded; fail the job when more than `backoffLimit` pods failed or when it has been active
//! longer than `activeDeadlineSeconds` (its running pods are then deleted).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::core::Pod;
use crate::api::meta::{seconds_after, Condition};
use crate::api::workloads::{Job, JobStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `count` pods like `pod`; `count` is at most [`BURST`](super::BURST) whatever
    /// `parallelism` asks, created in slow-start batches.
    Create {
        pod: Value,
        count: usize,
    },
    Delete(String),
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: JobStatus,
    /// Set when the job finished in this pass: (condition type, reason, message).
    pub finished: Option<(String, String, String)>,
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

pub fn finished(j: &Job) -> bool {
    j.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
    })
}

pub fn reconcile<P: std::borrow::Borrow<Pod>>(j: &Job, owned: &[P], now: DateTime<Utc>) -> Plan {
    let owned: Vec<&Pod> = owned.iter().map(|p| p.borrow()).collect();
    let prev = j.status.clone().unwrap_or_default();
    let completions = j.spec.completions.unwrap_or(1).max(0);
    let parallelism = j.spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = j.spec.backoff_limit.unwrap_or(6).max(0);
    let succeeded = owned.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = owned.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let active: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| {
            !matches!(phase(p), "Succeeded" | "Failed") && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let start = prev.start_time.unwrap_or(now);
    let mut status = JobStatus {
        active: active.len() as i64,
        succeeded: succeeded.max(prev.succeeded),
        failed: failed.max(prev.failed),
        start_time: Some(start),
        completion_time: prev.completion_time,
        conditions: prev.conditions.clone(),
    };
    let mut actions = Vec::new();
    let stop_all = |actions: &mut Vec<Action>| {
        for p in active.iter().take(super::BURST) {
            actions.push(Action::Delete(p.metadata.name().to_string()));
        }
    };
    if finished(j) {
        stop_all(&mut actions);
        return Plan {
            actions,
            status,
            finished: None,
        };
    }
    let verdict = if status.succeeded >= completions {
        Some((
            "Complete",
            "Completed",
            format!(
                "{} of {completions} completions succeeded",
                status.succeeded
            ),
        ))
    } else if status.failed > backoff_limit {
        Some((
            "Failed",
            "BackoffLimitExceeded",
            format!(
                "{} pods failed, more than the backoffLimit of {backoff_limit}",
                status.failed
            ),
        ))
    } else if j
        .spec
        .active_deadline_seconds
        .is_some_and(|d| seconds_after(start, d).is_some_and(|end| now >= end))
    {
        Some((
            "Failed",
            "DeadlineExceeded",
            format!(
                "the job was active longer than its activeDeadlineSeconds ({}s)",
                j.spec.active_deadline_seconds.unwrap_or(0)
            ),
        ))
    } else {
        None
    };
    if let Some((type_, reason, message)) = verdict {
        stop_all(&mut actions);
        status.conditions.push(Condition {
            type_: type_.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.clone()),
            last_transition_time: Some(now),
            last_probe_time: Some(now),
            ..Default::default()
        });
        if type_ == "Complete" {
            status.completion_time = Some(now);
        }
        return Plan {
            actions,
            status,
            finished: Some((type_.into(), reason.into(), message)),
        };
    }
    if j.spec.suspend != Some(true) {
        let want = parallelism.min(completions - status.succeeded).max(0);
        let missing = want - active.len() as i64;
        if missing > 0 {
            actions.push(Action::Create {
                pod: pod_for(j),
                count: super::burst(missing),
            });
        }
    } else {
        stop_all(&mut actions);
    }
    Plan {
        actions,
        status,
        finished: None,
    }
}

fn pod_for(j: &Job) -> Value {
    let template = serde_json::to_value(&j.spec.template).unwrap_or(json!({}));
    let uid = j.metadata.uid.clone().unwrap_or_default();
    super::pod_from_template(
        &template,
        format!("{}-", j.metadata.name()),
        j.metadata.namespace(),
        &[("job-name", j.metadata.name()), ("controller-uid", &uid)],
        super::controller_ref("batch/v1", "Job", &j.metadata),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, PodStatus};

    fn job(completions: i64, parallelism: i64) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some("batch".into());
        j.metadata.namespace = Some("default".into());
        j.metadata.uid = Some("j-uid".into());
        j.spec.completions = Some(completions);
        j.spec.parallelism = Some(parallelism);
        j.spec.backoff_limit = Some(1);
        j.spec.template.spec.containers.push(Container {
            name: "c".into(),
            image: "i:1".into(),
            ..Default::default()
        });
        j
    }

    fn pod(name: &str, phase: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn runs_parallelism_pods_until_completions_succeed() {
        let j = job(3, 2);
        let plan = reconcile::<Pod>(&j, &[], Utc::now());
        assert_eq!(plan.actions.len(), 1);
        if let Action::Create { pod: p, count } = &plan.actions[0] {
            assert_eq!(*count, 2);
            assert_eq!(p["metadata"]["labels"]["job-name"], "batch");
            assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        }
        let plan = reconcile(
            &j,
            &[
                pod("a", "Succeeded"),
                pod("b", "Succeeded"),
                pod("c", "Running"),
            ],
            Utc::now(),
        );
        assert!(plan.actions.is_empty(), "one more is running: enough");
        let plan = reconcile(
            &j,
            &[
                pod("a", "Succeeded"),
                pod("b", "Succeeded"),
                pod("c", "Succeeded"),
            ],
            Utc::now(),
        );
        assert_eq!(
            plan.finished.as_ref().map(|f| f.0.as_str()),
            Some("Complete")
        );
    }

    #[test]
    fn a_huge_parallelism_asks_for_one_burst_per_pass() {
        let j = job(i64::from(i32::MAX), i64::from(i32::MAX));
        let plan = reconcile(&j, &[pod("a", "Running")], Utc::now());
        assert!(
            matches!(&plan.actions[..], [Action::Create { count, .. }] if *count == super::super::BURST),
            "{:?}",
            plan.actions.len()
        );
        let mut j = job(1, 1);
        j.spec.active_deadline_seconds = Some(i64::MAX);
        let plan = reconcile::<Pod>(&j, &[], Utc::now());
        assert!(
            plan.finished.is_none(),
            "a deadline past the year 9999 never passes"
        );
    }

    #[test]
    fn fails_past_the_backoff_limit_or_the_deadline() {
        let j = job(1, 1);
        let plan = reconcile(&j, &[pod("a", "Failed"), pod("b", "Failed")], Utc::now());
        assert_eq!(
            plan.finished.as_ref().map(|f| f.1.as_str()),
            Some("BackoffLimitExceeded")
        );
        let mut j = job(1, 1);
        j.spec.active_deadline_seconds = Some(5);
        let t0 = Utc::now();
        j.status = Some(JobStatus {
            start_time: Some(t0),
            ..Default::default()
        });
        let plan = reconcile(
            &j,
            &[pod("a", "Running")],
            t0 + chrono::Duration::seconds(6),
        );
        assert_eq!(
            plan.finished.as_ref().map(|f| f.1.as_str()),
            Some("DeadlineExceeded")
        );
        assert_eq!(plan.actions, vec![Action::Delete("a".into())]);
    }
}
