//! Sessions taken over from another node: how their catch-up went.

use metrics::{Unit, counter, describe_counter};
use tracing::{info, warn};

use super::Ids;

pub const SESSIONS_TAKEN_OVER_TOTAL: &str = "tandem_sessions_taken_over_total";
pub const RESUME_GAPS_TOTAL: &str = "tandem_resume_gaps_total";

/// Why a catch-up could not be complete (the `reason` label): the
/// [`crate::session::position::Gap`] names, a history that could not be
/// read, and a live backlog past the queue while it was read.
pub const GAP_REASONS: [&str; 8] = [
    "epoch_changed",
    "position_ahead",
    "history_trimmed",
    "history_rewritten",
    "replay_too_long",
    "history_unavailable",
    "backlog_overflow",
    "subscription_unrecorded",
];

pub(super) fn register_resume_metrics() {
    describe_counter!(
        SESSIONS_TAKEN_OVER_TOTAL,
        Unit::Count,
        "Sessions another node held, resumed here from the cluster's history, by outcome (resumed, resync)."
    );
    describe_counter!(
        RESUME_GAPS_TOTAL,
        Unit::Count,
        "Resumes that could not replay everything missed (resync_required), by reason."
    );
    for outcome in ["resumed", "resync"] {
        counter!(SESSIONS_TAKEN_OVER_TOTAL, "outcome" => outcome).absolute(0);
    }
    for reason in GAP_REASONS {
        counter!(RESUME_GAPS_TOTAL, "reason" => reason).absolute(0);
    }
}

/// A session another node held was resumed here: `replayed` publications
/// from the cluster's history, or a gap (`resync_required`), never silent.
pub fn session_taken_over(
    ids: Ids<'_>,
    from_node: &str,
    channels: usize,
    replayed: usize,
    gap: Option<(&'static str, &str)>,
) {
    match gap {
        None => {
            counter!(SESSIONS_TAKEN_OVER_TOTAL, "outcome" => "resumed").increment(1);
            info!(
                player_id = ids.player_id,
                session_id = ids.session_id,
                connection_id = ids.connection_id,
                from_node,
                channels,
                replayed,
                "Session taken over"
            );
        }
        Some((reason, channel)) => {
            counter!(SESSIONS_TAKEN_OVER_TOTAL, "outcome" => "resync").increment(1);
            counter!(RESUME_GAPS_TOTAL, "reason" => reason).increment(1);
            warn!(
                player_id = ids.player_id,
                session_id = ids.session_id,
                connection_id = ids.connection_id,
                from_node,
                channel,
                reason,
                "Resume gap: the client must resync"
            );
        }
    }
}

/// Another node took a session of this node over: this node's copy ends
/// (no `player_left`: the player is still here, elsewhere).
pub fn session_moved(session_id: &str, player_id: &str, to_node: &str) {
    info!(session_id, player_id, to_node, "Session moved to another node");
}
