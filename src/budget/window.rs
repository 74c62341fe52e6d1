//! One budget's sliding-window log: the tokens spent in the last window.
//!
//! A token is held from the moment it is handed out until one window after
//! its Graph answer came back. Graph meters a request when it arrives,
//! which is after the gateway sent it and before its answer returns, so a
//! log that counts from the answer never lets the window Graph sees hold
//! more than the limit, however long the request was on the way: there is
//! no safety margin to guess.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Log {
    window: Duration,
    /// When each answered token's answer came back, oldest first.
    answered: VecDeque<Instant>,
    /// Tokens handed out whose answer has not come back yet.
    in_flight: u32,
}

impl Log {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            answered: VecDeque::new(),
            in_flight: 0,
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    fn expire(&mut self, now: Instant) {
        while self
            .answered
            .front()
            .is_some_and(|at| *at + self.window <= now)
        {
            self.answered.pop_front();
        }
    }

    /// Tokens counted in the window ending now.
    pub fn used(&mut self, now: Instant) -> u32 {
        self.expire(now);
        let answered = u32::try_from(self.answered.len()).unwrap_or(u32::MAX);
        answered.saturating_add(self.in_flight)
    }

    /// Tokens that could be handed out now under `limit`.
    pub fn left(&mut self, now: Instant, limit: u32) -> u32 {
        limit.saturating_sub(self.used(now))
    }

    /// Hands out a token.
    pub fn take(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A token handed out was never used (its waiter was gone).
    pub fn give_back(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The answer of a token's request came back at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.answered.push_back(now);
    }

    /// Counts `n` tokens spent elsewhere, answered at `at`: they hold the
    /// window as this log's own would.
    pub fn seed(&mut self, at: Instant, n: u32) {
        let i = self.answered.partition_point(|t| *t <= at);
        for _ in 0..n {
            self.answered.insert(i, at);
        }
    }

    /// When the token `ahead` places after the next one could be handed
    /// out under `limit`: now while there is room, else when enough of
    /// the log leaves the window (a request still at Graph is counted as
    /// answered now, the earliest it can be).
    pub fn free_at(&mut self, now: Instant, limit: u32, ahead: usize) -> Instant {
        let used = self.used(now) as usize;
        let need = used + ahead;
        let limit = limit as usize;
        if need < limit {
            return now;
        }
        let k = need + 1 - limit;
        match self.answered.get(k - 1) {
            Some(at) => *at + self.window,
            None => now + self.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(20);

    #[test]
    fn a_token_is_held_until_a_window_after_its_answer() {
        let t0 = Instant::now();
        let mut log = Log::new(W);
        for _ in 0..3 {
            log.take();
        }
        assert_eq!(log.used(t0), 3);
        assert_eq!(log.left(t0, 3), 0);
        // In flight for 5 s: still held 20 s after the answer, not the send.
        let answer = t0 + Duration::from_secs(5);
        log.answered(answer);
        assert_eq!(log.used(t0 + W), 3);
        assert_eq!(log.used(answer + W - Duration::from_millis(1)), 3);
        assert_eq!(log.used(answer + W), 2);
    }

    #[test]
    fn the_next_free_token_is_the_oldest_answer_plus_a_window() {
        let t0 = Instant::now();
        let mut log = Log::new(W);
        for i in 0..4u64 {
            log.take();
            log.answered(t0 + Duration::from_secs(i));
        }
        let now = t0 + Duration::from_secs(4);
        assert_eq!(log.free_at(now, 10, 0), now, "room left");
        assert_eq!(
            log.free_at(now, 10, 5),
            now,
            "the 6th next of 10 still fits"
        );
        assert_eq!(log.free_at(now, 4, 0), t0 + W);
        assert_eq!(log.free_at(now, 4, 2), t0 + Duration::from_secs(2) + W);
        // More waiters than answered tokens: counted from answers to come.
        assert_eq!(log.free_at(now, 4, 4), now + W);
        log.take();
        assert_eq!(
            log.free_at(now, 4, 3),
            now + W,
            "an in-flight token frees no sooner than now + W"
        );
    }

    #[test]
    fn tokens_seeded_from_elsewhere_hold_the_window_in_time_order() {
        let t0 = Instant::now();
        let mut log = Log::new(W);
        log.take();
        log.answered(t0);
        log.take();
        log.answered(t0 + Duration::from_secs(10));
        log.seed(t0 + Duration::from_secs(5), 2);
        assert_eq!(log.used(t0 + Duration::from_secs(10)), 4);
        assert_eq!(log.used(t0 + W), 3, "the first answer left");
        assert_eq!(log.free_at(t0 + W, 3, 0), t0 + Duration::from_secs(25));
        assert_eq!(log.used(t0 + Duration::from_secs(25)), 1, "the seeded left");
    }

    #[test]
    fn a_token_given_back_frees_at_once() {
        let t0 = Instant::now();
        let mut log = Log::new(W);
        log.take();
        log.give_back();
        assert_eq!(log.used(t0), 0);
        log.give_back();
        assert_eq!(log.used(t0), 0, "never below zero");
    }
}
