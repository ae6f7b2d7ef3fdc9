//! Every log line and metric the server emits goes through one typed event
//! here, so names stay consistent and greppable (`"WebSocket connected"`,
//! `tandem_connections_total`, …). Error events also feed the
//! `ErrorTracker`, timings feed the `PerformanceMonitor`.
//!
//! Field names follow the log-analysis recipes: `player_id`, `session_id`,
//! `connection_id`, `connection_type`, `establishment_time_ms`,
//! `delivery_time_ms`, `is_dual_connection`, `total_connections`.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Unit, counter, describe_counter, describe_histogram, gauge, histogram};
use tandem_monitoring::recorder::names;
use tandem_monitoring::{ErrorEvent, ErrorType, Monitoring, Severity};
use tracing::{debug, info, warn};

use crate::connection::CloseReason;
use crate::transport_kind::Transport;

/// Metrics only the server emits (the shared set is described by
/// `tandem_monitoring::recorder`).
pub const PUBLICATIONS_TOTAL: &str = "tandem_publications_total";
pub const SERVER_CLOSES_TOTAL: &str = "tandem_server_closes_total";
pub const CLIENT_ERRORS_TOTAL: &str = "tandem_client_errors_total";
pub const SESSIONS_EXPIRED_TOTAL: &str = "tandem_sessions_expired_total";
pub const TASK_RESTARTS_TOTAL: &str = "tandem_task_restarts_total";
pub const BROKER_PUBLISHES_TOTAL: &str = "tandem_broker_publishes_total";
pub const BROKER_RECEIVES_TOTAL: &str = "tandem_broker_receives_total";
pub const BROKER_LAG_SECONDS: &str = "tandem_broker_lag_seconds";
pub const BROKER_RECONNECTS_TOTAL: &str = "tandem_broker_reconnects_total";
pub const RESYNC_NOTICES_TOTAL: &str = "tandem_resync_notices_total";

const TRANSPORTS: [&str; 2] = ["websocket", "sse"];

/// Describes the server's own metrics and creates every bounded counter at
/// zero, so dashboards and `rate()` see them before the first event.
pub fn register_metrics() {
    describe_counter!(
        PUBLICATIONS_TOTAL,
        Unit::Count,
        "Publications accepted, by source (api, client, broadcast)."
    );
    describe_counter!(
        SERVER_CLOSES_TOTAL,
        Unit::Count,
        "Connections the server closed, by transport and reason."
    );
    describe_counter!(
        CLIENT_ERRORS_TOTAL,
        Unit::Count,
        "Client messages refused, by transport and error code."
    );
    describe_counter!(SESSIONS_EXPIRED_TOTAL, Unit::Count, "Sessions dropped after the resume window.");
    describe_counter!(
        TASK_RESTARTS_TOTAL,
        Unit::Count,
        "Supervised background tasks restarted after a failure."
    );
    describe_counter!(
        BROKER_PUBLISHES_TOTAL,
        Unit::Count,
        "Publications handed to the cluster broker, by outcome (ok, failed, refused)."
    );
    describe_counter!(BROKER_RECEIVES_TOTAL, Unit::Count, "Publications received from other nodes.");
    describe_histogram!(
        BROKER_LAG_SECONDS,
        Unit::Seconds,
        "From acceptance on another node to receipt here."
    );
    describe_counter!(BROKER_RECONNECTS_TOTAL, Unit::Count, "Broker links re-established after a loss.");
    describe_counter!(
        RESYNC_NOTICES_TOTAL,
        Unit::Count,
        "Connections told to resynchronise (`resync` frame) after a broker loss."
    );
    for outcome in ["ok", "failed", "refused"] {
        counter!(BROKER_PUBLISHES_TOTAL, "outcome" => outcome).absolute(0);
    }
    counter!(BROKER_RECEIVES_TOTAL).absolute(0);
    counter!(BROKER_RECONNECTS_TOTAL).absolute(0);
    counter!(RESYNC_NOTICES_TOTAL).absolute(0);
    for t in TRANSPORTS {
        counter!(names::MESSAGES_DELIVERED_TOTAL, "transport" => t).absolute(0);
        counter!(names::SLOW_CONSUMER_DISCONNECTS_TOTAL, "transport" => t).absolute(0);
        counter!(names::CONNECTIONS_TOTAL, "transport" => t, "outcome" => "accepted").absolute(0);
        counter!(names::MESSAGE_DELIVERY_FAILURES_TOTAL, "transport" => t, "reason" => "slow_consumer")
            .absolute(0);
        gauge!(names::CONNECTIONS_ACTIVE, "transport" => t).set(0.0);
    }
    for reason in ["missing_token", "invalid_token", "expired_token", "forbidden"] {
        counter!(names::AUTH_FAILURES_TOTAL, "reason" => reason).absolute(0);
    }
    for mode in ["websocket_only", "sse_only", "dual"] {
        gauge!(names::PLAYERS_ACTIVE, "mode" => mode).set(0.0);
    }
    counter!(names::HEARTBEAT_TIMEOUTS_TOTAL).absolute(0);
    gauge!(names::SESSIONS_ACTIVE).set(0.0);
    gauge!(names::SUBSCRIPTIONS_ACTIVE).set(0.0);
    for source in ["api", "client", "broadcast"] {
        counter!(PUBLICATIONS_TOTAL, "source" => source).absolute(0);
    }
}

