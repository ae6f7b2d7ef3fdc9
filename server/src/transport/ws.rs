//! WebSocket transport (`GET /ws`).
//!
//! The whole connection is one response-body stream polled by actix's HTTP
//! dispatcher: each poll reads and handles the client's frames, then writes
//! every queued frame in one chunk. There is no per-connection task and no
//! channel between us and the socket writer, so an idle connection costs
//! only this struct, and a burst of deliveries becomes one write. Publishers
//! only push to the connection's queue; the dispatcher polls us when the
//! socket can take more, so a client that stops reading fills its queue and
//! is closed as a slow consumer.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Decoder;
use actix_http::ws::{self as wsp, CloseCode, Codec, Frame, Item, OpCode, Parser};
use actix_web::body::{BodyStream, MessageBody};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;

use crate::commands;
use crate::connection::{CloseReason, Next, Outbound, Push};
use crate::http_error::HttpError;
use crate::identity::Identity;
use crate::internal_events as ev;
use crate::manager::Attached;
use crate::protocol::{self, ClientMessage, ErrorCode, ProtocolError, Reply};
use crate::session::{RATE_LIMIT_STRIKES, TokenBucket};
use crate::state::AppState;
use crate::transport_kind::Transport;

/// Frames are batched into one chunk up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

pub async fn route(
    req: HttpRequest,
    body: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    super::enabled(&app, Transport::WebSocket)?;
    let mut response = wsp::handshake(req.head())
        .map_err(|e| HttpError::new(400, "invalid_upgrade", format!("not a WebSocket upgrade: {e}")))?;
    let (att, who) = super::open(&app, &req, Transport::WebSocket, None).await?;
    let max = app.config.transport.max_message_bytes;
    let app_fragment_timeout = Duration::from_secs(app.config.transport.fragment_timeout_seconds);
    let link = Link {
        bucket: app.manager.new_bucket(),
        app: app.into_inner(),
        att,
        who,
        payload: body.into_inner(),
        inbound: BytesMut::new(),
        codec: Codec::new().max_size(max),
        fragments: None,
        fragment_deadline: None,
        fragment_timeout: app_fragment_timeout,
        max,
        strikes: 0,
        reading: true,
        reply_close: false,
        client_gone: false,
        done: false,
        end: "client_gone",
    };
    let body = BodyStream::new(link).boxed();
    response
        .message_body(body)
        .map(Into::into)
        .map_err(|e| HttpError::new(500, "internal", format!("cannot start the WebSocket: {e}")))
}

/// One WebSocket connection: inbound decoding, rate limit, and the writer.
struct Link {
    app: Arc<AppState>,
    att: Attached,
    who: Identity,
    payload: actix_http::Payload,
    inbound: BytesMut,
    codec: Codec,
    /// A fragmented text message being reassembled.
    fragments: Option<BytesMut>,
    /// When the fragmented message in progress must be complete; allocated
    /// only while there is one.
    fragment_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    fragment_timeout: Duration,
    max: usize,
    bucket: TokenBucket,
    strikes: u32,
    /// False once the connection is closing for what the client sent:
    /// nothing more of it is read or buffered.
    reading: bool,
    /// The client sent a close frame: answer it, then end.
    reply_close: bool,
    client_gone: bool,
    done: bool,
    end: &'static str,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.app.manager.detach(&self.att, self.end);
    }
}

impl Stream for Link {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if !this.client_gone && this.reading {
            this.read_inbound(cx);
        }
        if let Some(deadline) = this.fragment_deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            this.fragment_deadline = None;
            this.fragments = None;
            this.refuse(CloseReason::MessageTimeout);
        }
        this.att.conn.register_waker(cx.waker());
        let mut out = BytesMut::new();
        this.write_queued(&mut out);
        if this.reply_close && !this.done {
            Parser::write_close(&mut out, None, false);
            this.done = true;
            this.end = "client_closed";
        }
        if this.client_gone && !this.done {
            this.done = true;
        }
        if !out.is_empty() {
            return Poll::Ready(Some(Ok(out.freeze())));
        }
        if this.done { Poll::Ready(None) } else { Poll::Pending }
    }
}

const OPCODE_CONTINUATION: u8 = 0x0;

/// Opcode and payload length a frame header announces, once the length
/// bytes are buffered (RFC 6455 §5.2).
fn frame_header(buf: &[u8]) -> Option<(u8, u64)> {
    let opcode = buf.first()? & 0x0F;
    let len = match buf.get(1)? & 0x7F {
        126 => u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        127 => u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?),
        n => u64::from(n),
    };
    Some((opcode, len))
}

/// Header of an unmasked, final text frame of `len` bytes (RFC 6455 §5.2).
fn put_text_header(dst: &mut BytesMut, len: usize) {
    dst.reserve(len + 10);
    let fin_text = 0x80 | u8::from(OpCode::Text);
    if len < 126 {
        dst.put_slice(&[fin_text, len as u8]);
    } else if let Ok(short) = u16::try_from(len) {
        dst.put_slice(&[fin_text, 126]);
        dst.put_u16(short);
    } else {
        dst.put_slice(&[fin_text, 127]);
        dst.put_u64(len as u64);
    }
}

