//! Log output: one JSON object per line (or a human format for consoles),
//! to stdout and optionally to a file.
//!
//! `logging.format` picks the stdout format: `json`, `pretty`, or `auto`
//! (the default: pretty when stdout is a terminal, JSON otherwise, see
//! [`resolve`]). The file (`logging.file`) always gets JSON lines, whatever
//! stdout shows.
//!
//! JSON lines carry `timestamp`, `level`, `target`, `message` and every
//! event field at the top level (not nested under `fields`), so analysts'
//! recipes such as `grep ERROR tandem.log | jq -r .error_type` work as
//! written. Writing happens on background threads so logging never blocks
//! a request; the file writer never drops lines, stdout may under extreme
//! pressure rather than stall the server.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use tracing::Dispatch;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LoggingConfig};

/// Keeps the background writers alive; dropping it flushes pending lines.
/// Hold it until the process exits.
#[must_use = "dropping the guard stops log output"]
pub struct LoggingGuard {
    _guards: Vec<WorkerGuard>,
}

impl std::fmt::Debug for LoggingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingGuard").field("writers", &self._guards.len()).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("logging.level: invalid filter directive `{directive}`: {source}")]
    InvalidLevel {
        directive: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("logging.file: cannot open `{path}`: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("logging: a global subscriber is already installed")]
    AlreadyInitialized(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global subscriber described by `cfg`.
pub fn init(cfg: &LoggingConfig) -> Result<LoggingGuard, LoggingError> {
    let (dispatch, guard) = build_with_console(cfg, io::stdout(), io::stdout().is_terminal())?;
    dispatch.try_init().map_err(LoggingError::AlreadyInitialized)?;
    Ok(guard)
}

/// The subscriber `init` would install, without installing it (for scoped
/// use with `tracing::dispatcher::with_default`). Stdout is taken as not a
/// terminal, so `auto` means JSON here whoever runs it.
pub fn build(cfg: &LoggingConfig) -> Result<(Dispatch, LoggingGuard), LoggingError> {
    build_with_console(cfg, io::stdout(), false)
}

/// What the stdout lines look like once `auto` is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Pretty,
}

/// The stdout format for `format`: an explicit `json` or `pretty` is
/// honoured; `auto` is pretty at a terminal (someone is reading) and JSON
/// anywhere else (a pipe, a file, journald, a container log driver: a
/// program is reading).
pub fn resolve(format: LogFormat, stdout_is_tty: bool) -> OutputFormat {
    match format {
        LogFormat::Json => OutputFormat::Json,
        LogFormat::Pretty => OutputFormat::Pretty,
        LogFormat::Auto if stdout_is_tty => OutputFormat::Pretty,
        LogFormat::Auto => OutputFormat::Json,
    }
}

/// What actix-server says at `info` (worker starts and stops, "Actix
/// runtime found") is noise beside Tandem's own events: quieter unless the
/// level names `actix_server` itself.
const QUIET_ACTIX: &str = "actix_server=warn";

/// Parses `logging.level`; empty means `info`.
pub fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    let directive = if level.trim().is_empty() { "info" } else { level };
    let with_quiet = if directive.contains("actix_server") {
        directive.to_owned()
    } else {
        format!("{directive},{QUIET_ACTIX}")
    };
    EnvFilter::builder()
        .parse(&with_quiet)
        .map_err(|source| LoggingError::InvalidLevel { directive: directive.to_owned(), source })
}

/// Opens `path` for appending, creating it and its parent directories.
pub fn open_log_file(path: &str) -> Result<File, LoggingError> {
    let err = |source| LoggingError::File { path: path.to_owned(), source };
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    OpenOptions::new().create(true).append(true).open(path).map_err(err)
}

fn build_with_console<C: Write + Send + 'static>(
    cfg: &LoggingConfig,
    console: C,
    console_is_terminal: bool,
) -> Result<(Dispatch, LoggingGuard), LoggingError> {
    let filter = filter(&cfg.level)?;
    let file = if cfg.file.is_empty() { None } else { Some(open_log_file(&cfg.file)?) };

    let mut guards = Vec::with_capacity(2);
    let (console, guard) = tracing_appender::non_blocking(console);
    guards.push(guard);
    let file = file.map(|file| {
        let (file, guard) = NonBlockingBuilder::default().lossy(false).finish(file);
        guards.push(guard);
        file
    });
    let dispatch = match (resolve(cfg.format, console_is_terminal), file) {
        (format, None) => dispatch(format, filter, console, console_is_terminal),
        // Same lines on both sides: format each event once.
        (OutputFormat::Json, Some(file)) => dispatch(OutputFormat::Json, filter, console.and(file), false),
        // Pretty for the terminal, JSON for the file.
        (OutputFormat::Pretty, Some(file)) => {
            let layers = vec![pretty_layer(console, console_is_terminal), json_layer(file)];
            Dispatch::new(Registry::default().with(filter).with(layers))
        }
    };
    Ok((dispatch, LoggingGuard { _guards: guards }))
}

