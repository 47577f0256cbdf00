//! The node's presence, as the kubelet keeps it: every interval it renews its Lease
//! (`kube-node-lease/NODE`, a few hundred bytes, owned by the Node so that it goes with it),
//! and it posts the whole Node status only when that changed, when the API shows the node
//! other than Ready (the master marked it Unknown), after a beat that failed, and otherwise
//! every `report_every` (kubelet's `nodeStatusReportFrequency`, 5 minutes). With 1,000 nodes
//! that is 100 small Lease writes a second instead of 100 Node status writes that every Node
//! watcher receives. A Node that was deleted is registered again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::node::{self, Facts};
use crate::api::coordination::NODE_LEASE_NAMESPACE;
use crate::api::Kind;
use crate::client::{ApiClient, ClientConfig, ClientError};

/// How long a node's Lease holds without a renewal (kubelet's `nodeLeaseDurationSeconds`).
pub const LEASE_DURATION_SECONDS: i64 = 40;
/// How often the Node status is posted when nothing in it changed.
pub const STATUS_REPORT_EVERY: Duration = Duration::from_secs(300);

/// What the agent last posted and wrote: the state between beats.
pub struct Presence {
    facts: Facts,
    ready_since: DateTime<Utc>,
    report_every: Duration,
    /// The Lease as the API last returned it (its resourceVersion makes the next renewal a
    /// compare-and-swap).
    lease: Option<Value>,
    /// The status last posted, without its heartbeat time, and when.
    posted: Option<(Value, Instant)>,
    /// The last beat failed: the next one posts the status whatever it holds.
    failed: bool,
}

/// The status without the heartbeat time of its conditions: what "changed" compares.
fn comparable(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(cs) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastHeartbeatTime");
        }
    }
    s
}

/// Whether a beat posts the status: first of all, after a failed beat, when the API shows
/// the node not Ready (`server_ready` is what the agent's cache of Nodes says, when it has
/// one), when the status changed, or when the last post is `report_every` old.
pub fn must_post(
    last: Option<(&Value, Duration)>,
    status: &Value,
    report_every: Duration,
    after_failure: bool,
    server_ready: Option<bool>,
) -> bool {
    match last {
        None => true,
        Some((posted, age)) => {
            after_failure || server_ready == Some(false) || posted != status || age >= report_every
        }
    }
}

fn micro(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Presence {
    /// The presence of a node that registered (and posted its status) just now.
    pub fn registered(facts: Facts, ready_since: DateTime<Utc>, report_every: Duration) -> Self {
        let status = comparable(&facts.status(ready_since, Utc::now()));
        Presence {
            facts,
            ready_since,
            report_every,
            lease: None,
            posted: Some((status, Instant::now())),
            failed: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.facts.name
    }

    /// One beat: the status when [`must_post`] says so, then the Lease.
    pub async fn beat(
        &mut self,
        api: &ApiClient,
        server_ready: Option<bool>,
    ) -> anyhow::Result<()> {
        let r = self.beat_once(api, server_ready).await;
        self.failed = r.is_err();
        r
    }

    async fn beat_once(
        &mut self,
        api: &ApiClient,
        server_ready: Option<bool>,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let status = self.facts.status(self.ready_since, now);
        let same = comparable(&status);
        let last = self.posted.as_ref().map(|(s, at)| (s, at.elapsed()));
        if must_post(last, &same, self.report_every, self.failed, server_ready) {
            match node::post_status(api, &self.facts.name, status).await {
                Err(e) if not_found(&e) => self.register(api).await?,
                r => r?,
            }
            self.posted = Some((same, Instant::now()));
        }
        self.renew(api, now).await
    }

    async fn register(&mut self, api: &ApiClient) -> anyhow::Result<()> {
        node::register(api, &self.facts, self.ready_since).await?;
        self.lease = None;
        Ok(())
    }

    /// Renews the Lease from the copy last written; reads it again when another write won
    /// (three tries), and makes it (owned by the Node) when it is missing.
    async fn renew(&mut self, api: &ApiClient, now: DateTime<Utc>) -> anyhow::Result<()> {
        let name = self.facts.name.clone();
        let ns = Some(NODE_LEASE_NAMESPACE);
        for _ in 0..3 {
            let mut lease = match self.lease.take() {
                Some(l) => l,
                None => match api.get(Kind::Lease, ns, &name).await {
                    Ok(l) => l,
                    Err(e) if e.is_not_found() => return self.make_lease(api, now).await,
                    Err(e) => return Err(e).context("cannot read the node's lease"),
                },
            };
            lease["spec"]["renewTime"] = json!(micro(now));
            lease["spec"]["holderIdentity"] = json!(name);
            match api.replace(Kind::Lease, ns, &name, &lease).await {
                Ok(l) => {
                    self.lease = Some(l);
                    return Ok(());
                }
                // another write won (or the lease went): read it again
                Err(e) if e.code() == Some(409) || e.is_not_found() => {}
                Err(e) => return Err(e).context("cannot renew the node's lease"),
            }
        }
        anyhow::bail!("cannot renew the node's lease: it kept changing under the agent")
    }

    async fn make_lease(&mut self, api: &ApiClient, now: DateTime<Utc>) -> anyhow::Result<()> {
        let name = self.facts.name.clone();
        let uid = match api.get(Kind::Node, None, &name).await {
            Ok(n) => n["metadata"]["uid"].clone(),
            Err(e) if e.is_not_found() => {
                self.register(api).await?;
                api.get(Kind::Node, None, &name).await?["metadata"]["uid"].clone()
            }
            Err(e) => return Err(e).context("cannot read the node"),
        };
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {
                "name": name, "namespace": NODE_LEASE_NAMESPACE,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": micro(now),
            },
        });
        match api
            .create(Kind::Lease, Some(NODE_LEASE_NAMESPACE), &body)
            .await
        {
            Ok(l) => self.lease = Some(l),
            // made by an earlier try whose answer was lost: renewed on the next beat
            Err(e) if e.code() == Some(409) => {}
            Err(e) => return Err(e).context("cannot make the node's lease"),
        }
        Ok(())
    }
}

