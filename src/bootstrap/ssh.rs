//! SSH to a cluster's instances (russh): waits for the SSH port with a deadline, checks the
//! host key against the one recorded at first contact (`KnownHosts`, keyed by instance id, in
//! OpenSSH's format so `ssh -o HostKeyAlias=ID` reads it too), logs in with the cluster's key,
//! runs commands and uploads files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::ChannelMsg;

/// An SSH failure, with the instance it is about and what the user can do. The kinds a user
/// fixes differently are variants: the key refused, the host key changed, SSH not answering
/// (with why the last attempt failed), a command that failed on the instance.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{target}: user {user} refused the cluster's SSH key; hint: the instance must have been started with the cluster's key pair, and the key in ~/.orkops/clusters/CLUSTER/id_ed25519 must be its private half")]
    AuthRefused { target: String, user: String },
    #[error("{0}")]
    HostKeyChanged(Box<HostKeyChange>),
    #[error("{target}: SSH did not answer within {secs} s (last: {last}); hint: {}", last.hint(*port))]
    NotAnswering {
        target: String,
        secs: u64,
        port: u16,
        last: ConnectFailure,
    },
    #[error("{target}: {what} failed (exit {code}): {output}")]
    Command {
        target: String,
        what: String,
        code: String,
        output: String,
    },
    /// Several instances failed (a bootstrap runs them all at once), one line each.
    #[error("{}", one_per_line(.0))]
    Several(Vec<SshError>),
    #[error("{0}")]
    Other(String),
}

/// An instance showing another host key than the one recorded at first contact.
#[derive(Debug)]
pub struct HostKeyChange {
    pub target: String,
    pub instance: String,
    /// The fingerprints (SHA-256) of the recorded and the shown key.
    pub recorded: String,
    pub shown: String,
    /// The known hosts file holding the recorded key.
    pub file: String,
}

impl std::fmt::Display for HostKeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: its SSH host key changed (recorded {}, now {}); refusing to connect, as the machine answering may not be the instance. hint: if the instance was rebuilt on purpose, remove the line for {} from {}",
            self.target, self.recorded, self.shown, self.instance, self.file
        )
    }
}

fn one_per_line(errors: &[SshError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why the last attempt to reach an instance's SSH failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectFailure {
    /// The address answered with a reset: nothing listens on the port (yet).
    Refused,
    /// No answer at all: a firewall drops the packets, or the address is not up.
    TimedOut,
    /// The SSH handshake did not finish or failed.
    Handshake(String),
    /// The instance refused the key (cloud-init may still be writing it).
    KeyRefused,
    Other(String),
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailure::Refused => write!(f, "connection refused"),
            ConnectFailure::TimedOut => write!(f, "connecting timed out"),
            ConnectFailure::Handshake(e) => write!(f, "{e}"),
            ConnectFailure::KeyRefused => write!(f, "the key was refused"),
            ConnectFailure::Other(e) => write!(f, "{e}"),
        }
    }
}

impl ConnectFailure {
    fn of(e: &std::io::Error) -> ConnectFailure {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
            std::io::ErrorKind::TimedOut => ConnectFailure::TimedOut,
            _ => ConnectFailure::Other(e.to_string()),
        }
    }

    /// What the user can do about it.
    pub fn hint(&self, port: u16) -> String {
        match self {
            ConnectFailure::Refused => format!("the instance is up but nothing listens on port {port}: its sshd did not start (see its console output), or --ssh-timeout is too short for its boot"),
            ConnectFailure::KeyRefused => "the instance did not accept the cluster's key in time: was it started with the cluster's key pair?".into(),
            _ => format!("the security group must let your address reach port {port} (--api-cidrs), and on the local cloud its bodies must run (localstack/status)"),
        }
    }
}

/// Who to reach.
#[derive(Debug, Clone)]
pub struct Target {
    /// `master-1`, `node-2`.
    pub name: String,
    pub instance_id: String,
    pub address: String,
    pub port: u16,
    pub user: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) at {}:{}",
            self.name, self.instance_id, self.address, self.port
        )
    }
}

