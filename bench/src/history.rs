//! What resuming on any node costs and gives, on a running cluster:
//!
//! - `recovery`: N SDK clients on one node, behind a round-robin balancer
//!   that this process runs; publications flow through the other nodes;
//!   the node is SIGKILLed; how long until each client has every
//!   publication, and whether any was lost, doubled or resynced.
//! - `history-memory`: fills channel histories through the API and reads
//!   Redis's `INFO memory` and `MEMORY USAGE` before and after, to check
//!   the formula in `docs/scaling.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;
use tandem_client::{Client, ClientEvent, ClientOptions, Reconnect};
use tandem_e2e::round_robin::RoundRobin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{is_loopback_url, percentile};

#[derive(clap::Args)]
pub struct RecoveryArgs {
    /// The other nodes' base URLs (loopback only); `--url` is the node that
    /// is killed, `--pid` its process.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    #[arg(long)]
    api_key: String,
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Publications per second through the other nodes, before and after
    /// the kill.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Seconds of publications after the kill.
    #[arg(long, default_value_t = 5)]
    after_seconds: u64,
}

fn addr_of(url: &str) -> Option<SocketAddr> {
    let u = url::Url::parse(url).ok()?;
    format!("{}:{}", u.host_str()?, u.port_or_known_default()?).parse().ok()
}

/// What one client saw: the `n` of each publication, in arrival order, when
/// the first one published after the kill reached it, and its resyncs.
#[derive(Default)]
struct Seen {
    ns: Vec<u64>,
    back_at: Option<Instant>,
    resyncs: usize,
}

