//! How objects are shown: the per-kind tables of `get` (and their `-o wide` columns), YAML and
//! JSON output, and the readable form of `describe`. Secret values are never printed by tables
//! or `describe`, only their sizes.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::Kind;

use crate::api::columns::{self, i, labels_text, or_none, s};
pub use crate::api::columns::{age, pod_status};

/// The columns `orkops get` prints for `kind` (the wide ones too with `wide`).
fn shown(kind: Kind, wide: bool) -> impl Iterator<Item = (usize, columns::Column)> {
    columns::columns(kind)
        .into_iter()
        .enumerate()
        .filter(move |(_, c)| !c.table_only && (wide || c.priority == 0))
}

/// The column headers of `kind`'s table.
pub fn headers(kind: Kind, wide: bool) -> Vec<String> {
    shown(kind, wide)
        .map(|(_, c)| c.name.to_uppercase())
        .collect()
}

/// One table row for `obj`, matching `headers(kind, wide)`.
pub fn row(kind: Kind, obj: &Value, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    let cells = columns::cells(kind, obj, now);
    shown(kind, wide)
        .filter_map(|(n, _)| cells.get(n).map(columns::Cell::text))
        .collect()
}

/// Lays rows out in columns separated by three spaces, like kubectl.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (idx, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            if idx + 1 == n {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<w$}   ");
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap_or_default()
}

/// The readable form of one object, for `describe`; `events` are the events about it.
pub fn describe(kind: Kind, obj: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Name:         {}", s(obj, "/metadata/name"));
    if kind.namespaced() {
        let _ = writeln!(out, "Namespace:    {}", s(obj, "/metadata/namespace"));
    }
    let _ = writeln!(out, "Kind:         {kind}");
    let _ = writeln!(
        out,
        "Labels:       {}",
        labels_text(obj.pointer("/metadata/labels"), "\n              ")
    );
    let _ = writeln!(
        out,
        "Annotations:  {}",
        labels_text(obj.pointer("/metadata/annotations"), "\n              ")
    );
    let created = s(obj, "/metadata/creationTimestamp");
    let _ = writeln!(out, "Created:      {created} ({} ago)", age(created, now));
    if let Some(d) = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        let _ = writeln!(out, "Deleting:     since {d}");
    }
    if let Some(owners) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    {
        for o in owners {
            let _ = writeln!(out, "Controlled By: {}/{}", s(o, "/kind"), s(o, "/name"));
        }
    }
    match kind {
        Kind::Pod => {
            let _ = writeln!(out, "Node:         {}", or_none(s(obj, "/spec/nodeName")));
            let _ = writeln!(out, "Status:       {}", pod_status(obj));
            let _ = writeln!(out, "IP:           {}", or_none(s(obj, "/status/podIP")));
        }
        Kind::Secret => {
            let _ = writeln!(out, "Type:         {}", s(obj, "/type"));
            let _ = writeln!(out, "\nData\n====");
            for (k, v) in obj
                .get("data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let n = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or(""))
                    .map_or(0, |b| b.len());
                let _ = writeln!(out, "{k}:  {n} bytes");
            }
        }
        _ => {}
    }
    let mut section = |title: &str, v: Option<&Value>| {
        if let Some(v) = v.filter(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty())) {
            let _ = writeln!(out, "{title}:");
            for l in to_yaml(v).lines() {
                let _ = writeln!(out, "  {l}");
            }
        }
    };
    if kind != Kind::Secret {
        section("Spec", obj.get("spec"));
        section("Data", obj.get("data"));
    }
    section("Status", obj.get("status"));
    if kind == Kind::Event {
        let _ = writeln!(
            out,
            "Object:       {}/{}",
            s(obj, "/involvedObject/kind"),
            s(obj, "/involvedObject/name")
        );
        let _ = writeln!(out, "Reason:       {}", s(obj, "/reason"));
        let _ = writeln!(out, "Message:      {}", s(obj, "/message"));
        return out;
    }
    if events.is_empty() {
        let _ = writeln!(out, "Events:       <none>");
    } else {
        let _ = writeln!(out, "Events:");
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                let when = match s(e, "/lastTimestamp") {
                    "" => age(s(e, "/metadata/creationTimestamp"), now),
                    t => age(t, now),
                };
                let count = i(e, "/count");
                let when = if count > 1 {
                    format!("{when} (x{count})")
                } else {
                    when
                };
                vec![
                    s(e, "/type").into(),
                    s(e, "/reason").into(),
                    when,
                    s(e, "/source/component").into(),
                    s(e, "/message").into(),
                ]
            })
            .collect();
        for l in table(&["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], &rows).lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_like_kubectl() {
        let now = Utc::now();
        let ago = |s: i64| (now - chrono::Duration::seconds(s)).to_rfc3339();
        assert_eq!(age(&ago(5), now), "5s");
        assert_eq!(age(&ago(600), now), "10m");
        assert_eq!(age(&ago(3 * 3600), now), "3h");
        assert_eq!(age(&ago(5 * 86400), now), "5d");
    }

    #[test]
    fn pod_rows_show_readiness_restarts_and_waiting_reasons() {
        let p = json!({"metadata": {"name": "p", "creationTimestamp": Utc::now().to_rfc3339()},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": "Pending", "podIP": "10.0.0.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let r = row(Kind::Pod, &p, true, Utc::now());
        assert_eq!(r[..4], ["p", "1/2", "CrashLoopBackOff", "3"]);
        assert_eq!(r[5..], ["10.0.0.5", "n1"]);
    }

    #[test]
    fn describe_never_prints_secret_values() {
        let sec = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque", "data": {"password": "aHVudGVyMg=="}});
        let out = describe(Kind::Secret, &sec, &[], Utc::now());
        assert!(out.contains("password:  7 bytes"), "{out}");
        assert!(!out.contains("aHVudGVyMg"), "{out}");
    }
}