/// A boxed formatting layer over the filtered registry.
type BoxedLayer = Box<dyn Layer<tracing_subscriber::layer::Layered<EnvFilter, Registry>> + Send + Sync>;

/// JSON lines with every event field at the top level.
fn json_layer<W>(writer: W) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_writer(writer)
        .boxed()
}

/// One human-readable line per event; colours only for a terminal.
fn pretty_layer<W>(writer: W, ansi: bool) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer().with_target(true).with_ansi(ansi).with_writer(writer).boxed()
}

/// The formatting subscriber for `format`, writing to `writer`; `ansi`
/// colours pretty output.
pub(crate) fn dispatch<W>(format: OutputFormat, filter: EnvFilter, writer: W, ansi: bool) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = match format {
        OutputFormat::Json => json_layer(writer),
        OutputFormat::Pretty => pretty_layer(writer, ansi),
    };
    Dispatch::new(Registry::default().with(filter).with(layer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {

    #[test]
    fn actix_servers_info_chatter_is_quiet_unless_asked_for() {
        let quiet = filter("info").unwrap().to_string();
        assert!(quiet.contains("actix_server=warn"), "{quiet}");
        let asked = filter("debug,actix_server=info").unwrap().to_string();
        assert!(!asked.contains("actix_server=warn"), "{asked}");
    }

    use std::sync::Arc;

    use parking_lot::Mutex;
    use serde_json::Value;

    use super::*;
    use crate::errors::{ErrorEvent, ErrorTracker, ErrorType, Severity};

    /// Collects formatted output in memory.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub(crate) fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().clone()).unwrap();
            text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
        }
    }

    pub(crate) fn capture_json<R>(f: impl FnOnce() -> R) -> (R, Vec<Value>) {
        let out = Captured::default();
        let writer = out.clone();
        let d = dispatch(OutputFormat::Json, filter("debug").unwrap(), move || writer.clone(), false);
        let r = tracing::dispatcher::with_default(&d, f);
        (r, out.lines())
    }

    #[test]
    fn json_lines_have_top_level_fields() {
        let ((), lines) = capture_json(|| {
            tracing::info!(
                player_id = "alice",
                connection_type = "websocket",
                establishment_time_ms = 12.5,
                "WebSocket connected"
            );
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["message"], "WebSocket connected");
        assert_eq!(l["player_id"], "alice");
        assert_eq!(l["connection_type"], "websocket");
        assert_eq!(l["establishment_time_ms"], 12.5);
        assert!(l["timestamp"].is_string());
        assert!(l["target"].is_string());
        assert!(l.get("fields").is_none());
    }

    #[test]
    fn error_events_log_one_line_with_their_ids() {
        let tracker = ErrorTracker::new(10);
        let ((), lines) = capture_json(|| {
            tracker.record(
                ErrorEvent::new(ErrorType::ConnectionError, Severity::Medium, "WebSocket connection failed")
                    .player("p1")
                    .session("s1")
                    .connection("c1"),
            );
            tracker.record(ErrorEvent::new(ErrorType::ValidationError, Severity::Low, "bad frame"));
        });
        assert_eq!(lines.len(), 2);
        let e = &lines[0];
        assert_eq!(e["level"], "ERROR");
        assert_eq!(e["error_type"], "connection_error");
        assert_eq!(e["severity"], "medium");
        assert_eq!(e["message"], "WebSocket connection failed");
        assert_eq!(e["player_id"], "p1");
        assert_eq!(e["session_id"], "s1");
        assert_eq!(e["connection_id"], "c1");
        assert_eq!(lines[1]["level"], "WARN");
        assert!(lines[1].get("player_id").is_none());
    }

    #[test]
    fn a_flood_of_identical_errors_is_sampled_in_the_log_only() {
        let clock = crate::clock::ManualClock::at(1_736_193_300);
        let tracker = ErrorTracker::with_clock(10, clock.clone());
        let ((), lines) = capture_json(|| {
            for _ in 0..50 {
                tracker.record(ErrorEvent::new(ErrorType::SystemError, Severity::High, "same"));
            }
            clock.advance(std::time::Duration::from_secs(1));
            tracker.record(ErrorEvent::new(ErrorType::SystemError, Severity::High, "same"));
        });
        let budget = crate::errors::LOG_LINES_PER_SECOND as usize;
        assert_eq!(lines.len(), budget + 1);
        // The first line of the next second reports what was left out.
        assert_eq!(lines[budget]["suppressed_lines"], 50 - budget);
        assert_eq!(tracker.total_last_hour(), 51);
    }

    #[test]
    fn invalid_level_names_the_key() {
        let err = filter("info,[[[").unwrap_err();
        assert!(err.to_string().starts_with("logging.level"), "{err}");
        assert!(filter("").is_ok());
        assert!(filter("warn,tandem_server=debug").is_ok());
    }

    #[test]
    fn unopenable_file_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("tandem.log");
        let cfg = LoggingConfig { file: path.to_string_lossy().into_owned(), ..Default::default() };
        let err = build_with_console(&cfg, io::sink(), false).map(|_| ()).unwrap_err();
        assert!(err.to_string().starts_with("logging.file"), "{err}");
    }

    #[test]
    fn file_output_appends_json_lines_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/nested/tandem.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let cfg = LoggingConfig { file: path.to_string_lossy().into_owned(), ..Default::default() };
        let (dispatch, guard) = build_with_console(&cfg, io::sink(), false).unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::error!(error_type = "system_error", "disk on fire");
        });
        drop(guard); // flushes
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["earlier"], true);
        assert_eq!(lines[1]["level"], "ERROR");
        assert_eq!(lines[1]["error_type"], "system_error");

        let fresh = dir.path().join("new/dir/t.log");
        open_log_file(&fresh.to_string_lossy()).unwrap();
        assert!(fresh.exists());
    }

    #[test]
    fn resolve_honours_explicit_formats_and_decides_auto_by_the_terminal() {
        for tty in [false, true] {
            assert_eq!(resolve(LogFormat::Json, tty), OutputFormat::Json);
            assert_eq!(resolve(LogFormat::Pretty, tty), OutputFormat::Pretty);
        }
        assert_eq!(resolve(LogFormat::Auto, true), OutputFormat::Pretty);
        assert_eq!(resolve(LogFormat::Auto, false), OutputFormat::Json);
    }

    /// Builds the subscriber for `cfg` over an in-memory console, logs one
    /// line, and returns what the console received.
    fn console_output(cfg: &LoggingConfig, console_is_terminal: bool) -> String {
        let console = Captured::default();
        let (dispatch, guard) = build_with_console(cfg, console.clone(), console_is_terminal).unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(player_id = "alice", "SSE connected");
        });
        drop(guard); // flushes
        String::from_utf8(console.0.lock().clone()).unwrap()
    }

    #[test]
    fn auto_is_json_for_a_pipe_and_pretty_for_a_terminal() {
        let cfg = LoggingConfig::default();
        assert_eq!(cfg.format, LogFormat::Auto);
        let piped = console_output(&cfg, false);
        let line: Value = serde_json::from_str(piped.trim()).expect("JSON for a pipe");
        assert_eq!(line["message"], "SSE connected");
        let terminal = console_output(&cfg, true);
        assert!(terminal.contains("SSE connected"), "{terminal}");
        assert!(serde_json::from_str::<Value>(terminal.trim()).is_err(), "{terminal}");
        // An explicit choice wins over the terminal check.
        let json = LoggingConfig { format: LogFormat::Json, ..Default::default() };
        assert!(serde_json::from_str::<Value>(console_output(&json, true).trim()).is_ok());
    }

    #[test]
    fn the_file_stays_json_when_the_console_is_pretty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.log");
        for format in [LogFormat::Pretty, LogFormat::Auto] {
            let cfg =
                LoggingConfig { format, file: path.to_string_lossy().into_owned(), ..Default::default() };
            let console = console_output(&cfg, true);
            assert!(console.contains("SSE connected"), "{console}");
            assert!(serde_json::from_str::<Value>(console.trim()).is_err(), "{console}");
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).expect("JSON lines in the file")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in lines {
            assert_eq!(line["message"], "SSE connected");
            assert_eq!(line["player_id"], "alice");
        }
        assert!(!text.contains('\u{1b}'), "no colour codes in the file: {text:?}");
    }

    #[test]
    fn pretty_format_is_human() {
        let out = Captured::default();
        let writer = out.clone();
        let d = dispatch(OutputFormat::Pretty, filter("info").unwrap(), move || writer.clone(), false);
        tracing::dispatcher::with_default(&d, || tracing::info!(player_id = "alice", "SSE connected"));
        let text = String::from_utf8(out.0.lock().clone()).unwrap();
        assert!(text.contains("SSE connected") && text.contains("player_id=\"alice\""), "{text}");
        assert!(serde_json::from_str::<Value>(text.trim()).is_err());
    }
}
