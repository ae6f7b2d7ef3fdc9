//! A session outlives its node: three real `tandem` processes on one real
//! `redis-server`, a client whose node is SIGKILLed resumes through any
//! other node and gets exactly what it missed, in order, once; a gap that
//! cannot be filled (history too short, Redis restarted empty) is a
//! `resync_required`, counted and logged, never a silent loss.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{Client, ClientEvent, ClientOptions};
use tandem_e2e::metrics::metric;
use tandem_e2e::round_robin::RoundRobin;
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, RedisServer, Signal, TestServer, Transport, WAIT};

async fn node(redis: &RedisServer, prefix: &str, extra: &[(&str, &str, &str)]) -> TestServer {
    cluster_node(TestServer::builder().redis(redis), prefix, extra).await
}

/// A node of the cluster `b` is set up for (its Redis), under `prefix`,
/// with quick heartbeats and timeouts, once it is connected.
pub(crate) async fn cluster_node(
    b: tandem_e2e::server::TestServerBuilder,
    prefix: &str,
    extra: &[(&str, &str, &str)],
) -> TestServer {
    let mut b = b
        .set("broker", "key_prefix", &format!("\"{prefix}\""))
        .set("broker", "heartbeat_seconds", "1")
        .set("broker", "command_timeout_ms", "500");
    for (section, key, value) in extra {
        b = b.set(section, key, value);
    }
    let server = b.start().await;
    server.wait_for_log(|l| l["message"] == "Broker connected", WAIT).await;
    server
}

pub(crate) async fn publish(server: &TestServer, channel: &str, n: u64) -> Value {
    let (status, body) =
        server.api_post("/api/publish", json!({"channel": channel, "event": "n", "data": {"n": n}})).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn kill(server: &TestServer) {
    server.send_signal(Signal::Kill);
}

/// A session of `player` on `a` that received one publication on
/// `channel` (through `b`), then lost its node: its id and position.
async fn orphaned(a: &TestServer, b: &TestServer, player: &str, channel: &str) -> (String, String) {
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev(player).channels(&[channel])).await.expect("on A");
    publish(b, channel, 0).await;
    let pos = on_a.expect_delivery().await.pos.expect("a delivery on a cluster carries its position");
    kill(a);
    a.wait_exit(WAIT).await;
    (on_a.session_id().to_owned(), pos)
}

