//! Client tokens on live connections: the expiry timeline (warn, then
//! close), `refresh`, and revocations.
//!
//! The timeline is plain code over epoch milliseconds ([`expiry_action`]);
//! the heartbeat sweep drives it. Token times are wall-clock (`exp` is a
//! Unix time), so the glue reads the wall clock, not the manager's
//! monotonic one.

use std::sync::Arc;

use super::{Attached, ConnectionManager, Session, wall_ms};
use crate::session::channels;
use crate::session::connection::{CloseReason, Connection, Outbound, Push};
use crate::session::identity::{Identity, TokenInfo};
use crate::session::protocol::{self, Reply};
use crate::session::revocation::Revocation;
use crate::telemetry as ev;

/// When a connection hears its token is expiring, and how long past `exp`
/// it may stay without a `refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    pub warning_ms: u64,
    pub grace_ms: u64,
}

impl ExpiryPolicy {
    /// When `token_expiring` is due for a token expiring at `exp` (Unix s).
    pub fn warn_at_ms(&self, exp: u64) -> u64 {
        exp.saturating_mul(1000).saturating_sub(self.warning_ms)
    }

    /// When a connection still holding that token is closed.
    pub fn close_at_ms(&self, exp: u64) -> u64 {
        exp.saturating_mul(1000).saturating_add(self.grace_ms)
    }
}

/// What the sweep does to a connection holding a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryAction {
    Nothing,
    /// Send `token_expiring` (once per token).
    Warn,
    /// Close with 4003 `token_expired`.
    Close,
}

/// The expiry decision at `now_ms` (epoch) for a token expiring at `exp`
/// (Unix seconds), `warned` once `token_expiring` was sent for it.
pub fn expiry_action(now_ms: u64, exp: u64, warned: bool, policy: ExpiryPolicy) -> ExpiryAction {
    if now_ms >= policy.close_at_ms(exp) {
        ExpiryAction::Close
    } else if !warned && now_ms >= policy.warn_at_ms(exp) {
        ExpiryAction::Warn
    } else {
        ExpiryAction::Nothing
    }
}

impl ConnectionManager {
    /// Sends `token_expiring` to connections whose token is about to
    /// expire and closes those past `exp` plus the grace; returns how many
    /// it closed. Part of the heartbeat sweep.
    pub fn token_sweep(&self) -> usize {
        self.token_sweep_at(wall_ms())
    }

