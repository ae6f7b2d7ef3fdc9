//! One connection slot: connect, read, deliver, answer calls, notice a dead
//! link, and reconnect with backoff, resuming. A client runs one slot, or
//! two in dual mode (one per transport) sharing the delivery gate. The
//! decisions come from [`crate::machine`]; this is the tokio glue.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::events::{CallError, PresenceChange};
use super::link::{Link, end_of};
use super::shared::{Call, Caller, Refusal, Shared, StopReason};
use crate::error::ClientError;
use crate::frames::{ClientMessage, ServerFrame};
use crate::machine::calls::{Command, LinkId};
use crate::machine::connection::{Connection, Step};
use crate::machine::liveness::Liveness;
use crate::machine::sequence::Accept;
use crate::machine::status::Status;
use crate::machine::transport_plan::{Transport, TransportPlan};
use crate::machine::verdict::{End, with_farewell};
use crate::options::ConnectOptions;

/// Calls queued on one link before `publish` and friends wait for room.
const CALL_QUEUE: usize = 64;

/// Calls awaiting their replies on one WebSocket before new ones are
/// refused with [`CallError::Overloaded`].
const MAX_PENDING: usize = 1024;

/// The longest a read waits before the loop looks at its clocks again
/// (when no heartbeat was announced).
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// How a link's life ended.
enum LinkEnd {
    /// It ended; `hint` is the server's wait-before-retry, if it gave one.
    Ended { end: End, hint: Option<Duration> },
    /// A background probe welcomed a WebSocket: continue on it.
    Switched(Box<Link>),
    /// The client is stopping.
    Stopped,
}

/// Runs one slot until the client stops or gives up. The decisions are
/// [`Connection`]'s; this carries them out and reports back.
pub(crate) async fn run(shared: Arc<Shared>, slot: usize, plan: TransportPlan) {
    let mut stop = shared.stop.subscribe();
    let mut checks = shared.checks.subscribe();
    let mut conn = Connection::new(plan, shared.options.reconnect);
    let mut ready: Option<Link> = None;
    loop {
        if let Some((code, reason)) = stopped(&stop) {
            shared.stopped_commands(code);
            conn.stop(code, reason);
            shared.set_status(slot, conn.status().clone());
            return;
        }
        let link = match ready.take() {
            Some(link) => {
                shared.welcomed(link.welcome()).await;
                link
            }
            None => {
                let step = conn.next_step(rand::random::<f64>());
                shared.set_status(slot, conn.status().clone());
                match step {
                    Step::Stop => return,
                    Step::Wait { delay } if delay.is_zero() => {}
                    Step::Wait { delay } => {
                        checks.borrow_and_update();
                        tokio::select! {
                            () = sleep(delay) => {}
                            _ = checks.changed() => {}
                            _ = stop.changed() => continue,
                        }
                    }
                }
                let transport = conn.transport(Instant::now());
                let attempt = tokio::select! {
                    opened = open_welcomed(&shared, transport) => opened,
                    _ = stop.changed() => continue,
                };
                match attempt {
                    Ok(link) => link,
                    Err(end) => {
                        if conn.attempt_failed(transport, &end, Instant::now()).is_some() {
                            if let End::Refused { status, code, message, retry } = end {
                                shared.set_refusal(Some(Refusal { status, code, message, retry }));
                            }
                            return stop_all(&shared, slot, conn.status());
                        }
                        continue;
                    }
                }
            }
        };
        conn.welcomed(link.transport());
        shared.set_status(slot, conn.status().clone());
        match serve(&shared, slot, link, &mut conn, &mut stop, &mut checks).await {
            LinkEnd::Switched(link) => ready = Some(*link),
            LinkEnd::Stopped => {}
            LinkEnd::Ended { end, hint } => {
                if conn.link_ended(&end, hint).is_some() {
                    return stop_all(&shared, slot, conn.status());
                }
            }
        }
    }
}

fn stopped(stop: &watch::Receiver<Option<StopReason>>) -> Option<StopReason> {
    stop.borrow().clone()
}

/// This slot was told to stop by the server: so is every other slot, and
/// the pending commands fail.
fn stop_all(shared: &Shared, slot: usize, status: &Status) {
    if let Status::Disconnected { code, reason } = status {
        shared.stopped_commands(*code);
        let reason: StopReason = (*code, reason.clone());
        shared.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.clone());
                true
            } else {
                false
            }
        });
    }
    shared.set_status(slot, status.clone());
}

/// Connects and judges the welcome, one slot at a time: in dual mode the
/// second link must join the session the first one got (or found gone and
/// replaced), never open a session of its own.
async fn open_welcomed(shared: &Shared, transport: Transport) -> Result<Link, End> {
    let _one_at_a_time = shared.opening.lock().await;
    let link = open(shared, transport).await?;
    shared.welcomed(link.welcome()).await;
    Ok(link)
}

