//! `orkops-master`: parse flags, set up logging, run the API server until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use orkops::master::{self, MasterConfig};

#[derive(Parser)]
#[command(
    name = "orkops-master",
    version,
    about = "The orkops API server and controllers"
)]
struct Args {
    /// Name of the cluster (used in the CA name and the client config).
    #[arg(long, default_value = "orkops")]
    cluster_name: String,
    /// Address and port to serve HTTPS on (port 0 picks a free one).
    #[arg(long, default_value = "0.0.0.0:6443")]
    listen: SocketAddr,
    /// Addresses clients reach this master at (IPs or DNS names, comma-separated).
    #[arg(long, value_delimiter = ',')]
    advertise: Vec<String>,
    /// etcd client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Key prefix for every object in etcd.
    #[arg(long, default_value = "/orkops")]
    etcd_prefix: String,
    /// Where the CA, certificates, tokens and admin.conf are kept.
    #[arg(long, default_value = "/var/lib/orkops-master")]
    data_dir: PathBuf,
    /// Serving certificate (PEM); generated from the cluster CA when absent.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// The CA that signed --tls-cert-file, handed to clients.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    #[arg(long)]
    signing_key_file: Option<PathBuf>,
    /// Lifetime of node tokens, in hours.
    #[arg(long, default_value_t = 24 * 30)]
    node_token_ttl_hours: u64,
    /// Also write the admin client config to this path.
    #[arg(long)]
    client_config_out: Option<PathBuf>,
    /// Seconds without a heartbeat before a node is marked NotReady.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds a node stays NotReady before its pods are deleted and replaced elsewhere.
    #[arg(long, default_value_t = 60)]
    pod_eviction_timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    orkops::init_tracing("info");
    let config = MasterConfig {
        cluster_name: a.cluster_name,
        listen: a.listen,
        advertise: a.advertise,
        etcd_endpoints: a.etcd_endpoints,
        etcd_prefix: a.etcd_prefix,
        data_dir: a.data_dir,
        tls_cert_file: a.tls_cert_file,
        tls_key_file: a.tls_key_file,
        ca_file: a.ca_file,
        admin_token_file: a.admin_token_file,
        join_token_file: a.join_token_file,
        signing_key_file: a.signing_key_file,
        node_token_ttl: Duration::from_secs(a.node_token_ttl_hours * 3600),
        client_config_out: a.client_config_out,
        controllers: orkops::controllers::ControllerConfig {
            node_monitor_grace: Duration::from_secs(a.node_monitor_grace_period),
            pod_eviction_timeout: Duration::from_secs(a.pod_eviction_timeout),
        },
    };
    orkops::exit_code(master::run(config, orkops::shutdown_signal()).await)
}
