//! The API engine: executes typed commands (create, get, list, watch, replace, status, patch,
//! delete) against the store for an authenticated caller. It owns the object lifecycle rules:
//! system metadata, status written only through `/status`, generation, compare-and-swap on
//! `resourceVersion`, graceful pod deletion, namespace cascade, and who may do what.
//! No HTTP here: `http.rs` decodes requests into `Command`s, and tests can drive this directly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::alloc::{AllocError, Allocator, NetworkRanges, Owner, Pool};
use super::auth::{Caller, NodeIdentity};
use super::error::ApiError;
use super::paging::event_line;
use super::resume::resumable;
use super::write::{PatchType, Propagation, WriteOptions};
use crate::api::labels::{self, Selector};
use crate::api::{self, admit, Kind};
use crate::store::{Store, StoreError, StoreEvent, Versioned};

/// Namespaces that always exist and cannot be deleted.
/// The ConfigMap in `orkops-system` that carries the cluster's address ranges.
pub const NETWORK_CONFIG_MAP: &str = "cluster-network";
/// The namespaces every cluster has and nobody may delete: Kubernetes' four (`kube-node-lease`
/// holds the nodes' Leases) and orkops' own add-ons'.
pub const SYSTEM_NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "kube-public",
    crate::api::coordination::NODE_LEASE_NAMESPACE,
    "orkops-system",
];

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub labels: Selector,
    pub fields: Selector,
    /// For watches: send changes after this revision. None or 0: list first, then changes.
    pub resource_version: Option<i64>,
    pub timeout: Option<Duration>,
    /// limit, continue, resourceVersionMatch, bookmarks (see `paging`).
    pub paging: super::paging::Paging,
    /// The objects or a Table of them (see `table`).
    pub output: super::table::Output,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub precondition_resource_version: Option<i64>,
    pub precondition_uid: Option<String>,
    /// What happens to the objects the deleted one owns.
    pub propagation: Propagation,
    /// Check everything, delete nothing.
    pub dry_run: bool,
}

/// Everything the API can be asked to do.
#[derive(Debug)]
pub enum Command {
    Create {
        kind: Kind,
        namespace: Option<String>,
        body: Value,
    },
    Get {
        kind: Kind,
        namespace: Option<String>,
        name: String,
    },
    List {
        kind: Kind,
        namespace: Option<String>,
        query: ListQuery,
    },
    Watch {
        kind: Kind,
        namespace: Option<String>,
        query: ListQuery,
    },
    Replace {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        body: Value,
    },
    ReplaceStatus {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        body: Value,
    },
    Patch {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        patch: Value,
        patch_type: PatchType,
        status: bool,
    },
    Delete {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        options: DeleteOptions,
    },
    /// The `autoscaling/v1` Scale of a deployment, replica set or replication controller
    /// (`NAME/scale`).
    Scale {
        kind: Kind,
        namespace: Option<String>,
        name: String,
        op: super::scale::ScaleOp,
    },
    /// An agent asks for its node token (with the join token, or its current node token).
    IssueNodeToken { node: String },
    /// The admin asks for a join token scoped to one node (bound to an instance id and an
    /// address, both optional).
    IssueJoinToken {
        node: String,
        instance: String,
        address: String,
    },
    /// Sign the serving certificate of a node's agent (a PEM certificate request).
    SignNodeCertificate { node: String, csr: String },
    /// Delete a pod as far as its PodDisruptionBudget allows (`pods/NAME/eviction`).
    Evict {
        namespace: String,
        name: String,
        options: DeleteOptions,
    },
    /// Assign a pending pod to a node (the scheduler's write; `pods/NAME/binding`).
    Bind {
        namespace: String,
        name: String,
        node: String,
        uid: Option<String>,
    },
}

pub enum Reply {
    Created(Value),
    Ok(Value),
    /// An already encoded JSON body (lists).
    Json(Bytes),
    Watch(BoxStream<'static, Bytes>),
}

pub struct Engine {
    store: Arc<dyn Store>,
    prefix: String,
    credentials: Option<Arc<super::auth::Credentials>>,
    shutdown: watch::Receiver<bool>,
    ca: Option<Arc<crate::pki::Ca>>,
    alloc: Allocator,
    /// The names the API server serves under; no node certificate may carry them.
    serving_names: Vec<String>,
}

#[derive(Clone, Copy)]
enum Verb {
    Create,
    Write,
    WriteStatus,
    Delete,
}

impl Engine {
    /// `prefix` scopes every key (`/orkops` by default), so clusters and tests can share an etcd.
    pub fn new(
        store: Arc<dyn Store>,
        prefix: &str,
        credentials: Option<Arc<super::auth::Credentials>>,
        shutdown: watch::Receiver<bool>,
    ) -> Engine {
        let prefix = prefix.trim_end_matches('/').to_string();
        Engine {
            alloc: Allocator::new(store.clone(), &prefix, NetworkRanges::default()),
            store,
            prefix,
            credentials,
            shutdown,
            ca: None,
            serving_names: Vec::new(),
        }
    }

    /// The names (DNS or IP) of the API server's certificate, refused in node certificates.
    pub fn with_serving_names(mut self, names: Vec<String>) -> Engine {
        self.serving_names = names;
        self
    }

    /// Sets the address ranges ClusterIPs, node ports and pod CIDRs are allocated from.
    pub fn with_network(mut self, ranges: NetworkRanges) -> Engine {
        self.alloc.ranges = ranges;
        self
    }

    pub fn network(&self) -> &NetworkRanges {
        &self.alloc.ranges
    }

    /// Lets the engine sign agents' serving certificates with the cluster CA.
    pub fn with_ca(mut self, ca: crate::pki::Ca) -> Engine {
        self.ca = Some(Arc::new(ca));
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn key(&self, kind: Kind, namespace: Option<&str>, name: &str) -> String {
        match (kind.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}/{}/{ns}/{name}", self.prefix, kind.plural()),
            _ => format!("{}/{}/{name}", self.prefix, kind.plural()),
        }
    }

    fn collection(&self, kind: Kind, namespace: Option<&str>) -> String {
        match (kind.namespaced(), namespace) {
            (true, Some(ns)) => format!("{}/{}/{ns}/", self.prefix, kind.plural()),
            _ => format!("{}/{}/", self.prefix, kind.plural()),
        }
    }

    /// Creates the system namespaces if they are missing.
    pub async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        for ns in SYSTEM_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            match self
                .handle(
                    &Caller::Master,
                    Command::Create {
                        kind: Kind::Namespace,
                        namespace: None,
                        body,
                    },
                )
                .await
            {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.ensure_default_service_accounts().await
    }

    /// Publishes the cluster's address ranges as the ConfigMap `orkops-system/cluster-network`,
    /// which agents read to program routes, service rules and DNS.
    pub async fn publish_network(&self) -> Result<(), ApiError> {
        let r = self.network();
        let body = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": NETWORK_CONFIG_MAP, "namespace": "orkops-system"},
            "data": {
                "clusterCIDR": r.cluster_cidr.to_string(),
                "serviceCIDR": r.service_cidr.to_string(),
                "nodePortRange": format!("{}-{}", r.node_port_min, r.node_port_max),
                "clusterDomain": r.cluster_domain,
            }
        });
        let create = Command::Create {
            kind: Kind::ConfigMap,
            namespace: Some("orkops-system".into()),
            body: body.clone(),
        };
        match self.handle(&Caller::Master, create).await {
            Ok(_) => Ok(()),
            Err(ApiError::AlreadyExists { .. }) => self
                .handle(
                    &Caller::Master,
                    Command::Replace {
                        kind: Kind::ConfigMap,
                        namespace: Some("orkops-system".into()),
                        name: NETWORK_CONFIG_MAP.into(),
                        body,
                    },
                )
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    }

    pub async fn handle(&self, caller: &Caller, cmd: Command) -> Result<Reply, ApiError> {
        self.handle_with(caller, cmd, &WriteOptions::default())
            .await
    }

