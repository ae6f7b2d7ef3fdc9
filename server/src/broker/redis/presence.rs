//! Presence: what each node tells the others about itself and its players,
//! and the reads that answer cluster-wide questions from it.
//!
//! - Every `broker.heartbeat_seconds` a node measures its round trip to
//!   Redis and rewrites its record ([`NodeDocument`] under
//!   `<prefix>:node:<id>`, expiring after three heartbeats, its id scored by
//!   time in `<prefix>:nodes`). A node that stops beating drops out of the
//!   cluster by itself: nothing has to clean up after a crash.
//! - For each player it holds, a node keeps one field, named by its id, in
//!   `<prefix>:player:<player>`: a [`RemotePlayer`] of its sessions. It is
//!   written when the player's sessions change (through the publisher's
//!   queue) and rewritten now and then and after every loss of the link, so
//!   a record dropped while Redis was away comes back.
//! - For each channel with players here, a node keeps one field, named by
//!   its id, in `<prefix>:presence:<channel>`: a [`NodePresence`] (its
//!   count and up to [`LIST_CAP`] entries), written at most once a second
//!   per channel and rewritten every few seconds by the manager.
//! - Readers take a field only if its node's record is still live, and
//!   decode what they read with a size limit: a bad record is logged and
//!   skipped as if that node held nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tandem_monitoring::ConnectionOverview;

use super::{Keys, RedisBroker, unavailable};
use crate::broker::document::{
    self, ClusterDocument, LinkState, NODE_DOCUMENT_LIMIT, NodeDocument, PLAYER_DOCUMENT_LIMIT,
};
use crate::broker::{BrokerError, LocalNode};
use crate::session::channel_presence::{LIST_CAP, NodePresence};
use crate::session::protocol;
use crate::session::snapshot::{PlayerSnapshot, RemotePlayer};
use crate::telemetry as ev;

/// Heartbeats between full rewrites of this node's player records.
const PRESENCE_REFRESH_BEATS: u64 = 10;

/// How long a player hash outlives its last refresh.
pub fn presence_ttl(heartbeat: Duration) -> Duration {
    heartbeat * (PRESENCE_REFRESH_BEATS as u32) * 3
}

