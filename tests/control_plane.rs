//! The control plane through its public interfaces: the `orkops` CLI and the REST API of a real
//! `orkops-master` process on a real etcd.

mod common;

use std::time::Duration;

use common::{wait_until, Master};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const EVERY_KIND: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
stringData:
  password: hunter2
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
spec:
  selector:
    app: api
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  namespace: shop
  labels:
    app: debug
spec:
  containers:
  - name: sh
    image: orkops/busybox:1
    command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 5
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      containers:
      - name: api
        image: atseashop/api:v1.3
        ports:
        - containerPort: 8080
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: shop
spec:
  activeDeadlineSeconds: 60
  template:
    spec:
      containers:
      - name: migrate
        image: orkops/busybox:1
        command: ["true"]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
  namespace: shop
spec:
  schedule: "*/5 * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: orkops/busybox:1
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    topology.kubernetes.io/zone: us-east-1a
---
apiVersion: v1
kind: Event
metadata:
  name: api.1
  namespace: shop
involvedObject:
  kind: Deployment
  name: api
  namespace: shop
reason: Testing
message: applied by the round-trip test
type: Normal
"#;

const OBJECTS: &[(&str, &str)] = &[
    ("namespace", "shop"),
    ("configmap", "settings"),
    ("secret", "creds"),
    ("persistentvolumeclaim", "data"),
    ("service", "api"),
    ("pod", "debug"),
    ("deployment", "api"),
    ("job", "migrate"),
    ("cronjob", "report"),
    ("node", "node-1"),
    ("event", "api.1"),
];

#[test]
fn apply_get_update_delete_round_trip_for_every_kind() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    std::fs::write(&file, EVERY_KIND).unwrap();
    let f = file.to_str().unwrap();

    let out = m.orkops(&["apply", "-f", f]).success();
    for (kind, name) in OBJECTS {
        assert!(
            out.contains(&format!("{kind}/{name} created")),
            "{kind}/{name} in:\n{out}"
        );
    }
    // every object reads back with server-side defaults and system metadata
    for (kind, name) in OBJECTS {
        let v = m
            .orkops(&["get", kind, name, "-n", "shop", "-o", "json"])
            .json();
        assert_eq!(v["metadata"]["name"], *name);
        assert!(
            v["metadata"]["uid"].is_string() && v["metadata"]["resourceVersion"].is_string(),
            "{v}"
        );
    }
    let deploy = m
        .orkops(&["get", "deploy/api", "-n", "shop", "-o", "json"])
        .json();
    assert_eq!(deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    let secret = m
        .orkops(&["get", "secret", "creds", "-n", "shop", "-o", "json"])
        .json();
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    let svc = m
        .orkops(&["get", "svc", "api", "-n", "shop", "-o", "json"])
        .json();
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    let pod = m
        .orkops(&["get", "po", "debug", "-n", "shop", "-o", "json"])
        .json();
    assert_eq!(pod["status"]["phase"], "Pending");

    // the same file again changes nothing
    let out = m.orkops(&["apply", "-f", f]).success();
    assert!(
        out.contains("deployment/api unchanged") && out.contains("configmap/settings unchanged"),
        "{out}"
    );

    // an edited file updates what changed, and only that
    let edited = EVERY_KIND
        .replace("replicas: 5", "replicas: 8")
        .replace("mode: fast", "mode: safe");
    std::fs::write(&file, edited).unwrap();
    let out = m.orkops(&["apply", "-f", f]).success();
    assert!(out.contains("deployment/api configured"), "{out}");
    assert!(out.contains("configmap/settings configured"), "{out}");
    assert!(out.contains("service/api unchanged"), "{out}");
    let deploy2 = m
        .orkops(&["get", "deploy", "api", "-n", "shop", "-o", "json"])
        .json();
    assert_eq!(deploy2["spec"]["replicas"], 8);
    assert_eq!(
        deploy2["metadata"]["generation"], 2,
        "a spec change bumps the generation"
    );
    assert_eq!(deploy2["metadata"]["uid"], deploy["metadata"]["uid"]);

    // tables show every kind
    let table = m
        .orkops(&["get", "deploy,svc,cm,secret,pvc,job,cronjob", "-n", "shop"])
        .success();
    for needle in [
        "deployment/api",
        "0/8",
        "service/api",
        "ClusterIP",
        "80/TCP",
        "configmap/settings",
        "secret/creds",
        "persistentvolumeclaim/data",
        "job/migrate",
        "cronjob/report",
        "*/5 * * * *",
    ] {
        assert!(table.contains(needle), "{needle} missing in:\n{table}");
    }
    let all = m.orkops(&["get", "pods", "-A"]).success();
    assert!(all.starts_with("NAMESPACE"), "{all}");
    let described = m
        .orkops(&["describe", "deploy", "api", "-n", "shop"])
        .success();
    assert!(
        described.contains("Name:         api")
            && described.contains("applied by the round-trip test"),
        "{described}"
    );

    // delete by file removes every object
    let out = m.orkops(&["delete", "-f", f]).success();
    assert!(out.contains("deployment \"api\" deleted"), "{out}");
    for (kind, name) in OBJECTS {
        let err = m.orkops(&["get", kind, name, "-n", "shop"]).failure();
        assert!(err.contains("not found"), "{kind}/{name}: {err}");
    }
}