/// Host keys recorded at first contact: `INSTANCE-ID KEYTYPE BASE64` lines.
pub struct KnownHosts {
    path: PathBuf,
    lock: Mutex<()>,
}

impl KnownHosts {
    pub fn open(path: &Path) -> KnownHosts {
        KnownHosts {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key recorded for an instance.
    pub fn recorded(&self, instance: &str) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        text.lines().find_map(|l| {
            let (host, key) = l.split_once(' ')?;
            (host == instance).then(|| key.trim().to_string())
        })
    }

    /// Accepts the key the instance shows if it is the recorded one, or records it at first
    /// contact; refuses a changed key.
    pub fn check(&self, t: &Target, key: &PublicKey) -> Result<(), SshError> {
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let shown = key
            .to_openssh()
            .map_err(|e| SshError::Other(format!("{t}: cannot encode its host key: {e}")))?;
        let shown = shown
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        match self.recorded(&t.instance_id) {
            Some(k) if k == shown => Ok(()),
            Some(k) => {
                let fp = |k: &str| {
                    PublicKey::from_openssh(k)
                        .map(|p| p.fingerprint(HashAlg::Sha256).to_string())
                        .unwrap_or_else(|_| "?".into())
                };
                Err(SshError::HostKeyChanged(Box::new(HostKeyChange {
                    target: t.to_string(),
                    instance: t.instance_id.clone(),
                    recorded: fp(&k),
                    shown: fp(&shown),
                    file: self.path.display().to_string(),
                })))
            }
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        SshError::Other(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .map_err(|e| SshError::Other(format!("{}: {e}", self.path.display())))?;
                writeln!(f, "{} {shown}", t.instance_id)
                    .map_err(|e| SshError::Other(format!("{}: {e}", self.path.display())))?;
                Ok(())
            }
        }
    }
}

struct Handler {
    known: Arc<KnownHosts>,
    target: Target,
    verdict: Arc<Mutex<Option<SshError>>>,
}

impl client::Handler for Handler {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        match self.known.check(&self.target, key) {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.verdict.lock().unwrap() = Some(e);
                Ok(false)
            }
        }
    }
}

/// A logged-in session.
pub struct Session {
    handle: client::Handle<Handler>,
    pub target: Target,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
    /// The exit code, or `?` when the command ended without one (a signal).
    fn exit(&self) -> String {
        self.code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "?".into())
    }
}

