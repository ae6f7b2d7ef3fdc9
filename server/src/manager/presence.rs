//! Channel presence glue (who is in a channel, per player; not the
//! broker's node and player records of `broker/redis/presence.rs`): feeds
//! each channel's [`ChannelPresence`] machine from subscribe, unsubscribe,
//! attach, detach and the end of sessions, sweeps it for expired graces,
//! sends `join`/`leave` frames to the channel's subscribers in the
//! namespaces of `channels.presence_events`, and with a cluster broker
//! keeps this node's part of each channel in the broker and relays its
//! joins and leaves to the other nodes. What the other nodes announced is
//! kept per channel ([`channel_presence::Elsewhere`]) so that frames speak for the cluster: a
//! player on two nodes, or moving between them within the grace, is one
//! join and one leave; a dead node's players leave once its heartbeat
//! record is gone.
//!
//! The personal `player:` channels are not tracked (only their player is
//! in them). No registry lock is held while frames are delivered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::fanout::delivery_target;
use super::{Attached, ConnectionManager, Session};
use crate::broker::BrokerError;
use crate::session::channel_presence::{self, Change, LIST_CAP, Links, NodePresence};
use crate::session::channels;
use crate::session::connection::{CloseReason, Outbound, Push};
use crate::session::protocol::{self, ErrorCode, ProtocolError, Reply};
use crate::telemetry as ev;

/// Milliseconds between full rewrites of this node's channel records (a
/// record lives `broker::redis::presence_ttl`, well beyond this).
const REWRITE_MS: u64 = 10_000;

/// Channels whose record the broker has not been given since they changed.
pub(super) type Dirty = parking_lot::Mutex<HashSet<Arc<str>>>;

/// A node that never shows in the live list this long after it was first
/// heard from is forgotten (it died within its first heartbeat).
const NEVER_LIVE_MS: u64 = 60_000;

/// Other nodes heard from: whether the live list has shown each yet, and
/// when it was first heard (ms).
pub(super) type Nodes = parking_lot::Mutex<HashMap<Arc<str>, (bool, u64)>>;

/// Whether a channel's presence is tracked: not the personal channels.
fn tracked(channel: &str) -> bool {
    !channel.starts_with("player:")
}

impl ConnectionManager {
    /// After `s` subscribed to `channel`: its player may have come in.
    pub(super) fn presence_subscribed(&self, s: &Session, channel: &Arc<str>) {
        if !tracked(channel) {
            return;
        }
        let links = Links::of(s.inner.lock().connections.iter().map(|c| c.transport));
        let change = self.presence.entry(Arc::clone(channel)).or_default().set(
            &s.player_id,
            &s.id,
            links,
            self.now_ms(),
        );
        self.presence_touched(channel, change, &s.player_id);
    }

    /// After `s` left `channel` (unsubscribe, end): its player may leave now.
    pub(super) fn presence_unsubscribed(&self, s: &Session, channel: &str) {
        if !tracked(channel) {
            return;
        }
        let change = match self.presence.get_mut(channel) {
            Some(mut c) => c.remove(&s.player_id, &s.id, self.now_ms()),
            None => return,
        };
        self.presence.remove_if(channel, |_, c| c.is_empty());
        self.presence_touched(channel, change, &s.player_id);
    }

    /// After a connection of `s` came or went: in each of its channels its
    /// player may have come (back), or its grace starts.
    pub(super) fn presence_links_changed(&self, s: &Session) {
        let (subs, links) = {
            let inner = s.inner.lock();
            if inner.closed {
                return;
            }
            let subs: Vec<Arc<str>> = inner.state.subscriptions().filter(|c| tracked(c)).cloned().collect();
            (subs, Links::of(inner.connections.iter().map(|c| c.transport)))
        };
        let now = self.now_ms();
        for ch in subs {
            let change =
                self.presence.entry(Arc::clone(&ch)).or_default().set(&s.player_id, &s.id, links, now);
            self.presence_touched(&ch, change, &s.player_id);
        }
    }

