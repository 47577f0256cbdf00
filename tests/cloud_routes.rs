//! The pod network's needs on AWS, against the local cloud: every node instance has its
//! source/destination check off (after create, after `update cluster` adds or replaces one, and
//! after it was turned back on by hand); a real `orkops-master --cloud aws` keeps a VPC route
//! per node's pod CIDR to its instance in a cluster over two zones, and leaves the routes it did
//! not make alone; and observing a cluster survives a load balancer deleted while it looks.
//! The clusters are infrastructure only (no bodies): the Nodes are made through the API, with the
//! instance-id label and pod CIDR the bootstrap's nodes get.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use common::cloud::{poll, LocalCloud};
use common::Master;
use orkops::cloud::aws;

const INFRA: &str = "--infrastructure-only";
const LONG: Duration = Duration::from_secs(90);

/// Each live instance of `cluster` as EC2 reports it: name -> (id, role, SourceDestCheck).
fn instances(c: &LocalCloud, cluster: &str) -> BTreeMap<String, (String, String, Option<bool>)> {
    let a = c.sdk();
    let out = c
        .block_on(
            a.ec2
                .describe_instances()
                .filters(aws::by_tag(cluster))
                .send(),
        )
        .unwrap();
    let mut m = BTreeMap::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        if i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("terminated") {
            continue;
        }
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_string()
        };
        m.insert(
            tag("orkops.io/name"),
            (
                i.instance_id().unwrap_or_default().to_string(),
                tag("orkops.io/role"),
                i.source_dest_check(),
            ),
        );
    }
    m
}

/// Asserts every node has the check off (and the masters, which route nothing, keep it).
#[track_caller]
fn assert_nodes_forward(c: &LocalCloud, cluster: &str, nodes: usize) {
    let all = instances(c, cluster);
    let mut seen = 0;
    for (name, (id, role, check)) in &all {
        match role.as_str() {
            "node" => {
                seen += 1;
                assert_eq!(*check, Some(false), "{name} ({id}): {all:?}");
            }
            _ => assert_eq!(*check, Some(true), "{name} ({id}) keeps it: {all:?}"),
        }
    }
    assert_eq!(seen, nodes, "{all:?}");
}

