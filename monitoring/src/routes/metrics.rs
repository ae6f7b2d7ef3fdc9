//! `/metrics`: the Prometheus text exposition.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::authorized;
use super::error_response;
use crate::Monitoring;

/// Content type of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub(super) async fn metrics(req: HttpRequest, m: web::Data<Monitoring>) -> HttpResponse {
    if !authorized(&req, m.token()) {
        return super::monitoring::unauthorized();
    }
    match m.render_metrics() {
        Some(text) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_CONTENT_TYPE)))
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .body(text),
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "no Prometheus recorder is installed in this process",
        ),
    }
}