impl Link {
    /// Encodes queued frames into `out` (one chunk, bounded); handles the
    /// close when it comes up.
    fn write_queued(&mut self, out: &mut BytesMut) {
        let conn = Arc::clone(&self.att.conn);
        while out.len() < BATCH_BYTES {
            match conn.next() {
                Next::Idle => return,
                Next::Send(Outbound::Frame { json, .. }) => self.put_text(out, &json),
                Next::Send(Outbound::Delivery { seq, publication }) => {
                    let len = publication.json_len(seq);
                    put_text_header(out, len);
                    publication.encode_json(seq, out);
                    conn.messages_sent.fetch_add(1, Ordering::Relaxed);
                    conn.bytes_sent.fetch_add(len as u64, Ordering::Relaxed);
                    ev::message_delivered(
                        &self.app.manager.telemetry,
                        self.att.ids(),
                        seq,
                        publication.accepted_at.elapsed(),
                    );
                }
                Next::Send(Outbound::Pong(payload)) => {
                    Parser::write_message(&mut *out, payload, OpCode::Pong, true, false);
                }
                Next::Send(Outbound::Heartbeat) => {
                    let now = self.app.manager.now_us();
                    let _ = conn.ping_sent_us.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                    Parser::write_message(out, now.to_be_bytes(), OpCode::Ping, true, false);
                }
                Next::Close(reason) => {
                    if let CloseReason::Shutdown { retry_after_ms } = reason {
                        let frame = protocol::to_json(&Reply::Shutdown { reconnect: true, retry_after_ms });
                        self.put_text(out, &frame);
                    }
                    let close = wsp::CloseReason {
                        code: CloseCode::from(reason.code()),
                        description: Some(reason.as_str().to_owned()),
                    };
                    Parser::write_close(out, Some(close), false);
                    self.done = true;
                    self.end = reason.as_str();
                    return;
                }
            }
        }
    }

    fn put_text(&self, out: &mut BytesMut, json: &[u8]) {
        Parser::write_message(&mut *out, json, OpCode::Text, true, false);
        let c = &self.att.conn;
        c.messages_sent.fetch_add(1, Ordering::Relaxed);
        c.bytes_sent.fetch_add(json.len() as u64, Ordering::Relaxed);
    }

