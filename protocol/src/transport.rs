//! The two ways a client connection is carried.

use serde::{Deserialize, Serialize};

/// WebSocket or Server-Sent Events. Appears in welcome frames, logs, metric
/// labels and JSON documents as `websocket` / `sse`, and in config
/// (`server.transports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
        }
    }

    /// The transport a label names, if any.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == label)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_json_and_from_label() {
        for t in Transport::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(serde_json::from_value::<Transport>(t.as_str().into()).unwrap(), t);
            assert_eq!(Transport::from_label(t.as_str()), Some(t));
        }
        assert_eq!(Transport::from_label("carrier-pigeon"), None);
    }
}
