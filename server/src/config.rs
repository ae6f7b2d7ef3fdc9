//! Tandem's configuration: the sections, how they are layered and what makes
//! them valid.
//!
//! Layers, later ones win: the built-in `config/default.toml` (compiled in, so
//! the binary runs anywhere with no file), the file given with `--config`, then
//! environment variables `TANDEM_<SECTION>__<KEY>`. Every section denies
//! unknown keys so a typo stops start-up instead of silently keeping a
//! default, and [`Config::validate`] names the key of every bad value.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};
use tandem_monitoring::{DependencyKind, LoggingConfig, MonitoringConfig};

use crate::channels::{RESERVED_NAMESPACES, is_valid_namespace};
use crate::transport_kind::Transport;

/// The built-in defaults: also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Environment variables starting with this (any case) override the files.
pub const ENV_PREFIX: &str = "TANDEM_";

/// Separates the section from the key in an environment variable name
/// (`TANDEM_SERVER__BIND` → `server.bind`); a single `_` belongs to the key.
pub const ENV_SEPARATOR: &str = "__";

/// Largest `session.history_size`: the history is kept per session.
pub const MAX_HISTORY_SIZE: usize = 100_000;
/// Largest `transport.outbound_queue_size`.
pub const MAX_OUTBOUND_QUEUE_SIZE: usize = 1_000_000;
/// Smallest `transport.max_message_bytes`: a useful frame needs some room.
pub const MIN_MESSAGE_BYTES: usize = 64;
/// Largest `transport.max_message_bytes` (16 MiB): bodies are buffered whole.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Shortest `auth.secret`: an HS256 key shorter than the hash is guessable.
pub const MIN_SECRET_BYTES: usize = 32;
/// Shortest backend API key.
pub const MIN_API_KEY_CHARS: usize = 16;
/// Largest `server.workers`: more threads than this only cost memory.
pub const MAX_WORKERS: usize = 1024;
/// Upper bound of every duration key (one day): durations are added to
/// clock readings, and nobody means a week-long heartbeat.
pub const MAX_SECONDS: u64 = 86_400;
/// Smallest `server.max_request_head_bytes`: a request line and a token.
pub const MIN_REQUEST_HEAD_BYTES: usize = 1024;
/// Largest `server.max_request_head_bytes`: actix's HTTP/1 parser refuses
/// heads past 128 KiB on its own.
pub const MAX_REQUEST_HEAD_BYTES: usize = 128 * 1024;
/// Upper bound of `auth.token_ttl_seconds` (one year).
pub const MAX_TOKEN_TTL_SECONDS: u64 = 365 * 86_400;

/// Health components Tandem registers itself; a dependency check may not
/// shadow them.
const BUILTIN_COMPONENTS: [&str; 5] = ["connections", "memory", "activity", "performance", "broker"];

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub session: SessionConfig,
    pub transport: TransportConfig,
    pub channels: ChannelsConfig,
    pub monitoring: MonitoringConfig,
    pub logging: LoggingConfig,
    pub broker: BrokerConfig,
}

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
    /// Lifetime of tokens minted by `tandem token`.
    pub token_ttl_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { secret: String::new(), api_keys: Vec::new(), token_ttl_seconds: 3600 }
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
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self { client_publish: vec!["room".into(), "party".into()] }
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
    /// This node's route tag, put in its session ids (`s_<route>-…`) so a
    /// load balancer can send a session's connections to its node; empty = none.
    pub route: String,
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
            route: String::new(),
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

/// `broker.url` with its password (if any) shown as `***`.
fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => raw.to_owned(),
        // Not a URL (refused by validation anyway): show nothing of it.
        Err(_) => "***".to_owned(),
    }
}

/// Why a configuration could not be loaded. Each problem displays as one
/// line that names the key; [`ConfigError::Many`] is one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown key {key}{} (expected one of: {expected})", origin_suffix(.origin.as_deref()))]
    UnknownKey { key: String, expected: String, origin: Option<String> },
    /// A value that does not parse as its key's type, or a malformed file.
    #[error("{}{}: {message}", parse_subject(key), origin_suffix(.origin.as_deref()))]
    Parse { key: String, message: String, origin: Option<String> },
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "auth.secret is required when server.bind is not a loopback address \
         (server.bind = {bind}); set it in the config file or TANDEM_AUTH__SECRET"
    )]
    SecretRequired { bind: SocketAddr },
    #[error("cannot print the configuration: {0}")]
    Serialize(String),
    #[error("{}", join_lines(.0))]
    Many(Vec<ConfigError>),
}

fn origin_suffix(origin: Option<&str>) -> String {
    origin.map(|o| format!(" in {o}")).unwrap_or_default()
}

fn parse_subject(key: &str) -> String {
    if key.is_empty() { "invalid configuration".to_owned() } else { format!("invalid value for {key}") }
}

