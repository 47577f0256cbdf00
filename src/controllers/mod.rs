//! The master's control loops: the scheduler, the Deployment and ReplicaSet controllers, node
//! lifecycle and garbage collection. Each loop is level-triggered: a change of the kinds it watches (or a
//! periodic resync) wakes it, it lists what it needs through the engine (as the master), runs
//! its pure reconciler (`scheduler`, `deployments`, `replicasets`, `lifecycle`) and applies the
//! actions.

pub mod cronjobs;
pub mod deployments;
pub mod endpoints;
pub mod jobs;
pub mod lifecycle;
pub mod loadbalancer;
pub mod replicasets;
pub mod routes;
pub mod scheduler;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::api::core::{Node, Pod};
use crate::api::meta::{ObjectMeta, OwnerReference};
use crate::api::workloads::Deployment;
use crate::api::Kind;
use crate::apiserver::engine::{Command, DeleteOptions, ListQuery, Reply};
use crate::apiserver::{ApiError, Caller, Engine};

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A node that has not posted a heartbeat for this long is marked NotReady.
    pub node_monitor_grace: Duration,
    /// Pods of a node NotReady for this long are deleted (and replaced by their controllers).
    pub pod_eviction_timeout: Duration,
    /// The cloud whose load balancers LoadBalancer services get (none: they stay pending).
    pub cloud: Option<loadbalancer::controller::CloudConfig>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            node_monitor_grace: Duration::from_secs(40),
            pod_eviction_timeout: Duration::from_secs(60),
            cloud: None,
        }
    }
}

/// The uid of an object's controlling owner.
pub fn controller_of(m: &ObjectMeta) -> Option<&str> {
    m.owner_references
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// The reference that makes `owner` (of `kind` in `api_version`) the controller of a new object.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name().to_string(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new pod from a controller's pod template: named `generate_name` + random suffix, with
/// `labels` added and `owner` as its controller.
pub fn pod_from_template(
    template: &Value,
    generate_name: String,
    namespace: &str,
    labels: &[(&str, &str)],
    owner: OwnerReference,
) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("name");
    }
    meta["generateName"] = json!(generate_name);
    meta["namespace"] = json!(namespace);
    for (k, v) in labels {
        meta["labels"][*k] = json!(v);
    }
    meta["ownerReferences"] = json!([owner]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
}

/// `items` grouped by the uid of their controlling owner.
fn by_controller<'a, T: Clone>(
    items: &'a [T],
    meta: impl Fn(&'a T) -> &'a ObjectMeta,
) -> HashMap<&'a str, Vec<T>> {
    let mut out: HashMap<&str, Vec<T>> = HashMap::new();
    for i in items {
        if let Some(o) = controller_of(meta(i)) {
            out.entry(o).or_default().push(i.clone());
        }
    }
    out
}

pub use crate::api::About;

/// The most pods a controller creates or deletes for one object in one pass, as Kubernetes'
/// ReplicaSet and Job controllers do (`burstReplicas`): a large `replicas` is worked through over
/// several passes, so what a pass holds is bounded by this, not by the number asked for.
pub const BURST: usize = 500;

/// How many of `missing` pods to act on in this pass: at most [`BURST`], never negative.
pub fn burst(missing: i64) -> usize {
    usize::try_from(missing.clamp(0, BURST as i64)).unwrap_or(0)
}

/// Kubernetes' slow start: batch sizes 1, 2, 4, 8, ... adding up to `count`, so a template that
/// cannot be created fails once, not `count` times.
pub fn slow_start_batches(count: usize) -> impl Iterator<Item = usize> {
    let (mut done, mut size) = (0usize, 1usize);
    std::iter::from_fn(move || {
        if done >= count {
            return None;
        }
        let batch = size.min(count - done);
        done += batch;
        size = size.saturating_mul(2);
        Some(batch)
    })
}

