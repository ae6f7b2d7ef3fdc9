//! A one-shot HTTP peer for the client's unit tests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers one HTTP request with `response`; the task yields the request
/// head (lower-cased).
#[allow(clippy::unwrap_used)]
pub async fn serve_once(response: String) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "request ended early");
            head.extend_from_slice(&buf[..n]);
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    (base, task)
}

/// A WebSocket peer that plays a Tandem server, one accepted connection at
/// a time.
#[allow(clippy::unwrap_used)]
pub mod ws_peer {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    /// How long a test waits for anything.
    pub const WAIT: Duration = Duration::from_secs(10);

    /// One accepted connection and the URI it asked for.
    pub struct Conn {
        pub ws: WebSocketStream<TcpStream>,
        pub uri: String,
    }

    /// A listener and its `http://` base URL.
    pub async fn listen() -> (String, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        (base, listener)
    }

    /// The next connection, upgraded.
    pub async fn accept(listener: &TcpListener) -> Conn {
        let (stream, _) = tokio::time::timeout(WAIT, listener.accept()).await.unwrap().unwrap();
        let uri = Arc::new(Mutex::new(String::new()));
        let seen = Arc::clone(&uri);
        // The error type is tungstenite's, not ours to shrink.
        #[allow(clippy::result_large_err)]
        let callback = move |req: &Request, resp: Response| {
            *seen.lock().unwrap() = req.uri().to_string();
            Ok(resp)
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await.unwrap();
        let uri = uri.lock().unwrap().clone();
        Conn { ws, uri }
    }

    impl Conn {
        pub async fn send(&mut self, frame: Value) {
            self.ws.send(Message::text(frame.to_string())).await.unwrap();
        }

        pub async fn welcome(&mut self, session: &str, resumed: bool) {
            self.send(json!({
                "type": "welcome", "session_id": session, "connection_id": "c_1", "player_id": "alice",
                "transport": "websocket", "resumed": resumed, "resync_required": false, "last_seq": 0,
                "heartbeat_interval_ms": 15000, "channels": ["player:alice"]
            }))
            .await;
        }

        /// The next text frame the client sent, as JSON.
        pub async fn recv(&mut self) -> Value {
            loop {
                let next = tokio::time::timeout(WAIT, self.ws.next()).await.unwrap();
                match next.unwrap().unwrap() {
                    Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                    Message::Ping(_) | Message::Pong(_) => {}
                    other => panic!("expected a text frame, got {other:?}"),
                }
            }
        }

        pub async fn close(mut self, code: u16, reason: &str) {
            let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
            let _ = self.ws.close(Some(frame)).await;
        }
    }
}

/// An HTTP peer that plays a Tandem server's SSE side: `GET /sse` streams
/// what the test pushes, `POST /sessions/{id}/messages` hands the body to
/// the test and answers `202 {"accepted":true,"id"}`.
#[allow(clippy::unwrap_used)]
pub mod sse_peer {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    /// One request the client made: the request line, and the body of a POST.
    #[derive(Debug)]
    pub enum Seen {
        Stream { line: String },
        Post { line: String, body: Value },
    }

    pub struct Peer {
        pub base: String,
        pub seen: mpsc::UnboundedReceiver<Seen>,
        stream: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>,
    }

    impl Peer {
        /// Sends one event on the open stream.
        pub fn push(&self, frame: &Value) {
            let kind = frame["type"].as_str().unwrap();
            let event = format!("event: {kind}\ndata: {frame}\n\n");
            self.stream.lock().unwrap().as_ref().unwrap().send(event).unwrap();
        }

        /// Ends the open stream (a network drop: no `close` event).
        pub fn drop_stream(&self) {
            self.stream.lock().unwrap().take();
        }

        pub async fn next(&mut self) -> Seen {
            tokio::time::timeout(super::ws_peer::WAIT, self.seen.recv()).await.unwrap().unwrap()
        }
    }

    /// Serves until the test ends. Every stream is welcomed to `session`.
    pub async fn start(session: &'static str) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let stream = Arc::new(Mutex::new(None));
        let current = Arc::clone(&stream);
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                tokio::spawn(handle(socket, session, seen_tx.clone(), Arc::clone(&current)));
            }
        });
        Peer { base, seen, stream }
    }

    type Current = Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>;

    async fn handle(
        mut socket: TcpStream,
        session: &str,
        seen: mpsc::UnboundedSender<Seen>,
        current: Current,
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = socket.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let line = head.lines().next().unwrap_or_default().to_owned();
        if line.starts_with("get /sse") {
            let (tx, mut rx) = mpsc::unbounded_channel::<String>();
            *current.lock().unwrap() = Some(tx);
            let _ = seen.send(Seen::Stream { line });
            let welcome = json!({
                "type": "welcome", "session_id": session, "connection_id": "c_1", "player_id": "alice",
                "transport": "sse", "resumed": true, "resync_required": false, "last_seq": 0,
                "heartbeat_interval_ms": 15000, "channels": ["player:alice"]
            });
            let start = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\nevent: welcome\ndata: {welcome}\n\n"
            );
            socket.write_all(start.as_bytes()).await.unwrap();
            while let Some(event) = rx.recv().await {
                if socket.write_all(event.as_bytes()).await.is_err() {
                    return;
                }
            }
            return;
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = socket.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Value = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
        let answer = json!({"accepted": true, "id": body["id"]}).to_string();
        let _ = seen.send(Seen::Post { line, body });
        let response = format!(
            "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        let _ = socket.write_all(response.as_bytes()).await;
    }
}
