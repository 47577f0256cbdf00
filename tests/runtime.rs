//! The controller runtime against a real `orkops-master` on a real etcd: losing and regaining
//! the controllers' leadership leaves no etcd watch behind, a replica set whose writes fail
//! backs off alone and recovers, and a burst of changes to one replica set is reconciled one
//! change at a time (it never creates more pods than asked for).

mod common;

use std::time::Duration;

use common::{wait_until, Master, OwnEtcd};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs `f` on a client of the etcd at `endpoint` (a client lives in one runtime).
fn with_etcd<T, Fut>(endpoint: &str, f: impl FnOnce(etcd_client::Client) -> Fut) -> T
where
    Fut: std::future::Future<Output = T>,
{
    let endpoint = endpoint.to_string();
    block_on(async move {
        let c = etcd_client::Client::connect([endpoint], None)
            .await
            .unwrap();
        f(c).await
    })
}

/// etcd's own count of the watchers it serves (`etcd_debugging_mvcc_watcher_total`).
fn etcd_watchers(endpoint: &str) -> i64 {
    let url = format!("{}/metrics", endpoint.trim_end_matches('/'));
    let body = block_on(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    body.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
        .expect("etcd's /metrics has etcd_debugging_mvcc_watcher_total")
}

/// The lease of the controllers' leader key (the key etcd's election made), if one leads.
fn leader_lease(etcd: &str, prefix: &str) -> Option<i64> {
    let (etcd, key) = (etcd.to_string(), format!("{prefix}/leader/controllers"));
    block_on(async move {
        let mut c = etcd_client::Client::connect([etcd], None).await.ok()?;
        let opts = etcd_client::GetOptions::new().with_prefix();
        let r = c.get(key, Some(opts)).await.ok()?;
        r.kvs().first().map(|kv| kv.lease())
    })
}

#[test]
fn losing_leadership_ten_times_leaves_the_etcd_watches_as_they_were() {
    let etcd = OwnEtcd::start();
    let m = Master::start_on_etcd(&etcd.endpoint, &[]);
    let mut lease = None;
    wait_until("the master to lead the controllers", LONG, || {
        lease = leader_lease(&etcd.endpoint, &m.prefix);
        lease.is_some()
    });
    // the term's caches are all watching once the count stops moving
    let settled = |what: &str| {
        let mut last = (-1, 0);
        wait_until(what, LONG, || {
            let n = etcd_watchers(&etcd.endpoint);
            last = if n == last.0 { (n, last.1 + 1) } else { (n, 0) };
            std::thread::sleep(Duration::from_millis(500));
            last.1 >= 4
        });
        last.0
    };
    let before = settled("the watches of the first term to settle");
    assert!(before > 0, "the caches watch etcd");
    for round in 1..=10 {
        let old = lease.unwrap();
        with_etcd(&etcd.endpoint, |mut c| async move {
            c.lease_revoke(old).await.unwrap();
        });
        wait_until(
            &format!("leadership to be regained (round {round})"),
            LONG,
            || {
                lease = leader_lease(&etcd.endpoint, &m.prefix);
                lease.is_some_and(|l| l != old)
            },
        );
    }
    let mut after = 0;
    wait_until(
        "the watches to come back to the first term's count",
        LONG,
        || {
            after = etcd_watchers(&etcd.endpoint);
            after == before
        },
    );
    assert_eq!(after, before, "no watch leaked over ten terms");
    let log = m.log();
    assert_eq!(
        log.matches("lost the controllers' leadership").count(),
        10,
        "ten terms ended: {log}"
    );
}

fn apply(m: &Master, yaml: &str) {
    m.orkops_stdin(&["apply", "-f", "-"], Some(yaml)).success();
}

fn replica_set(ns: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - {{name: web, image: busybox}}
"#
    )
}

fn pod_count(m: &Master, ns: &str) -> usize {
    m.orkops(&["get", "pods", "-n", ns, "-o", "json"]).json()["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                .count()
        })
        .unwrap_or(0)
}

