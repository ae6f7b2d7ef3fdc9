//! Why a configuration could not be loaded: one line per problem, each
//! naming its key and, for unknown keys and bad values, the layer it came
//! from.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::{Metadata, Profile};

use super::load::ENV_METADATA_NAME;

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

    pub(super) fn from_problems(mut problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Many(problems)),
        }
    }

    /// `unknown_origin` says where an unknown key came from: figment tags it
    /// with the section's source, which may be another layer.
    pub(super) fn from_figment(
        err: figment::Error,
        unknown_origin: &dyn Fn(&[String]) -> String,
    ) -> ConfigError {
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
