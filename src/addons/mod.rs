//! Cluster add-ons: named bundles of manifest templates (`templates/addons/NAME/`, embedded in
//! the binary, or a directory of the user's) that are enabled into a cluster through the API,
//! recorded, upgraded and removed as one unit.
//!
//! - A **bundle** ([`Bundle`], in `bundle`) is `addon.yaml` (name, version, description,
//!   parameters with defaults) and `*.yaml` templates rendered by tera with the parameters and
//!   the cluster facts ([`ClusterFacts`]: name, CIDRs, domain). Rendering checks every object
//!   the way `orkops apply` does; a bundle that fails names the file and line and changes
//!   nothing.
//! - **Enabling** ([`enable`]) checks the cluster first (an object of the same name that is
//!   not this add-on's is a conflict, every namespace must exist or be in the bundle), then
//!   writes the record, applies the objects (create or replace: enabling twice changes
//!   nothing), removes objects an earlier version made that this one no longer has, and marks
//!   the record installed. A failure half way removes what this run created.
//! - The **record** is the ConfigMap `orkops-system/addon-NAME`: version, source, parameters
//!   and the exact objects. Every object carries the label `orkops.io/addon=NAME` (and the
//!   pods of its workloads too) and the annotation `orkops.io/addon-version`.
//! - **Disabling** ([`disable`]) deletes exactly the recorded objects that still carry the
//!   label, then the record.
//!
//! `orkops create cluster --addons a,b` calls [`enable`] after bootstrap; the CLI commands are
//! in `cli::addons`.

pub mod bundle;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use bundle::{Bundle, ObjectRef, Rendered, Source};

use crate::api::{self, Kind};
use crate::client::{ApiClient, ClientError};

/// Label on every object of an add-on: its name.
pub const ADDON_LABEL: &str = "orkops.io/addon";
/// Annotation on every object of an add-on: the version that wrote it.
pub const VERSION_ANNOTATION: &str = "orkops.io/addon-version";
/// Label on the record ConfigMaps: the add-on's name (not `orkops.io/addon`, so that a
/// selector on that label gives exactly the add-on's own objects).
pub const RECORD_LABEL: &str = "orkops.io/addon-record";
/// Where the records live.
pub const RECORD_NAMESPACE: &str = "orkops-system";

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    /// The bundle, its parameters or its templates are wrong; nothing was sent.
    #[error("add-on {bundle} is invalid; nothing was applied:\n  {}", errors.join("\n  "))]
    Invalid { bundle: String, errors: Vec<String> },
    #[error("there is no built-in add-on {name:?} (built in: {available}); enable a bundle of your own with --from DIR")]
    UnknownBuiltin { name: String, available: String },
    /// The cluster holds objects the bundle would take over, or lacks a namespace it needs.
    #[error("add-on {name} cannot be enabled; nothing was applied:\n  {}", errors.join("\n  "))]
    Conflict { name: String, errors: Vec<String> },
    /// A request failed before anything was changed (reading the record, the cluster facts).
    #[error("{what}: {error}")]
    Api { what: String, error: ClientError },
    /// Applying failed part way; `aftermath` says what is left and what to do.
    #[error("enabling add-on {name}: {object}: {error}\n{aftermath}")]
    Apply {
        name: String,
        object: String,
        error: ClientError,
        aftermath: String,
    },
    /// Removing failed part way; the record still lists what is left.
    #[error("disabling add-on {name}: {object}: {error}\nthe record {RECORD_NAMESPACE}/addon-{name} still lists what is left: run `orkops addons disable {name}` again")]
    Remove {
        name: String,
        object: String,
        error: ClientError,
    },
    /// Another enable or disable of the same add-on changed the record meanwhile.
    #[error("add-on {0}: its record changed while this command ran (another enable or disable?); nothing more was done, try again")]
    Busy(String),
}

/// What templates know about the cluster, besides the bundle's parameters: `clusterName`,
/// `clusterCIDR`, `serviceCIDR`, `clusterDomain`, `nodePortRange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFacts {
    pub cluster_name: String,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub cluster_domain: String,
    pub node_port_range: String,
}

impl Default for ClusterFacts {
    /// The master's defaults, and `orkops` as the name.
    fn default() -> ClusterFacts {
        ClusterFacts {
            cluster_name: "orkops".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/16".into(),
            cluster_domain: "cluster.local".into(),
            node_port_range: "30000-32767".into(),
        }
    }
}

