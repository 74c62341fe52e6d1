//! Every failure a call can meet, and the one table that turns it into a
//! gRPC status with rich details.

use crate::graph::auth::{TokenError, TokenErrorKind};
use crate::graph::{clip, GraphError, GraphFailure, MAX_MESSAGE_BYTES};
use crate::security::access::Denial;
use crate::translate::{InvalidRequest, ResponseError, Unexpected};
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `ErrorInfo.domain` for errors Graph reported.
pub const GRAPH_DOMAIN: &str = "graph.microsoft.com";
/// `ErrorInfo.domain` for errors the gateway itself found.
pub const GATEWAY_DOMAIN: &str = "graph-grpc-gateway";

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The request is invalid; nothing was sent to Graph.
    Invalid(InvalidRequest),
    /// Graph failed or could not be reached.
    Graph(GraphError),
    /// Graph answered, but not with a securityConfigurationTask the gateway
    /// can read. `applied`: the answer was a success to a write, so Graph
    /// took it.
    Answer {
        error: ResponseError,
        request_id: Option<String>,
        applied: bool,
    },
    /// Graph answered success to an update, then the task could not be read
    /// back (`read`): the change was applied, the caller must read it.
    AppliedReadBackFailed {
        task_id: String,
        /// Graph's `request-id` for the write.
        request_id: Option<String>,
        read: Box<CallError>,
    },
    /// An update got no answer that says whether Graph took it (`write`),
    /// and what was tried next could not tell either.
    OutcomeUnknown {
        task_id: String,
        write: Box<CallError>,
        after: Unconfirmed,
    },
    /// A create or a delete whose outcome the gateway cannot report.
    WriteLost(WriteLost),
    /// One item of a batch call failed: `field[index]`, naming the task
    /// `id`. Its status is the item's own, as a call for it alone would have
    /// been answered, with the item named in the message.
    Item {
        field: &'static str,
        index: usize,
        id: String,
        error: Box<CallError>,
    },
}

/// Why a write other than an update ended without the gateway knowing
/// whether Graph took it, or with Graph's answer unusable.
#[derive(Debug)]
pub enum WriteLost {
    /// A create's POST may have reached Graph and no answer says what
    /// happened (`write`: a timeout, a lost connection, a 5xx other than
    /// 503). It is not sent again: Graph takes no client key, so a second
    /// POST could make a second task. The caller must list the tasks.
    CreateUnknown { write: Box<CallError> },
    /// Graph answered success to a create, so the task exists, but the
    /// answer (`answer`) cannot be read: its id is unknown to the gateway.
    CreatedAnswerLost {
        request_id: Option<String>,
        answer: Box<CallError>,
    },
    /// A delete got no answer (`write`), and what followed could not tell
    /// whether it is gone: reading the task failed (`read`), or (`None`) the
    /// task was still there and the delete was not sent again, the retry
    /// budget being spent.
    DeleteUnknown {
        task_id: String,
        write: Box<CallError>,
        read: Option<Box<CallError>>,
    },
}

/// Why an update whose answer was lost stays unconfirmed.
#[derive(Debug)]
pub enum Unconfirmed {
    /// Reading the task back failed.
    ReadFailed(Box<CallError>),
    /// The task read back does not hold the change, and it was not sent
    /// again: the retry budget is spent.
    NotResent,
    /// The task read back did not hold the change; it was sent again, and
    /// that answer was lost too.
    ResentLost(Box<CallError>),
}

/// The RPC that reads a task, named in the details of an update whose
/// outcome the caller must read.
pub const READ_RPC: &str = "GetSecurityConfigurationTask";

/// The RPC that lists tasks, named in the details of a create whose outcome
/// the caller must find out.
pub const LIST_RPC: &str = "ListSecurityConfigurationTasks";

/// `ErrorInfo.reason` of a create or delete whose outcome is unknown.
pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";

impl From<InvalidRequest> for CallError {
    fn from(e: InvalidRequest) -> Self {
        Self::Invalid(e)
    }
}

impl From<GraphError> for CallError {
    fn from(e: GraphError) -> Self {
        Self::Graph(e)
    }
}

