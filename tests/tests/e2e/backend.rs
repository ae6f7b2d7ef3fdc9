//! The game backend against a real HTTP backend on loopback
//! (docs/backend.md): commands and their error codes, exactly once per id
//! across resends, resumes and transport switches, the caps, signatures,
//! the connect and subscribe hooks, lifecycle events and their retries,
//! the metrics, and the Rust client's `call`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{
    CallError, Client, ClientError, ClientMessage, ClientOptions, Mode, Reconnect, ServerFrame, Status,
};
use tandem_e2e::backend::{self, Behaviour, COMMAND, CONNECT, EVENTS, SUBSCRIBE, TestBackend};
use tandem_e2e::cut_proxy::CutProxy;
use tandem_e2e::metrics::{metric, scrape, sum, wait_metric_at_least};
use tandem_e2e::ports::free_port;
use tandem_e2e::server::toml_string;
use tandem_e2e::{Peer, TestServer, TestServerBuilder, Transport, WAIT};
use tokio::time::Instant;

use crate::common::players::wait_connection_count;

const SECRET: &str = "a-test-backend-secret-0123456789";

/// `backend.{key}` pointing at `path` of `backend`.
fn point(builder: TestServerBuilder, key: &str, backend: &TestBackend, path: &str) -> TestServerBuilder {
    builder.set("backend", key, &toml_string(&backend.url(path)))
}

/// A server whose commands go to `backend`.
fn with_commands(backend: &TestBackend) -> TestServerBuilder {
    point(TestServer::builder(), "command_url", backend, COMMAND)
}

/// Whether `frame` answers command `id`.
fn answers(frame: &ServerFrame, id: &str) -> bool {
    match frame {
        ServerFrame::Reply { id: got, .. } => got == id,
        ServerFrame::Error { id: Some(got), .. } => got == id,
        _ => false,
    }
}

/// `reply` or the error code of an answer.
pub(crate) fn outcome(frame: &ServerFrame) -> &str {
    match frame {
        ServerFrame::Reply { .. } => "reply",
        ServerFrame::Error { code, .. } => code,
        other => panic!("not an answer: {other:?}"),
    }
}

/// Reads `peer`'s frames until the answer to `id`.
async fn answer(peer: &mut Peer, id: &str) -> ServerFrame {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.next_frame(left).await {
            Ok(frame) if answers(&frame, id) => return frame,
            Ok(_) => {}
            Err(e) => panic!("{:?}: no answer to {id}: {e}", peer.transport()),
        }
    }
}

/// Sends command `id` (a WebSocket frame, or a POST answered `202`).
async fn send(peer: &mut Peer, id: &str, name: &str, data: Value) {
    let msg = ClientMessage::command(id, name, data);
    match peer.transport() {
        Transport::WebSocket => peer.ws().expect("a WebSocket").send(&msg).await.expect("sent"),
        Transport::Sse => {
            let accepted = peer.sse().expect("an SSE client").post(&msg).await.expect("202");
            assert_eq!(accepted, ServerFrame::Unknown(json!({"accepted": true, "id": id})));
        }
    }
}

/// Sends command `id` and waits for its answer.
pub(crate) async fn command(peer: &mut Peer, id: &str, name: &str, data: Value) -> ServerFrame {
    send(peer, id, name, data).await;
    answer(peer, id).await
}

async fn connect(transport: Transport, server: &TestServer, player: &str) -> Peer {
    Peer::connect(transport, &server.dev(player)).await.unwrap_or_else(|e| panic!("{player} connects: {e}"))
}

#[tokio::test]
async fn replies_are_relayed_with_the_command_id_over_both_transports() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    for transport in Transport::ALL {
        let player = format!("mover-{}", transport.as_str());
        let mut peer = connect(transport, &server, &player).await;
        let reply = command(&mut peer, "c1", "move", json!({"x": 1, "y": 2})).await;
        assert_eq!(
            reply,
            ServerFrame::Reply { id: "c1".into(), data: json!({"name": "move", "echo": {"x": 1, "y": 2}}) },
            "{transport:?}"
        );
        let asked = game
            .requests(COMMAND)
            .into_iter()
            .find(|r| r.json()["player_id"] == player.as_str())
            .expect("the backend was asked");
        assert_eq!(
            asked.json(),
            json!({"id": "c1", "name": "move", "data": {"x": 1, "y": 2}, "player_id": player,
                   "session_id": peer.session_id(), "transport": transport.as_str()})
        );
        assert_eq!(asked.method, "POST");
        assert_eq!(asked.header("content-type"), Some("application/json"));
        assert!(asked.header("user-agent").is_some_and(|ua| ua.starts_with("tandem/")), "{asked:?}");
        assert!(asked.header(backend::SIGNATURE_HEADER).is_none(), "no secret, no signature");
        // Data defaults to null.
        let reply = command(&mut peer, "c2", "look", Value::Null).await;
        assert_eq!(
            reply,
            ServerFrame::Reply { id: "c2".into(), data: json!({"name": "look", "echo": null}) }
        );
    }
}