impl ClusterFacts {
    /// Reads the ranges from the ConfigMap `orkops-system/cluster-network` the master
    /// publishes (the defaults where it or a key is missing). `cluster_name` is the caller's
    /// (the client config's `cluster`, or the name `create cluster` was given).
    pub async fn read(
        client: &ApiClient,
        cluster_name: Option<&str>,
    ) -> Result<ClusterFacts, AddonError> {
        let mut f = ClusterFacts::default();
        if let Some(n) = cluster_name.filter(|n| !n.is_empty()) {
            f.cluster_name = n.to_string();
        }
        let cm = match client
            .get(
                Kind::ConfigMap,
                Some(RECORD_NAMESPACE),
                crate::apiserver::engine::NETWORK_CONFIG_MAP,
            )
            .await
        {
            Ok(cm) => cm,
            Err(e) if e.is_not_found() => return Ok(f),
            Err(error) => {
                return Err(AddonError::Api {
                    what: "reading the cluster's network ranges".into(),
                    error,
                })
            }
        };
        let data = &cm["data"];
        let take = |key: &str, field: &mut String| {
            if let Some(v) = data[key].as_str().filter(|v| !v.is_empty()) {
                *field = v.to_string();
            }
        };
        take("clusterCIDR", &mut f.cluster_cidr);
        take("serviceCIDR", &mut f.service_cidr);
        take("clusterDomain", &mut f.cluster_domain);
        take("nodePortRange", &mut f.node_port_range);
        Ok(f)
    }

    pub(crate) fn as_map(&self) -> [(&'static str, String); 5] {
        [
            ("clusterName", self.cluster_name.clone()),
            ("clusterCIDR", self.cluster_cidr.clone()),
            ("serviceCIDR", self.service_cidr.clone()),
            ("clusterDomain", self.cluster_domain.clone()),
            ("nodePortRange", self.node_port_range.clone()),
        ]
    }
}

/// What [`enable`] renders a bundle with.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub facts: ClusterFacts,
    /// `--set key=value`, in order (a later one wins).
    pub set: Vec<(String, String)>,
}

/// The state of an installation, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// An enable is (or was, if it was killed) applying the objects.
    Applying,
    Installed,
    /// The last enable failed part way; `message` says why.
    Failed,
    /// A disable is (or was) deleting the objects.
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applying => "Applying",
            State::Installed => "Installed",
            State::Failed => "Failed",
            State::Removing => "Removing",
        }
    }
    fn parse(s: &str) -> State {
        match s {
            "Installed" => State::Installed,
            "Failed" => State::Failed,
            "Removing" => State::Removing,
            _ => State::Applying,
        }
    }
}

/// The record of an installed add-on: the ConfigMap `orkops-system/addon-NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `builtin`, or the directory it was enabled from.
    pub source: String,
    pub state: State,
    pub message: String,
    pub parameters: BTreeMap<String, String>,
    /// Exactly the objects the add-on made (while applying or removing: all it may have made).
    pub objects: Vec<ObjectRef>,
    /// When the record was last written (RFC 3339).
    pub updated: String,
    resource_version: Option<String>,
}

impl Record {
    pub fn config_map_name(addon: &str) -> String {
        format!("addon-{addon}")
    }

