//! ReplicationControllers, StorageClasses and PersistentVolumes against a real `orkops-master`
//! and etcd, driven by the real kubectl on PATH and the REST API: an rc's pods run on hollow
//! nodes, scale through its Scale subresource and go with it; the default StorageClass `local`
//! names the claims that name none; volumes bind to the claims that ask for them by name or by
//! label, are Released when their claim goes, and volumes of other clouds are refused by name;
//! and, with a real agent and Docker, a pod mounts the node directory of its claim's volume,
//! and a claim of `local` gets a provisioned volume that goes with it. kubectl tests skip with
//! a message where no kubectl is installed.

mod common;

use std::time::Duration;

use common::hollow::Hollow;
use common::kube::{have_kubectl, kubeconfig, Kubectl};
use common::{wait_until, Agent, Http, Master, TEST_IMAGE};
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

/// Admin REST calls from a blocking test.
struct Rest {
    http: Http,
    token: String,
    rt: tokio::runtime::Runtime,
}

impl Rest {
    fn new(m: &Master) -> Rest {
        Rest {
            http: m.http(),
            token: m.admin_token(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rt
            .block_on(self.http.call(method, path, Some(&self.token), body))
    }

    #[track_caller]
    fn send(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (code, out) = self.call(method.clone(), path, body);
        assert_eq!(code, want, "{method} {path}: {out}");
        out
    }

    fn get(&self, path: &str) -> Value {
        // a poll every few ms would load the 2-core machine
        std::thread::sleep(Duration::from_millis(200));
        self.send(Method::GET, path, None, 200)
    }

    fn pv(&self, name: &str) -> Value {
        self.get(&format!("/api/v1/persistentvolumes/{name}"))
    }

    fn pvc(&self, name: &str) -> Value {
        self.get(&format!("{CORE}/persistentvolumeclaims/{name}"))
    }

    /// The reasons and messages of the events about `kind` `name`.
    fn events(&self, kind: &str, name: &str) -> Vec<(String, String)> {
        let list = self.get("/api/v1/events");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or("").to_string(),
                    e["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

const CORE: &str = "/api/v1/namespaces/default";

impl Kubectl {
    /// `kubectl create -f` of a manifest written to a file.
    #[track_caller]
    fn create(&self, manifest: &str) -> String {
        let file = self
            .0
            .with_file_name(format!("m-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, manifest).unwrap();
        self.ok(&["create", "-f", file.to_str().unwrap()])
    }
}

/// The whitespace-separated cells of the row of `name` in a kubectl table (first column).
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
        .split("   ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

fn live_pods(rest: &Rest, selector: &str) -> Vec<Value> {
    let list = rest.get(&format!("{CORE}/pods?labelSelector={selector}"));
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect()
}

#[test]
fn kubectl_runs_a_replication_controller_scales_it_and_its_pods_go_with_it() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _nodes = Hollow::start(&m, 2, &format!("rc{}", std::process::id()), "shared");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let rest = Rest::new(&m);
    // as the kubernetes/examples manifests write one: no selector, it is the template's labels
    let out = k.create(
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: nginx}\nspec:\n  replicas: 3\n  template:\n    metadata: {labels: {app: nginx}}\n    spec:\n      containers: [{name: nginx, image: nginx:1.27}]\n",
    );
    assert!(out.contains("replicationcontroller/nginx created"), "{out}");
    let ready = |n: i64| {
        let rc = rest.get(&format!("{CORE}/replicationcontrollers/nginx"));
        rc["status"]["readyReplicas"] == n
            && rc["status"]["replicas"] == n
            && live_pods(&rest, "app%3Dnginx").len() == n as usize
    };
    wait_until("3 ready pods of the rc", LONG, || ready(3));
    let rc = rest.get(&format!("{CORE}/replicationcontrollers/nginx"));
    assert_eq!(rc["spec"]["selector"], json!({"app": "nginx"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "nginx"}));
    assert_eq!(
        rc["status"]["observedGeneration"],
        rc["metadata"]["generation"]
    );
    for p in live_pods(&rest, "app%3Dnginx") {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["apiVersion"], &owner["kind"], &owner["uid"]),
            (
                &json!("v1"),
                &json!("ReplicationController"),
                &rc["metadata"]["uid"]
            ),
            "{p}"
        );
    }
    let table = k.ok(&["get", "rc"]);
    assert_eq!(
        header(&table),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{table}"
    );
    assert_eq!(
        row(&table, "nginx")[..4],
        ["nginx", "3", "3", "3"],
        "{table}"
    );

    let described = k.ok(&["describe", "rc", "nginx"]);
    assert!(
        described.contains("Selector:") && described.contains("app=nginx"),
        "{described}"
    );
    let out = k.ok(&["scale", "rc", "nginx", "--replicas=5"]);
    assert!(out.contains("replicationcontroller/nginx scaled"), "{out}");
    wait_until("5 ready pods", LONG, || ready(5));
    let scale = rest.get(&format!("{CORE}/replicationcontrollers/nginx/scale"));
    assert_eq!(
        (
            &scale["kind"],
            &scale["spec"]["replicas"],
            &scale["status"]["selector"]
        ),
        (&json!("Scale"), &json!(5), &json!("app=nginx"))
    );
    k.ok(&["scale", "rc", "nginx", "--replicas=1"]);
    wait_until("1 pod left", LONG, || ready(1));

    let out = k.ok(&["delete", "rc", "nginx"]);
    assert!(out.contains("\"nginx\" deleted"), "{out}");
    wait_until("the rc's pods to go with it", LONG, || {
        live_pods(&rest, "app%3Dnginx").is_empty()
    });
}

#[test]
fn the_default_class_local_names_claims_that_name_none_and_a_missing_class_is_told() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let rest = Rest::new(&m);
    let table = k.ok(&["get", "sc"]);
    assert_eq!(
        header(&table),
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ],
        "{table}"
    );
    let cells = row(&table, "local");
    assert_eq!(
        cells[..5],
        [
            "local (default)",
            "orkops.io/local",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{table}"
    );
    let claim = |name: &str, class: Option<&str>| {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(cl) = class {
            c["spec"]["storageClassName"] = json!(cl);
        }
        rest.send(
            Method::POST,
            &format!("{CORE}/persistentvolumeclaims"),
            Some(c),
            201,
        )
    };
    let made = claim("data", None);
    assert_eq!(made["spec"]["storageClassName"], "local", "{made}");
    assert_eq!(made["status"]["phase"], "Pending");
    wait_until("the claim to wait for its first pod", LONG, || {
        rest.events("PersistentVolumeClaim", "data")
            .iter()
            .any(|(r, msg)| {
                r == "WaitForFirstConsumer"
                    && msg == "waiting for first consumer to be created before binding"
            })
    });
    let described = k.ok(&["describe", "sc", "local"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("IsDefaultClass:") && l.trim_end().ends_with("Yes")),
        "{described}"
    );
    claim("fast", Some("fast"));
    wait_until("the missing class to be told", LONG, || {
        rest.events("PersistentVolumeClaim", "fast")
            .iter()
            .any(|(r, msg)| {
                r == "ProvisioningFailed" && msg == "storageclass.storage.k8s.io \"fast\" not found"
            })
    });
    assert_eq!(rest.pvc("fast")["status"]["phase"], "Pending");
    let table = k.ok(&["get", "pvc"]);
    assert_eq!(
        header(&table),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(
        row(&table, "fast")[..3],
        ["fast", "Pending", "fast"],
        "{table}"
    );

    // another default: a claim made after takes the newest one
    k.create("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: premium\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/premium\n");
    assert_eq!(claim("later", None)["spec"]["storageClassName"], "premium");
    // what a class is made with stays
    let (ok, _, err) = k.run(&[
        "patch",
        "sc",
        "premium",
        "--type=merge",
        "-p",
        "{\"provisioner\":\"example.com/other\"}",
    ]);
    assert!(
        !ok && err.contains("updates to provisioner are forbidden"),
        "{err}"
    );
}

fn host_volume(name: &str, size: &str, labels: Value, path: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": labels},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual", "hostPath": {"path": path}}})
}

fn manual_claim(name: &str, spec: Value) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
            "resources": {"requests": {"storage": "1Gi"}}}});
    for (k, v) in spec.as_object().unwrap() {
        c["spec"][k] = v.clone();
    }
    c
}

