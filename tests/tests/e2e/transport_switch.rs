//! Switching transports mid-stream: a client loses its connection without
//! a goodbye and resumes on the other transport; across both connections it
//! sees every `seq` of the stream exactly once, in order.

use std::collections::BTreeSet;
use std::time::Duration;

use tandem_client::{ClientError, ServerFrame, SseClient, Welcome, WsClient};
use tandem_e2e::{TestServer, WAIT};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::common::players::numbered;
use crate::common::sse_stream::{SseEnd, SseStream};

/// The player whose connection switches.
const PLAYER: &str = "switcher";
/// Length of the stream of direct messages.
const TOTAL: u64 = 60;
/// The first connection reads this many before it is dropped.
const SEEN_BEFORE_DROP: u64 = 10;
/// The publisher waits for the drop after this many, so the drop always
/// falls mid-stream: some publications race it, the rest follow it.
const PUBLISHED_BEFORE_DROP: u64 = 20;

/// How the second connection asks to resume.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// SSE with only the `Last-Event-ID` header (what a browser sends).
    SseLastEventId,
    /// SSE with only the `last_seq` query parameter.
    SseQuery,
    /// WebSocket with `session_id` and `last_seq` in the query.
    WebSocket,
}

/// Publishes direct messages 1..=TOTAL to `player`, pausing after
/// [`PUBLISHED_BEFORE_DROP`] until `dropped` says the first link is gone.
fn spawn_publisher(
    server: &TestServer,
    player: &str,
    mut dropped: watch::Receiver<bool>,
) -> JoinHandle<Result<(), String>> {
    let http = server.http().clone();
    let url = format!("{}/api/players/{player}/messages", server.base_url());
    let key = server.api_key();
    tokio::spawn(async move {
        for n in 1..=TOTAL {
            if n == PUBLISHED_BEFORE_DROP + 1 && timeout(WAIT, dropped.wait_for(|&d| d)).await.is_err() {
                return Err(format!("the first connection was not dropped within {WAIT:?}"));
            }
            let response = http.post(&url).bearer_auth(key).json(&numbered(n)).send().await;
            match response {
                Ok(r) if r.status().as_u16() == 200 => {}
                Ok(r) => return Err(format!("message {n}: HTTP {}", r.status())),
                Err(e) => return Err(format!("message {n}: {e}")),
            }
        }
        Ok(())
    })
}

/// Checks a delivery of the stream: direct message `n` has `seq == n`.
fn check(frame: &ServerFrame, want: u64, leg: &str) -> u64 {
    match frame {
        ServerFrame::Message(d) => {
            assert_eq!(d.seq, want, "{leg}: seq out of order");
            assert_eq!(d.data, serde_json::json!({"n": want}), "{leg}: seq {want} carries message {want}");
            assert_eq!(d.channel, format!("player:{PLAYER}"), "{leg}");
            d.seq
        }
        other => panic!("{leg}: expected delivery {want}, got {other:?}"),
    }
}

/// The first leg: connects, starts the stream, reads
/// [`SEEN_BEFORE_DROP`] deliveries and drops the connection without any
/// goodbye (no close frame, no end of stream). Returns the session, the
/// seqs seen and the publisher.
async fn first_leg(
    server: &TestServer,
    websocket: bool,
    dropped: watch::Receiver<bool>,
) -> (String, Vec<u64>, JoinHandle<Result<(), String>>) {
    let mut seen = Vec::new();
    if websocket {
        let mut ws = WsClient::connect(&server.dev(PLAYER)).await.expect("WebSocket connect");
        let publisher = spawn_publisher(server, PLAYER, dropped);
        for want in 1..=SEEN_BEFORE_DROP {
            seen.push(check(&ws.next_frame(WAIT).await.expect("first leg delivery"), want, "WebSocket"));
        }
        let session = ws.welcome.session_id.clone();
        drop(ws);
        (session, seen, publisher)
    } else {
        let mut sse = SseClient::connect(&server.dev(PLAYER)).await.expect("SSE connect");
        let publisher = spawn_publisher(server, PLAYER, dropped);
        for want in 1..=SEEN_BEFORE_DROP {
            seen.push(check(&sse.next_frame(WAIT).await.expect("first leg delivery"), want, "SSE"));
        }
        assert_eq!(sse.last_event_id(), Some(SEEN_BEFORE_DROP), "what a browser would send back");
        let session = sse.welcome.session_id.clone();
        drop(sse);
        (session, seen, publisher)
    }
}

