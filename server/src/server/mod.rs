//! Start-up and shutdown of the `tandem serve` process.
//!
//! Phases: build state → bind → serve → on SIGTERM/SIGINT: readiness off,
//! new connections refused (503 `draining`), clients told to reconnect
//! (WebSocket close 1012, SSE `retry:` + `shutdown`), queues flushed, then
//! the HTTP server stops within `server.shutdown_grace_seconds`.
//!
//! The server holds the broker only as `Arc<dyn Broker>`: a cluster
//! broker's tasks, health component and cluster document come through the
//! trait. Background tasks (sweeps, health loops, the broker's) run under
//! one [`Supervisor`] and stop on its one signal once the listeners are
//! closed; the process exits when they have ended.

/// The first request of every client connection, read before actix-http.
pub(crate) mod front_door;
/// The client listener: actix-server, the front door, actix-http.
pub(crate) mod listener;
/// The route table.
pub(crate) mod routes;
/// Background tasks restarted with backoff when they fail.
pub(crate) mod supervisor;
/// TLS: the certificate pair, its resolver and its reload.
pub mod tls;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use actix_web::{HttpServer, web};
use serde_json::Value;
use tandem_monitoring::{ConnectionOverview, ConnectionSample, ConnectionStatsSource, Monitoring};

use crate::auth::Authenticator;
use crate::backend::{Backend, BackendError, CommandHandler};
use crate::broker::{self, BrokerError, LocalNode};
use crate::config::{Config, ConfigError, ServerConfig};
use crate::http::origin::OriginPolicy;
use crate::http::state::AppState;
use crate::http::views;
use crate::manager::{ConnectionManager, Limits};
use crate::server::supervisor::{Supervisor, every};
use crate::telemetry::{self as ev, Telemetry};
use listener::STOP_TIMEOUT_SECONDS;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Base reconnect delay told to clients on shutdown; each gets up to this
/// much again as jitter, so a restart does not cause a stampede.
pub const SHUTDOWN_RETRY_MS: u64 = 1000;

/// How often detached sessions are checked for expiry.
const EXPIRY_PERIOD: Duration = Duration::from_secs(1);

/// How long the process waits for its background tasks once they are told
/// to stop. They stop at their next `.await`, so this only bounds one stuck
/// in synchronous work.
const TASKS_STOP_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {addr} ({key}): {source}")]
    Bind { key: &'static str, addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("metrics recorder: {0}")]
    Recorder(String),
    #[error("broker: {0}")]
    Broker(BrokerError),
    #[error("{0}")]
    Backend(BackendError),
    /// A configuration that validates but cannot be served (the TLS files).
    #[error("{0}")]
    Config(ConfigError),
}

/// The TLS set-up of `server.tls`, loaded at start-up: a bad pair stops
/// Tandem here with the key named.
struct TlsSetup {
    store: Arc<tls::CertStore>,
    stamps: tls::Stamps,
    server: rustls::ServerConfig,
}

fn load_tls(config: &Config) -> Result<Option<TlsSetup>, ServeError> {
    let c = &config.server.tls;
    if !c.enabled() {
        return Ok(None);
    }
    let invalid = |e: tls::TlsError| {
        ServeError::Config(ConfigError::Invalid { key: e.key().to_owned(), reason: e.to_string() })
    };
    let provider = tls::provider();
    // Stamped before reading: a change made meanwhile is seen by the watch.
    let stamps = tls::stamps(c);
    let store = Arc::new(tls::CertStore::new(tls::load_pair(c, &provider).map_err(invalid)?));
    let server = tls::server_config(Arc::clone(&store), provider).map_err(invalid)?;
    ev::tls_enabled(c.cert_file.trim(), c.key_file.trim(), c.admin);
    Ok(Some(TlsSetup { store, stamps, server }))
}

/// Lets monitoring read the manager without owning it (the manager owns
/// the monitoring bundle).
struct Stats {
    manager: Weak<ConnectionManager>,
    /// The client listener's address, once bound.
    addr: Arc<OnceLock<String>>,
}

impl ConnectionStatsSource for Stats {
    fn connection_samples(&self) -> Vec<ConnectionSample> {
        self.manager.upgrade().map(|m| m.connection_samples()).unwrap_or_default()
    }
    fn overview(&self) -> ConnectionOverview {
        self.manager.upgrade().map(|m| m.overview()).unwrap_or_default()
    }
    fn player_detail(&self, player_id: &str) -> Option<Value> {
        let view = views::local_player_view(self.manager.upgrade()?.player_snapshot(player_id)?)?;
        serde_json::to_value(view).ok()
    }
    fn last_activity(&self) -> Option<std::time::SystemTime> {
        self.manager.upgrade()?.last_activity()
    }
    fn cluster(&self) -> Option<Value> {
        let manager = self.manager.upgrade()?;
        let addr = self.addr.get().map_or("", String::as_str);
        serde_json::to_value(manager.broker().cluster(&manager.overview(), addr)?).ok()
    }
}

