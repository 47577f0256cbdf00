//! `pods/exec` and `pods/attach` over WebSocket, as kubectl 1.32 (`v5.channel.k8s.io`) and the
//! Python client (`v4.channel.k8s.io`) speak them, translated on the master to and from the
//! agent's `execproto` frames. Each WebSocket message is one channel's data: its first byte is
//! the channel (stdin 0, stdout 1, stderr 2, error 3, resize 4; in v5, 255 closes the stream
//! named by the next byte); the `base64` variants send text messages whose first character is
//! the channel digit and whose rest is base64. The error channel carries a `metav1.Status`
//! (v4, v5) or the error's text (v1), and the connection is closed normally after it.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::{header, HeaderMap};
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ApiError;
use crate::execproto::{self, Exit, Resize};

/// The subprotocols served for exec and attach, most preferred first.
pub const EXEC_PROTOCOLS: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[255, N]` says the peer will send nothing more on channel N.
const CLOSE: u8 = 255;

/// Whether the request asks for a WebSocket (`Upgrade: websocket`).
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A negotiated channel protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    /// 1 (`channel.k8s.io`), 4 or 5.
    pub version: u8,
    pub base64: bool,
}

impl Channels {
    /// The protocol named by the negotiated subprotocol; none (an old client) is v1 binary.
    pub fn from_protocol(p: Option<&str>) -> Channels {
        let p = p.unwrap_or("");
        Channels {
            version: if p.starts_with("v5.") {
                5
            } else if p.starts_with("v4.") {
                4
            } else {
                1
            },
            base64: p.contains("base64."),
        }
    }

    pub fn encode(&self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let mut s = String::with_capacity(1 + data.len() * 4 / 3 + 4);
            s.push(char::from(b'0' + channel));
            s.push_str(&base64::engine::general_purpose::STANDARD.encode(data));
            Message::Text(s.into())
        } else {
            let mut b = Vec::with_capacity(1 + data.len());
            b.push(channel);
            b.extend_from_slice(data);
            Message::Binary(b.into())
        }
    }

    /// The channel and data of a data message; None for control messages and malformed ones.
    /// Text and binary messages are read alike, as kube-apiserver reads them (the Python client
    /// sends `str` stdin as text messages on the binary protocol).
    pub fn decode(&self, msg: &Message) -> Option<(u8, Vec<u8>)> {
        let raw: &[u8] = match msg {
            Message::Binary(b) => b,
            Message::Text(t) => t.as_str().as_bytes(),
            _ => return None,
        };
        let (&first, rest) = raw.split_first()?;
        if !self.base64 {
            return Some((first, rest.to_vec()));
        }
        let ch = first.checked_sub(b'0').filter(|c| *c <= 9)?;
        let text = std::str::from_utf8(rest).ok()?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(text.trim_end())
            .ok()?;
        Some((ch, data))
    }
}

/// What the client asked to stream, from the query of `exec` or `attach`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    pub container: Option<String>,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it.
pub fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(ApiError::BadRequest(format!(
            "query parameter {name}={v:?} is not a boolean (use true or false)"
        ))),
    }
}

impl StreamOptions {
    /// Parses `command` (repeated), `container`, `stdin`, `stdout`, `stderr` and `tty`.
    /// stdout and stderr default to true, as orkops' own client expects.
    pub fn parse(raw: Option<&str>, is_exec: bool) -> Result<StreamOptions, ApiError> {
        let mut o = StreamOptions {
            container: None,
            command: Vec::new(),
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let mut allowed = vec!["container", "stdin", "stdout", "stderr", "tty"];
        if is_exec {
            allowed.push("command");
        }
        for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "command" if is_exec => o.command.push(v.into_owned()),
                "container" => o.container = Some(v.into_owned()).filter(|c| !c.is_empty()),
                "stdin" => o.stdin = parse_bool("stdin", &v)?,
                "stdout" => o.stdout = parse_bool("stdout", &v)?,
                "stderr" => o.stderr = parse_bool("stderr", &v)?,
                "tty" => o.tty = parse_bool("tty", &v)?,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported query parameter {other:?} (supported: {})",
                        allowed.join(", ")
                    )))
                }
            }
        }
        if is_exec && o.command.is_empty() {
            return Err(ApiError::BadRequest(
                "exec needs at least one command argument (query parameter command)".into(),
            ));
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(ApiError::BadRequest(
                "you must specify at least 1 of stdin, stdout, stderr".into(),
            ));
        }
        if o.tty && o.stderr && o.stdout {
            // a terminal has one output stream: stderr comes through stdout
            o.stderr = false;
        }
        Ok(o)
    }

    /// The agent's query: `container`, each `command`, `stdin` and `tty`.
    pub fn agent_query(&self, container: &str) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("container", container);
        for c in &self.command {
            q.append_pair("command", c);
        }
        q.append_pair("stdin", if self.stdin { "true" } else { "false" });
        q.append_pair("tty", if self.tty { "true" } else { "false" });
        q.finish()
    }
}

/// A terminal size as kubectl sends it on the resize channel.
pub fn resize_of(data: &[u8]) -> Option<Resize> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let s: Size = serde_json::from_slice(data).ok()?;
    Some(Resize {
        cols: s.width,
        rows: s.height,
    })
}

/// The error channel's message for how the stream ended; None when nothing is to be sent.
pub fn error_message(exit: Option<&Exit>, opts: &StreamOptions, version: u8) -> Option<Vec<u8>> {
    let status = |message: String, reason: &str, causes: Option<serde_json::Value>| {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason});
        if let Some(c) = causes {
            s["details"] = json!({ "causes": c });
        }
        s
    };
    let success =
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    let attach = opts.command.is_empty();
    let v = match exit {
        Some(Exit {
            exit_code: Some(0), ..
        }) => success,
        // attach reports no exit code: the container's status has it
        Some(Exit {
            exit_code: Some(_), ..
        }) if attach => success,
        Some(Exit { error: Some(e), .. }) if attach && e == execproto::STILL_RUNNING => success,
        Some(Exit {
            exit_code: Some(code),
            ..
        }) => status(
            format!(
                "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                opts.command
            ),
            "NonZeroExitCode",
            Some(json!([{"reason": "ExitCode", "message": code.to_string()}])),
        ),
        Some(Exit { error: Some(e), .. }) => status(e.clone(), "InternalError", None),
        Some(Exit { .. }) | None => status(
            "the node's agent ended the stream without an exit status".into(),
            "InternalError",
            None,
        ),
    };
    if version >= 4 {
        return serde_json::to_vec(&v).ok();
    }
    (v["status"] != "Success").then(|| {
        v["message"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec()
    })
}

/// Relays one exec or attach between the client's WebSocket and the agent's `execproto`
/// stream until the process ends, then sends the error channel's status and closes.
pub async fn bridge<A>(ws: WebSocket, agent: A, ch: Channels, opts: StreamOptions)
where
    A: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut tx, mut rx) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(agent);
    // as the kubelet does: an empty message on the lowest writable channel says "connected"
    let first = if opts.stdout {
        STDOUT
    } else if opts.stderr {
        STDERR
    } else {
        ERROR
    };
    if tx.send(ch.encode(first, &[])).await.is_err() {
        return;
    }
    let stdin = opts.stdin;
    let inbound = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            let Some((c, data)) = ch.decode(&msg) else {
                continue;
            };
            let sent = match c {
                STDIN if stdin && !data.is_empty() => {
                    execproto::write_frame(&mut wr, execproto::STDIN, &data).await
                }
                RESIZE => match resize_of(&data).and_then(|r| serde_json::to_vec(&r).ok()) {
                    Some(r) => execproto::write_frame(&mut wr, execproto::RESIZE, &r).await,
                    None => Ok(()),
                },
                CLOSE if ch.version >= 5 && data.first() == Some(&STDIN) => {
                    execproto::write_frame(&mut wr, execproto::STDIN, &[]).await
                }
                _ => Ok(()),
            };
            if sent.is_err() {
                return;
            }
        }
        // the client went away (a v4 client has no other way to end stdin): end it, so that
        // a process reading it ends too
        if stdin {
            let _ = execproto::write_frame(&mut wr, execproto::STDIN, &[]).await;
        }
    });
    let mut exit = None;
    loop {
        let msg = match execproto::read_frame(&mut rd).await {
            Ok(Some((execproto::STDOUT, d))) if opts.stdout => ch.encode(STDOUT, &d),
            Ok(Some((execproto::STDERR, d))) if opts.stderr => ch.encode(STDERR, &d),
            Ok(Some((execproto::EXIT, d))) => {
                exit = serde_json::from_slice::<Exit>(&d).ok();
                break;
            }
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "exec stream from the agent broke");
                break;
            }
        };
        if tx.send(msg).await.is_err() {
            inbound.abort();
            return;
        }
    }
    inbound.abort();
    if let Some(m) = error_message(exit.as_ref(), &opts, ch.version) {
        let _ = tx.send(ch.encode(ERROR, &m)).await;
    }
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        })))
        .await;
    let _ = tx.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_repeated_commands_and_go_booleans() {
        let o = StreamOptions::parse(
            Some(
                "command=sh&command=-c&command=exit+3&container=c&stdin=1&stdout=true&stderr=False",
            ),
            true,
        )
        .unwrap();
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert_eq!(o.container.as_deref(), Some("c"));
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
        assert_eq!(
            o.agent_query("c"),
            "container=c&command=sh&command=-c&command=exit+3&stdin=true&tty=false"
        );
        let e = StreamOptions::parse(Some("command=ls&stdin=yes"), true).unwrap_err();
        assert!(e.to_string().contains("stdin"), "{e}");
        let e = StreamOptions::parse(Some("stdout=true"), true).unwrap_err();
        assert!(e.to_string().contains("command"), "{e}");
        let e = StreamOptions::parse(Some("command=ls"), false).unwrap_err();
        assert!(e.to_string().contains("\"command\""), "{e}");
        let e = StreamOptions::parse(Some("command=ls&stdout=0&stderr=0"), true).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let tty = StreamOptions::parse(Some("command=sh&tty=true&stdin=true"), true).unwrap();
        assert!(tty.stdout && !tty.stderr);
    }

    #[test]
    fn channels_encode_binary_and_base64() {
        let v5 = Channels::from_protocol(Some("v5.channel.k8s.io"));
        assert_eq!(
            v5,
            Channels {
                version: 5,
                base64: false
            }
        );
        let m = v5.encode(1, b"hi");
        assert_eq!(m, Message::Binary(vec![1, b'h', b'i'].into()));
        assert_eq!(v5.decode(&m), Some((1, b"hi".to_vec())));
        assert_eq!(v5.decode(&Message::Binary(vec![].into())), None);
        assert_eq!(
            v5.decode(&Message::Text("\u{0}ping\n".into())),
            Some((0, b"ping\n".to_vec()))
        );
        let b64 = Channels::from_protocol(Some("base64.channel.k8s.io"));
        assert_eq!(
            b64,
            Channels {
                version: 1,
                base64: true
            }
        );
        let m = b64.encode(2, b"hi");
        assert_eq!(m, Message::Text("2aGk=".into()));
        assert_eq!(b64.decode(&m), Some((2, b"hi".to_vec())));
        assert_eq!(b64.decode(&Message::Text("0!!".into())), None);
        assert_eq!(b64.decode(&Message::Text("éaGk=".into())), None);
        assert_eq!(b64.decode(&Message::Text("".into())), None);
        assert_eq!(Channels::from_protocol(None).version, 1);
    }

    #[test]
    fn exit_codes_become_statuses() {
        let opts = StreamOptions::parse(Some("command=sh"), true).unwrap();
        let exit = |c| Exit {
            exit_code: Some(c),
            error: None,
        };
        let v: serde_json::Value =
            serde_json::from_slice(&error_message(Some(&exit(0)), &opts, 5).unwrap()).unwrap();
        assert_eq!(v["status"], "Success");
        let v: serde_json::Value =
            serde_json::from_slice(&error_message(Some(&exit(3)), &opts, 4).unwrap()).unwrap();
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        assert_eq!(error_message(Some(&exit(0)), &opts, 1), None);
        let text = error_message(Some(&exit(3)), &opts, 1).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("exit code 3"));
        let attach = StreamOptions::parse(Some("stdin=true"), false).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&error_message(Some(&exit(3)), &attach, 5).unwrap()).unwrap();
        assert_eq!(v["status"], "Success");
        let v: serde_json::Value =
            serde_json::from_slice(&error_message(None, &opts, 5).unwrap()).unwrap();
        assert_eq!(v["reason"], "InternalError");
    }

    #[test]
    fn resizes_are_read_as_kubectl_sends_them() {
        assert_eq!(
            resize_of(br#"{"Width":120,"Height":40}"#),
            Some(Resize {
                cols: 120,
                rows: 40
            })
        );
        assert_eq!(resize_of(b"{}"), None);
    }
}
