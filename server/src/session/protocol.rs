//! The client protocol: frames the server sends, messages clients send, the
//! stable error codes, and the encoding of deliveries.
//!
//! A publication is serialized once ([`Publication::new`]); each session only
//! adds its small `{"type":"message","seq":N,` prefix when a connection's
//! writer encodes the frame, so fan-out copies pointers, not payloads.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::session::payload;
use crate::session::position::Position;
use tandem_protocol::Transport;

pub use tandem_protocol::ErrorCode;

/// A client error: a stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
    /// The id of the command the refused frame was, when it had a valid one.
    pub id: Option<String>,
}

impl From<payload::PayloadError> for ProtocolError {
    fn from(e: payload::PayloadError) -> Self {
        Self::new(ErrorCode::InvalidJson, e.to_string())
    }
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), id: None }
    }

    /// The same error about command `id` (its error frame carries the id).
    #[must_use]
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }
}

/// A message from a client (WebSocket text frame or SSE `POST` body).
#[derive(Debug, Clone)]
pub enum ClientMessage {
    Subscribe {
        channel: String,
    },
    Unsubscribe {
        channel: String,
    },
    Publish {
        channel: String,
        event: String,
        data: Box<RawValue>,
    },
    Ping {
        id: Box<RawValue>,
    },
    /// A command for the game (`backend.command_url` or an embedded handler).
    Command {
        id: String,
        name: String,
        data: Box<RawValue>,
    },
    /// Ends the session now: no resume, the game hears `player_left`.
    EndSession,
    /// Replaces the connection's token without reconnecting.
    Refresh {
        token: String,
    },
    /// Who is in a channel the session is subscribed to, listing at most
    /// `limit` players (`0`: the count alone).
    Presence {
        channel: String,
        limit: usize,
    },
}

impl ClientMessage {
    /// Label for `tandem_messages_received_total{type}` (bounded).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Publish { .. } => "publish",
            Self::Ping { .. } => "ping",
            Self::Command { .. } => "command",
            Self::EndSession => "end_session",
            Self::Refresh { .. } => "refresh",
            Self::Presence { .. } => "presence",
        }
    }

    /// Parses one client message, telling apart bad JSON, an unknown `type`
    /// and a missing or mistyped field, so each gets its own code.
    pub fn parse(text: &[u8]) -> Result<Self, ProtocolError> {
        #[derive(serde::Deserialize)]
        struct Envelope<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<&'a RawValue>,
            #[serde(borrow)]
            channel: Option<&'a RawValue>,
            #[serde(borrow)]
            event: Option<&'a RawValue>,
            #[serde(borrow)]
            data: Option<&'a RawValue>,
            #[serde(borrow)]
            id: Option<&'a RawValue>,
            #[serde(borrow)]
            name: Option<&'a RawValue>,
            #[serde(borrow)]
            token: Option<&'a RawValue>,
            #[serde(borrow)]
            limit: Option<&'a RawValue>,
        }
        let env: Envelope<'_> = serde_json::from_slice(text)
            .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("not a JSON object: {e}")))?;
        let kind = match env.kind.map(|k| serde_json::from_str::<&str>(k.get())) {
            Some(Ok(k)) => k,
            _ => {
                return Err(ProtocolError::new(ErrorCode::UnknownType, "missing or non-string `type`"));
            }
        };
        let string = |field: &'static str, v: Option<&RawValue>| -> Result<String, ProtocolError> {
            match v.map(|raw| serde_json::from_str::<String>(raw.get())) {
                Some(Ok(s)) => Ok(s),
                Some(Err(_)) => {
                    Err(ProtocolError::new(ErrorCode::InvalidMessage, format!("`{field}` must be a string")))
                }
                None => Err(ProtocolError::new(
                    ErrorCode::InvalidMessage,
                    format!("`{field}` is required for `{kind}`"),
                )),
            }
        };
        // `data` and a ping's `id` are relayed: compact and checked once.
        let relayed = |v: Option<&RawValue>| -> Result<Box<RawValue>, ProtocolError> {
            Ok(v.map(payload::compact).transpose()?.unwrap_or_else(null_raw))
        };
        match kind {
            "subscribe" => Ok(Self::Subscribe { channel: string("channel", env.channel)? }),
            "unsubscribe" => Ok(Self::Unsubscribe { channel: string("channel", env.channel)? }),
            "publish" => {
                let channel = string("channel", env.channel)?;
                let event = string("event", env.event)?;
                validate_event(&event)?;
                let data = relayed(env.data)?;
                Ok(Self::Publish { channel, event, data })
            }
            "ping" => Ok(Self::Ping { id: relayed(env.id)? }),
            "command" => {
                let id = string("id", env.id)?;
                validate_command_id(&id)?;
                // Past a valid id, the error frame carries it.
                let about = |e: ProtocolError| e.with_id(&id);
                let name = string("name", env.name).map_err(about)?;
                validate_name("name", &name).map_err(about)?;
                let data = relayed(env.data).map_err(about)?;
                Ok(Self::Command { id, name, data })
            }
            "end_session" => Ok(Self::EndSession),
            "refresh" => Ok(Self::Refresh { token: string("token", env.token)? }),
            "presence" => {
                let channel = string("channel", env.channel)?;
                let limit = env.limit.map(|raw| serde_json::from_str::<u64>(raw.get())).transpose().map_err(
                    |_| ProtocolError::new(ErrorCode::InvalidMessage, "`limit` must be a whole number"),
                )?;
                let limit = crate::session::channel_presence::list_limit(limit)
                    .map_err(|m| ProtocolError::new(ErrorCode::InvalidMessage, m))?;
                Ok(Self::Presence { channel, limit })
            }
            other => Err(ProtocolError::new(
                ErrorCode::UnknownType,
                format!("unknown type `{}`", truncate(other, 32)),
            )),
        }
    }
}

