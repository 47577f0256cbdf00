//! Deployment → ReplicaSet → Pod against a real `orkops-master`, driven by the real kubectl on
//! PATH: one replica set per template, `kubectl scale` through the `autoscaling/v1` Scale
//! subresource, `set image`, `rollout status|history|undo|restart|pause|resume`, and the
//! cascade when the deployment goes. Pods run on a fake node: a thread holding a real node
//! token that heartbeats its Node and reports every pod bound to it Running and Ready (and
//! finishes their deletion), as an agent would, without Docker. Skipped with a message where no
//! kubectl is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig, python};

use std::time::Duration;

use common::fakenode::FakeNode;
use common::kube::Kubectl;
use common::{runtime, wait_until, Http, Master};
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The replica sets of `app` (by label), and their pods that are not being deleted.
fn state(k: &Kubectl, app: &str) -> (Vec<Value>, Vec<Value>) {
    let sel = format!("app={app}");
    let sets = items(&k.json(&["get", "rs", "-l", &sel]));
    let pods = items(&k.json(&["get", "pods", "-l", &sel]))
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    (sets, pods)
}

fn image_of(v: &Value) -> &str {
    v.pointer("/spec/template/spec/containers/0/image")
        .or_else(|| v.pointer("/spec/containers/0/image"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn revision(rs: &Value) -> &str {
    rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `replicas` pods of `image`, ready, all in one replica set that holds them all; any other set
/// of the deployment is at zero.
fn settled(k: &Kubectl, app: &str, image: &str, replicas: usize) -> bool {
    let (sets, pods) = state(k, app);
    let full: Vec<&Value> = sets
        .iter()
        .filter(|r| r.pointer("/spec/replicas") != Some(&json!(0)))
        .collect();
    full.len() == 1
        && image_of(full[0]) == image
        && full[0].pointer("/status/readyReplicas") == Some(&json!(replicas))
        && pods.len() == replicas
        && pods
            .iter()
            .all(|p| image_of(p) == image && p.pointer("/status/phase") == Some(&json!("Running")))
}

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
            rt: runtime(),
        }
    }

    #[track_caller]
    fn send(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (code, out) =
            self.rt.block_on(
                self.http
                    .call(method.clone(), path, Some(&self.token), body),
            );
        assert_eq!(code, want, "{method} {path}: {out}");
        out
    }

    /// A JSON merge patch of deployment `name` in `default`.
    #[track_caller]
    fn patch_deployment(&self, name: &str, patch: Value) {
        let url = format!(
            "{}/apis/apps/v1/namespaces/default/deployments/{name}",
            self.http.base
        );
        let resp = self.rt.block_on(async {
            let r = self
                .http
                .client
                .patch(url)
                .bearer_auth(&self.token)
                .header("Content-Type", "application/merge-patch+json")
                .body(patch.to_string())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        assert_eq!(resp.0, 200, "{}", resp.1);
    }
}

fn web(image: &str, replicas: u32) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
}

fn revisions_in(history: &str) -> Vec<String> {
    history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .map(str::to_string)
        .collect()
}

/// What works with the kubectl write requests of this branch: the deployment is written over
/// REST (kubectl's create/set/patch send `fieldManager` and strategic merge or JSON patches),
/// everything else is kubectl (and `orkops rollout undo`).
#[test]
fn kubectl_reads_replica_sets_scales_and_follows_rollouts() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _node = FakeNode::start(&m, "fake-1");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let rest = Rest::new(&m);
    let apps = "/apis/apps/v1/namespaces/default";
    rest.send(
        Method::POST,
        &format!("{apps}/deployments"),
        Some(web("orkops-test/web:1", 3)),
        201,
    );
    wait_until("3 ready pods of one replica set", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 3)
    });
    let (sets, pods) = state(&k, "web");
    let rs_name = sets[0]["metadata"]["name"].as_str().unwrap().to_string();
    let hash = sets[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(revision(&sets[0]), "1");
    for p in &pods {
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            rs_name.as_str()
        );
    }
    assert_eq!(
        k.ok(&["get", "rs", "-o", "name"]).trim(),
        format!("replicaset.apps/{rs_name}")
    );
    let out = k.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    let out = k.ok(&["scale", "deploy/web", "--replicas=5"]);
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    wait_until("5 ready pods", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 5)
    });
    let raw = k.ok(&["get", "--raw", &format!("{apps}/deployments/web/scale")]);
    let scale: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64()),
        (Some("Scale"), Some(5))
    );
    assert_eq!(scale["status"]["selector"], "app=web");

    // a new template: kubectl follows the rollout to its end
    rest.patch_deployment("web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "orkops-test/web:2"}]}}}}));
    let out = k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    assert!(
        settled(&k, "web", "orkops-test/web:2", 5),
        "{:?}",
        state(&k, "web")
    );
    let (sets, _) = state(&k, "web");
    assert_eq!(sets.len(), 2);
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2",
        "{d}"
    );
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    let history = k.ok(&["rollout", "history", "deploy/web"]);
    assert_eq!(revisions_in(&history), ["1", "2"], "{history}");
    let one = k.ok(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(one.contains("orkops-test/web:1"), "{one}");
    let new_rs = sets
        .iter()
        .find(|r| r["metadata"]["name"] != rs_name.as_str())
        .unwrap();
    let described = k.ok(&["describe", "deploy", "web"]);
    let new_name = new_rs["metadata"]["name"].as_str().unwrap();
    let line = format!("{new_name} (5/5 replicas created)");
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("NewReplicaSet:") && l.trim_end().ends_with(&line)),
        "{described}"
    );
    assert!(
        described.contains("ScalingReplicaSet")
            && described.contains(&format!("Scaled up replica set {new_name}")),
        "the deployment's events: {described}"
    );

    // orkops' own undo, on the replica sets: the first set comes back as revision 3
    let out = m.orkops(&["rollout", "undo", "deployment/web"]).success();
    assert!(out.contains("rolled back to revision 1"), "{out}");
    k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    wait_until("the first set back, as revision 3", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 5)
            && state(&k, "web")
                .0
                .iter()
                .any(|r| r["metadata"]["name"] == rs_name.as_str() && revision(r) == "3")
    });
    let history = k.ok(&["rollout", "history", "deploy/web"]);
    assert_eq!(revisions_in(&history), ["2", "3"], "{history}");
    let ours = m
        .orkops(&["rollout", "history", "deployment/web"])
        .success();
    assert!(
        ours.lines().any(|l| l.starts_with('3')
            && l.contains("orkops-test/web:1")
            && l.trim_end().ends_with('*')),
        "{ours}"
    );

    // paused: a template change waits
    rest.patch_deployment("web", json!({"spec": {"paused": true}}));
    rest.patch_deployment("web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "orkops-test/web:3"}]}}}}));
    wait_until("the paused condition", LONG, || {
        let d = k.json(&["get", "deploy", "web"]);
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["reason"] == "DeploymentPaused")
    });
    assert!(
        state(&k, "web")
            .0
            .iter()
            .all(|r| image_of(r) != "orkops-test/web:3"),
        "paused, yet rolled out"
    );
    rest.patch_deployment("web", json!({"spec": {"paused": false}}));
    k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    wait_until("web:3 everywhere", LONG, || {
        settled(&k, "web", "orkops-test/web:3", 5)
    });

    // kubectl delete: the sets, then their pods
    k.ok(&["delete", "deploy", "web"]);
    wait_until("the replica sets and pods to go", LONG, || {
        let (sets, _) = state(&k, "web");
        sets.is_empty() && items(&k.json(&["get", "pods", "-l", "app=web"])).is_empty()
    });
}

