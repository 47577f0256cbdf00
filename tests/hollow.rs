//! Hollow nodes (`orkops-hollow`) against a real master and etcd: the nodes join with their
//! own credentials and heartbeat, a Deployment's pods run on them (Running, Ready, an address
//! from their node's pod CIDR) and go when it is deleted, and the process exits cleanly on
//! SIGTERM and removes its Nodes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::hollow::Hollow;
use common::{wait_until, Master};
use reqwest::Method;
use serde_json::{json, Value};

/// The admin's HTTPS client, for polling from blocking test code.
struct Api {
    rt: tokio::runtime::Runtime,
    http: common::Http,
    token: String,
}

impl Api {
    fn new(m: &Master) -> Api {
        Api {
            rt: tokio::runtime::Runtime::new().unwrap(),
            http: m.http(),
            token: m.admin_token(),
        }
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        // a poll every 20 ms would load the 2-core machine: look at most 5 times a second
        std::thread::sleep(Duration::from_millis(200));
        self.rt
            .block_on(self.http.call(method, path, Some(&self.token), body))
    }

    fn get(&self, path: &str) -> Value {
        let (code, v) = self.call(Method::GET, path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The hollow Nodes named PREFIX-*, by name.
fn nodes(api: &Api, prefix: &str) -> Vec<Value> {
    items(&api.get("/api/v1/nodes"))
        .into_iter()
        .filter(|n| {
            n["metadata"]["name"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("{prefix}-")))
        })
        .collect()
}

fn ready(obj: &Value) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Everything the test checks, for `nodes` hollow nodes watching in `watch` mode.
fn deployment_runs_on_hollow_nodes(nodes_n: usize, replicas: usize, watch: &str) {
    let m = Master::start();
    let prefix = format!("h{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut h = Hollow::start(&m, nodes_n, &prefix, watch);
    let api = Api::new(&m);
    wait_until(
        "every hollow node to be registered and Ready",
        Duration::from_secs(60),
        || {
            let ns = nodes(&api, &prefix);
            ns.len() == nodes_n && ns.iter().all(ready)
        },
    );
    let cidrs: std::collections::HashMap<String, ipnet::Ipv4Net> = nodes(&api, &prefix)
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["spec"]["podCIDR"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let distinct: std::collections::HashSet<_> = cidrs.values().collect();
    assert_eq!(
        distinct.len(),
        nodes_n,
        "every node has its own pod CIDR: {cidrs:?}"
    );
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "orkops/busybox:1.35", "command": ["sleep", "3600"]}]}}}});
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    let (code, st) = api.call(Method::POST, deployments, Some(deploy));
    assert_eq!(code, 201, "{st}");
    let pods = "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb";
    let mut last = String::new();
    wait_until(
        &format!("{replicas} pods Running and Ready on the hollow nodes"),
        Duration::from_secs(240),
        || {
            let ps = items(&api.get(pods));
            let ok = ps
                .iter()
                .filter(|p| {
                    let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
                    let ip = p["status"]["podIP"]
                        .as_str()
                        .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok());
                    p["status"]["phase"] == "Running"
                        && ready(p)
                        && p["status"]["containerStatuses"][0]["state"]["running"].is_object()
                        && p["status"]["containerStatuses"][0]["ready"] == true
                        && matches!((cidrs.get(node), ip), (Some(c), Some(ip)) if c.contains(&ip))
                })
                .count();
            // every pod has its own address
            let ips: std::collections::HashSet<&str> = ps
                .iter()
                .filter_map(|p| p["status"]["podIP"].as_str())
                .collect();
            last = format!("{ok} of {} pods, {} addresses", ps.len(), ips.len());
            ok == replicas && ps.len() == replicas && ips.len() == replicas
        },
    );
    let ps = items(&api.get(pods));
    let used: std::collections::HashSet<&str> = ps
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert!(
        used.len() > 1,
        "the pods spread over the hollow nodes: {used:?}"
    );

    let (code, st) = api.call(Method::DELETE, &format!("{deployments}/web"), None);
    assert_eq!(code, 200, "{st}");
    wait_until(
        "the Deployment's pods to be gone",
        Duration::from_secs(240),
        || items(&api.get(pods)).is_empty(),
    );

    let st = h.terminate();
    assert!(st.success(), "orkops-hollow exited with {st}: {}", h.log());
    assert!(
        nodes(&api, &prefix).is_empty(),
        "the hollow process removed its Nodes at exit"
    );
    assert!(
        !h.log().contains("panicked"),
        "no panic in the hollow log: {}",
        h.log()
    );
}

#[test]
fn a_deployment_runs_on_twenty_hollow_nodes_and_goes_when_deleted() {
    deployment_runs_on_hollow_nodes(20, 100, "shared");
}

#[test]
fn hollow_nodes_with_a_watch_each_run_their_pods() {
    deployment_runs_on_hollow_nodes(5, 20, "per-node");
}

#[test]
fn a_bad_flag_is_refused_before_anything_joins() {
    let m = Master::start();
    let out = Command::new(env!("CARGO_BIN_EXE_orkops-hollow"))
        .args(["--config", m.config.to_str().unwrap()])
        .args(["--nodes", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--nodes must be at least 1"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_orkops-hollow"))
        .args(["--config", m.config.to_str().unwrap()])
        .args(["--nodes", "2", "--prefix", "Not_A_Name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--prefix"), "{err}");
    assert!(nodes(&Api::new(&m), "Not_A_Name").is_empty());
}

#[test]
fn metrics_count_the_lists_that_reach_the_store_for_the_admin_only() {
    let m = Master::start();
    let api = Api::new(&m);
    let count = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("apiserver_storage_list_total{resource=\"configmaps\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let metrics = |token: Option<&str>| {
        api.rt.block_on(async {
            let mut req = api.http.client.get(format!("{}/metrics", api.http.base));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (code, before) = metrics(Some(&api.token));
    assert_eq!(code, 200, "{before}");
    for _ in 0..3 {
        api.get("/api/v1/namespaces/default/configmaps");
    }
    let (_, after) = metrics(Some(&api.token));
    assert!(
        count(&after) >= count(&before) + 3,
        "three lists counted: {before} -> {after}"
    );
    let (code, _) = metrics(None);
    assert_eq!(code, 401, "/metrics needs credentials");
}
