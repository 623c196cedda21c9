//! An incremental HTTP/1.x response parser: head through httparse, then the body framed by
//! `Content-Length`, `Transfer-Encoding: chunked`, or the end of the connection.
//!
//! Every length is checked before it is used: the head is capped at [`HEAD_CAP`], the body
//! at the caller's cap, chunk-size lines at 1 KiB. Bad input gives an [`HttpError`], never a
//! panic.

/// The largest response head accepted.
pub const HEAD_CAP: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
const LINE_CAP: usize = 1024;

/// Why a response was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The head is larger than [`HEAD_CAP`] or has more than 64 headers.
    #[error("response head too large")]
    HeadTooLarge,
    /// The status line or a header does not parse.
    #[error("malformed response head")]
    BadHead,
    /// `Content-Length` is not a number, or two of them disagree.
    #[error("bad content-length")]
    BadContentLength,
    /// A chunk-size line or a chunk terminator is malformed.
    #[error("bad chunked encoding")]
    BadChunk,
    /// The body is larger than the cap.
    #[error("body too large")]
    BodyTooLarge,
    /// The connection ended before the body did.
    #[error("truncated response")]
    Truncated,
}

/// The parts of the head a check looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// The `Content-Length`, if given.
    pub content_length: Option<u64>,
    /// Whether the body is chunked.
    pub chunked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked(Chunk),
    UntilEof,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's data (how many of its bytes were seen).
    DataEnd(u8),
    /// Trailer lines until an empty one.
    Trailers,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Head,
    Body,
    Done,
}

/// Parses one response fed in arbitrary pieces. Body bytes are handed to a callback so the
/// caller decides what to keep (a digest needs none of them kept).
#[derive(Clone, Debug)]
pub struct ResponseParser {
    phase: Phase,
    buf: Vec<u8>,
    head: Option<ResponseHead>,
    framing: Framing,
    body_len: u64,
    body_cap: u64,
}

impl ResponseParser {
    /// A parser whose body may be at most `body_cap` bytes.
    pub fn new(body_cap: usize) -> ResponseParser {
        ResponseParser {
            phase: Phase::Head,
            buf: Vec::new(),
            head: None,
            framing: Framing::None,
            body_len: 0,
            body_cap: body_cap as u64,
        }
    }

