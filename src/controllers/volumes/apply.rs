//! The binder's executor: each [`Action`] of a plan written through the engine as the master,
//! every object read again and replaced at the version read (a concurrent writer wins, and
//! the next pass decides again). Binding writes the volume's half first, as upstream does, so
//! that a claim is never Bound to a volume that does not name it.

use chrono::Utc;
use serde_json::{json, Value};

use super::{Action, Reported, Subject, World, BIND_COMPLETED, BOUND_BY_CONTROLLER};
use crate::api::{About, Kind};
use crate::controllers::{Api, ApiError};

const SOURCE: &str = "orkops-persistentvolume-controller";

fn claim_missing(ns: &str, name: &str) -> ApiError {
    ApiError::NotFound {
        kind: Kind::PersistentVolumeClaim,
        namespace: Some(ns.into()),
        name: name.into(),
    }
}

/// Applies one action.
pub(super) async fn apply(
    api: &Api,
    w: &World<'_>,
    reported: &Reported,
    a: Action,
) -> Result<(), ApiError> {
    match a {
        Action::Bind {
            namespace,
            claim,
            volume,
            by_controller,
        } => bind(api, &namespace, &claim, &volume, by_controller).await,
        Action::Provision {
            namespace,
            claim,
            volume,
        } => {
            let name = crate::api::name_of(&volume).to_string();
            match api.create(Kind::PersistentVolume, "", volume).await {
                Ok(()) => {
                    let uid = w
                        .claims
                        .iter()
                        .find(|c| c.metadata.namespace() == namespace && c.metadata.name() == claim)
                        .and_then(|c| c.metadata.uid.as_deref());
                    let about = About {
                        ns: &namespace,
                        kind: Kind::PersistentVolumeClaim,
                        name: &claim,
                        uid,
                    };
                    let message = format!("Successfully provisioned volume {name}");
                    api.event(about, "Normal", "ProvisioningSucceeded", &message, SOURCE)
                        .await;
                    Ok(())
                }
                Err(ApiError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Action::SetClass {
            namespace,
            claim,
            class,
        } => {
            let mut c = api
                .get(Kind::PersistentVolumeClaim, Some(&namespace), &claim)
                .await?;
            if c.pointer("/spec/storageClassName").is_some() {
                return Ok(());
            }
            c["spec"]["storageClassName"] = json!(class);
            api.replace(Kind::PersistentVolumeClaim, Some(&namespace), &claim, c)
                .await
        }
        Action::ClaimPhase {
            namespace,
            claim,
            phase,
        } => {
            // a claim that is not bound has no volume's capacity or access modes
            let status = json!({"phase": phase});
            api.replace_status(
                Kind::PersistentVolumeClaim,
                Some(&namespace),
                &claim,
                status,
            )
            .await
        }
        Action::VolumePhase {
            volume,
            phase,
            message,
        } => {
            let mut status = json!({"phase": phase, "lastPhaseTransitionTime": Utc::now()});
            if let Some(m) = message {
                status["message"] = json!(m);
            }
            api.replace_status(Kind::PersistentVolume, None, &volume, status)
                .await
        }
        Action::Unbind(volume) => {
            let mut v = api.get(Kind::PersistentVolume, None, &volume).await?;
            if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("claimRef");
            }
            if let Some(a) = v
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                a.remove(BOUND_BY_CONTROLLER);
            }
            api.replace(Kind::PersistentVolume, None, &volume, v).await
        }
        Action::Delete(volume) => {
            api.delete(Kind::PersistentVolume, None, &volume, None)
                .await?;
            tracing::info!(volume = %volume, "deleted a released volume orkops provisioned");
            Ok(())
        }
        Action::Event {
            about,
            type_,
            reason,
            message,
        } => {
            event(api, w, reported, &about, type_, reason, &message).await;
            Ok(())
        }
    }
}

/// Both halves of a binding, as upstream's `bind`: the volume's claimRef and phase, then the
/// claim's volumeName, annotations and status (the volume's capacity and access modes).
async fn bind(
    api: &Api,
    ns: &str,
    claim: &str,
    volume: &str,
    by_controller: bool,
) -> Result<(), ApiError> {
    let c = api
        .get(Kind::PersistentVolumeClaim, Some(ns), claim)
        .await?;
    let uid = c
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if uid.is_empty() {
        return Err(claim_missing(ns, claim));
    }
    let mut v = api.get(Kind::PersistentVolume, None, volume).await?;
    let before = v.clone();
    match v.pointer("/spec/claimRef") {
        None | Some(Value::Null) => {
            v["spec"]["claimRef"] = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": ns, "name": claim, "uid": uid,
                "resourceVersion": c.pointer("/metadata/resourceVersion")});
            if by_controller {
                v["metadata"]["annotations"][BOUND_BY_CONTROLLER] = json!("yes");
            }
        }
        Some(r) => {
            let same = r["namespace"] == json!(ns) && r["name"] == json!(claim);
            let their_uid = r["uid"].as_str().unwrap_or("");
            if !same || !(their_uid.is_empty() || their_uid == uid) {
                return Err(ApiError::Conflict(format!(
                    "volume {volume:?} is bound to another claim than {ns}/{claim}"
                )));
            }
            v["spec"]["claimRef"]["uid"] = json!(uid);
        }
    }
    if v != before {
        api.replace(Kind::PersistentVolume, None, volume, v.clone())
            .await?;
    }
    if v.pointer("/status/phase") != Some(&json!("Bound")) {
        let status = json!({"phase": "Bound", "lastPhaseTransitionTime": Utc::now()});
        api.replace_status(Kind::PersistentVolume, None, volume, status)
            .await?;
    }
    let mut c2 = c.clone();
    match c2.pointer("/spec/volumeName").and_then(Value::as_str) {
        None | Some("") => c2["spec"]["volumeName"] = json!(volume),
        Some(n) if n == volume => {}
        Some(n) => {
            return Err(ApiError::Conflict(format!(
                "claim {ns}/{claim} asks for volume {n:?}, not {volume:?}"
            )))
        }
    }
    c2["metadata"]["annotations"][BIND_COMPLETED] = json!("yes");
    if by_controller {
        c2["metadata"]["annotations"][BOUND_BY_CONTROLLER] = json!("yes");
    }
    if c2 != c {
        api.replace(Kind::PersistentVolumeClaim, Some(ns), claim, c2.clone())
            .await?;
    }
    let status = json!({
        "phase": "Bound",
        "accessModes": v.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
        "capacity": v.pointer("/spec/capacity").cloned().unwrap_or(json!({})),
    });
    if c2.get("status") != Some(&status) {
        api.replace_status(Kind::PersistentVolumeClaim, Some(ns), claim, status)
            .await?;
    }
    Ok(())
}

/// Records an event about a claim or a volume, unless the same was recorded for it already.
async fn event(
    api: &Api,
    w: &World<'_>,
    reported: &Reported,
    about: &Subject,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let (ns, kind, name, uid) = match about {
        Subject::Claim { namespace, name } => (
            namespace.as_str(),
            Kind::PersistentVolumeClaim,
            name.as_str(),
            w.claims
                .iter()
                .find(|c| c.metadata.namespace() == namespace && c.metadata.name() == name)
                .and_then(|c| c.metadata.uid.as_deref()),
        ),
        Subject::Volume(name) => (
            // the events of cluster objects live in `default`, as upstream's
            "default",
            Kind::PersistentVolume,
            name.as_str(),
            w.volumes
                .iter()
                .find(|v| v.metadata.name() == name)
                .and_then(|v| v.metadata.uid.as_deref()),
        ),
    };
    let key = format!("{}/{reason}", uid.unwrap_or(""));
    if reported.news(key, message) {
        api.event(
            About {
                ns,
                kind,
                name,
                uid,
            },
            type_,
            reason,
            message,
            SOURCE,
        )
        .await;
    }
}
