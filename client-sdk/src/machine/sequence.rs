//! Exactly-once, in-order delivery: every `seq` reaches the application
//! once, whichever link (or both, in dual mode) carried it, and a welcome
//! decides whether the count goes on, or the application must reload.

use crate::frames::Welcome;

/// What to do with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The next `seq`: hand it to the application.
    Deliver,
    /// Already delivered (a replay overlap, or the other link of dual mode).
    Duplicate,
    /// A `seq` beyond the next one: something in between is missing. It is
    /// not delivered; the link is resumed from the last delivered `seq`, so
    /// the server fills the gap.
    Gap { expected: u64, got: u64 },
}

/// Why the application must reload its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncReason {
    /// The server said `resync_required`: the gap is older than its history.
    ResyncRequired,
    /// The server did not resume the session it was asked to resume.
    NotResumed,
    /// The session is gone (expired, or the server restarted); a new one
    /// replaced it.
    NewSession { previous: String },
    /// The server sent a `resync` frame (its link to the other nodes was
    /// lost, e.g. `broker_reconnected`): publications may be missing though
    /// the session and its `seq` go on.
    Server { reason: String },
}

/// What a welcome means for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WelcomeOutcome {
    /// The first session of this client.
    Fresh,
    /// The same session, continued: replays (if any) follow.
    Resumed,
    /// Deliveries were lost for good; the sequence state was reset to the
    /// welcome's `last_seq`.
    Resync(ResyncReason),
}

/// The delivery state shared by every link of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqGate {
    session_id: Option<String>,
    /// The highest `seq` handed to the application (or skipped by a resync).
    last_seq: u64,
    /// The last position delivered in each channel (`(channel, pos)`), for
    /// a resume on any node of a cluster; forgotten at a resync (the
    /// application reloads, so there is nothing to replay from).
    positions: Vec<(String, String)>,
}

impl SeqGate {
    /// Where to resume: the session and the last delivered `seq`, once the
    /// client had a session.
    pub fn resume_point(&self) -> Option<(&str, u64)> {
        self.session_id.as_deref().map(|s| (s, self.last_seq))
    }

    /// The highest `seq` delivered so far.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The last position delivered in each channel.
    pub fn positions(&self) -> &[(String, String)] {
        &self.positions
    }

    /// Records the position of a delivery just accepted.
    pub fn delivered_at(&mut self, channel: &str, pos: &str) {
        match self.positions.iter_mut().find(|(c, _)| c == channel) {
            Some((_, p)) => pos.clone_into(p),
            None => self.positions.push((channel.to_owned(), pos.to_owned())),
        }
    }

    /// Judges a welcome. A client that never had a session takes the new
    /// one as it is; one that had a session expects it back, resumed, and
    /// anything else is a resync: nothing is silently skipped.
    pub fn on_welcome(&mut self, welcome: &Welcome) -> WelcomeOutcome {
        let Some(previous) = self.session_id.clone() else {
            self.session_id = Some(welcome.session_id.clone());
            self.last_seq = welcome.last_seq;
            return WelcomeOutcome::Fresh;
        };
        let reason = if welcome.session_id != previous {
            ResyncReason::NewSession { previous }
        } else if welcome.resync_required {
            ResyncReason::ResyncRequired
        } else if !welcome.resumed {
            ResyncReason::NotResumed
        } else {
            return WelcomeOutcome::Resumed;
        };
        self.session_id = Some(welcome.session_id.clone());
        self.last_seq = welcome.last_seq;
        self.positions.clear();
        WelcomeOutcome::Resync(reason)
    }

