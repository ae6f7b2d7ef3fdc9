//! The checks every client entry point shares (`GET /ws`, `GET /sse`,
//! `POST /sessions/{id}/messages`), written once over the request head: the
//! actix-web routes take them as the [`Client`] extractor, and the WebSocket
//! upgrade service, which sees no actix-web request, calls the same
//! functions. A refusal is counted and logged here, so no handler can
//! forget to.

use std::future::{Ready, ready};

use actix_web::dev::{Payload, RequestHead};
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use tandem_protocol::{ErrorCode, Transport};

use crate::auth::{self, Identity, TokenInfo};
use crate::http::error::HttpError;
use crate::http::state::AppState;
use crate::session::channels;
use crate::session::position::Position;
use crate::telemetry::{self as ev, AuthSurface};

/// Query parameters of `GET /ws`, `GET /sse` and the SSE uplink.
#[derive(Debug, Default)]
pub struct ConnectParams {
    pub token: Option<String>,
    pub player_id: Option<String>,
    pub session_id: Option<String>,
    pub last_seq: Option<u64>,
    pub channels: Vec<String>,
    /// `positions=<channel>=<epoch.offset.tag>,…`: the client's last
    /// position in each channel, to resume on any node. Present (even
    /// empty): the client keeps positions, so a channel without one
    /// received nothing since it was subscribed.
    pub positions: Option<Vec<(String, Position)>>,
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
                        HttpError::new(ErrorCode::InvalidMessage, "last_seq must be a non-negative integer")
                    })?);
                }
                "positions" => {
                    let positions = p.positions.get_or_insert_with(Vec::new);
                    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                        let parsed =
                            entry.split_once('=').and_then(|(c, at)| Some((c, Position::parse(at)?))).filter(
                                |(c, _)| *c == channels::BROADCAST_CHANNEL || channels::namespace(c).is_ok(),
                            );
                        let Some((c, at)) = parsed else {
                            return Err(HttpError::new(
                                ErrorCode::InvalidMessage,
                                "positions must be <channel>=<epoch>.<offset>.<tag>, comma-separated",
                            ));
                        };
                        if !positions.iter().any(|(known, _)| known == c) {
                            positions.push((c.to_owned(), at));
                        }
                    }
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

/// Bytes of a request head as it came on the wire: request line and
/// header lines.
fn head_bytes(head: &RequestHead) -> usize {
    let line = head.method.as_str().len() + head.uri.path().len() + head.uri.query().map_or(0, str::len) + 12;
    head.headers().iter().fold(line, |n, (name, value)| n + name.as_str().len() + value.len() + 4)
}

/// `server.max_request_head_bytes`, for every request on the client port
/// (WebSocket upgrades included).
pub fn head_size(app: &AppState, head: &RequestHead) -> Result<(), HttpError> {
    let limit = app.config.server.max_request_head_bytes;
    if head_bytes(head) > limit {
        return Err(HttpError::new(
            ErrorCode::RequestHeadTooLarge,
            format!("request line and headers over {limit} bytes (server.max_request_head_bytes)"),
        ));
    }
    Ok(())
}

/// A head the client listener refused before parsing it: over
/// `server.max_request_head_bytes`, or over the header count or request
/// line the HTTP parser takes.
pub fn head_refused(app: &AppState) -> HttpError {
    let limit = app.config.server.max_request_head_bytes;
    HttpError::new(
        ErrorCode::RequestHeadTooLarge,
        format!(
            "request line and headers over {limit} bytes (server.max_request_head_bytes), over {} headers, \
             or a request line over {} bytes",
            crate::http::head_guard::MAX_HEADERS,
            crate::http::head_guard::MAX_REQUEST_LINE,
        ),
    )
}

/// `server.transports`: a transport the operator turned off answers
/// `transport_disabled` before anything else (no upgrade, no stream), so a
/// client falls back to the other one at once.
pub fn transport_enabled(app: &AppState, transport: Transport) -> Result<(), HttpError> {
    if app.config.server.allows(transport) {
        return Ok(());
    }
    let code = ErrorCode::TransportDisabled;
    ev::connection_refused(&app.telemetry, transport, code.as_str(), None);
    Err(HttpError::new(
        code,
        format!("the {} transport is turned off on this server (server.transports)", transport.as_str()),
    ))
}

