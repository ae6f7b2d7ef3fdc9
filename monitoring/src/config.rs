//! The `[monitoring]` and `[logging]` sections of Tandem's configuration.
//!
//! They live here (not in the server) so the monitoring crate can be used and
//! tested on its own; the server embeds them in its `Config`.

use serde::{Deserialize, Serialize};

/// `[monitoring]`: operator surface and background health checks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Operator token for `/monitoring/*` and `/metrics`; empty = open.
    pub token: String,
    pub check_interval_seconds: u64,
    pub check_timeout_seconds: u64,
    pub check_retries: u32,
    /// `activity` turns degraded after this long without client activity.
    pub activity_warning_seconds: u64,
    /// System memory use (percent) at which `memory` turns degraded.
    pub memory_warning_percent: f64,
    /// System memory use (percent) at which `memory` turns unhealthy.
    pub memory_critical_percent: f64,
    /// Process RSS (MiB) at which `memory` turns degraded; 0 = no limit.
    pub max_rss_mb: u64,
    /// File keeping cumulative uptime and the restart count across
    /// restarts (`tandem_restarts_total`, `tandem_uptime_total_seconds`);
    /// empty = not kept.
    pub state_file: String,
    /// Dependency checks (`[[monitoring.checks]]`).
    pub checks: Vec<DependencyCheckConfig>,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            check_interval_seconds: 30,
            check_timeout_seconds: 5,
            check_retries: 3,
            activity_warning_seconds: 600,
            memory_warning_percent: 80.0,
            memory_critical_percent: 90.0,
            max_rss_mb: 0,
            state_file: String::new(),
            checks: Vec::new(),
        }
    }
}

