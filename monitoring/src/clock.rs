//! Wall-clock access behind a trait, so minute buckets, window rotation and
//! staleness can be tested by moving time by hand instead of waiting for it.
//!
//! Code that reads the time takes an `Arc<dyn Clock>`: [`system_clock`] in
//! production, a [`ManualClock`] in tests.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Source of the current wall-clock time (`SystemTime`, not `Instant`:
/// what it times is shown to people and bucketed by calendar minute).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tandem_monitoring::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::at(120);
/// let shared: Arc<dyn Clock> = clock.clone();
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(shared.unix_secs(), 180);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Seconds since the Unix epoch (0 if the clock is before 1970).
    fn unix_secs(&self) -> u64 {
        unix_secs(self.now())
    }
}

/// The real clock: [`SystemTime::now`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The real clock, shared.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Seconds since the Unix epoch; a clock set before 1970 reads as 0 rather
/// than failing, because monitoring must never take the server down.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Seconds since the Unix epoch with sub-second precision (the documented
/// `timestamp` float in `recent_errors`).
pub(crate) fn unix_secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// RFC 3339 UTC with second precision, e.g. `2025-01-06T19:55:00Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds as a float with microsecond precision, the unit every JSON
/// document of the monitoring routes uses for durations.
pub(crate) fn millis(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 3)
}

/// Rounds to `decimals` places so JSON documents stay readable.
pub(crate) fn round(v: f64, decimals: i32) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// A clock tests move by hand (millisecond resolution); it never moves on
/// its own.
#[derive(Debug)]
pub struct ManualClock {
    millis: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// Starts at `unix_secs` seconds after the epoch.
    pub fn at(unix_secs: u64) -> Arc<Self> {
        Arc::new(Self { millis: std::sync::atomic::AtomicU64::new(unix_secs.saturating_mul(1000)) })
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let ordering = std::sync::atomic::Ordering::SeqCst;
        // `Some` always: the update cannot fail.
        let _ = self.millis.fetch_update(ordering, ordering, |now| Some(now.saturating_add(ms)));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at(120);
        assert_eq!(c.unix_secs(), 120);
        c.advance(Duration::from_millis(61_500));
        assert_eq!(c.unix_secs(), 181);
        assert_eq!(rfc3339(c.now()), "1970-01-01T00:03:01Z");
    }

    #[test]
    fn rounding_and_millis() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(f64::NAN, 2), 0.0);
        assert_eq!(millis(Duration::from_micros(1500)), 1.5);
    }
}
