//! The bookkeeping of commands to the game backend
//! ([`Client::call`](crate::Client::call)): fresh ids, which command went
//! out on which link, what is resent when a link is welcomed, which
//! answers count, and when a command fails for good.
//!
//! The server runs a command `id` at most once per session and answers
//! every resend of it (from its reply cache), so the rule here is simple: a
//! command is sent again, with the same id, name and data, on every link
//! welcomed to the same session until it is answered. The first answer
//! settles it; any later one (a resend's cached answer) is ignored.
//!
//! ```text
//!  issue ──▶ unsent ──take_unsent(link)──▶ on link ──reply / error──▶ settled
//!              ▲                              │
//!              └──link_down / send_failed─────┘
//!  any pending ──deadline passed──▶ Timeout
//!  sent pending ──link welcomed to another session──▶ SessionLost
//!  any pending ──fail_all / close──▶ the given error (Closed)
//! ```
//!
//! No I/O and no clock: time comes in as `now`. Each pending command holds
//! a waiter `W` of the caller's choosing (the glue's reply channel), handed
//! back when the command is settled or fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::client::events::CallError;
use crate::frames::ClientMessage;

/// Names one link (one welcomed connection) for the life of the client.
pub type LinkId = u64;

/// How many commands may wait for their answers at once, by default.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// One command as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: String,
    pub name: String,
    pub data: Value,
}

impl Command {
    /// The `command` frame (WebSocket text, or SSE POST body).
    pub fn message(&self) -> ClientMessage {
        ClientMessage::command(self.id.clone(), self.name.clone(), self.data.clone())
    }
}

/// What an answer (`reply`, or `error` with an `id`) meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<W> {
    /// It settles a pending command: here is its waiter.
    Settled(W),
    /// A command of ours that is no longer pending (already answered,
    /// timed out, failed or cancelled): ignored.
    Duplicate,
    /// Not an id this client issued: ignored.
    Unknown,
}

#[derive(Debug)]
struct Pending<W> {
    command: Command,
    deadline: Instant,
    timeout: Duration,
    /// The live link it was last handed to; `None` while it waits for one.
    on_link: Option<LinkId>,
    /// Handed to a link of the current session at least once: it may have
    /// reached the server, so only that session's reply cache can answer
    /// a resend without running it twice.
    sent: bool,
    waiter: W,
}

/// The pending commands of one client.
#[derive(Debug)]
pub struct Calls<W> {
    /// Every id is `{prefix}{n}`, `n` counting from 1.
    prefix: String,
    next: u64,
    /// By issue number, so resends go out in the order of the calls.
    pending: BTreeMap<u64, Pending<W>>,
    /// The welcomed links, and the session they belong to.
    links: BTreeSet<LinkId>,
    session: Option<String>,
    max_pending: usize,
    closed: bool,
}

impl<W> Calls<W> {
    /// Ids will be `{prefix}1`, `{prefix}2`…; a prefix of its own (random,
    /// say) keeps them apart from any other client's. Ids must stay within
    /// the protocol's 64 characters: keep the prefix under 40.
    pub fn new(prefix: impl Into<String>, max_pending: usize) -> Self {
        Self {
            prefix: prefix.into(),
            next: 1,
            pending: BTreeMap::new(),
            links: BTreeSet::new(),
            session: None,
            max_pending,
            closed: false,
        }
    }

