//! [`TestServer`]: a real `tandem` process on a loopback port, with its own
//! config file and log file in a temporary directory.
//!
//! The process's stdout (JSON logs) and stderr are drained by background
//! threads into memory, so a chatty server never blocks on a full pipe and
//! tests can wait for a log line instead of sleeping.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tandem_client::{ConnectOptions, TlsTrust};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout_at};

use crate::binary::tandem_bin;

/// The backend API key every test server accepts.
pub const API_KEY: &str = "test-api-key-0123456789";

/// How long the server may take to say it listens.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How often [`TestServer::wait_exit`] and file polls look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A signal for [`TestServer::send_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Term => "TERM",
            Self::Int => "INT",
            Self::Kill => "KILL",
        }
    }
}

/// The config of a test server, one `[section]` block per section.
///
/// Values are TOML literals (`"4"`, `"\"text\""`, `"[\"a\"]"`); a later
/// [`set`](Self::set) of the same key replaces the earlier one, so tests can
/// override the harness's own keys.
#[derive(Debug, Clone)]
pub struct TestServerBuilder {
    sections: BTreeMap<String, BTreeMap<String, String>>,
    /// The CA (PEM) a TLS server's certificate chains to: set when the
    /// server serves `server.tls`, so the harness speaks https to it.
    tls_ca: Option<String>,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TestServerBuilder {
    /// Loopback on an ephemeral port and the test API key; the log file is
    /// added by [`start`](Self::start) or [`write_config`](Self::write_config).
    pub fn new() -> Self {
        Self { sections: BTreeMap::new(), tls_ca: None }.set("server", "bind", "\"127.0.0.1:0\"").set(
            "auth",
            "api_keys",
            &format!("[\"{API_KEY}\"]"),
        )
    }

    /// Sets `section.key = value` (a TOML literal).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        self.sections.entry(section.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
        self
    }

    /// A node of the cluster on `redis`: the Redis broker, and the cluster
    /// key every test node shares.
    pub fn redis(self, redis: &crate::RedisServer) -> Self {
        self.set("broker", "kind", "\"redis\"").set("broker", "url", &format!("\"{}\"", redis.url())).set(
            "broker",
            "cluster_key",
            &format!("\"{}\"", crate::redis::CLUSTER_KEY),
        )
    }

    /// A node of the cluster on the Redis Cluster `cluster`: the Redis
    /// broker with its masters as seeds (`broker.redis_cluster`), and the
    /// cluster key every test node shares. `broker.url` points where
    /// nothing listens, so a node that ignored the seeds could not pass
    /// for working on a stray local Redis.
    pub fn redis_cluster(self, cluster: &crate::RedisCluster) -> Self {
        let seeds: Vec<String> = cluster.seeds().iter().map(|s| toml_string(s)).collect();
        self.set("broker", "kind", "\"redis\"")
            .set("broker", "redis_cluster", &format!("[{}]", seeds.join(", ")))
            .set("broker", "url", "\"redis://127.0.0.1:1\"")
            .set("broker", "cluster_key", &toml_string(crate::redis::CLUSTER_KEY))
    }

    /// The server serves TLS (`server.tls` set by the test) with a
    /// certificate issued by `ca_pem`: the harness's HTTP client and
    /// connect options trust it, and its URLs are `https://` and `wss://`.
    pub fn tls_ca(mut self, ca_pem: &str) -> Self {
        self.tls_ca = Some(ca_pem.to_owned());
        self
    }

    /// The TOML text of this config.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                out.push_str(&format!("{key} = {value}\n"));
            }
            out.push('\n');
        }
        out
    }

    /// Writes `tandem.toml` into `dir` with `logging.file` pointing into
    /// `dir` unless a test chose its own; returns its path.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_config(&self, dir: &Path) -> PathBuf {
        let log_file = dir.join("tandem.log");
        let mut this = self.clone();
        let has_file = this.sections.get("logging").is_some_and(|keys| keys.contains_key("file"));
        if !has_file {
            this = this.set("logging", "file", &toml_string(&log_file.to_string_lossy()));
        }
        let path = dir.join("tandem.toml");
        std::fs::write(&path, this.to_toml())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Starts the server and waits until it listens and `/health/live`
    /// answers 200.
    ///
    /// # Panics
    /// When it does not come up within the deadline; the message carries
    /// everything the process printed.
    pub async fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_path = self.write_config(dir.path());
        let mut child = tandem_command(&["--config".as_ref(), config_path.as_os_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tandem_bin().display()));
        let output = Captured::new();
        if let Some(stdout) = child.stdout.take() {
            drain_lines(stdout, Arc::clone(&output), Stream::Stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            drain_lines(stderr, Arc::clone(&output), Stream::Stderr);
        }
        let mut http = reqwest::Client::builder().no_proxy().timeout(crate::WAIT);
        let mut tls = None;
        if let Some(ca) = &self.tls_ca {
            let cert = reqwest::Certificate::from_pem(ca.as_bytes()).expect("a PEM CA");
            http = http.add_root_certificate(cert);
            tls = Some(TlsTrust::only_added().with_pem(ca.as_bytes()).expect("a PEM CA"));
        }
        let http = http.build().expect("an HTTP client");
        let mut server = TestServer {
            tls,
            child: Mutex::new(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            config_path,
            output,
            http,
        };
        server.addr = server.await_listening().await;
        server.await_live().await;
        server
    }
}

