//! The connection state machine of one slot: which attempt comes next,
//! after how long, over which transport, and what status that is. It
//! composes [`backoff`](super::backoff), [`transport_plan`](super::transport_plan)
//! and [`verdict`](super::verdict); the tokio glue only carries out its
//! steps and reports what happened.
//!
//! ```text
//!  Connecting ──welcome──▶ Connected ──link ends (retry)──▶ Reconnecting{n, delay}
//!      │                      ▲                                 │      │
//!      │ attempt fails        └──────────welcome────────────────┘      │ attempt fails
//!      ▼                                                               ▼
//!  Reconnecting{1, d} ◀─────────────────────────────────── Reconnecting{n+1, d'}
//!  any state ──stop verdict / out of attempts / close──▶ Disconnected{code, reason}
//! ```

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Backoff, Next, Reconnect};
use super::status::Status;
use super::transport_plan::{Transport, TransportPlan};
use super::verdict::{End, Verdict, judge};

/// What the glue does next when no link is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Wait `delay` (or less, when told to check now), then connect.
    Wait { delay: Duration },
    /// Stop: the status is `Disconnected`.
    Stop,
}

/// One slot's connection state.
#[derive(Debug, Clone)]
pub struct Connection {
    reconnect: Reconnect,
    plan: TransportPlan,
    backoff: Backoff,
    /// The server's wait-before-retry for the next attempt.
    hint: Option<Duration>,
    status: Status,
    /// Whether the first attempt was made.
    started: bool,
}

