//! The WebSocket upgrade path: requests carrying `Upgrade: websocket` are
//! taken from the HTTP layer before the route table, so each answer a
//! route would give is checked here on that path, over real sockets.

use std::net::SocketAddr;

use serde_json::Value;
use tandem_e2e::metrics::wait_metric_at_least;
use tandem_e2e::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::common::raw_ws::{OP_PONG, OP_TEXT, RawRead, RawWs, client_frame, upgrade_request};

/// Most bytes a refused upgrade's answer may take.
const MAX_ANSWER: usize = 64 * 1024;

/// Sends `request` and reads the whole answer, up to the server's close.
/// Returns the status, the head and the JSON body.
async fn refused(addr: SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let deadline = Instant::now() + WAIT;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("the server closes the connection after a refused upgrade")
            .expect("read");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        assert!(answer.len() < MAX_ANSWER, "answer over {MAX_ANSWER} bytes");
    }
    let text = String::from_utf8(answer).expect("a text answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test]
async fn refused_upgrades_get_the_route_answers_as_json_then_a_close() {
    let server = TestServer::builder()
        .set("server", "allowed_origins", r#"["https://game.example"]"#)
        .set("server", "max_request_head_bytes", "2048")
        .start()
        .await;
    let addr = server.addr();
    let cases: [(&str, String, u16, &str); 5] = [
        ("another route", upgrade_request(addr, "GET", "/health", ""), 404, "not_found"),
        ("another method", upgrade_request(addr, "POST", "/ws?player_id=a", ""), 404, "not_found"),
        (
            "a foreign Origin",
            upgrade_request(addr, "GET", "/ws?player_id=a", "Origin: https://evil.example\r\n"),
            403,
            "origin_not_allowed",
        ),
        (
            "a head over server.max_request_head_bytes",
            upgrade_request(addr, "GET", "/ws?player_id=a", &format!("X-Pad: {}\r\n", "p".repeat(4096))),
            431,
            "request_head_too_large",
        ),
        (
            "a handshake without its version",
            format!(
                "GET /ws?player_id=a HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            ),
            400,
            "invalid_upgrade",
        ),
    ];
    for (what, request, status, code) in cases {
        let (got, head, body) = refused(addr, request.as_bytes()).await;
        assert_eq!(got, status, "{what}: {head}");
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(head.contains("connection: close"), "{what}: {head}");
        assert!(head.contains("content-type: application/json"), "{what}: {head}");
    }
    // Counted like any request, by route pattern and status.
    wait_metric_at_least(
        &server,
        "tandem_http_requests_total",
        &[("route", "/ws"), ("status", "403")],
        1.0,
        WAIT,
    )
    .await;
    wait_metric_at_least(
        &server,
        "tandem_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
        1.0,
        WAIT,
    )
    .await;

    // A plain GET (no upgrade) reaches the route table and is refused there.
    let res = server.http().get(format!("http://{addr}/ws?player_id=a")).send().await.expect("plain GET");
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "invalid_upgrade");
}

#[tokio::test]
async fn frames_sent_right_behind_the_upgrade_request_are_read() {
    let server = TestServer::start().await;
    let mut early = client_frame(true, OP_TEXT, br#"{"type":"ping","id":7}"#);
    early.extend(client_frame(true, 0x9, b"hb"));
    let mut raw = RawWs::connect_with(server.addr(), "/ws?player_id=eager", &early).await.expect("upgrade");
    let deadline = Instant::now() + WAIT;
    let (mut pong_frame, mut pong_control, mut welcome) = (false, false, false);
    while !(pong_frame && pong_control && welcome) {
        match raw.next(deadline).await {
            RawRead::Frame(f) if f.opcode == OP_PONG => {
                assert_eq!(f.payload, b"hb");
                pong_control = true;
            }
            RawRead::Frame(f) => {
                let text = f.text().expect("text frames");
                let frame: Value = serde_json::from_str(text).expect("JSON");
                match frame["type"].as_str() {
                    Some("welcome") => welcome = true,
                    Some("pong") => {
                        assert_eq!(frame["id"], 7);
                        pong_frame = true;
                    }
                    _ => {}
                }
            }
            other => panic!("expected the welcome and both pongs, got {other:?}"),
        }
    }
}
