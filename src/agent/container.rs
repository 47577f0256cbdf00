//! The engine's create body of one container of a pod: its environment (with the service
//! variables unless `enableServiceLinks` is false), its mounts (the pod's volumes, the managed
//! `/etc/hosts`, the pod's `/etc/resolv.conf`, the termination-message file), the namespaces it
//! shares (the sandbox's network and IPC, or the node's under `hostNetwork`/`hostIPC`/`hostPID`,
//! the sandbox's PID namespace under `shareProcessNamespace`), its limits and its security
//! context.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};

use super::downward::Facts;
use super::etcfiles::{self, ClusterDns};
use super::inputs::{self, ConfigError, EngineMounts, Source};
use super::pods::Ctx;
use super::runtime::Observed;
use crate::api::core::{Container, Pod};

/// What one container of a pod is made from.
pub struct Setup<'a> {
    pub ctx: &'a Ctx,
    pub pod: &'a Pod,
    pub sandbox: &'a Observed,
    pub sources: &'a BTreeMap<String, Source>,
    pub attempt: u32,
    pub image_user: &'a str,
    pub labels: HashMap<String, String>,
}

/// A create body, and whether the pod wanted the cluster DNS on a node that has none (the
/// kubelet's MissingClusterDNS warning: it gets the node's resolver instead).
pub struct Built {
    pub body: ContainerCreateBody,
    pub missing_cluster_dns: bool,
}

/// The file a container attempt writes its termination message into.
pub fn termination_log(data_dir: &Path, uid: &str, container: &str, attempt: u32) -> PathBuf {
    inputs::pod_dir(data_dir, uid)
        .join("containers")
        .join(container)
        .join(attempt.to_string())
        .join("termination-log")
}

/// The addresses and node resources the downward API reads for the pod.
pub fn facts(ctx: &Ctx, pod: &Pod, sandbox: Option<&Observed>) -> Facts {
    let (cpu_millis, memory_bytes, storage_bytes) = super::node::allocatable(&ctx.data_dir);
    let pod_ip = if pod.spec.host_network {
        ctx.host_ip.clone()
    } else {
        sandbox.and_then(|s| s.ip.clone()).unwrap_or_default()
    };
    Facts {
        pod_ip,
        host_ip: ctx.host_ip.clone(),
        cpu_millis,
        memory_bytes,
        storage_bytes,
    }
}

