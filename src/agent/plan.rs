//! The pod reconciler, as pure functions: from a pod's spec, what the engine holds for it, and
//! what the agent remembers (back-off levels, failures, probe results), `plan` decides what to
//! do next and `status` says what the pod's status is. No I/O here; `pods` executes the plan.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::runtime::{Observed, RunState, SANDBOX};
use crate::api::core::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodIP, PodStatus,
};
use crate::api::meta::{seconds_after, Condition};
use crate::api::podfields::is_sidecar;

pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before it exited restarts without back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// Something that went wrong before a process ran (image missing, config error, sandbox
/// failure); retried at `retry_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    pub retry_at: DateTime<Utc>,
}

/// What the agent remembers about a pod between syncs.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    /// Restarts since the last reset, per container name.
    pub backoff: BTreeMap<String, u32>,
    /// Per container name, or `SANDBOX`.
    pub failures: BTreeMap<String, Failure>,
    /// Container ids whose liveness or startup probe failed.
    pub liveness_failed: BTreeSet<String>,
    /// Readiness probe results by container id.
    pub ready: BTreeMap<String, bool>,
    /// Container ids whose startup probe succeeded.
    pub started: BTreeSet<String>,
    /// The termination message of each exited container, by container id (read from its
    /// terminationMessagePath file, or its log under FallbackToLogsOnError).
    pub messages: BTreeMap<String, String>,
    /// Why the pod was evicted (an emptyDir past its sizeLimit): it is stopped and Failed.
    pub evicted: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Remove what is left of the old sandbox and start a new one.
    CreateSandbox,
    /// Create and start attempt `attempt` of container `name`; remember `backoff_level`.
    Start {
        name: String,
        attempt: u32,
        backoff_level: u32,
    },
    /// Stop a running container (SIGTERM, SIGKILL after `grace`).
    Kill {
        id: String,
        container: String,
        grace: Duration,
        reason: String,
    },
    /// Remove a dead container nobody needs any more.
    Remove { id: String },
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// When to look again even if nothing happens (end of a back-off).
    pub wake_at: Option<DateTime<Utc>>,
}

pub fn backoff_delay(level: u32) -> Duration {
    if level == 0 {
        return Duration::ZERO;
    }
    let factor = 1u64.checked_shl(level - 1).unwrap_or(u64::MAX);
    BACKOFF_BASE
        .checked_mul(factor.min(u32::MAX as u64) as u32)
        .unwrap_or(BACKOFF_MAX)
        .min(BACKOFF_MAX)
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec.restart_policy.as_deref().unwrap_or("Always")
}

fn will_restart(pod: &Pod, o: &Observed) -> bool {
    match restart_policy(pod) {
        "Never" => false,
        "OnFailure" => exit_code(o) != 0,
        _ => true,
    }
}

fn exit_code(o: &Observed) -> i64 {
    if !o.error.is_empty() && o.exit_code == 0 {
        128
    } else {
        o.exit_code
    }
}

pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The newest attempt of `name` among the pod's containers.
pub fn latest<'a>(observed: &'a [Observed], name: &str) -> Option<&'a Observed> {
    observed
        .iter()
        .filter(|o| o.container == name)
        .max_by_key(|o| (o.attempt, o.started_at))
}

fn previous<'a>(observed: &'a [Observed], cur: &Observed) -> Option<&'a Observed> {
    observed
        .iter()
        .filter(|o| o.container == cur.container && o.attempt < cur.attempt)
        .max_by_key(|o| o.attempt)
}

pub fn grace(pod: &Pod) -> Duration {
    let s = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(s.max(0) as u64)
}

fn deadline_exceeded(pod: &Pod, now: DateTime<Utc>) -> bool {
    let start = pod.status.as_ref().and_then(|s| s.start_time);
    match (pod.spec.active_deadline_seconds, start) {
        (Some(d), Some(t)) => seconds_after(t, d).is_some_and(|end| now >= end),
        _ => false,
    }
}

/// Where a pod's init containers stand: they run one at a time, in spec order, and the app
/// containers start only when each has exited 0.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// Every init container completed (or there are none).
    Done,
    /// Init container `index` has not completed yet.
    Waiting { index: usize },
    /// Init container `index` failed and the pod's restartPolicy is Never: the pod failed.
    Failed { index: usize },
}

/// Whether a running container has started: no startup probe, or it succeeded.
fn has_started(c: &Container, o: &Observed, mem: &Memory) -> bool {
    o.state == RunState::Running && (c.startup_probe.is_none() || mem.started.contains(&o.id))
}

/// Where the init containers stand. A sidecar (`restartPolicy: Always`) counts once it has
/// started; once any app container was created the pod is initialized for good (the kubelet's
/// rule: a sidecar restarting later does not hold the app containers back).
pub fn init_progress(pod: &Pod, observed: &[Observed], mem: &Memory) -> Init {
    if pod
        .spec
        .containers
        .iter()
        .any(|c| latest(observed, &c.name).is_some())
    {
        return Init::Done;
    }
    for (index, c) in pod.spec.init_containers.iter().enumerate() {
        let cur = latest(observed, &c.name);
        if is_sidecar(c) {
            match cur {
                Some(o) if has_started(c, o, mem) => continue,
                _ => return Init::Waiting { index },
            }
        }
        match cur {
            Some(o) if o.state == RunState::Exited && exit_code(o) == 0 => continue,
            Some(o) if o.state == RunState::Exited && restart_policy(pod) == "Never" => {
                return Init::Failed { index }
            }
            _ => return Init::Waiting { index },
        }
    }
    Init::Done
}