    /// Executes `cmd` with the write parameters of its request (`dryRun`, `fieldManager`,
    /// `force`).
    pub async fn handle_with(
        &self,
        caller: &Caller,
        cmd: Command,
        opts: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        super::identity::check_revoked(self.store.as_ref(), &self.prefix, caller).await?;
        if let Caller::Joiner(_) = caller {
            if !matches!(cmd, Command::IssueNodeToken { .. }) {
                return Err(ApiError::Forbidden(
                    "the join token may only be used to obtain a node token".into(),
                ));
            }
        }
        match cmd {
            Command::Create {
                kind,
                namespace,
                body,
            } => self.create(caller, kind, namespace, body, opts).await,
            Command::Get {
                kind,
                namespace,
                name,
            } => {
                let ns = scope(kind, namespace)?;
                self.authorize_read(caller, kind, ns.as_deref(), Some(&name))
                    .await?;
                let (obj, _) = self.load(kind, ns.as_deref(), &name).await?;
                Ok(Reply::Ok(obj))
            }
            Command::List {
                kind,
                namespace,
                query,
            } => {
                let ns = list_scope(kind, namespace);
                self.authorize_read(caller, kind, ns.as_deref(), None)
                    .await?;
                self.list(kind, ns.as_deref(), &query)
                    .await
                    .map(Reply::Json)
            }
            Command::Watch {
                kind,
                namespace,
                query,
            } => {
                let ns = list_scope(kind, namespace);
                self.authorize_read(caller, kind, ns.as_deref(), None)
                    .await?;
                self.watch(kind, ns, query).await.map(Reply::Watch)
            }
            Command::Replace {
                kind,
                namespace,
                name,
                body,
            } => {
                let ns = scope(kind, namespace)?;
                self.replace(caller, kind, ns, name, body, opts).await
            }
            Command::ReplaceStatus {
                kind,
                namespace,
                name,
                body,
            } => {
                let ns = scope(kind, namespace)?;
                self.replace_status(caller, kind, ns, name, body).await
            }
            Command::Patch {
                kind,
                namespace,
                name,
                patch,
                patch_type,
                status,
            } => {
                let ns = scope(kind, namespace)?;
                let p = Patch {
                    body: patch,
                    patch_type,
                    status,
                };
                self.patch(caller, kind, ns, name, p, opts).await
            }
            Command::Delete {
                kind,
                namespace,
                name,
                mut options,
            } => {
                let ns = scope(kind, namespace)?;
                options.dry_run |= opts.dry_run;
                self.delete(caller, kind, ns, name, options).await
            }
            Command::Scale {
                kind,
                namespace,
                name,
                op,
            } => super::scale::handle(self, caller, kind, namespace, name, op).await,
            Command::IssueNodeToken { node } => self.issue_node_token(caller, &node),
            Command::IssueJoinToken {
                node,
                instance,
                address,
            } => self.issue_join_token(caller, &node, &instance, &address),
            Command::SignNodeCertificate { node, csr } => {
                self.sign_node_certificate(caller, &node, &csr)
            }
            Command::Bind {
                namespace,
                name,
                node,
                uid,
            } => self.bind(caller, namespace, name, node, uid).await,
            Command::Evict {
                namespace,
                name,
                mut options,
            } => {
                options.dry_run |= opts.dry_run;
                super::eviction::handle(self, caller, namespace, name, options).await
            }
        }
    }

