//! One transport link attached to a session: its bounded outbound queue,
//! its close reason and its counters.
//!
//! Publishers only ever [`Connection::push`] (never await); the
//! connection's writer drains the queue when its socket can take more (the
//! WebSocket `Link` future, or the SSE response stream polled by the HTTP
//! dispatcher). A full queue closes the connection as a slow consumer
//! instead of growing or blocking.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use crate::session::protocol::Publication;
use tandem_protocol::Transport;

/// Why the server closes a connection; each has a WebSocket close code and
/// tells the client whether to reconnect (see docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client broke the WebSocket framing rules.
    ProtocolError,
    /// A text message that is not UTF-8.
    InvalidPayload,
    /// A fragmented message left incomplete past `transport.fragment_timeout_seconds`.
    MessageTimeout,
    TooLarge,
    Shutdown {
        retry_after_ms: u64,
    },
    HeartbeatTimeout,
    Disconnected,
    /// The client ended its session (`end_session`): no resume.
    SessionEnded,
    SlowConsumer,
    RateLimited,
    /// The token's `exp` passed, plus the grace, without a `refresh`.
    TokenExpired,
    /// The token was revoked (`POST /api/tokens/revoke`).
    TokenRevoked,
    /// Another node took the session over (its client connected there):
    /// this link reconnects and resumes like any drop.
    SessionMoved,
}

impl CloseReason {
    pub fn code(self) -> u16 {
        match self {
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::MessageTimeout => 1008,
            Self::TooLarge => 1009,
            Self::Shutdown { .. } => 1012,
            Self::HeartbeatTimeout => 4000,
            Self::Disconnected => 4001,
            Self::SessionEnded => 4002,
            Self::SlowConsumer => 4008,
            Self::RateLimited => 4029,
            Self::TokenExpired => 4003,
            Self::TokenRevoked => 4004,
            Self::SessionMoved => 4010,
        }
    }

    /// Short reason (also the metric/log label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProtocolError => "protocol_error",
            Self::InvalidPayload => "invalid_payload",
            Self::MessageTimeout => "message_timeout",
            Self::TooLarge => "too_large",
            Self::Shutdown { .. } => "shutdown",
            Self::HeartbeatTimeout => "heartbeat_timeout",
            Self::Disconnected => "disconnected",
            Self::SessionEnded => "session_ended",
            Self::SlowConsumer => "slow_consumer",
            Self::RateLimited => "rate_limited",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::SessionMoved => "session_moved",
        }
    }

    pub fn reconnect(self) -> bool {
        !matches!(self, Self::Disconnected | Self::SessionEnded)
    }
}

/// An item waiting for the connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A pre-encoded JSON frame (`kind` is its `type`, for SSE `event:`).
    Frame { kind: &'static str, json: Bytes },
    /// A delivery: the shared publication plus this session's `seq`.
    Delivery { seq: u64, publication: Arc<Publication> },
    /// Heartbeat: WebSocket ping or SSE comment.
    Heartbeat,
    /// A WebSocket pong answering the client's ping (its payload).
    Pong(Bytes),
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    Send(Outbound),
    Close(CloseReason),
    Idle,
}

/// Result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue was full; nothing was queued. The caller closes the
    /// connection as a slow consumer (`ConnectionManager::force_close`), so
    /// the close is counted and logged once, where it is decided.
    Full,
    /// The connection is already closing; nothing was queued.
    Closed,
}

#[derive(Debug)]
struct Queue {
    items: VecDeque<Outbound>,
    closing: Option<CloseReason>,
    close_taken: bool,
    /// The writer has emptied the queue once: what attach queued (welcome,
    /// replay) is out.
    drained: bool,
}

