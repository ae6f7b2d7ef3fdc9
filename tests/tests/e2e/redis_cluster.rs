//! Three real `tandem` processes on a real Redis Cluster (three masters, no
//! replicas): publications reach every node once and in order over sharded
//! pub/sub, with each channel's keys on the master of its shard; a session
//! resumes on another node (and the Rust client behind a round-robin
//! balancer loses nothing when its node is killed); a backend id is
//! published once; revocations and
//! presence span the nodes, as they do on a single Redis.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::resume_anywhere::{cluster_node, publish};
use crate::revoke::refusal;
use serde_json::{Value, json};
use tandem_client::ServerFrame;
use tandem_e2e::metrics::metric;
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, RedisCluster, Signal, TestServer, Transport, WAIT};

/// Shards a channel's keys and publications are spread over (`{c<N>}`).
const SHARDS: u32 = 128;

async fn node(cluster: &RedisCluster, prefix: &str, extra: &[(&str, &str, &str)]) -> TestServer {
    cluster_node(TestServer::builder().redis_cluster(cluster), prefix, extra).await
}

async fn three_nodes(cluster: &RedisCluster, prefix: &str, extra: &[(&str, &str, &str)]) -> [TestServer; 3] {
    [
        node(cluster, prefix, extra).await,
        node(cluster, prefix, extra).await,
        node(cluster, prefix, extra).await,
    ]
}

/// Nothing more arrives within a short while (no duplicate).
async fn quiet(peer: &mut Peer) {
    match peer.next_frame(Duration::from_millis(300)).await {
        Ok(ServerFrame::Message(d)) => panic!("{:?}: unexpected extra delivery {d:?}", peer.transport()),
        Ok(other) => panic!("{:?}: unexpected frame {other:?}", peer.transport()),
        Err(_) => {}
    }
}

/// `N` of a key or channel named `<prefix>:{c<N>}:…`, when it is one.
fn shard_of(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(":{c")?;
    let (n, _) = rest.split_once('}')?;
    n.parse().ok().filter(|n| *n < SHARDS)
}

/// The non-empty lines of a `redis-cli` answer.
fn lines(answer: &str) -> Vec<String> {
    answer.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_three_master_redis_cluster_starts_with_every_slot_assigned() {
    let cluster = RedisCluster::start().await;
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.seeds().len(), 3);
    for i in 0..3 {
        let info = cluster.cli(i, &["CLUSTER", "INFO"]);
        let info = lines(&info);
        for want in ["cluster_state:ok", "cluster_size:3", "cluster_slots_assigned:16384"] {
            assert!(info.iter().any(|l| l == want), "master {i}: no {want} in {info:?}");
        }
        println!("master {i} ({}): {}", cluster.seeds()[i], info[..4.min(info.len())].join(" "));
    }
}

#[tokio::test]
async fn publications_on_a_redis_cluster_reach_every_node_once_in_order() {
    const CHANNELS: usize = 12;
    const PER_CHANNEL: u64 = 5;
    let prefix = "rc1";
    let cluster = RedisCluster::start().await;
    let nodes = three_nodes(&cluster, prefix, &[]).await;
    let channels: Vec<String> = (0..CHANNELS).map(|k| format!("room:c{k}")).collect();
    let names: Vec<&str> = channels.iter().map(String::as_str).collect();

    // A WebSocket subscriber on every node, and an SSE one on B.
    let mut peers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let opts = n.dev(&format!("ws{i}")).channels(&names);
        peers.push(Peer::connect(Transport::WebSocket, &opts).await.expect("a WebSocket subscriber"));
    }
    let opts = nodes[1].dev("sse1").channels(&names);
    peers.push(Peer::connect(Transport::Sse, &opts).await.expect("an SSE subscriber"));

    // Through each node in turn, so every node publishes on every shard.
    let mut turn = 0;
    for n in 0..PER_CHANNEL {
        for channel in &channels {
            publish(&nodes[turn % nodes.len()], channel, n).await;
            turn += 1;
        }
    }
    let want: BTreeMap<String, Vec<u64>> =
        channels.iter().map(|c| (c.clone(), (0..PER_CHANNEL).collect())).collect();
    for peer in &mut peers {
        let mut got: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for _ in 0..want.values().map(Vec::len).sum::<usize>() {
            let d = peer.expect_delivery().await;
            got.entry(d.channel.clone()).or_default().push(d.data["n"].as_u64().expect("a number"));
        }
        assert_eq!(got, want, "{:?} {}: once each, in order", peer.transport(), peer.welcome().player_id);
        quiet(peer).await;
    }

    // Sharded pub/sub on every master, plain pub/sub on none; every node
    // listens on all the shards.
    let pattern = format!("{prefix}:*");
    let mut shard_channels = BTreeSet::new();
    for i in 0..3 {
        let sharded = lines(&cluster.cli(i, &["PUBSUB", "SHARDCHANNELS", &pattern]));
        assert!(!sharded.is_empty(), "master {i} carries none of the shard channels");
        for ch in sharded {
            let n = shard_of(&ch, prefix).unwrap_or_else(|| panic!("master {i}: unexpected {ch}"));
            assert_eq!(ch, format!("{prefix}:{{c{n}}}:pub"), "master {i}");
            assert!(shard_channels.insert(ch), "a shard channel on two masters");
        }
        let plain = lines(&cluster.cli(i, &["PUBSUB", "CHANNELS", &pattern]));
        assert!(plain.is_empty(), "master {i}: plain pub/sub channels in cluster mode: {plain:?}");
    }
    assert_eq!(shard_channels.len(), SHARDS as usize, "every shard is listened to: {shard_channels:?}");

    // Keys on every master, each channel's history under its shard's tag.
    let mut keys = Vec::new();
    for i in 0..3 {
        let size: u64 = cluster.cli(i, &["DBSIZE"]).trim().parse().expect("DBSIZE is a number");
        assert!(size > 0, "master {i} holds no key");
        keys.extend(lines(&cluster.cli(i, &["--scan", "--pattern", &pattern])));
    }
    for channel in &channels {
        let found = keys.iter().any(|k| {
            shard_of(k, prefix).is_some_and(|n| *k == format!("{prefix}:{{c{n}}}:history:{channel}"))
        });
        assert!(found, "no {prefix}:{{c<N>}}:history:{channel} among {keys:?}");
    }
}

