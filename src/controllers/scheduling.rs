//! The scheduler's executor: one pass over the pending pods (read from the shared caches)
//! through the pure `scheduler::schedule`, then the bindings, the claims pinned to the chosen
//! node, and the `PodScheduled=False` condition of the pods that fit nowhere.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};

use super::{scheduler, Api, ApiError};
use crate::api::core::{Node, Pod};
use crate::api::{About, Kind};

/// Whether the scheduler is still to place `p`: no node, not being deleted, not finished, and
/// for this scheduler (a pod naming another `schedulerName` waits for that one, as in
/// Kubernetes).
pub(super) fn unbound(p: &Pod) -> bool {
    let ours = p
        .spec
        .scheduler_name
        .as_deref()
        .is_none_or(|n| n.is_empty() || n == crate::api::podfields::DEFAULT_SCHEDULER);
    ours && p.spec.node_name.as_deref().unwrap_or("").is_empty()
        && p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// Records that claim `claim`'s volume is to live on `node` (the annotation Kubernetes' scheduler
/// sets on the claims of a `WaitForFirstConsumer` class); the PersistentVolume binder then
/// binds it there, or has a volume provisioned there.
async fn pin_claim(api: &Api, ns: &str, claim: &str, node: &str) -> Result<(), ApiError> {
    const SELECTED: &str = super::volumes::SELECTED_NODE;
    let mut pvc = api
        .get(Kind::PersistentVolumeClaim, Some(ns), claim)
        .await?;
    match pvc
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SELECTED))
        .and_then(Value::as_str)
    {
        Some(n) if n == node => {}
        Some(n) => {
            return Err(ApiError::Conflict(format!(
                "claim {ns}/{claim} already lives on node {n}"
            )))
        }
        None => {
            pvc["metadata"]["annotations"][SELECTED] = json!(node);
            // keep the resourceVersion: a concurrent placement loses instead of overwriting
            api.replace(Kind::PersistentVolumeClaim, Some(ns), claim, pvc.clone())
                .await?;
        }
    }
    Ok(())
}

fn outcome_uid(o: &scheduler::Outcome) -> &str {
    match o {
        scheduler::Outcome::Bind { uid, .. } | scheduler::Outcome::Unschedulable { uid, .. } => uid,
    }
}

/// What the pending pods' claims say of where they may go (see `volumes::placement`): copies
/// of the pods whose bound volumes or classes constrain them, by uid, and the outcomes of
/// those that must wait for their claims.
async fn volume_placements(
    api: &Api,
    pending: &[&Pod],
    claims: &[Arc<crate::api::core::PersistentVolumeClaim>],
) -> Result<(HashMap<String, Pod>, Vec<scheduler::Outcome>), ApiError> {
    use super::volumes::{placement, Placement, World};
    let mut constrained = HashMap::new();
    let mut waiting = Vec::new();
    let with_claims: Vec<&&Pod> = pending
        .iter()
        .filter(|p| {
            p.spec
                .volumes
                .iter()
                .any(|v| v.persistent_volume_claim.is_some())
        })
        .collect();
    if with_claims.is_empty() {
        return Ok((constrained, waiting));
    }
    let volumes = api.shared(Kind::PersistentVolume).await?;
    let classes = api.shared(Kind::StorageClass).await?;
    let node_list: Vec<Arc<Node>> = api.shared(Kind::Node).await?;
    let w = World {
        claims,
        volumes: &volumes,
        classes: &classes,
        nodes: &node_list,
    };
    for p in with_claims {
        let uid = p.metadata.uid.clone().unwrap_or_default();
        match placement(p, &w) {
            Placement::AsIs => {}
            Placement::Constrained(copy) => {
                constrained.insert(uid, *copy);
            }
            Placement::Unschedulable(message) => waiting.push(scheduler::Outcome::Unschedulable {
                namespace: p.metadata.namespace().to_string(),
                name: p.metadata.name().to_string(),
                uid,
                message,
            }),
        }
    }
    Ok((constrained, waiting))
}

