//! Which browser origins may open `/ws`, `/sse` and `/sessions/*`.
//!
//! Same-origin requests and requests without `Origin` (non-browser clients)
//! are always allowed. With `server.allowed_origins` empty, loopback origins
//! are allowed too (local development); otherwise only the listed origins
//! (or `*`). This check is what stops cross-site WebSocket hijacking.

use actix_web::http::header::{HOST, HeaderMap, HeaderValue, ORIGIN};

/// The `Vary` of every CORS answer: what the answer depends on.
pub const CORS_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

#[derive(Debug, Clone)]
pub struct OriginPolicy {
    allowed: Vec<String>,
    any: bool,
}

impl OriginPolicy {
    pub fn new(allowed: &[String]) -> Self {
        Self {
            allowed: allowed.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
            any: allowed.iter().any(|o| o == "*"),
        }
    }

    /// Is a request with these headers allowed?
    pub fn allows_request(&self, headers: &HeaderMap) -> bool {
        match headers.get(ORIGIN).map(|o| o.to_str()) {
            None => true,
            Some(Ok(origin)) => {
                let host = headers.get(HOST).and_then(|h| h.to_str().ok());
                self.allows(origin, host)
            }
            Some(Err(_)) => false,
        }
    }

    /// The `Origin` a CORS answer names in `Access-Control-Allow-Origin`:
    /// the request's own, when it is allowed (what the CORS middleware of
    /// the actix-web routes answers too).
    pub fn cors_origin<'h>(&self, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        origin.to_str().is_ok_and(|o| self.allows(o, host)).then_some(origin)
    }

    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        if let (Some(oh), Some(h)) = (origin_host, host) {
            if oh.eq_ignore_ascii_case(h) {
                return true;
            }
        }
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        self.allowed.is_empty() && origin_host.is_some_and(is_loopback_host)
    }
}

fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host == "::1"
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_allows_same_origin_and_loopback_only() {
        let p = OriginPolicy::new(&[]);
        assert!(p.allows("http://127.0.0.1:3000", Some("127.0.0.1:8080")));
        assert!(p.allows("http://localhost:5173", None));
        assert!(p.allows("http://[::1]:80", None));
        assert!(p.allows("https://game.example", Some("game.example")), "same origin");
        assert!(!p.allows("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!p.allows("http://127.0.0.1.evil.example", None));
        assert!(!p.allows("null", None));
    }

    #[test]
    fn configured_list_replaces_loopback() {
        let p = OriginPolicy::new(&["https://game.example".into()]);
        assert!(p.allows("https://GAME.example/", None));
        assert!(!p.allows("http://localhost:3000", None));
        assert!(!p.allows("https://other.example", None));
        assert!(OriginPolicy::new(&["*".into()]).allows("https://any.example", None));
    }
}
