//! Node identity as an attacker on a node would probe it, against a real master (etcd) and
//! real agents: with node A's credentials (its join token, then its node token) try to become
//! node B, the master or a made-up node, read B's secrets, delete B's pods, use the cluster's
//! join secret, keep using revoked tokens, and have the CA sign the API server's names.

mod common;

use common::{wait_until, Agent, Master};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

const MERGE: &str = "application/merge-patch+json";

/// The node token an agent saved in its data directory.
fn node_token(a: &Agent) -> String {
    orkops::client::ClientConfig::load(&a.dir.path().join("node.conf"))
        .unwrap()
        .token
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A PEM certificate request for `names`, named after `node`.
fn csr(node: &str, names: &[&str]) -> String {
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, node);
    p.serialize_request(&kp).unwrap().pem().unwrap()
}

#[test]
fn a_nodes_credentials_cannot_become_another_node_or_reach_its_pods() {
    let m = Master::start();
    let (a, b) = (Agent::start(&m), Agent::start(&m));
    assert!(
        !a.dir.path().join("bootstrap.conf").exists(),
        "the agent removed its join token once it held its node token"
    );
    let http = m.http();
    let admin = m.admin_token();
    let node_a = node_token(&a);
    let join_a = m.join_token(&a.name);
    runtime().block_on(async {
        for (what, tok) in [("join token", &join_a), ("node token", &node_a)] {
            for other in [b.name.as_str(), "master-1", "made-up-node"] {
                let (code, st) = http
                    .call(Method::POST, &format!("/orkops/v1/nodes/{other}/token"), Some(tok), None)
                    .await;
                assert_eq!(code, 403, "{what} of {} got a token for {other}: {st}", a.name);
            }
            let (code, _) = http
                .call(Method::POST, "/orkops/v1/nodes/made-up-node/join-token", Some(tok), None)
                .await;
            assert_eq!(code, 403, "a {what} cannot mint join tokens");
            let made_up = json!({"metadata": {"name": "made-up-node"}});
            let (code, st) = http.call(Method::POST, "/api/v1/nodes", Some(tok), Some(made_up)).await;
            assert_eq!(code, 403, "{what} registered a made-up node: {st}");
        }
        let (code, _) = http.call(Method::GET, "/api/v1/nodes/made-up-node", Some(&admin), None).await;
        assert_eq!(code, 404, "no made-up Node, so no pod CIDR was given to it");
        // the join token still yields the node's own token
        let (code, t) = http
            .call(Method::POST, &format!("/orkops/v1/nodes/{}/token", a.name), Some(&join_a), None)
            .await;
        assert_eq!(code, 201, "{t}");

        // a secret used only by B's pod; then A tries to read it and delete the pod
        let ns = "/api/v1/namespaces/default";
        let secret = json!({"metadata": {"name": "b-only"}, "stringData": {"k": "v"}});
        let (code, _) = http.call(Method::POST, &format!("{ns}/secrets"), Some(&admin), Some(secret)).await;
        assert_eq!(code, 201);
        let pod = json!({"metadata": {"name": "b-pod"}, "spec": {
            "nodeName": b.name, "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": common::TEST_IMAGE, "command": ["sleep", "3600"],
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "b-only", "key": "k"}}}]}]}});
        let (code, _) = http.call(Method::POST, &format!("{ns}/pods"), Some(&admin), Some(pod)).await;
        assert_eq!(code, 201);
        for tok in [&node_a, &join_a] {
            let (code, st) = http.call(Method::GET, &format!("{ns}/secrets/b-only"), Some(tok), None).await;
            assert_eq!(code, 403, "{st}");
            let (code, st) = http.call(Method::DELETE, &format!("{ns}/pods/b-pod"), Some(tok), None).await;
            assert_eq!(code, 403, "{st}");
        }
        let (code, pod) = http.call(Method::GET, &format!("{ns}/pods/b-pod"), Some(&admin), None).await;
        assert_eq!(code, 200);
        assert!(pod["metadata"]["deletionTimestamp"].is_null(), "B's pod is untouched: {pod}");
        // B itself may read the secret its pod uses
        let (code, _) = http.call(Method::GET, &format!("{ns}/secrets/b-only"), Some(&node_token(&b)), None).await;
        assert_eq!(code, 200);

        // the cluster-wide join secret is not a credential
        let (code, st) = http.call(Method::GET, &format!("{ns}/pods"), Some(&m.join_secret()), None).await;
        assert_eq!(code, 401, "{st}");
        let (code, _) = http
            .call(Method::POST, &format!("/orkops/v1/nodes/{}/token", a.name), Some(&m.join_secret()), None)
            .await;
        assert_eq!(code, 401);
        let (code, _) = http.call(Method::DELETE, &format!("{ns}/pods/b-pod?gracePeriodSeconds=0"), Some(&admin), None).await;
        assert_eq!(code, 200);
    });
}

