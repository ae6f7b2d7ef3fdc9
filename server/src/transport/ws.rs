//! WebSocket transport (`GET /ws`, actix-ws): one task per connection reads
//! client frames and drains the connection's outbound queue. Only this task
//! ever awaits the peer; publishers just push.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, Message, ProtocolError as WsProtocolError};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Sink;
use tandem_monitoring::Transport;

use crate::app::AppState;
use crate::auth::Identity;
use crate::commands;
use crate::connection::{CloseReason, Next, Outbound, Push};
use crate::http_error::HttpError;
use crate::internal_events as ev;
use crate::manager::Attached;
use crate::protocol::{self, ClientMessage, ErrorCode, ProtocolError, Reply};
use crate::session::TokenBucket;

/// Rejected frames in a row (over the rate limit) before the connection is
/// closed as abusive.
pub const RATE_LIMIT_STRIKES: u32 = 10;

/// How long a close frame may take to be queued before we drop the link.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn route(
    req: HttpRequest,
    body: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| HttpError::new(400, "invalid_upgrade", format!("not a WebSocket upgrade: {e}")))?;
    let (att, who) = super::open(&app, &req, Transport::WebSocket, None)?;
    let max = app.config.transport.max_message_bytes;
    let stream = stream.max_frame_size(max).aggregate_continuations().max_continuation_size(max);
    let bucket = app.manager.new_bucket();
    let link =
        Link { app: app.into_inner(), att, who, ws: session, bucket, strikes: 0, buf: BytesMut::new() };
    actix_web::rt::spawn(run(link, stream));
    Ok(response)
}

struct Link {
    app: Arc<AppState>,
    att: Attached,
    who: Identity,
    ws: actix_ws::Session,
    bucket: TokenBucket,
    strikes: u32,
    buf: BytesMut,
}

/// The connection's task. A plain fn returning an `async move` block, not
/// an `async fn`: an async fn copies its arguments into locals, which would
/// store the link and the stream twice in every connection's task.
#[allow(clippy::manual_async_fn)] // deliberate, see above
fn run(mut link: Link, mut stream: AggregatedMessageStream) -> impl Future<Output = ()> {
    async move {
        let end = loop {
            if let Some(end) = link.drain().await {
                break end;
            }
            // The select's futures end here, before `inbound` runs: kept
            // apart, their states share the task's memory instead of adding up.
            let msg = {
                let conn = Arc::clone(&link.att.conn);
                tokio::select! {
                    biased;
                    () = conn.notified() => None,
                    msg = stream.recv() => Some(msg),
                }
            };
            if let Some(msg) = msg {
                if let Some(end) = link.inbound(msg).await {
                    break end;
                }
            }
        };
        link.app.manager.detach(&link.att, end);
    }
}

impl Link {
    /// Writes everything queued; `Some(reason)` when the link is over.
    async fn drain(&mut self) -> Option<&'static str> {
        loop {
            let next = self.att.conn.next();
            let sent = match next {
                Next::Idle => return None,
                Next::Close(reason) => {
                    // Boxed: once per connection, and it keeps the task small.
                    Box::pin(self.send_close(reason)).await;
                    return Some(reason.as_str());
                }
                Next::Send(Outbound::Frame { json, .. }) => self.send_text(json).await,
                Next::Send(Outbound::Delivery { seq, publication }) => {
                    publication.encode_json(seq, &mut self.buf);
                    let frame = self.buf.split().freeze();
                    let ok = self.send_text(frame).await;
                    if ok {
                        ev::message_delivered(
                            &self.app.manager.telemetry,
                            self.att.ids(),
                            seq,
                            publication.accepted_at.elapsed(),
                        );
                    }
                    ok
                }
                Next::Send(Outbound::Heartbeat) => {
                    let now = self.app.manager.now_ms();
                    let _ = self.att.conn.ping_sent_ms.compare_exchange(
                        0,
                        now,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    self.send(Message::Ping(Bytes::copy_from_slice(&now.to_be_bytes()))).await
                }
            };
            if !sent {
                // The peer is gone, or we stopped waiting on it (slow
                // consumer, heartbeat timeout): the close frame gets
                // CLOSE_TIMEOUT to be queued, then the link is dropped.
                return Some(match self.att.conn.closing() {
                    Some(reason) => {
                        Box::pin(self.send_close(reason)).await;
                        reason.as_str()
                    }
                    None => "write_failed",
                });
            }
        }
    }

    async fn send_text(&mut self, json: Bytes) -> bool {
        let len = json.len() as u64;
        let Ok(text) = ByteString::try_from(json) else { return true };
        let ok = self.send(Message::Text(text)).await;
        if ok {
            let c = &self.att.conn;
            c.messages_sent.fetch_add(1, Ordering::Relaxed);
            c.bytes_sent.fetch_add(len, Ordering::Relaxed);
        }
        ok
    }

