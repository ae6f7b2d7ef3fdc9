//! One open link over either transport, behind one shape, and what its
//! errors mean for the decision logic.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::ClientError;
use crate::frames::{ServerFrame, Welcome};
use crate::machine::transport_plan::Transport;
use crate::machine::verdict::End;
use crate::options::ConnectOptions;
use crate::sse::SseClient;
use crate::ws::WsClient;

/// A welcomed link.
#[derive(Debug)]
// One per client: a WebSocket that may carry TLS state is large, and boxing
// it would only move the size around.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    Ws(WsClient),
    Sse(SseClient),
}

impl Link {
    /// Connects over `transport` and reads the welcome, within the
    /// options' `connect_timeout` (the welcome timeout).
    pub(crate) async fn open(transport: Transport, opts: &ConnectOptions) -> Result<Self, ClientError> {
        match transport {
            Transport::WebSocket => WsClient::connect(opts).await.map(Self::Ws),
            Transport::Sse => SseClient::connect(opts).await.map(Self::Sse),
        }
    }

    pub(crate) fn transport(&self) -> Transport {
        match self {
            Self::Ws(_) => Transport::WebSocket,
            Self::Sse(_) => Transport::Sse,
        }
    }

    pub(crate) fn welcome(&self) -> &Welcome {
        match self {
            Self::Ws(c) => &c.welcome,
            Self::Sse(c) => &c.welcome,
        }
    }

    pub(crate) async fn next_frame(&mut self, wait: Duration) -> Result<ServerFrame, ClientError> {
        match self {
            Self::Ws(c) => c.next_frame(wait).await,
            Self::Sse(c) => c.next_frame(wait).await,
        }
    }

    /// When anything (heartbeats included) last arrived.
    pub(crate) fn last_received(&self) -> Instant {
        match self {
            Self::Ws(c) => c.last_received(),
            Self::Sse(c) => c.last_received(),
        }
    }

    /// The SSE `retry:` hint, if the server sent one.
    pub(crate) fn retry_hint(&self) -> Option<Duration> {
        match self {
            Self::Ws(_) => None,
            Self::Sse(c) => c.retry_hint(),
        }
    }

    /// Closes from the client's side (WebSocket: 1000 `normal`).
    pub(crate) async fn close(self) {
        match self {
            Self::Ws(c) => c.close().await,
            Self::Sse(c) => c.close(),
        }
    }
}

/// What a transport error means for the decision logic.
pub(crate) fn end_of(error: &ClientError) -> End {
    match error {
        ClientError::Http { status, code, message, retry } => {
            End::Refused { status: *status, code: code.clone(), message: message.clone(), retry: *retry }
        }
        ClientError::Closed { code, reason } => End::Closed { code: *code, reason: reason.clone() },
        ClientError::Timeout => End::TimedOut,
        other => End::Failed(other.to_string()),
    }
}
