//! An SSE reader over the raw response body.
//!
//! Unlike the client SDK it reports comment lines (heartbeats), and the
//! test chooses exactly how it asks to resume: the `Last-Event-ID` header
//! alone (what a browser sends), or the `last_seq` query parameter alone.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tandem_client::ServerFrame;
use tandem_e2e::TestServer;
use tokio::time::{Instant, timeout_at};

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A comment line, without its leading `:` and space (`hb`).
    Comment(String),
    /// An event block.
    Event { id: Option<String>, event: String, data: String },
}

/// Why no item came.
#[derive(Debug)]
pub enum SseEnd {
    /// The server ended the response.
    Ended,
    Timeout,
    /// The body failed; the error is shown in failure messages only.
    Failed(#[allow(dead_code)] String),
}

/// An open event stream.
pub struct SseStream {
    body: Body,
    line: Vec<u8>,
    items: VecDeque<SseItem>,
    id: Option<String>,
    event: String,
    data: Vec<String>,
    ended: bool,
}

impl SseStream {
    /// `GET /sse?{query}`, with `Last-Event-ID` when given; `Err((status,
    /// body))` when the server refuses.
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn open(
        server: &TestServer,
        query: &str,
        last_event_id: Option<u64>,
    ) -> Result<Self, (u16, String)> {
        // No overall timeout: the stream outlives any single request.
        let http = reqwest::Client::builder().no_proxy().build().expect("an HTTP client");
        let url = format!("{}/sse?{query}", server.base_url());
        let mut request = http.get(&url).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = tokio::time::timeout(tandem_e2e::WAIT, request.send())
            .await
            .unwrap_or_else(|_| panic!("{url}: no response head"))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        if status != 200 {
            return Err((status, response.text().await.unwrap_or_default()));
        }
        Ok(Self {
            body: Box::pin(response.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec()))),
            line: Vec::new(),
            items: VecDeque::new(),
            id: None,
            event: String::new(),
            data: Vec::new(),
            ended: false,
        })
    }

    /// The next comment or event within `wait`.
    pub async fn next_item(&mut self, wait: Duration) -> Result<SseItem, SseEnd> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(item) = self.items.pop_front() {
                return Ok(item);
            }
            if self.ended {
                return Err(SseEnd::Ended);
            }
            match timeout_at(deadline, self.body.next()).await {
                Err(_) => return Err(SseEnd::Timeout),
                Ok(None) => self.ended = true,
                Ok(Some(Err(e))) => {
                    self.ended = true;
                    return Err(SseEnd::Failed(e.to_string()));
                }
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
            }
        }
    }

    /// The next event (comments skipped) as a frame, with its `id:`.
    ///
    /// # Panics
    /// When the event's data is not a frame or its name differs from the
    /// frame's `type`.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<(Option<u64>, ServerFrame), SseEnd> {
        let deadline = Instant::now() + wait;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.next_item(remaining).await? {
                SseItem::Comment(_) => continue,
                SseItem::Event { id, event, data } => {
                    let frame =
                        ServerFrame::parse(&data).unwrap_or_else(|e| panic!("event data {data:?}: {e}"));
                    assert_eq!(event, frame.kind(), "event name and frame type differ: {data}");
                    let id = id
                        .map(|i| i.parse::<u64>().unwrap_or_else(|_| panic!("event id {i:?} is not a seq")));
                    return Ok((id, frame));
                }
            }
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.line).trim_end_matches('\r').to_owned();
                self.line.clear();
                self.line_done(&line);
            } else {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &str) {
        if line.is_empty() {
            if !self.event.is_empty() || !self.data.is_empty() || self.id.is_some() {
                self.items.push_back(SseItem::Event {
                    id: self.id.take(),
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            self.items.push_back(SseItem::Comment(comment.trim_start().to_owned()));
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "id" => self.id = Some(value),
            "event" => self.event = value,
            "data" => self.data.push(value),
            _ => {}
        }
    }
}
