//! `orkops-master`: its validated settings, its one-time setup (PKI, tokens, the admin client
//! config), and `run`, which serves the API over TLS until the shutdown future completes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apiserver::auth::random_token;
use crate::apiserver::http::{router, AppState};
use crate::apiserver::proxy::AgentAccess;
use crate::apiserver::{Credentials, Engine};
use crate::client::ClientConfig;
use crate::pki::{self, Ca};
use crate::store::EtcdStore;

/// Everything the master needs, resolved and checked before any port is bound.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    pub cluster_name: String,
    pub listen: SocketAddr,
    /// Addresses (IPs or DNS names) clients use to reach this master; they go into the serving
    /// certificate and the written client config.
    pub advertise: Vec<String>,
    pub etcd_endpoints: Vec<String>,
    pub etcd_prefix: String,
    /// TLS to etcd (`--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`).
    pub etcd_tls: crate::store::EtcdTlsFiles,
    pub data_dir: PathBuf,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub admin_token_file: Option<PathBuf>,
    pub join_token_file: Option<PathBuf>,
    pub signing_key_file: Option<PathBuf>,
    pub node_token_ttl: Duration,
    /// Pod, service and node-port ranges.
    pub network: crate::apiserver::alloc::NetworkRanges,
    /// Node lifecycle timeouts for the controllers.
    pub controllers: crate::controllers::ControllerConfig,
    /// Also write the admin client config here (besides `DATA_DIR/admin.conf`).
    pub client_config_out: Option<PathBuf>,
}

/// What the master's setup produced: the TLS identity and the secrets.
pub struct Secrets {
    pub ca_pem: String,
    /// The CA's key when this master made its own CA (it then signs agent certificates).
    pub ca_key_pem: Option<String>,
    pub cert_pem: String,
    pub key_pem: String,
    pub admin_token: String,
    pub join_token: String,
    pub signing_key: String,
}

impl MasterConfig {
    /// Loads the certificates and tokens named by flags, generating what is absent under the
    /// data directory (CA, serving certificate, tokens, signing key).
    pub fn prepare_secrets(&self) -> anyhow::Result<Secrets> {
        let dir = &self.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        let (ca_pem, ca_key_pem, cert_pem, key_pem) =
            match (&self.tls_cert_file, &self.tls_key_file) {
                (Some(c), Some(k)) => {
                    let ca = self.ca_file.as_ref().context(
                        "--tls-cert-file needs --ca-file: clients must be told which CA signed it",
                    )?;
                    (read(ca)?, None, read(c)?, read(k)?)
                }
                (None, None) => {
                    let ca =
                        Ca::load_or_generate(dir, &format!("orkops-ca-{}", self.cluster_name))?;
                    let (c, k) = pki::load_or_issue(&ca, dir, "apiserver", &self.sans())?;
                    (ca.cert_pem, Some(ca.key_pem), c, k)
                }
                _ => anyhow::bail!(
                    "--tls-cert-file and --tls-key-file go together: give both or neither"
                ),
            };
        // check the identity now, so a bad file fails before the port is bound
        pki::server_config(
            &cert_pem,
            &key_pem,
            self.tls_cert_file.as_deref().unwrap_or(dir),
        )?;
        let secret = |flag: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
            Ok(match flag {
                Some(p) => pki::read_secret(p)?,
                None => pki::read_or_create(&dir.join(default), random_token)?,
            })
        };
        Ok(Secrets {
            ca_pem,
            ca_key_pem,
            cert_pem,
            key_pem,
            admin_token: secret(&self.admin_token_file, "admin.token")?,
            join_token: secret(&self.join_token_file, "join.token")?,
            signing_key: secret(&self.signing_key_file, "signing.key")?,
        })
    }

    fn sans(&self) -> Vec<String> {
        let mut sans = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if !self.listen.ip().is_unspecified() {
            sans.push(self.listen.ip().to_string());
        }
        for a in &self.advertise {
            if !sans.contains(a) {
                sans.push(a.clone());
            }
        }
        sans
    }

    fn client_endpoints(&self, bound: SocketAddr) -> Vec<String> {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_string()
            }
        };
        let mut eps: Vec<String> = self
            .advertise
            .iter()
            .map(|a| format!("https://{}:{}", host(a), bound.port()))
            .collect();
        if eps.is_empty() {
            let ip = if bound.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                bound.ip().to_string()
            };
            eps.push(format!("https://{}:{}", host(&ip), bound.port()));
        }
        eps
    }
}