/// Creates `count` copies of `pod` in `ns`, owned by `owner` (a kind and a name in `ns`), in
/// slow-start batches whose creates run concurrently. Stops after a batch in which a create
/// failed, and before a batch when the owner is gone or being deleted (deleting it stops the
/// work at once, not at the end of the pass). Returns how many were created and the first error.
async fn create_in_batches(
    api: &Api,
    ns: &str,
    pod: &Value,
    count: usize,
    owner: (Kind, &str),
) -> (usize, Option<ApiError>) {
    let mut created = 0;
    for (i, size) in slow_start_batches(count).enumerate() {
        if i > 0 {
            match api.get(owner.0, Some(ns), owner.1).await {
                Ok(o) if o.pointer("/metadata/deletionTimestamp").is_none() => {}
                Ok(_) | Err(ApiError::NotFound { .. }) => break,
                Err(e) => return (created, Some(e)),
            }
        }
        let results =
            futures::future::join_all((0..size).map(|_| api.create(Kind::Pod, ns, pod.clone())))
                .await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(()) => created += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (created, first_error);
        }
    }
    (created, None)
}

/// The engine, as the master's controllers use it.
#[derive(Clone)]
pub struct Api {
    engine: Arc<Engine>,
}

impl Api {
    pub fn new(engine: Arc<Engine>) -> Api {
        Api { engine }
    }

    async fn run(&self, cmd: Command) -> Result<Reply, ApiError> {
        self.engine.handle(&Caller::Master, cmd).await
    }

    /// Every object of `kind` in every namespace.
    pub async fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, ApiError> {
        let reply = self
            .run(Command::List {
                kind,
                namespace: None,
                query: ListQuery::default(),
            })
            .await?;
        let Reply::Json(bytes) = reply else {
            return Err(ApiError::Internal(
                "a list answered with something else".into(),
            ));
        };
        #[derive(serde::Deserialize)]
        struct List<T> {
            items: Vec<T>,
        }
        serde_json::from_slice::<List<T>>(&bytes)
            .map(|l| l.items)
            .map_err(|e| ApiError::Internal(format!("cannot decode a {kind} list: {e}")))
    }

    pub async fn get(&self, kind: Kind, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        match self
            .run(Command::Get {
                kind,
                namespace: ns.map(str::to_string),
                name: name.into(),
            })
            .await?
        {
            Reply::Ok(v) => Ok(v),
            _ => Err(ApiError::Internal(
                "a get answered with something else".into(),
            )),
        }
    }

    pub async fn replace(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        body: Value,
    ) -> Result<(), ApiError> {
        self.run(Command::Replace {
            kind,
            namespace: ns.map(str::to_string),
            name: name.into(),
            body,
        })
        .await
        .map(|_| ())
    }

    pub async fn create(&self, kind: Kind, ns: &str, body: Value) -> Result<(), ApiError> {
        self.run(Command::Create {
            kind,
            namespace: Some(ns.into()),
            body,
        })
        .await
        .map(|_| ())
    }

