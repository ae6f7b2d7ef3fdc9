//! The Server-Sent Events transport: a long GET for server frames, and
//! `POST /sessions/{id}/messages` for the client's messages.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use tokio::time::{Instant, timeout_at};

use crate::error::ClientError;
use crate::frames::{ClientMessage, ServerFrame, Welcome};
use crate::options::ConnectOptions;

type EventResult = Result<Event, EventStreamError<reqwest::Error>>;
type Events = Pin<Box<dyn Stream<Item = EventResult> + Send>>;

/// No retry hint seen yet.
const NO_RETRY: u64 = u64::MAX;

/// A connected SSE client whose welcome has been read.
pub struct SseClient {
    /// The first event the server sent.
    pub welcome: Welcome,
    opts: ConnectOptions,
    http: reqwest::Client,
    events: Events,
    last_event_id: Option<u64>,
    retry_ms: Arc<AtomicU64>,
    /// When the last bytes arrived (heartbeat comments included).
    last_received: Arc<Mutex<Instant>>,
    /// Set once the stream ended (with the `close` event's code, if any), so
    /// later reads report the same end.
    closed: Option<(Option<u16>, String)>,
}

impl std::fmt::Debug for SseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseClient")
            .field("welcome", &self.welcome)
            .field("last_event_id", &self.last_event_id)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl SseClient {
    /// Opens the event stream and reads the welcome. A refusal (any status
    /// but 2xx) becomes [`ClientError::Http`] with the server's error code.
    /// `last_seq` is sent both as the query parameter and as the
    /// `Last-Event-ID` header a browser would send on its own.
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, ClientError> {
        let deadline = Instant::now() + opts.connect_timeout;
        let mut builder = reqwest::Client::builder().no_proxy().connect_timeout(opts.connect_timeout);
        if opts.is_tls() {
            builder = builder.use_preconfigured_tls((*opts.tls.client_config()?).clone());
        }
        let http = builder.build()?;
        let mut request =
            with_credentials(http.get(opts.sse_url()?), opts).header(ACCEPT, "text/event-stream");
        if let Some(n) = opts.last_seq {
            request = request.header("last-event-id", n.to_string());
        }
        let response = timeout_at(deadline, request.send()).await.map_err(|_| ClientError::Timeout)??;
        let status = response.status();
        if !status.is_success() {
            let body = timeout_at(deadline, response.bytes()).await.map_err(|_| ClientError::Timeout)??;
            return Err(ClientError::from_http_body(status.as_u16(), &body));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(ClientError::Protocol(format!("expected text/event-stream, got {content_type:?}")));
        }
        let retry_ms = Arc::new(AtomicU64::new(NO_RETRY));
        let mut sniffer = RetrySniffer::new(Arc::clone(&retry_ms));
        let last_received = Arc::new(Mutex::new(Instant::now()));
        let received = Arc::clone(&last_received);
        let events: Events = Box::pin(
            response
                .bytes_stream()
                .inspect(move |chunk| {
                    if let Ok(bytes) = chunk {
                        *received.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                        sniffer.feed(bytes);
                    }
                })
                .eventsource(),
        );
        let mut client = Self {
            welcome: Welcome::default(),
            opts: opts.clone(),
            http,
            events,
            last_event_id: None,
            retry_ms,
            last_received,
            closed: None,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match client.next_frame(remaining).await? {
            ServerFrame::Welcome(welcome) => {
                client.welcome = welcome;
                Ok(client)
            }
            other => Err(ClientError::Protocol(format!("expected a welcome first, got {other:?}"))),
        }
    }

    /// The next server frame within `wait`. Heartbeat comments are skipped.
    /// A `close` event becomes [`ClientError::Closed`] with its code, as a
    /// WebSocket close frame would; a stream that just ends (shutdown,
    /// network loss) is [`ClientError::Closed`] with no code.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<ServerFrame, ClientError> {
        if let Some((code, reason)) = &self.closed {
            return Err(ClientError::Closed { code: *code, reason: reason.clone() });
        }
        let deadline = Instant::now() + wait;
        let event = match timeout_at(deadline, self.events.next()).await.map_err(|_| ClientError::Timeout)? {
            Some(Ok(event)) => event,
            None => return Err(self.ended(None, "stream ended")),
            Some(Err(EventStreamError::Transport(e))) => {
                return Err(self.ended(None, &format!("stream dropped: {e}")));
            }
            Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
        };
        if !event.id.is_empty() {
            let id = event
                .id
                .parse::<u64>()
                .map_err(|_| ClientError::Protocol(format!("event id {:?} is not a seq", event.id)))?;
            self.last_event_id = Some(id);
        }
        let frame = ServerFrame::parse(&event.data)
            .map_err(|e| ClientError::Protocol(format!("unparsable event data {:?}: {e}", event.data)))?;
        if event.event != frame.kind() {
            return Err(ClientError::Protocol(format!(
                "event name {:?} does not match frame type {:?}",
                event.event,
                frame.kind()
            )));
        }
        match frame {
            ServerFrame::Message(d) if !event.id.is_empty() && self.last_event_id != Some(d.seq) => {
                Err(ClientError::Protocol(format!("event id {:?} differs from seq {}", event.id, d.seq)))
            }
            ServerFrame::Close { code, reason, .. } => Err(self.ended(Some(code), &reason)),
            frame => Ok(frame),
        }
    }

    fn ended(&mut self, code: Option<u16>, reason: &str) -> ClientError {
        self.closed = Some((code, reason.to_owned()));
        ClientError::Closed { code, reason: reason.to_owned() }
    }

    /// The `seq` of the last delivery's `id:` line, what a browser would send
    /// back as `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_event_id
    }

    /// The last `retry:` the server sent (it sends one before a shutdown).
    pub fn retry_hint(&self) -> Option<Duration> {
        match self.retry_ms.load(Ordering::Relaxed) {
            NO_RETRY => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// When the last bytes of the stream arrived, heartbeat comments
    /// included (they are skipped by [`next_frame`](Self::next_frame) but
    /// prove the link alive).
    pub fn last_received(&self) -> Instant {
        *self.last_received.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A handle that POSTs this session's messages on its own, so a stream
    /// reader and a sender can run in different tasks.
    pub fn poster(&self) -> SsePoster {
        SsePoster {
            opts: self.opts.clone(),
            http: self.http.clone(),
            session_id: self.welcome.session_id.clone(),
        }
    }

    /// Sends a client message for this session; the reply frame on 200.
    pub async fn post(&self, message: &ClientMessage) -> Result<ServerFrame, ClientError> {
        self.poster().post(message).await
    }

    /// Sends any body, valid or not (for exercising the server's validation).
    pub async fn post_raw(&self, body: impl Into<String>) -> Result<ServerFrame, ClientError> {
        self.poster().post_raw(body).await
    }

    /// Ends the stream from the client's side.
    pub fn close(self) {}
}

/// `POST /sessions/{id}/messages` for one SSE session, apart from its stream.
#[derive(Debug, Clone)]
pub struct SsePoster {
    opts: ConnectOptions,
    http: reqwest::Client,
    session_id: String,
}

impl SsePoster {
    /// The token later POSTs carry (after a `refresh`).
    pub fn set_token(&mut self, token: String) {
        self.opts.token = Some(token);
    }

    /// Sends a client message for this session; the reply frame on 200.
    pub async fn post(&self, message: &ClientMessage) -> Result<ServerFrame, ClientError> {
        self.post_raw(message.to_json()).await
    }

    /// Sends any body, valid or not.
    pub async fn post_raw(&self, body: impl Into<String>) -> Result<ServerFrame, ClientError> {
        let url = self.opts.messages_url(&self.session_id)?;
        let request = with_credentials(self.http.post(url), &self.opts)
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.opts.connect_timeout)
            .body(body.into());
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(ClientError::from_http_body(status.as_u16(), &bytes));
        }
        ServerFrame::parse(&String::from_utf8_lossy(&bytes))
            .map_err(|e| ClientError::Protocol(format!("unparsable reply: {e}")))
    }
}

