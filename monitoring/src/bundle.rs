//! [`Monitoring`]: everything the server shares with its handlers, built
//! once at start-up, plus the background loops that keep it current.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock;
use crate::config::MonitoringConfig;
use crate::errors::ErrorTracker;
use crate::health::{
    ActivityCheck, ConnectionHealthSummary, ConnectionsCheck, HealthService, HealthSettings, MemoryCheck,
    MemoryThresholds, dependency_check,
};
use crate::lifetime::{self, StateFile};
use crate::performance::PerformanceMonitor;
use crate::source::ConnectionStatsSource;
use crate::system::SystemSampler;
use crate::trends::HealthTrends;

/// Recent error events kept for `/monitoring/errors`.
pub const DEFAULT_ERROR_CAPACITY: usize = 1000;
/// How often the sampler loop reads process and system figures.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Optional overrides for [`Monitoring::with_options`].
#[derive(Debug, Default, Clone)]
pub struct MonitoringOptions {
    /// Check timing; default from the config (100 ms backoff base).
    pub health: Option<HealthSettings>,
    /// A shared or fixed system sampler; default a real one.
    pub sampler: Option<Arc<SystemSampler>>,
    /// Recent errors kept; default [`DEFAULT_ERROR_CAPACITY`].
    pub error_capacity: Option<usize>,
}

/// Bundle the server builds once and shares (Arc) with its handlers.
pub struct Monitoring {
    pub errors: ErrorTracker,
    pub performance: PerformanceMonitor,
    pub health: HealthService,
    pub trends: HealthTrends,
    source: Arc<dyn ConnectionStatsSource>,
    sampler: Arc<SystemSampler>,
    version: &'static str,
    started: Instant,
    started_at: SystemTime,
    draining: AtomicBool,
    prometheus: Option<PrometheusHandle>,
    process: metrics_process::Collector,
    token: String,
    check_interval: Duration,
    state_file: Option<StateFile>,
}

