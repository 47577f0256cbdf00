//! The `eviction` subresource of pods (`POST .../pods/NAME/eviction`, a `policy/v1` Eviction):
//! a delete that honours PodDisruptionBudgets, as kube-apiserver serves it to `kubectl drain`
//! and `orkops drain`. A pod that has already finished, is still Pending or is being deleted
//! is deleted at once. Otherwise the one budget that selects it must allow a disruption: the
//! handler spends one (`disruptionsAllowed - 1`, the pod in `disruptedPods`, compare-and-swap
//! on the budget) and then deletes the pod; when none is allowed the answer is 429, which
//! clients retry. A pod that is not ready is let go without spending one when the budget
//! is healthy anyway, or always under `unhealthyPodEvictionPolicy: AlwaysAllow`.

use axum::body::Bytes;
use chrono::Utc;
use serde_json::{json, Value};

use super::engine::{Command, DeleteOptions, Engine, ListQuery, Reply};
use super::{ApiError, Caller, StatusCause};
use crate::api::core::Pod;
use crate::api::labels::Selector;
use crate::api::policy::{Eviction, PodDisruptionBudget};
use crate::api::Kind;

/// kube-apiserver's bound on `disruptedPods`: evictions the disruption controller has not
/// confirmed yet.
const MAX_DISRUPTED_PODS: usize = 2000;
/// How often a write that lost a race is tried again before the client is told to retry.
const ATTEMPTS: usize = 5;

/// Decodes the body of a POST to `pods/NAME/eviction` into a command.
pub fn decode(namespace: &str, name: &str, body: &Bytes) -> Result<Command, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "an eviction needs a policy/v1 Eviction body: {\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{\"name\":POD}}".into(),
        ));
    }
    let v: Value = super::body::parse_json(body)?;
    let e: Eviction = crate::api::admit::decode(v)
        .map_err(|e| ApiError::BadRequest(format!("the Eviction body: {e}")))?;
    match (e.api_version.as_deref(), e.kind.as_deref()) {
        (None | Some("policy/v1" | "policy/v1beta1"), None | Some("Eviction")) => {}
        (v, k) => {
            return Err(ApiError::BadRequest(format!(
                "the eviction subresource takes a policy/v1 Eviction, not {} {}",
                v.unwrap_or(""),
                k.unwrap_or("")
            )))
        }
    }
    if e.metadata.name() != name {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Eviction object".into(),
        ));
    }
    let options = match &e.delete_options {
        None | Some(Value::Null) => super::write::DeleteBody::default(),
        Some(o) => super::write::delete_body(o)?,
    };
    Ok(Command::Evict {
        namespace: namespace.to_string(),
        name: name.to_string(),
        options: DeleteOptions {
            grace_period_seconds: options.grace_period_seconds,
            precondition_resource_version: options.precondition_resource_version,
            precondition_uid: options.precondition_uid,
            propagation: options.propagation.unwrap_or_default(),
            dry_run: options.dry_run,
        },
    })
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// kube's canIgnorePDB: the pod's disruption has happened already, or it never ran.
fn can_ignore_budgets(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed" | "Pending")
        || p.metadata.deletion_timestamp.is_some()
}

pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Whether budget `b` selects pod `p`: a null selector selects nothing, an empty one every
/// pod of the namespace (policy/v1), an invalid one nothing.
pub(crate) fn selects(b: &PodDisruptionBudget, p: &Pod) -> bool {
    b.metadata.namespace() == p.metadata.namespace()
        && b.spec.selector.as_ref().is_some_and(|ls| {
            Selector::from_label_selector(ls).is_ok_and(|s| s.matches(&p.metadata.labels))
        })
}

fn too_many(message: String, retry_after_seconds: Option<u32>) -> ApiError {
    ApiError::TooManyRequests {
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        causes: vec![StatusCause {
            reason: "DisruptionBudget".into(),
            message,
            field: String::new(),
        }],
        retry_after_seconds,
    }
}

/// What a budget says about one more disruption now.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Let the pod go and spend nothing (it is not ready and the budget can spare it).
    Free,
    /// Spend one disruption: the budget's status after it.
    Spend(Box<PodDisruptionBudget>),
}

