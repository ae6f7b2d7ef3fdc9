//! While draining, Tandem answers honestly: every publish path says 503
//! `draining` (an acknowledged publication would die with the process),
//! readiness says 503 for as long as the process answers, and the listener
//! closes only when the process is about to exit.

use std::time::Duration;

use serde_json::{Value, json};
use tandem_e2e::wait::Deadline;
use tandem_e2e::{Signal, TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::raw_ws::RawWs;

const GRACE_SECONDS: u64 = 4;

/// One `GET /health/ready` on a fresh connection: its status, or `None`
/// when the connection is refused or dropped (the listener is gone).
async fn ready_status(server: &TestServer) -> Option<u16> {
    let mut tcp = TcpStream::connect(server.addr()).await.ok()?;
    let req = format!("GET /health/ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.addr());
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut head)).await.ok()?.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test]
async fn draining_refuses_publications_and_stays_not_ready_until_exit() {
    let server = TestServer::builder()
        .set("server", "shutdown_grace_seconds", &GRACE_SECONDS.to_string())
        .set("transport", "outbound_queue_size", "10000")
        .start()
        .await;

    // A subscriber that never reads, behind megabytes of deliveries: its
    // goodbye cannot be written, so the drain lasts the whole grace.
    let _stuck =
        RawWs::connect(server.addr(), "/ws?player_id=stuck&channels=room:big").await.expect("upgrade");
    let filler = "x".repeat(60_000);
    for _ in 0..300 {
        let (status, body) = server
            .api_post("/api/publish", json!({"channel": "room:big", "event": "fill", "data": filler}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // A backend on a kept-alive connection (reqwest pools it).
    let (status, _) = server.api_post("/api/broadcast", json!({"event": "warm", "data": 1})).await;
    assert_eq!(status, 200);

    let signalled = Instant::now();
    let deadline =
        Deadline::new("the listener closes after the grace", Duration::from_secs(GRACE_SECONDS + 10));
    server.send_signal(Signal::Term);
    server.wait_for_log(|l| l["message"] == "Shutdown" && l["phase"] == "draining", WAIT).await;

    // Every publish path says 503 `draining`.
    let calls: [(&str, Value); 3] = [
        ("/api/publish", json!({"channel": "room:big", "event": "late", "data": 1})),
        ("/api/broadcast", json!({"event": "late", "data": 1})),
        ("/api/players/stuck/messages", json!({"event": "late", "data": 1})),
    ];
    for (path, body) in &calls {
        let (status, reply) = server.api_post(path, body.clone()).await;
        assert_eq!((status, reply["error"]["code"].as_str()), (503, Some("draining")), "{path}: {reply}");
    }
    // New clients are refused with the same code.
    let refused =
        RawWs::connect(server.addr(), "/ws?player_id=late").await.err().expect("no upgrade while draining");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // Readiness: 503 on every answer, until the listener goes away. The
    // deadline's tick paces the probes (one per `wait::POLL`, about twenty
    // a second), which the count below relies on.
    let mut answers = 0;
    let gone = loop {
        match ready_status(&server).await {
            Some(status) => {
                assert_eq!(status, 503, "readiness while draining");
                answers += 1;
            }
            None => break Instant::now(),
        }
        deadline.tick(format!("still answering ({answers} answers)")).await;
    };
    assert!(answers >= 10, "readiness answered only {answers} time(s) during a {GRACE_SECONDS} s drain");
    // Once the listener is gone, the process follows promptly.
    let status = server.wait_exit(Duration::from_secs(5)).await;
    eprintln!(
        "drain: {answers} readiness answers (all 503); listener closed {:?} after SIGTERM; exit {:?} later ({status})",
        gone - signalled,
        gone.elapsed()
    );
}
