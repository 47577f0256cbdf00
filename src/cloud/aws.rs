//! AWS: the `Cloud` the infrastructure reconciler drives. Observes a cluster's resources by tag
//! (VPC, internet gateway, route table, subnets, security groups, key pair, instances, load
//! balancers, target groups, listeners), applies the reconciler's actions with every resource
//! tagged at creation, and tears a cluster down in dependency order. Works against any endpoint
//! aws-config is pointed at (`AWS_ENDPOINT_URL`, e.g. the local cloud in `localstack/`), and
//! counts the calls it makes (`Aws::calls`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType, IpPermission,
    IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use aws_sdk_elasticloadbalancingv2 as elb;

use super::model::*;
use super::plan::{Cloud, Desired};
pub use super::CloudError;
use super::Profile;
use crate::names::{TAG_CLUSTER, TAG_CREATED, TAG_ROLE};
use crate::progress::{Event, Reporter};

fn fail<E>(
    what: &str,
    e: aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match &e {
        SdkError::DispatchFailure(d) => CloudError::Unreachable {
            what: what.to_string(),
            detail: d
                .as_connector_error()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "connection failed".into()),
        },
        SdkError::TimeoutError(_) => CloudError::Timeout {
            what: what.to_string(),
        },
        SdkError::ServiceError(s) => CloudError::from_code(
            what,
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or(""),
        ),
        other => match (other.code(), other.message()) {
            (Some(c), m) => CloudError::from_code(what, c, m.unwrap_or("")),
            _ => CloudError::Failed(format!(
                "{what}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(other)
            )),
        },
    }
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
    calls: std::sync::Arc<CallCounter>,
}

impl Aws {
    /// Requests sent so far (retries included), per `Service.Operation`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Requests sent so far, all operations.
    pub fn call_count(&self) -> u64 {
        self.calls().values().sum()
    }
}

/// Counts the requests the SDK clients send (an SDK interceptor).
#[derive(Debug, Default)]
struct CallCounter(std::sync::Mutex<BTreeMap<String, u64>>);

#[derive(Debug, Clone)]
struct Counting(std::sync::Arc<CallCounter>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for Counting {
    fn name(&self) -> &'static str {
        "orkops-call-counter"
    }

    fn read_before_transmit(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let op = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        if let Ok(mut m) = self.0 .0.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}

/// Clients for `region`, configured the standard way (environment, profiles, instance role;
/// `AWS_ENDPOINT_URL` for an emulator). Fails early when there are no credentials.
pub async fn connect(region: &str) -> Result<Aws, CloudError> {
    use aws_config::BehaviorVersion;
    let conf = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .load()
        .await;
    connect_with(&conf).await
}

/// Clients from a loaded SDK configuration (its region must be set).
pub async fn connect_with(conf: &aws_config::SdkConfig) -> Result<Aws, CloudError> {
    use aws_credential_types::provider::ProvideCredentials;
    match conf.credentials_provider() {
        Some(p) => {
            p.provide_credentials().await.map_err(|e| {
                CloudError::Credentials(format!(
                    "no AWS credentials: {e}; hint: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (the local cloud takes test/test)"
                ))
            })?;
        }
        None => {
            return Err(CloudError::Credentials(
                "no AWS credentials provider is configured; hint: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE".into(),
            ))
        }
    }
    let region = conf
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CloudError::Credentials("no AWS region: set AWS_REGION".into()))?;
    let calls = std::sync::Arc::new(CallCounter::default());
    let ec2 = aws_sdk_ec2::config::Builder::from(conf)
        .interceptor(Counting(calls.clone()))
        .build();
    let elb = elb::config::Builder::from(conf)
        .interceptor(Counting(calls.clone()))
        .build();
    Ok(Aws {
        ec2: aws_sdk_ec2::Client::from_conf(ec2),
        elb: elb::Client::from_conf(elb),
        region,
        calls,
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

fn elb_tags(cluster: &str, role: &str, created: &str) -> BTreeMap<String, String> {
    [
        (TAG_CLUSTER, cluster),
        (TAG_ROLE, role),
        (TAG_CREATED, created),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
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
            CloudError::Invalid(format!(
                "no image named {:?} owned by {} in {}; hint: pass --image ami-... (the local cloud seeds one with localstack/up)",
                p.image.name, p.image.owner, aws.region
            ))
        })
}

/// Checks the image exists, and returns its architecture (`x86_64`, `arm64`).
pub async fn image_arch(aws: &Aws, image: &str) -> Result<String, CloudError> {
    let out = aws
        .ec2
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .map_err(|e| fail(&format!("--image {image}"), e))?;
    out.images()
        .first()
        .map(|i| {
            i.architecture()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| "x86_64".into())
        })
        .ok_or_else(|| {
            CloudError::Invalid(format!("--image {image}: no such image in {}", aws.region))
        })
}

/// Checks the instance types exist in the region (before anything is created).
pub async fn check_sizes(aws: &Aws, sizes: &[(&str, &str)]) -> Result<(), CloudError> {
    for (flag, size) in sizes {
        let r = aws
            .ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(*size))
            .send()
            .await;
        match r {
            Ok(out) if !out.instance_types().is_empty() => {}
            Ok(_) => {
                return Err(CloudError::Invalid(format!(
                    "{flag} {size}: no such instance type in {}",
                    aws.region
                )))
            }
            Err(e) if code_of(&e).is_some_and(|c| c.starts_with("InvalidInstanceType")) => {
                return Err(CloudError::Invalid(format!(
                    "{flag} {size}: no such instance type in {}",
                    aws.region
                )))
            }
            Err(e) => return Err(fail(&format!("{flag} {size}"), e)),
        }
    }
    Ok(())
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
            return Err(CloudError::Invalid(format!(
                "--zones: {z} is not a zone of region {} (zones: {})",
                aws.region,
                known.join(", ")
            )));
        }
    }
    Ok(())
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