/// The whole kubectl flow, its writes included: `create -f` and `set image` send
/// `fieldManager`/`fieldValidation` and strategic merge patches, `rollout undo` a JSON patch,
/// `rollout restart|pause|resume` strategic merge patches — what branch `patch` serves.
#[test]
fn kubectl_creates_scales_and_rolls_out_a_deployment_through_replica_sets() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _node = FakeNode::start(&m, "fake-1");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));

    // one replica set of 3 ready pods, named after the deployment and its template hash
    // what `kubectl create deployment web --image=... --replicas=3` makes; the generator
    // itself sends protobuf, which orkops does not decode yet
    let manifest = dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\n\
         spec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n\
         \x20   metadata:\n      labels: {app: web}\n    spec:\n      containers:\n\
         \x20     - name: web\n        image: orkops-test/web:1\n",
    )
    .unwrap();
    k.ok(&["create", "-f", manifest.to_str().unwrap()]);
    wait_until("3 ready pods of one replica set", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 3)
    });
    let (sets, pods) = state(&k, "web");
    let rs = &sets[0];
    let rs_name = rs["metadata"]["name"].as_str().unwrap().to_string();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(revision(rs), "1");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["status"]["availableReplicas"], 3, "{rs}");
    for p in &pods {
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            rs_name.as_str()
        );
        assert_eq!(p["metadata"]["labels"]["pod-template-hash"], hash);
    }
    let names = k.ok(&["get", "rs", "-o", "name"]);
    assert_eq!(names.trim(), format!("replicaset.apps/{rs_name}"));
    let out = k.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    // kubectl scale goes through deployments/web/scale
    let out = k.ok(&["scale", "deploy/web", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    wait_until("5 ready pods", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 5)
    });
    let scale: Value = serde_json::from_str(&k.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["metadata"]["generation"], 2,
        "scaling bumps the generation: {d}"
    );
    wait_until("the deployment status to catch up", LONG, || {
        let d = k.json(&["get", "deploy", "web"]);
        d["status"]["observedGeneration"] == 2 && d["status"]["availableReplicas"] == 5
    });

    // a new image: a second replica set takes over, the first one is scaled to zero and kept
    k.ok(&["set", "image", "deploy/web", "web=orkops-test/web:2"]);
    let out = k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_until("5 ready pods of web:2", LONG, || {
        settled(&k, "web", "orkops-test/web:2", 5)
    });
    let (sets, _) = state(&k, "web");
    assert_eq!(sets.len(), 2, "{sets:?}");
    let old = sets
        .iter()
        .find(|r| r["metadata"]["name"] == rs_name.as_str())
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 0);
    let new = sets
        .iter()
        .find(|r| r["metadata"]["name"] != rs_name.as_str())
        .unwrap();
    assert_eq!(revision(new), "2");
    let d = k.json(&["get", "deploy", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{d}");
    assert_eq!(d["status"]["updatedReplicas"], 5);
    let history = k.ok(&["rollout", "history", "deploy/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let one = k.ok(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(one.contains("orkops-test/web:1"), "{one}");

    // undo: the first replica set again, as revision 3
    let out = k.ok(&["rollout", "undo", "deploy/web"]);
    assert!(out.contains("rolled back"), "{out}");
    k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    wait_until("web:1 back in its own replica set", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 5)
            && state(&k, "web")
                .0
                .iter()
                .any(|r| r["metadata"]["name"] == rs_name.as_str() && revision(r) == "3")
    });

    // pause: a template change waits; resume rolls it out
    k.ok(&["rollout", "pause", "deploy/web"]);
    k.ok(&["set", "image", "deploy/web", "web=orkops-test/web:3"]);
    wait_until("the paused condition", LONG, || {
        let d = k.json(&["get", "deploy", "web"]);
        d["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["reason"] == "DeploymentPaused")
    });
    let (sets, _) = state(&k, "web");
    assert!(
        sets.iter().all(|r| image_of(r) != "orkops-test/web:3"),
        "paused, yet rolled out"
    );
    k.ok(&["rollout", "resume", "deploy/web"]);
    k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    wait_until("web:3 everywhere", LONG, || {
        settled(&k, "web", "orkops-test/web:3", 5)
    });

    // restart: same image, a new template (the restartedAt annotation), so a new replica set
    let before: Vec<String> = state(&k, "web")
        .1
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    k.ok(&["rollout", "restart", "deploy/web"]);
    k.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    wait_until("every pod replaced", LONG, || {
        let (_, pods) = state(&k, "web");
        settled(&k, "web", "orkops-test/web:3", 5)
            && pods
                .iter()
                .all(|p| !before.contains(&p["metadata"]["name"].as_str().unwrap().to_string()))
    });
    let d = k.json(&["get", "deploy", "web"]);
    assert!(
        d.pointer("/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
            .is_some(),
        "{d}"
    );

    // deleting the deployment takes its replica sets and their pods with it
    k.ok(&["delete", "deploy", "web"]);
    wait_until("the replica sets and pods to go", LONG, || {
        let (sets, _) = state(&k, "web");
        sets.is_empty() && items(&k.json(&["get", "pods", "-l", "app=web"])).is_empty()
    });
}

async fn call(
    http: &Http,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    http.call(method, path, Some(token), body).await
}

#[test]
fn the_scale_subresource_reads_and_writes_replicas_as_kube_apiserver_does() {
    let m = Master::start();
    let (http, token) = (m.http(), m.admin_token());
    runtime().block_on(async {
        let apps = "/apis/apps/v1/namespaces/default";
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api"}},
                    "spec": {"containers": [{"name": "api", "image": "orkops-test/api:1"}]}}}});
        let (code, body) = call(
            &http,
            &token,
            Method::POST,
            &format!("{apps}/deployments"),
            Some(d),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        let scale_path = format!("{apps}/deployments/api/scale");
        let (code, s) = call(&http, &token, Method::GET, &scale_path, None).await;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s["apiVersion"], "autoscaling/v1");
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=api");

        // PUT: a pinned resourceVersion is a precondition (the controllers write the
        // deployment too, so a read may be stale by the time it is written: read again)
        let deadline = std::time::Instant::now() + LONG;
        let put = loop {
            let (_, s) = call(&http, &token, Method::GET, &scale_path, None).await;
            let mut put = s.clone();
            put["spec"]["replicas"] = json!(4);
            let (code, out) =
                call(&http, &token, Method::PUT, &scale_path, Some(put.clone())).await;
            match code {
                200 => {
                    assert_eq!(out["spec"]["replicas"], 4);
                    break put;
                }
                409 if std::time::Instant::now() < deadline => continue,
                _ => panic!("PUT scale: {code} {out}"),
            }
        };
        let (code, st) = call(&http, &token, Method::PUT, &scale_path, Some(put)).await;
        assert_eq!(code, 409, "a stale resourceVersion: {st}");

        // PATCH (merge): the deployment follows, its generation too
        let resp = http
            .client
            .patch(format!("{}{scale_path}", http.base))
            .bearer_auth(&token)
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"spec":{"replicas":1}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let (_, d) = call(
            &http,
            &token,
            Method::GET,
            &format!("{apps}/deployments/api"),
            None,
        )
        .await;
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["metadata"]["generation"], 3, "{d}");

        // refused as kube-apiserver refuses it
        let (code, st) = call(
            &http,
            &token,
            Method::PUT,
            &scale_path,
            Some(json!({"spec": {"replicas": -1}})),
        )
        .await;
        assert_eq!(code, 422, "{st}");
        assert!(
            st["message"].as_str().unwrap().contains("spec.replicas"),
            "{st}"
        );
        let (code, st) = call(
            &http,
            &token,
            Method::PUT,
            &scale_path,
            Some(json!({"metadata": {"name": "other"}, "spec": {"replicas": 1}})),
        )
        .await;
        assert_eq!(code, 422, "{st}");
        let (code, _) = call(
            &http,
            &token,
            Method::GET,
            &format!("{apps}/deployments/ghost/scale"),
            None,
        )
        .await;
        assert_eq!(code, 404);
        let (code, st) = call(
            &http,
            &token,
            Method::GET,
            "/api/v1/namespaces/default/pods/x/scale",
            None,
        )
        .await;
        assert_eq!(code, 404, "{st}");

        // as apps/v1: the selector is immutable
        let (_, mut d) = call(
            &http,
            &token,
            Method::GET,
            &format!("{apps}/deployments/api"),
            None,
        )
        .await;
        d["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        d["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        d["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let (code, st) = call(
            &http,
            &token,
            Method::PUT,
            &format!("{apps}/deployments/api"),
            Some(d),
        )
        .await;
        assert_eq!(code, 422, "{st}");
        assert_eq!(st["details"]["causes"][0]["field"], "spec.selector", "{st}");

        // the deployment made a replica set: it has a scale too
        let mut rs = String::new();
        let deadline = std::time::Instant::now() + LONG;
        while rs.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no replica set");
            let (_, list) = call(
                &http,
                &token,
                Method::GET,
                &format!("{apps}/replicasets"),
                None,
            )
            .await;
            rs = list["items"][0]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (code, s) = call(
            &http,
            &token,
            Method::GET,
            &format!("{apps}/replicasets/{rs}/scale"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{s}");
        let sel = s["status"]["selector"].as_str().unwrap();
        assert!(
            sel.contains("app=api") && sel.contains("pod-template-hash="),
            "{s}"
        );

        // discovery says where Scale lives
        let (_, list) = call(&http, &token, Method::GET, "/apis/apps/v1", None).await;
        let sub = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap_or_else(|| panic!("no deployments/scale in {list}"));
        assert_eq!(
            (
                sub["group"].as_str(),
                sub["version"].as_str(),
                sub["kind"].as_str()
            ),
            (Some("autoscaling"), Some("v1"), Some("Scale"))
        );
        assert!(list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "replicasets" && r["shortNames"] == json!(["rs"])));
    });
}

