//! One path for every mutating call (Create, Update, Delete, SetStatus):
//! the call's bookkeeping (ids, deadline, metrics, log line), its one audit
//! record (armed before any work, written even if the call is dropped), and
//! stopping when the drain ends, and safe retries: a call with a
//! `request_id` runs at most once (see [`crate::idempotency`]). A handler
//! only does its operation's work and says what it learnt in [`Progress`].

use super::abandon::Running;
use super::call::{Call, Outcome};
use super::idempotent;
use super::record::{Audit, Progress};
use super::TaskService;
use crate::audit;
use crate::graph::{CallContext, Sent};
use crate::idempotency::{Audited, AuditedItem, Begin, Key, Lease, Remembered};
use crate::methods::Method;
use crate::security::access::Admitted;
use crate::status;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

/// What the shared path needs to know of a mutating request.
pub trait MutatingRequest: prost::Message + Default + Send + Sync + 'static {
    /// The RPC it is the request of.
    const METHOD: Method;
    /// The task it names; empty when it names none (Create).
    fn task_id(&self) -> &str;
    /// The caller's AIP-155 `request_id`; empty when not given.
    fn request_id(&self) -> &str;
    /// AIP-163: check everything, change nothing.
    fn validate_only(&self) -> bool;
    /// The request with its `request_id` cleared: what its fingerprint is
    /// taken of.
    fn without_request_id(&self) -> Self;
    /// A batch's items, by the task each names, in order: each gets an
    /// audit record of its own. Empty for a call on one task.
    fn item_task_ids(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Implements [`MutatingRequest`] for a request message with `request_id`
/// and `validate_only` fields; `$task` reads the task id it names. For a
/// batch (`batch` first), `$task` reads the task id of one of its
/// `requests`. Each operation's file invokes it for its request.
macro_rules! mutating_request {
    (batch $request:ty, $method:expr, |$item:ident| $task:expr) => {
        $crate::service::mutation::mutating_request!(@impl $request, $method, |_r| "", {
            fn item_task_ids(&self) -> Vec<&str> {
                self.requests.iter().map(|$item| $task).collect()
            }
        });
    };
    ($request:ty, $method:expr, |$r:ident| $task:expr) => {
        $crate::service::mutation::mutating_request!(@impl $request, $method, |$r| $task, {});
    };
    (@impl $request:ty, $method:expr, |$r:ident| $task:expr, { $($extra:tt)* }) => {
        impl $crate::service::mutation::MutatingRequest for $request {
            const METHOD: $crate::methods::Method = $method;
            fn task_id(&self) -> &str {
                let $r = self;
                $task
            }
            fn request_id(&self) -> &str {
                &self.request_id
            }
            fn validate_only(&self) -> bool {
                self.validate_only
            }
            fn without_request_id(&self) -> Self {
                Self {
                    request_id: String::new(),
                    ..self.clone()
                }
            }
            $($extra)*
        }
    };
}
pub(super) use mutating_request;

/// A handler's work, borrowing the service, the call and its record.
pub type Work<'a, T> = Pin<Box<dyn Future<Output = Outcome<T>> + Send + 'a>>;

impl TaskService {
    /// Runs one mutating call: `work` is the operation's handler.
    pub(super) async fn mutate<R, T, F>(
        &self,
        request: Request<R>,
        work: F,
    ) -> Result<Response<T>, Status>
    where
        R: MutatingRequest,
        T: prost::Message + Default,
        F: for<'a> FnOnce(&'a TaskService, &'a CallContext, &'a R, &'a mut Progress) -> Work<'a, T>,
    {
        let call = Call::start(R::METHOD.name(), &request);
        let ctx = call.ctx.clone();
        // Armed before any work: if the call is dropped from here on, the
        // record is still written.
        let mut record = Audit::start(&request, &ctx);
        let mut running: Running = self.updates.start();
        let answer = tokio::select! {
            answer = self.once(call, &request, &mut record, work) => answer,
            () = running.abandoned() => {
                // The record says CANCELLED, with what is known of the outcome.
                drop(record);
                return Err(Status::cancelled(
                    "the gateway stopped before the call finished; read the task to know whether it was changed",
                ));
            }
        };
        record.finish(&answer);
        answer
    }

    /// Runs the call's work at most once per `request_id` (AIP-155): a
    /// repeat of an answered call gets its answer again, a repeat of a
    /// running one waits for it, another request under the same id is
    /// refused. Without a `request_id`, and for dry runs, the work just runs.
    async fn once<R, T, F>(
        &self,
        mut call: Call,
        request: &Request<R>,
        record: &mut Audit,
        work: F,
    ) -> Result<Response<T>, Status>
    where
        R: MutatingRequest,
        T: prost::Message + Default,
        F: for<'a> FnOnce(&'a TaskService, &'a CallContext, &'a R, &'a mut Progress) -> Work<'a, T>,
    {
        let ctx = call.ctx.clone();
        let req = request.get_ref();
        let request_id = match call
            .check_metadata()
            .and_then(|()| Ok(idempotent::request_id(req.request_id())?))
        {
            Ok(id) => id,
            Err(refused) => return call.finish(&self.metrics, Err(refused)),
        };
        let Some(request_id) = request_id.filter(|_| !req.validate_only()) else {
            let outcome = work(self, &ctx, req, &mut record.progress)
                .instrument(call.span())
                .await;
            return call.finish(&self.metrics, outcome);
        };
        let rpc = R::METHOD.name();
        let key = Key {
            caller: request
                .extensions()
                .get::<Admitted>()
                .map_or_else(|| Arc::from("anonymous"), |a| a.caller.clone()),
            method: R::METHOD,
            request_id,
        };
        let begin = self.idempotency.begin(key, idempotent::fingerprint(req));
        // A duplicate waits for the first call no longer than its own deadline.
        let begun = match ctx.deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, begin).await.ok(),
            None => Some(begin.await),
        };
        let client_request_id = ctx.client_request_id.as_str();
        let lease = match begun {
            Some(Begin::Lead(lease)) => lease,
            Some(Begin::Replay(remembered)) => {
                record.progress.replay = true;
                record.progress.outcome = Some(remembered.outcome);
                let audited = remembered.audited;
                record.progress.task_id = audited.task_id;
                record.progress.fields = audited.fields;
                record.progress.status = audited.status;
                record.progress.note_bytes = audited.note_bytes;
                // A batch's items say what each did the first time.
                for (item, first) in record.progress.items.iter_mut().zip(&audited.items) {
                    item.progress.outcome = Some(first.outcome);
                    item.answered = Some((first.code, String::new()));
                }
                self.metrics.idempotent_replay(rpc);
                let answer = idempotent::replay(remembered.answer, client_request_id);
                return call.finish_answered(&self.metrics, answer);
            }
            Some(Begin::Reused) => {
                let refused =
                    idempotent::refusal(status::request_id_reused(rpc), client_request_id);
                return call.finish_answered(&self.metrics, Err(refused));
            }
            Some(Begin::Full) => {
                let refused = idempotent::refusal(
                    status::request_id_store_full(self.idempotency.max_entries()),
                    client_request_id,
                );
                return call.finish_answered(&self.metrics, Err(refused));
            }
            Some(Begin::InProgress) | None => {
                let refused =
                    idempotent::refusal(status::request_id_in_progress(rpc), client_request_id);
                return call.finish_answered(&self.metrics, Err(refused));
            }
        };
        // Held until the work is over; dropped with the call, it remembers
        // an unknown outcome if a request may have reached Graph.
        let leading = Leading {
            lease: Some(lease),
            sent: ctx.sent.clone(),
            rpc,
        };
        let outcome = work(self, &ctx, req, &mut record.progress)
            .instrument(call.span())
            .await;
        let done = record.outcome();
        let keep = idempotent::worth_remembering(done, outcome.as_ref().err());
        let answer = call.finish(&self.metrics, outcome);
        leading.finish(keep.then(|| {
            let p = &record.progress;
            let audited = Audited {
                task_id: p.task_id.clone(),
                fields: p.fields.clone(),
                status: p.status,
                note_bytes: p.note_bytes,
                items: p
                    .items
                    .iter()
                    .map(|item| AuditedItem {
                        outcome: item.progress.outcome.unwrap_or(done),
                        code: item.answered.as_ref().map_or(Code::Ok, |(code, _)| *code),
                    })
                    .collect(),
            };
            idempotent::to_remember(&answer, done, audited)
        }));
        answer
    }
}

/// The leader's hold on its `request_id`, for as long as its work runs.
struct Leading {
    lease: Option<Lease>,
    sent: Sent,
    rpc: &'static str,
}

impl Leading {
    /// Remembers `answer`, or, with none, lets a retry run the call again.
    fn finish(mut self, answer: Option<Remembered>) {
        if let Some(lease) = self.lease.take() {
            match answer {
                Some(answer) => lease.remember(answer),
                None => lease.forget(),
            }
        }
    }
}

impl Drop for Leading {
    /// The call was dropped before it finished (the caller went away, the
    /// drain ran out). If a request may have reached Graph, a retry must
    /// not send it again: it is told the outcome is unknown. Otherwise
    /// nothing happened, and a retry (or a waiting duplicate) runs.
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            if self.sent.may_have_reached_graph() {
                lease.remember(Remembered {
                    answer: Err(status::first_call_outcome_unknown(self.rpc)),
                    outcome: audit::Outcome::Unknown,
                    audited: Audited::default(),
                });
            }
        }
    }
}
