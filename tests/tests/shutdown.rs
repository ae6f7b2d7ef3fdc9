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
