//! Limits enforced before memory is spent, payloads every client can parse,
//! and the protocol details an attacker or an old client tries: each over
//! real sockets against the real binary.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{ClientMessage, ServerFrame, WsClient};
use tandem_e2e::metrics::wait_metric_at_least;
use tandem_e2e::{Peer, TestServer, Transport, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::players::wait_connection_count;
use crate::common::raw_ws::{Ending, OP_CONTINUATION, OP_TEXT, RawRead, RawWs, client_frame, client_header};
use crate::common::sse_stream::{SseItem, SseStream};

/// `transport.max_message_bytes` of these tests (the default).
const MAX: u64 = 65_536;

/// Reads the welcome, then expects the server to end with a close frame
/// carrying `code`, whatever else it sends first.
async fn expect_close(raw: &mut RawWs, code: u16) {
    let (ending, _) = raw.until_end(Instant::now() + WAIT, 16).await;
    assert_eq!(ending, Ending::Close(Some(code)), "expected close {code}");
}

async fn welcomed(server: &TestServer, player: &str) -> RawWs {
    let mut raw = RawWs::connect(server.addr(), &format!("/ws?player_id={player}")).await.expect("upgrade");
    match raw.next(Instant::now() + WAIT).await {
        RawRead::Frame(f) if f.text().is_some_and(|t| t.contains("\"welcome\"")) => raw,
        other => panic!("expected the welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_frames_are_refused_from_their_header_not_after_their_payload() {
    let server = TestServer::start().await;

    // A frame announcing 2^40 bytes: refused while its payload is still
    // arriving (the client has sent 4 KiB of it).
    let mut raw = welcomed(&server, "huge").await;
    raw.send(&client_header(true, OP_TEXT, 1 << 40)).await.expect("header");
    raw.send(&[b'x'; 4096]).await.expect("first bytes of the payload");
    expect_close(&mut raw, 1009).await;

    // A fragmented message whose running total would pass the limit: the
    // continuation's header is enough to refuse it.
    let mut raw = welcomed(&server, "fragments").await;
    raw.send(&client_frame(false, OP_TEXT, &vec![b' '; (MAX - 100) as usize])).await.expect("first fragment");
    raw.send(&client_header(true, OP_CONTINUATION, 200)).await.expect("continuation header");
    expect_close(&mut raw, 1009).await;

    // Within the limit, a fragmented message is reassembled and answered.
    let mut raw = welcomed(&server, "fine").await;
    raw.send(&client_frame(false, OP_TEXT, br#"{"type":"pi"#)).await.expect("first");
    raw.send(&client_frame(true, OP_CONTINUATION, br#"ng","id":3}"#)).await.expect("last");
    match raw.next(Instant::now() + WAIT).await {
        RawRead::Frame(f) => {
            let v: Value = serde_json::from_str(f.text().expect("text")).expect("json");
            assert_eq!((v["type"].as_str(), v["id"].as_u64()), (Some("pong"), Some(3)), "{v}");
        }
        other => panic!("expected the pong, got {other:?}"),
    }

    wait_metric_at_least(&server, "tandem_server_closes_total", &[("reason", "too_large")], 2.0, WAIT).await;
}

#[tokio::test]
async fn an_incomplete_fragmented_message_times_out() {
    let server = TestServer::builder().set("transport", "fragment_timeout_seconds", "1").start().await;
    let mut raw = welcomed(&server, "slowfrag").await;
    let sent = Instant::now();
    raw.send(&client_frame(false, OP_TEXT, b"{\"type\":")).await.expect("first fragment");
    expect_close(&mut raw, 1008).await;
    assert!(sent.elapsed() >= Duration::from_secs(1), "closed after {:?}", sent.elapsed());
}

#[tokio::test]
async fn broken_frames_get_a_close_frame_with_their_code() {
    let server = TestServer::start().await;
    // RFC 6455 §8.1: text that is not UTF-8 fails the connection with 1007.
    let mut raw = welcomed(&server, "latin1").await;
    raw.send(&client_frame(true, OP_TEXT, &[b'"', 0xE9, 0xFF, b'"'])).await.expect("frame");
    expect_close(&mut raw, 1007).await;

    // An unmasked client frame breaks the framing rules: 1002.
    let mut raw = welcomed(&server, "unmasked").await;
    raw.send(&[0x81, 0x02, b'{', b'}']).await.expect("frame");
    expect_close(&mut raw, 1002).await;
}

/// Publishes `body` (raw text) to the backend API.
async fn post_raw(server: &TestServer, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = server
        .http()
        .post(format!("{}{path}", server.base_url()))
        .bearer_auth(server.api_key())
        .body(body.to_owned());
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The next event's raw `data` (comments skipped).
async fn next_data(sse: &mut SseStream) -> (String, String) {
    loop {
        match sse.next_item(WAIT).await.expect("an event") {
            SseItem::Comment(_) => {}
            SseItem::Event { event, data, .. } => return (event, data),
        }
    }
}

#[tokio::test]
async fn relayed_data_is_compact_and_every_client_can_parse_it() {
    let server = TestServer::start().await;
    let mut sse = SseStream::open(&server, "player_id=reader&channels=room:lobby", None).await.expect("sse");
    assert_eq!(next_data(&mut sse).await.0, "welcome");

    // A pretty-printed body, blank lines and CRLFs included, is one event
    // whose data line is the compact JSON.
    let pretty = "{\r\n  \"channel\": \"room:lobby\",\r\n  \"event\": \"chat\",\r\n  \"data\": {\r\n\r\n    \"text\": \"a  b\",\n    \"list\": [ 1,\n 2 ]\r\n\r\n  }\r\n}";
    let (status, body) = post_raw(&server, "/api/publish", Some("application/json"), pretty).await;
    assert_eq!(status, 200, "{body}");
    let (event, data) = next_data(&mut sse).await;
    assert_eq!(event, "message");
    assert!(data.contains(r#""data":{"text":"a  b","list":[1,2]}"#), "{data}");
    let frame: Value = serde_json::from_str(&data).expect("one JSON line");
    assert_eq!(frame["data"], json!({"text": "a  b", "list": [1, 2]}));

    // What many parsers cannot read is refused at the door.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    for data in [deep.as_str(), r#""\ud800""#, r#"{"k":"\udfff x"}"#] {
        let body = format!(r#"{{"channel":"room:lobby","event":"chat","data":{data}}}"#);
        let (status, reply) = post_raw(&server, "/api/publish", Some("application/json"), &body).await;
        assert_eq!((status, reply["error"]["code"].as_str()), (400, Some("invalid_json")), "{reply}");
    }

    // The same rule for clients publishing into a room.
    let mut ws = WsClient::connect(&server.dev("writer")).await.expect("ws");
    ws.send_text(r#"{"type":"publish","channel":"room:lobby","event":"chat","data":  [ 1 ,  2 ] }"#)
        .await
        .expect("send");
    let (_, data) = next_data(&mut sse).await;
    assert!(data.contains(r#""data":[1,2]"#), "{data}");
    let nested = format!(
        r#"{{"type":"publish","channel":"room:lobby","event":"chat","data":{}{}}}"#,
        "{\"a\":".repeat(100),
        "1".to_owned() + &"}".repeat(100)
    );
    ws.send_text(&nested).await.expect("send");
    loop {
        match ws.next_frame(WAIT).await.expect("a reply") {
            ServerFrame::Published { .. } => {}
            ServerFrame::Error { code, .. } => {
                assert_eq!(code, "invalid_json");
                break;
            }
            other => panic!("expected invalid_json, got {other:?}"),
        }
    }
    ws.close().await;
}

#[tokio::test]
async fn json_routes_refuse_other_media_types_with_415() {
    let server = TestServer::start().await;
    let body = r#"{"channel":"room:a","event":"chat","data":1}"#;
    for ct in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let (status, reply) = post_raw(&server, "/api/publish", ct, body).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (415, Some("unsupported_media_type")),
            "{ct:?}"
        );
    }
    let (status, _) = post_raw(&server, "/api/publish", Some("application/json; charset=utf-8"), body).await;
    assert_eq!(status, 200);

    // The SSE clients' uplink too: a browser's `text/plain` post needs no
    // CORS preflight, so it must not be taken for JSON.
    let mut sse = SseStream::open(&server, "player_id=uplink", None).await.expect("sse");
    let welcome: Value = serde_json::from_str(&next_data(&mut sse).await.1).expect("welcome");
    let url = format!(
        "{}/sessions/{}/messages?player_id=uplink",
        server.base_url(),
        welcome["session_id"].as_str().expect("session id")
    );
    let res = server
        .http()
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"type":"ping","id":1}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 415);
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let server = TestServer::start().await;
    let get = |size: usize| {
        server
            .http()
            .get(format!("{}/health/live", server.base_url()))
            .header("x-filler", "y".repeat(size))
            .send()
    };
    let res = get(70_000).await.expect("request");
    assert_eq!(res.status().as_u16(), 431);
    let body: Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "request_head_too_large", "{body}");
    assert_eq!(get(8_000).await.expect("request").status().as_u16(), 200, "8 KB of headers is fine");
}

#[tokio::test]
async fn sse_over_http_1_0_streams_without_chunking() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!("GET /sse?player_id=old HTTP/1.0\r\nHost: {}\r\n\r\n", server.addr());
    tcp.write_all(request.as_bytes()).await.expect("send");
    let deadline = Instant::now() + WAIT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("\"welcome\"") {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut chunk))
            .await
            .expect("the welcome in time")
            .expect("read");
        assert!(n > 0, "closed before the welcome: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    assert!(body.starts_with("event: welcome\ndata: {"), "no chunk-size line before the events: {body:?}");
}

#[tokio::test]
async fn sse_clients_that_keep_hitting_the_uplink_limit_are_closed() {
    let server = TestServer::builder()
        .set("transport", "inbound_rate_per_second", "1")
        .set("transport", "inbound_burst", "1")
        .start()
        .await;
    let mut sse = SseStream::open(&server, "player_id=spammer", None).await.expect("sse");
    let welcome: Value = serde_json::from_str(&next_data(&mut sse).await.1).expect("welcome");
    let url = format!(
        "{}/sessions/{}/messages?player_id=spammer",
        server.base_url(),
        welcome["session_id"].as_str().expect("session id")
    );
    let mut limited = 0;
    for _ in 0..30 {
        let res = server.http().post(&url).json(&ClientMessage::ping(1)).send().await.expect("post");
        if res.status().as_u16() == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 10, "only {limited} posts were over the limit");
    loop {
        let (event, data) = next_data(&mut sse).await;
        if event == "close" {
            let close: Value = serde_json::from_str(&data).expect("close event");
            assert_eq!(close["code"], 4029, "{close}");
            assert_eq!(close["reason"], "rate_limited", "{close}");
            break;
        }
    }
}

/// Size of each delivery replayed to the client that never reads.
const FILL_BYTES: usize = 60_000;

/// The receive buffer asked for on that client's socket (the kernel
/// doubles it and stops growing it).
const STALLED_RECV_BUFFER: u32 = 16 * 1024;

/// The most bytes the path from the server's writer to a client that never
/// reads can take before the writer blocks: the kernel's ceiling on a TCP
/// send buffer (`tcp_wmem`'s maximum; autotuning stops there), the client's
/// fixed receive buffer, and the one batch the writer encodes ahead.
fn stalled_path_bytes() -> usize {
    let send_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2).and_then(|n| n.parse::<usize>().ok()))
        .unwrap_or(4 << 20);
    send_max + 4 * STALLED_RECV_BUFFER as usize + 2 * FILL_BYTES
}

/// A heartbeat that finds a connection's queue full closes it as a slow
/// consumer, and that close is counted and logged like the one a
/// publication causes: every path reports its close once.
///
/// No publication is in flight when the queue is full, so no publication
/// can find it full first and the heartbeat is the only thing that can: the
/// queue (capacity 1) is overfilled by a resume, whose replay is queued
/// whole, from a history holding twice what the stalled client's socket
/// path can take. The writer blocks with replayed deliveries still queued,
/// and the next heartbeat (one a second) finds the queue full.
#[tokio::test]
async fn a_heartbeat_that_finds_the_queue_full_counts_a_slow_consumer() {
    let fill = 2 * stalled_path_bytes() / FILL_BYTES + 1;
    let server = TestServer::builder()
        .set("transport", "outbound_queue_size", "1")
        .set("transport", "heartbeat_interval_seconds", "1")
        .set("transport", "heartbeat_timeout_seconds", "60")
        .set("session", "history_size", &fill.to_string())
        .set("logging", "level", "\"debug\"")
        .start()
        .await;

    // A session with nobody connected, its history filled.
    let first = Peer::connect(Transport::WebSocket, &server.dev("stalled")).await.expect("connect");
    let session = first.session_id().to_owned();
    first.close().await;
    wait_connection_count(&server, "stalled", 0, WAIT).await;
    let filler = "x".repeat(FILL_BYTES);
    for n in 1..=fill {
        let (status, out) = server
            .api_post(
                "/api/players/stalled/messages",
                json!({"event": "fill", "data": {"n": n, "pad": filler}}),
            )
            .await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["delivered_connections"], 0, "recorded in the history only: {out}");
    }

    // The resume queues all of it at once; the client reads its welcome
    // and nothing after.
    let target = format!("/ws?player_id=stalled&session_id={session}&last_seq=0");
    let mut raw =
        RawWs::connect_with_recv_buffer(server.addr(), &target, STALLED_RECV_BUFFER).await.expect("upgrade");
    let welcome: Value = match raw.next(Instant::now() + WAIT).await {
        RawRead::Frame(f) => serde_json::from_str(f.text().expect("a text frame")).expect("JSON"),
        other => panic!("expected the welcome, got {other:?}"),
    };
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["resumed"], true, "the whole history is replayed: {welcome}");
    let connection = welcome["connection_id"].as_str().expect("a connection id").to_owned();

    let closing = server
        .wait_for_log(
            |l| l["message"] == "Closing connection" && l["connection_id"] == connection.as_str(),
            WAIT,
        )
        .await;
    assert_eq!(closing["reason"], "slow_consumer", "{closing}");
    assert_eq!(closing["close_code"], 4008, "{closing}");
    wait_metric_at_least(
        &server,
        "tandem_slow_consumer_disconnects_total",
        &[("transport", "websocket")],
        1.0,
        WAIT,
    )
    .await;
    drop(raw);
}