#[test]
fn stdin_directories_and_selectors() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    for (i, tier) in ["web", "db", "web"].iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("cm{i}.yaml")),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\n  labels:\n    tier: {tier}\ndata:\n  k: v\n"),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    m.orkops(&["apply", "-f", dir.path().to_str().unwrap()])
        .success();
    let web = m
        .orkops(&["get", "cm", "-l", "tier=web", "-o", "name"])
        .success();
    assert_eq!(
        web.lines().collect::<Vec<_>>(),
        vec!["configmap/cm0", "configmap/cm2"]
    );
    let not_web = m
        .orkops(&["get", "cm", "-l", "tier!=web", "-o", "name"])
        .success();
    assert_eq!(not_web.trim(), "configmap/cm1");
    let by_field = m
        .orkops(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=cm2",
            "-o",
            "name",
        ])
        .success();
    assert_eq!(by_field.trim(), "configmap/cm2");
    let err = m.orkops(&["get", "cm", "-l", "tier in web"]).failure();
    assert!(err.contains("-l/--selector"), "{err}");

    let out = m
        .orkops_stdin(
            &["apply", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: piped\n"),
        )
        .success();
    assert!(out.contains("configmap/piped created"), "{out}");
    m.orkops(&["delete", "cm", "-l", "tier=web"]).success();
    let left = m.orkops(&["get", "cm", "-o", "name"]).success();
    assert_eq!(
        left.lines().collect::<Vec<_>>(),
        vec!["configmap/cm1", "configmap/piped"]
    );
}

