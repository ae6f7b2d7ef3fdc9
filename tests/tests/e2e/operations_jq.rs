//! Every `jq` recipe of `docs/operations.md`, taken from the document as
//! written, run with the real `jq` on the log file a real `tandem` wrote
//! during known traffic, and checked against that traffic. A recipe added
//! to the document without a check here, or removed from it, fails the
//! test; so does a missing `jq`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{ClientError, SseClient, WsClient};
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::{Signal, TestServer, WAIT};

const EXIT_WAIT: Duration = Duration::from_secs(20);

/// `(name, command)` for every `<!-- recipe: name -->` followed by a
/// fenced `sh` block.
fn recipes(doc: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = line.trim().strip_prefix("<!-- recipe:").and_then(|r| r.strip_suffix("-->")) else {
            continue;
        };
        assert_eq!(lines.get(i + 1).map(|l| l.trim()), Some("```sh"), "recipe {name}: a ```sh block follows");
        let body: Vec<&str> = lines[i + 2..].iter().take_while(|l| l.trim() != "```").copied().collect();
        assert!(!body.is_empty(), "recipe {name} is empty");
        out.push((name.trim().to_owned(), body.join("\n")));
    }
    out
}

/// Runs `script` with `sh -c` and `FILE` plus `env`; stdout.
fn run(name: &str, script: &str, file: &Path, env: &[(&str, &str)]) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("FILE", file)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    assert!(
        output.status.success(),
        "recipe {name} failed ({}): {}\n{script}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `uniq -c` output as `{"rest of line": count}`.
fn counts(output: &str) -> BTreeMap<String, u64> {
    output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (n, rest) = l.split_once(' ')?;
            Some((rest.trim().to_owned(), n.parse().ok()?))
        })
        .collect()
}

