//! The agent's view of the Docker engine (through bollard): every container and volume it makes
//! carries labels tying it to this node and to its pod, so the agent can always find its own
//! and never touches anybody else's. Also builds the sandbox ("pause") image on first use.

use std::collections::HashMap;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, KillContainerOptions, ListContainersOptions,
    ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use bollard::Docker;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::api::core::{Container, Pod};

pub const LABEL_NODE: &str = "orkops.io/node";
pub const LABEL_POD_UID: &str = "orkops.io/pod-uid";
pub const LABEL_POD_NAME: &str = "orkops.io/pod-name";
pub const LABEL_POD_NAMESPACE: &str = "orkops.io/pod-namespace";
pub const LABEL_CONTAINER: &str = "orkops.io/container";
pub const LABEL_ATTEMPT: &str = "orkops.io/attempt";
pub const LABEL_PVC_UID: &str = "orkops.io/pvc-uid";
pub const LABEL_PVC: &str = "orkops.io/pvc";
/// On a sandbox of the orkops pod network: the pod's address.
pub const LABEL_POD_IP: &str = "orkops.io/pod-ip";
/// The `orkops.io/container` value of a pod's sandbox (container names are lower-case).
pub const SANDBOX: &str = "POD";
/// The sandbox image: one static binary that sleeps until killed, built by the agent.
pub const PAUSE_IMAGE: &str = "orkops/pause:1";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RuntimeError(pub String);

impl From<bollard::errors::Error> for RuntimeError {
    fn from(e: bollard::errors::Error) -> Self {
        RuntimeError(docker_message(&e))
    }
}

/// The engine's own message, without bollard's wrapping.
pub fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// What the engine says about one of our containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub id: String,
    pub pod_uid: String,
    pub pod_namespace: String,
    pub pod_name: String,
    /// The pod's container name, or `SANDBOX`.
    pub container: String,
    pub attempt: u32,
    pub state: RunState,
    pub exit_code: i64,
    /// Set when the engine could not start the process (bad command, port in use).
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub image: String,
    pub image_id: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Exited,
}

#[derive(Clone)]
pub struct Runtime {
    pub docker: Docker,
    pub node: String,
    pub version: String,
}

