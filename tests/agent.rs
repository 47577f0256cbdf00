//! The node agent against real parts: etcd, `orkops-master`, `orkops-agent` and the machine's
//! Docker engine, driven through the `orkops` CLI. Each test has its own master (key prefix)
//! and its own node; the harness removes the node's containers and volumes when it ends.

mod common;

use std::time::Duration;

use common::{docker, wait_until, Agent, Master, TEST_IMAGE};
use serde_json::Value;

fn apply(m: &Master, yaml: &str) {
    m.orkops_stdin(&["apply", "-f", "-"], Some(yaml)).success();
}

fn pod(m: &Master, name: &str) -> Value {
    m.orkops(&["get", "pod", name, "-o", "json"]).json()
}

fn status(m: &Master, name: &str) -> Value {
    pod(m, name)["status"].clone()
}

fn container_status(m: &Master, name: &str, container: &str) -> Value {
    status(m, name)["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .cloned()
        .unwrap_or(Value::Null)
}

fn ready(m: &Master, name: &str) -> bool {
    status(m, name)["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

const LONG: Duration = Duration::from_secs(90);

/// Deletes every pod and waits until the node holds no container or volume of them.
fn delete_all_and_check_clean(m: &Master, a: &Agent, keep_claims: bool) {
    m.orkops(&["delete", "pods", "-l", "", "--grace-period", "1"]);
    let all = m.orkops(&["get", "pods", "-o", "name"]).stdout();
    for p in all.lines().filter(|l| !l.is_empty()) {
        m.orkops(&["delete", p, "--grace-period", "1"]).success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
    let vols: Vec<String> = a
        .volumes()
        .into_iter()
        .filter(|v| !(keep_claims && v.starts_with("orkops-pvc-")))
        .collect();
    assert!(vols.is_empty(), "volumes left behind: {vols:?}");
}

#[test]
fn the_node_registers_with_capacity_and_heartbeats_through_its_lease() {
    let m = Master::start();
    let a = Agent::start(&m);
    let get_node = || m.orkops(&["get", "node", &a.name, "-o", "json"]).json();
    let node = get_node();
    let cap = &node["status"]["capacity"];
    assert!(cap["cpu"].as_str().unwrap().parse::<u32>().unwrap() >= 1);
    assert!(cap["memory"].as_str().unwrap().ends_with("Ki"));
    assert_eq!(cap["pods"], "110");
    // the size of the filesystem under the agent's data dir, as the kubelet reports its own
    let storage = cap["ephemeral-storage"].as_str().unwrap();
    let kib: u64 = storage.strip_suffix("Ki").unwrap().parse().unwrap();
    assert!(kib > 1 << 20, "ephemeral-storage {storage}");
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        a.name.as_str()
    );
    assert_eq!(node["status"]["conditions"][0]["status"], "True");
    let beat = |n: &Value| n["status"]["conditions"][0]["lastHeartbeatTime"].clone();
    let lease = || {
        let out = m.orkops(&[
            "get",
            "lease",
            &a.name,
            "-n",
            "kube-node-lease",
            "-o",
            "json",
        ]);
        out.ok().then(|| out.json())
    };
    // the agent (beating every 2 s) renews its Lease, owned by its Node, in kube-node-lease
    wait_until("the node's lease", Duration::from_secs(30), || {
        lease().is_some()
    });
    let first = lease().unwrap();
    assert_eq!(first["spec"]["holderIdentity"], a.name.as_str(), "{first}");
    assert_eq!(first["spec"]["leaseDurationSeconds"], 40, "{first}");
    let owner = &first["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"]),
        (&Value::from("Node"), &node["metadata"]["uid"]),
        "{first}"
    );
    let renewed = |l: &Value| l["spec"]["renewTime"].as_str().unwrap().to_string();
    let mut renewals = vec![renewed(&first)];
    wait_until(
        "three renewals of the lease",
        Duration::from_secs(60),
        || {
            let r = renewed(&lease().unwrap());
            if renewals.last() != Some(&r) {
                renewals.push(r);
            }
            renewals.len() >= 4
        },
    );
    // a MicroTime: six fractional digits
    assert_eq!(
        renewals[0].split('.').nth(1).map(str::len),
        Some(7),
        "{renewals:?}"
    );
    // while nothing in its status changes, the Node is not written on each beat
    assert_eq!(
        beat(&get_node()),
        beat(&node),
        "status posted again: {renewals:?}"
    );
    let table = m.orkops(&["get", "nodes"]).success();
    assert!(
        table.contains(&a.name) && table.contains("Ready"),
        "{table}"
    );

    // deleting the Node (which revokes the node's tokens) takes its lease with it
    m.orkops(&["delete", "node", &a.name]).success();
    wait_until(
        "the lease to go with its node",
        Duration::from_secs(90),
        || lease().is_none(),
    );
}

#[test]
fn two_containers_share_localhost_and_an_empty_dir_and_leave_nothing_behind() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 2
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: web
    image: {TEST_IMAGE}
    command: [httpd, -f, -p, "8080", -h, /data]
    volumeMounts: [{{name: shared, mountPath: /data}}]
  - name: writer
    image: {TEST_IMAGE}
    command: [sh, -c, 'echo written-by-writer > /data/index.html; exec sleep 100000']
    volumeMounts: [{{name: shared, mountPath: /data}}]
"#,
            node = a.name
        ),
    );
    wait_until("the pod to run with both containers ready", LONG, || {
        status(&m, "duo")["phase"] == "Running" && ready(&m, "duo")
    });
    let st = status(&m, "duo");
    assert!(
        st["podIP"].as_str().is_some_and(|ip| !ip.is_empty()),
        "{st}"
    );
    assert_eq!(st["hostIP"], "127.0.0.1");
    // the writer reaches the web container on localhost and reads the file it wrote itself
    // into the shared emptyDir
    wait_until("httpd to answer on localhost", LONG, || {
        let r = m.orkops(&[
            "exec",
            "duo",
            "-c",
            "writer",
            "--",
            "wget",
            "-q",
            "-O",
            "-",
            "http://localhost:8080/index.html",
        ]);
        r.ok() && r.stdout().contains("written-by-writer")
    });
    assert_eq!(a.containers().len(), 3, "a sandbox and two containers");
    assert_eq!(a.volumes().len(), 1, "one emptyDir volume");
    let table = m.orkops(&["get", "pods", "-o", "wide"]).success();
    assert!(table.contains("2/2") && table.contains(&a.name), "{table}");

    let del = m.orkops(&["delete", "pod", "duo"]).success();
    assert!(del.contains("deleted"));
    // `delete` waits until the node has stopped and removed the pod
    assert!(m
        .orkops(&["get", "pod", "duo"])
        .failure()
        .contains("not found"));
    assert!(
        a.containers().is_empty(),
        "containers left: {:?}",
        a.containers()
    );
    assert!(a.volumes().is_empty(), "volumes left: {:?}", a.volumes());
}