/// The EC2 filter for the resources of `cluster` (its `orkops.io/cluster` tag).
pub fn by_tag(cluster: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{TAG_CLUSTER}"))
        .values(cluster)
        .build()
}

fn rules_of(perms: &[IpPermission]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let (from, to) = if protocol == "-1" {
            (-1, -1)
        } else {
            (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1))
        };
        let mut rule = |source| {
            out.push(Rule {
                protocol: protocol.clone(),
                from,
                to,
                source,
            })
        };
        for r in p.ip_ranges() {
            if let Some(c) = r.cidr_ip() {
                rule(Source::Cidr(c.to_string()));
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                rule(Source::Group(id.to_string()));
            }
        }
    }
    out.sort();
    out
}

fn permission(r: &Rule) -> IpPermission {
    let mut b = IpPermission::builder().ip_protocol(&r.protocol);
    if r.protocol != "-1" {
        b = b.from_port(r.from).to_port(r.to);
    }
    match &r.source {
        Source::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).build()),
        Source::Group(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
    }
    .build()
}

/// Everything AWS holds for the cluster, found by its tag (terminated instances left out).
pub async fn observe(aws: &Aws, cluster: &str) -> Result<Observed, CloudError> {
    let ec2 = &aws.ec2;
    // one describe call per kind, filtered by the cluster tag
    macro_rules! tagged {
        ($call:ident, $what:literal) => {
            async {
                ec2.$call()
                    .filters(by_tag(cluster))
                    .send()
                    .await
                    .map_err(|e| fail($what, e))
            }
        };
    }
    let (vpcs, igws, rts, subnets, sgs, keys, instances, elbv2) = tokio::try_join!(
        tagged!(describe_vpcs, "listing VPCs"),
        tagged!(describe_internet_gateways, "listing internet gateways"),
        tagged!(describe_route_tables, "listing route tables"),
        tagged!(describe_subnets, "listing subnets"),
        tagged!(describe_security_groups, "listing security groups"),
        tagged!(describe_key_pairs, "listing key pairs"),
        async {
            ec2.describe_instances()
                .filters(by_tag(cluster))
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| fail("listing instances", e))
        },
        observe_elbv2(aws, cluster),
    )?;
    let mut o = Observed {
        vpcs: vpcs
            .vpcs()
            .iter()
            .map(|v| Vpc {
                id: v.vpc_id().unwrap_or_default().to_string(),
                cidr: v.cidr_block().unwrap_or_default().to_string(),
                tags: tag_map(v.tags()),
            })
            .collect(),
        internet_gateways: igws
            .internet_gateways()
            .iter()
            .map(|g| InternetGateway {
                id: g.internet_gateway_id().unwrap_or_default().to_string(),
                attached: g
                    .attachments()
                    .iter()
                    .filter_map(|a| a.vpc_id().map(str::to_string))
                    .collect(),
            })
            .collect(),
        route_tables: rts.route_tables().iter().map(route_table_of).collect(),
        subnets: subnets
            .subnets()
            .iter()
            .map(|s| Subnet {
                id: s.subnet_id().unwrap_or_default().to_string(),
                vpc: s.vpc_id().unwrap_or_default().to_string(),
                zone: s.availability_zone().unwrap_or_default().to_string(),
                cidr: s.cidr_block().unwrap_or_default().to_string(),
            })
            .collect(),
        security_groups: sgs
            .security_groups()
            .iter()
            .map(|g| SecurityGroup {
                id: g.group_id().unwrap_or_default().to_string(),
                vpc: g.vpc_id().unwrap_or_default().to_string(),
                role: tag_map(g.tags()).remove(TAG_ROLE).unwrap_or_default(),
                rules: rules_of(g.ip_permissions()),
            })
            .collect(),
        key_pairs: keys
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name().map(str::to_string))
            .collect(),
        ..Default::default()
    };
    for i in instances
        .iter()
        .flat_map(|p| p.reservations())
        .flat_map(|r| r.instances())
    {
        let state = InstanceState::parse(
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str())
                .unwrap_or("terminated"),
        );
        if state == InstanceState::Terminated {
            continue;
        }
        let tags = tag_map(i.tags());
        let role = tags
            .get(TAG_ROLE)
            .and_then(|r| Role::parse(r))
            .unwrap_or(Role::Node);
        o.instances.push(Instance {
            id: i.instance_id().unwrap_or_default().to_string(),
            name: tags
                .get(crate::names::TAG_NAME)
                .cloned()
                .unwrap_or_else(|| i.instance_id().unwrap_or_default().to_string()),
            role,
            zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or_default()
                .to_string(),
            state,
            private_ip: i.private_ip_address().map(str::to_string),
            public_ip: i.public_ip_address().map(str::to_string),
            image: i.image_id().unwrap_or_default().to_string(),
            size: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            arch: i
                .architecture()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| "x86_64".into()),
            source_dest_check: i.source_dest_check().unwrap_or(true),
        });
    }
    o.instances
        .sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    (o.load_balancers, o.target_groups, o.listeners) = elbv2;
    Ok(o)
}

