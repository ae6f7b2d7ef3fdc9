//! Lifecycle events for the game (`backend.events_url`): when a session
//! starts, comes back after having no connection, and ends. With a cluster
//! broker, a session's `player_left` is claimed first, so exactly one node
//! sends it.

use std::sync::Arc;
use std::time::Duration;

use super::{ConnectionManager, Session};
use crate::backend::{EventKind, LeftReason, LifecycleEvent};

impl ConnectionManager {
    /// `session_started` or `session_resumed`.
    pub(super) fn session_event(&self, kind: EventKind, s: &Session) {
        if self.backend.events.enabled() {
            self.backend.events.emit(LifecycleEvent::new(kind, &s.player_id, &s.id, None));
        }
    }

    /// `player_left`: the session ended for `reason`.
    pub(super) fn player_left(&self, s: &Session, reason: LeftReason) {
        self.session_left(&s.id, &s.player_id, reason);
    }

    /// Sessions a dead node held (found by the cluster broker): their
    /// `player_left` goes out once their resume window has passed, `after`
    /// from now.
    pub fn sessions_lost(&self, node: &str, sessions: Vec<(String, String)>, after: Duration) {
        if !self.backend.events.enabled() || sessions.is_empty() {
            return;
        }
        let node = node.to_owned();
        let (events, broker) = (Arc::clone(&self.backend.events), Arc::clone(&self.broker));
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            for (session_id, player_id) in sessions {
                let event = LifecycleEvent::new(
                    EventKind::PlayerLeft,
                    &player_id,
                    &session_id,
                    Some(LeftReason::NodeLost),
                );
                let won = match broker.claim_departure(&session_id, Some(&node)) {
                    Some(claim) => claim.await,
                    None => true,
                };
                if won {
                    events.emit(event);
                }
            }
        });
    }

    /// `player_left` for a session by id (also one another node held).
    pub fn session_left(&self, session_id: &str, player_id: &str, reason: LeftReason) {
        let events = &self.backend.events;
        if !events.enabled() {
            return;
        }
        let event = LifecycleEvent::new(EventKind::PlayerLeft, player_id, session_id, Some(reason));
        match self.broker.claim_departure(session_id, None) {
            None => {
                events.emit(event);
            }
            Some(claim) => {
                let events = Arc::clone(events);
                tokio::spawn(async move {
                    if claim.await {
                        events.emit(event);
                    }
                });
            }
        }
    }
}
