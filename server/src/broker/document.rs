//! The documents nodes share through a cluster broker, typed: a node's own
//! record ([`NodeDocument`]), the cluster view built from them
//! ([`ClusterDocument`], the `cluster` object of `/monitoring/connections`),
//! and the decoding of what another node wrote.
//!
//! A document read from Redis was written by another process, perhaps of
//! another version, perhaps by something else entirely: it is decoded with a
//! size limit into its type, and a bad one is an error the caller logs and
//! skips, never a panic or a half-read value.
//!
//! Fields are declared in the order of their JSON keys (alphabetical), so
//! the documents keep the byte layout their readers know.

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tandem_monitoring::ConnectionOverview;

use crate::session::snapshot::opt_rfc3339;

/// Largest node record accepted (a few hundred bytes in practice).
pub const NODE_DOCUMENT_LIMIT: usize = 64 * 1024;
/// Largest player record accepted: every session of the player on one node,
/// detached ones included, each with up to `session.max_subscriptions`
/// channels (a few kilobytes a session).
pub const PLAYER_DOCUMENT_LIMIT: usize = 4 * 1024 * 1024;

/// Why a document from another node was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("{len} bytes, over the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("not the expected document: {0}")]
    Malformed(String),
}

/// Decodes a document of at most `limit` bytes.
pub fn decode<T: DeserializeOwned>(text: &[u8], limit: usize) -> Result<T, DocumentError> {
    if text.len() > limit {
        return Err(DocumentError::TooLarge { len: text.len(), limit });
    }
    serde_json::from_slice(text).map_err(|e| DocumentError::Malformed(e.to_string()))
}

/// One node as the cluster sees it: the record it rewrites every heartbeat
/// under `<prefix>:node:<id>`, and an item of the cluster's `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDocument {
    /// The client listener's address.
    pub addr: String,
    #[serde(with = "Overview")]
    pub connections: ConnectionOverview,
    pub node_id: String,
    /// When the node started; absent in the answering node's own entry.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub started_at: Option<SystemTime>,
    pub total_connections: usize,
}

impl NodeDocument {
    pub fn new(node_id: &str, addr: &str, connections: ConnectionOverview) -> Self {
        Self {
            addr: addr.to_owned(),
            connections,
            node_id: node_id.to_owned(),
            started_at: None,
            total_connections: connections.total_connections(),
        }
    }
}

/// [`ConnectionOverview`]'s fields, to read it back (monitoring only
/// writes it).
#[derive(Serialize, Deserialize)]
#[serde(remote = "ConnectionOverview")]
struct Overview {
    dual_connection_players: usize,
    players: usize,
    sessions: usize,
    sse_connections: usize,
    sse_only_players: usize,
    websocket_connections: usize,
    websocket_only_players: usize,
}

/// The state of the broker's link, as the cluster document shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Connected,
    Disconnected,
}

/// The `cluster` object of `/monitoring/connections`: every live node's
/// counts (this one first) and their sums.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterDocument {
    pub broker: LinkState,
    pub node_count: usize,
    /// The answering node.
    pub node_id: String,
    pub nodes: Vec<NodeDocument>,
    pub sessions: usize,
    pub sse_connections: usize,
    pub total_connections: usize,
    pub websocket_connections: usize,
}

impl ClusterDocument {
    /// `nodes[0]` is the answering node.
    pub fn new(broker: LinkState, nodes: Vec<NodeDocument>) -> Self {
        let sum = |f: fn(&NodeDocument) -> usize| nodes.iter().map(f).sum();
        Self {
            broker,
            node_count: nodes.len(),
            node_id: nodes.first().map(|n| n.node_id.clone()).unwrap_or_default(),
            sessions: sum(|n| n.connections.sessions),
            sse_connections: sum(|n| n.connections.sse_connections),
            total_connections: sum(|n| n.total_connections),
            websocket_connections: sum(|n| n.connections.websocket_connections),
            nodes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn overview(ws: usize, sse: usize, sessions: usize) -> ConnectionOverview {
        ConnectionOverview {
            websocket_connections: ws,
            sse_connections: sse,
            sessions,
            ..ConnectionOverview::default()
        }
    }

    #[test]
    fn a_node_record_round_trips_with_the_keys_of_the_overview() {
        let mut doc = NodeDocument::new("n_1", "127.0.0.1:1", overview(2, 1, 2));
        doc.started_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(
            text,
            r#"{"addr":"127.0.0.1:1","connections":{"dual_connection_players":0,"players":0,"sessions":2,"sse_connections":1,"sse_only_players":0,"websocket_connections":2,"websocket_only_players":0},"node_id":"n_1","started_at":"2023-11-14T22:13:20Z","total_connections":3}"#
        );
        assert_eq!(
            serde_json::to_value(doc.connections).unwrap(),
            serde_json::to_value(&doc).unwrap()["connections"],
            "the same keys as monitoring's own overview"
        );
        assert_eq!(decode::<NodeDocument>(text.as_bytes(), NODE_DOCUMENT_LIMIT).unwrap(), doc);
        let own = serde_json::to_value(NodeDocument::new("n_1", "a", overview(0, 0, 0))).unwrap();
        assert!(own.get("started_at").is_none(), "{own}");
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(matches!(decode::<NodeDocument>(b"{}", 64), Err(DocumentError::Malformed(_))));
        assert!(matches!(decode::<NodeDocument>(b"not json", 64), Err(DocumentError::Malformed(_))));
        assert_eq!(
            decode::<NodeDocument>(&[b' '; 65], 64),
            Err(DocumentError::TooLarge { len: 65, limit: 64 })
        );
        let deep = "[".repeat(10_000);
        assert!(decode::<NodeDocument>(deep.as_bytes(), 1 << 20).is_err(), "no stack overflow");
    }

    #[test]
    fn the_cluster_sums_every_node() {
        let nodes = vec![
            NodeDocument::new("n_1", "127.0.0.1:1", overview(1, 0, 1)),
            NodeDocument::new("n_2", "127.0.0.1:2", overview(2, 1, 2)),
        ];
        let doc = serde_json::to_value(ClusterDocument::new(LinkState::Disconnected, nodes)).unwrap();
        assert_eq!(doc["node_id"], "n_1");
        assert_eq!(doc["node_count"], 2);
        assert_eq!(doc["total_connections"], 4);
        assert_eq!(doc["websocket_connections"], 3);
        assert_eq!(doc["sse_connections"], 1);
        assert_eq!(doc["sessions"], 3);
        assert_eq!(doc["broker"], "disconnected");
        assert_eq!(doc["nodes"][0]["addr"], "127.0.0.1:1");
    }
}
