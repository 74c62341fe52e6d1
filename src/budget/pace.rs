//! How far the gateway trusts the configured budget: a 429 from Graph means
//! the real budget is smaller than configured (another app of the tenant,
//! another replica without the shared store, a limit Microsoft lowered), so
//! the pace drops; it recovers gradually once Graph stops refusing.
//!
//! Additive increase, multiplicative decrease, the rule TCP uses for the same
//! problem (finding an unknown capacity from refusals): a 429 halves the
//! limit, at most once per window (the 429s of one overrun are one signal,
//! not many); every whole window after that without a 429 gives back a
//! tenth of the configured limit, so from half it takes five windows (100 s
//! at Intune's 20 s) to reach the configured limit again.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Pace {
    configured: u32,
    current: u32,
    window: Duration,
    /// When the last cut was made; recovery steps count from it.
    last_change: Option<Instant>,
}

/// A change of pace, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Lowered(u32),
    Raised(u32),
}

impl Pace {
    pub fn new(configured: u32, window: Duration) -> Self {
        Self {
            configured,
            current: configured,
            window,
            last_change: None,
        }
    }

    pub fn configured(&self) -> u32 {
        self.configured
    }

    /// The step one quiet window gives back.
    fn step(&self) -> u32 {
        (self.configured / 10).max(1)
    }

    /// The limit in force at `now`, after any recovery due.
    pub fn limit(&mut self, now: Instant) -> (u32, Option<Change>) {
        let mut change = None;
        while self.current < self.configured {
            let Some(since) = self.last_change else { break };
            if now < since + self.window {
                break;
            }
            self.current = self
                .current
                .saturating_add(self.step())
                .min(self.configured);
            self.last_change = Some(since + self.window);
            change = Some(Change::Raised(self.current));
        }
        (self.current, change)
    }

    /// Graph refused a request with 429 at `now`.
    pub fn throttled(&mut self, now: Instant) -> Option<Change> {
        if self
            .last_change
            .is_some_and(|at| now < at + self.window && self.current < self.configured)
        {
            // Already cut for this overrun; the window has to pass first.
            return None;
        }
        let (current, _) = self.limit(now);
        self.current = (current / 2).max(1);
        self.last_change = Some(now);
        Some(Change::Lowered(self.current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(20);

    #[test]
    fn a_429_halves_the_pace_once_per_window() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100, W);
        assert_eq!(pace.limit(t0), (100, None));
        assert_eq!(pace.throttled(t0), Some(Change::Lowered(50)));
        assert_eq!(
            pace.throttled(t0 + Duration::from_secs(1)),
            None,
            "same overrun"
        );
        assert_eq!(pace.limit(t0 + Duration::from_secs(19)).0, 50);
        // A 429 a full window later is a new signal.
        let again = t0 + W + Duration::from_millis(1);
        assert_eq!(
            pace.throttled(again),
            Some(Change::Lowered(30)),
            "60 / 2: one quiet window gave a step back first"
        );
    }

    #[test]
    fn the_pace_recovers_a_tenth_per_quiet_window() {
        let t0 = Instant::now();
        let mut pace = Pace::new(100, W);
        pace.throttled(t0);
        assert_eq!(pace.limit(t0 + W), (60, Some(Change::Raised(60))));
        assert_eq!(pace.limit(t0 + W * 2 + Duration::from_secs(1)).0, 70);
        assert_eq!(pace.limit(t0 + W * 10), (100, Some(Change::Raised(100))));
        assert_eq!(
            pace.limit(t0 + W * 11),
            (100, None),
            "never past the configured limit"
        );
    }

    #[test]
    fn the_pace_never_drops_below_one() {
        let t0 = Instant::now();
        let mut pace = Pace::new(1, W);
        assert_eq!(pace.throttled(t0), Some(Change::Lowered(1)));
        let mut pace = Pace::new(3, W);
        pace.throttled(t0);
        assert_eq!(pace.limit(t0).0, 1);
        assert_eq!(pace.limit(t0 + W).0, 2, "a step is at least one token");
    }
}
