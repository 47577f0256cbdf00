//! The master's scheduler and controllers with two real agents on Docker: spreading, scaling,
//! rolling updates, garbage collection, unschedulable pods and node failure.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{docker, wait_until, Agent, Master, TEST_IMAGE};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

fn pods(m: &Master, selector: &str) -> Vec<Value> {
    m.orkops(&["get", "pods", "-l", selector, "-o", "json"])
        .json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ready(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_none()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn live(m: &Master, selector: &str) -> Vec<Value> {
    pods(m, selector)
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

fn per_node(ps: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for p in ps {
        *m.entry(p["spec"]["nodeName"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    m
}

fn deployment(image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {image}
        command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www']
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
"#
    )
}

#[test]
fn a_deployment_spreads_scales_rolls_out_and_is_collected() {
    let m = Master::start();
    let a = Agent::start(&m);
    let b = Agent::start(&m);
    m.orkops_stdin(&["apply", "-f", "-"], Some(&deployment(TEST_IMAGE, 5)))
        .success();
    wait_until("5 ready replicas", LONG, || {
        live(&m, "app=web").iter().filter(|p| ready(p)).count() == 5
    });
    let spread = per_node(&live(&m, "app=web"));
    assert_eq!(spread.len(), 2, "both nodes run replicas: {spread:?}");
    assert!(spread.values().all(|n| *n >= 2), "{spread:?}");
    let events = m.orkops(&["get", "events", "-o", "json"]).json();
    assert!(events["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["reason"] == "Scheduled"));

    m.orkops(&["scale", "deployment/web", "--replicas", "8"])
        .success();
    wait_until("8 ready replicas", LONG, || {
        live(&m, "app=web").iter().filter(|p| ready(p)).count() == 8
    });
    m.orkops(&["scale", "deployment", "web", "--replicas", "3"])
        .success();
    wait_until("3 replicas", LONG, || live(&m, "app=web").len() == 3);

    // a rolling update to another image: never fewer than 3 ready pods (maxUnavailable 0)
    let v2 = format!("orkops-test/busybox:v2-{}", a.name);
    assert!(docker(&["tag", TEST_IMAGE, &v2]).0);
    m.orkops_stdin(&["apply", "-f", "-"], Some(&deployment(&v2, 3)))
        .success();
    let mut min_ready = usize::MAX;
    wait_until("every replica on the new image", LONG, || {
        let ps = live(&m, "app=web");
        min_ready = min_ready.min(ps.iter().filter(|p| ready(p)).count());
        ps.len() == 3
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == v2.as_str() && ready(p))
    });
    assert!(
        min_ready >= 3,
        "ready replicas dropped to {min_ready} during the rollout"
    );
    let status = m
        .orkops(&["rollout", "status", "deployment/web", "--timeout", "60"])
        .success();
    assert!(status.contains("successfully rolled out"), "{status}");
    let d = m.orkops(&["get", "deployment", "web", "-o", "json"]).json();
    assert_eq!(d["status"]["updatedReplicas"], 3, "{d}");
    let history = m
        .orkops(&["rollout", "history", "deployment/web"])
        .success();
    assert!(
        history.contains(TEST_IMAGE) && history.contains(&v2),
        "{history}"
    );

    // undo: back to the first image, as revision 3
    let undo = m.orkops(&["rollout", "undo", "deployment/web"]).success();
    assert!(undo.contains("rolled back to revision 1"), "{undo}");
    wait_until("every replica back on the old image", LONG, || {
        let ps = live(&m, "app=web");
        ps.len() == 3
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == TEST_IMAGE && ready(p))
    });
    wait_until("the history to show revision 3 current", LONG, || {
        let h = m
            .orkops(&["rollout", "history", "deployment/web"])
            .success();
        h.lines()
            .any(|l| l.starts_with('3') && l.contains(TEST_IMAGE) && l.trim_end().ends_with('*'))
    });

    // deleting the deployment deletes its pods
    m.orkops(&["delete", "deployment", "web"]).success();
    wait_until("the pods to be collected", LONG, || {
        pods(&m, "app=web").is_empty()
    });
    wait_until("the nodes to be empty", LONG, || {
        a.containers().is_empty() && b.containers().is_empty()
    });
    docker(&["rmi", &v2]);
}

#[test]
fn a_pod_that_fits_nowhere_stays_pending_and_says_why() {
    let m = Master::start();
    let _a = Agent::start(&m);
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: huge}}\nspec:\n  containers:\n  - {{name: c, image: {TEST_IMAGE}, resources: {{requests: {{cpu: '500'}}}}}}\n"
        )),
    )
    .success();
    wait_until("the FailedScheduling event", LONG, || {
        m.orkops(&["get", "events", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| {
                e["reason"] == "FailedScheduling"
                    && e["message"].as_str().unwrap().contains("Insufficient cpu")
            })
    });
    let p = m.orkops(&["get", "pod", "huge", "-o", "json"]).json();
    assert!(p["spec"]["nodeName"].is_null(), "{p}");
    let cond = &p["status"]["conditions"][0];
    assert_eq!(cond["reason"], "Unschedulable", "{p}");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .contains("0/1 nodes are available"),
        "{p}"
    );
}

