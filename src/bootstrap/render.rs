//! The files the bootstrap puts on each instance, rendered from `templates/` (tera): the
//! systemd units of etcd, `orkops-master` and `orkops-agent`, the masters' cluster secrets and
//! the nodes' join config. Pure: no I/O, so what an instance gets is unit-tested.

use bytes::Bytes;

use crate::cloud::model::Role;
use crate::names;

/// What every instance's files are rendered from.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    pub name: String,
    pub region: String,
    pub api_port: i32,
    pub agent_port: i32,
    /// The API load balancer's DNS name, when it has one.
    pub api_dns: Option<String>,
    /// (name, private IP) of every master, in name order.
    pub masters: Vec<(String, String)>,
    /// Extra `orkops-master` flags (the load balancer controller's).
    pub master_flags: Vec<String>,
}

/// One instance as the bootstrap sees it.
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub role: Role,
    pub instance_id: String,
    pub zone: String,
    pub size: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    /// `x86_64` or `arm64`, as EC2 says.
    pub arch: String,
}

impl Machine {
    /// Where orkops reaches it from outside the VPC.
    pub fn address(&self) -> &str {
        self.public_ip.as_deref().unwrap_or(&self.private_ip)
    }
}

/// The cluster's shared secrets, as the masters keep them in their data directory.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub ca_cert: String,
    pub ca_key: String,
    pub admin_token: String,
    pub join_token: String,
    pub signing_key: String,
    pub etcd: EtcdSecrets,
}

/// etcd's TLS material, from a CA of its own (as kops has it), so no certificate of the cluster
/// CA, which signs the nodes', can ever be an etcd client.
#[derive(Debug, Clone, Default)]
pub struct EtcdSecrets {
    pub ca_cert: String,
    /// orkops-master's client certificate and key.
    pub client_cert: String,
    pub client_key: String,
    /// Each master's member certificates, by master name.
    pub members: std::collections::BTreeMap<String, crate::pki::EtcdMemberCerts>,
}

/// One file to place on an instance.
#[derive(Debug, Clone)]
pub struct File {
    pub path: String,
    pub mode: u32,
    pub contents: Bytes,
    /// The service to restart when the file changes.
    pub service: Option<&'static str>,
}

impl File {
    fn new(path: &str, mode: u32, contents: impl Into<Bytes>, service: &'static str) -> File {
        File {
            path: path.to_string(),
            mode,
            contents: contents.into(),
            service: Some(service),
        }
    }
}

pub const ETCD: &str = "orkops-etcd";
pub const MASTER: &str = "orkops-master";
pub const AGENT: &str = "orkops-agent";
pub const MASTER_DIR: &str = "/var/lib/orkops-master";
pub const AGENT_DIR: &str = "/var/lib/orkops-agent";
/// etcd's certificates and keys on a master.
pub const ETCD_PKI_DIR: &str = "/etc/orkops-etcd/pki";

/// The services of a role, in start order.
pub fn services(role: Role) -> &'static [&'static str] {
    match role {
        Role::Master => &[ETCD, MASTER],
        Role::Node => &[AGENT],
    }
}

pub fn unit_path(service: &str) -> String {
    format!("/etc/systemd/system/{service}.service")
}

fn tera() -> Result<tera::Tera, String> {
    let mut t = tera::Tera::default();
    t.add_raw_templates([
        (
            "orkops-etcd.service",
            include_str!("../../templates/units/orkops-etcd.service.tera"),
        ),
        (
            "orkops-master.service",
            include_str!("../../templates/units/orkops-master.service.tera"),
        ),
        (
            "orkops-agent.service",
            include_str!("../../templates/units/orkops-agent.service.tera"),
        ),
    ])
    .map_err(|e| format!("templates/units: {e:?}"))?;
    Ok(t)
}

