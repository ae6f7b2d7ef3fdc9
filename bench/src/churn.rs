//! `churn`: the long soak (issue 11, target 6). Connections come and go
//! for `--minutes` (a bounded number in flight, half WebSocket and half
//! SSE, each held for a while and then closed, cleanly or not) while
//! publications flow to all of them; the server's RSS and open descriptors
//! are sampled every `--sample-seconds`. Then the churn stops, and once
//! the server has let go of everything (sessions expired) every gauge of
//! `/metrics` and the live counts of `/monitoring/*` are compared with
//! their values at the start. One PASS/FAIL line per check and a final
//! verdict; the process exits non-zero when a check failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Kind, connect, procfs, scan_ts};

#[derive(clap::Args)]
pub struct ChurnArgs {
    /// Minutes of churn (the target is 30).
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Seconds between RSS and descriptor samples.
    #[arg(long, default_value_t = 60)]
    sample_seconds: u64,
    /// Connections open at once (each lane holds one at a time).
    #[arg(long, default_value_t = 500)]
    in_flight: usize,
    /// Shortest and longest time a connection is held, in milliseconds;
    /// below the server's heartbeat timeout, since these clients never
    /// answer a ping.
    #[arg(long, default_value_t = 1_000)]
    min_hold_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    max_hold_ms: u64,
    /// Connections opened in all, at most.
    #[arg(long, default_value_t = 500_000)]
    max_connects: u64,
    /// Publications per second to the channel every connection joins.
    #[arg(long, default_value_t = 10)]
    publish_rate: u32,
    /// API key configured on the server (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// Operator token for `/metrics` and `/monitoring/*`, if the server has one.
    #[arg(long, default_value = "")]
    monitoring_token: String,
    /// RSS samples before this minute are warm-up, not judged for flatness
    /// (at most a third of the run).
    #[arg(long, default_value_t = 5.0)]
    warmup_minutes: f64,
    /// Flat means: RSS growth over the judged window, by a straight-line
    /// fit, within this share of the window's mean RSS.
    #[arg(long, default_value_t = 5.0)]
    rss_tolerance_percent: f64,
    /// Longest wait after the churn for the server to return to idle
    /// (sessions outlive their connections by `session.resume_window_seconds`).
    #[arg(long, default_value_t = 300)]
    settle_seconds: u64,
}

/// Counts the load generator keeps while the churn runs.
#[derive(Default)]
struct Counts {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    open: AtomicU64,
    delivered: AtomicU64,
    published: AtomicU64,
    publish_failures: AtomicU64,
}

/// The server's idle state: every gauge series of `/metrics` and the live
/// counts of `/monitoring/*`, by name.
type State = BTreeMap<String, f64>;

/// Gauges that describe the process, the machine or time rather than load
/// the server holds; printed, not judged (RSS is judged by its samples).
fn describes_environment(series: &str) -> bool {
    const NAMES: [&str; 9] = [
        "tandem_uptime_seconds",
        "tandem_uptime_total_seconds",
        "tandem_build_info",
        "tandem_memory_usage_ratio",
        "tandem_process_resident_memory_bytes",
        "tandem_process_virtual_memory_bytes",
        "tandem_process_virtual_memory_max_bytes",
        "tandem_process_start_time_seconds",
        "tandem_process_max_fds",
    ];
    let name = series.split('{').next().unwrap_or(series);
    NAMES.contains(&name)
}

/// Every series of one metric type (`gauge`, `counter`) of a Prometheus
/// text exposition, by `name{labels}`.
fn series(text: &str, kind: &str) -> State {
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    let mut out = State::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (f.next(), f.next()) {
                kinds.insert(name, kind);
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // `name{labels} value [timestamp]`; label values may hold spaces.
        let (series, value) = match line.rfind('}') {
            Some(end) => (&line[..=end], line[end + 1..].split_whitespace().next()),
            None => {
                let mut f = line.split_whitespace();
                (f.next().unwrap_or(""), f.next())
            }
        };
        let name = series.split('{').next().unwrap_or(series);
        if kinds.get(name) == Some(&kind) {
            if let Some(v) = value.and_then(|v| v.parse::<f64>().ok()) {
                out.insert(series.to_owned(), v);
            }
        }
    }
    out
}

