//! WebSocket transport (`GET /ws`).
//!
//! An upgrade request reaches [`serve`] with its socket before actix-web
//! sees it: from the front door when it is a connection's first request
//! (`server::front_door`), from actix-http's upgrade service ([`upgrade`])
//! when it follows another. We check it exactly as a route would (head
//! size, `server.transports`, handshake, Origin, credentials, limits),
//! answer the same JSON errors, write the `101` ourselves and keep only the
//! socket: the connection lives on as a [`Link`] owning its own small,
//! lazily allocated buffers, with no HTTP dispatcher under it
//! (docs/benchmarks.md). Every other route stays on actix-web.

mod frame;
mod inbound;
pub mod link;

use std::convert::Infallible;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_codec::{Framed, FramedParts};
use actix_http::h1;
use actix_http::ws as wsp;
use actix_http::{Method, Request, Response};
use actix_web::dev::{RequestHead, ServiceFactory, fn_service};
use actix_web::http::Version;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::future::LocalBoxFuture;
use tandem_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::http::error::HttpError;
use crate::http::extract;
use crate::http::head_guard::HeadGuard;
use crate::http::response_head::{self, Connection, Framing};
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

/// actix-http's upgrade service: an upgrade after another request on the
/// same connection (the front door answers first requests with [`serve`]).
/// Only the socket and what the client sent behind its request go on: the
/// HTTP codec and its buffers are dropped here.
pub fn upgrade<Io: Socket>(
    app: web::Data<AppState>,
) -> impl ServiceFactory<Upgrade<Io>, Config = (), Response = (), Error = Infallible, InitError = ()> + Clone
{
    fn_service(move |(req, framed): Upgrade<Io>| -> LocalBoxFuture<'static, Result<(), Infallible>> {
        let app = app.clone().into_inner();
        Box::pin(async move {
            let FramedParts { io, mut read_buf, write_buf, .. } = framed.into_parts();
            // What the guard read behind the upgrade request comes after
            // what the HTTP codec already had.
            let (io, held) = io.into_parts();
            read_buf.extend_from_slice(&held);
            let (head, _) = req.into_parts();
            // `write_buf`: answers to requests before this one, not yet
            // written; they go out ahead of ours.
            serve(app, head, io, read_buf, write_buf).await;
            Ok(())
        })
    })
}

/// An upgrade request on a socket Tandem owns: answered, then served as a
/// [`Link`] until the connection ends. `early`: what the client sent
/// behind its request; `out`: what must be written before the answer.
pub async fn serve<Io: Socket>(
    app: Arc<AppState>,
    head: impl Deref<Target = RequestHead>,
    io: Io,
    early: BytesMut,
    out: BytesMut,
) {
    // The handshake's state (request, answer) lives in a box of its own,
    // freed before the link starts.
    if let Some(link) = Box::pin(handshake(app, head, io, early, out)).await {
        link.await;
    }
}

/// Answers the upgrade request; the link to run when it was accepted.
pub async fn handshake<Io: Socket>(
    app: Arc<AppState>,
    head: impl Deref<Target = RequestHead>,
    mut io: Io,
    early: BytesMut,
    mut out: BytesMut,
) -> Option<Link<Io>> {
    let started = Instant::now();
    let route = if head.uri.path() == ROUTE { ROUTE } else { "unmatched" };
    let method = extract::method_label(&head.method);
    let version = head.version;
    let accepted = accept(&app, &head).await;
    drop(head);
    let record = |status| ev::http_request(&app.telemetry, method, route, status, started.elapsed());
    match accepted {
        Ok((att, who, switching)) => {
            let (status, headers) = (switching.status(), switching.headers());
            response_head::put(
                &mut out,
                Version::HTTP_11,
                status,
                headers,
                Framing::None,
                Connection::Upgrade,
            );
            let answered = answer(&mut io, &out, false).await;
            record(101);
            if !answered {
                app.manager.detach(&att, "client_gone");
                return None;
            }
            Some(Link::new(app, att, who, io, early))
        }
        Err(e) => {
            let (status, headers, body) = response_head::error(&e);
            response_head::put(
                &mut out,
                version,
                status,
                &headers,
                Framing::Length(body.len()),
                Connection::Close,
            );
            out.extend_from_slice(&body);
            answer(&mut io, &out, true).await;
            record(e.status());
            None
        }
    }
}

/// Everything an upgrade request must pass before its `101`, which it returns.
async fn accept(app: &AppState, head: &RequestHead) -> Result<(Attached, Identity, Response<()>), HttpError> {
    extract::head_size(app, head)?;
    if head.uri.path() != ROUTE || head.method != Method::GET {
        return Err(HttpError::not_found());
    }
    extract::transport_enabled(app, Transport::WebSocket)?;
    let switching = wsp::handshake(head).map_err(invalid_upgrade)?.finish().drop_body();
    let (att, who) = super::open(app, head, Transport::WebSocket, None).await?;
    Ok((att, who, switching))
}

fn invalid_upgrade(e: wsp::HandshakeError) -> HttpError {
    HttpError::new(ErrorCode::InvalidUpgrade, format!("not a WebSocket upgrade: {e}"))
}

/// Writes the answer to the upgrade request; `false` if the client did not
/// take it within [`ANSWER_TIMEOUT`]. `close`: the connection ends after it
/// (an error).
async fn answer<Io: Socket>(io: &mut Io, out: &[u8], close: bool) -> bool {
    let write = async {
        io.write_all(out).await?;
        io.flush().await?;
        if close {
            io.shutdown().await?;
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
