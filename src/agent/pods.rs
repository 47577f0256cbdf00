//! Pod workers: one task per pod bound to this node. Each wakes on a change of the pod, a
//! Docker event for its containers, a probe verdict or a timer; observes the engine; runs the
//! `plan`; writes the `status` when it changed; and on deletion stops the containers within the
//! grace period, removes them and finalizes the pod. Also the sweep for containers of no pod.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::inputs::{self, Source};
use super::plan::{self, Action, Failure, Memory};
use super::probe::{self, ProbeKind, ProbeResult};
use super::runtime::{Observed, RunState, Runtime, LABEL_ATTEMPT, PAUSE_IMAGE, SANDBOX};
use crate::api::core::{Container, Pod};
use crate::api::Kind;
use crate::client::ApiClient;

/// How often a worker looks again when nothing tells it to.
const RESYNC: Duration = Duration::from_secs(10);
/// How long to wait before retrying an image, configuration or sandbox failure.
const RETRY: Duration = Duration::from_secs(10);
/// How long a postStart hook may run before it counts as failed.
const POST_START_LIMIT: Duration = Duration::from_secs(120);

pub struct Ctx {
    pub api: Arc<ApiClient>,
    pub rt: Runtime,
    pub node: String,
    pub host_ip: String,
    pub data_dir: PathBuf,
    /// The Docker network sandboxes join (`none` under the orkops pod network).
    pub network: String,
    /// The orkops pod network, when the agent runs one (`--network orkops`).
    pub net: Option<Arc<super::network::PodNetwork>>,
    pub http: reqwest::Client,
    pub shutdown: watch::Receiver<bool>,
}

impl Ctx {
    /// Records an event about `pod` (best effort: a lost event is logged, not fatal).
    pub fn event(self: &Arc<Self>, pod: &Pod, type_: &str, reason: &str, message: String) {
        let ns = pod.metadata.namespace().to_string();
        let about = crate::api::About {
            ns: &ns,
            kind: Kind::Pod,
            name: pod.metadata.name(),
            uid: pod.metadata.uid.as_deref(),
        };
        let body = crate::api::new_event(
            about,
            type_,
            reason,
            &message,
            "orkops-agent",
            Some(&self.node),
        );
        tracing::info!(pod = %format!("{ns}/{}", pod.metadata.name()), reason, %message, "event");
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.api.create(Kind::Event, Some(&ns), &body).await {
                tracing::debug!(error = %e, "cannot record an event");
            }
        });
    }
}

enum Msg {
    Pod(Box<Pod>),
    Gone,
    Poke,
}

/// The live workers, by pod uid.
#[derive(Clone)]
pub struct Workers {
    ctx: Arc<Ctx>,
    map: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Msg>>>>,
}