#[tokio::test]
async fn backend_failures_become_error_codes() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).set("backend", "timeout_ms", "300").start().await;
    let mut peer = connect(Transport::WebSocket, &server, "unlucky").await;
    let refused = command(&mut peer, "r1", "refuse", json!({})).await;
    assert_eq!(
        refused,
        ServerFrame::Error {
            code: "illegal_move".into(),
            message: "not your turn".into(),
            id: Some(json!("r1"))
        }
    );
    for (id, name) in [
        ("e1", "fail"),
        ("e2", "redirect"),
        ("e3", "garbage"),
        ("e4", "huge"),
        ("e5", "bad_code"),
        ("e6", "array"),
        ("e7", "refuse_array"),
    ] {
        let got = command(&mut peer, id, name, json!({})).await;
        assert_eq!(outcome(&got), "backend_error", "{name}: {got:?}");
    }
    let started = Instant::now();
    let slow = command(&mut peer, "t1", "slow", json!({"ms": 3000})).await;
    let took = started.elapsed();
    assert_eq!(outcome(&slow), "backend_timeout", "{slow:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "answered after {took:?}, timeout_ms is 300"
    );

    // Over SSE too: the error arrives on the stream.
    let mut sse = connect(Transport::Sse, &server, "unlucky-sse").await;
    let got = command(&mut sse, "e1", "fail", json!({})).await;
    assert_eq!(outcome(&got), "backend_error", "{got:?}");
    let got = command(&mut sse, "r1", "refuse", json!({})).await;
    assert_eq!(outcome(&got), "illegal_move", "{got:?}");
}

#[tokio::test]
async fn an_unreachable_backend_is_unavailable_and_none_at_all_is_no_backend() {
    let closed = free_port();
    let server = TestServer::builder()
        .set("backend", "command_url", &toml_string(&format!("http://127.0.0.1:{closed}/command")))
        .start()
        .await;
    let mut peer = connect(Transport::WebSocket, &server, "alone").await;
    let got = command(&mut peer, "u1", "move", json!({})).await;
    assert_eq!(outcome(&got), "backend_unavailable", "{got:?}");

    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let mut peer = connect(transport, &server, "nobody").await;
        let got = command(&mut peer, "n1", "move", json!({})).await;
        assert_eq!(outcome(&got), "no_backend", "{transport:?}: {got:?}");
    }
}

#[tokio::test]
async fn a_backend_that_never_answers_holds_no_other_player() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).set("backend", "timeout_ms", "5000").start().await;
    let mut stuck = connect(Transport::WebSocket, &server, "stuck").await;
    let mut free = connect(Transport::WebSocket, &server, "free").await;
    let mut free_sse = connect(Transport::Sse, &server, "free-sse").await;
    let started = Instant::now();
    send(&mut stuck, "h1", "hang", json!({})).await;
    game.wait_count(COMMAND, 1, WAIT).await;

    // While it hangs: other players' commands and pings, and the stuck
    // player's own ping, are answered at once.
    let got = command(&mut free, "f1", "move", json!({})).await;
    assert_eq!(outcome(&got), "reply");
    let got = command(&mut free_sse, "f1", "move", json!({})).await;
    assert_eq!(outcome(&got), "reply");
    tandem_e2e::assert_alive(&mut free, 1).await;
    stuck.ws().expect("ws").send(&ClientMessage::ping(7)).await.expect("sent");
    match stuck.next_frame(WAIT).await {
        Ok(ServerFrame::Pong { id, .. }) => assert_eq!(id, json!(7)),
        other => panic!("the stuck player's ping: {other:?}"),
    }
    let meanwhile = started.elapsed();
    assert!(meanwhile < Duration::from_secs(4), "all of it while the hang lasts: {meanwhile:?}");

    let got = answer(&mut stuck, "h1").await;
    assert_eq!(outcome(&got), "backend_timeout", "{got:?}");
    assert!(started.elapsed() >= Duration::from_millis(4900), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_command_id_runs_once_across_resends_resumes_and_transport_switches() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    let mut first = connect(Transport::WebSocket, &server, "once").await;
    let session = first.session_id().to_owned();
    let data = json!({"x": 3});
    let reply = command(&mut first, "c1", "move", data.clone()).await;
    assert_eq!(outcome(&reply), "reply");

    // Resent on the same connection.
    assert_eq!(command(&mut first, "c1", "move", data.clone()).await, reply);
    assert_eq!(game.calls("c1"), 1);
    first.close().await;

    // After a resume on a new WebSocket.
    let mut again =
        Peer::connect(Transport::WebSocket, &server.dev("once").session(&session)).await.expect("resume");
    assert_eq!(again.session_id(), session);
    assert_eq!(command(&mut again, "c1", "move", data.clone()).await, reply);
    assert_eq!(game.calls("c1"), 1);

    // After a switch to SSE (POSTed, answered on the stream).
    let mut sse =
        Peer::connect(Transport::Sse, &server.dev("once").session(&session)).await.expect("switch to SSE");
    assert_eq!(sse.session_id(), session);
    assert_eq!(command(&mut sse, "c1", "move", data.clone()).await, reply);
    assert_eq!(game.calls("c1"), 1);

    // The same id for another command is a conflict, on either transport;
    // the backend is not asked.
    for peer in [&mut again, &mut sse] {
        let got = command(peer, "c1", "move", json!({"x": 4})).await;
        assert_eq!(outcome(&got), "conflict", "{got:?}");
        let got = command(peer, "c1", "jump", data.clone()).await;
        assert_eq!(outcome(&got), "conflict", "{got:?}");
    }
    assert_eq!(game.calls("c1"), 1);
    // A failure that may have reached the game is cached too.
    let failed = command(&mut again, "f1", "fail", json!({})).await;
    assert_eq!(command(&mut sse, "f1", "fail", json!({})).await, failed);
    assert_eq!(game.calls("f1"), 1);
    let body = scrape(&server).await;
    assert!(sum(&body, "tandem_commands_total", &[("outcome", "cached")]) >= 4.0, "{body}");
    assert_eq!(sum(&body, "tandem_commands_total", &[("outcome", "conflict")]), 4.0);
}

