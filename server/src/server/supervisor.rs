//! Supervised background tasks: a task that panics or returns is logged as
//! a critical `system_error` and restarted with exponential backoff, so a
//! sweeper never dies silently.

use std::future::Future;
use std::time::{Duration, Instant};

use tandem_monitoring::backoff::Backoff;

/// Between restarts: 100 ms doubling to at most 30 s.
const RESTART: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// A task that ran this long before failing starts over at the first backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Runs `make()` forever under supervision; `on_failure(name, error,
/// backoff)` reports each failure before the restart.
pub fn supervise<F, Fut, R>(name: &'static str, on_failure: R, make: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    R: Fn(&'static str, &str, Duration) + Send + 'static,
{
    tokio::spawn(async move {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let error = match tokio::spawn(make()).await {
                Ok(()) => "task returned".to_owned(),
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
            tokio::time::sleep(backoff).await;
            attempt = attempt.saturating_add(1);
        }
    })
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_task_is_reported_and_restarted() {
        let runs = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (r, f) = (Arc::clone(&runs), Arc::clone(&failures));
        let handle = supervise(
            "sweeper",
            move |name, err: &str, backoff| f.lock().push((name, err.to_owned(), backoff)),
            move || {
                let n = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        panic!("boom {n}");
                    }
                    std::future::pending::<()>().await;
                }
            },
        );
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
        handle.abort();
    }
}
