//! What a pod's containers take from the API and the node before they can start: volumes
//! (`emptyDir` as a per-pod Docker volume, ConfigMap/Secret as files, PersistentVolumeClaims
//! as the volume they are bound to: a Docker volume that outlives the pod, or a node path) and environment variables (values, references
//! to ConfigMaps, Secrets and pod fields, `envFrom`). A missing input is a typed failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bollard::models::{Mount, MountTypeEnum};
use serde_json::Value;

use super::runtime::{Runtime, LABEL_POD_UID, LABEL_PVC, LABEL_PVC_UID};
use crate::api::core::{ConfigMap, Container, KeyToPath, Pod, Secret};
use crate::api::Kind;
use crate::client::ApiClient;

/// Why a container's inputs are not ready (Kubernetes' `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where a pod volume lives on this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Volume(String),
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

/// Writes `data` (all keys, or `items`) as files into `dir`, replacing what was there.
fn write_files(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: u32,
    what: &str,
) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| {
        ConfigError(format!(
            "cannot write the files of {what} into {}: {e}",
            dir.display()
        ))
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let entries: Vec<(String, String, u32)> = if items.is_empty() {
        data.keys()
            .map(|k| (k.clone(), k.clone(), default_mode))
            .collect()
    } else {
        items
            .iter()
            .map(|i| {
                (
                    i.key.clone(),
                    i.path.clone(),
                    i.mode.map_or(default_mode, |m| m as u32),
                )
            })
            .collect()
    };
    for (key, rel, mode) in entries {
        let bytes = data
            .get(&key)
            .ok_or_else(|| ConfigError(format!("{what} has no key {key:?}")))?;
        if rel.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(ConfigError(format!(
                "{what}: item path {rel:?} must be relative without '..'"
            )));
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, bytes).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))
            .map_err(io)?;
    }
    Ok(())
}

/// Makes every volume of `pod` exist on this node; returns where each one lives.
pub async fn prepare_volumes(
    api: &ApiClient,
    rt: &Runtime,
    data_dir: &Path,
    pod: &Pod,
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
            Source::Volume(name)
        } else if let Some(cm) = &v.config_map {
            let dir = pod_dir(data_dir, &uid).join("volumes").join(&v.name);
            match config_map(api, &ns, &cm.name).await? {
                Some(data) => write_files(
                    &dir,
                    &data,
                    &cm.items,
                    cm.default_mode.unwrap_or(0o644) as u32,
                    &format!("configmap {ns}/{}", cm.name),
                )?,
                None if cm.optional == Some(true) => {
                    write_files(&dir, &BTreeMap::new(), &[], 0o644, "an optional configmap")?
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
            let dir = pod_dir(data_dir, &uid).join("volumes").join(&v.name);
            match secret(api, &ns, &s.secret_name).await? {
                Some(data) => write_files(
                    &dir,
                    &data,
                    &s.items,
                    s.default_mode.unwrap_or(0o644) as u32,
                    &format!("secret {ns}/{}", s.secret_name),
                )?,
                None if s.optional == Some(true) => {
                    write_files(&dir, &BTreeMap::new(), &[], 0o644, "an optional secret")?
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
            Ok::<_, ConfigError>(Source::Volume(name))
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

/// The Docker mounts of one container.
pub fn mounts(
    pod: &Pod,
    c: &Container,
    sources: &BTreeMap<String, Source>,
) -> Result<Vec<Mount>, ConfigError> {
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
                || v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|p| p.read_only == Some(true))
        });
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let (typ, source) = match (src, sub) {
            (Source::Dir(d), Some(s)) => (MountTypeEnum::BIND, d.join(s).display().to_string()),
            (Source::Dir(d), None) => (MountTypeEnum::BIND, d.display().to_string()),
            (Source::Volume(_), Some(_)) => {
                return Err(ConfigError(format!(
                    "container {:?}: subPath on volume {:?} is not supported for emptyDir and persistentVolumeClaim volumes",
                    c.name, m.name
                )))
            }
            (Source::Volume(v), None) => (MountTypeEnum::VOLUME, v.clone()),
        };
        out.push(Mount {
            target: Some(m.mount_path.clone()),
            source: Some(source),
            typ: Some(typ),
            read_only: Some(forced_ro || m.read_only == Some(true)),
            ..Default::default()
        });
    }
    Ok(out)
}

fn field(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, ConfigError> {
    let m = &pod.metadata;
    Ok(match path {
        "metadata.name" => m.name().to_string(),
        "metadata.namespace" => m.namespace().to_string(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => pod.spec.node_name.clone().unwrap_or_default(),
        "status.podIP" => pod_ip.to_string(),
        "status.hostIP" => host_ip.to_string(),
        p => {
            let label = p
                .strip_prefix("metadata.labels['")
                .and_then(|r| r.strip_suffix("']"))
                .map(|k| m.labels.get(k).cloned().unwrap_or_default());
            let annotation = p
                .strip_prefix("metadata.annotations['")
                .and_then(|r| r.strip_suffix("']"))
                .map(|k| m.annotations.get(k).cloned().unwrap_or_default());
            return label.or(annotation).ok_or_else(|| {
                ConfigError(format!(
                    "fieldRef {p:?} is not supported (metadata.name, metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'], spec.nodeName, status.podIP, status.hostIP)"
                ))
            });
        }
    })
}

/// The environment of container `c` as `NAME=value` strings, in the order Kubernetes gives:
/// `envFrom` sources first, then `env` (later entries win).
pub async fn environment(
    api: &ApiClient,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
    host_ip: &str,
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
                        field(pod, &f.field_path, pod_ip, host_ip)?,
                        &mut vars,
                    );
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
