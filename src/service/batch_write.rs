//! What the batch writes (BatchUpdate, BatchSetStatus) share: running many
//! [`Write`]s through Graph JSON batching, and answering per item.
//!
//! Each write takes the single write's steps (`write.rs`): sent, then, as
//! its answer says, read back (a `204`, a body cut short), confirmed by a
//! read (no answer), sent once more (the read does not show it). A step's
//! requests for all the items that need it go as one
//! [`GraphClient::batch`](crate::graph::GraphClient::batch): the writes,
//! then the reads, then the writes sent again, then their reads, so a
//! batch of any size makes at most four rounds of Graph batches, and an
//! item is judged by exactly the rules a call of its own would be.
//!
//! Graph cannot apply a batch atomically, so the call answers OK with each
//! item's outcome: its task, or its status in `failed_requests` under its
//! index, with the details a call for it alone would have had. Each item's
//! audit record carries its own code, outcome and Graph `request-id`.

use super::call::Outcome;
use super::record::ItemProgress;
use super::write::{may_have_run, read_back_span, Next, Write};
use super::TaskService;
use crate::graph::batch::Item;
use crate::graph::{CallContext, GraphError};
use crate::methods::Method;
use crate::metrics::Metrics;
use crate::proto::v1::SecurityConfigurationTask;
use crate::status::CallError;
use prost::Message;
use std::collections::HashMap;
use tonic::Code;
use tracing::Instrument;

/// A batch's answer: the task of every item that succeeded, in request
/// order (an empty task where the item failed), the failed items' statuses
/// by index, and a Graph `request-id` for the call's metadata.
pub(super) struct PerItem {
    pub tasks: Vec<SecurityConfigurationTask>,
    pub failed: HashMap<i32, tonic_types::Status>,
    pub request_id: Option<String>,
}

