//! The server's own sections (`[server]`, `[auth]`, `[session]`,
//! `[transport]`, `[channels]`, `[broker]`): their keys, defaults and the
//! durations derived from them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem_protocol::Transport;

/// `[server]`: the listener.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address; anything but loopback requires `auth.secret`.
    pub bind: SocketAddr,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Open client connections accepted at once.
    pub max_connections: usize,
    /// Time given to clients to leave on shutdown.
    pub shutdown_grace_seconds: u64,
    /// Browser origins allowed to connect (`*` or `scheme://host[:port]`).
    /// Empty = same-origin and loopback origins only (local development);
    /// requests without `Origin` (non-browser clients) are always allowed.
    pub allowed_origins: Vec<String>,
    /// A second listener for `/health*`, `/monitoring/*` and `/metrics`
    /// only, with its own accept loop and worker, so probes answer while the
    /// client port is flooded. Empty = none.
    pub admin_bind: String,
    /// Largest request head (request line and headers) answered; larger
    /// ones get 431.
    pub max_request_head_bytes: usize,
    /// Transports clients may connect with: an operator turns one off when
    /// something in front of Tandem breaks it (a proxy that blocks
    /// upgrades); the other answers `transport_disabled`.
    pub transports: Vec<Transport>,
    /// `[server.tls]`: TLS on the client listener (and optionally the admin one).
    pub tls: TlsConfig,
}

/// `[server.tls]`: a certificate chain and its private key, both PEM.
/// Both empty = plain TCP; both set = TLS 1.2 and 1.3 (ALPN `http/1.1`),
/// the pair reloaded when its files change.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key_file: String,
    /// How often the two files are checked for a change.
    pub reload_interval_seconds: u64,
    /// Serve the admin listener (`server.admin_bind`) with the same pair.
    pub admin: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self { cert_file: String::new(), key_file: String::new(), reload_interval_seconds: 5, admin: false }
    }
}

impl TlsConfig {
    /// Whether TLS is on (both files named; [`Config::validate`](super::Config::validate)
    /// refuses one without the other).
    pub fn enabled(&self) -> bool {
        !self.cert_file.trim().is_empty() && !self.key_file.trim().is_empty()
    }

    pub fn reload_interval(&self) -> Duration {
        Duration::from_secs(self.reload_interval_seconds)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            max_connections: 100_000,
            shutdown_grace_seconds: 10,
            allowed_origins: Vec::new(),
            admin_bind: String::new(),
            max_request_head_bytes: 16_384,
            transports: Transport::ALL.to_vec(),
            tls: TlsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// The admin listener's address, if one is configured (and valid:
    /// [`Config::validate`] reports it otherwise).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_bind.trim().parse().ok()
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    /// Whether clients may connect with `transport` (`server.transports`).
    pub fn allows(&self, transport: Transport) -> bool {
        self.transports.contains(&transport)
    }
}

/// `[auth]`: client tokens and backend API keys.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key for client tokens; empty = development mode (loopback only).
    pub secret: String,
    /// Keys for the backend API; empty = the API refuses every request.
    pub api_keys: Vec<String>,
    /// Lifetime of tokens minted by `tandem token`; also the longest a
    /// revocation without `expires_at` is kept.
    pub token_ttl_seconds: u64,
    /// Clock skew tolerated on a client token's `exp` and `nbf`, between
    /// the backend that minted it and this server.
    pub leeway_seconds: u64,
    /// Seconds before a connection's token `exp` that it is sent
    /// `token_expiring`.
    pub expiry_warning_seconds: u64,
    /// Seconds past a connection's token `exp`, without a `refresh`, before
    /// it is closed with 4003 `token_expired`.
    pub expiry_grace_seconds: u64,
    /// Revocations each node keeps in memory (oldest-expiring dropped first).
    pub max_revocations: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            api_keys: Vec::new(),
            token_ttl_seconds: 3600,
            leeway_seconds: 2,
            expiry_warning_seconds: 60,
            expiry_grace_seconds: 10,
            max_revocations: 10_000,
        }
    }
}

impl AuthConfig {
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds)
    }
}

