//! What Redis can do to a cluster besides dying: stall (SIGSTOP), never be
//! reached, or carry messages another client wrote on the nodes' channel.
//! Each is seen by operators, refused to publishers, and never reaches a
//! client.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::ServerFrame;
use tandem_e2e::metrics::{metric, wait_metric_at_least};
use tandem_e2e::wait::eventually;
use tandem_e2e::{Peer, RedisServer, TestServer, Transport, WAIT};

const PUBLISH_TIMEOUT_MS: u64 = 500;

async fn node(redis: &RedisServer, prefix: &str) -> TestServer {
    TestServer::builder()
        .redis(redis)
        .set("broker", "key_prefix", &format!("\"{prefix}\""))
        .set("broker", "heartbeat_seconds", "1")
        .set("broker", "publish_timeout_ms", &PUBLISH_TIMEOUT_MS.to_string())
        .set("broker", "command_timeout_ms", "300")
        .start()
        .await
}

/// Both nodes see each other (a publication from one reaches the other).
async fn linked(a: &TestServer, on_b: &mut Peer) {
    let until = tokio::time::Instant::now() + WAIT;
    // Bounded: one try per 300 ms until the deadline.
    while tokio::time::Instant::now() < until {
        let (status, _) =
            a.api_post("/api/publish", json!({"channel": "room:x", "event": "probe", "data": 0})).await;
        if status == 200
            && matches!(on_b.next_frame(Duration::from_millis(300)).await, Ok(ServerFrame::Message(_)))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("A's publications do not reach B within {WAIT:?}");
}

/// Everything that arrives within `listen` (nothing is expected).
async fn arrivals(peer: &mut Peer, listen: Duration) -> Vec<ServerFrame> {
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + listen;
    // Bounded: one frame per turn until the window closes.
    for _ in 0..10_000 {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match peer.next_frame(left).await {
            Ok(f) => got.push(f),
            Err(_) => break,
        }
    }
    got
}

async fn detailed(server: &TestServer) -> Option<Value> {
    server.http().get(format!("{}/health/detailed", server.base_url())).send().await.ok()?.json().await.ok()
}

#[tokio::test]
async fn a_refused_publication_is_never_delivered_and_health_sees_the_stall() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "stall").await, node(&redis, "stall").await);
    let mut on_b =
        Peer::connect(Transport::WebSocket, &b.dev("bob").channels(&["room:x"])).await.expect("bob on B");
    linked(&a, &mut on_b).await;

    redis.pause();
    let mut refused = 0;
    for i in 0..6 {
        let (status, body) =
            a.api_post("/api/publish", json!({"channel": "room:x", "event": "stalled", "data": i})).await;
        assert_eq!((status, &body["error"]["code"]), (503, &json!("broker_unavailable")), "{body}");
        refused += 1;
    }
    // Health says what publishers see: the link is up, Redis does not answer.
    let doc = eventually("broker unresponsive in /health/detailed", WAIT, || async {
        let doc = detailed(&a).await?;
        (doc["components"]["broker"]["status"] == "unhealthy").then_some(doc)
    })
    .await;
    let broker = &doc["components"]["broker"];
    assert_eq!(broker["connection"], "unresponsive", "{doc}");
    assert!(broker["round_trip_ms"].is_null(), "no round trip to show: {doc}");
    // Past every refused publication's deadline, Redis wakes up.
    tokio::time::sleep(Duration::from_millis(PUBLISH_TIMEOUT_MS + 500)).await;
    redis.resume();

    // What Redis runs late it drops: B never hears of the refused ones.
    let late: Vec<_> = arrivals(&mut on_b, Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|f| matches!(f, ServerFrame::Message(d) if d.event == "stalled"))
        .collect();
    assert!(late.is_empty(), "{refused} refused publications, delivered later on B: {late:?}");
    // And the cluster works again.
    let doc = eventually("broker healthy again", WAIT, || async {
        let doc = detailed(&a).await?;
        (doc["components"]["broker"]["status"] == "healthy").then_some(doc)
    })
    .await;
    assert!(doc["components"]["broker"]["round_trip_ms"].is_number(), "{doc}");
    linked(&a, &mut on_b).await;
}

