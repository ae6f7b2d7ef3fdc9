//! The game backend: what Tandem asks of the game (docs/backend.md).
//!
//! - [`commands`]: players' commands to `backend.command_url` or an
//!   embedded [`CommandHandler`], under caps and a timeout;
//! - [`reply_cache`]: the per-session answers that make a command id run
//!   at most once (plain code, no I/O);
//! - [`hooks`]: the connect and subscribe hooks and their cache;
//! - [`events`]: lifecycle events, queued and retried;
//! - [`client`]: the pooled HTTP client all of these share;
//! - [`signature`]: `X-Tandem-Signature`, and how a backend verifies it.
//!
//! This layer sits beside the broker, below the manager: it knows config,
//! telemetry and the session domain, never the manager or the transports.

pub mod client;
pub mod commands;
pub mod events;
pub mod hooks;
pub mod reply_cache;
pub mod signature;

use std::sync::Arc;

/// What a [`Publisher`] refuses with (a code and a message).
pub use crate::session::protocol::ProtocolError;
pub use commands::{Command, CommandError, CommandHandler, Hub, Publisher};
pub use events::{EventKind, LeftReason, LifecycleEvent};
pub use hooks::{ConnectAsk, Hook, Refusal};

use crate::config::BackendConfig;
use crate::telemetry::Telemetry;

/// Why the backend client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("backend HTTP client: {0}")]
pub struct BackendError(#[from] reqwest::Error);

/// Commands, hooks and events, built once from `[backend]`.
#[derive(Debug)]
pub struct Backend {
    pub commands: commands::Commands,
    pub hooks: hooks::Hooks,
    pub events: Arc<events::Events>,
    pub reply_cache_size: usize,
    pub reply_cache_ms: u64,
}

impl Backend {
    /// `handler`, when given, answers commands in process instead of
    /// `backend.command_url`.
    pub fn new(
        config: &BackendConfig,
        version: &str,
        handler: Option<Arc<dyn CommandHandler>>,
        telemetry: Telemetry,
    ) -> Result<Self, BackendError> {
        let uses_http = [&config.command_url, &config.connect_url, &config.subscribe_url, &config.events_url]
            .iter()
            .any(|u| !u.is_empty());
        let client = if uses_http { Some(client::HttpClient::new(config, version)?) } else { None };
        Ok(Self {
            commands: commands::Commands::new(config, client.clone(), handler),
            hooks: hooks::Hooks::new(config, client.clone()),
            events: Arc::new(events::Events::new(config, client, telemetry)),
            reply_cache_size: config.reply_cache_size,
            reply_cache_ms: config.reply_cache_seconds * 1000,
        })
    }

    /// No backend at all: commands get `no_backend`, no hook, no event.
    pub fn disabled(telemetry: Telemetry) -> Self {
        let config = BackendConfig::default();
        let commands = commands::Commands::new(&config, None, None);
        let hooks = hooks::Hooks::new(&config, None);
        let events = events::Events::new(&config, None, telemetry);
        Self {
            commands,
            hooks,
            events: Arc::new(events),
            reply_cache_size: config.reply_cache_size,
            reply_cache_ms: config.reply_cache_seconds * 1000,
        }
    }

    /// Forgets idle players' command rates and expired hook answers.
    pub fn sweep(&self, now_ms: u64) {
        self.commands.sweep(now_ms);
        self.hooks.sweep(now_ms);
    }
}