#[test]
fn bad_manifests_are_refused_with_file_document_and_field_and_change_nothing() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\n---\n";
    // an unknown field in document 2: named with its line and path; document 1 not applied
    let f = write("unknown.yaml", &format!("{good}apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        imagee: busybox\n"));
    let err = m.orkops(&["apply", "-f", &f]).failure();
    assert!(err.contains("unknown.yaml:19:9:"), "{err}");
    assert!(
        err.contains("document 2")
            && err.contains("spec.template.spec.containers[0]")
            && err.contains("imagee"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    // malformed YAML
    let f = write(
        "broken.yaml",
        &format!("{good}apiVersion: v1\nkind: Pod\nmetadata: [oops\n"),
    );
    let err = m.orkops(&["apply", "-f", &f]).failure();
    assert!(
        err.contains("broken.yaml:") && err.contains("document 2"),
        "{err}"
    );
    // an unknown kind
    let f = write(
        "kind.yaml",
        &format!("{good}apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: x\n"),
    );
    let err = m.orkops(&["apply", "-f", &f]).failure();
    assert!(
        err.contains("kind.yaml: document 2") && err.contains("HorizontalPodAutoscaler"),
        "{err}"
    );
    // an invalid value
    let f = write("value.yaml", &format!("{good}apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  type: Balanced\n  ports:\n  - port: 80\n"));
    let err = m.orkops(&["apply", "-f", &f]).failure();
    assert!(
        err.contains("spec.type") && err.contains("Balanced"),
        "{err}"
    );
    // a namespace that contradicts -n
    let f = write(
        "ns.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: other\n",
    );
    let err = m.orkops(&["apply", "-f", &f, "-n", "default"]).failure();
    assert!(err.contains("does not match --namespace"), "{err}");

    let left = m.orkops(&["get", "cm,deploy,svc", "-o", "name"]).success();
    assert_eq!(left.trim(), "", "nothing may have been created");

    // the server refuses the same things to any API client, with 422 and the field path
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x:1", "portz": []}]}});
        let (code, st) = http
            .call(
                Method::POST,
                "/api/v1/namespaces/default/pods",
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(code, 422, "{st}");
        assert_eq!(
            st["details"]["causes"][0]["field"], "spec.containers[0].portz",
            "{st}"
        );
        assert!(st["message"].as_str().unwrap().contains("portz"), "{st}");
        let (code, st) = http
            .call(
                Method::POST,
                "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
                Some(&token),
                Some(json!({})),
            )
            .await;
        assert_eq!(code, 404, "{st}");
        let (code, _) = http
            .call(
                Method::GET,
                "/api/v1/namespaces/default/pods/p",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 404);
    });
}

#[test]
fn a_stale_update_gets_409_and_changes_nothing() {
    let m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let path = "/api/v1/namespaces/default/configmaps";
        let (code, created) = http
            .call(
                Method::POST,
                path,
                Some(&token),
                Some(json!({"metadata": {"name": "c"}, "data": {"v": "1"}})),
            )
            .await;
        assert_eq!(code, 201, "{created}");
        let rv1 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let mut a = created.clone();
        a["data"]["v"] = json!("2");
        let (code, updated) = http
            .call(Method::PUT, &format!("{path}/c"), Some(&token), Some(a))
            .await;
        assert_eq!(code, 200, "{updated}");
        assert_ne!(updated["metadata"]["resourceVersion"], json!(rv1));
        // a second writer still holding rv1
        let mut b = created.clone();
        b["data"]["v"] = json!("3");
        let (code, st) = http
            .call(Method::PUT, &format!("{path}/c"), Some(&token), Some(b))
            .await;
        assert_eq!(code, 409, "{st}");
        assert_eq!(st["reason"], "Conflict");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .contains(&format!("your resourceVersion {rv1}")),
            "{st}"
        );
        let (_, now) = http
            .call(Method::GET, &format!("{path}/c"), Some(&token), None)
            .await;
        assert_eq!(now["data"]["v"], "2", "the stale write changed nothing");
        // a merge patch with the stale version is refused too; without one it applies
        let (code, _) = http
            .call(
                Method::PATCH,
                &format!("{path}/c"),
                Some(&token),
                Some(json!({"metadata": {"resourceVersion": rv1}, "data": {"v": "4"}})),
            )
            .await;
        assert_eq!(code, 409);
        let (code, patched) = http
            .call(
                Method::PATCH,
                &format!("{path}/c"),
                Some(&token),
                Some(json!({"data": {"w": "5"}})),
            )
            .await;
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["data"], json!({"v": "2", "w": "5"}));
        // delete with a stale precondition is refused
        let (code, _) = http
            .call(
                Method::DELETE,
                &format!("{path}/c"),
                Some(&token),
                Some(json!({"preconditions": {"resourceVersion": rv1}})),
            )
            .await;
        assert_eq!(code, 409);
    });
}

