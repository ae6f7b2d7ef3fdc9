//! Game backend events: commands, backend requests, hooks and lifecycle
//! events (docs/backend.md, "What operators see").

use tandem_monitoring::recorder::names::BACKEND_REQUEST_SECONDS;

use super::*;
use crate::backend::client::{Answer, Endpoint};

pub const COMMANDS_TOTAL: &str = "tandem_commands_total";
pub const COMMANDS_IN_FLIGHT: &str = "tandem_commands_in_flight";
pub const BACKEND_REQUESTS_TOTAL: &str = "tandem_backend_requests_total";
pub const HOOK_DECISIONS_TOTAL: &str = "tandem_hook_decisions_total";
pub const LIFECYCLE_EVENTS_TOTAL: &str = "tandem_lifecycle_events_total";
pub const LIFECYCLE_EVENT_RETRIES_TOTAL: &str = "tandem_lifecycle_event_retries_total";
pub const LIFECYCLE_EVENTS_QUEUED: &str = "tandem_lifecycle_events_queued";

const ENDPOINTS: [&str; 4] = ["command", "connect", "subscribe", "events"];
const EVENT_KINDS: [&str; 3] = ["session_started", "session_resumed", "player_left"];

/// Describes the backend metrics and creates the bounded ones at zero.
pub fn register_backend_metrics() {
    describe_counter!(COMMANDS_TOTAL, Unit::Count, "Client commands answered, by outcome.");
    describe_gauge!(COMMANDS_IN_FLIGHT, Unit::Count, "Client commands waiting for the game backend.");
    describe_counter!(
        BACKEND_REQUESTS_TOTAL,
        Unit::Count,
        "Requests to the game backend, by endpoint and outcome."
    );
    describe_histogram!(
        BACKEND_REQUEST_SECONDS,
        Unit::Seconds,
        "Round trip of a request to the game backend, by endpoint."
    );
    describe_counter!(
        HOOK_DECISIONS_TOTAL,
        Unit::Count,
        "Connect and subscribe hook decisions, by hook, decision and whether cached."
    );
    describe_counter!(
        LIFECYCLE_EVENTS_TOTAL,
        Unit::Count,
        "Lifecycle events, by type and outcome (delivered, dropped, rejected)."
    );
    describe_counter!(
        LIFECYCLE_EVENT_RETRIES_TOTAL,
        Unit::Count,
        "Lifecycle event deliveries retried, by type."
    );
    describe_gauge!(LIFECYCLE_EVENTS_QUEUED, Unit::Count, "Lifecycle events waiting to be sent.");
    for outcome in tandem_monitoring::performance::COMMAND_OUTCOMES {
        counter!(COMMANDS_TOTAL, "outcome" => outcome).absolute(0);
    }
    gauge!(COMMANDS_IN_FLIGHT).set(0.0);
    for endpoint in ENDPOINTS {
        for outcome in ["ok", "refused", "backend_timeout", "backend_unavailable", "backend_error"] {
            counter!(BACKEND_REQUESTS_TOTAL, "endpoint" => endpoint, "outcome" => outcome).absolute(0);
        }
    }
    for kind in EVENT_KINDS {
        for outcome in ["delivered", "dropped", "rejected"] {
            counter!(LIFECYCLE_EVENTS_TOTAL, "type" => kind, "outcome" => outcome).absolute(0);
        }
        counter!(LIFECYCLE_EVENT_RETRIES_TOTAL, "type" => kind).absolute(0);
    }
    gauge!(LIFECYCLE_EVENTS_QUEUED).set(0.0);
}

/// A command started (`+1`) or ended (`-1`) waiting for the game.
pub fn command_in_flight(delta: f64) {
    gauge!(COMMANDS_IN_FLIGHT).increment(delta);
}

/// One request to the game backend and its round trip.
pub fn backend_request(endpoint: Endpoint, outcome: &'static str, took: Duration) {
    counter!(BACKEND_REQUESTS_TOTAL, "endpoint" => endpoint.as_str(), "outcome" => outcome).increment(1);
    histogram!(BACKEND_REQUEST_SECONDS, "endpoint" => endpoint.as_str()).record(took.as_secs_f64());
}

/// A hook decided (`decision`: allowed, refused, failed_allowed, failed_denied).
pub fn hook_decision(hook: &'static str, decision: &'static str, cached: bool) {
    let cached = if cached { "true" } else { "false" };
    counter!(HOOK_DECISIONS_TOTAL, "hook" => hook, "decision" => decision, "cached" => cached).increment(1);
    if decision == "failed_allowed" || decision == "failed_denied" {
        warn!(hook, decision, "Backend hook failed: its failure policy decided");
    }
}

