//! The local cloud for tests: a moto server of the test's own (from `localstack/`'s venv,
//! seeded with its Debian images) on a free port, which dies with the test process; with
//! `LocalCloud::with_bodies`, also a bodies daemon of its own (`localstack/bodies`, a unique
//! owner), so that instances are real machines with sshd and dockerd and the API load
//! balancer forwards to them. The `orkops` binary is run against it with its own HOME, and SDK
//! clients on it check what the cloud holds with the same code path users get.
//!
//! Nothing leaks, also when a test panics: on drop the bodies daemon gets SIGTERM (which
//! removes every body, network, route, address and hosts block it made) and is waited on, then
//! `bodies --sweep --owner` removes whatever a daemon that could not finish left; a daemon
//! whose test process died gets SIGTERM from the kernel (PR_SET_PDEATHSIG), and what a killed
//! test process left is swept by the next test binary that starts bodies.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use orkops::client::ClientConfig;
use orkops::cloud::aws;
use orkops::cloud::model::Observed;
use serde_json::Value;

/// How long one `orkops` run may take before the test kills it and fails (create waits up to
/// 10 min for Ready by default; nothing here should come close).
pub const ORKOPS_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub struct LocalCloud {
    child: Child,
    pub url: String,
    pub home: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    /// The bodies daemon, when started `with_bodies`.
    pub bodies: Option<Bodies>,
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        // the bodies first: they are what costs (containers, networks, routes)
        drop(self.bodies.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn localstack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack")
}

/// `localstack/up --install-only`, once per test binary.
fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new(localstack().join("up"))
            .arg("--install-only")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "localstack/up --install-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// `localstack/build-body-image` (a no-op when the image is current), once per test binary;
/// and a sweep of what bodies daemons of test processes that no longer exist left.
fn body_image() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let out = Command::new(localstack().join("build-body-image"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "localstack/build-body-image: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sweep_dead_test_owners();
    });
}