/// Moves the plan's wake time to `t` unless an earlier one is set.
fn wake(p: &mut Plan, t: DateTime<Utc>) {
    p.wake_at = Some(p.wake_at.map_or(t, |w| w.min(t)));
}

/// The steps of a container that has not run: its first start (or, after a failed start, a
/// wake at the retry time), or, when it was created but never started (the agent stopped in
/// between), its removal and a start again. The container when it has run: the caller decides.
fn start_unstarted<'a>(
    p: &mut Plan,
    name: &str,
    cur: Option<&'a Observed>,
    mem: &Memory,
    failure: Option<&Failure>,
) -> Option<&'a Observed> {
    match cur {
        None => match failure {
            Some(f) => wake(p, f.retry_at),
            None => p.actions.push(Action::Start {
                name: name.to_string(),
                attempt: 0,
                backoff_level: 0,
            }),
        },
        Some(o) if o.state == RunState::Created => {
            p.actions.push(Action::Remove { id: o.id.clone() });
            p.actions.push(Action::Start {
                name: name.to_string(),
                attempt: o.attempt,
                backoff_level: mem.backoff.get(name).copied().unwrap_or(0),
            });
        }
        Some(o) => return Some(o),
    }
    None
}

/// The restart of a container that has ended: at its back-off time (or, after a failed start,
/// a wake at the retry time).
fn restart_after_backoff(
    p: &mut Plan,
    name: &str,
    o: &Observed,
    mem: &Memory,
    now: DateTime<Utc>,
    failure: Option<&Failure>,
) {
    if let Some(f) = failure {
        return wake(p, f.retry_at);
    }
    let (level, not_before) = restart_at(o, mem, now);
    if now >= not_before {
        p.actions.push(Action::Start {
            name: name.to_string(),
            attempt: o.attempt + 1,
            backoff_level: level + 1,
        });
    } else {
        wake(p, not_before);
    }
}

/// The next step of init container `index`: start it, restart it after its back-off (init
/// containers restart on failure under `Always` and `OnFailure`), or wait for it.
fn plan_init(
    pod: &Pod,
    index: usize,
    observed: &[Observed],
    mem: &Memory,
    now: DateTime<Utc>,
    p: &mut Plan,
) {
    let c = &pod.spec.init_containers[index];
    let failure = mem.failures.get(&c.name).filter(|f| f.retry_at > now);
    let cur = latest(observed, &c.name);
    let Some(o) = start_unstarted(p, &c.name, cur, mem, failure) else {
        return;
    };
    if o.state != RunState::Running {
        restart_after_backoff(p, &c.name, o, mem, now, failure);
    }
}

/// The next step of a container that should keep running (an app container, or a started
/// sidecar): start it, kill it when its liveness (or startup) probe failed, or restart it when
/// it ended and `restart` says so.
fn keep_running(
    p: &mut Plan,
    pod: &Pod,
    c: &Container,
    observed: &[Observed],
    mem: &Memory,
    now: DateTime<Utc>,
    restart: bool,
) {
    let failure = mem.failures.get(&c.name).filter(|f| f.retry_at > now);
    let cur = latest(observed, &c.name);
    let Some(o) = start_unstarted(p, &c.name, cur, mem, failure) else {
        return;
    };
    if o.state == RunState::Running {
        if mem.liveness_failed.contains(&o.id) {
            p.actions.push(Action::Kill {
                id: o.id.clone(),
                container: c.name.clone(),
                grace: probe_grace(pod, c),
                reason: "its liveness (or startup) probe failed".into(),
            });
        }
    } else if restart {
        restart_after_backoff(p, &c.name, o, mem, now, failure);
    }
}

/// The grace period of a container killed for a failed probe: the probe's own
/// terminationGracePeriodSeconds when it has one, the pod's otherwise.
fn probe_grace(pod: &Pod, c: &Container) -> Duration {
    [&c.liveness_probe, &c.startup_probe]
        .into_iter()
        .flatten()
        .find_map(|p| p.termination_grace_period_seconds)
        .map_or_else(|| grace(pod), |s| Duration::from_secs(s.max(0) as u64))
}

