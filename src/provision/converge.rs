//! The infrastructure phase of `create` and `update`: the checks only AWS can answer (zones,
//! instance types, the image), the desired state and its plan (`Plan`, printed by the CLI),
//! then the convergence of AWS to it, the local summary, and — unless
//! `--infrastructure-only` — the bootstrap and the add-ons.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::settings::{ApplySettings, CreateSettings, UpdateSettings};
use super::Progress;
use crate::cli::state::ClusterDir;
use crate::cloud::model::{Action, Observed, Role};
use crate::cloud::plan::{self, Desired};
use crate::cloud::{self, aws, ClusterSpec, Profile};
use crate::names::TAG_CLUSTER;

/// How long the infrastructure may take to converge.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(900);

/// What `create` or `update` would do: the desired state, what exists, and the actions.
pub struct Plan {
    pub desired: Desired,
    pub existing: Observed,
    pub actions: Vec<Action>,
    /// One line: the cluster as the user will get it.
    pub summary: String,
    /// `create`: the add-ons to enable once the nodes are Ready.
    addons: Vec<crate::addons::Bundle>,
    /// `create`: the user's key pair, if one was given.
    key: Option<super::settings::KeyPair>,
    is_create: bool,
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

/// The desired infrastructure of `spec`; every zone's subnet is cut up front.
pub fn desired(spec: ClusterSpec, p: &Profile, created: String) -> anyhow::Result<Desired> {
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

fn summary(d: &Desired) -> String {
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
        s.image.as_deref().unwrap_or("?"),
        d.ports.api
    )
}

/// The plan of `create cluster`: checks what only AWS can answer, and that no cluster of that
/// name exists. Changes nothing.
pub async fn plan_create(aws: &aws::Aws, s: CreateSettings) -> anyhow::Result<Plan> {
    let profile = cloud::aws_profile();
    let mut spec = s.spec;
    aws::check_zones(aws, &spec.zones).await?;
    aws::check_sizes(
        aws,
        &[
            ("--master-size", &spec.master_size),
            ("--node-size", &spec.node_size),
        ],
    )
    .await?;
    let image = match &spec.image {
        Some(i) => {
            aws::image_arch(aws, i).await?;
            i.clone()
        }
        None => aws::find_image(aws, &profile).await?,
    };
    spec.image = Some(image);
    let existing = aws::observe(aws, &spec.name).await?;
    if !existing.is_empty() {
        bail!(
            "a cluster named {:?} already exists in {} ({} resources tagged {TAG_CLUSTER}={}); hint: `orkops update cluster {} --yes` continues or changes it, `orkops delete cluster {} --yes` removes it",
            spec.name,
            spec.region,
            existing.count(),
            spec.name,
            spec.name,
            spec.name
        );
    }
    let d = desired(spec, &profile, super::now())?;
    let actions = plan::simulate(&d, &existing)?;
    Ok(Plan {
        summary: summary(&d),
        desired: d,
        existing,
        actions,
        addons: s.addons,
        key: s.key,
        is_create: true,
    })
}

/// The plan of `update cluster`: the recorded spec with the changes asked for, against what
/// exists. Changes nothing.
pub async fn plan_update(aws: &aws::Aws, s: &UpdateSettings) -> anyhow::Result<Plan> {
    let profile = cloud::aws_profile();
    let r = super::recorded(aws, &s.name).await?;
    let mut spec = r.spec;
    if let Some(n) = s.nodes {
        spec.nodes = n;
    }
    if let Some(size) = &s.node_size {
        aws::check_sizes(aws, &[("--node-size", size)]).await?;
        spec.node_size = size.clone();
    }
    if let Some(size) = &s.master_size {
        aws::check_sizes(aws, &[("--master-size", size)]).await?;
        spec.master_size = size.clone();
    }
    if let Some(i) = &s.image {
        aws::image_arch(aws, i).await?;
        spec.image = Some(i.clone());
    }
    spec.check().map_err(|e| anyhow!(e))?;
    let d = desired(spec, &profile, r.created)?;
    let actions = plan::simulate(&d, &r.observed)?;
    Ok(Plan {
        summary: summary(&d),
        desired: d,
        existing: r.observed,
        actions,
        addons: Vec::new(),
        key: None,
        is_create: false,
    })
}

/// Creates the cluster `plan` describes: its key pair (the user's, or one generated for it),
/// the infrastructure, then the bootstrap and the add-ons.
pub async fn create(
    aws: &aws::Aws,
    plan: Plan,
    apply: &ApplySettings,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    if !plan.is_create {
        bail!("internal: create was given the plan of an update");
    }
    let started = Instant::now();
    let dir = ClusterDir::of(&plan.desired.spec.name);
    // the key first: what AWS gets must be what this machine can log in with
    let key = match &plan.key {
        Some(k) => dir.adopt_key(k)?,
        None => dir.ensure_key()?,
    };
    let mut d = plan.desired;
    d.spec.ssh_public_key = key;
    build(aws, &d, apply, &plan.addons, progress, started).await?;
    progress.say(&format!(
        "cluster {} created in {:.1} s",
        d.spec.name,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Brings the cluster to the spec `plan` holds: the infrastructure, then the bootstrap.
pub async fn update(
    aws: &aws::Aws,
    plan: Plan,
    apply: &ApplySettings,
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let d = plan.desired;
    let name = &d.spec.name;
    if plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::ImportKeyPair { .. }))
        && d.spec.ssh_public_key.is_empty()
    {
        bail!(
            "cluster {name}: its key pair is gone from AWS and this machine has no key for it ({}); hint: delete and re-create the cluster",
            ClusterDir::of(name).path.display()
        );
    }
    build(aws, &d, apply, &[], progress, started).await?;
    progress.say(&format!(
        "cluster {name} updated in {:.1} s ({} AWS calls)",
        started.elapsed().as_secs_f64(),
        aws.call_count()
    ));
    Ok(())
}

/// What create and update do once the plan is accepted: converge the infrastructure, then
/// (unless `--infrastructure-only`) bootstrap the instances and enable `addons`.
async fn build(
    aws: &aws::Aws,
    d: &Desired,
    apply: &ApplySettings,
    addons: &[crate::addons::Bundle],
    progress: &dyn Progress,
    started: Instant,
) -> anyhow::Result<()> {
    let o = converge(aws, d, progress).await?;
    write_summary(&ClusterDir::of(&d.spec.name), &o, d)?;
    progress.say(&format!(
        "infrastructure of cluster {} ready in {:.1} s ({} AWS calls); API load balancer {}",
        d.spec.name,
        started.elapsed().as_secs_f64(),
        aws.call_count(),
        o.api_load_balancer().map(|l| l.dns.as_str()).unwrap_or("?")
    ));
    if let (false, Some(binaries)) = (apply.infrastructure_only, &apply.binaries) {
        let cfg = super::bootstrap::run(&o, d, apply, binaries, progress).await?;
        super::addons::enable(&cfg, addons, progress).await?;
    }
    Ok(())
}

/// Converges the infrastructure, reporting progress; the error says how to clean up.
async fn converge(
    aws: &aws::Aws,
    d: &Desired,
    progress: &dyn Progress,
) -> anyhow::Result<Observed> {
    let name = &d.spec.name;
    plan::converge(aws, d, CONVERGE_DEADLINE, progress.events())
        .await
        .map_err(|e| {
            anyhow!(
                "{e}\nhint: what exists is tagged {TAG_CLUSTER}={name}: `orkops update cluster {name} --yes` continues, `orkops delete cluster {name} --yes` removes it"
            )
        })
}

/// `cluster.json` in the cluster's directory: what was made, for a human to read.
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
