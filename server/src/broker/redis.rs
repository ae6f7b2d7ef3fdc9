//! The Redis broker: many Tandem nodes behind a load balancer, sharing one
//! Redis (Debian's `redis-server`, nothing home-made).
//!
//! - Publications: the accepting node fans out locally and `PUBLISH`es the
//!   publication once (one global `id`, [`super::wire`] format) on one
//!   channel, `<prefix>:pub`. Every node holds one subscription to it and
//!   fans out what other nodes published; its own it already delivered.
//!   So each connection gets a publication exactly once, and Redis carries
//!   it once per node, not per session.
//! - Presence: `<prefix>:node:<id>` (this node's overview, expiring after
//!   three heartbeats) and `<prefix>:player:<player>` (a hash with one field
//!   per node: that node's sessions of the player). Readers ignore fields of
//!   nodes whose key has expired.
//! - Loss: while the subscription is down, publishing is refused
//!   (`broker_unavailable`: never a silent loss); the link is retried with
//!   backoff, and when it is back every local connection gets a `resync`
//!   frame, since publications from other nodes may have been missed.
//!
//! Every Redis call has `broker.command_timeout_ms`; nothing waits longer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};
use tandem_monitoring::ConnectionOverview;
use tokio::sync::{mpsc, oneshot};

use super::{Ack, Broker, BrokerError, Envelope, LocalNode, wire};
use tandem_monitoring::backoff::Backoff;

use crate::config::BrokerConfig;
use crate::http::views;
use crate::session::protocol;
use crate::session::snapshot::{PlayerSnapshot, RemotePlayer};
use crate::telemetry as ev;

/// Jobs waiting for the publisher; beyond this, publishing is refused.
const QUEUE: usize = 8192;
/// Jobs sent to Redis in one pipeline.
const BATCH: usize = 256;
/// Heartbeats between full rewrites of this node's player presence.
const PRESENCE_REFRESH_BEATS: u64 = 10;

/// Wall-clock microseconds, for the cross-node lag (nodes share a clock
/// source in practice: NTP; on one machine, exactly).
fn epoch_us() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Backoff between reconnect attempts: 100 ms doubling to at most 5 s; the
/// caller adds up to 50 ms of jitter.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// How long a player hash outlives its last refresh.
pub fn presence_ttl(heartbeat: Duration) -> Duration {
    heartbeat * (PRESENCE_REFRESH_BEATS as u32) * 3
}

/// Key names under `broker.key_prefix`.
#[derive(Debug, Clone)]
struct Keys(String);

impl Keys {
    fn publications(&self) -> String {
        format!("{}:pub", self.0)
    }
    fn node(&self, id: &str) -> String {
        format!("{}:node:{id}", self.0)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.0)
    }
    fn player(&self, id: &str) -> String {
        format!("{}:player:{id}", self.0)
    }
}

enum Job {
    Publish { message: Bytes, ack: oneshot::Sender<Result<(), BrokerError>> },
    Presence { player_id: String, value: Option<String> },
}