    pub async fn delete(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        grace: Option<i64>,
    ) -> Result<(), ApiError> {
        let options = DeleteOptions {
            grace_period_seconds: grace,
            ..Default::default()
        };
        match self
            .run(Command::Delete {
                kind,
                namespace: ns.map(str::to_string),
                name: name.into(),
                options,
            })
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn replace_status(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        status: Value,
    ) -> Result<(), ApiError> {
        let mut meta = json!({"name": name});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        let body = json!({"apiVersion": kind.api_version(), "kind": kind.name(), "metadata": meta, "status": status});
        self.run(Command::ReplaceStatus {
            kind,
            namespace: ns.map(str::to_string),
            name: name.into(),
            body,
        })
        .await
        .map(|_| ())
    }

    pub async fn bind(&self, ns: &str, name: &str, uid: &str, node: &str) -> Result<(), ApiError> {
        self.run(Command::Bind {
            namespace: ns.into(),
            name: name.into(),
            node: node.into(),
            uid: Some(uid.into()),
        })
        .await
        .map(|_| ())
    }

    /// Records an event about `about` (best effort).
    pub async fn event(
        &self,
        about: About<'_>,
        type_: &str,
        reason: &str,
        message: &str,
        source: &str,
    ) {
        let ns = about.ns;
        let body = crate::api::new_event(about, type_, reason, message, source, None);
        if let Err(e) = self.create(Kind::Event, ns, body).await {
            tracing::debug!(error = %e, "cannot record an event");
        }
    }

    /// A notification that fires when any object of `kinds` changes.
    pub(crate) fn changes(&self, kinds: &[Kind], stop: watch::Receiver<bool>) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        for &kind in kinds {
            let (api, n, mut stop) = (self.clone(), notify.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    let watch = api
                        .run(Command::Watch {
                            kind,
                            namespace: None,
                            query: ListQuery::default(),
                        })
                        .await;
                    if let Ok(Reply::Watch(mut s)) = watch {
                        loop {
                            tokio::select! {
                                ev = s.next() => match ev {
                                    Some(_) => n.notify_one(),
                                    None => break,
                                },
                                _ = stop.changed() => return,
                            }
                        }
                    }
                    if *stop.borrow() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        notify
    }
}

/// Runs `pass` whenever `kinds` change, and at least every `resync`, until `stop`.
fn control_loop<F, Fut>(
    api: &Api,
    name: &'static str,
    kinds: &[Kind],
    resync: Duration,
    mut stop: watch::Receiver<bool>,
    pass: F,
) -> JoinHandle<()>
where
    F: Fn(Api) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), ApiError>> + Send,
{
    let notify = api.changes(kinds, stop.clone());
    let api = api.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(resync) => {}
                _ = stop.changed() => return,
            }
            // let a burst of changes settle into one pass
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Err(e) = pass(api.clone()).await {
                tracing::warn!(controller = name, error = %e, "pass failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                notify.notify_one();
            }
        }
    })
}

/// Starts every controller; they stop when `stop` turns true.
pub fn start(
    engine: Arc<Engine>,
    config: ControllerConfig,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let api = Api::new(engine);
    let secs = Duration::from_secs;
    let cloud = config.cloud.clone().map(|c| {
        [
            tokio::spawn(loadbalancer::controller::run(
                api.clone(),
                c.clone(),
                stop.clone(),
            )),
            tokio::spawn(routes::run(api.clone(), c, stop.clone())),
        ]
    });
    let mut loops = vec![
        control_loop(
            &api,
            "scheduler",
            &[Kind::Pod, Kind::Node],
            secs(10),
            stop.clone(),
            |a| async move { schedule_pass(&a).await },
        ),
        control_loop(
            &api,
            "deployments",
            &[Kind::Deployment, Kind::ReplicaSet],
            secs(30),
            stop.clone(),
            |a| async move { deployments::pass(&a).await },
        ),
        control_loop(
            &api,
            "replicasets",
            &[Kind::ReplicaSet, Kind::Pod],
            // also the clock of minReadySeconds: availability comes with time, not a change
            secs(5),
            stop.clone(),
            |a| async move { replicasets::pass(&a).await },
        ),
        control_loop(
            &api,
            "jobs",
            &[Kind::Job, Kind::Pod],
            secs(5),
            stop.clone(),
            |a| async move { job_pass(&a).await },
        ),
        control_loop(
            &api,
            "cronjobs",
            &[Kind::CronJob, Kind::Job],
            secs(2),
            stop.clone(),
            |a| async move { cronjob_pass(&a).await },
        ),
        control_loop(
            &api,
            "node-lifecycle",
            &[Kind::Node],
            secs(2),
            stop.clone(),
            move |a| {
                let cfg = config.clone();
                async move { lifecycle_pass(&a, &cfg).await }
            },
        ),
        control_loop(
            &api,
            "endpoints",
            &[Kind::Service, Kind::Pod],
            secs(30),
            stop.clone(),
            |a| async move { endpoints_pass(&a).await },
        ),
        control_loop(
            &api,
            "garbage-collector",
            &[Kind::Deployment, Kind::ReplicaSet, Kind::Job, Kind::CronJob],
            secs(20),
            stop,
            |a| async move { gc_pass(&a).await },
        ),
    ];
    loops.extend(cloud.into_iter().flatten());
    loops
}

