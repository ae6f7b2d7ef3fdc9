//! Server-Sent Events transport (`GET /sse`) and the SSE clients' way back
//! in (`POST /sessions/{id}/messages`).
//!
//! A stream is a [`Writer`] draining the connection's outbound queue. A
//! connection's first request is served by [`serve`] on the socket the
//! front door took from actix-http (`server::front_door`): the stream is
//! then a [`link::Link`] owning the socket and nothing else, as a WebSocket
//! is. A `GET /sse` later on a keep-alive connection reaches actix-web's
//! [`route`], whose body is the same `Writer`. Either way the socket is
//! written only when it can take more, so a client that stops reading
//! fills its queue and is closed as a slow consumer.

pub mod link;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use std::time::{Duration, Instant};

use actix_http::{ConnectionType, StatusCode};
use actix_web::dev::RequestHead;
use actix_web::http::Version;
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    VARY,
};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::AsyncWriteExt;

use crate::auth::Identity;
use crate::http::error::{self, HttpError};
use crate::http::extract::{self, Client};
use crate::http::origin::CORS_VARY;
use crate::http::response_head::{self, Connection, Framing};
use crate::http::state::AppState;
use crate::manager::commands::{self, Handled, ReplyTo};
use crate::manager::{Attached, Session, UplinkHandler};
use crate::session::connection::{CloseReason, Next, Outbound};
use crate::session::protocol::{self, ClientMessage, ErrorCode, ProtocolError, Reply};
use crate::session::state::RateVerdict;
use crate::telemetry::{self as ev, AuthSurface, Ids};
use crate::transport::ws::Socket;
use tandem_protocol::Transport;

/// The route the stream is served on.
pub const ROUTE: &str = "/sse";

const HEARTBEAT: &[u8] = b": hb\n\n";

/// The heartbeat for `?heartbeat=event`: browsers hide comment lines from
/// scripts, so a browser client that wants to time the stream's liveness
/// asks for heartbeats it can see.
const HEARTBEAT_EVENT: &[u8] = b"event: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n";

/// Events are batched into one chunk up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

/// The headers of every stream's answer.
const STREAM_HEADERS: [(HeaderName, &str); 3] = [
    (CONTENT_TYPE, "text/event-stream"),
    (CACHE_CONTROL, "no-cache"),
    (HeaderName::from_static("x-accel-buffering"), "no"),
];

/// Bound on writing an error answer: a client that does not read even that
/// is dropped.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `Last-Event-ID`: the last sequence an `EventSource` received.
fn last_event_id(head: &RequestHead) -> Option<u64> {
    head.headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok())
}

/// Everything a stream request must pass before its `200`: the checks of
/// every route, then the connect itself.
async fn start(app: &web::Data<AppState>, head: &RequestHead) -> Result<Writer, HttpError> {
    extract::head_size(app, head)?;
    extract::transport_enabled(app, Transport::Sse)?;
    let (att, _who) = super::open(app, head, Transport::Sse, last_event_id(head)).await?;
    let heartbeat_events = wants_heartbeat_events(head.uri.query().unwrap_or_default());
    Ok(Writer { app: app.clone().into_inner(), att, heartbeat_events, done: false })
}

