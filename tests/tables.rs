//! kubectl and the Python client against a real master (and agent): server-side Tables (the
//! columns of `kubectl get`, `-o wide`, `--show-labels`, `-l`, `-w`), `-o jsonpath` / `-o yaml`,
//! lists paged with `limit` + `continue` (1,200 objects in chunks of 100, a stale token 410), watch
//! bookmarks, objects as clients expect them (`status`, Node `nodeInfo`, the `default`
//! ServiceAccount) and the kubeconfig that `orkops export kubeconfig` merges. Skipped with a
//! message where kubectl or the Python client cannot be had.

mod common;

use common::kube::{have_kubectl, kubectl_command, python};

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{wait_until, Agent, Master, OwnEtcd, TEST_IMAGE};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(120);
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// The kubeconfig `orkops export kubeconfig` writes for this master, in `dir`.
fn kubeconfig(m: &Master, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    m.orkops(&[
        "export",
        "kubeconfig",
        "--kubeconfig",
        path.to_str().unwrap(),
    ])
    .success();
    path
}

#[track_caller]
fn kubectl(config: &std::path::Path, args: &[&str]) -> String {
    let out = kubectl_command(config, args)
        .output()
        .expect("kubectl runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {stderr}\n{stdout}"
    );
    stdout
}

/// The columns of a `kubectl get` header line (split on runs of two or more spaces).
fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The cells of the row of `name`.
fn row(out: &str, name: &str) -> Vec<String> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name}: {out}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn web(replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{tier: front}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {TEST_IMAGE}
        command: [sh, -c, 'mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www']
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

#[test]
fn kubectl_get_prints_the_servers_tables() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    m.orkops_stdin(&["apply", "-f", "-"], Some(&web(1)))
        .success();
    wait_until("the web pod is ready", LONG, || {
        kubectl(&config, &["get", "pods", "-l", "app=web", "--no-headers"]).contains("1/1")
    });

    let out = kubectl(&config, &["get", "pods", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{out}"
    );
    let pod = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let r = row(&out, pod);
    assert_eq!(r[1..4], ["1/1", "Running", "0"], "{out}");
    assert!(
        r[5].parse::<std::net::Ipv4Addr>().is_ok(),
        "a pod IP: {out}"
    );
    assert_eq!(r[6], agent.name, "{out}");

    let out = kubectl(&config, &["get", "deploy"]);
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(row(&out, "web")[1..4], ["1/1", "1", "1"], "{out}");
    let out = kubectl(&config, &["get", "deploy", "-o", "wide"]);
    assert!(header(&out).ends_with(&[
        "CONTAINERS".to_string(),
        "IMAGES".into(),
        "SELECTOR".into()
    ]));
    assert!(row(&out, "web").contains(&"app=web".to_string()), "{out}");

    let out = kubectl(&config, &["get", "nodes"]);
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE", "VERSION"], "{out}");
    assert_eq!(row(&out, &agent.name)[1], "Ready", "{out}");

    let out = kubectl(&config, &["get", "svc"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let r = row(&out, "web");
    assert_eq!(
        (r[1].as_str(), r[4].as_str()),
        ("ClusterIP", "80/TCP"),
        "{out}"
    );

    // labels come from the rows' objects; selectors and the other printers still work
    let out = kubectl(&config, &["get", "deploy", "--show-labels"]);
    assert_eq!(header(&out).last().unwrap(), "LABELS", "{out}");
    assert!(
        row(&out, "web").last().unwrap().contains("tier=front"),
        "{out}"
    );
    let out = kubectl(&config, &["get", "pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = kubectl_command(&config, &["get", "pods", "-l", "app=nothing"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));
    let out = kubectl(
        &config,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas}/{.metadata.generation}",
        ],
    );
    assert_eq!(out, "1/1");
    let out = kubectl(&config, &["get", "deploy", "web", "-o", "yaml"]);
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(v["status"]["readyReplicas"].as_i64(), Some(1), "{out}");
    let out = kubectl(&config, &["get", "serviceaccounts"]);
    assert_eq!(header(&out), ["NAME", "SECRETS", "AGE"], "{out}");
    assert_eq!(row(&out, "default")[1], "0", "{out}");

    // `get -w` prints a row per change: the header and the first rows, then a new pod
    let mut watch = kubectl_command(&config, &["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(LONG).expect("a header line");
    assert!(
        first.starts_with("NAME") && first.contains("RESTARTS"),
        "{first}"
    );
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: late}}\nspec:\n  containers:\n  - {{name: c, image: {TEST_IMAGE}, command: [sleep, '600']}}\n"
        )),
    )
    .success();
    let deadline = std::time::Instant::now() + LONG;
    let mut lines = vec![first];
    while !lines.iter().any(|l| l.starts_with("late ")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => panic!("no row for the new pod: {lines:?}"),
        }
    }
    let late = lines.iter().find(|l| l.starts_with("late ")).unwrap();
    assert!(late.contains("0/1"), "{late}");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn tables_come_for_lists_gets_and_watches_with_the_object_asked_for() {
    let m = Master::start();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = m.http();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "one", "labels": {"a": "b"}}, "data": {"k": "v", "l": "w"}});
        let (code, _) = http
            .call(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&token), Some(cm))
            .await;
        assert_eq!(code, 201);
        let get = |path: String, accept: &'static str| {
            let req = http
                .client
                .get(format!("{}{path}", http.base))
                .bearer_auth(&token)
                .header("Accept", accept);
            async move {
                let r = req.send().await.unwrap();
                let code = r.status().as_u16();
                (code, r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (code, t) = get("/api/v1/namespaces/default/configmaps".into(), TABLE).await;
        assert_eq!(code, 200, "{t}");
        assert_eq!((t["kind"].as_str(), t["apiVersion"].as_str()), (Some("Table"), Some("meta.k8s.io/v1")));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(t["columnDefinitions"][1]["type"], "integer");
        let row = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][0] == "one")
            .unwrap();
        assert_eq!(row["cells"][1], 2);
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"]["labels"]["a"], "b");
        assert!(t["metadata"]["resourceVersion"].as_str().is_some());

        let beta = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
        let (_, t) = get(
            "/api/v1/namespaces/default/configmaps/one?includeObject=Object".into(),
            beta,
        )
        .await;
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1", "{t}");
        assert_eq!(t["rows"][0]["object"]["data"]["k"], "v", "{t}");
        let (_, t) = get(
            "/api/v1/namespaces/default/configmaps/one?includeObject=None".into(),
            TABLE,
        )
        .await;
        assert!(t["rows"][0].get("object").is_none(), "{t}");
        let (code, e) = get(
            "/api/v1/namespaces/default/configmaps?includeObject=Everything".into(),
            TABLE,
        )
        .await;
        assert_eq!(code, 400, "{e}");
        assert!(e["message"].as_str().unwrap().contains("includeObject"), "{e}");
        // without the Table media type: the objects, as before
        let (_, l) = get("/api/v1/namespaces/default/configmaps".into(), "application/json").await;
        assert_eq!(l["kind"], "ConfigMapList");

        // a watch of Tables with bookmarks: the initial event, the end-of-initial-events
        // bookmark, then a change
        let url = format!(
            "{}/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0",
            http.base
        );
        let resp = http
            .client
            .get(url)
            .bearer_auth(&token)
            .header("Accept", TABLE)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        let mut events: Vec<Value> = Vec::new();
        events.push(next_event(&mut body, &mut text).await);
        events.push(next_event(&mut body, &mut text).await);
        assert_eq!(events[0]["type"], "ADDED", "{events:?}");
        assert_eq!(events[0]["object"]["kind"], "Table", "{events:?}");
        assert_eq!(events[0]["object"]["rows"][0]["cells"][0], "one");
        assert_eq!(events[1]["type"], "BOOKMARK", "{events:?}");
        assert_eq!(
            events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
        let two = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "two"}});
        http.call(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&token), Some(two))
            .await;
        let ev = next_event(&mut body, &mut text).await;
        assert_eq!(ev["type"], "ADDED", "{ev}");
        assert_eq!(ev["object"]["rows"][0]["cells"][0], "two", "{ev}");
        assert_eq!(ev["object"]["columnDefinitions"][0]["name"], "Name", "{ev}");
    });
}

