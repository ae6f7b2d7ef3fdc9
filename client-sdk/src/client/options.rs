//! What a [`Client`](super::Client) connects with, and the documented
//! defaults of every knob.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::events::Resync;
use crate::machine::backoff::Reconnect;
use crate::machine::liveness::DEFAULT_LIVENESS_FACTOR;
use crate::machine::transport_plan::{DEFAULT_WS_FAILURES_BEFORE_FALLBACK, DEFAULT_WS_PROBE_INTERVAL, Mode};
use crate::tls::TlsTrust;

/// Why a token callback could not produce a token.
pub type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// The token callback: called before every connect and reconnect, so an
/// expiring token can be refreshed.
pub type TokenSource = Arc<dyn Fn() -> BoxFuture<'static, Result<String, TokenError>> + Send + Sync>;

/// The reload hook: awaited after a resync, before live delivery resumes.
pub type ResyncHook = Arc<dyn Fn(Resync) -> BoxFuture<'static, ()> + Send + Sync>;

/// How long an attempt may take to reach its welcome, by default.
pub const DEFAULT_WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for the server's reply, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a [`Client`](super::Client) is configured with. Start from
/// [`ClientOptions::new`] and chain the setters; every field has the
/// documented default.
#[derive(Clone)]
pub struct ClientOptions {
    /// `http://host:port` of the Tandem server (a path prefix is kept).
    pub url: String,
    /// Transport choice; default [`Mode::Auto`].
    pub mode: Mode,
    /// The token callback (production). Called on every (re)connect.
    pub token: Option<TokenSource>,
    /// Development mode only: the player to act as.
    pub player_id: Option<String>,
    /// Channels to subscribe at connect; [`Client::subscribe`](super::Client::subscribe)
    /// adds to them, so a new session gets them all back.
    pub channels: Vec<String>,
    /// Backoff between attempts (250 ms base, 30 s cap, unlimited).
    pub reconnect: Reconnect,
    /// A link is dead when nothing arrived within the announced
    /// `heartbeat_interval_ms` × this factor (default 2.0), timed from the
    /// last frame received. A factor below 1.0 (or not a number) would
    /// call healthy links dead, so it counts as the default.
    pub liveness_factor: f64,
    /// No welcome within this (default 10 s) is a failed attempt, also
    /// when a proxy accepted the upgrade and then passed nothing.
    pub welcome_timeout: Duration,
    /// `Auto` falls back to SSE after this many WebSocket attempts in a row
    /// did not reach a welcome (default 2).
    pub ws_failures_before_fallback: u32,
    /// `Auto` on SSE tries WebSocket again after this long (default 60 s),
    /// and switches back when it welcomes.
    pub ws_probe_interval: Duration,
    /// How long `subscribe`, `unsubscribe`, `publish`, `ping`,
    /// `end_session` and `call` wait for the answer (default 10 s;
    /// `call_with_timeout` sets its own).
    pub call_timeout: Duration,
    /// Awaited after a resync, before live delivery resumes.
    pub on_resync: Option<ResyncHook>,
    /// A browser-like `Origin` header, for servers that check it.
    pub origin: Option<String>,
    /// Whom an `https://` server is trusted by (default: the system's
    /// certificate authorities; add a private CA with [`TlsTrust::with_pem`]).
    pub tls: TlsTrust,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(|_| "<callback>"))
            .field("player_id", &self.player_id)
            .field("channels", &self.channels)
            .field("reconnect", &self.reconnect)
            .field("liveness_factor", &self.liveness_factor)
            .field("welcome_timeout", &self.welcome_timeout)
            .field("ws_failures_before_fallback", &self.ws_failures_before_fallback)
            .field("ws_probe_interval", &self.ws_probe_interval)
            .field("call_timeout", &self.call_timeout)
            .field("on_resync", &self.on_resync.as_ref().map(|_| "<hook>"))
            .field("origin", &self.origin)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ClientOptions {
    /// The defaults, for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            mode: Mode::Auto,
            token: None,
            player_id: None,
            channels: Vec::new(),
            reconnect: Reconnect::default(),
            liveness_factor: DEFAULT_LIVENESS_FACTOR,
            welcome_timeout: DEFAULT_WELCOME_TIMEOUT,
            ws_failures_before_fallback: DEFAULT_WS_FAILURES_BEFORE_FALLBACK,
            ws_probe_interval: DEFAULT_WS_PROBE_INTERVAL,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            on_resync: None,
            origin: None,
            tls: TlsTrust::default(),
        }
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The token callback, called before every connect and reconnect so a
    /// short-lived token can be refreshed, and when the server says the
    /// link's token is expiring (`token_expiring`): that token is sent as
    /// `refresh` on the live link, with no reconnect. A refusal of its token (401,
    /// 403) stops the client; an error from the callback is a failed
    /// attempt, retried with backoff.
    ///
    /// ```no_run
    /// # use tandem_client::ClientOptions;
    /// # async fn fetch_token() -> Result<String, std::io::Error> { Ok(String::new()) }
    /// let options = ClientOptions::new("https://game.example")
    ///     .token(|| async { Ok(fetch_token().await?) });
    /// ```
    pub fn token<F, Fut>(mut self, source: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
    {
        self.token = Some(Arc::new(move || Box::pin(source())));
        self
    }

    /// Development mode: act as `player_id` (no token).
    pub fn player_id(mut self, player_id: impl Into<String>) -> Self {
        self.player_id = Some(player_id.into());
        self
    }

    pub fn channels(mut self, channels: &[&str]) -> Self {
        self.channels = channels.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    pub fn reconnect(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = reconnect;
        self
    }

    pub fn liveness_factor(mut self, factor: f64) -> Self {
        self.liveness_factor = factor;
        self
    }

    pub fn welcome_timeout(mut self, timeout: Duration) -> Self {
        self.welcome_timeout = timeout;
        self
    }

    pub fn ws_failures_before_fallback(mut self, failures: u32) -> Self {
        self.ws_failures_before_fallback = failures;
        self
    }

    pub fn ws_probe_interval(mut self, interval: Duration) -> Self {
        self.ws_probe_interval = interval;
        self
    }

    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The reload hook, awaited after a resync before live delivery
    /// resumes (reload the state the lost deliveries would have changed).
    /// [`ClientEvent::Resync`](super::events::ClientEvent::Resync) is sent
    /// to [`Client::events`](super::Client::events) just before it runs.
    ///
    /// ```no_run
    /// # use tandem_client::ClientOptions;
    /// let options = ClientOptions::new("http://127.0.0.1:8080")
    ///     .player_id("alice")
    ///     .on_resync(|resync| async move {
    ///         eprintln!("reloading the room after {:?}", resync.reason);
    ///     });
    /// ```
    pub fn on_resync<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Resync) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_resync = Some(Arc::new(move |r| Box::pin(hook(r))));
        self
    }

    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Whom an `https://` server is trusted by.
    pub fn tls(mut self, trust: TlsTrust) -> Self {
        self.tls = trust;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = ClientOptions::new("http://127.0.0.1:8080");
        assert_eq!(o.mode, Mode::Auto);
        assert_eq!(o.reconnect, Reconnect::default());
        assert!((o.liveness_factor - 2.0).abs() < f64::EPSILON);
        assert_eq!(o.welcome_timeout, Duration::from_secs(10));
        assert_eq!(o.ws_failures_before_fallback, 2);
        assert_eq!(o.ws_probe_interval, Duration::from_secs(60));
        assert_eq!(o.call_timeout, Duration::from_secs(10));
        assert!(o.token.is_none() && o.on_resync.is_none());
    }
}
