//! `/health*`: the verdict for load balancers and the details for
//! operators.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::{error_response, json_response};
use crate::Monitoring;
use crate::clock;
use crate::health::{ComponentStatus, overall_of};

/// 503 when the status means "do not send traffic here".
fn status_code(status: ComponentStatus) -> StatusCode {
    if status.is_unavailable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
}

/// The `performance` entry of `/health/detailed`. Informational: latency
/// alone never takes the server out of a load balancer.
fn performance_component(m: &Monitoring) -> Value {
    json!({
        "status": ComponentStatus::Healthy,
        "avg_response_time_ms": m.performance.avg_response_time_ms(),
        "requests_per_second": m.performance.requests_per_second(),
    })
}

/// `/health`: overall status and one status string per component.
pub fn summary_document(m: &Monitoring) -> (ComponentStatus, Value) {
    let reports = m.health.reports();
    let status = overall_of(&reports);
    let components: Map<String, Value> = reports.iter().map(|r| (r.name.clone(), json!(r.status))).collect();
    let doc = json!({
        "status": status,
        "timestamp": clock::rfc3339(std::time::SystemTime::now()),
        "version": m.version(),
        "uptime": m.uptime().as_secs(),
        "components": components,
    });
    (status, doc)
}

/// `/health/detailed`: every component's report, plus `performance`.
pub fn detailed_document(m: &Monitoring) -> (ComponentStatus, Value) {
    let reports = m.health.reports();
    let status = overall_of(&reports);
    let mut components: Map<String, Value> = reports.iter().map(|r| (r.name.clone(), r.to_json())).collect();
    components.insert("performance".into(), performance_component(m));
    let doc = json!({
        "status": status,
        "timestamp": clock::rfc3339(std::time::SystemTime::now()),
        "version": m.version(),
        "uptime": m.uptime().as_secs(),
        "components": components,
    });
    (status, doc)
}

pub(super) async fn summary(m: web::Data<Monitoring>) -> HttpResponse {
    m.health.refresh_local().await;
    let (status, doc) = summary_document(&m);
    json_response(status_code(status), &doc)
}

pub(super) async fn detailed(m: web::Data<Monitoring>) -> HttpResponse {
    m.health.refresh_local().await;
    let (status, doc) = detailed_document(&m);
    json_response(status_code(status), &doc)
}

pub(super) async fn live() -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "status": "alive" }))
}

pub(super) async fn ready(m: web::Data<Monitoring>) -> HttpResponse {
    if m.is_draining() {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "draining" }))
    } else {
        json_response(StatusCode::OK, &json!({ "status": "ready" }))
    }
}

pub(super) async fn service(m: web::Data<Monitoring>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    if name == "performance" {
        let mut doc = performance_component(&m);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("name".into(), json!(name));
        }
        return json_response(StatusCode::OK, &doc);
    }
    m.health.refresh_local().await;
    match m.health.report(&name) {
        Some(report) => {
            let mut doc = report.to_json();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("name".into(), json!(name));
            }
            json_response(status_code(report.status), &doc)
        }
        None => error_response(
            StatusCode::NOT_FOUND,
            "unknown_service",
            format_args!("no health component named `{name}` (known: {})", m.health.names().join(", ")),
        ),
    }
}

pub(super) async fn force_check(m: web::Data<Monitoring>) -> HttpResponse {
    m.health.check_all().await;
    let (status, doc) = detailed_document(&m);
    json_response(status_code(status), &doc)
}
