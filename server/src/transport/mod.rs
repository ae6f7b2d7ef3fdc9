//! The two transports (WebSocket, SSE) and what they share: opening a
//! connection once the request passed the shared checks
//! ([`crate::http::extract`]).

pub mod sse;
pub mod ws;

use std::time::Instant;

use actix_web::dev::RequestHead;
use tandem_protocol::Transport;

use crate::auth::Identity;
use crate::http::error::HttpError;
use crate::http::extract::{self, ConnectParams};
use crate::http::state::AppState;
use crate::manager::{AttachRequest, Attached};
use crate::telemetry as ev;

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
    let who = extract::identity(app, head, route, &params)?;
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
            ev::connection_refused(&app.telemetry, transport, e.code().as_str(), Some(&who.player_id));
            Err(e.into())
        }
    }
}
