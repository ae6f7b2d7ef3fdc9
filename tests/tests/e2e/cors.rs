//! Browser origins: refused unless allowed; loopback origins allowed by
//! default; CORS preflight for configured origins.

use reqwest::Method;
use tandem_client::ClientError;
use tandem_e2e::server::toml_string;
use tandem_e2e::{Peer, TestServer, Transport};

#[tokio::test]
async fn default_config_refuses_foreign_origins_and_allows_loopback() {
    let server = TestServer::start().await;
    for transport in Transport::ALL {
        let opts = server.dev("alice").origin("http://evil.example");
        match Peer::connect(transport, &opts).await {
            Err(ClientError::Http { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (403, "origin_not_allowed"));
            }
            other => panic!("{transport:?}: expected 403 origin_not_allowed, got {other:?}"),
        }
        let own = format!("http://{}", server.addr());
        for origin in [own.as_str(), "http://localhost:3000"] {
            let peer = Peer::connect(transport, &server.dev("alice").origin(origin))
                .await
                .unwrap_or_else(|e| panic!("{transport:?} from {origin}: {e}"));
            peer.close().await;
        }
    }
}

async fn preflight(server: &TestServer, origin: &str) -> (u16, Option<String>) {
    let response = server
        .http()
        .request(Method::OPTIONS, format!("{}/sse", server.base_url()))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("OPTIONS /sse");
    let allow = response
        .headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), allow)
}

#[tokio::test]
async fn configured_origins_pass_preflight_and_connect() {
    let server = TestServer::builder()
        .set("server", "allowed_origins", &format!("[{}]", toml_string("https://game.example")))
        .start()
        .await;

    let (status, allow) = preflight(&server, "https://game.example").await;
    assert!((200..300).contains(&status), "preflight status {status}");
    assert_eq!(allow.as_deref(), Some("https://game.example"));

    let (status, allow) = preflight(&server, "https://other.example").await;
    let allowed = (200..300).contains(&status) && allow.as_deref() == Some("https://other.example")
        || allow.as_deref() == Some("*");
    assert!(!allowed, "another origin must not pass preflight: {status} {allow:?}");

    for transport in Transport::ALL {
        let peer = Peer::connect(transport, &server.dev("alice").origin("https://game.example"))
            .await
            .unwrap_or_else(|e| panic!("{transport:?} from the allowed origin: {e}"));
        peer.close().await;
        match Peer::connect(transport, &server.dev("alice").origin("https://other.example")).await {
            Err(ClientError::Http { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (403, "origin_not_allowed"));
            }
            other => panic!("{transport:?}: expected 403 origin_not_allowed, got {other:?}"),
        }
    }
}