fn join_lines(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl ConfigError {
    /// One error per problem, flattening [`ConfigError::Many`].
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many(all) => all.iter().flat_map(ConfigError::problems).collect(),
            one => vec![one],
        }
    }

    fn from_problems(mut problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Many(problems)),
        }
    }

    /// `unknown_origin` says where an unknown key came from: figment tags it
    /// with the section's source, which may be another layer.
    fn from_figment(err: figment::Error, unknown_origin: &dyn Fn(&[String]) -> String) -> ConfigError {
        let problems: Vec<ConfigError> =
            err.into_iter().map(|e| Self::from_figment_one(e, unknown_origin)).collect();
        match ConfigError::from_problems(problems) {
            Err(e) => e,
            Ok(()) => {
                ConfigError::Parse { key: String::new(), message: "unknown error".into(), origin: None }
            }
        }
    }

    fn from_figment_one(err: figment::Error, unknown_origin: &dyn Fn(&[String]) -> String) -> ConfigError {
        use figment::error::Kind;
        let origin = err.metadata.as_ref().map(|md| describe_origin(md, &err.path));
        let mut path = err.path;
        let mut with_field = |field: &str| {
            if path.last().map(String::as_str) != Some(field) {
                path.push(field.to_owned());
            }
            key_path(&path)
        };
        match err.kind {
            Kind::UnknownField(field, expected) => {
                let key = with_field(&field);
                ConfigError::UnknownKey {
                    key,
                    expected: expected.join(", "),
                    origin: Some(unknown_origin(&path)),
                }
            }
            Kind::MissingField(field) => ConfigError::Parse {
                key: with_field(&field),
                message: "missing (this key is required here)".into(),
                origin,
            },
            Kind::UnknownVariant(found, expected) => ConfigError::Parse {
                key: key_path(&path),
                message: format!("unknown value `{found}` (expected one of: {})", expected.join(", ")),
                origin,
            },
            kind => {
                let mut message = one_line(&kind.to_string());
                if message.ends_with("expected a sequence") {
                    message.push_str(r#" (write a list as ["a", "b"])"#);
                }
                ConfigError::Parse { key: key_path(&path), message, origin }
            }
        }
    }
}

/// Folds a multi-line message (a TOML parse error with its source snippet)
/// into one line: the snippet is dropped, the rest joined.
fn one_line(message: &str) -> String {
    let mut parts = message.lines().map(str::trim).filter(|line| {
        !line.is_empty()
            && !line.starts_with('|')
            && !line.split_once(" |").is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
    });
    let mut out = parts.next().unwrap_or_default().to_owned();
    for (i, part) in parts.enumerate() {
        out.push_str(if i == 0 { ": " } else { ", " });
        out.push_str(part);
    }
    out
}

/// `["monitoring", "checks", "0", "name"]` → `monitoring.checks[0].name`.
fn key_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            out.push('[');
            out.push_str(segment);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

fn describe_origin(md: &Metadata, path: &[String]) -> String {
    let profile = Profile::Default;
    match &md.source {
        Some(source) => format!("{} {source}", md.name),
        None if md.name == ENV_METADATA_NAME => {
            format!("{} {}", md.name, md.interpolate(&profile, path))
        }
        None => md.name.to_string(),
    }
}

const ENV_METADATA_NAME: &str = "environment variable";

