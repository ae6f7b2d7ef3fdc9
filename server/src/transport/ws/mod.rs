//! WebSocket transport (`GET /ws`).
//!
//! actix-http hands every request carrying `Upgrade: websocket` to
//! [`upgrade`], with the connection, before actix-web sees it. We check it
//! exactly as a route would (head size, `server.transports`, handshake,
//! Origin, credentials, limits), answer the same JSON errors, write the
//! `101` ourselves and keep only the socket: the HTTP dispatcher's buffers
//! and request state are freed, and the connection lives on as a [`Link`]
//! owning its own small, lazily allocated buffers. That is what brings an
//! idle WebSocket from actix-web's ~10 KiB floor for a held response down to
//! a few KiB (docs/benchmarks.md). Every other route stays on actix-web.

mod frame;
mod inbound;
mod link;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::{Framed, FramedParts};
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::ws as wsp;
use actix_http::{ConnectionType, Method, Request, Response};
use actix_web::dev::{ServiceFactory, fn_service};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::SinkExt;
use futures_util::future::LocalBoxFuture;
use tandem_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::http::error::HttpError;
use crate::http::extract;
use crate::http::head_guard::HeadGuard;
use crate::http::state::AppState;
use crate::manager::Attached;
use crate::session::identity::Identity;
use crate::telemetry as ev;
use link::Link;
use tandem_protocol::Transport;

/// The route the upgrade is served on (and its metrics label).
pub const ROUTE: &str = "/ws";

/// Bound on writing the handshake's answer: a client that does not read
/// even that is dropped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket a WebSocket connection lives on: plain TCP, or TLS over it
/// (`server.tls`). Each is its own instance of the code, so the plain path
/// pays nothing for TLS.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Socket for T {}

/// The upgrade request on the client listener's socket, read through its
/// head guard until the link takes the socket back.
type Upgrade<Io> = (Request, Framed<HeadGuard<Io>, h1::Codec>);

/// actix-http's upgrade service: one call per upgrade request, living on as
/// the connection's [`Link`] once accepted.
pub fn upgrade<Io: Socket>(
    app: web::Data<AppState>,
) -> impl ServiceFactory<Upgrade<Io>, Config = (), Response = (), Error = Infallible, InitError = ()> + Clone
{
    fn_service(move |(req, framed): Upgrade<Io>| -> LocalBoxFuture<'static, Result<(), Infallible>> {
        let app = app.clone().into_inner();
        Box::pin(async move {
            // The handshake's state (request, HTTP codec, answer) lives in a
            // box of its own, freed before the link starts.
            if let Some(link) = Box::pin(handshake(app, req, framed)).await {
                link.await;
            }
            Ok(())
        })
    })
}

/// Answers the upgrade request; the link to run when it was accepted.
async fn handshake<Io: Socket>(
    app: Arc<AppState>,
    req: Request,
    mut framed: Framed<HeadGuard<Io>, h1::Codec>,
) -> Option<Link<Io>> {
    let started = Instant::now();
    let route = if req.path() == ROUTE { ROUTE } else { "unmatched" };
    let method = extract::method_label(req.method());
    let accepted = accept(&app, &req).await;
    drop(req);
    let record = |status| ev::http_request(&app.telemetry, method, route, status, started.elapsed());
    match accepted {
        Ok((att, who, switching)) => {
            let answered = answer(&mut framed, switching, None).await;
            record(101);
            if !answered {
                app.manager.detach(&att, "client_gone");
                return None;
            }
            // Only the socket and what the client already sent live on:
            // the HTTP codec and the write buffer are dropped here.
            let FramedParts { io, mut read_buf, .. } = framed.into_parts();
            // What the guard read behind the upgrade request comes after
            // what the HTTP codec already had.
            let (io, held) = io.into_parts();
            read_buf.extend_from_slice(&held);
            Some(Link::new(app, att, who, io, read_buf))
        }
        Err(e) => {
            let (head, body) = error_response(&e).await;
            answer(&mut framed, head, Some(body)).await;
            record(e.status());
            None
        }
    }
}

/// Everything a `/ws` request must pass before its `101`, which it returns.
async fn accept(app: &AppState, req: &Request) -> Result<(Attached, Identity, Response<()>), HttpError> {
    extract::head_size(app, req.head())?;
    if req.path() != ROUTE || req.method() != Method::GET {
        return Err(HttpError::not_found());
    }
    extract::transport_enabled(app, Transport::WebSocket)?;
    let switching = wsp::handshake(req.head()).map_err(invalid_upgrade)?.finish().drop_body();
    let (att, who) = super::open(app, req.head(), Transport::WebSocket, None).await?;
    Ok((att, who, switching))
}

fn invalid_upgrade(e: wsp::HandshakeError) -> HttpError {
    HttpError::new(ErrorCode::InvalidUpgrade, format!("not a WebSocket upgrade: {e}"))
}

/// The JSON error a route would answer, as a head and its body.
async fn error_response(e: &HttpError) -> (Response<()>, bytes::Bytes) {
    let res: Response<_> = e.error_response().into();
    let (res, body) = res.into_parts();
    let body = actix_http::body::to_bytes(body).await.unwrap_or_default();
    let mut head = res.drop_body();
    head.head_mut().set_connection_type(ConnectionType::Close);
    (head, body)
}

/// Writes the answer to the upgrade request; `false` if the client did not
/// take it within [`ANSWER_TIMEOUT`]. The connection is closed after an error.
async fn answer<Io: Socket>(
    framed: &mut Framed<HeadGuard<Io>, h1::Codec>,
    head: Response<()>,
    body: Option<bytes::Bytes>,
) -> bool {
    let with_body = body.is_some();
    let write = async {
        let size = body.as_ref().map_or(BodySize::None, |b| b.size());
        framed.feed(Message::Item((head, size))).await?;
        if let Some(body) = body {
            framed.feed(Message::Chunk(Some(body))).await?;
            framed.feed(Message::Chunk(None)).await?;
        }
        // `Framed::close` does not write what is buffered: flush first.
        framed.flush().await?;
        if with_body {
            framed.close().await?;
        }
        Ok::<_, std::io::Error>(())
    };
    matches!(tokio::time::timeout(ANSWER_TIMEOUT, write).await, Ok(Ok(())))
}

/// `GET /ws` without `Upgrade: websocket` reaches actix-web: it is not a
/// WebSocket handshake, and gets the same answers the upgrade path gives.
pub async fn route(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    extract::transport_enabled(&app, Transport::WebSocket)?;
    wsp::verify_handshake(req.head()).map_err(invalid_upgrade)?;
    Err(HttpError::new(ErrorCode::InvalidUpgrade, "a WebSocket upgrade request carries no body"))
}
