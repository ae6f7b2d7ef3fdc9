//! The connect and subscribe hooks: the game deciding who may connect (and
//! with which extra channels) and who may subscribe where. Answers are
//! cached per player and request for `backend.hook_cache_seconds`, in a
//! map that never grows past `backend.hook_cache_size`, so a reconnect
//! storm asks the game once per player.

use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tandem_protocol::{ErrorCode, Transport};

use super::client::{Answer, Endpoint, HttpClient};
use super::commands::parse_refusal;
use crate::config::{BackendConfig, HookFailure};
use crate::session::protocol;
use crate::telemetry as ev;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Connect,
    Subscribe,
}

impl Hook {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Subscribe => "subscribe",
        }
    }

    fn endpoint(self) -> Endpoint {
        match self {
            Self::Connect => Endpoint::Connect,
            Self::Subscribe => Endpoint::Subscribe,
        }
    }
}

/// A refusal the client receives: HTTP status, the game's code, whether to
/// try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry: bool,
}

impl Refusal {
    fn failed(hook: Hook) -> Self {
        Self {
            status: 503,
            code: ErrorCode::BackendUnavailable.as_str().to_owned(),
            message: format!("the game's {} hook did not answer", hook.as_str()),
            retry: true,
        }
    }
}

/// What a hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Allowed, with the channels a connect hook added.
    Allowed(Vec<String>),
    Refused(Refusal),
}

/// The decision's `decision` label.
fn label(d: &Result<Vec<String>, Refusal>, failed: bool) -> &'static str {
    match (d, failed) {
        (Ok(_), false) => "allowed",
        (Err(_), false) => "refused",
        (Ok(_), true) => "failed_allowed",
        (Err(_), true) => "failed_denied",
    }
}

#[derive(Debug, Clone)]
struct Cached {
    decision: Decision,
    failed: bool,
    expires_ms: u64,
}

/// The two hooks and their cache.
#[derive(Debug)]
pub struct Hooks {
    client: Option<HttpClient>,
    connect_url: String,
    subscribe_url: String,
    timeout: Duration,
    failure: HookFailure,
    ttl_ms: u64,
    capacity: usize,
    cache: DashMap<Box<str>, Cached>,
}

/// What a connect hook is asked.
#[derive(Debug, Serialize)]
pub struct ConnectAsk<'a> {
    pub player_id: &'a str,
    pub session_id: Option<&'a str>,
    pub transport: Transport,
    pub channels: &'a [String],
    pub resume: bool,
}

#[derive(Debug, Serialize)]
struct SubscribeAsk<'a> {
    player_id: &'a str,
    session_id: &'a str,
    channel: &'a str,
}

impl Hooks {
    pub(super) fn new(config: &BackendConfig, client: Option<HttpClient>) -> Self {
        Self {
            client,
            connect_url: config.connect_url.clone(),
            subscribe_url: config.subscribe_url.clone(),
            timeout: config.hook_timeout(),
            failure: config.hook_failure,
            ttl_ms: config.hook_cache_seconds * 1000,
            capacity: config.hook_cache_size,
            cache: DashMap::new(),
        }
    }

    pub fn has(&self, hook: Hook) -> bool {
        self.client.is_some() && !self.url(hook).is_empty()
    }

    fn url(&self, hook: Hook) -> &str {
        match hook {
            Hook::Connect => &self.connect_url,
            Hook::Subscribe => &self.subscribe_url,
        }
    }

    /// Asks the connect hook; `Ok` carries the channels it adds.
    pub async fn connect(&self, ask: &ConnectAsk<'_>, now_ms: u64) -> Result<Vec<String>, Refusal> {
        if !self.has(Hook::Connect) {
            return Ok(Vec::new());
        }
        let key = format!("c\0{}\0{}\0{}", ask.player_id, ask.transport.as_str(), ask.channels.join(","));
        self.decide(Hook::Connect, key, protocol::to_json(ask), now_ms).await
    }

    /// Asks the subscribe hook.
    pub async fn subscribe(
        &self,
        player_id: &str,
        session_id: &str,
        channel: &str,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if !self.has(Hook::Subscribe) {
            return Ok(());
        }
        let key = format!("s\0{player_id}\0{channel}");
        let body = protocol::to_json(&SubscribeAsk { player_id, session_id, channel });
        self.decide(Hook::Subscribe, key, body, now_ms).await.map(drop)
    }

    async fn decide(
        &self,
        hook: Hook,
        key: String,
        body: bytes::Bytes,
        now_ms: u64,
    ) -> Result<Vec<String>, Refusal> {
        if let Some(hit) = self.cache.get(key.as_str()).filter(|c| c.expires_ms > now_ms).map(|c| c.clone()) {
            let result = match hit.decision {
                Decision::Allowed(ch) => Ok(ch),
                Decision::Refused(r) => Err(r),
            };
            ev::hook_decision(hook.as_str(), label(&result, hit.failed), true);
            return result;
        }
        let Some(client) = &self.client else { return Ok(Vec::new()) };
        let (answer, took) = client.post(self.url(hook), body, self.timeout).await;
        ev::backend_request(hook.endpoint(), answer.outcome(), took);
        let (result, failed) = match self.read(hook, answer) {
            Some(result) => (result, false),
            None => match self.failure {
                HookFailure::Allow => (Ok(Vec::new()), true),
                HookFailure::Deny => (Err(Refusal::failed(hook)), true),
            },
        };
        ev::hook_decision(hook.as_str(), label(&result, failed), false);
        self.remember(key, &result, failed, now_ms);
        result
    }

    /// The game's answer, or `None` if it did not keep the contract.
    fn read(&self, hook: Hook, answer: Answer) -> Option<Result<Vec<String>, Refusal>> {
        match answer {
            Answer::Ok { body, .. } => {
                #[derive(Deserialize)]
                struct Allowed {
                    #[serde(default)]
                    channels: Vec<String>,
                }
                if !super::commands::is_object(&body) {
                    return None;
                }
                let allowed: Allowed = serde_json::from_slice(&body).ok()?;
                Some(Ok(match hook {
                    Hook::Connect => allowed.channels,
                    Hook::Subscribe => Vec::new(),
                }))
            }
            Answer::Refused { status, body } => {
                let d = parse_refusal(&body)?;
                // A refusal is a 4xx the client sees as 403 (or 429 for a
                // game asking it to slow down).
                let status = if status == 429 { 429 } else { 403 };
                Some(Err(Refusal { status, code: d.code, message: d.message, retry: d.retry }))
            }
            Answer::Timeout | Answer::Unavailable | Answer::Error { .. } => None,
        }
    }

    fn remember(&self, key: String, result: &Result<Vec<String>, Refusal>, failed: bool, now_ms: u64) {
        if self.ttl_ms == 0 {
            return;
        }
        // At the cap nothing new is cached (expired entries go in the sweep).
        if self.cache.len() >= self.capacity && !self.cache.contains_key(key.as_str()) {
            return;
        }
        let decision = match result {
            Ok(ch) => Decision::Allowed(ch.clone()),
            Err(r) => Decision::Refused(r.clone()),
        };
        self.cache
            .insert(key.into_boxed_str(), Cached { decision, failed, expires_ms: now_ms + self.ttl_ms });
    }

    /// Drops expired answers.
    pub fn sweep(&self, now_ms: u64) {
        self.cache.retain(|_, c| c.expires_ms > now_ms);
    }
}
