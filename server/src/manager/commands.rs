//! Client messages (`subscribe`, `unsubscribe`, `publish`, `ping`,
//! `command`, `end_session`, `presence`), shared by WebSocket frames and SSE clients'
//! `POST /sessions/{id}/messages`.
//!
//! Most are answered at once. Two may wait on the game: a `subscribe` the
//! subscribe hook must allow, and a `command`. Those come back as futures
//! for the transport to run off its read path, so a slow game never holds
//! a connection's other messages.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::value::RawValue;
use tandem_protocol::Transport;

use crate::backend::commands::{Call, Hub, Outcome, Publisher};
use crate::backend::reply_cache::{self, Answer, Lookup, ReplyCache};
use crate::manager::{CommandWaiters, ConnectionManager, Session};
use crate::session::channels;
use crate::session::connection::{CloseReason, Connection, Outbound, Push};
use crate::session::identity::Identity;
use crate::session::protocol::{self, ClientMessage, ErrorCode, ProtocolError, Reply};
use crate::telemetry as ev;

/// A reply frame: its `type` and its JSON text.
pub type ReplyFrame = (&'static str, Bytes);

/// What a client message came to.
pub enum Handled {
    /// Answered at once.
    Now(ReplyFrame),
    /// A subscribe waiting on the game's subscribe hook.
    Later(BoxFuture<'static, Result<ReplyFrame, Refused>>),
    /// A command: run it with [`CommandTask::run`]; its answer goes where
    /// the transport says.
    Command(CommandTask),
    /// `end_session`: answer with this frame first, then end the session
    /// with [`ConnectionManager::end_session_by_client`] (its connections
    /// close after what is queued, so the answer is not lost).
    EndSession(ReplyFrame),
    /// `refresh`: the transport verifies the token (the manager sits below
    /// `auth`) and applies it with [`ConnectionManager::refreshed`].
    Refresh(String),
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Now((kind, _)) => write!(f, "Now({kind})"),
            Self::Later(_) => f.write_str("Later"),
            Self::Command(c) => write!(f, "Command({})", c.id),
            Self::EndSession(_) => f.write_str("EndSession"),
            Self::Refresh(_) => f.write_str("Refresh"),
        }
    }
}

/// Why a [`Handled::Later`] was refused: by Tandem, or by the game with
/// its own code (which the client's error frame carries).
#[derive(Debug)]
pub enum Refused {
    Protocol(ProtocolError),
    Game(crate::backend::Refusal),
}

impl From<ProtocolError> for Refused {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

/// Runs one client message for `session` on behalf of `who`.
pub fn handle(
    manager: &Arc<ConnectionManager>,
    session: &Arc<Session>,
    who: &Identity,
    transport: Transport,
    msg: ClientMessage,
) -> Result<Handled, ProtocolError> {
    manager.touch();
    let now = |frame| Ok(Handled::Now(frame));
    match msg {
        ClientMessage::Subscribe { channel }
            if manager.backend().hooks.has(crate::backend::Hook::Subscribe) =>
        {
            // Checked here first: the game is never asked about what Tandem refuses.
            channels::check_subscribe(who, &channel)?;
            let (m, s, who) = (Arc::clone(manager), Arc::clone(session), who.clone());
            Ok(Handled::Later(Box::pin(async move {
                let now_ms = m.now_ms();
                m.backend()
                    .hooks
                    .subscribe(&s.player_id, &s.id, &channel, now_ms)
                    .await
                    .map_err(Refused::Game)?;
                m.subscribe(&s, &who, &channel)?;
                Ok(("subscribed", protocol::to_json(&Reply::Subscribed { channel: &channel })))
            })))
        }
        ClientMessage::Subscribe { channel } => {
            manager.subscribe(session, who, &channel)?;
            now(("subscribed", protocol::to_json(&Reply::Subscribed { channel: &channel })))
        }
        ClientMessage::Unsubscribe { channel } => {
            manager.unsubscribe(session, &channel)?;
            now(("unsubscribed", protocol::to_json(&Reply::Unsubscribed { channel: &channel, reason: None })))
        }
        ClientMessage::Publish { channel, event, data } => {
            channels::check_publish(who, &channel, &manager.limits().client_publish)?;
            // Not awaited: the broker's publisher logs and counts a
            // publication it could not carry.
            let out = manager.publish(&channel, &event, &data, "client", None)?.fanout;
            now((
                "published",
                protocol::to_json(&Reply::Published { id: &out.id, recipients: out.recipients }),
            ))
        }
        ClientMessage::Ping { id } => now((
            "pong",
            protocol::to_json(&Reply::Pong { id: &id, ts: protocol::epoch_ms(SystemTime::now()) }),
        )),
        ClientMessage::Command { id, name, data } => Ok(Handled::Command(CommandTask {
            manager: Arc::clone(manager),
            session: Arc::clone(session),
            transport,
            id,
            name,
            data,
        })),
        ClientMessage::Presence { channel, limit } => {
            manager.presence_allowed(session, &channel)?;
            if !manager.broker().wants_presence() {
                // One node: answered at once, in order with other replies.
                let p = manager.local_presence(&channel, limit);
                let reply = Reply::Presence { channel: &channel, count: p.count, players: &p.players };
                return now(("presence", protocol::to_json(&reply)));
            }
            let m = Arc::clone(manager);
            Ok(Handled::Later(Box::pin(async move {
                let p = m
                    .channel_presence(&channel, limit)
                    .await
                    .map_err(|e| ProtocolError::new(e.code(), e.to_string()))?;
                let reply = Reply::Presence { channel: &channel, count: p.count, players: &p.players };
                Ok(("presence", protocol::to_json(&reply)))
            })))
        }
        ClientMessage::EndSession => {
            Ok(Handled::EndSession(("session_ended", protocol::to_json(&Reply::SessionEnded))))
        }
        ClientMessage::Refresh { token } => Ok(Handled::Refresh(token)),
    }
}

/// Where a command's answer goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// The connection that sent it (WebSocket).
    Connection(Arc<Connection>),
    /// The session's SSE streams (a command POSTed by an SSE client).
    Streams,
}

