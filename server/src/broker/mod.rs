//! The broker: the seam between "publication accepted" (id assigned,
//! payload serialized once) and "local fan-out". The manager hands every
//! accepted publication to its broker, which carries it to the other nodes
//! (each of which fans it out locally), then fans it out here.
//!
//! - [`memory`]: one process, nothing to carry (the default).
//! - [`redis`]: many nodes sharing one Redis: one `PUBLISH` per publication,
//!   one subscriber per node, node and player presence in keys with expiry.
//!
//! The server holds a broker only as `Arc<dyn Broker>`: what a cluster
//! broker needs at start-up (its background tasks, its `/health`
//! component) and what it adds to monitoring (the cluster document) are
//! trait methods, no-ops for the memory broker.

pub mod document;
pub mod memory;
pub mod redis;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use futures_util::future::BoxFuture;
use tandem_monitoring::{ConnectionOverview, HealthCheck};
use tandem_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::config::{BrokerConfig, BrokerKind};
use crate::session::channel_presence::{Change, NodePresence};
use crate::session::identity::Identity;
use crate::session::position::{History, Position, StoredSession};
use crate::session::protocol::Publication;
use crate::session::revocation::Revocation;
use crate::session::snapshot::{PlayerSnapshot, RemotePlayer};
use crate::telemetry::Telemetry;
use document::ClusterDocument;

/// The broker `broker.kind` asks for. Redis is only checked here (the URL);
/// it connects in its background tasks ([`Broker::tasks`]).
/// `max_message_bytes` bounds what is read from other nodes.
pub fn from_config(cfg: &BrokerConfig, max_message_bytes: usize) -> Result<Arc<dyn Broker>, BrokerError> {
    Ok(match cfg.kind {
        BrokerKind::Memory => Arc::new(memory::MemoryBroker),
        BrokerKind::Redis => redis::RedisBroker::new(cfg, max_message_bytes)?,
    })
}

/// Who a publication is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The sessions subscribed to its channel.
    Channel,
    /// Every live session.
    Broadcast,
}

/// An accepted publication on its way to the sessions.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub scope: Scope,
    pub publication: Arc<Publication>,
    /// Its id is the backend's (`"id"` in the request): each node delivers
    /// it at most once within [`crate::session::recent_ids::WINDOW_MS`].
    pub keyed: bool,
}

/// Why the broker could not carry a publication (or answer a question).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    #[error("the broker did not confirm within {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl BrokerError {
    /// The stable error code clients and backends see.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::BrokerUnavailable
    }
}

/// What the broker confirms of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// It is on its way to every node.
    Sent,
    /// A publication with the backend's id that some node already
    /// published within the id window: nothing was sent again.
    AlreadyPublished,
}

/// The broker's confirmation that the other nodes got a message.
pub type Ack = oneshot::Receiver<Result<Confirmed, BrokerError>>;

/// Waits for `ack` at most `timeout`; `None` (no other node) is confirmed.
pub async fn confirm(ack: Option<Ack>, timeout: Duration) -> Result<Confirmed, BrokerError> {
    let Some(ack) = ack else { return Ok(Confirmed::Sent) };
    match tokio::time::timeout(timeout, ack).await {
        Ok(Ok(result)) => result,
        Ok(Err(_dropped)) => Err(BrokerError::Unavailable("the publisher stopped".into())),
        Err(_) => Err(BrokerError::Timeout(timeout)),
    }
}

