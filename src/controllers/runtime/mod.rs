//! The controller runtime of one leadership term, in the shape of kube-rs's `kube-runtime`
//! (watcher → reflector → Controller) built in-tree over orkops' own typed objects:
//!
//! - [`store`]: one list+watch per kind feeding a shared typed cache ([`Caches`]), resumed from
//!   its resourceVersion and relisted on 410; every controller reads the same caches.
//! - [`queue`]: a work queue of keys per controller, de-duplicated, never two reconciles of
//!   one key at once, per-key exponential back-off, `requeue_after`.
//! - [`Runtime`]: owns every task of the term (reflectors, workers, cloud loops) under one
//!   cancellation token, so that losing leadership stops all of it.
//!
//! Caches lag the store a little. A reconcile's own writes are remembered per key, and the
//! key's next reconcile first waits (briefly) until the caches have seen them — the generic
//! form of client-go's "expectations", which keeps a ReplicaSet from creating its pods twice.

pub mod queue;
pub mod store;

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::api::admit::Object;
use crate::api::coordination::Lease;
use crate::api::core::{Endpoints, Node, PersistentVolumeClaim, Pod, Service};
use crate::api::policy::PodDisruptionBudget;
use crate::api::statefulset::StatefulSet;
use crate::api::storage::{PersistentVolume, StorageClass};
use crate::api::workloads::{
    ControllerRevision, CronJob, DaemonSet, Deployment, Job, ReplicaSet, ReplicationController,
};
use crate::api::Kind;
use crate::apiserver::ApiError;

pub use queue::{Action, Backoff, Queue};
pub use store::Store;

use super::Api;

/// The shared caches, one per kind the master's controllers read.
pub struct Caches {
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
    pub services: Store<Service>,
    pub endpoints: Store<Endpoints>,
    pub claims: Store<PersistentVolumeClaim>,
    pub deployments: Store<Deployment>,
    pub replica_sets: Store<ReplicaSet>,
    pub revisions: Store<ControllerRevision>,
    pub jobs: Store<Job>,
    pub cron_jobs: Store<CronJob>,
    pub pdbs: Store<PodDisruptionBudget>,
    /// The nodes' heartbeats (and users' leader elections).
    pub leases: Store<Lease>,
    pub stateful_sets: Store<StatefulSet>,
    pub daemon_sets: Store<DaemonSet>,
    pub replication_controllers: Store<ReplicationController>,
    pub volumes: Store<PersistentVolume>,
    pub storage_classes: Store<StorageClass>,
}

impl Default for Caches {
    fn default() -> Caches {
        Caches {
            // the pods still to schedule are kept apart: the scheduler looks for them on
            // every change, among tens of thousands
            pods: Store::marking(super::scheduling::unbound),
            nodes: Store::default(),
            services: Store::default(),
            endpoints: Store::default(),
            claims: Store::default(),
            deployments: Store::default(),
            replica_sets: Store::default(),
            revisions: Store::default(),
            jobs: Store::default(),
            cron_jobs: Store::default(),
            pdbs: Store::default(),
            leases: Store::default(),
            stateful_sets: Store::default(),
            daemon_sets: Store::default(),
            replication_controllers: Store::default(),
            volumes: Store::default(),
            storage_classes: Store::default(),
        }
    }
}

/// A write a reconcile made, as the caches must show it before the key's next reconcile.
#[derive(Debug, Clone)]
pub struct Written {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The revision the write produced (for a delete that removed the object at once: the
    /// object's last revision).
    pub revision: i64,
    /// The object was removed at once (not merely marked for deletion).
    pub removed: bool,
}

fn seen<T: Object>(s: &Store<T>, w: &Written) -> bool {
    if w.removed {
        s.revision_of(&w.namespace, &w.name)
            .is_none_or(|rv| rv > w.revision)
    } else {
        s.revision() >= w.revision
    }
}

impl Caches {
    /// Whether the cache of `w.kind` shows write `w` (kinds without a cache: yes).
    pub fn shows(&self, w: &Written) -> bool {
        match w.kind {
            Kind::Pod => seen(&self.pods, w),
            Kind::Node => seen(&self.nodes, w),
            Kind::Service => seen(&self.services, w),
            Kind::Endpoints => seen(&self.endpoints, w),
            Kind::PersistentVolumeClaim => seen(&self.claims, w),
            Kind::Deployment => seen(&self.deployments, w),
            Kind::ReplicaSet => seen(&self.replica_sets, w),
            Kind::ControllerRevision => seen(&self.revisions, w),
            Kind::Job => seen(&self.jobs, w),
            Kind::CronJob => seen(&self.cron_jobs, w),
            Kind::PodDisruptionBudget => seen(&self.pdbs, w),
            Kind::Lease => seen(&self.leases, w),
            Kind::StatefulSet => seen(&self.stateful_sets, w),
            Kind::DaemonSet => seen(&self.daemon_sets, w),
            Kind::ReplicationController => seen(&self.replication_controllers, w),
            Kind::PersistentVolume => seen(&self.volumes, w),
            Kind::StorageClass => seen(&self.storage_classes, w),
            _ => true,
        }
    }

