//! Writes as kube-apiserver accepts them, driven by the real kubectl on PATH and over REST
//! against a real `orkops-master`: strategic merge patch (`kubectl patch`, `set image`,
//! `label`, `annotate`), merge and JSON patch, `delete --cascade=orphan`, DeleteOptions,
//! `dryRun=All`, server-side apply with field managers and conflicts, and an unconditional PUT.
//! The kubectl steps are skipped with a message where no kubectl is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig, python};

use std::path::PathBuf;
use std::time::Duration;

use common::{wait_until, Master};
use reqwest::Method;
use serde_json::{json, Value};

struct Kubectl {
    config: PathBuf,
}

impl Kubectl {
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = common::kube::kubectl_command(&self.config, args)
            .envs(env.iter().copied())
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_env(args, &[]);
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run_env(args, &[]);
        assert!(!ok, "kubectl {args:?} should have failed: {out}");
        err
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

fn deployment(name: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: app:1
        env: [{{name: A, value: "1"}}]
        ports: [{{containerPort: 80}}]
      - name: side
        image: side:1
"#
    )
}

fn containers(d: &Value) -> Vec<(String, String)> {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["image"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn manager<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == name)
}

#[test]
fn kubectl_patches_labels_and_sets_images() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        config: kubeconfig(&m, dir.path()),
    };
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, deployment("web")).unwrap();
    m.orkops(&["apply", "-f", file.to_str().unwrap()]).success();

    // strategic: the container merges by name, the other container and fields stay
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"x"}]}}}}"#,
    ]);
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(
        containers(&d),
        [("app".into(), "x".into()), ("side".into(), "side:1".into())]
    );
    let app = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(app["env"], json!([{"name": "A", "value": "1"}]), "{d}");
    assert_eq!(app["ports"][0]["containerPort"], 80);
    assert_eq!(d["metadata"]["generation"], 2);

    // merge patch and JSON patch
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 2);
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
    ]);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 3);
    // a failing test op: 422 naming the operation, and nothing of the patch applies
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/x","value":"1"},{"op":"test","path":"/spec/replicas","value":99}]"#,
    ]);
    assert!(
        err.contains("is invalid") && err.contains("operation 1"),
        "{err}"
    );
    let d = k.json(&["get", "deploy", "web"]);
    assert!(d["metadata"]["labels"].get("x").is_none(), "{d}");

    // label and annotate send patches; set image a strategic one
    k.ok(&["label", "deploy", "web", "tier=front"]);
    k.ok(&["annotate", "deploy", "web", "note=hi"]);
    k.ok(&["set", "image", "deploy/web", "app=img:2"]);
    let d = k.json(&["get", "deploy", "web", "--show-managed-fields"]);
    assert_eq!(d["metadata"]["labels"]["tier"], "front");
    assert_eq!(d["metadata"]["annotations"]["note"], "hi");
    assert_eq!(
        containers(&d),
        [
            ("app".into(), "img:2".into()),
            ("side".into(), "side:1".into())
        ]
    );
    // each writer owns what it changed
    let label = manager(&d, "kubectl-label").unwrap_or_else(|| panic!("{d}"));
    assert_eq!(label["operation"], "Update");
    assert_eq!(
        label["fieldsV1"],
        json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
    );
    let set = manager(&d, "kubectl-set").unwrap_or_else(|| panic!("{d}"));
    assert!(
        set["fieldsV1"]
            .to_string()
            .contains(r#"k:{\"name\":\"app\"}"#),
        "{set}"
    );

    // a $patch: delete directive removes one container
    k.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
    ]);
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(containers(&d), [("app".into(), "img:2".into())]);
    // an SMP that does not fit the object is refused naming the path
    let err = k.fails(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"image":"nameless"}]}}}}"#,
    ]);
    assert!(err.contains("spec.template.spec.containers[0]"), "{err}");
}

