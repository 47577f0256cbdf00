//! Test harness: a real etcd (started once per test binary, or taken from ORKOPS_TEST_ETCD),
//! a real `orkops-master` process per test on its own port and key prefix, the `orkops` CLI,
//! and an HTTPS client that trusts the test cluster's CA. Everything started here is stopped
//! and removed when the test ends, also when it fails: children get SIGKILL if the test
//! process dies, and the master's etcd keys are deleted on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orkops::client::ClientConfig;
use serde_json::Value;

pub mod cloud;
pub mod fakenode;
pub mod hollow;
pub mod hosts;
pub mod kube;

/// Polls `cond` until it holds or `deadline` passes; generous deadlines, no fixed sleeps.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A local TCP port nothing listens on, below the kernel's ephemeral range (32768+), so an
/// outgoing connection cannot take it between this call and the server's bind, and never the
/// same one twice in a test process (two servers started at once cannot be given one port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let seed = std::process::id() as u64 ^ now.map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(given.len() as u64);
    loop {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20000 + ((x >> 33) % 12000) as u16;
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
}

/// Makes the child die with the thread that spawned it (our long-lived spawner threads, or
/// the test process), so a crashed test leaks no process.
pub fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// How long one etcd may take to answer /health after it was started.
const ETCD_START: Duration = Duration::from_secs(90);

pub struct Etcd {
    pub endpoint: String,
}

/// The etcd every test of this binary shares (each master uses its own key prefix).
pub fn etcd() -> &'static Etcd {
    static ETCD: OnceLock<Etcd> = OnceLock::new();
    ETCD.get_or_init(|| {
        if let Ok(ep) = std::env::var("ORKOPS_TEST_ETCD") {
            return Etcd { endpoint: ep };
        }
        let (tx, rx) = std::sync::mpsc::channel();
        // The spawning thread lives as long as the process: PDEATHSIG fires when it ends.
        std::thread::spawn(move || {
            let base = std::env::temp_dir();
            // remove data dirs left by test processes that no longer exist
            for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = name.strip_prefix("orkops-test-etcd-") {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            let dir = base.join(format!("orkops-test-etcd-{}", std::process::id()));
            // an etcd that exits before it is healthy (a port taken by another process) is
            // started again on new ports
            for _attempt in 0..5 {
                let _ = std::fs::remove_dir_all(&dir);
                let (client, peer) = (free_port(), free_port());
                let mut cmd = etcd_command(&dir, client, peer);
                die_with_parent(&mut cmd);
                let mut child = cmd.spawn().expect(
                    "etcd must be installed (apt-get install etcd-server; .ci/run does it)",
                );
                let start = Instant::now();
                let healthy = loop {
                    if http_get_plain(client, "/health").contains("true") {
                        break true;
                    }
                    if matches!(child.try_wait(), Ok(Some(_))) || start.elapsed() > ETCD_START {
                        let _ = child.kill();
                        let _ = child.wait();
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                if !healthy {
                    continue;
                }
                // etcd dies with this process; a watcher removes its data dir right after
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; rm -rf '{}'",
                        child.id(),
                        dir.display()
                    ))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                tx.send(format!("http://127.0.0.1:{client}")).unwrap();
                let _keep = child;
                loop {
                    std::thread::park();
                }
            }
            panic!("etcd did not become healthy in 5 attempts");
        });
        let endpoint = rx
            .recv_timeout(ETCD_START * 6)
            .expect("the shared test etcd did not start (see the panic above)");
        Etcd { endpoint }
    })
}

