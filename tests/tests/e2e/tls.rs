//! `server.tls`: WebSocket over `wss://` and SSE over `https://` with the
//! Rust client and curl, TLS 1.2 and 1.3, certificate rotation while
//! clients are connected, a bad pair refused at reload and at start-up,
//! and the admin listener over TLS.
//!
//! Every certificate is made here: a test CA (rcgen) issues leaves for
//! `127.0.0.1`; the clients trust that CA only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::json;
use tandem_client::{Client, ClientMessage, ClientOptions, Mode, ServerFrame, Status};
use tandem_e2e::metrics::scrape;
use tandem_e2e::server::{run_tandem, tandem_command, toml_string};
use tandem_e2e::wait::{eventually, until_ok};
use tandem_e2e::{Peer, TestServer, TestServerBuilder, Transport, WAIT, assert_alive};

/// How often the test servers check their certificate files.
const RELOAD_SECONDS: &str = "1";

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate (PEM) and its key (PEM), and the leaf's DER.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Tandem test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        Self { issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate") }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `127.0.0.1` and `localhost`, named `name`.
    fn leaf(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("a leaf certificate");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }
}

/// The certificate and key files a server is pointed at.
struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn new(ca: &Ca, leaf: &Leaf) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let files = Self {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            ca: dir.path().join("ca.pem"),
            _dir: dir,
        };
        std::fs::write(&files.ca, ca.pem()).expect("write the CA");
        files.install(leaf);
        files
    }

    /// Replaces both files the way deployment tools do: write aside, rename.
    fn install(&self, leaf: &Leaf) {
        replace(&self.cert, &leaf.cert_pem);
        replace(&self.key, &leaf.key_pem);
    }
}

fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).expect("write aside");
    std::fs::rename(&aside, path).expect("rename into place");
}

fn tls_builder(ca: &Ca, files: &Files) -> TestServerBuilder {
    TestServer::builder()
        .set("server.tls", "cert_file", &toml_string(&files.cert.to_string_lossy()))
        .set("server.tls", "key_file", &toml_string(&files.key.to_string_lossy()))
        .set("server.tls", "reload_interval_seconds", RELOAD_SECONDS)
        .tls_ca(&ca.pem())
}

/// The leaf certificate (DER) a fresh TLS connection to `server` is shown.
async fn presented_leaf(server: &TestServer, ca: &Ca) -> Vec<u8> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .tls_info(true)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA"))
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    let response = http.get(format!("{}/health/live", server.base_url())).send().await.expect("GET");
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

