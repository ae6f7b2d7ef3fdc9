//! The high-level Rust `Client` over WebSocket against the real binary:
//! delivery, typed calls and their error codes, the token callback on
//! every connect, and the server's "do not come back" answers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::json;
use tandem_client::{CallError, Client, ClientOptions, Mode, Reconnect, Status};
use tandem_e2e::client_stream::{assert_numbered, collect, spawn_direct};
use tandem_e2e::cut_proxy::CutProxy;
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::wait::eventually;
use tandem_e2e::{TestServer, Transport, WAIT};

fn quick() -> Reconnect {
    Reconnect {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_attempts: None,
    }
}

fn connected_over(t: Transport) -> impl Fn(&Status) -> bool {
    move |s| matches!(s, Status::Connected { transport } if *transport == BTreeSet::from([t]))
}

#[tokio::test]
async fn websocket_delivers_in_order_and_calls_resolve_with_the_server_reply() {
    let server = TestServer::start().await;
    let alice = Client::new(
        ClientOptions::new(server.base_url())
            .player_id("alice")
            .mode(Mode::WebSocket)
            .channels(&["room:tavern"]),
    )
    .expect("options");
    let mut events = alice.events();
    let mut tavern = alice.on("room:tavern");
    alice.connect();
    let status = alice.wait_status(WAIT, connected_over(Transport::WebSocket)).await;
    assert!(status.is_some(), "alice connected over WebSocket: {:?}", alice.status());

    // Typed calls: replies and the server's error codes.
    let rtt = alice.ping().await.expect("ping");
    assert!(rtt < WAIT, "round trip {rtt:?}");
    alice.subscribe("party:7").await.expect("subscribe");
    alice.unsubscribe("party:7").await.expect("unsubscribe");
    let forbidden = alice.publish("player:bob", "x", json!({})).await.expect_err("publishing into player:");
    assert_eq!(forbidden.code(), Some("forbidden"), "{forbidden}");
    let invalid = alice.subscribe("no-namespace").await.expect_err("a bad channel name");
    assert_eq!(invalid.code(), Some("invalid_channel"), "{invalid}");

    // A second player publishes into the room; alice's room handler and
    // her event stream get it once.
    let bob = Client::new(ClientOptions::new(server.base_url()).player_id("bob").mode(Mode::WebSocket))
        .expect("options");
    bob.connect();
    assert!(bob.wait_status(WAIT, Status::is_connected).await.is_some(), "bob connected");
    let receipt = bob.publish("room:tavern", "chat", json!({"text": "hi"})).await.expect("publish");
    assert_eq!(receipt.recipients, 1, "alice only: bob is not subscribed");
    let got = tokio::time::timeout(WAIT, tavern.recv()).await.expect("room message in time").expect("open");
    assert_eq!((got.event.as_str(), &got.data), ("chat", &json!({"text": "hi"})));
    assert_eq!(got.id, receipt.id);

    // Direct messages follow on the same stream, once each, in order.
    let publisher = spawn_direct(&server, "alice", 1, 30, Duration::ZERO);
    let (messages, others) = collect(&mut events, 31, WAIT).await;
    publisher.await.expect("publisher");
    assert!(others.is_empty(), "no resync: {others:?}");
    assert_eq!(messages[0].channel, "room:tavern");
    assert_numbered(&messages[1..], 1, 1);
    assert_eq!(alice.last_seq(), 31);

    alice.close().await;
    assert_eq!(alice.status(), Status::Disconnected { code: Some(1000), reason: "closed by client".into() });
    assert_eq!(alice.ping().await, Err(CallError::NotConnected), "no link after close");
    bob.close().await;
}

#[tokio::test]
async fn the_token_callback_runs_on_every_connect_and_a_refusal_stops_the_retries() {
    let server = TestServer::builder().set("auth", "secret", &toml_string(TEST_SECRET)).start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = Client::new(
        ClientOptions::new(proxy.base_url()).mode(Mode::WebSocket).reconnect(quick()).token(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(tokens::valid(TEST_SECRET, "tokened")) }
        }),
    )
    .expect("options");
    client.connect();
    for round in 1..=3 {
        assert!(client.wait_status(WAIT, Status::is_connected).await.is_some(), "round {round}");
        client.ping().await.expect("ping on the live link");
        if round < 3 {
            let mut statuses = client.status_stream();
            assert!(proxy.cut_all() >= 1, "a live connection to cut");
            // Wait for the loss to be noticed before waiting for the comeback.
            tokio::time::timeout(WAIT, async {
                while let Some(s) = statuses.recv().await {
                    if matches!(s, Status::Reconnecting { .. }) {
                        break;
                    }
                }
            })
            .await
            .expect("the cut was noticed");
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "one token per connect");
    client.close().await;

    // A token the server refuses: Disconnected with 401, no second try.
    let refused = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&refused);
    let client = Client::new(
        ClientOptions::new(server.base_url()).mode(Mode::WebSocket).reconnect(quick()).token(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(tokens::forged("mallory")) }
        }),
    )
    .expect("options");
    client.connect();
    let status = client.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await;
    assert_eq!(status, Some(Status::Disconnected { code: Some(401), reason: "invalid_token".into() }));
    client.close().await;
    assert_eq!(refused.load(Ordering::SeqCst), 1, "an auth refusal is not retried");
}

#[tokio::test]
async fn a_backend_disconnect_4001_stops_and_pending_calls_fail_on_a_drop() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let client = Client::new(
        ClientOptions::new(proxy.base_url())
            .player_id("kicked")
            .mode(Mode::WebSocket)
            .reconnect(quick())
            .call_timeout(Duration::from_secs(30)),
    )
    .expect("options");
    client.connect();
    assert!(client.wait_status(WAIT, Status::is_connected).await.is_some());

    // A call whose reply can never come (the path is frozen) fails with
    // ConnectionLost as soon as the link is cut, long before its timeout.
    proxy.freeze_all();
    let started = tokio::time::Instant::now();
    let swallowed = proxy.frozen_client_bytes();
    let (result, cut) = tokio::join!(client.ping(), async {
        eventually("the ping is in flight on the frozen path", WAIT, || async {
            (proxy.frozen_client_bytes() > swallowed).then_some(())
        })
        .await;
        proxy.cut_all()
    });
    assert!(cut >= 1);
    assert_eq!(result, Err(CallError::ConnectionLost));
    assert!(started.elapsed() < WAIT, "failed after {:?}", started.elapsed());
    assert!(client.wait_status(WAIT, Status::is_connected).await.is_some(), "back after the cut");

    let (status, body) = server.api_post("/api/players/kicked/disconnect", json!({})).await;
    assert!(status == 200 || status == 204, "disconnect: {status} {body}");
    let end = client.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await;
    assert!(
        matches!(&end, Some(Status::Disconnected { code: Some(4001), .. })),
        "4001 disconnected stops the client: {end:?}"
    );
}
