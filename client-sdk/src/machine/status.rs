//! The observable status of a client, and how the two links of dual mode
//! add up to one.

use std::collections::BTreeSet;
use std::time::Duration;

use super::transport_plan::Transport;

/// Where a client stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The first attempt is under way.
    Connecting,
    /// Welcomed; `transport` holds the open transport (both, in dual mode
    /// with both links up).
    Connected { transport: BTreeSet<Transport> },
    /// Waiting `delay` before retry number `attempt` (1-based).
    Reconnecting { attempt: u32, delay: Duration },
    /// No more attempts: closed by the application (`code` 1000), told to
    /// stop by the server (4001, an auth refusal's HTTP status), or out of
    /// attempts (`code` `None`).
    Disconnected { code: Option<u16>, reason: String },
}

impl Status {
    /// `Connected` over one transport.
    pub fn connected(transport: Transport) -> Self {
        Self::Connected { transport: BTreeSet::from([transport]) }
    }

    /// Whether at least one link is welcomed.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }
}

/// The client's status from its slots' statuses (one slot, or two in dual
/// mode): connected when any link is, over the union of the open
/// transports; otherwise the most hopeful of the rest (connecting, then the
/// soonest reconnect); disconnected only when every slot is.
pub fn combine(slots: &[Status]) -> Status {
    let open: BTreeSet<Transport> = slots
        .iter()
        .filter_map(|s| match s {
            Status::Connected { transport } => Some(transport.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    if !open.is_empty() {
        return Status::Connected { transport: open };
    }
    if slots.iter().any(|s| matches!(s, Status::Connecting)) {
        return Status::Connecting;
    }
    let soonest = slots
        .iter()
        .filter_map(|s| match s {
            Status::Reconnecting { attempt, delay } => Some((*delay, *attempt)),
            _ => None,
        })
        .min();
    if let Some((delay, attempt)) = soonest {
        return Status::Reconnecting { attempt, delay };
    }
    slots.first().cloned().unwrap_or(Status::Disconnected { code: None, reason: "no connection".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(code: u16) -> Status {
        Status::Disconnected { code: Some(code), reason: "r".into() }
    }

    #[test]
    fn one_slot_is_itself() {
        for s in [
            Status::Connecting,
            Status::connected(Transport::Sse),
            Status::Reconnecting { attempt: 3, delay: Duration::from_millis(9) },
            down(4001),
        ] {
            assert_eq!(combine(std::slice::from_ref(&s)), s);
        }
    }

    #[test]
    fn dual_is_connected_over_the_open_links() {
        let both = combine(&[Status::connected(Transport::WebSocket), Status::connected(Transport::Sse)]);
        assert_eq!(
            both,
            Status::Connected { transport: BTreeSet::from([Transport::WebSocket, Transport::Sse]) }
        );
        let one = combine(&[
            Status::Reconnecting { attempt: 1, delay: Duration::ZERO },
            Status::connected(Transport::Sse),
        ]);
        assert_eq!(one, Status::connected(Transport::Sse));
    }

    #[test]
    fn dual_without_links_reports_the_most_hopeful() {
        let r = |attempt, ms| Status::Reconnecting { attempt, delay: Duration::from_millis(ms) };
        assert_eq!(combine(&[r(2, 400), Status::Connecting]), Status::Connecting);
        assert_eq!(combine(&[r(2, 400), r(5, 100)]), r(5, 100));
        assert_eq!(combine(&[down(401), r(1, 10)]), r(1, 10));
        assert_eq!(combine(&[down(401), down(401)]), down(401));
        assert!(matches!(combine(&[]), Status::Disconnected { code: None, .. }));
    }
}
