//! The state every connection slot of one client shares: the delivery gate
//! (exactly-once, in order), the listeners, the subscriptions, the open
//! links' call queues, the pending commands and the status.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::events::{CallError, ClientEvent, PresenceChange, Resync};
use super::options::ClientOptions;
use crate::error::ClientError;
use crate::frames::{ClientMessage, Delivery, ServerFrame, Welcome};
use crate::machine::calls::{Answer, Calls, Command, DEFAULT_MAX_PENDING, LinkId};
use crate::machine::sequence::{Accept, ResyncReason, SeqGate, WelcomeOutcome};
use crate::machine::status::{Status, combine};
use crate::machine::transport_plan::Transport;
use crate::machine::verdict::{CLOSE_DISCONNECTED, CLOSE_SESSION_ENDED};

/// How many items a listener may lag behind before delivery waits for it
/// (backpressure up to the server, which closes a consumer that stays slow
/// with 4008 `slow_consumer`; the client then resumes without loss).
pub(crate) const LISTENER_BUFFER: usize = 1024;

/// How many status transitions a status stream may lag before it misses
/// some (statuses never hold delivery up).
pub(crate) const STATUS_BUFFER: usize = 256;

/// One call on its way to a link.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) message: ClientMessage,
    pub(crate) reply: oneshot::Sender<Result<ServerFrame, CallError>>,
}

/// Where a command's answer goes.
pub(crate) type CommandWaiter = oneshot::Sender<Result<Value, CallError>>;

/// The queues of one open link: calls (answered in order), and commands
/// (answered by id, whenever the game is done).
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) slot: usize,
    pub(crate) transport: Transport,
    pub(crate) link: LinkId,
    pub(crate) calls: mpsc::Sender<Call>,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
}

/// The refusal that stopped the client, kept to hand out as a
/// [`ClientError::Http`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) retry: Option<bool>,
}

#[derive(Debug, Default)]
struct Listeners {
    all: Vec<mpsc::Sender<ClientEvent>>,
    by_channel: HashMap<String, Vec<mpsc::Sender<Delivery>>>,
    statuses: Vec<mpsc::Sender<Status>>,
}

/// Why the client stopped: the status every slot ends in.
pub(crate) type StopReason = (Option<u16>, String);

pub(crate) struct Shared {
    pub(crate) options: ClientOptions,
    gate: tokio::sync::Mutex<SeqGate>,
    /// The gate's session and last `seq`, readable while the gate is held
    /// (by a reload hook that asks for them, say).
    position: Mutex<(Option<String>, u64)>,
    /// Held while a slot connects and judges its welcome.
    pub(crate) opening: tokio::sync::Mutex<()>,
    listeners: Mutex<Listeners>,
    subscriptions: Mutex<BTreeSet<String>>,
    callers: Mutex<Vec<Caller>>,
    /// Locked after `callers` when both are.
    commands: Mutex<Calls<CommandWaiter>>,
    links: AtomicU64,
    refusal: Mutex<Option<Refusal>>,
    slots: Mutex<Vec<Status>>,
    status: watch::Sender<Status>,
    /// Set once: the client stops, every slot ends with this status.
    pub(crate) stop: watch::Sender<Option<StopReason>>,
    /// Bumped by `Client::reconnect`: check now.
    pub(crate) checks: watch::Sender<u64>,
}

