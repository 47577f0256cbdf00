//! The infrastructure half of `orkops create cluster`, `update cluster`, `describe cluster`,
//! `get clusters` and `delete cluster`, against the local cloud: each test starts its own moto
//! server (see `common::cloud`) and drives the `orkops` binary with AWS_ENDPOINT_URL. These
//! tests stop after the infrastructure (`--infrastructure-only`): the instances have no bodies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::cloud::LocalCloud;
use orkops::cloud::model::{InstanceState, Role};

const INFRA: &str = "--infrastructure-only";

/// Every tag a resource of `cluster` must carry.
fn assert_tagged(tags: &std::collections::BTreeMap<String, String>, cluster: &str, what: &str) {
    assert_eq!(
        tags.get("orkops.io/cluster").map(String::as_str),
        Some(cluster),
        "{what}: {tags:?}"
    );
    assert!(tags.contains_key("orkops.io/role"), "{what}: {tags:?}");
    let created = tags.get("orkops.io/created").expect(what);
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{what}: {created}"
    );
}

#[test]
fn create_update_and_delete_clusters_leave_nothing() {
    let c = LocalCloud::start();
    let fresh = c.everything();

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
    for step in [
        "create VPC 10.0.0.0/16",
        "create subnet 10.0.0.0/20 in us-east-1a",
        "start instance node-2 in us-east-1a",
        "create the API listener on TCP 6443",
    ] {
        assert!(plan.contains(step), "{step:?} in {plan}");
    }
    assert!(c.observe("dev").is_empty());
    assert_eq!(c.everything(), fresh, "a dry run creates nothing");

    let out = c.ok(&[
        "create",
        "cluster",
        "dev",
        "--zones",
        "us-east-1a",
        INFRA,
        "--yes",
    ]);
    assert!(out.contains("cluster dev created"), "{out}");
    assert!(out.contains("AWS calls"), "{out}");
    let dev = c.observe("dev");
    assert_eq!(dev.vpcs.len(), 1, "{dev:?}");
    assert_eq!(dev.subnets.len(), 1);
    assert_eq!(dev.internet_gateways.len(), 1);
    assert_eq!(dev.route_tables.len(), 1);
    assert_eq!(dev.security_groups.len(), 3);
    assert_eq!(dev.key_pairs, ["orkops-dev"]);
    assert_eq!(dev.instances.len(), 3);
    assert!(dev
        .instances
        .iter()
        .all(|i| i.state == InstanceState::Running));
    assert_eq!(dev.load_balancers.len(), 1);
    assert_eq!(dev.target_groups.len(), 1);
    assert_eq!(dev.listeners.len(), 1);
    let master = dev.instance("master-1").unwrap();
    assert_eq!(dev.target_groups[0].targets, vec![master.id.clone()]);
    assert!(c
        .home
        .path()
        .join(".orkops/clusters/dev/id_ed25519")
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
        "--network-cidr",
        "10.30.0.0/16",
        INFRA,
        "--yes",
        "-o",
        "json",
    ]);
    let prod = c.observe("prod");
    assert_eq!(prod.subnets.len(), 3, "{prod:?}");
    let mut cidrs: Vec<&str> = prod.subnets.iter().map(|s| s.cidr.as_str()).collect();
    cidrs.sort();
    assert_eq!(cidrs, ["10.30.0.0/20", "10.30.16.0/20", "10.30.32.0/20"]);
    for role in [Role::Master, Role::Node] {
        let mut zones: Vec<&str> = prod.instances_of(role).map(|i| i.zone.as_str()).collect();
        zones.sort();
        assert_eq!(
            zones,
            ["us-east-1a", "us-east-1b", "us-east-1c"],
            "{role:?}"
        );
    }
    assert_eq!(prod.target_groups[0].targets.len(), 3);
    assert_eq!(c.observe("dev"), dev, "prod did not touch dev");
    check_every_tag(&c, "prod");

    // the name is taken; a zone of another region is refused; both change nothing
    let e = c.fails(&["create", "cluster", "dev", "--zones", "us-east-1a", "--yes"]);
    assert!(
        e.contains("already exists") && e.contains("update cluster dev"),
        "{e}"
    );
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
    assert!(c.observe("other").is_empty());

    // drift: a terminated node is shown by describe and recreated by update
    let node2 = dev.instance("node-2").unwrap().id.clone();
    c.block_on(
        c.sdk()
            .ec2
            .terminate_instances()
            .instance_ids(&node2)
            .send(),
    )
    .unwrap();
    let described = c.ok(&["describe", "cluster", "dev"]);
    assert!(
        described.contains("start instance node-2 in us-east-1a") && described.contains("Drift"),
        "{described}"
    );
    let dry = c.ok(&["update", "cluster", "dev"]);
    assert!(dry.contains("start instance node-2"), "{dry}");
    assert!(
        c.observe("dev").instance("node-2").is_none(),
        "no --yes, no change"
    );
    c.ok(&["update", "cluster", "dev", INFRA, "--yes"]);
    let after = c.observe("dev");
    let new2 = after.instance("node-2").expect("node-2 recreated");
    assert_ne!(new2.id, node2);
    assert_eq!(after.instances.len(), 3);
    assert!(c
        .ok(&["update", "cluster", "dev", "--yes", INFRA])
        .contains("matches its spec"));
    // scaling the nodes through update, kept in the spec
    c.ok(&["update", "cluster", "dev", "--nodes", "4", INFRA, "--yes"]);
    assert_eq!(c.observe("dev").instances_of(Role::Node).count(), 4);
    c.ok(&["update", "cluster", "dev", "--nodes", "1", INFRA, "--yes"]);
    let one = c.observe("dev");
    let names: Vec<&str> = one
        .instances_of(Role::Node)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["node-1"]);
    assert!(c
        .ok(&["describe", "cluster", "dev"])
        .contains("Nodes:         1 x"));
    let e = c.fails(&["update", "cluster", "nope", "--yes"]);
    assert!(e.contains("no cluster named \"nope\""), "{e}");

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
    assert!(!c.observe("dev").is_empty());

    // delete without --yes lists, with --yes deletes; twice is harmless; prod is untouched
    let list = c.ok(&["delete", "cluster", "dev"]);
    assert!(
        list.contains("would delete instance") && list.contains("would delete vpc"),
        "{list}"
    );
    let kept = c.observe("dev");
    assert_eq!(kept.count(), one.count());
    // the kubeconfig loses dev's context, cluster and user (and current-context), nothing else
    let kube = c.home.path().join(".kube/config");
    std::fs::create_dir_all(kube.parent().unwrap()).unwrap();
    let other = "- name: other\n  cluster: {server: 'https://other:6443'}\n";
    std::fs::write(
        &kube,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters:\n{other}- name: dev\n  cluster: {{server: 'https://dev:6443'}}\n\
             users:\n- name: dev-admin\n  user: {{token: t}}\ncontexts:\n- name: dev\n  context: {{cluster: dev, user: dev-admin}}\n\
             - name: other\n  context: {{cluster: other, user: other}}\n"
        ),
    )
    .unwrap();
    let out = c.ok(&["delete", "cluster", "dev", "--yes"]);
    assert!(out.contains("cluster dev deleted"), "{out}");
    assert!(out.contains("removed context dev from kubeconfig"), "{out}");
    let left: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&kube).unwrap()).unwrap();
    assert!(left.get("current-context").is_none(), "{left:?}");
    assert_eq!(left["clusters"].as_sequence().unwrap().len(), 1, "{left:?}");
    assert_eq!(left["clusters"][0]["name"].as_str(), Some("other"));
    assert_eq!(left["contexts"][0]["name"].as_str(), Some("other"));
    assert!(left["users"].as_sequence().unwrap().is_empty(), "{left:?}");
    assert!(c.observe("dev").is_empty());
    let again = c.ok(&["delete", "cluster", "dev", "--yes"]);
    assert!(again.contains("nothing tagged"), "{again}");
    assert_eq!(c.observe("prod"), prod);

    // without local state (a CI job that lost its workspace), the janitor finds prod by tag
    std::fs::remove_dir_all(c.home.path().join(".orkops")).unwrap();
    // (creation times have second resolution: prod is "older than 1s" once the next second starts)
    common::wait_until("the janitor to sweep prod", Duration::from_secs(30), || {
        c.ok(&["delete", "cluster", "--all", "--older-than", "1s", "--yes"])
            .contains("cluster prod deleted")
    });
    assert!(c.observe("prod").is_empty());
    let o = c.orkops(&["get", "clusters"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("No clusters found"));
    assert_eq!(c.everything(), fresh, "leftovers, tagged or not");
}

