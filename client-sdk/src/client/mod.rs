//! [`Client`]: one player session kept across drops and transport
//! switches, over [`WsClient`](crate::WsClient) and
//! [`SseClient`](crate::SseClient).
//!
//! ```no_run
//! use tandem_client::{Client, ClientEvent, ClientOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientOptions::new("http://127.0.0.1:8080").player_id("alice"))?;
//! let mut events = client.events();
//! client.connect();
//! client.subscribe("room:tavern").await?;
//! client.publish("room:tavern", "chat", serde_json::json!({"text": "hi"})).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ClientEvent::Message(m) => println!("#{} {}: {}", m.seq, m.channel, m.data),
//!         ClientEvent::Resync(r) => println!("lost messages, reload state ({:?})", r.reason),
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod events;
mod link;
pub mod options;
mod shared;
mod slot;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use self::events::{CallError, ClientEvent, Published};
use self::options::ClientOptions;
use self::shared::{Call, Shared};
use crate::error::ClientError;
use crate::frames::{ClientMessage, Delivery, ServerFrame};
use crate::machine::status::Status;
use crate::machine::transport_plan::{Mode, Transport, TransportPlan};
use crate::options::ConnectOptions;

/// The reason of the status [`Client::close`] leaves.
const CLOSED_BY_CLIENT: &str = "closed by client";

/// How long [`Client::close`] waits for the slots to say goodbye.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// A Tandem client that keeps one session: reconnects with backoff,
/// resumes with `session_id` + `last_seq`, falls back from WebSocket to SSE
/// (and back), and hands every message to the application once, in `seq`
/// order.
///
/// Register listeners ([`events`](Self::events), [`on`](Self::on)) before
/// [`connect`](Self::connect) to see every message from the first one.
/// Dropping the client stops it.
pub struct Client {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pings: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.shared.options)
            .field("status", &self.shared.status())
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.request_stop();
        for task in self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }
}

