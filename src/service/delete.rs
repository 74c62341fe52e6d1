//! Deleting a task: `DELETE` on the task, after a read that checks its type.
//!
//! Graph deletes whatever task an id names, whatever its type, so the task
//! is read first (one GET): a task of another type is `FAILED_PRECONDITION`
//! and is not deleted; a missing one is `NOT_FOUND`, or OK with
//! `allow_missing` (AIP-135), and no DELETE is sent. A dry run
//! (`validate_only`) stops after that read.
//!
//! The check-then-act race: between the GET and the DELETE another writer
//! could act on the task. Ids are GUIDs that Graph never reuses, and Graph
//! never changes a task's type, so the id cannot come to name another task
//! or another type meanwhile; the only race left is the task being deleted
//! in between, which the DELETE's 404 shows and which is answered as a
//! missing task.
//!
//! A DELETE that may have reached Graph and got no answer (a timeout, a
//! connection lost after the request was written, a 504 or another 5xx) is
//! confirmed by reading the task: gone (404) means deleted (whoever deleted
//! it, the task is gone as asked); still there means the DELETE was not
//! taken, and it is sent once more (from the retry budget; deleting a GUID
//! twice cannot touch anything else). If the read fails too, the outcome is
//! unknown (`UNAVAILABLE`, `OUTCOME_UNKNOWN`).

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::audit;
use crate::graph::{CallContext, GraphError, GraphFailure, GraphResponse};
use crate::proto::v1::DeleteSecurityConfigurationTaskRequest;
use crate::status::{CallError, WriteLost};
use crate::translate::{IdSegment, InvalidRequest};

super::mutation::mutating_request!(
    crate::proto::v1::DeleteSecurityConfigurationTaskRequest,
    crate::methods::Method::Delete,
    |r| &r.id
);

/// The confirmation a read after a lost answer gives, named in the audit record.
const READ_BACK: &str = "read_back";

impl TaskService {
    pub(super) async fn delete(
        &self,
        ctx: &CallContext,
        req: &DeleteSecurityConfigurationTaskRequest,
        progress: &mut Progress,
    ) -> Outcome<()> {
        let id = IdSegment::new(&req.id).map_err(|why| InvalidRequest::single("id", why))?;
        // Until the DELETE is sent, nothing this call sends changes anything.
        progress.outcome = Some(audit::Outcome::NotApplied);
        let checked = match self.graph.get_task(&id, ctx).await {
            Ok(resp) => {
                self.read_task(&resp, &req.id, false)?;
                resp.request_id
            }
            Err(GraphError::Status(f)) if f.status == 404 => return missing(req, f),
            Err(e) => return Err(e.into()),
        };
        if req.validate_only {
            progress.outcome = Some(audit::Outcome::Validated);
            return Ok(((), checked));
        }
        // From here a dropped call may have deleted the task: the record
        // falls back to what was sent.
        progress.outcome = None;
        let sent = self.graph.delete_task(&id, ctx).await;
        self.delete_answered(ctx, req, &id, sent, progress, true)
            .await
    }

    /// What the DELETE's answer makes of the call; `confirm`: a lost answer
    /// may still be confirmed by a read.
    async fn delete_answered(
        &self,
        ctx: &CallContext,
        req: &DeleteSecurityConfigurationTaskRequest,
        id: &IdSegment,
        sent: Result<GraphResponse, GraphError>,
        progress: &mut Progress,
        confirm: bool,
    ) -> Outcome<()> {
        match sent {
            Ok(resp) => {
                progress.outcome = Some(audit::Outcome::Applied);
                Ok(((), resp.request_id))
            }
            // Deleted by someone else between the check and the DELETE.
            Err(GraphError::Status(f)) if f.status == 404 => {
                progress.outcome = Some(audit::Outcome::NotApplied);
                missing(req, f)
            }
            Err(e) if may_have_applied(&e) && confirm => {
                self.confirm_deleted(ctx, req, id, e, progress).await
            }
            Err(e) if may_have_applied(&e) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                Err(CallError::WriteLost(WriteLost::DeleteUnknown {
                    task_id: req.id.clone(),
                    write: Box::new(CallError::Graph(e)),
                    read: None,
                }))
            }
            Err(e) => {
                progress.outcome = Some(audit::Outcome::NotApplied);
                Err(e.into())
            }
        }
    }

    /// The DELETE may have reached Graph and got no answer: read the task.
    async fn confirm_deleted(
        &self,
        ctx: &CallContext,
        req: &DeleteSecurityConfigurationTaskRequest,
        id: &IdSegment,
        lost: GraphError,
        progress: &mut Progress,
    ) -> Outcome<()> {
        tracing::info!(error = %lost, "no answer to a DELETE that may have reached Graph; reading the task");
        let unknown = |read| {
            CallError::WriteLost(WriteLost::DeleteUnknown {
                task_id: req.id.clone(),
                write: Box::new(CallError::Graph(lost.clone())),
                read,
            })
        };
        match self.graph.get_task(id, ctx).await {
            Err(GraphError::Status(f)) if f.status == 404 => {
                progress.outcome = Some(audit::Outcome::Applied);
                progress.confirmed_by = Some(READ_BACK);
                Ok(((), f.request_id))
            }
            Err(read) => {
                progress.outcome = Some(audit::Outcome::Unknown);
                Err(unknown(Some(Box::new(CallError::Graph(read)))))
            }
            Ok(_) if !self.graph.withdraw_retry("read_back_resend") => {
                progress.outcome = Some(audit::Outcome::Unknown);
                Err(unknown(None))
            }
            Ok(_) => {
                tracing::info!("the task is still there; sending the DELETE once more");
                progress.resent = true;
                let again = self.graph.delete_task(id, ctx).await;
                match again {
                    // Taken, or the first one was after all.
                    Err(GraphError::Status(f)) if f.status == 404 => {
                        progress.outcome = Some(audit::Outcome::Applied);
                        Ok(((), f.request_id))
                    }
                    other => {
                        Box::pin(self.delete_answered(ctx, req, id, other, progress, false)).await
                    }
                }
            }
        }
    }
}

/// The task is not there: `NOT_FOUND` (Graph's error), or OK with
/// `allow_missing`.
fn missing(req: &DeleteSecurityConfigurationTaskRequest, f: Box<GraphFailure>) -> Outcome<()> {
    if req.allow_missing {
        Ok(((), f.request_id))
    } else {
        Err(CallError::Graph(GraphError::Status(f)))
    }
}

/// A failure after which Graph may have taken the DELETE.
fn may_have_applied(e: &GraphError) -> bool {
    match e {
        GraphError::Timeout | GraphError::Lost(_) | GraphError::Body(_) => true,
        // A gateway in front of Graph gave up waiting, or Graph failed mid-way.
        GraphError::Status(f) => f.status >= 500 && f.status != 503,
        _ => false,
    }
}
