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
use crate::config::MAX_TOKEN_TTL_SECONDS;
use crate::http::error::{self, HttpError};
use crate::http::state::AppState;
use crate::http::views;
use crate::manager::{Fanout, Published};
use crate::session::channel_presence;
use crate::session::channels;
use crate::session::payload;
use crate::session::protocol::{self, ProtocolError};
use crate::session::revocation::Revocation;
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
            .route("/players/{player_id}/disconnect", web::post().to(disconnect))
            .route("/tokens/revoke", web::post().to(revoke)),
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
    /// The backend's own id: a publication sent again with it (a retry)
    /// is delivered at most once per node.
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    event: String,
    data: Option<Box<RawValue>>,
    id: Option<String>,
}

/// The backend's publication id, checked, when it gave one.
fn publication_id(id: Option<&String>) -> Result<Option<&str>, HttpError> {
    let Some(id) = id else { return Ok(None) };
    protocol::validate_publication_id(id)?;
    Ok(Some(id))
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
    let id = publication_id(b.id.as_ref())?;
    let out = app.manager.publish(&b.channel, &b.event, &data_or_null(b.data)?, "api", id);
    Ok(HttpResponse::Ok().json(confirmed(&app, out).await?))
}

/// Waits (at most `broker.publish_timeout_ms`) until the broker confirms
/// the other nodes got the publication: a backend never gets `200` for a
/// publication that went nowhere.
async fn confirmed(app: &AppState, published: Result<Published, ProtocolError>) -> Result<Fanout, HttpError> {
    let mut published = published?;
    let timeout = std::time::Duration::from_millis(app.config.broker.publish_timeout_ms);
    let confirmed = broker::confirm(published.ack, timeout)
        .await
        .inspect_err(|e| ev::broker_unconfirmed(&published.fanout.id, e))?;
    // Another node published this id first (its copy had not reached this
    // node yet): the cluster's answer, not this node's memory, says so.
    if confirmed == broker::Confirmed::AlreadyPublished {
        published.fanout.duplicate = true;
    }
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
    let id = publication_id(b.id.as_ref())?;
    let out = app.manager.broadcast(&b.event, &data_or_null(b.data)?, id);
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
    let id = publication_id(b.id.as_ref())?;
    let out = app.manager.publish(&channel, &b.event, &data_or_null(b.data)?, "api", id);
    Ok(HttpResponse::Ok().json(confirmed(&app, out).await?))
}

/// `GET /api/channels/{channel}/presence[?limit=N]` → `{channel, count,
/// players}`: who is in the channel on every live node; `count` is exact,
/// `players` lists at most `limit` (0 to 1,000, default 1,000; `0` asks
/// for the count alone).
async fn presence(
    req: HttpRequest,
    path: web::Path<String>,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    channels::namespace(&path)?;
    let limit = presence_limit(req.query_string())?;
    let p = app.manager.channel_presence(&path, limit).await?;
    Ok(HttpResponse::Ok().json(views::PresenceView { channel: &path, count: p.count, players: &p.players }))
}

/// The `limit` of a presence query string.
fn presence_limit(query: &str) -> Result<usize, HttpError> {
    let invalid = |m: String| HttpError::new(ErrorCode::InvalidMessage, m);
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("limit="));
    let n = raw
        .map(|v| v.parse::<u64>().map_err(|_| invalid(format!("`limit` must be a whole number, not `{v}`"))))
        .transpose()?;
    channel_presence::list_limit(n).map_err(invalid)
}

/// `GET /api/players/{id}`: the player's sessions and connections.
async fn player(path: web::Path<String>, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let detail = player_everywhere(&app, &path).await?.ok_or_else(|| player_not_found(&path))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// The optional body of `POST /api/players/{id}/disconnect`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    /// Told to the clients in a `disconnected` frame before the close.
    reason: Option<String>,
    /// Only `false`: a disconnected client never reconnects by itself.
    reconnect: Option<bool>,
}

