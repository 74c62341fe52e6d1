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
    /// Intune's budget has no token for this call before its deadline; not
    /// sent.
    BudgetExhausted(crate::budget::Exhausted),
    /// No access token could be obtained.
    Token(TokenError),
    /// Graph answered success with a body past the gateway's limit; it was
    /// not read whole. A write answered this way was taken by Graph.
    AnswerTooLarge(AnswerTooLarge),
}

/// A success answer whose body passed the limit, and what is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTooLarge {
    /// Graph's status: a success, so a write answered this way was applied.
    pub status: u16,
    /// The limit the body passed, in bytes (after decompression).
    pub limit: u64,
    /// Graph's `request-id` header.
    pub request_id: Option<String>,
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
            Self::BudgetExhausted(e) => write!(
                f,
                "Intune's Graph budget for {} has no room before this call's deadline; not sent, it could run in {:.1} s",
                e.lane.budget(),
                e.retry_after.as_secs_f64()
            ),
            Self::Token(why) => write!(f, "no access token for Graph: {why}"),
            Self::AnswerTooLarge(a) => write!(
                f,
                "Graph answered {} with a body larger than the gateway's limit of {} bytes (GRAPH_MAX_ANSWER_BYTES); it was not read",
                a.status, a.limit
            ),
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
    /// of Graph may answer HTML or nothing (or JSON cut short at the error
    /// body limit), and that still maps cleanly, by status. `Retry-After` is
    /// held to `max_retry_after`, `error.message` to [`MAX_MESSAGE_BYTES`].
    pub fn from_response(
        status: u16,
        request_id: Option<String>,
        retry_after: Option<&str>,
        body: &[u8],
        now: SystemTime,
        max_retry_after: Duration,
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
            message: message
                .filter(|m| !m.is_empty())
                .map(|m| clip(&m, MAX_MESSAGE_BYTES).to_owned()),
            request_id: request_id.or(inner_request_id),
            client_request_id,
            date,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now, max_retry_after)),
        }
    }
}

/// The most of Graph's `error.message` the gateway passes on: a message is
/// for a person, and a hostile or broken answer must not fill a status.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `Retry-After` as a delay from `now`, at most `max`.
///
/// Read: delay-seconds, whole or with a fraction (`120`, `2.128`, which
/// Graph's own samples send), and HTTP dates. A number of seconds too large
/// for any clock (`18446744073709551615`) or a date far ahead (year 9999)
/// is held to `max`; a date in the past is no delay. Anything else is
/// ignored, as if the header were absent: a sign (`-5`, `+5`), an exponent
/// (`1e9`), `NaN`, `inf`, spaces inside, other text.
pub fn parse_retry_after(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let value = value.trim();
    let delay = match delay_seconds(value) {
        Some(delay) => delay,
        None => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(delay.min(max))
}

/// `1*DIGIT [ "." 1*DIGIT ]` as a duration, saturating; `None` for any
/// other form.
fn delay_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = match value.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    // Only digits are left: a parse can fail only by overflow.
    let Ok(secs) = whole.parse::<u64>() else {
        return Some(Duration::MAX);
    };
    let nanos = fraction.map_or(0, |f| {
        f.bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'))
    });
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Duration = Duration::from_secs(180);

    #[test]
    fn reads_graph_error_body() {
        let body = br#"{"error":{"code":"itemNotFound","message":"Not found","innerError":{"request-id":"r1","client-request-id":"c1","date":"2021-09-14T19:05:24"}}}"#;
        let f = GraphFailure::from_response(404, None, None, body, SystemTime::now(), CAP);
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
            CAP,
        );
        assert_eq!(
            (f.code, f.message, f.request_id.as_deref()),
            (None, None, Some("h"))
        );
        let f = GraphFailure::from_response(503, None, None, b"", SystemTime::now(), CAP);
        assert_eq!(f.to_string(), "Graph answered 503");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        let read = |v| parse_retry_after(v, now, CAP);
        assert_eq!(read("7"), Some(Duration::from_secs(7)));
        assert_eq!(read(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            read("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(read("soon"), None);
        assert_eq!(read("-1"), None);
    }

    #[test]
    fn fractional_seconds_are_read() {
        let read = |v| parse_retry_after(v, SystemTime::now(), CAP);
        assert_eq!(read("2.128"), Some(Duration::from_millis(2128)));
        assert_eq!(read("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(read("1.0000000019"), Some(Duration::new(1, 1)));
        assert_eq!(read("0"), Some(Duration::ZERO));
    }

    #[test]
    fn every_delay_is_held_to_the_cap() {
        let now = SystemTime::now();
        let read = |v| parse_retry_after(v, now, CAP);
        assert_eq!(read("18446744073709551615"), Some(CAP));
        assert_eq!(read("99999999999999999999999999"), Some(CAP));
        assert_eq!(read("18446744073709551615.999999999"), Some(CAP));
        assert_eq!(read("181"), Some(CAP));
        assert_eq!(read("180"), Some(CAP));
        assert_eq!(read("179.5"), Some(Duration::from_millis(179_500)));
        assert_eq!(read("Fri, 31 Dec 9999 23:59:59 GMT"), Some(CAP));
        let small = Duration::from_secs(2);
        assert_eq!(parse_retry_after("3", now, small), Some(small));
    }

    #[test]
    fn other_forms_are_ignored() {
        let read = |v| parse_retry_after(v, SystemTime::now(), CAP);
        for value in [
            "-5", "+5", "1e9", "1E9", "NaN", "nan", "inf", "-inf", "infinity", "", " ", ".5", "5.",
            "1.2.3", "1 2", "0x10", "1_000", "٣", "garbage", "5s",
        ] {
            assert_eq!(read(value), None, "{value:?}");
        }
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(clip("short", 1024), "short");
        let long = "é".repeat(1000);
        let cut = clip(&long, MAX_MESSAGE_BYTES);
        assert_eq!(cut.len(), 1024);
        assert_eq!(clip("aé", 2), "a");
        let body = format!(
            r#"{{"error":{{"code":"x","message":"{}"}}}}"#,
            "ü".repeat(5000)
        );
        let f =
            GraphFailure::from_response(400, None, None, body.as_bytes(), SystemTime::now(), CAP);
        let message = f.message.expect("message");
        assert!(
            message.len() <= MAX_MESSAGE_BYTES && message.starts_with('ü'),
            "{}",
            message.len()
        );
    }
}