/// One pass of the scheduler over every pending pod, from the caches.
pub(super) async fn pass(ctx: &super::runtime::Ctx) -> Result<(), ApiError> {
    let api = &ctx.api;
    // the pass runs on every pod change: with nothing to place it returns without touching
    // a pod (the pods cache keeps its unbound pods apart, exactly once synced; unsynced,
    // the list below decides)
    if ctx.caches.pods.revision() > 0 && ctx.caches.pods.marked_len() == 0 {
        return Ok(());
    }
    let pods: Vec<std::sync::Arc<Pod>> = api.shared(Kind::Pod).await?;
    let (pending, bound): (Vec<&Pod>, Vec<&Pod>) =
        pods.iter().map(|p| &**p).partition(|p| unbound(p));
    if pending.is_empty() {
        return Ok(());
    }
    let nodes: Vec<Node> = api.list(Kind::Node).await?;
    let by_uid: HashMap<&str, &Pod> = pending
        .iter()
        .map(|p| (p.metadata.uid.as_deref().unwrap_or(""), *p))
        .collect();
    let pvcs: Vec<Arc<crate::api::core::PersistentVolumeClaim>> =
        api.shared(Kind::PersistentVolumeClaim).await?;
    let (constrained, mut waiting) = volume_placements(api, &pending, &pvcs).await?;
    let pending: Vec<&Pod> = pending
        .iter()
        .filter(|p| {
            !waiting
                .iter()
                .any(|o| outcome_uid(o) == p.metadata.uid.as_deref().unwrap_or(""))
        })
        .map(|p| {
            constrained
                .get(p.metadata.uid.as_deref().unwrap_or(""))
                .unwrap_or(*p)
        })
        .collect();
    let claims: scheduler::Claims = pvcs
        .iter()
        .map(|c| {
            let key = (
                c.metadata.namespace().to_string(),
                c.metadata.name().to_string(),
            );
            let node = c
                .metadata
                .annotations
                .get("volume.kubernetes.io/selected-node")
                .cloned();
            (key, node)
        })
        .collect();
    let mut outcomes = scheduler::schedule(&pending, &nodes, &bound, &claims);
    outcomes.append(&mut waiting);
    let work = outcomes.into_iter().map(|o| {
        let api = api.clone();
        let pod = by_uid.get(outcome_uid(&o)).map(|p| (*p).clone());
        async move {
            match o {
                scheduler::Outcome::Bind { namespace, name, uid, node, pin_claims } => {
                    for claim in &pin_claims {
                        if let Err(e) = pin_claim(&api, &namespace, claim, &node).await {
                            tracing::warn!(claim = %format!("{namespace}/{claim}"), error = %e, "cannot place a claim; the pod waits");
                            return;
                        }
                    }
                    match api.bind(&namespace, &name, &uid, &node).await {
                        Ok(()) => {
                            api.event(About { ns: &namespace, kind: Kind::Pod, name: &name, uid: Some(&uid) }, "Normal", "Scheduled", &format!("Successfully assigned {namespace}/{name} to {node}"), "orkops-scheduler").await;
                        }
                        Err(ApiError::Conflict(_) | ApiError::NotFound { .. }) => {}
                        Err(e) => tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "cannot bind"),
                    }
                }
                scheduler::Outcome::Unschedulable { namespace, name, uid, message } => {
                    let Some(pod) = pod else { return };
                    let mut status = pod.status.clone().unwrap_or_default();
                    let known = status.conditions.iter().any(|c| c.type_ == "PodScheduled" && c.message.as_deref() == Some(message.as_str()));
                    if known {
                        return;
                    }
                    status.phase.get_or_insert_with(|| "Pending".into());
                    status.conditions.retain(|c| c.type_ != "PodScheduled");
                    status.conditions.push(crate::api::meta::Condition {
                        type_: "PodScheduled".into(),
                        status: "False".into(),
                        reason: Some("Unschedulable".into()),
                        message: Some(message.clone()),
                        last_transition_time: Some(Utc::now()),
                        ..Default::default()
                    });
                    let _ = api.replace_status(Kind::Pod, Some(&namespace), &name, serde_json::to_value(&status).unwrap_or_default()).await;
                    api.event(About { ns: &namespace, kind: Kind::Pod, name: &name, uid: Some(&uid) }, "Warning", "FailedScheduling", &message, "orkops-scheduler").await;
                }
            }
        }
    });
    futures::stream::iter(work)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    Ok(())
}
