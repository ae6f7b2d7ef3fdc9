//! Who is in a channel: one machine per channel, per player (not per
//! connection), deciding `join` and `leave` with a grace. Plain code: no
//! I/O, time comes in as `now_ms`.
//!
//! A player is *present* from the moment one of its sessions subscribed to
//! the channel has a live connection. It stays present while it has none
//! for up to the grace (a drop and a resume within it make no frame); a
//! [`ChannelPresence::sweep`] past the grace makes it leave. Unsubscribing
//! (or ending) its last session in the channel makes it leave at once.
//!
//! The count of present players is kept as it changes: reading it costs
//! nothing, whatever the number of subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tandem_protocol::Transport;

/// Players a presence answer lists at most (its `count` is exact).
pub const LIST_CAP: usize = 1000;

/// How many players a presence request asks to list: `limit` (`0` for the
/// count alone, the cheap question), [`LIST_CAP`] when absent.
pub fn list_limit(limit: Option<u64>) -> Result<usize, String> {
    match limit {
        None => Ok(LIST_CAP),
        Some(n) if n <= LIST_CAP as u64 => Ok(n as usize),
        Some(n) => Err(format!("`limit` is {n}, at most {LIST_CAP}")),
    }
}

/// A change the channel's subscribers hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave,
}

impl Change {
    /// The frame's `type` (and the metric's label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
        }
    }
}

/// A session's live connections, by transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Links {
    pub websocket: usize,
    pub sse: usize,
}

impl Links {
    pub fn of(transports: impl IntoIterator<Item = Transport>) -> Self {
        let mut l = Self::default();
        for t in transports {
            match t {
                Transport::WebSocket => l.websocket += 1,
                Transport::Sse => l.sse += 1,
            }
        }
        l
    }

    fn live(self) -> bool {
        self.websocket + self.sse > 0
    }
}

/// One player in a channel, as `GET /api/channels/{channel}/presence` and
/// the `presence` frame list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    pub player_id: String,
    /// Its sessions subscribed to the channel.
    pub sessions: usize,
    /// The transports it is connected with now (empty within the grace).
    pub transports: Vec<Transport>,
}

/// One node's part of a channel's presence (its record in a cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePresence {
    /// Players present there (exact).
    pub count: usize,
    /// At most [`LIST_CAP`] of them.
    pub players: Vec<PresenceEntry>,
}

impl NodePresence {
    fn complete(&self) -> bool {
        self.players.len() >= self.count
    }
}

/// The presence of a channel over several nodes: entries merged by player,
/// listed up to `limit`. The count is exact when every part listed all
/// its players (then a player on two nodes counts once); otherwise it is
/// the sum of the parts' counts (a player on two nodes counts twice).
pub fn combine(parts: Vec<NodePresence>, limit: usize) -> NodePresence {
    let complete = parts.iter().all(NodePresence::complete);
    let sum: usize = parts.iter().map(|p| p.count).sum();
    let mut players = merge_entries(parts.into_iter().flat_map(|p| p.players));
    let count = if complete { players.len() } else { sum.max(players.len()) };
    players.truncate(limit.min(LIST_CAP));
    NodePresence { count, players }
}

#[derive(Debug, Default)]
struct Player {
    /// Its sessions subscribed to the channel, with their live links: a
    /// few at most (`session.max_connections_per_player`), so a list, one
    /// small block, rather than a map per player.
    sessions: Vec<(Arc<str>, Links)>,
    present: bool,
    /// Present, but without a live connection since then.
    gone_since_ms: Option<u64>,
}

impl Player {
    fn live(&self) -> bool {
        self.sessions.iter().any(|(_, l)| l.live())
    }
}

/// The presence of one channel.
#[derive(Debug, Default)]
pub struct ChannelPresence {
    players: HashMap<Arc<str>, Player>,
    /// Players present (kept as it changes).
    present: usize,
    /// Present players within their grace (a sweep with none is free).
    pending: usize,
}

impl ChannelPresence {
    /// Players present now.
    pub fn count(&self) -> usize {
        self.present
    }

