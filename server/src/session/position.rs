//! A publication's place in its channel's history, and the plan for
//! catching a resumed session up from what its client last received.
//!
//! With a cluster broker every publication gets a position in its channel
//! (Centrifugo's idea): the channel's `epoch` (when its history began, µs;
//! a new one after Redis lost it), an `offset` (1, 2, 3… per channel) and a
//! `tag` (when that entry was written, µs), so that an entry rewritten
//! after a failover lost writes is told apart from the one the client got.
//! Clients keep the last position of each channel and present them when
//! they resume; any node can then replay what they missed from the shared
//! history, or say it cannot ([`Gap`]). Plain synchronous code: the broker
//! reads, this decides.

use std::fmt;

/// Where a publication stands in its channel, as `"<epoch>.<offset>.<tag>"`
/// on the wire (`pos` in a delivery, `positions` on a resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
    /// 0 when not known (a subscription's starting point).
    pub tag: u64,
}

impl Position {
    /// Parses `"<epoch>.<offset>.<tag>"`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.').map(|n| if n.len() <= 20 { n.parse::<u64>().ok() } else { None });
        let p = Self { epoch: it.next()??, offset: it.next()??, tag: it.next()?? };
        it.next().is_none().then_some(p)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.epoch, self.offset, self.tag)
    }
}

/// What the cluster keeps of a session, so that any node can take it over:
/// written when it changes (created, subscribed, moved), never only when a
/// connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub player_id: String,
    /// The node holding it.
    pub node: String,
    /// Each channel it is subscribed to (and `broadcast`), with the
    /// channel's position when the subscription was recorded: where a
    /// client that received nothing on it since starts from.
    pub channels: Vec<(String, Position)>,
}

/// Why a channel's missed publications cannot be replayed: each is a
/// `resync_required`, never a silent loss (the `reason` label of
/// `tandem_resume_gaps_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The channel's history began again (Redis restarted empty, or its
    /// history expired) since the client's position.
    Epoch,
    /// The client is past the channel's last offset (history lost after a
    /// failover).
    Ahead,
    /// Publications after the client's position fell out of the history
    /// (its size or lifetime).
    Trimmed,
    /// The entry at the client's position is not the one it received
    /// (rewritten after a failover lost writes).
    Rewritten,
    /// More was missed than a resume replays (`session.history_size`, the
    /// same bound as a resume on the session's own node).
    TooFar,
}

impl Gap {
    pub fn as_str(self) -> &'static str {
        match self {
            Gap::Epoch => "epoch_changed",
            Gap::Ahead => "position_ahead",
            Gap::Trimmed => "history_trimmed",
            Gap::Rewritten => "history_rewritten",
            Gap::TooFar => "replay_too_long",
        }
    }
}

/// What the history holds for a channel: its epoch and last offset (`None`:
/// nothing was ever published, or it expired), and its entries from the
/// client's offset on, `(offset, tag, item)`, oldest first; `capped` when
/// the read stopped at the replay budget.
#[derive(Debug)]
pub struct History<T> {
    pub top: Option<(u64, u64)>,
    pub entries: Vec<(u64, u64, T)>,
    pub capped: bool,
}

