//! The pod fields real-world manifests use (issue 17), observed from inside real containers:
//! etcd, `orkops-master`, `orkops-agent` and the machine's Docker engine, driven through the
//! `orkops` CLI. Each test has its own master and node; the harness removes what they leave.

mod common;

use std::time::Duration;

use common::{docker, wait_until, Agent, Master, TEST_IMAGE};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

fn apply(m: &Master, yaml: &str) {
    m.orkops_stdin(&["apply", "-f", "-"], Some(yaml)).success();
}

fn status(m: &Master, name: &str) -> Value {
    m.orkops(&["get", "pod", name, "-o", "json"]).json()["status"].clone()
}

/// The STATUS column of `orkops get pod NAME`.
fn shown(m: &Master, name: &str) -> String {
    let table = m.orkops(&["get", "pod", name]).success();
    table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

fn exec(m: &Master, pod: &str, container: &str, script: &str) -> String {
    m.orkops(&["exec", pod, "-c", container, "--", "sh", "-c", script])
        .success()
}

#[test]
fn init_containers_run_in_order_before_the_app_and_report_as_kubernetes_does() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: prepared}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - name: first
    image: {TEST_IMAGE}
    command: [sh, -c, 'echo one > /work/data']
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: second
    image: {TEST_IMAGE}
    command: [sh, -c, 'test -f /work/data && echo two >> /work/data']
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sh, -c, 'cp /work/data /seen; exec sleep 100000']
    volumeMounts: [{{name: work, mountPath: /work}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: held}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  initContainers:
  - {{name: wait, image: {TEST_IMAGE}, command: [sleep, "100000"]}}
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: broken}}
spec:
  nodeName: {node}
  restartPolicy: Never
  initContainers:
  - {{name: fail, image: {TEST_IMAGE}, command: [sh, -c, 'exit 3']}}
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: looping}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  initContainers:
  - {{name: fail, image: {TEST_IMAGE}, command: [sh, -c, 'exit 1']}}
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}
"#
        ),
    );
    // the app reads what the init containers wrote, in their order, into the shared emptyDir
    wait_until("the prepared pod to run", LONG, || {
        status(&m, "prepared")["phase"] == "Running"
    });
    assert_eq!(exec(&m, "prepared", "app", "cat /seen"), "one\ntwo\n");
    let st = status(&m, "prepared");
    for (i, name) in ["first", "second"].iter().enumerate() {
        let cs = &st["initContainerStatuses"][i];
        assert_eq!(cs["name"], *name, "{st}");
        assert_eq!(cs["state"]["terminated"]["reason"], "Completed", "{st}");
        assert_eq!(cs["ready"], true, "{st}");
    }
    let initialized = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .cloned()
        .unwrap();
    assert_eq!(initialized["status"], "True", "{st}");
    assert_eq!(shown(&m, "prepared"), "Running");

    // an init container still running holds the app back: Init:0/1, Pending
    wait_until("Init:0/1", LONG, || shown(&m, "held") == "Init:0/1");
    let st = status(&m, "held");
    assert_eq!(st["phase"], "Pending", "{st}");
    assert!(
        st["initContainerStatuses"][0]["state"]["running"].is_object(),
        "{st}"
    );
    assert_eq!(
        st["containerStatuses"][0]["state"]["waiting"]["reason"], "PodInitializing",
        "{st}"
    );
    let cond = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Initialized")
        .cloned()
        .unwrap();
    assert_eq!(cond["reason"], "ContainersNotInitialized", "{st}");
    assert_eq!(
        cond["message"], "containers with incomplete status: [wait]",
        "{st}"
    );

    // restartPolicy Never: a failed init container fails the pod, the app never starts
    wait_until("the broken pod to fail", LONG, || {
        status(&m, "broken")["phase"] == "Failed"
    });
    assert_eq!(shown(&m, "broken"), "Init:Error");
    let st = status(&m, "broken");
    assert_eq!(
        st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"], 3,
        "{st}"
    );
    let (_, app) = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=orkops.io/node={node}"),
        "--filter",
        "label=orkops.io/pod-name=broken",
        "--filter",
        "label=orkops.io/container=app",
    ]);
    assert!(
        app.trim().is_empty(),
        "the app container of a pod whose init failed was created: {app}"
    );

    // restartPolicy Always: the init container is restarted, with back-off
    wait_until("Init:CrashLoopBackOff", LONG, || {
        shown(&m, "looping") == "Init:CrashLoopBackOff"
    });
    let st = status(&m, "looping");
    let cs = &st["initContainerStatuses"][0];
    assert!(cs["restartCount"].as_i64() >= Some(1), "{st}");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1, "{st}");
    assert_eq!(st["phase"], "Pending", "{st}");

    for p in ["prepared", "held", "broken", "looping"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

/// The effective capability bits of the container's first process.
fn cap_eff(m: &Master, pod: &str, container: &str) -> u64 {
    let line = exec(m, pod, container, "grep CapEff /proc/1/status");
    let hex = line.split_whitespace().nth(1).unwrap_or_default();
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn security_contexts_are_what_the_container_runs_with() {
    const NET_ADMIN: u64 = 1 << 12;
    const NET_RAW: u64 = 1 << 13;
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: secure}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
  containers:
  - name: user
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
  - name: root
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    securityContext:
      runAsUser: 0
      capabilities: {{add: [NET_ADMIN], drop: [NET_RAW]}}
      seccompProfile: {{type: Unconfined}}
---
apiVersion: v1
kind: Pod
metadata: {{name: rootless}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}
"#
        ),
    );
    wait_until("the secure pod to run", LONG, || {
        status(&m, "secure")["phase"] == "Running"
    });
    // runAsUser / runAsGroup / fsGroup / supplementalGroups
    assert_eq!(exec(&m, "secure", "user", "id -u").trim(), "1000");
    assert_eq!(exec(&m, "secure", "user", "id -g").trim(), "3000");
    let groups = exec(&m, "secure", "user", "id -G");
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert!(
        groups.contains(&"2000") && groups.contains(&"4000"),
        "{groups:?}"
    );
    // readOnlyRootFilesystem: a write to the root refuses
    let w = m.orkops(&["exec", "secure", "-c", "user", "--", "touch", "/written"]);
    assert!(!w.ok(), "a write to a read-only root succeeded");
    assert!(
        w.stderr().contains("Read-only file system"),
        "{}",
        w.stderr()
    );
    // allowPrivilegeEscalation: false is no_new_privs
    let nnp = exec(&m, "secure", "user", "grep NoNewPrivs /proc/1/status");
    assert!(nnp.trim().ends_with('1'), "{nnp}");
    // the container's runAsUser overrides the pod's; capabilities added and dropped
    assert_eq!(exec(&m, "secure", "root", "id -u").trim(), "0");
    let caps = cap_eff(&m, "secure", "root");
    assert_eq!(caps & NET_RAW, 0, "NET_RAW was dropped: CapEff {caps:x}");
    assert_ne!(caps & NET_ADMIN, 0, "NET_ADMIN was added: CapEff {caps:x}");
    let seccomp = exec(&m, "secure", "root", "grep '^Seccomp:' /proc/1/status");
    assert!(seccomp.trim().ends_with('0'), "unconfined: {seccomp}");
    let seccomp = exec(&m, "secure", "user", "grep '^Seccomp:' /proc/1/status");
    assert!(
        seccomp.trim().ends_with('2'),
        "the engine's default profile: {seccomp}"
    );

    // runAsNonRoot with an image that runs as root: refused with the kubelet's reason
    wait_until("the root image to be refused", LONG, || {
        status(&m, "rootless")["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
    });
    let st = status(&m, "rootless");
    let msg = st["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.starts_with("container has runAsNonRoot and image will run as root"),
        "{st}"
    );
    assert_eq!(shown(&m, "rootless"), "CreateContainerConfigError");

    for p in ["secure", "rootless"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

#[test]
fn host_path_volumes_show_the_node_files_and_read_only_mounts_refuse_writes() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("index"), "from-the-node\n").unwrap();
    let dir = d.path().display();
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: hosted}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: host, hostPath: {{path: "{dir}", type: Directory}}}}
  - {{name: made, hostPath: {{path: "{dir}/made", type: DirectoryOrCreate}}}}
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    volumeMounts:
    - {{name: host, mountPath: /host, readOnly: true}}
    - {{name: made, mountPath: /made}}
