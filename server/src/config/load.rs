//! The layers, later ones win: built-in defaults, the `--config` file, then
//! the process environment through figment's `Env` provider. Each layer is
//! named the way an operator knows it, so an error says where a bad key came
//! from ("config file /etc/tandem.toml", "environment variable
//! TANDEM_SERVER__BIND").

use std::path::Path;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{Config, ConfigError};

/// The built-in defaults: also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Environment variables starting with this (any case) override the files.
pub const ENV_PREFIX: &str = "TANDEM_";

/// Separates the section from the key in an environment variable name
/// (`TANDEM_SERVER__BIND` → `server.bind`); a single `_` belongs to the key.
pub const ENV_SEPARATOR: &str = "__";

/// How error messages name the environment layer.
pub(super) const ENV_METADATA_NAME: &str = "environment variable";

impl Config {
    /// Loads the layered configuration, with the process environment as the
    /// last layer, and validates it.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new()
            .merge(Layer::new(Toml::string(DEFAULT_TOML), Metadata::named("built-in defaults")));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
            figment =
                figment.merge(Layer::new(Toml::string(&text), Metadata::named("config file").source(path)));
        }
        check_env_names()?;
        let env = Layer::new(
            Env::prefixed(ENV_PREFIX).split(ENV_SEPARATOR),
            Metadata::named(ENV_METADATA_NAME).interpolater(|_: &Profile, keys: &[&str]| env_var_name(keys)),
        );
        let env_keys = env.data().ok().and_then(|mut m| m.remove(&Profile::Default)).unwrap_or_default();
        let unknown_origin = |path: &[String]| {
            if contains(&env_keys, path) {
                format!("{ENV_METADATA_NAME} {}", env_var_name(path))
            } else if let Some(file) = file {
                // The built-in defaults hold no unknown key (tested), so the file does.
                format!("config file {}", file.display())
            } else {
                "built-in defaults".to_owned()
            }
        };
        figment = figment.merge(env);
        let config: Config = figment.extract().map_err(|e| ConfigError::from_figment(e, &unknown_origin))?;
        config.validate()?;
        Ok(config)
    }
}

/// A `TANDEM_` variable with an empty section or key (`TANDEM_SERVER__`)
/// names nothing: say so rather than let it vanish.
fn check_env_names() -> Result<(), ConfigError> {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let has_prefix = name.get(..ENV_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX));
        let Some(rest) = name.get(ENV_PREFIX.len()..).filter(|_| has_prefix) else {
            continue;
        };
        if rest.trim().split(ENV_SEPARATOR).any(str::is_empty) {
            return Err(ConfigError::Parse {
                key: String::new(),
                message: format!(
                    "environment variable {name} does not name a key (use {ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>)"
                ),
                origin: None,
            });
        }
    }
    Ok(())
}

/// Whether `dict` sets `path` (or a key below it).
fn contains(dict: &Dict, path: &[String]) -> bool {
    let mut dict = dict;
    for (i, key) in path.iter().enumerate() {
        match dict.get(key) {
            None => return false,
            Some(Value::Dict(_, inner)) => dict = inner,
            Some(_) => return i + 1 == path.len(),
        }
    }
    true
}

/// `["server", "bind"]` → `TANDEM_SERVER__BIND`.
fn env_var_name<S: AsRef<str>>(path: &[S]) -> String {
    let upper: Vec<String> = path.iter().map(|k| k.as_ref().to_ascii_uppercase()).collect();
    format!("{ENV_PREFIX}{}", upper.join(ENV_SEPARATOR))
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
