//! What lets a session outlive its node: its record, and its channels'
//! histories read back on another node.
//!
//! - `<prefix>:session:{<id>}`: a hash, `p` the player, `n` the node holding
//!   the session, `c:<channel>` the channel's position when the session
//!   subscribed (`<epoch>.<offset>.0`, `0.0.0` before any history). Written
//!   through the publisher's queue when it changes; deleted when the
//!   session ends on the node that holds it.
//! - `<prefix>:{c<shard>}:meta:<channel>` / `:history:<channel>`: written
//!   by each publication (see [`super::publisher`]); read here, one round
//!   trip per channel of a resuming session.

use std::sync::Arc;

use bytes::Bytes;
use redis::Value;

use super::{RedisBroker, sessions::CLAIM_TTL_SECONDS};
use crate::broker::{BrokerError, wire};
use crate::session::position::{History, Position, StoredSession};
use crate::session::protocol::Publication;
use crate::telemetry as ev;

/// A channel's epoch and last offset, `{}` when it has no history this
/// Redis process wrote: none, or one from before a restart or a failover
/// (which may have lost acknowledged writes: a client is then told to
/// resync, never replayed around a hole). KEYS: the channel's meta.
pub(super) const META: &str = concat!(
    "local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'r') if not m[1] or m[3] ~= ",
    super::run_id_lua!(),
    " then return {} end return {m[1], m[2] or '0'}"
);

/// The `run_id` of the Redis process holding KEYS[1]'s slot.
const RUN_ID: &str = concat!("return ", super::run_id_lua!());

/// Deletes a session record if `ARGV[1]` still holds it (another node may
/// have taken the session over). KEYS: the record.
pub(super) const DELETE_IF_HELD: &str = "if redis.call('HGET', KEYS[1], 'n') == ARGV[1] then \
redis.call('DEL', KEYS[1]) end return 0";

/// One history entry: `(offset, tag, message)`.
type Entry = (u64, u64, Bytes);

impl RedisBroker {
    /// Asks each Redis process which `run_id` it has, for each pub/sub
    /// channel (on a Redis Cluster, the master of its shard), so that the
    /// publish script need not ask; on failure none is known (it asks).
    pub(super) async fn learn_run_ids(&self) {
        let channels = self.keys.channels.clone();
        let learned: Result<Vec<String>, _> = self
            .query(move |mut c| {
                Box::pin(async move {
                    let mut pipe = redis::pipe();
                    for channel in &channels {
                        pipe.cmd("EVAL").arg(RUN_ID).arg(1).arg(&**channel);
                    }
                    pipe.query_async(&mut c).await
                })
            })
            .await;
        *self.run_ids.lock() = Arc::new(match learned {
            Ok(ids) => self.keys.channels.iter().cloned().zip(ids.into_iter().map(Arc::from)).collect(),
            Err(_) => std::collections::HashMap::new(),
        });
    }

