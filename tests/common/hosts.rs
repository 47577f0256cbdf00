//! Separate test hosts on one machine, for tests where nodes must not share a network: a `Lan`
//! (a bridge in a network namespace of its own, reached from the root namespace through a
//! veth) and `Host`s on it, each a network namespace with its own dockerd and one
//! `orkops-agent`. Everything is named `okl<pid>n<k>` (lans) or `okh<pid>n<k>` (hosts, also
//! the node name), so names are short (interface names have 15 characters at most), unique
//! across concurrent test processes, and tell which process made them: creating a `Lan`
//! first removes what test processes that no longer exist (killed runs) left behind.
//!
//! Needs root, iproute2, nsenter and dockerd.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{die_with_parent, docker, test_image, Master, TEST_IMAGE};

const READY_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// `okl<pid>n<k>` or `okh<pid>n<k>` (at most 3 + 7 + 1 + 3 characters), and k.
fn unique_name(kind: char) -> (String, u32) {
    static N: AtomicU32 = AtomicU32::new(0);
    let k = N.fetch_add(1, Ordering::Relaxed);
    (format!("ok{kind}{}n{k}", std::process::id()), k)
}

/// Whether `text` names `name` itself, not a longer name containing it (`okh1n1` in `okh1n10`).
fn mentions(text: &str, name: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(name).any(|(i, _)| {
        !alnum(text[..i].chars().next_back()) && !alnum(text[i + name.len()..].chars().next())
    })
}

/// The pid of the test process that made `name`, if it is one of ours.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix("okl")
        .or_else(|| name.strip_prefix("okh"))?;
    let (pid, k) = rest.split_once('n')?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// One of ours, made by a test process that no longer exists.
fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| {
        pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Runs a program; success and its stdout followed by its stderr, trimmed.
fn run(cmd: &mut Command) -> (bool, String) {
    // `output` gives the child an empty stdin unless the caller set one
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(err.trim());
    }
    (out.status.success(), text)
}

/// `ip ARGS`, which must succeed.
#[track_caller]
fn ip(args: &[&str]) {
    let (ok, out) = run(Command::new("ip").args(args));
    assert!(ok, "ip {}: {out}", args.join(" "));
}

/// `ip ARGS`, for cleaning up: failures (already gone) are fine.
fn ip_quiet(args: &[&str]) {
    let _ = run(Command::new("ip").args(args));
}

fn netns_path(name: &str) -> String {
    format!("/var/run/netns/{name}")
}

fn netns_list() -> Vec<String> {
    let (_, out) = run(Command::new("ip").args(["netns", "list"]));
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Names of the root namespace's interfaces (without the `@peer` suffix).
fn root_links() -> Vec<String> {
    let (_, out) = run(Command::new("ip").args(["-o", "link"]));
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn host_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("orkops-{name}"))
}

fn socket_path(name: &str) -> String {
    format!("/run/{name}.sock")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Proc {
    pid: u32,
    ppid: u32,
    zombie: bool,
    cmdline: String,
}

fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = after.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push(Proc {
            pid,
            ppid,
            zombie: state == "Z" || state == "X",
            cmdline,
        });
    }
    out
}

/// Mount points (this mount namespace) at or under `dir`, deepest first.
fn mounts_under(dir: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == dir || p.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    points
}

