//! The operator surface after real traffic: `/health*` verdicts and
//! details, dependency checks from the config, the `/monitoring/*`
//! documents in the documented shapes with figures that match what happened,
//! the operator token, and readiness while draining.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_e2e::metrics::scrape_with;
use tandem_e2e::ports::free_port;
use tandem_e2e::wait::{POLL, until_ok};
use tandem_e2e::{Peer, Signal, TestServer, TestServerBuilder, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common_mon::{self, DIRECT_MESSAGES, Traffic, assert_keys, get, num, server_with, wait_json};

/// Statuses a component may report.
const STATUSES: [&str; 6] = ["healthy", "degraded", "unhealthy", "connecting", "disconnected", "unknown"];

/// The operator token of the surface test.
const MON_TOKEN: &str = "mon-token-0123456789";

fn is_failing(status: &Value) -> bool {
    matches!(status.as_str(), Some("unhealthy" | "disconnected"))
}

fn assert_status_string(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what}: status is not a string: {v}"));
    assert!(STATUSES.contains(&s), "{what}: unknown status {s:?}");
}

/// The top-level fields `/health` and `/health/detailed` share.
fn assert_health_head(doc: &Value) {
    assert_status_string(&doc["status"], "overall");
    let ts = doc["timestamp"].as_str().unwrap_or_else(|| panic!("timestamp: {doc}"));
    assert!(ts.len() >= 20 && ts.contains('T'), "RFC 3339 timestamp: {ts}");
    assert!(doc["version"].as_str().is_some_and(|v| !v.is_empty()), "version: {doc}");
    assert!(doc["uptime"].as_u64().is_some(), "uptime in whole seconds: {doc}");
    assert!(doc["components"].is_object(), "components: {doc}");
}

/// A `/health/detailed` document: per-component objects with the
/// bookkeeping fields, and the documented figures for connections and memory.
fn assert_detailed(doc: &Value) {
    assert_health_head(doc);
    let components = doc["components"].as_object().expect("components object");
    for name in ["connections", "memory", "activity", "performance"] {
        assert!(components.contains_key(name), "no {name} component: {doc}");
    }
    for (name, c) in components {
        assert_status_string(&c["status"], name);
        if name == "performance" {
            // Informational, computed on read: no check bookkeeping.
            assert_keys(c, &["/avg_response_time_ms", "/requests_per_second"]);
            continue;
        }
        assert_keys(c, &["/response_time_ms", "/last_check", "/retry_count"]);
        assert!(c["response_time_ms"].is_number(), "{name}: {c}");
        assert!(c["retry_count"].is_u64(), "{name}: {c}");
    }
    assert_keys(
        &doc["components"]["connections"],
        &["/total_connections", "/healthy_connections", "/unhealthy_connections", "/health_percentage"],
    );
    assert_keys(&doc["components"]["memory"], &["/used_mb", "/total_mb", "/usage_percentage"]);
    assert!(num(doc, "/components/memory/total_mb") > 0.0, "{doc}");
}

