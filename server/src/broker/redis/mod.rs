//! The Redis broker: many Tandem nodes behind a load balancer, sharing one
//! Redis (Debian's `redis-server`, nothing home-made).
//!
//! - Publications: the accepting node fans out locally and `PUBLISH`es the
//!   publication once (one global `id`, [`super::wire`] format) on one
//!   channel, `<prefix>:pub`. Every node holds one subscription to it and
//!   fans out what other nodes published; its own it already delivered.
//!   So each connection gets a publication exactly once, and Redis carries
//!   it once per node, not per session.
//! - Presence: `<prefix>:node:<id>` (this node's record, expiring after
//!   three heartbeats) and `<prefix>:player:<player>` (a hash with one field
//!   per node: that node's sessions of the player). Readers ignore fields of
//!   nodes whose key has expired.
//! - Loss: while the subscription is down, publishing is refused
//!   (`broker_unavailable`: never a silent loss); the link is retried with
//!   backoff, and when it is back every local connection gets a `resync`
//!   frame, since publications from other nodes may have been missed.
//!
//! Every Redis call has `broker.command_timeout_ms`; nothing waits longer.
//!
//! This file holds the broker's state, its command link and key names, and
//! its [`Broker`] face; each task has its own file:
//! - [`publisher`]: the one writer of publications and player records;
//! - [`subscriber`]: the one subscription, and resync after a loss;
//! - [`presence`]: the heartbeat (this node's record, its players) and
//!   the reads of other nodes (a player's sessions, the cluster);
//! - [`health`]: the `broker` component of `/health`.

mod health;
mod link;
mod presence;
mod publisher;
mod resume;
mod revocations;
mod sessions;
mod subscriber;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tandem_monitoring::{ConnectionOverview, HealthCheck};
use tokio::sync::{mpsc, oneshot};

use super::document::{ClusterDocument, NodeDocument};
use super::{Ack, Broker, BrokerError, BrokerTask, Envelope, LocalNode, wire};
use crate::config::BrokerConfig;
use crate::session::channel_presence::{Change, NodePresence};
use crate::session::position::{History, Position, StoredSession};
use crate::session::protocol::{self, Publication};
use crate::session::revocation::Revocation;
use crate::session::snapshot::{PlayerSnapshot, RemotePlayer};

pub use presence::presence_ttl;

/// Lua: the `run_id` of the Redis process running the script, what tells
/// one process's history from another's (restarted, promoted). One place,
/// for every script that needs it.
macro_rules! run_id_lua {
    () => {
        "string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')"
    };
}
use run_id_lua;

/// Wall-clock microseconds, for the cross-node lag (nodes share a clock
/// source in practice: NTP; on one machine, exactly).
fn epoch_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A channel's keys and its publications share one Redis Cluster slot
/// (the scripts that publish touch them together); channels are spread
/// over this many such shards, hash-tagged `{c<n>}`. Changing it moves
/// every history (the epochs change: clients resync, never a silent gap).
const SHARDS: u32 = 128;

/// The shard of a channel: FNV-1a, the same on every node and version.
fn shard(channel: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in channel.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// Key and channel names under `broker.key_prefix`, the one place that
/// says which keys share a Redis Cluster slot (public for the tools that
/// read them: tests, benchmarks).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// The pub/sub channels publications travel on: `<prefix>:pub` on one
    /// Redis; on a Redis Cluster one per shard, `<prefix>:{c<n>}:pub`.
    channels: Vec<Arc<str>>,
}

