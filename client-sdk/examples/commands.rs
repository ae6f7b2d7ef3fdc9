//! Commands to the game backend, then the end of the session: what a game
//! client does besides listening. Against a Tandem server with a
//! `[backend] command_url` (docs/backend.md; `examples/tictactoe` is one)
//! in development mode, from the repository root:
//!
//! ```text
//! cargo run -p tandem-client --example commands -- alice move '{"x":1,"y":2}'
//! ```
//!
//! Arguments, all optional: player (default `alice`), command name (default
//! `move`), its JSON data (default `null`), server URL (default
//! `http://127.0.0.1:8080`).
//!
//! The command goes out on the WebSocket (or beside the SSE stream); if the
//! link drops before the answer, the client sends it again with the same
//! id once it is back, and the server answers that resend from its reply
//! cache: the game runs it once. The example prints the answer, or the
//! refusal's code, then ends the session (`end_session`: the game hears
//! `player_left` with `"reason":"ended"`) and exits.

use std::time::Duration;

use serde_json::Value;
use tandem_client::{CallError, Client, ClientOptions, Status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let player = args.next().unwrap_or_else(|| "alice".into());
    let name = args.next().unwrap_or_else(|| "move".into());
    let data: Value = match args.next() {
        Some(text) => serde_json::from_str(&text)?,
        None => Value::Null,
    };
    let url = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());

    let client = Client::new(ClientOptions::new(url).player_id(player).call_timeout(Duration::from_secs(5)))?;
    client.connect();
    let status = client
        .wait_status(Duration::from_secs(10), |s| {
            matches!(s, Status::Connected { .. } | Status::Disconnected { .. })
        })
        .await;
    if let Some(refusal) = client.refusal() {
        // The game's connect hook (or Tandem) refused for good: `banned`…
        return Err(format!("refused: {refusal}").into());
    }
    println!("* {status:?}");

    match client.call(&name, data).await {
        Ok(answer) => println!("* {name}: {answer}"),
        // The game's own refusal (`illegal_move`…) or Tandem's
        // (`backend_timeout`, `backend_unavailable`, `rate_limited`…).
        Err(CallError::Server { code, message }) => println!("* {name} refused: {code} ({message})"),
        Err(CallError::Timeout(after)) => {
            println!("* no answer within {after:?}: it may still run; a retry is a new call (a new id)")
        }
        Err(CallError::SessionLost) => println!("* the session was replaced before the answer: reload first"),
        Err(e) => println!("* {name} failed: {e}"),
    }

    match client.end_session().await {
        Ok(()) => println!("* session ended: {:?}", client.status()),
        Err(e) => {
            println!("* could not end the session ({e}); closing");
            client.close().await;
        }
    }
    Ok(())
}
