//! The admission plugins a pod goes through on create besides the ServiceAccount one, as
//! kube-apiserver has them on by default: Priority (`priorityClassName` resolved to `priority`
//! and `preemptionPolicy`; orkops serves no PriorityClass objects, so only the two built-in
//! system classes exist, and every other name is "not found") and RuntimeClass (orkops serves
//! no RuntimeClass objects, so every `runtimeClassName` is "not found", and an `overhead` is
//! refused for want of a class that defines it).

use serde_json::{json, Value};

/// The built-in priority classes: (name, value). Both preempt lower priorities.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

const PREEMPT_LOWER: &str = "PreemptLowerPriority";

/// Admits a pod being created; the error is the reason it is forbidden, as kube-apiserver words
/// it after `pods "NAME" is forbidden: `.
pub fn admit(pod: &mut Value) -> Result<(), String> {
    let spec = pod.get("spec").cloned().unwrap_or_default();
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        return Err(format!("pod rejected: RuntimeClass {rc:?} not found"));
    }
    if spec
        .get("overhead")
        .and_then(Value::as_object)
        .is_some_and(|o| !o.is_empty())
    {
        return Err(
            "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
                .into(),
        );
    }
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let priority = match class {
        None => 0,
        Some(name) => SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("no PriorityClass with name {name} was found"))?,
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != priority {
            return Err(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != PREEMPT_LOWER {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {PREEMPT_LOWER} from the given PriorityClass name"));
        }
    }
    if let Some(s) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        s.insert("priority".into(), json!(priority));
        s.insert("preemptionPolicy".into(), json!(PREEMPT_LOWER));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn priority_comes_from_the_class_and_unknown_classes_are_forbidden() {
        let mut p = pod(json!({}));
        admit(&mut p).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut p = pod(json!({"priorityClassName": "system-cluster-critical"}));
        admit(&mut p).unwrap();
        assert_eq!(p["spec"]["priority"], 2_000_000_000);
        assert_eq!(
            admit(&mut pod(json!({"priorityClassName": "high"}))),
            Err("no PriorityClass with name high was found".into())
        );
        assert!(admit(&mut pod(json!({"priority": 5})))
            .unwrap_err()
            .starts_with("the integer value of priority (5) must not be provided in pod spec"));
        assert!(admit(&mut pod(json!({"preemptionPolicy": "Never"})))
            .unwrap_err()
            .starts_with("the string value of PreemptionPolicy (Never) must not be provided"));
        assert_eq!(
            admit(&mut pod(json!({"runtimeClassName": "gvisor"}))),
            Err("pod rejected: RuntimeClass \"gvisor\" not found".into())
        );
        assert!(admit(&mut pod(json!({"overhead": {"cpu": "250m"}})))
            .unwrap_err()
            .contains("Pod Overhead set without corresponding RuntimeClass"));
    }
}
