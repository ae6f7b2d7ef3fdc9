//! The Prometheus recorder and the complete list of Tandem's metrics.
//!
//! Every metric is prefixed `tandem_`, uses base units (seconds, bytes),
//! ends in `_total` only when it is a counter, and carries only bounded
//! label values (never a player, session or channel id).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `tandem_connections_active` | gauge | `transport` | live connections |
//! | `tandem_connections_total` | counter | `transport`, `outcome` | connection attempts by outcome: `accepted`, or the refusal code (`server_full`, `too_many_connections`, `origin_not_allowed`, `draining`, `forbidden`, `invalid_channel`, …) |
//! | `tandem_connection_establishment_seconds` | histogram | `transport` | request to welcome frame |
//! | `tandem_connection_duration_seconds` | histogram | `transport` | lifetime of closed connections |
//! | `tandem_sessions_active` | gauge | — | live sessions (attached or within their resume window) |
//! | `tandem_players_active` | gauge | `mode` | players by `websocket_only`, `sse_only`, `dual` |
//! | `tandem_subscriptions_active` | gauge | — | channel subscriptions of all sessions |
//! | `tandem_messages_delivered_total` | counter | `transport` | frames handed to a live connection |
//! | `tandem_message_delivery_failures_total` | counter | `transport`, `reason` | deliveries that could not be handed over |
//! | `tandem_message_delivery_seconds` | histogram | — | publish accepted to frame handed to the writer (kept by the `PerformanceMonitor`, see [`crate::performance`]) |
//! | `tandem_messages_received_total` | counter | `transport`, `type` | client frames by message type |
//! | `tandem_auth_failures_total` | counter | `reason` | `missing_token`, `invalid_token`, `expired_token`, `forbidden` |
//! | `tandem_heartbeat_timeouts_total` | counter | — | connections closed for a missed heartbeat |
//! | `tandem_heartbeat_rtt_seconds` | histogram | — | ping to pong round trip |
//! | `tandem_slow_consumer_disconnects_total` | counter | `transport` | connections closed because their queue was full |
//! | `tandem_errors_total` | counter | `type`, `severity` | tracked error events |
//! | `tandem_connection_health_ratio` | gauge | — | healthy share of live connections, 0..1 |
//! | `tandem_http_requests_total` | counter | `method`, `route`, `status` | HTTP requests by route pattern |
//! | `tandem_http_request_duration_seconds` | histogram | `method`, `route` | HTTP request duration |
//! | `tandem_uptime_seconds` | gauge | — | time since start |
//! | `tandem_uptime_total_seconds` | gauge | — | uptime of every process that used `monitoring.state_file` (only with one) |
//! | `tandem_restarts_total` | counter | — | restarts recorded in `monitoring.state_file` (only with one) |
//! | `tandem_memory_usage_ratio` | gauge | — | used share of the memory available to Tandem (cgroup limit or machine), 0..1 |
//! | `tandem_build_info` | gauge | `version` | always 1 |
//! | `tandem_health_status_changes_total` | counter | `component`, `to` | health status transitions |
//! | `tandem_component_healthy` | gauge | `component` | 1 healthy, 0.5 degraded/unknown, 0 unhealthy |
//! | `tandem_process_*` | gauges/counters | — | process CPU seconds, resident/virtual memory bytes, open fds, threads, start time |

