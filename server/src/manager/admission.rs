//! Admission: the global and per-player connection limits, attaching a
//! connection to a new or resumed session, and the SSE uplink's rate limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{ConnectionManager, Session};
use crate::backend::EventKind;
use crate::session::channels;
use crate::session::connection::{Connection, Outbound};
use crate::session::identity::Identity;
use crate::session::position::{Position, StoredSession};
use crate::session::protocol::{self, ErrorCode, ProtocolError, Welcome};
use crate::session::state::{RateGate, RateVerdict, ResumePlan};
use crate::telemetry::{self as ev, Ids};
use tandem_protocol::Transport;

/// Why a connection could not attach. Domain reasons only: the HTTP edge
/// (`http_error`) picks the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the server is shutting down")]
    Draining,
    #[error("the server is at server.max_connections")]
    ServerFull,
    #[error("the player is at session.max_connections_per_player")]
    TooManyConnections,
    #[error("the session belongs to another player")]
    SessionForbidden,
    #[error("{0}")]
    Protocol(ProtocolError),
}

impl AttachError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Draining => ErrorCode::Draining,
            Self::ServerFull => ErrorCode::ServerFull,
            Self::TooManyConnections => ErrorCode::TooManyConnections,
            Self::SessionForbidden => ErrorCode::Forbidden,
            Self::Protocol(p) => p.code,
        }
    }
}

#[derive(Debug)]
pub struct AttachRequest {
    pub transport: Transport,
    pub session_id: Option<String>,
    pub last_seq: Option<u64>,
    pub channels: Vec<String>,
    /// Channels the game's connect hook added: valid names, but no claim
    /// or namespace check (the game granted them).
    pub granted: Vec<String>,
    pub started: Instant,
    /// Connections the player holds on other nodes (cluster brokers), so
    /// `session.max_connections_per_player` counts the whole cluster.
    pub remote_connections: usize,
    /// The cluster's record of the asked-for session, when another node
    /// held it: it is taken over here ([`ConnectionManager::catch_up`]).
    pub adopt: Option<StoredSession>,
    /// The client's last position in each channel (`positions`).
    pub positions: Vec<(String, Position)>,
}

/// A connection attached to its session; detach it when the link ends.
#[derive(Debug, Clone)]
pub struct Attached {
    pub session: Arc<Session>,
    pub conn: Arc<Connection>,
}

impl Attached {
    pub fn ids(&self) -> Ids<'_> {
        Ids {
            player_id: &self.session.player_id,
            session_id: &self.session.id,
            connection_id: &self.conn.id,
            transport: self.conn.transport,
        }
    }
}

/// Whether one more connection may come in. `total` and `player` are the
/// counts before it.
pub fn admit(
    draining: bool,
    total: usize,
    max_total: usize,
    player: usize,
    max_per_player: usize,
) -> Result<(), AttachError> {
    if draining {
        Err(AttachError::Draining)
    } else if total >= max_total {
        Err(AttachError::ServerFull)
    } else if player >= max_per_player {
        Err(AttachError::TooManyConnections)
    } else {
        Ok(())
    }
}

/// What the welcome says and what is replayed: `(resumed, resync_required,
/// replay)`. A brand-new session cannot serve a resume (the asked-for
/// session is gone, here or on its node), so it says `resync_required`.
pub fn welcome_plan<T>(
    fresh: bool,
    asked_session: bool,
    last_seq: Option<u64>,
    plan: impl FnOnce(Option<u64>) -> ResumePlan<T>,
) -> (bool, bool, Vec<(u64, T)>) {
    if fresh {
        return (false, asked_session || last_seq.is_some_and(|l| l > 0), Vec::new());
    }
    match plan(last_seq) {
        ResumePlan::Join => (false, false, Vec::new()),
        ResumePlan::Replay(items) => (true, false, items),
        ResumePlan::Gap => (false, true, Vec::new()),
    }
}

pub(super) fn too_many_subs(max: usize) -> ProtocolError {
    ProtocolError::new(ErrorCode::TooManySubscriptions, format!("at most {max} subscriptions per session"))
}

