//! `orkops-agent`, the node agent (the kubelet of orkops): joins the cluster, registers its
//! Node and keeps its heartbeat, runs the pods bound to it on the local Docker engine (one
//! worker per pod, woken by the API watch, Docker events, probes and timers), and serves logs,
//! exec and image loading to the master.

pub mod container;
pub mod dns;
pub mod downward;
pub mod etcfiles;
pub mod hollow;
pub mod inputs;
pub mod network;
pub mod node;
pub mod plan;
pub mod pods;
pub mod presence;
pub mod probe;
pub mod proxy;
pub mod runtime;
pub mod server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bollard::query_parameters::EventsOptions;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::core::Pod;
use crate::api::Kind;
use crate::client::{ApiClient, ClientConfig, ClientError};
use crate::pki;
use pods::{Ctx, Workers};
use runtime::{Runtime, LABEL_NODE, LABEL_POD_UID};

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    /// A client config holding the join token; needed only until the node has its own token.
    pub bootstrap_config: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// Where the agent's HTTPS endpoint (logs, exec, image load) listens.
    pub listen: SocketAddr,
    /// The node address announced to the cluster; found from the route to the master if unset.
    pub address: Option<IpAddr>,
    /// How often the node's Lease is renewed (and its status looked at).
    pub heartbeat: Duration,
    /// How often the Node status is posted when nothing in it changed.
    pub status_report: Duration,
    pub max_pods: u32,
    /// The Docker network pod sandboxes join.
    pub network: String,
    pub labels: BTreeMap<String, String>,
}

