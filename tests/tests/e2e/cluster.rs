//! Many nodes on one Redis: a real `redis-server` and three real `tandem`
//! processes on loopback. Publications accepted on any node reach every
//! subscribed session on every node exactly once; the cluster answers for
//! players and limits; Redis going away is never a silent loss; a node's
//! death is never a silent gap.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tandem_client::{Client, ClientEvent, ClientMessage, ClientOptions, ResyncReason, ServerFrame};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, RedisServer, Signal, TestServer, Transport, WAIT, frames_until_closed};

/// Milliseconds a backend publish may wait for Redis (`broker.publish_timeout_ms`).
const PUBLISH_TIMEOUT_MS: u64 = 500;

async fn node(redis: &RedisServer, prefix: &str, per_player: usize) -> TestServer {
    let server = TestServer::builder()
        .redis(redis)
        .set("broker", "key_prefix", &format!("\"{prefix}\""))
        .set("broker", "heartbeat_seconds", "1")
        .set("broker", "publish_timeout_ms", &PUBLISH_TIMEOUT_MS.to_string())
        .set("broker", "command_timeout_ms", "300")
        .set("session", "max_connections_per_player", &per_player.to_string())
        .start()
        .await;
    server.wait_for_log(|l| l["message"] == "Broker connected", WAIT).await;
    server
}

async fn three_nodes(prefix: &str, per_player: usize) -> (RedisServer, [TestServer; 3]) {
    let redis = RedisServer::start().await;
    let a = node(&redis, prefix, per_player).await;
    let b = node(&redis, prefix, per_player).await;
    let c = node(&redis, prefix, per_player).await;
    (redis, [a, b, c])
}

async fn delivery(peer: &mut Peer) -> tandem_client::Delivery {
    peer.expect_delivery().await
}

/// Nothing more arrives within a short while (no duplicate).
async fn quiet(peer: &mut Peer) {
    match peer.next_frame(Duration::from_millis(300)).await {
        Ok(ServerFrame::Message(d)) => panic!("unexpected extra delivery {d:?}"),
        Ok(other) => panic!("unexpected frame {other:?}"),
        Err(_) => {}
    }
}

/// `GET /api/players/{id}` on `server` until it shows `connections` in all.
async fn player_connections(server: &TestServer, player: &str, connections: u64) -> Value {
    eventually(&format!("{player} shows {connections} connections"), WAIT, || async {
        let (status, body) = server.api_get(&format!("/api/players/{player}")).await;
        let n = body["websocket_connections"].as_u64().unwrap_or(0)
            + body["sse_connections"].as_u64().unwrap_or(0);
        (status == 200 && n == connections).then_some(body)
    })
    .await
}

