//! Tandem server: WebSocket and SSE to the same player sessions.
//!
//! Layers, from the wire inwards:
//! - [`server`]: process start-up and shutdown phases; [`listener`]: the
//!   client port (actix-http, with WebSocket upgrades taken before
//!   actix-web); [`app`]: route table.
//! - [`transport`]: `ws` (a future owning the upgraded socket) and `sse` (a
//!   response-body stream), each draining its connection's queue;
//!   [`api`]: backend API; [`commands`]: client commands both transports share;
//!   [`demo`]: the demo page and the browser client, embedded.
//! - [`manager`]: sessions, players, channels and fan-out; [`connection`]:
//!   one link's bounded outbound queue.
//! - [`session`]: seq, history, resume and rate limiting as plain
//!   synchronous code; [`protocol`]: frames and error codes; [`payload`]:
//!   relayed JSON checked and compacted once; [`channels`]:
//!   channel names and permissions.
//! - [`config`], [`auth`], [`origin`], [`cli`]: configuration and access.
//! - [`internal_events`]: every log line and metric, typed.

pub mod api;
pub mod app;
pub mod auth;
pub mod broker;
pub mod channels;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connection;
pub mod demo;
pub mod http_error;
pub mod identity;
pub mod internal_events;
pub mod listener;
pub mod manager;
pub mod origin;
pub mod payload;
pub mod protocol;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod supervisor;
pub mod transport;
pub mod transport_kind;
pub mod views;
