//! Helpers shared by the monitoring and metrics end-to-end tests.
//!
//! - [`start`], [`server_with`]: a server whose health verdict does not depend on the
//!   test machine's memory use.
//! - [`Traffic`]: the reference traffic every monitoring test starts from.
//! - [`get`], [`wait_json`], [`scrape`]: reading the operator surface,
//!   polling with a deadline where the server records after it answers.
//! - [`samples`]: parsing the Prometheus text exposition.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{ClientError, WsClient};
use tandem_e2e::{Peer, TestServer, TestServerBuilder, Transport, assert_alive, assert_error};
use tokio::time::{Instant, sleep};

/// How long a test waits for monitoring figures to catch up.
pub const MON_WAIT: Duration = Duration::from_secs(15);

/// How often a poll looks again.
pub const POLL: Duration = Duration::from_millis(50);

/// Direct messages [`Traffic::generate`] sends to alice.
pub const DIRECT_MESSAGES: u64 = 5;

/// The channel alice subscribes to, so a channel name exists that must not
/// leak into metric labels.
pub const CHANNEL: &str = "room:tavern";

/// The harness builder with memory thresholds the test machine cannot
/// reach: the `memory` component judges the whole machine, and other
/// processes sharing it must not turn a test's `/health` into 503.
pub fn builder() -> TestServerBuilder {
    TestServer::builder().set("monitoring", "memory_warning_percent", "99.0").set(
        "monitoring",
        "memory_critical_percent",
        "100.0",
    )
}

/// Starts [`builder`] as it is.
pub async fn start() -> TestServer {
    builder().start().await
}

/// Starts [`builder`] with `extra` applied.
pub async fn server_with(extra: impl FnOnce(TestServerBuilder) -> TestServerBuilder) -> TestServer {
    extra(builder()).start().await
}

/// The reference traffic: alice holds a WebSocket and an SSE connection on
/// one session (a dual player), bob a WebSocket only; alice received
/// [`DIRECT_MESSAGES`] direct messages on both; one client was refused for
/// a bad token (401) and bob sent one malformed frame (error frame).
pub struct Traffic {
    pub alice_ws: Peer,
    pub alice_sse: Peer,
    pub bob_ws: Peer,
    pub alice_session: String,
    /// Direct messages sent to alice so far.
    pub sent: u64,
}

impl Traffic {
    pub async fn generate(server: &TestServer) -> Self {
        let alice_ws = Peer::connect(Transport::WebSocket, &server.dev("alice").channels(&[CHANNEL]))
            .await
            .expect("alice connects over WebSocket");
        let alice_session = alice_ws.session_id().to_owned();
        let alice_sse =
            Peer::connect(Transport::Sse, &server.dev("alice").session(&alice_session).channels(&[CHANNEL]))
                .await
                .expect("alice connects over SSE to the same session");
        assert_eq!(alice_sse.session_id(), alice_session, "one session, two transports");
        let mut bob_ws = Peer::connect(Transport::WebSocket, &server.dev("bob")).await.expect("bob connects");
        assert_alive(&mut bob_ws, 1).await;

        let mut traffic = Self { alice_ws, alice_sse, bob_ws, alice_session, sent: 0 };
        for _ in 0..DIRECT_MESSAGES {
            traffic.deliver_one(server).await;
        }

        let refused = WsClient::connect(&server.anonymous().token("not-a-valid-token")).await;
        assert!(
            matches!(refused, Err(ClientError::Http { status: 401, .. })),
            "a bad token is refused with 401: {refused:?}"
        );
        traffic.malformed_frame().await;
        traffic
    }

    /// Sends alice one more direct message and waits for it on both of her
    /// connections.
    pub async fn deliver_one(&mut self, server: &TestServer) {
        let n = self.sent;
        let (status, body) =
            server.api_post("/api/players/alice/messages", json!({"event": "n", "data": {"n": n}})).await;
        assert_eq!(status, 200, "direct message {n}: {body}");
        assert_eq!(body["websocket_delivered"], 1, "{body}");
        assert_eq!(body["sse_delivered"], 1, "{body}");
        for peer in [&mut self.alice_ws, &mut self.alice_sse] {
            let d = peer.expect_delivery().await;
            assert_eq!(d.data, json!({"n": n}), "{:?} delivery", peer.transport());
        }
        self.sent += 1;
    }