fn with_credentials(request: reqwest::RequestBuilder, opts: &ConnectOptions) -> reqwest::RequestBuilder {
    let mut request = request;
    if let Some(bearer) = opts.bearer() {
        request = request.header(AUTHORIZATION, bearer);
    }
    if let Some(origin) = &opts.origin {
        request = request.header(ORIGIN, origin.as_str());
    }
    request
}

/// Watches the raw stream for `retry:` lines, which the event parser only
/// reports when they share a block with data (a lone `retry:` block is
/// valid SSE and would otherwise be lost).
struct RetrySniffer {
    line: Vec<u8>,
    overlong: bool,
    retry_ms: Arc<AtomicU64>,
}

/// Longer lines cannot be a `retry:` line worth reading.
const MAX_RETRY_LINE: usize = 32;

impl RetrySniffer {
    fn new(retry_ms: Arc<AtomicU64>) -> Self {
        Self { line: Vec::with_capacity(MAX_RETRY_LINE), overlong: false, retry_ms }
    }

    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' || b == b'\r' {
                if !self.overlong {
                    self.finish_line();
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < MAX_RETRY_LINE {
                self.line.push(b);
            } else {
                self.overlong = true;
            }
        }
    }

    fn finish_line(&self) {
        let Some(value) = self.line.strip_prefix(b"retry:") else {
            return;
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
            return;
        }
        if let Ok(ms) = std::str::from_utf8(value).unwrap_or_default().parse::<u64>() {
            if ms != NO_RETRY {
                self.retry_ms.store(ms, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::serve_once;

    const WAIT: Duration = Duration::from_secs(5);

    const WELCOME: &str = r#"{"type":"welcome","session_id":"s_1","connection_id":"c_1","player_id":"alice","transport":"sse","resumed":true,"resync_required":false,"last_seq":7,"heartbeat_interval_ms":15000,"channels":["player:alice"]}"#;

    #[tokio::test]
    async fn stream_frames_ids_retry_and_close_event() {
        let body = format!(
            "event: welcome\ndata: {WELCOME}\n\n: hb\n\n\
             id: 8\nevent: message\ndata: {{\"type\":\"message\",\"seq\":8,\"id\":\"m_1\",\"channel\":\"player:alice\",\"event\":\"e\",\"data\":{{}},\"ts\":1}}\n\n\
             retry: 1500\n\n\
             event: close\ndata: {{\"type\":\"close\",\"code\":4008,\"reason\":\"slow_consumer\",\"reconnect\":true}}\n\n"
        );
        let response =
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}");
        let (base, request) = serve_once(response).await;
        let opts = ConnectOptions::new(base).token("tok").session("s_1").last_seq(7);
        let mut client = SseClient::connect(&opts).await.unwrap();
        assert_eq!(client.welcome.session_id, "s_1");
        assert!(client.welcome.resumed);

        let head = request.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /sse?session_id=s_1&last_seq=7 "), "{head}");
        assert!(head.contains("authorization: bearer tok\r\n"), "{head}");
        assert!(head.contains("last-event-id: 7\r\n"), "{head}");
        assert!(head.contains("accept: text/event-stream\r\n"), "{head}");

        let ServerFrame::Message(d) = client.next_frame(WAIT).await.unwrap() else {
            panic!("expected a delivery");
        };
        assert_eq!(d.seq, 8);
        assert_eq!(client.last_event_id(), Some(8));
        for _ in 0..2 {
            match client.next_frame(WAIT).await {
                Err(ClientError::Closed { code: Some(4008), reason }) => assert_eq!(reason, "slow_consumer"),
                other => panic!("expected the close event, got {other:?}"),
            }
        }
        assert_eq!(client.retry_hint(), Some(Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn refusal_carries_the_error_code() {
        let body = r#"{"error":{"code":"missing_token","message":"no token"}}"#;
        let response = format!(
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let (base, _request) = serve_once(response).await;
        match SseClient::connect(&ConnectOptions::new(base)).await {
            Err(ClientError::Http { status: 401, code, .. }) => assert_eq!(code, "missing_token"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stream_that_just_ends_is_closed_without_code() {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\nevent: welcome\ndata: {WELCOME}\n\n"
        );
        let (base, _request) = serve_once(response).await;
        let mut client = SseClient::connect(&ConnectOptions::new(base).player("alice")).await.unwrap();
        match client.next_frame(WAIT).await {
            Err(ClientError::Closed { code: None, .. }) => {}
            other => panic!("expected the end of the stream, got {other:?}"),
        }
    }

    fn sniff(chunks: &[&[u8]]) -> u64 {
        let hint = Arc::new(AtomicU64::new(NO_RETRY));
        let mut s = RetrySniffer::new(Arc::clone(&hint));
        for c in chunks {
            s.feed(c);
        }
        hint.load(Ordering::Relaxed)
    }

    #[test]
    fn retry_line_is_found_across_chunks() {
        assert_eq!(sniff(&[b": hb\n\nret", b"ry: 2500\n\n"]), 2500);
        assert_eq!(sniff(&[b"retry:10\r\nevent: shutdown\r\n"]), 10);
    }

    #[test]
    fn other_lines_do_not_count() {
        assert_eq!(sniff(&[b"data: {\"retry: 5\"}\n"]), NO_RETRY);
        assert_eq!(sniff(&[b"retry: soon\n"]), NO_RETRY);
        assert_eq!(sniff(&[b"retry: 5"]), NO_RETRY, "unterminated");
        let long = format!("retry: {}\n", "9".repeat(40));
        assert_eq!(sniff(&[long.as_bytes()]), NO_RETRY);
    }
}
