//! The write parameters kube-apiserver takes on create, update, patch and delete, decoded and
//! checked for the engine: `fieldManager`, `dryRun`, `force`, the patch content types, and the
//! `DeleteOptions` body (`propagationPolicy`, `preconditions`, `dryRun`,
//! `gracePeriodSeconds`). Unknown values are refused by name, with the accepted ones.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};

use super::error::ApiError;

/// The body formats `PATCH` accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386 `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// RFC 6902 `application/json-patch+json`.
    Json,
    /// Server-side apply, `application/apply-patch+yaml` (YAML or JSON).
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Result<PatchType, ApiError> {
        let media = ct.split(';').next().unwrap_or("").trim();
        Ok(match media {
            // orkops' own clients and tests send merge patches as plain JSON, as before
            "application/merge-patch+json" | "application/json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/json-patch+json" => PatchType::Json,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format {other:?}: accepted media types include application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
                )))
            }
        })
    }
}

/// A server-side apply body: YAML (JSON is YAML too), one object.
pub fn apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "the apply request needs a body: the object's configuration in YAML or JSON".into(),
        ));
    }
    let v: Value = serde_yaml_ng::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("the apply configuration is not valid YAML: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "the apply configuration must be one object (apiVersion, kind, metadata, ...)".into(),
        ));
    }
    Ok(v)
}

/// What a write may ask besides its body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOptions {
    /// `dryRun=All`: everything runs, nothing is stored.
    pub dry_run: bool,
    /// Who makes the change, recorded in `metadata.managedFields`.
    pub field_manager: Option<String>,
    /// Server-side apply takes the fields other managers own.
    pub force: bool,
}

/// kube-apiserver's limit on `fieldManager`.
const MAX_MANAGER_LEN: usize = 128;

/// The write parameters of a request; the default manager is the first token of the
/// `User-Agent` (`kubectl/v1.32.0 (linux/amd64) ...` → `kubectl`), as kube-apiserver has it.
pub fn options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None => false,
        Some("All") => true,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "dryRun: unsupported value {v:?}: the only supported value is \"All\""
            )))
        }
    };
    let force = match query.get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "force: invalid value {v:?}: use true or false"
            )))
        }
    };
    let field_manager = match query.get("fieldManager") {
        Some(m) => Some(check_manager(m)?),
        None => headers
            .get(header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .map(|m| {
                m.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_MANAGER_LEN)
                    .collect::<String>()
            })
            .filter(|m| !m.trim().is_empty()),
    };
    Ok(WriteOptions {
        dry_run,
        field_manager,
        force,
    })
}

fn check_manager(m: &str) -> Result<String, ApiError> {
    if m.chars().count() > MAX_MANAGER_LEN {
        return Err(ApiError::BadRequest(format!(
            "fieldManager: too long: must have at most {MAX_MANAGER_LEN} characters (it has {})",
            m.chars().count()
        )));
    }
    if m.is_empty() || m.chars().any(|c| c.is_control()) {
        return Err(ApiError::BadRequest(
            "fieldManager: invalid value: must be non-empty printable characters".into(),
        ));
    }
    Ok(m.to_string())
}

/// How a delete treats the objects the deleted one owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted by the garbage collector after the owner is gone.
    #[default]
    Background,
    /// Dependents stay, with their owner reference to the deleted object removed.
    Orphan,
}

/// The parts of a `DeleteOptions` body the engine uses (grace and preconditions are read into
/// the engine's own `DeleteOptions`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteBody {
    pub grace_period_seconds: Option<i64>,
    pub precondition_resource_version: Option<i64>,
    pub precondition_uid: Option<String>,
    pub propagation: Option<Propagation>,
    pub dry_run: bool,
}

const DELETE_FIELDS: &[&str] = &[
    "kind",
    "apiVersion",
    "gracePeriodSeconds",
    "preconditions",
    "propagationPolicy",
    "orphanDependents",
    "dryRun",
];

/// `propagationPolicy` from a query parameter or a body.
pub fn propagation(v: &str) -> Result<Propagation, ApiError> {
    match v {
        "Background" => Ok(Propagation::Background),
        "Orphan" => Ok(Propagation::Orphan),
        "Foreground" => Err(ApiError::BadRequest(
            "propagationPolicy: \"Foreground\" is not supported by orkops (it has no foregroundDeletion finalizer): use \"Background\" (the default; kubectl --cascade=background) or \"Orphan\" (--cascade=orphan), then wait for the dependents to go".into(),
        )),
        other => Err(ApiError::BadRequest(format!(
            "propagationPolicy: unsupported value {other:?}: use \"Background\" or \"Orphan\""
        ))),
    }
}