#[tokio::test]
async fn a_session_resumes_on_another_node_of_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let [a, b, c] = three_nodes(&cluster, "rc2", &[]).await;
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev("erin").channels(&["room:z"])).await.expect("on A");
    let session = on_a.session_id().to_owned();
    publish(&c, "room:z", 0).await;
    let first = on_a.expect_delivery().await;
    assert_eq!(first.seq, 1);
    let pos = first.pos.clone().expect("a delivery on a cluster carries its position");

    a.send_signal(Signal::Kill);
    a.wait_exit(WAIT).await;
    // Missed while away, all through B: two on the room, a direct message.
    publish(&b, "room:z", 1).await;
    publish(&b, "room:z", 2).await;
    let (status, _) = b.api_post("/api/players/erin/messages", json!({"event": "n", "data": {"n": 3}})).await;
    assert_eq!(status, 200);

    // On C, over the other transport: the same session, numbering on.
    let opts = c.dev("erin").session(&session).last_seq(1).positions(vec![("room:z".into(), pos)]);
    let mut on_c = Peer::connect(Transport::Sse, &opts).await.expect("resume on C");
    let w = on_c.welcome().clone();
    assert_eq!(
        (w.session_id.as_str(), w.resumed, w.resync_required, w.last_seq),
        (session.as_str(), true, false, 1),
        "{w:?}"
    );
    for (seq, n, channel) in [(2, 1, "room:z"), (3, 2, "room:z"), (4, 3, "player:erin")] {
        let d = on_c.expect_delivery().await;
        assert_eq!((d.seq, d.data["n"].as_u64(), d.channel.as_str()), (seq, Some(n), channel), "{d:?}");
    }
    publish(&b, "room:z", 4).await;
    let live = on_c.expect_delivery().await;
    assert_eq!((live.seq, live.data["n"].as_u64()), (5, Some(4)), "then live traffic");
    quiet(&mut on_c).await;
    assert_eq!(metric(&c, "tandem_sessions_taken_over_total", &[("outcome", "resumed")]).await, 1.0);
}

#[tokio::test]
async fn a_backend_id_is_published_once_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let [a, b, c] = three_nodes(&cluster, "rc3", &[]).await;
    let mut on_c =
        Peer::connect(Transport::WebSocket, &c.dev("bob").channels(&["room:x"])).await.expect("bob on C");
    let order = json!({"channel": "room:x", "event": "order", "data": 1, "id": "order-1"});

    let (status, first) = a.api_post("/api/publish", order.clone()).await;
    assert_eq!((status, &first["id"], first.get("duplicate")), (200, &json!("order-1"), None), "{first}");
    let (status, again) = b.api_post("/api/publish", order).await;
    assert_eq!((status, &again["duplicate"]), (200, &json!(true)), "{again}");
    // A later publication is a fence: a duplicate would arrive before it.
    publish(&a, "room:x", 7).await;
    let d = on_c.expect_delivery().await;
    assert_eq!((d.id.as_str(), d.event.as_str()), ("order-1", "order"), "{d:?}");
    let fence = on_c.expect_delivery().await;
    assert_eq!((fence.event.as_str(), fence.data["n"].as_u64()), ("n", Some(7)), "no duplicate: {fence:?}");
    quiet(&mut on_c).await;
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[tokio::test]
async fn a_revocation_reaches_a_node_started_later_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let secret = toml_string(TEST_SECRET);
    let auth = [("auth", "secret", secret.as_str())];
    let [a, b, _c] = three_nodes(&cluster, "rc4", &auth).await;
    let t = tokens::sign(
        TEST_SECRET,
        &json!({"sub": "erin", "iat": now_s(), "exp": now_s() + 3600, "jti": "rc-1"}),
    );
    let opts = b.anonymous().token(t.as_str());
    assert_eq!(refusal(Transport::WebSocket, &opts).await, None, "valid before the revocation");

    let (status, answer) = a.api_post("/api/tokens/revoke", json!({"jti": "rc-1"})).await;
    assert_eq!(status, 200, "{answer}");
    let refused = eventually("B refuses the revoked token", WAIT, || async {
        refusal(Transport::WebSocket, &b.anonymous().token(t.as_str())).await
    })
    .await;
    assert_eq!(refused, (401, "revoked_token".into()));
    assert_eq!(refusal(Transport::Sse, &opts).await, Some((401, "revoked_token".into())));
    // A node that joins later reads the stored revocation back.
    let d = node(&cluster, "rc4", &auth).await;
    let opts = d.anonymous().token(t.as_str());
    assert_eq!(refusal(Transport::Sse, &opts).await, Some((401, "revoked_token".into())));
    assert_eq!(refusal(Transport::WebSocket, &opts).await, Some((401, "revoked_token".into())));
}

