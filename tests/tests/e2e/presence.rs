//! Channel presence: who is in a channel per player (the API and the
//! client's `presence`), `join`/`leave` frames over both transports damped
//! by `channels.presence_grace_seconds`, and the same across three nodes on
//! a real Redis.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use serde_json::Value;
use tandem_client::{ClientMessage, ServerFrame};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, RedisServer, Signal, TestServer, Transport, WAIT, error_code};

/// A server whose `room:` subscribers hear joins and leaves, with `grace`.
async fn server(grace_seconds: u64) -> TestServer {
    TestServer::builder()
        .set("channels", "presence_events", "[\"room\"]")
        .set("channels", "presence_grace_seconds", &grace_seconds.to_string())
        .start()
        .await
}

/// The `join`/`leave` frames (as `join:<player>`) that reach `peer` within
/// `listen`, skipping anything else.
async fn presence_frames(peer: &mut Peer, listen: Duration) -> Vec<String> {
    let until = Instant::now() + listen;
    let mut out = Vec::new();
    // Bounded: at most one frame per iteration, until the window closes.
    for _ in 0..100_000 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match peer.next_frame(left).await {
            Ok(ServerFrame::Join { player_id, .. }) => out.push(format!("join:{player_id}")),
            Ok(ServerFrame::Leave { player_id, .. }) => out.push(format!("leave:{player_id}")),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    out
}

/// Waits until `peer` has received `want` (in order), failing on any other
/// join or leave before it.
async fn expect_frames(peer: &mut Peer, want: &[&str]) {
    let mut got = Vec::new();
    let until = Instant::now() + WAIT;
    while got.len() < want.len() && Instant::now() < until {
        got.extend(presence_frames(peer, Duration::from_millis(200)).await);
    }
    assert_eq!(got, want, "{:?} peer {}", peer.transport(), peer.welcome().player_id);
}

/// `GET /api/channels/{channel}/presence` until `check` accepts it.
async fn api_presence(
    server: &TestServer,
    channel: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, WAIT, || async {
        let (status, body) = server.api_get(&format!("/api/channels/{channel}/presence")).await;
        (status == 200 && check(&body)).then_some(body)
    })
    .await
}

fn entry<'a>(body: &'a Value, player: &str) -> Option<&'a Value> {
    body["players"].as_array()?.iter().find(|e| e["player_id"] == player)
}

#[tokio::test]
async fn a_dual_transport_player_is_one_entry_and_only_subscribers_may_ask() {
    let server = server(15).await;
    let mut alice = Peer::connect(Transport::WebSocket, &server.dev("alice").channels(&["room:x"]))
        .await
        .expect("alice ws");
    let alice_sse = Peer::connect(Transport::Sse, &server.dev("alice").session(alice.session_id()))
        .await
        .expect("alice sse, same session");
    let mut bob = Peer::connect(Transport::Sse, &server.dev("bob").channels(&["room:x"])).await.expect("bob");
    let mut carol = Peer::connect(Transport::WebSocket, &server.dev("carol")).await.expect("carol");

    let body = api_presence(&server, "room:x", "alice on both transports", |b| {
        entry(b, "alice").is_some_and(|e| e["transports"].as_array().map(Vec::len) == Some(2))
    })
    .await;
    assert_eq!(body["channel"], "room:x");
    assert_eq!(body["count"], 2, "{body}");
    let a = entry(&body, "alice").expect("alice listed");
    assert_eq!(a["sessions"], 1, "{body}");
    assert_eq!(a["transports"], serde_json::json!(["websocket", "sse"]), "{body}");
    assert_eq!(entry(&body, "bob").expect("bob listed")["transports"], serde_json::json!(["sse"]));

    // Clients ask too, over either transport.
    for peer in [&mut alice, &mut bob] {
        let reply = peer.request(&ClientMessage::Presence { channel: "room:x".into(), limit: None }).await;
        let Ok(ServerFrame::Presence { channel, count, players }) = reply else {
            panic!("{:?}: expected presence, got {reply:?}", peer.transport());
        };
        assert_eq!((channel.as_str(), count, players.len()), ("room:x", 2, 2));
    }
    // Not a subscriber: forbidden.
    let reply = carol.request(&ClientMessage::Presence { channel: "room:x".into(), limit: None }).await;
    assert_eq!(error_code(&reply), Some("forbidden"), "{reply:?}");
    let (status, body) = server.api_get("/api/channels/nope/presence").await;
    assert_eq!((status, &body["error"]["code"]), (400, &Value::from("invalid_channel")), "{body}");
    let (status, body) = server.api_get("/api/channels/room:empty/presence").await;
    assert_eq!((status, &body["count"]), (200, &Value::from(0)), "{body}");
    // A limit lists fewer; 0 asks for the count alone; past 1,000 is refused.
    let (status, body) = server.api_get("/api/channels/room:x/presence?limit=1").await;
    assert_eq!(
        (status, &body["count"], body["players"].as_array().map(Vec::len)),
        (200, &Value::from(2), Some(1))
    );
    let (status, body) = server.api_get("/api/channels/room:x/presence?limit=0").await;
    assert_eq!(
        (status, &body["count"], body["players"].as_array().map(Vec::len)),
        (200, &Value::from(2), Some(0))
    );
    let (status, body) = server.api_get("/api/channels/room:x/presence?limit=1001").await;
    assert_eq!((status, &body["error"]["code"]), (400, &Value::from("invalid_message")), "{body}");
    let reply = bob.request(&ClientMessage::Presence { channel: "room:x".into(), limit: Some(0) }).await;
    assert!(
        matches!(&reply, Ok(ServerFrame::Presence { count: 2, players, .. }) if players.is_empty()),
        "{reply:?}"
    );
    drop(alice_sse);
}