/// Parses a `DeleteOptions` body (`{}` or empty is all defaults); an unknown field is refused.
pub fn delete_body(body: &Value) -> Result<DeleteBody, ApiError> {
    let Some(m) = body.as_object() else {
        return Err(ApiError::BadRequest(
            "the DELETE body must be a DeleteOptions object".into(),
        ));
    };
    if let Some(k) = m.keys().find(|k| !DELETE_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "DeleteOptions: unknown field {k:?} (known: {})",
            DELETE_FIELDS.join(", ")
        )));
    }
    match m.get("kind").and_then(Value::as_str) {
        None | Some("DeleteOptions") => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "DeleteOptions: kind {k:?} is not DeleteOptions"
            )))
        }
    }
    let mut out = DeleteBody {
        grace_period_seconds: int(m, "gracePeriodSeconds")?,
        ..Default::default()
    };
    match m.get("preconditions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(p)) => {
            if let Some(k) = p
                .keys()
                .find(|k| !["uid", "resourceVersion"].contains(&k.as_str()))
            {
                return Err(ApiError::BadRequest(format!(
                    "DeleteOptions: unknown field \"preconditions.{k}\" (known: uid, resourceVersion)"
                )));
            }
            out.precondition_uid = text(p, "uid", "preconditions.uid")?;
            out.precondition_resource_version = text(p, "resourceVersion", "preconditions.resourceVersion")?
                .map(|rv| {
                    rv.parse::<i64>().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "DeleteOptions: preconditions.resourceVersion {rv:?} is not a resourceVersion"
                        ))
                    })
                })
                .transpose()?;
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "DeleteOptions: preconditions must be an object {uid, resourceVersion}".into(),
            ))
        }
    }
    out.propagation = text(m, "propagationPolicy", "propagationPolicy")?
        .map(|p| propagation(&p))
        .transpose()?;
    if out.propagation.is_none() {
        match m.get("orphanDependents") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(true)) => out.propagation = Some(Propagation::Orphan),
            Some(Value::Bool(false)) => out.propagation = Some(Propagation::Background),
            Some(_) => {
                return Err(ApiError::BadRequest(
                    "DeleteOptions: orphanDependents must be true or false".into(),
                ))
            }
        }
    }
    match m.get("dryRun") {
        None | Some(Value::Null) => {}
        Some(Value::Array(v)) => {
            for d in v {
                match d.as_str() {
                    Some("All") => out.dry_run = true,
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "DeleteOptions: dryRun: unsupported value {d}: the only supported value is \"All\""
                        )))
                    }
                }
            }
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "DeleteOptions: dryRun must be a list such as [\"All\"]".into(),
            ))
        }
    }
    Ok(out)
}

fn int(m: &Map<String, Value>, k: &str) -> Result<Option<i64>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::BadRequest(format!("DeleteOptions: {k} must be an integer"))),
    }
}

fn text(m: &Map<String, Value>, k: &str, name: &str) -> Result<Option<String>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::BadRequest(format!(
            "DeleteOptions: {name} must be a string"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn write_parameters_are_checked() {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            "kubectl/v1.32.0 (linux/amd64) kubernetes/abc"
                .parse()
                .unwrap(),
        );
        let o = options(&q(&[("dryRun", "All")]), &h).unwrap();
        assert!(o.dry_run);
        assert_eq!(o.field_manager.as_deref(), Some("kubectl"));
        let o = options(&q(&[("fieldManager", "me"), ("force", "true")]), &h).unwrap();
        assert_eq!(o.field_manager.as_deref(), Some("me"));
        assert!(o.force);
        let e = options(&q(&[("dryRun", "Some")]), &h).unwrap_err();
        assert!(e.to_string().contains("dryRun"), "{e}");
        let long = "m".repeat(129);
        let e = options(&q(&[("fieldManager", &long)]), &h).unwrap_err();
        assert!(e.to_string().contains("at most 128"), "{e}");
        assert!(options(&q(&[("fieldManager", "a\nb")]), &h).is_err());
        assert!(options(&q(&[("force", "yes")]), &h).is_err());
    }

    #[test]
    fn patch_content_types() {
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json").unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        let e = PatchType::from_content_type("text/plain").unwrap_err();
        assert_eq!(e.status().as_u16(), 415);
    }

    #[test]
    fn delete_options_bodies() {
        let d = delete_body(&json!({"kind": "DeleteOptions", "apiVersion": "v1",
            "propagationPolicy": "Orphan", "dryRun": ["All"],
            "preconditions": {"uid": "u", "resourceVersion": "7"}}))
        .unwrap();
        assert_eq!(d.propagation, Some(Propagation::Orphan));
        assert!(d.dry_run);
        assert_eq!(d.precondition_resource_version, Some(7));
        assert_eq!(d.precondition_uid.as_deref(), Some("u"));
        let e = delete_body(&json!({"propagation": "Orphan"})).unwrap_err();
        assert!(e.to_string().contains("\"propagation\""), "{e}");
        let e = delete_body(&json!({"propagationPolicy": "Foreground"})).unwrap_err();
        assert!(e.to_string().contains("Orphan"), "{e}");
        let e = delete_body(&json!({"preconditions": {"name": "x"}})).unwrap_err();
        assert!(e.to_string().contains("preconditions.name"), "{e}");
        assert!(delete_body(&json!({"dryRun": ["None"]})).is_err());
        assert_eq!(
            delete_body(&json!({"orphanDependents": true}))
                .unwrap()
                .propagation,
            Some(Propagation::Orphan)
        );
    }
}
