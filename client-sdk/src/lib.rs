//! Tandem's Rust client: the same player session over WebSocket or
//! Server-Sent Events, with typed frames.
//!
//! The wire contract lives in `docs/protocol.md`; this crate mirrors it so
//! that native game clients and Tandem's own end-to-end tests speak exactly
//! what a browser speaks.
//!
//! - [`client`]: the high-level [`Client`]: reconnect with backoff, resume
//!   (on any node of a cluster: it keeps each channel's last position),
//!   exactly-once delivery, fallback from WebSocket to SSE, dual mode,
//!   status, typed calls, commands to the game backend. Start here.
//! - [`machine`]: the protocol decisions behind it, as plain code without
//!   I/O (reconnect, resume, dedup, pending commands).
//! - [`options`]: what one connect uses ([`ConnectOptions`]) and how it
//!   becomes URLs and headers.
//! - [`frames`]: the JSON frames in both directions ([`ServerFrame`],
//!   [`ClientMessage`]).
//! - [`error`]: everything that can go wrong ([`ClientError`]).
//! - [`tls`]: whom an `https://` server is trusted by ([`TlsTrust`]).
//! - [`ws`]: the WebSocket transport ([`WsClient`]).
//! - [`sse`]: the Server-Sent Events transport plus its POST side channel
//!   ([`SseClient`]).
//!
//! # Commands to the game
//!
//! [`Client::call`] sends a command to the game backend (docs/backend.md)
//! and returns its answer; [`Client::call_with_timeout`] sets the wait
//! (else the client's `call_timeout`, 10 s by default).
//!
//! ```no_run
//! use serde_json::json;
//! use tandem_client::{CallError, Client, ClientOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new(ClientOptions::new("http://127.0.0.1:8080").player_id("alice"))?;
//! client.connect();
//! match client.call("move", json!({"x": 1, "y": 2})).await {
//!     Ok(state) => println!("the game says {state}"),
//!     Err(CallError::Server { code, message }) if code == "illegal_move" => println!("no: {message}"),
//!     Err(e) => println!("failed ({:?}): {e}", e.code()),
//! }
//! client.end_session().await?; // the session is over: no reconnect
//! # Ok(())
//! # }
//! ```
//!
//! - The command is `{"type":"command","id":<fresh>,"name","data"}`: on the
//!   WebSocket when one is up, else `POST /sessions/{id}/messages` (the
//!   answer then comes on the SSE stream). With no link up it waits for one.
//! - Its answer is the backend's `data` (`Ok`), or
//!   [`CallError::Server`] `{ code, message }` with the backend's own code
//!   (`illegal_move`…) or Tandem's (`backend_timeout`,
//!   `backend_unavailable`, `backend_error`, `no_backend`, `rate_limited`,
//!   `conflict`); [`CallError::code`] reads it.
//! - A link that drops before the answer is no failure: the command is
//!   sent again with the same id on the next link welcomed to the session
//!   (either transport, after a switch or a resume too). The server runs an
//!   id once per session and answers resends from its reply cache; the
//!   first answer counts, later ones are ignored.
//! - It fails with [`CallError::Timeout`] when no answer came in time (it
//!   may still run: a retry is a new call), [`CallError::SessionLost`] when
//!   the session it reached was replaced (a resync with a new session) or
//!   ended, and [`CallError::Closed`] when the client was closed or stopped.
//!
//! The bookkeeping is [`machine::calls`], a state machine without I/O.
//!
//! [`Client::end_session`] ends the session for good (`end_session`; the
//! server closes every connection of it with 4002 `session_ended`) and
//! stops the client without reconnecting.
//!
//! # Refused connects
//!
//! A connect refused for good stops the client, its status
//! `Disconnected { code: Some(<HTTP status>), reason: <error code> }`, and
//! [`Client::refusal`] hands out the refusal as [`ClientError::Http`]
//! carrying the code: 400, 401 and 403 unless the body says
//! `"retry": true`, and any refusal that says `"retry": false` (the game's
//! connect hook answers `403 {"error":{"code":"banned",…,"retry":false}}`).
//! A refusal that says `"retry": true` (503 `backend_unavailable` when the
//! hook could not be asked), like any other status, is retried with
//! backoff.

pub mod client;
pub mod error;
pub mod frames;
pub mod machine;
pub mod options;
pub mod sse;
pub mod tls;
pub mod ws;

#[cfg(test)]
mod test_support;

pub use client::Client;
pub use client::events::{CallError, ClientEvent, Presence, PresenceChange, Published, Resync};
pub use client::options::ClientOptions;
pub use error::ClientError;
pub use frames::{ClientMessage, Delivery, PresenceEntry, ServerFrame, Welcome};
pub use machine::backoff::Reconnect;
pub use machine::sequence::ResyncReason;
pub use machine::status::Status;
pub use machine::transport_plan::{Mode, Transport};
pub use options::ConnectOptions;
pub use sse::{SseClient, SsePoster};
pub use tls::TlsTrust;
pub use ws::WsClient;