/// What to do next for a live (not deleted) pod.
pub fn plan(pod: &Pod, observed: &[Observed], mem: &Memory, now: DateTime<Utc>) -> Plan {
    let mut p = Plan::default();
    let running: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.state == RunState::Running)
        .collect();
    if is_terminal(pod) || deadline_exceeded(pod, now) || mem.evicted.is_some() {
        let reason = if is_terminal(pod) {
            "the pod has finished"
        } else if mem.evicted.is_some() {
            "the pod was evicted"
        } else {
            "the pod's activeDeadlineSeconds passed"
        };
        for o in running {
            p.actions.push(Action::Kill {
                id: o.id.clone(),
                container: o.container.clone(),
                grace: if o.container == SANDBOX {
                    Duration::ZERO
                } else {
                    grace(pod)
                },
                reason: reason.into(),
            });
        }
        return p;
    }
    // Old dead attempts: keep the newest and the one before it (for `logs --previous`).
    for o in observed.iter().filter(|o| o.state != RunState::Running) {
        if let Some(cur) = latest(observed, &o.container) {
            if o.attempt + 1 < cur.attempt || (o.container == SANDBOX && o.id != cur.id) {
                p.actions.push(Action::Remove { id: o.id.clone() });
            }
        }
    }
    let sandbox = latest(observed, SANDBOX);
    if sandbox.is_none_or(|s| s.state != RunState::Running) {
        if let Some(f) = mem.failures.get(SANDBOX).filter(|f| f.retry_at > now) {
            wake(&mut p, f.retry_at);
            return p;
        }
        for o in running.iter().filter(|o| o.container != SANDBOX) {
            p.actions.push(Action::Kill {
                id: o.id.clone(),
                container: o.container.clone(),
                grace: grace(pod),
                reason: "the pod's sandbox is gone; it is being recreated".into(),
            });
        }
        p.actions.push(Action::CreateSandbox);
        return p;
    }
    let init = &pod.spec.init_containers;
    // sidecars before the one being waited for keep running (and restart, whatever the pod's
    // restartPolicy) while the later init containers and the app containers run
    let upto = match init_progress(pod, observed, mem) {
        Init::Done => init.len(),
        Init::Waiting { index } => index,
        Init::Failed { .. } => return p,
    };
    for c in init[..upto].iter().filter(|c| is_sidecar(c)) {
        keep_running(&mut p, pod, c, observed, mem, now, true);
    }
    if upto < init.len() {
        let c = &init[upto];
        if is_sidecar(c) {
            keep_running(&mut p, pod, c, observed, mem, now, true);
        } else {
            plan_init(pod, upto, observed, mem, now, &mut p);
        }
        return p;
    }
    for c in &pod.spec.containers {
        let restart = latest(observed, &c.name).is_none_or(|o| will_restart(pod, o));
        keep_running(&mut p, pod, c, observed, mem, now, restart);
    }
    p
}

/// The back-off level that applies to restarting `o`, and the earliest time to do it.
fn restart_at(o: &Observed, mem: &Memory, now: DateTime<Utc>) -> (u32, DateTime<Utc>) {
    let finished = o.finished_at.unwrap_or(now);
    let ran = match o.started_at {
        Some(s) => (finished - s).to_std().unwrap_or_default(),
        None => Duration::ZERO,
    };
    let level = if ran >= BACKOFF_RESET {
        0
    } else {
        mem.backoff.get(&o.container).copied().unwrap_or(0)
    };
    let delay = chrono::Duration::from_std(backoff_delay(level)).unwrap_or_default();
    (level, finished + delay)
}

fn terminated(o: &Observed, mem: &Memory) -> ContainerState {
    let written = mem.messages.get(&o.id).filter(|m| !m.is_empty()).cloned();
    let (reason, message) = if !o.error.is_empty() {
        ("StartError", Some(o.error.clone()))
    } else if o.oom_killed {
        ("OOMKilled", written)
    } else if o.exit_code == 0 {
        ("Completed", written)
    } else {
        ("Error", written)
    };
    let code = exit_code(o);
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            signal: (code > 128 && code < 160 && o.error.is_empty()).then_some(code - 128),
            reason: Some(reason.into()),
            message,
            started_at: o.started_at,
            finished_at: o.finished_at,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

fn condition(prev: Option<&PodStatus>, type_: &str, ok: bool, now: DateTime<Utc>) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time)
        .unwrap_or(now);
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The status of one init container: `Completed` ones are ready, a failed one waits in
/// `CrashLoopBackOff` during its back-off, the ones not reached wait in `PodInitializing`.
fn init_status(
    pod: &Pod,
    c: &crate::api::core::Container,
    observed: &[Observed],
    mem: &Memory,
    now: DateTime<Utc>,
) -> ContainerStatus {
    let cur = latest(observed, &c.name);
    let failure = mem.failures.get(&c.name);
    let mut cs = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        restart_count: cur.map_or(0, |o| o.attempt as i64),
        started: Some(false),
        ..Default::default()
    };
    let Some(o) = cur else {
        cs.state = match failure {
            Some(f) => waiting(&f.reason, Some(f.message.clone())),
            None => waiting(POD_INITIALIZING, None),
        };
        return cs;
    };
    cs.container_id = Some(format!("docker://{}", o.id));
    cs.image_id = (!o.image_id.is_empty()).then(|| format!("docker://{}", o.image_id));
    cs.last_state = previous(observed, o).map(|x| terminated(x, mem));
    let sidecar = is_sidecar(c);
    match o.state {
        RunState::Created => cs.state = waiting(POD_INITIALIZING, None),
        RunState::Running => {
            let started = !sidecar || has_started(c, o, mem);
            cs.started = Some(started);
            // a sidecar is ready as an app container is: started, and its readiness probe
            cs.ready = sidecar
                && started
                && (c.readiness_probe.is_none() || mem.ready.get(&o.id).copied().unwrap_or(false));
            cs.state = ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: o.started_at,
                }),
                ..Default::default()
            };
        }
        RunState::Exited if sidecar && is_terminal(pod) => cs.state = terminated(o, mem),
        RunState::Exited if exit_code(o) == 0 && !sidecar => {
            cs.ready = true;
            cs.state = terminated(o, mem);
        }
        RunState::Exited if !sidecar && (restart_policy(pod) == "Never" || is_terminal(pod)) => {
            cs.state = terminated(o, mem)
        }
        RunState::Exited => {
            let (level, at) = restart_at(o, mem, now);
            if let Some(f) = failure {
                cs.last_state = Some(terminated(o, mem));
                cs.state = waiting(&f.reason, Some(f.message.clone()));
            } else if at > now {
                cs.last_state = Some(terminated(o, mem));
                cs.state = waiting(
                    "CrashLoopBackOff",
                    Some(format!(
                        "back-off {}s restarting failed container={} pod={}_{}",
                        backoff_delay(level).as_secs(),
                        c.name,
                        pod.metadata.name(),
                        pod.metadata.namespace()
                    )),
                );
            } else {
                cs.state = terminated(o, mem);
            }
        }
    }
    cs
}

