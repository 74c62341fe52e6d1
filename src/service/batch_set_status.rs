//! A batch of status changes (not atomic): up to 1,000, each with exactly
//! the rules of a single SetStatus. Every item is checked before anything
//! is sent; then every task is read in one batch (a task of another type,
//! or a missing one, fails that item and nothing is sent for it), and the
//! `updateStatus` actions of the rest go through Graph JSON batching (see
//! `batch_write.rs`). With `validate_only` the read is all that is sent.
//! Notes reach Graph and nowhere else: each record has the note's length.

use super::batch_update::items_for;
use super::batch_write::{per_item, PerItem};
use super::call::Outcome;
use super::record::Progress;
use super::write::{read_item, read_only, status_of, Kind, Write};
use super::TaskService;
use crate::audit;
use crate::graph::CallContext;
use crate::proto::v1::{
    BatchSetSecurityConfigurationTaskStatusRequest,
    BatchSetSecurityConfigurationTaskStatusResponse, SecurityConfigurationTask,
    SetSecurityConfigurationTaskStatusRequest,
};
use crate::translate::{self, ItemFields, StatusChange};
use bytes::Bytes;

super::mutation::mutating_request!(
    batch crate::proto::v1::BatchSetSecurityConfigurationTaskStatusRequest,
    crate::methods::Method::BatchSetStatus,
    |r| r.id.as_str()
);

fn item_fields(r: &SetSecurityConfigurationTaskStatusRequest) -> ItemFields<'_> {
    ItemFields {
        id: &r.id,
        id_field: "id",
        request_id: &r.request_id,
        validate_only: r.validate_only,
    }
}

impl TaskService {
    pub(super) async fn batch_set_status(
        &self,
        ctx: &CallContext,
        req: &BatchSetSecurityConfigurationTaskStatusRequest,
        progress: &mut Progress,
    ) -> Outcome<BatchSetSecurityConfigurationTaskStatusResponse> {
        let changes = translate::batch_items(&req.requests, item_fields, translate::status_change)?;
        let asked: Vec<&str> = req.requests.iter().map(|r| r.id.as_str()).collect();
        let items = items_for(progress, &asked);
        for (item, change) in items.iter_mut().zip(&changes) {
            item.progress.status = Some(change.member);
            item.progress.note_bytes = Some(change.note_bytes);
        }
        let gets: Vec<_> = changes.iter().map(|c| read_item(&c.id)).collect();
        let reads = self.graph.batch(&gets, &read_only(ctx)).await;
        let mut outcomes: Vec<Option<Outcome<SecurityConfigurationTask>>> =
            Vec::with_capacity(changes.len());
        let mut jobs = Vec::new();
        for (i, (change, read)) in changes.into_iter().zip(reads).enumerate() {
            let current = read
                .result
                .map_err(Into::into)
                .and_then(|resp| Ok((self.read_task(&resp, asked[i], false)?, resp)));
            let (current, resp) = match current {
                Ok(current) => current,
                Err(e) => {
                    outcomes.push(Some(Err(e)));
                    continue;
                }
            };
            let StatusChange {
                id,
                status,
                member,
                body,
                ..
            } = change;
            if req.validate_only {
                items[i].progress.outcome = Some(audit::Outcome::Validated);
                let task = SecurityConfigurationTask { status, ..current };
                outcomes.push(Some(Ok((task, resp.request_id))));
                continue;
            }
            outcomes.push(None);
            let w = Write {
                id,
                body: Bytes::from(body),
                asked: asked[i],
                kind: Kind::Status {
                    member,
                    was: status_of(&resp.body),
                },
            };
            jobs.push((i, w));
        }
        if !jobs.is_empty() {
            let written = self.write_all(ctx, &jobs, items).await;
            for ((i, _), outcome) in jobs.iter().zip(written) {
                outcomes[*i] = Some(outcome);
            }
        }
        let outcomes = outcomes
            .into_iter()
            .zip(&asked)
            .map(|(o, asked)| {
                // Every item has an outcome by now; should one not, nothing
                // was learnt of it.
                o.unwrap_or_else(|| {
                    tracing::warn!(task = asked, "a batch item ended without an outcome");
                    Err(crate::status::CallError::Graph(
                        crate::graph::GraphError::Timeout,
                    ))
                })
            })
            .collect();
        let PerItem {
            tasks,
            failed,
            request_id,
        } = per_item(
            &self.metrics,
            crate::methods::Method::BatchSetStatus,
            outcomes,
            &asked,
            items,
        );
        Ok((
            BatchSetSecurityConfigurationTaskStatusResponse {
                security_configuration_tasks: tasks,
                failed_requests: failed,
            },
            request_id,
        ))
    }
}
