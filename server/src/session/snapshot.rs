//! Plain snapshots of a player's sessions and connections: what the manager
//! hands out for the JSON views at the HTTP edge (`views`) and for cluster
//! brokers to share, without either reaching into the manager's locks.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use tandem_protocol::Transport;

/// One connection, as the views show it.
#[derive(Debug, Clone)]
pub struct ConnectionSnapshot {
    pub id: String,
    pub transport: Transport,
    pub connected_at: SystemTime,
    pub age: Duration,
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub last_heartbeat_rtt_ms: Option<f64>,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub healthy: bool,
}

/// One session, as the views show it.
#[derive(Debug, Clone)]
pub struct SessionSnapshot {
    pub id: String,
    pub created_at: SystemTime,
    pub last_seq: u64,
    pub subscriptions: Vec<String>,
    pub detached: Option<Duration>,
    pub connections: Vec<ConnectionSnapshot>,
}

/// One player's sessions on this node.
#[derive(Debug, Clone)]
pub struct PlayerSnapshot {
    pub player_id: String,
    pub sessions: Vec<SessionSnapshot>,
}

/// A player's sessions on one or more other nodes, as their JSON views
/// (the `sessions` items of `GET /api/players/{id}`) and counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemotePlayer {
    pub sessions: Vec<Value>,
    pub websocket: usize,
    pub sse: usize,
}
