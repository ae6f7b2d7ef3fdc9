//! Protection limits: global and per-player connection caps, inbound rate
//! limits on both transports, the subscription cap, channel-name rules and
//! the frame size limit, each answered with its documented code.

use tandem_client::{ClientError, ClientMessage, ConnectOptions, ServerFrame};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, TestServer, Transport, WAIT, assert_alive, assert_error};

/// Connects, expecting an HTTP refusal; returns `(status, code)`.
async fn refusal(transport: Transport, opts: &ConnectOptions) -> (u16, String) {
    match Peer::connect(transport, opts).await {
        Err(ClientError::Http { status, code, .. }) => (status, code),
        Ok(peer) => panic!("{transport:?}: connected as {:?}", peer.welcome()),
        Err(other) => panic!("{transport:?}: expected an HTTP refusal, got {other}"),
    }
}

/// Frames until the WebSocket closes (bounded); returns them and the code.
async fn frames_until_closed(peer: &mut Peer, max: usize) -> (Vec<ServerFrame>, Option<u16>) {
    let ws = peer.ws().expect("a WebSocket peer");
    let mut frames = Vec::new();
    for _ in 0..max {
        match ws.next_frame(WAIT).await {
            Ok(frame) => frames.push(frame),
            Err(ClientError::Closed { code, .. }) => return (frames, code),
            Err(other) => panic!("expected frames then a close, got {other} after {frames:?}"),
        }
    }
    panic!("no close within {max} frames: {frames:?}");
}

#[tokio::test]
async fn server_full_refuses_new_connections_until_one_leaves() {
    let server = TestServer::builder().set("server", "max_connections", "3").start().await;
    let first = Peer::connect(Transport::WebSocket, &server.dev("a")).await.expect("1st");
    let mut second = Peer::connect(Transport::Sse, &server.dev("b")).await.expect("2nd");
    let mut third = Peer::connect(Transport::WebSocket, &server.dev("c")).await.expect("3rd");

    for transport in Transport::ALL {
        let (status, code) = refusal(transport, &server.dev("d")).await;
        assert_eq!((status, code.as_str()), (503, "server_full"), "{transport:?}: a 4th connection");
    }
    assert_alive(&mut second, 1).await;
    assert_alive(&mut third, 2).await;

    first.close().await;
    let fourth = eventually("a connection succeeds once one left", WAIT, || async {
        match Peer::connect(Transport::WebSocket, &server.dev("d")).await {
            Ok(peer) => Some(peer),
            Err(ClientError::Http { status: 503, code, .. }) if code == "server_full" => None,
            Err(other) => panic!("while waiting for room: {other}"),
        }
    })
    .await;
    assert_eq!(fourth.welcome().player_id, "d");

    // Refused attempts took no slot: full again at three.
    let (status, code) = refusal(Transport::Sse, &server.dev("e")).await;
    assert_eq!((status, code.as_str()), (503, "server_full"));
}

#[tokio::test]
async fn a_players_extra_connection_is_refused_and_others_still_connect() {
    let server = TestServer::builder().set("session", "max_connections_per_player", "2").start().await;
    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("1st of alice");
    let session = ws.session_id().to_owned();
    let mut sse =
        Peer::connect(Transport::Sse, &server.dev("alice").session(&session)).await.expect("2nd of alice");

    for transport in Transport::ALL {
        let (status, code) = refusal(transport, &server.dev("alice")).await;
        assert_eq!((status, code.as_str()), (429, "too_many_connections"), "{transport:?}: 3rd of alice");
        let (status, code) = refusal(transport, &server.dev("alice").session(&session)).await;
        assert_eq!(
            (status, code.as_str()),
            (429, "too_many_connections"),
            "{transport:?}: 3rd, same session"
        );
    }
    // The new connection is the one refused: the existing ones carry on.
    assert_alive(&mut ws, 1).await;
    assert_alive(&mut sse, 2).await;

    let mut bob = Peer::connect(Transport::WebSocket, &server.dev("bob")).await.expect("another player");
    assert_alive(&mut bob, 3).await;
}

async fn rate_limited_server() -> TestServer {
    TestServer::builder()
        .set("transport", "inbound_rate_per_second", "2")
        .set("transport", "inbound_burst", "2")
        .start()
        .await
}

