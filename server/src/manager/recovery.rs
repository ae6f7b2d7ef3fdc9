//! Taking over a session another node held (it died, was drained, or the
//! load balancer simply sent the client elsewhere): the session is made
//! here under its id from the cluster's record, its client's numbering
//! carries on from its `last_seq`, and what it missed is read from each
//! channel's history while live deliveries are held; then the welcome, the
//! replay and the held deliveries go out, in that order, each publication
//! once. A gap is a `resync_required`, never a silent loss.

use std::sync::Arc;

use super::{Attached, ConnectionManager, Session};
use crate::broker::BrokerError;
use crate::session::channels::{self, BROADCAST_CHANNEL};
use crate::session::connection::{CloseReason, Outbound};
use crate::session::identity::Identity;
use crate::session::position::{self, History, Position, StoredSession};
use crate::session::protocol::{self, Publication, Welcome};
use crate::session::state::SessionState;
use crate::telemetry as ev;

/// A session caught up from the cluster's history: where each channel
/// starts, and what arrived live meanwhile.
#[derive(Debug)]
pub(crate) struct Recovering {
    /// Each channel (and `broadcast`) and the client's position in it.
    from: Vec<(Arc<str>, Position)>,
    /// A channel to follow with no starting point (see [`starting_points`]).
    unknown: Option<Arc<str>>,
    /// The node that held the session.
    from_node: String,
    held: Vec<Arc<Publication>>,
    /// More arrived than `cap` while the history was read.
    overflow: bool,
}

/// A taken-over session's state, until live traffic alone is left.
#[derive(Debug)]
pub(crate) enum TakeOver {
    /// Its history is being read: live deliveries are held.
    CatchingUp(Recovering),
    /// Caught up: each channel's last offset replayed. A publication Redis
    /// wrote before the history was read can still arrive live afterwards
    /// (the subscription and the command link are two connections): it is
    /// dropped, up to the first one past the floor (a channel's offsets
    /// arrive in order).
    Floors(Vec<(Arc<str>, u64)>),
}

/// What a taken-over session does with a live delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    Hold,
    Drop,
    Deliver,
}

impl TakeOver {
    pub(super) fn is_catching_up(&self) -> bool {
        matches!(self, TakeOver::CatchingUp(_))
    }

    /// Decides on a live delivery (holding it while catching up, at most
    /// `cap`); `done` when nothing is left to watch for.
    pub(super) fn admit(&mut self, p: &Arc<Publication>, cap: usize) -> (Admit, bool) {
        match self {
            TakeOver::CatchingUp(r) => {
                if r.held.len() >= cap {
                    r.overflow = true;
                } else {
                    r.held.push(Arc::clone(p));
                }
                (Admit::Hold, false)
            }
            TakeOver::Floors(floors) => {
                let (Some(at), Some(i)) = (p.position(), floors.iter().position(|(c, _)| **c == *p.channel))
                else {
                    return (Admit::Deliver, floors.is_empty());
                };
                if at.offset <= floors[i].1 {
                    return (Admit::Drop, false);
                }
                floors.swap_remove(i);
                (Admit::Deliver, floors.is_empty())
            }
        }
    }
}

/// Channels and where each starts.
pub type Positions = Vec<(Arc<str>, Position)>;

/// Where each channel the session follows starts: the channels of its
/// record, its player's channel, `broadcast`, and those the client asks
/// for now (`asked`); each from the client's own position where it gave
/// one, else the position recorded when the session subscribed. A channel
/// `who` may no longer join is left out. Also the first channel with
/// neither position (its record was never written): what it missed there
/// cannot be known. Positions for channels the session does not follow
/// (it left them) are ignored.
pub fn starting_points(
    who: &Identity,
    stored: &StoredSession,
    given: &[(String, Position)],
    asked: &[String],
) -> (Positions, Option<Arc<str>>) {
    let personal = channels::personal_channel(&who.player_id);
    let allowed = |c: &str| c == BROADCAST_CHANNEL || channels::check_subscribe(who, c).is_ok();
    let followed = stored
        .channels
        .iter()
        .map(|(c, _)| c.as_str())
        .chain([personal.as_str(), BROADCAST_CHANNEL])
        .chain(asked.iter().map(String::as_str));
    let (mut from, mut unknown): (Positions, Option<Arc<str>>) = (Vec::new(), None);
    for c in followed {
        if !allowed(c) || from.iter().any(|(f, _)| **f == *c) {
            continue;
        }
        let own = given.iter().find(|(g, _)| g == c).map(|(_, p)| *p);
        let recorded = stored.channels.iter().find(|(r, _)| r == c).map(|(_, p)| *p);
        match own.or(recorded) {
            Some(p) => from.push((Arc::from(c), p)),
            None => {
                unknown.get_or_insert_with(|| Arc::from(c));
            }
        }
    }
    (from, unknown)
}