#[tokio::test]
async fn joins_and_leaves_reach_websocket_and_sse_damped_by_the_grace() {
    const GRACE: u64 = 2;
    let server = server(GRACE).await;
    let mut ws =
        Peer::connect(Transport::WebSocket, &server.dev("w1").channels(&["room:x"])).await.expect("w1");
    let mut sse = Peer::connect(Transport::Sse, &server.dev("w2").channels(&["room:x"])).await.expect("w2");
    expect_frames(&mut ws, &["join:w2"]).await;

    let mut bob =
        Peer::connect(Transport::WebSocket, &server.dev("bob").channels(&["room:x"])).await.expect("bob");
    expect_frames(&mut ws, &["join:bob"]).await;
    expect_frames(&mut sse, &["join:bob"]).await;
    assert!(presence_frames(&mut bob, Duration::from_millis(200)).await.is_empty(), "none of his own");

    // A drop and a resume within the grace: nothing. (WebSocket: a closed
    // SSE stream is noticed only at the server's next write.)
    let session = bob.session_id().to_owned();
    bob.close().await;
    let bob =
        Peer::connect(Transport::WebSocket, &server.dev("bob").session(&session)).await.expect("bob resumes");
    assert_eq!(bob.session_id(), session);
    let listen = Duration::from_secs(GRACE + 2);
    assert!(presence_frames(&mut ws, listen).await.is_empty(), "no frame for a drop within the grace");
    assert!(presence_frames(&mut sse, Duration::from_millis(100)).await.is_empty());

    // Gone for good: one leave, once the grace has passed.
    let dropped = Instant::now();
    bob.close().await;
    expect_frames(&mut ws, &["leave:bob"]).await;
    expect_frames(&mut sse, &["leave:bob"]).await;
    assert!(dropped.elapsed() >= Duration::from_secs(GRACE), "not before the grace");

    // Unsubscribe: a leave at once.
    let mut carol =
        Peer::connect(Transport::WebSocket, &server.dev("carol").channels(&["room:x"])).await.expect("carol");
    expect_frames(&mut ws, &["join:carol"]).await;
    let asked = Instant::now();
    carol.request(&ClientMessage::unsubscribe("room:x")).await.expect("unsubscribed");
    expect_frames(&mut ws, &["leave:carol"]).await;
    assert!(asked.elapsed() < Duration::from_secs(GRACE), "at once, not after the grace");
    let body = api_presence(&server, "room:x", "w1 and w2 left", |b| b["count"] == 2).await;
    assert!(entry(&body, "bob").is_none(), "{body}");
}

