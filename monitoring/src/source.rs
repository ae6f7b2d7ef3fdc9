//! The plain data the server hands to monitoring.
//!
//! Monitoring must not depend on the server, so the server implements
//! [`ConnectionStatsSource`] over its connection registry and monitoring only
//! sees these small values. That also lets every computation here be tested
//! with a fake source, without a socket.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tandem_protocol::Transport;

/// One live connection as the health report sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionSample {
    /// How it is carried: the workspace's one transport type, shared with
    /// the server through `tandem-protocol`.
    pub transport: Transport,
    /// Time since the connection was established.
    pub age: Duration,
    /// The server's verdict: heartbeat answered within the timeout and
    /// outbound queue below 80% of its capacity.
    pub healthy: bool,
}

/// Counts behind `/monitoring/connections` (the dual connection
/// distribution).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionOverview {
    pub websocket_connections: usize,
    pub sse_connections: usize,
    pub sessions: usize,
    pub players: usize,
    pub websocket_only_players: usize,
    pub sse_only_players: usize,
    pub dual_connection_players: usize,
}

impl ConnectionOverview {
    /// Live connections of both transports.
    pub fn total_connections(&self) -> usize {
        self.websocket_connections.saturating_add(self.sse_connections)
    }
}

/// What the server exposes to monitoring. Implementations must be cheap and
/// must not block: they are called from request handlers and background
/// loops.
pub trait ConnectionStatsSource: Send + Sync + 'static {
    /// One sample per live connection.
    fn connection_samples(&self) -> Vec<ConnectionSample>;
    fn overview(&self) -> ConnectionOverview;
    /// JSON detail of one player's sessions and connections (None = unknown
    /// player); the server builds it.
    fn player_detail(&self, player_id: &str) -> Option<serde_json::Value>;
    /// Time of the last client activity (connect, frame received, publish),
    /// if any.
    fn last_activity(&self) -> Option<SystemTime>;
    /// When this node is one of several: the whole cluster's counts (the
    /// `cluster` object of `/monitoring/connections`), as the server sees
    /// them. `None` for a single node.
    fn cluster(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A source with no connections and no activity: for tools and tests that
/// run monitoring without a server.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptySource;

impl ConnectionStatsSource for EmptySource {
    fn connection_samples(&self) -> Vec<ConnectionSample> {
        Vec::new()
    }

    fn overview(&self) -> ConnectionOverview {
        ConnectionOverview::default()
    }

    fn player_detail(&self, _player_id: &str) -> Option<serde_json::Value> {
        None
    }

    fn last_activity(&self) -> Option<SystemTime> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_total_adds_both_transports() {
        let o = ConnectionOverview { websocket_connections: 3, sse_connections: 4, ..Default::default() };
        assert_eq!(o.total_connections(), 7);
    }
}