impl RedisBroker {
    /// Every `broker.heartbeat_seconds`: measure the round trip, rewrite
    /// this node's record, read the other nodes', and now and then rewrite
    /// this node's players.
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
            let mut record = NodeDocument::new(&self.node_id, &addr, manager.overview());
            record.total_connections = manager.total_connections();
            record.started_at = Some(self.started);
            if let Ok(record) = serde_json::to_string(&record) {
                self.write_node(record, node_ttl).await;
            }
            if let Ok(nodes) = self.read_nodes().await {
                *self.remote_nodes.lock() = nodes;
            }
            // After a loss the players' hashes may have expired: rewrite.
            if !was_up || beat % PRESENCE_REFRESH_BEATS == 0 {
                for player in manager.local_players() {
                    self.write_player(&player, manager.player_snapshot(&player));
                }
                self.write_sessions(&*manager).await;
            }
            self.reap_dead_nodes(&*manager, manager.resume_window()).await;
            was_up = true;
            beat = beat.wrapping_add(1);
        }
    }

    /// This node's record, and its id scored by now among the nodes.
    async fn write_node(&self, record: String, ttl_seconds: u64) {
        let (node_key, nodes_key, id) =
            (self.keys.node(&self.node_id), self.keys.nodes(), self.node_id.clone());
        let now = protocol::epoch_ms(SystemTime::now());
        let _ = self
            .query(move |mut c| {
                Box::pin(async move {
                    redis::pipe()
                        .cmd("SET")
                        .arg(&node_key)
                        .arg(record)
                        .arg("EX")
                        .arg(ttl_seconds)
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
    }

    /// Queues this node's record of a player (`None`: it holds none of its
    /// sessions any more).
    pub(super) fn write_player(&self, player_id: &str, snapshot: Option<PlayerSnapshot>) {
        let value = match snapshot {
            None => None,
            Some(p) => match serde_json::to_string(&RemotePlayer::from_snapshot(p)) {
                Ok(text) => Some(text),
                // Strings and numbers only: it cannot fail, and a record
                // left as it was is better than one removed.
                Err(_) => return,
            },
        };
        self.queue_presence(player_id, value);
    }

    /// Queues this node's record of a channel's players.
    pub(super) fn write_channel_presence(&self, channel: &str, here: Option<NodePresence>) {
        let (count, value) = match here {
            None => (0, None),
            Some(p) => match serde_json::to_string(&p) {
                Ok(text) => (p.count, Some(text)),
                Err(_) => return,
            },
        };
        self.queue_channel_presence(channel, count, value);
    }

    /// How many players are in `channel` on each other live node (as of
    /// the last heartbeat's list of nodes): one `HMGET` of their counts,
    /// a few bytes per node whatever the number of players.
    pub(super) async fn read_channel_counts(&self, channel: &str) -> Result<Vec<NodePresence>, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let fields: Vec<String> =
            self.remote_nodes.lock().iter().map(|n| Keys::presence_count_field(&n.node_id)).collect();
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.keys.channel_presence(channel);
        let counts: Vec<Option<u64>> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("HMGET").arg(key).arg(fields).query_async(&mut c).await })
            })
            .await?;
        Ok(counts
            .into_iter()
            .flatten()
            .map(|n| NodePresence { count: usize::try_from(n).unwrap_or(usize::MAX), players: Vec::new() })
            .collect())
    }

    /// Who is in `channel` on the other live nodes (fields of nodes whose
    /// record expired are ignored).
    pub(super) async fn read_channel_presence(
        &self,
        channel: &str,
    ) -> Result<Vec<NodePresence>, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let key = self.keys.channel_presence(channel);
        let fields: HashMap<String, Vec<u8>> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            })
            .await?;
        let others: Vec<String> =
            fields.keys().filter(|n| **n != self.node_id && !n.starts_with('#')).cloned().collect();
        let mut out = Vec::new();
        for (node, _) in self.live(others).await? {
            let Some(text) = fields.get(&node) else { continue };
            match document::decode::<NodePresence>(text, PLAYER_DOCUMENT_LIMIT) {
                Ok(mut part) => {
                    part.players.truncate(LIST_CAP);
                    out.push(part);
                }
                Err(e) => ev::broker_document_refused("presence", &node, &e),
            }
        }
        Ok(out)
    }

    /// The `cluster` object of `/monitoring/connections`: this node's
    /// counts and those of the other live nodes as of the last heartbeat.
    pub(super) fn cluster_document(&self, local: &ConnectionOverview, addr: &str) -> ClusterDocument {
        let mut nodes = vec![NodeDocument::new(&self.node_id, addr, *local)];
        nodes.extend(self.remote_nodes.lock().iter().cloned());
        let link = if self.is_up() { LinkState::Connected } else { LinkState::Disconnected };
        ClusterDocument::new(link, nodes)
    }

    /// Of the candidate node ids, those other than this one whose record is
    /// still live, each with its record.
    async fn live(&self, ids: Vec<String>) -> Result<Vec<(String, Vec<u8>)>, BrokerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.node(id)).collect();
        let records: Vec<Option<Vec<u8>>> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
            })
            .await?;
        Ok(ids.into_iter().zip(records).filter_map(|(id, r)| Some((id, r?))).collect())
    }

    /// The player's sessions on the other live nodes, each marked with its
    /// node.
    pub(super) async fn read_player(&self, player_id: &str) -> Result<RemotePlayer, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let key = self.keys.player(player_id);
        let fields: HashMap<String, Vec<u8>> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            })
            .await?;
        let others: Vec<String> = fields.keys().filter(|n| **n != self.node_id).cloned().collect();
        let mut out = RemotePlayer::default();
        for (node, _) in self.live(others).await? {
            let Some(text) = fields.get(&node) else { continue };
            match document::decode::<RemotePlayer>(text, PLAYER_DOCUMENT_LIMIT) {
                Ok(part) => merge(&mut out, part, &node),
                Err(e) => ev::broker_document_refused("player", &node, &e),
            }
        }
        Ok(out)
    }

    /// The other live nodes' records.
    async fn read_nodes(&self) -> Result<Vec<NodeDocument>, BrokerError> {
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
            .filter_map(|(node, text)| {
                document::decode(&text, NODE_DOCUMENT_LIMIT)
                    .inspect_err(|e| ev::broker_document_refused("node", &node, e))
                    .ok()
            })
            .collect())
    }
}

