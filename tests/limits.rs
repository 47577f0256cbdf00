//! Limits a careless or hostile request meets, probed as such a caller would, against a real
//! `orkops-master` on a real etcd: counts past Kubernetes' int32, a large legal scale worked
//! through in bounded passes, duplicate JSON keys, a changed uid, names, and huge bodies.

mod common;

use std::time::{Duration, Instant};

use common::{rss_mb, Master};
use reqwest::Method;
use serde_json::{json, Value};

fn deployment(name: &str, replicas: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "orkops/busybox:1.35"}]}}}})
}

fn field_named(body: &Value, field: &str) -> bool {
    body.to_string().contains(field)
}

#[tokio::test]
async fn counts_past_int32_are_refused_with_the_field_named_and_nothing_is_stored() {
    let m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let deploys = "/apis/apps/v1/namespaces/default/deployments";
    for (name, replicas) in [
        ("big", json!(2147483648i64)),
        ("half", json!(1.5)),
        (
            "huge",
            serde_json::from_str::<Value>("99999999999999999999").unwrap(),
        ),
    ] {
        let (code, body) = http
            .call(
                Method::POST,
                deploys,
                Some(&token),
                Some(deployment(name, replicas)),
            )
            .await;
        assert!(code == 400 || code == 422, "{code} {body}");
        assert!(field_named(&body, "spec.replicas"), "{body}");
        let (code, _) = http
            .call(
                Method::GET,
                &format!("{deploys}/{name}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 404, "a refused deployment is not stored");
    }
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"parallelism": 2147483648i64, "completions": 4294967296i64,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "orkops/busybox:1.35"}]}}}});
    let (code, body) = http
        .call(
            Method::POST,
            "/apis/batch/v1/namespaces/default/jobs",
            Some(&token),
            Some(job),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(field_named(&body, "spec.parallelism"), "{body}");
    assert!(field_named(&body, "spec.completions"), "{body}");

    // the CLI refuses it before sending anything, naming file and field
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.yaml");
    std::fs::write(
        &file,
        serde_yaml_ng::to_string(&deployment("big", json!(2147483648i64))).unwrap(),
    )
    .unwrap();
    let err = m.orkops(&["apply", "-f", file.to_str().unwrap()]).failure();
    assert!(
        err.contains("spec.replicas") && err.contains("big.yaml"),
        "{err}"
    );
    assert!(err.contains("2147483647"), "{err}");
}

