//! Session state as plain synchronous code: sequence numbers, the bounded
//! delivery history, resume planning and the subscription set. No I/O, no
//! clock reads: the connection manager drives it under the session's lock.

use std::collections::VecDeque;
use std::sync::Arc;

/// What a reconnecting client gets, given the `last_seq` it saw.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumePlan<T> {
    /// Nothing to replay: no `last_seq` was given (a join, not a resume).
    Join,
    /// Every delivery after `last_seq` is still in the history.
    Replay(Vec<(u64, T)>),
    /// Some deliveries after `last_seq` are gone (or `last_seq` is from the
    /// future): the client must resynchronise.
    Gap,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    TooMany { max: usize },
}

/// The state of one session. `T` is the shared delivery payload.
#[derive(Debug)]
pub struct SessionState<T> {
    last_seq: u64,
    history: VecDeque<(u64, T)>,
    history_cap: usize,
    /// Sorted, exactly as long as it needs: a `BTreeSet` node takes ~190
    /// bytes for the one channel most sessions hold.
    subscriptions: Vec<Arc<str>>,
}

impl<T: Clone> SessionState<T> {
    pub fn new(history_cap: usize) -> Self {
        Self {
            last_seq: 0,
            // Allocated on first delivery: idle sessions stay small.
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            subscriptions: Vec::new(),
        }
    }

    /// A session taken over from another node: its client had `last_seq`,
    /// so numbering carries on from there (the history starts empty).
    pub fn starting_at(history_cap: usize, last_seq: u64) -> Self {
        Self { last_seq, ..Self::new(history_cap) }
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Assigns the next sequence number to `item` and records it.
    pub fn record(&mut self, item: T) -> u64 {
        self.last_seq += 1;
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back((self.last_seq, item));
        self.last_seq
    }

    /// Plans a resume after `last_seq` (None: a plain join).
    pub fn plan_resume(&self, last_seq: Option<u64>) -> ResumePlan<T> {
        let Some(after) = last_seq else { return ResumePlan::Join };
        if after > self.last_seq {
            return ResumePlan::Gap;
        }
        if after == self.last_seq {
            return ResumePlan::Replay(Vec::new());
        }
        match self.history.front() {
            Some((oldest, _)) if *oldest <= after + 1 => {
                let skip = (after + 1 - oldest) as usize;
                ResumePlan::Replay(self.history.iter().skip(skip).cloned().collect())
            }
            _ => ResumePlan::Gap,
        }
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &Arc<str>> {
        self.subscriptions.iter()
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.find(channel).is_ok()
    }

    fn find(&self, channel: &str) -> Result<usize, usize> {
        self.subscriptions.binary_search_by(|c| (**c).cmp(channel))
    }

    /// Adds a subscription; `Ok(false)` when it already existed. `max` does
    /// not count the implicit personal channel.
    pub fn subscribe(
        &mut self,
        channel: Arc<str>,
        max: usize,
        implicit: bool,
    ) -> Result<bool, SubscribeError> {
        let Err(at) = self.find(&channel) else { return Ok(false) };
        if !implicit && self.subscriptions.len() > max {
            return Err(SubscribeError::TooMany { max });
        }
        // Grown one at a time: at most `max` + 1 entries, and most sessions
        // stay at one or two.
        self.subscriptions.reserve_exact(1);
        self.subscriptions.insert(at, channel);
        Ok(true)
    }

    /// Removes a subscription; `false` when there was none.
    pub fn unsubscribe(&mut self, channel: &str) -> bool {
        let Ok(at) = self.find(channel) else { return false };
        self.subscriptions.remove(at);
        self.subscriptions.shrink_to_fit();
        true
    }

    /// Drops everything (on expiry) and returns the subscriptions to undo.
    pub fn take_subscriptions(&mut self) -> Vec<Arc<str>> {
        self.history = VecDeque::new();
        std::mem::take(&mut self.subscriptions)
    }
}

/// Client messages refused in a row (over the rate limit) before the
/// client's link is closed as abusive (4029 `rate_limited`), on WebSocket
/// and on the SSE uplink alike.
pub const RATE_LIMIT_STRIKES: u32 = 10;

/// A token bucket: `rate` tokens per second, at most `burst` saved up. Time
/// is passed in, so it is tested without a clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32, now_ms: u64) -> Self {
        let burst = f64::from(burst.max(1));
        Self { tokens: burst, rate: f64::from(rate.max(1)), burst, last_ms: now_ms }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the inbound rate rule says of one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Allowed,
    /// Over the rate: refuse this message (`rate_limited`), keep the link.
    Refused,
    /// [`RATE_LIMIT_STRIKES`] refusals in a row: close the link as abusive.
    Abusive,
}

/// The inbound rate rule, written once for WebSocket messages and SSE
/// uplink posts: a token bucket, and a run of refusals that closes.
#[derive(Debug, Clone)]
pub struct RateGate {
    bucket: TokenBucket,
    /// Messages refused in a row.
    strikes: u32,
}

impl RateGate {
    pub fn new(rate: u32, burst: u32, now_ms: u64) -> Self {
        Self { bucket: TokenBucket::new(rate, burst, now_ms), strikes: 0 }
    }

