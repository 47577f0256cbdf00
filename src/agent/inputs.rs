//! What a pod's containers take from the API and the node before they can start: volumes
//! (`emptyDir` as a per-pod Docker volume, ConfigMap/Secret/downward API/projected volumes as
//! files, PersistentVolumeClaims as the volume they are bound to: a Docker volume that outlives
//! the pod, or a node path), their mounts (`subPath`, `subPathExpr`, propagation, read-only
//! modes) and environment variables (values, references to ConfigMaps, Secrets, pod fields and
//! container resources, `envFrom`). A missing input is a typed failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bollard::models::{Mount, MountTypeEnum};
use serde_json::Value;

use super::downward::{self, Facts};
use super::runtime::{Runtime, LABEL_POD_UID, LABEL_PVC, LABEL_PVC_UID};
use crate::api::core::{ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret};
use crate::api::Kind;
use crate::client::ApiClient;

/// Why a container's inputs are not ready (Kubernetes' `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where a pod volume lives on this node: a Docker volume (its name and where the engine
/// keeps its files), or a directory.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Volume(String, PathBuf),
    Dir(PathBuf),
}

pub fn empty_dir_volume(uid: &str, name: &str) -> String {
    format!("orkops-empty-{uid}-{name}")
}

pub fn claim_volume(claim_uid: &str) -> String {
    format!("orkops-pvc-{claim_uid}")
}

pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

async fn get_obj(
    api: &ApiClient,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Result<Option<Value>, ConfigError> {
    match api.get(kind, Some(ns), name).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(ConfigError(format!("cannot read {kind} {ns}/{name}: {e}"))),
    }
}

async fn config_map(
    api: &ApiClient,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
    let Some(v) = get_obj(api, Kind::ConfigMap, ns, name).await? else {
        return Ok(None);
    };
    let cm: ConfigMap = serde_json::from_value(v)
        .map_err(|e| ConfigError(format!("configmap {ns}/{name}: {e}")))?;
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| ConfigError(format!("configmap {ns}/{name}: binaryData.{k}: {e}")))?;
        out.insert(k, bytes);
    }
    Ok(Some(out))
}

