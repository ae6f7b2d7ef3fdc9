//! The HTTP client Tandem calls its backend with: one pooled keep-alive
//! client, a deadline over the whole exchange, an answer read no further
//! than `backend.max_response_bytes`, and every failure sorted into one of
//! the few outcomes the protocol names.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, USER_AGENT};

use super::signature;
use crate::config::BackendConfig;

/// Which backend endpoint a request went to (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Command,
    Connect,
    Subscribe,
    Events,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::Connect => "connect",
            Self::Subscribe => "subscribe",
            Self::Events => "events",
        }
    }
}

/// What a request to the backend came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx and its body.
    Ok { status: u16, body: Bytes },
    /// A 4xx and its body: the backend said no.
    Refused { status: u16, body: Bytes },
    /// No answer within the deadline.
    Timeout,
    /// No connection (refused, reset, DNS).
    Unavailable,
    /// A 3xx or 5xx, or a body over the size limit or cut short.
    Error { reason: String },
}

impl Answer {
    /// The `outcome` label of `tandem_backend_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Ok { .. } => "ok",
            Self::Refused { .. } => "refused",
            Self::Timeout => "backend_timeout",
            Self::Unavailable => "backend_unavailable",
            Self::Error { .. } => "backend_error",
        }
    }
}

/// Builds the client; errors only if the TLS-free builder cannot start.
#[derive(Debug, Clone)]
pub struct HttpClient {
    http: reqwest::Client,
    secret: Option<Bytes>,
    max_response_bytes: usize,
    user_agent: HeaderValue,
}

impl HttpClient {
    pub fn new(config: &BackendConfig, version: &str) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .connect_timeout(config.timeout().max(config.hook_timeout()))
            .build()?;
        let user_agent = HeaderValue::from_str(&format!("tandem/{version}"))
            .unwrap_or_else(|_| HeaderValue::from_static("tandem"));
        Ok(Self {
            http,
            secret: (!config.secret.is_empty()).then(|| Bytes::copy_from_slice(config.secret.as_bytes())),
            max_response_bytes: config.max_response_bytes,
            user_agent,
        })
    }

    /// POSTs `body` to `url` and waits at most `deadline` for the whole
    /// answer. Returns the answer and how long it took.
    pub async fn post(&self, url: &str, body: Bytes, deadline: Duration) -> (Answer, Duration) {
        let started = Instant::now();
        let answer = match tokio::time::timeout(deadline, self.exchange(url, body)).await {
            Ok(answer) => answer,
            Err(_) => Answer::Timeout,
        };
        (answer, started.elapsed())
    }

    async fn exchange(&self, url: &str, body: Bytes) -> Answer {
        let mut req = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, self.user_agent.clone());
        if let Some(secret) = &self.secret {
            req = req.header(signature::HEADER, signature::sign(secret, &body));
        }
        let mut resp = match req.body(body).send().await {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => return Answer::Timeout,
            Err(e) if e.is_connect() || e.is_request() => return Answer::Unavailable,
            Err(e) => return Answer::Error { reason: e.to_string() },
        };
        let status = resp.status().as_u16();
        if !(200..500).contains(&status) || (300..400).contains(&status) {
            return Answer::Error { reason: format!("HTTP {status}") };
        }
        let announced = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > self.max_response_bytes as u64) {
            return Answer::Error { reason: "answer over backend.max_response_bytes".into() };
        }
        let mut buf = BytesMut::with_capacity(announced.map_or(256, |n| n as usize));
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len() + chunk.len() > self.max_response_bytes {
                        return Answer::Error { reason: "answer over backend.max_response_bytes".into() };
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Answer::Error { reason: format!("answer cut short: {e}") },
            }
        }
        let body = buf.freeze();
        if status < 300 { Answer::Ok { status, body } } else { Answer::Refused { status, body } }
    }
}
