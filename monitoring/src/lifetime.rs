//! Uptime and restarts across process restarts (`monitoring.state_file`).
//!
//! A process only knows its own uptime; operators want to know how long the
//! service has been up in total and how often it restarted. With a state
//! file, Tandem reads what the previous process left at start-up, counts one
//! restart, and writes its cumulative figures back periodically and at
//! shutdown. Writes go to a temporary file that is renamed over the real one,
//! so a crash mid-write leaves the previous state intact. A missing, unreadable
//! or garbled file never stops start-up: Tandem starts fresh and says why.
//!
//! [`Lifetime`] is the arithmetic (no I/O, unit-tested); [`load`] and [`save`]
//! are the file glue; [`StateFile`] ties them together for the bundle.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::errors::{ErrorEvent, ErrorTracker, ErrorType, Severity};
use crate::recorder::names;

/// How often the sampler loop writes the state file.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(10);

/// A state file larger than this is not Tandem's: refuse to read it.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What survives a restart, as stored (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    /// Restarts seen so far: 0 for the first process that wrote the file.
    pub restarts: u64,
    /// Uptime of every process that wrote the file, in seconds.
    pub uptime_total_seconds: f64,
}

impl PersistedState {
    fn is_sane(&self) -> bool {
        self.uptime_total_seconds.is_finite() && self.uptime_total_seconds >= 0.0
    }
}

/// What [`load`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Loaded {
    /// No file yet: the first start.
    Missing,
    /// A previous process's state.
    Found(PersistedState),
    /// A file that cannot be used, and why.
    Unusable(String),
}

/// This process's figures: the previous processes' plus its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lifetime {
    restarts: u64,
    previous_uptime_seconds: f64,
}

impl Lifetime {
    /// A first start: no restart, no earlier uptime.
    pub fn fresh() -> Self {
        Self { restarts: 0, previous_uptime_seconds: 0.0 }
    }

    /// The lifetime that follows what [`load`] found: one more restart
    /// after a previous process; a fresh start otherwise.
    pub fn after(loaded: &Loaded) -> Self {
        match loaded {
            Loaded::Found(s) => Self {
                restarts: s.restarts.saturating_add(1),
                previous_uptime_seconds: s.uptime_total_seconds,
            },
            Loaded::Missing | Loaded::Unusable(_) => Self::fresh(),
        }
    }

    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Cumulative uptime when this process has been up for `uptime`.
    pub fn uptime_total_seconds(&self, uptime: Duration) -> f64 {
        self.previous_uptime_seconds + uptime.as_secs_f64()
    }

    /// The state to write when this process has been up for `uptime`.
    pub fn state(&self, uptime: Duration) -> PersistedState {
        PersistedState { restarts: self.restarts, uptime_total_seconds: self.uptime_total_seconds(uptime) }
    }
}

/// Reads the state file; never fails, says what it found.
pub fn load(path: &Path) -> Loaded {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Unusable(format!("cannot open: {e}")),
    };
    let mut text = String::new();
    if let Err(e) = file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text) {
        return Loaded::Unusable(format!("cannot read: {e}"));
    }
    if text.len() as u64 > MAX_FILE_BYTES {
        return Loaded::Unusable(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    match serde_json::from_str::<PersistedState>(&text) {
        Ok(s) if s.is_sane() => Loaded::Found(s),
        Ok(_) => Loaded::Unusable("uptime_total_seconds is not a finite, non-negative number".into()),
        Err(e) => Loaded::Unusable(format!("not a Tandem state file: {e}")),
    }
}

/// Writes `state` atomically: a temporary file beside `path`, flushed to
/// disk, then renamed over `path`.
pub fn save(path: &Path, state: &PersistedState) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        let body = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        file.write_all(&body)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "tandem-state".into());
    name.push(".tmp");
    path.with_file_name(name)
}

/// The configured state file and this process's lifetime.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    lifetime: Lifetime,
    /// Serialises writers (sampler loop and shutdown) on the temp file.
    write: Mutex<()>,
}

impl StateFile {
    /// Loads `path` and reports what happened (a log line; an error event
    /// when the file was unusable). Never fails.
    pub fn open(path: PathBuf, errors: &ErrorTracker) -> Self {
        let loaded = load(&path);
        let lifetime = Lifetime::after(&loaded);
        events::loaded(&path, &loaded, &lifetime, errors);
        Self { path, lifetime, write: Mutex::new(()) }
    }

    pub fn lifetime(&self) -> &Lifetime {
        &self.lifetime
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the cumulative figures for a process up for `uptime`; a
    /// failure is logged and tracked, never returned.
    pub fn save(&self, uptime: Duration, errors: &ErrorTracker) -> bool {
        let _guard = self.write.lock();
        match save(&self.path, &self.lifetime.state(uptime)) {
            Ok(()) => true,
            Err(e) => {
                events::save_failed(&self.path, &e, errors);
                false
            }
        }
    }

    /// Sets `tandem_restarts_total` and `tandem_uptime_total_seconds`.
    pub fn publish(&self, uptime: Duration) {
        metrics::counter!(names::RESTARTS_TOTAL).absolute(self.lifetime.restarts());
        metrics::gauge!(names::UPTIME_TOTAL_SECONDS).set(self.lifetime.uptime_total_seconds(uptime));
    }
}

/// The state file's log lines and error events.
mod events {
    use super::*;