async fn next_event(lines: &mut (impl futures::Stream<Item = Value> + Unpin)) -> Value {
    tokio::time::timeout(Duration::from_secs(30), lines.next())
        .await
        .expect("a watch event within 30 s")
        .expect("the watch is still open")
}

fn watch_lines(resp: reqwest::Response) -> impl futures::Stream<Item = Value> + Unpin {
    let bytes = resp.bytes_stream();
    Box::pin(futures::stream::unfold(
        (bytes, Vec::new()),
        |(mut bytes, mut buf)| async move {
            loop {
                if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    return Some((
                        serde_json::from_slice::<Value>(&line).unwrap(),
                        (bytes, buf),
                    ));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        },
    ))
}

#[test]
fn a_watch_sees_create_update_delete_in_order_and_resumes() {
    let m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = "/api/v1/namespaces/default/configmaps";
        let (_, list) = http.call(Method::GET, base, Some(&token), None).await;
        let start = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let url = format!(
            "{}{base}?watch=true&resourceVersion={start}&labelSelector=app%3Dweb",
            http.base
        );
        let resp = http
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut events = watch_lines(resp);

        let (_, c) = http
            .call(
                Method::POST,
                base,
                Some(&token),
                Some(json!({"metadata": {"name": "w", "labels": {"app": "web"}}})),
            )
            .await;
        http.call(
            Method::POST,
            base,
            Some(&token),
            Some(json!({"metadata": {"name": "other"}})),
        )
        .await;
        let mut u = c.clone();
        u["data"] = json!({"k": "v"});
        http.call(Method::PUT, &format!("{base}/w"), Some(&token), Some(u))
            .await;
        http.call(Method::DELETE, &format!("{base}/w"), Some(&token), None)
            .await;

        let added = next_event(&mut events).await;
        let modified = next_event(&mut events).await;
        let deleted = next_event(&mut events).await;
        let types: Vec<_> = [&added, &modified, &deleted]
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
        for e in [&added, &modified, &deleted] {
            assert_eq!(
                e["object"]["metadata"]["name"], "w",
                "the selector keeps `other` out: {e}"
            );
        }
        assert_eq!(modified["object"]["data"]["k"], "v");
        let rv = |e: &Value| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap()
        };
        assert!(rv(&added) < rv(&modified) && rv(&modified) < rv(&deleted));

        // resuming from the ADDED event's version replays what came after it, in order
        let url = format!(
            "{}{base}?watch=true&resourceVersion={}&labelSelector=app%3Dweb",
            http.base,
            rv(&added)
        );
        let resp = http
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let mut resumed = watch_lines(resp);
        assert_eq!(next_event(&mut resumed).await["type"], "MODIFIED");
        assert_eq!(next_event(&mut resumed).await["type"], "DELETED");

        // a watch without a version starts with the current objects
        let url = format!("{}{base}?watch=true&timeoutSeconds=5", http.base);
        let resp = http
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let mut fresh = watch_lines(resp);
        let first = next_event(&mut fresh).await;
        assert_eq!(
            (
                first["type"].as_str(),
                first["object"]["metadata"]["name"].as_str()
            ),
            (Some("ADDED"), Some("other"))
        );
        // and timeoutSeconds ends it
        assert!(tokio::time::timeout(Duration::from_secs(30), fresh.next())
            .await
            .unwrap()
            .is_none());
    });
}

