//! The master at scale: a real `orkops-master` and etcd, `orkops-hollow` nodes (pods run in
//! memory, heartbeats and status as real agents send them), and Deployments creating the pods.
//! Prints figures; asserts nothing about time. Run:
//! `cargo bench --bench scale --profile scale` (optimised binaries; `--profile dev` for the debug
//! ones) with 1,000 nodes, 30,000 pods in 30 Deployments of 1,000. Sizes from the environment: ORKOPS_SCALE_NODES, ORKOPS_SCALE_PODS,
//! ORKOPS_SCALE_PER_DEPLOYMENT (replicas of each Deployment), ORKOPS_SCALE_IDLE_SECONDS (each
//! idle and steady-state window, default 60), ORKOPS_SCALE_DELETE=0 (skip timing the deletion
//! of every pod at the end), ORKOPS_SCALE_WATCH=per-node (a watch per hollow node). A quick run:
//! `ORKOPS_SCALE_NODES=50 ORKOPS_SCALE_PODS=1000 ORKOPS_SCALE_PER_DEPLOYMENT=500 ORKOPS_SCALE_IDLE_SECONDS=10`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{report, rss_mb};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The master's user + system CPU seconds so far (from /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name and the state
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The peak RSS of the process (VmHWM), in MB.
fn peak_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The master's store list counters from /metrics, by resource.
async fn lists(http: &common::Http, token: &str) -> HashMap<String, u64> {
    let resp = http
        .client
        .get(format!("{}/metrics", http.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("apiserver_storage_list_total{resource=\""))
        .filter_map(|l| {
            let (res, n) = l.split_once("\"} ")?;
            Some((res.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn list_delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> String {
    let mut parts: Vec<String> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .map(|(k, d)| format!("{k}={d}"))
        .collect();
    parts.sort();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// CPU seconds the master used in `window`, scaled to a minute, and the lists it served then.
async fn quiet_window(
    what: &str,
    pid: u32,
    window: Duration,
    http: &common::Http,
    token: &str,
) -> f64 {
    let (cpu0, l0) = (cpu_seconds(pid), lists(http, token).await);
    tokio::time::sleep(window).await;
    let (cpu1, l1) = (cpu_seconds(pid), lists(http, token).await);
    let per_min = (cpu1 - cpu0) * 60.0 / window.as_secs_f64();
    println!(
        "{what}: master CPU {per_min:.2} s/min ({:.1} % of a core); store lists in {:.0} s: {}",
        per_min / 60.0 * 100.0,
        window.as_secs_f64(),
        list_delta(&l0, &l1)
    );
    per_min
}

fn deployment(name: &str, replicas: usize) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "bench": "scale"}},
                "spec": {"containers": [{"name": "c", "image": "orkops/busybox:1.35",
                    "command": ["sleep", "3600"]}]}}}})
}

/// Starts `orkops-hollow` with `nodes` nodes and waits until they joined.
fn start_hollow(m: &common::Master, nodes: usize) -> (Child, Duration) {
    let log = m.dir.path().join("hollow.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops-hollow"));
    cmd.args(["--config", m.config.to_str().unwrap()])
        .args(["--nodes", &nodes.to_string(), "--prefix", "hollow"])
        .args([
            "--watch",
            &std::env::var("ORKOPS_SCALE_WATCH").unwrap_or_else(|_| "shared".into()),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    common::die_with_parent(&mut cmd);
    let t = Instant::now();
    let mut child = cmd.spawn().unwrap();
    common::wait_until(
        "the hollow nodes to join",
        Duration::from_secs(1800),
        || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "orkops-hollow exited with {st}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("hollow nodes ready")
        },
    );
    (child, t.elapsed())
}

