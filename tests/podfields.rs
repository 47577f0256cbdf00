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

/// A namespace of this (test) process, as `readlink /proc/self/ns/KIND` says it.
fn own_namespace(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn dns_hosts_namespaces_and_env_are_what_the_container_sees() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: named, labels: {{app: web}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  shareProcessNamespace: true
  securityContext:
    sysctls: [{{name: net.ipv4.ip_unprivileged_port_start, value: "80"}}]
  hostAliases:
  - {{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}}
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.9.8.7]
    searches: [corp.example]
    options: [{{name: ndots, value: "2"}}, {{name: edns0}}]
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    workingDir: /tmp
    resources:
      requests: {{cpu: 250m}}
      limits: {{memory: 64Mi}}
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: POD_UID, valueFrom: {{fieldRef: {{fieldPath: metadata.uid}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: ACCOUNT, valueFrom: {{fieldRef: {{fieldPath: spec.serviceAccountName}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: POD_IPS, valueFrom: {{fieldRef: {{fieldPath: status.podIPs}}}}}}
    - {{name: HOST_IP, valueFrom: {{fieldRef: {{fieldPath: status.hostIP}}}}}}
    - {{name: APP, valueFrom: {{fieldRef: {{fieldPath: "metadata.labels['app']"}}}}}}
    - {{name: MEM_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}
    - {{name: CPU_M, valueFrom: {{resourceFieldRef: {{resource: requests.cpu, divisor: 1m}}}}}}
  - name: peer
    image: {TEST_IMAGE}
    command: [sleep, "100001"]
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  hostPID: true
  hostIPC: true
  hostAliases:
  - {{ip: 10.1.2.4, hostnames: [baz.local]}}
  containers:
  - {{name: app, image: {TEST_IMAGE}, command: [sleep, "100002"]}}
"#
        ),
    );
    wait_until("both pods to run", LONG, || {
        status(&m, "named")["phase"] == "Running" && status(&m, "hostnet")["phase"] == "Running"
    });
    // the kubelet's managed hosts file, with the aliases
    let hosts = exec(&m, "named", "app", "cat /etc/hosts");
    let st = status(&m, "named");
    let ip = st["podIP"].as_str().unwrap().to_string();
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n"),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("{ip}\tnamed\n")), "{hosts}");
    assert!(
        hosts.ends_with(
            "# Entries added by HostAliases.\n10.1.2.3\tfoo.local\n10.1.2.3\tbar.local\n"
        ),
        "{hosts}"
    );
    // dnsPolicy None: only the dnsConfig
    assert_eq!(
        exec(&m, "named", "app", "cat /etc/resolv.conf"),
        "nameserver 10.9.8.7\nsearch corp.example\noptions ndots:2 edns0\n"
    );
    // the downward API in env vars
    let env = exec(&m, "named", "app", "env");
    let uid = m.orkops(&["get", "pod", "named", "-o", "json"]).json()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "POD_NAME=named".to_string(),
        "POD_NS=default".into(),
        format!("POD_UID={uid}"),
        format!("NODE={node}"),
        "ACCOUNT=default".into(),
        format!("POD_IP={ip}"),
        format!("POD_IPS={ip}"),
        "HOST_IP=127.0.0.1".into(),
        "APP=web".into(),
        "MEM_MI=64".into(),
        "CPU_M=250".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in {env}");
    }
    assert_eq!(exec(&m, "named", "app", "pwd").trim(), "/tmp");
    // a safe sysctl, set in the pod's network namespace
    assert_eq!(
        exec(
            &m,
            "named",
            "app",
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        )
        .trim(),
        "80"
    );
    // one process namespace: the sandbox is PID 1, the peer's sleep is visible
    assert_eq!(exec(&m, "named", "app", "cat /proc/1/cmdline"), "/pause\0");
    let ps = exec(&m, "named", "app", "ps");
    assert!(ps.contains("sleep 100001"), "{ps}");
    assert_eq!(st["podIPs"][0]["ip"], ip.as_str(), "{st}");

    // host network, PID and IPC: the node's namespaces, the node's address
    let st = status(&m, "hostnet");
    assert_eq!(st["podIP"], "127.0.0.1", "{st}");
    for ns in ["net", "ipc", "pid"] {
        assert_eq!(
            exec(
                &m,
                "hostnet",
                "app",
                &format!("readlink /proc/self/ns/{ns}")
            )
            .trim(),
            own_namespace(ns),
            "the {ns} namespace"
        );
    }
    let pid = std::process::id();
    exec(&m, "hostnet", "app", &format!("test -d /proc/{pid}"));
    let hosts = exec(&m, "hostnet", "app", "cat /etc/hosts");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"),
        "{hosts}"
    );
    assert!(hosts.ends_with("10.1.2.4\tbaz.local\n"), "{hosts}");
    for p in ["named", "hostnet"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

#[test]
fn downward_api_projected_and_sub_path_volumes_hold_what_the_pod_says() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    let d = tempfile::tempdir().unwrap();
    let kc = common::kube::kubeconfig(&m, d.path());
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: conf}}
data: {{a.conf: "alpha\n", b.conf: "beta\n"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{token: s3cret}}
---
apiVersion: v1
kind: Pod
metadata:
  name: info
  labels: {{app: web, tier: front}}
  annotations: {{note: 'say "hi"'}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes:
  - name: podinfo
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: cpu, resourceFieldRef: {{containerName: app, resource: limits.cpu, divisor: 1m}}}}
  - name: proj
    projected:
      sources:
      - configMap: {{name: conf, items: [{{key: a.conf, path: conf/a.conf}}]}}
      - secret: {{name: creds}}
      - downwardAPI: {{items: [{{path: podname, fieldRef: {{fieldPath: metadata.name}}}}]}}
  - {{name: conf, configMap: {{name: conf}}}}
  - {{name: data, emptyDir: {{}}}}
  - {{name: mem, emptyDir: {{medium: Memory, sizeLimit: 16Mi}}}}
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    resources: {{limits: {{cpu: 500m}}}}
    env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
    volumeMounts:
    - {{name: podinfo, mountPath: /etc/podinfo}}
    - {{name: proj, mountPath: /etc/proj}}
    - {{name: conf, mountPath: /etc/app/a.conf, subPath: a.conf}}
    - {{name: data, mountPath: /sub, subPath: one}}
    - {{name: data, mountPath: /expr, subPathExpr: "$(POD_NAME)"}}
    - {{name: mem, mountPath: /mem}}
  - name: peer
    image: {TEST_IMAGE}
    command: [sleep, "100000"]
    volumeMounts: [{{name: data, mountPath: /data, readOnly: true}}]
"#
        ),
    );
    wait_until("the info pod to run", LONG, || {
        status(&m, "info")["phase"] == "Running"
    });
    assert_eq!(
        exec(&m, "info", "app", "cat /etc/podinfo/labels"),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(
        exec(&m, "info", "app", "cat /etc/podinfo/annotations"),
        "note=\"say \\\"hi\\\"\""
    );
    assert_eq!(exec(&m, "info", "app", "cat /etc/podinfo/name"), "info");
    assert_eq!(exec(&m, "info", "app", "cat /etc/podinfo/cpu"), "500");
    assert_eq!(
        exec(&m, "info", "app", "cat /etc/proj/conf/a.conf"),
        "alpha\n"
    );
    assert_eq!(exec(&m, "info", "app", "cat /etc/proj/token"), "s3cret");
    assert_eq!(exec(&m, "info", "app", "cat /etc/proj/podname"), "info");
    // subPath: one key of the configMap, not the directory
    assert_eq!(exec(&m, "info", "app", "cat /etc/app/a.conf"), "alpha\n");
    assert_eq!(exec(&m, "info", "app", "ls /etc/app").trim(), "a.conf");
    // subPath and subPathExpr into an emptyDir: directories of the volume the peer sees
    exec(
        &m,
        "info",
        "app",
        "echo via-sub > /sub/f && echo via-expr > /expr/g",
    );
    assert_eq!(exec(&m, "info", "peer", "cat /data/one/f"), "via-sub\n");
    assert_eq!(exec(&m, "info", "peer", "cat /data/info/g"), "via-expr\n");
    let w = m.orkops(&["exec", "info", "-c", "peer", "--", "touch", "/data/x"]);
    assert!(!w.ok(), "a write to a readOnly mount succeeded");
    // emptyDir medium Memory: a tmpfs of the size limit
    let df = exec(&m, "info", "app", "grep ' /mem ' /proc/mounts");
    assert!(
        df.starts_with("tmpfs /mem tmpfs") && df.contains("size=16384k"),
        "{df}"
    );
    // a label change reaches the downward API file, as with the kubelet
    let (ok, _, err) =
        common::kube::kubectl(&kc, &["label", "pod", "info", "tier=back", "--overwrite"]);
    assert!(ok, "{err}");
    wait_until("the labels file to follow the label", LONG, || {
        exec(&m, "info", "app", "cat /etc/podinfo/labels") == "app=\"web\"\ntier=\"back\""
    });
    m.orkops(&["delete", "pod", "info", "--grace-period", "1"])
        .success();
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

#[test]
fn sidecars_run_beside_the_app_and_termination_messages_are_reported() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: sided}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  volumes: [{{name: shared, emptyDir: {{}}}}]
  initContainers:
  - name: proxy
    image: {TEST_IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'touch /shared/up; exec sleep 100000']
    volumeMounts: [{{name: shared, mountPath: /shared}}]
    startupProbe: {{exec: {{command: [test, -f, /shared/up]}}, periodSeconds: 1}}
  - name: check
    image: {TEST_IMAGE}
    command: [test, -f, /shared/up]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sh, -c, 'test -f /shared/up && sleep 10']
    volumeMounts: [{{name: shared, mountPath: /shared}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: said}}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - {{name: file, image: {TEST_IMAGE}, command: [sh, -c, 'echo goodbye > /dev/termination-log; exit 3']}}
  - name: logs
    image: {TEST_IMAGE}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo boom; exit 1']
  - name: custom
    image: {TEST_IMAGE}
    terminationMessagePath: /tmp/why
    command: [sh, -c, 'echo elsewhere > /tmp/why']