/// `[session]`: what a session keeps and how long it lives without a
/// connection.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub history_size: usize,
    pub resume_window_seconds: u64,
    pub max_connections_per_player: usize,
    pub max_subscriptions: usize,
    pub dual_delivery: DualDelivery,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            history_size: 128,
            resume_window_seconds: 120,
            max_connections_per_player: 4,
            max_subscriptions: 64,
            dual_delivery: DualDelivery::All,
        }
    }
}

impl SessionConfig {
    pub fn resume_window(&self) -> Duration {
        Duration::from_secs(self.resume_window_seconds)
    }
}

/// Which live connections of a session receive a delivery.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DualDelivery {
    /// Every connection: the client de-duplicates by `seq`.
    #[default]
    All,
    /// The WebSocket if the session has one, else SSE: half the traffic for
    /// clients that keep SSE only as a fallback.
    Preferred,
}

/// `[transport]`: per-connection limits shared by WebSocket and SSE.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    pub heartbeat_interval_seconds: u64,
    pub heartbeat_timeout_seconds: u64,
    pub max_message_bytes: usize,
    pub outbound_queue_size: usize,
    pub inbound_rate_per_second: u32,
    pub inbound_burst: u32,
    /// Seconds a fragmented WebSocket message may stay incomplete.
    pub fragment_timeout_seconds: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_seconds: 15,
            heartbeat_timeout_seconds: 45,
            max_message_bytes: 65_536,
            outbound_queue_size: 256,
            inbound_rate_per_second: 20,
            inbound_burst: 40,
            fragment_timeout_seconds: 10,
        }
    }
}

impl TransportConfig {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_seconds)
    }

    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.heartbeat_timeout_seconds)
    }
}

/// `[channels]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelsConfig {
    /// Namespaces clients may publish into (a token's `publish` claim
    /// replaces this list for its holder).
    pub client_publish: Vec<String>,
    /// Namespaces whose subscribers get `join` and `leave` frames.
    pub presence_events: Vec<String>,
    /// Seconds a player may be without a connection in a channel before it
    /// leaves it (a drop and a resume within them make no frame).
    pub presence_grace_seconds: u64,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            client_publish: vec!["room".into(), "party".into()],
            presence_events: Vec::new(),
            presence_grace_seconds: 15,
        }
    }
}

/// `[broker]`: how publications reach sessions, on one node or many.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    pub kind: BrokerKind,
    /// Redis URL (`redis://[:password@]host:port[/db]`), for `kind = "redis"`.
    pub url: String,
    /// Milliseconds a backend publish waits for the broker before `503 broker_unavailable`.
    pub publish_timeout_ms: u64,
    /// Milliseconds to connect to Redis or get one answer before it counts as down.
    pub command_timeout_ms: u64,
    /// Seconds between this node's presence heartbeats; its keys expire after three.
    pub heartbeat_seconds: u64,
    /// Prefix of every Redis key and channel, so clusters can share one Redis.
    pub key_prefix: String,
    /// The secret every node of the cluster signs its messages with (at
    /// least 32 bytes, the same on every node; required for `kind = "redis"`).
    pub cluster_key: String,
    /// This node's route tag, put in its session ids (`s_<route>-…`) so a
    /// load balancer can send a session's connections to its node; empty = none.
    pub route: String,
    /// Publications kept per channel in Redis, so a session resumes on any
    /// node (0 = none: a resume on another node says `resync_required`).
    pub history_size: u64,
    /// Seconds a channel's history outlives its last publication.
    pub history_ttl_seconds: u64,
    /// Redis Sentinels (`host:port`) that name the master of
    /// `sentinel_master`: when set, `url` is not used and every
    /// (re)connection asks them where the master is now.
    pub sentinels: Vec<String>,
    /// The master's name in the Sentinels' configuration.
    pub sentinel_master: String,
    /// Seed nodes (`host:port`) of a Redis Cluster (7.0 or later: sharded
    /// pub/sub): when set, `url` is not used and the cluster's own map of
    /// slots says where each key lives.
    pub redis_cluster: Vec<String>,
    /// Per-namespace `history_size` / `history_ttl_seconds`, e.g.
    /// `chat = { size = 2000, ttl_seconds = 3600 }`.
    pub history_namespaces: std::collections::BTreeMap<String, HistoryLimits>,
}

/// A namespace's history in `broker.history_namespaces`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryLimits {
    pub size: u64,
    pub ttl_seconds: u64,
}

