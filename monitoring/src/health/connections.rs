//! The `connections` component and the figures behind
//! `/monitoring/connection-health`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tandem_protocol::Transport;

use super::{CheckOutcome, ComponentStatus, HealthCheck};
use crate::clock::round;
use crate::source::{ConnectionSample, ConnectionStatsSource};

/// What "healthy" means for one connection (the server computes the flag).
pub const HEALTHY_DEFINITION: &str =
    "heartbeat answered within the timeout and outbound queue below 80% of its capacity";

/// Health percentage at or above which the component is healthy.
pub const HEALTHY_PERCENT: f64 = 95.0;
/// Health percentage at or above which the component is degraded (below:
/// unhealthy).
pub const DEGRADED_PERCENT: f64 = 80.0;
/// Below this many connections a percentage says little (one slow client
/// out of three is 67%): the component is at worst `degraded`, so a single
/// client can never take the instance out of a load balancer.
pub const MIN_CONNECTIONS_FOR_UNHEALTHY: usize = 20;

/// Healthy count out of a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportHealth {
    pub total: usize,
    pub healthy: usize,
}

impl TransportHealth {
    pub fn unhealthy(&self) -> usize {
        self.total.saturating_sub(self.healthy)
    }

    /// Healthy share in percent; 100 when there is no connection, since no
    /// connection is not a failing one.
    pub fn percentage(&self) -> f64 {
        if self.total == 0 { 100.0 } else { self.healthy as f64 * 100.0 / self.total as f64 }
    }

    fn add(&mut self, healthy: bool) {
        self.total += 1;
        if healthy {
            self.healthy += 1;
        }
    }
}

/// Upper bounds (exclusive) of the age buckets of
/// `connection_age_distribution`, in the order of [`AgeDistribution`].
const AGE_LIMITS: [Duration; 4] =
    [Duration::from_secs(5 * 60), Duration::from_secs(30 * 60), Duration::from_secs(2 * 3600), Duration::MAX];

/// `overall_health` of `/monitoring/connection-health`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OverallHealth {
    pub total_connections: usize,
    pub healthy_connections: usize,
    pub unhealthy_connections: usize,
    /// Rounded to 2 decimals; 100 when there is no connection.
    pub health_percentage: f64,
}

/// One transport in `connection_type_health`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TransportHealthDocument {
    pub total: usize,
    pub healthy: usize,
    pub unhealthy: usize,
    pub health_percentage: f64,
}

/// `connection_type_health`: the two transports side by side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConnectionTypeHealth {
    pub websocket: TransportHealthDocument,
    pub sse: TransportHealthDocument,
}

/// `connection_age_distribution`: live connections by age.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgeDistribution {
    #[serde(rename = "0-5_minutes")]
    pub under_5_minutes: usize,
    #[serde(rename = "5-30_minutes")]
    pub from_5_to_30_minutes: usize,
    #[serde(rename = "30_minutes-2_hours")]
    pub from_30_minutes_to_2_hours: usize,
    #[serde(rename = "2_hours+")]
    pub over_2_hours: usize,
}

/// The `connections` component's details: `overall_health` plus the count
/// of each transport.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ConnectionsDetails {
    #[serde(flatten)]
    pub overall: OverallHealth,
    pub websocket_connections: usize,
    pub sse_connections: usize,
}

/// Connection health computed from the server's samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionHealthSummary {
    pub websocket: TransportHealth,
    pub sse: TransportHealth,
    /// Counts per age bucket: under 5 minutes, 5–30 minutes, 30 minutes–2 hours, 2 hours and more.
    pub ages: [usize; 4],
}

impl ConnectionHealthSummary {
    pub fn from_samples(samples: &[ConnectionSample]) -> Self {
        let mut s = Self::default();
        for sample in samples {
            match sample.transport {
                Transport::WebSocket => s.websocket.add(sample.healthy),
                Transport::Sse => s.sse.add(sample.healthy),
            }
            let bucket = AGE_LIMITS.iter().position(|limit| sample.age < *limit).unwrap_or(3);
            s.ages[bucket] += 1;
        }
        s
    }

    pub fn overall(&self) -> TransportHealth {
        TransportHealth {
            total: self.websocket.total + self.sse.total,
            healthy: self.websocket.healthy + self.sse.healthy,
        }
    }

    /// Healthy share, 0..=1 (`tandem_connection_health_ratio`).
    pub fn ratio(&self) -> f64 {
        self.overall().percentage() / 100.0
    }

    /// ≥95% healthy, ≥80% degraded, else unhealthy (unhealthy only from
    /// [`MIN_CONNECTIONS_FOR_UNHEALTHY`] connections up).
    pub fn status(&self) -> ComponentStatus {
        let o = self.overall();
        let p = o.percentage();
        if p >= HEALTHY_PERCENT {
            ComponentStatus::Healthy
        } else if p >= DEGRADED_PERCENT || o.total < MIN_CONNECTIONS_FOR_UNHEALTHY {
            ComponentStatus::Degraded
        } else {
            ComponentStatus::Unhealthy
        }
    }

    /// `overall_health` (also the core of the `connections` component's
    /// details).
    pub fn overall_document(&self) -> OverallHealth {
        let o = self.overall();
        OverallHealth {
            total_connections: o.total,
            healthy_connections: o.healthy,
            unhealthy_connections: o.unhealthy(),
            health_percentage: round(o.percentage(), 2),
        }
    }