impl Config {
    /// Loads the layered configuration, with the process environment as the
    /// last layer, and validates it.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect();
        Self::load_with_env(file, &env)
    }

    /// Like [`Config::load`] with `env` standing for the process environment,
    /// so tests layer variables without touching the real one. Pairs whose
    /// name does not start with [`ENV_PREFIX`] are ignored.
    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut figment = Figment::new()
            .merge(Layer::new(Toml::string(DEFAULT_TOML), Metadata::named("built-in defaults")));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            figment =
                figment.merge(Layer::new(Toml::string(&text), Metadata::named("config file").source(path)));
        }
        let env = EnvLayer::new(env)?;
        let unknown_origin = |path: &[String]| {
            if env.contains(path) {
                format!("{ENV_METADATA_NAME} {}", env_var_name(path))
            } else if let Some(file) = file {
                // The built-in defaults hold no unknown key (tested), so the file does.
                format!("config file {}", file.display())
            } else {
                "built-in defaults".to_owned()
            }
        };
        figment = figment.merge(&env);
        let config: Config = figment.extract().map_err(|e| ConfigError::from_figment(e, &unknown_origin))?;
        config.validate()?;
        Ok(config)
    }

    /// Development mode: no `auth.secret`, clients pick their player with
    /// `?player_id=`. [`Config::validate`] allows it on loopback only.
    pub fn dev_mode(&self) -> bool {
        self.auth.secret.is_empty()
    }

    /// A copy safe to print or log: every secret that is set reads `***`.
    pub fn masked(&self) -> Config {
        fn mask(s: &mut String) {
            if !s.is_empty() {
                "***".clone_into(s);
            }
        }
        let mut copy = self.clone();
        mask(&mut copy.auth.secret);
        copy.auth.api_keys.iter_mut().for_each(mask);
        mask(&mut copy.monitoring.token);
        copy.broker.url = mask_url_password(&copy.broker.url);
        copy
    }

    /// The configuration as TOML (print [`Config::masked`], not this).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }

    /// Checks every rule and reports every broken one, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.validate_server(&mut p);
        self.validate_auth(&mut p);
        self.validate_session(&mut p);
        self.validate_transport(&mut p);
        self.validate_channels(&mut p);
        self.validate_monitoring(&mut p);
        self.validate_broker(&mut p);
        // The monitoring crate owns its section's rules too; anything it
        // refuses that the checks above let through is reported as well.
        if let Err(e) = self.monitoring.validate() {
            let reported = p.0.iter().any(|q| matches!(q, ConfigError::Invalid { key, .. } if *key == e.key));
            if !reported {
                p.invalid(e.key, e.message);
            }
        }
        ConfigError::from_problems(p.0)
    }

    fn validate_server(&self, p: &mut Problems) {
        let s = &self.server;
        p.at_most("server.workers", s.workers, MAX_WORKERS);
        p.at_least("server.max_connections", s.max_connections, 1);
        p.at_most("server.shutdown_grace_seconds", s.shutdown_grace_seconds, MAX_SECONDS);
        for (i, origin) in s.allowed_origins.iter().enumerate() {
            if let Err(reason) = check_origin(origin) {
                p.invalid(format!("server.allowed_origins[{i}]"), reason);
            }
        }
        if !s.admin_bind.trim().is_empty() {
            match s.admin_addr() {
                None => p.invalid("server.admin_bind", format!("`{}` is not an address:port", s.admin_bind)),
                Some(a) if a == s.bind && a.port() != 0 => {
                    p.invalid("server.admin_bind", "must differ from server.bind")
                }
                Some(_) => {}
            }
        }
        p.between(
            "server.max_request_head_bytes",
            s.max_request_head_bytes,
            MIN_REQUEST_HEAD_BYTES,
            MAX_REQUEST_HEAD_BYTES,
        );
        if s.transports.is_empty() {
            p.invalid("server.transports", "must name at least one of \"websocket\", \"sse\"");
        }
        for (i, t) in s.transports.iter().enumerate() {
            if s.transports[..i].contains(t) {
                p.invalid(format!("server.transports[{i}]"), format!("\"{}\" is listed twice", t.as_str()));
            }
        }
        if self.auth.secret.is_empty() && !is_loopback(s.bind) {
            p.0.push(ConfigError::SecretRequired { bind: s.bind });
        }
    }

    fn validate_auth(&self, p: &mut Problems) {
        let a = &self.auth;
        // Lengths only: a secret never appears in a message.
        if !a.secret.is_empty() && a.secret.len() < MIN_SECRET_BYTES {
            p.invalid(
                "auth.secret",
                format!(
                    "must be empty (development mode) or at least {MIN_SECRET_BYTES} bytes (got {})",
                    a.secret.len()
                ),
            );
        }
        for (i, key) in a.api_keys.iter().enumerate() {
            let chars = key.chars().count();
            if chars < MIN_API_KEY_CHARS {
                p.invalid(
                    format!("auth.api_keys[{i}]"),
                    format!("must be at least {MIN_API_KEY_CHARS} characters (got {chars})"),
                );
            } else if key.chars().any(char::is_whitespace) {
                p.invalid(format!("auth.api_keys[{i}]"), "must not contain whitespace");
            }
        }
        p.between("auth.token_ttl_seconds", a.token_ttl_seconds, 1, MAX_TOKEN_TTL_SECONDS);
    }

    fn validate_session(&self, p: &mut Problems) {
        let s = &self.session;
        p.between("session.history_size", s.history_size, 1, MAX_HISTORY_SIZE);
        p.between("session.resume_window_seconds", s.resume_window_seconds, 1, MAX_SECONDS);
        p.at_least("session.max_connections_per_player", s.max_connections_per_player, 1);
        p.at_least("session.max_subscriptions", s.max_subscriptions, 1);
    }

    fn validate_transport(&self, p: &mut Problems) {
        let t = &self.transport;
        p.between("transport.heartbeat_interval_seconds", t.heartbeat_interval_seconds, 1, MAX_SECONDS);
        p.at_most("transport.heartbeat_timeout_seconds", t.heartbeat_timeout_seconds, MAX_SECONDS);
        if t.heartbeat_timeout_seconds <= t.heartbeat_interval_seconds {
            p.invalid(
                "transport.heartbeat_timeout_seconds",
                format!(
                    "must be greater than transport.heartbeat_interval_seconds ({}) (got {})",
                    t.heartbeat_interval_seconds, t.heartbeat_timeout_seconds
                ),
            );
        }
        p.between("transport.max_message_bytes", t.max_message_bytes, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES);
        p.between("transport.outbound_queue_size", t.outbound_queue_size, 1, MAX_OUTBOUND_QUEUE_SIZE);
        p.at_least("transport.inbound_rate_per_second", t.inbound_rate_per_second, 1);
        p.at_least("transport.inbound_burst", t.inbound_burst, 1);
        p.between("transport.fragment_timeout_seconds", t.fragment_timeout_seconds, 1, MAX_SECONDS);
    }

    fn validate_broker(&self, p: &mut Problems) {
        let b = &self.broker;
        p.between("broker.publish_timeout_ms", b.publish_timeout_ms, 1, MAX_SECONDS * 1000);
        p.between("broker.command_timeout_ms", b.command_timeout_ms, 1, MAX_SECONDS * 1000);
        p.between("broker.heartbeat_seconds", b.heartbeat_seconds, 1, MAX_SECONDS);
        let prefix_ok = !b.key_prefix.is_empty()
            && b.key_prefix.len() <= 64
            && b.key_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !prefix_ok {
            p.invalid("broker.key_prefix", "must be 1-64 characters of [A-Za-z0-9_.-]");
        }
        let route_ok =
            b.route.len() <= 16 && b.route.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !route_ok {
            p.invalid("broker.route", "must be at most 16 characters of [a-z0-9]");
        }
        let scheme_ok = b.url.starts_with("redis://") || b.url.starts_with("rediss://");
        if b.kind == BrokerKind::Redis && !scheme_ok {
            // Never echo the URL: it may hold a password.
            p.invalid("broker.url", "must be a redis:// or rediss:// URL when broker.kind = \"redis\"");
        }
    }

    fn validate_channels(&self, p: &mut Problems) {
        for (i, ns) in self.channels.client_publish.iter().enumerate() {
            let key = format!("channels.client_publish[{i}]");
            if RESERVED_NAMESPACES.contains(&ns.as_str()) {
                p.invalid(key, format!("clients may never publish into `{ns}:`"));
            } else if !is_valid_namespace(ns) {
                p.invalid(key, format!("`{ns}` is not a namespace ([a-z][a-z0-9_-]{{0,31}})"));
            }
        }
    }

    fn validate_monitoring(&self, p: &mut Problems) {
        let m = &self.monitoring;
        p.at_least("monitoring.check_interval_seconds", m.check_interval_seconds, 1);
        p.at_least("monitoring.check_timeout_seconds", m.check_timeout_seconds, 1);
        p.at_least("monitoring.activity_warning_seconds", m.activity_warning_seconds, 1);
        let (warning, critical) = (m.memory_warning_percent, m.memory_critical_percent);
        if !(warning > 0.0 && warning < critical) {
            p.invalid(
                "monitoring.memory_warning_percent",
                format!(
                    "must be above 0 and below monitoring.memory_critical_percent ({critical}) (got {warning})"
                ),
            );
        }
        if !(critical > 0.0 && critical <= 100.0) {
            p.invalid(
                "monitoring.memory_critical_percent",
                format!("must be above 0 and at most 100 (got {critical})"),
            );
        }
        let mut names = HashSet::new();
        for (i, check) in m.checks.iter().enumerate() {
            let key = |field: &str| format!("monitoring.checks[{i}].{field}");
            let name = check.name.as_str();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            {
                p.invalid(key("name"), format!("`{name}` must match [a-z0-9_-]+"));
            } else if BUILTIN_COMPONENTS.contains(&name) {
                p.invalid(key("name"), format!("`{name}` is a built-in health component; pick another name"));
            } else if !names.insert(name) {
                p.invalid(key("name"), format!("`{name}` is used by an earlier check"));
            }
            let target_ok = match check.kind {
                DependencyKind::Tcp => is_host_port(&check.target),
                DependencyKind::Http => is_http_url(&check.target),
            };
            if !target_ok {
                let wanted = match check.kind {
                    DependencyKind::Tcp => "host:port, e.g. db.internal:5432",
                    DependencyKind::Http => "an http:// URL, e.g. http://127.0.0.1:9000/health",
                };
                p.invalid(key("target"), format!("must be {wanted} (got `{}`)", check.target));
            }
            if check.timeout_seconds == Some(0) {
                p.invalid(key("timeout_seconds"), "must be at least 1 (got 0)");
            }
        }
    }
}

