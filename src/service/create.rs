//! Creating a task: `POST` on the collection.
//!
//! Graph's POST is not idempotent and takes no client key, so a create is
//! never sent again once it may have reached Graph (the retry layer sends it
//! again only after a 429 or 503, or a connection that provably never carried
//! it; see `graph::stack::Resend`). What each ending means:
//!
//! - Graph answers success with the new task: that is the answer, and the
//!   audit record names the id Graph gave it.
//! - Graph refuses it (4xx, 503), or it never left: not created.
//! - No answer says what happened (a timeout, a connection lost after the
//!   request was written, a 504 or another 5xx): the task may or may not
//!   exist. `UNAVAILABLE`, reason `OUTCOME_UNKNOWN`, with no `RetryInfo`: the
//!   caller must list the tasks to find out, since a blind retry could create
//!   a second one. Audit outcome `unknown`.
//! - Graph answers success but the answer is unusable (cut short, too large,
//!   not a securityConfigurationTask with an id): the task was created, but
//!   its id is unknown here. `INTERNAL`, reason `CREATED_ANSWER_LOST` (not
//!   `UNAVAILABLE`, which invites a retry that would create it again). Audit
//!   outcome `applied`.

use super::call::Outcome;
use super::record::Progress;
use super::TaskService;
use crate::audit;
use crate::graph::{CallContext, GraphError, GraphResponse};
use crate::proto::v1::{CreateSecurityConfigurationTaskRequest, SecurityConfigurationTask};
use crate::status::{CallError, WriteLost};
use crate::translate::{self, create::as_sent, CreateRequest};

super::mutation::mutating_request!(
    crate::proto::v1::CreateSecurityConfigurationTaskRequest,
    crate::methods::Method::Create,
    |_r| ""
);

impl TaskService {
    pub(super) async fn create(
        &self,
        ctx: &CallContext,
        req: &CreateSecurityConfigurationTaskRequest,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        let CreateRequest { body, fields } = translate::create_request(req)?;
        progress.fields = fields
            .iter()
            .map(|f| f.proto_name())
            .collect::<Vec<_>>()
            .join(",");
        if req.validate_only {
            progress.outcome = Some(audit::Outcome::Validated);
            let task = req
                .security_configuration_task
                .as_ref()
                .map(as_sent)
                .unwrap_or_default();
            return Ok((task, None));
        }
        match self.graph.create_task(body, ctx).await {
            Ok(resp) => self.created(&resp, progress),
            Err(e) => Err(self.not_created(e, ctx, progress)),
        }
    }

    /// Graph answered success: the task exists, whatever its answer holds.
    fn created(
        &self,
        resp: &GraphResponse,
        progress: &mut Progress,
    ) -> Outcome<SecurityConfigurationTask> {
        progress.outcome = Some(audit::Outcome::Applied);
        let decoded = translate::created_task(&resp.body).map_err(|error| {
            tracing::warn!(%error, status = resp.status, "Graph created a task, but its answer cannot be read");
            CallError::WriteLost(WriteLost::CreatedAnswerLost {
                request_id: resp.request_id.clone(),
                answer: Box::new(CallError::Answer {
                    error,
                    request_id: resp.request_id.clone(),
                    applied: true,
                }),
            })
        })?;
        self.count_unknown(&decoded.unknown_enum_values);
        progress.task_id = Some(decoded.task.id.clone());
        Ok((decoded.task, resp.request_id.clone()))
    }

    /// A failed POST: what it did at Graph decides what the caller is told.
    fn not_created(&self, e: GraphError, ctx: &CallContext, progress: &mut Progress) -> CallError {
        let outcome = outcome_of(&e, ctx.sent.may_have_reached_graph());
        progress.outcome = Some(outcome);
        match outcome {
            audit::Outcome::Unknown => {
                tracing::warn!(error = %e, "no answer to a create that may have reached Graph; not sent again");
                CallError::WriteLost(WriteLost::CreateUnknown {
                    write: Box::new(CallError::Graph(e)),
                })
            }
            audit::Outcome::Applied => {
                tracing::warn!(error = %e, "Graph created a task, but its answer was lost");
                let request_id = match &e {
                    GraphError::AnswerTooLarge(a) => a.request_id.clone(),
                    _ => None,
                };
                CallError::WriteLost(WriteLost::CreatedAnswerLost {
                    request_id,
                    answer: Box::new(CallError::Graph(e)),
                })
            }
            _ => CallError::Graph(e),
        }
    }
}

/// What a failed POST did at Graph. `sent`: an attempt may have reached it.
fn outcome_of(e: &GraphError, sent: bool) -> audit::Outcome {
    match e {
        // A success whose body broke off or was too large: Graph created it.
        GraphError::Body(_) => audit::Outcome::Applied,
        GraphError::AnswerTooLarge(a) if (200..300).contains(&a.status) => audit::Outcome::Applied,
        _ if !sent => audit::Outcome::NotApplied,
        // Graph's refusals, and 503 (Graph did not take it). Other 5xx come
        // from Graph, or from something in front of it, mid-way.
        GraphError::Status(f) if f.status < 500 || f.status == 503 => audit::Outcome::NotApplied,
        GraphError::Status(_) | GraphError::Timeout | GraphError::Lost(_) => {
            audit::Outcome::Unknown
        }
        GraphError::AnswerTooLarge(_) => audit::Outcome::Unknown,
        GraphError::Connect(_)
        | GraphError::Overloaded(_)
        | GraphError::Throttled(_)
        | GraphError::BudgetExhausted(_)
        | GraphError::Token(_) => audit::Outcome::NotApplied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{AnswerTooLarge, GraphFailure};
    use audit::Outcome::{Applied, NotApplied, Unknown};

    fn status(code: u16) -> GraphError {
        GraphError::Status(Box::new(GraphFailure {
            status: code,
            code: None,
            message: None,
            request_id: None,
            client_request_id: None,
            date: None,
            retry_after: None,
        }))
    }

    #[test]
    fn a_create_is_unknown_only_when_it_may_have_reached_graph_unanswered() {
        for (e, want) in [
            (GraphError::Timeout, Unknown),
            (GraphError::Lost("reset".into()), Unknown),
            (status(504), Unknown),
            (status(500), Unknown),
            (status(502), Unknown),
            (status(503), NotApplied),
            (status(429), NotApplied),
            (status(400), NotApplied),
            (status(409), NotApplied),
            (GraphError::Connect("refused".into()), NotApplied),
            (GraphError::Body("cut".into()), Applied),
            (
                GraphError::AnswerTooLarge(AnswerTooLarge {
                    status: 201,
                    limit: 1,
                    request_id: None,
                }),
                Applied,
            ),
        ] {
            let shown = e.to_string();
            assert_eq!(outcome_of(&e, true), want, "{shown}");
        }
        // Nothing left: a deadline that passed while queued is no unknown.
        assert_eq!(outcome_of(&GraphError::Timeout, false), NotApplied);
    }
}
