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
//! let state = client.call("move", serde_json::json!({"x": 1, "y": 2})).await?;
//! println!("the game says {state}");
//! while let Some(event) = events.recv().await {
//!     match event {
//!         ClientEvent::Message(m) => println!("#{} {}: {}", m.seq, m.channel, m.data),
//!         ClientEvent::Resync(r) => println!("lost messages, reload state ({:?})", r.reason),
//!         ClientEvent::Presence(p) => {
//!             println!("{} {} {}", p.player_id, if p.joined { "joined" } else { "left" }, p.channel)
//!         }
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
use tokio::time::{Instant, timeout, timeout_at};

use self::events::{CallError, ClientEvent, Presence, Published};
use self::options::ClientOptions;
use self::shared::{Call, CommandWaiter, Shared};
use crate::error::ClientError;
use crate::frames::{ClientMessage, Delivery, ServerFrame};
use crate::machine::status::Status;
use crate::machine::transport_plan::{Mode, Transport, TransportPlan};
use crate::machine::verdict::CLOSE_SESSION_ENDED;
use crate::options::ConnectOptions;

/// The reason of the status [`Client::close`] leaves.
const CLOSED_BY_CLIENT: &str = "closed by client";

/// The reason of the status [`Client::end_session`] leaves (code 4002).
const SESSION_ENDED: &str = "session_ended";

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
        match self.request(ClientMessage::subscribe(channel)).await? {
            ServerFrame::Subscribed { .. } => {
                self.shared.subscribed(channel, true);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn unsubscribe(&self, channel: &str) -> Result<(), CallError> {
        match self.request(ClientMessage::unsubscribe(channel)).await? {
            ServerFrame::Unsubscribed { .. } => {
                self.shared.subscribed(channel, false);
                Ok(())
            }
            other => Err(unexpected(&other)),
        }
    }

    pub async fn publish(&self, channel: &str, event: &str, data: Value) -> Result<Published, CallError> {
        match self.request(ClientMessage::publish(channel, event, data)).await? {
            ServerFrame::Published { id, recipients } => Ok(Published { id, recipients }),
            other => Err(unexpected(&other)),
        }
    }

    /// Who is in `channel` (the session must be subscribed to it, else
    /// `forbidden`): the exact count and up to 1,000 players.
    pub async fn presence(&self, channel: &str) -> Result<Presence, CallError> {
        self.presence_listing(channel, None).await
    }

    /// How many players are in `channel`, without listing them: the cheap
    /// question for a big channel.
    pub async fn presence_count(&self, channel: &str) -> Result<u64, CallError> {
        Ok(self.presence_listing(channel, Some(0)).await?.count)
    }

    async fn presence_listing(&self, channel: &str, limit: Option<u64>) -> Result<Presence, CallError> {
        let msg = ClientMessage::Presence { channel: channel.to_owned(), limit };
        match self.request(msg).await? {
            ServerFrame::Presence { count, players, .. } => Ok(Presence { count, players }),
            other => Err(unexpected(&other)),
        }
    }

    /// The round trip of a `ping` to the server and its `pong`.
    pub async fn ping(&self) -> Result<Duration, CallError> {
        let n = self.pings.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        match self.request(ClientMessage::ping(n)).await? {
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
                self.shared.set_refusal(None);
                self.shared.stop.send_replace(None);
            }
            ended && !closed
        };
        if restart {
            self.connect();
        }
    }

    /// Closes every link (WebSocket: 1000 `normal`) and stops; the status
    /// becomes `Disconnected` with code 1000. Pending calls fail (commands
    /// with [`CallError::Closed`], and so does every later one).
    pub async fn close(&self) {
        self.request_stop();
        self.shared.close_commands();
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

    /// Sends `command` `name` with `data` to the game backend and waits for
    /// its answer, at most the client's
    /// [`call_timeout`](ClientOptions::call_timeout()) (default 10 s); see
    /// [`call_with_timeout`](Self::call_with_timeout).
    pub async fn call(&self, name: &str, data: Value) -> Result<Value, CallError> {
        self.call_with_timeout(name, data, self.shared.options.call_timeout).await
    }

    /// Sends `{"type":"command","id":<fresh>,"name","data"}` to the game
    /// backend (docs/backend.md) and waits for its answer, at most `wait`.
    ///
    /// - `Ok(data)`: the backend's `reply`.
    /// - [`CallError::Server`] `{ code, message }`: its refusal
    ///   (`illegal_move`…) or Tandem's (`backend_timeout`,
    ///   `backend_unavailable`, `backend_error`, `no_backend`,
    ///   `rate_limited`, `conflict`).
    /// - [`CallError::Timeout`]: no answer within `wait`. The command may
    ///   still run; to try again, call anew (a new id).
    /// - [`CallError::SessionLost`]: the session was replaced (a resync
    ///   with a new session) or ended before the answer came.
    /// - [`CallError::Closed`]: the client was closed or stopped for good.
    ///
    /// It goes out on the WebSocket when one is up, else as a POST beside
    /// the SSE stream (the answer then comes on the stream); without any
    /// link it waits for one. A link that drops before the answer is not a
    /// failure: the command is sent again, with the same id, on the next
    /// link welcomed to the same session (either transport, after a switch
    /// or a resume too), and the server, which runs an id at most once per
    /// session, answers the resend from its reply cache. The first answer
    /// counts; a later one is ignored. Dropping the future forgets the
    /// command (it may still run).
    pub async fn call_with_timeout(
        &self,
        name: &str,
        data: Value,
        wait: Duration,
    ) -> Result<Value, CallError> {
        if self.shared.stop.borrow().is_some() {
            return Err(CallError::Closed);
        }
        let deadline = Instant::now() + wait;
        let (tx, mut rx): (CommandWaiter, _) = tokio::sync::oneshot::channel();
        let id = self.shared.issue_command(name, data, tx, wait)?;
        let _forget = Forget { shared: &self.shared, id: &id };
        match timeout_at(deadline, &mut rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(CallError::Closed),
            Err(_) => {
                self.shared.expire_commands(Instant::now());
                rx.try_recv().unwrap_or(Err(CallError::Timeout(wait)))
            }
        }
    }

    /// Ends the session for good: sends `{"type":"end_session"}`, and once
    /// the server answers `session_ended` (it then closes every connection
    /// of the session with 4002 `session_ended`), stops without
    /// reconnecting. The status becomes `Disconnected` with code 4002;
    /// pending commands fail with [`CallError::SessionLost`]. The game
    /// learns it as `player_left` (`"reason":"ended"`).
    /// [`reconnect`](Self::reconnect) afterwards starts a new session.
    pub async fn end_session(&self) -> Result<(), CallError> {
        match self.request(ClientMessage::EndSession).await {
            Ok(ServerFrame::SessionEnded {}) => {}
            Ok(other) => return Err(unexpected(&other)),
            // The server's 4002 may beat its answer to us.
            Err(CallError::ConnectionLost) => {
                let ended = self
                    .wait_status(self.shared.options.call_timeout, |s| {
                        matches!(s, Status::Disconnected { .. })
                    })
                    .await;
                if !matches!(ended, Some(Status::Disconnected { code: Some(CLOSE_SESSION_ENDED), .. })) {
                    return Err(CallError::ConnectionLost);
                }
            }
            Err(e) => return Err(e),
        }
        self.stop_with(Some(CLOSE_SESSION_ENDED), SESSION_ENDED);
        self.wait_status(CLOSE_WAIT, |s| matches!(s, Status::Disconnected { .. })).await;
        Ok(())
    }

    /// The refusal that stopped the client, as [`ClientError::Http`]: a
    /// refused connect that is not to be retried (401, 403 or 400 without
    /// `"retry": true`, or any refusal with `"retry": false`), carrying the
    /// server's or the game's `code` (e.g. the connect hook's `banned`).
    /// `None` while running or when it stopped for another reason. A
    /// refusal with `"retry": true` (503 `backend_unavailable`…) is retried
    /// with backoff instead.
    pub fn refusal(&self) -> Option<ClientError> {
        self.shared.refusal()
    }

    fn request_stop(&self) {
        self.stop_with(Some(1000), CLOSED_BY_CLIENT);
    }

    fn stop_with(&self, code: Option<u16>, reason: &str) {
        self.shared.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some((code, reason.into()));
                true
            } else {
                false
            }
        });
    }

    /// Sends one message over an open link and waits for its reply.
    async fn request(&self, message: ClientMessage) -> Result<ServerFrame, CallError> {
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
            Ok(Ok(ServerFrame::Error { code, message, .. })) => Err(CallError::Server { code, message }),
            Ok(Ok(frame)) => Ok(frame),
        }
    }
}

