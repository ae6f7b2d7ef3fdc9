//! The JSON frames of the Tandem protocol, both directions.
//!
//! Server frames are parsed strictly when their `type` is known (a welcome
//! missing a field is a protocol error, not something to paper over) and kept
//! raw when it is not, so that a newer server never breaks an older client.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The first frame on every connection: which session and connection the
/// client got, and where its sequence stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub session_id: String,
    pub connection_id: String,
    pub player_id: String,
    /// `websocket` or `sse`.
    pub transport: String,
    /// `true` when the requested `last_seq` could be replayed from history.
    #[serde(default)]
    pub resumed: bool,
    /// `true` when a gap could not be filled: the client must reload state.
    #[serde(default)]
    pub resync_required: bool,
    /// Highest `seq` the session had assigned when this connection attached.
    #[serde(default)]
    pub last_seq: u64,
    pub heartbeat_interval_ms: u64,
    /// Channels the session is subscribed to (always includes `player:<id>`).
    #[serde(default)]
    pub channels: Vec<String>,
}

/// One delivery of a publication to this session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Per-session sequence number: 1, 2, 3… with no gap; de-duplicate by it.
    pub seq: u64,
    /// Its place in its channel's history (`<epoch>.<offset>.<tag>`), on a
    /// cluster: kept per channel and presented on resume, so any node can
    /// replay what was missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<String>,
    /// Publication id, identical on every connection and session it reached.
    pub id: String,
    pub channel: String,
    pub event: String,
    #[serde(default)]
    pub data: Value,
    /// Unix epoch milliseconds when the publication was accepted.
    pub ts: u64,
}

/// Every frame a Tandem server sends.
///
/// Known frames are read strictly, unknown ones kept whole: the
/// [`Deserialize`] impl reads `type` first and only then hands a known frame
/// to the strict derive. Parse with [`parse`](Self::parse),
/// [`from_value`](Self::from_value) or serde's traits (`serde_json::from_str`
/// and the like).
///
/// `remote = "Self"` makes the derives associated functions, which the
/// trait impls wrap: called by path, `ServerFrame::deserialize(…)` and
/// `ServerFrame::serialize(…)` are those strict derives, which know nothing
/// of [`ServerFrame::Unknown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Message(Delivery),
    Subscribed {
        channel: String,
    },
    /// The answer to `unsubscribe`; or, with `reason` (`claims`), the
    /// server ended a subscription a refreshed token no longer allows.
    Unsubscribed {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Published {
        id: String,
        recipients: u64,
    },
    Pong {
        #[serde(default)]
        id: Value,
        ts: u64,
    },
    /// A refusal. `id` names the command it answers (a `command`'s error
    /// frame carries it, and so does an `invalid_message` about a frame
    /// that had one); other refusals have none.
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
    /// The answer to a `command`: the game backend's `data` (`null` when it
    /// sent none).
    Reply {
        id: String,
        #[serde(default)]
        data: Value,
    },
    /// The answer to `end_session`: the session is over, every connection
    /// of it is closed next (4002 `session_ended`).
    SessionEnded {},
    Shutdown {
        reconnect: bool,
        retry_after_ms: u64,
    },
    /// Publications may have been missed (the server lost its link to the
    /// other nodes): refetch what the client shows.
    Resync {
        reason: String,
    },
    /// The answer to `refresh`: the new token's `exp` (epoch ms).
    Refreshed {
        expires_at: u64,
    },
    /// The connection's token expires at `expires_at` (epoch ms): send a
    /// `refresh` before then.
    TokenExpiring {
        expires_at: u64,
    },
    /// The backend disconnected the player, saying why; the close (4001)
    /// follows. Do not reconnect.
    Disconnected {
        reason: String,
        reconnect: bool,
    },
    /// The answer to `presence`: `count` is exact, `players` at most 1,000.
    Presence {
        channel: String,
        count: u64,
        players: Vec<PresenceEntry>,
    },
    /// Another player came into a channel (`channels.presence_events`).
    Join {
        channel: String,
        player_id: String,
    },
    /// Another player left a channel.
    Leave {
        channel: String,
        player_id: String,
    },
    /// The last event of an SSE stream the server ends (not on shutdown):
    /// the code and reason a WebSocket would get in its close frame.
    Close {
        code: u16,
        reason: String,
        reconnect: bool,
    },
    /// A frame whose `type` this client does not know, kept whole (and sent
    /// back out as it came).
    #[serde(skip)]
    Unknown(Value),
}

