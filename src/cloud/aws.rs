//! AWS: creates a cluster's infrastructure (VPC, internet gateway, route table, one subnet per
//! zone, security groups, key pair, instances, the API's network load balancer) with every
//! resource tagged, finds a cluster's resources by tag, and deletes them in dependency order.
//! Works against any endpoint aws-config is pointed at (`AWS_ENDPOINT_URL`, e.g. the local cloud
//! in `localstack/`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, IpPermission,
    IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use aws_sdk_elasticloadbalancingv2 as elb;

use super::{ClusterSpec, Profile, TAG_CLUSTER, TAG_CREATED, TAG_ROLE};

/// An error with the AWS error code when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CloudError(pub String);

fn fail<E>(
    what: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let msg = match &e {
        SdkError::DispatchFailure(d) => format!(
            "cannot reach the AWS endpoint ({}); hint: is the endpoint up (`localstack/status`) and AWS_ENDPOINT_URL right?",
            d.as_connector_error().map(|c| c.to_string()).unwrap_or_else(|| "connection failed".into())
        ),
        SdkError::TimeoutError(_) => "the AWS endpoint did not answer in time".into(),
        SdkError::ServiceError(s) => format!(
            "{}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or("")
        ),
        other => match (other.code(), other.message()) {
            (Some(c), m) => format!("{c}: {}", m.unwrap_or("")),
            _ => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(other)),
        },
    };
    CloudError(format!("{what}: {msg}"))
}

fn code_of<E: ProvideErrorMetadata>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<String> {
    match e {
        aws_smithy_runtime_api::client::result::SdkError::ServiceError(s) => {
            s.err().code().map(str::to_string)
        }
        _ => None,
    }
}

pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: elb::Client,
    pub region: String,
}

/// Clients for `region`, configured the standard way (environment, profiles, instance role;
/// `AWS_ENDPOINT_URL` for an emulator). Fails early when there are no credentials.
pub async fn connect(region: &str) -> Result<Aws, CloudError> {
    use aws_config::BehaviorVersion;
    use aws_credential_types::provider::ProvideCredentials;
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    match conf.credentials_provider() {
        Some(p) => {
            p.provide_credentials().await.map_err(|e| {
                CloudError(format!(
                    "no AWS credentials: {e}; hint: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (the local cloud takes test/test)"
                ))
            })?;
        }
        None => {
            return Err(CloudError(
                "no AWS credentials provider is configured".into(),
            ))
        }
    }
    Ok(Aws {
        ec2: aws_sdk_ec2::Client::new(&conf),
        elb: elb::Client::new(&conf),
        region: region.to_string(),
    })
}

fn tags(cluster: &str, role: &str, created: &str, name: &str) -> Vec<Tag> {
    [
        (TAG_CLUSTER, cluster),
        (TAG_ROLE, role),
        (TAG_CREATED, created),
        ("Name", name),
    ]
    .into_iter()
    .map(|(k, v)| Tag::builder().key(k).value(v).build())
    .collect()
}

fn spec(rt: ResourceType, t: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(t))
        .build()
}

fn elb_tags(cluster: &str, role: &str, created: &str) -> Vec<elb::types::Tag> {
    [
        (TAG_CLUSTER, cluster),
        (TAG_ROLE, role),
        (TAG_CREATED, created),
    ]
    .into_iter()
    .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
    .collect()
}

/// What `create` made.
#[derive(Debug, Clone, Default)]
pub struct Created {
    pub vpc: String,
    pub subnets: Vec<(String, String)>,
    pub instances: Vec<(String, String)>,
    pub api_dns: String,
}

/// The newest image matching the profile's lookup.
pub async fn find_image(aws: &Aws, p: &Profile) -> Result<String, CloudError> {
    let out = aws
        .ec2
        .describe_images()
        .owners(&p.image.owner)
        .filters(Filter::builder().name("name").values(&p.image.name).build())
        .send()
        .await
        .map_err(|e| fail("looking up the machine image", e))?;
    let mut images: Vec<_> = out.images().to_vec();
    images.sort_by(|a, b| a.creation_date().cmp(&b.creation_date()));
    images
        .last()
        .and_then(|i| i.image_id().map(str::to_string))
        .ok_or_else(|| {
            CloudError(format!(
                "no image named {:?} owned by {} in {}; hint: pass --image ami-... (the local cloud seeds one with localstack/up)",
                p.image.name, p.image.owner, aws.region
            ))
        })
}

