//! Backend API (`/api/*`), for game backends holding an API key
//! (`Authorization: Bearer <key>` from `auth.api_keys`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::auth;
use crate::broker;
use crate::http::error::{self, HttpError};
use crate::http::state::AppState;
use crate::http::views;
use crate::manager::{Fanout, Published};
use crate::session::channels;
use crate::session::payload;
use crate::session::protocol::{self, ProtocolError};
use crate::session::snapshot::RemotePlayer;
use crate::telemetry::{self as ev, AuthSurface};
use tandem_protocol::ErrorCode;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            // Every route in this scope needs the key: a new route cannot
            // forget it.
            .wrap(from_fn(require_api_key))
            .route("/publish", web::post().to(publish))
            .route("/broadcast", web::post().to(broadcast))
            .route("/channels/{channel}/presence", web::get().to(presence))
            .route("/players/{player_id}", web::get().to(player))
            .route("/players/{player_id}/messages", web::post().to(player_message))
            .route("/players/{player_id}/disconnect", web::post().to(disconnect)),
    );
}

/// The `/api` guard: `Authorization: Bearer <key>` from `auth.api_keys`,
/// checked before any handler runs; failures are logged and counted.
async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(app) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Err(HttpError::new(ErrorCode::Internal, "application state missing").into());
    };
    let header = req.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    if let Err(e) = app.auth.check_api_key(auth::bearer(header)) {
        let route = req.match_pattern().unwrap_or_else(|| "/api".to_owned());
        ev::auth_failed(&app.telemetry, AuthSurface::Api, e.code().as_str(), &route);
        return Err(HttpError::from(e).into());
    }
    next.call(req).await
}

async fn body<T: DeserializeOwned>(
    app: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, HttpError> {
    let bytes = error::read_json_body(req, payload, app.config.transport.max_message_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_data() { ErrorCode::InvalidMessage } else { ErrorCode::InvalidJson };
        HttpError::new(code, e.to_string())
    })
}

/// `data` checked and compacted once (see [`payload`]); absent = `null`.
fn data_or_null(data: Option<Box<RawValue>>) -> Result<Box<RawValue>, HttpError> {
    match data {
        Some(d) => Ok(payload::compact(&d).map_err(ProtocolError::from)?),
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
    let b: PublishBody = body(&app, &req, payload).await?;
    channels::namespace(&b.channel)?;
    protocol::validate_event(&b.event)?;
    let out = app.manager.publish(&b.channel, &b.event, &data_or_null(b.data)?, "api");
    Ok(HttpResponse::Ok().json(confirmed(&app, out).await?))
}

/// Waits (at most `broker.publish_timeout_ms`) until the broker confirms
/// the other nodes got the publication: a backend never gets `200` for a
/// publication that went nowhere.
async fn confirmed(app: &AppState, published: Result<Published, ProtocolError>) -> Result<Fanout, HttpError> {
    let published = published?;
    let timeout = std::time::Duration::from_millis(app.config.broker.publish_timeout_ms);
    broker::confirm(published.ack, timeout)
        .await
        .inspect_err(|e| ev::broker_unconfirmed(&published.fanout.id, e))?;
    Ok(published.fanout)
}

/// The player's sessions on this node and every other live node.
async fn player_everywhere(app: &AppState, player_id: &str) -> Result<Option<views::PlayerView>, HttpError> {
    let remote = app.manager.broker().remote_player(player_id).await?;
    let local = app
        .manager
        .player_snapshot(player_id)
        .map_or_else(RemotePlayer::default, RemotePlayer::from_snapshot);
    Ok(views::player_view(player_id, [local, remote]))
}

/// `POST /api/broadcast {event, data}`: every live session, channel `broadcast`.
async fn broadcast(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let b: EventBody = body(&app, &req, payload).await?;
    protocol::validate_event(&b.event)?;
    let out = app.manager.broadcast(&b.event, &data_or_null(b.data)?);
    Ok(HttpResponse::Ok().json(confirmed(&app, out).await?))
}

fn player_not_found(id: &str) -> HttpError {
    HttpError::new(ErrorCode::PlayerNotFound, format!("player `{id}` has no session"))
}

/// `POST /api/players/{id}/messages {event, data}`: a direct message on
/// `player:<id>`; the answer counts the connections it was handed to.
async fn player_message(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let b: EventBody = body(&app, &req, payload).await?;
    protocol::validate_event(&b.event)?;
    let channel = channels::personal_channel(&path);
    channels::namespace(&channel)?;
    if app.manager.player_snapshot(&path).is_none() && player_everywhere(&app, &path).await?.is_none() {
        return Err(player_not_found(&path));
    }
    let out = app.manager.publish(&channel, &b.event, &data_or_null(b.data)?, "api");
    Ok(HttpResponse::Ok().json(confirmed(&app, out).await?))
}

/// `GET /api/channels/{channel}/presence` → `{channel, count, players}`:
/// who is in the channel on every live node; `count` is exact, `players`
/// lists at most 1,000.
async fn presence(path: web::Path<String>, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    channels::namespace(&path)?;
    let p = app.manager.channel_presence(&path).await?;
    Ok(HttpResponse::Ok().json(views::PresenceView { channel: &path, count: p.count, players: &p.players }))
}

/// `GET /api/players/{id}`: the player's sessions and connections.
async fn player(path: web::Path<String>, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let detail = player_everywhere(&app, &path).await?.ok_or_else(|| player_not_found(&path))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// `POST /api/players/{id}/disconnect`: ends every session of the player,
/// on every node; its connections close with 4001 (do not reconnect).
async fn disconnect(path: web::Path<String>, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    // Other nodes first: what they hold, then the order, confirmed like a
    // publication (a 200 never leaves a session running elsewhere).
    let remote = match auth::is_valid_player_id(&path) {
        true => app.manager.broker().remote_player(&path).await?,
        false => RemotePlayer::default(),
    };
    if !remote.sessions.is_empty() {
        let ack = app.manager.broker().disconnect_player(&path)?;
        let timeout = std::time::Duration::from_millis(app.config.broker.publish_timeout_ms);
        broker::confirm(ack, timeout).await?;
    }
    let local = app.manager.disconnect_player(&path);
    if local.is_none() && remote.sessions.is_empty() {
        return Err(player_not_found(&path));
    }
    let (sessions, connections) = local.unwrap_or((0, 0));
    Ok(HttpResponse::Ok().json(views::DisconnectView {
        disconnected_connections: connections + remote.connections(),
        player_id: &path,
        sessions: sessions + remote.sessions.len(),
    }))
}
