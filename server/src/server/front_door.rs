//! The first request of every client connection, read before actix-http.
//!
//! Idle SSE streams and WebSockets are most of what a node holds, and a
//! response held inside actix-http's dispatcher costs its buffers and
//! request state, ~10 KiB each. So the front door reads the first request
//! head itself (with `httparse`, the parser actix-http uses) and serves
//! `GET /sse` and WebSocket upgrades on the socket it owns
//! ([`sse::serve`], [`ws::serve`]); every other request goes to actix-http
//! with the bytes already read ([`HeadGuard::with_read`]), and so does the
//! rest of a connection after an SSE error answer. An SSE request or an
//! upgrade later on a keep-alive connection is still served, by actix-web's
//! route and actix-http's upgrade service.
//!
//! [`classify`] is the decision, without I/O; [`FrontDoor`] the glue.

use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::Protocol;
use actix_http::header::{HeaderName, HeaderValue};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::RequestHead;
use actix_web::http::{Method, Uri, Version};
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::http::head_guard::{HeadGuard, MAX_HEADERS};
use crate::http::state::AppState;
use crate::transport::sse;
use crate::transport::ws::{self, Socket};

/// How long a client may take to send its first request head; a client
/// that has not by then is disconnected (slowloris). actix-http applies the
/// same bound to the requests after it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes asked of the socket per read while the first head is incomplete.
const READ_CHUNK: usize = 2 * 1024;

/// Where a connection's first request goes.
#[derive(Debug)]
pub enum Door {
    /// `GET /sse` without a body or an upgrade: served on the socket.
    Sse(Box<RequestHead>),
    /// `GET` with `Upgrade: websocket` (any path, as actix-http's upgrade
    /// service gets it): answered on the socket.
    WebSocket(Box<RequestHead>),
    /// Anything else, an oversized or malformed head included: actix-http
    /// (behind the head guard) answers it as it answers any request.
    Http,
}

/// What the bytes read so far say.
#[derive(Debug)]
pub enum Step {
    /// The head is not complete and within the limit: read more.
    More,
    /// Where the request goes, and the length of its head.
    Route(Door, usize),
}

/// The decision for a connection's first bytes (`limit`:
/// `server.max_request_head_bytes`).
pub fn classify(buf: &[u8], limit: usize, peer: Option<SocketAddr>) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= limit => len,
        Ok(httparse::Status::Partial) if buf.len() <= limit => return Step::More,
        _ => return Step::Route(Door::Http, 0),
    };
    let door = door(&req, peer).unwrap_or(Door::Http);
    Step::Route(door, len)
}

/// Which transport a complete head asks for; `None` for actix-http.
fn door(req: &httparse::Request<'_, '_>, peer: Option<SocketAddr>) -> Option<Door> {
    if req.method? != "GET" {
        return None;
    }
    let (mut websocket, mut upgrade, mut body) = (false, false, false);
    for h in req.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
            websocket |= value.eq_ignore_ascii_case(b"websocket");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            body = true;
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body |= value != b"0";
        }
    }
    let path = req.path?;
    let sse = !upgrade && path.split('?').next() == Some(sse::ROUTE);
    if body || !(websocket || sse) {
        return None;
    }
    let mut head = RequestHead::default();
    head.method = Method::GET;
    head.uri = Uri::try_from(path).ok()?;
    head.version = if req.version? == 0 { Version::HTTP_10 } else { Version::HTTP_11 };
    head.peer_addr = peer;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        head.headers_mut().append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let head = Box::new(head);
    Some(if websocket { Door::WebSocket(head) } else { Door::Sse(head) })
}