/// The next line of a watch, as JSON.
async fn next_event(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
) -> Value {
    loop {
        if let Some(i) = text.find('\n') {
            let line: String = text.drain(..=i).collect();
            return serde_json::from_str::<Value>(&line).unwrap();
        }
        let chunk = tokio::time::timeout(LONG, body.next())
            .await
            .expect("a watch event in time")
            .expect("the watch goes on")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[test]
fn lists_are_paged_with_limit_and_continue() {
    let etcd = OwnEtcd::start();
    let m = Master::start_on_etcd(&etcd.endpoint, &[]);
    let token = m.admin_token();
    const N: usize = 1200;
    const CMS: &str = "/api/v1/namespaces/default/configmaps";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = m.http();
    rt.block_on(async {
        let creates = futures::stream::iter(0..N).map(|n| {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{n:04}")}});
            let (http, token) = (&http, &token);
            async move {
                http.call(Method::POST, CMS, Some(token), Some(body))
                    .await
                    .0
            }
        });
        let codes: Vec<u16> = creates.buffer_unordered(16).collect().await;
        assert!(codes.iter().all(|c| *c == 201), "every create succeeds");

        // pages of 100 that add up to the whole list, each with the count of what is left
        let mut names = Vec::new();
        let mut remaining = Vec::new();
        let mut path = format!("{CMS}?limit=100");
        let mut revisions = std::collections::BTreeSet::new();
        loop {
            let (code, page) = http.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(code, 200, "{page}");
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 100);
            names.extend(
                items
                    .iter()
                    .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
            );
            remaining.push(page["metadata"]["remainingItemCount"].as_i64());
            revisions.insert(
                page["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
            match page["metadata"]["continue"].as_str() {
                Some(c) => path = format!("{CMS}?limit=100&continue={c}"),
                None => break,
            }
        }
        let want: Vec<String> = (0..N).map(|n| format!("cm-{n:04}")).collect();
        assert_eq!(names, want, "every item once, in order");
        assert_eq!(remaining.len(), 12);
        assert_eq!(remaining[0], Some(1100));
        assert_eq!(remaining[10], Some(100));
        assert_eq!(remaining[11], None, "the last page has no count");
        assert_eq!(
            revisions.len(),
            1,
            "every page is read at the first one's revision"
        );

        // a watch starts with every object (read a page at a time), then its bookmark
        let url = format!(
            "{}{CMS}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0",
            http.base
        );
        let resp = http.client.get(url).bearer_auth(&token).send().await.unwrap();
        let mut body = resp.bytes_stream();
        let mut text = String::new();
        let mut added = std::collections::BTreeSet::new();
        loop {
            let ev = next_event(&mut body, &mut text).await;
            match ev["type"].as_str().unwrap() {
                "ADDED" => {
                    let name = ev["object"]["metadata"]["name"].as_str().unwrap().to_string();
                    assert!(added.insert(name), "each object once");
                }
                "BOOKMARK" => break,
                other => panic!("{other}: {ev}"),
            }
        }
        assert_eq!(added.len(), N, "every object before the bookmark");
        drop(body);

        // a selector filters before the limit, and hides the count
        let (_, page) = http
            .call(
                Method::GET,
                &format!("{CMS}?limit=5&fieldSelector=metadata.name%3Dcm-0007"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        assert!(page["metadata"]["continue"].is_null(), "{page}");

        // a garbled token is a 400 that names continue
        let (code, e) = http
            .call(
                Method::GET,
                &format!("{CMS}?limit=10&continue=garbage"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 400, "{e}");
        assert!(e["message"].as_str().unwrap().contains("continue"), "{e}");
        let (code, e) = http
            .call(
                Method::GET,
                &format!("{CMS}?resourceVersionMatch=Exact"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 400, "{e}");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("resourceVersionMatch"),
            "{e}"
        );

        // a token (and an Exact resourceVersion) from before a compaction is 410 Expired
        let (_, page) = http
            .call(Method::GET, &format!("{CMS}?limit=10"), Some(&token), None)
            .await;
        let stale = page["metadata"]["continue"].as_str().unwrap().to_string();
        let old = page["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, exact) = http
            .call(
                Method::GET,
                &format!("{CMS}?limit=10&resourceVersion={old}&resourceVersionMatch=Exact"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 200, "{exact}");
        assert_eq!(exact["metadata"]["resourceVersion"], old.as_str());
        for name in ["after-1", "after-2"] {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
            let (code, created) = http.call(Method::POST, CMS, Some(&token), Some(body)).await;
            assert_eq!(code, 201, "{created}");
        }
        let (_, now) = http
            .call(Method::GET, &format!("{CMS}?limit=1"), Some(&token), None)
            .await;
        let now: i64 = now["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let mut client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
            .await
            .unwrap();
        client.compact(now, None).await.unwrap();
        let (code, e) = http
            .call(
                Method::GET,
                &format!("{CMS}?limit=10&continue={stale}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 410, "{e}");
        assert_eq!(e["reason"], "Expired", "{e}");
        assert!(e["message"].as_str().unwrap().contains("continue"), "{e}");
        let (code, e) = http
            .call(
                Method::GET,
                &format!("{CMS}?resourceVersion={old}&resourceVersionMatch=Exact"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 410, "{e}");
    });

    // kubectl pages with --chunk-size, as Tables and as objects: each item exactly once
    if !have_kubectl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    for args in [
        &["get", "configmaps", "--chunk-size=100", "--no-headers"][..],
        &["get", "configmaps", "--chunk-size=100", "-o", "name"][..],
    ] {
        let out = kubectl(&config, args);
        let names: Vec<&str> = out
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .unwrap()
                    .trim_start_matches("configmap/")
            })
            .filter(|n| n.starts_with("cm-"))
            .collect();
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!((names.len(), unique.len()), (N, N), "{args:?}");
    }
}

#[test]
fn objects_read_back_as_clients_expect_them() {
    let m = Master::start();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = m.http();
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}});
        let (code, v) = http
            .call(Method::POST, "/api/v1/namespaces", Some(&token), Some(ns))
            .await;
        assert_eq!(code, 201, "{v}");
        let (code, sa) = http
            .call(
                Method::GET,
                "/api/v1/namespaces/fresh/serviceaccounts/default",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(
            code, 200,
            "every namespace has its default ServiceAccount: {sa}"
        );
        // deleted, it is made again while its namespace stays
        let sa_path = "/api/v1/namespaces/fresh/serviceaccounts/default";
        let (code, _) = http.call(Method::DELETE, sa_path, Some(&token), None).await;
        assert_eq!(code, 200);
        let deadline = std::time::Instant::now() + LONG;
        loop {
            let (code, again) = http.call(Method::GET, sa_path, Some(&token), None).await;
            if code == 200 {
                assert_ne!(again["metadata"]["uid"], sa["metadata"]["uid"], "a new one");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the default ServiceAccount is made again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for ns in ["default", "orkops-system"] {
            let (code, _) = http
                .call(
                    Method::GET,
                    &format!("/api/v1/namespaces/{ns}/serviceaccounts/default"),
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(code, 200, "{ns}");
        }
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        let (code, v) = http
            .call(
                Method::POST,
                "/apis/apps/v1/namespaces/fresh/deployments",
                Some(&token),
                Some(dep),
            )
            .await;
        assert_eq!(code, 201, "{v}");
        assert!(
            v["status"].is_object(),
            "a new Deployment has a status: {v}"
        );
        assert_eq!(v["metadata"]["generation"], 1);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let (_, v) = http
            .call(
                Method::POST,
                "/api/v1/namespaces/fresh/configmaps",
                Some(&token),
                Some(cm),
            )
            .await;
        assert!(v.get("status").is_none(), "a ConfigMap has no status: {v}");
        // with its namespace it goes for good
        let (code, _) = http
            .call(
                Method::DELETE,
                "/api/v1/namespaces/fresh",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 200);
        let (code, _) = http.call(Method::GET, sa_path, Some(&token), None).await;
        assert_eq!(code, 404);
    });
}

#[test]
fn the_python_client_reads_nodes_and_new_deployments() {
    let m = Master::start();
    let agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    let program = format!(
        r#"
from kubernetes import client, config
config.load_kube_config()
core, apps = client.CoreV1Api(), client.AppsV1Api()
n = core.read_node("{node}")
i = n.status.node_info
assert i.boot_id and i.machine_id and i.kernel_version and i.kubelet_version, i
print("node", n.metadata.name, i.kubelet_version, i.container_runtime_version)
print("nodes", len(core.list_node().items))
d = client.V1Deployment(metadata=client.V1ObjectMeta(name="py"),
    spec=client.V1DeploymentSpec(replicas=0, selector=client.V1LabelSelector(match_labels={{"a": "py"}}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={{"a": "py"}}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="{image}")]))))
made = apps.create_namespaced_deployment("default", d)
got = apps.read_namespaced_deployment("py", "default")
print("deployment", got.metadata.name, got.metadata.generation, got.status is not None)
print("serviceaccounts", [s.metadata.name for s in core.list_namespaced_service_account("default").items])
"#,
        node = agent.name,
        image = TEST_IMAGE
    );
    let Some(out) = python(&program, &config) else {
        return;
    };
    assert!(
        out.contains(&format!("node {} v1.32.0-orkops.", agent.name)),
        "{out}"
    );
    assert!(out.contains("docker://"), "{out}");
    assert!(out.contains("deployment py 1 True"), "{out}");
    assert!(out.contains("'default'"), "{out}");
}

#[test]
fn export_kubeconfig_merges_and_keeps_other_contexts() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://other.example:6443'}\n\
         users:\n- name: other-user\n  user: {token: other-token}\n\
         contexts:\n- name: other\n  context: {cluster: other, user: other-user, namespace: dev}\n\
         current-context: other\n",
    )
    .unwrap();
    // KUBECONFIG's first file is the one written
    let list = std::env::join_paths([&first, &second]).unwrap();
    let out = m
        .orkops_command(&["export", "kubeconfig"])
        .env("KUBECONFIG", &list)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!second.exists());
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    assert_eq!(doc["current-context"].as_str(), Some("test"));
    let names = |field: &str| -> Vec<String> {
        doc[field]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("contexts"), ["other", "test"]);
    assert_eq!(names("clusters"), ["other", "test"]);
    assert_eq!(names("users"), ["other-user", "test-admin"]);
    assert_eq!(
        doc["contexts"][0]["context"]["namespace"].as_str(),
        Some("dev")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&first).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the kubeconfig holds a token");
    // exporting again changes nothing but our entries
    m.orkops(&[
        "export",
        "kubeconfig",
        "test",
        "--kubeconfig",
        first.to_str().unwrap(),
    ])
    .success();
    let again: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    assert_eq!(again, doc);
    if have_kubectl() {
        let out = kubectl(&first, &["get", "namespaces", "-o", "name"]);
        assert!(out.contains("namespace/default"), "{out}");
        let out = kubectl(&first, &["config", "get-contexts", "-o", "name"]);
        assert_eq!(out.lines().collect::<Vec<_>>(), ["other", "test"], "{out}");
    }
    // a cluster this machine has no config of is refused with a hint
    let err = m
        .orkops(&[
            "export",
            "kubeconfig",
            "nope",
            "--kubeconfig",
            first.to_str().unwrap(),
        ])
        .failure();
    assert!(err.contains("export config nope"), "{err}");
}
