//! The route table: every route of the client port and of the admin
//! listener, with the middleware each scope runs.

use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HOST};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, Error, HttpResponse, web};

use crate::http::api;
use crate::http::demo;
use crate::http::error::HttpError;
use crate::http::extract;
use crate::http::head_guard;
use crate::http::origin::OriginPolicy;
use crate::http::state::AppState;
use crate::telemetry as ev;
use crate::transport::{sse, ws};

/// Configures the full route table on an actix `App`.
pub fn configure(cfg: &mut web::ServiceConfig, state: &web::Data<AppState>) {
    let monitoring = Arc::clone(&state.telemetry.monitoring);
    tandem_monitoring::routes::configure(cfg, monitoring);
    cfg.route(ws::ROUTE, web::get().to(ws::route))
        .service(web::resource(sse::ROUTE).wrap(cors(&state.origins)).route(web::get().to(sse::route)))
        .service(
            web::scope("/sessions")
                .wrap(cors(&state.origins))
                .route("/{session_id}/messages", web::post().to(sse::post_message)),
        )
        .configure(api::configure)
        .configure(|c| demo::configure(c, cors(&state.origins)))
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
    App::new()
        .app_data(state.clone())
        .configure(|c| configure(c, &state))
        .wrap(from_fn(head_limit))
        .wrap(from_fn(http_metrics))
}

/// The admin listener's app (`server.admin_bind`): the operator routes
/// only, so a flood on the client port cannot delay a probe.
pub fn build_admin(
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
    let monitoring = Arc::clone(&state.telemetry.monitoring);
    App::new()
        .app_data(state)
        .configure(|c| {
            tandem_monitoring::routes::configure(c, monitoring);
            c.default_service(web::to(not_found));
        })
        .wrap(from_fn(head_limit))
        .wrap(from_fn(http_metrics))
}

/// Refuses request heads over `server.max_request_head_bytes` with 431,
/// and answers the stand-in for a head the client listener's
/// [`head_guard`] refused before parsing.
async fn head_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let refused = req.app_data::<web::Data<AppState>>().and_then(|s| {
        if req.path() == head_guard::REFUSED_PATH {
            return Some(extract::head_refused(s));
        }
        extract::head_size(s, req.head()).err()
    });
    if let Some(err) = refused {
        let res = actix_web::ResponseError::error_response(&err);
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
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
    let method = extract::method_label(req.method());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res.request().match_pattern();
        let route = route.as_deref().unwrap_or("unmatched");
        ev::http_request(&state.telemetry, method, route, res.status().as_u16(), started.elapsed());
    }
    Ok(res)
}