---
apiVersion: v1
kind: Pod
metadata: {{name: greedy}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  volumes: [{{name: scratch, emptyDir: {{sizeLimit: 1Mi}}}}]
  containers:
  - name: app
    image: {TEST_IMAGE}
    command: [sh, -c, 'dd if=/dev/zero of=/scratch/big bs=1024 count=4096; exec sleep 100000']
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
"#
        ),
    );
    // the sidecar started first and runs beside the app: READY counts it
    wait_until("the sided pod to run", LONG, || {
        status(&m, "sided")["phase"] == "Running"
    });
    let st = status(&m, "sided");
    let proxy = &st["initContainerStatuses"][0];
    assert!(proxy["state"]["running"].is_object(), "{st}");
    assert_eq!(proxy["started"], true, "{st}");
    assert_eq!(
        st["initContainerStatuses"][1]["state"]["terminated"]["reason"], "Completed",
        "{st}"
    );
    let table = m.orkops(&["get", "pod", "sided"]).success();
    assert!(
        table.lines().nth(1).unwrap_or("").split_whitespace().nth(1) == Some("2/2"),
        "{table}"
    );
    // the app is done: the pod succeeded and its sidecar was stopped
    wait_until("the sided pod to succeed", LONG, || {
        status(&m, "sided")["phase"] == "Succeeded"
    });
    wait_until("the sidecar to be stopped", LONG, || {
        status(&m, "sided")["initContainerStatuses"][0]["state"]["terminated"].is_object()
    });
    // termination messages: the file, the log on error, a path of the container's choosing
    wait_until("the said pod to fail", LONG, || {
        status(&m, "said")["phase"] == "Failed"
    });
    let st = status(&m, "said");
    let message = |i: usize| st["containerStatuses"][i]["state"]["terminated"]["message"].clone();
    assert_eq!(message(0), "goodbye\n", "{st}");
    assert_eq!(message(1), "boom\n", "{st}");
    assert_eq!(message(2), "elsewhere\n", "{st}");
    // a disk emptyDir past its sizeLimit: the pod is evicted, as by the kubelet
    wait_until("the greedy pod to be evicted", LONG, || {
        status(&m, "greedy")["reason"] == "Evicted"
    });
    let st = status(&m, "greedy");
    assert_eq!(st["phase"], "Failed", "{st}");
    assert_eq!(
        st["message"], "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". ",
        "{st}"
    );
    wait_until("the greedy pod's app to be stopped", LONG, || {
        status(&m, "greedy")["containerStatuses"][0]["state"]["terminated"].is_object()
    });
    for p in ["sided", "said", "greedy"] {
        m.orkops(&["delete", "pod", p, "--grace-period", "1"])
            .success();
    }
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

