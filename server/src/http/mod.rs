//! The HTTP edge every handler shares: the JSON error, the extractors that
//! check identity, origin and keys, handler state, the backend API, JSON
//! views and the embedded demo. The route table itself is assembled in
//! [`server::routes`](crate::server::routes), above the transports.

/// The backend API (`/api/*`).
pub mod api;
/// The demo page (`GET /`) and the browser client, embedded.
pub mod demo;
/// The JSON error body with a stable `code`.
pub mod error;
/// The checks every client entry point shares: head size, transport,
/// Origin, identity.
pub mod extract;
/// Request heads measured before actix-http parses them.
pub mod head_guard;
/// Which browser origins may connect.
pub mod origin;
/// Response heads written to sockets the transports own.
pub mod response_head;
/// What every handler can reach.
pub mod state;
/// JSON views of players, sessions and connections.
pub mod views;
