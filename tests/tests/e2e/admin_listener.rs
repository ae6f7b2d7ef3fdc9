//! `server.admin_bind`: the operator routes on a listener of their own, so
//! probes answer while the client port is flooded with connections.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tandem_e2e::{TestServer, WAIT};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Raw connections opened against the client port (they send nothing):
/// bounded, and well below the open-file limit the test raises first.
const FLOOD: usize = 800;

/// The open-file limit this test needs: the flood, the other tests running
/// beside it in this process meanwhile, and room to spare.
const OPEN_FILES: u64 = 8 * FLOOD as u64;

#[tokio::test]
async fn probes_answer_on_the_admin_listener_during_a_connection_flood() {
    // The flood's sockets are this process's descriptors, and every test
    // shares this process: raise the soft limit (to the hard one at most)
    // so the flood cannot starve a neighbour of sockets.
    // (Best effort: where the hard limit is lower, the flood stops at it.)
    let limit = rlimit::increase_nofile_limit(OPEN_FILES);
    eprintln!("open-file limit for the flood: {limit:?}");
    let server = TestServer::builder().set("server", "admin_bind", "\"127.0.0.1:0\"").start().await;
    let line = server.wait_for_log(|l| l["message"] == "Admin listener", WAIT).await;
    let admin: SocketAddr = line["addr"].as_str().and_then(|a| a.parse().ok()).expect("the admin address");
    assert_ne!(admin, server.addr());
    let http = server.http();
    let get = |path: &str| http.get(format!("http://{admin}{path}")).send();

    // Operator routes only.
    assert_eq!(get("/health/live").await.expect("live").status().as_u16(), 200);
    assert_eq!(get("/metrics").await.expect("metrics").status().as_u16(), 200);
    for path in ["/ws", "/sse?player_id=a", "/api/players/a"] {
        let res = get(path).await.expect("request");
        assert_eq!(res.status().as_u16(), 404, "{path} on the admin listener");
        let body: Value = res.json().await.expect("a JSON error");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }

    // Flood the client port with connections that never send a byte, and
    // probe the admin port while they pile up.
    let target = server.addr();
    let flood = tokio::spawn(async move {
        let mut held = Vec::with_capacity(FLOOD);
        for _ in 0..FLOOD {
            match TcpStream::connect(target).await {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
        held
    });
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while !flood.is_finished() && probes < 200 {
        let started = Instant::now();
        let res =
            tokio::time::timeout(WAIT, get("/health")).await.expect("a probe answer in time").expect("probe");
        assert_eq!(res.status().as_u16(), 200, "health during the flood");
        worst = worst.max(started.elapsed());
        probes += 1;
    }
    let held = flood.await.expect("flood task");
    let started = Instant::now();
    let res = get("/health").await.expect("probe with the flood held");
    assert_eq!(res.status().as_u16(), 200);
    worst = worst.max(started.elapsed());
    eprintln!("{} connections held on the client port; {probes} admin probes, slowest {worst:?}", held.len());
    assert!(held.len() >= FLOOD / 2, "only {} flood connections opened", held.len());
}
