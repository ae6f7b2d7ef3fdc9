//! The two transports (WebSocket, SSE) and what they share: reading the
//! connect request (credentials, session, resume point, channels).

pub mod sse;
pub mod ws;

use std::time::Instant;

use actix_web::dev::RequestHead;
use actix_web::http::header::AUTHORIZATION;

use crate::auth::{self, Identity};
use crate::http_error::HttpError;
use crate::internal_events::{self as ev, AuthSurface};
use crate::manager::{AttachRequest, Attached};
use crate::state::AppState;
use crate::transport_kind::Transport;

/// Query parameters of `GET /ws` and `GET /sse`.
#[derive(Debug, Default)]
pub struct ConnectParams {
    pub token: Option<String>,
    pub player_id: Option<String>,
    pub session_id: Option<String>,
    pub last_seq: Option<u64>,
    pub channels: Vec<String>,
}

impl ConnectParams {
    pub fn parse(query: &str) -> Result<Self, HttpError> {
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "token" => p.token = Some(v.into_owned()),
                "player_id" => p.player_id = Some(v.into_owned()),
                "session_id" if !v.is_empty() => p.session_id = Some(v.into_owned()),
                "last_seq" if !v.is_empty() => {
                    p.last_seq = Some(v.parse().map_err(|_| {
                        HttpError::new(400, "invalid_message", "last_seq must be a non-negative integer")
                    })?);
                }
                "channels" => {
                    for ch in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                        if !p.channels.iter().any(|c| c == ch) {
                            p.channels.push(ch.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

/// The client's identity from `Authorization: Bearer`, `?token=` or (in
/// development mode) `?player_id=`. Failures are logged and counted.
pub fn authenticate(
    app: &AppState,
    head: &RequestHead,
    route: &str,
    token: Option<&str>,
    dev_player: Option<&str>,
) -> Result<Identity, HttpError> {
    let header = head.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    let token = auth::bearer(header).or(token);
    app.auth.authenticate(token, dev_player).map_err(|e| {
        ev::auth_failed(&app.manager.telemetry, AuthSurface::Client, e.code(), route);
        HttpError::from(e)
    })
}

/// `server.transports`: a transport the operator turned off answers
/// `transport_disabled` before anything else (no upgrade, no stream), so a
/// client falls back to the other one at once.
pub fn enabled(app: &AppState, transport: Transport) -> Result<(), HttpError> {
    if app.config.server.allows(transport) {
        return Ok(());
    }
    ev::connection_refused(&app.manager.telemetry, transport, "transport_disabled", None);
    Err(HttpError::new(
        404,
        "transport_disabled",
        format!("the {} transport is turned off on this server (server.transports)", transport.as_str()),
    ))
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
    if !app.origins.allows_request(head.headers()) {
        ev::connection_refused(&app.manager.telemetry, transport, "origin_not_allowed", None);
        return Err(HttpError::new(
            403,
            "origin_not_allowed",
            "this Origin is not in server.allowed_origins",
        ));
    }
    let params = ConnectParams::parse(head.uri.query().unwrap_or_default())?;
    let route = match transport {
        Transport::WebSocket => ws::ROUTE,
        Transport::Sse => sse::ROUTE,
    };
    let who = authenticate(app, head, route, params.token.as_deref(), params.player_id.as_deref())?;
    // The player's connections on other nodes count against its limit.
    // While the broker is down only this node's count is known: clients
    // still connect (a node must serve without Redis), and the broker's
    // `/health` component says it is down.
    let remote_connections =
        app.manager.broker().remote_player(&who.player_id).await.map_or(0, |p| p.websocket + p.sse);
    let request = AttachRequest {
        transport,
        session_id: params.session_id,
        last_seq: last_event_id.or(params.last_seq),
        channels: params.channels,
        started,
        remote_connections,
    };
    match app.manager.attach(&who, request) {
        Ok(att) => Ok((att, who)),
        Err(e) => {
            ev::connection_refused(&app.manager.telemetry, transport, e.code(), Some(&who.player_id));
            Err(e.into())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_connect_params() {
        let p =
            ConnectParams::parse("token=abc&session_id=s_1&last_seq=7&channels=room:a,%20party:1,,room:a")
                .unwrap();
        assert_eq!(p.token.as_deref(), Some("abc"));
        assert_eq!(p.session_id.as_deref(), Some("s_1"));
        assert_eq!(p.last_seq, Some(7));
        assert_eq!(p.channels, vec!["room:a", "party:1"]);
        assert_eq!(ConnectParams::parse("last_seq=-1").unwrap_err().code, "invalid_message");
        assert!(ConnectParams::parse("").unwrap().session_id.is_none());
    }
}