pub async fn secret(
    api: &ApiClient,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, ConfigError> {
    let Some(v) = get_obj(api, Kind::Secret, ns, name).await? else {
        return Ok(None);
    };
    let s: Secret =
        serde_json::from_value(v).map_err(|e| ConfigError(format!("secret {ns}/{name}: {e}")))?;
    s.data
        .into_iter()
        .map(|(k, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .map(|b| (k.clone(), b))
                .map_err(|e| ConfigError(format!("secret {ns}/{name}: data.{k}: {e}")))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// One file of a volume: its path inside the volume, its bytes and its mode.
pub type Entry = (String, Vec<u8>, u32);

/// The files of `data`: every key, or the `items` (a missing key is an error unless
/// `optional`, as the kubelet has it).
fn key_entries(
    data: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: u32,
    what: &str,
    optional: bool,
) -> Result<Vec<Entry>, ConfigError> {
    if items.is_empty() {
        return Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect());
    }
    let mut out = Vec::new();
    for i in items {
        match data.get(&i.key) {
            Some(bytes) => out.push((
                i.path.clone(),
                bytes.clone(),
                i.mode.map_or(default_mode, |m| m as u32),
            )),
            None if optional => {}
            None => return Err(ConfigError(format!("{what} has no key {:?}", i.key))),
        }
    }
    Ok(out)
}

/// The files of downward API items.
fn downward_entries(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
    facts: &Facts,
) -> Result<Vec<Entry>, ConfigError> {
    items
        .iter()
        .map(|it| {
            let value = match (&it.field_ref, &it.resource_field_ref) {
                (Some(f), _) => downward::field(pod, f, facts, true)?,
                (None, Some(r)) => downward::resource(pod, None, r, facts)?,
                (None, None) => String::new(),
            };
            Ok((
                it.path.clone(),
                value.into_bytes(),
                it.mode.map_or(default_mode, |m| m as u32),
            ))
        })
        .collect()
}

/// Writes `entries` as files into `dir`. `replace`: what was there goes first (a first write);
/// otherwise each file is replaced in place, through a rename, so that a container with the
/// directory mounted sees the new contents whole (a refresh of downward API files).
fn write_entries(
    dir: &Path,
    entries: &[Entry],
    what: &str,
    replace: bool,
) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| {
        ConfigError(format!(
            "cannot write the files of {what} into {}: {e}",
            dir.display()
        ))
    };
    if replace && dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    for (rel, bytes, mode) in entries {
        if rel.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(ConfigError(format!(
                "{what}: item path {rel:?} must be relative without '..'"
            )));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let tmp = path.with_file_name(format!(
            ".{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    Ok(())
}

fn volume_dir(data_dir: &Path, uid: &str, name: &str) -> PathBuf {
    pod_dir(data_dir, uid).join("volumes").join(name)
}

/// The files of a projected volume: each source's, in order.
async fn projected_entries(
    api: &ApiClient,
    pod: &Pod,
    p: &crate::api::core::ProjectedVolumeSource,
    facts: &Facts,
) -> Result<Vec<Entry>, ConfigError> {
    let ns = pod.metadata.namespace();
    let mode = p.default_mode.unwrap_or(0o644) as u32;
    let mut out = Vec::new();
    for s in &p.sources {
        if let Some(c) = &s.config_map {
            let what = format!("configmap {ns}/{}", c.name);
            let optional = c.optional == Some(true);
            match config_map(api, ns, &c.name).await? {
                Some(d) => out.extend(key_entries(&d, &c.items, mode, &what, optional)?),
                None if optional => {}
                None => return Err(ConfigError(format!("configmap {:?} not found", c.name))),
            }
        }
        if let Some(c) = &s.secret {
            let what = format!("secret {ns}/{}", c.name);
            let optional = c.optional == Some(true);
            match secret(api, ns, &c.name).await? {
                Some(d) => out.extend(key_entries(&d, &c.items, mode, &what, optional)?),
                None if optional => {}
                None => return Err(ConfigError(format!("secret {:?} not found", c.name))),
            }
        }
        if let Some(d) = &s.downward_api {
            out.extend(downward_entries(pod, &d.items, mode, facts)?);
        }
        if s.service_account_token.is_some() || s.cluster_trust_bundle.is_some() {
            return Err(ConfigError(
                "projected serviceAccountToken and clusterTrustBundle sources are not served (the API server refuses them)".into(),
            ));
        }
    }
    Ok(out)
}

/// Writes the downward API files of the pod's volumes again (its labels or annotations
/// changed), in place, as the kubelet keeps them current. Projected volumes with downward API
/// items are written whole again.
pub async fn refresh_downward(
    api: &ApiClient,
    data_dir: &Path,
    pod: &Pod,
    facts: &Facts,
) -> Result<(), ConfigError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for v in &pod.spec.volumes {
        let dir = volume_dir(data_dir, &uid, &v.name);
        if let Some(d) = &v.downward_api {
            let mode = d.default_mode.unwrap_or(0o644) as u32;
            let entries = downward_entries(pod, &d.items, mode, facts)?;
            write_entries(&dir, &entries, "a downwardAPI volume", false)?;
        }
        if let Some(p) = v
            .projected
            .as_ref()
            .filter(|p| p.sources.iter().any(|s| s.downward_api.is_some()))
        {
            let entries = projected_entries(api, pod, p, facts).await?;
            write_entries(&dir, &entries, "a projected volume", false)?;
        }
    }
    Ok(())
}

/// Makes every volume of `pod` exist on this node; returns where each one lives.
pub async fn prepare_volumes(
    api: &ApiClient,
    rt: &Runtime,
    data_dir: &Path,
    pod: &Pod,
    facts: &Facts,
) -> Result<BTreeMap<String, Source>, ConfigError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod.metadata.namespace().to_string();
    let mut out = BTreeMap::new();
    let docker = |e: super::runtime::RuntimeError| ConfigError(e.0);
    for v in &pod.spec.volumes {
        let src = if let Some(ed) = &v.empty_dir {
            let name = empty_dir_volume(&uid, &v.name);
            let mut opts = HashMap::new();
            if ed.medium.as_deref() == Some("Memory") {
                opts.insert("type".to_string(), "tmpfs".to_string());
                opts.insert("device".to_string(), "tmpfs".to_string());
                if let Some(limit) = &ed.size_limit {
                    if let Ok(m) = limit.millis() {
                        opts.insert("o".to_string(), format!("size={}", m / 1000));
                    }
                }
            }
            rt.ensure_volume(
                &name,
                HashMap::from([(LABEL_POD_UID.to_string(), uid.clone())]),
                opts,
            )
            .await
            .map_err(docker)?;
            Source::Volume(
                name.clone(),
                rt.volume_mountpoint(&name).await.map_err(docker)?,
            )
        } else if let Some(cm) = &v.config_map {
            let dir = volume_dir(data_dir, &uid, &v.name);
            let what = format!("configmap {ns}/{}", cm.name);
            let mode = cm.default_mode.unwrap_or(0o644) as u32;
            match config_map(api, &ns, &cm.name).await? {
                Some(data) => write_entries(
                    &dir,
                    &key_entries(&data, &cm.items, mode, &what, cm.optional == Some(true))?,
                    &what,
                    true,
                )?,
                None if cm.optional == Some(true) => {
                    write_entries(&dir, &[], "an optional configmap", true)?
                }
                None => {
                    return Err(ConfigError(format!(
                        "configmap {:?} not found (volume {:?})",
                        cm.name, v.name
                    )))
                }
            }
            Source::Dir(dir)
        } else if let Some(s) = &v.secret {
            let dir = volume_dir(data_dir, &uid, &v.name);
            let what = format!("secret {ns}/{}", s.secret_name);
            let mode = s.default_mode.unwrap_or(0o644) as u32;
            match secret(api, &ns, &s.secret_name).await? {
                Some(data) => write_entries(
                    &dir,
                    &key_entries(&data, &s.items, mode, &what, s.optional == Some(true))?,
                    &what,
                    true,
                )?,
                None if s.optional == Some(true) => {
                    write_entries(&dir, &[], "an optional secret", true)?
                }
                None => {
                    return Err(ConfigError(format!(
                        "secret {:?} not found (volume {:?})",
                        s.secret_name, v.name
                    )))
                }
            }
            Source::Dir(dir)
        } else if let Some(c) = &v.persistent_volume_claim {
            claim_source(api, rt, &ns, &c.claim_name, &v.name).await?
        } else if let Some(h) = &v.host_path {
            check_host_path(&h.path, h.type_.as_deref().unwrap_or("")).map_err(|m| {
                ConfigError(format!(
                    "MountVolume.SetUp failed for volume {:?} : hostPath type check failed: {m}",
                    v.name
                ))
            })?;
            Source::Dir(PathBuf::from(&h.path))
        } else if let Some(d) = &v.downward_api {
            let dir = volume_dir(data_dir, &uid, &v.name);
            let mode = d.default_mode.unwrap_or(0o644) as u32;
            let entries = downward_entries(pod, &d.items, mode, facts)?;
            write_entries(&dir, &entries, "a downwardAPI volume", true)?;
            Source::Dir(dir)
        } else if let Some(p) = &v.projected {
            let dir = volume_dir(data_dir, &uid, &v.name);
            let entries = projected_entries(api, pod, p, facts).await?;
            write_entries(
                &dir,
                &entries,
                &format!("projected volume {:?}", v.name),
                true,
            )?;
            Source::Dir(dir)
        } else {
            return Err(ConfigError(format!("volume {:?} has no source", v.name)));
        };
        out.insert(v.name.clone(), src);
    }
    Ok(out)
}

/// Where the volume of claim `claim` lives on this node: the source of the PersistentVolume it
/// is bound to (a Docker volume of `orkops.io/local`, a hostPath or a local path), or, for a
/// claim of the `orkops.io/local` class not bound yet (a pod placed on this node directly), the
/// Docker volume that class makes for it. Claims of other classes wait for their binding.
async fn claim_source(
    api: &ApiClient,
    rt: &Runtime,
    ns: &str,
    claim: &str,
    volume: &str,
) -> Result<Source, ConfigError> {
    use crate::api::storage::{PersistentVolume, StorageClass, LOCAL_PROVISIONER};
    let Some(c) = get_obj(api, Kind::PersistentVolumeClaim, ns, claim).await? else {
        return Err(ConfigError(format!(
            "persistentvolumeclaim {claim:?} not found (volume {volume:?}); create the claim first"
        )));
    };
    let c: crate::api::core::PersistentVolumeClaim = serde_json::from_value(c)
        .map_err(|e| ConfigError(format!("persistentvolumeclaim {ns}/{claim}: {e}")))?;
    let claim_uid = c.metadata.uid.clone().unwrap_or_default();
    let docker_volume = |name: String| {
        let uid = claim_uid.clone();
        async move {
            rt.ensure_volume(
                &name,
                HashMap::from([
                    (LABEL_PVC_UID.to_string(), uid),
                    (LABEL_PVC.to_string(), format!("{ns}.{claim}")),
                ]),
                HashMap::new(),
            )
            .await
            .map_err(|e| ConfigError(e.0))?;
            let dir = rt
                .volume_mountpoint(&name)
                .await
                .map_err(|e| ConfigError(e.0))?;
            Ok::<_, ConfigError>(Source::Volume(name, dir))
        }
    };
    let Some(pv_name) = c.spec.volume() else {
        let class = match c.spec.storage_class_name.as_deref() {
            // a claim made before classes were: orkops' own volume, as then
            None => return docker_volume(claim_volume(&claim_uid)).await,
            Some("") => None,
            Some(n) => get_obj(api, Kind::StorageClass, "", n).await?,
        };
        let local = class
            .and_then(|v| serde_json::from_value::<StorageClass>(v).ok())
            .is_some_and(|sc| sc.provisioner == LOCAL_PROVISIONER);
        if local {
            return docker_volume(claim_volume(&claim_uid)).await;
        }
        return Err(ConfigError(format!(
            "persistentvolumeclaim {claim:?} is not bound to a PersistentVolume yet (volume {volume:?})"
        )));
    };
    let Some(pv) = get_obj(api, Kind::PersistentVolume, "", pv_name).await? else {
        return Err(ConfigError(format!(
            "persistentvolume {pv_name:?} of claim {claim:?} not found"
        )));
    };
    let pv: PersistentVolume = serde_json::from_value(pv)
        .map_err(|e| ConfigError(format!("persistentvolume {pv_name}: {e}")))?;
    let mount_failed = |m: String| {
        ConfigError(format!(
            "MountVolume.SetUp failed for volume {pv_name:?} : {m}"
        ))
    };
    let s = &pv.spec;
    if let Some(csi) = s.csi.as_ref().filter(|c| c.driver == LOCAL_PROVISIONER) {
        return docker_volume(csi.volume_handle.clone()).await;
    }
    if let Some(h) = &s.host_path {
        check_host_path(&h.path, h.type_.as_deref().unwrap_or(""))
            .map_err(|m| mount_failed(format!("hostPath type check failed: {m}")))?;
        return Ok(Source::Dir(PathBuf::from(&h.path)));
    }
    if let Some(l) = &s.local {
        if !Path::new(&l.path).exists() {
            return Err(mount_failed(format!("path {:?} does not exist", l.path)));
        }
        return Ok(Source::Dir(PathBuf::from(&l.path)));
    }
    Err(mount_failed(
        "the volume has no source this node can mount".into(),
    ))
}

/// A hostPath's `type`, checked (and for the `...OrCreate` types made) as the kubelet does.
pub fn check_host_path(path: &str, type_: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let is = |f: fn(&std::fs::FileType) -> bool| meta.as_ref().is_ok_and(|m| f(&m.file_type()));
    let (ok, what) = match type_ {
        "" => return Ok(()),
        "DirectoryOrCreate" if meta.is_err() => {
            return std::fs::create_dir_all(p).map_err(|e| format!("cannot create {path}: {e}"))
        }
        "FileOrCreate" if meta.is_err() => {
            return std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(drop)
                .map_err(|e| format!("cannot create {path}: {e}"))
        }
        "Directory" | "DirectoryOrCreate" => (is(std::fs::FileType::is_dir), "a directory"),
        "File" | "FileOrCreate" => (is(std::fs::FileType::is_file), "a file"),
        "Socket" => (is(std::fs::FileType::is_socket), "a socket file"),
        "CharDevice" => (is(std::fs::FileType::is_char_device), "a character device"),
        "BlockDevice" => (is(std::fs::FileType::is_block_device), "a block device"),
        t => return Err(format!("unknown hostPath type {t:?}")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{path} is not {what}"))
    }
}

/// What the engine can do with mounts: read-only binds made recursive (Docker 25 and later,
/// API 1.44: `ReadOnlyForceRecursive` / `ReadOnlyNonRecursive`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineMounts {
    pub recursive_read_only: bool,
}

impl EngineMounts {
    /// From the engine's version (`20.10.24`, `27.1.1`).
    pub fn of_version(version: &str) -> EngineMounts {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        EngineMounts {
            recursive_read_only: major >= 25,
        }
    }
}

/// `dir` joined with the sub path `sub`, made if missing (as the kubelet does for subPath), and
/// checked to stay inside `dir` after symlinks are followed (a container could have made
/// `sub` a link to anywhere on the node).
fn sub_path_in(dir: &Path, sub: &str, c: &Container, vol: &str) -> Result<PathBuf, ConfigError> {
    let fail = |why: String| {
        ConfigError(format!(
            "container {:?}: subPath {sub:?} of volume {vol:?}: {why}",
            c.name
        ))
    };
    if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
        return Err(fail("must be a relative path without '..'".into()));
    }
    let path = dir.join(sub);
    if std::fs::symlink_metadata(&path).is_err() {
        std::fs::create_dir_all(&path).map_err(|e| fail(format!("cannot create it: {e}")))?;
    }
    let root = std::fs::canonicalize(dir).map_err(|e| fail(e.to_string()))?;
    let real = std::fs::canonicalize(&path).map_err(|e| fail(e.to_string()))?;
    if !real.starts_with(&root) {
        return Err(fail(format!(
            "it resolves to {}, outside the volume",
            real.display()
        )));
    }
    Ok(real)
}

/// The Docker mounts of one container; `env` expands `subPathExpr`.
pub fn mounts(
    pod: &Pod,
    c: &Container,
    sources: &BTreeMap<String, Source>,
    env: &[(String, String)],
    engine: EngineMounts,
) -> Result<Vec<Mount>, ConfigError> {
    use bollard::models::{MountBindOptions, MountBindOptionsPropagationEnum as Prop};
    let mut out = Vec::new();
    for m in &c.volume_mounts {
        let src = sources.get(&m.name).ok_or_else(|| {
            ConfigError(format!(
                "container {:?} mounts volume {:?}, which the pod does not define",
                c.name, m.name
            ))
        })?;
        let vol = pod.spec.volumes.iter().find(|v| v.name == m.name);
        let forced_ro = vol.is_some_and(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
                || v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|p| p.read_only == Some(true))
        });
        let read_only = forced_ro || m.read_only == Some(true);
        let sub = match m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            Some(x) => Some(expand(x, env)),
            None => m.sub_path.clone().filter(|s| !s.is_empty()),
        };
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => Some(Prop::RSLAVE),
            Some("Bidirectional") => Some(Prop::RSHARED),
            _ => None,
        };
        let rro = m.recursive_read_only.as_deref();
        if rro == Some("Enabled") && !engine.recursive_read_only {
            return Err(ConfigError(format!(
                "container {:?}: volume mount {:?} requested recursive read-only mode, but it is not supported by the runtime (Docker 25 or later)",
                c.name, m.name
            )));
        }
        let (typ, source) = match (src, &sub) {
            (Source::Dir(d), Some(s)) => (MountTypeEnum::BIND, sub_path_in(d, s, c, &m.name)?),
            (Source::Dir(d), None) => (MountTypeEnum::BIND, d.clone()),
            (Source::Volume(_, dir), Some(s)) => {
                (MountTypeEnum::BIND, sub_path_in(dir, s, c, &m.name)?)
            }
            (Source::Volume(_, dir), None) if propagation.is_some() => {
                (MountTypeEnum::BIND, dir.clone())
            }
            (Source::Volume(v, _), None) => (MountTypeEnum::VOLUME, PathBuf::from(v)),
        };
        let bind = typ == MountTypeEnum::BIND;
        let bind_options = bind.then(|| MountBindOptions {
            propagation,
            // Kubernetes' default read-only mount is not recursive; Enabled asks for it
            read_only_non_recursive: (read_only
                && engine.recursive_read_only
                && rro.is_none_or(|r| r == "Disabled"))
            .then_some(true),
            read_only_force_recursive: (read_only && rro == Some("Enabled")).then_some(true),
            ..Default::default()
        });
        out.push(Mount {
            target: Some(m.mount_path.clone()),
            source: Some(source.display().to_string()),
            typ: Some(typ),
            read_only: Some(read_only),
            bind_options,
            ..Default::default()
        });
    }
    Ok(out)
}