/// Owners `test-<pid>-<n>` whose test process is gone: `bodies --sweep --owner` each (the
/// sweep takes the owner's lock first, so a live daemon is never touched).
fn sweep_dead_test_owners() {
    let mut owners = std::collections::BTreeSet::new();
    for args in [
        &[
            "ps",
            "-a",
            "--format",
            "{{.Label \"orkops.localcloud/owner\"}}",
        ][..],
        &[
            "volume",
            "ls",
            "--format",
            "{{.Label \"orkops.localcloud/owner\"}}",
        ][..],
        &[
            "network",
            "ls",
            "--format",
            "{{.Label \"orkops.localcloud/owner\"}}",
        ][..],
    ] {
        owners.extend(super::docker(args).1.lines().map(str::to_string));
    }
    for e in std::fs::read_dir("/run/orkops-localcloud/owners")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(owner) = name
            .strip_suffix(".lock")
            .or_else(|| name.strip_suffix(".json"))
        {
            owners.insert(owner.to_string());
        }
    }
    for owner in owners {
        let mut parts = owner.split('-');
        let (Some("test"), Some(pid), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_err() || n.parse::<u32>().is_err() {
            continue;
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = Command::new(localstack().join("bodies"))
            .args(["--sweep", "--owner", &owner])
            .output();
    }
}

/// Polls `cond` every half second until it gives `Some`, or panics after `deadline` with
/// `what` and the last thing `cond` saw (`Err`).
#[track_caller]
pub fn poll<T>(what: &str, deadline: Duration, mut cond: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        let last = match cond() {
            Ok(v) => return v,
            Err(e) => e,
        };
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `cmd` to completion, killing it (and failing) after `timeout`.
#[track_caller]
pub fn output_within(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}: {}{}",
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A VPC CIDR for a test cluster with bodies: a `10.X.0.0/16` that overlaps no Docker network
/// and no host route, and that no other test of this process was given (Docker networks of
/// concurrent VPCs cannot overlap; 10.0.0.0/16 is the default users' clusters take).
pub fn free_network_cidr() -> String {
    static TAKEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut used: Vec<ipnet::Ipv4Net> = Vec::new();
    let (_, ids) = super::docker(&["network", "ls", "-q"]);
    let mut args = vec![
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.lines());
    let (_, subnets) = super::docker(&args);
    let routes = Command::new("ip")
        .args(["-4", "route", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    for word in subnets
        .split_whitespace()
        .chain(routes.lines().filter_map(|l| l.split_whitespace().next()))
    {
        if let Ok(n) = word.parse::<ipnet::Ipv4Net>() {
            used.push(n);
        } else if let Ok(a) = word.parse::<std::net::Ipv4Addr>() {
            used.push(ipnet::Ipv4Net::new(a, 32).unwrap());
        }
    }
    // 10.64-127: clear of 10.0 (users' default), 10.30 (tests/cloud.rs, no bodies) and
    // the 10.213 test lans of tests/common/hosts.rs
    for x in 64u8..128 {
        let cand: ipnet::Ipv4Net = format!("10.{x}.0.0/16").parse().unwrap();
        let overlaps = used
            .iter()
            .any(|u| u.contains(&cand.network()) || cand.contains(&u.network()));
        if !taken.contains(&x) && !overlaps {
            taken.push(x);
            return cand.to_string();
        }
    }
    panic!("no free 10.X.0.0/16 for a test VPC (Docker networks and routes: {used:?})");
}

/// The stdout of an `orkops` run that must have succeeded (else its output, in the panic).
#[track_caller]
fn succeeded(args: &[&str], o: Output) -> String {
    assert!(
        o.status.success(),
        "orkops {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A bodies daemon (`localstack/bodies`) of a test's own: owner `test-<pid>-<n>`, its state
/// directory a temporary one.
pub struct Bodies {
    child: Option<Child>,
    pub owner: String,
    pub state: tempfile::TempDir,
}

impl Bodies {
    fn start(endpoint: &str) -> Bodies {
        static N: AtomicUsize = AtomicUsize::new(0);
        body_image();
        let owner = format!(
            "test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let state = tempfile::Builder::new()
            .prefix("orkops-test-bodies-")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(localstack().join("bodies"));
        cmd.args(["--endpoint", endpoint, "--owner", &owner])
            .arg("--state-dir")
            .arg(state.path())
            .arg("--quiet")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(state.path().join("bodies.stderr")).unwrap(),
            ));
        // SIGTERM, not SIGKILL, if the test dies: the daemon then removes what it made
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let mut b = Bodies {
            child: Some(child),
            owner,
            state,
        };
        let start = Instant::now();
        loop {
            if b.status()["emulator"]["ok"] == true {
                break;
            }
            if let Some(st) = b.child.as_mut().unwrap().try_wait().unwrap() {
                b.child = None;
                panic!("localstack/bodies exited with {st}: {}", b.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the bodies daemon reported no working emulator in 120 s: {}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        b
    }

    /// Its status file (`bodies.json`), or `null` before the first one.
    pub fn status(&self) -> Value {
        std::fs::read_to_string(self.state.path().join("bodies.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// The daemon's log and stderr.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.state.path().join(f)).unwrap_or_default();
        read("bodies.log") + &read("bodies.stderr")
    }

    /// The Docker name of an instance's body.
    pub fn container(instance_id: &str) -> String {
        format!("orkops-body-{instance_id}")
    }

    /// The containers, volumes and networks labelled with this owner.
    pub fn docker_objects(&self) -> Vec<String> {
        let label = format!("label=orkops.localcloud/owner={}", self.owner);
        let mut out = Vec::new();
        for (what, args) in [
            (
                "container",
                &["ps", "-a", "--format", "{{.Names}}", "--filter"][..],
            ),
            (
                "volume",
                &["volume", "ls", "--format", "{{.Name}}", "--filter"][..],
            ),
            (
                "network",
                &["network", "ls", "--format", "{{.Name}}", "--filter"][..],
            ),
        ] {
            let mut a = args.to_vec();
            a.push(&label);
            let (_, names) = super::docker(&a);
            out.extend(
                names
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{what} {l}")),
            );
        }
        out
    }

    /// What the owner has on the host besides Docker objects: its /etc/hosts block, its
    /// owner files, and routes into `cidr` (the public-IP routes of a VPC's bodies).
    pub fn host_objects(&self, cidr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        if hosts.contains(&format!("# BEGIN orkops-localcloud {}\n", self.owner)) {
            out.push(format!("/etc/hosts block of {}", self.owner));
        }
        for ext in ["lock", "json"] {
            let p = format!("/run/orkops-localcloud/owners/{}.{ext}", self.owner);
            if Path::new(&p).exists() {
                out.push(p);
            }
        }
        let net: ipnet::Ipv4Net = cidr.parse().unwrap();
        let routes = Command::new("ip")
            .args(["-4", "route", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for l in routes.lines() {
            let mut w = l.split_whitespace();
            let dst = w.next().unwrap_or("");
            let via = l
                .split_whitespace()
                .skip_while(|x| *x != "via")
                .nth(1)
                .and_then(|v| v.parse::<std::net::Ipv4Addr>().ok());
            let into = dst
                .parse::<ipnet::Ipv4Net>()
                .map(|d| net.contains(&d.network()))
                .unwrap_or(false);
            if via.is_some_and(|v| net.contains(&v)) || into {
                out.push(format!("route {l}"));
            }
        }
        out
    }

    /// SIGTERM, and waits (the daemon stops its bodies in parallel, a few seconds each);
    /// SIGKILL after three minutes. Then `--sweep --owner` removes whatever it left. Returns
    /// whether it exited 0 by itself.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            clean = loop {
                if let Some(st) = c.try_wait().unwrap() {
                    break st.success();
                }
                if start.elapsed() > Duration::from_secs(180) {
                    let _ = c.kill();
                    let _ = c.wait();
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
        }
        let _ = Command::new(localstack().join("bodies"))
            .args(["--sweep", "--owner", &self.owner])
            .output();
        clean
    }
}

impl Drop for Bodies {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of the bodies daemon {} ({}):",
                self.owner,
                self.state.path().display()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.stop();
    }
}

/// How many VPCs, subnets, instances (not terminated), security groups, key pairs, internet
/// gateways, route tables, load balancers and target groups the region holds, tagged or not:
/// compare with the counts of a fresh emulator (its default VPC has some of these).
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct Everything {
    pub vpcs: usize,
    pub subnets: usize,
    pub instances: usize,
    pub security_groups: usize,
    pub key_pairs: usize,
    pub internet_gateways: usize,
    pub route_tables: usize,
    pub load_balancers: usize,
    pub target_groups: usize,
}

impl LocalCloud {
    pub fn start() -> LocalCloud {
        install();
        let dir = localstack();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(dir.join(".venv/bin/python"));
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .env("MOTO_AMIS_PATH", dir.join("amis.json"))
        .env("MOTO_ENABLE_AMI_VALIDATION", "true")
        .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
        .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        super::die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start on {url}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        LocalCloud {
            child,
            url,
            home: tempfile::tempdir().unwrap(),
            rt: tokio::runtime::Runtime::new().unwrap(),
            bodies: None,
        }
    }

    /// A cloud whose instances and load balancers get bodies: moto plus a bodies daemon of
    /// this cloud's own (needs root and Docker; builds the body image the first time).
    pub fn with_bodies() -> LocalCloud {
        let mut c = LocalCloud::start();
        c.bodies = Some(Bodies::start(&c.url));
        c
    }

    /// The bodies daemon (this cloud must have been started `with_bodies`).
    pub fn bodies(&self) -> &Bodies {
        self.bodies
            .as_ref()
            .expect("a LocalCloud started with_bodies")
    }

    /// Stops the bodies daemon (SIGTERM, wait, sweep): every body goes, the emulator stays.
    pub fn stop_bodies(&mut self) -> bool {
        self.bodies
            .as_mut()
            .expect("a LocalCloud started with_bodies")
            .stop()
    }

    /// The environment `orkops` gets: this cloud, test credentials, its own HOME.
    pub fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("ORKOPS_CONFIG")
            .env_remove("KUBECONFIG")
            .env("HOME", self.home.path());
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops"));
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    pub fn orkops(&self, args: &[&str]) -> Output {
        output_within(self.command(args), ORKOPS_TIMEOUT)
    }

    /// The client configuration `create cluster` wrote (`$HOME/.orkops/config`).
    pub fn config_path(&self) -> PathBuf {
        self.home.path().join(".orkops/config")
    }

    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::load(&self.config_path()).unwrap()
    }

    /// A workload command (`get`, `apply`, `exec`, ...) against the cluster of the client
    /// configuration `config` (ORKOPS_CONFIG), with this cloud's environment.
    pub fn workload_with(&self, config: &Path, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        cmd.env("ORKOPS_CONFIG", config);
        output_within(cmd, ORKOPS_TIMEOUT)
    }

    /// A workload command against the cluster `create cluster` configured last.
    pub fn workload(&self, args: &[&str]) -> Output {
        self.workload_with(&self.config_path(), args)
    }

    /// `workload` that must succeed; its stdout.
    #[track_caller]
    pub fn work(&self, args: &[&str]) -> String {
        succeeded(args, self.workload(args))
    }

    /// `workload` with `-o json`, parsed.
    #[track_caller]
    pub fn work_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.work(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("orkops {a:?}: {e}: {out}"))
    }

    /// `sh -c SCRIPT` as root inside an instance's body (`docker exec`: what the test looks
    /// at, not how orkops reaches the instance).
    pub fn on_instance(&self, instance_id: &str, script: &str) -> (bool, String) {
        super::docker(&["exec", &Bodies::container(instance_id), "sh", "-c", script])
    }

    /// Processes that belong to this cloud's clusters or to this test's `orkops` runs: those
    /// inside the bodies of `instances`, and any whose environment has this cloud's HOME.
    pub fn processes(&self, instances: &[String]) -> Vec<String> {
        let home = format!("HOME={}", self.home.path().display());
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            let dir = e.path();
            let body = std::fs::read_to_string(dir.join("root/etc/orkops-body/instance.env"))
                .unwrap_or_default();
            let mine = instances
                .iter()
                .any(|i| body.contains(&format!("INSTANCE_ID={i}\n")))
                || std::fs::read(dir.join("environ"))
                    .unwrap_or_default()
                    .split(|b| *b == 0)
                    .any(|v| v == home.as_bytes());
            if mine {
                let cmd = std::fs::read(dir.join("cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                out.push(format!("{pid} {}", cmd.trim()));
            }
        }
        out
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.orkops(args))
    }

    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.orkops(args);
        assert!(
            !o.status.success(),
            "orkops {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// SDK clients on this cloud (no process-wide environment involved).
    pub fn sdk(&self) -> aws::Aws {
        self.rt.block_on(async {
            let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(&self.url)
                .credentials_provider(aws_credential_types::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .load()
                .await;
            aws::connect_with(&conf).await.unwrap()
        })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// What the cloud holds for a cluster, found by tag as `delete cluster` finds it.
    pub fn observe(&self, cluster: &str) -> Observed {
        let a = self.sdk();
        self.rt.block_on(aws::observe(&a, cluster)).unwrap()
    }

    pub fn everything(&self) -> Everything {
        let a = self.sdk();
        self.rt.block_on(async {
            let ec2 = &a.ec2;
            Everything {
                vpcs: ec2.describe_vpcs().send().await.unwrap().vpcs().len(),
                subnets: ec2.describe_subnets().send().await.unwrap().subnets().len(),
                instances: ec2
                    .describe_instances()
                    .send()
                    .await
                    .unwrap()
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| {
                        i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated")
                    })
                    .count(),
                security_groups: ec2
                    .describe_security_groups()
                    .send()
                    .await
                    .unwrap()
                    .security_groups()
                    .len(),
                key_pairs: ec2
                    .describe_key_pairs()
                    .send()
                    .await
                    .unwrap()
                    .key_pairs()
                    .len(),
                internet_gateways: ec2
                    .describe_internet_gateways()
                    .send()
                    .await
                    .unwrap()
                    .internet_gateways()
                    .len(),
                route_tables: ec2
                    .describe_route_tables()
                    .send()
                    .await
                    .unwrap()
                    .route_tables()
                    .len(),
                load_balancers: a
                    .elb
                    .describe_load_balancers()
                    .send()
                    .await
                    .unwrap()
                    .load_balancers()
                    .len(),
                target_groups: a
                    .elb
                    .describe_target_groups()
                    .send()
                    .await
                    .unwrap()
                    .target_groups()
                    .len(),
            }
        })
    }
}
