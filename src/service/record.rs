//! The audit record of one mutating call, written exactly once: when the
//! call finishes, or, if the call is dropped first (the caller reset the
//! stream, the connection was lost, the drain ran out), when it is dropped.
//! tonic drops the handler's future then, and nothing after the await point
//! runs; only a `Drop` still does. Every mutating RPC goes through the same
//! guard (see `mutation`); no handler writes a record of its own.

use super::mutation::MutatingRequest;
use crate::audit::{self, Outcome};
use crate::graph::{CallContext, Sent};
use crate::methods::Method;
use crate::security::access::Admitted;
use crate::security::identity::PeerInfo;
use crate::translate;
use tonic::{Code, Request, Response, Status};

/// What a mutating call has learnt so far, filled in by its handler as it
/// goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// The task acted on, when the request does not name it (Create: the id
    /// Graph gave the new task).
    pub task_id: Option<String>,
    /// Proto names of the fields sent, comma-separated.
    pub fields: String,
    /// The Graph status member set (SetStatus).
    pub status: Option<&'static str>,
    /// The note's length in bytes (SetStatus); its text is never recorded.
    pub note_bytes: Option<usize>,
    /// The outcome once known; until then it follows from whether a request
    /// may have reached Graph.
    pub outcome: Option<Outcome>,
    /// How the outcome was confirmed, other than by Graph's answer.
    pub confirmed_by: Option<&'static str>,
    /// Whether the write was sent again after a read-back.
    pub resent: bool,
    /// The answer is a replay of an earlier call with the same `request_id`.
    pub replay: bool,
    /// A batch call's items, each with a record of its own (empty for a
    /// call on one task).
    pub items: Vec<ItemProgress>,
}

/// One item of a batch call: what it has learnt, and its own answer.
#[derive(Debug, Default)]
pub struct ItemProgress {
    /// The task the item names (a bounded prefix of it).
    pub task_id: String,
    pub progress: Progress,
    /// The item's code and Graph's `request-id` for it, once answered.
    pub answered: Option<(Code, String)>,
}

/// A mutating call's record, armed until written.
pub struct Audit {
    method: Method,
    caller: String,
    via: &'static str,
    peer: String,
    task_id: String,
    client_request_id: String,
    request_id: String,
    /// A dry run sends reads only, so what it sent changed nothing.
    validate_only: bool,
    sent: Sent,
    pub progress: Progress,
    written: bool,
}

impl Audit {
    /// Arms the record for `request`, before any work is done.
    pub fn start<R: MutatingRequest>(request: &Request<R>, ctx: &CallContext) -> Self {
        let admitted = request.extensions().get::<Admitted>();
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let req = request.get_ref();
        let items = req.item_task_ids();
        // A batch that is too large is refused whole, as one record.
        let items = if items.len() <= translate::MAX_BATCH_IDS {
            items
                .into_iter()
                .map(|id| ItemProgress {
                    task_id: truncate(id, translate::MAX_ID_BYTES).to_owned(),
                    ..ItemProgress::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            method: R::METHOD,
            caller: admitted.map_or("anonymous", |a| &a.caller).to_owned(),
            via: admitted.map_or("none", |a| a.via),
            peer,
            // Ids longer than any valid one are refused; the record keeps a bounded prefix.
            task_id: truncate(req.task_id(), translate::MAX_ID_BYTES).to_owned(),
            client_request_id: ctx.client_request_id.clone(),
            request_id: truncate(req.request_id(), translate::MAX_ID_BYTES).to_owned(),
            validate_only: req.validate_only(),
            sent: ctx.sent.clone(),
            progress: Progress {
                items,
                ..Progress::default()
            },
            written: false,
        }
    }

    /// Writes the record for the answer the caller gets.
    pub fn finish<T>(mut self, answer: &Result<Response<T>, Status>) {
        let (code, metadata) = match answer {
            Ok(resp) => (Code::Ok, resp.metadata()),
            Err(status) => (status.code(), status.metadata()),
        };
        let graph_request_id = metadata
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.write(code, &graph_request_id);
    }

    /// The outcome as known: what the service found out, else whether a
    /// write may have reached Graph.
    pub fn outcome(&self) -> Outcome {
        self.progress.outcome.unwrap_or(
            if !self.validate_only && self.sent.may_have_reached_graph() {
                Outcome::Unknown
            } else {
                Outcome::NotApplied
            },
        )
    }

    fn write(&mut self, code: Code, graph_request_id: &str) {
        self.written = true;
        if self.progress.items.is_empty() {
            let task_id = self.progress.task_id.as_deref().unwrap_or(&self.task_id);
            self.record(
                task_id,
                &self.progress,
                self.outcome(),
                code,
                graph_request_id,
            );
            return;
        }
        let fallback = self.outcome();
        for item in &self.progress.items {
            // A call that was dropped, or failed whole, answered every
            // item with its own code.
            let (code, graph_request_id) = match &item.answered {
                Some((own, id)) if code != Code::Cancelled => (*own, id.as_str()),
                _ => (code, graph_request_id),
            };
            let outcome = item.progress.outcome.unwrap_or(fallback);
            self.record(
                &item.task_id,
                &item.progress,
                outcome,
                code,
                graph_request_id,
            );
        }
    }

    fn record(
        &self,
        task_id: &str,
        progress: &Progress,
        outcome: Outcome,
        code: Code,
        graph_request_id: &str,
    ) {
        audit::write(&audit::Record {
            rpc: self.method.name(),
            caller: &self.caller,
            via: self.via,
            peer: &self.peer,
            task_id,
            fields: &progress.fields,
            status: progress.status,
            note_bytes: progress.note_bytes,
            outcome,
            confirmed_by: progress.confirmed_by,
            resent: progress.resent,
            code,
            graph_request_id,
            client_request_id: &self.client_request_id,
            request_id: &self.request_id,
            replay: self.progress.replay,
        });
    }
}

impl Drop for Audit {
    /// The call was dropped before it finished: the caller is gone, and the
    /// record says so (`CANCELLED`) with what is known of the outcome.
    fn drop(&mut self) {
        if !self.written {
            self.write(Code::Cancelled, "");
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