/// Removes what a host's engine may leave when it did not stop cleanly: every process that
/// names the host's directory or socket (dockerd, its containerd, containerd shims,
/// fuse-overlayfs, the agent) with its descendants (the containers), the shims' sockets, the
/// mounts under the directory, and the socket file. Never fails.
fn purge_host(name: &str) {
    let dir = host_dir(name).to_string_lossy().to_string();
    let sock = socket_path(name);
    let all = processes();
    let me = std::process::id();
    let mut doomed: Vec<u32> = all
        .iter()
        .filter(|p| p.pid != me && !p.zombie)
        .filter(|p| mentions(&p.cmdline, &dir) || p.cmdline.contains(&sock))
        .map(|p| p.pid)
        .collect();
    loop {
        let more: Vec<u32> = all
            .iter()
            .filter(|p| !p.zombie && doomed.contains(&p.ppid) && !doomed.contains(&p.pid))
            .map(|p| p.pid)
            .collect();
        if more.is_empty() {
            break;
        }
        doomed.extend(more);
    }
    for p in all.iter().filter(|p| doomed.contains(&p.pid)) {
        // a SIGKILLed shim leaves its socket: /run/containerd/s/sha256(ADDRESS/NAMESPACE/ID)
        if p.cmdline.contains("containerd-shim") {
            let arg = |flag: &str| {
                let words: Vec<&str> = p.cmdline.split_whitespace().collect();
                words
                    .iter()
                    .position(|w| *w == flag)
                    .and_then(|i| words.get(i + 1))
                    .map(|s| s.to_string())
            };
            if let (Some(addr), Some(ns), Some(id)) =
                (arg("-address"), arg("-namespace"), arg("-id"))
            {
                let digest = ring::digest::digest(
                    &ring::digest::SHA256,
                    format!("{addr}/{ns}/{id}").as_bytes(),
                );
                let _ = std::fs::remove_file(format!(
                    "/run/containerd/s/{}",
                    hex::encode(digest.as_ref())
                ));
            }
        }
        unsafe {
            libc::kill(p.pid as i32, libc::SIGKILL);
        }
    }
    let start = Instant::now();
    while start.elapsed() < STOP_DEADLINE
        && processes()
            .iter()
            .any(|p| !p.zombie && doomed.contains(&p.pid))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in mounts_under(&dir) {
        if let Ok(c) = std::ffi::CString::new(m) {
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    let _ = std::fs::remove_file(&sock);
}

/// Removes the namespaces, interfaces, engines and directories of test processes that no
/// longer exist (a run killed with SIGKILL cannot clean up after itself).
fn sweep_stale() {
    let mut names: Vec<String> = netns_list();
    names.extend(root_links());
    for e in std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(n) = e.file_name().to_string_lossy().strip_prefix("orkops-") {
            names.push(n.to_string());
        }
    }
    for e in std::fs::read_dir("/run").into_iter().flatten().flatten() {
        if let Some(n) = e.file_name().to_string_lossy().strip_suffix(".sock") {
            names.push(n.to_string());
        }
    }
    names.sort();
    names.dedup();
    for name in names.iter().filter(|n| is_stale(n)) {
        eprintln!("removing {name}, left by a test process that no longer exists");
        if name.starts_with("okh") {
            purge_host(name);
            let _ = std::fs::remove_dir_all(host_dir(name));
        }
        ip_quiet(&["netns", "delete", name]);
        ip_quiet(&["link", "delete", name]);
    }
}

/// An exclusive lock on a file shared by every test process, held until dropped: choosing a
/// lan subnet and sweeping leftovers happen under it.
struct LanLock(File);

impl LanLock {
    fn take() -> LanLock {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("orkops-test-lan.lock"))
            .unwrap();
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        LanLock(f)
    }
}

/// A private L2 network for test hosts: a bridge inside its own network namespace (so the
/// root namespace's Docker iptables rules never see bridged traffic), plus a veth from the root
/// namespace into it carrying `root_ip` so the test process (and a master listening on
/// root_ip) can reach every host.
pub struct Lan {
    /// Also the name of its namespace and of the root namespace's end of the veth.
    pub name: String,
    /// `10.213.X.0/24`
    pub subnet: String,
    /// `10.213.X.1`, in the root namespace.
    pub root_ip: Ipv4Addr,
    octet: u8,
}

