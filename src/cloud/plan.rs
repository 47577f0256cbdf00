//! The infrastructure reconciler: `plan` is a pure function from the desired state (the
//! cluster's spec and the provider profile) and the observed state (what the cloud holds for
//! the cluster, by tag) to the actions that can be taken now. `converge` applies rounds of them
//! through a `Cloud` until nothing is left to do, which makes create, a create continued after
//! a failure, and `update cluster` one and the same thing. `simulate` runs the same plan
//! against a model of the cloud: the dry-run's plan, and the unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::model::*;
use super::{CloudError, ClusterSpec, Ports};
use crate::progress::{Event, Reporter};

/// Everything `plan` needs to know about what the cluster should be.
#[derive(Debug, Clone)]
pub struct Desired {
    pub spec: ClusterSpec,
    pub ports: Ports,
    /// Each zone's subnet is this many bits longer than the VPC's prefix.
    pub subnet_bits: u8,
    /// The cluster's creation time (RFC 3339), written into every tag set.
    pub created: String,
    /// Rendered user data per role.
    pub user_data: BTreeMap<Role, String>,
}

/// One instance the spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct WantedInstance {
    pub name: String,
    pub role: Role,
    pub zone: String,
}

impl Desired {
    pub fn key_name(&self) -> String {
        format!("orkops-{}", self.spec.name)
    }

    pub fn api_name(&self) -> String {
        format!("{}-api", self.spec.name)
    }

    /// Masters and nodes, each role spread over the zones in order.
    pub fn instances(&self) -> Vec<WantedInstance> {
        let zones = &self.spec.zones;
        let mut out = Vec::new();
        for (role, count) in [
            (Role::Master, self.spec.masters),
            (Role::Node, self.spec.nodes),
        ] {
            for i in 0..count as usize {
                out.push(WantedInstance {
                    name: format!("{}-{}", role.as_str(), i + 1),
                    role,
                    zone: zones[i % zones.len()].clone(),
                });
            }
        }
        out
    }

    /// The subnet CIDR of zone number `i`.
    pub fn subnet_cidr(&self, i: usize) -> Result<String, CloudError> {
        let net = self.spec.network_cidr;
        let prefix = net.prefix_len() + self.subnet_bits;
        net.subnets(prefix)
            .map_err(|e| {
                CloudError::Failed(format!("--network-cidr {net}: no /{prefix} subnets: {e}"))
            })?
            .nth(i)
            .map(|s| s.to_string())
            .ok_or_else(|| {
                CloudError::Failed(format!(
                    "--network-cidr {net} has no room for zone number {}",
                    i + 1
                ))
            })
    }

    /// The ingress rules each security group must have, given the groups' ids.
    pub fn rules(&self, role: &str, groups: &BTreeMap<String, String>) -> Vec<Rule> {
        let p = &self.ports;
        let admins: Vec<Source> = self
            .spec
            .api_cidrs
            .iter()
            .map(|c| Source::Cidr(c.clone()))
            .collect();
        let vpc = Source::Cidr(self.spec.network_cidr.to_string());
        let group = |r: &str| groups.get(r).map(|id| Source::Group(id.clone()));
        let mut rules = Vec::new();
        match role {
            GROUP_MASTERS => {
                for s in &admins {
                    rules.push(Rule::tcp(p.ssh, p.ssh, s.clone()));
                    rules.push(Rule::tcp(p.api, p.api, s.clone()));
                }
                // the API load balancer's health checks and the nodes come from the VPC
                rules.push(Rule::tcp(p.api, p.api, vpc));
                if let Some(m) = group(GROUP_MASTERS) {
                    rules.push(Rule::tcp(2379, 2380, m)); // etcd between masters
                }
            }
            GROUP_NODES => {
                for s in &admins {
                    rules.push(Rule::tcp(p.ssh, p.ssh, s.clone()));
                }
                if let Some(m) = group(GROUP_MASTERS) {
                    rules.push(Rule::tcp(p.agent, p.agent, m.clone()));
                    rules.push(Rule::all(m)); // the masters reach pods and services
                }
                rules.push(Rule::tcp(p.node_port_first, p.node_port_last, vpc));
                // the services' load balancers (their health checks too) reach the node ports
                if let Some(l) = group(GROUP_LBS) {
                    rules.push(Rule::tcp(p.node_port_first, p.node_port_last, l.clone()));
                    rules.push(Rule {
                        protocol: "udp".into(),
                        from: p.node_port_first,
                        to: p.node_port_last,
                        source: l,
                    });
                }
                if let Some(n) = group(GROUP_NODES) {
                    rules.push(Rule::all(n)); // pod traffic between nodes
                }
            }
            _ => {} // the lbs group: its rules follow the services (load balancer controller)
        }
        rules.sort();
        rules.dedup();
        rules
    }
}

