//! Component health: what is checked, how often, and how one verdict is
//! drawn from many.
//!
//! A component is anything implementing [`HealthCheck`]: the built-in
//! `connections`, `memory` and `activity`, the `[[monitoring.checks]]`
//! dependencies, and whatever the server registers (e.g. `broker`). The
//! [`HealthService`] runs every check with a timeout and retries with
//! exponential backoff, keeps the last report of each, logs and counts
//! status changes, and derives the overall status as the worst component.

mod activity;
mod connections;
mod dependency;
mod memory;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

pub use activity::{ActivityCheck, ActivityDetails};
pub use connections::{
    AgeDistribution, ConnectionHealthSummary, ConnectionTypeHealth, ConnectionsCheck, ConnectionsDetails,
    HEALTHY_DEFINITION, OverallHealth, TransportHealth, TransportHealthDocument,
};
pub use dependency::{DependencyDetails, HttpCheck, TcpCheck, dependency_check};
pub use memory::{MemoryCheck, MemoryDetails, MemoryThresholds};

use crate::backoff::Backoff;
use crate::clock;
use crate::config::MonitoringConfig;

/// Status of one component. The overall status only uses the first three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentStatus {
    Healthy,
    Degraded,
    Unhealthy,
    /// Attempting to connect (e.g. a broker during start-up).
    Connecting,
    /// Not available at all (connection refused).
    Disconnected,
    /// Not checked yet, or the check cannot tell.
    Unknown,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Healthy => "healthy",
            ComponentStatus::Degraded => "degraded",
            ComponentStatus::Unhealthy => "unhealthy",
            ComponentStatus::Connecting => "connecting",
            ComponentStatus::Disconnected => "disconnected",
            ComponentStatus::Unknown => "unknown",
        }
    }

    /// 0 = healthy, 1 = degraded, 2 = unhealthy: `unknown` and `connecting`
    /// degrade, `disconnected` is unhealthy.
    fn rank(self) -> u8 {
        match self {
            ComponentStatus::Healthy => 0,
            ComponentStatus::Degraded | ComponentStatus::Unknown | ComponentStatus::Connecting => 1,
            ComponentStatus::Unhealthy | ComponentStatus::Disconnected => 2,
        }
    }

    fn from_rank(rank: u8) -> Self {
        match rank {
            0 => ComponentStatus::Healthy,
            1 => ComponentStatus::Degraded,
            _ => ComponentStatus::Unhealthy,
        }
    }

    /// A failed attempt: worth a retry, and counted in
    /// `consecutive_failures`.
    pub fn is_failure(self) -> bool {
        self.rank() == 2
    }

    /// `/health*` answers 503 for these.
    pub fn is_unavailable(self) -> bool {
        self.rank() == 2
    }

    /// Value of `tandem_component_healthy`: 1 healthy, 0.5 in between, 0
    /// failing.
    pub fn gauge_value(self) -> f64 {
        match self.rank() {
            0 => 1.0,
            1 => 0.5,
            _ => 0.0,
        }
    }
}

impl std::fmt::Display for ComponentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one check attempt found.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOutcome {
    pub status: ComponentStatus,
    /// A JSON object whose fields are shown beside the status in
    /// `/health/detailed`.
    pub details: Value,
}

impl CheckOutcome {
    pub fn new(status: ComponentStatus, details: Value) -> Self {
        Self { status, details }
    }

    /// An outcome whose details are a typed struct (one schema per check).
    pub fn with_details(status: ComponentStatus, details: &impl Serialize) -> Self {
        Self::new(status, crate::json_value(details))
    }

    pub fn healthy(details: Value) -> Self {
        Self::new(ComponentStatus::Healthy, details)
    }

    pub fn degraded(details: Value) -> Self {
        Self::new(ComponentStatus::Degraded, details)
    }

    pub fn unhealthy(details: Value) -> Self {
        Self::new(ComponentStatus::Unhealthy, details)
    }