/// The times at which the master logged a failed reconcile of `key`.
fn failures_of(m: &Master, key: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    m.log()
        .lines()
        .filter(|l| l.contains("reconcile failed") && l.contains(&format!("key={key} ")))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|t| t.parse().ok())
        .collect()
}

#[test]
fn a_replica_set_whose_writes_fail_backs_off_alone_and_recovers() {
    let m = Master::start();
    for ns in ["rt-good", "rt-bad"] {
        apply(
            &m,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
        );
        apply(&m, &replica_set(ns, 0));
    }
    // the bad namespace vanishes from under its objects: every pod create there now fails
    let key = format!("{}/namespaces/rt-bad", m.prefix);
    with_etcd(&common::etcd().endpoint, |mut c| async move {
        c.delete(key, None).await.unwrap();
    });
    apply(&m, &replica_set("rt-bad", 2));
    apply(&m, &replica_set("rt-good", 2));
    wait_until("the good replica set's 2 pods", LONG, || {
        pod_count(&m, "rt-good") == 2
    });
    wait_until("six failed tries of the bad replica set", LONG, || {
        failures_of(&m, "rt-bad/web").len() >= 6
    });
    let tries = failures_of(&m, "rt-bad/web");
    let gaps: Vec<i64> = tries
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    // 5 ms doubling: each wait at least as long as the one before (within the log's jitter)
    for w in gaps.windows(2).skip(2) {
        assert!(w[1] + 20 >= w[0], "the waits grow: {gaps:?}");
    }
    let first_to_sixth = (tries[5] - tries[0]).num_milliseconds();
    assert!(
        first_to_sixth < 5_000,
        "the first retries come fast (5, 10, 20, 40, 80 ms): {gaps:?}"
    );
    assert!(pod_count(&m, "rt-bad") == 0, "no pod without a namespace");
    assert!(
        failures_of(&m, "rt-good/web").is_empty(),
        "the good one never failed"
    );
    // the namespace is back: the next try (at most the 30 s cap away) creates the pods
    apply(
        &m,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: rt-bad}\n",
    );
    wait_until("the bad replica set to recover", LONG, || {
        pod_count(&m, "rt-bad") == 2
    });
}

/// The pods the replica-set controller says it created for `web` in `ns` (its events).
fn created_by_events(m: &Master, ns: &str) -> (usize, usize) {
    let events = m.orkops(&["get", "events", "-n", ns, "-o", "json"]).json();
    let mut created = 0;
    let mut deletes = 0;
    for e in events["items"].as_array().into_iter().flatten() {
        if e["involvedObject"]["name"] != "web" {
            continue;
        }
        match e["reason"].as_str() {
            Some("SuccessfulCreate") => {
                created += e["message"]
                    .as_str()
                    .and_then(|s| s.split_whitespace().nth(1))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0)
            }
            Some("SuccessfulDelete") => deletes += 1,
            _ => {}
        }
    }
    (created, deletes)
}

#[test]
fn a_burst_of_changes_to_one_replica_set_creates_each_pod_once() {
    let m = Master::start();
    apply(
        &m,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: rt-burst}\n",
    );
    for n in 1..=12 {
        apply(&m, &replica_set("rt-burst", n));
    }
    wait_until("12 pods", LONG, || pod_count(&m, "rt-burst") == 12);
    let status = |m: &Master| -> Value {
        m.orkops(&["get", "replicaset", "web", "-n", "rt-burst", "-o", "json"])
            .json()["status"]
            .clone()
    };
    wait_until("the status to count 12", LONG, || {
        status(&m)["replicas"] == 12
    });
    wait_until("the creates to be recorded", LONG, || {
        created_by_events(&m, "rt-burst").0 >= 12
    });
    let (created, deletes) = created_by_events(&m, "rt-burst");
    assert_eq!(
        (created, deletes),
        (12, 0),
        "each pod created once, none to undo an overlapping or stale reconcile"
    );
    assert_eq!(pod_count(&m, "rt-burst"), 12);
}