/// Every resource of the cluster carries the cluster, role and creation tags, read straight
/// from the EC2 and ELBv2 APIs.
fn check_every_tag(c: &LocalCloud, cluster: &str) {
    let a = c.sdk();
    let tags = |t: &[aws_sdk_ec2::types::Tag]| -> std::collections::BTreeMap<String, String> {
        t.iter()
            .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
            .collect()
    };
    let o = c.observe(cluster);
    c.block_on(async {
        let vpc = a
            .ec2
            .describe_vpcs()
            .vpc_ids(&o.vpcs[0].id)
            .send()
            .await
            .unwrap();
        let v = &vpc.vpcs()[0];
        let t = tags(v.tags());
        assert_tagged(&t, cluster, "vpc");
        assert_eq!(
            t["orkops.io/spec-masters"], "3",
            "the spec is recorded: {t:?}"
        );
        for s in a
            .ec2
            .describe_subnets()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(v.vpc_id().unwrap())
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .subnets()
        {
            assert_tagged(&tags(s.tags()), cluster, "subnet");
        }
        for g in a
            .ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(v.vpc_id().unwrap())
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .security_groups()
        {
            if g.group_name() != Some("default") {
                assert_tagged(&tags(g.tags()), cluster, "security group");
            }
        }
        let ids: Vec<String> = o.instances.iter().map(|i| i.id.clone()).collect();
        let out = a
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .unwrap();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let t = tags(i.tags());
            assert_tagged(&t, cluster, "instance");
            assert!(t.contains_key("orkops.io/name"), "{t:?}");
            assert!(i.key_name() == Some(&format!("orkops-{cluster}")[..]));
        }
        let arns: Vec<String> = o
            .load_balancers
            .iter()
            .map(|l| l.arn.clone())
            .chain(o.target_groups.iter().map(|g| g.arn.clone()))
            .chain(o.listeners.iter().map(|l| l.arn.clone()))
            .collect();
        assert_eq!(arns.len(), 3);
        let out = a
            .elb
            .describe_tags()
            .set_resource_arns(Some(arns))
            .send()
            .await
            .unwrap();
        assert_eq!(out.tag_descriptions().len(), 3);
        for d in out.tag_descriptions() {
            let t = d
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                .collect();
            assert_tagged(&t, cluster, d.resource_arn().unwrap());
        }
    });
}

