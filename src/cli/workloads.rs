//! Commands on workload controllers: `scale` and `rollout status|restart` for deployments.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::args::{RolloutArgs, ScaleArgs};
use super::Session;
use crate::api::Kind;

/// `deployment/NAME` or `deployment NAME` → NAME.
fn deployment_name<'a>(target: &'a str, name: &'a Option<String>) -> anyhow::Result<&'a str> {
    let (kind, n) = match (target.split_once('/'), name) {
        (Some((k, n)), None) => (k, n),
        (None, Some(n)) => (target, n.as_str()),
        _ => bail!("name the deployment as deployment/NAME or deployment NAME"),
    };
    if Kind::lookup(kind) != Some(Kind::Deployment) {
        bail!("{kind:?}: only deployments can be scaled and rolled out");
    }
    Ok(n)
}

pub async fn scale(s: &Session, a: &ScaleArgs) -> anyhow::Result<()> {
    let name = deployment_name(&a.target, &a.name)?;
    if a.replicas < 0 {
        bail!("--replicas must be 0 or more");
    }
    s.client
        .patch(
            Kind::Deployment,
            Some(&s.namespace),
            name,
            &json!({"spec": {"replicas": a.replicas}}),
        )
        .await?;
    println!("deployment.apps/{name} scaled");
    Ok(())
}

pub async fn rollout_restart(s: &Session, a: &RolloutArgs) -> anyhow::Result<()> {
    let name = deployment_name(&a.target, &a.name)?;
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "orkops.io/restartedAt": chrono::Utc::now().to_rfc3339()}}}}});
    s.client
        .patch(Kind::Deployment, Some(&s.namespace), name, &patch)
        .await?;
    println!("deployment.apps/{name} restarted");
    Ok(())
}

pub async fn rollout_status(s: &Session, a: &RolloutArgs) -> anyhow::Result<()> {
    let name = deployment_name(&a.target, &a.name)?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let mut last = String::new();
    loop {
        let d = s
            .client
            .get(Kind::Deployment, Some(&s.namespace), name)
            .await?;
        let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let (want, generation) = (n("/spec/replicas"), n("/metadata/generation"));
        let (observed, total, updated, ready) = (
            n("/status/observedGeneration"),
            n("/status/replicas"),
            n("/status/updatedReplicas"),
            n("/status/readyReplicas"),
        );
        let line = if observed < generation {
            "Waiting for deployment spec update to be observed...".to_string()
        } else if updated < want {
            format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated...")
        } else if total > updated {
            format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", total - updated)
        } else if ready < want {
            format!("Waiting for deployment {name:?} rollout to finish: {ready} of {want} updated replicas are available...")
        } else {
            println!("deployment {name:?} successfully rolled out");
            return Ok(());
        };
        if line != last {
            println!("{line}");
            last = line;
        }
        if Instant::now() > deadline {
            bail!(
                "deployment {name:?} did not finish rolling out within {}s",
                a.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