    /// Every object of `kind` as `T`, when `kind` is cached as `T` (the facade [`Api::list`]
    /// serves from here instead of listing through the engine).
    /// A cache that has not got its first list yet serves nothing (`None`): its emptiness is
    /// not the cluster's, and a loop acting on it would delete what exists.
    pub fn list_as<T: 'static>(&self, kind: Kind) -> Option<Vec<T>> {
        let all = self.erased(kind, true)?;
        all.downcast::<Vec<T>>().ok().map(|b| *b)
    }

    /// Every object of `kind`, shared with the cache (no copy), when `kind` is cached as `T`:
    /// what the whole-cluster passes read, since they run on every change and a copy of
    /// 30,000 pods per pass is most of the master's work. Unsynced, as [`Caches::list_as`].
    pub fn shared_as<T: 'static>(&self, kind: Kind) -> Option<Vec<Arc<T>>> {
        let all = self.erased(kind, false)?;
        all.downcast::<Vec<Arc<T>>>().ok().map(|b| *b)
    }

    /// The objects of a synced cache of `kind`, copied (`Vec<T>`) or shared (`Vec<Arc<T>>`).
    fn erased(&self, kind: Kind, copy: bool) -> Option<Box<dyn Any>> {
        fn boxed<U: Object>(s: &Store<U>, copy: bool) -> Option<Box<dyn Any>> {
            (s.revision() > 0).then(|| -> Box<dyn Any> {
                if copy {
                    Box::new(s.cloned())
                } else {
                    Box::new(s.list())
                }
            })
        }
        match kind {
            Kind::Pod => boxed(&self.pods, copy),
            Kind::Node => boxed(&self.nodes, copy),
            Kind::Service => boxed(&self.services, copy),
            Kind::Endpoints => boxed(&self.endpoints, copy),
            Kind::PersistentVolumeClaim => boxed(&self.claims, copy),
            Kind::Deployment => boxed(&self.deployments, copy),
            Kind::ReplicaSet => boxed(&self.replica_sets, copy),
            Kind::ControllerRevision => boxed(&self.revisions, copy),
            Kind::Job => boxed(&self.jobs, copy),
            Kind::CronJob => boxed(&self.cron_jobs, copy),
            Kind::PodDisruptionBudget => boxed(&self.pdbs, copy),
            Kind::Lease => boxed(&self.leases, copy),
            Kind::StatefulSet => boxed(&self.stateful_sets, copy),
            Kind::DaemonSet => boxed(&self.daemon_sets, copy),
            Kind::ReplicationController => boxed(&self.replication_controllers, copy),
            Kind::PersistentVolume => boxed(&self.volumes, copy),
            Kind::StorageClass => boxed(&self.storage_classes, copy),
            _ => None,
        }
    }

    /// Calls `f` on every change of `kind` (for the loops that are only woken by changes).
    pub fn on_change(&self, kind: Kind, f: Arc<dyn Fn() + Send + Sync>) -> bool {
        fn sub<U: Object>(s: &Store<U>, f: Arc<dyn Fn() + Send + Sync>) -> bool {
            s.subscribe(Arc::new(move |_: &U| f()));
            true
        }
        match kind {
            Kind::Pod => sub(&self.pods, f),
            Kind::Node => sub(&self.nodes, f),
            Kind::Service => sub(&self.services, f),
            Kind::Endpoints => sub(&self.endpoints, f),
            Kind::PersistentVolumeClaim => sub(&self.claims, f),
            Kind::Deployment => sub(&self.deployments, f),
            Kind::ReplicaSet => sub(&self.replica_sets, f),
            Kind::ControllerRevision => sub(&self.revisions, f),
            Kind::Job => sub(&self.jobs, f),
            Kind::CronJob => sub(&self.cron_jobs, f),
            Kind::PodDisruptionBudget => sub(&self.pdbs, f),
            Kind::Lease => sub(&self.leases, f),
            Kind::StatefulSet => sub(&self.stateful_sets, f),
            Kind::DaemonSet => sub(&self.daemon_sets, f),
            Kind::ReplicationController => sub(&self.replication_controllers, f),
            Kind::PersistentVolume => sub(&self.volumes, f),
            Kind::StorageClass => sub(&self.storage_classes, f),
            _ => false,
        }
    }

    /// Starts one reflector per cache in `rt`.
    fn reflect(&self, rt: &mut Runtime, api: &Api) {
        fn one<U: Object>(rt: &mut Runtime, api: &Api, s: &Store<U>) {
            let stop = rt.stop.clone();
            rt.tasks.spawn(store::reflect(api.clone(), s.clone(), stop));
        }
        one(rt, api, &self.pods);
        one(rt, api, &self.nodes);
        one(rt, api, &self.services);
        one(rt, api, &self.endpoints);
        one(rt, api, &self.claims);
        one(rt, api, &self.deployments);
        one(rt, api, &self.replica_sets);
        one(rt, api, &self.revisions);
        one(rt, api, &self.jobs);
        one(rt, api, &self.cron_jobs);
        one(rt, api, &self.pdbs);
        one(rt, api, &self.leases);
        one(rt, api, &self.stateful_sets);
        one(rt, api, &self.daemon_sets);
        one(rt, api, &self.replication_controllers);
        one(rt, api, &self.volumes);
        one(rt, api, &self.storage_classes);
    }

    /// Resolves once every cache holds its first list (client-go's `WaitForCacheSync`).
    pub async fn ready(&self) {
        self.pods.ready().await;
        self.nodes.ready().await;
        self.services.ready().await;
        self.endpoints.ready().await;
        self.claims.ready().await;
        self.deployments.ready().await;
        self.replica_sets.ready().await;
        self.revisions.ready().await;
        self.jobs.ready().await;
        self.cron_jobs.ready().await;
        self.pdbs.ready().await;
        self.leases.ready().await;
        self.stateful_sets.ready().await;
        self.daemon_sets.ready().await;
        self.replication_controllers.ready().await;
        self.volumes.ready().await;
        self.storage_classes.ready().await;
    }
}

