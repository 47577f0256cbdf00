//! The service data path against the direct path, on two test hosts (network namespaces with
//! their own engines and agents, `--network orkops`): a client in host A's namespace talks to
//! an echo pod on host B directly by pod IP, through the service's ClusterIP and through its
//! NodePort on A. Then 10, 100 and 1,000 services are added to show how the first-packet cost
//! (TCP connect through the rules) and the rule sync grow. Prints figures; asserts nothing
//! about time. Needs root. Run: `cargo bench --bench network`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::hosts::{Host, Lan};
use common::{wait_until, Master};
use serde_json::Value;

const ECHO: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE}
  containers:
  - name: echo
    image: orkops/busybox:1.35
    command: [netecho, tcp, "7000"]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 7000}]
"#;

/// Moves the calling thread into the network namespace `/var/run/netns/NAME`.
fn enter_netns(name: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{name}")).expect("the host's netns");
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

fn us(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

/// Round trips of 64 bytes on one connection.
fn round_trips(to: SocketAddrV4, n: usize) -> Vec<Duration> {
    let mut s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)).expect("connect");
    s.set_nodelay(true).unwrap();
    let msg = [b'x'; 64];
    let mut buf = [0u8; 64];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&msg).unwrap();
        s.read_exact(&mut buf).unwrap();
        out.push(t.elapsed());
    }
    out
}

/// TCP connects: the first packet of each goes through the service rules.
fn connects(to: SocketAddrV4, n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let s =
                TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)).expect("connect");
            let d = t.elapsed();
            drop(s);
            d
        })
        .collect()
}

/// Round trips per second over `conns` connections for `secs` seconds.
fn throughput(to: SocketAddrV4, conns: usize, secs: u64, netns: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let ns = netns.to_string();
            std::thread::spawn(move || {
                enter_netns(&ns);
                let mut s = TcpStream::connect(to).unwrap();
                s.set_nodelay(true).unwrap();
                let (msg, mut buf, mut n) = ([b'y'; 64], [0u8; 64], 0u64);
                while Instant::now() < deadline {
                    s.write_all(&msg).unwrap();
                    s.read_exact(&mut buf).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / secs as f64
}

fn services(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: filler-{i}}}\nspec:\n  selector: {{app: echo}}\n  ports: [{{port: 7000}}]\n---\n"
            )
        })
        .collect()
}

