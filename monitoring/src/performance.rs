//! Latency and throughput figures for `/monitoring/performance`.
//!
//! Every delivered message records a sample, from many threads at once, so
//! the recording path takes no global lock: samples go to one of several
//! shards (picked by a per-thread index, so a thread keeps hitting its own
//! cache lines) and are merged only when someone reads the statistics.
//!
//! Each metric keeps two HDR histograms (microsecond resolution, three
//! significant digits) per shard: the current 5-minute window and the
//! previous one. Reports merge both, so they always cover the last 5 to 10
//! minutes — recent enough to show a regression, long enough to be stable.
//! Histograms are allocated on first use and dropped on rotation, so idle
//! metrics cost no resident memory.
//!
//! Deliveries also feed `tandem_message_delivery_seconds` here, as fixed
//! Prometheus buckets in the same shard ([`PerformanceMonitor::render_prometheus`]):
//! the exporter's own histogram keeps every sample in a growing bucket list
//! until its next upkeep, an allocation every few dozen deliveries.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tandem_protocol::Transport;

use crate::clock::{self, Clock, round};
use crate::recorder::{LATENCY_BUCKETS, names};
use crate::system::SystemSampler;

/// Length of one histogram window.
const WINDOW_SECS: u64 = 300;
/// Highest trackable value: one hour in microseconds (larger values saturate).
const HIGHEST_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
/// Seconds of request counts kept for `requests_per_second`.
const RATE_SECS: usize = 60;
const MAX_SHARDS: usize = 16;

/// [`LATENCY_BUCKETS`] in microseconds.
const DELIVERY_BOUNDS_US: [u64; LATENCY_BUCKETS.len()] = {
    let mut out = [0; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (LATENCY_BUCKETS[i] * 1e6 + 0.5) as u64;
        i += 1;
    }
    out
};

const DELIVERY_HELP: &str = "Time from publish accepted to the frame handed to the connection's writer.";

/// Prometheus buckets of one shard: counts per bucket (not cumulative; the
/// last one is `+Inf`) and the sum.
#[derive(Clone, Copy, Default)]
struct Buckets {
    counts: [u64; LATENCY_BUCKETS.len() + 1],
    sum_us: u64,
}

impl Buckets {
    fn record(&mut self, us: u64) {
        let i = DELIVERY_BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] = self.counts[i].saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    fn add(&mut self, other: &Buckets) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a = a.saturating_add(b);
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Prometheus text exposition of a histogram without labels.
    fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (le, n) in LATENCY_BUCKETS.iter().zip(self.counts) {
            cumulative = cumulative.saturating_add(n);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let total = cumulative.saturating_add(self.counts[LATENCY_BUCKETS.len()]);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_us as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
}

fn new_histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS).ok()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, HIGHEST_US)
}

/// One metric in one shard: two rotating windows plus all-time figures.
#[derive(Default)]
struct Windowed {
    /// `unix_secs / WINDOW_SECS` of `current`.
    epoch: u64,
    current: Option<Histogram<u64>>,
    previous: Option<Histogram<u64>>,
    count: u64,
    max_us: u64,
}

impl Windowed {
    fn record(&mut self, epoch: u64, us: u64) {
        self.rotate(epoch);
        if self.current.is_none() {
            self.current = new_histogram();
        }
        if let Some(h) = self.current.as_mut() {
            h.saturating_record(us);
        }
        self.count = self.count.saturating_add(1);
        self.max_us = self.max_us.max(us);
    }

    fn rotate(&mut self, epoch: u64) {
        // A clock stepping backwards keeps the current window.
        if epoch <= self.epoch {
            return;
        }
        self.previous = if epoch == self.epoch + 1 { self.current.take() } else { None };
        self.current = None;
        self.epoch = epoch;
    }

    /// Adds the windows still inside the report range at `epoch` to `out`.
    fn merge_into(&self, epoch: u64, out: &mut Merged) {
        out.count = out.count.saturating_add(self.count);
        out.all_time_max_us = out.all_time_max_us.max(self.max_us);
        let parts: [Option<&Histogram<u64>>; 2] = if self.epoch >= epoch {
            [self.current.as_ref(), self.previous.as_ref()]
        } else if self.epoch + 1 == epoch {
            [self.current.as_ref(), None]
        } else {
            [None, None]
        };
        for h in parts.into_iter().flatten() {
            if out.window.is_none() {
                out.window = new_histogram();
            }
            if let Some(w) = out.window.as_mut() {
                // Same bounds on both sides: addition cannot fail.
                let _ = w.add(h);
            }
        }
    }
}