#[derive(Debug)]
pub struct Connection {
    pub id: Box<str>,
    pub transport: Transport,
    pub connected_at: Instant,
    /// `u32` so it packs beside `transport`: 208 bytes with the `Arc`
    /// counts and the 16 of [`TokenState`], inside the 224 size class.
    capacity: u32,
    queue: Mutex<Queue>,
    /// The writer (the WebSocket link or the SSE stream) to wake when there
    /// is work.
    waker: AtomicWaker,
    /// Frames handed to the socket and their bytes: written only through
    /// [`Connection::count_sent`].
    pub messages_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Last heartbeat round trip in microseconds; `u64::MAX` = none yet.
    pub last_rtt_us: AtomicU64,
    /// Monotonic ms (manager clock) when the peer last proved alive: pong
    /// received (WebSocket) or a write completed (SSE).
    pub last_alive_ms: AtomicU64,
    /// Monotonic µs (manager clock) when the last unanswered ping was
    /// sent; 0 = none. µs, so a loopback round trip is not rounded to 0.
    pub ping_sent_us: AtomicU64,
    /// Monotonic ms when the last heartbeat was queued.
    pub heartbeat_ms: AtomicU64,
    /// The token this connection holds (nothing in development mode).
    pub token: TokenState,
}

/// What a connection keeps of its token, in 16 bytes: `exp` and `iat`
/// (Unix seconds, as `u32`: enough until 2106) in one word; a hash of the
/// `jti` and whether `token_expiring` was sent in the other. Written at
/// connect and at each `refresh`; read by the expiry sweep and by
/// revocations.
#[derive(Debug, Default)]
pub struct TokenState {
    /// `exp << 32 | iat`; 0 = no token.
    times: AtomicU64,
    /// `hash(jti) << 1 | warned`; the hash is 0 without a `jti`.
    tag: AtomicU64,
}

impl TokenState {
    /// Holds a new token (`exp`, `iat` in Unix seconds); not yet warned.
    pub fn set(&self, exp: u64, iat: u64, jti: Option<&str>) {
        let clamp = |s: u64| u64::from(u32::try_from(s).unwrap_or(u32::MAX));
        self.tag.store(jti.map_or(0, jti_hash) << 1, Ordering::Relaxed);
        self.times.store(clamp(exp) << 32 | clamp(iat), Ordering::Relaxed);
    }

    /// `exp` in Unix seconds; `None` without a token.
    pub fn exp(&self) -> Option<u64> {
        match self.times.load(Ordering::Relaxed) >> 32 {
            0 => None,
            exp => Some(exp),
        }
    }

    /// `iat` in Unix seconds.
    pub fn iat(&self) -> u64 {
        self.times.load(Ordering::Relaxed) & u64::from(u32::MAX)
    }

    /// Whether the token's `jti` is `jti`.
    pub fn has_jti(&self, jti: &str) -> bool {
        let h = self.tag.load(Ordering::Relaxed) >> 1;
        h != 0 && h == jti_hash(jti)
    }

    /// Marks `token_expiring` sent; true the first time only (per token).
    pub fn mark_warned(&self) -> bool {
        self.tag.fetch_or(1, Ordering::Relaxed) & 1 == 0
    }

    pub fn warned(&self) -> bool {
        self.tag.load(Ordering::Relaxed) & 1 == 1
    }
}

/// 63 bits of a `jti`'s hash, never 0 (0 means "no jti").
fn jti_hash(jti: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    jti.hash(&mut h);
    (h.finish() >> 1).max(1)
}

