//! Process events: listening, HTTP requests, supervised tasks, shutdown
//! phases and internal errors.

use super::*;

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

/// One HTTP request answered, by method, route pattern (never the raw
/// path) and status: actix-web routes and WebSocket upgrades alike.
pub fn http_request(tm: &Telemetry, method: &'static str, route: &str, status: u16, took: Duration) {
    tm.monitoring.performance.record_http_request(method, route, status, took);
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

/// `server.max_connections` lowered to what the open-file limit holds: a
/// warning when the operator set the number, routine for the default.
pub fn connection_limit_fitted(configured: u64, effective: u64, open_file_limit: u64, explicit: bool) {
    let message =
        "server.max_connections lowered to fit the open-file limit (raise `ulimit -n` to allow more)";
    if explicit {
        warn!(configured, effective, open_file_limit, "{message}");
    } else {
        info!(configured, effective, open_file_limit, "{message}");
    }
}

/// TLS is on: the pair in these files serves new connections.
pub fn tls_enabled(cert_file: &str, key_file: &str, admin: bool) {
    info!(cert_file, key_file, admin, "TLS enabled");
}

/// The certificate files changed and the new pair now serves new
/// connections (connections already open keep theirs).
pub fn tls_reloaded(cert_file: &str) {
    counter!(TLS_RELOADS_TOTAL, "outcome" => "ok").increment(1);
    info!(cert_file, outcome = "ok", "TLS certificate reloaded");
}

/// The certificate files changed but the new pair was refused: the last
/// good pair keeps serving. Tried again on the files' next change.
pub fn tls_reload_failed(tm: &Telemetry, key: &'static str, error: &str) {
    counter!(TLS_RELOADS_TOTAL, "outcome" => "error").increment(1);
    warn!(key, error, outcome = "error", "TLS certificate reload refused; the last good pair keeps serving");
    tm.track(
        ErrorEvent::new(
            ErrorType::SystemError,
            Severity::High,
            format!("TLS certificate reload refused: {error}"),
        )
        .details(serde_json::json!({ "key": key })),
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
