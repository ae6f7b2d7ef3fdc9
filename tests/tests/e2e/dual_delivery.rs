//! One session, two transports: every delivery reaches both connections
//! with the same `seq` and `id`.

use serde_json::json;
use tandem_client::{SseClient, WsClient};
use tandem_e2e::{Peer, TestServer, Transport, WAIT};

#[tokio::test]
async fn sse_and_websocket_share_a_session_and_both_receive_every_delivery() {
    let server = TestServer::start().await;
    let mut sse = SseClient::connect(&server.dev("alice").channels(&["room:tavern"]))
        .await
        .expect("SSE connect as alice");
    assert_eq!(sse.welcome.transport, "sse");
    assert_eq!(sse.welcome.player_id, "alice");
    assert!(!sse.welcome.resumed);
    assert!(!sse.welcome.resync_required);
    assert_eq!(sse.welcome.last_seq, 0);
    assert!(sse.welcome.heartbeat_interval_ms > 0);
    for channel in ["player:alice", "room:tavern"] {
        assert!(
            sse.welcome.channels.iter().any(|c| c == channel),
            "welcome channels {:?} lack {channel}",
            sse.welcome.channels
        );
    }

    let session = sse.welcome.session_id.clone();
    let mut ws = WsClient::connect(&server.dev("alice").session(&session).channels(&["room:tavern"]))
        .await
        .expect("WebSocket connect to the same session");
    assert_eq!(ws.welcome.session_id, session, "same session");
    assert_eq!(ws.welcome.transport, "websocket");
    assert_eq!(ws.welcome.player_id, "alice");
    assert_ne!(ws.welcome.connection_id, sse.welcome.connection_id);

    let (status, body) = server
        .api_post("/api/players/alice/messages", json!({"event": "hello", "data": {"text": "hi"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["websocket_delivered"], 1, "{body}");
    assert_eq!(body["sse_delivered"], 1, "{body}");
    assert_eq!(body["delivered_connections"], 2, "{body}");
    let id = body["id"].as_str().expect("publication id").to_owned();

    let on_ws = match ws.next_frame(WAIT).await {
        Ok(tandem_client::ServerFrame::Message(d)) => d,
        other => panic!("WebSocket: expected the direct message, got {other:?}"),
    };
    let on_sse = match sse.next_frame(WAIT).await {
        Ok(tandem_client::ServerFrame::Message(d)) => d,
        other => panic!("SSE: expected the direct message, got {other:?}"),
    };
    assert_eq!(on_ws, on_sse, "identical delivery on both transports");
    assert_eq!(on_ws.id, id);
    assert_eq!(on_ws.channel, "player:alice");
    assert_eq!(on_ws.event, "hello");
    assert_eq!(on_ws.data, json!({"text": "hi"}));
    assert!(on_ws.ts > 0);
    assert_eq!(sse.last_event_id(), Some(on_sse.seq), "SSE id: is the seq");

    const PUBLISHES: u64 = 50;
    let mut ids = Vec::new();
    for i in 0..PUBLISHES {
        let (status, body) = server
            .api_post("/api/publish", json!({"channel": "room:tavern", "event": "tick", "data": {"i": i}}))
            .await;
        assert_eq!(status, 200, "publish {i}: {body}");
        assert_eq!(body["recipients"], 1, "one session: {body}");
        ids.push(body["id"].as_str().expect("publication id").to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        let expected_seq = on_ws.seq + 1 + i as u64;
        let a = match ws.next_frame(WAIT).await {
            Ok(tandem_client::ServerFrame::Message(d)) => d,
            other => panic!("WebSocket tick {i}: {other:?}"),
        };
        let b = match sse.next_frame(WAIT).await {
            Ok(tandem_client::ServerFrame::Message(d)) => d,
            other => panic!("SSE tick {i}: {other:?}"),
        };
        assert_eq!(a.seq, expected_seq, "WebSocket seq strictly +1");
        assert_eq!(b.seq, expected_seq, "SSE seq strictly +1");
        assert_eq!(&a.id, id);
        assert_eq!(&b.id, id);
        assert_eq!(a.channel, "room:tavern");
        assert_eq!(a.data, json!({"i": i}));
        assert_eq!(a, b);
    }
    ws.close().await;
}

#[tokio::test]
async fn closing_one_connection_leaves_the_other_delivering() {
    let server = TestServer::start().await;
    let ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket connect");
    let session = ws.session_id().to_owned();
    let mut sse = Peer::connect(Transport::Sse, &server.dev("alice").session(&session))
        .await
        .expect("SSE connect to the same session");
    ws.close().await;

    // The server may still count the closed socket for a moment; what
    // matters is that the SSE connection keeps receiving.
    let (status, body) =
        server.api_post("/api/players/alice/messages", json!({"event": "after", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    let d = sse.expect_delivery().await;
    assert_eq!(d.event, "after");
    assert_eq!(d.channel, "player:alice");
}
