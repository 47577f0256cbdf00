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
use crate::api::Kind;
use crate::client::{ApiClient, ClientConfig};
use crate::cloud::model::{Action, Observed, Role};
use crate::cloud::plan::{self, Desired};
use crate::cloud::{self, aws, ClusterSpec, Profile};
use crate::progress::Reporter;

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

fn desired(spec: ClusterSpec, p: &Profile, created: String) -> anyhow::Result<Desired> {
    let user_data = user_data(&spec, p)?;
    let d = Desired {
        spec,
        ports: p.ports.clone(),
        subnet_bits: p.network.subnet_bits,
        created,
        user_data,
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

pub async fn create(cli: &super::args::Cli, a: &CreateClusterArgs) -> anyhow::Result<()> {
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
        master_instance_profile: a.master_instance_profile.clone(),
    };
    spec.check().map_err(|e| anyhow!(e))?;
    if !a.addons.is_empty() && a.plan.infrastructure_only {
        bail!("--addons needs the bootstrap: drop --infrastructure-only, or enable them later with `orkops addons enable NAME`");
    }
    // every add-on is checked (and rendered) before anything is created
    let mut addons = Vec::new();
    for name in &a.addons {
        let bundle = crate::addons::Bundle::builtin(name).map_err(|e| anyhow!("--addons: {e}"))?;
        let facts = crate::addons::ClusterFacts {
            cluster_name: a.name.clone(),
            ..Default::default()
        };
        bundle
            .render(&facts, &[])
            .map_err(|e| anyhow!("--addons {name}: {e}"))?;
        addons.push(bundle);
    }

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
    let d = desired(spec, &profile, now)?;
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
    let r = build(cli, &aws, &d, &a.plan, &addons, &progress).await;
    progress.finish();
    r?;
    progress.println(&format!(
        "cluster {} created in {:.1} s",
        d.spec.name,
        progress.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// What create and update do once the plan is accepted: converge the infrastructure, then
/// (unless `--infrastructure-only`) bootstrap the instances and enable `addons`.
async fn build(
    cli: &super::args::Cli,
    aws: &aws::Aws,
    d: &Desired,
    flags: &ApplyPlanArgs,
    addons: &[crate::addons::Bundle],
    progress: &Progress,
) -> anyhow::Result<()> {
    let o = converge(aws, d, progress).await?;
    write_summary(&ClusterDir::of(&d.spec.name), &o, d)?;
    progress.println(&format!(
        "infrastructure of cluster {} ready in {:.1} s ({} AWS calls); API load balancer {}",
        d.spec.name,
        progress.elapsed().as_secs_f64(),
        aws.call_count(),
        o.api_load_balancer().map(|l| l.dns.as_str()).unwrap_or("?")
    ));
    if !flags.infrastructure_only {
        let cfg = bootstrap_phase(&o, d, flags, cli.config.as_deref(), progress).await?;
        enable_addons(&cfg, addons, progress).await?;
    }
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

pub async fn update(cli: &super::args::Cli, a: &UpdateClusterArgs) -> anyhow::Result<()> {
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
    let d = desired(spec, &profile, created)?;
    let actions = plan::simulate(&d, &o)?;
    update_plan(cli, &aws, &d, &actions, &a.plan).await
}

async fn update_plan(
    cli: &super::args::Cli,
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
        println!(
            "(dry run: nothing was changed; pass --yes to apply{})",
            if flags.infrastructure_only {
                ""
            } else {
                " and bootstrap the instances"
            }
        );
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
    let r = build(cli, aws, d, flags, &[], &progress).await;
    progress.finish();
    r?;
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
    if let Some(p) = &spec.master_instance_profile {
        println!("Masters' IAM:  instance profile {p}");
    }
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
    let d = desired(spec, &profile, created)?;
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
        super::kubeconfig::forget(name);
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
    // what appeared while the first pass ran (a master's controller at work) goes in the next
    let mut left = o.clone();
    for _ in 0..3 {
        let r = aws::teardown(aws, &left, &progress).await;
        if let Err(e) = r {
            progress.finish();
            return Err(e.into());
        }
        left = aws::observe(aws, name).await?;
        if left.is_empty() {
            break;
        }
    }
    progress.finish();
    if !left.is_empty() {
        bail!(
            "cluster {name}: {} resources are still there after the delete: {}; hint: run the delete again",
            left.count(),
            left.lines().join(", ")
        );
    }
    dir.remove();
    super::kubeconfig::forget(name);
    progress.println(&format!(
        "cluster {name} deleted in {:.1} s ({} resources, {} AWS calls)",
        progress.elapsed().as_secs_f64(),
        o.count(),
        aws.call_count()
    ));
    Ok(())
}

/// `90s`, `10m`, `2h` as a duration, naming the flag when it is not one.
fn duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    aws::parse_age(s)
        .ok()
        .and_then(|d| d.to_std().ok())
        .ok_or_else(|| anyhow!("{flag} {s:?}: a number with s, m or h (e.g. 5m)"))
}

/// The admin client configuration of a cluster: the API load balancer first, then each master
/// (a client tries them in order).
fn admin_config(
    name: &str,
    o: &Observed,
    ports: &crate::cloud::Ports,
    ca: &str,
    token: &str,
) -> ClientConfig {
    let mut endpoints = Vec::new();
    if let Some(lb) = o.api_load_balancer() {
        endpoints.push(format!("https://{}:{}", lb.dns, ports.api));
    }
    for m in o.instances_of(Role::Master) {
        if let Some(a) = m.address() {
            endpoints.push(format!("https://{a}:{}", ports.api));
        }
    }
    ClientConfig::new(Some(name), endpoints, ca, token)
}

/// Where the client configuration goes: `--config`, `$ORKOPS_CONFIG`, or `~/.orkops/config`.
fn config_target(flag: Option<&std::path::Path>) -> anyhow::Result<std::path::PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(crate::client::config::ENV_VAR).filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    ClientConfig::default_path().context("HOME is not set: pass --config FILE")
}

fn write_client_config(
    progress: &Progress,
    dir: &ClusterDir,
    target: &std::path::Path,
    cfg: &ClientConfig,
) -> anyhow::Result<()> {
    if let Ok(old) = ClientConfig::load(target) {
        if old.cluster != cfg.cluster {
            progress.println(&format!(
                "(the client config {} was cluster {}; `orkops export config {}` brings it back)",
                target.display(),
                old.cluster.as_deref().unwrap_or("?"),
                old.cluster.as_deref().unwrap_or("NAME")
            ));
        }
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    cfg.save(target)?;
    cfg.save(&dir.file("config"))?;
    Ok(())
}

/// Enables the add-ons `create cluster --addons` named, through the API.
async fn enable_addons(
    cfg: &ClientConfig,
    bundles: &[crate::addons::Bundle],
    progress: &Progress,
) -> anyhow::Result<()> {
    if bundles.is_empty() {
        return Ok(());
    }
    let api = ApiClient::new(cfg)?;
    let facts = crate::addons::ClusterFacts::read(&api, cfg.cluster.as_deref()).await?;
    for b in bundles {
        let report = crate::addons::enable(
            &api,
            b,
            &crate::addons::Params {
                facts: facts.clone(),
                set: Vec::new(),
            },
        )
        .await
        .map_err(|e| anyhow!("add-on {}: {e}", b.name()))?;
        progress.report(
            crate::progress::Event::line(
                "addons",
                format!(
                    "enabled {} {} ({} objects)",
                    report.name,
                    report.version,
                    report.objects.len()
                ),
            )
            .done(),
        );
    }
    Ok(())
}

/// The bootstrap phase: every running instance over SSH, then the client configuration, then
/// a wait until every node is Ready. Returns the admin client configuration.
async fn bootstrap_phase(
    o: &Observed,
    d: &Desired,
    flags: &ApplyPlanArgs,
    config_flag: Option<&std::path::Path>,
    progress: &Progress,
) -> anyhow::Result<ClientConfig> {
    use crate::bootstrap::{self, render};
    let name = &d.spec.name;
    let dir = ClusterDir::of(name);
    let profile = cloud::aws_profile();
    let ssh_timeout = duration("--ssh-timeout", &flags.ssh_timeout)?;
    let wait = duration("--wait", &flags.wait)?;
    let bin_dir = match &flags.binaries_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|p| p.to_path_buf()))
            .context("cannot tell where this orkops is: pass --binaries-dir")?,
    };
    let binaries = bootstrap::Binaries::load(&bin_dir).map_err(|e| anyhow!(e))?;
    let mut secrets = dir.secrets()?;
    let key = std::sync::Arc::new(dir.private_key()?);
    let mut machines = Vec::new();
    for i in o
        .instances
        .iter()
        .filter(|i| i.state == crate::cloud::model::InstanceState::Running)
    {
        let Some(private_ip) = i.private_ip.clone() else {
            bail!("instance {} ({}) has no private IP", i.name, i.id);
        };
        machines.push(render::Machine {
            name: i.name.clone(),
            role: i.role,
            instance_id: i.id.clone(),
            zone: i.zone.clone(),
            size: i.size.clone(),
            private_ip,
            public_ip: i.public_ip.clone(),
            arch: i.arch.clone(),
        });
    }
    let mut masters: Vec<(String, String)> = machines
        .iter()
        .filter(|m| m.role == Role::Master)
        .map(|m| (m.name.clone(), m.private_ip.clone()))
        .collect();
    masters.sort();
    secrets.etcd.members = dir.etcd_members(&masters)?;
    let join = ClientConfig::new(
        Some(name),
        masters
            .iter()
            .map(|(_, ip)| format!("https://{ip}:{}", profile.ports.api))
            .collect(),
        &secrets.ca_cert,
        "",
    );
    let admin = admin_config(
        name,
        o,
        &profile.ports,
        &secrets.ca_cert,
        &secrets.admin_token,
    );
    // a cluster bootstrapped before has an API: retire the Nodes of gone or replaced instances
    // first (revoking their tokens), and have the master mint the join tokens on its clock
    let api = if dir.file("config").exists() {
        super::nodes::reachable(&admin).await
    } else {
        None
    };
    if let Some(api) = &api {
        super::nodes::retire_stale(api, &machines, progress).await?;
    }
    let join_configs =
        super::nodes::join_configs(api.as_ref(), &machines, &secrets.join_token, &join).await?;
    let input = bootstrap::Input {
        facts: render::ClusterFacts {
            name: name.clone(),
            region: d.spec.region.clone(),
            api_port: profile.ports.api,
            agent_port: profile.ports.agent,
            api_dns: o.api_load_balancer().map(|l| l.dns.clone()),
            masters,
            // LoadBalancer services get AWS load balancers (the masters' AWS access: the
            // instance profile on AWS, the body's ~/.aws on the local cloud)
            master_flags: vec!["--cloud".into(), "aws".into()],
        },
        machines,
        secrets: secrets.clone(),
        join_configs,
        binaries,
        key,
        known: std::sync::Arc::new(crate::bootstrap::ssh::KnownHosts::open(
            &dir.known_hosts_path(),
        )),
        user: profile.image.user.clone(),
        ssh_port: profile.ports.ssh as u16,
        ssh_deadline: ssh_timeout,
    };
    let started = std::time::Instant::now();
    let timings = bootstrap::run(&input, progress).await.map_err(|e| {
        anyhow!(
            "bootstrap of cluster {name}:\n{e}\nhint: fix the cause, then `orkops update cluster {name} --yes` continues; `orkops delete cluster {name} --yes` removes the cluster"
        )
    })?;
    let booted = started.elapsed();
    let target = config_target(config_flag)?;
    write_client_config(progress, &dir, &target, &admin)?;
    let kube = super::kubeconfig::merge(None, name, &admin)?;
    progress.println(&format!(
        "kubeconfig {kube}: context {name} is the current context"
    ));
    let expected = expected_nodes(o);
    let report = wait_valid(&admin, &expected, Some(wait), progress).await?;
    let ready = started.elapsed();
    let (ssh, upload, start) = timings.iter().fold((0f64, 0f64, 0f64), |acc, t| {
        (
            acc.0.max(t.ssh.as_secs_f64()),
            acc.1.max(t.upload.as_secs_f64()),
            acc.2.max(t.start.as_secs_f64()),
        )
    });
    progress.println(&format!(
        "bootstrap of {} instances in {:.1} s (slowest: SSH and user data {ssh:.1} s, upload {upload:.1} s, start {start:.1} s), every node Ready after {:.1} s",
        timings.len(),
        booted.as_secs_f64(),
        ready.as_secs_f64()
    ));
    progress.println(&format!("{report}client config: {}", target.display()));
    Ok(admin)
}

/// The nodes a cluster's instances should register as.
fn expected_nodes(o: &Observed) -> Vec<String> {
    o.instances_of(Role::Node).map(|i| i.name.clone()).collect()
}

/// Lists the nodes; returns (report, valid). Valid: the API answers and every expected node
/// (every listed node when none is expected) is Ready.
async fn check_cluster(api: &ApiClient, expected: &[String]) -> (String, bool) {
    let list = match api.list(Kind::Node, None, &[]).await {
        Ok(l) => l,
        Err(e) => return (format!("the API does not answer: {e}\n"), false),
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let ready = |n: &serde_json::Value| {
        n["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    };
    let mut rows = Vec::new();
    let mut valid = true;
    let mut names: Vec<String> = items
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    for e in expected {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names.sort();
    for n in &names {
        let node = items.iter().find(|i| i["metadata"]["name"] == n.as_str());
        let status = match node {
            None => "missing (not registered)".to_string(),
            Some(v) if ready(v) => "Ready".to_string(),
            Some(_) => "NotReady".to_string(),
        };
        if status != "Ready" && (expected.is_empty() || expected.contains(n)) {
            valid = false;
        }
        rows.push(vec![n.clone(), status]);
    }
    if names.is_empty() {
        valid = false;
    }
    let mut out = super::printer::table(&["NODE", "STATUS"], &rows);
    out.push_str(if valid {
        "the cluster is valid: the API answers and every node is Ready\n"
    } else {
        "the cluster is not valid yet\n"
    });
    (out, valid)
}

/// Checks until valid, or until `wait` passes (checks once without it).
async fn wait_valid(
    cfg: &ClientConfig,
    expected: &[String],
    wait: Option<Duration>,
    progress: &dyn crate::progress::Reporter,
) -> anyhow::Result<String> {
    let api = ApiClient::new(cfg)?;
    let start = std::time::Instant::now();
    loop {
        let (report, valid) = check_cluster(&api, expected).await;
        if valid {
            progress.report(crate::progress::Event::line("validate", "every node is Ready").done());
            return Ok(report);
        }
        match wait {
            Some(w) if start.elapsed() < w => {
                let waiting = report
                    .lines()
                    .filter(|l| l.contains("missing") || l.contains("NotReady"))
                    .filter_map(|l| l.split_whitespace().next())
                    .collect::<Vec<_>>()
                    .join(", ");
                progress.report(crate::progress::Event::line(
                    "validate",
                    format!(
                        "waiting for {}",
                        if waiting.is_empty() {
                            "the API"
                        } else {
                            &waiting
                        }
                    ),
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => bail!(
                "{report}cluster {} is not valid{}",
                cfg.cluster.as_deref().unwrap_or(""),
                wait.map(|w| format!(" after {} s", w.as_secs()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// `orkops validate cluster [NAME] [--wait D]`.
pub async fn validate(cli: &super::args::Cli, a: &super::args::ValidateArgs) -> anyhow::Result<()> {
    let wait = a
        .wait
        .as_deref()
        .map(|w| duration("--wait", w))
        .transpose()?;
    let (cfg, expected) = match &a.name {
        Some(name) => {
            let aws = aws::connect(&region()).await?;
            let (o, _, _) = recorded(&aws, name).await?;
            let cfg = match ClientConfig::load(&ClusterDir::of(name).file("config")) {
                Ok(c) => c,
                Err(_) => ClientConfig::load(&ClientConfig::locate(cli.config.as_deref())?)?,
            };
            if cfg.cluster.as_deref() != Some(name.as_str()) {
                bail!("the client config is for cluster {:?}, not {name}; hint: `orkops export config {name}`", cfg.cluster);
            }
            (cfg, expected_nodes(&o))
        }
        None => (
            ClientConfig::load(&ClientConfig::locate(cli.config.as_deref())?)?,
            Vec::new(),
        ),
    };
    let report = wait_valid(&cfg, &expected, wait, &crate::progress::Quiet).await?;
    print!("{report}");
    Ok(())
}

/// `orkops export config NAME`: the admin client config, from this machine's secrets and the
/// endpoints AWS has.
pub async fn export_config(
    cli: &super::args::Cli,
    a: &super::args::ExportConfigArgs,
) -> anyhow::Result<()> {
    let dir = ClusterDir::of(&a.name);
    if !dir.pki_dir().join("admin.token").exists() {
        bail!(
            "no secrets of cluster {} on this machine ({}); hint: it was created elsewhere: copy that directory here",
            a.name,
            dir.pki_dir().display()
        );
    }
    let aws = aws::connect(&region()).await?;
    let (o, _, _) = recorded(&aws, &a.name).await?;
    let secrets = dir.secrets()?;
    let cfg = admin_config(
        &a.name,
        &o,
        &cloud::aws_profile().ports,
        &secrets.ca_cert,
        &secrets.admin_token,
    );
    let target = config_target(cli.config.as_deref())?;
    write_client_config(
        &Progress::new(Some(super::args::ProgressOutput::Text)),
        &dir,
        &target,
        &cfg,
    )?;
    println!(
        "wrote the client config of cluster {} to {} ({})",
        a.name,
        target.display(),
        cfg.endpoints.join(", ")
    );
    Ok(())
}

/// `orkops ssh CLUSTER [INSTANCE] [-- CMD]`: the system's ssh with the cluster's key and the
/// host keys the bootstrap recorded.
pub async fn ssh(a: &super::args::SshArgs) -> anyhow::Result<()> {
    let aws = aws::connect(&region()).await?;
    let (o, _, _) = recorded(&aws, &a.cluster).await?;
    let want = a.instance.clone().unwrap_or_else(|| "master-1".into());
    let Some(i) = o
        .instances
        .iter()
        .find(|i| i.state.is_live() && (i.name == want || i.id == want))
    else {
        let names: Vec<&str> = o.instances.iter().map(|i| i.name.as_str()).collect();
        bail!(
            "cluster {}: no instance {want:?} (instances: {})",
            a.cluster,
            names.join(", ")
        );
    };
    let Some(addr) = i.address() else {
        bail!("instance {} ({}) has no address yet", i.name, i.id);
    };
    let dir = ClusterDir::of(&a.cluster);
    if !dir.ssh_key_path().exists() {
        bail!(
            "no SSH key of cluster {} on this machine ({})",
            a.cluster,
            dir.ssh_key_path().display()
        );
    }
    let known = crate::bootstrap::ssh::KnownHosts::open(&dir.known_hosts_path());
    let strict = if known.recorded(&i.id).is_some() {
        "yes"
    } else {
        "accept-new"
    };
    let profile = cloud::aws_profile();
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-i")
        .arg(dir.ssh_key_path())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.known_hosts_path().display()
        ))
        .args(["-o", &format!("HostKeyAlias={}", i.id)])
        .args(["-o", &format!("StrictHostKeyChecking={strict}")])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            &profile.ports.ssh.to_string(),
        ])
        .arg(format!("{}@{addr}", profile.image.user));
    cmd.args(&a.command);
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    Err(anyhow!(
        "cannot run ssh: {e}; hint: install an OpenSSH client (apt-get install openssh-client)"
    ))
}