impl Keys {
    pub fn new(prefix: &str, sharded: bool) -> Self {
        let channels = if sharded {
            (0..SHARDS).map(|n| Arc::from(format!("{prefix}:{{c{n}}}:pub"))).collect()
        } else {
            vec![Arc::from(format!("{prefix}:pub"))]
        };
        Self { prefix: prefix.to_owned(), channels }
    }
    /// The publish command for [`Keys::publications`].
    pub fn publish_command(&self) -> &'static str {
        if self.channels.len() > 1 { "SPUBLISH" } else { "PUBLISH" }
    }
    /// The pub/sub channel a message about `subject` (a channel, a
    /// session, a player) travels on: a channel's publications on its
    /// shard's, so all of them reach every node in order.
    pub fn publications(&self, subject: &str) -> &Arc<str> {
        &self.channels[shard(subject) as usize % self.channels.len()]
    }
    pub fn node(&self, id: &str) -> String {
        format!("{}:node:{id}", self.prefix)
    }
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub fn player(&self, id: &str) -> String {
        format!("{}:player:{id}", self.prefix)
    }
    pub fn sessions(&self, node: &str) -> String {
        format!("{}:sessions:{node}", self.prefix)
    }
    /// A session's `player_left` claim; tagged by the session, like its
    /// record, since the claim script reads both.
    pub fn left(&self, session: &str) -> String {
        format!("{}:left:{{{session}}}", self.prefix)
    }
    pub fn reap(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.prefix)
    }
    /// Every live revocation: a sorted set of signed messages scored by
    /// when they expire.
    pub fn revocations(&self) -> String {
        format!("{}:revocations", self.prefix)
    }
    pub fn channel_presence(&self, channel: &str) -> String {
        format!("{}:presence:{channel}", self.prefix)
    }
    /// A channel's epoch and last offset.
    pub fn history_meta(&self, channel: &str) -> String {
        format!("{}:{{c{}}}:meta:{channel}", self.prefix, shard(channel))
    }
    /// A channel's history: a stream of its publications, entry ids
    /// `<offset>-<written µs>`.
    pub fn history(&self, channel: &str) -> String {
        format!("{}:{{c{}}}:history:{channel}", self.prefix, shard(channel))
    }
    /// Set while a backend's publication id is within its window, so that
    /// it is published once cluster-wide (`|` is in no channel name).
    pub fn published_id(&self, channel: &str, id: &str) -> String {
        format!("{}:{{c{}}}:id:{channel}|{id}", self.prefix, shard(channel))
    }
    /// A session's record: its player, node and subscriptions.
    pub fn session(&self, session: &str) -> String {
        format!("{}:session:{{{session}}}", self.prefix)
    }
    /// The field beside a node's record in a channel's presence hash that
    /// holds its count alone (node ids never start with `#`).
    pub fn presence_count_field(node: &str) -> String {
        format!("#{node}")
    }
}

/// What the publisher writes, in the order it was asked.
enum Job {
    Publish {
        /// The pub/sub channel it travels on.
        channel: Arc<str>,
        message: Bytes,
        /// Wall-clock µs after which Redis drops it instead (its publisher
        /// has been answered `broker_unavailable` by then).
        deadline_us: u64,
        ack: oneshot::Sender<Result<super::Confirmed, BrokerError>>,
        /// A publication's channel history (`None`: a control message).
        placement: Option<publisher::Placement>,
    },
    /// This node's record of a player (`None`: it holds none of its sessions).
    Presence { player_id: String, value: Option<String> },
    /// This node's record of a channel's players (`None`: none here).
    ChannelPresence {
        /// Its count, written beside the record for count-only reads.
        count: usize,
        channel: String,
        value: Option<String>,
    },
    /// This node's record of a session (`None`: it ended here), in its
    /// node's list and in the session's own record.
    Session { session_id: String, player_id: Option<String> },
    /// A session's subscription (recorded with the channel's position) or
    /// its end.
    Subscription { session_id: String, channel: String, subscribed: bool },
    /// A revocation: its message stored until `until_ms`, then published.
    Revoke { until_ms: u64, message: Bytes, ack: oneshot::Sender<Result<super::Confirmed, BrokerError>> },
}

