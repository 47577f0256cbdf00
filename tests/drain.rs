//! PodDisruptionBudgets, the eviction subresource, and cordon/drain/uncordon, driven by the
//! real kubectl, the `orkops` CLI and raw HTTP against a real master and etcd, with two hollow
//! nodes running a Deployment's pods: a budget that allows no disruption stops a drain (the
//! node stays cordoned, no pod goes, the 429 names the budget); once it allows one, the drain
//! evicts the node's pods one at a time while their replacements start on the other node.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::hollow::Hollow;
use common::kube::{kubeconfig, kubectl, kubectl_command};
use common::{wait_until, Master};
use reqwest::Method;
use serde_json::{json, Value};

fn apply(cfg: &Path, yaml: &str) {
    let mut child = kubectl_command(cfg, &["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get_json(cfg: &Path, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let (ok, out, err) = kubectl(cfg, &a);
    assert!(ok, "kubectl get {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// One admin request, from blocking test code.
fn call(m: &Master, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(m.http().call(method, path, Some(&m.admin_token()), body))
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The web pods that are not being deleted, as (name, node, ready).
fn web_pods(cfg: &Path) -> Vec<(String, String, bool)> {
    get_json(cfg, &["pods", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                ready(p),
            )
        })
        .collect()
}

fn budget_status(cfg: &Path) -> Value {
    get_json(cfg, &["pdb", "web"])["status"].clone()
}

fn wait_budget(cfg: &Path, desired: i64, allowed: i64) {
    let mut last = Value::Null;
    wait_until(
        &format!("the budget to want {desired} healthy and allow {allowed}"),
        Duration::from_secs(120),
        || {
            last = budget_status(cfg);
            last["desiredHealthy"] == desired
                && last["disruptionsAllowed"] == allowed
                && last["currentHealthy"] == 3
        },
    );
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: orkops/busybox:1.35\n        command: [sleep, '3600']\n";

fn budget(min: i64) -> String {
    format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: {min}\n  selector:\n    matchLabels: {{app: web}}\n")
}

#[test]
fn a_disruption_budget_holds_a_drain_until_it_allows_one_pod_at_a_time() {
    let m = Master::start();
    let prefix = format!("d{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let _nodes = Hollow::start(&m, 2, &prefix, "shared");
    let cfg = kubeconfig(&m, m.dir.path());
    apply(&cfg, DEPLOYMENT);
    apply(&cfg, &budget(3));
    wait_until("3 web pods Ready", Duration::from_secs(180), || {
        let ps = web_pods(&cfg);
        ps.len() == 3 && ps.iter().all(|p| p.2)
    });
    wait_budget(&cfg, 3, 0);
    let st = budget_status(&cfg);
    assert_eq!(st["expectedPods"], 3, "{st}");
    assert_eq!(st["conditions"][0]["type"], "DisruptionAllowed", "{st}");
    assert_eq!(st["conditions"][0]["reason"], "InsufficientPods", "{st}");
    let (ok, table, err) = kubectl(&cfg, &["get", "pdb"]);
    assert!(ok, "{err}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .take(4)
            .eq(["web", "3", "N/A", "0"]),
        "{table}"
    );

    // the node with the most web pods is drained
    let pods = web_pods(&cfg);
    let node = pods
        .iter()
        .map(|p| p.1.clone())
        .max_by_key(|n| pods.iter().filter(|p| &p.1 == n).count())
        .unwrap();
    let other = format!(
        "{}{}",
        &node[..node.len() - 1],
        if node.ends_with('0') { '1' } else { '0' }
    );
    let on_node = |ps: &[(String, String, bool)]| ps.iter().filter(|p| p.1 == node).count();
    let before = on_node(&pods);

    // an attacker's (or a careless) raw eviction is refused with 429 and the budget's words
    let victim = pods.iter().find(|p| p.1 == node).unwrap().0.clone();
    let (code, st) = call(
        &m,
        Method::POST,
        &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim}})),
    );
    assert_eq!(code, 429, "{st}");
    assert_eq!(st["reason"], "TooManyRequests", "{st}");
    assert_eq!(
        st["details"]["causes"][0]["reason"], "DisruptionBudget",
        "{st}"
    );
    assert_eq!(
        st["details"]["causes"][0]["message"],
        "The disruption budget web needs 3 healthy pods and has 3 currently",
        "{st}"
    );
    let (code, st) = call(
        &m,
        Method::POST,
        &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        Some(
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "someone-else"}}),
        ),
    );
    assert_eq!(code, 400, "{st}");
    let (code, _) = call(
        &m,
        Method::POST,
        "/api/v1/namespaces/default/pods/no-such-pod/eviction",
        Some(
            json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "no-such-pod"}}),
        ),
    );
    assert_eq!(code, 404);

    // kubectl drain gives up at its timeout; the node stays cordoned and keeps its pods
    let (ok, out, err) = kubectl(&cfg, &["drain", &node, "--timeout=12s"]);
    assert!(
        !ok,
        "the drain must fail while the budget allows nothing: {out}"
    );
    assert!(
        err.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{err}"
    );
    let n = get_json(&cfg, &["node", &node]);
    assert_eq!(n["spec"]["unschedulable"], true, "{n}");
    let (_, nodes_table, _) = kubectl(&cfg, &["get", "nodes", &node]);
    assert!(
        nodes_table.contains("Ready,SchedulingDisabled"),
        "{nodes_table}"
    );
    assert_eq!(on_node(&web_pods(&cfg)), before, "no pod left the node");

    // orkops drain names the budget that blocks it
    let r = m.orkops(&["drain", &node, "--timeout", "8s"]);
    let e = r.failure();
    assert!(
        e.contains("The disruption budget web needs 3 healthy pods"),
        "{e}"
    );

    // with room for one disruption the drain goes through, one pod at a time
    apply(&cfg, &budget(2));
    wait_budget(&cfg, 2, 1);
    let (ok, out, err) = kubectl(&cfg, &["drain", &node, "--timeout=180s"]);
    assert!(ok, "kubectl drain: {out}\n{err}");
    assert!(out.contains(&format!("node/{node} drained")), "{out}");
    wait_until(
        "3 web pods Ready on the other node",
        Duration::from_secs(180),
        || {
            let ps = web_pods(&cfg);
            ps.len() == 3 && ps.iter().all(|p| p.2 && p.1 == other)
        },
    );
    wait_budget(&cfg, 2, 1);

    // uncordon, then the orkops CLI cordons and uncordons the other way round
    let (ok, out, err) = kubectl(&cfg, &["uncordon", &node]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("node/{node} uncordoned")), "{out}");
    assert!(get_json(&cfg, &["node", &node])["spec"]["unschedulable"].is_null());
    assert!(m.orkops(&["cordon", &other]).success().contains("cordoned"));
    assert_eq!(
        get_json(&cfg, &["node", &other])["spec"]["unschedulable"],
        true
    );
    assert!(m
        .orkops(&["cordon", &other])
        .success()
        .contains("already cordoned"));
    assert!(m
        .orkops(&["uncordon", &other])
        .success()
        .contains("uncordoned"));
    assert!(get_json(&cfg, &["node", &other])["spec"]["unschedulable"].is_null());
}

