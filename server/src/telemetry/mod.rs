//! Every log line and metric the server emits goes through one typed event
//! here, so names stay consistent and greppable (`"WebSocket connected"`,
//! `tandem_connections_total`, …). Error events also feed the
//! `ErrorTracker`, timings feed the `PerformanceMonitor`.
//!
//! Field names follow the log-analysis recipes: `player_id`, `session_id`,
//! `connection_id`, `connection_type`, `establishment_time_ms`,
//! `delivery_time_ms`, `is_dual_connection`, `total_connections`.

mod backend;
mod broker;
mod connection;
mod delivery;
mod presence;
mod process;
mod resume;
mod tokens;

pub use backend::*;
pub use broker::*;
pub use connection::*;
pub use delivery::*;
pub use presence::*;
pub use process::*;
pub use resume::*;
pub use tokens::*;

use std::sync::Arc;
use std::time::Duration;

use metrics::{
    Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use tandem_monitoring::recorder::names;
use tandem_monitoring::{ErrorEvent, ErrorType, Monitoring, Severity};
use tracing::{debug, info, warn};

use crate::session::connection::CloseReason;
use tandem_protocol::Transport;

/// Metrics only the server emits (the shared set is described by
/// `tandem_monitoring::recorder`).
pub const PUBLICATIONS_TOTAL: &str = "tandem_publications_total";
pub const SERVER_CLOSES_TOTAL: &str = "tandem_server_closes_total";
pub const CLIENT_ERRORS_TOTAL: &str = "tandem_client_errors_total";
pub const SESSIONS_EXPIRED_TOTAL: &str = "tandem_sessions_expired_total";
pub const TASK_RESTARTS_TOTAL: &str = "tandem_task_restarts_total";
pub const BROKER_PUBLISHES_TOTAL: &str = "tandem_broker_publishes_total";
pub const BROKER_RECEIVES_TOTAL: &str = "tandem_broker_receives_total";
pub const BROKER_MESSAGES_REFUSED_TOTAL: &str = "tandem_broker_messages_refused_total";
pub const BROKER_LAG_SECONDS: &str = "tandem_broker_lag_seconds";
pub const BROKER_RECONNECTS_TOTAL: &str = "tandem_broker_reconnects_total";
pub const RESYNC_NOTICES_TOTAL: &str = "tandem_resync_notices_total";
pub const TLS_RELOADS_TOTAL: &str = "tandem_tls_reloads_total";

const TRANSPORTS: [&str; 2] = ["websocket", "sse"];

/// Describes the server's own metrics and creates every bounded counter at
/// zero, so dashboards and `rate()` see them before the first event.
pub fn register_metrics() {
    describe_counter!(
        PUBLICATIONS_TOTAL,
        Unit::Count,
        "Publications accepted, by source (api, client, broadcast, game)."
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
    describe_counter!(
        BROKER_MESSAGES_REFUSED_TOTAL,
        Unit::Count,
        "Messages read from the broker and dropped, by reason (too_large, unsigned, malformed)."
    );
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
    describe_counter!(
        TLS_RELOADS_TOTAL,
        Unit::Count,
        "Changed TLS certificate pairs seen, by outcome (ok = serving it, error = refused, the last good pair kept)."
    );
    for outcome in ["ok", "error"] {
        counter!(TLS_RELOADS_TOTAL, "outcome" => outcome).absolute(0);
    }
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
    for reason in ["missing_token", "invalid_token", "expired_token", "token_not_yet_valid", "forbidden"] {
        counter!(names::AUTH_FAILURES_TOTAL, "reason" => reason).absolute(0);
    }
    for mode in ["websocket_only", "sse_only", "dual"] {
        gauge!(names::PLAYERS_ACTIVE, "mode" => mode).set(0.0);
    }
    counter!(names::HEARTBEAT_TIMEOUTS_TOTAL).absolute(0);
    gauge!(names::SESSIONS_ACTIVE).set(0.0);
    gauge!(names::SUBSCRIPTIONS_ACTIVE).set(0.0);
    for source in ["api", "client", "broadcast", "game"] {
        counter!(PUBLICATIONS_TOTAL, "source" => source).absolute(0);
    }
    register_backend_metrics();
    register_token_metrics();
    register_resume_metrics();
    register_presence_metrics();
}

/// Handles of hot-path metrics, registered once; plus the monitoring bundle.
/// Cloning shares the handles.
#[derive(Clone)]
pub struct Telemetry {
    pub monitoring: Arc<Monitoring>,
    delivered: [Counter; 2],
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
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

/// Label for `tandem_players_active{mode}`.
pub fn player_mode(websocket: usize, sse: usize) -> Option<&'static str> {
    match (websocket > 0, sse > 0) {
        (true, true) => Some("dual"),
        (true, false) => Some("websocket_only"),
        (false, true) => Some("sse_only"),
        (false, false) => None,
    }
}
