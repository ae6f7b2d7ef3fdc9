//! The `ConnectionManager`: sessions, players and channels, and the fan-out
//! that ties them together. Transports attach connections here; the API and
//! client commands publish here.
//!
//! Locking: registries are sharded `DashMap`s (no global lock); each session
//! has its own mutex. Fan-out takes a channel's shard (read) and then each
//! session's mutex; nothing takes them in the other order, and no lock is
//! held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tandem_monitoring::{ConnectionOverview, ConnectionSample, ConnectionStatsSource, Transport};

use crate::auth::Identity;
use crate::channels::{self, BROADCAST_CHANNEL};
use crate::config::{Config, DualDelivery};
use crate::connection::{CloseReason, Connection, Outbound, Push};
use crate::internal_events::{self as ev, Ids, Telemetry};
use crate::protocol::{self, ErrorCode, IdGenerator, ProtocolError, Publication, Welcome};
use crate::session::{ResumePlan, SessionState, SubscribeError, TokenBucket};

/// The manager's view of the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub history_size: usize,
    pub resume_window: Duration,
    pub max_connections: usize,
    pub max_connections_per_player: usize,
    pub max_subscriptions: usize,
    pub dual_delivery: DualDelivery,
    pub outbound_queue_size: usize,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    pub inbound_rate_per_second: u32,
    pub inbound_burst: u32,
    pub client_publish: Vec<String>,
}

impl Limits {
    pub fn from_config(c: &Config) -> Self {
        Self {
            history_size: c.session.history_size,
            resume_window: Duration::from_secs(c.session.resume_window_seconds),
            max_connections: c.server.max_connections,
            max_connections_per_player: c.session.max_connections_per_player,
            max_subscriptions: c.session.max_subscriptions,
            dual_delivery: c.session.dual_delivery,
            outbound_queue_size: c.transport.outbound_queue_size,
            heartbeat_interval: Duration::from_secs(c.transport.heartbeat_interval_seconds),
            heartbeat_timeout: Duration::from_secs(c.transport.heartbeat_timeout_seconds),
            inbound_rate_per_second: c.transport.inbound_rate_per_second,
            inbound_burst: c.transport.inbound_burst,
            client_publish: c.channels.client_publish.clone(),
        }
    }
}

/// A logical client session of one player.
#[derive(Debug)]
pub struct Session {
    pub id: Arc<str>,
    pub player_id: Arc<str>,
    pub created: SystemTime,
    inner: Mutex<SessionInner>,
    /// Serialises subscribe/unsubscribe of this session so its own set and
    /// the channel registry agree. Fan-out never takes it.
    subs_lock: Mutex<()>,
}

#[derive(Debug)]
struct SessionInner {
    state: SessionState<Arc<Publication>>,
    connections: Vec<Arc<Connection>>,
    detached_at_ms: Option<u64>,
    closed: bool,
    /// Rate limit of `POST /sessions/{id}/messages` (SSE clients).
    post_bucket: Option<TokenBucket>,
    post_strikes: u32,
}

impl Session {
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }
}

#[derive(Debug, Default)]
struct PlayerEntry {
    sessions: Vec<Arc<Session>>,
    websocket: usize,
    sse: usize,
}

impl PlayerEntry {
    fn count(&mut self, t: Transport) -> &mut usize {
        match t {
            Transport::WebSocket => &mut self.websocket,
            Transport::Sse => &mut self.sse,
        }
    }
}

/// Why a connection could not attach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the server is shutting down")]
    Draining,
    #[error("the server is at server.max_connections")]
    ServerFull,
    #[error("the player is at session.max_connections_per_player")]
    TooManyConnections,
    #[error("the session belongs to another player")]
    SessionForbidden,
    #[error("{0}")]
    Protocol(ProtocolError),
}

impl AttachError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::ServerFull => "server_full",
            Self::TooManyConnections => "too_many_connections",
            Self::SessionForbidden => "forbidden",
            Self::Protocol(p) => p.code.as_str(),
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Self::Draining | Self::ServerFull => 503,
            Self::TooManyConnections => 429,
            Self::SessionForbidden => 403,
            Self::Protocol(p) => p.code.http_status(),
        }
    }
}

