//! The `ConnectionManager`: sessions, players and channels, and the fan-out
//! that ties them together. Transports attach connections here; the API and
//! client commands publish here.
//!
//! One type, split by concern:
//! - [`registry`]: the session, player and channel maps, subscriptions and
//!   the end of sessions;
//! - [`admission`]: limits, reserve/release, attach and resume, the SSE
//!   uplink's rate limit;
//! - [`fanout`]: accepting a publication, handing it to the [`Broker`], and
//!   the local fan-out to this node's sessions;
//! - [`sweeps`]: expiry, heartbeats and shutdown (the farewell, and
//!   [`ConnectionManager::drained`] to wait for the last connection).
//!
//! Each keeps its decisions as plain functions over an injected clock
//! (`now_ms`), unit-tested beside them; the methods are the glue.
//!
//! Locking: registries are sharded `DashMap`s (no global lock); each session
//! has its own mutex. Fan-out holds no registry lock while it delivers: it
//! takes the recipients' snapshot (one `Arc` clone under a channel's shard
//! lock, or under the broadcast snapshot's mutex), releases it, then takes
//! each session's mutex in turn. No lock is held across an `.await`.

mod admission;
mod clock;
pub(crate) mod commands;
mod fanout;
mod lifecycle;
mod presence;
mod recovery;
mod registry;
mod sweeps;
mod tokens;
mod uplink;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use parking_lot::Mutex;
use tandem_monitoring::{ConnectionOverview, ConnectionSample};
use tokio::sync::Notify;

pub use admission::{AttachError, AttachRequest, Attached, admit};
pub use clock::Clock;
pub use fanout::{Fanout, Published, delivery_target};
pub use sweeps::{HeartbeatAction, expiry_due, heartbeat_action};
pub use tokens::{ExpiryAction, ExpiryPolicy, expiry_action};
pub use uplink::UplinkHandler;

use crate::backend::Backend;
use crate::backend::reply_cache::{Answer, ReplyCache};
use crate::broker::Broker;
use crate::config::{Config, DualDelivery};
use crate::session::connection::Connection;
use crate::session::protocol::{self, IdGenerator, Publication};
use crate::session::revocation::RevocationList;
use crate::session::state::{RateGate, SessionState};
use crate::telemetry::{self as ev, Telemetry};

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
    /// `broker.route`: tag of this node's session ids (empty = none).
    pub session_route: String,
    /// `auth.expiry_warning_seconds` / `auth.expiry_grace_seconds`.
    pub token_expiry: ExpiryPolicy,
    /// `auth.max_revocations`.
    pub max_revocations: usize,
    /// `channels.presence_events`: namespaces whose subscribers hear joins and leaves.
    pub presence_events: Vec<String>,
    /// `channels.presence_grace_seconds`.
    pub presence_grace: Duration,
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
            session_route: c.broker.route.clone(),
            token_expiry: ExpiryPolicy {
                warning_ms: c.auth.expiry_warning_seconds.saturating_mul(1000),
                grace_ms: c.auth.expiry_grace_seconds.saturating_mul(1000),
            },
            max_revocations: c.auth.max_revocations,
            presence_events: c.channels.presence_events.clone(),
            presence_grace: Duration::from_secs(c.channels.presence_grace_seconds),
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
    /// Has unsubscribed from some channel: only then does fan-out check
    /// that the session is still in the publication's channel.
    left_a_channel: bool,
    /// Rate limit of `POST /sessions/{id}/messages`: boxed on the first
    /// post, so sessions that never post (every WebSocket one) do not carry it.
    post_limit: Option<Box<RateGate>>,
    /// Answers to this session's commands (boxed on the first command).
    commands: Option<Box<ReplyCache<CommandWaiters>>>,
    /// Taken over from another node: catching up (deliveries wait here),
    /// then dropping late copies of what was replayed.
    taken_over: Option<Box<recovery::TakeOver>>,
}

/// Those waiting for a command still in flight (resends of its id).
pub(crate) type CommandWaiters = tokio::sync::watch::Sender<Option<Answer>>;

impl Session {
    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Its live connections now.
    pub fn connections(&self) -> Vec<Arc<Connection>> {
        self.inner.lock().connections.clone()
    }
}

pub struct ConnectionManager {
    limits: Limits,
    clock: Clock,
    ids: IdGenerator,
    sessions: DashMap<Arc<str>, Arc<Session>>,
    /// Every session, as broadcast reads it; dropped when a session comes
    /// or goes, rebuilt by the next broadcast.
    all_sessions: Mutex<Option<registry::Snapshot>>,
    players: DashMap<Arc<str>, registry::PlayerEntry>,
    channels: DashMap<Arc<str>, registry::Members>,
    /// Who is in each channel, per player (see [`presence`]).
    presence: DashMap<Arc<str>, crate::session::channel_presence::ChannelPresence>,
    /// Channels whose presence changed since the broker last had it.
    presence_dirty: presence::Dirty,
    /// When every channel's presence was last handed to the broker (ms).
    presence_rewritten_ms: AtomicU64,
    /// Who the other nodes announced in each channel of
    /// `channels.presence_events` (see [`presence`]).
    presence_elsewhere: DashMap<Arc<str>, crate::session::channel_presence::Elsewhere>,
    /// The other nodes heard from, for forgetting the dead ones.
    presence_nodes: presence::Nodes,
    total: AtomicUsize,
    /// Woken when `total` drops to zero (see [`ConnectionManager::drained`]).
    idle: Notify,
    draining: AtomicBool,
    /// Epoch ms of the last client activity; 0 = none yet.
    last_activity: AtomicU64,
    broker: Arc<dyn Broker>,
    backend: Backend,
    telemetry: Telemetry,
    /// Revoked tokens this node knows (bounded by `auth.max_revocations`).
    revocations: Mutex<RevocationList>,
    /// Backend-chosen publication ids delivered here lately (bounded).
    recent_ids: Mutex<crate::session::recent_ids::RecentIds>,
    /// Runs SSE uplink posts other nodes forward here (installed by the server).
    uplink_handler: std::sync::OnceLock<UplinkHandler>,
}