    /// Hands one message to actix-ws. Waits only while its small channel is
    /// full, and gives up as soon as the connection is closed without flush
    /// (a peer that stopped reading must not pin this task). Polls the sink
    /// directly: this is the task's hot await, and nested send futures would
    /// make every connection's task larger.
    async fn send(&mut self, msg: Message) -> bool {
        let conn = Arc::clone(&self.att.conn);
        loop {
            let notified = conn.notified();
            tokio::pin!(notified);
            let ws = &mut self.ws;
            let ready = poll_fn(|cx| match Pin::new(&mut *ws).poll_ready(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r.is_ok())),
                Poll::Pending => notified.as_mut().poll(cx).map(|()| None),
            })
            .await;
            match ready {
                Some(true) => return Pin::new(&mut self.ws).start_send(msg).is_ok(),
                Some(false) => return false,
                None if conn.closing().is_some_and(|r| !matches!(r, CloseReason::Shutdown { .. })) => {
                    return false;
                }
                None => {}
            }
        }
    }

    async fn send_close(&mut self, reason: CloseReason) {
        if let CloseReason::Shutdown { retry_after_ms } = reason {
            let frame = protocol::to_json(&Reply::Shutdown { reconnect: true, retry_after_ms });
            self.send_text(frame).await;
        }
        let close = actix_ws::CloseReason {
            code: actix_ws::CloseCode::from(reason.code()),
            description: Some(reason.as_str().to_owned()),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.ws.clone().close(Some(close))).await;
    }

    fn push(&self, kind: &'static str, json: Bytes) {
        if self.att.conn.push(Outbound::Frame { kind, json }) == Push::Full {
            self.app.manager.force_close(&self.att, CloseReason::SlowConsumer);
        }
    }

    fn reject(&self, err: &ProtocolError) {
        ev::client_error(&self.app.manager.telemetry, self.att.ids(), err.code.as_str(), &err.message);
        self.push("error", protocol::error_frame(err));
    }

    /// Handles one inbound item; `Some(reason)` when the link is over.
    async fn inbound(
        &mut self,
        msg: Option<Result<AggregatedMessage, WsProtocolError>>,
    ) -> Option<&'static str> {
        let mgr = &self.app.manager;
        let now = mgr.now_ms();
        self.att.conn.last_alive_ms.store(now, Ordering::Relaxed);
        let msg = match msg {
            None => return Some("client_gone"),
            Some(Ok(m)) => m,
            Some(Err(WsProtocolError::Overflow)) => {
                mgr.force_close(&self.att, CloseReason::TooLarge);
                return None;
            }
            Some(Err(_)) => return Some("protocol_error"),
        };
        match msg {
            AggregatedMessage::Close(_) => {
                let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, self.ws.clone().close(None))).await;
                return Some("client_closed");
            }
            AggregatedMessage::Ping(payload) => {
                self.send(Message::Pong(payload)).await;
                return None;
            }
            AggregatedMessage::Pong(payload) => {
                let sent = <[u8; 8]>::try_from(&payload[..]).map(u64::from_be_bytes).unwrap_or(0);
                if sent != 0 && sent <= now {
                    let rtt = Duration::from_millis(now - sent);
                    let _ = self.att.conn.ping_sent_ms.compare_exchange(
                        sent,
                        0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    self.att.conn.last_rtt_us.store(rtt.as_micros() as u64, Ordering::Relaxed);
                    ev::heartbeat_rtt(&mgr.telemetry, rtt);
                }
                return None;
            }
            AggregatedMessage::Binary(_) | AggregatedMessage::Text(_) => {}
        }
        if !self.bucket.try_take(now) {
            self.strikes += 1;
            if self.strikes >= RATE_LIMIT_STRIKES {
                mgr.force_close(&self.att, CloseReason::RateLimited);
            } else {
                self.reject(&ProtocolError::new(
                    ErrorCode::RateLimited,
                    "over transport.inbound_rate_per_second",
                ));
            }
            return None;
        }
        self.strikes = 0;
        let text = match msg {
            AggregatedMessage::Text(t) => t,
            _ => {
                ev::message_received(Transport::WebSocket, "binary");
                self.reject(&ProtocolError::new(
                    ErrorCode::UnsupportedFrame,
                    "binary frames are not supported; send JSON text",
                ));
                return None;
            }
        };
        let parsed = ClientMessage::parse(text.as_bytes());
        ev::message_received(Transport::WebSocket, parsed.as_ref().map_or("invalid", ClientMessage::kind));
        match parsed.and_then(|m| commands::handle(mgr, &self.att.session, &self.who, m)) {
            Ok((kind, json)) => self.push(kind, json),
            Err(e) => self.reject(&e),
        }
        None
    }
}