#[test]
fn every_node_instance_has_its_source_dest_check_off() {
    let c = LocalCloud::start();
    let fresh = c.everything();
    let zones = ["--zones", "us-east-1a,us-east-1b"];
    let mut create = vec!["create", "cluster", "fwd", "--nodes", "2", INFRA, "--yes"];
    create.extend(zones);
    c.ok(&create);
    assert_nodes_forward(&c, "fwd", 2);

    // a node added by update
    c.ok(&["update", "cluster", "fwd", "--nodes", "3", INFRA, "--yes"]);
    assert_nodes_forward(&c, "fwd", 3);

    // turned back on by hand: describe shows the drift, update repairs it
    let (node1, _, _) = instances(&c, "fwd")["node-1"].clone();
    c.block_on(
        c.sdk()
            .ec2
            .modify_instance_attribute()
            .instance_id(&node1)
            .source_dest_check(
                aws_sdk_ec2::types::AttributeBooleanValue::builder()
                    .value(true)
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let described = c.ok(&["describe", "cluster", "fwd"]);
    assert!(
        described.contains("turn off the source/destination check of node-1"),
        "{described}"
    );
    c.ok(&["update", "cluster", "fwd", INFRA, "--yes"]);
    assert_nodes_forward(&c, "fwd", 3);

    // a replacement for a terminated node
    let (node2, _, _) = instances(&c, "fwd")["node-2"].clone();
    c.block_on(
        c.sdk()
            .ec2
            .terminate_instances()
            .instance_ids(&node2)
            .send(),
    )
    .unwrap();
    c.ok(&["update", "cluster", "fwd", INFRA, "--yes"]);
    assert_ne!(instances(&c, "fwd")["node-2"].0, node2, "node-2 replaced");
    assert_nodes_forward(&c, "fwd", 3);
    assert!(c
        .ok(&["update", "cluster", "fwd", INFRA, "--yes"])
        .contains("matches its spec"));

    c.ok(&["delete", "cluster", "fwd", "--yes"]);
    assert_eq!(c.everything(), fresh, "delete leaves nothing");
}

/// The cluster's route tables: id -> (destination -> target) of every route.
fn routes(c: &LocalCloud, cluster: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let a = c.sdk();
    let out = c
        .block_on(
            a.ec2
                .describe_route_tables()
                .filters(aws::by_tag(cluster))
                .send(),
        )
        .unwrap();
    out.route_tables()
        .iter()
        .map(|t| {
            let r = t
                .routes()
                .iter()
                .map(|r| {
                    let to = r
                        .instance_id()
                        .or(r.gateway_id())
                        .unwrap_or("?")
                        .to_string();
                    (r.destination_cidr_block().unwrap_or("?").to_string(), to)
                })
                .collect();
            (t.route_table_id().unwrap_or_default().to_string(), r)
        })
        .collect()
}

/// `kubectl apply` of a Node carrying `instance` in the bootstrap's label.
fn apply_node(m: &Master, name: &str, instance: &str) {
    let yaml = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    orkops.io/instance-id: {instance}\n"
    );
    m.orkops_stdin(&["apply", "-f", "-"], Some(&yaml)).success();
}

fn pod_cidr(m: &Master, name: &str) -> String {
    let n = m.orkops(&["get", "node", name, "-o", "json"]).json();
    n["spec"]["podCIDR"]
        .as_str()
        .unwrap_or_else(|| panic!("node {name} has no pod CIDR: {n}"))
        .to_string()
}

/// Polls until the cluster's only route table holds `want` (destination -> target) for the
/// pod range, beside exactly the routes in `others`.
#[track_caller]
fn wait_for_routes(
    c: &LocalCloud,
    m: &Master,
    want: &BTreeMap<String, String>,
    others: &BTreeMap<String, String>,
) {
    poll("the pod CIDR routes", LONG, || {
        let all = routes(c, "test");
        let table = all.values().next().cloned().unwrap_or_default();
        let pods: BTreeMap<String, String> = table
            .iter()
            .filter(|(d, _)| d.starts_with("10.244."))
            .map(|(d, t)| (d.clone(), t.clone()))
            .collect();
        let rest: BTreeMap<String, String> = table
            .into_iter()
            .filter(|(d, _)| !d.starts_with("10.244."))
            .collect();
        (all.len() == 1 && &pods == want && &rest == others)
            .then_some(())
            .ok_or_else(|| format!("{all:?}; the master's log:\n{}", m.log()))
    });
}

#[test]
fn the_master_routes_each_nodes_pod_cidr_to_its_instance() {
    let c = LocalCloud::start();
    let fresh = c.everything();
    // the test masters are all named "test"
    c.ok(&[
        "create",
        "cluster",
        "test",
        "--zones",
        "us-east-1a,us-east-1b",
        "--nodes",
        "2",
        INFRA,
        "--yes",
    ]);
    let inst = instances(&c, "test");
    let id = |name: &str| inst[name].0.clone();
    assert_ne!(
        c.observe("test").instance("node-1").unwrap().zone,
        c.observe("test").instance("node-2").unwrap().zone,
        "the nodes are in two zones"
    );
    // a route orkops did not make, to an instance, outside the pod range
    let table = routes(&c, "test").keys().next().unwrap().clone();
    c.block_on(
        c.sdk()
            .ec2
            .create_route()
            .route_table_id(&table)
            .destination_cidr_block("192.168.50.0/24")
            .instance_id(id("master-1"))
            .send(),
    )
    .unwrap();
    let others = routes(&c, "test")[&table].clone();
    assert_eq!(
        others.len(),
        3,
        "local, default and the hand-made one: {others:?}"
    );

    // the master (a process on the host) reaches the emulator the way aws-config finds it
    for (k, v) in [
        ("AWS_ENDPOINT_URL", c.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("AWS_PROFILE");
    let mut m = Master::start_with(&["--cloud", "aws"]);
    apply_node(&m, "node-1", &id("node-1"));
    apply_node(&m, "node-2", &id("node-2"));
    let (cidr1, cidr2) = (pod_cidr(&m, "node-1"), pod_cidr(&m, "node-2"));
    assert_ne!(cidr1, cidr2);
    let mut want = BTreeMap::from([(cidr1.clone(), id("node-1")), (cidr2.clone(), id("node-2"))]);
    wait_for_routes(&c, &m, &want, &others);

    // node-1's instance is replaced: the route follows the new one
    c.block_on(
        c.sdk()
            .ec2
            .terminate_instances()
            .instance_ids(id("node-1"))
            .send(),
    )
    .unwrap();
    c.ok(&["update", "cluster", "test", INFRA, "--yes"]);
    let new1 = instances(&c, "test")["node-1"].0.clone();
    assert_ne!(new1, id("node-1"));
    apply_node(&m, "node-1", &new1);
    want.insert(cidr1.clone(), new1);
    wait_for_routes(&c, &m, &want, &others);

    // node-2 is deleted: its route goes
    m.orkops(&["delete", "node", "node-2"]).success();
    want.remove(&cidr2);
    wait_for_routes(&c, &m, &want, &others);

    // a route removed by hand comes back (drift), within the controller's resync
    c.block_on(
        c.sdk()
            .ec2
            .delete_route()
            .route_table_id(&table)
            .destination_cidr_block(&cidr1)
            .send(),
    )
    .unwrap();
    wait_for_routes(&c, &m, &want, &others);

    m.terminate();
    let out = c.ok(&["delete", "cluster", "test", "--yes"]);
    assert!(out.contains("cluster test deleted"), "{out}");
    assert_eq!(c.everything(), fresh, "the routes went with the table");
}

/// Before the first DescribeTargetHealth is sent: deletes the victim load balancer and target
/// group (on a thread of its own: an interceptor is synchronous), as another client would
/// between observe's list and its describes. The describes of the victim come after.
struct DeleteMeanwhile {
    aws: std::sync::Arc<aws::Aws>,
    victim: Mutex<Option<(String, String)>>,
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for DeleteMeanwhile {
    fn name(&self) -> &'static str {
        "delete-meanwhile"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let op = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_string());
        if op.as_deref() != Some("DescribeTargetHealth") {
            return Ok(());
        }
        let Some((lb, tg)) = self.victim.lock().unwrap().take() else {
            return Ok(());
        };
        let a = self.aws.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                aws::lb::delete_load_balancer(&a, &lb).await.unwrap();
                aws::lb::delete_target_group(&a, &tg).await.unwrap();
            })
        })
        .join()
        .unwrap();
        Ok(())
    }
}

