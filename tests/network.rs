//! Nodes on separate hosts: each host a network namespace with its own Docker engine on a
//! private lan, the master on the lan's root address (see `common::hosts`). Needs root.

mod common;

use std::time::Duration;

use common::hosts::{assert_no_leftovers, Host, Lan};
use common::{wait_until, Master, TEST_IMAGE};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);

fn pinned_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleeper
    image: {TEST_IMAGE}
    command: [sleep, "3600"]
"#
    )
}

fn pod(m: &Master, name: &str) -> Value {
    m.orkops(&["get", "pod", name, "-o", "json"]).json()
}

/// The Docker id of the pod's container, from its status.
fn container_id(m: &Master, name: &str) -> String {
    let p = pod(m, name);
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .and_then(|id| id.strip_prefix("docker://"))
        .unwrap_or_else(|| panic!("no container id: {p}"))
        .to_string()
}

fn running_in(h: &Host, id: &str) -> bool {
    h.docker(&["inspect", "-f", "{{.State.Running}}", id]) == (true, "true".to_string())
}

/// `ping` from the root namespace (busybox's: the test image is built from it anyway).
fn root_pings(ip: std::net::Ipv4Addr) -> bool {
    std::process::Command::new("busybox")
        .args(["ping", "-c1", "-W2", &ip.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `orkops exec` into the pod: the master reaches the pod's agent on the lan.
fn exec_hostname(m: &Master, pod: &str) -> String {
    m.orkops(&["exec", pod, "--", "hostname"]).success()
}

#[test]
fn hosts_are_separate_and_leave_nothing_behind() {
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    assert!(
        m.endpoint.contains(&lan.root_ip.to_string()),
        "{}",
        m.endpoint
    );
    let a = Host::start(&lan, &m, 0, &["--network", "none"]);
    let mut b = Host::start(&lan, &m, 1, &["--network", "none"]);
    let names = [lan.name.clone(), a.name.clone(), b.name.clone()];

    for (pod, host) in [("on-a", &a), ("on-b", &b)] {
        m.orkops_stdin(&["apply", "-f", "-"], Some(&pinned_pod(pod, &host.name)))
            .success();
    }
    wait_until("both pods to run", LONG, || {
        ["on-a", "on-b"]
            .iter()
            .all(|p| pod(&m, p)["status"]["phase"] == "Running")
    });
    for (p, host) in [("on-a", &a), ("on-b", &b)] {
        let st = pod(&m, p)["status"].clone();
        assert_eq!(st["hostIP"], host.ip.to_string(), "{st}");
        assert_eq!(pod(&m, p)["spec"]["nodeName"], host.name.as_str());
    }
    let (id_a, id_b) = (container_id(&m, "on-a"), container_id(&m, "on-b"));
    assert!(running_in(&a, &id_a), "on-a's container runs on host a");
    assert!(running_in(&b, &id_b), "on-b's container runs on host b");
    assert!(!a.docker(&["inspect", &id_b]).0, "host a's engine has on-b");
    assert!(!b.docker(&["inspect", &id_a]).0, "host b's engine has on-a");
    for id in [&id_a, &id_b] {
        assert!(
            !common::docker(&["inspect", id]).0,
            "the machine's engine has {id}"
        );
    }
    // each host's engine is its own: one pod's sandbox and container, nothing of the other
    for (h, other) in [(&a, &b), (&b, &a)] {
        let (ok, out) = h.docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=orkops.io/node={}", other.name),
        ]);
        assert!(
            ok && out.is_empty(),
            "{} runs {}'s containers: {out}",
            h.name,
            other.name
        );
    }

    // the hosts reach each other over the lan, and the root namespace reaches both
    let (ok, out) = a.exec(&["busybox", "ping", "-c1", "-W2", &b.ip.to_string()]);
    assert!(ok, "host a cannot ping host b: {out}");
    let (ok, out) = b.exec(&["busybox", "ping", "-c1", "-W2", &a.ip.to_string()]);
    assert!(ok, "host b cannot ping host a: {out}");
    assert!(root_pings(a.ip) && root_pings(b.ip));
    exec_hostname(&m, "on-a");
    exec_hostname(&m, "on-b");

    b.power_off();
    assert!(
        !a.exec(&["busybox", "ping", "-c1", "-W1", &b.ip.to_string()])
            .0,
        "host b still answers after its power-off"
    );
    assert!(!root_pings(b.ip), "host b answers the root namespace");
    assert!(
        root_pings(a.ip),
        "host a does not answer after b's power-off"
    );
    assert!(running_in(&a, &id_a), "on-a's container stopped");
    exec_hostname(&m, "on-a");
    assert_eq!(pod(&m, "on-a")["status"]["phase"], "Running");
    let nodes = m.orkops(&["get", "nodes"]).success();
    assert!(nodes.contains(&a.name), "{nodes}");

    drop(b);
    drop(a);
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}

/// Runs `sh -c SCRIPT` in a pod and returns (success, stdout+stderr).
fn in_pod(m: &Master, pod: &str, script: &str) -> (bool, String) {
    let r = m.orkops(&["exec", pod, "--", "sh", "-c", script]);
    (
        r.ok(),
        String::from_utf8_lossy(&r.0.stdout).to_string() + &String::from_utf8_lossy(&r.0.stderr),
    )
}

/// A shell snippet that prints the body of `GET /` from ADDR PORT, or FAILED and nc's error.
/// (busybox's wget is of no use here: Debian's static busybox crashes in getaddrinfo.)
fn get_sh(addr: &str, port: u16) -> String {
    format!(
        r#"out=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 {addr} {port} 2>&1); case "$out" in *"200 OK"*) echo "$out" | tail -n1;; *) echo "FAILED $out";; esac"#
    )
}

/// An HTTP GET from the root namespace (an "internet" client of a node port).
fn http_get(addr: std::net::SocketAddrV4) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    out.split("\r\n\r\n")
        .nth(1)
        .map(|b| b.trim().to_string())
        .ok_or_else(|| format!("no HTTP body from {addr}: {out:?}"))
}

