//! The local cloud for tests: a moto server of the test's own (from `localstack/`'s venv,
//! seeded with its Debian images) on a free port, which dies with the test process; the
//! `orkops` binary run against it with its own HOME; and SDK clients on it, to check what the
//! cloud holds with the same code path users get.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orkops::cloud::aws;
use orkops::cloud::model::Observed;

pub struct LocalCloud {
    child: Child,
    pub url: String,
    pub home: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn localstack() -> std::path::PathBuf {
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
        }
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
            .env("HOME", self.home.path());
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops"));
        cmd.args(args);
        self.env(&mut cmd);
        cmd
    }

    pub fn orkops(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.orkops(args);
        assert!(
            o.status.success(),
            "orkops {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
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