    /// Unhealthy with `{"error": message}`.
    pub fn error(message: impl Into<String>) -> Self {
        Self::with_details(ComponentStatus::Unhealthy, &ErrorDetails { error: message.into() })
    }
}

/// The details of a check that could not tell: `{"error": message}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorDetails {
    pub error: String,
}

/// One component of `/health`.
pub trait HealthCheck: Send + Sync {
    /// Component name (`[a-z0-9_-]+`), unique within the service.
    fn name(&self) -> &str;

    /// One attempt. The service applies the timeout and the retries.
    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>>;

    /// A failing non-critical component only degrades the overall status.
    fn critical(&self) -> bool {
        true
    }

    /// Per-attempt timeout; `None` = the service's default.
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// In-process checks that answer at once from memory: never retried,
    /// and re-evaluated when `/health*` is read (at most once per
    /// [`HealthSettings::local_min_interval`]) so they are never stale.
    fn local(&self) -> bool {
        false
    }
}

/// The last report of one component.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentReport {
    pub name: String,
    pub status: ComponentStatus,
    pub critical: bool,
    /// Duration of the last attempt.
    pub response_time_ms: f64,
    pub details: Value,
    /// `None` until the first check.
    pub last_check: Option<SystemTime>,
    /// Retries the last check needed (0 = first attempt decided).
    pub retry_count: u32,
    /// Checks in a row that ended unhealthy or disconnected.
    pub consecutive_failures: u32,
}

impl ComponentReport {
    fn unchecked(name: &str, critical: bool) -> Self {
        Self {
            name: name.to_owned(),
            status: ComponentStatus::Unknown,
            critical,
            response_time_ms: 0.0,
            details: Value::Object(Map::new()),
            last_check: None,
            retry_count: 0,
            consecutive_failures: 0,
        }
    }

    /// The component's entry in `/health/detailed`.
    pub fn document(self) -> ComponentDocument {
        ComponentDocument {
            details: FlatDetails(self.details),
            status: self.status,
            response_time_ms: self.response_time_ms,
            last_check: self.last_check.map(clock::rfc3339),
            retry_count: self.retry_count,
            consecutive_failures: self.consecutive_failures,
            critical: self.critical,
        }
    }
}

/// One component in `/health/detailed` (and, with its `name`, in
/// `/health/service/{name}`): the check's own details flattened beside the
/// bookkeeping fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentDocument {
    #[serde(flatten)]
    pub details: FlatDetails,
    pub status: ComponentStatus,
    /// Duration of the last attempt.
    pub response_time_ms: f64,
    /// RFC 3339; `null` until the first check.
    pub last_check: Option<String>,
    pub retry_count: u32,
    pub consecutive_failures: u32,
    pub critical: bool,
}

/// Keys of a component document that a check's details cannot override
/// (`name` is the one `/health/service/{name}` adds).
const COMPONENT_KEYS: [&str; 7] =
    ["name", "status", "response_time_ms", "last_check", "retry_count", "consecutive_failures", "critical"];

/// A check's details as fields of the component document: an object's
/// fields (except those in `COMPONENT_KEYS`: the document's own field wins,
/// and no key is ever written twice), nothing for `null`, and any other
/// value under `details`.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatDetails(pub Value);

impl Serialize for FlatDetails {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match &self.0 {
            Value::Object(fields) => {
                for (key, value) in fields.iter().filter(|(k, _)| !COMPONENT_KEYS.contains(&k.as_str())) {
                    map.serialize_entry(key, value)?;
                }
            }
            Value::Null => {}
            other => map.serialize_entry("details", other)?,
        }
        map.end()
    }
}

/// Timing of the checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthSettings {
    /// Per-attempt timeout unless the check sets its own.
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Delay before each retry: 100 ms doubling, at most 30 s by default.
    pub backoff: Backoff,
    /// Local checks are re-evaluated on read at most this often, so a flood
    /// of `/health` requests costs nothing.
    pub local_min_interval: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self::from_config(&MonitoringConfig::default())
    }
}

