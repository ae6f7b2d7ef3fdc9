//! The front door: a connection's first request is read before actix-http,
//! and `GET /sse` is served on the socket it owns. Every SSE behaviour is
//! checked here on the wire, over raw sockets, for that path: the answer's
//! head and chunking, CORS and Origin, `Last-Event-ID`, heads over the
//! limits, a head that never ends, keep-alive after an error, the end of a
//! stream, a client leaving, bytes sent behind the request, and requests
//! that reach actix-http after the first.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_e2e::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::common::players::{direct, wait_connection_count};
use crate::common::raw_ws::{RawRead, RawWs, upgrade_request};

/// A raw HTTP/1 client: sends bytes, reads with deadlines.
struct Raw {
    tcp: TcpStream,
    /// Read and not yet consumed.
    buf: Vec<u8>,
    ended: bool,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self { tcp, buf: Vec::new(), ended: false }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("send");
    }

    /// Reads once more; `false` at the end of the stream.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 8192];
        match timeout_at(deadline, self.tcp.read(&mut chunk)).await {
            Err(_) => panic!("nothing more by the deadline; read so far: {}", self.text()),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.ended = true;
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                assert!(self.buf.len() < 1 << 20, "a bounded answer");
                true
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// The next response head (status, lower-cased head text).
    async fn head(&mut self) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                self.buf.drain(..end + 4);
                let status = head.get(9..12).and_then(|s| s.parse().ok()).expect("a status");
                return (status, head);
            }
            assert!(self.fill(deadline).await, "closed before a head: {}", self.text());
        }
    }

    /// A body of `content-length` bytes.
    async fn sized_body(&mut self, head: &str) -> String {
        let len: usize = header(head, "content-length").and_then(|v| v.parse().ok()).expect("content-length");
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < len {
            assert!(self.fill(deadline).await, "closed inside a body");
        }
        let body = self.buf.drain(..len).collect::<Vec<_>>();
        String::from_utf8(body).expect("utf-8")
    }

    /// The next chunk of a chunked body (empty for the last chunk).
    async fn chunk(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&self.buf[..eol]).expect("ascii size");
                let size =
                    usize::from_str_radix(size, 16).unwrap_or_else(|e| panic!("chunk size {size:?}: {e}"));
                let total = eol + 2 + size + 2;
                if self.buf.len() >= total {
                    assert_eq!(&self.buf[total - 2..total], b"\r\n", "a chunk ends with CRLF");
                    let data = String::from_utf8(self.buf[eol + 2..eol + 2 + size].to_vec()).expect("utf-8");
                    self.buf.drain(..total);
                    return data;
                }
            }
            assert!(self.fill(deadline).await, "closed inside a chunk: {}", self.text());
        }
    }

    /// Chunks until one contains `needle`; all of them, joined.
    async fn chunks_until(&mut self, needle: &str) -> String {
        let mut all = String::new();
        for _ in 0..100 {
            let c = self.chunk().await;
            assert!(!c.is_empty(), "the body ended before {needle:?}: {all}");
            all.push_str(&c);
            if all.contains(needle) {
                return all;
            }
        }
        panic!("no {needle:?} in 100 chunks: {all}");
    }

    /// Waits for the server to close the connection; what came before.
    async fn until_closed(&mut self, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        while self.fill(deadline).await {}
        self.text()
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(n, _)| n.trim() == name).map(|(_, v)| v.trim()))
}

fn get(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: tandem\r\naccept: text/event-stream\r\n{extra}\r\n").into_bytes()
}

/// The data of the first event in `events` named `name`.
fn event_data(events: &str, name: &str) -> Value {
    let block = events
        .split("\n\n")
        .find(|b| b.lines().any(|l| l == format!("event: {name}")))
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"));
    let data = block.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    serde_json::from_str(data).expect("JSON data")
}

async fn open_stream(server: &TestServer, query: &str, extra: &str) -> (Raw, String, String) {
    let mut raw = Raw::connect(server.addr()).await;
    raw.send(&get(&format!("/sse?{query}"), extra)).await;
    let (status, head) = raw.head().await;
    assert_eq!(status, 200, "{head}");
    let events = raw.chunks_until("event: welcome").await;
    (raw, head, events)
}

#[tokio::test]
async fn a_first_sse_request_is_a_chunked_event_stream_on_the_owned_socket() {
    let server = TestServer::start().await;
    let (mut raw, head, events) = open_stream(&server, "player_id=fd_chunks", "").await;
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"), "{head}");
    assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{head}");
    assert_eq!(header(&head, "x-accel-buffering"), Some("no"), "{head}");
    assert!(header(&head, "date").is_some_and(|d| d.ends_with("gmt")), "{head}");
    assert!(header(&head, "access-control-allow-origin").is_none(), "no Origin, no CORS: {head}");
    let welcome = event_data(&events, "welcome");
    assert_eq!(welcome["transport"], "sse", "{welcome}");
    assert_eq!(welcome["player_id"], "fd_chunks", "{welcome}");

    direct(&server, "fd_chunks", 1).await;
    let events = raw.chunks_until("event: message").await;
    assert!(events.contains("id: 1\n"), "{events:?}");
    assert_eq!(event_data(&events, "message")["data"]["n"], 1);
}

