//! What every HTTP handler can reach. Its own module so the route table
//! (`server::routes`) and the handlers (`http::api`, `transport`) both
//! depend on it instead of on each other.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::origin::OriginPolicy;
use crate::manager::ConnectionManager;
use crate::telemetry::Telemetry;

pub struct AppState {
    pub config: Arc<Config>,
    pub manager: Arc<ConnectionManager>,
    /// The same handles the manager records through: handlers record here
    /// rather than reaching through the manager.
    pub telemetry: Telemetry,
    pub auth: Authenticator,
    pub origins: OriginPolicy,
}
