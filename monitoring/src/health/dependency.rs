//! Dependency components declared in `[[monitoring.checks]]`: a TCP
//! connect or an HTTP GET against something Tandem relies on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use super::{CheckOutcome, ComponentStatus, HealthCheck};
use crate::config::{DependencyCheckConfig, DependencyKind};

/// A dependency component's details: what was probed, and the HTTP status
/// or the error when there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DependencyDetails<'a> {
    pub kind: DependencyKind,
    pub target: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<'a> DependencyDetails<'a> {
    fn new(kind: DependencyKind, target: &'a str) -> Self {
        Self { kind, target, status_code: None, error: None }
    }

    fn error(mut self, error: impl ToString) -> Self {
        self.error = Some(error.to_string());
        self
    }
}

/// Healthy when a TCP connection to `target` (`host:port`) opens.
pub struct TcpCheck {
    name: String,
    target: String,
    timeout: Option<Duration>,
    critical: bool,
}

impl TcpCheck {
    pub fn new(
        name: impl Into<String>,
        target: impl Into<String>,
        timeout: Option<Duration>,
        critical: bool,
    ) -> Self {
        Self { name: name.into(), target: target.into(), timeout, critical }
    }
}

impl HealthCheck for TcpCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        Box::pin(async move {
            let details = DependencyDetails::new(DependencyKind::Tcp, &self.target);
            match tokio::net::TcpStream::connect(self.target.as_str()).await {
                Ok(_) => CheckOutcome::with_details(ComponentStatus::Healthy, &details),
                // Nothing listens there: the dependency is not available.
                Err(e) => CheckOutcome::with_details(ComponentStatus::Disconnected, &details.error(e)),
            }
        })
    }

    fn critical(&self) -> bool {
        self.critical
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// Healthy when `GET url` answers 2xx.
pub struct HttpCheck {
    name: String,
    url: String,
    client: Result<reqwest::Client, String>,
    timeout: Option<Duration>,
    critical: bool,
}

impl HttpCheck {
    /// The client goes straight to the dependency (no proxy from the
    /// environment): a health check must test the dependency, not a proxy.
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        timeout: Option<Duration>,
        critical: bool,
    ) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent(concat!("tandem-health/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string());
        Self { name: name.into(), url: url.into(), client, timeout, critical }
    }
}

impl HealthCheck for HttpCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckOutcome> + Send + '_>> {
        Box::pin(async move {
            let client = match &self.client {
                Ok(c) => c,
                Err(e) => return CheckOutcome::error(format!("cannot build HTTP client: {e}")),
            };
            let details = DependencyDetails::new(DependencyKind::Http, &self.url);
            match client.get(&self.url).send().await {
                Ok(resp) => {
                    let status = if resp.status().is_success() {
                        ComponentStatus::Healthy
                    } else {
                        ComponentStatus::Unhealthy
                    };
                    let details = DependencyDetails { status_code: Some(resp.status().as_u16()), ..details };
                    CheckOutcome::with_details(status, &details)
                }
                Err(e) => {
                    let status = if e.is_connect() {
                        ComponentStatus::Disconnected
                    } else {
                        ComponentStatus::Unhealthy
                    };
                    CheckOutcome::with_details(status, &details.error(e))
                }
            }
        })
    }

    fn critical(&self) -> bool {
        self.critical
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// The component for one `[[monitoring.checks]]` entry.
pub fn dependency_check(cfg: &DependencyCheckConfig) -> Box<dyn HealthCheck> {
    let timeout = cfg.timeout_seconds.map(|s| Duration::from_secs(s.clamp(1, 3600)));
    match cfg.kind {
        DependencyKind::Tcp => Box::new(TcpCheck::new(&cfg.name, &cfg.target, timeout, cfg.critical)),
        DependencyKind::Http => Box::new(HttpCheck::new(&cfg.name, &cfg.target, timeout, cfg.critical)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A port nothing listens on: bind one, note it, close it.
    async fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn tcp_check_against_a_live_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        let check = TcpCheck::new("db", addr.to_string(), None, true);
        let o = check.check().await;
        assert_eq!(o.status, ComponentStatus::Healthy, "{:?}", o.details);
        assert_eq!(o.details, serde_json::json!({ "kind": "tcp", "target": addr.to_string() }));
        accept.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn tcp_check_against_a_closed_port() {
        let port = closed_port().await;
        let check = TcpCheck::new("db", format!("127.0.0.1:{port}"), None, true);
        let o = check.check().await;
        assert_eq!(o.status, ComponentStatus::Disconnected);
        assert!(o.details["error"].is_string());
        assert_eq!(o.details["kind"], "tcp");
    }

    /// Serves one HTTP response with `status` to the first request.
    async fn one_shot_http(status: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = sock.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(reply.as_bytes()).await;
            }
        });
        format!("http://{addr}/health")
    }

    #[tokio::test]
    async fn http_check_2xx_is_healthy() {
        let url = one_shot_http("200 OK").await;
        let o = HttpCheck::new("api", url.clone(), None, true).check().await;
        assert_eq!(o.status, ComponentStatus::Healthy, "{:?}", o.details);
        assert_eq!(o.details, serde_json::json!({ "kind": "http", "target": url, "status_code": 200 }));
    }

    #[tokio::test]
    async fn http_check_5xx_is_unhealthy() {
        let url = one_shot_http("503 Service Unavailable").await;
        let o = HttpCheck::new("api", url, None, true).check().await;
        assert_eq!(o.status, ComponentStatus::Unhealthy);
        assert_eq!(o.details["status_code"], 503);
    }

    #[tokio::test]
    async fn http_check_refused_is_disconnected() {
        let port = closed_port().await;
        let o = HttpCheck::new("api", format!("http://127.0.0.1:{port}/"), None, true).check().await;
        assert_eq!(o.status, ComponentStatus::Disconnected, "{:?}", o.details);
        assert!(o.details["error"].is_string());
        assert!(o.details.get("status_code").is_none());
    }

    #[test]
    fn config_entries_become_checks() {
        let cfg = DependencyCheckConfig {
            name: "cache".into(),
            kind: DependencyKind::Tcp,
            target: "127.0.0.1:6379".into(),
            timeout_seconds: Some(2),
            critical: false,
        };
        let c = dependency_check(&cfg);
        assert_eq!(c.name(), "cache");
        assert!(!c.critical());
        assert_eq!(c.timeout(), Some(Duration::from_secs(2)));
        assert!(!c.local());
    }
}
