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
    /// Format of the stdout lines; the file (`file`) is always JSON.
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `info,tandem_server=debug`.
    pub level: String,
    /// Also write the same lines to this file; empty = stdout only.
    pub file: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into(), file: String::new() }
    }
}

/// `logging.format`: how stdout lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `pretty` when stdout is a terminal, `json` otherwise (a pipe, a file,
    /// journald, a container log driver); see [`crate::logging::resolve`].
    Auto,
    /// One JSON object per line, for `jq` and log pipelines.
    Json,
    /// One human-readable line per event, for consoles.
    Pretty,
}

/// One invalid key: its full dotted path (`monitoring.checks[0].target`)
/// and what is wrong with its value.
///
/// The server prints each one as `invalid value for {key}: {message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Component names Tandem uses itself; a dependency check may not take them.
pub const RESERVED_COMPONENT_NAMES: [&str; 5] =
    ["connections", "memory", "activity", "performance", "broker"];

/// Most `monitoring.check_retries`: with the backoff doubling from 100 ms to
/// at most 30 s, ten retries already wait about 80 s in all.
pub const MAX_CHECK_RETRIES: u32 = 10;

/// Longest dependency-check name: it is a JSON key in `/health*` and a
/// Prometheus label value.
pub const MAX_CHECK_NAME_LEN: usize = 64;

/// Collects every problem of a config section, so one run reports all of
/// them. The server's sections use it too: one wording for each rule.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigProblem>);

impl Problems {
    pub fn invalid(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(key, message));
    }

    pub fn at_least<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T) {
        if value < min {
            self.invalid(key, format!("must be at least {min} (got {value})"));
        }
    }

    pub fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, max: T) {
        if value > max {
            self.invalid(key, format!("must be at most {max} (got {value})"));
        }
    }

    pub fn between<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, min: T, max: T) {
        if value < min {
            self.at_least(key, value, min);
        } else {
            self.at_most(key, value, max);
        }
    }

    /// Adds problems found elsewhere (another section's own check).
    pub fn extend(&mut self, more: impl IntoIterator<Item = ConfigProblem>) {
        self.0.extend(more);
    }

    pub fn into_vec(self) -> Vec<ConfigProblem> {
        self.0
    }
}

impl MonitoringConfig {
    /// Every invalid value of `[monitoring]`, each with its key, so a bad
    /// one stops start-up (or `check-config`) naming the key instead of
    /// surfacing later as a confusing health status. Empty = valid.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut p = Problems::default();
        p.at_least("monitoring.check_interval_seconds", self.check_interval_seconds, 1);
        p.at_least("monitoring.check_timeout_seconds", self.check_timeout_seconds, 1);
        p.at_most("monitoring.check_retries", self.check_retries, MAX_CHECK_RETRIES);
        p.at_least("monitoring.activity_warning_seconds", self.activity_warning_seconds, 1);
        self.memory_problems(&mut p);
        let mut names = std::collections::HashSet::new();
        for (i, check) in self.checks.iter().enumerate() {
            let key = |field: &str| format!("monitoring.checks[{i}].{field}");
            if let Some(message) = check.name_problem(&names) {
                p.invalid(key("name"), message);
            } else {
                names.insert(check.name.as_str());
            }
            if let Some(message) = check.target_problem() {
                p.invalid(key("target"), message);
            }
            if check.timeout_seconds == Some(0) {
                p.invalid(key("timeout_seconds"), "must be at least 1 (got 0)");
            }
        }
        p.0
    }

    /// `0 < warning < critical <= 100`; NaN fails every comparison, so it is
    /// refused too.
    fn memory_problems(&self, p: &mut Problems) {
        let (warning, critical) = (self.memory_warning_percent, self.memory_critical_percent);
        if !(warning > 0.0 && warning < critical) {
            p.invalid(
                "monitoring.memory_warning_percent",
                format!(
                    "must be above 0 and below monitoring.memory_critical_percent ({critical}) (got {warning})"
                ),
            );
        } else if warning >= 100.0 {
            // Only reachable while `critical` is itself above 100 (reported
            // below): say so now rather than on the next run.
            p.invalid(
                "monitoring.memory_warning_percent",
                format!("must be above 0 and below 100 (got {warning})"),
            );
        }
        if !(critical > 0.0 && critical <= 100.0) {
            p.invalid(
                "monitoring.memory_critical_percent",
                format!("must be above 0 and at most 100 (got {critical})"),
            );
        }
    }
}

impl DependencyCheckConfig {
    /// What is wrong with `name`, given the names of the valid checks
    /// before this one.
    fn name_problem(&self, earlier: &std::collections::HashSet<&str>) -> Option<String> {
        let name = self.name.as_str();
        let charset_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !charset_ok {
            Some(format!("`{name}` must match [a-z0-9_-]+"))
        } else if name.len() > MAX_CHECK_NAME_LEN {
            Some(format!("must be at most {MAX_CHECK_NAME_LEN} characters (got {})", name.len()))
        } else if RESERVED_COMPONENT_NAMES.contains(&name) {
            Some(format!("`{name}` is a built-in health component; pick another name"))
        } else if earlier.contains(name) {
            Some(format!("`{name}` is used by an earlier check"))
        } else {
            None
        }
    }