/// A command on its way to the game.
pub struct CommandTask {
    manager: Arc<ConnectionManager>,
    session: Arc<Session>,
    transport: Transport,
    pub id: String,
    name: String,
    data: Box<RawValue>,
}

impl CommandTask {
    /// Runs the command once per id in this session (or answers a resend
    /// from the reply cache), then delivers the answer to `to`.
    pub async fn run(self, to: ReplyTo) {
        let (answer, outcome, backend) = self.answer().await;
        let ids = ev::CommandIds {
            player_id: &self.session.player_id,
            session_id: &self.session.id,
            id: &self.id,
            name: &self.name,
        };
        let message = match &outcome {
            Some(Outcome::Error(reason)) => reason.as_str(),
            _ => "",
        };
        let label = outcome.as_ref().map_or("cached", Outcome::label);
        ev::command_answered(self.manager.telemetry(), ids, label, message, backend);
        self.deliver(&to, answer);
    }

    /// The answer, the outcome when the game was asked (`None`: from the
    /// cache) and how long the game took.
    async fn answer(&self) -> (Answer, Option<Outcome>, Option<std::time::Duration>) {
        let m = &self.manager;
        let fp = reply_cache::fingerprint(&self.name, self.data.get().as_bytes());
        let waiting = {
            let now = m.now_ms();
            let backend = m.backend();
            let mut inner = self.session.inner.lock();
            let cache = inner.commands.get_or_insert_with(|| {
                Box::new(ReplyCache::new(backend.reply_cache_size, backend.reply_cache_ms))
            });
            match cache.lookup(&self.id, &fp, now) {
                Lookup::Answered(a) => return (a.clone(), None, None),
                Lookup::Conflict => return self.refused(Outcome::Conflict),
                Lookup::InFlight(w) => Some(w.subscribe()),
                Lookup::Fresh => None,
            }
        };
        if let Some(mut rx) = waiting {
            // A resend while the first is in flight waits for its answer,
            // never longer than the first call can take.
            let wait = m.backend().commands.timeout() + std::time::Duration::from_secs(1);
            return match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
                Ok(Ok(a)) => (a.clone().unwrap_or_else(|| Outcome::Timeout.answer(&self.id)), None, None),
                _ => self.refused(Outcome::Timeout),
            };
        }
        let slot = match m.backend().commands.admit(&self.session.player_id, m.now_ms()) {
            Ok(slot) => slot,
            Err(outcome) => return self.refused(outcome),
        };
        let (tx, _) = tokio::sync::watch::channel::<Option<Answer>>(None);
        {
            let now = m.now_ms();
            let mut inner = self.session.inner.lock();
            let began = inner.commands.as_mut().is_some_and(|c| c.begin(&self.id, fp, tx, now));
            if !began {
                return self
                    .refused(Outcome::RateLimited("the session's reply cache is full of running commands"));
            }
        }
        let call = Call {
            id: &self.id,
            name: &self.name,
            data: &self.data,
            player_id: &self.session.player_id,
            session_id: &self.session.id,
            transport: self.transport,
        };
        let started = Instant::now();
        let publisher: Arc<dyn Publisher> = Arc::clone(m) as Arc<dyn Publisher>;
        let outcome = m.backend().commands.call(call, || Hub::new(publisher)).await;
        let took = started.elapsed();
        drop(slot);
        let answer = outcome.answer(&self.id);
        let waiters: Option<CommandWaiters> = {
            let now = m.now_ms();
            let mut inner = self.session.inner.lock();
            inner.commands.as_mut().and_then(|c| {
                if outcome.cacheable() { c.finish(&self.id, answer.clone(), now) } else { c.forget(&self.id) }
            })
        };
        if let Some(w) = waiters {
            let _ = w.send(Some(answer.clone()));
        }
        (answer, Some(outcome), Some(took))
    }

    fn refused(&self, outcome: Outcome) -> (Answer, Option<Outcome>, Option<std::time::Duration>) {
        (outcome.answer(&self.id), Some(outcome), None)
    }

    fn deliver(&self, to: &ReplyTo, answer: Answer) {
        let frame = Outbound::Frame { kind: answer.kind, json: answer.json };
        let targets: Vec<Arc<Connection>> = match to {
            ReplyTo::Connection(c) => vec![Arc::clone(c)],
            ReplyTo::Streams => self
                .session
                .inner
                .lock()
                .connections
                .iter()
                .filter(|c| c.transport == Transport::Sse)
                .cloned()
                .collect(),
        };
        for conn in targets {
            // A connection gone meanwhile: the answer waits in the cache
            // for the client's resend.
            if conn.push(frame.clone()) == Push::Full {
                let att = super::Attached { session: Arc::clone(&self.session), conn };
                self.manager.force_close(&att, CloseReason::SlowConsumer);
            }
        }
    }
}