fn svc_field(m: &Master, name: &str, pointer: &str) -> Value {
    m.orkops(&["get", "svc", name, "-o", "json"]).json()[pointer.split('/').nth(1).unwrap()]
        .pointer(&pointer[pointer[1..].find('/').map_or(pointer.len(), |i| i + 1)..])
        .cloned()
        .unwrap_or(Value::Null)
}

/// Web servers that answer with their pod's name, ready while /tmp/ready exists, and a UDP
/// echo on 9000; only on the `pool=web` hosts.
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {pool: web}
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: orkops/busybox:1.35
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && (netecho udp 9000 &) && exec httpd -f -p 8080 -h /www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: [test, -f, /tmp/ready]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: echo, port: 9000, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  type: NodePort
  selector: {app: nothing-has-this-label}
  ports: [{port: 80}]
"#;

#[test]
fn services_route_across_hosts_to_ready_pods_only() {
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    let web_node = ["--network", "orkops", "--node-labels", "pool=web"];
    let a = Host::start(&lan, &m, 0, &web_node);
    let b = Host::start(&lan, &m, 1, &web_node);
    let c = Host::start(
        &lan,
        &m,
        2,
        &["--network", "orkops", "--node-labels", "pool=client"],
    );
    let names = [
        lan.name.clone(),
        a.name.clone(),
        b.name.clone(),
        c.name.clone(),
    ];

    // every node got its own pod CIDR
    let cidrs: std::collections::BTreeSet<String> = [&a, &b, &c]
        .iter()
        .map(|h| {
            m.orkops(&["get", "node", &h.name, "-o", "json"]).json()["spec"]["podCIDR"]
                .as_str()
                .unwrap_or_else(|| panic!("node {} has no pod CIDR", h.name))
                .to_string()
        })
        .collect();
    assert_eq!(cidrs.len(), 3, "{cidrs:?}");

    m.orkops_stdin(&["apply", "-f", "-"], Some(WEB)).success();
    let cluster_ip = svc_field(&m, "web", "/spec/clusterIP")
        .as_str()
        .unwrap()
        .to_string();
    let node_port = svc_field(&m, "web", "/spec/ports")[0]["nodePort"]
        .as_u64()
        .unwrap();
    assert!((30000..=32767).contains(&node_port));
    assert!(cluster_ip.starts_with("10.96."), "{cluster_ip}");

    // three ready endpoints, spread over a and b
    wait_until("3 ready endpoints", LONG, || {
        let e = m.orkops(&["get", "endpoints", "web", "-o", "json"]);
        e.ok()
            && e.json()["subsets"][0]["addresses"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
    });
    let pods: Vec<Value> = m
        .orkops(&["get", "pods", "-l", "app=web", "-o", "json"])
        .json()["items"]
        .as_array()
        .unwrap()
        .clone();
    let on: std::collections::BTreeSet<&str> = pods
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    assert_eq!(on.len(), 2, "replicas spread over both web hosts: {on:?}");

    // the node without web pods reaches the service from its own namespace once its rules are in
    let url = format!("http://{cluster_ip}/");
    // (curl: the static busybox's wget crashes in the host's NSS setup)
    wait_until("host c to reach the ClusterIP", LONG, || {
        c.exec(&["curl", "-sf", "-m", "2", &url]).0
    });

    // a client pod on c, created after the services: env, DNS, pod-to-pod across hosts
    m.orkops_stdin(&["apply", "-f", "-"], Some(&pinned_pod("client", &c.name)))
        .success();
    wait_until("the client pod to run", LONG, || {
        pod(&m, "client")["status"]["phase"] == "Running"
    });
    let (ok, env) = in_pod(&m, "client", "env");
    assert!(ok, "{env}");
    assert!(
        env.contains(&format!("WEB_SERVICE_HOST={cluster_ip}")),
        "{env}"
    );
    assert!(env.contains("WEB_SERVICE_PORT_HTTP=80"), "{env}");
    let (ok, out) = in_pod(&m, "client", "nslookup web.default.svc");
    assert!(ok && out.contains(&cluster_ip), "nslookup: {out}");
    let (ok, out) = in_pod(&m, "client", "nslookup web.default.svc.cluster.local");
    assert!(ok && out.contains(&cluster_ip), "nslookup: {out}");
    // names are checked with nslookup, which has its own resolver (see get_sh)
    // (busybox's nslookup tries every search domain and fails if any misses: look at the answer)
    let (_, out) = in_pod(&m, "client", "nslookup web");
    assert!(
        out.contains(&format!(
            "web.default.svc.cluster.local\nAddress: {cluster_ip}"
        )),
        "by short name through the search path: {out}"
    );
    let (ok, out) = in_pod(&m, "client", "nslookup nothing-here.default.svc");
    assert!(!ok || out.contains("NXDOMAIN"), "{out}");
    // enableServiceLinks: false leaves the service variables out; a dnsConfig merges into the
    // cluster's resolver configuration
    let quiet = pinned_pod("quiet", &c.name).replace(
        "  containers:",
        "  enableServiceLinks: false\n  dnsConfig: {searches: [corp.example], options: [{name: ndots, value: \"3\"}]}\n  containers:",
    );
    m.orkops_stdin(&["apply", "-f", "-"], Some(&quiet))
        .success();
    wait_until("the quiet pod to run", LONG, || {
        pod(&m, "quiet")["status"]["phase"] == "Running"
    });
    let (ok, env) = in_pod(&m, "quiet", "env");
    assert!(ok && !env.contains("WEB_SERVICE_HOST"), "{env}");
    let (_, resolv) = in_pod(&m, "quiet", "cat /etc/resolv.conf");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("corp.example\n")
            && resolv.ends_with("options ndots:3\n"),
        "{resolv}"
    );
    for p in &pods {
        let ip = p["status"]["podIP"].as_str().unwrap();
        let name = p["metadata"]["name"].as_str().unwrap();
        let (ok, out) = in_pod(&m, "client", &get_sh(ip, 8080));
        assert!(ok && out.trim() == name, "pod-to-pod {ip} ({name}): {out}");
    }

    // the ClusterIP spreads over all three
    let many = |svc: &str, n: usize| {
        let (ok, out) = in_pod(
            &m,
            "client",
            &format!("for i in $(seq {n}); do {}; done", get_sh(svc, 80)),
        );
        assert!(ok && !out.contains("FAILED"), "{out}");
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let seen: std::collections::BTreeSet<String> = many(&cluster_ip, 30).into_iter().collect();
    let names_of: std::collections::BTreeSet<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, names_of, "30 requests reach every replica");

    // UDP through the ClusterIP
    let (ok, out) = in_pod(&m, "client", &format!("netecho ask {cluster_ip} 9000 ping"));
    assert!(ok && out.trim().ends_with(" ping"), "udp: {out}");
    assert!(
        names_of.contains(out.split_whitespace().next().unwrap()),
        "{out}"
    );

    // ClientIP affinity keeps the client on one pod
    let sticky_ip = svc_field(&m, "sticky", "/spec/clusterIP")
        .as_str()
        .unwrap()
        .to_string();
    let sticky: std::collections::BTreeSet<String> = many(&sticky_ip, 10).into_iter().collect();
    assert_eq!(sticky.len(), 1, "{sticky:?}");

    // NodePort on every host, including c which runs no web pod
    for h in [&a, &b, &c] {
        let addr = std::net::SocketAddrV4::new(h.ip, node_port as u16);
        let body = http_get(addr).unwrap_or_else(|e| panic!("node port on {}: {e}", h.name));
        assert!(names_of.contains(&body), "{body}");
    }

    // no ready endpoint: refused at once, not a timeout
    let nobody_ip = svc_field(&m, "nobody", "/spec/clusterIP")
        .as_str()
        .unwrap()
        .to_string();
    let (_, out) = in_pod(&m, "client", &get_sh(&nobody_ip, 80));
    assert!(out.contains("FAILED") && out.contains("refused"), "{out}");
    let np_nobody = svc_field(&m, "nobody", "/spec/ports")[0]["nodePort"]
        .as_u64()
        .unwrap();
    let e = http_get(std::net::SocketAddrV4::new(c.ip, np_nobody as u16)).unwrap_err();
    assert!(e.contains("refused"), "{e}");

    // a pod that turns unready gets no traffic, and gets it back when ready again
    let victim = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    m.orkops(&["exec", &victim, "--", "rm", "/tmp/ready"])
        .success();
    wait_until("the unready pod to leave the endpoints", LONG, || {
        let e = m.orkops(&["get", "endpoints", "web", "-o", "json"]).json();
        e["subsets"][0]["addresses"].as_array().map_or(0, Vec::len) == 2
    });
    wait_until("traffic to skip the unready pod", LONG, || {
        !many(&cluster_ip, 20).contains(&victim)
    });
    assert!(!many(&cluster_ip, 30).contains(&victim));
    m.orkops(&["exec", &victim, "--", "touch", "/tmp/ready"])
        .success();
    wait_until("the pod to get traffic again", LONG, || {
        many(&cluster_ip, 20).contains(&victim)
    });

    // deleting a service removes its rules on every node
    let has_rule = |h: &Host| {
        let (ok, out) = h.exec(&["nft", "list", "table", "ip", "orkops"]);
        assert!(ok, "{out}");
        out.contains(&cluster_ip)
    };
    assert!([&a, &b, &c].iter().all(|h| has_rule(h)));
    m.orkops(&["delete", "svc", "web"]).success();
    wait_until("the rules of the deleted service to go", LONG, || {
        [&a, &b, &c].iter().all(|h| !has_rule(h))
    });
    assert!(
        !m.orkops(&["get", "endpoints", "web"]).ok() || {
            wait_until("its endpoints to go", LONG, || {
                !m.orkops(&["get", "endpoints", "web"]).ok()
            });
            true
        }
    );

    drop((a, b, c));
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}

