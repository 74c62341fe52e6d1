//! What can go wrong talking to Graph, as read from Graph's answer.

use super::auth::TokenError;
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, SystemTime};

/// A Graph call that did not succeed.
#[derive(Debug, Clone)]
pub enum GraphError {
    /// Graph (or a gateway in front of it) answered with a non-success status.
    Status(Box<GraphFailure>),
    /// No answer before our timeout or the caller's deadline; the request
    /// may have reached Graph.
    Timeout,
    /// Not sent: the connection could not be made, or the request was given
    /// back unstarted or refused unprocessed. Safe to send again.
    Connect(String),
    /// No answer: the connection broke after the request may have been
    /// written, so Graph may have taken it.
    Lost(String),
    /// Graph answered success, but the body broke off: the request was
    /// taken, its answer lost.
    Body(String),
    /// Too many Graph calls in flight and waiting; this one was not sent.
    Overloaded(Overload),
    /// Graph asked the tenant to pause longer than this call can wait; not sent.
    Throttled(Duration),
    /// No access token could be obtained.
    Token(TokenError),
}

/// Why the gateway's own capacity turned a call away before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// Every slot was busy and the wait queue was full.
    QueueFull,
    /// The call waited for a slot, and its deadline came first.
    DeadlineWhileQueued,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(failure) => failure.fmt(f),
            Self::Timeout => f.write_str("Graph did not answer in time"),
            Self::Connect(why) => write!(f, "Graph could not be reached: {why}"),
            Self::Lost(why) => write!(f, "the connection to Graph broke before an answer: {why}"),
            Self::Body(why) => write!(f, "Graph's answer could not be read: {why}"),
            Self::Overloaded(Overload::QueueFull) => {
                f.write_str("too many Graph calls in flight and waiting; try again shortly")
            }
            Self::Overloaded(Overload::DeadlineWhileQueued) => f.write_str(
                "the deadline passed while waiting for a Graph call slot; not sent, try again shortly",
            ),
            Self::Throttled(d) => write!(
                f,
                "Graph is throttling this tenant for {:.1} s more, past this call's deadline",
                d.as_secs_f64()
            ),
            Self::Token(why) => write!(f, "no access token for Graph: {why}"),
        }
    }
}

impl std::error::Error for GraphError {}

/// A non-success answer from Graph, with what its error body and headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphFailure {
    pub status: u16,
    /// `error.code`, when the body was Graph's JSON error.
    pub code: Option<String>,
    /// `error.message`, when the body was Graph's JSON error.
    pub message: Option<String>,
    /// The `request-id` header, else `error.innerError.request-id`.
    pub request_id: Option<String>,
    /// `error.innerError.client-request-id`.
    pub client_request_id: Option<String>,
    /// `error.innerError.date`.
    pub date: Option<String>,
    /// `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for GraphFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph answered {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    inner_error: Option<InnerError>,
}

#[derive(Deserialize)]
struct InnerError {
    #[serde(rename = "request-id", default)]
    request_id: Option<String>,
    #[serde(rename = "client-request-id", default)]
    client_request_id: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

impl GraphFailure {
    /// Reads a failed answer. The body need not be JSON: a gateway in front
    /// of Graph may answer HTML or nothing, and that still maps cleanly.
    pub fn from_response(
        status: u16,
        request_id: Option<String>,
        retry_after: Option<&str>,
        body: &[u8],
        now: SystemTime,
    ) -> Self {
        let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|e| e.error);
        let (code, message, inner) = match parsed {
            Some(b) => (b.code, b.message, b.inner_error),
            None => (None, None, None),
        };
        let (inner_request_id, client_request_id, date) = match inner {
            Some(i) => (i.request_id, i.client_request_id, i.date),
            None => (None, None, None),
        };
        Self {
            status,
            code: code.filter(|c| !c.is_empty()),
            message: message.filter(|m| !m.is_empty()),
            request_id: request_id.or(inner_request_id),
            client_request_id,
            date,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, as a delay from `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_graph_error_body() {
        let body = br#"{"error":{"code":"itemNotFound","message":"Not found","innerError":{"request-id":"r1","client-request-id":"c1","date":"2021-09-14T19:05:24"}}}"#;
        let f = GraphFailure::from_response(404, None, None, body, SystemTime::now());
        assert_eq!(f.code.as_deref(), Some("itemNotFound"));
        assert_eq!(f.message.as_deref(), Some("Not found"));
        assert_eq!(f.request_id.as_deref(), Some("r1"));
        assert_eq!(f.client_request_id.as_deref(), Some("c1"));
        assert_eq!(f.date.as_deref(), Some("2021-09-14T19:05:24"));
    }

    #[test]
    fn header_request_id_wins_and_html_maps_cleanly() {
        let f = GraphFailure::from_response(
            502,
            Some("h".into()),
            None,
            b"<html>bad gateway</html>",
            SystemTime::now(),
        );
        assert_eq!(
            (f.code, f.message, f.request_id.as_deref()),
            (None, None, Some("h"))
        );
        let f = GraphFailure::from_response(503, None, None, b"", SystemTime::now());
        assert_eq!(f.to_string(), "Graph answered 503");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
