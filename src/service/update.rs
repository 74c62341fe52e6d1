//! An update: the PATCH built by translation, sent as a [`Write`] (see
//! `write.rs` for what a lost answer, a 204 and a failed read-back make of
//! it). With `validate_only` (AIP-163) the request is validated in full, the
//! task is read once (a task of another type is `FAILED_PRECONDITION`, a
//! missing one `NOT_FOUND`) and the answer is that task with the change
//! applied; nothing is written.

use super::call::Outcome;
use super::record::Progress;
use super::write::{read_only, Kind, Write};
use super::TaskService;
use crate::audit;
use crate::graph::CallContext;
use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
use crate::translate::{self, PatchRequest};
use bytes::Bytes;

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
        let change = req.security_configuration_task.as_ref();
        let asked = change.map_or("", |t| t.id.as_str());
        if req.validate_only {
            let read = self.graph.get_task(&id, &read_only(ctx)).await?;
            let current = self.read_task(&read, asked, false)?;
            let task = match change {
                Some(change) => translate::apply_change(&current, change, fields),
                None => current,
            };
            progress.outcome = Some(audit::Outcome::Validated);
            return Ok((task, read.request_id));
        }
        let w = Write {
            id,
            body: Bytes::from(body),
            asked,
            kind: Kind::Patch,
        };
        self.write(ctx, &w, progress).await
    }
}
