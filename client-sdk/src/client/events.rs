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
    /// Another player joined or left a subscribed channel (namespaces of
    /// the server's `channels.presence_events`).
    Presence(PresenceChange),
}

/// A `join` (`joined`) or `leave` of another player in a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    pub joined: bool,
    pub channel: String,
    pub player_id: String,
}

/// The answer to [`Client::presence`](super::Client::presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Players in the channel (exact).
    pub count: u64,
    /// At most 1,000 of them.
    pub players: Vec<crate::frames::PresenceEntry>,
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

/// Why a call (`call`, `subscribe`, `unsubscribe`, `publish`, `ping`,
/// `end_session`) failed.
///
/// A refusal carries the server's `code`, to match on:
///
/// ```no_run
/// # use tandem_client::{CallError, Client};
/// # async fn play(client: &Client) {
/// match client.call("move", serde_json::json!({"x": 1, "y": 2})).await {
///     Ok(state) => println!("moved: {state}"),
///     // The game's own refusal.
///     Err(CallError::Server { code, message }) if code == "illegal_move" => println!("no: {message}"),
///     // Tandem's: the game did not answer in time (it may have run the move).
///     Err(e) if e.code() == Some("backend_timeout") => println!("the game is slow"),
///     Err(CallError::SessionLost) => println!("the session was replaced: reload, then decide"),
///     Err(e) => println!("failed: {e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server refused it with this error `code`: for a command, the
    /// game backend's own (`illegal_move`…) or Tandem's (`backend_timeout`,
    /// `backend_unavailable`, `backend_error`, `no_backend`, `rate_limited`,
    /// `conflict`; docs/backend.md); for the other calls, docs/protocol.md's.
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
    /// The client was closed, or stopped for good (refused, gave up), before
    /// the answer came.
    #[error("client closed")]
    Closed,
    /// The session the command was sent to is gone (it expired and a new
    /// one replaced it, or the server ended it) before the answer came: the
    /// command may or may not have run, and its answer was lost with the
    /// session's reply cache.
    #[error("session lost before the answer")]
    SessionLost,
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