/// Graph's HTTP status -> gRPC code. The one place this is decided.
const GRAPH_STATUS_CODES: &[(u16, Code)] = &[
    (400, Code::InvalidArgument),
    (401, Code::Unauthenticated),
    (402, Code::FailedPrecondition),
    (403, Code::PermissionDenied),
    (404, Code::NotFound),
    (405, Code::Unimplemented),
    (406, Code::InvalidArgument),
    (409, Code::Aborted),
    (410, Code::NotFound),
    (411, Code::InvalidArgument),
    (412, Code::Aborted),
    (413, Code::ResourceExhausted),
    (415, Code::InvalidArgument),
    (416, Code::OutOfRange),
    (422, Code::InvalidArgument),
    (423, Code::FailedPrecondition),
    (429, Code::ResourceExhausted),
    (500, Code::Internal),
    (501, Code::Unimplemented),
    (502, Code::Unavailable),
    (503, Code::Unavailable),
    (504, Code::DeadlineExceeded),
    (507, Code::ResourceExhausted),
    (509, Code::ResourceExhausted),
];

/// The gRPC code for a Graph HTTP status; statuses outside the table map by
/// class (other 4xx: the request cannot succeed as is; other 5xx: Graph's side).
pub fn code_for_graph_status(status: u16) -> Code {
    match GRAPH_STATUS_CODES.iter().find(|(s, _)| *s == status) {
        Some((_, code)) => *code,
        None if (400..500).contains(&status) => Code::FailedPrecondition,
        None if (500..600).contains(&status) => Code::Unavailable,
        None => Code::Unknown,
    }
}

