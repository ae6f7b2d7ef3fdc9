//! The publisher: the one task that writes to Redis on behalf of the rest
//! of the node. Publications and player records share one bounded queue,
//! drained in order and in pipelines (one round trip for up to [`BATCH`]
//! jobs), so a burst of publications costs Redis a few round trips, and
//! nobody who publishes ever waits on Redis itself: the request gets an
//! [`Ack`] to await if it can.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Job, Keys, RedisBroker, presence_ttl, unavailable};
use crate::broker::{Ack, BrokerError, Confirmed};
use crate::telemetry as ev;

/// Jobs waiting for the publisher; beyond this, publishing is refused.
pub(super) const QUEUE: usize = 8192;
/// Jobs sent to Redis in one pipeline.
const BATCH: usize = 256;

/// A publication Redis runs only before its deadline (Redis's clock, in
/// µs): one its publisher was told had failed (Redis stalled, the answer
/// came too late) must not reach the other nodes when Redis wakes up.
/// Returns the receivers, or -1 past the deadline.
/// KEYS: the pub/sub channel. ARGV: deadline µs, message, `PUBLISH` or
/// `SPUBLISH`.
const PUBLISH_BEFORE: &str = "local t = redis.call('TIME') \
if tonumber(t[1]) * 1000000 + tonumber(t[2]) > tonumber(ARGV[1]) then return -1 end \
return redis.call(ARGV[3], KEYS[1], ARGV[2])";

/// A publication placed in its channel's history, all in one step so that
/// every node sees the channel's publications in offset order: past its
/// deadline nothing happens (-1); else the channel's offset is incremented
/// (a new epoch when its history is gone, or was written by another Redis
/// process: restarted from a snapshot, or a replica promoted, either of
/// which may have lost acknowledged writes), the message appended to the
/// channel's stream as entry `<offset>-<now µs>` (capped at ARGV[3]
/// entries, kept ARGV[4] s), and published with its position before it.
/// A publication whose id is the backend's runs once per id within the
/// window, cluster-wide (-2 for the others: nothing is written again, so a
/// retry is never in a history twice).
/// KEYS (one slot: see [`super::Keys`]): the pub/sub channel, the
/// channel's meta hash, its stream, the id's key. ARGV: deadline µs,
/// message, history size, history TTL s, meta TTL s, id window s (0: not
/// the backend's id), `PUBLISH` or `SPUBLISH`, the `run_id` this node
/// believes the Redis has ('' unknown: `INFO` is asked only when the meta
/// disagrees with it, since `INFO` in every publication costs a third of
/// the script's throughput).
const PUBLISH_PLACED: &str = concat!(
    "local t = redis.call('TIME') \
if tonumber(t[1]) * 1000000 + tonumber(t[2]) > tonumber(ARGV[1]) then return -1 end \
if ARGV[6] ~= '0' and not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[6]) then return -2 end \
local now = t[1] .. string.format('%06d', tonumber(t[2])) \
local m = redis.call('HMGET', KEYS[2], 'e', 'r') \
local epoch = m[1] \
if not epoch or m[2] ~= ARGV[8] then \
local me = ",
    super::run_id_lua!(),
    " \
if not epoch or m[2] ~= me then epoch = now \
redis.call('HSET', KEYS[2], 'e', epoch, 'o', 0, 'r', me) redis.call('DEL', KEYS[3]) end end \
local offset = redis.call('HINCRBY', KEYS[2], 'o', 1) \
redis.call('EXPIRE', KEYS[2], ARGV[5]) \
if tonumber(ARGV[3]) > 0 then \
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[3], offset .. '-' .. now, 'm', ARGV[2]) \
redis.call('EXPIRE', KEYS[3], ARGV[4]) end \
return redis.call(ARGV[7], KEYS[1], 'P' .. epoch .. '.' .. offset .. '.' .. now .. '\\n' .. ARGV[2])"
);

/// Where a publication's channel keeps its history, and how much.
pub(super) struct Placement {
    pub meta: String,
    pub stream: String,
    pub size: u64,
    pub ttl_seconds: u64,
    /// The key that makes a backend's id run once (`None`: our own id).
    pub once: Option<String>,
}

