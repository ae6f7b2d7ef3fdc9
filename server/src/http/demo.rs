//! The page a newcomer opens first (`GET /`) and the browser client it runs
//! (`GET /client/tandem.js`). Both are compiled into the binary: no CDN and
//! no build step at run time. The bundle is the committed
//! `client-sdk/js/dist/tandem.js`; `scripts/test.sh` checks it equals a fresh
//! build of `client-sdk/js/src`.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use actix_web::{HttpResponse, web};

/// The demo: join a room, chat between tabs, watch the transport and `seq`.
pub const PAGE: &str = include_str!("../../../client-sdk/js/demo/index.html");

/// The browser client, minified ESM.
pub const CLIENT: &str = include_str!("../../../client-sdk/js/dist/tandem.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page)).route("/client/tandem.js", web::get().to(client));
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn client() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CLIENT)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        // Revalidated on every load: a new binary serves a new client.
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
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
}
