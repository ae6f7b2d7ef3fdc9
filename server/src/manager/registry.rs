//! The registries: sessions by id, players (their sessions and connection
//! counts) and channels (their subscribed sessions); subscriptions, the
//! unlinking of connections and the end of sessions; plain snapshots for the
//! JSON views at the HTTP edge ([`crate::session::snapshot`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::admission::too_many_subs;
use super::recovery::TakeOver;
use super::{Attached, ConnectionManager, Session, SessionInner};
use crate::backend::LeftReason;
use crate::session::channels;
use crate::session::connection::{CloseReason, Connection};
use crate::session::identity::Identity;
use crate::session::protocol::{self, ErrorCode, ProtocolError, Publication};
use crate::session::snapshot::{ConnectionSnapshot, PlayerSnapshot, SessionSnapshot};
use crate::session::state::{SessionState, SubscribeError};
use crate::telemetry as ev;
use tandem_protocol::Transport;

#[derive(Debug, Default)]
pub(super) struct PlayerEntry {
    pub(super) sessions: Vec<Arc<Session>>,
    pub(super) websocket: usize,
    pub(super) sse: usize,
}

impl PlayerEntry {
    pub(super) fn count(&mut self, t: Transport) -> &mut usize {
        match t {
            Transport::WebSocket => &mut self.websocket,
            Transport::Sse => &mut self.sse,
        }
    }
}

/// The sessions a fan-out delivers to: immutable, shared, read with no
/// lock held.
pub(super) type Snapshot = Arc<[Arc<Session>]>;

/// A channel's subscribers: by id for (un)subscribe, plus the snapshot
/// fan-out reads. A change drops the snapshot and the next fan-out rebuilds
/// it, once: a join of n subscribers costs O(n) in all, not O(n) each.
#[derive(Debug, Default)]
pub(super) struct Members {
    by_id: HashMap<Arc<str>, Arc<Session>>,
    snapshot: Option<Snapshot>,
}

impl Members {
    /// Adds `s`; returns the dropped snapshot, for the caller to release
    /// after the lock (releasing n sessions is O(n)).
    pub(super) fn insert(&mut self, s: &Arc<Session>) -> Option<Snapshot> {
        self.by_id.insert(Arc::clone(&s.id), Arc::clone(s));
        self.snapshot.take()
    }