    /// The details of a state-file error event.
    #[derive(serde::Serialize)]
    struct StateFileDetails<'a> {
        state_file: &'a str,
    }

    pub(super) fn loaded(path: &Path, loaded: &Loaded, lifetime: &Lifetime, errors: &ErrorTracker) {
        let state_file = path.display().to_string();
        match loaded {
            Loaded::Found(s) => tracing::info!(
                state_file,
                restarts = lifetime.restarts(),
                uptime_total_seconds = s.uptime_total_seconds,
                "Monitoring state loaded"
            ),
            Loaded::Missing => tracing::info!(state_file, "Monitoring state file not found, starting fresh"),
            Loaded::Unusable(why) => {
                tracing::warn!(
                    state_file,
                    error = why.as_str(),
                    "Monitoring state file unusable, starting fresh"
                );
                errors.record(
                    ErrorEvent::new(
                        ErrorType::SystemError,
                        Severity::Medium,
                        format!("monitoring.state_file unusable, started fresh: {why}"),
                    )
                    .details_of(&StateFileDetails { state_file: &state_file }),
                );
            }
        }
    }

    pub(super) fn save_failed(path: &Path, error: &std::io::Error, errors: &ErrorTracker) {
        let state_file = path.display().to_string();
        tracing::warn!(state_file, error = %error, "Monitoring state not saved");
        errors.record(
            ErrorEvent::new(
                ErrorType::SystemError,
                Severity::Low,
                format!("monitoring.state_file not saved: {error}"),
            )
            .details_of(&StateFileDetails { state_file: &state_file }),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors() -> ErrorTracker {
        ErrorTracker::new(16)
    }

    #[test]
    fn lifetime_counts_restarts_and_adds_uptime() {
        let first = Lifetime::after(&Loaded::Missing);
        assert_eq!(first.restarts(), 0);
        assert_eq!(
            first.state(Duration::from_secs(30)),
            PersistedState { restarts: 0, uptime_total_seconds: 30.0 }
        );

        let second = Lifetime::after(&Loaded::Found(first.state(Duration::from_secs(30))));
        assert_eq!(second.restarts(), 1);
        assert_eq!(second.uptime_total_seconds(Duration::from_millis(2500)), 32.5);

        let broken = Lifetime::after(&Loaded::Unusable("garbled".into()));
        assert_eq!(broken, Lifetime::fresh());

        let saturated =
            Lifetime::after(&Loaded::Found(PersistedState { restarts: u64::MAX, uptime_total_seconds: 1.0 }));
        assert_eq!(saturated.restarts(), u64::MAX);
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(load(&path), Loaded::Missing);
        let state = PersistedState { restarts: 3, uptime_total_seconds: 1234.5 };
        save(&path, &state).unwrap();
        assert_eq!(load(&path), Loaded::Found(state));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        // A second save replaces the first.
        save(&path, &PersistedState { restarts: 4, uptime_total_seconds: 2000.0 }).unwrap();
        assert_eq!(load(&path), Loaded::Found(PersistedState { restarts: 4, uptime_total_seconds: 2000.0 }));
    }

    #[test]
    fn bad_files_are_unusable_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for bad in [
            "",
            "not json",
            "{\"restarts\": -1, \"uptime_total_seconds\": 1}",
            "{\"restarts\": 1}",
            "{\"restarts\": 1, \"uptime_total_seconds\": -5}",
            "{\"restarts\": 1, \"uptime_total_seconds\": 1, \"extra\": true}",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(load(&path), Loaded::Unusable(_)), "{bad:?} -> {:?}", load(&path));
        }
        std::fs::write(&path, vec![b' '; (MAX_FILE_BYTES + 10) as usize]).unwrap();
        assert!(matches!(load(&path), Loaded::Unusable(m) if m.contains("larger")));
        // A directory where the file should be.
        let as_dir = dir.path().join("dir");
        std::fs::create_dir(&as_dir).unwrap();
        assert!(matches!(load(&as_dir), Loaded::Unusable(_)));
    }

    #[test]
    fn open_starts_fresh_on_a_bad_file_and_tracks_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{garbage").unwrap();
        let errors = errors();
        let file = StateFile::open(path.clone(), &errors);
        assert_eq!(file.lifetime(), &Lifetime::fresh());
        let stats = errors.stats(crate::ErrorFilter::default());
        assert_eq!(stats.total_errors_last_hour, 1, "{stats:?}");
        assert_eq!(stats.recent_errors[0].error_type, ErrorType::SystemError);
        let details = stats.recent_errors[0].details.clone().unwrap();
        assert_eq!(details, serde_json::json!({ "state_file": path.display().to_string() }));
        // The next save repairs the file.
        assert!(file.save(Duration::from_secs(7), &errors));
        assert_eq!(load(&path), Loaded::Found(PersistedState { restarts: 0, uptime_total_seconds: 7.0 }));
        let again = StateFile::open(path, &errors);
        assert_eq!(again.lifetime().restarts(), 1);
    }

    #[test]
    fn save_failure_is_tracked_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let errors = errors();
        let file = StateFile::open(dir.path().join("missing-dir").join("state.json"), &errors);
        assert!(!file.save(Duration::from_secs(1), &errors));
        let stats = errors.stats(crate::ErrorFilter::default());
        assert_eq!(stats.total_errors_last_hour, 1, "{stats:?}");
    }
}