/// The actions that can be taken now to bring `o` to `d`; empty when they agree. Actions that
/// depend on resources not there yet come in a later round, once those exist.
pub fn plan(d: &Desired, o: &Observed) -> Vec<Action> {
    let mut out = Vec::new();
    let Some(vpc) = o.vpcs.first() else {
        return vec![Action::CreateVpc {
            cidr: d.spec.network_cidr.to_string(),
        }];
    };
    let wanted_tags = d.spec.to_tags();
    if wanted_tags.iter().any(|(k, v)| vpc.tags.get(k) != Some(v)) {
        out.push(Action::TagVpc {
            vpc: vpc.id.clone(),
        });
    }

    // network
    let igw = o.internet_gateways.first();
    match igw {
        None => out.push(Action::CreateInternetGateway),
        Some(g) if !g.attached.contains(&vpc.id) => out.push(Action::AttachInternetGateway {
            igw: g.id.clone(),
            vpc: vpc.id.clone(),
        }),
        Some(_) => {}
    }
    let attached_igw = igw.filter(|g| g.attached.contains(&vpc.id));
    let rt = o.route_tables.iter().find(|r| r.vpc == vpc.id);
    match (rt, attached_igw) {
        (None, _) => out.push(Action::CreateRouteTable {
            vpc: vpc.id.clone(),
        }),
        (Some(r), Some(g)) if r.default_gateway.is_none() => out.push(Action::CreateDefaultRoute {
            route_table: r.id.clone(),
            igw: g.id.clone(),
        }),
        _ => {}
    }
    let mut subnets: BTreeMap<&str, &Subnet> = BTreeMap::new();
    for (i, zone) in d.spec.zones.iter().enumerate() {
        match o
            .subnets
            .iter()
            .find(|s| &s.zone == zone && s.vpc == vpc.id)
        {
            None => match d.subnet_cidr(i) {
                Ok(cidr) => out.push(Action::CreateSubnet {
                    vpc: vpc.id.clone(),
                    zone: zone.clone(),
                    cidr,
                }),
                Err(_) => continue, // checked before anything is created
            },
            Some(s) => {
                subnets.insert(zone, s);
                if let Some(r) = rt {
                    if !r.associations.iter().any(|(_, sub)| sub == &s.id) {
                        out.push(Action::AssociateSubnet {
                            route_table: r.id.clone(),
                            subnet: s.id.clone(),
                        });
                    }
                }
            }
        }
    }
    let all_subnets = subnets.len() == d.spec.zones.len();

    // security
    let mut groups = BTreeMap::new();
    for role in GROUPS {
        match o.group(role) {
            None => out.push(Action::CreateSecurityGroup {
                vpc: vpc.id.clone(),
                role: role.to_string(),
            }),
            Some(g) => {
                groups.insert(role.to_string(), g.id.clone());
            }
        }
    }
    let all_groups = groups.len() == GROUPS.len();
    if all_groups {
        for role in GROUPS {
            let have = &o.group(role).map(|g| g.rules.clone()).unwrap_or_default();
            let missing: Vec<Rule> = d
                .rules(role, &groups)
                .into_iter()
                .filter(|r| !have.contains(r))
                .collect();
            if !missing.is_empty() {
                out.push(Action::Authorize {
                    group: groups[role].clone(),
                    role: role.to_string(),
                    rules: missing,
                });
            }
        }
    }
    let key = d.key_name();
    let has_key = o.key_pairs.contains(&key);
    if !has_key {
        out.push(Action::ImportKeyPair { name: key });
    }

    // instances: one live instance per wanted name; the rest go
    let wanted = d.instances();
    let wanted_names: BTreeSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    let mut waiting = Vec::new();
    if all_subnets && all_groups && has_key {
        for w in &wanted {
            let mut live = o
                .instances
                .iter()
                .filter(|i| i.name == w.name && i.state.is_live());
            match live.next() {
                None => out.push(Action::RunInstance {
                    name: w.name.clone(),
                    role: w.role,
                    zone: w.zone.clone(),
                    subnet: subnets[w.zone.as_str()].id.clone(),
                    group: groups[w.role.group()].clone(),
                }),
                Some(i) => match i.state {
                    InstanceState::Stopped => out.push(Action::StartInstance {
                        id: i.id.clone(),
                        name: i.name.clone(),
                    }),
                    InstanceState::Pending | InstanceState::Stopping => {
                        waiting.push(i.name.clone())
                    }
                    // nodes forward their pods' packets; masters run no pods and keep it
                    InstanceState::Running if w.role == Role::Node && i.source_dest_check => out
                        .push(Action::DisableSourceDestCheck {
                            id: i.id.clone(),
                            name: i.name.clone(),
                        }),
                    _ => {}
                },
            }
            for extra in live {
                out.push(Action::TerminateInstance {
                    id: extra.id.clone(),
                    name: extra.name.clone(),
                    why: format!("a second instance named {}", extra.name),
                });
            }
        }
    }
    for i in o.instances.iter().filter(|i| i.state.is_live()) {
        if !wanted_names.contains(i.name.as_str()) {
            out.push(Action::TerminateInstance {
                id: i.id.clone(),
                name: i.name.clone(),
                why: "not in the cluster's spec any more".into(),
            });
        }
    }

    // the API load balancer
    let tg = o.target_groups.iter().find(|g| g.role == LB_ROLE_API);
    if tg.is_none() {
        out.push(Action::CreateTargetGroup {
            name: d.api_name(),
            vpc: vpc.id.clone(),
            port: d.ports.api,
        });
    }
    let lb = o.api_load_balancer();
    if lb.is_none() && all_subnets {
        out.push(Action::CreateLoadBalancer {
            name: d.api_name(),
            subnets: d
                .spec
                .zones
                .iter()
                .map(|z| subnets[z.as_str()].id.clone())
                .collect(),
        });
    }
    if let Some(tg) = tg {
        let masters: Vec<&Instance> = o
            .instances_of(Role::Master)
            .filter(|i| i.state == InstanceState::Running && wanted_names.contains(&*i.name))
            .collect();
        let add: Vec<String> = masters
            .iter()
            .filter(|m| !tg.targets.contains(&m.id))
            .map(|m| m.id.clone())
            .collect();
        if !add.is_empty() {
            out.push(Action::RegisterTargets {
                target_group: tg.arn.clone(),
                instances: add,
            });
        }
        let gone: Vec<String> = tg
            .targets
            .iter()
            .filter(|t| !masters.iter().any(|m| &&m.id == t))
            .cloned()
            .collect();
        if !gone.is_empty() {
            out.push(Action::DeregisterTargets {
                target_group: tg.arn.clone(),
                instances: gone,
            });
        }
        if let Some(lb) = lb {
            let has_listener = o
                .listeners
                .iter()
                .any(|l| l.load_balancer == lb.arn && l.port == d.ports.api);
            if !has_listener {
                out.push(Action::CreateListener {
                    load_balancer: lb.arn.clone(),
                    target_group: tg.arn.clone(),
                    port: d.ports.api,
                });
            }
        }
    }
    if !waiting.is_empty() {
        out.push(Action::Wait { names: waiting });
    }
    out
}

