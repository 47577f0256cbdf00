//! Bundles: loading one (built in, or from a directory), its `addon.yaml`, its parameters, and
//! rendering its manifest templates into checked objects. Everything here is pure: nothing
//! talks to a cluster, so a bundle that fails here has changed nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{AddonError, ClusterFacts, ADDON_LABEL, VERSION_ANNOTATION};
use crate::api::{self, labels, Kind};
use crate::cli::manifest::{self, Manifest};

/// The `apiVersion` and `kind` an `addon.yaml` starts with.
const META_API_VERSION: &str = "orkops.io/v1";
const META_KIND: &str = "Addon";

/// Built-in bundles, embedded when orkops is built: `templates/addons/NAME/FILE`. A unit test
/// checks this list against the directory, so a file added there and not here fails the tests
/// (a build script or an embedding crate would do the same with more machinery).
macro_rules! builtin {
    ($name:literal: $($file:literal),+) => {
        ($name, &[$(($file, include_str!(concat!("../../templates/addons/", $name, "/", $file)))),+])
    };
}

#[rustfmt::skip]
const BUILTIN: &[(&str, &[(&str, &str)])] = &[
    builtin!("hello": "addon.yaml", "hello.yaml"),
    builtin!("toolbox": "addon.yaml", "toolbox.yaml"),
];

/// Where a bundle came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Shipped in the orkops binary.
    Builtin,
    /// A directory given with `--from`.
    Dir(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Source::Builtin => f.write_str("builtin"),
            Source::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// The `addon.yaml` of a bundle.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Meta {
    pub api_version: String,
    pub kind: String,
    /// A DNS label: the value of the `orkops.io/addon` label and the record's `addon-NAME`.
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// A parameter a bundle's templates use, with its default; `--set name=value` changes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(rename = "type", default)]
    pub type_: ParamType,
    pub default: serde_yaml_ng::Value,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Integer,
    Boolean,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        })
    }
}

/// One manifest template of a bundle.
#[derive(Debug, Clone)]
pub struct File {
    /// The name inside the bundle (`hello.yaml`).
    pub name: String,
    /// How errors name it: the path in the repository or on disk.
    pub shown: String,
    pub text: String,
}

/// A loaded bundle whose `addon.yaml` is valid; its templates are checked by [`Bundle::render`].
#[derive(Debug, Clone)]
pub struct Bundle {
    pub meta: Meta,
    pub source: Source,
    pub files: Vec<File>,
}

/// A bundle rendered with its parameters: the objects to apply, each checked like `orkops
/// apply` checks a manifest and carrying the add-on's label and version annotation.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub version: String,
    /// The value of every parameter (defaults and `--set`), and the cluster facts used.
    pub parameters: BTreeMap<String, String>,
    /// In apply order: namespaces, then what pods refer to, then services, then the rest.
    pub objects: Vec<Manifest>,
}

/// The names of the cluster facts every template can use, besides the bundle's parameters.
pub const FACTS: &[&str] = &[
    "clusterName",
    "clusterCIDR",
    "serviceCIDR",
    "clusterDomain",
    "nodePortRange",
];

/// Kinds a bundle may not hold: the cluster and its controllers own them.
const REFUSED_KINDS: &[Kind] = &[
    Kind::Node,
    Kind::Endpoints,
    Kind::Event,
    Kind::ControllerRevision,
];

impl Bundle {
    /// The names of the built-in bundles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// Every built-in bundle (they are checked by the unit tests, so this does not fail).
    pub fn builtins() -> Vec<Bundle> {
        Self::builtin_names()
            .filter_map(|n| Self::builtin(n).ok())
            .collect()
    }