    /// Nothing tracked: the channel's machine may be dropped.
    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    /// A session of `player` subscribed to the channel now has `links`
    /// (on subscribe, and on each attach or detach of a connection).
    pub fn set(
        &mut self,
        player: &Arc<str>,
        session: &Arc<str>,
        links: Links,
        now_ms: u64,
    ) -> Option<Change> {
        let p = self.players.entry(Arc::clone(player)).or_default();
        match p.sessions.iter_mut().find(|(s, _)| s == session) {
            Some((_, l)) => *l = links,
            None => p.sessions.push((Arc::clone(session), links)),
        }
        Self::settle(p, &mut self.present, &mut self.pending, now_ms)
    }

    /// A session of `player` left the channel (unsubscribe, session end):
    /// if it was the player's last there, the player leaves at once.
    pub fn remove(&mut self, player: &str, session: &str, now_ms: u64) -> Option<Change> {
        let p = self.players.get_mut(player)?;
        let i = p.sessions.iter().position(|(s, _)| **s == *session)?;
        p.sessions.swap_remove(i);
        if !p.sessions.is_empty() {
            return Self::settle(p, &mut self.present, &mut self.pending, now_ms);
        }
        let p = self.players.remove(player)?;
        if p.gone_since_ms.is_some() {
            self.pending -= 1;
        }
        if p.present {
            self.present -= 1;
            return Some(Change::Leave);
        }
        None
    }

    /// The players present without a live connection for at least
    /// `grace_ms`: they leave now.
    pub fn sweep(&mut self, now_ms: u64, grace_ms: u64) -> Vec<Arc<str>> {
        if self.pending == 0 {
            return Vec::new();
        }
        let mut left = Vec::new();
        for (id, p) in &mut self.players {
            if p.gone_since_ms.is_some_and(|t| now_ms.saturating_sub(t) >= grace_ms) {
                p.gone_since_ms = None;
                p.present = false;
                self.present -= 1;
                self.pending -= 1;
                left.push(Arc::clone(id));
            }
        }
        left
    }

    /// Up to `cap` present players (any `cap` of them; `count` is exact).
    pub fn entries(&self, cap: usize) -> Vec<PresenceEntry> {
        self.players.iter().filter(|(_, p)| p.present).take(cap).map(|(id, p)| entry(id, p)).collect()
    }

    /// Whether `player` is present.
    pub fn is_present(&self, player: &str) -> bool {
        self.players.get(player).is_some_and(|p| p.present)
    }

    /// After a change of one of `p`'s sessions: a join if it came, the
    /// start of its grace if it lost its last connection.
    fn settle(p: &mut Player, present: &mut usize, pending: &mut usize, now_ms: u64) -> Option<Change> {
        if p.live() {
            if p.gone_since_ms.take().is_some() {
                *pending -= 1;
            }
            if !p.present {
                p.present = true;
                *present += 1;
                return Some(Change::Join);
            }
        } else if p.present && p.gone_since_ms.is_none() {
            p.gone_since_ms = Some(now_ms);
            *pending += 1;
        }
        None
    }
}

fn entry(id: &str, p: &Player) -> PresenceEntry {
    let links = p
        .sessions
        .iter()
        .map(|(_, l)| l)
        .fold(Links::default(), |a, l| Links { websocket: a.websocket + l.websocket, sse: a.sse + l.sse });
    let mut transports = Vec::with_capacity(2);
    if links.websocket > 0 {
        transports.push(Transport::WebSocket);
    }
    if links.sse > 0 {
        transports.push(Transport::Sse);
    }
    PresenceEntry { player_id: id.to_owned(), sessions: p.sessions.len(), transports }
}

/// Merges entries of one player seen on several nodes (or here and
/// there): sessions add up, transports unite. Keeps the first-seen order.
pub fn merge_entries(parts: impl IntoIterator<Item = PresenceEntry>) -> Vec<PresenceEntry> {
    let mut out: Vec<PresenceEntry> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for e in parts {
        match at.get(&e.player_id) {
            Some(&i) => {
                let o = &mut out[i];
                o.sessions += e.sessions;
                for t in e.transports {
                    if !o.transports.contains(&t) {
                        o.transports.push(t);
                    }
                }
                o.transports.sort();
            }
            None => {
                at.insert(e.player_id.clone(), out.len());
                out.push(e);
            }
        }
    }
    out
}

