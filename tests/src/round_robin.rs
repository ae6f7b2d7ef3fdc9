//! [`RoundRobin`]: a TCP load balancer in front of several test servers,
//! with no stickiness at all: each new connection goes to the next upstream
//! in turn, skipping one that refuses the connection (a dead node), like a
//! plain L4 balancer with passive health checks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// How long one upstream may take to accept before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A running balancer; dropping it stops it and cuts every connection.
pub struct RoundRobin {
    addr: SocketAddr,
    tasks: JoinSet<()>,
    accepted: Arc<AtomicUsize>,
    upstreams: Arc<Mutex<Vec<SocketAddr>>>,
}

impl RoundRobin {
    /// Listens on a free loopback port and spreads connections over
    /// `upstreams` in turn.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstreams: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("its address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Mutex::new(upstreams));
        let mut tasks = JoinSet::new();
        let (count, current) = (Arc::clone(&accepted), Arc::clone(&shared));
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            let mut next = 0usize;
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let start = next;
                next = next.wrapping_add(1);
                let upstreams = current.lock().unwrap_or_else(PoisonError::into_inner).clone();
                conns.spawn(async move {
                    // Every upstream at most once, starting with this turn's.
                    for i in 0..upstreams.len() {
                        let target = upstreams[(start + i) % upstreams.len()];
                        if let Ok(Ok(mut server)) = timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
                        {
                            let mut client = client;
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                });
                // Reap finished connections so the set stays small.
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, tasks, accepted, upstreams: shared }
    }

    /// Where new connections go from now on (live ones stay where they are).
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        *self.upstreams.lock().unwrap_or_else(PoisonError::into_inner) = upstreams;
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}
