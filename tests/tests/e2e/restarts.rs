//! `monitoring.state_file` across real restarts of the `tandem` binary:
//! the restart count and cumulative uptime survive a clean stop and a
//! SIGKILL, and a garbled or unwritable file never stops start-up (logged,
//! tracked as an error, started fresh).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tandem_e2e::metrics::metric;
use tandem_e2e::server::toml_string;
use tandem_e2e::wait::eventually;
use tandem_e2e::{Signal, TestServer, WAIT};

const EXIT_WAIT: Duration = Duration::from_secs(20);

async fn start_with_state(path: &Path) -> TestServer {
    TestServer::builder()
        .set("monitoring", "state_file", &toml_string(&path.to_string_lossy()))
        .set("monitoring", "memory_warning_percent", "99.0")
        .set("monitoring", "memory_critical_percent", "100.0")
        .start()
        .await
}

fn read_state(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("state file is not JSON ({e}): {text}"))
}

async fn stop(server: &TestServer) {
    server.send_signal(Signal::Term);
    let status = server.wait_exit(EXIT_WAIT).await;
    assert!(status.success(), "clean stop: {status}\n{}", server.output_dump());
}

#[tokio::test]
async fn restarts_and_uptime_survive_stops_and_kills() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("tandem-state.json");

    // First start: no file yet, no restart.
    let first = start_with_state(&state).await;
    assert_eq!(metric(&first, "tandem_restarts_total", &[]).await, 0.0);
    assert_eq!(read_state(&state)["restarts"], 0, "start-up writes the file at once");
    let up = eventually("a second of uptime", WAIT, || async {
        let v = metric(&first, "tandem_uptime_total_seconds", &[]).await;
        (v >= 1.0).then_some(v)
    })
    .await;
    first.wait_for_log(|l| l["message"] == "Monitoring state file not found, starting fresh", WAIT).await;
    stop(&first).await;
    let saved = read_state(&state);
    assert_eq!(saved["restarts"], 0);
    let after_first = saved["uptime_total_seconds"].as_f64().expect("a number");
    assert!(after_first >= up, "shutdown saved {after_first} s, the process was up {up} s");

    // A clean restart: one restart, uptime carried over.
    let second = start_with_state(&state).await;
    assert_eq!(metric(&second, "tandem_restarts_total", &[]).await, 1.0);
    let total = metric(&second, "tandem_uptime_total_seconds", &[]).await;
    assert!(total >= after_first, "cumulative uptime {total} < {after_first}");
    let own = metric(&second, "tandem_uptime_seconds", &[]).await;
    assert!(total >= after_first + own - 1.0, "{total} vs {after_first} + {own}");
    let loaded = second.wait_for_log(|l| l["message"] == "Monitoring state loaded", WAIT).await;
    assert_eq!(loaded["restarts"], 1, "{loaded}");

    // Killed without a goodbye: the restart still counts.
    second.send_signal(Signal::Kill);
    second.wait_exit(EXIT_WAIT).await;
    drop(second);
    let third = start_with_state(&state).await;
    assert_eq!(metric(&third, "tandem_restarts_total", &[]).await, 2.0);
    assert!(metric(&third, "tandem_uptime_total_seconds", &[]).await >= after_first);
    stop(&third).await;
    assert_eq!(read_state(&state)["restarts"], 2);
}

#[tokio::test]
async fn a_garbled_state_file_is_logged_tracked_and_replaced() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("tandem-state.json");
    std::fs::write(&state, "{\"restarts\": \"many\"").expect("a garbled file");

    let server = start_with_state(&state).await;
    let line =
        server.wait_for_log(|l| l["message"] == "Monitoring state file unusable, starting fresh", WAIT).await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(metric(&server, "tandem_restarts_total", &[]).await, 0.0);
    let (status, errors) = server.api_request(reqwest::Method::GET, "/monitoring/errors", None, None).await;
    assert_eq!(status, 200, "{errors}");
    let tracked = errors["recent_errors"].as_array().expect("recent errors");
    assert!(
        tracked.iter().any(|e| e["type"] == "system_error"
            && e["message"].as_str().is_some_and(|m| m.contains("monitoring.state_file unusable"))),
        "{errors}"
    );
    assert_eq!(read_state(&state)["restarts"], 0, "the file is rewritten fresh");
    stop(&server).await;
}

#[tokio::test]
async fn an_unwritable_state_file_does_not_stop_the_server() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("no-such-dir").join("tandem-state.json");

    let server = start_with_state(&state).await;
    server.wait_for_log(|l| l["message"] == "Monitoring state not saved", WAIT).await;
    let (status, health) = server.api_request(reqwest::Method::GET, "/health/live", None, None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(metric(&server, "tandem_restarts_total", &[]).await, 0.0);
    stop(&server).await;
}