/// Node A, holding only its own credentials, tries to keep node B "alive" (or make it look dead)
/// by writing B's Lease, to plant Leases under other names or namespaces, and to delete B's.
#[test]
fn a_node_may_renew_only_its_own_lease() {
    let m = Master::start();
    let (a, b) = (Agent::start(&m), Agent::start(&m));
    let http = m.http();
    let admin = m.admin_token();
    let (node_a, join_a) = (node_token(&a), m.join_token(&a.name));
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let get_b = || {
        m.orkops(&[
            "get",
            "lease",
            &b.name,
            "-n",
            "kube-node-lease",
            "-o",
            "json",
        ])
    };
    wait_until(
        "B's agent to make its Lease",
        Duration::from_secs(30),
        || get_b().ok(),
    );
    let current = get_b().json();
    runtime().block_on(async {
        let b_lease = format!("{leases}/{}", b.name);
        let forged = |mut l: serde_json::Value| {
            l["spec"]["holderIdentity"] = json!("forged-by-a");
            l["spec"]["renewTime"] = json!("2099-01-01T00:00:00.000000Z");
            l
        };
        let lease = |name: &str| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": name},
                   "spec": {"holderIdentity": "forged-by-a", "leaseDurationSeconds": 40}})
        };
        let merge = json!({"spec": {"holderIdentity": "forged-by-a"}});
        for (what, tok) in [("node token", &node_a), ("join token", &join_a)] {
            let (code, st) = http
                .call(
                    Method::PUT,
                    &b_lease,
                    Some(tok),
                    Some(forged(current.clone())),
                )
                .await;
            assert_eq!(code, 403, "{what} of A replaced B's Lease: {st}");
            let (code, st, _) = http
                .send(Method::PATCH, &b_lease, tok, MERGE, None, merge.to_string())
                .await;
            assert_eq!(code, 403, "{what} of A patched B's Lease: {st}");
            let (code, st) = http.call(Method::DELETE, &b_lease, Some(tok), None).await;
            assert_eq!(code, 403, "{what} of A deleted B's Lease: {st}");
            for name in ["made-up-node", "master-1"] {
                let (code, st) = http
                    .call(Method::POST, leases, Some(tok), Some(lease(name)))
                    .await;
                assert_eq!(code, 403, "{what} of A created a Lease {name:?}: {st}");
            }
            let elsewhere = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
            let (code, st) = http
                .call(Method::POST, elsewhere, Some(tok), Some(lease(&a.name)))
                .await;
            assert_eq!(
                code, 403,
                "{what} of A created a Lease outside kube-node-lease: {st}"
            );
        }
        let (code, l) = http.call(Method::GET, &b_lease, Some(&admin), None).await;
        assert_eq!(code, 200, "B's Lease is still there: {l}");
        assert_eq!(
            l["spec"]["holderIdentity"],
            json!(b.name),
            "B's Lease holds B: {l}"
        );
        assert_ne!(
            l["spec"]["renewTime"],
            json!("2099-01-01T00:00:00.000000Z"),
            "{l}"
        );
        for ns in ["default", "kube-node-lease"] {
            let (code, _) = http
                .call(
                    Method::GET,
                    &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/made-up-node"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(code, 404, "no Lease was planted in {ns}");
        }
        // the control: A renews its own Lease with the same request
        let a_lease = format!("{leases}/{}", a.name);
        let own = json!({"spec": {"holderIdentity": a.name}});
        let (code, st, _) = http
            .send(
                Method::PATCH,
                &a_lease,
                &node_a,
                MERGE,
                None,
                own.to_string(),
            )
            .await;
        assert_eq!(code, 200, "A renews its own Lease: {st}");
    });
}

