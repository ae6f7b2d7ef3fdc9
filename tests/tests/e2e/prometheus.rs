//! The operator kit against the real Prometheus: Debian's `prometheus`
//! scrapes a real `tandem` (with the operator token, as
//! `dashboards/prometheus/prometheus.yml` does) and loads
//! `dashboards/prometheus/alerts.yml`; after real traffic every PromQL
//! expression of the Grafana dashboards and of the alert rules is evaluated
//! through Prometheus's HTTP API. Each must parse; every dashboard panel must
//! return data; connection counts must equal what the test opened; every
//! metric name they use must be one Tandem exports; every alert rule must
//! evaluate without error. A missing `prometheus` fails the test.
//!
//! The server has a real game backend ([`TestBackend`]): commands answered
//! and failing, connect and subscribe hooks, and an events endpoint that
//! fails at first (retries), so the "Game backend" row has data too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{ClientError, SseClient, WsClient};
use tandem_e2e::backend::{self, Behaviour, TestBackend};
use tandem_e2e::ports::free_port;
use tandem_e2e::server::toml_string;
use tandem_e2e::wait::Deadline;
use tandem_e2e::{TestServer, WAIT};

use crate::common_mon::{self, Traffic};

const TOKEN: &str = "prometheus-scrape-token-8c1d";
/// Prometheus scrapes and evaluates rules this often.
const INTERVAL: &str = "1s";
/// What the dashboards' `$__rate_interval` becomes here: long enough to
/// hold the traffic's increase for the whole test.
const RATE_INTERVAL: &str = "1m";
/// How long Prometheus may take to start, scrape and evaluate.
const PROM_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// A running Prometheus; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Debian's `prometheus` scraping `target` every second with the
    /// operator token from a file and the repository's alert rules.
    async fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let token_file = dir.path().join("tandem-token");
        std::fs::write(&token_file, TOKEN).expect("the token file");
        let rules = repo_root().join("dashboards/prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: tandem\n    authorization:\n      type: Bearer\n      \
             credentials_file: {token_file:?}\n    static_configs:\n      - targets: [{target:?}]\n",
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).expect("the Prometheus config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Debian's `prometheus` (apt-get install prometheus; scripts/test.sh does): {e}")
            });
        let http = reqwest::Client::builder().no_proxy().timeout(WAIT).build().expect("an HTTP client");
        let mut prom = Self { child, url: format!("http://127.0.0.1:{port}"), http, _dir: dir };
        let deadline = Deadline::new("prometheus ready", PROM_WAIT).every(POLL);
        loop {
            if let Ok(Some(status)) = prom.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", prom.log());
            }
            let ready = prom.http.get(format!("{}/-/ready", prom.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prom;
            }
            deadline.tick(format!("its log:\n{}", prom.log())).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/{path}`: the HTTP status and the JSON answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{}/api/v1/{path}", self.url);
        let resp = self.http.get(&url).query(query).send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
        (status, body)
    }

    /// Evaluates `expr` now; the result vector, or the error Prometheus
    /// gave (a parse error is `bad_data`).
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let (status, body) = self.api("query", &[("query", expr)]).await;
        if status == 200 && body["status"] == "success" {
            let result = &body["data"]["result"];
            return Ok(match body["data"]["resultType"].as_str() {
                Some("vector" | "matrix") => result.as_array().cloned().unwrap_or_default(),
                _ => vec![result.clone()],
            });
        }
        Err(format!("{status} {}: {}", body["errorType"], body["error"]))
    }
}

/// Whether a result has at least one sample with a real number (not NaN,
/// which is what a quantile of no observations gives).
fn has_finite_value(result: &[Value]) -> bool {
    result
        .iter()
        .any(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v.is_finite()))
}

/// Every `expr` of every panel (rows included) and every templating query
/// of a Grafana dashboard.
fn dashboard_expressions(dashboard: &Value) -> (Vec<(String, String)>, Vec<String>) {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut panels = Vec::new();
    walk(&dashboard["panels"], &mut panels);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["definition"].as_str().map(str::to_owned))
        .collect();
    (panels, variables)
}

/// What a Grafana expression becomes outside Grafana: its variables get the
/// values an operator would pick for this one instance.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL).replace("$job", "tandem").replace("$instance", ".+")
}

/// Metric names an expression uses: identifiers that start with `tandem_`,
/// and `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_string = false;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("tandem_") || word == "up" {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        if c == '"' {
            in_string = !in_string;
        }
    }
    names
}

