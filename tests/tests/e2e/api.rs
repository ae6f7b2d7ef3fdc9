//! The backend API: key checks, player lookup, disconnect and broadcast.

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::ServerFrame;
use tandem_e2e::{Peer, TestServer, Transport, frames_until_closed};

#[tokio::test]
async fn api_key_is_required_and_checked() {
    let server = TestServer::start().await;
    let body = json!({"channel": "room:x", "event": "e", "data": {}});
    let (status, reply) = server.api_request(Method::POST, "/api/publish", None, Some(&body)).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"]["code"], "missing_api_key", "{reply}");

    let (status, reply) =
        server.api_request(Method::POST, "/api/publish", Some("wrong-key-0123456789"), Some(&body)).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_api_key", "{reply}");

    let (status, reply) = server.api_request(Method::GET, "/api/players/alice", None, None).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"]["code"], "missing_api_key", "{reply}");

    let (status, reply) = server.api_post("/api/publish", body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["recipients"], 0, "nobody subscribed: {reply}");
    assert!(reply["id"].is_string(), "{reply}");
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn player_lookup_lists_sessions_and_connections() {
    let server = TestServer::start().await;
    let ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket connect");
    let session = ws.session_id().to_owned();
    let sse = Peer::connect(Transport::Sse, &server.dev("alice").session(&session))
        .await
        .expect("SSE connect to the same session");

    let (status, body) = server.api_get("/api/players/alice").await;
    assert_eq!(status, 200, "{body}");
    let mut found = Vec::new();
    strings(&body, &mut found);
    for expected in [
        "alice",
        session.as_str(),
        ws.welcome().connection_id.as_str(),
        sse.welcome().connection_id.as_str(),
        "websocket",
        "sse",
    ] {
        assert!(found.iter().any(|s| s == expected), "GET /api/players/alice lacks {expected:?}: {body}");
    }

    let (status, body) = server.api_get("/api/players/nobody").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "player_not_found", "{body}");
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_that_player_only() {
    let server = TestServer::start().await;
    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket connect");
    let session = ws.session_id().to_owned();
    let mut sse =
        Peer::connect(Transport::Sse, &server.dev("alice").session(&session)).await.expect("SSE connect");
    let mut bob = Peer::connect(Transport::WebSocket, &server.dev("bob")).await.expect("bob connects");

    let (status, body) = server.api_post("/api/players/alice/disconnect", json!({})).await;
    assert!((200..300).contains(&status), "{status}: {body}");

    for peer in [&mut ws, &mut sse] {
        let (frames, code) = frames_until_closed(peer, 16).await;
        assert_eq!(code, Some(4001), "{:?}: close code for a disconnect", peer.transport());
        assert!(
            !frames.iter().any(|f| matches!(f, ServerFrame::Message(_))),
            "nothing was published: {frames:?}"
        );
    }

    let (status, body) =
        server.api_post("/api/players/bob/messages", json!({"event": "unaffected", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.expect_delivery().await.event, "unaffected");
}

#[tokio::test]
async fn broadcast_reaches_every_session() {
    let server = TestServer::start().await;
    let mut peers = Vec::new();
    for (player, transport) in [
        ("alice", Transport::WebSocket),
        ("bob", Transport::Sse),
        ("carol", Transport::WebSocket),
        ("dave", Transport::Sse),
    ] {
        peers.push(Peer::connect(transport, &server.dev(player)).await.expect("connect"));
    }
    let (status, body) =
        server.api_post("/api/broadcast", json!({"event": "maintenance", "data": {"in_minutes": 5}})).await;
    assert_eq!(status, 200, "{body}");
    for peer in &mut peers {
        let d = peer.expect_delivery().await;
        assert_eq!(d.channel, "broadcast");
        assert_eq!(d.event, "maintenance");
        assert_eq!(d.data, json!({"in_minutes": 5}));
        if let Some(id) = body["id"].as_str() {
            assert_eq!(d.id, id);
        }
    }
}

#[tokio::test]
async fn direct_message_to_an_absent_player_is_not_found() {
    let server = TestServer::start().await;
    let (status, body) =
        server.api_post("/api/players/ghost/messages", json!({"event": "e", "data": {}})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "player_not_found", "{body}");
    // Once the player has a session, the same request delivers.
    let _peer = Peer::connect(Transport::Sse, &server.dev("ghost")).await.expect("connect");
    let (status, body) =
        server.api_post("/api/players/ghost/messages", json!({"event": "e", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sse_delivered"], 1, "{body}");
    assert_eq!(body["websocket_delivered"], 0, "{body}");
}
