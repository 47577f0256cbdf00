//! Provisioning as a library: `create`, `update`, `validate` and `delete` of a cluster, as
//! functions of checked settings (`settings`), a cloud (`cloud::aws::Aws`) and a progress
//! reporter (`Progress`). Each phase has its file: the infrastructure plan and its convergence
//! (`converge`), the bootstrap of the instances over SSH (`bootstrap`), the add-ons enabled at
//! create (`addons`), the wait until every node is Ready (`validate`) and the teardown
//! (`delete`). The CLI (`cli::cluster`) only turns flags into settings and prints; every
//! setting is checked before the first AWS call.

pub mod addons;
pub mod bootstrap;
pub mod converge;
pub mod delete;
pub mod settings;
pub mod validate;

use anyhow::{anyhow, bail, Context};

use crate::cli::state::ClusterDir;
use crate::client::ClientConfig;
use crate::cloud::model::{Observed, Role};
use crate::cloud::{aws, ClusterSpec};
use crate::names::{TAG_CLUSTER, TAG_CREATED};
use crate::progress::Reporter;

pub use converge::{create, plan_create, plan_update, update, Plan};
pub use delete::delete;
pub use validate::validate;

/// Where provisioning reports to: progress events, and result lines (what was made, where the
/// client config went) that a front end shows above its progress display.
pub trait Progress: Reporter {
    fn say(&self, line: &str);
    /// The same reporter, for the engines (`cloud`, `bootstrap`) that take a `Reporter`.
    fn events(&self) -> &dyn Reporter;
}

/// The region of the AWS configuration: `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1.
pub fn region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into())
}

/// What AWS holds of a cluster: its resources, its spec (with this machine's public key, if
/// any) and its creation time. Errors when there is no such cluster.
pub struct Recorded {
    pub observed: Observed,
    pub spec: ClusterSpec,
    pub created: String,
}

/// The spec AWS holds for a cluster, with the local key; errors when there is no such cluster.
pub async fn recorded(aws: &aws::Aws, name: &str) -> anyhow::Result<Recorded> {
    crate::cloud::check_name(name).map_err(|e| anyhow!(e))?;
    let o = aws::observe(aws, name).await?;
    let Some(vpc) = o.vpcs.first() else {
        if o.is_empty() {
            bail!(
                "no cluster named {name:?} in {} (nothing is tagged {TAG_CLUSTER}={name}); hint: `orkops get clusters` lists them",
                aws.region
            );
        }
        bail!(
            "cluster {name}: its VPC is gone, so its spec is too ({} resources are left); hint: `orkops delete cluster {name} --yes` removes them",
            o.count()
        );
    };
    let mut spec = ClusterSpec::from_tags(name, &aws.region, &vpc.tags).map_err(|e| anyhow!(e))?;
    spec.ssh_public_key = ClusterDir::of(name).public_key().unwrap_or_default();
    let created = vpc.tags.get(TAG_CREATED).cloned().unwrap_or_else(now);
    Ok(Recorded {
        observed: o,
        spec,
        created,
    })
}

/// Now, as the creation tags write it.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The admin client configuration of a cluster: the API load balancer first, then each master
/// (a client tries them in order).
pub fn admin_config(
    name: &str,
    o: &Observed,
    ports: &crate::cloud::Ports,
    ca: &str,
    token: &str,
) -> ClientConfig {
    let mut endpoints = Vec::new();
    if let Some(lb) = o.api_load_balancer() {
        endpoints.push(format!("https://{}:{}", lb.dns, ports.api));
    }
    for m in o.instances_of(Role::Master) {
        if let Some(a) = m.address() {
            endpoints.push(format!("https://{a}:{}", ports.api));
        }
    }
    ClientConfig::new(Some(name), endpoints, ca, token)
}

/// Where the client configuration goes: `--config`, `$ORKOPS_CONFIG`, or `~/.orkops/config`.
pub fn config_target(flag: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(crate::client::config::ENV_VAR).filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    ClientConfig::default_path().context("HOME is not set: pass --config FILE")
}

/// Writes the client configuration to `target` (saying so when it held another cluster) and
/// into the cluster's directory.
pub fn write_client_config(
    progress: &dyn Progress,
    dir: &ClusterDir,
    target: &std::path::Path,
    cfg: &ClientConfig,
) -> anyhow::Result<()> {
    if let Ok(old) = ClientConfig::load(target) {
        if old.cluster != cfg.cluster {
            progress.say(&format!(
                "(the client config {} was cluster {}; `orkops export config {}` brings it back)",
                target.display(),
                old.cluster.as_deref().unwrap_or("?"),
                old.cluster.as_deref().unwrap_or("NAME")
            ));
        }
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    cfg.save(target)?;
    cfg.save(&dir.file("config"))?;
    Ok(())
}

/// The nodes a cluster's instances should register as.
pub fn expected_nodes(o: &Observed) -> Vec<String> {
    o.instances_of(Role::Node).map(|i| i.name.clone()).collect()
}
