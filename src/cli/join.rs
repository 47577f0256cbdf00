//! `orkops create join-token NODE`: a join token scoped to one node, made by the API server
//! (admin only), printed or written as the bootstrap client config an agent joins with
//! (`orkops-agent --bootstrap-config FILE`), the way `kubeadm token create` makes bootstrap
//! tokens. The agent removes the file once it holds its own node token.

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use super::args::{Cli, CreateJoinTokenArgs};
use crate::client::{ApiClient, ClientConfig};

pub async fn create(cli: &Cli, a: &CreateJoinTokenArgs) -> anyhow::Result<()> {
    let path = ClientConfig::locate(cli.config.as_deref())?;
    let admin = ClientConfig::load(&path)?;
    let api =
        ApiClient::new(&admin).with_context(|| format!("client config {}", path.display()))?;
    let body = json!({
        "instanceID": a.instance_id.clone().unwrap_or_default(),
        "address": a.address.map(|ip| ip.to_string()).unwrap_or_default(),
    });
    let r = api
        .request(
            Method::POST,
            &format!("/orkops/v1/nodes/{}/join-token", a.node),
            &[],
            Some(&body),
        )
        .await
        .with_context(|| format!("cannot create a join token for node {:?}", a.node))?;
    let token = r["token"]
        .as_str()
        .context("the API server's answer has no token")?;
    match &a.output {
        None => println!("{token}"),
        Some(out) => {
            let mut cfg = admin.clone();
            cfg.token = token.to_string();
            cfg.namespace = None;
            cfg.save(out)?;
            eprintln!(
                "wrote the join config of node {} to {} (orkops-agent --node-name {} --bootstrap-config {})",
                a.node,
                out.display(),
                a.node,
                out.display()
            );
        }
    }
    Ok(())
}