    /// The record of session `id`, if the cluster knows it.
    pub(super) async fn read_session(&self, id: &str) -> Result<Option<StoredSession>, BrokerError> {
        let key = self.keys.session(id);
        let fields: Vec<(String, String)> = self
            .query(move |mut c| {
                Box::pin(async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await })
            })
            .await?;
        let (mut player_id, mut node, mut channels) = (None, None, Vec::new());
        for (k, v) in fields {
            match k.as_str() {
                "p" => player_id = Some(v),
                "n" => node = Some(v),
                _ => {
                    if let (Some(ch), Some(p)) = (k.strip_prefix("c:"), Position::parse(&v)) {
                        channels.push((ch.to_owned(), p));
                    }
                }
            }
        }
        Ok(match (player_id, node) {
            (Some(player_id), Some(node)) => Some(StoredSession { player_id, node, channels }),
            _ => None,
        })
    }

    /// Each channel's history from the given position on (the entry at
    /// the position itself included, to check it is the one the client
    /// got), channel by channel so that at most `budget` entries past the
    /// positions are ever held (a channel read past what is left is
    /// `capped`). Entries that do not verify are left out (a hole, so a
    /// gap: never delivered).
    pub(super) async fn read_history(
        &self,
        from: &[(Arc<str>, Position)],
        budget: usize,
    ) -> Result<Vec<History<Arc<Publication>>>, BrokerError> {
        let mut left = budget;
        let mut out = Vec::with_capacity(from.len());
        for (channel, p) in from {
            let kept = self.history.history_for(channel).size.min(left as u64) as usize;
            // The client's own entry, what is left of the budget, and one
            // more to tell "all of it" from "stopped at the budget".
            let count = kept + 2;
            let (meta, range) = (self.keys.history_meta(channel), self.keys.history(channel));
            let start = if p.offset == 0 { "-".to_owned() } else { format!("{}-0", p.offset) };
            let (top, raw): (Value, Value) = self
                .query(move |mut c| {
                    Box::pin(async move {
                        redis::pipe()
                            .cmd("EVAL")
                            .arg(META)
                            .arg(1)
                            .arg(meta)
                            .cmd("XRANGE")
                            .arg(range)
                            .arg(start)
                            .arg("+")
                            .arg("COUNT")
                            .arg(count)
                            .query_async(&mut c)
                            .await
                    })
                })
                .await?;
            let top = parse_meta(&top);
            let mut entries = Vec::new();
            let mut read = parse_range(&raw);
            let capped = read.len() >= count;
            read.truncate(count - 1);
            for (offset, tag, message) in read {
                let Some((epoch, _)) = top else { break };
                let at = Position { epoch, offset, tag };
                match wire::decode_at(&self.key, message, self.max_message_bytes, Some(at)) {
                    Ok(wire::Received { payload: wire::Payload::Publication(env), .. })
                        if *env.publication.channel == **channel =>
                    {
                        entries.push((offset, tag, env.publication));
                    }
                    Ok(_) => ev::broker_message_refused(wire::Refused::Malformed.as_str(), 0),
                    Err(r) => ev::broker_message_refused(r.as_str(), 0),
                }
            }
            left = left.saturating_sub(entries.iter().filter(|(o, _, _)| *o > p.offset).count());
            out.push(History { top, entries, capped });
        }
        Ok(out)
    }
}

/// [`META`]: the channel's epoch and last offset, if it has a history.
fn parse_meta(v: &Value) -> Option<(u64, u64)> {
    let Value::Array(items) = v else { return None };
    let number = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse::<u64>().ok(),
        _ => None,
    };
    Some((number(items.first()?)?, number(items.get(1)?)?))
}

/// `XRANGE`'s entries `<offset>-<tag>` with their `m` field.
fn parse_range(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|e| {
            let Value::Array(pair) = e else { return None };
            let (Value::BulkString(id), Value::Array(fields)) = (pair.first()?, pair.get(1)?) else {
                return None;
            };
            let (offset, tag) = std::str::from_utf8(id).ok()?.split_once('-')?;
            let message = match (fields.first()?, fields.get(1)?) {
                (Value::BulkString(f), Value::BulkString(m)) if f == b"m" => Bytes::copy_from_slice(m),
                _ => return None,
            };
            Some((offset.parse().ok()?, tag.parse().ok()?, message))
        })
        .collect()
}

/// How long a session record lives without a change: the node holding it
/// deletes it when the session ends; this bounds what a lost node leaves.
pub(super) const RECORD_TTL_SECONDS: u64 = CLAIM_TTL_SECONDS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_as_redis_writes_them() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(parse_meta(&Value::Array(vec![bulk("17"), bulk("5")])), Some((17, 5)));
        assert_eq!(parse_meta(&Value::Array(vec![Value::Nil, Value::Nil])), None);
        assert_eq!(parse_meta(&Value::Array(vec![])), None, "no history this Redis process wrote");
        let entry =
            |id: &str, f: &str, m: &str| Value::Array(vec![bulk(id), Value::Array(vec![bulk(f), bulk(m)])]);
        let range =
            Value::Array(vec![entry("4-99", "m", "x"), entry("5-100", "other", "y"), entry("x-1", "m", "z")]);
        assert_eq!(parse_range(&range), vec![(4, 99, Bytes::from_static(b"x"))]);
    }
}
