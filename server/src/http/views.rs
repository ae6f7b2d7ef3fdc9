//! The JSON documents of the backend API about players, one type each:
//! `GET /api/players/{id}` (also monitoring's player detail) and the answer
//! of `POST /api/players/{id}/disconnect`. Sessions and connections inside
//! them are the snapshots themselves ([`SessionSnapshot`] serializes as the
//! session view), so the view of a session here and the record of it
//! another node reads from Redis have one schema.
//!
//! Fields are declared in the order of their JSON keys (alphabetical), so
//! the documents keep the byte layout clients know.

use serde::Serialize;

use crate::session::snapshot::{PlayerSnapshot, RemotePlayer, SessionSnapshot};
use crate::telemetry as ev;

/// A player's sessions and connections on every node asked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerView {
    /// `websocket_only`, `sse_only`, `dual` or `disconnected` (sessions
    /// kept for resume, no connection).
    pub mode: &'static str,
    pub player_id: String,
    pub sessions: Vec<SessionSnapshot>,
    pub sse_connections: usize,
    pub websocket_connections: usize,
}

/// `GET /api/players/{id}`: the player's sessions on every node given;
/// `None` when it has none anywhere.
pub fn player_view(player_id: &str, parts: impl IntoIterator<Item = RemotePlayer>) -> Option<PlayerView> {
    let (mut sessions, mut ws, mut sse) = (Vec::new(), 0, 0);
    for p in parts {
        sessions.extend(p.sessions);
        ws += p.websocket;
        sse += p.sse;
    }
    if sessions.is_empty() {
        return None;
    }
    Some(PlayerView {
        mode: ev::player_mode(ws, sse).unwrap_or("disconnected"),
        player_id: player_id.to_owned(),
        sessions,
        sse_connections: sse,
        websocket_connections: ws,
    })
}

/// This node's view of one player (monitoring's player detail).
pub fn local_player_view(p: PlayerSnapshot) -> Option<PlayerView> {
    let player_id = p.player_id.clone();
    player_view(&player_id, [RemotePlayer::from_snapshot(p)])
}

/// `POST /api/players/{id}/disconnect`: what was ended, on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisconnectView<'a> {
    pub disconnected_connections: usize,
    pub player_id: &'a str,
    pub sessions: usize,
}

/// `POST /api/tokens/revoke`'s answer: connections closed on this node,
/// and until when (epoch ms) the revocation is kept.
#[derive(Debug, Serialize)]
pub struct RevokedView {
    pub closed_connections: usize,
    pub until: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::session::snapshot::ConnectionSnapshot;
    use tandem_protocol::Transport;

    fn conn(t: Transport) -> ConnectionSnapshot {
        ConnectionSnapshot {
            id: "c_1".into(),
            transport: t,
            connected_at: SystemTime::UNIX_EPOCH,
            age: Duration::from_secs(2),
            queue_depth: 0,
            queue_capacity: 8,
            last_heartbeat_rtt_ms: None,
            messages_sent: 3,
            bytes_sent: 90,
            healthy: true,
        }
    }

    fn session(id: &str, t: Transport) -> SessionSnapshot {
        SessionSnapshot {
            id: id.into(),
            created_at: SystemTime::UNIX_EPOCH,
            last_seq: 4,
            subscriptions: vec!["player:p".into()],
            detached: None,
            node_id: None,
            connections: vec![conn(t)],
        }
    }

    #[test]
    fn merges_nodes_and_counts_transports() {
        let local =
            PlayerSnapshot { player_id: "p".into(), sessions: vec![session("s_1", Transport::WebSocket)] };
        let v = serde_json::to_value(local_player_view(local.clone()).unwrap()).unwrap();
        assert_eq!(v["mode"], "websocket_only");
        assert_eq!(v["player_id"], "p");
        assert_eq!((v["websocket_connections"].as_u64(), v["sse_connections"].as_u64()), (Some(1), Some(0)));
        assert_eq!(v["sessions"][0]["connections"][0]["transport"], "websocket");
        assert_eq!(v["sessions"][0]["created_at"], "1970-01-01T00:00:00Z");
        assert!(v["sessions"][0].get("node_id").is_none(), "a local session names no node");

        let remote = RemotePlayer {
            sessions: vec![SessionSnapshot { node_id: Some("n_2".into()), ..session("s_2", Transport::Sse) }],
            websocket: 0,
            sse: 1,
        };
        let v = serde_json::to_value(player_view("p", [RemotePlayer::from_snapshot(local), remote]).unwrap())
            .unwrap();
        assert_eq!(v["mode"], "dual");
        assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
        assert_eq!(v["sessions"][1]["node_id"], "n_2");
        assert!(player_view("p", [RemotePlayer::default()]).is_none());
    }

    #[test]
    fn documents_keep_their_keys_and_order() {
        let p = PlayerSnapshot { player_id: "p".into(), sessions: vec![session("s_1", Transport::Sse)] };
        let text = serde_json::to_string(&local_player_view(p).unwrap()).unwrap();
        assert!(
            text.starts_with(
                r#"{"mode":"sse_only","player_id":"p","sessions":[{"connections":[{"age_seconds":2.0,"#
            ),
            "{text}"
        );
        assert!(text.ends_with(r#""sse_connections":1,"websocket_connections":0}"#), "{text}");
        let d = DisconnectView { disconnected_connections: 3, player_id: "p", sessions: 2 };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"disconnected_connections":3,"player_id":"p","sessions":2}"#
        );
    }
}

/// `GET /api/channels/{channel}/presence`.
#[derive(Debug, Serialize)]
pub struct PresenceView<'a> {
    pub channel: &'a str,
    pub count: usize,
    pub players: &'a [crate::session::channel_presence::PresenceEntry],
}
