//! Backpressure: a client that stops reading fills its bounded outbound
//! queue and is closed as a slow consumer, while a reading client on the
//! same channel receives every publication in order; the slow client's
//! session keeps its history so it can resume (or is told to resync).

use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{ClientError, ServerFrame, SseClient};
use tandem_e2e::metrics::wait_metric_at_least;
use tandem_e2e::{Peer, TestServer, Transport, WAIT};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::common::players::{connection_count, only_session_id, wait_connection_count};
use crate::common::raw_http::RawHttp;
use crate::common::raw_ws::{Ending, RawFrame, RawWs};

const QUEUE: usize = 8;
const CHANNEL: &str = "room:flood";
/// Size of each publication's padding.
const PAD: usize = 16 * 1024;
/// Upper bound on publications before the slow client must be gone.
const MAX_PUBLISHES: u64 = 1500;
/// How far the reading client may fall behind the publisher; well under
/// the queue, so the reader can never be the slow one.
const WINDOW: u64 = 4;
/// How often (in publications) the publisher asks whether the slow one is gone.
const CHECK_EVERY: u64 = 8;
/// Bound on one whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(20);

async fn server() -> TestServer {
    TestServer::builder().set("transport", "outbound_queue_size", &QUEUE.to_string()).start().await
}

/// The connection that stops reading.
enum Slow {
    Ws(RawWs),
    Sse(RawHttp),
}

async fn connect_slow(server: &TestServer, transport: Transport) -> Slow {
    let target = format!("/{}?player_id=slow&channels={CHANNEL}", transport_path(transport));
    let slow = match transport {
        // Reads the 101 and nothing after it.
        Transport::WebSocket => {
            Slow::Ws(RawWs::connect(server.addr(), &target).await.expect("upgrade to 101"))
        }
        // Reads nothing at all.
        Transport::Sse => Slow::Sse(RawHttp::get(server.addr(), &target).await),
    };
    wait_connection_count(server, "slow", 1, WAIT).await;
    slow
}

fn transport_path(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "ws",
        Transport::Sse => "sse",
    }
}

/// Reads deliveries until `total` says how many there are and all came;
/// each must be the next `seq` and carry the publication number `i == seq`.
/// Reports its count on `progress`.
fn spawn_reader(
    mut peer: Peer,
    progress: watch::Sender<u64>,
    mut total: watch::Receiver<Option<u64>>,
) -> JoinHandle<Result<u64, String>> {
    tokio::spawn(async move {
        let deadline = Instant::now() + TEST_DEADLINE;
        let mut got = 0u64;
        loop {
            if total.borrow_and_update().is_some_and(|t| got >= t) {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(format!("reader: {got} deliveries by the deadline, total {:?}", *total.borrow()));
            }
            tokio::select! {
                frame = peer.next_frame(Duration::from_millis(200)) => match frame {
                    Ok(ServerFrame::Message(d)) => {
                        let want = got + 1;
                        if d.seq != want || d.data["i"] != json!(want) {
                            return Err(format!("reader: expected seq {want}, got seq {} i {}", d.seq, d.data["i"]));
                        }
                        got = want;
                        progress.send_replace(got);
                    }
                    Err(ClientError::Timeout) => {}
                    other => return Err(format!("reader after {got} deliveries: {other:?}")),
                },
                changed = total.changed() => {
                    if changed.is_err() {
                        return Err(format!("reader: the publisher went away after {got} deliveries"));
                    }
                }
            }
        }
    })
}

/// Publishes padded messages into the channel, paced by the reader, until
/// the slow connection is gone; returns how many were published.
async fn flood(server: &TestServer, reader_progress: &mut watch::Receiver<u64>) -> u64 {
    let pad = "x".repeat(PAD);
    for i in 1..=MAX_PUBLISHES {
        let behind = i - 1;
        let paced = timeout(WAIT, reader_progress.wait_for(|&got| got + WINDOW >= behind))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(paced, "the reading client stalled at {} of {behind} deliveries", *reader_progress.borrow());
        let (status, body) = server
            .api_post(
                "/api/publish",
                json!({"channel": CHANNEL, "event": "flood", "data": {"i": i, "pad": pad}}),
            )
            .await;
        assert_eq!(status, 200, "publish {i}: {body}");
        let failed = body["failed_connections"].as_u64().unwrap_or(0) > 0;
        if (failed || i % CHECK_EVERY == 0) && connection_count(server, "slow").await == 0 {
            return i;
        }
    }
    panic!("the slow client was still connected after {MAX_PUBLISHES} publications of {PAD} bytes");
}

