//! Streams as Kubernetes clients use them, against a real `orkops-master` and `orkops-agent`
//! on the machine's Docker engine: the real kubectl on PATH (`exec`, `attach`, `run --rm -i`,
//! `cp`, `logs` with its flags, `port-forward`) and the official Python client (`stream()` exec
//! with its `returncode`, and `portforward`), installed by `scripts/install-pyclient`.
//! Skipped with a message where kubectl (or, for the Python test, the client) is missing.

mod common;

use common::kube::{have_kubectl, kubeconfig};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{die_with_parent, free_port, wait_until, Agent, Master, TEST_IMAGE};

const LONG: Duration = Duration::from_secs(90);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn kubectl_command(config: &Path, args: &[&str]) -> Command {
    let mut cmd = common::kube::kubectl_command(config, args);
    die_with_parent(&mut cmd);
    cmd
}

fn kubectl_in(config: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut child = kubectl_command(config, args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubectl(config: &Path, args: &[&str]) -> Out {
    kubectl_in(config, args, None)
}

#[track_caller]
fn ok(config: &Path, args: &[&str]) -> String {
    let out = kubectl(config, args);
    assert_eq!(out.code, 0, "kubectl {}: {out:?}", args.join(" "));
    out.stdout
}

fn apply(m: &Master, yaml: &str) {
    m.orkops_stdin(&["apply", "-f", "-"], Some(yaml)).success();
}

/// Waits until every container of pod `name` runs.
fn wait_running(m: &Master, name: &str) {
    wait_until(&format!("pod {name} to run"), LONG, || {
        let p = m.orkops(&["get", "pod", name, "-o", "json"]);
        if !p.ok() {
            return false;
        }
        let v = p.json();
        let n = v["spec"]["containers"].as_array().map_or(0, Vec::len);
        let statuses = v["status"]["containerStatuses"].as_array().cloned();
        v["status"]["phase"] == "Running"
            && statuses.is_some_and(|s| {
                s.len() == n && s.iter().all(|c| c["state"]["running"].is_object())
            })
    });
}

fn pod_yaml(name: &str, containers: &[(&str, &str)], extra: &str) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  restartPolicy: Never\n\
         {extra}  containers:\n"
    );
    for (c, script) in containers {
        y.push_str(&format!(
            "  - name: {c}\n    image: {TEST_IMAGE}\n    command: [\"sh\", \"-c\", {script:?}]\n"
        ));
    }
    y
}