#[test]
fn the_pods_of_a_stopped_node_are_replaced_on_another() {
    let m = Master::start_with(&[
        "--node-monitor-grace-period",
        "4",
        "--pod-eviction-timeout",
        "4",
    ]);
    let mut a = Agent::start(&m);
    let b = Agent::start(&m);
    m.orkops_stdin(&["apply", "-f", "-"], Some(&deployment(TEST_IMAGE, 4)))
        .success();
    wait_until("4 ready replicas", LONG, || {
        live(&m, "app=web").iter().filter(|p| ready(p)).count() == 4
    });
    assert!(per_node(&live(&m, "app=web")).contains_key(&a.name));
    a.stop();
    wait_until("node a to be NotReady", LONG, || {
        m.orkops(&["get", "node", &a.name, "-o", "json"]).json()["status"]["conditions"][0]
            ["status"]
            == "Unknown"
    });
    wait_until("4 ready replicas, all on node b", LONG, || {
        let ps = live(&m, "app=web");
        ps.len() == 4
            && ps
                .iter()
                .all(|p| ready(p) && p["spec"]["nodeName"] == b.name.as_str())
    });
    let nodes = m.orkops(&["get", "nodes"]).success();
    assert!(
        nodes.contains("NotReady") || nodes.contains("Unknown"),
        "{nodes}"
    );
    m.orkops(&["delete", "deployment", "web"]).success();
    wait_until("node b to be empty", LONG, || b.containers().is_empty());
}

#[test]
fn jobs_complete_and_a_deadline_stops_one() {
    let m = Master::start();
    let a = Agent::start(&m);
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"
apiVersion: batch/v1
kind: Job
metadata: {{name: twice}}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      containers: [{{name: c, image: {TEST_IMAGE}, command: [sh, -c, 'echo done']}}]
---
apiVersion: batch/v1
kind: Job
metadata: {{name: slow}}
spec:
  activeDeadlineSeconds: 3
  template:
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: {TEST_IMAGE}, command: [sleep, '1000']}}]
"#
        )),
    )
    .success();
    let job = |n: &str| m.orkops(&["get", "job", n, "-o", "json"]).json();
    let condition = |j: &Value, t: &str| {
        j["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t && c["status"] == "True")
            .cloned()
    };
    wait_until("job twice to complete", LONG, || {
        condition(&job("twice"), "Complete").is_some()
    });
    assert_eq!(job("twice")["status"]["succeeded"], 2);
    wait_until("job slow to fail at its deadline", LONG, || {
        condition(&job("slow"), "Failed").is_some()
    });
    let c = condition(&job("slow"), "Failed").unwrap();
    assert_eq!(c["reason"], "DeadlineExceeded", "{c}");
    wait_until("the slow job's pod to be stopped", LONG, || {
        live(&m, "job-name=slow").is_empty()
    });
    // deleting the jobs collects their pods
    m.orkops(&["delete", "job", "twice", "slow"]).success();
    wait_until("the pods to be collected", LONG, || {
        pods(&m, "controller-uid").is_empty()
    });
    wait_until("the node to be empty", LONG, || a.containers().is_empty());
}

#[test]
fn a_cronjob_runs_on_schedule_and_forbid_holds() {
    let m = Master::start();
    let a = Agent::start(&m);
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"
apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick}}
spec:
  schedule: "* * * * *"
  timeZone: Europe/Paris
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          terminationGracePeriodSeconds: 1
          containers: [{{name: c, image: {TEST_IMAGE}, command: [sleep, '150']}}]
