//! An update: the PATCH built by translation, sent as a [`Write`] (see
//! `write.rs` for what a lost answer, a 204 and a failed read-back make of
//! it).

use super::call::Outcome;
use super::record::Progress;
use super::write::{Kind, Write};
use super::TaskService;
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
        let w = Write {
            id,
            body: Bytes::from(body),
            asked: req
                .security_configuration_task
                .as_ref()
                .map_or("", |t| t.id.as_str()),
            kind: Kind::Patch,
        };
        self.write(ctx, &w, progress).await
    }
}
