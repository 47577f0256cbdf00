//! StatefulSets against a real `orkops-master`, driven by the real kubectl on PATH: pods made
//! in ordinal order (each once the one before is Ready), a claim per pod made before it,
//! scaling down from the highest ordinal, a deleted pod back with its name and its claim, a
//! rolling update held at a partition, `rollout status|history|undo|restart`, `kubectl scale`
//! through the Scale subresource, the claim retention policy, and invalid sets refused with a
//! 422 that names the field. Pods run on a fake node: a thread holding a real node token that
//! reports every pod bound to it Running, and Ready unless the test holds it back (and finishes
//! their deletion), as an agent would, without Docker. Skipped with a message where no kubectl
//! is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig};

use std::time::Duration;

use common::fakenode::FakeNode;
use common::kube::Kubectl;
use common::{runtime, wait_until, Master};
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

impl Kubectl {
    /// `kubectl apply -f` of a manifest given as text.
    #[track_caller]
    fn apply(&self, dir: &std::path::Path, yaml: &str) -> String {
        let f = dir.join("manifest.yaml");
        std::fs::write(&f, yaml).unwrap();
        self.ok(&["apply", "-f", f.to_str().unwrap()])
    }

    /// The pods of the set `web` that are not being deleted, by name.
    fn pods(&self) -> Vec<Value> {
        let list = self.json(&["get", "pods", "-l", "app=web"]);
        let mut pods: Vec<Value> = list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect();
        pods.sort_by_key(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string());
        pods
    }

    fn pod(&self, name: &str) -> Option<Value> {
        let (ok, out, _) = self.run(&["get", "pod", name, "-o", "json"]);
        ok.then(|| serde_json::from_str(&out).unwrap())
    }

    fn claim(&self, name: &str) -> Option<Value> {
        let (ok, out, _) = self.run(&["get", "pvc", name, "-o", "json"]);
        ok.then(|| serde_json::from_str(&out).unwrap())
    }
}

