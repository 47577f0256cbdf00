//! The load balancer reconciler: a pure function from the cluster's LoadBalancer services, its
//! nodes' instances and what AWS holds (tagged with the cluster) to the changes that make each
//! service reachable through a load balancer of its own — an NLB (default) or an ALB, one
//! listener per service port, forwarding to a target group of the nodes' instances on the
//! port's node port — and that remove what belongs to services that are gone. The load
//! balancers share the cluster's `lbs` security group, whose ingress rules this reconciler
//! owns (the listener ports, from each service's source ranges); the nodes' group lets that
//! group reach the node ports. Everything it makes is tagged with the service, so a service
//! deleted while no master ran is cleaned up when one comes back.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::core::Service;
use crate::cloud::model::{Observed, Rule, Source, GROUP_LBS};

/// Tag naming the service (`NAMESPACE/NAME`) a resource belongs to.
pub const TAG_SERVICE: &str = "orkops.io/service";
/// Tag holding the service's uid (a service re-created under the same name is another one).
pub const TAG_SERVICE_UID: &str = "orkops.io/service-uid";
/// Tag of a service's target group: `PROTOCOL:PORT:NODEPORT` of its listener.
pub const TAG_LISTENER: &str = "orkops.io/listener";
/// The role tag of what this reconciler makes.
pub const ROLE_SERVICE: &str = "service";

/// orkops's own annotation: `nlb` (the default) or `alb`.
pub const ANNOTATION_TYPE: &str = "orkops.io/load-balancer-type";
/// The Kubernetes AWS provider's annotation; `nlb` and `external` mean an NLB.
pub const ANNOTATION_K8S_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbKind {
    Network,
    Application,
}

impl LbKind {
    /// As ELBv2 names it.
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::Network => "network",
            LbKind::Application => "application",
        }
    }
}

/// One listener a service needs.
#[derive(Debug, Clone, PartialEq)]
pub struct WantedListener {
    /// `TCP`, `UDP` (NLB) or `HTTP` (ALB).
    pub protocol: String,
    pub port: i32,
    pub node_port: i32,
    /// The value of its target group's `TAG_LISTENER`.
    pub key: String,
    pub target_group: String,
}

/// The load balancer a service needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// `NAMESPACE/NAME`.
    pub service: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub kind: LbKind,
    pub lb_name: String,
    pub listeners: Vec<WantedListener>,
    /// Who may reach the listeners.
    pub source_ranges: Vec<String>,
}

/// `cluster-` and 8 hex digits of a hash of `parts`: unique, stable and within ELBv2's 32
/// characters (cluster names have at most 20).
fn aws_name(cluster: &str, parts: &[&str]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, parts.join("\0").as_bytes());
    format!("{cluster}-{}", &hex::encode(d)[..8])
}

