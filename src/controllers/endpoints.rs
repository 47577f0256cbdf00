//! The endpoints reconciler: for each service with a selector, the `Endpoints` object named as
//! the service lists the pods the selector picks, by pod IP: ready, running pods under
//! `addresses` (where service traffic goes), the rest — not ready, starting, terminating —
//! under `notReadyAddresses`. A named `targetPort` is resolved per pod from its container
//! ports, so pods that name the port differently land in different subsets.
//!
//! [`reconcile_key`] runs it per service on the controller runtime, as Kubernetes' endpoints
//! controller does: a pod's change wakes only the services that select it.

use std::collections::BTreeMap;

use super::runtime::{split_key, Action as Next, Ctx};
use super::ApiError;
use crate::api::core::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use crate::api::meta::{IntOrString, ObjectReference};
use crate::api::Kind;

/// The label that marks an `Endpoints` object as kept by this controller (and so removed with
/// its service).
pub const MANAGED_BY: &str = "endpoints.orkops.io/managed-by";

/// Whether traffic may go to the pod: it has an IP, runs, is Ready and is not being deleted.
pub fn pod_is_ready(p: &Pod) -> bool {
    let Some(st) = &p.status else { return false };
    p.metadata.deletion_timestamp.is_none()
        && st.phase.as_deref() == Some("Running")
        && st.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        && st
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether service `svc` selects pod `p`: same namespace, and every label of its selector (a
/// service without a selector selects no pod; its Endpoints are the user's).
pub fn selects(svc: &Service, p: &Pod) -> bool {
    !svc.spec.selector.is_empty()
        && svc.metadata.namespace() == p.metadata.namespace()
        && svc
            .spec
            .selector
            .iter()
            .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
}

/// Keeps the Endpoints of service `key` (`namespace/name`) in step with the pods it selects,
/// from the caches; removes the Endpoints this controller made once the service is gone or
/// has no selector. A racing write (the cache lags) is tried again shortly.
pub async fn reconcile_key(ctx: &Ctx, key: &str) -> Result<Next, ApiError> {
    let (ns, name) = split_key(key);
    let api = &ctx.api;
    let want = ctx.caches.services.get(ns, name).and_then(|svc| {
        let pods = ctx.caches.pods.filter(|p| selects(&svc, p));
        desired(&svc, &pods).map(|subsets| object(&svc, subsets))
    });
    let have = ctx.caches.endpoints.get(ns, name);
    let encode =
        |e: &Endpoints| serde_json::to_value(e).map_err(|e| ApiError::Internal(e.to_string()));
    let r = match (want, have) {
        (Some(obj), Some(cur))
            if cur.subsets == obj.subsets && cur.metadata.labels == obj.metadata.labels =>
        {
            Ok(())
        }
        (Some(obj), Some(_)) => {
            api.replace(Kind::Endpoints, Some(ns), name, encode(&obj)?)
                .await
        }
        (Some(obj), None) => api.create(Kind::Endpoints, ns, encode(&obj)?).await,
        (None, Some(cur)) if cur.metadata.labels.contains_key(MANAGED_BY) => {
            api.delete(Kind::Endpoints, Some(ns), name, None).await
        }
        (None, _) => Ok(()),
    };
    match r {
        Ok(()) => Ok(Next::await_change()),
        // the service or its namespace went away meanwhile, or a racing write
        Err(ApiError::NotFound { .. } | ApiError::Conflict(_) | ApiError::AlreadyExists { .. }) => {
            Ok(Next::requeue(std::time::Duration::from_secs(1)))
        }
        Err(e) => Err(e),
    }
}

/// The subsets of the Endpoints of `svc` given every pod of its namespace; `None` for a
/// service without a selector (its Endpoints are the user's to write).
pub fn desired<P: std::borrow::Borrow<Pod>>(
    svc: &Service,
    pods: &[P],
) -> Option<Vec<EndpointSubset>> {
    if svc.spec.selector.is_empty() {
        return None;
    }
    let publish_all = svc.spec.publish_not_ready_addresses == Some(true);
    // resolved ports -> subset
    let mut groups: BTreeMap<Vec<(Option<String>, i64, String)>, EndpointSubset> = BTreeMap::new();
    for p in pods {
        let p: &Pod = p.borrow();
        if !selects(svc, p) {
            continue;
        }
        let Some(ip) = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        if publish_all && p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(ports) = resolve_ports(svc, p) else {
            continue; // a named port the pod does not have: not an endpoint
        };
        // as upstream: a pod whose subdomain is this service is also known by its hostname
        // (`web-0.web.default.svc`, what StatefulSets give their pods)
        let hostname = p.spec.hostname.clone().filter(|h| {
            !h.is_empty() && p.spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        });
        let addr = EndpointAddress {
            ip,
            hostname,
            node_name: p.spec.node_name.clone(),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: p.metadata.namespace.clone(),
                name: Some(p.metadata.name().to_string()),
                uid: p.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let sub = groups
            .entry(ports.clone())
            .or_insert_with(|| EndpointSubset {
                ports: ports
                    .iter()
                    .map(|(name, port, proto)| EndpointPort {
                        name: name.clone(),
                        port: *port,
                        protocol: Some(proto.clone()),
                    })
                    .collect(),
                ..Default::default()
            });
        // publishNotReadyAddresses: every pod with an address serves (a StatefulSet's peers
        // find each other before they are Ready), as Kubernetes' endpoints controller does
        if pod_is_ready(p) || publish_all {
            sub.addresses.push(addr);
        } else {
            sub.not_ready_addresses.push(addr);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups.into_values().collect();
    for s in &mut subsets {
        s.addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
        s.not_ready_addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    Some(subsets)
}

/// The pod-side port of each service port; `None` when a named target port is missing.
fn resolve_ports(svc: &Service, p: &Pod) -> Option<Vec<(Option<String>, i64, String)>> {
    svc.spec
        .ports
        .iter()
        .map(|sp| {
            let proto = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            let port = match &sp.target_port {
                None => sp.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(name)) => {
                    p.spec
                        .containers
                        .iter()
                        .flat_map(|c| &c.ports)
                        .find(|cp| {
                            cp.name.as_deref() == Some(name.as_str())
                                && cp.protocol.as_deref().unwrap_or("TCP") == proto
                        })?
                        .container_port
                }
            };
            Some((sp.name.clone(), port, proto))
        })
        .collect()
}

/// The Endpoints object to store for `svc`.
pub fn object(svc: &Service, subsets: Vec<EndpointSubset>) -> Endpoints {
    let mut meta = crate::api::meta::ObjectMeta {
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        ..Default::default()
    };
    meta.labels = svc.metadata.labels.clone();
    meta.labels.insert(MANAGED_BY.into(), "orkops".into());
    Endpoints {
        api_version: Some("v1".into()),
        kind: Some("Endpoints".into()),
        metadata: meta,
        subsets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::core::{Container, ContainerPort, PodStatus, ServicePort};
    use crate::api::meta::Condition;

    fn svc(target: IntOrString) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("default".into());
        s.spec.selector.insert("app".into(), "web".into());
        s.spec.ports.push(ServicePort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: 80,
            target_port: Some(target),
            ..Default::default()
        });
        s
    }

    fn pod(name: &str, ip: &str, ready: bool, port_name: &str, port: i64) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.labels.insert("app".into(), "web".into());
        p.spec.node_name = Some("n1".into());
        p.spec.containers.push(Container {
            name: "c".into(),
            ports: vec![ContainerPort {
                name: Some(port_name.into()),
                container_port: port,
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        p
    }

    #[test]
    fn ready_pods_are_addresses_and_the_rest_not_ready() {
        let mut terminating = pod("c", "10.244.0.4", true, "http", 8080);
        terminating.metadata.deletion_timestamp = Some(chrono::Utc::now());
        let mut other = pod("d", "10.244.0.5", true, "http", 8080);
        other.metadata.labels.insert("app".into(), "db".into());
        let mut no_ip = pod("e", "", false, "http", 8080);
        no_ip.status.as_mut().unwrap().pod_ip = None;
        let pods = vec![
            pod("a", "10.244.0.3", true, "http", 8080),
            pod("b", "10.244.1.2", false, "http", 8080),
            terminating,
            other,
            no_ip,
        ];
        let subsets = desired(&svc(IntOrString::Int(8080)), &pods).unwrap();
        assert_eq!(subsets.len(), 1);
        let ips = |v: &[EndpointAddress]| v.iter().map(|a| a.ip.clone()).collect::<Vec<_>>();
        assert_eq!(ips(&subsets[0].addresses), ["10.244.0.3"]);
        assert_eq!(
            ips(&subsets[0].not_ready_addresses),
            ["10.244.0.4", "10.244.1.2"]
        );
        assert_eq!(subsets[0].ports[0].port, 8080);
        assert_eq!(subsets[0].ports[0].name.as_deref(), Some("http"));

        // publishNotReadyAddresses: not-ready pods serve too; pods being deleted do not
        let mut publish = svc(IntOrString::Int(8080));
        publish.spec.publish_not_ready_addresses = Some(true);
        let subsets = desired(&publish, &pods).unwrap();
        assert_eq!(ips(&subsets[0].addresses), ["10.244.0.3", "10.244.1.2"]);
        assert!(subsets[0].not_ready_addresses.is_empty());
    }

    #[test]
    fn a_named_target_port_is_resolved_per_pod() {
        let pods = vec![
            pod("a", "10.244.0.3", true, "web", 8080),
            pod("b", "10.244.0.4", true, "web", 9090),
            pod("c", "10.244.0.5", true, "other", 7070),
        ];
        let subsets = desired(&svc(IntOrString::String("web".into())), &pods).unwrap();
        let ports: Vec<i64> = subsets.iter().map(|s| s.ports[0].port).collect();
        assert_eq!(ports, [8080, 9090], "pod c lacks the port and is left out");
    }

    #[test]
    fn a_service_without_selector_is_left_alone() {
        let mut s = svc(IntOrString::Int(80));
        s.spec.selector.clear();
        assert!(desired::<Pod>(&s, &[]).is_none());
        let o = object(&svc(IntOrString::Int(80)), vec![]);
        assert_eq!(
            o.metadata.labels.get(MANAGED_BY).map(String::as_str),
            Some("orkops")
        );
    }
}
