//! Fan-out. A publication is accepted once (id assigned, payload serialized
//! once), handed to the [`Broker`](crate::broker::Broker) for the other
//! nodes, then fanned out to this node's sessions; publications arriving
//! from other nodes take only the second step ([`ConnectionManager::fan_out_local`]).

use std::sync::Arc;

use serde_json::value::RawValue;

use super::recovery::Admit;
use super::{Attached, ConnectionManager, Session};
use crate::broker::{Ack, Envelope, Scope};
use crate::config::DualDelivery;
use crate::session::channels::BROADCAST_CHANNEL;
use crate::session::connection::{CloseReason, Outbound, Push};
use crate::session::protocol::{ErrorCode, ProtocolError, Publication};
use crate::telemetry as ev;
use tandem_protocol::Transport;

/// What a publication reached on this node.
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
    /// Its id (the backend's) was delivered here already: not again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// An accepted publication: this node's fan-out, and the broker's promise
/// that the other nodes got it (`None`: there are no other nodes).
#[derive(Debug)]
pub struct Published {
    pub fanout: Fanout,
    pub ack: Option<Ack>,
}

/// Which of a session's connections get a delivery: `None` = all of them,
/// `Some(t)` = only those of transport `t` (`dual_delivery = "preferred"`:
/// WebSocket when the session has one, else SSE).
pub fn delivery_target(
    mode: DualDelivery,
    mut transports: impl Iterator<Item = Transport>,
) -> Option<Transport> {
    match mode {
        DualDelivery::All => None,
        DualDelivery::Preferred => Some(if transports.any(|t| t == Transport::WebSocket) {
            Transport::WebSocket
        } else {
            Transport::Sse
        }),
    }
}

impl ConnectionManager {
    /// Publishes to every session subscribed to `channel`, on every node.
    /// Refused (`draining`, `broker_unavailable`) means delivered nowhere.
    /// With an `id` (the backend's), each node delivers it at most once
    /// within [`crate::session::recent_ids::WINDOW_MS`]: a retry cannot
    /// duplicate.
    pub fn publish(
        &self,
        channel: &str,
        event: &str,
        data: &RawValue,
        source: &'static str,
        id: Option<&str>,
    ) -> Result<Published, ProtocolError> {
        self.accept(Scope::Channel, channel, event, data, source, id)
    }

    /// Publishes to every live session (channel `broadcast`), on every node.
    pub fn broadcast(
        &self,
        event: &str,
        data: &RawValue,
        id: Option<&str>,
    ) -> Result<Published, ProtocolError> {
        self.accept(Scope::Broadcast, BROADCAST_CHANNEL, event, data, "broadcast", id)
    }