/// What a service asks for: `Ok(None)` when it is not a LoadBalancer service (or its node
/// ports are not allocated yet), an error naming the field when it asks for what orkops
/// cannot make.
pub fn wanted(cluster: &str, svc: &Service) -> Result<Option<Wanted>, String> {
    if svc.spec.type_.as_deref() != Some("LoadBalancer")
        || svc.metadata.deletion_timestamp.is_some()
    {
        return Ok(None);
    }
    let ann = &svc.metadata.annotations;
    let ours = match ann.get(ANNOTATION_TYPE).map(String::as_str) {
        None => None,
        Some("nlb") => Some(LbKind::Network),
        Some("alb") => Some(LbKind::Application),
        Some(v) => {
            return Err(format!(
                "metadata.annotations[{ANNOTATION_TYPE}]: {v:?} is not a load balancer type orkops makes (nlb, alb)"
            ))
        }
    };
    let theirs = match ann.get(ANNOTATION_K8S_TYPE).map(String::as_str) {
        None => None,
        Some("nlb" | "external") => Some(LbKind::Network),
        Some(v) => {
            return Err(format!(
                "metadata.annotations[{ANNOTATION_K8S_TYPE}]: {v:?} is not supported (nlb or external; for an ALB use {ANNOTATION_TYPE}: alb)"
            ))
        }
    };
    let kind = match (ours, theirs) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!(
                "metadata.annotations: {ANNOTATION_TYPE} and {ANNOTATION_K8S_TYPE} ask for different load balancers"
            ))
        }
        (a, b) => a.or(b).unwrap_or(LbKind::Network),
    };
    let uid = svc.metadata.uid.clone().unwrap_or_default();
    let ns = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = svc.metadata.name().to_string();
    let mut listeners = Vec::new();
    let mut seen: BTreeMap<i64, String> = BTreeMap::new();
    for (i, p) in svc.spec.ports.iter().enumerate() {
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        let field = format!("spec.ports[{i}]");
        if let Some(other) = seen.insert(p.port, proto.clone()) {
            return Err(format!(
                "{field}: port {} is used twice ({other} and {proto}); a load balancer listens once per port",
                p.port
            ));
        }
        let protocol = match (kind, proto.as_str()) {
            (LbKind::Network, "TCP" | "UDP") => proto.clone(),
            (LbKind::Application, "TCP") => "HTTP".to_string(),
            (LbKind::Application, _) => {
                return Err(format!(
                "{field}: an ALB carries HTTP over TCP only, not {proto} (use an NLB for {proto})"
            ))
            }
            (LbKind::Network, _) => {
                return Err(format!("{field}: an NLB carries TCP or UDP, not {proto}"))
            }
        };
        let Some(node_port) = p.node_port else {
            return Ok(None); // the API allocates it; the next pass sees it
        };
        let key = format!("{protocol}:{}:{node_port}", p.port);
        listeners.push(WantedListener {
            target_group: aws_name(cluster, &[&uid, &key]),
            protocol,
            port: p.port as i32,
            node_port: node_port as i32,
            key,
        });
    }
    let mut source_ranges = Vec::new();
    for (i, r) in svc.spec.load_balancer_source_ranges.iter().enumerate() {
        let net: ipnet::Ipv4Net = r.parse().map_err(|_| {
            format!("spec.loadBalancerSourceRanges[{i}]: {r:?} is not an IPv4 CIDR")
        })?;
        source_ranges.push(net.trunc().to_string());
    }
    if source_ranges.is_empty() {
        source_ranges.push("0.0.0.0/0".into());
    }
    Ok(Some(Wanted {
        service: format!("{ns}/{name}"),
        lb_name: aws_name(cluster, &[&uid]),
        namespace: ns,
        name,
        uid,
        kind,
        listeners,
        source_ranges,
    }))
}

/// One change to AWS (or to a service's status).
#[derive(Debug, Clone, PartialEq)]
pub enum LbAction {
    CreateLoadBalancer {
        service: usize,
    },
    DeleteLoadBalancer {
        arn: String,
        why: String,
    },
    CreateTargetGroup {
        service: usize,
        listener: usize,
    },
    DeleteTargetGroup {
        arn: String,
    },
    RegisterTargets {
        target_group: String,
        instances: Vec<String>,
        port: i32,
    },
    DeregisterTargets {
        target_group: String,
        instances: Vec<String>,
    },
    CreateListener {
        service: usize,
        listener: usize,
        load_balancer: String,
        target_group: String,
    },
    DeleteListener {
        arn: String,
    },
    Authorize {
        group: String,
        rules: Vec<Rule>,
    },
    Revoke {
        group: String,
        rules: Vec<Rule>,
    },
    /// Write `status.loadBalancer.ingress` (empty: none).
    SetStatus {
        namespace: String,
        name: String,
        hostname: Option<String>,
    },
}

