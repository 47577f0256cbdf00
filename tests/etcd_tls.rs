//! etcd behind TLS, probed as an attacker would: a real etcd started with the flags and
//! certificates the bootstrap renders for a master (`render::master_files`, the certificates
//! from `pki`'s etcd functions), a real `orkops-master` with `--etcd-cafile/--etcd-certfile/
//! --etcd-keyfile`; and a cluster on the local cloud, probed from a node. Only the masters'
//! client certificate from the etcd CA gets an answer: plain http, TLS without a certificate and
//! a certificate of the cluster CA are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cloud::{free_network_cidr, LocalCloud};
use common::{die_with_parent, free_port, wait_until};
use orkops::bootstrap::render::{self, ClusterFacts, EtcdSecrets, Machine, Secrets};
use orkops::client::ClientConfig;
use orkops::cloud::model::Role;
use orkops::pki::{self, Ca};

const DEADLINE: Duration = Duration::from_secs(120);
/// The member's "private IP": a loopback address other than 127.0.0.1, so the rendered listen
/// URLs (127.0.0.1 and the private IP) are two addresses, as on an instance.
const MEMBER_IP: &str = "127.0.0.2";

/// What a master of a one-master cluster at `MEMBER_IP` gets from the bootstrap.
fn rendered(dir: &Path) -> Vec<render::File> {
    let etcd_ca = Ca::load_or_generate(&dir.join("state-etcd"), "orkops-etcd-ca-t").unwrap();
    let member =
        pki::etcd_member_certs(&etcd_ca, &dir.join("state-etcd"), "master-1", MEMBER_IP).unwrap();
    let (client_cert, client_key) =
        pki::etcd_client_cert(&etcd_ca, &dir.join("state-etcd")).unwrap();
    let facts = ClusterFacts {
        name: "t".into(),
        region: "us-east-1".into(),
        api_port: 6443,
        agent_port: 10250,
        api_dns: None,
        masters: vec![("master-1".into(), MEMBER_IP.into())],
        master_flags: vec![],
    };
    let machine = Machine {
        name: "master-1".into(),
        role: Role::Master,
        instance_id: "i-1".into(),
        zone: "us-east-1a".into(),
        size: "t3.medium".into(),
        private_ip: MEMBER_IP.into(),
        public_ip: None,
        arch: "x86_64".into(),
    };
    let cluster_ca = Ca::generate("orkops-ca-t").unwrap();
    let secrets = Secrets {
        ca_cert: cluster_ca.cert_pem,
        ca_key: cluster_ca.key_pem,
        admin_token: "a".into(),
        join_token: "j".into(),
        signing_key: "s".into(),
        etcd: EtcdSecrets {
            ca_cert: etcd_ca.cert_pem,
            client_cert,
            client_key,
            members: [("master-1".to_string(), member)].into(),
        },
    };
    render::master_files(&facts, &machine, &secrets).unwrap()
}

/// The rendered files and unit lines, moved into the test's directory and ports.
struct Moved {
    dir: PathBuf,
    client: u16,
    peer: u16,
}

impl Moved {
    fn path(&self, p: &str) -> String {
        p.replace("/etc/orkops-etcd/pki", &self.at("etcd-pki"))
            .replace("/var/lib/orkops-etcd", &self.at("etcd-data"))
            .replace("/var/lib/orkops-master", &self.at("master"))
            .replace(":2379", &format!(":{}", self.client))
            .replace(":2380", &format!(":{}", self.peer))
    }

    fn at(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The words of a unit's ExecStart after the program, moved.
    fn exec_args(&self, files: &[render::File], service: &str) -> Vec<String> {
        let unit = text(files, &render::unit_path(service));
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("no ExecStart in {unit}"));
        line.split_whitespace()
            .skip(1)
            .map(|w| self.path(w))
            .collect()
    }

    /// Writes every secret file (not the units), moved, with its mode.
    fn write_secrets(&self, files: &[render::File]) {
        use std::os::unix::fs::PermissionsExt;
        for f in files.iter().filter(|f| !f.path.ends_with(".service")) {
            let p = PathBuf::from(self.path(&f.path));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.contents).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
        }
    }
}

fn text(files: &[render::File], path: &str) -> String {
    let f = files.iter().find(|f| f.path == path).unwrap();
    String::from_utf8(f.contents.to_vec()).unwrap()
}

/// A child process killed (and reaped) on drop, also when the test fails.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &str, args: &[String], log: &Path) -> Proc {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    die_with_parent(&mut cmd);
    Proc(cmd.spawn().unwrap())
}

/// The flag's value in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let i = args.iter().position(|a| a == name).unwrap();
    &args[i + 1]
}

/// An HTTPS client trusting `ca` (or nothing checked when `None`: an attacker needs no
/// trust), presenting `identity` (cert and key PEM) when given.
fn https(ca: Option<&str>, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    b = match ca {
        Some(ca) => b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()),
        None => b.danger_accept_invalid_certs(true),
    };
    if let Some((c, k)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(f)
}

