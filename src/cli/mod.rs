//! The `orkops` command line: resolves flags and the client config into settings, then runs
//! the workload commands (apply, get, describe, delete, api-resources) through the API.

mod addons;
pub mod args;
pub mod cluster;
mod drain;
mod join;
pub(crate) mod kubeconfig;
pub mod manifest;
pub(crate) mod nodes;
mod plugins;
pub mod printer;
pub mod progress;
pub mod state;
mod stream;
mod workloads;

use std::io::Write;

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::api::labels::{self, Selector};
use crate::api::{self, Kind};
use crate::client::{ApiClient, ClientConfig, ClientError};
use args::{ApplyArgs, Cli, Command, DeleteArgs, DescribeArgs, GetArgs, Output};
use manifest::Manifest;

/// Settings shared by the workload commands, resolved once.
struct Session {
    client: ApiClient,
    /// The namespace from `-n`, when given.
    explicit_ns: Option<String>,
    /// `-n`, else the config's namespace, else `default`.
    namespace: String,
}

impl Session {
    fn open(cli: &Cli) -> anyhow::Result<Session> {
        let path = ClientConfig::locate(cli.config.as_deref())?;
        let cfg = ClientConfig::load(&path)?;
        let client =
            ApiClient::new(&cfg).with_context(|| format!("client config {}", path.display()))?;
        if let Some(ns) = &cli.namespace {
            if !labels::is_dns_label(ns) {
                bail!("--namespace {ns:?} is not a valid namespace name (lower-case letters, digits and '-')");
            }
        }
        let namespace = cli
            .namespace
            .clone()
            .or(cfg.namespace.clone())
            .unwrap_or_else(|| "default".into());
        Ok(Session {
            client,
            explicit_ns: cli.namespace.clone(),
            namespace,
        })
    }