    fn to_config_map(&self) -> Value {
        let objects: Vec<String> = self.objects.iter().map(ToString::to_string).collect();
        let mut cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": Self::config_map_name(&self.name),
                "namespace": RECORD_NAMESPACE,
                "labels": {RECORD_LABEL: self.name},
            },
            "data": {
                "name": self.name,
                "version": self.version,
                "description": self.description,
                "source": self.source,
                "state": self.state.as_str(),
                "message": self.message,
                "parameters": serde_yaml_ng::to_string(&self.parameters).unwrap_or_default(),
                "objects": objects.iter().map(|o| format!("{o}\n")).collect::<String>(),
                "updated": self.updated,
            }
        });
        if let Some(rv) = &self.resource_version {
            cm["metadata"]["resourceVersion"] = json!(rv);
        }
        cm
    }

    fn from_config_map(cm: &Value) -> Record {
        let d = |k: &str| cm["data"][k].as_str().unwrap_or("").to_string();
        Record {
            name: d("name"),
            version: d("version"),
            description: d("description"),
            source: d("source"),
            state: State::parse(&d("state")),
            message: d("message"),
            parameters: serde_yaml_ng::from_str(&d("parameters")).unwrap_or_default(),
            objects: d("objects").lines().filter_map(ObjectRef::parse).collect(),
            updated: d("updated"),
            resource_version: cm
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }

    /// The record of `name`, if the add-on is installed.
    pub async fn read(client: &ApiClient, name: &str) -> Result<Option<Record>, AddonError> {
        match client
            .get(
                Kind::ConfigMap,
                Some(RECORD_NAMESPACE),
                &Self::config_map_name(name),
            )
            .await
        {
            Ok(cm) => Ok(Some(Self::from_config_map(&cm))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(error) => Err(AddonError::Api {
                what: format!("reading the record of add-on {name}"),
                error,
            }),
        }
    }

    /// Writes the record: creates it, or replaces the version this process read or wrote
    /// last (compare-and-swap, so two commands on one add-on never interleave silently).
    async fn write(&mut self, client: &ApiClient) -> Result<(), AddonError> {
        self.updated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let body = self.to_config_map();
        let name = Self::config_map_name(&self.name);
        let result = match self.resource_version {
            None => {
                client
                    .create(Kind::ConfigMap, Some(RECORD_NAMESPACE), &body)
                    .await
            }
            Some(_) => {
                client
                    .replace(Kind::ConfigMap, Some(RECORD_NAMESPACE), &name, &body)
                    .await
            }
        };
        match result {
            Ok(cm) => {
                self.resource_version = cm
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                Ok(())
            }
            Err(e) if matches!(e.code(), Some(409) | Some(404)) => {
                Err(AddonError::Busy(self.name.clone()))
            }
            Err(error) => Err(AddonError::Api {
                what: format!("writing the record {RECORD_NAMESPACE}/{name}"),
                error,
            }),
        }
    }

    async fn remove(&self, client: &ApiClient) -> Result<(), ClientError> {
        match client
            .delete(
                Kind::ConfigMap,
                Some(RECORD_NAMESPACE),
                &Self::config_map_name(&self.name),
                &[],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    /// An earlier version had it, this one does not: deleted.
    Pruned,
    /// Deleted by disable.
    Deleted,
    /// Already gone when disable came to it.
    Gone,
    /// Disable left it: it no longer carries the add-on's label.
    Kept,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Pruned => "pruned",
            Outcome::Deleted => "deleted",
            Outcome::Gone => "already gone",
            Outcome::Kept => "kept",
        }
    }
}

/// What [`enable`] or [`disable`] did, object by object.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub version: String,
    /// The version installed before (enable), if any.
    pub previous: Option<String>,
    pub objects: Vec<(ObjectRef, Outcome)>,
}

/// Renders `bundle` with `params` and enables it in the cluster `client` reaches.
///
/// Nothing is changed when the bundle, a parameter or a template is wrong, or when the
/// cluster holds an object of the same name that is not this add-on's, or lacks a
/// namespace: the error lists every problem. Enabling what is installed is harmless (every
/// object reports `Unchanged`); enabling another version or other parameters replaces the
/// objects and deletes those the new rendering no longer has.
pub async fn enable(
    client: &ApiClient,
    bundle: &Bundle,
    params: &Params,
) -> Result<Report, AddonError> {
    let rendered = bundle.render(&params.facts, &params.set)?;
    apply(client, bundle, &rendered).await
}