/// Keeps every selector service's Endpoints in step with its pods, and removes the
/// Endpoints this controller made for services that are gone.
async fn endpoints_pass(api: &Api) -> Result<(), ApiError> {
    use crate::api::core::{Endpoints, Service};
    let services: Vec<Service> = api.list(Kind::Service).await?;
    let pods: Vec<Pod> = api.list(Kind::Pod).await?;
    let existing: Vec<Endpoints> = api.list(Kind::Endpoints).await?;
    let key = |m: &ObjectMeta| {
        (
            m.namespace.clone().unwrap_or_default(),
            m.name().to_string(),
        )
    };
    let existing: HashMap<_, _> = existing
        .into_iter()
        .map(|e| (key(&e.metadata), e))
        .collect();
    let mut by_ns: HashMap<&str, Vec<Pod>> = HashMap::new();
    for p in &pods {
        by_ns
            .entry(p.metadata.namespace.as_deref().unwrap_or(""))
            .or_default()
            .push(p.clone());
    }
    let mut wanted = HashSet::new();
    for svc in &services {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("");
        let pods = by_ns.get(ns).map(Vec::as_slice).unwrap_or(&[]);
        let Some(subsets) = endpoints::desired(svc, pods) else {
            continue;
        };
        wanted.insert(key(&svc.metadata));
        let obj = endpoints::object(svc, subsets);
        let r = match existing.get(&key(&svc.metadata)) {
            Some(cur)
                if cur.subsets == obj.subsets && cur.metadata.labels == obj.metadata.labels =>
            {
                Ok(())
            }
            Some(_) => {
                let body =
                    serde_json::to_value(&obj).map_err(|e| ApiError::Internal(e.to_string()))?;
                api.replace(Kind::Endpoints, Some(ns), svc.metadata.name(), body)
                    .await
            }
            None => {
                let body =
                    serde_json::to_value(&obj).map_err(|e| ApiError::Internal(e.to_string()))?;
                api.create(Kind::Endpoints, ns, body).await
            }
        };
        match r {
            // the service or its namespace went away meanwhile, or a racing write: next pass
            Ok(())
            | Err(
                ApiError::NotFound { .. } | ApiError::Conflict(_) | ApiError::AlreadyExists { .. },
            ) => {}
            Err(e) => return Err(e),
        }
    }
    for (k, e) in &existing {
        if !wanted.contains(k) && e.metadata.labels.contains_key(endpoints::MANAGED_BY) {
            api.delete(Kind::Endpoints, Some(&k.0), &k.1, None).await?;
        }
    }
    Ok(())
}

fn unbound(p: &Pod) -> bool {
    p.spec.node_name.as_deref().unwrap_or("").is_empty()
        && p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Records that claim `claim`'s volume lives on `node` (the annotation Kubernetes uses for
/// late-bound local volumes) and marks the claim Bound.
async fn pin_claim(api: &Api, ns: &str, claim: &str, node: &str) -> Result<(), ApiError> {
    const SELECTED: &str = "volume.kubernetes.io/selected-node";
    let mut pvc = api
        .get(Kind::PersistentVolumeClaim, Some(ns), claim)
        .await?;
    match pvc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SELECTED))
        .and_then(Value::as_str)
    {
        Some(n) if n == node => {}
        Some(n) => {
            return Err(ApiError::Conflict(format!(
                "claim {ns}/{claim} already lives on node {n}"
            )))
        }
        None => {
            pvc["metadata"]["annotations"][SELECTED] = json!(node);
            // keep the resourceVersion: a concurrent placement loses instead of overwriting
            api.replace(Kind::PersistentVolumeClaim, Some(ns), claim, pvc.clone())
                .await?;
        }
    }
    let status = json!({
        "phase": "Bound",
        "accessModes": pvc.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
        "capacity": {"storage": pvc.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("0"))},
    });
    api.replace_status(Kind::PersistentVolumeClaim, Some(ns), claim, status)
        .await
}