---
apiVersion: v1
kind: Pod
metadata: {{name: nowhere}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes:
  - {{name: host, hostPath: {{path: "{dir}/missing", type: Directory}}}}
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    volumeMounts: [{{name: host, mountPath: /host}}]
"#
        ),
    );
    wait_until("the hosted pod to run", LONG, || {
        status(&m, "hosted")["phase"] == "Running"
    });
    assert_eq!(
        exec(&m, "hosted", "app", "cat /host/index"),
        "from-the-node\n"
    );
    let w = m.orkops(&["exec", "hosted", "-c", "app", "--", "touch", "/host/x"]);
    assert!(!w.ok(), "a write to a readOnly mount succeeded");
    assert!(
        w.stderr().contains("Read-only file system"),
        "{}",
        w.stderr()
    );
    exec(&m, "hosted", "app", "echo from-the-pod > /made/f");
    assert_eq!(
        std::fs::read_to_string(d.path().join("made/f")).unwrap(),
        "from-the-pod\n"
    );
    // type Directory on a missing path: the kubelet's type check, and the pod does not start
    wait_until("the missing directory to be reported", LONG, || {
        let st = status(&m, "nowhere");
        st["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|msg| {
                msg.contains(&format!(
                    "hostPath type check failed: {dir}/missing is not a directory"
                ))
            })
    });
    assert!(!d.path().join("missing").exists());
    for p in ["hosted", "nowhere"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
    assert!(d.path().join("index").exists(), "the node's files stay");
}