fn names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn image(p: &Value) -> &str {
    p.pointer("/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The pods `web-0..web-{n-1}`, all ready, of `image`.
fn settled(k: &Kubectl, n: usize, image_of: &str) -> bool {
    let pods = k.pods();
    let want: Vec<String> = (0..n).map(|i| format!("web-{i}")).collect();
    names(&pods) == want && pods.iter().all(|p| ready(p) && image(p) == image_of)
}

fn ready_since(p: &Value) -> chrono::DateTime<chrono::Utc> {
    let c = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    c["lastTransitionTime"].as_str().unwrap().parse().unwrap()
}

fn created_at(p: &Value) -> chrono::DateTime<chrono::Utc> {
    p["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn web(replicas: u32, image: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: nginx}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{port: 80, name: web}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: nginx
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
{extra}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: nginx
        image: {image}
        volumeMounts: [{{name: www, mountPath: /usr/share/nginx/html}}]
  volumeClaimTemplates:
  - metadata: {{name: www}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

fn revisions_in(history: &str) -> Vec<String> {
    history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect()
}

#[test]
fn kubectl_runs_a_stateful_set_in_order_with_a_claim_per_pod() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let node = FakeNode::start(&m, "fake-1");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));

    // web-0 held not ready: web-1 is not made, though the controller has seen web-0
    node.hold("web-0");
    let out = k.apply(dir.path(), &web(3, "orkops-test/web:1", ""));
    assert!(out.contains("statefulset.apps/web created"), "{out}");
    wait_until("web-0 running, not ready, counted", LONG, || {
        let s = k.json(&["get", "sts", "web"]);
        let p = k.pod("web-0");
        s["status"]["observedGeneration"] == s["metadata"]["generation"]
            && s["status"]["replicas"] == 1
            && p.is_some_and(|p| p["status"]["phase"] == "Running" && !ready(&p))
    });
    assert!(
        k.pod("web-1").is_none(),
        "web-1 made before web-0 was ready"
    );
    node.release("web-0");
    wait_until("web-0, web-1 and web-2 ready", LONG, || {
        settled(&k, 3, "orkops-test/web:1")
    });
    let pods = k.pods();
    for i in 1..3 {
        assert!(
            created_at(&pods[i]) >= ready_since(&pods[i - 1]),
            "web-{i} made before web-{} was ready",
            i - 1
        );
    }
    let sts = k.json(&["get", "sts", "web"]);
    let revision = sts["status"]["updateRevision"]
        .as_str()
        .unwrap()
        .to_string();
    for (i, p) in pods.iter().enumerate() {
        let name = format!("web-{i}");
        assert_eq!(p["spec"]["hostname"], name.as_str());
        assert_eq!(p["spec"]["subdomain"], "nginx");
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name.as_str());
        assert_eq!(labels["apps.kubernetes.io/pod-index"], i.to_string());
        assert_eq!(labels["controller-revision-hash"], revision.as_str());
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["controller"].as_bool()),
            (Some("StatefulSet"), Some(true))
        );
        // its own claim, in place of the template's volume, placed with the pod
        let claim = format!("www-web-{i}");
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            claim.as_str()
        );
        let c = k
            .claim(&claim)
            .unwrap_or_else(|| panic!("no claim {claim}"));
        assert_eq!(c["metadata"]["labels"]["app"], "web");
        assert_eq!(c["status"]["phase"], "Bound", "{c}");
    }
    assert_eq!(sts["status"]["readyReplicas"], 3);
    assert_eq!(sts["status"]["currentRevision"], revision.as_str());
    let cr = k.json(&["get", "controllerrevision", &revision]);
    assert_eq!(cr["revision"], 1);
    assert_eq!(cr["metadata"]["ownerReferences"][0]["name"], "web");

    // kubectl's columns, as upstream prints them
    let table = k.ok(&["get", "sts"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "AGE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["web", "3/3"], "{table}");
    let wide = k.ok(&["get", "statefulsets", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]
            && wide.contains("orkops-test/web:1"),
        "{wide}"
    );
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=60s"]);
    assert!(out.contains("3 new pods have been updated"), "{out}");

    // kubectl scale, through statefulsets/web/scale: the highest ordinal goes, its claim stays
    let out = k.ok(&["scale", "sts/web", "--replicas=2"]);
    assert!(out.contains("statefulset.apps/web scaled"), "{out}");
    wait_until("web-2 to go", LONG, || k.pod("web-2").is_none());
    assert_eq!(names(&k.pods()), ["web-0", "web-1"]);
    assert!(k.claim("www-web-2").is_some(), "Retain keeps the claim");
    let scale: Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/statefulsets/web/scale",
    ]))
    .unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(2))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    // a deleted pod comes back with its name and its claim
    let before = k.pod("web-1").unwrap();
    let claim_uid = k.claim("www-web-1").unwrap()["metadata"]["uid"].clone();
    k.ok(&["delete", "pod", "web-1"]);
    wait_until("web-1 back, ready", LONG, || {
        k.pod("web-1").is_some_and(|p| {
            p["metadata"]["uid"] != before["metadata"]["uid"]
                && ready(&p)
                && p.pointer("/metadata/deletionTimestamp").is_none()
        })
    });
    let again = k.pod("web-1").unwrap();
    assert_eq!(
        again["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-1"
    );
    assert_eq!(k.claim("www-web-1").unwrap()["metadata"]["uid"], claim_uid);

    // back to 3 (web-2 gets its old claim), then a rolling update held at partition 1
    k.ok(&["scale", "sts/web", "--replicas=3"]);
    wait_until("3 pods again", LONG, || settled(&k, 3, "orkops-test/web:1"));
    k.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}"#,
    ]);
    k.ok(&["set", "image", "sts/web", "nginx=orkops-test/web:2"]);
    let out = k.ok(&["rollout", "status", "sts/web", "--timeout=120s"]);
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    let pods = k.pods();
    assert_eq!(
        pods.iter().map(image).collect::<Vec<_>>(),
        [
            "orkops-test/web:1",
            "orkops-test/web:2",
            "orkops-test/web:2"
        ],
        "only the ordinals from the partition up"
    );
    assert!(
        created_at(&pods[2]) <= created_at(&pods[1]),
        "web-2 is replaced before web-1"
    );
    let sts = k.json(&["get", "sts", "web"]);
    assert_eq!(sts["status"]["updatedReplicas"], 2, "{sts}");
    assert_eq!(sts["status"]["currentReplicas"], 1, "{sts}");
    assert_ne!(
        sts["status"]["updateRevision"],
        sts["status"]["currentRevision"]
    );
    let history = k.ok(&["rollout", "history", "sts/web"]);
    assert_eq!(revisions_in(&history), ["1", "2"], "{history}");
    let one = k.ok(&["rollout", "history", "sts/web", "--revision=1"]);
    assert!(one.contains("orkops-test/web:1"), "{one}");

    // the whole set: partition 0, then undo puts web:1 back everywhere as revision 3
    k.ok(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    k.ok(&["rollout", "status", "sts/web", "--timeout=120s"]);
    wait_until("web:2 everywhere", LONG, || {
        settled(&k, 3, "orkops-test/web:2")
    });
    let out = k.ok(&["rollout", "undo", "sts/web"]);
    assert!(out.contains("rolled back"), "{out}");
    k.ok(&["rollout", "status", "sts/web", "--timeout=120s"]);
    wait_until("web:1 everywhere again", LONG, || {
        settled(&k, 3, "orkops-test/web:1")
    });
    let history = k.ok(&["rollout", "history", "sts/web"]);
    assert_eq!(revisions_in(&history), ["2", "3"], "{history}");
    let sts = k.json(&["get", "sts", "web"]);
    assert_eq!(
        sts["status"]["currentRevision"],
        revision.as_str(),
        "the first revision, renumbered"
    );

    // restart: every pod replaced, one at a time, from the highest ordinal
    let uids: Vec<Value> = k
        .pods()
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    k.ok(&["rollout", "restart", "sts/web"]);
    k.ok(&["rollout", "status", "sts/web", "--timeout=120s"]);
    wait_until("every pod replaced", LONG, || {
        let pods = k.pods();
        settled(&k, 3, "orkops-test/web:1")
            && pods.iter().all(|p| !uids.contains(&p["metadata"]["uid"]))
    });

    // deleting the set takes its pods; its claims stay (Retain)
    k.ok(&["delete", "sts", "web"]);
    wait_until("the pods to go", LONG, || k.pods().is_empty());
    for i in 0..3 {
        assert!(k.claim(&format!("www-web-{i}")).is_some());
    }
}