fn uid_of(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

impl Workers {
    pub fn new(ctx: Arc<Ctx>) -> Workers {
        Workers {
            ctx,
            map: Arc::default(),
        }
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// A pod bound to this node was seen (added or changed).
    pub fn update(&self, pod: Pod) {
        let uid = uid_of(&pod);
        if uid.is_empty() {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(&uid) {
            if tx.send(Msg::Pod(Box::new(pod.clone()))).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        map.insert(uid.clone(), tx);
        let ctx = self.ctx.clone();
        let me = self.clone();
        tokio::spawn(async move {
            Worker::new(ctx, pod).run(rx).await;
            let mut map = me.map.lock().unwrap_or_else(|e| e.into_inner());
            if map.get(&uid).is_some_and(|tx| tx.is_closed()) {
                map.remove(&uid);
            }
        });
    }

    /// The pod is gone from the API: stop and remove its containers.
    pub fn gone(&self, uid: &str) {
        self.send(uid, Msg::Gone);
    }

    /// Something happened to the pod's containers: look again.
    pub fn poke(&self, uid: &str) {
        self.send(uid, Msg::Poke);
    }

    fn send(&self, uid: &str, m: Msg) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(uid) {
            let _ = tx.send(m);
        }
    }

    pub fn known(&self) -> HashSet<String> {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Removes containers (and their pod's volumes and files) that belong to no known pod.
    pub async fn sweep(&self, listed: &HashSet<String>) -> Result<(), String> {
        let ctx = &self.ctx;
        let all = ctx.rt.list(None).await.map_err(|e| e.0)?;
        let known = self.known();
        let orphans: Vec<&Observed> = all
            .iter()
            .filter(|o| !listed.contains(&o.pod_uid) && !known.contains(&o.pod_uid))
            .collect();
        let mut uids = HashSet::new();
        for o in &orphans {
            tracing::info!(container = %o.id, pod = %format!("{}/{}", o.pod_namespace, o.pod_name), "removing a container of no pod");
            if o.container == SANDBOX {
                let _ = ctx.rt.kill(&o.id).await;
            } else {
                let _ = ctx.rt.stop(&o.id, Duration::from_secs(2)).await;
            }
            ctx.rt.remove(&o.id).await.map_err(|e| e.0)?;
            uids.insert(o.pod_uid.clone());
        }
        // per-pod files and volumes of pods that are no longer here
        let pods_dir = ctx.data_dir.join("pods");
        if let Ok(rd) = std::fs::read_dir(&pods_dir) {
            for e in rd.flatten() {
                uids.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
        for (_, labels) in ctx
            .rt
            .volumes(super::runtime::LABEL_POD_UID)
            .await
            .map_err(|e| e.0)?
        {
            if let Some(u) = labels.get(super::runtime::LABEL_POD_UID) {
                uids.insert(u.clone());
            }
        }
        let known = self.known();
        for uid in uids
            .iter()
            .filter(|u| !listed.contains(*u) && !known.contains(*u))
        {
            inputs::cleanup(&ctx.rt, &ctx.data_dir, uid).await?;
        }
        self.sweep_claims().await
    }

    /// Removes the volumes of claims that were deleted, once their PersistentVolume is gone too
    /// (reclaim policy Delete). A volume still mounted by a container stays until the next sweep.
    async fn sweep_claims(&self) -> Result<(), String> {
        use super::runtime::{LABEL_PVC, LABEL_PVC_UID};
        let ctx = &self.ctx;
        for (name, labels) in ctx.rt.volumes(LABEL_PVC_UID).await.map_err(|e| e.0)? {
            let (Some(uid), Some((ns, claim))) = (
                labels.get(LABEL_PVC_UID),
                labels.get(LABEL_PVC).and_then(|c| c.split_once('.')),
            ) else {
                continue;
            };
            let claim_gone = match ctx
                .api
                .get(Kind::PersistentVolumeClaim, Some(ns), claim)
                .await
            {
                Ok(v) => v.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid.as_str()),
                Err(e) if e.is_not_found() => true,
                Err(_) => false,
            };
            // the PersistentVolume provisioned for the claim keeps the data while it exists
            // (Released, with reclaim policy Retain); the binder deletes it otherwise
            let gone = claim_gone
                && matches!(
                    ctx.api.get(Kind::PersistentVolume, None, &format!("pvc-{uid}")).await,
                    Err(e) if e.is_not_found()
                );
            if gone {
                match ctx.rt.remove_volume(&name).await {
                    Ok(()) => {
                        tracing::info!(volume = %name, claim = %format!("{ns}/{claim}"), "removed the volume of a deleted claim")
                    }
                    Err(e) => {
                        tracing::debug!(volume = %name, error = %e, "the volume of a deleted claim is still in use")
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Started {
    Yes,
    Failed,
    No,
}

struct Worker {
    ctx: Arc<Ctx>,
    pod: Pod,
    mem: Memory,
    volumes: Option<BTreeMap<String, Source>>,
    probes: HashMap<(String, ProbeKind), JoinHandle<()>>,
    probe_tx: mpsc::UnboundedSender<ProbeResult>,
    probe_rx: mpsc::UnboundedReceiver<ProbeResult>,
    sandbox_failures: u32,
    /// The resourceVersion our last status write made: a pod seen with a later one had its
    /// status written by someone else since (the node controller marking it not ready).
    written: Option<i64>,
    /// The labels and annotations the downward API files were written from.
    downward_seen: (BTreeMap<String, String>, BTreeMap<String, String>),
    /// Whether the MissingClusterDNS warning was given for this pod.
    warned_dns: bool,
}

fn short(uid: &str) -> &str {
    &uid[..uid.len().min(8)]
}

/// The bytes the files under `dir` take on disk (allocated blocks, as `du` counts them).
fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            total += m.blocks() * 512;
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

/// What a pod's downward API files show that can change while it runs.
fn downward_view(p: &Pod) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    (p.metadata.labels.clone(), p.metadata.annotations.clone())
}

/// The pod's sidecars (init containers with `restartPolicy: Always`).
fn sidecars(p: &Pod) -> impl Iterator<Item = &Container> {
    p.spec
        .init_containers
        .iter()
        .filter(|c| crate::api::podfields::is_sidecar(c))
}

impl Worker {
    fn new(ctx: Arc<Ctx>, pod: Pod) -> Worker {
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        Worker {
            ctx,
            pod,
            mem: Memory::default(),
            volumes: None,
            probes: HashMap::new(),
            probe_tx,
            probe_rx,
            sandbox_failures: 0,
            written: None,
            downward_seen: Default::default(),
            warned_dns: false,
        }
    }

    fn name(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace(),
            self.pod.metadata.name()
        )
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut gone = false;
        let mut shutdown = self.ctx.shutdown.clone();
        loop {
            if gone || self.pod.metadata.deletion_timestamp.is_some() {
                self.teardown().await;
                if !gone {
                    self.finalize().await;
                }
                break;
            }
            let wake = match self.sync().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(pod = %self.name(), error = %e, "sync failed; retrying");
                    Some(Utc::now() + chrono::Duration::seconds(2))
                }
            };
            let wait = wake
                .and_then(|w| (w - Utc::now()).to_std().ok())
                .unwrap_or(Duration::ZERO)
                .min(RESYNC);
            let wait = if wake.is_none() {
                RESYNC
            } else {
                wait.max(Duration::from_millis(50))
            };
            tokio::select! {
                m = rx.recv() => match m {
                    None => break,
                    Some(m) => {
                        gone |= self.take(m);
                        while let Ok(m) = rx.try_recv() {
                            gone |= self.take(m);
                        }
                    }
                },
                Some(r) = self.probe_rx.recv() => self.probed(r),
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
        for (_, h) in self.probes.drain() {
            h.abort();
        }
    }

    /// Applies a message; true when the pod is gone.
    fn take(&mut self, m: Msg) -> bool {
        match m {
            Msg::Pod(p) => {
                // keep our own view of the status while the watch lags behind our writes; a
                // status someone wrote after ours is taken, so the next sync puts ours back
                let status = self.pod.status.take();
                let seen: Option<i64> = p
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok());
                let after_ours = matches!((seen, self.written), (Some(s), Some(w)) if s > w);
                self.pod = *p;
                if status.is_some() && !after_ours {
                    self.pod.status = status;
                }
                false
            }
            Msg::Gone => true,
            Msg::Poke => false,
        }
    }

    fn probed(&mut self, r: ProbeResult) {
        match r.kind {
            ProbeKind::Readiness => {
                self.mem.ready.insert(r.container_id.clone(), r.ok);
                if !r.ok {
                    self.ctx.event(
                        &self.pod,
                        "Warning",
                        "Unhealthy",
                        format!(
                            "Readiness probe failed for container {:?}: {}",
                            r.container, r.message
                        ),
                    );
                }
            }
            ProbeKind::Startup if r.ok => {
                self.mem.started.insert(r.container_id.clone());
            }
            ProbeKind::Startup => {
                self.mem.liveness_failed.insert(r.container_id.clone());
                self.ctx.event(
                    &self.pod,
                    "Warning",
                    "Unhealthy",
                    format!(
                        "Startup probe failed for container {:?}: {}; it will be restarted",
                        r.container, r.message
                    ),
                );
            }
            ProbeKind::Liveness => {
                self.mem.liveness_failed.insert(r.container_id.clone());
                self.ctx.event(
                    &self.pod,
                    "Warning",
                    "Unhealthy",
                    format!(
                        "Liveness probe failed for container {:?}: {}; it will be restarted",
                        r.container, r.message
                    ),
                );
            }
        }
    }

    async fn sync(&mut self) -> Result<Option<chrono::DateTime<Utc>>, String> {
        let uid = uid_of(&self.pod);
        let mut observed = self.ctx.rt.list(Some(&uid)).await.map_err(|e| e.0)?;
        if self.mem.ready.is_empty() {
            self.adopt_readiness(&observed);
        }
        self.refresh_downward().await;
        self.read_termination_messages(&observed).await;
        self.check_empty_dir_limits().await;
        // a new sandbox unlocks the containers' start: plan again at once rather than on the
        // engine's event (a few rounds at most)
        let mut wake_at = None;
        for _ in 0..3 {
            let p = plan::plan(&self.pod, &observed, &self.mem, Utc::now());
            wake_at = p.wake_at;
            if p.actions.is_empty() {
                break;
            }
            let again = p.actions.contains(&Action::CreateSandbox);
            for a in p.actions {
                self.execute(a, &observed).await?;
            }
            observed = self.ctx.rt.list(Some(&uid)).await.map_err(|e| e.0)?;
            if !again {
                break;
            }
        }
        self.manage_probes(&observed);
        self.read_termination_messages(&observed).await;
        let status = plan::status(
            &self.pod,
            &observed,
            &self.mem,
            &self.ctx.host_ip,
            Utc::now(),
        );
        if self.pod.status.as_ref() != Some(&status) {
            self.write_status(status).await?;
        }
        Ok(wake_at)
    }

    /// Writes the downward API files again when the pod's labels or annotations changed.
    async fn refresh_downward(&mut self) {
        let view = downward_view(&self.pod);
        if self.volumes.is_none() || view == self.downward_seen {
            return;
        }
        let ctx = self.ctx.clone();
        // volume files name no address: no sandbox needed
        let facts = super::container::facts(&ctx, &self.pod, None);
        match inputs::refresh_downward(&ctx.api, &ctx.data_dir, &self.pod, &facts).await {
            Ok(()) => self.downward_seen = view,
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "cannot refresh the downward API files")
            }
        }
    }

    /// Reads the termination message of each container attempt that exited since the last look
    /// (and forgets those of attempts the engine no longer has).
    async fn read_termination_messages(&mut self, observed: &[Observed]) {
        let ids: std::collections::HashSet<&str> = observed.iter().map(|o| o.id.as_str()).collect();
        self.mem.messages.retain(|id, _| ids.contains(id.as_str()));
        let spec = &self.pod.spec;
        for o in observed.iter().filter(|o| o.state == RunState::Exited) {
            if o.container == SANDBOX || self.mem.messages.contains_key(&o.id) {
                continue;
            }
            let Some(c) = spec
                .init_containers
                .iter()
                .chain(&spec.containers)
                .find(|c| c.name == o.container)
            else {
                continue;
            };
            let msg = super::container::termination_message(&self.ctx, &self.pod, c, o).await;
            // an empty message is remembered too, so that the file is read once
            self.mem
                .messages
                .insert(o.id.clone(), msg.unwrap_or_default());
        }
    }

    /// Evicts the pod when a disk-backed emptyDir holds more than its sizeLimit, as the
    /// kubelet's eviction manager does (a Memory one is a tmpfs of that size already).
    async fn check_empty_dir_limits(&mut self) {
        if self.mem.evicted.is_some() || plan::is_terminal(&self.pod) {
            return;
        }
        let Some(sources) = &self.volumes else { return };
        for v in &self.pod.spec.volumes {
            let Some(ed) = &v.empty_dir else { continue };
            let (Some(limit), false) = (&ed.size_limit, ed.medium.as_deref() == Some("Memory"))
            else {
                continue;
            };
            let (Some(Source::Volume(_, dir)), Ok(max)) = (sources.get(&v.name), limit.millis())
            else {
                continue;
            };
            let dir = dir.clone();
            let used = tokio::task::spawn_blocking(move || disk_usage(&dir))
                .await
                .unwrap_or(0);
            if used as i128 * 1000 > max {
                let why = format!(
                    "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                    v.name, limit.0
                );
                self.ctx.event(&self.pod, "Warning", "Evicted", why.clone());
                self.mem.evicted = Some(why);
                return;
            }
        }
    }

    /// Removes the termination-log files of attempts older than the one before `attempt` (the
    /// engine keeps only those two).
    fn prune_termination_logs(&self, container: &str, attempt: u32) {
        let uid = uid_of(&self.pod);
        let dir = inputs::pod_dir(&self.ctx.data_dir, &uid)
            .join("containers")
            .join(container);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let old = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n + 1 < attempt);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// An adopted running container keeps the readiness it had before the agent restarted.
    fn adopt_readiness(&mut self, observed: &[Observed]) {
        let Some(st) = &self.pod.status else { return };
        for cs in &st.container_statuses {
            if let Some(o) =
                plan::latest(observed, &cs.name).filter(|o| o.state == RunState::Running)
            {
                if cs.container_id.as_deref() == Some(&format!("docker://{}", o.id)) {
                    if cs.ready {
                        self.mem.ready.insert(o.id.clone(), true);
                    }
                    if cs.started == Some(true) {
                        self.mem.started.insert(o.id.clone());
                    }
                }
            }
        }
    }

    async fn write_status(&mut self, status: crate::api::core::PodStatus) -> Result<(), String> {
        if let Some(rv) = write_status(&self.ctx.api, &self.pod, &status).await? {
            self.pod.status = Some(status);
            self.written = Some(rv);
        }
        Ok(())
    }

    fn manage_probes(&mut self, observed: &[Observed]) {
        let running: HashMap<&str, &Observed> = observed
            .iter()
            .filter(|o| o.state == RunState::Running && o.container != SANDBOX)
            .map(|o| (o.id.as_str(), o))
            .collect();
        self.probes.retain(|(id, _), h| {
            let keep = running.contains_key(id.as_str()) && !h.is_finished();
            if !keep {
                h.abort();
            }
            keep
        });
        self.mem
            .ready
            .retain(|id, _| running.contains_key(id.as_str()));
        self.mem
            .liveness_failed
            .retain(|id| running.contains_key(id.as_str()));
        self.mem
            .started
            .retain(|id| running.contains_key(id.as_str()));
        let ip = plan::latest(observed, SANDBOX)
            .and_then(|s| s.ip.clone())
            .unwrap_or_else(|| "127.0.0.1".into());
        let pod = self.pod.clone();
        for c in sidecars(&pod).chain(&pod.spec.containers) {
            let Some(o) = plan::latest(observed, &c.name).filter(|o| o.state == RunState::Running)
            else {
                continue;
            };
            // the startup probe first; liveness and readiness once it passed
            let started = c.startup_probe.is_none() || self.mem.started.contains(&o.id);
            for (kind, p) in [
                (ProbeKind::Startup, &c.startup_probe),
                (ProbeKind::Liveness, &c.liveness_probe),
                (ProbeKind::Readiness, &c.readiness_probe),
            ] {
                let Some(p) = p else { continue };
                if (kind == ProbeKind::Startup) == started {
                    continue;
                }
                let key = (o.id.clone(), kind);
                if self.probes.contains_key(&key)
                    || (kind != ProbeKind::Readiness && self.mem.liveness_failed.contains(&o.id))
                {
                    continue;
                }
                let target = probe::Target {
                    rt: self.ctx.rt.clone(),
                    http: self.ctx.http.clone(),
                    ip: ip.clone(),
                    container_id: o.id.clone(),
                    container: c.clone(),
                };
                let initially = self.mem.ready.get(&o.id).copied().unwrap_or(false);
                let h = tokio::spawn(probe::run(
                    target,
                    kind,
                    crate::api::core::Probe::clone(p),
                    initially,
                    self.probe_tx.clone(),
                ));
                self.probes.insert(key, h);
            }
        }
    }

    fn container_name(&self, c: &str, attempt: u32) -> String {
        format!(
            "orkops_{c}_{}_{}_{}_{attempt}",
            self.pod.metadata.name(),
            self.pod.metadata.namespace(),
            short(self.pod.metadata.uid.as_deref().unwrap_or(""))
        )
    }

    fn labels(&self, container: &str, attempt: u32) -> HashMap<String, String> {
        let mut l = self.ctx.rt.labels_for(
            self.pod.metadata.uid.as_deref().unwrap_or(""),
            self.pod.metadata.namespace(),
            self.pod.metadata.name(),
            container,
        );
        l.insert(LABEL_ATTEMPT.into(), attempt.to_string());
        l
    }

    fn fail(&mut self, key: &str, reason: &str, message: String, retry: Duration) {
        let retry_at = Utc::now() + chrono::Duration::from_std(retry).unwrap_or_default();
        let f = Failure {
            reason: reason.into(),
            message: message.clone(),
            retry_at,
        };
        let same = self
            .mem
            .failures
            .get(key)
            .is_some_and(|old| old.reason == f.reason && old.message == f.message);
        if !same {
            self.ctx.event(&self.pod, "Warning", reason, message);
        }
        self.mem.failures.insert(key.to_string(), f);
    }

    async fn execute(&mut self, a: Action, observed: &[Observed]) -> Result<(), String> {
        match a {
            Action::CreateSandbox => self.create_sandbox(observed).await,
            Action::Start {
                name,
                attempt,
                backoff_level,
            } => {
                let spec = &self.pod.spec;
                let Some(c) = spec
                    .init_containers
                    .iter()
                    .chain(&spec.containers)
                    .find(|c| c.name == name)
                    .cloned()
                else {
                    return Ok(());
                };
                let started = self.start(&c, attempt, observed).await?;
                if started != Started::No {
                    // a failed start counts as a crash: the back-off grows
                    self.mem.backoff.insert(name.clone(), backoff_level);
                    self.mem.failures.remove(&name);
                }
                if started == Started::Yes {
                    self.ctx.event(
                        &self.pod,
                        "Normal",
                        "Started",
                        if attempt == 0 {
                            format!("Started container {name:?}")
                        } else {
                            format!("Restarted container {name:?} (restart {attempt})")
                        },
                    );
                }
                Ok(())
            }
            Action::Kill {
                id,
                container,
                grace,
                reason,
            } => {
                if container == SANDBOX {
                    self.ctx.rt.kill(&id).await.map_err(|e| e.0)
                } else {
                    self.ctx.event(
                        &self.pod,
                        "Normal",
                        "Killing",
                        format!("Stopping container {container:?}: {reason}"),
                    );
                    let left = match observed.iter().find(|o| o.id == id) {
                        Some(o) => self.pre_stop(o, observed, grace).await,
                        None => grace,
                    };
                    self.ctx.rt.stop(&id, left).await.map_err(|e| e.0)?;
                    self.mem.liveness_failed.remove(&id);
                    Ok(())
                }
            }
            Action::Remove { id } => self.ctx.rt.remove(&id).await.map_err(|e| e.0),
        }
    }

    async fn create_sandbox(&mut self, observed: &[Observed]) -> Result<(), String> {
        let ctx = self.ctx.clone();
        for o in observed.iter().filter(|o| o.container == SANDBOX) {
            ctx.rt.remove(&o.id).await.map_err(|e| e.0)?;
        }
        ctx.rt.ensure_pause_image().await.map_err(|e| e.0)?;
        let attempt = plan::latest(observed, SANDBOX).map_or(0, |s| s.attempt + 1);
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed = HashMap::new();
        let mut host_ports = Vec::new();
        for c in &self.pod.spec.containers {
            for p in &c.ports {
                let Some(hp) = p.host_port.filter(|h| *h > 0) else {
                    continue;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                let key = format!("{}/{proto}", p.container_port);
                exposed.insert(key.clone(), HashMap::new());
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
                        host_port: Some(hp.to_string()),
                    });
                host_ports.push(format!(
                    "{hp}/{} (container {:?})",
                    proto.to_uppercase(),
                    c.name
                ));
            }
        }
        let hostname = super::etcfiles::hostname(&self.pod);
        let spec = &self.pod.spec;
        let sysctls: HashMap<String, String> = spec
            .security_context
            .iter()
            .flat_map(|s| &s.sysctls)
            .map(|s| (s.name.replace('/', "."), s.value.clone()))
            .collect();
        // the sandbox holds the pod's namespaces: the node's under hostNetwork / hostIPC /
        // hostPID, its own otherwise (IPC shareable, for the containers to join)
        let namespaces = HostConfig {
            ipc_mode: Some(if spec.host_ipc { "host" } else { "shareable" }.into()),
            pid_mode: spec.host_pid.then(|| "host".into()),
            sysctls: (!sysctls.is_empty()).then_some(sysctls),
            ..Default::default()
        };
        if spec.host_network {
            return self
                .start_sandbox(
                    ContainerCreateBody {
                        image: Some(PAUSE_IMAGE.into()),
                        labels: Some(self.labels(SANDBOX, attempt)),
                        host_config: Some(HostConfig {
                            network_mode: Some("host".into()),
                            uts_mode: Some("host".into()),
                            ..namespaces
                        }),
                        ..Default::default()
                    },
                    attempt,
                    &host_ports,
                )
                .await;
        }
        if let Some(net) = &ctx.net {
            if !host_ports.is_empty() {
                let message = format!(
                    "hostPort ({}) is not supported on the orkops pod network of node {}; use a NodePort service",
                    host_ports.join(", "),
                    ctx.node
                );
                self.fail(
                    SANDBOX,
                    "FailedCreatePodSandbox",
                    message,
                    RETRY.max(Duration::from_secs(60)),
                );
                return Ok(());
            }
            return self
                .create_networked_sandbox(net.clone(), hostname, attempt, namespaces)
                .await;
        }
        let body = ContainerCreateBody {
            image: Some(PAUSE_IMAGE.into()),
            hostname: Some(hostname.chars().take(63).collect()),
            labels: Some(self.labels(SANDBOX, attempt)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(HostConfig {
                network_mode: Some(ctx.network.clone()),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                ..namespaces
            }),
            ..Default::default()
        };
        self.start_sandbox(body, attempt, &host_ports).await
    }

    /// Creates and starts the sandbox from `body`; a failure is recorded with back-off.
    async fn start_sandbox(
        &mut self,
        body: ContainerCreateBody,
        attempt: u32,
        host_ports: &[String],
    ) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let name = self.container_name(SANDBOX, attempt);
        let r = match ctx.rt.create(&name, body).await {
            Ok(id) => match ctx.rt.start(&id).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = ctx.rt.remove(&id).await;
                    Err(e.0)
                }
            },
            Err(e) => Err(e.0),
        };
        match r {
            Ok(()) => {
                self.sandbox_failures = 0;
                self.mem.failures.remove(SANDBOX);
                Ok(())
            }
            Err(msg) => {
                let port_taken = msg.contains("port is already allocated")
                    || msg.contains("address already in use");
                let message = if port_taken {
                    format!(
                        "cannot start the pod's sandbox on node {}: a host port is already in use ({}): {msg}",
                        ctx.node,
                        host_ports.join(", ")
                    )
                } else {
                    format!("cannot start the pod's sandbox on node {}: {msg}", ctx.node)
                };
                self.sandbox_failures += 1;
                let delay = plan::backoff_delay(self.sandbox_failures).max(RETRY);
                self.fail(SANDBOX, "FailedCreatePodSandbox", message, delay);
                Ok(())
            }
        }
    }

    /// The sandbox on the orkops pod network: no Docker network; the agent gives it an
    /// address from the node's pod CIDR and plugs it into the bridge.
    async fn create_networked_sandbox(
        &mut self,
        net: Arc<super::network::PodNetwork>,
        hostname: String,
        attempt: u32,
        namespaces: HostConfig,
    ) -> Result<(), String> {
        let ctx = self.ctx.clone();
        let used: std::collections::HashSet<std::net::Ipv4Addr> = ctx
            .rt
            .list(None)
            .await
            .map_err(|e| e.0)?
            .iter()
            .filter(|o| o.container == SANDBOX)
            .filter_map(|o| o.ip.as_deref()?.parse().ok())
            .collect();
        let ip = match net.allocate(&used) {
            Ok(ip) => ip,
            Err(message) => {
                self.fail(SANDBOX, "FailedCreatePodSandbox", message, RETRY);
                return Ok(());
            }
        };
        let mut labels = self.labels(SANDBOX, attempt);
        labels.insert(super::runtime::LABEL_POD_IP.into(), ip.to_string());
        let body = ContainerCreateBody {
            image: Some(PAUSE_IMAGE.into()),
            hostname: Some(hostname.chars().take(63).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..namespaces
            }),
            ..Default::default()
        };
        let name = self.container_name(SANDBOX, attempt);
        let r = async {
            let id = ctx.rt.create(&name, body).await.map_err(|e| e.0)?;
            net.allocated(ip);
            let plugged = async {
                ctx.rt.start(&id).await.map_err(|e| e.0)?;
                let pid = ctx.rt.pid(&id).await.map_err(|e| e.0)?;
                net.attach(pid, &id, ip).await
            };
            if let Err(e) = plugged.await {
                let _ = ctx.rt.remove(&id).await;
                return Err(e);
            }
            Ok(())
        }
        .await;
        net.allocated(ip);
        match r {
            Ok(()) => {
                self.sandbox_failures = 0;
                self.mem.failures.remove(SANDBOX);
            }
            Err(msg) => {
                self.sandbox_failures += 1;
                let delay = plan::backoff_delay(self.sandbox_failures).max(RETRY);
                let message = format!("cannot start the pod's sandbox on node {}: {msg}", ctx.node);
                self.fail(SANDBOX, "FailedCreatePodSandbox", message, delay);
            }
        }
        Ok(())
    }

    fn hook_target(&self, container_id: &str, c: &Container, ip: Option<String>) -> probe::Target {
        probe::Target {
            rt: self.ctx.rt.clone(),
            http: self.ctx.http.clone(),
            ip: ip.unwrap_or_else(|| "127.0.0.1".into()),
            container_id: container_id.to_string(),
            container: c.clone(),
        }
    }

    /// Runs the preStop hook of the running container `o` (if its spec has one) within
    /// `grace`, and returns what is left of the grace period for SIGTERM.
    async fn pre_stop(&self, o: &Observed, observed: &[Observed], grace: Duration) -> Duration {
        let spec = &self.pod.spec;
        let Some(c) = spec
            .init_containers
            .iter()
            .chain(&spec.containers)
            .find(|c| c.name == o.container)
        else {
            return grace;
        };
        let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
            return grace;
        };
        let ip = plan::latest(observed, SANDBOX).and_then(|s| s.ip.clone());
        let target = self.hook_target(&o.id, c, ip);
        let began = std::time::Instant::now();
        if let Err(why) = probe::run_hook(&target, h, grace).await {
            self.ctx.event(
                &self.pod,
                "Warning",
                "FailedPreStopHook",
                format!("PreStopHook failed for container {:?}: {why}", c.name),
            );
        }
        grace.saturating_sub(began.elapsed())
    }

    /// The registry credentials the pod's `imagePullSecrets` hold for `image`. A secret that
    /// cannot be read is a warning and the pull goes on without it, as the kubelet does.
    async fn pull_credentials(&self, image: &str) -> Option<bollard::auth::DockerCredentials> {
        let ns = self.pod.metadata.namespace().to_string();
        let mut missing = Vec::new();
        let mut found = None;
        for r in &self.pod.spec.image_pull_secrets {
            match inputs::secret(&self.ctx.api, &ns, &r.name).await {
                Ok(Some(data)) => {
                    let config = data
                        .get(".dockerconfigjson")
                        .or_else(|| data.get(".dockercfg"));
                    found = config.and_then(|c| super::runtime::credentials_for(image, c));
                    if found.is_some() {
                        break;
                    }
                }
                Ok(None) => missing.push(r.name.clone()),
                Err(e) => missing.push(format!("{} ({})", r.name, e.0)),
            }
        }
        if !missing.is_empty() {
            self.ctx.event(
                &self.pod,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        found
    }

    /// Creates and starts one container. `No` when an input or the image is missing (the
    /// failure is recorded for the status); `Failed` when the engine could not start it.
    async fn start(
        &mut self,
        c: &Container,
        attempt: u32,
        observed: &[Observed],
    ) -> Result<Started, String> {
        let ctx = self.ctx.clone();
        let Some(sandbox) =
            plan::latest(observed, SANDBOX).filter(|s| s.state == RunState::Running)
        else {
            return Ok(Started::No);
        };
        // image, per the pull policy
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let present = ctx.rt.image_present(&c.image).await.map_err(|e| e.0)?;
        let hint = format!(
            "hint: a cluster without a registry gets images with `orkops image load {} --node {}`",
            c.image, ctx.node
        );
        match (policy, present) {
            ("Never", false) => {
                self.fail(
                    &c.name,
                    "ErrImageNeverPull",
                    format!(
                        "image {:?} is not present on node {} and imagePullPolicy is Never; {hint}",
                        c.image, ctx.node
                    ),
                    RETRY,
                );
                return Ok(Started::No);
            }
            ("Always", _) | (_, false) if policy != "Never" => {
                let credentials = self.pull_credentials(&c.image).await;
                if let Err(e) = ctx.rt.pull(&c.image, credentials).await {
                    self.fail(
                        &c.name,
                        "ErrImagePull",
                        format!(
                            "cannot pull image {:?} on node {}: {}; {hint}",
                            c.image, ctx.node, e.0
                        ),
                        RETRY,
                    );
                    return Ok(Started::No);
                }
            }
            _ => {}
        }
        // securityContext: runAsNonRoot is checked against the image's user, as the kubelet does
        let image_user = ctx.rt.image_user(&c.image).await.map_err(|e| e.0)?;
        if let Some(message) = super::runtime::non_root_violation(&self.pod, c, &image_user) {
            self.fail(&c.name, "CreateContainerConfigError", message, RETRY);
            return Ok(Started::No);
        }
        // volumes, environment, mounts, namespaces
        if self.volumes.is_none() {
            let facts = super::container::facts(&ctx, &self.pod, Some(sandbox));
            match inputs::prepare_volumes(&ctx.api, &ctx.rt, &ctx.data_dir, &self.pod, &facts).await
            {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.downward_seen = downward_view(&self.pod);
                }
                Err(e) => {
                    self.fail(&c.name, "CreateContainerConfigError", e.0, RETRY);
                    return Ok(Started::No);
                }
            }
        }
        let sources = self.volumes.clone().unwrap_or_default();
        self.prune_termination_logs(&c.name, attempt);
        let setup = super::container::Setup {
            ctx: &ctx,
            pod: &self.pod,
            sandbox,
            sources: &sources,
            attempt,
            image_user: &image_user,
            labels: self.labels(&c.name, attempt),
        };
        let built = match super::container::build(setup, c).await {
            Ok(b) => b,
            Err(e) => {
                self.fail(&c.name, "CreateContainerConfigError", e.0, RETRY);
                return Ok(Started::No);
            }
        };
        if built.missing_cluster_dns && !self.warned_dns {
            self.warned_dns = true;
            self.ctx.event(
                &self.pod,
                "Warning",
                "MissingClusterDNS",
                format!(
                    "pod: \"{}_{}({})\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                    self.pod.metadata.name(),
                    self.pod.metadata.namespace(),
                    self.pod.metadata.uid.as_deref().unwrap_or("")
                ),
            );
        }
        let body = built.body;
        let name = self.container_name(&c.name, attempt);
        let id = match ctx.rt.create(&name, body).await {
            Ok(id) => id,
            Err(e) => {
                self.fail(
                    &c.name,
                    "CreateContainerError",
                    format!("cannot create container {:?}: {}", c.name, e.0),
                    RETRY,
                );
                return Ok(Started::No);
            }
        };
        if let Err(e) = ctx.rt.start(&id).await {
            // the engine keeps the container with its error; the plan restarts it with back-off
            self.ctx.event(
                &self.pod,
                "Warning",
                "Failed",
                format!("cannot start container {:?}: {}", c.name, e.0),
            );
            return Ok(Started::Failed);
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            // as the kubelet: a failed postStart hook kills the container, which then restarts
            // per the restart policy
            let target = self.hook_target(&id, c, sandbox.ip.clone());
            if let Err(why) = probe::run_hook(&target, h, POST_START_LIMIT).await {
                self.ctx.event(
                    &self.pod,
                    "Warning",
                    "FailedPostStartHook",
                    format!("PostStartHook failed for container {:?}: {why}", c.name),
                );
                ctx.rt
                    .stop(&id, plan::grace(&self.pod))
                    .await
                    .map_err(|e| e.0)?;
            }
        }
        Ok(Started::Yes)
    }

    /// Stops every container of the pod (app containers within the grace period left), then
    /// removes them with the pod's volumes and files (claims stay).
    async fn teardown(&mut self) {
        for (_, h) in self.probes.drain() {
            h.abort();
        }
        let ctx = self.ctx.clone();
        let uid = uid_of(&self.pod);
        let grace = match self.pod.metadata.deletion_timestamp {
            Some(t) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => plan::grace(&self.pod),
        };
        let observed = match ctx.rt.list(Some(&uid)).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(pod = %self.name(), error = %e, "cannot list the pod's containers for removal");
                return;
            }
        };
        // the app (and regular init) containers first, then the sidecars, last started
        // first, as the kubelet stops them
        let sidecar_names: Vec<String> = sidecars(&self.pod).map(|c| c.name.clone()).collect();
        let running = |o: &&Observed| o.container != SANDBOX && o.state == RunState::Running;
        let first: Vec<&Observed> = observed
            .iter()
            .filter(running)
            .filter(|o| !sidecar_names.contains(&o.container))
            .collect();
        self.stop_all(&first, &observed, grace).await;
        for name in sidecar_names.iter().rev() {
            let left = match self.pod.metadata.deletion_timestamp {
                Some(t) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                None => grace,
            };
            let these: Vec<&Observed> = observed
                .iter()
                .filter(running)
                .filter(|o| &o.container == name)
                .collect();
            self.stop_all(&these, &observed, left).await;
        }
        for o in &observed {
            if let Err(e) = ctx.rt.remove(&o.id).await {
                tracing::warn!(pod = %self.name(), error = %e, "cannot remove a container");
            }
        }
        if let Err(e) = inputs::cleanup(&ctx.rt, &ctx.data_dir, &uid).await {
            tracing::warn!(pod = %self.name(), error = %e, "cannot remove the pod's volumes");
        }
        tracing::info!(pod = %self.name(), "pod stopped and removed");
    }

    /// Stops `these` running containers at once: preStop hooks within `grace`, then SIGTERM
    /// with what is left of it.
    async fn stop_all(&self, these: &[&Observed], observed: &[Observed], grace: Duration) {
        let ctx = self.ctx.clone();
        let this = self;
        let stops = these.iter().copied().map(|o| {
            this.ctx.event(
                &this.pod,
                "Normal",
                "Killing",
                format!("Stopping container {:?}", o.container),
            );
            // preStop first, within the grace period; SIGTERM gets what is left of it
            let ctx = &ctx;
            async move {
                let left = this.pre_stop(o, observed, grace).await;
                ctx.rt.stop(&o.id, left).await
            }
        });
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!(pod = %self.name(), error = %e, "cannot stop a container");
            }
        }
    }

    async fn finalize(&self) {
        finalize(&self.ctx.api, &self.pod).await
    }
}