/// Connects over `transport`: a fresh token, the resume point, every
/// subscription, and the welcome within `welcome_timeout`.
async fn open(shared: &Shared, transport: Transport) -> Result<Link, End> {
    let o = &shared.options;
    let mut opts = ConnectOptions::new(o.url.clone()).connect_timeout(o.welcome_timeout).tls(o.tls.clone());
    if let Some(source) = &o.token {
        match timeout(o.welcome_timeout, source()).await {
            Ok(Ok(token)) => opts = opts.token(token),
            Ok(Err(e)) => return Err(End::Failed(format!("token callback: {e}"))),
            Err(_) => return Err(End::Failed("token callback timed out".into())),
        }
    }
    if let Some(player) = &o.player_id {
        opts = opts.player(player.clone());
    }
    if let Some(origin) = &o.origin {
        opts = opts.origin(origin.clone());
    }
    let channels = shared.subscriptions();
    if let Some((session, last_seq, mut positions)) = shared.resume_point().await {
        // Only channels the session still follows (one it left is not resumed).
        positions.retain(|(c, _)| channels.contains(c) || c == "broadcast" || c.starts_with("player:"));
        opts = opts.session(session).last_seq(last_seq).positions(positions);
    }
    opts.channels = channels;
    Link::open(transport, &opts).await.map_err(|e| end_of(&e))
}

