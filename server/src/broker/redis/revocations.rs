//! Token revocations in Redis: one key per revocation
//! (`<prefix>:revoked:jti:<jti>`, `<prefix>:revoked:player:<id>`), expiring
//! when no token it names can still be valid, holding the signed message
//! that announces it ([`wire`]), written and published in one pipeline so
//! every node applies it at once; a node whose subscription (re)starts
//! reads them all back and checks each like a message, so it also knows
//! what was revoked while it was away, and another client of the same
//! Redis cannot revoke anyone.

use bytes::Bytes;

use super::{Job, RedisBroker, epoch_us, unavailable};
use crate::broker::{Ack, BrokerError, LocalNode, wire};
use crate::session::revocation::Revocation;
use crate::telemetry as ev;

/// Keys read back per `SCAN` round, and rounds at most: a node reads back
/// at most about 100,000 keys (the in-memory list keeps
/// `auth.max_revocations` of them, those expiring last).
const SCAN_COUNT: usize = 500;
const MAX_SCAN_ROUNDS: usize = 200;

impl RedisBroker {
    /// Queues the key and the message for the publisher; the [`Ack`] says
    /// when both are in Redis.
    pub(super) fn store_revocation(&self, r: &Revocation) -> Result<Option<Ack>, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let now_ms = epoch_us() / 1000;
        let ttl_ms = r.until_ms().saturating_sub(now_ms).max(1);
        let key = match r {
            Revocation::Jti { jti, .. } => self.keys.revoked_jti(jti),
            Revocation::Player { player_id, .. } => self.keys.revoked_player(player_id),
        };
        let message = wire::encode_revocation(&self.key, &self.node_id, epoch_us(), r);
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Job::Revoke { key, ttl_ms, message, ack })
            .map_err(|_| unavailable("the publish queue is full"))?;
        Ok(Some(rx))
    }

    /// Reads every stored revocation and hands each to `node`. A failure
    /// is logged by the caller's next loss; what was read is applied.
    pub(super) async fn load_revocations(&self, node: &dyn LocalNode) {
        let pattern = self.keys.revoked_pattern();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_SCAN_ROUNDS {
            let p = pattern.clone();
            let scanned: Result<(u64, Vec<String>), _> = self
                .query(move |mut c| {
                    Box::pin(async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(p)
                            .arg("COUNT")
                            .arg(SCAN_COUNT)
                            .query_async(&mut c)
                            .await
                    })
                })
                .await;
            let Ok((next, keys)) = scanned else { return };
            if !keys.is_empty() {
                let names = keys.clone();
                let values: Result<Vec<Option<Vec<u8>>>, _> = self
                    .query(move |mut c| {
                        Box::pin(async move { redis::cmd("MGET").arg(names).query_async(&mut c).await })
                    })
                    .await;
                let Ok(values) = values else { return };
                for value in values.into_iter().flatten() {
                    if let Some(r) = self.parse_stored(value) {
                        node.apply_revocation(&r);
                    }
                }
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }

    /// A stored value back into a revocation, checked like a message
    /// (what fails is counted and logged like one).
    fn parse_stored(&self, value: Vec<u8>) -> Option<Revocation> {
        let len = value.len();
        let refused = match wire::decode(&self.key, Bytes::from(value), self.max_message_bytes) {
            Ok(wire::Received { payload: wire::Payload::Revoke(r), .. }) => return Some(r),
            Ok(_) => wire::Refused::Malformed,
            Err(refused) => refused,
        };
        ev::broker_message_refused(refused.as_str(), len);
        None
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::redis::RedisBroker;
    use crate::broker::wire;
    use crate::config::BrokerConfig;
    use crate::session::revocation::Revocation;

    #[test]
    fn stored_values_read_back_only_when_signed() {
        let cfg = BrokerConfig { cluster_key: "k".repeat(32), ..BrokerConfig::default() };
        let b = RedisBroker::new(&cfg, 65536).expect("a valid URL");
        for r in [
            Revocation::Jti { jti: "abc".into(), until_ms: 99 },
            Revocation::Player { player_id: "bob".into(), issued_before_ms: 5, until_ms: 77 },
        ] {
            let stored = wire::encode_revocation(&b.key, b.node_id(), 1, &r);
            assert_eq!(b.parse_stored(stored.to_vec()), Some(r));
        }
        // What another Redis client could write: refused.
        assert_eq!(b.parse_stored(b"99".to_vec()), None);
        let other = wire::ClusterKey::new(b"another cluster's key..........!");
        let forged =
            wire::encode_revocation(&other, "n_1", 1, &Revocation::Jti { jti: "x".into(), until_ms: 9 });
        assert_eq!(b.parse_stored(forged.to_vec()), None);
        // A signed message of another kind is not a revocation.
        let disconnect = wire::encode_disconnect(&b.key, "n_1", 1, "bob", None);
        assert_eq!(b.parse_stored(disconnect.to_vec()), None);
    }
}