#[derive(Debug)]
pub struct AttachRequest {
    pub transport: Transport,
    pub session_id: Option<String>,
    pub last_seq: Option<u64>,
    pub channels: Vec<String>,
    pub started: Instant,
}

/// A connection attached to its session; detach it when the link ends.
#[derive(Debug, Clone)]
pub struct Attached {
    pub session: Arc<Session>,
    pub conn: Arc<Connection>,
}

impl Attached {
    pub fn ids(&self) -> Ids<'_> {
        Ids {
            player_id: &self.session.player_id,
            session_id: &self.session.id,
            connection_id: &self.conn.id,
            transport: self.conn.transport,
        }
    }
}

/// What a publication reached.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Fanout {
    pub id: String,
    /// Sessions that assigned it a `seq`.
    pub recipients: usize,
    pub delivered_connections: usize,
    pub websocket_delivered: usize,
    pub sse_delivered: usize,
    /// Connections closed as slow consumers by this publication.
    pub failed_connections: usize,
}

pub struct ConnectionManager {
    limits: Limits,
    epoch: Instant,
    ids: IdGenerator,
    sessions: DashMap<Arc<str>, Arc<Session>>,
    players: DashMap<Arc<str>, PlayerEntry>,
    channels: DashMap<Arc<str>, HashMap<Arc<str>, Arc<Session>>>,
    total: AtomicUsize,
    draining: AtomicBool,
    /// Epoch ms of the last client activity; 0 = none yet.
    last_activity: AtomicU64,
    pub telemetry: Telemetry,
}

fn wall_ms() -> u64 {
    protocol::epoch_ms(SystemTime::now())
}

impl ConnectionManager {
    pub fn new(limits: Limits, telemetry: Telemetry) -> Self {
        Self {
            limits,
            epoch: Instant::now(),
            ids: IdGenerator::new(),
            sessions: DashMap::new(),
            players: DashMap::new(),
            channels: DashMap::new(),
            total: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            last_activity: AtomicU64::new(0),
            telemetry,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Monotonic milliseconds since the manager started.
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Monotonic microseconds since the manager started (never 0).
    pub fn now_us(&self) -> u64 {
        (self.epoch.elapsed().as_micros() as u64).max(1)
    }

    pub fn total_connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        self.last_activity.store(wall_ms(), Ordering::Relaxed);
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| Arc::clone(&s)).filter(|s| !s.is_closed())
    }

    pub fn new_bucket(&self) -> TokenBucket {
        TokenBucket::new(self.limits.inbound_rate_per_second, self.limits.inbound_burst, self.now_ms())
    }

    /// Attaches a new connection of `who`, creating or resuming its session.
    pub fn attach(&self, who: &Identity, req: AttachRequest) -> Result<Attached, AttachError> {
        for ch in &req.channels {
            channels::check_subscribe(who, ch).map_err(AttachError::Protocol)?;
        }
        if req.channels.len() > self.limits.max_subscriptions {
            return Err(AttachError::Protocol(too_many_subs(self.limits.max_subscriptions)));
        }
        self.reserve(who, req.transport)?;
        match self.attach_reserved(who, &req) {
            Ok(att) => Ok(att),
            Err(e) => {
                self.release(&who.player_id, req.transport);
                Err(e)
            }
        }
    }

