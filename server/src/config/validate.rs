//! What makes a configuration valid: every rule of the server's sections,
//! checked in one pass that reports every broken key at once. The monitoring
//! crate checks its own sections (`MonitoringConfig::problems`).

use std::net::SocketAddr;

use tandem_monitoring::config::Problems;

use super::{BrokerKind, Config, ConfigError};
use crate::session::channels::{RESERVED_NAMESPACES, is_valid_namespace};

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
/// Publications kept per channel at most (`broker.history_size`): a
/// resume reads at most this many per channel.
pub const MAX_HISTORY: u64 = 100_000;
/// Smallest `server.max_request_head_bytes`: a request line and a token.
pub const MIN_REQUEST_HEAD_BYTES: usize = 1024;
/// Largest `server.max_request_head_bytes`: actix's HTTP/1 parser refuses
/// heads past 128 KiB on its own.
pub const MAX_REQUEST_HEAD_BYTES: usize = 128 * 1024;
/// Shortest `backend.secret`: an HMAC key shorter than this is guessable.
pub const MIN_BACKEND_SECRET_BYTES: usize = 16;
/// Longest wait for the backend (a minute): callers hold a slot meanwhile.
pub const MAX_BACKEND_WAIT_MS: u64 = 60_000;
/// Upper bound of the backend's caches, queues and caps.
pub const MAX_CACHE_ENTRIES: usize = 1_000_000;
/// Upper bound of `auth.leeway_seconds`: skew is corrected by NTP, not by
/// accepting expired tokens for minutes.
pub const MAX_AUTH_LEEWAY_SECONDS: u64 = 60;
/// Upper bound of `auth.token_ttl_seconds` (one year).
pub const MAX_TOKEN_TTL_SECONDS: u64 = 365 * 86_400;
/// Upper bound of `auth.max_revocations` (each entry is a few dozen bytes).
pub const MAX_REVOCATIONS: usize = 1_000_000;

