//! What a client connects with, and how that becomes URLs and headers.
//!
//! Tokens travel in the `Authorization` header, never in the query string,
//! so they stay out of access logs and proxies' URL records.

use std::time::Duration;

use url::Url;

use crate::error::ClientError;
use crate::tls::TlsTrust;

/// How long a connect (TCP, upgrade or SSE response head, welcome) may take
/// unless [`ConnectOptions::connect_timeout`] says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to connect. Built with [`ConnectOptions::new`] and the
/// chained setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `http://host:port` of the Tandem server (a path prefix is kept).
    pub base_url: String,
    /// Client JWT, sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Development mode only: the player to act as (`?player_id=`).
    pub player_id: Option<String>,
    /// Join or resume this session; a new one when `None`.
    pub session_id: Option<String>,
    /// Resume after this sequence number.
    pub last_seq: Option<u64>,
    /// The last position received in each channel, `(channel, pos)`: lets
    /// any node of a cluster resume the session. `Some` (even empty) says
    /// the client keeps them: a channel it has none for received nothing.
    pub positions: Option<Vec<(String, String)>>,
    /// Channels to subscribe at connect.
    pub channels: Vec<String>,
    /// A browser-like `Origin` header.
    pub origin: Option<String>,
    /// Bound on connecting and receiving the welcome.
    pub connect_timeout: Duration,
    /// Whom an `https://` server is trusted by (default: the system's
    /// certificate authorities).
    pub tls: TlsTrust,
}

impl ConnectOptions {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: None,
            player_id: None,
            session_id: None,
            last_seq: None,
            positions: None,
            channels: Vec::new(),
            origin: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls: TlsTrust::default(),
        }
    }

    /// Whom an `https://` server is trusted by.
    pub fn tls(mut self, trust: TlsTrust) -> Self {
        self.tls = trust;
        self
    }

    /// Whether the connect goes over TLS (`https://`, hence `wss://`).
    pub fn is_tls(&self) -> bool {
        self.base().is_ok_and(|u| u.scheme() == "https")
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn player(mut self, player_id: impl Into<String>) -> Self {
        self.player_id = Some(player_id.into());
        self
    }

    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    pub fn last_seq(mut self, last_seq: u64) -> Self {
        self.last_seq = Some(last_seq);
        self
    }

    /// Resume from these positions (`(channel, pos)`, see [`crate::Delivery::pos`]).
    pub fn positions(mut self, positions: Vec<(String, String)>) -> Self {
        self.positions = Some(positions);
        self
    }

    pub fn channels(mut self, channels: &[&str]) -> Self {
        self.channels = channels.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    fn base(&self) -> Result<Url, ClientError> {
        let url =
            Url::parse(&self.base_url).map_err(|e| ClientError::InvalidOptions(format!("base_url: {e}")))?;
        match url.scheme() {
            "http" | "https" => Ok(url),
            other => {
                Err(ClientError::InvalidOptions(format!("base_url scheme {other:?}: expected http or https")))
            }
        }
    }

    /// `{base}/{path}` with `path` relative to the base's own path.
    pub(crate) fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        let mut url = self.base()?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| ClientError::InvalidOptions("base_url cannot be a base".into()))?;
            segments.pop_if_empty();
            for segment in path.split('/').filter(|s| !s.is_empty()) {
                segments.push(segment);
            }
        }
        Ok(url)
    }

    /// Adds the connect query parameters (everything but the token).
    fn with_connect_query(&self, mut url: Url) -> Url {
        {
            let mut q = url.query_pairs_mut();
            if let Some(p) = &self.player_id {
                q.append_pair("player_id", p);
            }
            if let Some(s) = &self.session_id {
                q.append_pair("session_id", s);
            }
            if let Some(n) = self.last_seq {
                q.append_pair("last_seq", &n.to_string());
            }
            if let Some(positions) = &self.positions {
                let list: Vec<String> = positions.iter().map(|(c, p)| format!("{c}={p}")).collect();
                q.append_pair("positions", &list.join(","));
            }
            if !self.channels.is_empty() {
                q.append_pair("channels", &self.channels.join(","));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// `ws://…/ws?…` for the WebSocket upgrade.
    pub fn ws_url(&self) -> Result<Url, ClientError> {
        let mut url = self.with_connect_query(self.endpoint("ws")?);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| ClientError::InvalidOptions("cannot switch to a ws scheme".into()))?;
        Ok(url)
    }

    /// `http://…/sse?…` for the event stream.
    pub fn sse_url(&self) -> Result<Url, ClientError> {
        Ok(self.with_connect_query(self.endpoint("sse")?))
    }

    /// `http://…/sessions/{id}/messages` for an SSE client's messages; in
    /// development mode the player rides along as `?player_id=`.
    pub fn messages_url(&self, session_id: &str) -> Result<Url, ClientError> {
        let mut url = self.endpoint("sessions")?;
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidOptions("base_url cannot be a base".into()))?
            .push(session_id)
            .push("messages");
        if let Some(p) = &self.player_id {
            url.query_pairs_mut().append_pair("player_id", p);
        }
        Ok(url)
    }

    /// The `Authorization` header value, when a token is set.
    pub(crate) fn bearer(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ws_url_carries_the_connect_parameters() {
        let opts = ConnectOptions::new("http://127.0.0.1:8080")
            .player("alice")
            .session("s_1")
            .last_seq(7)
            .channels(&["room:tavern", "party:42"]);
        assert_eq!(
            opts.ws_url().unwrap().as_str(),
            "ws://127.0.0.1:8080/ws?player_id=alice&session_id=s_1&last_seq=7&channels=room%3Atavern%2Cparty%3A42"
        );
    }

    #[test]
    fn bare_urls_have_no_query() {
        let opts = ConnectOptions::new("http://127.0.0.1:8080/").token("t");
        assert_eq!(opts.ws_url().unwrap().as_str(), "ws://127.0.0.1:8080/ws");
        assert_eq!(opts.sse_url().unwrap().as_str(), "http://127.0.0.1:8080/sse");
        assert_eq!(opts.bearer().as_deref(), Some("Bearer t"));
    }

    #[test]
    fn https_becomes_wss_and_prefix_is_kept() {
        let opts = ConnectOptions::new("https://game.example/rt");
        assert_eq!(opts.ws_url().unwrap().as_str(), "wss://game.example/rt/ws");
        assert_eq!(opts.sse_url().unwrap().as_str(), "https://game.example/rt/sse");
    }

    #[test]
    fn messages_url_escapes_the_session_and_keeps_the_dev_player() {
        let opts = ConnectOptions::new("http://127.0.0.1:9").player("bob");
        assert_eq!(
            opts.messages_url("s/1").unwrap().as_str(),
            "http://127.0.0.1:9/sessions/s%2F1/messages?player_id=bob"
        );
        let opts = ConnectOptions::new("http://127.0.0.1:9");
        assert_eq!(opts.messages_url("s_1").unwrap().as_str(), "http://127.0.0.1:9/sessions/s_1/messages");
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        assert!(ConnectOptions::new("not a url").ws_url().is_err());
        assert!(ConnectOptions::new("ftp://x").sse_url().is_err());
    }
}
