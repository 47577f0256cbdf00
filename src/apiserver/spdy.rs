//! A minimal SPDY/3.1 frame codec, enough to serve `kubectl port-forward` (client-go speaks
//! SPDY/3.1 through moby/spdystream, on a plain upgraded connection or tunnelled in WebSocket
//! binary messages). Frames: SYN_STREAM, SYN_REPLY, DATA, RST_STREAM, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE and SETTINGS (read and ignored: spdystream does no flow control).
//! Header blocks are zlib streams, one per direction for the whole session, primed with the
//! dictionary of the SPDY/3 specification.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The SPDY/3 header compression dictionary (section 2.6.10.1 of the specification).
pub const DICTIONARY: &[u8; 1423] = b"\
    \x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\
    \x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-char\
    set\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-\
    ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\
    \x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10c\
    ontent-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\
    \x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\
    \x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\
    \x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\
    \x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\
    \x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\
    \x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\
    \x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0br\
    etry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\
    \x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04va\
    ry\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\
    \x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200\x20OK\x00\x00\x00\
    \x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\
    \x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin10010120120220520630030230\
    3304305306307402405406407408409410411412413414415416417502504505203\x20Non-Authoritative\
    \x20Information204\x20No\x20Content301\x20Moved\x20Permanently400\x20Bad\x20Request401\
    \x20Unauthorized403\x20Forbidden404\x20Not\x20Found500\x20Internal\x20Server\x20Error501\
    \x20Not\x20Implemented503\x20Service\x20UnavailableJan\x20Feb\x20Mar\x20Apr\x20May\x20Ju\
    n\x20Jul\x20Aug\x20Sept\x20Oct\x20Nov\x20Dec\x2000:00:00\x20Mon,\x20Tue,\x20Wed,\x20Thu,\
    \x20Fri,\x20Sat,\x20Sun,\x20GMTchunked,text/html,image/png,image/jpg,image/gif,applicati\
    on/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflat\
    e,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
/// The largest frame body SPDY can express (a 24-bit length).
const MAX_FRAME: usize = (1 << 24) - 1;
/// The most a header block may inflate to, and the most pairs it may hold.
const MAX_HEADER_BYTES: usize = 256 * 1024;
const MAX_HEADER_PAIRS: u32 = 256;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    SynStream {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    Ping(u32),
    GoAway {
        last_stream: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    /// SETTINGS and control frames of unknown types: read and ignored.
    Ignored(u16),
}

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
}

fn protocol(msg: impl Into<String>) -> SpdyError {
    SpdyError::Protocol(msg.into())
}

fn be32(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| protocol(format!("a frame of {} bytes is too short", b.len())))
}

/// Reads one frame's 8-byte head and its body; None at a clean end of the stream.
pub async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<([u8; 8], Vec<u8>)>, SpdyError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    debug_assert!(len <= MAX_FRAME);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some((head, body)))
}

