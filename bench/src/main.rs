//! `tandem-bench`: measures a running Tandem over loopback and prints
//! numbers (never asserts them).
//!
//! - `idle`: opens N idle connections (WebSocket or SSE) and reports the
//!   server's RSS growth per connection and the accept rate.
//! - `fanout`: N subscribers on one channel, K publications through the
//!   backend API; reports deliveries per second and the server's CPU time
//!   per delivered message.
//! - `soak`: rounds of a load spike (N connections, half WebSocket, half
//!   SSE, opened then closed) each followed by an idle wait; prints the
//!   server's RSS after every phase, so memory that is not given back after
//!   load shows as a rising idle series.
//! - `flood`: opens N raw TCP connections that never send a byte (an
//!   accept storm) while probing a health URL, and prints how long the
//!   probes took.
//! - `cluster`: nodes sharing one Redis (`broker.kind = "redis"`): the p50
//!   and p99 delivery latency to a subscriber on the publishing node and on
//!   another node, then a fan-out across every node.
//! - `commands`: players' commands through Tandem to a game backend that
//!   answers at once (in this process), against the same requests sent to
//!   it directly: commands per second and the latency Tandem adds.
//! - `churn`: the long soak — connections opened and closed for
//!   `--minutes` with publications flowing, RSS and descriptors sampled,
//!   every gauge compared with its idle value at the end (PASS/FAIL).
//! - `presence`: N subscribers of one channel (over one node or several):
//!   the server CPU of a join and of a leave above a plain connection's,
//!   and the latency of asking for the list and for the count alone.
//! - `cluster-load` and `cluster-reach`: 100,000 idle connections over a
//!   cluster on one machine (several generator processes, one
//!   orchestrator): RSS per connection, the time for one broadcast to reach
//!   all of them, Redis's and the nodes' CPU (`bench/scripts/cluster100k.sh`).
//! - `pace`: N subscribers (WebSocket or SSE, raw sockets) on one channel,
//!   K publications at a fixed rate (or as fast as the API answers); reports
//!   the server's CPU time per delivery, deliveries per second and the
//!   delivery latency each subscriber saw (its clock minus the frame's
//!   `ts`). `bench/run.sh` runs it against Tandem and the reference server.
//!
//! Only loopback targets are accepted, and every loop is bounded in count
//! and time.

mod churn;
mod cluster_load;
mod commands;
mod history;
mod presence;
mod procfs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    /// Server base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Server process id, to read its RSS, CPU time and descriptors from
    /// /proc (summed with every process it started: nginx's workers).
    #[arg(long)]
    pid: u32,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Ws,
    Sse,
}

#[derive(clap::Args)]
struct FanoutArgs {
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// API key configured on the server (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// Extra subscribers that never read (slow consumers).
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// Size of each publication's `data.text`, in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// The other nodes' base URLs (loopback only); `--url` is the publishing node.
    #[arg(long, value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// API key configured on the nodes (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// Publications timed one at a time for the latency figures.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Subscribers on each node for the fan-out figure.
    #[arg(long, default_value_t = 50)]
    subscribers_per_node: usize,
    /// Publications for the fan-out and throughput figures.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// A namespace the nodes keep no history for
    /// (`broker.history_namespaces`, size 0): timed beside `room`.
    #[arg(long)]
    plain_namespace: Option<String>,
}

#[derive(clap::Args)]
struct PaceArgs {
    #[arg(long, default_value_t = 1_000)]
    subscribers: usize,
    #[arg(long, value_enum, default_value_t = Kind::Ws)]
    transport: Kind,
    /// Publications per second; 0 publishes the next as soon as the API
    /// answered the last (burst).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value_t = 1_000)]
    messages: usize,
    /// API key configured on the server (`auth.api_keys`).
    #[arg(long)]
    api_key: String,
    /// Size of each publication's `data.text`, in bytes.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Put the publisher's clock in each body as a top-level `"ts"` (ms),
    /// for a server that delivers bodies verbatim and stamps nothing
    /// (Nchan). Not for one that stamps its frames: each delivery would
    /// hold two stamps and count twice.
    #[arg(long)]
    stamp_body: bool,
}