/// The `type`s of the known variants of [`ServerFrame`], as on the wire.
const KNOWN_TYPES: [&str; 18] = [
    "presence",
    "join",
    "leave",
    "welcome",
    "message",
    "subscribed",
    "unsubscribed",
    "published",
    "pong",
    "error",
    "reply",
    "session_ended",
    "shutdown",
    "resync",
    "close",
    "refreshed",
    "token_expiring",
    "disconnected",
];

impl ServerFrame {
    /// Parses one frame from its JSON text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses one frame from an already decoded JSON value.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let known = value.get("type").and_then(Value::as_str).is_some_and(|t| KNOWN_TYPES.contains(&t));
        // The derived (strict) deserializer, not the trait's.
        if known { ServerFrame::deserialize(value) } else { Ok(Self::Unknown(value)) }
    }

    /// The frame's `type` as it appears on the wire.
    pub fn kind(&self) -> &str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Message(_) => "message",
            Self::Subscribed { .. } => "subscribed",
            Self::Unsubscribed { .. } => "unsubscribed",
            Self::Published { .. } => "published",
            Self::Pong { .. } => "pong",
            Self::Error { .. } => "error",
            Self::Reply { .. } => "reply",
            Self::SessionEnded {} => "session_ended",
            Self::Shutdown { .. } => "shutdown",
            Self::Resync { .. } => "resync",
            Self::Close { .. } => "close",
            Self::Refreshed { .. } => "refreshed",
            Self::TokenExpiring { .. } => "token_expiring",
            Self::Disconnected { .. } => "disconnected",
            Self::Presence { .. } => "presence",
            Self::Join { .. } => "join",
            Self::Leave { .. } => "leave",
            Self::Unknown(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ServerFrame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Unknown(raw) => raw.serialize(serializer),
            // The derived serializer (an associated function, hence the path).
            known => ServerFrame::serialize(known, serializer),
        }
    }
}

/// Every message a client may send (WebSocket text frame or SSE POST body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
        data: Value,
    },
    Ping {
        id: Value,
    },
    /// A command for the game backend; `id` names it for the whole session
    /// (a resend with the same `id` is answered from the server's reply
    /// cache, never run twice).
    Command {
        id: String,
        name: String,
        data: Value,
    },
    /// Ends the session for good (answered by `session_ended`).
    EndSession,
    /// Replaces the connection's token without reconnecting (answered by
    /// `refreshed`).
    Refresh {
        token: String,
    },
    /// Who is in a subscribed channel (answered by `presence`), listing
    /// at most `limit` players (`0`: the count alone; absent: 1,000).
    Presence {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
}

/// One player in a channel: its subscribed sessions, and the transports
/// (`websocket`, `sse`) it is connected with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub player_id: String,
    pub sessions: u64,
    pub transports: Vec<String>,
}

impl ClientMessage {
    pub fn subscribe(channel: impl Into<String>) -> Self {
        Self::Subscribe { channel: channel.into() }
    }

    pub fn unsubscribe(channel: impl Into<String>) -> Self {
        Self::Unsubscribe { channel: channel.into() }
    }

    pub fn publish(channel: impl Into<String>, event: impl Into<String>, data: Value) -> Self {
        Self::Publish { channel: channel.into(), event: event.into(), data }
    }

    pub fn ping(id: impl Into<Value>) -> Self {
        Self::Ping { id: id.into() }
    }

    pub fn command(id: impl Into<String>, name: impl Into<String>, data: Value) -> Self {
        Self::Command { id: id.into(), name: name.into(), data }
    }

    pub fn refresh(token: impl Into<String>) -> Self {
        Self::Refresh { token: token.into() }
    }

