//! Hollow nodes, as Kubernetes' kubemark has them: one process registers N nodes against a
//! real master over HTTPS and runs their pods in memory (no Docker), for scale tests.
//!
//! Each node joins the way a real agent does: the admin makes a join token for the node name
//! (the supported way the cluster learns a name, `orkops create join-token`), the node trades
//! it for its own node token, registers its Node, reads its pod CIDR and heartbeats at the
//! agent's interval with its own credentials. Its pods go through the agent's own reconciler
//! (`plan::plan` and `plan::status`) against an in-memory engine: a sandbox gets an address
//! from the node's CIDR, containers start at once and keep running, and a deleted pod is
//! stopped and removed (`pods::finalize`) as the agent does. The pods reach the nodes through
//! one watch of all pods (with the first node's token: a node may watch pods) or, with
//! `WatchMode::PerNode`, one watch per node selecting its pods, as real agents do.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::node::{self, Facts};
use super::plan::{self, Action, Memory};
use super::pods;
use super::presence::Presence;
use super::runtime::{Observed, RunState, PAUSE_IMAGE, SANDBOX};
use crate::api::core::Pod;
use crate::api::Kind;
use crate::client::{ApiClient, ClientConfig, ClientError};

/// The label every hollow Node carries.
pub const LABEL_HOLLOW: &str = "orkops.io/hollow";
/// How many nodes join (or are removed) at once.
const JOIN_CONCURRENCY: usize = 32;

/// How the pods reach the hollow nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// One watch of all pods for the whole process, dispatched by `spec.nodeName`.
    Shared,
    /// One watch per node with `fieldSelector=spec.nodeName=NODE`, as real agents do.
    PerNode,
}

#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// The admin's client config: makes the nodes' join tokens and removes the nodes at exit.
    pub admin: ClientConfig,
    pub nodes: usize,
    /// Node names are `PREFIX-0000`, `PREFIX-0001`, ...
    pub prefix: String,
    pub heartbeat: Duration,
    /// How often a node posts its status when nothing in it changed.
    pub status_report: Duration,
    pub max_pods: u32,
    /// The address every hollow node announces.
    pub address: IpAddr,
    pub watch: WatchMode,
    /// Leave the Node objects in place at exit (default: remove them).
    pub keep_nodes: bool,
}

/// One joined hollow node.
struct Hollow {
    facts: Facts,
    /// When it registered Ready.
    ready_since: chrono::DateTime<Utc>,
    api: Arc<ApiClient>,
    cidr: Ipv4Net,
}

/// What a node's pod loop is told.
enum Msg {
    Pod(Box<Pod>),
    Gone(String),
    /// A relist: the uids of all the pods bound to the node now.
    Listed(HashSet<String>),
    /// Look at a pod again (a failed status write).
    Retry(String),
}

/// Runs the hollow nodes until `shutdown` completes; then removes their Nodes unless
/// `keep_nodes`.
pub async fn run(
    cfg: HollowConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if cfg.nodes == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let name = |i: usize| format!("{}-{i:04}", cfg.prefix);
    if !crate::api::labels::is_dns_subdomain(&name(cfg.nodes - 1)) {
        anyhow::bail!(
            "--prefix {:?} does not make DNS subdomain node names (lower-case letters, digits, '-', '.')",
            cfg.prefix
        );
    }
    let admin = Arc::new(ApiClient::new(&cfg.admin).context("the admin client config")?);
    let started = std::time::Instant::now();
    let joined: anyhow::Result<Vec<Hollow>> = futures::stream::iter(0..cfg.nodes)
        .map(|i| join(&admin, &cfg, name(i)))
        .buffer_unordered(JOIN_CONCURRENCY)
        .try_collect()
        .await;
    let nodes = match joined {
        Ok(n) => n,
        Err(e) => {
            if !cfg.keep_nodes {
                remove_nodes(&admin, &(0..cfg.nodes).map(name).collect::<Vec<_>>()).await;
            }
            return Err(e);
        }
    };
    tracing::info!(
        nodes = nodes.len(),
        seconds = started.elapsed().as_secs_f64(),
        "hollow nodes ready"
    );
    let names: Vec<String> = nodes.iter().map(|n| n.facts.name.clone()).collect();
    let mut tasks = JoinSet::new();
    let mut senders = HashMap::new();
    let watcher = nodes[0].api.clone();
    for n in nodes {
        let n = Arc::new(n);
        let (tx, rx) = mpsc::unbounded_channel();
        tasks.spawn(heartbeat(n.clone(), cfg.heartbeat, cfg.status_report));
        tasks.spawn(pod_loop(n.clone(), rx, tx.clone()));
        if cfg.watch == WatchMode::PerNode {
            let selector = vec![("fieldSelector", format!("spec.nodeName={}", n.facts.name))];
            let one = HashMap::from([(n.facts.name.clone(), tx.clone())]);
            tasks.spawn(watch_pods(n.api.clone(), selector, one));
        }
        senders.insert(n.facts.name.clone(), tx);
    }
    if cfg.watch == WatchMode::Shared {
        tasks.spawn(watch_pods(watcher, vec![], senders));
    }
    shutdown.await;
    tracing::info!("stopping the hollow nodes");
    tasks.shutdown().await;
    if !cfg.keep_nodes {
        remove_nodes(&admin, &names).await;
    }
    Ok(())
}

