//! Periodic sweeps: session expiry, heartbeats, and shutdown's farewell.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{ConnectionManager, Session};
use crate::session::connection::{CloseReason, Outbound, Push};
use crate::telemetry as ev;

/// Whether a session is past its resume window: no connection, and
/// detached for at least `window_ms`.
pub fn expiry_due(now_ms: u64, connections: usize, detached_at_ms: Option<u64>, window_ms: u64) -> bool {
    connections == 0 && detached_at_ms.is_some_and(|t| now_ms.saturating_sub(t) >= window_ms)
}

/// What one heartbeat round does to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Silent past the timeout: close it.
    Close,
    /// A heartbeat is due: queue one.
    Beat,
    Nothing,
}

/// The heartbeat decision for one connection, from when its peer last
/// proved alive and when its last heartbeat was queued.
pub fn heartbeat_action(
    now_ms: u64,
    last_alive_ms: u64,
    last_heartbeat_ms: u64,
    timeout_ms: u64,
    interval_ms: u64,
) -> HeartbeatAction {
    if now_ms.saturating_sub(last_alive_ms) > timeout_ms {
        HeartbeatAction::Close
    } else if now_ms.saturating_sub(last_heartbeat_ms) >= interval_ms {
        HeartbeatAction::Beat
    } else {
        HeartbeatAction::Nothing
    }
}

