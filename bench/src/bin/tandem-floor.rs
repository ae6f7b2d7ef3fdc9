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
//! `--ws upgrade` serves `/ws` the way Tandem does: actix-http hands the
//! upgrade request and the connection to an upgrade service (before
//! actix-web), which writes the `101` and the welcome and then keeps only
//! the socket, reading and dropping what the client sends until it goes.
//! The floor for Tandem's WebSocket.
//!
//! Run: `tandem-floor --port 9091`, then `tandem-bench --url
//! http://127.0.0.1:9091 --pid <its pid> idle …`. Loopback only.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Framed;
use actix_http::HttpService;
use actix_http::body::BodySize;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::body::{BodyStream, MessageBody};
use actix_web::dev::AppConfig;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;

/// The same allocator as the `tandem` binary, so the two RSS figures differ
/// only by what Tandem keeps per connection.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, ValueEnum)]
enum WsImpl {
    /// actix-http's handshake and a held response body.
    Held,
    /// actix-ws: a session and a message stream held by a spawned task.
    ActixWs,
    /// actix-http's upgrade service keeping only the socket (what Tandem does).
    Upgrade,
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

type Upgrade = (actix_http::Request, Framed<TcpStream, actix_http::h1::Codec>);

/// The upgrade service: `101`, welcome, then the bare socket until the
/// client goes.
async fn ws_upgrade(upgrade: Upgrade) -> Result<(), Infallible> {
    let _ = hold_upgraded(upgrade).await;
    Ok(())
}

async fn hold_upgraded((req, mut framed): Upgrade) -> std::io::Result<()> {
    let res = match actix_http::ws::handshake(req.head()) {
        Ok(mut res) => res.finish().drop_body(),
        Err(_) => actix_http::Response::bad_request().drop_body(),
    };
    drop(req);
    framed.feed(actix_http::h1::Message::Item((res, BodySize::None))).await?;
    framed.flush().await?;
    let io = framed.into_parts().io;
    io.writable().await?;
    io.try_write(&ws_text_frame(WELCOME))?;
    let mut sink = [0u8; 512];
    loop {
        io.readable().await?;
        match io.try_read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// actix-server and actix-http assembled by hand, as Tandem's listener is:
/// `actix_web::HttpServer` has no upgrade hook.
async fn serve_upgrade(cli: &Cli) -> std::io::Result<()> {
    let server = actix_server::Server::build()
        .workers(cli.workers.max(1))
        .max_concurrent_connections(100_000)
        .backlog(4096)
        .bind("tandem-floor", ("127.0.0.1", cli.port), || {
            let app =
                App::new().route("/sse", web::get().to(sse)).into_factory().map_err(|e| e.error_response());
            HttpService::build()
                .client_request_timeout(Duration::from_secs(10))
                .upgrade(fn_service(ws_upgrade))
                .finish(map_config(app, |()| AppConfig::default()))
                .tcp()
        })?;
    println!("tandem-floor listening on 127.0.0.1:{}", cli.port);
    server.run().await
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let ws_impl = cli.ws;
    actix_web::rt::System::new().block_on(async move {
        if matches!(ws_impl, WsImpl::Upgrade) {
            return serve_upgrade(&cli).await;
        }
        let server = HttpServer::new(move || {
            let app = App::new().route("/sse", web::get().to(sse));
            match ws_impl {
                WsImpl::ActixWs => app.route("/ws", web::get().to(ws_actix_ws)),
                WsImpl::Held | WsImpl::Upgrade => app.route("/ws", web::get().to(ws_held)),
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