use metrics::Unit;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names, for emitters that want a typo-proof constant.
pub mod names {
    pub const CONNECTIONS_ACTIVE: &str = "tandem_connections_active";
    pub const CONNECTIONS_TOTAL: &str = "tandem_connections_total";
    pub const CONNECTION_ESTABLISHMENT_SECONDS: &str = "tandem_connection_establishment_seconds";
    pub const CONNECTION_DURATION_SECONDS: &str = "tandem_connection_duration_seconds";
    pub const SESSIONS_ACTIVE: &str = "tandem_sessions_active";
    pub const PLAYERS_ACTIVE: &str = "tandem_players_active";
    pub const SUBSCRIPTIONS_ACTIVE: &str = "tandem_subscriptions_active";
    pub const MESSAGES_DELIVERED_TOTAL: &str = "tandem_messages_delivered_total";
    pub const MESSAGE_DELIVERY_FAILURES_TOTAL: &str = "tandem_message_delivery_failures_total";
    pub const MESSAGE_DELIVERY_SECONDS: &str = "tandem_message_delivery_seconds";
    pub const MESSAGES_RECEIVED_TOTAL: &str = "tandem_messages_received_total";
    pub const AUTH_FAILURES_TOTAL: &str = "tandem_auth_failures_total";
    pub const HEARTBEAT_TIMEOUTS_TOTAL: &str = "tandem_heartbeat_timeouts_total";
    pub const HEARTBEAT_RTT_SECONDS: &str = "tandem_heartbeat_rtt_seconds";
    pub const SLOW_CONSUMER_DISCONNECTS_TOTAL: &str = "tandem_slow_consumer_disconnects_total";
    pub const ERRORS_TOTAL: &str = "tandem_errors_total";
    pub const CONNECTION_HEALTH_RATIO: &str = "tandem_connection_health_ratio";
    pub const HTTP_REQUESTS_TOTAL: &str = "tandem_http_requests_total";
    pub const HTTP_REQUEST_DURATION_SECONDS: &str = "tandem_http_request_duration_seconds";
    pub const UPTIME_SECONDS: &str = "tandem_uptime_seconds";
    pub const UPTIME_TOTAL_SECONDS: &str = "tandem_uptime_total_seconds";
    pub const RESTARTS_TOTAL: &str = "tandem_restarts_total";
    pub const MEMORY_USAGE_RATIO: &str = "tandem_memory_usage_ratio";
    pub const BUILD_INFO: &str = "tandem_build_info";
    pub const HEALTH_STATUS_CHANGES_TOTAL: &str = "tandem_health_status_changes_total";
    pub const COMPONENT_HEALTHY: &str = "tandem_component_healthy";
    pub const BACKEND_REQUEST_SECONDS: &str = "tandem_backend_request_seconds";
    /// Prefix of the process metrics (`tandem_process_cpu_seconds_total`, …).
    pub const PROCESS_PREFIX: &str = "tandem_";
}

/// Buckets for latencies (seconds): sub-millisecond to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for connection lifetimes (seconds): one second to six hours.
pub const DURATION_BUCKETS: [f64; 11] =
    [1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0];

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("cannot set up the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
}

/// The builder with Tandem's histogram buckets, before installation.
pub fn builder() -> Result<PrometheusBuilder, RecorderError> {
    let latency = [
        names::CONNECTION_ESTABLISHMENT_SECONDS,
        names::HTTP_REQUEST_DURATION_SECONDS,
        names::HEARTBEAT_RTT_SECONDS,
        names::BACKEND_REQUEST_SECONDS,
    ];
    let mut b = PrometheusBuilder::new();
    for name in latency {
        b = b.set_buckets_for_metric(Matcher::Full(name.to_owned()), &LATENCY_BUCKETS)?;
    }
    b = b.set_buckets_for_metric(
        Matcher::Full(names::CONNECTION_DURATION_SECONDS.to_owned()),
        &DURATION_BUCKETS,
    )?;
    Ok(b)
}

/// Installs the recorder globally and returns the handle `/metrics`
/// renders. Call once, before building [`crate::Monitoring`] (which
/// resolves its metric handles at construction).
pub fn install() -> Result<PrometheusHandle, RecorderError> {
    Ok(builder()?.install_recorder()?)
}

/// Describes every metric (help text and unit) and sets
/// `tandem_build_info{version}` to 1, with this crate's version.
pub fn describe_all() {
    describe_all_with_version(env!("CARGO_PKG_VERSION"));
}