#[derive(Subcommand)]
enum Cmd {
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, value_enum, default_value_t = Kind::Ws)]
        transport: Kind,
    },
    Fanout(FanoutArgs),
    Pace(PaceArgs),
    Flood {
        #[arg(long, default_value_t = 5_000)]
        connections: usize,
        /// Probed during the flood, e.g. `http://127.0.0.1:9091/health`
        /// (loopback only); defaults to `<url>/health`.
        #[arg(long)]
        probe: Option<String>,
        /// Seconds to keep probing with the connections held.
        #[arg(long, default_value_t = 10)]
        hold_seconds: u64,
    },
    Soak {
        /// Connections per spike, half WebSocket and half SSE.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Idle wait after each spike: at least the server's
        /// `session.resume_window_seconds`, so sessions expire.
        #[arg(long, default_value_t = 5)]
        idle_seconds: u64,
    },
    Cluster(ClusterArgs),
    /// SDK clients on one node behind a round-robin balancer, the node
    /// SIGKILLed mid-stream: how fast each has everything, and nothing twice.
    Recovery(history::RecoveryArgs),
    /// Channel histories filled through the API against Redis's memory.
    HistoryMemory(history::MemoryArgs),
    /// A resume on the session's own node against a takeover by another,
    /// and an SSE uplink post to either.
    Resume(history::ResumeArgs),
    /// Commands through Tandem to an in-process game backend that answers
    /// at once, against the same requests sent to it directly.
    Commands(commands::CommandsArgs),
    /// The long soak: connect/disconnect churn with traffic on both
    /// transports, RSS and descriptors sampled, every gauge back at idle
    /// at the end; exits non-zero when a check fails.
    Churn(churn::ChurnArgs),
    /// Channel presence at N subscribers of one channel: the work of a
    /// join and a leave, and what asking costs (the list, the count).
    Presence(presence::PresenceArgs),
    /// One generator of `cluster-reach`: its share of idle connections over
    /// the nodes, every delivery's latency written for the orchestrator.
    ClusterLoad(cluster_load::LoadArgs),
    /// The orchestrator: waits for the generators, reads RSS and CPU,
    /// publishes the broadcasts through `--url`, merges the latencies.
    ClusterReach(cluster_load::ReachArgs),
}

const DEADLINE: Duration = Duration::from_secs(120);

/// A raw idle connection: upgrade or SSE request, read the response head
/// and the welcome, then hold the socket.
async fn open_on(addr: &str, kind: Kind, player: &str, extra: &str) -> std::io::Result<TcpStream> {
    // A small receive window, so a client that stops reading backs up fast.
    connect(addr, kind, player, extra, Some(4096)).await
}

async fn connect(
    addr: &str,
    kind: Kind,
    player: &str,
    extra: &str,
    recv_window: Option<u32>,
) -> std::io::Result<TcpStream> {
    connect_keeping_body(addr, kind, player, extra, recv_window).await.map(|(s, _)| s)
}

