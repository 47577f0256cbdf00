//! The cluster lifecycle commands: `create cluster`, `update cluster`, `get clusters`,
//! `describe cluster` and `delete cluster`. Flags are resolved into a `Desired` state, the
//! infrastructure reconciler (`cloud::plan`) is run against AWS, and the cluster's local state
//! (`state::ClusterDir`) holds what only this machine knows. AWS, found by tag, is the truth.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use super::args::{ApplyPlanArgs, CreateClusterArgs, DeleteArgs, DescribeArgs, UpdateClusterArgs};
use super::progress::Progress;
use super::state::ClusterDir;
use crate::cloud::model::{Action, Observed, Role};
use crate::cloud::plan::{self, Desired};
use crate::cloud::{self, aws, ClusterSpec, Profile};

/// How long the infrastructure may take to converge.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(900);

fn region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into())
}

/// The user data of each role, rendered from `templates/user-data.sh.tera`.
fn user_data(spec: &ClusterSpec, p: &Profile) -> anyhow::Result<BTreeMap<Role, String>> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "user-data",
        include_str!("../../templates/user-data.sh.tera"),
    )
    .context("templates/user-data.sh.tera")?;
    let mut out = BTreeMap::new();
    for role in [Role::Master, Role::Node] {
        let mut ctx = tera::Context::new();
        ctx.insert("cluster", &spec.name);
        ctx.insert("role", role.as_str());
        ctx.insert("api_port", &p.ports.api);
        let text = tera
            .render("user-data", &ctx)
            .map_err(|e| anyhow!("templates/user-data.sh.tera: {e:?}"))?;
        out.insert(role, text);
    }
    Ok(out)
}

fn desired(
    spec: ClusterSpec,
    p: &Profile,
    created: String,
    master_instance_profile: Option<String>,
) -> anyhow::Result<Desired> {
    let user_data = user_data(&spec, p)?;
    let d = Desired {
        spec,
        ports: p.ports.clone(),
        subnet_bits: p.network.subnet_bits,
        created,
        user_data,
        master_instance_profile,
    };
    for i in 0..d.spec.zones.len() {
        d.subnet_cidr(i)?;
    }
    Ok(d)
}

/// Prints the plan, grouped by phase.
fn print_plan(actions: &[Action]) {
    let mut phase = None;
    for a in actions {
        if phase != Some(a.phase()) {
            phase = Some(a.phase());
            println!("  {}:", a.phase().as_str());
        }
        println!("    - {}", a.describe());
    }
}

fn summary(d: &Desired, image: &str) -> String {
    let s = &d.spec;
    format!(
        "cluster {} in {}: VPC {}, {} zone(s) ({}), {} master(s) {} and {} node(s) {} from {}, an NLB on port {} in front of the masters",
        s.name,
        s.region,
        s.network_cidr,
        s.zones.len(),
        s.zones.join(", "),
        s.masters,
        s.master_size,
        s.nodes,
        s.node_size,
        image,
        d.ports.api
    )
}

/// Converges the infrastructure, reporting progress; the error says how to clean up.
async fn converge(aws: &aws::Aws, d: &Desired, progress: &Progress) -> anyhow::Result<Observed> {
    plan::converge(aws, d, CONVERGE_DEADLINE, progress)
        .await
        .map_err(|e| {
            anyhow!(
                "{e}\nhint: what exists is tagged {}={}: `orkops update cluster {} --yes` continues, `orkops delete cluster {} --yes` removes it",
                cloud::TAG_CLUSTER,
                d.spec.name,
                d.spec.name,
                d.spec.name
            )
        })
}

fn write_summary(dir: &ClusterDir, o: &Observed, d: &Desired) -> anyhow::Result<()> {
    dir.create()?;
    let state = serde_json::json!({
        "name": d.spec.name,
        "region": d.spec.region,
        "zones": d.spec.zones,
        "masters": d.spec.masters,
        "nodes": d.spec.nodes,
        "vpc": o.vpcs.first().map(|v| v.id.clone()),
        "instances": o.instances.iter().map(|i| serde_json::json!({
            "name": i.name, "id": i.id, "privateIP": i.private_ip, "publicIP": i.public_ip,
        })).collect::<Vec<_>>(),
        "apiLoadBalancer": o.api_load_balancer().map(|l| l.dns.clone()),
    });
    std::fs::write(dir.file("cluster.json"), serde_json::to_vec_pretty(&state)?)?;
    Ok(())
}