#[tokio::test]
async fn health_endpoints_answer_after_real_traffic() {
    let server = common_mon::start().await;
    let _traffic = Traffic::generate(&server).await;

    // Local checks are re-read at most once a second: wait until they see
    // the three connections.
    let detailed = wait_json(&server, "/health/detailed", None, "connections seen", |status, doc| {
        status == 200
            && doc["components"]["connections"]["total_connections"] == 3
            && doc["components"]
                .as_object()
                .is_some_and(|c| c.iter().all(|(n, v)| n == "performance" || v["last_check"].is_string()))
    })
    .await;
    assert_detailed(&detailed);
    assert_eq!(detailed["status"], "healthy", "{detailed}");
    let conns = &detailed["components"]["connections"];
    assert_eq!(conns["healthy_connections"], 3, "{conns}");
    assert_eq!(conns["unhealthy_connections"], 0, "{conns}");
    assert_eq!(num(conns, "/health_percentage"), 100.0, "{conns}");
    assert_eq!(conns["status"], "healthy", "{conns}");

    let (status, health) = get(&server, "/health", None).await;
    assert_eq!(status, 200, "{health}");
    assert_health_head(&health);
    assert_eq!(health["status"], "healthy", "{health}");
    let components = health["components"].as_object().expect("components");
    for name in ["connections", "memory", "activity"] {
        assert!(components.contains_key(name), "/health lacks {name}: {health}");
    }
    for (name, v) in components {
        assert_status_string(v, name);
    }

    let (status, live) = get(&server, "/health/live", None).await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["status"], "alive", "{live}");
    let (status, ready) = get(&server, "/health/ready", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");

    let (status, one) = get(&server, "/health/service/connections", None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["name"], "connections", "{one}");
    assert_eq!(one["status"], "healthy", "{one}");
    assert_eq!(one["total_connections"], 3, "{one}");

    let (status, missing) = get(&server, "/health/service/nope", None).await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "unknown_service", "{missing}");

    let (status, forced) = server.api_request(Method::POST, "/health/force-check", None, None).await;
    assert_eq!(status, 200, "{forced}");
    assert_detailed(&forced);
    assert_eq!(forced["components"]["connections"]["total_connections"], 3, "{forced}");
}