    /// Ends the graces that ran out (`channels.presence_grace_seconds`):
    /// those players leave. With a cluster broker, also writes the records
    /// of the channels that changed (at most once a sweep each) and, every
    /// few seconds, of all of them. Run it about once a second.
    pub fn presence_sweep(&self) {
        let now = self.now_ms();
        let grace = self.limits.presence_grace.as_millis() as u64;
        let mut left = Vec::new();
        for mut c in self.presence.iter_mut() {
            for p in c.sweep(now, grace) {
                left.push((Arc::clone(c.key()), p));
            }
        }
        for (channel, player) in left {
            self.presence_touched(&channel, Some(Change::Leave), &player);
        }
        if !self.broker.wants_presence() {
            return;
        }
        if let Some(live) = self.broker.live_nodes() {
            self.presence_forget_dead(&live, now);
        }
        let rewrite = now.saturating_sub(self.presence_rewritten_ms.load(Ordering::Relaxed)) >= REWRITE_MS;
        let dirty: Vec<Arc<str>> = if rewrite {
            self.presence_rewritten_ms.store(now, Ordering::Relaxed);
            self.presence_dirty.lock().clear();
            self.presence.iter().map(|c| Arc::clone(c.key())).collect()
        } else {
            std::mem::take(&mut *self.presence_dirty.lock()).into_iter().collect()
        };
        for channel in dirty {
            let here = self
                .presence
                .get(&channel)
                .filter(|c| c.count() > 0)
                .map(|c| NodePresence { count: c.count(), players: c.entries(LIST_CAP) });
            self.broker.channel_presence(&channel, here);
        }
    }

    /// Who is in `channel` on this node, listing at most `limit` players.
    pub fn local_presence(&self, channel: &str, limit: usize) -> NodePresence {
        self.presence
            .get(channel)
            .map(|c| NodePresence { count: c.count(), players: c.entries(limit) })
            .unwrap_or_default()
    }

    /// Who is in `channel` in the whole cluster: this node, and the other
    /// live nodes' records. With `limit` 0 only the nodes' counts are read
    /// (a few bytes per node whatever the number of players).
    pub async fn channel_presence(&self, channel: &str, limit: usize) -> Result<NodePresence, BrokerError> {
        let mut parts = vec![self.local_presence(channel, limit)];
        if self.broker.wants_presence() {
            parts.extend(self.broker.remote_presence(channel, limit > 0).await?);
        }
        Ok(channel_presence::combine(parts, limit))
    }

    /// A client's `presence {channel}`: only for a channel its session is
    /// subscribed to.
    pub fn presence_allowed(&self, s: &Session, channel: &str) -> Result<(), ProtocolError> {
        channels::namespace(channel)?;
        if !s.inner.lock().state.is_subscribed(channel) {
            return Err(ProtocolError::new(
                ErrorCode::Forbidden,
                "presence is answered only to subscribers of the channel",
            ));
        }
        Ok(())
    }

    /// A `join` or `leave` node `origin` decided: this node's subscribers
    /// hear it when the player came into the cluster's channel (no node had
    /// it) or left it (no node has it now, this one included).
    pub fn presence_from_node(&self, origin: &str, change: Change, channel: &str, player_id: &str) {
        if !self.presence_events_for(channel) {
            return;
        }
        let origin: Arc<str> = Arc::from(origin);
        self.presence_nodes.lock().entry(Arc::clone(&origin)).or_insert((false, self.now_ms()));
        let cluster_changed = {
            let mut e = self.presence_elsewhere.entry(Arc::from(channel)).or_default();
            match change {
                Change::Join => e.joined(player_id, &origin),
                Change::Leave => e.left(player_id, &origin),
            }
        };
        self.presence_elsewhere.remove_if(channel, |_, e| e.is_empty());
        if cluster_changed && !self.presence.get(channel).is_some_and(|c| c.is_present(player_id)) {
            self.announce(change, channel, player_id);
        }
    }