/// Enables what [`Bundle::render`] made (for callers that render first to check).
pub async fn apply(
    client: &ApiClient,
    bundle: &Bundle,
    rendered: &Rendered,
) -> Result<Report, AddonError> {
    let name = rendered.name.as_str();
    let old = Record::read(client, name).await?;
    let live = preflight(client, rendered).await?;

    // Write ahead: until the end, the record lists everything this run may create, so that a
    // killed enable leaves nothing `disable` cannot find.
    let new_refs: Vec<ObjectRef> = rendered.objects.iter().map(ObjectRef::of).collect();
    let old_refs: Vec<ObjectRef> = old.as_ref().map(|r| r.objects.clone()).unwrap_or_default();
    let mut record = Record {
        name: name.to_string(),
        version: rendered.version.clone(),
        description: bundle.meta.description.clone(),
        source: bundle.source.to_string(),
        state: State::Applying,
        message: String::new(),
        parameters: rendered.parameters.clone(),
        objects: union(&old_refs, &new_refs),
        updated: String::new(),
        resource_version: old.as_ref().and_then(|r| r.resource_version.clone()),
    };
    record.write(client).await?;

    let mut report = Report {
        name: name.to_string(),
        version: rendered.version.clone(),
        previous: old.as_ref().map(|r| r.version.clone()),
        objects: Vec::new(),
    };
    let mut failure = None;
    for (m, current) in rendered.objects.iter().zip(&live) {
        let r = ObjectRef::of(m);
        match put(client, m, current.as_ref()).await {
            Ok(outcome) => report.objects.push((r, outcome)),
            Err(e) => {
                failure = Some((r, e));
                break;
            }
        }
    }
    if failure.is_none() {
        // what an earlier version made and this one does not, newest kinds first
        let mut stale: Vec<&ObjectRef> =
            old_refs.iter().filter(|r| !new_refs.contains(r)).collect();
        stale.sort_by_key(|r| std::cmp::Reverse(bundle::apply_rank(r.kind)));
        for r in stale {
            match delete_owned(client, r, name).await {
                Ok(Outcome::Deleted) => report.objects.push((r.clone(), Outcome::Pruned)),
                Ok(_) => {}
                Err(e) => {
                    failure = Some((r.clone(), e));
                    break;
                }
            }
        }
    }

    let Some((object, error)) = failure else {
        record.state = State::Installed;
        record.objects = new_refs;
        record.write(client).await?;
        return Ok(report);
    };

    // Undo what this run created; what it replaced stays replaced.
    let mut left_behind = Vec::new();
    for (r, outcome) in report.objects.iter().rev() {
        if *outcome == Outcome::Created && delete_owned(client, r, name).await.is_err() {
            left_behind.push(r.clone());
        }
    }
    let kept: Vec<ObjectRef> = report
        .objects
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Configured | Outcome::Unchanged))
        .map(|(r, _)| r.clone())
        .chain(left_behind.iter().cloned())
        .collect();
    let aftermath = match &old {
        None if left_behind.is_empty() && kept.is_empty() => match record.remove(client).await {
            Ok(()) => "what this run had created was deleted again: nothing was left".to_string(),
            Err(_) => format!(
                "what this run had created was deleted again; the record {RECORD_NAMESPACE}/addon-{name} is left: `orkops addons disable {name}` removes it"
            ),
        },
        _ => {
            record.state = State::Failed;
            record.message = format!("{object}: {error}");
            record.objects = union(&union(&old_refs, &kept), &left_behind);
            let prev = old.as_ref().map(|r| r.version.as_str()).unwrap_or("-");
            if let Some(o) = &old {
                record.version = o.version.clone();
                record.parameters = o.parameters.clone();
            }
            let _ = record.write(client).await;
            format!(
                "objects this run created were deleted again, those it replaced keep the new version; the record (state Failed, version {prev}) lists the {} it holds: fix the cause and enable again, or `orkops addons disable {name}`",
                match record.objects.len() {
                    1 => "1 object".to_string(),
                    n => format!("{n} objects"),
                }
            )
        }
    };
    Err(AddonError::Apply {
        name: name.to_string(),
        object: object.to_string(),
        error,
        aftermath,
    })
}

