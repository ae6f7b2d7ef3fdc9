//! The `tandem` command line: `serve` (the default), `token` and
//! `check-config`.
//!
//! `main` parses [`Cli`], hands it to [`execute`], and runs the server only
//! when `execute` returns `None` (`serve`). Everything here writes to the
//! streams it is given, so it is tested without a process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::{AuthError, Authenticator, is_valid_player_id};
use crate::config::{Config, ConfigError};
use crate::session::channels::is_valid_namespace;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a runtime failure (e.g. stdout closed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a bad configuration or bad arguments (as clap uses for
/// usage errors).
pub const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem realtime server: WebSocket and SSE to the same player sessions",
    after_help = "Configuration: built-in defaults, then --config FILE, then environment variables \
                  TANDEM_<SECTION>__<KEY> (e.g. TANDEM_SERVER__BIND=0.0.0.0:8080)."
)]
pub struct Cli {
    /// TOML file layered over the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The command to run: `serve` when none was given.
    pub fn command(&self) -> Command {
        self.command.clone().unwrap_or(Command::Serve)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Print a client token (JWT) signed with auth.secret.
    Token {
        /// Player id (the token's `sub`): [A-Za-z0-9_.@-]{1,64}.
        #[arg(long, value_name = "NAME")]
        player: String,
        /// Lifetime in seconds [default: auth.token_ttl_seconds].
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// Only these namespaces or channels may be subscribed (comma-separated;
        /// "" = only the player's own channel).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Publish only into these namespaces or channels, instead of
        /// channels.client_publish (comma-separated; "" = nowhere).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        publish: Option<Vec<String>>,
    },
    /// Validate the configuration and print it as TOML, secrets masked.
    CheckConfig,
}

/// Why a command failed. Displays as the message printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "auth.secret is not set, so there is no key to sign tokens with; \
         set it in the config file or TANDEM_AUTH__SECRET"
    )]
    NoSecret,
    #[error("invalid --player `{0}`: must match [A-Za-z0-9_.@-]{{1,64}}")]
    InvalidPlayer(String),
    #[error("invalid --ttl: must be at least 1 second")]
    InvalidTtl,
    #[error("invalid {flag} entry `{entry}`: {reason}")]
    InvalidClaim { flag: &'static str, entry: String, reason: &'static str },
    #[error("cannot mint the token: {0}")]
    Mint(AuthError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Output(_) | CliError::Mint(_) => EXIT_FAILURE,
            _ => EXIT_CONFIG,
        }
    }
}

/// `tandem token`: a token for `player`, valid for `ttl_seconds` (default
/// `auth.token_ttl_seconds`).
pub fn run_token(
    cfg: &Config,
    player: &str,
    ttl_seconds: Option<u64>,
    channels: Option<Vec<String>>,
    publish: Option<Vec<String>>,
) -> Result<String, CliError> {
    if cfg.auth.secret.is_empty() {
        return Err(CliError::NoSecret);
    }
    if !is_valid_player_id(player) {
        return Err(CliError::InvalidPlayer(player.to_owned()));
    }
    let ttl = ttl_seconds.unwrap_or(cfg.auth.token_ttl_seconds);
    if ttl == 0 {
        return Err(CliError::InvalidTtl);
    }
    let channels = claim_list("--channels", channels, false)?;
    let publish = claim_list("--publish", publish, true)?;
    Authenticator::new(&cfg.auth)
        .mint(player, Duration::from_secs(ttl), channels, publish)
        .map_err(CliError::Mint)
}

