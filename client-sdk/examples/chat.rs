//! A terminal chat over one Tandem session: the quickest way to try a
//! server by hand. Against a local server in development mode (no
//! `auth.secret`: the player is named by `?player_id=`, which this example
//! sends), from the repository root:
//!
//! ```text
//! cargo run --release -p tandem-server                            # terminal 1: serves 127.0.0.1:8080
//! cargo run -p tandem-client --example chat -- alice              # terminal 2
//! cargo run -p tandem-client --example chat -- bob lobby sse      # terminal 3, over SSE
//! ```
//!
//! A line typed in either chat shows up in both. Stop and restart the server:
//! both chats reconnect on their own (and print a resync, since a restarted
//! server lost their sessions); `/reconnect` skips the wait.
//!
//! Arguments, all optional: player (default `alice`; `[A-Za-z0-9_.@-]`, 1
//! to 64), room (default `lobby`, joined as `room:<room>`), mode (`auto`,
//! `websocket`, `sse`, `dual`; default `auto`), server URL (default
//! `http://127.0.0.1:8080`).
//!
//! A line is said to the room and comes back as `[room:lobby #seq] player:
//! text` (every message shows its `seq`). Commands: `/ping` (round trip),
//! `/reconnect` (check the link now: a dead one is replaced, a waiting retry
//! goes at once; prints the outcome), `/status` (status, session, last
//! `seq`), `/help`, `/quit` (close the session and exit; so does end of
//! input). Status changes and resyncs are printed as they happen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tandem_client::{Client, ClientEvent, ClientOptions, Mode, Status};
use tokio::sync::mpsc;

const HELP: &str = "type to chat; /ping, /reconnect, /status, /help, /quit";

/// How long `/reconnect` waits for a link before it reports.
const RECONNECT_REPORT_WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let player = args.next().unwrap_or_else(|| "alice".into());
    let room = format!("room:{}", args.next().unwrap_or_else(|| "lobby".into()));
    let mode = match args.next().as_deref() {
        None | Some("auto") => Mode::Auto,
        Some("websocket" | "ws") => Mode::WebSocket,
        Some("sse") => Mode::Sse,
        Some("dual") => Mode::Dual,
        Some(other) => return Err(format!("unknown mode {other:?}: auto, websocket, sse or dual").into()),
    };
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());

    let options = ClientOptions::new(url.clone())
        .player_id(player.clone())
        .mode(mode)
        .channels(&[&room])
        .on_resync(|resync| async move {
            println!("* messages were lost ({:?}); a real game would reload its state here", resync.reason);
        });
    let client = Arc::new(Client::new(options)?);
    let mut events = client.events();
    let mut statuses = client.status_stream();
    client.connect();

    // Lines from stdin, read on a plain thread (stdin is blocking).
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    println!("* {player} in {room} at {url} ({mode:?}); {HELP}");
    loop {
        tokio::select! {
            Some(status) = statuses.recv() => {
                println!("* status: {}", describe(&status));
                if let Status::Disconnected { .. } = status {
                    println!("* the client stopped for good; bye");
                    return Ok(());
                }
            }
            Some(event) = events.recv() => match event {
                ClientEvent::Message(m) => {
                    let from = m.data["from"].as_str().unwrap_or("?");
                    let text = m.data["text"].as_str().map_or_else(|| m.data.to_string(), str::to_owned);
                    println!("[{} #{}] {from}: {text}", m.channel, m.seq);
                }
                ClientEvent::Resync(r) => println!("* resync: now session {} after seq {}", r.session_id, r.last_seq),
                ClientEvent::Presence(p) => {
                    println!("* {} {} {}", p.player_id, if p.joined { "joined" } else { "left" }, p.channel);
                }
            },
            line = lines.recv() => {
                let Some(line) = line else {
                    println!("* end of input");
                    break;
                };
                match line.trim() {
                    "" => {}
                    "/quit" => break,
                    "/help" => println!("* {HELP}"),
                    "/status" => println!("* {}; {}", describe(&client.status()), position(&client)),
                    "/ping" => match client.ping().await {
                        Ok(rtt) => println!("* pong in {rtt:?}"),
                        Err(e) => println!("* ping failed: {e}"),
                    },
                    "/reconnect" => {
                        println!("* reconnecting: checking the link now (a dead one is replaced, a waiting retry goes at once)…");
                        client.reconnect();
                        // Reported from a task, so that the status changes it
                        // causes are printed as they happen.
                        tokio::spawn(report_reconnect(Arc::clone(&client)));
                    }
                    command if command.starts_with('/') => println!("* unknown command {command}; {HELP}"),
                    text => {
                        let data = json!({"from": player, "text": text});
                        // Sent: it comes back through the room like anyone's.
                        if let Err(e) = client.publish(&room, "chat", data).await {
                            println!("* not sent: {e}");
                        }
                    }
                }
            }
        }
    }
    println!("* bye: closing the session");
    client.close().await;
    println!("* {}", describe(&client.status()));
    Ok(())
}

/// What `/reconnect` led to. The check pings the open link; this ping queues
/// behind it, so its pong means the link passed. Without one (no link, or
/// the link failed the check), it waits for the next link and pings that.
async fn report_reconnect(client: Arc<Client>) {
    let started = Instant::now();
    let mut replaced = false;
    loop {
        match client.ping().await {
            Ok(rtt) if replaced => {
                let status = describe(&client.status());
                println!("* reconnected (pong in {rtt:?}): {status}; {}", position(&client));
                return;
            }
            Ok(rtt) => {
                let status = describe(&client.status());
                println!("* the link is alive (pong in {rtt:?}), kept: {status}; {}", position(&client));
                return;
            }
            // The main loop reports it and exits.
            Err(_) if matches!(client.status(), Status::Disconnected { .. }) => return,
            Err(e) => {
                if !replaced {
                    println!("* no live link ({e}): waiting for a new one");
                    replaced = true;
                }
                let Some(left) = RECONNECT_REPORT_WAIT.checked_sub(started.elapsed()) else {
                    println!(
                        "* not connected after {RECONNECT_REPORT_WAIT:?}: {}",
                        describe(&client.status())
                    );
                    return;
                };
                client
                    .wait_status(left, |s| {
                        matches!(s, Status::Connected { .. } | Status::Disconnected { .. })
                    })
                    .await;
                // The status may still show the link that just failed.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Where the session stands (from the latest welcome and delivery).
fn position(client: &Client) -> String {
    match client.session_id() {
        Some(session) => format!("session {session}, last seq {}", client.last_seq()),
        None => "no session yet".into(),
    }
}

fn describe(status: &Status) -> String {
    match status {
        Status::Connecting => "connecting".into(),
        Status::Connected { transport } => {
            let names: Vec<&str> = transport.iter().map(|t| t.as_str()).collect();
            format!("connected over {}", names.join(" + "))
        }
        Status::Reconnecting { attempt, delay } => {
            format!("reconnecting (attempt {attempt} in {delay:?})")
        }
        Status::Disconnected { code, reason } => format!("disconnected ({code:?} {reason})"),
    }
}