#[test]
fn parallel_sets_and_the_delete_retention_policy() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let node = FakeNode::start(&m, "fake-1");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    // Parallel: all three are made while web-0 is held back
    node.hold("web-0");
    let extra = "  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}";
    k.apply(dir.path(), &web(3, "orkops-test/web:1", extra));
    wait_until("web-1 and web-2 ready beside a held web-0", LONG, || {
        let pods = k.pods();
        names(&pods) == ["web-0", "web-1", "web-2"] && ready(&pods[1]) && ready(&pods[2])
    });
    node.release("web-0");
    wait_until("3 ready", LONG, || settled(&k, 3, "orkops-test/web:1"));
    let c = k.claim("www-web-0").unwrap();
    let owner = &c["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("StatefulSet"), Some("web"))
    );

    // scaled down: the claims of the pods that go, go with them
    k.ok(&["scale", "sts/web", "--replicas=1"]);
    wait_until("web-1, web-2 and their claims to go", LONG, || {
        names(&k.pods()) == ["web-0"]
            && k.claim("www-web-1").is_none()
            && k.claim("www-web-2").is_none()
    });
    // the set deleted: its pods and claims go
    k.ok(&["delete", "sts", "web"]);
    wait_until("web-0 and its claim to go", LONG, || {
        k.pods().is_empty() && k.claim("www-web-0").is_none()
    });
}