    async fn load(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(Value, i64), ApiError> {
        let key = self.key(kind, ns, name);
        let v = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, kind, ns, name))?
            .ok_or_else(|| ApiError::NotFound {
                kind,
                namespace: ns.map(str::to_string),
                name: name.to_string(),
            })?;
        Ok((decode_stored(&v)?, v.revision))
    }

    async fn create(
        &self,
        caller: &Caller,
        kind: Kind,
        namespace: Option<String>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let ns = if kind.namespaced() {
            Some(namespace.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{kind} is namespaced: create it under /namespaces/NAME/"
                ))
            })?)
        } else {
            None
        };
        let mut body = check_envelope(kind, body, ns.as_deref(), None)?;
        let generated;
        let name = match api::name_of(&body) {
            "" => {
                let base = body
                    .pointer("/metadata/generateName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if base.is_empty() {
                    return Err(invalid(
                        kind,
                        "",
                        "metadata.name",
                        "required: name or generateName",
                    ));
                }
                generated = format!("{base}{}", random_suffix());
                api::set_meta(&mut body, "name", json!(generated));
                generated.clone()
            }
            n => n.to_string(),
        };
        check_name(kind, &name)?;
        if body.pointer("/metadata/resourceVersion").is_some() {
            return Err(invalid(
                kind,
                &name,
                "metadata.resourceVersion",
                "must not be set when creating an object",
            ));
        }
        self.authorize_write(caller, Verb::Create, kind, ns.as_deref(), &name, None)
            .await?;
        super::identity::check_node_claim(caller, kind, &body)?;
        if !may_write_status(caller, kind, &name, None) {
            if let Some(m) = body.as_object_mut() {
                m.remove("status");
            }
        }
        let now = Utc::now();
        api::set_meta(&mut body, "uid", json!(uuid::Uuid::new_v4().to_string()));
        api::set_meta(&mut body, "creationTimestamp", json!(now));
        api::set_meta(&mut body, "deletionTimestamp", Value::Null);
        api::set_meta(&mut body, "deletionGracePeriodSeconds", Value::Null);
        if has_spec(kind) {
            api::set_meta(&mut body, "generation", json!(1));
        }
        initial_status(kind, &mut body);
        let mut obj = admit(kind, body).map_err(|causes| ApiError::Invalid {
            kind,
            name: name.clone(),
            causes,
        })?;
        if let Some(ns) = &ns {
            self.require_namespace(ns).await?;
            if kind == Kind::Pod {
                self.admit_pod_service_account(ns, &mut obj).await?;
                super::podadmission::admit(&mut obj).map_err(|why| {
                    ApiError::Forbidden(format!("pods {name:?} is forbidden: {why}"))
                })?;
            }
            if kind == Kind::PersistentVolumeClaim {
                self.admit_claim_storage_class(&mut obj).await?;
            }
        }
        record(kind, None, &mut obj, opts);
        if opts.dry_run {
            // nothing is reserved or stored: a dry-run Service has no ClusterIP yet
            return Ok(Reply::Created(obj));
        }
        let reserved = self
            .allocate(kind, ns.as_deref(), &name, None, &mut obj)
            .await?;
        let key = self.key(kind, ns.as_deref(), &name);
        let rev = match self.store.create(&key, encode(&obj)?).await {
            Ok(rev) => rev,
            Err(e) => {
                self.release(kind, ns.as_deref(), &name, &obj, &reserved)
                    .await;
                return Err(ApiError::from_store(e, kind, ns.as_deref(), &name));
            }
        };
        api::set_meta(&mut obj, "resourceVersion", json!(rev.to_string()));
        tracing::debug!(?caller, %kind, name, "created");
        if kind == Kind::Namespace {
            self.ensure_default_service_account(&name).await?;
        }
        Ok(Reply::Created(obj))
    }

    async fn require_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let key = self.key(Kind::Namespace, None, ns);
        match self.store.get(&key).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ApiError::NotFound {
                kind: Kind::Namespace,
                namespace: None,
                name: ns.into(),
            }),
            Err(e) => Err(ApiError::from_store(e, Kind::Namespace, None, ns)),
        }
    }

    /// Lists a collection as JSON bytes, one page as `q` asks (see `paging`).
    async fn list(&self, kind: Kind, ns: Option<&str>, q: &ListQuery) -> Result<Bytes, ApiError> {
        super::paging::list(self.store.as_ref(), &self.collection(kind, ns), kind, q).await
    }

    async fn watch(
        &self,
        kind: Kind,
        ns: Option<String>,
        q: ListQuery,
    ) -> Result<BoxStream<'static, Bytes>, ApiError> {
        let prefix = self.collection(kind, ns.as_deref());
        let rv = q.resource_version.filter(|rv| *rv > 0);
        // as kube-apiserver: initial events when asked, or by default when no revision is given
        let initial_events = q.paging.send_initial_events.unwrap_or(rv.is_none());
        let store_err = |e| ApiError::from_store(e, kind, ns.as_deref(), "");
        let current = self.store.revision().await.map_err(store_err)?;
        if let Some(rv) = rv {
            check_not_ahead(rv, current)?;
        }
        let (initial, from) = if initial_events {
            super::paging::initial_events(self.store.clone(), prefix.clone(), kind, q.clone())
                .await?
        } else {
            (futures::stream::empty().boxed(), rv.unwrap_or(current))
        };
        let events = match self.store.watch(&prefix, from).await {
            Ok(first) => resumable(self.store.clone(), prefix, from, first),
            // as kube-apiserver: the watch opens, and its one event is the 410 to relist on
            Err(e @ StoreError::Compacted(_)) => futures::stream::iter([Err(e)]).boxed(),
            Err(e) => return Err(ApiError::from_store(e, kind, ns.as_deref(), "")),
        };
        let q2 = q.clone();
        // An error is sent as an ERROR line and ends the watch.
        let changes = events
            .scan((false, from), move |(ended, last), ev| {
                let out = if *ended {
                    None
                } else {
                    *ended = ev.is_err();
                    if let Ok(
                        StoreEvent::Put { revision, .. } | StoreEvent::Delete { revision, .. },
                    ) = &ev
                    {
                        *last = *revision;
                    }
                    Some((*last, translate(ev, &q2)))
                };
                futures::future::ready(out)
            })
            .boxed();
        let changes = super::paging::with_bookmarks(
            changes,
            kind,
            from,
            q.paging.bookmarks,
            super::paging::BOOKMARK_EVERY,
        );
        let mut shutdown = self.shutdown.clone();
        let deadline = q.timeout;
        let stop = async move {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep(d).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                _ = timeout => {}
            }
        };
        Ok(initial.chain(changes).take_until(stop).boxed())
    }

    async fn replace(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let body = check_envelope(kind, body, ns.as_deref(), Some(&name))?;
        let wanted_rv = parse_rv(&body, kind, &name)?;
        let body = admit(kind, body).map_err(|causes| ApiError::Invalid {
            kind,
            name: name.clone(),
            causes,
        })?;
        self.read_modify_write(
            caller,
            Verb::Write,
            kind,
            ns.as_deref(),
            &name,
            wanted_rv,
            ("update", opts.dry_run),
            |current| {
                let mut new = merge_update(kind, &name, current, body.clone())?;
                record(kind, Some(current), &mut new, opts);
                Ok(new)
            },
        )
        .await
        .map(Reply::Ok)
    }

    /// Read-modify-write of one object: loads it, refuses a stale pinned `resourceVersion`,
    /// checks that the caller may `verb` it, lets `change` make the new object from the current
    /// one and commits it with compare-and-swap. When a concurrent write wins and the caller
    /// pinned no resourceVersion, it starts over (five times at most); `what` names the
    /// operation in the final error, and with `dry_run` the new object is returned unstored.
    #[allow(clippy::too_many_arguments)]
    async fn read_modify_write(
        &self,
        caller: &Caller,
        verb: Verb,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        wanted_rv: Option<i64>,
        (what, dry_run): (&str, bool),
        change: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        for _ in 0..5 {
            let (current, rev) = self.load(kind, ns, name).await?;
            if let Some(w) = wanted_rv.filter(|w| *w != rev) {
                return Err(conflict(kind, name, w, rev));
            }
            self.authorize_write(caller, verb, kind, ns, name, Some(&current))
                .await?;
            let new = change(&current)?;
            super::identity::check_node_claim(caller, kind, &new)?;
            if dry_run {
                let mut new = new;
                api::set_meta(&mut new, "resourceVersion", json!(rev.to_string()));
                return Ok(new);
            }
            match self.commit(kind, ns, name, &current, new, rev).await {
                Err(ApiError::Conflict(_)) if wanted_rv.is_none() => continue,
                other => return other,
            }
        }
        Err(ApiError::Conflict(format!(
            "{kind} {name:?} is changing too fast to {what}; retry"
        )))
    }

    /// Writes `new` over `current` at `rev`, unless nothing changed.
    async fn commit(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        current: &Value,
        mut new: Value,
        rev: i64,
    ) -> Result<Value, ApiError> {
        strip_rv(&mut new);
        let mut cur = current.clone();
        strip_rv(&mut cur);
        if new == cur {
            return Ok(current.clone());
        }
        let reserved = self
            .allocate(kind, ns, name, Some(current), &mut new)
            .await?;
        let key = self.key(kind, ns, name);
        let rev = match self.store.update(&key, encode(&new)?, rev).await {
            Ok(rev) => rev,
            Err(e) => {
                self.release(kind, ns, name, &new, &reserved).await;
                return Err(ApiError::from_store(e, kind, ns, name));
            }
        };
        // node ports the service no longer has
        let dropped: Vec<Reservation> = reservations(kind, current)
            .into_iter()
            .filter(|r| !reservations(kind, &new).contains(r))
            .collect();
        self.release(kind, ns, name, current, &dropped).await;
        api::set_meta(&mut new, "resourceVersion", json!(rev.to_string()));
        Ok(new)
    }

    /// Fills in and reserves the numbers `obj` needs: a service's ClusterIP and node ports, a
    /// node's pod CIDR. Values the user chose are checked and reserved as they are; values
    /// `current` (the stored object, on update) already holds stay. Returns the reservations
    /// made now, to release if the write fails.
    async fn allocate(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        current: Option<&Value>,
        obj: &mut Value,
    ) -> Result<Vec<Reservation>, ApiError> {
        if !matches!(kind, Kind::Service | Kind::Node) {
            return Ok(Vec::new());
        }
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let owner = Owner::new(kind, ns, name, &uid);
        let held = current.map(|c| reservations(kind, c)).unwrap_or_default();
        let mut made = Vec::new();
        let r = self
            .fill_numbers(kind, name, &owner, &held, obj, &mut made)
            .await;
        if r.is_err() {
            self.release(kind, ns, name, obj, &made).await;
        }
        r.map(|()| made)
    }

    async fn fill_numbers(
        &self,
        kind: Kind,
        name: &str,
        owner: &Owner,
        held: &[Reservation],
        obj: &mut Value,
        made: &mut Vec<Reservation>,
    ) -> Result<(), ApiError> {
        let alloc_err = |field: &str, e: AllocError| match e {
            AllocError::Store(e) => ApiError::from_store(e, kind, None, name),
            e => invalid(kind, name, field, &e.to_string()),
        };
        let mut take = |pool: Pool, value: String| {
            let r = Reservation(pool, value);
            let fresh = !held.contains(&r);
            if fresh {
                made.push(r.clone());
            }
            (r, fresh)
        };
        if kind == Kind::Node {
            match obj.pointer("/spec/podCIDR").and_then(Value::as_str) {
                Some(c) => {
                    let net = self
                        .alloc
                        .check_pod_cidr(c)
                        .map_err(|e| alloc_err("spec.podCIDR", e))?;
                    if let (r, true) = take(Pool::PodCidr, net.to_string()) {
                        self.alloc
                            .reserve(r.0, &r.1, owner)
                            .await
                            .map_err(|e| alloc_err("spec.podCIDR", e))?;
                    }
                }
                None => {
                    let net = self
                        .alloc
                        .allocate_pod_cidr(owner)
                        .await
                        .map_err(|e| alloc_err("spec.podCIDR", e))?;
                    take(Pool::PodCidr, net.to_string());
                    obj["spec"]["podCIDR"] = json!(net.to_string());
                    obj["spec"]["podCIDRs"] = json!([net.to_string()]);
                }
            }
            return Ok(());
        }
        // Service
        let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            match obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(ip) => {
                    let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| {
                        invalid(kind, name, "spec.clusterIP", "must be an IPv4 address")
                    })?;
                    self.alloc
                        .check_cluster_ip(ip)
                        .map_err(|e| alloc_err("spec.clusterIP", e))?;
                    if let (r, true) = take(Pool::ClusterIp, ip.to_string()) {
                        self.alloc
                            .reserve(r.0, &r.1, owner)
                            .await
                            .map_err(|e| alloc_err("spec.clusterIP", e))?;
                    }
                }
                None => {
                    let ip = self
                        .alloc
                        .allocate_cluster_ip(owner)
                        .await
                        .map_err(|e| alloc_err("spec.clusterIP", e))?;
                    take(Pool::ClusterIp, ip.to_string());
                    obj["spec"]["clusterIP"] = json!(ip.to_string());
                }
            }
            let ip = obj["spec"]["clusterIP"].clone();
            obj["spec"]["clusterIPs"] = json!([ip]);
        }
        let wants_node_ports = matches!(
            obj.pointer("/spec/type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        );
        let n = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..n {
            let field = format!("spec.ports[{i}].nodePort");
            if !wants_node_ports {
                if let Some(m) = obj["spec"]["ports"][i].as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            match obj["spec"]["ports"][i]["nodePort"].as_i64() {
                Some(p) => {
                    self.alloc
                        .check_node_port(p)
                        .map_err(|e| alloc_err(&field, e))?;
                    if let (r, true) = take(Pool::NodePort, p.to_string()) {
                        self.alloc
                            .reserve(r.0, &r.1, owner)
                            .await
                            .map_err(|e| alloc_err(&field, e))?;
                    }
                }
                None => {
                    let p = self
                        .alloc
                        .allocate_node_port(owner)
                        .await
                        .map_err(|e| alloc_err(&field, e))?;
                    take(Pool::NodePort, p.to_string());
                    obj["spec"]["ports"][i]["nodePort"] = json!(p);
                }
            }
        }
        Ok(())
    }

    async fn release(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        what: &[Reservation],
    ) {
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let owner = Owner::new(kind, ns, name, uid);
        for Reservation(pool, value) in what {
            self.alloc.release(*pool, value, &owner).await;
        }
    }

    async fn replace_status(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        body: Value,
    ) -> Result<Reply, ApiError> {
        if !kind.has_status() {
            return Err(ApiError::PathNotFound(format!(
                "{kind} has no status subresource"
            )));
        }
        let body = check_envelope(kind, body, ns.as_deref(), Some(&name))?;
        let wanted_rv = parse_rv(&body, kind, &name)?;
        // without a resourceVersion the writer replaces the status whatever it was
        self.read_modify_write(
            caller,
            Verb::WriteStatus,
            kind,
            ns.as_deref(),
            &name,
            wanted_rv,
            ("update its status", false),
            |current| {
                let mut new = current.clone();
                new["status"] = body.get("status").cloned().unwrap_or(json!({}));
                admit(kind, new).map_err(|causes| ApiError::Invalid {
                    kind,
                    name: name.clone(),
                    causes,
                })
            },
        )
        .await
        .map(Reply::Ok)
    }

    async fn patch(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        p: Patch,
        opts: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let Patch {
            body: patch,
            patch_type,
            status,
        } = p;
        if patch_type == PatchType::Apply {
            if status {
                return Err(ApiError::BadRequest(format!(
                    "server-side apply of the status of {kind} {name:?} is not supported: apply the object, or patch its status"
                )));
            }
            return self.apply(caller, kind, ns, name, patch, opts).await;
        }
        let wanted_rv = match patch_type {
            PatchType::Json => None,
            _ if !patch.is_object() => {
                return Err(ApiError::BadRequest(format!(
                    "a {} must be a JSON object",
                    patch_name(patch_type)
                )))
            }
            _ => parse_rv(&patch, kind, &name)?,
        };
        let verb = if status {
            Verb::WriteStatus
        } else {
            Verb::Write
        };
        self.read_modify_write(
            caller,
            verb,
            kind,
            ns.as_deref(),
            &name,
            wanted_rv,
            ("patch", opts.dry_run),
            |current| {
                let merged = patched(kind, &name, current, &patch, patch_type)?;
                if patch_type == PatchType::Json {
                    let rv = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
                    if let Some(w) = rv(&merged).filter(|w| Some(w) != rv(current).as_ref()) {
                        return Err(ApiError::Conflict(format!(
                            "{kind} {name:?} was modified since you read it (your patch sets resourceVersion {w}, now {}); get it again and retry",
                            rv(current).unwrap_or_default()
                        )));
                    }
                }
                let merged = check_envelope(kind, merged, ns.as_deref(), Some(&name))?;
                let invalid = |causes| ApiError::Invalid {
                    kind,
                    name: name.clone(),
                    causes,
                };
                if status {
                    let mut new = current.clone();
                    new["status"] = merged.get("status").cloned().unwrap_or(json!({}));
                    admit(kind, new).map_err(invalid)
                } else {
                    let mut new =
                        merge_update(kind, &name, current, admit(kind, merged).map_err(invalid)?)?;
                    record(kind, Some(current), &mut new, opts);
                    Ok(new)
                }
            },
        )
        .await
        .map(Reply::Ok)
    }

    /// Server-side apply: creates the object from the configuration when it is missing,
    /// else merges it in with field ownership (see `api::managed`).
    async fn apply(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        cfg: Value,
        opts: &WriteOptions,
    ) -> Result<Reply, ApiError> {
        let manager = opts.field_manager.as_deref().ok_or_else(|| {
            ApiError::BadRequest("fieldManager is required for apply requests".into())
        })?;
        let cfg = check_envelope(kind, cfg, ns.as_deref(), Some(&name))?;
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let w = api::managed::Write {
            manager,
            api_version: kind.api_version(),
            now: &now,
        };
        let shape = shape(kind);
        let conflicts = |c: Vec<api::managed::Conflict>| conflict_error(&c);
        for _ in 0..3 {
            match self.load(kind, ns.as_deref(), &name).await {
                Err(ApiError::NotFound { .. }) => {
                    let obj = shape.apply(None, &cfg, &w, opts.force).map_err(conflicts)?;
                    let inner = WriteOptions {
                        field_manager: None,
                        ..opts.clone()
                    };
                    match self.create(caller, kind, ns.clone(), obj, &inner).await {
                        Err(ApiError::AlreadyExists { .. }) => continue,
                        other => return other,
                    }
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            return self
                .read_modify_write(
                    caller,
                    Verb::Write,
                    kind,
                    ns.as_deref(),
                    &name,
                    None,
                    ("apply", opts.dry_run),
                    |current| {
                        let obj = shape
                            .apply(Some(current), &cfg, &w, opts.force)
                            .map_err(conflicts)?;
                        let obj = admit(kind, obj).map_err(|causes| ApiError::Invalid {
                            kind,
                            name: name.clone(),
                            causes,
                        })?;
                        merge_update(kind, &name, current, obj)
                    },
                )
                .await
                .map(Reply::Ok);
        }
        Err(ApiError::Conflict(format!(
            "{kind} {name:?} is being created and deleted too fast to apply; retry"
        )))
    }

    /// Deletes, retrying when a concurrent write (say, a status update) moved the object
    /// between our read and our write — unless the caller pinned a resourceVersion (a uid
    /// precondition is checked again on every try).
    async fn delete(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        opts: DeleteOptions,
    ) -> Result<Reply, ApiError> {
        let mut tries = 0;
        loop {
            match self
                .delete_once(caller, kind, ns.clone(), name.clone(), opts.clone())
                .await
            {
                Err(ApiError::Conflict(_))
                    if opts.precondition_resource_version.is_none() && tries < 5 =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    async fn delete_once(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<String>,
        name: String,
        opts: DeleteOptions,
    ) -> Result<Reply, ApiError> {
        if kind == Kind::Namespace && SYSTEM_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "namespace {name:?} is a system namespace and cannot be deleted"
            )));
        }
        let (current, rev) = self.load(kind, ns.as_deref(), &name).await?;
        self.authorize_write(
            caller,
            Verb::Delete,
            kind,
            ns.as_deref(),
            &name,
            Some(&current),
        )
        .await?;
        if let Some(w) = opts.precondition_resource_version.filter(|w| *w != rev) {
            return Err(conflict(kind, &name, w, rev));
        }
        if let Some(uid) = &opts.precondition_uid {
            if current.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
                return Err(ApiError::Conflict(format!(
                    "{kind} {name:?} has a different uid than the precondition {uid}"
                )));
            }
        }
        if opts.dry_run {
            return Ok(Reply::Ok(current));
        }
        if opts.propagation == Propagation::Orphan {
            self.orphan_dependents(ns.as_deref(), &current).await?;
        }
        // A pod bound to a node is stopped by its agent first; the agent then removes it.
        let bound = current
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let owner_finalizes = matches!((caller.node(), bound), (Some(n), Some(b)) if n == b);
        if kind == Kind::Pod && bound.is_some() && !owner_finalizes {
            let default_grace = current
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30);
            let grace = opts.grace_period_seconds.unwrap_or(default_grace).max(0);
            if grace > 0 {
                if current.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(Reply::Ok(current));
                }
                let at = api::meta::seconds_after(Utc::now(), grace).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "gracePeriodSeconds: invalid value {grace}: the deletion time would be past the year 9999 (give a smaller gracePeriodSeconds)"
                    ))
                })?;
                let mut new = current.clone();
                api::set_meta(&mut new, "deletionTimestamp", json!(at));
                api::set_meta(&mut new, "deletionGracePeriodSeconds", json!(grace));
                return self
                    .commit(kind, ns.as_deref(), &name, &current, new, rev)
                    .await
                    .map(Reply::Ok);
            }
        }
        if kind == Kind::Node {
            // before the delete: a Node may stay with revoked tokens, never the other way
            super::identity::revoke(self.store.as_ref(), &self.prefix, &name).await?;
        }
        let key = self.key(kind, ns.as_deref(), &name);
        // Orphaning leaves the owner's controller without its dependents, and it reacts at once
        // (a new ReplicaSet, a status write), so a delete guarded by the revision read before the
        // orphaning loses every retry; without a precondition from the caller, kube-apiserver
        // deletes whatever version is current, and so does this.
        let guard = if opts.propagation == Propagation::Orphan
            && opts.precondition_resource_version.is_none()
        {
            None
        } else {
            Some(rev)
        };
        let (prev, _) = self
            .store
            .delete(&key, guard)
            .await
            .map_err(|e| ApiError::from_store(e, kind, ns.as_deref(), &name))?;
        if kind == Kind::Namespace {
            self.delete_namespace_contents(&name).await?;
        }
        let prev = decode_stored(&prev)?;
        self.release(
            kind,
            ns.as_deref(),
            &name,
            &prev,
            &reservations(kind, &prev),
        )
        .await;
        Ok(Reply::Ok(prev))
    }

    /// `propagationPolicy: Orphan`: the objects `owner` owns lose their reference to it
    /// before it goes, so that the garbage collector leaves them.
    async fn orphan_dependents(&self, ns: Option<&str>, owner: &Value) -> Result<(), ApiError> {
        let Some(uid) = owner.pointer("/metadata/uid").and_then(Value::as_str) else {
            return Ok(());
        };
        let owns = |v: &Value| {
            v.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        };
        for kind in Kind::all().filter(|k| k.namespaced() || ns.is_none()) {
            let (items, _) = self
                .store
                .list(&self.collection(kind, ns))
                .await
                .map_err(|e| ApiError::from_store(e, kind, ns, ""))?;
            for v in items {
                let obj = decode_stored(&v)?;
                if !owns(&obj) {
                    continue;
                }
                let dep_ns = Some(api::namespace_of(&obj)).filter(|n| !n.is_empty());
                let r = self
                    .read_modify_write(
                        &Caller::Master,
                        Verb::Write,
                        kind,
                        dep_ns,
                        api::name_of(&obj),
                        None,
                        ("orphan", false),
                        |current| {
                            let mut new = current.clone();
                            let none_left = new
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                                .map(|refs| {
                                    refs.retain(|r| r["uid"] != uid);
                                    refs.is_empty()
                                });
                            if none_left == Some(true) {
                                api::set_meta(&mut new, "ownerReferences", Value::Null);
                            }
                            Ok(new)
                        },
                    )
                    .await;
                match r {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    async fn delete_namespace_contents(&self, ns: &str) -> Result<(), ApiError> {
        for kind in Kind::all().filter(|k| k.namespaced()) {
            let (items, _) = self
                .store
                .list(&self.collection(kind, Some(ns)))
                .await
                .map_err(|e| ApiError::from_store(e, kind, Some(ns), ""))?;
            for v in items {
                let name = decode_stored(&v).map(|o| api::name_of(&o).to_string())?;
                let r = Box::pin(self.delete(
                    &Caller::Master,
                    kind,
                    Some(ns.to_string()),
                    name,
                    DeleteOptions::default(),
                ))
                .await;
                match r {
                    Ok(_) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn issue_node_token(&self, caller: &Caller, node: &str) -> Result<Reply, ApiError> {
        let bound = match caller {
            Caller::Joiner(id) | Caller::Node(id) if id.name == node => id.clone(),
            Caller::Admin | Caller::Master => NodeIdentity {
                name: node.to_string(),
                ..Default::default()
            },
            other => {
                return Err(ApiError::Forbidden(format!(
                    "{other:?} may obtain a token only for its own node, not for node {node:?}"
                )))
            }
        };
        check_node_name(node)?;
        let (token, expiry) = self.creds()?.mint_node_token(&bound, Utc::now());
        Ok(Reply::Created(json!({
            "apiVersion": "orkops.io/v1", "kind": "NodeToken",
            "node": node, "token": token, "expirationTimestamp": expiry,
        })))
    }

    /// `POST /orkops/v1/nodes/NAME/join-token` (admin only): a join token for one node, the
    /// way `kubeadm token create` makes bootstrap tokens.
    fn issue_join_token(
        &self,
        caller: &Caller,
        node: &str,
        instance: &str,
        address: &str,
    ) -> Result<Reply, ApiError> {
        if !caller.is_superuser() {
            return Err(ApiError::Forbidden(format!(
                "{caller:?} may not create join tokens; only the admin may"
            )));
        }
        check_node_name(node)?;
        if !address.is_empty() && address.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(
                Kind::Node,
                node,
                "address",
                "must be an IP address",
            ));
        }
        if instance.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                Kind::Node,
                node,
                "instanceID",
                "must not contain spaces",
            ));
        }
        let token = self
            .creds()?
            .mint_join_token(node, instance, address, Utc::now());
        Ok(Reply::Created(json!({
            "apiVersion": "orkops.io/v1", "kind": "JoinToken",
            "node": node, "instanceID": instance, "address": address, "token": token,
        })))
    }

    fn creds(&self) -> Result<&super::auth::Credentials, ApiError> {
        self.credentials
            .as_deref()
            .ok_or_else(|| ApiError::Internal("no credentials configured".into()))
    }

    async fn bind(
        &self,
        caller: &Caller,
        ns: String,
        name: String,
        node: String,
        uid: Option<String>,
    ) -> Result<Reply, ApiError> {
        if !caller.is_superuser() {
            return Err(ApiError::Forbidden(
                "only the scheduler (or the admin) binds pods to nodes".into(),
            ));
        }
        if !labels::is_dns_subdomain(&node) {
            return Err(invalid(
                Kind::Pod,
                &name,
                "target.name",
                "must be a node name",
            ));
        }
        let (current, rev) = self.load(Kind::Pod, Some(&ns), &name).await?;
        if let Some(u) = &uid {
            if current.pointer("/metadata/uid").and_then(Value::as_str) != Some(u) {
                return Err(ApiError::Conflict(format!(
                    "pod {ns}/{name} is not the pod with uid {u}"
                )));
            }
        }
        match current.pointer("/spec/nodeName").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => {
                return Err(ApiError::Conflict(format!(
                    "pod {ns}/{name} is already bound to node {n:?}"
                )))
            }
            _ => {}
        }
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Conflict(format!(
                "pod {ns}/{name} is being deleted"
            )));
        }
        let mut new = current.clone();
        new["spec"]["nodeName"] = json!(node);
        self.commit(Kind::Pod, Some(&ns), &name, &current, new, rev)
            .await
            .map(Reply::Created)
    }

    /// Signs a node's serving certificate for the names the master derives (its name, and
    /// the address its join token recorded); a CSR naming anything else is refused.
    fn sign_node_certificate(
        &self,
        caller: &Caller,
        node: &str,
        csr: &str,
    ) -> Result<Reply, ApiError> {
        let id = match caller {
            Caller::Node(id) if id.name == node => id.clone(),
            Caller::Admin | Caller::Master => NodeIdentity {
                name: node.to_string(),
                ..Default::default()
            },
            _ => {
                return Err(ApiError::Forbidden(format!(
                "only node {node:?} itself (with its node token) may have its certificate signed"
            )))
            }
        };
        let ca = self.ca.as_ref().ok_or_else(|| {
            ApiError::BadRequest(
                "this master has no CA key (it was given its certificates with --tls-cert-file), so it cannot sign agent certificates".into(),
            )
        })?;
        let refused = |e: String| {
            ApiError::BadRequest(format!(
                "cannot sign the certificate request of node {node:?}: {e}"
            ))
        };
        let requested = crate::pki::csr_names(csr).map_err(|e| refused(e.to_string()))?;
        let names = super::identity::certificate_names(&id, &requested, &self.serving_names)
            .map_err(refused)?;
        let cert =
            crate::pki::sign_node_csr(ca, node, &names, csr).map_err(|e| refused(e.to_string()))?;
        Ok(Reply::Created(json!({
            "apiVersion": "orkops.io/v1", "kind": "NodeCertificate",
            "node": node, "certificate": cert,
        })))
    }

    async fn authorize_read(
        &self,
        caller: &Caller,
        kind: Kind,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        let node = match caller {
            Caller::Node(id) if kind == Kind::Secret => &id.name,
            Caller::User(u) if !caller.is_superuser() => {
                return Err(ApiError::Forbidden(format!(
                    "user {:?} cannot read {kind}: no rule allows it",
                    u.name
                )))
            }
            _ => return Ok(()),
        };
        let (Some(ns), Some(name)) = (ns, name) else {
            return Err(ApiError::Forbidden(format!(
                "node {node:?} may not list or watch secrets"
            )));
        };
        // A node reads a secret only when a pod bound to it uses that secret.
        let (pods, _) = self
            .store
            .list(&self.collection(Kind::Pod, Some(ns)))
            .await
            .map_err(|e| ApiError::from_store(e, Kind::Pod, Some(ns), ""))?;
        for v in &pods {
            let pod = decode_stored(v)?;
            if pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
                && pod_uses_secret(&pod, name)
            {
                return Ok(());
            }
        }
        Err(ApiError::Forbidden(format!(
            "node {node:?} may read secret {ns}/{name} only when a pod bound to it uses that secret"
        )))
    }

    async fn authorize_write(
        &self,
        caller: &Caller,
        verb: Verb,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        current: Option<&Value>,
    ) -> Result<(), ApiError> {
        match caller {
            Caller::Master => Ok(()),
            Caller::User(u) if !caller.is_superuser() => Err(ApiError::Forbidden(format!(
                "user {:?} cannot change {kind} {name:?}: no rule allows it",
                u.name
            ))),
            Caller::Joiner(_) => Err(ApiError::Forbidden("the join token may only be used to obtain a node token".into())),
            Caller::Admin | Caller::User(_) => match verb {
                // a pod's conditions are also written by the controllers its readiness gates
                // wait for (a load balancer controller, with the admin's credentials here)
                Verb::WriteStatus if kind == Kind::Pod => Ok(()),
                Verb::WriteStatus => Err(ApiError::Forbidden(format!(
                    "the status of {kind} {name:?} is written by the master and the node agents, not by users"
                ))),
                _ => Ok(()),
            },
            Caller::Node(id) => {
                let node = &id.name;
                let allowed = match (kind, verb) {
                    (Kind::Node, _) => name == node,
                    // its own heartbeat, as Kubernetes' NodeRestriction allows
                    (Kind::Lease, _) => {
                        ns == Some(crate::api::coordination::NODE_LEASE_NAMESPACE) && name == node
                    }
                    (Kind::Event, Verb::Create) => true,
                    (Kind::Pod, Verb::WriteStatus | Verb::Delete) => {
                        current.and_then(|c| c.pointer("/spec/nodeName")).and_then(Value::as_str) == Some(node)
                    }
                    _ => false,
                };
                if allowed {
                    Ok(())
                } else {
                    Err(ApiError::Forbidden(format!(
                        "node {node:?} may change only its own Node and Lease and the status of pods bound to it, not {kind} {name:?}"
                    )))
                }
            }
        }
    }
}

