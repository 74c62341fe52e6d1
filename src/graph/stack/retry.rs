//! Retries what is safe and worth retrying, the way Graph asks:
//! 429, 503 and 504, lost connections, timeouts and broken answers for
//! reads; a write (PATCH, DELETE, a POST that creates) only when Graph said
//! it did not act or it cannot have reached Graph (see [`retryable`]; each
//! request says which it is, [`Resend`]). `Retry-After` (seconds or an HTTP date, held to
//! `GRAPH_MAX_RETRY_AFTER` when read) is honoured, and on a 429 or 503 it
//! also pauses every call through the shared gate; without it the delay
//! backs off exponentially with jitter (the
//! Graph SDKs' defaults: 3 retries, 3 s doubling, up to 1 s jitter, at most
//! 180 s in all). A retry that would end past the call's deadline is not
//! made: the failure is returned at once, carrying Graph's delay. A budget
//! caps retries at a share of recent calls, so an outage is not multiplied.

use super::throttle::ThrottleGate;
use super::{GraphRequest, GraphService, Resend};
use crate::graph::{GraphError, GraphResponse};
use crate::metrics::Metrics;
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
/// request was written, a 504 from a gateway that gave up waiting or another
/// 5xx, or a success whose body broke off, Graph may have applied it.
/// Sending a PATCH blindly again could overwrite what another writer changed
/// meanwhile (the service reads the task back instead); sending a create's
/// POST again could create a second task (the service says the outcome is
/// unknown).
fn retryable(error: &GraphError, resend: Resend) -> Option<&'static str> {
    let read = resend == Resend::AfterAnyFailure;
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
        // was taken by Graph.
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
        let reason = retryable(error, req.resend)?;
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

    const READ: Resend = Resend::AfterAnyFailure;
    const WRITE: Resend = Resend::OnlyIfNotTaken;

    #[test]
    fn only_throttling_unavailability_and_lost_connections_are_retried() {
        for code in [429, 503, 504] {
            assert!(retryable(&status(code), READ).is_some(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 412, 500, 501, 502] {
            assert!(retryable(&status(code), READ).is_none(), "{code}");
        }
        assert!(retryable(&GraphError::Connect("refused".into()), READ).is_some());
        assert!(retryable(&GraphError::Lost("reset".into()), READ).is_some());
        assert!(retryable(&GraphError::Timeout, READ).is_some());
        assert!(retryable(&GraphError::Body("cut".into()), READ).is_some());
        assert!(retryable(&GraphError::Body("cut".into()), WRITE).is_none());
    }

    #[test]
    fn a_write_is_sent_again_only_when_it_never_reached_graph() {
        assert!(retryable(&GraphError::Connect("refused".into()), WRITE).is_some());
        for (code, answer) in [(429, true), (503, true), (504, false)] {
            assert_eq!(retryable(&status(code), WRITE).is_some(), answer, "{code}");
        }
        // Graph may have taken these.
        for code in [500, 502, 507, 599] {
            assert!(retryable(&status(code), WRITE).is_none(), "{code}");
        }
        assert!(retryable(&GraphError::Lost("reset".into()), WRITE).is_none());
        assert!(retryable(&GraphError::Timeout, WRITE).is_none());
        let too_large = GraphError::AnswerTooLarge(crate::graph::AnswerTooLarge {
            status: 201,
            limit: 1,
            request_id: None,
        });
        assert!(retryable(&too_large, WRITE).is_none());
    }

    #[test]
    fn every_method_but_get_is_a_write() {
        assert_eq!(Resend::for_method(&http::Method::GET), READ);
        for method in [
            http::Method::POST,
            http::Method::PATCH,
            http::Method::DELETE,
            http::Method::PUT,
        ] {
            assert_eq!(Resend::for_method(&method), WRITE, "{method}");
        }
    }

    /// Runs one request with `resend` through the retry layer over an
    /// inner service that answers `script` in turn; returns the attempts
    /// made and the last answer.
    async fn attempts(
        resend: Resend,
        script: Vec<Result<u16, GraphError>>,
    ) -> (usize, Result<GraphResponse, GraphError>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        use tower::ServiceExt;
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = {
            let (script, calls) = (script.clone(), calls.clone());
            GraphService::new(tower::service_fn(move |_req: GraphRequest| {
                calls.fetch_add(1, Ordering::SeqCst);
                let next = script
                    .lock()
                    .expect("script")
                    .pop_front()
                    .expect("no attempt past the script");
                async move {
                    next.map(|status| GraphResponse {
                        status,
                        request_id: None,
                        body: bytes::Bytes::new(),
                    })
                }
            }))
        };
        let settings = RetrySettings {
            base_delay: Duration::from_millis(1),
            max_jitter: Duration::ZERO,
            ..RetrySettings::default()
        };
        let svc = layer(
            inner,
            settings.clone(),
            budget(&settings),
            Arc::new(ThrottleGate::default()),
            Arc::new(Metrics::default()),
        );
        let req = GraphRequest {
            method: http::Method::POST,
            uri: http::Uri::from_static("http://127.0.0.1/beta/x"),
            body: Some(bytes::Bytes::from_static(b"{}")),
            client_request_id: "c".into(),
            deadline: Instant::now() + Duration::from_secs(60),
            authorization: None,
            attempt: 0,
            sent: crate::graph::Sent::default(),
            resend,
            caller: Default::default(),
            cost: crate::budget::Cost::default(),
            grant: Default::default(),
        };
        let result = svc.oneshot(req).await;
        (calls.load(Ordering::SeqCst), result)
    }

    #[tokio::test]
    async fn a_create_that_may_have_reached_graph_is_sent_once() {
        for lost in [
            GraphError::Timeout,
            GraphError::Lost("reset after the request was written".into()),
            GraphError::Body("cut".into()),
            status(504),
            status(500),
            status(502),
        ] {
            let shown = lost.to_string();
            let (calls, result) = attempts(WRITE, vec![Err(lost), Ok(201)]).await;
            assert_eq!(calls, 1, "{shown}");
            assert!(result.is_err(), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_create_graph_did_not_act_on_is_sent_again() {
        for refused in [
            status(429),
            status(503),
            GraphError::Connect("refused".into()),
        ] {
            let shown = refused.to_string();
            let (calls, result) = attempts(WRITE, vec![Err(refused), Ok(201)]).await;
            assert_eq!(calls, 2, "{shown}");
            assert_eq!(result.expect("created").status, 201, "{shown}");
        }
    }

    #[tokio::test]
    async fn a_read_is_tried_again_after_a_lost_answer() {
        let (calls, result) = attempts(READ, vec![Err(GraphError::Timeout), Ok(200)]).await;
        assert_eq!(calls, 2);
        assert_eq!(result.expect("read").status, 200);
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
