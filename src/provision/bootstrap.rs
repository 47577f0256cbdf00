//! The bootstrap phase of `create` and `update`: every running instance is set up over SSH
//! (`crate::bootstrap`), with join configs scoped to each node (`cli::nodes`); then the admin
//! client config and the kubeconfig context are written, and the phase waits until every
//! node is Ready.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};

use super::settings::ApplySettings;
use super::Progress;
use crate::bootstrap::{self, render, Binaries};
use crate::cli::state::ClusterDir;
use crate::client::ClientConfig;
use crate::cloud::model::{InstanceState, Observed, Role};
use crate::cloud::plan::Desired;
use crate::cloud::{self};

/// The machines the bootstrap sets up: the running instances.
fn machines(o: &Observed) -> anyhow::Result<Vec<render::Machine>> {
    let mut machines = Vec::new();
    for i in o
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
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
    Ok(machines)
}

/// Bootstraps every running instance, writes the client config, then waits until every node
/// is Ready. Returns the admin client configuration.
pub async fn run(
    o: &Observed,
    d: &Desired,
    apply: &ApplySettings,
    binaries: &Binaries,
    progress: &dyn Progress,
) -> anyhow::Result<ClientConfig> {
    let name = &d.spec.name;
    let dir = ClusterDir::of(name);
    let profile = cloud::aws_profile();
    let mut secrets = dir.secrets()?;
    let key = Arc::new(dir.private_key()?);
    let machines = machines(o)?;
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
    let admin = super::admin_config(
        name,
        o,
        &profile.ports,
        &secrets.ca_cert,
        &secrets.admin_token,
    );
    // a cluster bootstrapped before has an API: retire the Nodes of gone or replaced instances
    // first (revoking their tokens), and have the master mint the join tokens on its clock
    let api = if dir.file("config").exists() {
        crate::cli::nodes::reachable(&admin).await
    } else {
        None
    };
    if let Some(api) = &api {
        crate::cli::nodes::retire_stale(api, &machines, progress).await?;
    }
    let join_configs =
        crate::cli::nodes::join_configs(api.as_ref(), &machines, &secrets.join_token, &join)
            .await?;
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
        binaries: binaries.clone(),
        key,
        known: Arc::new(bootstrap::ssh::KnownHosts::open(&dir.known_hosts_path())),
        user: profile.image.user.clone(),
        ssh_port: profile.ports.ssh as u16,
        ssh_deadline: apply.ssh_timeout,
    };
    let started = Instant::now();
    let timings = bootstrap::run(&input, progress.events()).await.map_err(|e| {
        anyhow!(
            "bootstrap of cluster {name}:\n{e}\nhint: fix the cause, then `orkops update cluster {name} --yes` continues; `orkops delete cluster {name} --yes` removes the cluster"
        )
    })?;
    let booted = started.elapsed();
    let target = super::config_target(apply.config.as_deref())?;
    super::write_client_config(progress, &dir, &target, &admin)?;
    let kube = crate::cli::kubeconfig::merge(None, name, &admin)?;
    progress.say(&format!(
        "kubeconfig {kube}: context {name} is the current context"
    ));
    let expected = super::expected_nodes(o);
    let report =
        super::validate::wait_valid(&admin, &expected, Some(apply.wait), progress.events()).await?;
    let ready = started.elapsed();
    let (ssh, upload, start) = timings.iter().fold((0f64, 0f64, 0f64), |acc, t| {
        (
            acc.0.max(t.ssh.as_secs_f64()),
            acc.1.max(t.upload.as_secs_f64()),
            acc.2.max(t.start.as_secs_f64()),
        )
    });
    progress.say(&format!(
        "bootstrap of {} instances in {:.1} s (slowest: SSH and user data {ssh:.1} s, upload {upload:.1} s, start {start:.1} s), every node Ready after {:.1} s",
        timings.len(),
        booted.as_secs_f64(),
        ready.as_secs_f64()
    ));
    progress.say(&format!("{report}client config: {}", target.display()));
    Ok(admin)
}
