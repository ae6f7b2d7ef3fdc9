//! The backend's view of players: `GET /api/players/{id}` and direct
//! messages through `POST /api/players/{id}/messages`.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_e2e::TestServer;

use super::eventually;

/// The player's sessions and connections; `None` when it has no session.
///
/// # Panics
/// On any answer but 200 or 404.
pub async fn player(server: &TestServer, player_id: &str) -> Option<Value> {
    let (status, body) = server.api_get(&format!("/api/players/{player_id}")).await;
    match status {
        200 => Some(body),
        404 => None,
        other => panic!("GET /api/players/{player_id}: {other} {body}"),
    }
}

/// Every connection listed under any of the player's sessions.
pub fn connections(detail: &Value) -> Vec<Value> {
    detail["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["connections"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// How many connections the server lists for the player right now.
pub async fn connection_count(server: &TestServer, player_id: &str) -> usize {
    player(server, player_id).await.map_or(0, |d| connections(&d).len())
}

/// Waits until the server lists exactly `n` connections for the player;
/// returns the player's detail at that moment (`Null` when it has none).
pub async fn wait_connection_count(server: &TestServer, player_id: &str, n: usize, wait: Duration) -> Value {
    eventually(&format!("player {player_id} has {n} connection(s)"), wait, || async {
        let detail = player(server, player_id).await.unwrap_or(Value::Null);
        (connections(&detail).len() == n).then_some(detail)
    })
    .await
}

/// The id of the player's only session.
///
/// # Panics
/// When the player has no session or several.
pub async fn only_session_id(server: &TestServer, player_id: &str) -> String {
    let detail = player(server, player_id).await.unwrap_or_else(|| panic!("{player_id} has no session"));
    let sessions = detail["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 1, "{player_id}: {detail}");
    sessions[0]["session_id"].as_str().unwrap_or_else(|| panic!("no session_id in {detail}")).to_owned()
}

/// The body of direct message `n` (event `n`, data `{"n": n}`).
pub fn numbered(n: u64) -> Value {
    json!({"event": "n", "data": {"n": n}})
}

/// Sends direct message `n` to the player.
///
/// # Panics
/// When the server does not accept it.
pub async fn direct(server: &TestServer, player_id: &str, n: u64) {
    let (status, body) = server.api_post(&format!("/api/players/{player_id}/messages"), numbered(n)).await;
    assert_eq!(status, 200, "direct message {n} to {player_id}: {body}");
}
