//! Error events: what went wrong, how badly, for whom — counted per minute
//! for the last hour, kept in a bounded ring for `/monitoring/errors`, counted
//! in Prometheus and logged as one JSON line each.
//!
//! Recording is O(1) and allocation-free apart from the event itself: fixed
//! arrays of minute buckets and log-sampling slots, and a ring of fixed
//! capacity. Counts are exact; only identical log lines are sampled under a
//! flood so a storm of errors cannot drown the log pipeline.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{self, Clock};

/// What kind of failure an event reports (the documented classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    ConnectionError,
    AuthenticationError,
    SessionError,
    MessageDeliveryError,
    SystemError,
    ValidationError,
    /// The game backend failed a command, a hook or an event.
    BackendError,
}

impl ErrorType {
    pub const ALL: [ErrorType; 7] = [
        ErrorType::ConnectionError,
        ErrorType::AuthenticationError,
        ErrorType::SessionError,
        ErrorType::MessageDeliveryError,
        ErrorType::SystemError,
        ErrorType::ValidationError,
        ErrorType::BackendError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::ConnectionError => "connection_error",
            ErrorType::AuthenticationError => "authentication_error",
            ErrorType::SessionError => "session_error",
            ErrorType::MessageDeliveryError => "message_delivery_error",
            ErrorType::SystemError => "system_error",
            ErrorType::ValidationError => "validation_error",
            ErrorType::BackendError => "backend_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for ErrorType {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| FilterError::UnknownType(s.to_owned()))
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How badly an error hurts. `Low` is logged at WARN, the rest at ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Severity {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| FilterError::UnknownSeverity(s.to_owned()))
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error occurrence. Built with [`ErrorEvent::new`] and the chained
/// setters so call sites stay one expression.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorEvent {
    pub error_type: ErrorType,
    pub severity: Severity,
    pub message: String,
    pub player_id: Option<String>,
    pub session_id: Option<String>,
    pub connection_id: Option<String>,
    pub details: Option<Value>,
}

impl ErrorEvent {
    pub fn new(error_type: ErrorType, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            error_type,
            severity,
            message: message.into(),
            player_id: None,
            session_id: None,
            connection_id: None,
            details: None,
        }
    }

    pub fn player(mut self, id: &str) -> Self {
        self.player_id = Some(id.to_owned());
        self
    }

    pub fn session(mut self, id: &str) -> Self {
        self.session_id = Some(id.to_owned());
        self
    }

    pub fn connection(mut self, id: &str) -> Self {
        self.connection_id = Some(id.to_owned());
        self
    }

    pub fn details(mut self, v: Value) -> Self {
        self.details = Some(v);
        self
    }

    /// [`ErrorEvent::details`] from a typed struct.
    pub fn details_of(self, v: &impl Serialize) -> Self {
        self.details(crate::json_value(v))
    }
}

/// The `/monitoring/errors` document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Errors in the current minute and the 59 before (after the filter).
    pub total_errors_last_hour: u64,
    pub error_rate_per_minute: f64,
    /// Counts per `<type>_<severity>`, only those above 0.
    pub error_breakdown: BTreeMap<String, u64>,
    /// The most recent events in that hour, oldest first (at most 10).
    pub recent_errors: Vec<RecentError>,
    /// One entry per minute of the hour, oldest first.
    pub per_minute: Vec<MinuteCount>,
    /// RFC 3339, now.
    pub timestamp: String,
}

/// One event of `recent_errors`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecentError {
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub severity: Severity,
    pub message: String,
    /// Unix seconds, millisecond precision.
    pub timestamp: f64,
    pub player_id: Option<String>,
    pub session_id: Option<String>,
    pub connection_id: Option<String>,
    /// Present only when the event has details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// One minute of `per_minute`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// Unix seconds at the start of the minute.
    pub minute: u64,
    pub count: u64,
    /// Counts per `<type>_<severity>`, only those above 0.
    pub breakdown: BTreeMap<String, u64>,
}

/// A query's `type`/`severity` filter for [`ErrorTracker::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorFilter {
    pub error_type: Option<ErrorType>,
    pub severity: Option<Severity>,
}

/// A filter value that names no known type or severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "unknown error type `{0}` (expected connection_error, authentication_error, session_error, message_delivery_error, system_error, validation_error or backend_error)"
    )]
    UnknownType(String),
    #[error("unknown severity `{0}` (expected low, medium, high or critical)")]
    UnknownSeverity(String),
}

