//! Admission: at most `max_in_flight` Graph calls at once, and a bounded,
//! first-come-first-served queue behind them.
//!
//! A burst past the cap waits its turn (a wait costs a parked future, not a
//! connection to Graph), so a short spike is absorbed instead of failing;
//! past `max_queued` waiters a call fails at once with
//! [`GraphError::Overloaded`], so the queue never grows without bound. A call
//! whose deadline comes while it waits fails the same way, never having
//! been sent.
//!
//! With Intune's budget on, a call first takes its budget token, then a
//! slot: a call waiting for the budget holds a place in the same bounded
//! queue but no slot, so writes waiting for the write budget never keep
//! reads from Graph. A call whose turn in the budget comes after its
//! deadline fails at once with [`GraphError::BudgetExhausted`], unsent. A
//! token taken for a call that then fails before it is sent goes back.

use super::{GraphRequest, GraphService};
use crate::graph::{GraphError, Overload};
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;
use tracing::Instrument;

/// How many calls may be at Graph, and how many may wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub max_in_flight: usize,
    pub max_queued: usize,
}

struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    metrics: Arc<Metrics>,
    budget: Option<Arc<crate::budget::Budget>>,
}

/// Counts one waiter for as long as it lives, so a call dropped while it
/// waits (its caller went away) leaves the count right.
struct Waiting<'a>(&'a Gate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.graph_queued_dec();
    }
}

impl Gate {
    /// A place in the queue, or the refusal of a full one.
    fn enqueue(&self) -> Result<Waiting<'_>, GraphError> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics.load_shed();
            return Err(GraphError::Overloaded(Overload::QueueFull));
        }
        self.metrics.graph_queued_inc();
        Ok(Waiting(self))
    }

    async fn admit(&self, req: &GraphRequest) -> Result<OwnedSemaphorePermit, GraphError> {
        let mut waiting = None;
        match &self.budget {
            // Tokens the caller took itself (a batch's, item by item).
            Some(_) if !req.grant.is_empty() => {}
            Some(budget) => {
                let grants = match budget.try_acquire_cost(req.cost) {
                    Some(grants) => grants,
                    None => {
                        waiting = Some(self.enqueue()?);
                        budget
                            .acquire_cost(&req.caller, req.cost, req.deadline)
                            .instrument(tracing::debug_span!("budget wait"))
                            .await
                            .map_err(GraphError::BudgetExhausted)?
                    }
                };
                req.grant.put(grants);
            }
            None => {}
        }
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _waiting = match waiting {
            Some(w) => w,
            None => self.enqueue()?,
        };
        let slot = tokio::time::timeout_at(req.deadline, self.slots.clone().acquire_owned())
            .instrument(tracing::debug_span!("graph slot wait"));
        match slot.await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it as a full queue anyway.
            Ok(Err(_)) => Err(GraphError::Overloaded(Overload::QueueFull)),
            Err(_) => {
                self.metrics.load_shed();
                Err(GraphError::Overloaded(Overload::DeadlineWhileQueued))
            }
        }
    }
}

pub fn layer(
    inner: GraphService,
    admission: Admission,
    budget: Option<Arc<crate::budget::Budget>>,
    metrics: Arc<Metrics>,
) -> GraphService {
    let gate = Arc::new(Gate {
        slots: Arc::new(Semaphore::new(admission.max_in_flight.max(1))),
        waiting: AtomicUsize::new(0),
        max_queued: admission.max_queued,
        metrics,
        budget,
    });
    GraphService::new(tower::service_fn(move |req: GraphRequest| {
        let inner = inner.clone();
        let gate = gate.clone();
        async move {
            let grant = req.grant.clone();
            let admitted = gate.admit(&req).await;
            let result = match admitted {
                Ok(_slot) => inner.oneshot(req).await,
                Err(e) => Err(e),
            };
            // A token still here never reached the attempt that would have
            // used it (no slot in time, no Entra token, a throttle pause):
            // the request was not sent, so the token frees at once.
            if let Some(unsent) = grant.take() {
                unsent.into_iter().for_each(crate::budget::Grant::give_back);
            }
            result
        }
    }))
}
