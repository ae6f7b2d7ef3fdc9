//! Tandem's Rust client: the same player session over WebSocket or
//! Server-Sent Events, with typed frames.
//!
//! The wire contract lives in `docs/protocol.md`; this crate mirrors it so
//! that native game clients and Tandem's own end-to-end tests speak exactly
//! what a browser speaks.
//!
//! - [`client`]: the high-level [`Client`]: reconnect with backoff, resume,
//!   exactly-once delivery, fallback from WebSocket to SSE, dual mode,
//!   status, typed calls. Start here.
//! - [`machine`]: the protocol decisions behind it, as plain code without
//!   I/O.
//! - [`options`]: what one connect uses ([`ConnectOptions`]) and how it
//!   becomes URLs and headers.
//! - [`frames`]: the JSON frames in both directions ([`ServerFrame`],
//!   [`ClientMessage`]).
//! - [`error`]: everything that can go wrong ([`ClientError`]).
//! - [`ws`]: the WebSocket transport ([`WsClient`]).
//! - [`sse`]: the Server-Sent Events transport plus its POST side channel
//!   ([`SseClient`]).

pub mod client;
pub mod error;
pub mod frames;
pub mod machine;
pub mod options;
pub mod sse;
pub mod ws;

#[cfg(test)]
mod test_support;

pub use client::Client;
pub use client::events::{CallError, ClientEvent, Published, Resync};
pub use client::options::ClientOptions;
pub use error::ClientError;
pub use frames::{ClientMessage, Delivery, ServerFrame, Welcome};
pub use machine::backoff::Reconnect;
pub use machine::sequence::ResyncReason;
pub use machine::status::Status;
pub use machine::transport_plan::{Mode, Transport};
pub use options::ConnectOptions;
pub use sse::{SseClient, SsePoster};
pub use ws::WsClient;
