//! The `default` ServiceAccount of every namespace, which clients and tools (`kubectl create
//! deployment` workflows, the client libraries' e2e helpers) wait for: made when a namespace is
//! created, and at start for namespaces that lack it.

use serde_json::json;

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
