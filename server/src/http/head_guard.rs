//! Request heads measured before actix-http parses them.
//!
//! actix-http answers some oversized heads itself, with an empty body: more
//! than 96 headers (431), a request line past the URI parser's 64 KiB (400),
//! a head past its 128 KiB buffer (431). Tandem promises the JSON
//! `request_head_too_large` for all of them, so every connection of the
//! client listener reads through a [`HeadGuard`]: it holds each request head
//! back until its end is seen, and gives it to the parser only when it is
//! within `server.max_request_head_bytes` and [`MAX_HEADERS`] headers. A head
//! over either is replaced by a request for [`REFUSED_PATH`] with
//! `Connection: close`, which the app answers with the JSON 431 in its
//! turn (after the answers to what the client sent before), and nothing more
//! is read from the connection.
//!
//! To find the next head the guard follows `Content-Length` bodies; after a
//! request it cannot frame (`Transfer-Encoding`, an upgrade, `CONNECT`, a
//! malformed `Content-Length`) it steps aside for the rest of the connection
//! and actix's own limits apply.
//!
//! [`HeadScan`] is the decision, without I/O; [`HeadGuard`] the glue.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The path of the request that stands for a refused head. A client that
/// asks for it itself only gets the same 431.
pub const REFUSED_PATH: &str = "/_tandem/request-head-too-large";

/// What the parser is given instead of a refused head.
/// (HTTP/1.1 requires a `Host`.)
const REFUSED_REQUEST: &[u8] =
    b"GET /_tandem/request-head-too-large HTTP/1.1\r\nhost: tandem\r\nconnection: close\r\n\r\n";

/// Headers a head may have: actix-http parses at most 96.
pub const MAX_HEADERS: usize = 96;

/// Longest request line: the URI parser refuses URIs past 65,534 bytes.
pub const MAX_REQUEST_LINE: usize = 65_534;

/// Bytes read from the socket at a time while a head is held.
const READ_CHUNK: usize = 4 * 1024;

/// Where the scan is in the client's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Inside a request head.
    Head(Head),
    /// Inside a request body of this many bytes still to come.
    Body(u64),
    /// Not guarded any more: what follows cannot be framed here.
    Open,
    /// A head was refused: nothing more is read.
    Refused,
}

/// A request head being scanned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Head {
    /// Bytes of the head so far.
    len: usize,
    /// Complete lines so far (the request line, then headers).
    lines: usize,
    /// Bytes of the current line, line ending excluded.
    line_len: usize,
    /// Where the current line starts, counted from the head's start.
    line_start: usize,
    /// What the head says about the body.
    framing: Framing,
}

/// How the end of a request's body is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Framing {
    /// No body (no `Content-Length`, or zero).
    #[default]
    None,
    Length(u64),
    /// Not by this guard: chunked, an upgrade, a bad length.
    Unknown,
}

/// The outcome of scanning what was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// This many bytes from the start of the data may go to the parser;
    /// the rest is an unfinished head, held.
    Release(usize),
    /// The head starting after this many released bytes is over a limit:
    /// the released ones go to the parser, the rest is dropped.
    Refuse(usize),
}

/// The head measurement of one connection's byte stream: plain code, no I/O.
#[derive(Debug, Clone)]
pub struct HeadScan {
    limit: usize,
    state: State,
}

impl HeadScan {
    /// `limit`: `server.max_request_head_bytes`.
    pub fn new(limit: usize) -> Self {
        Self { limit, state: State::Head(Head::default()) }
    }