/// Decodes frames read from the peer; owns the peer's header decompression stream.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    pub fn decode(&mut self, head: [u8; 8], body: &[u8]) -> Result<Frame, SpdyError> {
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Frame::Data {
                stream,
                fin,
                data: body.to_vec(),
            });
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(protocol(format!(
                "SPDY version {version} is not supported (only 3)"
            )));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let id = || be32(body, 0).map(|v| v & 0x7fff_ffff);
        Ok(match kind {
            1 => {
                // stream id, associated stream id, priority and slot, then the header block
                let stream = id()?;
                let block = body
                    .get(10..)
                    .ok_or_else(|| protocol("a SYN_STREAM frame is too short"))?;
                Frame::SynStream {
                    stream,
                    fin,
                    headers: self.headers(block)?,
                }
            }
            2 => Frame::SynReply {
                stream: id()?,
                fin,
                headers: self.headers(&body[4.min(body.len())..])?,
            },
            3 => Frame::RstStream {
                stream: id()?,
                status: be32(body, 4)?,
            },
            6 => Frame::Ping(be32(body, 0)?),
            7 => Frame::GoAway {
                last_stream: id()?,
                status: be32(body, 4).unwrap_or(0),
            },
            8 => Frame::Headers {
                stream: id()?,
                fin,
                headers: self.headers(&body[4.min(body.len())..])?,
            },
            9 => Frame::WindowUpdate {
                stream: id()?,
                delta: be32(body, 4)? & 0x7fff_ffff,
            },
            other => Frame::Ignored(other),
        })
    }

    /// Inflates and parses one header block (the stream continues across blocks).
    fn headers(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let raw = self.inflate_block(block)?;
        parse_header_block(&raw)
    }

    fn inflate_block(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(1024);
        let mut used = 0usize;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BYTES {
                    return Err(protocol(format!(
                        "a header block inflates to more than {MAX_HEADER_BYTES} bytes"
                    )));
                }
                out.reserve(out.len());
            }
            let (in0, out0) = (self.inflate.total_in(), out.len());
            let r = self
                .inflate
                .decompress_vec(&block[used..], &mut out, FlushDecompress::Sync);
            used += (self.inflate.total_in() - in0) as usize;
            let progressed = self.inflate.total_in() != in0 || out.len() != out0;
            match r {
                Ok(flate2::Status::StreamEnd) if used < block.len() => {
                    return Err(protocol("the header stream ended inside a header block"))
                }
                Ok(_) if !progressed && used < block.len() && out.len() < out.capacity() => {
                    return Err(protocol("a header block does not inflate"))
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| protocol(format!("header dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(protocol(format!("a header block does not inflate: {e}"))),
            }
            if used >= block.len() && (out.len() < out.capacity() || !progressed) {
                return Ok(out);
            }
        }
    }
}

fn parse_header_block(raw: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let n = be32(raw, 0)?;
    if n > MAX_HEADER_PAIRS {
        return Err(protocol(format!(
            "a header block of {n} pairs (at most {MAX_HEADER_PAIRS})"
        )));
    }
    let mut at = 4;
    let field = |at: &mut usize| -> Result<String, SpdyError> {
        let len = be32(raw, *at)? as usize;
        let bytes = raw
            .get(*at + 4..at.saturating_add(4).saturating_add(len))
            .ok_or_else(|| protocol("a header block ends inside a header"))?;
        *at += 4 + len;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    };
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let name = field(&mut at)?.to_ascii_lowercase();
        let value = field(&mut at)?;
        out.push((name, value));
    }
    Ok(out)
}

/// Encodes frames for the peer; owns this side's header compression stream.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // a fresh zlib stream takes a dictionary before its first byte; this cannot fail
        let _ = deflate.set_dictionary(DICTIONARY);
        Encoder { deflate }
    }
}