impl Connection {
    pub fn new(id: String, transport: Transport, capacity: usize, now_ms: u64) -> Self {
        Self {
            id: id.into_boxed_str(),
            transport,
            connected_at: Instant::now(),
            capacity: u32::try_from(capacity).unwrap_or(u32::MAX).max(1),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closing: None,
                close_taken: false,
                drained: false,
            }),
            waker: AtomicWaker::new(),
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            last_rtt_us: AtomicU64::new(u64::MAX),
            last_alive_ms: AtomicU64::new(now_ms),
            ping_sent_us: AtomicU64::new(0),
            heartbeat_ms: AtomicU64::new(now_ms),
            token: TokenState::default(),
        }
    }

    /// Counts one frame of `bytes` written by this connection's writer.
    pub fn count_sent(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Queues `item` if there is room. On [`Push::Full`] the caller closes
    /// the connection as a slow consumer (the session keeps the history so
    /// the client can resume).
    pub fn push(&self, item: Outbound) -> Push {
        let mut q = self.queue.lock();
        if q.closing.is_some() {
            return Push::Closed;
        }
        if q.items.len() >= self.capacity() {
            return Push::Full;
        }
        q.items.push_back(item);
        drop(q);
        self.waker.wake();
        Push::Queued
    }

    /// Queues without the capacity check: only for what attach itself sends
    /// (welcome and replay), which the history size already bounds.
    pub fn push_unbounded(&self, item: Outbound) {
        let mut q = self.queue.lock();
        if q.closing.is_none() {
            q.items.push_back(item);
        }
        drop(q);
        self.waker.wake();
    }

    /// Starts closing. With `flush`, queued items are still written first
    /// (graceful shutdown); otherwise they are dropped. The first reason wins.
    pub fn close(&self, reason: CloseReason, flush: bool) -> bool {
        let mut q = self.queue.lock();
        if q.closing.is_some() {
            return false;
        }
        q.closing = Some(reason);
        if !flush {
            q.items = VecDeque::new();
        }
        drop(q);
        self.waker.wake();
        true
    }

    pub fn closing(&self) -> Option<CloseReason> {
        self.queue.lock().closing
    }

    /// Next thing for the writer: queued items first, then the close, once.
    pub fn next(&self) -> Next {
        let mut q = self.queue.lock();
        if let Some(item) = q.items.pop_front() {
            return Next::Send(item);
        }
        match q.closing {
            Some(reason) if !q.close_taken => {
                q.close_taken = true;
                Next::Close(reason)
            }
            _ => {
                if !q.drained {
                    // The buffer attach filled is not kept: most
                    // connections then idle, and one that gets traffic
                    // allocates it again at its next push (once; the
                    // heartbeat sweep releases it when idle again).
                    q.drained = true;
                    q.items = VecDeque::new();
                }
                Next::Idle
            }
        }
    }

    /// Registers the writer to wake on the next push or close. Register
    /// before draining with [`Connection::next`], so no push is missed.
    pub fn register_waker(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    pub fn queue_len(&self) -> usize {
        self.queue.lock().items.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Gives back the queue's buffer if it is empty. Called by the
    /// heartbeat sweep, not when the writer drains the queue: a connection
    /// receiving traffic keeps its buffer (no allocation per push), an idle
    /// one holds none after a sweep period.
    pub fn release_idle_queue(&self) {
        let mut q = self.queue.lock();
        if q.items.is_empty() && q.items.capacity() != 0 {
            q.items = VecDeque::new();
        }
    }

    /// Wall-clock time of the connect, from the monotonic one (not stored:
    /// 16 bytes per connection for a figure only snapshots show).
    pub fn connected_wall(&self) -> SystemTime {
        SystemTime::now().checked_sub(self.connected_at.elapsed()).unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Healthy = the peer proved alive within `timeout_ms` and the outbound
    /// queue is below 80% of its capacity.
    pub fn is_healthy(&self, now_ms: u64, timeout_ms: u64) -> bool {
        let alive = now_ms.saturating_sub(self.last_alive_ms.load(Ordering::Relaxed)) <= timeout_ms;
        alive && self.queue_len() * 5 < self.capacity() * 4
    }

    pub fn last_rtt_ms(&self) -> Option<f64> {
        match self.last_rtt_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(us as f64 / 1000.0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame() -> Outbound {
        Outbound::Frame { kind: "pong", json: Bytes::from_static(b"{}") }
    }

    #[test]
    fn full_queue_refuses_and_the_close_that_follows_is_reported_once() {
        let c = Connection::new("c".into(), Transport::WebSocket, 2, 0);
        assert_eq!(c.push(frame()), Push::Queued);
        assert_eq!(c.push(frame()), Push::Queued);
        assert_eq!(c.push(frame()), Push::Full);
        assert_eq!(c.push(Outbound::Heartbeat), Push::Full, "still full, still not closed by the push");
        assert_eq!(c.closing(), None);
        assert!(c.close(CloseReason::SlowConsumer, false), "the caller's close is the first");
        assert!(!c.close(CloseReason::SlowConsumer, false), "and the only one reported");
        assert_eq!(c.push(frame()), Push::Closed);
        assert_eq!(c.queue_len(), 0);
        assert!(matches!(c.next(), Next::Close(CloseReason::SlowConsumer)));
        assert!(matches!(c.next(), Next::Idle), "close is handed out once");
    }

    #[test]
    fn flushing_close_writes_queued_items_first() {
        let c = Connection::new("c".into(), Transport::Sse, 8, 0);
        c.push(frame());
        c.push(Outbound::Heartbeat);
        assert!(c.close(CloseReason::Shutdown { retry_after_ms: 5 }, true));
        assert!(!c.close(CloseReason::Disconnected, false), "first reason wins");
        assert!(matches!(c.next(), Next::Send(Outbound::Frame { .. })));
        assert!(matches!(c.next(), Next::Send(Outbound::Heartbeat)));
        assert!(matches!(c.next(), Next::Close(CloseReason::Shutdown { .. })));
    }

    #[test]
    fn the_buffer_attach_filled_is_released_once_drained_and_later_ones_kept() {
        let c = Connection::new("c".into(), Transport::Sse, 8, 0);
        c.push_unbounded(frame());
        assert!(c.queue.lock().items.capacity() > 0);
        assert!(matches!(c.next(), Next::Send(_)));
        assert!(matches!(c.next(), Next::Idle));
        assert_eq!(c.queue.lock().items.capacity(), 0, "the welcome's buffer is given back");
        c.push(frame());
        assert!(matches!(c.next(), Next::Send(_)));
        assert!(matches!(c.next(), Next::Idle));
        assert!(c.queue.lock().items.capacity() > 0, "traffic keeps its buffer until the sweep");
    }

    #[test]
    fn health_needs_a_live_peer_and_queue_room() {
        let c = Connection::new("c".into(), Transport::WebSocket, 5, 1_000);
        assert!(c.is_healthy(2_000, 45_000));
        assert!(!c.is_healthy(100_000, 45_000));
        for _ in 0..4 {
            c.push(frame());
        }
        assert!(!c.is_healthy(2_000, 45_000), "queue at 80%");
    }

    #[test]
    fn token_state_keeps_exp_iat_a_jti_hash_and_the_warning() {
        let t = TokenState::default();
        assert_eq!(t.exp(), None);
        assert!(!t.has_jti(""));
        t.set(1_800_000_000, 1_700_000_000, Some("j-1"));
        assert_eq!((t.exp(), t.iat()), (Some(1_800_000_000), 1_700_000_000));
        assert!(t.has_jti("j-1") && !t.has_jti("j-2"));
        assert!(!t.warned());
        assert!(t.mark_warned(), "first warning");
        assert!(!t.mark_warned(), "once per token");
        assert!(t.has_jti("j-1"), "the warning bit leaves the jti alone");
        t.set(1_800_000_600, 1_700_000_500, None);
        assert!(!t.warned(), "a new token is warned afresh");
        assert!(!t.has_jti("j-1"));
        t.set(u64::MAX, 0, None);
        assert_eq!(t.exp(), Some(u64::from(u32::MAX)), "clamped, not wrapped");
    }

    #[test]
    fn close_codes_match_the_protocol_table() {
        assert_eq!(CloseReason::Shutdown { retry_after_ms: 1 }.code(), 1012);
        assert_eq!(CloseReason::SlowConsumer.code(), 4008);
        assert_eq!(CloseReason::HeartbeatTimeout.code(), 4000);
        assert!(!CloseReason::Disconnected.reconnect());
        assert!(CloseReason::SlowConsumer.reconnect());
        assert_eq!(
            (CloseReason::TokenExpired.code(), CloseReason::TokenExpired.as_str()),
            (4003, "token_expired")
        );
        assert_eq!(
            (CloseReason::TokenRevoked.code(), CloseReason::TokenRevoked.as_str()),
            (4004, "token_revoked")
        );
        assert!(CloseReason::TokenExpired.reconnect() && CloseReason::TokenRevoked.reconnect());
    }
}