/// Who the other nodes announced in one channel: for each player, the
/// nodes it is present on. With it a node speaks for the cluster, not for
/// itself: a player is announced when it comes into the cluster's channel
/// and leaves when no node has it any more, so a player on two nodes, or
/// moving between them within the grace, makes no frame.
#[derive(Debug, Default)]
pub struct Elsewhere {
    players: HashMap<Arc<str>, Vec<Arc<str>>>,
}

impl Elsewhere {
    /// `node` announced `player`'s join; `true` if no other node had it.
    pub fn joined(&mut self, player: &str, node: &Arc<str>) -> bool {
        let nodes = self.players.entry(Arc::from(player)).or_default();
        let first = nodes.is_empty();
        if !nodes.contains(node) {
            nodes.push(Arc::clone(node));
        }
        first
    }

    /// `node` announced `player`'s leave; `true` if no other node has it
    /// now (also for a player not known: after a resync nothing is).
    pub fn left(&mut self, player: &str, node: &str) -> bool {
        let Some(nodes) = self.players.get_mut(player) else { return true };
        nodes.retain(|n| **n != *node);
        let gone = nodes.is_empty();
        if gone {
            self.players.remove(player);
        }
        gone
    }

    /// Whether another node has `player`.
    pub fn has(&self, player: &str) -> bool {
        self.players.contains_key(player)
    }