#[test]
fn readiness_gates_hold_ready_until_their_condition_is_true() {
    let m = Master::start();
    let a = Agent::start(&m);
    let node = &a.name;
    let d = tempfile::tempdir().unwrap();
    let kc = common::kube::kubeconfig(&m, d.path());
    apply(
        &m,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: gated}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  readinessGates: [{{conditionType: example.com/load-balancer}}]
  containers: [{{name: app, image: {TEST_IMAGE}, command: [sleep, "100000"]}}]
"#
        ),
    );
    let ready = |st: &Value| {
        st["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned()
            .unwrap_or_default()
    };
    wait_until("the gate to hold the pod back", LONG, || {
        ready(&status(&m, "gated"))["reason"] == "ReadinessGatesNotReady"
    });
    let st = status(&m, "gated");
    assert_eq!(ready(&st)["status"], "False", "{st}");
    assert_eq!(
        ready(&st)["message"],
        "corresponding condition of pod readiness gate \"example.com/load-balancer\" does not exist.",
        "{st}"
    );
    let (ok, _, err) = common::kube::kubectl(
        &kc,
        &[
            "patch",
            "pod",
            "gated",
            "--subresource=status",
            "--type=strategic",
            "-p",
            r#"{"status":{"conditions":[{"type":"example.com/load-balancer","status":"True"}]}}"#,
        ],
    );
    assert!(ok, "{err}");
    wait_until("the pod to be ready", LONG, || {
        ready(&status(&m, "gated"))["status"] == "True"
    });
    let (ok, wide, err) = common::kube::kubectl(&kc, &["get", "pod", "gated", "-o", "wide"]);
    assert!(ok, "{err}");
    assert!(
        wide.lines()
            .next()
            .unwrap_or("")
            .ends_with("READINESS GATES")
            && wide.lines().nth(1).unwrap_or("").ends_with("1/1"),
        "{wide}"
    );
    m.orkops(&["delete", "pod", "gated", "--grace-period", "1"])
        .success();
    wait_until("the node's containers to be removed", LONG, || {
        a.containers().is_empty()
    });
}

