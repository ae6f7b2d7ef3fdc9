//! JWT auth: refusals with the right codes, tokens minted by `tandem token`,
//! no development mode once a secret is set, and no token in any log line.

use std::time::Duration;

use tandem_client::{ClientError, ConnectOptions, SseClient, WsClient};
use tandem_e2e::server::{run_tandem, toml_string};
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::{Peer, TestServer, Transport};

async fn server() -> TestServer {
    TestServer::builder().set("auth", "secret", &toml_string(TEST_SECRET)).start().await
}

async fn refusal(transport: Transport, opts: &ConnectOptions) -> (u16, String) {
    match Peer::connect(transport, opts).await {
        Err(ClientError::Http { status, code, .. }) => (status, code),
        Ok(peer) => panic!("{transport:?}: connected as {:?}", peer.welcome()),
        Err(other) => panic!("{transport:?}: expected an HTTP refusal, got {other}"),
    }
}

/// The token `tandem token` prints: the one word shaped like a JWT.
fn minted_token(server: &TestServer, player: &str) -> String {
    let config = server.config_path().to_string_lossy().into_owned();
    let output = run_tandem(&["token", "--player", player, "--config", &config]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tandem token failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .split_whitespace()
        .find(|w| w.split('.').count() == 3 && w.starts_with("eyJ"))
        .unwrap_or_else(|| panic!("no JWT in the output of tandem token: {stdout:?}"))
        .to_owned()
}

#[tokio::test]
async fn bad_credentials_are_refused_with_their_reason() {
    let server = server().await;
    let forged = tokens::forged("alice");
    let expired = tokens::expired(TEST_SECRET, "alice");
    for transport in Transport::ALL {
        let cases = [
            (server.anonymous(), "missing_token"),
            (server.dev("alice"), "missing_token"),
            (server.anonymous().token(forged.clone()), "invalid_token"),
            (server.anonymous().token(expired.clone()), "expired_token"),
            (server.anonymous().token("not.a.jwt"), "invalid_token"),
        ];
        for (opts, code) in cases {
            let (status, got) = refusal(transport, &opts).await;
            assert_eq!((status, got.as_str()), (401, code), "{transport:?} with {opts:?}");
        }
    }

    for reason in ["missing_token", "invalid_token", "expired_token"] {
        let line = server
            .wait_for_log(
                |l| l["message"] == "Authentication failed" && l["reason"] == reason,
                Duration::from_secs(10),
            )
            .await;
        assert!(line.get("level").is_some(), "{line}");
    }

    // Neither the log file nor stdout may carry a token, nor its signature.
    let content = server
        .wait_log_file(|c| c.matches("Authentication failed").count() >= 10, Duration::from_secs(10))
        .await;
    let stdout = server.output_dump();
    for token in [&forged, &expired] {
        let signature = token.rsplit('.').next().unwrap_or(token);
        for (name, text) in [("log file", &content), ("stdout", &stdout)] {
            assert!(!text.contains(token.as_str()), "{name} contains a token");
            assert!(!text.contains(signature), "{name} contains a token signature");
        }
    }
}

#[tokio::test]
async fn tokens_minted_by_the_cli_and_by_a_backend_connect() {
    let server = server().await;
    let minted = minted_token(&server, "alice");
    let ws = WsClient::connect(&server.anonymous().token(minted.clone()))
        .await
        .expect("WebSocket with a minted token");
    assert_eq!(ws.welcome.player_id, "alice");
    let sse = SseClient::connect(&server.anonymous().token(minted.clone()).session(&ws.welcome.session_id))
        .await
        .expect("SSE with a minted token");
    assert_eq!(sse.welcome.player_id, "alice");
    assert_eq!(sse.welcome.session_id, ws.welcome.session_id);
    let reply = sse.post(&tandem_client::ClientMessage::ping(1)).await.expect("POST with the same token");
    assert!(matches!(reply, tandem_client::ServerFrame::Pong { .. }), "{reply:?}");

    let bob = tokens::valid(TEST_SECRET, "bob");
    let bob_ws = WsClient::connect(&server.anonymous().token(bob.clone()))
        .await
        .expect("WebSocket with a backend-minted token");
    assert_eq!(bob_ws.welcome.player_id, "bob");

    // Bob may not post into Alice's session.
    let url = format!("{}/sessions/{}/messages", server.base_url(), ws.welcome.session_id);
    let response = server
        .http()
        .post(&url)
        .bearer_auth(&bob)
        .header("content-type", "application/json")
        .body(r#"{"type":"ping","id":1}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 403);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");

    let logs = std::fs::read_to_string(server.log_file()).unwrap_or_default();
    let stdout = server.output_dump();
    for token in [&minted, &bob] {
        assert!(!logs.contains(token.as_str()), "log file contains a token");
        assert!(!stdout.contains(token.as_str()), "stdout contains a token");
    }
    ws.close().await;
    bob_ws.close().await;
}