#[test]
fn a_crashing_container_is_restarted_with_back_off() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: crash}}\nspec:\n  nodeName: {}\n  containers:\n  - {{name: c, image: {TEST_IMAGE}, command: [sh, -c, 'echo dying; exit 2']}}\n",
            a.name
        ),
    );
    wait_until("two restarts", LONG, || {
        container_status(&m, "crash", "c")["restartCount"].as_i64() >= Some(2)
    });
    let cs = container_status(&m, "crash", "c");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 2, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    wait_until("CrashLoopBackOff", LONG, || {
        container_status(&m, "crash", "c")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let table = m.orkops(&["get", "pods"]).success();
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    // the second restart waited for the back-off (10 s) after the first one ended
    let finished = |attempt: u32, field: &str| -> chrono::DateTime<chrono::Utc> {
        let (ok, id) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=orkops.io/node={}", a.name),
            "--filter",
            "label=orkops.io/container=c",
            "--filter",
            &format!("label=orkops.io/attempt={attempt}"),
        ]);
        assert!(ok && !id.is_empty(), "attempt {attempt} is kept");
        let (_, t) = docker(&["inspect", "-f", &format!("{{{{.State.{field}}}}}"), &id]);
        chrono::DateTime::parse_from_rfc3339(&t).unwrap().into()
    };
    let gap = finished(2, "StartedAt") - finished(1, "FinishedAt");
    assert!(
        gap >= chrono::Duration::seconds(9),
        "restart 2 came {gap} after restart 1 ended"
    );
    let prev = m.orkops(&["logs", "crash", "--previous"]).success();
    assert!(prev.contains("dying"), "{prev}");
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn probes_restart_an_unhealthy_container_and_drive_readiness() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: probed}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {TEST_IMAGE}
    command: [sh, -c, 'mkdir -p /www; touch /tmp/alive; exec httpd -f -p 8080 -h /www']
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /ready, port: http}}, periodSeconds: 1}}
    livenessProbe: {{exec: {{command: [test, -f, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 2}}
    startupProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1, failureThreshold: 30}}
"#,
            node = a.name
        ),
    );
    wait_until("the pod to run", LONG, || {
        status(&m, "probed")["phase"] == "Running"
    });
    assert!(!ready(&m, "probed"), "not ready while /ready is missing");
    m.orkops(&["exec", "probed", "--", "touch", "/www/ready"])
        .success();
    wait_until("Ready", LONG, || ready(&m, "probed"));
    assert_eq!(container_status(&m, "probed", "web")["ready"], true);
    assert_eq!(
        container_status(&m, "probed", "web")["started"],
        true,
        "the startup probe passed"
    );
    m.orkops(&["exec", "probed", "--", "rm", "/www/ready"])
        .success();
    wait_until("not Ready again", LONG, || !ready(&m, "probed"));

    m.orkops(&["exec", "probed", "--", "rm", "/tmp/alive"])
        .success();
    wait_until("a restart after the liveness probe failed", LONG, || {
        container_status(&m, "probed", "web")["restartCount"].as_i64() >= Some(1)
    });
    wait_until("the new container to run", LONG, || {
        container_status(&m, "probed", "web")["state"]["running"].is_object()
    });
    let events = m.orkops(&["get", "events", "-o", "json"]).json();
    let reasons: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {}", e["reason"], e["message"]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("Unhealthy") && r.contains("Liveness")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("Killing")), "{reasons:?}");
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn exec_passes_stdin_a_terminal_and_the_exit_code() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: sh}}\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: main, image: {TEST_IMAGE}, command: [sh, -c, 'echo started; exec sleep 100000']}}\n  - {{name: side, image: {TEST_IMAGE}, command: [sleep, '100000']}}\n",
            a.name
        ),
    );
    wait_until("the pod to run", LONG, || {
        status(&m, "sh")["phase"] == "Running" && ready(&m, "sh")
    });
    let up = m
        .orkops_stdin(
            &["exec", "-i", "sh", "--", "tr", "a-z", "A-Z"],
            Some("hello\n"),
        )
        .success();
    assert_eq!(up.trim(), "HELLO");
    let tty = m.orkops(&["exec", "-t", "sh", "--", "tty"]).success();
    assert!(tty.contains("/dev/pts/"), "a terminal was allocated: {tty}");
    let r = m.orkops(&[
        "exec",
        "sh",
        "-c",
        "side",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(r.0.status.code(), Some(7));
    assert_eq!(r.stdout().trim(), "out");
    assert!(r.stderr().contains("err"));
    let bad = m
        .orkops(&["exec", "sh", "-c", "nope", "--", "true"])
        .failure();
    assert!(bad.contains("nope") && bad.contains("[main side]"), "{bad}");
    let logs = m.orkops(&["logs", "pod/sh"]).success();
    assert_eq!(logs.trim(), "started");
    let missing = m.orkops(&["logs", "ghost"]).failure();
    assert!(missing.contains("not found"), "{missing}");
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn configmaps_and_secrets_become_files_and_environment() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: bonjour, mode: fast}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: hunter2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: cfg}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: conf, configMap: {{name: settings}}}}
  - {{name: sec, secret: {{secretName: creds, defaultMode: 0400}}}}
  containers:
  - name: c
    image: {TEST_IMAGE}
    command: [sh, -c, 'echo "$(GREETING) from $(MY_POD)" > /tmp/expanded; exec sleep 100000']
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: settings, key: greeting}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: MY_POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: MSG, value: "say $(GREETING), not $$(GREETING)"}}
    envFrom: [{{prefix: CFG_, configMapRef: {{name: settings}}}}]
    volumeMounts:
    - {{name: conf, mountPath: /etc/conf}}
    - {{name: sec, mountPath: /etc/sec}}
