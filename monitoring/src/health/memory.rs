//! The `memory` component: memory use of the machine (or cgroup) and of
//! this process, against the configured thresholds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{CheckOutcome, ComponentStatus, ErrorDetails, HealthCheck};
use crate::clock::round;
use crate::config::MonitoringConfig;
use crate::system::{SystemSampler, SystemSnapshot};

/// When `memory` turns degraded or unhealthy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryThresholds {
    /// System memory use (percent) at which the component is degraded.
    pub warning_percent: f64,
    /// System memory use (percent) at which the component is unhealthy.
    pub critical_percent: f64,
    /// Process RSS (MiB) at which the component is degraded; 0 = no limit.
    pub max_rss_mb: u64,
}

impl MemoryThresholds {
    pub fn from_config(cfg: &MonitoringConfig) -> Self {
        Self {
            warning_percent: cfg.memory_warning_percent,
            critical_percent: cfg.memory_critical_percent,
            max_rss_mb: cfg.max_rss_mb,
        }
    }
}

/// The `memory` component's details.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MemoryDetails {
    pub used_mb: u64,
    pub total_mb: u64,
    /// System memory use, percent, 1 decimal.
    pub usage_percentage: f64,
    pub process_rss_mb: f64,
    pub warning_percentage: f64,
    pub critical_percentage: f64,
}

/// Readings older than this are refreshed before judging.
const MAX_READING_AGE: Duration = Duration::from_secs(2);

/// Judges one reading.
pub fn memory_outcome(s: &SystemSnapshot, t: &MemoryThresholds) -> CheckOutcome {
    if s.total_memory_bytes == 0 {
        let details = ErrorDetails { error: "memory figures unavailable".into() };
        return CheckOutcome::with_details(ComponentStatus::Unknown, &details);
    }
    let usage = s.usage_percentage();
    let rss_mb = s.process_rss_mb();
    let over_rss = t.max_rss_mb > 0 && rss_mb >= t.max_rss_mb as f64;
    let status = if usage >= t.critical_percent {
        ComponentStatus::Unhealthy
    } else if usage >= t.warning_percent || over_rss {
        ComponentStatus::Degraded
    } else {
        ComponentStatus::Healthy
    };
    let details = MemoryDetails {
        used_mb: s.used_memory_bytes / (1024 * 1024),
        total_mb: s.total_memory_bytes / (1024 * 1024),
        usage_percentage: round(usage, 1),
        process_rss_mb: round(rss_mb, 1),
        warning_percentage: t.warning_percent,
        critical_percentage: t.critical_percent,
    };
    CheckOutcome::with_details(status, &details)
}

/// The `memory` component.
pub struct MemoryCheck {
    sampler: Arc<SystemSampler>,
    thresholds: MemoryThresholds,
}

impl MemoryCheck {
    pub fn new(sampler: Arc<SystemSampler>, thresholds: MemoryThresholds) -> Self {
        Self { sampler, thresholds }
    }
}

impl HealthCheck for MemoryCheck {
    fn name(&self) -> &str {
        "memory"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        Box::pin(async move {
            let mut snapshot = self.sampler.snapshot();
            let stale =
                snapshot.sampled_at.is_some_and(|t| t.elapsed().map_or(true, |age| age > MAX_READING_AGE));
            if stale {
                self.sampler.refresh();
                snapshot = self.sampler.snapshot();
            }
            memory_outcome(&snapshot, &self.thresholds)
        })
    }

    fn local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn snap(used_mb: u64, total_mb: u64, rss_mb: u64) -> SystemSnapshot {
        SystemSnapshot {
            total_memory_bytes: total_mb * MIB,
            used_memory_bytes: used_mb * MIB,
            process_rss_bytes: rss_mb * MIB,
            process_cpu_percent: 0.0,
            sampled_at: None,
        }
    }

    fn thresholds(max_rss_mb: u64) -> MemoryThresholds {
        MemoryThresholds { warning_percent: 80.0, critical_percent: 90.0, max_rss_mb }
    }

    #[test]
    fn thresholds_decide_the_status() {
        let t = thresholds(0);
        assert_eq!(memory_outcome(&snap(512, 2048, 10), &t).status, ComponentStatus::Healthy);
        assert_eq!(memory_outcome(&snap(1700, 2000, 10), &t).status, ComponentStatus::Degraded);
        assert_eq!(memory_outcome(&snap(1800, 2000, 10), &t).status, ComponentStatus::Unhealthy);
        assert_eq!(memory_outcome(&snap(0, 0, 0), &t).status, ComponentStatus::Unknown);
        assert_eq!(memory_outcome(&snap(512, 2048, 300), &thresholds(256)).status, ComponentStatus::Degraded);
    }

    #[test]
    fn details_carry_the_documented_fields() {
        let o = memory_outcome(&snap(512, 2048, 64), &thresholds(0));
        assert_eq!(o.details["used_mb"], 512);
        assert_eq!(o.details["total_mb"], 2048);
        assert_eq!(o.details["usage_percentage"], 25.0);
        assert_eq!(o.details["process_rss_mb"], 64.0);
        assert_eq!(o.details["warning_percentage"], 80.0);
        assert_eq!(o.details["critical_percentage"], 90.0);
        assert_eq!(o.details.as_object().map(|d| d.len()), Some(6));
        let unknown = memory_outcome(&snap(0, 0, 0), &thresholds(0));
        assert_eq!(unknown.details, serde_json::json!({ "error": "memory figures unavailable" }));
    }

    #[tokio::test]
    async fn check_reads_the_sampler() {
        let c = MemoryCheck::new(Arc::new(SystemSampler::fixed(snap(100, 1000, 5))), thresholds(0));
        assert_eq!(c.name(), "memory");
        assert!(c.local());
        let o = c.check().await;
        assert_eq!(o.status, ComponentStatus::Healthy);
        assert_eq!(o.details["usage_percentage"], 10.0);
    }
}
