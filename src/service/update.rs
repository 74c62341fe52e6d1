//! An update's way through Graph, and what it learns for its audit record.
//!
//! - Graph answers success: the change is applied, whatever happens next.
//!   With the task in the answer, that is the answer; with `204` or a body
//!   cut short the task is read back, and if that read fails the caller is
//!   told `UNAVAILABLE` (`UPDATE_APPLIED_READ_BACK_FAILED`), not the read's
//!   error. A success body that is not the task is `INTERNAL`, still applied.
//! - Graph refuses it, or it never left: not applied.
//! - No answer, and the request may have reached Graph (a timeout, a
//!   connection lost after the request was written, a `504`): it is not
//!   sent blindly again, since that could overwrite a change another writer
//!   made meanwhile. The task is read back: if it holds what was sent, the
//!   update is confirmed; if not, it is sent once more (from the retry
//!   budget); if the read fails, the outcome is unknown and the caller is
//!   told so (`UPDATE_OUTCOME_UNKNOWN`).
//!
//! The race a read-back cannot close: another writer that, between this
//! PATCH and the read, set the same values (this one reads as applied though
//! it may never have landed) or other values (this one, though applied, is
//! sent again over theirs). See `translate::holds_patch`.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::audit;
use crate::graph::{CallContext, GraphError, GraphResponse};
use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
use crate::status::{CallError, Unconfirmed};
use crate::translate::{self, IdSegment, PatchRequest};
use bytes::Bytes;

/// The confirmation a read-back gives, named in the audit record.
const READ_BACK: &str = "read_back";

/// A validated PATCH and the id the caller asked for.
struct Write<'a> {
    id: IdSegment,
    /// Shared by every send of it and the read-back's comparison.
    body: Bytes,
    asked: &'a str,
}

impl TaskService {
    pub(super) async fn update(
        &self,
        ctx: &CallContext,
        req: &UpdateSecurityConfigurationTaskRequest,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        let PatchRequest { id, body, fields } = translate::patch_request(req)?;
        progress.fields = fields
            .iter()
            .map(|f| f.proto_name())
            .collect::<Vec<_>>()
            .join(",");
        let w = Write {
            id,
            body: Bytes::from(body),
            asked: req
                .security_configuration_task
                .as_ref()
                .map_or("", |t| t.id.as_str()),
        };
        let sent = self.graph.patch_task(&w.id, w.body.clone(), ctx).await;
        match sent {
            Err(e) if may_have_applied(&e) && ctx.sent.may_have_reached_graph() => {
                self.confirm(ctx, &w, e, progress).await
            }
            other => self.answered(ctx, &w, other, progress).await,
        }
    }

    /// What Graph's answer (or a failure that says it did not take the
    /// write) makes of the update.
    async fn answered(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
        sent: Result<GraphResponse, GraphError>,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        let resp = match sent {
            Ok(resp) => resp,
            // Graph answered success but the body broke off: the change was
            // taken, so read the task back rather than report a failure.
            Err(GraphError::Body(why)) => {
                progress.outcome = Some(audit::Outcome::Applied);
                tracing::info!(%why, "Graph took the PATCH but its answer broke off; reading the task back");
                return self.read_back_applied(ctx, w, None).await;
            }
            Err(e) => {
                progress.outcome = Some(failure_outcome(&e, ctx));
                return Err(e.into());
            }
        };
        progress.outcome = Some(audit::Outcome::Applied);
        let request_id = resp.request_id.clone();
        // Graph may take the change and answer 204 No Content: the task as
        // Graph now holds it is then read back.
        if resp.status == 204 || resp.body.is_empty() {
            return self.read_back_applied(ctx, w, request_id).await;
        }
        let task = self.read_task(&resp, w.asked, true)?;
        Ok((task, request_id))
    }

    /// Reads back a task whose update Graph took.
    async fn read_back_applied(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
        request_id: Option<String>,
    ) -> Outcome<SecurityConfigurationTask> {
        match self.read_back(ctx, w).await {
            Ok((task, _, read_id)) => Ok((task, request_id.or(read_id))),
            Err(read) => {
                tracing::warn!(error = %read.to_status().message(), "Graph took the PATCH, but the task could not be read back");
                Err(CallError::AppliedReadBackFailed {
                    task_id: w.asked.to_owned(),
                    request_id,
                    read: Box::new(read),
                })
            }
        }
    }

    /// The write may have reached Graph and got no answer: read the task
    /// back, and send the write once more only if it is not there.
    async fn confirm(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
        lost: GraphError,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        tracing::info!(error = %lost, "no answer to a PATCH that may have reached Graph; reading the task back");
        let unknown = |after| CallError::OutcomeUnknown {
            task_id: w.asked.to_owned(),
            write: Box::new(CallError::Graph(lost.clone())),
            after,
        };
        let (task, raw, request_id) = match self.read_back(ctx, w).await {
            Ok(read) => read,
            Err(read) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                return Err(unknown(Unconfirmed::ReadFailed(Box::new(read))));
            }
        };
        if translate::holds_patch(&w.body, &raw) {
            progress.outcome = Some(audit::Outcome::Applied);
            progress.confirmed_by = Some(READ_BACK);
            return Ok((task, request_id));
        }
        if !self.graph.withdraw_retry("read_back_resend") {
            progress.outcome = Some(audit::Outcome::Unknown);
            return Err(unknown(Unconfirmed::NotResent));
        }
        tracing::info!("the task read back does not hold the PATCH; sending it once more");
        progress.resent = true;
        match self.graph.patch_task(&w.id, w.body.clone(), ctx).await {
            Err(e) if may_have_applied(&e) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                Err(unknown(Unconfirmed::ResentLost(Box::new(
                    CallError::Graph(e),
                ))))
            }
            other => self.answered(ctx, w, other, progress).await,
        }
    }

    /// The task as Graph holds it, its JSON and Graph's `request-id`.
    async fn read_back(
        &self,
        ctx: &CallContext,
        w: &Write<'_>,
    ) -> Result<(SecurityConfigurationTask, Bytes, Option<String>), CallError> {
        let current = self.graph.get_task(&w.id, ctx).await?;
        let task = self.read_task(&current, w.asked, false)?;
        Ok((task, current.body, current.request_id))
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

/// What a failed write did at Graph.
fn failure_outcome(e: &GraphError, ctx: &CallContext) -> audit::Outcome {
    if !ctx.sent.may_have_reached_graph() {
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
        | GraphError::Token(_) => audit::Outcome::NotApplied,
        // Timeouts, lost connections, other 5xx: it may have been taken.
        _ => audit::Outcome::Unknown,
    }
}