/// `itemNotFound` -> `ITEM_NOT_FOUND`, `Request_ResourceNotFound` -> `REQUEST_RESOURCE_NOT_FOUND`.
pub fn upper_snake(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 4);
    let mut prev_lower_or_digit = false;
    for c in code.chars() {
        if !c.is_ascii_alphanumeric() {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower_or_digit = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower_or_digit {
            out.push('_');
        }
        prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl CallError {
    /// The gRPC code, message and details; response metadata is added by the caller.
    pub fn to_status(&self) -> Status {
        match self {
            Self::Invalid(e) => {
                let violations: Vec<FieldViolation> = e
                    .violations
                    .iter()
                    .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    e.to_string(),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Self::Graph(e) => graph_error(e),
            Self::AppliedReadBackFailed {
                task_id,
                request_id,
                read,
            } => {
                let mut meta = read_how(task_id);
                meta.insert("applied".to_owned(), "true".to_owned());
                if let Some(id) = request_id {
                    meta.insert("request-id".to_owned(), id.clone());
                }
                let read_status = describe_failure(read, "read", &mut meta);
                gateway_error(
                    Code::Unavailable,
                    format!(
                        "the update was applied, but reading the task back failed ({read_status}); read it with {READ_RPC}"
                    ),
                    "UPDATE_APPLIED_READ_BACK_FAILED",
                    meta,
                )
            }
            Self::OutcomeUnknown {
                task_id,
                write,
                after,
            } => {
                let mut meta = read_how(task_id);
                meta.insert("applied".to_owned(), "unknown".to_owned());
                let write_status = describe_failure(write, "write", &mut meta);
                let (resent, after) = match after {
                    Unconfirmed::ReadFailed(read) => (
                        false,
                        format!(
                            "reading the task back failed ({})",
                            describe_failure(read, "read", &mut meta)
                        ),
                    ),
                    Unconfirmed::NotResent => (
                        false,
                        "the task read back does not hold the change, and it was not sent again (the retry budget is spent)".to_owned(),
                    ),
                    Unconfirmed::ResentLost(again) => (
                        true,
                        format!(
                            "the task read back did not hold the change; it was sent again, and that answer was lost too ({})",
                            describe_failure(again, "resent", &mut meta)
                        ),
                    ),
                };
                meta.insert("resent".to_owned(), resent.to_string());
                gateway_error(
                    Code::Unavailable,
                    format!(
                        "the update may or may not have been applied: Graph's answer was lost ({write_status}); {after}; read the task with {READ_RPC}"
                    ),
                    "UPDATE_OUTCOME_UNKNOWN",
                    meta,
                )
            }
            Self::WriteLost(lost) => write_lost(lost),
            Self::Item {
                field,
                index,
                id,
                error,
            } => {
                let item = error.to_status();
                Status::with_details_and_metadata(
                    item.code(),
                    format!("{field}[{index}] ({id}): {}", item.message()),
                    item.details().to_vec().into(),
                    item.metadata().clone(),
                )
            }
            Self::Answer {
                error,
                request_id,
                applied,
            } => {
                let mut meta = HashMap::new();
                if let Some(id) = request_id {
                    meta.insert("request-id".to_owned(), id.clone());
                }
                if *applied {
                    meta.insert("applied".to_owned(), "true".to_owned());
                    meta.insert("read-with".to_owned(), READ_RPC.to_owned());
                }
                match error {
                    ResponseError::NotSecurityTask { odata_type } => {
                        meta.insert("odata-type".to_owned(), odata_type.clone());
                        gateway_error(
                            Code::FailedPrecondition,
                            error.to_string(),
                            "NOT_A_SECURITY_CONFIGURATION_TASK",
                            meta,
                        )
                    }
                    ResponseError::Malformed(_) => gateway_error(
                        Code::Internal,
                        error.to_string(),
                        "GRAPH_ANSWER_UNREADABLE",
                        meta,
                    ),
                    ResponseError::NotTheTask(what) => {
                        meta.insert("problem".to_owned(), what.name().to_owned());
                        if let Unexpected::OtherId { asked, got } = what {
                            meta.insert("asked-id".to_owned(), asked.clone());
                            meta.insert("answered-id".to_owned(), got.clone());
                        }
                        gateway_error(
                            Code::Internal,
                            error.to_string(),
                            "GRAPH_ANSWER_UNEXPECTED",
                            meta,
                        )
                    }
                }
            }
        }
    }

    /// Graph's `request-id` for this failure, when Graph answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Graph(GraphError::Status(f)) => f.request_id.as_deref(),
            Self::Graph(GraphError::AnswerTooLarge(a)) => a.request_id.as_deref(),
            Self::Answer { request_id, .. } => request_id.as_deref(),
            Self::AppliedReadBackFailed {
                request_id, read, ..
            } => request_id.as_deref().or_else(|| read.request_id()),
            Self::OutcomeUnknown { write, .. } => write.request_id(),
            Self::WriteLost(WriteLost::CreatedAnswerLost { request_id, answer }) => {
                request_id.as_deref().or_else(|| answer.request_id())
            }
            Self::WriteLost(
                WriteLost::CreateUnknown { write } | WriteLost::DeleteUnknown { write, .. },
            ) => write.request_id(),
            Self::Item { error, .. } => error.request_id(),
            _ => None,
        }
    }
}

/// A create or delete the gateway cannot report the outcome of. No
/// `RetryInfo`: a blind retry of a create may create a second task.
fn write_lost(lost: &WriteLost) -> Status {
    match lost {
        WriteLost::CreateUnknown { write } => {
            let mut meta = HashMap::from([
                ("applied".to_owned(), "unknown".to_owned()),
                ("list-with".to_owned(), LIST_RPC.to_owned()),
                (
                    "how".to_owned(),
                    "list the tasks to find out whether it was created before creating it again"
                        .to_owned(),
                ),
            ]);
            let write_status = describe_failure(write, "write", &mut meta);
            gateway_error(
                Code::Unavailable,
                format!(
                    "the task may or may not have been created: Graph's answer was lost ({write_status}); it was not sent again, since that could create a second task; list the tasks with {LIST_RPC} to find out"
                ),
                OUTCOME_UNKNOWN,
                meta,
            )
        }
        WriteLost::CreatedAnswerLost { request_id, answer } => {
            let mut meta = HashMap::from([
                ("applied".to_owned(), "true".to_owned()),
                ("list-with".to_owned(), LIST_RPC.to_owned()),
            ]);
            if let Some(id) = request_id {
                meta.insert("request-id".to_owned(), id.clone());
            }
            let answer_status = describe_failure(answer, "answer", &mut meta);
            gateway_error(
                Code::Internal,
                format!(
                    "Graph created the task, but its answer cannot be read ({answer_status}); do not create it again: list the tasks with {LIST_RPC} to find it"
                ),
                "CREATED_ANSWER_LOST",
                meta,
            )
        }
        WriteLost::DeleteUnknown {
            task_id,
            write,
            read,
        } => {
            let mut meta = read_how(task_id);
            meta.insert("applied".to_owned(), "unknown".to_owned());
            let write_status = describe_failure(write, "write", &mut meta);
            let after = match read {
                Some(read) => format!(
                    "reading the task afterwards failed ({})",
                    describe_failure(read, "read", &mut meta)
                ),
                None => "the task was still there, and the delete was not sent again (the retry budget is spent)".to_owned(),
            };
            gateway_error(
                Code::Unavailable,
                format!(
                    "the task may or may not have been deleted: Graph's answer was lost ({write_status}); {after}; read it with {READ_RPC}, or delete it again with allow_missing"
                ),
                OUTCOME_UNKNOWN,
                meta,
            )
        }
    }
}

/// Where to read a task whose update's outcome the caller must check.
fn read_how(task_id: &str) -> HashMap<String, String> {
    HashMap::from([
        ("read-with".to_owned(), READ_RPC.to_owned()),
        ("id".to_owned(), task_id.to_owned()),
    ])
}

/// Adds `<what>-status` and `<what>-reason` for a failure inside another,
/// and returns them as text for the message.
fn describe_failure(e: &CallError, what: &str, meta: &mut HashMap<String, String>) -> String {
    let status = e.to_status();
    let code = crate::metrics::code_name(status.code());
    meta.insert(format!("{what}-status"), code.to_owned());
    let reason = status.get_details_error_info().map(|i| i.reason);
    match reason {
        Some(reason) => {
            meta.insert(format!("{what}-reason"), reason.clone());
            format!("{code} {reason}: {}", status.message())
        }
        None => format!("{code}: {}", status.message()),
    }
}

/// A call the access layer refused: who is unknown is UNAUTHENTICATED, who
/// may not is PERMISSION_DENIED, who calls too fast is RESOURCE_EXHAUSTED
/// with the wait in RetryInfo. Messages name identities and RPCs, never a
/// token.
pub fn denial_status(d: &Denial) -> Status {
    let mut meta = HashMap::new();
    let (code, message) = match d {
        Denial::NoCredentials => (
            Code::Unauthenticated,
            "no caller identity: present a client certificate (mutual TLS) or `authorization: Bearer <token>` metadata".to_owned(),
        ),
        Denial::TokensNotAccepted => (
            Code::Unauthenticated,
            "bearer tokens are not accepted here: the caller policy names no token issuer".to_owned(),
        ),
        // The issuer's keys could not be fetched: the token may be fine,
        // so the caller should retry rather than re-authenticate.
        Denial::BadToken { reason, message } if *reason == "JWKS_UNAVAILABLE" => (
            Code::Unavailable,
            format!("bearer token cannot be checked now: {message}"),
        ),
        Denial::BadToken { message, .. } => {
            (Code::Unauthenticated, format!("bearer token refused: {message}"))
        }
        Denial::UnknownCaller { identities } => {
            meta.insert("identities".to_owned(), identities.join(" "));
            (
                Code::PermissionDenied,
                format!("no caller in the policy is known as {}", identities.join(" or ")),
            )
        }
        Denial::NotAllowed { caller, rpc } => {
            meta.insert("caller".to_owned(), caller.to_string());
            meta.insert("rpc".to_owned(), rpc.clone());
            (
                Code::PermissionDenied,
                format!("caller {caller:?} may not call {rpc}"),
            )
        }
        Denial::RateLimited {
            caller,
            retry_after,
        } => {
            meta.insert("caller".to_owned(), caller.to_string());
            let mut details = ErrorDetails::new();
            details.set_error_info(d.reason(), GATEWAY_DOMAIN, meta);
            details.set_retry_info(Some(*retry_after));
            return Status::with_error_details(
                Code::ResourceExhausted,
                format!("caller {caller:?} is over its rate limit; retry after {retry_after:?}"),
                details,
            );
        }
    };
    gateway_error(code, message, d.reason(), meta)
}

fn e_text(e: &crate::budget::Exhausted) -> String {
    GraphError::BudgetExhausted(*e).to_string()
}

fn graph_error(e: &GraphError) -> Status {
    let (code, reason, retry) = match e {
        GraphError::Status(failure) => return graph_failure(failure),
        GraphError::Throttled(delay) => (Code::ResourceExhausted, "GRAPH_THROTTLED", Some(*delay)),
        GraphError::BudgetExhausted(e) => {
            let mut details = ErrorDetails::new();
            details.set_error_info(
                "GRAPH_BUDGET_EXHAUSTED",
                GATEWAY_DOMAIN,
                HashMap::from([("budget".to_owned(), e.lane.budget().to_owned())]),
            );
            details.set_retry_info(Some(e.retry_after));
            return Status::with_error_details(Code::ResourceExhausted, e_text(e), details);
        }
        GraphError::Overloaded(_) => (Code::ResourceExhausted, "GATEWAY_OVERLOADED", None),
        GraphError::Timeout => (Code::DeadlineExceeded, "GRAPH_TIMEOUT", None),
        GraphError::Connect(_) => (Code::Unavailable, "GRAPH_UNREACHABLE", None),
        GraphError::Lost(_) => (Code::Unavailable, "GRAPH_CONNECTION_LOST", None),
        GraphError::Body(_) => (Code::Unavailable, "GRAPH_ANSWER_INTERRUPTED", None),
        GraphError::Token(t) => return token_error(t),
        GraphError::AnswerTooLarge(a) => {
            let mut meta = HashMap::from([
                ("limit-bytes".to_owned(), a.limit.to_string()),
                ("http-status".to_owned(), a.status.to_string()),
            ]);
            if let Some(id) = &a.request_id {
                meta.insert("request-id".to_owned(), id.clone());
            }
            return gateway_error(
                Code::Internal,
                e.to_string(),
                "GRAPH_ANSWER_TOO_LARGE",
                meta,
            );
        }
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, GATEWAY_DOMAIN, HashMap::new());
    if retry.is_some() {
        details.set_retry_info(retry);
    }
    Status::with_error_details(code, e.to_string(), details)
}

/// No token: transient failures are UNAVAILABLE (retry later), refused
/// credentials UNAUTHENTICATED, a forbidden app PERMISSION_DENIED. The
/// details carry Entra ID's ids for support, never a secret.
fn token_error(t: &TokenError) -> Status {
    let (code, reason) = match t.kind() {
        TokenErrorKind::Transient => (Code::Unavailable, "TOKEN_UNAVAILABLE"),
        TokenErrorKind::BadCredentials => (Code::Unauthenticated, "TOKEN_REFUSED"),
        TokenErrorKind::Forbidden => (Code::PermissionDenied, "TOKEN_FORBIDDEN"),
    };
    let mut meta = HashMap::new();
    if let Some(status) = t.status() {
        meta.insert("http-status".to_owned(), status.to_string());
    }
    if let Some(error) = t.error_code() {
        meta.insert("error".to_owned(), error.to_owned());
    }
    if let Some(aadsts) = t.aadsts() {
        meta.insert("aadsts".to_owned(), format!("AADSTS{aadsts}"));
    }
    if let Some(id) = t.correlation_id() {
        meta.insert("correlation-id".to_owned(), id.to_owned());
    }
    if let Some(id) = t.trace_id() {
        meta.insert("trace-id".to_owned(), id.to_owned());
    }
    gateway_error(
        code,
        format!("no access token for Graph: {t}"),
        reason,
        meta,
    )
}

/// A call refused because `GATEWAY_MAX_CONCURRENT_CALLS` calls are open
/// across all connections: RESOURCE_EXHAUSTED, reason
/// `TOO_MANY_CONCURRENT_CALLS`, with a short RetryInfo. Nothing was sent to
/// Graph.
pub fn too_many_calls(max: usize) -> Status {
    let mut meta = HashMap::new();
    meta.insert("max_concurrent_calls".to_owned(), max.to_string());
    let mut details = ErrorDetails::new();
    details.set_error_info("TOO_MANY_CONCURRENT_CALLS", GATEWAY_DOMAIN, meta);
    details.set_retry_info(Some(std::time::Duration::from_secs(1)));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("the gateway is serving its maximum of {max} concurrent calls; retry shortly"),
        details,
    )
}

