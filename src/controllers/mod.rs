//! The master's controllers: the scheduler, the Deployment, ReplicaSet (and
//! ReplicationController), StatefulSet, DaemonSet, Job and CronJob controllers, endpoints, the
//! PersistentVolume binder, node lifecycle and garbage collection, started for a leadership term
//! on one [`runtime`] (shared caches fed by one watch per kind, work queues of keys). Each runs
//! its pure reconciler (`scheduler`, `deployments`, `replicasets`, `statefulsets`, `daemonsets`,
//! `jobs`, `cronjobs`, `lifecycle`, `endpoints`, `volumes`) on what the caches hold and writes
//! through the engine ([`Api`]) as the master.

pub mod cronjobs;
pub mod daemonsets;
pub mod deployments;
pub mod disruption;
pub mod endpoints;
pub mod jobs;
pub mod lifecycle;
pub mod loadbalancer;
pub mod replicasets;
pub mod routes;
pub mod runtime;
pub mod scheduler;
pub mod scheduling;
pub mod spread;
pub mod statefulsets;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

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

/// The engine, as the master's controllers use it. Within a [`runtime::Runtime`] its lists
/// are served from the shared caches (no List reaches the engine for a cached kind), and within
/// a reconcile its writes are recorded for the key's next reconcile.
#[derive(Clone)]
pub struct Api {
    engine: Arc<Engine>,
    caches: Option<Arc<runtime::Caches>>,
    /// Every List this facade (and its clones) sent to the engine.
    lists: Arc<AtomicU64>,
    recorder: Option<Arc<std::sync::Mutex<Vec<runtime::Written>>>>,
}

impl Api {
    pub fn new(engine: Arc<Engine>) -> Api {
        Api {
            engine,
            caches: None,
            lists: Arc::default(),
            recorder: None,
        }
    }

    /// This facade, serving lists from `caches`.
    pub fn with_caches(&self, caches: Arc<runtime::Caches>) -> Api {
        Api {
            caches: Some(caches),
            ..self.clone()
        }
    }

    /// This facade recording its writes into the returned log.
    pub fn recording(&self) -> (Api, Arc<std::sync::Mutex<Vec<runtime::Written>>>) {
        let log: Arc<std::sync::Mutex<Vec<runtime::Written>>> = Arc::default();
        let api = Api {
            recorder: Some(log.clone()),
            ..self.clone()
        };
        (api, log)
    }

    /// How many Lists this facade and its clones sent to the engine.
    pub fn lists_sent(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    async fn run(&self, cmd: Command) -> Result<Reply, ApiError> {
        let target = match &cmd {
            Command::Create {
                kind, namespace, ..
            } => Some((*kind, namespace.clone(), None)),
            Command::Replace {
                kind,
                namespace,
                name,
                ..
            }
            | Command::ReplaceStatus {
                kind,
                namespace,
                name,
                ..
            }
            | Command::Delete {
                kind,
                namespace,
                name,
                ..
            } => Some((*kind, namespace.clone(), Some(name.clone()))),
            Command::Bind {
                namespace, name, ..
            } => Some((Kind::Pod, Some(namespace.clone()), Some(name.clone()))),
            Command::List { kind, .. } => {
                self.lists.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(target: "orkops::controllers::lists", %kind, "a full list");
                None
            }
            _ => None,
        };
        let deleting = matches!(cmd, Command::Delete { .. });
        let reply = self.engine.handle(&Caller::Master, cmd).await;
        if let (Some(log), Some((kind, ns, name)), Ok(Reply::Ok(v) | Reply::Created(v))) =
            (&self.recorder, target, &reply)
        {
            let written = runtime::Written {
                kind,
                namespace: ns.unwrap_or_default(),
                name: name.unwrap_or_else(|| crate::api::name_of(v).to_string()),
                revision: v
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                removed: deleting && v.pointer("/metadata/deletionTimestamp").is_none(),
            };
            log.lock().unwrap_or_else(|e| e.into_inner()).push(written);
        }
        reply
    }

    /// Every object of `kind` in every namespace: from the shared cache when there is one for
    /// `kind` as `T`, else listed through the engine.
    pub async fn list<T: DeserializeOwned + 'static>(
        &self,
        kind: Kind,
    ) -> Result<Vec<T>, ApiError> {
        if let Some(items) = self.caches.as_ref().and_then(|c| c.list_as::<T>(kind)) {
            return Ok(items);
        }
        Ok(self
            .list_at::<T>(kind)
            .await?
            .1
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }

    /// Every object of `kind`, shared with the cache when it is cached (no copy of each object,
    /// unlike [`Api::list`]); listed through the engine otherwise.
    pub async fn shared<T: DeserializeOwned + 'static>(
        &self,
        kind: Kind,
    ) -> Result<Vec<Arc<T>>, ApiError> {
        if let Some(items) = self.caches.as_ref().and_then(|c| c.shared_as::<T>(kind)) {
            return Ok(items);
        }
        Ok(self
            .list_at::<T>(kind)
            .await?
            .1
            .into_iter()
            .map(|(_, o)| Arc::new(o))
            .collect())
    }