/// Numbers in a `/monitoring/*` answer that describe what is live now,
/// by their JSON path: everything but windowed statistics, totals and
/// trends (all of `/monitoring/performance` but its live connection count).
fn live_counts(route: &str, v: &serde_json::Value, out: &mut State) {
    fn walk(path: &str, v: &serde_json::Value, out: &mut State) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    walk(&format!("{path}.{k}"), x, out);
                }
            }
            serde_json::Value::Number(n) if is_live(path) => {
                out.insert(path.to_owned(), n.as_f64().unwrap_or(f64::NAN));
            }
            // A list (of live connections, say) is judged by its length.
            serde_json::Value::Array(a) if is_live(path) => {
                out.insert(format!("{path}[len]"), a.len() as f64);
            }
            _ => {}
        }
    }
    walk(route, v, out);
}

fn is_live(path: &str) -> bool {
    if let Some(rest) = path.strip_prefix("/monitoring/performance") {
        return rest == ".system_performance.active_connections";
    }
    !path.contains(".health_trends")
}

/// One lane's pseudo-random hold for its `n`th connection (splitmix64).
fn hold_for(n: u64, min_ms: u64, max_ms: u64) -> Duration {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    Duration::from_millis(min_ms + z % (max_ms.saturating_sub(min_ms) + 1))
}

/// Reads deliveries until `until`, counting their stamps.
async fn hold(s: &mut TcpStream, until: tokio::time::Instant, counts: &Counts) {
    let mut buf = vec![0u8; 4096];
    let mut carry = Vec::new();
    loop {
        let n = match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        carry.extend_from_slice(&buf[..n]);
        let done = scan_ts(&carry, |_| {
            counts.delivered.fetch_add(1, Ordering::Relaxed);
        });
        carry.drain(..done);
    }
}

/// A client close frame (code 1000, zero mask), then the server's close,
/// bounded.
async fn close_cleanly(s: &mut TcpStream) {
    if s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).await.is_ok() {
        let mut buf = [0u8; 512];
        let until = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
        }
    }
}