pub async fn recovery(victim: &str, pid: u32, args: RecoveryArgs) {
    let RecoveryArgs { nodes, api_key, clients, rate, after_seconds } = args;
    if let Some(bad) = nodes.iter().find(|n| !is_loopback_url(n)) {
        return eprintln!("refusing a non-loopback node: {bad}");
    }
    let (Some(victim_addr), Some(others)) =
        (addr_of(victim), nodes.iter().map(|n| addr_of(n)).collect::<Option<Vec<_>>>())
    else {
        return eprintln!("cannot read the node addresses");
    };
    // Every client starts on the victim; once it is gone the balancer sends
    // each new connection round-robin to whichever node is up.
    let balancer = RoundRobin::start(vec![victim_addr]).await;
    let mut all = vec![victim_addr];
    all.extend(&others);
    let fast = Reconnect {
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_attempts: None,
    };
    let before = u64::from(rate);
    let mut handles = Vec::with_capacity(clients);
    let seen: Vec<Arc<Mutex<Seen>>> = (0..clients).map(|_| Arc::default()).collect();
    for (i, s) in seen.iter().enumerate() {
        let options = ClientOptions::new(balancer.base_url())
            .player_id(format!("rec-{i}"))
            .channels(&["room:recovery"])
            .reconnect(fast);
        let Ok(client) = Client::new(options) else { return eprintln!("client options refused") };
        let mut events = client.events();
        client.connect();
        let s = Arc::clone(s);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let mut s = s.lock();
                match e {
                    ClientEvent::Message(d) => {
                        let n = d.data["n"].as_u64();
                        if n == Some(before) {
                            s.back_at = Some(Instant::now());
                        }
                        s.ns.extend(n);
                    }
                    ClientEvent::Resync(_) => s.resyncs += 1,
                    _ => {}
                }
            }
        });
        handles.push(client);
    }
    let started = Instant::now();
    while handles.iter().any(|c| c.session_id().is_none()) {
        if started.elapsed() > Duration::from_secs(60) {
            return eprintln!("not every client connected within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    balancer.set_upstreams(all);

    let http = reqwest::Client::new();
    let pace = Duration::from_secs(1) / rate.max(1);
    let total = before + u64::from(rate) * after_seconds;
    let mut killed_at = None;
    let mut retries = 0;
    for n in 0..total {
        if n == before {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            killed_at = Some(Instant::now());
        }
        let node = &nodes[n as usize % nodes.len()];
        let body =
            json!({"channel": "room:recovery", "event": "n", "data": {"n": n}, "id": format!("rec-{n}")});
        // A 503 while the cluster notices the death is retried with the same id.
        for _ in 0..100 {
            let ok = http
                .post(format!("{node}/api/publish"))
                .bearer_auth(&api_key)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            retries += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(pace).await;
    }
    let Some(killed_at) = killed_at else { return };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && seen.iter().any(|s| (s.lock().ns.len() as u64) < total) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut complete, mut resynced, mut lost, mut doubled) = (0, 0, 0u64, 0u64);
    let mut times = Vec::new();
    for s in &seen {
        let s = s.lock();
        let mut sorted = s.ns.clone();
        sorted.sort_unstable();
        sorted.dedup();
        doubled += (s.ns.len() - sorted.len()) as u64;
        lost += total - sorted.len() as u64;
        if s.ns == (0..total).collect::<Vec<_>>() {
            complete += 1;
        }
        resynced += usize::from(s.resyncs > 0);
        times.extend(s.back_at.map(|t| t.saturating_duration_since(killed_at)));
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "recovery of {clients} clients after a SIGKILL of their node: {complete} with every publication once in \
         order, {resynced} resynced, {lost} lost, {doubled} duplicated; the first publication after the kill \
         reached them p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms after it ({} of {clients}); {} connections through \
         the balancer; {retries} publish attempts retried",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
        times.len(),
        balancer.accepted(),
    );
    for c in handles {
        c.close().await;
    }
}

#[derive(clap::Args)]
pub struct MemoryArgs {
    /// The cluster's Redis, `host:port` (loopback only).
    #[arg(long)]
    redis: String,
    #[arg(long)]
    api_key: String,
    /// `broker.key_prefix` of the cluster.
    #[arg(long, default_value = "tandem")]
    key_prefix: String,
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Publications per channel.
    #[arg(long, default_value_t = 1_000)]
    each: usize,
    /// Size of each publication's `data.text`, in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
}

/// One Redis command over a fresh connection (RESP), its whole answer as text.
async fn redis(addr: &str, args: &[&str]) -> std::io::Result<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .map_err(std::io::Error::other)??;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn used_memory(info: &str) -> Option<u64> {
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok())
}

/// `MEMORY USAGE key SAMPLES 0`: the key's exact size in bytes.
async fn memory_usage(addr: &str, key: &str) -> Option<u64> {
    let reply = redis(addr, &["MEMORY", "USAGE", key, "SAMPLES", "0"]).await.ok()?;
    reply.strip_prefix(':').and_then(|v| v.trim().parse().ok())
}

pub async fn memory(base: &str, args: MemoryArgs) {
    let MemoryArgs { redis: addr, api_key, key_prefix, channels, each, payload_bytes } = args;
    if !is_loopback_url(&format!("redis://{addr}")) {
        return eprintln!("refusing a non-loopback Redis: {addr}");
    }
    let Ok(info) = redis(&addr, &["INFO", "memory"]).await else {
        return eprintln!("cannot reach Redis at {addr}");
    };
    let Some(before) = used_memory(&info) else { return eprintln!("no used_memory in INFO") };
    let http = reqwest::Client::new();
    let text = "x".repeat(payload_bytes);
    let mut frame_bytes = 0;
    for c in 0..channels {
        for n in 0..each {
            let body = json!({"channel": format!("mem:b{payload_bytes}-c{c}"), "event": "n", "data": {"text": text, "n": n}});
            match http.post(format!("{base}/api/publish")).bearer_auth(&api_key).json(&body).send().await {
                Ok(r) if r.status().is_success() => {}
                _ => return eprintln!("publish failed"),
            }
            if frame_bytes == 0 {
                frame_bytes = serde_json::to_vec(&body["data"]).map_or(0, |b| b.len());
            }
        }
    }
    let info = redis(&addr, &["INFO", "memory"]).await.unwrap_or_default();
    let after = used_memory(&info).unwrap_or(before);
    let keys = tandem_server::broker::redis::Keys::new(&key_prefix, false);
    let channel = format!("mem:b{payload_bytes}-c0");
    let (stream, meta) = (
        memory_usage(&addr, &keys.history(&channel)).await,
        memory_usage(&addr, &keys.history_meta(&channel)).await,
    );
    // A session's record: one subscribed to two channels (and its player
    // channel and broadcasts), as it is written when it changes.
    let session = match Client::new(
        ClientOptions::new(base).player_id("mem-session").channels(&["mem:c0", "mem:c1"]),
    ) {
        Ok(c) => {
            c.connect();
            let _ = c.wait_status(Duration::from_secs(5), |s| s.is_connected()).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let id = c.session_id().unwrap_or_default();
            let usage = memory_usage(&addr, &keys.session(&id)).await;
            c.close().await;
            usage
        }
        Err(_) => None,
    };
    let kept = each as u64;
    let per_channel = (after.saturating_sub(before)) as f64 / channels as f64;
    println!(
        "history memory: {channels} channels x {each} publications of {payload_bytes}-byte text ({frame_bytes} bytes \
         of data): INFO used_memory grew {} bytes, {per_channel:.0} per channel, {:.1} per publication kept; one \
         channel's stream {} bytes ({:.1} per entry), its meta {} bytes; a session record with 4 channels {} bytes",
        after.saturating_sub(before),
        per_channel / kept as f64,
        stream.unwrap_or(0),
        stream.unwrap_or(0) as f64 / kept as f64,
        meta.unwrap_or(0),
        session.unwrap_or(0),
    );
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    /// Another node of the cluster (loopback only); `--url` is the node
    /// that creates the sessions.
    #[arg(long)]
    other: String,
    #[arg(long)]
    api_key: String,
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

/// What a resume costs on the session's own node (its memory) against
/// another node (its record and the channel's history read from Redis),
/// and what an SSE uplink post costs sent to the session's node against
/// another node (handed over through Redis). Times connect → welcome and
/// post → answer, one at a time.
pub async fn resume(base: &str, args: ResumeArgs) {
    use tandem_client::{ConnectOptions, ServerFrame, WsClient};
    let ResumeArgs { other, api_key, samples } = args;
    if !is_loopback_url(&other) {
        return eprintln!("refusing a non-loopback node: {other}");
    }
    let http = reqwest::Client::new();
    let (mut own, mut taken, mut post_here, mut post_there) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..samples {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        let player = format!("res-{i}");
        let opts = |url: &str| ConnectOptions::new(url).player(player.clone()).channels(&["room:res"]);
        let Ok(mut first) = WsClient::connect(&opts(base)).await else { return eprintln!("connect failed") };
        let body = json!({"channel": "room:res", "event": "n", "data": {"n": i}});
        let _ = http.post(format!("{base}/api/publish")).bearer_auth(&api_key).json(&body).send().await;
        let Ok(ServerFrame::Message(d)) = first.next_frame(Duration::from_secs(5)).await else {
            return eprintln!("no delivery");
        };
        let session = first.welcome.session_id.clone();
        first.close().await;
        let resume = |url: &str| {
            opts(url)
                .session(session.clone())
                .last_seq(d.seq)
                .positions(vec![(d.channel.clone(), d.pos.clone().unwrap_or_default())])
        };
        let t0 = Instant::now();
        let Ok(here) = WsClient::connect(&resume(base)).await else { return eprintln!("resume failed") };
        own.push(t0.elapsed());
        for (url, into) in [(base, &mut post_here), (other.as_str(), &mut post_there)] {
            let Ok(target) = opts(url).messages_url(&session) else { return };
            let t0 = Instant::now();
            let ok = http
                .post(target)
                .json(&json!({"type": "ping", "id": i}))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                into.push(t0.elapsed());
            }
        }
        here.close().await;
        let t0 = Instant::now();
        let Ok(there) = WsClient::connect(&resume(&other)).await else { return eprintln!("takeover failed") };
        taken.push(t0.elapsed());
        if !there.welcome.resumed {
            eprintln!("sample {i}: not resumed on the other node");
        }
        there.close().await;
    }
    let ms = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        percentile(v, p).as_secs_f64() * 1000.0
    };
    println!(
        "resume over {} sessions, connect to welcome: on its own node p50 {:.3} ms p99 {:.3} ms; taken over by another \
         node p50 {:.3} ms p99 {:.3} ms; SSE uplink ping: to the session's node p50 {:.3} ms p99 {:.3} ms, through \
         another node p50 {:.3} ms p99 {:.3} ms",
        own.len(),
        ms(&mut own, 0.5),
        ms(&mut own, 0.99),
        ms(&mut taken, 0.5),
        ms(&mut taken, 0.99),
        ms(&mut post_here, 0.5),
        ms(&mut post_here, 0.99),
        ms(&mut post_there, 0.5),
        ms(&mut post_there, 0.99),
    );
}
