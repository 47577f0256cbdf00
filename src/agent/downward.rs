//! The downward API: what a pod may read about itself, for env vars (`fieldRef`,
//! `resourceFieldRef`) and for the files of `downwardAPI` volumes and projections. Values are
//! the kubelet's: labels and annotations files are `key="value"` lines, sorted, values quoted as
//! Go's `%q`; resources are whole multiples of the divisor, rounded up, with an unset limit read
//! as the node's allocatable amount.

use std::collections::BTreeMap;

use super::inputs::ConfigError;
use crate::api::core::{Container, FieldSelectorRef, Pod, ResourceFieldSelector};
use crate::api::podfields::{divisor_millis, split_subscript};

/// What a pod's values come from besides the pod object: its address, the node's, and the
/// node's allocatable resources (cpu in millicores, memory and ephemeral storage in bytes).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub pod_ip: String,
    pub host_ip: String,
    pub cpu_millis: i128,
    pub memory_bytes: i128,
    pub storage_bytes: i128,
}

/// Go's `%q` of a string: double-quoted, with `\"`, `\\` and the escapes of control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The kubelet's FormatMap: `key="value"` per line, keys sorted, no newline at the end.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of a `fieldRef`, for an env var (`volume` false) or a volume file.
pub fn field(
    pod: &Pod,
    f: &FieldSelectorRef,
    facts: &Facts,
    volume: bool,
) -> Result<String, ConfigError> {
    let m = &pod.metadata;
    if let Some((path, key)) = split_subscript(&f.field_path) {
        return match path {
            "metadata.labels" => Ok(m.labels.get(key).cloned().unwrap_or_default()),
            "metadata.annotations" => Ok(m.annotations.get(key).cloned().unwrap_or_default()),
            _ => Err(ConfigError(format!(
                "fieldRef {:?} does not support a subscript",
                f.field_path
            ))),
        };
    }
    Ok(match f.field_path.as_str() {
        "metadata.name" => m.name().to_string(),
        "metadata.namespace" => m.namespace().to_string(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" if volume => format_map(&m.labels),
        "metadata.annotations" if volume => format_map(&m.annotations),
        "spec.nodeName" if !volume => pod.spec.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" if !volume => {
            pod.spec.service_account_name.clone().unwrap_or_default()
        }
        "status.podIP" | "status.podIPs" if !volume => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" if !volume => facts.host_ip.clone(),
        p => {
            return Err(ConfigError(format!(
                "unsupported fieldRef {p:?} (the API server should have refused it)"
            )))
        }
    })
}

/// The value of a `resourceFieldRef` of container `c` (env vars name no container: their own),
/// as the kubelet computes it: the request, or the limit (the node's allocatable when unset),
/// divided by the divisor and rounded up.
pub fn resource(
    pod: &Pod,
    own: Option<&Container>,
    r: &ResourceFieldSelector,
    facts: &Facts,
) -> Result<String, ConfigError> {
    let c = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => pod
            .spec
            .init_containers
            .iter()
            .chain(&pod.spec.containers)
            .find(|c| c.name == name)
            .ok_or_else(|| {
                ConfigError(format!(
                    "resourceFieldRef names no container {name:?} of the pod"
                ))
            })?,
        None => own.ok_or_else(|| ConfigError("resourceFieldRef needs a containerName".into()))?,
    };
    let (section, name) = r
        .resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resource {:?}", r.resource)))?;
    let res = c.resources.clone().unwrap_or_default();
    let set = if section == "limits" {
        &res.limits
    } else {
        &res.requests
    };
    // milli-units: millicores for cpu, milli-bytes for memory and storage
    let value = match set.get(name) {
        Some(q) => q.millis().map_err(ConfigError)?,
        None if section == "limits" => match name {
            "cpu" => facts.cpu_millis,
            "memory" => facts.memory_bytes * 1000,
            _ => facts.storage_bytes * 1000,
        },
        None => 0,
    };
    let divisor = r
        .divisor
        .as_ref()
        .map(|d| d.0.trim())
        .filter(|d| !d.is_empty() && *d != "0")
        .map_or(Some(1000), divisor_millis)
        .filter(|d| *d > 0)
        .ok_or_else(|| ConfigError(format!("unsupported divisor of {:?}", r.resource)))?;
    Ok(((value + divisor - 1) / divisor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::ResourceRequirements;
    use crate::api::meta::Quantity;

    #[test]
    fn labels_are_written_as_the_kubelet_writes_them() {
        let m = BTreeMap::from([
            ("tier".to_string(), "front\"end".to_string()),
            ("app".to_string(), "web".to_string()),
        ]);
        assert_eq!(format_map(&m), "app=\"web\"\ntier=\"front\\\"end\"");
        assert_eq!(go_quote("a\nb\u{1}é"), "\"a\\nb\\x01é\"");
    }

    #[test]
    fn resources_round_up_to_the_divisor_and_default_to_the_node() {
        let mut pod = Pod::default();
        let c = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: BTreeMap::from([("cpu".to_string(), Quantity("250m".into()))]),
                requests: BTreeMap::from([("memory".to_string(), Quantity("64Mi".into()))]),
            }),
            ..Default::default()
        };
        pod.spec.containers.push(c.clone());
        let facts = Facts {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            ..Default::default()
        };
        let get = |res: &str, div: Option<&str>| {
            let r = ResourceFieldSelector {
                container_name: None,
                resource: res.into(),
                divisor: div.map(|d| Quantity(d.into())),
            };
            resource(&pod, Some(&c), &r, &facts).unwrap()
        };
        assert_eq!(get("limits.cpu", None), "1");
        assert_eq!(get("limits.cpu", Some("1m")), "250");
        assert_eq!(get("requests.memory", Some("1Mi")), "64");
        assert_eq!(get("limits.memory", Some("1Gi")), "8");
        assert_eq!(get("requests.cpu", Some("0")), "0");
    }
}
