//! A node without an agent, for the tests of controllers: a thread holding a real node token
//! that registers and heartbeats its Node and reports every pod bound to it Running, and Ready
//! unless the test holds it back, and finishes their deletion, as an agent would, without
//! Docker. Stops when dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{runtime, Http, Master};

const LONG: Duration = Duration::from_secs(120);

/// A node without an agent: reports the pods bound to it Running, and Ready unless their name
/// is in `held`, and removes the ones being deleted, with its own node token. Stops when
/// dropped.
pub struct FakeNode {
    held: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn node_status(now: &str) -> Value {
    json!({
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": "10.99.0.1"}],
    })
}

impl FakeNode {
    pub fn start(m: &Master, name: &str) -> FakeNode {
        let (http, admin, name) = (m.http(), m.admin_token(), name.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<HashSet<String>>> = Arc::default();
        let (stopped, holds) = (stop.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let (code, t) = http
                    .call(Method::POST, &format!("/orkops/v1/nodes/{name}/token"), Some(&admin), None)
                    .await;
                assert_eq!(code, 201, "{t}");
                let token = t["token"].as_str().unwrap().to_string();
                let now = || chrono::Utc::now().to_rfc3339();
                let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                    "status": node_status(&now())});
                let (code, body) = http.call(Method::POST, "/api/v1/nodes", Some(&token), Some(node)).await;
                assert_eq!(code, 201, "{body}");
                let mut beat = std::time::Instant::now();
                while !stopped.load(Ordering::Relaxed) {
                    if beat.elapsed() > Duration::from_secs(5) {
                        let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                            "status": node_status(&now())});
                        http.call(Method::PUT, &format!("/api/v1/nodes/{name}/status"), Some(&token), Some(body))
                            .await;
                        beat = std::time::Instant::now();
                    }
                    let held = holds.lock().unwrap().clone();
                    kubelet_pass(&http, &token, &name, &held).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });
        FakeNode {
            held,
            stop,
            thread: Some(thread),
        }
    }

    pub fn hold(&self, pod: &str) {
        self.held.lock().unwrap().insert(pod.to_string());
    }

    pub fn release(&self, pod: &str) {
        self.held.lock().unwrap().remove(pod);
    }
}

async fn kubelet_pass(http: &Http, token: &str, node: &str, held: &HashSet<String>) {
    let (_, list) = http
        .call(
            Method::GET,
            &format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}"),
            Some(token),
            None,
        )
        .await;
    for p in list["items"].as_array().into_iter().flatten() {
        let (ns, name) = (
            p["metadata"]["namespace"].as_str().unwrap(),
            p["metadata"]["name"].as_str().unwrap(),
        );
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        if p.pointer("/metadata/deletionTimestamp").is_some() {
            http.call(
                Method::DELETE,
                &format!("{path}?gracePeriodSeconds=0"),
                Some(token),
                None,
            )
            .await;
            continue;
        }
        let ready = if held.contains(name) { "False" } else { "True" };
        let is_ready = p
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == ready)
            });
        if p.pointer("/status/phase") == Some(&json!("Running")) && is_ready {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339();
        let status = json!({"phase": "Running", "podIP": "10.99.1.1", "startTime": now,
            "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": now}]});
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns}, "status": status});
        http.call(
            Method::PUT,
            &format!("{path}/status"),
            Some(token),
            Some(body),
        )
        .await;
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