pub struct RedisBroker {
    node_id: String,
    keys: Keys,
    client: redis::Client,
    timeout: Duration,
    heartbeat: Duration,
    jobs: mpsc::Sender<Job>,
    /// Held by the publisher task for its lifetime; a restarted task takes
    /// it over with whatever is queued.
    jobs_rx: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// The command link (publisher, presence, queries); `None` = reconnect.
    link: Mutex<Option<MultiplexedConnection>>,
    /// The subscription is live: publications reach and leave this node.
    up: AtomicBool,
    /// It has been live at least once (before: `/health` says connecting).
    ever_up: AtomicBool,
    /// Last `PING` round trip in microseconds; `u64::MAX` = none.
    rtt_us: AtomicU64,
    last_error: Mutex<Option<String>>,
    started: SystemTime,
    /// The other live nodes' documents, as of the last heartbeat.
    remote_nodes: Mutex<Vec<Value>>,
}

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
    pub fn new(cfg: &BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        // The URL may hold a password: never echo it.
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|_| unavailable("broker.url is not a valid Redis URL"))?;
        let (jobs, rx) = mpsc::channel(QUEUE);
        Ok(Arc::new(Self {
            node_id: protocol::random_id('n'),
            keys: Keys(cfg.key_prefix.clone()),
            client,
            timeout: Duration::from_millis(cfg.command_timeout_ms),
            heartbeat: Duration::from_secs(cfg.heartbeat_seconds),
            jobs,
            jobs_rx: tokio::sync::Mutex::new(rx),
            link: Mutex::new(None),
            up: AtomicBool::new(false),
            ever_up: AtomicBool::new(false),
            rtt_us: AtomicU64::new(u64::MAX),
            last_error: Mutex::new(None),
            started: SystemTime::now(),
            remote_nodes: Mutex::new(Vec::new()),
        }))
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
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
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(BrokerError::Timeout(self.timeout)),
        }
    }

    /// The command link, connecting if needed.
    async fn conn(&self) -> Result<MultiplexedConnection, BrokerError> {
        if let Some(c) = self.link.lock().clone() {
            return Ok(c);
        }
        let c = self.timed(self.client.get_multiplexed_async_connection()).await?;
        *self.link.lock() = Some(c.clone());
        Ok(c)
    }

    /// Runs one command or pipeline on the link; a failure drops the link
    /// so the next call reconnects.
    async fn query<T: redis::FromRedisValue>(
        &self,
        run: impl FnOnce(MultiplexedConnection) -> BoxFuture<'static, redis::RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        let c = self.conn().await?;
        let out = self.timed(run(c)).await;
        if let Err(e) = &out {
            *self.link.lock() = None;
            *self.last_error.lock() = Some(e.to_string());
        }
        out
    }

    /// The publisher: drains the job queue in pipelines, in order, and
    /// answers each publication's [`Ack`].
    pub async fn run_publisher(self: Arc<Self>) {
        let mut rx = self.jobs_rx.lock().await;
        let channel = self.keys.publications();
        let ttl = presence_ttl(self.heartbeat).as_secs();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut pipe = redis::pipe();
            for job in &batch {
                match job {
                    Job::Publish { message, .. } => {
                        pipe.cmd("PUBLISH").arg(&channel).arg(message.as_ref()).ignore();
                    }
                    Job::Presence { player_id, value: Some(v) } => {
                        let key = self.keys.player(player_id);
                        pipe.cmd("HSET").arg(&key).arg(&self.node_id).arg(v).ignore();
                        pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                    }
                    Job::Presence { player_id, value: None } => {
                        pipe.cmd("HDEL").arg(self.keys.player(player_id)).arg(&self.node_id).ignore();
                    }
                }
            }
            let result = if self.is_up() {
                self.query(move |mut c| Box::pin(async move { pipe.query_async::<()>(&mut c).await })).await
            } else {
                Err(unavailable("the Redis link is down"))
            };
            for job in batch {
                if let Job::Publish { ack, .. } = job {
                    ev::broker_published(result.as_ref().err().map(ToString::to_string).as_deref());
                    let _ = ack.send(result.clone());
                }
            }
        }
    }

    /// The subscriber: one subscription to the publication channel, fanned
    /// out locally; reconnects with backoff and, once back, tells every
    /// local connection to resync.
    pub async fn run_subscriber(self: Arc<Self>, manager: Arc<dyn LocalNode>) {
        let channel = self.keys.publications();
        let mut attempt: u32 = 0;
        let mut first = true;
        loop {
            let subscribed = async {
                let mut ps = self.timed(self.client.get_async_pubsub()).await?;
                self.timed(ps.subscribe(&channel)).await?;
                Ok::<_, BrokerError>(ps)
            }
            .await;
            match subscribed {
                Ok(ps) => {
                    let reconnect = !first || attempt > 0;
                    // The command link may be a dead one from before.
                    *self.link.lock() = None;
                    self.up.store(true, Ordering::Relaxed);
                    self.ever_up.store(true, Ordering::Relaxed);
                    ev::broker_connected("redis", &self.node_id, reconnect);
                    if reconnect {
                        let told = manager.resync_all("broker_reconnected");
                        ev::resync_sent("broker_reconnected", told);
                    }
                    first = false;
                    attempt = 0;
                    let mut messages = ps.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Some(received) = wire::decode(Bytes::copy_from_slice(msg.get_payload_bytes()))
                        else {
                            continue;
                        };
                        if received.origin == self.node_id {
                            continue;
                        }
                        match received.payload {
                            wire::Payload::Publication(envelope) => {
                                let lag = epoch_us().saturating_sub(received.sent_us);
                                ev::broker_received(Duration::from_micros(lag));
                                manager.fan_out_local(&envelope);
                            }
                            wire::Payload::Disconnect(player_id) => manager.disconnect_player(&player_id),
                        }
                    }
                    self.up.store(false, Ordering::Relaxed);
                    *self.last_error.lock() = Some("the subscription ended".into());
                }
                Err(e) => {
                    self.up.store(false, Ordering::Relaxed);
                    *self.last_error.lock() = Some(e.to_string());
                }
            }
            let wait = RECONNECT.delay(attempt) + Duration::from_millis(rand::random_range(0..=50));
            attempt = attempt.saturating_add(1);
            let error = self.last_error().unwrap_or_default();
            ev::broker_lost(manager.telemetry(), "redis", &error, wait);
            tokio::time::sleep(wait).await;
        }
    }

    /// Presence: every `broker.heartbeat_seconds`, measure the round trip,
    /// refresh this node's key, and now and then rewrite its players.
    pub async fn run_heartbeat(self: Arc<Self>, manager: Arc<dyn LocalNode>, addr: String) {
        let node_ttl = (self.heartbeat * 3).as_secs().max(1);
        let mut beat: u64 = 0;
        let mut was_up = false;
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = Instant::now();
            let pinged = self
                .query(|mut c| {
                    Box::pin(async move { redis::cmd("PING").query_async::<String>(&mut c).await })
                })
                .await;
            if pinged.is_err() {
                was_up = false;
                continue;
            }
            self.rtt_us.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            let overview = manager.overview();
            let doc = json!({
                "node_id": self.node_id,
                "addr": addr,
                "started_at": humantime::format_rfc3339_seconds(self.started).to_string(),
                "connections": overview,
                "total_connections": manager.total_connections(),
            })
            .to_string();
            let (node_key, nodes_key, id) =
                (self.keys.node(&self.node_id), self.keys.nodes(), self.node_id.clone());
            let now = protocol::epoch_ms(SystemTime::now());
            let _ = self
                .query(move |mut c| {
                    Box::pin(async move {
                        redis::pipe()
                            .cmd("SET")
                            .arg(&node_key)
                            .arg(doc)
                            .arg("EX")
                            .arg(node_ttl)
                            .ignore()
                            .cmd("ZADD")
                            .arg(&nodes_key)
                            .arg(now)
                            .arg(&id)
                            .ignore()
                            .query_async::<()>(&mut c)
                            .await
                    })
                })
                .await;
            if let Ok(nodes) = Arc::clone(&self).remote_nodes_inner().await {
                *self.remote_nodes.lock() = nodes;
            }
            // After a loss the players' hashes may have expired: rewrite.
            if !was_up || beat % PRESENCE_REFRESH_BEATS == 0 {
                for player in manager.local_players() {
                    self.player_presence(&player, manager.player_snapshot(&player));
                }
            }
            was_up = true;
            beat = beat.wrapping_add(1);
        }
    }

    /// The `cluster` object of `/monitoring/connections`: this node's
    /// counts and those of the other live nodes as of the last heartbeat.
    pub fn cluster_document(&self, local: &ConnectionOverview, addr: &str) -> Value {
        let me = json!({
            "node_id": self.node_id, "addr": addr, "connections": local,
            "total_connections": local.total_connections(),
        });
        let mut nodes = vec![me];
        nodes.extend(self.remote_nodes.lock().iter().cloned());
        let sum = |f: &dyn Fn(&Value) -> u64| nodes.iter().map(f).sum::<u64>();
        json!({
            "node_id": self.node_id,
            "broker": if self.is_up() { "connected" } else { "disconnected" },
            "node_count": nodes.len(),
            "total_connections": sum(&|n| n["total_connections"].as_u64().unwrap_or(0)),
            "websocket_connections": sum(&|n| n["connections"]["websocket_connections"].as_u64().unwrap_or(0)),
            "sse_connections": sum(&|n| n["connections"]["sse_connections"].as_u64().unwrap_or(0)),
            "sessions": sum(&|n| n["connections"]["sessions"].as_u64().unwrap_or(0)),
            "nodes": nodes,
        })
    }

    /// Ids of the live nodes other than this one, given candidate ids.
    async fn live(&self, ids: Vec<String>) -> Result<Vec<(String, Option<String>)>, BrokerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.node(id)).collect();
        let docs: Vec<Option<String>> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            })
            .await?;
        Ok(ids.into_iter().zip(docs).filter(|(_, d)| d.is_some()).collect())
    }

    async fn remote_player_inner(self: Arc<Self>, player_id: String) -> Result<RemotePlayer, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let key = self.keys.player(&player_id);
        let fields: HashMap<String, String> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            })
            .await?;
        let others: Vec<String> = fields.keys().filter(|n| **n != self.node_id).cloned().collect();
        let mut out = RemotePlayer::default();
        for (node, _) in self.live(others).await? {
            let Some(v) = fields.get(&node).and_then(|s| serde_json::from_str::<Value>(s).ok()) else {
                continue;
            };
            out.websocket += v["websocket"].as_u64().unwrap_or(0) as usize;
            out.sse += v["sse"].as_u64().unwrap_or(0) as usize;
            if let Some(list) = v["sessions"].as_array() {
                out.sessions.extend(list.iter().cloned().map(|mut s| {
                    s["node_id"] = Value::String(node.clone());
                    s
                }));
            }
        }
        Ok(out)
    }

    async fn remote_nodes_inner(self: Arc<Self>) -> Result<Vec<Value>, BrokerError> {
        let nodes_key = self.keys.nodes();
        let since =
            protocol::epoch_ms(SystemTime::now()).saturating_sub((self.heartbeat * 3).as_millis() as u64);
        let ids: Vec<String> = self
            .query(move |mut c| {
                Box::pin(async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(nodes_key)
                        .arg(since)
                        .arg("+inf")
                        .query_async(&mut c)
                        .await
                })
            })
            .await?;
        let others = ids.into_iter().filter(|n| *n != self.node_id).collect();
        Ok(self
            .live(others)
            .await?
            .into_iter()
            .filter_map(|(_, doc)| doc.and_then(|d| serde_json::from_str(&d).ok()))
            .collect())
    }
}