#[tokio::test]
async fn a_node_that_never_reached_redis_is_not_ready() {
    // A port nobody listens on: the broker never connects.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    let server = TestServer::builder()
        .set("broker", "kind", "\"redis\"")
        .set("broker", "url", &format!("\"redis://127.0.0.1:{port}\""))
        .set("broker", "cluster_key", &format!("\"{}\"", tandem_e2e::redis::CLUSTER_KEY))
        .set("broker", "command_timeout_ms", "200")
        .start()
        .await;
    let (status, body) = server.api_get("/health/ready").await;
    assert_eq!(status, 503, "out of the load balancer's rotation: {body}");
    assert_eq!(body, json!({"status": "connecting", "components": ["broker"]}));
    let (status, body) = server.api_post("/api/publish", json!({"channel": "room:x", "event": "e"})).await;
    assert_eq!((status, &body["error"]["code"]), (503, &json!("broker_unavailable")), "{body}");
    // Live all the same: the process runs, it is not to be restarted.
    let (status, _) = server.api_get("/health/live").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn whatever_another_redis_client_publishes_is_refused_and_counted() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "inj").await, node(&redis, "inj").await);
    let mut on_b = Peer::connect(Transport::Sse, &b.dev("bob").channels(&["room:x", "player:bob"]))
        .await
        .expect("bob on B");
    linked(&a, &mut on_b).await;

    let tail = r#""id":"m_forged","channel":"room:x","event":"chat","data":"forged","ts":1}"#;
    let big =
        format!("T2\n{}\nn_x\nb\n1\nm_big\nroom:x\n\"data\":\"{}\"}}", "0".repeat(64), "x".repeat(2 << 20));
    let forged: [(&str, Vec<u8>); 6] = [
        ("unsigned", b"not json at all".to_vec()),
        ("unsigned", format!("T1\nn_x\nc\n1\nm_forged\nroom:x\n{tail}").into_bytes()),
        ("unsigned", format!("T2\n{}\nn_x\nc\n1\nm_forged\nroom:x\n{tail}", "0".repeat(64)).into_bytes()),
        ("unsigned", format!("T2\n{}\nn_x\nd\n1\n-\nbob\n", "ab".repeat(32)).into_bytes()),
        ("unsigned", b"T2\n\xff\xfe\nn_x\nc\n1\n".to_vec()),
        ("too_large", big.into_bytes()),
    ];
    for (_, payload) in &forged {
        let answer = redis.command(&[b"PUBLISH", b"inj:pub", payload]);
        assert_eq!(answer, ":2", "both nodes subscribe: {answer}");
    }
    for reason in ["unsigned", "too_large"] {
        let want = forged.iter().filter(|(r, _)| *r == reason).count() as f64;
        let labels = [("reason", reason)];
        wait_metric_at_least(&b, "tandem_broker_messages_refused_total", &labels, want, WAIT).await;
    }
    let got = arrivals(&mut on_b, Duration::from_secs(1)).await;
    assert!(got.is_empty(), "nothing injected reaches a client: {got:?}");
    assert_eq!(metric(&b, "tandem_broker_messages_refused_total", &[("reason", "malformed")]).await, 0.0);
    let logged = b.wait_for_log(|l| l["message"] == "Broker message refused", WAIT).await;
    assert!(logged["reason"].is_string() && logged["bytes"].is_u64(), "{logged}");
    // Still one cluster: a node's own messages pass.
    linked(&a, &mut on_b).await;
}

/// The `id` of each delivery of `event` that arrives within `listen`.
async fn ids_of(peer: &mut Peer, event: &str, listen: Duration) -> Vec<String> {
    arrivals(peer, listen)
        .await
        .into_iter()
        .filter_map(|f| match f {
            ServerFrame::Message(d) if d.event == event => Some(d.id),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_publication_with_the_backends_id_is_delivered_once_per_node_however_often_it_is_sent() {
    let redis = RedisServer::start().await;
    let (a, b) = (node(&redis, "ids").await, node(&redis, "ids").await);
    let mut on_a =
        Peer::connect(Transport::WebSocket, &a.dev("alice").channels(&["room:x"])).await.expect("alice on A");
    let mut on_b =
        Peer::connect(Transport::Sse, &b.dev("bob").channels(&["room:x"])).await.expect("bob on B");
    linked(&a, &mut on_b).await;
    let order = |id: &str| json!({"channel": "room:x", "event": "order", "data": 1, "id": id});
    let history = tandem_server::broker::redis::Keys::new("ids", false).history("room:x");
    let history_len = || redis.command(&[b"XLEN", history.as_bytes()]);
    let probes = history_len();

    // Sent three times, through both nodes: one delivery on each.
    let (status, first) = a.api_post("/api/publish", order("order-1")).await;
    assert_eq!((status, &first["id"], first.get("duplicate")), (200, &json!("order-1"), None), "{first}");
    for (node, name) in [(&a, "A"), (&b, "B")] {
        let (status, again) = node.api_post("/api/publish", order("order-1")).await;
        assert_eq!(
            (status, &again["duplicate"], &again["recipients"]),
            (200, &json!(true), &json!(0)),
            "{name}: {again}"
        );
    }
    assert_eq!(ids_of(&mut on_a, "order", Duration::from_secs(1)).await, ["order-1"]);
    assert_eq!(ids_of(&mut on_b, "order", Duration::from_secs(1)).await, ["order-1"]);
    // Once in the channel's history too: a resume elsewhere replays it once.
    let once_more = format!(":{}", probes.trim_start_matches(':').parse::<u64>().expect("XLEN") + 1);
    assert_eq!(history_len(), once_more);

    // Refused while Redis stalls (A's own subscriber already has it), sent
    // again once Redis is back: B gets it once, A not twice.
    redis.pause();
    let (status, body) = a.api_post("/api/publish", order("order-2")).await;
    assert_eq!(status, 503, "{body}");
    tokio::time::sleep(Duration::from_millis(PUBLISH_TIMEOUT_MS + 500)).await;
    redis.resume();
    let retried = eventually("the retry accepted once Redis answers", WAIT, || async {
        let (status, body) = a.api_post("/api/publish", order("order-2")).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(retried["duplicate"], true, "A delivered it before the 503: {retried}");
    assert_eq!(
        ids_of(&mut on_b, "order", Duration::from_secs(2)).await,
        ["order-2"],
        "B: once, from the retry"
    );
    assert_eq!(
        ids_of(&mut on_a, "order", Duration::from_secs(1)).await,
        ["order-2"],
        "A: once, before the 503"
    );

    // One rule for ids.
    let (status, body) = a.api_post("/api/publish", order("no spaces")).await;
    assert_eq!((status, &body["error"]["code"]), (400, &json!("invalid_message")), "{body}");
}
