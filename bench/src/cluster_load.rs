//! `tandem-bench cluster-load` and `cluster-reach`: one broadcast to
//! 100,000 idle connections spread over a cluster on one machine.
//!
//! One process here holds at most 20,000 descriptors, so the connections
//! come from several `cluster-load` processes (a generator each), and one
//! `cluster-reach` drives them through files in a directory they share:
//!
//! 1. `cluster-reach` reads the nodes' and Redis's RSS, then creates
//!    `<dir>/start`;
//! 2. each generator opens its connections (raw sockets, WebSocket and SSE
//!    alternating per node, each subscribed to the one channel and, with
//!    `--room-size`, to a room), keeps reading all of them (answering the
//!    WebSocket pings, so no heartbeat closes them), and writes
//!    `<dir>/<name>.ready`;
//! 3. once every generator is ready, `cluster-reach` lets the cluster
//!    settle, reads RSS, times the CPU of an idle window, then publishes
//!    `--broadcasts` publications through the backend API of one node, each
//!    with its send time (`sent_us`, µs since the epoch) in its data;
//! 4. it creates `<dir>/stop`; each generator writes `<dir>/<name>.result`:
//!    its counts, then one line per delivery (`<sent_us> <latency µs>`,
//!    the latency being its clock when it read the frame minus `sent_us`:
//!    one machine, one clock);
//! 5. `cluster-reach` merges them and prints the report.
//!
//! Only loopback targets; every wait has a deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{Kind, connect_keeping_body, is_loopback_url, procfs};

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Node base URLs (loopback only); connection `g` goes to node `g % nodes`.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Connections this process opens (its descriptors must allow them).
    #[arg(long)]
    connections: usize,
    /// Global index of this process's first connection: it names the
    /// players (`c<index>`), the node, the transport and the room.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// The channel every connection subscribes to.
    #[arg(long, default_value = "live:all")]
    channel: String,
    /// Players per room: connection `g` also subscribes to
    /// `room:r<g / size>`; 0 = no room.
    #[arg(long, default_value_t = 0)]
    room_size: usize,
    /// The directory shared with `cluster-reach`.
    #[arg(long)]
    dir: PathBuf,
    /// This generator's name in that directory.
    #[arg(long)]
    name: String,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 128)]
    in_flight: usize,
    /// Longest time to open every connection.
    #[arg(long, default_value_t = 300)]
    connect_seconds: u64,
    /// Longest life of this process, waits included.
    #[arg(long, default_value_t = 1800)]
    max_seconds: u64,
}

#[derive(clap::Args)]
pub struct ReachArgs {
    /// Every node's process id, for RSS and CPU (`--url` is the node that
    /// publishes).
    #[arg(long, value_delimiter = ',', required = true)]
    node_pids: Vec<u32>,
    #[arg(long)]
    redis_pid: u32,
    /// API key configured on the nodes (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// The channel every connection subscribes to.
    #[arg(long, default_value = "live:all")]
    channel: String,
    /// The directory shared with the generators.
    #[arg(long)]
    dir: PathBuf,
    /// How many generators to wait for.
    #[arg(long)]
    generators: usize,
    #[arg(long, default_value_t = 5)]
    broadcasts: usize,
    /// Seconds from one broadcast to the next (and after the last).
    #[arg(long, default_value_t = 8)]
    spacing_seconds: u64,
    /// Seconds of rest after every generator is ready, before RSS is read.
    #[arg(long, default_value_t = 5)]
    settle_seconds: u64,
    /// Seconds of the idle CPU window, after that rest; by default as long
    /// as the broadcasts' (`--broadcasts` × `--spacing-seconds`), so that
    /// both hold as many of the nodes' periodic rewrites in Redis (every
    /// 10 s for presence, every 10 heartbeats for the sessions).
    #[arg(long)]
    idle_seconds: Option<u64>,
    /// Longest wait for every generator to be ready.
    #[arg(long, default_value_t = 900)]
    ready_timeout_seconds: u64,
    /// Names this run in the report lines.
    #[arg(long, default_value = "cluster")]
    label: String,
}