/// The deliveries in the text frames a raw WebSocket read before its end.
fn ws_deliveries(frames: &[RawFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| f.text())
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v["type"] == "message")
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// The slow connection really ended, as a slow consumer.
async fn assert_slow_closed(slow: Slow, published: u64) {
    let deadline = Instant::now() + WAIT;
    match slow {
        Slow::Ws(mut raw) => {
            let max_frames = usize::try_from(published).unwrap_or(usize::MAX) + 16;
            let (ending, frames) = raw.until_end(deadline, max_frames).await;
            assert!(
                matches!(ending, Ending::Close(Some(4008))),
                "slow WebSocket ended with {ending:?}, expected close 4008 slow_consumer"
            );
            let seqs = ws_deliveries(&frames);
            let prefix: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, prefix, "what the slow WebSocket did get is an in-order prefix");
            eprintln!("slow WebSocket: {} deliveries reached it before the cut, then {ending:?}", seqs.len());
        }
        Slow::Sse(mut raw) => {
            let (tail, ended) = raw.read_until(b"event: close", 64 * 1024, 512 * 1024 * 1024, deadline).await;
            let tail = String::from_utf8_lossy(&tail);
            let close = tail.rfind("event: close").map(|at| &tail[at..]);
            assert!(
                close.is_some_and(|c| c.contains("\"code\":4008") && c.contains("slow_consumer")),
                "the slow SSE stream must end with a close event carrying 4008 (stream ended: {ended}); its tail: {}",
                &tail[tail.len().saturating_sub(400)..]
            );
        }
    }
}

/// The slow player comes back on SSE from `last_seq = 0`: either a full
/// replay (contiguous from 1) or an explicit resync, never a silent gap.
async fn assert_resume_after_cut(server: &TestServer, session: &str, published: u64) {
    let mut sse =
        SseClient::connect(&server.dev("slow").session(session).last_seq(0)).await.expect("resume on SSE");
    let welcome = sse.welcome.clone();
    assert_eq!(welcome.session_id, session, "the session outlived its slow connection: {welcome:?}");
    assert_eq!(welcome.last_seq, published, "every publication got a seq in the slow session: {welcome:?}");
    assert!(
        welcome.resumed != welcome.resync_required,
        "a resume from 0 is either replayed or flagged for resync: {welcome:?}"
    );
    if welcome.resumed {
        for want in 1..=welcome.last_seq {
            match sse.next_frame(WAIT).await {
                Ok(ServerFrame::Message(d)) => assert_eq!(d.seq, want, "replay is contiguous"),
                other => panic!("replay: expected seq {want}, got {other:?}"),
            }
        }
    }
    eprintln!(
        "slow player resumed on SSE: resumed={} resync_required={} last_seq={}",
        welcome.resumed, welcome.resync_required, welcome.last_seq
    );
    // Live traffic follows, with the next seq.
    let (status, body) =
        server.api_post("/api/publish", json!({"channel": CHANNEL, "event": "after", "data": {}})).await;
    assert_eq!(status, 200, "{body}");
    match sse.next_frame(WAIT).await {
        Ok(ServerFrame::Message(d)) => assert_eq!((d.seq, d.event.as_str()), (published + 1, "after")),
        other => panic!("expected live delivery {}, got {other:?}", published + 1),
    }
}

async fn slow_consumer_is_cut_while_the_reader_flows(slow_transport: Transport, reader_transport: Transport) {
    let server = server().await;
    let reader = Peer::connect(reader_transport, &server.dev("reader").channels(&[CHANNEL]))
        .await
        .expect("reader connects");
    let slow = connect_slow(&server, slow_transport).await;
    let session = only_session_id(&server, "slow").await;

    let (progress_tx, mut progress) = watch::channel(0u64);
    let (total_tx, total) = watch::channel(None);
    let reading = spawn_reader(reader, progress_tx, total);
    let started = Instant::now();
    let published = flood(&server, &mut progress).await;
    eprintln!(
        "{slow_transport:?} slow consumer cut after {published} publications of {PAD} bytes ({:?})",
        started.elapsed()
    );
    total_tx.send_replace(Some(published));
    let received = timeout(TEST_DEADLINE, reading)
        .await
        .expect("the reader finishes")
        .expect("the reader task ran")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(received, published, "the reading client got every publication");

    let label = slow_transport.as_str();
    wait_metric_at_least(
        &server,
        "tandem_slow_consumer_disconnects_total",
        &[("transport", label)],
        1.0,
        WAIT,
    )
    .await;
    assert_slow_closed(slow, published).await;
    assert_resume_after_cut(&server, &session, published).await;
}

#[tokio::test]
async fn websocket_that_stops_reading_is_cut_as_slow_consumer() {
    slow_consumer_is_cut_while_the_reader_flows(Transport::WebSocket, Transport::WebSocket).await;
}

#[tokio::test]
async fn sse_that_stops_reading_is_cut_as_slow_consumer() {
    slow_consumer_is_cut_while_the_reader_flows(Transport::Sse, Transport::Sse).await;
}
