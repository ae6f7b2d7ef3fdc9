//! Connection events: attempts, connects, refusals, auth failures, closes,
//! heartbeats, what clients send and the errors they get.

use super::*;

pub fn connection_attempt(t: Transport, player_id: &str, session_id: Option<&str>, existing: usize) {
    match t {
        Transport::WebSocket => info!(
            player_id,
            session_id,
            connection_type = "websocket",
            existing_connections = existing,
            "WebSocket connection attempt"
        ),
        Transport::Sse => info!(
            player_id,
            session_id,
            connection_type = "sse",
            existing_connections = existing,
            "SSE connection attempt"
        ),
    }
}

/// What a successful attach reports.
#[derive(Debug)]
pub struct Connected<'a> {
    pub ids: Ids<'a>,
    pub establishment: Duration,
    pub is_dual_connection: bool,
    pub existing_websocket_connections: usize,
    pub existing_sse_connections: usize,
    pub total_connections: usize,
    pub resumed: bool,
    pub resync_required: bool,
    pub replayed: usize,
}

impl Connected<'_> {
    pub fn emit(self, tm: &Telemetry) {
        let i = self.ids;
        let establishment_time_ms = ms(self.establishment);
        // tracing wants a literal message: one macro, two call sites.
        macro_rules! line {
            ($msg:literal) => {
                info!(
                    player_id = i.player_id,
                    session_id = i.session_id,
                    connection_id = i.connection_id,
                    connection_type = label(i.transport),
                    establishment_time_ms,
                    existing_websocket_connections = self.existing_websocket_connections,
                    existing_sse_connections = self.existing_sse_connections,
                    is_dual_connection = self.is_dual_connection,
                    total_connections = self.total_connections,
                    resumed = self.resumed,
                    resync_required = self.resync_required,
                    replayed = self.replayed,
                    $msg
                )
            };
        }
        match i.transport {
            Transport::WebSocket => line!("WebSocket connected"),
            Transport::Sse => line!("SSE connected"),
        }
        counter!(names::CONNECTIONS_TOTAL, "transport" => label(i.transport), "outcome" => "accepted")
            .increment(1);
        gauge!(names::CONNECTIONS_ACTIVE, "transport" => label(i.transport)).increment(1.0);
        tm.monitoring.performance.record_connection_establishment(i.transport, self.establishment);
    }
}

/// A connection refused before it was established (limits, origin, drain).
pub fn connection_refused(tm: &Telemetry, t: Transport, reason: &'static str, player_id: Option<&str>) {
    warn!(connection_type = label(t), reason, player_id, "{} connection refused", title(t));
    counter!(names::CONNECTIONS_TOTAL, "transport" => label(t), "outcome" => reason).increment(1);
    let mut ev = ErrorEvent::new(
        ErrorType::ConnectionError,
        Severity::Low,
        format!("{} connection refused: {reason}", title(t)),
    )
    .details(serde_json::json!({ "reason": reason, "connection_type": label(t) }));
    if let Some(p) = player_id {
        ev = ev.player(p);
    }
    tm.track(ev);
}

#[derive(Debug)]
pub struct Disconnected<'a> {
    pub ids: Ids<'a>,
    pub duration: Duration,
    pub reason: &'static str,
    pub messages_sent: u64,
    pub remaining_connections: usize,
}

impl Disconnected<'_> {
    pub fn emit(self) {
        let i = self.ids;
        macro_rules! line {
            ($msg:literal) => {
                info!(
                    player_id = i.player_id,
                    session_id = i.session_id,
                    connection_id = i.connection_id,
                    connection_type = label(i.transport),
                    reason = self.reason,
                    duration_seconds = self.duration.as_secs_f64(),
                    messages_sent = self.messages_sent,
                    total_connections = self.remaining_connections,
                    $msg
                )
            };
        }
        match i.transport {
            Transport::WebSocket => line!("WebSocket disconnected"),
            Transport::Sse => line!("SSE disconnected"),
        }
        gauge!(names::CONNECTIONS_ACTIVE, "transport" => label(i.transport)).decrement(1.0);
        histogram!(names::CONNECTION_DURATION_SECONDS, "transport" => label(i.transport))
            .record(self.duration.as_secs_f64());
    }
}

