//! [`RedisServer`]: a real `redis-server` (Debian's) on a loopback port of
//! its own ([`free_port`], kept across a restart) in a temporary directory,
//! with no persistence. A missing `redis-server` fails the test: cluster
//! behaviour is never skipped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ports::free_port;
use crate::wait::Deadline;

/// How long `redis-server` may take to answer `PING`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How often a starting `redis-server` is asked for `PING`.
const POLL: Duration = Duration::from_millis(20);

/// The `broker.cluster_key` of the test clusters (nodes with another key
/// cannot talk to them).
pub const CLUSTER_KEY: &str = "tandem-e2e-cluster-key-0123456789abcdef";

/// A running `redis-server`. Dropping it kills the process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Arguments beyond the port, the bind and no persistence.
    extra: Vec<String>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("port", &self.port).finish_non_exhaustive()
    }
}

fn binary() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = PathBuf::from(dir).join("redis-server");
        if p.is_file() {
            return p;
        }
    }
    panic!("redis-server is not installed (scripts/test.sh installs it: apt-get install redis-server)");
}

fn pong(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits for `PING`.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not answer in time.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut this = Self { child: None, port: free_port(), dir, extra: Vec::new() };
        this.spawn().await;
        this
    }

    /// Starts a replica of `master` (`--replicaof`), as a Sentinel setup has.
    pub async fn start_replica(master: &RedisServer) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let extra = vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()];
        let mut this = Self { child: None, port: free_port(), dir, extra };
        this.spawn().await;
        this
    }

    /// Starts a Sentinel watching `master` under `name` (quorum 2, a master
    /// is down after a second without an answer).
    pub async fn start_sentinel(master: &RedisServer, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        // Sentinel rewrites its configuration file: it lives in `dir`.
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {} 2\n\
             sentinel down-after-milliseconds {name} 1000\nsentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            master.port
        );
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let extra = vec![conf.display().to_string(), "--sentinel".into()];
        let mut this = Self { child: None, port, dir, extra };
        this.spawn().await;
        this
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) {
        let sentinel = self.extra.iter().any(|a| a == "--sentinel");
        let mut cmd = Command::new(binary());
        if sentinel {
            // The configuration file first, then `--sentinel`; the port is in it.
            cmd.args(&self.extra);
        } else {
            cmd.args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        self.child = Some(child);
        let deadline = Deadline::new("redis-server answers PING", START_DEADLINE).every(POLL);
        while !pong(self.addr()) {
            deadline.tick("").await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process (SIGSTOP): it keeps its connections and answers
    /// nothing until [`RedisServer::resume`]; what was sent meanwhile it
    /// runs then.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused process run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().map(std::process::Child::id).expect("redis-server is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Runs one command as any other Redis client would (RESP over a
    /// fresh connection) and returns the first line of the answer.
    ///
    /// # Panics
    /// When Redis cannot be reached or does not answer within 5 s.
    pub fn command(&self, args: &[&[u8]]) -> String {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        let mut s =
            TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
        s.write_all(&req).expect("send to redis");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        // Bounded: an answer's first line, at most 4 KiB.
        while line.len() < 4096 && s.read_exact(&mut byte).is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).trim_end().to_owned()
    }

    /// Starts it again on the same port (empty: nothing was saved).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