"#,
            node = a.name
        ),
    );
    wait_until("the pod to run", LONG, || {
        status(&m, "cfg")["phase"] == "Running"
    });
    let out = m
        .orkops(&["exec", "cfg", "--", "sh", "-c", "cat /etc/conf/greeting; echo; cat /etc/sec/password; echo; echo $GREETING $PASSWORD $MY_POD $CFG_mode; stat -c %a /etc/sec/password; echo $MSG; cat /tmp/expanded"])
        .success();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            "bonjour",
            "hunter2",
            "bonjour hunter2 cfg fast",
            "400",
            "say bonjour, not $(GREETING)",
            "bonjour from cfg"
        ],
        "{out}"
    );
    let write = m.orkops(&["exec", "cfg", "--", "sh", "-c", "echo x > /etc/conf/new"]);
    assert!(!write.ok(), "configMap volumes are read-only");
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn a_claim_keeps_its_data_across_pods() {
    let m = Master::start();
    let a = Agent::start(&m);
    let pod = |n: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {n}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: store}}}}]
  containers:
  - name: c
    image: {TEST_IMAGE}
    command: [sh, -c, 'test -f /data/first || echo {n} > /data/first; exec sleep 100000']
    volumeMounts: [{{name: data, mountPath: /data}}]
"#,
            node = a.name
        )
    };
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: store}}\nspec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n---\n{}",
            pod("one")
        ),
    );
    wait_until("pod one to run", LONG, || {
        status(&m, "one")["phase"] == "Running"
    });
    wait_until("pod one to write its mark", LONG, || {
        m.orkops(&["exec", "one", "--", "cat", "/data/first"])
            .stdout()
            .trim()
            == "one"
    });
    m.orkops(&["delete", "pod", "one"]).success();
    let claim_uid = m.orkops(&["get", "pvc", "store", "-o", "json"]).json()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.volumes(),
        vec![format!("orkops-pvc-{claim_uid}")],
        "the claim's volume outlives the pod"
    );
    apply(&m, &pod("two"));
    wait_until("pod two to run", LONG, || {
        status(&m, "two")["phase"] == "Running"
    });
    let first = m
        .orkops(&["exec", "two", "--", "cat", "/data/first"])
        .success();
    assert_eq!(first.trim(), "one", "pod two sees what pod one wrote");
    delete_all_and_check_clean(&m, &a, true);
    // deleting the claim deletes its volume (on the agent's next sweep)
    m.orkops(&["delete", "pvc", "store"]).success();
    wait_until("the claim's volume to be removed", LONG, || {
        a.volumes().is_empty()
    });
}

