//! Nodes on separate hosts: each host a network namespace with its own Docker engine on a
//! private lan, the master on the lan's root address (see `common::hosts`). Needs root.

mod common;

use std::time::Duration;

use common::hosts::{assert_no_leftovers, Host, Lan};
use common::{wait_until, Master, TEST_IMAGE};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);

fn pinned_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: {TEST_IMAGE}
    command: [sleep, "3600"]
"#
    )
}

fn pod(m: &Master, name: &str) -> Value {
    m.orkops(&["get", "pod", name, "-o", "json"]).json()
}

/// The Docker id of the pod's container, from its status.
fn container_id(m: &Master, name: &str) -> String {
    let p = pod(m, name);
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("docker://"))
        .unwrap_or_else(|| panic!("no container id: {p}"))
        .to_string()
}

fn running_in(h: &Host, id: &str) -> bool {
    h.docker(&["inspect", "-f", "{{.State.Running}}", id]) == (true, "true".to_string())
}

/// `ping` from the root namespace (busybox's: the test image is built from it anyway).
fn root_pings(ip: std::net::Ipv4Addr) -> bool {
    std::process::Command::new("busybox")
        .args(["ping", "-c1", "-W2", &ip.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `orkops exec` into the pod: the master reaches the pod's agent on the lan.
fn exec_hostname(m: &Master, pod: &str) -> String {
    m.orkops(&["exec", pod, "--", "hostname"]).success()
}

#[test]
fn hosts_are_separate_and_leave_nothing_behind() {
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    assert!(
        m.endpoint.contains(&lan.root_ip.to_string()),
        "{}",
        m.endpoint
    );
    let a = Host::start(&lan, &m, 0, &["--network", "none"]);
    let mut b = Host::start(&lan, &m, 1, &["--network", "none"]);
    let names = [lan.name.clone(), a.name.clone(), b.name.clone()];

    for (pod, host) in [("on-a", &a), ("on-b", &b)] {
        m.orkops_stdin(&["apply", "-f", "-"], Some(&pinned_pod(pod, &host.name)))
            .success();
    }
    wait_until("both pods to run", LONG, || {
        ["on-a", "on-b"]
            .iter()
            .all(|p| pod(&m, p)["status"]["phase"] == "Running")
    });
    for (p, host) in [("on-a", &a), ("on-b", &b)] {
        let st = pod(&m, p)["status"].clone();
        assert_eq!(st["hostIP"], host.ip.to_string(), "{st}");
        assert_eq!(pod(&m, p)["spec"]["nodeName"], host.name.as_str());
    }
    let (id_a, id_b) = (container_id(&m, "on-a"), container_id(&m, "on-b"));
    assert!(running_in(&a, &id_a), "on-a's container runs on host a");
    assert!(running_in(&b, &id_b), "on-b's container runs on host b");
    assert!(!a.docker(&["inspect", &id_b]).0, "host a's engine has on-b");
    assert!(!b.docker(&["inspect", &id_a]).0, "host b's engine has on-a");
    for id in [&id_a, &id_b] {
        assert!(
            !common::docker(&["inspect", id]).0,
            "the machine's engine has {id}"
        );
    }
    // each host's engine is its own: one pod's sandbox and container, nothing of the other
    for (h, other) in [(&a, &b), (&b, &a)] {
        let (ok, out) = h.docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=orkops.io/node={}", other.name),
        ]);
        assert!(
            ok && out.is_empty(),
            "{} runs {}'s containers: {out}",
            h.name,
            other.name
        );
    }

    // the hosts reach each other over the lan, and the root namespace reaches both
    let (ok, out) = a.exec(&["busybox", "ping", "-c1", "-W2", &b.ip.to_string()]);
    assert!(ok, "host a cannot ping host b: {out}");
    let (ok, out) = b.exec(&["busybox", "ping", "-c1", "-W2", &a.ip.to_string()]);
    assert!(ok, "host b cannot ping host a: {out}");
    assert!(root_pings(a.ip) && root_pings(b.ip));
    exec_hostname(&m, "on-a");
    exec_hostname(&m, "on-b");

    b.power_off();
    assert!(
        !a.exec(&["busybox", "ping", "-c1", "-W1", &b.ip.to_string()])
            .0,
        "host b still answers after its power-off"
    );
    assert!(!root_pings(b.ip), "host b answers the root namespace");
    assert!(
        root_pings(a.ip),
        "host a does not answer after b's power-off"
    );
    assert!(running_in(&a, &id_a), "on-a's container stopped");
    exec_hostname(&m, "on-a");
    assert_eq!(pod(&m, "on-a")["status"]["phase"], "Running");
    let nodes = m.orkops(&["get", "nodes"]).success();
    assert!(nodes.contains(&a.name), "{nodes}");

    drop(b);
    drop(a);
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}