/// How many keys etcd at `url` holds under `prefix`, or why there is no answer.
fn count(client: &reqwest::Client, url: &str, prefix: &str) -> Result<u64, String> {
    use base64::Engine;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    let body = serde_json::json!({"key": b64(prefix.as_bytes()), "range_end": b64(&end), "count_only": true});
    let v: serde_json::Value = block_on(async {
        let resp = client
            .post(format!("{url}/v3/kv/range"))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status();
        resp.json().await.map_err(|e| format!("{status}: {e}"))
    })?;
    if v.get("header").is_none() {
        return Err(format!("not an answer of etcd: {v}"));
    }
    // etcd's JSON leaves a count of 0 out
    v["count"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .map_err(|e| format!("{v}: {e}"))
}

/// GET `url` with `client`: its status, or why there is none.
fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::StatusCode, String> {
    block_on(async { client.get(url).send().await })
        .map(|r| r.status())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn etcd_answers_only_the_masters_client_certificate() {
    let tmp = tempfile::Builder::new()
        .prefix("orkops-test-etcd-tls-")
        .tempdir()
        .unwrap();
    let files = rendered(tmp.path());
    let moved = Moved {
        dir: tmp.path().to_path_buf(),
        client: free_port(),
        peer: free_port(),
    };
    moved.write_secrets(&files);
    let mut etcd_args = moved.exec_args(&files, render::ETCD);
    etcd_args.extend(["--log-level", "error", "--unsafe-no-fsync"].map(String::from));
    let _etcd = spawn("etcd", &etcd_args, &tmp.path().join("etcd.log"));
    let pki_dir = PathBuf::from(moved.at("etcd-pki"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let etcd_ca = read(&pki_dir.join("ca.crt"));
    let master_dir = PathBuf::from(moved.at("master"));
    let (client_cert, client_key) = (
        read(&master_dir.join("etcd-client.crt")),
        read(&master_dir.join("etcd-client.key")),
    );
    let masters = https(Some(&etcd_ca), Some((&client_cert, &client_key)));
    let client_url = format!("https://{MEMBER_IP}:{}", moved.client);
    wait_until("etcd to answer over TLS", DEADLINE, || {
        count(&masters, &client_url, "/").is_ok()
    });

    // orkops-master with the rendered --etcd-* flags, on the test's ports and files
    let master_args = moved.exec_args(&files, render::MASTER);
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--cluster-name",
        "t",
        "--etcd-prefix",
        "/etcd-tls-test",
        "--data-dir",
    ]
    .map(String::from)
    .into();
    args.push(master_dir.display().to_string());
    for f in [
        "--etcd-endpoints",
        "--etcd-cafile",
        "--etcd-certfile",
        "--etcd-keyfile",
    ] {
        args.extend([f.to_string(), flag(&master_args, f).to_string()]);
    }
    assert!(
        flag(&args, "--etcd-endpoints").starts_with("https://127.0.0.1:"),
        "{args:?}"
    );
    let log = tmp.path().join("master.log");
    let mut master = spawn(env!("CARGO_BIN_EXE_orkops-master"), &args, &log);
    let admin = master_dir.join("admin.conf");
    wait_until("the master to write admin.conf", DEADLINE, || {
        if let Ok(Some(st)) = master.0.try_wait() {
            panic!("orkops-master exited with {st}: {}", read(&log));
        }
        admin.exists()
    });
    ClientConfig::load(&admin).unwrap();
    let orkops = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut c = Command::new(env!("CARGO_BIN_EXE_orkops"))
            .args(args)
            .env("ORKOPS_CONFIG", &admin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let o = c.wait_with_output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "orkops {args:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    orkops(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: over-tls, namespace: default}\ndata: {secret: hidden}\n",
    );
    let got = orkops(&["get", "configmap", "over-tls", "-o", "json"], "");
    assert!(got.contains("\"secret\": \"hidden\""), "{got}");

    // the masters' certificate reads what the master wrote
    let stored = count(&masters, &client_url, "/etcd-tls-test/").unwrap();
    assert!(stored > 0, "the master's objects are in this etcd");

    // an attacker: plain http, TLS without a certificate, a certificate of the cluster CA
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // the CA the master signs nodes' certificates with, as the bootstrap gave it
    let cluster_ca = Ca::load_or_generate(&master_dir, "unused").unwrap();
    assert!(cluster_ca.cert_pem.contains("BEGIN CERTIFICATE"));
    let (node_cert, node_key) = cluster_ca.issue("node-1", &[], true, true).unwrap();
    let peer_url = format!("https://{MEMBER_IP}:{}", moved.peer);
    for url in [&client_url, &format!("https://127.0.0.1:{}", moved.client)] {
        let http = url.replace("https://", "http://");
        let refused = [
            ("plain http", count(&plain, &http, "/")),
            (
                "TLS without a certificate",
                count(&https(None, None), url, "/"),
            ),
            (
                "a client certificate of the cluster CA",
                count(&https(None, Some((&node_cert, &node_key))), url, "/"),
            ),
        ];
        for (what, r) in refused {
            assert!(r.is_err(), "{what} to {url} got an answer: {r:?}");
        }
    }
    for (what, c) in [
        ("TLS without a certificate", https(None, None)),
        (
            "a client certificate of the cluster CA",
            https(None, Some((&node_cert, &node_key))),
        ),
    ] {
        let r = get(&c, &format!("{peer_url}/members"));
        assert!(r.is_err(), "{what} to the peer port got an answer: {r:?}");
    }
    // etcd's peer port speaks HTTP/1.1 only
    let peer_client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(etcd_ca.as_bytes()).unwrap())
        .identity(
            reqwest::Identity::from_pem(format!("{client_cert}\n{client_key}").as_bytes()).unwrap(),
        )
        .http1_only()
        .build()
        .unwrap();
    let members = get(&peer_client, &format!("{peer_url}/members")).unwrap();
    assert!(
        members.is_success(),
        "the peer port answers a certificate of the etcd CA: {members}"
    );
    assert_eq!(count(&masters, &client_url, "/etcd-tls-test/"), Ok(stored));
}

#[test]
fn a_master_refuses_plain_http_to_a_remote_etcd_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_orkops-master"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args([
            "--etcd-endpoints",
            "http://127.0.0.1:2379,http://10.0.0.4:2379",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--etcd-endpoints http://10.0.0.4:2379: plain http is allowed only to a loopback address")
            && err.contains("--etcd-cafile"),
        "{err}"
    );
    assert!(!data.exists(), "nothing was set up: {:?}", data);
}