/// A metric merged over shards.
#[derive(Default)]
struct Merged {
    window: Option<Histogram<u64>>,
    count: u64,
    all_time_max_us: u64,
}

/// Window figures of one metric, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summary {
    samples: u64,
    avg_ms: f64,
    max_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
}

fn us_to_ms(us: f64) -> f64 {
    round(us / 1000.0, 3)
}

impl Merged {
    fn summary(&self) -> Summary {
        match &self.window {
            Some(h) if !h.is_empty() => Summary {
                samples: h.len(),
                avg_ms: us_to_ms(h.mean()),
                max_ms: us_to_ms(h.max() as f64),
                p50_ms: us_to_ms(h.value_at_quantile(0.50) as f64),
                p95_ms: us_to_ms(h.value_at_quantile(0.95) as f64),
                p99_ms: us_to_ms(h.value_at_quantile(0.99) as f64),
            },
            _ => Summary::default(),
        }
    }

    fn all_time_max_ms(&self) -> f64 {
        us_to_ms(self.all_time_max_us as f64)
    }
}

struct Shard {
    websocket: Windowed,
    sse: Windowed,
    delivery: Windowed,
    heartbeat: Windowed,
    http: Windowed,
    /// Game backend round trips of commands.
    backend: Windowed,
    delivery_buckets: Buckets,
    delivery_failures: u64,
    /// `(unix second, requests in it)`, indexed by `second % RATE_SECS`.
    requests: [(u64, u64); RATE_SECS],
    /// The same for commands.
    commands: [(u64, u64); RATE_SECS],
    /// Commands by outcome, in [`COMMAND_OUTCOMES`] order.
    command_outcomes: [u64; COMMAND_OUTCOMES.len()],
}

/// The outcomes of a command (`tandem_commands_total{outcome}`); all but
/// `reply` and `cached` are errors.
pub const COMMAND_OUTCOMES: [&str; 9] = [
    "reply",
    "cached",
    "refused",
    "backend_timeout",
    "backend_unavailable",
    "backend_error",
    "no_backend",
    "rate_limited",
    "conflict",
];

fn count_second(slots: &mut [(u64, u64); RATE_SECS], secs: u64) {
    let slot = &mut slots[(secs % RATE_SECS as u64) as usize];
    if slot.0 != secs {
        *slot = (secs, 0);
    }
    slot.1 = slot.1.saturating_add(1);
}

fn last_minute(slots: &[(u64, u64); RATE_SECS], secs: u64) -> u64 {
    slots.iter().filter(|(sec, _)| *sec <= secs && secs - sec < RATE_SECS as u64).map(|(_, n)| n).sum()
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            websocket: Windowed::default(),
            sse: Windowed::default(),
            delivery: Windowed::default(),
            heartbeat: Windowed::default(),
            http: Windowed::default(),
            backend: Windowed::default(),
            delivery_buckets: Buckets::default(),
            delivery_failures: 0,
            requests: [(0, 0); RATE_SECS],
            commands: [(0, 0); RATE_SECS],
            command_outcomes: [0; COMMAND_OUTCOMES.len()],
        }
    }
}

/// A shard on its own cache lines so threads do not share them.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Round-robin per thread, so each worker thread keeps to one shard.
    static SHARD_HINT: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}

/// Prometheus handles resolved once, so the per-message path does not look
/// up the registry.
struct Handles {
    websocket_establishment: metrics::Histogram,
    sse_establishment: metrics::Histogram,
    heartbeat: metrics::Histogram,
}

impl Handles {
    fn new() -> Self {
        Self {
            websocket_establishment: metrics::histogram!(
                "tandem_connection_establishment_seconds",
                "transport" => "websocket"
            ),
            sse_establishment: metrics::histogram!(
                "tandem_connection_establishment_seconds",
                "transport" => "sse"
            ),
            heartbeat: metrics::histogram!("tandem_heartbeat_rtt_seconds"),
        }
    }
}