/// What a cluster broker needs of the node it serves: the manager, seen
/// through this trait so the broker does not depend on it (the manager
/// depends on the broker).
pub trait LocalNode: Send + Sync {
    /// Fans a publication from another node out to this node's sessions.
    fn fan_out_local(&self, envelope: &Envelope);
    /// Sends every live connection a `resync` frame; returns how many.
    fn resync_all(&self, reason: &'static str) -> usize;
    /// This node's counts, for its presence key.
    fn overview(&self) -> ConnectionOverview;
    fn total_connections(&self) -> usize;
    /// Players with a session here, and one's sessions.
    fn local_players(&self) -> Vec<String>;
    fn player_snapshot(&self, player_id: &str) -> Option<PlayerSnapshot>;
    fn telemetry(&self) -> &Telemetry;
    /// Ends every session of a player here (a `disconnect` from another
    /// node), telling its clients `reason` when the backend gave one.
    fn disconnect_player(&self, player_id: &str, reason: Option<&str>);
    /// Applies a token revocation from another node (or from the store,
    /// when the link to it comes up).
    fn apply_revocation(&self, revocation: &Revocation);
    /// This node's sessions, `(session id, player id)`.
    fn local_sessions(&self) -> Vec<(String, String)>;
    /// Sessions dead node `node` held: their `player_left` is due after
    /// `after` (unless another node took them over).
    fn sessions_lost(&self, node: &str, sessions: Vec<(String, String)>, after: Duration);
    /// Node `node` took over a session: drop this node's copy, quietly.
    fn session_moved(&self, session_id: &str, node: &str);
    /// Node `origin` forwarded an SSE uplink post for a session here: run
    /// it as if posted here, and answer through
    /// [`Broker::answer_uplink`].
    fn uplink(&self, origin: &str, request: u64, session_id: String, who: Identity, body: Bytes);
    /// How long a session without a connection may be resumed.
    fn resume_window(&self) -> Duration;
    /// Node `origin` decided a player's `join` or `leave` of a channel.
    fn presence_event(&self, origin: &str, change: Change, channel: &str, player_id: &str);
}

/// Makes one run of a background task; called again for each restart.
pub type TaskFactory = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A background task a broker needs, for the server's supervisor to run,
/// restart when it fails and stop at shutdown.
pub struct BrokerTask {
    /// Its name in `Background task … failed` and `tandem_task_restarts_total`.
    pub name: &'static str,
    pub run: TaskFactory,
}

impl std::fmt::Debug for BrokerTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTask").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Carries publications between nodes and answers cluster-wide questions.
/// Publishing never waits: [`Broker::forward`] queues and returns an
/// [`Ack`] to await where an answer can wait (the backend API).
pub trait Broker: Send + Sync {
    /// `"memory"` or `"redis"`, for logs and `/health`.
    fn kind(&self) -> &'static str;

    /// Hands an accepted publication to the other nodes. An error means
    /// it went nowhere: the caller delivers nothing locally either.
    fn forward(&self, envelope: &Envelope) -> Result<Option<Ack>, BrokerError>;

    /// Whether publications come back to their origin through the broker,
    /// which then fans them out here too, in the order every node sees
    /// them (and placed in their channel's history): the caller must not
    /// fan them out itself.
    fn delivers_own(&self) -> bool {
        false
    }

    /// Tells the other nodes to end every session of `player_id` (backend
    /// `disconnect`, with its `reason`); `Ok(None)`: there are no other nodes.
    fn disconnect_player(&self, _player_id: &str, _reason: Option<&str>) -> Result<Option<Ack>, BrokerError> {
        Ok(None)
    }

    /// Stores a token revocation (until no token it names is valid) and
    /// tells the other nodes at once; the caller applies it here.
    /// `Ok(None)`: there are no other nodes.
    fn revoke(&self, _revocation: &Revocation) -> Result<Option<Ack>, BrokerError> {
        Ok(None)
    }

    /// A session started on this node (cluster brokers record it, so a
    /// survivor can end it if this node dies).
    fn session_opened(&self, _session_id: &str, _player_id: &str) {}

    /// A session of this node ended.
    fn session_closed(&self, _session_id: &str) {}

    /// Claims the right to send a session's `player_left`, so one node of
    /// the cluster sends it; `holder` is the node that held it (`None`:
    /// this one), and the claim fails once another node has taken it over.
    /// The future says whether this node won. `None`: no other node could,
    /// send it.
    fn claim_departure(&self, _session_id: &str, _holder: Option<&str>) -> Option<BoxFuture<'static, bool>> {
        None
    }

    /// A session of this node subscribed to `channel` (`false`: left it).
    /// Cluster brokers record it with the channel's position, so another
    /// node can resume the session.
    fn session_subscribed(&self, _session_id: &str, _channel: &str, _subscribed: bool) {}

    /// What the cluster holds of a session this node does not (`None`:
    /// nothing, or a single node).
    fn stored_session<'a>(
        &'a self,
        _session_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredSession>, BrokerError>> {
        Box::pin(async { Ok(None) })
    }

