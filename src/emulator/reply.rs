//! Building Graph responses: request ids on every answer, OData JSON bodies,
//! error bodies.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use uuid::Uuid;

use super::error::{error_body, GraphError};

/// Content type of Graph's JSON payloads.
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// Content type of Graph's error bodies.
pub const ERROR_JSON: &str = "application/json";

pub const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
pub const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// The ids one Graph request is answered with.
pub struct RequestIds {
    pub request_id: String,
    /// The client's own `client-request-id`, echoed back verbatim.
    pub client_request_id: Option<HeaderValue>,
}

impl RequestIds {
    pub fn new(headers: &HeaderMap) -> Self {
        RequestIds {
            request_id: Uuid::new_v4().to_string(),
            client_request_id: headers.get(CLIENT_REQUEST_ID).cloned(),
        }
    }

    fn client_str(&self) -> Option<&str> {
        self.client_request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
    }

    /// Adds `request-id` and `client-request-id`. Like Graph, a request that
    /// sent no `client-request-id` gets its `request-id` in that header.
    pub fn stamp(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            let client = self
                .client_request_id
                .clone()
                .unwrap_or_else(|| value.clone());
            headers.insert(REQUEST_ID, value);
            headers.insert(CLIENT_REQUEST_ID, client);
        }
    }

    /// A Graph error body for `code`/`message`, with these ids inside.
    pub fn error_bytes(&self, code: &str, message: &str) -> Vec<u8> {
        error_body(code, message, &self.request_id, self.client_str())
    }

    pub fn error(&self, error: &GraphError) -> Response {
        let body = self.error_bytes(&error.code, &error.message);
        let mut response = with_body(error.status, ERROR_JSON, body);
        if let Some(allow) = error.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// A response with a body of the given content type.
pub fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An OData JSON answer.
pub fn json(status: StatusCode, value: &Value) -> Response {
    // A serde_json::Value always serialises.
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = with_body(status, ODATA_JSON, body);
    response.headers_mut().insert(
        HeaderName::from_static("odata-version"),
        HeaderValue::from_static("4.0"),
    );
    response
}

/// A bodiless answer (204, or a fault that sends nothing).
pub fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// A response hyper never delivers: its body fails before a byte is
/// written, so the server closes the connection (HTTP/1) or resets the
/// stream (HTTP/2) and the client sees no response at all.
pub fn dropped_connection() -> Response {
    Response::new(Body::from_stream(CutBody {
        data: None,
        flushed: true,
    }))
}

/// `real` with its full `Content-Length` but only the first half of its
/// body, after which the connection closes. A bodiless answer becomes
/// [`dropped_connection`].
pub async fn truncated(real: Response) -> Response {
    let (mut parts, body) = real.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) if !bytes.is_empty() => bytes,
        _ => return dropped_connection(),
    };
    let full = bytes.len();
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(full));
    let half = bytes.slice(..full / 2);
    Response::from_parts(
        parts,
        Body::from_stream(CutBody {
            data: Some(half),
            flushed: false,
        }),
    )
}

/// A body that yields `data` (if any), lets the server flush it, then fails.
///
/// hyper writes what it has buffered only when the body stops being ready,
/// and drops its buffer when the body fails; so after the data the stream
/// returns `Pending` once (waking itself at once) before failing.
struct CutBody {
    data: Option<Bytes>,
    flushed: bool,
}

impl tokio_stream::Stream for CutBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(data)));
        }
        if !self.flushed {
            self.flushed = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection dropped by a scripted emulator fault",
        ))))
    }
}