#[test]
fn volumes_bind_by_name_and_by_label_are_released_with_their_claim_and_clouds_are_refused() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let rest = Rest::new(&m);
    let pvs = "/api/v1/persistentvolumes";
    let claims = format!("{CORE}/persistentvolumeclaims");
    let made = rest.send(
        Method::POST,
        pvs,
        Some(host_volume("named", "1Gi", json!({}), "/srv/named")),
        201,
    );
    assert_eq!(made["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(made["status"]["phase"], "Pending");
    wait_until("the volume to be Available", LONG, || {
        rest.pv("named")["status"]["phase"] == "Available"
    });
    rest.send(
        Method::POST,
        &claims,
        Some(manual_claim("mine", json!({"volumeName": "named"}))),
        201,
    );
    wait_until("the claim and its volume bound both ways", LONG, || {
        rest.pvc("mine")["status"]["phase"] == "Bound"
            && rest.pv("named")["status"]["phase"] == "Bound"
    });
    let (pv, pvc) = (rest.pv("named"), rest.pvc("mine"));
    let r = &pv["spec"]["claimRef"];
    assert_eq!(
        (&r["kind"], &r["namespace"], &r["name"], &r["uid"]),
        (
            &json!("PersistentVolumeClaim"),
            &json!("default"),
            &json!("mine"),
            &pvc["metadata"]["uid"]
        ),
        "{pv}"
    );
    assert_eq!(pvc["spec"]["volumeName"], "named");
    assert_eq!(
        pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(pvc["status"]["accessModes"], json!(["ReadWriteOnce"]));
    let table = k.ok(&["get", "pv"]);
    assert_eq!(
        header(&table),
        [
            "NAME",
            "CAPACITY",
            "ACCESS MODES",
            "RECLAIM POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(
        row(&table, "named")[..8],
        [
            "named",
            "1Gi",
            "RWO",
            "Retain",
            "Bound",
            "default/mine",
            "manual",
            "<unset>"
        ],
        "{table}"
    );
    let described = k.ok(&["describe", "pv", "named"]);
    assert!(
        described.contains("default/mine") && described.contains("HostPath"),
        "{described}"
    );
    let described = k.ok(&["describe", "pvc", "mine"]);
    assert!(
        described.contains("Volume:") && described.contains("named"),
        "{described}"
    );
    let table = k.ok(&["get", "pvc", "mine"]);
    assert_eq!(
        row(&table, "mine")[..6],
        ["mine", "Bound", "named", "1Gi", "RWO", "manual"],
        "{table}"
    );

    // by label: the ssd one, though the hdd one is smaller
    rest.send(
        Method::POST,
        pvs,
        Some(host_volume(
            "ssd",
            "5Gi",
            json!({"disk": "ssd"}),
            "/srv/ssd",
        )),
        201,
    );
    rest.send(
        Method::POST,
        pvs,
        Some(host_volume(
            "hdd",
            "1Gi",
            json!({"disk": "hdd"}),
            "/srv/hdd",
        )),
        201,
    );
    let picky = manual_claim(
        "picky",
        json!({"selector": {"matchLabels": {"disk": "ssd"}}}),
    );
    rest.send(Method::POST, &claims, Some(picky), 201);
    wait_until("the claim with a selector to bind", LONG, || {
        rest.pvc("picky")["status"]["phase"] == "Bound"
    });
    assert_eq!(rest.pvc("picky")["spec"]["volumeName"], "ssd");
    assert_eq!(rest.pvc("picky")["status"]["capacity"]["storage"], "5Gi");
    assert_eq!(rest.pv("hdd")["status"]["phase"], "Available");
    assert!(rest.pv("hdd")["spec"].get("claimRef").is_none());

    // the claim goes: a Retain volume is Released, its claimRef kept for the admin
    k.ok(&["delete", "pvc", "mine"]);
    wait_until("the volume to be Released", LONG, || {
        rest.pv("named")["status"]["phase"] == "Released"
    });
    assert_eq!(rest.pv("named")["spec"]["claimRef"]["name"], "mine");
    let table = k.ok(&["get", "pv", "named"]);
    assert_eq!(row(&table, "named")[4], "Released", "{table}");

    // volumes of other clouds: refused, by name, with what to use
    let mut gce = host_volume("gce", "10Gi", json!({}), "/x");
    gce["spec"].as_object_mut().unwrap().remove("hostPath");
    gce["spec"]["gcePersistentDisk"] = json!({"pdName": "disk-1", "fsType": "ext4"});
    let refused = rest.send(Method::POST, pvs, Some(gce.clone()), 422);
    let cause = &refused["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.gcePersistentDisk", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("hint"),
        "{refused}"
    );
    let file = dir.path().join("gce.json");
    std::fs::write(&file, gce.to_string()).unwrap();
    let (ok, _, err) = k.run(&["create", "-f", file.to_str().unwrap()]);
    assert!(!ok && err.contains("spec.gcePersistentDisk"), "{err}");
}

fn agent_pod(name: &str, node: &str, claims: &[(&str, &str)], script: &str) -> Value {
    let volumes: Vec<Value> = claims
        .iter()
        .map(|(v, c)| json!({"name": v, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    let mounts: Vec<Value> = claims
        .iter()
        .map(|(v, _)| json!({"name": v, "mountPath": format!("/{v}")}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "volumes": volumes,
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}},
            "containers": [{"name": "c", "image": TEST_IMAGE, "command": ["sh", "-c", script],
                "volumeMounts": mounts}]}})
}

#[test]
fn a_pod_mounts_the_node_paths_of_its_volumes_and_a_local_claim_is_provisioned() {
    let m = Master::start();
    let a = Agent::start(&m);
    let rest = Rest::new(&m);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello"), "from-the-node\n").unwrap();
    let disk = tempfile::tempdir().unwrap();
    let pvs = "/api/v1/persistentvolumes";
    let claims = format!("{CORE}/persistentvolumeclaims");
    rest.send(
        Method::POST,
        pvs,
        Some(host_volume(
            "host",
            "1Gi",
            json!({}),
            host.path().to_str().unwrap(),
        )),
        201,
    );
    let mut local = host_volume("disk", "1Gi", json!({}), "/unused");
    let spec = local["spec"].as_object_mut().unwrap();
    spec.remove("hostPath");
    spec.insert("local".into(), json!({"path": disk.path()}));
    spec.insert(
        "nodeAffinity".into(),
        json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [a.name]}]}]}}),
    );
    rest.send(Method::POST, pvs, Some(local), 201);
    rest.send(
        Method::POST,
        &claims,
        Some(manual_claim("host", json!({"volumeName": "host"}))),
        201,
    );
    rest.send(
        Method::POST,
        &claims,
        Some(manual_claim("disk", json!({"volumeName": "disk"}))),
        201,
    );
    let local_claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "scratch"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}}});
    let scratch = rest.send(Method::POST, &claims, Some(local_claim), 201);
    wait_until("the claims to bind their volumes", LONG, || {
        rest.pvc("host")["status"]["phase"] == "Bound"
            && rest.pvc("disk")["status"]["phase"] == "Bound"
    });
    let pod = agent_pod(
        "reader",
        &a.name,
        &[("host", "host"), ("disk", "disk"), ("scratch", "scratch")],
        "cat /host/hello > /disk/copied; echo kept > /scratch/f; exec sleep 100000",
    );
    rest.send(Method::POST, &format!("{CORE}/pods"), Some(pod), 201);
    wait_until("the pod to run and copy the node's file", LONG, || {
        std::fs::read_to_string(disk.path().join("copied")).is_ok_and(|s| s == "from-the-node\n")
    });
    let p = rest.get(&format!("{CORE}/pods/reader"));
    assert_eq!(p["spec"]["nodeName"], a.name.as_str());
    // the claim of the class local: a volume provisioned on the pod's node, bound to it
    let uid = scratch["metadata"]["uid"].as_str().unwrap().to_string();
    let pv_name = format!("pvc-{uid}");
    wait_until("the provisioned volume to be bound", LONG, || {
        rest.pvc("scratch")["status"]["phase"] == "Bound"
    });
    let pv = rest.pv(&pv_name);
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "orkops.io/local"
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(pv["spec"]["capacity"]["storage"], "2Gi");
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchFields"][0]["values"]
            [0],
        a.name.as_str()
    );
    assert_eq!(
        a.volumes(),
        [format!("orkops-pvc-{uid}")],
        "one Docker volume, of the local claim"
    );

    rest.send(
        Method::DELETE,
        &format!("{CORE}/pods/reader?gracePeriodSeconds=1"),
        None,
        200,
    );
    wait_until("the pod's containers to go", LONG, || {
        a.containers().is_empty()
    });
    // the class local deletes: the claim goes, then its volume, then the Docker volume
    rest.send(
        Method::DELETE,
        &format!("{CORE}/persistentvolumeclaims/scratch"),
        None,
        200,
    );
    wait_until("the provisioned volume to be deleted", LONG, || {
        rest.call(Method::GET, &format!("{pvs}/{pv_name}"), None).0 == 404
    });
    wait_until("the Docker volume to be removed", LONG, || {
        a.volumes().is_empty()
    });
    assert!(
        host.path().join("hello").exists() && disk.path().join("copied").exists(),
        "node paths stay"
    );
}