    fn target_problem(&self) -> Option<String> {
        let (ok, wanted) = match self.kind {
            DependencyKind::Tcp => (is_host_port(&self.target), "host:port, e.g. db.internal:5432"),
            DependencyKind::Http => {
                (is_http_url(&self.target), "an http:// URL, e.g. http://127.0.0.1:9000/health")
            }
        };
        (!ok).then(|| format!("must be {wanted} (got `{}`)", self.target))
    }
}

/// `host:port` with a non-zero port; an IPv6 host in brackets.
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

/// An `http://` URL with a host (the checker speaks plain HTTP only).
fn is_http_url(target: &str) -> bool {
    reqwest::Url::parse(target)
        .is_ok_and(|u| u.scheme() == "http" && u.host_str().is_some_and(|h| !h.is_empty()))
}

impl LoggingConfig {
    /// Every invalid value of `[logging]`, each with its key (`logging.*`).
    /// Empty = valid. Only `logging.level` can be checked without touching
    /// the file system; `logging.file` is opened (and refused, naming the
    /// key) when logging starts.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut p = Problems::default();
        if let Err(crate::logging::LoggingError::InvalidLevel { directive, source }) =
            crate::logging::filter(&self.level)
        {
            p.invalid("logging.level", format!("`{directive}` is not a filter directive ({source})"));
        }
        p.0
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

