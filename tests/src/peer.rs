//! [`Peer`]: one client connection over WebSocket or SSE behind one
//! request/reply shape.
//!
//! Over WebSocket a reply shares the socket with deliveries; deliveries read
//! while waiting for a reply are kept, in order, for [`Peer::next_frame`], so
//! no test loses a message by asking a question.

use std::collections::VecDeque;
use std::time::Duration;

use tandem_client::{
    ClientError, ClientMessage, ConnectOptions, Delivery, ServerFrame, SseClient, Welcome, WsClient,
};

use tandem_protocol::Transport;

use crate::WAIT;

// One per connection: a WebSocket that may carry TLS state is large, and
// boxing it would only move the size around.
#[allow(clippy::large_enum_variant)]
enum Link {
    Ws(WsClient),
    Sse(SseClient),
}

/// A connected client of either transport.
pub struct Peer {
    link: Link,
    pending: VecDeque<ServerFrame>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("transport", &self.transport())
            .field("welcome", self.welcome())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// Connects over `transport` and reads the welcome.
    pub async fn connect(transport: Transport, opts: &ConnectOptions) -> Result<Self, ClientError> {
        let link = match transport {
            Transport::WebSocket => Link::Ws(WsClient::connect(opts).await?),
            Transport::Sse => Link::Sse(SseClient::connect(opts).await?),
        };
        Ok(Self { link, pending: VecDeque::new() })
    }

    pub fn transport(&self) -> Transport {
        match self.link {
            Link::Ws(_) => Transport::WebSocket,
            Link::Sse(_) => Transport::Sse,
        }
    }

    pub fn welcome(&self) -> &Welcome {
        match &self.link {
            Link::Ws(c) => &c.welcome,
            Link::Sse(c) => &c.welcome,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.welcome().session_id
    }

    /// The WebSocket client, for what only WebSocket can do.
    pub fn ws(&mut self) -> Option<&mut WsClient> {
        match &mut self.link {
            Link::Ws(c) => Some(c),
            Link::Sse(_) => None,
        }
    }

    /// The SSE client, for what only SSE can do.
    pub fn sse(&mut self) -> Option<&mut SseClient> {
        match &mut self.link {
            Link::Ws(_) => None,
            Link::Sse(c) => Some(c),
        }
    }

    /// The next frame: kept deliveries first, then the wire.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<ServerFrame, ClientError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        match &mut self.link {
            Link::Ws(c) => c.next_frame(wait).await,
            Link::Sse(c) => c.next_frame(wait).await,
        }
    }

    /// The next frame, which must be a delivery.
    ///
    /// # Panics
    /// When something else (or nothing) arrives within [`WAIT`].
    pub async fn expect_delivery(&mut self) -> Delivery {
        match self.next_frame(WAIT).await {
            Ok(ServerFrame::Message(d)) => d,
            other => panic!(
                "{:?} peer {}: expected a delivery, got {other:?}",
                self.transport(),
                self.welcome().player_id
            ),
        }
    }

    /// Sends a message and returns the reply: a WebSocket reply frame, or
    /// an SSE POST's body (a refusal is `Err(ClientError::Http)`).
    pub async fn request(&mut self, message: &ClientMessage) -> Result<ServerFrame, ClientError> {
        self.request_raw(&message.to_json()).await
    }

    /// Like [`request`](Self::request) with any text as the frame or body.
    pub async fn request_raw(&mut self, raw: &str) -> Result<ServerFrame, ClientError> {
        match &mut self.link {
            Link::Sse(c) => c.post_raw(raw).await,
            Link::Ws(c) => {
                c.send_text(raw).await?;
                read_reply(c, &mut self.pending).await
            }
        }
    }

    /// Sends a binary frame (WebSocket only) and returns the reply.
    ///
    /// # Panics
    /// On an SSE peer.
    pub async fn request_binary(&mut self, bytes: Vec<u8>) -> Result<ServerFrame, ClientError> {
        match &mut self.link {
            Link::Sse(_) => panic!("SSE has no binary frames"),
            Link::Ws(c) => {
                c.send_binary(bytes).await?;
                read_reply(c, &mut self.pending).await
            }
        }
    }

    /// Closes the connection from the client's side.
    pub async fn close(self) {
        match self.link {
            Link::Ws(c) => c.close().await,
            Link::Sse(c) => c.close(),
        }
    }
}

/// Bounds how many deliveries may precede a reply before the test gives up.
const MAX_FRAMES_BEFORE_REPLY: usize = 10_000;

async fn read_reply(
    client: &mut WsClient,
    pending: &mut VecDeque<ServerFrame>,
) -> Result<ServerFrame, ClientError> {
    for _ in 0..MAX_FRAMES_BEFORE_REPLY {
        match client.next_frame(WAIT).await? {
            // Deliveries and presence frames are kept for `next_frame`.
            frame @ (ServerFrame::Message(_) | ServerFrame::Join { .. } | ServerFrame::Leave { .. }) => {
                pending.push_back(frame);
            }
            reply => return Ok(reply),
        }
    }
    Err(ClientError::Protocol(format!("no reply among {MAX_FRAMES_BEFORE_REPLY} frames")))
}

/// The protocol error code of a reply, whichever way the transport carried
/// it (`error` frame or HTTP refusal).
pub fn error_code(reply: &Result<ServerFrame, ClientError>) -> Option<&str> {
    match reply {
        Ok(ServerFrame::Error { code, .. }) => Some(code),
        Err(ClientError::Http { code, .. }) => Some(code),
        _ => None,
    }
}

/// Asserts that `reply` is the protocol error `code`: an `error` frame over
/// WebSocket, or an HTTP refusal with `http_status` over SSE.
///
/// # Panics
/// When it is anything else.
pub fn assert_error(
    transport: Transport,
    reply: &Result<ServerFrame, ClientError>,
    code: &str,
    http_status: u16,
) {
    match (transport, reply) {
        (Transport::WebSocket, Ok(ServerFrame::Error { code: got, .. })) if got == code => {}
        (Transport::Sse, Err(ClientError::Http { status, code: got, .. }))
            if got == code && *status == http_status => {}
        _ => panic!("{transport:?}: expected error {code} (HTTP {http_status}), got {reply:?}"),
    }
}

/// Asserts that `peer` still answers a ping with the matching pong.
///
/// # Panics
/// When it does not.
pub async fn assert_alive(peer: &mut Peer, id: u64) {
    let reply = peer.request(&ClientMessage::ping(id)).await;
    match reply {
        Ok(ServerFrame::Pong { id: got, .. }) if got == serde_json::json!(id) => {}
        other => panic!("{:?}: expected pong {id}, got {other:?}", peer.transport()),
    }
}

/// Reads frames until the connection ends, at most `max_frames` of them;
/// returns the frames read before the end and the close code.
///
/// # Panics
/// On any other error, or when no end comes within `max_frames`.
pub async fn frames_until_closed(peer: &mut Peer, max_frames: usize) -> (Vec<ServerFrame>, Option<u16>) {
    let mut frames = Vec::new();
    for _ in 0..=max_frames {
        match peer.next_frame(WAIT).await {
            Ok(frame) => frames.push(frame),
            Err(ClientError::Closed { code, .. }) => return (frames, code),
            Err(other) => {
                panic!("{:?}: expected frames then a close, got {other} after {frames:?}", peer.transport())
            }
        }
    }
    panic!("{:?}: no close after {frames:?}", peer.transport());
}