impl ErrorFilter {
    /// Parses the query values; empty strings mean "no filter".
    pub fn parse(error_type: Option<&str>, severity: Option<&str>) -> Result<Self, FilterError> {
        let error_type = error_type.filter(|s| !s.is_empty()).map(str::parse).transpose()?;
        let severity = severity.filter(|s| !s.is_empty()).map(str::parse).transpose()?;
        Ok(Self { error_type, severity })
    }

    fn matches(&self, t: ErrorType, s: Severity) -> bool {
        self.error_type.is_none_or(|f| f == t) && self.severity.is_none_or(|f| f == s)
    }
}

/// Number of `<type>_<severity>` combinations.
const KEYS: usize = ErrorType::ALL.len() * Severity::ALL.len();
/// Minutes of per-minute counts kept.
const MINUTES: usize = 60;
/// Events shown in `recent_errors`.
const RECENT_SHOWN: usize = 10;
/// Log-sampling slots; identical lines hash to one slot.
const LOG_SLOTS: usize = 128;
/// Identical (type, severity, message) log lines emitted per second at most.
pub const LOG_LINES_PER_SECOND: u32 = 10;

fn key_index(t: ErrorType, s: Severity) -> usize {
    t.index() * Severity::ALL.len() + s.index()
}

fn key_parts(i: usize) -> (ErrorType, Severity) {
    let t = ErrorType::ALL[(i / Severity::ALL.len()) % ErrorType::ALL.len()];
    let s = Severity::ALL[i % Severity::ALL.len()];
    (t, s)
}

fn key_name(i: usize) -> String {
    let (t, s) = key_parts(i);
    format!("{}_{}", t.as_str(), s.as_str())
}

#[derive(Clone, Copy)]
struct MinuteBucket {
    /// Unix minute (`secs / 60`) these counts belong to.
    minute: u64,
    counts: [u64; KEYS],
}

#[derive(Clone, Copy, Default)]
struct LogSlot {
    hash: u64,
    second: u64,
    emitted: u32,
    suppressed: u64,
}

struct Counts {
    minutes: [MinuteBucket; MINUTES],
    log_slots: [LogSlot; LOG_SLOTS],
}

struct Stored {
    event: ErrorEvent,
    at: SystemTime,
}

/// Counts, recent events and log sampling of error events. Cheap to share:
/// every method takes `&self`.
pub struct ErrorTracker {
    clock: Arc<dyn Clock>,
    capacity: usize,
    counts: Mutex<Counts>,
    ring: Mutex<VecDeque<Stored>>,
}