/// A `request_id` sent again with another request: INVALID_ARGUMENT,
/// reason `REQUEST_ID_REUSED`. Nothing was sent to Graph.
pub fn request_id_reused(rpc: &str) -> Status {
    let meta = HashMap::from([("rpc".to_owned(), rpc.to_owned())]);
    gateway_error(
        Code::InvalidArgument,
        format!("this request_id was already used for another {rpc} request; use a new request_id for a new request"),
        "REQUEST_ID_REUSED",
        meta,
    )
}

/// Every entry of the `request_id` store is a call still running:
/// RESOURCE_EXHAUSTED, reason `REQUEST_ID_STORE_FULL`, with a short
/// RetryInfo. Nothing was sent to Graph.
pub fn request_id_store_full(max_entries: usize) -> Status {
    let meta = HashMap::from([("max_entries".to_owned(), max_entries.to_string())]);
    let mut details = ErrorDetails::new();
    details.set_error_info("REQUEST_ID_STORE_FULL", GATEWAY_DOMAIN, meta);
    details.set_retry_info(Some(std::time::Duration::from_secs(1)));
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("the gateway is running {max_entries} calls with a request_id, its maximum; retry shortly"),
        details,
    )
}

/// A duplicate whose deadline came while the first call with its
/// `request_id` still ran: DEADLINE_EXCEEDED, reason
/// `REQUEST_ID_IN_PROGRESS`. This call sent nothing; a retry with the same
/// `request_id` gets the first call's answer once it has one.
pub fn request_id_in_progress(rpc: &str) -> Status {
    let meta = HashMap::from([("rpc".to_owned(), rpc.to_owned())]);
    gateway_error(
        Code::DeadlineExceeded,
        format!("the first {rpc} call with this request_id was still running at this call's deadline; retry with the same request_id for its answer"),
        "REQUEST_ID_IN_PROGRESS",
        meta,
    )
}