/// [`describe_all`] with an explicit version label.
pub fn describe_all_with_version(version: &str) {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;

    describe_gauge!(CONNECTIONS_ACTIVE, Unit::Count, "Live connections by transport.");
    describe_counter!(CONNECTIONS_TOTAL, Unit::Count, "Connection attempts by transport and outcome.");
    describe_histogram!(
        CONNECTION_ESTABLISHMENT_SECONDS,
        Unit::Seconds,
        "Time from the connection request to the welcome frame."
    );
    describe_histogram!(CONNECTION_DURATION_SECONDS, Unit::Seconds, "Lifetime of closed connections.");
    describe_gauge!(SESSIONS_ACTIVE, Unit::Count, "Live sessions, attached or within their resume window.");
    describe_gauge!(
        PLAYERS_ACTIVE,
        Unit::Count,
        "Connected players by mode: websocket_only, sse_only, dual."
    );
    describe_gauge!(SUBSCRIPTIONS_ACTIVE, Unit::Count, "Channel subscriptions of all sessions.");
    describe_counter!(MESSAGES_DELIVERED_TOTAL, Unit::Count, "Frames handed to a live connection.");
    describe_counter!(
        MESSAGE_DELIVERY_FAILURES_TOTAL,
        Unit::Count,
        "Deliveries that could not be handed to a connection, by reason."
    );
    describe_counter!(MESSAGES_RECEIVED_TOTAL, Unit::Count, "Client frames received, by transport and type.");
    describe_counter!(AUTH_FAILURES_TOTAL, Unit::Count, "Refused credentials, by reason.");
    describe_counter!(HEARTBEAT_TIMEOUTS_TOTAL, Unit::Count, "Connections closed for a missed heartbeat.");
    describe_histogram!(HEARTBEAT_RTT_SECONDS, Unit::Seconds, "Heartbeat round-trip time.");
    describe_counter!(
        SLOW_CONSUMER_DISCONNECTS_TOTAL,
        Unit::Count,
        "Connections closed because their outbound queue was full."
    );
    describe_counter!(ERRORS_TOTAL, Unit::Count, "Tracked error events by type and severity.");
    describe_gauge!(CONNECTION_HEALTH_RATIO, "Healthy share of live connections, 0 to 1.");
    describe_counter!(HTTP_REQUESTS_TOTAL, Unit::Count, "HTTP requests by method, route pattern and status.");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP request duration by method and route."
    );
    describe_gauge!(UPTIME_SECONDS, Unit::Seconds, "Time since the server started.");
    describe_gauge!(
        UPTIME_TOTAL_SECONDS,
        Unit::Seconds,
        "Uptime of every process that used monitoring.state_file, this one included."
    );
    describe_counter!(RESTARTS_TOTAL, Unit::Count, "Restarts recorded in monitoring.state_file.");
    describe_gauge!(
        MEMORY_USAGE_RATIO,
        "Used share of the memory available to Tandem (cgroup limit or machine), 0 to 1."
    );
    describe_gauge!(BUILD_INFO, "Build information; the value is always 1.");
    describe_counter!(HEALTH_STATUS_CHANGES_TOTAL, Unit::Count, "Health status transitions by component.");
    describe_gauge!(COMPONENT_HEALTHY, "Component health: 1 healthy, 0.5 degraded or unknown, 0 unhealthy.");

    metrics::gauge!(BUILD_INFO, "version" => version.to_owned()).set(1.0);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builder_renders_described_metrics_with_buckets() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_all_with_version("9.9.9");
            metrics::histogram!(names::HEARTBEAT_RTT_SECONDS).record(0.003);
            metrics::histogram!(names::CONNECTION_DURATION_SECONDS, "transport" => "sse").record(42.0);
        });
        let text = handle.render();
        assert!(text.contains("tandem_build_info{version=\"9.9.9\"} 1"), "{text}");
        assert!(text.contains("# HELP tandem_heartbeat_rtt_seconds"), "{text}");
        assert!(text.contains("tandem_heartbeat_rtt_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(
            text.contains("tandem_connection_duration_seconds_bucket{transport=\"sse\",le=\"60\"} 1"),
            "{text}"
        );
    }
}
