//! The HTTP application: shared state and the route table.

use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HOST};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, Error, HttpResponse, web};

use crate::api;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::http_error::HttpError;
use crate::manager::ConnectionManager;
use crate::origin::OriginPolicy;
use crate::transport::{sse, ws};

/// What every handler can reach.
pub struct AppState {
    pub config: Arc<Config>,
    pub manager: Arc<ConnectionManager>,
    pub auth: Authenticator,
    pub origins: OriginPolicy,
}

/// Configures the full route table on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>) {
    let monitoring = Arc::clone(&state.manager.telemetry.monitoring);
    tandem_monitoring::routes::configure(cfg, monitoring);
    cfg.route("/ws", web::get().to(ws::route))
        .service(web::resource("/sse").wrap(cors(&state.origins)).route(web::get().to(sse::route)))
        .service(
            web::scope("/sessions")
                .wrap(cors(&state.origins))
                .route("/{session_id}/messages", web::post().to(sse::post_message)),
        )
        .configure(api::configure)
        .default_service(web::to(not_found));
}

/// Builds the app for one worker.
pub fn build(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    App::new().app_data(state.clone()).configure(|c| configure(c, &state)).wrap(from_fn(http_metrics))
}

async fn not_found() -> Result<HttpResponse, HttpError> {
    Err(HttpError::not_found())
}

/// CORS for the browser-facing SSE surface, driven by the same policy as
/// the WebSocket `Origin` check.
fn cors(policy: &OriginPolicy) -> Cors {
    let policy = policy.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, head| {
            let host = head.headers().get(HOST).and_then(|h| h.to_str().ok());
            origin.to_str().is_ok_and(|o| policy.allows(o, host))
        })
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        .max_age(3600)
}

/// Records every request: count and duration by method, route pattern
/// (never the raw path: labels stay bounded) and status.
async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        state.manager.telemetry.monitoring.performance.record_http_request(
            method,
            route,
            res.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(res)
}