/// Runs the controllers while this master leads the election among the cluster's masters (one
/// scheduler and one set of controllers per cluster), and campaigns again when it loses.
async fn lead_controllers(
    store: Arc<dyn crate::store::Store>,
    election: String,
    candidate: String,
    engine: Arc<Engine>,
    config: crate::controllers::ControllerConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let campaign = tokio::select! {
            r = store.campaign(&election, &candidate) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let mut leading = match campaign {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot campaign for the controllers; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        };
        tracing::info!(%candidate, "leading the cluster's controllers");
        let term = crate::controllers::start(engine.clone(), config.clone());
        let stopping = tokio::select! {
            _ = leading.lost() => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        // everything the term started (caches' watches, workers, cloud loops) ends here
        term.shutdown().await;
        if stopping {
            return;
        }
        tracing::warn!(
            "lost the controllers' leadership (the store stopped renewing it); campaigning again"
        );
    }
}

fn read(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

/// Runs the master until `shutdown` completes, then stops accepting, ends the watches and
/// waits (briefly) for requests in flight.
pub async fn run(
    config: MasterConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let etcd_tls = config
        .etcd_tls
        .client_tls(&config.etcd_endpoints)
        .map_err(|e| anyhow::anyhow!(e))?;
    let secrets = config.prepare_secrets()?;
    let tls = pki::server_config(&secrets.cert_pem, &secrets.key_pem, &config.data_dir)?;
    let store = EtcdStore::connect_tls(&config.etcd_endpoints, etcd_tls)
        .await
        .context(
            "hint: start etcd first (`tests/etcd` starts a local one) or pass --etcd-endpoints",
        )?;
    let credentials = Arc::new(Credentials::new(
        &secrets.admin_token,
        &secrets.join_token,
        secrets.signing_key.as_bytes(),
        config.node_token_ttl,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_rx_controllers = stop_rx.clone();
    config
        .network
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let store: Arc<dyn crate::store::Store> = Arc::new(store);
    let mut engine = Engine::new(
        store.clone(),
        &config.etcd_prefix,
        Some(credentials.clone()),
        stop_rx,
    )
    .with_network(config.network.clone())
    .with_serving_names(config.sans());
    if let Some(key) = &secrets.ca_key_pem {
        engine = engine.with_ca(Ca {
            cert_pem: secrets.ca_pem.clone(),
            key_pem: key.clone(),
        });
    }
    // the serving certificate doubles as the client certificate agents accept
    let agents = AgentAccess::new(
        &secrets.ca_pem,
        &secrets.cert_pem,
        &secrets.key_pem,
        config.data_dir.join("spool"),
    )
    .map_err(|e| anyhow::anyhow!("cannot prepare the connection to agents: {e}"))?
    .with_revocations(engine.store().clone(), &config.etcd_prefix);
    engine
        .ensure_system_namespaces()
        .await
        .context("cannot create the system namespaces")?;
    engine
        .ensure_default_storage_class()
        .await
        .context("cannot create the StorageClass \"local\"")?;
    engine
        .publish_network()
        .await
        .context("cannot publish the cluster network ranges")?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let client = ClientConfig::new(
        Some(&config.cluster_name),
        config.client_endpoints(bound),
        &secrets.ca_pem,
        &secrets.admin_token,
    );
    // agents join with scoped join tokens (`orkops create join-token`), never the join secret
    client.save(&config.data_dir.join("admin.conf"))?;
    if let Some(out) = &config.client_config_out {
        client.save(out)?;
    }
    tracing::info!(address = %bound, cluster = %config.cluster_name, "API server listening");

    let engine = Arc::new(engine);
    let accounts = tokio::spawn(crate::apiserver::accounts::keep_default_service_accounts(
        engine.clone(),
        stop_tx.subscribe(),
    ));
    let controllers = tokio::spawn(lead_controllers(
        store,
        format!("{}/leader/controllers", config.etcd_prefix),
        // the candidate names this master (its host and port), so the leader is known by name
        format!(
            "{}@{}:{}",
            config.cluster_name,
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| bound.ip().to_string()),
            bound.port()
        ),
        engine.clone(),
        config.controllers.clone(),
        stop_rx_controllers,
    ));
    let app = router(Arc::new(AppState {
        engine,
        credentials,
        agents: Some(agents),
    }));
    let graceful = crate::serve::accept_loop(listener, tls, app, shutdown).await;
    tracing::info!("shutting down: no new connections, ending watches");
    let _ = stop_tx.send(true);
    let _ = controllers.await;
    let _ = accounts.await;
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after 10 s; stopping anyway");
    }
    tracing::info!("stopped");
    Ok(())
}