impl Lan {
    pub fn new() -> Lan {
        let _lock = LanLock::take();
        sweep_stale();
        let (name, k) = unique_name('l');
        let (_, addrs) = run(Command::new("ip").args(["-4", "-o", "addr"]));
        let seed = std::process::id() as usize + k as usize;
        let octet = (0..250)
            .map(|i| ((seed + i) % 250 + 1) as u8)
            .find(|x| !addrs.contains(&format!(" 10.213.{x}.")))
            .expect("a free 10.213.X.0/24 subnet");
        let lan = Lan {
            subnet: format!("10.213.{octet}.0/24"),
            root_ip: Ipv4Addr::new(10, 213, octet, 1),
            name,
            octet,
        };
        // from here on, a failure drops `lan`, which deletes what exists
        let n = lan.name.as_str();
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ip(&["-n", n, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", n, "link", "set", "br0", "up"]);
        ip(&[
            "link", "add", n, "type", "veth", "peer", "name", "root", "netns", n,
        ]);
        ip(&["-n", n, "link", "set", "root", "master", "br0", "up"]);
        ip(&["addr", "add", &format!("{}/24", lan.root_ip), "dev", n]);
        ip(&["link", "set", n, "up"]);
        lan
    }

    /// The address of host `i` (0..240): `10.213.X.(10 + i)`.
    pub fn host_ip(&self, i: u8) -> Ipv4Addr {
        assert!(i < 240, "host index {i} is out of range");
        Ipv4Addr::new(10, 213, self.octet, 10 + i)
    }
}

impl Default for Lan {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // deleting the namespace destroys the bridge and both ends of the veth
        ip_quiet(&["netns", "delete", &self.name]);
        ip_quiet(&["link", "delete", &self.name]);
    }
}

/// The storage driver of the machine's engine (it is known to work on this machine).
fn storage_driver() -> &'static str {
    static DRIVER: OnceLock<String> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let (ok, out) = docker(&["info", "--format", "{{.Driver}}"]);
        if ok && !out.is_empty() && !out.contains(' ') {
            out
        } else {
            "fuse-overlayfs".to_string()
        }
    })
}

/// One test host: its own network namespace attached to the Lan at its own address, its own
/// dockerd (own data-root, exec-root and socket, started inside the namespace), the test image
/// loaded into it, and one `orkops-agent` running inside the namespace against that dockerd.
pub struct Host {
    /// Also the node name and the namespace's name.
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    /// `unix:///run/NAME.sock`
    pub docker_host: String,
    dir: PathBuf,
    agent_args: Vec<String>,
    dockerd: Option<Child>,
    agent: Option<Child>,
    netns_made: bool,
    /// The lan's namespace, which holds this host's end of the cable (the veth named `name`).
    lan_netns: String,
}

impl Host {
    /// Starts host `index` of `lan` and its agent for `m`; returns when the agent logged
    /// "agent ready" and its Node is Ready.
    pub fn start(lan: &Lan, m: &Master, index: u8, agent_args: &[&str]) -> Host {
        let started = Instant::now();
        test_image();
        let (name, _) = unique_name('h');
        let dir = host_dir(&name);
        let mut h = Host {
            ip: lan.host_ip(index),
            netns: name.clone(),
            docker_host: format!("unix://{}", socket_path(&name)),
            name,
            dir,
            agent_args: agent_args.iter().map(|s| s.to_string()).collect(),
            dockerd: None,
            agent: None,
            netns_made: false,
            lan_netns: lan.name.clone(),
        };
        // from here on, a failure drops `h`, which removes what exists
        std::fs::create_dir_all(h.dir.join("agent")).unwrap();
        let n = h.name.clone();
        ip(&["netns", "add", &n]);
        h.netns_made = true;
        ip(&["-n", &n, "link", "set", "lo", "up"]);
        ip(&[
            "link", "add", "eth0", "netns", &n, "type", "veth", "peer", "name", &n, "netns",
            &lan.name,
        ]);
        ip(&["-n", &lan.name, "link", "set", &n, "master", "br0", "up"]);
        ip(&[
            "-n",
            &n,
            "addr",
            "add",
            &format!("{}/24", h.ip),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &n, "link", "set", "eth0", "up"]);
        let (ok, out) = h.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        assert!(ok, "cannot enable ip_forward in {n}: {out}");

        h.start_dockerd();
        let engine_up = started.elapsed();
        h.load_test_image();
        let image_in = started.elapsed();
        h.start_agent(m);
        eprintln!(
            "host {} ({}) up in {:.1} s: engine {:.1} s, image {:.1} s, agent and Ready node {:.1} s",
            h.name,
            h.ip,
            started.elapsed().as_secs_f64(),
            engine_up.as_secs_f64(),
            (image_in - engine_up).as_secs_f64(),
            (started.elapsed() - image_in).as_secs_f64()
        );
        h
    }

