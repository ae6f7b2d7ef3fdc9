//! How this node reaches Redis: one server (`broker.url`, or the master the
//! Sentinels name) or a Redis Cluster (`broker.redis_cluster`). The rest of
//! the broker sees a [`Link`] for commands and a [`Subscription`] for
//! publications, whichever it is.
//!
//! On a Redis Cluster a pipeline runs command by command, each sent to the
//! master of its key's slot (all written at once, in order), since a
//! pipeline's commands may live on different masters; every multi-key
//! command or script the broker sends touches one slot only (see
//! [`super::Keys`]). Publications go over sharded pub/sub: each node
//! `SSUBSCRIBE`s every shard channel on the master that owns it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use futures_util::{FutureExt, Stream, StreamExt};
use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, PushKind, RedisFuture, Value};
use tokio::sync::mpsc;

use super::unavailable;
use crate::broker::BrokerError;
use crate::config::BrokerConfig;

/// Publications waiting between a Redis Cluster connection and the
/// subscriber; past it the subscription is dropped and redone (and every
/// local connection told to resync), never a message quietly lost.
const PUSH_QUEUE: usize = 4096;

/// Where Redis is.
pub(super) enum Servers {
    /// `broker.url`, or the master the Sentinels named last.
    One {
        client: Mutex<redis::Client>,
        sentinel: Option<Box<tokio::sync::Mutex<redis::sentinel::SentinelClient>>>,
    },
    /// A Redis Cluster's seed nodes.
    Cluster { seeds: Vec<String> },
}

impl Servers {
    /// Checks the addresses; nothing is connected yet.
    pub(super) fn new(cfg: &BrokerConfig) -> Result<Self, BrokerError> {
        if !cfg.redis_cluster.is_empty() {
            let seeds: Vec<String> = cfg.redis_cluster.iter().map(|a| format!("redis://{a}")).collect();
            // Checked here so that a bad seed fails at start, not at each retry.
            redis::cluster::ClusterClient::new(seeds.clone())
                .map_err(|_| unavailable("broker.redis_cluster are not valid addresses"))?;
            return Ok(Self::Cluster { seeds });
        }
        // The URL may hold a password: never echo it.
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|_| unavailable("broker.url is not a valid Redis URL"))?;
        let sentinel = if cfg.sentinels.is_empty() {
            None
        } else {
            let addrs: Vec<String> = cfg.sentinels.iter().map(|a| format!("redis://{a}")).collect();
            let s = redis::sentinel::SentinelClient::build(
                addrs,
                cfg.sentinel_master.clone(),
                None,
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(|_| unavailable("broker.sentinels are not valid addresses"))?;
            Some(Box::new(tokio::sync::Mutex::new(s)))
        };
        Ok(Self::One { client: Mutex::new(client), sentinel })
    }

    /// Publications travel over sharded pub/sub (`SPUBLISH`).
    pub(super) fn sharded(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// The one server to connect to: with Sentinels, the master they name
    /// now (asked at every connection, so a failover is followed).
    async fn one(&self, timeout: Duration) -> Result<redis::Client, BrokerError> {
        let Self::One { client, sentinel } = self else {
            return Err(unavailable("not a single Redis"));
        };
        if let Some(sentinel) = sentinel {
            let mut s = sentinel.lock().await;
            let master = timed(timeout, s.async_get_client()).await?;
            *client.lock() = master;
        }
        Ok(client.lock().clone())
    }

    /// A cluster client of `seeds` that waits at most `timeout` for a
    /// connection or an answer.
    fn cluster(seeds: &[String], timeout: Duration) -> redis::cluster::ClusterClientBuilder {
        redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(timeout)
            .response_timeout(timeout)
    }

    /// A new command link.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Link, BrokerError> {
        match self {
            Self::One { .. } => {
                let client = self.one(timeout).await?;
                Ok(Link::One(timed(timeout, client.get_multiplexed_async_connection()).await?))
            }
            Self::Cluster { seeds } => {
                let client = Self::cluster(seeds, timeout).build().map_err(unavailable)?;
                Ok(Link::Cluster(timed(timeout, client.get_async_connection()).await?))
            }
        }
    }

