//! The streaming commands: `logs` (a chunked answer copied to stdout), `exec` (an upgraded
//! connection speaking `execproto`, with the terminal in raw mode for `-t`), and `image load`
//! (a `docker save` stream from the local engine sent as the request body).

use std::io::IsTerminal;

use anyhow::{bail, Context};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::args::{ExecArgs, ImageLoadArgs, LogsArgs};
use super::Session;
use crate::api::Kind;
use crate::execproto::{self, Exit, Resize};

fn pod_name(arg: &str) -> anyhow::Result<&str> {
    let name = match arg.split_once('/') {
        Some((k, n)) if Kind::lookup(k) == Some(Kind::Pod) => n,
        Some((k, _)) => bail!("{arg:?}: only pods have logs and exec ({k:?} is not a pod)"),
        None => arg,
    };
    if name.is_empty() {
        bail!("{arg:?}: give a pod name");
    }
    Ok(name)
}

fn pod_path(s: &Session, pod: &str, sub: &str) -> String {
    format!("{}/{sub}", Kind::Pod.path(Some(&s.namespace), Some(pod)))
}

pub async fn logs(s: &Session, a: &LogsArgs) -> anyhow::Result<()> {
    let pod = pod_name(&a.pod)?;
    let mut q = Vec::new();
    if let Some(c) = &a.container {
        q.push(("container", c.clone()));
    }
    for (k, on) in [
        ("follow", a.follow),
        ("previous", a.previous),
        ("timestamps", a.timestamps),
    ] {
        if on {
            q.push((k, "true".to_string()));
        }
    }
    if let Some(n) = a.tail {
        q.push(("tailLines", n.to_string()));
    }
    let resp = s
        .client
        .send_streaming(Method::GET, &pod_path(s, pod, "log"), &q, &[], None)
        .await?;
    let mut body = resp.bytes_stream();
    let mut out = tokio::io::stdout();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the log stream was interrupted")?;
        out.write_all(&chunk).await?;
        out.flush().await?;
    }
    Ok(())
}

/// Puts the terminal in raw mode until dropped.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enable() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed, then filled, termios struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode(None);
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return RawMode(None);
            }
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the attributes read in `enable`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

fn terminal_size() -> Option<Resize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct for fd 1.
    unsafe {
        let mut w: libc::winsize = std::mem::zeroed();
        (libc::ioctl(1, libc::TIOCGWINSZ, &mut w) == 0 && w.ws_col > 0).then_some(Resize {
            cols: w.ws_col,
            rows: w.ws_row,
        })
    }
}

pub async fn exec(s: &Session, a: &ExecArgs) -> anyhow::Result<()> {
    let pod = pod_name(&a.pod)?;
    let mut q: Vec<(&str, String)> = a.command.iter().map(|c| ("command", c.clone())).collect();
    if let Some(c) = &a.container {
        q.push(("container", c.clone()));
    }
    warn_without_terminal(a.tty);
    session(s, pod, "exec", q, a.stdin, a.tty).await
}