/// `- alert:` entries of the rules file, read as text so the count does not
/// depend on the parser under test.
fn alert_names_in_file(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect()
}

/// Connections opened and closed on both transports (lifetimes).
async fn short_connections(server: &TestServer) {
    let ws = WsClient::connect(&server.dev("erin")).await.expect("erin connects over WebSocket");
    ws.close().await;
    let sse = SseClient::connect(&server.dev("frank")).await.expect("frank connects over SSE");
    sse.close();
}

/// Commands to the game backend: answered, refused by the game, failing.
async fn commands(traffic: &mut Traffic, wave: u32) {
    for (name, expected) in [("move", "reply"), ("refuse", "illegal_move"), ("fail", "backend_error")] {
        let id = format!("{name}-{wave}");
        let got = crate::backend::command(&mut traffic.bob_ws, &id, name, json!({"wave": wave})).await;
        assert_eq!(crate::backend::outcome(&got), expected, "{got:?}");
    }
}

/// More traffic after Prometheus has seen the first, so every rate and
/// histogram has an increase inside its window: connections opened and
/// closed on both transports, a delivery, a refused token, a refused origin.
async fn second_wave(server: &TestServer, traffic: &mut Traffic) {
    traffic.deliver_one(server).await;
    short_connections(server).await;
    let refused = WsClient::connect(&server.anonymous().token("not-a-valid-token")).await;
    assert!(matches!(refused, Err(ClientError::Http { status: 401, .. })), "{refused:?}");
    let foreign = SseClient::connect(&server.dev("mallory").origin("http://evil.example")).await;
    assert!(matches!(foreign, Err(ClientError::Http { status: 403, .. })), "{foreign:?}");
    traffic.malformed_frame().await;
    commands(traffic, 2).await;
}