/// Drops empty entries (so `--channels ""` is an empty list) and checks the
/// rest are namespaces or channel names.
fn claim_list(
    flag: &'static str,
    list: Option<Vec<String>>,
    publish: bool,
) -> Result<Option<Vec<String>>, CliError> {
    let Some(list) = list else { return Ok(None) };
    let list: Vec<String> = list.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
    for entry in &list {
        let namespace = entry.split_once(':').map_or(entry.as_str(), |(ns, _)| ns);
        if !is_namespace_or_channel(entry) {
            return Err(CliError::InvalidClaim {
                flag,
                entry: entry.clone(),
                reason: "must be a namespace ([a-z][a-z0-9_-]{0,31}) or a channel (namespace:name)",
            });
        }
        if publish && matches!(namespace, "player" | "admin") {
            return Err(CliError::InvalidClaim {
                flag,
                entry: entry.clone(),
                reason: "clients can never publish into player: or admin:",
            });
        }
    }
    Ok(Some(list))
}

/// `room` or `room:tavern` (the name: 1–96 of `[A-Za-z0-9_.:@-]`).
fn is_namespace_or_channel(entry: &str) -> bool {
    match entry.split_once(':') {
        None => is_valid_namespace(entry),
        Some((ns, name)) => {
            is_valid_namespace(ns)
                && !name.is_empty()
                && name.len() <= 96
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
        }
    }
}

/// `tandem check-config`: the effective configuration as TOML with secrets
/// masked, or the problems found.
pub fn run_check_config(cfg: Result<Config, ConfigError>) -> Result<String, CliError> {
    let cfg = cfg?;
    let mode = if cfg.dev_mode() { "development mode (no auth.secret)" } else { "auth.secret set" };
    let body = cfg.masked().to_toml_string()?;
    Ok(format!("# Tandem effective configuration: valid, {mode}; secrets shown as \"***\".\n\n{body}"))
}

