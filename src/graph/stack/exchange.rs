//! The innermost layer: one HTTP exchange with Graph.
//!
//! Bodies are read under a limit ([`crate::graph::body`]): a success body
//! past `GRAPH_MAX_ANSWER_BYTES` is [`GraphError::AnswerTooLarge`], and of an
//! error body only the first [`ERROR_BODY_BYTES`] are read (Graph's error
//! JSON is a few hundred bytes; what does not fit maps by status).

use super::{GraphRequest, GraphService};
use crate::graph::body::{self, BodyError, GraphBody};
use crate::graph::transport::{self, GraphHttp};
use crate::graph::{AnswerTooLarge, GraphError, GraphFailure, GraphResponse};
use http::header::{self, HeaderName, HeaderValue};
use http_body_util::Full;
use std::time::{Duration, SystemTime};
use tracing::Instrument;

// Names and fixed values made once, not parsed from text on every request.
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
const RETURN_CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("return-client-request-id");
const RETRY_ATTEMPT: HeaderName = HeaderName::from_static("retry-attempt");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The most of an error body that is read.
pub const ERROR_BODY_BYTES: usize = 64 * 1024;

/// What the exchange reads of Graph's answers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `Retry-After` is held to this.
    pub max_retry_after: Duration,
    /// A success body past this is refused.
    pub max_answer_bytes: u64,
    /// Whether the attempt's span records `url.full` too.
    pub trace_url_full: bool,
}

/// Sends one attempt. Non-success statuses become [`GraphError::Status`].
pub fn service(clients: crate::graph::Clients<GraphHttp>, limits: Limits) -> GraphService {
    GraphService::new(tower::service_fn(move |req: GraphRequest| {
        let client = clients.get().clone();
        let span = attempt_span(&req, limits.trace_url_full);
        async move { exchange(&client, req, limits).instrument(span).await }
    }))
}

async fn exchange(
    client: &GraphHttp,
    req: GraphRequest,
    limits: Limits,
) -> Result<GraphResponse, GraphError> {
    let body = match &req.body {
        Some(body) => Full::new(body.clone()),
        None => Full::default(),
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = req.uri.clone();
    let headers = request.headers_mut();
    headers.reserve(12);
    headers.insert(header::USER_AGENT, transport::USER_AGENT_VALUE);
    headers.insert(header::ACCEPT_ENCODING, transport::GZIP);
    let client_request_id = HeaderValue::from_str(&req.client_request_id)
        .map_err(|_| GraphError::Connect("the client-request-id is not a header value".into()))?;
    headers.insert(CLIENT_REQUEST_ID, client_request_id);
    headers.insert(RETURN_CLIENT_REQUEST_ID, TRUE);
    headers.insert(header::ACCEPT, JSON);
    if let Some(auth) = &req.authorization {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    if req.attempt > 0 {
        headers.insert(RETRY_ATTEMPT, HeaderValue::from(req.attempt));
    }
    if req.body.is_some() {
        headers.insert(header::CONTENT_TYPE, JSON);
    }
    if let Some(auth) = client.proxy_authorization() {
        headers.insert(header::PROXY_AUTHORIZATION, auth.clone());
    }
    // From here on the request may reach Graph. An error means no response
    // arrived: whether the request can have reached Graph decides what may
    // be done next (see `delivery`).
    let already_sent = req.sent.mark();
    let resp = client.send(request).await.map_err(|e| {
        let error = super::delivery::classify(&e).error(describe(&e));
        if matches!(error, GraphError::Connect(_)) && !already_sent {
            req.sent.unmark();
        }
        error
    })?;
    let (parts, incoming) = resp.into_parts();
    let status = parts.status.as_u16();
    let header_text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header_text("request-id");
    let retry_after = header_text("retry-after");
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("http.response.status_code", status);
        if let Some(id) = &request_id {
            span.record("graph.request_id", id.as_str());
        }
        if let Some(delay) = &retry_after {
            span.record("retry_after", delay.as_str());
        }
        if status >= 400 {
            span.record("otel.status_code", "ERROR");
        }
    }
    let resp = GraphBody::new(&parts.headers, incoming);
    if (200..300).contains(&status) {
        // Graph took the request; only its answer was lost (or refused).
        let body = match body::read_limited_from(resp, limits.max_answer_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge { limit }) => {
                return Err(GraphError::AnswerTooLarge(AnswerTooLarge {
                    status,
                    limit,
                    request_id,
                }))
            }
            Err(BodyError::Broken(e)) => return Err(GraphError::Body(describe(&e))),
        };
        Ok(GraphResponse {
            status,
            request_id,
            body,
        })
    } else {
        // A failure whose body broke off, or was too long to read whole,
        // still maps by its status.
        let body = body::read_prefix_from(resp, ERROR_BODY_BYTES).await;
        Err(GraphError::Status(Box::new(GraphFailure::from_response(
            status,
            request_id,
            retry_after.as_deref(),
            &body,
            SystemTime::now(),
            limits.max_retry_after,
        ))))
    }
}