/// What the services' load balancers need now. `wanted` are the LoadBalancer services
/// (index = `service` in the actions), `statuses` each service's current ingress hostname
/// (for every service, LoadBalancer or not), `nodes` the instance ids of the cluster's nodes.
pub fn plan(
    wanted: &[Wanted],
    statuses: &BTreeMap<(String, String), Option<String>>,
    nodes: &BTreeSet<String>,
    o: &Observed,
) -> Vec<LbAction> {
    let mut out = Vec::new();
    let mine = |tags: &BTreeMap<String, String>| {
        tags.get(crate::cloud::TAG_ROLE).map(String::as_str) == Some(ROLE_SERVICE)
    };
    let uid_of =
        |tags: &BTreeMap<String, String>| tags.get(TAG_SERVICE_UID).cloned().unwrap_or_default();
    let wanted_uids: BTreeSet<&str> = wanted.iter().map(|w| w.uid.as_str()).collect();

    for (si, w) in wanted.iter().enumerate() {
        let lb = o
            .load_balancers
            .iter()
            .find(|l| mine(&l.tags) && uid_of(&l.tags) == w.uid);
        let lb = match lb {
            Some(l) if l.kind != w.kind.as_str() => {
                out.push(LbAction::DeleteLoadBalancer {
                    arn: l.arn.clone(),
                    why: format!(
                        "the service asks for an {} load balancer now",
                        w.kind.as_str()
                    ),
                });
                None
            }
            Some(l) => Some(l),
            None => {
                out.push(LbAction::CreateLoadBalancer { service: si });
                None
            }
        };
        let tgs: Vec<_> = o
            .target_groups
            .iter()
            .filter(|g| mine(&g.tags) && uid_of(&g.tags) == w.uid)
            .collect();
        for (li, l) in w.listeners.iter().enumerate() {
            let tg = tgs
                .iter()
                .find(|g| g.tags.get(TAG_LISTENER) == Some(&l.key));
            let Some(tg) = tg else {
                out.push(LbAction::CreateTargetGroup {
                    service: si,
                    listener: li,
                });
                continue;
            };
            let have: BTreeSet<&String> = tg.targets.iter().collect();
            let add: Vec<String> = nodes
                .iter()
                .filter(|n| !have.contains(n))
                .cloned()
                .collect();
            if !add.is_empty() {
                out.push(LbAction::RegisterTargets {
                    target_group: tg.arn.clone(),
                    instances: add,
                    port: l.node_port,
                });
            }
            let gone: Vec<String> = tg
                .targets
                .iter()
                .filter(|t| !nodes.contains(*t))
                .cloned()
                .collect();
            if !gone.is_empty() {
                out.push(LbAction::DeregisterTargets {
                    target_group: tg.arn.clone(),
                    instances: gone,
                });
            }
            if let Some(lb) = lb {
                let on_port = o
                    .listeners
                    .iter()
                    .find(|x| x.load_balancer == lb.arn && x.port == l.port);
                match on_port {
                    Some(x)
                        if x.protocol == l.protocol
                            && x.target_group.as_deref() == Some(&tg.arn) => {}
                    // another protocol or node port: replaced (the old one goes below)
                    Some(_) => {}
                    None => out.push(LbAction::CreateListener {
                        service: si,
                        listener: li,
                        load_balancer: lb.arn.clone(),
                        target_group: tg.arn.clone(),
                    }),
                }
            }
        }
        if let Some(lb) = lb {
            for x in o.listeners.iter().filter(|x| x.load_balancer == lb.arn) {
                let keep = w.listeners.iter().any(|l| {
                    l.port == x.port
                        && l.protocol == x.protocol
                        && tgs.iter().any(|g| {
                            g.tags.get(TAG_LISTENER) == Some(&l.key)
                                && Some(&g.arn) == x.target_group.as_ref()
                        })
                });
                if !keep {
                    out.push(LbAction::DeleteListener { arn: x.arn.clone() });
                }
            }
        }
        // target groups no listener wants any more, once nothing forwards to them
        for g in &tgs {
            let wanted_key = w
                .listeners
                .iter()
                .any(|l| g.tags.get(TAG_LISTENER) == Some(&l.key));
            let in_use = o
                .listeners
                .iter()
                .any(|x| x.target_group.as_ref() == Some(&g.arn));
            if !wanted_key && !in_use {
                out.push(LbAction::DeleteTargetGroup { arn: g.arn.clone() });
            }
        }
        let hostname = lb.map(|l| l.dns.clone());
        let key = (w.namespace.clone(), w.name.clone());
        if lb.is_some() && statuses.get(&key).cloned().flatten() != hostname {
            out.push(LbAction::SetStatus {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                hostname,
            });
        }
    }

    // what belongs to services that are gone (or are no LoadBalancer any more)
    for l in o.load_balancers.iter().filter(|l| mine(&l.tags)) {
        if !wanted_uids.contains(uid_of(&l.tags).as_str()) {
            out.push(LbAction::DeleteLoadBalancer {
                arn: l.arn.clone(),
                why: format!(
                    "service {} is gone or no LoadBalancer",
                    l.tags.get(TAG_SERVICE).map(String::as_str).unwrap_or("?")
                ),
            });
        }
    }
    for g in o.target_groups.iter().filter(|g| mine(&g.tags)) {
        let in_use = o
            .listeners
            .iter()
            .any(|x| x.target_group.as_ref() == Some(&g.arn));
        if !wanted_uids.contains(uid_of(&g.tags).as_str()) && !in_use {
            out.push(LbAction::DeleteTargetGroup { arn: g.arn.clone() });
        }
    }
    for ((ns, name), host) in statuses {
        let is_wanted = wanted.iter().any(|w| &w.namespace == ns && &w.name == name);
        if !is_wanted && host.is_some() {
            out.push(LbAction::SetStatus {
                namespace: ns.clone(),
                name: name.clone(),
                hostname: None,
            });
        }
    }

    // the lbs group: exactly the listener ports, from the source ranges
    if let Some(g) = o.group(GROUP_LBS) {
        let mut want: Vec<Rule> = Vec::new();
        for w in wanted {
            for l in &w.listeners {
                let proto = if l.protocol == "UDP" { "udp" } else { "tcp" };
                for r in &w.source_ranges {
                    want.push(Rule {
                        protocol: proto.into(),
                        from: l.port,
                        to: l.port,
                        source: Source::Cidr(r.clone()),
                    });
                }
            }
        }
        want.sort();
        want.dedup();
        let add: Vec<Rule> = want
            .iter()
            .filter(|r| !g.rules.contains(r))
            .cloned()
            .collect();
        let extra: Vec<Rule> = g
            .rules
            .iter()
            .filter(|r| !want.contains(r))
            .cloned()
            .collect();
        if !add.is_empty() {
            out.push(LbAction::Authorize {
                group: g.id.clone(),
                rules: add,
            });
        }
        if !extra.is_empty() {
            out.push(LbAction::Revoke {
                group: g.id.clone(),
                rules: extra,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::{LoadBalancer, SecurityGroup, TargetGroup};

    fn svc(yaml: &str) -> Service {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn web(extra_meta: &str, ports: &str) -> Service {
        svc(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default, uid: u1{extra_meta}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: {ports}\n"
        ))
    }

    const HTTP: &str = "[{port: 80, nodePort: 30080}]";

    #[test]
    fn a_service_wants_an_nlb_by_default_and_an_alb_when_annotated() {
        let w = wanted("dev", &web("", HTTP)).unwrap().unwrap();
        assert_eq!(w.kind, LbKind::Network);
        assert_eq!(w.listeners[0].protocol, "TCP");
        assert_eq!(w.listeners[0].key, "TCP:80:30080");
        assert!(w.lb_name.starts_with("dev-") && w.lb_name.len() <= 32);
        assert_eq!(w.source_ranges, ["0.0.0.0/0"]);
        let alb = wanted(
            "dev",
            &web(", annotations: {orkops.io/load-balancer-type: alb}", HTTP),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (alb.kind, alb.listeners[0].protocol.as_str()),
            (LbKind::Application, "HTTP")
        );
        let k8s = wanted(
            "dev",
            &web(
                ", annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}",
                HTTP,
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(k8s.kind, LbKind::Network);
        let cip = svc(
            "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec: {ports: [{port: 80}]}\n",
        );
        assert_eq!(wanted("dev", &cip).unwrap(), None);
        assert_eq!(
            wanted("dev", &web("", "[{port: 80}]")).unwrap(),
            None,
            "node port not yet allocated"
        );
    }

    #[test]
    fn what_orkops_cannot_make_is_an_error_naming_the_field() {
        for (meta, ports, want) in [
            (", annotations: {orkops.io/load-balancer-type: clb}", HTTP, "\"clb\" is not a load balancer type"),
            (", annotations: {service.beta.kubernetes.io/aws-load-balancer-type: classic}", HTTP, "aws-load-balancer-type]: \"classic\""),
            (", annotations: {orkops.io/load-balancer-type: alb}", "[{port: 53, protocol: UDP, nodePort: 30053}]", "spec.ports[0]: an ALB carries HTTP"),
            ("", "[{port: 53, nodePort: 30053}, {port: 53, protocol: UDP, nodePort: 30054}]", "spec.ports[1]: port 53 is used twice"),
            (", annotations: {orkops.io/load-balancer-type: alb, service.beta.kubernetes.io/aws-load-balancer-type: nlb}", HTTP, "ask for different"),
        ] {
            let e = wanted("dev", &web(meta, ports)).unwrap_err();
            assert!(e.contains(want), "{want:?} in {e}");
        }
        let mut s = web("", HTTP);
        s.spec.load_balancer_source_ranges = vec!["nope".into()];
        assert!(wanted("dev", &s)
            .unwrap_err()
            .contains("spec.loadBalancerSourceRanges[0]"));
    }

    fn tags(uid: &str, listener: Option<&str>) -> BTreeMap<String, String> {
        let mut t = BTreeMap::from([
            ("orkops.io/role".to_string(), "service".to_string()),
            (TAG_SERVICE_UID.to_string(), uid.to_string()),
            (TAG_SERVICE.to_string(), "default/web".to_string()),
        ]);
        if let Some(l) = listener {
            t.insert(TAG_LISTENER.into(), l.into());
        }
        t
    }

    fn lbs_group() -> SecurityGroup {
        SecurityGroup {
            id: "sg-lbs".into(),
            vpc: "vpc".into(),
            role: GROUP_LBS.into(),
            rules: vec![],
        }
    }

    #[test]
    fn a_new_service_gets_its_load_balancer_then_listener_targets_status_and_rules() {
        let w = vec![wanted("dev", &web("", HTTP)).unwrap().unwrap()];
        let nodes = BTreeSet::from(["i-1".to_string(), "i-2".to_string()]);
        let statuses = BTreeMap::from([(("default".to_string(), "web".to_string()), None)]);
        let mut o = Observed {
            security_groups: vec![lbs_group()],
            ..Default::default()
        };
        let p = plan(&w, &statuses, &nodes, &o);
        assert!(
            p.contains(&LbAction::CreateLoadBalancer { service: 0 }),
            "{p:?}"
        );
        assert!(p.contains(&LbAction::CreateTargetGroup {
            service: 0,
            listener: 0
        }));
        assert!(p.iter().any(|a| matches!(a, LbAction::Authorize { rules, .. } if rules == &vec![Rule::tcp(80, 80, Source::Cidr("0.0.0.0/0".into()))])));
        // once both exist: targets, listener, status
        o.load_balancers.push(LoadBalancer {
            arn: "lb1".into(),
            name: w[0].lb_name.clone(),
            dns: "web.elb".into(),
            role: "service".into(),
            kind: "network".into(),
            tags: tags("u1", None),
        });
        o.target_groups.push(TargetGroup {
            arn: "tg1".into(),
            name: "x".into(),
            role: "service".into(),
            port: 30080,
            targets: vec!["i-1".into(), "i-9".into()],
            tags: tags("u1", Some("TCP:80:30080")),
        });
        o.security_groups[0]
            .rules
            .push(Rule::tcp(80, 80, Source::Cidr("0.0.0.0/0".into())));
        let p = plan(&w, &statuses, &nodes, &o);
        assert_eq!(
            p,
            vec![
                LbAction::RegisterTargets {
                    target_group: "tg1".into(),
                    instances: vec!["i-2".into()],
                    port: 30080
                },
                LbAction::DeregisterTargets {
                    target_group: "tg1".into(),
                    instances: vec!["i-9".into()]
                },
                LbAction::CreateListener {
                    service: 0,
                    listener: 0,
                    load_balancer: "lb1".into(),
                    target_group: "tg1".into()
                },
                LbAction::SetStatus {
                    namespace: "default".into(),
                    name: "web".into(),
                    hostname: Some("web.elb".into())
                },
            ]
        );
    }

    #[test]
    fn a_changed_port_replaces_the_listener_and_a_gone_service_loses_everything() {
        let nodes = BTreeSet::from(["i-1".to_string()]);
        let o = Observed {
            security_groups: vec![SecurityGroup {
                rules: vec![Rule::tcp(80, 80, Source::Cidr("0.0.0.0/0".into()))],
                ..lbs_group()
            }],
            load_balancers: vec![LoadBalancer {
                arn: "lb1".into(),
                name: "n".into(),
                dns: "web.elb".into(),
                role: "service".into(),
                kind: "network".into(),
                tags: tags("u1", None),
            }],
            target_groups: vec![TargetGroup {
                arn: "tg1".into(),
                name: "x".into(),
                role: "service".into(),
                port: 30080,
                targets: vec!["i-1".into()],
                tags: tags("u1", Some("TCP:80:30080")),
            }],
            listeners: vec![crate::cloud::model::Listener {
                arn: "l1".into(),
                load_balancer: "lb1".into(),
                port: 80,
                protocol: "TCP".into(),
                target_group: Some("tg1".into()),
            }],
            ..Default::default()
        };
        let statuses = BTreeMap::from([(
            ("default".to_string(), "web".to_string()),
            Some("web.elb".to_string()),
        )]);
        let moved = vec![wanted("dev", &web("", "[{port: 8080, nodePort: 30080}]"))
            .unwrap()
            .unwrap()];
        let p = plan(&moved, &statuses, &nodes, &o);
        assert!(
            p.contains(&LbAction::CreateTargetGroup {
                service: 0,
                listener: 0
            }),
            "{p:?}"
        );
        assert!(
            p.contains(&LbAction::DeleteListener { arn: "l1".into() }),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|a| matches!(a, LbAction::Revoke { rules, .. } if rules[0].from == 80)));
        // the service is gone: load balancer, target group (once unused), status and rules go
        let p = plan(&[], &BTreeMap::new(), &nodes, &o);
        assert!(
            matches!(&p[0], LbAction::DeleteLoadBalancer { arn, .. } if arn == "lb1"),
            "{p:?}"
        );
        assert!(p.iter().any(|a| matches!(a, LbAction::Revoke { .. })));
        let o2 = Observed {
            listeners: vec![],
            load_balancers: vec![],
            ..o.clone()
        };
        let p = plan(&[], &BTreeMap::new(), &nodes, &o2);
        assert!(
            p.contains(&LbAction::DeleteTargetGroup { arn: "tg1".into() }),
            "{p:?}"
        );
        // a service that is no LoadBalancer any more loses its hostname
        let p = plan(&[], &statuses, &nodes, &o2);
        assert!(p.contains(&LbAction::SetStatus {
            namespace: "default".into(),
            name: "web".into(),
            hostname: None
        }));
    }
}

/// The controller: runs `plan` against AWS whenever services or nodes change (and every 15 s),
/// applies the actions, records what fails as events on the service and retries it with
/// back-off.
pub mod controller {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::time::{Duration, Instant};

    use serde_json::json;
    use tokio::sync::watch;

    use super::*;
    use crate::api::core::Node;
    use crate::api::{About, Kind};
    use crate::cloud::aws::{self, lb as elb, Aws};
    use crate::controllers::Api;

    const SOURCE: &str = "load-balancer-controller";

    /// The label the bootstrap gives each node: its EC2 instance id.
    pub const LABEL_INSTANCE_ID: &str = "orkops.io/instance-id";

    /// Which cluster's resources are ours, and where.
    #[derive(Debug, Clone)]
    pub struct CloudConfig {
        pub cluster: String,
        pub region: String,
        /// The pods' range (`--cluster-cidr`): the route controller's routes are in it.
        pub cluster_cidr: ipnet::Ipv4Net,
    }

    /// Per service: failures in a row, when to try again, and the last message recorded.
    #[derive(Default)]
    struct Backoff {
        failures: u32,
        next: Option<Instant>,
        last_event: Option<(String, Instant)>,
    }

    pub async fn run(api: Api, cloud: CloudConfig, mut stop: watch::Receiver<bool>) {
        let notify = api.changes(&[Kind::Service, Kind::Node], stop.clone());
        let mut aws: Option<Aws> = None;
        let mut state: HashMap<String, Backoff> = HashMap::new();
        loop {
            if aws.is_none() {
                match aws::connect(&cloud.region).await {
                    Ok(a) => aws = Some(a),
                    Err(e) => {
                        tracing::warn!(error = %e, "the load balancer controller cannot reach AWS")
                    }
                }
            }
            if let Some(a) = &aws {
                if let Err(e) = pass(&api, a, &cloud.cluster, &mut state).await {
                    tracing::warn!(error = %e, "load balancer pass failed; retrying");
                }
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(15)) => {}
                _ = stop.changed() => return,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Records `message` about a service, unless it said the same within five minutes.
    async fn event(
        api: &Api,
        svc: &Service,
        st: &mut Backoff,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        if let Some((m, at)) = &st.last_event {
            if m == message && at.elapsed() < Duration::from_secs(300) {
                return;
            }
        }
        st.last_event = Some((message.to_string(), Instant::now()));
        let about = About {
            ns: svc.metadata.namespace.as_deref().unwrap_or("default"),
            kind: Kind::Service,
            name: svc.metadata.name(),
            uid: svc.metadata.uid.as_deref(),
        };
        api.event(about, type_, reason, message, SOURCE).await;
    }

    async fn pass(
        api: &Api,
        aws: &Aws,
        cluster: &str,
        state: &mut HashMap<String, Backoff>,
    ) -> Result<(), String> {
        let services: Vec<Service> = api.list(Kind::Service).await.map_err(|e| e.to_string())?;
        let nodes: Vec<Node> = api.list(Kind::Node).await.map_err(|e| e.to_string())?;
        let instances: BTreeSet<String> = nodes
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .filter_map(|n| n.metadata.labels.get(LABEL_INSTANCE_ID).cloned())
            .collect();
        let o = aws::observe(aws, cluster)
            .await
            .map_err(|e| e.to_string())?;
        let Some(vpc) = o.vpcs.first() else {
            return Err(format!("no VPC tagged with cluster {cluster}"));
        };
        let Some(lbs) = o.group(GROUP_LBS) else {
            return Err(format!(
                "no {GROUP_LBS} security group tagged with cluster {cluster}"
            ));
        };
        let mut subnets: Vec<&crate::cloud::model::Subnet> = o.subnets.iter().collect();
        subnets.sort_by(|a, b| a.zone.cmp(&b.zone));

        let mut wanted = Vec::new();
        let mut by_uid: BTreeMap<String, &Service> = BTreeMap::new();
        for svc in &services {
            let uid = svc.metadata.uid.clone().unwrap_or_default();
            by_uid.insert(uid.clone(), svc);
            match super::wanted(cluster, svc) {
                Ok(Some(w)) => {
                    if w.kind == LbKind::Application && subnets.len() < 2 {
                        let msg = format!(
                            "an ALB needs subnets in at least two zones, and cluster {cluster} has {} ({}); use an NLB or a cluster over two zones",
                            subnets.len(),
                            subnets.iter().map(|s| s.zone.as_str()).collect::<Vec<_>>().join(", ")
                        );
                        let st = state.entry(uid).or_default();
                        event(api, svc, st, "Warning", "InvalidLoadBalancer", &msg).await;
                        continue;
                    }
                    wanted.push(w)
                }
                Ok(None) => {}
                Err(msg) => {
                    let st = state.entry(uid).or_default();
                    event(api, svc, st, "Warning", "InvalidLoadBalancer", &msg).await;
                }
            }
        }
        let statuses: BTreeMap<(String, String), Option<String>> = services
            .iter()
            .map(|s| {
                (
                    (
                        s.metadata.namespace.clone().unwrap_or_default(),
                        s.metadata.name().to_string(),
                    ),
                    s.status
                        .as_ref()
                        .and_then(|st| st.load_balancer.as_ref())
                        .and_then(|l| l.ingress.first())
                        .and_then(|i| i.hostname.clone()),
                )
            })
            .collect();
        let actions = plan(&wanted, &statuses, &instances, &o);
        // the uid each action is about, from the wanted list or the resources' tags
        let arn_uid: BTreeMap<&str, String> = o
            .load_balancers
            .iter()
            .map(|l| (l.arn.as_str(), &l.tags))
            .chain(o.target_groups.iter().map(|g| (g.arn.as_str(), &g.tags)))
            .filter_map(|(a, t)| Some((a, t.get(TAG_SERVICE_UID)?.clone())))
            .collect();
        let now = Instant::now();
        for a in actions {
            let uid = match &a {
                LbAction::CreateLoadBalancer { service }
                | LbAction::CreateTargetGroup { service, .. }
                | LbAction::CreateListener { service, .. } => Some(wanted[*service].uid.clone()),
                LbAction::DeleteLoadBalancer { arn, .. } | LbAction::DeleteTargetGroup { arn } => {
                    arn_uid.get(arn.as_str()).cloned()
                }
                LbAction::RegisterTargets { target_group, .. }
                | LbAction::DeregisterTargets { target_group, .. } => {
                    arn_uid.get(target_group.as_str()).cloned()
                }
                LbAction::SetStatus {
                    namespace, name, ..
                } => services
                    .iter()
                    .find(|s| {
                        s.metadata.namespace.as_deref() == Some(namespace)
                            && s.metadata.name() == name
                    })
                    .and_then(|s| s.metadata.uid.clone()),
                LbAction::DeleteListener { .. }
                | LbAction::Authorize { .. }
                | LbAction::Revoke { .. } => None,
            };
            if let Some(u) = &uid {
                if state.get(u).and_then(|s| s.next).is_some_and(|t| t > now) {
                    continue; // backing off
                }
            }
            let r = apply(
                api,
                aws,
                cluster,
                vpc.id.as_str(),
                &lbs.id,
                &subnets,
                &wanted,
                &a,
            )
            .await;
            let Some(u) = uid else {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "load balancer controller");
                }
                continue;
            };
            let st = state.entry(u.clone()).or_default();
            match r {
                Ok(Some(note)) => {
                    st.failures = 0;
                    st.next = None;
                    if let Some(svc) = by_uid.get(&u) {
                        event(api, svc, st, "Normal", "EnsuredLoadBalancer", &note).await;
                    }
                }
                Ok(None) => {
                    st.failures = 0;
                    st.next = None;
                }
                Err(e) => {
                    st.failures += 1;
                    let wait = Duration::from_secs(5 * 2u64.pow(st.failures.min(6) - 1))
                        .min(Duration::from_secs(300));
                    st.next = Some(Instant::now() + wait);
                    tracing::warn!(error = %e, retry_in = ?wait, "load balancer action failed");
                    if let Some(svc) = by_uid.get(&u) {
                        let msg = format!("{e} (retrying in {} s)", wait.as_secs());
                        event(api, svc, st, "Warning", "SyncLoadBalancerFailed", &msg).await;
                    }
                }
            }
        }
        state.retain(|uid, _| by_uid.contains_key(uid));
        Ok(())
    }

    /// Applies one action; `Some(note)` for what is worth an event.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        api: &Api,
        aws: &Aws,
        cluster: &str,
        vpc: &str,
        lbs_group: &str,
        subnets: &[&crate::cloud::model::Subnet],
        wanted: &[Wanted],
        a: &LbAction,
    ) -> Result<Option<String>, String> {
        let tags = |w: &Wanted, listener: Option<&str>| {
            let mut t = BTreeMap::from([
                (crate::cloud::TAG_CLUSTER.to_string(), cluster.to_string()),
                (crate::cloud::TAG_ROLE.to_string(), ROLE_SERVICE.to_string()),
                (
                    crate::cloud::TAG_CREATED.to_string(),
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                (TAG_SERVICE.to_string(), w.service.clone()),
                (TAG_SERVICE_UID.to_string(), w.uid.clone()),
            ]);
            if let Some(l) = listener {
                t.insert(TAG_LISTENER.to_string(), l.to_string());
            }
            t
        };
        let e = |e: crate::cloud::CloudError| e.to_string();
        match a {
            LbAction::CreateLoadBalancer { service } => {
                let w = &wanted[*service];
                let ids: Vec<String> = subnets.iter().map(|s| s.id.clone()).collect();
                let dns = elb::create_load_balancer(
                    aws,
                    &w.lb_name,
                    w.kind.as_str(),
                    &ids,
                    &[lbs_group.to_string()],
                    &tags(w, None),
                )
                .await
                .map_err(e)?;
                Ok(Some(format!(
                    "created {} load balancer {} ({dns})",
                    w.kind.as_str(),
                    w.lb_name
                )))
            }
            LbAction::DeleteLoadBalancer { arn, why } => {
                elb::delete_load_balancer(aws, arn).await.map_err(e)?;
                tracing::info!(%arn, %why, "deleted a service load balancer");
                Ok(Some(format!("deleted load balancer: {why}")))
            }
            LbAction::CreateTargetGroup { service, listener } => {
                let w = &wanted[*service];
                let l = &w.listeners[*listener];
                let proto = if l.protocol == "HTTP" {
                    "HTTP"
                } else {
                    l.protocol.as_str()
                };
                elb::create_target_group(
                    aws,
                    &l.target_group,
                    proto,
                    l.node_port,
                    vpc,
                    &tags(w, Some(&l.key)),
                )
                .await
                .map_err(e)?;
                Ok(None)
            }
            LbAction::DeleteTargetGroup { arn } => {
                elb::delete_target_group(aws, arn).await.map_err(e)?;
                Ok(None)
            }
            LbAction::RegisterTargets {
                target_group,
                instances,
                port,
            } => {
                elb::register(aws, target_group, instances, *port)
                    .await
                    .map_err(e)?;
                Ok(None)
            }
            LbAction::DeregisterTargets {
                target_group,
                instances,
            } => {
                elb::deregister(aws, target_group, instances)
                    .await
                    .map_err(e)?;
                Ok(None)
            }
            LbAction::CreateListener {
                service,
                listener,
                load_balancer,
                target_group,
            } => {
                let w = &wanted[*service];
                let l = &w.listeners[*listener];
                elb::create_listener(
                    aws,
                    load_balancer,
                    &l.protocol,
                    l.port,
                    target_group,
                    &tags(w, Some(&l.key)),
                )
                .await
                .map_err(e)?;
                Ok(Some(format!(
                    "listening on {}/{} for node port {}",
                    l.port, l.protocol, l.node_port
                )))
            }
            LbAction::DeleteListener { arn } => {
                elb::delete_listener(aws, arn).await.map_err(e)?;
                Ok(None)
            }
            LbAction::Authorize { group, rules } => {
                elb::authorize(aws, group, rules).await.map_err(e)?;
                Ok(None)
            }
            LbAction::Revoke { group, rules } => {
                elb::revoke(aws, group, rules).await.map_err(e)?;
                Ok(None)
            }
            LbAction::SetStatus {
                namespace,
                name,
                hostname,
            } => {
                let lb = match hostname {
                    Some(h) => json!({"ingress": [{"hostname": h}]}),
                    None => json!({}),
                };
                api.replace_status(
                    Kind::Service,
                    Some(namespace),
                    name,
                    json!({"loadBalancer": lb}),
                )
                .await
                .map_err(|e| e.to_string())?;
                Ok(None)
            }
        }
    }
}