fn null_raw() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Event names: 1–64 characters, no control characters.
pub fn validate_event(event: &str) -> Result<(), ProtocolError> {
    validate_name("event", event)
}

/// Command ids: 1–64 characters, no control characters (the client's own).
pub fn validate_command_id(id: &str) -> Result<(), ProtocolError> {
    validate_name("id", id)
}

/// Publication ids, the node's (`m_…`) or a backend's own: 1-64 of
/// `[A-Za-z0-9_.:@-]` (they travel in header lines and SSE fields).
pub fn validate_publication_id(id: &str) -> Result<(), ProtocolError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::new(ErrorCode::InvalidMessage, "`id` must be 1-64 characters of [A-Za-z0-9_.:@-]"))
    }
}

/// Longest `reason` a backend's disconnect carries to its clients.
pub const MAX_REASON_CHARS: usize = 128;

/// A disconnect's reason: 1-128 characters, no control characters.
pub fn is_valid_reason(reason: &str) -> bool {
    !reason.is_empty() && reason.chars().count() <= MAX_REASON_CHARS && !reason.chars().any(char::is_control)
}

/// Event and command names, command ids: 1–64 bytes, no control characters.
fn validate_name(field: &str, value: &str) -> Result<(), ProtocolError> {
    if value.is_empty() || value.len() > 64 || value.chars().any(char::is_control) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidMessage,
            format!("`{field}` must be 1-64 characters without control characters"),
        ));
    }
    Ok(())
}

/// Epoch milliseconds now.
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Globally unique publication ids: a random per-process prefix and a counter.
pub struct IdGenerator {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGenerator {
    pub fn new() -> Self {
        Self { prefix: rand::random::<u64>(), counter: AtomicU64::new(0) }
    }

    pub fn next(&self, tag: char) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{tag}_{:016x}{n:x}", self.prefix)
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

/// A random, unguessable id (sessions can be joined by id, so they must not
/// be predictable).
pub fn random_id(tag: char) -> String {
    format!("{tag}_{:032x}", rand::random::<u128>())
}

/// A session id as this server makes them (`s_[<route>-]<32 hex>`): what a
/// node accepts before looking one up in the cluster.
pub fn is_session_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with("s_")
        && id.len() > 2
        && id[2..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What every delivery frame starts with; the session's `seq` follows.
const MESSAGE_PREFIX: &[u8] = b"{\"type\":\"message\",\"seq\":";

/// Between `seq` and the tail when the publication has a position.
const POS_FIELD: &[u8] = b"\"pos\":\"";

/// The fields of a `message` frame after `seq`, in their order on the wire.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tail<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    ts: u64,
}

/// A publication, serialized once and shared by every delivery of it.
#[derive(Debug)]
pub struct Publication {
    pub id: Box<str>,
    pub channel: Arc<str>,
    pub accepted_at: Instant,
    /// Its place in its channel's history (cluster brokers), written as
    /// `"pos"` after `seq`, rendered once.
    position: Option<(Position, Box<str>)>,
    /// `"id":…,"channel":…,"event":…,"data":…,"ts":…}`: the frame after `seq`.
    tail: Bytes,
}

impl Publication {
    pub fn new(id: String, channel: Arc<str>, event: &str, data: &RawValue) -> Self {
        let ts = epoch_ms(SystemTime::now());
        let tail = Tail {
            id: Cow::Borrowed(&id),
            channel: Cow::Borrowed(&channel),
            event: Cow::Borrowed(event),
            data,
            ts,
        };
        // Serializing plain strings and a pre-validated RawValue cannot fail.
        let json = serde_json::to_vec(&tail).unwrap_or_else(|_| b"{}".to_vec());
        // Drop the leading `{`: the per-session prefix supplies it.
        let tail = Bytes::from(json).slice(1..);
        Self { id: id.into_boxed_str(), channel, accepted_at: Instant::now(), position: None, tail }
    }