/// Follows the pods of the benchmark until `want` of them are Running: when each was bound
/// and when each was Running, measured from `t0`.
async fn follow_pods(
    http: &common::Http,
    token: &str,
    rv: &str,
    want: usize,
    t0: Instant,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut bound: HashMap<String, Duration> = HashMap::new();
    let mut running: HashMap<String, Duration> = HashMap::new();
    let mut rv = rv.to_string();
    let mut shown = Instant::now();
    while running.len() < want {
        let url = format!(
            "{}/api/v1/pods?watch=true&labelSelector=bench%3Dscale&resourceVersion={rv}",
            http.base
        );
        let resp = http
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        while running.len() < want {
            let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_secs(600), body.next()).await
            else {
                break;
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let p = &ev["object"];
                if let Some(v) = p["metadata"]["resourceVersion"].as_str() {
                    rv = v.to_string();
                }
                let uid = p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if p["spec"]["nodeName"].is_string() {
                    bound.entry(uid.clone()).or_insert_with(|| t0.elapsed());
                }
                if p["status"]["phase"] == "Running" {
                    running.entry(uid).or_insert_with(|| t0.elapsed());
                }
                if shown.elapsed() > Duration::from_secs(30) {
                    shown = Instant::now();
                    println!(
                        "  after {:.0} s: {} pods bound, {} Running",
                        t0.elapsed().as_secs_f64(),
                        bound.len(),
                        running.len()
                    );
                }
            }
        }
    }
    (
        bound.into_values().collect(),
        running.into_values().collect(),
    )
}

/// p50/p99 of `n` runs of `call`.
async fn timed<F, Fut>(what: &str, n: usize, mut call: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        call(i).await;
        samples.push(t.elapsed());
    }
    report(what, &mut samples, None);
}