/// The waiting reason of a pod's containers while its init containers run.
const POD_INITIALIZING: &str = "PodInitializing";

/// Where one app container stands, for the pod's status.
struct AppState {
    status: ContainerStatus,
    /// Not created yet (or created, not started).
    pending: bool,
    /// Exited for good.
    done: bool,
    /// Exited 0, or not exited.
    ok: bool,
}

fn app_status(
    pod: &Pod,
    c: &Container,
    observed: &[Observed],
    mem: &Memory,
    now: DateTime<Utc>,
    creating: &str,
) -> AppState {
    let pod_ref = format!("{}_{}", pod.metadata.name(), pod.metadata.namespace());
    let (mut pending, mut all_final, mut all_ok) = (false, true, true);
    let cur = latest(observed, &c.name);
    let failure = mem.failures.get(&c.name);
    let mut cs = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        restart_count: cur.map_or(0, |o| o.attempt as i64),
        ..Default::default()
    };
    match cur {
        None => {
            pending = true;
            all_final = false;
            cs.state = match failure {
                Some(f) => waiting(&f.reason, Some(f.message.clone())),
                None => waiting(creating, None),
            };
        }
        Some(o) => {
            cs.container_id = Some(format!("docker://{}", o.id));
            cs.image_id = (!o.image_id.is_empty()).then(|| format!("docker://{}", o.image_id));
            let last = previous(observed, o).map(|x| terminated(x, mem));
            match o.state {
                RunState::Created => {
                    pending = true;
                    all_final = false;
                    cs.state = waiting("ContainerCreating", None);
                    cs.last_state = last;
                }
                RunState::Running => {
                    all_final = false;
                    cs.state = ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: o.started_at,
                        }),
                        ..Default::default()
                    };
                    cs.last_state = last;
                    let started = c.startup_probe.is_none() || mem.started.contains(&o.id);
                    cs.started = Some(started);
                    cs.ready = started
                        && (c.readiness_probe.is_none()
                            || mem.ready.get(&o.id).copied().unwrap_or(false));
                }
                RunState::Exited if will_restart(pod, o) && !is_terminal(pod) => {
                    all_final = false;
                    cs.last_state = Some(terminated(o, mem));
                    cs.started = Some(false);
                    cs.state = match failure {
                        Some(f) => waiting(&f.reason, Some(f.message.clone())),
                        None => {
                            let (level, at) = restart_at(o, mem, now);
                            if at > now {
                                waiting(
                                    "CrashLoopBackOff",
                                    Some(format!(
                                        "back-off {}s restarting failed container={} pod={pod_ref}",
                                        backoff_delay(level).as_secs(),
                                        c.name
                                    )),
                                )
                            } else {
                                waiting("ContainerCreating", None)
                            }
                        }
                    };
                    if !o.error.is_empty() && failure.is_none() {
                        cs.state.waiting = Some(ContainerStateWaiting {
                            reason: Some("RunContainerError".into()),
                            message: Some(o.error.clone()),
                        });
                    }
                }
                RunState::Exited => {
                    cs.state = terminated(o, mem);
                    cs.started = Some(false);
                    all_ok &= exit_code(o) == 0;
                }
            }
        }
    }
    AppState {
        status: cs,
        pending,
        done: all_final,
        ok: all_ok,
    }
}