#[tokio::test]
async fn a_resend_while_in_flight_waits_for_the_first_answer() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    let mut ws = connect(Transport::WebSocket, &server, "eager").await;
    let session = ws.session_id().to_owned();
    let mut sse =
        Peer::connect(Transport::Sse, &server.dev("eager").session(&session)).await.expect("SSE too");
    send(&mut ws, "s1", "slow", json!({"ms": 700})).await;
    game.wait_count(COMMAND, 1, WAIT).await;
    // Resent on the same WebSocket and POSTed over SSE while the first waits.
    send(&mut ws, "s1", "slow", json!({"ms": 700})).await;
    send(&mut sse, "s1", "slow", json!({"ms": 700})).await;
    let expected = ServerFrame::Reply { id: "s1".into(), data: json!({"slow": true, "echo": {"ms": 700}}) };
    assert_eq!(answer(&mut ws, "s1").await, expected, "the first");
    assert_eq!(answer(&mut ws, "s1").await, expected, "the resend");
    assert_eq!(answer(&mut sse, "s1").await, expected, "the SSE resend");
    assert_eq!(game.calls("s1"), 1, "run once");
}

#[tokio::test]
async fn caps_answer_rate_limited() {
    let game = TestBackend::start().await;
    let server = with_commands(&game)
        .set("backend", "timeout_ms", "1500")
        .set("backend", "max_in_flight_per_player", "2")
        .set("backend", "commands_per_second", "1")
        .set("backend", "commands_burst", "3")
        .start()
        .await;
    // In flight: two hanging, the third is refused at once.
    let mut hog = connect(Transport::WebSocket, &server, "hog").await;
    send(&mut hog, "h1", "hang", json!({})).await;
    send(&mut hog, "h2", "hang", json!({})).await;
    game.wait_count(COMMAND, 2, WAIT).await;
    let started = Instant::now();
    let got = command(&mut hog, "h3", "move", json!({})).await;
    assert_eq!(outcome(&got), "rate_limited", "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once");
    assert_eq!(game.calls("h3"), 0, "never reached the game");
    for id in ["h1", "h2"] {
        assert_eq!(outcome(&answer(&mut hog, id).await), "backend_timeout");
    }
    // Not cached: the same id succeeds once a slot and a token are free.
    let deadline = tandem_e2e::wait::Deadline::new("h3 accepted on a resend", WAIT);
    loop {
        let got = command(&mut hog, "h3", "move", json!({})).await;
        if outcome(&got) == "reply" {
            break;
        }
        deadline.tick(format!("{got:?}")).await;
    }
    assert_eq!(game.calls("h3"), 1);

    // Rate: a burst of three, then one per second.
    let mut spammer = connect(Transport::Sse, &server, "spammer").await;
    let mut outcomes = Vec::new();
    for n in 0..6 {
        let got = command(&mut spammer, &format!("s{n}"), "move", json!({})).await;
        outcomes.push(outcome(&got).to_owned());
    }
    assert_eq!(&outcomes[..3], ["reply", "reply", "reply"], "{outcomes:?}");
    assert!(outcomes[3..].iter().any(|o| o == "rate_limited"), "{outcomes:?}");
    assert!(metric(&server, "tandem_commands_total", &[("outcome", "rate_limited")]).await >= 2.0);
}

