//! Watches against a real master and etcd: out-of-range resourceVersions are refused and the
//! server stays up; a watch (raw and `orkops get pods -w`) outlives an etcd restart; a
//! compacted revision gets the 410 to relist on; and a node that stops heartbeating has its
//! pods marked not ready and withdrawn from endpoints long before they are evicted.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, Agent, Master, OwnEtcd, TEST_IMAGE};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

const LONG: Duration = Duration::from_secs(90);
const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "none:1"}]}})
}

async fn list_revision(m: &Master, token: &str) -> i64 {
    let (code, list) = m.http().call(Method::GET, PODS, Some(token), None).await;
    assert_eq!(code, 200, "{list}");
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn out_of_range_resource_versions_are_refused_and_the_server_stays_up() {
    let m = Master::start();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = m.http();
        let current = list_revision(&m, &token).await;
        let ahead = (current + 1000).to_string();
        for rv in [
            "9223372036854775807",
            "-1",
            "abc",
            "9223372036854775808",
            &ahead,
        ] {
            for watch in ["&watch=true", ""] {
                let path = format!("{PODS}?resourceVersion={rv}{watch}");
                let (code, st) = http.call(Method::GET, &path, Some(&token), None).await;
                assert_eq!(code, 400, "{path}: {st}");
                assert_eq!(st["kind"], "Status", "{path}: {st}");
                let msg = st["message"].as_str().unwrap();
                assert!(msg.contains("resourceVersion"), "{path}: {msg}");
                if rv == ahead || rv == "9223372036854775807" {
                    // names where the store is (it may have moved on a little since)
                    assert!(msg.contains("current revision"), "{path}: {msg}");
                }
            }
        }
        let (code, st) = http
            .call(
                Method::GET,
                &format!("{PODS}?watch=true&timeoutSeconds=-5"),
                Some(&token),
                None,
            )
            .await;
        assert!(
            code == 400 && st["message"].as_str().unwrap().contains("timeoutSeconds"),
            "{st}"
        );
        let (code, _) = http
            .call(Method::POST, PODS, Some(&token), Some(pod("still-up")))
            .await;
        assert_eq!(code, 201, "the server still answers");
    });
}

/// Lines of a raw watch, collected by a task as they come.
fn raw_watch(
    rt: &tokio::runtime::Runtime,
    m: &Master,
    token: &str,
    rv: i64,
) -> Arc<Mutex<Vec<Value>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (http, token, out) = (m.http(), token.to_string(), seen.clone());
    rt.spawn(async move {
        let url = format!("{}{PODS}?watch=true&resourceVersion={rv}", http.base);
        let resp = http
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                out.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&line).unwrap());
            }
        }
        out.lock().unwrap().push(json!({"type": "END"}));
    });
    seen
}