/// One `[[monitoring.checks]]` entry: a dependency probed in the background.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DependencyCheckConfig {
    /// Component name in `/health*` (`[a-z0-9_-]+`, unique).
    pub name: String,
    pub kind: DependencyKind,
    /// `host:port` for `tcp`; an `http://` URL for `http` (2xx = healthy).
    pub target: String,
    /// Per-attempt timeout; defaults to `monitoring.check_timeout_seconds`.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// A failing critical dependency makes the service unhealthy; a
    /// non-critical one only degraded.
    #[serde(default = "default_true")]
    pub critical: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependencyKind {
    Tcp,
    Http,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `info,tandem_server=debug`.
    pub level: String,
    /// Also write the same lines to this file; empty = stdout only.
    pub file: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { format: LogFormat::Json, level: "info".into(), file: String::new() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A `[monitoring]` value that cannot work, with the key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MonitoringConfigError {
    /// Full key, e.g. `monitoring.checks[1].target`.
    pub key: String,
    pub message: String,
}

/// Component names Tandem uses itself; a dependency check may not take them.
pub const RESERVED_COMPONENT_NAMES: [&str; 5] =
    ["connections", "memory", "activity", "performance", "broker"];

fn invalid(key: impl Into<String>, message: impl Into<String>) -> MonitoringConfigError {
    MonitoringConfigError { key: key.into(), message: message.into() }
}

impl MonitoringConfig {
    /// Checks every value, so a bad one stops start-up with its key instead
    /// of surfacing later as a confusing health status.
    pub fn validate(&self) -> Result<(), MonitoringConfigError> {
        if self.check_interval_seconds == 0 {
            return Err(invalid("monitoring.check_interval_seconds", "must be at least 1"));
        }
        if self.check_timeout_seconds == 0 {
            return Err(invalid("monitoring.check_timeout_seconds", "must be at least 1"));
        }
        if self.check_retries > 10 {
            return Err(invalid("monitoring.check_retries", "must be at most 10"));
        }
        let percent = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 100.0 {
                Ok(())
            } else {
                Err(invalid(key, format!("must be a percentage in (0, 100], got {v}")))
            }
        };
        percent("monitoring.memory_warning_percent", self.memory_warning_percent)?;
        percent("monitoring.memory_critical_percent", self.memory_critical_percent)?;
        if self.memory_warning_percent > self.memory_critical_percent {
            return Err(invalid(
                "monitoring.memory_warning_percent",
                "must not exceed monitoring.memory_critical_percent",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, check) in self.checks.iter().enumerate() {
            check.validate(&format!("monitoring.checks[{i}]"))?;
            if !seen.insert(check.name.as_str()) {
                return Err(invalid(
                    format!("monitoring.checks[{i}].name"),
                    format!("duplicate name `{}`", check.name),
                ));
            }
        }
        Ok(())
    }
}

impl DependencyCheckConfig {
    fn validate(&self, prefix: &str) -> Result<(), MonitoringConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(invalid(
                format!("{prefix}.name"),
                format!("`{}` must match [a-z0-9_-]{{1,64}}", self.name),
            ));
        }
        if RESERVED_COMPONENT_NAMES.contains(&self.name.as_str()) {
            return Err(invalid(
                format!("{prefix}.name"),
                format!("`{}` is a built-in component", self.name),
            ));
        }
        if self.timeout_seconds == Some(0) {
            return Err(invalid(format!("{prefix}.timeout_seconds"), "must be at least 1"));
        }
        let target_key = format!("{prefix}.target");
        match self.kind {
            DependencyKind::Tcp => {
                let port = self
                    .target
                    .rsplit_once(':')
                    .filter(|(host, _)| !host.is_empty())
                    .map(|(_, p)| p.parse::<u16>());
                match port {
                    Some(Ok(p)) if p > 0 => Ok(()),
                    _ => Err(invalid(target_key, format!("`{}` must be host:port", self.target))),
                }
            }
            DependencyKind::Http => match reqwest::Url::parse(&self.target) {
                Ok(url) if url.scheme() == "http" && url.host_str().is_some() => Ok(()),
                Ok(_) => Err(invalid(target_key, format!("`{}` must be an http:// URL", self.target))),
                Err(e) => Err(invalid(target_key, format!("`{}` is not a URL: {e}", self.target))),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check(name: &str, kind: DependencyKind, target: &str) -> DependencyCheckConfig {
        DependencyCheckConfig {
            name: name.into(),
            kind,
            target: target.into(),
            timeout_seconds: None,
            critical: true,
        }
    }

    fn with_checks(checks: Vec<DependencyCheckConfig>) -> MonitoringConfig {
        MonitoringConfig { checks, ..Default::default() }
    }

    #[test]
    fn defaults_are_valid() {
        MonitoringConfig::default().validate().unwrap();
        let ok = with_checks(vec![
            check("db", DependencyKind::Tcp, "127.0.0.1:5432"),
            check("api", DependencyKind::Http, "http://localhost:8000/health"),
        ]);
        ok.validate().unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let key = |cfg: MonitoringConfig| cfg.validate().unwrap_err().key;
        assert_eq!(
            key(MonitoringConfig { check_interval_seconds: 0, ..Default::default() }),
            "monitoring.check_interval_seconds"
        );
        assert_eq!(
            key(MonitoringConfig { memory_warning_percent: 95.0, ..Default::default() }),
            "monitoring.memory_warning_percent"
        );
        assert_eq!(
            key(with_checks(vec![check("Bad Name", DependencyKind::Tcp, "h:1")])),
            "monitoring.checks[0].name"
        );
        assert_eq!(
            key(with_checks(vec![check("memory", DependencyKind::Tcp, "h:1")])),
            "monitoring.checks[0].name"
        );
        assert_eq!(
            key(with_checks(vec![check("db", DependencyKind::Tcp, "nohost")])),
            "monitoring.checks[0].target"
        );
        assert_eq!(
            key(with_checks(vec![check("db", DependencyKind::Http, "https://x/")])),
            "monitoring.checks[0].target"
        );
        assert_eq!(
            key(with_checks(vec![
                check("db", DependencyKind::Tcp, "h:1"),
                check("db", DependencyKind::Tcp, "h:2")
            ])),
            "monitoring.checks[1].name"
        );
        let err = with_checks(vec![check("db", DependencyKind::Tcp, "h:0")]).validate().unwrap_err();
        assert!(err.to_string().starts_with("monitoring.checks[0].target: "), "{err}");
    }
}