#[tokio::test]
async fn every_backend_request_is_signed() {
    let game = TestBackend::start().await;
    let server = point(
        point(point(with_commands(&game), "connect_url", &game, CONNECT), "subscribe_url", &game, SUBSCRIBE),
        "events_url",
        &game,
        EVENTS,
    )
    .set("backend", "secret", &toml_string(SECRET))
    .start()
    .await;
    let mut peer = Peer::connect(Transport::WebSocket, &server.dev("signed").channels(&["room:1"]))
        .await
        .expect("connect");
    assert_eq!(outcome(&command(&mut peer, "c1", "move", json!({"x": 1})).await), "reply");
    let sub = peer.request(&ClientMessage::subscribe("room:2")).await;
    assert!(matches!(sub, Ok(ServerFrame::Subscribed { .. })), "{sub:?}");
    game.wait_count(EVENTS, 1, WAIT).await;
    for path in [COMMAND, CONNECT, SUBSCRIBE, EVENTS] {
        let seen = game.requests(path);
        assert!(!seen.is_empty(), "{path} was asked");
        for request in seen {
            let header = request.header(backend::SIGNATURE_HEADER).expect("signed").to_owned();
            assert!(header.starts_with("sha256=") && header.len() == 7 + 64, "{header}");
            assert_eq!(header, backend::sign(SECRET.as_bytes(), &request.body), "{path}");
            assert!(request.signed_with(SECRET), "{path}");
            assert!(!request.signed_with("another-secret-0123456789"), "{path}");
            let mut tampered = request.body.to_vec();
            tampered[1] ^= 0x01;
            assert!(!backend::verify_signature(SECRET.as_bytes(), &tampered, &header), "{path}: tampered");
            // Tandem's own verifier agrees with the independent one.
            assert!(tandem_server::backend::signature::verify(SECRET.as_bytes(), &request.body, &header));
            assert!(!tandem_server::backend::signature::verify(SECRET.as_bytes(), &tampered, &header));
        }
    }
}

/// `POST /sessions/-/messages` `{"type":"ping"}` for `player`: status and body.
async fn probe(server: &TestServer, player: &str) -> (u16, Value) {
    let url = server.dev(player).messages_url("-").expect("a URL");
    let response = server
        .http()
        .post(url)
        .header("content-type", "application/json")
        .body(r#"{"type":"ping"}"#)
        .send()
        .await
        .expect("the probe");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_connect_hook_refusal_reaches_every_door() {
    let game = TestBackend::start().await;
    game.route(CONNECT, |r| {
        if r.json()["player_id"] == "banned" {
            Behaviour::Refuse {
                status: 403,
                code: "banned".into(),
                message: "go away".into(),
                retry: Some(false),
            }
        } else {
            Behaviour::ok()
        }
    });
    let server = point(TestServer::builder(), "connect_url", &game, CONNECT).start().await;
    for transport in Transport::ALL {
        let refused = Peer::connect(transport, &server.dev("banned")).await;
        match refused {
            Err(ClientError::Http { status: 403, code, message, retry }) => {
                assert_eq!((code.as_str(), message.as_str(), retry), ("banned", "go away", Some(false)));
            }
            other => panic!("{transport:?}: {other:?}"),
        }
    }
    let (status, body) = probe(&server, "banned").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "banned", "{body}");
    assert_eq!(body["error"]["retry"], false, "{body}");
    let (status, body) = probe(&server, "welcome").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "pong", "{body}");
    connect(Transport::WebSocket, &server, "welcome").await;
}

#[tokio::test]
async fn a_connect_hook_may_add_channels_and_is_asked_what_the_client_asks() {
    let game = TestBackend::start().await;
    game.always(CONNECT, Behaviour::Json(200, json!({"channels": ["room:42"]})));
    let server = point(TestServer::builder(), "connect_url", &game, CONNECT).start().await;
    for transport in Transport::ALL {
        let player = format!("granted-{}", transport.as_str());
        let mut peer =
            Peer::connect(transport, &server.dev(&player).channels(&["room:lobby"])).await.expect("connect");
        let asked = game
            .requests(CONNECT)
            .into_iter()
            .map(|r| r.json())
            .find(|b| b["player_id"] == player.as_str())
            .expect("the hook was asked");
        assert_eq!(
            asked,
            json!({"player_id": player, "session_id": null, "transport": transport.as_str(),
                   "channels": ["room:lobby"], "resume": false})
        );
        let (status, body) = server
            .api_post("/api/publish", json!({"channel": "room:42", "event": "news", "data": {"n": 1}}))
            .await;
        assert_eq!(status, 200, "{body}");
        let delivery = peer.expect_delivery().await;
        assert_eq!((delivery.channel.as_str(), delivery.event.as_str()), ("room:42", "news"));

        // A resume says so.
        let session = peer.session_id().to_owned();
        peer.close().await;
        let _again = Peer::connect(transport, &server.dev(&player).session(&session)).await.expect("resume");
        let asked = game.wait_for("the resume asked", WAIT, |all| {
            all.iter().map(|r| r.json()).find(|b| b["player_id"] == player.as_str() && b["resume"] == true)
        });
        let asked = asked.await;
        assert_eq!(asked["session_id"], session.as_str());
    }
}

