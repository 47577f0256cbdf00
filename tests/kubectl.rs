//! The real kubectl on PATH against a real `orkops-master`: discovery (`version`,
//! `api-versions`, `api-resources`) and paged lists (`get`, which asks for `limit=500`).
//! Skipped with a message where no kubectl is installed.

mod common;

use common::kube::{have_kubectl, kubeconfig, kubectl};

use common::Master;
use serde_json::Value;
use std::time::Duration;

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

/// Container resources as Kubernetes sorts them, through `kubectl apply`: ephemeral-storage is
/// scheduled against what the node reports, an extended resource no node offers keeps its pod
/// Pending with the scheduler's reason, and a resource name that is neither is refused by field.
#[test]
fn extended_resources_and_ephemeral_storage_are_scheduled_against_node_capacity() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    let prefix = format!("r{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let _nodes = common::hollow::Hollow::start(&m, 1, &prefix, "shared");
    let pod = |name: &str, limits: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  \
             - name: c\n    image: busybox:1\n    resources:\n      limits: {limits}\n"
        )
    };
    let apply = |yaml: String| {
        let mut cmd = common::kube::kubectl_command(&config, &["apply", "-f", "-"]);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = apply(pod("disk", "{cpu: 100m, ephemeral-storage: 1Gi}"));
    assert!(ok, "{out}");
    let (ok, out) = apply(pod("gpu", "{cpu: 100m, nvidia.com/gpu: 1}"));
    assert!(ok, "{out}");
    let (ok, out) = apply(pod("bad", "{gpu: 1}"));
    assert!(
        !ok && out.contains("spec.containers[0].resources.limits.gpu"),
        "{out}"
    );
    assert!(out.contains("must be a standard resource"), "{out}");

    let get = |name: &str| -> Value {
        let (_, out, _) = kubectl(&config, &["get", "pod", name, "-o", "json"]);
        serde_json::from_str(&out).unwrap_or(Value::Null)
    };
    common::wait_until("the disk pod to be bound", Duration::from_secs(120), || {
        get("disk")["spec"]["nodeName"].is_string()
    });
    common::wait_until(
        "the gpu pod to be refused by the scheduler",
        Duration::from_secs(120),
        || {
            get("gpu")["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("1 Insufficient nvidia.com/gpu"))
                })
        },
    );
    assert!(get("gpu")["spec"]["nodeName"].is_null());
}

/// A Service as `kubectl get svc -o yaml` prints it on an IPv4 Kubernetes cluster applies
/// unchanged and reads back with the same defaults; a field AWS cannot honour is refused by name.
#[test]
fn a_service_exported_from_kubernetes_applies_with_its_address_fields() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(&m, dir.path());
    let manifest = dir.path().join("svc.yaml");
    let write = |extra: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: db}}\nspec:\n  clusterIP: None\n  \
                 ipFamilies: [IPv4]\n  ipFamilyPolicy: SingleStack\n  internalTrafficPolicy: Cluster\n  \
                 publishNotReadyAddresses: true\n  selector: {{app: db}}\n  sessionAffinity: None\n  \
                 type: ClusterIP\n  ports:\n  - {{name: sql, port: 5432, protocol: TCP, targetPort: 5432, appProtocol: postgresql}}\n{extra}"
            ),
        )
        .unwrap();
    };
    write("");
    let file = manifest.to_str().unwrap();
    let (ok, out, err) = kubectl(&config, &["apply", "-f", file]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = kubectl(&config, &["get", "svc", "db", "-o", "json"]);
    assert!(ok, "{out}{err}");
    let svc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(svc["spec"]["publishNotReadyAddresses"], true, "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["appProtocol"], "postgresql");
    assert_eq!(svc["spec"]["ipFamilies"][0], "IPv4");
    write("  loadBalancerIP: 10.0.0.9\n");
    let (ok, out, err) = kubectl(&config, &["apply", "-f", file]);
    assert!(!ok && err.contains("spec.loadBalancerIP"), "{out}{err}");
}