/// The whole `tandem` command line, for a `main` to return: parse the
/// arguments, run `token` or `check-config`, or load the configuration,
/// start logging, call `started` (logging is up) and serve, with `handler`
/// answering commands in process when given (a game that links Tandem).
pub fn main(
    handler: Option<std::sync::Arc<dyn crate::backend::CommandHandler>>,
    started: impl FnOnce(),
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cli = Cli::parse();
    if let Some(code) = execute(&cli, &mut std::io::stdout(), &mut std::io::stderr()) {
        return ExitCode::from(code);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            report_error(&e, &mut std::io::stderr());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let _logs = match tandem_monitoring::logging::init(&config.logging) {
        Ok(guard) => guard,
        Err(e) => {
            report_error(&e, &mut std::io::stderr());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    started();
    match actix_web::rt::System::new().block_on(crate::server::run_with(config, handler)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(crate::server::ServeError::Config(e)) => {
            tracing::error!(error = %e, "Tandem failed");
            report_error(&e, &mut std::io::stderr());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            tracing::error!(error = %e, "Tandem failed");
            ExitCode::FAILURE
        }
    }
}

/// Runs `token` and `check-config` and returns their exit code; `None` for
/// `serve`, which the caller runs. Loads the configuration with the process
/// environment.
pub fn execute(cli: &Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Option<u8> {
    execute_with(cli, Config::load, stdout, stderr)
}

/// [`execute`] with the configuration loader given (tests pass one that
/// does not read the process environment).
pub fn execute_with(
    cli: &Cli,
    load: impl Fn(Option<&Path>) -> Result<Config, ConfigError>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Option<u8> {
    let file = cli.config.as_deref();
    let result = match cli.command() {
        Command::Serve => return None,
        Command::Token { player, ttl, channels, publish } => load(file)
            .map_err(CliError::from)
            .and_then(|cfg| run_token(&cfg, &player, ttl, channels, publish)),
        Command::CheckConfig => run_check_config(load(file)),
    };
    let outcome = result.and_then(|text| writeln!(stdout, "{}", text.trim_end()).map_err(CliError::from));
    Some(match outcome {
        Ok(()) => EXIT_OK,
        Err(err) => {
            report_error(&err, stderr);
            err.exit_code()
        }
    })
}

/// Prints `error: <line>` to `stderr` for each line of `err` (a
/// configuration error has one line per problem).
pub fn report_error(err: &dyn std::fmt::Display, stderr: &mut dyn Write) {
    for line in err.to_string().lines() {
        // Nothing better to do when stderr itself is gone.
        let _ = writeln!(stderr, "error: {line}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::AuthConfig;

    const SECRET: &str = "cli-test-secret-cli-test-secret-0123";

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    fn cfg_with_secret() -> Config {
        Config { auth: AuthConfig { secret: SECRET.into(), ..AuthConfig::default() }, ..Config::default() }
    }

    /// Loads with no `TANDEM_*` variable, in a figment `Jail` that restores
    /// the environment after.
    #[allow(clippy::result_large_err)] // figment::Jail's own closure type
    fn no_env_loader(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            out = Some(Config::load(file));
            Ok(())
        });
        out.expect("the jail ran the closure")
    }

    fn run(args: &[&str]) -> (Option<u8>, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = execute_with(&parse(args), no_env_loader, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn serve_is_the_default() {
        let cli = parse(&["tandem"]);
        assert_eq!(cli.command(), Command::Serve);
        assert_eq!(cli.config, None);
        let cli = parse(&["tandem", "--config", "x.toml"]);
        assert_eq!(cli.command(), Command::Serve);
        assert_eq!(cli.config.as_deref(), Some(Path::new("x.toml")));
        assert_eq!(parse(&["tandem", "serve", "-c", "y.toml"]).config.as_deref(), Some(Path::new("y.toml")));
        assert_eq!(run(&["tandem"]).0, None);
    }

    #[test]
    fn token_arguments() {
        let cli = parse(&[
            "tandem",
            "token",
            "--player",
            "alice",
            "--ttl",
            "60",
            "--channels",
            "room,admin:ops",
            "--publish",
            "party",
            "--config",
            "p.toml",
        ]);
        assert_eq!(cli.config.as_deref(), Some(Path::new("p.toml")));
        assert_eq!(
            cli.command(),
            Command::Token {
                player: "alice".into(),
                ttl: Some(60),
                channels: Some(vec!["room".into(), "admin:ops".into()]),
                publish: Some(vec!["party".into()]),
            }
        );
        let cli = parse(&["tandem", "token", "--player", "bob"]);
        assert_eq!(
            cli.command(),
            Command::Token { player: "bob".into(), ttl: None, channels: None, publish: None }
        );
        assert!(Cli::try_parse_from(["tandem", "token"]).is_err(), "--player is required");
        assert!(Cli::try_parse_from(["tandem", "token", "--player", "a", "--ttl", "-1"]).is_err());
        assert!(Cli::try_parse_from(["tandem", "frobnicate"]).is_err());
    }

    #[test]
    fn check_config_arguments() {
        let cli = parse(&["tandem", "check-config", "--config", "c.toml"]);
        assert_eq!(cli.command(), Command::CheckConfig);
        assert_eq!(cli.config.as_deref(), Some(Path::new("c.toml")));
    }

    #[test]
    fn token_is_verifiable_with_the_config_secret() {
        let cfg = cfg_with_secret();
        let token =
            run_token(&cfg, "alice", Some(120), Some(vec!["room".into(), "".into()]), Some(vec![])).unwrap();
        let id = Authenticator::new(&cfg.auth).verify(Some(&token), None).unwrap().0;
        assert_eq!(id.player_id, "alice");
        assert_eq!(id.channels, Some(vec!["room".to_owned()]));
        assert_eq!(id.publish, Some(vec![]));
        let claims = jsonwebtoken::dangerous::insecure_decode::<crate::auth::Claims>(&token).unwrap().claims;
        assert_eq!(claims.exp - claims.iat, 120);
        let default_ttl = run_token(&cfg, "alice", None, None, None).unwrap();
        let claims =
            jsonwebtoken::dangerous::insecure_decode::<crate::auth::Claims>(&default_ttl).unwrap().claims;
        assert_eq!(claims.exp - claims.iat, cfg.auth.token_ttl_seconds);
    }

    #[test]
    fn token_refusals() {
        let cfg = cfg_with_secret();
        assert!(matches!(run_token(&Config::default(), "alice", None, None, None), Err(CliError::NoSecret)));
        assert!(matches!(run_token(&cfg, "a b", None, None, None), Err(CliError::InvalidPlayer(_))));
        assert!(matches!(run_token(&cfg, "alice", Some(0), None, None), Err(CliError::InvalidTtl)));
        assert!(matches!(
            run_token(&cfg, "alice", None, Some(vec!["Room".into()]), None),
            Err(CliError::InvalidClaim { flag: "--channels", .. })
        ));
        assert!(matches!(
            run_token(&cfg, "alice", None, None, Some(vec!["admin".into()])),
            Err(CliError::InvalidClaim { flag: "--publish", .. })
        ));
        assert!(matches!(
            run_token(&cfg, "alice", None, None, Some(vec!["player:bob".into()])),
            Err(CliError::InvalidClaim { flag: "--publish", .. })
        ));
    }

    #[test]
    fn token_without_secret_exits_2_with_a_clear_message() {
        let (code, out, err) = run(&["tandem", "token", "--player", "alice"]);
        assert_eq!(code, Some(EXIT_CONFIG));
        assert_eq!(out, "");
        assert!(err.starts_with("error: auth.secret is not set"), "{err}");
    }

    #[test]
    fn token_command_prints_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, format!("[auth]\nsecret = \"{SECRET}\"\n")).unwrap();
        let (code, out, err) =
            run(&["tandem", "token", "--player", "alice", "--config", path.to_str().unwrap()]);
        assert_eq!((code, err.as_str()), (Some(EXIT_OK), ""));
        assert_eq!(out.lines().count(), 1);
        let token = out.trim_end();
        assert_eq!(token.split('.').count(), 3, "{token}");
        let auth = Authenticator::new(&cfg_with_secret().auth);
        assert_eq!(auth.verify(Some(token), None).unwrap().0.player_id, "alice");
    }

    #[test]
    fn check_config_prints_masked_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!("[auth]\nsecret = \"{SECRET}\"\napi_keys = [\"backend-key-0123456789\"]\n[monitoring]\ntoken = \"operator\"\n"),
        )
        .unwrap();
        let (code, out, err) = run(&["tandem", "check-config", "--config", path.to_str().unwrap()]);
        assert_eq!((code, err.as_str()), (Some(EXIT_OK), ""));
        assert!(!out.contains(SECRET) && !out.contains("backend-key") && !out.contains("operator"), "{out}");
        // The output is TOML that reads back into a Config.
        let back: Config = toml::from_str(&out).unwrap();
        assert_eq!(back.auth.secret, "***");
        assert_eq!(back.auth.api_keys, vec!["***".to_owned()]);
        assert_eq!(back.monitoring.token, "***");
        assert_eq!(back.server, Config::default().server);
    }

    #[test]
    fn check_config_reports_each_problem_and_exits_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[transport]\noutbound_queue_size = 0\nmax_message_bytes = 1\n").unwrap();
        let (code, out, err) = run(&["tandem", "check-config", "--config", path.to_str().unwrap()]);
        assert_eq!(code, Some(EXIT_CONFIG));
        assert_eq!(out, "");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert!(lines.iter().all(|l| l.starts_with("error: invalid value for transport.")), "{err}");
        assert!(err.contains("transport.outbound_queue_size: must be at least 1 (got 0)"), "{err}");

        let (code, _, err) = run(&["tandem", "check-config", "--config", "/nonexistent/tandem.toml"]);
        assert_eq!(code, Some(EXIT_CONFIG));
        assert!(err.starts_with("error: cannot read config file /nonexistent/tandem.toml"), "{err}");
    }

    #[test]
    fn check_config_defaults_is_development_mode() {
        let (code, out, _) = run(&["tandem", "check-config"]);
        assert_eq!(code, Some(EXIT_OK));
        assert!(out.starts_with("# Tandem effective configuration: valid, development mode"), "{out}");
        let back: Config = toml::from_str(&out).unwrap();
        assert_eq!(back, Config::default());
    }
}
