//! Lifecycle events to `backend.events_url`: `session_started`,
//! `session_resumed`, `player_left`, one per POST, delivered at least once.
//!
//! Events wait in bounded queues, one per sender (a session always maps to
//! the same one, so its events go out in order). A queue that is full
//! drops the new event, counted and logged: memory stays bounded whatever
//! the backend does. An accepted event is retried with capped exponential
//! backoff until the backend takes it (any 2xx) or refuses it for good
//! (a 4xx other than 408 and 429).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{Mutex, mpsc};

use super::client::{Answer, Endpoint, HttpClient};
use crate::config::BackendConfig;
use crate::session::protocol;
use crate::telemetry::{self as ev, Telemetry};

/// The kinds of lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    SessionStarted,
    SessionResumed,
    PlayerLeft,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStarted => "session_started",
            Self::SessionResumed => "session_resumed",
            Self::PlayerLeft => "player_left",
        }
    }
}

/// Why a session ended (`player_left`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// The resume window passed with no connection.
    Expired,
    /// The client sent `end_session`.
    Ended,
    /// The backend disconnected the player.
    Disconnected,
    /// Its node died and the resume window passed.
    NodeLost,
}

/// One event, as POSTed.
#[derive(Debug, Clone, Serialize)]
pub struct LifecycleEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub player_id: String,
    pub session_id: String,
    /// Unix epoch milliseconds.
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<LeftReason>,
}

impl LifecycleEvent {
    pub fn new(kind: EventKind, player_id: &str, session_id: &str, reason: Option<LeftReason>) -> Self {
        Self {
            id: protocol::random_id('e'),
            kind,
            player_id: player_id.to_owned(),
            session_id: session_id.to_owned(),
            ts: protocol::epoch_ms(SystemTime::now()),
            reason,
        }
    }
}

/// First pause before a retry.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The pause before try number `attempt` (1 = the first retry): doubling
/// from 100 ms, capped, with up to a quarter of jitter so many senders do
/// not retry in step.
pub fn retry_delay(attempt: u32, max: Duration, jitter: f64) -> Duration {
    let base = FIRST_RETRY.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max);
    base.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

/// What an answer means for an event.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Rejected,
    Retry,
}

fn verdict(answer: &Answer) -> Verdict {
    match answer {
        Answer::Ok { .. } => Verdict::Delivered,
        Answer::Refused { status: 408 | 429, .. } => Verdict::Retry,
        Answer::Refused { .. } => Verdict::Rejected,
        Answer::Timeout | Answer::Unavailable | Answer::Error { .. } => Verdict::Retry,
    }
}

type Queue = Arc<Mutex<mpsc::Receiver<LifecycleEvent>>>;

/// The queues and their senders.
#[derive(Debug)]
pub struct Events {
    queues: Vec<mpsc::Sender<LifecycleEvent>>,
    receivers: Vec<Queue>,
    sender: Option<(HttpClient, String)>,
    timeout: Duration,
    retry_max: Duration,
    telemetry: Telemetry,
}

