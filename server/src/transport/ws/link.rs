//! One WebSocket connection after the handshake: a future that owns the
//! socket, decodes what the client sends and writes what its queue holds.
//!
//! Nothing is allocated for an idle link but this struct: reads go through
//! a stack buffer and only a partial frame is kept; encoded frames wait in
//! a buffer that exists while the socket is behind and is released once it
//! has caught up. Publishers only push to the connection's queue and wake
//! us; when the socket cannot take more we stop draining the queue, so a
//! client that stops reading fills it and is closed as a slow consumer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Decoder;
use actix_http::ws::{self as wsp, CloseCode, Codec, Frame, OpCode, Parser};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::ReadBuf;
use tokio::time::Sleep;

use super::inbound::{Inbound, Step};
use super::{Socket, frame};
use crate::http::state::AppState;
use crate::manager::Attached;
use crate::manager::commands::{self, Handled, ReplyTo};
use crate::session::connection::{CloseReason, Next, Outbound, Push};
use crate::session::identity::Identity;
use crate::session::protocol::{self, ClientMessage, ErrorCode, ProtocolError, Reply};
use crate::session::state::{RateGate, RateVerdict};
use crate::telemetry as ev;
use tandem_protocol::Transport;

/// Frames are batched into one write of up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;

/// Bytes read from the socket per call, into a buffer on the stack.
const READ_CHUNK: usize = 4 * 1024;

/// Reads per poll: a client that sends without pause yields its worker to
/// the other connections after this many (it is polled again at once).
const READS_PER_POLL: usize = 16;

/// How long a closed link waits for the client to close its side after our
/// close frame, reading and dropping what it still sends (RFC 6455 §7.1.1:
/// closing before the peer has read our close frame could reset it away).
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// How much a closed link reads and drops during its linger: enough for the
/// frames a well-behaved client had in flight, not for a client that keeps
/// streaming (a refused 1 GiB frame's payload). Past it the socket is
/// closed, which resets the connection if the client still sends.
const CLOSE_DISCARD_BYTES: usize = 8 * 1024;

/// Where the link is in its life.
enum Phase {
    Open,
    /// Our close frame is written: shutting down our side, then waiting
    /// (bounded) for the client's end of stream.
    Closing {
        fin_sent: bool,
        deadline: Pin<Box<Sleep>>,
        /// Bytes read and dropped since; at most [`CLOSE_DISCARD_BYTES`].
        discarded: usize,
    },
}

pub struct Link<Io: Socket> {
    app: Arc<AppState>,
    att: Attached,
    who: Identity,
    /// The socket: TCP, or TLS over it (whose buffered plaintext is flushed
    /// once caught up).
    io: Io,
    /// A partial frame the client has sent; empty (no allocation) between frames.
    read_buf: BytesMut,
    /// Encoded frames the socket has not taken yet; empty (no allocation) when caught up.
    outbound: BytesMut,
    codec: Codec,
    /// Frame limits and fragment reassembly: the decisions, without I/O.
    inbound: Inbound,
    /// When the fragmented message in progress must be complete; allocated
    /// only while there is one.
    fragment_deadline: Option<Pin<Box<Sleep>>>,
    rate: RateGate,
    /// False once the connection is closing for what the client sent:
    /// nothing more of it is read or buffered.
    reading: bool,
    /// The client sent a close frame: answer it, then end.
    reply_close: bool,
    /// A close frame is in `outbound`: nothing is encoded after it.
    close_queued: bool,
    phase: Phase,
    end: &'static str,
}

impl<Io: Socket> Drop for Link<Io> {
    fn drop(&mut self) {
        self.app.manager.detach(&self.att, self.end);
    }
}

impl<Io: Socket> Link<Io> {
    /// `early`: bytes the client sent right behind its upgrade request.
    pub(super) fn new(app: Arc<AppState>, att: Attached, who: Identity, io: Io, early: BytesMut) -> Self {
        let max = app.config.transport.max_message_bytes;
        Self {
            rate: app.manager.new_rate_gate(),
            app,
            att,
            who,
            io,
            read_buf: early,
            outbound: BytesMut::new(),
            codec: Codec::new().max_size(max),
            inbound: Inbound::new(max),
            fragment_deadline: None,
            reading: true,
            reply_close: false,
            close_queued: false,
            phase: Phase::Open,
            end: "client_gone",
        }
    }
}

/// What a write pass left behind.
enum Written {
    /// Everything queued is on the socket.
    CaughtUp,
    /// The socket is full; it wakes us when it can take more.
    Blocked,
    /// The close frame is on the socket.
    Closed,
    /// The client is gone (write error).
    Gone,
}

