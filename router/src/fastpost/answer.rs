//! The HTTP/1.1 answer parser of the fast path: one complete answer (status, body, whether the relay
//! closes) from the start of a buffer, with a `Content-Length` or chunked body. Strict: a body
//! delimited by the connection's close, a bad chunk or a header that is not text is an error.
//!
//! Every size the relay announces is checked before it is used: a `Content-Length` or a chunk
//! size (or their sum) above [`MAX_RESPONSE_BYTES`] is an error at once — never an overflowing
//! offset (a chunk size of `ffffffffffffffff` once panicked the reader thread) and never a wait
//! for bytes that the reader would refuse to buffer anyway.

use super::MAX_RESPONSE_BYTES;

/// One complete HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// Bytes of the buffer it took.
    pub consumed: usize,
    /// A 1xx answer (another follows for the same request).
    pub interim: bool,
    /// The relay closes the connection after it.
    pub close: bool,
}

/// Parses one answer from the start of `buf`; `Ok(None)` while incomplete. Never panics, whatever
/// the bytes (see `keel-bench fuzz --target fastpost`).
pub fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(|e| e.to_string())? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut close = resp.version == Some(0);
    let (mut length, mut chunked) = (None, false);
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| format!("header {}: not text", h.name))?;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.trim().parse::<usize>().map_err(|e| format!("content-length: {e}"))?;
            if n > MAX_RESPONSE_BYTES {
                return Err(format!("content-length {n} is above the cap of {MAX_RESPONSE_BYTES} bytes"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            close = v.contains("close") || (close && !v.contains("keep-alive"));
        }
    }
    let interim = (100..200).contains(&status);
    if interim || status == 204 || status == 304 {
        return Ok(Some(Answer { status, body: Vec::new(), consumed: head_len, interim, close }));
    }
    let rest = &buf[head_len..];
    let (body, used) = if chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else {
        let Some(n) = length else {
            return Err("no Content-Length and not chunked (a body delimited by close)".into());
        };
        if rest.len() < n {
            return Ok(None);
        }
        (rest[..n].to_vec(), n)
    };
    Ok(Some(Answer { status, body, consumed: head_len + used, interim, close }))
}

/// Decodes a chunked body from the start of `buf`: `(body, bytes used)`, `Ok(None)` while incomplete.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (used, size) = match httparse::parse_chunk_size(&buf[at..]).map_err(|_| "bad chunk size")? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return Ok(None),
        };
        at += used;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        // Checked before any offset is computed from it: a relay may announce any 64-bit size.
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= MAX_RESPONSE_BYTES.saturating_sub(body.len()))
            .ok_or_else(|| {
                format!("chunk of {size} bytes: the body would pass the cap of {MAX_RESPONSE_BYTES} bytes")
            })?;
        // `at` ≤ buf.len() and size ≤ the cap, so this cannot overflow.
        let end = at + size;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..end]);
        if &buf[end..end + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        at = end + 2;
    }
}
