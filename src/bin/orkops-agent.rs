//! `orkops-agent`: parse flags, set up logging, run the node agent until SIGTERM.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use orkops::agent::{self, AgentConfig};

#[derive(Parser)]
#[command(
    name = "orkops-agent",
    version,
    about = "The orkops node agent: runs the pods bound to this node on Docker"
)]
struct Args {
    /// This node's name in the cluster (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Client config holding this node's join token (`orkops create join-token NODE -o FILE`);
    /// needed until the node has its own token in --data-dir, then deleted.
    #[arg(long)]
    bootstrap_config: Option<PathBuf>,
    /// Where the node token, the agent certificate and pod files are kept.
    #[arg(long, default_value = "/var/lib/orkops-agent")]
    data_dir: PathBuf,
    /// Address and port of the agent's HTTPS endpoint (logs, exec, image load) for the master.
    #[arg(long, default_value = "0.0.0.0:10250")]
    listen: SocketAddr,
    /// The node address announced to the cluster (default: the one that routes to the master).
    #[arg(long)]
    address: Option<IpAddr>,
    /// Seconds between heartbeats: renewals of the node's Lease in kube-node-lease.
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Seconds between posts of the Node status when nothing in it changed (it is posted at
    /// once when it changes).
    #[arg(long, default_value_t = 300)]
    status_report_seconds: u64,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// `orkops`: the cluster pod network (a bridge for the node's pod CIDR, routes to the other
    /// nodes, service rules in nftables, cluster DNS; needs root, `ip` and `nft`). Any other
    /// value: the Docker network the pods' sandboxes join, with no services.
    #[arg(long, default_value = "bridge")]
    network: String,
    /// Labels for the Node, KEY=VALUE, comma-separated.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".into())
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    orkops::init_tracing("info");
    let mut labels = BTreeMap::new();
    for l in &a.node_labels {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => {
                return orkops::exit_code(Err(anyhow::anyhow!(
                    "--node-labels: {l:?} is not KEY=VALUE"
                )))
            }
        }
    }
    let config = AgentConfig {
        node_name: a.node_name.unwrap_or_else(hostname),
        bootstrap_config: a.bootstrap_config,
        data_dir: a.data_dir,
        listen: a.listen,
        address: a.address,
        heartbeat: Duration::from_secs(a.heartbeat_seconds.max(1)),
        status_report: Duration::from_secs(a.status_report_seconds.max(1)),
        max_pods: a.max_pods,
        network: a.network,
        labels,
    };
    orkops::exit_code(agent::run(config, orkops::shutdown_signal()).await)
}
