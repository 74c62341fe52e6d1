//! Scripted faults: answers the next requests get instead of (or, for the
//! kinds that apply the request, on top of) normal processing.
//!
//! They let a gateway's tests exercise throttling, gateway HTML pages, empty
//! bodies, Graph's 204-after-PATCH habit, cut and dropped connections and
//! slow answers deterministically. The same faults script the token
//! endpoint, where a `GraphError` body becomes Entra's error body.
//!
//! JSON form (for `POST /_emulator/faults`, a JSON array of these):
//!
//! ```json
//! {"status":429,"retry_after":"2"}
//! {"status":502,"body":{"Raw":"<html>Bad gateway</html>"}}
//! {"status":503,"body":"Empty"}
//! {"status":204,"body":"NoContentAfterApply"}
//! {"status":403,"code":"accessDenied","message":"no","body":"GraphError"}
//! {"status":200,"body":"Truncated"}
//! {"body":"DropConnection"}
//! {"body":"DropAfterApply","delay_ms":50}
//! {"status":200,"body":"NotJson"}
//! {"body":"Unchanged","delay_ms":2000}
//! {"status":200,"body":{"Huge":{"bytes":67108864}}}
//! {"status":200,"body":{"Huge":{"bytes":67108864,"chunked":true}}}
//! {"status":200,"body":{"GzipBomb":{"inflated_bytes":1073741824}}}
//! {"status":500,"body":"ErrorAfterApply"}
//! {"target":"batch","status":503,"retry_after":"2"}
//! {"target":"batch","body":"DropAfterApply"}
//! {"target":"batch","body":"OmitResponse"}
//! {"target":"batch","body":"UnknownResponseId"}
//! ```
//!
//! `delay_ms` holds that one answer back (the request itself is applied, or
//! not, without waiting).
//!
//! `target` says which requests a fault waits for: `"request"` (the default)
//! is the next Graph request, whether sent alone or as an item of a
//! `$batch`; `"batch"` is the next `POST /beta/$batch` envelope itself, so a
//! test can fail the envelope before any item ran (a replacing kind), or
//! after its items were applied (`ErrorAfterApply`, `DropAfterApply`,
//! `Truncated`), or hand back an answer that leaves an item out
//! (`OmitResponse`) or names an item no request had (`UnknownResponseId`).
//! The two kinds of target wait in separate queues, so an envelope never
//! consumes a fault meant for a request, nor the other way round.

use std::time::Duration;

use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::bulk;
use super::error::{default_code, default_message};
use super::reply::{self, RequestIds, ERROR_JSON};

/// One scripted answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Fault {
    /// HTTP status to answer (200..=599). Ignored by the kinds that apply
    /// the request and by `DropConnection`, so optional in JSON for them.
    #[serde(default)]
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

/// What a fault sends as its body, and whether the request is applied.
///
/// Kinds that apply the request ([`FaultBody::applies`]) pass through the
/// emulator's normal checks (authentication, tenant budget) and processing
/// and only change how the real answer reaches the client; their `status`
/// is ignored. The others replace the answer and leave the request unapplied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum FaultBody {
    /// Graph's JSON error body with fresh request ids (Entra's error body on
    /// the token endpoint).
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
    /// The request is processed and answered normally; with
    /// [`ScriptedFault::delay_ms`] this slows one answer down.
    Unchanged,
    /// The request is processed; the real answer's status and headers are
    /// sent with its full `Content-Length`, then half the body, then the
    /// connection closes. An answer without a body (204) cannot be cut, so
    /// the connection is dropped instead, as with `DropAfterApply`.
    Truncated,
    /// The request is not applied and the connection closes without any
    /// HTTP response.
    DropConnection,
    /// The request is applied, then the connection closes without any HTTP
    /// response: the client cannot tell whether its change took effect.
    DropAfterApply,
    /// The request is applied, then the real answer is replaced by the
    /// fault's status with Graph's error body (a 5xx after the change took
    /// effect: the client cannot tell it did).
    ErrorAfterApply,
    /// On a `$batch` envelope only (`target: "batch"`): the items run and
    /// the answer is 200, but without the response of the first request
    /// listed.
    OmitResponse,
    /// On a `$batch` envelope only (`target: "batch"`): the items run and
    /// the answer is 200, but the response of the first request listed
    /// carries an id no request in the batch had.
    UnknownResponseId,
    /// An HTML page (a proxy's sign-in page) instead of JSON, with the
    /// fault's status (200 from [`Fault::not_json`]). Not applied.
    NotJson,
    /// `bytes` bytes of spaces as JSON, with the fault's status, made as
    /// they are sent; with `chunked`, no `Content-Length`. Not applied.
    Huge {
        bytes: u64,
        #[serde(default)]
        chunked: bool,
    },
    /// A `Content-Encoding: gzip` body of about a thousandth of
    /// `inflated_bytes` that inflates to that many zero bytes, with the
    /// fault's status. Not applied.
    GzipBomb { inflated_bytes: u64 },
}

