//! The bootstrap's side of node identity: the Nodes of instances that are gone or replaced are
//! deleted through the API (which revokes every token issued to that name so far), and each
//! node instance gets a join config with a join token scoped to it (its name, instance id and
//! private IP). The master mints them when it answers (its clock orders issue and revocation
//! times); on a first create the CLI mints them with the cluster's join secret.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Kind;
use crate::apiserver::auth::{mint_join_token, NodeIdentity};
use crate::bootstrap::render::Machine;
use crate::client::{ApiClient, ClientConfig};
use crate::cloud::model::Role;
use crate::names::LABEL_INSTANCE_ID;
use crate::provision::Progress;

/// An admin client of the cluster if its API answers within a few seconds.
pub async fn reachable(admin: &ClientConfig) -> Option<ApiClient> {
    let api = ApiClient::new(admin).ok()?;
    let probe = api.list(Kind::Node, None, &[]);
    match tokio::time::timeout(Duration::from_secs(15), probe).await {
        Ok(Ok(_)) => Some(api),
        _ => None,
    }
}

/// The Nodes the cluster made (they carry an instance id) whose instance is no longer the
/// running one of that name: scaled away, or replaced.
fn stale(nodes: &Value, machines: &[Machine]) -> Vec<String> {
    let running: BTreeMap<&str, &str> = machines
        .iter()
        .filter(|m| m.role == Role::Node)
        .map(|m| (m.name.as_str(), m.instance_id.as_str()))
        .collect();
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?;
            let instance = n
                .pointer("/metadata/labels")?
                .get(LABEL_INSTANCE_ID)?
                .as_str()?;
            (running.get(name) != Some(&instance)).then(|| name.to_string())
        })
        .collect()
}

/// Deletes the Nodes of instances that are gone or replaced (their tokens are revoked with
/// them, so a replacement joins only with its new join token).
pub async fn retire_stale(
    api: &ApiClient,
    machines: &[Machine],
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let nodes = api
        .list(Kind::Node, None, &[])
        .await
        .context("cannot list the cluster's nodes")?;
    for name in stale(&nodes, machines) {
        match api.delete(Kind::Node, None, &name, &[]).await {
            Ok(_) => progress.say(&format!(
                "deleted node {name}: its instance is gone or was replaced (its credentials are revoked)"
            )),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete node {name}")),
        }
    }
    Ok(())
}

/// The join config of every node instance: `base` (endpoints, CA) with its own join token.
pub async fn join_configs(
    api: Option<&ApiClient>,
    machines: &[Machine],
    join_secret: &str,
    base: &ClientConfig,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for m in machines.iter().filter(|m| m.role == Role::Node) {
        let token = match api {
            Some(api) => {
                let r = api
                    .request(
                        Method::POST,
                        &format!("/orkops/v1/nodes/{}/join-token", m.name),
                        &[],
                        Some(&json!({"instanceID": m.instance_id, "address": m.private_ip})),
                    )
                    .await
                    .with_context(|| format!("cannot create the join token of {}", m.name))?;
                r["token"]
                    .as_str()
                    .context("the API server's answer has no token")?
                    .to_string()
            }
            None => mint_join_token(
                join_secret,
                &NodeIdentity {
                    name: m.name.clone(),
                    instance: m.instance_id.clone(),
                    address: m.private_ip.clone(),
                    issued_ms: chrono::Utc::now().timestamp_millis(),
                },
            ),
        };
        let mut cfg = base.clone();
        cfg.token = token;
        out.insert(m.name.clone(), cfg.to_yaml());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str, id: &str) -> Machine {
        Machine {
            name: name.into(),
            role: Role::Node,
            instance_id: id.into(),
            zone: "z".into(),
            size: "s".into(),
            private_ip: "10.0.0.9".into(),
            public_ip: None,
            arch: "x86_64".into(),
        }
    }

    #[test]
    fn nodes_of_gone_or_replaced_instances_are_stale() {
        let node = |n: &str, i: Option<&str>| match i {
            Some(i) => json!({"metadata": {"name": n, "labels": {LABEL_INSTANCE_ID: i}}}),
            None => json!({"metadata": {"name": n}}),
        };
        let nodes = json!({"items": [
            node("node-1", Some("i-1")),
            node("node-2", Some("i-old")),
            node("node-3", Some("i-3")),
            node("by-hand", None),
        ]});
        let machines = [machine("node-1", "i-1"), machine("node-2", "i-new")];
        assert_eq!(stale(&nodes, &machines), vec!["node-2", "node-3"]);
    }
}