async fn lane(
    addr: Arc<str>,
    lane: usize,
    args: Arc<ChurnArgs>,
    end: tokio::time::Instant,
    counts: Arc<Counts>,
) {
    let mut turn = 0u64;
    while tokio::time::Instant::now() < end {
        let n = counts.connects.fetch_add(1, Ordering::Relaxed);
        if n >= args.max_connects {
            counts.connects.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let kind = if (lane as u64 + turn) % 2 == 0 { Kind::Ws } else { Kind::Sse };
        let player = format!("c{n}");
        let opened = tokio::time::timeout(
            Duration::from_secs(10),
            connect(&addr, kind, &player, "&channels=room:soak", None),
        )
        .await;
        let mut s = match opened {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("connect failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => {
                counts.connect_failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("connect timed out");
                continue;
            }
        };
        counts.open.fetch_add(1, Ordering::Relaxed);
        let until = (tokio::time::Instant::now() + hold_for(n, args.min_hold_ms, args.max_hold_ms)).min(end);
        hold(&mut s, until, &counts).await;
        // Every other WebSocket says goodbye; the rest just vanish.
        if matches!(kind, Kind::Ws) && turn % 4 < 2 {
            close_cleanly(&mut s).await;
        }
        drop(s);
        counts.open.fetch_sub(1, Ordering::Relaxed);
        turn += 1;
    }
}

async fn publisher(base: String, args: Arc<ChurnArgs>, end: tokio::time::Instant, counts: Arc<Counts>) {
    if args.publish_rate == 0 {
        return;
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let url = format!("{base}/api/publish");
    let body =
        serde_json::json!({"channel": "room:soak", "event": "tick", "data": {"text": "x".repeat(100)}});
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.publish_rate)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let t = ticks.tick().await;
        if t >= end {
            return;
        }
        match client.post(&url).bearer_auth(&args.api_key).json(&body).send().await {
            Ok(r) if r.status().is_success() => counts.published.fetch_add(1, Ordering::Relaxed),
            _ => counts.publish_failures.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// What the server reports at one moment.
struct Snapshot {
    /// Gauges and live counts: at idle, they must read as at the start.
    live: State,
    counters: State,
}

/// Sum of the series of one counter, all labels, or those whose labels
/// hold `label` (e.g. `source="api"`).
fn counter_sum(counters: &State, name: &str, label: &str) -> f64 {
    counters
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(name) && k.contains(label))
        .map(|(_, v)| v)
        .sum()
}

/// The server's gauges, live counts and counters now. A fresh connection
/// per request, so the reading holds no descriptor open afterwards.
async fn read_state(base: &str, token: &str) -> Result<Snapshot, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| e.to_string())?;
    let get = |path: &str| {
        let mut r = client.get(format!("{base}{path}"));
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        r.send()
    };
    let text = get("/metrics").await.map_err(|e| format!("/metrics: {e}"))?;
    if !text.status().is_success() {
        return Err(format!("/metrics answered {}", text.status()));
    }
    let text = text.text().await.map_err(|e| format!("/metrics: {e}"))?;
    let (mut live, counters) = (series(&text, "gauge"), series(&text, "counter"));
    for route in ["/monitoring/connections", "/monitoring/connection-health", "/monitoring/performance"] {
        let r = get(route).await.map_err(|e| format!("{route}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{route} answered {}", r.status()));
        }
        let v: serde_json::Value = r.json().await.map_err(|e| format!("{route}: {e}"))?;
        live_counts(route, &v, &mut live);
    }
    Ok(Snapshot { live, counters })
}

/// Straight-line fit of `(minute, kib)`: the slope in KiB per minute.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (sxy, sxx) =
        points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    (sxx > 0.0).then(|| sxy / sxx)
}

/// What differs between the idle state before and after: one entry per
/// judged series that changed, appeared or vanished.
fn differences(start: &State, end: &State) -> Vec<(String, Option<f64>, Option<f64>)> {
    let mut names: Vec<&String> = start.keys().chain(end.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !describes_environment(n))
        .filter_map(|n| {
            let (a, b) = (start.get(n).copied(), end.get(n).copied());
            // A series that appeared at 0 (a label first used) is idle too.
            let same = match (a, b) {
                (Some(a), Some(b)) => a == b,
                (None, Some(b)) | (Some(b), None) => b == 0.0,
                (None, None) => true,
            };
            (!same).then(|| (n.clone(), a, b))
        })
        .collect()
}

