//! Per-caller rate limits: a token bucket per caller in the policy.

use serde::Deserialize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Calls per second a caller may make, with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimit {
    /// What is wrong with the numbers, if anything.
    pub fn problem(&self) -> Option<String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Some(format!(
                "per_second must be a positive number, not {}",
                self.per_second
            ));
        }
        if self.burst == 0 {
            return Some("burst must be at least 1".into());
        }
        None
    }
}

/// One caller's bucket: it holds up to `burst` calls and refills at
/// `per_second`. A call takes one token or is refused with the wait until
/// the next token.
#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            state: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (tokens, last) = *state;
        let refilled = (tokens
            + now.saturating_duration_since(last).as_secs_f64() * self.limit.per_second)
            .min(f64::from(self.limit.burst));
        if refilled >= 1.0 {
            *state = (refilled - 1.0, now);
            Ok(())
        } else {
            *state = (refilled, now);
            let wait = (1.0 - refilled) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait.min(86_400.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let bucket = Bucket::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.take(t0), Ok(()));
        }
        let wait = bucket.take(t0).expect_err("empty");
        assert!(
            wait > Duration::from_millis(490) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Half a second later one token has come back, not more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(bucket.take(t1), Ok(()));
        assert!(bucket.take(t1).is_err());
        // Long idle refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.take(t2), Ok(()));
        }
        assert!(bucket.take(t2).is_err());
    }

    #[test]
    fn nonsense_limits_are_named() {
        let bad = |per_second, burst| RateLimit { per_second, burst }.problem();
        assert!(bad(0.0, 1).is_some());
        assert!(bad(-1.0, 1).is_some());
        assert!(bad(f64::NAN, 1).is_some());
        assert!(bad(1.0, 0).is_some());
        assert!(bad(0.5, 1).is_none());
    }
}
