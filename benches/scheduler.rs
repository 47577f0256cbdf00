//! Scheduler throughput: the pure scheduler with 1,000 simulated nodes in-process, and end to end
//! through a real master and etcd with 1,000 pending pods and 100 simulated (API-only) nodes.
//! Prints figures; asserts nothing about time. Run: `cargo bench --bench scheduler`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use futures::StreamExt;
use orkops::api::core::{Container, Node, NodeStatus, Pod, ResourceRequirements};
use orkops::api::meta::{Condition, OwnerReference, Quantity};
use orkops::api::Kind;
use orkops::client::{ApiClient, ClientConfig};
use orkops::controllers::scheduler;
use serde_json::{json, Value};

fn node(i: usize) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(format!("node-{i}"));
    n.metadata
        .labels
        .insert(scheduler::ZONE_LABEL.into(), format!("zone-{}", i % 3));
    let cap = BTreeMap::from([
        ("cpu".to_string(), Quantity("16".into())),
        ("memory".to_string(), Quantity("64Gi".into())),
        ("pods".to_string(), Quantity("110".into())),
    ]);
    n.status = Some(NodeStatus {
        capacity: cap.clone(),
        allocatable: cap,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    n
}

fn pod(i: usize) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(format!("p-{i}"));
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(format!("uid-{i}"));
    p.metadata.owner_references.push(OwnerReference {
        uid: format!("owner-{}", i % 20),
        controller: Some(true),
        ..Default::default()
    });
    p.spec.containers.push(Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: BTreeMap::from([
                ("cpu".to_string(), Quantity("100m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    });
    p
}

fn main() {
    // in-process: 1,000 nodes, 5,000 pods in batches of 1,000 (earlier batches stay bound)
    let nodes: Vec<Node> = (0..1000).map(node).collect();
    let mut bound: Vec<Pod> = Vec::new();
    let t0 = Instant::now();
    let mut placed = 0;
    for batch in 0..5 {
        let pending: Vec<Pod> = (batch * 1000..(batch + 1) * 1000).map(pod).collect();
        let refs: Vec<&Pod> = pending.iter().collect();
        let bound_refs: Vec<&Pod> = bound.iter().collect();
        let out = scheduler::schedule(&refs, &nodes, &bound_refs, &scheduler::Claims::new());
        for (o, mut p) in out.into_iter().zip(pending) {
            if let scheduler::Outcome::Bind { node, .. } = o {
                p.spec.node_name = Some(node);
                placed += 1;
            }
            bound.push(p);
        }
    }
    let dt = t0.elapsed();
    println!(
        "in-process: {placed} pods on 1000 nodes in {:.1} ms = {:.0} pods/s",
        dt.as_secs_f64() * 1e3,
        placed as f64 / dt.as_secs_f64()
    );

    // end to end: 1,000 pods pending (the 100 API-only nodes are not Ready yet), then the nodes
    // turn Ready and the clock runs until every pod is bound
    let m = common::Master::start();
    let cfg = ClientConfig::load(&m.config).unwrap();
    let admin = ApiClient::new(&cfg).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut join_cfg = cfg.clone();
        join_cfg.token = m.admin_token(); // the admin may mint node tokens for simulated nodes
        let joiner = ApiClient::new(&join_cfg).unwrap();
        let mut nodes = Vec::new();
        for i in 0..100 {
            let name = format!("sim-{i}");
            let tok = joiner.request(reqwest::Method::POST, &format!("/orkops/v1/nodes/{name}/token"), &[], None).await.unwrap();
            let mut nc = cfg.clone();
            nc.token = tok["token"].as_str().unwrap().to_string();
            let n = ApiClient::new(&nc).unwrap();
            n.create(Kind::Node, None, &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {}})).await.unwrap();
            let mut st = serde_json::to_value(node(i).status).unwrap();
            st["conditions"][0]["status"] = json!("False");
            n.replace_status(Kind::Node, None, &name, &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": st})).await.unwrap();
            nodes.push((name, n, i));
        }
        let total = 1000;
        let creates = (0..total).map(|i| {
            let admin = &admin;
            async move {
                let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("e-{i}")},
                    "spec": {"containers": [{"name": "c", "image": "x:1", "resources": {"requests": {"cpu": "100m"}}}]}});
                admin.create(Kind::Pod, Some("default"), &body).await.unwrap();
            }
        });
        let t0 = Instant::now();
        futures::stream::iter(creates).buffer_unordered(16).collect::<Vec<()>>().await;
        println!("end to end: {total} pods created in {:.2} s ({:.0}/s), all pending", t0.elapsed().as_secs_f64(), total as f64 / t0.elapsed().as_secs_f64());
        // let the scheduler record why they are pending before the nodes turn Ready
        common::wait_until("the pods to be marked unschedulable", std::time::Duration::from_secs(120), || {
            let list = rt_list(&m);
            list.iter().filter(|p| p.pointer("/status/conditions/0/reason") == Some(&json!("Unschedulable"))).count() == total
        });
        let mut events = admin.watch(Kind::Pod, Some("default"), &[]).await.unwrap();
        let t0 = Instant::now();
        for (name, n, i) in &nodes {
            let st = serde_json::to_value(node(*i).status).unwrap();
            n.replace_status(Kind::Node, None, name, &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": st})).await.unwrap();
        }
        let mut bound = std::collections::HashSet::new();
        while bound.len() < total {
            let Some(Ok(ev)) = events.next().await else { break };
            if ev.object.pointer("/spec/nodeName").and_then(Value::as_str).is_some() {
                bound.insert(ev.object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string());
            }
        }
        let dt = t0.elapsed();
        println!(
            "end to end: {} pending pods bound over 100 nodes in {:.2} s after the nodes turned Ready = {:.0} pods/s",
            bound.len(),
            dt.as_secs_f64(),
            bound.len() as f64 / dt.as_secs_f64()
        );
    });
}

/// Every pod, read through the CLI (blocking).
fn rt_list(m: &common::Master) -> Vec<Value> {
    let out = m.orkops(&["get", "pods", "-o", "json"]);
    out.json()["items"].as_array().cloned().unwrap_or_default()
}
