//! The reply cache that makes a command id run at most once per session,
//! as plain code with no I/O and no clock (time is passed in): what a
//! command with an id already seen gets, and what is kept and for how long.
//! `W` is what an in-flight entry holds for those waiting on it (a channel
//! in the server, anything in tests).

use std::collections::VecDeque;

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// What a command was, to tell a resend from an id reused for another one.
pub type Fingerprint = [u8; 32];

/// The fingerprint of a command: its name and compact `data`.
pub fn fingerprint(name: &str, data: &[u8]) -> Fingerprint {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(data);
    h.finalize().into()
}

/// An answer as the client receives it: the frame's `type` and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: &'static str,
    pub json: Bytes,
}

#[derive(Debug)]
enum State<W> {
    InFlight(W),
    Done { answer: Answer, at_ms: u64 },
}

#[derive(Debug)]
struct Entry<W> {
    id: Box<str>,
    fingerprint: Fingerprint,
    state: State<W>,
}

/// What a command id finds in the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, W> {
    /// Never seen (or forgotten): run it.
    Fresh,
    /// Answered already: send this again.
    Answered(&'a Answer),
    /// Running: wait on this for its answer.
    InFlight(&'a W),
    /// The id was used for another command.
    Conflict,
}

/// One session's answers, oldest first.
#[derive(Debug)]
pub struct ReplyCache<W> {
    entries: VecDeque<Entry<W>>,
    capacity: usize,
    ttl_ms: u64,
}

impl<W> ReplyCache<W> {
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), ttl_ms }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn lookup(&mut self, id: &str, fp: &Fingerprint, now_ms: u64) -> Lookup<'_, W> {
        self.expire(now_ms);
        match self.entries.iter().find(|e| &*e.id == id) {
            None => Lookup::Fresh,
            Some(e) if e.fingerprint != *fp => Lookup::Conflict,
            Some(Entry { state: State::InFlight(w), .. }) => Lookup::InFlight(w),
            Some(Entry { state: State::Done { answer, .. }, .. }) => Lookup::Answered(answer),
        }
    }

    /// Records that `id` is now running. Makes room by dropping the oldest
    /// answers; `false` if every entry is still running (the caller refuses
    /// the command: nothing is cached for it).
    pub fn begin(&mut self, id: &str, fp: Fingerprint, waiter: W, now_ms: u64) -> bool {
        self.expire(now_ms);
        while self.entries.len() >= self.capacity {
            let Some(oldest_done) = self.entries.iter().position(|e| matches!(e.state, State::Done { .. }))
            else {
                return false;
            };
            self.entries.remove(oldest_done);
        }
        self.entries.push_back(Entry { id: id.into(), fingerprint: fp, state: State::InFlight(waiter) });
        true
    }

    /// Stores the answer of a running `id`; returns its waiter to wake.
    pub fn finish(&mut self, id: &str, answer: Answer, now_ms: u64) -> Option<W> {
        let entry = self.entries.iter_mut().find(|e| &*e.id == id)?;
        match std::mem::replace(&mut entry.state, State::Done { answer, at_ms: now_ms }) {
            State::InFlight(w) => Some(w),
            State::Done { .. } => None,
        }
    }

    /// Drops a running `id` without an answer to keep (it never reached
    /// the backend); returns its waiter.
    pub fn forget(&mut self, id: &str) -> Option<W> {
        let i = self.entries.iter().position(|e| &*e.id == id)?;
        match self.entries.remove(i)?.state {
            State::InFlight(w) => Some(w),
            State::Done { .. } => None,
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let ttl = self.ttl_ms;
        self.entries.retain(|e| match e.state {
            State::InFlight(_) => true,
            State::Done { at_ms, .. } => now_ms.saturating_sub(at_ms) < ttl,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn answer(s: &'static str) -> Answer {
        Answer { kind: "reply", json: Bytes::from_static(s.as_bytes()) }
    }

    #[test]
    fn an_id_runs_once_then_is_answered_from_the_cache() {
        let mut c = ReplyCache::new(4, 1000);
        let fp = fingerprint("move", b"{\"x\":1}");
        assert_eq!(c.lookup("c1", &fp, 0), Lookup::Fresh);
        assert!(c.begin("c1", fp, 7u8, 0));
        assert_eq!(c.lookup("c1", &fp, 1), Lookup::InFlight(&7));
        assert_eq!(c.finish("c1", answer("a"), 2), Some(7));
        assert_eq!(c.lookup("c1", &fp, 3), Lookup::Answered(&answer("a")));
        assert_eq!(c.finish("c1", answer("b"), 4), None, "a second answer wakes no one");
    }

    #[test]
    fn the_same_id_for_another_command_is_a_conflict() {
        let mut c = ReplyCache::new(4, 1000);
        let fp = fingerprint("move", b"1");
        assert!(c.begin("c1", fp, (), 0));
        assert_eq!(c.lookup("c1", &fingerprint("move", b"2"), 0), Lookup::Conflict);
        assert_eq!(c.lookup("c1", &fingerprint("jump", b"1"), 0), Lookup::Conflict);
        assert_ne!(fingerprint("ab", b"c"), fingerprint("a", b"bc"), "name and data are kept apart");
    }

    #[test]
    fn answers_expire_running_commands_do_not() {
        let mut c = ReplyCache::new(4, 100);
        let fp = fingerprint("n", b"null");
        assert!(c.begin("done", fp, (), 0));
        c.finish("done", answer("a"), 10);
        assert!(c.begin("running", fp, (), 10));
        assert_eq!(c.lookup("done", &fp, 109), Lookup::Answered(&answer("a")));
        assert_eq!(c.lookup("done", &fp, 110), Lookup::Fresh);
        assert_eq!(c.lookup("running", &fp, 10_000), Lookup::InFlight(&()));
    }

    #[test]
    fn room_is_made_from_the_oldest_answers_never_from_running_commands() {
        let mut c = ReplyCache::new(2, 1000);
        let fp = fingerprint("n", b"null");
        assert!(c.begin("a", fp, (), 0));
        assert!(c.begin("b", fp, (), 0));
        assert!(!c.begin("c", fp, (), 0), "both running: refused");
        c.finish("a", answer("a"), 1);
        assert!(c.begin("c", fp, (), 2));
        assert_eq!(c.lookup("a", &fp, 2), Lookup::Fresh, "the oldest answer made room");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn a_forgotten_command_may_run_again() {
        let mut c = ReplyCache::new(2, 1000);
        let fp = fingerprint("n", b"null");
        assert!(c.begin("a", fp, 1u8, 0));
        assert_eq!(c.forget("a"), Some(1));
        assert_eq!(c.lookup("a", &fp, 0), Lookup::Fresh);
        assert!(c.is_empty());
    }
}