/// Forgets a command whose caller stopped waiting (a no-op once answered).
struct Forget<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.shared.cancel_command(self.id);
    }
}

fn unexpected(frame: &ServerFrame) -> CallError {
    CallError::Protocol(format!("{frame:?}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::machine::backoff::Reconnect;
    use crate::test_support::serve_once;
    use crate::test_support::ws_peer::{WAIT, accept, listen};

    fn options(base: &str) -> ClientOptions {
        ClientOptions::new(base).player_id("alice").mode(Mode::WebSocket).reconnect(Reconnect {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
            max_attempts: None,
        })
    }

    fn connected(s: &Status) -> bool {
        s.is_connected()
    }

    #[tokio::test]
    async fn a_command_dropped_with_its_link_is_resent_with_the_same_id_and_answered_once() {
        let (base, listener) = listen().await;
        let client = Arc::new(Client::new(options(&base)).unwrap());
        client.connect();
        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!({"x": 1})).await })
        };

        let mut first = accept(&listener).await;
        first.welcome("s_1", false).await;
        let sent = first.recv().await;
        assert_eq!(sent["type"], "command");
        assert_eq!((&sent["name"], &sent["data"]), (&json!("move"), &json!({"x": 1})));
        let id = sent["id"].as_str().unwrap().to_owned();
        assert!(!id.is_empty() && id.len() <= 64);
        drop(first); // the link drops before the answer

        let mut second = accept(&listener).await;
        assert!(second.uri.contains("session_id=s_1"), "resumes: {}", second.uri);
        second.welcome("s_1", true).await;
        assert_eq!(second.recv().await, sent, "the same id, name and data");
        second.send(json!({"type": "reply", "id": "someone-else", "data": 0})).await;
        second.send(json!({"type": "reply", "id": id, "data": {"ok": true}})).await;
        second.send(json!({"type": "error", "id": id, "code": "conflict", "message": "late"})).await;
        assert_eq!(call.await.unwrap(), Ok(json!({"ok": true})));

        // The link still serves: a new command gets a new id, and a
        // refusal carries the game's code.
        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!({"x": 9})).await })
        };
        let next = second.recv().await;
        assert_ne!(next["id"], sent["id"]);
        second
            .send(json!({"type": "error", "id": next["id"], "code": "illegal_move", "message": "no"}))
            .await;
        let refused = call.await.unwrap().unwrap_err();
        assert_eq!(refused, CallError::Server { code: "illegal_move".into(), message: "no".into() });
        assert_eq!(refused.code(), Some("illegal_move"));
        client.close().await;
    }

    #[tokio::test]
    async fn a_replaced_session_fails_the_command_with_session_lost() {
        let (base, listener) = listen().await;
        let client = Arc::new(Client::new(options(&base)).unwrap());
        client.connect();
        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!(1)).await })
        };
        let mut first = accept(&listener).await;
        first.welcome("s_1", false).await;
        first.recv().await;
        drop(first);
        let mut second = accept(&listener).await;
        second.welcome("s_2", false).await;
        assert_eq!(call.await.unwrap(), Err(CallError::SessionLost));
        client.close().await;
    }

    #[tokio::test]
    async fn a_command_without_an_answer_times_out_and_closing_fails_the_rest() {
        let client = Arc::new(Client::new(options("http://127.0.0.1:9")).unwrap());
        let started = Instant::now();
        let outcome = client.call_with_timeout("move", json!(1), Duration::from_millis(50)).await;
        assert_eq!(outcome, Err(CallError::Timeout(Duration::from_millis(50))));
        assert!(started.elapsed() >= Duration::from_millis(50));

        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!(2)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.close().await;
        assert_eq!(call.await.unwrap(), Err(CallError::Closed));
        assert_eq!(client.call("move", json!(3)).await, Err(CallError::Closed));
    }

    #[tokio::test]
    async fn end_session_stops_without_reconnecting() {
        let (base, listener) = listen().await;
        let client = Arc::new(Client::new(options(&base)).unwrap());
        client.connect();
        let mut conn = accept(&listener).await;
        conn.welcome("s_1", false).await;
        client.wait_status(WAIT, connected).await.unwrap();
        let pending = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!(1)).await })
        };
        assert_eq!(conn.recv().await["type"], "command");
        let ending = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.end_session().await })
        };
        assert_eq!(conn.recv().await, json!({"type": "end_session"}));
        conn.send(json!({"type": "session_ended"})).await;
        conn.close(4002, "session_ended").await;
        assert_eq!(ending.await.unwrap(), Ok(()));
        assert_eq!(pending.await.unwrap(), Err(CallError::SessionLost));
        assert!(
            matches!(client.status(), Status::Disconnected { code: Some(4002), .. }),
            "{:?}",
            client.status()
        );
        let again = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(again.is_err(), "no reconnect after session_ended");
    }

    #[tokio::test]
    async fn a_close_4002_from_the_server_stops_the_client() {
        let (base, listener) = listen().await;
        let client = Client::new(options(&base)).unwrap();
        client.connect();
        let mut conn = accept(&listener).await;
        conn.welcome("s_1", false).await;
        client.wait_status(WAIT, connected).await.unwrap();
        conn.close(4002, "session_ended").await;
        let status = client.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await.unwrap();
        assert_eq!(status, Status::Disconnected { code: Some(4002), reason: "session_ended".into() });
        let again = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(again.is_err(), "no reconnect after session_ended");
    }

    #[tokio::test]
    async fn over_sse_a_command_is_posted_answered_on_the_stream_and_reposted_after_a_drop() {
        use crate::test_support::sse_peer::{Seen, start};

        let mut peer = start("s_1").await;
        let client = Arc::new(Client::new(options(&peer.base).mode(Mode::Sse)).unwrap());
        client.connect();
        assert!(matches!(peer.next().await, Seen::Stream { .. }));
        client.wait_status(WAIT, connected).await.unwrap();
        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!({"x": 1})).await })
        };
        let Seen::Post { line, body: sent } = peer.next().await else { panic!("expected the POST") };
        assert!(line.starts_with("post /sessions/s_1/messages"), "{line}");
        assert_eq!((&sent["type"], &sent["name"]), (&json!("command"), &json!("move")));

        // The stream drops before the answer: the command is posted again,
        // same id, once the stream is back.
        peer.drop_stream();
        let Seen::Stream { line } = peer.next().await else { panic!("expected a reconnect") };
        assert!(line.contains("session_id=s_1"), "{line}");
        let Seen::Post { body: resent, .. } = peer.next().await else { panic!("expected the resend") };
        assert_eq!(resent, sent);
        peer.push(&json!({"type": "reply", "id": sent["id"], "data": {"ok": true}}));
        peer.push(&json!({"type": "reply", "id": sent["id"], "data": {"ok": "again"}}));
        assert_eq!(call.await.unwrap(), Ok(json!({"ok": true})));

        let call = {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.call("move", json!({"x": 2})).await })
        };
        let Seen::Post { body: next, .. } = peer.next().await else { panic!("expected the POST") };
        peer.push(&json!({"type": "error", "id": next["id"], "code": "backend_timeout", "message": "slow"}));
        assert_eq!(call.await.unwrap().unwrap_err().code(), Some("backend_timeout"));
        client.close().await;
    }

    fn refusal(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn a_connect_hook_refusal_without_retry_stops_with_the_games_code() {
        let body = r#"{"error":{"code":"banned","message":"cheating","retry":false}}"#;
        let (base, _head) = serve_once(refusal("403 Forbidden", body)).await;
        let client = Client::new(options(&base)).unwrap();
        client.connect();
        let status = client.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await.unwrap();
        assert_eq!(status, Status::Disconnected { code: Some(403), reason: "banned".into() });
        match client.refusal() {
            Some(ClientError::Http { status: 403, code, message, retry: Some(false) }) => {
                assert_eq!((code.as_str(), message.as_str()), ("banned", "cheating"));
            }
            other => panic!("expected the refusal, got {other:?}"),
        }
        assert_eq!(client.call("move", json!(1)).await, Err(CallError::Closed));
    }

    #[tokio::test]
    async fn a_refusal_that_says_retry_is_retried_with_backoff() {
        let body = r#"{"error":{"code":"backend_unavailable","message":"hook down","retry":true}}"#;
        let (base, head) = serve_once(refusal("503 Service Unavailable", body)).await;
        let client = Client::new(options(&base)).unwrap();
        client.connect();
        head.await.unwrap();
        let status = client.wait_status(WAIT, |s| matches!(s, Status::Reconnecting { .. })).await.unwrap();
        assert!(matches!(status, Status::Reconnecting { .. }));
        assert!(client.refusal().is_none());
        client.close().await;
    }
}
