//! The Rust `Client`'s status: transitions in order through a loss and a
//! close, and a backoff that grows and stays under its cap while the server
//! is unreachable (tiny delays, so no long waits).

use std::collections::BTreeSet;
use std::time::Duration;

use tandem_client::{Client, ClientOptions, Mode, Reconnect, Status};
use tandem_e2e::cut_proxy::{CutProxy, ProxyMode};
use tandem_e2e::{TestServer, Transport, WAIT};
use tokio::sync::mpsc;
use tokio::time::timeout;

async fn next(statuses: &mut mpsc::Receiver<Status>) -> Status {
    timeout(WAIT, statuses.recv()).await.expect("a status in time").expect("the stream is open")
}

#[tokio::test]
async fn statuses_go_connecting_connected_reconnecting_connected_disconnected() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let base = Duration::from_millis(20);
    let c =
        Client::new(
            ClientOptions::new(proxy.base_url()).player_id("status").mode(Mode::WebSocket).reconnect(
                Reconnect { base_delay: base, max_delay: Duration::from_millis(100), max_attempts: None },
            ),
        )
        .expect("options");
    let mut statuses = c.status_stream();
    assert_eq!(next(&mut statuses).await, Status::Connecting, "the status before connect");
    c.connect();
    assert_eq!(next(&mut statuses).await, Status::connected(Transport::WebSocket));

    // Unreachable for three attempts, then back.
    proxy.set_mode(ProxyMode::RefuseAll);
    proxy.cut_all();
    for attempt in 1..=3 {
        match next(&mut statuses).await {
            Status::Reconnecting { attempt: a, delay } => {
                assert_eq!(a, attempt);
                assert!(delay <= base * (1 << (attempt - 1)), "attempt {attempt}: {delay:?}");
            }
            other => panic!("attempt {attempt}: expected Reconnecting, got {other:?}"),
        }
    }
    proxy.set_mode(ProxyMode::Pass);
    loop {
        match next(&mut statuses).await {
            Status::Reconnecting { .. } => {}
            Status::Connected { transport } => {
                assert_eq!(transport, BTreeSet::from([Transport::WebSocket]));
                break;
            }
            other => panic!("expected Reconnecting or Connected, got {other:?}"),
        }
    }
    c.close().await;
    assert_eq!(
        next(&mut statuses).await,
        Status::Disconnected { code: Some(1000), reason: "closed by client".into() }
    );
    assert_eq!(c.status(), Status::Disconnected { code: Some(1000), reason: "closed by client".into() });
}

#[tokio::test]
async fn backoff_grows_and_is_capped_and_max_attempts_gives_up() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    proxy.set_mode(ProxyMode::RefuseAll);
    let base = Duration::from_millis(2);
    let cap = Duration::from_millis(40);
    const ATTEMPTS: u32 = 16;
    let c = Client::new(
        ClientOptions::new(proxy.base_url()).player_id("backoff").mode(Mode::Sse).reconnect(Reconnect {
            base_delay: base,
            max_delay: cap,
            max_attempts: Some(ATTEMPTS),
        }),
    )
    .expect("options");
    let mut statuses = c.status_stream();
    c.connect();
    let mut delays = Vec::new();
    let end = loop {
        match next(&mut statuses).await {
            Status::Connecting => {}
            Status::Reconnecting { attempt, delay } => {
                assert_eq!(attempt as usize, delays.len() + 1, "attempts count up by one");
                let ceiling = (base * (1 << (attempt - 1).min(20))).min(cap);
                assert!(delay <= ceiling, "attempt {attempt}: {delay:?} over its ceiling {ceiling:?}");
                delays.push(delay);
            }
            other => break other,
        }
    };
    assert_eq!(delays.len(), ATTEMPTS as usize, "{delays:?}");
    assert_eq!(
        end,
        Status::Disconnected { code: None, reason: format!("gave up after {ATTEMPTS} failed attempts") }
    );
    // Growth: the first retry waits at most `base`; past the cap's attempt
    // (7) the spread reaches up to the cap, and ten draws all under the
    // base would be a one-in-a-trillion jitter (1/20 each).
    assert!(delays[0] <= base);
    let late_max = delays[6..].iter().max().copied().unwrap_or_default();
    assert!(late_max > base, "no growth: {delays:?}");
    assert!(delays.iter().all(|d| *d <= cap), "capped: {delays:?}");
    eprintln!("backoff delays: {delays:?}");
    c.close().await;
}

/// SIGTERM: the server's `shutdown` frame (WebSocket) or `shutdown` event
/// and `retry:` (SSE) say to come back after at least a second; the first
/// retry waits at least that long instead of the tiny backoff.
#[tokio::test]
async fn a_server_shutdown_hint_sets_the_first_retry_delay() {
    let server = TestServer::builder().set("server", "shutdown_grace_seconds", "2").start().await;
    let tiny = Reconnect {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        max_attempts: None,
    };
    let mut clients = Vec::new();
    for (mode, player) in [(Mode::WebSocket, "hint-ws"), (Mode::Sse, "hint-sse")] {
        let c =
            Client::new(ClientOptions::new(server.base_url()).player_id(player).mode(mode).reconnect(tiny))
                .expect("options");
        c.connect();
        assert!(c.wait_status(WAIT, Status::is_connected).await.is_some(), "{mode:?}");
        let statuses = c.status_stream();
        clients.push((mode, c, statuses));
    }
    server.send_signal(tandem_e2e::Signal::Term);
    for (mode, c, mut statuses) in clients {
        let first_retry = loop {
            match next(&mut statuses).await {
                Status::Reconnecting { attempt, delay } => break (attempt, delay),
                Status::Connected { .. } => {}
                other => panic!("{mode:?}: {other:?}"),
            }
        };
        assert_eq!(first_retry.0, 1, "{mode:?}");
        assert!(
            first_retry.1 >= Duration::from_millis(1000),
            "{mode:?}: the hint was ignored: {first_retry:?}"
        );
        eprintln!("{mode:?}: first retry after {:?}", first_retry.1);
        c.close().await;
    }
}

/// Out of attempts is `Disconnected`; `reconnect()` starts over.
#[tokio::test]
async fn reconnect_starts_over_after_giving_up() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    proxy.set_mode(ProxyMode::RefuseAll);
    let c = Client::new(
        ClientOptions::new(proxy.base_url()).player_id("again").mode(Mode::WebSocket).reconnect(Reconnect {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
            max_attempts: Some(2),
        }),
    )
    .expect("options");
    c.connect();
    let gave_up = c.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await;
    assert_eq!(
        gave_up,
        Some(Status::Disconnected { code: None, reason: "gave up after 2 failed attempts".into() })
    );
    proxy.set_mode(ProxyMode::Pass);
    c.reconnect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some(), "started over: {:?}", c.status());
    c.ping().await.expect("ping");
    c.close().await;
    c.reconnect();
    assert_eq!(c.status(), Status::Disconnected { code: Some(1000), reason: "closed by client".into() });
    assert_eq!(c.ping().await, Err(tandem_client::CallError::NotConnected), "closed stays closed");
}
