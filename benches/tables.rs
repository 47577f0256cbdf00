//! `kubectl get pods` as the server sees it, for 1,000 pods: the list kubectl asks for (pages
//! of `limit=500` followed by `continue`) as a server-side Table and as plain JSON objects,
//! through HTTPS against a real `orkops-master` and etcd; then one real `kubectl get pods` when
//! kubectl is installed; and 300 strategic merge patches of a Deployment (what `kubectl set
//! image` sends). Prints p50/p99; asserts nothing about time.
//! Run: `cargo bench --bench tables` (ORKOPS_BENCH_PODS sets the pod count, default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::report;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "orkops/busybox:1", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

/// One kubectl-style list: pages of 500 until no `continue`; returns the items or rows seen.
async fn list(http: &common::Http, token: &str, accept: &str) -> usize {
    let mut url = format!("{}{PODS}?limit=500", http.base);
    let mut seen = 0;
    loop {
        let resp = http
            .client
            .get(&url)
            .bearer_auth(token)
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        seen += v["rows"]
            .as_array()
            .or(v["items"].as_array())
            .map_or(0, Vec::len);
        match v["metadata"]["continue"].as_str() {
            Some(c) => url = format!("{}{PODS}?limit=500&continue={c}", http.base),
            None => return seen,
        }
    }
}

/// What `kubectl set image` and `kubectl apply` send: strategic merge patches of one container
/// of a three-container Deployment, each a real write (the image alternates).
async fn strategic_patches(http: &common::Http, token: &str) {
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let containers: Vec<Value> = (0..3)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": "orkops/busybox:1",
            "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 8000 + i}]})
        })
        .collect();
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "smp", "labels": {"app": "smp"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "smp"}},
            "template": {"metadata": {"labels": {"app": "smp"}}, "spec": {"containers": containers}}}});
    let (code, body) = http
        .call(Method::POST, deployments, Some(token), Some(d))
        .await;
    assert_eq!(code, 201, "{body}");
    let mut samples = Vec::new();
    for i in 0..300 {
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c0"}, {"name": "c1"}, {"name": "c2"}],
            "containers": [{"name": "c1", "image": format!("orkops/busybox:{}", i % 2),
                "env": [{"name": "B", "value": i.to_string()}]}]}}}});
        let t = Instant::now();
        let resp = http
            .client
            .patch(format!("{}{deployments}/smp", http.base))
            .bearer_auth(token)
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(patch.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        samples.push(t.elapsed());
    }
    report("strategic merge patch (Deployment)", &mut samples, None);
}

fn main() {
    let n: usize = std::env::var("ORKOPS_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let m = common::Master::start();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "orkops `kubectl get pods` benchmark: {n} pods, pages of 500, HTTPS + etcd, 2-core machine"
    );
    rt.block_on(async {
        let creates = futures::stream::iter(0..n).map(|i| {
            let (http, token) = (&http, &token);
            async move {
                let (code, body) = http
                    .call(
                        Method::POST,
                        PODS,
                        Some(token),
                        Some(pod(&format!("p-{i:05}"))),
                    )
                    .await;
                assert_eq!(code, 201, "{body}");
            }
        });
        creates.buffer_unordered(8).collect::<Vec<_>>().await;
        for (what, accept) in [("Table", TABLE), ("JSON", "application/json")] {
            let mut samples: Vec<Duration> = Vec::new();
            for _ in 0..40 {
                let t = Instant::now();
                assert_eq!(list(&http, &token, accept).await, n);
                samples.push(t.elapsed());
            }
            report(&format!("list {n} pods as {what}"), &mut samples, None);
        }
        strategic_patches(&http, &token).await;
    });
    let kubeconfig = m.dir.path().join("kubeconfig");
    let exported = m
        .orkops(&[
            "export",
            "kubeconfig",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ])
        .ok();
    let mut samples = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let ran = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "pods"])
            .output();
        match ran {
            Ok(o) if exported && o.status.success() => samples.push(t.elapsed()),
            _ => {
                println!("kubectl get pods: not measured (no kubectl or no kubeconfig)");
                return;
            }
        }
    }
    report(&format!("kubectl get pods ({n}, wall)"), &mut samples, None);
}
