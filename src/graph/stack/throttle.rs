//! A throttle pause shared by every call: after Graph answers 429 (or 503)
//! with `Retry-After`, new calls wait it out, or fail fast when their deadline
//! ends sooner, instead of hammering Graph, which keeps metering a client that
//! retries early. The gateway serves one tenant, so one gate covers it.
//!
//! No pause is longer than `GRAPH_MAX_RETRY_AFTER`, whatever Graph (or
//! whatever answers in its place) asks for: a pause until year 9999 would
//! stop every call until restart.

use super::{GraphRequest, GraphService};
use crate::graph::GraphError;
use crate::metrics::Metrics;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

/// When Graph last asked the tenant's calls to pause until.
#[derive(Debug)]
pub struct ThrottleGate {
    until: Mutex<Option<Instant>>,
    /// The longest pause it keeps.
    max_pause: Duration,
}

/// The default `GRAPH_MAX_RETRY_AFTER`: the Graph SDKs' cap on a call's
/// total retry delay.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(180);

impl Default for ThrottleGate {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_RETRY_AFTER)
    }
}

impl ThrottleGate {
    /// A gate whose pauses last at most `max_pause`.
    pub fn new(max_pause: Duration) -> Self {
        Self {
            until: Mutex::new(None),
            max_pause,
        }
    }

    /// The longest pause this gate keeps.
    pub fn max_pause(&self) -> Duration {
        self.max_pause
    }

    /// Pauses calls for `delay` from now, at most the gate's maximum (never
    /// shortens a longer pause).
    pub fn pause_for(&self, delay: Duration) {
        let now = Instant::now();
        let delay = delay.min(self.max_pause);
        // Past the clock's range is treated as the longest pause allowed.
        let Some(until) = now
            .checked_add(delay)
            .or_else(|| now.checked_add(self.max_pause))
        else {
            return;
        };
        let mut current = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
    }

    /// The pause still in force, if any.
    pub fn paused_until(&self) -> Option<Instant> {
        let current = *self.until.lock().unwrap_or_else(PoisonError::into_inner);
        current.filter(|u| *u > Instant::now())
    }
}

pub fn layer(inner: GraphService, gate: Arc<ThrottleGate>, metrics: Arc<Metrics>) -> GraphService {
    GraphService::new(tower::service_fn(move |req: GraphRequest| {
        let inner = inner.clone();
        let gate = gate.clone();
        let metrics = metrics.clone();
        async move {
            if let Some(until) = gate.paused_until() {
                if until > req.deadline {
                    metrics.throttle_fail_fast();
                    let left = until.saturating_duration_since(Instant::now());
                    return Err(GraphError::Throttled(left));
                }
                metrics.throttle_wait();
                tokio::time::sleep_until(until).await;
            }
            inner.oneshot(req).await
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_pause_outlasts_the_maximum() {
        let max = Duration::from_secs(2);
        let gate = ThrottleGate::new(max);
        let before = Instant::now();
        gate.pause_for(Duration::MAX);
        let after = Instant::now();
        let until = gate.paused_until().expect("paused");
        assert!(until >= before + max && until <= after + max, "{until:?}");
        gate.pause_for(Duration::from_millis(10));
        assert_eq!(
            gate.paused_until(),
            Some(until),
            "a shorter pause never shortens a longer one"
        );
    }
}
