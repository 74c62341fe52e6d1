//! The audit record of one update, written exactly once: when the call
//! finishes, or, if the call is dropped first (the caller reset the stream,
//! the connection was lost, the drain ran out), when it is dropped. tonic
//! drops the handler's future then, and nothing after the await point runs;
//! only a `Drop` still does.

use crate::audit::{self, Outcome};
use crate::graph::{CallContext, Sent};
use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
use crate::security::access::Admitted;
use crate::security::identity::PeerInfo;
use crate::translate;
use tonic::{Code, Request, Response, Status};

/// What an update has learnt so far, filled in by the service as it goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Proto names of the fields sent, comma-separated.
    pub fields: String,
    /// The outcome once known; until then it follows from whether a request
    /// may have reached Graph.
    pub outcome: Option<Outcome>,
    /// How the outcome was confirmed, other than by Graph's answer.
    pub confirmed_by: Option<&'static str>,
    /// Whether the PATCH was sent again after a read-back.
    pub resent: bool,
}

/// An update's record, armed until written.
pub struct UpdateAudit {
    rpc: &'static str,
    caller: String,
    via: &'static str,
    peer: String,
    task_id: String,
    client_request_id: String,
    sent: Sent,
    pub progress: Progress,
    written: bool,
}

impl UpdateAudit {
    /// Arms the record for `request`, before any work is done.
    pub fn start(
        rpc: &'static str,
        request: &Request<UpdateSecurityConfigurationTaskRequest>,
        ctx: &CallContext,
    ) -> Self {
        let admitted = request.extensions().get::<Admitted>();
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_default();
        let task_id = request
            .get_ref()
            .security_configuration_task
            .as_ref()
            .map_or("", |t| t.id.as_str());
        Self {
            rpc,
            caller: admitted.map_or("anonymous", |a| &a.caller).to_owned(),
            via: admitted.map_or("none", |a| a.via),
            peer,
            // Ids longer than any valid one were refused; the record keeps a bounded prefix.
            task_id: truncate(task_id, translate::MAX_ID_BYTES).to_owned(),
            client_request_id: ctx.client_request_id.clone(),
            sent: ctx.sent.clone(),
            progress: Progress::default(),
            written: false,
        }
    }

    /// Writes the record for the answer the caller gets.
    pub fn finish(mut self, answer: &Result<Response<SecurityConfigurationTask>, Status>) {
        let (code, metadata) = match answer {
            Ok(resp) => (Code::Ok, resp.metadata()),
            Err(status) => (status.code(), status.metadata()),
        };
        let graph_request_id = metadata
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        self.write(code, graph_request_id);
    }

    /// The outcome as known: what the service found out, else whether a
    /// request may have reached Graph.
    fn outcome(&self) -> Outcome {
        self.progress
            .outcome
            .unwrap_or(if self.sent.may_have_reached_graph() {
                Outcome::Unknown
            } else {
                Outcome::NotApplied
            })
    }

    fn write(&mut self, code: Code, graph_request_id: &str) {
        self.written = true;
        audit::update(&audit::UpdateRecord {
            rpc: self.rpc,
            caller: &self.caller,
            via: self.via,
            peer: &self.peer,
            task_id: &self.task_id,
            fields: &self.progress.fields,
            outcome: self.outcome(),
            confirmed_by: self.progress.confirmed_by,
            resent: self.progress.resent,
            code,
            graph_request_id,
            client_request_id: &self.client_request_id,
        });
    }
}

impl Drop for UpdateAudit {
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
