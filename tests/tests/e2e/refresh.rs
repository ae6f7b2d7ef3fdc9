//! Token refresh on a live connection: `token_expiring` ahead of `exp`, a
//! `refresh` that carries the connection past it (WebSocket and the SSE
//! uplink), the close 4003 after the grace without one, a refresh for
//! another player refused, and narrowed claims ending a subscription.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tandem_client::{ClientError, ClientMessage, ServerFrame};
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{self, TEST_SECRET};
use tandem_e2e::{Peer, TestServer, Transport, WAIT, assert_alive, assert_error, frames_until_closed};

/// `auth.expiry_warning_seconds` and `auth.expiry_grace_seconds` here.
const WARNING_S: u64 = 2;
const GRACE_S: u64 = 1;

async fn server() -> TestServer {
    TestServer::builder()
        .set("auth", "secret", &toml_string(TEST_SECRET))
        .set("auth", "expiry_warning_seconds", &WARNING_S.to_string())
        .set("auth", "expiry_grace_seconds", &GRACE_S.to_string())
        .start()
        .await
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A token for `player` expiring `ttl_s` seconds from now, with `extra` claims.
fn token(player: &str, ttl_s: u64, extra: &Value) -> (String, u64) {
    let exp = now_s() + ttl_s;
    let mut claims = json!({"sub": player, "iat": now_s(), "exp": exp});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    (tokens::sign(TEST_SECRET, &claims), exp)
}

async fn connect(server: &TestServer, transport: Transport, token: &str) -> Peer {
    Peer::connect(transport, &server.anonymous().token(token)).await.expect("connects")
}

/// Reads frames until one of `kind` arrives (at most `max` frames, each
/// within [`WAIT`]).
async fn frame_of(peer: &mut Peer, kind: &str, max: usize) -> ServerFrame {
    for _ in 0..max {
        match peer.next_frame(WAIT).await {
            Ok(f) if f.kind() == kind => return f,
            Ok(_) => {}
            Err(e) => panic!("{:?}: waiting for {kind}: {e}", peer.transport()),
        }
    }
    panic!("{:?}: no {kind} among {max} frames", peer.transport());
}

/// Sends a refresh: over WebSocket the frame (the answer is read by the
/// caller, as other frames may come first), over SSE the POST's answer.
async fn send_refresh(peer: &mut Peer, token: &str) -> Option<Result<ServerFrame, ClientError>> {
    let message = ClientMessage::refresh(token);
    match peer.ws() {
        Some(ws) => {
            ws.send(&message).await.expect("sent");
            None
        }
        None => Some(peer.request(&message).await),
    }
}

/// Frames read (with no close) until `until_ms` (epoch) has passed.
async fn stays_open_until(peer: &mut Peer, until_ms: u64) -> Vec<ServerFrame> {
    let mut seen = Vec::new();
    // Bounded: each round waits at most 200 ms, and the deadline is seconds away.
    for _ in 0..1_000 {
        if now_ms() > until_ms {
            return seen;
        }
        match peer.next_frame(Duration::from_millis(200)).await {
            Ok(frame) => seen.push(frame),
            Err(ClientError::Timeout) => {}
            Err(e) => panic!("{:?}: closed before {until_ms}: {e} after {seen:?}", peer.transport()),
        }
    }
    panic!("{until_ms} never came");
}

#[tokio::test]
async fn a_refresh_carries_a_websocket_past_its_first_tokens_exp() {
    let server = server().await;
    let (first, exp) = token("alice", WARNING_S + 1, &json!({}));
    let mut peer = connect(&server, Transport::WebSocket, &first).await;
    let warned = frame_of(&mut peer, "token_expiring", 10).await;
    assert_eq!(warned, ServerFrame::TokenExpiring { expires_at: exp * 1000 });
    assert!(now_ms() + 100 < exp * 1000 + GRACE_S * 1000, "warned ahead of the close");

    let (second, second_exp) = token("alice", 3600, &json!({}));
    assert!(send_refresh(&mut peer, &second).await.is_none());
    let refreshed = frame_of(&mut peer, "refreshed", 10).await;
    assert_eq!(refreshed, ServerFrame::Refreshed { expires_at: second_exp * 1000 });

    // Past the first token's exp and grace (and the 5 s leeway of a
    // connect): still open, same session.
    let seen = stays_open_until(&mut peer, (exp + GRACE_S + 1) * 1000).await;
    assert!(seen.iter().all(|f| f.kind() != "token_expiring"), "{seen:?}");
    assert_alive(&mut peer, 1).await;
}

#[tokio::test]
async fn without_a_refresh_the_connection_closes_with_4003_after_the_grace() {
    let server = server().await;
    for transport in Transport::ALL {
        let (t, exp) = token("bob", WARNING_S + 1, &json!({}));
        let mut peer = connect(&server, transport, &t).await;
        let (frames, code) = frames_until_closed(&mut peer, 10).await;
        let closed_at = now_ms();
        assert_eq!(code, Some(4003), "{transport:?}: {frames:?}");
        assert!(
            frames.iter().any(|f| *f == ServerFrame::TokenExpiring { expires_at: exp * 1000 }),
            "{transport:?}: warned first: {frames:?}"
        );
        assert!(closed_at + 50 >= (exp + GRACE_S) * 1000, "{transport:?}: not before the grace ran out");
        assert!(closed_at <= (exp + GRACE_S + 3) * 1000, "{transport:?}: closed soon after it");
    }
}

#[tokio::test]
async fn a_refresh_for_another_player_is_refused_and_the_connection_keeps_its_identity() {
    let server = server().await;
    for transport in Transport::ALL {
        let (t, _) = token("carol", 3600, &json!({}));
        let mut peer = connect(&server, transport, &t).await;
        let (other, _) = token("mallory", 3600, &json!({}));
        let reply = match send_refresh(&mut peer, &other).await {
            Some(reply) => reply,
            None => Ok(frame_of(&mut peer, "error", 10).await),
        };
        assert_error(transport, &reply, "subject_changed", 403);
        // Still carol's: a message to carol arrives, and the connection lives.
        let (status, _) =
            server.api_post("/api/players/carol/messages", json!({"event": "hi", "data": 1})).await;
        assert_eq!(status, 200);
        let d = peer.expect_delivery().await;
        assert_eq!(d.channel, "player:carol");
        assert_alive(&mut peer, 2).await;
        // An expired or forged token is refused the same way, with its code.
        let expired = tokens::expired(TEST_SECRET, "carol");
        let reply = match send_refresh(&mut peer, &expired).await {
            Some(reply) => reply,
            None => Ok(frame_of(&mut peer, "error", 10).await),
        };
        assert_error(transport, &reply, "expired_token", 401);
        peer.close().await;
    }
}

#[tokio::test]
async fn narrowing_claims_ends_a_subscription_with_a_frame_and_widening_allows_more() {
    let server = server().await;
    let (wide, _) = token("dave", 3600, &json!({"channels": ["room", "party"]}));
    let opts = server.anonymous().token(wide.as_str()).channels(&["room:a", "party:b"]);
    let mut peer = Peer::connect(Transport::WebSocket, &opts).await.expect("connects");

    let (narrow, narrow_exp) = token("dave", 3600, &json!({"channels": ["party"]}));
    assert!(send_refresh(&mut peer, &narrow).await.is_none());
    let ended = frame_of(&mut peer, "unsubscribed", 10).await;
    assert_eq!(ended, ServerFrame::Unsubscribed { channel: "room:a".into(), reason: Some("claims".into()) });
    let refreshed = frame_of(&mut peer, "refreshed", 10).await;
    assert_eq!(refreshed, ServerFrame::Refreshed { expires_at: narrow_exp * 1000 });

    // room:a no longer reaches dave; party:b still does.
    for channel in ["room:a", "party:b"] {
        let (status, _) = server.api_post("/api/publish", json!({"channel": channel, "event": "e"})).await;
        assert_eq!(status, 200);
    }
    assert_eq!(peer.expect_delivery().await.channel, "party:b");
    let reply = peer.request(&ClientMessage::subscribe("room:a")).await;
    assert_error(Transport::WebSocket, &reply, "forbidden", 403);

    let (wider, _) = token("dave", 3600, &json!({"channels": ["party", "room", "guild"]}));
    assert!(send_refresh(&mut peer, &wider).await.is_none());
    frame_of(&mut peer, "refreshed", 10).await;
    let reply = peer.request(&ClientMessage::subscribe("guild:x")).await;
    assert!(matches!(reply, Ok(ServerFrame::Subscribed { .. })), "{reply:?}");
}

#[tokio::test]
async fn an_sse_client_refreshes_through_its_uplink() {
    let server = server().await;
    let (first, exp) = token("erin", WARNING_S + 1, &json!({}));
    let mut peer = connect(&server, Transport::Sse, &first).await;
    let warned = frame_of(&mut peer, "token_expiring", 10).await;
    assert_eq!(warned, ServerFrame::TokenExpiring { expires_at: exp * 1000 });
    let (second, second_exp) = token("erin", 3600, &json!({}));
    let reply = send_refresh(&mut peer, &second).await.expect("an SSE answer");
    assert_eq!(reply.ok(), Some(ServerFrame::Refreshed { expires_at: second_exp * 1000 }));

    stays_open_until(&mut peer, (exp + GRACE_S + 1) * 1000).await;
    let (status, _) = server.api_post("/api/players/erin/messages", json!({"event": "hi"})).await;
    assert_eq!(status, 200);
    assert_eq!(peer.expect_delivery().await.channel, "player:erin", "the stream outlived the first token");
}

#[tokio::test]
async fn development_mode_has_no_token_to_refresh() {
    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let mut peer = Peer::connect(transport, &server.dev("frank")).await.expect("connects");
        let reply = match send_refresh(&mut peer, "anything").await {
            Some(reply) => reply,
            None => Ok(frame_of(&mut peer, "error", 10).await),
        };
        assert_error(transport, &reply, "tokens_disabled", 400);
        assert_alive(&mut peer, 3).await;
        peer.close().await;
    }
}