/// Collects validation problems so one run reports all of them.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn invalid(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(ConfigError::Invalid { key: key.into(), reason: reason.into() });
    }

    fn at_least<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T) {
        if value < min {
            self.invalid(key, format!("must be at least {min} (got {value})"));
        }
    }

    fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, max: T) {
        if value > max {
            self.invalid(key, format!("must be at most {max} (got {value})"));
        }
    }

    fn between<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min {
            self.at_least(key, value, min);
        } else {
            self.at_most(key, value, max);
        }
    }
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// An `allowed_origins` entry must be `*` or exactly what a browser sends in
/// `Origin` (`scheme://host[:port]`, lowercase, no default port, no path),
/// because origins are compared as strings.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let shape = || {
        format!(
            "`{origin}` must be `*` or an origin like https://example.com (scheme://host[:port], no path)"
        )
    };
    let Some((_, rest)) = origin.split_once("://") else {
        return Err(shape());
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(shape());
    }
    let url = url::Url::parse(origin).map_err(|_| shape())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(shape());
    }
    if matches!(url.scheme(), "http" | "https") {
        let canonical = url.origin().ascii_serialization();
        if canonical != origin {
            return Err(format!("`{origin}` is not how browsers send it: write `{canonical}`"));
        }
    }
    Ok(())
}

/// `host:port` with a non-zero port; IPv6 hosts in brackets.
fn is_host_port(target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':') else {
        return false;
    };
    if !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn is_http_url(target: &str) -> bool {
    url::Url::parse(target).is_ok_and(|u| u.scheme() == "http" && u.host_str().is_some_and(|h| !h.is_empty()))
}

/// A provider shown under a name of Tandem's choosing in error messages
/// ("config file /etc/tandem.toml" rather than "TOML source string").
struct Layer<P> {
    inner: P,
    metadata: Metadata,
}

impl<P: Provider> Layer<P> {
    fn new(inner: P, metadata: Metadata) -> Self {
        Self { inner, metadata }
    }
}

impl<P: Provider> Provider for Layer<P> {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }
}

/// `TANDEM_<SECTION>__<KEY>` variables from a list rather than the process
/// environment (figment's `Env` reads only the latter), parsed like figment's
/// `Env` does: `8080` is a number, `["a","b"]` an array, anything else a string.
struct EnvLayer {
    dict: Dict,
}

impl EnvLayer {
    fn new(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut vars: Vec<(&str, &str)> = env
            .iter()
            .filter(|(k, _)| k.get(..ENV_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX)))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // Deterministic layering whatever order the environment lists them in.
        vars.sort_unstable();
        let mut dict = Dict::new();
        for (name, raw) in vars {
            let path: Vec<String> =
                name[ENV_PREFIX.len()..].trim().split(ENV_SEPARATOR).map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Parse {
                    key: String::new(),
                    message: format!(
                        "environment variable {name} does not name a key (use {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>)"
                    ),
                    origin: None,
                });
            }
            let Ok(value) = raw.parse::<Value>();
            insert_path(&mut dict, &path, value);
        }
        Ok(Self { dict })
    }
}

