//! The validation of a cluster: its API answers and every node the cluster made is Ready.
//! `create` and `update` wait for it after the bootstrap; `validate cluster` checks once or
//! waits (`--wait`).

use std::time::Duration;

use anyhow::bail;

use super::settings::ValidateSettings;
use crate::api::Kind;
use crate::cli::state::ClusterDir;
use crate::client::{ApiClient, ClientConfig};

/// Lists the nodes; returns (report, valid). Valid: the API answers and every expected node
/// (every listed node when none is expected) is Ready.
async fn check_cluster(api: &ApiClient, expected: &[String]) -> (String, bool) {
    let list = match api.list(Kind::Node, None, &[]).await {
        Ok(l) => l,
        Err(e) => return (format!("the API does not answer: {e}\n"), false),
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ready = |n: &serde_json::Value| {
        n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let mut rows = Vec::new();
    let mut valid = true;
    let mut names: Vec<String> = items
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for e in expected {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names.sort();
    for n in &names {
        let node = items.iter().find(|i| i["metadata"]["name"] == n.as_str());
        let status = match node {
            None => "missing (not registered)".to_string(),
            Some(v) if ready(v) => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
        };
        if status != "Ready" && (expected.is_empty() || expected.contains(n)) {
            valid = false;
        }
        rows.push(vec![n.clone(), status]);
    }
    if names.is_empty() {
        valid = false;
    }
    let mut out = crate::cli::printer::table(&["NODE", "STATUS"], &rows);
    out.push_str(if valid {
        "the cluster is valid: the API answers and every node is Ready\n"
    } else {
        "the cluster is not valid yet\n"
    });
    (out, valid)
}

/// Checks until valid, or until `wait` passes (checks once without it).
pub async fn wait_valid(
    cfg: &ClientConfig,
    expected: &[String],
    wait: Option<Duration>,
    progress: &dyn crate::progress::Reporter,
) -> anyhow::Result<String> {
    let api = ApiClient::new(cfg)?;
    let start = std::time::Instant::now();
    loop {
        let (report, valid) = check_cluster(&api, expected).await;
        if valid {
            progress.report(crate::progress::Event::line("validate", "every node is Ready").done());
            return Ok(report);
        }
        match wait {
            Some(w) if start.elapsed() < w => {
                let waiting = report
                    .lines()
                    .filter(|l| l.contains("missing") || l.contains("NotReady"))
                    .filter_map(|l| l.split_whitespace().next())
                    .collect::<Vec<_>>()
                    .join(", ");
                progress.report(crate::progress::Event::line(
                    "validate",
                    format!(
                        "waiting for {}",
                        if waiting.is_empty() {
                            "the API"
                        } else {
                            &waiting
                        }
                    ),
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => bail!(
                "{report}cluster {} is not valid{}",
                cfg.cluster.as_deref().unwrap_or(""),
                wait.map(|w| format!(" after {} s", w.as_secs()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// `validate cluster`: the report of a valid cluster, or an error holding the report.
pub async fn validate(s: &ValidateSettings) -> anyhow::Result<String> {
    let (cfg, expected) = match &s.name {
        Some(name) => {
            let aws = crate::cloud::aws::connect(&super::region()).await?;
            let r = super::recorded(&aws, name).await?;
            let cfg = match ClientConfig::load(&ClusterDir::of(name).file("config")) {
                Ok(c) => c,
                Err(_) => ClientConfig::load(&ClientConfig::locate(s.config.as_deref())?)?,
            };
            if cfg.cluster.as_deref() != Some(name.as_str()) {
                bail!("the client config is for cluster {:?}, not {name}; hint: `orkops export config {name}`", cfg.cluster);
            }
            (cfg, super::expected_nodes(&r.observed))
        }
        None => (
            ClientConfig::load(&ClientConfig::locate(s.config.as_deref())?)?,
            Vec::new(),
        ),
    };
    wait_valid(&cfg, &expected, s.wait, &crate::progress::Quiet).await
}