#[tokio::test]
async fn a_reconnect_storm_within_the_grace_makes_no_frame() {
    const CLIENTS: usize = 1000;
    let server = server(60).await;
    let mut watcher = Peer::connect(Transport::WebSocket, &server.dev("watcher").channels(&["room:storm"]))
        .await
        .expect("w");
    let started = Instant::now();
    let connect = |i: usize, session: Option<String>| {
        let mut opts = server.dev(&format!("p{i}")).channels(&["room:storm"]);
        if let Some(s) = session {
            opts = opts.session(s);
        }
        async move { Peer::connect(Transport::WebSocket, &opts).await.expect("a storm client connects") }
    };
    let peers: Vec<Peer> =
        stream::iter(0..CLIENTS).map(|i| connect(i, None)).buffer_unordered(64).collect().await;
    api_presence(&server, "room:storm", "every client present", |b| b["count"] == CLIENTS + 1).await;
    // Every join reached the watcher (drained here).
    let until = Instant::now() + WAIT * 3;
    let mut joins = 0;
    while joins < CLIENTS && Instant::now() < until {
        match watcher.next_frame(Duration::from_secs(1)).await {
            Ok(ServerFrame::Join { .. }) => joins += 1,
            Ok(ServerFrame::Leave { player_id, .. }) => panic!("leave of {player_id}"),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(joins, CLIENTS);

    // Everyone drops and comes back to the same session.
    let sessions: Vec<(usize, String)> = peers
        .iter()
        .map(|p| (p.welcome().player_id[1..].parse().expect("p<i>"), p.session_id().to_owned()))
        .collect();
    stream::iter(peers).for_each_concurrent(64, Peer::close).await;
    let back: Vec<Peer> =
        stream::iter(sessions).map(|(i, s)| connect(i, Some(s))).buffer_unordered(64).collect().await;
    assert!(back.iter().all(|p| !p.welcome().resync_required), "every session resumed");
    assert!(presence_frames(&mut watcher, Duration::from_secs(2)).await.is_empty(), "no join, no leave");
    let body = api_presence(&server, "room:storm", "still all present", |b| b["count"] == CLIENTS + 1).await;
    assert_eq!(body["players"].as_array().map(Vec::len), Some(1000), "the list is capped, not the count");
    assert!(started.elapsed() < Duration::from_secs(60), "bounded: {:?}", started.elapsed());
}

async fn node(redis: &RedisServer) -> TestServer {
    let server = TestServer::builder()
        .redis(redis)
        .set("broker", "key_prefix", "\"pr\"")
        .set("broker", "heartbeat_seconds", "1")
        .set("channels", "presence_events", "[\"room\"]")
        .set("channels", "presence_grace_seconds", "2")
        .start()
        .await;
    server.wait_for_log(|l| l["message"] == "Broker connected", WAIT).await;
    server
}

#[tokio::test]
async fn presence_spans_three_nodes_and_a_killed_node_drops_out() {
    let redis = RedisServer::start().await;
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let mut watcher = Peer::connect(Transport::WebSocket, &c.dev("watcher").channels(&["room:x"]))
        .await
        .expect("watcher on C");
    // Alice: WebSocket on A, SSE on B. Both nodes relay her join; C speaks
    // for the cluster and announces her once.
    let _alice_ws =
        Peer::connect(Transport::WebSocket, &a.dev("alice").channels(&["room:x"])).await.expect("alice on A");
    let _alice_sse =
        Peer::connect(Transport::Sse, &b.dev("alice").channels(&["room:x"])).await.expect("alice on B");
    // Dave on A only. A relayed alice's join before his, so his comes last.
    let _dave = Peer::connect(Transport::Sse, &a.dev("dave").channels(&["room:x"])).await.expect("dave on A");
    expect_frames(&mut watcher, &["join:alice", "join:dave"]).await;

    let body = api_presence(&c, "room:x", "watcher, alice on two nodes, dave", |v| {
        v["count"] == 3 && entry(v, "alice").is_some_and(|e| e["sessions"] == 2)
    })
    .await;
    let alice = entry(&body, "alice").expect("alice");
    assert_eq!(alice["sessions"], 2, "{body}");
    assert_eq!(alice["transports"], serde_json::json!(["websocket", "sse"]), "{body}");
    let reply = watcher.request(&ClientMessage::Presence { channel: "room:x".into(), limit: None }).await;
    assert!(matches!(reply, Ok(ServerFrame::Presence { count: 3, .. })), "{reply:?}");
    // The count alone sums the nodes' counts: alice, on two nodes, twice.
    let (_, body) = c.api_get("/api/channels/room:x/presence?limit=0").await;
    assert_eq!(
        (&body["count"], body["players"].as_array().map(Vec::len)),
        (&Value::from(4), Some(0)),
        "{body}"
    );

    // Node A dies: its entries go within three heartbeats (3 s) and a sweep.
    let killed = Instant::now();
    a.send_signal(Signal::Kill);
    let body = api_presence(&b, "room:x", "A's players gone", |v| {
        entry(v, "dave").is_none() && entry(v, "alice").is_some_and(|e| e["sessions"] == 1)
    })
    .await;
    assert_eq!(body["count"], 2, "alice (on B) and the watcher (on C): {body}");
    assert!(killed.elapsed() < Duration::from_secs(3 + 3), "bound: {:?}", killed.elapsed());
    assert_eq!(entry(&body, "alice").expect("alice still on B")["transports"], serde_json::json!(["sse"]));
    // The watcher hears dave leave (no node has him); alice stays (B has her).
    expect_frames(&mut watcher, &["leave:dave"]).await;
    assert_eq!(presence_frames(&mut watcher, Duration::from_secs(1)).await, Vec::<String>::new());
}
