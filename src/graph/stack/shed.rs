//! A cap on Graph calls in flight. Past it, calls fail at once with
//! [`GraphError::Overloaded`] rather than queueing without bound.

use super::GraphService;
use crate::graph::GraphError;
use crate::metrics::Metrics;
use std::sync::Arc;
use tower::ServiceExt;

pub fn layer(inner: GraphService, max_in_flight: usize, metrics: Arc<Metrics>) -> GraphService {
    let limited = tower::ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(max_in_flight.max(1))
        .service(inner);
    GraphService::new(
        limited.map_err(move |e: tower::BoxError| match e.downcast::<GraphError>() {
            Ok(graph) => *graph,
            Err(other) => {
                if other.is::<tower::load_shed::error::Overloaded>() {
                    metrics.load_shed();
                }
                GraphError::Overloaded
            }
        }),
    )
}
