//! Each attempt's budget token: the first attempt's comes from admission
//! (taken before the call held a slot), a retry takes its own, since Graph
//! counts every request it receives. The token is held until the answer is
//! back, and a 429 tells the budget its pace is too high. An attempt that
//! could not connect was never counted by Graph: its token goes back.

use super::{GraphRequest, GraphService};
use crate::budget::{Budget, Grant, Lane};
use crate::graph::GraphError;
use std::sync::Arc;
use tower::ServiceExt;

pub fn layer(inner: GraphService, budget: Arc<Budget>) -> GraphService {
    GraphService::new(tower::service_fn(move |req: GraphRequest| {
        let inner = inner.clone();
        let budget = budget.clone();
        async move {
            let lane = Lane::for_method(&req.method);
            let grants = match req.grant.take() {
                Some(grants) => grants,
                None => budget
                    .acquire_cost(&req.caller, req.cost, req.deadline)
                    .await
                    .map_err(GraphError::BudgetExhausted)?,
            };
            let result = inner.oneshot(req).await;
            match &result {
                Err(GraphError::Status(f)) if f.status == 429 => budget.throttled(lane),
                // The attempt provably never left: Graph counted nothing.
                Err(GraphError::Connect(_)) => {
                    grants.into_iter().for_each(Grant::give_back);
                    return result;
                }
                _ => {}
            }
            drop(grants);
            result
        }
    }))
}