fn route_table_of(r: &aws_sdk_ec2::types::RouteTable) -> RouteTable {
    RouteTable {
        id: r.route_table_id().unwrap_or_default().to_string(),
        vpc: r.vpc_id().unwrap_or_default().to_string(),
        default_gateway: r
            .routes()
            .iter()
            .find(|x| x.destination_cidr_block() == Some("0.0.0.0/0"))
            .and_then(|x| x.gateway_id().map(str::to_string)),
        associations: r
            .associations()
            .iter()
            .filter(|a| !a.main().unwrap_or(false))
            .filter_map(|a| {
                Some((
                    a.route_table_association_id()?.to_string(),
                    a.subnet_id()?.to_string(),
                ))
            })
            .collect(),
        instance_routes: r
            .routes()
            .iter()
            .filter_map(|x| {
                Some(InstanceRoute {
                    destination: x.destination_cidr_block()?.to_string(),
                    instance: x.instance_id()?.to_string(),
                })
            })
            .collect(),
    }
}

/// The cluster's route tables (found by its tag), with their instance routes.
pub async fn route_tables(aws: &Aws, cluster: &str) -> Result<Vec<RouteTable>, CloudError> {
    let out = aws
        .ec2
        .describe_route_tables()
        .filters(by_tag(cluster))
        .send()
        .await
        .map_err(|e| fail("listing route tables", e))?;
    Ok(out.route_tables().iter().map(route_table_of).collect())
}

type Elbv2 = (Vec<LoadBalancer>, Vec<TargetGroup>, Vec<Listener>);

/// The cluster's load balancers, target groups (with their targets) and listeners. ELBv2 has
/// no tag filter: list everything, then read the tags.
async fn observe_elbv2(aws: &Aws, cluster: &str) -> Result<Elbv2, CloudError> {
    let (lbs, tgs) = tokio::try_join!(
        async {
            aws.elb
                .describe_load_balancers()
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| fail("listing load balancers", e))
        },
        async {
            aws.elb
                .describe_target_groups()
                .into_paginator()
                .send()
                .try_collect()
                .await
                .map_err(|e| fail("listing target groups", e))
        },
    )?;
    let lbs: Vec<elb::types::LoadBalancer> = lbs
        .iter()
        .flat_map(|p| p.load_balancers().to_vec())
        .collect();
    let tgs: Vec<elb::types::TargetGroup> = tgs
        .iter()
        .flat_map(|p| p.target_groups().to_vec())
        .collect();
    let arns: Vec<String> = lbs
        .iter()
        .filter_map(|l| l.load_balancer_arn().map(str::to_string))
        .chain(
            tgs.iter()
                .filter_map(|g| g.target_group_arn().map(str::to_string)),
        )
        .collect();
    let chunks = futures::future::try_join_all(
        arns.chunks(20)
            .map(|chunk| async move { elb_tags_of(aws, chunk).await }),
    )
    .await?;
    let tags: BTreeMap<String, BTreeMap<String, String>> = chunks.into_iter().flatten().collect();
    let mine = |arn: &str| {
        tags.get(arn)
            .filter(|t| t.get(TAG_CLUSTER).map(String::as_str) == Some(cluster))
            .cloned()
    };
    let load_balancers: Vec<LoadBalancer> = lbs
        .iter()
        .filter_map(|l| {
            let arn = l.load_balancer_arn()?;
            let t = mine(arn)?;
            Some(LoadBalancer {
                arn: arn.to_string(),
                name: l.load_balancer_name().unwrap_or_default().to_string(),
                dns: l.dns_name().unwrap_or_default().to_string(),
                role: t.get(TAG_ROLE).cloned().unwrap_or_default(),
                kind: l
                    .r#type()
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_default(),
                tags: t,
            })
        })
        .collect();
    let target_groups = futures::future::try_join_all(tgs.iter().filter_map(|g| {
        let arn = g.target_group_arn()?.to_string();
        let t = mine(&arn)?;
        Some(async move {
            let health = aws
                .elb
                .describe_target_health()
                .target_group_arn(&arn)
                .send()
                .await;
            let Some(health) = unless_gone(health, &format!("reading the targets of {arn}"))?
            else {
                return Ok(None); // deleted since the list
            };
            Ok::<_, CloudError>(Some(TargetGroup {
                name: g.target_group_name().unwrap_or_default().to_string(),
                role: t.get(TAG_ROLE).cloned().unwrap_or_default(),
                port: g.port().unwrap_or_default(),
                targets: health
                    .target_health_descriptions()
                    .iter()
                    .filter(|h| {
                        h.target_health()
                            .and_then(|s| s.state())
                            .map(|s| s.as_str() != "draining")
                            .unwrap_or(true)
                    })
                    .filter_map(|h| h.target().and_then(|t| t.id()).map(str::to_string))
                    .collect(),
                tags: t,
                arn,
            }))
        })
    }))
    .await?
    .into_iter()
    .flatten()
    .collect();
    let (load_balancers, listeners) = with_listeners(aws, load_balancers).await?;
    Ok((load_balancers, target_groups, listeners))
}