#[test]
fn orkops_drain_refuses_bare_pods_without_force_and_evicts_them_with_it() {
    let m = Master::start();
    let prefix = format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let _nodes = Hollow::start(&m, 1, &prefix, "shared");
    let node = format!("{prefix}-0000");
    let cfg = kubeconfig(&m, m.dir.path());
    apply(&cfg, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\nspec:\n  containers:\n  - name: c\n    image: orkops/busybox:1.35\n");
    wait_until("the bare pod on the node", Duration::from_secs(120), || {
        get_json(&cfg, &["pod", "bare"])["spec"]["nodeName"] == node.as_str()
    });
    let e = m.orkops(&["drain", &node]).failure();
    assert!(
        e.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/bare"
        ),
        "{e}"
    );
    assert!(
        get_json(&cfg, &["pod", "bare"])["metadata"]["deletionTimestamp"].is_null(),
        "nothing was evicted"
    );
    let out = m
        .orkops(&[
            "drain",
            &node,
            "--force",
            "--grace-period",
            "0",
            "--timeout",
            "2m",
        ])
        .success();
    assert!(
        out.contains("pod/bare evicted") && out.contains("drained"),
        "{out}"
    );
    let (ok, _, err) = kubectl(&cfg, &["get", "pod", "bare"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    let e = m.orkops(&["drain", "no-such-node"]).failure();
    assert!(e.contains("no-such-node"), "{e}");
}

#[test]
fn budgets_are_validated_as_kubernetes_validates_them() {
    let m = Master::start();
    let path = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    for (spec, field) in [
        (
            json!({"minAvailable": 1, "maxUnavailable": 1}),
            "minAvailable and maxUnavailable cannot be both set",
        ),
        (json!({"minAvailable": -1}), "spec.minAvailable"),
        (
            json!({"maxUnavailable": "150%"}),
            "must not be greater than 100%",
        ),
        (json!({"maxUnavailable": "half"}), "a valid percent string"),
        (
            json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Sometimes"}),
            "spec.unhealthyPodEvictionPolicy",
        ),
    ] {
        let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "bad"}, "spec": spec});
        let (code, st) = call(&m, Method::POST, path, Some(body));
        assert_eq!(code, 422, "{spec}: {st}");
        assert!(
            st["message"].as_str().unwrap().contains(field),
            "{spec}: {st}"
        );
    }
    let (code, _) = call(&m, Method::GET, &format!("{path}/bad"), None);
    assert_eq!(code, 404, "nothing was stored");
    let body = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "ok"}, "spec": {"maxUnavailable": "25%", "selector": {}}});
    let (code, st) = call(&m, Method::POST, path, Some(body));
    assert_eq!(code, 201, "{st}");
    // no pods selected: nothing expected, nothing allowed, as Kubernetes says
    wait_until("the budget's first status", Duration::from_secs(60), || {
        let (_, st) = call(&m, Method::GET, &format!("{path}/ok"), None);
        st["status"]["observedGeneration"] == 1
            && st["status"]["expectedPods"] == 0
            && st["status"]["disruptionsAllowed"] == 0
    });
}