#[test]
fn deleting_a_node_revokes_its_node_and_join_tokens() {
    let m = Master::start();
    let mut a = Agent::start(&m);
    let http = m.http();
    let admin = m.admin_token();
    let node_a = node_token(&a);
    let join_a = m.join_token(&a.name);
    let pods = "/api/v1/pods";
    runtime().block_on(async {
        let (code, _) = http.call(Method::GET, pods, Some(&node_a), None).await;
        assert_eq!(code, 200);
        a.stop();
        let (code, st) = http
            .call(
                Method::DELETE,
                &format!("/api/v1/nodes/{}", a.name),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(code, 200, "{st}");
        let (code, st) = http.call(Method::GET, pods, Some(&node_a), None).await;
        assert_eq!(code, 401, "the deleted node's token still lists pods: {st}");
        assert!(st["message"].as_str().unwrap().contains("revoked"), "{st}");
        let (code, _) = http
            .call(
                Method::POST,
                &format!("/orkops/v1/nodes/{}/token", a.name),
                Some(&node_a),
                None,
            )
            .await;
        assert_eq!(code, 401, "a revoked node token cannot renew itself");
        let (code, _) = http
            .call(
                Method::POST,
                &format!("/orkops/v1/nodes/{}/token", a.name),
                Some(&join_a),
                None,
            )
            .await;
        assert_eq!(
            code, 401,
            "a join token issued before the delete is revoked too"
        );
        // a replacement with a new join token joins
        let (code, t) = http
            .call(
                Method::POST,
                &format!("/orkops/v1/nodes/{}/token", a.name),
                Some(&m.join_token(&a.name)),
                None,
            )
            .await;
        assert_eq!(code, 201, "{t}");
        let (code, _) = http
            .call(Method::GET, pods, Some(t["token"].as_str().unwrap()), None)
            .await;
        assert_eq!(code, 200);
    });
    // the old agent, restarted, finds its token refused and drops it; given a new join token
    // (what `orkops update cluster` uploads) it joins again
    m.join_config(&a.name, &[], &a.dir.path().join("bootstrap.conf"));
    a.restart(&m);
    assert!(!a.dir.path().join("bootstrap.conf").exists());
    wait_until(
        "the re-joined node to be registered",
        Duration::from_secs(60),
        || m.orkops(&["get", "nodes", &a.name]).ok(),
    );
}

#[test]
fn a_join_token_bound_to_an_instance_registers_only_that_instance() {
    let m = Master::start();
    let http = m.http();
    let admin = m.admin_token();
    runtime().block_on(async {
        let (code, j) = http
            .call(Method::POST, "/orkops/v1/nodes/node-7/join-token", Some(&admin),
                Some(json!({"instanceID": "i-7", "address": "10.0.0.7"})))
            .await;
        assert_eq!(code, 201, "{j}");
        let (code, bad) = http
            .call(Method::POST, "/orkops/v1/nodes/node-7/join-token", Some(&admin), Some(json!({"address": "not-an-ip"})))
            .await;
        assert_eq!(code, 422, "{bad}");
        assert!(bad["message"].as_str().unwrap().contains("address"), "{bad}");
        let (code, t) = http
            .call(Method::POST, "/orkops/v1/nodes/node-7/token", j["token"].as_str(), None)
            .await;
        assert_eq!(code, 201, "{t}");
        let tok = t["token"].as_str().unwrap();
        let node = |instance: &str| json!({"metadata": {"name": "node-7", "labels": {"orkops.io/instance-id": instance}}});
        let (code, st) = http.call(Method::POST, "/api/v1/nodes", Some(tok), Some(node("i-8"))).await;
        assert_eq!(code, 403, "a node claimed another instance: {st}");
        assert!(st["message"].as_str().unwrap().contains("i-7"), "{st}");
        let (code, n) = http.call(Method::POST, "/api/v1/nodes", Some(tok), Some(node("i-7"))).await;
        assert_eq!(code, 201, "{n}");
        assert!(n["spec"]["podCIDR"].is_string(), "a node with valid credentials gets a pod CIDR: {n}");
        let mut moved = n.clone();
        moved["metadata"]["labels"]["orkops.io/instance-id"] = json!("i-8");
        let (code, _) = http.call(Method::PUT, "/api/v1/nodes/node-7", Some(tok), Some(moved)).await;
        assert_eq!(code, 403, "nor can it relabel itself as another instance");

        // its certificate gets its name and recorded address, nothing it asks for beyond them
        let sign = |names: &[&str]| json!({"csr": csr("node-7", names)});
        let (code, ok) = http
            .call(Method::POST, "/orkops/v1/nodes/node-7/certificate", Some(tok), Some(sign(&["node-7"])))
            .await;
        assert_eq!(code, 201, "{ok}");
        let cert = rcgen::CertificateParams::from_ca_cert_pem(ok["certificate"].as_str().unwrap()).unwrap();
        let names: Vec<String> = cert.subject_alt_names.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].contains("node-7") && names[1].contains("10.0.0.7"), "{names:?}");
    });
}

