//! Tandem's wire vocabulary: the names a server and its clients must agree
//! on, defined once. No I/O and no dependency beyond `serde`, so every crate
//! of the workspace (server, monitoring, Rust client, tests) can use it.

mod error_code;
mod transport;

pub use error_code::ErrorCode;
pub use transport::Transport;
