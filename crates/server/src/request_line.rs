//! Over-long request lines, cut short below hyper so that they still get the route's
//! error body.
//!
//! hyper refuses a request target over 64 KiB itself (a hard limit of hyper and of the
//! `http` crate's `Uri`), with a bare 414 and no body, before any of Custodian's code
//! runs. [`RequestLineGuard`] wraps each connection and watches what hyper reads: a
//! request line longer than [`CUT_BYTES`] is handed on cut at that length, its rest
//! dropped up to the end of the line and replaced by ` HTTP/1.1\r\n`. The headers and
//! body that follow are untouched, so the request goes on to the router with a target
//! still over [`crate::limits::MAX_REQUEST_TARGET_BYTES`], and
//! [`crate::limits::request_target_size`] answers 414 with the route's error body.
//!
//! What is a request line is told from its first bytes (an upper-case method, a space,
//! then `/`, `*` or an absolute URI), not from HTTP framing: a line of a body that looked
//! like one and ran past [`CUT_BYTES`] would be cut too. JSON and form bodies cannot hold
//! such a line (neither has raw line breaks), and no other body is read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::MAX_REQUEST_TARGET_BYTES;

/// The longest request line handed to hyper: between our own limit (so that the cut
/// target is still refused) and hyper's 64 KiB.
pub const CUT_BYTES: usize = 2 * MAX_REQUEST_TARGET_BYTES;

const _: () = assert!(CUT_BYTES - MAX_METHOD_BYTES - 1 > MAX_REQUEST_TARGET_BYTES && CUT_BYTES < 65_534);

/// The longest method recognised at the start of a request line.
const MAX_METHOD_BYTES: usize = 16;
/// How many first bytes of a line tell whether it is a request line.
const HEAD_BYTES: usize = MAX_METHOD_BYTES + 2;
/// What replaces the dropped end of a cut request line.
const LINE_END: &[u8] = b" HTTP/1.1\r\n";

/// Where the scan is in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line, with its first `len` bytes.
    Start { head: [u8; HEAD_BYTES], len: usize },
    /// A request line, this many bytes long so far (its line feed not counted).
    Request(usize),
    /// Any other line: a header, a body.
    Other,
    /// The rest of a cut request line, dropped up to its line feed.
    Dropping,
}

const LINE_START: Line = Line::Start { head: [0; HEAD_BYTES], len: 0 };

/// What to hand on of the bytes just read.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed {
    /// All of them, as they are: the common case, without a copy.
    Pass,
    /// These in their place: a request line was cut.
    Rewritten(Vec<u8>),
}

/// The scan of one connection's bytes, from its first.
#[derive(Debug, Clone)]
pub struct LineScan {
    line: Line,
}

impl Default for LineScan {
    fn default() -> Self {
        LineScan { line: LINE_START }
    }
}

impl LineScan {
    /// Scans the next bytes read from the connection.
    pub fn feed(&mut self, input: &[u8]) -> Feed {
        // Created at the first cut, with what was passed on before it.
        let mut out: Option<Vec<u8>> = None;
        let mut i = 0;
        while i < input.len() {
            let rest = &input[i..];
            let (taken, kept) = match self.line {
                Line::Other | Line::Dropping => {
                    let dropped = self.line == Line::Dropping;
                    let end = match memchr::memchr(b'\n', rest) {
                        Some(n) => {
                            self.line = LINE_START;
                            n + 1
                        }
                        None => rest.len(),
                    };
                    (end, if dropped { 0 } else { end })
                }
                Line::Start { mut head, len } => {
                    let b = rest[0];
                    self.line = if b == b'\n' {
                        LINE_START
                    } else {
                        head[len] = b;
                        match request_line(&head[..=len]) {
                            Some(true) => Line::Request(len + 1),
                            Some(false) => Line::Other,
                            None => Line::Start { head, len: len + 1 },
                        }
                    };
                    (1, 1)
                }
                Line::Request(so_far) => {
                    let newline = memchr::memchr(b'\n', rest);
                    let segment = newline.unwrap_or(rest.len());
                    if so_far + segment <= CUT_BYTES {
                        match newline {
                            Some(n) => {
                                self.line = LINE_START;
                                (n + 1, n + 1)
                            }
                            None => {
                                self.line = Line::Request(so_far + segment);
                                (segment, segment)
                            }
                        }
                    } else {
                        let keep = CUT_BYTES - so_far;
                        let buf = out.get_or_insert_with(|| input[..i].to_vec());
                        buf.extend_from_slice(&rest[..keep]);
                        buf.extend_from_slice(LINE_END);
                        self.line = Line::Dropping;
                        i += keep;
                        continue;
                    }
                }
            };
            if kept < taken && out.is_none() {
                // The first bytes dropped: what came before them is passed on as it was.
                out = Some(input[..i].to_vec());
            }
            if let Some(buf) = out.as_mut() {
                buf.extend_from_slice(&rest[..kept]);
            }
            i += taken;
        }
        match out {
            Some(bytes) => Feed::Rewritten(bytes),
            None => Feed::Pass,
        }
    }
}

