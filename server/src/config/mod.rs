//! Tandem's configuration: the sections, how they are layered and what makes
//! them valid.
//!
//! Layers, later ones win: the built-in `config/default.toml` (compiled in, so
//! the binary runs anywhere with no file), the file given with `--config`, then
//! environment variables `TANDEM_<SECTION>__<KEY>` ([`load`]). Every section
//! denies unknown keys so a typo stops start-up instead of silently keeping a
//! default, and [`Config::validate`] names the key of every bad value, all at
//! once ([`validate`]). The `[monitoring]` and `[logging]` sections belong to
//! the monitoring crate, which owns their rules.

mod error;
mod load;
mod sections;
mod validate;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use tandem_monitoring::{LoggingConfig, MonitoringConfig};

pub use error::ConfigError;
pub use load::{DEFAULT_TOML, ENV_PREFIX, ENV_SEPARATOR};
pub use sections::{
    AuthConfig, BackendConfig, BrokerConfig, BrokerKind, ChannelsConfig, DualDelivery, HookFailure,
    ServerConfig, SessionConfig, TlsConfig, TransportConfig,
};
pub use validate::{
    MAX_HISTORY_SIZE, MAX_MESSAGE_BYTES, MAX_OUTBOUND_QUEUE_SIZE, MAX_REQUEST_HEAD_BYTES, MAX_SECONDS,
    MAX_TOKEN_TTL_SECONDS, MAX_WORKERS, MIN_API_KEY_CHARS, MIN_MESSAGE_BYTES, MIN_REQUEST_HEAD_BYTES,
    MIN_SECRET_BYTES,
};

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
    pub backend: BackendConfig,
}

impl Config {
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
        mask(&mut copy.backend.secret);
        mask(&mut copy.broker.cluster_key);
        copy
    }

    /// The configuration as TOML (print [`Config::masked`], not this).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }
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
