//! Channels: subscribe, unsubscribe, client publish and the rules that
//! forbid some of them, over both transports.

use serde_json::json;
use tandem_client::{ClientMessage, ServerFrame};
use tandem_e2e::{Peer, TestServer, Transport, assert_alive, assert_error};

async fn publish_then_unsubscribe(alice_transport: Transport, bob_transport: Transport) {
    let server = TestServer::start().await;
    let mut alice = Peer::connect(alice_transport, &server.dev("alice")).await.expect("alice connects");
    let mut bob = Peer::connect(bob_transport, &server.dev("bob")).await.expect("bob connects");

    for peer in [&mut alice, &mut bob] {
        let reply = peer.request(&ClientMessage::subscribe("room:x")).await;
        assert!(
            matches!(&reply, Ok(ServerFrame::Subscribed { channel }) if channel == "room:x"),
            "{:?}: {reply:?}",
            peer.transport()
        );
    }

    let reply = alice.request(&ClientMessage::publish("room:x", "chat", json!({"text": "hi"}))).await;
    let Ok(ServerFrame::Published { id, recipients }) = reply else {
        panic!("{alice_transport:?}: expected published, got {reply:?}");
    };
    assert_eq!(recipients, 2, "both sessions subscribed to room:x");
    let d = bob.expect_delivery().await;
    assert_eq!(d.id, id);
    assert_eq!(d.channel, "room:x");
    assert_eq!(d.event, "chat");
    assert_eq!(d.data, json!({"text": "hi"}));

    let reply = bob.request(&ClientMessage::unsubscribe("room:x")).await;
    assert!(
        matches!(&reply, Ok(ServerFrame::Unsubscribed { channel, .. }) if channel == "room:x"),
        "{bob_transport:?}: {reply:?}"
    );
    let reply = alice.request(&ClientMessage::publish("room:x", "chat", json!({"text": "anyone?"}))).await;
    assert!(
        matches!(reply, Ok(ServerFrame::Published { recipients: 1, .. })),
        "only alice is left in room:x: {reply:?}"
    );

    // Bob's next delivery must be this direct message, not the room
    // message published after he left (which would come first).
    let (status, body) =
        server.api_post("/api/players/bob/messages", json!({"event": "marker", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    let d = bob.expect_delivery().await;
    assert_eq!(d.event, "marker", "no delivery after unsubscribe: {d:?}");
    assert_eq!(d.channel, "player:bob");

    // Unsubscribing from a channel one is not in still answers.
    let reply = bob.request(&ClientMessage::unsubscribe("room:never")).await;
    assert!(
        matches!(&reply, Ok(ServerFrame::Unsubscribed { channel, .. }) if channel == "room:never"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn websocket_publishes_to_sse() {
    publish_then_unsubscribe(Transport::WebSocket, Transport::Sse).await;
}

#[tokio::test]
async fn sse_publishes_to_websocket() {
    publish_then_unsubscribe(Transport::Sse, Transport::WebSocket).await;
}

#[tokio::test]
async fn websocket_publishes_to_websocket() {
    publish_then_unsubscribe(Transport::WebSocket, Transport::WebSocket).await;
}

#[tokio::test]
async fn forbidden_channels_are_refused_and_ping_answers() {
    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let mut peer = Peer::connect(transport, &server.dev("alice")).await.expect("alice connects");
        for channel in ["player:bob", "player:alice", "admin:x", "secret:x"] {
            let reply = peer.request(&ClientMessage::publish(channel, "chat", json!({}))).await;
            assert_error(transport, &reply, "forbidden", 403);
        }
        for channel in ["player:bob", "admin:x"] {
            let reply = peer.request(&ClientMessage::subscribe(channel)).await;
            assert_error(transport, &reply, "forbidden", 403);
        }
        let reply = peer.request(&ClientMessage::ping(7)).await;
        let Ok(ServerFrame::Pong { id, ts }) = reply else {
            panic!("{transport:?}: expected pong, got {reply:?}");
        };
        assert_eq!(id, json!(7));
        assert!(ts > 0);
        let reply = peer.request_raw(r#"{"type":"ping","id":{"nested":["x"]}}"#).await;
        assert!(
            matches!(&reply, Ok(ServerFrame::Pong { id, .. }) if *id == json!({"nested": ["x"]})),
            "{transport:?}: any JSON id is echoed: {reply:?}"
        );
        assert_alive(&mut peer, 8).await;
    }
}

#[tokio::test]
async fn subscribing_at_connect_and_over_the_wire_both_deliver() {
    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let player = format!("carol-{}", transport.as_str());
        let mut peer = Peer::connect(transport, &server.dev(&player).channels(&["party:7"]))
            .await
            .expect("connect with channels");
        let reply = peer.request(&ClientMessage::subscribe("room:y")).await;
        assert!(matches!(reply, Ok(ServerFrame::Subscribed { .. })), "{reply:?}");
        for channel in ["party:7", "room:y"] {
            let (status, body) = server
                .api_post("/api/publish", json!({"channel": channel, "event": "e", "data": {"c": channel}}))
                .await;
            assert_eq!(status, 200, "{body}");
            let d = peer.expect_delivery().await;
            assert_eq!(d.channel, channel);
            assert_eq!(d.id, body["id"].as_str().expect("id"));
        }
    }
}
