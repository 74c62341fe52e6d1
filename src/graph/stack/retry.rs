//! Retries what is safe and worth retrying, the way Graph asks:
//! 429, 503 and 504, and connections that failed before any response, for
//! idempotent methods only; a write only when it cannot have reached Graph
//! (see [`retryable`]). `Retry-After` (seconds or an HTTP date, held to
//! `GRAPH_MAX_RETRY_AFTER` when read) is honoured, and on a 429 or 503 it
//! also pauses every call through the shared gate; without it the delay
//! backs off exponentially with jitter (the
//! Graph SDKs' defaults: 3 retries, 3 s doubling, up to 1 s jitter, at most
//! 180 s in all). A retry that would end past the call's deadline is not
//! made: the failure is returned at once, carrying Graph's delay. A budget
//! caps retries at a share of recent calls, so an outage is not multiplied.

use super::throttle::ThrottleGate;
use super::{GraphRequest, GraphService};
use crate::graph::{GraphError, GraphResponse};
use crate::metrics::Metrics;
use http::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

/// How calls are retried.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Retries after the first attempt (at most 10).
    pub max_retries: u32,
    /// First backoff delay; it doubles per retry.
    pub base_delay: Duration,
    /// Random extra delay, up to this much.
    pub max_jitter: Duration,
    /// Give up once the delays would add up past this.
    pub max_total_delay: Duration,
    /// Retries allowed as a share of calls (percent), over ten seconds.
    pub budget_percent: f32,
    /// Retries always allowed per second, whatever the share.
    pub budget_min_per_second: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_secs(3),
            max_jitter: Duration::from_secs(1),
            max_total_delay: Duration::from_secs(180),
            budget_percent: 20.0,
            budget_min_per_second: 10,
        }
    }
}

#[derive(Clone)]
struct RetryPolicy {
    settings: Arc<RetrySettings>,
    budget: Arc<TpsBudget>,
    gate: Arc<ThrottleGate>,
    metrics: Arc<Metrics>,
    retries: u32,
    waited: Duration,
    deposited: bool,
}

/// Whether a failed attempt may be tried again.
///
/// A read may always be tried again. A write is sent again only when Graph
/// said it did not take it (429, 503) or it provably never left
/// ([`GraphError::Connect`]): after a timeout, a connection lost after the
/// request was written, or a 504 from a gateway that gave up waiting, Graph
/// may have applied it, and sending it blindly again could overwrite what
/// another writer changed meanwhile. The service reads the task back instead.
fn retryable(error: &GraphError, method: &Method) -> Option<&'static str> {
    let read = *method == Method::GET;
    let idempotent = read || matches!(*method, Method::PATCH | Method::DELETE | Method::PUT);
    if !idempotent {
        return None;
    }
    match error {
        GraphError::Status(f) => match f.status {
            429 => Some("429"),
            503 => Some("503"),
            504 if read => Some("504"),
            _ => None,
        },
        GraphError::Connect(_) => Some("connect"),
        GraphError::Lost(_) if read => Some("connection_lost"),
        GraphError::Timeout if read => Some("attempt_timeout"),
        // A read's answer broke off: reading again is harmless. A write's
        // was taken by Graph; the service reads it back instead.
        GraphError::Body(_) if read => Some("body"),
        _ => None,
    }
}

impl RetryPolicy {
    fn backoff(&self) -> Duration {
        let doubling = 2u32.saturating_pow(self.retries);
        let base = self.settings.base_delay.saturating_mul(doubling);
        let jitter_ms = u64::try_from(self.settings.max_jitter.as_millis()).unwrap_or(0);
        base.saturating_add(Duration::from_millis(fastrand::u64(0..=jitter_ms)))
    }
}