#[test]
fn kubectl_delete_cascade_orphan_leaves_the_pods() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        config: kubeconfig(&m, dir.path()),
    };
    for name in ["keep", "drop"] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, deployment(name)).unwrap();
        m.orkops(&["apply", "-f", file.to_str().unwrap()]).success();
    }
    let pods = |app: &str| -> Vec<Value> {
        k.json(&["get", "pods", "-l", &format!("app={app}")])["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    wait_until("the deployments' pods", Duration::from_secs(60), || {
        !pods("keep").is_empty() && !pods("drop").is_empty()
    });
    assert!(pods("keep")[0]["metadata"]["ownerReferences"].is_array());

    k.ok(&["delete", "deploy", "keep", "--cascade=orphan"]);
    k.ok(&["delete", "deploy", "drop"]);
    // the background cascade removes the other deployment's pods: the garbage collector has
    // run, and left the orphans
    wait_until(
        "the cascade to delete pods",
        Duration::from_secs(60),
        || pods("drop").is_empty(),
    );
    // as in Kubernetes, the orphaned deployment's replica set stays, with no owner, and keeps
    // its pods
    let kept = pods("keep");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let sets = k.json(&["get", "rs", "-l", "app=keep"]);
    let sets = sets["items"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert!(
        sets[0]["metadata"].get("ownerReferences").is_none(),
        "{:?}",
        sets[0]
    );
    assert_eq!(
        kept[0]["metadata"]["ownerReferences"][0]["name"],
        sets[0]["metadata"]["name"]
    );
    // Foreground is refused by name with a hint
    let err = k.fails(&["delete", "pod", "--all", "--cascade=foreground"]);
    assert!(
        err.contains("Foreground") && err.contains("Orphan"),
        "{err}"
    );
}

/// A REST client for the master's admin.
struct Rest {
    http: common::Http,
    token: String,
}

impl Rest {
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (u16, Value) {
        let (code, v, _) = self
            .http
            .send(method, path, &self.token, content_type, None, body)
            .await;
        (code, v)
    }

