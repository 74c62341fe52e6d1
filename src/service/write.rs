//! A write to one task whose answer may be lost, and what it learns for its
//! audit record: an update's PATCH and a status change's `updateStatus`
//! action take the same way through Graph.
//!
//! - Graph answers success: the change is applied, whatever happens next.
//!   With the task in the answer (a PATCH's 200), that is the answer; with
//!   `204` (the action always, a PATCH sometimes) or a body cut short the
//!   task is read back, and if that read fails the caller is told
//!   `UNAVAILABLE` (`UPDATE_APPLIED_READ_BACK_FAILED`), not the read's
//!   error. A success body that is not the task is `INTERNAL`, still applied.
//! - Graph refuses it, or it never left: not applied.
//! - No answer, and the request may have reached Graph (a timeout, a
//!   connection lost after the request was written, a `504`): it is not
//!   sent blindly again, since a PATCH could overwrite a change another
//!   writer made meanwhile and an action could record its note twice. The
//!   task is read back: if it holds what was sent, the write is confirmed;
//!   if not, it is sent once more (from the retry budget); if the read
//!   fails, the outcome is unknown and the caller is told so
//!   (`UPDATE_OUTCOME_UNKNOWN`).
//!
//! The race a read-back cannot close: another writer that, between this
//! write and the read, set the same values (this one reads as applied though
//! it may never have landed) or other values (this one, though applied, is
//! sent again over theirs). See `translate::holds_patch`. A status change
//! to the status the task already had cannot be told from one that never
//! landed, so it is sent once more.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::audit;
use crate::graph::batch::Item;
use crate::graph::{CallContext, GraphError, GraphResponse, Sent, COLLECTION_PATH};
use crate::proto::v1::SecurityConfigurationTask;
use crate::status::{CallError, Unconfirmed};
use crate::translate::{self, IdSegment};
use bytes::Bytes;
use tracing::Instrument;

/// The confirmation a read-back gives, named in the audit record.
const READ_BACK: &str = "read_back";

/// A validated write and the id the caller asked for.
pub(super) struct Write<'a> {
    pub id: IdSegment,
    /// Shared by every send of it and the read-back's comparison.
    pub body: Bytes,
    pub asked: &'a str,
    pub kind: Kind,
}

/// Which write, and how a task read back shows it landed.
pub(super) enum Kind {
    /// A PATCH: the task holds every property of the body.
    Patch,
    /// The `updateStatus` action setting `member`; `was`: the status the
    /// task had when it was read before the write.
    Status {
        member: &'static str,
        was: Option<String>,
    },
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Patch => "PATCH",
            Kind::Status { .. } => "updateStatus",
        }
    }
}

impl Write<'_> {
    /// Whether the task JSON `current` shows this write landed.
    fn held_by(&self, current: &[u8]) -> bool {
        match &self.kind {
            Kind::Patch => translate::holds_patch(&self.body, current),
            Kind::Status { member, was } => {
                was.as_deref() != Some(*member) && status_of(current).as_deref() == Some(*member)
            }
        }
    }
}

/// The `status` property of a task's JSON, if it is a string.
pub(super) fn status_of(task: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(task).ok()?;
    value.get("status")?.as_str().map(str::to_owned)
}

/// The context for a read made before a write (the type check, a dry run's
/// read): its own record of what was sent, so that the call's record keeps
/// saying whether a write may have reached Graph.
pub(super) fn read_only(ctx: &CallContext) -> CallContext {
    CallContext {
        sent: Sent::default(),
        ..ctx.clone()
    }
}

/// Where a write stands after one step: answered, or with one more request
/// to make at Graph. The steps are pure of I/O, so a single call and a
/// batch (which makes each step's requests for all its items as one Graph
/// batch) judge every answer by the same rules.
pub(super) enum Next {
    Done(Outcome<SecurityConfigurationTask>),
    /// Graph took the write without answering the task (a `204`, a success
    /// body cut short): read it back to answer. `request_id`: the write's.
    ReadBack {
        request_id: Option<String>,
    },
    /// The write may have reached Graph and got no answer (`lost`): read
    /// the task back to learn whether it landed.
    Confirm {
        lost: GraphError,
    },
    /// The task read back does not show the write: send it once more.
    Resend {
        lost: GraphError,
    },
}