/// The TCP socket under a connection, for its address and options.
pub trait Tcp {
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

/// What actix-http's service is called with.
pub type HttpIo<Io> = (HeadGuard<Io>, Protocol, Option<SocketAddr>);

/// The front door of one listener.
#[derive(Clone)]
pub struct FrontDoor {
    pub app: Arc<AppState>,
    /// `server.max_request_head_bytes`.
    pub limit: usize,
    /// TCP_USER_TIMEOUT: a peer that vanishes mid-write is dropped by the
    /// kernel once unacknowledged data is older than the heartbeat
    /// timeout; heartbeats make sure there is such data.
    pub user_timeout: Duration,
}

/// The listener's service for sockets of type `Io`: the front door, then
/// actix-http's service `http` for what it does not serve itself.
pub fn factory<Io, F>(
    door: FrontDoor,
    http: F,
) -> impl ServiceFactory<Io, Config = (), Response = (), Error = (), InitError = ()>
where
    Io: Socket + Tcp,
    F: ServiceFactory<HttpIo<Io>, Config = (), Response = ()> + 'static,
    F::Service: 'static,
{
    fn_factory(move || {
        let door = door.clone();
        let http = http.new_service(());
        async move {
            let http = Rc::new(http.await.map_err(|_| ())?);
            Ok::<_, ()>(fn_service(move |io: Io| door.clone().serve(io, Rc::clone(&http))))
        }
    })
}

/// What a connection's first request made of it.
enum Opened<Io: Socket> {
    Sse(Pin<Box<sse::link::Link<Io>>>),
    WebSocket(Pin<Box<ws::link::Link<Io>>>),
    /// For actix-http: the socket and what was read from it.
    Http(Io, BytesMut),
    Done,
}

impl FrontDoor {
    /// One connection, from its first byte to its end. The opening (read,
    /// parse, checks, answer) runs in a box of its own that is freed once
    /// it is done; the connection's task then holds only the boxed link,
    /// so its size is a few words whatever the opening needed.
    async fn serve<Io, S>(self, io: Io, http: Rc<S>) -> Result<(), ()>
    where
        Io: Socket + Tcp,
        S: Service<HttpIo<Io>, Response = ()> + 'static,
    {
        let peer = io.tcp().peer_addr().ok();
        match Box::pin(self.open(io, peer)).await {
            Opened::Sse(link) => link.await,
            Opened::WebSocket(link) => link.await,
            Opened::Http(io, read) => {
                let guarded = HeadGuard::with_read(io, self.limit, read);
                let _ = Box::pin(http.call((guarded, Protocol::Http1, peer))).await;
            }
            Opened::Done => {}
        }
        Ok(())
    }

