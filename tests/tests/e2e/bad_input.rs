//! Bad input gets an error and the connection survives it; abuse (a frame
//! over the size limit) closes it with the documented code.

use serde_json::json;
use tandem_client::{ClientError, ClientMessage};
use tandem_e2e::{Peer, TestServer, Transport, WAIT, assert_alive, assert_error};

const MAX_MESSAGE_BYTES: usize = 1024;

async fn server() -> TestServer {
    TestServer::builder().set("transport", "max_message_bytes", &MAX_MESSAGE_BYTES.to_string()).start().await
}

/// `(raw frame or body, expected code)`; all are 400 over HTTP.
const CASES: [(&str, &str); 12] = [
    ("not json", "invalid_json"),
    ("{\"type\":", "invalid_json"),
    ("[1,2]", "invalid_json"),
    ("\"ping\"", "invalid_json"),
    ("{}", "unknown_type"),
    (r#"{"type":"dance"}"#, "unknown_type"),
    (r#"{"type":"welcome"}"#, "unknown_type"),
    (r#"{"type":"subscribe"}"#, "invalid_message"),
    (r#"{"type":"subscribe","channel":5}"#, "invalid_message"),
    (r#"{"type":"subscribe","channel":"Bad Channel!"}"#, "invalid_channel"),
    (r#"{"type":"subscribe","channel":"nonamespace"}"#, "invalid_channel"),
    (r#"{"type":"subscribe","channel":"room:"}"#, "invalid_channel"),
];

fn oversized() -> String {
    ClientMessage::publish("room:x", "big", json!({"pad": "x".repeat(MAX_MESSAGE_BYTES * 2)})).to_json()
}

#[tokio::test]
async fn websocket_survives_bad_frames_and_closes_on_oversize() {
    let server = server().await;
    let mut peer = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("connect");
    for (i, (raw, code)) in CASES.iter().enumerate() {
        let reply = peer.request_raw(raw).await;
        assert_error(Transport::WebSocket, &reply, code, 400);
        assert_alive(&mut peer, i as u64).await;
    }
    let reply = peer.request_binary(b"\x00\x01binary".to_vec()).await;
    assert_error(Transport::WebSocket, &reply, "unsupported_frame", 0);
    assert_alive(&mut peer, 100).await;

    let ws = peer.ws().expect("a WebSocket peer");
    ws.send_text(&oversized()).await.expect("send");
    // An error frame may precede the close; the close must come.
    let mut seen = Vec::new();
    for _ in 0..4 {
        match ws.next_frame(WAIT).await {
            Err(ClientError::Closed { code, .. }) => {
                assert_eq!(code, Some(1009), "close code for a frame over the limit");
                return;
            }
            other => seen.push(format!("{other:?}")),
        }
    }
    panic!("no close after an oversized frame; got {seen:?}");
}

#[tokio::test]
async fn sse_posts_survive_bad_bodies_and_refuse_oversize() {
    let server = server().await;
    let mut peer = Peer::connect(Transport::Sse, &server.dev("alice")).await.expect("connect");
    for (i, (raw, code)) in CASES.iter().enumerate() {
        let reply = peer.request_raw(raw).await;
        assert_error(Transport::Sse, &reply, code, 400);
        assert_alive(&mut peer, i as u64).await;
    }
    let reply = peer.request_raw(&oversized()).await;
    assert_error(Transport::Sse, &reply, "too_large", 413);
    assert_alive(&mut peer, 100).await;

    // The stream itself is untouched by all of that.
    let (status, body) =
        server.api_post("/api/players/alice/messages", json!({"event": "still-here", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    let d = peer.expect_delivery().await;
    assert_eq!(d.event, "still-here");
}

#[tokio::test]
async fn sse_post_to_unknown_session_is_not_found() {
    let server = server().await;
    let url = format!("{}/sessions/s_does_not_exist/messages", server.base_url());
    let response = server
        .http()
        .post(&url)
        .query(&[("player_id", "alice")])
        .header("content-type", "application/json")
        .body(r#"{"type":"ping","id":1}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "session_not_found", "{body}");
}

#[tokio::test]
async fn unknown_route_is_a_json_not_found() {
    let server = server().await;
    let (status, body) = server.api_get("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found", "{body}");
}
