//! Fan-out: one publication, many sessions over both transports, each
//! receiving it exactly once.

use serde_json::json;
use tandem_e2e::{Peer, TestServer, Transport};

const SESSIONS: usize = 40;

#[tokio::test]
async fn publish_reaches_every_subscribed_session_exactly_once() {
    let server = TestServer::start().await;
    let mut peers = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let transport = if i % 2 == 0 { Transport::WebSocket } else { Transport::Sse };
        let opts = server.dev(&format!("p{i:02}")).channels(&["room:hall"]);
        let peer = Peer::connect(transport, &opts)
            .await
            .unwrap_or_else(|e| panic!("connect p{i:02} over {transport:?}: {e}"));
        peers.push(peer);
    }

    let (status, body) = server
        .api_post("/api/publish", json!({"channel": "room:hall", "event": "announce", "data": {"n": 1}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recipients"], SESSIONS, "{body}");
    let id = body["id"].as_str().expect("publication id").to_owned();

    // A second publication acts as a fence: if the first had been delivered
    // twice, the duplicate would arrive before it.
    let (status, fence) =
        server.api_post("/api/publish", json!({"channel": "room:hall", "event": "fence", "data": {}})).await;
    assert_eq!(status, 200, "{fence}");
    let fence_id = fence["id"].as_str().expect("publication id").to_owned();

    for peer in &mut peers {
        let first = peer.expect_delivery().await;
        assert_eq!(first.id, id, "{:?}", peer.transport());
        assert_eq!(first.channel, "room:hall");
        assert_eq!(first.event, "announce");
        let second = peer.expect_delivery().await;
        assert_eq!(second.id, fence_id, "no duplicate before the fence");
        assert_eq!(second.seq, first.seq + 1);
    }
}
