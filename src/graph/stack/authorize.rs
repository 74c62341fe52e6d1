//! Adds the bearer token. Outside the retry layer: one token serves every
//! attempt of a call. When Graph refuses the token (401) the cached one is
//! dropped and the call is sent once more with a new token, as the Azure SDKs'
//! bearer-token policy does for a revoked or early-expired token.

use super::{GraphRequest, GraphService};
use crate::graph::{GraphError, TokenCache};
use std::sync::Arc;
use tower::ServiceExt;

pub fn layer(inner: GraphService, tokens: Arc<TokenCache>) -> GraphService {
    GraphService::new(tower::service_fn(move |mut req: GraphRequest| {
        let inner = inner.clone();
        let tokens = tokens.clone();
        async move {
            let header = tokens.authorization().await?;
            req.authorization = Some(header.clone());
            let again = req.clone();
            match inner.clone().oneshot(req).await {
                Err(GraphError::Status(f)) if f.status == 401 => {
                    tokens.invalidate(&header);
                    let fresh = tokens.authorization().await?;
                    if fresh == header {
                        return Err(GraphError::Status(f));
                    }
                    let mut again = again;
                    again.authorization = Some(fresh);
                    inner.oneshot(again).await
                }
                other => other,
            }
        }
    }))
}