fn bind(target: &str, source: &Path, read_only: bool) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(source.to_string_lossy().into_owned()),
        typ: Some(MountTypeEnum::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| ConfigError(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// The managed `/etc/hosts` and `/etc/resolv.conf` and the termination-log file, written in the
/// pod's directory and mounted unless the container mounts something there itself.
fn etc_mounts(s: &Setup, c: &Container, mounts: &mut Vec<Mount>) -> Result<bool, ConfigError> {
    let (ctx, pod) = (s.ctx, s.pod);
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let dir = inputs::pod_dir(&ctx.data_dir, uid);
    let taken = |mounts: &[Mount], t: &str| mounts.iter().any(|m| m.target.as_deref() == Some(t));
    let facts = facts(ctx, pod, Some(s.sandbox));
    if !taken(mounts, etcfiles::NODE_HOSTS) && (pod.spec.host_network || !facts.pod_ip.is_empty()) {
        let node_hosts = if pod.spec.host_network {
            std::fs::read_to_string(etcfiles::NODE_HOSTS).unwrap_or_default()
        } else {
            String::new()
        };
        let ips: Vec<String> = Some(facts.pod_ip.clone())
            .filter(|i| !i.is_empty())
            .into_iter()
            .collect();
        let path = dir.join("etc-hosts");
        write(&path, &etcfiles::hosts(pod, &ips, &node_hosts), 0o644)?;
        mounts.push(bind(etcfiles::NODE_HOSTS, &path, false));
    }
    let cluster = ctx.net.as_ref().map(|n| ClusterDns {
        server: n.gateway.to_string(),
        domain: n.cluster.cluster_domain.clone(),
    });
    let (resolv, missing) = etcfiles::pod_resolv(pod, cluster.as_ref(), &etcfiles::node_resolv());
    if etcfiles::own_resolv(pod, cluster.as_ref()) && !taken(mounts, "/etc/resolv.conf") {
        let path = dir.join("resolv.conf");
        write(&path, &etcfiles::render(&resolv), 0o644)?;
        mounts.push(bind("/etc/resolv.conf", &path, true));
    }
    let target = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| crate::api::podfields::TERMINATION_MESSAGE_PATH.into());
    if !taken(mounts, &target) {
        let path = termination_log(&ctx.data_dir, uid, &c.name, s.attempt);
        // world-writable, as the kubelet makes it: the container may run as any user
        write(&path, "", 0o666)?;
        mounts.push(bind(&target, &path, false));
    }
    Ok(missing)
}

/// The namespaces the container shares: the sandbox's, or the node's.
fn namespaces(pod: &Pod, sandbox_id: &str) -> HostConfig {
    let spec = &pod.spec;
    let joined = format!("container:{sandbox_id}");
    let mut host = HostConfig {
        network_mode: Some(joined.clone()),
        ipc_mode: Some(joined.clone()),
        ..Default::default()
    };
    if spec.host_network {
        host.network_mode = Some("host".into());
        host.uts_mode = Some("host".into());
    }
    if spec.host_ipc {
        host.ipc_mode = Some("host".into());
    }
    if spec.host_pid {
        host.pid_mode = Some("host".into());
    } else if spec.share_process_namespace == Some(true) {
        host.pid_mode = Some(joined);
    }
    host
}

/// The environment: the service variables first (as Kubernetes orders them: the container's
/// own win), unless the pod turned service links off.
async fn environment(s: &Setup<'_>, c: &Container) -> Result<Vec<String>, ConfigError> {
    let facts = facts(s.ctx, s.pod, Some(s.sandbox));
    let mut env = inputs::environment(&s.ctx.api, s.pod, c, &facts).await?;
    let (Some(net), true) = (&s.ctx.net, s.pod.spec.enable_service_links != Some(false)) else {
        return Ok(env);
    };
    let defined: std::collections::HashSet<String> = env
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    let mut with_services: Vec<String> = net
        .service_env(s.pod.metadata.namespace())
        .into_iter()
        .filter(|(k, _)| !defined.contains(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    with_services.append(&mut env);
    Ok(with_services)
}

/// Builds the create body of container `c`.
pub async fn build(s: Setup<'_>, c: &Container) -> Result<Built, ConfigError> {
    let env = environment(&s, c).await?;
    let env_pairs: Vec<(String, String)> = env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let engine = EngineMounts::of_version(&s.ctx.rt.version);
    let mut mounts = inputs::mounts(s.pod, c, s.sources, &env_pairs, engine)?;
    let missing_cluster_dns = etc_mounts(&s, c, &mut mounts)?;
    let limits = c.resources.as_ref().map(|r| &r.limits);
    let mut host = namespaces(s.pod, &s.sandbox.id);
    host.mounts = Some(mounts);
    host.memory = limits
        .and_then(|l| l.get("memory"))
        .and_then(|q| q.millis().ok())
        .map(|m| (m / 1000) as i64);
    host.nano_cpus = limits
        .and_then(|l| l.get("cpu"))
        .and_then(|q| q.millis().ok())
        .map(|m| (m * 1_000_000) as i64);
    super::runtime::apply_security(&mut host, s.pod, c);
    let expand = |args: &[String]| -> Option<Vec<String>> {
        (!args.is_empty()).then(|| args.iter().map(|a| inputs::expand(a, &env_pairs)).collect())
    };
    let body = ContainerCreateBody {
        image: Some(c.image.clone()),
        user: super::runtime::user_of(s.pod, c, s.image_user),
        entrypoint: expand(&c.command),
        cmd: expand(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        env: Some(env),
        labels: Some(s.labels),
        tty: c.tty,
        open_stdin: c.stdin,
        // like `kubectl run -i`: stdin closes when the first attached client leaves, unless
        // the pod says otherwise
        stdin_once: c.stdin_once.or(c.stdin),
        host_config: Some(host),
        ..Default::default()
    };
    Ok(Built {
        body,
        missing_cluster_dns,
    })
}

/// The termination message of an exited container attempt, as the kubelet reads it: the
/// file's first 4096 bytes; under FallbackToLogsOnError, when the file is empty and the
/// container failed, the last 80 lines of its log (at most 2048 bytes).
pub async fn termination_message(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    o: &Observed,
) -> Option<String> {
    use std::io::Read;
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let path = termination_log(&ctx.data_dir, uid, &c.name, o.attempt);
    let mut text = Vec::new();
    if let Ok(f) = std::fs::File::open(&path) {
        let _ = f.take(4096).read_to_end(&mut text);
    }
    let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
    if text.is_empty() && fallback && o.exit_code != 0 {
        let log = ctx.rt.logs_tail(&o.id, 80).await.unwrap_or_default();
        let start = log.len().saturating_sub(2048);
        text = log[start..].to_vec();
    }
    (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned())
}
