//! Publication ids a backend chose, remembered for a while on each node, so
//! that a publication sent again with the same id (a retry after a `503`,
//! through this node or another) is delivered at most once per node.
//! Bounded in time and in count; the oldest are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How long an id is remembered (ms): five minutes of retries.
pub const WINDOW_MS: u64 = 300_000;
/// Ids remembered at most (the oldest go first past it).
pub const CAP: usize = 100_000;

#[derive(Debug, Default)]
pub struct RecentIds {
    /// Each id, and whether it was delivered here (`false`: accepted here,
    /// on its way back from a broker that delivers to its origin too).
    seen: HashMap<Arc<str>, bool>,
    /// The same ids, oldest first, with when they were first seen.
    order: VecDeque<(u64, Arc<str>)>,
}

impl RecentIds {
    /// Records the delivery of `id` at `now_ms`: `true` the first time
    /// within the window (also when it was only [`Self::claim`]ed).
    pub fn first(&mut self, id: &str, now_ms: u64) -> bool {
        match self.entry(id, now_ms, true) {
            None => true,
            Some(delivered) => !std::mem::replace(delivered, true),
        }
    }

    /// Records `id` accepted here, to be delivered when it comes back from
    /// the broker: `true` the first time within the window.
    pub fn claim(&mut self, id: &str, now_ms: u64) -> bool {
        self.entry(id, now_ms, false).is_none()
    }

    /// The id's delivered flag when it was known; else remembers it with
    /// `delivered` and returns `None`.
    fn entry(&mut self, id: &str, now_ms: u64, delivered: bool) -> Option<&mut bool> {
        while self.order.front().is_some_and(|(t, _)| now_ms.saturating_sub(*t) >= WINDOW_MS) {
            self.forget_oldest();
        }
        if self.seen.contains_key(id) {
            return self.seen.get_mut(id);
        }
        if self.order.len() >= CAP {
            self.forget_oldest();
        }
        let id: Arc<str> = Arc::from(id);
        self.seen.insert(Arc::clone(&id), delivered);
        self.order.push_back((now_ms, id));
        None
    }

    fn forget_oldest(&mut self) {
        if let Some((_, old)) = self.order.pop_front() {
            self.seen.remove(&old);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_counts_once_within_the_window() {
        let mut r = RecentIds::default();
        assert!(r.first("order-1", 0));
        assert!(!r.first("order-1", 1_000), "a retry");
        assert!(r.first("order-2", 1_000));
        assert!(!r.first("order-1", WINDOW_MS - 1), "still within the window");
        assert!(r.first("order-1", WINDOW_MS), "forgotten after it");
        assert_eq!(r.len(), 2, "order-2 (at 1,000) and order-1 again");
    }

    #[test]
    fn a_claimed_id_is_delivered_once_when_it_comes_back() {
        let mut r = RecentIds::default();
        assert!(r.claim("order-1", 0), "accepted here");
        assert!(!r.claim("order-1", 1), "a retry here is a duplicate");
        assert!(r.first("order-1", 2), "its first arrival is delivered");
        assert!(!r.first("order-1", 3), "the retry's arrival is not");
        assert!(r.first("order-2", 4), "from another node first");
        assert!(!r.claim("order-2", 5));
        assert!(!r.first("order-2", 6));
    }

    #[test]
    fn the_oldest_go_first_past_the_cap() {
        let mut r = RecentIds::default();
        for i in 0..CAP {
            assert!(r.first(&i.to_string(), 0));
        }
        assert_eq!(r.len(), CAP);
        assert!(r.first("one more", 0));
        assert_eq!(r.len(), CAP, "bounded");
        assert!(r.first("0", 0), "the oldest was forgotten");
        assert!(!r.first("2", 0), "a recent one was not");
    }
}