/// The load balancers' listeners; a load balancer deleted since the list is left out.
async fn with_listeners(
    aws: &Aws,
    load_balancers: Vec<LoadBalancer>,
) -> Result<(Vec<LoadBalancer>, Vec<Listener>), CloudError> {
    let listeners = futures::future::try_join_all(load_balancers.iter().map(|lb| async move {
        let out = aws
            .elb
            .describe_listeners()
            .load_balancer_arn(&lb.arn)
            .send()
            .await;
        let what = format!("listing the listeners of {}", lb.name);
        let Some(out) = unless_gone(out, &what)? else {
            return Ok((lb.arn.clone(), None)); // deleted since the list
        };
        Ok::<_, CloudError>((
            lb.arn.clone(),
            Some(
                out.listeners()
                    .iter()
                    .map(|l| Listener {
                        arn: l.listener_arn().unwrap_or_default().to_string(),
                        load_balancer: lb.arn.clone(),
                        port: l.port().unwrap_or_default(),
                        protocol: l
                            .protocol()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default(),
                        target_group: l
                            .default_actions()
                            .iter()
                            .find_map(|a| a.target_group_arn().map(str::to_string)),
                    })
                    .collect::<Vec<_>>(),
            ),
        ))
    }))
    .await?;
    let gone: Vec<&String> = listeners
        .iter()
        .filter(|(_, l)| l.is_none())
        .map(|(arn, _)| arn)
        .collect();
    let load_balancers = load_balancers
        .iter()
        .filter(|l| !gone.contains(&&l.arn))
        .cloned()
        .collect();
    let listeners = listeners
        .into_iter()
        .filter_map(|(_, l)| l)
        .flatten()
        .collect();
    Ok((load_balancers, listeners))
}

/// The answer, or `None` when the resource it is about is gone (AWS's `...NotFound` codes):
/// observing lists, then describes, and a resource deleted in between (another cluster's load
/// balancer, a service's just removed) is simply not there any more.
fn unless_gone<T, E>(
    r: Result<
        T,
        aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    >,
    what: &str,
) -> Result<Option<T>, CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if code_of(&e).is_some_and(|c| c.contains("NotFound")) => Ok(None),
        Err(e) => Err(fail(what, e)),
    }
}

/// The tags of up to 20 load balancers and target groups, by ARN. DescribeTags fails as a
/// whole when one of them is gone, so then each is asked for alone and the gone ones left out.
async fn elb_tags_of(
    aws: &Aws,
    arns: &[String],
) -> Result<Vec<(String, BTreeMap<String, String>)>, CloudError> {
    let ask = |arns: Vec<String>| aws.elb.describe_tags().set_resource_arns(Some(arns)).send();
    let read = |out: elb::operation::describe_tags::DescribeTagsOutput| {
        out.tag_descriptions()
            .iter()
            .map(|d| {
                let t = d
                    .tags()
                    .iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                    })
                    .collect();
                (d.resource_arn().unwrap_or_default().to_string(), t)
            })
            .collect::<Vec<_>>()
    };
    const WHAT: &str = "reading load balancer tags";
    if let Some(out) = unless_gone(ask(arns.to_vec()).await, WHAT)? {
        return Ok(read(out));
    }
    let mut found = Vec::new();
    for arn in arns {
        if let Some(out) = unless_gone(ask(vec![arn.clone()]).await, WHAT)? {
            found.extend(read(out));
        }
    }
    Ok(found)
}

fn first_id<'a>(id: Option<&'a str>, what: &str) -> Result<&'a str, CloudError> {
    id.ok_or_else(|| CloudError::Failed(format!("{what}: AWS answered without an id")))
}

#[async_trait::async_trait]
impl Cloud for Aws {
    async fn observe(&self, cluster: &str) -> Result<Observed, CloudError> {
        observe(self, cluster).await
    }

