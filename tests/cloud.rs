//! `orkops create cluster` / `delete cluster` against the local cloud: each test starts its
//! own moto server (from `localstack/`'s venv, seeded with its Debian images) on a free port,
//! which dies with the test process, and drives the `orkops` binary with AWS_ENDPOINT_URL.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use orkops::cloud::aws;

struct LocalCloud {
    child: Child,
    url: String,
    home: tempfile::TempDir,
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack/up");
        let out = Command::new(up).arg("--install-only").output().unwrap();
        assert!(
            out.status.success(),
            "localstack/up --install-only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

impl LocalCloud {
    fn start() -> LocalCloud {
        install();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("localstack");
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
        common::die_with_parent(&mut cmd);
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
        }
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ENDPOINT_URL", &self.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("HOME", self.home.path());
    }

    fn orkops(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops"));
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.orkops(args);
        assert!(
            o.status.success(),
            "orkops {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    fn fails(&self, args: &[&str]) -> String {
        let o = self.orkops(args);
        assert!(!o.status.success(), "orkops {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    }

    /// The SDK this test calls directly reads its endpoint and credentials from the environment.
    fn sdk_env(&self) {
        std::env::set_var("AWS_ENDPOINT_URL", &self.url);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::remove_var("AWS_PROFILE");
    }

    /// The inventory of a cluster, read with the same code path users get (by tag).
    fn inventory(&self, cluster: &str) -> aws::Inventory {
        let rt = tokio::runtime::Runtime::new().unwrap();
        self.sdk_env();
        rt.block_on(async {
            let a = aws::connect("us-east-1").await.unwrap();
            aws::find(&a, cluster).await.unwrap()
        })
    }

    /// Every VPC, subnet, instance (not terminated) and load balancer in the region, tagged or not.
    fn everything(&self) -> (usize, usize, usize, usize) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        self.sdk_env();
        rt.block_on(async {
            let a = aws::connect("us-east-1").await.unwrap();
            let vpcs = a
                .ec2
                .describe_vpcs()
                .send()
                .await
                .unwrap()
                .vpcs()
                .iter()
                .filter(|v| v.is_default() != Some(true))
                .count();
            let subnets = a
                .ec2
                .describe_subnets()
                .send()
                .await
                .unwrap()
                .subnets()
                .iter()
                .filter(|s| s.default_for_az() != Some(true))
                .count();
            let instances = a
                .ec2
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
                .count();
            let lbs = a
                .elb
                .describe_load_balancers()
                .send()
                .await
                .unwrap()
                .load_balancers()
                .len();
            (vpcs, subnets, instances, lbs)
        })
    }
}

// The tests set process-wide AWS variables for the SDK they call directly: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn create_and_delete_a_cluster_leaves_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = LocalCloud::start();
    assert_eq!(c.everything(), (0, 0, 0, 0), "a fresh emulator");

    // dry run: the plan, and nothing created
    let plan = c.ok(&[
        "create",
        "cluster",
        "dev",
        "--zones",
        "us-east-1a",
        "--dry-run",
    ]);
    assert!(
        plan.contains("1 master(s)") && plan.contains("2 node(s)"),
        "{plan}"
    );
    assert!(
        plan.contains("ami-0d3e5d2e9a6f1c001"),
        "the Debian image is looked up: {plan}"
    );
    assert!(c.inventory("dev").is_empty());
    assert_eq!(c.everything(), (0, 0, 0, 0));

    let out = c.ok(&["create", "cluster", "dev", "--zones", "us-east-1a", "--yes"]);
    assert!(out.contains("cluster dev created"), "{out}");
    let inv = c.inventory("dev");
    assert_eq!(inv.vpcs.len(), 1, "{inv:?}");
    assert_eq!(inv.subnets.len(), 1);
    assert_eq!(inv.internet_gateways.len(), 1);
    assert_eq!(inv.route_tables.len(), 1);
    assert_eq!(inv.security_groups.len(), 2);
    assert_eq!(inv.key_pairs, ["orkops-dev"]);
    assert_eq!(inv.instances.len(), 3);
    assert_eq!(inv.load_balancers.len(), 1);
    assert_eq!(inv.target_groups.len(), 1);
    assert_eq!(inv.listeners.len(), 1);
    assert!(c
        .home
        .path()
        .join(".orkops/clusters/dev/id_ed25519.pk8")
        .exists());

    // a second cluster beside it, over three zones with three masters
    c.ok(&[
        "create",
        "cluster",
        "prod",
        "--zones",
        "us-east-1a,us-east-1b,us-east-1c",
        "--masters",
        "3",
        "--nodes",
        "3",
        "--yes",
    ]);
    let prod = c.inventory("prod");
    assert_eq!(
        (prod.subnets.len(), prod.instances.len()),
        (3, 6),
        "{prod:?}"
    );
    assert_eq!(c.inventory("dev"), inv, "prod did not touch dev");

    // the name is taken; a zone of another region is refused; both change nothing
    let e = c.fails(&["create", "cluster", "dev", "--zones", "us-east-1a", "--yes"]);
    assert!(e.contains("already exists"), "{e}");
    let e = c.fails(&[
        "create",
        "cluster",
        "other",
        "--zones",
        "eu-west-1a",
        "--yes",
    ]);
    assert!(
        e.contains("--zones: eu-west-1a is not a zone of region us-east-1"),
        "{e}"
    );
    assert!(c.inventory("other").is_empty());

    let table = c.ok(&["get", "clusters"]);
    assert!(table.contains("dev") && table.contains("prod"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("prod") && l.contains(" 3 ")),
        "{table}"
    );
    // the janitor: both are younger than an hour; --all needs --older-than
    let e = c.fails(&["delete", "cluster", "--all", "--yes"]);
    assert!(e.contains("--older-than"), "{e}");
    let none = c.ok(&["delete", "cluster", "--all", "--older-than", "1h", "--yes"]);
    assert!(none.contains("no orkops cluster"), "{none}");
    assert_eq!(c.inventory("dev"), inv);

    // delete without --yes lists, with --yes deletes; twice is harmless; prod is untouched
    let list = c.ok(&["delete", "cluster", "dev"]);
    assert!(
        list.contains("would delete instance") && list.contains("would delete vpc"),
        "{list}"
    );
    assert_eq!(c.inventory("dev").count(), inv.count());
    c.ok(&["delete", "cluster", "dev", "--yes"]);
    assert!(c.inventory("dev").is_empty());
    let again = c.ok(&["delete", "cluster", "dev", "--yes"]);
    assert!(again.contains("nothing tagged"), "{again}");
    assert_eq!(c.inventory("prod"), prod);

    // without local state (a CI job that lost its workspace), the janitor finds prod by tag
    std::fs::remove_dir_all(c.home.path().join(".orkops")).unwrap();
    // (creation times have second resolution: prod is "older than 1s" once the next second starts)
    common::wait_until("the janitor to sweep prod", Duration::from_secs(30), || {
        c.ok(&["delete", "cluster", "--all", "--older-than", "1s", "--yes"])
            .contains("cluster prod deleted")
    });
    assert!(c.inventory("prod").is_empty());
    let o = c.orkops(&["get", "clusters"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No clusters found"));
    assert_eq!(c.everything(), (0, 0, 0, 0), "untagged leftovers");
}

#[test]
fn an_unreachable_endpoint_and_bad_flags_are_clear_errors() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = LocalCloud::start();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops"));
    cmd.args([
        "create",
        "cluster",
        "x",
        "--zones",
        "us-east-1a",
        "--dry-run",
    ]);
    c.env(&mut cmd);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"); // nothing listens on the discard port
    let o = cmd.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("cannot reach the AWS endpoint"),
        "{e}"
    );
    let e = c.fails(&["create", "cluster", "Bad_Name", "--zones", "us-east-1a"]);
    assert!(e.contains("cluster name"), "{e}");
    let e = c.fails(&[
        "create",
        "cluster",
        "x",
        "--zones",
        "us-east-1a",
        "--masters",
        "2",
    ]);
    assert!(e.contains("--masters"), "{e}");
    let e = c.fails(&[
        "create",
        "cluster",
        "x",
        "--zones",
        "us-east-1a",
        "--image",
        "ami-00000000",
        "--yes",
    ]);
    assert!(
        e.contains("InvalidAMIID") || e.contains("ami-00000000"),
        "{e}"
    );
    let e = c.fails(&[
        "create",
        "cluster",
        "x",
        "--zones",
        "us-east-1a",
        "--api-cidrs",
        "nope",
    ]);
    assert!(e.contains("--api-cidrs"), "{e}");
    // the failed create above left only what delete removes
    c.ok(&["delete", "cluster", "x", "--yes"]);
    assert_eq!(c.everything(), (0, 0, 0, 0));
}
