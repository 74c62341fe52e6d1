//! Scripted faults: answers the next Graph-route requests get instead of (or,
//! for [`FaultBody::NoContentAfterApply`], on top of) normal processing.
//!
//! They let a gateway's tests exercise throttling, gateway HTML pages, empty
//! bodies and Graph's 204-after-PATCH habit deterministically.
//!
//! JSON form (for `POST /_emulator/faults`, a JSON array of these):
//!
//! ```json
//! {"status":429,"retry_after":"2"}
//! {"status":502,"body":{"Raw":"<html>Bad gateway</html>"}}
//! {"status":503,"body":"Empty"}
//! {"status":204,"body":"NoContentAfterApply"}
//! {"status":403,"code":"accessDenied","message":"no","body":"GraphError"}
//! ```

use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::{default_code, default_message};
use super::reply::{self, RequestIds, ERROR_JSON};

/// One scripted answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Fault {
    /// HTTP status to answer (200..=599). Ignored by `NoContentAfterApply`.
    pub status: u16,
    /// `error.code` of a `GraphError` body; defaults by status (429 -> `TooManyRequests`).
    #[serde(default)]
    pub code: Option<String>,
    /// `error.message` of a `GraphError` body.
    #[serde(default)]
    pub message: Option<String>,
    /// `Retry-After` header value: seconds or an HTTP date, sent as given.
    #[serde(default, alias = "retryAfter")]
    pub retry_after: Option<String>,
    #[serde(default)]
    pub body: FaultBody,
}

/// What a fault sends as its body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum FaultBody {
    /// Graph's JSON error body with fresh request ids.
    #[default]
    GraphError,
    /// This text as is: an HTML page from a proxy, truncated JSON...
    /// Sent as `text/html` when it starts with `<`, else `text/plain`.
    Raw(String),
    /// No body at all.
    Empty,
    /// The request is processed normally (a PATCH is applied) but a
    /// successful answer becomes `204 No Content` without a body, as Graph
    /// sometimes does. Error answers pass through unchanged.
    NoContentAfterApply,
}

impl Fault {
    /// A Graph error answer with the default code and message for `status`.
    pub fn new(status: u16) -> Self {
        Fault {
            status,
            code: None,
            message: None,
            retry_after: None,
            body: FaultBody::GraphError,
        }
    }

    /// `429 TooManyRequests` with `Retry-After: retry_after`.
    pub fn throttled(retry_after: impl Into<String>) -> Self {
        Fault::new(429).with_retry_after(retry_after)
    }

    /// A non-Graph body, e.g. an HTML page from a gateway in front of Graph.
    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Fault {
            body: FaultBody::Raw(body.into()),
            ..Fault::new(status)
        }
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Self {
        Fault {
            body: FaultBody::Empty,
            ..Fault::new(status)
        }
    }

    /// Apply the request, then answer 204 with no body.
    pub fn no_content_after_apply() -> Self {
        Fault {
            body: FaultBody::NoContentAfterApply,
            ..Fault::new(204)
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn with_retry_after(mut self, retry_after: impl Into<String>) -> Self {
        self.retry_after = Some(retry_after.into());
        self
    }

    /// Why this fault cannot be sent as scripted, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.body != FaultBody::NoContentAfterApply && !(200..=599).contains(&self.status) {
            return Some(format!("fault status {} is outside 200..=599", self.status));
        }
        match &self.retry_after {
            Some(value) if HeaderValue::from_str(value).is_err() => {
                Some(format!("retry_after {value:?} is not a valid header value"))
            }
            _ => None,
        }
    }

    /// The answer for a request this fault replaces. A fault that could not
    /// be sent as scripted (see [`Fault::problem`]) answers 500 saying why.
    pub fn respond(&self, ids: &RequestIds) -> Response {
        if let Some(problem) = self.problem() {
            let body = ids.error_bytes(
                "UnknownError",
                &format!("Invalid scripted fault: {problem}"),
            );
            return reply::with_body(StatusCode::INTERNAL_SERVER_ERROR, ERROR_JSON, body);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let bodiless = matches!(self.status, 204 | 205 | 304);
        let mut response = match &self.body {
            _ if bodiless => reply::empty(status),
            FaultBody::Empty | FaultBody::NoContentAfterApply => reply::empty(status),
            FaultBody::Raw(text) => {
                let content_type = if text.trim_start().starts_with('<') {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                reply::with_body(status, content_type, text.clone().into_bytes())
            }
            FaultBody::GraphError => {
                let code = self.code.as_deref().unwrap_or(default_code(self.status));
                let message = self
                    .message
                    .clone()
                    .unwrap_or_else(|| default_message(self.status));
                reply::with_body(status, ERROR_JSON, ids.error_bytes(code, &message))
            }
        };
        if let Some(value) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        let faults: Vec<Fault> = serde_json::from_str(
            r#"[{"status":429,"retryAfter":"2"},
                {"status":502,"body":{"Raw":"<html/>"}},
                {"status":503,"body":"Empty"},
                {"status":204,"body":"NoContentAfterApply"}]"#,
        )
        .expect("valid faults");
        assert_eq!(
            faults,
            vec![
                Fault::throttled("2"),
                Fault::raw(502, "<html/>"),
                Fault::empty(503),
                Fault::no_content_after_apply(),
            ]
        );
    }

    #[test]
    fn problems() {
        assert!(Fault::new(99).problem().is_some());
        assert!(Fault::new(600).problem().is_some());
        assert!(Fault::throttled("a\nb").problem().is_some());
        assert!(Fault::new(500).problem().is_none());
        let odd = Fault {
            status: 0,
            ..Fault::no_content_after_apply()
        };
        assert!(odd.problem().is_none());
    }
}