    fn start_dockerd(&mut self) {
        let config = self.dir.join("daemon.json");
        // the machine's /etc/docker/daemon.json names its data-root: read an empty one instead
        std::fs::write(&config, "{}").unwrap();
        let log = File::create(self.dir.join("dockerd.log")).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns_path(&self.netns)))
            .arg("dockerd")
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(self.dir.join("d"))
            .arg("--exec-root")
            .arg(self.dir.join("e"))
            .args(["-H", &self.docker_host])
            .arg("--pidfile")
            .arg(self.dir.join("dockerd.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .args(["--storage-driver", storage_driver()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("nsenter and dockerd must be installed");
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "dockerd of {} exited with {st}:\n{}",
                    self.name,
                    tail(&self.dockerd_log(), 30)
                );
            }
            if self
                .docker(&["version", "--format", "{{.Server.Version}}"])
                .0
            {
                break;
            }
            if start.elapsed() > READY_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "dockerd of {} did not answer within {READY_DEADLINE:?}:\n{}",
                    self.name,
                    tail(&self.dockerd_log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.dockerd = Some(child);
    }

    /// `docker save TEST_IMAGE | docker -H SOCK load`
    fn load_test_image(&self) {
        let mut save = Command::new("docker")
            .args(["save", TEST_IMAGE])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (ok, out) = run(Command::new("docker")
            .args(["-H", &self.docker_host, "load"])
            .stdin(save.stdout.take().unwrap()));
        let saved = save.wait_with_output().unwrap();
        assert!(
            ok && saved.status.success(),
            "cannot load {TEST_IMAGE} into {}: {out} {}",
            self.name,
            String::from_utf8_lossy(&saved.stderr)
        );
    }

    /// The `docker` CLI against this host's engine: success and stdout + stderr, trimmed.
    pub fn docker(&self, args: &[&str]) -> (bool, String) {
        run(Command::new("docker")
            .args(["-H", &self.docker_host])
            .args(args))
    }

    /// Runs a command inside the host's network namespace.
    pub fn exec(&self, cmd: &[&str]) -> (bool, String) {
        run(Command::new("nsenter")
            .arg(format!("--net={}", netns_path(&self.netns)))
            .args(cmd))
    }

    /// The agent's process id, while it runs.
    #[allow(dead_code)] // used by the network benchmark
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    pub fn dockerd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "agent log:\n{}\n--- dockerd log (tail):\n{}",
            tail(&self.agent_log(), 60),
            tail(&self.dockerd_log(), 20)
        )
    }

    /// Starts the agent (again) and waits until it logs "agent ready" and the Node is Ready.
    pub fn start_agent(&mut self, m: &Master) {
        assert!(self.agent.is_none(), "the agent of {} runs", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let listen = format!("{}:10250", self.ip);
        let data = self.dir.join("agent");
        let bootstrap = self.dir.join("bootstrap.conf");
        if !data.join("node.conf").exists() {
            m.join_config(&self.name, &["--address", &self.ip.to_string()], &bootstrap);
        }
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns_path(&self.netns)))
            .arg(env!("CARGO_BIN_EXE_orkops-agent"))
            .args(["--node-name", &self.name])
            .args(["--address", &self.ip.to_string(), "--listen", &listen])
            .args(["--heartbeat-seconds", "2"])
            .arg("--bootstrap-config")
            .arg(&bootstrap)
            .arg("--data-dir")
            .arg(&data)
            .args(&self.agent_args)
            .env("DOCKER_HOST", &self.docker_host)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        die_with_parent(&mut cmd);
        let marker = self.agent_log().matches("agent ready").count();
        let child = cmd.spawn().unwrap();
        self.agent = Some(child);
        let start = Instant::now();
        let mut logged = false;
        loop {
            if let Ok(Some(st)) = self.agent.as_mut().unwrap().try_wait() {
                self.agent = None;
                panic!(
                    "orkops-agent of {} exited with {st}\n{}",
                    self.name,
                    self.logs()
                );
            }
            logged = logged || self.agent_log().matches("agent ready").count() > marker;
            if logged && self.node_ready(m) {
                break;
            }
            assert!(
                start.elapsed() < READY_DEADLINE,
                "{} did not get ready within {READY_DEADLINE:?} (agent ready logged: {logged})\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn node_ready(&self, m: &Master) -> bool {
        let r = m.orkops(&["get", "node", &self.name, "-o", "json"]);
        if !r.ok() {
            return false;
        }
        let node: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap_or_default();
        node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }

    /// Stops the agent with SIGTERM (its containers keep running).
    pub fn stop_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while c.try_wait().unwrap().is_none() {
                if start.elapsed() > STOP_DEADLINE {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "the agent of {} did not stop within {STOP_DEADLINE:?} of SIGTERM",
                        self.name
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The host is gone, at once and for good: the agent is killed, the containers removed,
    /// dockerd stopped and the namespace (with its interfaces) deleted. The other hosts are
    /// unaffected. Does not fail; doing it twice does nothing more.
    pub fn power_off(&mut self) {
        // Pull the cable first: deleting the lan's end of the veth destroys both ends at once,
        // whereas `ip netns delete` only drops the name, and the namespace (with its address)
        // lives on while anything still holds it, such as a container's mount namespace.
        ip_quiet(&["-n", &self.lan_netns, "link", "delete", &self.name]);
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut d) = self.dockerd.take() {
            let (_, ids) = self.docker(&["ps", "-aq"]);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                self.docker(&args);
            }
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            let start = Instant::now();
            while matches!(d.try_wait(), Ok(None)) && start.elapsed() < STOP_DEADLINE {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        // whatever did not stop cleanly: processes, mounts, sockets
        purge_host(&self.name);
        if self.netns_made {
            ip_quiet(&["netns", "delete", &self.netns]);
            self.netns_made = false;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.power_off();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts that nothing named after `names` (lans and hosts) is left: no network namespace,
/// no interface in the root namespace, no process (dockerd, containerd, shims, agents), no
/// mount, no socket or directory, and no container of such a node in the machine's engine.
#[track_caller]
pub fn assert_no_leftovers(names: &[&str]) {
    let mut left = Vec::new();
    let netns = netns_list();
    let links = root_links();
    let procs = processes();
    let me = std::process::id();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for name in names {
        left.extend(
            netns
                .iter()
                .filter(|n| n == name)
                .map(|n| format!("network namespace {n}")),
        );
        left.extend(
            links
                .iter()
                .filter(|l| l == name)
                .map(|l| format!("interface {l}")),
        );
        left.extend(
            procs
                .iter()
                .filter(|p| p.pid != me && !p.zombie && mentions(&p.cmdline, name))
                .map(|p| format!("process {}: {}", p.pid, p.cmdline)),
        );
        left.extend(
            mountinfo
                .lines()
                .filter(|l| mentions(l, name))
                .map(|l| format!("mount {l}")),
        );
        for path in [PathBuf::from(socket_path(name)), host_dir(name)] {
            if path.exists() {
                left.push(format!("file {}", path.display()));
            }
        }
        let (_, ids) = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=orkops.io/node={name}"),
        ]);
        left.extend(
            ids.split_whitespace()
                .map(|id| format!("container {id} of node {name} in the machine's engine")),
        );
    }
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
}