/// A handle the manager holds: the broker seen through [`Broker`].
#[derive(Debug, Clone)]
pub struct RedisHandle(pub Arc<RedisBroker>);

impl Broker for RedisHandle {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn forward(&self, envelope: &Envelope) -> Result<Option<Ack>, BrokerError> {
        let b = &self.0;
        if !b.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let message = wire::encode(&b.node_id, epoch_us(), envelope);
        let (ack, rx) = oneshot::channel();
        b.jobs
            .try_send(Job::Publish { message, ack })
            .map_err(|_| unavailable("the publish queue is full"))?;
        Ok(Some(rx))
    }

    fn disconnect_player(&self, player_id: &str) -> Result<Option<Ack>, BrokerError> {
        let b = &self.0;
        if !b.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let message = wire::encode_disconnect(&b.node_id, epoch_us(), player_id);
        let (ack, rx) = oneshot::channel();
        b.jobs
            .try_send(Job::Publish { message, ack })
            .map_err(|_| unavailable("the publish queue is full"))?;
        Ok(Some(rx))
    }

    fn wants_presence(&self) -> bool {
        true
    }

    fn player_presence(&self, player_id: &str, snapshot: Option<PlayerSnapshot>) {
        self.0.player_presence(player_id, snapshot);
    }

    fn remote_player(&self, player_id: &str) -> BoxFuture<'static, Result<RemotePlayer, BrokerError>> {
        Box::pin(Arc::clone(&self.0).remote_player_inner(player_id.to_owned()))
    }
}