impl Runtime {
    /// Connects to the engine (DOCKER_HOST or the local socket) and agrees on an API version.
    pub async fn connect(node: &str) -> Result<Runtime, RuntimeError> {
        let hint = "hint: is the Docker engine running, and may this user use its socket?";
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError(format!("cannot reach the Docker engine: {e}\n{hint}")))?
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError(format!("cannot reach the Docker engine: {e}\n{hint}")))?;
        let version = docker
            .version()
            .await
            .map_err(|e| RuntimeError(format!("cannot reach the Docker engine: {e}\n{hint}")))?
            .version
            .unwrap_or_default();
        Ok(Runtime {
            docker,
            node: node.to_string(),
            version,
        })
    }

    pub fn labels_for(
        &self,
        uid: &str,
        ns: &str,
        pod: &str,
        container: &str,
    ) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_NODE.to_string(), self.node.clone()),
            (LABEL_POD_UID.to_string(), uid.to_string()),
            (LABEL_POD_NAMESPACE.to_string(), ns.to_string()),
            (LABEL_POD_NAME.to_string(), pod.to_string()),
            (LABEL_CONTAINER.to_string(), container.to_string()),
        ])
    }

    /// All containers of this node (optionally of one pod), running or not.
    pub async fn list(&self, pod_uid: Option<&str>) -> Result<Vec<Observed>, RuntimeError> {
        let mut label = vec![format!("{LABEL_NODE}={}", self.node)];
        if let Some(uid) = pod_uid {
            label.push(format!("{LABEL_POD_UID}={uid}"));
        }
        let summaries = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), label)])),
                ..Default::default()
            }))
            .await?;
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(id) = s.id else { continue };
            match self.inspect(&id).await {
                Ok(Some(o)) => out.push(o),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The host PID of a running container's first process.
    pub async fn pid(&self, id: &str) -> Result<i64, RuntimeError> {
        let c = self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await?;
        c.state
            .and_then(|s| s.pid)
            .filter(|p| *p > 0)
            .ok_or_else(|| RuntimeError(format!("container {id} has no running process")))
    }

    pub async fn inspect(&self, id: &str) -> Result<Option<Observed>, RuntimeError> {
        match self
            .docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => Ok(observed(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, RuntimeError> {
        let r = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.to_string()),
                    ..Default::default()
                }),
                body,
            )
            .await?;
        Ok(r.id)
    }

    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(Into::into)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let r = self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(grace.as_secs().min(i32::MAX as u64) as i32),
                    signal: None,
                }),
            )
            .await;
        // 304: already stopped
        done_unless_error(r, &[304])
    }

    pub async fn kill(&self, id: &str) -> Result<(), RuntimeError> {
        let r = self
            .docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: "SIGKILL".into(),
                }),
            )
            .await;
        // 409: not running
        done_unless_error(r, &[409])
    }

    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let r = self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await;
        // 409: removal already in progress
        done_unless_error(r, &[409])
    }

    pub async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The user an image's processes run as (`USER` of its Dockerfile; empty: root).
    pub async fn image_user(&self, image: &str) -> Result<String, RuntimeError> {
        let i = self.docker.inspect_image(image).await?;
        Ok(i.config.and_then(|c| c.user).unwrap_or_default())
    }

    /// Pulls `image` from its registry (with `credentials` when the pod has pull secrets for
    /// it); the engine's message when that fails.
    pub async fn pull(
        &self,
        image: &str,
        credentials: Option<DockerCredentials>,
    ) -> Result<(), RuntimeError> {
        let (repo, tag) = split_image(image);
        let mut s = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                ..Default::default()
            }),
            None,
            credentials,
        );
        while let Some(item) = s.next().await {
            item?;
        }
        Ok(())
    }

    /// Builds the sandbox image from a tiny static program that sleeps until it is killed.
    pub async fn ensure_pause_image(&self) -> Result<(), RuntimeError> {
        // agents sharing an engine may import it at the same moment: a failed import whose
        // image is there after all is fine, and a transient failure is tried again
        let mut last = None;
        for attempt in 0..3 {
            if self.image_present(PAUSE_IMAGE).await? {
                return Ok(());
            }
            match self.import_pause_image().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(attempt, error = %e.0, "importing the sandbox image failed");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if self.image_present(PAUSE_IMAGE).await? {
            return Ok(());
        }
        Err(last.expect("three attempts failed"))
    }

    async fn import_pause_image(&self) -> Result<(), RuntimeError> {
        let tar = pause_rootfs()
            .map_err(|e| RuntimeError(format!("cannot build the sandbox image: {e}")))?;
        let (repo, tag) = split_image(PAUSE_IMAGE);
        let mut s = self.docker.create_image(
            Some(CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.to_string()),
                tag: Some(tag.to_string()),
                changes: vec![r#"CMD ["/pause"]"#.to_string()],
                ..Default::default()
            }),
            Some(bollard::body_full(tar.into())),
            None,
        );
        while let Some(item) = s.next().await {
            item.map_err(|e| {
                RuntimeError(format!(
                    "cannot import the sandbox image: {}",
                    docker_message(&e)
                ))
            })?;
        }
        tracing::info!(image = PAUSE_IMAGE, "built the sandbox image");
        Ok(())
    }

    /// Creates a volume (idempotent) with our labels plus `labels`.
    pub async fn ensure_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        driver_opts: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let mut all = labels;
        all.insert(LABEL_NODE.into(), self.node.clone());
        self.docker
            .create_volume(bollard::models::VolumeCreateOptions {
                name: Some(name.to_string()),
                labels: Some(all),
                driver_opts: Some(driver_opts),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Volumes of this node carrying `label` (`key` or `key=value`): (name, labels).
    pub async fn volumes(
        &self,
        label: &str,
    ) -> Result<Vec<(String, HashMap<String, String>)>, RuntimeError> {
        let r = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("{LABEL_NODE}={}", self.node), label.to_string()],
                )])),
            }))
            .await?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect())
    }

    /// The last `lines` lines a container wrote (stdout and stderr).
    pub async fn logs_tail(&self, id: &str, lines: u32) -> Result<Vec<u8>, RuntimeError> {
        let mut s = self.docker.logs(
            id,
            Some(bollard::query_parameters::LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            }),
        );
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?.into_bytes());
        }
        Ok(out)
    }

    /// Where the engine keeps the files of volume `name` (the agent and the engine share the
    /// node's filesystem: subPath mounts bind a directory of it).
    pub async fn volume_mountpoint(&self, name: &str) -> Result<std::path::PathBuf, RuntimeError> {
        let v = self.docker.inspect_volume(name).await?;
        Ok(std::path::PathBuf::from(v.mountpoint))
    }

    pub async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let r = self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await;
        done_unless_error(r, &[])
    }
}