    /// Each channel's history from a position on (see
    /// [`crate::session::position::missed`]), in the order asked, at most
    /// `budget` entries past the positions in all (the rest `capped`).
    fn read_history<'a>(
        &'a self,
        _from: &'a [(Arc<str>, Position)],
        _budget: usize,
    ) -> BoxFuture<'a, Result<Vec<History<Arc<Publication>>>, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("no history on a single node".into())) })
    }

    /// This node took over a session another node held: it is recorded
    /// here, and the other node drops its copy without a `player_left`.
    fn session_adopted(&self, _session_id: &str, _player_id: &str) {}

    /// Hands an SSE uplink post (its verified sender `who` and its `body`)
    /// to `node`, which holds `session_id`, and waits for its answer
    /// (status, JSON body) at most `broker.publish_timeout_ms`.
    fn forward_uplink<'a>(
        &'a self,
        _node: &'a str,
        _session_id: &'a str,
        _who: &'a Identity,
        _body: Bytes,
    ) -> BoxFuture<'a, Result<(u16, Bytes), BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("no other node".into())) })
    }

    /// Sends node `node` the answer to its uplink post `request`.
    fn answer_uplink(&self, _node: &str, _request: u64, _status: u16, _body: Bytes) {}

    /// Whether [`Broker::player_presence`] is wanted (snapshots cost).
    fn wants_presence(&self) -> bool {
        false
    }

    /// What this node now holds of a player (`None`: nothing).
    fn player_presence(&self, _player_id: &str, _snapshot: Option<PlayerSnapshot>) {}

    /// The player's sessions and connections on the other live nodes.
    fn remote_player<'a>(&'a self, _player_id: &'a str) -> BoxFuture<'a, Result<RemotePlayer, BrokerError>> {
        Box::pin(async { Ok(RemotePlayer::default()) })
    }

    /// Records who is in `channel` on this node (`None`: nobody), so
    /// other nodes list them; only called when [`Broker::wants_presence`].
    fn channel_presence(&self, _channel: &str, _here: Option<NodePresence>) {}

    /// Who is in `channel` on each other live node: their counts, and with
    /// `players` their lists.
    fn remote_presence<'a>(
        &'a self,
        _channel: &'a str,
        _players: bool,
    ) -> BoxFuture<'a, Result<Vec<NodePresence>, BrokerError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Tells the other nodes of a `join` or `leave` decided here, for their
    /// subscribers of `channel`.
    fn presence_event(&self, _change: Change, _channel: &str, _player_id: &str) {}

    /// The other nodes alive as of the last heartbeat; `None` when not
    /// known (a single node, or the link is down).
    fn live_nodes(&self) -> Option<Vec<String>> {
        None
    }

    /// The background tasks that carry this broker, to be run under
    /// supervision once the client listener is bound: `node` is this node's
    /// manager, `addr` the listener's address (what the node advertises).
    /// None for a single node.
    fn tasks(self: Arc<Self>, _node: Arc<dyn LocalNode>, _addr: String) -> Vec<BrokerTask> {
        Vec::new()
    }

    /// `/health`'s component for the link to the other nodes, if there is one.
    fn health_check(self: Arc<Self>) -> Option<Box<dyn HealthCheck>> {
        None
    }

    /// The `cluster` object of `/monitoring/connections`: this node's
    /// counts (`local`, listening on `addr`) beside the other nodes'.
    /// `None` for a single node.
    fn cluster(&self, _local: &ConnectionOverview, _addr: &str) -> Option<ClusterDocument> {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn confirm_waits_at_most_the_timeout() {
        assert_eq!(confirm(None, Duration::from_millis(1)).await, Ok(Confirmed::Sent));
        let (tx, rx) = oneshot::channel();
        tx.send(Ok(Confirmed::AlreadyPublished)).unwrap();
        assert_eq!(confirm(Some(rx), Duration::from_millis(1)).await, Ok(Confirmed::AlreadyPublished));
        let (_tx, rx) = oneshot::channel::<Result<Confirmed, BrokerError>>();
        let err = confirm(Some(rx), Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(err, BrokerError::Timeout(Duration::from_millis(20)));
        assert_eq!(err.code(), ErrorCode::BrokerUnavailable);
        let (tx, rx) = oneshot::channel::<Result<Confirmed, BrokerError>>();
        drop(tx);
        assert!(matches!(confirm(Some(rx), Duration::from_secs(1)).await, Err(BrokerError::Unavailable(_))));
    }
}
