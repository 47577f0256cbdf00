//! The API server's part of storage: the StorageClass `local` the master makes at start-up
//! (orkops' Docker volumes, the default class unless another is), Kubernetes' DefaultStorageClass
//! admission (a claim created without `storageClassName` gets the default class's name), and
//! what an update may change of a claim, a volume and a class, as kube-apiserver rules it.

use serde_json::{json, Value};

use super::auth::Caller;
use super::engine::{Command, Engine, ListQuery, Reply};
use super::error::ApiError;
use crate::api::storage::{StorageClass, DEFAULT_CLASS_ANNOTATION, LOCAL_CLASS, LOCAL_PROVISIONER};
use crate::api::{FieldError, Kind};

impl Engine {
    async fn storage_classes(&self) -> Result<Vec<StorageClass>, ApiError> {
        let list = Command::List {
            kind: Kind::StorageClass,
            namespace: None,
            query: ListQuery::default(),
        };
        let Reply::Json(bytes) = Box::pin(self.handle(&Caller::Master, list)).await? else {
            return Err(ApiError::Internal("a list is JSON".into()));
        };
        #[derive(serde::Deserialize)]
        struct List {
            items: Vec<StorageClass>,
        }
        serde_json::from_slice::<List>(&bytes)
            .map(|l| l.items)
            .map_err(|e| ApiError::Internal(format!("cannot decode the storage classes: {e}")))
    }

    /// Makes the StorageClass `local` if it is missing: the default class, unless another
    /// class is the default already (a user's choice stands).
    pub async fn ensure_default_storage_class(&self) -> Result<(), ApiError> {
        let classes = self.storage_classes().await?;
        if classes.iter().any(|c| c.metadata.name() == LOCAL_CLASS) {
            return Ok(());
        }
        let mut body = json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": LOCAL_CLASS},
            "provisioner": LOCAL_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer",
        });
        if !classes.iter().any(StorageClass::is_default) {
            body["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
        }
        let create = Command::Create {
            kind: Kind::StorageClass,
            namespace: None,
            body,
        };
        match self.handle(&Caller::Master, create).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Kubernetes' DefaultStorageClass admission: a claim created with no `storageClassName`
    /// (unset, not `""`) takes the default class's; of several defaults, the newest.
    pub async fn admit_claim_storage_class(&self, claim: &mut Value) -> Result<(), ApiError> {
        if claim.pointer("/spec/storageClassName").is_some() {
            return Ok(());
        }
        let classes = self.storage_classes().await?;
        if let Some(c) = default_class(&classes) {
            claim["spec"]["storageClassName"] = json!(c.metadata.name());
        }
        Ok(())
    }
}

/// The default class: of those marked, the newest (then the first by name), as upstream.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes.iter().filter(|c| c.is_default()).max_by(|a, b| {
        (
            a.metadata.creation_timestamp,
            std::cmp::Reverse(a.metadata.name()),
        )
            .cmp(&(
                b.metadata.creation_timestamp,
                std::cmp::Reverse(b.metadata.name()),
            ))
    })
}

fn forbid(kind: Kind, name: &str, causes: Vec<(&str, String)>) -> Result<(), ApiError> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind,
        name: name.to_string(),
        causes: causes
            .into_iter()
            .map(|(field, message)| FieldError {
                field: field.into(),
                message,
            })
            .collect(),
    })
}

