//! The type every layer of the stack is held as.
//!
//! Each layer clones the service below it for every call (tower's `call`
//! takes `&mut self`, and the future must own what it uses). With tower's
//! `BoxCloneSyncService` a clone copies the whole chain below into new boxes,
//! so a call through n layers made on the order of n² allocations. Here the
//! layer is held once behind an `Arc`, and a clone is a reference count.

use super::GraphRequest;
use crate::graph::{GraphError, GraphResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Service, ServiceExt};

type BoxFuture = Pin<Box<dyn Future<Output = Result<GraphResponse, GraphError>> + Send>>;

type CallFn = dyn Fn(GraphRequest) -> BoxFuture + Send + Sync;

/// A layer of the stack, shared by reference count. Always ready: each layer
/// takes its own capacity decisions inside its call (the concurrency limit is
/// the only one that waits for capacity, and it is driven to readiness inside
/// the shared call).
#[derive(Clone)]
pub struct Shared(Arc<CallFn>);

impl Shared {
    /// Shares `inner`: each call drives a clone of it to readiness, then calls it.
    pub fn new<S>(inner: S) -> Self
    where
        S: Service<GraphRequest, Response = GraphResponse, Error = GraphError>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self(Arc::new(move |req| Box::pin(inner.clone().oneshot(req))))
    }
}

impl Service<GraphRequest> for Shared {
    type Response = GraphResponse;
    type Error = GraphError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), GraphError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: GraphRequest) -> Self::Future {
        (self.0)(req)
    }
}
