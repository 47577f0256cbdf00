//! End to end on the local cloud: `orkops create cluster` against a moto server of the test's
//! own and a bodies daemon of its own (`common::cloud::LocalCloud::with_bodies`), so every
//! instance is a real machine with sshd, dockerd and systemctl; the bootstrap runs over SSH;
//! etcd, `orkops-master` and `orkops-agent` run inside the bodies; the CLI reaches the API
//! through the load balancer's DNS name. Each test deletes its cluster and checks that nothing
//! is left: no emulator resource, container, volume, network, route or process. Needs root
//! and Docker (the bodies), like `tests/network.rs`.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use common::cloud::{free_network_cidr, poll, Bodies, LocalCloud};
use common::TEST_IMAGE;
use serde_json::Value;

/// Generous: these run on a loaded 2-core machine, two clusters at a time.
const LONG: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(120);

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ready(v: &Value) -> bool {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `-o json` progress: one JSON object per line.
fn progress(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Writes `yaml` to a file of the test's and applies it.
fn apply(c: &LocalCloud, name: &str, yaml: &str) -> String {
    let dir = c.home.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    c.work(&["apply", "-f", path.to_str().unwrap()])
}

/// Waits until exactly `n` pods of `app` exist (none terminating), all Ready; returns them.
fn settled(c: &LocalCloud, app: &str, n: usize) -> Vec<Value> {
    poll(&format!("{n} ready pods of {app}"), LONG, || {
        let all = items(&c.work_json(&["get", "pods", "-l", &format!("app={app}")]));
        let live: Vec<Value> = all
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
            .collect();
        if all.len() == n && live.iter().all(ready) {
            Ok(live)
        } else {
            Err(format!(
                "{} pods, {} of them live and ready",
                all.len(),
                live.iter().filter(|p| ready(p)).count()
            ))
        }
    })
}

/// `GET /` of the service `svc` from inside pod `pod`, `n` times: the bodies answered.
fn from_pod(c: &LocalCloud, pod: &str, svc: &str, n: usize) -> Result<Vec<String>, String> {
    let script = format!(
        "for i in $(seq 1 {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {svc} 80 | tail -n 1; done"
    );
    let o = c.workload(&["exec", pod, "--", "sh", "-c", &script]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let answers: Vec<String> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if o.status.success() && answers.len() == n {
        Ok(answers)
    } else {
        Err(format!("{} of {n} answers: {}", answers.len(), text(&o)))
    }
}

fn web(version: &str, replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {TEST_IMAGE}
        env: [{{name: VERSION, value: "{version}"}}]
        command: [sh, -c, 'mkdir -p /www && echo "$VERSION `hostname`" > /www/index.html && exec httpd -f -p 8080 -h /www']
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

const TICK: &str = r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: tick
            image: orkops/busybox:1.35
            command: [sh, -c, 'echo "tick from `hostname`"']
"#;

/// After `delete cluster`: the emulator holds what a fresh one holds, and the bodies daemon
/// has removed every container, volume and network of its owner, every route into the VPC,
/// and every process of the cluster's instances is gone.
fn assert_nothing_left(
    c: &LocalCloud,
    fresh: &common::cloud::Everything,
    cidr: &str,
    ids: &[String],
) {
    assert_eq!(&c.everything(), fresh, "emulator resources left");
    let b = c.bodies();
    poll(
        "the bodies daemon to remove the cluster's bodies",
        LONG,
        || {
            let mut left = b.docker_objects();
            left.extend(
                b.host_objects(cidr)
                    .into_iter()
                    .filter(|l| l.starts_with("route")),
            );
            left.extend(c.processes(ids));
            if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            }
        },
    );
}

fn stop_and_check_bodies(c: &mut LocalCloud, cidr: &str) {
    assert!(c.stop_bodies(), "the bodies daemon exits 0 on SIGTERM");
    let b = c.bodies();
    let mut left = b.docker_objects();
    left.extend(b.host_objects(cidr));
    assert!(left.is_empty(), "left by the bodies daemon: {left:?}");
}

fn instance_ids(c: &LocalCloud, cluster: &str) -> Vec<String> {
    c.observe(cluster)
        .instances
        .iter()
        .map(|i| i.id.clone())
        .collect()
}

#[test]
fn a_cluster_on_the_local_cloud_runs_a_service_and_leaves_nothing() {
    common::test_image();
    let mut c = LocalCloud::with_bodies();
    let fresh = c.everything();
    let cidr = free_network_cidr();
    let name = "e2e-web";

    let out = c.ok(&[
        "create",
        "cluster",
        name,
        "--zones",
        "us-east-1a",
        "--nodes",
        "2",
        "--network-cidr",
        &cidr,
        "--addons",
        "toolbox",
        "--yes",
        "-o",
        "json",
    ]);
    let lines = progress(&out);
    let done: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["phase"] == "bootstrap" && l["done"] == true)
        .filter_map(|l| l["instance"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        done,
        ["master-1", "node-1", "node-2"].map(String::from).into(),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == format!("cluster {name} created")
                || l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&format!("cluster {name} created in")))),
        "{out}"
    );
    let o = c.observe(name);
    let ids = instance_ids(&c, name);
    let lb = o
        .api_load_balancer()
        .expect("the API load balancer")
        .dns
        .clone();
    let cfg = c.client_config();
    assert_eq!(cfg.cluster.as_deref(), Some(name));
    assert_eq!(
        cfg.endpoints[0],
        format!("https://{lb}:6443"),
        "the load balancer's DNS name comes first: {:?}",
        cfg.endpoints
    );
    let master = o.instance("master-1").unwrap();
    assert_eq!(
        cfg.endpoints[1],
        format!("https://{}:6443", master.public_ip.as_deref().unwrap())
    );

    // the kubeconfig got the cluster's context, and kubectl reaches the cluster with it
    let kube = c.home.path().join(".kube/config");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kube).unwrap()).unwrap();
    assert_eq!(doc["current-context"].as_str(), Some(name), "{doc:?}");
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str(),
        Some(cfg.endpoints[0].as_str())
    );
    assert_eq!(
        doc["users"][0]["name"].as_str(),
        Some(format!("{name}-admin").as_str())
    );
    if let Ok(out) = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kube)
        .args(["--server", &cfg.endpoints[1], "get", "nodes", "-o", "name"])
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("node/node-1"),
            "kubectl get nodes: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let nodes = items(&c.work_json(&["get", "nodes"]));
    let names: BTreeSet<String> = nodes.iter().map(name_of).collect();
    assert_eq!(names, ["node-1", "node-2"].map(String::from).into());
    for n in &nodes {
        assert!(ready(n), "{n}");
        assert_eq!(
            n["metadata"]["labels"]["topology.kubernetes.io/zone"],
            "us-east-1a"
        );
    }

    let loaded = c.work(&["image", "load", TEST_IMAGE]);
    assert!(
        loaded.contains("node-1: loaded") && loaded.contains("node-2: loaded"),
        "{loaded}"
    );
    // the CronJob first, so that its minute passes while the rest runs
    assert!(apply(&c, "tick", TICK).contains("cronjob/tick created"));
    let cron_created = Instant::now();

    // 5 replicas behind a ClusterIP service, over both nodes
    apply(&c, "web-v1", &web("v1", 5));
    c.work(&["rollout", "status", "deployment/web", "--timeout", "300"]);
    let v1 = settled(&c, "web", 5);
    let on: BTreeSet<&str> = v1
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert_eq!(
        on.len(),
        2,
        "the replicas are spread over both nodes: {on:?}"
    );
    let svc = c.work_json(&["get", "service", "web"]);
    assert!(svc["spec"]["clusterIP"]
        .as_str()
        .is_some_and(|ip| !ip.is_empty()));

    // a pod reaches the service by name, and the service spreads the requests
    let client = name_of(&v1[0]);
    let answers = poll("the service to answer by name from a pod", SHORT, || {
        from_pod(&c, &client, "web.default.svc", 20)
    });
    assert!(answers.iter().all(|a| a.starts_with("v1 ")), "{answers:?}");
    let servers: BTreeSet<&str> = answers.iter().map(|a| &a[3..]).collect();
    assert!(
        servers.len() >= 2,
        "one service address, several pods: {servers:?}"
    );

    // scale up and down
    c.work(&["scale", "deployment/web", "--replicas", "8"]);
    c.work(&["rollout", "status", "deployment/web", "--timeout", "300"]);
    settled(&c, "web", 8);
    c.work(&["scale", "deployment/web", "--replicas", "3"]);
    let three = settled(&c, "web", 3);

    // a rolling update to a new template
    let old_hash = three[0]["metadata"]["labels"]["pod-template-hash"].clone();
    apply(&c, "web-v2", &web("v2", 3));
    c.work(&["rollout", "status", "deployment/web", "--timeout", "300"]);
    let v2 = settled(&c, "web", 3);
    for p in &v2 {
        assert_ne!(
            p["metadata"]["labels"]["pod-template-hash"], old_hash,
            "{p}"
        );
    }
    let client = name_of(&v2[0]);
    // the add-on create enabled: its pod checks the service from inside the pod network
    let listed = c.work(&["addons", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("toolbox") && l.contains("Installed")),
        "{listed}"
    );
    poll("the toolbox to reach the service", SHORT, || {
        let o = c.workload(&[
            "exec",
            "-n",
            "orkops-system",
            "toolbox",
            "--",
            "check",
            "web.default",
            "80",
        ]);
        let out = text(&o);
        if o.status.success() && out.contains("tcp: web.default:80 open") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let answers = poll("the service to answer v2 only", SHORT, || {
        let a = from_pod(&c, &client, "web", 10)?;
        if a.iter().all(|a| a.starts_with("v2 ")) {
            Ok(a)
        } else {
            Err(format!("{a:?}"))
        }
    });
    assert_eq!(answers.len(), 10);

    // the CronJob ran (every minute: its first Job within two minutes, on a busy machine more)
    let job = poll("a Job of the CronJob to succeed", LONG, || {
        let jobs = items(&c.work_json(&["get", "jobs"]));
        jobs.iter()
            .find(|j| j["status"]["succeeded"].as_i64().unwrap_or(0) >= 1)
            .map(name_of)
            .ok_or_else(|| {
                format!(
                    "{} s after the CronJob: {jobs:?}",
                    cron_created.elapsed().as_secs()
                )
            })
    });
    assert!(job.starts_with("tick-"), "{job}");
    let pod = items(&c.work_json(&["get", "pods", "-l", &format!("job-name={job}")]))
        .first()
        .map(name_of)
        .expect("the Job's pod");
    let log = c.work(&["logs", &pod]);
    assert!(log.contains("tick from"), "{log}");

    let valid = c.ok(&["validate", "cluster", name]);
    assert!(valid.contains("the cluster is valid"), "{valid}");

    let out = c.ok(&["delete", "cluster", name, "--yes"]);
    assert!(out.contains(&format!("cluster {name} deleted")), "{out}");
    assert!(c.observe(name).is_empty());
    assert!(
        !c.home.path().join(".orkops/clusters").join(name).exists(),
        "the local state goes with the cluster"
    );
    assert_nothing_left(&c, &fresh, &cidr, &ids);
    stop_and_check_bodies(&mut c, &cidr);
}

/// The masters whose current `orkops-master` process (after its last start) leads the
/// controllers, by its log.
fn leaders(c: &LocalCloud, masters: &[(String, String)]) -> Vec<String> {
    masters
        .iter()
        .filter(|(_, id)| {
            let (_, log) = c.on_instance(id, "cat /var/log/units/orkops-master.service.log");
            let current = log
                .rsplit("API server listening")
                .next()
                .unwrap_or_default();
            current
                .lines()
                .rev()
                .find(|l| {
                    l.contains("leading the cluster's controllers")
                        || l.contains("lost the controllers' leadership")
                })
                .is_some_and(|l| l.contains("leading"))
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// The load balancer's healthy targets as the bodies daemon's health checks see them.
fn healthy_targets(b: &Bodies, lb_dns: &str) -> Vec<String> {
    let st = b.status();
    st["load_balancers"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|l| l["dns_name"] == lb_dns)
        .flat_map(|l| l["healthy_targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

#[test]
fn three_masters_survive_losing_one() {
    common::test_image();
    let mut c = LocalCloud::with_bodies();
    let fresh = c.everything();
    let cidr = free_network_cidr();
    let name = "e2e-ha";
    c.ok(&[
        "create",
        "cluster",
        name,
        "--zones",
        "us-east-1a,us-east-1b,us-east-1c",
        "--masters",
        "3",
        "--nodes",
        "1",
        "--network-cidr",
        &cidr,
        "--yes",
        "-o",
        "json",
    ]);
    let o = c.observe(name);
    let ids = instance_ids(&c, name);
    let lb = o.api_load_balancer().unwrap().dns.clone();
    let mut masters: Vec<(String, String)> = o
        .instances_of(orkops::cloud::model::Role::Master)
        .map(|i| (i.name.clone(), i.id.clone()))
        .collect();
    masters.sort();
    assert_eq!(masters.len(), 3);
    let zones: BTreeSet<String> = o
        .instances_of(orkops::cloud::model::Role::Master)
        .map(|i| i.zone.clone())
        .collect();
    assert_eq!(zones.len(), 3, "one master per zone");
    let private_ip = |id: &str| {
        o.instances
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.private_ip.clone())
            .unwrap()
    };

    // one etcd of three members, and every master behind the load balancer
    let (ok, members) = c.on_instance(
        &masters[0].1,
        "curl -fsS --cacert /etc/orkops-etcd/pki/ca.crt --cert /var/lib/orkops-master/etcd-client.crt --key /var/lib/orkops-master/etcd-client.key -X POST https://127.0.0.1:2379/v3/cluster/member/list",
    );
    assert!(ok, "{members}");
    let members: Value = serde_json::from_str(&members).unwrap();
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["peerURLs"].as_array().is_some_and(|u| u
                .iter()
                .all(|u| u.as_str().unwrap().starts_with("https://")))),
        "the members talk over TLS: {members}"
    );
    poll(
        "the load balancer to have three healthy masters",
        SHORT,
        || {
            let h = healthy_targets(c.bodies(), &lb);
            if h.len() == 3 {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            }
        },
    );

    // objects before the loss
    c.work(&["image", "load", TEST_IMAGE]);
    let configmaps: String = (0..20)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before-{i}\n  labels: {{e2e: before}}\ndata:\n  n: \"{i}\"\n---\n"
            )
        })
        .collect();
    apply(&c, "before", &configmaps);
    apply(
        &c,
        "secret",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: kept\nstringData:\n  password: s3cret\n",
    );
    apply(&c, "web", &web("v1", 2));
    c.work(&["rollout", "status", "deployment/web", "--timeout", "300"]);
    settled(&c, "web", 2);
    let before = |c: &LocalCloud| -> BTreeSet<(String, String)> {
        items(&c.work_json(&["get", "configmaps", "-l", "e2e=before"]))
            .iter()
            .map(|m| {
                (
                    name_of(m),
                    m["metadata"]["uid"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let kept = before(&c);
    assert_eq!(kept.len(), 20);
    let secret_uid = c.work_json(&["get", "secret", "kept"])["metadata"]["uid"].clone();

    // lose the master that leads the controllers
    let leader = poll(
        "one master to lead the controllers",
        SHORT,
        || match leaders(&c, &masters).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("leaders: {other:?}")),
        },
    );
    let (_, leader_id) = masters.iter().find(|(n, _)| *n == leader).unwrap().clone();
    c.block_on(c.sdk().ec2.stop_instances().instance_ids(&leader_id).send())
        .unwrap();
    let lost = Instant::now();
    poll("the stopped master's body to stop", SHORT, || {
        let (_, running) = common::docker(&[
            "inspect",
            "-f",
            "{{.State.Running}}",
            &Bodies::container(&leader_id),
        ]);
        if running == "false" {
            Ok(())
        } else {
            Err(running)
        }
    });
    let dead = format!("{}:6443", private_ip(&leader_id));
    poll(
        "the load balancer to drop the stopped master",
        SHORT,
        || {
            let h = healthy_targets(c.bodies(), &lb);
            if h.len() == 2 && !h.contains(&dead) {
                Ok(())
            } else {
                Err(format!("{h:?}"))
            }
        },
    );

    // the API keeps answering through the load balancer's DNS name alone
    let mut lb_only = c.client_config();
    lb_only.endpoints = vec![format!("https://{lb}:6443")];
    let lb_config: PathBuf = c.home.path().join("lb-only.config");
    lb_only.save(&lb_config).unwrap();
    // every request answers from now on, reads and writes
    let dropped = lost.elapsed();
    let mut failures = Vec::new();
    for i in 0..30 {
        let o = if i % 3 == 0 {
            let path = c.home.path().join(format!("manifests/probe-{i}.yaml"));
            std::fs::write(
                &path,
                format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe-{i}\n"),
            )
            .unwrap();
            c.workload_with(&lb_config, &["apply", "-f", path.to_str().unwrap()])
        } else {
            c.workload_with(
                &lb_config,
                &["get", "configmaps", "-l", "e2e=before", "-o", "name"],
            )
        };
        let answered = o.status.success()
            && (i % 3 == 0 || String::from_utf8_lossy(&o.stdout).lines().count() == 20);
        if !answered {
            failures.push(format!(
                "request {i}, {:.1} s after the stop: {}",
                lost.elapsed().as_secs_f64(),
                text(&o).trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the load balancer dropped {leader} {:.1} s after the stop; then: {failures:#?}",
        dropped.as_secs_f64()
    );

    // nothing was lost
    assert_eq!(before(&c), kept, "the objects made before the loss");
    let s = c.work_json(&["get", "secret", "kept"]);
    assert_eq!(s["metadata"]["uid"], secret_uid);
    assert_eq!(settled(&c, "web", 2).len(), 2);

    // new writes work, and the controllers moved to another master: a new deployment's pods
    // are scheduled and run, and an old deployment scales
    let moved = poll("another master to lead the controllers", SHORT, || {
        let alive: Vec<(String, String)> = masters
            .iter()
            .filter(|(n, _)| *n != leader)
            .cloned()
            .collect();
        match leaders(&c, &alive).as_slice() {
            [one] => Ok(one.clone()),
            other => Err(format!("leaders: {other:?}")),
        }
    });
    assert_ne!(moved, leader);
    apply(
        &c,
        "after",
        &web("after", 2)
            .replace("name: web", "name: after")
            .replace("app: web", "app: after"),
    );
    c.work(&["rollout", "status", "deployment/after", "--timeout", "300"]);
    settled(&c, "after", 2);
    c.work(&["scale", "deployment/web", "--replicas", "3"]);
    settled(&c, "web", 3);
    let created = apply(
        &c,
        "after-loss",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-loss\ndata:\n  k: v\n",
    );
    assert!(
        created.contains("configmap/after-loss created"),
        "{created}"
    );
    let valid = c.ok(&["validate", "cluster", name]);
    assert!(valid.contains("the cluster is valid"), "{valid}");

    let out = c.ok(&["delete", "cluster", name, "--yes"]);
    assert!(out.contains(&format!("cluster {name} deleted")), "{out}");
    assert_nothing_left(&c, &fresh, &cidr, &ids);
    stop_and_check_bodies(&mut c, &cidr);
}

/// An ed25519 private key in OpenSSH format, and its public line.
fn another_key() -> (String, String) {
    let k =
        russh::keys::PrivateKey::random(&mut rand::rngs::OsRng, russh::keys::Algorithm::Ed25519)
            .unwrap();
    (
        k.to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap()
            .to_string(),
        k.public_key().to_openssh().unwrap(),
    )
}

/// No orkops file on the instance: nothing was uploaded.
fn assert_nothing_uploaded(c: &LocalCloud, id: &str) {
    let (_, found) = c.on_instance(
        id,
        "ls -d /usr/local/bin/orkops-* /etc/systemd/system/orkops-* /var/lib/orkops-master /var/lib/orkops-agent 2>/dev/null; true",
    );
    assert!(found.trim().is_empty(), "{id}: uploaded: {found}");
}

#[track_caller]
fn fails(c: &LocalCloud, args: &[&str]) -> String {
    let o = c.orkops(args);
    assert_eq!(o.status.code(), Some(1), "orkops {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bootstrap_failures_are_clear_and_delete_still_cleans_up() {
    let mut c = LocalCloud::with_bodies();
    let fresh = c.everything();
    let cidr = free_network_cidr();
    let name = "e2e-fail";
    c.ok(&[
        "create",
        "cluster",
        name,
        "--zones",
        "us-east-1a",
        "--nodes",
        "1",
        "--network-cidr",
        &cidr,
        "--infrastructure-only",
        "--yes",
    ]);
    let o = c.observe(name);
    let ids = instance_ids(&c, name);
    let master = o.instance("master-1").unwrap().id.clone();
    let node = o.instance("node-1").unwrap().id.clone();
    let dir = c.home.path().join(".orkops/clusters").join(name);
    let update = ["update", "cluster", name, "--yes", "-o", "json"];

    // (b) a key the instances do not know
    let key = dir.join("id_ed25519");
    let original_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, another_key().0).unwrap();
    let e = fails(&c, &update);
    for id in [&master, &node] {
        assert!(
            e.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("refused the cluster's SSH key")),
            "{id}: {e}"
        );
        assert_nothing_uploaded(&c, id);
    }
    assert!(
        e.contains(&format!("orkops update cluster {name} --yes")),
        "the hint: {e}"
    );
    std::fs::write(&key, &original_key).unwrap();

    // (c) host keys that changed since they were recorded (at the first contact, above)
    let known = dir.join("known_hosts");
    let recorded = std::fs::read_to_string(&known).unwrap();
    assert_eq!(recorded.lines().count(), 2, "{recorded}");
    let forged: String = recorded
        .lines()
        .map(|l| format!("{} {}\n", l.split(' ').next().unwrap(), another_key().1))
        .collect();
    std::fs::write(&known, forged).unwrap();
    let e = fails(&c, &update);
    for id in [&master, &node] {
        assert!(
            e.lines().any(|l| l.contains(id.as_str())
                && l.contains("host key changed")
                && l.contains("refusing to connect")),
            "{id}: {e}"
        );
        assert_nothing_uploaded(&c, id);
    }
    std::fs::write(&known, &recorded).unwrap();

    // (d) an upload that fails: the node's temporary file is a directory
    let blocker = "/usr/local/bin/orkops-agent.orkops-upload";
    let o = c.orkops(&[
        "ssh",
        name,
        "node-1",
        "--",
        "sudo",
        "mkdir",
        "-p",
        &format!("{blocker}/x"),
    ]);
    assert!(o.status.success(), "orkops ssh: {}", text(&o));
    let e = fails(&c, &update);
    assert!(
        e.lines().any(|l| l.contains(&node)
            && l.contains("node-1")
            && l.contains("uploading /usr/local/bin/orkops-agent")
            && l.contains("failed")),
        "{e}"
    );
    assert!(
        !e.contains(&master),
        "the master's bootstrap went through: {e}"
    );
    // fixed, the update continues: the master's files are not uploaded again
    let o = c.orkops(&["ssh", name, "node-1", "--", "sudo", "rm", "-rf", blocker]);
    assert!(o.status.success(), "orkops ssh: {}", text(&o));
    let out = c.ok(&update);
    let uploads: Vec<String> = progress(&out)
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("uploading"))
        })
        .map(|l| format!("{} {}", l["instance"], l["message"]))
        .collect();
    assert!(
        !uploads.is_empty() && uploads.iter().all(|u| u.contains("node-1")),
        "only the node's files are uploaded again: {uploads:?}"
    );
    assert!(c
        .ok(&["validate", "cluster", name])
        .contains("the cluster is valid"));
    let out = c.ok(&["delete", "cluster", name, "--yes"]);
    assert!(out.contains(&format!("cluster {name} deleted")), "{out}");
    assert_nothing_left(&c, &fresh, &cidr, &ids);

    // (a) SSH that never answers: no bodies daemon runs, so nothing answers for the instances
    stop_and_check_bodies(&mut c, &cidr);
    let name = "e2e-nossh";
    let cidr = free_network_cidr();
    let started = Instant::now();
    let e = fails(
        &c,
        &[
            "create",
            "cluster",
            name,
            "--zones",
            "us-east-1a",
            "--nodes",
            "1",
            "--network-cidr",
            &cidr,
            "--ssh-timeout",
            "20s",
            "--yes",
        ],
    );
    let o = c.observe(name);
    assert_eq!(o.instances.len(), 2);
    for i in &o.instances {
        assert!(
            e.lines().any(|l| l.contains(&i.id)
                && l.contains(&i.name)
                && l.contains("SSH did not answer within 20 s")),
            "{}: {e}",
            i.id
        );
    }
    assert!(
        e.contains(&format!("orkops delete cluster {name} --yes")),
        "the hint: {e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "--ssh-timeout bounds the wait: {:?}",
        started.elapsed()
    );
    let ids: Vec<String> = o.instances.iter().map(|i| i.id.clone()).collect();
    let out = c.ok(&["delete", "cluster", name, "--yes"]);
    assert!(out.contains(&format!("cluster {name} deleted")), "{out}");
    assert_eq!(c.everything(), fresh, "emulator resources left");
    let left = c.processes(&ids);
    assert!(left.is_empty(), "{left:?}");
}