#[test]
fn invalid_stateful_sets_are_refused_with_422_naming_the_field() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let f = dir.path().join("bad.yaml");
    for (extra, field) in [
        ("  podManagementPolicy: Random", "spec.podManagementPolicy"),
        (
            "  updateStrategy: {type: OnDelete, rollingUpdate: {partition: 1}}",
            "spec.updateStrategy.rollingUpdate",
        ),
        (
            "  updateStrategy: {rollingUpdate: {partition: -1}}",
            "spec.updateStrategy.rollingUpdate.partition",
        ),
        (
            "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Keep}",
            "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
        ),
        ("  ordinals: {start: -1}", "spec.ordinals.start"),
    ] {
        std::fs::write(&f, web(1, "orkops-test/web:1", extra)).unwrap();
        let (ok, _, err) = k.run(&["apply", "-f", f.to_str().unwrap()]);
        assert!(!ok, "{extra} was accepted");
        assert!(
            err.contains("\"web\" is invalid") && err.contains(field),
            "{extra}: {err}"
        );
    }
    // replicas past int32, and a selector that misses the template, over REST: 422
    let (http, token) = (m.http(), m.admin_token());
    let body = |replicas: Value, app: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"replicas": replicas, "serviceName": "db", "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "orkops-test/db:1"}]}}}})
    };
    runtime().block_on(async {
        let path = "/apis/apps/v1/namespaces/default/statefulsets";
        for (b, field) in [
            (body(json!(2147483648_i64), "db"), "spec.replicas"),
            (body(json!(1), "other"), "spec.template.metadata.labels"),
        ] {
            let (code, st) = http.call(Method::POST, path, Some(&token), Some(b)).await;
            assert_eq!(code, 422, "{st}");
            assert_eq!(st["details"]["causes"][0]["field"], field, "{st}");
        }
        // what may not change once made
        let (code, st) = http
            .call(Method::POST, path, Some(&token), Some(body(json!(1), "db")))
            .await;
        assert_eq!(code, 201, "{st}");
        let mut changed = st.clone();
        changed["spec"]["serviceName"] = json!("elsewhere");
        let (code, st) = http
            .call(
                Method::PUT,
                &format!("{path}/db"),
                Some(&token),
                Some(changed),
            )
            .await;
        assert_eq!(code, 422, "{st}");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains("updates to statefulset spec"),
            "{st}"
        );
    });
}

/// A StatefulSet on a real node (its own network namespace, dockerd and `orkops-agent` on the
/// orkops pod network, see `common::hosts`): each pod is known to the cluster DNS as
/// `NAME-ORDINAL.SERVICE` under its headless service, as CoreDNS answers. Needs root.
#[test]
fn pods_find_each_other_by_their_stateful_names() {
    use common::hosts::{assert_no_leftovers, Host, Lan};
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    let h = Host::start(&lan, &m, 0, &["--network", "orkops"]);
    let names = [lan.name.clone(), h.name.clone()];
    let manifest = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: nginx}}
spec:
  clusterIP: None
  selector: {{app: web}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: nginx
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleeper
        image: {}
        command: [sleep, "3600"]
"#,
        common::TEST_IMAGE
    );
    m.orkops_stdin(&["apply", "-f", "-"], Some(&manifest))
        .success();
    let pod = |name: &str| m.orkops(&["get", "pod", name, "-o", "json"]).json();
    wait_until("web-0 and web-1 to run, ready", LONG, || {
        ["web-0", "web-1"].iter().all(|p| {
            let r = m.orkops(&["get", "pod", p, "-o", "json"]);
            r.ok() && ready(&r.json())
        })
    });
    wait_until(
        "both pods in the service's endpoints, by hostname",
        LONG,
        || {
            let e = m.orkops(&["get", "endpoints", "nginx", "-o", "json"]);
            e.ok()
                && e.json()["subsets"][0]["addresses"]
                    .as_array()
                    .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["hostname"].is_string()))
        },
    );
    let ip0 = pod("web-0")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let ip1 = pod("web-1")["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let in_pod = |p: &str, script: &str| {
        let r = m.orkops(&["exec", p, "--", "sh", "-c", script]);
        String::from_utf8_lossy(&r.0.stdout).to_string() + &String::from_utf8_lossy(&r.0.stderr)
    };
    assert_eq!(in_pod("web-1", "hostname").trim(), "web-1");
    let out = in_pod("web-1", "nslookup web-0.nginx.default.svc.cluster.local");
    assert!(out.contains(&format!("Address: {ip0}")), "{out}");
    // (`web-0.nginx` is the same name once a resolver applies the pod's search path; busybox's
    // nslookup applies it only to names without a dot)
    let out = in_pod("web-0", "nslookup web-1.nginx.default.svc");
    assert!(out.contains(&format!("Address: {ip1}")), "{out}");
    let out = in_pod("web-0", "nslookup nginx.default.svc.cluster.local");
    assert!(
        out.contains(&ip0) && out.contains(&ip1),
        "the headless service: {out}"
    );

    drop(h);
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}