#[test]
fn a_restarted_agent_adopts_running_containers_and_removes_strays() {
    let m = Master::start();
    let mut a = Agent::start(&m);
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: keep}}\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {TEST_IMAGE}, command: [sleep, '100000'], readinessProbe: {{exec: {{command: ['true']}}, periodSeconds: 1}}}}\n",
            a.name
        ),
    );
    wait_until("the pod to be ready", LONG, || ready(&m, "keep"));
    let mut before = a.containers();
    before.sort();
    let started = container_status(&m, "keep", "c")["state"]["running"]["startedAt"].clone();
    a.stop();
    // a container of this node that belongs to no pod
    let (ok, stray) = docker(&[
        "run",
        "-d",
        "--label",
        &format!("orkops.io/node={}", a.name),
        "--label",
        "orkops.io/pod-uid=gone",
        "--label",
        "orkops.io/container=c",
        TEST_IMAGE,
        "sleep",
        "100000",
    ]);
    assert!(ok, "{stray}");
    a.restart(&m);
    wait_until("the stray container to be removed", LONG, || {
        !a.containers().iter().any(|c| stray.starts_with(c.as_str()))
    });
    let mut after = a.containers();
    after.sort();
    assert_eq!(
        before, after,
        "the pod's containers were adopted, not recreated"
    );
    let cs = container_status(&m, "keep", "c");
    assert_eq!(cs["state"]["running"]["startedAt"], started);
    assert_eq!(cs["restartCount"], 0);
    assert!(ready(&m, "keep"), "readiness survives the agent restart");
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn a_missing_image_a_bad_command_and_a_taken_port_say_so() {
    let m = Master::start();
    let a = Agent::start(&m);
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: never}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: "orkops-test/absent:1", imagePullPolicy: Never}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: pull}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: "orkops-test/absent:1"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: badcmd}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers: [{{name: c, image: {TEST_IMAGE}, command: [/no/such/program]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: port}}
spec:
  nodeName: {node}
  containers: [{{name: c, image: {TEST_IMAGE}, command: [sleep, "1000"], ports: [{{containerPort: 80, hostPort: {port}}}]}}]
"#,
            node = a.name
        ),
    );
    let waiting = |p: &str| container_status(&m, p, "c")["state"]["waiting"].clone();
    wait_until("ErrImageNeverPull", LONG, || {
        waiting("never")["reason"] == "ErrImageNeverPull"
    });
    let msg = waiting("never")["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("orkops-test/absent:1") && msg.contains("orkops image load"),
        "{msg}"
    );
    wait_until("ErrImagePull", LONG, || {
        waiting("pull")["reason"] == "ErrImagePull"
    });
    assert!(waiting("pull")["message"]
        .as_str()
        .unwrap()
        .contains("cannot pull image"));
    wait_until("the bad command to fail the pod", LONG, || {
        status(&m, "badcmd")["phase"] == "Failed"
    });
    let t = container_status(&m, "badcmd", "c")["state"]["terminated"].clone();
    assert_eq!(t["reason"], "StartError", "{t}");
    assert!(
        t["message"].as_str().unwrap().contains("/no/such/program"),
        "{t}"
    );
    wait_until("the sandbox failure", LONG, || {
        status(&m, "port")["reason"] == "FailedCreatePodSandbox"
    });
    let msg = status(&m, "port")["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("already in use") && msg.contains(&port.to_string()),
        "{msg}"
    );
    assert_eq!(status(&m, "port")["phase"], "Pending");
    drop(taken);
    delete_all_and_check_clean(&m, &a, false);
}

