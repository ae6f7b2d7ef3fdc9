//! Everything that can go wrong talking to a Tandem server.

use serde_json::Value;
use tokio_tungstenite::tungstenite;

/// A failed connect, send or receive.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused a connect or a POST with an HTTP status and its
    /// `{"error":{"code","message","retry"}}` body (`code` is empty when the
    /// body was not in that shape; `message` then holds the raw body).
    ///
    /// `code` is Tandem's own (`invalid_token`, `server_full`…) or, for a
    /// connect the game's connect hook refused, the game's (`banned`…, or
    /// `backend_unavailable` when the hook could not be asked). `retry` is
    /// the refusal's word on trying again, when it gave one.
    #[error("HTTP {status} {code}: {message}")]
    Http { status: u16, code: String, message: String, retry: Option<bool> },
    /// The connection ended: a WebSocket close frame or an SSE `close` event
    /// (`code` set), or a stream or socket that just ended (`None`).
    #[error("connection closed (code {code:?}): {reason}")]
    Closed { code: Option<u16>, reason: String },
    /// Nothing arrived before the deadline.
    #[error("timed out")]
    Timeout,
    /// The server sent something the protocol does not allow.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The options do not make a valid URL or header.
    #[error("invalid connect options: {0}")]
    InvalidOptions(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    #[error("HTTP client error: {0}")]
    Request(#[from] reqwest::Error),
}

impl ClientError {
    /// Builds [`ClientError::Http`] from a refusal's status and body.
    pub fn from_http_body(status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let err = v.get("error")?;
            let code = err.get("code")?.as_str()?.to_owned();
            let message = err.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
            let retry = err.get("retry").and_then(Value::as_bool);
            Some((code, message, retry))
        });
        match parsed {
            Some((code, message, retry)) => Self::Http { status, code, message, retry },
            None => Self::Http {
                status,
                code: String::new(),
                message: String::from_utf8_lossy(body).into_owned(),
                retry: None,
            },
        }
    }

    /// The protocol error code of an HTTP refusal, if this is one.
    pub fn http_code(&self) -> Option<&str> {
        match self {
            Self::Http { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_body_is_parsed() {
        let e =
            ClientError::from_http_body(401, br#"{"error":{"code":"missing_token","message":"no token"}}"#);
        match e {
            ClientError::Http { status, code, message, retry } => {
                assert_eq!(status, 401);
                assert_eq!(code, "missing_token");
                assert_eq!(message, "no token");
                assert_eq!(retry, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_connect_hook_refusal_carries_the_games_code_and_retry() {
        let e = ClientError::from_http_body(
            403,
            br#"{"error":{"code":"banned","message":"cheating","retry":false}}"#,
        );
        assert!(
            matches!(&e, ClientError::Http { status: 403, code, retry: Some(false), .. } if code == "banned")
        );
        let e = ClientError::from_http_body(
            503,
            br#"{"error":{"code":"backend_unavailable","message":"","retry":true}}"#,
        );
        assert!(matches!(&e, ClientError::Http { status: 503, retry: Some(true), .. }));
        assert_eq!(e.http_code(), Some("backend_unavailable"));
    }

    #[test]
    fn non_json_body_is_kept_as_message() {
        let e = ClientError::from_http_body(502, b"bad gateway");
        assert_eq!(e.http_code(), Some(""));
        assert!(e.to_string().contains("bad gateway"));
    }
}