/// Runs one welcomed link until it ends.
async fn serve(
    shared: &Arc<Shared>,
    slot: usize,
    mut link: Link,
    conn: &mut Connection,
    stop: &mut watch::Receiver<Option<StopReason>>,
    checks: &mut watch::Receiver<u64>,
) -> LinkEnd {
    let call_timeout = shared.options.call_timeout;
    let (calls_tx, calls_rx) = mpsc::channel::<Call>(CALL_QUEUE);
    // Bounded by the pending commands of the book.
    let (commands_tx, commands_rx) = mpsc::unbounded_channel::<Command>();
    // An SSE worker's word that a POST could not get through.
    let (trouble_tx, mut trouble) = mpsc::unbounded_channel::<String>();
    let link_id = shared.new_link();
    // WebSocket calls go out on the socket and their replies come back in
    // order on it; SSE calls are POSTs, sent one at a time by a worker.
    // Commands go out the same ways; their answers come by id.
    let (mut ws_calls, mut ws_commands, poster) = match &link {
        Link::Ws(_) => (Some(calls_rx), Some(commands_rx), None),
        Link::Sse(sse) => {
            let worker = Poster {
                poster: sse.poster(),
                shared: Arc::clone(shared),
                link: link_id,
                trouble: trouble_tx,
            };
            (None, None, Some(spawn_poster(worker, calls_rx, commands_rx)))
        }
    };
    shared.register_caller(Caller {
        slot,
        transport: link.transport(),
        link: link_id,
        calls: calls_tx.clone(),
        commands: commands_tx,
    });
    // Resends what waits for an answer (same ids), or fails it when the
    // session it went to was replaced.
    shared.link_up(link_id, &link.welcome().session_id);
    let mut pending: VecDeque<oneshot::Sender<Result<ServerFrame, CallError>>> = VecDeque::new();
    let mut liveness = Liveness::new(
        link.welcome().heartbeat_interval_ms,
        shared.options.liveness_factor,
        link.last_received(),
    );
    let mut check: Option<oneshot::Receiver<Result<ServerFrame, CallError>>> = None;
    let mut probe: Option<JoinHandle<Result<Link, End>>> = None;
    let mut shutdown_hint: Option<(bool, Duration)> = None;
    // The backend's reason, from a `disconnected` frame, for the close that follows.
    let mut farewell: Option<String> = None;
    checks.borrow_and_update();

    let outcome = loop {
        liveness.received(link.last_received());
        let now = Instant::now();
        let wait = liveness.deadline().map_or(IDLE_WAKE, |d| d.saturating_duration_since(now));
        let probe_at =
            if link.transport() == Transport::Sse && probe.is_none() { conn.probe_at() } else { None };
        tokio::select! {
            biased;
            _ = stop.changed() => break LinkEnd::Stopped,
            _ = checks.changed() => {
                // Client::reconnect: prove the link alive with a ping now.
                let (tx, rx) = oneshot::channel();
                let call = Call { message: ClientMessage::ping("check"), reply: tx };
                if calls_tx.try_send(call).is_ok() {
                    liveness.force_check(Instant::now(), call_timeout);
                    check = Some(rx);
                }
            }
            answer = maybe(check.as_mut()) => {
                check = None;
                // Any answer of the server's (a refusal too) proves the link.
                if matches!(answer, Ok(Ok(_) | Err(CallError::Server { .. }))) {
                    liveness.received(Instant::now());
                }
            }
            frame = link.next_frame(wait) => match frame {
                Ok(ServerFrame::Message(delivery)) => {
                    if let Accept::Gap { .. } = shared.deliver(delivery).await {
                        break LinkEnd::Ended { end: End::Gap, hint: None };
                    }
                }
                Ok(ServerFrame::Reply { id, data }) => shared.command_answered(&id, Ok(data)),
                // The server ended a subscription (a refreshed token no
                // longer allows it): not an answer to a call.
                Ok(ServerFrame::Unsubscribed { channel, reason: Some(_) }) => shared.subscribed(&channel, false),
                Ok(ServerFrame::TokenExpiring { .. }) => {
                    if let Some(source) = shared.options.token.clone() {
                        tokio::spawn(refresh(source, calls_tx.clone(), call_timeout));
                    }
                }
                Ok(ServerFrame::Disconnected { reason, reconnect: false }) => farewell = Some(reason),
                Ok(ServerFrame::Error { code, message, id: Some(Value::String(id)) })
                    if shared.owns_command(&id) =>
                {
                    shared.command_answered(&id, Err(CallError::Server { code, message }));
                }
                Ok(reply @ (ServerFrame::Subscribed { .. }
                | ServerFrame::Unsubscribed { .. }
                | ServerFrame::Published { .. }
                | ServerFrame::Pong { .. }
                | ServerFrame::SessionEnded {}
                | ServerFrame::Refreshed { .. }
                | ServerFrame::Presence { .. }
                | ServerFrame::Error { .. })) => {
                    if let Some(tx) = pending.pop_front() {
                        let _ = tx.send(Ok(reply));
                    }
                }
                Ok(ServerFrame::Shutdown { reconnect, retry_after_ms }) => {
                    shutdown_hint = Some((reconnect, Duration::from_millis(retry_after_ms)));
                }
                Ok(ServerFrame::Resync { reason }) => shared.server_resync(reason).await,
                Ok(ServerFrame::Join { channel, player_id }) => {
                    shared.presence_changed(PresenceChange { joined: true, channel, player_id }).await;
                }
                Ok(ServerFrame::Leave { channel, player_id }) => {
                    shared.presence_changed(PresenceChange { joined: false, channel, player_id }).await;
                }
                Ok(ServerFrame::Welcome(_)
                | ServerFrame::Close { .. }
                | ServerFrame::Disconnected { .. }
                | ServerFrame::Unknown(_)) => {}
                Err(ClientError::Timeout) => {
                    liveness.received(link.last_received());
                    if liveness.is_dead(Instant::now()) {
                        break LinkEnd::Ended { end: End::TimedOut, hint: None };
                    }
                }
                Err(e) => {
                    let end = match (end_of(&e), shutdown_hint) {
                        (End::Closed { code, reason }, Some((false, _))) => End::NoReconnect { code, reason },
                        (end, _) => end,
                    };
                    let end = with_farewell(end, farewell.take());
                    let hint = shutdown_hint.map(|(_, h)| h).or_else(|| link.retry_hint());
                    break LinkEnd::Ended { end, hint };
                }
            },
            Some(reason) = trouble.recv() => {
                break LinkEnd::Ended { end: End::Failed(reason), hint: None };
            }
            command = maybe_recv_unbounded(ws_commands.as_mut()) => {
                let Some(command) = command else {
                    ws_commands = None;
                    continue;
                };
                let Link::Ws(ws) = &mut link else { continue };
                // On failure the link ends, and the command goes out again
                // on the next one.
                match timeout(call_timeout, ws.send(&command.message())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break LinkEnd::Ended { end: end_of(&e), hint: None },
                    Err(_) => break LinkEnd::Ended { end: End::TimedOut, hint: None },
                }
            }
            call = maybe_recv(ws_calls.as_mut()) => {
                let Some(call) = call else {
                    ws_calls = None;
                    continue;
                };
                if pending.len() >= MAX_PENDING {
                    let _ = call.reply.send(Err(CallError::Overloaded));
                    continue;
                }
                let Link::Ws(ws) = &mut link else { continue };
                match timeout(call_timeout, ws.send(&call.message)).await {
                    Ok(Ok(())) => pending.push_back(call.reply),
                    Ok(Err(e)) => break LinkEnd::Ended { end: end_of(&e), hint: None },
                    Err(_) => break LinkEnd::Ended { end: End::TimedOut, hint: None },
                }
            }
            () = sleep_until_opt(probe_at) => {
                // Auto on its SSE fallback: try WebSocket in the background.
                let shared = Arc::clone(shared);
                probe = Some(tokio::spawn(async move { open(&shared, Transport::WebSocket).await }));
            }
            probed = maybe_join(probe.as_mut()) => {
                probe = None;
                match probed {
                    Ok(Ok(ws)) => break LinkEnd::Switched(Box::new(ws)),
                    Ok(Err(_)) | Err(_) => conn.probe_failed(Instant::now()),
                }
            }
        }
    };

    shared.unregister_caller(slot);
    // Its commands go out again on the next link (or the other one).
    shared.link_down(link_id);
    if let Some(probe) = probe {
        probe.abort();
    }
    match outcome {
        // Calls in flight on the old SSE link may finish: the worker ends
        // when its queue is empty and closed.
        LinkEnd::Switched(_) => {}
        _ => {
            if let Some(poster) = poster {
                poster.abort();
            }
        }
    }
    // Dropping the queues fails every waiting call with ConnectionLost.
    drop(pending);
    drop(ws_calls);
    drop(ws_commands);
    if let LinkEnd::Stopped = outcome {
        link.close().await;
    }
    outcome
}

