//! Broker events: what crosses between nodes, and the link to Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::*;

/// The broker refused a publication (it is down or its queue is full):
/// it was delivered nowhere and the publisher is told so.
pub fn broker_refused(source: &'static str, error: &dyn std::fmt::Display) {
    counter!(BROKER_PUBLISHES_TOTAL, "outcome" => "refused").increment(1);
    warn!(source, error = %error, "Publication refused: broker unavailable");
}

/// A backend publication was delivered here but not confirmed by the
/// broker in time; the backend gets 503 `broker_unavailable`.
pub fn broker_unconfirmed(id: &str, error: &dyn std::fmt::Display) {
    warn!(id, error = %error, "Publication not confirmed by the broker");
}

/// The broker's publisher sent one publication to the other nodes (or
/// failed to).
pub fn broker_published(error: Option<&str>) {
    match error {
        None => counter!(BROKER_PUBLISHES_TOTAL, "outcome" => "ok").increment(1),
        Some(error) => {
            counter!(BROKER_PUBLISHES_TOTAL, "outcome" => "failed").increment(1);
            warn!(error, "Broker publish failed");
        }
    }
}

/// A publication from another node arrived; `lag` from its acceptance.
pub fn broker_received(lag: Duration) {
    counter!(BROKER_RECEIVES_TOTAL).increment(1);
    histogram!(BROKER_LAG_SECONDS).record(lag.as_secs_f64());
}

/// A message read from the broker was dropped: too large, not signed with
/// `broker.cluster_key`, or not what a node writes. Logged at most once a
/// second (with how many were dropped since), since whoever can write to
/// the Redis channel could otherwise flood the log.
pub fn broker_message_refused(reason: &'static str, bytes: usize) {
    static LAST_LOG_S: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    counter!(BROKER_MESSAGES_REFUSED_TOTAL, "reason" => reason).increment(1);
    let dropped = SINCE.fetch_add(1, Ordering::Relaxed) + 1;
    let now_s = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST_LOG_S.swap(now_s, Ordering::Relaxed) != now_s {
        SINCE.store(0, Ordering::Relaxed);
        warn!(reason, bytes, dropped, "Broker message refused");
    }
}

/// The broker link is up (`reconnect`: after a loss).
pub fn broker_connected(kind: &'static str, node_id: &str, reconnect: bool) {
    if reconnect {
        counter!(BROKER_RECONNECTS_TOTAL).increment(1);
    }
    info!(broker = kind, node_id, reconnect, "Broker connected");
}

/// The broker link is down; it is retried after `retry_in`.
pub fn broker_lost(tm: &Telemetry, kind: &'static str, error: &str, retry_in: Duration) {
    warn!(broker = kind, error, retry_in_ms = retry_in.as_millis() as u64, "Broker link lost");
    tm.track(
        ErrorEvent::new(ErrorType::SystemError, Severity::High, format!("Broker link lost: {error}"))
            .details(serde_json::json!({ "broker": kind, "retry_in_ms": retry_in.as_millis() as u64 })),
    );
}

/// Local connections were told to resynchronise after a broker loss.
pub fn resync_sent(reason: &'static str, connections: usize) {
    counter!(RESYNC_NOTICES_TOTAL).increment(connections as u64);
    warn!(reason, connections, "Connections told to resync: publications may have been missed");
}

/// A record another node wrote in the broker (`document`: `node` or
/// `player`) was too large or not the expected shape: it is skipped, as if
/// that node held nothing.
pub fn broker_document_refused(document: &'static str, node_id: &str, error: &dyn std::fmt::Display) {
    warn!(document, node_id, error = %error, "Broker document refused");
}

/// A node stopped beating: this node took over its sessions, whose
/// `player_left` follows once their resume window has passed.
pub fn node_reaped(node_id: &str, sessions: usize) {
    warn!(node_id, sessions, "Cluster node lost: its sessions will end after the resume window");
}
