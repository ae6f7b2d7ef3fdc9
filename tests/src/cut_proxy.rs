//! [`CutProxy`]: a small TCP proxy in front of a test server that does to
//! connections what real networks and proxies do: cut every live one at
//! once, freeze them (bytes stop, sockets stay open), refuse WebSocket
//! upgrades, or complete an upgrade and then pass nothing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::timeout;

/// The longest request or response head the proxy reads before deciding.
const MAX_HEAD: usize = 16 * 1024;

/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward everything.
    Pass,
    /// Answer WebSocket upgrades with 502 (what a proxy that does not
    /// speak WebSocket does); forward everything else.
    RefuseUpgrades,
    /// Forward the upgrade, pass the server's 101 back, then nothing more
    /// in either direction (a proxy that breaks upgraded streams).
    StallUpgrades,
    /// Answer every request with 502: the server is unreachable.
    RefuseAll,
}

struct State {
    upstream: Mutex<SocketAddr>,
    mode: Mutex<ProxyMode>,
    live: Mutex<Vec<Live>>,
    upgrades: AtomicU64,
    accepted: AtomicU64,
    /// Bytes from clients that frozen connections swallowed.
    frozen_client_bytes: AtomicU64,
}

struct Live {
    task: AbortHandle,
    frozen: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running proxy; dropping it stops accepting and cuts everything.
pub struct CutProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for CutProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutProxy").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

impl CutProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(State {
            upstream: Mutex::new(upstream),
            mode: Mutex::new(ProxyMode::Pass),
            live: Mutex::new(Vec::new()),
            upgrades: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            frozen_client_bytes: AtomicU64::new(0),
        });
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accept_state.accepted.fetch_add(1, Ordering::Relaxed);
                let (frozen, frozen_rx) = watch::channel(false);
                let task = tokio::spawn(handle(socket, Arc::clone(&accept_state), frozen_rx));
                let mut live = lock(&accept_state.live);
                live.retain(|l| !l.task.is_finished());
                live.push(Live { task: task.abort_handle(), frozen });
            }
        });
        Self { addr, state, accept }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *lock(&self.state.mode) = mode;
    }

    /// Sends new connections to another server (e.g. after a restart).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.state.upstream) = upstream;
    }

    /// Closes every live connection at once, both sides, without any
    /// goodbye; returns how many there were.
    pub fn cut_all(&self) -> usize {
        let live: Vec<Live> = lock(&self.state.live).drain(..).collect();
        let mut cut = 0;
        for l in live {
            if !l.task.is_finished() {
                cut += 1;
            }
            l.task.abort();
        }
        cut
    }

    /// Stops every live connection's bytes in both directions, sockets left
    /// open (a dead network path); new connections are not affected.
    pub fn freeze_all(&self) {
        for l in lock(&self.state.live).iter() {
            let _ = l.frozen.send(true);
        }
    }

    /// WebSocket upgrade requests seen so far.
    pub fn upgrades(&self) -> u64 {
        self.state.upgrades.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// Bytes clients have sent into frozen connections so far (they never
    /// reach the server): a request a client sent after
    /// [`freeze_all`](Self::freeze_all) is in flight once this grows.
    pub fn frozen_client_bytes(&self) -> u64 {
        self.state.frozen_client_bytes.load(Ordering::Relaxed)
    }
}

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

async fn handle(mut client: TcpStream, state: Arc<State>, frozen: watch::Receiver<bool>) {
    let _ = client.set_nodelay(true);
    let Ok(Some(head)) = timeout(HEAD_TIMEOUT, read_head(&mut client, Vec::new())).await else {
        return;
    };
    let upgrade = is_upgrade(&head);
    if upgrade {
        state.upgrades.fetch_add(1, Ordering::Relaxed);
    }
    let mode = *lock(&state.mode);
    match (mode, upgrade) {
        (ProxyMode::RefuseAll, _) | (ProxyMode::RefuseUpgrades, true) => {
            let _ = client.write_all(BAD_GATEWAY).await;
            let _ = client.shutdown().await;
            return;
        }
        _ => {}
    }
    let upstream = *lock(&state.upstream);
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        let _ = client.write_all(BAD_GATEWAY).await;
        return;
    };
    let _ = server.set_nodelay(true);
    if server.write_all(&head).await.is_err() {
        return;
    }
    if mode == ProxyMode::StallUpgrades && upgrade {
        // Pass only the response head (the 101), then hold both sockets
        // open and silent until cut.
        if let Ok(Some(response)) = timeout(HEAD_TIMEOUT, read_head(&mut server, Vec::new())).await {
            let end = head_end(&response).unwrap_or(response.len());
            let _ = client.write_all(&response[..end]).await;
        }
        std::future::pending::<()>().await;
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, frozen.clone(), Some(&state.frozen_client_bytes));
    let down = pump(server_read, client_write, frozen, None);
    tokio::join!(up, down);
}

/// Copies bytes until either side ends; holds them while frozen, counting
/// them in `swallowed` when given.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    swallowed: Option<&AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if *frozen.borrow_and_update() {
            if let Some(swallowed) = swallowed {
                swallowed.fetch_add(n as u64, Ordering::Relaxed);
            }
            // A frozen path never delivers again; wait to be cut.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Reads until the end of an HTTP head; the bytes read so far (head and
/// anything after it), or `None` when the peer ends first or the head is
/// too long.
async fn read_head(socket: &mut TcpStream, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    while head_end(&buf).is_none() {
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn is_upgrade(head: &[u8]) -> bool {
    let end = head_end(head).unwrap_or(head.len());
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    text.lines().any(|l| l.starts_with("upgrade:") && l.contains("websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_heads_are_recognised() {
        assert!(is_upgrade(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        ));
        assert!(!is_upgrade(b"GET /sse HTTP/1.1\r\nHost: x\r\n\r\nupgrade: websocket\r\n"));
        assert_eq!(head_end(b"a\r\n\r\nbody"), Some(5));
        assert_eq!(head_end(b"a\r\n"), None);
    }
}
