//! `orkops addons list|enable|disable`: the command-line face of `crate::addons`.

use anyhow::{anyhow, bail, Context};

use super::args::{AddonsCommand, AddonsDescribeArgs, AddonsDisableArgs, AddonsEnableArgs, Cli};
use super::printer;
use crate::addons::{self, AddonError, Bundle, ClusterFacts, Outcome, Params, Record};
use crate::client::config::ConfigError;
use crate::client::{ApiClient, ClientConfig};

pub async fn run(cli: &Cli, cmd: &AddonsCommand) -> anyhow::Result<()> {
    match cmd {
        AddonsCommand::List => list(cli).await,
        AddonsCommand::Enable(a) => enable(cli, a).await,
        AddonsCommand::Disable(a) => disable(cli, a).await,
        AddonsCommand::Describe(a) => describe(cli, a).await,
    }
}

/// The API client and the cluster's name (the client config's `cluster`).
fn connect(cli: &Cli) -> anyhow::Result<(ApiClient, Option<String>)> {
    if cli.namespace.is_some() {
        bail!("add-ons place their own objects (metadata.namespace in the bundle): drop -n/--namespace, and use --set namespace=NS where the bundle has that parameter (`orkops addons describe NAME` shows them)");
    }
    let path = ClientConfig::locate(cli.config.as_deref())?;
    let cfg = ClientConfig::load(&path)?;
    let client =
        ApiClient::new(&cfg).with_context(|| format!("client config {}", path.display()))?;
    Ok((client, cfg.cluster))
}

async fn list(cli: &Cli) -> anyhow::Result<()> {
    let builtins = Bundle::builtins();
    let installed = match connect(cli) {
        Ok((client, _)) => Some(addons::installed(&client).await?),
        Err(e)
            if matches!(
                e.downcast_ref::<ConfigError>(),
                Some(ConfigError::Missing { .. })
            ) =>
        {
            eprintln!("no cluster configured ({e}): showing the built-in add-ons only");
            None
        }
        Err(e) => return Err(e),
    };
    let installed = installed.unwrap_or_default();
    let mut rows = Vec::new();
    for b in &builtins {
        let i = installed.iter().find(|i| i.record.name == b.name());
        rows.push(row(b.name(), Some(&b.meta.version), i, &b.meta.description));
    }
    for i in installed
        .iter()
        .filter(|i| !builtins.iter().any(|b| b.name() == i.record.name))
    {
        rows.push(row(&i.record.name, None, Some(i), &i.record.description));
    }
    print!(
        "{}",
        printer::table(
            &[
                "NAME",
                "AVAILABLE",
                "INSTALLED",
                "STATE",
                "OBJECTS",
                "SOURCE",
                "DESCRIPTION"
            ],
            &rows
        )
    );
    for i in installed.iter().filter(|i| !i.record.message.is_empty()) {
        eprintln!("{}: {}", i.record.name, i.record.message);
    }
    Ok(())
}

fn row(
    name: &str,
    available: Option<&str>,
    installed: Option<&addons::Installed>,
    description: &str,
) -> Vec<String> {
    let dash = || "-".to_string();
    let (version, state, objects, source) = match installed {
        Some(i) => {
            let total = i.record.objects.len();
            let state = if i.record.state == addons::State::Installed && i.present < total {
                format!("Incomplete ({} missing)", total - i.present)
            } else {
                i.record.state.as_str().to_string()
            };
            (
                i.record.version.clone(),
                state,
                format!("{}/{total}", i.present),
                i.record.source.clone(),
            )
        }
        None => (dash(), dash(), dash(), "builtin".into()),
    };
    vec![
        name.to_string(),
        available.map_or_else(dash, str::to_string),
        version,
        state,
        objects,
        source,
        description.to_string(),
    ]
}

fn parse_set(set: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    set.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(anyhow!("--set {kv:?}: expected KEY=VALUE")),
        })
        .collect()
}

async fn enable(cli: &Cli, a: &AddonsEnableArgs) -> anyhow::Result<()> {
    let set = parse_set(&a.set)?;
    let bundle = pick(cli, a.name.as_deref(), a.from.as_deref()).await?;
    // Parameters and templates first: a broken bundle fails without a cluster.
    bundle.render(&ClusterFacts::default(), &set)?;
    let (client, cluster) = connect(cli)?;
    let facts = ClusterFacts::read(&client, cluster.as_deref()).await?;
    let params = Params { facts, set };
    if a.dry_run {
        let rendered = bundle.render(&params.facts, &params.set)?;
        for m in &rendered.objects {
            print!("---\n{}", printer::to_yaml(&m.object));
        }
        eprintln!(
            "add-on {} {}: {} checked; nothing was applied (--dry-run)",
            rendered.name,
            rendered.version,
            objects(rendered.objects.len())
        );
        return Ok(());
    }
    let report = addons::enable(&client, &bundle, &params).await?;
    for (r, outcome) in &report.objects {
        println!(
            "{}/{} {}",
            r.kind.name().to_lowercase(),
            r.name,
            outcome.as_str()
        );
    }
    let change = match &report.previous {
        Some(p) if *p != report.version => format!(" (was {p})"),
        _ => String::new(),
    };
    let kept = report
        .objects
        .iter()
        .filter(|(_, o)| *o != Outcome::Pruned)
        .count();
    println!(
        "add-on {} {}{change} enabled: {}, recorded in {}/{}",
        report.name,
        report.version,
        objects(kept),
        addons::RECORD_NAMESPACE,
        Record::config_map_name(&report.name)
    );
    Ok(())
}