/// `kubectl exec` (exit codes, stdin, stdout and stderr apart, a terminal, a bad container),
/// `attach -i`, and `cp` both ways.
#[test]
fn kubectl_exec_attach_and_cp() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&m, dir.path());
    apply(
        &m,
        &pod_yaml(
            "box",
            &[("main", "exec sleep 3600"), ("side", "exec sleep 3600")],
            "",
        ),
    );
    wait_running(&m, "box");

    let out = kubectl(&k, &["exec", "box", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("command terminated with exit code 3"),
        "{out:?}"
    );
    assert_eq!(
        ok(&k, &["exec", "box", "-c", "side", "--", "echo", "hi"]),
        "hi\n"
    );
    let out = kubectl(
        &k,
        &[
            "exec",
            "box",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
    );
    assert_eq!(
        (out.code, &*out.stdout, &*out.stderr),
        (0, "out\n", "err\n")
    );

    // stdin, to its end: cat ends when kubectl closes the stream (v5's close channel)
    let text = "hello\nworld\n".repeat(2000);
    let out = kubectl_in(
        &k,
        &["exec", "-i", "box", "--", "cat"],
        Some(text.as_bytes()),
    );
    assert_eq!(out.code, 0, "{:?}", out.stderr);
    assert!(out.stdout == text, "cat echoed {} bytes", out.stdout.len());

    // a terminal: `script` gives kubectl one, so -t is honoured and the resize is sent
    let cmd = format!(
        "kubectl --kubeconfig {} exec -i -t box -- sh -c 'tty; stty size'",
        k.display()
    );
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HOME", dir.path())
        .env("COLUMNS", "100")
        .env("LINES", "30")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let tty_out = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{tty_out}");
    assert!(tty_out.contains("/dev/pts/"), "{tty_out}");

    let out = kubectl(&k, &["exec", "box", "-c", "nope", "--", "true"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("nope") && out.stderr.contains("main side"),
        "{out:?}"
    );

    // cp both ways (exec with tar in the container)
    let content: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
    let local = dir.path().join("up.txt");
    std::fs::write(&local, &content).unwrap();
    ok(
        &k,
        &[
            "cp",
            local.to_str().unwrap(),
            "box:/tmp/up.txt",
            "-c",
            "main",
        ],
    );
    assert!(ok(&k, &["exec", "box", "--", "cat", "/tmp/up.txt"]) == content);
    ok(
        &k,
        &[
            "exec",
            "box",
            "--",
            "sh",
            "-c",
            "mkdir -p /tmp/d && echo inside > /tmp/d/f",
        ],
    );
    let back = dir.path().join("back");
    ok(&k, &["cp", "box:/tmp/d", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back.join("f")).unwrap(), "inside\n");
    let down = dir.path().join("down.txt");
    ok(&k, &["cp", "box:/tmp/up.txt", down.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&down).unwrap() == content);

    // attach -i: the container reads what kubectl sends, and ends at its end
    let talker = pod_yaml(
        "talker",
        &[("main", "while read l; do echo got:$l; done; echo bye")],
        "",
    )
    .replace(
        "    command:",
        "    stdin: true\n    stdinOnce: true\n    command:",
    );
    apply(&m, &talker);
    wait_running(&m, "talker");
    let out = kubectl_in(&k, &["attach", "-i", "talker"], Some(b"a\nb\n"));
    assert!(
        out.stdout.contains("got:a") && out.stdout.contains("got:b"),
        "{out:?}"
    );
}

/// `kubectl run --rm -i`: create, attach (or read the logs if it already ended), delete.
#[test]
fn kubectl_run_rm_i_prints_and_deletes() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&m, dir.path());
    let out = kubectl(
        &k,
        &[
            "run",
            "once",
            "--rm",
            "-i",
            "--restart=Never",
            "--image",
            TEST_IMAGE,
            "--",
            "echo",
            "hi",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hi"), "{out:?}");
    wait_until("the run pod to be deleted", LONG, || {
        !m.orkops(&["get", "pod", "once"]).ok()
    });
}

/// `kubectl logs` with `-c`, `--tail`, `--limit-bytes`, `--timestamps`, `--since`,
/// `--since-time`, `-f`, `--previous`, a bad container, and `deploy/NAME`.
#[test]
fn kubectl_logs_with_every_flag() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&m, dir.path());
    apply(
        &m,
        &pod_yaml(
            "box",
            &[
                (
                    "main",
                    "echo line1; echo line2; echo line3; exec sleep 3600",
                ),
                ("side", "echo from-side; exec sleep 3600"),
            ],
            "",
        ),
    );
    wait_running(&m, "box");
    wait_until("box's logs", LONG, || {
        kubectl(&k, &["logs", "box", "-c", "main"]).stdout == "line1\nline2\nline3\n"
    });
    assert_eq!(ok(&k, &["logs", "box", "-c", "side"]), "from-side\n");
    assert_eq!(
        ok(&k, &["logs", "box", "-c", "main", "--tail=1"]),
        "line3\n"
    );
    assert_eq!(
        ok(&k, &["logs", "box", "-c", "main", "--limit-bytes=8"]),
        "line1\nli"
    );
    let stamped = ok(&k, &["logs", "box", "-c", "main", "--timestamps"]);
    let first = stamped.lines().next().unwrap();
    let (ts, rest) = first.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "{stamped}"
    );
    assert_eq!(rest, "line1");
    assert_eq!(
        ok(&k, &["logs", "box", "-c", "main", "--since=1h"]),
        "line1\nline2\nline3\n"
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        ok(
            &k,
            &[
                "logs",
                "box",
                "-c",
                "main",
                &format!("--since-time={later}")
            ]
        ),
        ""
    );
    // kubectl checks -c itself; the server's own answer names the pod's containers
    let raw = "/api/v1/namespaces/default/pods/box/log?container=nope";
    let out = kubectl(&k, &["get", "--raw", raw]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("BadRequest")
            && out.stderr.contains("nope")
            && out.stderr.contains("main side"),
        "{out:?}"
    );
    let out = kubectl(&k, &["get", "--raw", &format!("{raw}&tailLines=-1")]);
    assert!(out.stderr.contains("tailLines"), "{out:?}");
    let out = kubectl(&k, &["logs", "box", "-c", "main", "--previous"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("previous terminated container"),
        "{out:?}"
    );

    // -f follows until the container ends
    apply(
        &m,
        &pod_yaml(
            "follower",
            &[(
                "main",
                "echo first; while [ ! -f /tmp/done ]; do sleep 0.1; done; echo last",
            )],
            "",
        ),
    );
    wait_running(&m, "follower");
    let mut follow = kubectl_command(&k, &["logs", "-f", "follower"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    ok(&k, &["exec", "follower", "--", "touch", "/tmp/done"]);
    let mut rest = String::new();
    lines.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "last\n");
    assert!(follow.wait().unwrap().success());

    // --previous: the attempt before the restart
    let crasher = pod_yaml("crasher", &[("main", "echo attempt; exit 1")], "")
        .replace("restartPolicy: Never", "restartPolicy: Always");
    apply(&m, &crasher);
    wait_until("crasher to restart", LONG, || {
        let v = m.orkops(&["get", "pod", "crasher", "-o", "json"]).json();
        v["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
            >= 1
    });
    wait_until("the previous attempt's logs", LONG, || {
        kubectl(&k, &["logs", "crasher", "--previous"]).stdout == "attempt\n"
    });

    // deploy/NAME: kubectl finds a pod by the deployment's selector
    apply(
        &m,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: talky\nspec:\n  replicas: 1\n\
             \x20 selector:\n    matchLabels:\n      app: talky\n  template:\n    metadata:\n\
             \x20     labels:\n        app: talky\n    spec:\n      containers:\n      - name: main\n\
             \x20       image: {TEST_IMAGE}\n        command: [\"sh\", \"-c\", \"echo from-deploy; exec sleep 3600\"]\n"
        ),
    );
    wait_until("the deployment's logs", LONG, || {
        kubectl(&k, &["logs", "deploy/talky"]).stdout == "from-deploy\n"
    });
}

/// An HTTP/1.0 GET of `path` through 127.0.0.1:port; the whole answer.
fn http_get_path(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn http_get(port: u16) -> std::io::Result<String> {
    http_get_path(port, "/")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const WEB: &str = "mkdir -p /www && echo hello-pf > /www/index.html && \
                   yes 0123456789 | head -c 3000000 > /www/big && exec httpd -f -p 8080 -h /www";

/// Pod `web`: httpd on 8080, and Ready only once it listens.
fn start_web(m: &Master) {
    let yaml = pod_yaml("web", &[("main", WEB)], "")
        + "    readinessProbe:\n      tcpSocket:\n        port: 8080\n      periodSeconds: 1\n";
    apply(m, &yaml);
    wait_until("web to be ready", LONG, || {
        let v = m.orkops(&["get", "pod", "web", "-o", "json"]).json();
        v["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
}

/// `kubectl port-forward pod/NAME LOCAL:REMOTE` (SPDY tunnelled in WebSocket), then several
/// requests through it, each on a connection of its own.
#[test]
fn kubectl_port_forward_carries_requests() {
    if !have_kubectl() {
        return;
    }
    let m = Master::start();
    let _agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&m, dir.path());
    start_web(&m);
    for env in [None, Some("false")] {
        // KUBECTL_PORT_FORWARD_WEBSOCKETS=false makes kubectl speak plain SPDY
        let port = free_port();
        let mut cmd = kubectl_command(&k, &["port-forward", "pod/web", &format!("{port}:8080")]);
        if let Some(v) = env {
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", v);
        }
        let mut child = KillOnDrop(
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("Forwarding from"),
            "{line:?} (env {env:?})"
        );
        for _ in 0..3 {
            let answer = http_get(port).unwrap();
            assert!(answer.contains("hello-pf"), "{answer} (env {env:?})");
        }
        // 3 MB in one answer: SPDY data frames in order, none lost
        let big = http_get_path(port, "/big").unwrap();
        let body = big
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let want: String = "0123456789\n".repeat(3_000_000 / 11 + 1);
        assert!(
            body.len() == 3_000_000 && want.starts_with(body),
            "{} bytes (env {env:?})",
            body.len()
        );
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "port-forward ended (env {env:?})"
        );
    }
    // a port nothing listens on: the connection is closed, with kubectl saying why
    let port = free_port();
    let mut child = KillOnDrop(
        kubectl_command(&k, &["port-forward", "pod/web", &format!("{port}:9")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    let answer = http_get(port).unwrap_or_default();
    assert!(!answer.contains("hello-pf"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < LONG, "port-forward did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("connection refused") || err.contains("9"),
        "{err}"
    );
}

/// The Python client's `stream()`: exec with its `returncode` (v4.channel.k8s.io), and
/// `portforward` (WebSocket channels).
#[test]
fn python_client_exec_and_port_forward() {
    let Some(py) = common::kube::python_client() else {
        return;
    };
    let m = Master::start();
    let _agent = Agent::start(&m);
    let dir = tempfile::tempdir().unwrap();
    let k = kubeconfig(&m, dir.path());
    start_web(&m);
    let program = r#"
import sys
from kubernetes import client, config
from kubernetes.stream import stream, portforward
config.load_kube_config(config_file=sys.argv[1])
api = client.CoreV1Api()
resp = stream(api.connect_get_namespaced_pod_exec, "web", "default",
              command=["sh", "-c", "echo py-out; echo py-err >&2; exit 4"],
              stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
resp.run_forever(timeout=60)
print("stdout=" + resp.read_stdout().strip())
print("stderr=" + resp.read_stderr().strip())
print("returncode=%d" % resp.returncode)
ok = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["true"],
            stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
ok.run_forever(timeout=60)
print("true=%d" % ok.returncode)
out = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["echo", "a b"],
             stderr=True, stdin=False, stdout=True, tty=False)
print("preloaded=" + out.strip())
cat = stream(api.connect_get_namespaced_pod_exec, "web", "default", command=["cat"],
             stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
cat.write_stdin("ping\n")
print("cat=" + (cat.readline_stdout(timeout=30) or "").strip())
cat.close()
pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
s = pf.socket(8080)
s.setblocking(True)
s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
s.close()
print("pf=" + ("hello-pf" if b"hello-pf" in data else repr(data)))
print("pferror=%s" % pf.error(8080))
"#;
    let out = Command::new(&py)
        .args(["-c", program, k.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "stdout=py-out",
        "stderr=py-err",
        "returncode=4",
        "true=0",
        "preloaded=a b",
        "cat=ping",
        "pf=hello-pf",
        "pferror=None",
    ] {
        assert!(
            stdout.lines().any(|l| l == want),
            "{want} missing: {stdout}\n{stderr}"
        );
    }
}