/// `etcd` serving one member from `dir` on 127.0.0.1 `client` and `peer` ports.
fn etcd_command(dir: &Path, client: u16, peer: u16) -> Command {
    let endpoint = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new("etcd");
    cmd.args(["--name", "test", "--data-dir", dir.to_str().unwrap()])
        .args(["--listen-client-urls", &endpoint])
        .args(["--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("test={peer_url}")])
        .args(["--log-level", "error", "--unsafe-no-fsync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// An etcd of one test's own, which the test can stop and start again on the same data dir
/// and ports (an etcd restart). Declare it before the `Master` that uses it, so the master
/// stops first.
pub struct OwnEtcd {
    pub endpoint: String,
    dir: tempfile::TempDir,
    ports: (u16, u16),
    child: Option<Child>,
}

impl OwnEtcd {
    pub fn start() -> OwnEtcd {
        let dir = tempfile::Builder::new()
            .prefix("orkops-test-own-etcd-")
            .tempdir()
            .unwrap();
        let ports = (free_port(), free_port());
        let mut e = OwnEtcd {
            endpoint: format!("http://127.0.0.1:{}", ports.0),
            dir,
            ports,
            child: None,
        };
        e.spawn();
        e
    }

    fn spawn(&mut self) {
        let mut cmd = etcd_command(&self.dir.path().join("data"), self.ports.0, self.ports.1);
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().expect("etcd must be installed"));
        wait_until("etcd to answer /health", Duration::from_secs(60), || {
            http_get_plain(self.ports.0, "/health").contains("true")
        });
    }

    /// Kills etcd (SIGKILL, as a crash) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd again on the same data dir and ports.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "etcd is still running");
        self.spawn();
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn http_get_plain(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// A running `orkops-master` with its own data dir and etcd prefix.
pub struct Master {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub config: PathBuf,
    pub endpoint: String,
    /// What `--listen` gets: `127.0.0.1:0` unless started with `start_on`.
    pub listen: String,
    pub extra_args: Vec<String>,
    /// The etcd of `OwnEtcd`; None: the binary's shared one.
    pub etcd: Option<String>,
}

impl Master {
    pub fn start() -> Master {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Master {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// A master listening on `listen` (port 0 picks a free one); its admin.conf names that
    /// address, and its certificate holds it.
    pub fn start_on(listen: &str, extra: &[&str]) -> Master {
        Self::start_full(listen, None, extra)
    }

    /// A master on the etcd at `etcd` (an `OwnEtcd`'s endpoint).
    pub fn start_on_etcd(etcd: &str, extra: &[&str]) -> Master {
        Self::start_full("127.0.0.1:0", Some(etcd.to_string()), extra)
    }

    fn start_full(listen: &str, etcd: Option<String>, extra: &[&str]) -> Master {
        let dir = tempfile::Builder::new()
            .prefix("orkops-test-master-")
            .tempdir()
            .unwrap();
        let prefix = format!("/orkops-test-{}", uuid::Uuid::new_v4());
        let config = dir.path().join("admin.conf");
        let mut m = Master {
            child: None,
            dir,
            prefix,
            config,
            endpoint: String::new(),
            listen: listen.to_string(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            etcd,
        };
        m.spawn();
        m
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.config);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops-master"));
        let etcd_endpoint = self.etcd.clone().unwrap_or_else(|| etcd().endpoint.clone());
        cmd.args(["--listen", &self.listen, "--cluster-name", "test"])
            .args([
                "--etcd-endpoints",
                &etcd_endpoint,
                "--etcd-prefix",
                &self.prefix,
            ])
            .args(["--data-dir", self.dir.path().to_str().unwrap()])
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("master.log")).unwrap(),
            ));
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let cfg = self.config.clone();
        wait_until(
            "the master to write admin.conf",
            Duration::from_secs(60),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "orkops-master exited with {status}: {}",
                        std::fs::read_to_string(self_log(&cfg)).unwrap_or_default()
                    );
                }
                cfg.exists()
            },
        );
        self.endpoint = ClientConfig::load(&self.config).unwrap().endpoints[0].clone();
        self.child = Some(child);
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The cluster-wide join secret (never a bearer token).
    pub fn join_secret(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("join.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A join token for `node` (`orkops create join-token`).
    pub fn join_token(&self, node: &str) -> String {
        self.orkops(&["create", "join-token", node])
            .success()
            .trim()
            .to_string()
    }

    /// Writes the bootstrap config an agent of `node` joins with (`create join-token -o`).
    pub fn join_config(&self, node: &str, extra: &[&str], out: &std::path::Path) {
        let mut args = vec!["create", "join-token", node, "-o", out.to_str().unwrap()];
        args.extend(extra);
        self.orkops(&args).success();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("master.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("master is running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("orkops-master did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the `orkops` CLI against this master.
    pub fn orkops(&self, args: &[&str]) -> Run {
        self.orkops_stdin(args, None)
    }

    /// The `orkops` command for this master, for tests that drive the process themselves.
    pub fn orkops_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops"));
        cmd.args(args)
            .env("ORKOPS_CONFIG", &self.config)
            .env_remove("RUST_LOG");
        cmd
    }

    pub fn orkops_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.orkops_command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        Run(child.wait_with_output().unwrap())
    }

    /// An HTTPS client that trusts this cluster's CA (and sends no token by itself).
    pub fn http(&self) -> Http {
        let cfg = ClientConfig::load(&self.config).unwrap();
        let ca = reqwest::Certificate::from_pem(cfg.ca_pem().unwrap().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .unwrap();
        Http {
            client,
            base: self.endpoint.clone(),
        }
    }
}

fn self_log(cfg: &Path) -> PathBuf {
    cfg.with_file_name("master.log")
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.etcd.is_some() {
            return; // an own etcd goes with its data dir
        }
        // remove this test's keys from the shared etcd, from a thread of its own (we may be
        // inside a tokio runtime)
        let (ep, prefix) = (etcd().endpoint.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(store) = orkops::store::EtcdStore::connect(&[ep]).await {
                    let _ = store.delete_prefix(&prefix).await;
                }
            })
        })
        .join();
    }
}

/// The result of one CLI run.
pub struct Run(pub Output);

impl Run {
    pub fn ok(&self) -> bool {
        self.0.status.success()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn success(&self) -> String {
        assert!(
            self.ok(),
            "orkops failed: {}\nstdout: {}",
            self.stderr(),
            self.stdout()
        );
        self.stdout()
    }
    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn failure(&self) -> String {
        assert!(
            !self.ok(),
            "orkops should have failed; stdout: {}",
            self.stdout()
        );
        assert_eq!(self.0.status.code(), Some(1), "exit code");
        self.stderr()
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.success()).expect("JSON output")
    }
}

pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the master");
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A request with a body of any media type (and optionally an Accept): the status, the
    /// answer (JSON, else its text as a string) and the Warning headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content_type: &str,
        accept: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value, Vec<String>) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .expect("request reaches the master");
        let code = resp.status().as_u16();
        let warnings = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v, warnings)
    }
}

