//! Commands on workload controllers: `scale` and `rollout status|restart` for deployments.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::args::{RolloutArgs, ScaleArgs, UndoArgs};
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

/// The deployment, its current template hash, and its revisions (oldest first).
async fn history(s: &Session, name: &str) -> anyhow::Result<(Value, String, Vec<Value>)> {
    use crate::controllers::deployments::{template_hash, HASH_LABEL};
    let d = s
        .client
        .get(Kind::Deployment, Some(&s.namespace), name)
        .await?;
    let typed: crate::api::workloads::Deployment = serde_json::from_value(d.clone())?;
    let hash = template_hash(&serde_json::to_value(&typed.spec.template)?);
    let uid = d.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let list = s
        .client
        .list(
            Kind::ControllerRevision,
            Some(&s.namespace),
            &[("labelSelector", HASH_LABEL.to_string())],
        )
        .await?;
    let mut revs: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r.pointer("/metadata/ownerReferences/0/uid") == Some(&uid))
        .cloned()
        .collect();
    revs.sort_by_key(|r| r["revision"].as_i64().unwrap_or(0));
    Ok((d, hash, revs))
}

pub async fn rollout_history(s: &Session, a: &RolloutArgs) -> anyhow::Result<()> {
    let name = deployment_name(&a.target, &a.name)?;
    let (_, hash, revs) = history(s, name).await?;
    println!("deployment.apps/{name}");
    let rows: Vec<Vec<String>> = revs
        .iter()
        .map(|r| {
            let image = r
                .pointer("/data/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["image"].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let current = r
                .pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str());
            vec![
                r["revision"].as_i64().unwrap_or(0).to_string(),
                image,
                r.pointer("/metadata/annotations/kubernetes.io~1change-cause")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
                    .to_string(),
                if current { "*".into() } else { String::new() },
            ]
        })
        .collect();
    print!(
        "{}",
        super::printer::table(&["REVISION", "IMAGES", "CHANGE-CAUSE", "CURRENT"], &rows)
    );
    Ok(())
}

pub async fn rollout_undo(s: &Session, a: &UndoArgs) -> anyhow::Result<()> {
    let name = deployment_name(&a.target, &a.name)?;
    let (mut d, hash, revs) = history(s, name).await?;
    let current = revs
        .iter()
        .find(|r| {
            r.pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str())
        })
        .and_then(|r| r["revision"].as_i64())
        .unwrap_or(i64::MAX);
    let target = match a.to_revision {
        Some(n) => revs
            .iter()
            .find(|r| r["revision"].as_i64() == Some(n))
            .ok_or_else(|| anyhow::anyhow!("--to-revision {n}: deployment {name:?} has no such revision (see `orkops rollout history deployment/{name}`)"))?,
        None => revs
            .iter()
            .rev()
            .find(|r| r["revision"].as_i64().is_some_and(|n| n < current))
            .ok_or_else(|| anyhow::anyhow!("deployment {name:?} has no previous revision to roll back to"))?,
    };
    let n = target["revision"].as_i64().unwrap_or(0);
    if n == current {
        println!("deployment.apps/{name} is already at revision {n}");
        return Ok(());
    }
    d["spec"]["template"] = target["data"].clone();
    if let Some(m) = d["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    s.client
        .replace(Kind::Deployment, Some(&s.namespace), name, &d)
        .await?;
    println!("deployment.apps/{name} rolled back to revision {n}");
    Ok(())
}
