//! Pod start latency and agent memory, against a real etcd, `orkops-master`, `orkops-agent` and
//! the machine's Docker engine. Prints figures; asserts nothing about time.
//! Run: `cargo bench --bench agent` (ORKOPS_BENCH_AGENT_PODS sets the pod count, default 30).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use orkops::api::Kind;
use orkops::client::{ApiClient, ClientConfig};
use serde_json::{json, Value};

fn pod(name: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": common::TEST_IMAGE, "command": ["sleep", "100000"]}]}})
}

fn phase(v: &Value) -> &str {
    v.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn restarts(v: &Value) -> i64 {
    v.pointer("/status/containerStatuses/0/restartCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("ORKOPS_BENCH_AGENT_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let m = common::Master::start();
    let a = common::Agent::start(&m);
    let agent_pid = a.child.as_ref().unwrap().id();
    let api = ApiClient::new(&ClientConfig::load(&m.config).unwrap()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("agent RSS idle: {:.1} MB", common::rss_mb(agent_pid));
    rt.block_on(async {
        let mut events = api.watch(Kind::Pod, Some("default"), &[]).await.unwrap();
        // one at a time: create, then wait for Running
        let mut serial = Vec::new();
        for i in 0..n {
            let name = format!("s{i}");
            let t0 = Instant::now();
            api.create(Kind::Pod, Some("default"), &pod(&name, &a.name))
                .await
                .unwrap();
            while let Some(Ok(ev)) = events.next().await {
                if ev.object.pointer("/metadata/name") == Some(&json!(name))
                    && phase(&ev.object) == "Running"
                {
                    serial.push(t0.elapsed());
                    break;
                }
            }
        }
        common::report("pod create -> Running, one at a time", &mut serial, None);
        println!(
            "agent RSS with {n} pods: {:.1} MB",
            common::rss_mb(agent_pid)
        );

        // container death noticed: kill each pod's container, time until the status shows the restart
        let mut noticed = Vec::new();
        for i in 0..n.min(10) {
            let name = format!("s{i}");
            let id = api
                .get(Kind::Pod, Some("default"), &name)
                .await
                .unwrap()
                .pointer("/status/containerStatuses/0/containerID")
                .and_then(Value::as_str)
                .unwrap()
                .trim_start_matches("docker://")
                .to_string();
            let t0 = Instant::now();
            assert!(common::docker(&["kill", &id]).0);
            while let Some(Ok(ev)) = events.next().await {
                if ev.object.pointer("/metadata/name") == Some(&json!(name))
                    && restarts(&ev.object) >= 1
                {
                    noticed.push(t0.elapsed());
                    break;
                }
            }
        }
        common::report("container killed -> restart in status", &mut noticed, None);

        // a burst: n pods created at once
        let t0 = Instant::now();
        let mut created = HashMap::new();
        for i in 0..n {
            let name = format!("b{i}");
            created.insert(name.clone(), Instant::now());
            api.create(Kind::Pod, Some("default"), &pod(&name, &a.name))
                .await
                .unwrap();
        }
        let mut burst = Vec::new();
        while burst.len() < n {
            let Some(Ok(ev)) = events.next().await else {
                break;
            };
            let name = ev
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if phase(&ev.object) == "Running" {
                if let Some(t) = created.remove(name) {
                    burst.push(t.elapsed());
                }
            }
        }
        let wall = t0.elapsed();
        common::report(
            &format!("pod create -> Running, {n} at once"),
            &mut burst,
            Some(wall),
        );
        println!(
            "agent RSS with {} pods: {:.1} MB",
            2 * n,
            common::rss_mb(agent_pid)
        );

        // deletion: all pods, until the node holds no container
        let t0 = Instant::now();
        for i in 0..n {
            for p in ["s", "b"] {
                let _ = api
                    .delete(Kind::Pod, Some("default"), &format!("{p}{i}"), &[])
                    .await;
            }
        }
        common::wait_until("all containers removed", Duration::from_secs(300), || {
            a.containers().is_empty()
        });
        println!(
            "delete {} pods -> containers gone: {:.2} s",
            2 * n,
            t0.elapsed().as_secs_f64()
        );
    });
}
