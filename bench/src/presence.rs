//! `tandem-bench presence`: the cost of channel presence at N subscribers
//! of one channel.
//!
//! 1. N idle connections (no channel) are opened and closed: the baseline
//!    CPU of a connection coming and going.
//! 2. N connections subscribed to one channel (spread round-robin over the
//!    node and `--nodes`, half WebSocket, half SSE): the CPU above the
//!    baseline is the work of N joins.
//! 3. `GET /api/channels/{channel}/presence` timed `--requests` times with
//!    the full list (1,000 players), then with `?limit=0` (the count).
//! 4. The connections close and the count is polled down to 0 (after the
//!    server's `channels.presence_grace_seconds`): the CPU above the
//!    baseline's close is the work of N leaves.
//!
//! Prints numbers, asserts nothing; every loop is bounded.

use std::time::{Duration, Instant};

use crate::{Kind, is_loopback_url, open_many_on, percentile, procfs};

#[derive(clap::Args)]
pub struct PresenceArgs {
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// API key configured on the server (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// Presence requests timed for each of the two figures.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Other nodes of the cluster (loopback base URLs); subscribers are
    /// spread over `--url` and these.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// Longest wait for the count to reach 0 after the close.
    #[arg(long, default_value_t = 60)]
    leave_timeout_seconds: u64,
    /// Seconds to hold the subscribers after asking, before the close (to
    /// read Redis meanwhile: `MEMORY USAGE <prefix>:presence:<channel>`).
    #[arg(long, default_value_t = 0)]
    hold_seconds: u64,
}

const CHANNEL: &str = "room:presence_bench";

fn cpu_s(pid: u32, since: u64) -> f64 {
    procfs::cpu_ticks(pid).saturating_sub(since) as f64 / 100.0
}

pub async fn presence(base: &str, addr: &str, pid: u32, args: PresenceArgs) {
    let n = args.subscribers;
    let mut addrs = vec![addr.to_owned()];
    for node in &args.nodes {
        match url::Url::parse(node).ok().and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port()?))) {
            Some(a) if is_loopback_url(node) => addrs.push(a),
            _ => {
                eprintln!("presence: {node} is not a loopback URL with a port");
                return;
            }
        }
    }
    let kind = |i: usize| if i % 2 == 0 { Kind::Ws } else { Kind::Sse };
    let on = |i: usize| addrs[i % addrs.len()].clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let ask = |limit: Option<usize>| {
        let url = match limit {
            Some(l) => format!("{base}/api/channels/{CHANNEL}/presence?limit={l}"),
            None => format!("{base}/api/channels/{CHANNEL}/presence"),
        };
        let req = http.get(url).bearer_auth(&args.api_key);
        async move {
            let r = req.send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            let body = r.bytes().await.ok()?;
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            Some((v["count"].as_u64()?, body.len()))
        }
    };

    // 1. Baseline: connections without a channel.
    let cpu = procfs::cpu_ticks(pid);
    let plain = open_many_on(&on, n, |i| (kind(i), format!("pb{i}"), String::new())).await;
    let opened_plain = plain.len();
    let open_plain = cpu_s(pid, cpu);
    let cpu = procfs::cpu_ticks(pid);
    drop(plain);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let close_plain = cpu_s(pid, cpu);

    // 2. The same connections subscribed to one channel.
    let rss0 = procfs::rss_kib(pid);
    let cpu = procfs::cpu_ticks(pid);
    let started = Instant::now();
    let subs = open_many_on(&on, n, |i| (kind(i), format!("ps{i}"), format!("&channels={CHANNEL}"))).await;
    let took = started.elapsed();
    let open_subs = cpu_s(pid, cpu);
    let opened = subs.len();
    // Every node's record reaches the others within about a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = ask(Some(0)).await.map_or(0, |(c, _)| c);
        if seen as usize >= opened {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss1 = procfs::rss_kib(pid);
    let per = |s: f64, k: usize| s * 1e6 / k.max(1) as f64;
    // `--pid` is one node: its share of the connections (every k-th).
    let share = |k: usize| k.div_ceil(addrs.len());
    let (opened_here, plain_here) = (share(opened), share(opened_plain));
    println!(
        "presence joins: {opened} subscribers of one channel in {:.2} s over {} node(s), counted {seen}; \
         server CPU (of --pid, per connection it took) {:.1} us per subscribed connection against {:.1} us per plain one: {:.1} us per join; \
         RSS {:.2} KiB per subscribed connection",
        took.as_secs_f64(),
        addrs.len(),
        per(open_subs, opened_here),
        per(open_plain, plain_here),
        per(open_subs, opened_here) - per(open_plain, plain_here),
        rss1.saturating_sub(rss0) as f64 / opened_here.max(1) as f64,
    );

    // 3. Asking.
    for limit in [None, Some(0)] {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        let cpu = procfs::cpu_ticks(pid);
        for _ in 0..args.requests.min(10_000) {
            let t = Instant::now();
            if let Some((_, len)) = ask(limit).await {
                times.push(t.elapsed());
                bytes = len;
            }
        }
        let spent = cpu_s(pid, cpu);
        times.sort();
        println!(
            "presence {}: {} requests at {opened} subscribers, p50 {:.3} ms p99 {:.3} ms, {bytes} bytes each, \
             {:.1} us server CPU each",
            if limit.is_some() { "count (limit=0)" } else { "list (1,000 players)" },
            times.len(),
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            per(spent, times.len()),
        );
    }

    tokio::time::sleep(Duration::from_secs(args.hold_seconds.min(3_600))).await;

    // 4. Leaving: the close, then the grace, then the sweep.
    let cpu = procfs::cpu_ticks(pid);
    let closed = Instant::now();
    drop(subs);
    let deadline = closed + Duration::from_secs(args.leave_timeout_seconds.min(600));
    let mut left = u64::MAX;
    while Instant::now() < deadline {
        left = ask(Some(0)).await.map_or(left, |(c, _)| c);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = cpu_s(pid, cpu);
    println!(
        "presence leaves: count {left} {:.2} s after the close (grace included); server CPU {:.1} us per \
         subscribed close against {:.1} us per plain one",
        closed.elapsed().as_secs_f64(),
        per(spent, opened_here),
        per(close_plain, plain_here),
    );
}
