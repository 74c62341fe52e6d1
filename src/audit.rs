//! The audit trail: one structured record per mutating call, on the log
//! stream under its own target (`audit`), so a log shipper can route it
//! apart from operational logs. The log filter always keeps it, whatever
//! the operational level.
//!
//! A record names who called, from where, which RPC and task, which fields
//! (names only: values could hold anything) or which status was set (and
//! the note's length, never its text), what came of it, Graph's
//! `request-id`, the caller's `request_id` and whether the answer was a
//! replay of an earlier call with it. Nothing else of the request is written.

use tonic::Code;

/// The tracing target of audit records.
pub const TARGET: &str = "audit";

/// What a mutating call did at Graph, as far as the gateway can know.
/// Decided by the service from what happened, not from the code the caller
/// gets: an update Graph took whose task could not be read back is
/// `Applied`, though the caller is told `UNAVAILABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Graph answered success to the write.
    Applied,
    /// Refused by the gateway or by Graph, or never sent.
    NotApplied,
    /// The request may have reached Graph and its answer was lost: read the
    /// task to know.
    Unknown,
    /// A `validate_only` call that passed every check; nothing was written.
    Validated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::NotApplied => "not_applied",
            Self::Unknown => "unknown",
            Self::Validated => "validated",
        }
    }
}

/// One mutating call that reached the service.
pub struct Record<'a> {
    pub rpc: &'static str,
    pub caller: &'a str,
    pub via: &'static str,
    pub peer: &'a str,
    pub task_id: &'a str,
    /// Proto field names, comma-separated (Create, Update).
    pub fields: &'a str,
    /// The Graph status member set (SetStatus).
    pub status: Option<&'static str>,
    /// The length in bytes of the note sent with a status (SetStatus).
    pub note_bytes: Option<usize>,
    pub outcome: Outcome,
    /// How an outcome was learnt other than from Graph's answer to the
    /// write (`read_back`: the task was read and held what was sent).
    pub confirmed_by: Option<&'static str>,
    /// Whether the write was sent again after a read-back found it missing.
    pub resent: bool,
    pub code: Code,
    pub graph_request_id: &'a str,
    pub client_request_id: &'a str,
    /// The caller's AIP-155 `request_id`, empty when not given.
    pub request_id: &'a str,
    /// The answer repeated an earlier call's outcome (same `request_id`,
    /// same request): nothing was sent to Graph for this one.
    pub replay: bool,
}

/// Writes the record for a call the service handled (or that was dropped
/// while the service handled it).
pub fn write(r: &Record<'_>) {
    tracing::info!(
        target: "audit",
        rpc = r.rpc,
        caller = r.caller,
        via = r.via,
        peer = r.peer,
        task_id = r.task_id,
        fields = r.fields,
        status = r.status,
        note_bytes = r.note_bytes,
        outcome = r.outcome.as_str(),
        confirmed_by = r.confirmed_by,
        resent = r.resent,
        code = crate::metrics::code_name(r.code),
        graph_request_id = r.graph_request_id,
        client_request_id = r.client_request_id,
        request_id = r.request_id,
        replay = r.replay,
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
    fn outcomes_have_stable_names() {
        assert_eq!(Outcome::Applied.as_str(), "applied");
        assert_eq!(Outcome::NotApplied.as_str(), "not_applied");
        assert_eq!(Outcome::Unknown.as_str(), "unknown");
        assert_eq!(Outcome::Validated.as_str(), "validated");
    }
}
