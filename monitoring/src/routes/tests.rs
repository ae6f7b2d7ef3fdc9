//! Handler tests: the real routes in an in-process actix service, with a
//! fake connection source and a fixed system sampler (no network).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, test};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tandem_protocol::Transport;

use crate::health::tests::{Fake, fast_settings};
use crate::system::{SystemSampler, SystemSnapshot};
use crate::{
    ComponentStatus, ConnectionOverview, ConnectionSample, ConnectionStatsSource, ErrorEvent, ErrorType,
    Monitoring, MonitoringConfig, MonitoringOptions, Severity,
};

#[derive(Default)]
struct FakeSource {
    samples: Mutex<Vec<ConnectionSample>>,
    last_activity: Mutex<Option<SystemTime>>,
}

impl ConnectionStatsSource for FakeSource {
    fn connection_samples(&self) -> Vec<ConnectionSample> {
        self.samples.lock().clone()
    }

    fn overview(&self) -> ConnectionOverview {
        ConnectionOverview {
            websocket_connections: 3,
            sse_connections: 2,
            sessions: 4,
            players: 3,
            websocket_only_players: 1,
            sse_only_players: 1,
            dual_connection_players: 1,
        }
    }

    fn player_detail(&self, player_id: &str) -> Option<Value> {
        (player_id == "alice").then(|| json!({ "player_id": "alice", "sessions": [] }))
    }

    fn last_activity(&self) -> Option<SystemTime> {
        *self.last_activity.lock()
    }
}

fn healthy_memory() -> Arc<SystemSampler> {
    Arc::new(SystemSampler::fixed(SystemSnapshot {
        total_memory_bytes: 2048 << 20,
        used_memory_bytes: 512 << 20,
        process_rss_bytes: 64 << 20,
        process_cpu_percent: 3.0,
        sampled_at: None,
    }))
}

fn monitoring_with(
    token: &str,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> (Arc<Monitoring>, Arc<FakeSource>) {
    let source = Arc::new(FakeSource::default());
    let cfg = MonitoringConfig { token: token.into(), ..Default::default() };
    let options = MonitoringOptions {
        health: Some(fast_settings(1)),
        sampler: Some(healthy_memory()),
        error_capacity: Some(100),
    };
    let m = Monitoring::with_options(&cfg, "1.2.3", source.clone(), prometheus, options);
    (m, source)
}

macro_rules! app {
    ($m:expr) => {{
        let m = Arc::clone(&$m);
        test::init_service(App::new().configure(move |cfg| super::configure(cfg, m))).await
    }};
}

async fn json_of(resp: ServiceResponse) -> (StatusCode, Value) {
    let status = resp.status();
    let body: Value = test::read_body_json(resp).await;
    (status, body)
}

fn assert_keys(v: &Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "missing `{k}` in {v}");
    }
}

#[actix_web::test]
async fn health_summary_has_the_documented_shape() {
    let (m, _) = monitoring_with("", None);
    let app = app!(m);
    let (status, body) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_keys(&body, &["status", "timestamp", "version", "uptime", "components"]);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], "1.2.3");
    assert!(body["uptime"].is_u64());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["components"]["connections"], "healthy");
    assert_eq!(body["components"]["memory"], "healthy");
    assert_eq!(body["components"]["activity"], "healthy");
}

#[actix_web::test]
async fn unhealthy_connections_make_health_503() {
    let (m, source) = monitoring_with("", None);
    *source.samples.lock() = (0..40)
        .map(|i| ConnectionSample { transport: Transport::Sse, age: Duration::from_secs(5), healthy: i < 20 })
        .collect();
    let app = app!(m);
    let (status, body) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["components"]["connections"], "unhealthy");
}