/// Where `converge` takes its observations and sends its actions.
#[async_trait::async_trait]
pub trait Cloud: Send + Sync {
    async fn observe(&self, cluster: &str) -> Result<Observed, CloudError>;
    /// Applies one action; returns a line saying what was done (with the new resource's id).
    async fn apply(&self, d: &Desired, a: &Action) -> Result<String, CloudError>;
}

/// Rounds of observe, plan and apply (each round's actions at once) until the plan is empty.
/// Gives up after `deadline`, or when the same actions come back round after round.
pub async fn converge(
    cloud: &dyn Cloud,
    d: &Desired,
    deadline: Duration,
    report: &dyn Reporter,
) -> Result<Observed, CloudError> {
    let start = Instant::now();
    let mut last: Vec<Action> = Vec::new();
    let mut repeats = 0;
    let mut throttled = 0u32;
    loop {
        let o = cloud.observe(&d.spec.name).await?;
        let actions = plan(d, &o);
        if actions.is_empty() {
            return Ok(o);
        }
        let (wait, act): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::Wait { .. }));
        if start.elapsed() > deadline {
            let todo: Vec<String> = act.iter().chain(&wait).map(Action::describe).collect();
            return Err(CloudError::Failed(format!(
                "cluster {}: not converged after {} s; still to do: {}",
                d.spec.name,
                deadline.as_secs(),
                todo.join("; ")
            )));
        }
        if act.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if act == last {
            repeats += 1;
            if repeats >= 3 {
                return Err(CloudError::Failed(format!(
                    "cluster {}: the cloud does not take these changes (tried 3 times): {}",
                    d.spec.name,
                    act.iter()
                        .map(Action::describe)
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
        } else {
            repeats = 0;
        }
        let results = futures::future::join_all(act.iter().map(|a| async move {
            let r = cloud.apply(d, a).await;
            if let Ok(line) = &r {
                report.report(Event {
                    phase: a.phase().as_str(),
                    subject: a.instance().map(str::to_string),
                    message: line.clone(),
                    done: false,
                });
            }
            r
        }))
        .await;
        match results.into_iter().find_map(Result::err) {
            // AWS limits the request rate: the next pass takes what is left, a little later
            Some(e) if e.is_throttled() && start.elapsed() < deadline => {
                throttled += 1;
                tracing::warn!("{e} (pass {throttled}; backing off)");
                tokio::time::sleep(Duration::from_millis(500 << throttled.min(5))).await;
                continue;
            }
            Some(e) => return Err(e),
            None => throttled = 0,
        }
        last = act;
    }
}

/// The actions `converge` would take from `start`, applied to a model of the cloud rather than
/// to a cloud: the dry-run's plan. The model's new resources get ids like `vpc-new-1`.
pub fn simulate(d: &Desired, start: &Observed) -> Result<Vec<Action>, CloudError> {
    simulate_to(d, start).map(|(_, taken)| taken)
}

/// `simulate`, also returning the model's state at the end.
pub fn simulate_to(d: &Desired, start: &Observed) -> Result<(Observed, Vec<Action>), CloudError> {
    let mut o = start.clone();
    let mut taken = Vec::new();
    for _ in 0..50 {
        let actions = plan(d, &o);
        if actions.is_empty() {
            return Ok((o, taken));
        }
        for a in actions {
            apply_to_model(d, &mut o, &a);
            if !matches!(a, Action::Wait { .. }) {
                taken.push(a);
            }
        }
    }
    Err(CloudError::Failed(format!(
        "cluster {}: the plan does not settle (a bug): {:?}",
        d.spec.name,
        plan(d, &o)
    )))
}

/// What the cloud would hold after `a`: instances start running at once.
pub fn apply_to_model(d: &Desired, o: &mut Observed, a: &Action) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = |kind: &str| format!("{kind}-new-{n}");
    match a.clone() {
        Action::CreateVpc { cidr } => o.vpcs.push(Vpc {
            id: id("vpc"),
            cidr,
            tags: d.spec.to_tags(),
        }),
        Action::TagVpc { vpc } => {
            if let Some(v) = o.vpcs.iter_mut().find(|v| v.id == vpc) {
                v.tags.extend(d.spec.to_tags());
            }
        }
        Action::CreateInternetGateway => o.internet_gateways.push(InternetGateway {
            id: id("igw"),
            attached: vec![],
        }),
        Action::AttachInternetGateway { igw, vpc } => {
            if let Some(g) = o.internet_gateways.iter_mut().find(|g| g.id == igw) {
                g.attached.push(vpc);
            }
        }
        Action::CreateRouteTable { vpc } => o.route_tables.push(RouteTable {
            id: id("rtb"),
            vpc,
            default_gateway: None,
            associations: vec![],
            instance_routes: vec![],
        }),
        Action::CreateDefaultRoute { route_table, igw } => {
            if let Some(r) = o.route_tables.iter_mut().find(|r| r.id == route_table) {
                r.default_gateway = Some(igw);
            }
        }
        Action::CreateSubnet { vpc, zone, cidr } => o.subnets.push(Subnet {
            id: id("subnet"),
            vpc,
            zone,
            cidr,
        }),
        Action::AssociateSubnet {
            route_table,
            subnet,
        } => {
            if let Some(r) = o.route_tables.iter_mut().find(|r| r.id == route_table) {
                r.associations.push((id("rtbassoc"), subnet));
            }
        }
        Action::CreateSecurityGroup { vpc, role } => o.security_groups.push(SecurityGroup {
            id: id("sg"),
            vpc,
            role,
            rules: vec![],
        }),
        Action::Authorize { group, rules, .. } => {
            if let Some(g) = o.security_groups.iter_mut().find(|g| g.id == group) {
                g.rules.extend(rules);
            }
        }
        Action::ImportKeyPair { name } => o.key_pairs.push(name),
        Action::RunInstance {
            name, role, zone, ..
        } => o.instances.push(Instance {
            id: id("i"),
            name,
            role,
            zone,
            state: InstanceState::Running,
            private_ip: None,
            public_ip: None,
            image: d.spec.image.clone().unwrap_or_default(),
            size: match role {
                Role::Master => d.spec.master_size.clone(),
                Role::Node => d.spec.node_size.clone(),
            },
            arch: "x86_64".into(),
            // EC2 turns it on for every new instance
            source_dest_check: true,
        }),
        Action::StartInstance { id: i, .. } => set_state(o, &i, InstanceState::Running),
        Action::DisableSourceDestCheck { id: i, .. } => {
            if let Some(x) = o.instances.iter_mut().find(|x| x.id == i) {
                x.source_dest_check = false;
            }
        }
        Action::TerminateInstance { id: i, .. } => {
            o.instances.retain(|x| x.id != i);
            for g in &mut o.target_groups {
                g.targets.retain(|t| t != &i);
            }
        }
        Action::Wait { names } => {
            for i in o.instances.iter_mut().filter(|i| names.contains(&i.name)) {
                i.state = match i.state {
                    InstanceState::Stopping => InstanceState::Stopped,
                    _ => InstanceState::Running,
                };
            }
        }
        Action::CreateTargetGroup { name, port, .. } => o.target_groups.push(TargetGroup {
            arn: id("arn:targetgroup"),
            name,
            role: LB_ROLE_API.into(),
            port,
            targets: vec![],
            tags: BTreeMap::new(),
        }),
        Action::CreateLoadBalancer { name, .. } => o.load_balancers.push(LoadBalancer {
            arn: id("arn:loadbalancer"),
            dns: format!("{name}.elb.example"),
            name,
            role: LB_ROLE_API.into(),
            kind: "network".into(),
            tags: BTreeMap::new(),
        }),
        Action::RegisterTargets {
            target_group,
            instances,
        } => {
            if let Some(g) = o.target_groups.iter_mut().find(|g| g.arn == target_group) {
                g.targets.extend(instances);
            }
        }
        Action::DeregisterTargets {
            target_group,
            instances,
        } => {
            if let Some(g) = o.target_groups.iter_mut().find(|g| g.arn == target_group) {
                g.targets.retain(|t| !instances.contains(t));
            }
        }
        Action::CreateListener {
            load_balancer,
            target_group,
            port,
        } => o.listeners.push(Listener {
            arn: id("arn:listener"),
            load_balancer,
            port,
            protocol: "TCP".into(),
            target_group: Some(target_group),
        }),
    }
}

fn set_state(o: &mut Observed, id: &str, s: InstanceState) {
    if let Some(i) = o.instances.iter_mut().find(|i| i.id == id) {
        i.state = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(masters: u32, nodes: u32, zones: &[&str]) -> Desired {
        let p = super::super::aws_profile();
        Desired {
            spec: ClusterSpec {
                name: "dev".into(),
                region: "us-east-1".into(),
                zones: zones.iter().map(|z| z.to_string()).collect(),
                masters,
                nodes,
                master_size: "t3.medium".into(),
                node_size: "t3.small".into(),
                image: Some("ami-1".into()),
                ssh_public_key: "ssh-ed25519 AAAA".into(),
                api_cidrs: vec!["0.0.0.0/0".into()],
                network_cidr: "10.0.0.0/16".parse().unwrap(),
                master_instance_profile: None,
            },
            ports: p.ports,
            subnet_bits: p.network.subnet_bits,
            created: "2026-01-01T00:00:00Z".into(),
            user_data: BTreeMap::new(),
        }
    }

    fn converged(d: &Desired, from: &Observed) -> (Observed, Vec<Action>) {
        let (o, actions) = simulate_to(d, from).unwrap();
        assert_eq!(plan(d, &o), vec![], "converged state plans nothing");
        (o, actions)
    }

    #[test]
    fn an_empty_cloud_gets_the_whole_cluster_in_dependency_order() {
        let d = desired(1, 2, &["us-east-1a"]);
        let (o, actions) = converged(&d, &Observed::default());
        assert_eq!(
            actions[0],
            Action::CreateVpc {
                cidr: "10.0.0.0/16".into()
            }
        );
        assert_eq!(o.vpcs.len(), 1);
        assert_eq!(o.subnets.len(), 1);
        assert_eq!(o.subnets[0].cidr, "10.0.0.0/20");
        assert_eq!(o.security_groups.len(), 3);
        assert_eq!(o.instances.len(), 3);
        assert_eq!(o.listeners.len(), 1);
        let tg = &o.target_groups[0];
        let master = o.instance("master-1").unwrap();
        assert_eq!(tg.targets, vec![master.id.clone()]);
        // every instance comes after the network, the groups and the key it needs
        let first_run = actions
            .iter()
            .position(|a| matches!(a, Action::RunInstance { .. }))
            .unwrap();
        for needed in [
            |a: &Action| matches!(a, Action::CreateSubnet { .. }),
            |a: &Action| matches!(a, Action::CreateSecurityGroup { .. }),
            |a: &Action| matches!(a, Action::ImportKeyPair { .. }),
        ] {
            assert!(actions.iter().position(needed).unwrap() < first_run);
        }
    }

    /// A cloud that is the model, refusing the first `throttle` actions with AWS's throttling.
    struct Throttling {
        model: std::sync::Mutex<Observed>,
        throttle: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Cloud for Throttling {
        async fn observe(&self, _: &str) -> Result<Observed, CloudError> {
            Ok(self.model.lock().unwrap().clone())
        }
        async fn apply(&self, d: &Desired, a: &Action) -> Result<String, CloudError> {
            use std::sync::atomic::Ordering;
            if self
                .throttle
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(CloudError::from_code(
                    "creating things",
                    "RequestLimitExceeded",
                    "Request limit exceeded.",
                ));
            }
            apply_to_model(d, &mut self.model.lock().unwrap(), a);
            Ok(a.describe())
        }
    }

    #[tokio::test]
    async fn throttling_is_backed_off_and_the_cluster_still_converges() {
        let d = desired(1, 1, &["us-east-1a"]);
        let cloud = Throttling {
            model: Default::default(),
            throttle: 2.into(),
        };
        let o = converge(&cloud, &d, Duration::from_secs(60), &crate::progress::Quiet)
            .await
            .unwrap();
        assert_eq!(o.instances.len(), 2);
        assert_eq!(cloud.throttle.load(std::sync::atomic::Ordering::SeqCst), 0);
        // other errors still end it at once
        let refusing = Throttling {
            model: Default::default(),
            throttle: usize::MAX.into(),
        };
        let e = converge(&refusing, &d, Duration::ZERO, &crate::progress::Quiet)
            .await
            .unwrap_err();
        assert!(
            e.is_throttled() || e.to_string().contains("not converged"),
            "{e}"
        );
    }

    #[test]
    fn masters_and_nodes_are_spread_over_the_zones() {
        let d = desired(3, 3, &["us-east-1a", "us-east-1b", "us-east-1c"]);
        let (o, _) = converged(&d, &Observed::default());
        let zones = |role| {
            let mut z: Vec<String> = o.instances_of(role).map(|i| i.zone.clone()).collect();
            z.sort();
            z
        };
        assert_eq!(
            zones(Role::Master),
            ["us-east-1a", "us-east-1b", "us-east-1c"]
        );
        assert_eq!(
            zones(Role::Node),
            ["us-east-1a", "us-east-1b", "us-east-1c"]
        );
        let cidrs: Vec<&str> = o.subnets.iter().map(|s| s.cidr.as_str()).collect();
        assert_eq!(cidrs, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]);
        assert_eq!(o.target_groups[0].targets.len(), 3);
    }

    #[test]
    fn a_create_stopped_half_way_is_continued_without_duplicates() {
        let d = desired(1, 2, &["us-east-1a"]);
        // the state after each action of a whole run
        let mut o = Observed::default();
        let mut states = vec![o.clone()];
        loop {
            let p = plan(&d, &o);
            if p.is_empty() {
                break;
            }
            for a in p {
                apply_to_model(&d, &mut o, &a);
                states.push(o.clone());
            }
        }
        let all = states.len() - 1;
        // stop after every action: the rest is planned, nothing twice
        for (cut, o) in states.iter().enumerate() {
            let (done, rest) = converged(&d, o);
            assert_eq!(done.instances.len(), 3, "cut at {cut}");
            assert_eq!(done.vpcs.len(), 1);
            assert_eq!(done.subnets.len(), 1);
            assert_eq!(done.security_groups.len(), 3);
            assert_eq!(done.load_balancers.len(), 1);
            assert_eq!(cut + rest.len(), all, "cut at {cut}: {rest:?}");
        }
    }

    #[test]
    fn a_terminated_node_is_replaced_and_a_stopped_one_started() {
        let d = desired(1, 2, &["us-east-1a"]);
        let (mut o, _) = converged(&d, &Observed::default());
        let gone = o.instance("node-2").unwrap().id.clone();
        o.instances.retain(|i| i.id != gone);
        let n1 = o.instance("node-1").unwrap().id.clone();
        set_state(&mut o, &n1, InstanceState::Stopped);
        let p = plan(&d, &o);
        assert!(
            matches!(&p[..], [Action::RunInstance { name, .. }, Action::StartInstance { name: n1, .. }]
                if name == "node-2" && n1 == "node-1")
                || matches!(&p[..], [Action::StartInstance { name: n1, .. }, Action::RunInstance { name, .. }]
                if name == "node-2" && n1 == "node-1"),
            "{p:?}"
        );
    }

    #[test]
    fn fewer_nodes_terminate_the_highest_and_more_nodes_add() {
        let d = desired(1, 3, &["us-east-1a"]);
        let (o, _) = converged(&d, &Observed::default());
        let smaller = desired(1, 1, &["us-east-1a"]);
        let p = plan(&smaller, &o);
        let terminated: Vec<&str> = p
            .iter()
            .filter_map(|a| match a {
                Action::TerminateInstance { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(terminated, ["node-2", "node-3"]);
        assert!(
            p.iter().any(|a| matches!(a, Action::TagVpc { .. })),
            "the spec tag follows"
        );
        let bigger = desired(1, 5, &["us-east-1a"]);
        let (o2, actions) = converged(&bigger, &o);
        assert_eq!(o2.instances_of(Role::Node).count(), 5);
        assert_eq!(
            actions
                .iter()
                .filter(|a| matches!(a, Action::RunInstance { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn a_new_master_is_registered_and_a_gone_one_deregistered() {
        let d = desired(3, 0, &["us-east-1a"]);
        let (mut o, _) = converged(&d, &Observed::default());
        let m2 = o.instance("master-2").unwrap().id.clone();
        o.instances.retain(|i| i.id != m2);
        let p = plan(&d, &o);
        assert!(
            p.contains(&Action::DeregisterTargets {
                target_group: o.target_groups[0].arn.clone(),
                instances: vec![m2],
            }),
            "{p:?}"
        );
        assert!(p
            .iter()
            .any(|a| matches!(a, Action::RunInstance { name, .. } if name == "master-2")));
    }

    #[test]
    fn missing_rules_are_added_and_extra_ones_left_alone() {
        let d = desired(1, 1, &["us-east-1a"]);
        let (mut o, _) = converged(&d, &Observed::default());
        let nodes = o
            .security_groups
            .iter_mut()
            .find(|g| g.role == GROUP_NODES)
            .unwrap();
        let dropped = nodes.rules.remove(0);
        nodes
            .rules
            .push(Rule::tcp(31000, 31000, Source::Cidr("0.0.0.0/0".into())));
        let p = plan(&d, &o);
        assert!(
            matches!(&p[..], [Action::Authorize { role, rules, .. }] if role == GROUP_NODES && rules == &vec![dropped.clone()]),
            "{p:?}"
        );
    }

    #[test]
    fn every_node_gets_its_source_dest_check_off_and_masters_keep_it() {
        let d = desired(1, 2, &["us-east-1a", "us-east-1b"]);
        let (mut o, actions) = converged(&d, &Observed::default());
        let turned_off: Vec<&str> = actions
            .iter()
            .filter_map(|a| match a {
                Action::DisableSourceDestCheck { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(turned_off, ["node-1", "node-2"]);
        assert!(o.instances_of(Role::Node).all(|i| !i.source_dest_check));
        assert!(o.instance("master-1").unwrap().source_dest_check);
        // a node added by update, a replaced node, and one turned back on by hand
        let bigger = desired(1, 3, &["us-east-1a", "us-east-1b"]);
        let gone = o.instance("node-1").unwrap().id.clone();
        o.instances.retain(|i| i.id != gone);
        let n2 = o.instance("node-2").unwrap().id.clone();
        o.instances
            .iter_mut()
            .find(|i| i.id == n2)
            .unwrap()
            .source_dest_check = true;
        assert!(plan(&bigger, &o).contains(&Action::DisableSourceDestCheck {
            id: n2,
            name: "node-2".into()
        }));
        let (o, _) = converged(&bigger, &o);
        assert_eq!(o.instances_of(Role::Node).count(), 3);
        assert!(o.instances_of(Role::Node).all(|i| !i.source_dest_check));
    }

    #[test]
    fn pending_instances_are_waited_for() {
        let d = desired(1, 1, &["us-east-1a"]);
        let (mut o, _) = converged(&d, &Observed::default());
        let id = o.instance("node-1").unwrap().id.clone();
        set_state(&mut o, &id, InstanceState::Pending);
        assert_eq!(
            plan(&d, &o),
            vec![Action::Wait {
                names: vec!["node-1".into()]
            }]
        );
    }
}