fn check_node_name(node: &str) -> Result<(), ApiError> {
    if labels::is_dns_subdomain(node) {
        return Ok(());
    }
    Err(invalid(
        Kind::Node,
        node,
        "metadata.name",
        "must be a DNS subdomain (lower-case letters, digits, '-', '.')",
    ))
}

fn may_write_status(caller: &Caller, kind: Kind, name: &str, _current: Option<&Value>) -> bool {
    match caller {
        Caller::Master => true,
        Caller::Node(id) => kind == Kind::Node && id.name == name,
        _ => false,
    }
}

/// Whether a pod refers to a secret, as Kubernetes' node authorizer graph has it: its volumes
/// (projected sources too), image pull secrets, and the env of its containers, init containers
/// included.
fn pod_uses_secret(pod: &Value, secret: &str) -> bool {
    let is = |v: Option<&Value>| v.and_then(Value::as_str) == Some(secret);
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let spec = &pod["spec"];
    let in_volume = list(&spec["volumes"]).iter().any(|v| {
        is(v.pointer("/secret/secretName"))
            || list(&v.pointer("/projected/sources").cloned().unwrap_or_default())
                .iter()
                .any(|s| is(s.pointer("/secret/name")))
    });
    let pull = list(&spec["imagePullSecrets"])
        .iter()
        .any(|r| is(r.get("name")));
    in_volume
        || pull
        || list(&spec["containers"])
            .iter()
            .chain(&list(&spec["initContainers"]))
            .any(|c| {
                list(&c["env"])
                    .iter()
                    .any(|e| is(e.pointer("/valueFrom/secretKeyRef/name")))
                    || list(&c["envFrom"])
                        .iter()
                        .any(|e| is(e.pointer("/secretRef/name")))
            })
}