/// An embedded game publishes through the manager, like the backend API.
impl Publisher for ConnectionManager {
    fn publish_json(&self, channel: &str, event: &str, data: &RawValue) -> Result<String, ProtocolError> {
        protocol::validate_event(event)?;
        channels::namespace(channel)?;
        Ok(self.publish(channel, event, data, "game", None)?.fanout.id.to_string())
    }

    fn send_to_player_json(
        &self,
        player_id: &str,
        event: &str,
        data: &RawValue,
    ) -> Result<String, ProtocolError> {
        let channel = channels::personal_channel(player_id);
        self.publish_json(&channel, event, data)
    }
}

/// Runs a [`Handled::Later`] off the read path and answers on `att`'s
/// connection (an error frame if it was refused).
pub fn answer_later(
    manager: &Arc<ConnectionManager>,
    att: &super::Attached,
    work: BoxFuture<'static, Result<ReplyFrame, Refused>>,
) {
    let (m, att) = (Arc::clone(manager), att.clone());
    tokio::spawn(async move {
        let (kind, json) = match work.await {
            Ok(frame) => frame,
            Err(Refused::Protocol(e)) => {
                ev::client_error(m.telemetry(), att.ids(), e.code.as_str(), &e.message);
                ("error", protocol::error_frame(&e))
            }
            Err(Refused::Game(r)) => {
                // A bounded label: the game's own code is in the frame, not the metric.
                let label =
                    if r.status >= 500 { ErrorCode::BackendUnavailable } else { ErrorCode::Forbidden };
                ev::client_error(m.telemetry(), att.ids(), label.as_str(), &r.message);
                #[derive(serde::Serialize)]
                struct GameError<'a> {
                    #[serde(rename = "type")]
                    kind: &'static str,
                    code: &'a str,
                    message: &'a str,
                }
                ("error", protocol::to_json(&GameError { kind: "error", code: &r.code, message: &r.message }))
            }
        };
        if att.conn.push(Outbound::Frame { kind, json }) == Push::Full {
            m.force_close(&att, CloseReason::SlowConsumer);
        }
    });
}