    /// Every object of `kind` through the engine, each with its resourceVersion, and the
    /// revision of the list.
    pub async fn list_at<T: DeserializeOwned>(
        &self,
        kind: Kind,
    ) -> Result<(i64, Vec<(i64, T)>), ApiError> {
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
        struct List {
            #[serde(default)]
            metadata: Value,
            items: Vec<Value>,
        }
        let rv = |v: &Value| {
            v.pointer("/metadata/resourceVersion")
                .or_else(|| v.get("resourceVersion"))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let list: List = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(format!("cannot decode a {kind} list: {e}")))?;
        let revision = rv(&json!({"metadata": list.metadata}));
        let items = list
            .items
            .into_iter()
            .map(|v| {
                let r = rv(&v);
                serde_json::from_value::<T>(v)
                    .map(|o| (r, o))
                    .map_err(|e| ApiError::Internal(format!("cannot decode a {kind}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((revision, items))
    }

    /// The changes of `kind` after revision `rv` (with bookmarks), one JSON line each.
    pub async fn watch_from(
        &self,
        kind: Kind,
        rv: i64,
    ) -> Result<futures::stream::BoxStream<'static, bytes::Bytes>, ApiError> {
        let mut query = ListQuery {
            resource_version: Some(rv),
            ..Default::default()
        };
        query.paging.bookmarks = true;
        match self
            .run(Command::Watch {
                kind,
                namespace: None,
                query,
            })
            .await?
        {
            Reply::Watch(s) => Ok(s),
            _ => Err(ApiError::Internal(
                "a watch answered with something else".into(),
            )),
        }
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
        self.replace_status_at(kind, ns, name, body).await
    }

    /// Replaces the status of an object with `body`'s, at `body`'s resourceVersion (a
    /// compare-and-swap: a writer that came between wins, and the caller reads again).
    pub async fn replace_status_at(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        body: Value,
    ) -> Result<(), ApiError> {
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
            if let Some(c) = &self.caches {
                let n = notify.clone();
                if c.on_change(kind, Arc::new(move || n.notify_one())) {
                    continue;
                }
            }
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

/// Starts every controller for one leadership term, on one runtime: one list+watch per kind
/// into the shared caches, per-object controllers (ReplicaSets, Deployments, Jobs, CronJobs)
/// with their work queues, and the whole-cluster passes (scheduler, node lifecycle,
/// endpoints, garbage collection) woken by the same caches. Shutting the runtime down (or
/// dropping it) stops all of it.
pub fn start(engine: Arc<Engine>, config: ControllerConfig) -> runtime::Runtime {
    use runtime::{enqueue_owner, enqueue_self};
    let mut rt = runtime::Runtime::new(Api::new(engine));
    let c = rt.caches.clone();
    let secs = Duration::from_secs;

    let q = rt.controller("replicasets", 4, |ctx, key| async move {
        replicasets::reconcile_key(&ctx, &key).await
    });
    c.replica_sets.subscribe(enqueue_self(&q));
    c.pods.subscribe(enqueue_owner(&q, "ReplicaSet"));

    let q = rt.controller("deployments", 4, |ctx, key| async move {
        deployments::reconcile_key(&ctx, &key).await
    });
    c.deployments.subscribe(enqueue_self(&q));
    c.replica_sets.subscribe(enqueue_owner(&q, "Deployment"));

    let q = rt.controller("jobs", 4, |ctx, key| async move {
        job_reconcile(&ctx, &key).await
    });
    c.jobs.subscribe(enqueue_self(&q));
    c.pods.subscribe(enqueue_owner(&q, "Job"));

    let q = rt.controller("disruption", 2, |ctx, key| async move {
        disruption::reconcile_key(&ctx, &key).await
    });
    c.pdbs.subscribe(enqueue_self(&q));
    let (pdbs, queue) = (c.pdbs.clone(), q.clone());
    // a pod that was, or is, selected by a budget; the controllers whose scale it counts
    c.pods.subscribe(Arc::new(move |p: &Pod| {
        for b in pdbs
            .list()
            .iter()
            .filter(|b| crate::apiserver::eviction::selects(b, p))
        {
            queue.add(runtime::key_of(&b.metadata));
        }
    }));
    let in_namespace =
        |q: &Arc<runtime::Queue>,
         pdbs: &runtime::Store<crate::api::policy::PodDisruptionBudget>| {
            let (q, pdbs) = (q.clone(), pdbs.clone());
            move |ns: &str| {
                for b in pdbs.list().iter().filter(|b| b.metadata.namespace() == ns) {
                    q.add(runtime::key_of(&b.metadata));
                }
            }
        };
    let wake = in_namespace(&q, &c.pdbs);
    c.deployments
        .subscribe(Arc::new(move |d: &crate::api::workloads::Deployment| {
            wake(d.metadata.namespace())
        }));
    let wake = in_namespace(&q, &c.pdbs);
    c.replica_sets
        .subscribe(Arc::new(move |r: &crate::api::workloads::ReplicaSet| {
            wake(r.metadata.namespace())
        }));

    let q = rt.controller("cronjobs", 2, |ctx, key| async move {
        cronjob_reconcile(&ctx, &key).await
    });
    c.cron_jobs.subscribe(enqueue_self(&q));
    c.jobs.subscribe(enqueue_owner(&q, "CronJob"));

    let scheduler = pass(
        &mut rt,
        "scheduler",
        &[
            Kind::Pod,
            Kind::PersistentVolumeClaim,
            Kind::PersistentVolume,
        ],
        secs(10),
        |ctx| async move { scheduling::pass(&ctx).await },
    );
    // a Node change (100 heartbeats a second with 1,000 nodes) matters only while some pod
    // waits to be placed; a pod turning pending wakes the scheduler itself
    let pods = c.pods.clone();
    c.nodes.subscribe(Arc::new(move |_: &Node| {
        if pods.marked_len() > 0 {
            scheduler.add(runtime::PASS);
        }
    }));
    let lifecycle = config.clone();
    // also the clock of the heartbeat grace and the eviction timeout
    pass(
        &mut rt,
        "node-lifecycle",
        &[Kind::Node],
        secs(2),
        move |ctx| {
            let cfg = lifecycle.clone();
            async move { lifecycle_pass(&ctx.api, &cfg).await }
        },
    );
    // per service, as Kubernetes' endpoints controller: a pod change wakes only the services
    // that select it (before or after the change)
    let q = rt.controller("endpoints", 2, |ctx, key| async move {
        endpoints::reconcile_key(&ctx, &key).await
    });
    c.services.subscribe(enqueue_self(&q));
    c.endpoints.subscribe(enqueue_self(&q));
    let (services, queue) = (c.services.clone(), q.clone());
    c.pods.subscribe(Arc::new(move |p: &Pod| {
        for s in services.filter(|s| endpoints::selects(s, p)) {
            queue.add(runtime::key_of(&s.metadata));
        }
    }));
    // dependents become garbage when their owner goes: the collector is woken by removals
    // (not by the status updates owners get on every change of their pods), by Deployments
    // that still own pods directly (legacy pods go once the deployment rolled out), and
    // every 20 s for dependents made after their owner went
    let gc = pass(
        &mut rt,
        "garbage-collector",
        &[],
        secs(20),
        |ctx| async move { gc_pass(&ctx.api).await },
    );
    wake_on_removal(&c.deployments, &gc);
    wake_on_removal(&c.replica_sets, &gc);
    wake_on_removal(&c.jobs, &gc);
    wake_on_removal(&c.cron_jobs, &gc);
    wake_on_removal(&c.nodes, &gc);
    let (pods, queue) = (c.pods.clone(), gc.clone());
    c.deployments.subscribe(Arc::new(move |d: &Deployment| {
        if !pods
            .owned_by(d.metadata.uid.as_deref().unwrap_or(""))
            .is_empty()
        {
            queue.add(runtime::PASS);
        }
    }));
    statefulset_controller(&mut rt, &gc);
    let backoff = Arc::new(daemonsets::FailedBackoff::default());
    let q = rt.controller("daemonsets", 2, move |ctx, key| {
        let backoff = backoff.clone();
        async move { daemonsets::reconcile_key(&ctx, &key, &backoff).await }
    });
    c.daemon_sets.subscribe(enqueue_self(&q));
    c.pods.subscribe(enqueue_owner(&q, "DaemonSet"));
    c.revisions.subscribe(enqueue_owner(&q, "DaemonSet"));
    c.nodes.subscribe(daemonsets::on_node(&c, &q));
    wake_on_removal(&c.daemon_sets, &gc);
    let q = rt.controller("replicationcontrollers", 2, |ctx, key| async move {
        replicasets::reconcile_controller_key(&ctx, &key).await
    });
    c.replication_controllers.subscribe(enqueue_self(&q));
    c.pods.subscribe(enqueue_owner(&q, "ReplicationController"));
    wake_on_removal(&c.replication_controllers, &gc);
    let reported = volumes::Reported::default();
    pass(
        &mut rt,
        "persistentvolume-binder",
        &[
            Kind::PersistentVolumeClaim,
            Kind::PersistentVolume,
            Kind::StorageClass,
        ],
        secs(15),
        move |ctx| {
            let reported = reported.clone();
            async move { volumes::pass(&ctx, &reported).await }
        },
    );
    // (more controllers register here, one line each)

    if let Some(cloud) = config.cloud {
        let (api, stop) = (rt.api().clone(), rt.stop_signal());
        rt.spawn(loadbalancer::controller::run(
            api.clone(),
            cloud.clone(),
            stop.clone(),
        ));
        rt.spawn(routes::run(api, cloud, stop));
    }
    rt
}

/// The StatefulSet controller, woken by its sets, their pods and revisions, and the claims its
/// sets' pods use (named `TEMPLATE-SET-ORDINAL`, owned by no one under `Retain`).
fn statefulset_controller(rt: &mut runtime::Runtime, gc: &Arc<runtime::Queue>) {
    use runtime::{enqueue_owner, enqueue_self};
    let c = rt.caches.clone();
    let q = rt.controller("statefulsets", 4, |ctx, key| async move {
        statefulsets::reconcile_key(&ctx, &key).await
    });
    c.stateful_sets.subscribe(enqueue_self(&q));
    c.pods.subscribe(enqueue_owner(&q, "StatefulSet"));
    c.revisions.subscribe(enqueue_owner(&q, "StatefulSet"));
    let (sets, queue) = (c.stateful_sets.clone(), q.clone());
    c.claims.subscribe(Arc::new(
        move |pvc: &crate::api::core::PersistentVolumeClaim| {
            let (ns, claim) = (pvc.metadata.namespace(), pvc.metadata.name());
            let makes = |s: &crate::api::statefulset::StatefulSet| {
                s.metadata.namespace() == ns
                    && s.spec.volume_claim_templates.iter().any(|t| {
                        claim.starts_with(&format!("{}-{}-", t.metadata.name(), s.metadata.name()))
                    })
            };
            for s in sets.filter(makes) {
                queue.add(runtime::key_of(&s.metadata));
            }
        },
    ));
    wake_on_removal(&c.stateful_sets, gc);
    // a budget counts a set's replicas
    if let Some(budgets) = rt.queue("disruption") {
        let pdbs = c.pdbs.clone();
        c.stateful_sets
            .subscribe(Arc::new(move |s: &crate::api::statefulset::StatefulSet| {
                for b in pdbs
                    .list()
                    .iter()
                    .filter(|b| b.metadata.namespace() == s.metadata.namespace())
                {
                    budgets.add(runtime::key_of(&b.metadata));
                }
            }));
    }
}

/// Queues `queue`'s pass when an object leaves `store` (a subscriber runs after the store
/// applied the change, so a removed object is no longer in it).
fn wake_on_removal<T: crate::api::admit::Object>(
    store: &runtime::Store<T>,
    queue: &Arc<runtime::Queue>,
) {
    let (s, q) = (store.clone(), queue.clone());
    store.subscribe(Arc::new(move |o: &T| {
        let m = o.metadata();
        if s.get(m.namespace(), m.name()).is_none() {
            q.add(runtime::PASS);
        }
    }));
}

/// Registers a whole-cluster controller: one key ([`runtime::PASS`]) queued by any change of
/// `kinds` and at least every `resync`; a failed pass backs off like any key. Returns its
/// queue, for wake-ups finer than "any change of a kind".
fn pass<F, Fut>(
    rt: &mut runtime::Runtime,
    name: &'static str,
    kinds: &[Kind],
    resync: Duration,
    pass: F,
) -> Arc<runtime::Queue>
where
    F: Fn(runtime::Ctx) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let q = rt.controller(name, 1, move |ctx, _key| {
        let run = pass(ctx);
        async move { run.await.map(|()| runtime::Action::requeue(resync)) }
    });
    for &kind in kinds {
        let q = q.clone();
        rt.caches
            .on_change(kind, Arc::new(move || q.add(runtime::PASS)));
    }
    q.add(runtime::PASS);
    q
}

async fn lifecycle_pass(api: &Api, cfg: &ControllerConfig) -> Result<(), ApiError> {
    let nodes: Vec<Arc<Node>> = api.shared(Kind::Node).await?;
    if nodes.is_empty() {
        return Ok(());
    }
    let leases: Vec<Arc<crate::api::coordination::Lease>> = api.shared(Kind::Lease).await?;
    let renewed = lifecycle::renewals(&leases);
    let now = Utc::now();
    if !lifecycle::needs_pods(&nodes, &renewed, now, cfg.node_monitor_grace) {
        return Ok(());
    }
    let pods: Vec<Arc<Pod>> = api.shared(Kind::Pod).await?;
    for a in lifecycle::nodes(
        &nodes,
        &renewed,
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

/// Whether the controlling owner of `m` is really gone: the caches of the kinds lag each
/// other, so an owner missing from its cache is looked up in the store before its dependent
/// is deleted (as Kubernetes' garbage collector does).
async fn owner_gone(api: &Api, m: &ObjectMeta) -> Result<bool, ApiError> {
    match m
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        Some(owner) => reference_gone(api, m.namespace(), owner).await,
        None => Ok(false),
    }
}

/// Whether the object `owner` refers to (from an object in `ns`) is gone from the store, or
/// is another one of the same name.
async fn reference_gone(api: &Api, ns: &str, owner: &OwnerReference) -> Result<bool, ApiError> {
    let Some(kind) = Kind::from_manifest(&owner.api_version, &owner.kind) else {
        return Ok(true);
    };
    let ns = Some(ns).filter(|_| kind.namespaced());
    match api.get(kind, ns, &owner.name).await {
        Ok(v) => Ok(v.pointer("/metadata/uid").and_then(Value::as_str) != Some(owner.uid.as_str())),
        Err(ApiError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Deletes the Leases of Nodes that are gone (a Node's Lease is owned by it, as the kubelet
/// makes it, without being its controller).
async fn node_lease_gc(api: &Api) -> Result<(), ApiError> {
    use crate::api::coordination::{Lease, NODE_LEASE_NAMESPACE};
    let leases: Vec<Arc<Lease>> = api.shared(Kind::Lease).await?;
    let nodes: Vec<Arc<Node>> = api.shared(Kind::Node).await?;
    let uids: HashSet<&str> = nodes
        .iter()
        .filter_map(|n| n.metadata.uid.as_deref())
        .collect();
    for (m, owner) in lifecycle::leases_of_gone_nodes(leases.iter().map(|l| &l.metadata), &uids) {
        if reference_gone(api, NODE_LEASE_NAMESPACE, owner).await? {
            match api
                .delete(Kind::Lease, Some(m.namespace()), m.name(), None)
                .await
            {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            tracing::info!(lease = %m.name(), "deleted the lease of a node that is gone");
        }
    }
    Ok(())
}

async fn gc_pass(api: &Api) -> Result<(), ApiError> {
    // dependents first, owners after: an owner listed later cannot be missing for a dependent
    // that was created (after its owner) before the dependents were listed
    let pods: Vec<Arc<Pod>> = api.shared(Kind::Pod).await?;
    let revisions: Vec<crate::api::workloads::ControllerRevision> =
        api.list(Kind::ControllerRevision).await?;
    let jobs: Vec<crate::api::workloads::Job> = api.list(Kind::Job).await?;
    let sets: Vec<crate::api::workloads::ReplicaSet> = api.list(Kind::ReplicaSet).await?;
    let deployments: Vec<Deployment> = api.list(Kind::Deployment).await?;
    let cronjobs: Vec<crate::api::workloads::CronJob> = api.list(Kind::CronJob).await?;
    let stateful_sets: Vec<Arc<crate::api::statefulset::StatefulSet>> =
        api.shared(Kind::StatefulSet).await?;
    let daemon_sets: Vec<Arc<crate::api::workloads::DaemonSet>> =
        api.shared(Kind::DaemonSet).await?;
    let rcs: Vec<crate::api::workloads::ReplicationController> =
        api.list(Kind::ReplicationController).await?;
    let existing: HashSet<String> = deployments
        .iter()
        .filter_map(|d| d.metadata.uid.clone())
        .chain(stateful_sets.iter().filter_map(|s| s.metadata.uid.clone()))
        .chain(sets.iter().filter_map(|r| r.metadata.uid.clone()))
        .chain(jobs.iter().filter_map(|j| j.metadata.uid.clone()))
        .chain(cronjobs.iter().filter_map(|c| c.metadata.uid.clone()))
        .chain(daemon_sets.iter().filter_map(|d| d.metadata.uid.clone()))
        .chain(rcs.iter().filter_map(|c| c.metadata.uid.clone()))
        .collect();
    // jobs of a deleted cronjob (their pods follow on the next pass)
    let job_metas: Vec<crate::api::meta::ObjectMeta> =
        jobs.iter().map(|j| j.metadata.clone()).collect();
    let of_cronjobs =
        |m: &&crate::api::meta::ObjectMeta| m.owner_references.iter().any(|o| o.kind == "CronJob");
    for m in lifecycle::orphans(job_metas.iter().filter(of_cronjobs), &existing) {
        if m.deletion_timestamp.is_none() && owner_gone(api, m).await? {
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
        if m.deletion_timestamp.is_none() && owner_gone(api, m).await? {
            api.delete(Kind::ReplicaSet, Some(m.namespace()), m.name(), None)
                .await?;
            tracing::info!(replicaset = %format!("{}/{}", m.namespace(), m.name()), "deleted a replica set whose deployment is gone");
        }
    }
    for m in lifecycle::orphans(revisions.iter().map(|r| &r.metadata), &existing) {
        if !owner_gone(api, m).await? {
            continue;
        }
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
                "Deployment"
                    | "ReplicaSet"
                    | "Job"
                    | "CronJob"
                    | "StatefulSet"
                    | "DaemonSet"
                    | "ReplicationController"
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
        if m.deletion_timestamp.is_some() || !owner_gone(api, m).await? {
            continue;
        }
        api.delete(Kind::Pod, Some(m.namespace()), m.name(), None)
            .await?;
        tracing::info!(pod = %format!("{}/{}", m.namespace(), m.name()), "deleted a pod whose owner is gone");
    }
    claim_gc(api, &pods, &existing).await?;
    pods_of_gone_nodes_gc(api, &pods).await?;
    node_lease_gc(api).await
}

/// Deletes, with grace 0, the pods bound to a Node that no longer exists (Kubernetes' PodGC):
/// a node removed by `delete node`, a scale-down or a lost instance leaves pods that no agent
/// will finish. Each node is confirmed gone from the store first, not only from the cache.
async fn pods_of_gone_nodes_gc(api: &Api, pods: &[Arc<Pod>]) -> Result<(), ApiError> {
    let nodes: Vec<Arc<Node>> = api.shared(Kind::Node).await?;
    let names: HashSet<&str> = nodes.iter().map(|n| n.metadata.name()).collect();
    let mut confirmed: HashMap<String, bool> = HashMap::new();
    for p in lifecycle::pods_of_gone_nodes(pods.iter(), &names) {
        let node = p.spec.node_name.clone().unwrap_or_default();
        let gone = match confirmed.get(&node) {
            Some(g) => *g,
            None => {
                let g = matches!(
                    api.get(Kind::Node, None, &node).await,
                    Err(ApiError::NotFound { .. })
                );
                confirmed.insert(node.clone(), g);
                g
            }
        };
        if !gone {
            continue;
        }
        let m = &p.metadata;
        match api
            .delete(Kind::Pod, Some(m.namespace()), m.name(), Some(0))
            .await
        {
            Ok(_) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(pod = %format!("{}/{}", m.namespace(), m.name()), %node, "deleted a pod whose node is gone");
    }
    Ok(())
}

/// Deletes the claims a StatefulSet handed to itself or to a pod (its retention policy says
/// `Delete`) once that owner is gone, as Kubernetes' garbage collector does.
async fn claim_gc(
    api: &Api,
    pods: &[Arc<Pod>],
    existing: &HashSet<String>,
) -> Result<(), ApiError> {
    let claims: Vec<Arc<crate::api::core::PersistentVolumeClaim>> =
        api.shared(Kind::PersistentVolumeClaim).await?;
    let pod_uids: HashSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    for c in &claims {
        let m = &c.metadata;
        let Some(owner) = m.owner_references.iter().find(|o| {
            o.controller == Some(true) && matches!(o.kind.as_str(), "StatefulSet" | "Pod")
        }) else {
            continue;
        };
        let seen = existing.contains(&owner.uid) || pod_uids.contains(owner.uid.as_str());
        if seen || m.deletion_timestamp.is_some() || !owner_gone(api, m).await? {
            continue;
        }
        api.delete(
            Kind::PersistentVolumeClaim,
            Some(m.namespace()),
            m.name(),
            None,
        )
        .await?;
        tracing::info!(claim = %format!("{}/{}", m.namespace(), m.name()), owner = %format!("{}/{}", owner.kind, owner.name), "deleted a claim whose owner is gone");
    }
    Ok(())
}

/// Reconciles Job `key` (`namespace/name`) from the caches: creates and deletes its pods,
/// writes its status; a job with a deadline comes back every second (its clock).
async fn job_reconcile(ctx: &runtime::Ctx, key: &str) -> Result<runtime::Action, ApiError> {
    let api = &ctx.api;
    let (ns, name) = runtime::split_key(key);
    let Some(j) = ctx.caches.jobs.get(ns, name) else {
        return Ok(runtime::Action::await_change());
    };
    let now = Utc::now();
    {
        if j.metadata.deletion_timestamp.is_some() {
            return Ok(runtime::Action::await_change());
        }
        let uid = j.metadata.uid.as_deref().unwrap_or("");
        let owned = ctx.caches.pods.owned_by(uid);
        let (ns, name) = (j.metadata.namespace(), j.metadata.name());
        let about = || About {
            ns,
            kind: Kind::Job,
            name,
            uid: Some(uid),
        };
        let plan = jobs::reconcile(&j, &owned, now);
        let mut create_error = None;
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
                        .await;
                        create_error = Some(e);
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
        let finished = plan.finished.is_some() || jobs::finished(&j);
        write_status(api, Kind::Job, ns, name, j.status.as_ref(), &plan.status).await?;
        if let Some(e) = create_error {
            return Err(e);
        }
        if j.spec.active_deadline_seconds.is_some() && !finished {
            return Ok(runtime::Action::requeue(Duration::from_secs(1)));
        }
    }
    Ok(runtime::Action::await_change())
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

/// Reconciles CronJob `key` from the caches: starts the jobs its schedule asks for, removes
/// the old ones, writes its status; it comes back every 2 s (the schedule's clock).
async fn cronjob_reconcile(ctx: &runtime::Ctx, key: &str) -> Result<runtime::Action, ApiError> {
    let api = &ctx.api;
    let (ns, name) = runtime::split_key(key);
    let Some(c) = ctx.caches.cron_jobs.get(ns, name) else {
        return Ok(runtime::Action::await_change());
    };
    let now = Utc::now();
    {
        if c.metadata.deletion_timestamp.is_some() {
            return Ok(runtime::Action::await_change());
        }
        let uid = c.metadata.uid.as_deref().unwrap_or("");
        let owned: Vec<crate::api::workloads::Job> = (ctx.caches.jobs.owned_by(uid).iter())
            .map(|j| (**j).clone())
            .collect();
        let (ns, name) = (c.metadata.namespace(), c.metadata.name());
        let about = || About {
            ns,
            kind: Kind::CronJob,
            name,
            uid: Some(uid),
        };
        let plan = cronjobs::reconcile(&c, &owned, now);
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
    Ok(runtime::Action::requeue(Duration::from_secs(2)))
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
