//! [`TestBackend`]: a real HTTP game backend on a loopback port (hyper), for
//! Tandem's commands, hooks and lifecycle events (docs/backend.md).
//!
//! It records every request (path, headers, raw body) and answers each path
//! as programmed. Unprogrammed, it is a small game:
//!
//! - `/command` dispatches on the command's `name`: `refuse` (422
//!   `illegal_move`), `bad_code` (400 with a code out of contract), `array`
//!   (200 `[1]`), `refuse_array` (409, a JSON array), `fail` (500), `redirect` (302), `garbage` (200, not
//!   JSON), `huge` (200, a body over the default `backend.max_response_bytes`),
//!   `slow` (waits `data.ms` milliseconds, then answers), `hang` (never
//!   answers); any other name is answered `{"data":{"name":…,"echo":data}}`;
//! - `/connect`, `/subscribe`, `/events` answer `200 {}`.
//!
//! [`TestBackend::route`] replaces a path's behaviour with a closure of the
//! recorded request (say, refuse events for the first second).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::wait::Deadline;

/// The command path.
pub const COMMAND: &str = "/command";
/// The connect hook's path.
pub const CONNECT: &str = "/connect";
/// The subscribe hook's path.
pub const SUBSCRIBE: &str = "/subscribe";
/// The lifecycle events' path.
pub const EVENTS: &str = "/events";

/// Bytes of the `huge` command's answer: over the default
/// `backend.max_response_bytes` (65536).
pub const HUGE_BYTES: usize = 200_000;

/// The signature header Tandem sends.
pub const SIGNATURE_HEADER: &str = "x-tandem-signature";

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw body, as signed.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with (`None`: never answered).
    pub status: Option<u16>,
}

impl Recorded {
    /// The body as JSON (`Value::Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// Whether its `X-Tandem-Signature` is the HMAC of its raw body under
    /// `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        self.header(SIGNATURE_HEADER).is_some_and(|h| verify_signature(secret.as_bytes(), &self.body, h))
    }
}

/// `sha256=<hex>` of `body` under `secret`, computed here, independently of
/// Tandem's own code.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is `sha256=<hex HMAC-SHA256 of body keyed by secret>`,
/// compared in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// How the backend answers one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// `200 {"data": …}`.
    Data(Value),
    /// Any status with a JSON body.
    Json(u16, Value),
    /// A 4xx `{"error":{"code","message"[,"retry"]}}`.
    Refuse { status: u16, code: String, message: String, retry: Option<bool> },
    /// A status with an empty body.
    Status(u16),
    /// A redirect to `Location`.
    Redirect(u16, String),
    /// Any status with any bytes.
    Raw(u16, Bytes),
    /// `200 {"data":"xxx…"}` of about this many bytes.
    Huge(usize),
    /// Waits, then behaves.
    Delay(Duration, Box<Behaviour>),
    /// Takes the request and never answers.
    Hang,
}

impl Behaviour {
    /// A refusal with the game's `code`.
    pub fn refuse(status: u16, code: &str) -> Self {
        Self::Refuse { status, code: code.into(), message: format!("refused: {code}"), retry: None }
    }

    /// `200 {}`.
    pub fn ok() -> Self {
        Self::Json(200, json!({}))
    }

    /// The status this answers with (`None`: never).
    fn status(&self) -> Option<u16> {
        match self {
            Self::Data(_) | Self::Huge(_) => Some(200),
            Self::Json(s, _) | Self::Status(s) | Self::Redirect(s, _) | Self::Raw(s, _) => Some(*s),
            Self::Refuse { status, .. } => Some(*status),
            Self::Delay(_, then) => then.status(),
            Self::Hang => None,
        }
    }
}

type Route = Arc<dyn Fn(&Recorded) -> Behaviour + Send + Sync>;

struct State {
    requests: Mutex<Vec<Recorded>>,
    routes: Mutex<HashMap<String, Route>>,
    tick: watch::Sender<u64>,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// Poisoning only means another test thread panicked; the data is intact.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running backend; dropping it stops it and cuts its connections.
pub struct TestBackend {
    addr: SocketAddr,
    state: Arc<State>,
}

impl std::fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBackend").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        for task in lock(&self.state.tasks).drain(..) {
            task.abort();
        }
    }
}