/// Joins one node as a real agent does: join token, node token, Node, pod CIDR.
async fn join(admin: &ApiClient, cfg: &HollowConfig, name: String) -> anyhow::Result<Hollow> {
    let address = cfg.address.to_string();
    let r = admin
        .request(
            Method::POST,
            &format!("/orkops/v1/nodes/{name}/join-token"),
            &[],
            Some(&json!({"instanceID": "", "address": address})),
        )
        .await
        .with_context(|| format!("cannot create a join token for hollow node {name}"))?;
    let mut boot = cfg.admin.clone();
    boot.token = r["token"]
        .as_str()
        .context("the master's join-token answer has no token")?
        .to_string();
    boot.namespace = None;
    let token = node::renew(&ApiClient::new(&boot)?, &name)
        .await
        .with_context(|| format!("hollow node {name} cannot trade its join token"))?;
    let mut own = boot;
    own.token = token;
    let api = Arc::new(ApiClient::new(&own)?);
    let facts = Facts {
        name: name.clone(),
        address,
        agent_port: 0,
        max_pods: cfg.max_pods,
        // a hollow node stores nothing; it offers what a modest EBS root volume would
        ephemeral_storage_bytes: 100 << 30,
        labels: [(LABEL_HOLLOW.to_string(), "true".to_string())].into(),
        runtime_version: "hollow".into(),
    };
    let ready_since = Utc::now();
    node::register(&api, &facts, ready_since)
        .await
        .with_context(|| format!("cannot register hollow node {name}"))?;
    let n = api
        .get(Kind::Node, None, &name)
        .await
        .with_context(|| format!("cannot read hollow node {name}"))?;
    let cidr = n
        .pointer("/spec/podCIDR")
        .and_then(|v| v.as_str())
        .with_context(|| format!("the master gave hollow node {name} no spec.podCIDR"))?;
    let cidr: Ipv4Net = cidr
        .parse()
        .with_context(|| format!("hollow node {name} has an invalid spec.podCIDR {cidr:?}"))?;
    Ok(Hollow {
        facts,
        ready_since,
        api,
        cidr,
    })
}

/// Removes the Nodes (best effort: a failure is logged).
async fn remove_nodes(admin: &ApiClient, names: &[String]) {
    futures::stream::iter(names)
        .for_each_concurrent(JOIN_CONCURRENCY, |n| async move {
            match admin.delete(Kind::Node, None, n, &[]).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(node = %n, error = %e, "cannot remove the hollow node"),
            }
        })
        .await;
}

/// The agent's heartbeat with the node's own token (Lease renewals, the status when it
/// changed or is old: `presence`), first after a random part of `every` so that a thousand
/// nodes do not beat in step; re-registers a deleted Node.
async fn heartbeat(n: Arc<Hollow>, every: Duration, report: Duration) {
    let mut presence = Presence::registered(n.facts.clone(), n.ready_since, report);
    let first = every.mul_f64(rand::random::<f64>());
    tokio::time::sleep(first).await;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = presence.beat(&n.api, None).await {
            tracing::warn!(node = %n.facts.name, error = %format!("{e:#}"), "heartbeat failed");
        }
    }
}