/// A deployment whose pods drain like a well-behaved server: on SIGTERM they keep serving for
/// 3 s (what a preStop sleep does), long enough for every node to stop sending them traffic.
fn draining_web(image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: {image}
        command: [sh, -c, "mkdir -p /www && hostname > /www/index.html && httpd -p 8080 -h /www && trap 'sleep 3; exit 0' TERM && while true; do sleep 1; done"]
        readinessProbe:
          httpGet: {{path: /, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"#
    )
}

/// Calls the node ports in a loop from the root namespace until told to stop; returns
/// (requests, failures, the first few failures).
fn steady_client(
    targets: Vec<std::net::SocketAddrV4>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut n, mut failed, mut first) = (0u64, 0u64, Vec::new());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = targets[n as usize % targets.len()];
            n += 1;
            if let Err(e) = http_get(t) {
                failed += 1;
                if first.len() < 5 {
                    first.push(format!("{t}: {e}"));
                }
            }
        }
        (n, failed, first)
    })
}

fn web_pods(m: &Master) -> Vec<Value> {
    m.orkops(&["get", "pods", "-l", "app=web", "-o", "json"])
        .json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[test]
fn scaling_and_a_rolling_update_through_a_service_fail_no_request() {
    let lan = Lan::new();
    let m = Master::start_on(&format!("{}:0", lan.root_ip), &[]);
    let a = Host::start(&lan, &m, 0, &["--network", "orkops"]);
    let b = Host::start(&lan, &m, 1, &["--network", "orkops"]);
    let names = [lan.name.clone(), a.name.clone(), b.name.clone()];
    let v2 = "orkops/busybox:v2";
    for h in [&a, &b] {
        assert!(h.docker(&["tag", TEST_IMAGE, v2]).0);
    }

    m.orkops_stdin(&["apply", "-f", "-"], Some(&draining_web(TEST_IMAGE, 5)))
        .success();
    let np = svc_field(&m, "web", "/spec/ports")[0]["nodePort"]
        .as_u64()
        .unwrap() as u16;
    let targets = vec![
        std::net::SocketAddrV4::new(a.ip, np),
        std::net::SocketAddrV4::new(b.ip, np),
    ];
    wait_until("5 ready replicas behind the service", LONG, || {
        let e = m.orkops(&["get", "endpoints", "web", "-o", "json"]);
        e.ok()
            && e.json()["subsets"][0]["addresses"]
                .as_array()
                .map_or(0, Vec::len)
                == 5
    });
    wait_until("both node ports to answer", LONG, || {
        targets.iter().all(|t| http_get(*t).is_ok())
    });
    let on: std::collections::BTreeSet<String> = web_pods(&m)
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on.len(), 2, "replicas on both hosts: {on:?}");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = steady_client(targets.clone(), stop.clone());

    m.orkops(&["scale", "deployment/web", "--replicas", "8"])
        .success();
    wait_until("8 ready replicas", LONG, || {
        web_pods(&m).iter().filter(|p| is_ready(p)).count() == 8
    });
    m.orkops(&["scale", "deployment/web", "--replicas", "3"])
        .success();
    wait_until("3 replicas", LONG, || web_pods(&m).len() == 3);
    m.orkops(&["scale", "deployment/web", "--replicas", "5"])
        .success();
    wait_until("5 ready replicas again", LONG, || {
        web_pods(&m).iter().filter(|p| is_ready(p)).count() == 5
    });

    m.orkops_stdin(&["apply", "-f", "-"], Some(&draining_web(v2, 5)))
        .success();
    let status = m
        .orkops(&["rollout", "status", "deployment/web", "--timeout", "180"])
        .success();
    assert!(status.contains("successfully rolled out"), "{status}");
    wait_until("only new pods, all ready", LONG, || {
        let all = m
            .orkops(&["get", "pods", "-l", "app=web", "-o", "json"])
            .json();
        let ps = all["items"].as_array().unwrap();
        ps.len() == 5
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == v2 && is_ready(p))
    });

    m.orkops(&["rollout", "undo", "deployment/web"]).success();
    m.orkops(&["rollout", "status", "deployment/web", "--timeout", "180"])
        .success();
    wait_until("every pod back on the old image", LONG, || {
        let all = m
            .orkops(&["get", "pods", "-l", "app=web", "-o", "json"])
            .json();
        let ps = all["items"].as_array().unwrap();
        ps.len() == 5
            && ps
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == TEST_IMAGE && is_ready(p))
    });

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (requests, failed, first) = client.join().unwrap();
    eprintln!("steady client: {requests} requests, {failed} failed");
    assert!(requests > 200, "the client barely ran: {requests} requests");
    assert_eq!(
        failed, 0,
        "failed requests during scale/rollout/undo: {first:?}"
    );

    drop((a, b));
    drop(m);
    drop(lan);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_no_leftovers(&names);
}