/// File descriptors kept free for everything that is not a client
/// connection (listener, logs, API and health requests, dependency checks,
/// refusals): 5% of the limit, at least 64.
fn fd_reserve(limit: u64) -> u64 {
    (limit / 20).max(64)
}

/// Raises the open-file soft limit to the hard limit and lowers
/// `server.max_connections` if the limit cannot hold it, so that at the cap
/// new clients get a clean 503 `server_full` instead of failed accepts.
fn fit_connection_limit(config: &mut Config) {
    let Ok(limit) = rlimit::increase_nofile_limit(u64::MAX) else { return };
    let fits = limit.saturating_sub(fd_reserve(limit)).max(1);
    let configured = config.server.max_connections as u64;
    if configured > fits {
        config.server.max_connections = usize::try_from(fits).unwrap_or(usize::MAX);
        // The built-in default asks for more than most machines allow:
        // fitting it is routine; fitting an operator's own number is worth a warning.
        let explicit = configured != ServerConfig::default().max_connections as u64;
        ev::connection_limit_fitted(configured, fits, limit, explicit);
    }
}

/// Serves until a shutdown signal; returns once drained.
pub async fn run(config: Config) -> Result<(), ServeError> {
    run_with(config, None).await
}

/// [`run`], with a game that handles commands in process: `handler`
/// answers them instead of `backend.command_url` (docs/backend.md).
pub async fn run_with(
    mut config: Config,
    handler: Option<Arc<dyn CommandHandler>>,
) -> Result<(), ServeError> {
    fit_connection_limit(&mut config);
    let tls = load_tls(&config)?;
    let config = Arc::new(config);
    let prometheus =
        tandem_monitoring::recorder::install().map_err(|e| ServeError::Recorder(e.to_string()))?;
    tandem_monitoring::recorder::describe_all_with_version(VERSION);
    ev::register_metrics();
    let broker = broker::from_config(&config.broker, config.transport.max_message_bytes)
        .map_err(ServeError::Broker)?;
    let addr_cell = Arc::new(OnceLock::new());
    let mut backend_error = None;
    let manager = Arc::new_cyclic(|weak: &Weak<ConnectionManager>| {
        let source = Arc::new(Stats { manager: weak.clone(), addr: Arc::clone(&addr_cell) });
        let monitoring = Monitoring::new(&config.monitoring, VERSION, source, Some(prometheus));
        let telemetry = Telemetry::new(monitoring);
        let backend =
            Backend::new(&config.backend, VERSION, handler, telemetry.clone()).unwrap_or_else(|e| {
                backend_error = Some(e);
                Backend::disabled(telemetry.clone())
            });
        ConnectionManager::new(Limits::from_config(&config), telemetry, broker).with_backend(backend)
    });
    if let Some(e) = backend_error {
        return Err(ServeError::Backend(e));
    }
    let monitoring = Arc::clone(&manager.telemetry().monitoring);
    let supervisor = supervisor_for(&manager);
    spawn_background(&supervisor, &manager, &monitoring);
    if let Some(t) = &tls {
        let (c, store, stamps, tm) =
            (config.server.tls.clone(), Arc::clone(&t.store), t.stamps, manager.telemetry().clone());
        supervisor
            .supervise("tls_reload", move || tls::watch(c.clone(), Arc::clone(&store), stamps, tm.clone()));
    }

    let state = web::Data::new(AppState {
        auth: Authenticator::new(&config.auth),
        origins: OriginPolicy::new(&config.server.allowed_origins),
        telemetry: manager.telemetry().clone(),
        manager: Arc::clone(&manager),
        config: Arc::clone(&config),
    });
    // SSE uplink posts other nodes forward for sessions held here.
    manager.set_uplink_handler(crate::transport::sse::forwarded_posts(state.clone()));
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let grace = config.server.shutdown_grace();
    let listener = listener::bind(config.server.bind).map_err(|source| ServeError::Bind {
        key: "server.bind",
        addr: config.server.bind.to_string(),
        source,
    })?;
    let addr = listener.local_addr().map_or_else(|_| config.server.bind.to_string(), |a| a.to_string());
    let admin_tls = tls.as_ref().filter(|_| config.server.tls.admin).map(|t| t.server.clone());
    let running = listener::serve(&state, listener, workers, tls.map(|t| t.server))?;
    ev::listening(&addr, state.auth.dev_mode(), workers, config.server.max_connections);
    let _ = addr_cell.set(addr.clone());
    start_broker(&supervisor, &manager, addr.clone());

    let admin = match config.server.admin_addr() {
        Some(addr) => Some(admin_server(&state, addr, admin_tls)?),
        None => None,
    };

    let handle = running.handle();
    let admin_handle = admin.as_ref().map(actix_web::dev::Server::handle);
    let admin_task = admin.map(actix_web::rt::spawn);
    let drain_manager = Arc::clone(&manager);
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        // Phase 1, draining: readiness and every publish path answer 503,
        // new clients are refused, live ones told to come back elsewhere.
        monitoring.set_draining();
        let n = drain_manager.begin_shutdown(SHUTDOWN_RETRY_MS);
        ev::shutdown_phase("draining", n);
        // Until the last connection has gone (its goodbye written) or the
        // grace is over, whichever comes first.
        let _ = tokio::time::timeout(grace, drain_manager.drained()).await;
        // Phase 2, stopping: the client listener closes; the admin one
        // (still answering 503) closes last.
        ev::shutdown_phase("stopping", drain_manager.total_connections());
        handle.stop(true).await;
        if let Some(admin) = admin_handle {
            admin.stop(true).await;
        }
    });
    let served = async {
        running.await?;
        manager.telemetry().monitoring.save_state();
        if let Some(task) = admin_task {
            task.await.map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
        }
        Ok::<_, ServeError>(())
    }
    .await;
    // The listeners are closed: the background tasks have nothing left to
    // serve. They stop on their signal; the process waits for them.
    supervisor.stop(TASKS_STOP_WAIT).await;
    served?;
    ev::shutdown_phase("stopped", manager.total_connections());
    Ok(())
}