"#
        )),
    )
    .success();
    let events = |reason: &str| {
        m.orkops(&["get", "events", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["reason"] == reason)
            .count()
    };
    let minute = Duration::from_secs(150);
    wait_until("the first run", minute, || events("SuccessfulCreate") >= 1);
    let jobs = m.orkops(&["get", "jobs", "-o", "json"]).json();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1);
    wait_until("the first job's pod to run", LONG, || {
        live(&m, "controller-uid").iter().any(ready)
    });
    wait_until("the next run to be skipped (Forbid)", minute, || {
        events("JobAlreadyActive") >= 1
    });
    assert_eq!(
        m.orkops(&["get", "jobs", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let cj = m.orkops(&["get", "cronjob", "tick", "-o", "json"]).json();
    assert_eq!(
        cj["status"]["active"].as_array().map(Vec::len),
        Some(1),
        "{cj}"
    );
    assert!(cj["status"]["lastScheduleTime"].is_string(), "{cj}");
    // deleting the cronjob collects its job, then the job's pod
    m.orkops(&["delete", "cronjob", "tick"]).success();
    wait_until("the job to be collected", LONG, || {
        m.orkops(&["get", "jobs", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    wait_until("the pod to be collected", LONG, || {
        pods(&m, "controller-uid").is_empty()
    });
    wait_until("the node to be empty", LONG, || a.containers().is_empty());
}

#[test]
fn a_stalled_rollout_rolls_back_on_its_own_with_the_annotation() {
    let m = Master::start();
    let a = Agent::start(&m);
    let manifest = |image: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations: {{orkops.io/auto-rollback: "true"}}
spec:
  replicas: 2
  progressDeadlineSeconds: 5
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: web, image: "{image}", imagePullPolicy: Never, command: [sleep, '100000']}}
"#
        )
    };
    m.orkops_stdin(&["apply", "-f", "-"], Some(&manifest(TEST_IMAGE)))
        .success();
    wait_until("2 ready replicas", LONG, || {
        live(&m, "app=web").iter().filter(|p| ready(p)).count() == 2
    });
    // complete as the controller sees it (its replica set then counts as good to return to)
    m.orkops(&["rollout", "status", "deployment/web", "--timeout", "60"])
        .success();
    // an image no node has: the new pod never becomes ready
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&manifest("orkops-test/absent:1")),
    )
    .success();
    let events = || {
        m.orkops(&["get", "events", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    wait_until("the deadline and the rollback", LONG, || {
        let e = events();
        e.contains(&"ProgressDeadlineExceeded".to_string()) && e.contains(&"RolledBack".to_string())
    });
    wait_until("the good image back everywhere", LONG, || {
        let ps = live(&m, "app=web");
        ps.len() == 2
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == TEST_IMAGE && ready(p))
    });
    let d = m.orkops(&["get", "deployment", "web", "-o", "json"]).json();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        TEST_IMAGE
    );
    m.orkops(&["delete", "deployment", "web"]).success();
    wait_until("the node to be empty", LONG, || a.containers().is_empty());
    wait_until("the replica sets to be collected", LONG, || {
        m.orkops(&["get", "replicasets", "-o", "json"]).json()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
}

#[test]
fn run_attaches_a_command_and_rm_leaves_no_pod() {
    let m = Master::start();
    let a = Agent::start(&m);
    let r = m.orkops_stdin(
        &[
            "run", "once", "--image", TEST_IMAGE, "--rm", "-i", "--", "sh",
        ],
        Some("echo hello-from-run\nexit 3\n"),
    );
    assert_eq!(r.0.status.code(), Some(3), "{}", r.stderr());
    assert!(r.stdout().contains("hello-from-run"), "{}", r.stdout());
    let gone = m.orkops(&["get", "pod", "once"]);
    assert!(
        !gone.ok(),
        "the pod is left: {}\nrun said: {}",
        gone.stdout(),
        r.stderr()
    );
    // -t without a terminal on our side: a warning, and the pod still gets one
    let r = m.orkops(&[
        "run", "tty", "--image", TEST_IMAGE, "--rm", "-i", "-t", "--", "sh", "-c", "tty",
    ]);
    assert!(r.stderr().contains("Unable to use a TTY"), "{}", r.stderr());
    assert!(r.stdout().contains("/dev/pts/"), "{}", r.stdout());
    assert!(m
        .orkops(&["get", "pod", "tty"])
        .failure()
        .contains("not found"));
    // Ctrl-C while attached: the pod is deleted too
    let mut child = m
        .orkops_command(&[
            "run", "wait", "--image", TEST_IMAGE, "--rm", "-i", "--", "sh",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the pod to run", LONG, || {
        m.orkops(&["get", "pod", "wait", "-o", "json"])
            .0
            .status
            .success()
            && m.orkops(&["get", "pod", "wait", "-o", "json"]).json()["status"]["phase"]
                == "Running"
    });
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(m
        .orkops(&["get", "pod", "wait"])
        .failure()
        .contains("not found"));
    // without -i: the pod is created and runs on its own
    let out = m
        .orkops(&["run", "bg", "--image", TEST_IMAGE, "--", "sleep", "1000"])
        .success();
    assert!(out.contains("pod/bg created"));
    wait_until("bg to run", LONG, || {
        m.orkops(&["get", "pod", "bg", "-o", "json"]).json()["status"]["phase"] == "Running"
    });
    let bad = m
        .orkops(&["run", "x", "--image", TEST_IMAGE, "--rm"])
        .failure();
    assert!(bad.contains("--rm only makes sense"), "{bad}");
    m.orkops(&["delete", "pod", "bg"]).success();
    wait_until("the node to be empty", LONG, || a.containers().is_empty());
}

#[test]
fn workload_commands_refuse_bad_input_clearly() {
    let m = Master::start();
    m.orkops_stdin(&["apply", "-f", "-"], Some(&deployment(TEST_IMAGE, 1)))
        .success();
    // no node: the pod stays pending, the history has the first revision
    wait_until("revision 1", LONG, || {
        m.orkops(&["rollout", "history", "deployment/web"])
            .stdout()
            .lines()
            .any(|l| l.starts_with('1'))
    });
    let e = m.orkops(&["rollout", "undo", "deployment/web"]).failure();
    assert!(e.contains("no previous revision"), "{e}");
    let e = m
        .orkops(&["rollout", "undo", "deployment/web", "--to-revision", "9"])
        .failure();
    assert!(
        e.contains("--to-revision 9") && e.contains("no such revision"),
        "{e}"
    );
    let e = m.orkops(&["scale", "pod/web", "--replicas", "2"]).failure();
    assert!(e.contains("only deployments"), "{e}");
    let e = m
        .orkops(&["scale", "deployment/ghost", "--replicas", "2"])
        .failure();
    assert!(e.contains("ghost") && e.contains("not found"), "{e}");
    let e = m
        .orkops(&["scale", "deployment/web", "--replicas", "-1"])
        .failure();
    assert!(e.contains("--replicas"), "{e}");
    let e = m
        .orkops(&["run", "Bad_Name", "--image", TEST_IMAGE])
        .failure();
    assert!(e.contains("not a valid pod name"), "{e}");
    let e = m
        .orkops(&["run", "x", "--image", TEST_IMAGE, "--restart", "Sometimes"])
        .failure();
    assert!(e.contains("--restart"), "{e}");
    let e = m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '61 * * * *'\n  timeZone: Mars/Olympus\n  jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: 'x:1'}]}}}}\n"),
    )
    .failure();
    assert!(e.contains("spec.schedule") && e.contains("minute"), "{e}");
    assert!(
        e.contains("spec.timeZone") && e.contains("Mars/Olympus"),
        "{e}"
    );
    let d = m.orkops(&["get", "deployment", "web", "-o", "json"]).json();
    assert_eq!(d["spec"]["replicas"], 1, "nothing changed");
}