#[test]
fn the_python_client_scales_deployments_and_reads_their_replica_sets() {
    let m = Master::start();
    let _node = FakeNode::start(&m, "fake-py");
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    let program = r#"
import time
from kubernetes import client, config
config.load_kube_config()
apps = client.AppsV1Api()
labels = {"app": "py"}
body = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels=labels),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels),
            spec=client.V1PodSpec(containers=[client.V1Container(name="py", image="orkops-test/py:1")]))))
apps.create_namespaced_deployment("default", body)
s = apps.read_namespaced_deployment_scale("py", "default")
assert s.kind == "Scale" and s.spec.replicas == 2, s
s = apps.patch_namespaced_deployment_scale("py", "default", {"spec": {"replicas": 4}})
assert s.spec.replicas == 4, s
s.spec.replicas = 3
s.metadata.resource_version = None  # the controllers write the deployment meanwhile
s = apps.replace_namespaced_deployment_scale("py", "default", s)
assert s.spec.replicas == 3, s
deadline = time.time() + 120
while True:
    sets = apps.list_namespaced_replica_set("default", label_selector="app=py").items
    if len(sets) == 1 and sets[0].status and sets[0].status.ready_replicas == 3:
        break
    assert time.time() < deadline, sets
    time.sleep(0.2)
