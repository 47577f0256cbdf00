//! What the tests that drive the real Kubernetes clients share: whether kubectl is installed, a
//! kubeconfig for a test master's admin, and the official Python client (installed by
//! `scripts/install-pyclient`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Master;

/// Whether kubectl is on PATH; says so when it is not (the test then skips).
pub fn have_kubectl() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("kubectl is not installed: skipping");
    }
    found
}

/// kubectl with `config` and a HOME of its own (its directory), so that its discovery and
/// OpenAPI caches are this test's, and no KUBECONFIG from the environment in play.
pub fn kubectl_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(config)
        .args(args)
        .env("HOME", config.parent().unwrap())
        .env_remove("KUBECONFIG");
    cmd
}

/// Runs kubectl (see [`kubectl_command`]): whether it succeeded, its stdout and its stderr.
pub fn kubectl(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = kubectl_command(config, args)
        .output()
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A kubeconfig for the master's admin: its first endpoint, the cluster CA and the admin token,
/// in namespace `default`.
pub fn kubeconfig(m: &Master, dir: &Path) -> PathBuf {
    let admin: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&m.config).unwrap()).unwrap();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: orkops\n\
         clusters:\n- name: orkops\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: admin\n  user:\n    token: {}\n\
         contexts:\n- name: orkops\n  context:\n    cluster: orkops\n    user: admin\n    namespace: default\n",
        admin["endpoints"][0].as_str().unwrap(),
        admin["certificateAuthorityData"].as_str().unwrap(),
        admin["token"].as_str().unwrap(),
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// The official Python client's interpreter, installed on first use; None (with a message) when
/// it cannot be installed.
pub fn python_client() -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install-pyclient");
    let out = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("the Python client cannot be installed: skipping");
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs a Python program with the official client against `kubeconfig` and returns its
/// output (None when the client cannot be installed); a failing program fails the test.
pub fn python(program: &str, kubeconfig: &Path) -> Option<String> {
    let py = python_client()?;
    let out = Command::new(py)
        .args(["-c", program])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// kubectl with one kubeconfig, for tests that drive many steps.
pub struct Kubectl(pub PathBuf);

impl Kubectl {
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        kubectl(&self.0, args)
    }

    /// Runs kubectl, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    /// Runs kubectl with `-o json`, asserts success, returns the parsed output.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}
