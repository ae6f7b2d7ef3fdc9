//! `/monitoring/`: the live page, embedded in the binary (HTML, CSS and
//! JavaScript as written, no build step, nothing fetched from elsewhere).
//!
//! The page itself is public: it holds no data. Its script fetches the
//! `/monitoring/*` JSON with the operator token as `Authorization: Bearer`,
//! so the token never travels in a URL the page builds; a `?token=` used to
//! open it is moved into the tab's storage and dropped from the address bar.

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use actix_web::{HttpRequest, HttpResponse};

const INDEX_HTML: &str = include_str!("../page/index.html");
const PAGE_JS: &str = include_str!("../page/page.js");
const PAGE_CSS: &str = include_str!("../page/page.css");

/// Only this origin's script, styles and fetches; no framing, no referrer
/// (a `?token=` must not leak through one).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(content_type)))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .insert_header((REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .body(body)
}

pub(super) async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", PAGE_JS)
}

pub(super) async fn stylesheet() -> HttpResponse {
    asset("text/css; charset=utf-8", PAGE_CSS)
}

/// `/monitoring` → `/monitoring/`, keeping the query, so relative asset
/// paths resolve.
pub(super) async fn redirect(req: HttpRequest) -> HttpResponse {
    let query = req.query_string();
    let location = if query.is_empty() { "/monitoring/".to_owned() } else { format!("/monitoring/?{query}") };
    match HeaderValue::from_str(&location) {
        Ok(value) => HttpResponse::PermanentRedirect()
            .insert_header((LOCATION, value))
            .insert_header((REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
            .finish(),
        Err(_) => HttpResponse::PermanentRedirect()
            .insert_header((LOCATION, HeaderValue::from_static("/monitoring/")))
            .finish(),
    }
}