    /// A new command with a fresh id, due by `now + timeout`. It waits
    /// unsent until [`take_unsent`](Self::take_unsent) hands it to a link.
    /// Fails with [`CallError::Closed`] once [`close`](Self::close)d and
    /// [`CallError::Overloaded`] when `max_pending` commands already wait.
    pub fn issue(
        &mut self,
        name: &str,
        data: Value,
        waiter: W,
        now: Instant,
        timeout: Duration,
    ) -> Result<String, CallError> {
        if self.closed {
            return Err(CallError::Closed);
        }
        if self.pending.len() >= self.max_pending {
            return Err(CallError::Overloaded);
        }
        let n = self.next;
        self.next += 1;
        let id = format!("{}{n}", self.prefix);
        let command = Command { id: id.clone(), name: name.to_owned(), data };
        let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(86_400 * 365));
        self.pending.insert(n, Pending { command, deadline, timeout, on_link: None, sent: false, waiter });
        Ok(id)
    }

    /// The issue number of one of our ids.
    fn number(&self, id: &str) -> Option<u64> {
        let digits = id.strip_prefix(self.prefix.as_str())?;
        let n: u64 = digits.parse().ok()?;
        (n.to_string() == digits && n >= 1 && n < self.next).then_some(n)
    }

    /// Whether this client issued `id` (pending or not).
    pub fn owns(&self, id: &str) -> bool {
        self.number(id).is_some()
    }

    /// Whether `id` still waits for its answer.
    pub fn is_pending(&self, id: &str) -> bool {
        self.number(id).is_some_and(|n| self.pending.contains_key(&n))
    }

    /// How many commands wait for their answers.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A link was welcomed to `session`. When that is not the session the
    /// client had, the old session's reply cache is gone with it: every
    /// command that may have reached it fails with
    /// [`CallError::SessionLost`] (returned, with its waiter); commands
    /// never sent go to the new session.
    pub fn link_up(&mut self, link: LinkId, session: &str) -> Vec<(W, CallError)> {
        self.links.insert(link);
        let lost = match &self.session {
            Some(current) if current != session => {
                let sent: Vec<u64> = self.pending.iter().filter(|(_, p)| p.sent).map(|(n, _)| *n).collect();
                sent.into_iter()
                    .filter_map(|n| self.pending.remove(&n))
                    .map(|p| (p.waiter, CallError::SessionLost))
                    .collect()
            }
            _ => Vec::new(),
        };
        if self.session.as_deref() != Some(session) {
            self.session = Some(session.to_owned());
        }
        lost
    }

    /// A link ended: the commands on it wait for the next link (any
    /// transport), to be resent with the same id.
    pub fn link_down(&mut self, link: LinkId) {
        self.links.remove(&link);
        for p in self.pending.values_mut() {
            if p.on_link == Some(link) {
                p.on_link = None;
            }
        }
    }

    /// Hands every waiting command, in issue order, to `link` (a welcomed
    /// link; nothing for any other) and marks it sent there.
    pub fn take_unsent(&mut self, link: LinkId) -> Vec<Command> {
        if !self.links.contains(&link) {
            return Vec::new();
        }
        self.pending
            .values_mut()
            .filter(|p| p.on_link.is_none())
            .map(|p| {
                p.on_link = Some(link);
                p.sent = true;
                p.command.clone()
            })
            .collect()
    }

    /// `id`, handed to `link`, did not get out: it waits for the next link.
    pub fn send_failed(&mut self, id: &str, link: LinkId) {
        if let Some(p) = self.number(id).and_then(|n| self.pending.get_mut(&n)) {
            if p.on_link == Some(link) {
                p.on_link = None;
            }
        }
    }

    /// An answer for `id` arrived (over any link): the first one settles
    /// the command, later ones are ignored.
    pub fn answer(&mut self, id: &str) -> Answer<W> {
        match self.number(id) {
            None => Answer::Unknown,
            Some(n) => match self.pending.remove(&n) {
                Some(p) => Answer::Settled(p.waiter),
                None => Answer::Duplicate,
            },
        }
    }

    /// The caller gave up on `id` (dropped its future): forget it; a later
    /// answer is a duplicate.
    pub fn cancel(&mut self, id: &str) -> Option<W> {
        let n = self.number(id)?;
        self.pending.remove(&n).map(|p| p.waiter)
    }

    /// The earliest deadline of a pending command.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Every command whose deadline is at or before `now` fails with
    /// [`CallError::Timeout`]. A timed-out command may still run on the
    /// server (its answer, if any, is ignored): to try again, call anew
    /// (a new id).
    pub fn expire(&mut self, now: Instant) -> Vec<(W, CallError)> {
        let due: Vec<u64> = self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(n, _)| *n).collect();
        due.into_iter()
            .filter_map(|n| self.pending.remove(&n))
            .map(|p| (p.waiter, CallError::Timeout(p.timeout)))
            .collect()
    }

    /// Every pending command fails with `error` (the client stopped).
    /// Later commands are still taken.
    pub fn fail_all(&mut self, error: &CallError) -> Vec<(W, CallError)> {
        std::mem::take(&mut self.pending).into_values().map(|p| (p.waiter, error.clone())).collect()
    }

    /// The client is closed: every pending command fails with
    /// [`CallError::Closed`], and so does every later one.
    pub fn close(&mut self) -> Vec<(W, CallError)> {
        self.closed = true;
        self.links.clear();
        self.fail_all(&CallError::Closed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn book() -> Calls<&'static str> {
        Calls::new("c7f-", DEFAULT_MAX_PENDING)
    }

    fn ids(commands: &[Command]) -> Vec<&str> {
        commands.iter().map(|c| c.id.as_str()).collect()
    }

    fn waiters<W: Copy>(failed: &[(W, CallError)]) -> Vec<W> {
        failed.iter().map(|(w, _)| *w).collect()
    }

    #[test]
    fn ids_are_fresh_unique_and_ours() {
        let t0 = Instant::now();
        let mut c: Calls<u32> = Calls::new("c7f-", 10_000);
        let mut seen = HashSet::new();
        for k in 0..5000 {
            let id = c.issue("move", json!(k), k, t0, S).unwrap();
            assert!(id.starts_with("c7f-") && id.len() <= 64, "{id}");
            assert!(seen.insert(id.clone()), "{id} issued twice");
            assert!(c.owns(&id) && c.is_pending(&id));
            if k % 2 == 0 {
                assert_eq!(c.answer(&id), Answer::Settled(k));
            }
        }
        // Settled ids are never issued again.
        let next = c.issue("move", Value::Null, 0, t0, S).unwrap();
        assert!(!seen.contains(&next));
        for foreign in ["c7f-0", "c7f-01", "c7f-+1", "c7f-99999999", "x-1", "c7f-", "c1"] {
            assert!(!c.owns(foreign), "{foreign}");
        }
    }

    #[test]
    fn a_command_goes_out_once_per_link_with_its_name_and_data() {
        let t0 = Instant::now();
        let mut c = book();
        let id = c.issue("move", json!({"x": 1}), "a", t0, S).unwrap();
        assert!(c.take_unsent(1).is_empty(), "no link welcomed yet");
        assert!(c.link_up(1, "s_1").is_empty());
        let out = c.take_unsent(1);
        assert_eq!(out, vec![Command { id: id.clone(), name: "move".into(), data: json!({"x": 1}) }]);
        assert_eq!(
            serde_json::to_value(out[0].message()).unwrap(),
            json!({"type":"command","id": id,"name":"move","data":{"x":1}})
        );
        assert!(c.take_unsent(1).is_empty(), "not twice on the same link");
        assert!(c.take_unsent(2).is_empty(), "nor on a link that was never welcomed");
    }

    #[test]
    fn a_dropped_link_resends_the_same_commands_in_order_on_the_next_link() {
        let t0 = Instant::now();
        let mut c = book();
        let first = c.issue("move", json!(1), "a", t0, 10 * S).unwrap();
        c.link_up(1, "s_1");
        assert_eq!(ids(&c.take_unsent(1)), [first.as_str()]);
        let second = c.issue("chat", json!(2), "b", t0, 10 * S).unwrap();
        assert_eq!(ids(&c.take_unsent(1)), [second.as_str()]);

        c.link_down(1);
        assert!(c.take_unsent(1).is_empty(), "the dropped link takes nothing");
        // A transport switch and a resume: another link of the same session.
        assert!(c.link_up(2, "s_1").is_empty(), "same session: nothing lost");
        let resent = c.take_unsent(2);
        assert_eq!(ids(&resent), [first.as_str(), second.as_str()]);
        assert_eq!((resent[0].name.as_str(), &resent[0].data), ("move", &json!(1)));
        assert_eq!((resent[1].name.as_str(), &resent[1].data), ("chat", &json!(2)));

        // Answered on the new link: settled once.
        assert_eq!(c.answer(&first), Answer::Settled("a"));
        c.link_down(2);
        c.link_up(3, "s_1");
        assert_eq!(ids(&c.take_unsent(3)), [second.as_str()], "only the unanswered one again");
    }

    #[test]
    fn dual_links_resend_at_once_on_the_link_still_up() {
        let t0 = Instant::now();
        let mut c = book();
        c.link_up(1, "s_1");
        c.link_up(2, "s_1");
        let id = c.issue("move", json!(1), "a", t0, S).unwrap();
        assert_eq!(ids(&c.take_unsent(1)), [id.as_str()]);
        assert!(c.take_unsent(2).is_empty(), "out on link 1 already");
        c.link_down(2);
        assert!(c.take_unsent(1).is_empty(), "the other link's end leaves it alone");
        c.link_down(1);
        c.link_up(4, "s_1");
        assert_eq!(ids(&c.take_unsent(4)), [id.as_str()]);
    }

    #[test]
    fn a_failed_send_waits_for_the_next_link() {
        let t0 = Instant::now();
        let mut c = book();
        c.link_up(1, "s_1");
        let id = c.issue("move", json!(1), "a", t0, S).unwrap();
        c.take_unsent(1);
        c.send_failed(&id, 7);
        assert!(c.take_unsent(1).is_empty(), "a failure on another link does not count");
        c.send_failed(&id, 1);
        assert_eq!(ids(&c.take_unsent(1)), [id.as_str()]);
        c.send_failed("nobody", 1);
    }

    #[test]
    fn duplicate_and_unknown_answers_are_ignored() {
        let t0 = Instant::now();
        let mut c = book();
        c.link_up(1, "s_1");
        let id = c.issue("move", json!(1), "a", t0, S).unwrap();
        c.take_unsent(1);
        assert_eq!(c.answer("c7f-99"), Answer::Unknown, "not issued yet");
        assert_eq!(c.answer("someone-else"), Answer::Unknown);
        assert!(c.is_pending(&id), "an unknown answer settles nothing");
        assert_eq!(c.answer(&id), Answer::Settled("a"));
        assert_eq!(c.answer(&id), Answer::Duplicate, "the resend's cached answer");
        assert!(!c.is_pending(&id) && c.owns(&id));
        assert!(c.is_empty());
        c.link_down(1);
        c.link_up(2, "s_1");
        assert!(c.take_unsent(2).is_empty(), "an answered command is never resent");
    }

    #[test]
    fn commands_time_out_at_their_deadline_and_late_answers_are_ignored() {
        let t0 = Instant::now();
        let mut c = book();
        let short = c.issue("move", json!(1), "short", t0, S).unwrap();
        let long = c.issue("move", json!(2), "long", t0, 5 * S).unwrap();
        assert_eq!(c.next_deadline(), Some(t0 + S));
        assert!(c.expire(t0 + S / 2).is_empty());
        let due = c.expire(t0 + S);
        assert_eq!(waiters(&due), ["short"]);
        assert_eq!(due[0].1, CallError::Timeout(S));
        assert_eq!(c.next_deadline(), Some(t0 + 5 * S));
        assert_eq!(c.answer(&short), Answer::Duplicate);
        c.link_up(1, "s_1");
        assert_eq!(ids(&c.take_unsent(1)), [long.as_str()], "a timed-out command is not resent");
        assert_eq!(c.expire(t0 + 9 * S)[0].1, CallError::Timeout(5 * S));
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn a_replaced_session_loses_the_commands_it_may_have_seen() {
        let t0 = Instant::now();
        let mut c = book();
        c.link_up(1, "s_1");
        let seen = c.issue("move", json!(1), "seen", t0, S).unwrap();
        c.take_unsent(1);
        c.link_down(1);
        let unsent = c.issue("move", json!(2), "unsent", t0, S).unwrap();

        // Resync: the old session expired, a new one replaced it.
        let lost = c.link_up(2, "s_2");
        assert_eq!(waiters(&lost), ["seen"]);
        assert_eq!(lost[0].1, CallError::SessionLost);
        assert!(!c.is_pending(&seen));
        assert_eq!(c.answer(&seen), Answer::Duplicate);
        assert_eq!(ids(&c.take_unsent(2)), [unsent.as_str()], "never sent: it goes to the new session");

        // Now sent to s_2; a second link of s_2 loses nothing.
        assert!(c.link_up(3, "s_2").is_empty());
        assert!(c.is_pending(&unsent));
        c.link_down(2);
        assert!(waiters(&c.link_up(4, "s_3")).contains(&"unsent"));
    }

    #[test]
    fn the_first_session_loses_nothing() {
        let t0 = Instant::now();
        let mut c = book();
        c.issue("move", json!(1), "a", t0, S).unwrap();
        assert!(c.link_up(1, "s_1").is_empty());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn closing_fails_everything_now_and_later() {
        let t0 = Instant::now();
        let mut c = book();
        c.link_up(1, "s_1");
        c.issue("move", json!(1), "a", t0, S).unwrap();
        c.take_unsent(1);
        c.issue("move", json!(2), "b", t0, S).unwrap();
        let failed = c.close();
        assert_eq!(waiters(&failed), ["a", "b"]);
        assert!(failed.iter().all(|(_, e)| *e == CallError::Closed));
        assert_eq!(c.issue("move", json!(3), "c", t0, S), Err(CallError::Closed));
        assert!(c.take_unsent(1).is_empty());
    }

    #[test]
    fn a_stopped_client_fails_the_pending_ones_and_takes_new_ones() {
        let t0 = Instant::now();
        let mut c = book();
        c.issue("move", json!(1), "a", t0, S).unwrap();
        let failed = c.fail_all(&CallError::SessionLost);
        assert_eq!(failed, vec![("a", CallError::SessionLost)]);
        assert!(c.issue("move", json!(2), "b", t0, S).is_ok());
    }

    #[test]
    fn cancelled_commands_are_forgotten_and_the_pending_count_is_bounded() {
        let t0 = Instant::now();
        let mut c = Calls::new("p", 2);
        let a = c.issue("move", json!(1), 'a', t0, S).unwrap();
        c.issue("move", json!(2), 'b', t0, S).unwrap();
        assert_eq!(c.issue("move", json!(3), 'c', t0, S), Err(CallError::Overloaded));
        assert_eq!(c.cancel(&a), Some('a'));
        assert_eq!(c.cancel(&a), None);
        assert_eq!(c.answer(&a), Answer::Duplicate);
        assert!(c.issue("move", json!(3), 'c', t0, S).is_ok());
    }

    #[test]
    fn a_huge_timeout_does_not_overflow() {
        let t0 = Instant::now();
        let mut c = book();
        c.issue("move", json!(1), "a", t0, Duration::MAX).unwrap();
        assert!(c.next_deadline().unwrap() > t0);
    }
}
