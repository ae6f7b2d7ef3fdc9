//! `/health*`: the verdict for load balancers and the details for
//! operators.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::{error_response, json_response};
use crate::Monitoring;
use crate::clock;
use crate::health::{ComponentDocument, ComponentReport, ComponentStatus, overall_of};

/// 503 when the status means "do not send traffic here".
fn status_code(status: ComponentStatus) -> StatusCode {
    if status.is_unavailable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }
}

/// `/health` and `/health/detailed`: the overall status and one entry per
/// component, keyed by name. `C` is what an entry shows: its status
/// ([`HealthSummary`]) or its whole report ([`HealthDetailed`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthDocument<C> {
    /// The worst component, a non-critical one counting as degraded at most.
    pub status: ComponentStatus,
    /// RFC 3339, now.
    pub timestamp: String,
    pub version: &'static str,
    /// Seconds since this process started.
    pub uptime: u64,
    pub components: BTreeMap<String, C>,
}

/// The `/health` document.
pub type HealthSummary = HealthDocument<ComponentStatus>;

/// The `/health/detailed` (and `/health/force-check`) document.
pub type HealthDetailed = HealthDocument<DetailedComponent>;

/// One entry of `/health/detailed`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DetailedComponent {
    /// A checked component: its details and bookkeeping.
    Checked(ComponentDocument),
    /// The informational `performance` entry.
    Performance(PerformanceComponent),
}

/// The `performance` entry of `/health/detailed`. Informational: latency
/// alone never takes the server out of a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PerformanceComponent {
    /// Always `healthy`.
    pub status: ComponentStatus,
    pub avg_response_time_ms: f64,
    pub requests_per_second: f64,
}

/// `/health/service/{name}`: one entry of `/health/detailed` with its name.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServiceDocument<C> {
    pub name: String,
    #[serde(flatten)]
    pub component: C,
}

/// `/health/live` and `/health/ready`: `{"status": "alive" | "ready" | "draining"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StatusBody {
    pub status: &'static str,
}

fn performance_component(m: &Monitoring) -> PerformanceComponent {
    PerformanceComponent {
        status: ComponentStatus::Healthy,
        avg_response_time_ms: m.performance.avg_response_time_ms(),
        requests_per_second: m.performance.requests_per_second(),
    }
}

/// The envelope shared by both documents around `components`.
fn health_document<C>(
    m: &Monitoring,
    reports: Vec<ComponentReport>,
    entry: impl Fn(ComponentReport) -> C,
) -> HealthDocument<C> {
    HealthDocument {
        status: overall_of(&reports),
        timestamp: clock::rfc3339(std::time::SystemTime::now()),
        version: m.version(),
        uptime: m.uptime().as_secs(),
        components: reports.into_iter().map(|r| (r.name.clone(), entry(r))).collect(),
    }
}

/// `/health`: overall status and one status string per component.
pub fn summary_document(m: &Monitoring) -> HealthSummary {
    health_document(m, m.health.reports(), |r| r.status)
}

/// `/health/detailed`: every component's report, plus `performance`.
pub fn detailed_document(m: &Monitoring) -> HealthDetailed {
    let mut doc = health_document(m, m.health.reports(), |r| DetailedComponent::Checked(r.document()));
    doc.components.insert("performance".into(), DetailedComponent::Performance(performance_component(m)));
    doc
}

pub(super) async fn summary(m: web::Data<Monitoring>) -> HttpResponse {
    m.health.refresh_local().await;
    let doc = summary_document(&m);
    json_response(status_code(doc.status), &doc)
}

pub(super) async fn detailed(m: web::Data<Monitoring>) -> HttpResponse {
    m.health.refresh_local().await;
    let doc = detailed_document(&m);
    json_response(status_code(doc.status), &doc)
}

pub(super) async fn live() -> HttpResponse {
    json_response(StatusCode::OK, &StatusBody { status: "alive" })
}

/// `/health/ready` while a critical component has never been reached:
/// `{"status": "connecting", "components": [...]}`.
#[derive(Debug, Serialize)]
pub struct ConnectingBody {
    pub status: &'static str,
    pub components: Vec<String>,
}

/// Ready once started: not draining, and no critical component still
/// `connecting` (never reached, e.g. a broker with a wrong URL), since such
/// a node cannot serve what it is in the rotation for. A component lost
/// later does not take the node out: `/health` reports that.
pub(super) async fn ready(m: web::Data<Monitoring>) -> HttpResponse {
    if m.is_draining() {
        return json_response(StatusCode::SERVICE_UNAVAILABLE, &StatusBody { status: "draining" });
    }
    m.health.refresh_local().await;
    let components: Vec<String> = m
        .health
        .reports()
        .into_iter()
        .filter(|r| r.critical && r.status == ComponentStatus::Connecting)
        .map(|r| r.name)
        .collect();
    if components.is_empty() {
        json_response(StatusCode::OK, &StatusBody { status: "ready" })
    } else {
        json_response(StatusCode::SERVICE_UNAVAILABLE, &ConnectingBody { status: "connecting", components })
    }
}

pub(super) async fn service(m: web::Data<Monitoring>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    if name == "performance" {
        let doc = ServiceDocument { component: performance_component(&m), name };
        return json_response(StatusCode::OK, &doc);
    }
    m.health.refresh_local().await;
    match m.health.report(&name) {
        Some(report) => {
            let status = status_code(report.status);
            json_response(status, &ServiceDocument { component: report.document(), name })
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
    let doc = detailed_document(&m);
    json_response(status_code(doc.status), &doc)
}
