//! Token revocations in Redis: one key per revocation, expiring when no
//! token it names can still be valid (`<prefix>:revoked:jti:<jti>` holds
//! the until time, `<prefix>:revoked:player:<id>` "`<issued before>
//! <until>`", epoch ms), written and published in one pipeline so every
//! node applies it at once; a node whose subscription (re)starts reads
//! them all back, so it also knows what was revoked while it was away.

use super::{Job, RedisBroker, epoch_us, unavailable};
use crate::broker::{Ack, BrokerError, LocalNode, wire};
use crate::session::revocation::Revocation;

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
        let (key, value) = match r {
            Revocation::Jti { jti, until_ms } => (self.keys.revoked_jti(jti), until_ms.to_string()),
            Revocation::Player { player_id, issued_before_ms, until_ms } => {
                (self.keys.revoked_player(player_id), format!("{issued_before_ms} {until_ms}"))
            }
        };
        let message = wire::encode_revocation(&self.key, &self.node_id, epoch_us(), r);
        let (ack, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Job::Revoke { key, value, ttl_ms, message, ack })
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
                let values: Result<Vec<Option<String>>, _> = self
                    .query(move |mut c| {
                        Box::pin(async move { redis::cmd("MGET").arg(names).query_async(&mut c).await })
                    })
                    .await;
                let Ok(values) = values else { return };
                for (key, value) in keys.iter().zip(values) {
                    if let Some(r) = value.and_then(|v| self.parse_stored(key, &v)) {
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

    /// A stored key and value back into a revocation.
    fn parse_stored(&self, key: &str, value: &str) -> Option<Revocation> {
        let jti_prefix = self.keys.revoked_jti("");
        let player_prefix = self.keys.revoked_player("");
        if let Some(jti) = key.strip_prefix(&jti_prefix) {
            wire::decode_revocation(b"j", jti, value)
        } else {
            wire::decode_revocation(b"p", key.strip_prefix(&player_prefix)?, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::redis::RedisBroker;
    use crate::config::BrokerConfig;
    use crate::session::revocation::Revocation;

    #[test]
    fn stored_keys_read_back_as_revocations() {
        let b = RedisBroker::new(&BrokerConfig { key_prefix: "t".into(), ..BrokerConfig::default() }, 65536)
            .expect("a valid URL");
        assert_eq!(
            b.parse_stored("t:revoked:jti:abc", "99"),
            Some(Revocation::Jti { jti: "abc".into(), until_ms: 99 })
        );
        assert_eq!(
            b.parse_stored("t:revoked:player:bob", "5 77"),
            Some(Revocation::Player { player_id: "bob".into(), issued_before_ms: 5, until_ms: 77 })
        );
        assert_eq!(b.parse_stored("t:revoked:other:x", "1"), None);
        assert_eq!(b.parse_stored("t:revoked:jti:abc", "soon"), None);
    }
}