impl RedisBroker {
    fn player_presence(&self, player_id: &str, snapshot: Option<PlayerSnapshot>) {
        let value = snapshot.map(|p| {
            let mine = views::local_sessions(&p);
            json!({ "sessions": mine.sessions, "websocket": mine.websocket, "sse": mine.sse }).to_string()
        });
        // Dropped when the queue is full or the link is down: the
        // heartbeat rewrites every player after a loss.
        let _ = self.jobs.try_send(Job::Presence { player_id: player_id.to_owned(), value });
    }
}

/// `/health`'s `broker` component: link state and round trip, from memory
/// (the heartbeat measures), so it is never stale.
pub struct BrokerCheck(pub Arc<RedisBroker>);

impl tandem_monitoring::HealthCheck for BrokerCheck {
    fn name(&self) -> &str {
        "broker"
    }

    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = tandem_monitoring::CheckOutcome> + Send + '_>> {
        use tandem_monitoring::{CheckOutcome, ComponentStatus};
        let b = &self.0;
        let rtt = b.last_rtt().map(|d| d.as_secs_f64() * 1000.0);
        let outcome = if b.is_up() {
            CheckOutcome::healthy(json!({
                "kind": "redis", "connection": "connected", "node_id": b.node_id, "round_trip_ms": rtt,
            }))
        } else {
            let (status, connection) = if b.ever_up.load(Ordering::Relaxed) {
                (ComponentStatus::Disconnected, "disconnected")
            } else {
                (ComponentStatus::Connecting, "connecting")
            };
            CheckOutcome::new(
                status,
                json!({
                    "kind": "redis", "connection": connection, "node_id": b.node_id,
                    "round_trip_ms": rtt, "error": b.last_error(),
                }),
            )
        };
        Box::pin(async move { outcome })
    }

    fn local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(RECONNECT.delay(0), Duration::from_millis(100));
        assert_eq!(RECONNECT.delay(1), Duration::from_millis(200));
        assert_eq!(RECONNECT.delay(5), Duration::from_millis(3200));
        assert_eq!(RECONNECT.delay(6), Duration::from_secs(5));
        assert_eq!(RECONNECT.delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn presence_outlives_its_refresh() {
        let hb = Duration::from_secs(2);
        assert!(presence_ttl(hb) > hb * PRESENCE_REFRESH_BEATS as u32);
    }

    #[test]
    fn cluster_document_sums_this_node_and_the_others() {
        let b = RedisBroker::new(&BrokerConfig::default()).expect("a valid URL");
        *b.remote_nodes.lock() = vec![json!({
            "node_id": "n_2", "total_connections": 3,
            "connections": {"websocket_connections": 2, "sse_connections": 1, "sessions": 2},
        })];
        let local =
            ConnectionOverview { websocket_connections: 1, sessions: 1, ..ConnectionOverview::default() };
        let doc = b.cluster_document(&local, "127.0.0.1:1");
        assert_eq!(doc["node_count"], 2);
        assert_eq!(doc["total_connections"], 4);
        assert_eq!(doc["websocket_connections"], 3);
        assert_eq!(doc["sse_connections"], 1);
        assert_eq!(doc["sessions"], 3);
        assert_eq!(doc["broker"], "disconnected", "never connected in a unit test");
        assert_eq!(doc["nodes"][0]["addr"], "127.0.0.1:1");
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let cfg = BrokerConfig { url: "redis://:secret@[bad".into(), ..BrokerConfig::default() };
        let err = RedisBroker::new(&cfg).expect_err("not a URL");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn keys_share_the_prefix() {
        let k = Keys("t".into());
        assert_eq!(k.publications(), "t:pub");
        assert_eq!(k.node("n_1"), "t:node:n_1");
        assert_eq!(k.player("p"), "t:player:p");
        assert_eq!(k.nodes(), "t:nodes");
    }
}
