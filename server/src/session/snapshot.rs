//! Plain snapshots of a player's sessions and connections: what the manager
//! hands out without anyone reaching into its locks.
//!
//! They are also the documents, so a session has one schema wherever it is
//! shown: serialized, a [`SessionSnapshot`] is an item of `sessions` in
//! `GET /api/players/{id}` and in monitoring's player detail, and a
//! [`RemotePlayer`] is the record a node keeps in Redis for each player it
//! holds, read back by the other nodes.
//!
//! Instants are RFC 3339 strings to the second and durations are seconds
//! (`f64`), as the views show them. Fields are declared in the order of
//! their JSON keys (alphabetical), so the documents keep the byte layout
//! their readers know.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tandem_protocol::Transport;

/// One connection, as the views show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionSnapshot {
    #[serde(rename = "age_seconds", with = "secs_f64")]
    pub age: Duration,
    pub bytes_sent: u64,
    #[serde(with = "rfc3339")]
    pub connected_at: SystemTime,
    #[serde(rename = "connection_id")]
    pub id: String,
    pub healthy: bool,
    pub last_heartbeat_rtt_ms: Option<f64>,
    pub messages_sent: u64,
    pub queue_capacity: usize,
    pub queue_depth: usize,
    pub transport: Transport,
}

/// One session, as the views show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    pub connections: Vec<ConnectionSnapshot>,
    #[serde(with = "rfc3339")]
    pub created_at: SystemTime,
    /// How long it has had no connection; `None` while connected.
    #[serde(rename = "detached_seconds", with = "opt_secs_f64")]
    pub detached: Option<Duration>,
    pub last_seq: u64,
    /// The node holding the session, when it is another one (set by the
    /// reader of that node's record, so an API answer says where each
    /// session lives); `None` on the node that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(rename = "session_id")]
    pub id: String,
    pub subscriptions: Vec<String>,
}

/// One player's sessions on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerSnapshot {
    pub player_id: String,
    pub sessions: Vec<SessionSnapshot>,
}

/// A player's sessions on one node or several, with their connections
/// counted by transport.
///
/// It is the document a node keeps in Redis for each player it holds (one
/// hash field per node), what the other nodes read back of a player, and
/// the parts `GET /api/players/{id}` merges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RemotePlayer {
    pub sessions: Vec<SessionSnapshot>,
    pub sse: usize,
    pub websocket: usize,
}

impl RemotePlayer {
    /// The player's sessions on this node, its connections counted.
    pub fn from_snapshot(p: PlayerSnapshot) -> Self {
        let mut out = Self::default();
        for c in p.sessions.iter().flat_map(|s| &s.connections) {
            match c.transport {
                Transport::WebSocket => out.websocket += 1,
                Transport::Sse => out.sse += 1,
            }
        }
        out.sessions = p.sessions;
        out
    }

    /// Connections of both transports.
    pub fn connections(&self) -> usize {
        self.websocket + self.sse
    }
}

/// `SystemTime` as an RFC 3339 string to the second (UTC).
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(D::Error::custom)
    }
}

/// `Option<SystemTime>` as an RFC 3339 string to the second, or `null`.
pub mod opt_rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::rfc3339")] SystemTime);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(t)| t))
    }
}

/// `Duration` as seconds (`f64`).
mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `Option<Duration>` as seconds (`f64`), or `null`.
mod opt_secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?.map(Duration::try_from_secs_f64).transpose().map_err(D::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A session of two connections, times to the microsecond.
    pub(crate) fn session() -> SessionSnapshot {
        let conn = |id: &str, transport| ConnectionSnapshot {
            age: Duration::from_micros(2_345_678),
            bytes_sent: 90,
            connected_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            id: id.into(),
            healthy: true,
            last_heartbeat_rtt_ms: Some(0.25),
            messages_sent: 3,
            queue_capacity: 256,
            queue_depth: 1,
            transport,
        };
        SessionSnapshot {
            connections: vec![conn("c_1", Transport::WebSocket), conn("c_2", Transport::Sse)],
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            detached: None,
            last_seq: 4,
            node_id: None,
            id: "s_1".into(),
            subscriptions: vec!["player:p".into(), "room:a".into()],
        }
    }

    #[test]
    fn a_session_serializes_as_the_view_and_reads_back() {
        let s = session();
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.starts_with(r#"{"connections":[{"age_seconds":2.345678,"bytes_sent":90,"connected_at":"2023-11-14T22:13:20Z","connection_id":"c_1","healthy":true,"last_heartbeat_rtt_ms":0.25,"messages_sent":3,"queue_capacity":256,"queue_depth":1,"transport":"websocket"}"#),
            "{text}"
        );
        assert!(
            text.ends_with(r#""created_at":"2023-11-14T22:13:20Z","detached_seconds":null,"last_seq":4,"session_id":"s_1","subscriptions":["player:p","room:a"]}"#),
            "{text}"
        );
        let back: SessionSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        assert_eq!(serde_json::to_string(&back).unwrap(), text, "the same bytes once read back");

        let remote =
            SessionSnapshot { node_id: Some("n_2".into()), detached: Some(Duration::from_millis(1500)), ..s };
        let v = serde_json::to_value(&remote).unwrap();
        assert_eq!(v["node_id"], "n_2");
        assert_eq!(v["detached_seconds"], 1.5);
    }

    #[test]
    fn a_player_counts_its_connections_by_transport() {
        let p = PlayerSnapshot { player_id: "p".into(), sessions: vec![session(), session()] };
        let r = RemotePlayer::from_snapshot(p);
        assert_eq!((r.websocket, r.sse, r.connections(), r.sessions.len()), (2, 2, 4, 2));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!((v["websocket"].as_u64(), v["sse"].as_u64()), (Some(2), Some(2)));
        assert_eq!(serde_json::from_value::<RemotePlayer>(v).unwrap(), r);
    }

    #[test]
    fn bad_times_are_errors() {
        let mut v = serde_json::to_value(session()).unwrap();
        v["created_at"] = "yesterday".into();
        assert!(serde_json::from_value::<SessionSnapshot>(v.clone()).is_err());
        v["created_at"] = "2023-11-14T22:13:20Z".into();
        v["detached_seconds"] = (-1.0).into();
        assert!(serde_json::from_value::<SessionSnapshot>(v).is_err(), "a negative duration");
    }
}