/// The environment of container `c` as `NAME=value` strings, in the order Kubernetes gives:
/// `envFrom` sources first, then `env` (later entries win).
pub async fn environment(
    api: &ApiClient,
    pod: &Pod,
    c: &Container,
    facts: &Facts,
) -> Result<Vec<String>, ConfigError> {
    let ns = pod.metadata.namespace();
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |k: String, v: String, vars: &mut Vec<(String, String)>| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for from in &c.env_from {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, what, optional) = if let Some(r) = &from.config_map_ref {
            (
                config_map(api, ns, &r.name).await?,
                format!("configmap {:?}", r.name),
                r.optional == Some(true),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                secret(api, ns, &r.name).await?,
                format!("secret {:?}", r.name),
                r.optional == Some(true),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                        &mut vars,
                    );
                }
            }
            None if optional => {}
            None => {
                return Err(ConfigError(format!(
                    "{what} not found (envFrom of container {:?})",
                    c.name
                )))
            }
        }
    }
    for e in &c.env {
        let value = match (&e.value, &e.value_from) {
            (_, Some(src)) => {
                let (data, key, what, optional) = if let Some(r) = &src.config_map_key_ref {
                    (
                        config_map(api, ns, &r.name).await?,
                        &r.key,
                        format!("configmap {:?}", r.name),
                        r.optional == Some(true),
                    )
                } else if let Some(r) = &src.secret_key_ref {
                    (
                        secret(api, ns, &r.name).await?,
                        &r.key,
                        format!("secret {:?}", r.name),
                        r.optional == Some(true),
                    )
                } else if let Some(f) = &src.field_ref {
                    set(
                        e.name.clone(),
                        downward::field(pod, f, facts, false)?,
                        &mut vars,
                    );
                    continue;
                } else if let Some(r) = &src.resource_field_ref {
                    let value = downward::resource(pod, Some(c), r, facts)?;
                    set(e.name.clone(), value, &mut vars);
                    continue;
                } else {
                    continue;
                };
                match data.as_ref().and_then(|d| d.get(key)) {
                    Some(v) => String::from_utf8_lossy(v).into_owned(),
                    None if optional => continue,
                    None if data.is_none() => {
                        return Err(ConfigError(format!(
                            "{what} not found (env {:?} of container {:?})",
                            e.name, c.name
                        )))
                    }
                    None => {
                        return Err(ConfigError(format!(
                            "{what} has no key {key:?} (env {:?} of container {:?})",
                            e.name, c.name
                        )))
                    }
                }
            }
            (Some(v), None) => expand(v, &vars),
            (None, None) => String::new(),
        };
        set(e.name.clone(), value, &mut vars);
    }
    Ok(vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Kubernetes' `$(VAR)` references: replaced by the variable's value when it is defined (in
/// `vars`, later entries win), kept as written otherwise; `$$` is a literal `$`.
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Removes what a pod's volumes left on this node, except claims (they outlive the pod).
pub async fn cleanup(rt: &Runtime, data_dir: &Path, uid: &str) -> Result<(), String> {
    for (name, _) in rt
        .volumes(&format!("{LABEL_POD_UID}={uid}"))
        .await
        .map_err(|e| e.0)?
    {
        rt.remove_volume(&name).await.map_err(|e| e.0)?;
    }
    let dir = pod_dir(data_dir, uid);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_host_path, expand};

    #[test]
    fn host_path_types_are_checked_and_made_as_the_kubelet_does() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("made");
        let dir = dir.to_str().unwrap();
        assert_eq!(
            check_host_path(dir, "Directory"),
            Err(format!("{dir} is not a directory"))
        );
        check_host_path(dir, "DirectoryOrCreate").unwrap();
        check_host_path(dir, "Directory").unwrap();
        assert_eq!(
            check_host_path(dir, "File"),
            Err(format!("{dir} is not a file"))
        );
        let file = format!("{dir}/f");
        check_host_path(&file, "FileOrCreate").unwrap();
        check_host_path(&file, "File").unwrap();
        assert!(check_host_path(&file, "Socket").is_err());
        check_host_path("/nowhere/at/all", "").unwrap();
    }

    #[test]
    fn variable_references_expand_like_kubernetes() {
        let vars = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x".to_string()),
        ];
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x");
        assert_eq!(expand("$(MISSING) stays", &vars), "$(MISSING) stays");
        assert_eq!(
            expand("$$(A) is escaped, $ alone too", &vars),
            "$(A) is escaped, $ alone too"
        );
        assert_eq!(expand("no refs", &vars), "no refs");
    }
}