impl FaultBody {
    /// Whether the request is processed under this fault.
    pub fn applies(&self) -> bool {
        matches!(
            self,
            FaultBody::NoContentAfterApply
                | FaultBody::Unchanged
                | FaultBody::Truncated
                | FaultBody::DropAfterApply
                | FaultBody::ErrorAfterApply
                | FaultBody::OmitResponse
                | FaultBody::UnknownResponseId
        )
    }

    /// Whether only a `$batch` envelope can carry this kind.
    pub fn batch_only(&self) -> bool {
        matches!(self, FaultBody::OmitResponse | FaultBody::UnknownResponseId)
    }

    /// Whether the fault's `status` is used.
    fn uses_status(&self) -> bool {
        *self == FaultBody::ErrorAfterApply
            || (!self.applies() && *self != FaultBody::DropConnection)
    }

    /// How the real answer to an applied request reaches the client.
    pub(super) async fn finish(&self, real: Response) -> Response {
        match self {
            FaultBody::NoContentAfterApply if real.status().is_success() => {
                reply::empty(StatusCode::NO_CONTENT)
            }
            FaultBody::Truncated => reply::truncated(real).await,
            FaultBody::DropAfterApply => reply::dropped_connection(),
            _ => real,
        }
    }
}

/// The HTML a captive portal or sign-in proxy answers in place of JSON.
pub const NOT_JSON_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n<body><h1>Sign in</h1><p>Your session with the network proxy has expired. Sign in to continue.</p></body></html>\n";

/// A fault with an optional delay: what the fault queues hold.
///
/// `Fault` itself stays a plain struct literal for existing callers; a
/// `Fault` converts into a `ScriptedFault` without delay wherever one is
/// expected. In JSON the delay sits beside the fault's own fields.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ScriptedFault {
    #[serde(flatten)]
    pub fault: Fault,
    /// Milliseconds to hold the answer back (after any processing).
    #[serde(default, alias = "delayMs", skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Which request consumes it (see the module doc).
    #[serde(default, skip_serializing_if = "FaultTarget::is_request")]
    pub target: FaultTarget,
}

/// Which Graph request a scripted fault waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// The next Graph request, sent alone or as an item of a `$batch`.
    #[default]
    Request,
    /// The next `POST /beta/$batch` envelope itself.
    Batch,
}

impl FaultTarget {
    fn is_request(&self) -> bool {
        *self == FaultTarget::Request
    }
}

impl From<Fault> for ScriptedFault {
    fn from(fault: Fault) -> Self {
        ScriptedFault {
            fault,
            delay_ms: None,
            target: FaultTarget::Request,
        }
    }
}

impl ScriptedFault {
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.unwrap_or(0))
    }

    /// This fault for the next `$batch` envelope rather than the next
    /// request.
    pub fn on_batch(mut self) -> Self {
        self.target = FaultTarget::Batch;
        self
    }

    /// Why this fault cannot be queued as scripted, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.fault.body.batch_only() && self.target != FaultTarget::Batch {
            return Some(format!(
                "fault body {:?} only applies to a $batch envelope (\"target\": \"batch\")",
                self.fault.body
            ));
        }
        self.fault.problem()
    }
}

/// Renders an error body for a replacing fault: Graph's on Graph routes,
/// Entra's on the token endpoint.
pub(super) trait ErrorDialect {
    /// Content type and body for `status`, with the fault's code and
    /// message when it names them.
    fn error_body(
        &self,
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
    ) -> (&'static str, Vec<u8>);
}

impl ErrorDialect for RequestIds {
    fn error_body(
        &self,
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
    ) -> (&'static str, Vec<u8>) {
        let code = code.unwrap_or(default_code(status));
        let message = message.map_or_else(|| default_message(status), str::to_owned);
        (ERROR_JSON, self.error_bytes(code, &message))
    }
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