impl HealthSettings {
    pub fn from_config(cfg: &MonitoringConfig) -> Self {
        Self {
            timeout: Duration::from_secs(cfg.check_timeout_seconds.clamp(1, 3600)),
            retries: cfg.check_retries,
            backoff: DEFAULT_BACKOFF,
            local_min_interval: Duration::from_secs(1),
        }
    }
}

/// Retry delays of the health checks: 100 ms doubling, at most 30 s.
pub const DEFAULT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));

struct Component {
    check: Arc<dyn HealthCheck>,
    report: Mutex<ComponentReport>,
}

/// The set of components and their last reports.
pub struct HealthService {
    settings: HealthSettings,
    components: RwLock<Vec<Arc<Component>>>,
    /// Serializes full runs so concurrent force-checks share one.
    run_lock: tokio::sync::Mutex<()>,
    runs_completed: AtomicU64,
    local_refreshed: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for HealthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthService")
            .field("settings", &self.settings)
            .field("components", &self.names())
            .finish_non_exhaustive()
    }
}

impl HealthService {
    pub fn new(settings: HealthSettings) -> Self {
        Self {
            settings,
            components: RwLock::new(Vec::new()),
            run_lock: tokio::sync::Mutex::new(()),
            runs_completed: AtomicU64::new(0),
            local_refreshed: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> HealthSettings {
        self.settings
    }

    /// Adds a component (status `unknown` until its first check). A
    /// component with the same name is replaced.
    pub fn register(&self, check: Box<dyn HealthCheck>) {
        let check: Arc<dyn HealthCheck> = Arc::from(check);
        let name = check.name().to_owned();
        let report = ComponentReport::unchecked(&name, check.critical());
        metrics::gauge!("tandem_component_healthy", "component" => name.clone())
            .set(ComponentStatus::Unknown.gauge_value());
        let component = Arc::new(Component { check, report: Mutex::new(report) });
        let mut components = self.components.write();
        if let Some(existing) = components.iter_mut().find(|c| c.check.name() == name) {
            tracing::warn!(component = %name, "Health check replaced");
            *existing = component;
        } else {
            components.push(component);
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.components.read().iter().map(|c| c.check.name().to_owned()).collect()
    }

    fn snapshot(&self) -> Vec<Arc<Component>> {
        self.components.read().clone()
    }

    /// Last reports, in registration order.
    pub fn reports(&self) -> Vec<ComponentReport> {
        self.snapshot().iter().map(|c| c.report.lock().clone()).collect()
    }

    pub fn report(&self, name: &str) -> Option<ComponentReport> {
        self.snapshot().iter().find(|c| c.check.name() == name).map(|c| c.report.lock().clone())
    }

    /// Worst component, a non-critical one counting at most as degraded;
    /// `healthy` when there is none.
    pub fn overall(&self) -> ComponentStatus {
        overall_of(&self.reports())
    }

    /// Runs every check now (with retries), and returns when all are done.
    /// Callers arriving while a run is under way wait for the next run that
    /// starts after them, and share it.
    pub async fn check_all(&self) {
        let seen = self.runs_completed.load(Ordering::Acquire);
        let _guard = self.run_lock.lock().await;
        // Two runs completed since we asked: the second started after us.
        if self.runs_completed.load(Ordering::Acquire) >= seen + 2 {
            return;
        }
        let components = self.snapshot();
        futures_util::future::join_all(components.iter().map(|c| self.run_component(c))).await;
        *self.local_refreshed.lock() = Some(Instant::now());
        self.runs_completed.fetch_add(1, Ordering::Release);
    }

    /// Re-evaluates the local checks unless that was done less than
    /// `local_min_interval` ago. Read paths call it before reporting.
    pub async fn refresh_local(&self) {
        {
            let mut last = self.local_refreshed.lock();
            if last.is_some_and(|t| t.elapsed() < self.settings.local_min_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        let components = self.snapshot();
        let local = components.iter().filter(|c| c.check.local());
        futures_util::future::join_all(local.map(|c| self.run_component(c))).await;
    }

    async fn run_component(&self, c: &Component) {
        let timeout = c.check.timeout().unwrap_or(self.settings.timeout);
        let retries = if c.check.local() { 0 } else { self.settings.retries };
        let mut attempt = 0u32;
        let (outcome, elapsed) = loop {
            let started = Instant::now();
            let outcome = attempt_once(c.check.as_ref(), timeout).await;
            let elapsed = started.elapsed();
            if !outcome.status.is_failure() || attempt >= retries {
                break (outcome, elapsed);
            }
            tokio::time::sleep(self.settings.backoff.delay(attempt)).await;
            attempt += 1;
        };
        self.apply(c, outcome, elapsed, attempt);
    }

    fn apply(&self, c: &Component, outcome: CheckOutcome, elapsed: Duration, retries: u32) {
        let name = c.check.name();
        let previous = {
            let mut r = c.report.lock();
            let previous = r.status;
            r.status = outcome.status;
            r.details = outcome.details;
            r.response_time_ms = clock::millis(elapsed);
            r.last_check = Some(SystemTime::now());
            r.retry_count = retries;
            r.consecutive_failures =
                if outcome.status.is_failure() { r.consecutive_failures.saturating_add(1) } else { 0 };
            previous
        };
        let to = outcome.status;
        metrics::gauge!("tandem_component_healthy", "component" => name.to_owned()).set(to.gauge_value());
        if previous != to {
            metrics::counter!(
                "tandem_health_status_changes_total",
                "component" => name.to_owned(),
                "to" => to.as_str()
            )
            .increment(1);
            if to.rank() > previous.rank() && to.rank() > 0 {
                tracing::warn!(
                    component = name,
                    from = previous.as_str(),
                    to = to.as_str(),
                    "Health status changed"
                );
            } else {
                tracing::info!(
                    component = name,
                    from = previous.as_str(),
                    to = to.as_str(),
                    "Health status changed"
                );
            }
        }
    }
}

/// One attempt under a timeout; a panicking check counts as unhealthy
/// instead of taking the caller down.
async fn attempt_once(check: &dyn HealthCheck, timeout: Duration) -> CheckOutcome {
    let Ok(fut) = std::panic::catch_unwind(AssertUnwindSafe(|| check.check())) else {
        return CheckOutcome::error("health check panicked");
    };
    match tokio::time::timeout(timeout, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => CheckOutcome::error("health check panicked"),
        Err(_) => CheckOutcome::error(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// The overall status of a set of reports.
pub fn overall_of(reports: &[ComponentReport]) -> ComponentStatus {
    let worst = reports
        .iter()
        .map(|r| if r.critical { r.status.rank() } else { r.status.rank().min(1) })
        .max()
        .unwrap_or(0);
    ComponentStatus::from_rank(worst)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// A component that answers scripted statuses, counting attempts.
    pub(crate) struct Fake {
        pub name: &'static str,
        pub script: Mutex<Vec<ComponentStatus>>,
        pub fallback: ComponentStatus,
        pub attempts: Arc<AtomicU32>,
        pub critical: bool,
        pub hang: bool,
        pub timeout: Option<Duration>,
    }

    impl Fake {
        pub(crate) fn new(name: &'static str, fallback: ComponentStatus) -> Self {
            Self {
                name,
                script: Mutex::new(Vec::new()),
                fallback,
                attempts: Arc::new(AtomicU32::new(0)),
                critical: true,
                hang: false,
                timeout: None,
            }
        }

        pub(crate) fn script(self, statuses: &[ComponentStatus]) -> Self {
            *self.script.lock() = statuses.iter().rev().copied().collect();
            self
        }
    }

    impl HealthCheck for Fake {
        fn name(&self) -> &str {
            self.name
        }

        fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
            Box::pin(async move {
                self.attempts.fetch_add(1, Ordering::SeqCst);
                if self.hang {
                    std::future::pending::<()>().await;
                }
                let status = self.script.lock().pop().unwrap_or(self.fallback);
                CheckOutcome::new(status, serde_json::json!({ "probe": self.name }))
            })
        }

        fn critical(&self) -> bool {
            self.critical
        }

        fn timeout(&self) -> Option<Duration> {
            self.timeout
        }
    }

    pub(crate) fn fast_settings(retries: u32) -> HealthSettings {
        HealthSettings {
            timeout: Duration::from_secs(5),
            retries,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_secs(30)),
            local_min_interval: Duration::ZERO,
        }
    }

    use ComponentStatus::*;

    #[tokio::test]
    async fn unknown_before_first_check_then_reported() {
        let svc = HealthService::new(fast_settings(0));
        svc.register(Box::new(Fake::new("db", Healthy)));
        let r = svc.report("db").unwrap();
        assert_eq!(r.status, Unknown);
        assert_eq!(r.last_check, None);
        assert_eq!(svc.overall(), Degraded);
        svc.check_all().await;
        let r = svc.report("db").unwrap();
        assert_eq!(r.status, Healthy);
        assert!(r.last_check.is_some());
        assert_eq!(r.details["probe"], "db");
        assert_eq!(svc.overall(), Healthy);
    }

    #[tokio::test]
    async fn hanging_check_times_out_and_is_retried() {
        let svc = HealthService::new(fast_settings(2));
        let mut fake = Fake::new("slow", Healthy);
        fake.hang = true;
        fake.timeout = Some(Duration::from_millis(20));
        let attempts = fake.attempts.clone();
        svc.register(Box::new(fake));
        svc.check_all().await;
        let r = svc.report("slow").unwrap();
        assert_eq!(r.status, Unhealthy);
        assert_eq!(r.retry_count, 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(r.consecutive_failures, 1);
        assert!(r.details["error"].as_str().unwrap().contains("timed out"));
        assert_eq!(svc.overall(), Unhealthy);
        svc.check_all().await;
        assert_eq!(svc.report("slow").unwrap().consecutive_failures, 2);
    }

    #[tokio::test]
    async fn retries_stop_at_the_first_success() {
        let svc = HealthService::new(fast_settings(3));
        let fake = Fake::new("flaky", Healthy).script(&[Unhealthy, Disconnected]);
        let attempts = fake.attempts.clone();
        svc.register(Box::new(fake));
        svc.check_all().await;
        let r = svc.report("flaky").unwrap();
        assert_eq!(r.status, Healthy);
        assert_eq!(r.retry_count, 2);
        assert_eq!(r.consecutive_failures, 0);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn backoff_waits_between_attempts() {
        let mut settings = fast_settings(3);
        settings.backoff.base = Duration::from_millis(10);
        let svc = HealthService::new(settings);
        svc.register(Box::new(Fake::new("down", Unhealthy)));
        let started = Instant::now();
        svc.check_all().await;
        // 10 + 20 + 40 ms of backoff at least (sleeps never end early).
        assert!(started.elapsed() >= Duration::from_millis(70));
        assert_eq!(svc.report("down").unwrap().retry_count, 3);
    }

    #[test]
    fn default_backoff_doubles_from_100_ms_to_30_s() {
        let b = HealthSettings::default().backoff;
        assert_eq!(b, DEFAULT_BACKOFF);
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(20), Duration::from_secs(30));
        assert_eq!(b.delay(200), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn overall_is_the_worst_and_non_critical_only_degrades() {
        let svc = HealthService::new(fast_settings(0));
        svc.register(Box::new(Fake::new("a", Healthy)));
        let mut optional = Fake::new("cache", Disconnected);
        optional.critical = false;
        svc.register(Box::new(optional));
        svc.check_all().await;
        assert_eq!(svc.report("cache").unwrap().status, Disconnected);
        assert_eq!(svc.overall(), Degraded);
        svc.register(Box::new(Fake::new("db", Unhealthy)));
        svc.check_all().await;
        assert_eq!(svc.overall(), Unhealthy);
    }

    #[test]
    fn status_ranks() {
        let report =
            |status, critical| ComponentReport { status, critical, ..ComponentReport::unchecked("x", true) };
        assert_eq!(overall_of(&[]), Healthy);
        assert_eq!(overall_of(&[report(Healthy, true), report(Connecting, true)]), Degraded);
        assert_eq!(overall_of(&[report(Unknown, true)]), Degraded);
        assert_eq!(overall_of(&[report(Disconnected, true)]), Unhealthy);
        assert_eq!(overall_of(&[report(Unhealthy, false)]), Degraded);
        assert_eq!(Healthy.gauge_value(), 1.0);
        assert_eq!(Connecting.gauge_value(), 0.5);
        assert_eq!(Disconnected.gauge_value(), 0.0);
        assert_eq!(serde_json::to_value(Disconnected).unwrap(), "disconnected");
    }

    #[tokio::test]
    async fn register_replaces_a_component_of_the_same_name() {
        let svc = HealthService::new(fast_settings(0));
        svc.register(Box::new(Fake::new("broker", Unhealthy)));
        svc.register(Box::new(Fake::new("broker", Healthy)));
        assert_eq!(svc.names(), vec!["broker".to_owned()]);
        svc.check_all().await;
        assert_eq!(svc.overall(), Healthy);
    }

    #[tokio::test]
    async fn concurrent_check_all_calls_share_runs() {
        let svc = Arc::new(HealthService::new(fast_settings(0)));
        let fake = Fake::new("db", Healthy);
        let attempts = fake.attempts.clone();
        svc.register(Box::new(fake));
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let svc = Arc::clone(&svc);
                tokio::spawn(async move { svc.check_all().await })
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
        let n = attempts.load(Ordering::SeqCst);
        assert!((1..=8).contains(&n), "{n}");
        assert_eq!(svc.report("db").unwrap().status, Healthy);
    }

    struct Panicky;

    impl HealthCheck for Panicky {
        fn name(&self) -> &str {
            "panicky"
        }

        fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
            Box::pin(async { panic!("boom") })
        }
    }

    #[tokio::test]
    async fn a_panicking_check_is_unhealthy_not_fatal() {
        let svc = HealthService::new(fast_settings(0));
        svc.register(Box::new(Panicky));
        svc.check_all().await;
        assert_eq!(svc.report("panicky").unwrap().status, Unhealthy);
    }

    #[test]
    fn report_document_flattens_details() {
        let mut r = ComponentReport::unchecked("memory", true);
        r.details = serde_json::json!({"used_mb": 512, "status": "ignored"});
        r.retry_count = 1;
        // Straight to text, as the routes send it: a detail named like a
        // document field must not appear twice.
        let text = serde_json::to_string(&r.clone().document()).unwrap();
        assert_eq!(text.matches("\"status\"").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["used_mb"], 512);
        assert_eq!(v["status"], "unknown");
        assert_eq!(v["retry_count"], 1);
        assert_eq!(v["last_check"], Value::Null);
        for key in ["response_time_ms", "consecutive_failures", "critical"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v.as_object().unwrap().len(), 7, "{v}");

        r.details = Value::Null;
        let v = serde_json::to_value(r.clone().document()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 6, "{v}");
        r.details = serde_json::json!("just a string");
        let v = serde_json::to_value(r.document()).unwrap();
        assert_eq!(v["details"], "just a string");
    }
}