/// Lists the pods `selector` picks, hands each to the loop of its node, then follows the
/// watch; watches again from the last revision when the stream ends, relists on an error.
async fn watch_pods(
    api: Arc<ApiClient>,
    selector: Vec<(&'static str, String)>,
    nodes: HashMap<String, mpsc::UnboundedSender<Msg>>,
) {
    let send = |p: Pod| {
        let node = p.spec.node_name.clone().unwrap_or_default();
        if let Some(tx) = nodes.get(&node) {
            let _ = tx.send(Msg::Pod(Box::new(p)));
        }
    };
    loop {
        let r: Result<(), ClientError> = async {
            let list = api.list(Kind::Pod, None, &selector).await?;
            let mut rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("0")
                .to_string();
            let mut listed: HashMap<&str, HashSet<String>> =
                nodes.keys().map(|k| (k.as_str(), HashSet::new())).collect();
            let items = list["items"].as_array().cloned().unwrap_or_default();
            for item in items {
                let Ok(p) = serde_json::from_value::<Pod>(item) else {
                    continue;
                };
                let node = p.spec.node_name.as_deref().unwrap_or_default();
                if let Some(set) = listed.get_mut(node) {
                    set.insert(p.metadata.uid.clone().unwrap_or_default());
                    send(p);
                }
            }
            for (node, uids) in listed {
                let _ = nodes[node].send(Msg::Listed(uids));
            }
            loop {
                let mut q = selector.clone();
                q.push(("resourceVersion", rv.clone()));
                let mut events = api.watch(Kind::Pod, None, &q).await?;
                while let Some(ev) = events.next().await {
                    let ev = ev?;
                    if let Some(v) = ev.object.pointer("/metadata/resourceVersion") {
                        rv = v.as_str().unwrap_or(&rv).to_string();
                    }
                    if ev.type_ == "BOOKMARK" {
                        continue;
                    }
                    let Ok(p) = serde_json::from_value::<Pod>(ev.object) else {
                        continue;
                    };
                    if ev.type_ == "DELETED" {
                        let node = p.spec.node_name.as_deref().unwrap_or_default();
                        if let Some(tx) = nodes.get(node) {
                            let _ = tx.send(Msg::Gone(p.metadata.uid.unwrap_or_default()));
                        }
                    } else {
                        send(p);
                    }
                }
            }
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "hollow pod watch failed; listing again shortly");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One pod as the in-memory engine holds it.
struct HollowPod {
    pod: Pod,
    observed: Vec<Observed>,
    mem: Memory,
    /// The revision of our last status write.
    written: Option<i64>,
    ip: Option<Ipv4Addr>,
}

/// Pod addresses of one node's CIDR (the first host address is the node's bridge).
struct Addresses {
    cidr: Ipv4Net,
    next: u32,
    free: Vec<Ipv4Addr>,
}

impl Addresses {
    fn take(&mut self) -> Option<Ipv4Addr> {
        if let Some(ip) = self.free.pop() {
            return Some(ip);
        }
        let base = u32::from(self.cidr.network());
        let last = u32::from(self.cidr.broadcast());
        let ip = base.checked_add(2 + self.next)?;
        if ip >= last {
            return None;
        }
        self.next += 1;
        Some(Ipv4Addr::from(ip))
    }
}

/// Runs the pods bound to one node, one message at a time.
async fn pod_loop(
    n: Arc<Hollow>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    me: mpsc::UnboundedSender<Msg>,
) {
    let mut pods: HashMap<String, HollowPod> = HashMap::new();
    let mut ips = Addresses {
        cidr: n.cidr,
        next: 0,
        free: vec![],
    };
    while let Some(m) = rx.recv().await {
        let uid = match m {
            Msg::Pod(p) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                take(&mut pods, *p);
                uid
            }
            Msg::Gone(uid) => {
                if let Some(hp) = pods.remove(&uid) {
                    ips.free.extend(hp.ip);
                }
                continue;
            }
            Msg::Listed(uids) => {
                let gone: Vec<String> = pods
                    .keys()
                    .filter(|u| !uids.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(hp) = pods.remove(&uid) {
                        ips.free.extend(hp.ip);
                    }
                }
                continue;
            }
            Msg::Retry(uid) => uid,
        };
        let Some(hp) = pods.get_mut(&uid) else {
            continue;
        };
        if hp.pod.metadata.deletion_timestamp.is_some() {
            // the containers stop at once in memory; then the pod object goes, as the agent does
            pods::finalize(&n.api, &hp.pod).await;
            if let Some(hp) = pods.remove(&uid) {
                ips.free.extend(hp.ip);
            }
            continue;
        }
        if let Err(e) = sync(&n, hp, &mut ips).await {
            tracing::warn!(node = %n.facts.name, pod = %hp.pod.metadata.name(), error = %e, "hollow pod sync failed; retrying");
            let me = me.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let _ = me.send(Msg::Retry(uid));
            });
        }
    }
}