/// The first gap found: its reason label and channel.
pub type FoundGap = Option<(&'static str, Arc<str>)>;

/// What a catch-up sends and then watches for.
#[derive(Debug)]
pub struct CatchUp {
    /// After the welcome, in order.
    pub out: Vec<Arc<Publication>>,
    pub gap: FoundGap,
    /// Each channel's last offset sent (or the client's): see [`TakeOver::Floors`].
    pub floors: Vec<(Arc<str>, u64)>,
}

/// What goes out after the welcome: the replay (every channel's missed
/// publications, in the order they were written), then the held live
/// deliveries not already in it. With a gap (the first one found), no
/// replay: the client resynchronises, then live traffic follows.
pub fn catch_up_plan(
    from: &[(Arc<str>, Position)],
    read: Result<Vec<History<Arc<Publication>>>, BrokerError>,
    held: Vec<Arc<Publication>>,
    overflow: bool,
    unknown: Option<Arc<str>>,
) -> CatchUp {
    let mut gap = unknown
        .map(|c| ("subscription_unrecorded", c))
        .or_else(|| overflow.then(|| ("backlog_overflow", Arc::from(""))));
    let mut replay = Vec::new();
    let mut tops: Vec<u64> = from.iter().map(|(_, p)| p.offset).collect();
    match read {
        Err(_) => {
            gap.get_or_insert(("history_unavailable", Arc::from("")));
        }
        Ok(histories) => {
            for (i, ((channel, p), h)) in from.iter().zip(histories).enumerate() {
                match position::missed(*p, h) {
                    Ok(items) => {
                        if let Some((last, _)) = items.last() {
                            tops[i] = *last;
                        }
                        replay.extend(items.into_iter().map(|(_, x)| x));
                    }
                    Err(g) => {
                        gap.get_or_insert((g.as_str(), Arc::clone(channel)));
                    }
                }
            }
        }
    }
    if gap.is_some() {
        replay.clear();
        tops = from.iter().map(|(_, p)| p.offset).collect();
    }
    replay.sort_by_key(|x| x.position().map_or(0, |p| p.tag));
    let fresh = |x: &Arc<Publication>| match (x.position(), from.iter().position(|(c, _)| **c == *x.channel))
    {
        (Some(p), Some(i)) => p.offset > tops[i],
        _ => true,
    };
    replay.extend(held.into_iter().filter(fresh));
    let floors = from.iter().zip(tops).map(|((c, _), top)| (Arc::clone(c), top)).collect();
    CatchUp { out: replay, gap, floors }
}

impl ConnectionManager {
    /// Makes session `id` here from the cluster's record, numbering on from
    /// the client's `last_seq`; its deliveries are held until
    /// [`Self::catch_up`].
    pub(super) fn adopt_session(
        &self,
        who: &Identity,
        id: &str,
        last_seq: u64,
        stored: &StoredSession,
        given: &[(String, Position)],
        asked: &[String],
    ) -> Arc<Session> {
        let (from, unknown) = starting_points(who, stored, given, asked);
        let recovering =
            Recovering { from, unknown, from_node: stored.node.clone(), held: Vec::new(), overflow: false };
        let subscribe: Vec<Arc<str>> = recovering.from.iter().map(|(c, _)| Arc::clone(c)).collect();
        let state = SessionState::starting_at(self.limits.history_size, last_seq);
        let s = self.new_session(who, id.to_owned(), state, Some(Box::new(TakeOver::CatchingUp(recovering))));
        for c in subscribe.iter().filter(|c| ***c != *BROADCAST_CHANNEL) {
            // Over the limit (the limit shrank): that channel is not resumed.
            let _ = self.subscribe_checked(&s, c, false);
        }
        s
    }

    /// Whether `att`'s session waits for [`Self::catch_up`].
    pub fn is_catching_up(&self, att: &Attached) -> bool {
        att.session.inner.lock().taken_over.as_ref().is_some_and(|t| t.is_catching_up())
    }

    /// Reads what a taken-over session missed and sends the welcome, the
    /// replay and what arrived meanwhile. Never fails: a history that
    /// cannot be read is a `resync_required`.
    pub async fn catch_up(&self, att: &Attached) {
        let from = match att.session.inner.lock().taken_over.as_deref() {
            Some(TakeOver::CatchingUp(r)) => r.from.clone(),
            _ => return,
        };
        let read = self.broker.read_history(&from, self.limits.history_size).await;
        let s = &att.session;
        let mut inner = s.inner.lock();
        let Some(TakeOver::CatchingUp(r)) = inner.taken_over.take().map(|t| *t) else { return };
        let CatchUp { out, gap, floors } = catch_up_plan(&from, read, r.held, r.overflow, r.unknown);
        inner.taken_over = Some(Box::new(TakeOver::Floors(floors)));
        let replayed = out.len();
        let welcome = Welcome {
            kind: "welcome",
            session_id: &s.id,
            connection_id: &att.conn.id,
            player_id: &s.player_id,
            transport: att.conn.transport,
            resumed: gap.is_none(),
            resync_required: gap.is_some(),
            last_seq: inner.state.last_seq(),
            heartbeat_interval_ms: self.limits.heartbeat_interval.as_millis() as u64,
            channels: inner.state.subscriptions().map(|c| &**c).collect(),
        };
        let json = protocol::to_json(&welcome);
        let conns = inner.connections.clone();
        for c in &conns {
            c.push_unbounded(Outbound::Frame { kind: "welcome", json: json.clone() });
        }
        for publication in out {
            let seq = inner.state.record(Arc::clone(&publication));
            for c in &conns {
                c.push_unbounded(Outbound::Delivery { seq, publication: Arc::clone(&publication) });
            }
        }
        drop(inner);
        let gap = gap.as_ref().map(|(reason, channel)| (*reason, &**channel));
        ev::session_taken_over(att.ids(), &r.from_node, from.len(), replayed, gap);
    }

    /// Node `node` took session `id` over: this node's copy ends without a
    /// `player_left` (the claim fails: the record names `node`), and a
    /// connection still on it reconnects and resumes like after any drop.
    pub fn session_moved(&self, id: &str, node: &str) {
        let Some(s) = self.session(id) else { return };
        ev::session_moved(&s.id, &s.player_id, node);
        self.end_session(&s, false, CloseReason::SessionMoved);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    fn placed(channel: &str, offset: u64) -> Arc<Publication> {
        let data = RawValue::from_string("1".to_owned()).unwrap();
        let p = Publication::new(format!("m_{channel}_{offset}"), Arc::from(channel), "e", &data);
        Arc::new(p.with_position(Position { epoch: 7, offset, tag: offset * 10 + channel.len() as u64 }))
    }

    fn ids(out: &[Arc<Publication>]) -> Vec<&str> {
        out.iter().map(|p| &*p.id).collect()
    }

    fn history(channel: &str, top: u64, offsets: std::ops::RangeInclusive<u64>) -> History<Arc<Publication>> {
        History {
            top: Some((7, top)),
            capped: false,
            entries: offsets
                .map(|o| {
                    let p = placed(channel, o);
                    (o, p.position().unwrap().tag, p)
                })
                .collect(),
        }
    }

    #[test]
    fn replay_then_held_deliveries_each_once() {
        let from = vec![
            (Arc::from("room:a"), Position { epoch: 7, offset: 1, tag: 0 }),
            (Arc::from("broadcast"), Position { epoch: 7, offset: 0, tag: 0 }),
        ];
        let read = Ok(vec![history("room:a", 3, 1..=3), history("broadcast", 1, 1..=1)]);
        // Offset 3 arrived live while the history was read, then 4.
        let held = vec![placed("room:a", 3), placed("room:a", 4)];
        let CatchUp { out, gap, floors } = catch_up_plan(&from, read, held, false, None);
        assert_eq!(gap, None);
        let floors: Vec<(&str, u64)> = floors.iter().map(|(c, o)| (&**c, *o)).collect();
        assert_eq!(floors, [("room:a", 3), ("broadcast", 1)]);
        // The replay in the order it was written (tags 19, 26), then live.
        assert_eq!(ids(&out), ["m_broadcast_1", "m_room:a_2", "m_room:a_3", "m_room:a_4"]);
    }

    #[test]
    fn after_the_catch_up_a_late_copy_of_a_replayed_publication_is_dropped() {
        let mut t = TakeOver::Floors(vec![(Arc::from("room:a"), 3), (Arc::from("broadcast"), 1)]);
        assert_eq!(t.admit(&placed("room:a", 2), 8), (Admit::Drop, false), "replayed already");
        assert_eq!(t.admit(&placed("room:a", 3), 8), (Admit::Drop, false));
        assert_eq!(t.admit(&placed("room:a", 4), 8), (Admit::Deliver, false), "past the floor");
        assert_eq!(t.admit(&placed("room:a", 5), 8), (Admit::Deliver, false));
        assert_eq!(t.admit(&placed("broadcast", 2), 8), (Admit::Deliver, true), "nothing left to watch");
        let mut c = TakeOver::CatchingUp(Recovering {
            from: Vec::new(),
            unknown: None,
            from_node: String::new(),
            held: Vec::new(),
            overflow: false,
        });
        assert_eq!(c.admit(&placed("room:a", 1), 1), (Admit::Hold, false));
        assert_eq!(c.admit(&placed("room:a", 2), 1), (Admit::Hold, false));
        let TakeOver::CatchingUp(r) = c else { panic!() };
        assert!(r.overflow && r.held.len() == 1, "held at most the cap");
    }

    #[test]
    fn a_gap_replays_nothing_and_is_named() {
        let from = vec![(Arc::from("room:a"), Position { epoch: 7, offset: 1, tag: 0 })];
        let read = Ok(vec![history("room:a", 5, 3..=5)]);
        let CatchUp { out, gap, .. } = catch_up_plan(&from, read, vec![placed("room:a", 6)], false, None);
        assert_eq!(gap, Some(("history_trimmed", Arc::from("room:a"))));
        assert_eq!(ids(&out), ["m_room:a_6"], "live traffic still follows");
        let unreadable = Err(BrokerError::Unavailable("down".into()));
        let gap = catch_up_plan(&from, unreadable, Vec::new(), false, None).gap;
        assert_eq!(gap.map(|g| g.0), Some("history_unavailable"));
        let gap = catch_up_plan(&from, Ok(vec![history("room:a", 1, 1..=1)]), Vec::new(), true, None).gap;
        assert_eq!(gap.map(|g| g.0), Some("backlog_overflow"));
        let unrecorded = Some(Arc::from("room:b"));
        let gap =
            catch_up_plan(&from, Ok(vec![history("room:a", 1, 1..=1)]), Vec::new(), false, unrecorded).gap;
        assert_eq!(gap, Some(("subscription_unrecorded", Arc::from("room:b"))));
    }

    #[test]
    fn the_clients_positions_win_and_channels_it_may_not_join_are_dropped() {
        let who = Identity {
            player_id: "alice".into(),
            channels: Some(vec!["room".into()]),
            publish: None,
            dev_mode: false,
        };
        let at = |o| Position { epoch: 7, offset: o, tag: 0 };
        let stored = StoredSession {
            player_id: "alice".into(),
            node: "n_1".into(),
            channels: vec![("room:a".into(), at(1)), ("broadcast".into(), at(2)), ("chat:x".into(), at(1))],
        };
        let given =
            vec![("room:a".to_owned(), at(5)), ("room:b".to_owned(), at(3)), ("room:left".to_owned(), at(9))];
        let (from, unknown) = starting_points(&who, &stored, &given, &["room:b".to_owned()]);
        let got: Vec<(&str, u64)> = from.iter().map(|(c, p)| (&**c, p.offset)).collect();
        assert_eq!(
            got,
            [("room:a", 5), ("broadcast", 2), ("room:b", 3)],
            "not room:left: no longer followed"
        );
        assert_eq!(unknown.as_deref(), Some("player:alice"), "its record lacks the player's channel");
        let stored = StoredSession {
            channels: vec![("player:alice".into(), at(1)), ("broadcast".into(), at(2))],
            ..stored
        };
        let (_, unknown) = starting_points(&who, &stored, &[], &["room:c".to_owned()]);
        assert_eq!(unknown.as_deref(), Some("room:c"), "asked for, never recorded, no position");
        assert_eq!(starting_points(&who, &stored, &[], &[]).1, None);
    }
}