fn wall_ms() -> u64 {
    protocol::epoch_ms(SystemTime::now())
}

impl ConnectionManager {
    pub fn new(limits: Limits, telemetry: Telemetry, broker: Arc<dyn Broker>) -> Self {
        Self::with_clock(limits, telemetry, broker, Clock::monotonic())
    }

    /// A manager whose time is `clock` (tests pass [`Clock::manual`]).
    pub fn with_clock(limits: Limits, telemetry: Telemetry, broker: Arc<dyn Broker>, clock: Clock) -> Self {
        Self {
            clock,
            ids: IdGenerator::new(),
            sessions: DashMap::new(),
            all_sessions: Mutex::new(None),
            players: DashMap::new(),
            channels: DashMap::new(),
            presence: DashMap::new(),
            presence_dirty: presence::Dirty::default(),
            presence_rewritten_ms: AtomicU64::new(0),
            presence_elsewhere: DashMap::new(),
            presence_nodes: presence::Nodes::default(),
            total: AtomicUsize::new(0),
            idle: Notify::new(),
            draining: AtomicBool::new(false),
            last_activity: AtomicU64::new(0),
            broker,
            backend: Backend::disabled(telemetry.clone()),
            telemetry,
            revocations: Mutex::new(RevocationList::new(limits.max_revocations)),
            recent_ids: Mutex::new(crate::session::recent_ids::RecentIds::default()),
            uplink_handler: std::sync::OnceLock::new(),
            limits,
        }
    }

    /// The game backend this manager asks (commands, hooks, events);
    /// without one, commands get `no_backend`.
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Monotonic milliseconds since the manager started.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_us() / 1000
    }

    /// Monotonic microseconds since the manager started (never 0).
    pub fn now_us(&self) -> u64 {
        self.clock.now_us().max(1)
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn total_connections(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// One connection fewer; wakes [`Self::drained`] if it was the last.
    fn connection_gone(&self) {
        if self.total.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no connection is left: at once if there is none, else
    /// when the last one detaches. Shutdown waits on it (within its grace)
    /// instead of polling the count. A connection attached meanwhile (none
    /// is, while draining) only makes it wait for that one too.
    pub async fn drained(&self) {
        loop {
            // Registered before the count is read, so a last detach between
            // the two still wakes it.
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.total.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        self.last_activity.store(wall_ms(), Ordering::Relaxed);
    }

    /// The inbound rate rule for a new link.
    pub fn new_rate_gate(&self) -> RateGate {
        RateGate::new(self.limits.inbound_rate_per_second, self.limits.inbound_burst, self.now_ms())
    }
}

/// The plain data monitoring reads (see `server::Stats`).
impl ConnectionManager {
    pub fn connection_samples(&self) -> Vec<ConnectionSample> {
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

    pub fn overview(&self) -> ConnectionOverview {
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

    pub fn last_activity(&self) -> Option<SystemTime> {
        match self.last_activity.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }
}

#[cfg(test)]
pub(super) mod test_support {
    use super::*;
    use crate::session::identity::Identity;

    /// A manager with the default limits, the in-process broker and no
    /// Prometheus recorder.
    pub fn manager() -> ConnectionManager {
        manager_with_clock(Clock::monotonic())
    }

    /// Like [`manager`], on `clock` (a manual one moves only when told).
    pub fn manager_with_clock(clock: Clock) -> ConnectionManager {
        manager_with_limits(clock, |_| {})
    }

    /// Like [`manager_with_clock`], with the limits `edit` changed.
    pub fn manager_with_limits(clock: Clock, edit: impl FnOnce(&mut Limits)) -> ConnectionManager {
        let mut limits = Limits::from_config(&Config::default());
        edit(&mut limits);
        let monitoring = tandem_monitoring::Monitoring::new(
            &tandem_monitoring::MonitoringConfig::default(),
            "test",
            Arc::new(tandem_monitoring::source::EmptySource),
            None,
        );
        ConnectionManager::with_clock(
            limits,
            Telemetry::new(monitoring),
            Arc::new(crate::broker::memory::MemoryBroker),
            clock,
        )
    }

    pub fn player(id: &str) -> Identity {
        Identity { player_id: id.to_owned(), channels: None, publish: None, dev_mode: false }
    }
}
