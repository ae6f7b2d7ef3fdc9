//! `/metrics` after real traffic: the Prometheus text exposition carries
//! every metric the design names, with bounded labels only, and passes the
//! real `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use tandem_e2e::assert_alive;
use tandem_e2e::metrics::{samples, scrape, scrape_with, sum};
use tandem_e2e::shell::require_tool;

use crate::common_mon::{self, CHANNEL, DIRECT_MESSAGES, Traffic, eventually};

/// Series (name and the start of its label set, or a whole sample) that
/// must appear after the reference traffic.
const REQUIRED: [&str; 17] = [
    "tandem_connections_active{transport=\"websocket\"}",
    "tandem_connections_total{",
    "tandem_connection_establishment_seconds_bucket{",
    "tandem_sessions_active",
    "tandem_players_active{mode=\"dual\"}",
    "tandem_subscriptions_active",
    "tandem_messages_delivered_total{transport=\"sse\"}",
    "tandem_message_delivery_seconds_bucket",
    "tandem_messages_received_total{",
    "tandem_auth_failures_total{reason=\"invalid_token\"}",
    "tandem_errors_total{",
    "tandem_connection_health_ratio",
    "tandem_http_requests_total{",
    "tandem_http_request_duration_seconds_bucket",
    "tandem_uptime_seconds",
    "tandem_build_info{",
    "tandem_process_",
];

/// Text that would mean a player, session, connection or channel id became
/// a label value (unbounded cardinality).
const FORBIDDEN_IN_LABELS: [&str; 5] = ["alice", "bob", "s_", "c_", "room:"];

fn assert_required(text: &str) {
    for needle in REQUIRED {
        assert!(
            text.lines().any(|l| !l.starts_with('#') && l.starts_with(needle)),
            "/metrics lacks {needle}:\n{text}"
        );
    }
    let has = |name: &str| samples(text).iter().any(|s| s.name == name);
    assert!(has("tandem_process_cpu_seconds_total"), "a process CPU metric:\n{text}");
    assert!(has("tandem_process_resident_memory_bytes"), "a process memory metric:\n{text}");
}

fn assert_bounded_labels(text: &str) {
    for sample in samples(text) {
        for bad in FORBIDDEN_IN_LABELS {
            assert!(
                !sample.label_set.contains(bad),
                "{}{{{}}}: label values must not carry ids or channel names ({bad:?})",
                sample.name,
                sample.label_set
            );
        }
    }
}

/// Pipes `text` to `promtool check metrics`; `None` when promtool is not
/// installed.
fn promtool_check(text: &str) -> (bool, String) {
    require_tool("promtool");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start promtool: {e}"));
    {
        let mut stdin = child.stdin.take().expect("promtool stdin");
        stdin.write_all(text.as_bytes()).expect("write the exposition to promtool");
    }
    let output = child.wait_with_output().expect("promtool runs to completion");
    let report =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

#[tokio::test]
async fn metrics_expose_every_series_with_bounded_labels() {
    let server = common_mon::start().await;
    let mut traffic = Traffic::generate(&server).await;
    assert_alive(&mut traffic.bob_ws, 2).await;

    let (status, content_type, _) = scrape_with(&server, None).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "content type {content_type:?}");

    // Deliveries are counted once handed to the writer, which may be just
    // after the client read them.
    let text = eventually("deliveries counted", || async {
        let text = scrape(&server).await;
        let sse = sum(&text, "tandem_messages_delivered_total", &[("transport", "sse")]);
        let ws = sum(&text, "tandem_messages_delivered_total", &[("transport", "websocket")]);
        (sse >= DIRECT_MESSAGES as f64 && ws >= DIRECT_MESSAGES as f64).then_some(text)
    })
    .await;
    assert_required(&text);
    assert_bounded_labels(&text);

    assert!(sum(&text, "tandem_auth_failures_total", &[("reason", "invalid_token")]) >= 1.0, "{text}");
    assert_eq!(sum(&text, "tandem_players_active", &[("mode", "dual")]), 1.0, "{text}");
    assert_eq!(sum(&text, "tandem_players_active", &[("mode", "websocket_only")]), 1.0, "{text}");
    assert_eq!(sum(&text, "tandem_connections_active", &[("transport", "websocket")]), 2.0, "{text}");
    assert_eq!(sum(&text, "tandem_connections_active", &[("transport", "sse")]), 1.0, "{text}");
    assert_eq!(sum(&text, "tandem_sessions_active", &[]), 2.0, "{text}");
    assert!(sum(&text, "tandem_subscriptions_active", &[]) >= 1.0, "alice is in {CHANNEL}: {text}");
    assert!(
        sum(&text, "tandem_connections_total", &[("transport", "websocket"), ("outcome", "accepted")]) >= 2.0,
        "{text}"
    );
    assert!(sum(&text, "tandem_messages_received_total", &[("type", "ping")]) >= 1.0, "{text}");
    assert!(sum(&text, "tandem_errors_total", &[("type", "authentication_error")]) >= 1.0, "{text}");
    assert!(sum(&text, "tandem_errors_total", &[("type", "validation_error")]) >= 1.0, "{text}");
    assert!(
        sum(&text, "tandem_message_delivery_seconds_count", &[]) >= (2 * DIRECT_MESSAGES) as f64,
        "{text}"
    );
    assert!(sum(&text, "tandem_uptime_seconds", &[]) > 0.0, "{text}");
    assert!(sum(&text, "tandem_process_resident_memory_bytes", &[]) > 0.0, "{text}");
    assert_eq!(sum(&text, "tandem_connection_health_ratio", &[]), 1.0, "{text}");
    assert_eq!(sum(&text, "tandem_build_info", &[]), 1.0, "{text}");

    // A closed connection feeds the lifetime histogram.
    traffic.bob_ws.close().await;
    let text = eventually("a connection lifetime recorded", || async {
        let text = scrape(&server).await;
        let closed = sum(&text, "tandem_connection_duration_seconds_count", &[("transport", "websocket")]);
        let bob = sum(&text, "tandem_players_active", &[("mode", "websocket_only")]);
        (closed >= 1.0 && bob == 0.0).then_some(text)
    })
    .await;
    assert!(text.contains("tandem_connection_duration_seconds_bucket{"), "{text}");
    assert_bounded_labels(&text);

    let (ok, report) = promtool_check(&text);
    assert!(ok, "promtool check metrics failed:\n{report}\n--- exposition ---\n{text}");
}
