//! Which transport the next attempt uses. `Auto` prefers WebSocket, falls
//! back to SSE after WebSocket failed to reach a welcome several times in a
//! row (a proxy that blocks or stalls upgrades), and probes WebSocket again
//! later; the fixed modes never switch.

use std::time::Duration;

use tokio::time::Instant;

/// How a client connects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// WebSocket, with SSE as the fallback (the default).
    #[default]
    Auto,
    /// WebSocket only.
    WebSocket,
    /// Server-Sent Events plus `POST /sessions/{id}/messages` only.
    Sse,
    /// Both at once, on the same session, for redundancy; each `seq` still
    /// reaches the application once.
    Dual,
}

/// One of the two transports: the workspace's one [`Transport`] from
/// `tandem-protocol`, re-exported here (and as `tandem_client::Transport`)
/// so this path keeps compiling.
pub use tandem_protocol::Transport;

/// The WebSocket failures that make `Auto` fall back, unless the options
/// say otherwise.
pub const DEFAULT_WS_FAILURES_BEFORE_FALLBACK: u32 = 2;

/// How long `Auto` stays on SSE before it probes WebSocket again, unless the
/// options say otherwise.
pub const DEFAULT_WS_PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// The transport choice of one connection slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportPlan {
    /// What this slot may use: `Auto` or one fixed transport (each slot of
    /// dual mode has its own fixed plan).
    fixed: Option<Transport>,
    failures_before_fallback: u32,
    probe_interval: Duration,
    /// WebSocket attempts in a row that did not reach a welcome.
    ws_failures: u32,
    /// Since when `Auto` has been on SSE (the probe clock).
    fallback_since: Option<Instant>,
}

impl TransportPlan {
    /// `Auto`'s plan.
    pub fn auto(failures_before_fallback: u32, probe_interval: Duration) -> Self {
        Self {
            fixed: None,
            failures_before_fallback: failures_before_fallback.max(1),
            probe_interval,
            ws_failures: 0,
            fallback_since: None,
        }
    }

    /// A plan that always uses `transport`.
    pub fn fixed(transport: Transport) -> Self {
        Self { fixed: Some(transport), ..Self::auto(1, DEFAULT_WS_PROBE_INTERVAL) }
    }

    /// The transport for an attempt starting at `now`. On fallback, a
    /// reconnect after the probe interval tries WebSocket first.
    pub fn next(&self, now: Instant) -> Transport {
        if let Some(t) = self.fixed {
            return t;
        }
        match self.fallback_since {
            Some(since) if now < since + self.probe_interval => Transport::Sse,
            _ => Transport::WebSocket,
        }
    }

    /// A WebSocket attempt failed before its welcome (refused, timed out,
    /// closed, or a proxy passed nothing).
    pub fn ws_failed(&mut self, now: Instant) {
        if self.fixed.is_some() {
            return;
        }
        self.ws_failures = self.ws_failures.saturating_add(1);
        if self.fallback_since.is_some() || self.ws_failures >= self.failures_before_fallback {
            // Falling back now, or a probe failed: the probe clock restarts.
            self.fallback_since = Some(now);
        }
    }

    /// A WebSocket reached its welcome: back on WebSocket for good.
    pub fn ws_welcomed(&mut self) {
        self.ws_failures = 0;
        self.fallback_since = None;
    }

    /// Whether `Auto` is on its SSE fallback.
    pub fn on_fallback(&self) -> bool {
        self.fallback_since.is_some()
    }

    /// When an open SSE fallback link should probe WebSocket in the
    /// background; `None` when no probe is due ever.
    pub fn probe_at(&self) -> Option<Instant> {
        if self.fixed.is_some() {
            return None;
        }
        self.fallback_since.map(|since| since + self.probe_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn auto_starts_on_websocket_and_falls_back_after_the_failures() {
        let t0 = Instant::now();
        let mut p = TransportPlan::auto(2, 60 * S);
        assert_eq!(p.next(t0), Transport::WebSocket);
        p.ws_failed(t0);
        assert_eq!(p.next(t0), Transport::WebSocket, "one failure is not enough");
        p.ws_failed(t0 + S);
        assert!(p.on_fallback());
        assert_eq!(p.next(t0 + S), Transport::Sse);
        assert_eq!(p.probe_at(), Some(t0 + 61 * S));
    }

    #[test]
    fn a_welcome_in_between_resets_the_count() {
        let t0 = Instant::now();
        let mut p = TransportPlan::auto(2, 60 * S);
        p.ws_failed(t0);
        p.ws_welcomed();
        p.ws_failed(t0);
        assert_eq!(p.next(t0), Transport::WebSocket);
    }

    #[test]
    fn after_the_probe_interval_websocket_is_tried_again() {
        let t0 = Instant::now();
        let mut p = TransportPlan::auto(2, 60 * S);
        p.ws_failed(t0);
        p.ws_failed(t0);
        assert_eq!(p.next(t0 + 59 * S), Transport::Sse);
        assert_eq!(p.next(t0 + 60 * S), Transport::WebSocket);
        // The probe fails: back to SSE for another interval.
        p.ws_failed(t0 + 60 * S);
        assert_eq!(p.next(t0 + 61 * S), Transport::Sse);
        assert_eq!(p.probe_at(), Some(t0 + 120 * S));
        // The next probe welcomes: WebSocket from then on.
        p.ws_welcomed();
        assert!(!p.on_fallback());
        assert_eq!(p.next(t0 + 121 * S), Transport::WebSocket);
        assert_eq!(p.probe_at(), None);
    }

    #[test]
    fn fixed_plans_never_switch_or_probe() {
        let t0 = Instant::now();
        for t in [Transport::WebSocket, Transport::Sse] {
            let mut p = TransportPlan::fixed(t);
            for k in 0..5 {
                p.ws_failed(t0 + k * S);
            }
            assert_eq!(p.next(t0 + 500 * S), t);
            assert_eq!(p.probe_at(), None);
        }
    }

    #[test]
    fn a_zero_threshold_still_needs_one_failure() {
        let t0 = Instant::now();
        let mut p = TransportPlan::auto(0, 60 * S);
        assert_eq!(p.next(t0), Transport::WebSocket);
        p.ws_failed(t0);
        assert_eq!(p.next(t0), Transport::Sse);
    }
}