/// What a retry is told when the first call with its `request_id` was
/// cancelled after its request may have reached Graph: UNAVAILABLE, reason
/// `OUTCOME_UNKNOWN`, metadata `applied: unknown`. Never sent again.
pub fn first_call_outcome_unknown(rpc: &str) -> Status {
    let meta = HashMap::from([
        ("applied".to_owned(), "unknown".to_owned()),
        ("read-with".to_owned(), READ_RPC.to_owned()),
        ("rpc".to_owned(), rpc.to_owned()),
    ]);
    gateway_error(
        Code::Unavailable,
        format!("the first {rpc} call with this request_id stopped after its request may have reached Graph; it is not sent again: read the task with {READ_RPC} to know"),
        "OUTCOME_UNKNOWN",
        meta,
    )
}

fn gateway_error(
    code: Code,
    message: String,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, GATEWAY_DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

fn graph_failure(f: &GraphFailure) -> Status {
    let code = code_for_graph_status(f.status);
    let reason = match &f.code {
        Some(c) => upper_snake(c),
        None => format!("HTTP_{}", f.status),
    };
    let mut meta = HashMap::from([("http-status".to_owned(), f.status.to_string())]);
    for (key, value) in [
        ("request-id", &f.request_id),
        ("client-request-id", &f.client_request_id),
        ("date", &f.date),
    ] {
        if let Some(v) = value {
            meta.insert(key.to_owned(), v.clone());
        }
    }
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, GRAPH_DOMAIN, meta);
    if f.retry_after.is_some() {
        details.set_retry_info(f.retry_after);
    }
    // Graph's text, cut to a size a status can carry; the code and ids
    // are in the details whatever the message holds.
    let message = match &f.message {
        Some(m) => clip(m, MAX_MESSAGE_BYTES).to_owned(),
        None => f.to_string(),
    };
    Status::with_error_details(code, message, details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn table_follows_the_contract() {
        let want = [
            (400, Code::InvalidArgument),
            (415, Code::InvalidArgument),
            (422, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (405, Code::Unimplemented),
            (501, Code::Unimplemented),
            (409, Code::Aborted),
            (412, Code::Aborted),
            (413, Code::ResourceExhausted),
            (423, Code::FailedPrecondition),
            (429, Code::ResourceExhausted),
            (507, Code::ResourceExhausted),
            (509, Code::ResourceExhausted),
            (500, Code::Internal),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::DeadlineExceeded),
            (418, Code::FailedPrecondition),
            (599, Code::Unavailable),
            (302, Code::Unknown),
        ];
        for (status, code) in want {
            assert_eq!(code_for_graph_status(status), code, "{status}");
        }
    }

    #[test]
    fn graph_codes_become_upper_snake() {
        assert_eq!(upper_snake("itemNotFound"), "ITEM_NOT_FOUND");
        assert_eq!(upper_snake("TooManyRequests"), "TOO_MANY_REQUESTS");
        assert_eq!(
            upper_snake("Request_ResourceNotFound"),
            "REQUEST_RESOURCE_NOT_FOUND"
        );
        assert_eq!(upper_snake("invalidRequest"), "INVALID_REQUEST");
    }

    #[test]
    fn graph_failure_carries_error_info_and_retry_info() {
        let failure = GraphFailure {
            status: 429,
            code: Some("TooManyRequests".into()),
            message: Some("slow down".into()),
            request_id: Some("r".into()),
            client_request_id: Some("c".into()),
            date: Some("2021-09-14T19:05:24".into()),
            retry_after: Some(Duration::from_secs(7)),
        };
        let status = CallError::Graph(GraphError::Status(Box::new(failure))).to_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "slow down");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "TOO_MANY_REQUESTS");
        assert_eq!(info.domain, GRAPH_DOMAIN);
        assert_eq!(info.metadata["request-id"], "r");
        assert_eq!(info.metadata["client-request-id"], "c");
        assert_eq!(info.metadata["date"], "2021-09-14T19:05:24");
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
    }

    #[test]
    fn graph_messages_are_cut_to_a_kibibyte() {
        let failure = GraphFailure {
            status: 400,
            code: Some("badRequest".into()),
            message: Some("ß".repeat(10_000)),
            request_id: None,
            client_request_id: None,
            date: None,
            retry_after: None,
        };
        let status = CallError::Graph(GraphError::Status(Box::new(failure))).to_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message().len(), MAX_MESSAGE_BYTES);
        assert!(status.message().chars().all(|c| c == 'ß'));
    }

    #[test]
    fn an_answer_too_large_is_internal_with_the_limit() {
        let error = GraphError::AnswerTooLarge(crate::graph::AnswerTooLarge {
            status: 200,
            limit: 1024,
            request_id: Some("r".into()),
        });
        let status = CallError::Graph(error).to_status();
        assert_eq!(status.code(), Code::Internal);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "GRAPH_ANSWER_TOO_LARGE");
        assert_eq!(info.domain, GATEWAY_DOMAIN);
        assert_eq!(info.metadata["limit-bytes"], "1024");
        assert_eq!(info.metadata["http-status"], "200");
        assert_eq!(info.metadata["request-id"], "r");
    }
}