    /// The JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // A derived Serialize of strings and `Value`s cannot fail; fall back to
        // an empty object rather than panic if that ever changes.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn welcome_parses_with_every_field() {
        let text = r#"{"type":"welcome","session_id":"s_1","connection_id":"c_1","player_id":"alice",
            "transport":"websocket","resumed":false,"resync_required":false,"last_seq":0,
            "heartbeat_interval_ms":15000,"channels":["player:alice"]}"#;
        let ServerFrame::Welcome(w) = ServerFrame::parse(text).unwrap() else {
            panic!("not a welcome");
        };
        assert_eq!(w.session_id, "s_1");
        assert_eq!(w.transport, "websocket");
        assert_eq!(w.heartbeat_interval_ms, 15000);
        assert_eq!(w.channels, vec!["player:alice"]);
    }

    #[test]
    fn delivery_parses() {
        let text = r#"{"type":"message","seq":42,"id":"m_1","channel":"room:tavern","event":"chat",
            "data":{"text":"hi"},"ts":1732451234567}"#;
        let frame = ServerFrame::parse(text).unwrap();
        assert_eq!(
            frame,
            ServerFrame::Message(Delivery {
                seq: 42,
                pos: None,
                id: "m_1".into(),
                channel: "room:tavern".into(),
                event: "chat".into(),
                data: json!({"text": "hi"}),
                ts: 1_732_451_234_567,
            })
        );
        assert_eq!(frame.kind(), "message");
    }

    #[test]
    fn replies_parse() {
        let cases = [
            (
                r#"{"type":"subscribed","channel":"room:x"}"#,
                ServerFrame::Subscribed { channel: "room:x".into() },
            ),
            (
                r#"{"type":"unsubscribed","channel":"room:x"}"#,
                ServerFrame::Unsubscribed { channel: "room:x".into(), reason: None },
            ),
            (
                r#"{"type":"unsubscribed","channel":"room:x","reason":"claims"}"#,
                ServerFrame::Unsubscribed { channel: "room:x".into(), reason: Some("claims".into()) },
            ),
            (r#"{"type":"refreshed","expires_at":5}"#, ServerFrame::Refreshed { expires_at: 5 }),
            (r#"{"type":"token_expiring","expires_at":5}"#, ServerFrame::TokenExpiring { expires_at: 5 }),
            (
                r#"{"type":"disconnected","reason":"banned","reconnect":false}"#,
                ServerFrame::Disconnected { reason: "banned".into(), reconnect: false },
            ),
            (
                r#"{"type":"published","id":"m_9","recipients":3}"#,
                ServerFrame::Published { id: "m_9".into(), recipients: 3 },
            ),
            (r#"{"type":"pong","id":7,"ts":5}"#, ServerFrame::Pong { id: json!(7), ts: 5 }),
            (r#"{"type":"pong","ts":5}"#, ServerFrame::Pong { id: Value::Null, ts: 5 }),
            (
                r#"{"type":"error","code":"forbidden","message":"no"}"#,
                ServerFrame::Error { code: "forbidden".into(), message: "no".into(), id: None },
            ),
            (
                r#"{"type":"error","id":"c1","code":"illegal_move","message":"not your turn"}"#,
                ServerFrame::Error {
                    code: "illegal_move".into(),
                    message: "not your turn".into(),
                    id: Some(json!("c1")),
                },
            ),
            (
                r#"{"type":"error","id":5,"code":"invalid_message","message":"id"}"#,
                ServerFrame::Error {
                    code: "invalid_message".into(),
                    message: "id".into(),
                    id: Some(json!(5)),
                },
            ),
            (
                r#"{"type":"reply","id":"c1","data":{"ok":true}}"#,
                ServerFrame::Reply { id: "c1".into(), data: json!({"ok": true}) },
            ),
            (r#"{"type":"reply","id":"c2"}"#, ServerFrame::Reply { id: "c2".into(), data: Value::Null }),
            (r#"{"type":"session_ended"}"#, ServerFrame::SessionEnded {}),
            (
                r#"{"type":"shutdown","reconnect":true,"retry_after_ms":1500}"#,
                ServerFrame::Shutdown { reconnect: true, retry_after_ms: 1500 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ServerFrame::parse(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn unknown_type_is_kept_raw() {
        let frame = ServerFrame::parse(r#"{"type":"novelty","x":1}"#).unwrap();
        assert_eq!(frame, ServerFrame::Unknown(json!({"type":"novelty","x":1})));
        assert_eq!(frame.kind(), "novelty");
    }

    #[test]
    fn known_type_with_bad_fields_is_an_error() {
        assert!(ServerFrame::parse(r#"{"type":"welcome","session_id":"s"}"#).is_err());
        assert!(ServerFrame::parse(r#"{"type":"message","seq":"one"}"#).is_err());
    }

    #[test]
    fn a_bad_known_frame_says_what_is_wrong() {
        let err = ServerFrame::parse(r#"{"type":"welcome","session_id":"s"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `connection_id`"), "{err}");
        let err = ServerFrame::parse(r#"{"type":"message","seq":"one"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn frames_without_a_string_type_are_unknown() {
        for raw in [json!({"x": 1}), json!({"type": 7}), json!([1, 2]), json!("welcome")] {
            assert_eq!(ServerFrame::from_value(raw.clone()).unwrap(), ServerFrame::Unknown(raw));
        }
    }

    #[test]
    fn every_known_frame_round_trips_under_its_type() {
        let frames = [
            ServerFrame::Welcome(Welcome { heartbeat_interval_ms: 15_000, ..Welcome::default() }),
            ServerFrame::Message(Delivery {
                seq: 1,
                pos: None,
                id: "m_1".into(),
                channel: "room:x".into(),
                event: "chat".into(),
                data: json!({"text": "hi"}),
                ts: 5,
            }),
            ServerFrame::Subscribed { channel: "room:x".into() },
            ServerFrame::Unsubscribed { channel: "room:x".into(), reason: None },
            ServerFrame::Published { id: "m_1".into(), recipients: 2 },
            ServerFrame::Pong { id: json!("check"), ts: 5 },
            ServerFrame::Error { code: "forbidden".into(), message: "no".into(), id: None },
            ServerFrame::Reply { id: "c1".into(), data: json!([1]) },
            ServerFrame::SessionEnded {},
            ServerFrame::Shutdown { reconnect: true, retry_after_ms: 1500 },
            ServerFrame::Resync { reason: "broker_reconnected".into() },
            ServerFrame::Close { code: 4001, reason: "disconnected".into(), reconnect: false },
            ServerFrame::Refreshed { expires_at: 9 },
            ServerFrame::TokenExpiring { expires_at: 8 },
            ServerFrame::Disconnected { reason: "banned".into(), reconnect: false },
            ServerFrame::Presence {
                channel: "room:x".into(),
                count: 1,
                players: vec![PresenceEntry {
                    player_id: "bob".into(),
                    sessions: 1,
                    transports: vec!["websocket".into(), "sse".into()],
                }],
            },
            ServerFrame::Join { channel: "room:x".into(), player_id: "bob".into() },
            ServerFrame::Leave { channel: "room:x".into(), player_id: "bob".into() },
        ];
        assert_eq!(frames.len(), KNOWN_TYPES.len());
        for frame in frames {
            let value = serde_json::to_value(&frame).unwrap();
            assert_eq!(value["type"], frame.kind());
            assert!(KNOWN_TYPES.contains(&frame.kind()), "{} is not in KNOWN_TYPES", frame.kind());
            assert_eq!(ServerFrame::from_value(value).unwrap(), frame);
        }
    }

    #[test]
    fn unknown_frames_serialize_as_they_came() {
        let raw = json!({"type":"novelty","x":[1, {"y": null}]});
        let frame = ServerFrame::Unknown(raw.clone());
        assert_eq!(serde_json::to_value(&frame).unwrap(), raw);
        let back: ServerFrame = serde_json::from_str(&serde_json::to_string(&frame).unwrap()).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn server_frames_round_trip() {
        let frame = ServerFrame::Published { id: "m_1".into(), recipients: 2 };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(ServerFrame::parse(&text).unwrap(), frame);
    }

    #[test]
    fn client_messages_serialize_as_the_protocol_says() {
        let cases = [
            (ClientMessage::subscribe("room:tavern"), json!({"type":"subscribe","channel":"room:tavern"})),
            (
                ClientMessage::unsubscribe("room:tavern"),
                json!({"type":"unsubscribe","channel":"room:tavern"}),
            ),
            (
                ClientMessage::publish("room:tavern", "chat", json!({"text":"hi"})),
                json!({"type":"publish","channel":"room:tavern","event":"chat","data":{"text":"hi"}}),
            ),
            (ClientMessage::ping(7), json!({"type":"ping","id":7})),
            (
                ClientMessage::command("c1", "move", json!({"x": 1, "y": 2})),
                json!({"type":"command","id":"c1","name":"move","data":{"x":1,"y":2}}),
            ),
            (ClientMessage::EndSession, json!({"type":"end_session"})),
            (ClientMessage::refresh("t"), json!({"type":"refresh","token":"t"})),
        ];
        for (msg, want) in cases {
            let got: Value = serde_json::from_str(&msg.to_json()).unwrap();
            assert_eq!(got, want);
        }
    }
}