/// `GET /sse` on actix-web: a stream requested after another request on
/// the same connection (the front door serves first requests).
pub async fn route(req: HttpRequest, app: web::Data<AppState>) -> Result<HttpResponse, HttpError> {
    let writer = start(&app, req.head()).await?;
    let mut res = HttpResponse::Ok();
    for header in STREAM_HEADERS {
        res.insert_header(header);
    }
    let mut res = res.streaming(writer);
    if req.version() < Version::HTTP_11 {
        // HTTP/1.0 has no chunked encoding: the events are the raw body,
        // and closing the connection ends it.
        res.head_mut().no_chunking(true);
        res.head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

/// What a stream request on an owned socket became.
pub enum Opened<Io: Socket> {
    /// The stream, its answer's head queued: to be run until it ends.
    /// Boxed, so what a connection's task holds is the stream alone.
    Stream(Pin<Box<link::Link<Io>>>),
    /// An error was answered and the client keeps the connection: the
    /// socket and what the client sent after its request, for actix-http.
    KeepAlive(Io, BytesMut),
    /// The connection is over.
    Done,
}

/// A connection's first request, `GET /sse`, on the socket the front door
/// owns: the same checks, answers and stream as [`route`], with no
/// dispatcher under it. `rest`: what the client sent after its head.
pub async fn open<Io: Socket>(
    app: Arc<AppState>,
    head: Box<RequestHead>,
    mut io: Io,
    rest: BytesMut,
) -> Opened<Io> {
    let started = Instant::now();
    let app = web::Data::from(app);
    let started_stream = start(&app, &head).await;
    let allow_origin = app.origins.cors_origin(&head.headers).cloned();
    let mut headers = HeaderMap::new();
    if let Some(origin) = allow_origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.insert(VARY, HeaderValue::from_static(CORS_VARY));
    let record = |status| ev::http_request(&app.telemetry, "GET", ROUTE, status, started.elapsed());
    let mut out = BytesMut::new();
    match started_stream {
        Ok(writer) => {
            for (name, value) in STREAM_HEADERS {
                headers.insert(name, HeaderValue::from_static(value));
            }
            let http_1_0 = head.version < Version::HTTP_11;
            let framing = if http_1_0 { Framing::UntilClose } else { Framing::Chunked };
            response_head::put(
                &mut out,
                head.version,
                StatusCode::OK,
                &headers,
                framing,
                Connection::Default,
            );
            record(200);
            Opened::Stream(Box::pin(link::Link::new(writer, io, out, !http_1_0)))
        }
        Err(e) => {
            let (status, own, body) = response_head::error(&e);
            for (name, value) in own {
                headers.append(name, value);
            }
            let keep_alive = keeps_alive(&head);
            let connection = if keep_alive { Connection::Default } else { Connection::Close };
            response_head::put(
                &mut out,
                head.version,
                status,
                &headers,
                Framing::Length(body.len()),
                connection,
            );
            out.extend_from_slice(&body);
            record(status.as_u16());
            let written = tokio::time::timeout(ANSWER_TIMEOUT, async {
                io.write_all(&out).await?;
                io.flush().await
            })
            .await;
            match written {
                Ok(Ok(())) if keep_alive => Opened::KeepAlive(io, rest),
                Ok(Ok(())) => {
                    let _ = tokio::time::timeout(ANSWER_TIMEOUT, io.shutdown()).await;
                    Opened::Done
                }
                _ => Opened::Done,
            }
        }
    }
}

/// Does the client keep the connection after an answer? HTTP/1.1 unless it
/// says `Connection: close`; HTTP/1.0 is closed (its keep-alive is not
/// offered here).
fn keeps_alive(head: &RequestHead) -> bool {
    head.version >= Version::HTTP_11
        && !head
            .headers
            .get_all(CONNECTION)
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|o| o.trim().eq_ignore_ascii_case("close"))))
}

/// Owns the attached connection for the life of the response body; when
/// actix drops the body (client gone, stream ended) the connection detaches.
/// Boxed by actix for every SSE connection: keep it small (32 bytes).
struct Writer {
    app: Arc<AppState>,
    att: Attached,
    heartbeat_events: bool,
    /// The close was written; the stream ends.
    done: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Ended by its close: that reason (the first close wins, so it is
        // still the connection's); otherwise the client went away.
        let end = match self.att.conn.closing() {
            Some(reason) if self.done => reason.as_str(),
            _ => "client_gone",
        };
        self.app.manager.detach(&self.att, end);
    }
}

impl Stream for Writer {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let w = self.get_mut();
        if w.done {
            return Poll::Ready(None);
        }
        let mut out = BytesMut::new();
        w.fill(cx.waker(), &mut out);
        if out.is_empty() { Poll::Pending } else { Poll::Ready(Some(Ok(out.freeze()))) }
    }
}

impl Writer {
    /// Encodes what the connection's queue holds onto `out`, up to about
    /// [`BATCH_BYTES`] (one write), the close last; `waker` is woken by the
    /// next push.
    fn fill(&mut self, waker: &Waker, out: &mut BytesMut) {
        if self.done {
            return;
        }
        // Registered before draining, so no push is missed.
        self.att.conn.register_waker(waker);
        let start = out.len();
        while out.len() - start < BATCH_BYTES {
            match self.att.conn.next() {
                Next::Send(item) => self.encode(item, out),
                Next::Close(reason) => {
                    self.done = true;
                    put_close(reason, out);
                    break;
                }
                Next::Idle => break,
            }
        }
    }

