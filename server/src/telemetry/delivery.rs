//! Delivery events: publications, deliveries and their failures, sessions,
//! subscriptions and player modes.

use super::*;

/// A frame was handed to a live connection's writer.
pub fn message_delivered(tm: &Telemetry, ids: Ids<'_>, seq: u64, delivery_time: Duration) {
    tm.delivered[idx(ids.transport)].increment(1);
    tm.monitoring.performance.record_delivery(delivery_time);
    debug!(
        player_id = ids.player_id,
        session_id = ids.session_id,
        connection_id = ids.connection_id,
        connection_type = label(ids.transport),
        seq,
        delivery_time_ms = ms(delivery_time),
        "Message delivered"
    );
}

/// A delivery could not be handed to a connection.
pub fn delivery_failed(tm: &Telemetry, ids: Ids<'_>, reason: &'static str) {
    counter!(
        names::MESSAGE_DELIVERY_FAILURES_TOTAL,
        "transport" => label(ids.transport),
        "reason" => reason
    )
    .increment(1);
    tm.monitoring.performance.record_delivery_failure();
    tm.track(ids.error(
        ErrorType::MessageDeliveryError,
        Severity::Medium,
        format!("Message delivery failed: {reason}"),
    ));
}

pub fn session_created(session_id: &str, player_id: &str) {
    gauge!(names::SESSIONS_ACTIVE).increment(1.0);
    debug!(session_id, player_id, "Session created");
}

pub fn session_ended(session_id: &str, player_id: &str, expired: bool) {
    gauge!(names::SESSIONS_ACTIVE).decrement(1.0);
    if expired {
        counter!(SESSIONS_EXPIRED_TOTAL).increment(1);
        info!(session_id, player_id, "Session expired");
    } else {
        info!(session_id, player_id, "Session ended");
    }
}

pub fn subscriptions_changed(delta: f64) {
    gauge!(names::SUBSCRIPTIONS_ACTIVE).increment(delta);
}

/// Players by connection mode: a player moves between `websocket_only`,
/// `sse_only` and `dual` as connections come and go.
pub fn player_mode_changed(from: Option<&'static str>, to: Option<&'static str>) {
    if from == to {
        return;
    }
    if let Some(m) = from {
        gauge!(names::PLAYERS_ACTIVE, "mode" => m).decrement(1.0);
    }
    if let Some(m) = to {
        gauge!(names::PLAYERS_ACTIVE, "mode" => m).increment(1.0);
    }
}

pub fn published(source: &'static str, channel: &str, recipients: usize, connections: usize) {
    counter!(PUBLICATIONS_TOTAL, "source" => source).increment(1);
    debug!(source, channel, recipients, delivered_connections = connections, "Publication accepted");
}
