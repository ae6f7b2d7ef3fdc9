//! The two transports (WebSocket, SSE) and what they share: opening a
//! connection once the request passed the shared checks
//! ([`crate::http::extract`]).

pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::RequestHead;
use tandem_protocol::Transport;

use crate::auth::Identity;
use crate::backend::ConnectAsk;
use crate::http::error::HttpError;
use crate::http::extract::{self, ConnectParams};
use crate::http::state::AppState;
use crate::manager::Session;
use crate::manager::commands::ReplyFrame;
use crate::manager::{AttachRequest, Attached};
use crate::session::connection::Connection;
use crate::session::protocol::{ErrorCode, ProtocolError};
use crate::telemetry as ev;

/// The session id a client's refusal probe posts to: `POST
/// /sessions/-/messages` runs the token check and the connect hook, opens
/// nothing, and answers as a connect would have been answered.
pub const PROBE_SESSION: &str = "-";

/// The game's hooks on a connect: the connect hook (which may add
/// channels), then the subscribe hook for each channel asked for. Tandem's
/// own checks run first, in `attach`, for what the client asked; granted
/// channels are the game's.
async fn ask_the_game(
    app: &AppState,
    who: &Identity,
    transport: Transport,
    session_id: Option<&str>,
    channels: &[String],
) -> Result<Vec<String>, HttpError> {
    let m = &app.manager;
    let hooks = &m.backend().hooks;
    let ask = ConnectAsk {
        player_id: &who.player_id,
        session_id,
        transport,
        channels,
        resume: session_id.is_some(),
    };
    let refused = |r: crate::backend::Refusal| {
        // A bounded label: the game's own code is in the answer, not the metric.
        let reason = if r.status >= 500 { "backend_unavailable" } else { "refused_by_game" };
        ev::connection_refused(&app.telemetry, transport, reason, Some(&who.player_id));
        HttpError::refused(r)
    };
    let granted = hooks.connect(&ask, m.now_ms()).await.map_err(refused)?;
    for ch in channels {
        hooks.subscribe(&who.player_id, session_id.unwrap_or(""), ch, m.now_ms()).await.map_err(refused)?;
    }
    Ok(granted)
}

/// Answers a refusal probe ([`PROBE_SESSION`]) for `who`.
pub async fn probe(app: &AppState, who: &Identity) -> Result<actix_web::HttpResponse, HttpError> {
    ask_the_game(app, who, Transport::Sse, None, &[]).await?;
    let pong = crate::session::protocol::Reply::Pong {
        id: serde_json::value::RawValue::NULL,
        ts: crate::session::protocol::epoch_ms(std::time::SystemTime::now()),
    };
    Ok(actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::session::protocol::to_json(&pong)))
}

/// Origin check, authentication and attach: everything a connect does
/// before its transport takes over. Errors are HTTP answers.
pub async fn open(
    app: &AppState,
    head: &RequestHead,
    transport: Transport,
    last_event_id: Option<u64>,
) -> Result<(Attached, Identity), HttpError> {
    let started = Instant::now();
    extract::origin(app, head, transport)?;
    let params = ConnectParams::parse(head.uri.query().unwrap_or_default())?;
    let route = match transport {
        Transport::WebSocket => ws::ROUTE,
        Transport::Sse => sse::ROUTE,
    };
    let (who, token) = extract::verified(app, head, route, &params)?;
    // The player's connections on other nodes count against its limit.
    // While the broker is down only this node's count is known: clients
    // still connect (a node must serve without Redis), and the broker's
    // `/health` component says it is down.
    let remote_connections =
        app.manager.broker().remote_player(&who.player_id).await.map_or(0, |p| p.websocket + p.sse);
    let granted = ask_the_game(app, &who, transport, params.session_id.as_deref(), &params.channels).await?;
    // Another node's session is taken over when the client says where it
    // is in each channel (or that it received nothing yet); a client that
    // keeps no positions gets a new session and `resync_required`.
    let last_seq = last_event_id.or(params.last_seq);
    let adopt = match params.session_id.as_deref() {
        Some(id) if params.positions.is_some() || last_seq == Some(0) => stored_elsewhere(app, id).await,
        _ => None,
    };
    let request = AttachRequest {
        transport,
        session_id: params.session_id,
        last_seq,
        channels: params.channels,
        granted,
        started,
        remote_connections,
        adopt,
        positions: params.positions.unwrap_or_default(),
    };
    match app.manager.attach(&who, request) {
        Ok(att) => {
            app.manager.hold_token(&att, token.as_ref());
            if app.manager.is_catching_up(&att) {
                app.manager.catch_up(&att).await;
            }
            Ok((att, who))
        }
        Err(e) => {
            ev::connection_refused(&app.telemetry, transport, e.code().as_str(), Some(&who.player_id));
            Err(e.into())
        }
    }
}

/// The cluster's record of session `id` when another node holds (or held)
/// it: a resume this node can take over. `None` when this node holds it,
/// the id is not one of ours, there is no cluster, or Redis cannot say
/// (then the client gets a new session and `resync_required`).
async fn stored_elsewhere(app: &AppState, id: &str) -> Option<crate::session::position::StoredSession> {
    let broker = app.manager.broker();
    if !broker.delivers_own()
        || !crate::session::protocol::is_session_id(id)
        || app.manager.session(id).is_some()
    {
        return None;
    }
    broker.stored_session(id).await.ok().flatten()
}

/// A client's `refresh`: `token` is checked as a connect would check it,
/// must name the session's player and must not be revoked; then `conns`
/// (the WebSocket that sent it, or the session's SSE streams) hold it.
/// Returns the new identity (its claims) and the `refreshed` frame.
pub fn refresh(
    app: &AppState,
    session: &Arc<Session>,
    conns: &[Arc<Connection>],
    token: &str,
    ids: ev::Ids<'_>,
) -> Result<(Identity, ReplyFrame), ProtocolError> {
    let checked = check_refresh(app, session, token);
    let (who, info) = match checked {
        Ok(ok) => ok,
        Err(e) => {
            ev::token_refreshed(ids, Some(e.code.as_str()), 0);
            return Err(e);
        }
    };
    let (ended, json) = app.manager.refreshed(session, conns, &who, &info);
    ev::token_refreshed(ids, None, ended);
    Ok((who, ("refreshed", json)))
}

fn check_refresh(
    app: &AppState,
    session: &Session,
    token: &str,
) -> Result<(Identity, crate::auth::TokenInfo), ProtocolError> {
    if app.auth.dev_mode() {
        return Err(ProtocolError::new(
            ErrorCode::TokensDisabled,
            "development mode (no auth.secret): there is no token to refresh",
        ));
    }
    let auth_error = |e: crate::auth::AuthError| ProtocolError::new(e.code(), e.to_string());
    let (who, info) = app.auth.verify(Some(token), None).map_err(auth_error)?;
    let info = info.ok_or_else(|| ProtocolError::new(ErrorCode::InvalidToken, "no token"))?;
    if *who.player_id != *session.player_id {
        return Err(ProtocolError::new(
            ErrorCode::SubjectChanged,
            "a refreshed token must name the same player (`sub`); the connection keeps its token",
        ));
    }
    if app.manager.is_revoked(&who.player_id, &info) {
        return Err(auth_error(crate::auth::AuthError::RevokedToken));
    }
    Ok((who, info))
}