/// The largest legal `replicas` is worked through a burst per pass: the master's memory follows
/// the pods that exist, never the number asked for, and deleting the Deployment stops the work.
#[tokio::test]
async fn the_largest_legal_scale_is_worked_through_in_bounded_passes() {
    let m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let pid = m.child.as_ref().unwrap().id();
    let baseline = rss_mb(pid);
    let (code, body) = http
        .call(
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            Some(&token),
            Some(deployment("many", json!(i32::MAX))),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let count = || async {
        let (_, list) = http
            .call(
                Method::GET,
                "/api/v1/namespaces/default/pods?labelSelector=app%3Dmany",
                Some(&token),
                None,
            )
            .await;
        list["items"].as_array().map_or(0, Vec::len)
    };
    let started = Instant::now();
    let enough = 1200;
    let (mut peak, mut seen) = (baseline, Vec::new());
    loop {
        peak = peak.max(rss_mb(pid));
        let n = count().await;
        seen.push(n);
        if n >= enough {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {n} pods after 10 minutes: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "replicas {}: {} pods made in {:.1} s; master RSS {baseline:.0} MB before, peak {peak:.0} MB",
        i32::MAX,
        seen.last().unwrap(),
        started.elapsed().as_secs_f64()
    );
    assert!(peak < 100.0, "the master grew to {peak:.0} MB");
    // several passes, each making at most a burst (the replica set controller's events say
    // how many)
    let (_, sets) = http
        .call(
            Method::GET,
            "/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dmany",
            Some(&token),
            None,
        )
        .await;
    let set = sets["items"][0]["metadata"]["name"].as_str().unwrap();
    let (_, events) = http
        .call(
            Method::GET,
            &format!("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D{set}"),
            Some(&token),
            None,
        )
        .await;
    let made: Vec<u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter_map(|m| m.strip_prefix("created ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(made.len() >= 2, "passes that created pods: {made:?}");
    assert!(made.iter().all(|&n| n <= 500), "pods per pass: {made:?}");

    // deleting the deployment stops the work and its pods go
    let (code, _) = http
        .call(
            Method::DELETE,
            "/apis/apps/v1/namespaces/default/deployments/many",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(code, 200);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut left = count().await;
    while left > 0 {
        assert!(
            Instant::now() < deadline,
            "{left} pods still there after 10 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        left = count().await;
    }
    peak = peak.max(rss_mb(pid));
    assert!(peak < 100.0, "the master grew to {peak:.0} MB");
}

#[tokio::test]
async fn malformed_writes_are_refused_as_kube_apiserver_refuses_them() {
    let m = Master::start();
    let http = m.http();
    let token = m.admin_token();
    let cms = format!("{}/api/v1/namespaces/default/configmaps", http.base);
    let raw = |method: Method, url: String, body: Vec<u8>, ctype: &'static str| {
        let c = http.client.clone();
        let token = token.clone();
        async move {
            let r = c
                .request(method, url)
                .bearer_auth(token)
                .header("content-type", ctype)
                .body(body)
                .send()
                .await
                .expect("an answer, not a reset connection");
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
    };

    // a duplicate key: refused, naming it, nothing stored
    let dup = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"other"},"data":{"a":"1"}}"#;
    let (code, text) = raw(Method::POST, cms.clone(), dup.to_vec(), "application/json").await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("duplicate field") && text.contains("metadata.name"),
        "{text}"
    );
    for name in ["dup", "other"] {
        let (code, _) = http
            .call(
                Method::GET,
                &format!("/api/v1/namespaces/default/configmaps/{name}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(code, 404);
    }

    // a uid cannot be changed by a patch or a replace
    let (code, cm) = http
        .call(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some(&token),
            Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "1"}})),
        )
        .await;
    assert_eq!(code, 201);
    let uid = cm["metadata"]["uid"].as_str().unwrap().to_string();
    let patch = br#"{"metadata":{"uid":"00000000-0000-0000-0000-000000000000"}}"#.to_vec();
    let (code, text) = raw(
        Method::PATCH,
        format!("{cms}/keep"),
        patch,
        "application/merge-patch+json",
    )
    .await;
    assert_eq!(code, 409, "{text}");
    assert!(text.contains("Precondition failed: UID"), "{text}");
    let mut replaced = cm.clone();
    replaced["metadata"]["uid"] = json!("11111111-1111-1111-1111-111111111111");
    let (code, _) = http
        .call(
            Method::PUT,
            "/api/v1/namespaces/default/configmaps/keep",
            Some(&token),
            Some(replaced),
        )
        .await;
    assert_eq!(code, 409);
    let (_, now) = http
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/keep",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(now["metadata"]["uid"], uid.as_str());

    // names as Kubernetes has them: a 253-character subdomain is fine, 254 is not
    let long = format!("{}.{}", "a".repeat(63), "b".repeat(189));
    let one_part = "c".repeat(253);
    for name in [long.as_str(), one_part.as_str()] {
        let (code, body) = http
            .call(
                Method::POST,
                "/api/v1/namespaces/default/configmaps",
                Some(&token),
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})),
            )
            .await;
        assert_eq!(code, 201, "{name}: {body}");
    }
    for (path, kind, name, says) in [
        (
            "/api/v1/namespaces/default/configmaps",
            "ConfigMap",
            "d".repeat(254),
            "no more than 253 characters",
        ),
        (
            "/api/v1/namespaces",
            "Namespace",
            "n".repeat(64),
            "no more than 63 characters",
        ),
    ] {
        let (code, body) = http
            .call(
                Method::POST,
                path,
                Some(&token),
                Some(json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}})),
            )
            .await;
        assert_eq!(code, 422, "{body}");
        assert!(body.to_string().contains(says), "{body}");
    }

    // bodies past kube-apiserver's 3 MiB: a 413 Status, whether a little or far too large
    for size in [4 << 20, 50 << 20] {
        let big = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
            "x".repeat(size)
        );
        let (code, text) = raw(
            Method::POST,
            cms.clone(),
            big.into_bytes(),
            "application/json",
        )
        .await;
        assert_eq!(code, 413, "{size} bytes: {text}");
        let status: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status["reason"], "RequestEntityTooLarge");
    }
    let (code, _) = http
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps/keep",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(code, 200, "the master still answers");
}
