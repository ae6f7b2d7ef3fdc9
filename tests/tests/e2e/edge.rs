//! What an attacker or a flaky network finds at the edge: SSE clients that
//! leave, request heads the HTTP parser would refuse on its own, a refused
//! WebSocket frame that keeps coming, token time claims, and the headers of
//! the demo page and the browser client. Each over real sockets against the
//! real binary.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::ClientError;
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, TestServer, Transport, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

use crate::common::raw_ws::{OP_TEXT, RawRead, RawWs, client_header, upgrade_request};

/// Opens `GET /sse` on a bare socket and reads until the welcome.
async fn sse_welcomed(addr: SocketAddr, player: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /sse?player_id={player} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\"welcome\"") {
        let n = timeout_at(deadline, tcp.read(&mut chunk)).await.expect("the welcome in time").expect("read");
        assert!(n > 0, "closed before the welcome: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
    tcp
}

async fn total_connections(server: &TestServer) -> Option<u64> {
    let (status, doc) = server.api_request(Method::GET, "/monitoring/connections", None, None).await;
    (status == 200).then(|| doc["total_connections"].as_u64()).flatten()
}

#[tokio::test]
async fn a_closed_sse_stream_frees_its_slot_at_once() {
    let server = TestServer::builder().set("session", "max_connections_per_player", "1").start().await;
    let first = sse_welcomed(server.addr(), "reloader").await;
    // The slot is taken while it is open.
    match Peer::connect(Transport::Sse, &server.dev("reloader")).await {
        Err(ClientError::Http { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (429, "too_many_connections"))
        }
        other => panic!("a second stream while the first is open: {other:?}"),
    }
    // A reload: the old stream closes (FIN, no RST) and the page reconnects.
    drop(first);
    let started = Instant::now();
    let peer = eventually("the reconnect accepted", Duration::from_secs(2), || async {
        Peer::connect(Transport::Sse, &server.dev("reloader")).await.ok()
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2), "not a heartbeat later");
    peer.close().await;
}

#[tokio::test]
async fn closed_sse_clients_leave_the_connection_count_within_a_second() {
    const CLIENTS: usize = 200;
    let server = TestServer::start().await;
    let mut streams = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        streams.push(sse_welcomed(server.addr(), &format!("crowd-{i}")).await);
    }
    eventually("every stream counted", WAIT, || async {
        (total_connections(&server).await == Some(CLIENTS as u64)).then_some(())
    })
    .await;
    drop(streams);
    let closed = Instant::now();
    eventually("the count back to 0", Duration::from_secs(2), || async {
        (total_connections(&server).await == Some(0)).then_some(())
    })
    .await;
    assert!(closed.elapsed() < Duration::from_secs(2));
}

/// Sends `request` on a fresh socket; the status and body of the answer,
/// read to the end of the connection.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("send");
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match timeout_at(deadline, tcp.read(&mut chunk)).await.expect("the answer in time") {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // The server may reset once it answered: what arrived counts.
            Err(_) if !buf.is_empty() => break,
            Err(e) => panic!("read: {e}"),
        }
        assert!(buf.len() < 1 << 20, "a bounded answer");
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status =
        text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn assert_head_too_large((status, body): (u16, String), what: &str) {
    assert_eq!(status, 431, "{what}: {body}");
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body:?}"));
    assert_eq!(json["error"]["code"], "request_head_too_large", "{what}: {json}");
}

fn with_headers(addr: SocketAddr, n: usize) -> String {
    let headers: String = (0..n).map(|i| format!("x-h{i}: v\r\n")).collect();
    format!("GET /health/live HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{headers}\r\n")
}