pub async fn create(a: &CreateClusterArgs) -> anyhow::Result<()> {
    let profile = cloud::aws_profile();
    let dir = ClusterDir::of(&a.name);
    cloud::check_name(&a.name).map_err(|e| anyhow!(e))?;
    let apply = a.plan.yes && !a.plan.dry_run;
    let network_cidr = match &a.network_cidr {
        Some(c) => c
            .parse()
            .map_err(|_| anyhow!("--network-cidr: {c:?} is not an IPv4 CIDR"))?,
        None => profile.network.vpc_cidr,
    };
    let api_cidrs = a
        .api_cidrs
        .iter()
        .map(|c| cloud::normal_cidr("--api-cidrs", c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!(e))?;
    let mut spec = ClusterSpec {
        name: a.name.clone(),
        region: region(),
        zones: a.zones.clone(),
        masters: a.masters,
        nodes: a.nodes,
        master_size: a
            .master_size
            .clone()
            .unwrap_or(profile.sizes.master.clone()),
        node_size: a.node_size.clone().unwrap_or(profile.sizes.node.clone()),
        image: a.image.clone(),
        ssh_public_key: String::new(),
        api_cidrs,
        network_cidr,
    };
    spec.check().map_err(|e| anyhow!(e))?;

    let aws = aws::connect(&spec.region).await?;
    aws::check_zones(&aws, &spec.zones).await?;
    aws::check_sizes(
        &aws,
        &[
            ("--master-size", &spec.master_size),
            ("--node-size", &spec.node_size),
        ],
    )
    .await?;
    let image = match &spec.image {
        Some(i) => {
            aws::image_arch(&aws, i).await?;
            i.clone()
        }
        None => aws::find_image(&aws, &profile).await?,
    };
    spec.image = Some(image.clone());
    let existing = aws::observe(&aws, &spec.name).await?;
    if !existing.is_empty() {
        bail!(
            "a cluster named {:?} already exists in {} ({} resources tagged {}={}); hint: `orkops update cluster {} --yes` continues or changes it, `orkops delete cluster {} --yes` removes it",
            spec.name,
            spec.region,
            existing.count(),
            cloud::TAG_CLUSTER,
            spec.name,
            spec.name,
            spec.name
        );
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let d = desired(spec, &profile, now, a.master_instance_profile.clone())?;
    println!("{}", summary(&d, &image));
    if !apply {
        print_plan(&plan::simulate(&d, &existing)?);
        println!("(dry run: nothing was created; pass --yes to create it)");
        return Ok(());
    }
    // the key first: what AWS gets must be what this machine can log in with
    let key = match &a.ssh_public_key {
        Some(f) => dir.adopt_key(f)?,
        None => dir.ensure_key()?,
    };
    let d = Desired {
        spec: ClusterSpec {
            ssh_public_key: key,
            ..d.spec
        },
        ..d
    };
    let progress = Progress::new(a.plan.output);
    let o = converge(&aws, &d, &progress).await;
    progress.finish();
    let o = o?;
    write_summary(&dir, &o, &d)?;
    progress.println(&format!(
        "cluster {} created in {:.1} s ({} AWS calls); API load balancer {}",
        d.spec.name,
        progress.elapsed().as_secs_f64(),
        aws.call_count(),
        o.api_load_balancer().map(|l| l.dns.as_str()).unwrap_or("?")
    ));
    Ok(())
}

/// The spec AWS holds for a cluster, with the local key; errors when there is no such cluster.
async fn recorded(aws: &aws::Aws, name: &str) -> anyhow::Result<(Observed, ClusterSpec, String)> {
    cloud::check_name(name).map_err(|e| anyhow!(e))?;
    let o = aws::observe(aws, name).await?;
    let Some(vpc) = o.vpcs.first() else {
        if o.is_empty() {
            bail!(
                "no cluster named {name:?} in {} (nothing is tagged {}={name}); hint: `orkops get clusters` lists them",
                aws.region,
                cloud::TAG_CLUSTER
            );
        }
        bail!(
            "cluster {name}: its VPC is gone, so its spec is too ({} resources are left); hint: `orkops delete cluster {name} --yes` removes them",
            o.count()
        );
    };
    let mut spec = ClusterSpec::from_tags(name, &aws.region, &vpc.tags).map_err(|e| anyhow!(e))?;
    spec.ssh_public_key = ClusterDir::of(name).public_key().unwrap_or_default();
    let created = vpc
        .tags
        .get(cloud::TAG_CREATED)
        .cloned()
        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    Ok((o, spec, created))
}

pub async fn update(a: &UpdateClusterArgs) -> anyhow::Result<()> {
    let profile = cloud::aws_profile();
    let aws = aws::connect(&region()).await?;
    let (o, mut spec, created) = recorded(&aws, &a.name).await?;
    if let Some(n) = a.nodes {
        spec.nodes = n;
    }
    if let Some(s) = &a.node_size {
        aws::check_sizes(&aws, &[("--node-size", s)]).await?;
        spec.node_size = s.clone();
    }
    if let Some(s) = &a.master_size {
        aws::check_sizes(&aws, &[("--master-size", s)]).await?;
        spec.master_size = s.clone();
    }
    if let Some(i) = &a.image {
        aws::image_arch(&aws, i).await?;
        spec.image = Some(i.clone());
    }
    spec.check().map_err(|e| anyhow!(e))?;
    let d = desired(spec, &profile, created, None)?;
    let actions = plan::simulate(&d, &o)?;
    update_plan(&aws, &d, &actions, &a.plan).await
}

async fn update_plan(
    aws: &aws::Aws,
    d: &Desired,
    actions: &[Action],
    flags: &ApplyPlanArgs,
) -> anyhow::Result<()> {
    let name = &d.spec.name;
    if actions.is_empty() {
        println!("cluster {name}: the infrastructure matches its spec");
    } else {
        println!("cluster {name}: {} change(s)", actions.len());
        print_plan(actions);
    }
    if !flags.yes || flags.dry_run {
        if !actions.is_empty() {
            println!("(dry run: nothing was changed; pass --yes to apply)");
        }
        return Ok(());
    }
    if actions
        .iter()
        .any(|a| matches!(a, Action::ImportKeyPair { .. }))
        && d.spec.ssh_public_key.is_empty()
    {
        bail!(
            "cluster {name}: its key pair is gone from AWS and this machine has no key for it ({}); hint: delete and re-create the cluster",
            ClusterDir::of(name).path.display()
        );
    }
    let progress = Progress::new(flags.output);
    let after = converge(aws, d, &progress).await;
    progress.finish();
    let after = after?;
    write_summary(&ClusterDir::of(name), &after, d)?;
    progress.println(&format!(
        "cluster {name} updated in {:.1} s ({} AWS calls)",
        progress.elapsed().as_secs_f64(),
        aws.call_count()
    ));
    Ok(())
}

/// `orkops get clusters`: the orkops clusters AWS holds in the region.
pub async fn list() -> anyhow::Result<()> {
    let aws = aws::connect(&region()).await?;
    let seen = aws::clusters(&aws).await?;
    if seen.is_empty() {
        eprintln!("No clusters found in {}.", aws.region);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = seen
        .into_iter()
        .map(|c| {
            vec![
                c.name,
                c.vpc.unwrap_or_else(|| "<none>".into()),
                c.masters.to_string(),
                c.nodes.to_string(),
                c.created
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "<unknown>".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        super::printer::table(&["NAME", "VPC", "MASTERS", "NODES", "CREATED"], &rows)
    );
    Ok(())
}

/// `orkops describe cluster NAME`: the spec AWS records and everything that exists for it.
pub async fn describe(a: &DescribeArgs) -> anyhow::Result<()> {
    let name = match (a.kind.split_once('/'), a.names.as_slice()) {
        (Some((_, n)), []) => n.to_string(),
        (None, [n]) => n.clone(),
        _ => bail!("usage: orkops describe cluster NAME"),
    };
    let aws = aws::connect(&region()).await?;
    let (o, spec, created) = recorded(&aws, &name).await?;
    println!("Name:          {}", spec.name);
    println!("Region:        {}", spec.region);
    println!("Created:       {created}");
    println!("Zones:         {}", spec.zones.join(", "));
    println!("Network:       {}", spec.network_cidr);
    println!("Masters:       {} x {}", spec.masters, spec.master_size);
    println!("Nodes:         {} x {}", spec.nodes, spec.node_size);
    println!("Image:         {}", spec.image.clone().unwrap_or_default());
    println!("API access:    {}", spec.api_cidrs.join(", "));
    if let Some(lb) = o.api_load_balancer() {
        println!(
            "API endpoint:  https://{}:{}",
            lb.dns,
            cloud::aws_profile().ports.api
        );
    }
    let dir = ClusterDir::of(&name);
    println!(
        "Local state:   {}",
        if dir.exists() {
            dir.path.display().to_string()
        } else {
            "<none on this machine>".into()
        }
    );
    println!("Instances:");
    let rows: Vec<Vec<String>> = o
        .instances
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.id.clone(),
                i.state.as_str().to_string(),
                i.zone.clone(),
                i.size.clone(),
                i.private_ip.clone().unwrap_or_else(|| "<none>".into()),
                i.public_ip.clone().unwrap_or_else(|| "<none>".into()),
            ]
        })
        .collect();
    for l in super::printer::table(
        &[
            "NAME",
            "ID",
            "STATE",
            "ZONE",
            "TYPE",
            "PRIVATE-IP",
            "PUBLIC-IP",
        ],
        &rows,
    )
    .lines()
    {
        println!("  {l}");
    }
    println!("Resources ({}):", o.count());
    for l in o.lines() {
        println!("  {l}");
    }
    let profile = cloud::aws_profile();
    let d = desired(spec, &profile, created, None)?;
    let drift = plan::simulate(&d, &o)?;
    if drift.is_empty() {
        println!("Drift:         none (the infrastructure matches the spec)");
    } else {
        println!("Drift (`orkops update cluster {name} --yes` fixes it):");
        print_plan(&drift);
    }
    Ok(())
}

pub async fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    if a.all {
        let Some(age) = &a.older_than else {
            bail!("delete cluster --all needs --older-than DURATION (e.g. 2h), so a running cluster is not swept by accident");
        };
        if !a.names.is_empty() {
            bail!("delete cluster: give NAME or --all, not both");
        }
        let age = aws::parse_age(age).map_err(|e| anyhow!(e))?;
        let aws = aws::connect(&region()).await?;
        let cutoff = chrono::Utc::now() - age;
        let old: Vec<String> = aws::clusters(&aws)
            .await?
            .into_iter()
            .filter(|c| c.created.is_some_and(|t| t < cutoff))
            .map(|c| c.name)
            .collect();
        if old.is_empty() {
            println!(
                "no orkops cluster in {} is older than {}",
                aws.region,
                a.older_than.as_deref().unwrap_or("")
            );
        }
        for name in old {
            delete_one(&aws, &name, a.yes).await?;
        }
        return Ok(());
    }
    let [name] = a.names.as_slice() else {
        bail!("usage: orkops delete cluster NAME [--yes], or --all --older-than DURATION");
    };
    cloud::check_name(name).map_err(|e| anyhow!(e))?;
    let aws = aws::connect(&region()).await?;
    delete_one(&aws, name, a.yes).await
}

async fn delete_one(aws: &aws::Aws, name: &str, yes: bool) -> anyhow::Result<()> {
    let o = aws::observe(aws, name).await?;
    let dir = ClusterDir::of(name);
    if o.is_empty() {
        println!(
            "cluster {name}: nothing tagged {}={name} in {}",
            cloud::TAG_CLUSTER,
            aws.region
        );
        dir.remove();
        return Ok(());
    }
    if !yes {
        for l in o.lines() {
            println!("would delete {l} (cluster {name})");
        }
        println!("(pass --yes to delete these {} resources)", o.count());
        return Ok(());
    }
    let progress = Progress::new(None);
    let r = aws::teardown(aws, &o, &progress).await;
    progress.finish();
    r?;
    let left = aws::observe(aws, name).await?;
    if !left.is_empty() {
        bail!(
            "cluster {name}: {} resources are still there after the delete: {}; hint: run the delete again",
            left.count(),
            left.lines().join(", ")
        );
    }
    dir.remove();
    progress.println(&format!(
        "cluster {name} deleted in {:.1} s ({} resources, {} AWS calls)",
        progress.elapsed().as_secs_f64(),
        o.count(),
        aws.call_count()
    ));
    Ok(())
}
