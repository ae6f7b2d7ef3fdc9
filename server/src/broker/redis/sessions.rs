//! Who sends a session's `player_left` in a cluster: exactly one node.
//!
//! - Each node keeps its sessions in `<prefix>:sessions:<node>` (a hash,
//!   session id → player id), written through the publisher's queue when a
//!   session starts or ends and rewritten now and then by the heartbeat.
//!   It outlives the node, so a survivor can find a dead node's sessions.
//! - A node claims a `player_left` before sending it:
//!   `SET <prefix>:left:{<session>} <node> NX` — whoever wins sends.
//! - When a node stops beating for three heartbeats, one survivor claims
//!   it (`SET <prefix>:reap:<node> NX`), takes its sessions hash, and once
//!   their resume window has passed since the node's last beat, sends
//!   their `player_left` (`node_lost`), each claimed as above.

use std::time::{Duration, SystemTime};

use super::{Job, RedisBroker};
use crate::broker::LocalNode;
use crate::session::protocol;

/// How long claims and session hashes are kept: far longer than any resume
/// window, short enough that keys of a cluster gone for good disappear.
pub(super) const CLAIM_TTL_SECONDS: u64 = 86_400;

/// Claims a `player_left` unless the session's record names a node other
/// than the one that held it (it was taken over); the record goes with the
/// claim. KEYS: the claim, the record. ARGV: claimer, holder, TTL s.
const CLAIM_LEFT: &str = "local n = redis.call('HGET', KEYS[2], 'n') \
if n and n ~= ARGV[2] then return 0 end \
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then redis.call('DEL', KEYS[2]) return 1 end \
return 0";

/// `(session id, player id)` pairs.
type Sessions = Vec<(String, String)>;

impl RedisBroker {
    /// Queues this node's record of a session (`None`: it ended).
    pub(super) fn queue_session(&self, session_id: &str, player_id: Option<&str>) {
        let _ = self.jobs.try_send(Job::Session {
            session_id: session_id.to_owned(),
            player_id: player_id.map(str::to_owned),
        });
    }

    /// Queues a session's subscription record (`false`: it left).
    pub(super) fn queue_subscription(&self, session_id: &str, channel: &str, subscribed: bool) {
        let _ = self.jobs.try_send(Job::Subscription {
            session_id: session_id.to_owned(),
            channel: channel.to_owned(),
            subscribed,
        });
    }

    /// Claims the `player_left` of a session `holder` held (`None`: this
    /// node). Refused when another node has taken the session over (its
    /// record names that node). If Redis cannot answer, this node sends
    /// anyway: a duplicate is better than a lost departure.
    pub(super) async fn claim_left(&self, session_id: &str, holder: Option<&str>) -> bool {
        let (key, record, node) =
            (self.keys.left(session_id), self.keys.session(session_id), self.node_id.clone());
        let holder = holder.unwrap_or(&self.node_id).to_owned();
        let claimed: Result<i64, _> = self
            .query(move |mut c| {
                Box::pin(async move {
                    redis::cmd("EVAL")
                        .arg(CLAIM_LEFT)
                        .arg(2)
                        .arg(key)
                        .arg(record)
                        .arg(node)
                        .arg(holder)
                        .arg(CLAIM_TTL_SECONDS)
                        .query_async(&mut c)
                        .await
                })
            })
            .await;
        claimed.map_or(true, |won| won == 1)
    }

    /// Rewrites every local session (after a loss of the link the hash may
    /// lack some).
    pub(super) async fn write_sessions(&self, manager: &dyn LocalNode) {
        let sessions = manager.local_sessions();
        if sessions.is_empty() {
            return;
        }
        let key = self.keys.sessions(&self.node_id);
        let _ = self
            .query(move |mut c| {
                Box::pin(async move {
                    let mut pipe = redis::pipe();
                    for (session, player) in &sessions {
                        pipe.cmd("HSET").arg(&key).arg(session).arg(player).ignore();
                    }
                    pipe.cmd("EXPIRE").arg(&key).arg(CLAIM_TTL_SECONDS).ignore();
                    pipe.query_async::<()>(&mut c).await
                })
            })
            .await;
    }

    /// Finds nodes that stopped beating, claims each, and hands their
    /// sessions to `manager` to end once their resume window has passed.
    pub(super) async fn reap_dead_nodes(&self, manager: &dyn LocalNode, resume_window: Duration) {
        let now = protocol::epoch_ms(SystemTime::now());
        let dead_before = now.saturating_sub((self.heartbeat * 3).as_millis() as u64);
        let nodes_key = self.keys.nodes();
        let dead: Result<Vec<(String, u64)>, _> = self
            .query(move |mut c| {
                Box::pin(async move {
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(nodes_key)
                        .arg("-inf")
                        .arg(format!("({dead_before}"))
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(16)
                        .query_async(&mut c)
                        .await
                })
            })
            .await;
        for (node, last_beat_ms) in dead.unwrap_or_default() {
            if node == self.node_id {
                continue;
            }
            let (reap, sessions_key, nodes_key, me) =
                (self.keys.reap(&node), self.keys.sessions(&node), self.keys.nodes(), self.node_id.clone());
            let node_id = node.clone();
            let taken: Result<(Option<String>, Sessions), _> = self
                .query(move |mut c| {
                    Box::pin(async move {
                        let won: Option<String> = redis::cmd("SET")
                            .arg(&reap)
                            .arg(me)
                            .arg("NX")
                            .arg("EX")
                            .arg(CLAIM_TTL_SECONDS)
                            .query_async(&mut c)
                            .await?;
                        if won.is_none() {
                            return Ok((None, Vec::new()));
                        }
                        let (sessions,): (std::collections::HashMap<String, String>,) = redis::pipe()
                            .cmd("HGETALL")
                            .arg(&sessions_key)
                            .cmd("DEL")
                            .arg(&sessions_key)
                            .ignore()
                            .cmd("ZREM")
                            .arg(&nodes_key)
                            .arg(&node_id)
                            .ignore()
                            .query_async(&mut c)
                            .await?;
                        let sessions: Sessions = sessions.into_iter().collect();
                        Ok((won, sessions))
                    })
                })
                .await;
            let Ok((Some(_), sessions)) = taken else { continue };
            let since_beat = Duration::from_millis(now.saturating_sub(last_beat_ms));
            crate::telemetry::node_reaped(&node, sessions.len());
            manager.sessions_lost(&node, sessions, resume_window.saturating_sub(since_beat));
        }
    }
}