/// Whether a line starting with `head` is a request line: `Some(true)` for an
/// upper-case method, a space and the start of a target; `None` while undecided.
fn request_line(head: &[u8]) -> Option<bool> {
    let method = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method > MAX_METHOD_BYTES {
        return Some(false);
    }
    match head.get(method) {
        None => None,
        Some(b' ') if method > 0 => head.get(method + 1).map(|b| matches!(b, b'/' | b'*' | b'h' | b'H')),
        Some(_) => Some(false),
    }
}

/// A connection whose over-long request lines are cut short (see the module).
pub struct RequestLineGuard<S> {
    inner: S,
    scan: LineScan,
    /// Rewritten bytes not yet handed on (hyper's buffer was full).
    pending: Vec<u8>,
}

impl<S> RequestLineGuard<S> {
    pub fn new(inner: S) -> Self {
        RequestLineGuard { inner, scan: LineScan::default(), pending: Vec::new() }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RequestLineGuard<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let read = &buf.filled()[start..];
            if read.is_empty() {
                // The end of the stream (or no room to read into): as the stream says.
                return Poll::Ready(Ok(()));
            }
            match this.scan.feed(read) {
                Feed::Pass => return Poll::Ready(Ok(())),
                Feed::Rewritten(bytes) => {
                    buf.set_filled(start);
                    // Empty when the whole read was dropped: then read on, since handing
                    // on nothing would read as the end of the stream.
                    this.pending = bytes;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RequestLineGuard<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `chunk` bytes; returns what is handed on.
    fn through(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut scan = LineScan::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            match scan.feed(piece) {
                Feed::Pass => out.extend_from_slice(piece),
                Feed::Rewritten(bytes) => out.extend_from_slice(&bytes),
            }
        }
        out
    }

    fn request(target: &str, body: &str) -> Vec<u8> {
        format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    #[test]
    fn ordinary_traffic_passes_untouched_however_it_is_split() {
        let long_body = format!("{{\"a\": \"{}\"}}", "GET /".repeat(20_000));
        let mut stream = request("/api/v1/fleet/hosts?x=1", "{}");
        stream.extend(request(&format!("/scim/v2/Users?filter={}", "a".repeat(CUT_BYTES - 40)), &long_body));
        stream.extend(b"\r\nGET * HTTP/1.1\r\n\r\n");
        for chunk in [1, 7, 4096, stream.len()] {
            assert_eq!(through(&stream, chunk), stream, "pieces of {chunk}");
        }
        let mut scan = LineScan::default();
        assert_eq!(scan.feed(&stream), Feed::Pass);
    }

    #[test]
    fn a_long_request_line_is_cut_and_what_follows_is_kept() {
        let target = format!("/api/v1/fleet/scim/Users?filter={}", "u".repeat(300_000));
        let mut stream = request(&target, "{\"k\": 1}");
        stream.extend(request("/healthz", ""));
        let line = format!("POST {target}");
        let mut want = line.as_bytes()[..CUT_BYTES].to_vec();
        want.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{\"k\": 1}");
        want.extend(request("/healthz", ""));
        for chunk in [1, 5, 4096, 65_536, stream.len()] {
            assert_eq!(through(&stream, chunk), want, "pieces of {chunk}");
        }
    }

    #[test]
    fn only_request_lines_are_recognised() {
        assert_eq!(request_line(b"GET /"), Some(true));
        assert_eq!(request_line(b"PATCH http"), Some(true));
        assert_eq!(request_line(b"OPTIONS *"), Some(true));
        assert_eq!(request_line(b"GET"), None);
        assert_eq!(request_line(b"GET "), None);
        assert_eq!(request_line(b"Host: x"), Some(false));
        assert_eq!(request_line(b"DNT: 1"), Some(false));
        assert_eq!(request_line(b"{\"a\""), Some(false));
        assert_eq!(request_line(b"GET x"), Some(false));
        assert_eq!(request_line(&[b'A'; MAX_METHOD_BYTES]), None);
        assert_eq!(request_line(&[b'A'; MAX_METHOD_BYTES + 1]), Some(false));
        let mut longest = [b'A'; HEAD_BYTES];
        longest[MAX_METHOD_BYTES] = b' ';
        assert_eq!(request_line(&longest[..=MAX_METHOD_BYTES]), None);
        assert_eq!(request_line(&longest), Some(false));
        // A long header line is not a request line: hyper and the header limit see it.
        let header = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "h".repeat(CUT_BYTES * 2));
        assert_eq!(through(header.as_bytes(), 1000), header.as_bytes());
    }
}
