//! The audit trail: one structured record per mutating call, on the log
//! stream under its own target (`audit`), so a log shipper can route it
//! apart from operational logs. The log filter always keeps it, whatever
//! the operational level.
//!
//! A record names who called, from where, which task, which fields (names
//! only: values could hold anything), what came of it and Graph's
//! `request-id`. Nothing else of the request is written.

use tonic::Code;

/// The tracing target of audit records.
pub const TARGET: &str = "audit";

/// What an update did to Graph, as far as the gateway can know.
pub fn outcome(code: Code) -> &'static str {
    match code {
        Code::Ok => "applied",
        // Graph refused it, or it never left the gateway.
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::ResourceExhausted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Aborted => "not_applied",
        // The request may have reached Graph and been taken before the
        // answer was lost: the caller must read the task to know.
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Internal
        | Code::Unknown
        | Code::Cancelled
        | Code::DataLoss => "unknown",
    }
}

/// One update that reached the service.
pub struct UpdateRecord<'a> {
    pub rpc: &'static str,
    pub caller: &'a str,
    pub via: &'static str,
    pub peer: &'a str,
    pub task_id: &'a str,
    /// Proto field names, comma-separated.
    pub fields: &'a str,
    pub code: Code,
    pub graph_request_id: &'a str,
    pub client_request_id: &'a str,
}

/// Writes the record for a call the service handled.
pub fn update(r: &UpdateRecord<'_>) {
    tracing::info!(
        target: "audit",
        rpc = r.rpc,
        caller = r.caller,
        via = r.via,
        peer = r.peer,
        task_id = r.task_id,
        fields = r.fields,
        outcome = outcome(r.code),
        code = crate::metrics::code_name(r.code),
        graph_request_id = r.graph_request_id,
        client_request_id = r.client_request_id,
        "audit"
    );
}

/// Writes the record for a mutating call refused before the service saw it
/// (unauthenticated, not allowed, rate limited).
pub fn refused(rpc: &'static str, caller: &str, peer: &str, reason: &'static str) {
    tracing::info!(
        target: "audit",
        rpc,
        caller,
        peer,
        outcome = "refused",
        reason,
        "audit"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ok_is_applied_and_lost_answers_are_unknown() {
        assert_eq!(outcome(Code::Ok), "applied");
        assert_eq!(outcome(Code::InvalidArgument), "not_applied");
        assert_eq!(outcome(Code::PermissionDenied), "not_applied");
        assert_eq!(outcome(Code::Unavailable), "unknown");
        assert_eq!(outcome(Code::DeadlineExceeded), "unknown");
    }
}