impl Encoder {
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, SpdyError> {
        let control = |kind: u16, flags: u8, body: Vec<u8>| -> Result<Vec<u8>, SpdyError> {
            if body.len() > MAX_FRAME {
                return Err(protocol("a control frame is too large"));
            }
            let mut out = Vec::with_capacity(8 + body.len());
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.push(flags);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&body);
            Ok(out)
        };
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match frame {
            Frame::Data { stream, fin, data } => {
                if data.len() > MAX_FRAME {
                    return Err(protocol("a data frame is too large"));
                }
                let mut out = Vec::with_capacity(8 + data.len());
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                out.push(fin_flag(*fin));
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
                Ok(out)
            }
            Frame::SynStream {
                stream,
                fin,
                headers,
            } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                body.extend(self.header_block(headers)?);
                control(1, fin_flag(*fin), body)
            }
            Frame::SynReply {
                stream,
                fin,
                headers,
            } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend(self.header_block(headers)?);
                control(2, fin_flag(*fin), body)
            }
            Frame::Headers {
                stream,
                fin,
                headers,
            } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend(self.header_block(headers)?);
                control(8, fin_flag(*fin), body)
            }
            Frame::RstStream { stream, status } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(3, 0, body)
            }
            Frame::Ping(id) => control(6, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_stream,
                status,
            } => {
                let mut body = last_stream.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(7, 0, body)
            }
            Frame::WindowUpdate { stream, delta } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&delta.to_be_bytes());
                control(9, 0, body)
            }
            Frame::Ignored(kind) => Err(protocol(format!("cannot encode a frame of type {kind}"))),
        }
    }

    fn header_block(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            let name = k.to_ascii_lowercase();
            for s in [name.as_bytes(), v.as_bytes()] {
                raw.extend_from_slice(&(s.len() as u32).to_be_bytes());
                raw.extend_from_slice(s);
            }
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut used = 0usize;
        loop {
            let in0 = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[used..], &mut out, FlushCompress::Sync)
                .map_err(|e| protocol(format!("cannot compress headers: {e}")))?;
            used += (self.deflate.total_in() - in0) as usize;
            if used >= raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// The value of header `name` (lowercase) in a header list.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn syn(stream: u32, block: &[u8]) -> ([u8; 8], Vec<u8>) {
        let mut body = stream.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(block);
        let mut head = [0x80, 3, 0, 1, 0, 0, 0, 0];
        head[5..].copy_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        (head, body)
    }

    /// Two header blocks of one zlib stream made by another implementation (Python's zlib
    /// with the SPDY/3 dictionary), as kubectl's first two port-forward streams carry them.
    #[test]
    fn header_blocks_of_another_implementation_decode() {
        let a = hex("78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff");
        let b = hex("c2aa19540e2512d60b000000ffff");
        let mut d = Decoder::default();
        let (h, body) = syn(1, &a);
        let Frame::SynStream {
            stream, headers, ..
        } = d.decode(h, &body).unwrap()
        else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!(stream, 1);
        assert_eq!(header(&headers, "streamtype"), Some("error"));
        assert_eq!(header(&headers, "port"), Some("8080"));
        assert_eq!(header(&headers, "requestid"), Some("0"));
        let (h, body) = syn(3, &b);
        let Frame::SynStream { headers, .. } = d.decode(h, &body).unwrap() else {
            panic!("not a SYN_STREAM");
        };
        assert_eq!(header(&headers, "streamtype"), Some("data"));
    }

    #[test]
    fn frames_round_trip_through_encoder_and_decoder() {
        let mut e = Encoder::default();
        let mut d = Decoder::default();
        let frames = [
            Frame::SynReply {
                stream: 1,
                fin: false,
                headers: vec![],
            },
            Frame::SynStream {
                stream: 2,
                fin: true,
                headers: vec![("streamtype".into(), "data".into())],
            },
            Frame::SynReply {
                stream: 3,
                fin: false,
                headers: vec![("a".into(), "b".into())],
            },
            Frame::Data {
                stream: 3,
                fin: true,
                data: b"hello".to_vec(),
            },
            Frame::RstStream {
                stream: 3,
                status: RST_CANCEL,
            },
            Frame::Ping(7),
            Frame::GoAway {
                last_stream: 3,
                status: 0,
            },
            Frame::WindowUpdate {
                stream: 1,
                delta: 100,
            },
        ];
        for f in frames {
            let bytes = e.encode(&f).unwrap();
            let mut head = [0u8; 8];
            head.copy_from_slice(&bytes[..8]);
            assert_eq!(d.decode(head, &bytes[8..]).unwrap(), f);
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut d = Decoder::default();
        assert!(d.decode([0x80, 2, 0, 1, 0, 0, 0, 0], &[]).is_err());
        assert!(d.decode([0x80, 3, 0, 3, 0, 0, 0, 2], &[0, 1]).is_err());
        let (h, body) = syn(1, b"not zlib at all");
        assert!(d.decode(h, &body).is_err());
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(parse_header_block(&[0xff, 0, 0, 0]).is_err());
    }
}
