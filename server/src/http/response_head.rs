//! Response heads written straight to a socket the transports own: the
//! `101` of a WebSocket, the `200` of an SSE stream and the JSON errors
//! either answers, on connections the front door took from actix-http
//! (`server::front_door`). They carry what actix-http's encoder would
//! write for the same response: the status line, the response's headers,
//! the framing, `connection` and `date`.

use std::fmt::Write as _;

use actix_http::StatusCode;
use actix_http::header::{CONNECTION, CONTENT_LENGTH, DATE, HeaderMap, TRANSFER_ENCODING};
use actix_web::http::Version;
use bytes::{BufMut, Bytes, BytesMut};

use crate::http::error::HttpError;

/// How the body after the head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body and no length: a `101`.
    None,
    /// `content-length`.
    Length(usize),
    /// `transfer-encoding: chunked` (HTTP/1.1).
    Chunked,
    /// The body runs until the connection closes (HTTP/1.0).
    UntilClose,
}

/// What the `connection` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing: the version's default (HTTP/1.1 keeps the connection).
    Default,
    Close,
    Upgrade,
}

/// Appends the head of a response to `out`. `headers` are the response's
/// own; framing, `connection` and `date` are written here and skipped from
/// them.
pub fn put(
    out: &mut BytesMut,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    connection: Connection,
) {
    out.put_slice(if version == Version::HTTP_10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.put_slice(b"\r\n");
    match framing {
        Framing::None | Framing::UntilClose => {}
        Framing::Length(n) => {
            // Writing into a `BytesMut` cannot fail.
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Framing::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
    }
    match connection {
        Connection::Default => {}
        Connection::Close => out.put_slice(b"connection: close\r\n"),
        Connection::Upgrade => out.put_slice(b"connection: upgrade\r\n"),
    }
    for (name, value) in headers {
        if [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION, DATE].contains(name) {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"date: ");
    out.put_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    out.put_slice(b"\r\n\r\n");
}

/// The JSON error a route would answer: its status, headers and body.
pub fn error(e: &HttpError) -> (StatusCode, HeaderMap, Bytes) {
    let res = actix_web::ResponseError::error_response(e);
    (res.status(), res.headers().clone(), e.json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::{CONTENT_TYPE, HeaderValue};

    fn text(out: &BytesMut) -> &str {
        std::str::from_utf8(out).expect("ascii")
    }

    #[test]
    fn a_chunked_stream_head_skips_the_headers_written_here() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        let mut out = BytesMut::new();
        put(&mut out, Version::HTTP_11, StatusCode::OK, &headers, Framing::Chunked, Connection::Default);
        let head = text(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: text/event-stream\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.contains("\r\ndate: ") && head.ends_with(" GMT\r\n\r\n"), "{head}");
    }

    #[test]
    fn an_http_1_0_stream_has_no_framing_header() {
        let mut out = BytesMut::new();
        put(
            &mut out,
            Version::HTTP_10,
            StatusCode::OK,
            &HeaderMap::new(),
            Framing::UntilClose,
            Connection::Default,
        );
        let head = text(&out);
        assert!(head.starts_with("HTTP/1.0 200 OK\r\ndate: "), "{head}");
    }

    #[test]
    fn an_error_is_sized_and_may_close() {
        let e = HttpError::new(tandem_protocol::ErrorCode::MissingToken, "no token");
        let (status, headers, body) = error(&e);
        let mut out = BytesMut::new();
        put(&mut out, Version::HTTP_11, status, &headers, Framing::Length(body.len()), Connection::Close);
        let head = text(&out);
        assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\ncontent-length: "), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nwww-authenticate: Bearer\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
    }
}