/// curl with the test CA; its status, stdout and stderr.
async fn curl(ca: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = tokio::process::Command::new("curl");
    command.arg("--cacert").arg(ca).args(["-sS", "--max-time", "10"]).args(args);
    let out = tokio::time::timeout(WAIT + Duration::from_secs(5), command.stdin(Stdio::null()).output())
        .await
        .expect("curl within its deadline")
        .expect("curl runs (is it installed?)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn websocket_and_sse_work_over_tls_with_the_rust_client_and_curl() {
    let ca = Ca::new();
    let files = Files::new(&ca, &ca.leaf("tandem"));
    let server = tls_builder(&ca, &files).start().await;
    assert!(server.base_url().starts_with("https://"));

    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("wss:// connects");
    let mut sse = Peer::connect(Transport::Sse, &server.dev("bob")).await.expect("https:// SSE connects");
    assert_alive(&mut ws, 1).await;
    assert_alive(&mut sse, 2).await;
    // A publication reaches both, through the API over https too.
    for peer in [&mut ws, &mut sse] {
        let reply = peer.request(&ClientMessage::subscribe("room:tls")).await;
        assert!(matches!(reply, Ok(ServerFrame::Subscribed { .. })), "{reply:?}");
    }
    let (status, body) =
        server.api_post("/api/publish", json!({"channel": "room:tls", "event": "n", "data": {"n": 1}})).await;
    assert_eq!(status, 200, "{body}");
    for peer in [&mut ws, &mut sse] {
        let delivery = peer.expect_delivery().await;
        assert_eq!(delivery.data, json!({"n": 1}));
    }

    // The high-level client, both transports, trusting the test CA only.
    for mode in [Mode::WebSocket, Mode::Sse] {
        let trust = server.tls_trust().expect("a TLS server").clone();
        let client =
            Client::new(ClientOptions::new(server.base_url()).player_id("carol").mode(mode).tls(trust))
                .expect("a client");
        client.connect();
        eventually(&format!("{mode:?} client connected over TLS"), WAIT, || async {
            matches!(client.status(), Status::Connected { .. }).then_some(())
        })
        .await;
        client.close().await;
    }

    // curl: the health route, and an SSE stream's first event.
    let base = server.base_url();
    let (ok, out, err) = curl(&files.ca, &["-v", &format!("{base}/health/live")]).await;
    assert!(ok, "curl /health/live: {err}");
    assert!(out.contains("alive") || out.contains("ok") || !out.is_empty(), "{out}");
    assert!(err.contains("ALPN") && err.contains("http/1.1"), "ALPN http/1.1 not negotiated:\n{err}");
    let (_, out, err) =
        curl(&files.ca, &["-N", "--max-time", "3", &format!("{base}/sse?player_id=dave")]).await;
    assert!(out.contains("event: welcome") || out.contains("\"welcome\""), "SSE over curl:\n{out}\n{err}");

    // Plain HTTP on the TLS port gets nothing served.
    let plain = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("client");
    let answered = plain.get(format!("http://{}/health/live", server.addr())).send().await;
    assert!(answered.map_or(true, |r| r.status().as_u16() != 200), "plain HTTP must not be served");

    ws.close().await;
    sse.close().await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_accepted() {
    let ca = Ca::new();
    let files = Files::new(&ca, &ca.leaf("tandem"));
    let server = tls_builder(&ca, &files).start().await;
    let url = format!("{}/health/live", server.base_url());
    for (version, name) in [(reqwest::tls::Version::TLS_1_2, "1.2"), (reqwest::tls::Version::TLS_1_3, "1.3")]
    {
        let http = reqwest::Client::builder()
            .no_proxy()
            .min_tls_version(version)
            .max_tls_version(version)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("CA"))
            .timeout(WAIT)
            .build()
            .expect("an HTTP client");
        let response = http.get(&url).send().await.unwrap_or_else(|e| panic!("TLS {name}: {e:?}"));
        assert_eq!(response.status().as_u16(), 200, "TLS {name}");
    }
    for flags in [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3", "--tls-max", "1.3"]] {
        let mut args: Vec<&str> = flags.to_vec();
        args.push(&url);
        let (ok, _, err) = curl(&files.ca, &args).await;
        assert!(ok, "curl {flags:?}: {err}");
    }
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_and_open_ones_stay() {
    let ca = Ca::new();
    let first = ca.leaf("first");
    let files = Files::new(&ca, &first);
    let server = tls_builder(&ca, &files).start().await;
    assert_eq!(presented_leaf(&server, &ca).await, first.der);
    let mut ws = Peer::connect(Transport::WebSocket, &server.dev("alice")).await.expect("wss://");
    let mut sse = Peer::connect(Transport::Sse, &server.dev("bob")).await.expect("https:// SSE");

    let second = ca.leaf("second");
    files.install(&second);
    server.wait_for_log(|l| l["message"] == "TLS certificate reloaded", WAIT).await;
    until_ok("new connections see the new certificate", WAIT, Duration::from_millis(100), || async {
        if presented_leaf(&server, &ca).await == second.der { Ok(()) } else { Err("still the first") }
    })
    .await;
    // The connections made with the first certificate go on.
    assert_alive(&mut ws, 10).await;
    assert_alive(&mut sse, 11).await;
    let mut fresh = Peer::connect(Transport::WebSocket, &server.dev("carol")).await.expect("new wss://");
    assert_alive(&mut fresh, 12).await;

    // A key that does not fit the certificate is refused: logged, counted,
    // and the last good pair keeps serving.
    let other = ca.leaf("other");
    replace(&files.key, &other.key_pem);
    let refused = server
        .wait_for_log(
            |l| l["message"] == "TLS certificate reload refused; the last good pair keeps serving",
            WAIT,
        )
        .await;
    assert_eq!(refused["key"], "server.tls.key_file", "{refused}");
    assert_eq!(presented_leaf(&server, &ca).await, second.der);
    let metrics = scrape(&server).await;
    assert!(metrics.contains("tandem_tls_reloads_total{outcome=\"error\"} 1"), "{metrics}");
    assert!(metrics.contains("tandem_tls_reloads_total{outcome=\"ok\"} 1"), "{metrics}");
    assert_alive(&mut ws, 13).await;

    // Garbage over the certificate too: still refused, still serving.
    replace(&files.cert, "not a certificate");
    eventually("the second refusal counted", WAIT, || async {
        scrape(&server).await.contains("tandem_tls_reloads_total{outcome=\"error\"} 2").then_some(())
    })
    .await;
    assert_eq!(presented_leaf(&server, &ca).await, second.der);

    // A good pair again is taken.
    let third = ca.leaf("third");
    files.install(&third);
    until_ok("the third certificate serves", WAIT, Duration::from_millis(100), || async {
        if presented_leaf(&server, &ca).await == third.der { Ok(()) } else { Err("not yet") }
    })
    .await;
    for peer in [ws, sse, fresh] {
        peer.close().await;
    }
}

/// `tandem serve` with `config`; its exit code and stderr, or a panic when
/// it does not stop by itself.
async fn serve_fails(builder: TestServerBuilder) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = builder.write_config(dir.path());
    let child = tandem_command(&["--config".as_ref(), config.as_os_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tandem starts");
    let waited = tokio::time::timeout(WAIT, tokio::task::spawn_blocking(move || child.wait_with_output()))
        .await
        .expect("tandem stops by itself")
        .expect("join")
        .expect("output");
    (waited.status.code(), String::from_utf8_lossy(&waited.stderr).into_owned())
}

#[tokio::test]
async fn a_bad_pair_at_start_up_stops_tandem_naming_the_key() {
    let ca = Ca::new();
    let files = Files::new(&ca, &ca.leaf("tandem"));
    let builder = |cert: &Path, key: &Path| {
        TestServer::builder().set("server.tls", "cert_file", &toml_string(&cert.to_string_lossy())).set(
            "server.tls",
            "key_file",
            &toml_string(&key.to_string_lossy()),
        )
    };

    let missing = files.cert.with_file_name("missing.pem");
    let (code, stderr) = serve_fails(builder(&missing, &files.key)).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server.tls.cert_file") && stderr.contains("missing.pem"), "{stderr}");

    let other = ca.leaf("other");
    let other_key = files.key.with_file_name("other.pem");
    std::fs::write(&other_key, &other.key_pem).expect("write");
    let (code, stderr) = serve_fails(builder(&files.cert, &other_key)).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("server.tls.key_file"), "{stderr}");

    // One file without the other is a configuration error.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = TestServer::builder()
        .set("server.tls", "cert_file", &toml_string(&files.cert.to_string_lossy()))
        .write_config(dir.path());
    let out = run_tandem(&["check-config", "--config", &config.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.tls.key_file"), "{out:?}");
}

#[tokio::test]
async fn the_admin_listener_serves_tls_when_asked() {
    let ca = Ca::new();
    let files = Files::new(&ca, &ca.leaf("tandem"));
    let server = tls_builder(&ca, &files)
        .set("server", "admin_bind", &toml_string("127.0.0.1:0"))
        .set("server.tls", "admin", "true")
        .start()
        .await;
    let line = server.wait_for_log(|l| l["message"] == "Admin listener", WAIT).await;
    let addr = line["addr"].as_str().expect("an address").to_owned();
    let (ok, out, err) = curl(&files.ca, &[&format!("https://{addr}/health/live")]).await;
    assert!(ok, "admin over TLS: {out}\n{err}");
}
