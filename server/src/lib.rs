//! Tandem server: WebSocket and SSE to the same player sessions.
//!
//! One folder per layer; a layer imports only those listed below it
//! (`docs/architecture.md` has the rules, the publish path and where a new
//! feature goes):
//!
//! | layer | holds | may import |
//! |---|---|---|
//! | [`cli`] | the `tandem` command line | everything |
//! | [`server`] | start-up, shutdown phases, listener, route table, supervisor | everything below |
//! | [`transport`] | `ws` (a future owning the upgraded socket), `sse` | `http`, `manager`, `auth`, and below |
//! | [`http`] | JSON errors, extractors, handler state, backend API, views, demo | `manager`, `auth`, and below |
//! | [`auth`] | tokens and API keys | `config`, `session` |
//! | [`manager`] | sessions, players, channels, fan-out, client commands | `backend`, `broker`, and below |
//! | [`backend`] | the game backend: commands, hooks, lifecycle events | `telemetry`, `config`, `session` |
//! | [`broker`] | carrying publications between nodes (memory, Redis) | `telemetry`, `config`, `session` |
//! | [`telemetry`] | every log line and metric, as one typed event each | `session` |
//! | [`config`] | the configuration: layers, sections, validation | `session` |
//! | [`session`] | the domain as plain synchronous code: sessions, connections, channels, frames, payloads | nothing |

pub(crate) mod auth;
pub mod backend;
pub mod broker;
pub mod cli;
pub mod config;
pub(crate) mod http;
pub mod manager;
pub mod server;
pub mod session;
pub mod telemetry;
pub(crate) mod transport;
