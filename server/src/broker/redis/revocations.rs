//! Token revocations in Redis: one sorted set, `<prefix>:revocations`, of
//! the signed messages that announce them ([`wire`]), each scored by when
//! no token it names can still be valid. A revocation is stored and
//! published in one pipeline so every node applies it at once; a node
//! whose subscription (re)starts reads the live ones back and checks each
//! like a message, so it also knows what was revoked while it was away,
//! and another client of the same Redis cannot revoke anyone. One key, so
//! it reads the same on one Redis and on a Redis Cluster (no `SCAN`).

use bytes::Bytes;

use super::{Job, RedisBroker, epoch_us, unavailable};
use crate::broker::{Ack, BrokerError, LocalNode, wire};
use crate::session::revocation::Revocation;
use crate::telemetry as ev;

/// Revocations kept at most (past it, those expiring first are dropped:
/// the in-memory list keeps `auth.max_revocations`, those expiring last).
pub(super) const MAX_STORED: u64 = 100_000;
/// Read back per round trip.
const PAGE: u64 = 1000;

/// Adds a revocation, drops the expired ones and the oldest past
/// [`MAX_STORED`], and keeps the set until its last one expires.
/// KEYS: the set. ARGV: expiry ms, message, now ms, most kept.
pub(super) const STORE: &str = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) \
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3]) \
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4]) \
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end \
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES') \
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end \
return 0";

impl RedisBroker {
    /// Queues the revocation for the publisher; the [`Ack`] says when it
    /// is stored and published.
    pub(super) fn store_revocation(&self, r: &Revocation) -> Result<Option<Ack>, BrokerError> {
        if !self.is_up() {
            return Err(unavailable("the Redis link is down"));
        }
        let message = wire::encode_revocation(&self.key, &self.node_id, epoch_us(), r);
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Job::Revoke { until_ms: r.until_ms(), message, ack })
            .map_err(|_| unavailable("the publish queue is full"))?;
        Ok(Some(rx))
    }

    /// Reads every live stored revocation and hands each to `node`. A
    /// failure is logged by the caller's next loss; what was read is
    /// applied.
    pub(super) async fn load_revocations(&self, node: &dyn LocalNode) {
        let now_ms = epoch_us() / 1000;
        for page in 0..MAX_STORED.div_ceil(PAGE) {
            let key = self.keys.revocations();
            let values: Result<Vec<Vec<u8>>, _> = self
                .query(move |mut c| {
                    Box::pin(async move {
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(key)
                            .arg(now_ms)
                            .arg("+inf")
                            .arg("LIMIT")
                            .arg(page * PAGE)
                            .arg(PAGE)
                            .query_async(&mut c)
                            .await
                    })
                })
                .await;
            let Ok(values) = values else { return };
            let last = (values.len() as u64) < PAGE;
            for value in values {
                if let Some(r) = self.parse_stored(value) {
                    node.apply_revocation(&r);
                }
            }
            if last {
                return;
            }
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