    /// Apply the request and answer as usual (pair with a delay).
    pub fn unchanged() -> Self {
        Fault {
            body: FaultBody::Unchanged,
            ..Fault::new(200)
        }
    }

    /// Apply the request, then send only half of the real answer's body.
    pub fn truncated() -> Self {
        Fault {
            body: FaultBody::Truncated,
            ..Fault::new(200)
        }
    }

    /// Apply the request, then answer `status` with Graph's error body.
    pub fn error_after_apply(status: u16) -> Self {
        Fault {
            body: FaultBody::ErrorAfterApply,
            ..Fault::new(status)
        }
    }

    /// On a `$batch` envelope: run the items, then leave the first
    /// request's response out of the answer.
    pub fn omit_response() -> Self {
        Fault {
            body: FaultBody::OmitResponse,
            ..Fault::new(200)
        }
    }

    /// On a `$batch` envelope: run the items, then give the first
    /// request's response an id no request had.
    pub fn unknown_response_id() -> Self {
        Fault {
            body: FaultBody::UnknownResponseId,
            ..Fault::new(200)
        }
    }

    /// Close the connection without answering; the request is not applied.
    pub fn drop_connection() -> Self {
        Fault {
            body: FaultBody::DropConnection,
            ..Fault::new(0)
        }
    }

    /// Apply the request, then close the connection without answering.
    pub fn drop_after_apply() -> Self {
        Fault {
            body: FaultBody::DropAfterApply,
            ..Fault::new(0)
        }
    }

    /// `200 OK` with an HTML page instead of JSON; not applied.
    pub fn not_json() -> Self {
        Fault {
            body: FaultBody::NotJson,
            ..Fault::new(200)
        }
    }

    /// `200 OK` with `bytes` bytes of body, declared in `Content-Length`.
    pub fn huge(bytes: u64) -> Self {
        Fault {
            body: FaultBody::Huge {
                bytes,
                chunked: false,
            },
            ..Fault::new(200)
        }
    }

    /// `200 OK` with `bytes` bytes of body and no `Content-Length`.
    pub fn huge_chunked(bytes: u64) -> Self {
        Fault {
            body: FaultBody::Huge {
                bytes,
                chunked: true,
            },
            ..Fault::new(200)
        }
    }

    /// `200 OK` with a gzip body that inflates to `inflated_bytes`.
    pub fn gzip_bomb(inflated_bytes: u64) -> Self {
        Fault {
            body: FaultBody::GzipBomb { inflated_bytes },
            ..Fault::new(200)
        }
    }