/// The pod's status as observed now.
pub fn status(
    pod: &Pod,
    observed: &[Observed],
    mem: &Memory,
    host_ip: &str,
    now: DateTime<Utc>,
) -> PodStatus {
    let prev = pod.status.as_ref();
    let sandbox = latest(observed, SANDBOX).filter(|s| s.state == RunState::Running);
    let mut pending = false;
    let mut all_final = true;
    let mut all_ok = true;
    let mut statuses = Vec::new();
    let init = init_progress(pod, observed, mem);
    let init_statuses: Vec<ContainerStatus> = pod
        .spec
        .init_containers
        .iter()
        .map(|c| init_status(pod, c, observed, mem, now))
        .collect();
    let creating = if pod.spec.init_containers.is_empty() {
        "ContainerCreating"
    } else {
        POD_INITIALIZING
    };
    for c in &pod.spec.containers {
        let st = app_status(pod, c, observed, mem, now, creating);
        pending |= st.pending;
        all_final &= st.done;
        all_ok &= st.ok;
        statuses.push(st.status);
    }
    let prev_phase = prev.and_then(|s| s.phase.clone());
    let deadline = deadline_exceeded(pod, now);
    let phase = if matches!(prev_phase.as_deref(), Some("Succeeded" | "Failed")) {
        prev_phase.unwrap_or_default()
    } else if deadline || mem.evicted.is_some() || matches!(init, Init::Failed { .. }) {
        "Failed".to_string()
    } else if pending || init != Init::Done {
        "Pending".into()
    } else if all_final {
        if all_ok { "Succeeded" } else { "Failed" }.into()
    } else {
        "Running".into()
    };
    let terminal = phase == "Succeeded" || phase == "Failed";
    // ContainersReady counts the sidecars too, as the kubelet does
    let unready: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .zip(&init_statuses)
        .filter(|(c, s)| is_sidecar(c) && !s.ready)
        .map(|(_, s)| s.name.as_str())
        .chain(
            statuses
                .iter()
                .filter(|s| !s.ready)
                .map(|s| s.name.as_str()),
        )
        .collect();
    let all_ready = !terminal && unready.is_empty();
    let (reason, message) = if let Some(why) = mem.evicted.as_ref().filter(|_| !is_terminal(pod)) {
        (Some("Evicted".to_string()), Some(why.clone()))
    } else if deadline && !is_terminal(pod) {
        (
            Some("DeadlineExceeded".to_string()),
            Some(format!(
                "the pod was active longer than its activeDeadlineSeconds ({}s)",
                pod.spec.active_deadline_seconds.unwrap_or(0)
            )),
        )
    } else if let Some(f) = mem.failures.get(SANDBOX).filter(|_| sandbox.is_none()) {
        (Some(f.reason.clone()), Some(f.message.clone()))
    } else if terminal {
        (
            prev.and_then(|s| s.reason.clone()),
            prev.and_then(|s| s.message.clone()),
        )
    } else {
        (None, None)
    };
    let mut initialized = condition(prev, "Initialized", init == Init::Done, now);
    if init != Init::Done {
        let incomplete: Vec<&str> = pod
            .spec
            .init_containers
            .iter()
            .zip(&init_statuses)
            .filter(|(c, s)| {
                if is_sidecar(c) {
                    s.started != Some(true)
                } else {
                    !s.ready
                }
            })
            .map(|(_, s)| s.name.as_str())
            .collect();
        initialized.reason = Some("ContainersNotInitialized".into());
        initialized.message = Some(format!(
            "containers with incomplete status: [{}]",
            incomplete.join(" ")
        ));
    }
    let pod_ip = if pod.spec.host_network {
        sandbox.map(|_| host_ip.to_string())
    } else {
        sandbox.and_then(|s| s.ip.clone())
    }
    .or_else(|| prev.and_then(|s| s.pod_ip.clone()).filter(|_| terminal));
    PodStatus {
        phase: Some(phase),
        conditions: conditions(pod, prev, initialized, &unready, all_ready, now),
        reason,
        message,
        host_ip: Some(host_ip.to_string()),
        host_ips: vec![PodIP {
            ip: host_ip.to_string(),
        }],
        pod_ips: pod_ip.iter().map(|ip| PodIP { ip: ip.clone() }).collect(),
        pod_ip,
        start_time: prev.and_then(|s| s.start_time).or(Some(now)),
        container_statuses: statuses,
        init_container_statuses: init_statuses,
    }
}