/// kube's checkAndDecrement, and the unhealthy-pod policy before it.
fn judge(
    b: &PodDisruptionBudget,
    pod: &Pod,
    now: chrono::DateTime<Utc>,
) -> Result<Verdict, ApiError> {
    let name = b.metadata.name();
    let st = b.status.clone().unwrap_or_default();
    if !pod_ready(pod) {
        let always = b.spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow");
        if always || (st.current_healthy >= st.desired_healthy && st.desired_healthy > 0) {
            return Ok(Verdict::Free);
        }
    }
    if st.observed_generation.unwrap_or(0) < b.metadata.generation.unwrap_or(0) {
        return Err(too_many(
            format!("The disruption budget {name} is still being processed by the server."),
            Some(10),
        ));
    }
    if st.disruptions_allowed < 0 {
        return Err(ApiError::Forbidden(format!(
            "poddisruptionbudget {name:?} is forbidden: pdb disruptions allowed is negative"
        )));
    }
    if st.disrupted_pods.len() > MAX_DISRUPTED_PODS {
        return Err(ApiError::Forbidden(format!("poddisruptionbudget {name:?} is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller")));
    }
    if st.disruptions_allowed == 0 {
        return Err(too_many(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                st.desired_healthy, st.current_healthy
            ),
            None,
        ));
    }
    let mut spent = b.clone();
    let s = spent.status.get_or_insert_with(Default::default);
    s.disruptions_allowed -= 1;
    if s.disruptions_allowed == 0 {
        crate::controllers::disruption::set_allowed_condition(s, now);
    }
    s.disrupted_pods
        .insert(pod.metadata.name().to_string(), now);
    Ok(Verdict::Spend(Box::new(spent)))
}

async fn get_pod(engine: &Engine, caller: &Caller, ns: &str, name: &str) -> Result<Pod, ApiError> {
    let get = Command::Get {
        kind: Kind::Pod,
        namespace: Some(ns.to_string()),
        name: name.to_string(),
    };
    let Reply::Ok(v) = Box::pin(engine.handle(caller, get)).await? else {
        return Err(ApiError::Internal(
            "a get answered with something else".into(),
        ));
    };
    serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("a stored pod: {e}")))
}

async fn budgets_of(engine: &Engine, pod: &Pod) -> Result<Vec<PodDisruptionBudget>, ApiError> {
    let ns = pod.metadata.namespace();
    let list = Command::List {
        kind: Kind::PodDisruptionBudget,
        namespace: Some(ns.to_string()),
        query: ListQuery::default(),
    };
    let Reply::Json(bytes) = Box::pin(engine.handle(&Caller::Master, list)).await? else {
        return Err(ApiError::Internal(
            "a list answered with something else".into(),
        ));
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    let items = v["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .into_iter()
        .filter_map(|i| serde_json::from_value::<PodDisruptionBudget>(i).ok())
        .filter(|b| selects(b, pod))
        .collect())
}

/// Sets the pod's `DisruptionTarget` condition at the revision `pod` was read at; gives the
/// revision written.
async fn mark(engine: &Engine, pod: &Pod) -> Result<Option<i64>, ApiError> {
    let (ns, name) = (pod.metadata.namespace(), pod.metadata.name());
    let mut status = serde_json::to_value(pod.status.clone().unwrap_or_default())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut conditions: Vec<Value> = status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "DisruptionTarget")
        .collect();
    conditions.push(json!({
        "type": "DisruptionTarget", "status": "True",
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
        "lastTransitionTime": Utc::now(),
    }));
    status["conditions"] = json!(conditions);
    let mut body = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns}, "status": status});
    if let Some(rv) = revision(pod) {
        body["metadata"]["resourceVersion"] = json!(rv.to_string());
    }
    let write = Command::ReplaceStatus {
        kind: Kind::Pod,
        namespace: Some(ns.to_string()),
        name: name.to_string(),
        body,
    };
    let Reply::Ok(marked) = Box::pin(engine.handle(&Caller::Master, write)).await? else {
        return Err(ApiError::Internal(
            "a status write answered with something else".into(),
        ));
    };
    Ok(marked
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok()))
}

