//! What a cluster's infrastructure is made of, as orkops sees it: the resources a cloud holds
//! for one cluster (`Observed`, found by the cluster tag), and the single changes (`Action`)
//! that `plan` chooses to bring them to the cluster's spec. Cloud-neutral data, no I/O.

use std::collections::BTreeMap;

/// The role of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Master,
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Node => "node",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "master" => Some(Role::Master),
            "node" => Some(Role::Node),
            _ => None,
        }
    }
    /// The security group the instances of this role are in.
    pub fn group(self) -> &'static str {
        match self {
            Role::Master => GROUP_MASTERS,
            Role::Node => GROUP_NODES,
        }
    }
}

/// The security groups of a cluster, by their role tag.
pub const GROUP_MASTERS: &str = "masters";
pub const GROUP_NODES: &str = "nodes";
/// The service load balancers' group (its rules are the load balancer controller's).
pub const GROUP_LBS: &str = "lbs";
pub const GROUPS: [&str; 3] = [GROUP_MASTERS, GROUP_NODES, GROUP_LBS];

/// The role tag of the API's load balancer and target group.
pub const LB_ROLE_API: &str = "api";

#[derive(Debug, Clone, PartialEq)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InternetGateway {
    pub id: String,
    /// VPC ids it is attached to.
    pub attached: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    pub id: String,
    pub vpc: String,
    /// The gateway of its 0.0.0.0/0 route, if it has one.
    pub default_gateway: Option<String>,
    /// (association id, subnet id) of each subnet association.
    pub associations: Vec<(String, String)>,
    /// Its routes to instances (the pod CIDR routes of `controllers::routes`).
    pub instance_routes: Vec<InstanceRoute>,
}

/// A route table entry whose target is an instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstanceRoute {
    /// The destination CIDR, as AWS writes it.
    pub destination: String,
    pub instance: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc: String,
    pub zone: String,
    pub cidr: String,
}

/// Where an ingress rule lets traffic come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Cidr(String),
    /// A security group id.
    Group(String),
}

/// One ingress rule with one source. Protocol `-1` (all) has ports -1..-1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub source: Source,
}