#[tokio::test]
async fn a_session_resumes_on_another_node_with_exactly_what_it_missed() {
    let redis = RedisServer::start().await;
    let (a, b, c) =
        (node(&redis, "ra1", &[]).await, node(&redis, "ra1", &[]).await, node(&redis, "ra1", &[]).await);
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev("erin").channels(&["room:z"])).await.expect("on A");
    let session = on_a.session_id().to_owned();
    publish(&c, "room:z", 0).await;
    let first = on_a.expect_delivery().await;
    assert_eq!(first.seq, 1);
    let pos = first.pos.clone().expect("a delivery on a cluster carries its position");

    kill(&a);
    a.wait_exit(WAIT).await;
    // Missed while away: two on the room, a direct message, a broadcast.
    publish(&c, "room:z", 1).await;
    publish(&b, "room:z", 2).await;
    let (status, _) = c.api_post("/api/players/erin/messages", json!({"event": "n", "data": {"n": 3}})).await;
    assert_eq!(status, 200);
    let (status, _) = b.api_post("/api/broadcast", json!({"event": "n", "data": {"n": 4}})).await;
    assert_eq!(status, 200);

    // Through B, over the other transport: the same session, numbering on.
    let opts = b.dev("erin").session(&session).last_seq(1).positions(vec![("room:z".into(), pos)]);
    let mut on_b = Peer::connect(Transport::Sse, &opts).await.expect("resume on B");
    let w = on_b.welcome().clone();
    assert_eq!(
        (w.session_id.as_str(), w.resumed, w.resync_required, w.last_seq),
        (session.as_str(), true, false, 1),
        "{w:?}"
    );
    // What a client keeps: the last position of each channel.
    let mut positions: Vec<(String, String)> = Vec::new();
    let mut keep = |d: &tandem_client::Delivery| {
        positions.retain(|(c, _)| *c != d.channel);
        positions.push((d.channel.clone(), d.pos.clone().expect("a position")));
    };
    for (seq, n, channel) in [(2, 1, "room:z"), (3, 2, "room:z"), (4, 3, "player:erin"), (5, 4, "broadcast")]
    {
        let d = on_b.expect_delivery().await;
        assert_eq!((d.seq, d.data["n"].as_u64(), d.channel.as_str()), (seq, Some(n), channel), "{d:?}");
        keep(&d);
    }
    publish(&c, "room:z", 5).await;
    let live = on_b.expect_delivery().await;
    assert_eq!((live.seq, live.data["n"].as_u64()), (6, Some(5)), "then live traffic");
    keep(&live);
    assert_eq!(metric(&b, "tandem_sessions_taken_over_total", &[("outcome", "resumed")]).await, 1.0);
    b.wait_for_log(|l| l["message"] == "Session taken over" && l["session_id"] == session.as_str(), WAIT)
        .await;

    // Back on C while B still holds it: C takes it over and B lets go.
    publish(&b, "room:z", 6).await;
    let opts = c.dev("erin").session(&session).last_seq(6).positions(positions);
    let mut on_c = Peer::connect(Transport::WebSocket, &opts).await.expect("resume on C");
    assert!(on_c.welcome().resumed && !on_c.welcome().resync_required, "{:?}", on_c.welcome());
    let d = on_c.expect_delivery().await;
    assert_eq!((d.seq, d.data["n"].as_u64()), (7, Some(6)), "only what it had not received: {d:?}");
    b.wait_for_log(
        |l| l["message"] == "Session moved to another node" && l["session_id"] == session.as_str(),
        WAIT,
    )
    .await;
    let (frames, code) = tandem_e2e::frames_until_closed(&mut on_b, 8).await;
    assert_eq!(code, Some(4010), "B's link closes as session_moved, to reconnect: {frames:?}");
}

#[tokio::test]
async fn a_gap_the_history_cannot_fill_is_resync_required_never_a_silent_loss() {
    let redis = RedisServer::start().await;
    let short = [("broker", "history_namespaces", "{ room = { size = 2, ttl_seconds = 60 } }")];
    let (a, b) = (node(&redis, "ra2", &short).await, node(&redis, "ra2", &short).await);
    let (session, pos) = orphaned(&a, &b, "finn", "room:q").await;
    for n in 1..=3 {
        publish(&b, "room:q", n).await;
    }
    let opts = b.dev("finn").session(&session).last_seq(1).positions(vec![("room:q".into(), pos)]);
    let on_b = Peer::connect(Transport::WebSocket, &opts).await.expect("resume on B");
    assert!(on_b.welcome().resync_required && !on_b.welcome().resumed, "{:?}", on_b.welcome());
    assert_eq!(metric(&b, "tandem_resume_gaps_total", &[("reason", "history_trimmed")]).await, 1.0);
    b.wait_for_log(
        |l| l["message"] == "Resume gap: the client must resync" && l["channel"] == "room:q",
        WAIT,
    )
    .await;
}

#[tokio::test]
async fn redis_restarted_empty_is_resync_required_never_a_silent_loss() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "ra3", &[]).await, node(&redis, "ra3", &[]).await);
    let (session, pos) = orphaned(&a, &b, "gus", "room:r").await;
    redis.restart().await;
    // Published into the empty Redis once B is back on it.
    eventually("B publishes again", WAIT, || async {
        let (status, _) =
            b.api_post("/api/publish", json!({"channel": "room:r", "event": "n", "data": 1})).await;
        (status == 200).then_some(())
    })
    .await;
    let opts = b.dev("gus").session(&session).last_seq(1).positions(vec![("room:r".into(), pos)]);
    let on_b = Peer::connect(Transport::WebSocket, &opts).await.expect("resume on B");
    assert!(on_b.welcome().resync_required && !on_b.welcome().resumed, "{:?}", on_b.welcome());
}

