//! The bootstrap over SSH, the phase of `create cluster` after the infrastructure: for every
//! instance at once, wait for SSH and the user data's marker, check the host key and the
//! architecture, upload what changed (binaries, units, secrets, join config — compared by
//! SHA-256, so a second run uploads nothing), and start or restart the services as systemd
//! units. Masters run etcd and `orkops-master`, nodes `orkops-agent`, which joins with a join
//! token scoped to that node. A node whose agent already joined (it holds `node.conf`) is not
//! given a join token again.

pub mod render;
pub mod ssh;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::keys::PrivateKey;

use crate::cloud::model::Role;
use crate::progress::{Event, Reporter};
use render::{ClusterFacts, File, Machine, Secrets};
use ssh::{KnownHosts, Session, SshError, Target};

const PHASE: &str = "bootstrap";
/// Where the user data leaves its marker once the instance has what the bootstrap needs.
const USER_DATA_DONE: &str = "/var/lib/orkops/user-data.done";

/// The binaries the instances run, read from one directory.
#[derive(Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    pub master: Bytes,
    pub agent: Bytes,
    /// `x86_64` or `arm64`: what they are built for.
    pub arch: String,
}

impl Binaries {
    /// Reads `orkops-master` and `orkops-agent` from `dir` and checks they are ELF executables
    /// of one architecture.
    pub fn load(dir: &Path) -> Result<Binaries, String> {
        let read = |name: &str| -> Result<(Bytes, String), String> {
            let p = dir.join(name);
            let data = std::fs::read(&p).map_err(|e| {
                format!(
                    "{}: {e}; hint: build it (`cargo build --bins`) or point --binaries-dir at a directory holding orkops-master and orkops-agent",
                    p.display()
                )
            })?;
            let arch = elf_arch(&data).ok_or_else(|| {
                format!(
                    "{}: not a Linux executable for x86_64 or arm64",
                    p.display()
                )
            })?;
            Ok((Bytes::from(data), arch.to_string()))
        };
        let (master, a1) = read("orkops-master")?;
        let (agent, a2) = read("orkops-agent")?;
        if a1 != a2 {
            return Err(format!(
                "{}: orkops-master is built for {a1} but orkops-agent for {a2}",
                dir.display()
            ));
        }
        Ok(Binaries {
            dir: dir.to_path_buf(),
            master,
            agent,
            arch: a1,
        })
    }
}

/// The architecture of an ELF executable, in EC2's words.
fn elf_arch(data: &[u8]) -> Option<&'static str> {
    if data.len() < 20 || &data[..4] != b"\x7fELF" {
        return None;
    }
    match u16::from_le_bytes([data[18], data[19]]) {
        0x3e => Some("x86_64"),
        0xb7 => Some("arm64"),
        _ => None,
    }
}

/// Everything the bootstrap needs.
pub struct Input {
    pub facts: ClusterFacts,
    pub machines: Vec<Machine>,
    pub secrets: Secrets,
    /// The client config each node's agent joins with, by node name (its own join token, CA,
    /// the masters' private endpoints).
    pub join_configs: BTreeMap<String, String>,
    pub binaries: Binaries,
    pub key: Arc<PrivateKey>,
    pub known: Arc<KnownHosts>,
    pub user: String,
    pub ssh_port: u16,
    /// How long an instance's SSH may take to answer.
    pub ssh_deadline: Duration,
}

/// How long each part took on one instance.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    pub name: String,
    pub ssh: Duration,
    pub upload: Duration,
    pub start: Duration,
    pub uploaded_bytes: usize,
}

fn sha256(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// Bootstraps every machine at once; the error names every instance that failed. A cluster
/// of several masters whose etcd still talks to its peers over http is refused before any
/// instance is changed (`check_etcd_peers`).
pub async fn run(input: &Input, report: &dyn Reporter) -> Result<Vec<Timing>, SshError> {
    check_etcd_peers(input, report).await?;
    let results =
        futures::future::join_all(input.machines.iter().map(|m| one(input, m, report))).await;
    let mut timings = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(t) => timings.push(t),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        return Err(SshError::Several(failed));
    }
    Ok(timings)
}

/// Whether an installed etcd unit has etcd listen for its peers over plain http (a master
/// set up before etcd TLS).
pub fn http_peers(unit: &str) -> bool {
    unit.split_whitespace()
        .skip_while(|w| *w != "--listen-peer-urls")
        .nth(1)
        .is_some_and(|urls| urls.split(',').any(|u| u.starts_with("http://")))
}

