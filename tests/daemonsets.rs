//! DaemonSets against a real `orkops-master`, driven by the real kubectl on PATH: one pod on
//! every eligible node (a node that joins gets its pod, a node selector and taints narrow it
//! down, a deleted node's pod goes), `kubectl get ds` as upstream prints it, rolling updates
//! followed by `rollout status`, `rollout history|undo|restart`, OnDelete, the cascade when the
//! daemon set goes, and the 422s of invalid daemon sets. Pods run on fake nodes: threads
//! holding real node tokens that heartbeat their Node and report every pod bound to it Running
//! and Ready (and finish their deletion), as an agent would, without Docker. Skipped with a
//! message where no kubectl is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig};

use std::collections::BTreeMap;
use std::time::Duration;

use common::fakenode::FakeNode;
use common::kube::Kubectl;
use common::{runtime, wait_until, Master};
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

impl Kubectl {
    /// The pods labelled `app=APP` that are not being deleted.
    fn pods(&self, app: &str) -> Vec<Value> {
        let all = self.json(&["get", "pods", "-l", &format!("app={app}")]);
        all["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .cloned()
            .collect()
    }

    /// Node -> image of the pods of `app` (None when two pods share a node).
    fn placement(&self, app: &str) -> Option<BTreeMap<String, String>> {
        // kubectl per poll: look at most 4 times a second, the machine is small
        std::thread::sleep(Duration::from_millis(250));
        let pods = self.pods(app);
        let mut out = BTreeMap::new();
        for p in &pods {
            let node = p["spec"]["nodeName"].as_str().unwrap_or("<unbound>");
            let image = p["spec"]["containers"][0]["image"].as_str().unwrap_or("");
            let running = p["status"]["phase"] == "Running";
            let image = if running { image } else { "<not running>" };
            if out.insert(node.to_string(), image.to_string()).is_some() {
                return None;
            }
        }
        Some(out)
    }

    /// Waits until the pods of `app` are exactly one Running pod of `image` on each of `nodes`.
    #[track_caller]
    fn wait_placed(&self, app: &str, image: &str, nodes: &[&str]) {
        let want: BTreeMap<String, String> = nodes
            .iter()
            .map(|n| (n.to_string(), image.to_string()))
            .collect();
        let mut last = None;
        wait_until(&format!("{app}: {image} on {nodes:?}"), LONG, || {
            last = self.placement(app);
            last.as_ref() == Some(&want)
        });
    }
}

fn manifest(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

const AGENT: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: orkops-test/agent:1
";

/// The (reason, message) of the events about daemon set `name`, in the order they were made.
fn events_of(k: &Kubectl, name: &str) -> Vec<(String, String)> {
    let all = k.json(&["get", "events"]);
    let mut events: Vec<(i64, String, String)> = all["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            e["involvedObject"]["kind"] == "DaemonSet" && e["involvedObject"]["name"] == name
        })
        .map(|e| {
            let rv = e["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            let text = |f: &str| e[f].as_str().unwrap_or("").to_string();
            (rv, text("reason"), text("message"))
        })
        .collect();
    events.sort();
    events.into_iter().map(|(_, r, m)| (r, m)).collect()
}

fn revisions_in(history: &str) -> Vec<String> {
    history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect()
}

/// The `kubectl get ds` table, cells split on runs of two or more spaces.
fn table(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

#[test]
fn kubectl_runs_one_daemon_pod_per_eligible_node_and_rolls_it_out() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let (_a, _b, _c) = (
        FakeNode::start(&m, "a"),
        FakeNode::start(&m, "b"),
        FakeNode::start(&m, "c"),
    );
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    // c is tainted before the daemon set exists: it gets no pod
    k.ok(&["taint", "nodes", "c", "dedicated=infra:NoSchedule"]);
    k.ok(&["create", "-f", &manifest(dir.path(), "agent", AGENT)]);
    k.wait_placed("agent", "orkops-test/agent:1", &["a", "b"]);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let rows = table(&k.ok(&["get", "ds"]));
    assert_eq!(
        rows[0],
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..7], ["agent", "2", "2", "2", "2", "2", "<none>"]);
    let ds = k.json(&["get", "ds", "agent"]);
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        1
    );
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "1"
    );
    for p in k.pods("agent") {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("DaemonSet"), Some("agent"))
        );
        assert!(p["metadata"]["generateName"] == "agent-", "{p}");
        assert!(
            p["metadata"]["labels"]["controller-revision-hash"].is_string(),
            "{p}"
        );
        let node = p["spec"]["nodeName"].clone();
        let term = &p["spec"]["affinity"]["nodeAffinity"]
            ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0];
        assert_eq!(term["matchFields"][0]["values"], json!([node]), "{p}");
        let tolerations = p["spec"]["tolerations"].to_string();
        assert!(
            tolerations.contains("node.kubernetes.io/unschedulable"),
            "{p}"
        );
    }

    // a node that joins gets its pod; a cordoned one keeps it (daemons tolerate the cordon)
    let d = FakeNode::start(&m, "d");
    k.wait_placed("agent", "orkops-test/agent:1", &["a", "b", "d"]);
    k.ok(&["cordon", "d"]);

    // a node selector: only the labelled nodes, following the labels
    let picky = AGENT
        .replace("name: agent", "name: picky")
        .replace("app: agent", "app: picky")
        .replace(
            "    spec:\n",
            "    spec:\n      nodeSelector: {disk: ssd}\n",
        );
    k.ok(&["create", "-f", &manifest(dir.path(), "picky", &picky)]);
    k.ok(&["label", "nodes", "b", "disk=ssd"]);
    k.wait_placed("picky", "orkops-test/agent:1", &["b"]);
    k.ok(&["label", "nodes", "a", "disk=ssd"]);
    k.ok(&["label", "nodes", "b", "disk-"]);
    k.wait_placed("picky", "orkops-test/agent:1", &["a"]);
    let rows = table(&k.ok(&["get", "ds", "picky"]));
    assert_eq!(rows[1][6], "disk=ssd", "{rows:?}");

    // a new image rolls out node by node, and kubectl follows it to its end
    k.ok(&["set", "image", "ds/agent", "agent=orkops-test/agent:2"]);
    let out = k.ok(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    k.wait_placed("agent", "orkops-test/agent:2", &["a", "b", "d"]);
    let ds = k.json(&["get", "ds", "agent"]);
    assert_eq!(
        ds["status"]["observedGeneration"],
        ds["metadata"]["generation"]
    );
    assert_eq!(ds["status"]["updatedNumberScheduled"], 3, "{ds}");
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "2"
    );
    // one node at a time (maxUnavailable 1): never two old pods deleted before a new one came
    let mut outstanding = 0;
    for (reason, message) in events_of(&k, "agent") {
        match reason.as_str() {
            "SuccessfulDelete" => outstanding += 1,
            "SuccessfulCreate" if outstanding > 0 => outstanding -= 1,
            _ => {}
        }
        assert!(
            outstanding <= 1,
            "{reason}: {message} with {outstanding} pods down"
        );
    }

    // tolerating the taint, the tainted node joins in
    let toleration = json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]}}}});
    k.ok(&[
        "patch",
        "ds",
        "agent",
        "--type=strategic",
        "-p",
        &toleration.to_string(),
    ]);
    k.ok(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    k.wait_placed("agent", "orkops-test/agent:2", &["a", "b", "c", "d"]);

    // history from the ControllerRevisions; undo goes back to revision 2 (without the
    // toleration: c's pod goes), which becomes revision 4
    let history = k.ok(&["rollout", "history", "ds/agent"]);
    assert_eq!(revisions_in(&history), ["1", "2", "3"], "{history}");
    let revisions = table(&k.ok(&["get", "controllerrevisions"]));
    assert_eq!(revisions[0], ["NAME", "CONTROLLER", "REVISION", "AGE"]);
    assert!(
        revisions
            .iter()
            .any(|r| r[1] == "daemonset.apps/agent" && r[2] == "3"),
        "{revisions:?}"
    );
    let one = k.ok(&["rollout", "history", "ds/agent", "--revision=1"]);
    assert!(one.contains("orkops-test/agent:1"), "{one}");
    let described = k.ok(&["describe", "ds", "agent"]);
    assert!(
        described.contains("Number of Nodes Scheduled with Up-to-date Pods: 4")
            && described.contains("Tolerations:     dedicated=infra:NoSchedule"),
        "{described}"
    );
    let out = k.ok(&["rollout", "undo", "ds/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    k.ok(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    k.wait_placed("agent", "orkops-test/agent:2", &["a", "b", "d"]);
    wait_until("revision 2 renumbered 4", LONG, || {
        std::thread::sleep(Duration::from_millis(250));
        revisions_in(&k.ok(&["rollout", "history", "ds/agent"])) == ["1", "3", "4"]
    });

    // restart: every pod replaced by one of the new template
    let before: Vec<Value> = k
        .pods("agent")
        .iter()
        .map(|p| p["metadata"]["name"].clone())
        .collect();
    k.ok(&["rollout", "restart", "ds/agent"]);
    k.ok(&["rollout", "status", "ds/agent", "--timeout=120s"]);
    wait_until("every agent pod replaced", LONG, || {
        let pods = k.pods("agent");
        std::thread::sleep(Duration::from_millis(250));
        pods.len() == 3
            && pods.iter().all(|p| {
                !before.contains(&p["metadata"]["name"]) && p["status"]["phase"] == "Running"
            })
    });

    // OnDelete: a new image waits until a pod is deleted by hand
    let on_delete =
        json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}});
    k.ok(&[
        "patch",
        "ds",
        "agent",
        "--type=merge",
        "-p",
        &on_delete.to_string(),
    ]);
    k.ok(&["set", "image", "ds/agent", "agent=orkops-test/agent:3"]);
    wait_until("the new generation observed", LONG, || {
        std::thread::sleep(Duration::from_millis(250));
        let ds = k.json(&["get", "ds", "agent"]);
        ds["status"]["observedGeneration"] == ds["metadata"]["generation"]
    });
    assert_eq!(
        k.placement("agent")
            .unwrap()
            .values()
            .filter(|i| *i == "orkops-test/agent:2")
            .count(),
        3
    );
    let on_a = k
        .pods("agent")
        .into_iter()
        .find(|p| p["spec"]["nodeName"] == "a")
        .unwrap();
    k.ok(&["delete", "pod", on_a["metadata"]["name"].as_str().unwrap()]);
    wait_until("a's pod replaced by agent:3, the others kept", LONG, || {
        let placed = k.placement("agent");
        placed.is_some_and(|p| {
            p.get("a").map(String::as_str) == Some("orkops-test/agent:3")
                && p.get("b").map(String::as_str) == Some("orkops-test/agent:2")
                && p.len() == 3
        })
    });

    // kubectl drain knows daemon pods: refused without --ignore-daemonsets, kept with it
    let (ok, _, err) = k.run(&["drain", "d", "--timeout=60s"]);
    assert!(!ok && err.contains("DaemonSet-managed Pods"), "{err}");
    k.ok(&["drain", "d", "--ignore-daemonsets", "--timeout=60s"]);
    assert!(k.placement("agent").unwrap().contains_key("d"));

    // a node that goes takes its daemon pod with it
    drop(d);
    k.ok(&["delete", "node", "d"]);
    wait_until("d's pod gone", LONG, || {
        k.placement("agent")
            .is_some_and(|p| p.len() == 2 && !p.contains_key("d"))
    });

    // deleting the daemon set takes its pods (and revisions) with it
    k.ok(&["delete", "ds", "agent", "picky"]);
    wait_until("the daemon pods and revisions to go", LONG, || {
        std::thread::sleep(Duration::from_millis(250));
        k.pods("agent").is_empty()
            && k.pods("picky").is_empty()
            && k.json(&["get", "controllerrevisions"])["items"]
                .as_array()
                .is_some_and(Vec::is_empty)
    });
}