    fn encode(&self, item: Outbound, out: &mut BytesMut) {
        let c = &self.att.conn;
        c.last_alive_ms.store(self.app.manager.now_ms(), Ordering::Relaxed);
        let before = out.len();
        match item {
            Outbound::Frame { kind, json } => protocol::sse_event(kind, &json, out),
            Outbound::Delivery { seq, publication } => {
                publication.encode_sse(seq, out);
                ev::message_delivered(
                    &self.app.telemetry,
                    self.att.ids(),
                    seq,
                    publication.accepted_at.elapsed(),
                );
            }
            // Pongs only exist on WebSocket; a heartbeat comment is harmless.
            Outbound::Heartbeat | Outbound::Pong(_) => {
                out.extend_from_slice(if self.heartbeat_events { HEARTBEAT_EVENT } else { HEARTBEAT });
                return;
            }
        }
        c.count_sent(out.len() - before);
    }
}

/// `?heartbeat=event`: heartbeats as `heartbeat` events instead of comments.
fn wants_heartbeat_events(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "heartbeat" && v == "event")
}

/// The end of a stream the server closes: on shutdown a `retry:` hint and a
/// `shutdown` event; otherwise a `close` event with the code and reason a
/// WebSocket would have received.
fn put_close(reason: CloseReason, buf: &mut BytesMut) {
    match reason {
        CloseReason::Shutdown { retry_after_ms } => {
            buf.put_slice(format!("retry: {retry_after_ms}\n").as_bytes());
            let json = protocol::to_json(&Reply::Shutdown { reconnect: true, retry_after_ms });
            protocol::sse_event("shutdown", &json, buf);
        }
        other => {
            let close = CloseEvent {
                code: other.code(),
                reason: other.as_str(),
                reconnect: other.reconnect(),
                kind: "close",
            };
            protocol::sse_event("close", &protocol::to_json(&close), buf);
        }
    }
}

/// The `close` event's data: what a WebSocket would have learnt from its
/// close frame (fields in the order of their keys, as clients know it).
#[derive(serde::Serialize)]
struct CloseEvent {
    code: u16,
    reason: &'static str,
    reconnect: bool,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// `POST /sessions/{session_id}/messages`: a client message from an SSE
/// client, answered in the HTTP response. A post for a session another
/// node holds (a balancer with no stickiness) is run there, through the
/// broker.
pub async fn post_message(
    req: HttpRequest,
    client: Client,
    path: web::Path<String>,
    body: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let who = client.who;
    if path.as_str() == super::PROBE_SESSION {
        return super::probe(&app, &who).await;
    }
    let max = app.config.transport.max_message_bytes;
    let Some(session) = app.manager.session(&path) else {
        let body = error::read_json_body(&req, body, max).await?;
        return forward(&app, &path, &who, body).await;
    };
    if *session.player_id != *who.player_id {
        let code = ErrorCode::Forbidden.as_str();
        ev::auth_failed(&app.telemetry, AuthSurface::Client, code, &extract::route_of(&req));
        return Err(HttpError::new(ErrorCode::Forbidden, "the session belongs to another player"));
    }
    let body = error::read_json_body(&req, body, max).await.inspect_err(|e| {
        ev::client_error(&app.telemetry, post_ids(&session), e.code.as_str(), &e.message);
    })?;
    let (status, json) = run_post(&app, &session, &who, &body).await?;
    Ok(answer(status, json))
}

fn answer(status: u16, json: Bytes) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status).insert_header((CONTENT_TYPE, "application/json")).body(json)
}

fn post_ids(session: &Session) -> Ids<'_> {
    Ids {
        player_id: &session.player_id,
        session_id: &session.id,
        connection_id: "",
        transport: Transport::Sse,
    }
}

