//! Backend API (`/api/*`), for game backends holding an API key
//! (`Authorization: Bearer <key>` from `auth.api_keys`).

use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::value::RawValue;

use crate::app::AppState;
use crate::auth;
use crate::channels;
use crate::http_error::{self, HttpError};
use crate::internal_events::{self as ev, AuthSurface};
use crate::payload;
use crate::protocol;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/publish", web::post().to(publish))
            .route("/broadcast", web::post().to(broadcast))
            .route("/players/{player_id}", web::get().to(player))
            .route("/players/{player_id}/messages", web::post().to(player_message))
            .route("/players/{player_id}/disconnect", web::post().to(disconnect)),
    );
}

fn check_key(app: &AppState, req: &HttpRequest) -> Result<(), HttpError> {
    let header = req.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    app.auth.check_api_key(auth::bearer(header)).map_err(|e| {
        ev::auth_failed(
            &app.manager.telemetry,
            AuthSurface::Api,
            e.code(),
            &crate::http_error::route_of(req),
        );
        HttpError::from(e)
    })
}

async fn body<T: DeserializeOwned>(
    app: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, HttpError> {
    let bytes = http_error::read_json_body(req, payload, app.config.transport.max_message_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_data() { "invalid_message" } else { "invalid_json" };
        HttpError::new(400, code, e.to_string())
    })
}

/// `data` checked and compacted once (see [`payload`]); absent = `null`.
fn data_or_null(data: Option<Box<RawValue>>) -> Result<Box<RawValue>, HttpError> {
    match data {
        Some(d) => Ok(payload::compact(&d)?),
        None => Ok(RawValue::NULL.to_owned()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    channel: String,
    event: String,
    data: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event: String,
    data: Option<Box<RawValue>>,
}

/// `POST /api/publish {channel, event, data}` → `{id, recipients, …}`.
/// Backends may publish into any valid channel, `player:` and `admin:` too.
async fn publish(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_key(&app, &req)?;
    let b: PublishBody = body(&app, &req, payload).await?;
    channels::namespace(&b.channel)?;
    protocol::validate_event(&b.event)?;
    let out = app.manager.publish(&b.channel, &b.event, &data_or_null(b.data)?, "api")?;
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /api/broadcast {event, data}`: every live session, channel `broadcast`.
async fn broadcast(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_key(&app, &req)?;
    let b: EventBody = body(&app, &req, payload).await?;
    protocol::validate_event(&b.event)?;
    Ok(HttpResponse::Ok().json(app.manager.broadcast(&b.event, &data_or_null(b.data)?)?))
}

fn player_not_found(id: &str) -> HttpError {
    HttpError::new(404, "player_not_found", format!("player `{id}` has no session"))
}

/// `POST /api/players/{id}/messages {event, data}`: a direct message on
/// `player:<id>`; the answer counts the connections it was handed to.
async fn player_message(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_key(&app, &req)?;
    let b: EventBody = body(&app, &req, payload).await?;
    protocol::validate_event(&b.event)?;
    let channel = channels::personal_channel(&path);
    channels::namespace(&channel)?;
    if app.manager.player_json(&path).is_none() {
        return Err(player_not_found(&path));
    }
    let out = app.manager.publish(&channel, &b.event, &data_or_null(b.data)?, "api")?;
    Ok(HttpResponse::Ok().json(out))
}

/// `GET /api/players/{id}`: the player's sessions and connections.
async fn player(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_key(&app, &req)?;
    let detail = app.manager.player_json(&path).ok_or_else(|| player_not_found(&path))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `POST /api/players/{id}/disconnect`: ends every session of the player;
/// its connections close with 4001 (do not reconnect).
async fn disconnect(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    check_key(&app, &req)?;
    let (sessions, connections) =
        app.manager.disconnect_player(&path).ok_or_else(|| player_not_found(&path))?;
    Ok(HttpResponse::Ok().json(json!({
        "player_id": &*path, "sessions": sessions, "disconnected_connections": connections
    })))
}