/// Runs `create cluster` and kills it after `lines` progress lines; returns how many it printed.
fn create_killed_after(c: &LocalCloud, name: &str, lines: usize) -> usize {
    let mut cmd = c.command(&[
        "create",
        "cluster",
        name,
        "--zones",
        "us-east-1a,us-east-1b",
        "--nodes",
        "3",
        INFRA,
        "--yes",
        "-o",
        "json",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = 0;
    for line in out.lines() {
        let Ok(line) = line else { break };
        if line.contains("\"phase\"") {
            seen += 1;
            if seen >= lines {
                let _ = child.kill();
                break;
            }
        }
    }
    let _ = child.wait();
    seen
}

#[test]
fn a_create_killed_at_any_point_is_deleted_or_continued_without_leftovers() {
    let c = LocalCloud::start();
    let fresh = c.everything();
    // a whole create, to know how many steps there are
    let total = create_killed_after(&c, "whole", usize::MAX);
    assert!(total > 10, "{total} progress lines");
    assert_eq!(c.observe("whole").instances.len(), 4);
    c.ok(&["delete", "cluster", "whole", "--yes"]);
    assert_eq!(c.everything(), fresh);

    // killed at six different points, then deleted: nothing is left
    let points = [1, 2, 4, total / 3, total / 2, total - 2];
    for (k, at) in points.into_iter().enumerate() {
        let name = format!("killed{k}");
        let printed = create_killed_after(&c, &name, at);
        assert!(
            printed >= at.min(total),
            "killed after {printed} of {at} lines"
        );
        let found = c.observe(&name);
        assert!(
            !found.is_empty(),
            "the kill at line {at} came before anything was made"
        );
        assert!(!found.vpcs.is_empty(), "the VPC comes first: {found:?}");
        c.ok(&["delete", "cluster", &name, "--yes"]);
        assert!(c.observe(&name).is_empty(), "killed at line {at}");
        assert_eq!(c.everything(), fresh, "killed at line {at}: leftovers");
    }

    // killed half way, then continued by update: a whole cluster, nothing twice
    create_killed_after(&c, "resumed", total / 2);
    let out = c.ok(&["update", "cluster", "resumed", INFRA, "--yes"]);
    assert!(out.contains("updated"), "{out}");
    let o = c.observe("resumed");
    assert_eq!(
        (
            o.vpcs.len(),
            o.subnets.len(),
            o.security_groups.len(),
            o.instances.len()
        ),
        (1, 2, 3, 4),
        "{o:?}"
    );
    assert_eq!((o.load_balancers.len(), o.listeners.len()), (1, 1));
    c.ok(&["delete", "cluster", "resumed", "--yes"]);
    assert_eq!(c.everything(), fresh);
}

#[test]
fn an_unreachable_endpoint_and_bad_flags_are_clear_errors() {
    let c = LocalCloud::start();
    let fresh = c.everything();
    let mut cmd = c.command(&[
        "create",
        "cluster",
        "x",
        "--zones",
        "us-east-1a",
        "--dry-run",
    ]);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"); // nothing listens on the discard port
    let o = cmd.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("cannot reach the AWS endpoint"),
        "{e}"
    );
    let mut cmd = c.command(&["get", "clusters"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let o = cmd.output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("no AWS credentials"),
        "{e}"
    );
    for (args, want) in [
        (
            &["create", "cluster", "Bad_Name", "--zones", "us-east-1a"][..],
            "cluster name",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--masters",
                "2",
            ][..],
            "--masters",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--image",
                "ami-00000000",
                "--yes",
            ][..],
            "ami-00000000",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--api-cidrs",
                "nope",
            ][..],
            "--api-cidrs",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--network-cidr",
                "10.0.0.0/8",
            ][..],
            "--network-cidr",
        ),
        (
            &["create", "cluster", "x", "--zones", "us-east-1z", "--yes"][..],
            "us-east-1z",
        ),
        (
            &["create", "cluster", "x", "--zones", "us-east-1a,us-east-1a"][..],
            "twice",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--ssh-public-key",
                "/nonexistent.pub",
                "--yes",
            ][..],
            "--ssh-public-key /nonexistent.pub",
        ),
        (
            &[
                "create",
                "cluster",
                "x",
                "--zones",
                "us-east-1a",
                "--node-size",
                "t9.huge",
                INFRA,
                "--yes",
            ][..],
            "t9.huge",
        ),
    ] {
        let e = c.fails(args);
        assert!(e.contains(want), "{args:?}: {want:?} in {e}");
    }
    // the failed creates above left only what delete removes
    c.ok(&["delete", "cluster", "x", "--yes"]);
    assert_eq!(c.everything(), fresh);
}