/// Checks the cluster before anything is written: every object is absent or already this
/// add-on's, and every namespace exists or is in the bundle. Returns the live objects.
async fn preflight(
    client: &ApiClient,
    rendered: &Rendered,
) -> Result<Vec<Option<Value>>, AddonError> {
    let name = rendered.name.as_str();
    let mut errors = Vec::new();
    let mut live = Vec::new();
    for m in &rendered.objects {
        let ns = m.kind.namespaced().then(|| api::namespace_of(&m.object));
        match client.get(m.kind, ns, m.name()).await {
            Ok(obj) => {
                match obj["metadata"]["labels"][ADDON_LABEL].as_str() {
                    Some(o) if o == name => {}
                    Some(o) => errors.push(format!(
                        "{}: {} exists and belongs to add-on {o}",
                        m.source,
                        ObjectRef::of(m)
                    )),
                    None => errors.push(format!(
                        "{}: {} exists and is not part of add-on {name} (no {ADDON_LABEL} label): delete or rename it first",
                        m.source,
                        ObjectRef::of(m)
                    )),
                }
                live.push(Some(obj));
            }
            Err(e) if e.is_not_found() => live.push(None),
            Err(error) => {
                return Err(AddonError::Api {
                    what: format!("reading {}", ObjectRef::of(m)),
                    error,
                })
            }
        }
    }
    let own: BTreeSet<&str> = rendered
        .objects
        .iter()
        .filter(|m| m.kind == Kind::Namespace)
        .map(|m| m.name())
        .collect();
    let used: BTreeSet<&str> = rendered
        .objects
        .iter()
        .filter(|m| m.kind.namespaced())
        .map(|m| api::namespace_of(&m.object))
        .filter(|ns| !own.contains(ns))
        .collect();
    for ns in used {
        match client.get(Kind::Namespace, None, ns).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => errors.push(format!(
                "namespace {ns:?} does not exist: create it, or add a Namespace object to the bundle"
            )),
            Err(error) => {
                return Err(AddonError::Api {
                    what: format!("reading namespace {ns}"),
                    error,
                })
            }
        }
    }
    if errors.is_empty() {
        Ok(live)
    } else {
        Err(AddonError::Conflict {
            name: name.to_string(),
            errors,
        })
    }
}

