//! A terminal chat over one Tandem session, for two terminals against a
//! server in development mode:
//!
//! ```text
//! cargo run -p tandem-client --example chat -- alice            # terminal 1
//! cargo run -p tandem-client --example chat -- bob              # terminal 2
//! cargo run -p tandem-client --example chat -- carol tavern sse http://127.0.0.1:8080
//! ```
//!
//! Arguments: player, room (default `lobby`), mode (`auto`, `websocket`,
//! `sse`, `dual`; default `auto`), server URL (default
//! `http://127.0.0.1:8080`). Type a line to say it; `/ping`, `/reconnect`
//! and `/quit` do what they say. Status changes and resyncs are printed as
//! they happen; every message shows its `seq`.

use serde_json::json;
use tandem_client::{Client, ClientEvent, ClientOptions, Mode, Status};
use tokio::sync::mpsc;

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

    let options = ClientOptions::new(url).player_id(player.clone()).mode(mode).channels(&[&room]).on_resync(
        |resync| async move {
            println!("* messages were lost ({:?}); a real game would reload its state here", resync.reason);
        },
    );
    let client = Client::new(options)?;
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

    println!("* {player} in {room}; type to chat, /ping, /reconnect, /quit");
    loop {
        tokio::select! {
            Some(status) = statuses.recv() => {
                println!("* status: {}", describe(&status));
                if let Status::Disconnected { .. } = status {
                    break;
                }
            }
            Some(event) = events.recv() => match event {
                ClientEvent::Message(m) => {
                    let from = m.data["from"].as_str().unwrap_or("?");
                    let text = m.data["text"].as_str().map_or_else(|| m.data.to_string(), str::to_owned);
                    println!("[{} #{}] {from}: {text}", m.channel, m.seq);
                }
                ClientEvent::Resync(r) => println!("* resync: now session {} after seq {}", r.session_id, r.last_seq),
            },
            line = lines.recv() => {
                let Some(line) = line else { break };
                match line.trim() {
                    "" => {}
                    "/quit" => break,
                    "/ping" => match client.ping().await {
                        Ok(rtt) => println!("* pong in {rtt:?}"),
                        Err(e) => println!("* ping failed: {e}"),
                    },
                    "/reconnect" => client.reconnect(),
                    text => {
                        let data = json!({"from": player, "text": text});
                        if let Err(e) = client.publish(&room, "chat", data).await {
                            println!("* not sent: {e}");
                        }
                    }
                }
            }
        }
    }
    client.close().await;
    Ok(())
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
