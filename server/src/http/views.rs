//! JSON views of players, sessions and connections, at the HTTP edge: the
//! backend API (`GET /api/players/{id}`), monitoring's player detail, and
//! the presence cluster brokers share. Built from plain snapshots, so the
//! manager knows nothing of JSON documents.

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::session::snapshot::{PlayerSnapshot, RemotePlayer, SessionSnapshot};
use crate::telemetry as ev;
use tandem_protocol::Transport;

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn session_json(s: &SessionSnapshot) -> Value {
    let conns: Vec<Value> = s
        .connections
        .iter()
        .map(|c| {
            json!({
                "connection_id": c.id,
                "transport": c.transport,
                "connected_at": rfc3339(c.connected_at),
                "age_seconds": c.age.as_secs_f64(),
                "queue_depth": c.queue_depth,
                "queue_capacity": c.queue_capacity,
                "last_heartbeat_rtt_ms": c.last_heartbeat_rtt_ms,
                "messages_sent": c.messages_sent,
                "bytes_sent": c.bytes_sent,
                "healthy": c.healthy,
            })
        })
        .collect();
    json!({
        "session_id": s.id,
        "created_at": rfc3339(s.created_at),
        "last_seq": s.last_seq,
        "subscriptions": s.subscriptions,
        "detached_seconds": s.detached.map(|d| d.as_secs_f64()),
        "connections": conns,
    })
}

/// The player's sessions on this node, as one JSON list, plus its counts.
pub fn local_sessions(p: &PlayerSnapshot) -> RemotePlayer {
    let mut out = RemotePlayer::default();
    for s in &p.sessions {
        for c in &s.connections {
            match c.transport {
                Transport::WebSocket => out.websocket += 1,
                Transport::Sse => out.sse += 1,
            }
        }
        out.sessions.push(session_json(s));
    }
    out
}

/// `GET /api/players/{id}`: the player's sessions on every node given;
/// `None` when it has none anywhere.
pub fn player_json(player_id: &str, parts: &[RemotePlayer]) -> Option<Value> {
    let sessions: Vec<&Value> = parts.iter().flat_map(|p| &p.sessions).collect();
    if sessions.is_empty() {
        return None;
    }
    let ws: usize = parts.iter().map(|p| p.websocket).sum();
    let sse: usize = parts.iter().map(|p| p.sse).sum();
    Some(json!({
        "player_id": player_id,
        "mode": ev::player_mode(ws, sse).unwrap_or("disconnected"),
        "websocket_connections": ws,
        "sse_connections": sse,
        "sessions": sessions,
    }))
}

/// This node's view of one player (monitoring's player detail).
pub fn local_player_json(p: &PlayerSnapshot) -> Option<Value> {
    player_json(&p.player_id, &[local_sessions(p)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::session::snapshot::ConnectionSnapshot;

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

    #[test]
    fn merges_nodes_and_counts_transports() {
        let local = PlayerSnapshot {
            player_id: "p".into(),
            sessions: vec![SessionSnapshot {
                id: "s_1".into(),
                created_at: SystemTime::UNIX_EPOCH,
                last_seq: 4,
                subscriptions: vec!["player:p".into()],
                detached: None,
                connections: vec![conn(Transport::WebSocket)],
            }],
        };
        let v = local_player_json(&local).unwrap();
        assert_eq!(v["mode"], "websocket_only");
        assert_eq!(v["sessions"][0]["connections"][0]["transport"], "websocket");
        assert_eq!(v["sessions"][0]["created_at"], "1970-01-01T00:00:00Z");

        let remote = RemotePlayer { sessions: vec![json!({"session_id": "s_2"})], websocket: 0, sse: 1 };
        let v = player_json("p", &[local_sessions(&local), remote]).unwrap();
        assert_eq!(v["mode"], "dual");
        assert_eq!(v["sessions"].as_array().unwrap().len(), 2);
        assert!(player_json("p", &[RemotePlayer::default()]).is_none());
    }
}
