//! Token refresh, expiry warnings and revocations.

use metrics::{Unit, counter, describe_counter};
use tracing::{debug, info, warn};

use super::{Ids, label};

pub const TOKEN_REFRESHES_TOTAL: &str = "tandem_token_refreshes_total";
pub const TOKEN_EXPIRY_WARNINGS_TOTAL: &str = "tandem_token_expiry_warnings_total";
pub const TOKEN_REVOCATIONS_TOTAL: &str = "tandem_token_revocations_total";

/// Outcomes of a `refresh` (the `outcome` label).
const REFRESH_OUTCOMES: [&str; 2] = ["ok", "refused"];
/// Kinds of revocation (the `kind` label): by `jti` or by player.
const REVOCATION_KINDS: [&str; 2] = ["jti", "player"];

pub(super) fn register_token_metrics() {
    describe_counter!(
        TOKEN_REFRESHES_TOTAL,
        Unit::Count,
        "Client `refresh` messages, by outcome (ok, refused)."
    );
    describe_counter!(TOKEN_EXPIRY_WARNINGS_TOTAL, Unit::Count, "`token_expiring` frames sent.");
    describe_counter!(
        TOKEN_REVOCATIONS_TOTAL,
        Unit::Count,
        "Token revocations applied on this node, by kind (jti, player)."
    );
    for o in REFRESH_OUTCOMES {
        counter!(TOKEN_REFRESHES_TOTAL, "outcome" => o).absolute(0);
    }
    for k in REVOCATION_KINDS {
        counter!(TOKEN_REVOCATIONS_TOTAL, "kind" => k).absolute(0);
    }
    counter!(TOKEN_EXPIRY_WARNINGS_TOTAL).absolute(0);
}

/// A connection's token was replaced by `refresh` (`code` is `None`) or
/// the refresh was refused with `code`.
pub fn token_refreshed(ids: Ids<'_>, code: Option<&'static str>, unsubscribed: usize) {
    let outcome = if code.is_some() { "refused" } else { "ok" };
    counter!(TOKEN_REFRESHES_TOTAL, "outcome" => outcome).increment(1);
    debug!(
        player_id = ids.player_id,
        session_id = ids.session_id,
        connection_type = label(ids.transport),
        outcome,
        code = code.unwrap_or(""),
        unsubscribed,
        "Token refresh"
    );
}

/// `token_expiring` was queued on a connection.
pub fn token_expiring(ids: Ids<'_>, expires_at_ms: u64) {
    counter!(TOKEN_EXPIRY_WARNINGS_TOTAL).increment(1);
    debug!(
        player_id = ids.player_id,
        session_id = ids.session_id,
        connection_id = ids.connection_id,
        expires_at_ms,
        "Token expiring"
    );
}

/// A revocation was applied here (`origin`: `api` or `broker`); `closed`
/// live connections held a token it names.
pub fn token_revoked(kind: &'static str, origin: &'static str, closed: usize) {
    counter!(TOKEN_REVOCATIONS_TOTAL, "kind" => kind).increment(1);
    info!(kind, origin, closed_connections = closed, "Token revoked");
}

/// The revocation list was full: an unexpired entry was dropped.
pub fn revocation_evicted(cap: usize) {
    warn!(cap, "Revocation list full (auth.max_revocations): dropped the entry expiring soonest");
}
