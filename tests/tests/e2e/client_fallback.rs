//! `Auto` behind proxies that break WebSocket: one that refuses upgrades,
//! one that completes the upgrade and then passes nothing. The Rust
//! `Client` falls back to SSE plus POST, delivers and calls there, and
//! switches back to WebSocket once a probe welcomes, without losing or
//! repeating a message.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tandem_client::{Client, ClientOptions, Mode, Reconnect, Status};
use tandem_e2e::client_stream::{assert_numbered, collect, spawn_direct};
use tandem_e2e::cut_proxy::{CutProxy, ProxyMode};
use tandem_e2e::wait::eventually;
use tandem_e2e::{TestServer, Transport, WAIT};

fn quick() -> Reconnect {
    Reconnect {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_attempts: None,
    }
}

fn over(t: Transport) -> impl Fn(&Status) -> bool {
    move |s| matches!(s, Status::Connected { transport } if *transport == BTreeSet::from([t]))
}

fn auto(url: &str, player: &str) -> ClientOptions {
    ClientOptions::new(url)
        .player_id(player)
        .mode(Mode::Auto)
        .reconnect(quick())
        .welcome_timeout(Duration::from_millis(500))
        .channels(&["room:hall"])
}

/// Falls back behind `mode`, then checks delivery and calls over SSE.
async fn falls_back(mode: ProxyMode, player: &str) {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    proxy.set_mode(mode);
    let c = Client::new(auto(&proxy.base_url(), player)).expect("options");
    let mut events = c.events();
    let mut statuses = c.status_stream();
    c.connect();
    let status = c.wait_status(WAIT, over(Transport::Sse)).await;
    assert!(status.is_some(), "{mode:?}: fell back to SSE: {:?}", c.status());
    assert_eq!(proxy.upgrades(), 2, "{mode:?}: exactly ws_failures_before_fallback upgrades were tried");
    let mut seen = Vec::new();
    while let Ok(s) = statuses.try_recv() {
        seen.push(s);
    }
    assert_eq!(seen.first(), Some(&Status::Connecting), "{seen:?}");
    assert!(matches!(seen.get(1), Some(Status::Reconnecting { attempt: 1, .. })), "{seen:?}");
    assert!(matches!(seen.get(2), Some(Status::Reconnecting { attempt: 2, .. })), "{seen:?}");
    assert_eq!(seen.get(3), Some(&Status::connected(Transport::Sse)), "{seen:?}");

    // Calls travel as POSTs; deliveries on the stream.
    c.ping().await.expect("ping over POST");
    let receipt = c.publish("room:hall", "chat", json!({"text": "over sse"})).await.expect("publish");
    // At least this client; a stalled upgrade still counts until the
    // server's heartbeat timeout drops it.
    assert!(receipt.recipients >= 1, "{receipt:?}");
    let err = c.publish("player:x", "e", json!({})).await.expect_err("forbidden");
    assert_eq!(err.code(), Some("forbidden"));
    spawn_direct(&server, player, 1, 10, Duration::ZERO).await.expect("publisher");
    let (messages, others) = collect(&mut events, 11, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(messages[0].data, json!({"text": "over sse"}));
    assert_numbered(&messages[1..], 1, 1);
    c.close().await;
}

#[tokio::test]
async fn a_proxy_refusing_upgrades_makes_auto_fall_back_to_sse() {
    falls_back(ProxyMode::RefuseUpgrades, "refused").await;
}

#[tokio::test]
async fn a_proxy_that_upgrades_then_stalls_makes_auto_fall_back_to_sse() {
    falls_back(ProxyMode::StallUpgrades, "stalled").await;
}

#[tokio::test]
async fn auto_probes_websocket_again_and_switches_back_without_loss() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    proxy.set_mode(ProxyMode::StallUpgrades);
    let c = Client::new(auto(&proxy.base_url(), "prober").ws_probe_interval(Duration::from_millis(700)))
        .expect("options");
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, over(Transport::Sse)).await.is_some(), "fell back: {:?}", c.status());
    // The proxy is fixed while messages stream; the next probe welcomes.
    let publisher = spawn_direct(&server, "prober", 1, 80, Duration::from_millis(20));
    let (first, _) = collect(&mut events, 10, WAIT).await;
    proxy.set_mode(ProxyMode::Pass);
    let back = c.wait_status(WAIT, over(Transport::WebSocket)).await;
    assert!(back.is_some(), "switched back to WebSocket: {:?}", c.status());
    let (rest, others) = collect(&mut events, 70, WAIT).await;
    publisher.await.expect("publisher");
    assert!(others.is_empty(), "a switch is no resync: {others:?}");
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_numbered(&all, 1, 0);
    c.ping().await.expect("ping over the WebSocket");
    let detail = server.api_get("/api/players/prober").await.1;
    assert!(detail.to_string().contains("websocket"), "{detail}");
    c.close().await;
}

/// Dual mode behind a proxy that refuses upgrades: the SSE link carries
/// the session alone (status names only SSE) while the WebSocket slot keeps
/// retrying; every message arrives once.
#[tokio::test]
async fn dual_mode_keeps_delivering_over_sse_when_websocket_is_refused() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    proxy.set_mode(ProxyMode::RefuseUpgrades);
    let c = Client::new(
        ClientOptions::new(proxy.base_url())
            .player_id("half-dual")
            .mode(Mode::Dual)
            .reconnect(quick())
            .welcome_timeout(Duration::from_millis(500)),
    )
    .expect("options");
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, over(Transport::Sse)).await.is_some(), "SSE alone: {:?}", c.status());
    spawn_direct(&server, "half-dual", 1, 20, Duration::ZERO).await.expect("publisher");
    let (messages, others) = collect(&mut events, 20, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    assert_numbered(&messages, 1, 0);
    eventually("the WebSocket slot keeps trying", WAIT, || async { (proxy.upgrades() >= 2).then_some(()) })
        .await;
    assert!(
        !c.status().is_connected() || c.status() == Status::connected(Transport::Sse),
        "{:?}",
        c.status()
    );
    // The WebSocket comes through once the proxy lets it: both links, one
    // session, still once each.
    proxy.set_mode(ProxyMode::Pass);
    let both =
        c.wait_status(WAIT, |s| matches!(s, Status::Connected { transport } if transport.len() == 2)).await;
    assert!(both.is_some(), "both links: {:?}", c.status());
    spawn_direct(&server, "half-dual", 21, 30, Duration::ZERO).await.expect("publisher");
    let (more, others) = collect(&mut events, 10, WAIT).await;
    assert!(others.is_empty(), "the WebSocket joined the same session: {others:?}");
    assert_numbered(&more, 21, 0);
    c.ping().await.expect("ping");
    assert!(events.try_recv().is_err(), "an extra event after the last seq");
    c.close().await;
}
