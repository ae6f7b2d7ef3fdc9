//! The two ways a client connection is carried. A protocol type: it appears
//! in welcome frames, logs and metrics labels, and maps onto the monitoring
//! crate's own label ([`tandem_monitoring::ConnectionKind`]).

use serde::{Deserialize, Serialize};
use tandem_monitoring::ConnectionKind;

/// Also a config value (`server.transports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transport {
    #[serde(rename = "websocket")]
    WebSocket,
    #[serde(rename = "sse")]
    Sse,
}

impl Transport {
    /// Both transports, in the order documents list them.
    pub const ALL: [Transport; 2] = [Transport::WebSocket, Transport::Sse];

    /// The label used in JSON documents, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Transport> for ConnectionKind {
    fn from(t: Transport) -> Self {
        match t {
            Transport::WebSocket => Self::WebSocket,
            Transport::Sse => Self::Sse,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_monitoring_and_json() {
        for t in [Transport::WebSocket, Transport::Sse] {
            assert_eq!(t.as_str(), ConnectionKind::from(t).as_str());
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}