    /// A publication accepted on another node: its id, channel and the
    /// frame's fields after `seq` as that node serialized them, as one JSON
    /// object (see `broker::wire`). Checked like a client's publication:
    /// exactly the fields [`Publication::new`] writes, the same id and
    /// channel, a valid event name, at most `max_bytes`; then shared as is.
    pub fn from_parts(
        id: Box<str>,
        channel: Arc<str>,
        object: Bytes,
        max_bytes: usize,
    ) -> Result<Self, &'static str> {
        if object.len() > max_bytes {
            return Err("too_large");
        }
        let t: Tail<'_> = serde_json::from_slice(&object).map_err(|_| "malformed")?;
        if *t.id != *id || *t.channel != *channel || validate_event(&t.event).is_err() {
            return Err("malformed");
        }
        // Parsed as an object: it starts with `{`, which the tail leaves to
        // the per-session prefix.
        let tail = object.slice(1..);
        Ok(Self { id, channel, accepted_at: Instant::now(), position: None, tail })
    }

    /// The serialized frame after `seq`, shared with other nodes as is.
    pub fn tail(&self) -> &Bytes {
        &self.tail
    }

    /// Places it in its channel's history (before it is shared).
    pub fn with_position(mut self, p: Position) -> Self {
        self.position = Some((p, p.to_string().into_boxed_str()));
        self
    }

    pub fn position(&self) -> Option<Position> {
        self.position.as_ref().map(|(p, _)| *p)
    }

    /// `"pos":"…",` when placed, else nothing.
    fn pos_len(&self) -> usize {
        self.position.as_ref().map_or(0, |(_, text)| POS_FIELD.len() + text.len() + 2)
    }

    /// Length of [`Publication::encode_json`]'s output for `seq`.
    pub fn json_len(&self, seq: u64) -> usize {
        MESSAGE_PREFIX.len() + itoa::Buffer::new().format(seq).len() + 1 + self.pos_len() + self.tail.len()
    }

    /// The `message` frame as JSON text for sequence `seq`.
    pub fn encode_json(&self, seq: u64, buf: &mut BytesMut) {
        let mut n = itoa::Buffer::new();
        buf.reserve(32 + self.pos_len() + self.tail.len());
        buf.put_slice(MESSAGE_PREFIX);
        buf.put_slice(n.format(seq).as_bytes());
        buf.put_u8(b',');
        if let Some((_, text)) = &self.position {
            buf.put_slice(POS_FIELD);
            buf.put_slice(text.as_bytes());
            buf.put_slice(b"\",");
        }
        buf.put_slice(&self.tail);
    }

    /// The SSE event carrying this delivery: `id: <seq>`, `event: message`.
    pub fn encode_sse(&self, seq: u64, buf: &mut BytesMut) {
        let mut n = itoa::Buffer::new();
        let seq_str = n.format(seq);
        buf.reserve(64 + self.tail.len());
        buf.put_slice(b"id: ");
        buf.put_slice(seq_str.as_bytes());
        buf.put_slice(b"\nevent: message\ndata: ");
        self.encode_json(seq, buf);
        buf.put_slice(b"\n\n");
    }
}

/// The first frame on every connection.
#[derive(Debug, Serialize)]
pub struct Welcome<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub session_id: &'a str,
    pub connection_id: &'a str,
    pub player_id: &'a str,
    pub transport: Transport,
    pub resumed: bool,
    pub resync_required: bool,
    pub last_seq: u64,
    pub heartbeat_interval_ms: u64,
    pub channels: Vec<&'a str>,
}