/// What an SSE link's worker needs to POST its calls and commands.
struct Poster {
    poster: crate::sse::SsePoster,
    shared: Arc<Shared>,
    link: LinkId,
    trouble: mpsc::UnboundedSender<String>,
}

/// Sends an SSE link's calls and commands one at a time, so their order
/// holds. Ends when both queues are closed and empty.
fn spawn_poster(
    worker: Poster,
    calls: mpsc::Receiver<Call>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> JoinHandle<()> {
    let mut worker = worker;
    tokio::spawn(async move {
        let (mut calls, mut commands) = (Some(calls), Some(commands));
        while calls.is_some() || commands.is_some() {
            tokio::select! {
                call = maybe_recv(calls.as_mut()) => match call {
                    Some(call) => {
                        let result = match worker.poster.post(&call.message).await {
                            Ok(frame @ ServerFrame::Refreshed { .. }) => {
                                // Later POSTs carry the token the streams now hold.
                                if let ClientMessage::Refresh { token } = &call.message {
                                    worker.poster.set_token(token.clone());
                                }
                                Ok(frame)
                            }
                            Ok(frame) => Ok(frame),
                            Err(ClientError::Http { code, message, .. }) if !code.is_empty() => {
                                Err(CallError::Server { code, message })
                            }
                            Err(_) => Err(CallError::ConnectionLost),
                        };
                        let _ = call.reply.send(result);
                    }
                    None => calls = None,
                },
                command = maybe_recv_unbounded(commands.as_mut()) => match command {
                    Some(command) => worker.command(command).await,
                    None => commands = None,
                },
            }
        }
    })
}

impl Poster {
    /// POSTs one command. `202 {"accepted":true}`: its answer comes on the
    /// stream. A refusal with a code (`too_large`, `rate_limited`…) is the
    /// command's answer. Anything else (the session not found, a 5xx, no
    /// answer at all) means the link is in trouble: the command waits for
    /// the next link and this one is replaced.
    async fn command(&self, command: Command) {
        let outcome = self.poster.post(&command.message()).await;
        match outcome {
            Ok(ServerFrame::Reply { id, data }) => self.shared.command_answered(&id, Ok(data)),
            Ok(ServerFrame::Error { code, message, .. }) => {
                self.shared.command_answered(&command.id, Err(CallError::Server { code, message }));
            }
            Ok(_) => {}
            Err(ClientError::Http { status, code, message, .. })
                if (400..500).contains(&status) && !code.is_empty() && code != "session_not_found" =>
            {
                self.shared.command_answered(&command.id, Err(CallError::Server { code, message }));
            }
            Err(e) => {
                self.shared.command_send_failed(&command.id, self.link);
                let _ = self.trouble.send(format!("command POST failed: {e}"));
            }
        }
    }
}

/// On `token_expiring`: a fresh token from the client's callback, sent as
/// `refresh` on the live link (no reconnect). A callback that fails or a
/// refused refresh changes nothing: past the grace the server closes the
/// link (4003) and the reconnect asks the callback again.
async fn refresh(source: super::options::TokenSource, calls: mpsc::Sender<Call>, wait: Duration) {
    let Ok(Ok(token)) = timeout(wait, source()).await else { return };
    let (tx, rx) = oneshot::channel();
    if calls.send(Call { message: ClientMessage::refresh(token), reply: tx }).await.is_ok() {
        let _ = timeout(wait, rx).await;
    }
}

async fn maybe<T>(rx: Option<&mut oneshot::Receiver<T>>) -> Result<T, oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

async fn maybe_recv<T>(rx: Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn maybe_recv_unbounded<T>(rx: Option<&mut mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn maybe_join<T>(handle: Option<&mut JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