    /// Forgets the nodes no longer in the heartbeat's `live` list (once it
    /// has shown them): their players leave where no other node has them.
    fn presence_forget_dead(&self, live: &[String], now: u64) {
        let dead: Vec<Arc<str>> = {
            let mut nodes = self.presence_nodes.lock();
            for (node, (seen_live, _)) in nodes.iter_mut() {
                *seen_live |= live.iter().any(|l| **l == **node);
            }
            let dead: Vec<Arc<str>> = nodes
                .iter()
                .filter(|(node, (seen_live, first_ms))| {
                    !live.iter().any(|l| **l == ***node)
                        && (*seen_live || now.saturating_sub(*first_ms) > NEVER_LIVE_MS)
                })
                .map(|(node, _)| Arc::clone(node))
                .collect();
            for node in &dead {
                nodes.remove(node);
            }
            dead
        };
        for node in dead {
            let mut gone = Vec::new();
            for mut e in self.presence_elsewhere.iter_mut() {
                gone.extend(e.drop_node(&node).into_iter().map(|p| (Arc::clone(e.key()), p)));
            }
            self.presence_elsewhere.retain(|_, e| !e.is_empty());
            for (channel, player) in gone {
                if !self.presence.get(&channel).is_some_and(|c| c.is_present(&player)) {
                    self.announce(Change::Leave, &channel, &player);
                }
            }
        }
    }

    /// After a loss of the broker link: what the other nodes said may have
    /// been missed, so none of it is trusted (their next changes rebuild it).
    pub(super) fn presence_forget_elsewhere(&self) {
        self.presence_elsewhere.clear();
        self.presence_nodes.lock().clear();
    }

    /// After a channel's machine changed: record it for the broker, and
    /// tell of a join or leave.
    fn presence_touched(&self, channel: &str, change: Option<Change>, player_id: &str) {
        if self.broker.wants_presence() {
            self.presence_dirty.lock().insert(Arc::from(channel));
        }
        let Some(change) = change else { return };
        let ns = channels::namespace(channel).unwrap_or("");
        ev::presence_changed(self.namespace_label(ns), change.as_str(), channel, player_id);
        if self.presence_events_for(channel) {
            // Another node has the player: the subscribers heard of its
            // join from there and will hear of its leave from there.
            if !self.presence_elsewhere.get(channel).is_some_and(|e| e.has(player_id)) {
                self.announce(change, channel, player_id);
            }
            self.broker.presence_event(change, channel, player_id);
        }
    }

    fn presence_events_for(&self, channel: &str) -> bool {
        let ns = channels::namespace(channel).unwrap_or("");
        self.limits.presence_events.iter().any(|n| n == ns)
    }