#[test]
fn every_request_needs_a_token_and_node_tokens_reach_only_their_node() {
    let m = Master::start();
    let http = m.http();
    let admin = m.admin_token();
    let join = m.join_token("node-1");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pods = "/api/v1/namespaces/default/pods";
        let (code, st) = http.call(Method::GET, pods, None, None).await;
        assert_eq!(code, 401, "{st}");
        assert!(st["message"].as_str().unwrap().contains("bearer token"));
        let (code, _) = http.call(Method::GET, pods, Some("not-the-token"), None).await;
        assert_eq!(code, 401);
        let (code, ok) = http.call(Method::GET, "/healthz", None, None).await;
        assert_eq!((code, ok), (200, Value::String("ok\n".into())), "the health check is the one anonymous endpoint");

        // the join token obtains node tokens and nothing else
        let (code, _) = http.call(Method::GET, pods, Some(&join), None).await;
        assert_eq!(code, 403);
        let token_for = |node: &'static str| {
            let http = &http;
            let join = m.join_token(node);
            async move {
                let (code, t) = http.call(Method::POST, &format!("/orkops/v1/nodes/{node}/token"), Some(&join), None).await;
                assert_eq!(code, 201, "{t}");
                t["token"].as_str().unwrap().to_string()
            }
        };
        let n1 = token_for("node-1").await;
        let n2 = token_for("node-2").await;
        let (code, _) = http.call(Method::POST, "/orkops/v1/nodes/node-2/token", Some(&n1), None).await;
        assert_eq!(code, 403, "a node cannot get another node's token");

        // a node registers itself, with its status, but not another node
        let node = |name: &str| json!({"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let (code, n) = http.call(Method::POST, "/api/v1/nodes", Some(&n1), Some(node("node-1"))).await;
        assert_eq!(code, 201, "{n}");
        assert_eq!(n["status"]["conditions"][0]["status"], "True", "an agent writes its node's status");
        let (code, _) = http.call(Method::POST, "/api/v1/nodes", Some(&n1), Some(node("node-2"))).await;
        assert_eq!(code, 403);

        // a pod bound to node-2: node-1 may read it but not change it
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-2", "containers": [{"name": "c", "image": "x:1"}]}});
        let (code, _) = http.call(Method::POST, pods, Some(&n1), Some(pod.clone())).await;
        assert_eq!(code, 403, "nodes do not create pods");
        let (code, _) = http.call(Method::POST, pods, Some(&admin), Some(pod)).await;
        assert_eq!(code, 201);
        let (code, _) = http.call(Method::GET, &format!("{pods}/p"), Some(&n1), None).await;
        assert_eq!(code, 200);
        let status = json!({"metadata": {"name": "p"}, "status": {"phase": "Running", "podIP": "10.1.0.5"}});
        let (code, st) = http.call(Method::PUT, &format!("{pods}/p/status"), Some(&n1), Some(status.clone())).await;
        assert_eq!(code, 403, "{st}");
        assert!(st["message"].as_str().unwrap().contains("node-1"), "{st}");
        let (code, _) = http.call(Method::DELETE, &format!("{pods}/p"), Some(&n1), None).await;
        assert_eq!(code, 403);
        // the admin may write a pod's status, as a cluster-admin may on Kubernetes (a controller
        // of readiness gates does)
        let gate = json!({"metadata": {"name": "p"}, "status": {"phase": "Pending",
            "conditions": [{"type": "example.com/gate", "status": "True"}]}});
        let (code, st) = http.call(Method::PUT, &format!("{pods}/p/status"), Some(&admin), Some(gate)).await;
        assert_eq!(code, 200, "{st}");
        let (code, done) = http.call(Method::PUT, &format!("{pods}/p/status"), Some(&n2), Some(status)).await;
        assert_eq!(code, 200, "{done}");
        assert_eq!(done["status"]["podIP"], "10.1.0.5");

        // secrets: a node reads only those its pods use
        let (code, _) = http.call(Method::POST, "/api/v1/namespaces/default/secrets", Some(&admin), Some(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}))).await;
        assert_eq!(code, 201);
        let (code, _) = http.call(Method::GET, "/api/v1/namespaces/default/secrets/s", Some(&n2), None).await;
        assert_eq!(code, 403);
        let (code, _) = http.call(Method::GET, "/api/v1/namespaces/default/secrets", Some(&n2), None).await;
        assert_eq!(code, 403);

        // deleting a bound pod asks its agent to stop it; the agent then removes it
        let (code, marked) = http.call(Method::DELETE, &format!("{pods}/p"), Some(&admin), None).await;
        assert_eq!(code, 200);
        assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
        let (code, _) = http.call(Method::DELETE, &format!("{pods}/p"), Some(&n2), None).await;
        assert_eq!(code, 200);
        let (code, _) = http.call(Method::GET, &format!("{pods}/p"), Some(&admin), None).await;
        assert_eq!(code, 404);
    });
    assert!(
        !m.log().contains(&admin) && !m.log().contains(&join),
        "tokens never appear in the log"
    );
}

