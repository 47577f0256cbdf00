//! Manifest files: reads files, directories and standard input, splits multi-document YAML,
//! and checks every document (kind, fields, values) before anything is sent, so that an error
//! names the file, line, document and field and nothing changes.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{self, Kind};

/// One object read from a manifest, with where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub source: Source,
    pub kind: Kind,
    pub object: Value,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}: document {} (line {})",
            self.file, self.document, self.line
        )
    }
}

impl Manifest {
    pub fn name(&self) -> &str {
        api::name_of(&self.object)
    }
    /// `Deployment web`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name())
    }
}

/// Everything wrong with the manifests, one line each.
#[derive(Debug)]
pub struct ManifestErrors(pub Vec<String>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// Reads every manifest named by `-f` arguments and checks them all.
pub fn load(args: &[String], recursive: bool) -> Result<Vec<Manifest>, ManifestErrors> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for arg in args {
        let files = if arg == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => vec![("<stdin>".to_string(), text)],
                Err(e) => {
                    errors.push(format!("<stdin>: cannot read: {e}"));
                    continue;
                }
            }
        } else {
            match files_at(Path::new(arg), recursive) {
                Ok(paths) => paths
                    .into_iter()
                    .filter_map(|p| match std::fs::read_to_string(&p) {
                        Ok(t) => Some((p.display().to_string(), t)),
                        Err(e) => {
                            errors.push(format!("{}: cannot read: {e}", p.display()));
                            None
                        }
                    })
                    .collect(),
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        };
        for (name, text) in files {
            parse_text(&name, &text, &mut out, &mut errors);
        }
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(format!("no objects found in {}", args.join(", ")));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn files_at(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries {
        let p = entry
            .map_err(|e| format!("{}: {e}", path.display()))?
            .path();
        if p.is_dir() {
            if recursive {
                found.extend(files_at(&p, true)?);
            }
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            found.push(p);
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(format!(
            "{}: no *.yaml, *.yml or *.json files in this directory",
            path.display()
        ));
    }
    Ok(found)
}

/// Splits a YAML stream at `---` lines, keeping the line each document starts on.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

/// Parses one file's documents into `out`, or records what is wrong in `errors`.
pub fn parse_text(file: &str, text: &str, out: &mut Vec<Manifest>, errors: &mut Vec<String>) {
    for (index, (line, doc)) in split_documents(text).into_iter().enumerate() {
        let source = Source {
            file: file.to_string(),
            document: index + 1,
            line,
        };
        let value: Value = match serde_yaml_ng::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                errors.push(format!(
                    "{}: {}",
                    at(&source, e.location()),
                    strip_mark(&e.to_string())
                ));
                continue;
            }
        };
        let Some(map) = value.as_object() else {
            errors.push(format!(
                "{source}: a manifest must be a mapping with apiVersion, kind and metadata"
            ));
            continue;
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind_name = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.is_empty() || kind_name.is_empty() {
            errors.push(format!("{source}: apiVersion and kind are required"));
            continue;
        }
        if kind_name == "List" && api_version == "v1" {
            let items = map
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                let doc = serde_yaml_ng::to_string(&item).unwrap_or_default();
                check_document(&source, &doc, item, out, errors);
            }
            continue;
        }
        check_document(&source, &doc, value, out, errors);
    }
}

fn check_document(
    source: &Source,
    doc: &str,
    value: Value,
    out: &mut Vec<Manifest>,
    errors: &mut Vec<String>,
) {
    let api_version = value["apiVersion"].as_str().unwrap_or("");
    let kind_name = value["kind"].as_str().unwrap_or("");
    let Some(kind) = Kind::from_manifest(api_version, kind_name) else {
        let known: Vec<String> = Kind::all()
            .map(|k| format!("{}/{}", k.api_version(), k.name()))
            .collect();
        let hint = match Kind::lookup(kind_name) {
            Some(k) => format!(
                " ({kind_name} is served as apiVersion {:?})",
                k.api_version()
            ),
            None => String::new(),
        };
        errors.push(format!(
            "{source}: kind {kind_name:?} with apiVersion {api_version:?} is not supported{hint}; supported: {}",
            known.join(", ")
        ));
        return;
    };
    let what = format!("({kind} {})", api::name_of(&value));
    let label = format!("{source} {what}");
    // Decoding the document text itself gives the line of an unknown or mistyped field.
    if let Err(e) = decode_yaml(kind, doc) {
        errors.push(format!(
            "{} {what}: {}",
            at(source, e.location()),
            strip_mark(&e.to_string())
        ));
        return;
    }
    if api::name_of(&value).is_empty() && value.pointer("/metadata/generateName").is_none() {
        errors.push(format!("{label}: metadata.name: required"));
        return;
    }
    match api::admit(kind, value.clone()) {
        Ok(_) => out.push(Manifest {
            source: source.clone(),
            kind,
            object: value,
        }),
        Err(causes) => {
            for c in causes {
                errors.push(format!("{label}: {c}"));
            }
        }
    }
}

fn decode_yaml(kind: Kind, doc: &str) -> Result<(), serde_yaml_ng::Error> {
    fn d<T: DeserializeOwned>(doc: &str) -> Result<(), serde_yaml_ng::Error> {
        serde_yaml_ng::from_str::<T>(doc).map(|_| ())
    }
    crate::api::admit::with_kind_type!(kind, d(doc))
}

/// `file:line:column` for a location inside a document, or the document when unknown.
fn at(source: &Source, loc: Option<serde_yaml_ng::Location>) -> String {
    match loc {
        Some(l) if l.line() > 0 => format!(
            "{}:{}:{}: document {}",
            source.file,
            source.line + l.line() - 1,
            l.column(),
            source.document
        ),
        _ => source.to_string(),
    }
}

/// Removes serde_yaml's own " at line N column M", which counts from the document start.
fn strip_mark(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<Manifest>, Vec<String>) {
        let (mut out, mut errs) = (Vec::new(), Vec::new());
        parse_text("app.yaml", text, &mut out, &mut errs);
        (out, errs)
    }

    #[test]
    fn splits_documents_and_keeps_their_lines() {
        let (out, errs) = parse(
            "# comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].source.document, out[0].source.line), (1, 3));
        assert_eq!((out[1].kind, out[1].source.line), (Kind::Namespace, 10));
    }

    #[test]
    fn unknown_fields_name_file_line_document_and_field() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n";
        let (_, errs) = parse(text);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = &errs[0];
        assert!(e.starts_with("app.yaml:13:"), "{e}");
        assert!(e.contains("document 2"), "{e}");
        assert!(e.contains("Pod p"), "{e}");
        assert!(e.contains("spec.containers[0]"), "{e}");
        assert!(e.contains("imagee"), "{e}");
    }

    #[test]
    fn malformed_yaml_and_unknown_kinds_are_named() {
        let (_, errs) = parse("apiVersion: v1\nkind: Pod\nmetadata: [unclosed\n");
        assert!(errs[0].starts_with("app.yaml:"), "{errs:?}");
        let (_, errs) = parse(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: x\n",
        );
        assert!(
            errs[0].contains(
                "\"HorizontalPodAutoscaler\" with apiVersion \"autoscaling/v2\" is not supported"
            ),
            "{errs:?}"
        );
        let (_, errs) = parse("apiVersion: v1\nkind: Deployment\nmetadata:\n  name: x\n");
        assert!(
            errs[0].contains("served as apiVersion \"apps/v1\""),
            "{errs:?}"
        );
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let (_, errs) = parse("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 70000\n");
        assert!(errs[0].contains("spec.ports[0].port"), "{errs:?}");
    }
}