fn scope(kind: Kind, namespace: Option<String>) -> Result<Option<String>, ApiError> {
    match (kind.namespaced(), namespace) {
        (true, None) => Err(ApiError::BadRequest(format!(
            "{kind} is namespaced: name a namespace (/namespaces/NAME/{})",
            kind.plural()
        ))),
        (true, ns) => Ok(ns),
        (false, _) => Ok(None),
    }
}

fn list_scope(kind: Kind, namespace: Option<String>) -> Option<String> {
    namespace.filter(|_| kind.namespaced())
}

/// Whether `metadata.generation` counts the changes of the kind's spec (a Lease's spec is
/// renewed every few seconds; Kubernetes gives it no generation either).
fn has_spec(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::ConfigMap
            | Kind::Secret
            | Kind::Event
            | Kind::Endpoints
            | Kind::ServiceAccount
            | Kind::Lease
            | Kind::StorageClass
    )
}

fn initial_status(kind: Kind, body: &mut Value) {
    // clients (the Python client) expect `status` on every kind that has one, even if empty
    if kind.has_status() {
        if let Some(m) = body.as_object_mut() {
            if !m.get("status").is_some_and(Value::is_object) {
                m.insert("status".into(), json!({}));
            }
        }
    }
    let phase = match kind {
        Kind::Namespace => "Active",
        Kind::Pod => "Pending",
        Kind::PersistentVolumeClaim | Kind::PersistentVolume => "Pending",
        _ => return,
    };
    if body.get("status").and_then(|s| s.get("phase")).is_none() {
        let status = body
            .as_object_mut()
            .map(|m| m.entry("status").or_insert_with(|| json!({})));
        if let Some(Value::Object(s)) = status {
            s.insert("phase".into(), json!(phase));
        }
    }
}