/// What a delivery carries: the publisher's clock, in µs since the epoch.
const STAMP: &[u8] = b"\"sent_us\":";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Every `"sent_us":<digits>` in `data`, to `f`.
fn stamps(mut data: &[u8], mut f: impl FnMut(u64)) {
    while let Some(at) = data.windows(STAMP.len()).position(|w| w == STAMP) {
        data = &data[at + STAMP.len()..];
        let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(v) = std::str::from_utf8(&data[..digits]).ok().and_then(|s| s.parse().ok()) {
            f(v);
        }
        data = &data[digits..];
    }
}

/// The server's WebSocket frames complete in `data`, each one's opcode and
/// payload to `f`; returns the bytes they span (the rest waits for more).
fn ws_frames(data: &[u8], mut f: impl FnMut(u8, &[u8])) -> usize {
    let mut at = 0;
    loop {
        let rest = &data[at..];
        if rest.len() < 2 {
            return at;
        }
        let (len, head) = match rest[1] & 0x7f {
            126 if rest.len() >= 4 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 if rest.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&rest[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX), 10)
            }
            126 | 127 => return at,
            n => (usize::from(n), 2),
        };
        // A server never masks; a mask key would only be skipped.
        let head = head + if rest[1] & 0x80 != 0 { 4 } else { 0 };
        if rest.len() < head || rest.len() - head < len {
            return at;
        }
        f(rest[0] & 0x0f, &rest[head..head + len]);
        at += head + len;
    }
}

