//! Checking what a [`Client`](tandem_client::Client) hands the application:
//! numbered direct messages, published by the backend API, must arrive
//! once each, in `seq` order, with nothing missing.

use std::time::Duration;

use serde_json::json;
use tandem_client::{ClientEvent, Delivery};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout_at};

use crate::TestServer;

/// Reads `events` until `count` messages arrived (resync events are kept
/// apart).
///
/// # Panics
/// When they do not all arrive within `wait`; the message says how many did.
pub async fn collect(
    events: &mut mpsc::Receiver<ClientEvent>,
    count: usize,
    wait: Duration,
) -> (Vec<Delivery>, Vec<ClientEvent>) {
    let deadline = Instant::now() + wait;
    let mut messages = Vec::with_capacity(count);
    let mut others = Vec::new();
    while messages.len() < count {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(ClientEvent::Message(d))) => messages.push(d),
            Ok(Some(other)) => others.push(other),
            Ok(None) => panic!("the event stream ended after {} of {count} messages", messages.len()),
            Err(_) => panic!(
                "{} of {count} messages within {wait:?}; last seq {:?}; other events {others:?}",
                messages.len(),
                messages.last().map(|d| d.seq)
            ),
        }
    }
    (messages, others)
}

/// Asserts that `messages` are the direct messages `first..first+len`,
/// numbered `n` with `seq == n + offset`: once each, in order.
///
/// # Panics
/// On the first message out of place.
pub fn assert_numbered(messages: &[Delivery], first: u64, seq_offset: u64) {
    for (i, d) in messages.iter().enumerate() {
        let n = first + i as u64;
        assert_eq!(
            d.data["n"].as_u64(),
            Some(n),
            "message {i}: expected n={n}, got {d:?}; seqs {:?}",
            messages.iter().map(|m| m.seq).collect::<Vec<_>>()
        );
        assert_eq!(d.seq, n + seq_offset, "message {i}: seq {} for n={n}", d.seq);
    }
}

/// Publishes direct messages `from..=to` to `player` through the backend
/// API, `pace` apart, in a background task.
pub fn spawn_direct(server: &TestServer, player: &str, from: u64, to: u64, pace: Duration) -> JoinHandle<()> {
    let http = server.http().clone();
    let url = format!("{}/api/players/{player}/messages", server.base_url());
    let key = server.api_key();
    tokio::spawn(async move {
        for n in from..=to {
            let body = json!({"event": "n", "data": {"n": n}});
            let response = http.post(&url).bearer_auth(key).json(&body).send().await;
            match response {
                Ok(r) if r.status().as_u16() == 200 => {}
                Ok(r) => panic!("direct message {n}: HTTP {}", r.status()),
                Err(e) => panic!("direct message {n}: {e}"),
            }
            if !pace.is_zero() {
                // Scenario, not synchronisation: a stream spread out in time
                // so cuts and switches fall in the middle of it.
                sleep(pace).await;
            }
        }
    })
}
