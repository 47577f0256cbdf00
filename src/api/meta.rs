//! Object metadata and the small value types every kind shares: `ObjectMeta`, owner references,
//! label selectors, `IntOrString`, quantities and timestamps, in the Kubernetes JSON shape.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, serialized as RFC 3339 with second precision like Kubernetes.
pub type Time = DateTime<Utc>;

/// `t` plus `secs` seconds, or None when that is past what a timestamp can hold (the year 9999,
/// the end of RFC 3339): request values such as `activeDeadlineSeconds` may be any int64.
pub fn seconds_after(t: Time, secs: i64) -> Option<Time> {
    use chrono::Datelike;
    chrono::Duration::try_seconds(secs)
        .and_then(|d| t.checked_add_signed(d))
        .filter(|end| end.year() <= 9999)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name must be unique within a namespace. It is required when creating resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace defines the space within which each name must be unique. An empty namespace is equivalent to the "default" namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// UID is the unique in time and space value for this object. Populated by the system. Read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// An opaque value that represents the internal version of this object, used for optimistic concurrency, change detection, and the watch operation. Read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// Map of string keys and values that can be used to organize and categorize (scope and select) objects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-patch-merge-key" = "uid", "x-kubernetes-patch-strategy" = "merge", "x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["uid"]))]
    pub owner_references: Vec<OwnerReference>,
    /// Who owns which fields (`ManagedFieldsEntry` objects), kept by the API server: see
    /// `api::managed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<serde_json::Value>,
}

impl ObjectMeta {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// `matchLabels` + `matchExpressions`, as in Deployment and Job selectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Vec<String>,
}

/// A field that holds either a number or a name (ports) or a percentage (maxSurge).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(i) => s.serialize_i64(*i),
            IntOrString::String(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IntOrString::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl IntOrString {
    /// Resolves a count or percentage against `total`, rounding percentages up when `round_up`.
    pub fn scaled(&self, total: i64, round_up: bool) -> Result<i64, String> {
        match self {
            IntOrString::Int(i) => Ok(*i),
            IntOrString::String(s) => {
                let pct = s
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<i64>().ok())
                    .ok_or_else(|| format!("{s:?} is neither an integer nor a percentage"))?;
                // checked: a request may set any percentage, and it must not overflow
                total
                    .checked_mul(pct)
                    .and_then(|v| if round_up { v.checked_add(99) } else { Some(v) })
                    .map(|v| v / 100)
                    .ok_or_else(|| format!("{s:?} is too large a percentage"))
            }
        }
    }
}

/// A resource quantity such as `500m`, `2`, `128Mi` or `1G`, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity(pub String);

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity such as 500m, 2 or 128Mi")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Quantity {
    /// The value in thousandths (CPU millicores, or milli-bytes for memory), or an explanation.
    pub fn millis(&self) -> Result<i128, String> {
        let s = self.0.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let num: f64 = num.parse().map_err(|_| {
            format!(
                "{:?} is not a quantity (expected e.g. 500m, 2, 128Mi)",
                self.0
            )
        })?;
        if num < 0.0 {
            return Err(format!("{:?} must not be negative", self.0));
        }
        let mult: f64 = match suffix {
            "" => 1000.0,
            "m" => 1.0,
            "k" => 1e6,
            "M" => 1e9,
            "G" => 1e12,
            "T" => 1e15,
            "Ki" => 1024.0 * 1000.0,
            "Mi" => 1024.0 * 1024.0 * 1000.0,
            "Gi" => 1024.0 * 1024.0 * 1024.0 * 1000.0,
            "Ti" => 1024.0f64.powi(4) * 1000.0,
            _ => {
                return Err(format!(
                    "{:?} has an unknown unit {suffix:?} (use m, k, M, G, T, Ki, Mi, Gi or Ti)",
                    self.0
                ))
            }
        };
        Ok((num * mult).round() as i128)
    }

    /// The value rounded up to whole units (bytes for memory, cores for CPU).
    pub fn whole(&self) -> Result<i64, String> {
        let units = self.millis()?.saturating_add(999) / 1000;
        i64::try_from(units).map_err(|_| format!("{:?} is too large", self.0))
    }
}

/// Generic `status.conditions[]` entry shared by Pod, Node, Deployment and Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `meta/v1` Condition, the condition of the newer kinds (a PodDisruptionBudget's): the
/// generation it was set from, and no heartbeat or probe times.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetaCondition {
    /// type of condition in CamelCase or in foo.example.com/CamelCase.
    #[serde(rename = "type")]
    pub type_: String,
    /// status of the condition, one of True, False, Unknown.
    pub status: String,
    /// observedGeneration represents the .metadata.generation that the condition was set based upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// lastTransitionTime is the last time the condition transitioned from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// reason contains a programmatic identifier indicating the reason for the condition's last transition.
    #[serde(default)]
    pub reason: String,
    /// message is a human readable message indicating details about the transition.
    #[serde(default)]
    pub message: String,
}

/// A reference to another object, as in `Event.involvedObject` and `CronJob.status.active`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_in_their_units() {
        assert_eq!(Quantity("500m".into()).millis().unwrap(), 500);
        assert_eq!(Quantity("2".into()).millis().unwrap(), 2000);
        assert_eq!(Quantity("0.5".into()).millis().unwrap(), 500);
        assert_eq!(Quantity("128Mi".into()).whole().unwrap(), 128 * 1024 * 1024);
        assert_eq!(Quantity("1G".into()).whole().unwrap(), 1_000_000_000);
        assert!(Quantity("12 parsecs".into()).millis().is_err());
        assert!(Quantity("-1".into()).millis().is_err());
    }

    #[test]
    fn int_or_string_scales_percentages() {
        assert_eq!(
            IntOrString::String("25%".into()).scaled(5, true).unwrap(),
            2
        );
        assert_eq!(
            IntOrString::String("25%".into()).scaled(5, false).unwrap(),
            1
        );
        assert_eq!(IntOrString::Int(3).scaled(5, false).unwrap(), 3);
        assert!(IntOrString::String("abc".into()).scaled(5, false).is_err());
        let huge = IntOrString::String(format!("{}%", i64::MAX / 2));
        assert!(huge.scaled(100, true).is_err());
    }
}
