//! The `activity` component: time since the last client activity, so a
//! server that silently stopped receiving traffic shows up as degraded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{CheckOutcome, ComponentStatus, HealthCheck};
use crate::clock::{self, Clock};
use crate::source::ConnectionStatsSource;

/// The `activity` component's details; the first two are `null` until the
/// first activity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActivityDetails {
    /// RFC 3339.
    pub last_activity: Option<String>,
    pub seconds_since_activity: Option<u64>,
    pub warning_after_seconds: u64,
}

/// Judges the time since the last activity. No activity yet is healthy: a
/// server nobody has used yet is not broken.
pub fn activity_outcome(now: SystemTime, last: Option<SystemTime>, warning_after: Duration) -> CheckOutcome {
    let warning_after_seconds = warning_after.as_secs();
    let Some(last) = last else {
        let details =
            ActivityDetails { last_activity: None, seconds_since_activity: None, warning_after_seconds };
        return CheckOutcome::with_details(ComponentStatus::Healthy, &details);
    };
    // Activity stamped slightly in the future (clock skew between threads)
    // counts as just now.
    let since = now.duration_since(last).unwrap_or(Duration::ZERO);
    let status = if since > warning_after { ComponentStatus::Degraded } else { ComponentStatus::Healthy };
    let details = ActivityDetails {
        last_activity: Some(clock::rfc3339(last)),
        seconds_since_activity: Some(since.as_secs()),
        warning_after_seconds,
    };
    CheckOutcome::with_details(status, &details)
}

/// The `activity` component.
pub struct ActivityCheck {
    source: Arc<dyn ConnectionStatsSource>,
    warning_after: Duration,
    clock: Arc<dyn Clock>,
}

impl ActivityCheck {
    pub fn new(source: Arc<dyn ConnectionStatsSource>, warning_after: Duration) -> Self {
        Self { source, warning_after, clock: clock::system_clock() }
    }
}

impl HealthCheck for ActivityCheck {
    fn name(&self) -> &str {
        "activity"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        Box::pin(async move {
            activity_outcome(self.clock.now(), self.source.last_activity(), self.warning_after)
        })
    }

    fn local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const T0: u64 = 1_736_193_300;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn never_used_is_healthy_with_null() {
        let o = activity_outcome(at(T0), None, Duration::from_secs(600));
        assert_eq!(o.status, ComponentStatus::Healthy);
        assert_eq!(o.details["last_activity"], Value::Null);
        assert_eq!(o.details["seconds_since_activity"], Value::Null);
        assert_eq!(o.details["warning_after_seconds"], 600);
    }

    #[test]
    fn stale_activity_degrades() {
        let w = Duration::from_secs(600);
        let fresh = activity_outcome(at(T0 + 600), Some(at(T0)), w);
        assert_eq!(fresh.status, ComponentStatus::Healthy);
        assert_eq!(fresh.details["seconds_since_activity"], 600);
        assert_eq!(fresh.details["last_activity"], "2025-01-06T19:55:00Z");
        let stale = activity_outcome(at(T0 + 601), Some(at(T0)), w);
        assert_eq!(stale.status, ComponentStatus::Degraded);
        let future = activity_outcome(at(T0), Some(at(T0 + 5)), w);
        assert_eq!(future.details["seconds_since_activity"], 0);
    }
}
