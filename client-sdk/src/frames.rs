//! The JSON frames of the Tandem protocol, both directions.
//!
//! Server frames are parsed strictly when their `type` is known (a welcome
//! missing a field is a protocol error, not something to paper over) and kept
//! raw when it is not, so that a newer server never breaks an older client.

use serde::{Deserialize, Deserializer, Serialize};
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Message(Delivery),
    Subscribed {
        channel: String,
    },
    Unsubscribed {
        channel: String,
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
    Error {
        code: String,
        message: String,
    },
    Shutdown {
        reconnect: bool,
        retry_after_ms: u64,
    },
    /// Publications may have been missed (the server lost its link to the
    /// other nodes): refetch what the client shows.
    Resync {
        reason: String,
    },
    /// The last event of an SSE stream the server ends (not on shutdown):
    /// the code and reason a WebSocket would get in its close frame.
    Close {
        code: u16,
        reason: String,
        reconnect: bool,
    },
    /// A frame whose `type` this client does not know, kept whole.
    #[serde(untagged)]
    Unknown(Value),
}

/// The known frames, derived strictly; [`ServerFrame`] falls back to
/// [`ServerFrame::Unknown`] only when the `type` itself is not one of them.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum KnownFrame {
    Welcome(Welcome),
    Message(Delivery),
    Subscribed {
        channel: String,
    },
    Unsubscribed {
        channel: String,
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
    Error {
        code: String,
        message: String,
    },
    Shutdown {
        reconnect: bool,
        retry_after_ms: u64,
    },
    Resync {
        reason: String,
    },
    Close {
        code: u16,
        reason: String,
        reconnect: bool,
    },
}

const KNOWN_TYPES: [&str; 10] = [
    "welcome",
    "message",
    "subscribed",
    "unsubscribed",
    "published",
    "pong",
    "error",
    "shutdown",
    "resync",
    "close",
];

impl From<KnownFrame> for ServerFrame {
    fn from(k: KnownFrame) -> Self {
        match k {
            KnownFrame::Welcome(w) => Self::Welcome(w),
            KnownFrame::Message(d) => Self::Message(d),
            KnownFrame::Subscribed { channel } => Self::Subscribed { channel },
            KnownFrame::Unsubscribed { channel } => Self::Unsubscribed { channel },
            KnownFrame::Published { id, recipients } => Self::Published { id, recipients },
            KnownFrame::Pong { id, ts } => Self::Pong { id, ts },
            KnownFrame::Error { code, message } => Self::Error { code, message },
            KnownFrame::Shutdown { reconnect, retry_after_ms } => {
                Self::Shutdown { reconnect, retry_after_ms }
            }
            KnownFrame::Resync { reason } => Self::Resync { reason },
            KnownFrame::Close { code, reason, reconnect } => Self::Close { code, reason, reconnect },
        }
    }
}

impl ServerFrame {
    /// Parses one frame from its JSON text.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Parses one frame from an already decoded JSON value.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let known = value.get("type").and_then(Value::as_str).is_some_and(|t| KNOWN_TYPES.contains(&t));
        if known { KnownFrame::deserialize(value).map(Self::from) } else { Ok(Self::Unknown(value)) }
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
            Self::Shutdown { .. } => "shutdown",
            Self::Resync { .. } => "resync",
            Self::Close { .. } => "close",
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

/// Every message a client may send (WebSocket text frame or SSE POST body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Subscribe { channel: String },
    Unsubscribe { channel: String },
    Publish { channel: String, event: String, data: Value },
    Ping { id: Value },
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
                ServerFrame::Unsubscribed { channel: "room:x".into() },
            ),
            (
                r#"{"type":"published","id":"m_9","recipients":3}"#,
                ServerFrame::Published { id: "m_9".into(), recipients: 3 },
            ),
            (r#"{"type":"pong","id":7,"ts":5}"#, ServerFrame::Pong { id: json!(7), ts: 5 }),
            (r#"{"type":"pong","ts":5}"#, ServerFrame::Pong { id: Value::Null, ts: 5 }),
            (
                r#"{"type":"error","code":"forbidden","message":"no"}"#,
                ServerFrame::Error { code: "forbidden".into(), message: "no".into() },
            ),
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
        ];
        for (msg, want) in cases {
            let got: Value = serde_json::from_str(&msg.to_json()).unwrap();
            assert_eq!(got, want);
        }
    }
}
