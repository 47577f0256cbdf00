//! Create and delete cluster times on the local cloud, split by phase, from `create cluster
//! -o json`'s progress lines and summary lines. Whole clusters (bootstrap included) run on a
//! moto and bodies daemon of the benchmark's own: 1 master + 2 nodes and 3 masters + 3 nodes.
//! The infrastructure alone (`--infrastructure-only`, no bodies) runs for 1, 10 and 50 nodes,
//! to show how create and delete grow with the node count. Prints figures; asserts nothing
//! about time. Needs root and Docker, like `tests/e2e.rs`.
//! Run: `cargo bench --bench cluster` (ORKOPS_BENCH_CLUSTER_ROUNDS sets the rounds, default 2).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cloud::{free_network_cidr, poll, LocalCloud};
use serde_json::Value;

/// The first number before `unit` in `text` (`"ready in 0.3 s (86 AWS calls)"`, `" s"` →
/// 0.3), after `after`.
fn number(text: &str, after: &str, unit: &str) -> Option<f64> {
    let rest = &text[text.find(after)? + after.len()..];
    let end = rest.find(unit)?;
    let word = rest[..end].rsplit([' ', '(']).next()?;
    word.parse().ok()
}

/// What one `create cluster` printed, by phase.
#[derive(Default, Debug)]
struct Create {
    infra: f64,
    aws_calls: f64,
    /// Slowest instance: from its bootstrap's start until SSH answered and the user data was done.
    ssh: f64,
    upload: f64,
    start: f64,
    /// Every instance bootstrapped, from the bootstrap's start.
    bootstrap: f64,
    /// Every node Ready, from the bootstrap's start.
    ready: f64,
    /// As the command says (`cluster X created in`).
    total: f64,
    /// Measured here: the command from start to exit.
    wall: f64,
    uploaded_mb: f64,
}

fn parse_create(out: &str, wall: Duration) -> Create {
    let mut c = Create {
        wall: wall.as_secs_f64(),
        ..Default::default()
    };
    for l in out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        let m = l["message"].as_str().unwrap_or_default();
        if l["phase"].is_null() {
            if m.starts_with("infrastructure of cluster") {
                c.infra = number(m, "ready in", " s").unwrap_or(f64::NAN);
                c.aws_calls = number(m, "(", " AWS calls").unwrap_or(f64::NAN);
            } else if m.starts_with("bootstrap of") {
                c.bootstrap = number(m, "instances in", " s").unwrap_or(f64::NAN);
                c.ready = number(m, "Ready after", " s").unwrap_or(f64::NAN);
            } else if m.contains(" created in ") {
                c.total = number(m, "created in", " s").unwrap_or(f64::NAN);
            }
        } else if l["phase"] == "bootstrap" && l["done"] == true {
            let f = |k: &str| number(m, k, " s").unwrap_or(0.0);
            c.ssh = c.ssh.max(f("(ssh"));
            c.upload = c.upload.max(f(", upload"));
            c.start = c.start.max(f(", start"));
        } else if l["phase"] == "bootstrap" && m.starts_with("uploading ") {
            c.uploaded_mb += number(m, "(", " kB)").unwrap_or(0.0) / 1024.0;
        }
    }
    c
}

/// `delete cluster --yes`: (seconds it says, AWS calls, measured wall time).
fn delete(c: &LocalCloud, name: &str) -> (f64, f64, f64) {
    let t = Instant::now();
    let out = c.ok(&["delete", "cluster", name, "--yes"]);
    let wall = t.elapsed().as_secs_f64();
    let line = out
        .lines()
        .find(|l| l.contains(" deleted in "))
        .unwrap_or_default();
    (
        number(line, "deleted in", " s").unwrap_or(f64::NAN),
        number(line, "resources,", " AWS calls").unwrap_or(f64::NAN),
        wall,
    )
}

fn size_mb(path: &std::path::Path) -> f64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
}

