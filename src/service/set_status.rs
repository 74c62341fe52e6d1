//! A status change: Graph's `updateStatus` action, after one read that
//! checks the task is a securityConfigurationTask.
//!
//! Graph acts on whatever task an id names, so the task is read first: a
//! task of another type is `FAILED_PRECONDITION` and nothing is sent; a
//! missing one is `NOT_FOUND`. A task's type never changes under its id, so
//! the only race between the read and the action is a delete, which the
//! action then answers `404` (`NOT_FOUND`). The action is sent as a
//! [`Write`]: its `204` is followed by reading the task back, and a lost
//! answer is confirmed by reading the status back before it is sent again
//! (a change to the status the task already had cannot be confirmed so, and
//! is sent again: the state is the same, Graph may keep the note twice).
//!
//! The note is sent to Graph and nowhere else: the audit record has its
//! length, no log line, error or metric has its text.

use super::call::Outcome;
use super::record::Progress;
use super::write::{read_only, status_of, Kind, Write};
use super::TaskService;
use crate::audit;
use crate::graph::CallContext;
use crate::proto::v1::{SecurityConfigurationTask, SetSecurityConfigurationTaskStatusRequest};
use crate::translate::{self, StatusChange};
use bytes::Bytes;

impl TaskService {
    pub(super) async fn set_status(
        &self,
        ctx: &CallContext,
        req: &SetSecurityConfigurationTaskStatusRequest,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        let StatusChange {
            id,
            status,
            member,
            body,
            note_bytes,
        } = translate::status_change(req)?;
        progress.status = Some(member);
        progress.note_bytes = Some(note_bytes);
        let read = self.graph.get_task(&id, &read_only(ctx)).await?;
        let current = self.read_task(&read, &req.id, false)?;
        if req.validate_only {
            progress.outcome = Some(audit::Outcome::Validated);
            let task = SecurityConfigurationTask { status, ..current };
            return Ok((task, read.request_id));
        }
        let w = Write {
            id,
            body: Bytes::from(body),
            asked: &req.id,
            kind: Kind::Status {
                member,
                was: status_of(&read.body),
            },
        };
        self.write(ctx, &w, progress).await
    }
}
