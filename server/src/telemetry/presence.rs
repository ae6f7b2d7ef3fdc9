//! Channel presence events: players coming into and leaving channels.

use super::*;

/// Players present in channels on this node, by namespace.
pub const PRESENCE_PLAYERS: &str = "tandem_presence_players";
/// Joins and leaves decided on this node, by namespace and type.
pub const PRESENCE_EVENTS_TOTAL: &str = "tandem_presence_events_total";

pub(super) fn register_presence_metrics() {
    describe_gauge!(
        PRESENCE_PLAYERS,
        Unit::Count,
        "Players present in channels on this node (one per player and channel), by namespace."
    );
    describe_counter!(
        PRESENCE_EVENTS_TOTAL,
        Unit::Count,
        "Channel joins and leaves decided on this node (after the grace), by namespace and type."
    );
    for kind in ["join", "leave"] {
        counter!(PRESENCE_EVENTS_TOTAL, "namespace" => "room", "type" => kind).absolute(0);
    }
    gauge!(PRESENCE_PLAYERS, "namespace" => "room").set(0.0);
}

/// A player came into (`join`) or left (`leave`) a channel of `namespace`
/// (a label bounded by the configuration: see `ConnectionManager::namespace_label`).
pub fn presence_changed(namespace: String, kind: &'static str, channel: &str, player_id: &str) {
    counter!(PRESENCE_EVENTS_TOTAL, "namespace" => namespace.clone(), "type" => kind).increment(1);
    let g = gauge!(PRESENCE_PLAYERS, "namespace" => namespace);
    if kind == "join" {
        g.increment(1.0);
    } else {
        g.decrement(1.0);
    }
    debug!(channel, player_id, kind, "Channel presence changed");
}
