//! A throttle pause shared by every call: after Graph answers 429 (or 503)
//! with `Retry-After`, new calls wait it out, or fail fast when their deadline
//! ends sooner, instead of hammering Graph, which keeps metering a client that
//! retries early. The gateway serves one tenant, so one gate covers it.

use super::{GraphRequest, GraphService};
use crate::graph::GraphError;
use crate::metrics::Metrics;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

/// When Graph last asked the tenant's calls to pause until.
#[derive(Debug, Default)]
pub struct ThrottleGate {
    until: Mutex<Option<Instant>>,
}

impl ThrottleGate {
    /// Pauses calls for `delay` from now (never shortens a longer pause).
    pub fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
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
                    return Err(GraphError::Throttled(until - Instant::now()));
                }
                metrics.throttle_wait();
                tokio::time::sleep_until(until).await;
            }
            inner.oneshot(req).await
        }
    }))
}
