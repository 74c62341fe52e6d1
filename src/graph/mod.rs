//! The Graph client: sends the requests translation built, to Graph or to the
//! emulator, and reads their answers into success bodies or [`GraphError`]s.
//!
//! Layers, outermost first: the caller's deadline, the access token, then
//! pooled HTTP (HTTP/2 where offered, gzip, rustls with the system's roots).

pub mod auth;
mod error;

pub use auth::{TokenCache, TokenError, TokenErrorKind, TokenHealth};
pub use error::{parse_retry_after, GraphError, GraphFailure};

use crate::metrics::Metrics;
use crate::translate::IdSegment;
use bytes::Bytes;
use http::{header, Method};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The task collection, below the Graph base URL.
pub const COLLECTION_PATH: &str = "/deviceAppManagement/deviceAppManagementTasks";

/// Per-call facts every Graph request carries.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Sent as `client-request-id`; Graph echoes it and logs it.
    pub client_request_id: String,
    /// The caller's gRPC deadline, if it set one.
    pub deadline: Option<Instant>,
}

/// A successful Graph answer.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    /// Graph's `request-id` header.
    pub request_id: Option<String>,
    pub body: Bytes,
}

/// Talks to one Graph endpoint (the real one or the emulator).
pub struct GraphClient {
    http: reqwest::Client,
    collection_url: String,
    tokens: Option<TokenCache>,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The HTTP client shared by Graph calls and token requests.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("graph-grpc-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .gzip(true)
        // Graph does not redirect these routes; following one could carry
        // the bearer token somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl GraphClient {
    /// A client for the Graph API at `base_url` (e.g. `https://graph.microsoft.com/beta`).
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        tokens: Option<TokenCache>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            http,
            collection_url: format!("{}{COLLECTION_PATH}", base_url.trim_end_matches('/')),
            tokens,
            timeout,
            metrics,
        }
    }

    /// `GET /deviceAppManagement/deviceAppManagementTasks/{id}`.
    pub async fn get_task(
        &self,
        id: &IdSegment,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::GET, self.task_url(id), None, ctx).await
    }

    /// `PATCH /deviceAppManagement/deviceAppManagementTasks/{id}`.
    pub async fn patch_task(
        &self,
        id: &IdSegment,
        body: Vec<u8>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::PATCH, self.task_url(id), Some(body), ctx)
            .await
    }

    fn task_url(&self, id: &IdSegment) -> String {
        format!("{}/{}", self.collection_url, id.as_str())
    }

    /// `GET /deviceAppManagement/deviceAppManagementTasks?{query}`.
    pub async fn list_tasks(
        &self,
        query: &str,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let url = format!("{}?{query}", self.collection_url);
        self.send(Method::GET, url, None, ctx).await
    }

    async fn send(
        &self,
        method: Method,
        url: String,
        body: Option<Vec<u8>>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let own = Instant::now() + self.timeout;
        let deadline = ctx.deadline.map_or(own, |d| d.min(own));
        let method_name = method_name(&method);
        let result = tokio::time::timeout_at(deadline, self.exchange(method, url, body, ctx))
            .await
            .unwrap_or(Err(GraphError::Timeout));
        let status = match &result {
            Ok(r) => Some(r.status),
            Err(GraphError::Status(f)) => Some(f.status),
            Err(_) => None,
        };
        self.metrics.graph_request(method_name, status);
        result
    }

    async fn exchange(
        &self,
        method: Method,
        url: String,
        body: Option<Vec<u8>>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let mut req = self
            .http
            .request(method, url)
            .header("client-request-id", &ctx.client_request_id)
            .header("return-client-request-id", "true")
            .header(header::ACCEPT, "application/json");
        if let Some(tokens) = &self.tokens {
            req = req.header(header::AUTHORIZATION, tokens.authorization().await?);
        }
        if let Some(body) = body {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let resp = req.send().await.map_err(|e| {
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
        let body = resp
            .bytes()
            .await
            .map_err(|e| GraphError::Body(describe(e)))?;
        if (200..300).contains(&status) {
            Ok(GraphResponse {
                status,
                request_id,
                body,
            })
        } else {
            Err(GraphError::Status(Box::new(GraphFailure::from_response(
                status,
                request_id,
                retry_after.as_deref(),
                &body,
                SystemTime::now(),
            ))))
        }
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PATCH => "PATCH",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
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