/// The admin listener (`server.admin_bind`): its own accept loop and one
/// worker, serving the operator routes only; over TLS with the client
/// listener's pair when `server.tls.admin` is on.
fn admin_server(
    state: &web::Data<AppState>,
    addr: std::net::SocketAddr,
    tls: Option<rustls::ServerConfig>,
) -> Result<actix_web::dev::Server, ServeError> {
    let admin_state = state.clone();
    let server = HttpServer::new(move || routes::build_admin(admin_state.clone()))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(STOP_TIMEOUT_SECONDS)
        .backlog(1024)
        .client_request_timeout(Duration::from_secs(10));
    let bound = match tls {
        None => server.bind(addr),
        Some(tls) => server.bind_rustls_0_23(addr, tls),
    };
    let server = bound.map_err(|source| ServeError::Bind {
        key: "server.admin_bind",
        addr: addr.to_string(),
        source,
    })?;
    let bound = server.addrs().first().map_or_else(|| addr.to_string(), ToString::to_string);
    ev::admin_listening(&bound);
    Ok(server.run())
}

/// The supervisor of the background tasks, reporting failures through the
/// manager's telemetry (a critical `system_error` and a restart counted).
fn supervisor_for(manager: &Arc<ConnectionManager>) -> Supervisor {
    let m = Arc::clone(manager);
    Supervisor::new(Arc::new(move |name: &'static str, err: &str, backoff: Duration| {
        ev::task_failed(m.telemetry(), name, err, backoff)
    }))
}

fn spawn_background(supervisor: &Supervisor, manager: &Arc<ConnectionManager>, monitoring: &Arc<Monitoring>) {
    let m = Arc::clone(manager);
    let period = m.sweep_period();
    supervisor.supervise("heartbeat_sweep", move || {
        let m = Arc::clone(&m);
        async move {
            every(period, || {
                m.heartbeat_sweep();
            })
            .await
        }
    });
    let m = Arc::clone(manager);
    supervisor.supervise("session_expiry", move || {
        let m = Arc::clone(&m);
        async move {
            every(EXPIRY_PERIOD, || {
                m.expire_sessions();
                m.backend().sweep(m.now_ms());
                m.presence_sweep();
            })
            .await
        }
    });
    for sender in manager.backend().events.senders() {
        supervisor.supervise("lifecycle_events", sender);
    }
    let mon = Arc::clone(monitoring);
    supervisor.supervise("health_checks", move || Arc::clone(&mon).run_health_loop());
    let mon = Arc::clone(monitoring);
    supervisor.supervise("system_sampler", move || Arc::clone(&mon).run_sampler_loop());
}

/// The broker's `/health` component and background tasks (a cluster
/// broker's link, publisher and presence; nothing for a single node), once
/// the client listener's address is known.
fn start_broker(supervisor: &Supervisor, manager: &Arc<ConnectionManager>, addr: String) {
    let broker = Arc::clone(manager.broker());
    if let Some(check) = Arc::clone(&broker).health_check() {
        manager.telemetry().monitoring.health.register(check);
    }
    let node: Arc<dyn LocalNode> = Arc::clone(manager) as Arc<dyn LocalNode>;
    for task in broker.tasks(node, addr) {
        supervisor.supervise(task.name, task.run);
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fd_reserve;

    #[test]
    fn reserve_is_five_percent_with_a_floor() {
        assert_eq!(fd_reserve(20_000), 1_000);
        assert_eq!(fd_reserve(1_024), 64);
    }
}