fn main() {
    let nodes = env("ORKOPS_SCALE_NODES", 1000);
    let pods = env("ORKOPS_SCALE_PODS", 30_000);
    let per = env("ORKOPS_SCALE_PER_DEPLOYMENT", 1000).max(1);
    let window = Duration::from_secs(env("ORKOPS_SCALE_IDLE_SECONDS", 60) as u64);
    let deployments = pods.div_ceil(per);
    let m = common::Master::start_with(&[
        "--cluster-cidr",
        "10.128.0.0/10",
        "--node-cidr-mask-size",
        "24",
    ]);
    let pid = m.child.as_ref().unwrap().id();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!(
        "orkops scale benchmark: {nodes} hollow nodes, {pods} pods in {deployments} Deployments, real master + etcd, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    rt.block_on(quiet_window("idle, empty", pid, window, &http, &token));
    println!("master RSS idle, empty: {:.1} MB", rss_mb(pid));

    let (mut hollow, joined) = start_hollow(&m, nodes);
    println!(
        "{nodes} hollow nodes joined in {:.1} s; master RSS {:.1} MB",
        joined.as_secs_f64(),
        rss_mb(pid)
    );
    rt.block_on(async {
        quiet_window("idle, nodes only", pid, window, &http, &token).await;
        let (_, l) = http.call(Method::GET, "/api/v1/pods?limit=1", Some(&token), None).await;
        let rv = l["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
        // the first 10,000 pods in a namespace of their own (the list of 10,000 pods)
        let third = 10_000usize.div_ceil(per).min(deployments);
        for ns in ["scale-a", "scale-b"] {
            let (code, st) = http
                .call(Method::POST, "/api/v1/namespaces", Some(&token), Some(json!({"metadata": {"name": ns}})))
                .await;
            assert_eq!(code, 201, "{st}");
        }
        let t0 = Instant::now();
        let creates = (0..deployments).map(|i| {
            let (http, token) = (&http, &token);
            let replicas = per.min(pods - i * per);
            let ns = if i < third { "scale-a" } else { "scale-b" };
            async move {
                let path = format!("/apis/apps/v1/namespaces/{ns}/deployments");
                let (code, st) = http
                    .call(Method::POST, &path, Some(token), Some(deployment(&format!("d{i:03}"), replicas)))
                    .await;
                assert_eq!(code, 201, "{st}");
            }
        });
        let follow = follow_pods(&http, &token, &rv, pods, t0);
        let (_, (mut bound, mut running)) =
            futures::future::join(futures::future::join_all(creates), follow).await;
        bound.sort();
        running.sort();
        let last_bound = bound.last().copied().unwrap_or_default();
        let first_bound = bound.first().copied().unwrap_or_default();
        println!(
            "{pods} pods: all bound after {:.1} s, all Running after {:.1} s; scheduler {:.0} bindings/s (first to last binding), {:.0}/s overall",
            last_bound.as_secs_f64(),
            running.last().copied().unwrap_or_default().as_secs_f64(),
            bound.len() as f64 / (last_bound - first_bound).as_secs_f64().max(1e-3),
            bound.len() as f64 / last_bound.as_secs_f64().max(1e-3),
        );
        println!(
            "master RSS with {pods} pods: {:.1} MB (peak so far {:.1} MB)",
            rss_mb(pid),
            peak_mb(pid)
        );
        quiet_window("steady state, all pods Running", pid, window, &http, &token).await;

        let (_, some) = http.call(Method::GET, "/api/v1/pods?limit=500", Some(&token), None).await;
        let names: Vec<String> = some["items"].as_array().into_iter().flatten()
            .map(|p| format!("{}/pods/{}", p["metadata"]["namespace"].as_str().unwrap_or(""), p["metadata"]["name"].as_str().unwrap_or(""))).collect();
        timed(&format!("get pod ({pods} stored)"), 500, |i| {
            let path = format!("/api/v1/namespaces/{}", names[i % names.len()]);
            let (http, token) = (&http, &token);
            async move {
                let (code, _) = http.call(Method::GET, &path, Some(token), None).await;
                assert_eq!(code, 200);
            }
        })
        .await;
        let in_a = (third * per).min(pods);
        timed(&format!("list {in_a} pods (one namespace)"), 20, |_| {
            let (http, token) = (&http, &token);
            async move {
                let (code, l) = http.call(Method::GET, "/api/v1/namespaces/scale-a/pods", Some(token), None).await;
                assert_eq!(code, 200);
                assert_eq!(l["items"].as_array().map_or(0, Vec::len), in_a);
            }
        })
        .await;
        timed(&format!("list all {pods} pods"), 5, |_| {
            let (http, token) = (&http, &token);
            async move {
                let (code, _) = http.call(Method::GET, "/api/v1/pods", Some(token), None).await;
                assert_eq!(code, 200);
            }
        })
        .await;
        timed("list 500 pods (limit=500)", 50, |_| {
            let (http, token) = (&http, &token);
            async move {
                let (code, _) = http.call(Method::GET, "/api/v1/pods?limit=500", Some(token), None).await;
                assert_eq!(code, 200);
            }
        })
        .await;
        // watch: the time from a write to its event on an open watch
        let (_, l) = http.call(Method::GET, "/api/v1/namespaces/default/configmaps", Some(&token), None).await;
        let rv = l["metadata"]["resourceVersion"].as_str().unwrap_or("0").to_string();
        let url = format!("{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}", http.base);
        let resp = http.client.get(&url).bearer_auth(&token).send().await.unwrap();
        let mut stream = resp.bytes_stream();
        let mut samples = Vec::new();
        for i in 0..100 {
            let t = Instant::now();
            let body = json!({"metadata": {"name": format!("w{i}")}});
            let (code, _) = http.call(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&token), Some(body)).await;
            assert_eq!(code, 201);
            let mut seen = false;
            while !seen {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(chunk))) => seen = chunk.contains(&b'\n'),
                    _ => panic!("the watch ended"),
                }
            }
            samples.push(t.elapsed());
        }
        report("write + its watch event", &mut samples, None);
        println!(
            "master RSS after the API figures: {:.1} MB, peak {:.1} MB",
            rss_mb(pid),
            peak_mb(pid)
        );
        if env("ORKOPS_SCALE_DELETE", 1) == 0 {
            return;
        }
        // the Deployments' pods go through the hollow nodes
        let t = Instant::now();
        for i in 0..deployments {
            let ns = if i < third { "scale-a" } else { "scale-b" };
            let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/d{i:03}");
            let (code, st) = http.call(Method::DELETE, &path, Some(&token), None).await;
            assert_eq!(code, 200, "{st}");
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (_, l) = http.call(Method::GET, "/api/v1/pods?labelSelector=bench%3Dscale&limit=1", Some(&token), None).await;
            if l["items"].as_array().is_none_or(|a| a.is_empty()) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(1800), "the benchmark's pods are still there after 30 min");
        }
        println!("{pods} pods deleted and finalized in {:.1} s", t.elapsed().as_secs_f64());
    });
    unsafe {
        libc::kill(hollow.id() as i32, libc::SIGTERM);
    }
    let _ = hollow.wait();
    println!(
        "master RSS at the end: {:.1} MB, peak {:.1} MB",
        rss_mb(pid),
        peak_mb(pid)
    );
}
