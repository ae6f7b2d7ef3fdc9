//! `tandem-floor`: what actix-web itself costs per held connection. It runs
//! the same actix versions, allocator and server settings as Tandem and
//! does nothing else: `GET /ws` answers the WebSocket handshake
//! (actix-http's `ws::handshake`) and `GET /sse` a `text/event-stream`
//! response; each writes one welcome-sized frame (so a client sees the same
//! bytes as from Tandem) and then holds a response-body stream that never
//! yields again. No sessions, no queues, no tasks, no timers.
//!
//! `--ws actix-ws` serves `/ws` through the `actix-ws` wrapper instead: its
//! `handle` spawns nothing, but holding the socket the way its documentation
//! shows means one task and one channel per connection — the "naive
//! actix-ws" server Tandem's WebSocket is compared with.
//!
//! Run: `tandem-floor --port 9091`, then `tandem-bench --url
//! http://127.0.0.1:9091 --pid <its pid> idle …`. Loopback only.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodyStream, MessageBody};
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::{Stream, StreamExt};

/// The same allocator as the `tandem` binary, so the two RSS figures differ
/// only by what Tandem keeps per connection.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, ValueEnum)]
enum WsImpl {
    /// actix-http's handshake and a held response body (what Tandem does).
    Held,
    /// actix-ws: a session and a message stream held by a spawned task.
    ActixWs,
}

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value_t = 9091)]
    port: u16,
    /// Worker threads (Tandem uses one per core).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How `/ws` holds its connections.
    #[arg(long, value_enum, default_value_t = WsImpl::Held)]
    ws: WsImpl,
}

/// A welcome of the size Tandem sends (its shape, fixed ids).
const WELCOME: &str = r#"{"type":"welcome","session_id":"s_0123456789abcdef","connection_id":"c_0123456789abcdef","player_id":"b0","transport":"websocket","resumed":false,"resync_required":false,"last_seq":0,"heartbeat_interval_ms":15000,"channels":["player:b0"]}"#;

/// Yields one chunk, then stays pending for as long as actix holds it.
/// Nothing wakes it: actix drops it when the peer goes away.
struct Held(Option<Bytes>);

impl Stream for Held {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None => Poll::Pending,
        }
    }
}

/// An unmasked text frame (server to client).
fn ws_text_frame(text: &str) -> Bytes {
    let mut frame = Vec::with_capacity(text.len() + 10);
    frame.push(0x81);
    let len = text.len();
    if len < 126 {
        frame.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        frame.push(126);
        frame.extend_from_slice(&n.to_be_bytes());
    } else {
        frame.push(127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(text.as_bytes());
    Bytes::from(frame)
}

async fn ws_held(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let body = BodyStream::new(Held(Some(ws_text_frame(WELCOME)))).boxed();
    Ok(response.message_body(body)?.into())
}

async fn ws_actix_ws(req: HttpRequest, body: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, mut messages) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(async move {
        if session.text(WELCOME).await.is_err() {
            return;
        }
        // Hold the connection until the client goes away; read and drop
        // whatever it sends.
        while let Some(Ok(_)) = messages.next().await {}
        let _ = session.close(None).await;
    });
    Ok(response)
}

async fn sse(_req: HttpRequest) -> HttpResponse {
    let event = Bytes::from(format!("event: welcome\ndata: {}\n\n", WELCOME.replace("websocket", "sse")));
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .streaming(Held(Some(event)))
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let ws_impl = cli.ws;
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let app = App::new().route("/sse", web::get().to(sse));
            match ws_impl {
                WsImpl::Held => app.route("/ws", web::get().to(ws_held)),
                WsImpl::ActixWs => app.route("/ws", web::get().to(ws_actix_ws)),
            }
        })
        .workers(cli.workers.max(1))
        // As Tandem: no per-worker cap below the open-file limit, a deep
        // backlog, the same request timeout.
        .max_connections(100_000)
        .backlog(4096)
        .client_request_timeout(Duration::from_secs(10))
        .bind(("127.0.0.1", cli.port))?;
        println!("tandem-floor listening on 127.0.0.1:{}", cli.port);
        server.run().await
    })
}
