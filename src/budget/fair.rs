//! A weighted fair queue of waiting calls, by caller: start-time fair
//! queueing. Each caller has a virtual clock that moves on by `1 / weight`
//! per call it queues; the call with the earliest virtual start goes first.
//! A caller flooding the queue only pushes its own clock ahead, so a caller
//! that sends one call now and then finds itself at the front; a caller of
//! weight 2 gets twice the turns of a caller of weight 1 while both wait.
//! A caller that was idle starts at the queue's current virtual time, so
//! idling earns no credit to flood with later.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Virtual time that one call of a weight-1 caller costs.
const COST: u64 = 1_000_000;

/// Where a waiter stands: its virtual start, then arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    start: u64,
    seq: u64,
}

#[derive(Debug)]
pub struct FairQueue<W> {
    /// The virtual start of the call served last.
    now: u64,
    seq: u64,
    /// Each waiting or recently served caller's virtual finish.
    finish: HashMap<Arc<str>, u64>,
    waiting: BTreeMap<Place, W>,
}

impl<W> Default for FairQueue<W> {
    fn default() -> Self {
        Self {
            now: 0,
            seq: 0,
            finish: HashMap::new(),
            waiting: BTreeMap::new(),
        }
    }
}

impl<W> FairQueue<W> {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Queues `waiter` for `caller`, whose share is `weight` (at least 1).
    pub fn push(&mut self, caller: &Arc<str>, weight: u32, waiter: W) -> Place {
        let cost = COST / u64::from(weight.max(1));
        let finish = self.finish.entry(caller.clone()).or_insert(0);
        let start = (*finish).max(self.now);
        *finish = start.saturating_add(cost);
        self.seq += 1;
        let place = Place {
            start,
            seq: self.seq,
        };
        self.waiting.insert(place, waiter);
        place
    }

    /// How many waiters go before `place`.
    pub fn ahead(&self, place: Place) -> usize {
        self.waiting.range(..place).count()
    }

    pub fn peek(&self) -> Option<(&Place, &W)> {
        self.waiting.first_key_value()
    }

    /// Takes the next waiter out.
    pub fn pop(&mut self) -> Option<(Place, W)> {
        let (place, waiter) = self.waiting.pop_first()?;
        self.now = self.now.max(place.start);
        if self.waiting.is_empty() {
            // Callers whose clock is not ahead of the queue's need no entry.
            let now = self.now;
            self.finish.retain(|_, finish| *finish > now);
        }
        Some((place, waiter))
    }

    /// Puts a popped waiter back where it stood (its turn could not be
    /// served yet).
    pub fn restore(&mut self, place: Place, waiter: W) {
        self.waiting.insert(place, waiter);
    }

    /// Takes a waiter out of turn (it gave up).
    pub fn remove(&mut self, place: Place) -> Option<W> {
        self.waiting.remove(&place)
    }

    /// Drops every waiter `gone` says is gone.
    pub fn retain(&mut self, mut keep: impl FnMut(&W) -> bool) {
        self.waiting.retain(|_, w| keep(w));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut FairQueue<&'static str>, n: usize) -> Vec<&'static str> {
        (0..n).filter_map(|_| q.pop().map(|(_, w)| w)).collect()
    }

    #[test]
    fn a_flooding_caller_does_not_starve_an_occasional_one() {
        let mut q = FairQueue::default();
        let flood: Arc<str> = Arc::from("flood");
        let quiet: Arc<str> = Arc::from("quiet");
        for _ in 0..50 {
            q.push(&flood, 1, "flood");
        }
        let place = q.push(&quiet, 1, "quiet");
        assert_eq!(q.ahead(place), 1, "one flood call was already at the front");
        assert_eq!(drain(&mut q, 2), ["flood", "quiet"]);
    }

    #[test]
    fn weights_share_turns_in_proportion() {
        let mut q = FairQueue::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        for _ in 0..30 {
            q.push(&a, 2, "a");
            q.push(&b, 1, "b");
        }
        let first = drain(&mut q, 30);
        let a_turns = first.iter().filter(|w| **w == "a").count();
        assert_eq!(a_turns, 20, "{first:?}");
    }

    #[test]
    fn idling_earns_no_credit() {
        let mut q = FairQueue::default();
        let a: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("b");
        for _ in 0..10 {
            q.push(&a, 1, "a");
        }
        drain(&mut q, 8);
        // b was idle all along: it joins at the queue's virtual time, not at 0.
        for _ in 0..5 {
            q.push(&b, 1, "b");
        }
        assert_eq!(drain(&mut q, 4), ["b", "a", "b", "a"]);
    }

    #[test]
    fn a_waiter_can_leave_and_be_put_back() {
        let mut q = FairQueue::default();
        let a: Arc<str> = Arc::from("a");
        let p1 = q.push(&a, 1, "one");
        let p2 = q.push(&a, 1, "two");
        assert_eq!(q.remove(p1), Some("one"));
        assert_eq!(q.ahead(p2), 0);
        let (place, w) = q.pop().expect("two");
        q.restore(place, w);
        assert_eq!(q.peek().map(|(_, w)| *w), Some("two"));
        q.retain(|w| *w != "two");
        assert!(q.is_empty());
    }
}