/// The conditions the agent owns are the kubelet's four; any other (a readiness gate's, set by
/// whoever owns it, or DisruptionTarget) is kept as it was.
const OWN_CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// The pod's conditions: ContainersReady from the containers, Ready from them and from the
/// conditions the pod's readiness gates name, worded as the kubelet words them.
fn conditions(
    pod: &Pod,
    prev: Option<&PodStatus>,
    initialized: Condition,
    unready: &[&str],
    all_ready: bool,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let foreign: Vec<Condition> = prev
        .into_iter()
        .flat_map(|s| &s.conditions)
        .filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let mut gates = Vec::new();
    for g in &pod.spec.readiness_gates {
        match foreign.iter().find(|c| c.type_ == g.condition_type) {
            None => gates.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                g.condition_type
            )),
            Some(c) if c.status != "True" => gates.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                g.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    let mut containers = condition(prev, "ContainersReady", all_ready, now);
    let mut ready = condition(prev, "Ready", all_ready && gates.is_empty(), now);
    if !all_ready && !unready.is_empty() {
        let message = format!("containers with unready status: [{}]", unready.join(" "));
        for c in [&mut containers, &mut ready] {
            c.reason = Some("ContainersNotReady".into());
            c.message = Some(message.clone());
        }
    } else if all_ready && !gates.is_empty() {
        ready.reason = Some("ReadinessGatesNotReady".into());
        ready.message = Some(gates.join(", "));
    }
    let mut out = vec![
        condition(prev, "PodScheduled", true, now),
        initialized,
        containers,
        ready,
    ];
    out.extend(foreign);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, PodSpec};

    fn pod(policy: &str, names: &[&str]) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("default".into());
        p.spec = PodSpec {
            restart_policy: Some(policy.into()),
            containers: names
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: "img".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        p
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn obs(
        container: &str,
        attempt: u32,
        state: RunState,
        exit: i64,
        started: i64,
        finished: i64,
    ) -> Observed {
        Observed {
            id: format!("{container}-{attempt}"),
            pod_uid: "u".into(),
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            container: container.into(),
            attempt,
            state,
            exit_code: exit,
            error: String::new(),
            oom_killed: false,
            started_at: Some(t(started)),
            finished_at: (state == RunState::Exited).then(|| t(finished)),
            image: "img".into(),
            image_id: "sha256:1".into(),
            ip: (container == SANDBOX).then(|| "172.17.0.5".into()),
        }
    }

    #[test]
    fn back_off_doubles_from_ten_seconds_to_five_minutes() {
        let d: Vec<u64> = (0..8).map(|l| backoff_delay(l).as_secs()).collect();
        assert_eq!(d, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff_delay(200), BACKOFF_MAX);
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_then_its_containers() {
        let p = pod("Always", &["a", "b"]);
        let plan1 = plan(&p, &[], &Memory::default(), t(0));
        assert_eq!(plan1.actions, vec![Action::CreateSandbox]);
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let plan2 = plan(&p, std::slice::from_ref(&sb), &Memory::default(), t(1));
        assert_eq!(plan2.actions.len(), 2);
        assert!(matches!(&plan2.actions[0], Action::Start { name, attempt: 0, .. } if name == "a"));
        let st = status(&p, &[sb], &Memory::default(), "10.0.0.1", t(1));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(st.pod_ip.as_deref(), Some("172.17.0.5"));
    }

    #[test]
    fn a_crashing_container_restarts_with_growing_back_off() {
        let p = pod("Always", &["a"]);
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let mut mem = Memory::default();
        // first crash: restart at once
        let dead = obs("a", 0, RunState::Exited, 1, 1, 2);
        let pl = plan(&p, &[sb.clone(), dead.clone()], &mem, t(2));
        assert_eq!(
            pl.actions,
            vec![Action::Start {
                name: "a".into(),
                attempt: 1,
                backoff_level: 1
            }]
        );
        // second crash: wait 10 s
        mem.backoff.insert("a".into(), 1);
        let dead1 = obs("a", 1, RunState::Exited, 1, 3, 4);
        let all = [sb.clone(), dead.clone(), dead1.clone()];
        let pl = plan(&p, &all, &mem, t(5));
        assert!(pl.actions.is_empty());
        assert_eq!(pl.wake_at, Some(t(14)));
        let st = status(&p, &all, &mem, "h", t(5));
        let cs = &st.container_statuses[0];
        assert_eq!(cs.restart_count, 1);
        assert_eq!(
            cs.state.waiting.as_ref().unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(st.phase.as_deref(), Some("Running"));
        let pl = plan(&p, &all, &mem, t(14));
        assert_eq!(
            pl.actions,
            vec![Action::Start {
                name: "a".into(),
                attempt: 2,
                backoff_level: 2
            }]
        );
    }

    #[test]
    fn a_long_healthy_run_resets_the_back_off() {
        let p = pod("Always", &["a"]);
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let mut mem = Memory::default();
        mem.backoff.insert("a".into(), 6);
        let dead = obs("a", 7, RunState::Exited, 1, 0, 700);
        let pl = plan(&p, &[sb, dead], &mem, t(700));
        assert_eq!(
            pl.actions,
            vec![Action::Start {
                name: "a".into(),
                attempt: 8,
                backoff_level: 1
            }]
        );
    }

    #[test]
    fn restart_policies_decide_and_phases_follow() {
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let ok = obs("a", 0, RunState::Exited, 0, 1, 2);
        let failed = obs("a", 0, RunState::Exited, 3, 1, 2);
        let never = pod("Never", &["a"]);
        assert!(plan(
            &never,
            &[sb.clone(), failed.clone()],
            &Memory::default(),
            t(3)
        )
        .actions
        .is_empty());
        let st = status(
            &never,
            &[sb.clone(), failed.clone()],
            &Memory::default(),
            "h",
            t(3),
        );
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        let on_failure = pod("OnFailure", &["a"]);
        assert!(plan(
            &on_failure,
            &[sb.clone(), ok.clone()],
            &Memory::default(),
            t(3)
        )
        .actions
        .is_empty());
        assert_eq!(
            status(
                &on_failure,
                &[sb.clone(), ok.clone()],
                &Memory::default(),
                "h",
                t(3)
            )
            .phase
            .as_deref(),
            Some("Succeeded")
        );
        assert_eq!(
            plan(&on_failure, &[sb.clone(), failed], &Memory::default(), t(3))
                .actions
                .len(),
            1
        );
        assert_eq!(
            plan(&pod("Always", &["a"]), &[sb, ok], &Memory::default(), t(3))
                .actions
                .len(),
            1
        );
    }

    #[test]
    fn readiness_and_liveness_results_drive_status_and_restarts() {
        let mut p = pod("Always", &["a"]);
        p.spec.containers[0].readiness_probe = Some(Default::default());
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let run = obs("a", 0, RunState::Running, 0, 1, 0);
        let mut mem = Memory::default();
        let all = [sb, run];
        let st = status(&p, &all, &mem, "h", t(2));
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(
            st.conditions[3].status, "False",
            "not ready before the first probe success"
        );
        mem.ready.insert("a-0".into(), true);
        p.status = Some(st);
        let st2 = status(&p, &all, &mem, "h", t(3));
        assert_eq!(st2.conditions[3].status, "True");
        assert_eq!(st2.conditions[3].last_transition_time, Some(t(3)));
        assert_eq!(
            st2.conditions[0].last_transition_time,
            Some(t(2)),
            "unchanged conditions keep their time"
        );
        mem.liveness_failed.insert("a-0".into());
        let pl = plan(&p, &all, &mem, t(4));
        assert!(matches!(&pl.actions[..], [Action::Kill { id, .. }] if id == "a-0"));
    }

    #[test]
    fn a_startup_probe_holds_readiness_back_until_it_passes() {
        let mut p = pod("Always", &["a"]);
        p.spec.containers[0].startup_probe = Some(Default::default());
        let all = [
            obs(SANDBOX, 0, RunState::Running, 0, 0, 0),
            obs("a", 0, RunState::Running, 0, 1, 0),
        ];
        let mut mem = Memory::default();
        let st = status(&p, &all, &mem, "h", t(2));
        assert_eq!(st.container_statuses[0].started, Some(false));
        assert!(!st.container_statuses[0].ready);
        mem.started.insert("a-0".into());
        let st = status(&p, &all, &mem, "h", t(3));
        assert_eq!(st.container_statuses[0].started, Some(true));
        assert!(st.container_statuses[0].ready);
    }

    #[test]
    fn a_dead_sandbox_is_replaced_and_old_attempts_pruned() {
        let p = pod("Always", &["a"]);
        let sb = obs(SANDBOX, 0, RunState::Exited, 137, 0, 5);
        let run = obs("a", 0, RunState::Running, 0, 1, 0);
        let pl = plan(&p, &[sb, run], &Memory::default(), t(6));
        assert!(matches!(&pl.actions[0], Action::Kill { id, .. } if id == "a-0"));
        assert_eq!(pl.actions.last(), Some(&Action::CreateSandbox));
        let sb1 = obs(SANDBOX, 1, RunState::Running, 0, 6, 0);
        let old_sb = obs(SANDBOX, 0, RunState::Exited, 137, 0, 5);
        let a0 = obs("a", 0, RunState::Exited, 1, 1, 2);
        let a1 = obs("a", 1, RunState::Exited, 1, 3, 4);
        let a2 = obs("a", 2, RunState::Running, 0, 5, 0);
        let pl = plan(&p, &[sb1, old_sb, a0, a1, a2], &Memory::default(), t(7));
        let removed: Vec<_> = pl
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Remove { id } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(removed, vec!["POD-0", "a-0"]);
    }

    fn with_init(policy: &str) -> Pod {
        let mut p = pod(policy, &["a"]);
        p.spec.init_containers = pod(policy, &["i1", "i2"]).spec.containers;
        p
    }

    fn init_state(st: &PodStatus, i: usize) -> (Option<&str>, Option<&str>) {
        let s = &st.init_container_statuses[i].state;
        (
            s.waiting.as_ref().and_then(|w| w.reason.as_deref()),
            s.terminated.as_ref().and_then(|t| t.reason.as_deref()),
        )
    }

    #[test]
    fn init_containers_run_one_by_one_before_the_app_containers() {
        let p = with_init("Always");
        let mem = Memory::default();
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let start = |name: &str, attempt: u32, backoff_level: u32| Action::Start {
            name: name.into(),
            attempt,
            backoff_level,
        };
        let pl = plan(&p, std::slice::from_ref(&sb), &mem, t(1));
        assert_eq!(pl.actions, vec![start("i1", 0, 0)]);
        let st = status(&p, std::slice::from_ref(&sb), &mem, "h", t(1));
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(init_state(&st, 0), (Some("PodInitializing"), None));
        let app = &st.container_statuses[0].state.waiting;
        assert_eq!(
            app.as_ref().unwrap().reason.as_deref(),
            Some("PodInitializing")
        );
        let init = &st.conditions[1];
        assert_eq!(
            (init.type_.as_str(), init.status.as_str()),
            ("Initialized", "False")
        );
        assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
        assert_eq!(
            init.message.as_deref(),
            Some("containers with incomplete status: [i1 i2]")
        );
        // the first is running: nothing else starts
        let i1 = obs("i1", 0, RunState::Running, 0, 1, 0);
        assert!(plan(&p, &[sb.clone(), i1], &mem, t(2)).actions.is_empty());
        // the first completed: the second starts, then the app container
        let i1 = obs("i1", 0, RunState::Exited, 0, 1, 2);
        let pl = plan(&p, &[sb.clone(), i1.clone()], &mem, t(3));
        assert_eq!(pl.actions, vec![start("i2", 0, 0)]);
        let i2 = obs("i2", 0, RunState::Exited, 0, 3, 4);
        let all = [sb.clone(), i1.clone(), i2];
        assert_eq!(plan(&p, &all, &mem, t(5)).actions, vec![start("a", 0, 0)]);
        let st = status(&p, &all, &mem, "h", t(5));
        assert_eq!(init_state(&st, 1), (None, Some("Completed")));
        assert!(st.init_container_statuses[1].ready);
        assert_eq!(st.conditions[1].status, "True");
        assert_eq!(st.conditions[1].reason, None);
    }

    #[test]
    fn a_failed_init_container_restarts_with_back_off_or_fails_the_pod() {
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let i1 = obs("i1", 0, RunState::Exited, 0, 1, 2);
        let bad = obs("i2", 0, RunState::Exited, 1, 3, 4);
        let all = [sb.clone(), i1.clone(), bad.clone()];
        // Always (and OnFailure): restarted, in CrashLoopBackOff from the second failure on
        let p = with_init("Always");
        let mut mem = Memory::default();
        let pl = plan(&p, &all, &mem, t(5));
        assert!(
            matches!(&pl.actions[..], [Action::Start { name, attempt: 1, .. }] if name == "i2")
        );
        assert_eq!(
            init_state(&status(&p, &all, &mem, "h", t(5)), 1),
            (None, Some("Error"))
        );
        mem.backoff.insert("i2".into(), 1);
        let bad1 = obs("i2", 1, RunState::Exited, 1, 5, 6);
        let all1 = [sb.clone(), i1.clone(), bad, bad1];
        let pl = plan(&p, &all1, &mem, t(7));
        assert!(pl.actions.is_empty());
        assert_eq!(pl.wake_at, Some(t(16)));
        let st = status(&p, &all1, &mem, "h", t(7));
        assert_eq!(init_state(&st, 1), (Some("CrashLoopBackOff"), None));
        assert_eq!(st.init_container_statuses[1].restart_count, 1);
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        // Never: the pod failed, the app container never starts
        let p = with_init("Never");
        assert!(plan(&p, &all, &Memory::default(), t(5)).actions.is_empty());
        let st = status(&p, &all, &Memory::default(), "h", t(5));
        assert_eq!(st.phase.as_deref(), Some("Failed"));
        assert_eq!(init_state(&st, 1), (None, Some("Error")));
    }

    #[test]
    fn sidecars_start_first_keep_running_and_do_not_hold_the_pod_back() {
        let mut p = pod("Never", &["a"]);
        let mut init = pod("Never", &["proxy", "setup"]).spec.containers;
        init[0].restart_policy = Some("Always".into());
        p.spec.init_containers = init;
        let mem = Memory::default();
        let start = |name: &str, attempt: u32| Action::Start {
            name: name.into(),
            attempt,
            backoff_level: if attempt == 0 { 0 } else { 1 },
        };
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        assert_eq!(
            plan(&p, std::slice::from_ref(&sb), &mem, t(1)).actions,
            vec![start("proxy", 0)]
        );
        // the sidecar runs: the next init container starts, the sidecar stays
        let proxy = obs("proxy", 0, RunState::Running, 0, 1, 0);
        let all = [sb.clone(), proxy.clone()];
        assert_eq!(plan(&p, &all, &mem, t(2)).actions, vec![start("setup", 0)]);
        let st = status(&p, &all, &mem, "h", t(2));
        assert_eq!(st.init_container_statuses[0].started, Some(true));
        assert!(st.init_container_statuses[0].ready);
        assert_eq!(
            st.conditions[1].message.as_deref(),
            Some("containers with incomplete status: [setup]")
        );
        let setup = obs("setup", 0, RunState::Exited, 0, 2, 3);
        let all = [sb.clone(), proxy.clone(), setup.clone()];
        assert_eq!(plan(&p, &all, &mem, t(4)).actions, vec![start("a", 0)]);
        // the sidecar crashes: restarted although the pod's restartPolicy is Never
        let app = obs("a", 0, RunState::Running, 0, 4, 0);
        let crashed = obs("proxy", 0, RunState::Exited, 1, 1, 5);
        let all = [sb.clone(), crashed, setup.clone(), app];
        assert_eq!(plan(&p, &all, &mem, t(6)).actions, vec![start("proxy", 1)]);
        let st = status(&p, &all, &mem, "h", t(6));
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert_eq!(st.conditions[1].status, "True", "initialized for good");
        assert_eq!(st.conditions[2].status, "False", "the sidecar is not ready");
        assert_eq!(
            st.conditions[2].message.as_deref(),
            Some("containers with unready status: [proxy]")
        );
        // the app finished: the pod succeeded, the running sidecar does not count
        let done = obs("a", 0, RunState::Exited, 0, 4, 7);
        let all = [sb, proxy, setup, done];
        assert_eq!(
            status(&p, &all, &mem, "h", t(8)).phase.as_deref(),
            Some("Succeeded")
        );
    }

    #[test]
    fn readiness_gates_hold_ready_until_their_condition_is_true() {
        let mut p = pod("Always", &["a"]);
        p.spec.readiness_gates = vec![crate::api::core::PodReadinessGate {
            condition_type: "example.com/lb".into(),
        }];
        let all = [
            obs(SANDBOX, 0, RunState::Running, 0, 0, 0),
            obs("a", 0, RunState::Running, 0, 1, 0),
        ];
        let mem = Memory::default();
        let st = status(&p, &all, &mem, "10.0.0.1", t(2));
        assert_eq!(st.conditions[2].status, "True");
        assert_eq!(st.conditions[3].status, "False");
        assert_eq!(
            st.conditions[3].reason.as_deref(),
            Some("ReadinessGatesNotReady")
        );
        assert_eq!(
            st.conditions[3].message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        );
        let mut prev = st;
        prev.conditions.push(Condition {
            type_: "example.com/lb".into(),
            status: "True".into(),
            ..Default::default()
        });
        p.status = Some(prev);
        let st = status(&p, &all, &mem, "10.0.0.1", t(3));
        assert_eq!(st.conditions[3].status, "True");
        assert_eq!(st.conditions[4].type_, "example.com/lb", "kept as it was");
        assert_eq!(st.pod_ips[0].ip, "172.17.0.5");
        assert_eq!(st.host_ips[0].ip, "10.0.0.1");
        // host network: the pod's address is the node's
        p.spec.host_network = true;
        assert_eq!(
            status(&p, &all, &mem, "10.0.0.1", t(3)).pod_ip.as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn a_finished_pod_is_left_alone_but_its_sandbox_stopped() {
        let mut p = pod("Never", &["a"]);
        p.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        let sb = obs(SANDBOX, 0, RunState::Running, 0, 0, 0);
        let ok = obs("a", 0, RunState::Exited, 0, 1, 2);
        let pl = plan(&p, &[sb, ok], &Memory::default(), t(3));
        assert!(
            matches!(&pl.actions[..], [Action::Kill { container, .. }] if container == SANDBOX)
        );
    }
}