/// Small server frames other than deliveries.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply<'a> {
    Subscribed {
        channel: &'a str,
    },
    Unsubscribed {
        channel: &'a str,
        /// Why the server ended it (`claims`: a refreshed token no longer
        /// allows it); absent when the client asked.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
    },
    Published {
        id: &'a str,
        recipients: usize,
    },
    Pong {
        id: &'a RawValue,
        ts: u64,
    },
    Error {
        code: &'static str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a str>,
    },
    Shutdown {
        reconnect: bool,
        retry_after_ms: u64,
    },
    /// Publications may have been missed (the broker lost its link to the
    /// other nodes): the client should refetch what it shows.
    Resync {
        reason: &'a str,
    },
    /// The answer to `end_session`, before the connections close (4002).
    SessionEnded,
    /// The answer to `refresh`: the new token's `exp` in epoch ms.
    Refreshed {
        expires_at: u64,
    },
    /// The connection's token expires at `expires_at` (epoch ms): send a
    /// `refresh` before then.
    TokenExpiring {
        expires_at: u64,
    },
    /// The backend disconnected the player: do not reconnect.
    Disconnected {
        reason: &'a str,
        reconnect: bool,
    },
    /// The answer to `presence`: `count` is exact, `players` at most
    /// [`crate::session::channel_presence::LIST_CAP`].
    Presence {
        channel: &'a str,
        count: usize,
        players: &'a [crate::session::channel_presence::PresenceEntry],
    },
    /// A player came into a channel (`channels.presence_events`).
    Join {
        channel: &'a str,
        player_id: &'a str,
    },
    /// A player left a channel.
    Leave {
        channel: &'a str,
        player_id: &'a str,
    },
}

/// JSON text of a frame. Frames hold only strings and numbers, so this
/// cannot fail; the fallback keeps the signature infallible regardless.
pub fn to_json<T: Serialize>(frame: &T) -> Bytes {
    serde_json::to_vec(frame).map(Bytes::from).unwrap_or_else(|_| Bytes::from_static(b"{}"))
}

pub fn error_frame(err: &ProtocolError) -> Bytes {
    to_json(&Reply::Error { code: err.code.as_str(), message: &err.message, id: err.id.as_deref() })
}