#[tokio::test]
async fn dashboards_and_alerts_evaluate_on_real_prometheus() {
    let state_dir = tempfile::tempdir().expect("a temporary directory");
    let state_file = state_dir.path().join("state.json");
    // The game: the events endpoint is down for its first requests.
    let game = TestBackend::start().await;
    let events_seen = std::sync::atomic::AtomicU32::new(0);
    game.route(backend::EVENTS, move |_| {
        if events_seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            Behaviour::Status(503)
        } else {
            Behaviour::ok()
        }
    });
    let url = |path: &str| toml_string(&game.url(path));
    let server = common_mon::builder()
        .set("backend", "command_url", &url(backend::COMMAND))
        .set("backend", "connect_url", &url(backend::CONNECT))
        .set("backend", "subscribe_url", &url(backend::SUBSCRIBE))
        .set("backend", "events_url", &url(backend::EVENTS))
        .set("backend", "events_retry_max_ms", "200")
        .set("monitoring", "token", &toml_string(TOKEN))
        .set("monitoring", "state_file", &toml_string(&state_file.to_string_lossy()))
        .set("server", "allowed_origins", "[\"http://good.example\"]")
        // Pings every second for the round-trip histogram; a timeout far
        // beyond the test so clients that do not read stay connected.
        .set("transport", "heartbeat_interval_seconds", "1")
        .set("transport", "heartbeat_timeout_seconds", "300")
        .start()
        .await;
    let prom = Prometheus::start(&server.addr().to_string()).await;

    // The scrape works with the token before any traffic.
    let deadline = Deadline::new("Tandem scraped", PROM_WAIT).every(POLL);
    loop {
        let up = prom.query("up{job=\"tandem\"} == 1").await.expect("up parses");
        if !up.is_empty() {
            break;
        }
        let (_, targets) = prom.api("targets", &[]).await;
        deadline.tick(format!("{targets}\n{}", prom.log())).await;
    }

    let mut traffic = Traffic::generate(&server).await;
    commands(&mut traffic, 1).await;
    let carol = SseClient::connect(&server.dev("carol")).await.expect("carol connects over SSE");
    short_connections(&server).await;
    // Wait until Prometheus has scraped the first wave's new series.
    let deadline = Deadline::new("the first wave reached Prometheus", PROM_WAIT).every(POLL);
    while prom
        .query("tandem_connection_duration_seconds_count{transport=\"sse\"}")
        .await
        .expect("parses")
        .is_empty()
    {
        deadline.tick("").await;
    }
    second_wave(&server, &mut traffic).await;

    // Connections by transport equal what the test holds open: alice on
    // both, bob on WebSocket, carol on SSE.
    let deadline = Deadline::new("connections by transport", PROM_WAIT).every(POLL);
    loop {
        // Answer heartbeats, so round trips are measured.
        let _ = traffic.alice_ws.next_frame(Duration::from_millis(50)).await;
        let by_transport = prom
            .query("sum by (transport) (tandem_connections_active{job=\"tandem\"})")
            .await
            .expect("parses");
        let count = |t: &str| {
            by_transport
                .iter()
                .find(|s| s["metric"]["transport"] == t)
                .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
        };
        let dual = prom.query("sum(tandem_players_active{mode=\"dual\"})").await.expect("parses");
        if count("websocket") == Some(2.0)
            && count("sse") == Some(2.0)
            && dual.first().map(|s| &s["value"][1]) == Some(&json!("1"))
        {
            break;
        }
        deadline.tick(format!("{by_transport:?}, dual: {dual:?}")).await;
    }

    let exported: BTreeSet<String> = {
        let (status, body) = prom.api("label/__name__/values", &[]).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().expect("names").iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };

    // Every dashboard panel parses and, after this traffic, has data.
    let mut dashboards = 0;
    for entry in std::fs::read_dir(repo_root().join("dashboards/grafana")).expect("dashboards/grafana") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        dashboards += 1;
        let text = std::fs::read_to_string(&path).expect("a dashboard");
        let dashboard: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            dashboard["__inputs"].as_array().is_some_and(|i| i.iter().any(|i| i["name"] == "DS_PROMETHEUS")),
            "{}: a DS_PROMETHEUS input",
            path.display()
        );
        let (panels, variables) = dashboard_expressions(&dashboard);
        assert!(panels.len() >= 20, "{}: {} expressions", path.display(), panels.len());
        for definition in &variables {
            for name in metric_names(definition) {
                assert!(
                    exported.contains(&name),
                    "variable `{definition}` uses {name}, which Tandem does not export"
                );
            }
        }
        for (title, expr) in &panels {
            let expr = substitute(expr);
            for name in metric_names(&expr) {
                assert!(
                    exported.contains(&name),
                    "panel {title:?} uses {name}, which Tandem does not export: {expr}"
                );
            }
            let deadline = Deadline::new(format!("panel {title:?} has data: {expr}"), PROM_WAIT).every(POLL);
            loop {
                let _ = traffic.alice_ws.next_frame(Duration::from_millis(10)).await;
                let result =
                    prom.query(&expr).await.unwrap_or_else(|e| panic!("panel {title:?}: {expr}: {e}"));
                if has_finite_value(&result) {
                    break;
                }
                deadline.tick(format!("{result:?}")).await;
            }
        }
    }
    assert!(dashboards >= 1, "no dashboard in dashboards/grafana");

    // Every alert rule is loaded, uses exported metrics only, parses as a
    // query and evaluates without error; none fires on a healthy server.
    let rules_text =
        std::fs::read_to_string(repo_root().join("dashboards/prometheus/alerts.yml")).expect("alerts.yml");
    let in_file = alert_names_in_file(&rules_text);
    assert!(in_file.len() >= 14, "alerts.yml has {} alerts", in_file.len());
    let deadline = Deadline::new("every alert rule loaded and evaluated cleanly", PROM_WAIT).every(POLL);
    let rules = loop {
        let (status, body) = prom.api("rules", &[("type", "alert")]).await;
        assert_eq!(status, 200, "{body}");
        let rules: Vec<Value> = body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if rules.len() == in_file.len() && rules.iter().all(|r| r["health"] == "ok") {
            break rules;
        }
        let unhealthy: Vec<_> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| (&r["name"], &r["health"], &r["lastError"]))
            .collect();
        deadline
            .tick(format!("{} of {} rules loaded; not clean: {unhealthy:?}", rules.len(), in_file.len()))
            .await;
    };
    for rule in &rules {
        let name = rule["name"].as_str().expect("a rule name");
        assert!(in_file.iter().any(|n| n == name), "{name} is not in alerts.yml");
        let severity = rule["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning" | "info")), "{name}: severity {severity:?}");
        for annotation in ["summary", "description", "runbook"] {
            assert!(rule["annotations"][annotation].is_string(), "{name} lacks {annotation}");
        }
        let expr = rule["query"].as_str().expect("a rule query");
        for metric in metric_names(expr) {
            assert!(exported.contains(&metric), "alert {name} uses {metric}, which Tandem does not export");
        }
        prom.query(expr).await.unwrap_or_else(|e| panic!("alert {name}: {expr}: {e}"));
        assert_ne!(rule["state"], "firing", "{name} fires on a healthy test server: {rule}");
    }
    carol.close();
}

