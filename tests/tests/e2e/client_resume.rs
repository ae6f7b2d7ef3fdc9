//! The Rust `Client` keeps one session across real cuts: a proxy in front of
//! the real binary closes or freezes every live connection mid-stream, and
//! the application still sees every `seq` once, in order. A server restart
//! (a new process) is a resync, announced, with the reload hook awaited
//! before live delivery goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tandem_client::{Client, ClientEvent, ClientOptions, Mode, Reconnect, ResyncReason, Status};
use tandem_e2e::client_stream::{assert_numbered, collect, spawn_direct};
use tandem_e2e::cut_proxy::CutProxy;
use tandem_e2e::{TestServer, TestServerBuilder, Transport, WAIT};
use tokio::time::Instant;

/// Heartbeats every second, so a frozen link is noticed within two.
fn builder() -> TestServerBuilder {
    TestServer::builder().set("transport", "heartbeat_interval_seconds", "1").set(
        "transport",
        "heartbeat_timeout_seconds",
        "2",
    )
}

fn quick() -> Reconnect {
    Reconnect {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_attempts: None,
    }
}

fn client(url: &str, player: &str, mode: Mode) -> Client {
    Client::new(ClientOptions::new(url).player_id(player).mode(mode).reconnect(quick())).expect("options")
}

/// Counts reconnects: transitions into `Connected` after the first.
async fn count_reconnects(mut statuses: tokio::sync::mpsc::Receiver<Status>) -> usize {
    let mut connected: usize = 0;
    let mut was_connected = false;
    while let Some(s) = statuses.recv().await {
        let now = s.is_connected();
        if now && !was_connected {
            connected += 1;
        }
        was_connected = now;
    }
    connected.saturating_sub(1)
}

/// Cuts every live connection `drops` times while `TOTAL` messages stream
/// in, each cut after another `every` arrived; checks every seq once.
async fn stream_through_cuts(mode: Mode, player: &str, total: u64, drops: u64, every: u64) {
    let server = builder().start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let c = client(&proxy.base_url(), player, mode);
    let mut events = c.events();
    // One channel handler, registered once: reconnects must not add more.
    let mut own = c.on(&format!("player:{player}"));
    let statuses = c.status_stream();
    c.connect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some(), "{mode:?}: first connect");
    let reconnects = tokio::spawn(count_reconnects(statuses));

    let publisher = spawn_direct(&server, player, 1, total, Duration::from_millis(5));
    let mut all = Vec::new();
    for k in 1..=drops {
        let (part, others) = collect(&mut events, every as usize, WAIT).await;
        assert!(others.is_empty(), "{mode:?}: no resync on a resumable cut: {others:?}");
        all.extend(part);
        let cut = proxy.cut_all();
        assert!(cut >= 1, "{mode:?}: drop {k} found a live connection");
        eprintln!("{mode:?}: drop {k} after seq {} cut {cut} connection(s)", all.len());
    }
    let rest = (total - drops * every) as usize;
    let (part, others) = collect(&mut events, rest, WAIT).await;
    assert!(others.is_empty(), "{mode:?}: {others:?}");
    all.extend(part);
    publisher.await.expect("publisher");
    assert_numbered(&all, 1, 0);
    assert_eq!(c.last_seq(), total);
    let mut by_handler = Vec::new();
    while let Ok(d) = own.try_recv() {
        by_handler.push(d);
    }
    assert_numbered(&by_handler, 1, 0);
    assert_eq!(by_handler.len() as u64, total, "{mode:?}: the channel handler saw each message once");
    // Nothing more arrives: no duplicate trails the stream.
    c.ping().await.expect("ping after the stream");
    assert!(events.try_recv().is_err(), "{mode:?}: an extra event after the last seq");
    c.close().await;
    drop(c);
    let reconnected = reconnects.await.expect("status counter");
    assert!(reconnected as u64 >= drops, "{mode:?}: reconnected {reconnected} times");
    eprintln!("{mode:?}: {total} messages, {drops} drops, {reconnected} reconnects");
}

#[tokio::test]
async fn websocket_cut_mid_stream_resumes_without_loss_or_duplicate() {
    stream_through_cuts(Mode::WebSocket, "cut-ws", 60, 1, 20).await;
}