impl std::fmt::Debug for ErrorTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorTracker").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl ErrorTracker {
    /// A tracker keeping the `capacity` most recent events (at least one).
    pub fn new(capacity: usize) -> Self {
        Self::with_clock(capacity, clock::system_clock())
    }

    pub(crate) fn with_clock(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let capacity = capacity.max(1);
        Self {
            clock,
            capacity,
            counts: Mutex::new(Counts {
                minutes: [MinuteBucket { minute: u64::MAX, counts: [0; KEYS] }; MINUTES],
                log_slots: [LogSlot::default(); LOG_SLOTS],
            }),
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
        }
    }

    /// Records one event: minute bucket, ring, `tandem_errors_total` and one
    /// log line (sampled when the same line floods).
    pub fn record(&self, event: ErrorEvent) {
        let at = self.clock.now();
        let secs = clock::unix_secs(at);
        let minute = secs / 60;
        let key = key_index(event.error_type, event.severity);
        let hash = line_hash(&event);

        let log = {
            let mut counts = self.counts.lock();
            let bucket = &mut counts.minutes[(minute % MINUTES as u64) as usize];
            if bucket.minute != minute {
                *bucket = MinuteBucket { minute, counts: [0; KEYS] };
            }
            bucket.counts[key] = bucket.counts[key].saturating_add(1);
            let slot = &mut counts.log_slots[(hash % LOG_SLOTS as u64) as usize];
            sample_line(slot, hash, secs)
        };

        metrics::counter!(
            "tandem_errors_total",
            "type" => event.error_type.as_str(),
            "severity" => event.severity.as_str()
        )
        .increment(1);

        if let Some(suppressed) = log {
            emit_line(&event, suppressed);
        }

        let mut ring = self.ring.lock();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(Stored { event, at });
    }

    /// Errors counted in the last 60 minutes (current minute included).
    pub fn total_last_hour(&self) -> u64 {
        let minute = self.clock.unix_secs() / 60;
        let counts = self.counts.lock();
        window_minutes(minute)
            .map(|m| {
                let b = &counts.minutes[(m % MINUTES as u64) as usize];
                if b.minute == m { b.counts.iter().sum::<u64>() } else { 0 }
            })
            .sum()
    }

    /// The `/monitoring/errors` document.
    pub fn stats(&self, filter: ErrorFilter) -> ErrorStats {
        let now = self.clock.now();
        let minute = clock::unix_secs(now) / 60;
        let buckets: Vec<(u64, [u64; KEYS])> = {
            let counts = self.counts.lock();
            window_minutes(minute)
                .map(|m| {
                    let b = &counts.minutes[(m % MINUTES as u64) as usize];
                    (m, if b.minute == m { b.counts } else { [0; KEYS] })
                })
                .collect()
        };

        let mut total = 0u64;
        let mut overall = [0u64; KEYS];
        let mut per_minute = Vec::with_capacity(MINUTES);
        for (m, counts) in &buckets {
            let mut count = 0u64;
            let mut breakdown = BTreeMap::new();
            for (i, n) in counts.iter().enumerate() {
                let (t, s) = key_parts(i);
                if *n == 0 || !filter.matches(t, s) {
                    continue;
                }
                count += n;
                overall[i] += n;
                breakdown.insert(key_name(i), *n);
            }
            total += count;
            per_minute.push(MinuteCount { minute: m.saturating_mul(60), count, breakdown });
        }
        let breakdown: BTreeMap<String, u64> =
            overall.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (key_name(i), *n)).collect();

        // Same window as the counts: the current minute and the 59 before.
        let oldest_minute = minute.saturating_sub(MINUTES as u64 - 1);
        let mut recent: Vec<RecentError> = {
            let ring = self.ring.lock();
            ring.iter()
                .rev()
                .filter(|s| {
                    clock::unix_secs(s.at) / 60 >= oldest_minute
                        && filter.matches(s.event.error_type, s.event.severity)
                })
                .take(RECENT_SHOWN)
                .map(recent_error)
                .collect()
        };
        recent.reverse();

        ErrorStats {
            total_errors_last_hour: total,
            error_rate_per_minute: clock::round(total as f64 / MINUTES as f64, 2),
            error_breakdown: breakdown,
            recent_errors: recent,
            per_minute,
            timestamp: clock::rfc3339(now),
        }
    }
}

/// The 60 minutes ending with `current`, oldest first.
fn window_minutes(current: u64) -> impl Iterator<Item = u64> {
    (0..MINUTES as u64).rev().map(move |back| current.saturating_sub(back))
}

fn recent_error(s: &Stored) -> RecentError {
    let e = &s.event;
    RecentError {
        error_type: e.error_type,
        severity: e.severity,
        message: e.message.clone(),
        timestamp: clock::round(clock::unix_secs_f64(s.at), 3),
        player_id: e.player_id.clone(),
        session_id: e.session_id.clone(),
        connection_id: e.connection_id.clone(),
        details: e.details.clone(),
    }
}

fn line_hash(e: &ErrorEvent) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.error_type.hash(&mut h);
    e.severity.hash(&mut h);
    e.message.hash(&mut h);
    h.finish()
}

/// Decides whether this occurrence gets a log line. `Some(n)` = log it,
/// mentioning `n` identical lines suppressed in the previous second.
fn sample_line(slot: &mut LogSlot, hash: u64, second: u64) -> Option<u64> {
    if slot.hash == hash && slot.second == second {
        if slot.emitted < LOG_LINES_PER_SECOND {
            slot.emitted += 1;
            Some(0)
        } else {
            slot.suppressed = slot.suppressed.saturating_add(1);
            None
        }
    } else {
        let carried = if slot.hash == hash { slot.suppressed } else { 0 };
        *slot = LogSlot { hash, second, emitted: 1, suppressed: 0 };
        Some(carried)
    }
}