/// The bytes of an SSE stream that end a line: the events in them are
/// whole (an HTTP/1.1 chunk never splits a line of Tandem's).
fn sse_lines(data: &[u8]) -> usize {
    data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

/// A masked pong (a zero key) answering a ping's payload.
fn pong(payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(125);
    let mut frame = vec![0x8a, 0x80 | len as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload[..len]);
    frame
}

#[derive(Default)]
struct Shared {
    /// `(sent_us, latency µs)` of every delivery.
    samples: parking_lot::Mutex<Vec<(u64, u64)>>,
    /// Connections the server closed (or that failed) while held.
    closed: AtomicUsize,
}

/// Holds one connection until `until`: reads everything (from `body`,
/// what followed the response head), answers pings, records every
/// delivery's latency.
async fn hold(mut s: TcpStream, body: Vec<u8>, kind: Kind, shared: Arc<Shared>, until: tokio::time::Instant) {
    let mut carry = body;
    loop {
        let now = now_us();
        let record = |sent: u64| shared.samples.lock().push((sent, now.saturating_sub(sent)));
        let mut pongs = Vec::new();
        let mut close = false;
        let done = match kind {
            Kind::Ws => ws_frames(&carry, |op, payload| match op {
                0x0 | 0x1 => stamps(payload, &record),
                0x8 => close = true,
                0x9 => pongs.push(pong(payload)),
                _ => {}
            }),
            Kind::Sse => {
                let done = sse_lines(&carry);
                stamps(&carry[..done], &record);
                done
            }
        };
        carry.drain(..done);
        if carry.is_empty() && carry.capacity() > 1024 {
            carry = Vec::new();
        }
        for p in pongs {
            if !matches!(tokio::time::timeout(Duration::from_secs(10), s.write_all(&p)).await, Ok(Ok(()))) {
                close = true;
            }
        }
        if close {
            break;
        }
        match tokio::time::timeout_at(until, read_more(&mut s, &mut carry)).await {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => return,
        }
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
}

/// Appends what `s` has to `carry`; false when the peer closed or failed.
async fn read_more(s: &mut TcpStream, carry: &mut Vec<u8>) -> bool {
    loop {
        if s.readable().await.is_err() {
            return false;
        }
        // The buffer is on the stack only between two awaits, never in the task.
        let mut buf = [0u8; 4096];
        match s.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                carry.extend_from_slice(&buf[..n]);
                return true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
    }
}

/// The soft limit on this process's descriptors, from `/proc/self/limits`.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Waits (polling) until `path` exists; false at `deadline`.
async fn wait_for(path: &Path, deadline: Instant) -> bool {
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Writes `text` to `path` whole: to a temporary name, then renamed.
fn write_whole(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `host:port` of a loopback base URL.
fn loopback_addr(node: &str) -> Result<String, String> {
    let u = url::Url::parse(node).map_err(|e| format!("bad node URL {node}: {e}"))?;
    match (is_loopback_url(node), u.host_str(), u.port_or_known_default()) {
        (true, Some(host), Some(port)) => Ok(format!("{host}:{port}")),
        _ => Err(format!("refusing a non-loopback node: {node}")),
    }
}

/// `cluster-load`: one generator.
pub async fn load(args: LoadArgs) -> Result<(), String> {
    let addrs = args.nodes.iter().map(|n| loopback_addr(n)).collect::<Result<Vec<_>, _>>()?;
    let n = args.connections;
    if let Some(limit) = descriptor_limit().filter(|l| n + 64 > *l) {
        return Err(format!("{n} connections need more descriptors than this process's limit of {limit}"));
    }
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds.min(4 * 3_600));
    let name = &args.name;
    if !wait_for(&args.dir.join("start"), deadline).await {
        return Err(format!("{name}: no {}/start before the deadline", args.dir.display()));
    }
    let shared = Arc::new(Shared::default());
    let until = tokio::time::Instant::from_std(deadline);
    let started = Instant::now();
    let connect_by = tokio::time::Instant::now() + Duration::from_secs(args.connect_seconds.min(3_600));
    let nodes = addrs.len();
    let room = |g: usize| g.checked_div(args.room_size).map_or_else(String::new, |r| format!(",room:r{r}"));
    let mut opening = futures_util::stream::iter(0..n)
        .map(|i| {
            let g = args.offset + i;
            // Alternate per node, so each node holds half of each.
            let kind = if (g / nodes) % 2 == 0 { Kind::Ws } else { Kind::Sse };
            let addr = addrs[g % nodes].clone();
            let extra = format!("&channels={}{}", args.channel, room(g));
            async move {
                let player = format!("c{g}");
                let connecting = connect_keeping_body(&addr, kind, &player, &extra, None);
                let r = tokio::time::timeout(Duration::from_secs(30), connecting)
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("connect timed out")));
                (kind, r)
            }
        })
        .buffer_unordered(args.in_flight.clamp(1, 1024));
    let (mut ws, mut sse, mut failed) = (0usize, 0usize, 0usize);
    loop {
        match tokio::time::timeout_at(connect_by, opening.next()).await {
            Ok(Some((kind, Ok((s, body))))) => {
                match kind {
                    Kind::Ws => ws += 1,
                    Kind::Sse => sse += 1,
                }
                tokio::spawn(hold(s, body, kind, Arc::clone(&shared), until));
            }
            Ok(Some((_, Err(e)))) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("{name}: connect failed: {e}");
                }
            }
            Ok(None) => break,
            Err(_) => {
                eprintln!("{name}: connect deadline reached");
                break;
            }
        }
    }
    drop(opening);
    let counts = format!(
        "connected={} websocket={ws} sse={sse} failed={failed} seconds={:.1}",
        ws + sse,
        started.elapsed().as_secs_f64()
    );
    write_whole(&args.dir.join(format!("{name}.ready")), &format!("{counts}\n"))?;
    println!("{name}: {counts}");
    if !wait_for(&args.dir.join("stop"), deadline).await {
        eprintln!("{name}: no stop before the deadline; writing what was received");
    }
    let samples = std::mem::take(&mut *shared.samples.lock());
    let mut out = format!("{counts} closed={}\n", shared.closed.load(Ordering::Relaxed));
    for (sent, latency) in &samples {
        out.push_str(&format!("{sent} {latency}\n"));
    }
    write_whole(&args.dir.join(format!("{name}.result")), &out)?;
    println!("{name}: {} deliveries recorded", samples.len());
    Ok(())
}

/// What one generator reported.
#[derive(Debug, Default, PartialEq)]
struct GenResult {
    connected: u64,
    websocket: u64,
    sse: u64,
    failed: u64,
    closed: u64,
    samples: Vec<(u64, u64)>,
}