/// The built-in game's answer to a command.
fn game(request: &Recorded) -> Behaviour {
    let body = request.json();
    let name = body["name"].as_str().unwrap_or_default();
    let data = body["data"].clone();
    match name {
        "refuse" => Behaviour::Refuse {
            status: 422,
            code: "illegal_move".into(),
            message: "not your turn".into(),
            retry: None,
        },
        "fail" => Behaviour::Status(500),
        "bad_code" => Behaviour::refuse(400, "Not A Code"),
        "redirect" => Behaviour::Redirect(302, "http://127.0.0.1:9/elsewhere".into()),
        "garbage" => Behaviour::Raw(200, Bytes::from_static(b"<html>not json</html>")),
        "array" => Behaviour::Json(200, json!([1])),
        "refuse_array" => Behaviour::Json(409, json!([{"code": "cell_taken", "message": "taken"}])),
        "huge" => Behaviour::Huge(HUGE_BYTES),
        "slow" => Behaviour::Delay(
            Duration::from_millis(data["ms"].as_u64().unwrap_or(200)),
            Box::new(Behaviour::Data(json!({"slow": true, "echo": data}))),
        ),
        "hang" => Behaviour::Hang,
        _ => Behaviour::Data(json!({"name": name, "echo": data})),
    }
}

impl TestBackend {
    /// Starts on `127.0.0.1:0` with the built-in game.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port for the backend");
        let addr = listener.local_addr().expect("its address");
        let state = Arc::new(State {
            requests: Mutex::new(Vec::new()),
            routes: Mutex::new(HashMap::new()),
            tick: watch::channel(0).0,
            tasks: Mutex::new(Vec::new()),
        });
        let backend = Self { addr, state: Arc::clone(&state) };
        backend.route(COMMAND, game);
        for path in [CONNECT, SUBSCRIBE, EVENTS] {
            backend.always(path, Behaviour::ok());
        }
        let accepting = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly, never spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let conn_state = Arc::clone(&accepting);
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&conn_state), req));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
                let mut tasks = lock(&accepting.tasks);
                tasks.retain(|t| !t.is_finished());
                tasks.push(conn.abort_handle());
            }
        });
        lock(&state.tasks).push(accept.abort_handle());
        backend
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `path` with what `f` makes of each request.
    pub fn route(&self, path: &str, f: impl Fn(&Recorded) -> Behaviour + Send + Sync + 'static) {
        lock(&self.state.routes).insert(path.to_owned(), Arc::new(f));
    }

    /// Answers every request to `path` with `behaviour`.
    pub fn always(&self, path: &str, behaviour: Behaviour) {
        self.route(path, move |_| behaviour.clone());
    }

    /// Every request so far to `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        lock(&self.state.requests).iter().filter(|r| r.path == path).cloned().collect()
    }

    /// How many requests reached `path`.
    pub fn count(&self, path: &str) -> usize {
        lock(&self.state.requests).iter().filter(|r| r.path == path).count()
    }

    /// How many times the command `id` reached `/command`.
    pub fn calls(&self, id: &str) -> usize {
        self.requests(COMMAND).iter().filter(|r| r.json()["id"] == id).count()
    }

    /// The bodies of every `/events` request (retries included).
    pub fn events(&self) -> Vec<Value> {
        self.requests(EVENTS).iter().map(Recorded::json).collect()
    }

    /// The events acknowledged with a 2xx.
    pub fn delivered_events(&self) -> Vec<Value> {
        self.requests(EVENTS)
            .iter()
            .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
            .map(Recorded::json)
            .collect()
    }

    /// Waits until `probe` of the recorded requests yields `Some`.
    ///
    /// # Panics
    /// When it does not within `wait`; the message shows every request.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        wait: Duration,
        probe: impl Fn(&[Recorded]) -> Option<T>,
    ) -> T {
        let deadline = Deadline::new(what, wait);
        let mut tick = self.state.tick.subscribe();
        loop {
            tick.borrow_and_update();
            if let Some(found) = probe(&lock(&self.state.requests)) {
                return found;
            }
            if deadline.passed() {
                let seen: Vec<String> = lock(&self.state.requests)
                    .iter()
                    .map(|r| format!("{} {:?} {}", r.path, r.status, String::from_utf8_lossy(&r.body)))
                    .collect();
                panic!("{what}: did not happen within {wait:?}; the backend saw:\n{}", seen.join("\n"));
            }
            let _ = tokio::time::timeout(deadline.remaining(), tick.changed()).await;
        }
    }

    /// Waits until at least `n` requests reached `path`; returns them all.
    pub async fn wait_count(&self, path: &str, n: usize, wait: Duration) -> Vec<Recorded> {
        self.wait_for(&format!("{n} requests to {path}"), wait, |all| {
            let hits: Vec<Recorded> = all.iter().filter(|r| r.path == path).cloned().collect();
            (hits.len() >= n).then_some(hits)
        })
        .await
    }

    /// Waits for a delivered lifecycle event matching `predicate`.
    pub async fn wait_event(&self, what: &str, wait: Duration, predicate: impl Fn(&Value) -> bool) -> Value {
        self.wait_for(what, wait, |all| {
            all.iter()
                .filter(|r| r.path == EVENTS && r.status.is_some_and(|s| (200..300).contains(&s)))
                .map(Recorded::json)
                .find(|e| predicate(e))
        })
        .await
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut recorded = Recorded { method, path, headers, body, at: Instant::now(), status: None };
    let route = lock(&state.routes).get(&recorded.path).cloned();
    let behaviour = match route {
        Some(route) => route(&recorded),
        None => Behaviour::Status(404),
    };
    recorded.status = behaviour.status();
    lock(&state.requests).push(recorded);
    state.tick.send_modify(|n| *n += 1);
    Ok(respond(behaviour).await)
}

