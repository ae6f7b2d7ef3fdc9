//! The manager's monotonic time, passed in rather than read: the process
//! runs on [`Clock::monotonic`], tests on [`Clock::manual`] and move it by
//! hand, so expiry, heartbeat and resume-window decisions are unit tests
//! instead of end-to-end waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock in microseconds since it started. An enum rather than
/// a trait object: it is read on every delivery.
#[derive(Debug, Clone)]
pub enum Clock {
    Monotonic(Instant),
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The real clock, starting now.
    pub fn monotonic() -> Self {
        Self::Monotonic(Instant::now())
    }

    /// A clock that moves only when [`Clock::advance`] is called.
    pub fn manual() -> Self {
        Self::Manual(Arc::new(AtomicU64::new(0)))
    }

    /// Microseconds since the clock started.
    pub fn now_us(&self) -> u64 {
        match self {
            Self::Monotonic(epoch) => epoch.elapsed().as_micros() as u64,
            Self::Manual(us) => us.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward; the real clock ignores it.
    pub fn advance(&self, by: Duration) {
        if let Self::Manual(us) = self {
            us.fetch_add(by.as_micros() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual();
        assert_eq!(clock.now_us(), 0);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_us(), 1_500_000);
        let shared = clock.clone();
        shared.advance(Duration::from_micros(1));
        assert_eq!(clock.now_us(), 1_500_001);
    }

    #[test]
    fn the_monotonic_clock_never_goes_back() {
        let clock = Clock::monotonic();
        let a = clock.now_us();
        clock.advance(Duration::from_secs(10));
        assert!(clock.now_us() >= a);
        assert!(clock.now_us() < 10_000_000, "advance does not move the real clock");
    }
}