/// Quotes `s` as a TOML basic string.
pub fn toml_string(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// A `tandem` command with no `TANDEM_*` variables inherited, so the
/// developer's environment cannot change what a test sees.
pub fn tandem_command(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(tandem_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TANDEM_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args);
    cmd
}

/// Runs the `tandem` binary with `args` to completion (CLI subcommands).
///
/// # Panics
/// When the binary cannot be started.
pub fn run_tandem(args: &[&str]) -> std::process::Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    tandem_command(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tandem_bin().display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Everything the process printed, and a counter that ticks on every line
/// (and when stdout ends) so waiters wake without polling.
struct Captured {
    stdout: Mutex<Vec<String>>,
    stderr: Mutex<Vec<String>>,
    stdout_closed: Mutex<bool>,
    tick: watch::Sender<u64>,
}

impl Captured {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            stdout: Mutex::new(Vec::new()),
            stderr: Mutex::new(Vec::new()),
            stdout_closed: Mutex::new(false),
            tick: watch::channel(0).0,
        })
    }

    fn bump(&self) {
        self.tick.send_modify(|n| *n += 1);
    }

    fn dump(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            lock(&self.stdout).join("\n"),
            lock(&self.stderr).join("\n")
        )
    }
}

/// Poisoning only means another test thread panicked; the data is intact.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn drain_lines(pipe: impl Read + Send + 'static, output: Arc<Captured>, stream: Stream) {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            match stream {
                Stream::Stdout => lock(&output.stdout).push(line),
                Stream::Stderr => lock(&output.stderr).push(line),
            }
            output.bump();
        }
        if stream == Stream::Stdout {
            *lock(&output.stdout_closed) = true;
            output.bump();
        }
    });
}

/// A running `tandem` process. Dropping it kills the process.
pub struct TestServer {
    child: Mutex<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    output: Arc<Captured>,
    http: reqwest::Client,
    /// Set when the server serves TLS: whom its certificate chains to.
    tls: Option<TlsTrust>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl TestServer {
    /// A builder with the harness defaults.
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::new()
    }

    /// A server with the harness defaults only.
    pub async fn start() -> Self {
        TestServerBuilder::new().start().await
    }

