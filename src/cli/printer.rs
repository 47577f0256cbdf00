//! How objects are shown: the per-kind tables of `get` (and their `-o wide` columns), YAML and
//! JSON output, and the readable form of `describe`. Secret values are never printed by tables
//! or `describe`, only their sizes.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::api::Kind;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(x: &str) -> String {
    if x.is_empty() {
        "<none>".into()
    } else {
        x.into()
    }
}

/// Kubernetes-style short age: 45s, 12m, 5h, 3d.
pub fn age(ts: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(ts) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

fn labels_text(v: Option<&Value>, sep: &str) -> String {
    let Some(m) = v.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    m.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(sep)
}

/// What `get` shows in the STATUS column of a pod.
pub fn pod_status(p: &Value) -> String {
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    for c in statuses.into_iter().flatten() {
        if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            return r.into();
        }
        if let Some(r) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            if s(p, "/status/phase") != "Succeeded" {
                return r.into();
            }
        }
    }
    let reason = s(p, "/status/reason");
    if !reason.is_empty() {
        return reason.into();
    }
    or_none(s(p, "/status/phase"))
}

fn service_ports(v: &Value) -> String {
    let ports = v.pointer("/spec/ports").and_then(Value::as_array);
    let out: Vec<String> = ports
        .into_iter()
        .flatten()
        .map(|p| {
            let np = p
                .get("nodePort")
                .and_then(Value::as_i64)
                .map(|n| format!(":{n}"))
                .unwrap_or_default();
            format!(
                "{}{np}/{}",
                i(p, "/port"),
                p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
            )
        })
        .collect();
    if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    }
}

fn containers_of(v: &Value, template: &str) -> (String, String) {
    let cs = v.pointer(template).and_then(Value::as_array);
    let names: Vec<&str> = cs.into_iter().flatten().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.into_iter().flatten().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn ready_condition(v: &Value) -> &str {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
        .map(|c| s(c, "/status"))
        .unwrap_or("")
}

/// The column headers of `kind`'s table.
pub fn headers(kind: Kind, wide: bool) -> Vec<&'static str> {
    let (base, extra): (&[&str], &[&str]) = match kind {
        Kind::Pod => (
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE"],
        ),
        Kind::Node => (
            &["NAME", "STATUS", "AGE", "VERSION"],
            &["INTERNAL-IP", "POD-CIDR", "OS-IMAGE"],
        ),
        Kind::Namespace => (&["NAME", "STATUS", "AGE"], &[]),
        Kind::Deployment => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::Service => (
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        Kind::Job => (
            &["NAME", "COMPLETIONS", "DURATION", "AGE"],
            &["CONTAINERS", "IMAGES"],
        ),
        Kind::CronJob => (
            &[
                "NAME",
                "SCHEDULE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES"],
        ),
        Kind::ConfigMap => (&["NAME", "DATA", "AGE"], &[]),
        Kind::Endpoints => (&["NAME", "ENDPOINTS", "AGE"], &[]),
        Kind::ReplicaSet => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::ControllerRevision => (&["NAME", "CONTROLLER", "REVISION", "AGE"], &[]),
        Kind::Secret => (&["NAME", "TYPE", "DATA", "AGE"], &[]),
        Kind::PersistentVolumeClaim => (
            &["NAME", "STATUS", "CAPACITY", "ACCESS MODES", "NODE", "AGE"],
            &[],
        ),
        Kind::Event => (&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], &[]),
    };
    let mut h = base.to_vec();
    if wide {
        h.extend_from_slice(extra);
    }
    h
}