pub struct RedisBroker {
    node_id: String,
    keys: Keys,
    /// Signs what this node sends and verifies what it reads.
    key: wire::ClusterKey,
    /// `transport.max_message_bytes`: the bound on what is read from Redis.
    max_message_bytes: usize,
    /// `broker.publish_timeout_ms`: a publication Redis runs later than
    /// this after it was queued is dropped by Redis (its publisher was
    /// told it failed).
    publish_timeout: Duration,
    /// Where Redis is: one server or a Redis Cluster.
    servers: link::Servers,
    timeout: Duration,
    heartbeat: Duration,
    /// `broker.history_*`: what each channel keeps.
    history: BrokerConfig,
    jobs: mpsc::Sender<Job>,
    /// Held by the publisher task for its lifetime; a restarted task takes
    /// it over with whatever is queued.
    jobs_rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// The command link (publisher, presence, queries); `None` = reconnect.
    link: Mutex<Option<link::Link>>,
    /// The subscription is live: publications reach and leave this node.
    up: AtomicBool,
    /// The last command on the link failed or timed out (Redis stalled,
    /// or the link is half dead): publishing is refused until one succeeds.
    failing: AtomicBool,
    /// It has been live at least once (before: `/health` says connecting).
    ever_up: AtomicBool,
    /// Last `PING` round trip in microseconds; `u64::MAX` = none.
    rtt_us: AtomicU64,
    last_error: Mutex<Option<String>>,
    started: SystemTime,
    /// The other live nodes' records, as of the last heartbeat.
    remote_nodes: Mutex<Vec<NodeDocument>>,
    /// Itself, for the futures that outlive a call (`claim_departure`).
    me: std::sync::Weak<RedisBroker>,
    /// The `run_id` of the Redis process behind each pub/sub channel, as
    /// learned when the subscription began (none: unknown).
    run_ids: Mutex<Arc<std::collections::HashMap<Arc<str>, Arc<str>>>>,
    /// Uplink posts forwarded to other nodes, waiting for their answer.
    uplinks: Mutex<std::collections::HashMap<u64, oneshot::Sender<(u16, Bytes)>>>,
    next_uplink: AtomicU64,
}

/// Uplink posts waiting for another node's answer at most; past it a post
/// is answered 503 at once.
const MAX_PENDING_UPLINKS: usize = 4096;

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

impl RedisBroker {
    /// Checks the URL; connecting happens in the background tasks.
    pub fn new(cfg: &BrokerConfig, max_message_bytes: usize) -> Result<Arc<Self>, BrokerError> {
        let servers = link::Servers::new(cfg)?;
        let (jobs, rx) = mpsc::channel(publisher::QUEUE);
        Ok(Arc::new_cyclic(|me| Self {
            node_id: protocol::random_id('n'),
            keys: Keys::new(&cfg.key_prefix, servers.sharded()),
            key: wire::ClusterKey::new(cfg.cluster_key.as_bytes()),
            max_message_bytes,
            publish_timeout: Duration::from_millis(cfg.publish_timeout_ms),
            servers,
            timeout: Duration::from_millis(cfg.command_timeout_ms),
            heartbeat: Duration::from_secs(cfg.heartbeat_seconds),
            history: cfg.clone(),
            jobs,
            jobs_rx: tokio::sync::Mutex::new(rx),
            link: Mutex::new(None),
            up: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            ever_up: AtomicBool::new(false),
            rtt_us: AtomicU64::new(u64::MAX),
            last_error: Mutex::new(None),
            started: SystemTime::now(),
            remote_nodes: Mutex::new(Vec::new()),
            me: me.clone(),
            run_ids: Mutex::default(),
            uplinks: Mutex::new(std::collections::HashMap::new()),
            next_uplink: AtomicU64::new(1),
        }))
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Up, and its last command answered in time: what publishers see.
    pub fn is_answering(&self) -> bool {
        self.is_up() && !self.failing.load(Ordering::Relaxed)
    }

    pub fn last_rtt(&self) -> Option<Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            u64::MAX => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Runs `f` within the command timeout.
    async fn timed<T>(&self, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, BrokerError> {
        link::timed(self.timeout, f).await
    }

    /// The command link, connecting if needed.
    async fn conn(&self) -> Result<link::Link, BrokerError> {
        if let Some(c) = self.link.lock().clone() {
            return Ok(c);
        }
        let c = self.servers.connect(self.timeout).await?;
        *self.link.lock() = Some(c.clone());
        Ok(c)
    }

    /// Runs one command or pipeline on the link; a failure drops the link
    /// so the next call reconnects.
    async fn query<T: redis::FromRedisValue>(
        &self,
        run: impl FnOnce(link::Link) -> BoxFuture<'static, redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        let out = match self.conn().await {
            Ok(c) => self.timed(run(c)).await,
            Err(e) => Err(e),
        };
        self.failing.store(out.is_err(), Ordering::Relaxed);
        if let Err(e) = &out {
            *self.link.lock() = None;
            *self.last_error.lock() = Some(e.to_string());
        }
        out
    }
}

/// The manager sees the broker through [`Broker`]; the server starts its
/// tasks and registers its health check through it too.
impl Broker for RedisBroker {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn forward(&self, envelope: &Envelope) -> Result<Option<Ack>, BrokerError> {
        let channel = &envelope.publication.channel;
        let limits = self.history.history_for(channel);
        let placement = publisher::Placement {
            meta: self.keys.history_meta(channel),
            stream: self.keys.history(channel),
            size: limits.size,
            ttl_seconds: limits.ttl_seconds,
            once: envelope.keyed.then(|| self.keys.published_id(channel, &envelope.publication.id)),
        };
        self.publish(channel, Some(placement), || {
            wire::encode(&self.key, &self.node_id, epoch_us(), envelope)
        })
    }