    /// Forgets a dead `node`: the players no other node has now.
    pub fn drop_node(&mut self, node: &str) -> Vec<Arc<str>> {
        let mut gone = Vec::new();
        self.players.retain(|player, nodes| {
            nodes.retain(|n| **n != *node);
            if nodes.is_empty() {
                gone.push(Arc::clone(player));
            }
            !nodes.is_empty()
        });
        gone
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GRACE: u64 = 15_000;
    const WS: Links = Links { websocket: 1, sse: 0 };
    const SSE: Links = Links { websocket: 0, sse: 1 };
    const NONE: Links = Links { websocket: 0, sse: 0 };

    fn id(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn a_connected_subscriber_joins_once() {
        let mut c = ChannelPresence::default();
        assert_eq!(c.set(&id("a"), &id("s1"), NONE, 0), None, "subscribed before its connection is linked");
        assert_eq!(c.set(&id("a"), &id("s1"), WS, 0), Some(Change::Join));
        assert_eq!(c.set(&id("a"), &id("s1"), Links { websocket: 1, sse: 1 }, 0), None);
        assert_eq!(c.count(), 1);
    }

    #[test]
    fn a_drop_and_resume_within_the_grace_makes_no_frame() {
        let mut c = ChannelPresence::default();
        c.set(&id("a"), &id("s1"), WS, 0);
        assert_eq!(c.set(&id("a"), &id("s1"), NONE, 1_000), None);
        assert!(c.sweep(1_000 + GRACE - 1, GRACE).is_empty());
        assert_eq!(c.set(&id("a"), &id("s1"), SSE, 1_000 + GRACE - 1), None, "resumed: no join");
        assert!(c.sweep(100_000, GRACE).is_empty(), "the grace stopped with the resume");
        assert_eq!(c.count(), 1);
    }

    #[test]
    fn past_the_grace_one_leave_and_a_later_resume_joins() {
        let mut c = ChannelPresence::default();
        c.set(&id("a"), &id("s1"), WS, 0);
        c.set(&id("a"), &id("s1"), NONE, 1_000);
        assert_eq!(c.count(), 1, "present within the grace");
        assert_eq!(c.sweep(1_000 + GRACE, GRACE), vec![id("a")]);
        assert!(c.sweep(1_000_000, GRACE).is_empty(), "one leave only");
        assert_eq!(c.count(), 0);
        assert!(c.entries(10).is_empty());
        assert_eq!(c.set(&id("a"), &id("s1"), WS, 1_000_000), Some(Change::Join));
        assert_eq!(c.remove("a", "s1", 1_000_001), Some(Change::Leave));
        assert!(c.is_empty());
    }

    #[test]
    fn two_sessions_of_one_player_are_one_entry() {
        let mut c = ChannelPresence::default();
        assert_eq!(c.set(&id("a"), &id("s1"), WS, 0), Some(Change::Join));
        assert_eq!(c.set(&id("a"), &id("s2"), SSE, 0), None);
        c.set(&id("b"), &id("s3"), WS, 0);
        assert_eq!(c.count(), 2);
        let mut e = c.entries(10);
        e.sort_by(|x, y| x.player_id.cmp(&y.player_id));
        assert_eq!(
            e[0],
            PresenceEntry {
                player_id: "a".into(),
                sessions: 2,
                transports: vec![Transport::WebSocket, Transport::Sse]
            }
        );
        assert_eq!(c.entries(1).len(), 1, "the list is capped, the count is not");
        // One tab closes: the player stays, with no frame.
        assert_eq!(c.set(&id("a"), &id("s1"), NONE, 10), None);
        assert!(c.sweep(10 + GRACE, GRACE).is_empty(), "its other session is live");
        assert_eq!(c.remove("a", "s1", 20), None, "its other session is still in");
        assert_eq!(c.remove("a", "s2", 20), Some(Change::Leave));
    }

    #[test]
    fn unsubscribe_leaves_at_once_even_within_the_grace() {
        let mut c = ChannelPresence::default();
        c.set(&id("a"), &id("s1"), WS, 0);
        c.set(&id("a"), &id("s1"), NONE, 5);
        assert_eq!(c.remove("a", "s1", 6), Some(Change::Leave));
        assert!(c.sweep(1_000_000, GRACE).is_empty(), "no second leave");
        assert_eq!(c.remove("a", "s1", 7), None, "idempotent");
        assert_eq!((c.count(), c.pending), (0, 0));
        // Never connected: nothing was said, nothing to take back.
        c.set(&id("b"), &id("s2"), NONE, 0);
        assert_eq!(c.remove("b", "s2", 1), None);
        assert!(c.is_empty());
    }

    #[test]
    fn parts_combine_exactly_when_complete() {
        let e =
            |p: &str| PresenceEntry { player_id: p.into(), sessions: 1, transports: vec![Transport::Sse] };
        let here = NodePresence { count: 2, players: vec![e("a"), e("b")] };
        let there = NodePresence { count: 1, players: vec![e("a")] };
        assert_eq!(combine(vec![here.clone(), there], LIST_CAP).count, 2, "a on two nodes counts once");
        let capped = NodePresence { count: 5_000, players: vec![e("c")] };
        let all = combine(vec![here, capped], LIST_CAP);
        assert_eq!((all.count, all.players.len()), (5_002, 3), "a capped part: counts add up");
    }

    #[test]
    fn entries_of_several_nodes_merge_by_player() {
        let e =
            |p: &str, n, t: Vec<Transport>| PresenceEntry { player_id: p.into(), sessions: n, transports: t };
        let merged = merge_entries([
            e("a", 1, vec![Transport::Sse]),
            e("b", 1, vec![Transport::WebSocket]),
            e("a", 1, vec![Transport::WebSocket]),
        ]);
        assert_eq!(
            merged,
            [e("a", 2, vec![Transport::WebSocket, Transport::Sse]), e("b", 1, vec![Transport::WebSocket])]
        );
    }

    #[test]
    fn elsewhere_speaks_for_the_cluster() {
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("n_a"), Arc::from("n_b"));
        let mut e = Elsewhere::default();
        assert!(e.joined("p", &a), "first node: a join");
        assert!(!e.joined("p", &b), "second node: none");
        assert!(!e.joined("p", &b), "the same node again: none");
        assert!(!e.left("p", "n_a"), "still on b");
        assert!(e.has("p"));
        assert!(e.left("p", "n_b"), "on no node now");
        assert!(!e.has("p") && e.is_empty());
        assert!(e.left("ghost", "n_a"), "unknown (after a resync): a leave");

        e.joined("p", &a);
        e.joined("q", &a);
        e.joined("q", &b);
        let mut gone = e.drop_node("n_a");
        gone.sort();
        assert_eq!(gone, vec![Arc::from("p")], "q is still on b");
        assert!(e.has("q") && !e.has("p"));
        assert!(e.drop_node("n_b") == vec![Arc::from("q")] && e.is_empty());
    }
}