#[cfg(test)]
mod update_outcome_tests {
    use super::*;

    fn failure(status: u16, code: &str) -> CallError {
        CallError::Graph(GraphError::Status(Box::new(GraphFailure {
            status,
            code: Some(code.into()),
            message: Some("no".into()),
            request_id: Some("read-1".into()),
            client_request_id: None,
            date: None,
            retry_after: None,
        })))
    }

    #[test]
    fn an_applied_update_whose_read_back_failed_says_so() {
        let status = CallError::AppliedReadBackFailed {
            task_id: "t".into(),
            request_id: Some("patch-1".into()),
            read: Box::new(failure(404, "ResourceNotFound")),
        }
        .to_status();
        assert_eq!(status.code(), Code::Unavailable);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "UPDATE_APPLIED_READ_BACK_FAILED");
        assert_eq!(info.domain, GATEWAY_DOMAIN);
        assert_eq!(info.metadata["applied"], "true");
        assert_eq!(info.metadata["request-id"], "patch-1");
        assert_eq!(info.metadata["read-status"], "NOT_FOUND");
        assert_eq!(info.metadata["read-reason"], "RESOURCE_NOT_FOUND");
        assert_eq!(info.metadata["read-with"], READ_RPC);
        assert_eq!(info.metadata["id"], "t");
    }

    #[test]
    fn an_unknown_outcome_names_what_was_tried() {
        for (after, resent, key) in [
            (
                Unconfirmed::ReadFailed(Box::new(failure(503, "serviceNotAvailable"))),
                "false",
                Some("read-status"),
            ),
            (Unconfirmed::NotResent, "false", None),
            (
                Unconfirmed::ResentLost(Box::new(CallError::Graph(GraphError::Timeout))),
                "true",
                Some("resent-status"),
            ),
        ] {
            let status = CallError::OutcomeUnknown {
                task_id: "t".into(),
                write: Box::new(CallError::Graph(GraphError::Lost("reset".into()))),
                after,
            }
            .to_status();
            assert_eq!(status.code(), Code::Unavailable);
            assert!(
                status.message().contains("may or may not"),
                "{}",
                status.message()
            );
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, "UPDATE_OUTCOME_UNKNOWN");
            assert_eq!(info.metadata["applied"], "unknown");
            assert_eq!(info.metadata["write-reason"], "GRAPH_CONNECTION_LOST");
            assert_eq!(info.metadata["resent"], resent);
            if let Some(key) = key {
                assert!(info.metadata.contains_key(key), "{key}: {info:?}");
            }
        }
    }

    #[test]
    fn request_id_refusals_carry_their_reasons() {
        let reused = request_id_reused("UpdateSecurityConfigurationTask");
        assert_eq!(reused.code(), Code::InvalidArgument);
        let info = reused.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "REQUEST_ID_REUSED");
        assert_eq!(info.domain, GATEWAY_DOMAIN);
        let full = request_id_store_full(7);
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert_eq!(
            full.get_details_error_info().expect("ErrorInfo").reason,
            "REQUEST_ID_STORE_FULL"
        );
        assert!(full.get_details_retry_info().is_some());
        let unknown = first_call_outcome_unknown("CreateSecurityConfigurationTask");
        assert_eq!(unknown.code(), Code::Unavailable);
        let info = unknown.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "OUTCOME_UNKNOWN");
        assert_eq!(info.metadata["applied"], "unknown");
    }
}