    /// `connection_type_health`.
    pub fn by_transport_document(&self) -> ConnectionTypeHealth {
        let one = |t: &TransportHealth| TransportHealthDocument {
            total: t.total,
            healthy: t.healthy,
            unhealthy: t.unhealthy(),
            health_percentage: round(t.percentage(), 2),
        };
        ConnectionTypeHealth { websocket: one(&self.websocket), sse: one(&self.sse) }
    }

    /// `connection_age_distribution`.
    pub fn ages_document(&self) -> AgeDistribution {
        let [under_5_minutes, from_5_to_30_minutes, from_30_minutes_to_2_hours, over_2_hours] = self.ages;
        AgeDistribution { under_5_minutes, from_5_to_30_minutes, from_30_minutes_to_2_hours, over_2_hours }
    }
}

/// The `connections` component: the share of healthy connections.
pub struct ConnectionsCheck {
    source: Arc<dyn ConnectionStatsSource>,
}

impl ConnectionsCheck {
    pub fn new(source: Arc<dyn ConnectionStatsSource>) -> Self {
        Self { source }
    }
}

impl HealthCheck for ConnectionsCheck {
    fn name(&self) -> &str {
        "connections"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        Box::pin(async move {
            let summary = ConnectionHealthSummary::from_samples(&self.source.connection_samples());
            let details = ConnectionsDetails {
                overall: summary.overall_document(),
                websocket_connections: summary.websocket.total,
                sse_connections: summary.sse.total,
            };
            CheckOutcome::with_details(summary.status(), &details)
        })
    }

    fn local(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json(v: impl Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    fn sample(transport: Transport, age_secs: u64, healthy: bool) -> ConnectionSample {
        ConnectionSample { transport, age: Duration::from_secs(age_secs), healthy }
    }

    fn mixed(total: usize, unhealthy: usize) -> Vec<ConnectionSample> {
        (0..total).map(|i| sample(Transport::WebSocket, 1, i >= unhealthy)).collect()
    }

    #[test]
    fn no_connection_is_healthy() {
        let s = ConnectionHealthSummary::from_samples(&[]);
        assert_eq!(s.status(), ComponentStatus::Healthy);
        assert_eq!(json(s.overall_document())["health_percentage"], 100.0);
        assert_eq!(s.ratio(), 1.0);
    }

    #[test]
    fn thresholds() {
        let status = |total, bad| ConnectionHealthSummary::from_samples(&mixed(total, bad)).status();
        assert_eq!(status(100, 5), ComponentStatus::Healthy);
        assert_eq!(status(100, 6), ComponentStatus::Degraded);
        assert_eq!(status(100, 20), ComponentStatus::Degraded);
        assert_eq!(status(100, 21), ComponentStatus::Unhealthy);
        assert_eq!(status(3, 2), ComponentStatus::Degraded, "too few connections to call it unhealthy");
        assert_eq!(status(19, 19), ComponentStatus::Degraded);
        assert_eq!(status(20, 5), ComponentStatus::Unhealthy);
    }

    #[test]
    fn split_by_transport_and_age() {
        let samples = [
            sample(Transport::WebSocket, 10, true),
            sample(Transport::WebSocket, 299, false),
            sample(Transport::Sse, 300, true),
            sample(Transport::Sse, 1799, true),
            sample(Transport::Sse, 1800, true),
            sample(Transport::Sse, 7200, true),
        ];
        let s = ConnectionHealthSummary::from_samples(&samples);
        let o = json(s.overall_document());
        assert_eq!(o["total_connections"], 6);
        assert_eq!(o["healthy_connections"], 5);
        assert_eq!(o["unhealthy_connections"], 1);
        assert_eq!(o["health_percentage"], 83.33);
        let t = json(s.by_transport_document());
        assert_eq!(t["websocket"]["total"], 2);
        assert_eq!(t["websocket"]["unhealthy"], 1);
        assert_eq!(t["websocket"]["health_percentage"], 50.0);
        assert_eq!(t["sse"]["healthy"], 4);
        let a = json(s.ages_document());
        assert_eq!(a["0-5_minutes"], 2);
        assert_eq!(a["5-30_minutes"], 2);
        assert_eq!(a["30_minutes-2_hours"], 1);
        assert_eq!(a["2_hours+"], 1);
        assert_eq!(a.as_object().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn component_details_add_the_transport_counts() {
        struct Two;
        impl ConnectionStatsSource for Two {
            fn connection_samples(&self) -> Vec<ConnectionSample> {
                vec![sample(Transport::WebSocket, 1, true), sample(Transport::Sse, 1, false)]
            }
            fn overview(&self) -> crate::ConnectionOverview {
                crate::ConnectionOverview::default()
            }
            fn player_detail(&self, _: &str) -> Option<Value> {
                None
            }
            fn last_activity(&self) -> Option<std::time::SystemTime> {
                None
            }
        }
        let o = ConnectionsCheck::new(Arc::new(Two)).check().await;
        assert_eq!(o.status, ComponentStatus::Degraded);
        let mut keys: Vec<&str> = o.details.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "health_percentage",
                "healthy_connections",
                "sse_connections",
                "total_connections",
                "unhealthy_connections",
                "websocket_connections"
            ]
        );
        assert_eq!(o.details["websocket_connections"], 1);
        assert_eq!(o.details["health_percentage"], 50.0);
    }
}