/// A PEM file's contents as a shell here-document writing it to `path` (0600).
fn put_file(path: &str, contents: &str) -> String {
    format!(
        "umask 077; cat > {path} <<'PEM'\n{}\nPEM\n",
        contents.trim()
    )
}

#[test]
fn from_a_node_etcd_on_the_master_refuses_all_but_the_masters_certificate() {
    let c = LocalCloud::with_bodies();
    let cidr = free_network_cidr();
    let name = "e2e-etcd-tls";
    c.ok(&[
        "create",
        "cluster",
        name,
        "--zones",
        "us-east-1a",
        "--nodes",
        "1",
        "--network-cidr",
        &cidr,
        "--yes",
        "-o",
        "json",
    ]);
    let o = c.observe(name);
    let master = o.instance("master-1").unwrap();
    let node = o.instance("node-1").unwrap();
    let ip = master.private_ip.clone().unwrap();
    let nodes = c.work_json(&["get", "nodes"]);
    let items = nodes["items"].as_array().unwrap();
    let ready = items.len() == 1
        && items.iter().all(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    assert!(ready, "the cluster works over etcd TLS: {nodes}");

    let range = "-X POST -d '{\"key\":\"AA==\",\"range_end\":\"AA==\",\"count_only\":true}'";
    let on_node = |script: &str| c.on_instance(&node.id, script);
    assert!(
        on_node(
            "test -s /var/lib/orkops-agent/agent.crt && test -s /var/lib/orkops-agent/agent.key"
        )
        .0,
        "the node holds its certificate of the cluster CA"
    );
    let refused = [
        (
            "plain http",
            format!("curl -sS -m 10 {range} http://{ip}:2379/v3/kv/range"),
        ),
        (
            "TLS without a certificate",
            format!("curl -sS -m 10 -k {range} https://{ip}:2379/v3/kv/range"),
        ),
        (
            "the node's own certificate (cluster CA)",
            format!("curl -sS -m 10 -k --cert /var/lib/orkops-agent/agent.crt --key /var/lib/orkops-agent/agent.key {range} https://{ip}:2379/v3/kv/range"),
        ),
        (
            "TLS without a certificate to the peer port",
            format!("curl -sS -m 10 -k https://{ip}:2380/members"),
        ),
    ];
    for (what, cmd) in &refused {
        let (ok, out) = on_node(cmd);
        assert!(
            !ok && !out.contains("\"header\"") && !out.contains("peerURLs"),
            "{what} from the node got an answer: {out}"
        );
        // refused by etcd's TLS, not unreachable (curl 7: connection refused, 28: timeout)
        assert!(
            !out.contains("Failed to connect") && !out.contains("timed out"),
            "{what}: etcd was not reached at all: {out}"
        );
    }
    // the same request with the masters' client certificate, copied to the node, is answered:
    // the certificate is all that was missing
    let (_, cert) = c.on_instance(&master.id, "cat /var/lib/orkops-master/etcd-client.crt");
    let (_, key) = c.on_instance(&master.id, "cat /var/lib/orkops-master/etcd-client.key");
    let copy = put_file("/tmp/etcd-client.crt", &cert) + &put_file("/tmp/etcd-client.key", &key);
    assert!(on_node(&copy).0);
    let (ok, out) = on_node(&format!(
        "curl -sS -m 10 -k --cert /tmp/etcd-client.crt --key /tmp/etcd-client.key {range} https://{ip}:2379/v3/kv/range; rc=$?; rm -f /tmp/etcd-client.*; exit $rc"
    ));
    assert!(ok && out.contains("\"count\""), "{out}");
    // dropping the local cloud removes the cluster's bodies
}