#[test]
fn the_signer_refuses_requests_for_names_it_did_not_derive() {
    let m = Master::start();
    let a = Agent::start(&m);
    let http = m.http();
    let tok = node_token(&a);
    let endpoint = reqwest::Url::parse(&m.endpoint).unwrap();
    let api_host = endpoint.host_str().unwrap().to_string();
    runtime().block_on(async {
        let path = format!("/orkops/v1/nodes/{}/certificate", a.name);
        for extra in [
            vec!["localhost"],
            vec![api_host.as_str()],
            vec!["node-2"],
            vec!["10.9.9.9"],
        ] {
            let mut names = vec![a.name.as_str()];
            names.extend(&extra);
            let (code, st) = http
                .call(
                    Method::POST,
                    &path,
                    Some(&tok),
                    Some(json!({"csr": csr(&a.name, &names)})),
                )
                .await;
            assert_eq!(code, 400, "a CSR naming {extra:?} was signed: {st}");
            let msg = st["message"].as_str().unwrap();
            assert!(
                extra.iter().all(|e| msg.contains(e)),
                "the error names {extra:?}: {msg}"
            );
        }
        let (code, ok) = http
            .call(
                Method::POST,
                &path,
                Some(&tok),
                Some(json!({"csr": csr(&a.name, &[&a.name])})),
            )
            .await;
        assert_eq!(code, 201, "{ok}");
        let cert = rcgen::CertificateParams::from_ca_cert_pem(ok["certificate"].as_str().unwrap())
            .unwrap();
        let names: Vec<String> = cert
            .subject_alt_names
            .iter()
            .map(|s| format!("{s:?}"))
            .collect();
        assert!(
            names.len() == 1 && names[0].contains(&a.name),
            "only the node's name: {names:?}"
        );
    });
}

/// A key and a certificate request for `names`, named after `node`.
fn key_and_csr(node: &str, names: &[&str]) -> (String, String) {
    let kp = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, node);
    (
        kp.serialize_pem(),
        p.serialize_request(&kp).unwrap().pem().unwrap(),
    )
}

