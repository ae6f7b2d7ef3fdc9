//! The page a newcomer opens first (`GET /`) and the browser client it runs
//! (`GET /client/tandem.js`). Both are compiled into the binary: no CDN and
//! no build step at run time. The bundle is the committed
//! `client-sdk/js/dist/tandem.js`; `scripts/test.sh` checks it equals a fresh
//! build of `client-sdk/js/src`.

use std::sync::LazyLock;

use actix_cors::Cors;
use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

/// The demo: join a room, chat between tabs, watch the transport and `seq`.
pub const PAGE: &str = include_str!("../../../client-sdk/js/demo/index.html");

/// The browser client, minified ESM.
pub const CLIENT: &str = include_str!("../../../client-sdk/js/dist/tandem.js");

/// The route of the browser client.
pub const CLIENT_ROUTE: &str = "/client/tandem.js";

/// `client_cors`: who may `import` the client from another origin
/// (`server.allowed_origins`).
pub fn configure(cfg: &mut web::ServiceConfig, client_cors: Cors) {
    cfg.route("/", web::get().to(page))
        .service(web::resource(CLIENT_ROUTE).wrap(client_cors).route(web::get().to(client)));
}

async fn page(req: HttpRequest) -> HttpResponse {
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok());
    let csp =
        HeaderValue::from_str(&page_csp(host)).unwrap_or_else(|_| HeaderValue::from_static(NO_CSP_FALLBACK));
    asset("text/html; charset=utf-8", PAGE, csp)
}

async fn client() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CLIENT, HeaderValue::from_static(CLIENT_CSP))
}

/// Never served in practice ([`page_csp`] builds valid header text): the
/// strictest policy, should it ever not.
const NO_CSP_FALLBACK: &str = "default-src 'none'; frame-ancestors 'none'";

/// The client is a script, not a document: it runs under the policy of the
/// page that imports it. This one only keeps it from being framed or
/// rendered as anything else.
const CLIENT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The page's inline module script and stylesheet, by hash: nothing else
/// inline runs, and no other origin's script, style or connection.
static PAGE_HASHES: LazyLock<(String, String)> = LazyLock::new(|| {
    let script = inline_block(PAGE, "<script type=\"module\">", "</script>");
    let style = inline_block(PAGE, "<style>", "</style>");
    (csp_hash(script), csp_hash(style))
});

/// The demo page's policy: its own inline script and stylesheet (by hash),
/// the client module from this origin, and connections (`fetch`,
/// `EventSource`, `WebSocket`) to this origin only. `'self'` covers
/// `ws:`/`wss:` of the page's host in current browsers; the host is named
/// too for older ones, when it is a plain `host[:port]`.
fn page_csp(host: Option<&str>) -> String {
    let (script, style) = &*PAGE_HASHES;
    let sockets = match host.filter(|h| is_plain_host(h)) {
        Some(h) => format!(" ws://{h} wss://{h}"),
        None => String::new(),
    };
    format!(
        "default-src 'none'; script-src 'self' '{script}'; style-src '{style}'; \
         connect-src 'self'{sockets}; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// A `Host` that can be written into the policy as is: letters, digits and
/// `.-:[]` (names, IPv4, bracketed IPv6, a port), nothing that could end a
/// directive.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The text between the first `open` and the `close` after it.
fn inline_block<'a>(page: &'a str, open: &str, close: &str) -> &'a str {
    page.split_once(open).and_then(|(_, rest)| rest.split_once(close)).map_or("", |(inner, _)| inner)
}

/// A CSP source expression for inline content: `sha256-` and the base64
/// of its digest.
fn csp_hash(content: &str) -> String {
    format!("sha256-{}", base64(&Sha256::digest(content.as_bytes())))
}

/// Standard base64 with padding (the alphabet CSP hashes use).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn asset(content_type: &'static str, body: &'static str, csp: HeaderValue) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        // Revalidated on every load: a new binary serves a new client.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((CONTENT_SECURITY_POLICY, csp))
        .insert_header((REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .insert_header((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_embedded_client() {
        assert!(PAGE.contains("/client/tandem.js"));
        assert!(CLIENT.contains("TandemClient"), "the bundle exports the client");
        assert!(!PAGE.contains("https://"), "no CDN: everything comes from this server");
    }

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        // The digest of the empty string, as browsers print it.
        assert_eq!(csp_hash(""), "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn the_page_policy_allows_its_inline_script_and_style_and_nothing_else() {
        let csp = page_csp(Some("127.0.0.1:8080"));
        let script = inline_block(PAGE, "<script type=\"module\">", "</script>");
        assert!(script.contains("TandemClient"), "the module script was found");
        assert!(csp.contains(&format!("script-src 'self' '{}'", csp_hash(script))));
        assert!(!inline_block(PAGE, "<style>", "</style>").is_empty(), "the stylesheet was found");
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(PAGE.matches("<script").count(), 1, "one inline script: the hash covers it");
        assert!(!PAGE.contains(" style=\""), "inline style attributes need 'unsafe-inline'");
        HeaderValue::from_str(&csp).expect("valid header text");
    }

    #[test]
    fn a_host_that_could_end_a_directive_is_left_out() {
        assert!(is_plain_host("[::1]:8080") && is_plain_host("game.example.com"));
        for host in ["a;script-src *", "a b", "", "a'"] {
            assert!(!is_plain_host(host), "{host}");
            assert!(page_csp(Some(host)).contains("connect-src 'self';"));
        }
    }
}