/// How often the heartbeat sweep runs: a quarter of the shorter of
/// interval and timeout (so silence is caught close to the timeout),
/// between 100 ms and 1 s.
pub fn sweep_period(interval: Duration, timeout: Duration) -> Duration {
    (interval.min(timeout) / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

impl ConnectionManager {
    /// Drops sessions detached for longer than the resume window.
    pub fn expire_sessions(&self) -> usize {
        let now = self.now_ms();
        let window = self.limits.resume_window.as_millis() as u64;
        let expired: Vec<Arc<Session>> = self
            .sessions
            .iter()
            .filter(|s| {
                let inner = s.inner.lock();
                expiry_due(now, inner.connections.len(), inner.detached_at_ms, window)
            })
            .map(|s| Arc::clone(s.value()))
            .collect();
        for s in &expired {
            self.end_session(s, true, CloseReason::Disconnected);
        }
        expired.len()
    }

    /// One heartbeat round: closes connections whose peer has been silent
    /// past the timeout, and queues a heartbeat on those due one. Run it
    /// more often than the interval so silence is caught close to the
    /// timeout.
    pub fn heartbeat_sweep(&self) -> usize {
        let now = self.now_ms();
        let timeout = self.limits.heartbeat_timeout.as_millis() as u64;
        let interval = self.limits.heartbeat_interval.as_millis() as u64;
        let mut closed = 0;
        for att in self.all_connections() {
            let c = &att.conn;
            let alive = c.last_alive_ms.load(Ordering::Relaxed);
            let beat = c.heartbeat_ms.load(Ordering::Relaxed);
            match heartbeat_action(now, alive, beat, timeout, interval) {
                HeartbeatAction::Close => {
                    self.force_close(&att, CloseReason::HeartbeatTimeout);
                    closed += 1;
                }
                HeartbeatAction::Beat => {
                    c.heartbeat_ms.store(now, Ordering::Relaxed);
                    if c.push(Outbound::Heartbeat) == Push::Full {
                        self.force_close(&att, CloseReason::SlowConsumer);
                    }
                }
                HeartbeatAction::Nothing => c.release_idle_queue(),
            }
        }
        closed + self.token_sweep()
    }

    /// How often [`Self::heartbeat_sweep`] should run.
    pub fn sweep_period(&self) -> Duration {
        sweep_period(self.limits.heartbeat_interval, self.limits.heartbeat_timeout)
    }

    /// Shutdown: refuse new connections and tell every client to come back
    /// after `retry_after_ms` plus jitter, flushing what is queued.
    pub fn begin_shutdown(&self, retry_after_ms: u64) -> usize {
        self.draining.store(true, Ordering::Relaxed);
        let conns = self.all_connections();
        for att in &conns {
            let jitter = rand::random_range(0..=retry_after_ms);
            let reason = CloseReason::Shutdown { retry_after_ms: retry_after_ms + jitter };
            if att.conn.close(reason, true) {
                ev::closing(&self.telemetry, att.ids(), reason);
            }
        }
        conns.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant;

    use tandem_protocol::Transport;

    use super::*;
    use crate::manager::test_support::{manager_with_clock, player};
    use crate::manager::{AttachRequest, Attached, Clock};

    fn attach(m: &ConnectionManager, session_id: Option<&str>) -> Attached {
        let req = AttachRequest {
            transport: Transport::WebSocket,
            session_id: session_id.map(str::to_owned),
            last_seq: None,
            channels: Vec::new(),
            granted: Vec::new(),
            started: Instant::now(),
            remote_connections: 0,
            adopt: None,
            positions: Vec::new(),
        };
        m.attach(&player("alice"), req).unwrap()
    }

    #[test]
    fn a_dropped_session_resumes_within_its_window_and_expires_after_it() {
        let clock = Clock::manual();
        let m = manager_with_clock(clock.clone());
        let window = m.limits().resume_window;
        let first = attach(&m, None);
        m.detach(&first, "client_gone");
        clock.advance(window - Duration::from_millis(1));
        assert_eq!(m.expire_sessions(), 0, "still inside the window");
        let again = attach(&m, Some(&first.session.id));
        assert!(Arc::ptr_eq(&again.session, &first.session), "resumed, not a new session");
        m.detach(&again, "client_gone");
        // The window restarts at the second drop.
        clock.advance(window - Duration::from_millis(1));
        assert_eq!(m.expire_sessions(), 0);
        clock.advance(Duration::from_millis(1));
        assert_eq!(m.expire_sessions(), 1, "expired at the end of the window");
        let later = attach(&m, Some(&first.session.id));
        assert!(!Arc::ptr_eq(&later.session, &first.session), "an expired session is not resumed");
    }

    #[test]
    fn a_connected_session_never_expires() {
        let clock = Clock::manual();
        let m = manager_with_clock(clock.clone());
        let _held = attach(&m, None);
        clock.advance(m.limits().resume_window * 10);
        assert_eq!(m.expire_sessions(), 0);
    }

    #[test]
    fn heartbeats_are_queued_each_interval_and_silence_closes_after_the_timeout() {
        let clock = Clock::manual();
        let m = manager_with_clock(clock.clone());
        let (interval, timeout) = (m.limits().heartbeat_interval, m.limits().heartbeat_timeout);
        let att = attach(&m, None);
        assert_eq!(m.heartbeat_sweep(), 0);
        clock.advance(interval);
        assert_eq!(m.heartbeat_sweep(), 0, "a beat is due, nothing closes");
        assert_eq!(att.conn.heartbeat_ms.load(Ordering::Relaxed), m.now_ms(), "the beat was queued now");
        clock.advance(timeout - interval);
        assert_eq!(m.heartbeat_sweep(), 0, "silent for exactly the timeout: still alive");
        assert_eq!(att.conn.closing(), None);
        clock.advance(Duration::from_millis(1));
        assert_eq!(m.heartbeat_sweep(), 1, "silent past the timeout: closed");
        assert_eq!(att.conn.closing(), Some(CloseReason::HeartbeatTimeout));
    }

    #[tokio::test(start_paused = true)]
    async fn drained_waits_for_the_last_connection_and_no_longer() {
        use futures_util::FutureExt;

        let m = Arc::new(manager_with_clock(Clock::manual()));
        assert!(m.drained().now_or_never().is_some(), "no connection: drained at once");

        let (first, last) = (attach(&m, None), attach(&m, None));
        let grace = Duration::from_secs(5);
        assert!(
            tokio::time::timeout(grace, m.drained()).await.is_err(),
            "connections stay: the grace runs out"
        );

        let waiting = tokio::spawn({
            let m = Arc::clone(&m);
            async move { m.drained().await }
        });
        tokio::task::yield_now().await;
        m.begin_shutdown(1000);
        m.detach(&first, "shutdown");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one connection is left");
        m.detach(&last, "shutdown");
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("woken by the last detach, not by time")
            .unwrap();
        assert!(m.drained().now_or_never().is_some());
    }

    #[test]
    fn expiry_needs_no_connection_and_a_full_window() {
        assert!(!expiry_due(10_000, 1, Some(0), 5_000), "a connected session never expires");
        assert!(!expiry_due(10_000, 0, None, 5_000), "never detached");
        assert!(!expiry_due(4_999, 0, Some(0), 5_000));
        assert!(expiry_due(5_000, 0, Some(0), 5_000));
        assert!(!expiry_due(0, 0, Some(100), 5_000), "clock before detach saturates");
    }

    #[test]
    fn heartbeat_closes_after_timeout_and_beats_each_interval() {
        use HeartbeatAction::{Beat, Close, Nothing};
        // timeout 45 s, interval 15 s
        assert_eq!(heartbeat_action(1_000, 0, 0, 45_000, 15_000), Nothing);
        assert_eq!(heartbeat_action(15_000, 0, 0, 45_000, 15_000), Beat);
        assert_eq!(heartbeat_action(20_000, 0, 15_000, 45_000, 15_000), Nothing);
        assert_eq!(heartbeat_action(45_000, 0, 30_000, 45_000, 15_000), Beat, "at the timeout: still alive");
        assert_eq!(heartbeat_action(45_001, 0, 45_000, 45_000, 15_000), Close);
        assert_eq!(heartbeat_action(60_000, 50_000, 45_000, 45_000, 15_000), Beat);
    }

    #[test]
    fn sweep_period_is_a_quarter_clamped() {
        let s = Duration::from_secs;
        assert_eq!(sweep_period(s(15), s(45)), s(1));
        assert_eq!(sweep_period(s(2), s(3)), Duration::from_millis(500));
        assert_eq!(sweep_period(Duration::from_millis(100), s(3)), Duration::from_millis(100));
    }
}