/// Connection establishment, message delivery, heartbeat and HTTP latency,
/// plus request rate and process resources.
///
/// Create it after installing the Prometheus recorder: it resolves its
/// Prometheus handles once, at construction.
pub struct PerformanceMonitor {
    clock: Arc<dyn Clock>,
    started: SystemTime,
    shards: Box<[Padded]>,
    sampler: Arc<SystemSampler>,
    handles: Handles,
    /// Lifecycle events waiting to be sent to the game backend.
    events_queued: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for PerformanceMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerformanceMonitor").field("shards", &self.shards.len()).finish_non_exhaustive()
    }
}

impl Default for PerformanceMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl PerformanceMonitor {
    /// A monitor with its own system sampler.
    pub fn new() -> Self {
        Self::with_sampler(Arc::new(SystemSampler::new()))
    }

    /// A monitor reading process CPU and RSS from `sampler` (refreshed by
    /// the sampler loop).
    pub fn with_sampler(sampler: Arc<SystemSampler>) -> Self {
        Self::with_clock(sampler, clock::system_clock())
    }

    pub(crate) fn with_clock(sampler: Arc<SystemSampler>, clock: Arc<dyn Clock>) -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4);
        let shards = (threads * 2).clamp(2, MAX_SHARDS);
        Self {
            started: clock.now(),
            clock,
            shards: (0..shards).map(|_| Padded::default()).collect(),
            sampler,
            handles: Handles::new(),
            events_queued: std::sync::atomic::AtomicI64::new(0),
        }
    }

    pub fn sampler(&self) -> &Arc<SystemSampler> {
        &self.sampler
    }

    fn with_shard(&self, f: impl FnOnce(&mut Shard, u64)) {
        let secs = self.clock.unix_secs();
        let i = SHARD_HINT.with(|h| *h) % self.shards.len();
        let mut shard = self.shards[i].0.lock();
        f(&mut shard, secs);
    }

    /// Time from the upgrade/stream request to the welcome frame.
    pub fn record_connection_establishment(&self, transport: Transport, d: Duration) {
        let us = micros(d);
        self.with_shard(|s, secs| match transport {
            Transport::WebSocket => s.websocket.record(secs / WINDOW_SECS, us),
            Transport::Sse => s.sse.record(secs / WINDOW_SECS, us),
        });
        match transport {
            Transport::WebSocket => self.handles.websocket_establishment.record(d.as_secs_f64()),
            Transport::Sse => self.handles.sse_establishment.record(d.as_secs_f64()),
        }
    }

    /// Time from publish accepted to the frame handed to the connection's
    /// writer. Allocates nothing once the window's histogram exists.
    pub fn record_delivery(&self, d: Duration) {
        let us = micros(d);
        self.with_shard(|s, secs| {
            s.delivery.record(secs / WINDOW_SECS, us);
            s.delivery_buckets.record(us);
        });
    }

    /// Appends the Prometheus figures kept here (`tandem_message_delivery_seconds`)
    /// to the exporter's text.
    pub fn render_prometheus(&self, out: &mut String) {
        let mut delivery = Buckets::default();
        for shard in self.shards.iter() {
            delivery.add(&shard.0.lock().delivery_buckets);
        }
        delivery.render(names::MESSAGE_DELIVERY_SECONDS, DELIVERY_HELP, out);
    }

    /// A delivery that could not be handed over; only counted here for the
    /// success rate (the server counts it in Prometheus with its reason).
    pub fn record_delivery_failure(&self) {
        self.with_shard(|s, _| s.delivery_failures = s.delivery_failures.saturating_add(1));
    }

    pub fn record_heartbeat_rtt(&self, d: Duration) {
        let us = micros(d);
        self.with_shard(|s, secs| s.heartbeat.record(secs / WINDOW_SECS, us));
        self.handles.heartbeat.record(d.as_secs_f64());
    }

    /// One HTTP request; `route` must be the route pattern (bounded), never
    /// the raw path.
    pub fn record_http_request(&self, method: &str, route: &str, status: u16, d: Duration) {
        let us = micros(d);
        self.with_shard(|s, secs| {
            s.http.record(secs / WINDOW_SECS, us);
            let slot = &mut s.requests[(secs % RATE_SECS as u64) as usize];
            if slot.0 != secs {
                *slot = (secs, 0);
            }
            slot.1 = slot.1.saturating_add(1);
        });
        let method = method_label(method);
        let route = route.to_owned();
        metrics::counter!(
            "tandem_http_requests_total",
            "method" => method.clone(),
            "route" => route.clone(),
            "status" => status.to_string()
        )
        .increment(1);
        metrics::histogram!("tandem_http_request_duration_seconds", "method" => method, "route" => route)
            .record(d.as_secs_f64());
    }

    /// One command answered: its outcome (a [`COMMAND_OUTCOMES`] label)
    /// and, when the game was called, how long it took.
    pub fn record_command(&self, outcome: &str, backend: Option<Duration>) {
        let i = COMMAND_OUTCOMES.iter().position(|o| *o == outcome);
        self.with_shard(|s, secs| {
            count_second(&mut s.commands, secs);
            if let Some(i) = i {
                s.command_outcomes[i] = s.command_outcomes[i].saturating_add(1);
            }
            if let Some(d) = backend {
                s.backend.record(secs / WINDOW_SECS, micros(d));
            }
        });
    }

    /// Lifecycle events queued (`+1`) or sent or given up (`-1`).
    pub fn add_events_queued(&self, delta: i64) {
        self.events_queued.fetch_add(delta, Ordering::Relaxed);
    }

    /// Merges every shard at `secs`.
    fn merged(&self, secs: u64) -> Snapshot {
        let epoch = secs / WINDOW_SECS;
        let mut out = Snapshot::default();
        for shard in self.shards.iter() {
            let s = shard.0.lock();
            s.websocket.merge_into(epoch, &mut out.websocket);
            s.sse.merge_into(epoch, &mut out.sse);
            s.delivery.merge_into(epoch, &mut out.delivery);
            s.heartbeat.merge_into(epoch, &mut out.heartbeat);
            s.http.merge_into(epoch, &mut out.http);
            s.backend.merge_into(epoch, &mut out.backend);
            out.commands_last_minute =
                out.commands_last_minute.saturating_add(last_minute(&s.commands, secs));
            for (a, b) in out.command_outcomes.iter_mut().zip(s.command_outcomes) {
                *a = a.saturating_add(b);
            }
            out.delivery_failures = out.delivery_failures.saturating_add(s.delivery_failures);
            out.requests_last_minute = out.requests_last_minute.saturating_add(
                s.requests
                    .iter()
                    .filter(|(sec, _)| *sec <= secs && secs - sec < RATE_SECS as u64)
                    .map(|(_, n)| n)
                    .sum(),
            );
        }
        out
    }

    fn rate(&self, requests: u64, now: SystemTime) -> f64 {
        let elapsed = now.duration_since(self.started).map(|d| d.as_secs()).unwrap_or(0);
        let span = elapsed.clamp(1, RATE_SECS as u64);
        round(requests as f64 / span as f64, 2)
    }

    /// Mean HTTP response time over the recent window, in milliseconds.
    pub fn avg_response_time_ms(&self) -> f64 {
        let mut m = Merged::default();
        let epoch = self.clock.unix_secs() / WINDOW_SECS;
        for shard in self.shards.iter() {
            shard.0.lock().http.merge_into(epoch, &mut m);
        }
        m.summary().avg_ms
    }

    /// HTTP requests per second over the last 60 s (or since start when
    /// younger).
    pub fn requests_per_second(&self) -> f64 {
        let now = self.clock.now();
        let secs = clock::unix_secs(now);
        let requests: u64 = self
            .shards
            .iter()
            .map(|shard| {
                let s = shard.0.lock();
                s.requests
                    .iter()
                    .filter(|(sec, _)| *sec <= secs && secs - sec < RATE_SECS as u64)
                    .map(|(_, n)| n)
                    .sum::<u64>()
            })
            .sum();
        self.rate(requests, now)
    }

    /// The `/monitoring/performance` document.
    pub fn stats(&self, active_connections: usize) -> PerformanceStats {
        let now = self.clock.now();
        let snap = self.merged(clock::unix_secs(now));
        let ws = snap.websocket.summary();
        let sse = snap.sse.summary();
        let delivery = snap.delivery.summary();
        let heartbeat = snap.heartbeat.summary();
        let http = snap.http.summary();
        let backend = snap.backend.summary();
        let successes = snap.delivery.count;
        let failures = snap.delivery_failures;
        let sent = successes.saturating_add(failures);
        let success_rate = if sent == 0 { 100.0 } else { round(successes as f64 * 100.0 / sent as f64, 2) };
        let system = self.sampler.snapshot();

        PerformanceStats {
            connection_establishment: EstablishmentStats {
                total_connections: snap.websocket.count.saturating_add(snap.sse.count),
                websocket_connections: snap.websocket.count,
                sse_connections: snap.sse.count,
                avg_websocket_establishment_ms: ws.avg_ms,
                avg_sse_establishment_ms: sse.avg_ms,
                max_websocket_establishment_ms: ws.max_ms,
                max_sse_establishment_ms: sse.max_ms,
                p95_websocket_establishment_ms: ws.p95_ms,
                p95_sse_establishment_ms: sse.p95_ms,
                p50_websocket_establishment_ms: ws.p50_ms,
                p50_sse_establishment_ms: sse.p50_ms,
                p99_websocket_establishment_ms: ws.p99_ms,
                p99_sse_establishment_ms: sse.p99_ms,
                all_time_max_websocket_establishment_ms: snap.websocket.all_time_max_ms(),
                all_time_max_sse_establishment_ms: snap.sse.all_time_max_ms(),
                window_samples: ws.samples.saturating_add(sse.samples),
            },
            message_delivery: DeliveryStats {
                total_messages_sent: sent,
                successful_deliveries: successes,
                failed_deliveries: failures,
                delivery_success_rate: success_rate,
                avg_delivery_time_ms: delivery.avg_ms,
                max_delivery_time_ms: delivery.max_ms,
                p95_delivery_time_ms: delivery.p95_ms,
                p50_delivery_time_ms: delivery.p50_ms,
                p99_delivery_time_ms: delivery.p99_ms,
                all_time_max_delivery_time_ms: snap.delivery.all_time_max_ms(),
                window_samples: delivery.samples,
            },
            system_performance: SystemStats {
                avg_response_time_ms: http.avg_ms,
                requests_per_second: self.rate(snap.requests_last_minute, now),
                memory_usage_mb: round(system.process_rss_mb(), 1),
                cpu_usage_percent: round(system.process_cpu_percent, 1),
                active_connections,
                p95_response_time_ms: http.p95_ms,
                p99_response_time_ms: http.p99_ms,
            },
            heartbeat_rtt: HeartbeatStats {
                count: snap.heartbeat.count,
                avg_ms: heartbeat.avg_ms,
                max_ms: heartbeat.max_ms,
                p50_ms: heartbeat.p50_ms,
                p95_ms: heartbeat.p95_ms,
                p99_ms: heartbeat.p99_ms,
            },
            backend: BackendStats {
                commands_total: snap.command_outcomes.iter().sum(),
                commands_per_second: self.rate(snap.commands_last_minute, now),
                avg_backend_ms: backend.avg_ms,
                max_backend_ms: backend.max_ms,
                p50_backend_ms: backend.p50_ms,
                p95_backend_ms: backend.p95_ms,
                p99_backend_ms: backend.p99_ms,
                errors: COMMAND_OUTCOMES
                    .iter()
                    .zip(snap.command_outcomes)
                    .filter(|(o, n)| !matches!(**o, "reply" | "cached") && *n > 0)
                    .map(|(o, n)| (*o, n))
                    .collect(),
                lifecycle_events_queued: self.events_queued.load(Ordering::Relaxed).max(0) as u64,
                window_samples: backend.samples,
            },
            window_seconds: WINDOW_SECS * 2,
            timestamp: clock::rfc3339(now),
        }
    }
}