/// The image tests run (busybox-static from Debian, built locally once).
pub const TEST_IMAGE: &str = "orkops/busybox:1.35";

/// Builds `TEST_IMAGE` unless the engine has it.
pub fn test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-test-images");
        let out = Command::new(script).arg(TEST_IMAGE).output().unwrap();
        assert!(
            out.status.success(),
            "cannot build the test image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// `docker` with arguments; its stdout, trimmed.
pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim(),
    )
}

/// A real `orkops-agent` process for one node of a test master, on the machine's Docker
/// engine. Its node name is unique, and on drop every container and volume labelled with it
/// is removed, so a failed test leaks nothing.
pub struct Agent {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    bootstrap: PathBuf,
}

impl Agent {
    pub fn start(m: &Master) -> Agent {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        test_image();
        let name = format!(
            "t{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let dir = tempfile::Builder::new()
            .prefix("orkops-test-agent-")
            .tempdir()
            .unwrap();
        let mut a = Agent {
            name,
            dir,
            child: None,
            bootstrap: PathBuf::new(),
        };
        a.bootstrap = a.dir.path().join("bootstrap.conf");
        a.spawn(m);
        a
    }

    fn spawn(&mut self, m: &Master) {
        if !self.dir.path().join("node.conf").exists() {
            m.join_config(&self.name, &[], &self.bootstrap);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops-agent"));
        cmd.args(["--node-name", &self.name, "--listen", "127.0.0.1:0"])
            .args(["--address", "127.0.0.1", "--heartbeat-seconds", "2"])
            .args(["--bootstrap-config", self.bootstrap.to_str().unwrap()])
            .args(["--data-dir", self.dir.path().to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("agent.log"))
                    .unwrap(),
            ));
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let start = Instant::now();
        let marker = self.log().matches("agent ready").count();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("orkops-agent exited with {st}: {}", self.log());
            }
            if self.log().matches("agent ready").count() > marker {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the agent did not get ready in 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Stops the agent with SIGTERM (its containers keep running) and starts it again.
    pub fn restart(&mut self, m: &Master) {
        self.stop();
        self.spawn(m);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = c.kill();
                    panic!("orkops-agent did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn label(&self) -> String {
        format!("label=orkops.io/node={}", self.name)
    }

    /// Ids of this node's containers, running or not.
    pub fn containers(&self) -> Vec<String> {
        let (_, out) = docker(&["ps", "-aq", "--filter", &self.label()]);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Names of this node's volumes.
    pub fn volumes(&self) -> Vec<String> {
        let (_, out) = docker(&["volume", "ls", "-q", "--filter", &self.label()]);
        out.lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // a create the agent sent just before it was killed can still land in Docker after a
        // first look: look again until the node has had no container for a second (at most 10 s)
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut quiet_since = Instant::now();
        loop {
            let ids = self.containers();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids.iter().map(String::as_str));
                docker(&args);
                quiet_since = Instant::now();
            }
            if quiet_since.elapsed() >= Duration::from_secs(1) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let vols = self.volumes();
        if !vols.is_empty() {
            let mut args = vec!["volume", "rm", "-f"];
            args.extend(vols.iter().map(String::as_str));
            docker(&args);
        }
    }
}

// Figures printed by the benchmarks.

pub fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx].as_secs_f64() * 1e3
}

/// Prints p50/p99 and the rate: samples per second of `wall` time (the sum of the samples when
/// they ran one after another).
pub fn report(what: &str, samples: &mut [Duration], wall: Option<Duration>) {
    let total: Duration = wall.unwrap_or_else(|| samples.iter().sum());
    println!(
        "{what:<34} n={:<6} p50={:>8.2} ms  p99={:>8.2} ms  rate={:>8.0}/s",
        samples.len(),
        pct(samples, 0.50),
        pct(samples, 0.99),
        samples.len() as f64 / total.as_secs_f64()
    );
}

pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// A single-threaded tokio runtime for a test's async calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
