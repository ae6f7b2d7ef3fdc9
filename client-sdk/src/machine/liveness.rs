//! When a silent link counts as dead: no frame (heartbeats included)
//! within the announced `heartbeat_interval_ms` × a factor, timed from the
//! last frame actually received. Timers only wake the check; a timer that
//! fires late (a throttled background process) never fakes a dead link,
//! because the verdict compares receive times, not timer ticks.

use std::time::Duration;

use tokio::time::Instant;

/// The liveness factor unless the options say otherwise.
pub const DEFAULT_LIVENESS_FACTOR: f64 = 2.0;

/// The liveness clock of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// Longest allowed silence; `None` when the server announced no
    /// heartbeat (then only the transport notices a dead link).
    window: Option<Duration>,
    last_received: Instant,
    /// A forced check (`Client::reconnect`): proof of life is needed by
    /// this instant from a frame received after `since`.
    check: Option<(Instant, Instant)>,
}

impl Liveness {
    /// A link welcomed at `now` whose server beats every
    /// `heartbeat_interval_ms`.
    pub fn new(heartbeat_interval_ms: u64, factor: f64, now: Instant) -> Self {
        let factor = if factor.is_finite() && factor >= 1.0 { factor } else { DEFAULT_LIVENESS_FACTOR };
        let window =
            (heartbeat_interval_ms > 0).then(|| Duration::from_millis(heartbeat_interval_ms).mul_f64(factor));
        Self { window, last_received: now, check: None }
    }

    /// Something arrived at `at` (a frame, a heartbeat, a ping).
    pub fn received(&mut self, at: Instant) {
        if at > self.last_received {
            self.last_received = at;
        }
        if self.check.is_some_and(|(since, _)| at >= since) {
            self.check = None;
        }
    }

    /// Asks for proof of life within `within` of `now` (a ping is sent
    /// alongside); the link is dead when nothing arrives by then.
    pub fn force_check(&mut self, now: Instant, within: Duration) {
        self.check = Some((now, now + within));
    }

    /// When the link is dead unless something arrives first.
    pub fn deadline(&self) -> Option<Instant> {
        let silent = self.window.map(|w| self.last_received + w);
        let check = self.check.map(|(_, by)| by);
        match (silent, check) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the link is dead at `now`.
    pub fn is_dead(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn silence_longer_than_interval_times_factor_is_dead() {
        let t0 = Instant::now();
        let l = Liveness::new(1000, 2.0, t0);
        assert_eq!(l.deadline(), Some(t0 + 2 * S));
        assert!(!l.is_dead(t0 + S));
        assert!(l.is_dead(t0 + 2 * S));
    }

    #[test]
    fn every_received_frame_moves_the_deadline() {
        let t0 = Instant::now();
        let mut l = Liveness::new(1000, 2.0, t0);
        l.received(t0 + S + S / 2);
        assert!(!l.is_dead(t0 + 3 * S));
        assert!(l.is_dead(t0 + 3 * S + S / 2));
        l.received(t0 + S);
        assert_eq!(l.deadline(), Some(t0 + 3 * S + S / 2), "an older receive time never moves it back");
    }

    #[test]
    fn a_late_timer_does_not_fake_death_when_frames_kept_coming() {
        // The process slept for 10 s (throttled); frames arrived meanwhile
        // and are recorded with their receive times before the check.
        let t0 = Instant::now();
        let mut l = Liveness::new(1000, 2.0, t0);
        for k in 1..=10 {
            l.received(t0 + k * S);
        }
        assert!(!l.is_dead(t0 + 10 * S + S / 2));
    }

    #[test]
    fn a_forced_check_needs_a_frame_after_it() {
        let t0 = Instant::now();
        let mut l = Liveness::new(15_000, 2.0, t0);
        l.force_check(t0 + S, S);
        assert_eq!(l.deadline(), Some(t0 + 2 * S));
        assert!(l.is_dead(t0 + 2 * S));
        l.received(t0 + S + S / 2);
        assert_eq!(l.deadline(), Some(t0 + S + S / 2 + 30 * S), "answered: back to the heartbeat window");
    }

    #[test]
    fn no_heartbeat_means_no_silence_deadline_and_bad_factors_fall_back() {
        let t0 = Instant::now();
        assert_eq!(Liveness::new(0, 2.0, t0).deadline(), None);
        assert_eq!(Liveness::new(1000, f64::NAN, t0).deadline(), Some(t0 + 2 * S));
        assert_eq!(Liveness::new(1000, 0.1, t0).deadline(), Some(t0 + 2 * S));
    }
}