    async fn apply(&self, path: &str, manager: &str, force: bool, yaml: &str) -> (u16, Value) {
        let q = format!("{path}?fieldManager={manager}&force={force}");
        self.send(
            Method::PATCH,
            &q,
            "application/apply-patch+yaml",
            yaml.into(),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_owns_fields_and_conflicts() {
    let m = Master::start();
    let r = Rest {
        http: m.http(),
        token: m.admin_token(),
    };
    let path = "/api/v1/namespaces/default/configmaps/cfg";
    let first =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'\n  b: '2'\n";
    // fieldManager is required
    let (code, st) = r
        .send(
            Method::PATCH,
            path,
            "application/apply-patch+yaml",
            first.into(),
        )
        .await;
    assert_eq!(code, 400, "{st}");
    assert!(
        st["message"].as_str().unwrap().contains("fieldManager"),
        "{st}"
    );
    // create, then apply again with one key less: it goes
    let (code, cm) = r.apply(path, "alice", false, first).await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(cm["metadata"]["managedFields"][0]["operation"], "Apply");
    assert_eq!(
        cm["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {"f:a": {}, "f:b": {}}})
    );
    let second = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: '1'\n";
    let (code, cm) = r.apply(path, "alice", false, second).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["data"], json!({"a": "1"}));
    // another manager changing alice's field: 409 naming the field and the manager
    let bob =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: 'bob'\n  c: '3'\n";
    let (code, st) = r.apply(path, "bob", false, bob).await;
    assert_eq!(code, 409, "{st}");
    let msg = st["message"].as_str().unwrap();
    assert!(msg.contains("conflict with \"alice\": .data.a"), "{msg}");
    let (code, cm) = r.apply(path, "bob", true, bob).await;
    assert_eq!(code, 200, "{cm}");
    assert_eq!(cm["data"], json!({"a": "bob", "c": "3"}));
    let owners: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["bob"], "alice owned only data.a, now bob's: {cm}");
    // an update by another manager (merge patch with fieldManager) records an Update entry
    let (code, cm) = r
        .send(
            Method::PATCH,
            &format!("{path}?fieldManager=carol"),
            "application/merge-patch+json",
            r#"{"data":{"d":"4"}}"#.into(),
        )
        .await;
    assert_eq!(code, 200, "{cm}");
    let carol = manager(&cm, "carol").unwrap();
    assert_eq!(carol["operation"], "Update");
    assert_eq!(carol["fieldsV1"], json!({"f:data": {"f:d": {}}}));
    // an unknown patch type is 415
    let (code, _) = r.send(Method::PATCH, path, "text/plain", "x".into()).await;
    assert_eq!(code, 415);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_delete_options_and_unconditional_put() {
    let m = Master::start();
    let r = Rest {
        http: m.http(),
        token: m.admin_token(),
    };
    let cms = "/api/v1/namespaces/default/configmaps";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}, "data": {"a": "1"}});
    // dryRun=All: the would-be object comes back, nothing is stored
    let (code, v) = r
        .send(
            Method::POST,
            &format!("{cms}?dryRun=All"),
            "application/json",
            cm.to_string(),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["data"]["a"], "1");
    let (code, _) = r
        .send(
            Method::GET,
            &format!("{cms}/d"),
            "application/json",
            String::new(),
        )
        .await;
    assert_eq!(code, 404, "a dry-run create stores nothing");
    let (code, st) = r
        .send(
            Method::POST,
            &format!("{cms}?dryRun=Some"),
            "application/json",
            cm.to_string(),
        )
        .await;
    assert_eq!(code, 400);
    assert!(st["message"].as_str().unwrap().contains("dryRun"), "{st}");
    let (code, v) = r
        .send(Method::POST, cms, "application/json", cm.to_string())
        .await;
    assert_eq!(code, 201, "{v}");
    let uid = v["metadata"]["uid"].as_str().unwrap().to_string();
    // dry-run patch and delete change nothing
    let (code, v) = r
        .send(
            Method::PATCH,
            &format!("{cms}/d?dryRun=All"),
            "application/strategic-merge-patch+json",
            r#"{"data":{"a":"2"}}"#.into(),
        )
        .await;
    assert_eq!((code, v["data"]["a"].clone()), (200, json!("2")), "{v}");
    let (code, _) = r
        .send(
            Method::DELETE,
            &format!("{cms}/d"),
            "application/json",
            r#"{"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"]}"#.into(),
        )
        .await;
    assert_eq!(code, 200);
    let (_, v) = r
        .send(
            Method::GET,
            &format!("{cms}/d"),
            "application/json",
            String::new(),
        )
        .await;
    assert_eq!(v["data"]["a"], "1", "dry runs stored nothing: {v}");
    // a PUT without resourceVersion is an unconditional update
    let mut put = cm.clone();
    put["data"]["a"] = json!("3");
    let (code, v) = r
        .send(
            Method::PUT,
            &format!("{cms}/d"),
            "application/json",
            put.to_string(),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["a"], "3");
    // DeleteOptions: unknown fields refused by name, bad preconditions are 409
    let (code, st) = r
        .send(
            Method::DELETE,
            &format!("{cms}/d"),
            "application/json",
            r#"{"propagation":"Orphan"}"#.into(),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        st["message"].as_str().unwrap().contains("\"propagation\""),
        "{st}"
    );
    let (code, _) = r
        .send(
            Method::DELETE,
            &format!("{cms}/d"),
            "application/json",
            r#"{"preconditions":{"uid":"not-it"}}"#.into(),
        )
        .await;
    assert_eq!(code, 409);
    let (code, v) = r
        .send(Method::DELETE, &format!("{cms}/d"), "application/json", json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "preconditions": {"uid": uid}}).to_string())
        .await;
    assert_eq!(code, 200, "{v}");
}