/// What an update of a claim, a volume or a class may change (after `new` was admitted), as
/// kube-apiserver's ValidatePersistentVolumeClaimUpdate, ValidatePersistentVolumeUpdate and
/// ValidateStorageClassUpdate; what the system set on a claim stays when a whole claim is sent
/// again without it.
pub fn merge_update(
    kind: Kind,
    name: &str,
    current: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    let (old, mut causes) = (&current["spec"], Vec::new());
    match kind {
        Kind::PersistentVolumeClaim => {
            for f in ["volumeName", "storageClassName"] {
                if new["spec"].get(f).is_none() {
                    if let Some(v) = old.get(f) {
                        new["spec"][f] = v.clone();
                    }
                }
            }
            let mut mine = new["spec"].clone();
            // the binder sets the volume of a claim that has none; the default class is
            // given to a claim that has none (retroactively, as upstream)
            for f in ["volumeName", "storageClassName"] {
                if old.get(f).is_none() {
                    if let Some(m) = mine.as_object_mut() {
                        m.remove(f);
                    }
                }
            }
            let bound = old.get("volumeName").is_some();
            let storage = |s: &Value| s.pointer("/resources/requests/storage").cloned();
            if bound && storage(&mine) != storage(old) {
                causes.push((
                    "spec.resources.requests.storage",
                    "Forbidden: orkops does not resize the volume of a bound claim".to_string(),
                ));
            }
            let mut theirs = old.clone();
            for s in [&mut mine, &mut theirs] {
                if let Some(m) = s.as_object_mut() {
                    m.remove("resources");
                    // claims stored before volumeMode was defaulted have none
                    m.entry("volumeMode").or_insert(json!("Filesystem"));
                }
            }
            if mine != theirs {
                causes.push(("spec", "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".to_string()));
            }
        }
        Kind::PersistentVolume => {
            let sources = ["hostPath", "local", "csi", "nfs"];
            let source = |s: &Value| -> Vec<Value> {
                sources
                    .iter()
                    .map(|f| s.get(*f).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            if source(&new["spec"]) != source(old) {
                causes.push((
                    "spec.persistentvolumesource",
                    "Forbidden: spec.persistentvolumesource is immutable after creation"
                        .to_string(),
                ));
            }
            for f in ["volumeMode", "nodeAffinity"] {
                let was = old.get(f);
                if was.is_some() && new["spec"].get(f) != was {
                    let field = if f == "volumeMode" {
                        "spec.volumeMode"
                    } else {
                        "spec.nodeAffinity"
                    };
                    causes.push((field, "Invalid value: field is immutable".to_string()));
                }
            }
        }
        Kind::StorageClass => {
            for (f, message) in [
                (
                    "parameters",
                    "Forbidden: updates to parameters are forbidden.",
                ),
                (
                    "provisioner",
                    "Forbidden: updates to provisioner are forbidden.",
                ),
                (
                    "reclaimPolicy",
                    "Forbidden: updates to reclaimPolicy are forbidden.",
                ),
                ("volumeBindingMode", "Invalid value: field is immutable"),
            ] {
                if new.get(f) != current.get(f) {
                    causes.push((f, message.to_string()));
                }
            }
        }
        _ => {}
    }
    forbid(kind, name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, default: bool, created: &str) -> StorageClass {
        let mut c = StorageClass::default();
        c.metadata.name = Some(name.into());
        c.metadata.creation_timestamp = Some(created.parse().unwrap());
        if default {
            c.metadata
                .annotations
                .insert(DEFAULT_CLASS_ANNOTATION.into(), "true".into());
        }
        c
    }

    #[test]
    fn the_newest_default_class_wins() {
        let classes = [
            class("old", true, "2024-01-01T00:00:00Z"),
            class("new", true, "2025-01-01T00:00:00Z"),
            class("plain", false, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(default_class(&classes).unwrap().metadata.name(), "new");
        assert!(default_class(&classes[2..]).is_none());
    }

    #[test]
    fn a_claim_keeps_what_the_system_set_and_changes_little() {
        let current = json!({"spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv1",
            "storageClassName": "local", "resources": {"requests": {"storage": "1Gi"}}}});
        let mut again = json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        merge_update(Kind::PersistentVolumeClaim, "c", &current, &mut again).unwrap();
        assert_eq!(again["spec"]["volumeName"], "pv1");
        assert_eq!(again["spec"]["storageClassName"], "local");
        let mut other = json!({"spec": {"accessModes": ["ReadWriteMany"], "volumeName": "pv1",
            "resources": {"requests": {"storage": "1Gi"}}}});
        let e = merge_update(Kind::PersistentVolumeClaim, "c", &current, &mut other).unwrap_err();
        assert!(e.to_string().contains("spec is immutable"), "{e}");
        // the binder's write: a volume for a claim that had none
        let unbound = json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}});
        let mut bound = current.clone();
        merge_update(Kind::PersistentVolumeClaim, "c", &unbound, &mut bound).unwrap();
        let sc = json!({"provisioner": "a", "reclaimPolicy": "Delete"});
        let mut changed = json!({"provisioner": "b", "reclaimPolicy": "Delete"});
        let e = merge_update(Kind::StorageClass, "s", &sc, &mut changed).unwrap_err();
        assert!(
            e.to_string()
                .contains("updates to provisioner are forbidden"),
            "{e}"
        );
    }
}