    /// Reads what the client sent so far, one chunk at a time, handling
    /// each complete frame before reading on: the buffer never holds more
    /// than the frame in progress (at most `transport.max_message_bytes`
    /// plus its header) and one chunk.
    fn read_inbound(&mut self, cx: &mut Context<'_>) {
        loop {
            self.decode_buffered();
            if !self.reading || self.reply_close || self.done {
                break;
            }
            match Pin::new(&mut self.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.inbound.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                    self.client_gone = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if self.inbound.is_empty() || !self.reading {
            // Give back the read buffer of an idle (or refused) connection.
            self.inbound = BytesMut::new();
        }
    }

    /// Handles every complete frame in the buffer. A frame whose header
    /// announces more than the limit is refused right away, before its
    /// payload arrives (actix's decoder would wait for all of it).
    fn decode_buffered(&mut self) {
        while self.reading && !self.reply_close && !self.done {
            if let Some((opcode, len)) = frame_header(&self.inbound)
                && len > self.frame_limit(opcode) as u64
            {
                self.refuse(CloseReason::TooLarge);
                return;
            }
            match self.codec.decode(&mut self.inbound) {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => return,
                Err(wsp::ProtocolError::Overflow) => self.refuse(CloseReason::TooLarge),
                Err(_) => self.refuse(CloseReason::ProtocolError),
            }
        }
    }

    /// The most a frame with `opcode` may carry now: the rest of the message
    /// budget while a fragmented message is in progress.
    fn frame_limit(&self, opcode: u8) -> usize {
        match (&self.fragments, opcode) {
            (Some(buf), OPCODE_CONTINUATION) => self.max.saturating_sub(buf.len()),
            _ => self.max,
        }
    }

    /// Stops reading what the client sends and closes with `reason`.
    fn refuse(&mut self, reason: CloseReason) {
        self.reading = false;
        self.fragments = None;
        self.fragment_deadline = None;
        self.close(reason);
    }

    fn close(&self, reason: CloseReason) {
        self.app.manager.force_close(&self.att, reason);
    }

    fn on_frame(&mut self, frame: Frame) {
        let mgr = &self.app.manager;
        let now = mgr.now_ms();
        self.att.conn.last_alive_ms.store(now, Ordering::Relaxed);
        let message = match frame {
            Frame::Close(_) => {
                self.reply_close = true;
                return;
            }
            Frame::Ping(payload) => {
                // Answered through the queue, so it is written in order.
                let pong = BytesMut::from(&payload[..payload.len().min(125)]).freeze();
                self.push_raw_pong(pong);
                return;
            }
            Frame::Pong(payload) => {
                // Only the pong of our outstanding ping is a round trip; an
                // unsolicited or replayed one proves liveness only.
                let sent = <[u8; 8]>::try_from(&payload[..]).map(u64::from_be_bytes).unwrap_or(0);
                let c = &self.att.conn;
                if sent != 0
                    && c.ping_sent_us.compare_exchange(sent, 0, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                {
                    let rtt = Duration::from_micros(mgr.now_us().saturating_sub(sent));
                    c.last_rtt_us.store(rtt.as_micros() as u64, Ordering::Relaxed);
                    ev::heartbeat_rtt(&mgr.telemetry, rtt);
                }
                return;
            }
            Frame::Text(text) => Some(text),
            Frame::Binary(_) => None,
            Frame::Continuation(item) => match self.reassemble(item) {
                Reassembled::Pending => return,
                Reassembled::Text(text) => Some(text),
                Reassembled::Binary => None,
            },
        };
        self.on_message(message, now);
    }

    /// Continuation frames: text is reassembled up to the size limit.
    fn reassemble(&mut self, item: Item) -> Reassembled {
        match item {
            Item::FirstText(b) => {
                self.fragments = Some(BytesMut::from(&b[..]));
                self.fragment_deadline = Some(Box::pin(tokio::time::sleep(self.fragment_timeout)));
                Reassembled::Pending
            }
            Item::FirstBinary(_) => {
                self.fragments = None;
                Reassembled::Binary
            }
            Item::Continue(b) => self.append_fragment(&b, false),
            Item::Last(b) => self.append_fragment(&b, true),
        }
    }

    fn append_fragment(&mut self, b: &[u8], last: bool) -> Reassembled {
        let Some(buf) = self.fragments.as_mut() else { return Reassembled::Binary };
        if buf.len() + b.len() > self.max {
            self.refuse(CloseReason::TooLarge);
            return Reassembled::Pending;
        }
        buf.extend_from_slice(b);
        if !last {
            return Reassembled::Pending;
        }
        self.fragment_deadline = None;
        Reassembled::Text(self.fragments.take().map(BytesMut::freeze).unwrap_or_default())
    }

    /// A complete data message: `Some(text)` or a binary one.
    fn on_message(&mut self, text: Option<Bytes>, now: u64) {
        let mgr = &self.app.manager;
        if !self.bucket.try_take(now) {
            self.strikes += 1;
            if self.strikes >= RATE_LIMIT_STRIKES {
                self.close(CloseReason::RateLimited);
            } else {
                self.reject(&ProtocolError::new(
                    ErrorCode::RateLimited,
                    "over transport.inbound_rate_per_second",
                ));
            }
            return;
        }
        self.strikes = 0;
        let Some(text) = text else {
            ev::message_received(Transport::WebSocket, "binary");
            self.reject(&ProtocolError::new(
                ErrorCode::UnsupportedFrame,
                "binary frames are not supported; send JSON text",
            ));
            return;
        };
        if std::str::from_utf8(&text).is_err() {
            // RFC 6455 §8.1: a text message that is not UTF-8 fails the
            // connection with 1007.
            self.refuse(CloseReason::InvalidPayload);
            return;
        }
        let parsed = ClientMessage::parse(&text);
        ev::message_received(Transport::WebSocket, parsed.as_ref().map_or("invalid", ClientMessage::kind));
        match parsed.and_then(|m| commands::handle(mgr, &self.att.session, &self.who, m)) {
            Ok((kind, json)) => self.push(kind, json),
            Err(e) => self.reject(&e),
        }
    }

    fn push(&self, kind: &'static str, json: Bytes) {
        if self.att.conn.push(Outbound::Frame { kind, json }) == Push::Full {
            self.close(CloseReason::SlowConsumer);
        }
    }

    fn push_raw_pong(&self, payload: Bytes) {
        if self.att.conn.push(Outbound::Pong(payload)) == Push::Full {
            self.close(CloseReason::SlowConsumer);
        }
    }

    fn reject(&self, err: &ProtocolError) {
        ev::client_error(&self.app.manager.telemetry, self.att.ids(), err.code.as_str(), &err.message);
        self.push("error", protocol::error_frame(err));
    }
}

enum Reassembled {
    Pending,
    Text(Bytes),
    Binary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announced_lengths_are_read_from_every_header_form() {
        assert_eq!(frame_header(&[0x81]), None);
        assert_eq!(frame_header(&[0x81, 0x85]), Some((1, 5)));
        assert_eq!(frame_header(&[0x00, 0xFE, 0x01]), None, "16-bit length not buffered yet");
        assert_eq!(frame_header(&[0x00, 0xFE, 0x01, 0x00]), Some((0, 256)));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(frame_header(&huge), Some((2, 1 << 40)));
    }

    #[test]
    fn text_headers_use_the_shortest_length_form() {
        for (len, head) in [(5usize, 2usize), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut b = BytesMut::new();
            put_text_header(&mut b, len);
            assert_eq!(b.len(), head, "len {len}");
            assert_eq!(b[0], 0x81, "FIN + text");
        }
    }
}