    /// Bob sends a frame that is not JSON and gets an error frame back.
    pub async fn malformed_frame(&mut self) {
        let reply = self.bob_ws.request_raw("this is not json").await;
        assert_error(Transport::WebSocket, &reply, "invalid_json", 400);
    }
}

/// `GET {path}` with `Authorization: Bearer {token}` when given; status and
/// JSON body.
pub async fn get(server: &TestServer, path: &str, token: Option<&str>) -> (u16, Value) {
    server.api_request(Method::GET, path, token, None).await
}

/// Polls `GET {path}` until `accept(status, body)` holds; returns that body.
///
/// # Panics
/// When it does not hold within [`MON_WAIT`]; the message shows the last
/// answer.
pub async fn wait_json(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    what: &str,
    accept: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + MON_WAIT;
    loop {
        let (status, body) = get(server, path, token).await;
        if accept(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: GET {path} still answers {status} {body}");
        sleep(POLL).await;
    }
}

/// Probes until `probe` yields `Some`, at most for [`MON_WAIT`].
///
/// # Panics
/// When the deadline passes first; the message names `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + MON_WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: did not happen within {MON_WAIT:?}");
        sleep(POLL).await;
    }
}

/// A number at `pointer` (e.g. `/message_delivery/total_messages_sent`).
///
/// # Panics
/// When there is no number there.
pub fn num(doc: &Value, pointer: &str) -> f64 {
    doc.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number at {pointer} in {doc}"))
}

/// Asserts that `doc` has every key in `keys` (JSON pointers).
///
/// # Panics
/// On the first one missing.
pub fn assert_keys(doc: &Value, keys: &[&str]) {
    for key in keys {
        assert!(doc.pointer(key).is_some(), "missing {key} in {doc}");
    }
}

/// `/metrics` with an optional bearer token: status, content type, body.
pub async fn scrape_with(server: &TestServer, token: Option<&str>) -> (u16, String, String) {
    let url = format!("{}/metrics", server.base_url());
    let mut request = server.http().get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_else(|e| panic!("{url} body: {e}"));
    (status, content_type, body)
}

/// The open `/metrics` body.
///
/// # Panics
/// When it does not answer 200.
pub async fn scrape(server: &TestServer) -> String {
    let (status, _, body) = scrape_with(server, None).await;
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// One sample line of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// The text between `{` and `}`, empty when there are no labels.
    pub label_set: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Splits `a="x",b="y,z"` into pairs, honouring quotes and escapes.
fn parse_labels(set: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = set;
    while let Some((key, after)) = rest.split_once("=\"") {
        let key = key.trim_start_matches(',').trim().to_owned();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        pairs.push((key, value));
        rest = &after[end..];
    }
    pairs
}

/// Every sample line of `text` (comments skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.trim().parse::<f64>().ok()?;
            let (name, label_set) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').unwrap_or(rest)),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_owned(),
                label_set: label_set.to_owned(),
                labels: parse_labels(label_set),
                value,
            })
        })
        .collect()
}

/// Sum of the samples named `name` whose labels include all of `labels`.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let text = "# HELP x help\n\
                    # TYPE x counter\n\
                    x{a=\"1\",b=\"p,q\\\"r\"} 2\n\
                    x{a=\"2\"} 3.5\n\
                    y 7\n";
        let all = samples(text);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].labels, vec![("a".into(), "1".into()), ("b".into(), "p,q\"r".into())]);
        assert_eq!(all[2].name, "y");
        assert_eq!(all[2].label_set, "");
        assert_eq!(sum(text, "x", &[]), 5.5);
        assert_eq!(sum(text, "x", &[("a", "2")]), 3.5);
        assert_eq!(sum(text, "z", &[]), 0.0);
    }
}