impl BrokerConfig {
    /// The history kept for `channel` (its namespace's, else the default).
    pub fn history_for(&self, channel: &str) -> HistoryLimits {
        let ns = channel.split_once(':').map_or(channel, |(ns, _)| ns);
        self.history_namespaces
            .get(ns)
            .copied()
            .unwrap_or(HistoryLimits { size: self.history_size, ttl_seconds: self.history_ttl_seconds })
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            kind: BrokerKind::Memory,
            url: "redis://127.0.0.1:6379".into(),
            publish_timeout_ms: 2000,
            command_timeout_ms: 1000,
            heartbeat_seconds: 2,
            key_prefix: "tandem".into(),
            cluster_key: String::new(),
            route: String::new(),
            history_size: 1000,
            history_ttl_seconds: 600,
            history_namespaces: std::collections::BTreeMap::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            redis_cluster: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// In-process fan-out: one server instance.
    #[default]
    Memory,
    /// Many nodes sharing one Redis (pub/sub and keys with expiry).
    Redis,
}

/// `[backend]`: the game's own HTTP endpoints (docs/backend.md). Every URL
/// is optional; an empty one turns its feature off.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Where client commands are POSTed; empty = `no_backend` (unless an
    /// embedded `CommandHandler` is registered).
    pub command_url: String,
    /// Asked before a connection is accepted; empty = no hook.
    pub connect_url: String,
    /// Asked before each subscription; empty = no hook.
    pub subscribe_url: String,
    /// Lifecycle events (`session_started`, `session_resumed`, `player_left`); empty = none.
    pub events_url: String,
    /// HMAC-SHA256 key signing every request (`X-Tandem-Signature`); empty = unsigned.
    pub secret: String,
    /// Milliseconds a command or an event POST waits for the backend.
    pub timeout_ms: u64,
    /// Milliseconds a hook waits for the backend.
    pub hook_timeout_ms: u64,
    /// What a hook that fails (timeout, unreachable, out of contract) decides.
    pub hook_failure: HookFailure,
    /// Seconds a hook's answer is reused for the same player and request.
    pub hook_cache_seconds: u64,
    /// Hook answers cached at most.
    pub hook_cache_size: usize,
    /// Commands waiting for the backend, all players together.
    pub max_in_flight: usize,
    /// Commands waiting for the backend, per player.
    pub max_in_flight_per_player: usize,
    /// Commands per second per player, and the burst above it.
    pub commands_per_second: u32,
    pub commands_burst: u32,
    /// Largest backend answer read; a larger one is `backend_error`.
    pub max_response_bytes: usize,
    /// Answers each session keeps so a resent command id is not run twice.
    pub reply_cache_size: usize,
    /// Seconds an answer stays in the reply cache.
    pub reply_cache_seconds: u64,
    /// Idle keep-alive connections kept to the backend.
    pub pool_idle_per_host: usize,
    /// Lifecycle events waiting to be sent; past it new ones are dropped (counted).
    pub events_queue_size: usize,
    /// Lifecycle events sent at once (each session's in order).
    pub events_concurrency: usize,
    /// Longest pause between two tries of one event.
    pub events_retry_max_ms: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            command_url: String::new(),
            connect_url: String::new(),
            subscribe_url: String::new(),
            events_url: String::new(),
            secret: String::new(),
            timeout_ms: 1000,
            hook_timeout_ms: 500,
            hook_failure: HookFailure::Deny,
            hook_cache_seconds: 5,
            hook_cache_size: 10_000,
            max_in_flight: 1024,
            max_in_flight_per_player: 8,
            commands_per_second: 10,
            commands_burst: 20,
            max_response_bytes: 65_536,
            reply_cache_size: 32,
            reply_cache_seconds: 300,
            pool_idle_per_host: 32,
            events_queue_size: 10_000,
            events_concurrency: 4,
            events_retry_max_ms: 30_000,
        }
    }
}

impl BackendConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn hook_timeout(&self) -> Duration {
        Duration::from_millis(self.hook_timeout_ms)
    }
}

/// A hook that could not answer: refuse (`deny`) or let the client in (`allow`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HookFailure {
    #[default]
    Deny,
    Allow,
}