impl Client {
    /// A client for `options`, not connected yet. Fails when the URL is not
    /// an `http`/`https` URL.
    pub fn new(options: ClientOptions) -> Result<Self, ClientError> {
        ConnectOptions::new(options.url.clone()).sse_url()?;
        let slots = if options.mode == Mode::Dual { 2 } else { 1 };
        Ok(Self {
            shared: Arc::new(Shared::new(options, slots)),
            tasks: Mutex::new(Vec::new()),
            pings: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Starts connecting (in the background; watch [`status`](Self::status)).
    /// Needs a tokio runtime. A second call does nothing.
    pub fn connect(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !tasks.is_empty() {
            return;
        }
        let o = &self.shared.options;
        let plans = match o.mode {
            Mode::Auto => vec![TransportPlan::auto(o.ws_failures_before_fallback, o.ws_probe_interval)],
            Mode::WebSocket => vec![TransportPlan::fixed(Transport::WebSocket)],
            Mode::Sse => vec![TransportPlan::fixed(Transport::Sse)],
            Mode::Dual => {
                vec![TransportPlan::fixed(Transport::WebSocket), TransportPlan::fixed(Transport::Sse)]
            }
        };
        for (slot, plan) in plans.into_iter().enumerate() {
            tasks.push(tokio::spawn(slot::run(Arc::clone(&self.shared), slot, plan)));
        }
    }

    /// The status now.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// The latest status, to await changes (intermediate ones may be
    /// skipped; see [`status_stream`](Self::status_stream)).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.shared.watch_status()
    }

    /// Every status transition from now on, starting with the current
    /// status (a stream that lags 256 transitions behind misses some).
    pub fn status_stream(&self) -> mpsc::Receiver<Status> {
        self.shared.status_stream()
    }

    /// Waits until the status satisfies `predicate`, at most `wait`;
    /// returns it, or `None` on timeout.
    pub async fn wait_status(&self, wait: Duration, predicate: impl Fn(&Status) -> bool) -> Option<Status> {
        let mut rx = self.watch_status();
        let found = timeout(wait, rx.wait_for(|s| predicate(s))).await;
        match found {
            Ok(Ok(status)) => Some(status.clone()),
            _ => None,
        }
    }

    /// Every message (once, in `seq` order) and every resync, from now on.
    pub fn events(&self) -> mpsc::Receiver<ClientEvent> {
        self.shared.events()
    }

    /// The messages of one channel, from now on. Each call adds one
    /// receiver; reconnects never add more.
    pub fn on(&self, channel: &str) -> mpsc::Receiver<Delivery> {
        self.shared.on(channel)
    }

    /// The highest `seq` delivered so far.
    pub fn last_seq(&self) -> u64 {
        self.shared.position().1
    }

    /// The current session, once there was one.
    pub fn session_id(&self) -> Option<String> {
        self.shared.position().0
    }

    /// Subscribes; kept across reconnects and restored on a new session.
    pub async fn subscribe(&self, channel: &str) -> Result<(), CallError> {
        match self.call(ClientMessage::subscribe(channel)).await? {
            ServerFrame::Subscribed { .. } => {
                self.shared.subscribed(channel, true);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn unsubscribe(&self, channel: &str) -> Result<(), CallError> {
        match self.call(ClientMessage::unsubscribe(channel)).await? {
            ServerFrame::Unsubscribed { .. } => {
                self.shared.subscribed(channel, false);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn publish(&self, channel: &str, event: &str, data: Value) -> Result<Published, CallError> {
        match self.call(ClientMessage::publish(channel, event, data)).await? {
            ServerFrame::Published { id, recipients } => Ok(Published { id, recipients }),
            other => Err(unexpected(&other)),
        }
    }

    /// The round trip of a `ping` to the server and its `pong`.
    pub async fn ping(&self) -> Result<Duration, CallError> {
        let n = self.pings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        match self.call(ClientMessage::ping(n)).await? {
            ServerFrame::Pong { .. } => Ok(started.elapsed()),
            other => Err(unexpected(&other)),
        }
    }

    /// Checks now instead of waiting: a waiting reconnect starts at once,
    /// an open link must answer a ping within `call_timeout` or is replaced
    /// (e.g. when the network came back). A client that stopped on its own
    /// (out of attempts, refused, disconnected by the server) starts over;
    /// one stopped by [`close`](Self::close) stays closed.
    pub fn reconnect(&self) {
        self.shared.checks.send_modify(|n| *n = n.wrapping_add(1));
        let restart = {
            let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            let ended = !tasks.is_empty() && tasks.iter().all(JoinHandle::is_finished);
            let closed = self.shared.stop.borrow().as_ref().is_some_and(|(_, r)| r == CLOSED_BY_CLIENT);
            if ended && !closed {
                tasks.clear();
                self.shared.stop.send_replace(None);
            }
            ended && !closed
        };
        if restart {
            self.connect();
        }
    }

    /// Closes every link (WebSocket: 1000 `normal`) and stops; the status
    /// becomes `Disconnected` with code 1000. Pending calls fail.
    pub async fn close(&self) {
        self.request_stop();
        let tasks: Vec<_> = self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        for task in tasks {
            let abort = task.abort_handle();
            if timeout(CLOSE_WAIT, task).await.is_err() {
                abort.abort();
            }
        }
        // Slots that never ran (or were cut short) end here; a slot that
        // ended on its own keeps its reason (4001, 401, gave up).
        self.shared.disconnect_all(Some(1000), CLOSED_BY_CLIENT);
    }

    fn request_stop(&self) {
        self.shared.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some((Some(1000), CLOSED_BY_CLIENT.into()));
                true
            } else {
                false
            }
        });
    }

    /// Sends one message over an open link and waits for its reply.
    async fn call(&self, message: ClientMessage) -> Result<ServerFrame, CallError> {
        let wait = self.shared.options.call_timeout;
        let calls = self.shared.caller().ok_or(CallError::NotConnected)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let exchange = async {
            calls.send(Call { message, reply: tx }).await.map_err(|_| CallError::ConnectionLost)?;
            rx.await.map_err(|_| CallError::ConnectionLost)?
        };
        match timeout(wait, exchange).await {
            Err(_) => Err(CallError::Timeout(wait)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(ServerFrame::Error { code, message })) => Err(CallError::Server { code, message }),
            Ok(Ok(frame)) => Ok(frame),
        }
    }
}

fn unexpected(frame: &ServerFrame) -> CallError {
    CallError::Protocol(format!("{frame:?}"))
}
