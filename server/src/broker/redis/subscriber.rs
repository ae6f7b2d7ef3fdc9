//! The subscriber: this node's one subscription (to `<prefix>:pub`, or on
//! a Redis Cluster to every shard channel), through which every node's
//! publications and the other nodes' messages arrive.
//!
//! It is also what says whether the node is part of the cluster: while the
//! subscription is live the broker is "up" and publishing is allowed; when
//! it drops, publishing is refused until it is back, and then every local
//! connection is told to resync, since what was published meanwhile never
//! reached this node.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tandem_monitoring::backoff::Backoff;

use super::{RedisBroker, epoch_us};
use crate::broker::{LocalNode, wire};
use crate::telemetry as ev;

/// Backoff between reconnect attempts: 100 ms doubling to at most 5 s; the
/// caller adds up to 50 ms of jitter.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

impl RedisBroker {
    /// Subscribes, fans out what arrives, and reconnects with backoff when
    /// the subscription ends; runs until the task is stopped.
    pub async fn run_subscriber(self: Arc<Self>, manager: Arc<dyn LocalNode>) {
        let mut attempt: u32 = 0;
        let mut first = true;
        loop {
            match self.servers.subscribe(&self.keys.channels, self.timeout).await {
                Ok(mut subscription) => {
                    let reconnect = !first || attempt > 0;
                    // The command link may be a dead one from before.
                    *self.link.lock() = None;
                    // Revocations made while this node was away, before it
                    // says it is connected (what arrives meanwhile waits in
                    // the subscription).
                    self.load_revocations(&*manager).await;
                    self.learn_run_ids().await;
                    self.up.store(true, Ordering::Relaxed);
                    self.ever_up.store(true, Ordering::Relaxed);
                    ev::broker_connected("redis", &self.node_id, reconnect);
                    if reconnect {
                        let told = manager.resync_all("broker_reconnected");
                        ev::resync_sent("broker_reconnected", told);
                    }
                    first = false;
                    attempt = 0;
                    while let Some(message) = subscription.next().await {
                        self.receive(&*manager, message.bytes());
                    }
                    self.up.store(false, Ordering::Relaxed);
                    *self.run_ids.lock() = Arc::default();
                    *self.last_error.lock() = Some("the subscription ended".into());
                }
                Err(e) => {
                    self.up.store(false, Ordering::Relaxed);
                    *self.last_error.lock() = Some(e.to_string());
                }
            }
            let wait = RECONNECT.delay(attempt) + Duration::from_millis(rand::random_range(0..=50));
            attempt = attempt.saturating_add(1);
            let error = self.last_error().unwrap_or_default();
            ev::broker_lost(manager.telemetry(), "redis", &error, wait);
            tokio::time::sleep(wait).await;
        }
    }

    /// One message from the channel: a publication (this node's own too:
    /// they are delivered here when they come back, in the order every
    /// node sees), or another node's disconnect, revocation or presence
    /// change, handed to the manager; anything too large, unsigned or not
    /// in the [`wire`] format is counted and dropped.
    fn receive(&self, manager: &dyn LocalNode, message: &[u8]) {
        let refused = |r: wire::Refused| ev::broker_message_refused(r.as_str(), message.len());
        // Before the copy: the limit protects this node's memory.
        if message.len() > wire::max_len(self.max_message_bytes) {
            return refused(wire::Refused::TooLarge);
        }
        let received = match wire::decode(&self.key, Bytes::copy_from_slice(message), self.max_message_bytes)
        {
            Ok(r) => r,
            Err(r) => return refused(r),
        };
        let own = received.origin == self.node_id;
        match received.payload {
            wire::Payload::Publication(envelope) => {
                let lag = epoch_us().saturating_sub(received.sent_us);
                ev::broker_received(Duration::from_micros(lag));
                manager.fan_out_local(&envelope);
            }
            // The rest this node applied when it sent them.
            _ if own => {}
            wire::Payload::Uplink { request, to, session_id, identity, body } if to == self.node_id => {
                manager.uplink(&received.origin, request, session_id, identity, body);
            }
            wire::Payload::UplinkAnswer { request, to, status, body } if to == self.node_id => {
                if let Some(waiting) = self.uplinks.lock().remove(&request) {
                    let _ = waiting.send((status, body));
                }
            }
            wire::Payload::Uplink { .. } | wire::Payload::UplinkAnswer { .. } => {}
            wire::Payload::Disconnect { player_id, reason } => {
                manager.disconnect_player(&player_id, reason.as_deref());
            }
            wire::Payload::Revoke(r) => manager.apply_revocation(&r),
            wire::Payload::Moved { session_id } => manager.session_moved(&session_id, &received.origin),
            wire::Payload::Presence { change, channel, player_id } => {
                manager.presence_event(&received.origin, change, &channel, &player_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(RECONNECT.delay(0), Duration::from_millis(100));
        assert_eq!(RECONNECT.delay(1), Duration::from_millis(200));
        assert_eq!(RECONNECT.delay(5), Duration::from_millis(3200));
        assert_eq!(RECONNECT.delay(6), Duration::from_secs(5));
        assert_eq!(RECONNECT.delay(u32::MAX), Duration::from_secs(5));
    }
}
