//! The two ways a cluster is extended, through the CLI against a real master (and, where pods
//! must run, a real agent on Docker): add-ons (`orkops addons ...`, and the library function
//! `create cluster --addons` calls) and CLI plugins (`orkops NAME` runs `orkops-NAME`).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{wait_until, Agent, Master};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(120);
const LABEL: &str = "orkops.io/addon";

fn items(v: Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Every object of the kinds a bundle may hold that carries `orkops.io/addon=NAME`, as
/// `Kind ns/name`.
fn labelled(m: &Master, name: &str) -> BTreeSet<String> {
    let list = m
        .orkops(&[
            "get",
            "pods,deployments,services,configmaps,secrets,jobs,cronjobs,pvc",
            "-A",
            "-l",
            &format!("{LABEL}={name}"),
            "-o",
            "json",
        ])
        .json();
    items(list)
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// The record of an add-on, or None.
fn record(m: &Master, name: &str) -> Option<Value> {
    let r = m.orkops(&[
        "get",
        "configmap",
        &format!("addon-{name}"),
        "-n",
        "orkops-system",
        "-o",
        "json",
    ]);
    r.ok().then(|| serde_json::from_str(&r.stdout()).unwrap())
}

fn recorded_objects(rec: &Value) -> BTreeSet<String> {
    rec["data"]["objects"]
        .as_str()
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn ready(p: &Value) -> bool {
    p.pointer("/metadata/deletionTimestamp").is_none()
        && p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn ready_pods(m: &Master, ns: &str, selector: &str) -> Vec<Value> {
    items(
        m.orkops(&["get", "pods", "-n", ns, "-l", selector, "-o", "json"])
            .json(),
    )
    .into_iter()
    .filter(ready)
    .collect()
}

fn http_get(ip: &str, port: u16) -> String {
    let mut s = std::net::TcpStream::connect((ip, port)).expect("the pod answers");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A bundle directory of the test's own: `addon.yaml` plus the given files.
fn bundle(dir: &Path, meta: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("addon.yaml"), meta).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn meta(name: &str, version: &str) -> String {
    format!(
        "apiVersion: orkops.io/v1\nkind: Addon\nname: {name}\nversion: {version}\ndescription: a test bundle\nparameters:\n- name: greeting\n  default: hi\n"
    )
}

fn config_map(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: {{{{ greeting }}}}\n")
}

fn all_config_maps(m: &Master) -> BTreeSet<String> {
    items(m.orkops(&["get", "configmaps", "-A", "-o", "json"]).json())
        .iter()
        .map(|o| {
            format!(
                "{}/{}@{}",
                o["metadata"]["namespace"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
                o["metadata"]["resourceVersion"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn hello_runs_labelled_enabling_twice_changes_nothing_and_disable_removes_every_object() {
    let m = Master::start();
    let _a = Agent::start(&m);
    let out = m
        .orkops(&[
            "addons",
            "enable",
            "hello",
            "--set",
            "replicas=2",
            "--set",
            "message=hi from the addons test",
        ])
        .success();
    assert!(out.contains("service/hello created"), "{out}");
    assert!(out.contains("deployment/hello created"), "{out}");
    assert!(out.contains("add-on hello 1.0.0 enabled"), "{out}");
    wait_until("2 ready hello pods", LONG, || {
        ready_pods(&m, "default", &format!("{LABEL}=hello")).len() == 2
    });

    // the objects carry the label and the version; the record lists exactly them
    for kind in ["deployment", "service"] {
        let o = m.orkops(&["get", kind, "hello", "-o", "json"]).json();
        assert_eq!(o["metadata"]["labels"][LABEL], "hello", "{o}");
        assert_eq!(
            o["metadata"]["annotations"]["orkops.io/addon-version"],
            "1.0.0"
        );
    }
    let svc = m.orkops(&["get", "service", "hello", "-o", "json"]).json();
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert!(svc["spec"]["ports"][0]["nodePort"].as_i64().is_some());
    let rec = record(&m, "hello").expect("the record");
    assert_eq!(rec["data"]["state"], "Installed");
    assert_eq!(rec["data"]["version"], "1.0.0");
    let mine: BTreeSet<String> = ["Service default/hello", "Deployment default/hello"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(recorded_objects(&rec), mine);
    let pods = labelled(&m, "hello");
    assert_eq!(
        pods.len(),
        4,
        "2 pods, the deployment, the service: {pods:?}"
    );

    // it serves its page, with the parameter and the cluster's name
    let pod = &ready_pods(&m, "default", "app=hello")[0];
    let page = http_get(pod["status"]["podIP"].as_str().unwrap(), 8080);
    assert!(page.contains("<h1>hi from the addons test</h1>"), "{page}");
    assert!(page.contains("cluster test"), "{page}");

    // a second enable with the same parameters changes nothing
    let before = |kind: &str| {
        let o = m.orkops(&["get", kind, "hello", "-o", "json"]).json();
        (
            o["metadata"]["uid"].clone(),
            o["metadata"]["resourceVersion"].clone(),
        )
    };
    let (d0, s0) = (before("deployment"), before("service"));
    let out = m
        .orkops(&[
            "addons",
            "enable",
            "hello",
            "--set",
            "replicas=2",
            "--set",
            "message=hi from the addons test",
        ])
        .success();
    assert!(out.contains("service/hello unchanged"), "{out}");
    assert!(out.contains("deployment/hello unchanged"), "{out}");
    assert_eq!((before("deployment"), before("service")), (d0, s0));
    assert_eq!(labelled(&m, "hello"), pods, "the same pods");
    let list = m.orkops(&["addons", "list"]).success();
    let line = list.lines().find(|l| l.starts_with("hello ")).unwrap();
    for want in ["1.0.0", "Installed", "2/2", "builtin"] {
        assert!(line.contains(want), "{want} in {list}");
    }

    // disable removes every object it made (and the pods they made), and the record
    let out = m.orkops(&["addons", "disable", "hello"]).success();
    assert!(out.contains("deployment \"hello\" deleted"), "{out}");
    assert!(out.contains("service \"hello\" deleted"), "{out}");
    assert!(record(&m, "hello").is_none());
    for r in &mine {
        let (kind, name) = r.split_once(" default/").unwrap();
        let got = m.orkops(&["get", kind, name]);
        assert!(!got.ok(), "{r} is gone");
    }
    wait_until("nothing labelled hello", LONG, || {
        labelled(&m, "hello").is_empty()
    });
    let again = m.orkops(&["addons", "disable", "hello"]);
    assert!(again.ok() && again.stderr().contains("not installed"));

    // enable brings it back
    let out = m.orkops(&["addons", "enable", "hello"]).success();
    assert!(out.contains("deployment/hello created"), "{out}");
    wait_until("the default 2 replicas ready again", LONG, || {
        ready_pods(&m, "default", "app=hello").len() == 2
    });
    assert_eq!(recorded_objects(&record(&m, "hello").unwrap()), mine);
    m.orkops(&["addons", "disable", "hello"]).success();
    wait_until("nothing labelled hello", LONG, || {
        labelled(&m, "hello").is_empty()
    });
}

#[test]
fn the_toolbox_pod_answers_check_from_inside_the_cluster() {
    let m = Master::start();
    let _a = Agent::start(&m);
    m.orkops(&["addons", "enable", "toolbox"]).success();
    m.orkops(&["addons", "enable", "hello", "--set", "replicas=1"])
        .success();
    wait_until("the toolbox and a hello pod ready", LONG, || {
        ready_pods(&m, "orkops-system", "app=toolbox").len() == 1
            && ready_pods(&m, "default", "app=hello").len() == 1
    });
    let usage = m.orkops(&["exec", "-n", "orkops-system", "toolbox", "--", "check"]);
    assert_eq!(usage.0.status.code(), Some(2));
    assert!(usage.stderr().contains("usage: check HOST [PORT]"));
    let ip = ready_pods(&m, "default", "app=hello")[0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let out = m
        .orkops(&[
            "exec",
            "-n",
            "orkops-system",
            "toolbox",
            "--",
            "check",
            &ip,
            "8080",
        ])
        .success();
    assert!(out.contains(&format!("tcp: {ip}:8080 open")), "{out}");
    let closed = m.orkops(&[
        "exec",
        "-n",
        "orkops-system",
        "toolbox",
        "--",
        "check",
        &ip,
        "9",
    ]);
    assert_eq!(closed.0.status.code(), Some(1), "{}", closed.stdout());
    // a lost object shows in the list, and enable brings it back
    m.orkops(&[
        "delete",
        "pod",
        "toolbox",
        "-n",
        "orkops-system",
        "--grace-period",
        "0",
    ])
    .success();
    wait_until("the list to show the toolbox incomplete", LONG, || {
        let list = m.orkops(&["addons", "list"]).success();
        list.lines()
            .any(|l| l.starts_with("toolbox ") && l.contains("Incomplete (1 missing)"))
    });
    let out = m.orkops(&["addons", "enable", "toolbox"]).success();
    assert!(out.contains("pod/toolbox created"), "{out}");
    assert!(out.contains("configmap/toolbox unchanged"), "{out}");
    m.orkops(&["addons", "disable", "toolbox"]).success();
    m.orkops(&["addons", "disable", "hello"]).success();
    wait_until("nothing labelled", LONG, || {
        labelled(&m, "toolbox").is_empty() && labelled(&m, "hello").is_empty()
    });
}

/// On the pod network (`--network orkops`, a host of its own: needs root), the toolbox finds
/// the hello service by name through the node's DNS and connects through its ClusterIP.
#[test]
fn on_the_pod_network_the_toolbox_resolves_and_reaches_the_hello_service() {
    use common::hosts::{assert_no_leftovers, Host, Lan};
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    let host = Host::start(&lan, &m, 0, &["--network", "orkops"]);
    let names = [lan.name.clone(), host.name.clone()];
    m.orkops(&["addons", "enable", "hello", "--set", "replicas=1"])
        .success();
    m.orkops(&["addons", "enable", "toolbox"]).success();
    wait_until("the toolbox and hello ready", LONG, || {
        ready_pods(&m, "orkops-system", "app=toolbox").len() == 1
            && ready_pods(&m, "default", "app=hello").len() == 1
    });
    let cluster_ip = m.orkops(&["get", "service", "hello", "-o", "json"]).json()["spec"]
        ["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let check = |args: &[&str]| {
        let mut a = vec!["exec", "-n", "orkops-system", "toolbox", "--", "check"];
        a.extend_from_slice(args);
        m.orkops(&a)
    };
    // the agent programs the service and its endpoint a moment after the pods are ready
    let start = std::time::Instant::now();
    let out = loop {
        let r = check(&["hello.default", "80"]);
        if r.ok() || start.elapsed() > LONG {
            assert!(
                r.ok(),
                "check hello.default 80: {}{}",
                r.stdout(),
                r.stderr()
            );
            break r.stdout();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        out.contains(&format!(
            "dns: hello.default.svc.cluster.local -> {cluster_ip}"
        )),
        "{out}"
    );
    assert!(out.contains("tcp: hello.default:80 open"), "{out}");
    let missing = check(&["nosuch.default", "80"]);
    assert_eq!(missing.0.status.code(), Some(1));
    assert!(
        missing.stdout().contains("does not resolve"),
        "{}",
        missing.stdout()
    );

    m.orkops(&["addons", "disable", "toolbox"]).success();
    m.orkops(&["addons", "disable", "hello"]).success();
    wait_until("nothing labelled", LONG, || {
        labelled(&m, "toolbox").is_empty() && labelled(&m, "hello").is_empty()
    });
    drop(host);
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}

#[test]
fn a_user_bundle_with_a_yaml_syntax_error_is_refused_with_file_and_line_and_changes_nothing() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("mine");
    bundle(
        &b,
        &meta("mine", "0.1.0"),
        &[
            ("a-good.yaml", &config_map("mine-good")),
            (
                "b-bad.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine-bad\ndata:\n  x: a: b\n",
            ),
        ],
    );
    let before = all_config_maps(&m);
    let err = m
        .orkops(&["addons", "enable", "--from", b.to_str().unwrap()])
        .failure();
    let bad = b.join("b-bad.yaml");
    assert!(
        err.contains(&format!("{}:6:", bad.display())),
        "file and line in {err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(all_config_maps(&m), before, "nothing changed");
    assert!(record(&m, "mine").is_none());

    // a template error names its line too
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine-bad\ndata:\n  x: {{ greeting | }}\n",
    )
    .unwrap();
    let err = m
        .orkops(&["addons", "enable", "--from", b.to_str().unwrap()])
        .failure();
    assert!(
        err.contains(&format!("{}:6:", bad.display())) && err.contains("template syntax"),
        "{err}"
    );
    assert_eq!(all_config_maps(&m), before, "nothing changed");
}

#[test]
fn unknown_fields_and_unknown_set_keys_are_refused_naming_them() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("mine");
    bundle(
        &b,
        &meta("mine", "0.1.0"),
        &[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine\n  lables: {a: b}\n",
        )],
    );
    let before = all_config_maps(&m);
    let from = b.to_str().unwrap();
    let err = m.orkops(&["addons", "enable", "--from", from]).failure();
    assert!(
        err.contains(&format!("{}:5:", b.join("cm.yaml").display())) && err.contains("lables"),
        "{err}"
    );
    // an unknown field in addon.yaml
    std::fs::write(b.join("cm.yaml"), config_map("mine")).unwrap();
    std::fs::write(
        b.join("addon.yaml"),
        meta("mine", "0.1.0") + "maintainer: me\n",
    )
    .unwrap();
    let err = m.orkops(&["addons", "enable", "--from", from]).failure();
    assert!(
        err.contains(&format!("{}:9:", b.join("addon.yaml").display()))
            && err.contains("maintainer"),
        "{err}"
    );
    // --set of a parameter the bundle does not have
    std::fs::write(b.join("addon.yaml"), meta("mine", "0.1.0")).unwrap();
    let err = m
        .orkops(&["addons", "enable", "--from", from, "--set", "greting=x"])
        .failure();
    assert!(
        err.contains("--set greting") && err.contains("its parameters: greeting"),
        "{err}"
    );
    let err = m
        .orkops(&["addons", "enable", "hello", "--set", "replicas=many"])
        .failure();
    assert!(err.contains("integer"), "{err}");
    let err = m.orkops(&["addons", "enable", "helo"]).failure();
    assert!(
        err.contains("\"helo\"") && err.contains("hello, toolbox"),
        "{err}"
    );
    assert_eq!(all_config_maps(&m), before, "nothing changed");
    let list = m.orkops(&["addons", "list"]).success();
    assert!(!list.contains("Installed"), "{list}");
}

#[test]
fn a_new_version_prunes_what_it_no_longer_has_and_foreign_objects_are_not_taken_over() {
    let m = Master::start();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("mine");
    let from = b.to_str().unwrap().to_string();
    bundle(
        &b,
        &meta("mine", "1"),
        &[
            ("a.yaml", &config_map("mine-a")),
            ("b.yaml", &config_map("mine-b")),
        ],
    );
    m.orkops(&["addons", "enable", "--from", &from]).success();
    assert_eq!(
        labelled(&m, "mine"),
        ["ConfigMap default/mine-a", "ConfigMap default/mine-b"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    std::fs::remove_file(b.join("b.yaml")).unwrap();
    bundle(&b, &meta("mine", "2"), &[("c.yaml", &config_map("mine-c"))]);
    let out = m
        .orkops(&[
            "addons",
            "enable",
            "--from",
            &from,
            "--set",
            "greeting=hello",
        ])
        .success();
    assert!(out.contains("configmap/mine-b pruned"), "{out}");
    assert!(out.contains("configmap/mine-c created"), "{out}");
    assert!(out.contains("2 (was 1)"), "{out}");
    let now: BTreeSet<String> = ["ConfigMap default/mine-a", "ConfigMap default/mine-c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(labelled(&m, "mine"), now);
    let rec = record(&m, "mine").unwrap();
    assert_eq!(recorded_objects(&rec), now);
    assert_eq!(rec["data"]["version"], "2");
    let a = m.orkops(&["get", "cm", "mine-a", "-o", "json"]).json();
    assert_eq!(a["data"]["greeting"], "hello");
    assert_eq!(a["metadata"]["annotations"]["orkops.io/addon-version"], "2");
    let list = m.orkops(&["addons", "list"]).success();
    let line = list.lines().find(|l| l.starts_with("mine ")).unwrap();
    assert!(line.contains(b.to_str().unwrap()), "the source: {list}");

    // an object of the user's with the same name as one of another bundle: refused
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs}\ndata: {k: v}\n"),
    )
    .success();
    let other = dir.path().join("other");
    bundle(
        &other,
        &meta("other", "1"),
        &[
            ("x.yaml", &config_map("theirs")),
            ("y.yaml", &config_map("mine-a")),
            (
                "z.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: z, namespace: nowhere}\n",
            ),
        ],
    );
    let before = all_config_maps(&m);
    let err = m
        .orkops(&["addons", "enable", "--from", other.to_str().unwrap()])
        .failure();
    assert!(
        err.contains("ConfigMap default/theirs exists and is not part of add-on other"),
        "{err}"
    );
    assert!(
        err.contains("ConfigMap default/mine-a exists and belongs to add-on mine"),
        "{err}"
    );
    assert!(
        err.contains("namespace \"nowhere\" does not exist"),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(all_config_maps(&m), before, "nothing changed");

    let out = m.orkops(&["addons", "disable", "mine"]).success();
    assert!(out.contains("2 objects deleted"), "{out}");
    assert!(labelled(&m, "mine").is_empty());
    let theirs = m.orkops(&["get", "cm", "theirs", "-o", "json"]).json();
    assert_eq!(theirs["data"]["k"], "v", "the user's object is untouched");
}

#[test]
fn a_bundle_the_server_refuses_half_way_leaves_nothing_behind() {
    let m = Master::start();
    // the node port is free when the CLI checks the bundle, and taken when the server sees it
    m.orkops_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: taken}\nspec:\n  type: NodePort\n  selector: {app: x}\n  ports: [{port: 80, nodePort: 30080}]\n"),
    )
    .success();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("half");
    bundle(
        &b,
        &meta("half", "1"),
        &[
            ("a.yaml", &config_map("half-a")),
            (
                "b.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: half}\nspec:\n  type: NodePort\n  selector: {app: x}\n  ports: [{port: 80, nodePort: 30080}]\n",
            ),
        ],
    );
    let before = all_config_maps(&m);
    let err = m
        .orkops(&["addons", "enable", "--from", b.to_str().unwrap()])
        .failure();
    assert!(
        err.contains("Service default/half") && err.contains("already allocated"),
        "{err}"
    );
    assert!(err.contains("nothing was left"), "{err}");
    assert!(labelled(&m, "half").is_empty());
    assert!(record(&m, "half").is_none());
    assert_eq!(all_config_maps(&m), before);
}

#[test]
fn the_library_enable_is_what_create_cluster_calls() {
    use orkops::addons::{self, Bundle, ClusterFacts, Outcome, Params};
    let m = Master::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = orkops::client::ClientConfig::load(&m.config).unwrap();
        let client = orkops::client::ApiClient::new(&cfg).unwrap();
        // create cluster checks the names before it provisions anything
        assert!(Bundle::builtin("nope").is_err());
        let bundle = Bundle::builtin("hello").unwrap();
        let facts = ClusterFacts::read(&client, Some("prod")).await.unwrap();
        assert_eq!(facts.cluster_domain, "cluster.local");
        let params = Params {
            facts,
            set: vec![("replicas".into(), "0".into())],
        };
        let report = addons::enable(&client, &bundle, &params).await.unwrap();
        assert!(report.objects.iter().all(|(_, o)| *o == Outcome::Created));
        let again = addons::enable(&client, &bundle, &params).await.unwrap();
        assert!(again.objects.iter().all(|(_, o)| *o == Outcome::Unchanged));
        let installed = addons::installed(&client).await.unwrap();
        assert_eq!(installed.len(), 1);
        assert_eq!(installed[0].record.parameters["clusterName"], "prod");
        let removed = addons::disable(&client, "hello").await.unwrap().unwrap();
        assert_eq!(removed.objects.len(), 2);
        assert!(addons::disable(&client, "hello").await.unwrap().is_none());
    });
}

fn script(dir: &Path, name: &str, text: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn path_with(dirs: &[&Path]) -> String {
    let mut parts: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

#[test]
fn a_plugin_on_path_runs_with_the_configuration_and_calls_back_into_orkops() {
    let m = Master::start();
    m.orkops(&["run", "plugin-probe", "--image", "orkops/busybox:1.35"])
        .success();
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "orkops-hello-world",
        "#!/bin/sh\necho \"args: $*\"\necho \"config: $ORKOPS_CONFIG\"\necho \"namespace: $ORKOPS_NAMESPACE\"\n\"$ORKOPS_BIN\" get pods || exit 9\nexit 7\n",
        0o755,
    );
    let cfg = m.config.to_str().unwrap();
    let out = m
        .orkops_command(&[
            "--config", cfg, "-n", "default", "hello", "world", "one", "--flag", "two",
        ])
        .env_remove("ORKOPS_CONFIG")
        .env("PATH", path_with(&[dir.path()]))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the plugin's exit code: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("args: one --flag two"), "{stdout}");
    assert!(stdout.contains(&format!("config: {cfg}\n")), "{stdout}");
    assert!(stdout.contains("namespace: default"), "{stdout}");
    assert!(
        stdout.contains("plugin-probe"),
        "the callback listed the pod: {stdout}"
    );

    // an unknown name is clap's usual error, and a hint
    let out = m
        .orkops_command(&["helo"])
        .env("PATH", path_with(&[dir.path()]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unrecognized subcommand 'helo'"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("orkops-helo"),
        "{err}"
    );
}

#[test]
fn plugin_list_warns_about_plugins_that_never_run() {
    let m = Master::start();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let shadow = "#!/bin/sh\necho PLUGIN RAN\n";
    script(a.path(), "orkops-get", shadow, 0o755);
    script(a.path(), "orkops-greet", shadow, 0o755);
    script(b.path(), "orkops-greet", shadow, 0o755);
    script(a.path(), "orkops-lazy", shadow, 0o644);
    script(a.path(), "orkops-foo_bar", shadow, 0o755);
    let path = path_with(&[a.path(), b.path()]);
    let out = m
        .orkops_command(&["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for cmd in [
        "orkops get ",
        "orkops greet ",
        "orkops lazy ",
        "orkops foo-bar ",
    ] {
        assert!(stdout.contains(cmd), "{cmd} in {stdout}");
    }
    let get = a.path().join("orkops-get");
    assert!(
        stderr.contains(&format!(
            "warning: {} is never run: \"orkops get\" is a built-in command",
            get.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{} is shadowed by {}",
            b.path().join("orkops-greet").display(),
            a.path().join("orkops-greet").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{} is named like a plugin but is not executable",
            a.path().join("orkops-lazy").display()
        )),
        "{stderr}"
    );
    // and indeed the built-in runs, never the plugin
    let out = m
        .orkops_command(&["get", "nodes"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PLUGIN RAN"));
    let out = m
        .orkops_command(&["foo-bar"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("PLUGIN RAN"));
}