/// A post for a session this node does not hold: run by the node whose
/// record names it (`404 session_not_found` when none does).
async fn forward(app: &AppState, id: &str, who: &Identity, body: Bytes) -> Result<HttpResponse, HttpError> {
    let not_found = || HttpError::new(ErrorCode::SessionNotFound, "no such session (it may have expired)");
    let broker = app.manager.broker();
    if !broker.delivers_own() || !protocol::is_session_id(id) {
        return Err(not_found());
    }
    let stored = broker.stored_session(id).await.ok().flatten().ok_or_else(not_found)?;
    if *stored.player_id != *who.player_id {
        return Err(HttpError::new(ErrorCode::Forbidden, "the session belongs to another player"));
    }
    let (status, json) = broker
        .forward_uplink(&stored.node, id, who, body)
        .await
        .map_err(|e| HttpError::new(ErrorCode::BrokerUnavailable, e.to_string()))?;
    Ok(answer(status, json))
}

/// Runs posts other nodes forward here (the manager's uplink handler).
pub fn forwarded_posts(app: web::Data<AppState>) -> UplinkHandler {
    Arc::new(move |session_id: String, who: Identity, body: Bytes| {
        let app = app.clone();
        Box::pin(async move {
            let run = match app.manager.session(&session_id) {
                Some(s) if *s.player_id == *who.player_id => run_post(&app, &s, &who, &body).await,
                Some(_) => Err(HttpError::new(ErrorCode::Forbidden, "the session belongs to another player")),
                None => {
                    Err(HttpError::new(ErrorCode::SessionNotFound, "no such session (it may have expired)"))
                }
            };
            run.unwrap_or_else(|e| (e.status(), e.json()))
        })
    })
}

/// A post's work once its session is here: the rate limit, then the
/// message. Returns the answer's status and JSON body.
async fn run_post(
    app: &AppState,
    session: &Arc<Session>,
    who: &Identity,
    body: &Bytes,
) -> Result<(u16, Bytes), HttpError> {
    let mgr = &app.manager;
    let ids = post_ids(session);
    let reject = |e: ProtocolError| {
        ev::client_error(&app.telemetry, ids, e.code.as_str(), &e.message);
        HttpError::from(e)
    };
    match mgr.check_post_rate(session) {
        RateVerdict::Allowed => {}
        verdict => {
            if verdict == RateVerdict::Abusive {
                mgr.close_transport(session, Transport::Sse, CloseReason::RateLimited);
            }
            return Err(reject(ProtocolError::new(
                ErrorCode::RateLimited,
                "over transport.inbound_rate_per_second",
            )));
        }
    }
    let parsed = ClientMessage::parse(body);
    ev::message_received(Transport::Sse, parsed.as_ref().map_or("invalid", ClientMessage::kind));
    let json =
        match parsed.and_then(|m| commands::handle(mgr, session, who, Transport::Sse, m)).map_err(reject)? {
            Handled::Now((_, json)) => json,
            Handled::EndSession((_, json)) => {
                mgr.end_session_by_client(session);
                json
            }
            Handled::Later(work) => match work.await {
                Ok((_, json)) => json,
                Err(commands::Refused::Protocol(e)) => return Err(reject(e)),
                Err(commands::Refused::Game(r)) => return Err(HttpError::refused(r)),
            },
            Handled::Refresh(token) => {
                let conns: Vec<_> =
                    session.connections().into_iter().filter(|c| c.transport == Transport::Sse).collect();
                super::refresh(app, session, &conns, &token, ids).map_err(reject)?.1.1
            }
            Handled::Command(task) => {
                // Taken: the answer arrives on the session's SSE streams.
                let accepted = protocol::to_json(&Accepted { accepted: true, id: &task.id });
                tokio::spawn(task.run(ReplyTo::Streams));
                return Ok((202, accepted));
            }
        };
    Ok((200, json))
}

/// `202` to a POSTed command.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    accepted: bool,
    id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_event_says_what_a_websocket_close_would() {
        let mut buf = BytesMut::new();
        put_close(CloseReason::SlowConsumer, &mut buf);
        assert_eq!(
            &buf[..],
            b"event: close\ndata: {\"code\":4008,\"reason\":\"slow_consumer\",\"reconnect\":true,\"type\":\"close\"}\n\n"
        );
    }

    #[test]
    fn heartbeat_events_only_when_asked() {
        assert!(wants_heartbeat_events("player_id=a&heartbeat=event"));
        assert!(!wants_heartbeat_events("player_id=a"));
        assert!(!wants_heartbeat_events("heartbeat=comment"));
        assert!(
            HEARTBEAT_EVENT.starts_with(b"event: heartbeat\ndata: {"),
            "a data line, or browsers drop it"
        );
    }
}