impl tower::retry::Policy<GraphRequest, GraphResponse, GraphError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut GraphRequest,
        result: &mut Result<GraphResponse, GraphError>,
    ) -> Option<Self::Future> {
        let Err(error) = result else { return None };
        let asked = match error {
            GraphError::Status(f) => f.retry_after,
            _ => None,
        };
        // Only throttling (429) and unavailability (503) pause every call;
        // a `Retry-After` on any other answer is for this request alone.
        if let (Some(delay), GraphError::Status(f)) = (asked, &*error) {
            if matches!(f.status, 429 | 503) {
                self.gate.pause_for(delay);
            }
        }
        let reason = retryable(error, &req.method)?;
        if self.retries >= self.settings.max_retries {
            return None;
        }
        // Graph's delay was held to GRAPH_MAX_RETRY_AFTER when it was read;
        // the arithmetic saturates all the same, so no delay can panic.
        let delay = asked.unwrap_or_else(|| self.backoff());
        let ends_in_time = Instant::now()
            .checked_add(delay)
            .is_some_and(|at| at < req.deadline);
        if self.waited.saturating_add(delay) > self.settings.max_total_delay || !ends_in_time {
            // The caller would be gone before the retry answers; the failure
            // goes back now, with Graph's delay for the caller to schedule.
            self.metrics.retry_skipped("deadline");
            return None;
        }
        if !self.budget.withdraw() {
            self.metrics.retry_skipped("budget");
            return None;
        }
        self.retries += 1;
        self.waited = self.waited.saturating_add(delay);
        req.attempt = self.retries;
        self.metrics.retry(reason);
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &GraphRequest) -> Option<GraphRequest> {
        if !self.deposited {
            self.budget.deposit();
            self.deposited = true;
        }
        Some(req.clone())
    }
}

/// The retry budget of `settings`: shared by the retry layer and by the
/// service, which spends from it to send an update again after reading the
/// task back.
pub fn budget(settings: &RetrySettings) -> Arc<TpsBudget> {
    Arc::new(TpsBudget::new(
        Duration::from_secs(10),
        settings.budget_min_per_second,
        settings.budget_percent / 100.0,
    ))
}

pub fn layer(
    inner: GraphService,
    settings: RetrySettings,
    budget: Arc<TpsBudget>,
    gate: Arc<ThrottleGate>,
    metrics: Arc<Metrics>,
) -> GraphService {
    let policy = RetryPolicy {
        settings: Arc::new(settings),
        budget,
        gate,
        metrics,
        retries: 0,
        waited: Duration::ZERO,
        deposited: false,
    };
    GraphService::new(tower::retry::Retry::new(policy, inner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphFailure;

    fn status(code: u16) -> GraphError {
        GraphError::Status(Box::new(GraphFailure {
            status: code,
            code: None,
            message: None,
            request_id: None,
            client_request_id: None,
            date: None,
            retry_after: None,
        }))
    }

    #[test]
    fn only_throttling_unavailability_and_lost_connections_are_retried() {
        for code in [429, 503, 504] {
            assert!(retryable(&status(code), &Method::GET).is_some(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 412, 500, 501, 502] {
            assert!(retryable(&status(code), &Method::GET).is_none(), "{code}");
        }
        assert!(retryable(&GraphError::Connect("refused".into()), &Method::GET).is_some());
        assert!(retryable(&GraphError::Lost("reset".into()), &Method::GET).is_some());
        assert!(retryable(&GraphError::Timeout, &Method::GET).is_some());
        assert!(retryable(&status(504), &Method::GET).is_some());
        assert!(retryable(&GraphError::Body("cut".into()), &Method::GET).is_some());
        assert!(retryable(&GraphError::Body("cut".into()), &Method::PATCH).is_none());
    }

    #[test]
    fn a_write_is_sent_again_only_when_it_never_reached_graph() {
        for method in [Method::PATCH, Method::DELETE] {
            assert!(retryable(&GraphError::Connect("refused".into()), &method).is_some());
            for (code, answer) in [(429, true), (503, true), (504, false)] {
                assert_eq!(retryable(&status(code), &method).is_some(), answer);
            }
            // Graph may have taken these: the service reads the task back.
            assert!(retryable(&GraphError::Lost("reset".into()), &method).is_none());
            assert!(retryable(&GraphError::Timeout, &method).is_none());
        }
    }

    #[test]
    fn a_post_is_never_retried() {
        assert!(retryable(&status(429), &Method::POST).is_none());
        assert!(retryable(&GraphError::Connect("reset".into()), &Method::POST).is_none());
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let mut p = RetryPolicy {
            settings: Arc::new(RetrySettings::default()),
            budget: Arc::new(TpsBudget::default()),
            gate: Arc::new(ThrottleGate::default()),
            metrics: Arc::new(Metrics::default()),
            retries: 0,
            waited: Duration::ZERO,
            deposited: false,
        };
        for (retries, base) in [(0, 3), (1, 6), (2, 12)] {
            p.retries = retries;
            let d = p.backoff();
            assert!(
                d >= Duration::from_secs(base) && d <= Duration::from_secs(base + 1),
                "{d:?}"
            );
        }
    }
}