#[tokio::test]
async fn cors_and_origin_on_the_owned_stream() {
    let server =
        TestServer::builder().set("server", "allowed_origins", r#"["https://game.example"]"#).start().await;
    let (_, head, _) = open_stream(&server, "player_id=fd_cors", "origin: https://game.example\r\n").await;
    assert_eq!(header(&head, "access-control-allow-origin"), Some("https://game.example"), "{head}");
    assert!(header(&head, "vary").is_some_and(|v| v.contains("origin")), "{head}");

    let mut raw = Raw::connect(server.addr()).await;
    raw.send(&get("/sse?player_id=fd_cors", "origin: https://other.example\r\n")).await;
    let (status, head) = raw.head().await;
    let body: Value = serde_json::from_str(&raw.sized_body(&head).await).expect("JSON");
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("origin_not_allowed")), "{head}");
    assert!(header(&head, "access-control-allow-origin").is_none(), "{head}");

    // A refusal is readable by an allowed page: it carries the CORS header.
    let mut raw = Raw::connect(server.addr()).await;
    raw.send(&get("/sse", "origin: https://game.example\r\n")).await;
    let (status, head) = raw.head().await;
    assert_eq!(status, 401, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("https://game.example"), "{head}");
    assert_eq!(header(&head, "www-authenticate"), Some("bearer"), "{head}");
}

#[tokio::test]
async fn last_event_id_resumes_a_stream_on_the_owned_socket() {
    let server = TestServer::start().await;
    let (mut raw, _, events) = open_stream(&server, "player_id=fd_resume", "").await;
    let session = event_data(&events, "welcome")["session_id"].as_str().expect("session id").to_owned();
    direct(&server, "fd_resume", 1).await;
    direct(&server, "fd_resume", 2).await;
    let mut seen = String::new();
    while !seen.contains("id: 2\n") {
        seen.push_str(&raw.chunks_until("event: message").await);
    }
    drop(raw);
    wait_connection_count(&server, "fd_resume", 0, WAIT).await;
    direct(&server, "fd_resume", 3).await;

    let query = format!("player_id=fd_resume&session_id={session}");
    let (mut raw, _, events) = open_stream(&server, &query, "last-event-id: 2\r\n").await;
    let welcome = event_data(&events, "welcome");
    assert_eq!(welcome["resumed"], true, "{welcome}");
    assert_eq!(welcome["session_id"], session.as_str(), "{welcome}");
    let events =
        if events.contains("event: message") { events } else { raw.chunks_until("event: message").await };
    assert!(events.contains("id: 3\n") && !events.contains("id: 2\n"), "only what was missed: {events:?}");
}

#[tokio::test]
async fn sse_heads_over_the_limits_get_the_json_431() {
    let server = TestServer::start().await;
    let filler = format!("x-filler: {}\r\n", "y".repeat(20_000));
    let many: String = (0..100).map(|i| format!("x-h{i}: v\r\n")).collect();
    for (what, extra) in [("20 KB of headers", filler), ("100 headers", many)] {
        let mut raw = Raw::connect(server.addr()).await;
        raw.send(&get("/sse?player_id=fd_big", &extra)).await;
        let (status, head) = raw.head().await;
        let body: Value = serde_json::from_str(&raw.sized_body(&head).await).expect("JSON");
        assert_eq!(status, 431, "{what}: {head}");
        assert_eq!(body["error"]["code"], "request_head_too_large", "{what}: {body}");
    }
}