/// The local address this host uses to reach `endpoint` (no packet is sent).
fn route_address(endpoint: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url
        .host_str()?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port_or_known_default()?;
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()?
        .next()?;
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(target).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// Runs the agent until `shutdown` completes. Containers keep running when it stops: a new
/// agent adopts them.
pub async fn run(
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let node = config.node_name.clone();
    if !crate::api::labels::is_dns_subdomain(&node) {
        anyhow::bail!(
            "--node-name {node:?} must be a DNS subdomain (lower-case letters, digits, '-', '.')"
        );
    }
    let rt = Runtime::connect(&node)
        .await
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let client_cfg: ClientConfig =
        node::credentials(&config.data_dir, config.bootstrap_config.as_deref(), &node).await?;
    let api = Arc::new(ApiClient::new(&client_cfg)?);
    let address = match config.address {
        Some(a) => a,
        None => client_cfg
            .endpoints
            .iter()
            .find_map(|e| route_address(e))
            .context(
                "cannot tell this node's address from the route to the master: pass --address",
            )?,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let port = listener.local_addr()?.port();

    // the serving certificate, signed by the master for the names it derives (the master
    // connects by node name); only the master may connect
    let sans = vec![node.clone()];
    let (cert, key) = node::serving_certificate(&api, &config.data_dir, &node, &sans).await?;
    let ca = client_cfg.ca_pem().map_err(|e| anyhow::anyhow!(e))?;
    let tls = pki::mutual_server_config(&cert, &key, &ca, &config.data_dir)?;

    rt.ensure_pause_image()
        .await
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let facts = node::Facts {
        name: node.clone(),
        address: address.to_string(),
        agent_port: port,
        max_pods: config.max_pods,
        ephemeral_storage_bytes: node::filesystem_bytes(&config.data_dir),
        labels: config.labels.clone(),
        runtime_version: rt.version.clone(),
    };
    let ready_since = chrono::Utc::now();
    node::register(&api, &facts, ready_since).await?;
    let net = if config.network == network::MODE {
        Some(Arc::new(pod_network(&api, &node).await?))
    } else {
        None
    };
    tracing::info!(node = %node, %address, port, docker = %rt.version, "agent ready");

    let (stop_tx, stop_rx) = watch::channel(false);
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .context("cannot set up the probe HTTP client")?;
    let ctx = Arc::new(Ctx {
        api: api.clone(),
        rt: rt.clone(),
        node: node.clone(),
        host_ip: address.to_string(),
        data_dir: config.data_dir.clone(),
        network: config.network.clone(),
        net: net.clone(),
        http,
        shutdown: stop_rx.clone(),
    });
    let workers = Workers::new(ctx);
    let mut tasks = vec![];
    let node_cache = net.as_ref().map(|n| n.nodes.clone());
    if let Some(net) = net {
        tasks.push(tokio::spawn(network::serve(
            net,
            api.clone(),
            stop_rx.clone(),
        )));
    }
    tasks.extend([
        tokio::spawn(presence::keep_alive(
            api.clone(),
            presence::Presence::registered(facts, ready_since, config.status_report),
            config.heartbeat,
            node_cache,
            config.data_dir.clone(),
        )),
        tokio::spawn(docker_events(rt.clone(), workers.clone())),
        tokio::spawn(watch_pods(workers.clone(), stop_rx.clone())),
    ]);
    let app = server::router(rt.clone());
    let graceful = crate::serve::accept_loop(listener, tls, app, shutdown).await;
    tracing::info!("stopping; the pods' containers keep running");
    let _ = stop_tx.send(true);
    for t in tasks {
        t.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

/// Sets up the node's pod network from the pod CIDR the master gave the node.
async fn pod_network(api: &ApiClient, node: &str) -> anyhow::Result<network::PodNetwork> {
    let n = api
        .get(Kind::Node, None, node)
        .await
        .with_context(|| format!("cannot read node {node}"))?;
    let cidr = n
        .pointer("/spec/podCIDR")
        .and_then(|v| v.as_str())
        .context(
            "the master gave this node no pod CIDR (spec.podCIDR); is it older than the agent?",
        )?;
    let cidr = cidr
        .parse()
        .with_context(|| format!("node {node} has an invalid spec.podCIDR {cidr:?}"))?;
    let cluster = network::cluster_network(api)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    network::PodNetwork::setup(node, cidr, cluster)
        .await
        .map_err(|e| anyhow::anyhow!("cannot set up the pod network on node {node}: {e}"))
}

/// Wakes the worker of a pod whose container started, died or was removed.
async fn docker_events(rt: Runtime, workers: Workers) {
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{LABEL_NODE}={}", rt.node)],
            ),
            (
                "event".to_string(),
                ["start", "die", "oom", "destroy"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        let mut events = rt.docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    if let Some(uid) = ev
                        .actor
                        .and_then(|a| a.attributes)
                        .and_then(|a| a.get(LABEL_POD_UID).cloned())
                    {
                        workers.poke(&uid);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the Docker event stream failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Lists the pods bound to this node, then follows the watch; relists when the watch ends.
async fn watch_pods(workers: Workers, mut stop: watch::Receiver<bool>) {
    let api = workers.ctx().api.clone();
    let node = workers.ctx().node.clone();
    let selector = vec![("fieldSelector", format!("spec.nodeName={node}"))];
    let mut sweep_every = tokio::time::interval(Duration::from_secs(30));
    loop {
        let r: Result<(), ClientError> = async {
            let list = api.list(Kind::Pod, None, &selector).await?;
            let rv = list
                .pointer("/metadata/resourceVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("0")
                .to_string();
            let mut listed = HashSet::new();
            for item in list["items"].as_array().cloned().unwrap_or_default() {
                match serde_json::from_value::<Pod>(item) {
                    Ok(p) => {
                        listed.insert(p.metadata.uid.clone().unwrap_or_default());
                        workers.update(p);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot decode a pod"),
                }
            }
            for uid in workers.known().difference(&listed) {
                workers.gone(uid);
            }
            if let Err(e) = workers.sweep(&listed).await {
                tracing::warn!(error = %e, "cannot remove leftover containers");
            }
            let mut q = selector.clone();
            q.push(("resourceVersion", rv));
            let mut events = api.watch(Kind::Pod, None, &q).await?;
            loop {
                tokio::select! {
                    ev = events.next() => {
                        let Some(ev) = ev else { return Ok(()) };
                        let ev = ev?;
                        if ev.type_ == "ERROR" {
                            return Ok(());
                        }
                        let Ok(p) = serde_json::from_value::<Pod>(ev.object) else { continue };
                        match ev.type_.as_str() {
                            "DELETED" => workers.gone(p.metadata.uid.as_deref().unwrap_or("")),
                            _ => workers.update(p),
                        }
                    }
                    _ = sweep_every.tick() => {
                        if let Err(e) = workers.sweep(&workers.known()).await {
                            tracing::warn!(error = %e, "cannot remove leftover containers");
                        }
                    }
                    _ = stop.changed() => return Ok(()),
                }
            }
        }
        .await;
        if *stop.borrow() {
            return;
        }
        if let Err(e) = r {
            tracing::warn!(error = %e, "pod watch failed; listing again shortly");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