/// What a reconcile gets: the engine facade (its writes are recorded for the key) and the
/// shared caches.
#[derive(Clone)]
pub struct Ctx {
    pub api: Api,
    pub caches: Arc<Caches>,
}

/// Everything started for one leadership term. Dropping it, or [`Runtime::shutdown`], stops
/// every task it owns.
pub struct Runtime {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// Loops started as plain tasks (`control_loop`); aborted with the rest.
    adopted: Vec<JoinHandle<()>>,
    /// Turns true when the term ends, for the loops that take a `watch` stop signal.
    stop_signal: watch::Sender<bool>,
    pub caches: Arc<Caches>,
    api: Api,
    queues: HashMap<&'static str, Arc<Queue>>,
}

impl Runtime {
    /// A runtime over `api` whose caches start filling at once.
    pub fn new(api: Api) -> Runtime {
        let caches = Arc::new(Caches::default());
        let api = api.with_caches(caches.clone());
        let mut rt = Runtime {
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
            adopted: Vec::new(),
            stop_signal: watch::Sender::new(false),
            caches: caches.clone(),
            api: api.clone(),
            queues: HashMap::new(),
        };
        caches.reflect(&mut rt, &api);
        let (stop, signal) = (rt.stop.clone(), rt.stop_signal.clone());
        rt.tasks.spawn(async move {
            stop.cancelled().await;
            let _ = signal.send(true);
        });
        rt
    }