async fn schedule_pass(api: &Api) -> Result<(), ApiError> {
    let pods: Vec<Pod> = api.list(Kind::Pod).await?;
    let (pending, bound): (Vec<&Pod>, Vec<&Pod>) = pods.iter().partition(|p| unbound(p));
    if pending.is_empty() {
        return Ok(());
    }
    let nodes: Vec<Node> = api.list(Kind::Node).await?;
    let by_uid: HashMap<&str, &Pod> = pending
        .iter()
        .map(|p| (p.metadata.uid.as_deref().unwrap_or(""), *p))
        .collect();
    let pvcs: Vec<Value> = api.list(Kind::PersistentVolumeClaim).await?;
    let claims: scheduler::Claims = pvcs
        .iter()
        .map(|c| {
            let key = (
                c.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            let node = c
                .pointer("/metadata/annotations/volume.kubernetes.io~1selected-node")
                .and_then(Value::as_str)
                .map(str::to_string);
            (key, node)
        })
        .collect();
    let outcomes = scheduler::schedule(&pending, &nodes, &bound, &claims);
    let work = outcomes.into_iter().map(|o| {
        let api = api.clone();
        let pod = by_uid.get(match &o {
            scheduler::Outcome::Bind { uid, .. } | scheduler::Outcome::Unschedulable { uid, .. } => uid.as_str(),
        }).map(|p| (*p).clone());
        async move {
            match o {
                scheduler::Outcome::Bind { namespace, name, uid, node, pin_claims } => {
                    for claim in &pin_claims {
                        if let Err(e) = pin_claim(&api, &namespace, claim, &node).await {
                            tracing::warn!(claim = %format!("{namespace}/{claim}"), error = %e, "cannot place a claim; the pod waits");
                            return;
                        }
                    }
                    match api.bind(&namespace, &name, &uid, &node).await {
                        Ok(()) => {
                            api.event(About { ns: &namespace, kind: Kind::Pod, name: &name, uid: Some(&uid) }, "Normal", "Scheduled", &format!("Successfully assigned {namespace}/{name} to {node}"), "orkops-scheduler").await;
                        }
                        Err(ApiError::Conflict(_) | ApiError::NotFound { .. }) => {}
                        Err(e) => tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "cannot bind"),
                    }
                }
                scheduler::Outcome::Unschedulable { namespace, name, uid, message } => {
                    let Some(pod) = pod else { return };
                    let mut status = pod.status.clone().unwrap_or_default();
                    let known = status.conditions.iter().any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(message.as_str()));
                    if known {
                        return;
                    }
                    status.phase.get_or_insert_with(|| "Pending".into());
                    status.conditions.retain(|c| c.type_ != "PodScheduled");
                    status.conditions.push(crate::api::meta::Condition {
                        type_: "PodScheduled".into(),
                        status: "False".into(),
                        reason: Some("Unschedulable".into()),
                        message: Some(message.clone()),
                        last_transition_time: Some(Utc::now()),
                        ..Default::default()
                    });
                    let _ = api.replace_status(Kind::Pod, Some(&namespace), &name, serde_json::to_value(&status).unwrap_or_default()).await;
                    api.event(About { ns: &namespace, kind: Kind::Pod, name: &name, uid: Some(&uid) }, "Warning", "FailedScheduling", &message, "orkops-scheduler").await;
                }
            }
        }
    });
    futures::stream::iter(work)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    Ok(())
}