/// Checks `apiVersion`/`kind` against the URL (filling them when absent) and the namespace and
/// name against the URL.
fn check_envelope(
    kind: Kind,
    mut body: Value,
    ns: Option<&str>,
    name: Option<&str>,
) -> Result<Value, ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(format!(
            "the body must be a JSON object (a {kind})"
        )));
    };
    match map.get("kind").and_then(Value::as_str) {
        None => {
            map.insert("kind".into(), json!(kind.name()));
        }
        Some(k) if k == kind.name() => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the body is a {k:?} but the URL is for {kind}"
            )))
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None => {
            map.insert("apiVersion".into(), json!(kind.api_version()));
        }
        Some(v) if v == kind.api_version() => {}
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "apiVersion {v:?} is not served for {kind}: use {:?}",
                kind.api_version()
            )))
        }
    }
    let body_ns = body
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (ns, body_ns.as_deref()) {
        (Some(u), Some(b)) if u != b => {
            return Err(ApiError::BadRequest(format!(
                "metadata.namespace {b:?} does not match the namespace {u:?} in the request"
            )))
        }
        (Some(u), _) => api::set_meta(&mut body, "namespace", json!(u)),
        (None, Some(_)) => api::set_meta(&mut body, "namespace", Value::Null),
        (None, None) => {}
    }
    if let Some(n) = name {
        match api::name_of(&body) {
            "" => api::set_meta(&mut body, "name", json!(n)),
            b if b == n => {}
            b => {
                return Err(ApiError::BadRequest(format!(
                    "metadata.name {b:?} does not match the name {n:?} in the request"
                )))
            }
        }
    }
    Ok(body)
}

fn check_name(kind: Kind, name: &str) -> Result<(), ApiError> {
    let ok = match kind {
        Kind::Namespace | Kind::Service => labels::is_dns_label(name),
        _ => labels::is_dns_subdomain(name),
    };
    if ok {
        Ok(())
    } else {
        let label = matches!(kind, Kind::Namespace | Kind::Service);
        let (max, len) = (if label { 63 } else { 253 }, name.len());
        let what = if len > max {
            format!("no more than {max} characters (it has {len})")
        } else if label {
            "a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit".to_string()
        } else {
            "a DNS subdomain: lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit".to_string()
        };
        Err(invalid(
            kind,
            name,
            "metadata.name",
            &format!("{name:?} must be {what}"),
        ))
    }
}

fn invalid(kind: Kind, name: &str, field: &str, message: &str) -> ApiError {
    ApiError::Invalid {
        kind,
        name: name.to_string(),
        causes: vec![api::FieldError {
            field: field.into(),
            message: message.into(),
        }],
    }
}

fn conflict(kind: Kind, name: &str, wanted: i64, actual: i64) -> ApiError {
    ApiError::Conflict(format!(
        "{kind} {name:?} was modified since you read it (your resourceVersion {wanted}, now {actual}); get it again and retry"
    ))
}