    pub fn check(&mut self, now_ms: u64) -> RateVerdict {
        if self.bucket.try_take(now_ms) {
            self.strikes = 0;
            RateVerdict::Allowed
        } else {
            self.strikes = self.strikes.saturating_add(1);
            if self.strikes >= RATE_LIMIT_STRIKES { RateVerdict::Abusive } else { RateVerdict::Refused }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rate_gate_refuses_over_the_rate_and_closes_after_the_strikes() {
        // 1 message/s, burst 2.
        let mut gate = RateGate::new(1, 2, 0);
        assert_eq!(gate.check(0), RateVerdict::Allowed);
        assert_eq!(gate.check(0), RateVerdict::Allowed);
        for _ in 1..RATE_LIMIT_STRIKES {
            assert_eq!(gate.check(0), RateVerdict::Refused);
        }
        assert_eq!(gate.check(0), RateVerdict::Abusive, "the tenth refusal in a row");
        assert_eq!(gate.check(1_000), RateVerdict::Allowed, "a token came back");
        assert_eq!(gate.check(1_000), RateVerdict::Refused, "the run restarted at one");
    }

    fn filled(cap: usize, n: u64) -> SessionState<u64> {
        let mut s = SessionState::new(cap);
        for i in 1..=n {
            assert_eq!(s.record(i * 10), i);
        }
        s
    }

    #[test]
    fn seq_counts_without_gaps_and_history_is_bounded() {
        let s = filled(3, 5);
        assert_eq!(s.last_seq(), 5);
        assert_eq!(s.plan_resume(Some(2)), ResumePlan::Replay(vec![(3, 30), (4, 40), (5, 50)]));
    }

    #[test]
    fn resume_plans() {
        let s = filled(3, 5);
        assert_eq!(s.plan_resume(None), ResumePlan::Join);
        assert_eq!(s.plan_resume(Some(5)), ResumePlan::Replay(vec![]));
        assert_eq!(s.plan_resume(Some(4)), ResumePlan::Replay(vec![(5, 50)]));
        assert_eq!(s.plan_resume(Some(1)), ResumePlan::Gap, "seq 2 fell out of the history");
        assert_eq!(s.plan_resume(Some(9)), ResumePlan::Gap, "from the future");
        let empty: SessionState<u64> = SessionState::new(3);
        assert_eq!(empty.plan_resume(Some(0)), ResumePlan::Replay(vec![]));
    }

    #[test]
    fn subscriptions_respect_the_limit_but_not_for_the_personal_channel() {
        let mut s: SessionState<u64> = SessionState::new(1);
        assert_eq!(s.subscribe("player:a".into(), 2, true), Ok(true));
        assert_eq!(s.subscribe("room:1".into(), 2, false), Ok(true));
        assert_eq!(s.subscribe("room:1".into(), 2, false), Ok(false));
        assert_eq!(s.subscribe("room:2".into(), 2, false), Ok(true));
        assert_eq!(s.subscribe("room:3".into(), 2, false), Err(SubscribeError::TooMany { max: 2 }));
        assert!(s.unsubscribe("room:1"));
        assert!(!s.unsubscribe("room:1"));
        assert_eq!(s.subscribe("room:3".into(), 2, false), Ok(true));
        assert!(s.is_subscribed("room:3") && !s.is_subscribed("room:1"));
        let listed: Vec<&str> = s.subscriptions().map(|c| &**c).collect();
        assert_eq!(listed, ["player:a", "room:2", "room:3"], "sorted, like the set it replaced");
        assert_eq!(s.take_subscriptions().len(), 3);
        assert_eq!(s.subscriptions().count(), 0);
    }

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let mut b = TokenBucket::new(2, 3, 0);
        assert!(b.try_take(0) && b.try_take(0) && b.try_take(0));
        assert!(!b.try_take(0), "burst spent");
        assert!(!b.try_take(400));
        assert!(b.try_take(500), "one token after 0.5 s at 2/s");
        assert!(!b.try_take(500));
        assert!(b.try_take(10_000) && b.try_take(10_000) && b.try_take(10_000));
        assert!(!b.try_take(10_000), "never more than the burst");
    }
}
