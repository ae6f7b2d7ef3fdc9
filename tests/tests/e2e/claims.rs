//! Token claims: `channels` limits what may be subscribed (and opens
//! `admin:`), `publish` replaces `channels.client_publish`.

use serde_json::json;
use tandem_client::{ClientMessage, ServerFrame};
use tandem_e2e::server::toml_string;
use tandem_e2e::tokens::{TEST_SECRET, sign};
use tandem_e2e::{Peer, TestServer, Transport, assert_error};

fn token(player: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() + 3600)
        .unwrap_or(u64::MAX / 2);
    sign(
        TEST_SECRET,
        &json!({"sub": player, "exp": exp, "channels": ["room", "admin:ops"], "publish": ["party"]}),
    )
}

#[tokio::test]
async fn claims_limit_subscribe_and_publish() {
    let server = TestServer::builder().set("auth", "secret", &toml_string(TEST_SECRET)).start().await;
    for transport in Transport::ALL {
        let player = format!("claims-{}", transport.as_str());
        let mut peer =
            Peer::connect(transport, &server.anonymous().token(token(&player))).await.expect("connect");
        for channel in ["room:a", "admin:ops"] {
            let reply = peer.request(&ClientMessage::subscribe(channel)).await;
            assert!(
                matches!(&reply, Ok(ServerFrame::Subscribed { channel: c }) if c == channel),
                "{transport:?} subscribe {channel}: {reply:?}"
            );
        }
        for channel in ["admin:other", "party:1"] {
            let reply = peer.request(&ClientMessage::subscribe(channel)).await;
            assert_error(transport, &reply, "forbidden", 403);
        }
        let reply = peer.request(&ClientMessage::publish("party:1", "e", json!({}))).await;
        assert!(
            matches!(reply, Ok(ServerFrame::Published { .. })),
            "{transport:?} publish party:1: {reply:?}"
        );
        for channel in ["room:a", "admin:ops"] {
            let reply = peer.request(&ClientMessage::publish(channel, "e", json!({}))).await;
            assert_error(transport, &reply, "forbidden", 403);
        }

        // The admin channel subscribed through the claim receives.
        let (status, body) = server
            .api_post("/api/publish", json!({"channel": "admin:ops", "event": "ops", "data": {}}))
            .await;
        assert_eq!(status, 200, "{body}");
        let d = peer.expect_delivery().await;
        assert_eq!((d.channel.as_str(), d.event.as_str()), ("admin:ops", "ops"));
        peer.close().await;
    }
}