#[tokio::test]
async fn publications_cross_nodes_exactly_once_with_session_seq_rules() {
    let (_redis, [a, b, c]) = three_nodes("t1", 4).await;

    // One player: WebSocket on node A, SSE on node B (one session each).
    let mut ws =
        Peer::connect(Transport::WebSocket, &a.dev("alice").channels(&["room:x"])).await.expect("ws on A");
    let mut sse =
        Peer::connect(Transport::Sse, &b.dev("alice").channels(&["room:x"])).await.expect("sse on B");
    // Another player on node C.
    let mut bob =
        Peer::connect(Transport::WebSocket, &c.dev("bob").channels(&["room:x"])).await.expect("bob on C");

    // Cluster-wide player view, from a node holding none of alice's sessions.
    let view = player_connections(&c, "alice", 2).await;
    assert_eq!(view["mode"], "dual", "{view}");
    assert_eq!(view["sessions"].as_array().map(Vec::len), Some(2), "{view}");

    // Channel publications from each node, direct messages and a broadcast.
    let mut ids = Vec::new();
    for (i, node) in [&a, &b, &c].iter().enumerate() {
        let (status, body) = node
            .api_post("/api/publish", json!({"channel": "room:x", "event": "tick", "data": {"i": i}}))
            .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let (status, body) = c.api_post("/api/players/alice/messages", json!({"event": "dm", "data": 1})).await;
    assert_eq!(status, 200, "direct message from a node without alice's sessions: {body}");
    let dm = body["id"].as_str().expect("id").to_owned();
    let (status, body) = b.api_post("/api/broadcast", json!({"event": "news", "data": null})).await;
    assert_eq!(status, 200, "{body}");
    let news = body["id"].as_str().expect("id").to_owned();

    // Each of alice's connections: every channel publication, the direct
    // message and the broadcast, once, seq counting up by one.
    for peer in [&mut ws, &mut sse] {
        let first = peer.welcome().last_seq;
        let mut got = Vec::new();
        for k in 0..5 {
            let d = delivery(peer).await;
            assert_eq!(d.seq, first + 1 + k, "{:?}: seq without gaps", peer.transport());
            got.push(d.id);
        }
        let mut want: Vec<String> = ids.iter().cloned().chain([dm.clone(), news.clone()]).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{:?}: every publication once", peer.transport());
        quiet(peer).await;
    }
    // Bob: the three channel publications and the broadcast, not alice's DM.
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(delivery(&mut bob).await.id);
    }
    assert!(!got.contains(&dm), "bob must not get alice's direct message");
    quiet(&mut bob).await;

    // A client publish on node A reaches node C's subscriber once.
    let reply = ws.request(&ClientMessage::publish("room:x", "chat", json!("hi"))).await.expect("publish");
    let ServerFrame::Published { id, .. } = reply else { panic!("expected published, got {reply:?}") };
    assert_eq!(delivery(&mut bob).await.id, id);
    assert_eq!(delivery(&mut sse).await.id, id);
    quiet(&mut bob).await;

    // A backend disconnect through node B ends alice's sessions on A too.
    let (status, body) = b.api_post("/api/players/alice/disconnect", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions"], 2, "{body}");
    assert_eq!(body["disconnected_connections"], 2, "{body}");
    let (_, closed) = frames_until_closed(&mut ws, 10).await;
    assert_eq!(closed, Some(4001));

    // /monitoring/connections counts every node.
    let doc: Value = c
        .http()
        .get(format!("{}/monitoring/connections", c.base_url()))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let cluster = eventually("three nodes in the cluster document", WAIT, || async {
        let doc: Value = c
            .http()
            .get(format!("{}/monitoring/connections", c.base_url()))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (doc["cluster"]["node_count"] == 3 && doc["cluster"]["total_connections"] == 1).then_some(doc)
    })
    .await;
    assert_eq!(doc["total_connections"], 1, "top-level counts stay this node's: {doc}");
    assert_eq!(cluster["cluster"]["broker"], "connected");
}

#[tokio::test]
async fn the_per_player_limit_counts_every_node() {
    let (_redis, [a, b, c]) = three_nodes("t2", 2).await;
    let _one = Peer::connect(Transport::WebSocket, &a.dev("carol")).await.expect("first on A");
    let _two = Peer::connect(Transport::Sse, &b.dev("carol")).await.expect("second on B");
    player_connections(&c, "carol", 2).await;
    let third = Peer::connect(Transport::WebSocket, &c.dev("carol")).await;
    assert!(
        matches!(&third, Err(tandem_client::ClientError::Http { status: 429, code, .. }) if code == "too_many_connections"),
        "third connection, on a third node: {third:?}"
    );
}

#[tokio::test]
async fn redis_down_is_503_then_nodes_reconnect_and_sessions_resync() {
    let (mut redis, [a, b, _c]) = three_nodes("t3", 4).await;
    let mut on_b =
        Peer::connect(Transport::WebSocket, &b.dev("dave").channels(&["room:y"])).await.expect("on B");
    // The SDK client too: it must surface the server's resync to the app.
    let client = Client::new(ClientOptions::new(b.base_url()).player_id("frank").channels(&["room:y"]))
        .expect("client options");
    let mut events = client.events();
    client.connect();
    player_connections(&a, "frank", 1).await;
    let (status, _) = a.api_post("/api/publish", json!({"channel": "room:y", "event": "e", "data": 0})).await;
    assert_eq!(status, 200);
    assert_eq!(delivery(&mut on_b).await.seq, 1);
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(ClientEvent::Message(m))) => assert_eq!(m.seq, 1),
        other => panic!("SDK client: expected the first delivery, got {other:?}"),
    }

    redis.kill();
    // Until the node notices, a publish may still be queued; either way the
    // answer is a 503 within the documented timeout, never a hang or a 200.
    let (status, body) = eventually("a publish refused with broker_unavailable", WAIT, || async {
        let started = Instant::now();
        let (status, body) =
            a.api_post("/api/publish", json!({"channel": "room:y", "event": "e", "data": 1})).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(PUBLISH_TIMEOUT_MS + 1000), "publish took {took:?}");
        assert_ne!(status, 200, "a publish with Redis down must not succeed: {body}");
        Some((status, body))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "broker_unavailable", "{body}");
    let health: Value = eventually("broker disconnected in /health/detailed", WAIT, || async {
        let doc: Value =
            a.http().get(format!("{}/health/detailed", a.base_url())).send().await.ok()?.json().await.ok()?;
        (doc["components"]["broker"]["status"] == "disconnected").then_some(doc)
    })
    .await;
    assert_eq!(health["components"]["broker"]["connection"], "disconnected", "{health}");

    redis.restart().await;
    // B's session may have missed publications: it is told so.
    match on_b.next_frame(WAIT).await {
        Ok(ServerFrame::Resync { reason }) => assert_eq!(reason, "broker_reconnected"),
        other => panic!("expected a resync frame after the broker came back, got {other:?}"),
    }
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(ClientEvent::Resync(r))) => {
            assert_eq!(r.reason, ResyncReason::Server { reason: "broker_reconnected".into() });
            assert_eq!(r.last_seq, 1, "the sequence goes on");
        }
        other => panic!("SDK client: expected a resync event, got {other:?}"),
    }
    let told = b
        .wait_for_log(
            |l| l["message"].as_str().is_some_and(|m| m.starts_with("Connections told to resync")),
            WAIT,
        )
        .await;
    assert_eq!(told["connections"], 2, "dave's and frank's connections: {told}");
    a.wait_for_log(|l| l["message"] == "Broker connected" && l["reconnect"] == true, WAIT).await;
    let (status, body) = eventually("publishing works again", WAIT, || async {
        let r = a.api_post("/api/publish", json!({"channel": "room:y", "event": "e", "data": 2})).await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(status, 200, "{body}");
    let d = delivery(&mut on_b).await;
    assert_eq!(d.id, body["id"].as_str().expect("id"));
    assert_eq!(d.seq, 2, "nothing was recorded while Redis was down");
    let metrics = b
        .http()
        .get(format!("{}/metrics", b.base_url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("tandem_broker_reconnects_total 1"), "{metrics}");
    assert!(metrics.contains("tandem_resync_notices_total 2"), "{metrics}");
    client.close().await;
}

#[tokio::test]
async fn a_dead_nodes_clients_reconnect_elsewhere_and_are_told_to_resync() {
    let (_redis, [a, b, c]) = three_nodes("t4", 4).await;
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev("erin").channels(&["room:z"])).await.expect("on A");
    let session = on_a.session_id().to_owned();
    let (status, _) = c.api_post("/api/publish", json!({"channel": "room:z", "event": "e", "data": 0})).await;
    assert_eq!(status, 200);
    let last = delivery(&mut on_a).await.seq;

    a.send_signal(Signal::Kill);
    a.wait_exit(WAIT).await;
    // Publications keep flowing while the client is away.
    let (status, _) = c.api_post("/api/publish", json!({"channel": "room:z", "event": "e", "data": 1})).await;
    assert_eq!(status, 200);

    // The client comes back on another node with its session and last seq
    // but no channel positions (a raw client that keeps none): that node
    // cannot know what it missed, so it says resync_required. (With
    // positions it resumes: `resume_anywhere`.)
    let mut on_b =
        Peer::connect(Transport::Sse, &b.dev("erin").session(&session).last_seq(last).channels(&["room:z"]))
            .await
            .expect("reconnect on B");
    assert!(on_b.welcome().resync_required, "{:?}", on_b.welcome());
    assert!(!on_b.welcome().resumed);
    assert_ne!(on_b.session_id(), session, "a new session on B");

    let (status, body) =
        c.api_post("/api/publish", json!({"channel": "room:z", "event": "e", "data": 2})).await;
    assert_eq!(status, 200);
    let d = delivery(&mut on_b).await;
    assert_eq!((d.seq, d.id.as_str()), (1, body["id"].as_str().expect("id")));
    // The dead node's presence expires: only B's session is listed.
    let view = player_connections(&c, "erin", 1).await;
    assert_eq!(view["sessions"].as_array().map(Vec::len), Some(1), "{view}");
}

/// A node of a cluster whose lifecycle events go to `game`.
async fn node_with_events(
    redis: &RedisServer,
    prefix: &str,
    game: &tandem_e2e::backend::TestBackend,
) -> TestServer {
    let server = TestServer::builder()
        .redis(redis)
        .set("broker", "key_prefix", &format!("\"{prefix}\""))
        .set("broker", "heartbeat_seconds", "1")
        .set("broker", "command_timeout_ms", "300")
        .set("session", "resume_window_seconds", "2")
        .set("backend", "events_url", &format!("\"{}\"", game.url(tandem_e2e::backend::EVENTS)))
        .start()
        .await;
    server.wait_for_log(|l| l["message"] == "Broker connected", WAIT).await;
    server
}

/// The `player_left` events the game took for `session`.
fn departures(game: &tandem_e2e::backend::TestBackend, session: &str) -> Vec<Value> {
    game.delivered_events()
        .into_iter()
        .filter(|e| e["type"] == "player_left" && e["session_id"] == session)
        .collect()
}

#[tokio::test]
async fn one_player_left_per_session_in_a_cluster_also_when_its_node_dies() {
    let game = tandem_e2e::backend::TestBackend::start().await;
    let redis = RedisServer::start().await;
    let a = node_with_events(&redis, "t5", &game).await;
    let b = node_with_events(&redis, "t5", &game).await;
    let _c = node_with_events(&redis, "t5", &game).await;

    // On B, a session that simply expires: its own node sends one `expired`.
    let on_b = Peer::connect(Transport::WebSocket, &b.dev("mia")).await.expect("on B");
    let expiring = on_b.session_id().to_owned();
    on_b.close().await;
    // On A, a session whose node is killed: a survivor sends one `node_lost`
    // once the resume window has passed since A's last beat.
    let on_a = Peer::connect(Transport::WebSocket, &a.dev("lara")).await.expect("on A");
    let orphan = on_a.session_id().to_owned();
    game.wait_event("session_started on A", WAIT, |e| e["session_id"] == orphan.as_str()).await;
    // A's publisher writes the session record before the player's presence
    // (one queue, in order): once B sees lara, the record is in Redis.
    player_connections(&b, "lara", 1).await;
    a.send_signal(Signal::Kill);
    a.wait_exit(WAIT).await;

    let left = game.wait_event("player_left for B's expired session", WAIT, |e| {
        e["type"] == "player_left" && e["session_id"] == expiring.as_str()
    });
    assert_eq!(left.await["reason"], "expired");
    let lost = game
        .wait_event("player_left for the dead node's session", Duration::from_secs(30), |e| {
            e["type"] == "player_left" && e["session_id"] == orphan.as_str()
        })
        .await;
    assert_eq!(lost["reason"], "node_lost", "{lost}");
    assert_eq!(lost["player_id"], "lara");
    // Two surviving nodes, each beating every second: give a second claim
    // three heartbeats to show up. None does.
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        assert_eq!(departures(&game, &orphan).len(), 1, "{:?}", departures(&game, &orphan));
        assert_eq!(departures(&game, &expiring).len(), 1, "{:?}", departures(&game, &expiring));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