#[test]
fn a_pod_naming_a_missing_service_account_is_forbidden() {
    let m = Master::start();
    let pod = |sa: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: robot}}\nspec:\n  serviceAccountName: {sa}\n  automountServiceAccountToken: false\n  containers:\n  - {{name: app, image: {TEST_IMAGE}}}\n"
        )
    };
    let err = m
        .orkops_stdin(&["apply", "-f", "-"], Some(&pod("builder")))
        .failure();
    assert!(
        err.contains("pods \"robot\" is forbidden: error looking up service account default/builder: serviceaccount \"builder\" not found"),
        "{err}"
    );
    apply(
        &m,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder}\nimagePullSecrets: [{name: regcred}]\n",
    );
    apply(&m, &pod("builder"));
    let spec = m.orkops(&["get", "pod", "robot", "-o", "json"]).json()["spec"].clone();
    assert_eq!(spec["serviceAccountName"], "builder", "{spec}");
    assert_eq!(spec["serviceAccount"], "builder", "{spec}");
    assert_eq!(spec["imagePullSecrets"][0]["name"], "regcred", "{spec}");
    // no token is mounted yet: asking for one is refused by path, with the issue to follow
    let err = m
        .orkops_stdin(
            &["apply", "-f", "-"],
            Some(
                &pod("builder")
                    .replace("Token: false", "Token: true")
                    .replace("robot", "robot2"),
            ),
        )
        .failure();
    assert!(
        err.contains("spec.automountServiceAccountToken") && err.contains("issue 20"),
        "{err}"
    );
    // a pod without one runs as the namespace's default account
    apply(
        &m,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: plain}}\nspec:\n  containers:\n  - {{name: app, image: {TEST_IMAGE}}}\n"),
    );
    let spec = m.orkops(&["get", "pod", "plain", "-o", "json"]).json()["spec"].clone();
    assert_eq!(spec["serviceAccountName"], "default", "{spec}");
}

