//! Commands from players to the game: the embedded [`CommandHandler`]
//! trait, the HTTP call to `backend.command_url`, the caps that keep one
//! player (or a slow backend) from holding the others, and the answer
//! frames. The reply cache ([`super::reply_cache`]) and delivery are the
//! manager's (`manager::commands`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tandem_protocol::{ErrorCode, Transport};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::{Answer, Endpoint, HttpClient};
use super::reply_cache;
use crate::config::BackendConfig;
use crate::session::payload;
use crate::session::protocol::{self, ProtocolError};
use crate::session::state::TokenBucket;
use crate::telemetry as ev;

/// A command as the game sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Command {
    /// The client's id for it: unique within the session.
    pub id: String,
    pub name: String,
    pub data: serde_json::Value,
    pub player_id: String,
    pub session_id: String,
    pub transport: Transport,
}

/// A command on its way to the game: what `backend.command_url` is POSTed
/// (serialized as is), borrowed from the task that runs it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Call<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub data: &'a RawValue,
    pub player_id: &'a str,
    pub session_id: &'a str,
    pub transport: Transport,
}

/// A game's refusal of a command: its own `code` reaches the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    pub code: String,
    pub message: String,
}

impl CommandError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

impl From<ProtocolError> for CommandError {
    fn from(e: ProtocolError) -> Self {
        Self::new(e.code.as_str(), e.message)
    }
}

/// What an embedded game may do while it handles a command: publish to
/// channels and players of this Tandem. The manager implements it.
pub trait Publisher: Send + Sync {
    /// Publishes `data` (JSON text) to `channel`; returns the publication id.
    fn publish_json(&self, channel: &str, event: &str, data: &RawValue) -> Result<String, ProtocolError>;
    /// Sends `data` to every session of `player_id`; returns the publication id.
    fn send_to_player_json(
        &self,
        player_id: &str,
        event: &str,
        data: &RawValue,
    ) -> Result<String, ProtocolError>;
}

/// The embedded game's handle on Tandem (cheap to clone).
#[derive(Clone)]
pub struct Hub(Arc<dyn Publisher>);

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hub")
    }
}

impl Hub {
    pub fn new(publisher: Arc<dyn Publisher>) -> Self {
        Self(publisher)
    }

    /// Publishes `data` to `channel` (any channel: the game is trusted).
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        event: &str,
        data: &T,
    ) -> Result<String, CommandError> {
        let raw = to_raw(data)?;
        Ok(self.0.publish_json(channel, event, &raw)?)
    }

    /// Sends `data` to every session of a player (its `player:` channel).
    pub fn send_to_player<T: Serialize + ?Sized>(
        &self,
        player_id: &str,
        event: &str,
        data: &T,
    ) -> Result<String, CommandError> {
        let raw = to_raw(data)?;
        Ok(self.0.send_to_player_json(player_id, event, &raw)?)
    }
}

fn to_raw<T: Serialize + ?Sized>(data: &T) -> Result<Box<RawValue>, CommandError> {
    serde_json::value::to_raw_value(data).map_err(|e| CommandError::new("invalid_json", e.to_string()))
}

/// A game that handles commands in process instead of over HTTP. Runs
/// under the same caps, timeout and reply cache as `backend.command_url`.
#[async_trait::async_trait]
pub trait CommandHandler: Send + Sync + 'static {
    /// Answers one command: `Ok(data)` becomes the client's `reply`,
    /// `Err` its `error` with the game's code.
    async fn handle(&self, command: Command, hub: Hub) -> Result<serde_json::Value, CommandError>;
}

/// How a command ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Reply(Box<RawValue>),
    /// The game's own refusal (a 4xx, or the handler's `Err`).
    Refused {
        code: String,
        message: String,
    },
    Timeout,
    Unavailable,
    Error(String),
    NoBackend,
    RateLimited(&'static str),
    Conflict,
}