/// Runs the soak; `false` when a check failed.
pub async fn churn(base: &str, addr: &str, pid: u32, args: ChurnArgs) -> bool {
    let minutes = args.minutes.clamp(1, 240);
    let sample_every = Duration::from_secs(args.sample_seconds.clamp(1, 3_600));
    let in_flight = args.in_flight.clamp(1, 20_000);
    let settle = Duration::from_secs(args.settle_seconds.min(3_600));
    let token = args.monitoring_token.clone();
    let start = match read_state(base, &token).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("soak: cannot read the server's state: {e}");
            return false;
        }
    };
    let (rss0, fds0) = (procfs::rss_kib(pid), procfs::open_fds(pid));
    println!(
        "soak: {minutes} min of churn, {in_flight} connections in flight (half WebSocket, half SSE), each held \
         {}–{} ms, {} publications/s to every one; RSS and descriptors of pid {pid} every {} s",
        args.min_hold_ms,
        args.max_hold_ms,
        args.publish_rate,
        sample_every.as_secs()
    );
    let start_state = &start.live;
    println!(
        "soak: at start RSS {rss0} KiB, {fds0} descriptors, {} gauges and live counts",
        start_state.len()
    );
    println!("minute\trss_kib\tfds\topen\tconnects\tfailed\tdelivered\tpublished");

    let args = Arc::new(args);
    let counts = Arc::new(Counts::default());
    let began = tokio::time::Instant::now();
    let end = began + Duration::from_secs(minutes * 60);
    let addr: Arc<str> = Arc::from(addr);
    let mut tasks: Vec<_> = (0..in_flight)
        .map(|i| tokio::spawn(lane(Arc::clone(&addr), i, Arc::clone(&args), end, Arc::clone(&counts))))
        .collect();
    tasks.push(tokio::spawn(publisher(base.to_owned(), Arc::clone(&args), end, Arc::clone(&counts))));

    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut next = began + sample_every;
    // A sample at the very end would catch the lanes closing: none there.
    while next < end {
        tokio::time::sleep_until(next).await;
        let minute = (next - began).as_secs_f64() / 60.0;
        let (rss, fds) = (procfs::rss_kib(pid), procfs::open_fds(pid));
        samples.push((minute, rss as f64));
        let c = &counts;
        println!(
            "{minute:.1}\t{rss}\t{fds}\t{}\t{}\t{}\t{}\t{}",
            c.open.load(Ordering::Relaxed),
            c.connects.load(Ordering::Relaxed),
            c.connect_failures.load(Ordering::Relaxed),
            c.delivered.load(Ordering::Relaxed),
            c.published.load(Ordering::Relaxed),
        );
        next += sample_every;
    }
    for t in tasks {
        let _ = t.await;
    }
    let churn_took = began.elapsed();

    // Settle: poll until the server's state and descriptors are back, bounded.
    let settle_from = Instant::now();
    let (end_state, fds1) = loop {
        let state = read_state(base, &token).await;
        let fds = procfs::open_fds(pid);
        let back = state.as_ref().is_ok_and(|s| differences(start_state, &s.live).is_empty()) && fds <= fds0;
        if back || settle_from.elapsed() >= settle {
            break (state, fds);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let settled_in = settle_from.elapsed();
    let rss1 = procfs::rss_kib(pid);

    let c = &counts;
    let (connects, failures) =
        (c.connects.load(Ordering::Relaxed), c.connect_failures.load(Ordering::Relaxed));
    let (published, publish_failures) =
        (c.published.load(Ordering::Relaxed), c.publish_failures.load(Ordering::Relaxed));
    let delivered = c.delivered.load(Ordering::Relaxed);
    println!(
        "soak: churn ran {:.1} min: {connects} connects ({failures} failed), {published} publications \
         ({publish_failures} failed), {delivered} deliveries; waited {:.0} s for idle; RSS {rss0} KiB at start, \
         {rss1} KiB idle at the end ({:+.1} MiB)",
        churn_took.as_secs_f64() / 60.0,
        settled_in.as_secs_f64(),
        (rss1 as f64 - rss0 as f64) / 1024.0
    );

    let (mut failed, mut checks) = (Vec::new(), 0);
    let mut verdict = |check: &str, ok: bool, detail: String| {
        checks += 1;
        println!("{} {check}: {detail}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            failed.push(check.to_owned());
        }
    };
    verdict("connects", connects > 0 && failures == 0, format!("{connects} opened, {failures} failed"));
    verdict(
        "publications",
        published > 0 && publish_failures == 0,
        format!("{published} accepted, {publish_failures} failed"),
    );
    verdict("deliveries", delivered > 0, format!("{delivered} received"));

    // A short run keeps two thirds of itself for the judgement.
    let warmup = args.warmup_minutes.clamp(0.0, minutes as f64 / 3.0);
    let judged: Vec<(f64, f64)> = samples.iter().copied().filter(|(m, _)| *m >= warmup).collect();
    match slope(&judged) {
        Some(kib_per_min) => {
            let ((first, rss_first), (last, rss_last)) = (judged[0], judged[judged.len() - 1]);
            let mean = judged.iter().map(|(_, y)| y).sum::<f64>() / judged.len() as f64;
            let growth = kib_per_min * (last - first);
            let share = 100.0 * growth / mean.max(1.0);
            verdict(
                "rss flat after warm-up",
                share <= args.rss_tolerance_percent,
                format!(
                    "minutes {first:.1}–{last:.1} ({} samples, {rss_first} → {rss_last} KiB): slope \
                     {kib_per_min:+.1} KiB/min, fitted growth {:+.1} MiB = {share:+.2}% of the mean {:.1} MiB \
                     (tolerance {}%)",
                    judged.len(),
                    growth / 1024.0,
                    mean / 1024.0,
                    args.rss_tolerance_percent
                ),
            );
        }
        None => verdict(
            "rss flat after warm-up",
            false,
            format!("{} samples after minute {warmup:.1}: need at least 2", judged.len()),
        ),
    }
    verdict("descriptors", fds1 <= fds0, format!("{fds0} at start, {fds1} at the end"));

    match end_state {
        Ok(end) => {
            let end_state = &end.live;
            let diffs = differences(start_state, end_state);
            for (name, value) in start_state {
                if describes_environment(name) {
                    continue;
                }
                if let Some((_, _, b)) = diffs.iter().find(|(n, _, _)| n == name) {
                    let b = b.map_or("absent".to_owned(), |b| b.to_string());
                    verdict(name, false, format!("{value} at start, {b} at the end"));
                } else {
                    verdict(name, true, format!("{value} at start and at the end"));
                }
            }
            for (name, _, b) in diffs.iter().filter(|(n, _, _)| !start_state.contains_key(n)) {
                verdict(name, false, format!("absent at start, {} at the end", b.unwrap_or(f64::NAN)));
            }
            // Counters only grow: they must agree with what this load
            // generator did, and the trouble counters stay where they were.
            let delta = |name: &str, label: &str| {
                counter_sum(&end.counters, name, label) - counter_sum(&start.counters, name, label)
            };
            let accepted = delta("tandem_connections_total", "outcome=\"accepted\"");
            let opened = connects - failures;
            verdict(
                "tandem_connections_total{outcome=\"accepted\"}",
                accepted == opened as f64,
                format!("+{accepted}, {opened} connections opened"),
            );
            let api = delta("tandem_publications_total", "source=\"api\"");
            verdict(
                "tandem_publications_total{source=\"api\"}",
                api == published as f64,
                format!("+{api}, {published} publications accepted"),
            );
            let sent = delta("tandem_messages_delivered_total", "");
            verdict(
                "tandem_messages_delivered_total",
                sent >= delivered as f64,
                format!("+{sent}, {delivered} received (a connection dropped mid-write loses what was sent)"),
            );
            let expired = delta("tandem_sessions_expired_total", "");
            verdict(
                "tandem_sessions_expired_total",
                expired >= opened as f64,
                format!("+{expired}, {opened} sessions opened (a player of its own per connection)"),
            );
            for name in ["tandem_slow_consumer_disconnects_total", "tandem_heartbeat_timeouts_total"] {
                let d = delta(name, "");
                verdict(
                    name,
                    d == 0.0,
                    format!("+{d} (every client reads, and none is held past the timeout)"),
                );
            }
            let mut others: Vec<String> = end
                .counters
                .iter()
                .filter_map(|(k, v)| {
                    let d = v - start.counters.get(k).copied().unwrap_or(0.0);
                    (d != 0.0).then(|| format!("{k} +{d}"))
                })
                .collect();
            others.sort();
            println!("info: counters that moved: {}", others.join(", "));
        }
        Err(e) => verdict("server state at the end", false, e),
    }
    let total = failed.len();
    if total == 0 {
        println!("soak: PASS ({checks} checks)");
    } else {
        println!("soak: FAIL ({total} of {checks} checks: {})", failed.join(", "));
    }
    total == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_metric_type_of_an_exposition() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total 5\n# TYPE live gauge\n\
                    live{transport=\"websocket\"} 3\nlive{transport=\"sse\"} 0\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n\
                    # TYPE odd gauge\nodd{label=\"a b}\"} 1.5 1700000000\n";
        let g = series(text, "gauge");
        assert_eq!(
            series(text, "counter").into_iter().collect::<Vec<_>>(),
            vec![("a_total".to_owned(), 5.0)]
        );
        assert_eq!(g.len(), 3, "{g:?}");
        assert_eq!(g["live{transport=\"websocket\"}"], 3.0);
        assert_eq!(g["live{transport=\"sse\"}"], 0.0);
        assert_eq!(g["odd{label=\"a b}\"}"], 1.5);
    }

    #[test]
    fn a_changed_or_new_nonzero_series_differs_and_the_environment_does_not() {
        let start: State = [("live".to_owned(), 0.0), ("tandem_uptime_seconds".to_owned(), 5.0)].into();
        let same: State =
            [("live".to_owned(), 0.0), ("tandem_uptime_seconds".to_owned(), 900.0), ("new".to_owned(), 0.0)]
                .into();
        assert!(differences(&start, &same).is_empty());
        let moved: State = [("live".to_owned(), 2.0), ("new".to_owned(), 1.0)].into();
        let d = differences(&start, &moved);
        assert_eq!(d, vec![("live".to_owned(), Some(0.0), Some(2.0)), ("new".to_owned(), None, Some(1.0))]);
    }

    #[test]
    fn live_counts_leave_out_trends_and_windowed_statistics() {
        let v = serde_json::json!({"overall": {"healthy": 2, "ratio": 1.0}, "list": [{"id": 1}],
            "health_trends": {"samples": 9}, "timestamp": "now"});
        let mut out = State::new();
        live_counts("/monitoring/connection-health", &v, &mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out["/monitoring/connection-health.overall.healthy"], 2.0);
        assert_eq!(out["/monitoring/connection-health.list[len]"], 1.0);
        let perf = serde_json::json!({"system_performance": {"active_connections": 4, "cpu_usage_percent": 9.0},
            "message_delivery": {"p99_delivery_time_ms": 3.0}});
        let mut out = State::new();
        live_counts("/monitoring/performance", &perf, &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec![("/monitoring/performance.system_performance.active_connections".to_owned(), 4.0)]
        );
    }

    #[test]
    fn counter_sums_pick_one_name_and_label() {
        let c: State = [
            ("t_total{source=\"api\"}".to_owned(), 3.0),
            ("t_total{source=\"client\"}".to_owned(), 4.0),
            ("t_total_other".to_owned(), 100.0),
        ]
        .into();
        assert_eq!(counter_sum(&c, "t_total", ""), 7.0);
        assert_eq!(counter_sum(&c, "t_total", "source=\"api\""), 3.0);
        assert_eq!(counter_sum(&c, "absent", ""), 0.0);
    }

    #[test]
    fn slope_is_kib_per_minute_of_a_line() {
        assert_eq!(slope(&[(5.0, 100.0), (6.0, 110.0), (7.0, 120.0)]), Some(10.0));
        assert_eq!(slope(&[(5.0, 100.0)]), None);
        assert!(slope(&[(5.0, 100.0), (6.0, 100.0)]).is_some_and(|s| s.abs() < 1e-9));
    }

    #[test]
    fn holds_stay_within_bounds_and_vary() {
        let holds: Vec<Duration> = (0..100).map(|n| hold_for(n, 1_000, 10_000)).collect();
        assert!(holds.iter().all(|d| (1_000..=10_000).contains(&d.as_millis())));
        assert!(holds.iter().any(|d| d.as_millis() < 4_000) && holds.iter().any(|d| d.as_millis() > 7_000));
        assert_eq!(hold_for(3, 5, 5), Duration::from_millis(5));
    }
}
