//! `server.transports` turns a transport off; the demo page and the
//! browser client are served by the binary itself.

use tandem_client::ClientError;
use tandem_e2e::server::toml_string;
use tandem_e2e::{Peer, TestServer, Transport};

#[tokio::test]
async fn a_disabled_transport_answers_transport_disabled_and_the_other_works() {
    let server =
        TestServer::builder().set("server", "transports", &format!("[{}]", toml_string("sse"))).start().await;
    match Peer::connect(Transport::WebSocket, &server.dev("alice")).await {
        Err(ClientError::Http { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "transport_disabled"))
        }
        other => panic!("expected 404 transport_disabled, got {other:?}"),
    }
    let peer = Peer::connect(Transport::Sse, &server.dev("alice")).await.expect("SSE stays on");
    peer.close().await;

    let server = TestServer::builder()
        .set("server", "transports", &format!("[{}]", toml_string("websocket")))
        .start()
        .await;
    match Peer::connect(Transport::Sse, &server.dev("alice")).await {
        Err(ClientError::Http { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "transport_disabled"))
        }
        other => panic!("expected 404 transport_disabled, got {other:?}"),
    }
    let response = server
        .http()
        .post(format!("{}/sessions/s_x/messages?player_id=alice", server.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"type":"ping"}"#)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "transport_disabled", "{body}");
    let peer = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("WebSocket stays on");
    peer.close().await;
}

#[tokio::test]
async fn the_demo_page_and_the_client_bundle_are_served_by_the_binary() {
    let server = TestServer::start().await;
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "/client/tandem.js"),
        ("/client/tandem.js", "text/javascript; charset=utf-8", "TandemClient"),
    ] {
        let response = server.http().get(format!("{}{path}", server.base_url())).send().await.expect("GET");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let ct = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(ct.as_deref(), Some(content_type), "{path}");
        let body = response.text().await.expect("body");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
}