    /// Scans `data`: everything read and not yet released, starting with
    /// the held part of a head already seen up to `seen` bytes (so nothing
    /// is scanned twice).
    pub fn scan(&mut self, data: &[u8], seen: usize) -> Scan {
        let mut released = 0;
        let mut at = seen.max(released);
        while at < data.len() {
            match &mut self.state {
                State::Open => return Scan::Release(data.len()),
                State::Refused => return Scan::Refuse(released),
                State::Body(left) => {
                    let take = (*left).min((data.len() - at) as u64);
                    *left -= take;
                    at += take as usize;
                    released = at;
                    if *left == 0 {
                        self.state = State::Head(Head::default());
                    }
                }
                State::Head(head) => {
                    let head_start = released;
                    while at < data.len() {
                        let b = data[at];
                        at += 1;
                        head.len += 1;
                        if b == b'\n' {
                            if head.line_len == 0 && head.lines > 0 {
                                // The empty line: the head is complete.
                                released = at;
                                self.state = match head.framing {
                                    Framing::None | Framing::Length(0) => State::Head(Head::default()),
                                    Framing::Length(n) => State::Body(n),
                                    Framing::Unknown => State::Open,
                                };
                                break;
                            }
                            if head.line_len > 0 {
                                let line = &data[head_start + head.line_start..at];
                                head.framing = framing(head.framing, head.lines == 0, line);
                                head.lines += 1;
                            }
                            head.line_len = 0;
                            head.line_start = head.len;
                        } else if b != b'\r' {
                            head.line_len += 1;
                        }
                        // Lines so far: the request line, then headers.
                        let over_lines = head.lines > MAX_HEADERS + 1;
                        let over_request_line = head.lines == 0 && head.line_len > MAX_REQUEST_LINE;
                        if head.len > self.limit || over_lines || over_request_line {
                            self.state = State::Refused;
                            return Scan::Refuse(released);
                        }
                    }
                }
            }
        }
        if self.state == State::Refused { Scan::Refuse(released) } else { Scan::Release(released) }
    }

    /// The client's stream ended: whatever is held goes to the parser as
    /// it is, and nothing more is guarded.
    fn end(&mut self) {
        if self.state != State::Refused {
            self.state = State::Open;
        }
    }
}

