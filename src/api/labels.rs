//! Label and field selectors: parsing `-l app=web,tier!=db,env in (a,b),!legacy` and matching
//! objects against them, plus the validation of label keys and values.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::meta::LabelSelector;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the `labelSelector` query syntax.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // split at the next comma that is not inside parentheses
            let mut depth = 0;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let term = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            reqs.push(parse_term(term)?);
        }
        Ok(Selector(reqs))
    }

    /// Converts a manifest `LabelSelector` (matchLabels + matchExpressions).
    pub fn from_label_selector(ls: &LabelSelector) -> Result<Selector, String> {
        let mut reqs: Vec<Requirement> = ls
            .match_labels
            .iter()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for e in &ls.match_expressions {
            reqs.push(match e.operator.as_str() {
                "In" => Requirement::In(e.key.clone(), e.values.clone()),
                "NotIn" => Requirement::NotIn(e.key.clone(), e.values.clone()),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => {
                    return Err(format!(
                        "operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                    ))
                }
            });
        }
        Ok(Selector(reqs))
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Matches against any key lookup (labels, or the fields of a field selector).
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Matches a stored object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if term.is_empty() {
        return Err("empty requirement (two commas in a row?)".into());
    }
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(
            check_key(k.trim())?,
            check_value(v.trim())?,
        ));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(
            check_key(k.trim())?,
            check_value(v.trim())?,
        ));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let key = check_key(words[0])?;
        let rest = words[1].trim();
        let (op, list) = if let Some(l) = rest.strip_prefix("notin") {
            ("notin", l)
        } else if let Some(l) = rest.strip_prefix("in") {
            ("in", l)
        } else {
            return Err(format!(
                "{term:?}: expected `in (...)` or `notin (...)` after the key"
            ));
        };
        let list = list.trim();
        let inner = list
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("{term:?}: the values must be in parentheses"))?;
        let values = inner
            .split(',')
            .map(|v| check_value(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if op == "in" {
            Requirement::In(key, values)
        } else {
            Requirement::NotIn(key, values)
        });
    }
    Ok(Requirement::Exists(check_key(term)?))
}

fn check_key(k: &str) -> Result<String, String> {
    validate_label_key(k).map(|_| k.to_string())
}

fn check_value(v: &str) -> Result<String, String> {
    validate_label_value(v).map(|_| v.to_string())
}

/// A label key: an optional DNS prefix and `/`, then a name of at most 63 characters.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 || !is_dns_subdomain(prefix) {
                return Err(format!(
                    "label key {k:?}: the prefix must be a DNS subdomain"
                ));
            }
            name
        }
        None => k,
    };
    if name.is_empty() || name.len() > 63 || !is_qualified_name_part(name) {
        return Err(format!(
            "label key {k:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !is_qualified_name_part(v) {
        return Err(format!(
            "label value {v:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 label: lower-case letters, digits and '-', at most 63, alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain as Kubernetes checks it: at most 253 characters of dot-separated parts of
/// lower-case letters, digits and '-', each starting and ending with a letter or digit. Like
/// Kubernetes' `IsDNS1123Subdomain`, a part may be longer than DNS's 63 (object names are not
/// host names; a pod's host name is its name cut to 63).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// The fields a `fieldSelector` may name, read from a stored object.
pub fn field_value<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    let pointer = match field {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "spec.nodeName" => "/spec/nodeName",
        "status.phase" => "/status/phase",
        "involvedObject.name" => "/involvedObject/name",
        "involvedObject.namespace" => "/involvedObject/namespace",
        "involvedObject.kind" => "/involvedObject/kind",
        "involvedObject.uid" => "/involvedObject/uid",
        _ => return None,
    };
    // An unset field compares as the empty string, as in Kubernetes (`spec.nodeName=` = unbound).
    Some(obj.pointer(pointer).and_then(Value::as_str).unwrap_or(""))
}

pub const FIELD_SELECTOR_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "status.phase",
    "involvedObject.name",
    // `kubectl describe` asks for an object's events by name, namespace, kind and uid
    "involvedObject.namespace",
    "involvedObject.kind",
    "involvedObject.uid",
];

/// Parses a `fieldSelector` (only `=`, `==` and `!=` on the supported fields).
pub fn parse_field_selector(text: &str) -> Result<Selector, String> {
    let mut reqs = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (k, v, eq) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (k, v, true)
        } else {
            return Err(format!(
                "field selector {term:?}: expected FIELD=VALUE or FIELD!=VALUE"
            ));
        };
        let k = k.trim();
        if !FIELD_SELECTOR_FIELDS.contains(&k) {
            return Err(format!(
                "field selector: {k:?} is not a selectable field (use one of {})",
                FIELD_SELECTOR_FIELDS.join(", ")
            ));
        }
        let (k, v) = (k.to_string(), v.trim().to_string());
        reqs.push(if eq {
            Requirement::Equals(k, v)
        } else {
            Requirement::NotEquals(k, v)
        });
    }
    Ok(Selector(reqs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_every_operator() {
        let s = Selector::parse("app=web, tier!=db, env in (prod,staging),!legacy,team").unwrap();
        assert_eq!(s.0.len(), 5);
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "x")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "dev"), ("team", "x")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("env", "prod"),
            ("team", "x"),
            ("legacy", "")
        ])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        let n = Selector::parse("env notin (prod)").unwrap();
        assert!(n.matches(&labels(&[])));
        assert!(!n.matches(&labels(&[("env", "prod")])));
        assert!(Selector::parse("").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn rejects_malformed_selectors() {
        assert!(Selector::parse("app=we b").is_err());
        assert!(Selector::parse("env in prod").is_err());
        assert!(Selector::parse("a,,b").is_err());
        assert!(Selector::parse("-bad=x").is_err());
        assert!(parse_field_selector("spec.image=x").is_err());
    }

    #[test]
    fn field_selectors_treat_unset_as_empty() {
        let s = parse_field_selector("spec.nodeName=").unwrap();
        let unbound = serde_json::json!({"spec": {}});
        let bound = serde_json::json!({"spec": {"nodeName": "n1"}});
        assert!(s.matches_with(|k| field_value(&unbound, k)));
        assert!(!s.matches_with(|k| field_value(&bound, k)));
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("Web"));
        assert!(!is_dns_label("-web"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(
            is_dns_subdomain(&"a".repeat(253)),
            "Kubernetes has no per-part limit"
        );
        assert!(is_dns_subdomain(&format!(
            "{}.{}",
            "a".repeat(63),
            "b".repeat(189)
        )));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(!is_dns_subdomain("a.-b"));
    }
}