    /// Judges one delivery, advancing the state when it is delivered.
    pub fn accept(&mut self, seq: u64) -> Accept {
        if seq <= self.last_seq {
            Accept::Duplicate
        } else if seq == self.last_seq + 1 {
            self.last_seq = seq;
            Accept::Deliver
        } else {
            Accept::Gap { expected: self.last_seq + 1, got: seq }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(session: &str, last_seq: u64, resumed: bool, resync: bool) -> Welcome {
        Welcome {
            session_id: session.into(),
            last_seq,
            resumed,
            resync_required: resync,
            heartbeat_interval_ms: 1000,
            ..Welcome::default()
        }
    }

    #[test]
    fn a_first_session_is_fresh_and_counts_from_its_last_seq() {
        let mut g = SeqGate::default();
        assert_eq!(g.resume_point(), None);
        assert_eq!(g.on_welcome(&welcome("s_1", 0, false, false)), WelcomeOutcome::Fresh);
        assert_eq!(g.resume_point(), Some(("s_1", 0)));
        assert_eq!(g.accept(1), Accept::Deliver);
        assert_eq!(g.accept(2), Accept::Deliver);
        assert_eq!(g.resume_point(), Some(("s_1", 2)));
    }

    #[test]
    fn duplicates_are_dropped_and_gaps_held() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        assert_eq!(g.accept(1), Accept::Deliver);
        assert_eq!(g.accept(1), Accept::Duplicate);
        assert_eq!(g.accept(3), Accept::Gap { expected: 2, got: 3 });
        assert_eq!(g.last_seq(), 1, "a gap does not advance");
        assert_eq!(g.accept(2), Accept::Deliver);
        assert_eq!(g.accept(3), Accept::Deliver);
    }

    #[test]
    fn two_links_interleaved_deliver_each_seq_once_in_order() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        // Link A and link B both carry 1..=5, B lagging behind A.
        let arrivals = [1, 2, 1, 3, 2, 3, 4, 5, 4, 5];
        let delivered: Vec<u64> = arrivals.into_iter().filter(|&s| g.accept(s) == Accept::Deliver).collect();
        assert_eq!(delivered, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_resumed_session_keeps_counting() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        g.accept(1);
        assert_eq!(g.on_welcome(&welcome("s_1", 4, true, false)), WelcomeOutcome::Resumed);
        assert_eq!(g.accept(2), Accept::Deliver, "the replay follows");
    }

    #[test]
    fn resync_required_resets_to_the_welcome() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        g.accept(1);
        let outcome = g.on_welcome(&welcome("s_1", 300, false, true));
        assert_eq!(outcome, WelcomeOutcome::Resync(ResyncReason::ResyncRequired));
        assert_eq!(g.accept(301), Accept::Deliver);
    }

    #[test]
    fn positions_are_kept_per_channel_and_forgotten_at_a_resync() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        g.delivered_at("room:a", "7.1.11");
        g.delivered_at("broadcast", "8.4.44");
        g.delivered_at("room:a", "7.2.22");
        let kept: Vec<(&str, &str)> = g.positions().iter().map(|(c, p)| (c.as_str(), p.as_str())).collect();
        assert_eq!(kept, [("room:a", "7.2.22"), ("broadcast", "8.4.44")]);
        assert_eq!(g.on_welcome(&welcome("s_1", 2, true, false)), WelcomeOutcome::Resumed);
        assert_eq!(g.positions().len(), 2, "a resume keeps them");
        g.on_welcome(&welcome("s_1", 9, false, true));
        assert!(g.positions().is_empty(), "after a resync there is nothing to replay from");
    }

    #[test]
    fn not_resumed_is_a_resync_too() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        let outcome = g.on_welcome(&welcome("s_1", 9, false, false));
        assert_eq!(outcome, WelcomeOutcome::Resync(ResyncReason::NotResumed));
        assert_eq!(g.resume_point(), Some(("s_1", 9)));
    }

    #[test]
    fn a_new_session_is_a_resync_naming_the_old_one() {
        let mut g = SeqGate::default();
        g.on_welcome(&welcome("s_1", 0, false, false));
        g.accept(1);
        let outcome = g.on_welcome(&welcome("s_2", 0, false, true));
        assert_eq!(outcome, WelcomeOutcome::Resync(ResyncReason::NewSession { previous: "s_1".into() }));
        assert_eq!(g.resume_point(), Some(("s_2", 0)));
        assert_eq!(g.accept(1), Accept::Deliver, "the new session counts from 1");
    }
}