impl Events {
    pub(super) fn new(config: &BackendConfig, client: Option<HttpClient>, telemetry: Telemetry) -> Self {
        let sender = client.filter(|_| !config.events_url.is_empty()).map(|c| (c, config.events_url.clone()));
        let n = if sender.is_some() { config.events_concurrency.max(1) } else { 0 };
        let per_queue = config.events_queue_size.div_ceil(n.max(1)).max(1);
        let (queues, receivers) = (0..n)
            .map(|_| {
                let (tx, rx) = mpsc::channel(per_queue);
                (tx, Arc::new(Mutex::new(rx)))
            })
            .unzip();
        Self {
            queues,
            receivers,
            sender,
            timeout: config.timeout(),
            retry_max: Duration::from_millis(config.events_retry_max_ms),
            telemetry,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Queues an event (never waits). `false` if it was dropped.
    pub fn emit(&self, event: LifecycleEvent) -> bool {
        if self.queues.is_empty() {
            return false;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        event.session_id.hash(&mut h);
        let queue = &self.queues[(h.finish() % self.queues.len() as u64) as usize];
        let kind = event.kind;
        match queue.try_send(event) {
            Ok(()) => {
                ev::lifecycle_event_queued(&self.telemetry, 1);
                true
            }
            Err(mpsc::error::TrySendError::Full(e) | mpsc::error::TrySendError::Closed(e)) => {
                ev::lifecycle_event_dropped(&self.telemetry, kind.as_str(), &e.session_id);
                false
            }
        }
    }

    /// The sender loops, one per queue, for the supervisor to run (each
    /// call makes a fresh run on the same queue).
    pub fn senders(
        self: &Arc<Self>,
    ) -> Vec<impl Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static> {
        (0..self.receivers.len())
            .map(|i| {
                let me = Arc::clone(self);
                move || {
                    let me = Arc::clone(&me);
                    let fut: futures_util::future::BoxFuture<'static, ()> =
                        Box::pin(async move { me.run(i).await });
                    fut
                }
            })
            .collect()
    }

    async fn run(&self, i: usize) {
        let Some((client, url)) = &self.sender else { return };
        let mut rx = self.receivers[i].lock().await;
        while let Some(event) = rx.recv().await {
            self.deliver(client, url, &event).await;
            ev::lifecycle_event_queued(&self.telemetry, -1);
        }
    }

    async fn deliver(&self, client: &HttpClient, url: &str, event: &LifecycleEvent) {
        let body = protocol::to_json(event);
        let kind = event.kind.as_str();
        let mut attempt = 0u32;
        loop {
            let (answer, took) = client.post(url, body.clone(), self.timeout).await;
            ev::backend_request(Endpoint::Events, answer.outcome(), took);
            match verdict(&answer) {
                Verdict::Delivered => {
                    ev::lifecycle_event_delivered(kind, attempt + 1);
                    return;
                }
                Verdict::Rejected => {
                    ev::lifecycle_event_rejected(&self.telemetry, kind, &event.id, &answer);
                    return;
                }
                Verdict::Retry => {
                    attempt = attempt.saturating_add(1);
                    ev::lifecycle_event_retry(&self.telemetry, kind, attempt, answer.outcome());
                    tokio::time::sleep(retry_delay(attempt, self.retry_max, rand::random::<f64>())).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn telemetry() -> Telemetry {
        Telemetry::new(tandem_monitoring::Monitoring::new(
            &tandem_monitoring::MonitoringConfig::default(),
            "test",
            Arc::new(tandem_monitoring::source::EmptySource),
            None,
        ))
    }

    #[test]
    fn retries_back_off_to_the_cap() {
        let max = Duration::from_secs(30);
        assert_eq!(retry_delay(1, max, 0.0), Duration::from_millis(100));
        assert_eq!(retry_delay(2, max, 0.0), Duration::from_millis(200));
        assert_eq!(retry_delay(10, max, 0.0), Duration::from_millis(51_200).min(max));
        assert_eq!(retry_delay(1000, max, 0.0), max);
        assert_eq!(retry_delay(1, max, 1.0), Duration::from_millis(75));
    }

    #[test]
    fn only_a_plain_refusal_is_final() {
        let refused = |status| Answer::Refused { status, body: Bytes::new() };
        assert_eq!(verdict(&Answer::Ok { status: 204, body: Bytes::new() }), Verdict::Delivered);
        assert_eq!(verdict(&refused(400)), Verdict::Rejected);
        assert_eq!(verdict(&refused(408)), Verdict::Retry);
        assert_eq!(verdict(&refused(429)), Verdict::Retry);
        assert_eq!(verdict(&Answer::Error { reason: "HTTP 503".into() }), Verdict::Retry);
        assert_eq!(verdict(&Answer::Timeout), Verdict::Retry);
        assert_eq!(verdict(&Answer::Unavailable), Verdict::Retry);
    }

    #[test]
    fn events_serialize_as_documented() {
        let e = LifecycleEvent::new(EventKind::PlayerLeft, "alice", "s_1", Some(LeftReason::Expired));
        let v: serde_json::Value = serde_json::from_slice(&protocol::to_json(&e)).unwrap();
        assert_eq!(v["type"], "player_left");
        assert_eq!(v["reason"], "expired");
        assert_eq!(v["player_id"], "alice");
        assert!(v["id"].as_str().unwrap().starts_with("e_"));
        let e = LifecycleEvent::new(EventKind::SessionStarted, "a", "s", None);
        assert!(
            serde_json::from_slice::<serde_json::Value>(&protocol::to_json(&e))
                .unwrap()
                .get("reason")
                .is_none()
        );
    }

    #[test]
    fn a_full_queue_drops_new_events() {
        let config = BackendConfig {
            events_url: "http://127.0.0.1:9/e".into(),
            events_queue_size: 2,
            events_concurrency: 1,
            ..BackendConfig::default()
        };
        let events = Events::new(&config, Some(HttpClient::new(&config, "t").unwrap()), telemetry());
        let e = || LifecycleEvent::new(EventKind::SessionStarted, "a", "s", None);
        assert!(events.emit(e()));
        assert!(events.emit(e()));
        assert!(!events.emit(e()), "the third is dropped, nothing grows");
        let off = Events::new(&BackendConfig::default(), None, telemetry());
        assert!(!off.enabled());
        assert!(!off.emit(e()));
    }
}