    /// A metric label for a namespace, bounded by the configuration: the
    /// namespaces it names, else `other`.
    fn namespace_label(&self, ns: &str) -> String {
        let l = &self.limits;
        if l.presence_events.iter().chain(&l.client_publish).any(|n| n == ns) {
            ns.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Sends a `join`/`leave` frame to the channel's subscribers here, but
    /// not to the player's own sessions. A full queue closes that
    /// connection as a slow consumer, as a delivery would.
    fn announce(&self, change: Change, channel: &str, player_id: &str) {
        let Some(members) = self.channel_members(channel) else { return };
        let json = protocol::to_json(&match change {
            Change::Join => Reply::Join { channel, player_id },
            Change::Leave => Reply::Leave { channel, player_id },
        });
        let kind = change.as_str();
        let mut slow = Vec::new();
        for s in members.iter().filter(|s| *s.player_id != *player_id) {
            let inner = s.inner.lock();
            if inner.closed || (inner.left_a_channel && !inner.state.is_subscribed(channel)) {
                continue;
            }
            let only =
                delivery_target(self.limits.dual_delivery, inner.connections.iter().map(|c| c.transport));
            for c in inner.connections.iter().filter(|c| only.is_none_or(|t| t == c.transport)) {
                if c.push(Outbound::Frame { kind, json: json.clone() }) == Push::Full {
                    slow.push(Attached { session: Arc::clone(s), conn: Arc::clone(c) });
                }
            }
        }
        for att in slow {
            self.force_close(&att, CloseReason::SlowConsumer);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use tandem_protocol::Transport;

    use crate::manager::test_support::{manager_with_limits, player};
    use crate::manager::{AttachRequest, Attached, Clock, ConnectionManager};
    use crate::session::channel_presence::LIST_CAP;
    use crate::session::connection::{Next, Outbound};

    fn attach(m: &ConnectionManager, who: &str, t: Transport, session: Option<&str>) -> Attached {
        let req = AttachRequest {
            transport: t,
            session_id: session.map(str::to_owned),
            last_seq: None,
            channels: vec!["room:a".into()],
            granted: Vec::new(),
            started: Instant::now(),
            remote_connections: 0,
            adopt: None,
            positions: Vec::new(),
        };
        m.attach(&player(who), req).unwrap()
    }

    /// The `join`/`leave` frames queued on a connection, as `type:player`.
    fn frames(att: &Attached) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match att.conn.next() {
                Next::Send(Outbound::Frame { kind: kind @ ("join" | "leave"), json }) => {
                    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
                    out.push(format!("{kind}:{}", v["player_id"].as_str().unwrap()));
                }
                Next::Send(_) => {}
                _ => break,
            }
        }
        out
    }

    fn manager(clock: &Clock) -> ConnectionManager {
        manager_with_limits(clock.clone(), |l| {
            l.presence_events = vec!["room".into()];
            l.presence_grace = Duration::from_secs(15);
        })
    }

    #[test]
    fn joins_and_leaves_are_damped_by_the_grace() {
        let clock = Clock::manual();
        let m = manager(&clock);
        let watcher = attach(&m, "w", Transport::WebSocket, None);
        assert!(frames(&watcher).is_empty(), "no frame of its own join");
        let bob = attach(&m, "bob", Transport::WebSocket, None);
        assert_eq!(frames(&watcher), ["join:bob"]);
        assert!(frames(&bob).is_empty(), "bob hears nothing of w's earlier join, nor his own");
        // A second transport of the same session: one entry, no frame.
        let bob_sse = attach(&m, "bob", Transport::Sse, Some(&bob.session.id));
        let here = m.local_presence("room:a", LIST_CAP);
        assert_eq!(here.count, 2);
        let entry = here.players.iter().find(|e| e.player_id == "bob").unwrap();
        assert_eq!((entry.sessions, entry.transports.len()), (1, 2));
        // Drop and resume within the grace: nothing.
        m.detach(&bob, "client_gone");
        m.detach(&bob_sse, "client_gone");
        clock.advance(Duration::from_secs(14));
        m.presence_sweep();
        let again = attach(&m, "bob", Transport::WebSocket, Some(&bob.session.id));
        assert!(frames(&watcher).is_empty());
        // Past the grace: one leave.
        m.detach(&again, "client_gone");
        clock.advance(Duration::from_secs(15));
        m.presence_sweep();
        m.presence_sweep();
        assert_eq!(frames(&watcher), ["leave:bob"]);
        assert_eq!(m.local_presence("room:a", LIST_CAP).count, 1);
    }

    #[test]
    fn unsubscribe_and_session_end_leave_at_once() {
        let clock = Clock::manual();
        let m = manager(&clock);
        let watcher = attach(&m, "w", Transport::WebSocket, None);
        let bob = attach(&m, "bob", Transport::Sse, None);
        m.unsubscribe(&bob.session, "room:a").unwrap();
        let carol = attach(&m, "carol", Transport::WebSocket, None);
        m.end_session_by_client(&carol.session);
        assert_eq!(frames(&watcher), ["join:bob", "leave:bob", "join:carol", "leave:carol"]);
        assert_eq!(m.local_presence("room:a", LIST_CAP).count, 1);
        let forbidden = m.presence_allowed(&bob.session, "room:a").unwrap_err();
        assert_eq!(forbidden.code, crate::session::protocol::ErrorCode::Forbidden);
        assert!(m.presence_allowed(&watcher.session, "room:a").is_ok());
    }
}
