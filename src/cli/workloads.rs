//! Commands on workload controllers: `scale` and `rollout status|restart|history|undo` for
//! deployments (their revisions are the ReplicaSets they control).

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{json, Value};

use super::args::{RolloutArgs, RunArgs, ScaleArgs, UndoArgs};
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

/// One revision of a deployment: one of its replica sets.
struct Revision {
    number: i64,
    /// The set's template as a deployment template (without `pod-template-hash`).
    template: Value,
    hash: String,
    cause: Option<String>,
}

/// The deployment, its current template hash, and its revisions (oldest first), read from the
/// replica sets it controls.
async fn history(s: &Session, name: &str) -> anyhow::Result<(Value, String, Vec<Revision>)> {
    use crate::api::workloads::{Deployment, ReplicaSet};
    use crate::controllers::deployments::{
        revision_of, template_hash, template_of, CHANGE_CAUSE, HASH_LABEL,
    };
    let d = s
        .client
        .get(Kind::Deployment, Some(&s.namespace), name)
        .await?;
    let typed: Deployment = serde_json::from_value(d.clone())?;
    let hash = template_hash(&serde_json::to_value(&typed.spec.template)?);
    let uid = typed.metadata.uid.clone().unwrap_or_default();
    let list = s
        .client
        .list(
            Kind::ReplicaSet,
            Some(&s.namespace),
            &[("labelSelector", HASH_LABEL.to_string())],
        )
        .await?;
    let sets: Vec<ReplicaSet> = serde_json::from_value(list["items"].clone())?;
    let mut revs: Vec<Revision> = sets
        .iter()
        .filter(|r| crate::controllers::controller_of(&r.metadata) == Some(uid.as_str()))
        .map(|r| Revision {
            number: revision_of(r),
            template: template_of(r),
            hash: r
                .metadata
                .labels
                .get(HASH_LABEL)
                .cloned()
                .unwrap_or_default(),
            cause: r.metadata.annotations.get(CHANGE_CAUSE).cloned(),
        })
        .collect();
    revs.sort_by_key(|r| r.number);
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
                .template
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["image"].as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                r.number.to_string(),
                image,
                r.cause.clone().unwrap_or_else(|| "<none>".into()),
                if r.hash == hash {
                    "*".into()
                } else {
                    String::new()
                },
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
        .find(|r| r.hash == hash)
        .map(|r| r.number)
        .unwrap_or(i64::MAX);
    let target = match a.to_revision {
        Some(n) => revs
            .iter()
            .find(|r| r.number == n)
            .ok_or_else(|| anyhow::anyhow!("--to-revision {n}: deployment {name:?} has no such revision (see `orkops rollout history deployment/{name}`)"))?,
        None => revs
            .iter()
            .rev()
            .find(|r| r.number < current)
            .ok_or_else(|| anyhow::anyhow!("deployment {name:?} has no previous revision to roll back to"))?,
    };
    let n = target.number;
    if n == current {
        println!("deployment.apps/{name} is already at revision {n}");
        return Ok(());
    }
    d["spec"]["template"] = target.template.clone();
    if let Some(m) = d["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    s.client
        .replace(Kind::Deployment, Some(&s.namespace), name, &d)
        .await?;
    println!("deployment.apps/{name} rolled back to revision {n}");
    Ok(())
}

/// The pod's phase, and why it cannot start if a container waits on an error.
fn run_state(p: &Value) -> (String, Option<String>) {
    let phase = p
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
        .to_string();
    let stuck = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/state/waiting"))
        .find(|w| {
            matches!(
                w["reason"].as_str(),
                Some(
                    "ErrImagePull"
                        | "ErrImageNeverPull"
                        | "CreateContainerConfigError"
                        | "CreateContainerError"
                        | "RunContainerError"
                )
            )
        })
        .map(|w| {
            format!(
                "{}: {}",
                w["reason"].as_str().unwrap_or(""),
                w["message"].as_str().unwrap_or("")
            )
        });
    (phase, stuck)
}

pub async fn run(s: &Session, a: &RunArgs) -> anyhow::Result<()> {
    if !crate::api::labels::is_dns_label(&a.name) {
        bail!(
            "{:?} is not a valid pod name (lower-case letters, digits and '-')",
            a.name
        );
    }
    let attach = a.stdin || a.tty;
    if a.rm && !attach {
        bail!("--rm only makes sense for an attached pod: add -i (and -t for a terminal)");
    }
    let restart = a
        .restart
        .clone()
        .unwrap_or_else(|| if attach { "Never" } else { "Always" }.into());
    if !["Always", "OnFailure", "Never"].contains(&restart.as_str()) {
        bail!("--restart {restart:?}: use Always, OnFailure or Never");
    }
    let mut env = Vec::new();
    for e in &a.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--env {e:?} is not KEY=VALUE"))?;
        env.push(json!({"name": k, "value": v}));
    }
    let mut container =
        json!({"name": a.name, "image": a.image, "env": env, "stdin": a.stdin, "tty": a.tty});
    if !a.command.is_empty() {
        container["command"] = json!(a.command);
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": a.name, "namespace": s.namespace, "labels": {"run": a.name}},
        "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1, "containers": [container]},
    });
    super::stream::warn_without_terminal(a.tty);
    s.client.create(Kind::Pod, Some(&s.namespace), &pod).await?;
    if !attach {
        println!("pod/{} created", a.name);
        return Ok(());
    }
    let result = tokio::select! {
        r = attach_when_running(s, &a.name, a.stdin, a.tty) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if a.rm {
        if let Err(e) = s
            .client
            .delete(
                Kind::Pod,
                Some(&s.namespace),
                &a.name,
                &[("gracePeriodSeconds", "1".into())],
            )
            .await
        {
            eprintln!("warning: cannot delete pod {:?}: {e}", a.name);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match s.client.get(Kind::Pod, Some(&s.namespace), &a.name).await {
                Err(e) if e.is_not_found() => break,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        eprintln!("pod \"{}\" deleted", a.name);
    }
    result
}

async fn attach_when_running(
    s: &Session,
    name: &str,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut attached = false;
    let mut refused: Option<anyhow::Error> = None;
    let mut retry_until = Instant::now();
    loop {
        let p = s.client.get(Kind::Pod, Some(&s.namespace), name).await?;
        let (phase, stuck) = run_state(&p);
        if let Some(why) = stuck {
            bail!("pod {name:?} cannot start: {why}");
        }
        match phase.as_str() {
            "Running" if !attached => {
                attached = true;
                match super::stream::session(s, name, "attach", Vec::new(), stdin, tty).await {
                    Err(e)
                        if e.downcast_ref::<crate::client::ClientError>()
                            .is_some_and(|c| c.code() == Some(400)) =>
                    {
                        // it may have ended between our look and the attach: report it as
                        // finished if it did, else the error
                        refused = Some(e);
                        retry_until = Instant::now() + Duration::from_secs(5);
                        continue;
                    }
                    other => return other,
                }
            }
            "Running" | "Pending"
                if refused.is_some() && Instant::now() > deadline.min(retry_until) =>
            {
                return Err(refused
                    .take()
                    .unwrap_or_else(|| anyhow::anyhow!("attach failed")));
            }
            "Succeeded" | "Failed" => {
                // it finished before we could attach: show what it printed
                let logs = s
                    .client
                    .send_streaming(
                        reqwest::Method::GET,
                        &format!("{}/log", Kind::Pod.path(Some(&s.namespace), Some(name))),
                        &[],
                        &[],
                        None,
                    )
                    .await?
                    .bytes()
                    .await?;
                use std::io::Write;
                std::io::stdout().write_all(&logs)?;
                let code = p
                    .pointer("/status/containerStatuses/0/state/terminated/exitCode")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                return if code == 0 {
                    Ok(())
                } else {
                    Err(crate::RemoteExit(code.clamp(1, 255) as u8).into())
                };
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("pod {name:?} did not start within 300s (`orkops describe pod {name}` says why)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
