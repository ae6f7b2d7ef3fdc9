//! Supervised background tasks: a task that panics or returns is logged as
//! a critical `system_error` and restarted with exponential backoff, so a
//! sweeper never dies silently.
//!
//! Every task runs until one shutdown signal (a [`CancellationToken`]) and
//! is tracked (a [`TaskTracker`]), so shutdown can stop them all and wait
//! until they are gone instead of leaving them to die with the runtime in
//! the middle of a Redis write.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_monitoring::backoff::Backoff;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Between restarts: 100 ms doubling to at most 30 s.
const RESTART: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// A task that ran this long before failing starts over at the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Told of each failure: the task's name, what went wrong, the backoff
/// before its restart.
pub type OnFailure = Arc<dyn Fn(&'static str, &str, Duration) + Send + Sync>;

/// Runs background tasks under supervision until [`Supervisor::stop`].
#[derive(Clone)]
pub struct Supervisor {
    stop: CancellationToken,
    tracker: TaskTracker,
    on_failure: OnFailure,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("tracker", &self.tracker).finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(on_failure: OnFailure) -> Self {
        Self { stop: CancellationToken::new(), tracker: TaskTracker::new(), on_failure }
    }

    /// Runs `make()` under supervision until the supervisor stops: a run
    /// that panics or returns is reported and, after the backoff, started
    /// again.
    pub fn supervise<F, Fut>(&self, name: &'static str, make: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, tracker, on_failure) =
            (self.stop.clone(), self.tracker.clone(), Arc::clone(&self.on_failure));
        self.tracker.spawn(async move {
            let mut attempt = 0;
            loop {
                let started = Instant::now();
                // Its own task, so a panic is caught here; stopped by the
                // same signal, so it is never left running on its own.
                let run = tracker.spawn(stop.clone().run_until_cancelled_owned(make()));
                let error = match run.await {
                    Ok(Some(())) => "task returned".to_owned(),
                    Ok(None) => return, // stopped
                    Err(e) if e.is_panic() => {
                        let p = e.into_panic();
                        p.downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".to_owned())
                    }
                    Err(_) => return, // cancelled: the runtime is shutting down
                };
                if started.elapsed() >= STABLE_AFTER {
                    attempt = 0;
                }
                let backoff = RESTART.delay(attempt);
                on_failure(name, &error, backoff);
                if stop.run_until_cancelled(tokio::time::sleep(backoff)).await.is_none() {
                    return;
                }
                attempt = attempt.saturating_add(1);
            }
        });
    }

    /// Signals every task to stop and waits until all have ended, at most
    /// `within`; `false` if some were still running then.
    pub async fn stop(&self, within: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait()).await.is_ok()
    }
}

/// Calls `tick` every `period`, forever (the body of a periodic task).
pub async fn every(period: Duration, mut tick: impl FnMut()) {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        tick();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Failures = Arc<parking_lot::Mutex<Vec<(&'static str, String, Duration)>>>;

    fn recording() -> (Supervisor, Failures) {
        let failures = Failures::default();
        let f = Arc::clone(&failures);
        let sup = Supervisor::new(Arc::new(move |name, err: &str, backoff| {
            f.lock().push((name, err.to_owned(), backoff));
        }));
        (sup, failures)
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_reported_and_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (sup, failures) = recording();
        let r = Arc::clone(&runs);
        sup.supervise("sweeper", move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("boom {n}");
                }
                std::future::pending::<()>().await;
            }
        });
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3, "restarted after each panic");
        let f = failures.lock().clone();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].0, "sweeper");
        assert_eq!(f[0].1, "boom 0");
        assert_eq!(f[0].2, RESTART.base);
        assert_eq!(f[1].2, RESTART.base * 2, "backoff doubles");
        assert!(sup.stop(Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_running_tasks_and_pending_restarts() {
        let (sup, failures) = recording();
        let ticks = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&ticks);
        sup.supervise("ticker", move || {
            let t = Arc::clone(&t);
            async move {
                every(Duration::from_millis(10), || {
                    t.fetch_add(1, Ordering::SeqCst);
                })
                .await
            }
        });
        // Returns at once: restarted after a backoff, unless stopped first.
        sup.supervise("quitter", || async {});
        tokio::time::sleep(Duration::from_millis(35)).await;
        assert!(ticks.load(Ordering::SeqCst) >= 3);
        assert_eq!(failures.lock().len(), 1, "the quitter failed once and waits its backoff");

        assert!(sup.stop(Duration::from_secs(1)).await, "every task ended");
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), after, "no tick after the stop");
        assert_eq!(failures.lock().len(), 1, "no restart after the stop");
    }
}