/// Quotes `s` for a POSIX shell.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Waits (up to `deadline`) for the instance's SSH port, checks its host key and logs in.
/// A refused key is retried for a little while (cloud-init may still be writing it); a changed
/// host key is refused at once.
pub async fn connect(
    t: &Target,
    key: Arc<PrivateKey>,
    known: Arc<KnownHosts>,
    deadline: Duration,
) -> Result<Session, SshError> {
    let start = Instant::now();
    let mut last;
    let mut refused_since: Option<Instant> = None;
    loop {
        match attempt(t, &key, &known, deadline.saturating_sub(start.elapsed())).await {
            Ok(handle) => {
                return Ok(Session {
                    handle,
                    target: t.clone(),
                })
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Failed(ConnectFailure::KeyRefused)) => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(30) || start.elapsed() > deadline {
                    return Err(SshError::AuthRefused {
                        target: t.to_string(),
                        user: t.user.clone(),
                    });
                }
                last = ConnectFailure::KeyRefused;
            }
            Err(Attempt::Failed(f)) => last = f,
        }
        if start.elapsed() > deadline {
            return Err(SshError::NotAnswering {
                target: t.to_string(),
                secs: deadline.as_secs(),
                port: t.port,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How one attempt to log in ended, when it did not: worth another try, or not.
enum Attempt {
    Failed(ConnectFailure),
    /// A changed host key: trying again would not change it.
    Fatal(SshError),
}

/// One attempt: connect (5 s at most), handshake (what is `left` of the deadline, 1 to 30 s),
/// check the host key, log in.
async fn attempt(
    t: &Target,
    key: &Arc<PrivateKey>,
    known: &Arc<KnownHosts>,
    left: Duration,
) -> Result<client::Handle<Handler>, Attempt> {
    let failed = |f: ConnectFailure| Attempt::Failed(f);
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((t.address.as_str(), t.port)),
    )
    .await
    .map_err(|_| failed(ConnectFailure::TimedOut))?
    .map_err(|e| failed(ConnectFailure::of(&e)))?;
    let _ = stream.set_nodelay(true);
    let verdict = Arc::new(Mutex::new(None));
    let handler = Handler {
        known: known.clone(),
        target: t.clone(),
        verdict: verdict.clone(),
    };
    let config = Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        window_size: 16 << 20,
        ..Default::default()
    });
    // a host that takes the connection but never speaks SSH gets what is left of the deadline
    let connected = tokio::time::timeout(
        left.clamp(Duration::from_secs(1), Duration::from_secs(30)),
        client::connect_stream(config, stream, handler),
    )
    .await;
    let mut handle = match connected {
        Err(_) => {
            return Err(failed(ConnectFailure::Handshake(
                "the SSH handshake timed out".into(),
            )))
        }
        Ok(Err(e)) => {
            if let Some(refusal) = verdict.lock().unwrap().take() {
                return Err(Attempt::Fatal(refusal));
            }
            return Err(failed(ConnectFailure::Handshake(format!(
                "SSH handshake: {e}"
            ))));
        }
        Ok(Ok(h)) => h,
    };
    let hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(|e| failed(ConnectFailure::Handshake(e.to_string())))?
        .flatten();
    let auth = handle
        .authenticate_publickey(&t.user, PrivateKeyWithHashAlg::new(key.clone(), hash))
        .await
        .map_err(|e| failed(ConnectFailure::Other(format!("SSH authentication: {e}"))))?;
    if !auth.success() {
        return Err(failed(ConnectFailure::KeyRefused));
    }
    Ok(handle)
}

impl Session {
    /// Runs `command` (a shell command line), feeding it `stdin`; waits for it to end. Input
    /// is written while the answers are read: the session delivers window adjustments as
    /// channel messages, and an unread channel would stall a large upload.
    pub async fn run(&self, command: &str, stdin: Option<Bytes>) -> Result<Output, SshError> {
        let t = &self.target;
        let io = |e: russh::Error| SshError::Other(format!("{t}: {e}"));
        let ch = self.handle.channel_open_session().await.map_err(io)?;
        ch.exec(true, command).await.map_err(io)?;
        let (mut read, write) = ch.split();
        let send = async {
            if let Some(data) = &stdin {
                write.data(&data[..]).await?;
            }
            write.eof().await
        };
        let receive = async {
            let mut out = Output::default();
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, .. } => out.stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                    _ => {}
                }
            }
            out
        };
        // A command that exits without reading all its input (an upload whose `cat` fails)
        // closes the channel early: the rest of the input then never gets window space, so
        // the channel's end, not the end of sending, ends the command.
        tokio::pin!(send, receive);
        let mut sent = None;
        let out = loop {
            tokio::select! {
                r = &mut send, if sent.is_none() => sent = Some(r),
                out = &mut receive => break out,
            }
        };
        if let Some(Err(e)) = sent {
            if out.code.is_none() {
                return Err(io(e));
            }
        }
        Ok(out)
    }

    /// The command line that runs `sh -c SCRIPT` as root: through `sudo -n` unless logged in
    /// as root.
    fn as_root(&self, script: &str) -> String {
        if self.target.user == "root" {
            format!("sh -c {}", quote(script))
        } else {
            format!("sudo -n sh -c {}", quote(script))
        }
    }

    /// Runs `script` as root every second until it succeeds; false if it never did within
    /// `deadline`.
    pub async fn until_ok(&self, script: &str, deadline: Duration) -> Result<bool, SshError> {
        let until = Instant::now() + deadline;
        loop {
            if self.run(&self.as_root(script), None).await?.ok() {
                return Ok(true);
            }
            if Instant::now() > until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// `sh -c SCRIPT` as root (through `sudo -n` unless logged in as root); its output, or an
    /// error with what it printed.
    pub async fn root(&self, what: &str, script: &str) -> Result<String, SshError> {
        let out = self.run(&self.as_root(script), None).await?;
        if !out.ok() {
            return Err(SshError::Command {
                target: self.target.to_string(),
                what: what.to_string(),
                code: out.exit(),
                output: if out.stderr.is_empty() {
                    out.stdout()
                } else {
                    out.stderr()
                },
            });
        }
        Ok(out.stdout())
    }

    /// Writes `data` to `path` as root with `mode` (atomically: a temporary file renamed).
    pub async fn upload(&self, data: Bytes, path: &str, mode: u32) -> Result<(), SshError> {
        let tmp = format!("{path}.orkops-upload");
        let dir = Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let script = format!(
            "set -e; mkdir -p {d}; cat > {tmp}; chmod {mode:o} {tmp}; mv -f {tmp} {p}",
            d = quote(&dir),
            tmp = quote(&tmp),
            p = quote(path)
        );
        let size = data.len();
        let out = self.run(&self.as_root(&script), Some(data)).await?;
        if !out.ok() {
            return Err(SshError::Command {
                target: self.target.to_string(),
                what: format!("uploading {path} ({size} bytes)"),
                code: out.exit(),
                output: out.stderr(),
            });
        }
        Ok(())
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_escapes_the_rest() {
        assert_eq!(quote("/usr/local/bin/x"), "/usr/local/bin/x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[tokio::test]
    async fn a_closed_port_is_told_apart_from_a_silent_one() {
        let dir = tempfile::tempdir().unwrap();
        let known = Arc::new(KnownHosts::open(&dir.path().join("known_hosts")));
        let key = Arc::new(
            PrivateKey::random(&mut rand::rngs::OsRng, russh::keys::Algorithm::Ed25519).unwrap(),
        );
        let target = |port| Target {
            name: "node-1".into(),
            instance_id: "i-1".into(),
            address: "127.0.0.1".into(),
            port,
            user: "admin".into(),
        };
        // nothing listens: refused
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let e = match connect(
            &target(port),
            key.clone(),
            known.clone(),
            Duration::from_secs(1),
        )
        .await
        {
            Err(e) => e,
            Ok(_) => panic!("connected to a closed port"),
        };
        let SshError::NotAnswering { last, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*last, ConnectFailure::Refused);
        let text = e.to_string();
        assert!(
            text.contains("SSH did not answer within 1 s")
                && text.contains("connection refused")
                && text.contains("nothing listens on port"),
            "{text}"
        );
        // something takes the connection and never speaks SSH: the handshake times out
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                held.push(c);
            }
        });
        let e = match connect(&target(port), key, known, Duration::from_secs(1)).await {
            Err(e) => e,
            Ok(_) => panic!("logged in to a silent port"),
        };
        hold.abort();
        let SshError::NotAnswering { last, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(last, ConnectFailure::Handshake(_)), "{e}");
        assert!(e.to_string().contains("security group"), "{e}");
    }

    #[test]
    fn host_keys_are_recorded_once_and_a_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownHosts::open(&dir.path().join("known_hosts"));
        let t = Target {
            name: "node-1".into(),
            instance_id: "i-1".into(),
            address: "10.0.0.4".into(),
            port: 22,
            user: "admin".into(),
        };
        let k1 =
            PrivateKey::random(&mut rand::rngs::OsRng, russh::keys::Algorithm::Ed25519).unwrap();
        let k2 =
            PrivateKey::random(&mut rand::rngs::OsRng, russh::keys::Algorithm::Ed25519).unwrap();
        known.check(&t, k1.public_key()).unwrap();
        known.check(&t, k1.public_key()).unwrap();
        let e = known.check(&t, k2.public_key()).unwrap_err().to_string();
        assert!(e.contains("host key changed") && e.contains("i-1"), "{e}");
        let other = Target {
            instance_id: "i-2".into(),
            ..t
        };
        known.check(&other, k2.public_key()).unwrap();
        let text = std::fs::read_to_string(known.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("i-1 ssh-ed25519 "), "{text}");
    }
}