/// Checks the zones belong to the region.
pub async fn check_zones(aws: &Aws, zones: &[String]) -> Result<(), CloudError> {
    let out = aws
        .ec2
        .describe_availability_zones()
        .send()
        .await
        .map_err(|e| fail("listing the availability zones", e))?;
    let known: Vec<&str> = out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name())
        .collect();
    for z in zones {
        if !known.contains(&z.as_str()) {
            return Err(CloudError(format!(
                "--zones: {z} is not a zone of region {} (zones: {})",
                aws.region,
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Creates the cluster's infrastructure. Every resource is tagged at creation, so a create
/// that fails half-way leaves only what `delete` finds.
pub async fn create(
    aws: &Aws,
    s: &ClusterSpec,
    p: &Profile,
    user_data: &dyn Fn(&str) -> String,
    progress: &mut dyn FnMut(String),
) -> Result<Created, CloudError> {
    let ec2 = &aws.ec2;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let name = &s.name;
    let t = |role: &str, what: &str| tags(name, role, &now, &format!("{name}-{what}"));
    if !find(aws, name).await?.is_empty() {
        return Err(CloudError(format!(
            "a cluster named {name:?} already exists in {} (resources tagged {TAG_CLUSTER}={name}); delete it first or pick another name",
            aws.region
        )));
    }
    check_zones(aws, &s.zones).await?;
    let image = match &s.image {
        Some(i) => i.clone(),
        None => find_image(aws, p).await?,
    };

    // network
    let vpc = ec2
        .create_vpc()
        .cidr_block(p.network.vpc_cidr.to_string())
        .tag_specifications(spec(ResourceType::Vpc, t("network", "vpc")))
        .send()
        .await
        .map_err(|e| fail("creating the VPC", e))?
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    progress(format!("created VPC {vpc} ({})", p.network.vpc_cidr));
    let igw = ec2
        .create_internet_gateway()
        .tag_specifications(spec(ResourceType::InternetGateway, t("network", "igw")))
        .send()
        .await
        .map_err(|e| fail("creating the internet gateway", e))?
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .unwrap_or_default()
        .to_string();
    ec2.attach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .map_err(|e| fail("attaching the internet gateway", e))?;
    let rt = ec2
        .create_route_table()
        .vpc_id(&vpc)
        .tag_specifications(spec(ResourceType::RouteTable, t("network", "routes")))
        .send()
        .await
        .map_err(|e| fail("creating the route table", e))?
        .route_table()
        .and_then(|r| r.route_table_id())
        .unwrap_or_default()
        .to_string();
    ec2.create_route()
        .route_table_id(&rt)
        .destination_cidr_block("0.0.0.0/0")
        .gateway_id(&igw)
        .send()
        .await
        .map_err(|e| fail("adding the default route", e))?;
    progress(format!(
        "created internet gateway {igw} and route table {rt}"
    ));
    let mut subnets = Vec::new();
    for (i, zone) in s.zones.iter().enumerate() {
        let cidr = super::zone_subnet(&p.network, i).map_err(CloudError)?;
        let id = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr.to_string())
            .availability_zone(zone)
            .tag_specifications(spec(ResourceType::Subnet, t("network", zone)))
            .send()
            .await
            .map_err(|e| fail(&format!("creating the subnet in {zone}"), e))?
            .subnet()
            .and_then(|s| s.subnet_id())
            .unwrap_or_default()
            .to_string();
        ec2.associate_route_table()
            .route_table_id(&rt)
            .subnet_id(&id)
            .send()
            .await
            .map_err(|e| fail(&format!("routing subnet {id}"), e))?;
        progress(format!("created subnet {id} ({cidr}) in {zone}"));
        subnets.push((zone.clone(), id));
    }

    // security groups: masters, nodes; rules only for the ports the cluster needs
    let mut sg = BTreeMap::new();
    for role in ["masters", "nodes"] {
        let id = ec2
            .create_security_group()
            .vpc_id(&vpc)
            .group_name(format!("{name}-{role}"))
            .description(format!("orkops cluster {name}: {role}"))
            .tag_specifications(spec(ResourceType::SecurityGroup, t(role, role)))
            .send()
            .await
            .map_err(|e| fail(&format!("creating the {role} security group"), e))?
            .group_id()
            .unwrap_or_default()
            .to_string();
        sg.insert(role, id);
    }
    let cidrs = |list: &[String]| -> Vec<IpRange> {
        list.iter()
            .map(|c| IpRange::builder().cidr_ip(c).build())
            .collect()
    };
    let from_groups = |groups: &[&String]| -> Vec<UserIdGroupPair> {
        groups
            .iter()
            .map(|g| UserIdGroupPair::builder().group_id(*g).build())
            .collect()
    };
    let tcp = |from: i32, to: i32| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(from)
            .to_port(to)
    };
    let vpc_cidr = vec![p.network.vpc_cidr.to_string()];
    let all = [&sg["masters"], &sg["nodes"]];
    let rules: Vec<(&str, Vec<IpPermission>)> = vec![
        (
            "masters",
            vec![
                tcp(p.ports.ssh, p.ports.ssh)
                    .set_ip_ranges(Some(cidrs(&s.api_cidrs)))
                    .build(),
                tcp(p.ports.api, p.ports.api)
                    .set_ip_ranges(Some(cidrs(&s.api_cidrs)))
                    .build(),
                // the API load balancer's health checks and forwarded traffic come from the VPC
                tcp(p.ports.api, p.ports.api)
                    .set_ip_ranges(Some(cidrs(&vpc_cidr)))
                    .build(),
                // etcd between masters
                tcp(2379, 2380)
                    .set_user_id_group_pairs(Some(from_groups(&all[..1])))
                    .build(),
            ],
        ),
        (
            "nodes",
            vec![
                tcp(p.ports.ssh, p.ports.ssh)
                    .set_ip_ranges(Some(cidrs(&s.api_cidrs)))
                    .build(),
                tcp(p.ports.agent, p.ports.agent)
                    .set_user_id_group_pairs(Some(from_groups(&all[..1])))
                    .build(),
                tcp(p.ports.node_port_first, p.ports.node_port_last)
                    .set_ip_ranges(Some(cidrs(&vpc_cidr)))
                    .build(),
                // pod traffic between nodes and from masters
                IpPermission::builder()
                    .ip_protocol("-1")
                    .set_user_id_group_pairs(Some(from_groups(&all)))
                    .build(),
            ],
        ),
    ];
    for (role, perms) in rules {
        ec2.authorize_security_group_ingress()
            .group_id(&sg[role])
            .set_ip_permissions(Some(perms))
            .send()
            .await
            .map_err(|e| fail(&format!("opening the {role} security group"), e))?;
    }
    progress(format!(
        "created security groups {} (masters) and {} (nodes)",
        sg["masters"], sg["nodes"]
    ));

    let key_name = format!("orkops-{name}");
    ec2.import_key_pair()
        .key_name(&key_name)
        .public_key_material(aws_sdk_ec2::primitives::Blob::new(
            s.ssh_public_key.as_bytes(),
        ))
        .tag_specifications(spec(ResourceType::KeyPair, t("ssh", "key")))
        .send()
        .await
        .map_err(|e| fail("importing the SSH key pair", e))?;
    progress(format!("imported key pair {key_name}"));

    // instances: masters and nodes spread over the zones, started in parallel
    let mut launches = Vec::new();
    for (role, count, size) in [
        ("master", s.masters, &s.master_size),
        ("node", s.nodes, &s.node_size),
    ] {
        for i in 0..count {
            let (zone, subnet) = subnets[i as usize % subnets.len()].clone();
            let group = if role == "master" {
                &sg["masters"]
            } else {
                &sg["nodes"]
            };
            let req = ec2
                .run_instances()
                .image_id(&image)
                .instance_type(InstanceType::from(size.as_str()))
                .min_count(1)
                .max_count(1)
                .key_name(&key_name)
                .user_data(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    user_data(role),
                ))
                .network_interfaces(
                    InstanceNetworkInterfaceSpecification::builder()
                        .device_index(0)
                        .subnet_id(&subnet)
                        .groups(group)
                        .associate_public_ip_address(true)
                        .build(),
                )
                .tag_specifications(spec(
                    ResourceType::Instance,
                    t(role, &format!("{role}-{}", i + 1)),
                ));
            launches.push(async move {
                let out = req
                    .send()
                    .await
                    .map_err(|e| fail(&format!("starting {role} {} in {zone}", i + 1), e))?;
                let id = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .unwrap_or_default()
                    .to_string();
                Ok::<_, CloudError>((role.to_string(), id))
            });
        }
    }
    let mut instances = Vec::new();
    for r in futures::future::join_all(launches).await {
        let (role, id) = r?;
        progress(format!("started {role} instance {id}"));
        instances.push((role, id));
    }
    wait_for(
        aws,
        &instances.iter().map(|i| i.1.clone()).collect::<Vec<_>>(),
        InstanceStateName::Running,
        Duration::from_secs(300),
    )
    .await?;
    progress(format!("{} instances running", instances.len()));

    // the API load balancer: an NLB over the masters' API port
    let lb_tags = elb_tags(name, "api", &now);
    let tg = aws
        .elb
        .create_target_group()
        .name(format!("{name}-api"))
        .protocol(elb::types::ProtocolEnum::Tcp)
        .port(p.ports.api)
        .vpc_id(&vpc)
        .target_type(elb::types::TargetTypeEnum::Instance)
        .set_tags(Some(lb_tags.clone()))
        .send()
        .await
        .map_err(|e| fail("creating the API target group", e))?
        .target_groups()
        .first()
        .and_then(|g| g.target_group_arn())
        .unwrap_or_default()
        .to_string();
    let lb = aws
        .elb
        .create_load_balancer()
        .name(format!("{name}-api"))
        .r#type(elb::types::LoadBalancerTypeEnum::Network)
        .scheme(elb::types::LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(subnets.iter().map(|s| s.1.clone()).collect()))
        .set_tags(Some(lb_tags))
        .send()
        .await
        .map_err(|e| fail("creating the API load balancer", e))?;
    let lb = lb
        .load_balancers()
        .first()
        .cloned()
        .unwrap_or_else(|| elb::types::LoadBalancer::builder().build());
    let lb_arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    let masters: Vec<elb::types::TargetDescription> = instances
        .iter()
        .filter(|i| i.0 == "master")
        .map(|i| {
            elb::types::TargetDescription::builder()
                .id(&i.1)
                .port(p.ports.api)
                .build()
        })
        .collect();
    aws.elb
        .register_targets()
        .target_group_arn(&tg)
        .set_targets(Some(masters))
        .send()
        .await
        .map_err(|e| fail("registering the masters with the API load balancer", e))?;
    aws.elb
        .create_listener()
        .load_balancer_arn(&lb_arn)
        .protocol(elb::types::ProtocolEnum::Tcp)
        .port(p.ports.api)
        .default_actions(
            elb::types::Action::builder()
                .r#type(elb::types::ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail("creating the API listener", e))?;
    let api_dns = lb.dns_name().unwrap_or_default().to_string();
    progress(format!("created API load balancer {api_dns}"));
    Ok(Created {
        vpc,
        subnets,
        instances,
        api_dns,
    })
}

/// Waits until every instance is in `state`.
async fn wait_for(
    aws: &Aws,
    ids: &[String],
    state: InstanceStateName,
    deadline: Duration,
) -> Result<(), CloudError> {
    if ids.is_empty() {
        return Ok(());
    }
    let start = Instant::now();
    loop {
        let out = aws
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| fail("watching the instances", e))?;
        let states: Vec<(String, Option<InstanceStateName>)> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.state().and_then(|s| s.name()).cloned(),
                )
            })
            .collect();
        if states.iter().all(|(_, s)| s.as_ref() == Some(&state)) {
            return Ok(());
        }
        if start.elapsed() > deadline {
            let behind: Vec<String> = states
                .iter()
                .filter(|(_, s)| s.as_ref() != Some(&state))
                .map(|(id, s)| format!("{id} ({})", s.as_ref().map(|s| s.as_str()).unwrap_or("?")))
                .collect();
            return Err(CloudError(format!(
                "instances not {} after {} s: {}",
                state.as_str(),
                deadline.as_secs(),
                behind.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Everything AWS holds for a cluster, found by its tag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub listeners: Vec<String>,
    pub load_balancers: Vec<String>,
    pub target_groups: Vec<String>,
    pub instances: Vec<String>,
    pub key_pairs: Vec<String>,
    pub security_groups: Vec<String>,
    pub subnets: Vec<String>,
    pub route_tables: Vec<String>,
    pub internet_gateways: Vec<(String, Vec<String>)>,
    pub vpcs: Vec<String>,
}

impl Inventory {
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }
    pub fn count(&self) -> usize {
        self.listeners.len()
            + self.load_balancers.len()
            + self.target_groups.len()
            + self.instances.len()
            + self.key_pairs.len()
            + self.security_groups.len()
            + self.subnets.len()
            + self.route_tables.len()
            + self.internet_gateways.len()
            + self.vpcs.len()
    }
    /// One line per resource, in deletion order.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add =
            |what: &str, ids: &[String]| out.extend(ids.iter().map(|i| format!("{what} {i}")));
        add("listener", &self.listeners);
        add("load-balancer", &self.load_balancers);
        add("target-group", &self.target_groups);
        add("instance", &self.instances);
        add("key-pair", &self.key_pairs);
        add("security-group", &self.security_groups);
        add("subnet", &self.subnets);
        add("route-table", &self.route_tables);
        add(
            "internet-gateway",
            &self
                .internet_gateways
                .iter()
                .map(|g| g.0.clone())
                .collect::<Vec<_>>(),
        );
        add("vpc", &self.vpcs);
        out
    }
}

/// Finds every resource tagged with the cluster (terminated instances excluded).
pub async fn find(aws: &Aws, cluster: &str) -> Result<Inventory, CloudError> {
    let ec2 = &aws.ec2;
    let by_tag = || {
        Filter::builder()
            .name(format!("tag:{TAG_CLUSTER}"))
            .values(cluster)
            .build()
    };
    let mut inv = Inventory::default();
    let out = ec2
        .describe_vpcs()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing VPCs", e))?;
    inv.vpcs = out
        .vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    let out = ec2
        .describe_subnets()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing subnets", e))?;
    inv.subnets = out
        .subnets()
        .iter()
        .filter_map(|v| v.subnet_id().map(str::to_string))
        .collect();
    let out = ec2
        .describe_route_tables()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing route tables", e))?;
    inv.route_tables = out
        .route_tables()
        .iter()
        .filter_map(|v| v.route_table_id().map(str::to_string))
        .collect();
    let out = ec2
        .describe_internet_gateways()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing internet gateways", e))?;
    inv.internet_gateways = out
        .internet_gateways()
        .iter()
        .filter_map(|g| {
            Some((
                g.internet_gateway_id()?.to_string(),
                g.attachments()
                    .iter()
                    .filter_map(|a| a.vpc_id().map(str::to_string))
                    .collect(),
            ))
        })
        .collect();
    let out = ec2
        .describe_security_groups()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing security groups", e))?;
    inv.security_groups = out
        .security_groups()
        .iter()
        .filter_map(|v| v.group_id().map(str::to_string))
        .collect();
    let out = ec2
        .describe_key_pairs()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing key pairs", e))?;
    inv.key_pairs = out
        .key_pairs()
        .iter()
        .filter_map(|k| k.key_name().map(str::to_string))
        .collect();
    let out = ec2
        .describe_instances()
        .filters(by_tag())
        .send()
        .await
        .map_err(|e| fail("listing instances", e))?;
    inv.instances = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            !matches!(
                i.state().and_then(|s| s.name()),
                Some(InstanceStateName::Terminated)
            )
        })
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    // ELBv2 has no tag filter: list, then read the tags
    let tagged = |arns: Vec<String>| async move {
        let mut mine = Vec::new();
        for chunk in arns.chunks(20) {
            if chunk.is_empty() {
                continue;
            }
            let out = aws
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| fail("reading load balancer tags", e))?;
            for d in out.tag_descriptions() {
                if d.tags()
                    .iter()
                    .any(|t| t.key() == Some(TAG_CLUSTER) && t.value() == Some(cluster))
                {
                    mine.extend(d.resource_arn().map(str::to_string));
                }
            }
        }
        Ok::<_, CloudError>(mine)
    };
    let lbs = aws
        .elb
        .describe_load_balancers()
        .send()
        .await
        .map_err(|e| fail("listing load balancers", e))?;
    inv.load_balancers = tagged(
        lbs.load_balancers()
            .iter()
            .filter_map(|l| l.load_balancer_arn().map(str::to_string))
            .collect(),
    )
    .await?;
    let tgs = aws
        .elb
        .describe_target_groups()
        .send()
        .await
        .map_err(|e| fail("listing target groups", e))?;
    inv.target_groups = tagged(
        tgs.target_groups()
            .iter()
            .filter_map(|g| g.target_group_arn().map(str::to_string))
            .collect(),
    )
    .await?;
    for lb in &inv.load_balancers {
        let out = aws
            .elb
            .describe_listeners()
            .load_balancer_arn(lb)
            .send()
            .await
            .map_err(|e| fail("listing listeners", e))?;
        inv.listeners.extend(
            out.listeners()
                .iter()
                .filter_map(|l| l.listener_arn().map(str::to_string)),
        );
    }
    Ok(inv)
}