async fn lifecycle_pass(api: &Api, cfg: &ControllerConfig) -> Result<(), ApiError> {
    let nodes: Vec<Node> = api.list(Kind::Node).await?;
    if nodes.is_empty() {
        return Ok(());
    }
    let pods: Vec<Pod> = api.list(Kind::Pod).await?;
    let now = Utc::now();
    for a in lifecycle::nodes(
        &nodes,
        &pods,
        now,
        cfg.node_monitor_grace,
        cfg.pod_eviction_timeout,
    ) {
        match a {
            lifecycle::NodeAction::MarkNotReady { node, silent_for } => {
                let Some(n) = nodes.iter().find(|n| n.metadata.name() == node) else {
                    continue;
                };
                let mut status = n.status.clone().unwrap_or_default();
                let message = format!(
                    "orkops-agent stopped posting node status ({}s ago)",
                    silent_for.as_secs()
                );
                for c in status.conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some(message.clone());
                    c.last_transition_time = Some(now);
                }
                api.replace_status(
                    Kind::Node,
                    None,
                    &node,
                    serde_json::to_value(&status).unwrap_or_default(),
                )
                .await?;
                api.event(
                    About {
                        ns: "default",
                        kind: Kind::Node,
                        name: &node,
                        uid: n.metadata.uid.as_deref(),
                    },
                    "Warning",
                    "NodeNotReady",
                    &format!("node {node} is NotReady: {message}"),
                    "orkops-node-controller",
                )
                .await;
            }
            lifecycle::NodeAction::MarkPodNotReady {
                namespace,
                name,
                node,
            } => {
                let pod = pods
                    .iter()
                    .find(|p| p.metadata.namespace() == namespace && p.metadata.name() == name);
                if let Some(pod) = pod {
                    mark_pod_not_ready(api, pod, &node, now).await?;
                }
            }
            lifecycle::NodeAction::Evict {
                namespace,
                name,
                node,
            } => {
                api.delete(Kind::Pod, Some(&namespace), &name, Some(0))
                    .await?;
                api.event(
                    About {
                        ns: &namespace,
                        kind: Kind::Pod,
                        name: &name,
                        uid: None,
                    },
                    "Warning",
                    "Evicted",
                    &format!(
                        "node {node} has been NotReady longer than {}s",
                        cfg.pod_eviction_timeout.as_secs()
                    ),
                    "orkops-node-controller",
                )
                .await;
            }
        }
    }
    Ok(())
}