#[actix_web::test]
async fn detailed_health_flattens_component_details() {
    let (m, source) = monitoring_with("", None);
    *source.samples.lock() = vec![
        ConnectionSample { transport: Transport::WebSocket, age: Duration::from_secs(1), healthy: true },
        ConnectionSample { transport: Transport::Sse, age: Duration::from_secs(1), healthy: true },
    ];
    *source.last_activity.lock() = Some(SystemTime::now());
    let app = app!(m);
    let (status, body) = json_of(
        test::call_service(&app, test::TestRequest::get().uri("/health/detailed").to_request()).await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_keys(&body, &["status", "timestamp", "version", "uptime", "components"]);
    let c = &body["components"];
    let bookkeeping = ["status", "response_time_ms", "last_check", "retry_count", "consecutive_failures"];
    assert_keys(&c["connections"], &bookkeeping);
    assert_keys(
        &c["connections"],
        &["total_connections", "healthy_connections", "unhealthy_connections", "health_percentage"],
    );
    assert_eq!(c["connections"]["total_connections"], 2);
    assert_keys(&c["memory"], &bookkeeping);
    assert_keys(&c["memory"], &["used_mb", "total_mb", "usage_percentage", "process_rss_mb"]);
    assert_eq!(c["memory"]["used_mb"], 512);
    assert_keys(&c["activity"], &["last_activity", "seconds_since_activity"]);
    assert!(c["activity"]["last_activity"].is_string());
    assert_keys(&c["performance"], &["status", "avg_response_time_ms", "requests_per_second"]);
}

#[actix_web::test]
async fn live_and_ready_follow_draining() {
    let (m, _) = monitoring_with("", None);
    let app = app!(m);
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();
    let (s, b) = json_of(test::call_service(&app, get("/health/live")).await).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status": "alive"})));
    let (s, b) = json_of(test::call_service(&app, get("/health/ready")).await).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status": "ready"})));
    m.set_draining();
    assert!(m.is_draining());
    let (s, b) = json_of(test::call_service(&app, get("/health/ready")).await).await;
    assert_eq!((s, b), (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "draining"})));
    let (s, _) = json_of(test::call_service(&app, get("/health/live")).await).await;
    assert_eq!(s, StatusCode::OK);
}

#[actix_web::test]
async fn not_ready_while_a_critical_component_was_never_reached() {
    let (m, _) = monitoring_with("", None);
    m.health.register(Box::new(Fake::new("broker", ComponentStatus::Connecting)));
    m.health.check_all().await;
    let app = app!(m);
    let (s, b) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health/ready").to_request()).await)
            .await;
    assert_eq!(
        (s, b),
        (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "connecting", "components": ["broker"]}))
    );
    // Draining says so first.
    m.set_draining();
    let (s, b) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health/ready").to_request()).await)
            .await;
    assert_eq!((s, b), (StatusCode::SERVICE_UNAVAILABLE, json!({"status": "draining"})));
}

#[actix_web::test]
async fn service_route_reports_one_component_or_404() {
    let (m, _) = monitoring_with("", None);
    m.health.register(Box::new(Fake::new("db", ComponentStatus::Unhealthy)));
    m.health.check_all().await;
    let app = app!(m);
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();

    let (s, b) = json_of(test::call_service(&app, get("/health/service/memory")).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["name"], "memory");
    assert_keys(&b, &["status", "used_mb", "last_check", "retry_count"]);

    let (s, b) = json_of(test::call_service(&app, get("/health/service/db")).await).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["status"], "unhealthy");
    assert_eq!(b["retry_count"], 1);

    let (s, b) = json_of(test::call_service(&app, get("/health/service/performance")).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_keys(&b, &["avg_response_time_ms", "requests_per_second"]);

    let (s, b) = json_of(test::call_service(&app, get("/health/service/nope")).await).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "unknown_service");
    assert!(b["error"]["message"].is_string());

    // A failing critical dependency takes the whole service out.
    let (s, b) = json_of(test::call_service(&app, get("/health")).await).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["components"]["db"], "unhealthy");
}

#[actix_web::test]
async fn non_critical_failure_only_degrades() {
    let (m, _) = monitoring_with("", None);
    let mut cache = Fake::new("cache", ComponentStatus::Disconnected);
    cache.critical = false;
    m.health.register(Box::new(cache));
    m.health.check_all().await;
    let app = app!(m);
    let (s, b) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "degraded");
    assert_eq!(b["components"]["cache"], "disconnected");
}