impl Connection {
    pub fn new(plan: TransportPlan, reconnect: Reconnect) -> Self {
        Self {
            reconnect,
            plan,
            backoff: Backoff::default(),
            hint: None,
            status: Status::Connecting,
            started: false,
        }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The step before the next attempt: none for the first one, the
    /// backoff (with any server hint as its floor) for later ones, or the
    /// end when `max_attempts` ran out. `unit` is a uniform random number
    /// in `[0, 1)` for the jitter.
    pub fn next_step(&mut self, unit: f64) -> Step {
        if matches!(self.status, Status::Disconnected { .. }) {
            return Step::Stop;
        }
        if !self.started {
            self.started = true;
            self.status = Status::Connecting;
            return Step::Wait { delay: Duration::ZERO };
        }
        match self.backoff.next(&self.reconnect, unit, self.hint.take()) {
            Next::Retry { attempt, delay } => {
                self.status = Status::Reconnecting { attempt, delay };
                Step::Wait { delay }
            }
            Next::GiveUp { attempts } => {
                self.status = Status::Disconnected {
                    code: None,
                    reason: format!("gave up after {attempts} failed attempts"),
                };
                Step::Stop
            }
        }
    }

    /// The transport of an attempt starting at `now`.
    pub fn transport(&self, now: Instant) -> Transport {
        self.plan.next(now)
    }

    /// An attempt over `transport` failed before its welcome; `Step::Stop`
    /// when the failure says not to retry.
    pub fn attempt_failed(&mut self, transport: Transport, end: &End, now: Instant) -> Option<Step> {
        if transport == Transport::WebSocket {
            self.plan.ws_failed(now);
        }
        self.judge(end)
    }

    /// A link over `transport` was welcomed.
    pub fn welcomed(&mut self, transport: Transport) {
        if transport == Transport::WebSocket {
            self.plan.ws_welcomed();
        }
        self.backoff.reset();
        self.hint = None;
        self.status = Status::connected(transport);
    }

    /// The open link ended; `hint` is the server's wait-before-retry.
    /// `Step::Stop` when the end says not to retry.
    pub fn link_ended(&mut self, end: &End, hint: Option<Duration>) -> Option<Step> {
        self.hint = hint;
        self.judge(end)
    }

    /// When an open SSE link of `Auto` should probe WebSocket.
    pub fn probe_at(&self) -> Option<Instant> {
        self.plan.probe_at()
    }

    /// A background WebSocket probe failed.
    pub fn probe_failed(&mut self, now: Instant) {
        self.plan.ws_failed(now);
    }

    /// Stopped from outside (closed, or another slot was told to stop).
    pub fn stop(&mut self, code: Option<u16>, reason: String) {
        self.status = Status::Disconnected { code, reason };
    }

    fn judge(&mut self, end: &End) -> Option<Step> {
        match judge(end) {
            Verdict::Retry => None,
            Verdict::Stop { code, reason } => {
                self.status = Status::Disconnected { code, reason };
                Some(Step::Stop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(max_attempts: Option<u32>) -> Reconnect {
        Reconnect { base_delay: 100 * MS, max_delay: 1000 * MS, max_attempts }
    }

    fn closed(code: u16) -> End {
        End::Closed { code: Some(code), reason: "r".into() }
    }

    #[test]
    fn auto_walks_connecting_reconnecting_fallback_connected() {
        let t0 = Instant::now();
        let mut c = Connection::new(TransportPlan::auto(2, Duration::from_secs(60)), policy(None));
        assert_eq!(c.next_step(0.5), Step::Wait { delay: Duration::ZERO });
        assert_eq!(c.status(), &Status::Connecting);
        assert_eq!(c.transport(t0), Transport::WebSocket);
        assert_eq!(c.attempt_failed(Transport::WebSocket, &End::TimedOut, t0), None);
        assert_eq!(c.next_step(0.5), Step::Wait { delay: 50 * MS });
        assert_eq!(c.status(), &Status::Reconnecting { attempt: 1, delay: 50 * MS });
        assert_eq!(c.transport(t0), Transport::WebSocket);
        c.attempt_failed(
            Transport::WebSocket,
            &End::Refused { status: 502, code: String::new(), message: String::new(), retry: None },
            t0,
        );
        assert_eq!(c.next_step(0.5), Step::Wait { delay: 100 * MS });
        assert_eq!(c.status(), &Status::Reconnecting { attempt: 2, delay: 100 * MS });
        assert_eq!(c.transport(t0), Transport::Sse, "fell back after two WebSocket failures");
        c.welcomed(Transport::Sse);
        assert_eq!(c.status(), &Status::connected(Transport::Sse));
        assert_eq!(c.probe_at(), Some(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_lost_link_starts_the_backoff_again_at_retry_one() {
        let t0 = Instant::now();
        let mut c = Connection::new(TransportPlan::fixed(Transport::WebSocket), policy(None));
        c.next_step(1.0);
        for _ in 0..3 {
            c.attempt_failed(Transport::WebSocket, &End::Failed("refused".into()), t0);
            c.next_step(1.0);
        }
        assert_eq!(c.status(), &Status::Reconnecting { attempt: 3, delay: 400 * MS });
        c.welcomed(Transport::WebSocket);
        assert_eq!(c.link_ended(&closed(4008), None), None);
        assert_eq!(c.next_step(1.0), Step::Wait { delay: 100 * MS });
        assert_eq!(c.status(), &Status::Reconnecting { attempt: 1, delay: 100 * MS });
    }

    #[test]
    fn a_shutdown_hint_is_the_floor_of_the_next_delay_only() {
        let mut c = Connection::new(TransportPlan::fixed(Transport::Sse), policy(None));
        c.next_step(0.0);
        c.welcomed(Transport::Sse);
        c.link_ended(&closed(1012), Some(1500 * MS));
        assert_eq!(c.next_step(0.0), Step::Wait { delay: 1500 * MS });
        c.attempt_failed(Transport::Sse, &End::TimedOut, Instant::now());
        assert_eq!(c.next_step(0.0), Step::Wait { delay: Duration::ZERO }, "the hint was used up");
    }

    #[test]
    fn stop_verdicts_and_running_out_end_in_disconnected() {
        let t0 = Instant::now();
        let mut c = Connection::new(TransportPlan::fixed(Transport::WebSocket), policy(None));
        c.next_step(0.0);
        c.welcomed(Transport::WebSocket);
        assert_eq!(c.link_ended(&closed(4001), None), Some(Step::Stop));
        assert_eq!(c.status(), &Status::Disconnected { code: Some(4001), reason: "r".into() });
        assert_eq!(c.next_step(0.0), Step::Stop, "stays stopped");

        let mut c = Connection::new(TransportPlan::auto(2, Duration::from_secs(60)), policy(None));
        c.next_step(0.0);
        let refused =
            End::Refused { status: 401, code: "invalid_token".into(), message: String::new(), retry: None };
        assert_eq!(c.attempt_failed(Transport::WebSocket, &refused, t0), Some(Step::Stop));
        assert_eq!(c.status(), &Status::Disconnected { code: Some(401), reason: "invalid_token".into() });

        let mut c = Connection::new(TransportPlan::fixed(Transport::Sse), policy(Some(2)));
        c.next_step(0.0);
        for _ in 0..2 {
            c.attempt_failed(Transport::Sse, &End::TimedOut, t0);
            assert!(matches!(c.next_step(0.0), Step::Wait { .. }));
        }
        c.attempt_failed(Transport::Sse, &End::TimedOut, t0);
        assert_eq!(c.next_step(0.0), Step::Stop);
        assert_eq!(
            c.status(),
            &Status::Disconnected { code: None, reason: "gave up after 2 failed attempts".into() }
        );
    }

    #[test]
    fn a_failed_probe_restarts_the_probe_clock() {
        let t0 = Instant::now();
        let mut c = Connection::new(TransportPlan::auto(1, Duration::from_secs(60)), policy(None));
        c.next_step(0.0);
        c.attempt_failed(Transport::WebSocket, &End::TimedOut, t0);
        c.next_step(0.0);
        c.welcomed(Transport::Sse);
        assert_eq!(c.probe_at(), Some(t0 + Duration::from_secs(60)));
        c.probe_failed(t0 + Duration::from_secs(60));
        assert_eq!(c.probe_at(), Some(t0 + Duration::from_secs(120)));
        c.welcomed(Transport::WebSocket);
        assert_eq!(c.probe_at(), None);
    }
}