#[tokio::test]
async fn sse_cut_mid_stream_resumes_without_loss_or_duplicate() {
    stream_through_cuts(Mode::Sse, "cut-sse", 60, 1, 20).await;
}

#[tokio::test]
async fn five_drops_in_a_row_each_resume_without_loss_or_duplicate() {
    stream_through_cuts(Mode::Auto, "five-drops", 100, 5, 15).await;
}

#[tokio::test]
async fn dual_mode_delivers_each_message_once_even_through_cuts() {
    let server = builder().start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let c = client(&proxy.base_url(), "dual", Mode::Dual);
    let mut events = c.events();
    c.connect();
    let both =
        c.wait_status(WAIT, |s| matches!(s, Status::Connected { transport } if transport.len() == 2)).await;
    assert!(both.is_some(), "both links up: {:?}", c.status());
    let publisher = spawn_direct(&server, "dual", 1, 40, Duration::from_millis(5));
    let (first, others) = collect(&mut events, 20, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    assert!(proxy.cut_all() >= 2, "both links cut");
    let (rest, others) = collect(&mut events, 20, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    publisher.await.expect("publisher");
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_numbered(&all, 1, 0);
    let detail = server.api_get("/api/players/dual").await.1;
    assert!(detail.to_string().contains("websocket"), "{detail}");
    c.ping().await.expect("ping");
    assert!(events.try_recv().is_err(), "an extra event after the last seq");
    c.close().await;
}

#[tokio::test]
async fn a_frozen_link_is_noticed_by_liveness_and_resumed() {
    let server = builder().start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let c = client(&proxy.base_url(), "frozen", Mode::WebSocket);
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some());
    let mut statuses = c.status_stream();
    spawn_direct(&server, "frozen", 1, 5, Duration::ZERO).await.expect("publisher");
    let (first, _) = collect(&mut events, 5, WAIT).await;
    proxy.freeze_all();
    let frozen_at = Instant::now();
    spawn_direct(&server, "frozen", 6, 10, Duration::ZERO).await.expect("publisher");
    // The link stays open but silent: 1 s heartbeats × 2.0 = dead after 2 s.
    let lost = tokio::time::timeout(WAIT, async {
        while let Some(s) = statuses.recv().await {
            if matches!(s, Status::Reconnecting { .. }) {
                return;
            }
        }
    })
    .await;
    let noticed = frozen_at.elapsed();
    assert!(lost.is_ok(), "a frozen link was never given up");
    assert!(noticed >= Duration::from_millis(1500), "gave up after {noticed:?}, before the liveness window");
    let (rest, others) = collect(&mut events, 5, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_numbered(&all, 1, 0);
    eprintln!("frozen link noticed after {noticed:?}");
    c.close().await;
}

#[tokio::test]
async fn a_server_restart_is_a_resync_with_the_reload_hook_before_live_delivery() {
    let first = builder().start().await;
    let proxy = CutProxy::start(first.addr()).await;
    let reloaded = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&reloaded);
    let c = Client::new(
        ClientOptions::new(proxy.base_url())
            .player_id("restarted")
            .mode(Mode::WebSocket)
            .reconnect(quick())
            .channels(&["room:lobby"])
            .on_resync(move |_| {
                let flag = Arc::clone(&flag);
                async move {
                    // Scenario, not synchronisation: a slow reload, which
                    // live delivery must wait for.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    flag.store(true, Ordering::SeqCst);
                }
            }),
    )
    .expect("options");
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some());
    spawn_direct(&first, "restarted", 1, 3, Duration::ZERO).await.expect("publisher");
    let (before, _) = collect(&mut events, 3, WAIT).await;
    assert_numbered(&before, 1, 0);
    let old_session = c.session_id().expect("a session");

    // A new process: the old session is gone with the old one.
    let second = builder().start().await;
    proxy.set_upstream(second.addr());
    drop(first);
    proxy.cut_all();

    let resync = tokio::time::timeout(WAIT, events.recv()).await.expect("an event in time").expect("open");
    let ClientEvent::Resync(resync) = resync else { panic!("expected the resync first, got {resync:?}") };
    assert_eq!(resync.reason, ResyncReason::NewSession { previous: old_session.clone() });
    assert_ne!(resync.session_id, old_session);
    assert_eq!(resync.last_seq, 0);
    // Published while the hook still runs: held until it is done.
    spawn_direct(&second, "restarted", 1, 3, Duration::ZERO).await.expect("publisher");
    let (after, others) = collect(&mut events, 3, WAIT).await;
    assert!(reloaded.load(Ordering::SeqCst), "live delivery resumed before the reload hook finished");
    assert!(others.is_empty(), "{others:?}");
    assert_numbered(&after, 1, 0);
    assert_eq!(c.status(), Status::connected(Transport::WebSocket));
    // The subscriptions came back with the new session.
    let detail = second.api_get("/api/players/restarted").await.1;
    assert!(detail.to_string().contains("room:lobby"), "subscriptions restored: {detail}");
    c.close().await;
}