    /// A new subscription to `channels` (on a Redis Cluster, each on the
    /// master of its slot).
    pub(super) async fn subscribe(
        &self,
        channels: &[Arc<str>],
        timeout: Duration,
    ) -> Result<Subscription, BrokerError> {
        match self {
            Self::One { .. } => {
                let client = self.one(timeout).await?;
                let mut ps = timed(timeout, client.get_async_pubsub()).await?;
                for channel in channels {
                    timed(timeout, ps.subscribe(&**channel)).await?;
                }
                Ok(Subscription::One(Box::pin(ps.into_on_message())))
            }
            Self::Cluster { seeds } => {
                let (tx, rx) = mpsc::channel(PUSH_QUEUE);
                let overflow = Arc::new(AtomicBool::new(false));
                let full = Arc::clone(&overflow);
                let client = Self::cluster(seeds, timeout)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(move |info: redis::PushInfo| {
                        if tx.try_send(info).is_err() {
                            full.store(true, Ordering::Relaxed);
                        }
                        Ok::<(), ()>(())
                    })
                    .build()
                    .map_err(unavailable)?;
                let conn = timed(timeout, client.get_async_connection()).await?;
                // One command per channel: a shard channel is a key of its
                // own slot, so several in one command would span masters.
                let subscribed = join_all(channels.iter().map(|channel| {
                    let mut c = conn.clone();
                    async move { timed(timeout, c.ssubscribe(&**channel)).await }
                }))
                .await;
                subscribed.into_iter().collect::<Result<Vec<()>, _>>()?;
                Ok(Subscription::Cluster { rx, overflow, _conn: conn })
            }
        }
    }
}

/// Runs `f` within `timeout`.
pub(super) async fn timed<T>(
    timeout: Duration,
    f: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(BrokerError::Timeout(timeout)),
    }
}

/// The command link to either kind of Redis.
#[derive(Clone)]
pub(super) enum Link {
    One(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::One(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::One(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => {
                // Each command to its own slot's master; all queued before
                // any answer is awaited (one round trip per master), in the
                // pipeline's order.
                let sent: Vec<BoxFuture<'a, redis::RedisResult<Value>>> = pipeline
                    .cmd_iter()
                    .map(|cmd| {
                        let mut c = c.clone();
                        async move { c.req_packed_command(cmd).await }.boxed()
                    })
                    .collect();
                async move {
                    let answers = join_all(sent).await.into_iter().collect::<redis::RedisResult<Vec<_>>>()?;
                    Ok(answers.into_iter().skip(offset).take(count).collect())
                }
                .boxed()
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::One(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Publications as they arrive.
pub(super) enum Subscription {
    One(std::pin::Pin<Box<dyn Stream<Item = redis::Msg> + Send>>),
    Cluster {
        rx: mpsc::Receiver<redis::PushInfo>,
        /// Set when a publication could not be queued.
        overflow: Arc<AtomicBool>,
        /// Holds the connections (dropping it unsubscribes).
        _conn: ClusterConnection,
    },
}

impl Subscription {
    /// The next message's payload; `None` when the subscription is over
    /// (a connection dropped, a slot moved, or the queue overflowed):
    /// the caller subscribes again and tells its connections to resync.
    pub(super) async fn next(&mut self) -> Option<Payload> {
        match self {
            Self::One(s) => s.next().await.map(Payload::One),
            Self::Cluster { rx, overflow, .. } => loop {
                let info = rx.recv().await?;
                if overflow.load(Ordering::Relaxed) {
                    return None;
                }
                match info.kind {
                    PushKind::SMessage => {
                        if let Some(Value::BulkString(payload)) = info.data.into_iter().nth(1) {
                            return Some(Payload::Cluster(payload));
                        }
                    }
                    PushKind::SSubscribe | PushKind::Subscribe => {}
                    // Disconnection, a slot moved away (`sunsubscribe`), ...
                    _ => return None,
                }
            },
        }
    }
}

/// One message's bytes.
pub(super) enum Payload {
    One(redis::Msg),
    Cluster(Vec<u8>),
}

impl Payload {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Self::One(m) => m.get_payload_bytes(),
            Self::Cluster(b) => b,
        }
    }
}
