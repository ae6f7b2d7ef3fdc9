//! Heartbeats: a WebSocket peer that never answers pings is closed with
//! 4000 `heartbeat_timeout` soon after the timeout, one that answers stays
//! and gets its round trip measured, and SSE streams carry `: hb` comments.

use std::time::Duration;

use tandem_client::{ClientError, ClientMessage, ServerFrame, WsClient};
use tandem_e2e::metrics::{metric, wait_metric_at_least};
use tandem_e2e::{TestServer, WAIT};
use tokio::time::Instant;

use crate::common::players::{connections, player, wait_connection_count};
use crate::common::raw_ws::{OP_CLOSE, OP_PING, OP_TEXT, RawRead, RawWs};
use crate::common::sse_stream::{SseEnd, SseItem, SseStream};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);
/// The contract: a silent peer is gone within the timeout plus this.
const CLOSE_SLACK: Duration = Duration::from_secs(2);

async fn server() -> TestServer {
    TestServer::builder()
        .set("transport", "heartbeat_interval_seconds", &INTERVAL.as_secs().to_string())
        .set("transport", "heartbeat_timeout_seconds", &TIMEOUT.as_secs().to_string())
        .set("logging", "level", "\"debug\"")
        .start()
        .await
}

/// A hand-made WebSocket peer reads everything but never sends a pong: the
/// server closes it with 4000 between the timeout and the timeout + slack.
async fn silent_peer_is_closed(server: &TestServer) {
    // Taken before the connection exists, so the server's silence clock
    // cannot have started earlier than ours.
    let started = Instant::now();
    let mut raw = RawWs::connect(server.addr(), "/ws?player_id=silent").await.expect("upgrade to 101");
    let deadline = started + TIMEOUT + CLOSE_SLACK;
    let mut pings = 0;
    let mut texts = 0;
    let code = loop {
        match raw.next(deadline).await {
            RawRead::Frame(f) if f.opcode == OP_CLOSE => break f.close_code(),
            RawRead::Frame(f) if f.opcode == OP_PING => {
                assert_eq!(f.payload.len(), 8, "ping payload is the server's 8-byte clock: {f:?}");
                pings += 1;
            }
            RawRead::Frame(f) if f.opcode == OP_TEXT => texts += 1,
            RawRead::Frame(f) => panic!("unexpected frame {f:?}"),
            RawRead::Eof | RawRead::Failed(_) => panic!("the connection ended without a close frame"),
            RawRead::Timeout => {
                panic!("a peer silent for {:?} is still connected (timeout {TIMEOUT:?})", started.elapsed())
            }
        }
    };
    let elapsed = started.elapsed();
    assert!(elapsed >= TIMEOUT, "closed after {elapsed:?}, before the {TIMEOUT:?} timeout");
    assert_eq!(code, Some(4000), "expected close 4000 heartbeat_timeout");
    assert!(texts >= 1, "the welcome came first");
    assert!(pings >= 1, "the server pinged every {INTERVAL:?}; saw {pings} ping(s) in {elapsed:?}");
    eprintln!("silent peer closed after {elapsed:?} with {code:?} ({pings} ping(s) unanswered)");

    wait_metric_at_least(server, "tandem_heartbeat_timeouts_total", &[], 1.0, WAIT).await;
    let line = server
        .wait_for_log(
            |l| {
                l["message"] == "Closing connection"
                    && l["reason"] == "heartbeat_timeout"
                    && l["player_id"] == "silent"
            },
            WAIT,
        )
        .await;
    assert_eq!(line["close_code"], 4000, "{line}");
    wait_connection_count(server, "silent", 0, WAIT).await;
}

/// A real client (tungstenite answers pings while it reads) stays for three
/// timeouts, and the server records its round trip.
async fn ponging_peer_stays(server: &TestServer) {
    let mut ws = WsClient::connect(&server.dev("steady")).await.expect("connect");
    let until = Instant::now() + 3 * TIMEOUT;
    let mut rtt = None;
    let mut next_look = Instant::now();
    while Instant::now() < until {
        let slice = until.saturating_duration_since(Instant::now()).min(Duration::from_millis(200));
        match ws.next_frame(slice).await {
            Err(ClientError::Timeout) => {}
            Ok(frame) => panic!("nothing was published, got {frame:?}"),
            Err(e) => panic!("a peer that answers pings was dropped: {e}"),
        }
        if rtt.is_none() && Instant::now() >= next_look {
            next_look = Instant::now() + Duration::from_millis(250);
            let detail = player(server, "steady").await.expect("steady has a session");
            rtt = connections(&detail).first().and_then(|c| c["last_heartbeat_rtt_ms"].as_f64());
        }
    }
    let rtt = rtt.expect("last_heartbeat_rtt_ms became a number within three timeouts");
    // Measured in µs: even a loopback round trip is above zero, and it is
    // far below the heartbeat interval.
    assert!(rtt > 0.0 && rtt < INTERVAL.as_secs_f64() * 1000.0, "rtt {rtt} ms");

    ws.send(&ClientMessage::ping(7)).await.expect("send ping");
    match ws.next_frame(WAIT).await {
        Ok(ServerFrame::Pong { id, .. }) => assert_eq!(id, serde_json::json!(7)),
        other => panic!("expected pong 7, got {other:?}"),
    }
    let detail = wait_connection_count(server, "steady", 1, WAIT).await;
    assert_eq!(connections(&detail)[0]["transport"], "websocket", "{detail}");
    let samples = metric(server, "tandem_heartbeat_rtt_seconds_count", &[]).await;
    assert!(samples >= 1.0, "tandem_heartbeat_rtt_seconds has {samples} samples");
    ws.close().await;
}

#[tokio::test]
async fn unanswered_pings_close_the_websocket_while_a_ponging_peer_stays() {
    let server = server().await;
    tokio::join!(silent_peer_is_closed(&server), ponging_peer_stays(&server));
}

#[tokio::test]
async fn sse_streams_carry_heartbeat_comments_and_stay_open() {
    let server = server().await;
    let mut sse = SseStream::open(&server, "player_id=listener", None).await.expect("SSE stream");
    match sse.next_frame(WAIT).await {
        Ok((_, ServerFrame::Welcome(w))) => {
            assert_eq!(w.heartbeat_interval_ms, INTERVAL.as_millis() as u64, "{w:?}");
        }
        other => panic!("expected the welcome, got {other:?}"),
    }
    // Three heartbeats span more than the timeout: the stream must survive.
    const WANT: usize = 3;
    let deadline = Instant::now() + INTERVAL * WANT as u32 + CLOSE_SLACK;
    let mut beats = 0;
    while beats < WANT {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match sse.next_item(remaining).await {
            Ok(SseItem::Comment(text)) => {
                assert_eq!(text, "hb", "heartbeat comment");
                beats += 1;
            }
            Ok(SseItem::Event { event, data, .. }) => panic!("unexpected event {event}: {data}"),
            Err(SseEnd::Timeout) => panic!("{beats} heartbeat(s) by the deadline, expected {WANT}"),
            Err(end) => panic!("the stream ended after {beats} heartbeat(s): {end:?}"),
        }
    }
    let detail = wait_connection_count(&server, "listener", 1, WAIT).await;
    assert_eq!(connections(&detail)[0]["transport"], "sse", "{detail}");
}