impl Write<'_> {
    /// The write as an item of a Graph batch.
    pub(super) fn batch_item(&self) -> Item {
        let (method, action) = match self.kind {
            Kind::Patch => (http::Method::PATCH, ""),
            Kind::Status { .. } => (http::Method::POST, "/updateStatus"),
        };
        Item {
            method,
            url: format!("{COLLECTION_PATH}/{}{action}", self.id.as_str()),
            body: Some(self.body.clone()),
        }
    }

    /// The read of its task as an item of a Graph batch.
    pub(super) fn read_item(&self) -> Item {
        read_item(&self.id)
    }
}

/// `GET` of the task `id` as an item of a Graph batch.
pub(super) fn read_item(id: &IdSegment) -> Item {
    Item {
        method: http::Method::GET,
        url: format!("{COLLECTION_PATH}/{}", id.as_str()),
        body: None,
    }
}

impl TaskService {
    /// Sends `w` and makes what can be known of Graph's answer.
    pub(super) async fn write(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        let sent = self.send_write(ctx, w).await;
        let mut next = self.after_send(w, sent, ctx.sent.may_have_reached_graph(), progress);
        loop {
            next = match next {
                Next::Done(outcome) => return outcome,
                Next::ReadBack { request_id } => {
                    let read = self
                        .graph
                        .get_task(&w.id, ctx)
                        .instrument(read_back_span("applied"))
                        .await;
                    Next::Done(self.after_read_back(w, request_id, read))
                }
                Next::Confirm { lost } => {
                    let read = self
                        .graph
                        .get_task(&w.id, ctx)
                        .instrument(read_back_span("confirm"))
                        .await;
                    self.after_confirm_read(w, lost, read, progress)
                }
                Next::Resend { lost } => {
                    let again = self.send_write(ctx, w).await;
                    self.after_resend(w, lost, again, progress)
                }
            };
        }
    }

    async fn send_write(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
    ) -> Result<GraphResponse, GraphError> {
        match w.kind {
            Kind::Patch => self.graph.patch_task(&w.id, w.body.clone(), ctx).await,
            Kind::Status { .. } => self.graph.update_status(&w.id, w.body.clone(), ctx).await,
        }
    }

    /// After the write was first sent; `sent`: whether it may have reached
    /// Graph.
    pub(super) fn after_send(
        &self,
        w: &Write<'_>,
        result: Result<GraphResponse, GraphError>,
        sent: bool,
        progress: &mut Progress,
    ) -> Next {
        match result {
            Err(e) if may_have_applied(&e) && sent => {
                tracing::info!(error = %e, write = w.kind.name(), "no answer to a write that may have reached Graph; reading the task back");
                Next::Confirm { lost: e }
            }
            other => self.answered(w, other, sent, progress),
        }
    }

    /// After the envelope that carried the write in a batch failed with
    /// `e` (not Graph's answer to the write itself): unless the failure
    /// says Graph took none of it, the write may have run, and the task is
    /// read back to learn whether it did.
    pub(super) fn after_envelope_failed(
        &self,
        w: &Write<'_>,
        e: GraphError,
        sent: bool,
        progress: &mut Progress,
    ) -> Next {
        if !may_have_run(&e, sent) {
            return self.answered(w, Err(e), sent, progress);
        }
        tracing::info!(error = %e, write = w.kind.name(), "the batch carrying a write failed; reading the task back");
        Next::Confirm { lost: e }
    }