#[test]
fn metric_names_are_found_outside_strings() {
    let names = metric_names(
        "sum by (le) (rate(tandem_a_bucket{job=~\"tandem_not\", x=\"up\"}[1m])) / up{job=\"t\"} + tandem_b",
    );
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["tandem_a_bucket", "tandem_b", "up"]);
}

/// What Grafana needs to provision or import the dashboards as they are:
/// every panel queries the `DS_PROMETHEUS` datasource (an import input and a
/// variable of that name), ids are unique, panels fit the 24-column grid,
/// and the provisioning files point at the dashboards and a Prometheus.
#[test]
fn dashboards_are_ready_to_provision_and_import() {
    let dir = repo_root().join("dashboards/grafana");
    let mut uids = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards/grafana") {
        let path = entry.expect("an entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("a dashboard"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.display().to_string();
        assert!(uids.insert(d["uid"].as_str().expect("a uid").to_owned()), "{name}: duplicate uid");
        assert_eq!(d["__inputs"][0]["pluginId"], "prometheus", "{name}");
        let variables = d["templating"]["list"].as_array().expect("templating");
        assert!(
            variables.iter().any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
            "{name}: a DS_PROMETHEUS datasource variable, so provisioning resolves ${{DS_PROMETHEUS}}"
        );
        let mut ids = BTreeSet::new();
        let mut stack: Vec<&Value> = d["panels"].as_array().expect("panels").iter().collect();
        while let Some(panel) = stack.pop() {
            let title = panel["title"].as_str().unwrap_or("?");
            assert!(
                ids.insert(panel["id"].as_u64().expect("a panel id")),
                "{name}: duplicate id at {title:?}"
            );
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().expect("x"), grid["w"].as_u64().expect("w"));
            assert!(x + w <= 24, "{name}: {title:?} overflows the grid");
            if panel["type"] != "row" {
                assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{name}: {title:?}");
                let targets = panel["targets"].as_array().expect("targets");
                assert!(!targets.is_empty(), "{name}: {title:?} has no query");
                for t in targets {
                    assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{name}: {title:?}");
                }
                assert!(
                    panel["description"].as_str().is_some_and(|s| !s.is_empty()),
                    "{name}: {title:?} explains itself"
                );
            }
            stack.extend(panel["panels"].as_array().into_iter().flatten());
        }
    }
    assert!(!uids.is_empty(), "no dashboard");
    let provider = std::fs::read_to_string(dir.join("provisioning/dashboards/tandem.yml"))
        .expect("the dashboards provider");
    assert!(provider.contains("type: file") && provider.contains("path: "), "{provider}");
    let datasource =
        std::fs::read_to_string(dir.join("provisioning/datasources/tandem.yml")).expect("the datasource");
    assert!(datasource.contains("type: prometheus") && datasource.contains("url: http://"), "{datasource}");
}