/// A `[[monitoring.checks]]` list as one inline TOML array.
fn checks_toml(checks: &[(&str, String, bool)]) -> String {
    let items: Vec<String> = checks
        .iter()
        .map(|(name, target, critical)| {
            format!("{{ name = \"{name}\", kind = \"tcp\", target = \"{target}\", critical = {critical} }}")
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// A loopback port nothing listens on, and nothing in this test process
/// will: the kernel never hands it to a `bind(0)` of a neighbouring test.
fn closed_port() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// A loopback listener that accepts (and drops) connections for the life of
/// the test, as a healthy dependency.
async fn live_dependency() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a dependency port");
    let addr = listener.local_addr().expect("local address").to_string();
    // Bounded: a few checks a second for a test of seconds.
    let task = tokio::spawn(async move {
        for _ in 0..10_000 {
            if listener.accept().await.is_err() {
                break;
            }
        }
    });
    (addr, task)
}

fn with_checks(checks: String) -> impl FnOnce(TestServerBuilder) -> TestServerBuilder {
    move |b| {
        b.set("monitoring", "checks", &checks)
            .set("monitoring", "check_interval_seconds", "1")
            .set("monitoring", "check_timeout_seconds", "1")
            .set("monitoring", "check_retries", "0")
    }
}

#[tokio::test]
async fn a_critical_dependency_down_makes_the_service_unhealthy() {
    let (up, accepter) = live_dependency().await;
    let down = closed_port();
    let checks = checks_toml(&[("cache", up.clone(), true), ("db", down.clone(), true)]);
    let server = server_with(with_checks(checks)).await;

    let db = wait_json(&server, "/health/service/db", None, "db reported down", |status, doc| {
        status == 503 && is_failing(&doc["status"])
    })
    .await;
    assert_eq!(db["name"], "db", "{db}");
    assert_eq!(db["kind"], "tcp", "{db}");
    assert_eq!(db["target"], down, "{db}");
    assert_eq!(db["critical"], true, "{db}");
    assert_eq!(db["retry_count"], 0, "check_retries = 0: {db}");
    assert!(db["error"].is_string(), "the failure says why: {db}");
    assert!(db["last_check"].is_string(), "{db}");

    let cache = wait_json(&server, "/health/service/cache", None, "cache reported up", |status, doc| {
        status == 200 && doc["status"] == "healthy"
    })
    .await;
    assert_eq!(cache["target"], up, "{cache}");

    let (status, health) = get(&server, "/health", None).await;
    assert_eq!(status, 503, "a critical dependency is down: {health}");
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert!(is_failing(&health["components"]["db"]), "{health}");
    assert_eq!(health["components"]["cache"], "healthy", "{health}");

    let (status, detailed) = get(&server, "/health/detailed", None).await;
    assert_eq!(status, 503, "{detailed}");
    assert!(is_failing(&detailed["components"]["db"]["status"]), "{detailed}");

    // Readiness is about draining, not dependencies; liveness is always up.
    let (status, _) = get(&server, "/health/ready", None).await;
    assert_eq!(status, 200);
    let (status, _) = get(&server, "/health/live", None).await;
    assert_eq!(status, 200);
    accepter.abort();
}

#[tokio::test]
async fn a_non_critical_dependency_down_only_degrades() {
    let down = closed_port();
    let server = server_with(with_checks(checks_toml(&[("search", down, false)]))).await;

    wait_json(&server, "/health/service/search", None, "search reported down", |_, doc| {
        is_failing(&doc["status"])
    })
    .await;
    let (status, health) = get(&server, "/health", None).await;
    assert_eq!(status, 200, "degraded still takes traffic: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
}

#[tokio::test]
async fn connection_health_matches_the_live_connections() {
    let server = common_mon::start().await;
    let _traffic = Traffic::generate(&server).await;

    let doc = wait_json(&server, "/monitoring/connection-health", None, "3 connections", |status, doc| {
        status == 200 && doc["overall_health"]["total_connections"] == 3
    })
    .await;
    assert_keys(
        &doc,
        &[
            "/overall_health/total_connections",
            "/overall_health/healthy_connections",
            "/overall_health/unhealthy_connections",
            "/overall_health/health_percentage",
            "/health_trends/last_hour_health_percentage",
            "/health_trends/last_24_hours_health_percentage",
        ],
    );
    for transport in ["websocket", "sse"] {
        for key in ["total", "healthy", "unhealthy", "health_percentage"] {
            assert_keys(&doc, &[&format!("/connection_type_health/{transport}/{key}")]);
        }
    }
    let ages = doc["connection_age_distribution"].as_object().expect("connection_age_distribution");
    for bucket in ["0-5_minutes", "5-30_minutes", "30_minutes-2_hours", "2_hours+"] {
        assert!(ages.contains_key(bucket), "no age bucket {bucket}: {doc}");
    }
    assert_eq!(doc["connection_age_distribution"]["0-5_minutes"], 3, "all young: {doc}");

    assert_eq!(doc["overall_health"]["healthy_connections"], 3, "{doc}");
    assert_eq!(doc["overall_health"]["unhealthy_connections"], 0, "{doc}");
    assert_eq!(num(&doc, "/overall_health/health_percentage"), 100.0, "{doc}");
    let ws = &doc["connection_type_health"]["websocket"];
    assert_eq!(
        (ws["total"].as_u64(), ws["healthy"].as_u64(), ws["unhealthy"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
    let sse = &doc["connection_type_health"]["sse"];
    assert_eq!(
        (sse["total"].as_u64(), sse["healthy"].as_u64(), sse["unhealthy"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    for pointer in
        ["/health_trends/last_hour_health_percentage", "/health_trends/last_24_hours_health_percentage"]
    {
        let p = num(&doc, pointer);
        assert!((0.0..=100.0).contains(&p), "{pointer} = {p}");
    }
}

#[tokio::test]
async fn performance_counts_connections_and_deliveries() {
    let server = common_mon::start().await;
    let _traffic = Traffic::generate(&server).await;

    // Deliveries are recorded once handed to the writer, which can be just
    // after the client read them; process memory is sampled in the
    // background.
    let doc = wait_json(&server, "/monitoring/performance", None, "deliveries recorded", |status, doc| {
        status == 200
            && doc.pointer("/message_delivery/total_messages_sent").and_then(Value::as_u64)
                >= Some(DIRECT_MESSAGES)
            && doc.pointer("/system_performance/memory_usage_mb").and_then(Value::as_f64) > Some(0.0)
    })
    .await;

    let ce = &doc["connection_establishment"];
    assert_keys(ce, &["/total_connections"]);
    assert!(num(ce, "/websocket_connections") >= 2.0, "{ce}");
    assert!(num(ce, "/sse_connections") >= 1.0, "{ce}");
    for transport in ["websocket", "sse"] {
        for stat in ["avg", "max", "p95"] {
            let key = format!("/{stat}_{transport}_establishment_ms");
            assert!(num(ce, &key) > 0.0, "{key}: {ce}");
        }
    }
    assert!(num(ce, "/max_websocket_establishment_ms") >= num(ce, "/avg_websocket_establishment_ms"), "{ce}");

    let md = &doc["message_delivery"];
    assert_keys(md, &["/successful_deliveries", "/failed_deliveries"]);
    assert!(num(md, "/total_messages_sent") >= DIRECT_MESSAGES as f64, "{md}");
    let rate = num(md, "/delivery_success_rate");
    assert!((0.0..=100.0).contains(&rate), "{md}");
    assert_eq!(rate, 100.0, "nothing failed: {md}");
    for key in ["/avg_delivery_time_ms", "/max_delivery_time_ms", "/p95_delivery_time_ms"] {
        assert!(num(md, key) > 0.0, "{key}: {md}");
    }

    let sp = &doc["system_performance"];
    assert!(num(sp, "/avg_response_time_ms") >= 0.0, "{sp}");
    assert!(num(sp, "/requests_per_second") >= 0.0, "{sp}");
    assert!(num(sp, "/memory_usage_mb") > 0.0, "{sp}");
    assert!(num(sp, "/cpu_usage_percent") >= 0.0, "{sp}");
    assert_eq!(sp["active_connections"], 3, "{sp}");
    assert!(doc["timestamp"].is_string(), "{doc}");
}

#[tokio::test]
async fn errors_are_typed_counted_and_filtered() {
    let server = common_mon::start().await;
    let _traffic = Traffic::generate(&server).await;

    let doc = wait_json(&server, "/monitoring/errors", None, "two errors", |status, doc| {
        status == 200 && doc["total_errors_last_hour"].as_u64() >= Some(2)
    })
    .await;
    assert!(num(&doc, "/error_rate_per_minute") > 0.0, "{doc}");
    let breakdown = doc["error_breakdown"].as_object().expect("error_breakdown object");
    assert!(breakdown.keys().any(|k| k.starts_with("authentication_error_")), "bad token: {doc}");
    assert!(breakdown.keys().any(|k| k.starts_with("validation_error_")), "malformed frame: {doc}");
    let recent = doc["recent_errors"].as_array().expect("recent_errors array");
    assert!(recent.len() >= 2, "{doc}");
    for e in recent {
        assert_keys(e, &["/type", "/severity", "/message", "/timestamp", "/player_id"]);
        assert!(e["timestamp"].is_number(), "error timestamps are Unix seconds: {e}");
    }
    let validation = recent.iter().find(|e| e["type"] == "validation_error").expect("a validation error");
    assert_eq!(validation["player_id"], "bob", "{validation}");
    assert_eq!(doc["per_minute"].as_array().map(Vec::len), Some(60), "{doc}");

    let (status, auth) = get(&server, "/monitoring/errors?type=authentication_error", None).await;
    assert_eq!(status, 200, "{auth}");
    assert!(num(&auth, "/total_errors_last_hour") >= 1.0, "{auth}");
    let recent = auth["recent_errors"].as_array().expect("recent_errors");
    assert!(!recent.is_empty(), "{auth}");
    assert!(recent.iter().all(|e| e["type"] == "authentication_error"), "{auth}");
    let keys = auth["error_breakdown"].as_object().expect("error_breakdown");
    assert!(keys.keys().all(|k| k.starts_with("authentication_error_")), "{auth}");

    let (status, bogus) = get(&server, "/monitoring/errors?type=bogus", None).await;
    assert_eq!(status, 400, "{bogus}");
    assert!(bogus["error"]["code"].is_string(), "{bogus}");
}

#[tokio::test]
async fn connections_show_the_dual_distribution() {
    let server = common_mon::start().await;
    let traffic = Traffic::generate(&server).await;

    let doc = wait_json(&server, "/monitoring/connections", None, "two players", |status, doc| {
        status == 200 && doc["total_connections"] == 3
    })
    .await;
    let dist = &doc["connection_distribution"];
    assert_eq!(dist["dual_connection_players"], 1, "{doc}");
    assert_eq!(dist["websocket_only_players"], 1, "{doc}");
    assert_eq!(dist["sse_only_players"], 0, "{doc}");
    assert_eq!(dist["total_players"], 2, "{doc}");
    assert_eq!(doc["connections_by_transport"]["websocket"], 2, "{doc}");
    assert_eq!(doc["connections_by_transport"]["sse"], 1, "{doc}");

    // A frame is counted once written, which can be just after the client
    // read it.
    let sent_all = |doc: &Value| {
        let conns = doc.pointer("/sessions/0/connections").and_then(Value::as_array);
        conns.is_some_and(|c| {
            c.len() == 2 && c.iter().all(|c| c["messages_sent"].as_u64() >= Some(DIRECT_MESSAGES))
        })
    };
    let alice = wait_json(
        &server,
        "/monitoring/connections?player_id=alice",
        None,
        "alice's deliveries",
        |status, doc| status == 200 && sent_all(doc),
    )
    .await;
    assert_eq!(alice["player_id"], "alice", "{alice}");
    let sessions = alice["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{alice}");
    assert_eq!(sessions[0]["session_id"], traffic.alice_session.as_str(), "{alice}");
    let conns = sessions[0]["connections"].as_array().expect("connections");
    let mut transports: Vec<&str> = conns.iter().filter_map(|c| c["transport"].as_str()).collect();
    transports.sort_unstable();
    assert_eq!(transports, ["sse", "websocket"], "{alice}");
    for c in conns {
        assert_keys(c, &["/age_seconds", "/queue_depth", "/messages_sent"]);
        assert!(num(c, "/age_seconds") >= 0.0, "{c}");
        assert!(num(c, "/messages_sent") >= DIRECT_MESSAGES as f64, "{c}");
    }

    let (status, nobody) = get(&server, "/monitoring/connections?player_id=nobody", None).await;
    assert_eq!(status, 404, "{nobody}");
    assert!(nobody["error"]["code"].is_string(), "{nobody}");
}

#[tokio::test]
async fn figures_move_with_traffic() {
    let server = common_mon::start().await;
    let mut traffic = Traffic::generate(&server).await;
    let delivered =
        |doc: &Value| doc.pointer("/message_delivery/successful_deliveries").and_then(Value::as_u64);
    let errors = |doc: &Value| doc["total_errors_last_hour"].as_u64();

    // Settle on the reference traffic (two deliveries per direct message).
    let expected = DIRECT_MESSAGES * 2;
    let before = wait_json(&server, "/monitoring/performance", None, "reference deliveries", |_, doc| {
        delivered(doc) >= Some(expected)
    })
    .await;
    let errors_before =
        wait_json(&server, "/monitoring/errors", None, "reference errors", |_, doc| errors(doc) >= Some(2))
            .await;

    traffic.deliver_one(&server).await;
    traffic.malformed_frame().await;

    let was = delivered(&before);
    let after = wait_json(&server, "/monitoring/performance", None, "one more delivery", |_, doc| {
        delivered(doc) > was
    })
    .await;
    assert!(
        num(&after, "/message_delivery/total_messages_sent")
            > num(&before, "/message_delivery/total_messages_sent"),
        "before {before}\nafter {after}"
    );
    let was = errors(&errors_before);
    let errors_after =
        wait_json(&server, "/monitoring/errors", None, "one more error", |_, doc| errors(doc) > was).await;
    let validation = |doc: &Value| -> u64 {
        doc["error_breakdown"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("validation_error_"))
                    .filter_map(|(_, v)| v.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    };
    assert!(validation(&errors_after) > validation(&errors_before), "{errors_before}\n{errors_after}");
}

#[tokio::test]
async fn operator_token_guards_monitoring_and_metrics_only() {
    let server = server_with(|b| b.set("monitoring", "token", &format!("\"{MON_TOKEN}\""))).await;
    let api_key = server.api_key();

    for path in ["/monitoring/errors", "/monitoring/performance", "/monitoring/connection-health"] {
        let (status, body) = get(&server, path, None).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        let (status, body) = get(&server, path, Some(api_key)).await;
        assert_eq!(status, 401, "{path} with the API key: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
        let (status, body) = get(&server, path, Some(MON_TOKEN)).await;
        assert_eq!(status, 200, "{path} with the operator token: {body}");
    }
    let (status, _) = get(&server, &format!("/monitoring/errors?token={MON_TOKEN}"), None).await;
    assert_eq!(status, 200, "the token also works as ?token=");

    let (status, _, body) = scrape_with(&server, None).await;
    assert_eq!(status, 401, "/metrics without a token: {body}");
    let err: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("JSON 401 body ({e}): {body}"));
    assert_eq!(err["error"]["code"], "unauthorized", "{body}");
    let (status, _, body) = scrape_with(&server, Some(api_key)).await;
    assert_eq!(status, 401, "/metrics with the API key: {body}");
    let (status, _, body) = scrape_with(&server, Some(MON_TOKEN)).await;
    assert_eq!(status, 200, "/metrics with the operator token: {body}");
    assert!(body.contains("tandem_build_info"), "{body}");

    let (status, body) = get(&server, "/api/players/x", Some(MON_TOKEN)).await;
    assert_eq!(status, 401, "the operator token is not an API key: {body}");

    for path in ["/health", "/health/detailed", "/health/live", "/health/ready"] {
        let (status, body) = get(&server, path, None).await;
        assert_eq!(status, 200, "{path} stays open for load balancers: {body}");
    }
}

/// Padding of each message that fills a stalled client's socket; under
/// the default 64 KiB body limit.
const PAD_BYTES: usize = 60_000;

/// Bound on the messages sent to fill a stalled client's socket buffers.
const MAX_FILL_MESSAGES: u64 = 2_000;

/// Frames queued for the stalled client that prove its writer is blocked
/// (a flowing writer empties the queue at once); far below the default
/// queue of 256, so it is never cut as a slow consumer.
const BLOCKED_QUEUE_DEPTH: u64 = 4;

/// An SSE client that sends its request and never reads: once its socket
/// buffers are full, the server cannot hand it the shutdown event, so the
/// drain lasts the whole grace period instead of a few milliseconds.
async fn stalled_sse_client(server: &TestServer, player: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "GET /sse?player_id={player} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr()
    );
    stream.write_all(request.as_bytes()).await.expect("send the SSE request");
    let path = format!("/monitoring/connections?player_id={player}");
    wait_json(server, &path, None, "stalled client attached", |status, doc| {
        status == 200 && doc["sse_connections"] == 1
    })
    .await;
    let pad = "x".repeat(PAD_BYTES);
    for n in 0..MAX_FILL_MESSAGES {
        let (status, body) = server
            .api_post(
                &format!("/api/players/{player}/messages"),
                json!({"event": "fill", "data": {"n": n, "pad": pad}}),
            )
            .await;
        assert_eq!(status, 200, "fill message {n}: {body}");
        let (_, doc) = get(server, &path, None).await;
        let depth = doc
            .pointer("/sessions/0/connections/0/queue_depth")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no queue_depth in {doc}"));
        if depth >= BLOCKED_QUEUE_DEPTH {
            return stream;
        }
    }
    panic!("{MAX_FILL_MESSAGES} messages of {PAD_BYTES} bytes did not block the stalled client");
}

#[tokio::test]
async fn readiness_turns_draining_on_sigterm() {
    let server = server_with(|b| b.set("server", "shutdown_grace_seconds", "3")).await;
    let _peer = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("connect");
    let _stalled = stalled_sse_client(&server, "stalled").await;
    let (status, ready) = get(&server, "/health/ready", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready", "{ready}");

    server.send_signal(Signal::Term);
    let url = format!("{}/health/ready", server.base_url());
    let draining = until_ok("readiness says draining", Duration::from_secs(10), POLL, || async {
        let resp = server.http().get(&url).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 503 && body["status"] == "draining" { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await;
    assert_eq!(draining["status"], "draining");
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