/// Deletes what `inv` lists in dependency order, retrying dependency errors with back-off.
pub async fn delete(
    aws: &Aws,
    inv: &Inventory,
    progress: &mut dyn FnMut(String),
) -> Result<(), CloudError> {
    let ec2 = &aws.ec2;
    for l in &inv.listeners {
        aws.elb
            .delete_listener()
            .listener_arn(l)
            .send()
            .await
            .map_err(|e| fail(&format!("deleting listener {l}"), e))?;
        progress(format!("deleted listener {l}"));
    }
    for l in &inv.load_balancers {
        aws.elb
            .delete_load_balancer()
            .load_balancer_arn(l)
            .send()
            .await
            .map_err(|e| fail(&format!("deleting load balancer {l}"), e))?;
        progress(format!("deleted load balancer {l}"));
    }
    for g in &inv.target_groups {
        retry(&format!("deleting target group {g}"), || {
            aws.elb.delete_target_group().target_group_arn(g).send()
        })
        .await?;
        progress(format!("deleted target group {g}"));
    }
    if !inv.instances.is_empty() {
        ec2.terminate_instances()
            .set_instance_ids(Some(inv.instances.clone()))
            .send()
            .await
            .map_err(|e| fail("terminating the instances", e))?;
        wait_for(
            aws,
            &inv.instances,
            InstanceStateName::Terminated,
            Duration::from_secs(300),
        )
        .await?;
        progress(format!("terminated {} instances", inv.instances.len()));
    }
    for k in &inv.key_pairs {
        ec2.delete_key_pair()
            .key_name(k)
            .send()
            .await
            .map_err(|e| fail(&format!("deleting key pair {k}"), e))?;
        progress(format!("deleted key pair {k}"));
    }
    // rules referring to the other group first, or neither group can go
    for g in &inv.security_groups {
        let out = ec2
            .describe_security_groups()
            .group_ids(g)
            .send()
            .await
            .map_err(|e| fail(&format!("reading security group {g}"), e))?;
        for sg in out.security_groups() {
            if !sg.ip_permissions().is_empty() {
                ec2.revoke_security_group_ingress()
                    .group_id(g)
                    .set_ip_permissions(Some(sg.ip_permissions().to_vec()))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("emptying security group {g}"), e))?;
            }
        }
    }
    for g in &inv.security_groups {
        retry(&format!("deleting security group {g}"), || {
            ec2.delete_security_group().group_id(g).send()
        })
        .await?;
        progress(format!("deleted security group {g}"));
    }
    for s in &inv.subnets {
        retry(&format!("deleting subnet {s}"), || {
            ec2.delete_subnet().subnet_id(s).send()
        })
        .await?;
        progress(format!("deleted subnet {s}"));
    }
    for r in &inv.route_tables {
        let out = ec2
            .describe_route_tables()
            .route_table_ids(r)
            .send()
            .await
            .map_err(|e| fail(&format!("reading route table {r}"), e))?;
        for a in out.route_tables().iter().flat_map(|t| t.associations()) {
            if let (Some(id), false) = (a.route_table_association_id(), a.main().unwrap_or(false)) {
                ec2.disassociate_route_table()
                    .association_id(id)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("detaching route table {r}"), e))?;
            }
        }
        retry(&format!("deleting route table {r}"), || {
            ec2.delete_route_table().route_table_id(r).send()
        })
        .await?;
        progress(format!("deleted route table {r}"));
    }
    for (g, vpcs) in &inv.internet_gateways {
        for v in vpcs {
            ec2.detach_internet_gateway()
                .internet_gateway_id(g)
                .vpc_id(v)
                .send()
                .await
                .map_err(|e| fail(&format!("detaching internet gateway {g}"), e))?;
        }
        retry(&format!("deleting internet gateway {g}"), || {
            ec2.delete_internet_gateway().internet_gateway_id(g).send()
        })
        .await?;
        progress(format!("deleted internet gateway {g}"));
    }
    for v in &inv.vpcs {
        retry(&format!("deleting VPC {v}"), || {
            ec2.delete_vpc().vpc_id(v).send()
        })
        .await?;
        progress(format!("deleted VPC {v}"));
    }
    Ok(())
}