/// One attempt's client span, after OpenTelemetry's HTTP conventions:
/// named by the method and the route with `{id}` for each task id. The URL
/// itself (its ids, and a query that may hold a filter's values) only with
/// `url_full` (`GATEWAY_TRACE_URL_FULL`), as `url.full`.
/// A debug span: made only when traces are exported.
fn attempt_span(req: &GraphRequest, url_full: bool) -> tracing::Span {
    // Given when the span is made, not recorded after: a record is a
    // registry lookup per layer. Worked out only when a debug span can be
    // made at all (traces are exported, or debug logs written).
    let template =
        tracing::level_enabled!(tracing::Level::DEBUG).then(|| url_template(req.uri.path()));
    let span = tracing::debug_span!(
        "graph request",
        otel.name = template
            .as_deref()
            .map(|t| tracing::field::display(AttemptName(&req.method, t))),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = req.method.as_str(),
        url.template = template.as_deref(),
        url.full = tracing::field::Empty,
        server.address = req.uri.host().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
        http.request.resend_count = req.attempt,
        retry.attempt = req.attempt,
        retry_after = tracing::field::Empty,
        graph.request_id = tracing::field::Empty,
        graph.client_request_id = &*req.client_request_id,
    );
    if url_full && !span.is_disabled() {
        span.record("url.full", full_url(&req.uri).as_str());
    }
    span
}

/// An attempt's span name: the method and the route template.
struct AttemptName<'a>(&'a http::Method, &'a str);

impl std::fmt::Display for AttemptName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// `url.full` as OpenTelemetry's HTTP conventions write it: scheme, host,
/// port, path and query; never a user name or password.
fn full_url(uri: &http::Uri) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(host) = uri.host() {
        out.push_str(host);
    }
    if let Some(port) = uri.port_u16() {
        let _ = write!(out, ":{port}");
    }
    out.push_str(
        uri.path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str),
    );
    out
}

/// A Graph path with every segment that is a task id as `{id}`.
pub fn url_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    loop {
        // `/` is one byte in UTF-8: every cut below is at a char boundary.
        let (segment, next) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        out.push_str(if crate::translate::is_guid(segment) {
            "{id}"
        } else {
            segment
        });
        match next {
            Some(next) => {
                out.push('/');
                rest = next;
            }
            None => return out,
        }
    }
}

/// The error and its causes. Neither hyper's errors nor the connector's
/// repeat the URL or a header value.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{full_url, url_template};

    #[test]
    fn a_url_template_has_id_for_each_task_id_and_nothing_else_changed() {
        for (path, want) in [
            (
                "/beta/deviceAppManagement/deviceAppManagementTasks/5d630f12-0f12-5d63-120f-635d120f635d",
                "/beta/deviceAppManagement/deviceAppManagementTasks/{id}",
            ),
            (
                "/beta/deviceAppManagement/deviceAppManagementTasks",
                "/beta/deviceAppManagement/deviceAppManagementTasks",
            ),
            (
                "/beta/deviceAppManagement/deviceAppManagementTasks/5d630f12-0f12-5d63-120f-635d120f635d/updateStatus",
                "/beta/deviceAppManagement/deviceAppManagementTasks/{id}/updateStatus",
            ),
            ("/beta/$batch", "/beta/$batch"),
            ("", ""),
            ("/", "/"),
        ] {
            assert_eq!(url_template(path), want, "{path}");
        }
    }

    #[test]
    fn the_full_url_keeps_the_path_and_query_but_never_a_user() {
        for (uri, want) in [
            (
                "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks/5d630f12-0f12-5d63-120f-635d120f635d",
                "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks/5d630f12-0f12-5d63-120f-635d120f635d",
            ),
            (
                "http://127.0.0.1:8081/beta/deviceAppManagement/deviceAppManagementTasks?$filter=status%20eq%20'pending'&$top=50",
                "http://127.0.0.1:8081/beta/deviceAppManagement/deviceAppManagementTasks?$filter=status%20eq%20'pending'&$top=50",
            ),
            (
                "https://user:password@[fd00::1]:8443/beta/x?a=1",
                "https://[fd00::1]:8443/beta/x?a=1",
            ),
        ] {
            let uri: http::Uri = uri.parse().expect("a URI");
            assert_eq!(full_url(&uri), want);
        }
    }
}