impl TaskService {
    /// Runs each write of `jobs` (the item's index, its write) to its end;
    /// answers each job's outcome, in order. Each item's progress is
    /// `items[index]`.
    pub(super) async fn write_all(
        &self,
        ctx: &CallContext,
        jobs: &[(usize, Write<'_>)],
        items: &mut [ItemProgress],
    ) -> Vec<Outcome<SecurityConfigurationTask>> {
        let sends: Vec<Item> = jobs.iter().map(|(_, w)| w.batch_item()).collect();
        let answers = self.graph.batch(&sends, ctx).await;
        let mut next: Vec<Option<Next>> = jobs
            .iter()
            .zip(answers)
            .map(|((index, w), answer)| {
                let progress = progress_of(items, *index);
                Some(match answer.result {
                    Err(e) if answer.envelope_failed => {
                        self.after_envelope_failed(w, e, answer.sent, progress)
                    }
                    result => self.after_send(w, result, answer.sent, progress),
                })
            })
            .collect();
        loop {
            let resend = waiting(&next, |n| matches!(n, Next::Resend { .. }));
            if !resend.is_empty() {
                let sends: Vec<Item> = resend.iter().map(|&j| jobs[j].1.batch_item()).collect();
                let answers = self.graph.batch(&sends, ctx).await;
                for (&j, answer) in resend.iter().zip(answers) {
                    let (index, w) = &jobs[j];
                    if let Some(Next::Resend { lost }) = next[j].take() {
                        let progress = progress_of(items, *index);
                        // A failed envelope is no answer to the write sent
                        // again: its outcome stays unknown.
                        let result = match answer.result {
                            Err(e) if answer.envelope_failed && may_have_run(&e, answer.sent) => {
                                Err(GraphError::Lost(e.to_string()))
                            }
                            result => result,
                        };
                        next[j] = Some(self.after_resend(w, lost, result, progress));
                    }
                }
                continue;
            }
            let reads = waiting(&next, |n| {
                matches!(n, Next::ReadBack { .. } | Next::Confirm { .. })
            });
            if reads.is_empty() {
                break;
            }
            let gets: Vec<Item> = reads.iter().map(|&j| jobs[j].1.read_item()).collect();
            let answers = self
                .graph
                .batch(&gets, ctx)
                .instrument(read_back_span("batch"))
                .await;
            for (&j, answer) in reads.iter().zip(answers) {
                let (index, w) = &jobs[j];
                next[j] =
                    match next[j].take() {
                        Some(Next::ReadBack { request_id }) => Some(Next::Done(
                            self.after_read_back(w, request_id, answer.result),
                        )),
                        Some(Next::Confirm { lost }) => {
                            let progress = progress_of(items, *index);
                            Some(self.after_confirm_read(w, lost, answer.result, progress))
                        }
                        other => other,
                    };
            }
        }
        next.into_iter()
            .zip(jobs)
            .map(|(n, (_, w))| match n {
                Some(Next::Done(outcome)) => outcome,
                // The loop ends only when every write is done; should one
                // not be, its outcome is not known.
                _ => Err(CallError::OutcomeUnknown {
                    task_id: w.asked.to_owned(),
                    write: Box::new(CallError::Graph(GraphError::Timeout)),
                    after: crate::status::Unconfirmed::NotResent,
                }),
            })
            .collect()
    }
}

/// The progress of item `index`; a stray index gets a scratch one rather
/// than a panic.
fn progress_of(items: &mut [ItemProgress], index: usize) -> &mut super::record::Progress {
    &mut items[index.min(items.len().saturating_sub(1))].progress
}

/// The jobs whose next step is `wanted`.
fn waiting(next: &[Option<Next>], wanted: impl Fn(&Next) -> bool) -> Vec<usize> {
    next.iter()
        .enumerate()
        .filter(|(_, n)| n.as_ref().is_some_and(&wanted))
        .map(|(j, _)| j)
        .collect()
}

/// Every item's outcome (in request order, `asked` the ids the items name)
/// as the batch's answer, each item's code and Graph `request-id` recorded
/// for its audit record, and counted in `graph_gateway_grpc_batch_items_total`.
pub(super) fn per_item(
    metrics: &Metrics,
    method: Method,
    outcomes: Vec<Outcome<SecurityConfigurationTask>>,
    asked: &[&str],
    items: &mut [ItemProgress],
) -> PerItem {
    let mut answer = PerItem {
        tasks: Vec::with_capacity(outcomes.len()),
        failed: HashMap::new(),
        request_id: None,
    };
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let (code, request_id) = match outcome {
            Ok((task, request_id)) => {
                answer.tasks.push(task);
                (Code::Ok, request_id)
            }
            Err(error) => {
                let request_id = error.request_id().map(str::to_owned);
                let error = CallError::Item {
                    field: "requests",
                    index,
                    id: asked.get(index).copied().unwrap_or_default().to_owned(),
                    error: Box::new(error),
                };
                let status = rpc_status(&error);
                let code = Code::from_i32(status.code);
                answer.tasks.push(SecurityConfigurationTask::default());
                answer
                    .failed
                    .insert(i32::try_from(index).unwrap_or(i32::MAX), status);
                (code, request_id)
            }
        };
        metrics.batch_item(method.name(), code);
        if let Some(item) = items.get_mut(index) {
            item.answered = Some((code, request_id.clone().unwrap_or_default()));
        }
        answer.request_id = answer.request_id.or(request_id);
    }
    answer
}

/// `error` as the `google.rpc.Status` a call for the item alone would have
/// carried in its `grpc-status-details-bin`: code, message and details.
fn rpc_status(error: &CallError) -> tonic_types::Status {
    let status = error.to_status();
    match tonic_types::Status::decode(status.details()) {
        // The message names the item; the details are the call's own.
        Ok(rpc) if !status.details().is_empty() => tonic_types::Status {
            message: status.message().to_owned(),
            ..rpc
        },
        _ => tonic_types::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Vec::new(),
        },
    }
}