/// Wraps a non-delivery frame for SSE: `event: <type>` + `data: <json>`.
pub fn sse_event(kind: &str, json: &[u8], buf: &mut BytesMut) {
    buf.reserve(json.len() + kind.len() + 16);
    buf.put_slice(b"event: ");
    buf.put_slice(kind.as_bytes());
    buf.put_slice(b"\ndata: ");
    buf.put_slice(json);
    buf.put_slice(b"\n\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_message() {
        assert!(matches!(
            ClientMessage::parse(br#"{"type":"subscribe","channel":"room:a"}"#).unwrap(),
            ClientMessage::Subscribe { channel } if channel == "room:a"
        ));
        let p = ClientMessage::parse(
            br#"{"type":"publish","channel":"room:a","event":"chat","data":{"x":[1,2]}}"#,
        )
        .unwrap();
        match p {
            ClientMessage::Publish { data, .. } => assert_eq!(data.get(), r#"{"x":[1,2]}"#),
            other => panic!("{other:?}"),
        }
        match ClientMessage::parse(br#"{"type":"ping","id":7}"#).unwrap() {
            ClientMessage::Ping { id } => assert_eq!(id.get(), "7"),
            other => panic!("{other:?}"),
        }
        match ClientMessage::parse(br#"{"type":"ping"}"#).unwrap() {
            ClientMessage::Ping { id } => assert_eq!(id.get(), "null"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn presence_lists_up_to_its_limit() {
        let limit = |text: &[u8]| match ClientMessage::parse(text) {
            Ok(ClientMessage::Presence { limit, .. }) => Ok(limit),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.code),
        };
        assert_eq!(limit(br#"{"type":"presence","channel":"room:a"}"#), Ok(1000));
        assert_eq!(limit(br#"{"type":"presence","channel":"room:a","limit":0}"#), Ok(0));
        assert_eq!(limit(br#"{"type":"presence","channel":"room:a","limit":1000}"#), Ok(1000));
        for bad in [
            &br#"{"type":"presence","channel":"room:a","limit":1001}"#[..],
            br#"{"type":"presence","channel":"room:a","limit":-1}"#,
            br#"{"type":"presence","channel":"room:a","limit":"5"}"#,
        ] {
            assert_eq!(limit(bad), Err(ErrorCode::InvalidMessage));
        }
    }

    #[test]
    fn parses_refresh_and_encodes_its_frames() {
        match ClientMessage::parse(br#"{"type":"refresh","token":"abc"}"#).unwrap() {
            ClientMessage::Refresh { token } => assert_eq!(token, "abc"),
            other => panic!("{other:?}"),
        }
        let code = |s: &str| ClientMessage::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code(r#"{"type":"refresh"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"refresh","token":5}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            &to_json(&Reply::Refreshed { expires_at: 5 })[..],
            br#"{"type":"refreshed","expires_at":5}"#
        );
        assert_eq!(
            &to_json(&Reply::TokenExpiring { expires_at: 5 })[..],
            br#"{"type":"token_expiring","expires_at":5}"#
        );
        assert_eq!(
            &to_json(&Reply::Unsubscribed { channel: "room:a", reason: Some("claims") })[..],
            br#"{"type":"unsubscribed","channel":"room:a","reason":"claims"}"#
        );
        assert_eq!(
            &to_json(&Reply::Unsubscribed { channel: "room:a", reason: None })[..],
            br#"{"type":"unsubscribed","channel":"room:a"}"#
        );
    }

    #[test]
    fn each_bad_input_has_its_code() {
        let code = |s: &str| ClientMessage::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code("nope"), ErrorCode::InvalidJson);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"subscribe""#), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"channel":"room:a"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":5}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"subscribe"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"subscribe","channel":5}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"publish","channel":"room:a"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"publish","channel":"room:a","event":""}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"command","name":"move"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"command","id":7,"name":"move"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"command","id":"","name":"move"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"command","id":"c1"}"#), ErrorCode::InvalidMessage);
        let long = format!(r#"{{"type":"command","id":"c1","name":"{}"}}"#, "n".repeat(65));
        assert_eq!(code(&long), ErrorCode::InvalidMessage);
    }

    #[test]
    fn parses_commands_and_end_session() {
        match ClientMessage::parse(br#"{"type":"command","id":"c1","name":"move","data":{ "x" : 1 }}"#)
            .unwrap()
        {
            ClientMessage::Command { id, name, data } => {
                assert_eq!((id.as_str(), name.as_str(), data.get()), ("c1", "move", r#"{"x":1}"#));
            }
            other => panic!("{other:?}"),
        }
        match ClientMessage::parse(br#"{"type":"command","id":"c2","name":"roll"}"#).unwrap() {
            ClientMessage::Command { data, .. } => assert_eq!(data.get(), "null"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            ClientMessage::parse(br#"{"type":"end_session"}"#).unwrap(),
            ClientMessage::EndSession
        ));
    }

    #[test]
    fn delivery_frames_share_one_serialization() {
        let data = RawValue::from_string(r#"{"text":"hi \"you\""}"#.into()).unwrap();
        let p = Publication::new("m_1".into(), Arc::from("room:tavern"), "chat", &data);
        let mut buf = BytesMut::new();
        p.encode_json(42, &mut buf);
        assert_eq!(buf.len(), p.json_len(42));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["id"], "m_1");
        assert_eq!(v["channel"], "room:tavern");
        assert_eq!(v["event"], "chat");
        assert_eq!(v["data"]["text"], "hi \"you\"");
        assert!(v["ts"].as_u64().unwrap() > 1_600_000_000_000);

        let mut sse = BytesMut::new();
        p.encode_sse(42, &mut sse);
        let text = std::str::from_utf8(&sse).unwrap();
        assert!(text.starts_with("id: 42\nevent: message\ndata: {\"type\":\"message\",\"seq\":42,"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 4, "JSON must stay on one data line");

        let placed = Publication::new("m_1".into(), Arc::from("room:tavern"), "chat", &data)
            .with_position(Position { epoch: 9, offset: 3, tag: 77 });
        let mut buf = BytesMut::new();
        placed.encode_json(42, &mut buf);
        assert_eq!(buf.len(), placed.json_len(42));
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(
            (&v["seq"], &v["pos"], &v["event"]),
            (&serde_json::json!(42), &serde_json::json!("9.3.77"), &serde_json::json!("chat"))
        );
    }

    #[test]
    fn replies_encode_as_documented() {
        let id = RawValue::from_string("7".into()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&to_json(&Reply::Pong { id: &id, ts: 5 })).unwrap();
        assert_eq!(v, serde_json::json!({"type":"pong","id":7,"ts":5}));
        let e = error_frame(&ProtocolError::new(ErrorCode::RateLimited, "slow down"));
        let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(v, serde_json::json!({"type":"error","code":"rate_limited","message":"slow down"}));
    }

    #[test]
    fn ids_are_unique() {
        let g = IdGenerator::new();
        assert_ne!(g.next('m'), g.next('m'));
        assert_ne!(random_id('s'), random_id('s'));
    }
}