/// [`connect`], also returning the bytes read after the response head:
/// the welcome and whatever came behind it in the same reads, for a
/// reader that must see every frame.
async fn connect_keeping_body(
    addr: &str,
    kind: Kind,
    player: &str,
    extra: &str,
    recv_window: Option<u32>,
) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let target: std::net::SocketAddr =
        tokio::net::lookup_host(addr).await?.next().ok_or_else(|| std::io::Error::other("no address"))?;
    let socket =
        if target.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    if let Some(window) = recv_window {
        socket.set_recv_buffer_size(window)?;
    }
    let mut s = socket.connect(target).await?;
    let req = match kind {
        Kind::Ws => format!(
            "GET /ws?player_id={player}{extra} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
        Kind::Sse => format!(
            "GET /sse?player_id={player}{extra} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        ),
    };
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(7).any(|w| w == b"welcome") {
        let k = s.read(&mut buf).await?;
        if k == 0 || got.len() > 16 * 1024 {
            return Err(std::io::Error::other(String::from_utf8_lossy(&got).into_owned()));
        }
        got.extend_from_slice(&buf[..k]);
    }
    let body = got.windows(4).position(|w| w == b"\r\n\r\n").map_or_else(Vec::new, |i| got[i + 4..].to_vec());
    Ok((s, body))
}

async fn idle(addr: &str, pid: u32, n: usize, kind: Kind) {
    let rss0 = procfs::rss_kib(pid);
    let started = Instant::now();
    let conns = open_many(addr, n, |i| (kind, format!("b{i}"))).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(pid);
    let ok = conns.len().max(1);
    println!(
        "idle {}: {} connections in {:.2} s ({:.0}/s); server RSS {} KiB -> {} KiB: {:.2} KiB per connection",
        match kind {
            Kind::Ws => "websocket",
            Kind::Sse => "sse",
        },
        conns.len(),
        took.as_secs_f64(),
        conns.len() as f64 / took.as_secs_f64(),
        rss0,
        rss1,
        rss1.saturating_sub(rss0) as f64 / ok as f64
    );
}

/// Opens `n` connections, 256 at a time (bounded by [`DEADLINE`]); `who`
/// names each one's transport and player.
async fn open_many(addr: &str, n: usize, who: impl Fn(usize) -> (Kind, String)) -> Vec<TcpStream> {
    open_many_on(&|_| addr.to_owned(), n, |i| {
        let (kind, player) = who(i);
        (kind, player, String::new())
    })
    .await
}

/// [`open_many`] over several nodes: `on` gives each connection's address,
/// `who` its transport, player and extra query (`&channels=…`).
async fn open_many_on(
    on: &impl Fn(usize) -> String,
    n: usize,
    who: impl Fn(usize) -> (Kind, String, String),
) -> Vec<TcpStream> {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let (kind, player, extra) = who(i);
        let addr = on(i);
        batch.push(async move { open_on(&addr, kind, &player, &extra).await });
        if batch.len() == 256 || i + 1 == n {
            for r in futures_util::future::join_all(batch.drain(..)).await {
                match r {
                    Ok(s) => conns.push(s),
                    Err(e) => eprintln!("connect failed: {e}"),
                }
            }
        }
        if started.elapsed() > DEADLINE {
            break;
        }
    }
    conns
}

/// Opens `n` connections (alternating WebSocket and SSE) with distinct players.
async fn spike(addr: &str, n: usize, round: usize) -> Vec<TcpStream> {
    open_many(addr, n, |i| (if i % 2 == 0 { Kind::Ws } else { Kind::Sse }, format!("r{round}p{i}"))).await
}

async fn soak(addr: &str, pid: u32, n: usize, rounds: usize, idle: Duration) {
    let rss = || procfs::rss_kib(pid);
    let start = rss();
    println!("soak: {rounds} rounds of {n} connections; RSS in KiB");
    println!("round\tloaded\tclosed+{}s", idle.as_secs());
    let mut last_idle = start;
    for round in 0..rounds {
        let conns = spike(addr, n, round).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let loaded = rss();
        let opened = conns.len();
        drop(conns);
        tokio::time::sleep(idle).await;
        last_idle = rss();
        println!("{round}\t{loaded}\t{last_idle}\t({opened} opened)");
    }
    println!(
        "soak: start {start} KiB, idle after the last spike {last_idle} KiB ({:+.1} MiB)",
        (last_idle as f64 - start as f64) / 1024.0
    );
}

