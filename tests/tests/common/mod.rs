//! Helpers shared by the delivery-guarantee and protection tests
//! (heartbeats, backpressure, limits, transport switch).
//!
//! - [`raw_ws`]: a WebSocket client written by hand on a bare TCP socket,
//!   for peers a real client library would never imitate (one that ignores
//!   pings, one that stops reading).
//! - [`raw_http`]: a bare HTTP GET that never reads its response (an SSE
//!   client that stopped reading).
//! - [`sse_stream`]: an SSE reader over the raw response body, which sees
//!   heartbeat comments and lets a test choose how it asks to resume.
//! - [`metrics`]: reading counters from `/metrics`.
//! - [`players`]: the backend's view of a player (`GET /api/players/{id}`)
//!   and direct messages.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod metrics;
pub mod players;
pub mod raw_http;
pub mod raw_ws;
pub mod sse_stream;

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