/// The kubectl commands that send `fieldValidation` (create, apply, replace, edit): they need
/// the parameter accepted, which the `openapi` branch adds.
#[test]
fn kubectl_dry_run_apply_server_side_replace_and_edit() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl {
        config: kubeconfig(&m, dir.path()),
    };
    // --dry-run=server prints the object and stores nothing
    // (`create configmap NAME` would send protobuf, which orkops does not take; -f sends JSON)
    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: dry}\ndata: {a: \"1\"}\n",
    )
    .unwrap();
    let out = k.ok(&[
        "create",
        "--validate=false",
        "-f",
        cm.to_str().unwrap(),
        "--dry-run=server",
        "-o",
        "yaml",
    ]);
    assert!(
        out.contains("name: dry") && out.contains("a: \"1\""),
        "{out}"
    );
    let err = k.fails(&["get", "configmap", "dry"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // apply --server-side twice, with a change
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, deployment("web")).unwrap();
    let f = file.to_str().unwrap();
    k.ok(&["apply", "--validate=false", "--server-side", "-f", f]);
    std::fs::write(
        &file,
        deployment("web").replace("replicas: 1", "replicas: 2"),
    )
    .unwrap();
    k.ok(&["apply", "--validate=false", "--server-side", "-f", f]);
    let d = k.json(&["get", "deploy", "web", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(manager(&d, "kubectl").unwrap()["operation"], "Apply");
    // another manager wanting replicas: 3 conflicts, and takes them with --force-conflicts
    std::fs::write(
        &file,
        deployment("web").replace("replicas: 1", "replicas: 3"),
    )
    .unwrap();
    let err = k.fails(&[
        "apply",
        "--validate=false",
        "--server-side",
        "--field-manager=other",
        "-f",
        f,
    ]);
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas"),
        "{err}"
    );
    k.ok(&[
        "apply",
        "--validate=false",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        f,
    ]);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 3);

    // replace -f without a resourceVersion is unconditional
    std::fs::write(
        &file,
        deployment("web").replace("replicas: 1", "replicas: 4"),
    )
    .unwrap();
    k.ok(&["replace", "--validate=false", "-f", f]);
    assert_eq!(k.json(&["get", "deploy", "web"])["spec"]["replicas"], 4);

    // edit with EDITOR set to a sed script
    let script = dir.path().join("edit.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/replicas: 4/replicas: 5/' \"$1\"\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let (ok, out, err) = k.run_env(
        &["edit", "--validate=false", "deploy", "web"],
        &[
            ("EDITOR", script.to_str().unwrap()),
            ("KUBE_EDITOR", script.to_str().unwrap()),
        ],
    );
    assert!(ok, "{out}{err}");
    let d = k.json(&["get", "deploy", "web", "--show-managed-fields"]);
    assert_eq!(d["spec"]["replicas"], 5);
    assert!(manager(&d, "kubectl-edit").is_some(), "{d}");
}

#[test]
fn python_client_dict_patch_is_a_strategic_merge_and_delete_takes_options() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, deployment("web")).unwrap();
    m.orkops(&["apply", "-f", file.to_str().unwrap()]).success();
    let program = r#"
import json
from kubernetes import client, config
config.load_kube_config()
apps = client.AppsV1Api()
# a dict body is sent as a strategic merge patch
d = apps.patch_namespaced_deployment("web", "default",
    {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "py:2"}]}}}})
print(json.dumps([[c.name, c.image] for c in d.spec.template.spec.containers]))
# dry run: nothing changes
apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 7}}, dry_run="All")
print(apps.read_namespaced_deployment("web", "default").spec.replicas)
apps.delete_namespaced_deployment("web", "default",
    body=client.V1DeleteOptions(propagation_policy="Orphan"))
try:
    apps.read_namespaced_deployment("web", "default")
    print("still there")
except client.ApiException as e:
    print(e.status)
"#;
    let Some(out) = python(program, &config) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [r#"[["app", "py:2"], ["side", "side:1"]]"#, "1", "404"],
        "{out}"
    );
}