fn parse_rv(body: &Value, kind: Kind, name: &str) -> Result<Option<i64>, ApiError> {
    match body.pointer("/metadata/resourceVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            invalid(
                kind,
                name,
                "metadata.resourceVersion",
                &format!("{s:?} is not a resourceVersion"),
            )
        }),
        Some(_) => Err(invalid(
            kind,
            name,
            "metadata.resourceVersion",
            "must be a string",
        )),
    }
}

/// One allocated number held by an object.
#[derive(Debug, Clone, PartialEq)]
struct Reservation(Pool, String);

/// The numbers a stored object holds.
fn reservations(kind: Kind, obj: &Value) -> Vec<Reservation> {
    let mut out = Vec::new();
    match kind {
        Kind::Node => {
            if let Some(c) = obj.pointer("/spec/podCIDR").and_then(Value::as_str) {
                out.push(Reservation(Pool::PodCidr, c.to_string()));
            }
        }
        Kind::Service => {
            if let Some(ip) = obj
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && *s != "None")
            {
                out.push(Reservation(Pool::ClusterIp, ip.to_string()));
            }
            for p in obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
                    out.push(Reservation(Pool::NodePort, np.to_string()));
                }
            }
        }
        _ => {}
    }
    out
}

/// Builds the object to store for an update: the caller's object with the system metadata and
/// status of the current one, and the fields the server owns carried over.
fn merge_update(
    kind: Kind,
    name: &str,
    current: &Value,
    mut new: Value,
) -> Result<Value, ApiError> {
    // as kube-apiserver: a uid in the new object is a precondition, never a change
    let uid_of = |v: &Value| {
        v.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    };
    if let (Some(asked), Some(stored)) = (uid_of(&new), uid_of(current)) {
        if asked != stored {
            return Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {kind} {name:?}: Precondition failed: UID in precondition: {asked}, UID in object meta: {stored} (metadata.uid cannot be changed)"
            )));
        }
    }
    if new.pointer("/metadata/managedFields").is_none() {
        // as kube-apiserver: an update that sends no managedFields keeps them
        if let Some(m) = current.pointer("/metadata/managedFields") {
            api::set_meta(&mut new, "managedFields", m.clone());
        }
    }
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        api::set_meta(
            &mut new,
            field,
            current
                .pointer(&format!("/metadata/{field}"))
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    if kind.has_status() {
        match current.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    match kind {
        Kind::Pod => {
            // what the scheduler and the ServiceAccount admission set stays when a whole pod
            // is sent again without it
            for f in [
                "nodeName",
                "serviceAccountName",
                "serviceAccount",
                "imagePullSecrets",
                "priority",
                "preemptionPolicy",
            ] {
                if new["spec"].get(f).is_none() {
                    if let Some(n) = current["spec"].get(f) {
                        new["spec"][f] = n.clone();
                    }
                }
            }
            let strip_images = |v: &Value| {
                let mut s = v["spec"].clone();
                for c in s["containers"].as_array_mut().into_iter().flatten() {
                    c.as_object_mut().map(|m| m.remove("image"));
                }
                s
            };
            // compared with the stored pod as it is defaulted today, so that a pod stored
            // before a new default was added can still be labelled or have its image changed
            let differs = strip_images(&new) != strip_images(current)
                && admit(kind, current.clone()).map_or(true, |defaulted| {
                    strip_images(&new) != strip_images(&defaulted)
                });
            if differs {
                return Err(invalid(kind, name, "spec", "pod updates may not change fields other than the container images (delete and recreate the pod, or use a deployment)"));
            }
        }
        Kind::Node => {
            for f in ["podCIDR", "podCIDRs"] {
                if new["spec"].get(f).is_none() {
                    if let Some(v) = current["spec"].get(f) {
                        new["spec"][f] = v.clone();
                    }
                }
            }
            if new["spec"].get("podCIDR") != current["spec"].get("podCIDR")
                && current["spec"].get("podCIDR").is_some()
            {
                return Err(invalid(
                    kind,
                    name,
                    "spec.podCIDR",
                    "may not change once set (delete the node to give it a new one)",
                ));
            }
        }
        Kind::Service => {
            for f in ["clusterIP", "clusterIPs"] {
                if new["spec"].get(f).is_none() {
                    if let Some(v) = current["spec"].get(f) {
                        new["spec"][f] = v.clone();
                    }
                }
            }
            if new["spec"].get("clusterIP") != current["spec"].get("clusterIP") {
                return Err(invalid(
                    kind,
                    name,
                    "spec.clusterIP",
                    "may not change (delete and recreate the service)",
                ));
            }
            let old_ports = current["spec"]["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for p in new["spec"]["ports"].as_array_mut().into_iter().flatten() {
                if p.get("nodePort").is_none() {
                    if let Some(np) = old_ports
                        .iter()
                        .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                        .and_then(|o| o.get("nodePort"))
                    {
                        p["nodePort"] = np.clone();
                    }
                }
            }
        }
        Kind::Deployment | Kind::ReplicaSet
            if new.pointer("/spec/selector") != current.pointer("/spec/selector") =>
        {
            // as apps/v1: the pods a controller owns are those its selector picks
            return Err(invalid(
                kind,
                name,
                "spec.selector",
                "field is immutable (delete and recreate the object to select other pods)",
            ));
        }
        Kind::StatefulSet => {
            // as apps/v1's ValidateStatefulSetUpdate
            const MUTABLE: [&str; 7] = [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ];
            let fixed = |v: &Value| {
                let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
                if let Some(m) = spec.as_object_mut() {
                    m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
                }
                spec
            };
            if fixed(&new) != fixed(current) {
                return Err(invalid(kind, name, "spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"));
            }
        }
        Kind::DaemonSet => daemon_set_update(name, current, &mut new)?,
        Kind::PersistentVolumeClaim | Kind::PersistentVolume | Kind::StorageClass => {
            super::storage::merge_update(kind, name, current, &mut new)?;
        }
        Kind::ConfigMap | Kind::Secret if current.get("immutable") == Some(&json!(true)) => {
            let same = |f: &str| new.get(f) == current.get(f);
            if !(same("data") && same("binaryData") && same("immutable")) {
                return Err(invalid(
                    kind,
                    name,
                    "data",
                    "the object is immutable: delete and recreate it to change its data",
                ));
            }
        }
        _ => {}
    }
    if has_spec(kind) && new.get("spec") != current.get("spec") {
        let g = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        api::set_meta(&mut new, "generation", json!(g.saturating_add(1)));
    }
    Ok(new)
}

/// As kube-apiserver for a DaemonSet update: the selector is immutable, and a template
/// change counts one more in the deprecated template generation annotation.
fn daemon_set_update(name: &str, current: &Value, new: &mut Value) -> Result<(), ApiError> {
    use crate::api::admit::DAEMON_SET_TEMPLATE_GENERATION as KEY;
    if new.pointer("/spec/selector") != current.pointer("/spec/selector") {
        return Err(invalid(
            Kind::DaemonSet,
            name,
            "spec.selector",
            "field is immutable (delete and recreate the object to select other pods)",
        ));
    }
    let was = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(KEY))
        .and_then(Value::as_str)
        .and_then(|g| g.parse::<i64>().ok())
        .unwrap_or(1);
    let changed = new.pointer("/spec/template") != current.pointer("/spec/template");
    let generation = if changed { was.saturating_add(1) } else { was };
    if !new
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        api::set_meta(new, "annotations", json!({}));
    }
    new["metadata"]["annotations"][KEY] = json!(generation.to_string());
    Ok(())
}

/// A patch request's body, how to read it, and whether it is for `/status`.
struct Patch {
    body: Value,
    patch_type: PatchType,
    status: bool,
}

fn patch_name(t: PatchType) -> &'static str {
    match t {
        PatchType::Merge => "JSON merge patch",
        PatchType::Strategic => "strategic merge patch",
        PatchType::Json => "JSON patch",
        PatchType::Apply => "server-side apply configuration",
    }
}

/// Where strategic merge patch and server-side apply read the patch metadata of `kind`: the
/// component schemas generated from the served types (the ones `/openapi/v3` serves) and the
/// kind's own schema.
pub fn patch_schema(
    kind: Kind,
) -> (
    &'static serde_json::Map<String, Value>,
    Option<&'static Value>,
) {
    let d = api::openapi::definitions();
    (d, d.get(api::openapi::definition_name(kind)))
}

fn shape(kind: Kind) -> api::managed::Shape<'static> {
    let (definitions, root) = patch_schema(kind);
    api::managed::Shape {
        schemas: api::smp::Schemas { definitions },
        root,
    }
}