/// `backend`: players' commands and the game backend answering them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendStats {
    /// Commands answered since start, every outcome.
    pub commands_total: u64,
    /// Over the last 60 s (or since start when younger).
    pub commands_per_second: f64,
    /// The game's round trip for a command (HTTP or embedded).
    pub avg_backend_ms: f64,
    pub max_backend_ms: f64,
    pub p50_backend_ms: f64,
    pub p95_backend_ms: f64,
    pub p99_backend_ms: f64,
    /// Commands answered with an error since start, by code.
    pub errors: std::collections::BTreeMap<&'static str, u64>,
    /// Lifecycle events waiting to be sent.
    pub lifecycle_events_queued: u64,
    pub window_samples: u64,
}

/// The `/monitoring/performance` document. Durations are milliseconds
/// (3 decimals); window figures (`avg`, `max`, `p50`/`p95`/`p99`,
/// `window_samples`) cover the last 5 to 10 minutes, counts and `all_time_max`
/// everything since start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerformanceStats {
    pub connection_establishment: EstablishmentStats,
    pub message_delivery: DeliveryStats,
    pub system_performance: SystemStats,
    pub heartbeat_rtt: HeartbeatStats,
    pub backend: BackendStats,
    /// Longest span the window figures cover.
    pub window_seconds: u64,
    /// RFC 3339, now.
    pub timestamp: String,
}