#[tokio::test]
async fn redis_back_from_an_older_snapshot_is_resync_required_never_a_silent_loss() {
    let mut redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "ra8", &[]).await, node(&redis, "ra8", &[]).await);
    // Two sessions on A that got publication 0, then lost their node.
    let mut away = Vec::new();
    for player in ["hal", "ida"] {
        let peer =
            Peer::connect(Transport::WebSocket, &a.dev(player).channels(&["room:s"])).await.expect("on A");
        away.push((player, peer));
    }
    publish(&b, "room:s", 0).await;
    let mut orphans = Vec::new();
    for (player, peer) in &mut away {
        let pos = peer.expect_delivery().await.pos.expect("a position");
        orphans.push((*player, peer.session_id().to_owned(), pos));
    }
    kill(&a);
    a.wait_exit(WAIT).await;
    // A snapshot, then a publication it does not hold: acknowledged, and
    // lost when Redis comes back from the snapshot (what an RDB restart or
    // a replica promoted before it got the write does).
    assert_eq!(redis.command(&[b"SAVE"]), "+OK");
    publish(&b, "room:s", 1).await;
    redis.restart().await;
    let record = tandem_server::broker::redis::Keys::new("ra8", false).session(&orphans[0].1);
    assert_eq!(redis.command(&[b"EXISTS", record.as_bytes()]), ":1", "Redis is back from the snapshot");
    eventually("B back on Redis", WAIT, || async {
        let (status, _) =
            b.api_post("/api/publish", json!({"channel": "room:other", "event": "n", "data": 0})).await;
        (status == 200).then_some(())
    })
    .await;
    // Behind the lost publication and away: a resume must not replay
    // around the hole, before a new publication on the channel or after.
    let resume = |(player, session, pos): (&str, String, String)| {
        let opts = b.dev(player).session(&session).last_seq(1).positions(vec![("room:s".into(), pos)]);
        async move { Peer::connect(Transport::WebSocket, &opts).await.expect("resume on B").welcome().clone() }
    };
    let (hal, ida) = (orphans.remove(0), orphans.remove(0));
    let w = resume(hal).await;
    assert!(w.resync_required && !w.resumed, "{w:?}");
    publish(&b, "room:s", 2).await;
    let w = resume(ida).await;
    assert!(w.resync_required && !w.resumed, "{w:?}");
    let gaps = metric(&b, "tandem_resume_gaps_total", &[("reason", "epoch_changed")]).await;
    assert_eq!(gaps, 2.0, "both told, as a new epoch");
}

#[tokio::test]
async fn the_rust_client_behind_a_round_robin_balancer_loses_nothing_when_its_node_is_killed() {
    let redis = RedisServer::start().await;
    let nodes =
        [node(&redis, "ra4", &[]).await, node(&redis, "ra4", &[]).await, node(&redis, "ra4", &[]).await];
    a_killed_node_costs_the_rust_client_nothing(&nodes, "hana").await;
}

