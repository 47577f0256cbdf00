//! `orkops-hollow`: parse flags, set up logging, run N hollow nodes (pods in memory, no
//! Docker) against a master until SIGTERM, for scale tests.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use orkops::agent::hollow::{self, HollowConfig, WatchMode};
use orkops::client::ClientConfig;

#[derive(Clone, Copy, ValueEnum)]
enum Watch {
    /// One watch of all pods for the whole process.
    Shared,
    /// One watch per node, selecting its pods, as real agents do.
    PerNode,
}

#[derive(Parser)]
#[command(
    name = "orkops-hollow",
    version,
    about = "Hollow nodes for scale tests: registers N nodes and runs their pods in memory"
)]
struct Args {
    /// The admin client config (makes each node's join token; default: ORKOPS_CONFIG or
    /// ~/.orkops/config).
    #[arg(long, env = "ORKOPS_CONFIG")]
    config: Option<PathBuf>,
    /// How many nodes to run.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// Node names are PREFIX-0000, PREFIX-0001, ...
    #[arg(long, default_value = "hollow")]
    prefix: String,
    /// Seconds between each node's heartbeats (the agent's default).
    #[arg(long, default_value_t = 10)]
    heartbeat_seconds: u64,
    /// Seconds between each node's status posts when nothing in it changed (the agent's
    /// default).
    #[arg(long, default_value_t = 300)]
    status_report_seconds: u64,
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The address every hollow node announces.
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    #[arg(long, value_enum, default_value = "shared")]
    watch: Watch,
    /// Leave the Nodes registered at exit (by default they are removed).
    #[arg(long)]
    keep_nodes: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    orkops::init_tracing("info");
    let config =
        match ClientConfig::locate(a.config.as_deref()).and_then(|p| ClientConfig::load(&p)) {
            Ok(c) => c,
            Err(e) => return orkops::exit_code(Err(anyhow::anyhow!(e))),
        };
    let cfg = HollowConfig {
        admin: config,
        nodes: a.nodes,
        prefix: a.prefix,
        heartbeat: Duration::from_secs(a.heartbeat_seconds.max(1)),
        status_report: Duration::from_secs(a.status_report_seconds.max(1)),
        max_pods: a.max_pods,
        address: a.address,
        watch: match a.watch {
            Watch::Shared => WatchMode::Shared,
            Watch::PerNode => WatchMode::PerNode,
        },
        keep_nodes: a.keep_nodes,
    };
    orkops::exit_code(hollow::run(cfg, orkops::shutdown_signal()).await)
}
