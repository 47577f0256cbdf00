//! The CronJob reconciler, as a pure function: at each scheduled time (in the cronjob's
//! `timeZone`) create a Job from the template, unless suspended, too late
//! (`startingDeadlineSeconds`) or, with `concurrencyPolicy: Forbid`, while a previous job still
//! runs (`Replace` deletes it first); keep the last N finished jobs of each outcome.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::api::cron::Schedule;
use crate::api::meta::{seconds_after, ObjectReference};
use crate::api::workloads::{CronJob, CronJobStatus, Job};

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateJob(Value),
    DeleteJob(String),
    /// Something worth an event: (type, reason, message).
    Note(String, String, String),
}

pub struct Plan {
    pub actions: Vec<Action>,
    pub status: CronJobStatus,
}

fn job_state(j: &Job) -> Option<&str> {
    j.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        .map(|c| c.type_.as_str())
}

pub fn reconcile(c: &CronJob, owned: &[Job], now: DateTime<Utc>) -> Plan {
    let mut status = c.status.clone().unwrap_or_default();
    let mut actions = Vec::new();
    let note = |t: &str, r: &str, m: String| Action::Note(t.into(), r.into(), m);
    let active: Vec<&Job> = owned
        .iter()
        .filter(|j| job_state(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();
    status.active = active
        .iter()
        .map(|j| ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            namespace: Some(j.metadata.namespace().into()),
            name: Some(j.metadata.name().into()),
            uid: j.metadata.uid.clone(),
            ..Default::default()
        })
        .collect();
    if let Some(t) = owned
        .iter()
        .filter(|j| job_state(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref().and_then(|s| s.completion_time))
        .max()
    {
        status.last_successful_time = Some(status.last_successful_time.map_or(t, |p| p.max(t)));
    }
    // history limits
    for (state, limit) in [
        (
            "Complete",
            c.spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        ("Failed", c.spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut done: Vec<&Job> = owned
            .iter()
            .filter(|j| job_state(j) == Some(state))
            .collect();
        done.sort_by_key(|j| std::cmp::Reverse(j.metadata.creation_timestamp));
        for j in done.iter().skip(limit.max(0) as usize) {
            actions.push(Action::DeleteJob(j.metadata.name().to_string()));
        }
    }
    if c.spec.suspend == Some(true) {
        return Plan { actions, status };
    }
    let Ok(schedule) = Schedule::parse(&c.spec.schedule) else {
        actions.push(note(
            "Warning",
            "InvalidSchedule",
            format!("schedule {:?} cannot be parsed", c.spec.schedule),
        ));
        return Plan { actions, status };
    };
    let tz: chrono_tz::Tz = match c.spec.time_zone.as_deref().unwrap_or("UTC").parse() {
        Ok(tz) => tz,
        Err(_) => {
            actions.push(note(
                "Warning",
                "UnknownTimeZone",
                format!("timeZone {:?} is not a known time zone", c.spec.time_zone),
            ));
            return Plan { actions, status };
        }
    };
    let since = status
        .last_schedule_time
        .or(c.metadata.creation_timestamp)
        .unwrap_or(now);
    let Some(due) = schedule.latest_between(&tz, since, now) else {
        return Plan { actions, status };
    };
    status.last_schedule_time = Some(due);
    if let Some(d) = c.spec.starting_deadline_seconds {
        if seconds_after(due, d).is_some_and(|end| now > end) {
            actions.push(note(
                "Warning",
                "MissSchedule",
                format!("missed the run of {due}: more than startingDeadlineSeconds ({d}s) late"),
            ));
            return Plan { actions, status };
        }
    }
    match c.spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            actions.push(note(
                "Normal",
                "JobAlreadyActive",
                format!(
                    "skipped the run of {due}: job {} is still active (concurrencyPolicy Forbid)",
                    active[0].metadata.name()
                ),
            ));
            return Plan { actions, status };
        }
        "Replace" => {
            for j in &active {
                actions.push(Action::DeleteJob(j.metadata.name().to_string()));
            }
        }
        _ => {}
    }
    actions.push(Action::CreateJob(job_for(c, due)));
    Plan { actions, status }
}

/// The job for the run at `due`; its name is derived from the time, so a run is created once.
fn job_for(c: &CronJob, due: DateTime<Utc>) -> Value {
    let t = &c.spec.job_template;
    let mut meta = serde_json::to_value(&t.metadata).unwrap_or(json!({}));
    meta["name"] = json!(format!("{}-{}", c.metadata.name(), due.timestamp() / 60));
    meta["namespace"] = json!(c.metadata.namespace());
    meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
        json!(due.to_rfc3339());
    meta["ownerReferences"] = json!([super::controller_ref("batch/v1", "CronJob", &c.metadata)]);
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": t.spec})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::Condition;
    use crate::api::workloads::JobStatus;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cron(policy: &str) -> CronJob {
        let mut c = CronJob::default();
        c.metadata.name = Some("tick".into());
        c.metadata.namespace = Some("default".into());
        c.metadata.uid = Some("c-uid".into());
        c.metadata.creation_timestamp = Some(at("2026-11-28T10:00:10Z"));
        c.spec.schedule = "* * * * *".into();
        c.spec.concurrency_policy = Some(policy.into());
        c
    }

    fn job(name: &str, state: Option<&str>) -> Job {
        let mut j = Job::default();
        j.metadata.name = Some(name.into());
        j.metadata.namespace = Some("default".into());
        if let Some(s) = state {
            j.status = Some(JobStatus {
                conditions: vec![Condition {
                    type_: s.into(),
                    status: "True".into(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        j
    }

    #[test]
    fn creates_one_job_per_scheduled_minute() {
        let c = cron("Allow");
        let plan = reconcile(&c, &[], at("2026-11-28T10:01:05Z"));
        let Some(Action::CreateJob(j)) = plan.actions.last() else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(
            j["metadata"]["name"],
            format!("tick-{}", at("2026-11-28T10:01:00Z").timestamp() / 60)
        );
        assert_eq!(
            plan.status.last_schedule_time,
            Some(at("2026-11-28T10:01:00Z"))
        );
        let mut later = c.clone();
        later.status = Some(plan.status);
        assert!(
            reconcile(&later, &[], at("2026-11-28T10:01:50Z"))
                .actions
                .is_empty(),
            "nothing until the next minute"
        );
    }

    #[test]
    fn forbid_skips_while_a_job_runs_and_replace_deletes_it() {
        let running = job("tick-1", None);
        let plan = reconcile(
            &cron("Forbid"),
            std::slice::from_ref(&running),
            at("2026-11-28T10:01:05Z"),
        );
        assert!(
            matches!(&plan.actions[..], [Action::Note(_, r, _)] if r == "JobAlreadyActive"),
            "{:?}",
            plan.actions
        );
        let plan = reconcile(&cron("Replace"), &[running], at("2026-11-28T10:01:05Z"));
        assert_eq!(plan.actions[0], Action::DeleteJob("tick-1".into()));
        assert!(matches!(plan.actions[1], Action::CreateJob(_)));
    }

    #[test]
    fn history_limits_and_suspend() {
        let mut c = cron("Allow");
        c.spec.suspend = Some(true);
        c.spec.successful_jobs_history_limit = Some(1);
        let jobs = [
            job("a", Some("Complete")),
            job("b", Some("Complete")),
            job("c", Some("Failed")),
        ];
        let plan = reconcile(&c, &jobs, at("2026-11-28T10:05:00Z"));
        let deleted: Vec<_> = plan
            .actions
            .iter()
            .filter(|a| matches!(a, Action::DeleteJob(_)))
            .collect();
        assert_eq!(
            deleted.len(),
            1,
            "one successful job over the limit; the failed one is kept"
        );
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::CreateJob(_))),
            "suspended"
        );
    }
}
