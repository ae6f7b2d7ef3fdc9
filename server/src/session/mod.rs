//! The domain, as plain data and synchronous code: what a session, a
//! connection, a channel and a frame are. No I/O, no clock reads, no locks
//! held across anything: the [`manager`](crate::manager) drives these under
//! its own locks, and the transports encode what they produce.
//!
//! Imports nothing else of this crate: every other layer builds on it.

/// Who is in a channel: join and leave with a grace, per player.
pub(crate) mod channel_presence;
/// Channel names and who may subscribe or publish where.
pub(crate) mod channels;
/// One link's bounded outbound queue, its close reason and counters.
pub mod connection;
/// Who a verified client is.
pub mod identity;
/// Relayed JSON (`data`, a ping's `id`), checked and compacted once.
pub(crate) mod payload;
/// A publication's place in its channel's history; catching a resume up.
pub mod position;
/// Frames the server sends, messages clients send, error codes, encoding.
pub(crate) mod protocol;
/// Publication ids a backend chose, remembered so a retry is delivered once.
pub(crate) mod recent_ids;
/// Revoked tokens: what a revocation names and the bounded list of them.
pub(crate) mod revocation;
/// Plain snapshots of players, sessions and connections for the edges.
pub(crate) mod snapshot;
/// One session: seq, history, resume planning, subscriptions, rate limits.
pub(crate) mod state;
