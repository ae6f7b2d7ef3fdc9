#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tandem_monitoring::DependencyKind;
use tandem_protocol::Transport;

use super::validate::check_origin;

use super::*;

/// Runs `f` with exactly `vars` as the process environment, in a figment
/// `Jail` (which serializes every test that touches the environment and
/// restores it after), handing it the jail's scratch directory.
#[allow(clippy::result_large_err)] // figment::Jail's own closure type
fn in_jail<T>(vars: &[(&str, &str)], f: impl FnOnce(&Path) -> T) -> T {
    let mut out = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        out = Some(f(jail.directory()));
        Ok(())
    });
    out.expect("the jail ran the closure")
}

/// Loads with no file and exactly `vars` as the environment.
fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    in_jail(vars, |_| Config::load(None))
}

/// Loads with `toml` as the config file and exactly `vars` as the environment.
fn load_str(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    in_jail(vars, |dir| {
        let path = dir.join("tandem.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path))
    })
}

/// Applies `change` to the defaults and returns the validation message.
fn problem(change: impl FnOnce(&mut Config)) -> String {
    let mut cfg = Config::default();
    change(&mut cfg);
    cfg.validate().expect_err("the change must be refused").to_string()
}

/// Asserts `change` is refused with one line starting with `expected`.
fn refused(change: impl FnOnce(&mut Config), expected: &str) {
    let err = problem(change);
    assert!(err.starts_with(expected), "got `{err}`, expected `{expected}`");
    assert_eq!(err.lines().count(), 1, "{err}");
}

const SECRET: &str = "production-secret-production-secret-42";
const API_KEY: &str = "backend-key-0123456789";

#[test]
fn defaults_load_with_no_file_and_no_env() {
    let cfg = load_env(&[]).unwrap();
    assert_eq!(cfg, Config::default());
    assert!(cfg.dev_mode());
    assert_eq!(cfg.server.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(cfg.session.dual_delivery, DualDelivery::All);
    assert_eq!(cfg.channels.client_publish, vec!["room", "party"]);
    assert_eq!(cfg.broker.kind, BrokerKind::Memory);
    assert_eq!(cfg.transport.heartbeat_interval(), Duration::from_secs(15));
}

#[test]
fn default_toml_sets_and_documents_every_key() {
    let file: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let mut from_struct: toml::Table = toml::from_str(&Config::default().to_toml_string().unwrap()).unwrap();
    // Shown commented out: there is no check by default.
    let monitoring = from_struct.get_mut("monitoring").and_then(toml::Value::as_table_mut).unwrap();
    assert_eq!(monitoring.remove("checks"), Some(toml::Value::Array(vec![])));
    assert_eq!(file, from_struct, "config/default.toml and the Default impls disagree");
    let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_key = line.contains(" = ") && !line.starts_with('#');
        if is_key {
            assert!(i > 0 && lines[i - 1].starts_with("# "), "no comment above `{line}`");
        }
    }
}

#[test]
fn partial_file_overrides_only_its_keys() {
    let cfg =
        load_str("[server]\nbind = \"127.0.0.1:9001\"\n[session]\ndual_delivery = \"preferred\"\n", &[])
            .unwrap();
    assert_eq!(cfg.server.bind.port(), 9001);
    assert_eq!(cfg.server.max_connections, 100_000);
    assert_eq!(cfg.session.dual_delivery, DualDelivery::Preferred);
    assert_eq!(cfg.session.history_size, 128);
    assert_eq!(cfg.transport, TransportConfig::default());
}

#[test]
fn env_overrides_file() {
    let file = "[server]\nbind = \"127.0.0.1:9001\"\n[transport]\noutbound_queue_size = 100\n";
    let cfg = load_str(
        file,
        &[
            ("TANDEM_SERVER__BIND", "127.0.0.1:9000"),
            ("TANDEM_AUTH__API_KEYS", &format!("[\"{API_KEY}\"]")),
            ("TANDEM_AUTH__SECRET", SECRET),
            ("TANDEM_SESSION__DUAL_DELIVERY", "preferred"),
            ("tandem_transport__inbound_burst", "7"),
            ("TANDEM_CHANNELS__CLIENT_PUBLISH", "[\"lobby\"]"),
            ("TANDEMX_SERVER__BIND", "ignored"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.server.bind, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(cfg.auth.api_keys, vec![API_KEY]);
    assert_eq!(cfg.auth.secret, SECRET);
    assert!(!cfg.dev_mode());
    assert_eq!(cfg.session.dual_delivery, DualDelivery::Preferred);
    assert_eq!(cfg.transport.inbound_burst, 7);
    assert_eq!(cfg.transport.outbound_queue_size, 100, "the file's value stays");
    assert_eq!(cfg.channels.client_publish, vec!["lobby"], "a list is replaced, not appended");
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let err = in_jail(&[], |_| Config::load(Some(Path::new("/nonexistent/tandem.toml")))).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with("cannot read config file /nonexistent/tandem.toml: "), "{err}");
}

#[test]
fn unknown_keys_are_named_with_their_origin() {
    let err = load_str("[server]\nbnd = \"127.0.0.1:1\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("unknown key server.bnd in config file "), "{err}");
    assert!(err.contains("expected one of: bind, workers"), "{err}");
    let err = load_str("[sever]\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("unknown key sever in config file"), "{err}");
    let err = load_str(
        "[[monitoring.checks]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"db:1\"\ncritcal = true\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("unknown key monitoring.checks[0].critcal"), "{err}");
    let err = load_env(&[("TANDEM_SESSION__HISTORY", "5")]).unwrap_err().to_string();
    assert!(
        err.starts_with("unknown key session.history in environment variable TANDEM_SESSION__HISTORY"),
        "{err}"
    );
    let err = load_env(&[("TANDEM_SERVER__", "x")]).unwrap_err().to_string();
    assert!(err.contains("TANDEM_SERVER__ does not name a key"), "{err}");
}

#[test]
fn bad_values_and_syntax_are_named_with_their_origin() {
    let err = load_env(&[("TANDEM_SERVER__BIND", "localhost")]).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid value for server.bind in environment variable TANDEM_SERVER__BIND: invalid socket address syntax"
    );
    let err = load_str("[transport]\nmax_message_bytes = \"big\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("invalid value for transport.max_message_bytes in config file"), "{err}");
    let err = load_str("[session]\ndual_delivery = \"both\"\n", &[]).unwrap_err().to_string();
    assert!(err.ends_with("unknown value `both` (expected one of: all, preferred)"), "{err}");
    let err =
        load_str("[[monitoring.checks]]\nname = \"db\"\nkind = \"tcp\"\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("invalid value for monitoring.checks[0].target in config file"), "{err}");
    let err = load_env(&[("TANDEM_AUTH__API_KEYS", API_KEY)]).unwrap_err().to_string();
    assert!(err.ends_with(r#"expected a sequence (write a list as ["a", "b"])"#), "{err}");
    let err = load_str("[server\n", &[]).unwrap_err().to_string();
    assert!(err.starts_with("invalid configuration in config file"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn numeric_limits_name_the_key_and_value() {
    refused(
        |c| c.transport.outbound_queue_size = 0,
        "invalid value for transport.outbound_queue_size: must be at least 1 (got 0)",
    );
    refused(
        |c| c.transport.outbound_queue_size = 1_000_001,
        "invalid value for transport.outbound_queue_size: must be at most 1000000 (got 1000001)",
    );
    refused(
        |c| c.session.history_size = 0,
        "invalid value for session.history_size: must be at least 1 (got 0)",
    );
    refused(
        |c| c.session.history_size = 100_001,
        "invalid value for session.history_size: must be at most 100000 (got 100001)",
    );
    refused(
        |c| c.transport.max_message_bytes = 63,
        "invalid value for transport.max_message_bytes: must be at least 64 (got 63)",
    );
    refused(
        |c| c.transport.max_message_bytes = 16 * 1024 * 1024 + 1,
        "invalid value for transport.max_message_bytes: must be at most 16777216 (got 16777217)",
    );
    refused(
        |c| c.transport.heartbeat_interval_seconds = 0,
        "invalid value for transport.heartbeat_interval_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.transport.heartbeat_timeout_seconds = 15,
        "invalid value for transport.heartbeat_timeout_seconds: must be greater than transport.heartbeat_interval_seconds (15) (got 15)",
    );
    refused(
        |c| c.server.max_connections = 0,
        "invalid value for server.max_connections: must be at least 1 (got 0)",
    );
    refused(|c| c.server.workers = 1025, "invalid value for server.workers: must be at most 1024 (got 1025)");
    // Durations are added to clock readings: huge ones must not pass.
    refused(
        |c| c.server.shutdown_grace_seconds = u64::MAX,
        "invalid value for server.shutdown_grace_seconds: must be at most 86400",
    );
    refused(
        |c| c.session.resume_window_seconds = 86_401,
        "invalid value for session.resume_window_seconds: must be at most 86400 (got 86401)",
    );
    refused(
        |c| c.transport.heartbeat_timeout_seconds = 86_401,
        "invalid value for transport.heartbeat_timeout_seconds: must be at most 86400 (got 86401)",
    );
    refused(
        |c| c.auth.token_ttl_seconds = u64::MAX,
        "invalid value for auth.token_ttl_seconds: must be at most 31536000",
    );
    refused(
        |c| c.session.max_connections_per_player = 0,
        "invalid value for session.max_connections_per_player: must be at least 1 (got 0)",
    );
    refused(
        |c| c.session.max_subscriptions = 0,
        "invalid value for session.max_subscriptions: must be at least 1 (got 0)",
    );
    refused(
        |c| c.session.resume_window_seconds = 0,
        "invalid value for session.resume_window_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.transport.inbound_rate_per_second = 0,
        "invalid value for transport.inbound_rate_per_second: must be at least 1 (got 0)",
    );
    refused(
        |c| c.transport.inbound_burst = 0,
        "invalid value for transport.inbound_burst: must be at least 1 (got 0)",
    );
    refused(
        |c| c.auth.token_ttl_seconds = 0,
        "invalid value for auth.token_ttl_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.monitoring.check_interval_seconds = 0,
        "invalid value for monitoring.check_interval_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.monitoring.check_timeout_seconds = 0,
        "invalid value for monitoring.check_timeout_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.monitoring.activity_warning_seconds = 0,
        "invalid value for monitoring.activity_warning_seconds: must be at least 1 (got 0)",
    );
    refused(
        |c| c.monitoring.memory_warning_percent = 90.0,
        "invalid value for monitoring.memory_warning_percent: must be above 0 and below monitoring.memory_critical_percent (90) (got 90)",
    );
    refused(
        |c| c.monitoring.memory_warning_percent = f64::NAN,
        "invalid value for monitoring.memory_warning_percent",
    );
    refused(
        |c| c.monitoring.memory_critical_percent = 100.5,
        "invalid value for monitoring.memory_critical_percent: must be above 0 and at most 100 (got 100.5)",
    );
    // The edges themselves are fine.
    let mut edges = Config::default();
    edges.session.history_size = MAX_HISTORY_SIZE;
    edges.transport.outbound_queue_size = 1;
    edges.transport.max_message_bytes = MIN_MESSAGE_BYTES;
    edges.transport.heartbeat_interval_seconds = 1;
    edges.transport.heartbeat_timeout_seconds = 2;
    edges.monitoring.memory_critical_percent = 100.0;
    edges.validate().unwrap();
}

#[test]
fn every_problem_is_reported_one_per_line() {
    let err = problem(|c| {
        c.transport.outbound_queue_size = 0;
        c.session.history_size = 0;
        c.server.bind = "0.0.0.0:8080".parse().unwrap();
    });
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines.contains(&"auth.secret is required when server.bind is not a loopback address (server.bind = 0.0.0.0:8080); set it in the config file or TANDEM_AUTH__SECRET"), "{err}");
}

#[test]
fn client_publish_namespaces() {
    assert!(problem(|c| c.channels.client_publish = vec!["player".into()]).starts_with(
        "invalid value for channels.client_publish[0]: clients may never publish into `player:`"
    ));
    assert!(
        problem(|c| c.channels.client_publish = vec!["room".into(), "admin".into()])
            .starts_with("invalid value for channels.client_publish[1]")
    );
    for bad in ["", "Room", "1room", "room:x", &"a".repeat(33)] {
        let err = problem(|c| c.channels.client_publish = vec![bad.into()]);
        assert!(err.contains("is not a namespace"), "{bad}: {err}");
    }
    let mut cfg = Config::default();
    cfg.channels.client_publish = vec!["a".into(), "lobby_2-x".into(), "a".repeat(32)];
    cfg.validate().unwrap();
}

#[test]
fn allowed_origins() {
    for good in [
        "*",
        "https://play.example.com",
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "tauri://localhost",
    ] {
        assert_eq!(check_origin(good), Ok(()), "{good}");
    }
    for bad in [
        "example.com",
        "https://example.com/",
        "https://example.com/game",
        "https://",
        "https://a.com?x=1",
        "https://u@a.com",
        "",
    ] {
        assert!(check_origin(bad).is_err(), "{bad}");
    }
    assert_eq!(
        check_origin("https://Example.com:443"),
        Err("`https://Example.com:443` is not how browsers send it: write `https://example.com`".into())
    );
    let err = problem(|c| c.server.allowed_origins = vec!["*".into(), "https://a.com/".into()]);
    assert!(err.starts_with("invalid value for server.allowed_origins[1]: "), "{err}");
}

#[test]
fn transports() {
    let cfg = load_str("[server]\ntransports = [\"sse\"]\n", &[]).unwrap();
    assert!(cfg.server.allows(Transport::Sse));
    assert!(!cfg.server.allows(Transport::WebSocket));
    assert!(Config::default().server.allows(Transport::WebSocket));
    let err = problem(|c| c.server.transports = vec![]);
    assert!(err.starts_with("invalid value for server.transports: must name at least one"), "{err}");
    let err = problem(|c| c.server.transports = vec![Transport::Sse, Transport::Sse]);
    assert!(err.starts_with("invalid value for server.transports[1]: \"sse\" is listed twice"), "{err}");
    assert!(load_str("[server]\ntransports = [\"long-polling\"]\n", &[]).is_err());
}

#[test]
fn secrets_and_api_keys() {
    let err = problem(|c| c.auth.secret = "short".into());
    assert_eq!(
        err,
        "invalid value for auth.secret: must be empty (development mode) or at least 32 bytes (got 5)"
    );
    let err = problem(|c| c.auth.api_keys = vec![API_KEY.into(), "tooshort".into()]);
    assert_eq!(err, "invalid value for auth.api_keys[1]: must be at least 16 characters (got 8)");
    let err = problem(|c| c.auth.api_keys = vec![String::new()]);
    assert!(err.starts_with("invalid value for auth.api_keys[0]: must be at least 16"), "{err}");
    let err = problem(|c| c.auth.api_keys = vec!["key with spaces in it".into()]);
    assert_eq!(err, "invalid value for auth.api_keys[0]: must not contain whitespace");
    // Messages never echo a secret.
    let err = problem(|c| c.auth.secret = "hunter2".into());
    assert!(!err.contains("hunter2"));
}

#[test]
fn a_public_bind_needs_a_secret() {
    for bind in ["0.0.0.0:8080", "192.0.2.1:80", "[::]:8080"] {
        let err = problem(|c| c.server.bind = bind.parse().unwrap());
        assert!(
            err.starts_with("auth.secret is required when server.bind is not a loopback address"),
            "{err}"
        );
    }
    for bind in ["127.0.0.1:1", "127.1.2.3:80", "[::1]:8080", "[::ffff:127.0.0.1]:8080"] {
        let mut cfg = Config::default();
        cfg.server.bind = bind.parse().unwrap();
        cfg.validate().unwrap();
        assert!(cfg.dev_mode());
    }
    let mut cfg = Config::default();
    cfg.server.bind = "0.0.0.0:8080".parse().unwrap();
    cfg.auth.secret = SECRET.into();
    cfg.validate().unwrap();
    assert!(!cfg.dev_mode());
    let err = load_env(&[("TANDEM_SERVER__BIND", "0.0.0.0:8080")]).unwrap_err();
    assert!(matches!(err, ConfigError::SecretRequired { .. }));
}

fn check(name: &str, kind: DependencyKind, target: &str) -> tandem_monitoring::DependencyCheckConfig {
    tandem_monitoring::DependencyCheckConfig {
        name: name.into(),
        kind,
        target: target.into(),
        timeout_seconds: None,
        critical: true,
    }
}

#[test]
fn the_monitoring_crates_own_rules_apply_too() {
    let err = problem(|c| c.monitoring.check_retries = u32::MAX);
    assert!(err.starts_with("invalid value for monitoring.check_retries: "), "{err}");
    // A key both sets of rules refuse is reported once.
    let err = problem(|c| c.monitoring.check_interval_seconds = 0);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_redis_cluster_needs_a_cluster_key_of_32_bytes() {
    let err = problem(|c| c.broker.kind = BrokerKind::Redis);
    assert!(err.contains("broker.cluster_key") && err.contains("(got 0)"), "{err}");
    let short = problem(|c| {
        c.broker.kind = BrokerKind::Redis;
        c.broker.cluster_key = "short-secret".into();
    });
    assert!(short.contains("(got 12)") && !short.contains("short-secret"), "{short}");
    let mut cfg = Config::default();
    cfg.broker.kind = BrokerKind::Redis;
    cfg.broker.cluster_key = "k".repeat(32);
    cfg.validate().unwrap();
}

#[test]
fn redis_cluster_seeds_are_host_port_and_exclude_sentinels() {
    refused(|c| c.broker.redis_cluster = vec!["127.0.0.1".into()], "invalid value for broker.redis_cluster");
    refused(|c| c.broker.redis_cluster = vec![":7000".into()], "invalid value for broker.redis_cluster");
    refused(
        |c| {
            c.broker.redis_cluster = vec!["127.0.0.1:7000".into()];
            c.broker.sentinels = vec!["127.0.0.1:26379".into()];
            c.broker.sentinel_master = "m".into();
        },
        "invalid value for broker.redis_cluster",
    );
    let mut cfg = Config::default();
    cfg.broker.redis_cluster = vec!["127.0.0.1:7000".into(), "redis-1.internal:7001".into()];
    cfg.validate().unwrap();
}

#[test]
fn masked_hides_every_secret_that_is_set() {
    let mut cfg = Config::default();
    cfg.auth.secret = SECRET.into();
    cfg.auth.api_keys = vec![API_KEY.into(), "second-key-0123456789".into()];
    cfg.monitoring.token = "operator-token".into();
    cfg.broker.url = "redis://:redis-pass@127.0.0.1:6379/0".into();
    cfg.broker.cluster_key = "cluster-key-0123456789abcdef-0123".into();
    let masked = cfg.masked();
    assert_eq!(masked.broker.cluster_key, "***");
    assert_eq!(masked.broker.url, "redis://:***@127.0.0.1:6379/0");
    assert_eq!(masked.auth.secret, "***");
    assert_eq!(masked.auth.api_keys, vec!["***", "***"]);
    assert_eq!(masked.monitoring.token, "***");
    assert_eq!(masked.server, cfg.server);
    let text = masked.to_toml_string().unwrap();
    assert!(
        !text.contains(SECRET)
            && !text.contains(API_KEY)
            && !text.contains("operator-token")
            && !text.contains("redis-pass")
            && !text.contains("cluster-key-"),
        "{text}"
    );
    // Unset secrets stay empty, so the output still shows development mode.
    let plain = Config::default().masked();
    assert_eq!(plain.auth.secret, "");
    assert_eq!(plain.monitoring.token, "");
    assert_eq!(plain.broker.url, "redis://127.0.0.1:6379");
}

#[test]
fn toml_output_reads_back() {
    let mut cfg = Config::default();
    cfg.server.allowed_origins = vec!["https://a.example".into()];
    cfg.monitoring.checks = vec![check("db", DependencyKind::Tcp, "db:5432")];
    cfg.session.dual_delivery = DualDelivery::Preferred;
    let text = cfg.to_toml_string().unwrap();
    let back: Config = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn production_example_loads_with_its_env_vars() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.toml");
    let vars = [
        ("TANDEM_AUTH__SECRET", SECRET),
        ("TANDEM_AUTH__API_KEYS", "[\"backend-key-0123456789\"]"),
        ("TANDEM_MONITORING__TOKEN", "operator-token"),
    ];
    let cfg = in_jail(&vars, |_| Config::load(Some(&path))).unwrap();
    assert_eq!(cfg.server.bind, "0.0.0.0:8080".parse().unwrap());
    assert!(!cfg.dev_mode());
    assert_eq!(cfg.auth.api_keys, vec![API_KEY]);
    assert_eq!(cfg.monitoring.token, "operator-token");
    assert_eq!(cfg.logging.file, "/var/log/tandem/tandem.log");
    assert!(!cfg.server.allowed_origins.is_empty());
    assert!(!cfg.monitoring.checks.is_empty());
    // Without the secret it refuses to start on its public bind.
    let err = in_jail(&vars[1..], |_| Config::load(Some(&path))).unwrap_err();
    assert!(matches!(err, ConfigError::SecretRequired { .. }), "{err}");
}

#[test]
fn tls_needs_both_files_and_the_admin_flag_needs_tls_and_an_admin_listener() {
    let err = load_str("[server.tls]\ncert_file = \"/c.pem\"\n", &[]).unwrap_err().to_string();
    assert!(err.contains("server.tls.key_file"), "{err}");
    let err = load_str("[server.tls]\nkey_file = \"/k.pem\"\nadmin = true\n", &[]).unwrap_err().to_string();
    assert!(err.contains("server.tls.cert_file") && err.contains("server.tls.admin"), "{err}");
    let cfg = load_str("[server.tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n", &[]).unwrap();
    assert!(cfg.server.tls.enabled());
    assert!(!Config::default().server.tls.enabled());
}