/// What an attacker holding a node's certificate runs: an "agent" presenting it, answering
/// every request with a forged log line. Returns its port; it stops with the runtime.
async fn fake_agent(cert_pem: &str, key_pem: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = orkops::pki::server_config(cert_pem, key_pem, std::path::Path::new("fake")).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "forged log line\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A deleted node's serving certificate stays CA-signed and unexpired; the machine that holds
/// it (the old instance) must not pass for the node once it is revoked, even when it answers
/// at the address the node (joined again) reports. A certificate issued after the revocation
/// is accepted.
/// What a joining agent does: a join token recorded for 127.0.0.1 (from the admin), traded for
/// the node's token, which registers the Node. Returns the node token.
async fn join_at_loopback(http: &common::Http, admin: &str, node: &str) -> String {
    let (code, j) = http
        .call(
            Method::POST,
            &format!("/orkops/v1/nodes/{node}/join-token"),
            Some(admin),
            Some(json!({"address": "127.0.0.1"})),
        )
        .await;
    assert_eq!(code, 201, "{j}");
    let (code, t) = http
        .call(
            Method::POST,
            &format!("/orkops/v1/nodes/{node}/token"),
            j["token"].as_str(),
            None,
        )
        .await;
    assert_eq!(code, 201, "{t}");
    let tok = t["token"].as_str().unwrap().to_string();
    let (code, n) = http
        .call(
            Method::POST,
            "/api/v1/nodes",
            Some(&tok),
            Some(json!({"metadata": {"name": node}})),
        )
        .await;
    assert_eq!(code, 201, "{n}");
    tok
}

#[test]
fn the_master_refuses_an_agent_certificate_issued_before_its_nodes_revocation() {
    let m = Master::start();
    let http = m.http();
    let admin = m.admin_token();
    let node = "node-9";
    let ns = "/api/v1/namespaces/default";
    runtime().block_on(async {
        // node-9 joins with a join token recorded for 127.0.0.1 and gets its certificate
        let tok = join_at_loopback(&http, &admin, node).await;
        let (old_key, old_csr) = key_and_csr(node, &[node]);
        let (code, c) = http
            .call(
                Method::POST,
                &format!("/orkops/v1/nodes/{node}/certificate"),
                Some(&tok),
                Some(json!({"csr": old_csr})),
            )
            .await;
        assert_eq!(code, 201, "{c}");
        let old_cert = c["certificate"].as_str().unwrap().to_string();
        let old_agent = fake_agent(&old_cert, &old_key).await;
        let http_ref = &http;
        let report = move |tok: String, port: u16| {
            let http = http_ref;
            async move {
                let status = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                    "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                        "daemonEndpoints": {"agentEndpoint": {"Port": port}}}});
                let (code, st) = http
                    .call(
                        Method::PUT,
                        &format!("/api/v1/nodes/{node}/status"),
                        Some(&tok),
                        Some(status),
                    )
                    .await;
                assert_eq!(code, 200, "{st}");
            }
        };
        report(tok.clone(), old_agent).await;
        let pod = |name: &str| {
            json!({"metadata": {"name": name}, "spec": {"nodeName": node,
            "containers": [{"name": "c", "image": common::TEST_IMAGE}]}})
        };
        let (code, st) = http
            .call(
                Method::POST,
                &format!("{ns}/pods"),
                Some(&admin),
                Some(pod("p9")),
            )
            .await;
        assert_eq!(code, 201, "{st}");
        // while node-9 is not revoked, its certificate is its agent's
        let (code, log) = http
            .call(
                Method::GET,
                &format!("{ns}/pods/p9/log"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            (code, log.as_str()),
            (200, Some("forged log line\n")),
            "{log}"
        );

        // node-9 is deleted (revoked), then joins again; the old machine still answers at the
        // address the node reports, with the old certificate
        let (code, st) = http
            .call(
                Method::DELETE,
                &format!("/api/v1/nodes/{node}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(code, 200, "{st}");
        let deleted = chrono::Utc::now();
        let tok2 = join_at_loopback(&http, &admin, node).await;
        report(tok2.clone(), old_agent).await;
        let (code, st) = http
            .call(
                Method::POST,
                &format!("{ns}/pods"),
                Some(&admin),
                Some(pod("p9b")),
            )
            .await;
        assert_eq!(code, 201, "{st}");
        for sub in ["log", "log?follow=true"] {
            let (code, st) = http
                .call(
                    Method::GET,
                    &format!("{ns}/pods/p9b/{sub}"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(code, 502, "the revoked certificate was accepted: {st}");
            let msg = st["message"].as_str().unwrap_or_default();
            assert!(msg.contains("revoked") && msg.contains(node), "{st}");
            assert!(!st.to_string().contains("forged"), "{st}");
        }

        // the node's new certificate (issued after the revocation) is accepted
        common::wait_until(
            "the second after the delete",
            Duration::from_secs(5),
            || chrono::Utc::now().timestamp() > deleted.timestamp(),
        );
        let (new_key, new_csr) = key_and_csr(node, &[node]);
        let (code, c) = http
            .call(
                Method::POST,
                &format!("/orkops/v1/nodes/{node}/certificate"),
                Some(&tok2),
                Some(json!({"csr": new_csr})),
            )
            .await;
        assert_eq!(code, 201, "{c}");
        let new_agent = fake_agent(c["certificate"].as_str().unwrap(), &new_key).await;
        report(tok2.clone(), new_agent).await;
        let (code, log) = http
            .call(
                Method::GET,
                &format!("{ns}/pods/p9b/log"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            code, 200,
            "the replacement's certificate was refused: {log}"
        );
    });
}