#[test]
fn a_node_taint_keeps_pods_off_unless_they_tolerate_it() {
    let m = Master::start();
    let a = Agent::start(&m);
    // taint the node (what `kubectl taint nodes NODE dedicated=gpu:NoSchedule` writes)
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let path = format!("/api/v1/nodes/{}", a.name);
    wait_until("the taint to be written", LONG, || {
        let mut node = m.orkops(&["get", "node", &a.name, "-o", "json"]).json();
        node["spec"]["taints"] =
            serde_json::json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let (code, _) =
            rt.block_on(http.call(reqwest::Method::PUT, &path, Some(&token), Some(node)));
        code == 200
    });
    let mut bad = m.orkops(&["get", "node", &a.name, "-o", "json"]).json();
    bad["spec"]["taints"] = serde_json::json!([{"key": "dedicated", "effect": "Sometimes"}]);
    let (code, st) = rt.block_on(http.call(reqwest::Method::PUT, &path, Some(&token), Some(bad)));
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap_or("")
            .contains("spec.taints[0].effect"),
        "{st}"
    );
    // the tolerant pod first: once it runs, the scheduler has seen the taint for sure
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: tolerant}}
spec:
  terminationGracePeriodSeconds: 1
  tolerations: [{{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}}]
  containers: [{{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}]
"#
        ),
    );
    wait_until("the tolerant pod to run on the tainted node", LONG, || {
        status(&m, "tolerant")["phase"] == "Running"
    });
    let spec = m.orkops(&["get", "pod", "tolerant", "-o", "json"]).json()["spec"].clone();
    assert_eq!(spec["nodeName"], a.name.as_str());
    apply(
        &m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: plain}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: app, image: {TEST_IMAGE}, command: [sleep, \"100000\"]}}]\n"
        ),
    );
    wait_until("the plain pod to be unschedulable", LONG, || {
        let st = status(&m, "plain");
        st["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"] == "PodScheduled"
                && c["status"] == "False"
                && c["message"].as_str().is_some_and(|msg| {
                    msg.contains("1 node(s) had untolerated taint {dedicated: gpu}")
                })
        })
    });
    let spec = m.orkops(&["get", "pod", "plain", "-o", "json"]).json()["spec"].clone();
    assert!(spec["nodeName"].is_null(), "{spec}");
    // a toleration Kubernetes refuses is refused by path
    let err = m
        .orkops_stdin(
            &["apply", "-f", "-"],
            Some(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: wrong}}\nspec:\n  tolerations: [{{operator: Equal, value: x}}]\n  containers: [{{name: app, image: {TEST_IMAGE}}}]\n")),
        )
        .failure();
    assert!(
        err.contains("spec.tolerations[0].operator")
            && err.contains("operator must be Exists when `key` is empty"),
        "{err}"
    );
    for p in ["plain", "tolerant"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

#[test]
fn pod_anti_affinity_spreads_replicas_over_two_nodes() {
    let m = Master::start();
    let a = Agent::start(&m);
    let b = Agent::start(&m);
    apply(
        &m,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: spread}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: spread}}}}
  template:
    metadata: {{labels: {{app: spread}}}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {{matchLabels: {{app: spread}}}}
            topologyKey: kubernetes.io/hostname
      containers: [{{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}]
"#
        ),
    );
    let nodes = || -> Vec<String> {
        let list = m
            .orkops(&["get", "pods", "-l", "app=spread", "-o", "json"])
            .json();
        let mut n: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        n.sort();
        n
    };
    wait_until("both replicas to be placed", LONG, || nodes().len() == 2);
    let mut want = vec![a.name.clone(), b.name.clone()];
    want.sort();
    assert_eq!(nodes(), want, "one replica per node");
    // a third replica has nowhere to go
    m.orkops(&["scale", "deployment", "spread", "--replicas", "3"])
        .success();
    wait_until("the third replica to be unschedulable", LONG, || {
        let list = m
            .orkops(&["get", "pods", "-l", "app=spread", "-o", "json"])
            .json();
        list["items"].as_array().into_iter().flatten().any(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "PodScheduled"
                        && c["message"].as_str().is_some_and(|msg| {
                            msg.contains("2 node(s) didn't match pod anti-affinity rules")
                        })
                })
        })
    });
    m.orkops(&["delete", "deployment", "spread"]).success();
    wait_until("the nodes' containers to be removed", LONG, || {
        a.containers().is_empty() && b.containers().is_empty()
    });
}

#[test]
fn post_start_runs_at_start_and_pre_stop_before_sigterm() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display();
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 20
  volumes: [{{name: host, hostPath: {{path: "{dir}"}}}}]
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sh, -c, 'trap "echo sigterm >> /host/order; exit 0" TERM; while true; do sleep 1; done']
    volumeMounts: [{{name: host, mountPath: /host}}]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, 'echo started > /host/started']}}}}
      preStop: {{exec: {{command: [sh, -c, 'echo prestop >> /host/order']}}}}
"#
        ),
    );
    wait_until("the hooked pod to run", LONG, || {
        status(&m, "hooked")["phase"] == "Running"
    });
    assert_eq!(
        std::fs::read_to_string(d.path().join("started")).unwrap_or_default(),
        "started\n",
        "postStart ran"
    );
    m.orkops(&["delete", "pod", "hooked"]).success();
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
    assert_eq!(
        std::fs::read_to_string(d.path().join("order")).unwrap_or_default(),
        "prestop\nsigterm\n",
        "preStop ran before SIGTERM"
    );
    // a handler Kubernetes refuses is refused by path
    let err = m
        .orkops_stdin(
            &["apply", "-f", "-"],
            Some(&format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: wrong}}\nspec:\n  containers:\n  - name: app\n    image: {TEST_IMAGE}\n    lifecycle: {{preStop: {{sleep: {{seconds: 0}}}}}}\n")),
        )
        .failure();
    assert!(
        err.contains("spec.containers[0].lifecycle.preStop.sleep.seconds"),
        "{err}"
    );
}