    /// The head, once parsed.
    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Whether the whole response (head and body) has been read.
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Body bytes seen so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Feeds received bytes; body bytes go to `body`. Bytes after the end of the response
    /// are ignored.
    pub fn feed(&mut self, data: &[u8], body: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        match self.phase {
            Phase::Done => Ok(()),
            Phase::Body => self.feed_body(data, body),
            Phase::Head => {
                if self.buf.len() + data.len() > HEAD_CAP + LINE_CAP {
                    // Keep what fits: the head may still end within the cap.
                    let room = (HEAD_CAP + LINE_CAP).saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&data[..room.min(data.len())]);
                } else {
                    self.buf.extend_from_slice(data);
                }
                self.parse_head(body)
            }
        }
    }

    fn parse_head(&mut self, body: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let used = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    return if self.buf.len() > HEAD_CAP {
                        Err(HttpError::HeadTooLarge)
                    } else {
                        Ok(())
                    };
                }
                Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
                Err(_) => return Err(HttpError::BadHead),
            };
            if used > HEAD_CAP {
                return Err(HttpError::HeadTooLarge);
            }
            let status = resp.code.ok_or(HttpError::BadHead)?;
            let minor_version = resp.version.ok_or(HttpError::BadHead)?;
            let mut content_length: Option<u64> = None;
            let mut chunked = false;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    let v = parse_decimal(h.value).ok_or(HttpError::BadContentLength)?;
                    if content_length.is_some_and(|c| c != v) {
                        return Err(HttpError::BadContentLength);
                    }
                    content_length = Some(v);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    // chunked must be the last coding (RFC 9112 6.3).
                    chunked = h
                        .value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
            }
            // Interim 1xx responses precede the real one (101 switches protocols: no body).
            if (100..200).contains(&status) && status != 101 {
                self.buf.drain(..used);
                continue;
            }
            self.framing = if status == 204 || status == 304 || status == 101 {
                Framing::None
            } else if chunked {
                Framing::Chunked(Chunk::Size)
            } else if let Some(n) = content_length {
                Framing::Length(n)
            } else {
                Framing::UntilEof
            };
            self.head = Some(ResponseHead {
                status,
                minor_version,
                content_length,
                chunked,
            });
            let rest = self.buf.split_off(used);
            self.buf.clear();
            self.phase = Phase::Body;
            if matches!(self.framing, Framing::None | Framing::Length(0)) {
                self.phase = Phase::Done;
                return Ok(());
            }
            return self.feed_body(&rest, body);
        }
    }

    fn take_body(&mut self, bytes: &[u8], body: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        self.body_len += bytes.len() as u64;
        if self.body_len > self.body_cap {
            return Err(HttpError::BodyTooLarge);
        }
        body(bytes);
        Ok(())
    }

    fn feed_body(
        &mut self,
        mut data: &[u8],
        body: &mut impl FnMut(&[u8]),
    ) -> Result<(), HttpError> {
        while !data.is_empty() && self.phase == Phase::Body {
            match self.framing {
                Framing::None => self.phase = Phase::Done,
                Framing::UntilEof => {
                    self.take_body(data, body)?;
                    data = &[];
                }
                Framing::Length(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    self.take_body(&data[..n], body)?;
                    data = &data[n..];
                    let left = left - n as u64;
                    self.framing = Framing::Length(left);
                    if left == 0 {
                        self.phase = Phase::Done;
                    }
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    self.take_body(&data[..n], body)?;
                    data = &data[n..];
                    let left = left - n as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd(0)
                    } else {
                        Chunk::Data(left)
                    });
                }
                Framing::Chunked(Chunk::DataEnd(seen)) => {
                    let want = if seen == 0 { b'\r' } else { b'\n' };
                    if data[0] != want {
                        return Err(HttpError::BadChunk);
                    }
                    data = &data[1..];
                    self.framing = Framing::Chunked(if seen == 0 {
                        Chunk::DataEnd(1)
                    } else {
                        Chunk::Size
                    });
                }
                Framing::Chunked(state @ (Chunk::Size | Chunk::Trailers)) => {
                    let Some(line_end) = data.iter().position(|&b| b == b'\n') else {
                        if self.buf.len() + data.len() > LINE_CAP {
                            return Err(HttpError::BadChunk);
                        }
                        self.buf.extend_from_slice(data);
                        return Ok(());
                    };
                    if self.buf.len() + line_end > LINE_CAP {
                        return Err(HttpError::BadChunk);
                    }
                    self.buf.extend_from_slice(&data[..line_end]);
                    data = &data[line_end + 1..];
                    let line = core::mem::take(&mut self.buf);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if state == Chunk::Trailers {
                        if line.is_empty() {
                            self.phase = Phase::Done;
                        }
                        continue;
                    }
                    let size = parse_chunk_size(line).ok_or(HttpError::BadChunk)?;
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    });
                }
            }
        }
        Ok(())
    }

    /// The connection ended: completes a body read until EOF, rejects anything unfinished.
    pub fn finish(&mut self) -> Result<(), HttpError> {
        match (&self.phase, self.framing) {
            (Phase::Done, _) => Ok(()),
            (Phase::Body, Framing::UntilEof) => {
                self.phase = Phase::Done;
                Ok(())
            }
            _ => Err(HttpError::Truncated),
        }
    }
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// A chunk-size line: hex digits, then optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|&b| b == b';').next()?.trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    hex.iter().try_fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(parts: &[&[u8]], cap: usize) -> Result<(ResponseParser, Vec<u8>), HttpError> {
        let mut p = ResponseParser::new(cap);
        let mut body = Vec::new();
        for part in parts {
            p.feed(part, &mut |b| body.extend_from_slice(b))?;
        }
        Ok((p, body))
    }

    #[test]
    fn content_length_in_pieces() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for split in 0..r.len() {
            let (p, body) = parse_all(&[&r[..split], &r[split..]], 100).unwrap();
            assert!(p.is_complete(), "split {split}");
            assert_eq!(body, b"hello");
            assert_eq!(p.head().unwrap().status, 200);
        }
    }

    #[test]
    fn chunked_byte_by_byte() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\n7\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        let parts: Vec<&[u8]> = r.chunks(1).collect();
        let (p, body) = parse_all(&parts, 100).unwrap();
        assert!(p.is_complete());
        assert_eq!(body, b"hello, world");
    }

    #[test]
    fn interim_and_no_body_statuses() {
        let (p, _) = parse_all(
            &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"],
            10,
        )
        .unwrap();
        assert_eq!(p.head().unwrap().status, 204);
        assert!(p.is_complete());
    }

    #[test]
    fn until_eof() {
        let (mut p, body) = parse_all(&[b"HTTP/1.0 200 OK\r\n\r\nabc"], 10).unwrap();
        assert!(!p.is_complete());
        p.finish().unwrap();
        assert_eq!(body, b"abc");
    }

    #[test]
    fn errors() {
        let e = |parts: &[&[u8]], cap| parse_all(parts, cap).err();
        assert_eq!(
            e(
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"],
                5
            ),
            Some(HttpError::BodyTooLarge)
        );
        assert_eq!(
            e(&[b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"], 5),
            Some(HttpError::BadContentLength)
        );
        assert_eq!(
            e(
                &[b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"],
                5
            ),
            Some(HttpError::BadContentLength)
        );
        assert_eq!(
            e(
                &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
                5
            ),
            Some(HttpError::BadChunk)
        );
        assert_eq!(
            e(
                &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab"],
                5
            ),
            Some(HttpError::BadChunk)
        );
        assert_eq!(e(&[b"SMTP 220 hi\r\n\r\n"], 5), Some(HttpError::BadHead));
        let big = vec![b'a'; HEAD_CAP + 10];
        assert_eq!(
            e(&[b"HTTP/1.1 200 OK\r\nX: ", &big], 5),
            Some(HttpError::HeadTooLarge)
        );
        let (mut p, _) =
            parse_all(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"], 50).unwrap();
        assert_eq!(p.finish(), Err(HttpError::Truncated));
    }
}
