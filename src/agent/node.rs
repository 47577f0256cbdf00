//! The node's identity and presence: trading the join token for a node token (kept in the
//! data directory and renewed; the join token is removed from disk once it is used), the
//! agent's serving certificate signed by the cluster CA, the
//! Node object with capacity read from the machine (its heartbeat is `presence`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::api::Kind;
use crate::client::{ApiClient, ClientConfig};
use crate::pki;

/// Obtains a node token with `bootstrap` (a client config holding this node's join token)
/// unless `DATA_DIR/node.conf` already holds a valid one, then removes `bootstrap`; returns the
/// node's client config. A saved token the master refuses (revoked) is removed, so that the
/// bootstrap gives the node a new join token.
pub async fn credentials(
    data_dir: &Path,
    bootstrap: Option<&Path>,
    node: &str,
) -> anyhow::Result<ClientConfig> {
    let saved = data_dir.join("node.conf");
    if saved.exists() {
        let cfg = ClientConfig::load(&saved)?;
        let api = ApiClient::new(&cfg)?;
        match api.get(Kind::Node, None, node).await {
            Ok(_) => return Ok(cfg),
            Err(e) if e.is_not_found() => return Ok(cfg),
            Err(e) if e.code() == Some(401) => {
                tracing::warn!(error = %e, "the saved node token was refused; joining again");
                std::fs::remove_file(&saved)
                    .with_context(|| format!("cannot remove {}", saved.display()))?;
            }
            Err(e) => return Err(e).context("cannot reach the master with the saved node token"),
        }
    }
    let path = bootstrap.context(
        "this node has no credentials yet: pass --bootstrap-config FILE (a client config holding this node's join token; `orkops create join-token NODE -o FILE` makes one)",
    )?;
    let boot = ClientConfig::load(path)?;
    let api = ApiClient::new(&boot)?;
    let token = renew(&api, node).await.with_context(|| {
        format!(
            "cannot join the cluster with the join token in {}",
            path.display()
        )
    })?;
    let mut cfg = boot.clone();
    cfg.token = token;
    cfg.save(&saved)?;
    // the join token has served; a node keeps only its own (renewable, revocable) node token
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(file = %path.display(), error = %e, "cannot remove the used join token");
    }
    Ok(cfg)
}

/// A fresh node token for `node`.
pub async fn renew(api: &ApiClient, node: &str) -> anyhow::Result<String> {
    let r = api
        .request(
            Method::POST,
            &format!("/orkops/v1/nodes/{node}/token"),
            &[],
            None,
        )
        .await?;
    r["token"]
        .as_str()
        .map(str::to_string)
        .context("the master's token answer has no token")
}

/// Loads the agent's serving certificate, or has the master sign a new one for `sans`.
pub async fn serving_certificate(
    api: &ApiClient,
    data_dir: &Path,
    node: &str,
    sans: &[String],
) -> anyhow::Result<(String, String)> {
    let (crt, key, list) = (
        data_dir.join("agent.crt"),
        data_dir.join("agent.key"),
        data_dir.join("agent.sans"),
    );
    let wanted = sans.join("\n");
    if crt.exists()
        && key.exists()
        && std::fs::read_to_string(&list).ok().as_deref() == Some(&wanted)
    {
        return Ok((
            std::fs::read_to_string(&crt)?,
            std::fs::read_to_string(&key)?,
        ));
    }
    let kp = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(sans.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, node);
    let csr = params.serialize_request(&kp)?.pem()?;
    let r = api
        .request(
            Method::POST,
            &format!("/orkops/v1/nodes/{node}/certificate"),
            &[],
            Some(&json!({"csr": csr})),
        )
        .await
        .context("cannot have the master sign the agent's serving certificate")?;
    let cert = r["certificate"]
        .as_str()
        .context("the master's answer has no certificate")?
        .to_string();
    pki::write_private(&key, kp.serialize_pem().as_bytes())?;
    pki::write_private(&crt, cert.as_bytes())?;
    pki::write_private(&list, wanted.as_bytes())?;
    Ok((cert, kp.serialize_pem()))
}

/// What the Node object says about this machine.
#[derive(Debug, Clone)]
pub struct Facts {
    pub name: String,
    pub address: String,
    pub agent_port: u16,
    pub max_pods: u32,
    /// The size of the filesystem that holds the node's containers and volumes, reported as
    /// `ephemeral-storage` (the kubelet reports its root or imagefs the same way).
    pub ephemeral_storage_bytes: u64,
    pub labels: BTreeMap<String, String>,
    pub runtime_version: String,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The total size of the filesystem holding `path`, 0 where it cannot be read.
pub fn filesystem_bytes(path: &Path) -> u64 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return 0;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right size; statvfs writes only inside it.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    st.f_blocks.saturating_mul(st.f_frsize)
}

fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The first line of a file, trimmed, or "" when it cannot be read.
fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default()
}

/// The host's machine id (systemd's, else D-Bus's).
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .map(|p| first_line(p))
        .find(|id| !id.is_empty())
        .unwrap_or_default()
}

/// The firmware's system UUID (readable by root only), else the machine id, as the kubelet
/// reports what it can read.
fn system_uuid() -> String {
    match first_line("/sys/class/dmi/id/product_uuid") {
        id if !id.is_empty() => id,
        _ => machine_id(),
    }
}

/// The node's allocatable cpu (millicores) and memory (bytes), as its status reports them, and
/// the bytes of the filesystem holding `data_dir` (ephemeral storage): what a container's
/// downward API reads for a limit it does not set.
pub fn allocatable(data_dir: &std::path::Path) -> (i128, i128, i128) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i128;
    let storage = std::ffi::CString::new(data_dir.as_os_str().as_encoded_bytes())
        .ok()
        .and_then(|path| {
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `path` is a NUL-terminated string and `st` a valid out-parameter
            let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
            (rc == 0).then(|| st.f_blocks as i128 * st.f_frsize as i128)
        })
        .unwrap_or(0);
    (cpus * 1000, memory_kib() as i128 * 1024, storage)
}

impl Facts {
    /// The Node status the agent posts, its Ready condition beating at `now`.
    pub(super) fn status(&self, ready_since: DateTime<Utc>, now: DateTime<Utc>) -> Value {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let capacity = json!({
            "cpu": cpus.to_string(),
            "memory": format!("{}Ki", memory_kib()),
            "pods": self.max_pods.to_string(),
            "ephemeral-storage": format!("{}Ki", self.ephemeral_storage_bytes / 1024),
        });
        json!({
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "AgentReady",
                "message": "orkops-agent is posting ready status",
                "lastHeartbeatTime": now, "lastTransitionTime": ready_since,
            }],
            "addresses": [
                {"type": "InternalIP", "address": self.address},
                {"type": "Hostname", "address": self.name},
            ],
            "nodeInfo": {
                "architecture": arch(),
                "operatingSystem": std::env::consts::OS,
                "kernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
                "osImage": os_image(),
                "containerRuntimeVersion": format!("docker://{}", self.runtime_version),
                "agentVersion": env!("CARGO_PKG_VERSION"),
                "machineID": machine_id(),
                "systemUUID": system_uuid(),
                "bootID": first_line("/proc/sys/kernel/random/boot_id"),
                "kubeletVersion": crate::api::git_version(),
                "kubeProxyVersion": crate::api::git_version(),
            },
            "daemonEndpoints": {"agentEndpoint": {"Port": self.agent_port}},
        })
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.name.clone()),
            (
                "kubernetes.io/os".to_string(),
                std::env::consts::OS.to_string(),
            ),
            ("kubernetes.io/arch".to_string(), arch().to_string()),
        ]);
        l.extend(self.labels.clone());
        l
    }
}

/// Creates the Node if it is missing (adding our labels if it exists) and posts its status.
pub async fn register(
    api: &ApiClient,
    facts: &Facts,
    ready_since: DateTime<Utc>,
) -> anyhow::Result<()> {
    match api.get(Kind::Node, None, &facts.name).await {
        Ok(mut node) => {
            let labels = node["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let missing = facts
                .labels()
                .into_iter()
                .any(|(k, v)| labels.get(&k).and_then(Value::as_str) != Some(&v));
            if missing {
                for (k, v) in facts.labels() {
                    node["metadata"]["labels"][k] = json!(v);
                }
                api.replace(Kind::Node, None, &facts.name, &node).await?;
            }
        }
        Err(e) if e.is_not_found() => {
            let body = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": facts.name, "labels": facts.labels()},
                "spec": {},
            });
            match api.create(Kind::Node, None, &body).await {
                Ok(_) => tracing::info!(node = %facts.name, "registered the node"),
                Err(e) if e.code() == Some(409) => {}
                Err(e) => return Err(e).context("cannot register the node"),
            }
        }
        Err(e) => return Err(e).context("cannot read the node"),
    }
    post_status(api, &facts.name, facts.status(ready_since, Utc::now())).await
}

/// Posts `status` as the node's status.
pub async fn post_status(api: &ApiClient, name: &str, status: Value) -> anyhow::Result<()> {
    let body = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": status,
    });
    api.replace_status(Kind::Node, None, name, &body)
        .await
        .context("cannot post the node status")?;
    Ok(())
}
