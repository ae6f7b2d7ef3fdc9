//! The log analysis guide's `jq` recipes, run with the real `jq` over the
//! real log file, return real values.

use std::time::Duration;

use serde_json::json;
use tandem_client::{ClientError, SseClient, WsClient};
use tandem_e2e::server::toml_string;
use tandem_e2e::shell::{require_tool, run_recipe};
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::{TestServer, WAIT};

const LOG_WAIT: Duration = Duration::from_secs(10);

fn numbers(output: &str) -> Vec<f64> {
    output.lines().filter_map(|l| l.trim().parse::<f64>().ok()).collect()
}

#[tokio::test]
async fn log_recipes_return_real_values() {
    require_tool("jq");
    let server = TestServer::builder()
        .set("logging", "level", "\"debug\"")
        .set("auth", "secret", &toml_string(TEST_SECRET))
        .start()
        .await;
    let token = tokens::valid(TEST_SECRET, "alice");
    let mut ws =
        WsClient::connect(&server.anonymous().token(token.clone())).await.expect("WebSocket connect");
    let mut sse = SseClient::connect(&server.anonymous().token(token).session(&ws.welcome.session_id))
        .await
        .expect("SSE connect to the same session");
    let (status, body) =
        server.api_post("/api/players/alice/messages", json!({"event": "hello", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    ws.next_frame(WAIT).await.expect("WebSocket delivery");
    sse.next_frame(WAIT).await.expect("SSE delivery");
    let refused = WsClient::connect(&server.anonymous().token(tokens::forged("mallory"))).await;
    assert!(matches!(refused, Err(ClientError::Http { status: 401, .. })), "{refused:?}");

    let file = server.log_file();
    server
        .wait_log_file(
            |c| {
                c.contains("WebSocket connected")
                    && c.contains("SSE connected")
                    && c.matches("Message delivered").count() >= 2
                    && c.contains("authentication_error")
            },
            LOG_WAIT,
        )
        .await;

    let out =
        run_recipe(r#"grep "WebSocket connected" "$FILE" | jq -r '.establishment_time_ms' | sort -n"#, &file);
    assert!(!numbers(&out).is_empty(), "establishment_time_ms: {out:?}");

    let out = run_recipe(r#"grep "Message delivered" "$FILE" | jq -r '.delivery_time_ms' | sort -n"#, &file);
    assert!(numbers(&out).len() >= 2, "delivery_time_ms: {out:?}");

    let out = run_recipe(r#"grep "connected" "$FILE" | jq -r '.connection_type' | sort | uniq -c"#, &file);
    for transport in ["websocket", "sse"] {
        assert!(
            out.lines().any(|l| l.split_whitespace().nth(1) == Some(transport)),
            "connection_type counts lack {transport}: {out:?}"
        );
    }

    let out = run_recipe(
        r#"grep "is_dual_connection" "$FILE" | jq -r '.is_dual_connection' | sort | uniq -c"#,
        &file,
    );
    assert!(
        out.lines().any(|l| l.split_whitespace().nth(1) == Some("true")),
        "the second connection of a session is dual: {out:?}"
    );

    let out = run_recipe(r#"grep "ERROR" "$FILE" | jq -r '.error_type' | sort | uniq -c"#, &file);
    assert!(
        out.lines().any(|l| l.split_whitespace().nth(1) == Some("authentication_error")),
        "error types lack authentication_error: {out:?}"
    );

    let out =
        run_recipe(r#"grep "WebSocket connected" "$FILE" | jq -r '.player_id' | sort | uniq -c"#, &file);
    assert!(out.lines().any(|l| l.split_whitespace().nth(1) == Some("alice")), "{out:?}");

    let out = run_recipe(
        r#"grep "establishment_time_ms" "$FILE" | jq 'select(.establishment_time_ms > 1000)'"#,
        &file,
    );
    assert!(out.trim().is_empty(), "no slow connect on loopback: {out:?}");

    // Every line of the file is one JSON object.
    let content = std::fs::read_to_string(&file).expect("log file");
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(v.is_object() && v.get("message").is_some(), "{line}");
    }
    ws.close().await;
}