/// The refusal of a cluster of several masters with http etcd peers: installing the https
/// units would restart every member at once with peer URLs the others do not have recorded,
/// and the cluster would lose quorum. README.md ("Moving an older cluster's etcd peers to
/// TLS") has the procedure, one member at a time.
pub fn refuse_http_peers(cluster: &str, old: &[String]) -> Result<(), SshError> {
    if old.is_empty() {
        return Ok(());
    }
    Err(SshError::Other(format!(
        "cluster {cluster}: etcd on {} still talks to its peers over plain http (set up before etcd TLS); restarting the members with https peers at once would lose etcd's quorum, so nothing was changed. hint: move the members to https peers one at a time as README.md (\"Moving an older cluster's etcd peers to TLS\") describes, then run `orkops update cluster {cluster} --yes` again",
        old.join(", ")
    )))
}

/// With several masters: reads each master's installed etcd unit (none on a new cluster) and
/// refuses, before anything is changed, when one has http peers.
async fn check_etcd_peers(input: &Input, report: &dyn Reporter) -> Result<(), SshError> {
    let masters: Vec<&Machine> = input
        .machines
        .iter()
        .filter(|m| m.role == Role::Master)
        .collect();
    if masters.len() < 2 {
        return Ok(());
    }
    let unit = render::unit_path(render::ETCD);
    let reads = masters.iter().map(|m| {
        let unit = unit.clone();
        async move {
            let t = target(input, m);
            report.report(Event::of(PHASE, &m.name, "checking etcd's peer URLs"));
            let s = ssh::connect(
                &t,
                input.key.clone(),
                input.known.clone(),
                input.ssh_deadline,
            )
            .await?;
            let text = s
                .root(
                    "reading the installed etcd unit",
                    &format!("cat {} 2>/dev/null; true", ssh::quote(&unit)),
                )
                .await;
            s.close().await;
            Ok::<_, SshError>((m.name.clone(), http_peers(&text?)))
        }
    });
    let mut old = Vec::new();
    let mut failed = Vec::new();
    for r in futures::future::join_all(reads).await {
        match r {
            Ok((name, true)) => old.push(name),
            Ok(_) => {}
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        return Err(SshError::Several(failed));
    }
    refuse_http_peers(&input.facts.name, &old)
}

fn target(input: &Input, m: &Machine) -> Target {
    Target {
        name: m.name.clone(),
        instance_id: m.instance_id.clone(),
        address: m.address().to_string(),
        port: input.ssh_port,
        user: input.user.clone(),
    }
}

async fn one(input: &Input, m: &Machine, report: &dyn Reporter) -> Result<Timing, SshError> {
    let say = |msg: String| report.report(Event::of(PHASE, &m.name, msg));
    let start = Instant::now();
    let target = target(input, m);
    if m.arch != input.binaries.arch {
        return Err(SshError::Other(format!(
            "{target}: the instance is {} but the binaries in {} are built for {}; hint: pass --binaries-dir with {} builds",
            m.arch,
            input.binaries.dir.display(),
            input.binaries.arch,
            m.arch
        )));
    }
    say(format!("waiting for SSH at {}", target.address));
    let s = ssh::connect(
        &target,
        input.key.clone(),
        input.known.clone(),
        input.ssh_deadline,
    )
    .await?;
    let r = provision(input, m, &s, &say, start).await;
    s.close().await;
    let t = r?;
    report.report(
        Event::of(
            PHASE,
            &m.name,
            format!(
                "{} running (ssh {:.1} s, upload {:.1} s, start {:.1} s)",
                render::services(m.role).join(", "),
                t.ssh.as_secs_f64(),
                t.upload.as_secs_f64(),
                t.start.as_secs_f64()
            ),
        )
        .done(),
    );
    Ok(t)
}

async fn provision(
    input: &Input,
    m: &Machine,
    s: &Session,
    say: &dyn Fn(String),
    start: Instant,
) -> Result<Timing, SshError> {
    let t = &s.target;
    // the user data prepares the packages; wait for its marker
    say("waiting for the user data to finish".into());
    if !s
        .until_ok(&format!("test -f {USER_DATA_DONE}"), input.ssh_deadline)
        .await?
    {
        return Err(SshError::Other(format!(
            "{t}: the user data did not finish within {} s ({USER_DATA_DONE} is missing); hint: see the instance's console output or /var/log/cloud-init-output.log",
            input.ssh_deadline.as_secs()
        )));
    }
    let ssh_done = start.elapsed();
    if !s.run("command -v systemctl >/dev/null", None).await?.ok() {
        return Err(SshError::Other(format!(
            "{t}: no systemctl: orkops runs its services as systemd units; hint: use an image with systemd (Debian's have it)"
        )));
    }

    let mut files: Vec<File> = match m.role {
        Role::Master => render::master_files(&input.facts, m, &input.secrets),
        Role::Node => {
            let join = input.join_configs.get(&m.name).ok_or_else(|| {
                SshError::Other(format!("{t}: no join config was made for node {}", m.name))
            })?;
            render::node_files(&input.facts, m, join)
        }
    }
    .map_err(|e| SshError::Other(format!("{t}: {e}")))?;
    if m.role == Role::Node && joined(s).await? {
        // its agent holds its node token: no join token goes back on the node
        files.retain(|f| f.path != render::join_config_path());
    }
    let (binary, service) = match m.role {
        Role::Master => (input.binaries.master.clone(), render::MASTER),
        Role::Node => (input.binaries.agent.clone(), render::AGENT),
    };
    files.push(File {
        path: format!("/usr/local/bin/{service}"),
        mode: 0o755,
        contents: binary,
        service: Some(service),
    });

    // what is there already, by SHA-256
    let paths: Vec<String> = files.iter().map(|f| ssh::quote(&f.path)).collect();
    let listing = s
        .root(
            "reading the installed files",
            &format!("sha256sum {} 2>/dev/null; true", paths.join(" ")),
        )
        .await?;
    let have: BTreeMap<&str, &str> = listing
        .lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once("  ")?;
            Some((path, sum))
        })
        .collect();
    let mut changed: Vec<&'static str> = Vec::new();
    let mut uploaded = 0;
    for f in &files {
        if have.get(f.path.as_str()) == Some(&sha256(&f.contents).as_str()) {
            continue;
        }
        say(format!(
            "uploading {} ({} kB)",
            f.path,
            f.contents.len().div_ceil(1024)
        ));
        s.upload(f.contents.clone(), &f.path, f.mode).await?;
        uploaded += f.contents.len();
        if let Some(svc) = f.service {
            if !changed.contains(&svc) {
                changed.push(svc);
            }
        }
    }
    let upload_done = start.elapsed();

    if m.role == Role::Node {
        say("waiting for the container engine".into());
        if !s
            .until_ok("docker info >/dev/null 2>&1", input.ssh_deadline)
            .await?
        {
            return Err(SshError::Other(format!(
                "{t}: the Docker engine does not answer (docker info); hint: the node's image must have Docker (the user data installs docker.io)"
            )));
        }
    }
    for svc in render::services(m.role) {
        let verb = if changed.contains(svc) {
            "restart"
        } else {
            "start"
        };
        say(format!("{verb}ing {svc}"));
        let script =
            format!("systemctl daemon-reload && systemctl enable {svc} && systemctl {verb} {svc}");
        s.root(&format!("{verb}ing {svc}"), &script).await?;
    }
    let started = start.elapsed();
    Ok(Timing {
        name: m.name.clone(),
        ssh: ssh_done,
        upload: upload_done - ssh_done,
        start: started - upload_done,
        uploaded_bytes: uploaded,
    })
}