/// Takes a pod from the watch, keeping our own status while the watch lags behind our writes
/// (as the agent's worker does).
fn take(pods: &mut HashMap<String, HollowPod>, p: Pod) {
    let uid = p.metadata.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        return;
    }
    match pods.get_mut(&uid) {
        Some(hp) => {
            let seen: Option<i64> = p
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok());
            let after_ours = matches!((seen, hp.written), (Some(s), Some(w)) if s > w);
            let status = hp.pod.status.take();
            hp.pod = p;
            if status.is_some() && !after_ours {
                hp.pod.status = status;
            }
        }
        None => {
            pods.insert(
                uid,
                HollowPod {
                    pod: p,
                    observed: vec![],
                    mem: Memory::default(),
                    written: None,
                    ip: None,
                },
            );
        }
    }
}

/// The agent's sync against the in-memory engine: plan, execute, write the status if it
/// changed.
async fn sync(n: &Hollow, hp: &mut HollowPod, ips: &mut Addresses) -> Result<(), String> {
    for _ in 0..3 {
        let p = plan::plan(&hp.pod, &hp.observed, &hp.mem, Utc::now());
        if p.actions.is_empty() {
            break;
        }
        for a in p.actions {
            execute(n, hp, a, ips)?;
        }
    }
    let status = plan::status(&hp.pod, &hp.observed, &hp.mem, &n.facts.address, Utc::now());
    if hp.pod.status.as_ref() != Some(&status) {
        if let Some(rv) = pods::write_status(&n.api, &hp.pod, &status).await? {
            hp.pod.status = Some(status);
            hp.written = Some(rv);
        }
    }
    Ok(())
}

/// A container id the way Docker makes them (64 hex digits).
fn container_id() -> String {
    let (a, b) = (uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    format!("{a}{b}")
}

/// An image id that stays the same for the same image.
fn image_id(image: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, image.as_bytes());
    format!("sha256:{}", hex::encode(d.as_ref()))
}

/// Carries out one action of the plan in memory.
fn execute(n: &Hollow, hp: &mut HollowPod, a: Action, ips: &mut Addresses) -> Result<(), String> {
    let now = Utc::now();
    let (uid, ns, name) = (
        hp.pod.metadata.uid.clone().unwrap_or_default(),
        hp.pod.metadata.namespace().to_string(),
        hp.pod.metadata.name().to_string(),
    );
    let observed = |container: &str, attempt: u32, image: &str, ip: Option<String>| Observed {
        id: container_id(),
        pod_uid: uid.clone(),
        pod_namespace: ns.clone(),
        pod_name: name.clone(),
        container: container.to_string(),
        attempt,
        state: RunState::Running,
        exit_code: 0,
        error: String::new(),
        oom_killed: false,
        started_at: Some(now),
        finished_at: None,
        image: image.to_string(),
        image_id: image_id(image),
        ip,
    };
    match a {
        Action::CreateSandbox => {
            if hp.ip.is_none() {
                hp.ip = Some(ips.take().ok_or_else(|| {
                    format!(
                        "node {} has no pod address left in {}",
                        n.facts.name, n.cidr
                    )
                })?);
            }
            let o = observed(SANDBOX, 0, PAUSE_IMAGE, hp.ip.map(|ip| ip.to_string()));
            hp.observed.retain(|o| o.container != SANDBOX);
            hp.observed.push(o);
        }
        Action::Start {
            name,
            attempt,
            backoff_level,
        } => {
            let Some(image) = hp
                .pod
                .spec
                .containers
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.image.clone())
            else {
                return Ok(());
            };
            let o = observed(&name, attempt, &image, None);
            hp.observed.push(o);
            hp.mem.backoff.insert(name.clone(), backoff_level);
            hp.mem.failures.remove(&name);
        }
        Action::Kill { id, container, .. } => {
            if let Some(o) = hp.observed.iter_mut().find(|o| o.id == id) {
                o.state = RunState::Exited;
                // SIGKILL for the sandbox, a process that exits on SIGTERM otherwise
                o.exit_code = if container == SANDBOX { 137 } else { 143 };
                o.finished_at = Some(now);
            }
            hp.mem.liveness_failed.remove(&id);
        }
        Action::Remove { id } => hp.observed.retain(|o| o.id != id),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_addresses_come_from_the_node_cidr_and_are_reused() {
        let mut a = Addresses {
            cidr: "10.244.3.0/30".parse().unwrap(),
            next: 0,
            free: vec![],
        };
        assert_eq!(a.take(), Some(Ipv4Addr::new(10, 244, 3, 2)));
        assert_eq!(a.take(), None, "the broadcast address is never handed out");
        a.free.push(Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(a.take(), Some(Ipv4Addr::new(10, 244, 3, 2)));
    }
}