/// The nodes the pods of `selector` are on, by name, counted.
fn placement(kc: &std::path::Path, selector: &str) -> std::collections::BTreeMap<String, usize> {
    let (ok, out, err) = common::kube::kubectl(kc, &["get", "pods", "-l", selector, "-o", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut m = std::collections::BTreeMap::new();
    for p in v["items"].as_array().into_iter().flatten() {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            *m.entry(n.to_string()).or_default() += 1;
        }
    }
    m
}

#[test]
fn topology_spread_places_replicas_evenly_over_zones_of_hollow_nodes() {
    if !common::kube::have_kubectl() {
        return;
    }
    let m = Master::start();
    let prefix = format!("s{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let _nodes = common::hollow::Hollow::start(&m, 4, &prefix, "shared");
    let d = tempfile::tempdir().unwrap();
    let kc = common::kube::kubeconfig(&m, d.path());
    // three nodes in zone a, one in zone b
    let zone = |i: usize| if i < 3 { "zone-a" } else { "zone-b" };
    for i in 0..4 {
        let node = format!("{prefix}-{i:04}");
        wait_until("the hollow node to register", LONG, || {
            common::kube::kubectl(
                &kc,
                &[
                    "label",
                    "node",
                    &node,
                    &format!("topology.kubernetes.io/zone={}", zone(i)),
                    "--overwrite",
                ],
            )
            .0
        });
    }
    let spread = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: elsewhere}}
spec:
  schedulerName: other-scheduler
  containers: [{{name: app, image: {TEST_IMAGE}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: spread}}
spec:
  replicas: 6
  selector: {{matchLabels: {{app: spread}}}}
  template:
    metadata: {{labels: {{app: spread}}}}
    spec:
      priorityClassName: system-cluster-critical
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: DoNotSchedule
        labelSelector: {{matchLabels: {{app: spread}}}}
        matchLabelKeys: [pod-template-hash]
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {{matchLabels: {{app: spread}}}}
      containers: [{{name: app, image: {TEST_IMAGE}, command: [sleep, "3600"]}}]
"#
    );
    let f = d.path().join("spread.yaml");
    std::fs::write(&f, spread).unwrap();
    let (ok, _, err) = common::kube::kubectl(&kc, &["apply", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    wait_until("the six replicas to be placed", LONG, || {
        placement(&kc, "app=spread").values().sum::<usize>() == 6
    });
    let by_node = placement(&kc, "app=spread");
    let in_zone = |z: &str| -> usize {
        (0..4)
            .filter(|i| zone(*i) == z)
            .map(|i| {
                by_node
                    .get(&format!("{prefix}-{i:04}"))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(
        (in_zone("zone-a"), in_zone("zone-b")),
        (3, 3),
        "zone b's one node holds half the replicas: {by_node:?}"
    );
    // within zone a, ScheduleAnyway spread the three over the three nodes
    assert!(
        (0..3).all(|i| by_node.get(&format!("{prefix}-{i:04}")) == Some(&1)),
        "{by_node:?}"
    );
    // the system class's priority; the pod of another scheduler waits for it
    let (_, out, _) = common::kube::kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app=spread",
            "-o",
            "jsonpath={.items[0].spec.priority}",
        ],
    );
    assert_eq!(out, "2000000000");
    let (_, out, _) = common::kube::kubectl(&kc, &["get", "pod", "elsewhere", "-o", "json"]);
    let p: Value = serde_json::from_str(&out).unwrap();
    assert!(p["spec"]["nodeName"].is_null(), "{p}");
    assert!(
        p["status"]["conditions"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "not looked at by orkops' scheduler: {p}"
    );
    // a class that does not exist is forbidden, in kube-apiserver's words
    let bad = d.path().join("bad.yaml");
    std::fs::write(&bad, format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: vip}}\nspec:\n  priorityClassName: high\n  containers: [{{name: app, image: {TEST_IMAGE}}}]\n")).unwrap();
    let (ok, _, err) = common::kube::kubectl(&kc, &["apply", "-f", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("pods \"vip\" is forbidden: no PriorityClass with name high was found"),
        "{err}"
    );
}

/// A Deployment as a Helm chart renders one (written for this test): most of the pod fields
/// charts use at once. (Its volume fieldRefs name their apiVersion, and it sets no `false` or
/// `[]` that the API drops: kubectl would find those differ on every apply, as with
/// kube-apiserver.)
const CHART_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: release-web
  labels:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: release
    app.kubernetes.io/managed-by: Helm
    helm.sh/chart: web-1.4.2
spec:
  replicas: 2
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: web
      app.kubernetes.io/instance: release
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
        app.kubernetes.io/instance: release
      annotations:
        checksum/config: 3b1f0c5a9e
    spec:
      serviceAccountName: default
      automountServiceAccountToken: false
      enableServiceLinks: false
      shareProcessNamespace: false
      dnsPolicy: ClusterFirst
      dnsConfig:
        options:
        - {name: ndots, value: "2"}
        - {name: single-request-reopen}
      hostAliases:
      - ip: 10.20.30.40
        hostnames: [legacy.internal]
      priorityClassName: system-cluster-critical
      schedulerName: default-scheduler
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 1001
        runAsGroup: 1001
        fsGroup: 1001
        fsGroupChangePolicy: OnRootMismatch
        supplementalGroups: [1002]
        sysctls:
        - {name: net.ipv4.ip_unprivileged_port_start, value: "0"}
        seccompProfile: {type: RuntimeDefault}
        seLinuxOptions: {}
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: web
            app.kubernetes.io/instance: release
        matchLabelKeys: [pod-template-hash]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 1
            podAffinityTerm:
              topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels: {app.kubernetes.io/instance: release}
      initContainers:
      - name: wait-for-db
        image: orkops/busybox:1.35
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'until nc -z db 5432; do sleep 2; done']
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
          readOnlyRootFilesystem: true
        resources:
          requests: {cpu: 10m, memory: 16Mi}
      - name: log-shipper
        image: orkops/busybox:1.35
        restartPolicy: Always
        command: [sh, -c, 'tail -F /var/log/app/app.log']
        volumeMounts:
        - {name: logs, mountPath: /var/log/app, readOnly: true}
        startupProbe:
          exec: {command: [sh, -c, 'true']}
          periodSeconds: 2
          failureThreshold: 30
      containers:
      - name: web
        image: orkops/busybox:1.35
        imagePullPolicy: IfNotPresent
        command: [httpd, -f, -p, "8080"]
        workingDir: /srv
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        envFrom:
        - configMapRef: {name: release-web, optional: true}
        - secretRef: {name: release-web, optional: true}
          prefix: SECRET_
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_IP, valueFrom: {fieldRef: {apiVersion: v1, fieldPath: status.podIP}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: GOMEMLIMIT, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
        - {name: GOMAXPROCS, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: "1"}}}
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {cpu: 500m, memory: 256Mi}
        resizePolicy:
        - {resourceName: cpu, restartPolicy: NotRequired}
        - {resourceName: memory, restartPolicy: RestartContainer}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          runAsNonRoot: true
          privileged: false
          capabilities: {drop: [ALL]}
          seccompProfile: {type: RuntimeDefault}
          seLinuxOptions: {}
          procMount: Default
        startupProbe:
          httpGet: {path: /healthz, port: http}
          failureThreshold: 30
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /healthz, port: http}
          terminationGracePeriodSeconds: 10
        readinessProbe:
          tcpSocket: {port: http}
          timeoutSeconds: 2
        lifecycle:
          preStop: {exec: {command: [sh, -c, 'sleep 5']}}
        terminationMessagePath: /dev/termination-log
        terminationMessagePolicy: FallbackToLogsOnError
        volumeMounts:
        - {name: config, mountPath: /srv/config.yaml, subPath: config.yaml, readOnly: true}
        - {name: podinfo, mountPath: /etc/podinfo, readOnly: true}
        - {name: tmp, mountPath: /tmp}
        - {name: logs, mountPath: /var/log/app}
        - {name: cache, mountPath: /srv/cache, subPathExpr: $(POD_NAME)}
      volumes:
      - name: config
        projected:
          defaultMode: 0440
          sources:
          - configMap:
              name: release-web
              optional: true
              items: [{key: config.yaml, path: config.yaml}]
          - downwardAPI:
              items:
              - {path: labels, fieldRef: {apiVersion: v1, fieldPath: metadata.labels}}
      - name: podinfo
        downwardAPI:
          items:
          - {path: annotations, fieldRef: {apiVersion: v1, fieldPath: metadata.annotations}}
          - path: mem_limit
            resourceFieldRef: {containerName: web, resource: limits.memory, divisor: 1Mi}
      - {name: tmp, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
      - {name: logs, emptyDir: {}}
      - {name: cache, emptyDir: {sizeLimit: 1Gi}}
"#;

#[test]
fn a_helm_chart_deployment_using_many_pod_fields_is_applied_by_kubectl() {
    if !common::kube::have_kubectl() {
        return;
    }
    let m = Master::start();
    let d = tempfile::tempdir().unwrap();
    let kc = common::kube::kubeconfig(&m, d.path());
    let f = d.path().join("chart.yaml");
    std::fs::write(&f, CHART_DEPLOYMENT).unwrap();
    let (ok, out, err) = common::kube::kubectl(&kc, &["apply", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("deployment.apps/release-web created"), "{out}");
    // a second apply changes nothing: what the server defaults is not a difference
    let (ok, out, err) = common::kube::kubectl(&kc, &["apply", "-f", f.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("deployment.apps/release-web unchanged"),
        "{out}{err}"
    );
    let (ok, _, err) = common::kube::kubectl(&kc, &["diff", "-f", f.to_str().unwrap()]);
    assert!(ok, "kubectl diff finds no difference: {err}");
    // the ReplicaSet's pods went through the pod admission: defaults and priority set
    wait_until("the two pods to be created", LONG, || {
        let (_, out, _) = common::kube::kubectl(
            &kc,
            &[
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/instance=release",
                "-o",
                "name",
            ],
        );
        out.lines().count() == 2
    });
    let (_, out, _) = common::kube::kubectl(
        &kc,
        &[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=release",
            "-o",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let spec = &v["items"][0]["spec"];
    assert_eq!(spec["priority"], 2000000000, "{spec}");
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority", "{spec}");
    assert_eq!(spec["enableServiceLinks"], false, "{spec}");
    assert_eq!(
        spec["initContainers"][1]["restartPolicy"], "Always",
        "{spec}"
    );
    assert_eq!(
        spec["containers"][0]["resizePolicy"][1]["restartPolicy"], "RestartContainer",
        "{spec}"
    );
    assert_eq!(
        spec["volumes"][0]["projected"]["defaultMode"], 0o440,
        "{spec}"
    );
    assert_eq!(
        spec["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1",
        "{spec}"
    );
    // kubectl explain knows the fields from the served OpenAPI
    let (ok, out, err) = common::kube::kubectl(
        &kc,
        &[
            "explain",
            "pod.spec.topologySpreadConstraints.whenUnsatisfiable",
        ],
    );
    assert!(ok && out.contains("whenUnsatisfiable"), "{out}{err}");
}
