//! `orkops cordon|uncordon|drain NODE`, as kubectl's do them through the API: cordoning sets
//! the Node's `spec.unschedulable`; draining cordons, then evicts every pod of the node through
//! `pods/NAME/eviction` (so that PodDisruptionBudgets hold), retrying each refused eviction
//! every 5 seconds and naming the budget in the way, and waits until the pods are gone.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::{json, Value};

use super::args::DrainArgs;
use super::Session;
use crate::api::Kind;
use crate::client::ClientError;

/// How long a refused eviction waits before it is asked again (kubectl's interval).
const RETRY: Duration = Duration::from_secs(5);

pub async fn cordon(s: &Session, node: &str, on: bool) -> anyhow::Result<()> {
    let n = s
        .client
        .get(Kind::Node, None, node)
        .await
        .with_context(|| format!("cannot read node {node:?} (see `orkops get nodes`)"))?;
    let now = n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
    let word = if on { "cordoned" } else { "uncordoned" };
    if now == on {
        println!("node/{node} already {word}");
        return Ok(());
    }
    let patch = json!({"spec": {"unschedulable": if on { json!(true) } else { Value::Null }}});
    s.client.patch(Kind::Node, None, node, &patch).await?;
    println!("node/{node} {word}");
    Ok(())
}

/// Why a pod of the node may not be evicted without a flag, in kubectl's words; `None` when it
/// may, `Some(Ok(()))` when it is skipped.
fn refusal(p: &Value, a: &DrainArgs) -> Option<Result<&'static str, String>> {
    let meta = &p["metadata"];
    if meta
        .pointer("/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Some(Ok("mirror"));
    }
    let controller = meta["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true);
    if controller.is_some_and(|c| c["kind"] == "DaemonSet") {
        return if a.ignore_daemonsets {
            Some(Ok("DaemonSet-managed"))
        } else {
            Some(Err(
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)".into(),
            ))
        };
    }
    let finished = matches!(
        p.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if finished {
        return None;
    }
    if controller.is_none() && !a.force {
        return Some(Err(
            "cannot delete Pods that declare no controller (use --force to override)".into(),
        ));
    }
    let empty_dir = p
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| v.get("emptyDir").is_some());
    if empty_dir && !a.delete_emptydir_data {
        return Some(Err(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override)".into(),
        ));
    }
    None
}

fn id(p: &Value) -> (String, String, String) {
    let s = |k: &str| p["metadata"][k].as_str().unwrap_or("").to_string();
    (s("namespace"), s("name"), s("uid"))
}

/// Evicts one pod until the API lets it go, then waits until it is gone (or replaced by a pod
/// of the same name). Refusals are printed as they come, with the budget's words.
async fn evict(
    s: &Session,
    p: &Value,
    a: &DrainArgs,
    deadline: Option<Instant>,
) -> anyhow::Result<()> {
    let (ns, name, uid) = id(p);
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns}});
    if a.grace_period >= 0 {
        body["deleteOptions"] = json!({"gracePeriodSeconds": a.grace_period});
    }
    let path = format!("{}/eviction", Kind::Pod.path(Some(&ns), Some(&name)));
    let late = || deadline.is_some_and(|d| Instant::now() >= d);
    loop {
        match s
            .client
            .request(Method::POST, &path, &[], Some(&body))
            .await
        {
            Ok(_) => break,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(ClientError::Api(st)) if st.code == 429 => {
                let why = st
                    .causes()
                    .iter()
                    .map(|c| c.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                let why = if why.is_empty() {
                    st.message.clone()
                } else {
                    format!("{} {why}", st.message)
                };
                if late() {
                    bail!("pod {ns}/{name} could not be evicted before the timeout: {why}");
                }
                eprintln!(
                    "error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {why}"
                );
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot evict pod {ns}/{name}")),
        }
    }
    loop {
        match s.client.get(Kind::Pod, Some(&ns), &name).await {
            Err(e) if e.is_not_found() => break,
            Ok(v) if v["metadata"]["uid"].as_str() != Some(uid.as_str()) => break,
            Ok(_) if late() => {
                bail!("pod {ns}/{name} was evicted but is still terminating at the timeout")
            }
            Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(e) => return Err(e).with_context(|| format!("cannot follow pod {ns}/{name}")),
        }
    }
    println!("pod/{name} evicted");
    Ok(())
}

pub async fn drain(s: &Session, a: &DrainArgs) -> anyhow::Result<()> {
    cordon(s, &a.node, true).await?;
    let list = s
        .client
        .list(
            Kind::Pod,
            None,
            &[("fieldSelector", format!("spec.nodeName={}", a.node))],
        )
        .await?;
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let mut refused = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let mut todo = Vec::new();
    for p in &pods {
        let (ns, name, _) = id(p);
        match refusal(p, a) {
            Some(Err(why)) => refused.push(format!("{why}: {ns}/{name}")),
            Some(Ok(what)) => skipped.push(format!("{ns}/{name} ({what})")),
            None => todo.push(p),
        }
    }
    if !refused.is_empty() {
        bail!(
            "cannot drain node {:?} (it stays cordoned; `orkops uncordon {}` undoes that):\n  {}",
            a.node,
            a.node,
            refused.join("\n  ")
        );
    }
    if !skipped.is_empty() {
        eprintln!("Warning: ignoring {}", skipped.join(", "));
    }
    let deadline = (a.timeout > Duration::ZERO).then(|| Instant::now() + a.timeout);
    let results = futures::future::join_all(todo.iter().map(|p| evict(s, p, a, deadline))).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(Result::err)
        .map(|e| format!("{e:#}"))
        .collect();
    if !failed.is_empty() {
        bail!(
            "node {:?} is not drained (it stays cordoned):\n  {}",
            a.node,
            failed.join("\n  ")
        );
    }
    println!("node/{} drained", a.node);
    Ok(())
}
