//! The cluster lifecycle commands: `create cluster`, `update cluster`, `validate cluster`,
//! `get clusters`, `describe cluster`, `delete cluster`, `export config` and `ssh`. Flags
//! (already parsed and checked by clap's value parsers) become `provision::settings`, checked
//! as a whole before the first AWS call; the work is `provision`'s; this file prints.

use anyhow::{anyhow, bail};

use super::args::{CreateClusterArgs, DeleteArgs, DescribeArgs, UpdateClusterArgs};
use super::progress::Progress;
use super::state::ClusterDir;
use crate::cloud::model::Action;
use crate::cloud::{self, aws, plan, ClusterSpec};
use crate::provision::settings::{
    ApplySettings, CreateSettings, DeleteSettings, UpdateSettings, ValidateSettings,
};
use crate::provision::{self, region, Plan};

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

fn apply_settings(
    cli: &super::args::Cli,
    p: &super::args::ApplyPlanArgs,
) -> anyhow::Result<ApplySettings> {
    ApplySettings::new(
        p.yes && !p.dry_run,
        p.infrastructure_only,
        p.binaries_dir.as_deref(),
        p.ssh_timeout,
        p.wait,
        cli.config.as_deref(),
    )
    .map_err(|e| anyhow!(e))
}

/// `orkops create cluster NAME --zones Z,...`: the settings are checked, then the plan is made
/// against AWS and printed; with `--yes` it is applied.
pub async fn create(cli: &super::args::Cli, a: &CreateClusterArgs) -> anyhow::Result<()> {
    let profile = cloud::aws_profile();
    let spec = ClusterSpec {
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
        api_cidrs: a.api_cidrs.iter().map(|c| c.trunc().to_string()).collect(),
        network_cidr: a.network_cidr.unwrap_or(profile.network.vpc_cidr),
        master_instance_profile: a.master_instance_profile.clone(),
    };
    let apply = apply_settings(cli, &a.plan)?;
    let settings = CreateSettings::new(spec, &a.addons, a.ssh_public_key.as_deref(), apply)
        .map_err(|e| anyhow!(e))?;
    let apply = settings.apply.clone();
    // the first AWS call: everything above was checked without it
    let aws = aws::connect(&settings.spec.region).await?;
    let plan = provision::plan_create(&aws, settings).await?;
    println!("{}", plan.summary);
    if !apply.apply {
        print_plan(&plan.actions);
        println!("(dry run: nothing was created; pass --yes to create it)");
        return Ok(());
    }
    let progress = Progress::new(a.plan.output);
    let r = provision::create(&aws, plan, &apply, &progress).await;
    progress.finish();
    r
}

/// `orkops update cluster NAME`: the recorded spec with the flags' changes, planned against
/// what exists and printed; with `--yes` applied (and the instances bootstrapped).
pub async fn update(cli: &super::args::Cli, a: &UpdateClusterArgs) -> anyhow::Result<()> {
    let settings = UpdateSettings {
        name: a.name.clone(),
        nodes: a.nodes,
        node_size: a.node_size.clone(),
        master_size: a.master_size.clone(),
        image: a.image.clone(),
        apply: apply_settings(cli, &a.plan)?,
    };
    let aws = aws::connect(&region()).await?;
    let plan = provision::plan_update(&aws, &settings).await?;
    print_update_plan(&plan, &a.plan);
    if !settings.apply.apply {
        return Ok(());
    }
    let progress = Progress::new(a.plan.output);
    let r = provision::update(&aws, plan, &settings.apply, &progress).await;
    progress.finish();
    r
}

fn print_update_plan(plan: &Plan, flags: &super::args::ApplyPlanArgs) {
    let name = &plan.desired.spec.name;
    if plan.actions.is_empty() {
        println!("cluster {name}: the infrastructure matches its spec");
    } else {
        println!("cluster {name}: {} change(s)", plan.actions.len());
        print_plan(&plan.actions);
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
    }
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
    let r = provision::recorded(&aws, &name).await?;
    let (o, spec, created) = (r.observed, r.spec, r.created);
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
    let d = provision::converge::desired(spec, &profile, created)?;
    let drift = plan::simulate(&d, &o)?;
    if drift.is_empty() {
        println!("Drift:         none (the infrastructure matches the spec)");
    } else {
        println!("Drift (`orkops update cluster {name} --yes` fixes it):");
        print_plan(&drift);
    }
    Ok(())
}

/// `orkops delete cluster NAME [--yes]`, or `--all --older-than D`.
pub async fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    let settings = if a.all {
        let Some(older_than) = a.older_than else {
            bail!("delete cluster --all needs --older-than DURATION (e.g. 2h), so a running cluster is not swept by accident");
        };
        if !a.names.is_empty() {
            bail!("delete cluster: give NAME or --all, not both");
        }
        DeleteSettings::OlderThan {
            older_than,
            yes: a.yes,
        }
    } else {
        let [name] = a.names.as_slice() else {
            bail!("usage: orkops delete cluster NAME [--yes], or --all --older-than DURATION");
        };
        cloud::check_name(name).map_err(|e| anyhow!(e))?;
        DeleteSettings::One {
            name: name.clone(),
            yes: a.yes,
        }
    };
    let aws = aws::connect(&region()).await?;
    let progress = Progress::new(if a.yes {
        None
    } else {
        Some(super::args::ProgressOutput::Text)
    });
    let r = provision::delete(&aws, &settings, &progress).await;
    progress.finish();
    r
}

/// `orkops validate cluster [NAME] [--wait D]`.
pub async fn validate(cli: &super::args::Cli, a: &super::args::ValidateArgs) -> anyhow::Result<()> {
    let report = provision::validate(&ValidateSettings {
        name: a.name.clone(),
        wait: a.wait,
        config: cli.config.clone(),
    })
    .await?;
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
    let o = provision::recorded(&aws, &a.name).await?.observed;
    let secrets = dir.secrets()?;
    let cfg = provision::admin_config(
        &a.name,
        &o,
        &cloud::aws_profile().ports,
        &secrets.ca_cert,
        &secrets.admin_token,
    );
    let target = provision::config_target(cli.config.as_deref())?;
    provision::write_client_config(
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
    let o = provision::recorded(&aws, &a.cluster).await?.observed;
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