/// An engine answer for an operation whose goal may already hold: "no such object" (404) and
/// the given statuses (already stopped, not running, ...) count as done.
fn done_unless_error(
    r: Result<(), bollard::errors::Error>,
    already: &[u16],
) -> Result<(), RuntimeError> {
    match r {
        Err(bollard::errors::Error::DockerResponseServerError { status_code, .. })
            if status_code == 404 || already.contains(&status_code) =>
        {
            Ok(())
        }
        r => r.map_err(Into::into),
    }
}

/// `repo[:tag]` → (repo, tag), `latest` when no tag; a registry port is not a tag.
pub fn split_image(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

fn parse_time(s: Option<&String>) -> Option<DateTime<Utc>> {
    let s = s?;
    if s.starts_with("0001-") {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn observed(c: ContainerInspectResponse) -> Option<Observed> {
    let labels = c.config.as_ref()?.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let st = c.state.unwrap_or_default();
    use bollard::models::ContainerStateStatusEnum as S;
    let state = match st.status {
        Some(S::RUNNING | S::PAUSED | S::RESTARTING) => RunState::Running,
        Some(S::CREATED) | None | Some(S::EMPTY) => {
            if st.error.as_deref().is_some_and(|e| !e.is_empty()) {
                RunState::Exited
            } else {
                RunState::Created
            }
        }
        Some(S::EXITED | S::DEAD | S::REMOVING) => RunState::Exited,
    };
    let ns = c.network_settings.unwrap_or_default();
    let own_ip = labels.get(LABEL_POD_IP).filter(|i| !i.is_empty()).cloned();
    let ip = own_ip
        .or(ns.ip_address.filter(|i| !i.is_empty()))
        .or_else(|| {
            ns.networks
                .unwrap_or_default()
                .into_values()
                .filter_map(|n| n.ip_address)
                .find(|i| !i.is_empty())
        });
    Some(Observed {
        id: c.id?,
        pod_uid: label(LABEL_POD_UID),
        pod_namespace: label(LABEL_POD_NAMESPACE),
        pod_name: label(LABEL_POD_NAME),
        container: label(LABEL_CONTAINER),
        attempt: label(LABEL_ATTEMPT).parse().unwrap_or(0),
        state,
        exit_code: st.exit_code.unwrap_or(0),
        error: st.error.unwrap_or_default(),
        oom_killed: st.oom_killed.unwrap_or(false),
        started_at: parse_time(st.started_at.as_ref()),
        finished_at: parse_time(st.finished_at.as_ref()),
        image: c.config.and_then(|c| c.image).unwrap_or_default(),
        image_id: c.image.unwrap_or_default(),
        ip,
    })
}

/// A one-file root filesystem (tar) holding `/pause`: a static ELF program that blocks in a
/// system call forever (`pause(2)` on x86-64, `ppoll(2)` with no descriptors on arm64). As
/// PID 1 it ignores SIGTERM, so the agent stops sandboxes with SIGKILL.
fn pause_rootfs() -> std::io::Result<Vec<u8>> {
    let elf = pause_elf(std::env::consts::ARCH).ok_or_else(|| {
        std::io::Error::other(format!(
            "no sandbox program for the {} architecture",
            std::env::consts::ARCH
        ))
    })?;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(elf.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "pause", elf.as_slice())?;
    b.into_inner()
}

fn pause_elf(arch: &str) -> Option<Vec<u8>> {
    const BASE: u64 = 0x40_0000;
    const HEADERS: u64 = 64 + 56;
    let (machine, code): (u16, Vec<u8>) = match arch {
        // loop: mov eax, 34 (pause); syscall; jmp loop
        "x86_64" => (0x3e, vec![0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]),
        // loop: mov x0..x3, #0; mov x8, #73 (ppoll); svc #0; b loop
        "aarch64" => (
            0xb7,
            [
                0xd280_0000u32,
                0xd280_0001,
                0xd280_0002,
                0xd280_0003,
                0xd280_0928,
                0xd400_0001,
                0x17ff_fffa,
            ]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect(),
        ),
        _ => return None,
    };
    let size = HEADERS + code.len() as u64;
    let mut e = Vec::with_capacity(size as usize);
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&machine.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + HEADERS).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // program headers
    e.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    e.extend_from_slice(&0u64.to_le_bytes());
    e.extend_from_slice(&BASE.to_le_bytes());
    e.extend_from_slice(&BASE.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&size.to_le_bytes());
    e.extend_from_slice(&0x1000u64.to_le_bytes());
    e.extend_from_slice(&code);
    Some(e)
}

/// Host configuration pieces shared by app containers: join the sandbox's namespaces.
pub fn join_sandbox(sandbox_id: &str) -> HostConfig {
    HostConfig {
        network_mode: Some(format!("container:{sandbox_id}")),
        ipc_mode: Some(format!("container:{sandbox_id}")),
        ..Default::default()
    }
}

/// The registry an image comes from, as the keys of a docker config name it: the first path
/// part when it looks like a host (`reg.example.com/app`, `localhost:5000/app`), Docker Hub
/// otherwise.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// The credentials for `image` in a `.dockerconfigjson` (`{"auths": {...}}`) or `.dockercfg`
/// (the map itself) secret value; `None` when it has none for the image's registry.
pub fn credentials_for(image: &str, config: &[u8]) -> Option<DockerCredentials> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = v.get("auths").unwrap_or(&v).as_object()?;
    let registry = registry_of(image);
    let hub = registry == "docker.io";
    let (key, entry) = auths.iter().find(|(k, _)| {
        let host = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        host == registry || (hub && matches!(host, "index.docker.io" | "registry-1.docker.io"))
    })?;
    let text = |f: &str| entry.get(f).and_then(|x| x.as_str()).map(str::to_string);
    let (mut username, mut password) = (text("username"), text("password"));
    if let (None, Some(auth)) = (&username, text("auth")) {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        let (u, p) = pair.split_once(':')?;
        (username, password) = (Some(u.to_string()), Some(p.to_string()));
    }
    Some(DockerCredentials {
        username,
        password,
        serveraddress: Some(key.clone()),
        ..Default::default()
    })
}

/// The user, group and non-root demand that apply to container `c`: its own securityContext
/// first, the pod's otherwise.
struct Identity {
    user: Option<i64>,
    group: Option<i64>,
    non_root: bool,
}

fn identity(pod: &Pod, c: &Container) -> Identity {
    let ps = pod.spec.security_context.as_ref();
    let cs = c.security_context.as_ref();
    Identity {
        user: cs
            .and_then(|s| s.run_as_user)
            .or(ps.and_then(|s| s.run_as_user)),
        group: cs
            .and_then(|s| s.run_as_group)
            .or(ps.and_then(|s| s.run_as_group)),
        non_root: cs
            .and_then(|s| s.run_as_non_root)
            .or(ps.and_then(|s| s.run_as_non_root))
            .unwrap_or(false),
    }
}

/// The engine's `User` for container `c` ("uid", "uid:gid"), `None` to keep the image's;
/// `image_user` is the image's own USER (for a runAsGroup without a runAsUser).
pub fn user_of(pod: &Pod, c: &Container, image_user: &str) -> Option<String> {
    let id = identity(pod, c);
    match (id.user, id.group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => {
            let u = image_user.split(':').next().filter(|u| !u.is_empty());
            Some(format!("{}:{g}", u.unwrap_or("0")))
        }
        (None, None) => None,
    }
}

/// Why runAsNonRoot forbids starting container `c` (the kubelet's words), given the image's
/// USER; `None` when it may start.
pub fn non_root_violation(pod: &Pod, c: &Container, image_user: &str) -> Option<String> {
    let id = identity(pod, c);
    if !id.non_root {
        return None;
    }
    let who = format!(
        "pod: \"{}_{}({})\", container: {}",
        pod.metadata.name(),
        pod.metadata.namespace(),
        pod.metadata.uid.as_deref().unwrap_or(""),
        c.name
    );
    if let Some(u) = id.user {
        return (u == 0).then(|| format!("container's runAsUser breaks non-root policy ({who})"));
    }
    let user = image_user.split(':').next().unwrap_or("");
    match user.parse::<i64>() {
        Ok(0) => Some(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        Ok(_) => None,
        Err(_) if user.is_empty() => Some(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        Err(_) => Some(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root ({who})"
        )),
    }
}

/// Maps the pod's and the container's securityContext onto the engine's HostConfig: groups
/// (fsGroup, supplementalGroups), read-only root, privileged, no-new-privileges,
/// capabilities, seccomp (RuntimeDefault is the engine's default profile).
pub fn apply_security(host: &mut HostConfig, pod: &Pod, c: &Container) {
    let ps = pod.spec.security_context.as_ref();
    let cs = c.security_context.as_ref();
    let groups: Vec<String> = ps
        .into_iter()
        .flat_map(|s| s.fs_group.iter().chain(&s.supplemental_groups))
        .map(|g| g.to_string())
        .collect();
    if !groups.is_empty() {
        host.group_add = Some(groups);
    }
    let mut opts = Vec::new();
    if let Some(s) = cs {
        host.readonly_rootfs = s.read_only_root_filesystem;
        host.privileged = s.privileged;
        if s.allow_privilege_escalation == Some(false) {
            opts.push("no-new-privileges".to_string());
        }
        if let Some(caps) = &s.capabilities {
            let strip = |v: &Vec<String>| -> Vec<String> {
                v.iter()
                    .map(|n| n.strip_prefix("CAP_").unwrap_or(n).to_string())
                    .collect()
            };
            if !caps.add.is_empty() {
                host.cap_add = Some(strip(&caps.add));
            }
            if !caps.drop.is_empty() {
                host.cap_drop = Some(strip(&caps.drop));
            }
        }
    }
    let seccomp = cs
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(ps.and_then(|s| s.seccomp_profile.as_ref()));
    if seccomp.is_some_and(|p| p.type_ == "Unconfined") {
        opts.push("seccomp=unconfined".into());
    }
    let apparmor = cs
        .and_then(|s| s.app_armor_profile.as_ref())
        .or(ps.and_then(|s| s.app_armor_profile.as_ref()));
    match apparmor.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        Some(("Unconfined", _)) => opts.push("apparmor=unconfined".into()),
        Some(("Localhost", Some(name))) => opts.push(format!("apparmor={name}")),
        _ => {}
    }
    // SELinux labels: the engine applies them where SELinux is enabled, as CRI runtimes do
    let selinux = cs
        .and_then(|s| s.se_linux_options.as_ref())
        .or(ps.and_then(|s| s.se_linux_options.as_ref()));
    if let Some(l) = selinux {
        for (part, v) in [
            ("user", &l.user),
            ("role", &l.role),
            ("type", &l.type_),
            ("level", &l.level),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                opts.push(format!("label={part}:{v}"));
            }
        }
    }
    if !opts.is_empty() {
        host.security_opt = Some(opts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext};

    #[test]
    fn pull_secrets_give_the_credentials_of_the_image_registry() {
        assert_eq!(registry_of("busybox:1"), "docker.io");
        assert_eq!(registry_of("library/busybox"), "docker.io");
        assert_eq!(
            registry_of("reg.example.com/team/app:v1"),
            "reg.example.com"
        );
        assert_eq!(registry_of("localhost:5000/app"), "localhost:5000");
        let cfg = br#"{"auths": {"reg.example.com": {"auth": "dXNlcjpwYXNz"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "pw"}}}"#;
        let c = credentials_for("reg.example.com/app", cfg).unwrap();
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("pass"));
        assert_eq!(c.serveraddress.as_deref(), Some("reg.example.com"));
        let c = credentials_for("nginx", cfg).unwrap();
        assert_eq!(c.username.as_deref(), Some("hub"));
        assert!(credentials_for("other.example.com/app", cfg).is_none());
    }

    #[test]
    fn security_contexts_map_onto_the_host_config_container_first() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u1".into());
        pod.spec.security_context = Some(Box::new(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            fs_group: Some(2000),
            supplemental_groups: vec![4000],
            seccomp_profile: Some(SeccompProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }));
        let mut c = Container {
            name: "app".into(),
            security_context: Some(Box::new(SecurityContext {
                run_as_user: Some(1001),
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities {
                    add: vec!["CAP_NET_ADMIN".into()],
                    drop: vec!["ALL".into()],
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(user_of(&pod, &c, "").as_deref(), Some("1001:3000"));
        let mut host = HostConfig::default();
        apply_security(&mut host, &pod, &c);
        assert_eq!(host.group_add, Some(vec!["2000".into(), "4000".into()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".into()]));
        assert_eq!(host.cap_drop, Some(vec!["ALL".into()]));
        assert_eq!(
            host.security_opt,
            Some(vec![
                "no-new-privileges".into(),
                "seccomp=unconfined".into()
            ])
        );
        assert_eq!(non_root_violation(&pod, &c, ""), None);
        // runAsNonRoot against the image's user when no runAsUser says otherwise
        pod.spec.security_context = Some(Box::new(PodSecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        }));
        c.security_context = None;
        assert_eq!(user_of(&pod, &c, "nobody"), None);
        assert_eq!(
            non_root_violation(&pod, &c, "").as_deref(),
            Some("container has runAsNonRoot and image will run as root (pod: \"p_ns(u1)\", container: app)")
        );
        assert!(non_root_violation(&pod, &c, "nobody")
            .unwrap()
            .contains("image has non-numeric user (nobody), cannot verify user is non-root"));
        assert_eq!(non_root_violation(&pod, &c, "65534:65534"), None);
        c.security_context = Some(Box::new(SecurityContext {
            run_as_user: Some(0),
            ..Default::default()
        }));
        assert!(non_root_violation(&pod, &c, "65534")
            .unwrap()
            .starts_with("container's runAsUser breaks non-root policy"));
    }

    #[test]
    fn image_names_split_into_repo_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_image("orkops/busybox:1.35"),
            ("orkops/busybox", "1.35")
        );
        assert_eq!(split_image("reg:5000/app"), ("reg:5000/app", "latest"));
        assert_eq!(split_image("reg:5000/app:v2"), ("reg:5000/app", "v2"));
    }

    #[test]
    fn the_pause_program_runs_and_sleeps() {
        let elf =
            pause_elf(std::env::consts::ARCH).expect("this architecture has a sandbox program");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pause");
        std::fs::write(&p, elf).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&p).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().unwrap().is_none(),
            "it must still be sleeping"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