    async fn await_listening(&self) -> SocketAddr {
        let found = self.try_wait_for_log(|line| line["message"] == "Tandem listening", START_DEADLINE).await;
        let Some(line) = found else {
            panic!(
                "tandem did not log \"Tandem listening\" within {START_DEADLINE:?}:\n{}",
                self.output.dump()
            );
        };
        let addr = line["addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
        addr.unwrap_or_else(|| panic!("\"Tandem listening\" has no usable addr: {line}"))
    }

    async fn await_live(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        let url = format!("{}/health/live", self.base_url());
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "/health/live did not answer 200 within {START_DEADLINE:?}:\n{}",
                self.output.dump()
            );
            sleep(POLL_INTERVAL).await;
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://127.0.0.1:PORT` for a TLS server,
    /// whose address its test certificate names).
    pub fn base_url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://{}", self.addr),
        }
    }

    /// `ws://127.0.0.1:PORT/ws` (`wss://127.0.0.1:PORT/ws` for a TLS server).
    pub fn ws_url(&self) -> String {
        match self.tls {
            None => format!("ws://{}/ws", self.addr),
            Some(_) => format!("wss://{}/ws", self.addr),
        }
    }

    /// Whom a TLS server's certificate chains to (`None`: plain TCP).
    pub fn tls_trust(&self) -> Option<&TlsTrust> {
        self.tls.as_ref()
    }

    /// The backend API key the server was configured with.
    pub fn api_key(&self) -> &'static str {
        API_KEY
    }

    /// The config file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding the config and log file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file the server writes (`logging.file`).
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("tandem.log")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    /// Connect options in development mode for `player`.
    pub fn dev(&self, player: &str) -> ConnectOptions {
        self.anonymous().player(player)
    }

    /// Connect options with no credentials at all.
    pub fn anonymous(&self) -> ConnectOptions {
        let opts = ConnectOptions::new(self.base_url());
        match &self.tls {
            Some(trust) => opts.tls(trust.clone()),
            None => opts,
        }
    }

    /// A plain HTTP client for requests the helpers do not cover.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The stdout log lines that are JSON objects, in order.
    pub fn logs(&self) -> Vec<Value> {
        lock(&self.output.stdout)
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Everything the process printed so far (for failure messages).
    pub fn output_dump(&self) -> String {
        self.output.dump()
    }

    /// Waits for a stdout log line matching `predicate`; `None` when the
    /// deadline passes or stdout ends first.
    pub async fn try_wait_for_log(
        &self,
        predicate: impl Fn(&Value) -> bool,
        wait: Duration,
    ) -> Option<Value> {
        let deadline = Instant::now() + wait;
        let mut tick = self.output.tick.subscribe();
        loop {
            tick.borrow_and_update();
            if let Some(line) = self.logs().into_iter().find(|l| predicate(l)) {
                return Some(line);
            }
            if *lock(&self.output.stdout_closed) {
                return None;
            }
            match timeout_at(deadline, tick.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Waits for a stdout log line matching `predicate`.
    ///
    /// # Panics
    /// When none appears in time; the message carries the output so far.
    pub async fn wait_for_log(&self, predicate: impl Fn(&Value) -> bool, wait: Duration) -> Value {
        match self.try_wait_for_log(predicate, wait).await {
            Some(line) => line,
            None => panic!("no matching log line within {wait:?}:\n{}", self.output.dump()),
        }
    }

    /// Waits until the log file's content satisfies `predicate` (the file
    /// writer may lag stdout); returns that content.
    ///
    /// # Panics
    /// When it does not in time.
    pub async fn wait_log_file(&self, predicate: impl Fn(&str) -> bool, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let content = std::fs::read_to_string(self.log_file()).unwrap_or_default();
            if predicate(&content) {
                return content;
            }
            assert!(
                Instant::now() < deadline,
                "log file {} did not reach the expected content within {wait:?}; it holds:\n{content}",
                self.log_file().display()
            );
            sleep(POLL_INTERVAL).await;
        }
    }

    /// Sends `signal` to the process with the `kill` command.
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn send_signal(&self, signal: Signal) {
        let status = Command::new("kill")
            .arg(format!("-{}", signal.name()))
            .arg(self.pid().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{} failed: {status}", signal.name());
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// When it is still running at the deadline.
    pub async fn wait_exit(&self, wait: Duration) -> ExitStatus {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = lock(&self.child).try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tandem still running after {wait:?}:\n{}",
                self.output.dump()
            );
            sleep(POLL_INTERVAL).await;
        }
    }

    /// A backend API request with the test key (or `key`, when given
    /// `Some`); returns the status and the JSON body (`Value::Null` when
    /// empty, a string when not JSON).
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn api_request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base_url());
        let mut request = self.http.request(method, &url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// `POST {path}` with the API key and a JSON body.
    pub async fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api_request(Method::POST, path, Some(API_KEY), Some(&body)).await
    }

    /// `GET {path}` with the API key.
    pub async fn api_get(&self, path: &str) -> (u16, Value) {
        self.api_request(Method::GET, path, Some(API_KEY), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_merges_keys_into_one_block_per_section() {
        let toml = TestServerBuilder::new()
            .set("transport", "outbound_queue_size", "4")
            .set("server", "bind", "\"127.0.0.1:9\"")
            .set("transport", "max_message_bytes", "1024")
            .to_toml();
        assert_eq!(toml.matches("[server]").count(), 1, "{toml}");
        assert_eq!(toml.matches("[transport]").count(), 1, "{toml}");
        assert!(toml.contains("bind = \"127.0.0.1:9\"\n"), "a later set wins: {toml}");
        assert!(!toml.contains("127.0.0.1:0"), "{toml}");
        assert!(toml.contains(&format!("api_keys = [\"{API_KEY}\"]")), "{toml}");
        for line in ["outbound_queue_size = 4\n", "max_message_bytes = 1024\n"] {
            assert!(toml.contains(line), "{toml}");
        }
    }

    #[test]
    fn config_file_gets_the_log_file_in_its_directory() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = TestServerBuilder::new().write_config(dir.path());
        let text = std::fs::read_to_string(path).expect("written");
        let log = dir.path().join("tandem.log");
        assert!(
            text.contains(&format!("[logging]\nfile = {}", toml_string(&log.to_string_lossy()))),
            "{text}"
        );
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