/// Whether the node's agent has joined (it keeps its node token in `node.conf`).
async fn joined(s: &Session) -> Result<bool, SshError> {
    let out = s
        .root(
            "checking whether the agent joined",
            &format!(
                "test -f {}/node.conf && echo joined; true",
                render::AGENT_DIR
            ),
        )
        .await?;
    Ok(out.trim() == "joined")
}

#[cfg(test)]
mod tests {
    #[test]
    fn etcd_units_with_http_peers_are_found_and_refused() {
        let old = "ExecStart=/usr/bin/etcd --name master-1 --listen-client-urls http://127.0.0.1:2379 --listen-peer-urls http://10.0.0.4:2380 --initial-cluster master-1=http://10.0.0.4:2380";
        let new = "ExecStart=/usr/bin/etcd --name master-1 --listen-peer-urls https://10.0.0.4:2380 --initial-cluster master-1=https://10.0.0.4:2380";
        assert!(super::http_peers(old));
        assert!(!super::http_peers(new));
        assert!(!super::http_peers(""), "no unit: a new master");
        assert!(super::refuse_http_peers("dev", &[]).is_ok());
        let e = super::refuse_http_peers("dev", &["master-1".into(), "master-3".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("master-1, master-3")
                && e.contains("quorum")
                && e.contains("nothing was changed")
                && e.contains("Moving an older cluster's etcd peers to TLS"),
            "{e}"
        );
    }

    #[test]
    fn elf_headers_tell_the_architecture() {
        let mut x86 = b"\x7fELF".to_vec();
        x86.resize(20, 0);
        x86[18] = 0x3e;
        assert_eq!(super::elf_arch(&x86), Some("x86_64"));
        x86[18] = 0xb7;
        assert_eq!(super::elf_arch(&x86), Some("arm64"));
        assert_eq!(super::elf_arch(b"#!/bin/sh\n"), None);
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            super::elf_arch(&me),
            Some(if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "x86_64"
            })
        );
    }
}