/// One table row for `obj`, matching `headers(kind, wide)`.
pub fn row(kind: Kind, obj: &Value, wide: bool, now: DateTime<Utc>) -> Vec<String> {
    let name = s(obj, "/metadata/name").to_string();
    let created = age(s(obj, "/metadata/creationTimestamp"), now);
    let (mut base, extra): (Vec<String>, Vec<String>) = match kind {
        Kind::Pod => {
            let cs = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = cs
                .into_iter()
                .flatten()
                .filter(|c| c["ready"] == Value::Bool(true))
                .count();
            let restarts: i64 = cs
                .into_iter()
                .flatten()
                .map(|c| i(c, "/restartCount"))
                .sum();
            (
                vec![
                    name,
                    format!("{ready}/{total}"),
                    pod_status(obj),
                    restarts.to_string(),
                    created,
                ],
                vec![
                    or_none(s(obj, "/status/podIP")),
                    or_none(s(obj, "/spec/nodeName")),
                ],
            )
        }
        Kind::Node => {
            let status = match ready_condition(obj) {
                "True" => "Ready",
                _ => "NotReady",
            };
            let status = if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
                format!("{status},SchedulingDisabled")
            } else {
                status.to_string()
            };
            let ip = obj
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| a.iter().find(|x| s(x, "/type") == "InternalIP"))
                .map(|x| s(x, "/address"))
                .unwrap_or("");
            (
                vec![
                    name,
                    status,
                    created,
                    or_none(s(obj, "/status/nodeInfo/agentVersion")),
                ],
                vec![
                    or_none(ip),
                    or_none(s(obj, "/spec/podCIDR")),
                    or_none(s(obj, "/status/nodeInfo/osImage")),
                ],
            )
        }
        Kind::Namespace => (
            vec![name, or_none(s(obj, "/status/phase")), created],
            vec![],
        ),
        Kind::Deployment => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let sel = labels_text(obj.pointer("/spec/selector/matchLabels"), ",");
            (
                vec![
                    name,
                    format!(
                        "{}/{}",
                        i(obj, "/status/readyReplicas"),
                        i(obj, "/spec/replicas")
                    ),
                    i(obj, "/status/updatedReplicas").to_string(),
                    i(obj, "/status/availableReplicas").to_string(),
                    created,
                ],
                vec![cn, im, sel],
            )
        }
        Kind::Service => {
            let ingress: Vec<&str> = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|x| {
                    x.get("hostname")
                        .or(x.get("ip"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                })
                .collect();
            let external = if !ingress.is_empty() {
                ingress.join(",")
            } else if s(obj, "/spec/type") == "LoadBalancer" {
                "<pending>".into()
            } else {
                "<none>".into()
            };
            (
                vec![
                    name,
                    s(obj, "/spec/type").into(),
                    or_none(s(obj, "/spec/clusterIP")),
                    external,
                    service_ports(obj),
                    created,
                ],
                vec![labels_text(obj.pointer("/spec/selector"), ",")],
            )
        }
        Kind::Job => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let duration = match (
                DateTime::parse_from_rfc3339(s(obj, "/status/startTime")),
                DateTime::parse_from_rfc3339(s(obj, "/status/completionTime")),
            ) {
                (Ok(a), Ok(b)) => format!("{}s", (b - a).num_seconds()),
                (Ok(a), Err(_)) => format!("{}s", (now - a.with_timezone(&Utc)).num_seconds()),
                _ => "".into(),
            };
            (
                vec![
                    name,
                    format!(
                        "{}/{}",
                        i(obj, "/status/succeeded"),
                        i(obj, "/spec/completions")
                    ),
                    duration,
                    created,
                ],
                vec![cn, im],
            )
        }
        Kind::CronJob => {
            let (cn, im) = containers_of(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = match s(obj, "/status/lastScheduleTime") {
                "" => "<none>".into(),
                t => age(t, now),
            };
            let active = obj
                .pointer("/status/active")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            (
                vec![
                    name,
                    s(obj, "/spec/schedule").into(),
                    obj.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string(),
                    active.to_string(),
                    last,
                    created,
                ],
                vec![cn, im],
            )
        }
        Kind::ReplicaSet => {
            let (cn, im) = containers_of(obj, "/spec/template/spec/containers");
            let sel = labels_text(obj.pointer("/spec/selector/matchLabels"), ",");
            (
                vec![
                    name,
                    i(obj, "/spec/replicas").to_string(),
                    i(obj, "/status/replicas").to_string(),
                    i(obj, "/status/readyReplicas").to_string(),
                    created,
                ],
                vec![cn, im, sel],
            )
        }
        Kind::ControllerRevision => {
            let owner = obj
                .pointer("/metadata/ownerReferences/0")
                .map(|o| format!("{}/{}", s(o, "/kind").to_lowercase(), s(o, "/name")))
                .unwrap_or_else(|| "<none>".into());
            let rev = obj.get("revision").and_then(Value::as_i64).unwrap_or(0);
            (vec![name, owner, rev.to_string(), created], vec![])
        }
        Kind::Endpoints => (vec![name, endpoints_column(obj), created], vec![]),
        Kind::ConfigMap => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len())
                + obj
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len());
            (vec![name, n.to_string(), created], vec![])
        }
        Kind::Secret => {
            let n = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            (
                vec![name, s(obj, "/type").into(), n.to_string(), created],
                vec![],
            )
        }
        Kind::PersistentVolumeClaim => {
            let modes: Vec<&str> = obj
                .pointer("/spec/accessModes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|m| match m {
                    "ReadWriteOnce" => "RWO",
                    "ReadOnlyMany" => "ROX",
                    "ReadWriteMany" => "RWX",
                    "ReadWriteOncePod" => "RWOP",
                    other => other,
                })
                .collect();
            (
                vec![
                    name,
                    or_none(s(obj, "/status/phase")),
                    s(obj, "/spec/resources/requests/storage").into(),
                    modes.join(","),
                    or_none(s(
                        obj,
                        "/metadata/annotations/volume.kubernetes.io~1selected-node",
                    )),
                    created,
                ],
                vec![],
            )
        }
        Kind::Event => {
            let last = match s(obj, "/lastTimestamp") {
                "" => age(s(obj, "/metadata/creationTimestamp"), now),
                t => age(t, now),
            };
            let object = format!(
                "{}/{}",
                s(obj, "/involvedObject/kind").to_lowercase(),
                s(obj, "/involvedObject/name")
            );
            (
                vec![
                    last,
                    s(obj, "/type").into(),
                    s(obj, "/reason").into(),
                    object,
                    s(obj, "/message").into(),
                ],
                vec![],
            )
        }
    };
    if wide {
        base.extend(extra);
    }
    base
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

/// `10.244.1.5:8080,10.244.2.3:8080 + 2 more`, as kubectl shows ready endpoints.
fn endpoints_column(obj: &Value) -> String {
    let mut all = Vec::new();
    for sub in obj
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = sub["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        for a in sub["addresses"].as_array().into_iter().flatten() {
            let ip = a["ip"].as_str().unwrap_or("");
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in &ports {
                all.push(format!("{ip}:{p}"));
            }
        }
    }
    match all.len() {
        0 => "<none>".into(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    }
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
