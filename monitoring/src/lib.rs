//! Tandem monitoring: how healthy the connections are, how fast messages
//! flow, which errors happen each minute — as JSON for operators, Prometheus
//! metrics for dashboards and alerts, and JSON log lines for analysts.
//!
//! The server builds one [`Monitoring`] at start-up, feeds it through
//! [`ConnectionStatsSource`] (plain data, so this crate never depends on the
//! server), records into [`ErrorTracker`] and [`PerformanceMonitor`], runs
//! the two background loops and mounts [`routes::configure`].

/// Exponential backoff as a pure function of the attempt number.
pub mod backoff;
/// The shared bundle and its background loops.
mod bundle;
/// Wall-clock access behind a trait, so time-dependent code is testable.
pub mod clock;
/// `[monitoring]` and `[logging]` configuration sections.
pub mod config;
/// Typed error events: per-minute counts, recent ring, metrics, log lines.
pub mod errors;
/// Components, checks with timeout and retries, overall status.
pub mod health;
/// Uptime and restarts across restarts (`monitoring.state_file`).
pub mod lifetime;
/// JSON (or human) log output to stdout and a file.
pub mod logging;
/// Latency histograms, success rate, request rate.
pub mod performance;
/// Prometheus recorder set-up and the list of metrics.
pub mod recorder;
/// `/health*`, `/monitoring/*`, `/metrics`.
pub mod routes;
/// The data the server provides.
pub mod source;
/// Process CPU/RSS and system memory sampling.
pub mod system;
/// 24 hours of per-minute connection-health samples.
pub mod trends;

pub use bundle::{DEFAULT_ERROR_CAPACITY, Monitoring, MonitoringOptions, SAMPLE_INTERVAL};
pub use config::*;
pub use errors::{ErrorEvent, ErrorFilter, ErrorTracker, ErrorType, Severity};
pub use health::{CheckOutcome, ComponentStatus, HealthCheck, HealthService, HealthSettings};
pub use performance::PerformanceMonitor;
pub use routes::constant_time_eq;
pub use source::{ConnectionOverview, ConnectionSample, ConnectionStatsSource};

/// `value` as a JSON value, for the free-form `details` of check outcomes
/// and error events. Serializing plain structs cannot fail; if one ever
/// did, the details say so instead of taking the server down.
pub(crate) fn json_value(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| {
        let mut object = serde_json::Map::new();
        object.insert("error".into(), serde_json::Value::String(format!("details not serializable: {e}")));
        serde_json::Value::Object(object)
    })
}
