//! Revoked client tokens: what a revocation names, and the bounded list a
//! node checks at connect and at refresh. Plain code: time comes in as
//! Unix epoch milliseconds.

use std::collections::HashMap;

/// One revocation, as the backend API takes it and the broker carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The token with this `jti`.
    Jti { jti: String, until_ms: u64 },
    /// Every token of `player_id` issued (`iat`) before `issued_before_ms`.
    Player { player_id: String, issued_before_ms: u64, until_ms: u64 },
}

impl Revocation {
    /// When the entry may be forgotten: no token it revokes is still valid.
    pub fn until_ms(&self) -> u64 {
        match self {
            Self::Jti { until_ms, .. } | Self::Player { until_ms, .. } => *until_ms,
        }
    }

    /// Whether a token of `player_id` with `jti` issued at `iat` (Unix
    /// seconds) is one this revocation names.
    pub fn covers(&self, player_id: &str, jti: Option<&str>, iat: u64) -> bool {
        match self {
            Self::Jti { jti: revoked, .. } => jti == Some(revoked.as_str()),
            Self::Player { player_id: p, issued_before_ms, .. } => {
                p == player_id && iat.saturating_mul(1000) < *issued_before_ms
            }
        }
    }
}

/// The revocations a node knows, at most `cap`, each dropped once its
/// `until_ms` has passed; when full, the entry expiring soonest makes room.
#[derive(Debug)]
pub struct RevocationList {
    cap: usize,
    /// `jti` → until.
    jtis: HashMap<String, u64>,
    /// player → (issued before, until); a later revocation of the same
    /// player keeps the later `issued_before` and the later `until`.
    players: HashMap<String, (u64, u64)>,
}

impl RevocationList {
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), jtis: HashMap::new(), players: HashMap::new() }
    }

    pub fn len(&self) -> usize {
        self.jtis.len() + self.players.len()
    }

    /// Records `r` unless it has already expired; returns whether an
    /// unexpired entry had to be dropped to make room.
    pub fn insert(&mut self, r: &Revocation, now_ms: u64) -> bool {
        if r.until_ms() <= now_ms {
            return false;
        }
        let known = match r {
            Revocation::Jti { jti, .. } => self.jtis.contains_key(jti),
            Revocation::Player { player_id, .. } => self.players.contains_key(player_id),
        };
        let mut evicted = false;
        if !known && self.len() >= self.cap {
            self.purge(now_ms);
            if self.len() >= self.cap {
                self.evict_soonest();
                evicted = true;
            }
        }
        match r {
            Revocation::Jti { jti, until_ms } => {
                let e = self.jtis.entry(jti.clone()).or_insert(0);
                *e = (*e).max(*until_ms);
            }
            Revocation::Player { player_id, issued_before_ms, until_ms } => {
                let e = self.players.entry(player_id.clone()).or_insert((0, 0));
                *e = (e.0.max(*issued_before_ms), e.1.max(*until_ms));
            }
        }
        evicted
    }

    /// Whether a token of `player_id` with `jti` issued at `iat` (Unix
    /// seconds) is revoked at `now_ms`.
    pub fn is_revoked(&self, player_id: &str, jti: Option<&str>, iat: u64, now_ms: u64) -> bool {
        let by_jti = jti.and_then(|j| self.jtis.get(j)).is_some_and(|&until| until > now_ms);
        let by_player = self
            .players
            .get(player_id)
            .is_some_and(|&(before, until)| until > now_ms && iat.saturating_mul(1000) < before);
        by_jti || by_player
    }

    /// Drops what has expired.
    pub fn purge(&mut self, now_ms: u64) {
        self.jtis.retain(|_, until| *until > now_ms);
        self.players.retain(|_, (_, until)| *until > now_ms);
    }

    fn evict_soonest(&mut self) {
        let jti = self.jtis.iter().min_by_key(|(_, u)| **u).map(|(k, u)| (k.clone(), *u));
        let player = self.players.iter().min_by_key(|(_, (_, u))| *u).map(|(k, (_, u))| (k.clone(), *u));
        match (jti, player) {
            (Some((j, ju)), Some((_, pu))) if ju <= pu => drop(self.jtis.remove(&j)),
            (_, Some((p, _))) => drop(self.players.remove(&p)),
            (Some((j, _)), None) => drop(self.jtis.remove(&j)),
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jti(j: &str, until_ms: u64) -> Revocation {
        Revocation::Jti { jti: j.into(), until_ms }
    }

    fn player(p: &str, issued_before_ms: u64, until_ms: u64) -> Revocation {
        Revocation::Player { player_id: p.into(), issued_before_ms, until_ms }
    }

    #[test]
    fn a_jti_is_revoked_until_it_expires() {
        let mut l = RevocationList::new(10);
        l.insert(&jti("a", 5_000), 0);
        assert!(l.is_revoked("alice", Some("a"), 0, 4_999));
        assert!(!l.is_revoked("alice", Some("b"), 0, 0));
        assert!(!l.is_revoked("alice", None, 0, 0));
        assert!(!l.is_revoked("alice", Some("a"), 0, 5_000), "expired with its token");
        l.purge(5_000);
        assert_eq!(l.len(), 0);
        assert!(!l.insert(&jti("old", 10), 10), "already expired: not kept");
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn a_player_revocation_covers_tokens_issued_before() {
        let mut l = RevocationList::new(10);
        l.insert(&player("alice", 100_000, 1_000_000), 0);
        assert!(l.is_revoked("alice", None, 99, 0));
        assert!(!l.is_revoked("alice", None, 100, 0), "issued at the instant: kept");
        assert!(!l.is_revoked("bob", None, 0, 0));
        // A later revocation moves `issued_before` forward, never back.
        l.insert(&player("alice", 50_000, 2_000_000), 0);
        assert!(l.is_revoked("alice", None, 99, 1_500_000));
        assert_eq!(l.len(), 1);
        assert!(player("alice", 100_000, 1).covers("alice", None, 99));
        assert!(!player("alice", 100_000, 1).covers("bob", None, 99));
        assert!(jti("x", 1).covers("bob", Some("x"), 0));
    }

    #[test]
    fn full_drops_expired_first_then_the_soonest_to_expire() {
        let mut l = RevocationList::new(2);
        assert!(!l.insert(&jti("a", 100), 0));
        assert!(!l.insert(&jti("b", 1_000), 0));
        assert!(!l.insert(&jti("c", 2_000), 150), "`a` expired: room without eviction");
        assert!(!l.is_revoked("p", Some("a"), 0, 150));
        assert!(l.insert(&player("p", 10, 3_000), 150), "full: `b` (soonest) evicted");
        assert_eq!(l.len(), 2);
        assert!(!l.is_revoked("q", Some("b"), 0, 150));
        assert!(l.is_revoked("q", Some("c"), 0, 150));
        assert!(l.is_revoked("p", None, 0, 150));
        assert!(!l.insert(&jti("c", 2_500), 150), "known: updated in place");
        assert_eq!(l.len(), 2);
    }
}