/// Sets the pod's `Ready` condition to False through its `/status`, at the resourceVersion it
/// was listed at: if its agent wrote meanwhile, the agent is back and its word stands.
async fn mark_pod_not_ready(
    api: &Api,
    pod: &Pod,
    node: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let mut status = pod.status.clone().unwrap_or_default();
    for c in status.conditions.iter_mut().filter(|c| c.type_ == "Ready") {
        c.status = "False".into();
        c.reason = Some("NodeNotReady".into());
        c.message = Some(format!(
            "node {node} is not ready: its agent stopped posting status"
        ));
        c.last_transition_time = Some(now);
    }
    let ns = pod.metadata.namespace();
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.metadata.name(), "namespace": ns,
                     "resourceVersion": pod.metadata.resource_version},
        "status": status,
    });
    let cmd = Command::ReplaceStatus {
        kind: Kind::Pod,
        namespace: Some(ns.to_string()),
        name: pod.metadata.name().to_string(),
        body,
    };
    match api.run(cmd).await {
        Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn gc_pass(api: &Api) -> Result<(), ApiError> {
    // dependents first, owners after: an owner listed later cannot be missing for a dependent
    // that was created (after its owner) before the dependents were listed
    let pods: Vec<Pod> = api.list(Kind::Pod).await?;
    let revisions: Vec<crate::api::workloads::ControllerRevision> =
        api.list(Kind::ControllerRevision).await?;
    let jobs: Vec<Value> = api.list(Kind::Job).await?;
    let sets: Vec<crate::api::workloads::ReplicaSet> = api.list(Kind::ReplicaSet).await?;
    let deployments: Vec<Deployment> = api.list(Kind::Deployment).await?;
    let cronjobs: Vec<Value> = api.list(Kind::CronJob).await?;
    let uid = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let existing: HashSet<String> = deployments
        .iter()
        .filter_map(|d| d.metadata.uid.clone())
        .chain(sets.iter().filter_map(|r| r.metadata.uid.clone()))
        .chain(jobs.iter().map(uid))
        .chain(cronjobs.iter().map(uid))
        .collect();
    // jobs of a deleted cronjob (their pods follow on the next pass)
    let job_metas: Vec<crate::api::meta::ObjectMeta> = jobs
        .iter()
        .filter_map(|j| serde_json::from_value(j["metadata"].clone()).ok())
        .collect();
    let of_cronjobs =
        |m: &&crate::api::meta::ObjectMeta| m.owner_references.iter().any(|o| o.kind == "CronJob");
    for m in lifecycle::orphans(job_metas.iter().filter(of_cronjobs), &existing) {
        if m.deletion_timestamp.is_none() {
            api.delete(Kind::Job, Some(m.namespace()), m.name(), None)
                .await?;
            tracing::info!(job = %format!("{}/{}", m.namespace(), m.name()), "deleted a job whose cronjob is gone");
        }
    }
    // replica sets of a deleted deployment (their pods follow on the next pass)
    let of_deployments = |m: &&crate::api::meta::ObjectMeta| {
        m.owner_references.iter().any(|o| o.kind == "Deployment")
    };
    for m in lifecycle::orphans(
        sets.iter().map(|r| &r.metadata).filter(of_deployments),
        &existing,
    ) {
        if m.deletion_timestamp.is_none() {
            api.delete(Kind::ReplicaSet, Some(m.namespace()), m.name(), None)
                .await?;
            tracing::info!(replicaset = %format!("{}/{}", m.namespace(), m.name()), "deleted a replica set whose deployment is gone");
        }
    }
    for m in lifecycle::orphans(revisions.iter().map(|r| &r.metadata), &existing) {
        api.delete(
            Kind::ControllerRevision,
            Some(m.namespace()),
            m.name(),
            None,
        )
        .await?;
    }
    let managed = |m: &&crate::api::meta::ObjectMeta| {
        m.owner_references.iter().any(|o| {
            matches!(
                o.kind.as_str(),
                "Deployment" | "ReplicaSet" | "Job" | "CronJob"
            )
        })
    };
    for p in deployments::legacy_pods(&pods, &deployments) {
        let m = &p.metadata;
        api.delete(Kind::Pod, Some(m.namespace()), m.name(), None)
            .await?;
        tracing::info!(pod = %format!("{}/{}", m.namespace(), m.name()), "deleted a pod its deployment owned directly, now that its replica set rolled out");
    }
    for m in lifecycle::orphans(pods.iter().map(|p| &p.metadata).filter(managed), &existing) {
        if m.deletion_timestamp.is_some() {
            continue;
        }
        api.delete(Kind::Pod, Some(m.namespace()), m.name(), None)
            .await?;
        tracing::info!(pod = %format!("{}/{}", m.namespace(), m.name()), "deleted a pod whose owner is gone");
    }
    Ok(())
}

async fn job_pass(api: &Api) -> Result<(), ApiError> {
    let jobs: Vec<crate::api::workloads::Job> = api.list(Kind::Job).await?;
    if jobs.is_empty() {
        return Ok(());
    }
    let pods: Vec<Pod> = api.list(Kind::Pod).await?;
    let owned = by_controller(&pods, |p| &p.metadata);
    let now = Utc::now();
    for j in &jobs {
        if j.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = j.metadata.uid.as_deref().unwrap_or("");
        let (ns, name) = (j.metadata.namespace(), j.metadata.name());
        let about = || About {
            ns,
            kind: Kind::Job,
            name,
            uid: Some(uid),
        };
        let plan = jobs::reconcile(j, owned.get(uid).map(Vec::as_slice).unwrap_or(&[]), now);
        for a in plan.actions {
            match a {
                jobs::Action::Create { pod, count } => {
                    let (n, failed) =
                        create_in_batches(api, ns, &pod, count, (Kind::Job, name)).await;
                    if n > 0 {
                        api.event(
                            about(),
                            "Normal",
                            "SuccessfulCreate",
                            &format!("created {n} pod(s)"),
                            "orkops-job-controller",
                        )
                        .await
                    }
                    if let Some(e) = failed {
                        api.event(
                            about(),
                            "Warning",
                            "FailedCreate",
                            &format!("cannot create a pod: {e}"),
                            "orkops-job-controller",
                        )
                        .await
                    }
                }
                jobs::Action::Delete(pod) => {
                    api.delete(Kind::Pod, Some(ns), &pod, None).await?;
                    api.event(
                        about(),
                        "Normal",
                        "SuccessfulDelete",
                        &format!("deleted pod {pod}"),
                        "orkops-job-controller",
                    )
                    .await;
                }
            }
        }
        if let Some((type_, reason, message)) = &plan.finished {
            let kind = if type_ == "Complete" {
                "Normal"
            } else {
                "Warning"
            };
            api.event(about(), kind, reason, message, "orkops-job-controller")
                .await;
        }
        write_status(api, Kind::Job, ns, name, j.status.as_ref(), &plan.status).await?;
    }
    Ok(())
}

/// Writes `new` as the status of `kind` `ns/name` when it differs from `current`; an object
/// deleted meanwhile is not an error.
pub(super) async fn write_status<S: serde::Serialize + PartialEq>(
    api: &Api,
    kind: Kind,
    ns: &str,
    name: &str,
    current: Option<&S>,
    new: &S,
) -> Result<(), ApiError> {
    if current == Some(new) {
        return Ok(());
    }
    match api
        .replace_status(
            kind,
            Some(ns),
            name,
            serde_json::to_value(new).unwrap_or_default(),
        )
        .await
    {
        Ok(()) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn cronjob_pass(api: &Api) -> Result<(), ApiError> {
    let cronjobs: Vec<crate::api::workloads::CronJob> = api.list(Kind::CronJob).await?;
    if cronjobs.is_empty() {
        return Ok(());
    }
    let jobs: Vec<crate::api::workloads::Job> = api.list(Kind::Job).await?;
    let owned = by_controller(&jobs, |j| &j.metadata);
    let now = Utc::now();
    for c in &cronjobs {
        if c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = c.metadata.uid.as_deref().unwrap_or("");
        let (ns, name) = (c.metadata.namespace(), c.metadata.name());
        let about = || About {
            ns,
            kind: Kind::CronJob,
            name,
            uid: Some(uid),
        };
        let plan = cronjobs::reconcile(c, owned.get(uid).map(Vec::as_slice).unwrap_or(&[]), now);
        for a in plan.actions {
            match a {
                cronjobs::Action::CreateJob(body) => {
                    let job = body
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    match api.create(Kind::Job, ns, body).await {
                        Ok(()) => {
                            api.event(
                                about(),
                                "Normal",
                                "SuccessfulCreate",
                                &format!("created job {job}"),
                                "orkops-cronjob-controller",
                            )
                            .await
                        }
                        Err(ApiError::AlreadyExists { .. }) => {}
                        Err(e) => {
                            api.event(
                                about(),
                                "Warning",
                                "FailedCreate",
                                &format!("cannot create job {job}: {e}"),
                                "orkops-cronjob-controller",
                            )
                            .await
                        }
                    }
                }
                cronjobs::Action::DeleteJob(job) => {
                    api.delete(Kind::Job, Some(ns), &job, None).await?;
                    api.event(
                        about(),
                        "Normal",
                        "SuccessfulDelete",
                        &format!("deleted job {job}"),
                        "orkops-cronjob-controller",
                    )
                    .await;
                }
                cronjobs::Action::Note(type_, reason, message) => {
                    api.event(
                        about(),
                        &type_,
                        &reason,
                        &message,
                        "orkops-cronjob-controller",
                    )
                    .await;
                }
            }
        }
        write_status(
            api,
            Kind::CronJob,
            ns,
            name,
            c.status.as_ref(),
            &plan.status,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_up_to_the_count() {
        assert_eq!(slow_start_batches(20).collect::<Vec<_>>(), [1, 2, 4, 8, 5]);
        assert_eq!(slow_start_batches(0).count(), 0);
        assert_eq!(slow_start_batches(BURST).sum::<usize>(), BURST);
        assert_eq!(burst(-3), 0);
        assert_eq!(burst(i64::MAX), BURST);
    }
}