/// `reconnect()` is the "network came back" check: a frozen link is
/// replaced within `call_timeout`, long before the 30 s liveness window of
/// the default 15 s heartbeats.
#[tokio::test]
async fn reconnect_checks_a_silent_link_now() {
    let server = TestServer::start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let c = Client::new(
        ClientOptions::new(proxy.base_url())
            .player_id("checked")
            .mode(Mode::WebSocket)
            .reconnect(quick())
            .call_timeout(Duration::from_millis(500)),
    )
    .expect("options");
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some());
    // A check of a healthy link keeps it.
    let accepted = proxy.accepted();
    c.reconnect();
    spawn_direct(&server, "checked", 1, 3, Duration::ZERO).await.expect("publisher");
    let (first, _) = collect(&mut events, 3, WAIT).await;
    c.ping().await.expect("ping");
    assert_eq!(proxy.accepted(), accepted, "a healthy link was replaced");

    let mut statuses = c.status_stream();
    proxy.freeze_all();
    let started = Instant::now();
    c.reconnect();
    let replaced = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(s) = statuses.recv().await {
            if matches!(s, Status::Reconnecting { .. }) {
                return;
            }
        }
    })
    .await;
    assert!(replaced.is_ok(), "the frozen link was not replaced after reconnect()");
    eprintln!("frozen link replaced {:?} after reconnect()", started.elapsed());
    spawn_direct(&server, "checked", 4, 6, Duration::ZERO).await.expect("publisher");
    let (rest, others) = collect(&mut events, 3, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_numbered(&all, 1, 0);
    c.close().await;
}

/// A gap older than the server's history: the resume comes back
/// `resync_required` on the same session; the application gets the resync
/// (never a silent skip) and live delivery goes on after the new `last_seq`.
#[tokio::test]
async fn a_gap_older_than_the_history_is_an_explicit_resync() {
    let server = builder().set("session", "history_size", "4").start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let c = client(&proxy.base_url(), "gapped", Mode::WebSocket);
    let mut events = c.events();
    c.connect();
    assert!(c.wait_status(WAIT, Status::is_connected).await.is_some());
    spawn_direct(&server, "gapped", 1, 2, Duration::ZERO).await.expect("publisher");
    let (first, _) = collect(&mut events, 2, WAIT).await;
    assert_numbered(&first, 1, 0);
    let session = c.session_id().expect("a session");

    // Ten messages go into a frozen link and die with it; only the last
    // four stay in the server's history.
    proxy.freeze_all();
    spawn_direct(&server, "gapped", 3, 12, Duration::ZERO).await.expect("publisher");
    proxy.cut_all();

    let event = tokio::time::timeout(WAIT, events.recv()).await.expect("an event in time").expect("open");
    let ClientEvent::Resync(resync) = event else { panic!("expected a resync, got {event:?}") };
    assert_eq!(resync.reason, ResyncReason::ResyncRequired);
    assert_eq!(resync.session_id, session, "the same session, its gap unfillable");
    assert_eq!(resync.last_seq, 12);
    assert_eq!(c.last_seq(), 12);
    spawn_direct(&server, "gapped", 13, 15, Duration::ZERO).await.expect("publisher");
    let (after, others) = collect(&mut events, 3, WAIT).await;
    assert!(others.is_empty(), "{others:?}");
    assert_numbered(&after, 13, 0);
    c.close().await;
}