/// `connection_establishment`: upgrade/stream request to welcome frame.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EstablishmentStats {
    pub total_connections: u64,
    pub websocket_connections: u64,
    pub sse_connections: u64,
    pub avg_websocket_establishment_ms: f64,
    pub avg_sse_establishment_ms: f64,
    pub max_websocket_establishment_ms: f64,
    pub max_sse_establishment_ms: f64,
    pub p95_websocket_establishment_ms: f64,
    pub p95_sse_establishment_ms: f64,
    pub p50_websocket_establishment_ms: f64,
    pub p50_sse_establishment_ms: f64,
    pub p99_websocket_establishment_ms: f64,
    pub p99_sse_establishment_ms: f64,
    pub all_time_max_websocket_establishment_ms: f64,
    pub all_time_max_sse_establishment_ms: f64,
    pub window_samples: u64,
}

/// `message_delivery`: publish accepted to frame handed to the writer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryStats {
    pub total_messages_sent: u64,
    pub successful_deliveries: u64,
    pub failed_deliveries: u64,
    /// Percent, 2 decimals; 100 before the first delivery.
    pub delivery_success_rate: f64,
    pub avg_delivery_time_ms: f64,
    pub max_delivery_time_ms: f64,
    pub p95_delivery_time_ms: f64,
    pub p50_delivery_time_ms: f64,
    pub p99_delivery_time_ms: f64,
    pub all_time_max_delivery_time_ms: f64,
    pub window_samples: u64,
}

