//! Tandem monitoring: how healthy the connections are, how fast messages
//! flow, which errors happen each minute — as JSON for operators, Prometheus
//! metrics for dashboards and alerts, and JSON log lines for analysts.
//!
//! The server builds one [`Monitoring`] at start-up, feeds it through
//! [`ConnectionStatsSource`] (plain data, so this crate never depends on the
//! server), records into [`ErrorTracker`] and [`PerformanceMonitor`], runs
//! the two background loops and mounts [`routes::configure`].

/// The shared bundle and its background loops.
mod bundle;
/// Wall-clock access, injectable in tests.
mod clock;
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
pub use source::{ConnectionKind, ConnectionOverview, ConnectionSample, ConnectionStatsSource};