#[tokio::test]
async fn hook_failure_follows_the_policy_and_answers_are_cached() {
    let closed = format!("http://127.0.0.1:{}/connect", free_port());
    let deny = TestServer::builder()
        .set("backend", "connect_url", &toml_string(&closed))
        .set("backend", "hook_timeout_ms", "300")
        .start()
        .await;
    for transport in Transport::ALL {
        match Peer::connect(transport, &deny.dev("denied")).await {
            Err(ClientError::Http { status: 503, code, retry, .. }) => {
                assert_eq!((code.as_str(), retry), ("backend_unavailable", Some(true)));
            }
            other => panic!("{transport:?}: {other:?}"),
        }
    }
    let (status, body) = probe(&deny, "denied").await;
    assert_eq!((status, &body["error"]["code"]), (503, &json!("backend_unavailable")), "{body}");

    // An answer out of contract (an array, not an object) is a failure too.
    let odd = TestBackend::start().await;
    odd.always(CONNECT, Behaviour::Json(200, json!([])));
    let out_of_contract = point(TestServer::builder(), "connect_url", &odd, CONNECT).start().await;
    match Peer::connect(Transport::WebSocket, &out_of_contract.dev("odd")).await {
        Err(ClientError::Http { status: 503, code, .. }) => assert_eq!(code, "backend_unavailable"),
        other => panic!("an array from the connect hook: {other:?}"),
    }

    let allow = TestServer::builder()
        .set("backend", "connect_url", &toml_string(&closed))
        .set("backend", "hook_failure", "\"allow\"")
        .start()
        .await;
    for transport in Transport::ALL {
        connect(transport, &allow, "allowed").await;
    }
    let body = scrape(&allow).await;
    assert!(sum(&body, "tandem_hook_decisions_total", &[("decision", "failed_allowed")]) >= 1.0, "{body}");

    // Two connects of one player within hook_cache_seconds: one hook call.
    let game = TestBackend::start().await;
    let server = point(TestServer::builder(), "connect_url", &game, CONNECT)
        .set("backend", "hook_cache_seconds", "30")
        .start()
        .await;
    for _ in 0..3 {
        connect(Transport::WebSocket, &server, "storm").await.close().await;
    }
    connect(Transport::WebSocket, &server, "calm").await;
    assert_eq!(game.count(CONNECT), 2, "one call per player");
    let body = scrape(&server).await;
    assert_eq!(sum(&body, "tandem_hook_decisions_total", &[("hook", "connect"), ("cached", "true")]), 2.0);
}

#[tokio::test]
async fn a_subscribe_hook_refusal_is_an_error_frame() {
    let game = TestBackend::start().await;
    game.route(SUBSCRIBE, |r| {
        if r.json()["channel"] == "room:secret" {
            Behaviour::refuse(403, "members_only")
        } else {
            Behaviour::ok()
        }
    });
    let server = point(TestServer::builder(), "subscribe_url", &game, SUBSCRIBE).start().await;
    let mut peer = connect(Transport::WebSocket, &server, "curious").await;
    let refused = peer.request(&ClientMessage::subscribe("room:secret")).await;
    match &refused {
        Ok(ServerFrame::Error { code, message, .. }) => {
            assert_eq!(code, "members_only", "the game's code: {message}");
        }
        other => panic!("{other:?}"),
    }
    let ok = peer.request(&ClientMessage::subscribe("room:open")).await;
    assert!(matches!(ok, Ok(ServerFrame::Subscribed { .. })), "{ok:?}");
    let asked = game.requests(SUBSCRIBE).iter().map(|r| r.json()).collect::<Vec<_>>();
    assert_eq!(
        asked[0],
        json!({"player_id": "curious", "session_id": peer.session_id(), "channel": "room:secret"})
    );
    // A connect asking for the channel is refused with the game's code.
    match Peer::connect(Transport::Sse, &server.dev("curious2").channels(&["room:secret"])).await {
        Err(ClientError::Http { status: 403, code, .. }) => assert_eq!(code, "members_only"),
        other => panic!("{other:?}"),
    }
}