/// What a command was, for its log line.
#[derive(Debug, Clone, Copy)]
pub struct CommandIds<'a> {
    pub player_id: &'a str,
    pub session_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
}

/// A command was answered. Backend failures are warnings and tracked
/// errors; a game's own refusal and Tandem's limits are routine.
pub fn command_answered(
    tm: &Telemetry,
    ids: CommandIds<'_>,
    outcome: &'static str,
    message: &str,
    backend: Option<Duration>,
) {
    counter!(COMMANDS_TOTAL, "outcome" => outcome).increment(1);
    tm.monitoring.performance.record_command(outcome, backend);
    let backend_ms = backend.map(ms);
    match outcome {
        "backend_timeout" | "backend_unavailable" | "backend_error" => {
            warn!(
                player_id = ids.player_id,
                session_id = ids.session_id,
                command_id = ids.id,
                command = ids.name,
                outcome,
                backend_ms,
                error = message,
                "Command failed: game backend"
            );
            tm.track(
                ErrorEvent::new(
                    ErrorType::BackendError,
                    Severity::Medium,
                    format!("Command `{}`: {outcome}: {message}", ids.name),
                )
                .player(ids.player_id)
                .session(ids.session_id)
                .details(serde_json::json!({ "command": ids.name, "code": outcome })),
            );
        }
        _ => debug!(
            player_id = ids.player_id,
            session_id = ids.session_id,
            command_id = ids.id,
            command = ids.name,
            outcome,
            backend_ms,
            "Command answered"
        ),
    }
}

/// Lifecycle events queued (`+1`) or finished with (`-1`).
pub fn lifecycle_event_queued(tm: &Telemetry, delta: i64) {
    gauge!(LIFECYCLE_EVENTS_QUEUED).increment(delta as f64);
    tm.monitoring.performance.add_events_queued(delta);
}

/// An event's queue was full: the event is dropped.
pub fn lifecycle_event_dropped(tm: &Telemetry, kind: &'static str, session_id: &str) {
    counter!(LIFECYCLE_EVENTS_TOTAL, "type" => kind, "outcome" => "dropped").increment(1);
    warn!(event_type = kind, session_id, "Lifecycle event dropped: queue full (backend.events_queue_size)");
    tm.track(
        ErrorEvent::new(
            ErrorType::BackendError,
            Severity::High,
            format!("Lifecycle event `{kind}` dropped: queue full"),
        )
        .session(session_id),
    );
}

/// The backend took an event.
pub fn lifecycle_event_delivered(kind: &'static str, attempts: u32) {
    counter!(LIFECYCLE_EVENTS_TOTAL, "type" => kind, "outcome" => "delivered").increment(1);
    debug!(event_type = kind, attempts, "Lifecycle event delivered");
}

/// The backend refused an event for good (a 4xx): it is not retried.
pub fn lifecycle_event_rejected(tm: &Telemetry, kind: &'static str, event_id: &str, answer: &Answer) {
    counter!(LIFECYCLE_EVENTS_TOTAL, "type" => kind, "outcome" => "rejected").increment(1);
    let status = match answer {
        Answer::Refused { status, .. } | Answer::Ok { status, .. } => *status,
        _ => 0,
    };
    warn!(event_type = kind, event_id, status, "Lifecycle event rejected by the backend");
    tm.track(ErrorEvent::new(
        ErrorType::BackendError,
        Severity::Medium,
        format!("Lifecycle event `{kind}` rejected with HTTP {status}"),
    ));
}

/// An event's delivery failed and will be tried again.
pub fn lifecycle_event_retry(tm: &Telemetry, kind: &'static str, attempt: u32, outcome: &'static str) {
    counter!(LIFECYCLE_EVENT_RETRIES_TOTAL, "type" => kind).increment(1);
    // The first failure and then every tenth, so a long outage does not flood the log.
    if attempt == 1 || attempt % 10 == 0 {
        warn!(event_type = kind, attempt, outcome, "Lifecycle event not delivered: retrying");
        tm.track(ErrorEvent::new(
            ErrorType::BackendError,
            Severity::Medium,
            format!("Lifecycle event `{kind}` not delivered ({outcome}), try {attempt}"),
        ));
    }
}