    /// A built-in bundle by name; an unknown name is an error listing the known ones.
    pub fn builtin(name: &str) -> Result<Bundle, AddonError> {
        let Some((_, files)) = BUILTIN.iter().find(|(n, _)| *n == name) else {
            return Err(AddonError::UnknownBuiltin {
                name: name.to_string(),
                available: Self::builtin_names().collect::<Vec<_>>().join(", "),
            });
        };
        let dir = format!("templates/addons/{name}");
        let mut meta_text = None;
        let mut templates = Vec::new();
        for (file, text) in files.iter() {
            if *file == "addon.yaml" {
                meta_text = Some(*text);
            } else {
                templates.push(File {
                    name: file.to_string(),
                    shown: format!("{dir}/{file}"),
                    text: text.to_string(),
                });
            }
        }
        let meta_text = meta_text.unwrap_or_default();
        Self::assemble(
            &format!("{dir}/addon.yaml"),
            meta_text,
            Source::Builtin,
            templates,
        )
    }

    /// A bundle from a directory: `addon.yaml` and the `*.yaml`/`*.yml` templates beside it
    /// (sub-directories and other files are not part of it).
    pub fn from_dir(dir: &Path) -> Result<Bundle, AddonError> {
        let invalid = |errors: Vec<String>| AddonError::Invalid {
            bundle: dir.display().to_string(),
            errors,
        };
        let entries =
            std::fs::read_dir(dir).map_err(|e| invalid(vec![format!("{}: {e}", dir.display())]))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| invalid(vec![format!("{}: {e}", dir.display())]))?;
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            let yaml = matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
            if yaml && !name.starts_with('.') && p.is_file() {
                paths.push((name, p));
            }
        }
        paths.sort();
        let meta_path = dir.join("addon.yaml");
        let Some(meta_pos) = paths.iter().position(|(n, _)| n == "addon.yaml") else {
            return Err(invalid(vec![format!(
                "{}: not found; a bundle is a directory with addon.yaml (apiVersion: {META_API_VERSION}, kind: {META_KIND}, name, version, parameters) and manifest templates (*.yaml)",
                meta_path.display()
            )]));
        };
        paths.remove(meta_pos);
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| invalid(vec![format!("{}: {e}", p.display())]))
        };
        let meta_text = read(&meta_path)?;
        let mut templates = Vec::new();
        for (name, p) in paths {
            templates.push(File {
                name,
                shown: p.display().to_string(),
                text: read(&p)?,
            });
        }
        // the record names the directory wherever the next command runs
        let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self::assemble(
            &meta_path.display().to_string(),
            &meta_text,
            Source::Dir(absolute),
            templates,
        )
    }

    fn assemble(
        meta_shown: &str,
        meta_text: &str,
        source: Source,
        files: Vec<File>,
    ) -> Result<Bundle, AddonError> {
        let invalid = |errors: Vec<String>| AddonError::Invalid {
            bundle: source.to_string(),
            errors,
        };
        let meta: Meta = serde_yaml_ng::from_str(meta_text).map_err(|e| {
            let at = match e.location() {
                Some(l) => format!("{meta_shown}:{}:{}", l.line(), l.column()),
                None => meta_shown.to_string(),
            };
            invalid(vec![format!("{at}: {}", strip_mark(&e.to_string()))])
        })?;
        let mut errors = Vec::new();
        let mut bad =
            |field: &str, msg: String| errors.push(format!("{meta_shown}: {field}: {msg}"));
        if meta.api_version != META_API_VERSION || meta.kind != META_KIND {
            bad(
                "apiVersion/kind",
                format!(
                    "must be {META_API_VERSION:?} / {META_KIND:?}, not {:?} / {:?}",
                    meta.api_version, meta.kind
                ),
            );
        }
        // the record is the ConfigMap `addon-NAME`: the name must leave room for the prefix
        if !labels::is_dns_label(&meta.name) || meta.name.len() > 57 {
            bad(
                "name",
                format!(
                    "{:?} must be at most 57 lower-case letters, digits and '-'",
                    meta.name
                ),
            );
        }
        if meta.version.is_empty()
            || meta.version.len() > 63
            || !meta
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_'))
        {
            bad(
                "version",
                format!(
                    "{:?} must be 1 to 63 letters, digits, '.', '-', '+' or '_' (e.g. 1.0.0)",
                    meta.version
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, p) in meta.parameters.iter().enumerate() {
            let field = format!("parameters[{i}]");
            if !is_identifier(&p.name) {
                bad(
                    &format!("{field}.name"),
                    format!(
                        "{:?} must be a template variable name (letters, digits, '_', not starting with a digit)",
                        p.name
                    ),
                );
            } else if FACTS.contains(&p.name.as_str()) || p.name == "addon" {
                bad(
                    &format!("{field}.name"),
                    format!("{:?} is a cluster fact every template already has", p.name),
                );
            } else if !seen.insert(p.name.clone()) {
                bad(
                    &format!("{field}.name"),
                    format!("{:?} is declared twice", p.name),
                );
            }
            match yaml_scalar(&p.default) {
                Some(v) => {
                    if let Err(e) = typed(p, &v) {
                        bad(&format!("{field}.default"), e);
                    }
                }
                None => bad(
                    &format!("{field}.default"),
                    "must be a string, number or boolean".into(),
                ),
            }
        }
        if files.is_empty() {
            errors.push(format!(
                "{}: no manifest templates (*.yaml) beside addon.yaml",
                source
            ));
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        Ok(Bundle {
            meta,
            source,
            files,
        })
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The value of every parameter: the defaults, then `set` (`--set key=value`). A key the
    /// bundle does not declare, or a value of the wrong type, is an error naming it.
    pub fn parameters(
        &self,
        set: &[(String, String)],
    ) -> Result<BTreeMap<String, Value>, AddonError> {
        let mut values = BTreeMap::new();
        for p in &self.meta.parameters {
            let v = yaml_scalar(&p.default).unwrap_or_default();
            values.insert(p.name.clone(), typed(p, &v).unwrap_or(Value::Null));
        }
        let mut errors = Vec::new();
        for (k, v) in set {
            match self.meta.parameters.iter().find(|p| p.name == *k) {
                None => {
                    let known: Vec<&str> = self
                        .meta
                        .parameters
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    let hint = if FACTS.contains(&k.as_str()) {
                        " (it is a cluster fact, read from the cluster)".to_string()
                    } else {
                        String::new()
                    };
                    errors.push(format!(
                        "--set {k}: add-on {} has no parameter {k:?}{hint}; its parameters: {}",
                        self.name(),
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                Some(p) => match typed(p, v) {
                    Ok(tv) => {
                        values.insert(k.clone(), tv);
                    }
                    Err(e) => errors.push(format!("--set {k}: {e}")),
                },
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(AddonError::Invalid {
                bundle: self.name().to_string(),
                errors,
            })
        }
    }

    /// Renders every template with the parameters and the cluster facts, and checks the
    /// objects: YAML syntax, kinds, fields and values (as `orkops apply` does), one object per
    /// kind/namespace/name. Errors name the bundle's file and line; every problem is reported.
    pub fn render(
        &self,
        facts: &ClusterFacts,
        set: &[(String, String)],
    ) -> Result<Rendered, AddonError> {
        let values = self.parameters(set)?;
        let invalid = |errors: Vec<String>| AddonError::Invalid {
            bundle: self.name().to_string(),
            errors,
        };
        let mut ctx = tera::Context::new();
        let mut recorded = BTreeMap::new();
        for (k, v) in facts.as_map() {
            ctx.insert(k, &v);
            recorded.insert(k.to_string(), v);
        }
        for (k, v) in &values {
            ctx.insert(k, v);
            recorded.insert(
                k.clone(),
                v.as_str().map(str::to_string).unwrap_or(v.to_string()),
            );
        }
        ctx.insert(
            "addon",
            &json!({"name": self.name(), "version": self.meta.version}),
        );

        let mut tera = tera::Tera::default();
        // templates must not read the environment of whoever runs orkops (credentials...)
        tera.register_function("get_env", |_: &_| -> tera::Result<tera::Value> {
            Err(tera::Error::msg(
                "get_env is not available in add-on templates: declare a parameter instead",
            ))
        });
        let mut errors = Vec::new();
        for f in &self.files {
            if let Err(e) = tera.add_raw_template(&f.name, &f.text) {
                errors.push(tera_error(f, &e));
            }
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        let mut objects = Vec::new();
        for f in &self.files {
            let text = match tera.render(&f.name, &ctx) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(tera_error(f, &e));
                    continue;
                }
            };
            let shown = if text.lines().count() == f.text.lines().count() {
                f.shown.clone()
            } else {
                // lines moved ({% if %} blocks, loops): the line numbers are the output's
                format!("{} (rendered)", f.shown)
            };
            let mut errs = Vec::new();
            manifest::parse_text(&shown, &text, &mut objects, &mut errs);
            errors.extend(errs);
        }
        let mut seen = BTreeSet::new();
        for m in &mut objects {
            if REFUSED_KINDS.contains(&m.kind) {
                errors.push(format!(
                    "{} ({}): an add-on may not hold {} objects; the cluster makes them",
                    m.source,
                    m.describe(),
                    m.kind
                ));
                continue;
            }
            if m.object.pointer("/metadata/generateName").is_some() && m.name().is_empty() {
                errors.push(format!(
                    "{} ({}): metadata.name is required in an add-on (generateName would make a new object each time it is enabled)",
                    m.source, m.kind
                ));
                continue;
            }
            if m.kind.namespaced() && api::namespace_of(&m.object).is_empty() {
                api::set_meta(&mut m.object, "namespace", json!("default"));
            }
            let id = ObjectRef::of(m);
            if !seen.insert(id.clone()) {
                errors.push(format!("{}: {id} is defined twice", m.source));
            }
            if let Err(e) = mark(&mut m.object, m.kind, self.name(), &self.meta.version) {
                errors.push(format!("{} ({}): {e}", m.source, m.describe()));
            }
        }
        if objects.is_empty() && errors.is_empty() {
            errors.push(format!("{}: the templates render no objects", self.source));
        }
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        objects.sort_by_key(|m| apply_rank(m.kind));
        Ok(Rendered {
            name: self.name().to_string(),
            version: self.meta.version.clone(),
            parameters: recorded,
            objects,
        })
    }
}

/// One object of a bundle, as the record lists it: `Deployment default/hello`, `Namespace x`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn of(m: &Manifest) -> ObjectRef {
        ObjectRef {
            kind: m.kind,
            namespace: m
                .kind
                .namespaced()
                .then(|| api::namespace_of(&m.object).to_string()),
            name: m.name().to_string(),
        }
    }

    /// Parses what `Display` writes.
    pub fn parse(line: &str) -> Option<ObjectRef> {
        let (kind, rest) = line.trim().split_once(' ')?;
        let kind = Kind::lookup(kind)?;
        let (namespace, name) = match (kind.namespaced(), rest.split_once('/')) {
            (true, Some((ns, n))) => (Some(ns.to_string()), n.to_string()),
            (false, None) => (None, rest.to_string()),
            _ => return None,
        };
        (!name.is_empty()).then_some(ObjectRef {
            kind,
            namespace,
            name,
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Apply order: namespaces first, then what pods refer to, then services, then the rest.
pub fn apply_rank(k: Kind) -> u8 {
    match k {
        Kind::Namespace => 0,
        Kind::ConfigMap | Kind::Secret | Kind::PersistentVolumeClaim => 1,
        Kind::Service => 2,
        _ => 3,
    }
}

/// Puts the add-on's label on the object (and on the pods its workload makes, so that
/// `orkops get pods -l orkops.io/addon=NAME` finds them) and its version annotation.
fn mark(obj: &mut Value, kind: Kind, name: &str, version: &str) -> Result<(), String> {
    let label = |meta: &mut Value, path: &str| -> Result<(), String> {
        if !meta.is_object() {
            *meta = json!({});
        }
        let labels = &mut meta["labels"];
        if labels.is_null() {
            *labels = json!({});
        }
        match labels.get(ADDON_LABEL).and_then(Value::as_str) {
            Some(v) if v != name => {
                return Err(format!(
                    "{path}.labels: {ADDON_LABEL} is {v:?}, but this is add-on {name:?}: the label is set by orkops"
                ))
            }
            _ => {}
        }
        labels[ADDON_LABEL] = json!(name);
        Ok(())
    };
    label(&mut obj["metadata"], "metadata")?;
    let annotations = &mut obj["metadata"]["annotations"];
    if annotations.is_null() {
        *annotations = json!({});
    }
    annotations[VERSION_ANNOTATION] = json!(version);
    let template = match kind {
        Kind::Deployment | Kind::ReplicaSet | Kind::Job | Kind::DaemonSet => Some("/spec/template"),
        Kind::CronJob => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    };
    if let Some(t) = template {
        if let Some(tpl) = obj.pointer_mut(t) {
            let meta = &mut tpl["metadata"];
            label(meta, &t[1..].replace('/', "."))?;
        }
        if kind == Kind::CronJob {
            // the Jobs a CronJob makes carry it too
            if let Some(jt) = obj.pointer_mut("/spec/jobTemplate") {
                label(&mut jt["metadata"], "spec.jobTemplate.metadata")?;
            }
        }
    }
    Ok(())
}

/// A parameter value checked and typed: an integer, a boolean, or a one-line string.
fn typed(p: &Parameter, v: &str) -> Result<Value, String> {
    match p.type_ {
        ParamType::Integer => v
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("parameter {} is an integer, not {v:?}", p.name)),
        ParamType::Boolean => match v.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "parameter {} is a boolean (true or false), not {v:?}",
                p.name
            )),
        },
        ParamType::String => {
            if v.chars().any(char::is_control) {
                Err(format!(
                    "parameter {} must be one line without control characters",
                    p.name
                ))
            } else {
                Ok(Value::String(v.to_string()))
            }
        }
    }
}

fn yaml_scalar(v: &serde_yaml_ng::Value) -> Option<String> {
    match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A tera error as `FILE:LINE:COLUMN: message`: parse errors carry their position
/// (` --> 3:12`); for a variable that is not defined, the first line that uses it.
fn tera_error(f: &File, e: &tera::Error) -> String {
    let mut chain = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        chain.push(s.to_string());
        src = s.source();
    }
    let full = chain.join("\n");
    // ` --> 3:12` and `= expected ...` in a parse error
    let pos = full.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("-->")?;
        let (line, col) = rest.trim().split_once(':')?;
        Some((line.parse::<usize>().ok()?, col.parse::<usize>().ok()?))
    });
    if let Some((line, col)) = pos {
        let what = full
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("= "))
            .unwrap_or("syntax error");
        return format!("{}:{line}:{col}: template syntax: {what}", f.shown);
    }
    let message = chain
        .iter()
        .map(|m| m.replace(&format!(" while rendering '{}'", f.name), ""))
        .filter(|m| !m.starts_with("Failed to render"))
        .collect::<Vec<_>>()
        .join(": ");
    // "Variable `foo` not found in context"
    let var = full
        .split("Variable `")
        .nth(1)
        .and_then(|r| r.split('`').next());
    if let Some(v) = var {
        let root = v.split(['.', '[']).next().unwrap_or(v);
        if let Some(n) = f
            .text
            .lines()
            .position(|l| { l.contains("{{") || l.contains("{%") } && l.contains(root))
        {
            return format!(
                "{}:{}: {message} (not a parameter of this bundle nor a cluster fact: {})",
                f.shown,
                n + 1,
                FACTS.join(", ")
            );
        }
    }
    format!("{}: {message}", f.shown)
}

fn strip_mark(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(meta: &str, files: &[(&str, &str)]) -> Result<Bundle, AddonError> {
        Bundle::assemble(
            "b/addon.yaml",
            meta,
            Source::Dir("b".into()),
            files
                .iter()
                .map(|(n, t)| File {
                    name: n.to_string(),
                    shown: format!("b/{n}"),
                    text: t.to_string(),
                })
                .collect(),
        )
    }

    const META: &str = "apiVersion: orkops.io/v1\nkind: Addon\nname: demo\nversion: 1.0.0\nparameters:\n- name: replicas\n  type: integer\n  default: 2\n- name: image\n  default: orkops/busybox:1.35\n- name: debug\n  type: boolean\n  default: false\n";

    fn errors(r: Result<Rendered, AddonError>) -> Vec<String> {
        match r {
            Err(AddonError::Invalid { errors, .. }) => errors,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("rendered"),
        }
    }

    #[test]
    fn the_builtin_list_is_the_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/addons");
        let mut on_disk: Vec<(String, Vec<String>)> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .map(|p| {
                let mut files: Vec<String> = std::fs::read_dir(&p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                    .collect();
                files.sort();
                (p.file_name().unwrap().to_string_lossy().to_string(), files)
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<(String, Vec<String>)> = BUILTIN
            .iter()
            .map(|(n, fs)| {
                let mut files: Vec<String> = fs.iter().map(|(f, _)| f.to_string()).collect();
                files.sort();
                (n.to_string(), files)
            })
            .collect();
        listed.sort();
        assert_eq!(listed, on_disk, "update BUILTIN in src/addons/bundle.rs");
    }

    #[test]
    fn every_builtin_renders_with_default_facts() {
        for name in Bundle::builtin_names() {
            let b = Bundle::builtin(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(b.name(), name, "the name in addon.yaml is the directory's");
            let r = b
                .render(&ClusterFacts::default(), &[])
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!r.objects.is_empty());
            for m in &r.objects {
                assert_eq!(m.object["metadata"]["labels"][ADDON_LABEL], name);
            }
        }
        let hello = Bundle::builtin("hello").unwrap();
        let r = hello
            .render(
                &ClusterFacts::default(),
                &[
                    ("replicas".into(), "3".into()),
                    ("message".into(), "it's \"quoted\": yes".into()),
                ],
            )
            .unwrap();
        let d = r
            .objects
            .iter()
            .find(|m| m.kind == Kind::Deployment)
            .unwrap();
        assert_eq!(d.object["spec"]["replicas"], 3);
        assert_eq!(
            d.object["spec"]["template"]["metadata"]["labels"][ADDON_LABEL],
            "hello"
        );
        assert_eq!(
            d.object["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "it's \"quoted\": yes"
        );
        assert_eq!(r.parameters["replicas"], "3");
        assert_eq!(r.parameters["clusterDomain"], "cluster.local");
        // services come before deployments
        assert_eq!(r.objects[0].kind, Kind::Service);
    }

    #[test]
    fn unknown_builtins_and_set_keys_are_named() {
        let e = Bundle::builtin("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("hello, toolbox"), "{e}");
        let b = bundle(
            META,
            &[(
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            )],
        )
        .unwrap();
        let errs = errors(b.render(
            &ClusterFacts::default(),
            &[
                ("replicaz".into(), "1".into()),
                ("replicas".into(), "x".into()),
                ("clusterName".into(), "y".into()),
            ],
        ));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].contains("replicaz") && errs[0].contains("replicas, image, debug"),
            "{errs:?}"
        );
        assert!(errs[1].contains("integer"), "{errs:?}");
        assert!(errs[2].contains("cluster fact"), "{errs:?}");
        let errs = errors(b.render(
            &ClusterFacts::default(),
            &[("image".into(), "a\nkind: Secret".into())],
        ));
        assert!(errs[0].contains("one line"), "{errs:?}");
    }

    #[test]
    fn addon_yaml_errors_name_the_line() {
        let e = bundle(
            "apiVersion: orkops.io/v1\nkind: Addon\nname: x\nversion: 1\nparamters: []\n",
            &[("a.yaml", "")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("b/addon.yaml:5:") && e.contains("paramters"),
            "{e}"
        );
        let e = bundle("apiVersion: orkops.io/v1\nkind: Addon\nname: Bad_Name\nversion: ''\nparameters:\n- name: 1x\n  default: [a]\n", &[])
            .unwrap_err()
            .to_string();
        for want in [
            "name: \"Bad_Name\"",
            "version",
            "parameters[0].name",
            "parameters[0].default",
            "no manifest templates",
        ] {
            assert!(e.contains(want), "{want} in {e}");
        }
    }

    #[test]
    fn template_and_yaml_errors_name_file_and_line() {
        let b = bundle(
            META,
            &[
                ("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: {{ replicas | }}\n"),
                ("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  y: {{ nosuch }}\n"),
            ],
        )
        .unwrap();
        let errs = errors(b.render(&ClusterFacts::default(), &[]));
        assert!(errs[0].starts_with("b/a.yaml:6:"), "{errs:?}");
        assert!(errs[0].contains("template syntax"), "{errs:?}");
        // a syntax error stops before rendering; fix it and the undefined variable shows
        let b = bundle(
            META,
            &[(
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\ndata:\n  y: {{ nosuch }}\n",
            )],
        )
        .unwrap();
        let errs = errors(b.render(&ClusterFacts::default(), &[]));
        assert!(
            errs[0].starts_with("b/b.yaml:6:") && errs[0].contains("nosuch"),
            "{errs:?}"
        );
        let b = bundle(
            META,
            &[
                ("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: a: b\n"),
                ("c.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: {{ image }}\n    imagee: x\n"),
                ("d.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
                ("e.yaml", "x: {{ get_env(name=\"HOME\") }}\n"),
            ],
        )
        .unwrap();
        let errs = errors(b.render(&ClusterFacts::default(), &[]));
        let all = errs.join("\n");
        assert!(all.contains("b/a.yaml:6:"), "{all}");
        assert!(
            all.contains("b/c.yaml:9:") && all.contains("imagee"),
            "{all}"
        );
        assert!(all.contains("may not hold Node"), "{all}");
        assert!(all.contains("get_env is not available"), "{all}");
    }

    #[test]
    fn labels_are_the_addons_and_cannot_be_taken() {
        let b = bundle(META, &[("a.yaml", "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:\n  schedule: '@hourly'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: c, image: x:1}]\n")]).unwrap();
        let r = b.render(&ClusterFacts::default(), &[]).unwrap();
        let o = &r.objects[0].object;
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_eq!(o["metadata"]["annotations"][VERSION_ANNOTATION], "1.0.0");
        assert_eq!(
            o["spec"]["jobTemplate"]["metadata"]["labels"][ADDON_LABEL],
            "demo"
        );
        assert_eq!(
            o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"][ADDON_LABEL],
            "demo"
        );
        let b = bundle(META, &[("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {orkops.io/addon: other}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")]).unwrap();
        let errs = errors(b.render(&ClusterFacts::default(), &[]));
        assert!(errs.iter().any(|e| e.contains("set by orkops")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("defined twice")), "{errs:?}");
    }

    #[test]
    fn object_refs_round_trip() {
        for s in ["Deployment default/hello", "Namespace demo"] {
            assert_eq!(ObjectRef::parse(s).unwrap().to_string(), s);
        }
        assert!(ObjectRef::parse("Deployment hello").is_none());
        assert!(ObjectRef::parse("Gadget x/y").is_none());
    }
}
