//! The `default` ServiceAccount of every namespace, which clients and tools (`kubectl create
//! deployment` workflows, the client libraries' e2e helpers) wait for: made when a namespace is
//! created, at start for namespaces that lack it, and again when it is deleted from a namespace
//! that stays (as Kubernetes' serviceaccounts controller does).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::auth::Caller;
use super::engine::{Command, Engine, ListQuery, Reply};
use super::error::ApiError;
use crate::api::Kind;

/// The name of the ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

impl Engine {
    /// Creates `ns`'s `default` ServiceAccount if it is missing.
    pub async fn ensure_default_service_account(&self, ns: &str) -> Result<(), ApiError> {
        let body = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": ns},
        });
        let create = Command::Create {
            kind: Kind::ServiceAccount,
            namespace: Some(ns.to_string()),
            body,
        };
        match Box::pin(self.handle(&Caller::Master, create)).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives every namespace that is not being deleted its `default` ServiceAccount.
    pub async fn ensure_default_service_accounts(&self) -> Result<(), ApiError> {
        let list = Command::List {
            kind: Kind::Namespace,
            namespace: None,
            query: ListQuery::default(),
        };
        let Reply::Json(bytes) = self.handle(&Caller::Master, list).await? else {
            return Err(ApiError::Internal("a namespace list is JSON".into()));
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
        for ns in v["items"].as_array().into_iter().flatten() {
            if ns.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            if let Some(name) = ns.pointer("/metadata/name").and_then(|n| n.as_str()) {
                self.ensure_default_service_account(name).await?;
            }
        }
        Ok(())
    }
}

impl Engine {
    /// Kubernetes' ServiceAccount admission for a pod being created: `serviceAccountName`
    /// (and its alias `serviceAccount`) default to `default`; a pod naming a ServiceAccount that
    /// does not exist is forbidden; a pod without `imagePullSecrets` takes its account's.
    /// (A missing `default` account is not refused: it is being made with its namespace.)
    pub async fn admit_pod_service_account(
        &self,
        ns: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        let spec = pod.get("spec").cloned().unwrap_or_default();
        let named = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
            .to_string();
        if let Some(s) = pod.get_mut("spec").and_then(Value::as_object_mut) {
            s.insert("serviceAccountName".into(), json!(named));
            s.insert("serviceAccount".into(), json!(named));
        }
        let get = Command::Get {
            kind: Kind::ServiceAccount,
            namespace: Some(ns.to_string()),
            name: named.clone(),
        };
        let account = match Box::pin(self.handle(&Caller::Master, get)).await {
            Ok(Reply::Ok(v)) => v,
            Ok(_) => return Err(ApiError::Internal("a get replies with an object".into())),
            Err(ApiError::NotFound { .. }) if named == DEFAULT_SERVICE_ACCOUNT => return Ok(()),
            Err(ApiError::NotFound { .. }) => {
                let pod_name = crate::api::name_of(pod).to_string();
                return Err(ApiError::Forbidden(format!(
                    "pods {pod_name:?} is forbidden: error looking up service account {ns}/{named}: serviceaccount {named:?} not found"
                )));
            }
            Err(e) => return Err(e),
        };
        let has_own = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let inherited = account
            .get("imagePullSecrets")
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
        if let (false, Some(secrets)) = (has_own, inherited) {
            if let Some(s) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                s.insert("imagePullSecrets".into(), secrets.clone());
            }
        }
        Ok(())
    }
}

/// Makes the `default` ServiceAccount again whenever one is deleted from a namespace that is not
/// being deleted, until `stop` turns true. Every master runs it; a second create is harmless.
pub async fn keep_default_service_accounts(
    engine: std::sync::Arc<Engine>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let cmd = Command::Watch {
            kind: Kind::ServiceAccount,
            namespace: None,
            query: ListQuery {
                // from now on: the namespaces' own ones were made at start
                resource_version: engine.store().revision().await.ok(),
                ..Default::default()
            },
        };
        if let Ok(Reply::Watch(mut lines)) = engine.handle(&Caller::Master, cmd).await {
            while let Some(line) = lines.next().await {
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let deleted = ev["type"] == "DELETED"
                    && ev.pointer("/object/metadata/name") == Some(&json!(DEFAULT_SERVICE_ACCOUNT));
                if let Some(ns) = ev
                    .pointer("/object/metadata/namespace")
                    .and_then(Value::as_str)
                {
                    if deleted {
                        remake(&engine, ns).await;
                    }
                }
            }
        }
        // the watch ended (shutdown, or the store went away): open it again after a pause
        let _ = tokio::time::timeout(Duration::from_secs(1), stop.wait_for(|s| *s)).await;
    }
}

/// Makes `ns`'s `default` ServiceAccount again unless the namespace is gone or terminating.
async fn remake(engine: &Engine, ns: &str) {
    let get = Command::Get {
        kind: Kind::Namespace,
        namespace: None,
        name: ns.to_string(),
    };
    match engine.handle(&Caller::Master, get).await {
        Ok(Reply::Ok(n)) if n.pointer("/metadata/deletionTimestamp").is_none() => {
            if let Err(e) = engine.ensure_default_service_account(ns).await {
                tracing::warn!(namespace = ns, error = %e, "cannot make the default ServiceAccount again");
            }
        }
        _ => {}
    }
}