    /// What Graph's answer (or a failure that says it did not take the
    /// write) makes of it.
    fn answered(
        &self,
        w: &Write<'_>,
        result: Result<GraphResponse, GraphError>,
        sent: bool,
        progress: &mut Progress,
    ) -> Next {
        let resp = match result {
            Ok(resp) => resp,
            // Graph answered success but the body broke off: the change was
            // taken, so read the task back rather than report a failure.
            Err(GraphError::Body(why)) => {
                progress.outcome = Some(audit::Outcome::Applied);
                tracing::info!(%why, write = w.kind.name(), "Graph took the write but its answer broke off; reading the task back");
                return Next::ReadBack { request_id: None };
            }
            Err(e) => {
                progress.outcome = Some(failure_outcome(&e, sent));
                return Next::Done(Err(e.into()));
            }
        };
        progress.outcome = Some(audit::Outcome::Applied);
        let request_id = resp.request_id.clone();
        // Graph may take a PATCH and answer 204 No Content, and always
        // answers the action so: the task as Graph now holds it is then
        // read back.
        if resp.status == 204 || resp.body.is_empty() || matches!(w.kind, Kind::Status { .. }) {
            return Next::ReadBack { request_id };
        }
        Next::Done(
            self.read_task(&resp, w.asked, true)
                .map(|task| (task, request_id)),
        )
    }

    /// After reading back a task whose write Graph took.
    pub(super) fn after_read_back(
        &self,
        w: &Write<'_>,
        request_id: Option<String>,
        read: Result<GraphResponse, GraphError>,
    ) -> Outcome<SecurityConfigurationTask> {
        match self.read_back(w, read) {
            Ok((task, _, read_id)) => Ok((task, request_id.or(read_id))),
            Err(read) => {
                tracing::warn!(error = %read.to_status().message(), write = w.kind.name(), "Graph took the write, but the task could not be read back");
                Err(CallError::AppliedReadBackFailed {
                    task_id: w.asked.to_owned(),
                    request_id,
                    read: Box::new(read),
                })
            }
        }
    }

    /// After reading back a task whose write got no answer (`lost`): it is
    /// confirmed, or to be sent once more, or its outcome is unknown.
    pub(super) fn after_confirm_read(
        &self,
        w: &Write<'_>,
        lost: GraphError,
        read: Result<GraphResponse, GraphError>,
        progress: &mut Progress,
    ) -> Next {
        let (task, raw, request_id) = match self.read_back(w, read) {
            Ok(read) => read,
            Err(read) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                return Next::Done(Err(unknown(
                    w,
                    lost,
                    Unconfirmed::ReadFailed(Box::new(read)),
                )));
            }
        };
        if w.held_by(&raw) {
            progress.outcome = Some(audit::Outcome::Applied);
            progress.confirmed_by = Some(READ_BACK);
            return Next::Done(Ok((task, request_id)));
        }
        if !self.graph.withdraw_retry("read_back_resend") {
            progress.outcome = Some(audit::Outcome::Unknown);
            return Next::Done(Err(unknown(w, lost, Unconfirmed::NotResent)));
        }
        tracing::info!(
            write = w.kind.name(),
            "the task read back does not show the write; sending it once more"
        );
        progress.resent = true;
        Next::Resend { lost }
    }

    /// After sending the write once more: a second lost answer leaves the
    /// outcome unknown; any other answer is judged as the first would be.
    pub(super) fn after_resend(
        &self,
        w: &Write<'_>,
        lost: GraphError,
        result: Result<GraphResponse, GraphError>,
        progress: &mut Progress,
    ) -> Next {
        match result {
            Err(e) if may_have_applied(&e) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                Next::Done(Err(unknown(
                    w,
                    lost,
                    Unconfirmed::ResentLost(Box::new(CallError::Graph(e))),
                )))
            }
            other => self.answered(w, other, true, progress),
        }
    }

    /// The task `read` holds, its JSON and Graph's `request-id`.
    fn read_back(
        &self,
        w: &Write<'_>,
        read: Result<GraphResponse, GraphError>,
    ) -> Result<(SecurityConfigurationTask, Bytes, Option<String>), CallError> {
        let current = read?;
        let task = self.read_task(&current, w.asked, false)?;
        Ok((task, current.body, current.request_id))
    }
}