    /// Counts the connection against the global and per-player limits.
    fn reserve(&self, who: &Identity, t: Transport) -> Result<(), AttachError> {
        if self.is_draining() {
            return Err(AttachError::Draining);
        }
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(AttachError::ServerFull);
        }
        let mut p = self.players.entry(Arc::from(who.player_id.as_str())).or_default();
        if p.websocket + p.sse >= self.limits.max_connections_per_player {
            drop(p);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(AttachError::TooManyConnections);
        }
        let before = ev::player_mode(p.websocket, p.sse);
        *p.count(t) += 1;
        ev::player_mode_changed(before, ev::player_mode(p.websocket, p.sse));
        Ok(())
    }

    fn release(&self, player_id: &str, t: Transport) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        let remove = match self.players.get_mut(player_id) {
            Some(mut p) => {
                let before = ev::player_mode(p.websocket, p.sse);
                let n = p.count(t);
                *n = n.saturating_sub(1);
                ev::player_mode_changed(before, ev::player_mode(p.websocket, p.sse));
                p.sessions.is_empty() && p.websocket + p.sse == 0
            }
            None => false,
        };
        if remove {
            self.players.remove_if(player_id, |_, p| p.sessions.is_empty() && p.websocket + p.sse == 0);
        }
    }

    fn attach_reserved(&self, who: &Identity, req: &AttachRequest) -> Result<Attached, AttachError> {
        let existing = match &req.session_id {
            Some(id) => match self.sessions.get(id.as_str()).map(|s| Arc::clone(&s)) {
                Some(s) if *s.player_id != *who.player_id => return Err(AttachError::SessionForbidden),
                other => other,
            },
            None => None,
        };
        ev::connection_attempt(
            req.transport,
            &who.player_id,
            req.session_id.as_deref(),
            self.players.get(who.player_id.as_str()).map_or(0, |p| p.websocket + p.sse - 1),
        );
        let conn = Arc::new(Connection::new(
            protocol::random_id('c'),
            req.transport,
            self.limits.outbound_queue_size,
            self.now_ms(),
        ));
        // A session can expire between lookup and lock; then start afresh
        // (at most twice: a fresh session cannot expire while we hold it).
        let mut session = existing;
        for _ in 0..2 {
            let (s, fresh) = match session.take() {
                Some(s) => (s, false),
                None => (self.create_session(who), true),
            };
            for ch in &req.channels {
                self.subscribe_checked(&s, ch, false).map_err(AttachError::Protocol)?;
            }
            if let Some(att) = self.link(req, &s, fresh, &conn) {
                return Ok(att);
            }
        }
        Err(AttachError::Protocol(ProtocolError::new(ErrorCode::InvalidMessage, "session expired")))
    }

    /// Queues the welcome and any replay, then links `conn` into `s`.
    fn link(
        &self,
        req: &AttachRequest,
        s: &Arc<Session>,
        fresh: bool,
        conn: &Arc<Connection>,
    ) -> Option<Attached> {
        let mut inner = s.inner.lock();
        if inner.closed {
            return None;
        }
        let (resumed, resync_required, replay) = if fresh {
            // Asking for a session that is gone (or resuming one) can't be
            // served from a brand-new session: say so.
            (false, req.session_id.is_some() || req.last_seq.is_some_and(|l| l > 0), Vec::new())
        } else {
            match inner.state.plan_resume(req.last_seq) {
                ResumePlan::Join => (false, false, Vec::new()),
                ResumePlan::Replay(items) => (true, false, items),
                ResumePlan::Gap => (false, true, Vec::new()),
            }
        };
        let welcome = Welcome {
            kind: "welcome",
            session_id: &s.id,
            connection_id: &conn.id,
            player_id: &s.player_id,
            transport: req.transport,
            resumed,
            resync_required,
            last_seq: inner.state.last_seq(),
            heartbeat_interval_ms: self.limits.heartbeat_interval.as_millis() as u64,
            channels: inner.state.subscriptions().map(|c| &**c).collect(),
        };
        conn.push_unbounded(Outbound::Frame { kind: "welcome", json: protocol::to_json(&welcome) });
        let replayed = replay.len();
        for (seq, publication) in replay {
            conn.push_unbounded(Outbound::Delivery { seq, publication });
        }
        inner.connections.push(Arc::clone(conn));
        inner.detached_at_ms = None;
        drop(inner);

        self.touch();
        // The player's connections, this one included (counted at reserve).
        let (ws, sse) = self.players.get(&*s.player_id).map_or((0, 0), |p| (p.websocket, p.sse));
        let (ws_before, sse_before) = match req.transport {
            Transport::WebSocket => (ws.saturating_sub(1), sse),
            Transport::Sse => (ws, sse.saturating_sub(1)),
        };
        let att = Attached { session: Arc::clone(s), conn: Arc::clone(conn) };
        ev::Connected {
            ids: att.ids(),
            establishment: req.started.elapsed(),
            is_dual_connection: ws > 0 && sse > 0,
            existing_websocket_connections: ws_before,
            existing_sse_connections: sse_before,
            total_connections: self.total_connections(),
            resumed,
            resync_required,
            replayed,
        }
        .emit(&self.telemetry);
        Some(att)
    }

    fn create_session(&self, who: &Identity) -> Arc<Session> {
        let player_id: Arc<str> = Arc::from(who.player_id.as_str());
        let s = Arc::new(Session {
            id: Arc::from(protocol::random_id('s')),
            player_id: Arc::clone(&player_id),
            created: SystemTime::now(),
            inner: Mutex::new(SessionInner {
                state: SessionState::new(self.limits.history_size),
                connections: Vec::new(),
                detached_at_ms: Some(self.now_ms()),
                closed: false,
                post_bucket: None,
                post_strikes: 0,
            }),
            subs_lock: Mutex::new(()),
        });
        self.sessions.insert(Arc::clone(&s.id), Arc::clone(&s));
        self.players.entry(player_id).or_default().sessions.push(Arc::clone(&s));
        ev::session_created(&s.id, &s.player_id);
        let personal = channels::personal_channel(&who.player_id);
        // The personal channel is implicit and not counted against the limit.
        let _ = self.subscribe_checked(&s, &personal, true);
        s
    }

    /// Subscribes after permission checks were done by the caller.
    fn subscribe_checked(
        &self,
        s: &Arc<Session>,
        channel: &str,
        implicit: bool,
    ) -> Result<bool, ProtocolError> {
        let _serial = s.subs_lock.lock();
        let ch: Arc<str> = Arc::from(channel);
        let added = {
            let mut inner = s.inner.lock();
            if inner.closed {
                return Ok(false);
            }
            inner
                .state
                .subscribe(Arc::clone(&ch), self.limits.max_subscriptions, implicit)
                .map_err(|SubscribeError::TooMany { max }| too_many_subs(max))?
        };
        if added {
            self.channels.entry(ch).or_default().insert(Arc::clone(&s.id), Arc::clone(s));
            ev::subscriptions_changed(1.0);
        }
        Ok(added)
    }

    /// `subscribe {channel}` from a client.
    pub fn subscribe(&self, s: &Arc<Session>, who: &Identity, channel: &str) -> Result<(), ProtocolError> {
        channels::check_subscribe(who, channel)?;
        self.subscribe_checked(s, channel, false).map(|_| ())
    }

    /// `unsubscribe {channel}` from a client; idempotent.
    pub fn unsubscribe(&self, s: &Arc<Session>, channel: &str) -> Result<(), ProtocolError> {
        channels::namespace(channel)?;
        if *channel == *channels::personal_channel(&s.player_id) {
            return Err(ProtocolError::new(ErrorCode::Forbidden, "the personal channel cannot be left"));
        }
        let _serial = s.subs_lock.lock();
        let removed = s.inner.lock().state.unsubscribe(channel);
        if removed {
            self.remove_from_channel(channel, &s.id);
            ev::subscriptions_changed(-1.0);
        }
        Ok(())
    }

    fn remove_from_channel(&self, channel: &str, session_id: &str) {
        if let Some(mut subs) = self.channels.get_mut(channel) {
            subs.remove(session_id);
        }
        self.channels.remove_if(channel, |_, subs| subs.is_empty());
    }

    /// Refuses publications once draining: they could no longer reach a
    /// client before the process exits, so acknowledging them would lose
    /// them silently.
    fn accepting(&self) -> Result<(), ProtocolError> {
        if self.is_draining() {
            return Err(ProtocolError::new(
                ErrorCode::Draining,
                "the server is shutting down and accepts no publications; retry on another node",
            ));
        }
        Ok(())
    }

    /// Publishes to every session subscribed to `channel`.
    pub fn publish(
        &self,
        channel: &str,
        event: &str,
        data: &RawValue,
        source: &'static str,
    ) -> Result<Fanout, ProtocolError> {
        self.accepting()?;
        let publication = Arc::new(Publication::new(self.ids.next('m'), Arc::from(channel), event, data));
        let mut out = Fanout { id: publication.id.to_string(), ..Fanout::default() };
        let mut slow = Vec::new();
        if let Some(subs) = self.channels.get(channel) {
            for s in subs.values() {
                self.deliver(s, &publication, &mut out, &mut slow);
            }
        }
        self.finish_fanout(slow, source, channel, &out);
        Ok(out)
    }

    /// Publishes to every live session (channel `broadcast`).
    pub fn broadcast(&self, event: &str, data: &RawValue) -> Result<Fanout, ProtocolError> {
        self.accepting()?;
        let publication =
            Arc::new(Publication::new(self.ids.next('m'), Arc::from(BROADCAST_CHANNEL), event, data));
        let mut out = Fanout { id: publication.id.to_string(), ..Fanout::default() };
        let mut slow = Vec::new();
        for s in self.sessions.iter() {
            self.deliver(s.value(), &publication, &mut out, &mut slow);
        }
        self.finish_fanout(slow, "broadcast", BROADCAST_CHANNEL, &out);
        Ok(out)
    }

    fn finish_fanout(&self, slow: Vec<Attached>, source: &'static str, channel: &str, out: &Fanout) {
        for att in slow {
            self.force_close(&att, CloseReason::SlowConsumer);
        }
        ev::published(source, channel, out.recipients, out.delivered_connections);
    }

    /// Assigns `s`'s next seq to `publication` and hands it to the session's
    /// live connections. Never waits: a full queue closes that connection.
    fn deliver(
        &self,
        s: &Arc<Session>,
        publication: &Arc<Publication>,
        out: &mut Fanout,
        slow: &mut Vec<Attached>,
    ) {
        let mut inner = s.inner.lock();
        if inner.closed {
            return;
        }
        let seq = inner.state.record(Arc::clone(publication));
        out.recipients += 1;
        let only = match self.limits.dual_delivery {
            DualDelivery::All => None,
            DualDelivery::Preferred => {
                Some(if inner.connections.iter().any(|c| c.transport == Transport::WebSocket) {
                    Transport::WebSocket
                } else {
                    Transport::Sse
                })
            }
        };
        for c in &inner.connections {
            if only.is_some_and(|t| t != c.transport) {
                continue;
            }
            match c.push(Outbound::Delivery { seq, publication: Arc::clone(publication) }) {
                Push::Queued => {
                    out.delivered_connections += 1;
                    match c.transport {
                        Transport::WebSocket => out.websocket_delivered += 1,
                        Transport::Sse => out.sse_delivered += 1,
                    }
                }
                Push::Full => {
                    out.failed_connections += 1;
                    slow.push(Attached { session: Arc::clone(s), conn: Arc::clone(c) });
                }
                Push::Closed => {}
            }
        }
    }

    /// Unlinks a connection from its session (idempotent). The session
    /// stays resumable for `session.resume_window_seconds`.
    pub fn detach(&self, att: &Attached, reason: &'static str) {
        {
            let mut inner = att.session.inner.lock();
            let before = inner.connections.len();
            inner.connections.retain(|c| !Arc::ptr_eq(c, &att.conn));
            if inner.connections.len() == before {
                return;
            }
            if inner.connections.is_empty() {
                inner.detached_at_ms = Some(self.now_ms());
            }
        }
        self.release(&att.session.player_id, att.conn.transport);
        ev::Disconnected {
            ids: att.ids(),
            duration: att.conn.connected_at.elapsed(),
            reason,
            messages_sent: att.conn.messages_sent.load(Ordering::Relaxed),
            remaining_connections: self.total_connections(),
        }
        .emit();
    }

    /// Closes a connection for `reason` and unlinks it right away, so a peer
    /// that stopped reading never holds its session's delivery list.
    pub fn force_close(&self, att: &Attached, reason: CloseReason) {
        if att.conn.close(reason, false) {
            ev::closing(&self.telemetry, att.ids(), reason);
        }
        self.detach(att, reason.as_str());
    }

    /// Ends a session now: closes its connections and drops its state.
    fn end_session(&self, s: &Arc<Session>, expired: bool, conn_reason: CloseReason) -> usize {
        let (subs, conns) = {
            let _serial = s.subs_lock.lock();
            let mut inner = s.inner.lock();
            if inner.closed {
                return 0;
            }
            inner.closed = true;
            (inner.state.take_subscriptions(), inner.connections.clone())
        };
        for c in &conns {
            self.force_close(&Attached { session: Arc::clone(s), conn: Arc::clone(c) }, conn_reason);
        }
        for ch in &subs {
            self.remove_from_channel(ch, &s.id);
        }
        ev::subscriptions_changed(-(subs.len() as f64));
        self.sessions.remove(&*s.id);
        if let Some(mut p) = self.players.get_mut(&*s.player_id) {
            p.sessions.retain(|x| !Arc::ptr_eq(x, s));
        }
        self.players.remove_if(&*s.player_id, |_, p| p.sessions.is_empty() && p.websocket + p.sse == 0);
        ev::session_ended(&s.id, &s.player_id, expired);
        conns.len()
    }

    /// Backend `disconnect`: ends every session of the player (no resume).
    pub fn disconnect_player(&self, player_id: &str) -> Option<(usize, usize)> {
        let sessions = self.players.get(player_id).map(|p| p.sessions.clone())?;
        let mut conns = 0;
        for s in &sessions {
            conns += self.end_session(s, false, CloseReason::Disconnected);
        }
        Some((sessions.len(), conns))
    }

    /// Drops sessions detached for longer than the resume window.
    pub fn expire_sessions(&self) -> usize {
        let now = self.now_ms();
        let window = self.limits.resume_window.as_millis() as u64;
        let expired: Vec<Arc<Session>> = self
            .sessions
            .iter()
            .filter(|s| {
                let inner = s.inner.lock();
                inner.connections.is_empty()
                    && inner.detached_at_ms.is_some_and(|t| now.saturating_sub(t) >= window)
            })
            .map(|s| Arc::clone(s.value()))
            .collect();
        for s in &expired {
            self.end_session(s, true, CloseReason::Disconnected);
        }
        expired.len()
    }

    fn all_connections(&self) -> Vec<Attached> {
        let mut out = Vec::with_capacity(self.total_connections());
        for s in self.sessions.iter() {
            for c in &s.inner.lock().connections {
                out.push(Attached { session: Arc::clone(s.value()), conn: Arc::clone(c) });
            }
        }
        out
    }

    /// One heartbeat round: closes connections whose peer has been silent
    /// past the timeout, and queues a heartbeat on those due one. Run it
    /// more often than the interval so silence is caught close to the
    /// timeout.
    pub fn heartbeat_sweep(&self) -> usize {
        let now = self.now_ms();
        let timeout = self.limits.heartbeat_timeout.as_millis() as u64;
        let interval = self.limits.heartbeat_interval.as_millis() as u64;
        let mut closed = 0;
        for att in self.all_connections() {
            let c = &att.conn;
            let silent = now.saturating_sub(c.last_alive_ms.load(Ordering::Relaxed));
            if silent > timeout {
                self.force_close(&att, CloseReason::HeartbeatTimeout);
                closed += 1;
            } else if now.saturating_sub(c.heartbeat_ms.load(Ordering::Relaxed)) >= interval {
                c.heartbeat_ms.store(now, Ordering::Relaxed);
                if c.push(Outbound::Heartbeat) == Push::Full {
                    self.force_close(&att, CloseReason::SlowConsumer);
                }
            }
        }
        closed
    }

    /// How often [`Self::heartbeat_sweep`] should run.
    pub fn sweep_period(&self) -> Duration {
        (self.limits.heartbeat_interval.min(self.limits.heartbeat_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// Shutdown: refuse new connections and tell every client to come back
    /// after `retry_after_ms` plus jitter, flushing what is queued.
    pub fn begin_shutdown(&self, retry_after_ms: u64) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        let conns = self.all_connections();
        for att in &conns {
            let jitter = rand::random_range(0..=retry_after_ms);
            let reason = CloseReason::Shutdown { retry_after_ms: retry_after_ms + jitter };
            if att.conn.close(reason, true) {
                ev::closing(&self.telemetry, att.ids(), reason);
            }
        }
        conns.len()
    }

    /// Closes the session's connections of one transport (the SSE uplink's
    /// abuse rule: its posts are refused, its streams closed).
    pub fn close_transport(&self, s: &Arc<Session>, t: Transport, reason: CloseReason) -> usize {
        let conns: Vec<Arc<Connection>> =
            s.inner.lock().connections.iter().filter(|c| c.transport == t).cloned().collect();
        for c in &conns {
            self.force_close(&Attached { session: Arc::clone(s), conn: Arc::clone(c) }, reason);
        }
        conns.len()
    }

    /// Rate limit for `POST /sessions/{id}/messages`: `Err(strikes)` when over.
    pub fn take_post_token(&self, s: &Session) -> Result<(), u32> {
        let now = self.now_ms();
        let mut inner = s.inner.lock();
        let bucket = inner.post_bucket.get_or_insert_with(|| {
            TokenBucket::new(self.limits.inbound_rate_per_second, self.limits.inbound_burst, now)
        });
        if bucket.try_take(now) {
            inner.post_strikes = 0;
            Ok(())
        } else {
            inner.post_strikes += 1;
            Err(inner.post_strikes)
        }
    }

    fn session_json(&self, s: &Session) -> Value {
        let now = self.now_ms();
        let timeout = self.limits.heartbeat_timeout.as_millis() as u64;
        let inner = s.inner.lock();
        let conns: Vec<Value> = inner
            .connections
            .iter()
            .map(|c| {
                json!({
                    "connection_id": &*c.id,
                    "transport": c.transport,
                    "connected_at": humantime_rfc3339(c.connected_wall),
                    "age_seconds": c.connected_at.elapsed().as_secs_f64(),
                    "queue_depth": c.queue_len(),
                    "queue_capacity": c.capacity(),
                    "last_heartbeat_rtt_ms": c.last_rtt_ms(),
                    "messages_sent": c.messages_sent.load(Ordering::Relaxed),
                    "bytes_sent": c.bytes_sent.load(Ordering::Relaxed),
                    "healthy": c.is_healthy(now, timeout),
                })
            })
            .collect();
        json!({
            "session_id": &*s.id,
            "created_at": humantime_rfc3339(s.created),
            "last_seq": inner.state.last_seq(),
            "subscriptions": inner.state.subscriptions().map(|c| &**c).collect::<Vec<_>>(),
            "detached_seconds": inner.detached_at_ms.map(|t| now.saturating_sub(t) as f64 / 1000.0),
            "connections": conns,
        })
    }

    /// Sessions and connections of one player (backend API and monitoring).
    pub fn player_json(&self, player_id: &str) -> Option<Value> {
        let sessions = self.players.get(player_id).map(|p| p.sessions.clone())?;
        if sessions.is_empty() {
            return None;
        }
        let list: Vec<Value> = sessions.iter().map(|s| self.session_json(s)).collect();
        let (mut ws, mut sse) = (0, 0);
        for s in &list {
            for c in s["connections"].as_array().into_iter().flatten() {
                match c["transport"].as_str() {
                    Some("websocket") => ws += 1,
                    _ => sse += 1,
                }
            }
        }
        Some(json!({
            "player_id": player_id,
            "mode": ev::player_mode(ws, sse).unwrap_or("disconnected"),
            "websocket_connections": ws,
            "sse_connections": sse,
            "sessions": list,
        }))
    }
}

fn too_many_subs(max: usize) -> ProtocolError {
    ProtocolError::new(ErrorCode::TooManySubscriptions, format!("at most {max} subscriptions per session"))
}

fn humantime_rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl ConnectionStatsSource for ConnectionManager {
    fn connection_samples(&self) -> Vec<ConnectionSample> {
        let now = self.now_ms();
        let timeout = self.limits.heartbeat_timeout.as_millis() as u64;
        self.all_connections()
            .iter()
            .map(|a| ConnectionSample {
                transport: a.conn.transport,
                age: a.conn.connected_at.elapsed(),
                healthy: a.conn.is_healthy(now, timeout),
            })
            .collect()
    }

    fn overview(&self) -> ConnectionOverview {
        let mut o = ConnectionOverview {
            websocket_connections: 0,
            sse_connections: 0,
            sessions: self.sessions.len(),
            players: 0,
            websocket_only_players: 0,
            sse_only_players: 0,
            dual_connection_players: 0,
        };
        for p in self.players.iter() {
            o.websocket_connections += p.websocket;
            o.sse_connections += p.sse;
            match ev::player_mode(p.websocket, p.sse) {
                Some("dual") => o.dual_connection_players += 1,
                Some("websocket_only") => o.websocket_only_players += 1,
                Some(_) => o.sse_only_players += 1,
                None => continue,
            }
            o.players += 1;
        }
        o
    }

    fn player_detail(&self, player_id: &str) -> Option<Value> {
        self.player_json(player_id)
    }

    fn last_activity(&self) -> Option<SystemTime> {
        match self.last_activity.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }
}