fn not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ClientError>()
        .is_some_and(ClientError::is_not_found)
}

/// Whether the Node in `nodes` (the agent's cache, when it keeps one) is Ready=True.
fn ready_in(nodes: &super::network::Cache, name: &str) -> Option<bool> {
    let n: crate::api::core::Node = nodes.get("", name)?;
    let ready = n
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")?;
    Some(ready.status == "True")
}

/// Beats every `every` and renews the node token daily, until the task is aborted. `nodes`
/// is the agent's cache of Nodes, when it keeps one (its pod network does).
pub async fn keep_alive(
    api: Arc<ApiClient>,
    mut presence: Presence,
    every: Duration,
    nodes: Option<Arc<super::network::Cache>>,
    data_dir: std::path::PathBuf,
) {
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        let server_ready = nodes.as_deref().and_then(|c| ready_in(c, presence.name()));
        if let Err(e) = presence.beat(&api, server_ready).await {
            tracing::warn!(error = %format!("{e:#}"), "heartbeat failed");
        }
        if last_renewal.elapsed() > Duration::from_secs(24 * 3600) {
            match node::renew(&api, presence.name()).await {
                Ok(token) => {
                    api.set_token(&token);
                    let path = data_dir.join("node.conf");
                    if let Ok(mut cfg) = ClientConfig::load(&path) {
                        cfg.token = token;
                        let _ = cfg.save(&path);
                    }
                    last_renewal = tokio::time::Instant::now();
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot renew the node token"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_posted_on_change_on_trouble_or_when_old() {
        let beat = |at: &str| {
            json!({"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": at, "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
        };
        let posted = comparable(&beat("2026-01-01T00:00:00Z"));
        let now = comparable(&beat("2026-01-01T00:00:10Z"));
        assert_eq!(posted, now, "a new heartbeat time alone is no change");
        let every = STATUS_REPORT_EVERY;
        let young = Duration::from_secs(10);
        assert!(!must_post(Some((&posted, young)), &now, every, false, None));
        assert!(!must_post(
            Some((&posted, young)),
            &now,
            every,
            false,
            Some(true)
        ));
        assert!(must_post(None, &now, every, false, None), "the first beat");
        assert!(
            must_post(Some((&posted, every)), &now, every, false, None),
            "old"
        );
        assert!(
            must_post(Some((&posted, young)), &now, every, true, None),
            "after a failure"
        );
        assert!(
            must_post(Some((&posted, young)), &now, every, false, Some(false)),
            "the master marked the node Unknown"
        );
        let mut changed = now.clone();
        changed["capacity"]["cpu"] = json!("4");
        assert!(must_post(
            Some((&posted, young)),
            &changed,
            every,
            false,
            None
        ));
    }
}