    async fn open<Io: Socket + Tcp>(&self, mut io: Io, peer: Option<SocketAddr>) -> Opened<Io> {
        let sock = socket2::SockRef::from(io.tcp());
        let _ = sock.set_tcp_user_timeout(Some(self.user_timeout));
        let _ = sock.set_tcp_nodelay(true);
        let Some(((door, head_len), read)) = first_head(&mut io, self.limit, peer).await else {
            return Opened::Done;
        };
        let app = Arc::clone(&self.app);
        match door {
            Door::Sse(head) => match sse::open(app, head, io, behind(read, head_len)).await {
                sse::Opened::Stream(link) => Opened::Sse(link),
                sse::Opened::KeepAlive(io, rest) => Opened::Http(io, rest),
                sse::Opened::Done => Opened::Done,
            },
            Door::WebSocket(head) => {
                let early = behind(read, head_len);
                match ws::handshake(app, head, io, early, BytesMut::new()).await {
                    Some(link) => Opened::WebSocket(Box::pin(link)),
                    None => Opened::Done,
                }
            }
            Door::Http => Opened::Http(io, read),
        }
    }
}

/// What the client sent behind its first head, in a buffer of its own: the
/// read buffer is freed, not kept alive by a slice of it for the life of
/// the connection.
fn behind(read: BytesMut, head_len: usize) -> BytesMut {
    match read.get(head_len..) {
        Some(rest) if !rest.is_empty() => BytesMut::from(rest),
        _ => BytesMut::new(),
    }
}

/// Reads until the first head is complete or over the limit, or the
/// client stops sending (end of stream: actix-http answers what came).
/// `None` when the client sent no complete head within [`REQUEST_TIMEOUT`].
async fn first_head<Io: Socket>(
    io: &mut Io,
    limit: usize,
    peer: Option<SocketAddr>,
) -> Option<((Door, usize), BytesMut)> {
    let mut read = BytesMut::new();
    let reading = async {
        loop {
            read.reserve(READ_CHUNK);
            match io.read_buf(&mut read).await {
                Ok(0) => return Some((Door::Http, 0)),
                Ok(_) => {}
                Err(_) => return None,
            }
            if let Step::Route(door, len) = classify(&read, limit, peer) {
                return Some((door, len));
            }
        }
    };
    let door = tokio::time::timeout(REQUEST_TIMEOUT, reading).await.ok()??;
    Some((door, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 8192;

    fn route(raw: &str) -> Step {
        classify(raw.as_bytes(), LIMIT, None)
    }

    #[test]
    fn get_sse_is_served_here_with_its_query_and_version() {
        let raw = "GET /sse?player_id=a HTTP/1.0\r\nhost: x\r\nlast-event-id: 7\r\n\r\nrest";
        let Step::Route(Door::Sse(head), len) = route(raw) else { panic!("{:?}", route(raw)) };
        assert_eq!(len, raw.len() - 4);
        assert_eq!(head.uri.query(), Some("player_id=a"));
        assert_eq!(head.version, Version::HTTP_10);
        assert_eq!(head.headers().get("last-event-id").map(|v| v.as_bytes()), Some(&b"7"[..]));
    }

    #[test]
    fn upgrades_to_websocket_are_answered_here_on_any_path() {
        for path in ["/ws", "/elsewhere"] {
            let raw = format!("GET {path} HTTP/1.1\r\nUpgrade:  WebSocket \r\nConnection: upgrade\r\n\r\n");
            assert!(matches!(route(&raw), Step::Route(Door::WebSocket(_), _)), "{path}");
        }
    }

    #[test]
    fn everything_else_goes_to_actix_http() {
        for raw in [
            "POST /sse HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
            "GET /sse/ HTTP/1.1\r\n\r\n",
            "GET /sses HTTP/1.1\r\n\r\n",
            "GET /sse HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET /sse HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
            "GET /sse HTTP/1.1\r\nupgrade: h2c\r\n\r\n",
            "OPTIONS /sse HTTP/1.1\r\n\r\n",
            "GET /health/live HTTP/1.1\r\n\r\n",
            "POST /ws HTTP/1.1\r\nupgrade: websocket\r\ncontent-length: 0\r\n\r\n",
            "GET /sse HTTP/1.1\r\nbad header\r\n\r\n",
        ] {
            assert!(matches!(route(raw), Step::Route(Door::Http, _)), "{raw:?}: {:?}", route(raw));
        }
        assert!(matches!(
            route("GET /sse HTTP/1.1\r\ncontent-length: 0\r\n\r\n"),
            Step::Route(Door::Sse(_), _)
        ));
    }

    #[test]
    fn an_incomplete_head_is_read_on_until_the_limit() {
        assert!(matches!(route("GET /sse HTTP/1.1\r\nhost: x\r\n"), Step::More));
        let long = format!("GET /sse HTTP/1.1\r\nx-filler: {}", "y".repeat(LIMIT));
        assert!(matches!(route(&long), Step::Route(Door::Http, 0)), "over the limit: the head guard's 431");
        let headers: String = (0..MAX_HEADERS + 1).map(|i| format!("x-h{i}: v\r\n")).collect();
        let many = format!("GET /sse HTTP/1.1\r\n{headers}\r\n");
        assert!(matches!(route(&many), Step::Route(Door::Http, 0)), "too many headers: the 431 too");
    }
}

#[cfg(test)]
mod link_sizes {
    use super::*;

    /// What an idle connection's task holds besides Tandem's session state
    /// is its boxed link: keep it small (docs/benchmarks.md, "The front
    /// door").
    #[test]
    fn links_stay_small() {
        let sse = std::mem::size_of::<sse::link::Link<TcpStream>>();
        let ws = std::mem::size_of::<ws::link::Link<TcpStream>>();
        println!("SSE link {sse} bytes, WebSocket link {ws} bytes");
        assert!(sse <= 160, "SSE link {sse} bytes");
        assert!(ws <= 384, "WebSocket link {ws} bytes");
    }
}