/// Writes `status` as the status of `pod` (the agent's only write of a pod); the revision
/// written, or None when the pod is gone. A pod replaced by another of the same name is an
/// error. Shared with the hollow nodes.
pub async fn write_status(
    api: &ApiClient,
    pod: &Pod,
    status: &crate::api::core::PodStatus,
) -> Result<Option<i64>, String> {
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.metadata.name(), "namespace": pod.metadata.namespace()},
        "status": status,
    });
    match api
        .replace_status(
            Kind::Pod,
            Some(pod.metadata.namespace()),
            pod.metadata.name(),
            &body,
        )
        .await
    {
        Ok(v) => {
            if v.pointer("/metadata/uid").and_then(Value::as_str) != pod.metadata.uid.as_deref() {
                return Err("the pod was replaced by another with the same name".into());
            }
            Ok(Some(crate::api::resource_version_of(&v).unwrap_or(0)))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("cannot write the pod status: {e}")),
    }
}

/// Removes the pod object once its containers are gone (only this pod: a new pod with the same
/// name has another uid, and the precondition protects it). Shared with the hollow nodes.
pub async fn finalize(api: &ApiClient, pod: &Pod) {
    let body = json!({
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
        "preconditions": {"uid": pod.metadata.uid},
    });
    let path = Kind::Pod.path(Some(pod.metadata.namespace()), Some(pod.metadata.name()));
    match api
        .request(reqwest::Method::DELETE, &path, &[], Some(&body))
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() || e.code() == Some(409) => {}
        Err(e) => tracing::warn!(
            pod = %format!("{}/{}", pod.metadata.namespace(), pod.metadata.name()),
            error = %e,
            "cannot remove the pod object"
        ),
    }
}