impl Rule {
    pub fn tcp(from: i32, to: i32, source: Source) -> Rule {
        Rule {
            protocol: "tcp".into(),
            from,
            to,
            source,
        }
    }
    pub fn all(source: Source) -> Rule {
        Rule {
            protocol: "-1".into(),
            from: -1,
            to: -1,
            source,
        }
    }
    pub fn describe(&self) -> String {
        let ports = if self.protocol == "-1" {
            "all traffic".to_string()
        } else if self.from == self.to {
            format!("{} {}", self.protocol, self.from)
        } else {
            format!("{} {}-{}", self.protocol, self.from, self.to)
        };
        let from = match &self.source {
            Source::Cidr(c) => c.clone(),
            Source::Group(g) => g.clone(),
        };
        format!("{ports} from {from}")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc: String,
    /// `masters`, `nodes` or `lbs`.
    pub role: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub fn parse(s: &str) -> InstanceState {
        match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            _ => InstanceState::Terminated,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }
    /// Still counts as the instance of its name (not on its way out).
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    /// The name within the cluster: `master-1`, `node-3`.
    pub name: String,
    pub role: Role,
    pub zone: String,
    pub state: InstanceState,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub image: String,
    pub size: String,
    /// `x86_64` or `arm64`.
    pub arch: String,
    /// EC2's source/destination check: on (the default), the instance drops packets not
    /// addressed to one of its own IPs, such as those for its pods.
    pub source_dest_check: bool,
}

impl Instance {
    /// The address orkops reaches it at from outside the VPC: its public IP, else its private one.
    pub fn address(&self) -> Option<&str> {
        self.public_ip.as_deref().or(self.private_ip.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    /// `api`, or `service` for the load balancer controller's.
    pub role: String,
    pub port: i32,
    /// Registered instance ids.
    pub targets: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub dns: String,
    pub role: String,
    /// `network` or `application`.
    pub kind: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub arn: String,
    pub load_balancer: String,
    pub port: i32,
    pub protocol: String,
    pub target_group: Option<String>,
}

/// Everything a cloud holds for one cluster (terminated instances left out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub vpcs: Vec<Vpc>,
    pub internet_gateways: Vec<InternetGateway>,
    pub route_tables: Vec<RouteTable>,
    pub subnets: Vec<Subnet>,
    pub security_groups: Vec<SecurityGroup>,
    pub key_pairs: Vec<String>,
    pub instances: Vec<Instance>,
    pub target_groups: Vec<TargetGroup>,
    pub load_balancers: Vec<LoadBalancer>,
    pub listeners: Vec<Listener>,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn count(&self) -> usize {
        self.lines().len()
    }

    /// One line per resource, in deletion order (what `delete cluster` removes, and in which
    /// order).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.listeners.iter().map(|l| format!("listener {}", l.arn)));
        out.extend(
            self.load_balancers
                .iter()
                .map(|l| format!("load-balancer {} ({})", l.name, l.arn)),
        );
        out.extend(
            self.target_groups
                .iter()
                .map(|g| format!("target-group {} ({})", g.name, g.arn)),
        );
        out.extend(
            self.instances
                .iter()
                .map(|i| format!("instance {} ({})", i.id, i.name)),
        );
        out.extend(self.key_pairs.iter().map(|k| format!("key-pair {k}")));
        out.extend(
            self.security_groups
                .iter()
                .map(|g| format!("security-group {} ({})", g.id, g.role)),
        );
        out.extend(
            self.subnets
                .iter()
                .map(|s| format!("subnet {} ({})", s.id, s.zone)),
        );
        out.extend(
            self.route_tables
                .iter()
                .map(|r| format!("route-table {}", r.id)),
        );
        out.extend(
            self.internet_gateways
                .iter()
                .map(|g| format!("internet-gateway {}", g.id)),
        );
        out.extend(self.vpcs.iter().map(|v| format!("vpc {}", v.id)));
        out
    }

    pub fn group(&self, role: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.role == role)
    }

    /// The live instance named `name` (the first, should there be several).
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.name == name && i.state.is_live())
    }

    pub fn instances_of(&self, role: Role) -> impl Iterator<Item = &Instance> {
        self.instances
            .iter()
            .filter(move |i| i.role == role && i.state.is_live())
    }

    pub fn api_load_balancer(&self) -> Option<&LoadBalancer> {
        self.load_balancers.iter().find(|l| l.role == LB_ROLE_API)
    }
}

/// The phase an action belongs to, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Network,
    Security,
    Instances,
    LoadBalancer,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Network => "network",
            Phase::Security => "security",
            Phase::Instances => "instances",
            Phase::LoadBalancer => "load balancer",
        }
    }
}

/// One change to a cluster's infrastructure. Ids are those of resources that exist; what an
/// action needs beyond them (image, sizes, tags, user data) comes from the desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateVpc {
        cidr: String,
    },
    /// Rewrite the spec the VPC's tags hold (after `update cluster --nodes N`, say).
    TagVpc {
        vpc: String,
    },
    CreateInternetGateway,
    AttachInternetGateway {
        igw: String,
        vpc: String,
    },
    CreateRouteTable {
        vpc: String,
    },
    CreateDefaultRoute {
        route_table: String,
        igw: String,
    },
    CreateSubnet {
        vpc: String,
        zone: String,
        cidr: String,
    },
    AssociateSubnet {
        route_table: String,
        subnet: String,
    },
    CreateSecurityGroup {
        vpc: String,
        role: String,
    },
    Authorize {
        group: String,
        role: String,
        rules: Vec<Rule>,
    },
    ImportKeyPair {
        name: String,
    },
    RunInstance {
        name: String,
        role: Role,
        zone: String,
        subnet: String,
        group: String,
    },
    StartInstance {
        id: String,
        name: String,
    },
    /// Turn the source/destination check off, so a node forwards its pods' packets.
    DisableSourceDestCheck {
        id: String,
        name: String,
    },
    TerminateInstance {
        id: String,
        name: String,
        why: String,
    },
    /// Nothing to do but wait for instances to settle (pending, stopping).
    Wait {
        names: Vec<String>,
    },
    CreateTargetGroup {
        name: String,
        vpc: String,
        port: i32,
    },
    CreateLoadBalancer {
        name: String,
        subnets: Vec<String>,
    },
    RegisterTargets {
        target_group: String,
        instances: Vec<String>,
    },
    DeregisterTargets {
        target_group: String,
        instances: Vec<String>,
    },
    CreateListener {
        load_balancer: String,
        target_group: String,
        port: i32,
    },
}