/// The body, when one was sent: a request without `Content-Type` and
/// without a body is the plain disconnect it always was.
async fn disconnect_body(
    app: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<DisconnectBody, HttpError> {
    let headers = req.headers();
    let empty = headers.get(actix_web::http::header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
        && !headers.contains_key(actix_web::http::header::TRANSFER_ENCODING);
    if empty && !headers.contains_key(actix_web::http::header::CONTENT_TYPE) {
        return Ok(DisconnectBody::default());
    }
    let b: DisconnectBody = body(app, req, payload).await?;
    if let Some(r) = &b.reason
        && !protocol::is_valid_reason(r)
    {
        return Err(HttpError::new(
            ErrorCode::InvalidMessage,
            format!(
                "`reason` must be 1-{} characters without control characters",
                protocol::MAX_REASON_CHARS
            ),
        ));
    }
    if b.reconnect == Some(true) {
        return Err(HttpError::new(
            ErrorCode::InvalidMessage,
            "`reconnect` can only be false: a disconnected client does not reconnect by itself",
        ));
    }
    Ok(b)
}

/// `POST /api/players/{id}/disconnect` (optional body `{"reason","reconnect":false}`):
/// ends every session of the player, on every node; its connections get a
/// `disconnected` frame with the reason (when given), then close with 4001
/// (do not reconnect).
async fn disconnect(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let b = disconnect_body(&app, &req, payload).await?;
    let reason = b.reason.as_deref();
    // Other nodes first: what they hold, then the order, confirmed like a
    // publication (a 200 never leaves a session running elsewhere).
    let remote = match auth::is_valid_player_id(&path) {
        true => app.manager.broker().remote_player(&path).await?,
        false => RemotePlayer::default(),
    };
    if !remote.sessions.is_empty() {
        let ack = app.manager.broker().disconnect_player(&path, reason)?;
        let timeout = std::time::Duration::from_millis(app.config.broker.publish_timeout_ms);
        broker::confirm(ack, timeout).await?;
    }
    let local = app.manager.disconnect_player(&path, reason);
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

/// `POST /api/tokens/revoke`: `{"jti","expires_at"?}` or
/// `{"player_id","issued_before"}` (epoch ms).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    jti: Option<String>,
    expires_at: Option<u64>,
    player_id: Option<String>,
    issued_before: Option<u64>,
}

/// What a revoke body asks for, at `now_ms`: how long to keep it follows
/// the token's `expires_at` when given, else the longest a token lives
/// (`auth.token_ttl_seconds`), plus the `exp` leeway.
fn revocation(b: RevokeBody, now_ms: u64, ttl_ms: u64, leeway_ms: u64) -> Result<Revocation, HttpError> {
    let invalid = |m: &str| HttpError::new(ErrorCode::InvalidMessage, m.to_owned());
    let max_until = now_ms.saturating_add(MAX_TOKEN_TTL_SECONDS * 1000);
    match b {
        RevokeBody { jti: Some(jti), expires_at, player_id: None, issued_before: None } => {
            if !auth::is_valid_jti(&jti) {
                return Err(invalid("`jti` must be 1-128 characters without control characters"));
            }
            let until_ms = expires_at.unwrap_or(now_ms.saturating_add(ttl_ms)).saturating_add(leeway_ms);
            Ok(Revocation::Jti { jti, until_ms: until_ms.min(max_until) })
        }
        RevokeBody {
            jti: None,
            expires_at: None,
            player_id: Some(player_id),
            issued_before: Some(before),
        } => {
            if !auth::is_valid_player_id(&player_id) {
                return Err(invalid("`player_id` is not a valid player id"));
            }
            let until_ms = before.saturating_add(ttl_ms).saturating_add(leeway_ms).min(max_until);
            Ok(Revocation::Player { player_id, issued_before_ms: before, until_ms })
        }
        _ => Err(invalid(
            "send either {\"jti\", \"expires_at\"?} or {\"player_id\", \"issued_before\"} (epoch ms)",
        )),
    }
}

/// `POST /api/tokens/revoke`: refused from now on at connect and at
/// refresh on every node, and live connections holding such a token close
/// with 4004. Applied here first; with Redis, stored and sent to the other
/// nodes (503 `broker_unavailable`: applied on this node only, send again).
async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let b: RevokeBody = body(&app, &req, payload).await?;
    let now_ms = protocol::epoch_ms(std::time::SystemTime::now());
    let r = revocation(
        b,
        now_ms,
        app.config.auth.token_ttl_seconds.saturating_mul(1000),
        app.config.auth.leeway_seconds.saturating_mul(1000),
    )?;
    let closed = app.manager.revoke(&r, "api");
    let ack = app.manager.broker().revoke(&r)?;
    let timeout = std::time::Duration::from_millis(app.config.broker.publish_timeout_ms);
    broker::confirm(ack, timeout).await?;
    Ok(HttpResponse::Ok().json(views::RevokedView { closed_connections: closed, until: r.until_ms() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> RevokeBody {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_presence_query_names_its_limit() {
        assert_eq!(presence_limit("").ok(), Some(1000));
        assert_eq!(presence_limit("limit=0").ok(), Some(0));
        assert_eq!(presence_limit("x=1&limit=25").ok(), Some(25));
        for bad in ["limit=1001", "limit=", "limit=-1", "limit=ten"] {
            assert_eq!(presence_limit(bad).err().map(|e| e.code), Some(ErrorCode::InvalidMessage), "{bad}");
        }
    }

    #[test]
    fn a_revocation_lasts_as_long_as_the_tokens_it_names() {
        let r = revocation(body(serde_json::json!({"jti": "j", "expires_at": 9_000})), 1_000, 60_000, 5_000);
        assert_eq!(r.ok(), Some(Revocation::Jti { jti: "j".into(), until_ms: 14_000 }));
        let r = revocation(body(serde_json::json!({"jti": "j"})), 1_000, 60_000, 5_000);
        assert_eq!(r.ok().map(|r| r.until_ms()), Some(66_000), "no expires_at: the longest token life");
        let r = revocation(
            body(serde_json::json!({"player_id": "bob", "issued_before": 500})),
            1_000,
            60_000,
            5_000,
        );
        assert_eq!(
            r.ok(),
            Some(Revocation::Player { player_id: "bob".into(), issued_before_ms: 500, until_ms: 65_500 })
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"jti": "j", "player_id": "bob", "issued_before": 1}),
            serde_json::json!({"player_id": "bob"}),
            serde_json::json!({"player_id": "bad id", "issued_before": 1}),
            serde_json::json!({"jti": ""}),
            serde_json::json!({"player_id": "bob", "issued_before": 1, "expires_at": 2}),
        ] {
            let err = revocation(body(bad.clone()), 1_000, 60_000, 5_000).err();
            assert_eq!(err.map(|e| e.code), Some(ErrorCode::InvalidMessage), "{bad}");
        }
    }
}