/// The events of `session` delivered so far, by type.
fn kinds_of(game: &TestBackend, session: &str) -> Vec<String> {
    game.delivered_events()
        .iter()
        .filter(|e| e["session_id"] == session)
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Makes one more event (a new session) and waits until it is delivered:
/// with one sender, every event queued before it has been delivered too.
async fn flush(game: &TestBackend, server: &TestServer, player: &str) {
    let peer = connect(Transport::WebSocket, server, player).await;
    let session = peer.session_id().to_owned();
    game.wait_event(&format!("{player}'s session_started"), WAIT, |e| {
        e["session_id"] == session.as_str() && e["type"] == "session_started"
    })
    .await;
}

#[tokio::test]
async fn lifecycle_events_follow_the_session() {
    let game = TestBackend::start().await;
    let server = point(TestServer::builder(), "events_url", &game, EVENTS)
        .set("backend", "secret", &toml_string(SECRET))
        .set("backend", "events_concurrency", "1")
        .set("session", "resume_window_seconds", "2")
        // A dropped SSE stream is noticed at the next write: heartbeats
        // every second, and a timeout far beyond the test.
        .set("transport", "heartbeat_interval_seconds", "1")
        .set("transport", "heartbeat_timeout_seconds", "300")
        .start()
        .await;
    let ws = connect(Transport::WebSocket, &server, "alice").await;
    let session = ws.session_id().to_owned();
    let started = game.wait_event("session_started", WAIT, |e| e["session_id"] == session.as_str()).await;
    assert_eq!(started["type"], "session_started");
    assert_eq!(started["player_id"], "alice");
    assert!(started["id"].as_str().is_some_and(|id| id.starts_with("e_")), "{started}");
    assert!(started["ts"].as_u64().is_some_and(|ts| ts > 1_700_000_000_000), "{started}");
    assert!(started.get("reason").is_none(), "{started}");

    // A transport switch while the WebSocket lives is no event.
    let sse = Peer::connect(Transport::Sse, &server.dev("alice").session(&session)).await.expect("switch");
    sse.close().await;
    wait_connection_count(&server, "alice", 1, WAIT).await;
    flush(&game, &server, "barrier-1").await;
    assert_eq!(kinds_of(&game, &session), ["session_started"]);

    // A drop resumed in time: session_resumed, no player_left.
    ws.close().await;
    wait_connection_count(&server, "alice", 0, WAIT).await;
    let again =
        Peer::connect(Transport::WebSocket, &server.dev("alice").session(&session)).await.expect("resume");
    assert_eq!(again.session_id(), session);
    game.wait_event("session_resumed", WAIT, |e| {
        e["session_id"] == session.as_str() && e["type"] == "session_resumed"
    })
    .await;
    flush(&game, &server, "barrier-2").await;
    assert_eq!(kinds_of(&game, &session), ["session_started", "session_resumed"]);

    // Dropped for good: player_left (expired) once the window passed.
    again.close().await;
    let left = game
        .wait_event("player_left expired", WAIT, |e| {
            e["session_id"] == session.as_str() && e["type"] == "player_left"
        })
        .await;
    assert_eq!(left["reason"], "expired", "{left}");

    // end_session: session_ended, 4002 on every connection, player_left (ended).
    let mut bob = connect(Transport::WebSocket, &server, "bob").await;
    let bob_session = bob.session_id().to_owned();
    let mut bob_sse =
        Peer::connect(Transport::Sse, &server.dev("bob").session(&bob_session)).await.expect("bob on SSE");
    let ended = bob.request(&ClientMessage::EndSession).await;
    assert_eq!(ended.expect("answered"), ServerFrame::SessionEnded {});
    let (_, code) = tandem_e2e::frames_until_closed(&mut bob, 10).await;
    assert_eq!(code, Some(4002));
    let (_, code) = tandem_e2e::frames_until_closed(&mut bob_sse, 10).await;
    assert_eq!(code, Some(4002), "the SSE stream's close event");
    let left = game
        .wait_event("player_left ended", WAIT, |e| {
            e["session_id"] == bob_session.as_str() && e["type"] == "player_left"
        })
        .await;
    assert_eq!(left["reason"], "ended", "{left}");
    assert_eq!(left["player_id"], "bob");

    flush(&game, &server, "barrier-3").await;
    assert_eq!(kinds_of(&game, &session), ["session_started", "session_resumed", "player_left"]);
    assert_eq!(kinds_of(&game, &bob_session), ["session_started", "player_left"]);
    for request in game.requests(EVENTS) {
        assert!(request.signed_with(SECRET), "{request:?}");
    }
    let ids: Vec<Value> = game.events().iter().map(|e| e["id"].clone()).collect();
    let unique: BTreeSet<String> = ids.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    assert_eq!(unique.len(), ids.len(), "each event sent once to a healthy endpoint: {ids:?}");
}

#[tokio::test]
async fn events_are_retried_until_the_endpoint_recovers() {
    let game = TestBackend::start().await;
    let outage_until = Instant::now() + Duration::from_millis(1500);
    game.route(
        EVENTS,
        move |_| if Instant::now() < outage_until { Behaviour::Status(503) } else { Behaviour::ok() },
    );
    let server = point(TestServer::builder(), "events_url", &game, EVENTS)
        .set("backend", "events_retry_max_ms", "200")
        .start()
        .await;
    let mut sessions = Vec::new();
    for n in 0..4 {
        let mut peer = connect(Transport::WebSocket, &server, &format!("p{n}")).await;
        sessions.push(peer.session_id().to_owned());
        if n == 0 {
            let ended = peer.request(&ClientMessage::EndSession).await;
            assert_eq!(ended.expect("answered"), ServerFrame::SessionEnded {});
        }
    }
    // Every event comes through once the endpoint is back.
    let delivered = game
        .wait_for("all five events delivered", Duration::from_secs(20), |all| {
            let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
            for r in all.iter().filter(|r| r.path == EVENTS && r.status == Some(200)) {
                let e = r.json();
                let key = (
                    e["session_id"].as_str().unwrap_or("").to_owned(),
                    e["type"].as_str().unwrap_or("").to_owned(),
                );
                *got.entry(key).or_default() += 1;
            }
            (got.len() == 5).then_some(got)
        })
        .await;
    for session in &sessions {
        assert!(delivered.contains_key(&(session.clone(), "session_started".into())), "{delivered:?}");
    }
    assert!(delivered.contains_key(&(sessions[0].clone(), "player_left".into())), "{delivered:?}");
    let failed = game.requests(EVENTS).iter().filter(|r| r.status == Some(503)).count();
    assert!(failed >= 1, "the outage was seen");
    // Every event id tried is delivered, each at least once.
    let tried: BTreeSet<String> =
        game.events().iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    let acked: BTreeSet<String> =
        game.delivered_events().iter().filter_map(|e| e["id"].as_str().map(str::to_owned)).collect();
    assert_eq!(tried, acked);
    assert_eq!(acked.len(), 5);
    assert!(metric(&server, "tandem_lifecycle_event_retries_total", &[]).await >= 1.0);
    wait_metric_at_least(&server, "tandem_lifecycle_events_total", &[("outcome", "delivered")], 5.0, WAIT)
        .await;
}

#[tokio::test]
async fn commands_and_events_show_in_metrics_and_performance() {
    let game = TestBackend::start().await;
    let server =
        point(point(with_commands(&game), "events_url", &game, EVENTS), "connect_url", &game, CONNECT)
            .start()
            .await;
    let mut peer = connect(Transport::WebSocket, &server, "counted").await;
    assert_eq!(outcome(&command(&mut peer, "c1", "move", json!({})).await), "reply");
    assert_eq!(outcome(&command(&mut peer, "c1", "move", json!({})).await), "reply");
    assert_eq!(outcome(&command(&mut peer, "c2", "fail", json!({})).await), "backend_error");
    assert_eq!(outcome(&command(&mut peer, "c3", "refuse", json!({})).await), "illegal_move");
    let body = scrape(&server).await;
    for (labels, min) in [
        (vec![("outcome", "reply")], 1.0),
        (vec![("outcome", "cached")], 1.0),
        (vec![("outcome", "backend_error")], 1.0),
        (vec![("outcome", "refused")], 1.0),
    ] {
        assert!(sum(&body, "tandem_commands_total", &labels) >= min, "{labels:?}: {body}");
    }
    assert_eq!(sum(&body, "tandem_backend_requests_total", &[("endpoint", "command")]), 3.0, "{body}");
    assert!(
        sum(&body, "tandem_backend_requests_total", &[("endpoint", "command"), ("outcome", "ok")]) >= 1.0
    );
    assert!(
        sum(&body, "tandem_backend_requests_total", &[("endpoint", "connect"), ("outcome", "ok")]) >= 1.0
    );
    assert!(
        sum(&body, "tandem_backend_request_seconds_bucket", &[("endpoint", "command"), ("le", "+Inf")])
            >= 3.0,
        "{body}"
    );
    assert!(
        sum(&body, "tandem_hook_decisions_total", &[("hook", "connect"), ("decision", "allowed")]) >= 1.0
    );
    wait_metric_at_least(
        &server,
        "tandem_lifecycle_events_total",
        &[("type", "session_started"), ("outcome", "delivered")],
        1.0,
        WAIT,
    )
    .await;
    let (status, perf) =
        server.api_request(reqwest::Method::GET, "/monitoring/performance", None, None).await;
    assert_eq!(status, 200, "{perf}");
    let b = &perf["backend"];
    assert!(b["commands_total"].as_u64().is_some_and(|n| n >= 4), "{perf}");
    assert!(b["errors"]["backend_error"].as_u64().is_some_and(|n| n >= 1), "{perf}");
    assert!(b["p50_backend_ms"].is_number(), "{perf}");
}

fn quick() -> Reconnect {
    Reconnect {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_attempts: None,
    }
}

#[tokio::test]
async fn the_client_sdk_calls_the_backend_once_across_a_cut_link() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    let proxy = CutProxy::start(server.addr()).await;
    let client = Client::new(
        ClientOptions::new(proxy.base_url())
            .player_id("sdk")
            .mode(Mode::WebSocket)
            .reconnect(quick())
            .call_timeout(WAIT),
    )
    .expect("options");
    client.connect();
    assert!(client.wait_status(WAIT, Status::is_connected).await.is_some(), "connected");

    let got = client.call("move", json!({"x": 1})).await.expect("answered");
    assert_eq!(got, json!({"name": "move", "echo": {"x": 1}}));
    let refused = client.call("refuse", json!({})).await.expect_err("refused");
    assert_eq!(refused, CallError::Server { code: "illegal_move".into(), message: "not your turn".into() });
    let failed = client.call("fail", json!({})).await.expect_err("a 500");
    assert_eq!(failed.code(), Some("backend_error"));

    // Cut mid-flight: the call is resent with its id on the next link and
    // the game runs it once.
    let (result, ()) = tokio::join!(client.call("slow", json!({"ms": 600})), async {
        game.wait_for("the slow call reached the game", WAIT, |all| {
            all.iter().any(|r| r.path == COMMAND && r.json()["name"] == "slow").then_some(())
        })
        .await;
        assert!(proxy.cut_all() >= 1, "a live link to cut");
    });
    assert_eq!(result.expect("answered after the cut"), json!({"slow": true, "echo": {"ms": 600}}));
    let slow: Vec<Value> =
        game.requests(COMMAND).iter().map(|r| r.json()).filter(|b| b["name"] == "slow").collect();
    assert_eq!(slow.len(), 1, "run once: {slow:?}");
    assert!(proxy.accepted() >= 2, "it went over a second link");

    // end_session stops the client.
    client.end_session().await.expect("ended");
    let status = client.wait_status(WAIT, |s| matches!(s, Status::Disconnected { .. })).await;
    assert!(matches!(status, Some(Status::Disconnected { code: Some(4002), .. })), "{status:?}");
    let after = client.call("move", json!({})).await;
    assert!(after.is_err(), "no call after the end: {after:?}");
}