#[actix_web::test]
async fn force_check_runs_every_check_now() {
    let (m, _) = monitoring_with("", None);
    let fake = Fake::new("broker", ComponentStatus::Healthy);
    let attempts = fake.attempts.clone();
    m.health.register(Box::new(fake));
    let app = app!(m);
    let (_, before) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/health").to_request()).await).await;
    assert_eq!(before["components"]["broker"], "unknown");
    assert_eq!(before["status"], "degraded");

    let (s, b) = json_of(
        test::call_service(&app, test::TestRequest::post().uri("/health/force-check").to_request()).await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(b["status"], "healthy");
    assert_eq!(b["components"]["broker"]["status"], "healthy");
    assert!(b["components"]["broker"]["last_check"].is_string());
    assert_keys(&b["components"], &["connections", "memory", "activity", "performance"]);
}

#[actix_web::test]
async fn connection_health_has_the_documented_shape() {
    let (m, source) = monitoring_with("", None);
    *source.samples.lock() = vec![
        ConnectionSample { transport: Transport::WebSocket, age: Duration::from_secs(10), healthy: true },
        ConnectionSample { transport: Transport::WebSocket, age: Duration::from_secs(900), healthy: false },
        ConnectionSample { transport: Transport::Sse, age: Duration::from_secs(9000), healthy: true },
    ];
    let app = app!(m);
    let (s, b) = json_of(
        test::call_service(&app, test::TestRequest::get().uri("/monitoring/connection-health").to_request())
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_keys(
        &b,
        &[
            "overall_health",
            "connection_type_health",
            "health_trends",
            "connection_age_distribution",
            "healthy_definition",
        ],
    );
    assert_keys(
        &b["overall_health"],
        &["total_connections", "healthy_connections", "unhealthy_connections", "health_percentage"],
    );
    for t in ["websocket", "sse"] {
        assert_keys(&b["connection_type_health"][t], &["total", "healthy", "unhealthy", "health_percentage"]);
    }
    assert_keys(&b["health_trends"], &["last_hour_health_percentage", "last_24_hours_health_percentage"]);
    // No sample yet: the trends show the current value.
    assert_eq!(b["health_trends"]["last_hour_health_percentage"], 66.67);
    assert_keys(
        &b["connection_age_distribution"],
        &["0-5_minutes", "5-30_minutes", "30_minutes-2_hours", "2_hours+"],
    );
    assert_eq!(b["connection_age_distribution"]["2_hours+"], 1);
    assert!(b["healthy_definition"].as_str().unwrap().contains("80%"));

    m.sample_trends();
    assert_eq!(m.trends.len(), 1);
}

#[actix_web::test]
async fn performance_has_the_documented_shape() {
    let (m, _) = monitoring_with("", None);
    m.performance.record_delivery(Duration::from_millis(3));
    m.performance.record_connection_establishment(Transport::Sse, Duration::from_millis(8));
    let app = app!(m);
    let (s, b) = json_of(
        test::call_service(&app, test::TestRequest::get().uri("/monitoring/performance").to_request()).await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_keys(&b, &["connection_establishment", "message_delivery", "system_performance", "timestamp"]);
    assert_keys(
        &b["connection_establishment"],
        &[
            "total_connections",
            "websocket_connections",
            "sse_connections",
            "avg_websocket_establishment_ms",
            "avg_sse_establishment_ms",
            "max_websocket_establishment_ms",
            "max_sse_establishment_ms",
            "p95_websocket_establishment_ms",
            "p95_sse_establishment_ms",
        ],
    );
    assert_keys(
        &b["message_delivery"],
        &[
            "total_messages_sent",
            "successful_deliveries",
            "failed_deliveries",
            "delivery_success_rate",
            "avg_delivery_time_ms",
            "max_delivery_time_ms",
            "p95_delivery_time_ms",
        ],
    );
    assert_keys(
        &b["system_performance"],
        &[
            "avg_response_time_ms",
            "requests_per_second",
            "memory_usage_mb",
            "cpu_usage_percent",
            "active_connections",
        ],
    );
    assert_eq!(b["system_performance"]["active_connections"], 5);
    assert_eq!(b["system_performance"]["memory_usage_mb"], 64.0);
    assert_eq!(b["message_delivery"]["successful_deliveries"], 1);
}

#[actix_web::test]
async fn errors_have_the_documented_shape_and_filters() {
    let (m, _) = monitoring_with("", None);
    m.errors.record(
        ErrorEvent::new(ErrorType::ConnectionError, Severity::High, "WebSocket connection failed")
            .player("p1"),
    );
    m.errors.record(ErrorEvent::new(ErrorType::AuthenticationError, Severity::High, "Invalid session token"));
    let app = app!(m);
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();

    let (s, b) = json_of(test::call_service(&app, get("/monitoring/errors")).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_keys(
        &b,
        &[
            "total_errors_last_hour",
            "error_rate_per_minute",
            "error_breakdown",
            "recent_errors",
            "per_minute",
            "timestamp",
        ],
    );
    assert_eq!(b["total_errors_last_hour"], 2);
    assert_keys(
        &b["recent_errors"][0],
        &["type", "severity", "message", "timestamp", "player_id", "session_id", "connection_id"],
    );
    assert_eq!(b["per_minute"].as_array().unwrap().len(), 60);
    assert_keys(&b["per_minute"][59], &["minute", "count", "breakdown"]);

    let (s, b) = json_of(
        test::call_service(&app, get("/monitoring/errors?type=connection_error&severity=high")).await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["total_errors_last_hour"], 1);
    assert_eq!(b["recent_errors"][0]["player_id"], "p1");

    let (s, b) = json_of(test::call_service(&app, get("/monitoring/errors?type=bogus")).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"]["code"], "invalid_filter");
    let (s, _) = json_of(test::call_service(&app, get("/monitoring/errors?severity=HIGH")).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn connections_distribution_and_player_detail() {
    let (m, _) = monitoring_with("", None);
    let app = app!(m);
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();
    let (s, b) = json_of(test::call_service(&app, get("/monitoring/connections")).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_keys(
        &b,
        &[
            "connection_distribution",
            "connections_by_transport",
            "total_connections",
            "sessions",
            "timestamp",
        ],
    );
    assert_eq!(
        b["connection_distribution"],
        json!({"total_players": 3, "websocket_only_players": 1, "sse_only_players": 1, "dual_connection_players": 1})
    );
    assert_eq!(b["connections_by_transport"], json!({"websocket": 3, "sse": 2}));
    assert_eq!(b["total_connections"], 5);

    let (s, b) =
        json_of(test::call_service(&app, get("/monitoring/connections?player_id=alice")).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["player_id"], "alice");

    let (s, b) = json_of(test::call_service(&app, get("/monitoring/connections?player_id=bob")).await).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "player_not_found");
}

#[actix_web::test]
async fn operator_token_guards_monitoring_and_metrics_only() {
    let (m, _) = monitoring_with("s3cret", None);
    let app = app!(m);
    for uri in [
        "/monitoring/errors",
        "/monitoring/performance",
        "/monitoring/connection-health",
        "/monitoring/connections",
        "/metrics",
    ] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert!(resp.headers().contains_key("www-authenticate"));
        let (s, b) = json_of(resp).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(b["error"]["code"], "unauthorized");
        let wrong =
            test::TestRequest::get().uri(uri).insert_header(("Authorization", "Bearer nope")).to_request();
        assert_eq!(test::call_service(&app, wrong).await.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let bearer = test::TestRequest::get()
        .uri("/monitoring/errors")
        .insert_header(("Authorization", "Bearer s3cret"))
        .to_request();
    assert_eq!(test::call_service(&app, bearer).await.status(), StatusCode::OK);
    let query =
        test::TestRequest::get().uri("/monitoring/errors?token=s3cret&type=system_error").to_request();
    assert_eq!(test::call_service(&app, query).await.status(), StatusCode::OK);
    let open = test::TestRequest::get().uri("/health").to_request();
    assert_eq!(test::call_service(&app, open).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn metrics_without_a_recorder_is_503() {
    let (m, _) = monitoring_with("", None);
    let app = app!(m);
    let (s, b) =
        json_of(test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["error"]["code"], "metrics_unavailable");
}

#[actix_web::test]
async fn metrics_render_prometheus_text_with_scrape_gauges() {
    let recorder = crate::recorder::builder().unwrap().build_recorder();
    let handle = recorder.handle();
    // The single-threaded test runtime runs handlers on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (m, _) = monitoring_with("", Some(handle));
    m.errors.record(ErrorEvent::new(ErrorType::SessionError, Severity::Low, "expired"));
    let app = app!(m);
    let resp = test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers().get("content-type").unwrap(), "text/plain; version=0.0.4");
    let body = test::read_body(resp).await;
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.contains("tandem_connection_health_ratio 1"), "{text}");
    assert!(text.contains("tandem_uptime_seconds"), "{text}");
    assert!(text.contains("tandem_errors_total{type=\"session_error\",severity=\"low\"} 1"), "{text}");
    assert!(text.contains("tandem_process_"), "{text}");
}

#[actix_web::test]
async fn live_page_is_served_without_the_token_and_locked_down() {
    let (m, _) = monitoring_with("s3cret", None);
    let app = app!(m);
    let get = |uri: &'static str| test::TestRequest::get().uri(uri).to_request();
    for (uri, content_type, needle) in [
        ("/monitoring/", "text/html; charset=utf-8", "<script src=\"page.js\""),
        ("/monitoring/page.js", "text/javascript; charset=utf-8", "Authorization"),
        ("/monitoring/page.css", "text/css; charset=utf-8", ".pill"),
    ] {
        let resp = test::call_service(&app, get(uri)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        assert_eq!(resp.headers().get("content-type").unwrap(), content_type, "{uri}");
        let csp = resp.headers().get("content-security-policy").unwrap().to_str().unwrap().to_owned();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
        assert_eq!(resp.headers().get("referrer-policy").unwrap(), "no-referrer");
        let body = test::read_body(resp).await;
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.to_lowercase().contains(&needle.to_lowercase()), "{uri} lacks {needle}");
        // Nothing from another origin (the SVG namespace is a name, not a fetch).
        let text = text.replace("http://www.w3.org/2000/svg", "");
        assert!(!text.contains("http://") && !text.contains("https://"), "{uri} names an external URL");
    }
    // The data behind it still wants the token.
    let resp = test::call_service(&app, get("/monitoring/connections")).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn bare_monitoring_redirects_to_the_page_keeping_the_query() {
    let (m, _) = monitoring_with("", None);
    let app = app!(m);
    let resp = test::call_service(&app, test::TestRequest::get().uri("/monitoring").to_request()).await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers().get("location").unwrap(), "/monitoring/");
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/monitoring?token=abc").to_request()).await;
    assert_eq!(resp.headers().get("location").unwrap(), "/monitoring/?token=abc");
}

#[actix_web::test]
async fn state_file_figures_are_exported_on_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, r#"{"restarts": 4, "uptime_total_seconds": 100.0}"#).unwrap();
    let recorder = crate::recorder::builder().unwrap().build_recorder();
    let handle = recorder.handle();
    let text = metrics::with_local_recorder(&recorder, || {
        let source = Arc::new(FakeSource::default());
        let cfg = MonitoringConfig { state_file: path.display().to_string(), ..Default::default() };
        let options = MonitoringOptions {
            health: Some(fast_settings(1)),
            sampler: Some(healthy_memory()),
            error_capacity: Some(10),
        };
        let m = Monitoring::with_options(&cfg, "1.2.3", source, Some(handle.clone()), options);
        m.render_metrics().unwrap()
    });
    assert!(text.contains("tandem_restarts_total 5"), "{text}");
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("tandem_uptime_total_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!((100.0..200.0).contains(&total), "{total}");
    assert!(text.contains("tandem_memory_usage_ratio 0.25"), "{text}");
    // Start-up wrote the new restart count already.
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("\"restarts\":5"), "{saved}");
}

/// A check whose details reuse names of the document's own fields.
struct Shadowing;

impl crate::HealthCheck for Shadowing {
    fn name(&self) -> &str {
        "shadow"
    }

    fn check(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::CheckOutcome> + Send + '_>> {
        Box::pin(async {
            crate::CheckOutcome::healthy(
                json!({ "status": "bogus", "name": "bogus", "critical": 7, "extra": 1 }),
            )
        })
    }
}

#[actix_web::test]
async fn details_never_duplicate_or_override_document_fields() {
    let (m, _) = monitoring_with("", None);
    m.health.register(Box::new(Shadowing));
    m.health.check_all().await;
    let app = app!(m);
    for (uri, object) in [("/health/service/shadow", "$"), ("/health/detailed", "components.shadow")] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        let body = test::read_body(resp).await;
        let text = std::str::from_utf8(&body).unwrap();
        // Serialized straight to text: a repeated key would show here.
        assert!(!text.contains("bogus") && !text.contains("\"critical\":7"), "{text}");
        if object == "$" {
            assert_eq!(text.matches("\"critical\"").count(), 1, "{text}");
        }
        let v: Value = serde_json::from_str(text).unwrap();
        let c = if object == "$" { &v } else { &v["components"]["shadow"] };
        assert_eq!(c["status"], "healthy", "{text}");
        assert_eq!(c["critical"], true, "{text}");
        assert_eq!(c["extra"], 1, "{text}");
    }
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/health/service/shadow").to_request()).await;
    let (_, b) = json_of(resp).await;
    assert_eq!(b["name"], "shadow");
}