    /// The problems of `cfg` as the server prints them, one per line.
    fn lines(problems: &[ConfigProblem]) -> String {
        problems
            .iter()
            .map(|p| format!("invalid value for {}: {}", p.key, p.message))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Applies `change` to the defaults and returns the problems, one per
    /// line, as the server prints them.
    fn problem(change: impl FnOnce(&mut MonitoringConfig)) -> String {
        let mut cfg = MonitoringConfig::default();
        change(&mut cfg);
        let problems = cfg.problems();
        assert!(!problems.is_empty(), "the change must be refused");
        lines(&problems)
    }

    /// Asserts `change` is refused with one line starting with `expected`.
    fn refused(change: impl FnOnce(&mut MonitoringConfig), expected: &str) {
        let err = problem(change);
        assert!(err.starts_with(expected), "got `{err}`, expected `{expected}`");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(MonitoringConfig::default().problems(), vec![]);
        assert_eq!(LoggingConfig::default().problems(), vec![]);
    }

    #[test]
    fn bounds_name_the_key_and_the_value() {
        refused(
            |c| c.check_interval_seconds = 0,
            "invalid value for monitoring.check_interval_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.check_timeout_seconds = 0,
            "invalid value for monitoring.check_timeout_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.activity_warning_seconds = 0,
            "invalid value for monitoring.activity_warning_seconds: must be at least 1 (got 0)",
        );
        refused(
            |c| c.memory_warning_percent = 90.0,
            "invalid value for monitoring.memory_warning_percent: must be above 0 and below monitoring.memory_critical_percent (90) (got 90)",
        );
        refused(
            |c| c.memory_warning_percent = f64::NAN,
            "invalid value for monitoring.memory_warning_percent",
        );
        refused(|c| c.memory_warning_percent = 0.0, "invalid value for monitoring.memory_warning_percent");
        refused(
            |c| c.memory_critical_percent = 100.5,
            "invalid value for monitoring.memory_critical_percent: must be above 0 and at most 100 (got 100.5)",
        );
        refused(
            |c| c.check_retries = 11,
            "invalid value for monitoring.check_retries: must be at most 10 (got 11)",
        );
        // The edges themselves are fine.
        let edges = MonitoringConfig {
            check_interval_seconds: 1,
            check_timeout_seconds: 1,
            activity_warning_seconds: 1,
            check_retries: MAX_CHECK_RETRIES,
            memory_warning_percent: 99.9,
            memory_critical_percent: 100.0,
            ..Default::default()
        };
        assert_eq!(edges.problems(), vec![]);
    }

    #[test]
    fn a_critical_percent_above_100_reports_both_percentages() {
        let err = problem(|c| {
            c.memory_warning_percent = 120.0;
            c.memory_critical_percent = 150.0;
        });
        assert_eq!(
            err,
            "invalid value for monitoring.memory_warning_percent: must be above 0 and below 100 (got 120)\n\
             invalid value for monitoring.memory_critical_percent: must be above 0 and at most 100 (got 150)"
        );
    }

    #[test]
    fn dependency_checks() {
        let ok = MonitoringConfig {
            checks: vec![
                check("db", DependencyKind::Tcp, "db.internal:5432"),
                check("cache_1", DependencyKind::Tcp, "[::1]:6379"),
                check("mm-api", DependencyKind::Http, "http://127.0.0.1:9000/health"),
                check(&"a".repeat(MAX_CHECK_NAME_LEN), DependencyKind::Tcp, "db:1"),
            ],
            ..Default::default()
        };
        assert_eq!(ok.problems(), vec![]);

        let cases = [
            (
                check("DB", DependencyKind::Tcp, "db:1"),
                "monitoring.checks[0].name: `DB` must match [a-z0-9_-]+",
            ),
            (check("", DependencyKind::Tcp, "db:1"), "monitoring.checks[0].name"),
            (
                check(&"a".repeat(MAX_CHECK_NAME_LEN + 1), DependencyKind::Tcp, "db:1"),
                "monitoring.checks[0].name: must be at most 64 characters (got 65)",
            ),
            (
                check("memory", DependencyKind::Tcp, "db:1"),
                "monitoring.checks[0].name: `memory` is a built-in health component",
            ),
            (check("db", DependencyKind::Tcp, "db"), "monitoring.checks[0].target: must be host:port"),
            (check("db", DependencyKind::Tcp, "db:0"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, "db:70000"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, ":5432"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, "http://db:5432"), "monitoring.checks[0].target"),
            (check("db", DependencyKind::Tcp, "[not-v6]:5432"), "monitoring.checks[0].target"),
            (
                check("web", DependencyKind::Http, "https://x.example/health"),
                "monitoring.checks[0].target: must be an http:// URL",
            ),
            (check("web", DependencyKind::Http, "x.example:80"), "monitoring.checks[0].target"),
        ];
        for (bad, expected) in cases {
            let err = problem(|c| c.checks = vec![bad]);
            assert!(
                err.starts_with(&format!("invalid value for {expected}")),
                "got `{err}`, expected `{expected}`"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        let err = problem(|c| {
            c.checks = vec![check("db", DependencyKind::Tcp, "a:1"), check("db", DependencyKind::Tcp, "b:1")]
        });
        assert_eq!(err, "invalid value for monitoring.checks[1].name: `db` is used by an earlier check");
        let err = problem(|c| {
            let mut zero = check("db", DependencyKind::Tcp, "a:1");
            zero.timeout_seconds = Some(0);
            c.checks = vec![zero];
        });
        assert_eq!(err, "invalid value for monitoring.checks[0].timeout_seconds: must be at least 1 (got 0)");
    }

    #[test]
    fn every_reserved_name_is_refused() {
        for name in RESERVED_COMPONENT_NAMES {
            let err = problem(|c| c.checks = vec![check(name, DependencyKind::Tcp, "db:1")]);
            assert!(err.contains("is a built-in health component"), "{err}");
        }
    }

    #[test]
    fn retries_are_bounded() {
        let err = problem(|c| c.check_retries = u32::MAX);
        assert!(err.starts_with("invalid value for monitoring.check_retries: "), "{err}");
        // One key, one line.
        let err = problem(|c| c.check_interval_seconds = 0);
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn every_bad_key_is_reported_at_once() {
        let mut zero_timeout = check("db", DependencyKind::Tcp, "db:1");
        zero_timeout.timeout_seconds = Some(0);
        let cfg = MonitoringConfig {
            check_interval_seconds: 0,
            check_retries: 11,
            memory_warning_percent: 95.0,
            checks: vec![
                zero_timeout,
                check("Bad Name", DependencyKind::Http, "https://x/"),
                check("db", DependencyKind::Tcp, "db:1"),
            ],
            ..Default::default()
        };
        let keys: Vec<String> = cfg.problems().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "monitoring.check_interval_seconds",
                "monitoring.check_retries",
                "monitoring.memory_warning_percent",
                "monitoring.checks[0].timeout_seconds",
                "monitoring.checks[1].name",
                "monitoring.checks[1].target",
                "monitoring.checks[2].name",
            ]
        );
    }

    #[test]
    fn logging_level_must_parse() {
        let bad = LoggingConfig { level: "info,[[[".into(), ..Default::default() };
        let problems = bad.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "logging.level");
        assert!(problems[0].message.starts_with("`info,[[[` is not a filter directive"), "{problems:?}");
        for level in ["", "warn", "info,tandem_server=debug"] {
            let ok = LoggingConfig { level: level.into(), ..Default::default() };
            assert_eq!(ok.problems(), vec![], "{level}");
        }
    }

    #[test]
    fn log_format_names() {
        for (format, name) in
            [(LogFormat::Auto, "auto"), (LogFormat::Json, "json"), (LogFormat::Pretty, "pretty")]
        {
            let cfg: LoggingConfig = serde_json::from_str(&format!(r#"{{"format": "{name}"}}"#)).unwrap();
            assert_eq!(cfg.format, format);
        }
        assert_eq!(LoggingConfig::default().format, LogFormat::Auto);
    }
}