async fn flood(addr: &str, probe: &str, n: usize, hold: Duration) {
    let target = addr.to_owned();
    let opener = tokio::spawn(async move {
        let mut held = Vec::with_capacity(n);
        let started = Instant::now();
        // 256 connects in flight at once: a storm, not a queue.
        while held.len() < n && started.elapsed() < DEADLINE {
            let batch = (n - held.len()).min(256);
            let results =
                futures_util::future::join_all((0..batch).map(|_| TcpStream::connect(target.as_str()))).await;
            let before = held.len();
            held.extend(results.into_iter().filter_map(Result::ok));
            if held.len() == before {
                eprintln!("flood: no connect succeeded after {before}");
                break;
            }
        }
        (held, started.elapsed())
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    let mut times = Vec::new();
    let mut failures = 0;
    // Probe while the storm lasts and while the connections are held.
    let until = Instant::now() + hold;
    while (!opener.is_finished() || Instant::now() < until) && times.len() + failures < 10_000 {
        let started = Instant::now();
        match client.get(probe).send().await {
            Ok(r) if r.status().as_u16() < 500 => times.push(started.elapsed()),
            _ => failures += 1,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (held, took) = opener.await.unwrap_or_default();
    times.sort();
    let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default();
    println!(
        "flood: {} connections in {:.2} s; {} probes of {probe} ({failures} failed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        held.len(),
        took.as_secs_f64(),
        times.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

async fn fanout(base: &str, addr: &str, pid: u32, args: FanoutArgs) {
    let FanoutArgs { subscribers: subs, messages, api_key, slow, payload_bytes: payload } = args;
    let key = api_key.as_str();
    let ws_base = base.replacen("http", "ws", 1);
    // Subscribers that read their welcome and then nothing more.
    let mut stalled = Vec::new();
    for i in 0..slow {
        match open_on(addr, Kind::Ws, &format!("s{i}"), "&channels=room:bench").await {
            Ok(s) => stalled.push(s),
            Err(e) => eprintln!("slow connect failed: {e}"),
        }
    }
    let mut readers = Vec::new();
    for i in 0..subs {
        let url = format!("{ws_base}/ws?player_id=f{i}&channels=room:bench");
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => readers.push(ws),
            Err(e) => eprintln!("connect failed: {e}"),
        }
    }
    let expected = messages;
    let counters: Vec<_> = readers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut seen = 0usize;
                let deadline = Instant::now() + DEADLINE;
                while seen < expected + 1 && Instant::now() < deadline {
                    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                        Ok(Some(Ok(m))) if m.is_text() => seen += 1,
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                seen.saturating_sub(1) // the welcome
            })
        })
        .collect();
    let client = reqwest::Client::new();
    let cpu0 = procfs::cpu_ticks(pid);
    let started = Instant::now();
    let body =
        serde_json::json!({"channel": "room:bench", "event": "tick", "data": {"text": "x".repeat(payload)}});
    for _ in 0..messages {
        let r = client.post(format!("{base}/api/publish")).bearer_auth(key).json(&body).send().await;
        if r.is_err() {
            eprintln!("publish failed");
        }
    }
    let mut delivered = 0;
    for c in counters {
        delivered += c.await.unwrap_or(0);
    }
    let took = started.elapsed();
    let cpu = procfs::cpu_ticks(pid).saturating_sub(cpu0) as f64 / 100.0;
    println!(
        "fanout: {subs} subscribers (+{} stalled) x {messages} messages: {delivered} of {} delivered in {:.2} s \
         ({:.0}/s); server CPU {:.2} s = {:.2} us per delivery; addr {addr}",
        stalled.len(),
        subs * messages,
        took.as_secs_f64(),
        delivered as f64 / took.as_secs_f64(),
        cpu,
        cpu * 1e6 / delivered.max(1) as f64
    );
}

fn is_loopback_url(u: &str) -> bool {
    url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_owned)).is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A subscriber of `channel` on the node at `base`, its welcome read.
async fn subscriber(base: &str, player: &str, channel: &str) -> Option<Ws> {
    let url = format!("{}/ws?player_id={player}&channels={channel}", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(_welcome))) => Some(ws),
        _ => None,
    }
}