rs = sets[0]
print("rs", rs.metadata.name, rs.metadata.annotations["deployment.kubernetes.io/revision"], rs.spec.replicas)
print("owner", rs.metadata.owner_references[0].kind)
r = apps.read_namespaced_replica_set_scale(rs.metadata.name, "default")
print("selector", r.status.selector)
while True:
    d = apps.read_namespaced_deployment_status("py", "default")
    if d.status.observed_generation == d.metadata.generation and d.status.available_replicas == 3:
        break
    assert time.time() < deadline, d.status
    time.sleep(0.2)
print("available", d.status.available_replicas, [c.reason for c in d.status.conditions])
apps.delete_namespaced_deployment("py", "default")
"#;
    let Some(out) = python(program, &config) else {
        return;
    };
    let line = |p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_else(|| panic!("no {p} in {out}"))
            .to_string()
    };
    let rs = line("rs ");
    assert!(rs.starts_with("rs py-") && rs.ends_with(" 1 3"), "{out}");
    assert_eq!(line("owner"), "owner Deployment");
    let sel = line("selector");
    assert!(
        sel.contains("app=py") && sel.contains("pod-template-hash="),
        "{out}"
    );
    assert!(
        line("available").contains("NewReplicaSetAvailable"),
        "{out}"
    );
}

/// Kubernetes' pod garbage collector: the pods of a Node that was deleted (its agent gone with
/// it) are removed at once, and their ReplicaSet replaces them on a node that is still there.
#[test]
fn the_pods_of_a_deleted_node_are_collected_and_replaced_elsewhere() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let gone = FakeNode::start(&m, "fake-gone");
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl(kubeconfig(&m, dir.path()));
    let manifest = dir.path().join("web.json");
    std::fs::write(&manifest, web("orkops-test/web:1", 3).to_string()).unwrap();
    k.ok(&["create", "-f", manifest.to_str().unwrap()]);
    wait_until("3 ready pods on the first node", LONG, || {
        settled(&k, "web", "orkops-test/web:1", 3)
    });
    let _stays = FakeNode::start(&m, "fake-stays");
    // the node's agent stops for good, and the node is removed, as a scale-down does
    drop(gone);
    k.ok(&["delete", "node", "fake-gone"]);
    wait_until(
        "3 ready pods, all on the node that stays, none left on the deleted one",
        LONG,
        || {
            let all = items(&k.json(&["get", "pods", "-l", "app=web"]));
            all.len() == 3
                && all.iter().all(|p| {
                    p["spec"]["nodeName"] == "fake-stays"
                        && p["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        },
    );
}