#[tokio::test]
async fn commands_that_break_the_frame_rules_are_invalid_messages() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    let mut peer = connect(Transport::WebSocket, &server, "sloppy").await;
    let long_id = "x".repeat(65);
    let cases = [
        (r#"{"type":"command","name":"move","data":{}}"#.to_owned(), None),
        (r#"{"type":"command","id":"b1","name":"","data":{}}"#.to_owned(), Some("b1")),
        (r#"{"type":"command","id":"b2","name":"bad\u0001name","data":{}}"#.to_owned(), Some("b2")),
        (format!(r#"{{"type":"command","id":"b3","name":"{long_id}"}}"#), Some("b3")),
        (r#"{"type":"command","id":"b4","name":7}"#.to_owned(), Some("b4")),
        (format!(r#"{{"type":"command","id":"{long_id}","name":"move"}}"#), None),
    ];
    for (raw, id) in cases {
        match peer.request_raw(&raw).await {
            Ok(ServerFrame::Error { code, id: got, .. }) => {
                assert_eq!(code, "invalid_message", "{raw}");
                if let Some(id) = id {
                    assert_eq!(got, Some(json!(id)), "{raw}");
                }
            }
            other => panic!("{raw}: {other:?}"),
        }
    }
    assert_eq!(game.count(COMMAND), 0, "the game is never asked");
}

#[tokio::test]
async fn an_answer_for_a_dropped_connection_waits_in_the_cache() {
    let game = TestBackend::start().await;
    let server = with_commands(&game).start().await;
    let mut first = connect(Transport::WebSocket, &server, "flaky").await;
    let session = first.session_id().to_owned();
    send(&mut first, "w1", "slow", json!({"ms": 300})).await;
    game.wait_count(COMMAND, 1, WAIT).await;
    first.close().await;
    // The answer comes while nobody listens; the resend after a resume
    // gets it without a second call.
    let expected = ServerFrame::Reply { id: "w1".into(), data: json!({"slow": true, "echo": {"ms": 300}}) };
    let mut again =
        Peer::connect(Transport::Sse, &server.dev("flaky").session(&session)).await.expect("resume over SSE");
    assert_eq!(again.session_id(), session);
    assert_eq!(command(&mut again, "w1", "slow", json!({"ms": 300})).await, expected);
    assert_eq!(game.calls("w1"), 1);
}

#[tokio::test]
async fn events_refused_for_good_are_not_retried() {
    let game = TestBackend::start().await;
    game.always(EVENTS, Behaviour::refuse(400, "unknown_event"));
    let server = point(TestServer::builder(), "events_url", &game, EVENTS)
        .set("backend", "events_retry_max_ms", "100")
        .start()
        .await;
    // Over SSE, end_session is the POST's answer and the stream's close.
    let mut peer = connect(Transport::Sse, &server, "refused").await;
    let ended = peer.sse().expect("SSE").post(&ClientMessage::EndSession).await;
    assert_eq!(ended.expect("answered"), ServerFrame::SessionEnded {});
    let (_, code) = tandem_e2e::frames_until_closed(&mut peer, 10).await;
    assert_eq!(code, Some(4002));
    wait_metric_at_least(&server, "tandem_lifecycle_events_total", &[("outcome", "rejected")], 2.0, WAIT)
        .await;
    let body = scrape(&server).await;
    assert_eq!(sum(&body, "tandem_lifecycle_event_retries_total", &[]), 0.0, "{body}");
    assert_eq!(sum(&body, "tandem_lifecycle_events_total", &[("outcome", "delivered")]), 0.0, "{body}");
    let kinds: Vec<Value> = game.events().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(kinds, [json!("session_started"), json!("player_left")], "each tried once");
}