/// Every flag is parsed and checked before the first AWS call: a bad `--ssh-timeout` (or
/// another bad value) is refused naming the flag and the value, even with `--yes`, and
/// nothing is made. Run twice: against the emulator (which then holds nothing of the
/// cluster), and against an endpoint that does not answer (so any AWS call would have failed
/// with "cannot reach" instead of the flag's error).
#[test]
fn bad_flags_are_refused_before_any_aws_call() {
    let c = LocalCloud::start();
    let fresh = c.everything();
    let name = "badflags";
    let create = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["create", "cluster", name, "--zones", "us-east-1a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--yes".into());
        a
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            create(&["--ssh-timeout", "5"]),
            vec!["--ssh-timeout", "'5'", "unit"],
        ),
        (
            create(&["--ssh-timeout", "5mins"]),
            vec!["--ssh-timeout", "'5mins'", "\"mins\""],
        ),
        (
            create(&["--ssh-timeout", "0s"]),
            vec!["--ssh-timeout", "more than zero"],
        ),
        (create(&["--wait", "1h30"]), vec!["--wait", "'1h30'"]),
        (
            create(&["--node-size", "t3"]),
            vec!["--node-size", "'t3'", "instance type"],
        ),
        (create(&["--nodes", "501"]), vec!["--nodes", "501"]),
        (
            create(&["--api-cidrs", "10.0.0.0/33"]),
            vec!["--api-cidrs", "10.0.0.0/33"],
        ),
        (
            create(&["--network-cidr", "10.0.0.1/16"]),
            vec!["--network-cidr", "10.0.0.0/16"],
        ),
        (
            create(&["--image", "ami-xyz"]),
            vec!["--image", "'ami-xyz'"],
        ),
        (
            create(&["--zones", "us-east-1"]),
            vec!["--zones", "'us-east-1'", "availability zone"],
        ),
        (
            create(&["--addons", "no-such-addon"]),
            vec!["--addons", "no-such-addon"],
        ),
        (
            create(&["--binaries-dir", "/nonexistent"]),
            vec!["--binaries-dir", "/nonexistent/orkops-master"],
        ),
        (
            vec![
                "update".into(),
                "cluster".into(),
                name.into(),
                "--ssh-timeout".into(),
                "1x".into(),
                "--yes".into(),
            ],
            vec!["--ssh-timeout", "'1x'"],
        ),
        (
            vec![
                "create".into(),
                "cluster".into(),
                "Bad_Name".into(),
                "--zones".into(),
                "us-east-1a".into(),
            ],
            vec!["Bad_Name", "cluster name"],
        ),
    ];
    for endpoint in [None, Some("http://127.0.0.1:9")] {
        for (args, wants) in &cases {
            let mut cmd = c.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
            if let Some(e) = endpoint {
                cmd.env("AWS_ENDPOINT_URL", e);
            }
            let o = cmd.output().unwrap();
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} should fail: {e}");
            for want in wants {
                assert!(e.contains(want), "{args:?}: {want:?} in {e}");
            }
            assert!(
                !e.contains("cannot reach the AWS endpoint"),
                "{args:?} called AWS before refusing the flag: {e}"
            );
        }
    }
    let o = c.observe(name);
    assert!(o.is_empty(), "the refused creates made {:?}", o.lines());
    assert_eq!(c.everything(), fresh, "the refused creates made something");
}