fn entry<'a>(body: &'a Value, player: &str) -> Option<&'a Value> {
    body["players"].as_array()?.iter().find(|e| e["player_id"] == player)
}

#[tokio::test]
async fn presence_across_nodes_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let presence =
        [("channels", "presence_events", "[\"room\"]"), ("channels", "presence_grace_seconds", "2")];
    let [a, b, c] = three_nodes(&cluster, "rc5", &presence).await;
    let _alice =
        Peer::connect(Transport::WebSocket, &a.dev("alice").channels(&["room:x"])).await.expect("alice on A");
    let _bob = Peer::connect(Transport::Sse, &b.dev("bob").channels(&["room:x"])).await.expect("bob on B");

    // Read through C, which holds neither.
    let body = eventually("alice and bob present, read through C", WAIT, || async {
        let (status, body) = c.api_get("/api/channels/room:x/presence").await;
        (status == 200
            && body["count"] == 2
            && entry(&body, "alice").is_some()
            && entry(&body, "bob").is_some())
        .then_some(body)
    })
    .await;
    assert_eq!(entry(&body, "alice").expect("alice")["transports"], json!(["websocket"]), "{body}");
    assert_eq!(entry(&body, "bob").expect("bob")["transports"], json!(["sse"]), "{body}");
}

#[tokio::test]
async fn the_rust_client_loses_nothing_when_its_node_is_killed_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let nodes = three_nodes(&cluster, "rc6", &[]).await;
    crate::resume_anywhere::a_killed_node_costs_the_rust_client_nothing(&nodes, "ivy").await;
}

#[tokio::test]
async fn a_master_lost_is_503_and_unhealthy_then_connections_resync_when_it_is_back() {
    let mut cluster = RedisCluster::start().await;
    let [a, b, _c] = three_nodes(&cluster, "rc7", &[]).await;
    let mut on_b =
        Peer::connect(Transport::WebSocket, &b.dev("gus").channels(&["room:y"])).await.expect("on B");
    publish(&a, "room:y", 0).await;
    assert_eq!(on_b.expect_delivery().await.data["n"].as_u64(), Some(0));

    cluster.master_mut(0).kill();
    // Every node loses a third of its shards: it refuses to publish rather
    // than lose publications silently, and says so in its health.
    let (status, body) = eventually("a publish refused with broker_unavailable", WAIT, || async {
        let (status, body) =
            a.api_post("/api/publish", json!({"channel": "room:y", "event": "n", "data": {"n": 1}})).await;
        (status != 200).then_some((status, body))
    })
    .await;
    assert_eq!((status, &body["error"]["code"]), (503, &json!("broker_unavailable")), "{body}");
    eventually("the broker unhealthy in /health/detailed", WAIT, || async {
        let doc: Value =
            a.http().get(format!("{}/health/detailed", a.base_url())).send().await.ok()?.json().await.ok()?;
        (doc["components"]["broker"]["status"] != "healthy").then_some(())
    })
    .await;

    cluster.master_mut(0).restart().await;
    // Back (its own slots, empty): B's session may have missed
    // publications, so it is told, then gets what follows.
    loop {
        match on_b.next_frame(WAIT).await.expect("a frame") {
            ServerFrame::Resync { reason } => {
                assert_eq!(reason, "broker_reconnected");
                break;
            }
            ServerFrame::Message(d) => panic!("a delivery before the resync: {d:?}"),
            _ => {}
        }
    }
    eventually("a publication accepted again", WAIT, || async {
        let (status, _) =
            a.api_post("/api/publish", json!({"channel": "room:y", "event": "n", "data": {"n": 2}})).await;
        (status == 200).then_some(())
    })
    .await;
    loop {
        match on_b.next_frame(WAIT).await.expect("a frame") {
            ServerFrame::Message(d) if d.data["n"] == 1 => {}
            ServerFrame::Message(d) => {
                assert_eq!(d.data["n"].as_u64(), Some(2), "{d:?}");
                break;
            }
            _ => {}
        }
    }
}
