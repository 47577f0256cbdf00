//! The real kubectl on PATH against a real `orkops-master`: discovery (`version`,
//! `api-versions`, `api-resources`) and paged lists (`get`, which asks for `limit=500`).
//! Skipped with a message where no kubectl is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig, kubectl};

use common::Master;
use serde_json::Value;

#[test]
fn kubectl_discovers_the_api_and_lists_objects() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());

    let (ok, out, err) = kubectl(&config, &["version", "-o", "json"]);
    assert!(ok, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let git = v["serverVersion"]["gitVersion"].as_str().unwrap();
    assert!(git.starts_with("v1.32.0-orkops."), "{v}");

    let (ok, out, err) = kubectl(&config, &["api-versions"]);
    assert!(ok, "{out}{err}");
    for gv in ["v1", "apps/v1", "batch/v1"] {
        assert!(out.lines().any(|l| l == gv), "{gv} missing: {out}");
    }

    let (ok, out, err) = kubectl(&config, &["api-resources", "-o", "wide"]);
    assert!(ok, "{out}{err}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .to_string()
    };
    assert!(
        row("pods").contains("po") && row("pods").contains("Pod"),
        "{out}"
    );
    assert!(row("deployments").contains("apps/v1"), "{out}");
    assert!(row("cronjobs").contains("batch/v1"), "{out}");
    assert!(row("namespaces").contains("false"), "{out}");

    // kubectl pages lists with limit=500; the namespaces orkops makes are all there
    let (ok, out, err) = kubectl(&config, &["get", "namespaces", "-o", "name"]);
    assert!(ok, "{out}{err}");
    assert!(out.lines().any(|l| l == "namespace/default"), "{out}");
    let (ok, out, err) = kubectl(&config, &["get", "configmaps", "-A"]);
    assert!(ok, "{out}{err}");

    // a wrong token is refused
    let bad = dir.path().join("bad");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("token: ", "token: x"),
    )
    .unwrap();
    let (ok, out, err) = kubectl(&bad, &["get", "namespaces"]);
    assert!(!ok, "{out}");
    assert!(err.contains("You must be logged in"), "{err}");
}