#[test]
fn invalid_daemon_sets_are_refused_with_the_field_named() {
    let m = Master::start();
    let (http, token) = (m.http(), m.admin_token());
    let rt = runtime();
    let path = "/apis/apps/v1/namespaces/default/daemonsets";
    let body = |labels: Value, restart: &str| {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "bad"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": labels}, "spec": {"restartPolicy": restart,
                    "containers": [{"name": "a", "image": "orkops-test/agent:1"}]}}}})
    };
    for (b, field) in [
        (
            body(json!({"app": "other"}), "Always"),
            "spec.template.metadata.labels",
        ),
        (
            body(json!({"app": "agent"}), "Never"),
            "spec.template.spec.restartPolicy",
        ),
    ] {
        let (code, st) = rt.block_on(http.call(Method::POST, path, Some(&token), Some(b)));
        assert_eq!(code, 422, "{st}");
        assert_eq!(st["details"]["causes"][0]["field"], field, "{st}");
        assert_eq!(st["details"]["kind"], "DaemonSet", "{st}");
        assert!(st["message"].as_str().unwrap().contains(field), "{st}");
    }
    // kubectl says the same
    if have_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let k = Kubectl(kubeconfig(&m, dir.path()));
        let never = AGENT.replace("    spec:\n", "    spec:\n      restartPolicy: Never\n");
        let (ok, _, err) = k.run(&["create", "-f", &manifest(dir.path(), "never", &never)]);
        assert!(
            !ok && err.contains("spec.template.spec.restartPolicy"),
            "{err}"
        );
        assert!(err.contains("is invalid"), "{err}");
    }
    // the selector is immutable
    let good = body(json!({"app": "agent", "tier": "x"}), "Always");
    let (code, st) = rt.block_on(http.call(Method::POST, path, Some(&token), Some(good)));
    assert_eq!(code, 201, "{st}");
    let one = format!("{path}/bad");
    let (_, mut ds) = rt.block_on(http.call(Method::GET, &one, Some(&token), None));
    ds["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    ds["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    let (code, st) = rt.block_on(http.call(Method::PUT, &one, Some(&token), Some(ds)));
    assert_eq!(code, 422, "{st}");
    assert_eq!(st["details"]["causes"][0]["field"], "spec.selector", "{st}");
}