impl RedisBroker {
    /// Queues one message for the other nodes. Refused (never dropped
    /// silently) while the subscription is down, since then nothing this
    /// node sends is known to arrive, while Redis does not answer (its last
    /// command failed or timed out), and when the queue is full.
    pub(super) fn publish(
        &self,
        subject: &str,
        placement: Option<Placement>,
        encode: impl FnOnce() -> Bytes,
    ) -> Result<Option<Ack>, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        if !self.is_answering() {
            return Err(unavailable("Redis is not answering"));
        }
        let (ack, rx) = oneshot::channel();
        let deadline_us = super::epoch_us().saturating_add(self.publish_timeout.as_micros() as u64);
        self.jobs
            .try_send(Job::Publish {
                channel: Arc::clone(self.keys.publications(subject)),
                message: encode(),
                deadline_us,
                ack,
                placement,
            })
            .map_err(|_| unavailable("the publish queue is full"))?;
        Ok(Some(rx))
    }

    /// Queues this node's record of a player (`None`: remove it). Dropped
    /// when the queue is full or the link is down: the heartbeat rewrites
    /// every player after a loss.
    pub(super) fn queue_presence(&self, player_id: &str, value: Option<String>) {
        let _ = self.jobs.try_send(Job::Presence { player_id: player_id.to_owned(), value });
    }

    /// Queues this node's record of a channel's players (`None`: remove
    /// it). Dropped like a player record: the manager rewrites every
    /// channel it holds every few seconds.
    pub(super) fn queue_channel_presence(&self, channel: &str, count: usize, value: Option<String>) {
        let _ = self.jobs.try_send(Job::ChannelPresence { channel: channel.to_owned(), count, value });
    }

    /// Each subscription in `batch` with its channel's position now
    /// (`<epoch>.<offset>.0`, `0.0.0` before any history; `None`: Redis did
    /// not answer), read in one pipeline before the batch is written: a
    /// channel's meta and a session's record may live on different Redis
    /// Cluster masters, so no one script can do both.
    async fn subscribed_at(&self, batch: &[Job]) -> Vec<Option<String>> {
        let metas: Vec<String> = batch
            .iter()
            .filter_map(|job| match job {
                Job::Subscription { channel, subscribed: true, .. } => Some(self.keys.history_meta(channel)),
                _ => None,
            })
            .collect();
        if metas.is_empty() {
            return Vec::new();
        }
        let n = metas.len();
        let read: Result<Vec<Vec<String>>, _> = self
            .query(move |mut c| {
                Box::pin(async move {
                    let mut pipe = redis::pipe();
                    for meta in &metas {
                        pipe.cmd("EVAL").arg(super::resume::META).arg(1).arg(meta);
                    }
                    pipe.query_async(&mut c).await
                })
            })
            .await;
        match read {
            Ok(read) => read
                .into_iter()
                .map(|meta| {
                    Some(match meta.as_slice() {
                        [epoch, offset] => format!("{epoch}.{offset}.0"),
                        _ => "0.0.0".to_owned(),
                    })
                })
                .collect(),
            Err(_) => vec![None; n],
        }
    }

    /// The publisher: drains the job queue in pipelines, in order, and
    /// answers each publication's [`Ack`].
    pub async fn run_publisher(self: Arc<Self>) {
        let mut rx = self.jobs_rx.lock().await;
        let ttl = presence_ttl(self.heartbeat).as_secs();
        let command = self.keys.publish_command();
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut subscribed_at = self.subscribed_at(&batch).await.into_iter();
            let run_ids = Arc::clone(&self.run_ids.lock());
            let mut pipe = redis::pipe();
            for job in &batch {
                match job {
                    Job::Publish { channel, message, deadline_us, placement: Some(p), .. } => {
                        let window = crate::session::recent_ids::WINDOW_MS / 1000;
                        pipe.cmd("EVAL")
                            .arg(PUBLISH_PLACED)
                            .arg(4)
                            .arg(&**channel)
                            .arg(&p.meta)
                            .arg(&p.stream)
                            .arg(p.once.as_deref().unwrap_or(&p.meta))
                            .arg(*deadline_us)
                            .arg(message.as_ref())
                            .arg(p.size)
                            .arg(p.ttl_seconds)
                            .arg(p.ttl_seconds.max(super::sessions::CLAIM_TTL_SECONDS))
                            .arg(if p.once.is_some() { window } else { 0 })
                            .arg(command)
                            .arg(run_ids.get(channel).map_or("", |id| &**id));
                    }
                    Job::Publish { channel, message, deadline_us, placement: None, .. } => {
                        pipe.cmd("EVAL")
                            .arg(PUBLISH_BEFORE)
                            .arg(1)
                            .arg(&**channel)
                            .arg(*deadline_us)
                            .arg(message.as_ref())
                            .arg(command);
                    }
                    Job::Presence { player_id, value: Some(v) } => {
                        let key = self.keys.player(player_id);
                        pipe.cmd("HSET").arg(&key).arg(&self.node_id).arg(v).ignore();
                        pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                    }
                    Job::Presence { player_id, value: None } => {
                        pipe.cmd("HDEL").arg(self.keys.player(player_id)).arg(&self.node_id).ignore();
                    }
                    Job::ChannelPresence { channel, count, value: Some(v) } => {
                        let key = self.keys.channel_presence(channel);
                        pipe.cmd("HSET")
                            .arg(&key)
                            .arg(&self.node_id)
                            .arg(v)
                            .arg(Keys::presence_count_field(&self.node_id))
                            .arg(*count)
                            .ignore();
                        pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
                    }
                    Job::ChannelPresence { channel, value: None, .. } => {
                        pipe.cmd("HDEL")
                            .arg(self.keys.channel_presence(channel))
                            .arg(&self.node_id)
                            .arg(Keys::presence_count_field(&self.node_id))
                            .ignore();
                    }
                    Job::Session { session_id, player_id: Some(player) } => {
                        let key = self.keys.sessions(&self.node_id);
                        pipe.cmd("HSET").arg(&key).arg(session_id).arg(player).ignore();
                        pipe.cmd("EXPIRE").arg(&key).arg(super::sessions::CLAIM_TTL_SECONDS).ignore();
                        let record = self.keys.session(session_id);
                        pipe.cmd("HSET")
                            .arg(&record)
                            .arg("p")
                            .arg(player)
                            .arg("n")
                            .arg(&self.node_id)
                            .ignore();
                        pipe.cmd("EXPIRE").arg(&record).arg(super::resume::RECORD_TTL_SECONDS).ignore();
                    }
                    Job::Session { session_id, player_id: None } => {
                        pipe.cmd("HDEL").arg(self.keys.sessions(&self.node_id)).arg(session_id).ignore();
                        pipe.cmd("EVAL")
                            .arg(super::resume::DELETE_IF_HELD)
                            .arg(1)
                            .arg(self.keys.session(session_id))
                            .arg(&self.node_id)
                            .ignore();
                    }
                    Job::Subscription { session_id, channel, subscribed: true } => {
                        // Not read: the record says nothing rather than a
                        // wrong position (a takeover then asks for a resync).
                        let Some(Some(at)) = subscribed_at.next() else { continue };
                        let record = self.keys.session(session_id);
                        pipe.cmd("HSET").arg(&record).arg(format!("c:{channel}")).arg(at).ignore();
                        pipe.cmd("EXPIRE").arg(&record).arg(super::resume::RECORD_TTL_SECONDS).ignore();
                    }
                    Job::Subscription { session_id, channel, subscribed: false } => {
                        pipe.cmd("HDEL")
                            .arg(self.keys.session(session_id))
                            .arg(format!("c:{channel}"))
                            .ignore();
                    }
                    Job::Revoke { until_ms, message, .. } => {
                        let key = self.keys.revocations();
                        pipe.cmd("EVAL")
                            .arg(super::revocations::STORE)
                            .arg(1)
                            .arg(&key)
                            .arg(*until_ms)
                            .arg(message.as_ref())
                            .arg(super::epoch_us() / 1000)
                            .arg(super::revocations::MAX_STORED)
                            .ignore();
                        pipe.cmd(command).arg(&**self.keys.publications(&key)).arg(message.as_ref()).ignore();
                    }
                }
            }
            // One answer per publication (the other commands are ignored).
            let result = if self.is_up() {
                self.query(move |mut c| Box::pin(async move { pipe.query_async::<Vec<i64>>(&mut c).await }))
                    .await
            } else {
                Err(unavailable("the Redis link is down"))
            };
            let mut answers = result.as_ref().map(|a| a.iter()).ok();
            for job in batch {
                match job {
                    Job::Publish { ack, .. } => {
                        let outcome = match (&result, answers.as_mut().and_then(Iterator::next)) {
                            (Err(e), _) => Err(e.clone()),
                            (Ok(_), Some(n)) if *n >= 0 => Ok(Confirmed::Sent),
                            // A backend's id already published: done.
                            (Ok(_), Some(-2)) => Ok(Confirmed::AlreadyPublished),
                            (Ok(_), _) => Err(unavailable("Redis ran it past its deadline: dropped")),
                        };
                        ev::broker_published(outcome.as_ref().err().map(ToString::to_string).as_deref());
                        let _ = ack.send(outcome);
                    }
                    Job::Revoke { ack, .. } => {
                        let _ = ack.send(result.as_ref().map(|_| Confirmed::Sent).map_err(Clone::clone));
                    }
                    Job::Presence { .. }
                    | Job::ChannelPresence { .. }
                    | Job::Session { .. }
                    | Job::Subscription { .. } => {}
                }
            }
        }
    }
}
