//! Adds the bearer token. Outside the retry layer: one token serves every
//! attempt of a call.

use super::{GraphRequest, GraphService};
use crate::graph::TokenCache;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

pub fn layer(inner: GraphService, tokens: Arc<TokenCache>) -> GraphService {
    BoxCloneSyncService::new(tower::service_fn(move |mut req: GraphRequest| {
        let inner = inner.clone();
        let tokens = tokens.clone();
        async move {
            req.authorization = Some(tokens.authorization().await?);
            inner.oneshot(req).await
        }
    }))
}