/// The browser `Origin` check (`server.allowed_origins`): what stops
/// cross-site WebSocket hijacking and cross-site posts to the uplink.
pub fn origin(app: &AppState, head: &RequestHead, transport: Transport) -> Result<(), HttpError> {
    if app.origins.allows_request(head.headers()) {
        return Ok(());
    }
    let code = ErrorCode::OriginNotAllowed;
    ev::connection_refused(&app.telemetry, transport, code.as_str(), None);
    Err(HttpError::new(code, "this Origin is not in server.allowed_origins"))
}

/// The client's identity from `Authorization: Bearer`, `?token=` or (in
/// development mode) `?player_id=`. Failures are logged and counted.
pub fn identity(
    app: &AppState,
    head: &RequestHead,
    route: &str,
    params: &ConnectParams,
) -> Result<Identity, HttpError> {
    verified(app, head, route, params).map(|(who, _)| who)
}

/// [`identity`] and what a connection keeps of its token (`None` in
/// development mode); a token this node knows to be revoked is refused
/// (401 `revoked_token`).
pub fn verified(
    app: &AppState,
    head: &RequestHead,
    route: &str,
    params: &ConnectParams,
) -> Result<(Identity, Option<TokenInfo>), HttpError> {
    let header = head.headers().get(AUTHORIZATION).and_then(|h| h.to_str().ok());
    let token = auth::bearer(header).or(params.token.as_deref());
    let refused = |e: auth::AuthError| {
        ev::auth_failed(&app.telemetry, AuthSurface::Client, e.code().as_str(), route);
        HttpError::from(e)
    };
    let (who, info) = app.auth.verify(token, params.player_id.as_deref()).map_err(refused)?;
    if let Some(t) = &info
        && app.manager.is_revoked(&who.player_id, t)
    {
        return Err(refused(auth::AuthError::RevokedToken));
    }
    Ok((who, info))
}

/// Every check of a client request, in the order clients see refusals:
/// transport turned off, Origin, query, credentials.
pub fn client(
    app: &AppState,
    head: &RequestHead,
    transport: Transport,
    route: &str,
) -> Result<Identity, HttpError> {
    transport_enabled(app, transport)?;
    origin(app, head, transport)?;
    let params = ConnectParams::parse(head.uri.query().unwrap_or_default())?;
    identity(app, head, route, &params)
}

/// An SSE client on an actix-web route: transport enabled, Origin allowed,
/// identity verified ([`client`]).
#[derive(Debug)]
pub struct Client {
    pub who: Identity,
}

impl FromRequest for Client {
    type Error = HttpError;
    type Future = Ready<Result<Self, HttpError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(app) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(HttpError::new(ErrorCode::Internal, "no application state")));
        };
        let route = route_of(req);
        ready(client(app, req.head(), Transport::Sse, &route).map(|who| Client { who }))
    }
}

/// The route pattern of a request (`/api/players/{player_id}`), for logs
/// and error details: never the raw path, which can carry a player id.
pub fn route_of(req: &HttpRequest) -> String {
    req.match_pattern().unwrap_or_else(|| "unmatched".to_owned())
}

/// The method as a bounded metrics label.
pub fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connect_params_parse_and_refuse_a_bad_last_seq() {
        let p = ConnectParams::parse("player_id=a&session_id=s_1&last_seq=7&channels=room:a,,room:a, room:b")
            .unwrap();
        assert_eq!(p.player_id.as_deref(), Some("a"));
        assert_eq!(p.session_id.as_deref(), Some("s_1"));
        assert_eq!(p.last_seq, Some(7));
        assert_eq!(p.channels, vec!["room:a", "room:b"]);
        assert_eq!(ConnectParams::parse("last_seq=-1").unwrap_err().code, ErrorCode::InvalidMessage);
        assert_eq!(ConnectParams::parse("session_id=&last_seq=").unwrap().session_id, None);
    }

    #[test]
    fn method_labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