impl std::fmt::Debug for DeleteMeanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteMeanwhile").finish_non_exhaustive()
    }
}

#[test]
fn observe_tolerates_a_load_balancer_deleted_while_it_looks() {
    let c = LocalCloud::start();
    c.ok(&[
        "create",
        "cluster",
        "obs",
        "--zones",
        "us-east-1a",
        INFRA,
        "--yes",
    ]);
    let before = c.observe("obs");
    let plain = c.sdk();
    // a service's load balancer, target group and listener beside the API's
    let tags = BTreeMap::from([
        ("orkops.io/cluster".to_string(), "obs".to_string()),
        ("orkops.io/role".to_string(), "service".to_string()),
    ]);
    let subnets: Vec<String> = before.subnets.iter().map(|s| s.id.clone()).collect();
    let vpc = before.vpcs[0].id.clone();
    c.block_on(async {
        aws::lb::create_load_balancer(&plain, "obs-svc", "network", &subnets, &[], &tags)
            .await
            .unwrap();
        aws::lb::create_target_group(&plain, "obs-svc-80", "TCP", 30080, &vpc, &tags)
            .await
            .unwrap();
    });
    let with = c.observe("obs");
    let lb = with
        .load_balancers
        .iter()
        .find(|l| l.name == "obs-svc")
        .unwrap()
        .arn
        .clone();
    let tg = with
        .target_groups
        .iter()
        .find(|g| g.name == "obs-svc-80")
        .unwrap()
        .arn
        .clone();
    c.block_on(aws::lb::create_listener(&plain, &lb, "TCP", 80, &tg, &tags))
        .unwrap();

    let mut a = c.sdk();
    let deleter = DeleteMeanwhile {
        aws: std::sync::Arc::new(c.sdk()),
        victim: Mutex::new(Some((lb.clone(), tg.clone()))),
    };
    a.elb = aws_sdk_elasticloadbalancingv2::Client::from_conf(
        a.elb.config().to_builder().interceptor(deleter).build(),
    );
    let o = c
        .block_on(aws::observe(&a, "obs"))
        .unwrap_or_else(|e| panic!("observe failed on a load balancer gone meanwhile: {e}"));
    assert_eq!(o.load_balancers, before.load_balancers, "the API's alone");
    assert_eq!(o.target_groups, before.target_groups);
    assert_eq!(o.listeners, before.listeners);
    assert_eq!(o.instances, before.instances);
    c.ok(&["delete", "cluster", "obs", "--yes"]);
}
