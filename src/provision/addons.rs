//! The add-ons `create cluster --addons` names: each is looked up and rendered once before
//! anything is created (`check`), and enabled through the API once the nodes are Ready
//! (`enable`).

use anyhow::anyhow;

use super::Progress;
use crate::addons::{Bundle, ClusterFacts, Params};
use crate::client::{ApiClient, ClientConfig};

/// The built-in bundles `names` asks for, each rendered once, so that a bad name or template
/// is told before the infrastructure is made.
pub fn check(cluster: &str, names: &[String]) -> Result<Vec<Bundle>, String> {
    let mut bundles = Vec::new();
    for name in names {
        let bundle = Bundle::builtin(name).map_err(|e| format!("--addons: {e}"))?;
        let facts = ClusterFacts {
            cluster_name: cluster.to_string(),
            ..Default::default()
        };
        bundle
            .render(&facts, &[])
            .map_err(|e| format!("--addons {name}: {e}"))?;
        bundles.push(bundle);
    }
    Ok(bundles)
}

/// Enables `bundles` through the API of the cluster `cfg` is for.
pub async fn enable(
    cfg: &ClientConfig,
    bundles: &[Bundle],
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    if bundles.is_empty() {
        return Ok(());
    }
    let api = ApiClient::new(cfg)?;
    let facts = ClusterFacts::read(&api, cfg.cluster.as_deref()).await?;
    for b in bundles {
        let report = crate::addons::enable(
            &api,
            b,
            &Params {
                facts: facts.clone(),
                set: Vec::new(),
            },
        )
        .await
        .map_err(|e| anyhow!("add-on {}: {e}", b.name()))?;
        progress.report(
            crate::progress::Event::line(
                "addons",
                format!(
                    "enabled {} {} ({} objects)",
                    report.name,
                    report.version,
                    report.objects.len()
                ),
            )
            .done(),
        );
    }
    Ok(())
}
