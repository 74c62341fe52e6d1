//! A batch update (AIP-234, not atomic): up to 1,000 updates, each with
//! exactly the rules of a single Update (its translation, its mask, its
//! read-backs), sent through Graph JSON batching (see `batch_write.rs`).
//! Every item is checked before anything is sent; with `validate_only` the
//! tasks are read in one batch and each answer is the task with its change
//! applied, nothing written.

use super::batch_write::{per_item, PerItem};
use super::call::Outcome;
use super::record::{ItemProgress, Progress};
use super::write::{read_item, read_only, Kind, Write};
use super::TaskService;
use crate::audit;
use crate::graph::CallContext;
use crate::proto::v1::{
    BatchUpdateSecurityConfigurationTasksRequest, BatchUpdateSecurityConfigurationTasksResponse,
    UpdateSecurityConfigurationTaskRequest,
};
use crate::translate::{self, ItemFields, PatchRequest};
use bytes::Bytes;

super::mutation::mutating_request!(
    batch crate::proto::v1::BatchUpdateSecurityConfigurationTasksRequest,
    crate::methods::Method::BatchUpdate,
    |r| asked(r)
);

/// The task an update names.
fn asked(r: &UpdateSecurityConfigurationTaskRequest) -> &str {
    r.security_configuration_task
        .as_ref()
        .map_or("", |t| t.id.as_str())
}

fn item_fields(r: &UpdateSecurityConfigurationTaskRequest) -> ItemFields<'_> {
    ItemFields {
        id: asked(r),
        id_field: "security_configuration_task.id",
        request_id: &r.request_id,
        validate_only: r.validate_only,
    }
}

impl TaskService {
    pub(super) async fn batch_update(
        &self,
        ctx: &CallContext,
        req: &BatchUpdateSecurityConfigurationTasksRequest,
        progress: &mut Progress,
    ) -> Outcome<BatchUpdateSecurityConfigurationTasksResponse> {
        let patches = translate::batch_items(&req.requests, item_fields, translate::patch_request)?;
        let asked: Vec<&str> = req.requests.iter().map(asked).collect();
        let items = items_for(progress, &asked);
        for (item, patch) in items.iter_mut().zip(&patches) {
            item.progress.fields = patch
                .fields
                .iter()
                .map(|f| f.proto_name())
                .collect::<Vec<_>>()
                .join(",");
        }
        let outcomes = if req.validate_only {
            self.dry_run(ctx, req, &patches, items).await
        } else {
            let jobs: Vec<(usize, Write<'_>)> = patches
                .into_iter()
                .zip(&asked)
                .enumerate()
                .map(|(i, (PatchRequest { id, body, .. }, asked))| {
                    let w = Write {
                        id,
                        body: Bytes::from(body),
                        asked,
                        kind: Kind::Patch,
                    };
                    (i, w)
                })
                .collect();
            self.write_all(ctx, &jobs, items).await
        };
        let PerItem {
            tasks,
            failed,
            request_id,
        } = per_item(
            &self.metrics,
            crate::methods::Method::BatchUpdate,
            outcomes,
            &asked,
            items,
        );
        Ok((
            BatchUpdateSecurityConfigurationTasksResponse {
                security_configuration_tasks: tasks,
                failed_requests: failed,
            },
            request_id,
        ))
    }

    /// Reads every task in one batch and answers each with its change
    /// applied, as a single dry run would.
    async fn dry_run(
        &self,
        ctx: &CallContext,
        req: &BatchUpdateSecurityConfigurationTasksRequest,
        patches: &[PatchRequest],
        items: &mut [ItemProgress],
    ) -> Vec<Outcome<crate::proto::v1::SecurityConfigurationTask>> {
        let gets: Vec<_> = patches.iter().map(|p| read_item(&p.id)).collect();
        let answers = self.graph.batch(&gets, &read_only(ctx)).await;
        answers
            .into_iter()
            .zip(patches.iter().zip(&req.requests))
            .zip(items.iter_mut())
            .map(|((answer, (patch, r)), item)| {
                let read = answer.result?;
                let current = self.read_task(&read, asked(r), false)?;
                let task = match r.security_configuration_task.as_ref() {
                    Some(change) => translate::apply_change(&current, change, patch.fields),
                    None => current,
                };
                item.progress.outcome = Some(audit::Outcome::Validated);
                Ok((task, read.request_id))
            })
            .collect()
    }
}

/// The items' records, one per request (the audit armed them from the
/// request; a call that got this far has at most the limit of them).
pub(super) fn items_for<'p>(progress: &'p mut Progress, asked: &[&str]) -> &'p mut [ItemProgress] {
    if progress.items.len() != asked.len() {
        progress.items = asked
            .iter()
            .map(|id| ItemProgress {
                task_id: (*id).to_owned(),
                ..ItemProgress::default()
            })
            .collect();
    }
    &mut progress.items
}
