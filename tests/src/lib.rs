//! Black-box test support for Tandem: start the real `tandem` binary as a
//! process and talk to it over real sockets with the real client.
//!
//! - [`backend`]: [`TestBackend`](backend::TestBackend), a real HTTP game
//!   backend (commands, hooks, lifecycle events) that records every request.
//! - [`binary`]: finds or builds the `tandem` executable once per process.
//! - [`server`]: [`TestServer`], a running server with its config, logs and
//!   backend API helpers.
//! - [`peer`]: [`Peer`], one client connection over either transport with a
//!   single request/reply shape, so tests can run the same table over both.
//! - [`redis`]: a real `redis-server` on a free port, for cluster tests, and
//!   a real three-master Redis Cluster of them.
//! - [`tokens`]: HS256 client tokens, valid or deliberately broken.
//! - [`shell`]: running the `jq` recipes of the log analysis guide.
//! - [`client_stream`]: checking that a `Client` delivered numbered messages
//!   once each, in order.
//! - [`cut_proxy`]: [`CutProxy`](cut_proxy::CutProxy), a TCP proxy that cuts,
//!   freezes or blocks connections on command.
//! - [`round_robin`]: [`RoundRobin`](round_robin::RoundRobin), a TCP
//!   balancer over several servers with no stickiness.
//! - [`metrics`]: reading `/metrics` samples; [`wait`]: polling with a deadline.
//! - [`ports`]: loopback ports for children told their port up front, never
//!   handed to two tests of the one test process.

pub mod backend;
pub mod binary;
pub mod client_stream;
pub mod cut_proxy;
pub mod metrics;
pub mod peer;
pub mod ports;
pub mod redis;
pub mod round_robin;
pub mod server;
pub mod shell;
pub mod tokens;
pub mod wait;

use std::time::Duration;

pub use peer::{Peer, assert_alive, assert_error, error_code, frames_until_closed};
pub use redis::{RedisCluster, RedisServer};
pub use server::{Signal, TestServer, TestServerBuilder};
/// The one definition of the two transports, shared with the server and
/// the client.
pub use tandem_protocol::Transport;

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);
