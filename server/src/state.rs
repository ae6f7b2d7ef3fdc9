//! What every HTTP handler can reach. Its own module so the route table
//! (`app`) and the handlers (`api`, `transport`) both depend on it instead
//! of on each other.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::manager::ConnectionManager;
use crate::origin::OriginPolicy;

pub struct AppState {
    pub config: Arc<Config>,
    pub manager: Arc<ConnectionManager>,
    pub auth: Authenticator,
    pub origins: OriginPolicy,
}