#[test]
fn a_pod_with_a_claim_returns_to_the_node_that_holds_its_data() {
    let m = Master::start();
    let a = Agent::start(&m);
    let b = Agent::start(&m);
    let pod = |n: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {n}, labels: {{app: store}}}}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: store}}}}]
  containers:
  - name: c
    image: {TEST_IMAGE}
    command: [sh, -c, 'test -f /data/first || echo {n} > /data/first; exec sleep 100000']
    volumeMounts: [{{name: data, mountPath: /data}}]
"#
        )
    };
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: store}}\nspec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n---\n{}",
            pod("one")
        )),
    )
    .success();
    wait_until("pod one to run", LONG, || {
        m.orkops(&["get", "pod", "one", "-o", "json"]).json()["status"]["phase"] == "Running"
    });
    let node = m.orkops(&["get", "pod", "one", "-o", "json"]).json()["spec"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let pvc = m.orkops(&["get", "pvc", "store", "-o", "json"]).json();
    assert_eq!(
        pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node.as_str(),
        "{pvc}"
    );
    assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
    m.orkops(&["delete", "pod", "one"]).success();
    for i in 0..3 {
        // whatever the spreading would prefer, the pod goes where its data is
        let name = format!("again{i}");
        m.orkops_stdin(&["apply", "-f", "-"], Some(&pod(&name)))
            .success();
        wait_until("the pod to run", LONG, || {
            m.orkops(&["get", "pod", &name, "-o", "json"]).json()["status"]["phase"] == "Running"
        });
        let p = m.orkops(&["get", "pod", &name, "-o", "json"]).json();
        assert_eq!(p["spec"]["nodeName"], node.as_str());
        let first = m
            .orkops(&["exec", &name, "--", "cat", "/data/first"])
            .success();
        assert_eq!(first.trim(), "one");
        m.orkops(&["delete", "pod", &name]).success();
    }
    m.orkops(&["delete", "pvc", "store"]).success();
    wait_until("the claim's volume to be removed", LONG, || {
        a.volumes().is_empty() && b.volumes().is_empty()
    });
}
