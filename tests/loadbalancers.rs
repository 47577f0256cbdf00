//! Public services on AWS load balancers, end to end on the local cloud: a cluster of three
//! masters and two nodes over two zones, created with the `hello` add-on (a LoadBalancer
//! service, so an NLB), an ALB service beside it, bad services, a node added, the controller's
//! master lost while a service is deleted, and the cluster deleted with a service still up.
//! The load balancers' bodies forward from the host, the way an internet client reaches them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cloud::{free_network_cidr, poll, LocalCloud};
use common::TEST_IMAGE;
use serde_json::Value;

const LONG: Duration = Duration::from_secs(180);

/// `GET /` through `host` (a load balancer's DNS name, resolved by the host's /etc/hosts
/// that the bodies daemon keeps) on port 80: the body, or why not.
fn get(host: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = (host, 80)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {host}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if !out.starts_with("HTTP/1.") || !out.contains(" 200 ") {
        return Err(format!("not a 200 from {host}: {out:?}"));
    }
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// The service's load balancer hostname, once the controller wrote it.
fn hostname(c: &LocalCloud, svc: &str) -> String {
    poll(&format!("a load balancer for service {svc}"), LONG, || {
        let s = c.work_json(&["get", "svc", svc]);
        s.pointer("/status/loadBalancer/ingress/0/hostname")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{}", s["status"]))
    })
}

/// The pods that answered through `host`, over `n` requests (the page names its pod).
fn answering_pods(host: &str, n: usize) -> BTreeSet<String> {
    let mut pods = BTreeSet::new();
    for _ in 0..n {
        if let Ok(body) = get(host) {
            if let Some(p) = body.split("pod ").nth(1).and_then(|r| r.split(' ').next()) {
                pods.insert(p.to_string());
            }
        }
    }
    pods
}

/// The warning events recorded about a service.
fn warnings(c: &LocalCloud, svc: &str) -> String {
    c.work(&["describe", "svc", svc])
}

/// Instance ids registered (not draining) with the target groups of the load balancer `dns`.
fn targets(c: &LocalCloud, dns: &str) -> BTreeSet<String> {
    let o = c.observe("pub");
    let Some(lb) = o.load_balancers.iter().find(|l| l.dns == dns) else {
        return BTreeSet::new();
    };
    let tgs: BTreeSet<&str> = o
        .listeners
        .iter()
        .filter(|l| l.load_balancer == lb.arn)
        .filter_map(|l| l.target_group.as_deref())
        .collect();
    o.target_groups
        .iter()
        .filter(|g| tgs.contains(g.arn.as_str()))
        .flat_map(|g| g.targets.clone())
        .collect()
}

#[test]
fn public_services_get_load_balancers_that_follow_them() {
    let c = LocalCloud::with_bodies();
    let fresh = c.everything();
    let cidr = free_network_cidr();
    c.ok(&[
        "create",
        "cluster",
        "pub",
        "--zones",
        "us-east-1a,us-east-1b",
        "--masters",
        "3",
        "--nodes",
        "2",
        "--network-cidr",
        &cidr,
        "--addons",
        "hello",
        "--yes",
        "-o",
        "text",
    ]);
    // the add-on's web servers need the test image on the nodes (no registry here)
    common::test_image();
    c.work(&["image", "load", TEST_IMAGE]);
    c.work(&["scale", "deployment/hello", "--replicas", "3"]);
    poll("hello's three replicas to be ready", LONG, || {
        let d = c.work_json(&["get", "deployment", "hello"]);
        (d["status"]["readyReplicas"] == 3)
            .then_some(())
            .ok_or_else(|| d["status"].to_string())
    });

    // the add-on's service: an NLB, reached from the host, spread over the replicas
    let nlb = hostname(&c, "hello");
    let body = poll("an answer through the NLB", LONG, || get(&nlb));
    assert!(body.contains("hello from orkops"), "{body}");
    poll("answers from every replica through the NLB", LONG, || {
        let pods = answering_pods(&nlb, 30);
        (pods.len() == 3)
            .then_some(())
            .ok_or_else(|| format!("{pods:?}"))
    });
    let table = c.work(&["get", "svc", "hello"]);
    assert!(
        table.contains(&nlb),
        "get svc shows the load balancer: {table}"
    );

    // an ALB over the same pods, and services the controller refuses, each saying why
    c.work(&[
        "apply",
        "-f",
        &write(
            &c,
            "svcs.yaml",
            r#"
apiVersion: v1
kind: Service
metadata:
  name: web-alb
  annotations: {orkops.io/load-balancer-type: alb}
spec:
  type: LoadBalancer
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: bad-type
  annotations: {service.beta.kubernetes.io/aws-load-balancer-type: classic}
spec:
  type: LoadBalancer
  selector: {app: hello}
  ports: [{port: 81, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: bad-ports
  annotations: {orkops.io/load-balancer-type: alb}
spec:
  type: LoadBalancer
  selector: {app: hello}
  ports: [{port: 82, protocol: UDP, targetPort: 8080}]
"#,
        ),
    ]);
    let alb = hostname(&c, "web-alb");
    let o = c.observe("pub");
    let kind = |dns: &str| {
        o.load_balancers
            .iter()
            .find(|l| l.dns == dns)
            .map(|l| l.kind.clone())
    };
    assert_eq!(kind(&nlb).as_deref(), Some("network"));
    assert_eq!(kind(&alb).as_deref(), Some("application"));
    let body = poll("an answer through the ALB", LONG, || get(&alb));
    assert!(body.contains("hello from orkops"), "{body}");
    for (svc, want) in [
        ("bad-type", "\"classic\" is not supported"),
        ("bad-ports", "an ALB carries HTTP over TCP only, not UDP"),
    ] {
        poll(&format!("a warning on {svc}"), LONG, || {
            let d = warnings(&c, svc);
            d.contains(want).then_some(()).ok_or(d)
        });
        let s = c.work(&["get", "svc", svc]);
        assert!(s.contains("<pending>"), "{s}");
    }

    // a node joins: it becomes a target of every service's load balancer
    let before = targets(&c, &nlb);
    assert_eq!(before.len(), 2, "{before:?}");
    c.ok(&[
        "update", "cluster", "pub", "--nodes", "3", "--yes", "-o", "text",
    ]);
    let node3 = c.observe("pub").instance("node-3").unwrap().id.clone();
    for dns in [&nlb, &alb] {
        poll(&format!("node-3 as a target of {dns}"), LONG, || {
            let t = targets(&c, dns);
            t.contains(&node3).then_some(()).ok_or(format!("{t:?}"))
        });
    }

    // the master leading the controllers goes down; the ALB's service is deleted meanwhile
    // (another master answers) and its load balancer goes once a master leads again
    let leader = poll("the master leading the controllers", LONG, || {
        let o = c.observe("pub");
        let leader = o
            .instances_of(orkops::cloud::model::Role::Master)
            .find(|m| {
                c.on_instance(
                    &m.id,
                    "journalctl -u orkops-master | grep -q 'leading the cluster'",
                )
                .0
            })
            .map(|m| m.id.clone());
        leader.ok_or_else(|| "none yet".to_string())
    });
    c.block_on(c.sdk().ec2.stop_instances().instance_ids(&leader).send())
        .unwrap();
    poll("the leader's body to stop", LONG, || {
        let (up, _) = c.on_instance(&leader, "true");
        (!up).then_some(()).ok_or_else(|| "still up".into())
    });
    c.work(&["delete", "svc", "web-alb"]);
    poll("the ALB and its target groups to go", LONG, || {
        let o = c.observe("pub");
        let left: Vec<&str> = o
            .load_balancers
            .iter()
            .filter(|l| {
                l.tags.get("orkops.io/service").map(String::as_str) == Some("default/web-alb")
            })
            .map(|l| l.name.as_str())
            .chain(
                o.target_groups
                    .iter()
                    .filter(|g| {
                        g.tags.get("orkops.io/service").map(String::as_str)
                            == Some("default/web-alb")
                    })
                    .map(|g| g.name.as_str()),
            )
            .collect();
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    });
    assert!(get(&nlb).is_ok(), "the NLB still answers");

    // the cluster goes with a service (and its NLB) still up, and leaves nothing
    let out = c.ok(&["delete", "cluster", "pub", "--yes"]);
    assert!(out.contains("cluster pub deleted"), "{out}");
    assert!(c.observe("pub").is_empty());
    assert_eq!(c.everything(), fresh, "leftovers in the emulator");
}

fn write(c: &LocalCloud, name: &str, text: &str) -> String {
    let p = c.home.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}