    /// The engine facade, served from the caches where they hold the kind.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// A stop signal that turns true when the term ends.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop_signal.subscribe()
    }

    /// Runs `fut` once the caches hold their first lists (as controllers start), until the
    /// term ends.
    pub fn spawn(&mut self, fut: impl Future<Output = ()> + Send + 'static) {
        let (stop, caches) = (self.stop.clone(), self.caches.clone());
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = async { caches.ready().await; fut.await } => {}
            }
        });
    }

    /// Takes a task started elsewhere into the term: it is aborted when the term ends.
    pub fn adopt(&mut self, handle: JoinHandle<()>) {
        self.adopted.push(handle);
    }

    /// The queue of controller `name`, for mappers and tests.
    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.get(name).cloned()
    }

    /// Starts controller `name`: `workers` workers that take keys from its queue (once the
    /// caches are synced) and run `reconcile` on them. Returns the queue for the mappers.
    pub fn controller<F, Fut>(
        &mut self,
        name: &'static str,
        workers: usize,
        reconcile: F,
    ) -> Arc<Queue>
    where
        F: Fn(Ctx, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, ApiError>> + Send + 'static,
    {
        let queue = Queue::new(Backoff::default());
        let pending: Arc<Mutex<HashMap<String, Vec<Written>>>> = Arc::default();
        let (api, caches, reconcile) = (self.api.clone(), self.caches.clone(), Arc::new(reconcile));
        let run: queue::Reconcile = Arc::new(move |key: String| -> queue::Pending {
            let (api, caches, reconcile, pending) = (
                api.clone(),
                caches.clone(),
                reconcile.clone(),
                pending.clone(),
            );
            Box::pin(async move {
                let before = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key)
                    .unwrap_or_default();
                wait_shown(&caches, &before).await;
                let (api, log) = api.recording();
                let result = (*reconcile)(Ctx { api, caches }, key.clone()).await;
                let writes = std::mem::take(&mut *log.lock().unwrap_or_else(|e| e.into_inner()));
                if !writes.is_empty() {
                    pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, writes);
                }
                result
            })
        });
        for _ in 0..workers.max(1) {
            let (caches, queue, run, stop) = (
                self.caches.clone(),
                queue.clone(),
                run.clone(),
                self.stop.clone(),
            );
            self.tasks.spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = caches.ready() => {}
                }
                queue::work(name, queue, run, stop).await
            });
        }
        self.queues.insert(name, queue.clone());
        queue
    }

    /// Stops every task of the term and waits for them to end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for h in self.adopted.drain(..) {
            h.abort();
            let _ = h.await;
        }
        if tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("some controller tasks did not stop within 5 s; aborting them");
            self.tasks.shutdown().await;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.cancel();
        for h in &self.adopted {
            h.abort();
        }
    }
}

/// Waits (at most 5 s) until the caches show `writes`.
async fn wait_shown(caches: &Caches, writes: &[Written]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !writes.iter().all(|w| caches.shows(w)) {
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!(
                ?writes,
                "the caches did not show a reconcile's writes within 5 s"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `namespace/name` (or `name` for a cluster kind) of an object.
pub fn key_of(m: &crate::api::meta::ObjectMeta) -> String {
    match m.namespace() {
        "" => m.name().to_string(),
        ns => format!("{ns}/{}", m.name()),
    }
}

/// The namespace and name in a key.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A mapper: a change of an object queues its own key.
pub fn enqueue_self<T: Object>(queue: &Arc<Queue>) -> store::Subscriber<T> {
    let q = queue.clone();
    Arc::new(move |o: &T| q.add(key_of(o.metadata())))
}

/// A mapper: a change of an object queues the key of its controlling owner of kind `owner`.
pub fn enqueue_owner<T: Object>(queue: &Arc<Queue>, owner: &'static str) -> store::Subscriber<T> {
    let q = queue.clone();
    Arc::new(move |o: &T| {
        let m = o.metadata();
        if let Some(r) = m
            .owner_references
            .iter()
            .find(|r| r.controller == Some(true) && r.kind == owner)
        {
            q.add(match m.namespace() {
                "" => r.name.clone(),
                ns => format!("{ns}/{}", r.name),
            });
        }
    })
}

/// A mapper for a whole-cluster pass: any change queues its one key.
pub fn enqueue_pass<T: Object>(queue: &Arc<Queue>) -> store::Subscriber<T> {
    let q = queue.clone();
    Arc::new(move |_: &T| q.add(PASS))
}

/// The one key of a whole-cluster controller (scheduler, node lifecycle, ...).
pub const PASS: &str = "*";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_serves_lists_only_once_it_holds_its_first_list() {
        // an empty unsynced cache is not an empty cluster: the facade must list elsewhere
        let c = Caches::default();
        assert!(c.list_as::<Service>(Kind::Service).is_none());
        assert!(c.shared_as::<Service>(Kind::Service).is_none());
        c.services.replace(7, Vec::new());
        assert_eq!(
            c.list_as::<Service>(Kind::Service).map(|v| v.len()),
            Some(0)
        );
        assert_eq!(
            c.shared_as::<Service>(Kind::Service).map(|v| v.len()),
            Some(0)
        );
        // a kind asked for as another type is not served either
        assert!(c.list_as::<Node>(Kind::Service).is_none());
    }
}
