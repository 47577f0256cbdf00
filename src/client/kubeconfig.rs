//! kubeconfig entries for orkops clusters, as kops writes them: a cluster (server and CA), a
//! user `NAME-admin` (the admin token) and a context `NAME` joining them, merged into the
//! first file of `$KUBECONFIG` (else `~/.kube/config`) and made the current context. Every
//! other entry of the file, and every field orkops does not write, is kept as it was; the file
//! is written with mode 0600 (it holds the token).

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::config::ClientConfig;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("no kubeconfig location: HOME and KUBECONFIG are unset; hint: pass --kubeconfig FILE")]
    NoLocation,
    #[error("{path}: {message}; hint: fix or move the file, then run the command again")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where kubectl reads its configuration: `flag`, else the first file of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn location(flag: Option<&Path>) -> Result<PathBuf, KubeconfigError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()) {
            return Ok(first);
        }
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kube").join("config"))
        .ok_or(KubeconfigError::NoLocation)
}

/// The name of the user entry of cluster `name`.
pub fn user_name(name: &str) -> String {
    format!("{name}-admin")
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

/// The named list `field` (`clusters`, `users`, `contexts`) of the document, made if missing.
fn named_list<'a>(doc: &'a mut Mapping, field: &str) -> &'a mut Vec<Value> {
    let v = doc
        .entry(key(field))
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !v.is_sequence() {
        *v = Value::Sequence(Vec::new());
    }
    match v {
        Value::Sequence(s) => s,
        _ => unreachable!("made a sequence above"),
    }
}

fn entry_name(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// Sets the entry `name` of the list `field` to `{name, <inner>: body}`.
fn upsert(doc: &mut Mapping, field: &str, inner: &str, name: &str, body: Mapping) {
    let list = named_list(doc, field);
    let mut entry = Mapping::new();
    entry.insert(key("name"), key(name));
    entry.insert(key(inner), Value::Mapping(body));
    match list.iter_mut().find(|e| entry_name(e) == Some(name)) {
        Some(e) => *e = Value::Mapping(entry),
        None => list.push(Value::Mapping(entry)),
    }
}

/// Merges cluster `name`'s entries (from its admin client config) into `doc` and makes its
/// context the current one.
pub fn merge(doc: &mut Mapping, name: &str, cfg: &ClientConfig) {
    doc.entry(key("apiVersion")).or_insert_with(|| key("v1"));
    doc.entry(key("kind")).or_insert_with(|| key("Config"));
    let mut cluster = Mapping::new();
    cluster.insert(
        key("server"),
        key(cfg.endpoints.first().map(String::as_str).unwrap_or("")),
    );
    cluster.insert(
        key("certificate-authority-data"),
        key(&cfg.certificate_authority_data),
    );
    upsert(doc, "clusters", "cluster", name, cluster);
    let mut user = Mapping::new();
    user.insert(key("token"), key(&cfg.token));
    upsert(doc, "users", "user", &user_name(name), user);
    let mut context = Mapping::new();
    context.insert(key("cluster"), key(name));
    context.insert(key("user"), key(&user_name(name)));
    if let Some(ns) = &cfg.namespace {
        context.insert(key("namespace"), key(ns));
    }
    upsert(doc, "contexts", "context", name, context);
    doc.insert(key("current-context"), key(name));
}

/// Removes cluster `name`'s entries from `doc`, and the current context if it was that one.
/// Says whether anything was removed.
pub fn remove(doc: &mut Mapping, name: &str) -> bool {
    let mut removed = false;
    let user = user_name(name);
    for (field, entry) in [("clusters", name), ("users", &user), ("contexts", name)] {
        if let Some(Value::Sequence(list)) = doc.get_mut(key(field)) {
            let before = list.len();
            list.retain(|e| entry_name(e) != Some(entry));
            removed |= list.len() != before;
        }
    }
    if doc.get("current-context").and_then(Value::as_str) == Some(name) {
        doc.remove("current-context");
        removed = true;
    }
    removed
}

fn read(path: &Path) -> Result<Mapping, KubeconfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Mapping::new()),
        Err(source) => {
            return Err(KubeconfigError::Io {
                path: path.into(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(KubeconfigError::Invalid {
            path: path.into(),
            message: "not a kubeconfig: the document is not a mapping".into(),
        }),
        Err(e) => Err(KubeconfigError::Invalid {
            path: path.into(),
            message: format!("not YAML: {e}"),
        }),
    }
}

fn write(path: &Path, doc: &Mapping) -> Result<(), KubeconfigError> {
    let io = |source| KubeconfigError::Io {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let text = serde_yaml_ng::to_string(doc).map_err(|e| KubeconfigError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })?;
    crate::pki::write_private(path, text.as_bytes()).map_err(|e| KubeconfigError::Invalid {
        path: path.into(),
        message: e.to_string(),
    })?;
    // a stale temporary file keeps its mode through the rename: make it 0600 in every case
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)
}

/// Merges cluster `name` into the kubeconfig at `path` (see `merge`).
pub fn save(path: &Path, name: &str, cfg: &ClientConfig) -> Result<(), KubeconfigError> {
    let mut doc = read(path)?;
    merge(&mut doc, name, cfg);
    write(path, &doc)
}

/// Removes cluster `name` from the kubeconfig at `path` (see `remove`); a missing file or
/// entry is fine. Says whether anything was removed.
pub fn delete(path: &Path, name: &str) -> Result<bool, KubeconfigError> {
    if !path.exists() {
        return Ok(false);
    }
    let mut doc = read(path)?;
    if !remove(&mut doc, name) {
        return Ok(false);
    }
    write(path, &doc)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OTHER: &str = "apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: other
  cluster: {server: 'https://other:6443', insecure-skip-tls-verify: true}
users:
- name: other-user
  user: {token: abc}
contexts:
- name: other
  context: {cluster: other, user: other-user, namespace: dev}
current-context: other
";

    fn cfg(server: &str) -> ClientConfig {
        ClientConfig::new(Some("c1"), vec![server.into()], "PEM", "tok")
    }

    #[test]
    fn merge_and_remove_keep_every_other_entry() {
        let mut doc: Mapping = serde_yaml_ng::from_str(OTHER).unwrap();
        let original = doc.clone();
        merge(&mut doc, "c1", &cfg("https://a:6443"));
        merge(&mut doc, "c1", &cfg("https://b:6443"));
        assert_eq!(doc["current-context"], key("c1"));
        let clusters = doc["clusters"].as_sequence().unwrap();
        assert_eq!(clusters.len(), 2, "the second merge replaces the first");
        assert_eq!(clusters[1]["cluster"]["server"], key("https://b:6443"));
        assert_eq!(doc["users"][1]["name"], key("c1-admin"));
        assert_eq!(doc["users"][1]["user"]["token"], key("tok"));
        assert_eq!(doc["contexts"][1]["context"]["user"], key("c1-admin"));
        assert!(remove(&mut doc, "c1"));
        assert!(doc.get("current-context").is_none());
        doc.insert(key("current-context"), key("other"));
        assert_eq!(doc, original);
        assert!(!remove(&mut doc, "c1"));
        assert_eq!(doc["current-context"], key("other"), "not ours: kept");
    }

    #[test]
    fn files_are_made_private_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("config");
        save(&p, "c1", &cfg("https://a:6443")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(delete(&p, "c1").unwrap());
        assert!(!delete(&dir.path().join("none"), "c1").unwrap());
        std::fs::write(&p, "- a\n- b\n").unwrap();
        let e = save(&p, "c1", &cfg("https://a:6443"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a mapping") && e.contains("config"), "{e}");
    }
}
