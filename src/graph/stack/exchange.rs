//! The innermost layer: one HTTP exchange with Graph.

use super::{GraphRequest, GraphService};
use crate::graph::{GraphError, GraphFailure, GraphResponse};
use http::header;
use std::time::SystemTime;
use tower::util::BoxCloneSyncService;

/// Sends one attempt. Non-success statuses become [`GraphError::Status`].
pub fn service(client: reqwest::Client) -> GraphService {
    BoxCloneSyncService::new(tower::service_fn(move |req: GraphRequest| {
        let client = client.clone();
        async move { exchange(&client, req).await }
    }))
}

async fn exchange(
    client: &reqwest::Client,
    req: GraphRequest,
) -> Result<GraphResponse, GraphError> {
    let mut builder = client
        .request(req.method, &*req.url)
        .header("client-request-id", &*req.client_request_id)
        .header("return-client-request-id", "true")
        .header(header::ACCEPT, "application/json");
    if let Some(auth) = req.authorization {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    if req.attempt > 0 {
        builder = builder.header("Retry-Attempt", req.attempt);
    }
    if let Some(body) = req.body {
        builder = builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    // An error here means no response arrived: the request may or may not
    // have reached Graph, which the retry policy weighs by method.
    let resp = builder.send().await.map_err(|e| {
        if e.is_timeout() {
            GraphError::Timeout
        } else {
            GraphError::Connect(describe(e))
        }
    })?;
    let status = resp.status().as_u16();
    let header_text = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header_text("request-id");
    let retry_after = header_text("retry-after");
    let body = resp.bytes().await;
    if (200..300).contains(&status) {
        // Graph took the request; only its answer was lost.
        let body = body.map_err(|e| GraphError::Body(describe(e)))?;
        Ok(GraphResponse {
            status,
            request_id,
            body,
        })
    } else {
        // A failure whose body broke off still maps by its status.
        let body = body.unwrap_or_default();
        Err(GraphError::Status(Box::new(GraphFailure::from_response(
            status,
            request_id,
            retry_after.as_deref(),
            &body,
            SystemTime::now(),
        ))))
    }
}

/// The error and its causes, without the URL (which names the task).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
