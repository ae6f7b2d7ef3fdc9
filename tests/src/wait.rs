//! Waiting with a deadline instead of sleeping a fixed time.
//!
//! A test that needs something to have happened asks for it again and
//! again until it has, or fails at a deadline that is far beyond what the
//! thing should take; it never sleeps "long enough" and hopes. Three shapes:
//!
//! - [`eventually`]: a probe that yields `Some` once it holds;
//! - [`until_ok`]: a probe that yields `Err(last observation)` until it
//!   holds, so the failure message shows what was seen last;
//! - [`Deadline`]: for hand-written loops whose probe cannot be a closure
//!   (it borrows the test's state mutably, or reads between probes).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep};

/// How often [`eventually`], [`until_ok`] and a [`Deadline`] probe again
/// unless told otherwise.
pub const POLL: Duration = Duration::from_millis(50);

/// Probes until `probe` yields `Some`, at most for `wait`.
///
/// # Panics
/// When the deadline passes first; the message names `what`.
pub async fn eventually<T, F, Fut>(what: &str, wait: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Deadline::new(what, wait);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        deadline.tick("").await;
    }
}

/// Probes every `every` until `probe` yields `Ok`, at most for `wait`.
///
/// # Panics
/// When the deadline passes first; the message names `what` and shows the
/// last `Err`.
pub async fn until_ok<T, E, F, Fut>(what: &str, wait: Duration, every: Duration, mut probe: F) -> T
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Deadline::new(what, wait).every(every);
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) => deadline.tick(last).await,
        }
    }
}

/// The deadline of a hand-written polling loop:
///
/// ```no_run
/// # async fn look() -> u32 { 7 }
/// # async fn example() {
/// use tandem_e2e::WAIT;
/// use tandem_e2e::wait::Deadline;
///
/// let deadline = Deadline::new("the thing", WAIT);
/// loop {
///     let seen = look().await;
///     if seen == 7 {
///         break;
///     }
///     deadline.tick(format!("last seen {seen}")).await;
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Deadline {
    what: String,
    wait: Duration,
    every: Duration,
    at: Instant,
}

impl Deadline {
    /// A deadline `wait` from now, probing every [`POLL`].
    pub fn new(what: impl Into<String>, wait: Duration) -> Self {
        Self { what: what.into(), wait, every: POLL, at: Instant::now() + wait }
    }

    /// Probes every `every` instead of every [`POLL`].
    #[must_use]
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Waits until the next probe is due.
    ///
    /// # Panics
    /// When the deadline has passed: the probe just made was the last one.
    /// The message names what was awaited and shows `last`, what that
    /// probe saw (empty when there is nothing useful to say).
    pub async fn tick(&self, last: impl Display) {
        if self.passed() {
            let last = last.to_string();
            if last.is_empty() {
                panic!("{}: did not happen within {:?}", self.what, self.wait);
            }
            panic!("{}: did not happen within {:?}; last seen: {last}", self.what, self.wait);
        }
        sleep(self.every.min(self.remaining().max(Duration::from_millis(1)))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eventually_returns_the_first_some() {
        let mut calls = 0;
        let got = eventually("three calls", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { (n == 3).then_some(n) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "never: did not happen within 200ms; last seen: still 7")]
    async fn until_ok_fails_at_the_deadline_with_the_last_observation() {
        until_ok("never", Duration::from_millis(200), POLL, || async { Err::<(), _>("still 7") }).await;
    }
}