fn main() {
    let rounds: usize = std::env::var("ORKOPS_BENCH_CLUSTER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_orkops"))
        .parent()
        .unwrap()
        .to_path_buf();
    println!(
        "binaries uploaded: {} (orkops-master {:.0} MB, orkops-agent {:.0} MB)",
        bin.display(),
        size_mb(&bin.join("orkops-master")),
        size_mb(&bin.join("orkops-agent"))
    );

    println!("\nwhole clusters on the local cloud (moto + bodies), seconds; bootstrap phases are the slowest instance's");
    println!(
        "{:<20} {:>5} {:>6} {:>6} {:>8} {:>7} {:>6} {:>9} {:>6} {:>7} {:>7} {:>5} {:>7} {:>5} {:>7}",
        "cluster",
        "round",
        "infra",
        "calls",
        "ssh+ud",
        "upload",
        "start",
        "bootstrap",
        "ready",
        "created",
        "wall",
        "MB up",
        "delete",
        "calls",
        "bodies"
    );
    let mut c = LocalCloud::with_bodies();
    for (masters, nodes, zones) in [
        (1, 2, "us-east-1a"),
        (3, 3, "us-east-1a,us-east-1b,us-east-1c"),
    ] {
        for round in 1..=rounds {
            let name = format!("bench-{masters}m{nodes}n-{round}");
            let cidr = free_network_cidr();
            let t = Instant::now();
            let out = c.ok(&[
                "create",
                "cluster",
                &name,
                "--zones",
                zones,
                "--masters",
                &masters.to_string(),
                "--nodes",
                &nodes.to_string(),
                "--network-cidr",
                &cidr,
                "--yes",
                "-o",
                "json",
            ]);
            let cr = parse_create(&out, t.elapsed());
            let (del, del_calls, _) = delete(&c, &name);
            // how long the local cloud takes to remove the bodies (not orkops' time)
            let t = Instant::now();
            let b = c.bodies();
            poll("the bodies to go", Duration::from_secs(300), || {
                let left = b.docker_objects();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(left.join(", "))
                }
            });
            println!(
                "{:<20} {:>5} {:>6.1} {:>6.0} {:>8.1} {:>7.1} {:>6.1} {:>9.1} {:>6.1} {:>7.1} {:>7.1} {:>5.0} {:>7.1} {:>5.0} {:>7.1}",
                format!("{masters} master + {nodes} nodes"),
                round,
                cr.infra,
                cr.aws_calls,
                cr.ssh,
                cr.upload,
                cr.start,
                cr.bootstrap,
                cr.ready - cr.bootstrap,
                cr.total,
                cr.wall,
                cr.uploaded_mb,
                del,
                del_calls,
                t.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "(infra: AWS calls until the infrastructure is ready; ssh+ud: waiting for SSH and the user data; \
         ready: from the last instance bootstrapped to every node Ready; created: what the command says; \
         wall: the command, measured here; bodies: from delete's end until the local cloud removed the bodies)"
    );
    c.stop_bodies();
    drop(c);

    println!("\ninfrastructure only (--infrastructure-only) against the emulator, seconds");
    println!(
        "{:<8} {:>5} {:>8} {:>9} {:>7} {:>9} {:>8}",
        "nodes", "round", "create", "AWS calls", "wall", "delete", "AWS calls"
    );
    let c = LocalCloud::start();
    for nodes in [1, 10, 50] {
        for round in 1..=rounds {
            let name = format!("bench-infra-{nodes}-{round}");
            let t = Instant::now();
            let out = c.ok(&[
                "create",
                "cluster",
                &name,
                "--zones",
                "us-east-1a",
                "--nodes",
                &nodes.to_string(),
                "--infrastructure-only",
                "--yes",
                "-o",
                "json",
            ]);
            let cr = parse_create(&out, t.elapsed());
            let (del, del_calls, _) = delete(&c, &name);
            println!(
                "{:<8} {:>5} {:>8.1} {:>9.0} {:>7.1} {:>9.1} {:>8.0}",
                nodes, round, cr.total, cr.aws_calls, cr.wall, del, del_calls
            );
        }
    }
}