/// One JSON log line per event, fields at the top level so
/// `grep ERROR file | jq -r .error_type` works.
fn emit_line(e: &ErrorEvent, suppressed: u64) {
    let details = e.details.as_ref().map(Value::to_string);
    let suppressed = (suppressed > 0).then_some(suppressed);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                error_type = e.error_type.as_str(),
                severity = e.severity.as_str(),
                player_id = e.player_id.as_deref(),
                session_id = e.session_id.as_deref(),
                connection_id = e.connection_id.as_deref(),
                details = details.as_deref(),
                suppressed_lines = suppressed,
                "{}",
                e.message
            )
        };
    }
    if e.severity == Severity::Low {
        line!(warn);
    } else {
        line!(error);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    /// A minute boundary, so tests know which minute they are in.
    const T0: u64 = 1_736_193_300;

    fn tracker(cap: usize) -> (ErrorTracker, Arc<ManualClock>) {
        let clock = ManualClock::at(T0);
        (ErrorTracker::with_clock(cap, clock.clone()), clock)
    }

    /// The document as the route sends it.
    fn stats(tr: &ErrorTracker, filter: ErrorFilter) -> Value {
        serde_json::to_value(tr.stats(filter)).unwrap()
    }

    fn ev(t: ErrorType, s: Severity) -> ErrorEvent {
        ErrorEvent::new(t, s, format!("{t} {s}"))
    }

    #[test]
    fn counts_breakdown_and_rate() {
        let (tr, _) = tracker(100);
        for _ in 0..15 {
            tr.record(ev(ErrorType::ConnectionError, Severity::Medium));
        }
        for _ in 0..5 {
            tr.record(ev(ErrorType::AuthenticationError, Severity::High));
        }
        tr.record(ev(ErrorType::SystemError, Severity::Critical).player("p1"));
        let s = stats(&tr, ErrorFilter::default());
        assert_eq!(s["total_errors_last_hour"], 21);
        assert_eq!(s["error_rate_per_minute"], 0.35);
        assert_eq!(s["error_breakdown"]["connection_error_medium"], 15);
        assert_eq!(s["error_breakdown"]["authentication_error_high"], 5);
        assert_eq!(s["error_breakdown"]["system_error_critical"], 1);
        assert_eq!(s["error_breakdown"].as_object().unwrap().len(), 3);
        let recent = s["recent_errors"].as_array().unwrap();
        assert_eq!(recent.len(), 10);
        let last = recent.last().unwrap();
        assert_eq!(last["type"], "system_error");
        assert_eq!(last["severity"], "critical");
        assert_eq!(last["player_id"], "p1");
        assert_eq!(last["timestamp"], T0 as f64);
        for key in ["message", "session_id", "connection_id"] {
            assert!(last.get(key).is_some(), "{key}");
        }
        assert_eq!(tr.total_last_hour(), 21);
    }

    #[test]
    fn per_minute_buckets_roll_over_and_expire_after_an_hour() {
        let (tr, clock) = tracker(100);
        tr.record(ev(ErrorType::SessionError, Severity::Low));
        clock.advance(Duration::from_secs(60));
        tr.record(ev(ErrorType::SessionError, Severity::Low));
        tr.record(ev(ErrorType::SessionError, Severity::Low));

        let s = stats(&tr, ErrorFilter::default());
        let per_minute = s["per_minute"].as_array().unwrap();
        assert_eq!(per_minute.len(), 60);
        assert_eq!(per_minute[58]["minute"], T0);
        assert_eq!(per_minute[58]["count"], 1);
        assert_eq!(per_minute[59]["minute"], T0 + 60);
        assert_eq!(per_minute[59]["count"], 2);
        assert_eq!(per_minute[59]["breakdown"]["session_error_low"], 2);
        assert_eq!(per_minute[0]["count"], 0);
        assert_eq!(s["total_errors_last_hour"], 3);

        // 59 minutes after the first event it is still in the window...
        clock.advance(Duration::from_secs(58 * 60));
        assert_eq!(tr.total_last_hour(), 3);
        // ...one minute later it is gone, and the recent list drops it too.
        clock.advance(Duration::from_secs(60));
        assert_eq!(tr.total_last_hour(), 2);
        clock.advance(Duration::from_secs(60));
        let s = stats(&tr, ErrorFilter::default());
        assert_eq!(s["total_errors_last_hour"], 0);
        assert_eq!(s["recent_errors"].as_array().unwrap().len(), 0);
        assert!(s["error_breakdown"].as_object().unwrap().is_empty());
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let (tr, clock) = tracker(10);
        tr.record(ev(ErrorType::SessionError, Severity::Low));
        // Same slot (minute % 60), one hour later.
        clock.advance(Duration::from_secs(3600));
        tr.record(ev(ErrorType::SessionError, Severity::Low));
        assert_eq!(tr.total_last_hour(), 1);
    }

    #[test]
    fn filters_by_type_and_severity() {
        let (tr, _) = tracker(100);
        tr.record(ev(ErrorType::ConnectionError, Severity::High));
        tr.record(ev(ErrorType::ConnectionError, Severity::Low));
        tr.record(ev(ErrorType::ValidationError, Severity::High));

        let by_type = stats(&tr, ErrorFilter::parse(Some("connection_error"), None).unwrap());
        assert_eq!(by_type["total_errors_last_hour"], 2);
        assert_eq!(by_type["recent_errors"].as_array().unwrap().len(), 2);

        let both = stats(&tr, ErrorFilter::parse(Some("connection_error"), Some("high")).unwrap());
        assert_eq!(both["total_errors_last_hour"], 1);
        assert_eq!(both["error_breakdown"]["connection_error_high"], 1);
        assert_eq!(both["recent_errors"][0]["severity"], "high");

        let by_sev = stats(&tr, ErrorFilter::parse(None, Some("high")).unwrap());
        assert_eq!(by_sev["total_errors_last_hour"], 2);

        assert_eq!(ErrorFilter::parse(Some(""), Some("")).unwrap(), ErrorFilter::default());
        assert!(matches!(ErrorFilter::parse(Some("nope"), None), Err(FilterError::UnknownType(_))));
        assert!(matches!(ErrorFilter::parse(None, Some("huge")), Err(FilterError::UnknownSeverity(_))));
    }

    #[test]
    fn ring_is_bounded_but_counts_are_not() {
        let (tr, _) = tracker(4);
        for i in 0..1000 {
            tr.record(ErrorEvent::new(ErrorType::SystemError, Severity::Medium, format!("e{i}")));
        }
        assert_eq!(tr.ring.lock().len(), 4);
        let s = stats(&tr, ErrorFilter::default());
        assert_eq!(s["total_errors_last_hour"], 1000);
        let recent = s["recent_errors"].as_array().unwrap();
        assert_eq!(recent.len(), 4);
        assert_eq!(recent[0]["message"], "e996");
        assert_eq!(recent[3]["message"], "e999");
    }

    #[test]
    fn record_touches_fixed_size_state_only() {
        // O(1) by construction: fixed arrays plus a ring that never grows past
        // its capacity, whatever the number and spread of events.
        let (tr, clock) = tracker(8);
        for _ in 0..500 {
            tr.record(ev(ErrorType::ConnectionError, Severity::Low));
            clock.advance(Duration::from_secs(17));
        }
        let ring = tr.ring.lock();
        assert_eq!(ring.len(), 8);
        assert!(ring.capacity() < 64, "ring grew: {}", ring.capacity());
    }

    #[test]
    fn identical_log_lines_are_sampled_per_second() {
        let mut slot = LogSlot::default();
        let decisions: Vec<_> = (0..15).map(|_| sample_line(&mut slot, 42, 100)).collect();
        assert_eq!(decisions.iter().filter(|d| d.is_some()).count(), LOG_LINES_PER_SECOND as usize);
        assert_eq!(slot.suppressed, 5);
        // Next second: logged again, carrying the suppressed count.
        assert_eq!(sample_line(&mut slot, 42, 101), Some(5));
        // A different line taking the slot starts clean.
        assert_eq!(sample_line(&mut slot, 7, 101), Some(0));
    }

    #[test]
    fn builder_sets_every_field() {
        let e = ErrorEvent::new(ErrorType::SessionError, Severity::High, "x")
            .player("p")
            .session("s")
            .connection("c")
            .details(serde_json::json!({"k": 1}));
        assert_eq!(e.player_id.as_deref(), Some("p"));
        assert_eq!(e.session_id.as_deref(), Some("s"));
        assert_eq!(e.connection_id.as_deref(), Some("c"));
        assert_eq!(e.details, Some(serde_json::json!({"k": 1})));
        #[derive(Serialize)]
        struct Typed {
            k: u8,
        }
        let typed = ErrorEvent::new(ErrorType::SessionError, Severity::High, "x").details_of(&Typed { k: 1 });
        assert_eq!(typed.details, e.details);
    }

    #[test]
    fn recent_errors_show_details_only_when_set() {
        let (tr, _) = tracker(10);
        tr.record(ev(ErrorType::SystemError, Severity::High).details(serde_json::json!({"task": "sweeper"})));
        tr.record(ev(ErrorType::SystemError, Severity::High));
        let s = stats(&tr, ErrorFilter::default());
        assert_eq!(s["recent_errors"][0]["details"]["task"], "sweeper");
        assert!(s["recent_errors"][1].get("details").is_none());
        assert_eq!(s["recent_errors"][1]["session_id"], Value::Null);
        assert_eq!(s["recent_errors"][1]["type"], "system_error");
    }
}
