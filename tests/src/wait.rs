//! Waiting with a deadline instead of sleeping a fixed time.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep};

/// How often [`eventually`] probes again.
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
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: did not happen within {wait:?}");
        sleep(POLL).await;
    }
}
