//! The operator token for `/monitoring/*` and `/metrics`.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use serde::Deserialize;

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Whether the request carries `expected` as `Authorization: Bearer <token>`
/// or `?token=`. An empty `expected` means the surface is open.
pub(super) fn authorized(req: &HttpRequest, expected: &str) -> bool {
    if expected.is_empty() {
        return true;
    }
    let from_header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let given = from_header.or_else(|| {
        actix_web::web::Query::<TokenQuery>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.into_inner().token)
    });
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
}

/// Whether `a` and `b` are equal, in time that does not depend on how many
/// leading bytes match, so response times do not help guess a secret byte
/// by byte. For secrets (operator token, API keys); the length of the
/// inputs is not hidden.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"secret", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn header_or_query() {
        let ok_header = TestRequest::default().insert_header((AUTHORIZATION, "Bearer s3")).to_http_request();
        assert!(authorized(&ok_header, "s3"));
        let lower = TestRequest::default().insert_header((AUTHORIZATION, "bearer s3")).to_http_request();
        assert!(authorized(&lower, "s3"));
        let basic = TestRequest::default().insert_header((AUTHORIZATION, "Basic s3")).to_http_request();
        assert!(!authorized(&basic, "s3"));
        let query = TestRequest::with_uri("/metrics?token=s3").to_http_request();
        assert!(authorized(&query, "s3"));
        let wrong = TestRequest::with_uri("/metrics?token=nope").to_http_request();
        assert!(!authorized(&wrong, "s3"));
        let none = TestRequest::default().to_http_request();
        assert!(!authorized(&none, "s3"));
        assert!(authorized(&none, ""));
    }
}