#[tokio::test]
async fn request_heads_the_parser_would_refuse_get_the_json_431() {
    let server = TestServer::start().await;
    let addr = server.addr();

    // A 70 KB request line (past the URI parser's 64 KiB).
    let long = format!("GET /health/live?q={} HTTP/1.1\r\nhost: {addr}\r\n\r\n", "a".repeat(70_000));
    assert_head_too_large(raw_exchange(addr, long.as_bytes()).await, "70 KB request line");

    // 97 small headers in about 1 KB: over the parser's 96 (the host and
    // connection headers count too).
    let many = with_headers(addr, 95);
    assert!(many.len() < 1500);
    assert_head_too_large(raw_exchange(addr, many.as_bytes()).await, "97 headers");
    // 96 are fine.
    let (status, body) = raw_exchange(addr, with_headers(addr, 94).as_bytes()).await;
    assert_eq!(status, 200, "96 headers: {body}");

    // A request before it on the same connection is answered first.
    let mut piped = format!("GET /health/live HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes();
    piped.extend_from_slice(many.as_bytes());
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&piped).await.expect("send");
    let mut buf = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut chunk = [0u8; 4096];
    while let Ok(n) = timeout_at(deadline, tcp.read(&mut chunk)).await.expect("answers in time") {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let first = text.find("HTTP/1.1 200").expect("the first request answered");
    let second = text.find("HTTP/1.1 431").expect("the second refused");
    assert!(first < second && text.contains("request_head_too_large"), "{text}");

    // A head that never ends is refused once past the limit, before its end.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nx-filler: ").as_bytes()).await.expect("send");
    tcp.write_all(&vec![b'y'; 20_000]).await.expect("send filler");
    let mut buf = Vec::new();
    let _ = timeout_at(Instant::now() + WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("an answer before the head ends");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 431"), "{}", String::from_utf8_lossy(&buf));

    // A WebSocket upgrade still works through the guard, early frames included.
    let mut raw = RawWs::connect(addr, "/ws?player_id=guarded").await.expect("upgrade");
    assert!(
        matches!(raw.next(Instant::now() + WAIT).await, RawRead::Frame(f) if f.text().is_some_and(|t| t.contains("welcome")))
    );
}

#[tokio::test]
async fn a_refused_websocket_frame_is_not_read_for_long() {
    let server = TestServer::start().await;
    // A small send buffer, so what the client's kernel takes is what the
    // server's socket took (plus its receive buffer).
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(16 * 1024).expect("SO_SNDBUF");
    let mut tcp = socket.connect(server.addr()).await.expect("connect");
    let request = upgrade_request(server.addr(), "GET", "/ws?player_id=flood", "");
    tcp.write_all(request.as_bytes()).await.expect("upgrade request");
    let mut head = vec![0u8; 4096];
    let n = timeout_at(Instant::now() + WAIT, tcp.read(&mut head)).await.expect("101 in time").expect("read");
    assert!(head[..n].starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head[..n]));

    // A frame announcing 1 GiB, then junk for as long as the server takes it.
    tcp.write_all(&client_header(true, OP_TEXT, 1 << 30)).await.expect("header");
    let junk = vec![b'x'; 16 * 1024];
    let deadline = Instant::now() + WAIT;
    let mut sent = 0usize;
    let cut = loop {
        match timeout_at(deadline, tcp.write(&junk)).await {
            Err(_) => break None,
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => break Some(e),
        }
        if sent > 64 << 20 {
            break None;
        }
    };
    let cut = cut.unwrap_or_else(|| panic!("the server still took the payload after {sent} bytes"));
    assert!(sent < 1 << 20, "{sent} bytes taken before the cut ({cut})");
}

fn at(offset: i64) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    i64::try_from(now).expect("seconds") + offset
}

#[tokio::test]
async fn token_time_claims_are_checked_with_a_small_leeway() {
    let server = TestServer::builder().set("auth", "secret", &toml_string(TEST_SECRET)).start().await;
    let token = |claims: Value| tokens::sign(TEST_SECRET, &claims);
    let refusal = |t: String| {
        let opts = server.anonymous().token(t);
        async move {
            match Peer::connect(Transport::WebSocket, &opts).await {
                Err(ClientError::Http { status, code, .. }) => (status, code),
                Ok(peer) => panic!("connected as {:?}", peer.welcome()),
                Err(other) => panic!("expected an HTTP refusal, got {other}"),
            }
        }
    };
    // Expired 5 s ago: past the default 2 s leeway.
    let expired = token(json!({"sub": "alice", "exp": at(-5)}));
    assert_eq!(refusal(expired).await, (401, "expired_token".to_owned()));
    // Not valid for another minute.
    let early = token(json!({"sub": "alice", "exp": at(3600), "nbf": at(60)}));
    for transport in Transport::ALL {
        let opts = server.anonymous().token(early.clone());
        match Peer::connect(transport, &opts).await {
            Err(ClientError::Http { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (401, "token_not_yet_valid"), "{transport:?}");
            }
            other => panic!("{transport:?}: {other:?}"),
        }
    }
    // Valid from now, and from a second ahead (within the leeway).
    for nbf in [0, 1] {
        let fine = token(json!({"sub": "alice", "exp": at(3600), "nbf": at(nbf)}));
        let peer =
            Peer::connect(Transport::WebSocket, &server.anonymous().token(fine)).await.expect("accepted");
        peer.close().await;
    }
}

#[tokio::test]
async fn the_demo_page_and_client_cannot_be_framed_and_the_client_is_importable_from_allowed_origins() {
    let server =
        TestServer::builder().set("server", "allowed_origins", r#"["http://game.example"]"#).start().await;
    let http = server.http();
    let page = http.get(format!("{}/", server.base_url())).send().await.expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("text").to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains(&format!("ws://{}", server.addr())), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    let client = |origin: Option<&str>| {
        let mut req = http.get(format!("{}/client/tandem.js", server.base_url()));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let res = client(Some("http://game.example")).await.expect("GET /client/tandem.js");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], "http://game.example");
    let vary =
        res.headers().get_all("vary").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    assert!(vary.to_ascii_lowercase().contains("origin"), "Vary: {vary}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(
        res.headers()["content-security-policy"].to_str().is_ok_and(|c| c.contains("frame-ancestors 'none'"))
    );

    let res = client(Some("http://evil.example")).await.expect("GET from another origin");
    assert_eq!(res.status().as_u16(), 200, "served, but the browser will not hand it over");
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = client(None).await.expect("GET without Origin");
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
