//! What the application receives: deliveries, resync events, and call
//! errors.

use std::time::Duration;

use crate::frames::Delivery;
use crate::machine::sequence::ResyncReason;

/// One item of [`Client::events`](super::Client::events).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// A delivery, once, in `seq` order.
    Message(Delivery),
    /// Deliveries were lost for good; sent before the reload hook runs and
    /// before any later delivery.
    Resync(Resync),
}

/// A gap the server could not fill: reload the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    pub reason: ResyncReason,
    /// The session from now on (a new one when the old one was gone).
    pub session_id: String,
    /// The `seq` the sequence state was reset to; deliveries go on after it.
    pub last_seq: u64,
}

/// Why a call (`subscribe`, `unsubscribe`, `publish`, `ping`) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server refused it with this error `code` (docs/protocol.md).
    #[error("server error {code}: {message}")]
    Server { code: String, message: String },
    /// No link is open right now (connecting or reconnecting).
    #[error("not connected")]
    NotConnected,
    /// The link dropped before the reply came; the call may or may not have
    /// reached the server.
    #[error("connection lost before the reply")]
    ConnectionLost,
    /// No reply within `call_timeout`.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// Too many calls await their replies on this link.
    #[error("too many calls in flight")]
    Overloaded,
    /// The server answered with a frame that does not fit the call.
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl CallError {
    /// The server's error code, when the server refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A publication's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The publication id every recipient sees.
    pub id: String,
    /// How many connections it reached.
    pub recipients: u64,
}