/// `system_performance`: HTTP latency and rate, process resources.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SystemStats {
    pub avg_response_time_ms: f64,
    /// Over the last 60 s (or since start when younger).
    pub requests_per_second: f64,
    /// Process RSS, 1 decimal.
    pub memory_usage_mb: f64,
    pub cpu_usage_percent: f64,
    pub active_connections: usize,
    pub p95_response_time_ms: f64,
    pub p99_response_time_ms: f64,
}

/// `heartbeat_rtt`: ping to pong.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeartbeatStats {
    pub count: u64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Default)]
struct Snapshot {
    websocket: Merged,
    sse: Merged,
    delivery: Merged,
    heartbeat: Merged,
    http: Merged,
    backend: Merged,
    delivery_failures: u64,
    requests_last_minute: u64,
    commands_last_minute: u64,
    command_outcomes: [u64; COMMAND_OUTCOMES.len()],
}

/// Common methods as static labels (no allocation); anything else as given.
fn method_label(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    match KNOWN.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::clock::ManualClock;
    use crate::system::SystemSnapshot;

    const T0: u64 = 1_736_193_300; // a multiple of 300

    fn monitor() -> (PerformanceMonitor, Arc<ManualClock>) {
        let clock = ManualClock::at(T0);
        let sampler = Arc::new(SystemSampler::fixed(SystemSnapshot {
            total_memory_bytes: 4 << 30,
            used_memory_bytes: 1 << 30,
            process_rss_bytes: 512 << 20,
            process_cpu_percent: 25.34,
            sampled_at: None,
        }));
        (PerformanceMonitor::with_clock(sampler, clock.clone()), clock)
    }

    /// The document as the route sends it.
    fn stats(m: &PerformanceMonitor, active_connections: usize) -> Value {
        serde_json::to_value(m.stats(active_connections)).unwrap()
    }

    fn close(actual: &Value, expected: f64, tolerance: f64) {
        let a = actual.as_f64().unwrap_or(f64::NAN);
        assert!((a - expected).abs() <= tolerance, "{a} is not within {tolerance} of {expected}");
    }

    #[test]
    fn delivery_percentiles_average_max_and_success_rate() {
        let (m, _) = monitor();
        for ms in 1..=100 {
            m.record_delivery(Duration::from_millis(ms));
        }
        for _ in 0..3 {
            m.record_delivery_failure();
        }
        let s = stats(&m, 7);
        let d = &s["message_delivery"];
        close(&d["p95_delivery_time_ms"], 95.0, 0.1);
        close(&d["p50_delivery_time_ms"], 50.0, 0.1);
        close(&d["p99_delivery_time_ms"], 99.0, 0.1);
        close(&d["avg_delivery_time_ms"], 50.5, 0.1);
        close(&d["max_delivery_time_ms"], 100.0, 0.1);
        assert_eq!(d["all_time_max_delivery_time_ms"], 100.0);
        assert_eq!(d["total_messages_sent"], 103);
        assert_eq!(d["successful_deliveries"], 100);
        assert_eq!(d["failed_deliveries"], 3);
        assert_eq!(d["delivery_success_rate"], 97.09);
        assert_eq!(s["system_performance"]["active_connections"], 7);
        assert_eq!(s["system_performance"]["memory_usage_mb"], 512.0);
        assert_eq!(s["system_performance"]["cpu_usage_percent"], 25.3);
    }

    #[test]
    fn empty_monitor_reports_zeroes_and_full_success() {
        let (m, _) = monitor();
        let s = stats(&m, 0);
        assert_eq!(s["message_delivery"]["delivery_success_rate"], 100.0);
        assert_eq!(s["message_delivery"]["avg_delivery_time_ms"], 0.0);
        assert_eq!(s["connection_establishment"]["total_connections"], 0);
        assert_eq!(s["system_performance"]["requests_per_second"], 0.0);
    }

    #[test]
    fn commands_report_rate_backend_latency_errors_and_queue() {
        let (m, clock) = monitor();
        for ms in 1..=100 {
            m.record_command("reply", Some(Duration::from_millis(ms)));
        }
        m.record_command("cached", None);
        m.record_command("backend_timeout", Some(Duration::from_millis(1000)));
        m.record_command("rate_limited", None);
        m.add_events_queued(3);
        m.add_events_queued(-1);
        clock.advance(Duration::from_secs(10));
        let b = &stats(&m, 0)["backend"];
        assert_eq!(b["commands_total"], 103);
        close(&b["commands_per_second"], 10.3, 0.01);
        close(&b["p50_backend_ms"], 51.0, 0.1);
        close(&b["max_backend_ms"], 1000.0, 1.0);
        assert_eq!(b["errors"], serde_json::json!({"backend_timeout": 1, "rate_limited": 1}));
        assert_eq!(b["lifecycle_events_queued"], 2);
        assert_eq!(b["window_samples"], 101);
    }

    #[test]
    fn establishment_is_split_by_transport() {
        let (m, _) = monitor();
        m.record_connection_establishment(Transport::WebSocket, Duration::from_millis(40));
        m.record_connection_establishment(Transport::WebSocket, Duration::from_millis(60));
        m.record_connection_establishment(Transport::Sse, Duration::from_millis(30));
        let c = &stats(&m, 0)["connection_establishment"];
        assert_eq!(c["total_connections"], 3);
        assert_eq!(c["websocket_connections"], 2);
        assert_eq!(c["sse_connections"], 1);
        close(&c["avg_websocket_establishment_ms"], 50.0, 0.1);
        close(&c["max_websocket_establishment_ms"], 60.0, 0.1);
        close(&c["p95_sse_establishment_ms"], 30.0, 0.1);
    }

    #[test]
    fn windows_rotate_every_five_minutes_and_expire_after_two() {
        let (m, clock) = monitor();
        m.record_heartbeat_rtt(Duration::from_millis(10));
        clock.advance(Duration::from_secs(WINDOW_SECS));
        // Previous window: still reported.
        m.record_heartbeat_rtt(Duration::from_millis(20));
        let h = stats(&m, 0)["heartbeat_rtt"].clone();
        close(&h["avg_ms"], 15.0, 0.05);
        assert_eq!(h["count"], 2);
        // Two rotations later only the second sample remains...
        clock.advance(Duration::from_secs(WINDOW_SECS));
        let h = stats(&m, 0)["heartbeat_rtt"].clone();
        close(&h["avg_ms"], 20.0, 0.05);
        // ...then nothing, but the all-time count stays.
        clock.advance(Duration::from_secs(WINDOW_SECS));
        let h = stats(&m, 0)["heartbeat_rtt"].clone();
        assert_eq!(h["avg_ms"], 0.0);
        assert_eq!(h["count"], 2);
    }

    #[test]
    fn requests_per_second_counts_the_last_minute() {
        let (m, clock) = monitor();
        clock.advance(Duration::from_secs(120));
        for _ in 0..120 {
            m.record_http_request("GET", "/health", 200, Duration::from_millis(2));
        }
        clock.advance(Duration::from_secs(30));
        for _ in 0..60 {
            m.record_http_request("POST", "/api/publish", 200, Duration::from_millis(4));
        }
        assert_eq!(m.requests_per_second(), 3.0);
        let sp = &stats(&m, 0)["system_performance"];
        assert_eq!(sp["requests_per_second"], 3.0);
        close(&sp["avg_response_time_ms"], 2.667, 0.01);
        close(&serde_json::json!(m.avg_response_time_ms()), 2.667, 0.01);
        // A minute later the first burst has left the rate window.
        clock.advance(Duration::from_secs(31));
        assert_eq!(m.requests_per_second(), 1.0);
    }

    #[test]
    fn young_monitor_divides_by_its_age() {
        let (m, clock) = monitor();
        for _ in 0..20 {
            m.record_http_request("GET", "/health", 200, Duration::from_millis(1));
        }
        clock.advance(Duration::from_secs(10));
        assert_eq!(m.requests_per_second(), 2.0);
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let (m, _) = monitor();
        let m = Arc::new(m);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        m.record_delivery(Duration::from_micros(100 + i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recording thread");
        }
        let d = &stats(&m, 0)["message_delivery"];
        assert_eq!(d["successful_deliveries"], 4000);
        assert_eq!(d["window_samples"], 4000);
    }

    #[test]
    fn out_of_range_durations_saturate() {
        let (m, _) = monitor();
        m.record_delivery(Duration::ZERO);
        m.record_delivery(Duration::from_secs(10 * 3600));
        let d = &stats(&m, 0)["message_delivery"];
        assert_eq!(d["successful_deliveries"], 2);
        close(&d["max_delivery_time_ms"], 3_600_000.0, 3_600.0);
    }

    #[test]
    fn delivery_buckets_render_as_a_cumulative_prometheus_histogram() {
        let (m, _) = monitor();
        for d in [Duration::from_micros(400), Duration::from_micros(500), Duration::from_millis(3)] {
            m.record_delivery(d);
        }
        m.record_delivery(Duration::from_secs(20));
        let mut text = String::new();
        m.render_prometheus(&mut text);
        let name = names::MESSAGE_DELIVERY_SECONDS;
        for line in [
            format!("# TYPE {name} histogram"),
            format!("{name}_bucket{{le=\"0.0005\"}} 2"),
            format!("{name}_bucket{{le=\"0.001\"}} 2"),
            format!("{name}_bucket{{le=\"0.005\"}} 3"),
            format!("{name}_bucket{{le=\"10\"}} 3"),
            format!("{name}_bucket{{le=\"+Inf\"}} 4"),
            format!("{name}_sum 20.0039"),
            format!("{name}_count 4"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.lines().filter(|l| l.starts_with(&format!("{name}_bucket"))).count(), 15);
    }

    #[test]
    fn method_labels_are_static_when_known() {
        assert!(matches!(method_label("GET"), Cow::Borrowed("GET")));
        assert!(matches!(method_label("BREW"), Cow::Owned(_)));
    }
}