fn render(name: &str, ctx: &tera::Context) -> Result<String, String> {
    tera()?
        .render(name, ctx)
        .map_err(|e| format!("templates/units/{name}.tera: {e:?}"))
}

fn base(c: &ClusterFacts, m: &Machine) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("cluster", &c.name);
    ctx.insert("region", &c.region);
    ctx.insert("name", &m.name);
    ctx.insert("private_ip", &m.private_ip);
    ctx.insert("api_port", &c.api_port);
    ctx.insert("agent_port", &c.agent_port);
    ctx
}

/// A master's units and secrets (its binary is added by the caller).
pub fn master_files(c: &ClusterFacts, m: &Machine, s: &Secrets) -> Result<Vec<File>, String> {
    let mut ctx = base(c, m);
    let initial: Vec<String> = c
        .masters
        .iter()
        .map(|(n, ip)| format!("{n}=https://{ip}:2380"))
        .collect();
    ctx.insert("initial_cluster", &initial.join(","));
    let mut advertise = Vec::new();
    advertise.extend(c.api_dns.clone());
    advertise.extend(m.public_ip.clone());
    advertise.push(m.private_ip.clone());
    ctx.insert("advertise", &advertise.join(","));
    let mut etcd = vec!["https://127.0.0.1:2379".to_string()];
    etcd.extend(
        c.masters
            .iter()
            .filter(|(n, _)| n != &m.name)
            .map(|(_, ip)| format!("https://{ip}:2379")),
    );
    ctx.insert("etcd_endpoints", &etcd.join(","));
    ctx.insert("etcd_pki", ETCD_PKI_DIR);
    ctx.insert("master_dir", MASTER_DIR);
    ctx.insert("master_flags", &c.master_flags);
    let secret = |name: &str, v: &str| {
        File::new(
            &format!("{MASTER_DIR}/{name}"),
            0o600,
            v.to_string(),
            MASTER,
        )
    };
    let mut files = vec![
        File::new(
            &unit_path(ETCD),
            0o644,
            render("orkops-etcd.service", &ctx)?,
            ETCD,
        ),
        File::new(
            &unit_path(MASTER),
            0o644,
            render("orkops-master.service", &ctx)?,
            MASTER,
        ),
        secret("ca.crt", &s.ca_cert),
        secret("ca.key", &s.ca_key),
        secret("admin.token", &s.admin_token),
        secret("join.token", &s.join_token),
        secret("signing.key", &s.signing_key),
    ];
    files.extend(etcd_files(m, &s.etcd)?);
    Ok(files)
}

/// A master's etcd certificates (restarting etcd) and orkops-master's etcd client certificate
/// (restarting the master), all 0600.
fn etcd_files(m: &Machine, s: &EtcdSecrets) -> Result<Vec<File>, String> {
    let member = s.members.get(&m.name).ok_or_else(|| {
        format!(
            "no etcd certificates for {}; hint: they are issued with the cluster's secrets for every master",
            m.name
        )
    })?;
    let etcd = |name: &str, v: &str| {
        File::new(
            &format!("{ETCD_PKI_DIR}/{name}"),
            0o600,
            v.to_string(),
            ETCD,
        )
    };
    let master = |name: &str, v: &str| {
        File::new(
            &format!("{MASTER_DIR}/{name}"),
            0o600,
            v.to_string(),
            MASTER,
        )
    };
    Ok(vec![
        etcd("ca.crt", &s.ca_cert),
        etcd("peer.crt", &member.peer_cert),
        etcd("peer.key", &member.peer_key),
        etcd("server.crt", &member.server_cert),
        etcd("server.key", &member.server_key),
        master("etcd-ca.crt", &s.ca_cert),
        master("etcd-client.crt", &s.client_cert),
        master("etcd-client.key", &s.client_key),
    ])
}

/// Where a node's join config goes (its agent deletes it once joined).
pub fn join_config_path() -> String {
    format!("{AGENT_DIR}/bootstrap.conf")
}