/// The Rust SDK behind a round-robin balancer over `nodes`: its node is
/// SIGKILLed a third of the way through a stream of publications sent
/// through the others; it gets every one once, in order, with no resync.
pub(crate) async fn a_killed_node_costs_the_rust_client_nothing(nodes: &[TestServer], player: &str) {
    const TOTAL: u64 = 120;
    let balancer = RoundRobin::start(nodes.iter().map(TestServer::addr).collect()).await;
    let client = Client::new(ClientOptions::new(balancer.base_url()).player_id(player).channels(&["room:k"]))
        .expect("client options");
    let mut events = client.events();
    client.connect();
    let home = eventually("the client's node", WAIT, || async {
        nodes.iter().position(|n| {
            n.logs().iter().any(|l| l["message"] == "WebSocket connected" && l["player_id"] == player)
        })
    })
    .await;
    let survivors: Vec<&TestServer> =
        nodes.iter().enumerate().filter(|(i, _)| *i != home).map(|(_, n)| n).collect();

    // A stream of publications through the survivors, each with its own id
    // (a retry after a 503 cannot duplicate); the client's node is killed
    // a third of the way in.
    let mut received = Vec::new();
    let mut others = Vec::new();
    for n in 0..TOTAL {
        if n == TOTAL / 3 {
            kill(&nodes[home]);
        }
        let target = survivors[n as usize % survivors.len()];
        let body = json!({"channel": "room:k", "event": "n", "data": {"n": n}, "id": format!("k-{n}")});
        eventually("a publication accepted", WAIT, || async {
            let (status, _) = target.api_post("/api/publish", body.clone()).await;
            (status == 200).then_some(())
        })
        .await;
        while let Ok(e) = events.try_recv() {
            match e {
                ClientEvent::Message(d) => received.push(d),
                other => others.push(other),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rest = tandem_e2e::client_stream::collect(&mut events, TOTAL as usize - received.len(), WAIT).await;
    received.extend(rest.0);
    others.extend(rest.1);
    let got: Vec<u64> = received.iter().filter_map(|d| d.data["n"].as_u64()).collect();
    assert_eq!(got, (0..TOTAL).collect::<Vec<_>>(), "every publication once, in order");
    assert!(!others.iter().any(|e| matches!(e, ClientEvent::Resync(_))), "no resync: {others:?}");
    assert!(balancer.accepted() >= 2, "the client reconnected through the balancer");
    client.close().await;
}

#[tokio::test]
async fn a_sentinel_failover_is_followed_and_told_never_silent() {
    let mut master = RedisServer::start().await;
    let replica = RedisServer::start_replica(&master).await;
    let mut sentinels = Vec::new();
    for _ in 0..3 {
        sentinels.push(RedisServer::start_sentinel(&master, "tandem-master").await);
    }
    eventually("the replica is in sync", WAIT, || async {
        (master.command(&[b"WAIT", b"1", b"100"]) == ":1").then_some(())
    })
    .await;
    let list: Vec<String> = sentinels.iter().map(|s| format!("\"127.0.0.1:{}\"", s.port())).collect();
    let via_sentinels = [
        ("broker", "sentinels", format!("[{}]", list.join(", "))),
        ("broker", "sentinel_master", "\"tandem-master\"".to_owned()),
        // Not used with Sentinels: nothing listens there.
        ("broker", "url", "\"redis://127.0.0.1:1\"".to_owned()),
    ];
    let extra: Vec<(&str, &str, &str)> = via_sentinels.iter().map(|(s, k, v)| (*s, *k, v.as_str())).collect();
    let (a, b) = (node(&master, "ra5", &extra).await, node(&master, "ra5", &extra).await);
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev("ivy").channels(&["room:f"])).await.expect("on A");
    publish(&b, "room:f", 0).await;
    assert_eq!(on_a.expect_delivery().await.data["n"].as_u64(), Some(0));

    master.kill();
    // The Sentinels promote the replica; the nodes ask them again and follow.
    eventually("a publication through the new master", Duration::from_secs(30), || async {
        let (status, _) =
            b.api_post("/api/publish", json!({"channel": "room:f", "event": "n", "data": {"n": 1}})).await;
        (status == 200).then_some(())
    })
    .await;
    assert_eq!(replica.command(&[b"ROLE"]), "*3", "the replica is the master now (ROLE has 3 parts)");
    // A's link was cut by the failover: its client is told to resync, never
    // left with a silent gap (publication 1 may have gone out before A was
    // back: that is what the resync says), then gets what follows.
    loop {
        match on_a.next_frame(WAIT).await.expect("a frame") {
            tandem_client::ServerFrame::Resync { reason } => {
                assert_eq!(reason, "broker_reconnected");
                break;
            }
            tandem_client::ServerFrame::Message(d) => panic!("a delivery before the resync: {d:?}"),
            _ => {}
        }
    }
    publish(&b, "room:f", 2).await;
    loop {
        match on_a.next_frame(WAIT).await.expect("a frame") {
            tandem_client::ServerFrame::Message(d) if d.data["n"] == 1 => {}
            tandem_client::ServerFrame::Message(d) => {
                assert_eq!(d.data["n"].as_u64(), Some(2), "{d:?}");
                break;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_session_taken_over_is_not_reported_gone_when_its_old_node_is_reaped() {
    let game = tandem_e2e::backend::TestBackend::start().await;
    let redis = RedisServer::start().await;
    let events = format!("\"{}\"", game.url(tandem_e2e::backend::EVENTS));
    let extra = [("session", "resume_window_seconds", "2"), ("backend", "events_url", events.as_str())];
    let (a, b) = (node(&redis, "ra6", &extra).await, node(&redis, "ra6", &extra).await);
    let (session, pos) = orphaned(&a, &b, "jade", "room:j").await;
    let opts = b.dev("jade").session(&session).last_seq(1).positions(vec![("room:j".into(), pos)]);
    let on_b = Peer::connect(Transport::WebSocket, &opts).await.expect("resume on B");
    assert!(on_b.welcome().resumed, "{:?}", on_b.welcome());
    game.wait_event("session_resumed on B", WAIT, |e| {
        e["type"] == "session_resumed" && e["session_id"] == session.as_str()
    })
    .await;
    // B reaps A (three missed heartbeats) and, the resume window later,
    // would report A's sessions gone: not this one, which lives on B.
    b.wait_for_log(|l| l["message"].as_str().is_some_and(|m| m.starts_with("Cluster node lost")), WAIT).await;
    let settle = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < settle {
        let left: Vec<Value> = game
            .delivered_events()
            .into_iter()
            .filter(|e| e["type"] == "player_left" && e["session_id"] == session.as_str())
            .collect();
        assert!(left.is_empty(), "a player_left for a session alive on B: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // When it does end on B, it is reported once.
    on_b.close().await;
    game.wait_event("player_left once the session expires on B", Duration::from_secs(15), |e| {
        e["type"] == "player_left" && e["session_id"] == session.as_str()
    })
    .await;
}

/// POSTs `body` as `player`'s SSE uplink for `session` to `node`.
async fn uplink(node: &TestServer, player: &str, session: &str, body: Value) -> (u16, Value) {
    let url = node.dev(player).messages_url(session).expect("a URL");
    let r = node.http().post(url).json(&body).send().await.expect("the post");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_sse_uplink_post_that_reaches_another_node_is_run_by_the_sessions_node() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "ra7", &[]).await, node(&redis, "ra7", &[]).await);
    let mut on_a = Peer::connect(Transport::Sse, &a.dev("kai")).await.expect("on A");
    let session = on_a.session_id().to_owned();

    // Through B, which does not hold the session: A runs it and answers.
    let (status, reply) =
        uplink(&b, "kai", &session, json!({"type": "subscribe", "channel": "room:u"})).await;
    assert_eq!(
        (status, &reply["type"], &reply["channel"]),
        (200, &json!("subscribed"), &json!("room:u")),
        "{reply}"
    );
    publish(&b, "room:u", 7).await;
    assert_eq!(on_a.expect_delivery().await.data["n"].as_u64(), Some(7), "A's session took the subscription");
    let (status, reply) = uplink(&b, "kai", &session, json!({"type": "ping", "id": 3})).await;
    assert_eq!((status, &reply["type"], &reply["id"]), (200, &json!("pong"), &json!(3)), "{reply}");

    // Errors come back as A gave them; another player's session is refused.
    let (status, reply) = uplink(&b, "kai", &session, json!({"type": "subscribe", "channel": "BAD"})).await;
    assert_eq!((status, &reply["error"]["code"]), (400, &json!("invalid_channel")), "{reply}");
    let (status, reply) = uplink(&b, "lou", &session, json!({"type": "ping", "id": 1})).await;
    assert_eq!((status, &reply["error"]["code"]), (403, &json!("forbidden")), "{reply}");
    let (status, reply) =
        uplink(&b, "kai", "s_0123456789abcdef0123456789abcdef", json!({"type": "ping", "id": 1})).await;
    assert_eq!((status, &reply["error"]["code"]), (404, &json!("session_not_found")), "{reply}");
}
