//! `orkops export kubeconfig [CLUSTER] [--kubeconfig PATH]`, and the kubeconfig steps of
//! `create cluster` (merge the cluster's context) and `delete cluster` (remove it), as kops
//! does them; the file format and the merge live in `crate::client::kubeconfig`.

use std::path::Path;

use anyhow::{bail, Context};

use super::state::ClusterDir;
use crate::client::kubeconfig;
use crate::client::ClientConfig;

/// Merges cluster `name` (its admin config `cfg`) into the kubeconfig (`flag`, else
/// `$KUBECONFIG`'s first file, else `~/.kube/config`); returns the path written.
pub fn merge(flag: Option<&Path>, name: &str, cfg: &ClientConfig) -> anyhow::Result<String> {
    let path = kubeconfig::location(flag)?;
    kubeconfig::save(&path, name, cfg)?;
    Ok(path.display().to_string())
}

/// Removes cluster `name`'s context, cluster and user from the kubeconfig, saying so; a
/// kubeconfig that cannot be changed is a warning (the cluster is gone all the same).
pub fn forget(name: &str) {
    let result =
        kubeconfig::location(None).and_then(|p| kubeconfig::delete(&p, name).map(|r| (p, r)));
    match result {
        Ok((p, true)) => println!("removed context {name} from kubeconfig {}", p.display()),
        Ok((_, false)) => {}
        Err(e) => eprintln!("warning: the kubeconfig still has cluster {name}: {e}"),
    }
}

/// The admin client config of cluster `name`: the one `create cluster` kept for it, else the
/// client config in use if it is that cluster's.
fn config_of(cli: &super::args::Cli, name: &str) -> anyhow::Result<ClientConfig> {
    let kept = ClusterDir::of(name).file("config");
    if let Ok(cfg) = ClientConfig::load(&kept) {
        return Ok(cfg);
    }
    if let Ok(path) = ClientConfig::locate(cli.config.as_deref()) {
        let cfg = ClientConfig::load(&path)?;
        if cfg.cluster.as_deref() == Some(name) {
            return Ok(cfg);
        }
    }
    bail!(
        "no client config of cluster {name} on this machine ({}); hint: `orkops export config {name}` first",
        kept.display()
    )
}

/// `orkops export kubeconfig [CLUSTER] [--kubeconfig PATH]`.
pub fn export(cli: &super::args::Cli, a: &super::args::ExportKubeconfigArgs) -> anyhow::Result<()> {
    let (name, cfg) = match &a.name {
        Some(name) => (name.clone(), config_of(cli, name)?),
        None => {
            let path = ClientConfig::locate(cli.config.as_deref())?;
            let cfg = ClientConfig::load(&path)?;
            let name = cfg.cluster.clone().with_context(|| {
                format!("{}: names no cluster; hint: pass CLUSTER", path.display())
            })?;
            (name, cfg)
        }
    };
    let path = merge(a.kubeconfig.as_deref(), &name, &cfg)?;
    println!(
        "kubeconfig {path}: context {name} (cluster {name}, user {}) is the current context",
        kubeconfig::user_name(&name)
    );
    Ok(())
}