/// `key=<number>` in a line of `key=value` words.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn parse_result(text: &str) -> Result<GenResult, String> {
    let mut lines = text.lines();
    let head = lines.next().ok_or("an empty result")?;
    let get = |key: &str| field(head, key).ok_or_else(|| format!("no {key}= in {head:?}"));
    let mut r = GenResult {
        connected: get("connected")?,
        websocket: get("websocket")?,
        sse: get("sse")?,
        failed: get("failed")?,
        closed: get("closed")?,
        samples: Vec::new(),
    };
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut w = line.split_whitespace().map(str::parse::<u64>);
        match (w.next(), w.next()) {
            (Some(Ok(sent)), Some(Ok(latency))) => r.samples.push((sent, latency)),
            _ => return Err(format!("a bad sample line: {line:?}")),
        }
    }
    Ok(r)
}

/// Latency figures of a set of deliveries, in µs.
#[derive(Debug, PartialEq)]
struct Stats {
    count: usize,
    p50: u64,
    p99: u64,
    max: u64,
}

/// Nearest-rank percentiles of `latencies` (sorted here).
fn stats(mut latencies: Vec<u64>) -> Option<Stats> {
    latencies.sort_unstable();
    let n = latencies.len();
    let at = |p: f64| latencies[((n as f64 * p).ceil() as usize).clamp(1, n) - 1];
    (n > 0).then(|| Stats { count: n, p50: at(0.5), p99: at(0.99), max: latencies[n - 1] })
}

/// Every generator's deliveries, per broadcast (in the order of `published`)
/// and all together; deliveries of a publication not in `published` are
/// counted apart.
fn merge(results: &[GenResult], published: &[u64]) -> (Vec<Option<Stats>>, Option<Stats>, usize) {
    let mut per: Vec<Vec<u64>> = vec![Vec::new(); published.len()];
    let mut stray = 0;
    for (sent, latency) in results.iter().flat_map(|r| r.samples.iter()) {
        match published.iter().position(|p| p == sent) {
            Some(i) => per[i].push(*latency),
            None => stray += 1,
        }
    }
    let all = stats(per.concat());
    (per.into_iter().map(stats).collect(), all, stray)
}