/// A node's unit and join config (its binary is added by the caller).
pub fn node_files(c: &ClusterFacts, m: &Machine, join_config: &str) -> Result<Vec<File>, String> {
    let mut ctx = base(c, m);
    let labels = [
        format!("{}={}", names::LABEL_ZONE, m.zone),
        format!("{}={}", names::LABEL_INSTANCE_TYPE, m.size),
        format!("{}={}", names::LABEL_INSTANCE_ID, m.instance_id),
    ];
    ctx.insert("labels", &labels.join(","));
    Ok(vec![
        File::new(
            &unit_path(AGENT),
            0o644,
            render("orkops-agent.service", &ctx)?,
            AGENT,
        ),
        File::new(&join_config_path(), 0o600, join_config.to_string(), AGENT),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ClusterFacts {
        ClusterFacts {
            name: "dev".into(),
            region: "us-east-1".into(),
            api_port: 6443,
            agent_port: 10250,
            api_dns: Some("dev-api-1.elb.example".into()),
            masters: vec![
                ("master-1".into(), "10.0.0.4".into()),
                ("master-2".into(), "10.0.16.4".into()),
                ("master-3".into(), "10.0.32.4".into()),
            ],
            master_flags: vec!["--cloud".into(), "aws".into()],
        }
    }

    fn machine(name: &str, role: Role, ip: &str) -> Machine {
        Machine {
            name: name.into(),
            role,
            instance_id: "i-123".into(),
            zone: "us-east-1b".into(),
            size: "t3.medium".into(),
            private_ip: ip.into(),
            public_ip: Some("54.0.0.9".into()),
            arch: "x86_64".into(),
        }
    }

    fn text(files: &[File], path: &str) -> String {
        let f = files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no {path}"));
        String::from_utf8(f.contents.to_vec()).unwrap()
    }

    fn secrets() -> Secrets {
        Secrets {
            ca_cert: "CERT".into(),
            ca_key: "KEY".into(),
            admin_token: "a".into(),
            join_token: "j".into(),
            signing_key: "s".into(),
            etcd: EtcdSecrets {
                ca_cert: "ETCD-CA".into(),
                client_cert: "CLIENT-CERT".into(),
                client_key: "CLIENT-KEY".into(),
                members: [(
                    "master-2".to_string(),
                    crate::pki::EtcdMemberCerts {
                        peer_cert: "PEER-CERT".into(),
                        peer_key: "PEER-KEY".into(),
                        server_cert: "SERVER-CERT".into(),
                        server_key: "SERVER-KEY".into(),
                    },
                )]
                .into(),
            },
        }
    }

    #[test]
    fn a_master_of_three_gets_its_etcd_member_and_the_api_server() {
        let m = machine("master-2", Role::Master, "10.0.16.4");
        let files = master_files(&facts(), &m, &secrets()).unwrap();
        let etcd = text(&files, "/etc/systemd/system/orkops-etcd.service");
        assert!(etcd.contains("--name master-2 "), "{etcd}");
        assert!(
            etcd.contains("--listen-peer-urls https://10.0.16.4:2380"),
            "{etcd}"
        );
        assert!(
            etcd.contains("--initial-cluster master-1=https://10.0.0.4:2380,master-2=https://10.0.16.4:2380,master-3=https://10.0.32.4:2380 "),
            "{etcd}"
        );
        let master = text(&files, "/etc/systemd/system/orkops-master.service");
        assert!(
            master.contains("--advertise dev-api-1.elb.example,54.0.0.9,10.0.16.4 "),
            "{master}"
        );
        assert!(
            master.contains("--etcd-endpoints https://127.0.0.1:2379,https://10.0.0.4:2379,https://10.0.32.4:2379 --etcd-cafile /var/lib/orkops-master/etcd-ca.crt --etcd-certfile /var/lib/orkops-master/etcd-client.crt --etcd-keyfile /var/lib/orkops-master/etcd-client.key "),
            "{master}"
        );
        assert!(
            master.contains("--data-dir /var/lib/orkops-master --cloud aws\n"),
            "{master}"
        );
        assert!(
            master.contains("Environment=AWS_REGION=us-east-1"),
            "{master}"
        );
        let key = files.iter().find(|f| f.path.ends_with("/ca.key")).unwrap();
        assert_eq!((key.mode, key.service), (0o600, Some(MASTER)));
    }

    #[test]
    fn a_master_serves_etcd_over_tls_to_its_peers_and_the_masters_only() {
        let m = machine("master-2", Role::Master, "10.0.16.4");
        let files = master_files(&facts(), &m, &secrets()).unwrap();
        let etcd = text(&files, "/etc/systemd/system/orkops-etcd.service");
        for flag in [
            "--listen-client-urls https://127.0.0.1:2379,https://10.0.16.4:2379 ",
            "--advertise-client-urls https://10.0.16.4:2379 ",
            "--initial-advertise-peer-urls https://10.0.16.4:2380 ",
            "--cert-file /etc/orkops-etcd/pki/server.crt --key-file /etc/orkops-etcd/pki/server.key --client-cert-auth --trusted-ca-file /etc/orkops-etcd/pki/ca.crt ",
            "--peer-cert-file /etc/orkops-etcd/pki/peer.crt --peer-key-file /etc/orkops-etcd/pki/peer.key --peer-client-cert-auth --peer-trusted-ca-file /etc/orkops-etcd/pki/ca.crt\n",
        ] {
            assert!(etcd.contains(flag), "{flag} in {etcd}");
        }
        assert!(!etcd.contains("http://"), "{etcd}");
        let expect = [
            ("/etc/orkops-etcd/pki/ca.crt", "ETCD-CA", ETCD),
            ("/etc/orkops-etcd/pki/peer.crt", "PEER-CERT", ETCD),
            ("/etc/orkops-etcd/pki/peer.key", "PEER-KEY", ETCD),
            ("/etc/orkops-etcd/pki/server.crt", "SERVER-CERT", ETCD),
            ("/etc/orkops-etcd/pki/server.key", "SERVER-KEY", ETCD),
            ("/var/lib/orkops-master/etcd-ca.crt", "ETCD-CA", MASTER),
            (
                "/var/lib/orkops-master/etcd-client.crt",
                "CLIENT-CERT",
                MASTER,
            ),
            (
                "/var/lib/orkops-master/etcd-client.key",
                "CLIENT-KEY",
                MASTER,
            ),
        ];
        for (path, contents, service) in expect {
            let f = files.iter().find(|f| f.path == path).unwrap();
            assert_eq!(text(&files, path), contents);
            assert_eq!((f.mode, f.service), (0o600, Some(service)), "{path}");
        }
        let other = machine("master-3", Role::Master, "10.0.32.4");
        let err = master_files(&facts(), &other, &secrets()).unwrap_err();
        assert!(err.contains("no etcd certificates for master-3"), "{err}");
    }

    #[test]
    fn a_node_gets_its_agent_with_zone_labels_and_the_join_config() {
        let m = machine("node-3", Role::Node, "10.0.16.7");
        let files = node_files(&facts(), &m, "JOIN").unwrap();
        let agent = text(&files, "/etc/systemd/system/orkops-agent.service");
        assert!(agent.contains("--node-name node-3 "), "{agent}");
        assert!(
            agent.contains("--address 10.0.16.7 --network orkops"),
            "{agent}"
        );
        assert!(
            agent.contains("--node-labels topology.kubernetes.io/zone=us-east-1b,node.kubernetes.io/instance-type=t3.medium,orkops.io/instance-id=i-123\n"),
            "{agent}"
        );
        assert_eq!(text(&files, "/var/lib/orkops-agent/bootstrap.conf"), "JOIN");
    }
}