    /// This fault with its answer held back by `delay`.
    pub fn delayed(self, delay: Duration) -> ScriptedFault {
        ScriptedFault {
            fault: self,
            delay_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            target: FaultTarget::Request,
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
        if self.body.uses_status() && !(200..=599).contains(&self.status) {
            return Some(format!("fault status {} is outside 200..=599", self.status));
        }
        match &self.retry_after {
            Some(value) if HeaderValue::from_str(value).is_err() => {
                Some(format!("retry_after {value:?} is not a valid header value"))
            }
            _ => None,
        }
    }

    /// How the real answer to a request this fault applies reaches the
    /// client; `ErrorAfterApply` answers its status with an error body in
    /// `dialect`.
    pub(super) async fn finish_in(&self, real: Response, dialect: &impl ErrorDialect) -> Response {
        match self.body {
            FaultBody::ErrorAfterApply => self.respond_in(dialect),
            _ => self.body.finish(real).await,
        }
    }

    /// The answer for a Graph request this fault replaces. A fault that
    /// could not be sent as scripted (see [`Fault::problem`]) answers 500
    /// saying why.
    pub fn respond(&self, ids: &RequestIds) -> Response {
        self.respond_in(ids)
    }

    /// [`Fault::respond`] with error bodies in `dialect`.
    pub(super) fn respond_in(&self, dialect: &impl ErrorDialect) -> Response {
        if let Some(problem) = self.problem() {
            let message = format!("Invalid scripted fault: {problem}");
            let (content_type, body) = dialect.error_body(500, None, Some(&message));
            return reply::with_body(StatusCode::INTERNAL_SERVER_ERROR, content_type, body);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let bodiless = matches!(self.status, 204 | 205 | 304);
        let mut response = match &self.body {
            FaultBody::DropConnection | FaultBody::DropAfterApply => {
                return reply::dropped_connection()
            }
            _ if bodiless => reply::empty(status),
            FaultBody::Raw(text) => {
                let content_type = if text.trim_start().starts_with('<') {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                reply::with_body(status, content_type, text.clone().into_bytes())
            }
            FaultBody::NotJson => reply::with_body(
                status,
                "text/html; charset=utf-8",
                NOT_JSON_PAGE.as_bytes().to_vec(),
            ),
            FaultBody::GraphError => {
                let (content_type, body) =
                    dialect.error_body(self.status, self.code.as_deref(), self.message.as_deref());
                reply::with_body(status, content_type, body)
            }
            FaultBody::Huge { bytes, chunked } => bulk::huge(status, *bytes, *chunked),
            FaultBody::GzipBomb { inflated_bytes } => bulk::gzip_bomb(status, *inflated_bytes),
            FaultBody::ErrorAfterApply => {
                let (content_type, body) =
                    dialect.error_body(self.status, self.code.as_deref(), self.message.as_deref());
                reply::with_body(status, content_type, body)
            }
            FaultBody::Empty
            | FaultBody::NoContentAfterApply
            | FaultBody::Unchanged
            | FaultBody::Truncated
            | FaultBody::OmitResponse
            | FaultBody::UnknownResponseId => reply::empty(status),
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
    fn scripted_json_forms_carry_a_delay_beside_the_fault() {
        let faults: Vec<ScriptedFault> = serde_json::from_str(
            r#"[{"body":"DropAfterApply","delay_ms":50},
                {"status":200,"body":"Truncated"},
                {"status":429,"retryAfter":"1","delayMs":5},
                {"body":"DropConnection"},
                {"status":200,"body":"NotJson"},
                {"status":200,"body":"Unchanged","delay_ms":1}]"#,
        )
        .expect("valid faults");
        assert_eq!(
            faults,
            vec![
                Fault::drop_after_apply().delayed(Duration::from_millis(50)),
                Fault::truncated().into(),
                Fault::throttled("1").delayed(Duration::from_millis(5)),
                Fault::drop_connection().into(),
                Fault::not_json().into(),
                Fault::unchanged().delayed(Duration::from_millis(1)),
            ]
        );
        let text = serde_json::to_value(&faults[0]).expect("serialises");
        assert_eq!(text["delay_ms"], 50);
        assert_eq!(text["body"], "DropAfterApply");
        assert!(serde_json::to_value(&faults[1])
            .expect("serialises")
            .get("delay_ms")
            .is_none());
    }

    #[test]
    fn faults_for_the_batch_envelope_say_so_and_batch_only_kinds_need_it() {
        let faults: Vec<ScriptedFault> = serde_json::from_str(
            r#"[{"target":"batch","status":503},
                {"status":502,"body":"ErrorAfterApply"},
                {"target":"batch","status":200,"body":"OmitResponse"}]"#,
        )
        .expect("valid faults");
        assert_eq!(
            faults,
            vec![
                ScriptedFault::from(Fault::new(503)).on_batch(),
                Fault::error_after_apply(502).into(),
                ScriptedFault::from(Fault::omit_response()).on_batch(),
            ]
        );
        assert!(faults.iter().all(|f| f.problem().is_none()));
        assert!(faults[1].fault.body.applies() && faults[1].fault.body.uses_status());
        assert!(ScriptedFault::from(Fault::unknown_response_id())
            .problem()
            .is_some_and(|p| p.contains("target")));
        assert!(Fault::error_after_apply(42).problem().is_some());
        let text = serde_json::to_value(&faults[0]).expect("serialises");
        assert_eq!(text["target"], "batch");
        assert!(serde_json::to_value(&faults[1])
            .expect("serialises")
            .get("target")
            .is_none());
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
        for kind in [
            Fault::drop_connection(),
            Fault::drop_after_apply(),
            Fault::unchanged(),
            Fault::truncated(),
        ] {
            let odd = Fault { status: 0, ..kind };
            assert!(odd.problem().is_none(), "{odd:?}");
        }
        assert!(Fault {
            status: 0,
            ..Fault::not_json()
        }
        .problem()
        .is_some());
    }
}
