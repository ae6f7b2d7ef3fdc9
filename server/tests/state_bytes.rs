//! Bytes Tandem itself keeps per idle connection and per session, counted by
//! a counting global allocator around real `ConnectionManager::attach`
//! calls: deterministic, no clock, no sockets. The actix side (the HTTP/1
//! dispatcher, the boxed response body) is not in these numbers; `tandem-bench
//! idle` measures the whole process.
//!
//! One test function, so the measured steps run one after another. `cargo test -p tandem-server --test state_bytes
//! -- --nocapture` prints the breakdown.

use std::sync::Arc;
use std::time::Instant;

use tandem_monitoring::Monitoring;
use tandem_monitoring::source::EmptySource;
use tandem_protocol::Transport;
use tandem_server::broker::memory::MemoryBroker;
use tandem_server::config::Config;
use tandem_server::manager::{AttachRequest, Attached, ConnectionManager, Limits};
use tandem_server::session::connection::Next;
use tandem_server::session::identity::Identity;
use tandem_server::telemetry::Telemetry;

/// Connections per measured step: enough that the registries' tables
/// (power-of-two sized, resized as they fill) average out.
const N: usize = 4096;

/// Budgets, per connection, in bytes the allocator was asked for
/// (jemalloc rounds each block up to its size class). The numbers this
/// test printed when the budgets were set are in docs/benchmarks.md.
const SSE_FRESH_BUDGET: f64 = 1_050.0;
const WS_FRESH_BUDGET: f64 = 1_050.0;
const SECOND_CONNECTION_BUDGET: f64 = 260.0;
/// A shared channel holds the session in its subscriber map and the player
/// in its presence table (a slot and the player's session list).
const EXTRA_CHANNEL_BUDGET: f64 = 350.0;

fn manager() -> ConnectionManager {
    let config = Config::default();
    let monitoring = Monitoring::new(&config.monitoring, "test", Arc::new(EmptySource), None);
    ConnectionManager::new(Limits::from_config(&config), Telemetry::new(monitoring), Arc::new(MemoryBroker))
}

fn who(player: &str) -> Identity {
    Identity { player_id: player.to_owned(), channels: None, publish: None, dev_mode: true }
}

fn request(transport: Transport, session_id: Option<String>, channels: Vec<String>) -> AttachRequest {
    AttachRequest {
        transport,
        session_id,
        last_seq: None,
        channels,
        granted: Vec::new(),
        started: Instant::now(),
        remote_connections: 0,
        adopt: None,
        positions: Vec::new(),
    }
}

/// What the transport's writer does at once (sends the welcome), then what
/// the next heartbeat sweep does to the idle connection (releases its
/// queue's buffer).
fn drain(att: &Attached) {
    while let Next::Send(_) = att.conn.next() {}
    att.conn.release_idle_queue();
}

#[derive(Debug, Clone, Copy)]
struct Cost {
    bytes: f64,
    blocks: f64,
}

/// Live bytes and blocks per item that `step` leaves behind, over `n`
/// items. The caller's `kept` vector is sized beforehand so it is not
/// counted.
fn per_item(n: usize, mut step: impl FnMut(usize)) -> Cost {
    // Counts this thread's allocations: `step` runs here, synchronously.
    let info = allocation_counter::measure(|| {
        for i in 0..n {
            step(i);
        }
    });
    Cost { bytes: info.bytes_current as f64 / n as f64, blocks: info.count_current as f64 / n as f64 }
}

fn players(prefix: &str, n: usize) -> Vec<Identity> {
    (0..n).map(|i| who(&format!("{prefix}{i:05}"))).collect()
}

fn show(label: &str, c: Cost) {
    println!("{label:<52} {:>8.1} bytes {:>6.2} blocks", c.bytes, c.blocks);
}

