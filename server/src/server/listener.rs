//! The client listener: actix-server accepting, actix-http speaking HTTP/1,
//! WebSocket upgrades handed to [`transport::ws::upgrade`](crate::transport::ws::upgrade)
//! with the socket, and every other request to the actix-web app.
//!
//! This is what `actix_web::HttpServer` assembles, with one addition it
//! has no hook for: the upgrade service. With `server.tls` the same
//! service runs over rustls (`tls.rs`): the handshake happens before
//! HTTP, so upgrades and SSE see a plain byte stream either way; without
//! it the plain TCP service is built as before, with nothing of TLS on
//! its path.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_http::{HttpService, KeepAlive};
use actix_server::{Server, ServerBuilder};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_tls::accept::rustls_0_23::{Acceptor, TlsStream};
use actix_web::dev::AppConfig;
use actix_web::web;
use tokio::net::TcpStream;

use crate::http::state::AppState;
use crate::server::front_door::{self, FrontDoor, REQUEST_TIMEOUT};
use crate::server::routes;
use crate::transport::ws;

/// Accept backlog: a burst of connects waits in the kernel instead of
/// being dropped into SYN retries.
const BACKLOG: i32 = 4096;

/// How long a client may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What actix's graceful stop waits for once clients are drained.
pub const STOP_TIMEOUT_SECONDS: u64 = 1;

/// Binds `addr` with [`BACKLOG`] (port 0 picks a free one).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The HTTP/1 service over a guarded socket of type `$io` (TCP, or TLS
/// over TCP), with the WebSocket upgrade service in front of the actix-web
/// app. A macro because the service's type names the socket and its
/// closures, and only the two uses below need it.
macro_rules! http_service {
    ($state:expr, $shutdown:expr, $io:ty) => {{
        let state = $state;
        let shutdown = $shutdown;
        let app = routes::build(state.clone()).into_factory().map_err(|e| e.error_response());
        HttpService::build()
            .keep_alive(KeepAlive::default())
            .client_request_timeout(REQUEST_TIMEOUT)
            .client_disconnect_timeout(Duration::from_secs(1))
            // A client's end of stream is its leaving: an SSE stream (or
            // any response in progress) ends at once instead of at the
            // first heartbeat that fails, so a reload is not refused by
            // the connection it replaces. No HTTP/1 client Tandem serves
            // half-closes and then waits for an answer.
            .h1_allow_half_closed(false)
            .graceful_shutdown_signal(move || {
                let signal = shutdown.clone();
                async move { signal.notified().await }
            })
            .upgrade(ws::upgrade::<$io>(state))
            .finish(map_config(app, |()| AppConfig::default()))
    }};
}

/// The client server on `listener`, not yet running; TLS over it when
/// `tls` is given (`server.tls`), plain TCP otherwise.
pub fn serve(
    state: &web::Data<AppState>,
    listener: TcpListener,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let config = &state.config;
    let user_timeout = Duration::from_secs(config.transport.heartbeat_timeout_seconds);
    let builder = ServerBuilder::default()
        .workers(workers)
        .disable_signals()
        // Clients are drained (up to the grace) before the stop; what is
        // left then gets one second, so the listener never closes long
        // before the process exits.
        .shutdown_timeout(STOP_TIMEOUT_SECONDS)
        // Per worker; the global cap (server.max_connections) is ours, with
        // room above it so refusals are answered instead of dropped.
        .max_concurrent_connections(config.server.max_connections.saturating_add(1024));
    let shutdown = builder.graceful_shutdown_signal();
    let state = state.clone();
    let door = FrontDoor {
        app: state.clone().into_inner(),
        limit: config.server.max_request_head_bytes,
        user_timeout,
    };
    let builder = match tls {
        None => builder.listen("tandem", listener, move || {
            let http = http_service!(state.clone(), shutdown.clone(), TcpStream);
            front_door::factory(door.clone(), http.map_err(|_| ()))
        }),
        Some(mut tls) => {
            // HTTP/1.1 is all Tandem speaks; a client offering h2 alone is
            // refused in the handshake instead of misread after it.
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.listen("tandem-tls", listener, move || {
                let http = http_service!(state.clone(), shutdown.clone(), TlsStream<TcpStream>);
                let mut acceptor = Acceptor::new(tls.clone());
                acceptor.set_handshake_timeout(TLS_HANDSHAKE_TIMEOUT);
                // A failed handshake or a broken connection ends here;
                // neither has anyone to answer.
                acceptor.map_err(|_| ()).and_then(front_door::factory(door.clone(), http.map_err(|_| ())))
            })
        }
    };
    builder.map(ServerBuilder::run)
}