/// The span of reading a task back after a write: `why` is `applied`
/// (Graph took it without answering the task) or `confirm` (its answer
/// was lost). A debug span: made only when traces are exported.
pub(super) fn read_back_span(why: &'static str) -> tracing::Span {
    tracing::debug_span!("read back", read_back.reason = why)
}

/// A write whose outcome could not be learnt after its answer was `lost`.
fn unknown(w: &Write<'_>, lost: GraphError, after: Unconfirmed) -> CallError {
    CallError::OutcomeUnknown {
        task_id: w.asked.to_owned(),
        write: Box::new(CallError::Graph(lost)),
        after,
    }
}

/// A failure after which Graph may have taken the write.
fn may_have_applied(e: &GraphError) -> bool {
    match e {
        GraphError::Timeout | GraphError::Lost(_) => true,
        // A gateway in front of Graph gave up waiting for it.
        GraphError::Status(f) => f.status == 504,
        _ => false,
    }
}

/// Whether a write whose batch envelope failed with `e` may have run.
pub(super) fn may_have_run(e: &GraphError, sent: bool) -> bool {
    failure_outcome(e, sent) != audit::Outcome::NotApplied
}

/// What a failed write did at Graph; `sent`: whether it may have reached
/// Graph.
fn failure_outcome(e: &GraphError, sent: bool) -> audit::Outcome {
    if !sent {
        return audit::Outcome::NotApplied;
    }
    match e {
        // Graph's refusals, and 503 (Graph did not take it). Other 5xx come
        // from Graph, or from something in front of it, mid-way.
        GraphError::Status(f) if f.status < 500 || f.status == 503 => audit::Outcome::NotApplied,
        GraphError::Body(_) => audit::Outcome::Applied,
        // A success too large to read: Graph took the write.
        GraphError::AnswerTooLarge(a) if (200..300).contains(&a.status) => audit::Outcome::Applied,
        GraphError::Connect(_)
        | GraphError::Overloaded(_)
        | GraphError::Throttled(_)
        | GraphError::BudgetExhausted(_)
        | GraphError::Token(_) => audit::Outcome::NotApplied,
        // Timeouts, lost connections, other 5xx: it may have been taken.
        _ => audit::Outcome::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_write(member: &'static str, was: Option<&str>) -> Write<'static> {
        Write {
            id: IdSegment::new(translate::EXAMPLE_ID).expect("guid"),
            body: Bytes::from_static(b"{}"),
            asked: translate::EXAMPLE_ID,
            kind: Kind::Status {
                member,
                was: was.map(str::to_owned),
            },
        }
    }

    #[test]
    fn a_status_change_is_shown_by_the_new_status_only_if_it_is_new() {
        let completed = br#"{"id":"x","status":"completed"}"#;
        assert!(status_write("completed", Some("pending")).held_by(completed));
        assert!(status_write("completed", None).held_by(completed));
        // The task had that status already: the read cannot tell.
        assert!(!status_write("completed", Some("completed")).held_by(completed));
        assert!(!status_write("rejected", Some("pending")).held_by(completed));
        assert!(!status_write("completed", Some("pending")).held_by(b"{}"));
        assert!(!status_write("completed", Some("pending")).held_by(b"<html>"));
        assert!(!status_write("completed", Some("pending")).held_by(br#"{"status":4}"#));
    }

    #[test]
    fn the_status_of_a_task_is_read_from_its_json() {
        assert_eq!(
            status_of(br#"{"status":"active"}"#).as_deref(),
            Some("active")
        );
        assert_eq!(status_of(br#"{"status":null}"#), None);
        assert_eq!(status_of(b"[]"), None);
        assert_eq!(status_of(b""), None);
    }
}
