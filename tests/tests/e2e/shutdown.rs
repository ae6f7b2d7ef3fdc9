//! Graceful shutdown on SIGTERM: clients are told to reconnect (WebSocket
//! `shutdown` frame then close 1012; SSE `retry:` and a `shutdown` event),
//! and the process exits cleanly within the grace period.

use std::time::Duration;

use tandem_client::ServerFrame;
use tandem_e2e::{Peer, Signal, TestServer, Transport, frames_until_closed};

fn assert_shutdown_frame(transport: Transport, frames: &[ServerFrame]) {
    assert!(
        frames.iter().any(|f| matches!(f, ServerFrame::Shutdown { reconnect: true, .. })),
        "{transport:?}: expected a shutdown frame telling clients to reconnect, got {frames:?}"
    );
}

#[tokio::test]
async fn sigterm_tells_clients_to_reconnect_and_exits_cleanly() {
    let server = TestServer::builder().set("server", "shutdown_grace_seconds", "2").start().await;
    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket connect");
    let mut sse = Peer::connect(Transport::Sse, &server.dev("bob")).await.expect("SSE connect");

    server.send_signal(Signal::Term);

    let (frames, code) = frames_until_closed(&mut ws, 16).await;
    assert_shutdown_frame(Transport::WebSocket, &frames);
    assert_eq!(code, Some(1012), "WebSocket close code on shutdown");

    let (frames, code) = frames_until_closed(&mut sse, 16).await;
    assert_shutdown_frame(Transport::Sse, &frames);
    // The stream just ends after the shutdown event (a `close` event with
    // the WebSocket's code would say the same).
    assert!(matches!(code, None | Some(1012)), "SSE end on shutdown: {code:?}");
    let retry = sse.sse().and_then(|c| c.retry_hint());
    assert!(retry.is_some(), "SSE stream sends retry: before ending");

    let status = server.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// SIGTERM in the middle of a stream of deliveries: every delivery the API
/// reported as handed to a connection reaches that client before its close
/// (queues are flushed), in order and without a gap.
#[tokio::test]
async fn sigterm_during_traffic_flushes_every_accepted_delivery() {
    let server = TestServer::builder().set("server", "shutdown_grace_seconds", "5").start().await;
    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket connect");
    let session = ws.session_id().to_owned();
    let mut sse =
        Peer::connect(Transport::Sse, &server.dev("alice").session(&session)).await.expect("SSE connect");

    // Publish until the server stops answering (bounded in count).
    let url = format!("{}/api/players/alice/messages", server.base_url());
    let key = server.api_key();
    let publisher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (mut ws_acked, mut sse_acked) = (0u64, 0u64);
        for n in 0..5_000u64 {
            let sent = http
                .post(&url)
                .bearer_auth(key)
                .json(&serde_json::json!({"event": "tick", "data": {"n": n}}))
                .send()
                .await;
            let Ok(res) = sent else { break };
            let Ok(body) = res.json::<serde_json::Value>().await else { break };
            ws_acked += body["websocket_delivered"].as_u64().unwrap_or(0);
            sse_acked += body["sse_delivered"].as_u64().unwrap_or(0);
        }
        (ws_acked, sse_acked)
    });

    // Let some traffic flow, then stop the server mid-stream.
    let first = ws.expect_delivery().await;
    assert_eq!(first.seq, 1);
    for _ in 0..20 {
        ws.expect_delivery().await;
    }
    server.send_signal(Signal::Term);

    let (ws_frames, ws_code) = frames_until_closed(&mut ws, 10_000).await;
    let (sse_frames, _) = frames_until_closed(&mut sse, 10_000).await;
    assert_eq!(ws_code, Some(1012), "WebSocket close code on shutdown");
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let (ws_acked, sse_acked) = publisher.await.expect("publisher task");

    let seqs = |frames: &[ServerFrame]| -> Vec<u64> {
        frames
            .iter()
            .filter_map(|f| match f {
                ServerFrame::Message(d) => Some(d.seq),
                _ => None,
            })
            .collect()
    };
    let ws_seqs: Vec<u64> = (1..=21).chain(seqs(&ws_frames)).collect();
    let sse_seqs = seqs(&sse_frames);
    assert_eq!(ws_seqs, (1..=ws_seqs.len() as u64).collect::<Vec<_>>(), "WebSocket: in order, no gap");
    assert_eq!(sse_seqs, (1..=sse_seqs.len() as u64).collect::<Vec<_>>(), "SSE: in order, no gap");
    assert!(
        ws_seqs.len() as u64 >= ws_acked,
        "WebSocket got {} deliveries, the API handed it {ws_acked}",
        ws_seqs.len()
    );
    assert!(
        sse_seqs.len() as u64 >= sse_acked,
        "SSE got {} deliveries, the API handed it {sse_acked}",
        sse_seqs.len()
    );
    assert_shutdown_frame(Transport::WebSocket, &ws_frames);
    assert_shutdown_frame(Transport::Sse, &sse_frames);
    eprintln!(
        "flushed on shutdown: websocket {} (acked {ws_acked}), sse {} (acked {sse_acked})",
        ws_seqs.len(),
        sse_seqs.len()
    );
}
