//! The route controller (kube-controller-manager's with `--configure-cloud-routes`): on AWS a
//! subnet forwards a packet for a pod CIDR to an instance only where its route table says so.
//! For every Node with a pod CIDR and the instance-id label, each of the cluster's route tables
//! (tagged `orkops.io/cluster`) gets a route from the pod CIDR to the node's instance; a route
//! to an instance for a CIDR in the cluster's pod range that no node has (any more) is removed,
//! and one to another instance is replaced. Routes to anything but an instance (the VPC's
//! `local` one, `0.0.0.0/0` to the internet gateway) and routes outside the pod range are
//! never touched. It runs on every cluster, also one in a single subnet, where the route is
//! not needed but harmless. `plan` is pure; `run` observes, plans and applies.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use tokio::sync::watch;

use super::loadbalancer::controller::{CloudConfig, LABEL_INSTANCE_ID};
use super::Api;
use crate::api::core::Node;
use crate::api::{About, Kind};
use crate::cloud::aws::{self, Aws};
use crate::cloud::model::RouteTable;

const SOURCE: &str = "route-controller";

/// A node's pod CIDR and the instance it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    pub node: String,
    pub pod_cidr: Ipv4Net,
    pub instance: String,
}

/// One change to one route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    Create {
        table: String,
        destination: String,
        instance: String,
        node: String,
    },
    /// The route exists but leads to another instance (the node's was replaced).
    Replace {
        table: String,
        destination: String,
        instance: String,
        node: String,
    },
    Delete {
        table: String,
        destination: String,
        instance: String,
    },
}