impl Outcome {
    /// The `outcome` label of `tandem_commands_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Reply(_) => "reply",
            Self::Refused { .. } => "refused",
            Self::Timeout => "backend_timeout",
            Self::Unavailable => "backend_unavailable",
            Self::Error(_) => "backend_error",
            Self::NoBackend => "no_backend",
            Self::RateLimited(_) => "rate_limited",
            Self::Conflict => "conflict",
        }
    }

    /// Whether the answer is kept for a resend: everything that may have
    /// reached the game. What was decided before any call is not, so a
    /// resend may succeed.
    pub fn cacheable(&self) -> bool {
        !matches!(self, Self::NoBackend | Self::RateLimited(_) | Self::Conflict)
    }

    /// The frame the client gets for command `id`.
    pub fn answer(&self, id: &str) -> reply_cache::Answer {
        #[derive(Serialize)]
        struct Reply<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            id: &'a str,
            data: &'a RawValue,
        }
        #[derive(Serialize)]
        struct Error<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            id: &'a str,
            code: &'a str,
            message: &'a str,
        }
        let error = |code: &str, message: &str| reply_cache::Answer {
            kind: "error",
            json: protocol::to_json(&Error { kind: "error", id, code, message }),
        };
        match self {
            Self::Reply(data) => reply_cache::Answer {
                kind: "reply",
                json: protocol::to_json(&Reply { kind: "reply", id, data }),
            },
            Self::Refused { code, message } => error(code, message),
            Self::Timeout => error(ErrorCode::BackendTimeout.as_str(), "the game did not answer in time"),
            Self::Unavailable => error(ErrorCode::BackendUnavailable.as_str(), "the game cannot be reached"),
            Self::Error(reason) => error(ErrorCode::BackendError.as_str(), reason),
            Self::NoBackend => error(ErrorCode::NoBackend.as_str(), "no game backend handles commands"),
            Self::RateLimited(why) => error(ErrorCode::RateLimited.as_str(), why),
            Self::Conflict => error(
                ErrorCode::Conflict.as_str(),
                "this id was already used in this session for another command",
            ),
        }
    }
}

/// A game error code: `[a-z][a-z0-9_]{0,63}`, so clients can match on it.
pub fn is_valid_code(code: &str) -> bool {
    let mut chars = code.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && code.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `{"error":{"code","message"}}`, the body of a game's 4xx.
#[derive(Debug, Deserialize)]
pub(super) struct RefusalBody {
    pub error: RefusalDetail,
}

#[derive(Debug, Deserialize)]
pub(super) struct RefusalDetail {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub retry: bool,
}

/// Whether `body` is a JSON object (serde's derived structs also read
/// arrays, which the contract does not allow).
pub(super) fn is_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Reads a game's 4xx body; `None` when it is not the contract.
pub(super) fn parse_refusal(body: &[u8]) -> Option<RefusalDetail> {
    if !is_object(body) {
        return None;
    }
    let b: RefusalBody = serde_json::from_slice(body).ok()?;
    is_valid_code(&b.error.code)
        .then_some(RefusalDetail { message: truncate(&b.error.message, 512).to_owned(), ..b.error })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The outcome of an HTTP command call.
fn outcome_of(answer: Answer) -> Outcome {
    match answer {
        Answer::Ok { body, .. } => {
            #[derive(Deserialize)]
            struct Body<'a> {
                #[serde(borrow)]
                data: Option<&'a RawValue>,
            }
            let parsed = if is_object(&body) { serde_json::from_slice::<Body<'_>>(&body).ok() } else { None };
            match parsed {
                Some(Body { data: None }) => Outcome::Reply(RawValue::NULL.to_owned()),
                // Checked like a client's payload: it goes to a client.
                Some(Body { data: Some(raw) }) => match payload::compact(raw) {
                    Ok(data) => Outcome::Reply(data),
                    Err(e) => Outcome::Error(format!("the game's `data` is not valid: {e}")),
                },
                None => Outcome::Error("the game's answer is not {\"data\": …}".into()),
            }
        }
        Answer::Refused { status, body } => match parse_refusal(&body) {
            Some(d) => Outcome::Refused { code: d.code, message: d.message },
            None => Outcome::Error(format!("the game answered {status} without {{\"error\":{{\"code\"}}}}")),
        },
        Answer::Timeout => Outcome::Timeout,
        Answer::Unavailable => Outcome::Unavailable,
        Answer::Error { reason } => Outcome::Error(reason),
    }
}

/// Where commands go.
enum Target {
    None,
    Http(HttpClient, String),
    Embedded(Arc<dyn CommandHandler>),
}

/// Rate and in-flight count of one player's commands.
#[derive(Debug)]
struct PlayerCalls {
    in_flight: usize,
    bucket: TokenBucket,
    last_ms: u64,
}

/// Runs commands under the caps.
pub struct Commands {
    target: Target,
    timeout: Duration,
    global: Arc<Semaphore>,
    per_player: usize,
    rate: (u32, u32),
    players: Arc<DashMap<Arc<str>, PlayerCalls>>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

/// A command's place among those in flight; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    _global: OwnedSemaphorePermit,
    player: Arc<str>,
    players: Arc<DashMap<Arc<str>, PlayerCalls>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut p) = self.players.get_mut(&self.player) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        ev::command_in_flight(-1.0);
    }
}

