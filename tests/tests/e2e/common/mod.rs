//! Helpers shared by the delivery-guarantee and protection tests
//! (heartbeats, backpressure, limits, transport switch).
//!
//! - [`raw_ws`]: a WebSocket client written by hand on a bare TCP socket,
//!   for peers a real client library would never imitate (one that ignores
//!   pings, one that stops reading).
//! - [`raw_http`]: a bare HTTP GET that never reads its response (an SSE
//!   client that stopped reading).
//! - [`sse_stream`]: an SSE reader over the raw response body, which sees
//!   heartbeat comments and lets a test choose how it asks to resume.
//! - [`players`]: the backend's view of a player (`GET /api/players/{id}`)
//!   and direct messages.

pub mod players;
pub mod raw_http;
pub mod raw_ws;
pub mod sse_stream;

pub use tandem_e2e::wait::eventually;