/// Marks the pod `DisruptionTarget` (as Kubernetes does before an eviction's delete: on the
/// latest pod, as long as the caller's precondition holds) and deletes it with the caller's
/// options.
async fn delete_pod(
    engine: &Engine,
    caller: &Caller,
    pod: &Pod,
    mut options: DeleteOptions,
) -> Result<(), ApiError> {
    let (ns, name) = (pod.metadata.namespace(), pod.metadata.name());
    if !options.dry_run {
        let mut current = pod.clone();
        let mut attempt = 0;
        loop {
            if let Some(rv) = options.precondition_resource_version {
                if revision(&current) != Some(rv) {
                    return Err(ApiError::Conflict(format!(
                        "pod {name:?} changed since resourceVersion {rv}"
                    )));
                }
            }
            match mark(engine, &current).await {
                Ok(rv) => {
                    // the precondition held; the delete is pinned to the mark's own revision
                    if options.precondition_resource_version.is_some() {
                        options.precondition_resource_version = rv;
                    }
                    break;
                }
                Err(ApiError::Conflict(_)) if attempt < ATTEMPTS => {
                    attempt += 1;
                    current = get_pod(engine, &Caller::Master, ns, name).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let delete = Command::Delete {
        kind: Kind::Pod,
        namespace: Some(ns.to_string()),
        name: name.to_string(),
        options,
    };
    Box::pin(engine.handle(caller, delete)).await.map(|_| ())
}

fn revision(p: &Pod) -> Option<i64> {
    p.metadata
        .resource_version
        .as_deref()
        .and_then(|s| s.parse().ok())
}

fn success() -> Reply {
    Reply::Created(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
    )
}

/// Serves an Evict command.
pub async fn handle(
    engine: &Engine,
    caller: &Caller,
    ns: String,
    name: String,
    options: DeleteOptions,
) -> Result<Reply, ApiError> {
    let pinned = options.precondition_resource_version.is_some();
    // the caller must be allowed to delete the pod: asked first, as a dry run, so that a
    // caller who may not changes nothing (no budget spent, no condition set)
    let probe = Command::Delete {
        kind: Kind::Pod,
        namespace: Some(ns.clone()),
        name: name.clone(),
        options: DeleteOptions {
            dry_run: true,
            ..options.clone()
        },
    };
    Box::pin(engine.handle(caller, probe)).await?;
    for _ in 0..ATTEMPTS {
        let pod = get_pod(engine, caller, &ns, &name).await?;
        if can_ignore_budgets(&pod) {
            let mut o = options.clone();
            let enforce = !matches!(phase(&pod), "Succeeded" | "Failed")
                && pod.metadata.deletion_timestamp.is_none();
            if enforce && !pinned {
                o.precondition_resource_version = revision(&pod);
            }
            match delete_pod(engine, caller, &pod, o).await {
                Err(ApiError::Conflict(_)) if !pinned => continue,
                r => return r.map(|()| success()),
            }
        }
        let budgets = budgets_of(engine, &pod).await?;
        if budgets.len() > 1 {
            return Err(ApiError::Internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            ));
        }
        let mut o = options.clone();
        if let Some(b) = budgets.into_iter().next() {
            match judge(&b, &pod, Utc::now())? {
                Verdict::Free => {
                    if !pinned {
                        o.precondition_resource_version = revision(&pod);
                    }
                    return match delete_pod(engine, caller, &pod, o).await {
                        Err(ApiError::Conflict(_)) if !pinned => Err(too_many(
                            format!(
                                "The disruption budget {} is still being processed by the server.",
                                b.metadata.name()
                            ),
                            Some(10),
                        )),
                        r => r.map(|()| success()),
                    };
                }
                Verdict::Spend(spent) if !options.dry_run => {
                    let write = Command::ReplaceStatus {
                        kind: Kind::PodDisruptionBudget,
                        namespace: Some(ns.clone()),
                        name: b.metadata.name().to_string(),
                        body: serde_json::to_value(&*spent)
                            .map_err(|e| ApiError::Internal(e.to_string()))?,
                    };
                    match Box::pin(engine.handle(&Caller::Master, write)).await {
                        Ok(_) => {}
                        // the budget changed meanwhile: judge again from the start
                        Err(ApiError::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Verdict::Spend(_) => {}
            }
        }
        return delete_pod(engine, caller, &pod, o)
            .await
            .map(|()| success());
    }
    Err(ApiError::Conflict(format!(
        "pod {name:?} or its disruption budget is changing too fast to evict; retry"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::meta::{Condition, LabelSelector};
    use crate::api::policy::PodDisruptionBudgetStatus;

    fn pod(ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web-1".into());
        p.metadata.namespace = Some("default".into());
        p.metadata.labels.insert("app".into(), "web".into());
        let mut st = crate::api::core::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        };
        st.conditions.push(Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        });
        p.status = Some(st);
        p
    }

    fn budget(allowed: i64, current: i64, desired: i64) -> PodDisruptionBudget {
        let mut b = PodDisruptionBudget::default();
        b.metadata.name = Some("web".into());
        b.metadata.namespace = Some("default".into());
        b.metadata.generation = Some(1);
        b.spec.selector = Some(LabelSelector {
            match_labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        });
        b.status = Some(PodDisruptionBudgetStatus {
            observed_generation: Some(1),
            disruptions_allowed: allowed,
            current_healthy: current,
            desired_healthy: desired,
            expected_pods: current,
            ..Default::default()
        });
        b
    }

    #[test]
    fn a_budget_spends_one_disruption_and_refuses_the_next_with_429() {
        let now = Utc::now();
        let Verdict::Spend(after) = judge(&budget(1, 3, 2), &pod(true), now).unwrap() else {
            panic!("a budget with one disruption allowed lets a ready pod go")
        };
        let st = after.status.as_ref().unwrap();
        assert_eq!(st.disruptions_allowed, 0);
        assert!(st.disrupted_pods.contains_key("web-1"));
        assert_eq!(st.conditions[0].reason, "InsufficientPods");
        let e = judge(&after, &pod(true), now).unwrap_err();
        assert_eq!(e.status().as_u16(), 429);
        let status = e.to_status();
        assert_eq!(
            status.causes()[0].message,
            "The disruption budget web needs 2 healthy pods and has 3 currently"
        );
        assert_eq!(status.causes()[0].reason, "DisruptionBudget");
    }

    #[test]
    fn an_unready_pod_goes_free_only_while_the_budget_is_healthy() {
        let now = Utc::now();
        assert_eq!(
            judge(&budget(0, 2, 2), &pod(false), now).unwrap(),
            Verdict::Free
        );
        // the application is short already: the unready pod is guarded like any other
        assert!(judge(&budget(0, 1, 2), &pod(false), now).is_err());
        let mut always = budget(0, 1, 2);
        always.spec.unhealthy_pod_eviction_policy = Some("AlwaysAllow".into());
        assert_eq!(judge(&always, &pod(false), now).unwrap(), Verdict::Free);
    }

    #[test]
    fn a_budget_not_yet_processed_or_negative_refuses() {
        let now = Utc::now();
        let mut stale = budget(5, 5, 0);
        stale.metadata.generation = Some(2);
        let e = judge(&stale, &pod(true), now).unwrap_err();
        assert_eq!(e.status().as_u16(), 429);
        assert!(e.to_status().causes()[0]
            .message
            .contains("still being processed"));
        let e = judge(&budget(-1, 0, 1), &pod(true), now).unwrap_err();
        assert_eq!(e.status().as_u16(), 403);
    }

    #[test]
    fn selectors_follow_policy_v1() {
        let mut b = budget(1, 1, 0);
        assert!(selects(&b, &pod(true)));
        b.spec.selector = Some(LabelSelector::default());
        assert!(
            selects(&b, &pod(true)),
            "an empty selector selects every pod"
        );
        b.spec.selector = None;
        assert!(!selects(&b, &pod(true)), "a null selector selects none");
        b.spec.selector = Some(LabelSelector::default());
        b.metadata.namespace = Some("other".into());
        assert!(!selects(&b, &pod(true)));
    }

    #[test]
    fn the_body_is_checked() {
        let bad = |b: &str| {
            decode("default", "web-1", &Bytes::from(b.to_string()))
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"db"}}"#)
                .contains("name in URL does not match")
        );
        assert!(bad(r#"{"kind":"Pod","metadata":{"name":"web-1"}}"#).contains("Eviction"));
        assert!(
            bad(r#"{"metadata":{"name":"web-1"},"deleteOptions":{"bogus":1}}"#).contains("bogus")
        );
        assert!(bad("").contains("Eviction body"));
        let ok = decode(
            "default",
            "web-1",
            &Bytes::from_static(br#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"web-1","namespace":"default"},"deleteOptions":{"gracePeriodSeconds":3}}"#),
        )
        .unwrap();
        let Command::Evict { options, .. } = ok else {
            panic!()
        };
        assert_eq!(options.grace_period_seconds, Some(3));
    }
}