    /// Whether a keyed publication is new here (and now remembered).
    fn first_delivery(&self, envelope: &Envelope) -> bool {
        !envelope.keyed || self.recent_ids.lock().first(&envelope.publication.id, self.now_ms())
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

    fn accept(
        &self,
        scope: Scope,
        channel: &str,
        event: &str,
        data: &RawValue,
        source: &'static str,
        id: Option<&str>,
    ) -> Result<Published, ProtocolError> {
        self.accepting()?;
        let keyed = id.is_some();
        let id = id.map_or_else(|| self.ids.next('m'), str::to_owned);
        let publication = Arc::new(Publication::new(id, Arc::from(channel), event, data));
        let envelope = Envelope { scope, publication, keyed };
        // Sent to the other nodes even when this one had it: a retry after
        // a 503 is how the nodes that missed it get it.
        let own = self.broker.delivers_own();
        // A keyed publication accepted here is remembered before it is
        // forwarded, so that a retry while it travels is a duplicate.
        let first = if own && keyed {
            self.recent_ids.lock().claim(&envelope.publication.id, self.now_ms())
        } else {
            own || self.first_delivery(&envelope)
        };
        let ack = self.broker.forward(&envelope).map_err(|e| {
            ev::broker_refused(source, &e);
            ProtocolError::new(ErrorCode::BrokerUnavailable, e.to_string())
        })?;
        let fanout = match (first, own) {
            (true, false) => self.fan_out_local(&envelope),
            // Delivered here when the broker hands it back.
            (true, true) => Fanout { id: envelope.publication.id.to_string(), ..Fanout::default() },
            (false, _) => {
                Fanout { id: envelope.publication.id.to_string(), duplicate: true, ..Fanout::default() }
            }
        };
        ev::published(source, channel, fanout.recipients, fanout.delivered_connections);
        Ok(Published { fanout, ack })
    }

    /// Delivers an accepted publication to this node's sessions. The
    /// recipients are a snapshot: no registry lock is held while it
    /// delivers, so a (un)subscribe or a session's end never waits for a
    /// fan-out, whatever its length.
    pub fn fan_out_local(&self, envelope: &Envelope) -> Fanout {
        let publication = &envelope.publication;
        let mut out = Fanout { id: publication.id.to_string(), ..Fanout::default() };
        let mut slow = Vec::new();
        let (recipients, channel) = match envelope.scope {
            Scope::Channel => (self.channel_members(&publication.channel), Some(&*publication.channel)),
            Scope::Broadcast => (Some(self.every_session()), None),
        };
        for s in recipients.iter().flat_map(|r| r.iter()) {
            self.deliver(s, publication, channel, &mut out, &mut slow);
        }
        for att in slow {
            self.force_close(&att, CloseReason::SlowConsumer);
        }
        out
    }

    /// Assigns `s`'s next seq to `publication` and hands it to the session's
    /// live connections. Never waits: a full queue closes that connection.
    /// With `channel`, a session that left it after the snapshot was taken
    /// is skipped: nothing arrives after an acknowledged `unsubscribe`
    /// (checked only for sessions that ever left a channel: the lookup
    /// touches cold memory, a few percent of a fan-out's CPU).
    fn deliver(
        &self,
        s: &Arc<Session>,
        publication: &Arc<Publication>,
        channel: Option<&str>,
        out: &mut Fanout,
        slow: &mut Vec<Attached>,
    ) {
        let mut inner = s.inner.lock();
        let left = |c: &str| inner.left_a_channel && !inner.state.is_subscribed(c);
        if inner.closed || channel.is_some_and(left) {
            return;
        }
        if let Some(t) = &mut inner.taken_over {
            let (admit, done) = t.admit(publication, self.limits.outbound_queue_size);
            if done {
                inner.taken_over = None;
            }
            match admit {
                // Held until the session's history is read: it follows the replay.
                Admit::Hold => {
                    out.recipients += 1;
                    return;
                }
                Admit::Drop => return,
                Admit::Deliver => {}
            }
        }
        let seq = inner.state.record(Arc::clone(publication));
        out.recipients += 1;
        let only = delivery_target(self.limits.dual_delivery, inner.connections.iter().map(|c| c.transport));
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

    /// Tells every local session it may have missed publications (the
    /// broker lost its link to the other nodes): a `resync` frame on each
    /// live connection. Returns how many connections were told.
    pub fn resync_all(&self, reason: &'static str) -> usize {
        // What other nodes said of presence may have been missed too.
        self.presence_forget_elsewhere();
        let frame = crate::session::protocol::to_json(&crate::session::protocol::Reply::Resync { reason });
        let mut told = 0;
        for att in self.all_connections() {
            match att.conn.push(Outbound::Frame { kind: "resync", json: frame.clone() }) {
                Push::Queued => told += 1,
                Push::Full => self.force_close(&att, CloseReason::SlowConsumer),
                Push::Closed => {}
            }
        }
        told
    }
}

impl crate::broker::LocalNode for ConnectionManager {
    fn fan_out_local(&self, envelope: &Envelope) {
        if self.first_delivery(envelope) {
            ConnectionManager::fan_out_local(self, envelope);
        }
    }
    fn resync_all(&self, reason: &'static str) -> usize {
        ConnectionManager::resync_all(self, reason)
    }
    fn overview(&self) -> tandem_monitoring::ConnectionOverview {
        ConnectionManager::overview(self)
    }
    fn total_connections(&self) -> usize {
        ConnectionManager::total_connections(self)
    }
    fn local_players(&self) -> Vec<String> {
        ConnectionManager::local_players(self)
    }
    fn player_snapshot(&self, player_id: &str) -> Option<crate::session::snapshot::PlayerSnapshot> {
        ConnectionManager::player_snapshot(self, player_id)
    }
    fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.telemetry
    }
    fn disconnect_player(&self, player_id: &str, reason: Option<&str>) {
        ConnectionManager::disconnect_player(self, player_id, reason);
    }
    fn apply_revocation(&self, revocation: &crate::session::revocation::Revocation) {
        self.revoke(revocation, "broker");
    }
    fn local_sessions(&self) -> Vec<(String, String)> {
        self.sessions.iter().map(|s| (s.id.to_string(), s.player_id.to_string())).collect()
    }
    fn sessions_lost(&self, node: &str, sessions: Vec<(String, String)>, after: std::time::Duration) {
        ConnectionManager::sessions_lost(self, node, sessions, after);
    }
    fn session_moved(&self, session_id: &str, node: &str) {
        ConnectionManager::session_moved(self, session_id, node);
    }
    fn uplink(
        &self,
        origin: &str,
        request: u64,
        session_id: String,
        who: crate::session::identity::Identity,
        body: bytes::Bytes,
    ) {
        self.forwarded_uplink(origin, request, session_id, who, body);
    }
    fn presence_event(
        &self,
        origin: &str,
        change: crate::session::channel_presence::Change,
        channel: &str,
        player_id: &str,
    ) {
        self.presence_from_node(origin, change, channel, player_id);
    }
    fn resume_window(&self) -> std::time::Duration {
        self.limits.resume_window
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::{manager, player};
    use super::*;

    #[test]
    fn a_session_that_left_after_the_snapshot_was_taken_gets_nothing() {
        let m = manager();
        let a = m.create_session(&player("a"));
        m.subscribe_checked(&a, "room:x", false).unwrap();
        let snapshot = m.channel_members("room:x").unwrap();
        m.unsubscribe(&a, "room:x").unwrap();
        let data = RawValue::from_string("1".to_owned()).unwrap();
        let p = Arc::new(Publication::new("m_1".to_owned(), Arc::from("room:x"), "e", &data));
        let (mut out, mut slow) = (Fanout::default(), Vec::new());
        for s in snapshot.iter() {
            m.deliver(s, &p, Some("room:x"), &mut out, &mut slow);
        }
        assert_eq!(out.recipients, 0);
        m.deliver(&a, &p, None, &mut out, &mut slow);
        assert_eq!(out.recipients, 1, "a broadcast reaches every session");
    }

    #[test]
    fn dual_delivery_targets() {
        use Transport::{Sse, WebSocket};
        assert_eq!(delivery_target(DualDelivery::All, [WebSocket, Sse].into_iter()), None);
        assert_eq!(delivery_target(DualDelivery::Preferred, [Sse, WebSocket].into_iter()), Some(WebSocket));
        assert_eq!(delivery_target(DualDelivery::Preferred, [Sse].into_iter()), Some(Sse));
        assert_eq!(delivery_target(DualDelivery::Preferred, std::iter::empty()), Some(Sse));
    }
}
