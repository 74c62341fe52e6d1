//! Bounds each attempt, so one stuck connection cannot use up the call's
//! whole deadline and leave no time to retry.

use super::{GraphRequest, GraphService};
use crate::graph::GraphError;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

pub fn layer(inner: GraphService, per_attempt: Duration) -> GraphService {
    GraphService::new(tower::service_fn(move |req: GraphRequest| {
        let inner = inner.clone();
        async move {
            let until = req.deadline.min(Instant::now() + per_attempt);
            tokio::time::timeout_at(until, inner.oneshot(req))
                .await
                .unwrap_or(Err(GraphError::Timeout))
        }
    }))
}
