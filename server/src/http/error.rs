//! The JSON error every HTTP client and operator gets:
//! `{"error":{"code":"…","message":"…"}}` with a stable `code`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::backend::Refusal;
use crate::broker::BrokerError;
use crate::manager::AttachError;
use crate::session::protocol::{ErrorCode, ProtocolError};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HttpError {
    pub code: ErrorCode,
    pub message: String,
    /// The game's own refusal (a hook): its status, code and `retry`
    /// replace the code's own in the answer.
    pub refusal: Option<Box<Refusal>>,
}

/// The one JSON shape of every error body.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<bool>,
}

impl HttpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), refusal: None }
    }

    /// A game hook's refusal, answered with the game's code and `retry`.
    pub fn refused(r: Refusal) -> Self {
        let code = if r.status >= 500 { ErrorCode::BackendUnavailable } else { ErrorCode::Forbidden };
        Self { code, message: r.message.clone(), refusal: Some(Box::new(r)) }
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    /// The HTTP status of the error's code.
    pub fn status(&self) -> u16 {
        self.refusal.as_ref().map_or_else(|| status_of(self.code), |r| r.status)
    }

    /// The answer's JSON body.
    pub fn json(&self) -> bytes::Bytes {
        let (code, retry) = match &self.refusal {
            Some(r) => (r.code.as_str(), Some(r.retry)),
            None => (self.code.as_str(), None),
        };
        let body = Body { error: Detail { code, message: &self.message, retry } };
        // Plain strings and a bool: serializing cannot fail.
        serde_json::to_vec(&body).map(bytes::Bytes::from).unwrap_or_default()
    }
}

/// HTTP statuses live here, at the edge: everything below carries only a
/// code, and each code has one status (the table in `docs/protocol.md`).
pub fn status_of(code: ErrorCode) -> u16 {
    use ErrorCode as C;
    match code {
        C::MissingToken
        | C::InvalidToken
        | C::ExpiredToken
        | C::TokenNotYetValid
        | C::MissingApiKey
        | C::InvalidApiKey => 401,
        C::RevokedToken => 401,
        C::SubjectChanged => 403,
        C::Unauthorized => 401,
        C::Forbidden | C::OriginNotAllowed => 403,
        C::SessionNotFound | C::PlayerNotFound | C::NotFound | C::TransportDisabled => 404,
        C::TooLarge => 413,
        C::UnsupportedMediaType => 415,
        C::TooManyConnections | C::RateLimited => 429,
        C::RequestHeadTooLarge => 431,
        C::Internal => 500,
        C::ServerFull | C::Draining | C::BrokerUnavailable | C::BackendUnavailable => 503,
        C::BackendError => 502,
        C::BackendTimeout => 504,
        C::NoBackend => 501,
        C::Conflict => 409,
        C::InvalidJson
        | C::InvalidBody
        | C::UnknownType
        | C::InvalidMessage
        | C::InvalidChannel
        | C::UnsupportedFrame
        | C::TooManySubscriptions
        | C::TokensDisabled
        | C::InvalidUpgrade => 400,
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if self.status() == 401 {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.content_type("application/json").body(self.json())
    }
}

impl From<ProtocolError> for HttpError {
    fn from(e: ProtocolError) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<AuthError> for HttpError {
    fn from(e: AuthError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<AttachError> for HttpError {
    fn from(e: AttachError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl From<BrokerError> for HttpError {
    fn from(e: BrokerError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

/// Reads a JSON request body: `Content-Type: application/json` (or any
/// `+json` type) is required, so a browser's form or `text/plain` post
/// (which needs no CORS preflight) never reaches a handler; more than
/// `limit` bytes is refused with 413 before it is buffered.
pub async fn read_json_body(
    req: &actix_web::HttpRequest,
    payload: actix_web::web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, HttpError> {
    require_json(req)?;
    // An announced length over the limit is refused before a byte is read.
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    read_body(payload, limit).await
}

fn require_json(req: &actix_web::HttpRequest) -> Result<(), HttpError> {
    let content_type = req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = content_type.and_then(|ct| ct.split(';').next()).map(|e| e.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(e) if e.starts_with("application/") && e.ends_with("+json") => Ok(()),
        _ => Err(HttpError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "send the body as JSON with `Content-Type: application/json` (got {})",
                content_type.map_or_else(|| "none".to_owned(), |ct| format!("`{}`", truncate(ct, 64)))
            ),
        )),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Reads a request body, refusing more than `limit` bytes with 413.
async fn read_body(mut payload: actix_web::web::Payload, limit: usize) -> Result<bytes::Bytes, HttpError> {
    use futures_util::StreamExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HttpError::new(ErrorCode::InvalidBody, e.to_string()))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn too_large(limit: usize) -> HttpError {
    HttpError::new(ErrorCode::TooLarge, format!("body over {limit} bytes (transport.max_message_bytes)"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn domain_errors_map_to_statuses_here() {
        let all = [
            (HttpError::from(AuthError::MissingToken), 401, "missing_token"),
            (HttpError::from(AuthError::InvalidApiKey), 401, "invalid_api_key"),
            (HttpError::from(AuthError::Forbidden), 403, "forbidden"),
            (HttpError::from(AttachError::Draining), 503, "draining"),
            (HttpError::from(AttachError::ServerFull), 503, "server_full"),
            (HttpError::from(AttachError::TooManyConnections), 429, "too_many_connections"),
            (HttpError::from(AttachError::SessionForbidden), 403, "forbidden"),
            (HttpError::from(ProtocolError::new(ErrorCode::TooLarge, "x")), 413, "too_large"),
            (HttpError::from(ProtocolError::new(ErrorCode::RateLimited, "x")), 429, "rate_limited"),
            (HttpError::from(ProtocolError::new(ErrorCode::InvalidChannel, "x")), 400, "invalid_channel"),
            (HttpError::from(ProtocolError::new(ErrorCode::Draining, "x")), 503, "draining"),
            (
                HttpError::from(ProtocolError::new(ErrorCode::BrokerUnavailable, "x")),
                503,
                "broker_unavailable",
            ),
            (HttpError::from(BrokerError::Timeout(Duration::from_secs(1))), 503, "broker_unavailable"),
        ];
        for (e, status, code) in all {
            assert_eq!((e.status(), e.code.as_str()), (status, code));
        }
    }
}
