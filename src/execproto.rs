//! The byte protocol of `orkops exec` on an upgraded HTTP connection (CLI ⇄ master ⇄ agent; the
//! master only copies bytes). Each frame is `[channel: u8][length: u32 BE][payload]`.
//! Client to agent: stdin data (an empty stdin frame is end of input) and terminal resizes;
//! agent to client: stdout, stderr, and one final exit frame (JSON `{"exitCode": n}` or
//! `{"error": "..."}`).

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The value of the `Upgrade` header.
pub const PROTOCOL: &str = "orkops-exec.v1";

/// The `Upgrade` of the agent's `portforward` endpoint: after it, the connection carries the
/// bytes of one TCP connection to the pod's port, unframed.
pub const PORTFORWARD_PROTOCOL: &str = "orkops-portforward.v1";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const RESIZE: u8 = 4;

const MAX_FRAME: usize = 1 << 20;

/// The exit frame's error when an attach stream ended while the container still runs.
pub const STILL_RUNNING: &str = "the container is still running";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resize {
    pub cols: u16,
    pub rows: u16,
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    channel: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    for chunk in payload
        .chunks(MAX_FRAME)
        .chain(payload.is_empty().then_some(&[][..]))
    {
        let mut head = [0u8; 5];
        head[0] = channel;
        head[1..].copy_from_slice(&(chunk.len() as u32).to_be_bytes());
        w.write_all(&head).await?;
        w.write_all(chunk).await?;
    }
    w.flush().await
}

/// The next frame, or None at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "exec frame of {len} bytes is too large"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some((head[0], buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_including_empty_ones() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let w = tokio::spawn(async move {
            write_frame(&mut a, STDOUT, b"hello").await.unwrap();
            write_frame(&mut a, STDIN, b"").await.unwrap();
            write_frame(&mut a, EXIT, br#"{"exitCode":3}"#)
                .await
                .unwrap();
        });
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some((STDOUT, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut b).await.unwrap(), Some((STDIN, vec![])));
        let (ch, p) = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!(ch, EXIT);
        assert_eq!(
            serde_json::from_slice::<Exit>(&p).unwrap().exit_code,
            Some(3)
        );
        w.await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), None);
    }
}