/// A manager after the same warm-up: lazy statics, the monitoring
/// bundle's first histograms, the registries' first tables.
fn warmed() -> (ConnectionManager, Vec<Attached>) {
    let m = manager();
    let warm = players("x", 64);
    let kept = warm
        .iter()
        .enumerate()
        .map(|(i, w)| {
            // Both transports: each has its own latency histograms.
            let t = if i % 2 == 0 { Transport::Sse } else { Transport::WebSocket };
            let att = m.attach(w, request(t, None, vec!["room:warm".into()])).expect("attach");
            drain(&att);
            att
        })
        .collect();
    (m, kept)
}

/// `N` connections, each on a new session of its own player, on a fresh
/// manager: each step sees the same registry growth, so steps compare.
fn fresh_sessions(transport: Transport, channels: &[&str]) -> Cost {
    let (m, _warm) = warmed();
    let who = players("p", N);
    let mut kept = Vec::with_capacity(N);
    per_item(N, |i| {
        let channels = channels.iter().map(|c| (*c).to_owned()).collect();
        let att = m.attach(&who[i], request(transport, None, channels)).expect("attach");
        drain(&att);
        kept.push(att);
    })
}

/// A WebSocket joining each of `N` SSE sessions: the connection alone.
fn second_connections() -> Cost {
    let (m, _warm) = warmed();
    let who = players("p", N);
    let first: Vec<Attached> = who
        .iter()
        .map(|w| {
            let att = m.attach(w, request(Transport::Sse, None, Vec::new())).expect("attach");
            drain(&att);
            att
        })
        .collect();
    let ids: Vec<String> = first.iter().map(|a| a.session.id.to_string()).collect();
    let mut kept = Vec::with_capacity(N);
    let cost = per_item(N, |i| {
        let att = m
            .attach(&who[i], request(Transport::WebSocket, Some(ids[i].clone()), Vec::new()))
            .expect("attach");
        drain(&att);
        kept.push(att);
    });
    assert_eq!(m.total_connections(), 64 + 2 * N, "every attach counted, none refused");
    cost
}

#[test]
fn idle_connections_and_sessions_stay_within_their_byte_budgets() {
    let sse_fresh = fresh_sessions(Transport::Sse, &[]);
    let ws_fresh = fresh_sessions(Transport::WebSocket, &[]);
    let second_conn = second_connections();
    let sse_channel = fresh_sessions(Transport::Sse, &["room:lobby"]);
    let extra_channel =
        Cost { bytes: sse_channel.bytes - sse_fresh.bytes, blocks: sse_channel.blocks - sse_fresh.blocks };
    let session_only =
        Cost { bytes: sse_fresh.bytes - second_conn.bytes, blocks: sse_fresh.blocks - second_conn.blocks };

    println!("{N} items per step; bytes as asked of the allocator");
    show("SSE connection, fresh session (personal channel)", sse_fresh);
    show("WebSocket connection, fresh session", ws_fresh);
    show("second connection on an existing session", second_conn);
    show("  so the session, player and personal channel", session_only);
    show("one more shared channel, per session", extra_channel);
    println!(
        "sizes: Connection {} Session {} Outbound {}",
        size_of::<tandem_server::session::connection::Connection>(),
        size_of::<tandem_server::manager::Session>(),
        size_of::<tandem_server::session::connection::Outbound>(),
    );

    assert!(sse_fresh.bytes <= SSE_FRESH_BUDGET, "SSE attach: {sse_fresh:?} > {SSE_FRESH_BUDGET}");
    assert!(ws_fresh.bytes <= WS_FRESH_BUDGET, "WebSocket attach: {ws_fresh:?} > {WS_FRESH_BUDGET}");
    assert!(
        second_conn.bytes <= SECOND_CONNECTION_BUDGET,
        "second connection: {second_conn:?} > {SECOND_CONNECTION_BUDGET}"
    );
    assert!(
        extra_channel.bytes <= EXTRA_CHANNEL_BUDGET,
        "extra channel: {extra_channel:?} > {EXTRA_CHANNEL_BUDGET}"
    );
}
