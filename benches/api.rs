//! API latency and master memory, through HTTPS against a real `orkops-master` and etcd.
//! Prints figures; asserts nothing about time. Run: `cargo bench --bench api`
//! (ORKOPS_BENCH_PODS sets the largest store size, default 10000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{pct, report, rss_mb};
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

fn pod(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": (name.len() % 7).to_string()}},
        "spec": {"containers": [{"name": "c", "image": "orkops/busybox:1", "command": ["sleep", "3600"],
            "ports": [{"containerPort": 8080}], "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

fn main() {
    let max: usize = std::env::var("ORKOPS_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let m = common::Master::start();
    let pid = m.child.as_ref().unwrap().id();
    let http = m.http();
    let token = m.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("orkops API benchmark: HTTPS + bearer token + etcd, one client connection pool, 2-core machine");
    println!("master RSS at start: {:.1} MB", rss_mb(pid));
    rt.block_on(async {
        let pods = "/api/v1/namespaces/default/pods";
        let mut created = 0usize;
        for target in [1_000usize, max] {
            // fill the store to `target` pods, measuring each create
            let mut creates = Vec::new();
            let concurrency = 8;
            let wall = Instant::now();
            while created < target {
                let batch: Vec<_> = (created..(created + concurrency).min(target)).collect();
                let futs = batch.iter().map(|i| {
                    let (http, token) = (&http, &token);
                    async move {
                        let t = Instant::now();
                        let (code, body) = http.call(Method::POST, pods, Some(token), Some(pod(&format!("p-{i:05}")))).await;
                        assert_eq!(code, 201, "{body}");
                        t.elapsed()
                    }
                });
                creates.extend(futures::future::join_all(futs).await);
                created = (created + concurrency).min(target);
            }
            report(&format!("create (8 in flight, to {target})"), &mut creates, Some(wall.elapsed()));

            let mut serial = Vec::new();
            for i in 0..200 {
                let t = Instant::now();
                let (code, _) = http.call(Method::POST, pods, Some(&token), Some(pod(&format!("s-{target}-{i}")))).await;
                assert_eq!(code, 201);
                serial.push(t.elapsed());
            }
            created += 200;
            report(&format!("create (serial, {target} stored)"), &mut serial, None);

            let mut gets = Vec::new();
            for i in 0..1000 {
                let t = Instant::now();
                let (code, _) = http.call(Method::GET, &format!("{pods}/p-{:05}", i % target), Some(&token), None).await;
                assert_eq!(code, 200);
                gets.push(t.elapsed());
            }
            report(&format!("get ({target} stored)"), &mut gets, None);

            let mut lists = Vec::new();
            let rounds = if target > 5_000 { 10 } else { 30 };
            for _ in 0..rounds {
                let t = Instant::now();
                let (code, l) = http.call(Method::GET, pods, Some(&token), None).await;
                assert_eq!(code, 200);
                assert!(l["items"].as_array().unwrap().len() >= target);
                lists.push(t.elapsed());
            }
            report(&format!("list all ({target} stored)"), &mut lists, None);
            let mut selected = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                let (code, _) = http.call(Method::GET, &format!("{pods}?labelSelector=shard%3D3"), Some(&token), None).await;
                assert_eq!(code, 200);
                selected.push(t.elapsed());
            }
            report(&format!("list -l shard=3 ({target} stored)"), &mut selected, None);
            println!("master RSS with {} pods stored: {:.1} MB", created, rss_mb(pid));
        }

        // watch fan-out: W watchers, each must see every one of E events
        let (watchers, events) = (100usize, 50usize);
        let (_, list) = http.call(Method::GET, "/api/v1/namespaces/default/configmaps", Some(&token), None).await;
        let rv = list["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let mut streams = Vec::new();
        for _ in 0..watchers {
            let url = format!("{}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}", http.base);
            let resp = http.client.get(&url).bearer_auth(&token).send().await.unwrap();
            streams.push(resp.bytes_stream());
        }
        let t0 = Instant::now();
        let writer = async {
            for i in 0..events {
                http.call(Method::POST, "/api/v1/namespaces/default/configmaps", Some(&token), Some(json!({"metadata": {"name": format!("w{i}")}}))).await;
            }
        };
        let readers = futures::future::join_all(streams.into_iter().map(|mut s| async move {
            let mut lines = 0;
            while lines < events {
                match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
                    Ok(Some(Ok(chunk))) => lines += chunk.iter().filter(|b| **b == b'\n').count(),
                    _ => break,
                }
            }
            (lines, t0.elapsed())
        }));
        let (_, done) = futures::future::join(writer, readers).await;
        let mut lat: Vec<Duration> = done.iter().map(|(_, d)| *d).collect();
        let delivered: usize = done.iter().map(|(n, _)| *n).sum();
        println!(
            "watch fan-out: {watchers} watchers x {events} events: {delivered} delivered in {:.2} s ({:.0} events/s), last watcher done p50={:.0} ms p99={:.0} ms",
            t0.elapsed().as_secs_f64(),
            delivered as f64 / t0.elapsed().as_secs_f64(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99)
        );
        println!("master RSS with {watchers} open watches: {:.1} MB", rss_mb(pid));
    });
}