#[tokio::test]
async fn websocket_bursts_are_rate_limited_and_a_flood_closes_4029() {
    let server = rate_limited_server().await;
    let mut peer = Peer::connect(Transport::WebSocket, &server.dev("flooder")).await.expect("connect");

    // A burst over the bucket: some pings answered, the rest refused.
    const BURST: u64 = 5;
    let ws = peer.ws().expect("a WebSocket peer");
    for id in 0..BURST {
        ws.send(&ClientMessage::ping(id)).await.expect("send ping");
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..BURST {
        match ws.next_frame(WAIT).await {
            Ok(ServerFrame::Pong { .. }) => pongs += 1,
            Ok(ServerFrame::Error { code, .. }) if code == "rate_limited" => limited += 1,
            other => panic!("burst reply: {other:?}"),
        }
    }
    assert!(pongs >= 1, "the burst allowance answers: {pongs} pong(s), {limited} refusal(s)");
    assert!(limited >= 1, "over the burst is refused: {pongs} pong(s), {limited} refusal(s)");

    // A sustained flood: ten refusals in a row close the socket.
    const FLOOD: u64 = 40;
    for id in 0..FLOOD {
        if ws.send(&ClientMessage::ping(100 + id)).await.is_err() {
            break;
        }
    }
    let (frames, code) = frames_until_closed(&mut peer, 2 * FLOOD as usize).await;
    assert_eq!(code, Some(4029), "close code after a flood; frames before it: {frames:?}");
    assert!(
        frames.iter().all(|f| matches!(f, ServerFrame::Pong { .. } | ServerFrame::Error { .. })),
        "{frames:?}"
    );
}

#[tokio::test]
async fn sse_post_floods_are_refused_with_429() {
    let server = rate_limited_server().await;
    let mut peer = Peer::connect(Transport::Sse, &server.dev("poster")).await.expect("connect");
    let mut replies = Vec::new();
    for id in 0..10 {
        replies.push(peer.request(&ClientMessage::ping(id)).await);
    }
    assert!(replies.iter().any(|r| matches!(r, Ok(ServerFrame::Pong { .. }))), "{replies:?}");
    let refused = replies.iter().find(|r| r.is_err()).expect("a POST over the rate is refused");
    assert_error(Transport::Sse, refused, "rate_limited", 429);
    assert!(
        replies.iter().all(|r| matches!(r, Ok(ServerFrame::Pong { .. }))
            || matches!(r, Err(ClientError::Http { status: 429, .. }))),
        "{replies:?}"
    );
    // The stream itself is untouched.
    let (status, body) = server
        .api_post("/api/players/poster/messages", serde_json::json!({"event": "still-here", "data": {}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(peer.expect_delivery().await.event, "still-here");
}

#[tokio::test]
async fn subscriptions_are_capped_and_the_personal_channel_is_free() {
    let server = TestServer::builder().set("session", "max_subscriptions", "2").start().await;
    for transport in Transport::ALL {
        let player = format!("subs-{}", transport.as_str());
        let mut peer = Peer::connect(transport, &server.dev(&player)).await.expect("connect");
        for channel in ["room:a", "room:b"] {
            let reply = peer.request(&ClientMessage::subscribe(channel)).await;
            assert!(
                matches!(&reply, Ok(ServerFrame::Subscribed { channel: c }) if c == channel),
                "{transport:?}: {channel} within the limit (player:{player} is not counted): {reply:?}"
            );
        }
        let reply = peer.request(&ClientMessage::subscribe("room:c")).await;
        assert_error(transport, &reply, "too_many_subscriptions", 400);
        assert_alive(&mut peer, 1).await;

        // At connect: the limit itself is fine, one more is refused.
        let at_limit = Peer::connect(transport, &server.dev(&player).channels(&["room:a", "room:b"]))
            .await
            .expect("channels= at the limit");
        assert_eq!(at_limit.welcome().channels.len(), 3, "{:?}", at_limit.welcome());
        let (status, code) =
            refusal(transport, &server.dev(&format!("{player}-x")).channels(&["room:a", "room:b", "room:c"]))
                .await;
        assert_eq!((status, code.as_str()), (400, "too_many_subscriptions"), "{transport:?}");
    }
}

#[tokio::test]
async fn invalid_channel_names_at_connect_are_refused() {
    let server = TestServer::start().await;
    let too_long = format!("room:{}", "x".repeat(97));
    let cases = ["nonamespace", "room:", ":name", "Room:x", "room:bad!", "1room:x", too_long.as_str()];
    for transport in Transport::ALL {
        for channel in cases {
            let (status, code) =
                refusal(transport, &server.dev("alice").channels(&["room:ok", channel])).await;
            assert_eq!((status, code.as_str()), (400, "invalid_channel"), "{transport:?} with {channel:?}");
        }
    }
    let ok =
        Peer::connect(Transport::WebSocket, &server.dev("alice").channels(&["room:ok", "party:a-b_c.d@e:f"]))
            .await
            .expect("valid names connect");
    assert!(ok.welcome().channels.iter().any(|c| c == "party:a-b_c.d@e:f"), "{:?}", ok.welcome());
}

#[tokio::test]
async fn a_websocket_frame_over_the_size_limit_closes_1009() {
    let server = TestServer::builder().set("transport", "max_message_bytes", "1024").start().await;
    let mut peer = Peer::connect(Transport::WebSocket, &server.dev("big")).await.expect("connect");
    // Just under the limit is fine.
    let under = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(900));
    let reply = peer.request_raw(&under).await;
    assert!(matches!(reply, Ok(ServerFrame::Pong { .. })), "{reply:?}");

    let over = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(2048));
    peer.ws().expect("a WebSocket peer").send_text(&over).await.expect("send");
    let (frames, code) = frames_until_closed(&mut peer, 4).await;
    assert_eq!(code, Some(1009), "close code for a frame over the limit; frames before it: {frames:?}");
}