    fn delivers_own(&self) -> bool {
        true
    }

    fn disconnect_player(&self, player_id: &str, reason: Option<&str>) -> Result<Option<Ack>, BrokerError> {
        self.publish(&crate::session::channels::personal_channel(player_id), None, || {
            wire::encode_disconnect(&self.key, &self.node_id, epoch_us(), player_id, reason)
        })
    }

    fn revoke(&self, revocation: &Revocation) -> Result<Option<Ack>, BrokerError> {
        self.store_revocation(revocation)
    }

    fn wants_presence(&self) -> bool {
        true
    }

    fn session_opened(&self, session_id: &str, player_id: &str) {
        self.queue_session(session_id, Some(player_id));
        self.queue_subscription(session_id, crate::session::channels::BROADCAST_CHANNEL, true);
    }

    fn session_subscribed(&self, session_id: &str, channel: &str, subscribed: bool) {
        self.queue_subscription(session_id, channel, subscribed);
    }

    fn stored_session<'a>(
        &'a self,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, BrokerError>> {
        Box::pin(self.read_session(session_id))
    }

    fn read_history<'a>(
        &'a self,
        from: &'a [(Arc<str>, Position)],
        budget: usize,
    ) -> BoxFuture<'a, Result<Vec<History<Arc<Publication>>>, BrokerError>> {
        Box::pin(RedisBroker::read_history(self, from, budget))
    }

    fn forward_uplink<'a>(
        &'a self,
        node: &'a str,
        session_id: &'a str,
        who: &'a crate::session::identity::Identity,
        body: Bytes,
    ) -> BoxFuture<'a, Result<(u16, Bytes), BrokerError>> {
        Box::pin(async move {
            let identity = serde_json::to_vec(who).map_err(unavailable)?;
            if identity.len() > wire::MAX_IDENTITY_BYTES {
                return Err(unavailable("the token's claims are too long to forward"));
            }
            let request = self.next_uplink.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            {
                let mut waiting = self.uplinks.lock();
                if waiting.len() >= MAX_PENDING_UPLINKS {
                    return Err(unavailable("too many uplink posts in flight"));
                }
                waiting.insert(request, tx);
            }
            let sent = self.publish(session_id, None, || {
                wire::encode_uplink(
                    &self.key,
                    &self.node_id,
                    epoch_us(),
                    (request, node),
                    session_id,
                    &identity,
                    &body,
                )
            });
            let answer = match sent {
                Ok(_) => tokio::time::timeout(self.publish_timeout, rx).await,
                Err(e) => {
                    self.uplinks.lock().remove(&request);
                    return Err(e);
                }
            };
            self.uplinks.lock().remove(&request);
            match answer {
                Ok(Ok(a)) => Ok(a),
                _ => Err(BrokerError::Timeout(self.publish_timeout)),
            }
        })
    }

    fn answer_uplink(&self, node: &str, request: u64, status: u16, body: Bytes) {
        let _ = self.publish(node, None, || {
            wire::encode_uplink_answer(&self.key, &self.node_id, epoch_us(), (request, node), status, &body)
        });
    }

    fn session_adopted(&self, session_id: &str, player_id: &str) {
        // Recorded as this node's first, then the node that held it drops it.
        self.queue_session(session_id, Some(player_id));
        let _ = self.publish(session_id, None, || {
            wire::encode_moved(&self.key, &self.node_id, epoch_us(), session_id)
        });
    }

    fn session_closed(&self, session_id: &str) {
        self.queue_session(session_id, None);
    }

    fn claim_departure(&self, session_id: &str, holder: Option<&str>) -> Option<BoxFuture<'static, bool>> {
        let me = self.me.upgrade()?;
        let (session_id, holder) = (session_id.to_owned(), holder.map(str::to_owned));
        Some(Box::pin(async move { me.claim_left(&session_id, holder.as_deref()).await }))
    }

    fn player_presence(&self, player_id: &str, snapshot: Option<PlayerSnapshot>) {
        self.write_player(player_id, snapshot);
    }

    fn remote_player<'a>(&'a self, player_id: &'a str) -> BoxFuture<'a, Result<RemotePlayer, BrokerError>> {
        Box::pin(self.read_player(player_id))
    }

    fn channel_presence(&self, channel: &str, here: Option<NodePresence>) {
        self.write_channel_presence(channel, here);
    }

    fn remote_presence<'a>(
        &'a self,
        channel: &'a str,
        players: bool,
    ) -> BoxFuture<'a, Result<Vec<NodePresence>, BrokerError>> {
        if players {
            Box::pin(self.read_channel_presence(channel))
        } else {
            Box::pin(self.read_channel_counts(channel))
        }
    }

    fn presence_event(&self, change: Change, channel: &str, player_id: &str) {
        // Best effort, like a publication nobody waits on: refused while
        // the link is down (the other nodes resync then anyway).
        let _ = self.publish(channel, None, || {
            wire::encode_presence(&self.key, &self.node_id, epoch_us(), change, channel, player_id)
        });
    }

    fn live_nodes(&self) -> Option<Vec<String>> {
        self.is_up().then(|| self.remote_nodes.lock().iter().map(|n| n.node_id.clone()).collect())
    }

    /// Publisher, subscriber and heartbeat, under the names operators know
    /// from `Background task … failed`.
    fn tasks(self: Arc<Self>, node: Arc<dyn LocalNode>, addr: String) -> Vec<BrokerTask> {
        let b = Arc::clone(&self);
        let publisher = BrokerTask {
            name: "broker_publisher",
            run: Box::new(move || Box::pin(Arc::clone(&b).run_publisher())),
        };
        let (b, n) = (Arc::clone(&self), Arc::clone(&node));
        let subscriber = BrokerTask {
            name: "broker_subscriber",
            run: Box::new(move || Box::pin(Arc::clone(&b).run_subscriber(Arc::clone(&n)))),
        };
        let heartbeat = BrokerTask {
            name: "broker_heartbeat",
            run: Box::new(move || Box::pin(Arc::clone(&self).run_heartbeat(Arc::clone(&node), addr.clone()))),
        };
        vec![publisher, subscriber, heartbeat]
    }

    fn health_check(self: Arc<Self>) -> Option<Box<dyn HealthCheck>> {
        Some(Box::new(health::BrokerCheck(self)))
    }

    fn cluster(&self, local: &ConnectionOverview, addr: &str) -> Option<ClusterDocument> {
        Some(self.cluster_document(local, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let cfg = BrokerConfig { url: "redis://:secret@[bad".into(), ..BrokerConfig::default() };
        let err = RedisBroker::new(&cfg, 65536).expect_err("not a URL");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn keys_share_the_prefix() {
        let k = Keys::new("t", false);
        assert_eq!(&**k.publications("room:a"), "t:pub");
        assert_eq!(k.node("n_1"), "t:node:n_1");
        assert_eq!(k.player("p"), "t:player:p");
        assert_eq!(k.nodes(), "t:nodes");
        assert_eq!(k.sessions("n_1"), "t:sessions:n_1");
        assert_eq!(k.left("s_1"), "t:left:{s_1}");
        assert_eq!(k.session("s_1"), "t:session:{s_1}");
        assert_eq!(k.reap("n_1"), "t:reap:n_1");
        assert_eq!(k.revocations(), "t:revocations");
        assert_eq!(k.channel_presence("room:a"), "t:presence:room:a");
        assert_eq!(Keys::presence_count_field("n_1"), "#n_1");
    }

    /// The hash tag: what Redis Cluster hashes to find a key's slot.
    fn tag(key: &str) -> &str {
        let open = key.find('{').expect("a tagged key");
        let close = key[open..].find('}').expect("a closed tag") + open;
        &key[open + 1..close]
    }

    #[test]
    fn what_one_script_touches_shares_a_redis_cluster_slot() {
        let k = Keys::new("t", true);
        assert_eq!(k.channels.len(), SHARDS as usize);
        assert_eq!(k.publish_command(), "SPUBLISH");
        for channel in ["room:a", "room:b", "player:alice", "broadcast", "chat:x.y@z"] {
            let pubsub = k.publications(channel);
            let same = [k.history_meta(channel), k.history(channel), k.published_id(channel, "id:1")];
            assert!(same.iter().all(|key| tag(key) == tag(pubsub)), "{channel}: {same:?} {pubsub}");
            assert!(k.history(channel).ends_with(channel), "the channel is in its keys");
        }
        assert_eq!(tag(&k.session("s_1")), tag(&k.left("s_1")));
        // Channels spread over the shards (each shard its own slot).
        let used: std::collections::HashSet<_> = (0..1000).map(|i| shard(&format!("room:{i}"))).collect();
        assert_eq!(used.len(), SHARDS as usize);
        // One Redis: one channel, plain pub/sub.
        let one = Keys::new("t", false);
        assert_eq!(one.publish_command(), "PUBLISH");
        assert_eq!(&**one.publications("room:a"), "t:pub");
        assert_eq!(one.history_meta("room:a"), k.history_meta("room:a"), "the same keys either way");
    }

    #[tokio::test]
    async fn nothing_is_published_while_the_link_is_down() {
        let b = RedisBroker::new(&BrokerConfig::default(), 65536).expect("a valid URL");
        assert!(matches!(b.disconnect_player("alice", None), Err(BrokerError::Unavailable(_))));
        let r = Revocation::Jti { jti: "j".into(), until_ms: u64::MAX };
        assert!(matches!(b.revoke(&r), Err(BrokerError::Unavailable(_))));
        let names: Vec<_> =
            Arc::clone(&b).tasks(Arc::new(NoNode), "127.0.0.1:1".into()).iter().map(|t| t.name).collect();
        assert_eq!(names, ["broker_publisher", "broker_subscriber", "broker_heartbeat"]);
        assert_eq!(b.health_check().map(|c| c.name().to_owned()).as_deref(), Some("broker"));
    }

    /// A node with nothing on it.
    pub(super) struct NoNode;

    impl LocalNode for NoNode {
        fn fan_out_local(&self, _envelope: &Envelope) {}
        fn resync_all(&self, _reason: &'static str) -> usize {
            0
        }
        fn overview(&self) -> ConnectionOverview {
            ConnectionOverview::default()
        }
        fn total_connections(&self) -> usize {
            0
        }
        fn local_players(&self) -> Vec<String> {
            Vec::new()
        }
        fn player_snapshot(&self, _player_id: &str) -> Option<PlayerSnapshot> {
            None
        }
        fn telemetry(&self) -> &crate::telemetry::Telemetry {
            unreachable!("not read by these tests")
        }
        fn disconnect_player(&self, _player_id: &str, _reason: Option<&str>) {}
        fn apply_revocation(&self, _revocation: &Revocation) {}
        fn local_sessions(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn sessions_lost(&self, _node: &str, _sessions: Vec<(String, String)>, _after: Duration) {}
        fn session_moved(&self, _session_id: &str, _node: &str) {}
        fn uplink(
            &self,
            _origin: &str,
            _request: u64,
            _session_id: String,
            _who: crate::session::identity::Identity,
            _body: Bytes,
        ) {
        }
        fn resume_window(&self) -> Duration {
            Duration::from_secs(1)
        }
        fn presence_event(&self, _origin: &str, _change: Change, _channel: &str, _player_id: &str) {}
    }
}