fn response(status: u16, content_type: Option<&str>, body: Bytes) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Full::new(body)).expect("a valid response")
}

async fn respond(mut behaviour: Behaviour) -> Response<Full<Bytes>> {
    loop {
        let json_body = |v: &Value| Bytes::from(serde_json::to_vec(v).expect("JSON"));
        return match behaviour {
            Behaviour::Delay(wait, then) => {
                tokio::time::sleep(wait).await;
                behaviour = *then;
                continue;
            }
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Data(v) => response(200, Some("application/json"), json_body(&json!({"data": v}))),
            Behaviour::Json(status, v) => response(status, Some("application/json"), json_body(&v)),
            Behaviour::Refuse { status, code, message, retry } => {
                let mut error = json!({"code": code, "message": message});
                if let Some(retry) = retry {
                    error["retry"] = json!(retry);
                }
                response(status, Some("application/json"), json_body(&json!({"error": error})))
            }
            Behaviour::Status(status) => response(status, None, Bytes::new()),
            Behaviour::Redirect(status, location) => {
                let mut r = response(status, None, Bytes::new());
                if let Ok(v) = location.parse() {
                    r.headers_mut().insert("location", v);
                }
                r
            }
            Behaviour::Raw(status, bytes) => response(status, Some("text/html"), bytes),
            Behaviour::Huge(n) => {
                let filler = "x".repeat(n);
                response(200, Some("application/json"), json_body(&json!({"data": filler})))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_a_known_vector() {
        // RFC 4231, test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify_signature(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify_signature(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify_signature(b"other", b"what do ya want for nothing?", &sig));
    }

    #[tokio::test]
    async fn answers_as_programmed_and_records_everything() {
        let backend = TestBackend::start().await;
        let http = reqwest::Client::builder().no_proxy().build().expect("a client");
        let post = |path: &str, body: Value| {
            let req = http.post(backend.url(path)).header("x-test", "1").json(&body);
            async move {
                let r = req.send().await.expect("sent");
                (r.status().as_u16(), r.text().await.expect("a body"))
            }
        };
        let (status, body) = post(COMMAND, json!({"id": "c1", "name": "move", "data": {"x": 1}})).await;
        assert_eq!((status, body.as_str()), (200, r#"{"data":{"echo":{"x":1},"name":"move"}}"#));
        let (status, body) = post(COMMAND, json!({"id": "c2", "name": "refuse"})).await;
        assert_eq!(status, 422);
        assert!(body.contains("illegal_move"), "{body}");
        assert_eq!(post(COMMAND, json!({"id": "c3", "name": "fail"})).await.0, 500);
        backend.always(EVENTS, Behaviour::Status(503));
        assert_eq!(post(EVENTS, json!({"id": "e1"})).await.0, 503);
        assert_eq!(backend.calls("c1"), 1);
        let first = &backend.requests(COMMAND)[0];
        assert_eq!(first.header("X-Test"), Some("1"));
        assert_eq!(first.method, "POST");
        assert_eq!(backend.events(), vec![json!({"id": "e1"})]);
        assert!(backend.delivered_events().is_empty());
    }
}
