//! Liveness and readiness probes (HTTP GET, TCP connect, exec) for one running container: a
//! task per probe that applies `initialDelaySeconds`, `periodSeconds`, `timeoutSeconds` and the
//! success/failure thresholds, and reports only changes to the pod's worker.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::runtime::Runtime;
use crate::api::core::{Container, LifecycleHandler, Probe};
use crate::api::meta::IntOrString;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    /// Runs first; liveness and readiness wait for its success, its failure restarts.
    Startup,
}

/// A probe's verdict changed: readiness flipped, or liveness failed for good.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub container_id: String,
    pub container: String,
    pub kind: ProbeKind,
    pub ok: bool,
    pub message: String,
}

pub struct Target {
    pub rt: Runtime,
    pub http: reqwest::Client,
    pub ip: String,
    pub container_id: String,
    pub container: Container,
}

fn secs(v: Option<i64>, default: i64, min: i64) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(min) as u64)
}

fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| format!("container {:?} has no port named {name:?}", c.name)),
    }
}

/// Runs a lifecycle hook (postStart, preStop) to its end within `limit`: exec and httpGet as
/// a probe runs them (an exec hook's exit code other than 0, an HTTP status of 400 or more
/// fail it), sleep by sleeping.
pub async fn run_hook(t: &Target, h: &LifecycleHandler, limit: Duration) -> Result<(), String> {
    if let Some(s) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64).min(limit)).await;
        return Ok(());
    }
    let p = Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        ..Default::default()
    };
    match tokio::time::timeout(limit, check(t, &p, limit)).await {
        Ok(r) => r,
        Err(_) => Err(format!("the hook did not end within {}s", limit.as_secs())),
    }
}

/// One check: Ok(()) on success, Err(why) on failure.
async fn check(t: &Target, p: &Probe, timeout: Duration) -> Result<(), String> {
    if let Some(h) = &p.http_get {
        let port = port(&t.container, &h.port)?;
        let host = h.host.clone().unwrap_or_else(|| t.ip.clone());
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let path = h.path.as_deref().unwrap_or("/");
        let url = format!("{scheme}://{host}:{port}{path}");
        let mut req = t.http.get(&url).timeout(timeout);
        for hh in &h.http_headers {
            req = req.header(&hh.name, &hh.value);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("HTTP probe {url}: {e}"))?;
        let code = resp.status().as_u16();
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(s) = &p.tcp_socket {
        let port = port(&t.container, &s.port)?;
        let host = s.host.clone().unwrap_or_else(|| t.ip.clone());
        return match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("TCP probe {host}:{port}: {e}")),
            Err(_) => Err(format!(
                "TCP probe {host}:{port}: timed out after {}s",
                timeout.as_secs()
            )),
        };
    }
    if let Some(e) = &p.exec {
        let run = async {
            let exec =
                t.rt.docker
                    .create_exec(
                        &t.container_id,
                        CreateExecOptions {
                            cmd: Some(e.command.clone()),
                            attach_stdout: Some(true),
                            attach_stderr: Some(true),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|err| format!("exec probe: {err}"))?;
            let mut out = String::new();
            if let StartExecResults::Attached { mut output, .. } =
                t.rt.docker
                    .start_exec(&exec.id, None)
                    .await
                    .map_err(|err| format!("exec probe: {err}"))?
            {
                while let Some(Ok(chunk)) = output.next().await {
                    if out.len() < 1024 {
                        out.push_str(&chunk.to_string());
                    }
                }
            }
            let code =
                t.rt.docker
                    .inspect_exec(&exec.id)
                    .await
                    .map_err(|err| format!("exec probe: {err}"))?
                    .exit_code
                    .unwrap_or(-1);
            if code == 0 {
                Ok(())
            } else {
                Err(format!(
                    "exec probe {:?} exited with {code}: {}",
                    e.command,
                    out.trim()
                ))
            }
        };
        return match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "exec probe {:?} timed out after {}s",
                e.command,
                timeout.as_secs()
            )),
        };
    }
    Err("the probe has no handler (httpGet, tcpSocket or exec)".into())
}

/// Runs one probe until the task is aborted. Readiness starts at `initially_ready` (true when
/// an adopted container was ready before the agent restarted).
pub async fn run(
    t: Target,
    kind: ProbeKind,
    p: Probe,
    initially_ready: bool,
    tx: mpsc::UnboundedSender<ProbeResult>,
) {
    let initial = secs(p.initial_delay_seconds, 0, 0);
    let period = secs(p.period_seconds, 10, 1);
    let timeout = secs(p.timeout_seconds, 1, 1);
    let success_threshold = p.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = p.failure_threshold.unwrap_or(3).max(1);
    let mut state = match kind {
        ProbeKind::Readiness => initially_ready,
        ProbeKind::Liveness => true,
        ProbeKind::Startup => false,
    };
    let (mut ok_run, mut fail_run) = (0, 0);
    if !initially_ready {
        tokio::time::sleep(initial).await;
    }
    loop {
        let r = check(&t, &p, timeout).await;
        let message = match &r {
            Ok(()) => {
                ok_run += 1;
                fail_run = 0;
                String::new()
            }
            Err(m) => {
                fail_run += 1;
                ok_run = 0;
                m.clone()
            }
        };
        let flip = match kind {
            ProbeKind::Readiness => {
                (!state && ok_run >= success_threshold) || (state && fail_run >= failure_threshold)
            }
            ProbeKind::Liveness => fail_run >= failure_threshold,
            ProbeKind::Startup => ok_run >= success_threshold || fail_run >= failure_threshold,
        };
        if flip {
            state = match kind {
                ProbeKind::Startup => ok_run >= success_threshold,
                _ => !state,
            };
            let _ = tx.send(ProbeResult {
                container_id: t.container_id.clone(),
                container: t.container.name.clone(),
                kind,
                ok: state,
                message,
            });
            if kind != ProbeKind::Readiness {
                return; // started, or restarted (a new task probes the new container)
            }
        }
        tokio::time::sleep(period).await;
    }
}