#[test]
fn the_cli_reports_missing_config_wrong_token_and_unreachable_master() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orkops"))
        .args(["get", "pods"])
        .env_remove("ORKOPS_CONFIG")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no client configuration") && err.contains("hint:"),
        "{err}"
    );

    let text = std::fs::read_to_string(&m.config).unwrap();
    let wrong = dir.path().join("wrong.conf");
    std::fs::write(&wrong, text.replace(&m.admin_token(), "0000")).unwrap();
    let err = m
        .orkops(&["--config", wrong.to_str().unwrap(), "get", "pods"])
        .failure();
    assert!(err.contains("token is not valid"), "{err}");

    let port = m.endpoint.rsplit(':').next().unwrap().to_string();
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = dir.path().join("down.conf");
    std::fs::write(
        &down,
        text.replace(&format!(":{port}"), &format!(":{unused}")),
    )
    .unwrap();
    let err = m
        .orkops(&["--config", down.to_str().unwrap(), "get", "pods"])
        .failure();
    assert!(
        err.contains("cannot reach the API server") && err.contains(&unused.to_string()),
        "{err}"
    );
}

#[test]
fn namespaces_scope_names_and_their_deletion_removes_their_objects() {
    let m = Master::start();
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n"),
    )
    .success();
    for ns in ["default", "team-a"] {
        m.orkops_stdin(
            &["apply", "-n", ns, "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: same\n"),
        )
        .success();
    }
    let all = m.orkops(&["get", "cm", "-A"]).success();
    assert!(all.contains("default ") && all.contains("team-a "), "{all}");
    let err = m
        .orkops_stdin(
            &["apply", "-n", "nowhere", "-f", "-"],
            Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"),
        )
        .failure();
    assert!(err.contains("Namespace \"nowhere\" not found"), "{err}");
    let err = m.orkops(&["delete", "ns", "default"]).failure();
    assert!(err.contains("system namespace"), "{err}");
    m.orkops(&["delete", "ns", "team-a"]).success();
    m.orkops(&["get", "cm", "same", "-n", "team-a"]).failure();
    m.orkops(&["get", "cm", "same", "-n", "default"]).success();
}

#[test]
fn the_master_stops_cleanly_on_sigterm_ending_open_watches() {
    let mut m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resp = rt.block_on(async {
        let url = format!("{}/api/v1/pods?watch=true&resourceVersion=1", http.base);
        http.client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(resp.status(), 200);
    let status = m.terminate();
    assert!(status.success(), "exit status {status}; log:\n{}", m.log());
    rt.block_on(async {
        let mut events = watch_lines(resp);
        let end = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the watch ends");
        assert!(end.is_none());
    });
    wait_until("the port to close", Duration::from_secs(30), || {
        std::net::TcpStream::connect(m.endpoint.trim_start_matches("https://")).is_err()
    });
}

#[test]
fn get_watch_prints_the_current_rows_then_each_change() {
    use std::io::{BufRead, BufReader};
    let m = Master::start();
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\n"),
    )
    .success();
    let mut child = m
        .orkops_command(&["get", "configmaps", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a line from `get -w` within 30 s")
    };
    assert!(next().starts_with("NAME"));
    assert!(next().starts_with("before "));
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n"),
    )
    .success();
    assert!(next().starts_with("after "));
    m.orkops(&["delete", "cm", "after"]).success();
    assert!(next().starts_with("after "), "the deletion is printed too");
    let _ = child.kill();
    let _ = child.wait();
}
