//! Helpers shared by the monitoring and metrics end-to-end tests.
//!
//! - [`start`], [`server_with`]: a server whose health verdict does not depend on the
//!   test machine's memory use.
//! - [`Traffic`]: the reference traffic every monitoring test starts from.
//! - [`get`], [`wait_json`], [`scrape`]: reading the operator surface,
//!   polling with a deadline where the server records after it answers.
//! - [`samples`]: parsing the Prometheus text exposition.

use std::future::Future;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tandem_client::{ClientError, WsClient};
use tandem_e2e::wait::Deadline;
use tandem_e2e::{Peer, TestServer, TestServerBuilder, Transport, assert_alive, assert_error};

/// How long a test waits for monitoring figures to catch up.
pub const MON_WAIT: Duration = Duration::from_secs(15);

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
    let deadline = Deadline::new(what, MON_WAIT);
    loop {
        let (status, body) = get(server, path, token).await;
        if accept(status, &body) {
            return body;
        }
        deadline.tick(format!("GET {path} answers {status} {body}")).await;
    }
}

/// Probes until `probe` yields `Some`, at most for [`MON_WAIT`].
///
/// # Panics
/// When the deadline passes first; the message names `what`.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tandem_e2e::wait::eventually(what, MON_WAIT, probe).await
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