impl std::fmt::Debug for Monitoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitoring")
            .field("version", &self.version)
            .field("draining", &self.is_draining())
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Monitoring {
    /// Builds the bundle with the built-in components (`connections`,
    /// `memory`, `activity`) and one per `[[monitoring.checks]]` entry.
    ///
    /// Install the Prometheus recorder first ([`crate::recorder::install`]):
    /// the hot-path metric handles are resolved here.
    pub fn new(
        cfg: &MonitoringConfig,
        version: &'static str,
        source: Arc<dyn ConnectionStatsSource>,
        prometheus: Option<PrometheusHandle>,
    ) -> Arc<Self> {
        Self::with_options(cfg, version, source, prometheus, MonitoringOptions::default())
    }

    pub fn with_options(
        cfg: &MonitoringConfig,
        version: &'static str,
        source: Arc<dyn ConnectionStatsSource>,
        prometheus: Option<PrometheusHandle>,
        options: MonitoringOptions,
    ) -> Arc<Self> {
        let sampler = options.sampler.unwrap_or_else(|| Arc::new(SystemSampler::new()));
        let health = HealthService::new(options.health.unwrap_or_else(|| HealthSettings::from_config(cfg)));
        health.register(Box::new(ConnectionsCheck::new(Arc::clone(&source))));
        health.register(Box::new(MemoryCheck::new(Arc::clone(&sampler), MemoryThresholds::from_config(cfg))));
        health.register(Box::new(ActivityCheck::new(
            Arc::clone(&source),
            Duration::from_secs(cfg.activity_warning_seconds),
        )));
        for check in &cfg.checks {
            health.register(dependency_check(check));
        }
        let process = metrics_process::Collector::new(crate::recorder::names::PROCESS_PREFIX);
        process.describe();
        let errors = ErrorTracker::new(options.error_capacity.unwrap_or(DEFAULT_ERROR_CAPACITY));
        let state_file = (!cfg.state_file.is_empty())
            .then(|| StateFile::open(std::path::PathBuf::from(&cfg.state_file), &errors));
        if let Some(file) = &state_file {
            // Written now, so the restart counts even if this process dies
            // before the first periodic save.
            file.save(Duration::ZERO, &errors);
            file.publish(Duration::ZERO);
        }

        Arc::new(Self {
            errors,
            performance: PerformanceMonitor::with_sampler(Arc::clone(&sampler)),
            health,
            trends: HealthTrends::new(),
            source,
            sampler,
            version,
            started: Instant::now(),
            started_at: SystemTime::now(),
            draining: AtomicBool::new(false),
            prometheus,
            process,
            token: cfg.token.clone(),
            check_interval: Duration::from_secs(cfg.check_interval_seconds.clamp(1, 86_400)),
            state_file,
        })
    }

    /// From now on `/health/ready` answers 503 `{"status":"draining"}`, so
    /// load balancers stop sending new clients during shutdown.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn version(&self) -> &'static str {
        self.version
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    pub fn source(&self) -> &Arc<dyn ConnectionStatsSource> {
        &self.source
    }

    pub fn sampler(&self) -> &Arc<SystemSampler> {
        &self.sampler
    }

    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.prometheus.as_ref()
    }

    /// The operator token (`monitoring.token`); empty = open.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// The `monitoring.state_file` figures, when one is configured.
    pub fn state_file(&self) -> Option<&StateFile> {
        self.state_file.as_ref()
    }

    /// Writes cumulative uptime and restarts to `monitoring.state_file`
    /// (if any). The server calls it at shutdown; the sampler loop calls it
    /// every [`lifetime::SAVE_INTERVAL`].
    pub fn save_state(&self) {
        if let Some(file) = &self.state_file {
            file.save(self.uptime(), &self.errors);
        }
    }

    /// Connection health right now, from the server's samples.
    pub fn connection_health(&self) -> ConnectionHealthSummary {
        ConnectionHealthSummary::from_samples(&self.source.connection_samples())
    }

    /// Takes this minute's connection-health sample for the trends and
    /// updates `tandem_connection_health_ratio`.
    pub fn sample_trends(&self) {
        let summary = self.connection_health();
        self.trends.record(clock::unix_secs(SystemTime::now()), summary.overall().percentage());
        metrics::gauge!(crate::recorder::names::CONNECTION_HEALTH_RATIO).set(summary.ratio());
    }

    /// Gauges computed on scrape: connection health ratio, uptime and the
    /// process metrics.
    pub fn refresh_gauges(&self) {
        metrics::gauge!(crate::recorder::names::CONNECTION_HEALTH_RATIO)
            .set(self.connection_health().ratio());
        metrics::gauge!(crate::recorder::names::UPTIME_SECONDS).set(self.uptime().as_secs_f64());
        metrics::gauge!(crate::recorder::names::MEMORY_USAGE_RATIO)
            .set(self.sampler.snapshot().usage_percentage() / 100.0);
        if let Some(file) = &self.state_file {
            file.publish(self.uptime());
        }
        self.process.collect();
    }

    /// The Prometheus text exposition, after refreshing the scrape-time
    /// gauges; `None` without a recorder.
    pub fn render_metrics(&self) -> Option<String> {
        let handle = self.prometheus.as_ref()?;
        self.refresh_gauges();
        let mut text = handle.render();
        self.performance.render_prometheus(&mut text);
        Some(text)
    }

    /// Runs every health check now, then every `check_interval_seconds`,
    /// forever.
    pub async fn run_health_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.health.check_all().await;
        }
    }

    /// Refreshes process/system figures every [`SAMPLE_INTERVAL`], takes the
    /// per-minute connection-health sample and runs the Prometheus upkeep,
    /// forever.
    pub async fn run_sampler_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sampled_minute = None;
        let mut saved = Instant::now();
        loop {
            tick.tick().await;
            self.sampler.refresh();
            if saved.elapsed() >= lifetime::SAVE_INTERVAL {
                self.save_state();
                saved = Instant::now();
            }
            if let Some(handle) = &self.prometheus {
                handle.run_upkeep();
            }
            let minute = clock::unix_secs(SystemTime::now()) / 60;
            if sampled_minute != Some(minute) {
                self.sample_trends();
                sampled_minute = Some(minute);
            }
        }
    }
}