/// The Rust client, given a token callback, refreshes on `token_expiring`:
/// the link outlives its first token with no reconnect, over each transport.
#[tokio::test]
async fn the_rust_client_refreshes_its_token_without_reconnecting() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tandem_client::{Client, ClientOptions, Mode, Status};

    let server = server().await;
    for (mode, player) in [(Mode::WebSocket, "gina"), (Mode::Sse, "hal")] {
        let minted = Arc::new(AtomicUsize::new(0));
        let first_exp = now_s() + WARNING_S + 1;
        let count = Arc::clone(&minted);
        let options = ClientOptions::new(server.base_url()).mode(mode).token(move || {
            let count = Arc::clone(&count);
            async move {
                let n = count.fetch_add(1, Ordering::Relaxed);
                // The first token is short; each refresh gets a long one.
                let ttl = if n == 0 { WARNING_S + 1 } else { 3600 };
                Ok(token(player, ttl, &json!({})).0)
            }
        });
        let client = Client::new(options).expect("options");
        let mut statuses = client.status_stream();
        client.connect();
        assert!(client.wait_status(WAIT, Status::is_connected).await.is_some(), "{mode:?}: connected");
        let session = client.session_id();

        // Past the first token's exp and grace: never reconnected.
        for _ in 0..1_000 {
            if now_ms() > (first_exp + GRACE_S + 1) * 1000 {
                break;
            }
            if let Ok(Some(s)) = tokio::time::timeout(Duration::from_millis(200), statuses.recv()).await {
                assert!(matches!(s, Status::Connecting | Status::Connected { .. }), "{mode:?}: {s:?}");
            }
        }
        assert!(minted.load(Ordering::Relaxed) >= 2, "{mode:?}: the callback was asked again");
        assert!(client.status().is_connected(), "{mode:?}: {:?}", client.status());
        assert_eq!(client.session_id(), session, "{mode:?}: the same session");
        client.ping().await.expect("still answers");
        client.close().await;
    }
}