#[tokio::test]
async fn a_head_that_never_ends_is_dropped_after_the_request_timeout() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(server.addr()).await;
    raw.send(b"GET /sse?player_id=fd_slow HTTP/1.1\r\nhost: tandem\r\n").await;
    let started = Instant::now();
    // REQUEST_TIMEOUT is 10 s; the deadline leaves room on a loaded machine.
    let answered = raw.until_closed(Duration::from_secs(30)).await;
    assert!(answered.is_empty(), "no answer to half a head: {answered}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "not dropped before its time: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn after_an_error_the_connection_serves_the_next_request_unless_it_said_close() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(server.addr()).await;
    let mut requests = get("/sse", "");
    requests.extend_from_slice(b"GET /health/live HTTP/1.1\r\nhost: tandem\r\n\r\n");
    raw.send(&requests).await;
    let (status, head) = raw.head().await;
    assert_eq!(status, 401, "{head}");
    assert!(header(&head, "connection").is_none(), "kept alive: {head}");
    let body: Value = serde_json::from_str(&raw.sized_body(&head).await).expect("JSON");
    assert_eq!(body["error"]["code"], "missing_token", "{body}");
    let (status, head) = raw.head().await;
    assert_eq!(status, 200, "the request behind it is answered: {head}");
    assert_eq!(raw.sized_body(&head).await, r#"{"status":"alive"}"#);

    let mut raw = Raw::connect(server.addr()).await;
    raw.send(&get("/sse", "connection: close\r\n")).await;
    let (status, head) = raw.head().await;
    assert_eq!((status, header(&head, "connection")), (401, Some("close")), "{head}");
    raw.sized_body(&head).await;
    raw.until_closed(WAIT).await;

    // HTTP/1.0 is closed after an error too.
    let mut raw = Raw::connect(server.addr()).await;
    raw.send(b"GET /sse HTTP/1.0\r\n\r\n").await;
    let (status, head) = raw.head().await;
    assert!(head.starts_with("http/1.0 401"), "{head}");
    assert_eq!(status, 401);
    raw.sized_body(&head).await;
    raw.until_closed(WAIT).await;
}

#[tokio::test]
async fn a_stream_the_server_ends_has_its_close_event_then_the_last_chunk() {
    let server = TestServer::start().await;
    let (mut raw, _, _) = open_stream(&server, "player_id=fd_end", "").await;
    let (status, body) = server.api_post("/api/players/fd_end/disconnect", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let events = raw.chunks_until("event: close").await;
    let close = event_data(&events, "close");
    assert_eq!(close["type"], "close", "{close}");
    assert_eq!(raw.chunk().await, "", "the last chunk follows the close event");
    let after = raw.until_closed(WAIT).await;
    assert!(after.is_empty(), "nothing after the last chunk: {after:?}");
}

#[tokio::test]
async fn a_client_leaving_ends_its_connection_at_once() {
    // A heartbeat far away: only the end of stream can end the connection.
    let server = TestServer::builder()
        .set("transport", "heartbeat_interval_seconds", "60")
        .set("transport", "heartbeat_timeout_seconds", "180")
        .start()
        .await;
    let (raw, _, _) = open_stream(&server, "player_id=fd_gone", "").await;
    wait_connection_count(&server, "fd_gone", 1, WAIT).await;
    drop(raw);
    wait_connection_count(&server, "fd_gone", 0, WAIT).await;
}

#[tokio::test]
async fn bytes_sent_behind_the_stream_request_are_dropped_up_to_a_bound() {
    let server = TestServer::start().await;
    let (mut raw, _, _) = open_stream(&server, "player_id=fd_junk", "").await;
    raw.send(&[b'x'; 1024]).await;
    direct(&server, "fd_junk", 1).await;
    let events = raw.chunks_until("event: message").await;
    assert_eq!(
        event_data(&events, "message")["data"]["n"],
        1,
        "a kilobyte behind the request changes nothing"
    );

    // Far more than any stream client sends: the connection is closed.
    let _ = raw.tcp.write_all(&[b'x'; 64 * 1024]).await;
    raw.until_closed(WAIT).await;
    wait_connection_count(&server, "fd_junk", 0, WAIT).await;
}

#[tokio::test]
async fn streams_and_upgrades_after_another_request_reach_actix_http() {
    let server = TestServer::start().await;
    // A stream requested second on a keep-alive connection.
    let mut raw = Raw::connect(server.addr()).await;
    let mut requests = b"GET /health/live HTTP/1.1\r\nhost: tandem\r\n\r\n".to_vec();
    requests.extend_from_slice(&get("/sse?player_id=fd_second", ""));
    raw.send(&requests).await;
    let (status, head) = raw.head().await;
    assert_eq!(status, 200, "{head}");
    raw.sized_body(&head).await;
    let (status, head) = raw.head().await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"), "{head}");
    let events = raw.chunks_until("event: welcome").await;
    assert_eq!(event_data(&events, "welcome")["player_id"], "fd_second");

    // An upgrade second on a keep-alive connection.
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let mut requests = b"GET /health/live HTTP/1.1\r\nhost: tandem\r\n\r\n".to_vec();
    requests
        .extend_from_slice(upgrade_request(server.addr(), "GET", "/ws?player_id=fd_upgrade", "").as_bytes());
    tcp.write_all(&requests).await.expect("send");
    let mut buf = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !String::from_utf8_lossy(&buf).contains("welcome") {
        let mut chunk = [0u8; 4096];
        let n = timeout_at(deadline, tcp.read(&mut chunk)).await.expect("in time").expect("read");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let ok = text.find("HTTP/1.1 200").expect("the first answered");
    let switching = text.find("HTTP/1.1 101").expect("then the upgrade");
    assert!(ok < switching, "{text}");
}

#[tokio::test]
async fn a_first_upgrade_is_answered_by_the_front_door_with_the_same_errors() {
    let server = TestServer::builder().set("server", "transports", r#"["sse"]"#).start().await;
    let mut raw = Raw::connect(server.addr()).await;
    raw.send(upgrade_request(server.addr(), "GET", "/ws?player_id=fd_ws", "").as_bytes()).await;
    let (status, head) = raw.head().await;
    let body: Value = serde_json::from_str(&raw.sized_body(&head).await).expect("JSON");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("transport_disabled")), "{head} {body}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    raw.until_closed(WAIT).await;

    let server = TestServer::start().await;
    let mut ws = RawWs::connect(server.addr(), "/ws?player_id=fd_ws").await.expect("upgrade");
    assert!(
        matches!(ws.next(Instant::now() + WAIT).await, RawRead::Frame(f) if f.text().is_some_and(|t| t.contains("welcome")))
    );
}
