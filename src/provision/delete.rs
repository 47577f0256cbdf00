//! The teardown of clusters: everything tagged with a cluster's name, found in AWS (also when
//! this machine lost the local state), deleted in dependency order until nothing is left;
//! then the local state and the kubeconfig context go. Also the janitor's sweep of every
//! cluster older than a given age.

use std::time::Instant;

use anyhow::bail;

use super::settings::DeleteSettings;
use super::Progress;
use crate::cli::state::ClusterDir;
use crate::cloud::aws;
use crate::names::TAG_CLUSTER;

/// `delete cluster NAME` or `delete cluster --all --older-than D`; without `yes`, only says
/// what would be deleted.
pub async fn delete(
    aws: &aws::Aws,
    s: &DeleteSettings,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    match s {
        DeleteSettings::One { name, yes } => one(aws, name, *yes, progress).await,
        DeleteSettings::OlderThan { older_than, yes } => {
            let age = chrono::Duration::from_std(*older_than)?;
            let cutoff = chrono::Utc::now() - age;
            let old: Vec<String> = aws::clusters(aws)
                .await?
                .into_iter()
                .filter(|c| c.created.is_some_and(|t| t < cutoff))
                .map(|c| c.name)
                .collect();
            if old.is_empty() {
                progress.say(&format!(
                    "no orkops cluster in {} is older than {}",
                    aws.region,
                    humantime(*older_than)
                ));
            }
            for name in old {
                one(aws, &name, *yes, progress).await?;
            }
            Ok(())
        }
    }
}

/// `1h30m` for 5400 s, as the user would have written it.
fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

async fn one(aws: &aws::Aws, name: &str, yes: bool, progress: &dyn Progress) -> anyhow::Result<()> {
    let started = Instant::now();
    let o = aws::observe(aws, name).await?;
    let dir = ClusterDir::of(name);
    if o.is_empty() {
        progress.say(&format!(
            "cluster {name}: nothing tagged {TAG_CLUSTER}={name} in {}",
            aws.region
        ));
        dir.remove();
        crate::cli::kubeconfig::forget(name);
        return Ok(());
    }
    if !yes {
        for l in o.lines() {
            progress.say(&format!("would delete {l} (cluster {name})"));
        }
        progress.say(&format!(
            "(pass --yes to delete these {} resources)",
            o.count()
        ));
        return Ok(());
    }
    // what appeared while the first pass ran (a master's controller at work) goes in the next
    let mut left = o.clone();
    for _ in 0..3 {
        aws::teardown(aws, &left, progress.events()).await?;
        left = aws::observe(aws, name).await?;
        if left.is_empty() {
            break;
        }
    }
    if !left.is_empty() {
        bail!(
            "cluster {name}: {} resources are still there after the delete: {}; hint: run the delete again",
            left.count(),
            left.lines().join(", ")
        );
    }
    dir.remove();
    crate::cli::kubeconfig::forget(name);
    progress.say(&format!(
        "cluster {name} deleted in {:.1} s ({} resources, {} AWS calls)",
        started.elapsed().as_secs_f64(),
        o.count(),
        aws.call_count()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_print_as_typed() {
        let s = std::time::Duration::from_secs;
        assert_eq!(super::humantime(s(5400)), "1h30m");
        assert_eq!(super::humantime(s(1)), "1s");
        assert_eq!(super::humantime(s(7200)), "2h");
    }
}