/// Adds one node's record of a player to `out`, its sessions marked with
/// the node that holds them.
fn merge(out: &mut RemotePlayer, part: RemotePlayer, node: &str) {
    out.websocket += part.websocket;
    out.sse += part.sse;
    out.sessions.extend(part.sessions.into_iter().map(|mut s| {
        s.node_id = Some(node.to_owned());
        s
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::session::snapshot::tests::session;

    #[test]
    fn presence_outlives_its_refresh() {
        let hb = Duration::from_secs(2);
        assert!(presence_ttl(hb) > hb * PRESENCE_REFRESH_BEATS as u32);
    }

    #[test]
    fn cluster_document_sums_this_node_and_the_others() {
        let b = RedisBroker::new(&BrokerConfig::default(), 65536).expect("a valid URL");
        let remote = ConnectionOverview {
            websocket_connections: 2,
            sse_connections: 1,
            sessions: 2,
            ..ConnectionOverview::default()
        };
        *b.remote_nodes.lock() = vec![NodeDocument::new("n_2", "127.0.0.1:2", remote)];
        let local =
            ConnectionOverview { websocket_connections: 1, sessions: 1, ..ConnectionOverview::default() };
        let doc = serde_json::to_value(b.cluster_document(&local, "127.0.0.1:1")).unwrap();
        assert_eq!(doc["node_id"], b.node_id());
        assert_eq!(doc["node_count"], 2);
        assert_eq!(doc["total_connections"], 4);
        assert_eq!(doc["websocket_connections"], 3);
        assert_eq!(doc["sse_connections"], 1);
        assert_eq!(doc["sessions"], 3);
        assert_eq!(doc["broker"], "disconnected", "never connected in a unit test");
        assert_eq!(doc["nodes"][0]["addr"], "127.0.0.1:1");
        assert_eq!(doc["nodes"][0]["node_id"], b.node_id());
        assert_eq!(doc["nodes"][1]["connections"]["websocket_connections"], 2);
    }

    #[test]
    fn a_player_record_read_back_is_marked_with_its_node() {
        let record =
            RemotePlayer::from_snapshot(PlayerSnapshot { player_id: "p".into(), sessions: vec![session()] });
        let text = serde_json::to_vec(&record).unwrap();
        let mut out = RemotePlayer::default();
        merge(&mut out, document::decode(&text, PLAYER_DOCUMENT_LIMIT).unwrap(), "n_2");
        merge(&mut out, document::decode(&text, PLAYER_DOCUMENT_LIMIT).unwrap(), "n_3");
        assert_eq!((out.websocket, out.sse, out.sessions.len()), (2, 2, 2));
        assert_eq!(out.sessions[0].node_id.as_deref(), Some("n_2"));
        assert_eq!(out.sessions[1].node_id.as_deref(), Some("n_3"));
        let bad =
            document::decode::<RemotePlayer>(br#"{"sessions":[{"session_id":1}]}"#, PLAYER_DOCUMENT_LIMIT);
        assert!(bad.is_err());
    }
}