    /// [`Self::token_sweep`] at `now_ms` (epoch).
    pub fn token_sweep_at(&self, now_ms: u64) -> usize {
        // Revocations whose tokens have all expired are forgotten.
        self.revocations.lock().purge(now_ms);
        let policy = self.limits.token_expiry;
        let mut closed = 0;
        for att in self.all_connections() {
            let t = &att.conn.token;
            let Some(exp) = t.exp() else { continue };
            match expiry_action(now_ms, exp, t.warned(), policy) {
                ExpiryAction::Nothing => {}
                ExpiryAction::Warn => {
                    if t.mark_warned() {
                        let expires_at = exp.saturating_mul(1000);
                        ev::token_expiring(att.ids(), expires_at);
                        self.send(
                            &att,
                            "token_expiring",
                            protocol::to_json(&Reply::TokenExpiring { expires_at }),
                        );
                    }
                }
                ExpiryAction::Close => {
                    self.force_close(&att, CloseReason::TokenExpired);
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Records the token a new connection holds (nothing in development
    /// mode), for the expiry sweep and revocations.
    pub fn hold_token(&self, att: &Attached, token: Option<&TokenInfo>) {
        if let Some(t) = token {
            att.conn.token.set(t.exp, t.iat, t.jti.as_deref());
        }
    }

    /// Whether this node knows `token` of `player_id` to be revoked.
    pub fn is_revoked(&self, player_id: &str, token: &TokenInfo) -> bool {
        self.revocations.lock().is_revoked(player_id, token.jti.as_deref(), token.iat, wall_ms())
    }

    /// A `refresh` that passed the token checks: `conns` (the WebSocket
    /// that sent it, or the session's SSE streams) now hold `token`, and
    /// the session's subscriptions `who` (the new claims) no longer allows
    /// end, each with `unsubscribed` (`reason: claims`) on every
    /// connection of the session. Returns the `refreshed` frame.
    pub fn refreshed(
        &self,
        session: &Arc<Session>,
        conns: &[Arc<Connection>],
        who: &Identity,
        token: &TokenInfo,
    ) -> (usize, bytes::Bytes) {
        for c in conns {
            c.token.set(token.exp, token.iat, token.jti.as_deref());
        }
        let personal = channels::personal_channel(&session.player_id);
        let ended: Vec<String> = session
            .inner
            .lock()
            .state
            .subscriptions()
            .filter(|ch| ***ch != *personal && channels::check_subscribe(who, ch).is_err())
            .map(|ch| ch.to_string())
            .collect();
        for ch in &ended {
            if self.unsubscribe(session, ch).is_ok() {
                let frame = protocol::to_json(&Reply::Unsubscribed { channel: ch, reason: Some("claims") });
                let all: Vec<Arc<Connection>> = session.inner.lock().connections.clone();
                for c in all {
                    let att = Attached { session: Arc::clone(session), conn: c };
                    self.send(&att, "unsubscribed", frame.clone());
                }
            }
        }
        let expires_at = token.exp.saturating_mul(1000);
        (ended.len(), protocol::to_json(&Reply::Refreshed { expires_at }))
    }

    /// Applies a revocation on this node: refused from now on at connect
    /// and refresh, and the live connections holding a token it names
    /// close with 4004 `token_revoked`. Returns how many closed.
    pub fn revoke(&self, r: &Revocation, origin: &'static str) -> usize {
        let now = wall_ms();
        if self.revocations.lock().insert(r, now) {
            ev::revocation_evicted(self.limits.max_revocations);
        }
        let mut closed = 0;
        for att in self.all_connections() {
            let t = &att.conn.token;
            if t.exp().is_none() {
                continue;
            }
            let hit = match r {
                Revocation::Jti { jti, .. } => t.has_jti(jti),
                Revocation::Player { .. } => r.covers(&att.session.player_id, None, t.iat()),
            };
            if hit {
                self.force_close(&att, CloseReason::TokenRevoked);
                closed += 1;
            }
        }
        let kind = match r {
            Revocation::Jti { .. } => "jti",
            Revocation::Player { .. } => "player",
        };
        ev::token_revoked(kind, origin, closed);
        closed
    }

    /// Queues a frame on one connection; a full queue closes it as a slow
    /// consumer.
    fn send(&self, att: &Attached, kind: &'static str, json: bytes::Bytes) {
        if att.conn.push(Outbound::Frame { kind, json }) == Push::Full {
            self.force_close(att, CloseReason::SlowConsumer);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use tandem_protocol::Transport;

    use super::*;
    use crate::manager::AttachRequest;
    use crate::manager::test_support::{manager, player};
    use crate::session::connection::Next;

    const POLICY: ExpiryPolicy = ExpiryPolicy { warning_ms: 60_000, grace_ms: 10_000 };

    #[test]
    fn the_timeline_warns_ahead_and_closes_after_the_grace() {
        use ExpiryAction::{Close, Nothing, Warn};
        let exp = 1_000; // Unix s
        assert_eq!(POLICY.warn_at_ms(exp), 940_000);
        assert_eq!(POLICY.close_at_ms(exp), 1_010_000);
        assert_eq!(expiry_action(939_999, exp, false, POLICY), Nothing);
        assert_eq!(expiry_action(940_000, exp, false, POLICY), Warn);
        assert_eq!(expiry_action(1_000_000, exp, true, POLICY), Nothing, "warned once");
        assert_eq!(expiry_action(1_009_999, exp, true, POLICY), Nothing, "inside the grace");
        assert_eq!(expiry_action(1_010_000, exp, true, POLICY), Close);
        assert_eq!(expiry_action(1_010_000, exp, false, POLICY), Close, "never warned: closes all the same");
        // A warning longer than the token's life is due at once.
        assert_eq!(expiry_action(0, 30, false, POLICY), Warn);
        let none = ExpiryPolicy { warning_ms: 0, grace_ms: 0 };
        assert_eq!(expiry_action(999, 1, false, none), Nothing);
        assert_eq!(expiry_action(1_000, 1, false, none), Close);
        assert_eq!(POLICY.close_at_ms(u64::MAX), u64::MAX, "saturates");
    }

    fn attach(m: &ConnectionManager, who: &Identity, channels: Vec<String>) -> Attached {
        let req = AttachRequest {
            transport: Transport::WebSocket,
            session_id: None,
            last_seq: None,
            channels,
            granted: Vec::new(),
            started: Instant::now(),
            remote_connections: 0,
            adopt: None,
            positions: Vec::new(),
        };
        let att = m.attach(who, req).unwrap();
        while let Next::Send(_) = att.conn.next() {}
        att
    }

    fn frames(att: &Attached) -> Vec<String> {
        let mut out = Vec::new();
        while let Next::Send(Outbound::Frame { json, .. }) = att.conn.next() {
            out.push(String::from_utf8(json.to_vec()).unwrap());
        }
        out
    }

    fn token(exp: u64, iat: u64, jti: &str) -> TokenInfo {
        TokenInfo { exp, iat, jti: Some(jti.into()) }
    }

    #[test]
    fn the_sweep_warns_once_then_closes() {
        let m = manager();
        let att = attach(&m, &player("alice"), Vec::new());
        let dev = attach(&m, &player("bob"), Vec::new());
        m.hold_token(&att, Some(&token(1_000, 900, "j")));
        m.hold_token(&dev, None);
        let policy = m.limits().token_expiry;
        assert_eq!(m.token_sweep_at(policy.warn_at_ms(1_000) - 1), 0);
        assert!(frames(&att).is_empty());
        assert_eq!(m.token_sweep_at(policy.warn_at_ms(1_000)), 0);
        assert_eq!(frames(&att), [r#"{"type":"token_expiring","expires_at":1000000}"#]);
        assert_eq!(m.token_sweep_at(policy.warn_at_ms(1_000) + 1), 0);
        assert!(frames(&att).is_empty(), "once");
        assert_eq!(m.token_sweep_at(policy.close_at_ms(1_000)), 1);
        assert_eq!(att.conn.closing(), Some(CloseReason::TokenExpired));
        assert_eq!(dev.conn.closing(), None, "no token, no expiry");
    }

    #[test]
    fn a_refresh_moves_the_timeline_and_narrowing_claims_ends_subscriptions() {
        let m = manager();
        let wide = Identity { channels: Some(vec!["room".into(), "party".into()]), ..player("alice") };
        let att = attach(&m, &wide, vec!["room:a".into(), "party:b".into()]);
        m.hold_token(&att, Some(&token(1_000, 900, "j1")));
        let policy = m.limits().token_expiry;
        m.token_sweep_at(policy.warn_at_ms(1_000));
        assert_eq!(frames(&att).len(), 1, "warned");
        let narrow = Identity { channels: Some(vec!["party".into()]), ..player("alice") };
        let (ended, reply) =
            m.refreshed(&att.session, std::slice::from_ref(&att.conn), &narrow, &token(2_000, 990, "j2"));
        assert_eq!(ended, 1);
        assert_eq!(&reply[..], br#"{"type":"refreshed","expires_at":2000000}"#);
        assert_eq!(frames(&att), [r#"{"type":"unsubscribed","channel":"room:a","reason":"claims"}"#]);
        let subs: Vec<String> =
            att.session.inner.lock().state.subscriptions().map(|c| c.to_string()).collect();
        assert!(subs.contains(&"party:b".to_owned()) && subs.contains(&"player:alice".to_owned()));
        assert!(!subs.contains(&"room:a".to_owned()));
        assert_eq!(m.token_sweep_at(policy.close_at_ms(1_000)), 0, "the old exp no longer counts");
        assert_eq!(m.token_sweep_at(policy.warn_at_ms(2_000)), 0);
        assert_eq!(frames(&att).len(), 1, "warned again for the new token");
    }

    #[test]
    fn revocations_refuse_and_close_what_they_name() {
        let m = manager();
        let a = attach(&m, &player("alice"), Vec::new());
        let b = attach(&m, &player("bob"), Vec::new());
        let now_s = wall_ms() / 1000;
        m.hold_token(&a, Some(&token(now_s + 600, now_s - 10, "ja")));
        m.hold_token(&b, Some(&token(now_s + 600, now_s - 10, "jb")));
        let until_ms = (now_s + 600) * 1000;
        assert_eq!(m.revoke(&Revocation::Jti { jti: "ja".into(), until_ms }, "api"), 1);
        assert_eq!(a.conn.closing(), Some(CloseReason::TokenRevoked));
        assert_eq!(b.conn.closing(), None);
        assert!(m.is_revoked("alice", &token(now_s + 600, now_s - 10, "ja")));
        assert!(!m.is_revoked("alice", &token(now_s + 600, now_s - 10, "other")));
        let later = Revocation::Player { player_id: "bob".into(), issued_before_ms: now_s * 1000, until_ms };
        assert_eq!(m.revoke(&later, "broker"), 1);
        assert_eq!(b.conn.closing(), Some(CloseReason::TokenRevoked));
        assert!(m.is_revoked("bob", &token(now_s + 600, now_s - 1, "x")));
        assert!(!m.is_revoked("bob", &token(now_s + 600, now_s + 1, "x")), "issued after: allowed");
    }
}
