//! The protocol decisions of [`Client`](crate::Client), as plain code
//! without I/O: no sockets, no clock reads, no randomness of their own.
//! Time comes in as `now`, randomness as a number in `[0, 1)`, so every
//! rule is unit-tested exactly, as the server's `session.rs` is.
//!
//! - [`connection`]: the connection state machine of one slot, built from
//!   the pieces below.
//! - [`backoff`]: when to try again (exponential, capped, full jitter,
//!   server hints).
//! - [`sequence`]: exactly-once, in-order delivery by `seq`, and what a
//!   welcome means for it (fresh, resumed, or resync).
//! - [`liveness`]: when a silent link counts as dead.
//! - [`transport_plan`]: which transport the next attempt uses (fallback
//!   from WebSocket to SSE and the later probe back).
//! - [`verdict`]: whether a failed attempt or an ended link is retried.
//! - [`status`]: the observable status, and how two links of dual mode add
//!   up to one.
//! - [`calls`]: commands to the game backend: fresh ids, resends with the
//!   same id on every link until answered, duplicate answers, timeouts and
//!   a lost session.

pub mod backoff;
pub mod calls;
pub mod connection;
pub mod liveness;
pub mod sequence;
pub mod status;
pub mod transport_plan;
pub mod verdict;
