//! SSE uplink posts that reached another node: that node hands them here
//! through the broker, this node runs them as if posted here and sends the
//! answer back. The running itself is the HTTP layer's (`transport::sse`),
//! installed at start-up ([`ConnectionManager::set_uplink_handler`]), since
//! the manager does not depend on it.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::ConnectionManager;
use crate::session::identity::Identity;

/// Runs a forwarded uplink post (`session id`, sender, body) and gives its
/// answer: HTTP status and JSON body.
pub type UplinkHandler =
    Arc<dyn Fn(String, Identity, Bytes) -> BoxFuture<'static, (u16, Bytes)> + Send + Sync>;

impl ConnectionManager {
    /// Installs what runs uplink posts forwarded by other nodes (once).
    pub fn set_uplink_handler(&self, handler: UplinkHandler) {
        let _ = self.uplink_handler.set(handler);
    }

    /// Runs a post node `origin` forwarded, in a task, and answers it.
    pub(super) fn forwarded_uplink(
        &self,
        origin: &str,
        request: u64,
        session_id: String,
        who: Identity,
        body: Bytes,
    ) {
        let Some(handler) = self.uplink_handler.get().cloned() else { return };
        let (broker, origin) = (Arc::clone(&self.broker), origin.to_owned());
        tokio::spawn(async move {
            let (status, answer) = handler(session_id, who, body).await;
            broker.answer_uplink(&origin, request, status, answer);
        });
    }
}