impl EnvLayer {
    /// Whether a variable set `path` (or a key below it).
    fn contains(&self, path: &[String]) -> bool {
        let mut dict = &self.dict;
        for (i, key) in path.iter().enumerate() {
            match dict.get(key) {
                None => return false,
                Some(Value::Dict(_, inner)) => dict = inner,
                Some(_) => return i + 1 == path.len(),
            }
        }
        true
    }
}

fn insert_path(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict.entry(first.clone()).or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// `["server", "bind"]` → `TANDEM_SERVER__BIND`.
fn env_var_name<S: AsRef<str>>(path: &[S]) -> String {
    let upper: Vec<String> = path.iter().map(|k| k.as_ref().to_ascii_uppercase()).collect();
    format!("{ENV_PREFIX}{}", upper.join(ENV_SEPARATOR))
}

impl Provider for EnvLayer {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_METADATA_NAME).interpolater(|_: &Profile, keys: &[&str]| env_var_name(keys))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn load_str(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_with_env(Some(&path), &env(vars))
    }

    /// Applies `change` to the defaults and returns the validation message.
    fn problem(change: impl FnOnce(&mut Config)) -> String {
        let mut cfg = Config::default();
        change(&mut cfg);
        cfg.validate().expect_err("the change must be refused").to_string()
    }

    /// Asserts `change` is refused with one line starting with `expected`.
    fn refused(change: impl FnOnce(&mut Config), expected: &str) {
        let err = problem(change);
        assert!(err.starts_with(expected), "got `{err}`, expected `{expected}`");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    const SECRET: &str = "production-secret-production-secret-42";
    const API_KEY: &str = "backend-key-0123456789";

    #[test]
    fn defaults_load_with_no_file_and_no_env() {
        let cfg = Config::load_with_env(None, &[]).unwrap();
        assert_eq!(cfg, Config::default());
        assert!(cfg.dev_mode());
        assert_eq!(cfg.server.bind, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(cfg.session.dual_delivery, DualDelivery::All);
        assert_eq!(cfg.channels.client_publish, vec!["room", "party"]);
        assert_eq!(cfg.broker.kind, BrokerKind::Memory);
        assert_eq!(cfg.transport.heartbeat_interval(), Duration::from_secs(15));
    }

    #[test]
    fn default_toml_sets_and_documents_every_key() {
        let file: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let mut from_struct: toml::Table =
            toml::from_str(&Config::default().to_toml_string().unwrap()).unwrap();
        // Shown commented out: there is no check by default.
        let monitoring = from_struct.get_mut("monitoring").and_then(toml::Value::as_table_mut).unwrap();
        assert_eq!(monitoring.remove("checks"), Some(toml::Value::Array(vec![])));
        assert_eq!(file, from_struct, "config/default.toml and the Default impls disagree");
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let is_key = line.contains(" = ") && !line.starts_with('#');
            if is_key {
                assert!(i > 0 && lines[i - 1].starts_with("# "), "no comment above `{line}`");
            }
        }
    }

    #[test]
    fn partial_file_overrides_only_its_keys() {
        let cfg =
            load_str("[server]\nbind = \"127.0.0.1:9001\"\n[session]\ndual_delivery = \"preferred\"\n", &[])
                .unwrap();
        assert_eq!(cfg.server.bind.port(), 9001);
        assert_eq!(cfg.server.max_connections, 100_000);
        assert_eq!(cfg.session.dual_delivery, DualDelivery::Preferred);
        assert_eq!(cfg.session.history_size, 128);
        assert_eq!(cfg.transport, TransportConfig::default());
    }

    #[test]
    fn env_overrides_file() {
        let file = "[server]\nbind = \"127.0.0.1:9001\"\n[transport]\noutbound_queue_size = 100\n";
        let cfg = load_str(
            file,
            &[
                ("TANDEM_SERVER__BIND", "127.0.0.1:9000"),
                ("TANDEM_AUTH__API_KEYS", &format!("[\"{API_KEY}\"]")),
                ("TANDEM_AUTH__SECRET", SECRET),
                ("TANDEM_SESSION__DUAL_DELIVERY", "preferred"),
                ("tandem_transport__inbound_burst", "7"),
                ("TANDEM_CHANNELS__CLIENT_PUBLISH", "[\"lobby\"]"),
                ("TANDEMX_SERVER__BIND", "ignored"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.server.bind, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.auth.api_keys, vec![API_KEY]);
        assert_eq!(cfg.auth.secret, SECRET);
        assert!(!cfg.dev_mode());
        assert_eq!(cfg.session.dual_delivery, DualDelivery::Preferred);
        assert_eq!(cfg.transport.inbound_burst, 7);
        assert_eq!(cfg.transport.outbound_queue_size, 100, "the file's value stays");
        assert_eq!(cfg.channels.client_publish, vec!["lobby"], "a list is replaced, not appended");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/tandem.toml")), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().starts_with("cannot read config file /nonexistent/tandem.toml: "), "{err}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_origin() {
        let err = load_str("[server]\nbnd = \"127.0.0.1:1\"\n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("unknown key server.bnd in config file "), "{err}");
        assert!(err.contains("expected one of: bind, workers"), "{err}");
        let err = load_str("[sever]\n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("unknown key sever in config file"), "{err}");
        let err = load_str(
            "[[monitoring.checks]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"db:1\"\ncritcal = true\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("unknown key monitoring.checks[0].critcal"), "{err}");
        let err =
            Config::load_with_env(None, &env(&[("TANDEM_SESSION__HISTORY", "5")])).unwrap_err().to_string();
        assert!(
            err.starts_with("unknown key session.history in environment variable TANDEM_SESSION__HISTORY"),
            "{err}"
        );
        let err = Config::load_with_env(None, &env(&[("TANDEM_SERVER__", "x")])).unwrap_err().to_string();
        assert!(err.contains("TANDEM_SERVER__ does not name a key"), "{err}");
    }

    #[test]
    fn bad_values_and_syntax_are_named_with_their_origin() {
        let err = Config::load_with_env(None, &env(&[("TANDEM_SERVER__BIND", "localhost")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid value for server.bind in environment variable TANDEM_SERVER__BIND: invalid socket address syntax"
        );
        let err = load_str("[transport]\nmax_message_bytes = \"big\"\n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("invalid value for transport.max_message_bytes in config file"), "{err}");
        let err = load_str("[session]\ndual_delivery = \"both\"\n", &[]).unwrap_err().to_string();
        assert!(err.ends_with("unknown value `both` (expected one of: all, preferred)"), "{err}");
        let err =
            load_str("[[monitoring.checks]]\nname = \"db\"\nkind = \"tcp\"\n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("invalid value for monitoring.checks[0].target in config file"), "{err}");
        let err =
            Config::load_with_env(None, &env(&[("TANDEM_AUTH__API_KEYS", API_KEY)])).unwrap_err().to_string();
        assert!(err.ends_with(r#"expected a sequence (write a list as ["a", "b"])"#), "{err}");
        let err = load_str("[server\n", &[]).unwrap_err().to_string();
        assert!(err.starts_with("invalid configuration in config file"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn numeric_limits_name_the_key_and_value() {
        refused(
            |c| c.transport.outbound_queue_size = 0,
            "invalid value for transport.outbound_queue_size: must be at least 1 (got 0)",
        );
        refused(
            |c| c.transport.outbound_queue_size = 1_000_001,
            "invalid value for transport.outbound_queue_size: must be at most 1000000 (got 1000001)",
        );
        refused(
            |c| c.session.history_size = 0,
            "invalid value for session.history_size: must be at least 1 (got 0)",
        );
        refused(
            |c| c.session.history_size = 100_001,
            "invalid value for session.history_size: must be at most 100000 (got 100001)",
        );
        refused(
            |c| c.transport.max_message_bytes = 63,
            "invalid value for transport.max_message_bytes: must be at least 64 (got 63)",
        );
        refused(
            |c| c.transport.max_message_bytes = 16 * 1024 * 1024 + 1,
            "invalid value for transport.max_message_bytes: must be at most 16777216 (got 16777217)",
        );
        refused(
            |c| c.transport.heartbeat_interval_seconds = 0,
            "invalid value for transport.heartbeat_interval_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.transport.heartbeat_timeout_seconds = 15,
            "invalid value for transport.heartbeat_timeout_seconds: must be greater than transport.heartbeat_interval_seconds (15) (got 15)",
        );
        refused(
            |c| c.server.max_connections = 0,
            "invalid value for server.max_connections: must be at least 1 (got 0)",
        );
        refused(
            |c| c.server.workers = 1025,
            "invalid value for server.workers: must be at most 1024 (got 1025)",
        );
        // Durations are added to clock readings: huge ones must not pass.
        refused(
            |c| c.server.shutdown_grace_seconds = u64::MAX,
            "invalid value for server.shutdown_grace_seconds: must be at most 86400",
        );
        refused(
            |c| c.session.resume_window_seconds = 86_401,
            "invalid value for session.resume_window_seconds: must be at most 86400 (got 86401)",
        );
        refused(
            |c| c.transport.heartbeat_timeout_seconds = 86_401,
            "invalid value for transport.heartbeat_timeout_seconds: must be at most 86400 (got 86401)",
        );
        refused(
            |c| c.auth.token_ttl_seconds = u64::MAX,
            "invalid value for auth.token_ttl_seconds: must be at most 31536000",
        );
        refused(
            |c| c.session.max_connections_per_player = 0,
            "invalid value for session.max_connections_per_player: must be at least 1 (got 0)",
        );
        refused(
            |c| c.session.max_subscriptions = 0,
            "invalid value for session.max_subscriptions: must be at least 1 (got 0)",
        );
        refused(
            |c| c.session.resume_window_seconds = 0,
            "invalid value for session.resume_window_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.transport.inbound_rate_per_second = 0,
            "invalid value for transport.inbound_rate_per_second: must be at least 1 (got 0)",
        );
        refused(
            |c| c.transport.inbound_burst = 0,
            "invalid value for transport.inbound_burst: must be at least 1 (got 0)",
        );
        refused(
            |c| c.auth.token_ttl_seconds = 0,
            "invalid value for auth.token_ttl_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.monitoring.check_interval_seconds = 0,
            "invalid value for monitoring.check_interval_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.monitoring.check_timeout_seconds = 0,
            "invalid value for monitoring.check_timeout_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.monitoring.activity_warning_seconds = 0,
            "invalid value for monitoring.activity_warning_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.monitoring.memory_warning_percent = 90.0,
            "invalid value for monitoring.memory_warning_percent: must be above 0 and below monitoring.memory_critical_percent (90) (got 90)",
        );
        refused(
            |c| c.monitoring.memory_warning_percent = f64::NAN,
            "invalid value for monitoring.memory_warning_percent",
        );
        refused(
            |c| c.monitoring.memory_critical_percent = 100.5,
            "invalid value for monitoring.memory_critical_percent: must be above 0 and at most 100 (got 100.5)",
        );
        // The edges themselves are fine.
        let mut edges = Config::default();
        edges.session.history_size = MAX_HISTORY_SIZE;
        edges.transport.outbound_queue_size = 1;
        edges.transport.max_message_bytes = MIN_MESSAGE_BYTES;
        edges.transport.heartbeat_interval_seconds = 1;
        edges.transport.heartbeat_timeout_seconds = 2;
        edges.monitoring.memory_critical_percent = 100.0;
        edges.validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_one_per_line() {
        let err = problem(|c| {
            c.transport.outbound_queue_size = 0;
            c.session.history_size = 0;
            c.server.bind = "0.0.0.0:8080".parse().unwrap();
        });
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert!(lines.contains(&"auth.secret is required when server.bind is not a loopback address (server.bind = 0.0.0.0:8080); set it in the config file or TANDEM_AUTH__SECRET"), "{err}");
    }

    #[test]
    fn client_publish_namespaces() {
        assert!(problem(|c| c.channels.client_publish = vec!["player".into()]).starts_with(
            "invalid value for channels.client_publish[0]: clients may never publish into `player:`"
        ));
        assert!(
            problem(|c| c.channels.client_publish = vec!["room".into(), "admin".into()])
                .starts_with("invalid value for channels.client_publish[1]")
        );
        for bad in ["", "Room", "1room", "room:x", &"a".repeat(33)] {
            let err = problem(|c| c.channels.client_publish = vec![bad.into()]);
            assert!(err.contains("is not a namespace"), "{bad}: {err}");
        }
        let mut cfg = Config::default();
        cfg.channels.client_publish = vec!["a".into(), "lobby_2-x".into(), "a".repeat(32)];
        cfg.validate().unwrap();
    }

    #[test]
    fn allowed_origins() {
        for good in [
            "*",
            "https://play.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:8080",
            "tauri://localhost",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "example.com",
            "https://example.com/",
            "https://example.com/game",
            "https://",
            "https://a.com?x=1",
            "https://u@a.com",
            "",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(
            check_origin("https://Example.com:443"),
            Err("`https://Example.com:443` is not how browsers send it: write `https://example.com`".into())
        );
        let err = problem(|c| c.server.allowed_origins = vec!["*".into(), "https://a.com/".into()]);
        assert!(err.starts_with("invalid value for server.allowed_origins[1]: "), "{err}");
    }

    #[test]
    fn transports() {
        let cfg = load_str("[server]\ntransports = [\"sse\"]\n", &[]).unwrap();
        assert!(cfg.server.allows(Transport::Sse));
        assert!(!cfg.server.allows(Transport::WebSocket));
        assert!(Config::default().server.allows(Transport::WebSocket));
        let err = problem(|c| c.server.transports = vec![]);
        assert!(err.starts_with("invalid value for server.transports: must name at least one"), "{err}");
        let err = problem(|c| c.server.transports = vec![Transport::Sse, Transport::Sse]);
        assert!(err.starts_with("invalid value for server.transports[1]: \"sse\" is listed twice"), "{err}");
        assert!(load_str("[server]\ntransports = [\"long-polling\"]\n", &[]).is_err());
    }

    #[test]
    fn secrets_and_api_keys() {
        let err = problem(|c| c.auth.secret = "short".into());
        assert_eq!(
            err,
            "invalid value for auth.secret: must be empty (development mode) or at least 32 bytes (got 5)"
        );
        let err = problem(|c| c.auth.api_keys = vec![API_KEY.into(), "tooshort".into()]);
        assert_eq!(err, "invalid value for auth.api_keys[1]: must be at least 16 characters (got 8)");
        let err = problem(|c| c.auth.api_keys = vec![String::new()]);
        assert!(err.starts_with("invalid value for auth.api_keys[0]: must be at least 16"), "{err}");
        let err = problem(|c| c.auth.api_keys = vec!["key with spaces in it".into()]);
        assert_eq!(err, "invalid value for auth.api_keys[0]: must not contain whitespace");
        // Messages never echo a secret.
        let err = problem(|c| c.auth.secret = "hunter2".into());
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn a_public_bind_needs_a_secret() {
        for bind in ["0.0.0.0:8080", "192.0.2.1:80", "[::]:8080"] {
            let err = problem(|c| c.server.bind = bind.parse().unwrap());
            assert!(
                err.starts_with("auth.secret is required when server.bind is not a loopback address"),
                "{err}"
            );
        }
        for bind in ["127.0.0.1:1", "127.1.2.3:80", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
            let mut cfg = Config::default();
            cfg.server.bind = bind.parse().unwrap();
            cfg.validate().unwrap();
            assert!(cfg.dev_mode());
        }
        let mut cfg = Config::default();
        cfg.server.bind = "0.0.0.0:8080".parse().unwrap();
        cfg.auth.secret = SECRET.into();
        cfg.validate().unwrap();
        assert!(!cfg.dev_mode());
        let err = Config::load_with_env(None, &env(&[("TANDEM_SERVER__BIND", "0.0.0.0:8080")])).unwrap_err();
        assert!(matches!(err, ConfigError::SecretRequired { .. }));
    }

    fn check(name: &str, kind: DependencyKind, target: &str) -> tandem_monitoring::DependencyCheckConfig {
        tandem_monitoring::DependencyCheckConfig {
            name: name.into(),
            kind,
            target: target.into(),
            timeout_seconds: None,
            critical: true,
        }
    }

    #[test]
    fn dependency_checks() {
        let mut cfg = Config::default();
        cfg.monitoring.checks = vec![
            check("db", DependencyKind::Tcp, "db.internal:5432"),
            check("cache_1", DependencyKind::Tcp, "[::1]:6379"),
            check("mm-api", DependencyKind::Http, "http://127.0.0.1:9000/health"),
        ];
        cfg.validate().unwrap();

        let cases = [
            (
                check("DB", DependencyKind::Tcp, "db:1"),
                "monitoring.checks[0].name: `DB` must match [a-z0-9_-]+",
            ),
            (check("", DependencyKind::Tcp, "db:1"), "monitoring.checks[0].name"),
            (
                check("memory", DependencyKind::Tcp, "db:1"),
                "monitoring.checks[0].name: `memory` is a built-in health component",
            ),
            (check("db", DependencyKind::Tcp, "db"), "monitoring.checks[0].target: must be host:port"),
            (check("db", DependencyKind::Tcp, "db:0"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, "db:70000"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, ":5432"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, "http://db:5432"), "monitoring.checks[0].target"),
            (
                check("web", DependencyKind::Http, "https://x.example/health"),
                "monitoring.checks[0].target: must be an http:// URL",
            ),
            (check("web", DependencyKind::Http, "x.example:80"), "monitoring.checks[0].target"),
        ];
        for (bad, expected) in cases {
            let err = problem(|c| c.monitoring.checks = vec![bad]);
            assert!(
                err.starts_with(&format!("invalid value for {expected}")),
                "got `{err}`, expected `{expected}`"
            );
        }
        let err = problem(|c| {
            c.monitoring.checks =
                vec![check("db", DependencyKind::Tcp, "a:1"), check("db", DependencyKind::Tcp, "b:1")]
        });
        assert_eq!(err, "invalid value for monitoring.checks[1].name: `db` is used by an earlier check");
        let err = problem(|c| {
            let mut zero = check("db", DependencyKind::Tcp, "a:1");
            zero.timeout_seconds = Some(0);
            c.monitoring.checks = vec![zero];
        });
        assert_eq!(err, "invalid value for monitoring.checks[0].timeout_seconds: must be at least 1 (got 0)");
    }

    #[test]
    fn the_monitoring_crates_own_rules_apply_too() {
        let err = problem(|c| c.monitoring.check_retries = u32::MAX);
        assert!(err.starts_with("invalid value for monitoring.check_retries: "), "{err}");
        // A key both sets of rules refuse is reported once.
        let err = problem(|c| c.monitoring.check_interval_seconds = 0);
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn masked_hides_every_secret_that_is_set() {
        let mut cfg = Config::default();
        cfg.auth.secret = SECRET.into();
        cfg.auth.api_keys = vec![API_KEY.into(), "second-key-0123456789".into()];
        cfg.monitoring.token = "operator-token".into();
        cfg.broker.url = "redis://:redis-pass@127.0.0.1:6379/0".into();
        let masked = cfg.masked();
        assert_eq!(masked.broker.url, "redis://:***@127.0.0.1:6379/0");
        assert_eq!(masked.auth.secret, "***");
        assert_eq!(masked.auth.api_keys, vec!["***", "***"]);
        assert_eq!(masked.monitoring.token, "***");
        assert_eq!(masked.server, cfg.server);
        let text = masked.to_toml_string().unwrap();
        assert!(
            !text.contains(SECRET)
                && !text.contains(API_KEY)
                && !text.contains("operator-token")
                && !text.contains("redis-pass"),
            "{text}"
        );
        // Unset secrets stay empty, so the output still shows development mode.
        let plain = Config::default().masked();
        assert_eq!(plain.auth.secret, "");
        assert_eq!(plain.monitoring.token, "");
        assert_eq!(plain.broker.url, "redis://127.0.0.1:6379");
    }

    #[test]
    fn toml_output_reads_back() {
        let mut cfg = Config::default();
        cfg.server.allowed_origins = vec!["https://a.example".into()];
        cfg.monitoring.checks = vec![check("db", DependencyKind::Tcp, "db:5432")];
        cfg.session.dual_delivery = DualDelivery::Preferred;
        let text = cfg.to_toml_string().unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn production_example_loads_with_its_env_vars() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.toml");
        let vars = [
            ("TANDEM_AUTH__SECRET", SECRET),
            ("TANDEM_AUTH__API_KEYS", "[\"backend-key-0123456789\"]"),
            ("TANDEM_MONITORING__TOKEN", "operator-token"),
        ];
        let cfg = Config::load_with_env(Some(&path), &env(&vars)).unwrap();
        assert_eq!(cfg.server.bind, "0.0.0.0:8080".parse().unwrap());
        assert!(!cfg.dev_mode());
        assert_eq!(cfg.auth.api_keys, vec![API_KEY]);
        assert_eq!(cfg.monitoring.token, "operator-token");
        assert_eq!(cfg.logging.file, "/var/log/tandem/tandem.log");
        assert!(!cfg.server.allowed_origins.is_empty());
        assert!(!cfg.monitoring.checks.is_empty());
        // Without the secret it refuses to start on its public bind.
        let err = Config::load_with_env(Some(&path), &env(&vars[1..])).unwrap_err();
        assert!(matches!(err, ConfigError::SecretRequired { .. }), "{err}");
    }
}
