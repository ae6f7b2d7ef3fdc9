//! Tandem's Rust client: the same player session over WebSocket or
//! Server-Sent Events, with typed frames.
//!
//! The wire contract lives in `docs/protocol.md`; this crate mirrors it so
//! that native game clients and Tandem's own end-to-end tests speak exactly
//! what a browser speaks.
//!
//! - [`options`]: what to connect with ([`ConnectOptions`]) and how it becomes
//!   URLs and headers.
//! - [`frames`]: the JSON frames in both directions ([`ServerFrame`],
//!   [`ClientMessage`]).
//! - [`error`]: everything that can go wrong ([`ClientError`]).
//! - [`ws`]: the WebSocket transport ([`WsClient`]).
//! - [`sse`]: the Server-Sent Events transport plus its POST side channel
//!   ([`SseClient`]).

pub mod error;
pub mod frames;
pub mod options;
pub mod sse;
pub mod ws;

#[cfg(test)]
mod test_support;

pub use error::ClientError;
pub use frames::{ClientMessage, Delivery, ServerFrame, Welcome};
pub use options::ConnectOptions;
pub use sse::SseClient;
pub use ws::WsClient;