/// The publications a client at `from` missed, oldest first, or the reason
/// they cannot all be had. `from` with epoch 0 is a subscription made
/// before the channel had any history: everything from offset 1 is missed.
pub fn missed<T>(from: Position, history: History<T>) -> Result<Vec<(u64, T)>, Gap> {
    let Some((epoch, top)) = history.top else {
        // No history: fine only if the client had nothing either.
        return if from.offset == 0 { Ok(Vec::new()) } else { Err(Gap::Epoch) };
    };
    if from.epoch != 0 && from.epoch != epoch {
        return Err(Gap::Epoch);
    }
    if from.offset > top {
        return Err(Gap::Ahead);
    }
    let mut out = Vec::new();
    let mut next = from.offset + 1;
    for (offset, tag, item) in history.entries {
        if offset < from.offset {
            continue;
        }
        if offset == from.offset {
            if from.tag != 0 && tag != from.tag {
                return Err(Gap::Rewritten);
            }
            continue;
        }
        if offset != next {
            return Err(Gap::Trimmed);
        }
        out.push((offset, item));
        next += 1;
    }
    // Entries written after `top` was read are welcome; fewer are a hole,
    // or the replay budget when the read stopped there.
    match (next <= top, history.capped) {
        (false, _) => Ok(out),
        (true, true) => Err(Gap::TooFar),
        (true, false) => Err(Gap::Trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: u64, offset: u64, tag: u64) -> Position {
        Position { epoch, offset, tag }
    }

    fn history(top: Option<(u64, u64)>, entries: &[(u64, u64)]) -> History<u64> {
        History { top, entries: entries.iter().map(|&(o, t)| (o, t, o * 10)).collect(), capped: false }
    }

    #[test]
    fn positions_read_back_what_they_write() {
        let p = pos(1_733_000_000_000_000, 42, 1_733_000_000_123_456);
        assert_eq!(Position::parse(&p.to_string()), Some(p));
        for bad in ["", "1.2", "1.2.3.4", "a.1.2", "1..2", "-1.2.3", "1.2.99999999999999999999999"] {
            assert_eq!(Position::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn replays_what_follows_the_clients_entry() {
        let h = history(Some((7, 5)), &[(3, 33), (4, 44), (5, 55)]);
        assert_eq!(missed(pos(7, 3, 33), h), Ok(vec![(4, 40), (5, 50)]));
        let h = history(Some((7, 5)), &[(5, 55)]);
        assert_eq!(missed(pos(7, 5, 55), h), Ok(vec![]), "up to date");
        let h = history(Some((7, 5)), &[(4, 44), (5, 55), (6, 66)]);
        assert_eq!(
            missed(pos(7, 3, 33), h),
            Ok(vec![(4, 40), (5, 50), (6, 60)]),
            "the client's own was trimmed"
        );
    }

    #[test]
    fn every_hole_is_a_gap_never_a_silent_loss() {
        let h = || history(Some((7, 5)), &[(4, 44), (5, 55)]);
        assert_eq!(missed(pos(6, 3, 33), h()), Err(Gap::Epoch), "Redis restarted empty, then published");
        assert_eq!(missed(pos(7, 2, 22), h()), Err(Gap::Trimmed), "offset 3 is gone");
        assert_eq!(missed(pos(7, 9, 99), h()), Err(Gap::Ahead), "a failover lost offsets 6 to 9");
        assert_eq!(missed(pos(7, 4, 40), h()), Err(Gap::Rewritten), "offset 4 is not the one received");
        assert_eq!(missed(pos(7, 3, 33), history(Some((7, 5)), &[])), Err(Gap::Trimmed), "history expired");
        assert_eq!(missed(pos(7, 3, 33), history(None, &[])), Err(Gap::Epoch), "everything expired");
        assert_eq!(missed(pos(7, 1, 11), history(Some((7, 3)), &[(2, 2), (4, 4)])), Err(Gap::Trimmed));
        let capped = History { capped: true, ..history(Some((7, 9)), &[(3, 33), (4, 44)]) };
        assert_eq!(missed(pos(7, 3, 33), capped), Err(Gap::TooFar), "more than a resume replays");
    }

    #[test]
    fn a_subscription_before_any_history_replays_from_the_start() {
        assert_eq!(missed(pos(0, 0, 0), history(None, &[])), Ok(vec![]));
        let h = history(Some((7, 2)), &[(1, 11), (2, 22)]);
        assert_eq!(missed(pos(0, 0, 0), h), Ok(vec![(1, 10), (2, 20)]));
        assert_eq!(missed(pos(0, 0, 0), history(Some((7, 2)), &[(2, 22)])), Err(Gap::Trimmed));
    }
}