/// `-t` with an input that is not a terminal: say so (the remote side still gets one).
pub fn warn_without_terminal(tty: bool) {
    if tty && !std::io::stdin().is_terminal() {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
}

/// An exec or attach stream: stdin (with `stdin`), a terminal (with `tty`), output, and the
/// remote exit code as this process's result.
pub async fn session(
    s: &Session,
    pod: &str,
    sub: &str,
    mut q: Vec<(&str, String)>,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<()> {
    q.push(("stdin", stdin.to_string()));
    q.push(("tty", tty.to_string()));
    let interactive_tty = tty && stdin && std::io::stdin().is_terminal();
    let resp = s
        .client
        .send_streaming(
            Method::POST,
            &pod_path(s, pod, sub),
            &q,
            &[("connection", "upgrade"), ("upgrade", execproto::PROTOCOL)],
            None,
        )
        .await?;
    if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        bail!(
            "the server did not start the {sub} stream (HTTP {})",
            resp.status()
        );
    }
    let io = resp
        .upgrade()
        .await
        .with_context(|| format!("cannot open the {sub} stream"))?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let raw = interactive_tty.then(RawMode::enable);
    if interactive_tty {
        if let Some(size) = terminal_size() {
            execproto::write_frame(&mut wr, execproto::RESIZE, &serde_json::to_vec(&size)?).await?;
        }
    }
    let stdin_task = stdin.then(|| {
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 16 * 1024];
            let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
            loop {
                tokio::select! {
                    n = stdin.read(&mut buf) => match n {
                        Ok(0) | Err(_) => {
                            let _ = execproto::write_frame(&mut wr, execproto::STDIN, &[]).await;
                            break;
                        }
                        Ok(n) => {
                            if execproto::write_frame(&mut wr, execproto::STDIN, &buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    },
                    Some(()) = async { match winch.as_mut() { Some(w) => w.recv().await, None => std::future::pending().await } } => {
                        if let Some(size) = terminal_size() {
                            let _ = execproto::write_frame(&mut wr, execproto::RESIZE, &serde_json::to_vec(&size).unwrap_or_default()).await;
                        }
                    }
                }
            }
            // keep the write half open until the command ends
            std::future::pending::<()>().await;
        })
    });
    let (mut out, mut err) = (tokio::io::stdout(), tokio::io::stderr());
    let mut exit = None;
    while let Some((ch, data)) = execproto::read_frame(&mut rd)
        .await
        .with_context(|| format!("the {sub} stream was interrupted"))?
    {
        match ch {
            execproto::STDOUT => {
                out.write_all(&data).await?;
                out.flush().await?;
            }
            execproto::STDERR => {
                err.write_all(&data).await?;
                err.flush().await?;
            }
            execproto::EXIT => {
                exit = Some(serde_json::from_slice::<Exit>(&data).context("a bad exit frame")?);
                break;
            }
            _ => {}
        }
    }
    if let Some(t) = stdin_task {
        t.abort();
    }
    drop(raw);
    match exit {
        Some(Exit {
            exit_code: Some(0), ..
        }) => Ok(()),
        Some(Exit {
            exit_code: Some(code),
            ..
        }) => Err(crate::RemoteExit(code.clamp(1, 255) as u8).into()),
        Some(Exit { error: Some(e), .. }) => bail!("{sub} failed: {e}"),
        _ => bail!("the {sub} stream ended without an exit status"),
    }
}

pub async fn image_load(s: &Session, a: &ImageLoadArgs) -> anyhow::Result<()> {
    let archive: reqwest::Body = match &a.input {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("--input {}", path.display()))?;
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f))
        }
        None => {
            let docker = bollard::Docker::connect_with_local_defaults()
                .context("cannot reach the local Docker engine")?
                .negotiate_version()
                .await
                .context("cannot reach the local Docker engine (is it running?)")?;
            for image in &a.images {
                if let Err(e) = docker.inspect_image(image).await {
                    bail!(
                        "image {image:?} is not in the local Docker engine: {}\nhint: build or pull it locally first (`docker images` lists what is there)",
                        crate::agent::runtime::docker_message(&e)
                    );
                }
            }
            let names: Vec<&str> = a.images.iter().map(String::as_str).collect();
            reqwest::Body::wrap_stream(
                docker
                    .export_images(&names)
                    .map(|r| r.map_err(std::io::Error::other)),
            )
        }
    };
    // find a live endpoint first (a streamed body cannot be retried) and check the node
    match &a.node {
        Some(n) => {
            s.client
                .get(Kind::Node, None, n)
                .await
                .with_context(|| format!("--node {n}"))?;
        }
        None => {
            s.client.list(Kind::Node, None, &[]).await?;
        }
    }
    let mut q = Vec::new();
    if let Some(n) = &a.node {
        q.push(("node", n.clone()));
    }
    let resp = s
        .client
        .send_streaming(
            Method::POST,
            "/orkops/v1/images/load",
            &q,
            &[("content-type", "application/x-tar")],
            Some(archive),
        )
        .await?;
    let v: Value = resp
        .json()
        .await
        .context("a bad answer to the image load")?;
    let mut failed = Vec::new();
    for n in v["nodes"].as_array().into_iter().flatten() {
        let node = n["node"].as_str().unwrap_or("?");
        match n["error"].as_str() {
            Some(e) => {
                println!("{node}: failed: {e}");
                failed.push(node.to_string());
            }
            None => {
                let loaded: Vec<&str> = n["loaded"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!("{node}: loaded {}", loaded.join(", "));
            }
        }
    }
    if !failed.is_empty() {
        bail!("the image could not be loaded on {}", failed.join(", "));
    }
    Ok(())
}