/// Which surface an authentication failure happened on.
#[derive(Debug, Clone, Copy)]
pub enum AuthSurface {
    Client,
    Api,
}

pub fn auth_failed(tm: &Telemetry, surface: AuthSurface, reason: &'static str, path: &str) {
    let surface_label = match surface {
        AuthSurface::Client => "client",
        AuthSurface::Api => "api",
    };
    warn!(reason, surface = surface_label, path, "Authentication failed");
    counter!(names::AUTH_FAILURES_TOTAL, "reason" => reason).increment(1);
    let severity = match reason {
        "invalid_token" | "invalid_api_key" => Severity::High,
        "forbidden" => Severity::Medium,
        _ => Severity::Low,
    };
    tm.track(
        ErrorEvent::new(ErrorType::AuthenticationError, severity, format!("Authentication failed: {reason}"))
            .details(serde_json::json!({ "reason": reason, "surface": surface_label, "path": path })),
    );
}

/// The server closes a connection for `reason` (slow consumer, heartbeat
/// timeout, abuse, backend disconnect, shutdown).
pub fn closing(tm: &Telemetry, ids: Ids<'_>, reason: CloseReason) {
    let r = reason.as_str();
    match reason {
        CloseReason::SlowConsumer => {
            counter!(names::SLOW_CONSUMER_DISCONNECTS_TOTAL, "transport" => label(ids.transport))
                .increment(1);
            delivery_failed(tm, ids, "slow_consumer");
        }
        CloseReason::HeartbeatTimeout => {
            counter!(names::HEARTBEAT_TIMEOUTS_TOTAL).increment(1);
            tm.track(ids.error(
                ErrorType::ConnectionError,
                Severity::Low,
                format!("{} heartbeat timeout", title(ids.transport)),
            ));
        }
        CloseReason::RateLimited | CloseReason::TooLarge => {
            tm.track(ids.error(
                ErrorType::ValidationError,
                Severity::Medium,
                format!("{} closed for abuse: {r}", title(ids.transport)),
            ));
        }
        CloseReason::ProtocolError | CloseReason::InvalidPayload | CloseReason::MessageTimeout => {
            tm.track(ids.error(
                ErrorType::ValidationError,
                Severity::Low,
                format!("{} closed on a client protocol error: {r}", title(ids.transport)),
            ));
        }
        CloseReason::Shutdown { .. }
        | CloseReason::SessionMoved
        | CloseReason::Disconnected
        | CloseReason::SessionEnded
        | CloseReason::TokenExpired
        | CloseReason::TokenRevoked => {}
    }
    counter!(SERVER_CLOSES_TOTAL, "transport" => label(ids.transport), "reason" => r).increment(1);
    debug!(
        player_id = ids.player_id,
        session_id = ids.session_id,
        connection_id = ids.connection_id,
        connection_type = label(ids.transport),
        reason = r,
        close_code = reason.code(),
        "Closing connection"
    );
}

pub fn heartbeat_rtt(tm: &Telemetry, rtt: Duration) {
    tm.monitoring.performance.record_heartbeat_rtt(rtt);
}

pub fn message_received(t: Transport, kind: &'static str) {
    counter!(names::MESSAGES_RECEIVED_TOTAL, "transport" => label(t), "type" => kind).increment(1);
}

/// A client message was refused with an error code.
pub fn client_error(tm: &Telemetry, ids: Ids<'_>, code: &'static str, message: &str) {
    counter!(CLIENT_ERRORS_TOTAL, "transport" => label(ids.transport), "code" => code).increment(1);
    tm.track(
        ids.error(ErrorType::ValidationError, Severity::Low, format!("Client message rejected: {code}"))
            .details(serde_json::json!({ "code": code, "message": message })),
    );
}