#[cfg(test)]
mod write_lost_tests {
    use super::*;

    #[test]
    fn a_create_of_unknown_outcome_says_to_list_and_gives_no_retry_delay() {
        let status = CallError::WriteLost(WriteLost::CreateUnknown {
            write: Box::new(CallError::Graph(GraphError::Timeout)),
        })
        .to_status();
        assert_eq!(status.code(), Code::Unavailable);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, OUTCOME_UNKNOWN);
        assert_eq!(info.domain, GATEWAY_DOMAIN);
        assert_eq!(info.metadata["applied"], "unknown");
        assert_eq!(info.metadata["list-with"], LIST_RPC);
        assert_eq!(info.metadata["write-reason"], "GRAPH_TIMEOUT");
        assert!(info.metadata["how"].contains("list the tasks"));
        assert!(status.get_details_retry_info().is_none());
        assert!(
            status.message().contains("may or may not"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn a_created_task_whose_answer_is_lost_is_internal_and_applied() {
        let status = CallError::WriteLost(WriteLost::CreatedAnswerLost {
            request_id: Some("post-1".into()),
            answer: Box::new(CallError::Graph(GraphError::Body("cut".into()))),
        })
        .to_status();
        assert_eq!(status.code(), Code::Internal);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "CREATED_ANSWER_LOST");
        assert_eq!(info.metadata["applied"], "true");
        assert_eq!(info.metadata["request-id"], "post-1");
        assert_eq!(info.metadata["answer-reason"], "GRAPH_ANSWER_INTERRUPTED");
        assert!(status.get_details_retry_info().is_none());
    }

    #[test]
    fn a_delete_of_unknown_outcome_names_the_task_to_read() {
        let status = CallError::WriteLost(WriteLost::DeleteUnknown {
            task_id: "t".into(),
            write: Box::new(CallError::Graph(GraphError::Lost("reset".into()))),
            read: Some(Box::new(CallError::Graph(GraphError::Timeout))),
        })
        .to_status();
        assert_eq!(status.code(), Code::Unavailable);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, OUTCOME_UNKNOWN);
        assert_eq!(info.metadata["id"], "t");
        assert_eq!(info.metadata["read-with"], READ_RPC);
        assert_eq!(info.metadata["write-reason"], "GRAPH_CONNECTION_LOST");
        assert_eq!(info.metadata["read-reason"], "GRAPH_TIMEOUT");
    }
}