/// Runs `call` until it succeeds, backing off on dependency errors (AWS lets go of a resource's
/// dependents a little after they were deleted) for up to two minutes; a resource already gone
/// counts as deleted.
async fn retry<T, E, F, Fut>(what: &str, call: F) -> Result<(), CloudError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
        Output = Result<
            T,
            aws_smithy_runtime_api::client::result::SdkError<
                E,
                aws_smithy_runtime_api::http::Response,
            >,
        >,
    >,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match call().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let code = code_of(&e).unwrap_or_default();
                if code.contains("NotFound") {
                    return Ok(());
                }
                let busy = code == "DependencyViolation"
                    || code == "ResourceInUse"
                    || code.contains("InUse");
                if !busy || start.elapsed() > Duration::from_secs(120) {
                    return Err(fail(what, e));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// An orkops cluster seen in the region: its name and the oldest creation time on its resources.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub name: String,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub vpc: Option<String>,
    pub masters: usize,
    pub nodes: usize,
}

/// Every cluster with a tagged VPC, instance, security group or key pair in the region (so a
/// half-deleted one is still found).
pub async fn clusters(aws: &Aws) -> Result<Vec<Seen>, CloudError> {
    let ec2 = &aws.ec2;
    let has_tag = || {
        Filter::builder()
            .name("tag-key")
            .values(TAG_CLUSTER)
            .build()
    };
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut note = |tags: &[Tag], vpc: Option<&str>, role: Option<&str>| {
        let get = |k: &str| {
            tags.iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
        };
        let Some(name) = get(TAG_CLUSTER) else { return };
        let e = seen.entry(name.to_string()).or_insert_with(|| Seen {
            name: name.to_string(),
            created: None,
            vpc: None,
            masters: 0,
            nodes: 0,
        });
        if let Some(c) = get(TAG_CREATED).and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        {
            let c = c.with_timezone(&chrono::Utc);
            e.created = Some(e.created.map_or(c, |old| old.min(c)));
        }
        if let Some(v) = vpc {
            e.vpc = Some(v.to_string());
        }
        match role {
            Some("master") => e.masters += 1,
            Some("node") => e.nodes += 1,
            _ => {}
        }
    };
    let out = ec2
        .describe_vpcs()
        .filters(has_tag())
        .send()
        .await
        .map_err(|e| fail("listing VPCs", e))?;
    for v in out.vpcs() {
        note(v.tags(), v.vpc_id(), None);
    }
    let out = ec2
        .describe_instances()
        .filters(has_tag())
        .send()
        .await
        .map_err(|e| fail("listing instances", e))?;
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        if matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated)
        ) {
            continue;
        }
        let role = i
            .tags()
            .iter()
            .find(|t| t.key() == Some(TAG_ROLE))
            .and_then(|t| t.value());
        note(i.tags(), None, role);
    }
    let out = ec2
        .describe_security_groups()
        .filters(has_tag())
        .send()
        .await
        .map_err(|e| fail("listing security groups", e))?;
    for g in out.security_groups() {
        note(g.tags(), None, None);
    }
    let out = ec2
        .describe_key_pairs()
        .filters(has_tag())
        .send()
        .await
        .map_err(|e| fail("listing key pairs", e))?;
    for k in out.key_pairs() {
        note(k.tags(), None, None);
    }
    Ok(seen.into_values().collect())
}

/// `90s`, `30m`, `2h`, `1d`.
pub fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("--older-than {s:?}: a number with s, m, h or d (e.g. 2h)");
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    match unit {
        "s" => Ok(chrono::Duration::seconds(n)),
        "m" => Ok(chrono::Duration::minutes(n)),
        "h" => Ok(chrono::Duration::hours(n)),
        "d" => Ok(chrono::Duration::days(n)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_parse() {
        assert_eq!(super::parse_age("2h").unwrap(), chrono::Duration::hours(2));
        assert_eq!(
            super::parse_age("90s").unwrap(),
            chrono::Duration::seconds(90)
        );
        assert!(super::parse_age("2").is_err());
        assert!(super::parse_age("h").is_err());
        assert!(super::parse_age("2w").is_err());
    }
}
