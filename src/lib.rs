//! orkops: a self-managed container orchestrator, installed the way kops installs Kubernetes.
//!
//! The library holds every component; the binaries in `src/bin/` are thin `main`s:
//! - `addons`: cluster add-ons (bundles of manifest templates), enabled and recorded via the API;
//! - `api`: the object model (kinds, defaults, validation, selectors);
//! - `store`: the etcd-backed store behind a narrow trait;
//! - `apiserver`: authentication, the command engine and the HTTP layer;
//! - `master`: the `orkops-master` settings, setup and serve loop;
//! - `controllers`: the master's scheduler, Deployment controller, node lifecycle and GC;
//! - `agent`: `orkops-agent`, which runs the pods of its node on Docker;
//! - `execproto`: the framing of `orkops exec` streams;
//! - `serve`: the TLS accept loop both servers use;
//! - `pki`: the cluster CA, certificates and secrets;
//! - `client`: the API client and its configuration file;
//! - `bootstrap`: the bootstrap of a cluster's instances over SSH (russh, tera templates);
//! - `cloud`: cluster infrastructure on AWS (the spec, the reconciler, teardown);
//! - `progress`: progress events of long operations;
//! - `names`: the tags, labels, annotations and well-known objects several modules name;
//! - `provision`: create, update, validate and delete a cluster, as functions of checked settings;
//! - `cli`: the `orkops` command line.

pub mod addons;
pub mod agent;
pub mod api;
pub mod apiserver;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod controllers;
pub mod execproto;
pub mod master;
pub mod names;
pub mod pki;
pub mod progress;
pub mod provision;
pub mod serve;
pub mod store;

/// Resolves when the process gets SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints an error chain the way every orkops binary does (`error:` then `caused by:` lines)
/// and turns the result into the exit code: 0, or 1 on error.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(RemoteExit(code)) = e.downcast_ref::<RemoteExit>() {
                return std::process::ExitCode::from(*code);
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("caused by: {cause}");
            }
            std::process::ExitCode::from(1)
        }
    }
}

/// A command run elsewhere (`orkops exec`) ended with this exit code; the CLI exits with it.
#[derive(Debug, thiserror::Error)]
#[error("the command exited with code {0}")]
pub struct RemoteExit(pub u8);
