//! Exponential backoff as one pure function of the attempt number, shared by
//! everything in Tandem that waits before trying again: health-check retries
//! here, and in the server the Redis broker reconnect and the task
//! supervisor's restarts.
//!
//! The helper keeps no state and draws no random numbers: the caller counts
//! attempts (and resets the count when it sees fit, e.g. after a long healthy
//! run) and, for jitter, passes a random value in `[0, 1)`. So every delay
//! is testable without a clock or a seeded generator.

use std::time::Duration;

/// Delays of `base * 2^attempt`, never above `cap`.
///
/// ```
/// use std::time::Duration;
/// use tandem_monitoring::backoff::Backoff;
///
/// let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// assert_eq!(b.delay(0), Duration::from_millis(100));
/// assert_eq!(b.delay(3), Duration::from_millis(800));
/// assert_eq!(b.delay(40), Duration::from_secs(5));
/// // Full jitter: a random point of [0, delay), the random value supplied.
/// assert_eq!(b.jittered(1, 0.5), Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Delay before the first retry (attempt 0).
    pub base: Duration,
    /// Longest delay, whatever the attempt.
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// Delay before retry `attempt` (0-based): `base` doubled `attempt`
    /// times, saturating instead of overflowing, and at most `cap`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doubled = 1u32.checked_shl(attempt).and_then(|factor| self.base.checked_mul(factor));
        doubled.map_or(self.cap, |d| d.min(self.cap))
    }

    /// "Full jitter": `delay(attempt)` scaled by `unit`, a random value in
    /// `[0, 1)` the caller draws (e.g. `rand::random::<f64>()`), so retries
    /// of many clients spread out instead of arriving together. A `unit`
    /// outside `[0, 1]` (or NaN) is clamped into it.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let unit = if unit.is_nan() { 0.0 } else { unit.clamp(0.0, 1.0) };
        let delay = self.delay(attempt);
        // Through f64 a delay near `Duration::MAX` may round above it: keep
        // the delay itself then, rather than panic.
        Duration::try_from_secs_f64(delay.as_secs_f64() * unit).map_or(delay, |d| d.min(delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_the_base_up_to_the_cap() {
        let b = Backoff::new(ms(100), Duration::from_secs(30));
        let delays: Vec<Duration> = (0..10).map(|a| b.delay(a)).collect();
        let expected = [100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000].map(ms);
        assert_eq!(delays, expected);
    }

    #[test]
    fn never_overflows_whatever_the_attempt() {
        let b = Backoff::new(ms(100), Duration::from_secs(30));
        for attempt in [31, 32, 33, 63, 64, 1000, u32::MAX] {
            assert_eq!(b.delay(attempt), Duration::from_secs(30), "attempt {attempt}");
        }
        // A base so large that doubling it overflows `Duration` itself.
        let huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.delay(0), Duration::MAX);
        assert_eq!(huge.delay(1), Duration::MAX);
    }

    #[test]
    fn is_monotonic_and_capped() {
        let b = Backoff::new(ms(7), ms(1000));
        let mut last = Duration::ZERO;
        for attempt in 0..100 {
            let d = b.delay(attempt);
            assert!(d >= last && d <= b.cap, "attempt {attempt}: {d:?}");
            last = d;
        }
    }

    #[test]
    fn edge_configurations() {
        // A base above the cap starts at the cap; a zero base never waits.
        assert_eq!(Backoff::new(ms(500), ms(100)).delay(0), ms(100));
        assert_eq!(Backoff::new(Duration::ZERO, ms(100)).delay(20), Duration::ZERO);
        assert_eq!(Backoff::new(ms(100), Duration::ZERO).delay(0), Duration::ZERO);
    }

    /// The three schedules Tandem uses, reproduced exactly.
    #[test]
    fn fits_every_schedule_in_tandem() {
        // Health-check retries: 100 ms doubling, at most 30 s.
        let health = Backoff::new(ms(100), Duration::from_secs(30));
        assert_eq!([0, 1, 3, 20, 200].map(|a| health.delay(a)), [100, 200, 800, 30_000, 30_000].map(ms));
        // Redis reconnect: 100 ms doubling, at most 5 s.
        let redis = Backoff::new(ms(100), Duration::from_secs(5));
        assert_eq!([0, 1, 5, 6, u32::MAX].map(|a| redis.delay(a)), [100, 200, 3200, 5000, 5000].map(ms));
        // Supervisor restarts: 100 ms doubling after each failure, at most
        // 30 s; the caller resets its attempt count after a stable run.
        let supervisor = Backoff::new(ms(100), Duration::from_secs(30));
        assert_eq!(supervisor.delay(1), supervisor.delay(0) * 2);
    }

    #[test]
    fn full_jitter_scales_the_delay_by_the_callers_random_value() {
        let b = Backoff::new(ms(100), Duration::from_secs(5));
        assert_eq!(b.jittered(2, 0.0), Duration::ZERO);
        assert_eq!(b.jittered(2, 0.25), ms(100));
        assert_eq!(b.jittered(2, 0.5), ms(200));
        let near_one = b.jittered(2, 0.999_999);
        assert!(near_one < ms(400) && near_one > ms(399), "{near_one:?}");
        assert_eq!(b.jittered(40, 0.5), Duration::from_millis(2500));
        // Out-of-range values are clamped, NaN waits nothing.
        assert_eq!(b.jittered(2, -3.0), Duration::ZERO);
        assert_eq!(b.jittered(2, 7.0), ms(400));
        assert_eq!(b.jittered(2, f64::NAN), Duration::ZERO);
        assert_eq!(b.jittered(2, f64::INFINITY), ms(400));
        assert!(b.jittered(0, 0.3) < ms(100) + MS);
        // No panic at the very top of the range.
        let max = Backoff::new(Duration::MAX, Duration::MAX);
        assert!(max.jittered(0, 1.0) <= Duration::MAX);
        assert!(max.jittered(0, 0.5) < Duration::MAX);
    }
}