fn rss_mib(pids: &[u32]) -> f64 {
    pids.iter().map(|p| procfs::rss_kib(*p)).sum::<u64>() as f64 / 1024.0
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter().map(|p| procfs::cpu_ticks(*p)).sum()
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// `cluster-reach`: the orchestrator. Whatever happens, `<dir>/stop` is
/// created at the end so that no generator waits for its deadline.
pub async fn reach(base: &str, args: ReachArgs) -> Result<(), String> {
    let result = reach_inner(base, &args).await;
    let _ = std::fs::write(args.dir.join("stop"), "");
    result
}

async fn reach_inner(base: &str, args: &ReachArgs) -> Result<(), String> {
    let label = &args.label;
    let nodes = &args.node_pids;
    let redis = [args.redis_pid];
    for pid in nodes.iter().chain(&redis) {
        if procfs::tree(*pid).is_empty() {
            return Err(format!("no process {pid}"));
        }
    }
    let (node_rss0, redis_rss0) = (rss_mib(nodes), rss_mib(&redis));
    std::fs::write(args.dir.join("start"), "")
        .map_err(|e| format!("cannot write {}: {e}", args.dir.display()))?;
    let started = Instant::now();

    // Every generator ready.
    let deadline = started + Duration::from_secs(args.ready_timeout_seconds.min(3_600));
    let ready = loop {
        let texts: Vec<String> = (std::fs::read_dir(&args.dir).map_err(|e| e.to_string())?)
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        if texts.len() >= args.generators {
            break texts;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {} generators ready before the deadline",
                texts.len(),
                args.generators
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();
    let sum = |key: &str| ready.iter().filter_map(|t| field(t, key)).sum::<u64>();
    let connected = sum("connected");
    println!(
        "{label}: {} nodes, {connected} connections ({} websocket, {} sse; {} failed) open in {:.1} s",
        nodes.len(),
        sum("websocket"),
        sum("sse"),
        sum("failed"),
        took.as_secs_f64()
    );

    // Idle: memory, then CPU over a window.
    tokio::time::sleep(Duration::from_secs(args.settle_seconds.min(600))).await;
    let (node_rss, redis_rss) = (rss_mib(nodes), rss_mib(&redis));
    let per_conn = |grown_mib: f64| grown_mib * 1024.0 / connected.max(1) as f64;
    println!(
        "{label}: idle RSS nodes {node_rss:.1} MiB + Redis {redis_rss:.1} MiB = {:.1} MiB (before: {node_rss0:.1} + \
         {redis_rss0:.1}); per connection {:.2} KiB in all, {:.2} KiB nodes alone",
        node_rss + redis_rss,
        per_conn(node_rss + redis_rss - node_rss0 - redis_rss0),
        per_conn(node_rss - node_rss0),
    );
    let broadcasts = args.broadcasts.min(100);
    let spacing = Duration::from_secs(args.spacing_seconds.clamp(1, 60));
    let idle_window = match args.idle_seconds {
        Some(s) => Duration::from_secs(s.clamp(1, 600)),
        None => (spacing * broadcasts as u32).max(Duration::from_secs(1)),
    };
    let (node_cpu0, redis_cpu0) = (cpu_ticks(nodes), cpu_ticks(&redis));
    tokio::time::sleep(idle_window).await;
    let idle_s = idle_window.as_secs_f64();
    let node_idle = cpu_ticks(nodes).saturating_sub(node_cpu0) as f64 / 100.0;
    let redis_idle = cpu_ticks(&redis).saturating_sub(redis_cpu0) as f64 / 100.0;

    // The broadcasts, through one node's backend API.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let url = format!("{base}/api/publish");
    let publish = |channel: &str, sent_us: u64| {
        let body =
            serde_json::json!({"channel": channel, "event": "broadcast", "data": {"sent_us": sent_us}});
        let req = client.post(&url).bearer_auth(&args.api_key).json(&body);
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => {
                    Err(format!("publish answered {}: {}", r.status(), r.text().await.unwrap_or_default()))
                }
                Err(e) => Err(format!("publish failed: {e}")),
            }
        }
    };
    // A first request opens the keep-alive connection (a channel nobody hears).
    publish("live:warmup", 0).await?;
    let (node_cpu0, redis_cpu0) = (cpu_ticks(nodes), cpu_ticks(&redis));
    let window = Instant::now();
    let mut published = Vec::new();
    for _ in 0..broadcasts {
        let next = Instant::now() + spacing;
        let sent = now_us();
        match publish(&args.channel, sent).await {
            Ok(()) => published.push(sent),
            Err(e) => eprintln!("{label}: {e}"),
        }
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
    let window_s = window.elapsed().as_secs_f64();
    let node_cpu = cpu_ticks(nodes).saturating_sub(node_cpu0) as f64 / 100.0;
    let redis_cpu = cpu_ticks(&redis).saturating_sub(redis_cpu0) as f64 / 100.0;

    // Every generator's deliveries.
    std::fs::write(args.dir.join("stop"), "").map_err(|e| format!("cannot write the stop file: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut results = Vec::new();
    for entry in ready_names(&args.dir)? {
        let path = args.dir.join(format!("{entry}.result"));
        if !wait_for(&path, deadline).await {
            return Err(format!("no {} before the deadline", path.display()));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        results.push(parse_result(&text).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let closed: u64 = results.iter().map(|r| r.closed).sum();
    let (per, all, stray) = merge(&results, &published);
    for (i, s) in per.iter().enumerate() {
        match s {
            Some(s) => println!(
                "{label}: broadcast {}/{}: {} of {connected} connections, p50 {} ms, p99 {} ms, max {} ms",
                i + 1,
                per.len(),
                s.count,
                ms(s.p50),
                ms(s.p99),
                ms(s.max)
            ),
            None => println!("{label}: broadcast {}/{}: reached nobody", i + 1, per.len()),
        }
    }
    let delivered = all.as_ref().map_or(0, |s| s.count);
    let expected = connected as usize * published.len();
    match &all {
        Some(s) => println!(
            "{label}: {} broadcasts: {delivered} of {expected} deliveries ({closed} connections closed while held, \
             {stray} stray); publish to receipt p50 {} ms, p99 {} ms, max {} ms",
            published.len(),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        ),
        None => println!("{label}: no delivery recorded ({closed} connections closed while held)"),
    }
    let above_idle = (node_cpu - node_idle / idle_s * window_s).max(0.0);
    let redis_above = redis_cpu - redis_idle / idle_s * window_s;
    println!(
        "{label}: Redis CPU idle {:.0} ms in {idle_s:.0} s ({:.1} ms/s); during the broadcasts {:.0} ms in {window_s:.1} \
         s ({:.1} ms/s; {:+.0} ms against the idle rate, {:+.1} ms per broadcast)",
        redis_idle * 1e3,
        redis_idle * 1e3 / idle_s,
        redis_cpu * 1e3,
        redis_cpu * 1e3 / window_s,
        redis_above * 1e3,
        redis_above * 1e3 / published.len().max(1) as f64,
    );
    println!(
        "{label}: nodes CPU idle {node_idle:.2} s in {idle_s:.0} s; during the broadcasts {node_cpu:.2} s = {:.2} us \
         per delivery ({:.2} us above the idle rate)",
        node_cpu * 1e6 / delivered.max(1) as f64,
        above_idle * 1e6 / delivered.max(1) as f64,
    );
    Ok(())
}

/// The generators that wrote a ready file, by name.
fn ready_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".ready").map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_stamps_in_frames_and_events() {
        let mut seen = Vec::new();
        stamps(b"{\"data\":{\"sent_us\":17},\"ts\":3}\n{\"sent_us\":18}", |v| seen.push(v));
        assert_eq!(seen, vec![17, 18]);
        stamps(b"{\"type\":\"join\",\"ts\":5}", |v| seen.push(v));
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn splits_server_frames_and_keeps_a_partial_one() {
        let mut data = vec![0x81, 3];
        data.extend_from_slice(b"abc");
        data.extend_from_slice(&[0x89, 2, 7, 8]);
        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend_from_slice(&[b'x'; 256]);
        data.extend_from_slice(&long);
        data.extend_from_slice(&[0x81, 5, b'a']); // cut by the end of the read
        let mut frames = Vec::new();
        let done = ws_frames(&data, |op, p| frames.push((op, p.len())));
        assert_eq!(frames, vec![(1, 3), (9, 2), (1, 256)]);
        assert_eq!(done, data.len() - 3);
        assert_eq!(ws_frames(&[0x81, 126, 1], |_, _| panic!("no whole frame")), 0);
        assert_eq!(pong(&[7, 8]), vec![0x8a, 0x82, 0, 0, 0, 0, 7, 8]);
    }

    #[test]
    fn sse_events_are_read_to_the_last_line_end() {
        assert_eq!(sse_lines(b"data: {\"sent_us\":1}\n\nda"), 21);
        assert_eq!(sse_lines(b"partial"), 0);
    }

    #[test]
    fn results_are_parsed_and_merged_per_broadcast() {
        let a = parse_result(
            "connected=3 websocket=2 sse=1 failed=0 seconds=1.0 closed=0\n100 5\n200 7\n100 9\n",
        )
        .unwrap();
        assert_eq!((a.connected, a.websocket, a.sse, a.closed), (3, 2, 1, 0));
        let b =
            parse_result("connected=2 websocket=1 sse=1 failed=1 seconds=1.0 closed=1\n100 1000\n300 4\n\n")
                .unwrap();
        assert!(parse_result("connected=1\n").is_err());
        assert!(parse_result("connected=1 websocket=1 sse=0 failed=0 closed=0\n1 x\n").is_err());
        let (per, all, stray) = merge(&[a, b], &[100, 200]);
        assert_eq!(per[0], Some(Stats { count: 3, p50: 9, p99: 1000, max: 1000 }));
        assert_eq!(per[1], Some(Stats { count: 1, p50: 7, p99: 7, max: 7 }));
        assert_eq!(all, Some(Stats { count: 4, p50: 7, p99: 1000, max: 1000 }));
        assert_eq!(stray, 1);
        assert_eq!(merge(&[], &[1]).0, vec![None]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = stats((1..=1000).rev().collect()).unwrap();
        assert_eq!((s.p50, s.p99, s.max), (500, 990, 1000));
        assert_eq!(stats(Vec::new()), None);
    }
}