    fn ns_for(&self, kind: Kind) -> Option<&str> {
        kind.namespaced().then_some(self.namespace.as_str())
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::ApiResources => {
            api_resources();
            Ok(())
        }
        Command::Addons(a) => addons::run(&cli, a).await,
        Command::Plugin(args::PluginCommand::List) => plugins::list(),
        Command::External(a) => plugins::run(&cli, a),
        Command::Apply(a) => apply(&Session::open(&cli)?, a).await,
        Command::Get(a) if matches!(a.kind.as_str(), "cluster" | "clusters") => {
            cluster::list().await
        }
        Command::Get(a) => get(&Session::open(&cli)?, a).await,
        Command::Describe(a)
            if matches!(a.kind.split('/').next(), Some("cluster" | "clusters")) =>
        {
            cluster::describe(a).await
        }
        Command::Describe(a) => describe(&Session::open(&cli)?, a).await,
        Command::Delete(a) if matches!(a.kind.as_deref(), Some("cluster" | "clusters")) => {
            cluster::delete(a).await
        }
        Command::Delete(a) => delete(&Session::open(&cli)?, a).await,
        Command::Create(args::CreateCommand::Cluster(a)) => cluster::create(&cli, a).await,
        Command::Create(args::CreateCommand::JoinToken(a)) => join::create(&cli, a).await,
        Command::Update(args::UpdateCommand::Cluster(a)) => cluster::update(&cli, a).await,
        Command::Validate(args::ValidateCommand::Cluster(a)) => cluster::validate(&cli, a).await,
        Command::Export(args::ExportCommand::Config(a)) => cluster::export_config(&cli, a).await,
        Command::Export(args::ExportCommand::Kubeconfig(a)) => kubeconfig::export(&cli, a),
        Command::Ssh(a) => cluster::ssh(a).await,
        Command::Logs(a) => stream::logs(&Session::open(&cli)?, a).await,
        Command::Exec(a) => stream::exec(&Session::open(&cli)?, a).await,
        Command::Image(args::ImageCommand::Load(a)) => {
            stream::image_load(&Session::open(&cli)?, a).await
        }
        Command::Scale(a) => workloads::scale(&Session::open(&cli)?, a).await,
        Command::Cordon(a) => drain::cordon(&Session::open(&cli)?, &a.node, true).await,
        Command::Uncordon(a) => drain::cordon(&Session::open(&cli)?, &a.node, false).await,
        Command::Drain(a) => drain::drain(&Session::open(&cli)?, a).await,
        Command::Rollout(args::RolloutCommand::Status(a)) => {
            workloads::rollout_status(&Session::open(&cli)?, a).await
        }
        Command::Rollout(args::RolloutCommand::Restart(a)) => {
            workloads::rollout_restart(&Session::open(&cli)?, a).await
        }
        Command::Rollout(args::RolloutCommand::History(a)) => {
            workloads::rollout_history(&Session::open(&cli)?, a).await
        }
        Command::Rollout(args::RolloutCommand::Undo(a)) => {
            workloads::rollout_undo(&Session::open(&cli)?, a).await
        }
        Command::Run(a) => workloads::run(&Session::open(&cli)?, a).await,
        Command::Shell(a) => {
            let name = format!("shell-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
            let run = args::RunArgs {
                name,
                image: a.image.clone(),
                rm: true,
                stdin: true,
                tty: true,
                restart: None,
                env: Vec::new(),
                command: vec!["sh".into()],
            };
            workloads::run(&Session::open(&cli)?, &run).await
        }
    }
}

fn api_resources() {
    let rows: Vec<Vec<String>> = Kind::all()
        .map(|k| {
            vec![
                k.plural().to_string(),
                k.short_names().join(","),
                k.api_version().to_string(),
                k.namespaced().to_string(),
                k.name().to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        printer::table(
            &["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
            &rows
        )
    );
}

/// Parses `pods`, `pod/web`, `deploy,svc` plus names into (kind, name) targets.
fn targets(kind_arg: &str, names: &[String]) -> anyhow::Result<Vec<(Kind, Option<String>)>> {
    let lookup = |w: &str| {
        Kind::lookup(w).ok_or_else(|| {
            anyhow!("unknown kind {w:?}: see `orkops api-resources` for the kinds this server has")
        })
    };
    if let Some((k, n)) = kind_arg.split_once('/') {
        if !names.is_empty() {
            bail!("give either KIND/NAME or KIND NAME..., not both");
        }
        return Ok(vec![(lookup(k)?, Some(n.to_string()))]);
    }
    let kinds = kind_arg
        .split(',')
        .map(lookup)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if names.is_empty() {
        return Ok(kinds.into_iter().map(|k| (k, None)).collect());
    }
    if kinds.len() > 1 {
        bail!("names can only be given with a single kind");
    }
    Ok(names.iter().map(|n| (kinds[0], Some(n.clone()))).collect())
}

fn list_query(
    selector: &Option<String>,
    field_selector: &Option<String>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut q = Vec::new();
    if let Some(s) = selector {
        Selector::parse(s).map_err(|e| anyhow!("-l/--selector: {e}"))?;
        q.push(("labelSelector", s.clone()));
    }
    if let Some(f) = field_selector {
        labels::parse_field_selector(f).map_err(|e| anyhow!("--field-selector: {e}"))?;
        q.push(("fieldSelector", f.clone()));
    }
    Ok(q)
}

fn items(list: Value) -> Vec<Value> {
    match list {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The objects a get/describe names: each named one, or the selected members of each kind.
async fn fetch(
    s: &Session,
    targets: &[(Kind, Option<String>)],
    query: &[(&str, String)],
    all_namespaces: bool,
) -> (Vec<(Kind, Vec<Value>)>, Vec<String>) {
    let mut out: Vec<(Kind, Vec<Value>)> = Vec::new();
    let mut errors = Vec::new();
    for (kind, name) in targets {
        let ns = if all_namespaces {
            None
        } else {
            s.ns_for(*kind)
        };
        let got = match name {
            Some(n) => s
                .client
                .get(*kind, s.ns_for(*kind), n)
                .await
                .map(|v| vec![v]),
            None => s.client.list(*kind, ns, query).await.map(items),
        };
        match got {
            Ok(objs) => match out.iter_mut().find(|(k, _)| k == kind) {
                Some((_, v)) => v.extend(objs),
                None => out.push((*kind, objs)),
            },
            Err(e) => errors.push(e.to_string()),
        }
    }
    (out, errors)
}

fn finish(errors: Vec<String>) -> anyhow::Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(anyhow!(errors.into_iter().next().unwrap_or_default())),
        _ => Err(anyhow!(errors.join("\nerror: "))),
    }
}

async fn get(s: &Session, a: &GetArgs) -> anyhow::Result<()> {
    let targets = targets(&a.kind, &a.names)?;
    let query = list_query(&a.selector, &a.field_selector)?;
    if a.watch && (targets.len() != 1 || targets[0].1.is_some()) {
        bail!("--watch works with one kind and no names (use --field-selector metadata.name=NAME for one object)");
    }
    let (found, errors) = fetch(s, &targets, &query, a.all_namespaces).await;
    let now = Utc::now();
    let mut stdout = std::io::stdout().lock();
    match a.output {
        Some(Output::Yaml) | Some(Output::Json) => {
            let objs: Vec<Value> = found.iter().flat_map(|(_, v)| v.iter().cloned()).collect();
            let single = targets.iter().all(|(_, n)| n.is_some()) && objs.len() == 1;
            let doc = if single {
                objs[0].clone()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": objs})
            };
            write_doc(&mut stdout, &doc, a.output == Some(Output::Json))?;
        }
        Some(Output::Name) => {
            for (kind, objs) in &found {
                for o in objs {
                    writeln!(stdout, "{}/{}", kind.name().to_lowercase(), api::name_of(o))?;
                }
            }
        }
        None | Some(Output::Wide) => {
            let wide = a.output == Some(Output::Wide);
            let mut first = true;
            for (kind, objs) in &found {
                if objs.is_empty() {
                    continue;
                }
                if !first {
                    writeln!(stdout)?;
                }
                first = false;
                writeln!(
                    stdout,
                    "{}",
                    render(*kind, objs, wide, a.all_namespaces, found.len() > 1, now).trim_end()
                )?;
            }
            if found.iter().all(|(_, v)| v.is_empty()) && errors.is_empty() && !a.watch {
                let scope = if a.all_namespaces || targets.iter().all(|(k, _)| !k.namespaced()) {
                    String::new()
                } else {
                    format!(" in {} namespace", s.namespace)
                };
                eprintln!("No resources found{scope}.");
            }
        }
    }
    stdout.flush()?;
    drop(stdout);
    if !errors.is_empty() || !a.watch {
        return finish(errors);
    }
    watch(s, a, &query, &found).await
}

/// Prints a table of `objs`; with `all_ns` a NAMESPACE column, with `prefix` kind/name names.
fn render(
    kind: Kind,
    objs: &[Value],
    wide: bool,
    all_ns: bool,
    prefix: bool,
    now: chrono::DateTime<Utc>,
) -> String {
    let mut headers = printer::headers(kind, wide);
    let mut rows: Vec<Vec<String>> = objs
        .iter()
        .map(|o| printer::row(kind, o, wide, now))
        .collect();
    if prefix && kind != Kind::Event {
        for r in &mut rows {
            r[0] = format!("{}/{}", kind.name().to_lowercase(), r[0]);
        }
    }
    if all_ns && kind.namespaced() {
        headers.insert(0, "NAMESPACE".to_string());
        for (r, o) in rows.iter_mut().zip(objs) {
            r.insert(0, api::namespace_of(o).to_string());
        }
    }
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    printer::table(&headers, &rows)
}

fn write_doc(out: &mut impl Write, doc: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(doc)?)?;
    } else {
        write!(out, "{}", printer::to_yaml(doc))?;
    }
    Ok(())
}

/// How long `get --watch` keeps opening a watch that ended before it gives up.
const REWATCH_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a watch that ended with `e` is worth opening again (the server or its store went
/// away for a while), as opposed to a refusal that will not change.
fn rewatchable(e: &ClientError) -> bool {
    match e {
        ClientError::Api(st) => matches!(st.code, 429 | 500 | 502 | 503 | 504),
        ClientError::Unreachable { .. } | ClientError::Protocol(_) => true,
    }
}

/// Prints changes as they come, like `kubectl get -w`: a watch that ends is opened again after
/// the last resourceVersion printed, and one whose version is too old (410) lists again.
async fn watch(
    s: &Session,
    a: &GetArgs,
    query: &[(&str, String)],
    found: &[(Kind, Vec<Value>)],
) -> anyhow::Result<()> {
    let kind = targets(&a.kind, &[])?[0].0;
    let ns = if a.all_namespaces {
        None
    } else {
        s.ns_for(kind)
    };
    // resume after what was just printed; nothing printed: the watch lists first
    let mut rv = found
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter_map(api::resource_version_of)
        .max();
    let mut printed_header = found.iter().any(|(_, v)| !v.is_empty());
    let mut failing_since: Option<std::time::Instant> = None;
    let mut pause = std::time::Duration::from_millis(200);
    loop {
        let mut q = query.to_vec();
        if let Some(rv) = rv {
            q.push(("resourceVersion", rv.to_string()));
        }
        let ended = match s.client.watch(kind, ns, &q).await {
            Ok(mut events) => loop {
                match events.next().await {
                    Some(Ok(ev)) => {
                        failing_since = None;
                        pause = std::time::Duration::from_millis(200);
                        rv = api::resource_version_of(&ev.object).or(rv);
                        print_event(a, kind, &ev.object, &mut printed_header)?;
                    }
                    Some(Err(e)) => break Some(e),
                    None => break None,
                }
            },
            Err(e) => Some(e),
        };
        match &ended {
            Some(e) if e.code() == Some(410) => {
                rv = None;
                continue;
            }
            Some(e) if !rewatchable(e) => return Err(anyhow!("{e}")),
            _ => {}
        }
        let since = *failing_since.get_or_insert_with(std::time::Instant::now);
        if since.elapsed() > REWATCH_FOR {
            let why = ended
                .map(|e| e.to_string())
                .unwrap_or("the server ended it".into());
            bail!(
                "the watch could not be opened again for {}s: {why}",
                REWATCH_FOR.as_secs()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Prints one watched object in the format `get` was asked for.
fn print_event(
    a: &GetArgs,
    kind: Kind,
    obj: &Value,
    printed_header: &mut bool,
) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match a.output {
        Some(Output::Yaml) => write!(stdout, "---\n{}", printer::to_yaml(obj))?,
        Some(Output::Json) => writeln!(stdout, "{}", serde_json::to_string(obj)?)?,
        Some(Output::Name) => writeln!(
            stdout,
            "{}/{}",
            kind.name().to_lowercase(),
            api::name_of(obj)
        )?,
        _ => {
            let wide = a.output == Some(Output::Wide);
            let text = render(
                kind,
                std::slice::from_ref(obj),
                wide,
                a.all_namespaces,
                false,
                Utc::now(),
            );
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            if !*printed_header {
                writeln!(stdout, "{header}")?;
                *printed_header = true;
            }
            for l in lines {
                writeln!(stdout, "{l}")?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

async fn describe(s: &Session, a: &DescribeArgs) -> anyhow::Result<()> {
    let targets = targets(&a.kind, &a.names)?;
    let query = list_query(&a.selector, &None)?;
    let (found, errors) = fetch(s, &targets, &query, a.all_namespaces).await;
    let now = Utc::now();
    let mut first = true;
    for (kind, objs) in &found {
        for o in objs {
            let events = if *kind == Kind::Event {
                Vec::new()
            } else {
                let q = vec![(
                    "fieldSelector",
                    format!(
                        "involvedObject.kind={},involvedObject.name={}",
                        kind.name(),
                        api::name_of(o)
                    ),
                )];
                let ns = kind
                    .namespaced()
                    .then(|| api::namespace_of(o))
                    .filter(|n| !n.is_empty())
                    .unwrap_or("default");
                let mut evs = s
                    .client
                    .list(Kind::Event, Some(ns), &q)
                    .await
                    .map(items)
                    .unwrap_or_default();
                evs.sort_by(|x, y| {
                    let t = |e: &Value| {
                        e["lastTimestamp"]
                            .as_str()
                            .or(e
                                .pointer("/metadata/creationTimestamp")
                                .and_then(Value::as_str))
                            .unwrap_or("")
                            .to_string()
                    };
                    t(x).cmp(&t(y))
                });
                evs
            };
            if !first {
                println!();
            }
            first = false;
            print!("{}", printer::describe(*kind, o, &events, now));
        }
    }
    if first && errors.is_empty() {
        eprintln!("No resources found in {} namespace.", s.namespace);
    }
    finish(errors)
}

/// Apply order: namespaces first, then what pods refer to, then the rest, as written.
fn apply_rank(k: Kind) -> u8 {
    match k {
        Kind::Namespace | Kind::StorageClass => 0,
        Kind::ConfigMap | Kind::Secret | Kind::PersistentVolume | Kind::PersistentVolumeClaim => 1,
        Kind::Service => 2,
        _ => 3,
    }
}

/// Checks that no manifest's namespace contradicts `-n`, and gives each its namespace.
fn place(s: &Session, manifests: &mut [Manifest]) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for m in manifests.iter_mut() {
        if !m.kind.namespaced() {
            continue;
        }
        let own = api::namespace_of(&m.object).to_string();
        match (&s.explicit_ns, own.is_empty()) {
            (Some(flag), false) if *flag != own => errors.push(format!(
                "{}: the object's namespace {own:?} does not match --namespace {flag:?}; drop -n or change metadata.namespace",
                m.source
            )),
            (_, true) => api::set_meta(&mut m.object, "namespace", json!(s.namespace)),
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

async fn apply(s: &Session, a: &ApplyArgs) -> anyhow::Result<()> {
    let mut manifests =
        manifest::load(&a.files, a.recursive).map_err(|e| anyhow!("{e}\nnothing was applied"))?;
    place(s, &mut manifests).map_err(|e| anyhow!("{e}\nnothing was applied"))?;
    manifests.sort_by_key(|m| apply_rank(m.kind));
    let mut errors = Vec::new();
    for m in &manifests {
        match apply_one(s, m).await {
            Ok(verb) => println!(
                "{}/{} {verb}",
                m.kind.name().to_lowercase(),
                api::name_of(&m.object)
            ),
            Err(e) => errors.push(format!("{} ({}): {e}", m.source, m.describe())),
        }
    }
    finish(errors)
}

/// Creates the object, or replaces the existing one's spec; says which.
async fn apply_one(s: &Session, m: &Manifest) -> Result<&'static str, ClientError> {
    let ns = m.kind.namespaced().then(|| api::namespace_of(&m.object));
    let mut body = m.object.clone();
    api::clear_server_fields(&mut body);
    if body.pointer("/metadata/generateName").is_some() && api::name_of(&body).is_empty() {
        s.client.create(m.kind, ns, &body).await?;
        return Ok("created");
    }
    for _ in 0..3 {
        let current = match s.client.get(m.kind, ns, api::name_of(&body)).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => match s.client.create(m.kind, ns, &body).await {
                Ok(_) => return Ok("created"),
                Err(e) if e.code() == Some(409) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        api::set_meta(&mut body, "resourceVersion", rv.clone());
        api::keep_controller_annotations(&mut body, &current);
        match s
            .client
            .replace(m.kind, ns, api::name_of(&body), &body)
            .await
        {
            Ok(updated) => {
                let same = updated.pointer("/metadata/resourceVersion") == Some(&rv);
                return Ok(if same { "unchanged" } else { "configured" });
            }
            Err(e) if e.code() == Some(409) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Protocol(
        "the object kept changing while it was applied; try again".into(),
    ))
}

async fn delete(s: &Session, a: &DeleteArgs) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(g) = a.grace_period {
        if g < 0 {
            bail!("--grace-period must be 0 or more seconds");
        }
        query.push(("gracePeriodSeconds", g.to_string()));
    }
    let mut todo: Vec<(Kind, Option<String>, String)> = Vec::new();
    match (&a.kind, a.files.is_empty()) {
        (None, false) => {
            let mut manifests = manifest::load(&a.files, a.recursive)
                .map_err(|e| anyhow!("{e}\nnothing was deleted"))?;
            place(s, &mut manifests).map_err(|e| anyhow!("{e}\nnothing was deleted"))?;
            manifests.sort_by_key(|m| std::cmp::Reverse(apply_rank(m.kind)));
            for m in manifests {
                let ns = m
                    .kind
                    .namespaced()
                    .then(|| api::namespace_of(&m.object).to_string());
                todo.push((m.kind, ns, api::name_of(&m.object).to_string()));
            }
        }
        (Some(kind), true) => {
            let ts = targets(kind, &a.names)?;
            let named = ts.iter().all(|(_, n)| n.is_some());
            if !named && a.selector.is_none() {
                bail!(
                    "name the objects to delete (KIND NAME..., KIND/NAME) or select them with -l"
                );
            }
            let q = list_query(&a.selector, &None)?;
            for (k, n) in ts {
                let ns = s.ns_for(k).map(str::to_string);
                match n {
                    Some(n) => todo.push((k, ns, n)),
                    None => {
                        let list = s.client.list(k, ns.as_deref(), &q).await?;
                        for o in items(list) {
                            todo.push((k, ns.clone(), api::name_of(&o).to_string()));
                        }
                    }
                }
            }
        }
        (Some(_), false) => bail!("give either KIND NAME... or -f FILE, not both"),
        (None, true) => bail!("nothing to delete: give KIND NAME..., KIND -l SELECTOR, or -f FILE"),
    }
    let mut errors = Vec::new();
    let mut stopping = Vec::new();
    for (kind, ns, name) in todo {
        match s.client.delete(kind, ns.as_deref(), &name, &query).await {
            Ok(obj) => {
                println!("{} \"{name}\" deleted", kind.name().to_lowercase());
                if let Some(g) = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                {
                    stopping.push((kind, ns, name, obj.pointer("/metadata/uid").cloned(), g));
                }
            }
            Err(e) if e.is_not_found() && a.ignore_not_found => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    // like kubectl: wait until what stops gracefully is really gone (its node confirms)
    for (kind, ns, name, uid, grace) in stopping.into_iter().filter(|_| a.wait) {
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(grace.max(0) as u64 + 60);
        loop {
            match s.client.get(kind, ns.as_deref(), &name).await {
                Err(e) if e.is_not_found() => break,
                Ok(o) if o.pointer("/metadata/uid").cloned() != uid => break,
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
                Ok(_) if std::time::Instant::now() > deadline => {
                    errors.push(format!(
                        "{} {name:?} is still stopping after {}s: is the agent of its node running? (`orkops get nodes`)",
                        kind.name().to_lowercase(),
                        grace + 60
                    ));
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }
    finish(errors)
}