/// Poisoning only means a listener panicked elsewhere; the data is intact.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(options: ClientOptions, slots: usize) -> Self {
        let subscriptions = options.channels.iter().cloned().collect();
        Self {
            options,
            gate: tokio::sync::Mutex::new(SeqGate::default()),
            position: Mutex::new((None, 0)),
            opening: tokio::sync::Mutex::new(()),
            listeners: Mutex::new(Listeners::default()),
            subscriptions: Mutex::new(subscriptions),
            callers: Mutex::new(Vec::new()),
            commands: Mutex::new(Calls::new(format!("c{:08x}-", rand::random::<u32>()), DEFAULT_MAX_PENDING)),
            links: AtomicU64::new(1),
            refusal: Mutex::new(None),
            slots: Mutex::new(vec![Status::Connecting; slots]),
            status: watch::channel(Status::Connecting).0,
            stop: watch::channel(None).0,
            checks: watch::channel(0).0,
        }
    }

    // --- status ---

    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub(crate) fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub(crate) fn status_stream(&self) -> mpsc::Receiver<Status> {
        let (tx, rx) = mpsc::channel(STATUS_BUFFER);
        let _ = tx.try_send(self.status());
        lock(&self.listeners).statuses.push(tx);
        rx
    }

    /// Ends every slot that has not ended yet with `Disconnected`.
    pub(crate) fn disconnect_all(&self, code: Option<u16>, reason: &str) {
        let slots = lock(&self.slots).len();
        for slot in 0..slots {
            let ended = lock(&self.slots).get(slot).is_some_and(|s| matches!(s, Status::Disconnected { .. }));
            if !ended {
                self.set_status(slot, Status::Disconnected { code, reason: reason.to_owned() });
            }
        }
    }

    /// Sets one slot's status and publishes the combined one when it changed.
    pub(crate) fn set_status(&self, slot: usize, status: Status) {
        let combined = {
            let mut slots = lock(&self.slots);
            if let Some(s) = slots.get_mut(slot) {
                *s = status;
            }
            combine(&slots)
        };
        let changed = self.status.send_if_modified(|current| {
            if *current == combined {
                false
            } else {
                *current = combined.clone();
                true
            }
        });
        if changed {
            let mut listeners = lock(&self.listeners);
            listeners.statuses.retain(|tx| {
                !matches!(tx.try_send(combined.clone()), Err(mpsc::error::TrySendError::Closed(_)))
            });
        }
    }

    // --- listeners and delivery ---

    pub(crate) fn events(&self) -> mpsc::Receiver<ClientEvent> {
        let (tx, rx) = mpsc::channel(LISTENER_BUFFER);
        lock(&self.listeners).all.push(tx);
        rx
    }

    pub(crate) fn on(&self, channel: &str) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(LISTENER_BUFFER);
        lock(&self.listeners).by_channel.entry(channel.to_owned()).or_default().push(tx);
        rx
    }

    /// Passes one delivery through the gate and, when it is the next `seq`,
    /// to every listener, in order (the gate stays locked while listeners
    /// take it, so two links cannot interleave).
    pub(crate) async fn deliver(&self, delivery: Delivery) -> Accept {
        let mut gate = self.gate.lock().await;
        let verdict = gate.accept(delivery.seq);
        if verdict != Accept::Deliver {
            return verdict;
        }
        if let Some(pos) = &delivery.pos {
            gate.delivered_at(&delivery.channel, pos);
        }
        self.mirror(&gate);
        let (all, channel) = {
            let mut l = lock(&self.listeners);
            l.all.retain(|tx| !tx.is_closed());
            let channel = match l.by_channel.get_mut(&delivery.channel) {
                Some(list) => {
                    list.retain(|tx| !tx.is_closed());
                    list.clone()
                }
                None => Vec::new(),
            };
            (l.all.clone(), channel)
        };
        for tx in channel {
            let _ = tx.send(delivery.clone()).await;
        }
        for tx in all {
            let _ = tx.send(ClientEvent::Message(delivery.clone())).await;
        }
        drop(gate);
        verdict
    }

    /// Judges a welcome; on a resync, tells the listeners and awaits the
    /// reload hook before any later delivery can pass the gate.
    ///
    /// The hook is not cut short: live delivery must not resume on state
    /// the application has not reloaded. A hook that never returns holds
    /// delivery (and only delivery) until the client is closed.
    pub(crate) async fn welcomed(&self, welcome: &Welcome) -> WelcomeOutcome {
        let mut gate = self.gate.lock().await;
        let outcome = gate.on_welcome(welcome);
        self.mirror(&gate);
        if let WelcomeOutcome::Resync(reason) = &outcome {
            let resync = Resync {
                reason: reason.clone(),
                session_id: welcome.session_id.clone(),
                last_seq: gate.last_seq(),
            };
            self.tell_resync(resync).await;
        }
        drop(gate);
        outcome
    }

    /// The server's `resync` frame: the session goes on, but publications
    /// from other nodes may be missing. Told like a welcome's resync, with
    /// the gate held so no later delivery passes before the reload hook.
    pub(crate) async fn server_resync(&self, reason: String) {
        let gate = self.gate.lock().await;
        let resync = Resync {
            reason: ResyncReason::Server { reason },
            session_id: gate.resume_point().map(|(s, _)| s.to_owned()).unwrap_or_default(),
            last_seq: gate.last_seq(),
        };
        self.tell_resync(resync).await;
        drop(gate);
    }

    /// A `join` or `leave` frame: told to the listeners of every event.
    pub(crate) async fn presence_changed(&self, change: PresenceChange) {
        let all = {
            let mut l = lock(&self.listeners);
            l.all.retain(|tx| !tx.is_closed());
            l.all.clone()
        };
        for tx in all {
            let _ = tx.send(ClientEvent::Presence(change.clone())).await;
        }
    }

    async fn tell_resync(&self, resync: Resync) {
        let all = {
            let mut l = lock(&self.listeners);
            l.all.retain(|tx| !tx.is_closed());
            l.all.clone()
        };
        for tx in all {
            let _ = tx.send(ClientEvent::Resync(resync.clone())).await;
        }
        if let Some(hook) = &self.options.on_resync {
            hook(resync).await;
        }
    }

    fn mirror(&self, gate: &SeqGate) {
        let mut position = lock(&self.position);
        position.1 = gate.last_seq();
        if let Some((session, _)) = gate.resume_point() {
            if position.0.as_deref() != Some(session) {
                position.0 = Some(session.to_owned());
            }
        }
    }

    /// The session, `seq` and channel positions to resume from, once there
    /// was a session.
    pub(crate) async fn resume_point(&self) -> Option<(String, u64, Vec<(String, String)>)> {
        let gate = self.gate.lock().await;
        gate.resume_point().map(|(s, n)| (s.to_owned(), n, gate.positions().to_vec()))
    }

    /// The current session and last delivered `seq`, without waiting for
    /// the gate.
    pub(crate) fn position(&self) -> (Option<String>, u64) {
        lock(&self.position).clone()
    }

    // --- subscriptions ---

    pub(crate) fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).iter().cloned().collect()
    }

    pub(crate) fn subscribed(&self, channel: &str, yes: bool) {
        let mut subs = lock(&self.subscriptions);
        if yes {
            subs.insert(channel.to_owned());
        } else {
            subs.remove(channel);
        }
    }

    // --- calls ---

    pub(crate) fn register_caller(&self, caller: Caller) {
        let mut callers = lock(&self.callers);
        callers.retain(|c| c.slot != caller.slot);
        callers.push(caller);
    }

    pub(crate) fn unregister_caller(&self, slot: usize) {
        lock(&self.callers).retain(|c| c.slot != slot);
    }

    /// The call queue of an open link, WebSocket first (replies come on the
    /// socket, no extra request).
    pub(crate) fn caller(&self) -> Option<mpsc::Sender<Call>> {
        let callers = lock(&self.callers);
        callers.iter().filter(|c| !c.calls.is_closed()).min_by_key(|c| c.transport).map(|c| c.calls.clone())
    }

    // --- commands ---

    /// A fresh id for a link about to be served.
    pub(crate) fn new_link(&self) -> LinkId {
        self.links.fetch_add(1, Ordering::Relaxed)
    }

    /// A new command, sent at once when a link is up, else when one is.
    pub(crate) fn issue_command(
        &self,
        name: &str,
        data: Value,
        waiter: CommandWaiter,
        timeout: Duration,
    ) -> Result<String, CallError> {
        let id = lock(&self.commands).issue(name, data, waiter, Instant::now(), timeout)?;
        self.dispatch_commands();
        Ok(id)
    }

    /// Hands every command waiting for a link to the best open one
    /// (WebSocket first: the answer comes on the socket).
    pub(crate) fn dispatch_commands(&self) {
        let callers = lock(&self.callers);
        let Some(best) = callers.iter().filter(|c| !c.commands.is_closed()).min_by_key(|c| c.transport)
        else {
            return;
        };
        let mut book = lock(&self.commands);
        for command in book.take_unsent(best.link) {
            let id = command.id.clone();
            if best.commands.send(command).is_err() {
                book.send_failed(&id, best.link);
            }
        }
    }

    /// A link was welcomed to `session`: commands the old session may have
    /// seen fail when it was replaced; the rest go out (again).
    pub(crate) fn link_up(&self, link: LinkId, session: &str) {
        let lost = lock(&self.commands).link_up(link, session);
        settle(lost);
        self.dispatch_commands();
    }

    /// A link ended: its commands go out again on the next one (at once,
    /// when another link is up).
    pub(crate) fn link_down(&self, link: LinkId) {
        lock(&self.commands).link_down(link);
        self.dispatch_commands();
    }

    /// A command handed to `link` did not get out.
    pub(crate) fn command_send_failed(&self, id: &str, link: LinkId) {
        lock(&self.commands).send_failed(id, link);
    }

    /// Whether `id` names a command of this client's.
    pub(crate) fn owns_command(&self, id: &str) -> bool {
        lock(&self.commands).owns(id)
    }

    /// An answer for command `id`: the first one settles it.
    pub(crate) fn command_answered(&self, id: &str, outcome: Result<Value, CallError>) {
        let answer = lock(&self.commands).answer(id);
        if let Answer::Settled(waiter) = answer {
            let _ = waiter.send(outcome);
        }
    }

    /// The caller stopped waiting for `id`.
    pub(crate) fn cancel_command(&self, id: &str) {
        let waiter = lock(&self.commands).cancel(id);
        drop(waiter);
    }

    /// Fails every command due by `now` with `Timeout`.
    pub(crate) fn expire_commands(&self, now: Instant) {
        let due = lock(&self.commands).expire(now);
        settle(due);
    }

    /// The client stopped on its own: the pending commands fail (with
    /// `SessionLost` when the server ended the session).
    pub(crate) fn stopped_commands(&self, code: Option<u16>) {
        let error = match code {
            Some(CLOSE_DISCONNECTED | CLOSE_SESSION_ENDED) => CallError::SessionLost,
            _ => CallError::Closed,
        };
        let failed = lock(&self.commands).fail_all(&error);
        settle(failed);
    }

    /// The client was closed: every command, pending or later, fails.
    pub(crate) fn close_commands(&self) {
        let failed = lock(&self.commands).close();
        settle(failed);
    }

    // --- refusal ---

    pub(crate) fn set_refusal(&self, refusal: Option<Refusal>) {
        *lock(&self.refusal) = refusal;
    }

    pub(crate) fn refusal(&self) -> Option<ClientError> {
        lock(&self.refusal).clone().map(|r| ClientError::Http {
            status: r.status,
            code: r.code,
            message: r.message,
            retry: r.retry,
        })
    }
}