    /// Removes a session; returns the dropped snapshot, as `insert` does.
    pub(super) fn remove(&mut self, session_id: &str) -> Option<Snapshot> {
        self.by_id.remove(session_id)?;
        self.snapshot.take()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The snapshot, unless a change dropped it.
    pub(super) fn cached(&self) -> Option<Snapshot> {
        self.snapshot.clone()
    }

    /// The snapshot, rebuilt if a change dropped it.
    pub(super) fn snapshot(&mut self) -> Snapshot {
        Arc::clone(self.snapshot.get_or_insert_with(|| self.by_id.values().cloned().collect()))
    }
}

/// A new session id: random and unguessable, tagged with this node's
/// route when it has one (`s_<route>-<hex>`), for load balancers.
pub fn session_id(route: &str) -> String {
    let id = protocol::random_id('s');
    match route {
        "" => id,
        r => format!("s_{r}-{}", &id[2..]),
    }
}

impl ConnectionManager {
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| Arc::clone(&s)).filter(|s| !s.is_closed())
    }

    /// Live connections of `player_id` on this node.
    pub fn player_connections(&self, player_id: &str) -> usize {
        self.players.get(player_id).map_or(0, |p| p.websocket + p.sse)
    }

    /// Players with a session on this node.
    pub fn local_players(&self) -> Vec<String> {
        self.players.iter().filter(|p| !p.sessions.is_empty()).map(|p| p.key().to_string()).collect()
    }

    /// Tells the broker what this node now holds of `player_id`, so other
    /// nodes count it (cluster brokers; the in-process one ignores it).
    pub(super) fn presence_changed(&self, player_id: &str) {
        if self.broker.wants_presence() {
            self.broker.player_presence(player_id, self.player_snapshot(player_id));
        }
    }

    pub(super) fn create_session(&self, who: &Identity) -> Arc<Session> {
        let id = session_id(&self.limits.session_route);
        self.new_session(who, id, SessionState::new(self.limits.history_size), None)
    }

    /// A session under `id` with `state`; `taken_over` (a session from
    /// another node) holds its deliveries until it caught up.
    pub(super) fn new_session(
        &self,
        who: &Identity,
        id: String,
        state: SessionState<Arc<Publication>>,
        taken_over: Option<Box<TakeOver>>,
    ) -> Arc<Session> {
        // The players map already holds the id (`reserve` put it there):
        // share that copy rather than make another.
        let player_id: Arc<str> = match self.players.get(who.player_id.as_str()) {
            Some(p) => Arc::clone(p.key()),
            None => Arc::from(who.player_id.as_str()),
        };
        let adopted = taken_over.is_some();
        let s = Arc::new(Session {
            id: Arc::from(id),
            player_id: Arc::clone(&player_id),
            created: SystemTime::now(),
            inner: Mutex::new(SessionInner {
                state,
                connections: Vec::new(),
                detached_at_ms: Some(self.now_ms()),
                closed: false,
                left_a_channel: false,
                post_limit: None,
                commands: None,
                taken_over,
            }),
            subs_lock: Mutex::new(()),
        });
        self.sessions.insert(Arc::clone(&s.id), Arc::clone(&s));
        self.sessions_changed();
        let mut player = self.players.entry(player_id).or_default();
        // Most players hold one session: no room for four.
        player.sessions.reserve_exact(1);
        player.sessions.push(Arc::clone(&s));
        drop(player);
        ev::session_created(&s.id, &s.player_id);
        if adopted {
            self.broker.session_adopted(&s.id, &s.player_id);
        } else {
            self.broker.session_opened(&s.id, &s.player_id);
        }
        let personal = channels::personal_channel(&who.player_id);
        // The personal channel is implicit and not counted against the limit.
        let _ = self.subscribe_checked(&s, &personal, true);
        s
    }

    /// Subscribes after permission checks were done by the caller.
    pub(super) fn subscribe_checked(
        &self,
        s: &Arc<Session>,
        channel: &str,
        implicit: bool,
    ) -> Result<bool, ProtocolError> {
        let _serial = s.subs_lock.lock();
        // One copy of a channel's name, however many sessions hold it.
        let known = self.channels.get(channel).map(|e| Arc::clone(e.key()));
        let ch: Arc<str> = known.unwrap_or_else(|| Arc::from(channel));
        let (added, recovering) = {
            let mut inner = s.inner.lock();
            if inner.closed {
                return Ok(false);
            }
            let added = inner
                .state
                .subscribe(Arc::clone(&ch), self.limits.max_subscriptions, implicit)
                .map_err(|SubscribeError::TooMany { max }| too_many_subs(max))?;
            (added, inner.taken_over.as_ref().is_some_and(|t| t.is_catching_up()))
        };
        if added {
            // A session taken over keeps the starting points recorded before.
            if !recovering {
                self.broker.session_subscribed(&s.id, &ch, true);
            }
            let stale = self.channels.entry(Arc::clone(&ch)).or_default().insert(s);
            drop(stale);
            ev::subscriptions_changed(1.0);
            self.presence_subscribed(s, &ch);
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
        let removed = {
            let mut inner = s.inner.lock();
            let removed = inner.state.unsubscribe(channel);
            inner.left_a_channel |= removed;
            removed
        };
        if removed {
            self.broker.session_subscribed(&s.id, channel, false);
            self.remove_from_channel(channel, &s.id);
            ev::subscriptions_changed(-1.0);
            self.presence_unsubscribed(s, channel);
        }
        Ok(())
    }

    fn remove_from_channel(&self, channel: &str, session_id: &str) {
        let stale = self.channels.get_mut(channel).and_then(|mut subs| subs.remove(session_id));
        drop(stale);
        self.channels.remove_if(channel, |_, subs| subs.is_empty());
    }

    /// Drops the broadcast snapshot after a session came or went (outside
    /// the lock: releasing it is O(n)).
    fn sessions_changed(&self) {
        let stale = self.all_sessions.lock().take();
        drop(stale);
    }

    /// Who `channel` reaches now: one `Arc` clone under the shard's read
    /// lock, or a rebuild under its write lock after a (un)subscribe.
    pub(super) fn channel_members(&self, channel: &str) -> Option<Snapshot> {
        let cached = self.channels.get(channel)?.cached();
        cached.or_else(|| self.channels.get_mut(channel).map(|mut m| m.snapshot()))
    }

    /// Every session now, for broadcast (rebuilt after a session came or
    /// went).
    pub(super) fn every_session(&self) -> Snapshot {
        let mut all = self.all_sessions.lock();
        Arc::clone(all.get_or_insert_with(|| self.sessions.iter().map(|s| Arc::clone(s.value())).collect()))
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
                inner.connections = Vec::new();
                inner.detached_at_ms = Some(self.now_ms());
            }
        }
        self.release(&att.session.player_id, att.conn.transport);
        self.presence_links_changed(&att.session);
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
    pub(super) fn end_session(&self, s: &Arc<Session>, expired: bool, conn_reason: CloseReason) -> usize {
        self.end_session_with(s, expired, conn_reason, None)
    }

    /// [`Self::end_session`], first telling each connection `farewell` (a
    /// frame written before the close).
    fn end_session_with(
        &self,
        s: &Arc<Session>,
        expired: bool,
        conn_reason: CloseReason,
        farewell: Option<(&'static str, &bytes::Bytes)>,
    ) -> usize {
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
            let att = Attached { session: Arc::clone(s), conn: Arc::clone(c) };
            // A session ended by its client says goodbye after what is queued
            // (its `session_ended` answer); any other end is at once.
            let told = farewell.is_some_and(|(kind, json)| {
                c.push(crate::session::connection::Outbound::Frame { kind, json: json.clone() })
                    == crate::session::connection::Push::Queued
            });
            if conn_reason == CloseReason::SessionEnded || told {
                if c.close(conn_reason, true) {
                    ev::closing(&self.telemetry, att.ids(), conn_reason);
                }
                self.detach(&att, conn_reason.as_str());
            } else {
                self.force_close(&att, conn_reason);
            }
        }
        for ch in &subs {
            self.remove_from_channel(ch, &s.id);
            self.presence_unsubscribed(s, ch);
        }
        ev::subscriptions_changed(-(subs.len() as f64));
        self.sessions.remove(&*s.id);
        self.sessions_changed();
        if let Some(mut p) = self.players.get_mut(&*s.player_id) {
            p.sessions.retain(|x| !Arc::ptr_eq(x, s));
        }
        self.players.remove_if(&*s.player_id, |_, p| p.sessions.is_empty() && p.websocket + p.sse == 0);
        ev::session_ended(&s.id, &s.player_id, expired);
        self.broker.session_closed(&s.id);
        self.presence_changed(&s.player_id);
        let reason = match (expired, conn_reason) {
            (true, _) => LeftReason::Expired,
            (false, CloseReason::SessionEnded) => LeftReason::Ended,
            (false, _) => LeftReason::Disconnected,
        };
        self.player_left(s, reason);
        conns.len()
    }

    /// `end_session` from a client: the session ends now (no resume) and
    /// the game hears `player_left`.
    pub fn end_session_by_client(&self, s: &Arc<Session>) -> usize {
        self.end_session(s, false, CloseReason::SessionEnded)
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

    /// Backend `disconnect`: ends every session of the player (no resume).
    /// With a `reason`, each connection first gets a `disconnected` frame
    /// carrying it (`reconnect: false`).
    pub fn disconnect_player(&self, player_id: &str, reason: Option<&str>) -> Option<(usize, usize)> {
        let sessions = self.players.get(player_id).map(|p| p.sessions.clone())?;
        let frame = reason.map(|reason| {
            crate::session::protocol::to_json(&crate::session::protocol::Reply::Disconnected {
                reason,
                reconnect: false,
            })
        });
        let farewell = frame.as_ref().map(|json| ("disconnected", json));
        let mut conns = 0;
        for s in &sessions {
            conns += self.end_session_with(s, false, CloseReason::Disconnected, farewell);
        }
        Some((sessions.len(), conns))
    }

    pub(super) fn all_connections(&self) -> Vec<Attached> {
        let mut out = Vec::with_capacity(self.total_connections());
        for s in self.sessions.iter() {
            for c in &s.inner.lock().connections {
                out.push(Attached { session: Arc::clone(s.value()), conn: Arc::clone(c) });
            }
        }
        out
    }

    fn session_snapshot(&self, s: &Session) -> SessionSnapshot {
        let now = self.now_ms();
        let timeout = self.limits.heartbeat_timeout.as_millis() as u64;
        let inner = s.inner.lock();
        let connections = inner
            .connections
            .iter()
            .map(|c| ConnectionSnapshot {
                id: c.id.to_string(),
                transport: c.transport,
                connected_at: c.connected_wall(),
                age: c.connected_at.elapsed(),
                queue_depth: c.queue_len(),
                queue_capacity: c.capacity(),
                last_heartbeat_rtt_ms: c.last_rtt_ms(),
                messages_sent: c.messages_sent.load(Ordering::Relaxed),
                bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                healthy: c.is_healthy(now, timeout),
            })
            .collect();
        SessionSnapshot {
            id: s.id.to_string(),
            created_at: s.created,
            last_seq: inner.state.last_seq(),
            subscriptions: inner.state.subscriptions().map(|c| c.to_string()).collect(),
            detached: inner.detached_at_ms.map(|t| Duration::from_millis(now.saturating_sub(t))),
            node_id: None,
            connections,
        }
    }

    /// Sessions and connections of one player on this node; `None` when it
    /// has no session here.
    pub fn player_snapshot(&self, player_id: &str) -> Option<PlayerSnapshot> {
        let sessions = self.players.get(player_id).map(|p| p.sessions.clone())?;
        if sessions.is_empty() {
            return None;
        }
        Some(PlayerSnapshot {
            player_id: player_id.to_owned(),
            sessions: sessions.iter().map(|s| self.session_snapshot(s)).collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::{manager, player};
    use super::*;

    fn ids(snapshot: &Snapshot) -> Vec<&str> {
        let mut ids: Vec<&str> = snapshot.iter().map(|s| &*s.player_id).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn channel_snapshot_is_shared_until_a_change_and_held_ones_block_nothing() {
        let m = manager();
        let a = m.create_session(&player("a"));
        let b = m.create_session(&player("b"));
        assert!(m.channel_members("room:x").is_none());
        m.subscribe_checked(&a, "room:x", false).unwrap();
        m.subscribe_checked(&b, "room:x", false).unwrap();
        let held = m.channel_members("room:x").unwrap();
        assert_eq!(ids(&held), ["a", "b"]);
        assert!(Arc::ptr_eq(&held, &m.channel_members("room:x").unwrap()), "no change: no rebuild");
        // A fan-out holding `held` does not stop the channel changing.
        m.unsubscribe(&a, "room:x").unwrap();
        assert_eq!(ids(&m.channel_members("room:x").unwrap()), ["b"]);
        assert_eq!(ids(&held), ["a", "b"], "a taken snapshot never changes");
        m.subscribe_checked(&a, "room:x", false).unwrap();
        assert_eq!(ids(&m.channel_members("room:x").unwrap()), ["a", "b"]);
        m.unsubscribe(&a, "room:x").unwrap();
        m.unsubscribe(&b, "room:x").unwrap();
        assert!(m.channel_members("room:x").is_none(), "an empty channel is dropped");
        assert_eq!(ids(&m.channel_members("player:a").unwrap()), ["a"]);
    }

    #[test]
    fn broadcast_snapshot_follows_sessions_coming_and_going() {
        let m = manager();
        assert!(m.every_session().is_empty());
        let a = m.create_session(&player("a"));
        let held = m.every_session();
        assert_eq!(ids(&held), ["a"]);
        assert!(Arc::ptr_eq(&held, &m.every_session()));
        let b = m.create_session(&player("b"));
        assert_eq!(ids(&m.every_session()), ["a", "b"]);
        m.end_session(&a, false, CloseReason::Disconnected);
        assert_eq!(ids(&m.every_session()), ["b"]);
        m.end_session(&b, true, CloseReason::Disconnected);
        assert!(m.every_session().is_empty());
        assert!(m.channel_members("player:b").is_none(), "an ended session leaves its channels");
    }

    #[test]
    fn session_ids_carry_the_route() {
        let plain = session_id("");
        assert!(plain.starts_with("s_") && !plain.contains('-'), "{plain}");
        let tagged = session_id("b2");
        assert!(tagged.starts_with("s_b2-"), "{tagged}");
        assert_eq!(tagged.len(), plain.len() + 3);
    }
}
