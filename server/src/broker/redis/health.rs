//! `/health`'s `broker` component. It answers from memory (link state kept
//! by the subscriber, round trip measured by the heartbeat) rather than
//! asking Redis, so reading `/health` costs Redis nothing and is never
//! stale. A node whose link is down shows `disconnected` (`connecting`
//! before its first link) with the last error; one whose link is up but
//! whose last command failed or timed out (Redis stalled) `unresponsive`,
//! unhealthy: it refuses publications, so health says what publishers see.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tandem_monitoring::{CheckOutcome, ComponentStatus, HealthCheck};

use super::RedisBroker;

pub(super) struct BrokerCheck(pub(super) Arc<RedisBroker>);

/// The component's details (keys in alphabetical order, as `/health`
/// has always shown them).
#[derive(Debug, Serialize)]
struct Details<'a> {
    connection: &'static str,
    /// The last error (perhaps `null`), only while the link is not up.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Option<String>>,
    kind: &'static str,
    node_id: &'a str,
    round_trip_ms: Option<f64>,
}

impl BrokerCheck {
    fn outcome(&self) -> CheckOutcome {
        let b = &self.0;
        let mut details = Details {
            connection: "connected",
            error: None,
            kind: "redis",
            node_id: &b.node_id,
            round_trip_ms: b.last_rtt().map(|d| d.as_secs_f64() * 1000.0),
        };
        let status = if b.is_answering() {
            ComponentStatus::Healthy
        } else if b.is_up() {
            details.connection = "unresponsive";
            details.error = Some(b.last_error());
            details.round_trip_ms = None;
            ComponentStatus::Unhealthy
        } else {
            details.error = Some(b.last_error());
            if b.ever_up.load(Ordering::Relaxed) {
                details.connection = "disconnected";
                ComponentStatus::Disconnected
            } else {
                details.connection = "connecting";
                ComponentStatus::Connecting
            }
        };
        CheckOutcome::new(status, serde_json::to_value(details).unwrap_or_default())
    }
}

impl HealthCheck for BrokerCheck {
    fn name(&self) -> &str {
        "broker"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        let outcome = self.outcome();
        Box::pin(async move { outcome })
    }

    fn local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    #[test]
    fn a_broker_never_linked_is_connecting_with_its_error() {
        let b = RedisBroker::new(&BrokerConfig::default(), 65536).expect("a valid URL");
        *b.last_error.lock() = Some("refused".into());
        let out = BrokerCheck(Arc::clone(&b)).outcome();
        assert_eq!(out.status, ComponentStatus::Connecting);
        assert_eq!(out.details["connection"], "connecting");
        assert_eq!(out.details["error"], "refused");
        assert_eq!(out.details["kind"], "redis");
        assert_eq!(out.details["node_id"], b.node_id());
        assert!(out.details["round_trip_ms"].is_null());

        b.up.store(true, Ordering::Relaxed);
        b.ever_up.store(true, Ordering::Relaxed);
        let out = BrokerCheck(Arc::clone(&b)).outcome();
        assert_eq!(out.status, ComponentStatus::Healthy);
        assert!(out.details.get("error").is_none(), "{}", out.details);

        b.failing.store(true, Ordering::Relaxed);
        *b.last_error.lock() = Some("timed out".into());
        let out = BrokerCheck(Arc::clone(&b)).outcome();
        assert_eq!(out.status, ComponentStatus::Unhealthy, "a stalled Redis: what publishers see");
        assert_eq!(
            (&out.details["connection"], &out.details["error"]),
            (&"unresponsive".into(), &"timed out".into())
        );
        assert!(out.details["round_trip_ms"].is_null());

        b.up.store(false, Ordering::Relaxed);
        let out = BrokerCheck(b).outcome();
        assert_eq!(out.status, ComponentStatus::Disconnected);
        assert_eq!(out.details["connection"], "disconnected");
    }
}