fn names_added(seen: &Mutex<Vec<Value>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| {
            e["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn watches_and_get_w_outlive_an_etcd_restart() {
    let mut etcd = OwnEtcd::start();
    let m = Master::start_on_etcd(&etcd.endpoint, &[]);
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = m.http();
    let create = |name: &str| {
        let (code, v) = rt.block_on(http.call(Method::POST, PODS, Some(&token), Some(pod(name))));
        assert_eq!(code, 201, "creating {name}: {v}");
    };
    create("before");
    let rv = rt.block_on(list_revision(&m, &token));
    let raw = raw_watch(&rt, &m, &token, rv);

    let mut cli = m
        .orkops_command(&["get", "pods", "-w"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(String::new()));
    let out = printed.clone();
    let stdout = cli.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            out.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    wait_until("get -w to print the first pod", LONG, || {
        printed.lock().unwrap().contains("before")
    });
    create("during");
    wait_until("the raw watch to see a pod", LONG, || {
        names_added(&raw).contains(&"during".to_string())
    });

    etcd.kill();
    etcd.start_again();
    // a create while the master's connection to etcd comes back is retried, not a 503
    create("after");
    wait_until(
        "the raw watch to see the pod created after the restart",
        LONG,
        || names_added(&raw).contains(&"after".to_string()),
    );
    wait_until(
        "get -w to print the pod created after the restart",
        LONG,
        || printed.lock().unwrap().contains("after"),
    );
    let events = raw.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "ERROR" && e["type"] != "END"),
        "the watch saw no error and did not end: {events:?}"
    );
    assert_eq!(
        names_added(&raw),
        vec!["during", "after"],
        "no event missed or repeated"
    );
    assert!(cli.try_wait().unwrap().is_none(), "get -w still runs");
    let _ = cli.kill();
    let _ = cli.wait();
}

#[test]
fn a_watch_from_a_compacted_revision_gets_410() {
    let etcd = OwnEtcd::start();
    let m = Master::start_on_etcd(&etcd.endpoint, &[]);
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = m.http();
        let (_, first) = http
            .call(Method::POST, PODS, Some(&token), Some(pod("a")))
            .await;
        let old: i64 = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // two writes after it: the compaction takes the revision right after `old` too
        for name in ["b", "c"] {
            let (code, v) = http
                .call(Method::POST, PODS, Some(&token), Some(pod(name)))
                .await;
            assert_eq!(code, 201, "{v}");
        }
        let now = list_revision(&m, &token).await;
        let mut client = etcd_client::Client::connect([etcd.endpoint.as_str()], None)
            .await
            .unwrap();
        client.compact(now, None).await.unwrap();

        let url = format!("{}{PODS}?watch=true&resourceVersion={old}", http.base);
        let resp = http
            .client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "the watch opens, as in kube-apiserver"
        );
        let mut chunks = resp.bytes_stream();
        let chunk = tokio::time::timeout(Duration::from_secs(30), chunks.next())
            .await
            .expect("an event within 30 s");
        let body = String::from_utf8_lossy(&chunk.unwrap().unwrap()).to_string();
        let first: Value = serde_json::from_str(body.lines().next().unwrap()).unwrap();
        assert_eq!(first["type"], "ERROR", "{body}");
        assert_eq!(first["object"]["code"], 410, "{body}");
        assert_eq!(first["object"]["reason"], "Expired", "{body}");
        let msg = first["object"]["message"].as_str().unwrap();
        assert!(msg.contains("too old resource version"), "{msg}");
    });
}

fn ready_condition(p: &Value) -> Value {
    p["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or(Value::Null)
}

fn addresses(m: &Master) -> usize {
    let r = m.orkops(&["get", "endpoints", "web", "-o", "json"]);
    if !r.ok() {
        return 0;
    }
    r.json()["subsets"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| s["addresses"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_silent_nodes_pods_leave_the_endpoints_within_the_grace_period() {
    const GRACE: u64 = 4;
    const HEARTBEAT: u64 = 2;
    let m = Master::start_with(&[
        "--node-monitor-grace-period",
        &GRACE.to_string(),
        "--pod-eviction-timeout",
        "600",
    ]);
    let mut a = Agent::start(&m);
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  containers: [{{name: c, image: {TEST_IMAGE}, command: [sleep, '1000']}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 80}}]
"#
        )),
    )
    .success();
    let get_pod = || m.orkops(&["get", "pod", "web", "-o", "json"]).json();
    wait_until("the pod to be ready in the endpoints", LONG, || {
        ready_condition(&get_pod())["status"] == "True" && addresses(&m) == 1
    });

    a.stop();
    let stopped = Instant::now();
    // the last heartbeat was at most HEARTBEAT s before the stop
    let within = Duration::from_secs(GRACE + HEARTBEAT + 5);
    wait_until(
        "the pod to be not ready and out of the endpoints",
        within,
        || ready_condition(&get_pod())["status"] == "False" && addresses(&m) == 0,
    );
    println!(
        "withdrawn {:.1} s after the agent stopped",
        stopped.elapsed().as_secs_f64()
    );
    let p = get_pod();
    assert_eq!(ready_condition(&p)["reason"], "NodeNotReady", "{p}");
    assert!(
        p["metadata"]["deletionTimestamp"].is_null(),
        "not evicted yet: {p}"
    );

    a.restart(&m);
    wait_until("the agent to report the pod ready again", LONG, || {
        ready_condition(&get_pod())["status"] == "True" && addresses(&m) == 1
    });
}