impl ConnectionManager {
    /// Attaches a new connection of `who`, creating or resuming its session.
    pub fn attach(&self, who: &Identity, req: AttachRequest) -> Result<Attached, AttachError> {
        for ch in &req.channels {
            channels::check_subscribe(who, ch).map_err(AttachError::Protocol)?;
        }
        for ch in &req.granted {
            channels::namespace(ch).map_err(AttachError::Protocol)?;
        }
        if req.channels.len() + req.granted.len() > self.limits.max_subscriptions {
            return Err(AttachError::Protocol(too_many_subs(self.limits.max_subscriptions)));
        }
        // Every subscription, the personal channel and `broadcast`.
        if req.positions.len() > self.limits.max_subscriptions + 2 {
            return Err(AttachError::Protocol(ProtocolError::new(
                ErrorCode::InvalidMessage,
                "more positions than a session has channels",
            )));
        }
        self.reserve(who, req.transport, req.remote_connections)?;
        match self.attach_reserved(who, &req) {
            Ok(att) => Ok(att),
            Err(e) => {
                self.release(&who.player_id, req.transport);
                Err(e)
            }
        }
    }

    /// Counts the connection against the global and per-player limits.
    fn reserve(&self, who: &Identity, t: Transport, remote: usize) -> Result<(), AttachError> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        let undo = || self.connection_gone();
        if let Err(e) = admit(self.is_draining(), total, self.limits.max_connections, 0, usize::MAX) {
            undo();
            return Err(e);
        }
        let mut p = self.players.entry(Arc::from(who.player_id.as_str())).or_default();
        let player = p.websocket + p.sse + remote;
        if let Err(e) = admit(false, 0, 1, player, self.limits.max_connections_per_player) {
            drop(p);
            undo();
            return Err(e);
        }
        let before = ev::player_mode(p.websocket, p.sse);
        *p.count(t) += 1;
        ev::player_mode_changed(before, ev::player_mode(p.websocket, p.sse));
        Ok(())
    }

    pub(super) fn release(&self, player_id: &str, t: Transport) {
        self.connection_gone();
        let remove = match self.players.get_mut(player_id) {
            Some(mut p) => {
                let before = ev::player_mode(p.websocket, p.sse);
                let n = p.count(t);
                *n = n.saturating_sub(1);
                ev::player_mode_changed(before, ev::player_mode(p.websocket, p.sse));
                p.sessions.is_empty() && p.websocket + p.sse == 0
            }
            None => false,
        };
        if remove {
            self.players.remove_if(player_id, |_, p| p.sessions.is_empty() && p.websocket + p.sse == 0);
        }
        self.presence_changed(player_id);
    }

    fn attach_reserved(&self, who: &Identity, req: &AttachRequest) -> Result<Attached, AttachError> {
        let existing = match &req.session_id {
            Some(id) => match self.sessions.get(id.as_str()).map(|s| Arc::clone(&s)) {
                Some(s) if *s.player_id != *who.player_id => return Err(AttachError::SessionForbidden),
                other => other,
            },
            None => None,
        };
        ev::connection_attempt(
            req.transport,
            &who.player_id,
            req.session_id.as_deref(),
            self.players.get(who.player_id.as_str()).map_or(0, |p| p.websocket + p.sse - 1),
        );
        let conn = Arc::new(Connection::new(
            protocol::random_id('c'),
            req.transport,
            self.limits.outbound_queue_size,
            self.now_ms(),
        ));
        // A session can expire between lookup and lock; then start afresh
        // (at most twice: a fresh session cannot expire while we hold it).
        let mut session = existing;
        let mut adopt = req.adopt.as_ref().filter(|_| session.is_none());
        for _ in 0..2 {
            let (s, fresh) = match (session.take(), adopt.take(), &req.session_id) {
                (Some(s), _, _) => (s, false),
                (None, Some(stored), Some(id)) if *stored.player_id == *who.player_id => {
                    let asked: Vec<String> = req.channels.iter().chain(&req.granted).cloned().collect();
                    let last_seq = req.last_seq.unwrap_or(0);
                    (self.adopt_session(who, id, last_seq, stored, &req.positions, &asked), false)
                }
                (None, Some(_), Some(_)) => return Err(AttachError::SessionForbidden),
                _ => (self.create_session(who), true),
            };
            for ch in req.channels.iter().chain(&req.granted) {
                self.subscribe_checked(&s, ch, false).map_err(AttachError::Protocol)?;
            }
            if let Some(att) = self.link(req, &s, fresh, &conn) {
                self.presence_changed(&s.player_id);
                self.presence_links_changed(&s);
                return Ok(att);
            }
        }
        Err(AttachError::Protocol(ProtocolError::new(ErrorCode::InvalidMessage, "session expired")))
    }

    /// Queues the welcome and any replay, then links `conn` into `s`.
    fn link(
        &self,
        req: &AttachRequest,
        s: &Arc<Session>,
        fresh: bool,
        conn: &Arc<Connection>,
    ) -> Option<Attached> {
        let mut inner = s.inner.lock();
        if inner.closed {
            return None;
        }
        // A session taken over sends its welcome once it caught up.
        let catching_up = inner.taken_over.as_ref().is_some_and(|t| t.is_catching_up());
        let (resumed, resync_required, replay) = if catching_up {
            (false, false, Vec::new())
        } else {
            welcome_plan(fresh, req.session_id.is_some(), req.last_seq, |l| inner.state.plan_resume(l))
        };
        let welcome = Welcome {
            kind: "welcome",
            session_id: &s.id,
            connection_id: &conn.id,
            player_id: &s.player_id,
            transport: req.transport,
            resumed,
            resync_required,
            last_seq: inner.state.last_seq(),
            heartbeat_interval_ms: self.limits.heartbeat_interval.as_millis() as u64,
            channels: inner.state.subscriptions().map(|c| &**c).collect(),
        };
        if !catching_up {
            conn.push_unbounded(Outbound::Frame { kind: "welcome", json: protocol::to_json(&welcome) });
        }
        let replayed = replay.len();
        for (seq, publication) in replay {
            conn.push_unbounded(Outbound::Delivery { seq, publication });
        }
        let came_back = !fresh && inner.connections.is_empty();
        // Most sessions hold one connection: no room for four.
        inner.connections.reserve_exact(1);
        inner.connections.push(Arc::clone(conn));
        inner.detached_at_ms = None;
        drop(inner);

        self.touch();
        // The player's connections, this one included (counted at reserve).
        let (ws, sse) = self.players.get(&*s.player_id).map_or((0, 0), |p| (p.websocket, p.sse));
        let (ws_before, sse_before) = match req.transport {
            Transport::WebSocket => (ws.saturating_sub(1), sse),
            Transport::Sse => (ws, sse.saturating_sub(1)),
        };
        let att = Attached { session: Arc::clone(s), conn: Arc::clone(conn) };
        if fresh {
            self.session_event(EventKind::SessionStarted, s);
        } else if came_back {
            self.session_event(EventKind::SessionResumed, s);
        }
        ev::Connected {
            ids: att.ids(),
            establishment: req.started.elapsed(),
            is_dual_connection: ws > 0 && sse > 0,
            existing_websocket_connections: ws_before,
            existing_sse_connections: sse_before,
            total_connections: self.total_connections(),
            resumed,
            resync_required,
            replayed,
        }
        .emit(&self.telemetry);
        Some(att)
    }

    /// Rate limit for `POST /sessions/{id}/messages`: the same rule as a
    /// WebSocket's messages, kept per session.
    pub fn check_post_rate(&self, s: &Session) -> RateVerdict {
        let now = self.now_ms();
        let mut inner = s.inner.lock();
        let limits = &self.limits;
        let gate = inner.post_limit.get_or_insert_with(|| {
            Box::new(RateGate::new(limits.inbound_rate_per_second, limits.inbound_burst, now))
        });
        gate.check(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn admission_checks_draining_then_server_then_player() {
        assert_eq!(admit(false, 0, 10, 0, 4), Ok(()));
        assert_eq!(admit(false, 9, 10, 3, 4), Ok(()));
        assert_eq!(admit(true, 0, 10, 0, 4), Err(AttachError::Draining));
        assert_eq!(admit(false, 10, 10, 0, 4), Err(AttachError::ServerFull));
        assert_eq!(admit(false, 10, 10, 4, 4), Err(AttachError::ServerFull), "server first");
        assert_eq!(admit(false, 0, 10, 4, 4), Err(AttachError::TooManyConnections));
    }

    #[test]
    fn welcome_plan_for_fresh_and_existing_sessions() {
        let never = |_: Option<u64>| -> ResumePlan<u8> { unreachable!("a fresh session has no plan") };
        assert_eq!(welcome_plan(true, false, None, never), (false, false, vec![]));
        assert_eq!(welcome_plan(true, true, None, never), (false, true, vec![]), "asked for a gone session");
        assert_eq!(welcome_plan(true, false, Some(3), never), (false, true, vec![]), "resume on a new one");
        assert_eq!(welcome_plan(true, false, Some(0), never), (false, false, vec![]));

        let plan = |items: ResumePlan<u8>| move |_: Option<u64>| items;
        assert_eq!(welcome_plan(false, true, None, plan(ResumePlan::Join)), (false, false, vec![]));
        assert_eq!(
            welcome_plan(false, true, Some(1), plan(ResumePlan::Replay(vec![(2, 7)]))),
            (true, false, vec![(2, 7)])
        );
        assert_eq!(welcome_plan(false, true, Some(1), plan(ResumePlan::Gap)), (false, true, vec![]));
    }
}
