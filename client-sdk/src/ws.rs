//! The WebSocket transport: one upgrade, JSON text frames both ways.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::frames::{ClientMessage, ServerFrame, Welcome};
use crate::options::ConnectOptions;

/// How long [`WsClient::close`] waits for the server's half of the closing
/// handshake before dropping the socket.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connected WebSocket client whose welcome has been read.
pub struct WsClient {
    /// The first frame the server sent.
    pub welcome: Welcome,
    link: Link,
}

impl std::fmt::Debug for WsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClient")
            .field("welcome", &self.welcome)
            .field("closed", &self.link.closed)
            .finish_non_exhaustive()
    }
}

/// The socket and how it ended, apart from the welcome so that the welcome
/// can be read with the same code as every later frame.
struct Link {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Set once the connection ended, so later reads report the same end.
    closed: Option<(Option<u16>, String)>,
    /// When the last frame of any kind (pings included) arrived: the
    /// liveness clock of [`Client`](crate::Client).
    last_received: Instant,
}

impl WsClient {
    /// Upgrades to a WebSocket and reads the welcome. A refusal (any answer
    /// but 101) becomes [`ClientError::Http`] with the server's error code.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, ClientError> {
        let deadline = Instant::now() + opts.connect_timeout;
        let mut request = opts.ws_url()?.as_str().into_client_request()?;
        let headers = request.headers_mut();
        if let Some(bearer) = opts.bearer() {
            let value = HeaderValue::from_str(&bearer)
                .map_err(|e| ClientError::InvalidOptions(format!("token: {e}")))?;
            headers.insert("authorization", value);
        }
        if let Some(origin) = &opts.origin {
            let value = HeaderValue::from_str(origin)
                .map_err(|e| ClientError::InvalidOptions(format!("origin: {e}")))?;
            headers.insert("origin", value);
        }
        // Nagle off: frames are small and latency is the point of realtime.
        let connector = if opts.is_tls() {
            Some(tokio_tungstenite::Connector::Rustls(opts.tls.client_config()?))
        } else {
            None
        };
        let upgrade = tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
        let connected = timeout_at(deadline, upgrade).await.map_err(|_| ClientError::Timeout)?;
        let stream = match connected {
            Ok((stream, _response)) => stream,
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                return Err(ClientError::from_http_body(response.status().as_u16(), body));
            }
            Err(e) => return Err(e.into()),
        };
        let mut link = Link { stream, closed: None, last_received: Instant::now() };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match link.next_frame(remaining).await? {
            ServerFrame::Welcome(welcome) => Ok(Self { welcome, link }),
            other => Err(ClientError::Protocol(format!("expected a welcome first, got {other:?}"))),
        }
    }

    /// Sends one client message as a text frame.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        self.send_text(&message.to_json()).await
    }

    /// Sends raw text, valid or not (for exercising the server's validation).
    pub async fn send_text(&mut self, raw: &str) -> Result<(), ClientError> {
        self.link.stream.send(Message::text(raw)).await?;
        Ok(())
    }

    /// Sends a binary frame, which the protocol does not allow.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.link.stream.send(Message::binary(bytes)).await?;
        Ok(())
    }

    /// The next server frame within `wait`. Control frames are skipped
    /// (tungstenite answers pings itself); a close frame or the end of the
    /// connection is [`ClientError::Closed`], every time it is asked again.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<ServerFrame, ClientError> {
        self.link.next_frame(wait).await
    }

    /// When the last frame of any kind arrived, server pings included
    /// (they are answered inside [`next_frame`](Self::next_frame) and never
    /// returned, but they prove the link alive).
    pub fn last_received(&self) -> Instant {
        self.link.last_received
    }

    /// Closes with 1000 `normal` and waits (bounded) for the server's reply.
    pub async fn close(self) {
        let mut link = self.link;
        if link.closed.is_some() {
            return;
        }
        let frame = CloseFrame { code: CloseCode::Normal, reason: "normal".into() };
        if link.stream.close(Some(frame)).await.is_err() {
            return;
        }
        let drain = async {
            // The stream yields the server's close reply, then ends.
            while let Some(Ok(_)) = link.stream.next().await {}
        };
        let _ = timeout(CLOSE_HANDSHAKE_TIMEOUT, drain).await;
    }
}

impl Link {
    async fn next_frame(&mut self, wait: Duration) -> Result<ServerFrame, ClientError> {
        if let Some((code, reason)) = &self.closed {
            return Err(ClientError::Closed { code: *code, reason: reason.clone() });
        }
        let deadline = Instant::now() + wait;
        loop {
            let next = timeout_at(deadline, self.stream.next()).await.map_err(|_| ClientError::Timeout)?;
            let message = match next {
                Some(Ok(message)) => {
                    self.last_received = Instant::now();
                    message
                }
                None => return Err(self.ended(None, "connection ended")),
                Some(Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                    ),
                )) => return Err(self.ended(None, "connection dropped")),
                Some(Err(tungstenite::Error::Io(e))) => {
                    return Err(self.ended(None, &format!("connection dropped: {e}")));
                }
                Some(Err(e)) => return Err(e.into()),
            };
            match message {
                Message::Text(text) => {
                    return ServerFrame::parse(text.as_str())
                        .map_err(|e| ClientError::Protocol(format!("unparsable frame {text:?}: {e}")));
                }
                Message::Binary(_) => {
                    return Err(ClientError::Protocol("the server sent a binary frame".into()));
                }
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    return Err(self.ended(code, &reason));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn ended(&mut self, code: Option<u16>, reason: &str) -> ClientError {
        self.closed = Some((code, reason.to_owned()));
        ClientError::Closed { code, reason: reason.to_owned() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::serve_once;

    #[tokio::test]
    async fn refused_upgrade_carries_the_error_code_and_sent_credentials() {
        let body = r#"{"error":{"code":"origin_not_allowed","message":"no"}}"#;
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (base, server) = serve_once(response).await;
        let opts = ConnectOptions::new(base).token("tok").origin("http://evil.example").channels(&["room:a"]);
        match WsClient::connect(&opts).await {
            Err(ClientError::Http { status: 403, code, .. }) => assert_eq!(code, "origin_not_allowed"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let head = server.await.unwrap();
        assert!(head.starts_with("get /ws?channels=room%3aa "), "{head}");
        assert!(head.contains("authorization: bearer tok\r\n"), "{head}");
        assert!(head.contains("origin: http://evil.example\r\n"), "{head}");
        assert!(!head.contains("token="), "the token stays out of the URL: {head}");
    }
}
