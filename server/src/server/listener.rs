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

use actix_http::{HttpService, KeepAlive, TlsAcceptorConfig};
use actix_server::{Server, ServerBuilder};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, map_config};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::AppConfig;
use actix_web::web;
use tokio::net::TcpStream;

use crate::http::state::AppState;
use crate::server::routes;
use crate::transport::ws;

/// Accept backlog: a burst of connects waits in the kernel instead of
/// being dropped into SYN retries.
const BACKLOG: i32 = 4096;

/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The TCP socket under a connection, for its socket options.
trait Tcp {
    fn tcp(&self) -> &TcpStream;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Tcp for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// The HTTP/1 service over sockets of type `$io` (TCP, or TLS over TCP), with the WebSocket upgrade service in
/// front of the actix-web app. A macro because actix-http's `.tcp()` and
/// `.rustls_0_23…()` are inherent methods of each socket's service type.
macro_rules! http_service {
    ($state:expr, $shutdown:expr, $user_timeout:expr, $io:ty) => {{
        let state = $state;
        let shutdown = $shutdown;
        let user_timeout = $user_timeout;
        let app = routes::build(state.clone()).into_factory().map_err(|e| e.error_response());
        HttpService::build()
            .keep_alive(KeepAlive::default())
            .client_request_timeout(REQUEST_TIMEOUT)
            .client_disconnect_timeout(Duration::from_secs(1))
            .graceful_shutdown_signal(move || {
                let signal = shutdown.clone();
                async move { signal.notified().await }
            })
            .on_connect_ext(move |io: &$io, _ext| {
                let sock = socket2::SockRef::from(Tcp::tcp(io));
                // A peer that vanishes mid-write is dropped by the kernel
                // once unacknowledged data is older than the heartbeat
                // timeout; heartbeats make sure there is such data.
                let _ = sock.set_tcp_user_timeout(Some(user_timeout));
                let _ = sock.set_tcp_nodelay(true);
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
    let builder = match tls {
        None => builder.listen("tandem", listener, move || {
            http_service!(state.clone(), shutdown.clone(), user_timeout, TcpStream).tcp()
        }),
        Some(tls) => builder.listen("tandem-tls", listener, move || {
            let acceptor = TlsAcceptorConfig::default().handshake_timeout(TLS_HANDSHAKE_TIMEOUT);
            http_service!(state.clone(), shutdown.clone(), user_timeout, TlsStream<TcpStream>)
                .rustls_0_23_with_config(tls.clone(), acceptor)
        }),
    };
    builder.map(ServerBuilder::run)
}
