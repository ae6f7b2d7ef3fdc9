//! Tandem's end-to-end suite: every black-box test in one test binary, so
//! the test crate links once instead of once per file.
//!
//! Each module is one area and keeps the name of the file it came from, so
//! `cargo test -p tandem-e2e heartbeat::` still runs one area. The tests run
//! on parallel threads of this one process, so none may rely on
//! process-wide state a neighbour could change:
//!
//! - servers bind port 0 and report their address; children that must be
//!   told a port up front (`redis-server`, Prometheus) and a port that must
//!   stay closed get one from [`tandem_e2e::ports`], which never hands a
//!   port out twice in this process and stays out of the kernel's range for
//!   `bind(0)`;
//! - every server, Redis and Prometheus works in a temporary directory of
//!   its own;
//! - no test sets an environment variable or changes the working directory
//!   (children get theirs through `Command`);
//! - the one process-wide cache is the path of the `tandem` binary
//!   ([`tandem_e2e::binary`]), resolved once;
//! - [`admin_listener`]'s connection flood raises the open-file limit first,
//!   so it cannot starve a neighbour of sockets.
//!
//! Helpers shared by several areas: [`common`] (raw sockets, the backend's
//! view of players) and [`common_mon`] (monitoring traffic and documents).

mod common;
mod common_mon;

mod admin_listener;
mod api;
mod auth;
mod backend;
mod backpressure;
mod bad_input;
mod channels;
mod claims;
mod cli;
mod client_calls;
mod client_fallback;
mod client_resume;
mod client_status;
mod cluster;
mod cors;
mod draining;
mod dual_delivery;
mod edge;
mod example_game;
mod fanout;
mod front_door;
mod hardening;
mod heartbeat;
mod limits;
mod logs_jq;
mod metrics;
mod monitoring;
mod operations_jq;
mod presence;
mod prometheus;
mod redis_cluster;
mod redis_faults;
mod refresh;
mod restarts;
mod resume;
mod resume_anywhere;
mod revoke;
mod shutdown;
mod tls;
mod transport_switch;
mod transports;
mod ws_upgrade;
