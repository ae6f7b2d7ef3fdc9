//! When to try again: exponential backoff with full jitter, capped, with an
//! optional limit on attempts, and the server's own hints on top.

use std::time::Duration;

/// How reconnect attempts are spaced.
///
/// Retry number `attempt` (1 for the first retry after a loss) waits
/// `random(0, min(max_delay, base_delay × 2^(attempt − 1)))`: "full jitter",
/// so that thousands of clients dropped together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// The ceiling of the first retry's delay. Default 250 ms.
    pub base_delay: Duration,
    /// The ceiling no delay exceeds (server hints aside). Default 30 s.
    pub max_delay: Duration,
    /// Give up after this many failed attempts in a row; `None` (the
    /// default) never gives up.
    pub max_attempts: Option<u32>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Reconnect {
    /// The upper bound of retry `attempt`'s delay: `min(max, base × 2^(attempt − 1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        let grown = self.base_delay.checked_mul(1u32 << exponent).unwrap_or(self.max_delay);
        grown.min(self.max_delay)
    }

    /// Retry `attempt`'s delay for a uniform `unit` in `[0, 1)` (values
    /// outside are clamped, so a bad random source cannot exceed the cap).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        self.ceiling(attempt).mul_f64(unit)
    }
}

/// The retry counter of one connection slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Failed attempts since the last welcome.
    failures: u32,
}

/// The next retry, or the end of retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Retry `attempt` (1-based) after `delay`.
    Retry { attempt: u32, delay: Duration },
    /// `max_attempts` retries failed in a row: stop.
    GiveUp { attempts: u32 },
}

impl Backoff {
    /// The next retry after a loss or a failed attempt.
    ///
    /// A server hint (the `shutdown` frame's `retry_after_ms`, SSE `retry:`)
    /// is a floor: the jittered delay is added on top of it, so clients
    /// told to wait the same time still spread out.
    pub fn next(&mut self, policy: &Reconnect, unit: f64, hint: Option<Duration>) -> Next {
        if let Some(max) = policy.max_attempts {
            if self.failures >= max {
                return Next::GiveUp { attempts: self.failures };
            }
        }
        self.failures = self.failures.saturating_add(1);
        let attempt = self.failures;
        let jitter = policy.delay(attempt, unit);
        let delay = hint.map_or(jitter, |h| h.saturating_add(jitter));
        Next::Retry { attempt, delay }
    }

    /// A welcome arrived: the next loss starts again at retry 1.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed attempts since the last welcome.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn defaults_are_the_documented_ones() {
        let r = Reconnect::default();
        assert_eq!(r.base_delay, 250 * MS);
        assert_eq!(r.max_delay, Duration::from_secs(30));
        assert_eq!(r.max_attempts, None);
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let r = Reconnect { base_delay: 100 * MS, max_delay: 1000 * MS, max_attempts: None };
        let got: Vec<_> = (1..=7).map(|a| r.ceiling(a)).collect();
        assert_eq!(got, [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS, 1000 * MS]);
        assert_eq!(r.ceiling(u32::MAX), 1000 * MS, "no overflow at huge attempts");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let r = Reconnect { base_delay: 100 * MS, max_delay: 1000 * MS, max_attempts: None };
        assert_eq!(r.delay(3, 0.0), Duration::ZERO);
        assert_eq!(r.delay(3, 0.5), 200 * MS);
        assert_eq!(r.delay(3, 1.0), 400 * MS);
        assert_eq!(r.delay(3, 7.0), 400 * MS, "clamped");
        assert_eq!(r.delay(3, f64::NAN), Duration::ZERO);
    }

    #[test]
    fn attempts_count_up_and_reset_on_welcome() {
        let r = Reconnect { base_delay: 100 * MS, max_delay: 1000 * MS, max_attempts: None };
        let mut b = Backoff::default();
        assert_eq!(b.next(&r, 1.0, None), Next::Retry { attempt: 1, delay: 100 * MS });
        assert_eq!(b.next(&r, 1.0, None), Next::Retry { attempt: 2, delay: 200 * MS });
        assert_eq!(b.failures(), 2);
        b.reset();
        assert_eq!(b.next(&r, 0.5, None), Next::Retry { attempt: 1, delay: 50 * MS });
    }

    #[test]
    fn max_attempts_gives_up() {
        let r = Reconnect { base_delay: MS, max_delay: MS, max_attempts: Some(2) };
        let mut b = Backoff::default();
        assert!(matches!(b.next(&r, 0.0, None), Next::Retry { attempt: 1, .. }));
        assert!(matches!(b.next(&r, 0.0, None), Next::Retry { attempt: 2, .. }));
        assert_eq!(b.next(&r, 0.0, None), Next::GiveUp { attempts: 2 });
        assert_eq!(b.next(&r, 0.0, None), Next::GiveUp { attempts: 2 }, "stays given up");
    }

    #[test]
    fn a_server_hint_is_a_floor_with_jitter_on_top() {
        let r = Reconnect { base_delay: 100 * MS, max_delay: 1000 * MS, max_attempts: None };
        let mut b = Backoff::default();
        assert_eq!(b.next(&r, 0.0, Some(1500 * MS)), Next::Retry { attempt: 1, delay: 1500 * MS });
        assert_eq!(b.next(&r, 1.0, Some(1500 * MS)), Next::Retry { attempt: 2, delay: 1700 * MS });
    }
}