/// The next delivery's publication id, or `None` after `wait`.
async fn next_id(ws: &mut Ws, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), ws.next()).await {
            Ok(Some(Ok(m))) if m.is_text() => {
                let v: serde_json::Value = serde_json::from_str(m.to_text().ok()?).ok()?;
                if v["type"] == "message" {
                    return v["id"].as_str().map(str::to_owned);
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
    None
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn cluster(base: &str, args: ClusterArgs) {
    let ClusterArgs { nodes, api_key, samples, subscribers_per_node, messages, plain_namespace } = args;
    if let Some(bad) = nodes.iter().find(|n| !is_loopback_url(n)) {
        return eprintln!("refusing a non-loopback node: {bad}");
    }
    let client = reqwest::Client::new();
    let publish = |channel: String| {
        let (client, key) = (client.clone(), api_key.clone());
        let url = format!("{base}/api/publish");
        async move {
            let body = serde_json::json!({"channel": channel, "event": "tick", "data": {"n": 1}});
            let r = client.post(url).bearer_auth(key).json(&body).send().await.ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["id"].as_str().map(str::to_owned)
        }
    };

    // Latency and throughput of a channel with history (`room`), then of
    // one whose namespace keeps none (`--plain-namespace`), when given.
    let mut kinds = vec![("with history", "room".to_owned())];
    kinds.extend(plain_namespace.map(|ns| ("without history", ns)));
    for (kind, ns) in kinds {
        let channel = format!("{ns}:lat");
        // One subscriber here, one on the first other node; each publication
        // timed from just before the API call to its arrival.
        let (Some(mut here), Some(mut there)) =
            (subscriber(base, "lat-a", &channel).await, subscriber(&nodes[0], "lat-b", &channel).await)
        else {
            return eprintln!("cannot connect the latency subscribers");
        };
        let (mut same, mut cross) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..samples {
            if started.elapsed() > DEADLINE {
                break;
            }
            let t0 = Instant::now();
            let (sent, a, b) = tokio::join!(
                publish(channel.clone()),
                async {
                    let id = next_id(&mut here, Duration::from_secs(5)).await;
                    (id, t0.elapsed())
                },
                async {
                    let id = next_id(&mut there, Duration::from_secs(5)).await;
                    (id, t0.elapsed())
                }
            );
            match (sent, a, b) {
                (Some(id), (Some(ia), da), (Some(ib), db)) if ia == id && ib == id => {
                    same.push(da);
                    cross.push(db);
                }
                _ => eprintln!("a latency sample was lost"),
            }
        }
        same.sort();
        cross.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "cluster latency {kind} over {} publications: same node p50 {:.3} ms p99 {:.3} ms; other node p50 \
             {:.3} ms p99 {:.3} ms; cross-node adds {:.3} ms at p50",
            same.len(),
            ms(percentile(&same, 0.5)),
            ms(percentile(&same, 0.99)),
            ms(percentile(&cross, 0.5)),
            ms(percentile(&cross, 0.99)),
            ms(percentile(&cross, 0.5)) - ms(percentile(&same, 0.5)),
        );
        // Throughput: 16 publishers at once, until `messages` were accepted
        // and the subscriber on the other node had them all.
        let started = Instant::now();
        let per = messages.div_ceil(16);
        let publishers = futures_util::future::join_all((0..16).map(|_| {
            let channel = channel.clone();
            let publish = &publish;
            async move {
                let mut ok = 0usize;
                for _ in 0..per {
                    ok += usize::from(publish(channel.clone()).await.is_some());
                }
                ok
            }
        }));
        let receiver = async {
            let mut seen = 0usize;
            while seen < per * 16 && next_id(&mut there, Duration::from_secs(10)).await.is_some() {
                seen += 1;
            }
            seen
        };
        let (accepted, seen) = tokio::join!(publishers, receiver);
        let accepted: usize = accepted.into_iter().sum();
        let took = started.elapsed().as_secs_f64();
        println!(
            "cluster throughput {kind}: {accepted} publications accepted by 16 concurrent publishers, {seen} \
             received on the other node in {took:.2} s ({:.0} publications/s)",
            seen as f64 / took
        );
    }

    // Fan-out: subscribers on every node, publications through this one.
    let mut all = vec![base.to_owned()];
    all.extend(nodes.iter().cloned());
    let mut readers = Vec::new();
    for (n, node) in all.iter().enumerate() {
        for i in 0..subscribers_per_node {
            match subscriber(node, &format!("fan{n}-{i}"), "room:fan").await {
                Some(ws) => readers.push(ws),
                None => eprintln!("connect failed on {node}"),
            }
        }
    }
    let subs = readers.len();
    let counters: Vec<_> = readers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut seen = 0usize;
                while seen < messages && next_id(&mut ws, Duration::from_secs(10)).await.is_some() {
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let started = Instant::now();
    for _ in 0..messages {
        if publish("room:fan".to_owned()).await.is_none() {
            eprintln!("publish failed");
        }
    }
    let mut delivered = 0;
    for c in counters {
        delivered += c.await.unwrap_or(0);
    }
    let took = started.elapsed();
    println!(
        "cluster fan-out: {} nodes, {subs} subscribers x {messages} messages: {delivered} of {} delivered in \
         {:.2} s ({:.0} deliveries/s)",
        all.len(),
        subs * messages,
        took.as_secs_f64(),
        delivered as f64 / took.as_secs_f64()
    );
}

/// Latency histogram buckets, one per millisecond; the last holds
/// everything slower.
const LATENCY_BUCKETS: usize = 10_000;

/// What every subscriber of a `pace` run saw, shared by their readers.
struct Tally {
    delivered: AtomicU64,
    latency_ms: Vec<AtomicU64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            latency_ms: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, latency_ms: u64) {
        let i = usize::try_from(latency_ms).unwrap_or(usize::MAX).min(LATENCY_BUCKETS - 1);
        self.latency_ms[i].fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// The latency (ms) under which a fraction `p` of the deliveries fell.
    fn percentile(&self, p: f64) -> u64 {
        let counts: Vec<u64> = self.latency_ms.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        bucket_percentile(&counts, p)
    }
}

fn bucket_percentile(counts: &[u64], p: f64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64 * p).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (ms, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return ms as u64;
        }
    }
    counts.len() as u64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Finds every complete `"ts":<digits>` in `data` (WebSocket frames or SSE
/// events, whatever the framing around them) and hands each number to `f`.
/// Returns how many bytes are done with: the rest may hold a match cut by
/// the end of this read and is kept for the next.
fn scan_ts(data: &[u8], mut f: impl FnMut(u64)) -> usize {
    const PAT: &[u8] = b"\"ts\":";
    let mut i = 0;
    while let Some(p) = data[i..].windows(PAT.len()).position(|w| w == PAT) {
        let start = i + p + PAT.len();
        let digits = data[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if start + digits == data.len() {
            return i + p; // the number may go on in the next read
        }
        if let Some(v) = std::str::from_utf8(&data[start..start + digits]).ok().and_then(|s| s.parse().ok()) {
            f(v);
        }
        i = start + digits;
    }
    i.max(data.len().saturating_sub(PAT.len() - 1))
}

/// Reads one subscriber's deliveries until the peer closes or `until`.
async fn read_deliveries(mut s: TcpStream, tally: Arc<Tally>, until: tokio::time::Instant) {
    let mut buf = vec![0u8; 4096];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        carry.extend_from_slice(&buf[..n]);
        let now = now_ms();
        let done = scan_ts(&carry, |ts| tally.record(now.saturating_sub(ts)));
        carry.drain(..done);
    }
}

async fn pace(base: &str, addr: &str, pid: u32, args: PaceArgs) {
    let PaceArgs { subscribers: subs, transport, rate, messages, api_key, payload_bytes, stamp_body } = args;
    let tally = Arc::new(Tally::new());
    // Readers stop by themselves at the latest here.
    let until = tokio::time::Instant::now() + 2 * DEADLINE;
    let setup = Instant::now();
    let mut readers = Vec::with_capacity(subs);
    let mut batch = Vec::new();
    for i in 0..subs {
        let player = format!("p{i}");
        batch.push(async move { connect(addr, transport, &player, "&channels=room:bench", None).await });
        if batch.len() == 256 || i + 1 == subs {
            for r in futures_util::future::join_all(batch.drain(..)).await {
                match r {
                    Ok(s) => readers.push(tokio::spawn(read_deliveries(s, Arc::clone(&tally), until))),
                    Err(e) => eprintln!("connect failed: {e}"),
                }
            }
        }
        if setup.elapsed() > DEADLINE {
            break;
        }
    }
    let connected = readers.len();
    // Let the last subscriptions settle before the first publication.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let mut body = serde_json::json!({"channel": "room:bench", "event": "tick", "data": {"text": "x".repeat(payload_bytes)}});
    let url = format!("{base}/api/publish");
    let mut ticks = (rate > 0).then(|| tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate))));
    let cpu0 = procfs::cpu_ticks(pid);
    let started = Instant::now();
    let mut failed = 0;
    for _ in 0..messages {
        if let Some(t) = ticks.as_mut() {
            t.tick().await;
        }
        if stamp_body {
            body["ts"] = now_ms().into();
        }
        match client.post(&url).bearer_auth(&api_key).json(&body).send().await {
            Ok(r) if r.status().is_success() => {}
            _ => failed += 1,
        }
        if started.elapsed() > DEADLINE {
            break;
        }
    }
    let published_in = started.elapsed();
    // Wait (bounded) for the deliveries still on their way; the run ends at
    // the last one that arrived.
    let expected = (connected * messages) as u64;
    let drain_until = Instant::now() + Duration::from_secs(10);
    let mut last = tally.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while last < expected && Instant::now() < drain_until && last_change.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = tally.delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let cpu = procfs::cpu_ticks(pid).saturating_sub(cpu0) as f64 / 100.0;
    let took = last_change.duration_since(started).max(published_in).as_secs_f64();
    for r in &readers {
        r.abort();
    }
    let delivered = tally.delivered.load(Ordering::Relaxed);
    println!(
        "pace {}: {connected} subscribers x {messages} messages at {} ({:.1}/s achieved, {failed} failed): \
         {delivered} of {expected} delivered in {took:.2} s ({:.0}/s); server CPU {cpu:.2} s = {:.2} us per \
         delivery; latency p50 {} ms, p99 {} ms, max {} ms",
        match transport {
            Kind::Ws => "websocket",
            Kind::Sse => "sse",
        },
        if rate == 0 { "full speed".to_owned() } else { format!("{rate}/s") },
        messages as f64 / published_in.as_secs_f64(),
        delivered as f64 / took,
        cpu * 1e6 / delivered.max(1) as f64,
        tally.percentile(0.5),
        tally.percentile(0.99),
        tally.percentile(1.0),
    );
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let url = match url::Url::parse(&cli.url) {
        Ok(u) => u,
        Err(e) => return eprintln!("bad --url: {e}"),
    };
    let host = url.host_str().unwrap_or("");
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return eprintln!("refusing a non-loopback target: {host}");
    }
    let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
    let base = cli.url.trim_end_matches('/');
    match cli.cmd {
        Cmd::Idle { connections, transport } => idle(&addr, cli.pid, connections, transport).await,
        Cmd::Fanout(args) => fanout(base, &addr, cli.pid, args).await,
        Cmd::Pace(args) => pace(base, &addr, cli.pid, args).await,
        Cmd::Flood { connections, probe, hold_seconds } => {
            let probe = probe.unwrap_or_else(|| format!("{base}/health"));
            let loopback = url::Url::parse(&probe).ok().and_then(|u| {
                let h = u.host_str()?.to_owned();
                Some(h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
            });
            if loopback != Some(true) {
                return eprintln!("refusing a non-loopback probe: {probe}");
            }
            let hold = Duration::from_secs(hold_seconds.min(600));
            flood(&addr, &probe, connections.min(50_000), hold).await
        }
        Cmd::Soak { connections, rounds, idle_seconds } => {
            let idle_seconds = idle_seconds.min(3_600);
            soak(&addr, cli.pid, connections, rounds.min(100), Duration::from_secs(idle_seconds)).await
        }
        Cmd::Cluster(args) => cluster(base, args).await,
        Cmd::Recovery(args) => history::recovery(base, cli.pid, args).await,
        Cmd::HistoryMemory(args) => history::memory(base, args).await,
        Cmd::Resume(args) => history::resume(base, args).await,
        Cmd::Commands(args) => commands::commands(&addr, cli.pid, args).await,
        Cmd::Presence(args) => presence::presence(base, &addr, cli.pid, args).await,
        Cmd::ClusterLoad(args) => {
            if let Err(e) = cluster_load::load(args).await {
                eprintln!("cluster-load: {e}");
                std::process::exit(1);
            }
        }
        Cmd::ClusterReach(args) => {
            if let Err(e) = cluster_load::reach(base, args).await {
                eprintln!("cluster-reach: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Churn(args) => {
            if !churn::churn(base, &addr, cli.pid, args).await {
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ts(data: &[u8]) -> (Vec<u64>, usize) {
        let mut seen = Vec::new();
        let done = scan_ts(data, |v| seen.push(v));
        (seen, done)
    }

    #[test]
    fn finds_every_timestamp_in_sse_and_websocket_bytes() {
        let sse = b"id: 1\nevent: message\ndata: {\"seq\":1,\"ts\":17}\n\nid: 2\nevent: message\ndata: {\"ts\":18,\"x\":1}\n\n";
        assert_eq!(all_ts(sse).0, vec![17, 18]);
        let mut ws = vec![0x81, 9];
        ws.extend_from_slice(b"{\"ts\":42}");
        let (seen, done) = all_ts(&ws);
        assert_eq!(seen, vec![42]);
        // Only the closing brace, which holds no timestamp, is left over.
        assert_eq!(done, ws.len() - 1);
    }

    #[test]
    fn keeps_a_timestamp_cut_by_the_end_of_a_read() {
        let first = b"{\"a\":1,\"ts\":123";
        let (seen, done) = all_ts(first);
        assert!(seen.is_empty());
        let mut rest = first[done..].to_vec();
        rest.extend_from_slice(b"45}");
        assert_eq!(all_ts(&rest).0, vec![12345]);
        // A pattern cut in the middle is kept too.
        let (seen, done) = all_ts(b"xxxx\"t");
        assert!(seen.is_empty());
        assert_eq!(done, 2);
    }

    #[test]
    fn percentiles_come_from_millisecond_buckets() {
        let mut counts = vec![0u64; 10];
        counts[1] = 98;
        counts[7] = 2;
        assert_eq!(bucket_percentile(&counts, 0.5), 1);
        assert_eq!(bucket_percentile(&counts, 0.98), 1);
        assert_eq!(bucket_percentile(&counts, 0.99), 7);
        assert_eq!(bucket_percentile(&counts, 1.0), 7);
        assert_eq!(bucket_percentile(&[0; 4], 0.99), 0);
    }
}
