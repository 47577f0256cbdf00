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
    /// The CA of etcd's serving certificates: with it, etcd is reached over TLS (https://
    /// endpoints). Without it only loopback http:// endpoints are allowed.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate (PEM) etcd accepts, and its key.
    #[arg(long, requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    #[arg(long, requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
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
    /// Pod addresses; each node gets a slice of --node-cidr-mask-size bits.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: ipnet::Ipv4Net,
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Service ClusterIPs.
    #[arg(long, default_value = "10.96.0.0/16")]
    service_cluster_ip_range: ipnet::Ipv4Net,
    /// Node ports, FIRST-LAST.
    #[arg(long, default_value = "30000-32767", value_parser = port_range)]
    service_node_port_range: (u16, u16),
    /// DNS suffix of service names (NAME.NAMESPACE.svc.DOMAIN).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Seconds without a heartbeat before a node is marked NotReady.
    #[arg(long, default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Seconds a node stays NotReady before its pods are deleted and replaced elsewhere.
    #[arg(long, default_value_t = 60)]
    pod_eviction_timeout: u64,
    /// `aws`: give LoadBalancer services AWS load balancers, and route each node's pod CIDR to
    /// its instance in the cluster's VPC route tables (credentials and region from the
    /// instance's environment, the way aws-config finds them).
    #[arg(long, value_parser = ["aws"])]
    cloud: Option<String>,
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port range such as 30000-32767");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Args::parse();
    orkops::init_tracing("info");
    let config = MasterConfig {
        cluster_name: a.cluster_name.clone(),
        listen: a.listen,
        advertise: a.advertise,
        etcd_endpoints: a.etcd_endpoints,
        etcd_prefix: a.etcd_prefix,
        etcd_tls: orkops::store::EtcdTlsFiles {
            ca_file: a.etcd_cafile,
            cert_file: a.etcd_certfile,
            key_file: a.etcd_keyfile,
        },
        data_dir: a.data_dir,
        tls_cert_file: a.tls_cert_file,
        tls_key_file: a.tls_key_file,
        ca_file: a.ca_file,
        admin_token_file: a.admin_token_file,
        join_token_file: a.join_token_file,
        signing_key_file: a.signing_key_file,
        node_token_ttl: Duration::from_secs(a.node_token_ttl_hours * 3600),
        client_config_out: a.client_config_out,
        network: orkops::apiserver::alloc::NetworkRanges {
            cluster_cidr: a.cluster_cidr,
            node_mask: a.node_cidr_mask_size,
            service_cidr: a.service_cluster_ip_range,
            node_port_min: a.service_node_port_range.0,
            node_port_max: a.service_node_port_range.1,
            cluster_domain: a.cluster_domain,
        },
        controllers: orkops::controllers::ControllerConfig {
            node_monitor_grace: Duration::from_secs(a.node_monitor_grace_period),
            pod_eviction_timeout: Duration::from_secs(a.pod_eviction_timeout),
            cloud: a.cloud.map(
                |_| orkops::controllers::loadbalancer::controller::CloudConfig {
                    cluster: a.cluster_name.clone(),
                    region: std::env::var("AWS_REGION")
                        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                        .unwrap_or_else(|_| "us-east-1".into()),
                    cluster_cidr: a.cluster_cidr,
                },
            ),
        },
    };
    orkops::exit_code(master::run(config, orkops::shutdown_signal()).await)
}