    async fn apply(&self, d: &Desired, a: &Action) -> Result<String, CloudError> {
        let ec2 = &self.ec2;
        let name = &d.spec.name;
        let t = |role: &str, what: &str| tags(name, role, &d.created, &format!("{name}-{what}"));
        Ok(match a {
            Action::CreateVpc { cidr } => {
                let mut vt = t("network", "vpc");
                vt.extend(
                    d.spec
                        .to_tags()
                        .into_iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build()),
                );
                let out = ec2
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(spec(ResourceType::Vpc, vt))
                    .send()
                    .await
                    .map_err(|e| fail("creating the VPC", e))?;
                let id = first_id(out.vpc().and_then(|v| v.vpc_id()), "creating the VPC")?;
                format!("created VPC {id} ({cidr})")
            }
            Action::TagVpc { vpc } => {
                ec2.create_tags()
                    .resources(vpc)
                    .set_tags(Some(
                        d.spec
                            .to_tags()
                            .into_iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("tagging {vpc}"), e))?;
                format!("recorded the cluster's spec on {vpc}")
            }
            Action::CreateInternetGateway => {
                let out = ec2
                    .create_internet_gateway()
                    .tag_specifications(spec(ResourceType::InternetGateway, t("network", "igw")))
                    .send()
                    .await
                    .map_err(|e| fail("creating the internet gateway", e))?;
                let id = first_id(
                    out.internet_gateway().and_then(|g| g.internet_gateway_id()),
                    "creating the internet gateway",
                )?;
                format!("created internet gateway {id}")
            }
            Action::AttachInternetGateway { igw, vpc } => {
                ec2.attach_internet_gateway()
                    .internet_gateway_id(igw)
                    .vpc_id(vpc)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("attaching {igw} to {vpc}"), e))?;
                format!("attached {igw} to {vpc}")
            }
            Action::CreateRouteTable { vpc } => {
                let out = ec2
                    .create_route_table()
                    .vpc_id(vpc)
                    .tag_specifications(spec(ResourceType::RouteTable, t("network", "routes")))
                    .send()
                    .await
                    .map_err(|e| fail("creating the route table", e))?;
                let id = first_id(
                    out.route_table().and_then(|r| r.route_table_id()),
                    "creating the route table",
                )?;
                format!("created route table {id}")
            }
            Action::CreateDefaultRoute { route_table, igw } => {
                ec2.create_route()
                    .route_table_id(route_table)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(igw)
                    .send()
                    .await
                    .map_err(|e| fail("adding the default route", e))?;
                format!("routed 0.0.0.0/0 of {route_table} to {igw}")
            }
            Action::CreateSubnet { vpc, zone, cidr } => {
                let out = ec2
                    .create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .availability_zone(zone)
                    .tag_specifications(spec(ResourceType::Subnet, t("network", zone)))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("creating the subnet in {zone}"), e))?;
                let id = first_id(
                    out.subnet().and_then(|s| s.subnet_id()),
                    "creating a subnet",
                )?;
                format!("created subnet {id} ({cidr}) in {zone}")
            }
            Action::AssociateSubnet {
                route_table,
                subnet,
            } => {
                ec2.associate_route_table()
                    .route_table_id(route_table)
                    .subnet_id(subnet)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("routing subnet {subnet}"), e))?;
                format!("routed subnet {subnet} through {route_table}")
            }
            Action::CreateSecurityGroup { vpc, role } => {
                let out = ec2
                    .create_security_group()
                    .vpc_id(vpc)
                    .group_name(format!("{name}-{role}"))
                    .description(format!("orkops cluster {name}: {role}"))
                    .tag_specifications(spec(ResourceType::SecurityGroup, t(role, role)))
                    .send()
                    .await
                    .map_err(|e| fail(&format!("creating the {role} security group"), e))?;
                format!(
                    "created security group {} ({role})",
                    out.group_id().unwrap_or_default()
                )
            }
            Action::Authorize { group, role, rules } => {
                lb::authorize(self, group, rules).await?;
                format!(
                    "opened security group {group} ({role}): {} rules",
                    rules.len()
                )
            }
            Action::ImportKeyPair { name: key } => {
                let r = ec2
                    .import_key_pair()
                    .key_name(key)
                    .public_key_material(aws_sdk_ec2::primitives::Blob::new(
                        d.spec.ssh_public_key.as_bytes(),
                    ))
                    .tag_specifications(spec(ResourceType::KeyPair, t("ssh", "key")))
                    .send()
                    .await;
                match r {
                    Ok(_) => format!("imported key pair {key}"),
                    Err(e) if code_of(&e).as_deref() == Some("InvalidKeyPair.Duplicate") => {
                        return Err(CloudError::Failed(format!(
                            "key pair {key} exists in {} but is not tagged {TAG_CLUSTER}={name}; hint: delete it (aws ec2 delete-key-pair --key-name {key}) or pick another cluster name",
                            self.region
                        )))
                    }
                    Err(e) => return Err(fail("importing the SSH key pair", e)),
                }
            }
            Action::RunInstance {
                name: iname,
                role,
                zone,
                subnet,
                group,
            } => {
                let size = match role {
                    Role::Master => &d.spec.master_size,
                    Role::Node => &d.spec.node_size,
                };
                let mut it = t(role.as_str(), iname);
                it.push(
                    Tag::builder()
                        .key(crate::names::TAG_NAME)
                        .value(iname)
                        .build(),
                );
                let mut req = ec2
                    .run_instances()
                    .image_id(d.spec.image.clone().unwrap_or_default())
                    .instance_type(InstanceType::from(size.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .key_name(d.key_name())
                    .user_data(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        d.user_data.get(role).cloned().unwrap_or_default(),
                    ))
                    .network_interfaces(
                        InstanceNetworkInterfaceSpecification::builder()
                            .device_index(0)
                            .subnet_id(subnet)
                            .groups(group)
                            .associate_public_ip_address(true)
                            .build(),
                    )
                    .tag_specifications(spec(ResourceType::Instance, it.clone()))
                    .tag_specifications(spec(ResourceType::Volume, it));
                if *role == Role::Master {
                    if let Some(p) = &d.spec.master_instance_profile {
                        req = req.iam_instance_profile(
                            aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                                .name(p)
                                .build(),
                        );
                    }
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| fail(&format!("starting {iname} in {zone}"), e))?;
                let id = first_id(
                    out.instances().first().and_then(|i| i.instance_id()),
                    "starting an instance",
                )?;
                format!("started {iname} as {id} ({size} in {zone})")
            }
            Action::StartInstance { id, name: iname } => {
                ec2.start_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("starting {iname} ({id})"), e))?;
                format!("started stopped instance {iname} ({id})")
            }
            Action::DisableSourceDestCheck { id, name: iname } => {
                ec2.modify_instance_attribute()
                    .instance_id(id)
                    .source_dest_check(
                        aws_sdk_ec2::types::AttributeBooleanValue::builder()
                            .value(false)
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        fail(
                            &format!("turning off the source/destination check of {iname} ({id})"),
                            e,
                        )
                    })?;
                format!("turned off the source/destination check of {iname} ({id})")
            }
            Action::TerminateInstance {
                id,
                name: iname,
                why,
            } => {
                ec2.terminate_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| fail(&format!("terminating {iname} ({id})"), e))?;
                format!("terminated {iname} ({id}): {why}")
            }
            Action::Wait { names } => format!("waiting for {}", names.join(", ")),
            Action::CreateTargetGroup {
                name: tg,
                vpc,
                port,
            } => {
                let t = elb_tags(name, LB_ROLE_API, &d.created);
                let arn = lb::create_target_group(self, tg, "TCP", *port, vpc, &t).await?;
                format!("created target group {tg} ({arn})")
            }
            Action::CreateLoadBalancer { name: lb, subnets } => {
                let t = elb_tags(name, LB_ROLE_API, &d.created);
                let dns = lb::create_load_balancer(self, lb, "network", subnets, &[], &t).await?;
                format!("created API load balancer {lb} ({dns})")
            }
            Action::RegisterTargets {
                target_group,
                instances,
            } => {
                lb::register(self, target_group, instances, d.ports.api).await?;
                format!(
                    "registered {} with the API load balancer",
                    instances.join(", ")
                )
            }
            Action::DeregisterTargets {
                target_group,
                instances,
            } => {
                lb::deregister(self, target_group, instances).await?;
                format!(
                    "deregistered {} from the API load balancer",
                    instances.join(", ")
                )
            }
            Action::CreateListener {
                load_balancer,
                target_group,
                port,
            } => {
                let t = elb_tags(name, LB_ROLE_API, &d.created);
                lb::create_listener(self, load_balancer, "TCP", *port, target_group, &t).await?;
                format!("created the API listener on TCP {port}")
            }
        })
    }
}

