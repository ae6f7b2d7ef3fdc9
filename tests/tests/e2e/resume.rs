//! Resume: a client that comes back with `session_id` and `last_seq` gets
//! what it missed, in order, then live traffic; a gap that cannot be filled
//! is announced, never silent.

use serde_json::json;
use tandem_e2e::{Peer, TestServer, Transport};

use crate::common::players::direct;

async fn resume_replays_missed_deliveries(transport: Transport) {
    let server = TestServer::start().await;
    let mut first = Peer::connect(transport, &server.dev("alice")).await.expect("connect");
    let session = first.session_id().to_owned();
    for n in 1..=3 {
        direct(&server, "alice", n).await;
    }
    for n in 1..=3 {
        assert_eq!(first.expect_delivery().await.seq, n);
    }
    first.close().await;

    for n in 4..=5 {
        direct(&server, "alice", n).await;
    }
    let mut again =
        Peer::connect(transport, &server.dev("alice").session(&session).last_seq(3)).await.expect("resume");
    let welcome = again.welcome().clone();
    assert_eq!(welcome.session_id, session, "same session");
    assert!(welcome.resumed, "{welcome:?}");
    assert!(!welcome.resync_required, "{welcome:?}");
    assert_eq!(welcome.last_seq, 5, "{welcome:?}");
    for n in 4..=5 {
        let d = again.expect_delivery().await;
        assert_eq!(d.seq, n, "replayed in order");
        assert_eq!(d.data, json!({"n": n}));
    }
    direct(&server, "alice", 6).await;
    let d = again.expect_delivery().await;
    assert_eq!(d.seq, 6, "live traffic after the replay, no duplicate");
    if let Some(sse) = again.sse() {
        assert_eq!(sse.last_event_id(), Some(6));
    }
}

#[tokio::test]
async fn websocket_resume_replays_missed_deliveries() {
    resume_replays_missed_deliveries(Transport::WebSocket).await;
}

#[tokio::test]
async fn sse_resume_replays_missed_deliveries() {
    resume_replays_missed_deliveries(Transport::Sse).await;
}

#[tokio::test]
async fn a_gap_older_than_the_history_requires_resync() {
    let server = TestServer::builder().set("session", "history_size", "4").start().await;
    for transport in Transport::ALL {
        let player = format!("gap-{}", transport.as_str());
        let first = Peer::connect(transport, &server.dev(&player)).await.expect("connect");
        let session = first.session_id().to_owned();
        first.close().await;
        for n in 1..=10 {
            direct(&server, &player, n).await;
        }
        let again = Peer::connect(transport, &server.dev(&player).session(&session).last_seq(1))
            .await
            .expect("resume");
        let welcome = again.welcome();
        assert!(!welcome.resumed, "{transport:?}: {welcome:?}");
        assert!(welcome.resync_required, "{transport:?}: {welcome:?}");
    }
}

#[tokio::test]
async fn an_unknown_session_is_replaced_and_requires_resync() {
    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let peer = Peer::connect(transport, &server.dev("alice").session("s_long_gone").last_seq(5))
            .await
            .expect("connect");
        let welcome = peer.welcome();
        assert_ne!(welcome.session_id, "s_long_gone", "{transport:?}");
        assert!(!welcome.resumed, "{transport:?}: {welcome:?}");
        assert!(welcome.resync_required, "{transport:?}: {welcome:?}");
    }
}