impl Config {
    /// Checks every rule and reports every broken one, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |p: Problems| {
            p.into_vec().into_iter().map(|q| ConfigError::Invalid { key: q.key, reason: q.message })
        };
        let mut errors = Vec::new();
        let mut p = Problems::default();
        self.validate_server(&mut p);
        errors.extend(invalid(p));
        if self.auth.secret.is_empty() && !is_loopback(self.server.bind) {
            errors.push(ConfigError::SecretRequired { bind: self.server.bind });
        }
        let mut p = Problems::default();
        self.validate_auth(&mut p);
        self.validate_session(&mut p);
        self.validate_transport(&mut p);
        self.validate_channels(&mut p);
        self.validate_broker(&mut p);
        self.validate_backend(&mut p);
        p.extend(self.monitoring.problems());
        p.extend(self.logging.problems());
        errors.extend(invalid(p));
        ConfigError::from_problems(errors)
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
        let tls = &s.tls;
        match (tls.cert_file.trim().is_empty(), tls.key_file.trim().is_empty()) {
            (false, true) => p.invalid("server.tls.key_file", "must be set when server.tls.cert_file is"),
            (true, false) => p.invalid("server.tls.cert_file", "must be set when server.tls.key_file is"),
            _ => {}
        }
        p.between("server.tls.reload_interval_seconds", tls.reload_interval_seconds, 1, MAX_SECONDS);
        if tls.admin && !tls.enabled() {
            p.invalid("server.tls.admin", "needs server.tls.cert_file and server.tls.key_file");
        }
        if tls.admin && s.admin_bind.trim().is_empty() {
            p.invalid("server.tls.admin", "needs server.admin_bind");
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
        p.between("auth.leeway_seconds", a.leeway_seconds, 0, MAX_AUTH_LEEWAY_SECONDS);
        p.between("auth.expiry_warning_seconds", a.expiry_warning_seconds, 0, MAX_SECONDS);
        p.between("auth.expiry_grace_seconds", a.expiry_grace_seconds, 0, MAX_SECONDS);
        p.between("auth.max_revocations", a.max_revocations, 1, MAX_REVOCATIONS);
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
        p.between("broker.history_size", b.history_size, 0, MAX_HISTORY);
        p.between("broker.history_ttl_seconds", b.history_ttl_seconds, 1, MAX_SECONDS);
        if !b.sentinels.is_empty() && b.sentinel_master.is_empty() {
            p.invalid(
                "broker.sentinel_master",
                "is required with broker.sentinels (the master's name there)",
            );
        }
        for (key, list) in [("broker.sentinels", &b.sentinels), ("broker.redis_cluster", &b.redis_cluster)] {
            for s in list {
                if s.rsplit_once(':')
                    .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                {
                    p.invalid(key, format!("{s:?} is not host:port"));
                }
            }
        }
        if !b.sentinels.is_empty() && !b.redis_cluster.is_empty() {
            p.invalid(
                "broker.redis_cluster",
                "cannot be used with broker.sentinels (a Redis Cluster fails over by itself)",
            );
        }
        for (ns, h) in &b.history_namespaces {
            if !is_valid_namespace(ns) {
                p.invalid(
                    format!("broker.history_namespaces.{ns}"),
                    "is not a namespace ([a-z][a-z0-9_-]{0,31})",
                );
            }
            p.between(&format!("broker.history_namespaces.{ns}.size"), h.size, 0, MAX_HISTORY);
            p.between(&format!("broker.history_namespaces.{ns}.ttl_seconds"), h.ttl_seconds, 1, MAX_SECONDS);
        }
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
        if b.kind == BrokerKind::Redis && b.cluster_key.len() < MIN_SECRET_BYTES {
            // Its length only: a secret never appears in a message.
            p.invalid(
                "broker.cluster_key",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes, the same on every node, when broker.kind = \"redis\" (got {}): nodes sign what they send through Redis with it",
                    b.cluster_key.len()
                ),
            );
        }
    }

    fn validate_backend(&self, p: &mut Problems) {
        let b = &self.backend;
        for (key, url) in [
            ("backend.command_url", &b.command_url),
            ("backend.connect_url", &b.connect_url),
            ("backend.subscribe_url", &b.subscribe_url),
            ("backend.events_url", &b.events_url),
        ] {
            if let Err(reason) = check_backend_url(url) {
                p.invalid(key, reason);
            }
        }
        if !b.secret.is_empty() && b.secret.len() < MIN_BACKEND_SECRET_BYTES {
            p.invalid(
                "backend.secret",
                format!(
                    "must be empty (unsigned) or at least {MIN_BACKEND_SECRET_BYTES} bytes (got {})",
                    b.secret.len()
                ),
            );
        }
        p.between("backend.timeout_ms", b.timeout_ms, 1, MAX_BACKEND_WAIT_MS);
        p.between("backend.hook_timeout_ms", b.hook_timeout_ms, 1, MAX_BACKEND_WAIT_MS);
        p.at_most("backend.hook_cache_seconds", b.hook_cache_seconds, MAX_SECONDS);
        p.at_most("backend.hook_cache_size", b.hook_cache_size, MAX_CACHE_ENTRIES);
        p.between("backend.max_in_flight", b.max_in_flight, 1, MAX_CACHE_ENTRIES);
        p.between("backend.max_in_flight_per_player", b.max_in_flight_per_player, 1, b.max_in_flight.max(1));
        p.at_least("backend.commands_per_second", b.commands_per_second, 1);
        p.at_least("backend.commands_burst", b.commands_burst, 1);
        p.between("backend.max_response_bytes", b.max_response_bytes, MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES);
        // Each command in flight holds a cache entry: a smaller cache could
        // not remember them all.
        p.between("backend.reply_cache_size", b.reply_cache_size, b.max_in_flight_per_player, 4096);
        p.between("backend.reply_cache_seconds", b.reply_cache_seconds, 1, MAX_SECONDS);
        p.at_most("backend.pool_idle_per_host", b.pool_idle_per_host, 4096);
        p.between("backend.events_queue_size", b.events_queue_size, 1, MAX_CACHE_ENTRIES);
        p.between("backend.events_concurrency", b.events_concurrency, 1, 256);
        p.between("backend.events_retry_max_ms", b.events_retry_max_ms, 100, MAX_SECONDS * 1000);
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
        for (i, ns) in self.channels.presence_events.iter().enumerate() {
            if !is_valid_namespace(ns) {
                let key = format!("channels.presence_events[{i}]");
                p.invalid(key, format!("`{ns}` is not a namespace ([a-z][a-z0-9_-]{{0,31}})"));
            }
        }
        p.at_most("channels.presence_grace_seconds", self.channels.presence_grace_seconds, MAX_SECONDS);
    }
}

/// A backend URL: empty (off) or `http://host[:port]/path`. Plain HTTP
/// only: game backends sit beside Tandem on a private network, and Tandem
/// carries no TLS client.
fn check_backend_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "http" && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(u) if u.scheme() == "https" => {
            Err("must be an http:// URL (Tandem calls its backend over plain HTTP on a private network)"
                .into())
        }
        _ => Err("must be empty or an http://host[:port]/path URL".into()),
    }
}

fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// An `allowed_origins` entry must be `*` or exactly what a browser sends in
/// `Origin` (`scheme://host[:port]`, lowercase, no default port, no path),
/// because origins are compared as strings.
pub(super) fn check_origin(origin: &str) -> Result<(), String> {
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
