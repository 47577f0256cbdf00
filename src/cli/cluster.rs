//! `orkops create cluster` and `orkops delete cluster`: the infrastructure phase on AWS (the
//! SSH bootstrap of the instances is a later phase). The cluster's local state (its key and
//! what was created) lives in `~/.orkops/clusters/NAME/`; AWS, found by tag, is the truth.

use std::path::PathBuf;

use anyhow::Context;

use super::args::{CreateClusterArgs, DeleteArgs};
use crate::cloud::{self, aws, ClusterSpec};

fn region() -> String {
    std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into())
}

fn state_dir(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into());
    home.join(".orkops").join("clusters").join(name)
}

/// The cluster's SSH key: the user's public key, or an ed25519 key generated once and kept in
/// the cluster's state directory (private key as PKCS#8, mode 0600).
fn ssh_public_key(
    a: &CreateClusterArgs,
    dir: &std::path::Path,
    write: bool,
) -> anyhow::Result<String> {
    if let Some(f) = &a.ssh_public_key {
        let k = std::fs::read_to_string(f)
            .with_context(|| format!("--ssh-public-key {}: cannot read it", f.display()))?;
        let k = k.trim().to_string();
        if !k.starts_with("ssh-") && !k.starts_with("ecdsa-") {
            anyhow::bail!(
                "--ssh-public-key {}: not an OpenSSH public key line",
                f.display()
            );
        }
        return Ok(k);
    }
    let pub_file = dir.join("id_ed25519.pub");
    if let Ok(k) = std::fs::read_to_string(&pub_file) {
        return Ok(k.trim().to_string());
    }
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot generate an SSH key"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("cannot read the generated SSH key"))?;
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), pair.public_key().as_ref()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    let line = format!(
        "ssh-ed25519 {} orkops-{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, blob),
        a.name
    );
    if write {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key = dir.join("id_ed25519.pk8");
        std::fs::write(&key, pkcs8.as_ref())
            .with_context(|| format!("cannot write {}", key.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(&pub_file, format!("{line}\n"))?;
    }
    Ok(line)
}

pub async fn create(a: &CreateClusterArgs) -> anyhow::Result<()> {
    cloud::check_name(&a.name).map_err(|e| anyhow::anyhow!(e))?;
    if a.nodes > 500 {
        anyhow::bail!("--nodes {}: at most 500", a.nodes);
    }
    let profile = cloud::aws_profile();
    let dir = state_dir(&a.name);
    let apply = a.yes && !a.dry_run;
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
        ssh_public_key: ssh_public_key(a, &dir, apply)?,
        api_cidrs: a.api_cidrs.clone(),
    };
    for c in &spec.api_cidrs {
        c.parse::<ipnet::Ipv4Net>()
            .map_err(|_| anyhow::anyhow!("--api-cidrs: {c:?} is not an IPv4 CIDR"))?;
    }
    let aws = aws::connect(&spec.region).await?;
    aws::check_zones(&aws, &spec.zones).await?;
    let image = match &spec.image {
        Some(i) => i.clone(),
        None => aws::find_image(&aws, &profile).await?,
    };
    println!(
        "cluster {} in {}: VPC {}, {} subnet(s) ({}), security groups for masters and nodes, key pair orkops-{}, {} master(s) {} and {} node(s) {} from {}, an NLB on port {} in front of the masters",
        spec.name,
        spec.region,
        profile.network.vpc_cidr,
        spec.zones.len(),
        spec.zones.join(", "),
        spec.name,
        spec.masters,
        spec.master_size,
        spec.nodes,
        spec.node_size,
        image,
        profile.ports.api
    );
    if !apply {
        println!("(dry run: nothing was created; pass --yes to create it)");
        return Ok(());
    }
    let spec = ClusterSpec {
        image: Some(image),
        ..spec
    };
    let mut tera = tera::Tera::default();
    tera.add_raw_template(
        "user-data",
        include_str!("../../templates/user-data.sh.tera"),
    )
    .context("templates/user-data.sh.tera")?;
    let render = |role: &str| {
        let mut ctx = tera::Context::new();
        ctx.insert("cluster", &spec.name);
        ctx.insert("role", role);
        ctx.insert("api_port", &profile.ports.api);
        tera.render("user-data", &ctx).unwrap_or_default()
    };
    let started = std::time::Instant::now();
    let created = aws::create(&aws, &spec, &profile, &render, &mut |line| println!("{line}"))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}\nhint: what was created is tagged {}={}; `orkops delete cluster {} --yes` removes it",
                cloud::TAG_CLUSTER,
                spec.name,
                spec.name
            )
        })?;
    std::fs::create_dir_all(&dir)?;
    let state = serde_json::json!({
        "name": spec.name, "region": spec.region, "zones": spec.zones,
        "masters": spec.masters, "nodes": spec.nodes, "vpc": created.vpc,
        "instances": created.instances, "apiEndpoint": format!("https://{}:{}", created.api_dns, profile.ports.api),
    });
    std::fs::write(dir.join("cluster.json"), serde_json::to_vec_pretty(&state)?)?;
    println!(
        "cluster {} created in {:.1} s; API load balancer {} (the bootstrap over SSH is a later phase)",
        spec.name,
        started.elapsed().as_secs_f64(),
        created.api_dns
    );
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
    println!(
        "{:<22} {:<22} {:<8} {:<8} {:<22}",
        "NAME", "VPC", "MASTERS", "NODES", "CREATED"
    );
    for c in seen {
        println!(
            "{:<22} {:<22} {:<8} {:<8} {:<22}",
            c.name,
            c.vpc.unwrap_or_else(|| "<none>".into()),
            c.masters,
            c.nodes,
            c.created
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "<unknown>".into())
        );
    }
    Ok(())
}

pub async fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    if a.all {
        let Some(age) = &a.older_than else {
            anyhow::bail!("delete cluster --all needs --older-than DURATION (e.g. 2h), so a running cluster is not swept by accident");
        };
        if !a.names.is_empty() {
            anyhow::bail!("delete cluster: give NAME or --all, not both");
        }
        let age = aws::parse_age(age).map_err(|e| anyhow::anyhow!(e))?;
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
        anyhow::bail!("usage: orkops delete cluster NAME [--yes], or --all --older-than DURATION");
    };
    cloud::check_name(name).map_err(|e| anyhow::anyhow!(e))?;
    let aws = aws::connect(&region()).await?;
    delete_one(&aws, name, a.yes).await
}

async fn delete_one(aws: &aws::Aws, name: &str, yes: bool) -> anyhow::Result<()> {
    let inv = aws::find(aws, name).await?;
    if inv.is_empty() {
        println!(
            "cluster {name}: nothing tagged {}={name} in {}",
            cloud::TAG_CLUSTER,
            aws.region
        );
        let _ = std::fs::remove_dir_all(state_dir(name));
        return Ok(());
    }
    if !yes {
        for l in inv.lines() {
            println!("would delete {l} (cluster {name})");
        }
        println!("(pass --yes to delete these {} resources)", inv.count());
        return Ok(());
    }
    aws::delete(aws, &inv, &mut |line| println!("{line}")).await?;
    let left = aws::find(aws, name).await?;
    if !left.is_empty() {
        anyhow::bail!(
            "cluster {name}: {} resources are still there after the delete: {}",
            left.count(),
            left.lines().join(", ")
        );
    }
    let _ = std::fs::remove_dir_all(state_dir(name));
    println!("cluster {name} deleted");
    Ok(())
}