impl Commands {
    pub(super) fn new(
        config: &BackendConfig,
        http: Option<HttpClient>,
        handler: Option<Arc<dyn CommandHandler>>,
    ) -> Self {
        let target = match (handler, http) {
            (Some(h), _) => Target::Embedded(h),
            (None, Some(client)) if !config.command_url.is_empty() => {
                Target::Http(client, config.command_url.clone())
            }
            _ => Target::None,
        };
        Self {
            target,
            timeout: config.timeout(),
            global: Arc::new(Semaphore::new(config.max_in_flight)),
            per_player: config.max_in_flight_per_player,
            rate: (config.commands_per_second, config.commands_burst),
            players: Arc::new(DashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.target, Target::None)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes a slot for one command of `player`, or says why not: the
    /// rate and caps are checked before anything is spent on the call.
    pub fn admit(&self, player: &Arc<str>, now_ms: u64) -> Result<Slot, Outcome> {
        if !self.enabled() {
            return Err(Outcome::NoBackend);
        }
        let mut p = self.players.entry(Arc::clone(player)).or_insert_with(|| PlayerCalls {
            in_flight: 0,
            bucket: TokenBucket::new(self.rate.0, self.rate.1, now_ms),
            last_ms: now_ms,
        });
        p.last_ms = now_ms;
        if p.in_flight >= self.per_player {
            return Err(Outcome::RateLimited("over backend.max_in_flight_per_player commands waiting"));
        }
        if !p.bucket.try_take(now_ms) {
            return Err(Outcome::RateLimited("over backend.commands_per_second"));
        }
        let Ok(global) = Arc::clone(&self.global).try_acquire_owned() else {
            return Err(Outcome::RateLimited("over backend.max_in_flight commands waiting"));
        };
        p.in_flight += 1;
        ev::command_in_flight(1.0);
        Ok(Slot { _global: global, player: Arc::clone(player), players: Arc::clone(&self.players) })
    }

    /// Forgets players with nothing in flight and no command for a while
    /// (their bucket has refilled by then).
    pub fn sweep(&self, now_ms: u64) {
        let idle_ms = 1000 * u64::from(self.rate.1 / self.rate.0.max(1) + 1);
        self.players.retain(|_, p| p.in_flight > 0 || now_ms.saturating_sub(p.last_ms) < idle_ms);
    }

    /// Calls the game, at most the timeout. `data` is compact JSON.
    pub async fn call(&self, call: Call<'_>, hub: impl FnOnce() -> Hub) -> Outcome {
        let started = Instant::now();
        let outcome = match &self.target {
            Target::None => return Outcome::NoBackend,
            Target::Http(client, url) => {
                // The body is the call itself: `data` goes out as received.
                let (answer, took) = client.post(url, protocol::to_json(&call), self.timeout).await;
                ev::backend_request(Endpoint::Command, answer.outcome(), took);
                return outcome_of(answer);
            }
            Target::Embedded(handler) => {
                let command = Command {
                    id: call.id.to_owned(),
                    name: call.name.to_owned(),
                    data: serde_json::from_str(call.data.get()).unwrap_or(serde_json::Value::Null),
                    player_id: call.player_id.to_owned(),
                    session_id: call.session_id.to_owned(),
                    transport: call.transport,
                };
                let call = handler.handle(command, hub());
                match tokio::time::timeout(self.timeout, call).await {
                    Ok(Ok(value)) => match serde_json::value::to_raw_value(&value) {
                        Ok(raw) => Outcome::Reply(raw),
                        Err(e) => Outcome::Error(e.to_string()),
                    },
                    Ok(Err(e)) if is_valid_code(&e.code) => {
                        Outcome::Refused { code: e.code, message: e.message }
                    }
                    Ok(Err(e)) => Outcome::Error(format!("the game's error code `{}` is not valid", e.code)),
                    Err(_) => Outcome::Timeout,
                }
            }
        };
        let label = match &outcome {
            Outcome::Reply(_) => "ok",
            Outcome::Refused { .. } => "refused",
            other => other.label(),
        };
        ev::backend_request(Endpoint::Command, label, started.elapsed());
        outcome
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn ok(body: &'static str) -> Answer {
        Answer::Ok { status: 200, body: Bytes::from_static(body.as_bytes()) }
    }

    fn refused(status: u16, body: &'static str) -> Answer {
        Answer::Refused { status, body: Bytes::from_static(body.as_bytes()) }
    }

    #[test]
    fn each_answer_has_its_outcome() {
        assert!(
            matches!(outcome_of(ok(r#"{"data": {"a" : 1}}"#)), Outcome::Reply(d) if d.get() == r#"{"a":1}"#)
        );
        assert!(matches!(outcome_of(ok("{}")), Outcome::Reply(d) if d.get() == "null"));
        assert!(matches!(outcome_of(ok("[1]")), Outcome::Error(_)));
        assert!(matches!(outcome_of(ok("garbage")), Outcome::Error(_)));
        assert!(matches!(outcome_of(ok(r#"{"data":"\ud800"}"#)), Outcome::Error(_)));
        assert!(matches!(
            outcome_of(refused(409, r#"{"error":{"code":"cell_taken","message":"taken"}}"#)),
            Outcome::Refused { code, message } if code == "cell_taken" && message == "taken"
        ));
        assert!(matches!(outcome_of(refused(400, r#"{"error":{"code":"Bad Code"}}"#)), Outcome::Error(_)));
        assert!(matches!(outcome_of(refused(404, "not found")), Outcome::Error(_)));
        assert!(matches!(outcome_of(Answer::Timeout), Outcome::Timeout));
        assert!(matches!(outcome_of(Answer::Unavailable), Outcome::Unavailable));
    }

    #[test]
    fn answers_carry_the_command_id() {
        let v: serde_json::Value = serde_json::from_slice(
            &Outcome::Reply(RawValue::from_string("[1]".into()).unwrap()).answer("c1").json,
        )
        .unwrap();
        assert_eq!(v, serde_json::json!({"type":"reply","id":"c1","data":[1]}));
        let a = Outcome::Timeout.answer("c2");
        assert_eq!(a.kind, "error");
        let v: serde_json::Value = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(v["id"], "c2");
        assert_eq!(v["code"], "backend_timeout");
        assert!(!Outcome::RateLimited("x").cacheable());
        assert!(Outcome::Timeout.cacheable());
    }

    #[test]
    fn game_codes_are_checked() {
        assert!(is_valid_code("illegal_move"));
        assert!(is_valid_code("e2"));
        assert!(!is_valid_code(""));
        assert!(!is_valid_code("2e"));
        assert!(!is_valid_code("Bad"));
        assert!(!is_valid_code(&"a".repeat(65)));
    }

    #[test]
    fn caps_and_rate_are_checked_before_a_call() {
        let config = BackendConfig {
            command_url: "http://127.0.0.1:9/x".into(),
            max_in_flight: 2,
            max_in_flight_per_player: 2,
            commands_per_second: 1,
            commands_burst: 3,
            ..BackendConfig::default()
        };
        let http = HttpClient::new(&config, "test").unwrap();
        let c = Commands::new(&config, Some(http), None);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let s1 = c.admit(&a, 0).unwrap();
        let _s2 = c.admit(&a, 0).unwrap();
        assert!(matches!(c.admit(&a, 0), Err(Outcome::RateLimited(m)) if m.contains("per_player")));
        drop(s1);
        let _s3 = c.admit(&a, 0).unwrap();
        assert!(matches!(c.admit(&b, 0), Err(Outcome::RateLimited(m)) if m.contains("max_in_flight ")));
        assert!(c.admit(&a, 0).is_err());
        let none = Commands::new(&BackendConfig::default(), None, None);
        assert!(matches!(none.admit(&a, 0), Err(Outcome::NoBackend)));
    }
}