/// Handles of hot-path metrics, registered once; plus the monitoring bundle.
pub struct Telemetry {
    pub monitoring: Arc<Monitoring>,
    delivered: [Counter; 2],
}

fn idx(t: Transport) -> usize {
    match t {
        Transport::WebSocket => 0,
        Transport::Sse => 1,
    }
}

fn label(t: Transport) -> &'static str {
    match t {
        Transport::WebSocket => "websocket",
        Transport::Sse => "sse",
    }
}

fn title(t: Transport) -> &'static str {
    match t {
        Transport::WebSocket => "WebSocket",
        Transport::Sse => "SSE",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Telemetry {
    pub fn new(monitoring: Arc<Monitoring>) -> Self {
        Self {
            monitoring,
            delivered: [
                counter!(names::MESSAGES_DELIVERED_TOTAL, "transport" => "websocket"),
                counter!(names::MESSAGES_DELIVERED_TOTAL, "transport" => "sse"),
            ],
        }
    }

    fn track(&self, event: ErrorEvent) {
        self.monitoring.errors.record(event);
    }
}

/// Ids a connection event carries.
#[derive(Debug, Clone, Copy)]
pub struct Ids<'a> {
    pub player_id: &'a str,
    pub session_id: &'a str,
    pub connection_id: &'a str,
    pub transport: Transport,
}

impl Ids<'_> {
    fn error(&self, error_type: ErrorType, severity: Severity, message: String) -> ErrorEvent {
        ErrorEvent::new(error_type, severity, message)
            .player(self.player_id)
            .session(self.session_id)
            .connection(self.connection_id)
    }
}

pub fn listening(addr: &str, dev_mode: bool, workers: usize, max_connections: usize) {
    info!(addr, dev_mode, workers, max_connections, "Tandem listening");
    if dev_mode {
        warn!(
            dev_mode = true,
            "Development auth mode: no auth.secret is set, so clients are trusted to name \
             themselves with ?player_id= . Loopback only; set auth.secret before exposing Tandem."
        );
    }
}

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
        tm.monitoring.performance.record_connection_establishment(i.transport.into(), self.establishment);
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
        CloseReason::Internal => {
            tm.track(ids.error(
                ErrorType::SystemError,
                Severity::High,
                format!("{} closed on an internal error", title(ids.transport)),
            ));
        }
        CloseReason::Shutdown { .. } | CloseReason::Disconnected => {}
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

/// One HTTP request answered, by method, route pattern (never the raw
/// path) and status: actix-web routes and WebSocket upgrades alike.
pub fn http_request(tm: &Telemetry, method: &'static str, route: &str, status: u16, took: Duration) {
    tm.monitoring.performance.record_http_request(method, route, status, took);
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

/// A background task panicked or failed; it will be restarted.
pub fn task_failed(tm: &Telemetry, task: &'static str, error: &str, restart_in: Duration) {
    counter!(TASK_RESTARTS_TOTAL, "task" => task).increment(1);
    tm.track(
        ErrorEvent::new(
            ErrorType::SystemError,
            Severity::Critical,
            format!("Background task {task} failed: {error}"),
        )
        .details(serde_json::json!({ "task": task, "restart_in_ms": restart_in.as_millis() as u64 })),
    );
}

/// The admin listener (`server.admin_bind`) is bound.
pub fn admin_listening(addr: &str) {
    info!(addr, "Admin listener");
}

pub fn shutdown_phase(phase: &'static str, connections: usize) {
    info!(phase, total_connections = connections, "Shutdown");
}

/// An internal error answered with 500.
pub fn internal_error(tm: &Telemetry, what: &str) {
    tm.track(ErrorEvent::new(ErrorType::SystemError, Severity::High, what.to_owned()));
}

/// Label for `tandem_players_active{mode}`.
pub fn player_mode(websocket: usize, sse: usize) -> Option<&'static str> {
    match (websocket > 0, sse > 0) {
        (true, true) => Some("dual"),
        (true, false) => Some("websocket_only"),
        (false, true) => Some("sse_only"),
        (false, false) => None,
    }
}