/// Creates the object or replaces the live one (which preflight found to be ours).
async fn put(
    client: &ApiClient,
    m: &crate::cli::manifest::Manifest,
    current: Option<&Value>,
) -> Result<Outcome, ClientError> {
    let ns = m.kind.namespaced().then(|| api::namespace_of(&m.object));
    let mut body = m.object.clone();
    api::clear_server_fields(&mut body);
    let mut current = current.cloned();
    for _ in 0..3 {
        let Some(cur) = &current else {
            match client.create(m.kind, ns, &body).await {
                Ok(_) => return Ok(Outcome::Created),
                Err(e) if e.code() == Some(409) => {
                    current = Some(client.get(m.kind, ns, m.name()).await?);
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        let rv = cur
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        api::set_meta(&mut body, "resourceVersion", rv.clone());
        api::keep_controller_annotations(&mut body, cur);
        match client.replace(m.kind, ns, m.name(), &body).await {
            Ok(updated) => {
                let same = updated.pointer("/metadata/resourceVersion") == Some(&rv);
                return Ok(if same {
                    Outcome::Unchanged
                } else {
                    Outcome::Configured
                });
            }
            Err(e) if e.code() == Some(409) => {
                current = match client.get(m.kind, ns, m.name()).await {
                    Ok(c) => Some(c),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e),
                };
            }
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Protocol(
        "the object kept changing while it was applied; try again".into(),
    ))
}

/// Deletes the object if it still carries `orkops.io/addon=addon`: `Deleted`, `Gone` or
/// `Kept`. A pod (which its node stops gracefully) is waited on until it is gone.
async fn delete_owned(
    client: &ApiClient,
    r: &ObjectRef,
    addon: &str,
) -> Result<Outcome, ClientError> {
    let ns = r.namespace.as_deref();
    let obj = match client.get(r.kind, ns, &r.name).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(Outcome::Gone),
        Err(e) => return Err(e),
    };
    let owner = obj["metadata"]["labels"][ADDON_LABEL].as_str();
    if owner != Some(addon) {
        return Ok(Outcome::Kept);
    }
    let deleted = match client.delete(r.kind, ns, &r.name, &[]).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(Outcome::Gone),
        Err(e) => return Err(e),
    };
    if let Some(grace) = deleted
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
    {
        let uid = obj.pointer("/metadata/uid").cloned();
        let deadline = Instant::now() + Duration::from_secs(grace.max(0) as u64 + 60);
        loop {
            match client.get(r.kind, ns, &r.name).await {
                Err(e) if e.is_not_found() => break,
                Ok(o) if o.pointer("/metadata/uid").cloned() != uid => break,
                Err(e) => return Err(e),
                Ok(_) if Instant::now() > deadline => {
                    return Err(ClientError::Protocol(format!(
                        "still stopping {}s after it was deleted: is the agent of its node running? (`orkops get nodes`)",
                        grace + 60
                    )))
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(Outcome::Deleted)
}

/// Disables the add-on `name`: deletes the recorded objects that still carry its label (in
/// reverse apply order; the pods of its workloads go with them), then the record. `None`
/// when it is not installed.
pub async fn disable(client: &ApiClient, name: &str) -> Result<Option<Report>, AddonError> {
    let Some(mut record) = Record::read(client, name).await? else {
        return Ok(None);
    };
    record.state = State::Removing;
    record.write(client).await?;
    let mut objects = record.objects.clone();
    objects.sort_by_key(|r| std::cmp::Reverse(bundle::apply_rank(r.kind)));
    let mut report = Report {
        name: name.to_string(),
        version: record.version.clone(),
        previous: None,
        objects: Vec::new(),
    };
    for r in objects {
        let outcome = delete_owned(client, &r, name)
            .await
            .map_err(|error| AddonError::Remove {
                name: name.to_string(),
                object: r.to_string(),
                error,
            })?;
        report.objects.push((r, outcome));
    }
    record
        .remove(client)
        .await
        .map_err(|error| AddonError::Remove {
            name: name.to_string(),
            object: format!(
                "ConfigMap {RECORD_NAMESPACE}/{}",
                Record::config_map_name(name)
            ),
            error,
        })?;
    Ok(Some(report))
}

/// One installed add-on and how many of its recorded objects exist.
#[derive(Debug, Clone)]
pub struct Installed {
    pub record: Record,
    /// Recorded objects that exist and carry the add-on's label.
    pub present: usize,
}

/// Every installed add-on, by name.
pub async fn installed(client: &ApiClient) -> Result<Vec<Installed>, AddonError> {
    let api_err = |error| AddonError::Api {
        what: "listing the add-on records".into(),
        error,
    };
    let list = client
        .list(
            Kind::ConfigMap,
            Some(RECORD_NAMESPACE),
            &[("labelSelector", RECORD_LABEL.to_string())],
        )
        .await
        .map_err(api_err)?;
    let mut out = Vec::new();
    for cm in list["items"].as_array().into_iter().flatten() {
        let record = Record::from_config_map(cm);
        let mut present = 0;
        for r in &record.objects {
            if let Ok(o) = client.get(r.kind, r.namespace.as_deref(), &r.name).await {
                if o["metadata"]["labels"][ADDON_LABEL].as_str() == Some(record.name.as_str()) {
                    present += 1;
                }
            }
        }
        out.push(Installed { record, present });
    }
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    Ok(out)
}

fn union(a: &[ObjectRef], b: &[ObjectRef]) -> Vec<ObjectRef> {
    let mut out = a.to_vec();
    for r in b {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_config_map() {
        let mut params = BTreeMap::new();
        params.insert("replicas".to_string(), "2".to_string());
        params.insert("message".to_string(), "it's: \"x\"".to_string());
        let r = Record {
            name: "hello".into(),
            version: "1.0.0".into(),
            description: "d".into(),
            source: "builtin".into(),
            state: State::Failed,
            message: "boom".into(),
            parameters: params,
            objects: vec![
                ObjectRef::parse("Service default/hello").unwrap(),
                ObjectRef::parse("Namespace demo").unwrap(),
            ],
            updated: "2025-01-01T00:00:00Z".into(),
            resource_version: Some("7".into()),
        };
        let cm = r.to_config_map();
        assert_eq!(cm["metadata"]["name"], "addon-hello");
        assert_eq!(cm["metadata"]["labels"][RECORD_LABEL], "hello");
        assert!(cm["metadata"]["labels"].get(ADDON_LABEL).is_none());
        assert_eq!(
            cm["data"]["objects"],
            "Service default/hello\nNamespace demo\n"
        );
        assert!(api::admit(Kind::ConfigMap, cm.clone()).is_ok());
        assert_eq!(Record::from_config_map(&cm), r);
    }

    #[test]
    fn union_keeps_order_and_drops_duplicates() {
        let a = ObjectRef::parse("ConfigMap default/a").unwrap();
        let b = ObjectRef::parse("ConfigMap default/b").unwrap();
        assert_eq!(
            union(&[a.clone(), b.clone()], &[b.clone(), a.clone()]),
            vec![a, b]
        );
    }
}