/// Waits until none of the instances is in a state other than `state` (gone counts as
/// terminated).
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
            return Err(CloudError::Failed(format!(
                "instances not {} after {} s: {}",
                state.as_str(),
                deadline.as_secs(),
                behind.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes everything `o` lists in dependency order (each kind's resources at once), retrying
/// dependency errors with back-off; a resource already gone counts as deleted. The instances
/// go first (and are waited for), so no master is left to make anything again.
pub async fn teardown(aws: &Aws, o: &Observed, report: &dyn Reporter) -> Result<(), CloudError> {
    let ec2 = &aws.ec2;
    let say = |m: String| report.report(Event::line("delete", m));
    // the instances first: a master still running could make a service's load balancer again
    let ids: Vec<String> = o.instances.iter().map(|i| i.id.clone()).collect();
    if !ids.is_empty() {
        for chunk in ids.chunks(500) {
            ec2.terminate_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| fail("terminating the instances", e))?;
        }
        for i in &o.instances {
            report.report(Event::of(
                "delete",
                &i.name,
                format!("terminating {}", i.id),
            ));
        }
        wait_for(
            aws,
            &ids,
            InstanceStateName::Terminated,
            Duration::from_secs(600),
        )
        .await?;
        for i in &o.instances {
            report.report(Event::of("delete", &i.name, format!("terminated {}", i.id)).done());
        }
        say(format!("terminated {} instances", ids.len()));
    }
    futures::future::try_join_all(o.listeners.iter().map(|l| async move {
        retry(&format!("deleting listener {}", l.arn), || {
            aws.elb.delete_listener().listener_arn(&l.arn).send()
        })
        .await?;
        say(format!("deleted listener {}", l.arn));
        Ok::<_, CloudError>(())
    }))
    .await?;
    futures::future::try_join_all(o.load_balancers.iter().map(|l| async move {
        retry(&format!("deleting load balancer {}", l.name), || {
            aws.elb
                .delete_load_balancer()
                .load_balancer_arn(&l.arn)
                .send()
        })
        .await?;
        say(format!("deleted load balancer {} ({})", l.name, l.dns));
        Ok::<_, CloudError>(())
    }))
    .await?;
    futures::future::try_join_all(o.target_groups.iter().map(|g| async move {
        retry(&format!("deleting target group {}", g.name), || {
            aws.elb
                .delete_target_group()
                .target_group_arn(&g.arn)
                .send()
        })
        .await?;
        say(format!("deleted target group {}", g.name));
        Ok::<_, CloudError>(())
    }))
    .await?;
    for k in &o.key_pairs {
        ec2.delete_key_pair()
            .key_name(k)
            .send()
            .await
            .map_err(|e| fail(&format!("deleting key pair {k}"), e))?;
        say(format!("deleted key pair {k}"));
    }
    // the rules first: a group another group's rule refers to cannot go
    futures::future::try_join_all(
        o.security_groups
            .iter()
            .filter(|g| !g.rules.is_empty())
            .map(|g| async move {
                let r = ec2
                    .revoke_security_group_ingress()
                    .group_id(&g.id)
                    .set_ip_permissions(Some(g.rules.iter().map(permission).collect()))
                    .send()
                    .await;
                match r {
                    Err(e) if !code_of(&e).unwrap_or_default().contains("NotFound") => {
                        Err(fail(&format!("emptying security group {}", g.id), e))
                    }
                    _ => Ok(()),
                }
            }),
    )
    .await?;
    futures::future::try_join_all(o.security_groups.iter().map(|g| async move {
        retry(&format!("deleting security group {}", g.id), || {
            ec2.delete_security_group().group_id(&g.id).send()
        })
        .await?;
        say(format!("deleted security group {} ({})", g.id, g.role));
        Ok::<_, CloudError>(())
    }))
    .await?;
    for r in &o.route_tables {
        for (assoc, _) in &r.associations {
            retry(&format!("detaching route table {}", r.id), || {
                ec2.disassociate_route_table().association_id(assoc).send()
            })
            .await?;
        }
    }
    futures::future::try_join_all(o.subnets.iter().map(|s| async move {
        retry(&format!("deleting subnet {}", s.id), || {
            ec2.delete_subnet().subnet_id(&s.id).send()
        })
        .await?;
        say(format!("deleted subnet {} ({})", s.id, s.zone));
        Ok::<_, CloudError>(())
    }))
    .await?;
    for r in &o.route_tables {
        retry(&format!("deleting route table {}", r.id), || {
            ec2.delete_route_table().route_table_id(&r.id).send()
        })
        .await?;
        say(format!("deleted route table {}", r.id));
    }
    for g in &o.internet_gateways {
        for v in &g.attached {
            retry(&format!("detaching internet gateway {}", g.id), || {
                ec2.detach_internet_gateway()
                    .internet_gateway_id(&g.id)
                    .vpc_id(v)
                    .send()
            })
            .await?;
        }
        retry(&format!("deleting internet gateway {}", g.id), || {
            ec2.delete_internet_gateway()
                .internet_gateway_id(&g.id)
                .send()
        })
        .await?;
        say(format!("deleted internet gateway {}", g.id));
    }
    for v in &o.vpcs {
        retry(&format!("deleting VPC {}", v.id), || {
            ec2.delete_vpc().vpc_id(&v.id).send()
        })
        .await?;
        say(format!("deleted VPC {}", v.id));
    }
    Ok(())
}

/// Runs `call` until it succeeds, backing off on dependency errors (AWS lets go of a resource's
/// dependents a little after they were deleted) and on throttling for up to two minutes; a resource already gone
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
        match call().await.map_err(|e| fail(what, e)) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => {
                let busy = e.is_throttled()
                    || e.code().is_some_and(|c| {
                        c == "DependencyViolation" || c == "ResourceInUse" || c.contains("InUse")
                    });
                if !busy || start.elapsed() > Duration::from_secs(120) {
                    return Err(e);
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

/// The ELBv2 and security group calls of the API load balancer and of the services' ones.
pub mod lb {
    use super::*;

    fn tags(t: &BTreeMap<String, String>) -> Vec<elb::types::Tag> {
        t.iter()
            .map(|(k, v)| elb::types::Tag::builder().key(k).value(v).build())
            .collect()
    }

    /// Creates a load balancer (`network` or `application`) in `subnets` with `groups`;
    /// returns its DNS name.
    pub async fn create_load_balancer(
        aws: &Aws,
        name: &str,
        kind: &str,
        subnets: &[String],
        groups: &[String],
        t: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let out = aws
            .elb
            .create_load_balancer()
            .name(name)
            .r#type(elb::types::LoadBalancerTypeEnum::from(kind))
            .scheme(elb::types::LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(subnets.to_vec()))
            .set_security_groups((!groups.is_empty()).then(|| groups.to_vec()))
            .set_tags(Some(tags(t)))
            .send()
            .await
            .map_err(|e| fail(&format!("creating load balancer {name}"), e))?;
        Ok(out
            .load_balancers()
            .first()
            .and_then(|l| l.dns_name())
            .unwrap_or_default()
            .to_string())
    }

    /// Deletes a load balancer (its listeners go with it).
    pub async fn delete_load_balancer(aws: &Aws, arn: &str) -> Result<(), CloudError> {
        retry(&format!("deleting load balancer {arn}"), || {
            aws.elb.delete_load_balancer().load_balancer_arn(arn).send()
        })
        .await
    }

    /// A target group of instances on `port`; HTTP groups (an ALB's) count any HTTP answer as
    /// healthy, TCP and UDP groups a TCP connection.
    pub async fn create_target_group(
        aws: &Aws,
        name: &str,
        protocol: &str,
        port: i32,
        vpc: &str,
        t: &BTreeMap<String, String>,
    ) -> Result<String, CloudError> {
        let mut req = aws
            .elb
            .create_target_group()
            .name(name)
            .protocol(elb::types::ProtocolEnum::from(protocol))
            .port(port)
            .vpc_id(vpc)
            .target_type(elb::types::TargetTypeEnum::Instance)
            .health_check_interval_seconds(10)
            .healthy_threshold_count(2)
            .unhealthy_threshold_count(2)
            .set_tags(Some(tags(t)));
        req = if protocol == "HTTP" {
            req.health_check_protocol(elb::types::ProtocolEnum::Http)
                .health_check_path("/")
                .matcher(elb::types::Matcher::builder().http_code("200-499").build())
        } else {
            req.health_check_protocol(elb::types::ProtocolEnum::Tcp)
        };
        let out = req
            .send()
            .await
            .map_err(|e| fail(&format!("creating target group {name}"), e))?;
        Ok(out
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .unwrap_or_default()
            .to_string())
    }

    pub async fn delete_target_group(aws: &Aws, arn: &str) -> Result<(), CloudError> {
        retry(&format!("deleting target group {arn}"), || {
            aws.elb.delete_target_group().target_group_arn(arn).send()
        })
        .await
    }

    pub async fn register(
        aws: &Aws,
        target_group: &str,
        instances: &[String],
        port: i32,
    ) -> Result<(), CloudError> {
        aws.elb
            .register_targets()
            .target_group_arn(target_group)
            .set_targets(Some(
                instances
                    .iter()
                    .map(|i| {
                        elb::types::TargetDescription::builder()
                            .id(i)
                            .port(port)
                            .build()
                    })
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| {
                fail(
                    &format!("registering {} with {target_group}", instances.join(", ")),
                    e,
                )
            })?;
        Ok(())
    }

    pub async fn deregister(
        aws: &Aws,
        target_group: &str,
        instances: &[String],
    ) -> Result<(), CloudError> {
        aws.elb
            .deregister_targets()
            .target_group_arn(target_group)
            .set_targets(Some(
                instances
                    .iter()
                    .map(|i| elb::types::TargetDescription::builder().id(i).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| {
                fail(
                    &format!("deregistering {} from {target_group}", instances.join(", ")),
                    e,
                )
            })?;
        Ok(())
    }

    pub async fn create_listener(
        aws: &Aws,
        load_balancer: &str,
        protocol: &str,
        port: i32,
        target_group: &str,
        t: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        aws.elb
            .create_listener()
            .load_balancer_arn(load_balancer)
            .protocol(elb::types::ProtocolEnum::from(protocol))
            .port(port)
            .default_actions(
                elb::types::Action::builder()
                    .r#type(elb::types::ActionTypeEnum::Forward)
                    .target_group_arn(target_group)
                    .build(),
            )
            .set_tags(Some(tags(t)))
            .send()
            .await
            .map_err(|e| {
                fail(
                    &format!("creating the {protocol} listener on port {port}"),
                    e,
                )
            })?;
        Ok(())
    }

    pub async fn delete_listener(aws: &Aws, arn: &str) -> Result<(), CloudError> {
        retry(&format!("deleting listener {arn}"), || {
            aws.elb.delete_listener().listener_arn(arn).send()
        })
        .await
    }

    pub async fn authorize(aws: &Aws, group: &str, rules: &[Rule]) -> Result<(), CloudError> {
        match aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(rules.iter().map(permission).collect()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("InvalidPermission.Duplicate") => Ok(()),
            Err(e) => Err(fail(&format!("opening security group {group}"), e)),
        }
    }

    pub async fn revoke(aws: &Aws, group: &str, rules: &[Rule]) -> Result<(), CloudError> {
        match aws
            .ec2
            .revoke_security_group_ingress()
            .group_id(group)
            .set_ip_permissions(Some(rules.iter().map(permission).collect()))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).unwrap_or_default().contains("NotFound") => Ok(()),
            Err(e) => Err(fail(&format!("closing security group {group}"), e)),
        }
    }
}

/// The route table calls of the pod CIDR routes (`controllers::routes`).
pub mod routes {
    use super::*;

    /// Routes `destination` of `table` to `instance`. A route already there for the
    /// destination is an error: it may be one orkops did not make, so it is not replaced.
    pub async fn create(
        aws: &Aws,
        table: &str,
        destination: &str,
        instance: &str,
    ) -> Result<(), CloudError> {
        match aws
            .ec2
            .create_route()
            .route_table_id(table)
            .destination_cidr_block(destination)
            .instance_id(instance)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e).as_deref() == Some("RouteAlreadyExists") => Err(CloudError::Failed(
                format!(
                    "routing {destination} of {table} to {instance}: the table has another route for {destination}; hint: remove it if orkops should route the pod CIDR (aws ec2 delete-route --route-table-id {table} --destination-cidr-block {destination})"
                ),
            )),
            Err(e) => Err(fail(
                &format!("routing {destination} of {table} to {instance}"),
                e,
            )),
        }
    }

    /// Points the route for `destination` of `table` at `instance` instead.
    pub async fn replace(
        aws: &Aws,
        table: &str,
        destination: &str,
        instance: &str,
    ) -> Result<(), CloudError> {
        aws.ec2
            .replace_route()
            .route_table_id(table)
            .destination_cidr_block(destination)
            .instance_id(instance)
            .send()
            .await
            .map_err(|e| {
                fail(
                    &format!("routing {destination} of {table} to {instance} instead"),
                    e,
                )
            })?;
        Ok(())
    }

    /// Removes the route for `destination` from `table` (already gone counts as removed).
    pub async fn delete(aws: &Aws, table: &str, destination: &str) -> Result<(), CloudError> {
        let r = aws
            .ec2
            .delete_route()
            .route_table_id(table)
            .destination_cidr_block(destination)
            .send()
            .await;
        unless_gone(
            r,
            &format!("removing the route for {destination} from {table}"),
        )
        .map(|_| ())
    }
}