/// Records a create, update or patch in `managedFields` when it has a field manager.
fn record(kind: Kind, old: Option<&Value>, new: &mut Value, opts: &WriteOptions) {
    if let Some(manager) = &opts.field_manager {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let w = api::managed::Write {
            manager,
            api_version: kind.api_version(),
            now: &now,
        };
        shape(kind).record_update(old, new, &w);
    }
}

/// The 409 of an apply that would change fields other managers own, worded as
/// kube-apiserver words it.
fn conflict_error(c: &[api::managed::Conflict]) -> ApiError {
    let n = c.len();
    let lines: Vec<String> = c
        .iter()
        .map(|c| format!("conflict with {:?}: {}", c.manager, c.field))
        .collect();
    ApiError::Conflict(format!(
        "Apply failed with {n} conflict{}: {}; to take these fields over, apply again with force=true (kubectl apply --server-side --force-conflicts), or stop setting them",
        if n == 1 { "" } else { "s" },
        lines.join("; ")
    ))
}

/// `current` with `patch` applied the way `t` says (apply has its own path).
fn patched(
    kind: Kind,
    name: &str,
    current: &Value,
    patch: &Value,
    t: PatchType,
) -> Result<Value, ApiError> {
    match t {
        PatchType::Merge => {
            let mut merged = current.clone();
            merge_patch(&mut merged, patch);
            Ok(merged)
        }
        PatchType::Strategic => {
            let (definitions, root) = patch_schema(kind);
            api::smp::apply(current, patch, root, api::smp::Schemas { definitions }).map_err(|e| {
                if e.bad_request {
                    ApiError::BadRequest(format!("invalid strategic merge patch: {e}"))
                } else {
                    invalid(kind, name, &e.path, &e.message)
                }
            })
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                ApiError::BadRequest(format!(
                    "invalid JSON patch: {e} (a JSON patch is a list of operations such as {{\"op\": \"replace\", \"path\": \"/spec/replicas\", \"value\": 2}})"
                ))
            })?;
            let mut merged = current.clone();
            json_patch::patch(&mut merged, &ops).map_err(|e| {
                invalid(
                    kind,
                    name,
                    &format!("[{}]", e.operation),
                    &format!(
                        "JSON patch operation {} failed at path {:?}: {}",
                        e.operation,
                        e.path.to_string(),
                        e.kind
                    ),
                )
            })?;
            Ok(merged)
        }
        PatchType::Apply => Err(ApiError::Internal(
            "server-side apply is not a patch to merge".into(),
        )),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn strip_rv(v: &mut Value) {
    api::set_meta(v, "resourceVersion", Value::Null);
}

fn encode(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut o = obj.clone();
    strip_rv(&mut o);
    serde_json::to_vec(&o).map_err(|e| ApiError::Internal(e.to_string()))
}

/// A stored object with its `resourceVersion` filled in from the store revision.
pub fn decode_stored(v: &Versioned) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&v.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", v.key)))?;
    api::set_meta(&mut obj, "resourceVersion", json!(v.revision.to_string()));
    Ok(obj)
}

/// A resourceVersion the store has not reached yet is refused (400) with the current one.
fn check_not_ahead(wanted: i64, current: i64) -> Result<(), ApiError> {
    if wanted > current {
        return Err(ApiError::BadRequest(format!(
            "resourceVersion {wanted} is ahead of the store's current revision {current}: use a \
             resourceVersion from a list or watch (or 0 to list first)"
        )));
    }
    Ok(())
}

fn selected(q: &ListQuery, obj: &Value) -> bool {
    q.labels.matches_object(obj) && q.fields.matches_with(|f| labels::field_value(obj, f))
}

/// Turns a store event into a watch line for this query: an object that starts to match is
/// ADDED, one that stops matching is DELETED, an error is an ERROR line with a Status.
fn translate(ev: Result<StoreEvent, StoreError>, q: &ListQuery) -> Option<Bytes> {
    let parse = |b: &[u8], rev: i64| -> Option<Value> {
        let mut v: Value = serde_json::from_slice(b).ok()?;
        api::set_meta(&mut v, "resourceVersion", json!(rev.to_string()));
        Some(v)
    };
    match ev {
        Ok(StoreEvent::Put {
            value,
            revision,
            prev,
            ..
        }) => {
            let obj = parse(&value, revision)?;
            let now = selected(q, &obj);
            let before = prev
                .as_deref()
                .and_then(|p| parse(p, revision))
                .map(|p| selected(q, &p));
            match (before, now) {
                (None | Some(false), true) => Some(event_line(&q.output, "ADDED", &obj)),
                (Some(true), true) => Some(event_line(&q.output, "MODIFIED", &obj)),
                (Some(true), false) => Some(event_line(&q.output, "DELETED", &obj)),
                _ => None,
            }
        }
        Ok(StoreEvent::Delete { prev, revision, .. }) => {
            let obj = parse(&prev, revision)?;
            selected(q, &obj).then(|| event_line(&q.output, "DELETED", &obj))
        }
        Err(e) => {
            let err = ApiError::from_store(e, Kind::Event, None, "");
            Some(event_line(&q.output, "ERROR", &json!(err.to_status())))
        }
    }
}

fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn engine() -> Engine {
        let (_tx, rx) = watch::channel(false);
        std::mem::forget(_tx);
        Engine::new(Arc::new(MemoryStore::default()), "/t", None, rx)
    }

    fn pod(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}})
    }

    async fn create(e: &Engine, c: &Caller, body: Value) -> Result<Value, ApiError> {
        match e
            .handle(
                c,
                Command::Create {
                    kind: Kind::Pod,
                    namespace: Some("default".into()),
                    body,
                },
            )
            .await?
        {
            Reply::Created(v) | Reply::Ok(v) => Ok(v),
            Reply::Watch(_) | Reply::Json(_) => unreachable!(),
        }
    }

    #[tokio::test]
    async fn create_fills_system_metadata_and_drops_user_status() {
        let e = engine();
        e.ensure_system_namespaces().await.unwrap();
        let mut body = pod("p");
        body["status"] = json!({"phase": "Running"});
        let v = create(&e, &Caller::Admin, body).await.unwrap();
        assert_eq!(v["status"]["phase"], "Pending");
        assert!(v["metadata"]["uid"].is_string());
        assert_eq!(v["metadata"]["generation"], 1);
        assert!(api::resource_version_of(&v).is_some());
    }

    #[tokio::test]
    async fn creating_in_a_missing_namespace_is_not_found() {
        let e = engine();
        let err = create(&e, &Caller::Admin, pod("p")).await.unwrap_err();
        assert!(
            matches!(
                err,
                ApiError::NotFound {
                    kind: Kind::Namespace,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn nodes_change_only_their_own_pods_status() {
        let e = engine();
        e.ensure_system_namespaces().await.unwrap();
        let mut body = pod("p");
        body["spec"]["nodeName"] = json!("n1");
        create(&e, &Caller::Admin, body).await.unwrap();
        let status = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        let cmd = |b: Value| Command::ReplaceStatus {
            kind: Kind::Pod,
            namespace: Some("default".into()),
            name: "p".into(),
            body: b,
        };
        assert!(matches!(
            e.handle(
                &Caller::Node(super::super::auth::NodeIdentity {
                    name: "n2".into(),
                    ..Default::default()
                }),
                cmd(status.clone())
            )
            .await,
            Err(ApiError::Forbidden(_))
        ));
        // the admin may: the controllers a pod's readiness gates wait for write its conditions
        let gate = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "conditions": [{"type": "example.com/ready", "status": "True"}]}});
        assert!(e.handle(&Caller::Admin, cmd(gate)).await.is_ok());
        // but not a Node's status
        let made = Command::Create {
            kind: Kind::Node,
            namespace: None,
            body: json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        };
        e.handle(&Caller::Admin, made).await.unwrap();
        let node = Command::ReplaceStatus {
            kind: Kind::Node,
            namespace: None,
            name: "n1".into(),
            body: json!({"metadata": {"name": "n1"}, "status": {}}),
        };
        assert!(matches!(
            e.handle(&Caller::Admin, node).await,
            Err(ApiError::Forbidden(_))
        ));
        match e
            .handle(
                &Caller::Node(super::super::auth::NodeIdentity {
                    name: "n1".into(),
                    ..Default::default()
                }),
                cmd(status),
            )
            .await
            .ok()
            .unwrap()
        {
            Reply::Ok(v) => assert_eq!(v["status"]["phase"], "Running"),
            _ => panic!(),
        }
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut t, &json!({"a": null, "b": {"c": 4}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 4, "d": 3}, "e": [1]}));
    }
}