fn main() {
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    let a = Host::start(&lan, &m, 0, &["--network", "orkops"]);
    let b = Host::start(&lan, &m, 1, &["--network", "orkops"]);
    m.orkops_stdin(&["apply", "-f", "-"], Some(&ECHO.replace("NODE", &b.name)))
        .success();
    wait_until("the echo endpoint", Duration::from_secs(120), || {
        let e = m.orkops(&["get", "endpoints", "echo", "-o", "json"]);
        e.ok()
            && e.json()["subsets"][0]["addresses"]
                .as_array()
                .map_or(0, Vec::len)
                == 1
    });
    let pod_ip: Ipv4Addr = m.orkops(&["get", "pod", "echo", "-o", "json"]).json()["status"]
        ["podIP"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let svc: Value = m.orkops(&["get", "svc", "echo", "-o", "json"]).json();
    let cluster_ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    let node_port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
    let paths = [
        ("direct (pod IP)", SocketAddrV4::new(pod_ip, 7000)),
        ("ClusterIP", SocketAddrV4::new(cluster_ip, 7000)),
        (
            "NodePort (on the client's node)",
            SocketAddrV4::new(a.ip, node_port),
        ),
    ];
    let ns = a.netns.clone();
    // Measurements alternate between the paths, round after round, so the load of this 2-core
    // machine (both hosts, the server and the client share it) weighs on each path alike.
    let in_a = |f: Box<dyn FnOnce() + Send>| {
        let ns = ns.clone();
        std::thread::spawn(move || {
            enter_netns(&ns);
            f()
        })
        .join()
        .unwrap()
    };
    let wait_answer = |to: SocketAddrV4| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect_timeout(&to.into(), Duration::from_millis(300)).is_err() {
            assert!(Instant::now() < deadline, "{to} never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    println!("== service data path vs direct (client on host A, echo pod on host B; 5 rounds, paths interleaved)");
    {
        let paths = paths.to_vec();
        let ns = ns.clone();
        in_a(Box::new(move || {
            for (_, to) in &paths {
                wait_answer(*to);
            }
            let mut rt = vec![Vec::new(); paths.len()];
            let mut cn = vec![Vec::new(); paths.len()];
            let mut tp = vec![0.0; paths.len()];
            for _round in 0..5 {
                for (i, (_, to)) in paths.iter().enumerate() {
                    rt[i].extend(round_trips(*to, 2000));
                    cn[i].extend(connects(*to, 200));
                    tp[i] += throughput(*to, 4, 1, &ns) / 5.0;
                }
            }
            for (i, (what, _)) in paths.iter().enumerate() {
                println!(
                    "{what:<32} round trip p50 {:>6.1} µs p99 {:>6.1} µs | connect p50 {:>6.1} µs p99 {:>7.1} µs | {:>7.0} round trips/s (4 conns)",
                    us(rt[i].clone(), 0.5), us(rt[i].clone(), 0.99), us(cn[i].clone(), 0.5), us(cn[i].clone(), 0.99), tp[i]
                );
            }
        }));
    }

    println!("== first-packet cost (TCP connect) as services grow; each service has the echo pod as endpoint");
    let mut have = 1;
    for total in [1usize, 10, 100, 1000] {
        let t = Instant::now();
        if total > have {
            m.orkops_stdin(&["apply", "-f", "-"], Some(&services(have, total - have)))
                .success();
        }
        let applied = t.elapsed();
        let last = if total > 1 {
            format!("filler-{}", total - 1)
        } else {
            "echo".into()
        };
        let last_ip: Ipv4Addr = m.orkops(&["get", "svc", &last, "-o", "json"]).json()["spec"]
            ["clusterIP"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        in_a(Box::new(move || {
            wait_answer(SocketAddrV4::new(last_ip, 7000))
        }));
        let synced = t.elapsed();
        let (_, rules) = a.exec(&["nft", "list", "map", "ip", "orkops", "service-ips"]);
        let elements = rules.matches(" : goto ").count();
        let (direct, via) = (paths[0].1, paths[1].1);
        let (d, c) = {
            let out = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), Vec::new())));
            let o = out.clone();
            in_a(Box::new(move || {
                let mut g = o.lock().unwrap();
                for _ in 0..10 {
                    g.0.extend(connects(direct, 200));
                    g.1.extend(connects(via, 200));
                }
            }));
            let g = out.lock().unwrap();
            (g.0.clone(), g.1.clone())
        };
        println!(
            "{total:>5} services ({elements} map elements; apply {:>5.2} s, on A after {:>5.2} s): connect direct p50 {:>6.1} µs p99 {:>7.1} µs | ClusterIP p50 {:>6.1} µs p99 {:>7.1} µs",
            applied.as_secs_f64(),
            synced.as_secs_f64(),
            us(d.clone(), 0.5),
            us(d, 0.99),
            us(c.clone(), 0.5),
            us(c, 0.99)
        );
        have = total;
    }
    rule_sync_times();
    println!(
        "agent RSS on A with {have} services: {:.1} MB",
        a.agent_pid().map(common::rss_mb).unwrap_or(0.0)
    );
}

/// How long one sync of the agent's rules takes (render + `nft -f`) for n services of 2
/// endpoints each: the first (the whole table) and one after a single endpoint changed, in a
/// scratch namespace.
fn rule_sync_times() {
    use orkops::agent::proxy::{render, ServicePort};
    let ns = format!("okbench{}", std::process::id());
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let load = |script: &str| {
        let mut c = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(c.wait().unwrap().success());
    };
    println!("== one rule sync (render + nft -f), 2 endpoints per service");
    for n in [10u32, 100, 1000, 5000] {
        let ports: Vec<ServicePort> = (0..n)
            .map(|i| ServicePort {
                namespace: "default".into(),
                name: format!("s{i}"),
                port_name: String::new(),
                protocol: "tcp",
                cluster_ip: Some(Ipv4Addr::from(0x0a60_0000 + i + 1)),
                port: 80,
                node_port: None,
                endpoints: vec![
                    (Ipv4Addr::from(0x0af4_0000 + 2 * i + 2), 8080),
                    (Ipv4Addr::from(0x0af4_0000 + 2 * i + 3), 8080),
                ],
                affinity_seconds: None,
            })
            .collect();
        let t = Instant::now();
        let first = render("10.244.0.0/16".parse().unwrap(), &ports, None);
        load(&first.script);
        let t1 = t.elapsed();
        // one endpoint of one service moves
        let mut moved = ports.clone();
        moved[n as usize / 2].endpoints[0].1 = 9090;
        let t = Instant::now();
        let again = render(
            "10.244.0.0/16".parse().unwrap(),
            &moved,
            Some(&first.applied),
        );
        load(&again.script);
        let t2 = t.elapsed();
        println!(
            "{n:>5} services: first sync (whole table, {} KiB) {:>8.1} ms | one endpoint changed ({} lines) {:>6.1} ms",
            first.script.len() / 1024,
            t1.as_secs_f64() * 1e3,
            again.script.lines().count(),
            t2.as_secs_f64() * 1e3,
        );
    }
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .status();
}