impl RouteAction {
    /// The node the action is for, if it is one's.
    pub fn node(&self) -> Option<&str> {
        match self {
            RouteAction::Create { node, .. } | RouteAction::Replace { node, .. } => Some(node),
            RouteAction::Delete { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RouteAction::Create {
                table,
                destination,
                instance,
                node,
            } => format!("routed {destination} of {table} to {instance} (node {node})"),
            RouteAction::Replace {
                table,
                destination,
                instance,
                node,
            } => format!("routed {destination} of {table} to {instance} instead (node {node})"),
            RouteAction::Delete {
                table,
                destination,
                instance,
            } => format!("removed the route for {destination} to {instance} from {table}: no node has that pod CIDR"),
        }
    }
}

/// The routes the nodes need: those with a pod CIDR and an instance, not being deleted. When
/// two claim one CIDR (the allocator prevents it), the first by name has it.
pub fn wanted(nodes: &[Node]) -> Vec<NodeRoute> {
    let mut out: Vec<NodeRoute> = nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| {
            let cidr: Ipv4Net = n.spec.pod_cidr.as_deref()?.parse().ok()?;
            let instance = n.metadata.labels.get(LABEL_INSTANCE_ID)?;
            Some(NodeRoute {
                node: n.metadata.name().to_string(),
                pod_cidr: cidr.trunc(),
                instance: instance.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

/// The changes that give every table a route per node's pod CIDR to its instance, and no
/// instance route in `cluster_cidr` that no node wants.
pub fn plan(nodes: &[NodeRoute], tables: &[RouteTable], cluster_cidr: Ipv4Net) -> Vec<RouteAction> {
    let mut want: BTreeMap<Ipv4Net, &NodeRoute> = BTreeMap::new();
    for n in nodes {
        want.entry(n.pod_cidr).or_insert(n);
    }
    let mut out = Vec::new();
    for t in tables {
        let have: Vec<(Ipv4Net, &str, &str)> = t
            .instance_routes
            .iter()
            .filter_map(|r| {
                let net: Ipv4Net = r.destination.parse().ok()?;
                Some((net, r.destination.as_str(), r.instance.as_str()))
            })
            .collect();
        for (cidr, n) in &want {
            match have.iter().find(|(net, _, _)| net == cidr) {
                None => out.push(RouteAction::Create {
                    table: t.id.clone(),
                    destination: cidr.to_string(),
                    instance: n.instance.clone(),
                    node: n.node.clone(),
                }),
                Some((_, dest, to)) if *to != n.instance => out.push(RouteAction::Replace {
                    table: t.id.clone(),
                    destination: dest.to_string(),
                    instance: n.instance.clone(),
                    node: n.node.clone(),
                }),
                Some(_) => {}
            }
        }
        for (net, dest, to) in &have {
            if cluster_cidr.contains(net) && !want.contains_key(net) {
                out.push(RouteAction::Delete {
                    table: t.id.clone(),
                    destination: dest.to_string(),
                    instance: to.to_string(),
                });
            }
        }
    }
    out
}

async fn apply(aws: &Aws, a: &RouteAction) -> Result<(), aws::CloudError> {
    match a {
        RouteAction::Create {
            table,
            destination,
            instance,
            ..
        } => aws::routes::create(aws, table, destination, instance).await,
        RouteAction::Replace {
            table,
            destination,
            instance,
            ..
        } => aws::routes::replace(aws, table, destination, instance).await,
        RouteAction::Delete {
            table, destination, ..
        } => aws::routes::delete(aws, table, destination).await,
    }
}

/// One pass: the nodes and the cluster's route tables, the plan, each action applied (a
/// failure is logged, and recorded as a Warning event on its node, at most every five minutes).
async fn pass(
    api: &Api,
    aws: &Aws,
    cloud: &CloudConfig,
    warned: &mut HashMap<String, (String, Instant)>,
) -> Result<(), String> {
    let nodes: Vec<Node> = api.list(Kind::Node).await.map_err(|e| e.to_string())?;
    let tables = aws::route_tables(aws, &cloud.cluster)
        .await
        .map_err(|e| e.to_string())?;
    if tables.is_empty() {
        return Err(format!(
            "no route table tagged with cluster {}; hint: `orkops update cluster {}` makes it",
            cloud.cluster, cloud.cluster
        ));
    }
    for a in plan(&wanted(&nodes), &tables, cloud.cluster_cidr) {
        match apply(aws, &a).await {
            Ok(()) => tracing::info!("{}", a.describe()),
            Err(e) => {
                tracing::warn!(error = %e, "route controller");
                let Some(node) = a.node() else { continue };
                let msg = e.to_string();
                if warned
                    .get(node)
                    .is_some_and(|(m, at)| *m == msg && at.elapsed() < Duration::from_secs(300))
                {
                    continue;
                }
                warned.insert(node.to_string(), (msg.clone(), Instant::now()));
                let about = About {
                    ns: "default",
                    kind: Kind::Node,
                    name: node,
                    uid: None,
                };
                api.event(about, "Warning", "FailedToCreateRoute", &msg, SOURCE)
                    .await;
            }
        }
    }
    Ok(())
}

/// Keeps the routes in step with the nodes (on every Node change, and every 30 s for drift)
/// until `stop`.
pub async fn run(api: Api, cloud: CloudConfig, mut stop: watch::Receiver<bool>) {
    let notify = api.changes(&[Kind::Node], stop.clone());
    let mut aws: Option<Aws> = None;
    let mut warned = HashMap::new();
    loop {
        if aws.is_none() {
            match aws::connect(&cloud.region).await {
                Ok(a) => aws = Some(a),
                Err(e) => tracing::warn!(error = %e, "the route controller cannot reach AWS"),
            }
        }
        if let Some(a) = &aws {
            if let Err(e) = pass(&api, a, &cloud, &mut warned).await {
                tracing::warn!(error = %e, "route pass failed; retrying");
            }
        }
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stop.changed() => return,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::model::InstanceRoute;

    fn node(name: &str, cidr: &str, instance: &str) -> NodeRoute {
        NodeRoute {
            node: name.into(),
            pod_cidr: cidr.parse().unwrap(),
            instance: instance.into(),
        }
    }

    fn table(id: &str, routes: &[(&str, &str)]) -> RouteTable {
        RouteTable {
            id: id.into(),
            vpc: "vpc-1".into(),
            default_gateway: Some("igw-1".into()),
            associations: vec![],
            instance_routes: routes
                .iter()
                .map(|(d, i)| InstanceRoute {
                    destination: d.to_string(),
                    instance: i.to_string(),
                })
                .collect(),
        }
    }

    fn pods() -> Ipv4Net {
        "10.244.0.0/16".parse().unwrap()
    }

    #[test]
    fn every_node_gets_a_route_in_every_table() {
        let nodes = [
            node("node-1", "10.244.1.0/24", "i-1"),
            node("node-2", "10.244.2.0/24", "i-2"),
        ];
        let p = plan(&nodes, &[table("rtb-a", &[]), table("rtb-b", &[])], pods());
        let made: Vec<(String, String, String)> = p
            .iter()
            .map(|a| match a {
                RouteAction::Create {
                    table,
                    destination,
                    instance,
                    ..
                } => (table.clone(), destination.clone(), instance.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = |t: &str, d: &str, i: &str| (t.to_string(), d.to_string(), i.to_string());
        assert_eq!(
            made,
            [
                want("rtb-a", "10.244.1.0/24", "i-1"),
                want("rtb-a", "10.244.2.0/24", "i-2"),
                want("rtb-b", "10.244.1.0/24", "i-1"),
                want("rtb-b", "10.244.2.0/24", "i-2"),
            ]
        );
        let done = table(
            "rtb-a",
            &[("10.244.1.0/24", "i-1"), ("10.244.2.0/24", "i-2")],
        );
        assert_eq!(plan(&nodes, &[done], pods()), vec![], "in step: nothing");
    }

    #[test]
    fn a_moved_node_is_rerouted_and_a_gone_one_unrouted() {
        let nodes = [node("node-1", "10.244.1.0/24", "i-new")];
        let t = table(
            "rtb-a",
            &[("10.244.1.0/24", "i-old"), ("10.244.7.0/24", "i-7")],
        );
        assert_eq!(
            plan(&nodes, &[t], pods()),
            vec![
                RouteAction::Replace {
                    table: "rtb-a".into(),
                    destination: "10.244.1.0/24".into(),
                    instance: "i-new".into(),
                    node: "node-1".into(),
                },
                RouteAction::Delete {
                    table: "rtb-a".into(),
                    destination: "10.244.7.0/24".into(),
                    instance: "i-7".into(),
                },
            ]
        );
    }

    #[test]
    fn routes_it_did_not_make_are_left_alone() {
        // an instance route outside the pod range (a NAT instance, say); no node at all
        let t = table(
            "rtb-a",
            &[("192.168.0.0/16", "i-nat"), ("10.0.0.0/8", "i-vpn")],
        );
        assert_eq!(plan(&[], &[t], pods()), vec![]);
    }

    #[test]
    fn only_nodes_with_a_pod_cidr_and_an_instance_count() {
        let n = |name: &str, cidr: Option<&str>, instance: Option<&str>, deleted: bool| {
            let mut v = serde_json::json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {}},
                "spec": {},
            });
            if let Some(c) = cidr {
                v["spec"]["podCIDR"] = c.into();
            }
            if let Some(i) = instance {
                v["metadata"]["labels"][LABEL_INSTANCE_ID] = i.into();
            }
            if deleted {
                v["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
            }
            serde_json::from_value::<Node>(v).unwrap()
        };
        let nodes = [
            n("b", Some("10.244.2.0/24"), Some("i-2"), false),
            n("a", Some("10.244.1.0/24"), Some("i-1"), false),
            n("no-cidr", None, Some("i-3"), false),
            n("no-instance", Some("10.244.4.0/24"), None, false),
            n("going", Some("10.244.5.0/24"), Some("i-5"), true),
            n("bad", Some("nonsense"), Some("i-6"), false),
        ];
        assert_eq!(
            wanted(&nodes),
            [
                node("a", "10.244.1.0/24", "i-1"),
                node("b", "10.244.2.0/24", "i-2")
            ]
        );
    }
}