/// What one complete line of a head says about the body, given what the
/// lines before it said.
fn framing(so_far: Framing, request_line: bool, line: &[u8]) -> Framing {
    if so_far == Framing::Unknown {
        return so_far;
    }
    if request_line {
        return if line.starts_with(b"CONNECT ") { Framing::Unknown } else { so_far };
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else { return so_far };
    let name = line[..colon].trim_ascii();
    let value = line[colon + 1..].trim_ascii();
    if name.eq_ignore_ascii_case(b"transfer-encoding") || name.eq_ignore_ascii_case(b"upgrade") {
        return Framing::Unknown;
    }
    if !name.eq_ignore_ascii_case(b"content-length") {
        return so_far;
    }
    let parsed = std::str::from_utf8(value).ok().filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
    match (so_far, parsed.and_then(|v| v.parse::<u64>().ok())) {
        (Framing::None, Some(n)) => Framing::Length(n),
        (Framing::Length(m), Some(n)) if m == n => so_far,
        _ => Framing::Unknown,
    }
}

/// A client connection's socket, read through a [`HeadScan`].
#[derive(Debug)]
pub struct HeadGuard<T> {
    io: T,
    scan: HeadScan,
    /// Read from the socket, not yet given to the parser: released bytes
    /// first, then the unfinished head (at most the limit and one read).
    held: BytesMut,
    /// How many bytes at the front of `held` are released.
    ready: usize,
    /// How many bytes at the front of `held` have been scanned.
    seen: usize,
}

impl<T> HeadGuard<T> {
    /// `limit`: `server.max_request_head_bytes`.
    pub fn new(io: T, limit: usize) -> Self {
        Self { io, scan: HeadScan::new(limit), held: BytesMut::new(), ready: 0, seen: 0 }
    }

    /// A guard over a socket from which `read` was already taken (the
    /// front door reads a connection's first bytes before actix-http):
    /// they are scanned and given out first, as if read here.
    pub fn with_read(io: T, limit: usize, read: BytesMut) -> Self {
        let mut guard = Self::new(io, limit);
        if !read.is_empty() {
            guard.held = read;
            let scan = guard.scan.scan(&guard.held, 0);
            guard.apply(scan);
        }
        guard
    }

    /// The socket and what was read from it but not given out (bytes the
    /// client sent right behind an upgrade request).
    pub fn into_parts(self) -> (T, BytesMut) {
        (self.io, self.held)
    }

    fn give(&mut self, out: &mut ReadBuf<'_>) {
        let n = self.ready.min(out.remaining());
        out.put_slice(&self.held[..n]);
        self.held.advance(n);
        self.ready -= n;
        self.seen -= n;
        if self.held.is_empty() {
            // Between requests nothing is kept (an SSE stream's connection
            // holds no buffer).
            self.held = BytesMut::new();
        }
    }

    fn apply(&mut self, scan: Scan) {
        match scan {
            Scan::Release(n) => {
                self.ready = n;
                self.seen = self.held.len();
            }
            Scan::Refuse(n) => {
                self.held.truncate(n);
                self.held.extend_from_slice(REFUSED_REQUEST);
                self.ready = self.held.len();
                self.seen = self.ready;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGuard<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Bounded: each pass either gives bytes out, returns, or reads
        // (which ends in one of those once the socket has nothing more).
        loop {
            if this.ready > 0 {
                this.give(out);
                return Poll::Ready(Ok(()));
            }
            match this.scan.state {
                // Nothing more is read: the refusal is answered, then the
                // connection closes (the dispatcher is woken by its writes).
                State::Refused => return Poll::Pending,
                State::Open if this.held.is_empty() => return Pin::new(&mut this.io).poll_read(cx, out),
                _ => {}
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    if this.held.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    // An unfinished head, then the end: the parser decides.
                    this.scan.end();
                    this.ready = this.held.len();
                    this.seen = this.ready;
                }
                Poll::Ready(Ok(())) => {
                    this.held.extend_from_slice(read.filled());
                    let scan = this.scan.scan(&this.held, this.seen);
                    this.apply(scan);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGuard<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024;

    /// Feeds `data` in pieces of `step` bytes, as reads would; what the
    /// parser is given.
    fn run(data: &[u8], step: usize) -> Vec<u8> {
        let mut scan = HeadScan::new(LIMIT);
        let mut held = Vec::new();
        let mut seen = 0;
        let mut given = Vec::new();
        for piece in data.chunks(step) {
            held.extend_from_slice(piece);
            match scan.scan(&held, seen) {
                Scan::Release(n) => {
                    given.extend(held.drain(..n));
                    seen = held.len();
                }
                Scan::Refuse(n) => {
                    given.extend(held.drain(..n));
                    given.extend_from_slice(REFUSED_REQUEST);
                    return given;
                }
            }
        }
        given
    }

    fn both_ways(data: &[u8]) -> Vec<u8> {
        let whole = run(data, data.len().max(1));
        for step in [1, 3, 7, 100] {
            assert_eq!(run(data, step), whole, "read {step} bytes at a time");
        }
        whole
    }

    fn headers(n: usize) -> String {
        (0..n).map(|i| format!("x-h{i}: v\r\n")).collect()
    }

    #[test]
    fn heads_within_the_limits_go_through_as_sent() {
        let get = b"GET /sse HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        assert_eq!(both_ways(&get), get);
        let most = format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS));
        let most = most.replace(": v", ":v");
        assert!(most.len() <= LIMIT);
        assert_eq!(both_ways(most.as_bytes()), most.as_bytes());
    }

    #[tokio::test]
    async fn the_stand_in_is_a_request_actix_parses() {
        use actix_codec::Decoder;
        // actix's codec keeps its date on a local task.
        tokio::task::LocalSet::new()
            .run_until(async {
                let mut buf = BytesMut::from(REFUSED_REQUEST);
                match actix_http::h1::Codec::default().decode(&mut buf) {
                    Ok(Some(actix_http::h1::Message::Item(req))) => {
                        assert_eq!(req.path(), REFUSED_PATH);
                        assert_eq!(req.head().connection_type(), actix_http::ConnectionType::Close);
                    }
                    other => panic!("not parsed: {other:?}"),
                }
            })
            .await;
    }

    #[test]
    fn an_unfinished_head_is_held() {
        assert_eq!(both_ways(b"GET / HTTP/1.1\r\nhost: a\r\n"), b"");
    }

    #[test]
    fn a_head_over_the_byte_limit_is_replaced() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(LIMIT));
        assert_eq!(both_ways(long.as_bytes()), REFUSED_REQUEST);
        // Refused as soon as it passes the limit, not at its end.
        assert_eq!(both_ways(&long.as_bytes()[..LIMIT + 1]), REFUSED_REQUEST);
    }

    #[test]
    fn a_head_with_too_many_headers_is_replaced() {
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS + 1)).replace(": v", ":");
        assert!(many.len() < LIMIT, "small, yet too many");
        assert_eq!(both_ways(many.as_bytes()), REFUSED_REQUEST);
    }

    #[test]
    fn a_request_line_past_the_uri_parser_is_replaced_whatever_the_limit() {
        let mut scan = HeadScan::new(128 * 1024);
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(scan.scan(line.as_bytes(), 0), Scan::Refuse(0));
    }

    #[test]
    fn bodies_are_skipped_and_the_next_head_is_measured() {
        let post = b"POST /m HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello";
        let mut stream = post.to_vec();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(both_ways(&stream), stream);
        // A body that looks like a head is not one.
        let mut tricky = b"POST /m HTTP/1.1\r\nContent-Length: 2000\r\n\r\n".to_vec();
        tricky.extend_from_slice(headers(200).as_bytes());
        tricky.resize(tricky.len() + 2000 - headers(200).len(), b'x');
        assert_eq!(both_ways(&tricky), tricky);
        // The pipelined head after a body is refused, what came before is given.
        let mut piped = post.to_vec();
        let bad = format!("GET / HTTP/1.1\r\n{}\r\n", headers(MAX_HEADERS + 1)).replace(": v", ":");
        piped.extend_from_slice(bad.as_bytes());
        let mut want = post.to_vec();
        want.extend_from_slice(REFUSED_REQUEST);
        assert_eq!(both_ways(&piped), want);
    }

    #[test]
    fn what_cannot_be_framed_is_left_to_actix() {
        for head in [
            "POST /m HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "POST /m HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "POST /m HTTP/1.1\r\ncontent-length: -5\r\n\r\n",
            "CONNECT a:1 HTTP/1.1\r\n\r\n",
        ] {
            let mut stream = head.as_bytes().to_vec();
            stream.extend_from_slice(format!("{}\r\n", headers(300)).as_bytes());
            assert_eq!(both_ways(&stream), stream, "{head}");
        }
    }

    #[test]
    fn bare_line_feeds_and_leading_empty_lines_are_heads_too() {
        let lf = b"GET / HTTP/1.1\nhost: a\n\nGET / HTTP/1.1\n\n".to_vec();
        assert_eq!(both_ways(&lf), lf);
        let leading = b"\r\nGET / HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(both_ways(&leading), leading);
    }

    #[tokio::test]
    async fn the_guard_reads_through_and_hands_back_what_it_holds() {
        use tokio::io::AsyncReadExt;
        let stream: &[u8] = b"GET / HTTP/1.1\r\n\r\nGET /ws HTTP/1.1\r\nupgrade: websocket\r\n\r\n\x81\x00";
        let mut guard = HeadGuard::new(stream, LIMIT);
        let mut out = [0u8; 18];
        guard.read_exact(&mut out).await.expect("first head");
        assert_eq!(&out, b"GET / HTTP/1.1\r\n\r\n");
        let mut rest = Vec::new();
        guard.read_to_end(&mut rest).await.expect("the rest");
        assert!(rest.ends_with(b"\x81\x00"));

        let refused = format!("GET / HTTP/1.1\r\n{}\r\n", headers(100));
        let mut guard = HeadGuard::new(refused.as_bytes(), LIMIT);
        let mut out = vec![0u8; REFUSED_REQUEST.len()];
        guard.read_exact(&mut out).await.expect("the stand-in");
        assert_eq!(out, REFUSED_REQUEST);
        let (_, held) = guard.into_parts();
        assert!(held.is_empty(), "the refused head is dropped");
    }
}

#[cfg(test)]
mod with_read_tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_read_before_the_guard_are_given_out_first_and_measured() {
        let socket: &[u8] = b"\r\n\r\n";
        let first = BytesMut::from(&b"GET / HTTP/1.1\r\nhost: x"[..]);
        let mut guard = HeadGuard::with_read(socket, 1024, first);
        let mut all = Vec::new();
        guard.read_to_end(&mut all).await.expect("read");
        assert_eq!(all, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");

        let over = BytesMut::from(format!("GET / HTTP/1.1\r\nx-filler: {}", "y".repeat(2000)).as_bytes());
        let mut guard = HeadGuard::with_read(&b"\r\n\r\n"[..], 1024, over);
        let mut out = vec![0u8; REFUSED_REQUEST.len()];
        guard.read_exact(&mut out).await.expect("the stand-in");
        assert_eq!(out, REFUSED_REQUEST, "a head over the limit is refused though read elsewhere");
    }
}