impl Action {
    pub fn phase(&self) -> Phase {
        use Action::*;
        match self {
            CreateVpc { .. }
            | TagVpc { .. }
            | CreateInternetGateway
            | AttachInternetGateway { .. }
            | CreateRouteTable { .. }
            | CreateDefaultRoute { .. }
            | CreateSubnet { .. }
            | AssociateSubnet { .. } => Phase::Network,
            CreateSecurityGroup { .. } | Authorize { .. } | ImportKeyPair { .. } => Phase::Security,
            RunInstance { .. }
            | StartInstance { .. }
            | DisableSourceDestCheck { .. }
            | TerminateInstance { .. }
            | Wait { .. } => Phase::Instances,
            CreateTargetGroup { .. }
            | CreateLoadBalancer { .. }
            | RegisterTargets { .. }
            | DeregisterTargets { .. }
            | CreateListener { .. } => Phase::LoadBalancer,
        }
    }

    /// The instance this action is about, for a progress line of its own.
    pub fn instance(&self) -> Option<&str> {
        match self {
            Action::RunInstance { name, .. }
            | Action::StartInstance { name, .. }
            | Action::DisableSourceDestCheck { name, .. }
            | Action::TerminateInstance { name, .. } => Some(name),
            _ => None,
        }
    }

    /// What it does, in words (dry-run plans and progress).
    pub fn describe(&self) -> String {
        use Action::*;
        match self {
            CreateVpc { cidr } => format!("create VPC {cidr}"),
            TagVpc { vpc } => format!("record the cluster spec in the tags of {vpc}"),
            CreateInternetGateway => "create the internet gateway".into(),
            AttachInternetGateway { igw, vpc } => format!("attach {igw} to {vpc}"),
            CreateRouteTable { vpc } => format!("create the route table of {vpc}"),
            CreateDefaultRoute { route_table, igw } => {
                format!("route 0.0.0.0/0 of {route_table} to {igw}")
            }
            CreateSubnet { zone, cidr, .. } => format!("create subnet {cidr} in {zone}"),
            AssociateSubnet {
                route_table,
                subnet,
            } => format!("route subnet {subnet} through {route_table}"),
            CreateSecurityGroup { role, .. } => format!("create the {role} security group"),
            Authorize { role, rules, .. } => format!(
                "open the {role} security group: {}",
                rules
                    .iter()
                    .map(Rule::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ImportKeyPair { name } => format!("import key pair {name}"),
            RunInstance { name, zone, .. } => format!("start instance {name} in {zone}"),
            StartInstance { id, name } => format!("start stopped instance {name} ({id})"),
            DisableSourceDestCheck { id, name } => {
                format!("turn off the source/destination check of {name} ({id})")
            }
            TerminateInstance { id, name, why } => {
                format!("terminate instance {name} ({id}): {why}")
            }
            Wait { names } => format!("wait for {}", names.join(", ")),
            CreateTargetGroup { name, port, .. } => {
                format!("create target group {name} (TCP {port})")
            }
            CreateLoadBalancer { name, .. } => format!("create network load balancer {name}"),
            RegisterTargets {
                target_group,
                instances,
            } => format!("register {} with {target_group}", instances.join(", ")),
            DeregisterTargets {
                target_group,
                instances,
            } => format!("deregister {} from {target_group}", instances.join(", ")),
            CreateListener { port, .. } => format!("create the API listener on TCP {port}"),
        }
    }
}