async fn disable(cli: &Cli, a: &AddonsDisableArgs) -> anyhow::Result<()> {
    let (client, _) = connect(cli)?;
    let Some(report) = addons::disable(&client, &a.name).await? else {
        if Bundle::builtin(&a.name).is_ok() {
            eprintln!("add-on {} is not installed; nothing to do", a.name);
            return Ok(());
        }
        bail!(
            "add-on {:?} is not installed (and not a built-in one): `orkops addons list` shows what is",
            a.name
        );
    };
    let mut removed = 0;
    for (r, outcome) in &report.objects {
        match outcome {
            Outcome::Deleted => {
                removed += 1;
                println!("{} \"{}\" deleted", r.kind.name().to_lowercase(), r.name);
            }
            Outcome::Kept => eprintln!(
                "warning: {r} kept: it no longer carries the label {}={}",
                addons::ADDON_LABEL,
                a.name
            ),
            _ => {}
        }
    }
    println!(
        "add-on {} {} disabled: {} deleted, and its record",
        report.name,
        report.version,
        objects(removed)
    );
    Ok(())
}

fn objects(n: usize) -> String {
    if n == 1 {
        "1 object".into()
    } else {
        format!("{n} objects")
    }
}

/// The bundle a command names: `--from DIR` (whose addon.yaml must have `name`, if given), or
/// a built-in one (for a name installed from a directory, the hint says which).
async fn pick(
    cli: &Cli,
    name: Option<&str>,
    from: Option<&std::path::Path>,
) -> anyhow::Result<Bundle> {
    match (from, name) {
        (Some(dir), name) => {
            let b = Bundle::from_dir(dir)?;
            if let Some(n) = name.filter(|n| *n != b.name()) {
                bail!(
                    "{}: the bundle is named {:?} in its addon.yaml, not {n:?}; nothing was applied",
                    dir.display(),
                    b.name()
                );
            }
            Ok(b)
        }
        (None, Some(name)) => match Bundle::builtin(name) {
            Ok(b) => Ok(b),
            Err(e @ AddonError::UnknownBuiltin { .. }) => {
                if let Ok((client, _)) = connect(cli) {
                    if let Ok(Some(r)) = Record::read(&client, name).await {
                        bail!(
                            "{e}\nhint: {name} {} was enabled from {}: add --from {}",
                            r.version,
                            r.source,
                            r.source
                        );
                    }
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        },
        (None, None) => bail!("name an add-on (`orkops addons list`) or give --from DIR"),
    }
}

async fn describe(cli: &Cli, a: &AddonsDescribeArgs) -> anyhow::Result<()> {
    let bundle = match (&a.from, a.name.as_deref().map(Bundle::builtin)) {
        (None, Some(Err(AddonError::UnknownBuiltin { .. }))) => None,
        _ => Some(pick(cli, a.name.as_deref(), a.from.as_deref()).await?),
    };
    let name = match &bundle {
        Some(b) => b.name().to_string(),
        None => a.name.clone().unwrap_or_default(),
    };
    if let Some(b) = &bundle {
        describe_bundle(b)?;
    }
    let client = match connect(cli) {
        Ok((client, _)) => client,
        Err(e)
            if bundle.is_some()
                && matches!(
                    e.downcast_ref::<ConfigError>(),
                    Some(ConfigError::Missing { .. })
                ) =>
        {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let Some(i) = addons::installed(&client)
        .await?
        .into_iter()
        .find(|i| i.record.name == name)
    else {
        if bundle.is_none() {
            return Err(Bundle::builtin(&name).unwrap_err().into());
        }
        println!("Installed:    no");
        return Ok(());
    };
    let r = &i.record;
    if bundle.is_none() {
        println!("Name:         {}", r.name);
        println!("Description:  {}", r.description);
    }
    println!(
        "Installed:    {} from {}, {} ({}/{} objects present), record {}/{} updated {}",
        r.version,
        r.source,
        r.state.as_str(),
        i.present,
        r.objects.len(),
        addons::RECORD_NAMESPACE,
        Record::config_map_name(&r.name),
        r.updated
    );
    if !r.message.is_empty() {
        println!("Message:      {}", r.message);
    }
    println!("Values:");
    for (k, v) in &r.parameters {
        println!("  {k}={v}");
    }
    println!("Installed objects:");
    for o in &r.objects {
        println!("  {o}");
    }
    Ok(())
}

fn describe_bundle(bundle: &Bundle) -> anyhow::Result<()> {
    let m = &bundle.meta;
    println!("Name:         {}", m.name);
    println!("Version:      {}", m.version);
    println!("Source:       {}", bundle.source);
    println!("Description:  {}", m.description);
    println!("Parameters:   (--set NAME=VALUE)");
    let rows: Vec<Vec<String>> = m
        .parameters
        .iter()
        .map(|p| {
            let d = match &p.default {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                serde_yaml_ng::Value::Bool(v) => v.to_string(),
                _ => String::new(),
            };
            vec![
                p.name.clone(),
                p.type_.to_string(),
                d,
                p.description.clone(),
            ]
        })
        .collect();
    for l in printer::table(&["NAME", "TYPE", "DEFAULT", "DESCRIPTION"], &rows).lines() {
        println!("  {l}");
    }
    println!(
        "Cluster facts: {} (read from the cluster)",
        crate::addons::bundle::FACTS.join(", ")
    );
    let rendered = bundle.render(&ClusterFacts::default(), &[])?;
    println!("Objects:      (with the defaults)");
    for o in &rendered.objects {
        println!("  {}", addons::ObjectRef::of(o));
    }
    Ok(())
}