#[test]
fn image_load_sends_an_archive_through_the_master_into_the_node() {
    let m = Master::start();
    let a = Agent::start(&m);
    let tag = format!("orkops-test/loaded-{}:1", &a.name);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    assert!(docker(&["tag", TEST_IMAGE, &tag]).0);
    assert!(docker(&["save", "-o", archive.to_str().unwrap(), &tag]).0);
    assert!(docker(&["rmi", &tag]).0);
    // the node shares this machine's engine: the image comes back only if the agent loads it
    let out = m
        .orkops(&[
            "image",
            "load",
            "-i",
            archive.to_str().unwrap(),
            "--node",
            &a.name,
        ])
        .success();
    let present = docker(&["image", "inspect", &tag]).0;
    docker(&["rmi", &tag]);
    assert!(out.contains(&a.name) && out.contains(&tag), "{out}");
    assert!(present, "the node's engine has the image");
    // from the local engine, to every Ready node
    let out = m.orkops(&["image", "load", TEST_IMAGE]).success();
    assert!(out.contains(&format!("{}: loaded", a.name)), "{out}");
    let err = m
        .orkops(&["image", "load", "orkops-test/not-here:1"])
        .failure();
    assert!(err.contains("not in the local Docker engine"), "{err}");
    let err = m
        .orkops(&["image", "load", TEST_IMAGE, "--node", "ghost"])
        .failure();
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn only_the_master_reaches_the_agent_and_only_the_admin_uses_logs_and_exec() {
    let m = Master::start();
    let a = Agent::start(&m);
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: talk}}\nspec:\n  nodeName: {}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {TEST_IMAGE}, command: [sh, -c, 'i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done']}}\n",
            a.name
        ),
    );
    wait_until("the pod to run", LONG, || {
        status(&m, "talk")["phase"] == "Running"
    });
    // `logs -f` keeps streaming new lines until it is stopped
    let mut follow = m
        .orkops_command(&["logs", "-f", "talk"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut seen = Vec::new();
    while seen.len() < 15 {
        let mut line = String::new();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the stream ended early"
        );
        seen.push(line.trim().to_string());
    }
    assert!(follow.try_wait().unwrap().is_none(), "still following");
    let _ = follow.kill();
    let _ = follow.wait();
    let n = |l: &str| l.trim_start_matches("line-").parse::<u32>().unwrap();
    assert!(
        seen.windows(2).all(|w| n(&w[1]) == n(&w[0]) + 1),
        "{seen:?}"
    );

    // the agent's endpoint: a client without the master's certificate is refused
    let node = m.orkops(&["get", "node", &a.name, "-o", "json"]).json();
    let port = node["status"]["daemonEndpoints"]["agentEndpoint"]["Port"]
        .as_u64()
        .unwrap();
    let cfg = orkops::client::ClientConfig::load(&m.config).unwrap();
    let ca = reqwest::Certificate::from_pem(cfg.ca_pem().unwrap().as_bytes()).unwrap();
    let agent_cert = std::fs::read_to_string(a.dir.path().join("agent.crt")).unwrap();
    let agent_key = std::fs::read_to_string(a.dir.path().join("agent.key")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // the agent's certificate names the node (the master connects by node name)
    let url = format!("https://{}:{port}/healthz", a.name);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let try_with = |identity: Option<reqwest::Identity>| {
        let mut b = reqwest::Client::builder()
            .resolve(&a.name, addr)
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone());
        if let Some(id) = identity {
            b = b.identity(id);
        }
        let client = b.build().unwrap();
        rt.block_on(async { client.get(&url).send().await.map(|r| r.status().as_u16()) })
    };
    assert!(try_with(None).is_err(), "no client certificate: refused");
    let node_id =
        reqwest::Identity::from_pem(format!("{agent_cert}\n{agent_key}").as_bytes()).unwrap();
    assert!(
        try_with(Some(node_id)).is_err(),
        "a node's (server-only) certificate: refused"
    );
    let master_cert = std::fs::read_to_string(m.dir.path().join("apiserver.crt")).unwrap();
    let master_key = std::fs::read_to_string(m.dir.path().join("apiserver.key")).unwrap();
    let master_id =
        reqwest::Identity::from_pem(format!("{master_cert}\n{master_key}").as_bytes()).unwrap();
    assert_eq!(
        try_with(Some(master_id)).unwrap(),
        200,
        "the master's certificate: accepted"
    );

    // through the master, a node token may not read logs
    let node_token = orkops::client::ClientConfig::load(&a.dir.path().join("node.conf"))
        .unwrap()
        .token;
    let http = m.http();
    let (code, body) = rt.block_on(http.call(
        reqwest::Method::GET,
        "/api/v1/namespaces/default/pods/talk/log",
        Some(&node_token),
        None,
    ));
    assert_eq!(code, 403, "{body}");
    delete_all_and_check_clean(&m, &a, false);
}
