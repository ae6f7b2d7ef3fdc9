//! HTTP routes of the operator surface: `/health*` (open, for load
//! balancers), `/monitoring/*` and `/metrics` (behind the operator token
//! when one is configured), and the live page `/monitoring/` (public: it
//! holds no data, its script fetches the JSON with the token).

mod auth;
mod health;
mod metrics;
mod monitoring;
mod page;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::Monitoring;

pub use auth::constant_time_eq;
pub use health::{
    DetailedComponent, HealthDetailed, HealthDocument, HealthSummary, PerformanceComponent, ServiceDocument,
    StatusBody, detailed_document, summary_document,
};
pub use metrics::PROMETHEUS_CONTENT_TYPE;
pub use monitoring::{
    ConnectionDistribution, ConnectionHealthDocument, ConnectionsByTransport, ConnectionsDocument,
    HealthTrendsDocument, connection_health_document, connections_document,
};

/// Registers every monitoring route on the server's app.
pub fn configure(cfg: &mut web::ServiceConfig, monitoring: Arc<Monitoring>) {
    let data = web::Data::from(monitoring);
    let resource = |path: &str| web::resource(path).app_data(data.clone());
    cfg.service(
        resource("/health").route(web::get().to(health::summary)).route(web::head().to(health::summary)),
    )
    .service(resource("/health/detailed").route(web::get().to(health::detailed)))
    .service(resource("/health/live").route(web::get().to(health::live)).route(web::head().to(health::live)))
    .service(
        resource("/health/ready").route(web::get().to(health::ready)).route(web::head().to(health::ready)),
    )
    .service(resource("/health/service/{name}").route(web::get().to(health::service)))
    .service(resource("/health/force-check").route(web::post().to(health::force_check)))
    .service(resource("/monitoring").route(web::get().to(page::redirect)))
    .service(resource("/monitoring/").route(web::get().to(page::index)))
    .service(resource("/monitoring/page.js").route(web::get().to(page::script)))
    .service(resource("/monitoring/page.css").route(web::get().to(page::stylesheet)))
    .service(resource("/monitoring/connection-health").route(web::get().to(monitoring::connection_health)))
    .service(resource("/monitoring/performance").route(web::get().to(monitoring::performance)))
    .service(resource("/monitoring/errors").route(web::get().to(monitoring::errors)))
    .service(resource("/monitoring/connections").route(web::get().to(monitoring::connections)))
    .service(resource("/metrics").route(web::get().to(metrics::metrics)));
}

/// A JSON response that no cache keeps: monitoring answers are only true
/// now.
fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

/// The protocol's error body: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable `code` and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

fn error_response(status: StatusCode, code: &str, message: impl std::fmt::Display) -> HttpResponse {
    let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.to_string() } };
    json_response(status, &body)
}