impl<Io: Socket> Future for Link<Io> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Open) {
            if this.reading && !this.reply_close && this.read_inbound(cx).is_err() {
                return Poll::Ready(());
            }
            if let Some(deadline) = this.fragment_deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                this.refuse(CloseReason::MessageTimeout);
            }
            // Register before draining, so no push is missed.
            this.att.conn.register_waker(cx.waker());
            match this.write(cx) {
                Written::CaughtUp | Written::Blocked => return Poll::Pending,
                Written::Gone => return Poll::Ready(()),
                Written::Closed => {
                    this.phase = Phase::Closing {
                        fin_sent: false,
                        deadline: Box::pin(tokio::time::sleep(CLOSE_LINGER)),
                        discarded: 0,
                    };
                }
            }
        }
        this.poll_closing(cx)
    }
}

impl<Io: Socket> Link<Io> {
    /// Writes queued frames until the queue is empty, the socket is full or
    /// the close frame is out.
    fn write(&mut self, cx: &mut Context<'_>) -> Written {
        loop {
            if self.outbound.is_empty() {
                if self.close_queued {
                    self.outbound = BytesMut::new();
                    return match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => Written::Closed,
                        Poll::Ready(Err(_)) => Written::Gone,
                        Poll::Pending => Written::Blocked,
                    };
                }
                self.encode_queued();
                if self.outbound.is_empty() {
                    // Caught up: give the buffer back, and push out what a
                    // TLS layer still holds (a no-op on plain TCP).
                    self.outbound = BytesMut::new();
                    return match Pin::new(&mut self.io).poll_flush(cx) {
                        Poll::Ready(Ok(())) => Written::CaughtUp,
                        Poll::Ready(Err(_)) => Written::Gone,
                        Poll::Pending => Written::Blocked,
                    };
                }
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.outbound) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Written::Gone,
                Poll::Ready(Ok(n)) => {
                    self.outbound.advance(n);
                    if self.outbound.is_empty() {
                        // Keep the capacity for the next batch of this pass.
                        self.outbound.clear();
                    }
                }
                Poll::Pending => return Written::Blocked,
            }
        }
    }

    /// After our close frame: half-close, then drop what the client still
    /// sends until it closes too, the linger ends or it sent more than
    /// [`CLOSE_DISCARD_BYTES`].
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Closing { fin_sent, deadline, discarded } = &mut self.phase else {
            return Poll::Ready(());
        };
        if !*fin_sent {
            match Pin::new(&mut self.io).poll_shutdown(cx) {
                Poll::Pending => {
                    return if deadline.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    };
                }
                Poll::Ready(Ok(())) => *fin_sent = true,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
            }
        }
        let mut sink = [0u8; READ_CHUNK];
        for reads in 1.. {
            if reads > READS_PER_POLL {
                cx.waker().wake_by_ref();
                break;
            }
            match poll_read_some(&mut self.io, cx, &mut sink) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    *discarded += n;
                    if *discarded > CLOSE_DISCARD_BYTES {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => break,
            }
        }
        if deadline.as_mut().poll(cx).is_ready() { Poll::Ready(()) } else { Poll::Pending }
    }

    /// Encodes queued frames into `outbound`, up to one batch; handles the
    /// close when it comes up.
    fn encode_queued(&mut self) {
        let conn = Arc::clone(&self.att.conn);
        let out = &mut self.outbound;
        if self.reply_close {
            Parser::write_close(out, None, false);
            self.close_queued = true;
            self.end = "client_closed";
            return;
        }
        while out.len() < BATCH_BYTES {
            match conn.next() {
                Next::Idle => return,
                Next::Send(Outbound::Frame { json, .. }) => put_text(&conn, out, &json),
                Next::Send(Outbound::Delivery { seq, publication }) => {
                    let len = publication.json_len(seq);
                    frame::put_text_header(out, len);
                    publication.encode_json(seq, out);
                    conn.count_sent(len);
                    ev::message_delivered(
                        &self.app.telemetry,
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
                    Parser::write_message(&mut *out, now.to_be_bytes(), OpCode::Ping, true, false);
                }
                Next::Close(reason) => {
                    if let CloseReason::Shutdown { retry_after_ms } = reason {
                        let frame = protocol::to_json(&Reply::Shutdown { reconnect: true, retry_after_ms });
                        put_text(&conn, out, &frame);
                    }
                    let close = wsp::CloseReason {
                        code: CloseCode::from(reason.code()),
                        description: Some(reason.as_str().to_owned()),
                    };
                    Parser::write_close(out, Some(close), false);
                    self.close_queued = true;
                    self.end = reason.as_str();
                    return;
                }
            }
        }
    }

    /// Reads what the client sent so far, a stack-sized chunk at a time,
    /// handling each complete frame before reading on: the heap holds at
    /// most the frame in progress (bounded by `transport.max_message_bytes`
    /// plus its header) and one chunk. `Err` = the client is gone.
    fn read_inbound(&mut self, cx: &mut Context<'_>) -> Result<(), ()> {
        let mut chunk = [0u8; READ_CHUNK];
        for reads in 1.. {
            self.decode_buffered();
            if !self.reading || self.reply_close {
                break;
            }
            if reads > READS_PER_POLL {
                cx.waker().wake_by_ref();
                break;
            }
            match poll_read_some(&mut self.io, cx, &mut chunk) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
                Poll::Ready(Ok(n)) => self.read_buf.extend_from_slice(&chunk[..n]),
                Poll::Pending => break,
            }
        }
        if self.read_buf.is_empty() || !self.reading {
            // Give back the read buffer of an idle (or refused) connection.
            self.read_buf = BytesMut::new();
        }
        Ok(())
    }

    /// Handles every complete frame in the buffer. A frame whose header
    /// announces more than the limit is refused right away.
    fn decode_buffered(&mut self) {
        while self.reading && !self.reply_close && !self.read_buf.is_empty() {
            if let Some((opcode, len)) = frame::header(&self.read_buf)
                && let Err(reason) = self.inbound.check_header(opcode, len)
            {
                self.refuse(reason);
                return;
            }
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => self.on_frame(frame),
                Ok(None) => return,
                Err(wsp::ProtocolError::Overflow) => self.refuse(CloseReason::TooLarge),
                Err(_) => self.refuse(CloseReason::ProtocolError),
            }
        }
    }

    /// Stops reading what the client sends and closes with `reason`.
    fn refuse(&mut self, reason: CloseReason) {
        self.reading = false;
        self.inbound.abandon();
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
                    ev::heartbeat_rtt(&self.app.telemetry, rtt);
                }
                return;
            }
            Frame::Text(text) => Some(text),
            Frame::Binary(_) => None,
            Frame::Continuation(item) => match self.inbound.continuation(item) {
                Step::Started => {
                    let timeout = Duration::from_secs(self.app.config.transport.fragment_timeout_seconds);
                    self.fragment_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
                    return;
                }
                Step::Pending => return,
                Step::Close(reason) => {
                    self.refuse(reason);
                    return;
                }
                Step::Text(text) => {
                    self.fragment_deadline = None;
                    Some(text)
                }
                Step::Binary => None,
            },
        };
        self.on_message(message, now);
    }

    /// A complete data message: `Some(text)` or a binary one.
    fn on_message(&mut self, text: Option<Bytes>, now: u64) {
        let mgr = &self.app.manager;
        match self.rate.check(now) {
            RateVerdict::Allowed => {}
            RateVerdict::Refused => {
                let err =
                    ProtocolError::new(ErrorCode::RateLimited, "over transport.inbound_rate_per_second");
                self.reject(&err);
                return;
            }
            RateVerdict::Abusive => {
                self.close(CloseReason::RateLimited);
                return;
            }
        }
        let Some(text) = text else {
            ev::message_received(Transport::WebSocket, "binary");
            self.reject(&ProtocolError::new(
                ErrorCode::UnsupportedFrame,
                "binary frames are not supported; send JSON text",
            ));
            return;
        };
        if let Err(reason) = Inbound::check_text(&text) {
            self.refuse(reason);
            return;
        }
        let parsed = ClientMessage::parse(&text);
        ev::message_received(Transport::WebSocket, parsed.as_ref().map_or("invalid", ClientMessage::kind));
        match parsed
            .and_then(|m| commands::handle(mgr, &self.att.session, &self.who, Transport::WebSocket, m))
        {
            Ok(Handled::Now((kind, json))) => self.push(kind, json),
            Ok(Handled::EndSession((kind, json))) => {
                // Queued before the session ends: its connections close
                // after what is queued, so the answer goes out first.
                self.push(kind, json);
                mgr.end_session_by_client(&self.att.session);
            }
            Ok(Handled::Later(work)) => commands::answer_later(mgr, &self.att, work),
            Ok(Handled::Command(task)) => {
                tokio::spawn(task.run(ReplyTo::Connection(Arc::clone(&self.att.conn))));
            }
            Ok(Handled::Refresh(token)) => {
                let conns = [Arc::clone(&self.att.conn)];
                match crate::transport::refresh(&self.app, &self.att.session, &conns, &token, self.att.ids())
                {
                    Ok((who, (kind, json))) => {
                        self.who = who;
                        self.push(kind, json);
                    }
                    Err(e) => self.reject(&e),
                }
            }
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
        ev::client_error(&self.app.telemetry, self.att.ids(), err.code.as_str(), &err.message);
        self.push("error", protocol::error_frame(err));
    }
}

/// Reads what the socket has into `buf` (on the stack); `Ok(0)` = end of
/// stream. On TCP this is a readiness check and one `read`, as before TLS.
fn poll_read_some<Io: Socket>(
    io: &mut Io,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<std::io::Result<usize>> {
    let mut buf = ReadBuf::new(buf);
    match Pin::new(io).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

fn put_text(conn: &crate::session::connection::Connection, out: &mut BytesMut, json: &[u8]) {
    Parser::write_message(&mut *out, json, OpCode::Text, true, false);
    conn.count_sent(json.len());
}