/// Hands failures to their waiters (outside the book's lock).
fn settle(failed: Vec<(CommandWaiter, CallError)>) {
    for (waiter, error) in failed {
        let _ = waiter.send(Err(error));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::machine::sequence::ResyncReason;

    fn delivery(seq: u64) -> Delivery {
        Delivery {
            seq,
            pos: None,
            id: format!("m_{seq}"),
            channel: "room:a".into(),
            event: "e".into(),
            data: json!({"n": seq}),
            ts: 0,
        }
    }

    fn welcome(session: &str, last_seq: u64, resumed: bool) -> Welcome {
        Welcome {
            session_id: session.into(),
            last_seq,
            resumed,
            heartbeat_interval_ms: 1000,
            ..Welcome::default()
        }
    }

    #[tokio::test]
    async fn two_links_racing_deliver_each_seq_once_in_order() {
        let shared = Arc::new(Shared::new(ClientOptions::new("http://127.0.0.1:9"), 2));
        let mut all = shared.events();
        let mut room = shared.on("room:a");
        shared.welcomed(&welcome("s_1", 0, false)).await;
        let link = |shared: Arc<Shared>| {
            tokio::spawn(async move {
                for seq in 1..=200 {
                    shared.deliver(delivery(seq)).await;
                    tokio::task::yield_now().await;
                }
            })
        };
        let (a, b) = (link(Arc::clone(&shared)), link(Arc::clone(&shared)));
        a.await.unwrap();
        b.await.unwrap();
        for want in 1..=200 {
            match all.try_recv().unwrap() {
                ClientEvent::Message(d) => assert_eq!(d.seq, want),
                other => panic!("{other:?}"),
            }
            assert_eq!(room.try_recv().unwrap().seq, want);
        }
        assert!(all.try_recv().is_err() && room.try_recv().is_err(), "no duplicates");
        assert_eq!(shared.position(), (Some("s_1".into()), 200));
    }

    #[tokio::test]
    async fn a_resync_is_announced_and_holds_delivery_until_the_hook_is_done() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let options = ClientOptions::new("http://127.0.0.1:9").on_resync(move |_| {
            let flag = Arc::clone(&flag);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                flag.store(true, Ordering::SeqCst);
            }
        });
        let shared = Arc::new(Shared::new(options, 1));
        let mut all = shared.events();
        shared.welcomed(&welcome("s_1", 0, false)).await;
        assert_eq!(shared.deliver(delivery(1)).await, Accept::Deliver);

        let resyncing = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move { shared.welcomed(&welcome("s_2", 0, false)).await })
        };
        // Wait until the resync was announced, then race a delivery of the
        // new session against the running hook.
        let ClientEvent::Message(first) = all.recv().await.unwrap() else { panic!("message 1 first") };
        assert_eq!(first.seq, 1);
        let ClientEvent::Resync(resync) = all.recv().await.unwrap() else { panic!("then the resync") };
        assert_eq!(resync.reason, ResyncReason::NewSession { previous: "s_1".into() });
        assert_eq!(shared.deliver(delivery(1)).await, Accept::Deliver);
        assert!(done.load(Ordering::SeqCst), "the delivery passed before the hook finished");
        assert!(matches!(resyncing.await.unwrap(), WelcomeOutcome::Resync(_)));
        assert!(matches!(all.recv().await.unwrap(), ClientEvent::Message(d) if d.seq == 1));
    }
}
