//! `/monitoring/*`: connection health, performance, errors and the dual
//! connection distribution, in the documented JSON shapes.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::authorized;
use super::{error_response, json_response};
use crate::Monitoring;
use crate::clock::{self, round};
use crate::errors::ErrorFilter;
use crate::health::{AgeDistribution, ConnectionTypeHealth, HEALTHY_DEFINITION, OverallHealth};

pub(super) fn unauthorized() -> HttpResponse {
    let mut resp = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs the operator token (Authorization: Bearer <monitoring.token> or ?token=)",
    );
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The `/monitoring/connection-health` document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionHealthDocument {
    pub overall_health: OverallHealth,
    pub connection_type_health: ConnectionTypeHealth,
    pub health_trends: HealthTrendsDocument,
    pub connection_age_distribution: AgeDistribution,
    pub healthy_definition: &'static str,
    /// RFC 3339, now.
    pub timestamp: String,
}

/// `health_trends`: the per-minute samples averaged over the last hour and
/// day (the current value while there is no sample yet).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HealthTrendsDocument {
    pub last_hour_health_percentage: f64,
    pub last_24_hours_health_percentage: f64,
    /// Samples kept (one per minute, at most a day's).
    pub samples: usize,
}

/// The `/monitoring/connection-health` document.
pub fn connection_health_document(m: &Monitoring) -> ConnectionHealthDocument {
    let now = SystemTime::now();
    let summary = m.connection_health();
    let current = summary.overall().percentage();
    let secs = clock::unix_secs(now);
    ConnectionHealthDocument {
        overall_health: summary.overall_document(),
        connection_type_health: summary.by_transport_document(),
        health_trends: HealthTrendsDocument {
            last_hour_health_percentage: round(m.trends.last_hour(secs).unwrap_or(current), 2),
            last_24_hours_health_percentage: round(m.trends.last_24_hours(secs).unwrap_or(current), 2),
            samples: m.trends.len(),
        },
        connection_age_distribution: summary.ages_document(),
        healthy_definition: HEALTHY_DEFINITION,
        timestamp: clock::rfc3339(now),
    }
}

/// The `/monitoring/connections` document (without `player_id`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionsDocument {
    pub connection_distribution: ConnectionDistribution,
    pub connections_by_transport: ConnectionsByTransport,
    pub total_connections: usize,
    pub sessions: usize,
    /// RFC 3339, now.
    pub timestamp: String,
    /// Every node's counts, when this node is one of several (the counts
    /// above are this node's); absent for a single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Value>,
}

/// `connection_distribution`: players by the transports they use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionDistribution {
    pub total_players: usize,
    pub websocket_only_players: usize,
    pub sse_only_players: usize,
    pub dual_connection_players: usize,
}

/// `connections_by_transport`: live connections of each transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectionsByTransport {
    pub websocket: usize,
    pub sse: usize,
}

/// The `/monitoring/connections` document (without `player_id`).
pub fn connections_document(m: &Monitoring) -> ConnectionsDocument {
    let o = m.source().overview();
    ConnectionsDocument {
        connection_distribution: ConnectionDistribution {
            total_players: o.players,
            websocket_only_players: o.websocket_only_players,
            sse_only_players: o.sse_only_players,
            dual_connection_players: o.dual_connection_players,
        },
        connections_by_transport: ConnectionsByTransport {
            websocket: o.websocket_connections,
            sse: o.sse_connections,
        },
        total_connections: o.total_connections(),
        sessions: o.sessions,
        timestamp: clock::rfc3339(SystemTime::now()),
        cluster: m.source().cluster(),
    }
}

pub(super) async fn connection_health(req: HttpRequest, m: web::Data<Monitoring>) -> HttpResponse {
    if !authorized(&req, m.token()) {
        return unauthorized();
    }
    json_response(StatusCode::OK, &connection_health_document(&m))
}

pub(super) async fn performance(req: HttpRequest, m: web::Data<Monitoring>) -> HttpResponse {
    if !authorized(&req, m.token()) {
        return unauthorized();
    }
    let active = m.source().overview().total_connections();
    json_response(StatusCode::OK, &m.performance.stats(active))
}

#[derive(Deserialize)]
struct ErrorsQuery {
    #[serde(rename = "type")]
    error_type: Option<String>,
    severity: Option<String>,
}

pub(super) async fn errors(req: HttpRequest, m: web::Data<Monitoring>) -> HttpResponse {
    if !authorized(&req, m.token()) {
        return unauthorized();
    }
    let query = match web::Query::<ErrorsQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "invalid_filter", e),
    };
    match ErrorFilter::parse(query.error_type.as_deref(), query.severity.as_deref()) {
        Ok(filter) => json_response(StatusCode::OK, &m.errors.stats(filter)),
        Err(e) => error_response(StatusCode::BAD_REQUEST, "invalid_filter", e),
    }
}

#[derive(Deserialize)]
struct ConnectionsQuery {
    player_id: Option<String>,
}

pub(super) async fn connections(req: HttpRequest, m: web::Data<Monitoring>) -> HttpResponse {
    if !authorized(&req, m.token()) {
        return unauthorized();
    }
    let query = match web::Query::<ConnectionsQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "invalid_query", e),
    };
    match query.player_id.filter(|p| !p.is_empty()) {
        None => json_response(StatusCode::OK, &connections_document(&m)),
        Some(player) => match m.source().player_detail(&player) {
            Some(detail) => json_response(StatusCode::OK, &detail),
            None => error_response(
                StatusCode::NOT_FOUND,
                "player_not_found",
                format_args!("player `{player}` has no session"),
            ),
        },
    }
}
