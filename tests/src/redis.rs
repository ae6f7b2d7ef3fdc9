//! [`RedisServer`]: a real `redis-server` (Debian's) on a loopback port of
//! its own ([`free_port`], kept across a restart) in a temporary directory,
//! with no persistence. A missing `redis-server` fails the test: cluster
//! behaviour is never skipped.
//!
//! [`RedisCluster`]: three such servers as the masters of a real Redis
//! Cluster (no replicas), created with `redis-cli --cluster create`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
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

/// `name` on `PATH` or in the Debian directories; `None` when missing.
fn find(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.is_file())
}

fn binary() -> PathBuf {
    find("redis-server").unwrap_or_else(|| {
        panic!("redis-server is not installed (scripts/test.sh installs it: apt-get install redis-server)")
    })
}

fn cli_binary() -> PathBuf {
    find("redis-cli").unwrap_or_else(|| {
        panic!(
            "redis-cli is not installed (scripts/test.sh installs redis-server, which brings it: \
             apt-get install redis-tools)"
        )
    })
}

/// How long one `redis-cli` run may take (`--cluster create` waits for
/// the nodes to meet, which takes about a second).
const CLI_DEADLINE: Duration = Duration::from_secs(20);

/// At most this much of a `redis-cli` output is kept.
const CLI_OUTPUT_LIMIT: u64 = 1 << 20;

/// Reads `pipe` to its end (at most [`CLI_OUTPUT_LIMIT`]) on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(pipe) = pipe {
            let _ = pipe.take(CLI_OUTPUT_LIMIT).read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

/// Runs `redis-cli args` to completion, at most for `wait`.
///
/// # Panics
/// When it cannot start or is still running at the deadline (it is killed).
fn run_cli(args: &[String], wait: Duration) -> Output {
    let mut child = Command::new(cli_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start redis-cli: {e}"));
    // Read on threads: a full pipe must not stall it, nor a hung one us.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + wait;
    let Ok(out) = stdout.recv_timeout(wait) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-cli {args:?} did not finish within {wait:?}");
    };
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    let err = stderr.recv_timeout(left.max(Duration::from_millis(100))).unwrap_or_default();
    let status = child.wait().unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}"));
    Output { status, stdout: out, stderr: err }
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

    /// Starts a node of a Redis Cluster, not yet part of one (see
    /// [`RedisCluster::start`]): `nodes.conf` in its own directory, and
    /// its cluster bus on a free port of its own (`--cluster-port`, Redis
    /// 7), not on port + 10000, which nothing has reserved.
    pub async fn start_cluster_node(node_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let extra = vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-config-file".into(),
            dir.path().join("nodes.conf").display().to_string(),
            "--cluster-node-timeout".into(),
            node_timeout.as_millis().to_string(),
            "--cluster-port".into(),
            free_port().to_string(),
        ];
        let mut this = Self { child: None, port: free_port(), dir, extra };
        this.spawn().await;
        this
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT args` and returns its stdout
    /// (not a terminal: one line per array element, no quotes or type
    /// prefixes).
    ///
    /// # Panics
    /// When `redis-cli` is missing, fails, or takes more than 20 s.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-h".to_owned(), "127.0.0.1".to_owned(), "-p".to_owned(), self.port.to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let out = run_cli(&all, CLI_DEADLINE);
        assert!(
            out.status.success(),
            "redis-cli {all:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
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

/// How long a node may go unanswered before the others mark it failing.
const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a new cluster may take to report `cluster_state:ok` everywhere.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);

/// A real Redis Cluster of three masters and no replicas, each a
/// [`RedisServer`] on loopback. Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    masters: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster nodes, joins them with `redis-cli --cluster
    /// create` (16384 slots split three ways) and waits until every node
    /// says `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing, the create fails, or
    /// the cluster is not ok within 20 s.
    pub async fn start() -> Self {
        let mut masters = Vec::with_capacity(3);
        for _ in 0..3 {
            masters.push(RedisServer::start_cluster_node(CLUSTER_NODE_TIMEOUT).await);
        }
        let this = Self { masters };
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(this.seeds());
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let out = run_cli(&args, CLI_DEADLINE);
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Deadline::new("every Redis Cluster node says cluster_state:ok", CLUSTER_DEADLINE);
        loop {
            let infos: Vec<String> =
                (0..this.masters.len()).map(|i| this.cli(i, &["CLUSTER", "INFO"])).collect();
            if infos.iter().all(|info| info.lines().any(|l| l.trim_end() == "cluster_state:ok")) {
                break;
            }
            let states: Vec<&str> =
                infos.iter().map(|info| info.lines().next().unwrap_or("").trim_end()).collect();
            deadline.tick(format!("{states:?}")).await;
        }
        this
    }

    /// The seed nodes as a client is told them: `127.0.0.1:PORT` each.
    pub fn seeds(&self) -> Vec<String> {
        self.masters.iter().map(RedisServer::host_port).collect()
    }

    /// The three masters.
    pub fn masters(&self) -> &[RedisServer] {
        &self.masters
    }

    /// Master `i`, to kill, pause or restart it.
    ///
    /// # Panics
    /// When `i` is not 0, 1 or 2.
    pub fn master_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.masters[i]
    }

    /// Runs `redis-cli -p PORT args` on master `i` (no cluster
    /// redirection: what that node holds itself) and returns its stdout.
    ///
    /// # Panics
    /// As [`RedisServer::cli`], or when `i` is not 0, 1 or 2.
    pub fn cli(&self, i: usize, args: &[&str]) -> String {
        self.masters[i].cli(args)
    }
}