fn assert_resumed(welcome: &Welcome, session: &str, k: u64, how: Resume) {
    assert_eq!(welcome.session_id, session, "{how:?}: same session: {welcome:?}");
    assert!(welcome.resumed, "{how:?}: resumed after seq {k}: {welcome:?}");
    assert!(!welcome.resync_required, "{how:?}: {welcome:?}");
    assert!(welcome.last_seq >= k, "{how:?}: {welcome:?}");
}

/// How long the end of the stream must stay quiet (nothing after seq TOTAL).
const QUIET: Duration = Duration::from_millis(200);

/// The second leg over SSE: welcome `resumed`, then seq k+1..=TOTAL.
async fn resume_on_sse(server: &TestServer, session: &str, k: u64, how: Resume) -> Vec<u64> {
    let query = format!("player_id={PLAYER}&session_id={session}");
    let (query, last_event_id) = match how {
        Resume::SseLastEventId => (query, Some(k)),
        _ => (format!("{query}&last_seq={k}"), None),
    };
    let mut sse =
        SseStream::open(server, &query, last_event_id).await.unwrap_or_else(|e| panic!("{how:?}: {e:?}"));
    match sse.next_frame(WAIT).await {
        Ok((_, ServerFrame::Welcome(w))) => assert_resumed(&w, session, k, how),
        other => panic!("{how:?}: expected the welcome, got {other:?}"),
    }
    let mut seen = Vec::new();
    for want in k + 1..=TOTAL {
        let (id, frame) = sse.next_frame(WAIT).await.unwrap_or_else(|e| panic!("{how:?}: seq {want}: {e:?}"));
        assert_eq!(id, Some(want), "{how:?}: the event id is the seq");
        seen.push(check(&frame, want, "SSE resume"));
    }
    match sse.next_frame(QUIET).await {
        Err(SseEnd::Timeout) => {}
        other => panic!("{how:?}: nothing after seq {TOTAL}, got {other:?}"),
    }
    seen
}

/// The second leg over WebSocket: welcome `resumed`, then seq k+1..=TOTAL.
async fn resume_on_websocket(server: &TestServer, session: &str, k: u64) -> Vec<u64> {
    let mut ws = WsClient::connect(&server.dev(PLAYER).session(session).last_seq(k))
        .await
        .expect("resume on WebSocket");
    assert_resumed(&ws.welcome, session, k, Resume::WebSocket);
    let mut seen = Vec::new();
    for want in k + 1..=TOTAL {
        seen.push(check(&ws.next_frame(WAIT).await.expect("resumed delivery"), want, "WebSocket resume"));
    }
    match ws.next_frame(QUIET).await {
        Err(ClientError::Timeout) => {}
        other => panic!("nothing after seq {TOTAL}, got {other:?}"),
    }
    seen
}

async fn switch(how: Resume) {
    let server = TestServer::start().await;
    let (dropped_tx, dropped_rx) = watch::channel(false);
    let first_is_websocket = !matches!(how, Resume::WebSocket);
    let (session, first, publisher) = first_leg(&server, first_is_websocket, dropped_rx).await;
    dropped_tx.send_replace(true);
    let k = *first.last().expect("the first leg saw deliveries");

    let second = match how {
        Resume::SseLastEventId | Resume::SseQuery => resume_on_sse(&server, &session, k, how).await,
        Resume::WebSocket => resume_on_websocket(&server, &session, k).await,
    };
    timeout(WAIT, publisher)
        .await
        .expect("the publisher finishes")
        .expect("the publisher ran")
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(second.first(), Some(&(k + 1)), "{how:?}: the resumed stream starts right after {k}");
    let mut all = BTreeSet::new();
    for seq in first.into_iter().chain(second) {
        assert!(all.insert(seq), "{how:?}: seq {seq} delivered on both connections");
    }
    let expected: BTreeSet<u64> = (1..=TOTAL).collect();
    assert_eq!(all, expected, "{how:?}: every seq exactly once across both connections");
}

#[tokio::test]
async fn websocket_dropped_mid_stream_resumes_on_sse_with_last_event_id() {
    switch(Resume::SseLastEventId).await;
}

#[tokio::test]
async fn websocket_dropped_mid_stream_resumes_on_sse_with_last_seq() {
    switch(Resume::SseQuery).await;
}

#[tokio::test]
async fn sse_dropped_mid_stream_resumes_on_websocket() {
    switch(Resume::WebSocket).await;
}