fn json_lines(name: &str, output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("recipe {name}: not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn operations_recipes_answer_from_a_real_log() {
    let jq = Command::new("jq").arg("--version").output();
    assert!(
        jq.as_ref().is_ok_and(|o| o.status.success()),
        "the recipes need `jq` (apt-get install jq; scripts/test.sh does): {jq:?}"
    );
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"))
        .expect("docs/operations.md");
    let recipes = recipes(&doc);

    let server = TestServer::builder()
        .set("logging", "level", "\"debug\"")
        .set("auth", "secret", &toml_string(TEST_SECRET))
        .set("server", "allowed_origins", "[\"http://good.example\"]")
        .set("monitoring", "memory_warning_percent", "99.0")
        .set("monitoring", "memory_critical_percent", "100.0")
        .start()
        .await;

    // alice: WebSocket and SSE on one session (dual), kept until shutdown.
    let alice = tokens::valid(TEST_SECRET, "alice");
    let mut alice_ws = WsClient::connect(&server.anonymous().token(alice.clone())).await.expect("alice WS");
    let mut alice_sse =
        SseClient::connect(&server.anonymous().token(alice).session(&alice_ws.welcome.session_id))
            .await
            .expect("alice SSE");
    // bob: a WebSocket he closes himself.
    let bob = WsClient::connect(&server.anonymous().token(tokens::valid(TEST_SECRET, "bob")))
        .await
        .expect("bob WS");
    bob.close().await;
    // One direct message to alice, on both connections.
    let (status, body) =
        server.api_post("/api/players/alice/messages", json!({"event": "hello", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    alice_ws.next_frame(WAIT).await.expect("WebSocket delivery");
    alice_sse.next_frame(WAIT).await.expect("SSE delivery");
    // A forged token (client surface), a wrong API key (api surface), a
    // foreign origin (refused before authentication).
    let forged = WsClient::connect(&server.anonymous().token(tokens::forged("mallory"))).await;
    assert!(matches!(forged, Err(ClientError::Http { status: 401, .. })), "{forged:?}");
    let (status, _) = server
        .api_request(
            reqwest::Method::POST,
            "/api/players/alice/messages",
            Some("wrong-key"),
            Some(&json!({"event": "x", "data": {}})),
        )
        .await;
    assert_eq!(status, 401);
    let foreign = SseClient::connect(
        &server.anonymous().token(tokens::valid(TEST_SECRET, "eve")).origin("http://evil.example"),
    )
    .await;
    assert!(matches!(foreign, Err(ClientError::Http { status: 403, .. })), "{foreign:?}");

    let file = server.log_file();
    server
        .wait_log_file(
            |c| c.contains("\"WebSocket disconnected\"") && c.matches("\"Message delivered\"").count() >= 2,
            WAIT,
        )
        .await;
    // A clean stop closes alice's connections with 1012 `shutdown`.
    server.send_signal(Signal::Term);
    assert!(server.wait_exit(EXIT_WAIT).await.success(), "{}", server.output_dump());
    drop(alice_ws);
    drop(alice_sse);

    let mut checked = Vec::new();
    for (name, script) in &recipes {
        let out = run(name, script, &file, &[("PLAYER", "alice")]);
        match name.as_str() {
            "errors-by-type" => {
                let c = counts(&out);
                assert_eq!(c.get("authentication_error high"), Some(&2), "{out}");
                assert_eq!(c.get("connection_error low"), Some(&1), "{out}");
                let first = out.lines().next().unwrap_or_default();
                assert!(first.contains("authentication_error high"), "most frequent first: {out}");
            }
            "recent-errors" => {
                let lines = json_lines(name, &out);
                assert_eq!(lines.len(), 3, "{out}");
                assert!(
                    lines.iter().all(|l| l["error_type"].is_string() && l["severity"].is_string()),
                    "{out}"
                );
                assert!(
                    lines.iter().any(|l| l["message"] == "Authentication failed: invalid_token"),
                    "{out}"
                );
            }
            "auth-failures" => {
                let c = counts(&out);
                assert_eq!(c.get("client invalid_token"), Some(&1), "{out}");
                assert_eq!(c.get("api invalid_api_key"), Some(&1), "{out}");
            }
            "slow-establishments" => {
                assert_eq!(out.trim(), "", "no connect takes a second on loopback: {out}");
                let all = run(name, script, &file, &[("SLOW_MS", "-1")]);
                let lines = json_lines(name, &all);
                assert_eq!(lines.len(), 3, "every connect is slower than -1 ms: {all}");
                for l in &lines {
                    assert!(l["establishment_time_ms"].as_f64().is_some_and(|v| v > 0.0), "{l}");
                    assert!(l["player_id"] == "alice" || l["player_id"] == "bob", "{l}");
                }
            }
            "establishment-percentiles" => {
                let lines = json_lines(name, &out);
                let by: BTreeMap<&str, &Value> =
                    lines.iter().filter_map(|l| Some((l["connection_type"].as_str()?, l))).collect();
                assert_eq!(by.keys().copied().collect::<Vec<_>>(), ["sse", "websocket"], "{out}");
                assert_eq!(by["websocket"]["count"], 2, "{out}");
                assert_eq!(by["sse"]["count"], 1, "{out}");
                for l in by.values() {
                    let (p50, p95, max) = (l["p50_ms"].as_f64(), l["p95_ms"].as_f64(), l["max_ms"].as_f64());
                    let (Some(p50), Some(p95), Some(max)) = (p50, p95, max) else { panic!("{l}") };
                    assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{l}");
                }
            }
            "player-history" => {
                let lines = json_lines(name, &out);
                let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
                assert_eq!(
                    messages[..4],
                    [
                        "WebSocket connection attempt",
                        "WebSocket connected",
                        "SSE connection attempt",
                        "SSE connected"
                    ],
                    "{out}"
                );
                assert_eq!(lines[3]["is_dual_connection"], true, "{out}");
                let mut ends: Vec<&str> = messages[4..].to_vec();
                ends.sort_unstable();
                assert_eq!(ends, ["SSE disconnected", "WebSocket disconnected"], "{out}");
                assert!(lines[4..].iter().all(|l| l["reason"] == "shutdown"), "{out}");
                let session = &lines[1]["session_id"];
                assert!(lines[1..].iter().all(|l| &l["session_id"] == session), "one session: {out}");
            }
            "disconnect-reasons" => {
                let c = counts(&out);
                assert_eq!(c.get("websocket client_closed"), Some(&1), "{out}");
                assert_eq!(c.get("websocket shutdown"), Some(&1), "{out}");
                assert_eq!(c.get("sse shutdown"), Some(&1), "{out}");
            }
            "close-codes" => {
                assert_eq!(counts(&out).get("1012 shutdown"), Some(&2), "{out}");
            }
            "connections-per-minute" => {
                let c = counts(&out);
                let per_transport = |t: &str| -> u64 {
                    c.iter().filter(|(k, _)| k.ends_with(&format!(" {t}"))).map(|(_, n)| n).sum()
                };
                assert_eq!(per_transport("websocket"), 2, "{out}");
                assert_eq!(per_transport("sse"), 1, "{out}");
                assert!(c.keys().all(|k| k.len() > 17 && k.as_bytes()[10] == b'T'), "{out}");
            }
            "dual-players" => {
                assert_eq!(counts(&out), BTreeMap::from([("alice".to_owned(), 1)]), "{out}");
            }
            other => panic!("recipe {other} in docs/operations.md has no check here"),
        }
        checked.push(name.as_str());
    }
    checked.sort_unstable();
    assert_eq!(
        checked,
        [
            "auth-failures",
            "close-codes",
            "connections-per-minute",
            "disconnect-reasons",
            "dual-players",
            "errors-by-type",
            "establishment-percentiles",
            "player-history",
            "recent-errors",
            "slow-establishments",
        ],
        "the recipes of docs/operations.md"
    );
}
