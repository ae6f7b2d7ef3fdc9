//! `commands`: what a player's command costs on its way through Tandem to
//! a game backend that answers at once.
//!
//! The backend runs in this process (actix-web on its own thread, bound to
//! `--backend-port`, where the measured Tandem's `backend.command_url`
//! points). Each of `--clients` players sends commands one after another
//! over a WebSocket and waits for each `reply`; the same number of workers
//! then POST the same bodies straight to the backend with a keep-alive
//! client. Printed: commands per second through Tandem, p50/p99 of both
//! round trips, the latency Tandem adds, and Tandem's CPU time per command.
//! Numbers only; nothing is asserted. The measured Tandem needs limits
//! above the load: `transport.inbound_rate_per_second`,
//! `backend.commands_per_second` (and their bursts) — `bench/run.sh` sets them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{percentile, procfs};

#[derive(clap::Args)]
pub struct CommandsArgs {
    /// Loopback port the in-process game backend listens on (Tandem's
    /// `backend.command_url` = `http://127.0.0.1:<port>/command`).
    #[arg(long)]
    backend_port: u16,
    /// Players sending at once, each one command after another.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Commands per player.
    #[arg(long, default_value_t = 200)]
    commands: usize,
}

/// The game backend: answers every command at once with `{"data":{"ok":true}}`.
fn start_backend(port: u16) -> std::io::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
        App::new().route(
            "/command",
            web::post().to(|| async {
                HttpResponse::Ok().content_type("application/json").body(r#"{"data":{"ok":true}}"#)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))?
    .run();
    std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(server);
    });
    Ok(())
}

/// One player's round trips through Tandem, or why it stopped.
async fn player(addr: String, i: usize, n: usize) -> Result<Vec<Duration>, String> {
    let url = format!("ws://{addr}/ws?player_id=cmd{i}");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n);
    let deadline = Instant::now() + crate::DEADLINE;
    for k in 0..n {
        let id = format!("c{k}");
        let frame = format!(r#"{{"type":"command","id":"{id}","name":"move","data":{{"cell":{}}}}}"#, k % 9);
        let sent = Instant::now();
        ws.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
        loop {
            let msg = tokio::time::timeout_at(deadline.into(), ws.next())
                .await
                .map_err(|_| "deadline".to_owned())?
                .ok_or("closed")?
                .map_err(|e| e.to_string())?;
            let Message::Text(text) = msg else { continue };
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if v["type"] == "error" && v.get("id").is_none() {
                // Refused before it was a command (the inbound rate limit).
                return Err(format!("refused: {text}"));
            }
            if v["id"] == id.as_str() {
                if v["type"] != "reply" {
                    return Err(format!("command answered {text}"));
                }
                out.push(sent.elapsed());
                break;
            }
        }
    }
    Ok(out)
}

/// The same bodies POSTed straight to the backend.
async fn direct(client: reqwest::Client, url: Arc<str>, i: usize, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let body = format!(
            r#"{{"id":"c{k}","name":"move","data":{{"cell":{}}},"player_id":"cmd{i}","session_id":"s","transport":"websocket"}}"#,
            k % 9
        );
        let sent = Instant::now();
        let ok = client
            .post(&*url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        if let Ok(r) = ok {
            let _ = r.bytes().await;
            out.push(sent.elapsed());
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn commands(addr: &str, pid: u32, args: CommandsArgs) {
    if let Err(e) = start_backend(args.backend_port) {
        eprintln!("commands: cannot bind the backend on 127.0.0.1:{}: {e}", args.backend_port);
        std::process::exit(1);
    }
    let backend = format!("http://127.0.0.1:{}/command", args.backend_port);
    // The backend is up once it answers.
    let probe = reqwest::Client::new();
    for _ in 0..100 {
        if probe.post(&backend).body("{}").send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cpu0 = procfs::cpu_ticks(pid);
    let started = Instant::now();
    let runs = (0..args.clients).map(|i| tokio::spawn(player(addr.to_owned(), i, args.commands)));
    let mut through = Vec::new();
    for r in futures_util::future::join_all(runs).await {
        match r {
            Ok(Ok(t)) => through.extend(t),
            Ok(Err(e)) => eprintln!("commands: a player stopped: {e}"),
            Err(e) => eprintln!("commands: a player failed: {e}"),
        }
    }
    let took = started.elapsed();
    let cpu_s = procfs::cpu_ticks(pid).saturating_sub(cpu0) as f64 / 100.0;

    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build().unwrap_or_default();
    let url: Arc<str> = Arc::from(backend.as_str());
    let runs =
        (0..args.clients).map(|i| tokio::spawn(direct(client.clone(), Arc::clone(&url), i, args.commands)));
    let mut straight = Vec::new();
    for t in futures_util::future::join_all(runs).await.into_iter().flatten() {
        straight.extend(t);
    }
    through.sort();
    straight.sort();
    let (t50, t99) = (percentile(&through, 0.50), percentile(&through, 0.99));
    let (d50, d99) = (percentile(&straight, 0.50), percentile(&straight, 0.99));
    let n = through.len().max(1);
    println!(
        "commands: {} of {} answered in {:.2} s ({:.0}/s) by {} players; through Tandem p50 {:.3} ms p99 {:.3} ms; \
         backend direct p50 {:.3} ms p99 {:.3} ms; added p50 {:.3} ms p99 {:.3} ms; {:.1} us CPU per command",
        through.len(),
        args.clients * args.commands,
        took.as_secs_f64(),
        through.len() as f64 / took.as_secs_f64(),
        args.clients,
        ms(t50),
        ms(t99),
        ms(d50),
        ms(d99),
        ms(t50.saturating_sub(d50)),
        ms(t99.saturating_sub(d99)),
        cpu_s * 1e6 / n as f64
    );
}
