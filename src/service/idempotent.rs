//! What the mutating calls share about `request_id` (AIP-155): reading it,
//! the request's fingerprint, which answers the store keeps, and how a
//! kept answer is given again. The store itself is
//! [`crate::idempotency`]; this is its edge with the service's types.

use super::mutation::MutatingRequest;
use crate::audit::Outcome;
use crate::graph::GraphError;
use crate::idempotency::{Answer, Audited, Fingerprint, Remembered};
use crate::status::CallError;
use crate::translate::{InvalidRequest, ResponseError};
use bytes::Bytes;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Response, Status};
use uuid::Uuid;

/// The metadata a replayed answer carries.
pub const REPLAY_HEADER: &str = "idempotent-replay";

/// The request's fingerprint, without its `request_id` (the key holds it,
/// parsed, so two spellings of one UUID are one request).
pub fn fingerprint<R: MutatingRequest>(request: &R) -> Fingerprint {
    Fingerprint::of(&request.without_request_id())
}

/// The request's `request_id`: none when empty, else it must be a UUID.
pub fn request_id(raw: &str) -> Result<Option<Uuid>, InvalidRequest> {
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::try_parse(raw).map(Some).map_err(|_| {
        InvalidRequest::single(
            "request_id",
            "must be a UUID (such as 5d630f12-0f12-4d63-920f-635d120f635d), or empty",
        )
    })
}

/// Whether a call's answer is kept for its retries: when Graph took the
/// request or may have (`outcome` applied or unknown), and when Graph
/// refused it for good. Not when nothing happened and the same call could
/// succeed later (throttled, unavailable, overloaded, no token, the deadline
/// before sending, a request the gateway refused): then a retry runs again.
pub fn worth_remembering(outcome: Outcome, error: Option<&CallError>) -> bool {
    match (outcome, error) {
        (_, None) | (Outcome::Applied | Outcome::Unknown, _) => true,
        (Outcome::NotApplied | Outcome::Validated, Some(e)) => is_definitive_refusal(e),
    }
}

/// Graph said no, and would say it again: the task does not exist, is of
/// another type, or Graph rejected the request (a 4xx other than 401, 408
/// and 429, which a retry may get past).
fn is_definitive_refusal(e: &CallError) -> bool {
    match e {
        CallError::Graph(GraphError::Status(f)) => {
            (400..500).contains(&f.status) && !matches!(f.status, 401 | 408 | 429)
        }
        CallError::Answer {
            error: ResponseError::NotSecurityTask { .. },
            ..
        } => true,
        _ => false,
    }
}

/// The answer as the store keeps it: the message encoded, or the status;
/// and the audit record's outcome and task.
pub fn to_remember<T: prost::Message>(
    answer: &Result<Response<T>, Status>,
    outcome: Outcome,
    audited: Audited,
) -> Remembered {
    let answer = match answer {
        Ok(resp) => Ok(Answer {
            message: Bytes::from(resp.get_ref().encode_to_vec()),
            request_id: resp
                .metadata()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        Err(status) => Err(status.clone()),
    };
    Remembered {
        answer,
        outcome,
        audited,
    }
}

/// A kept answer given again, marked `idempotent-replay: true`, with this
/// call's `client-request-id` and the first call's Graph `request-id`.
pub fn replay<T: prost::Message + Default>(
    remembered: Result<Answer, Status>,
    client_request_id: &str,
) -> Result<Response<T>, Status> {
    match remembered {
        Ok(answer) => match T::decode(answer.message) {
            Ok(message) => {
                let mut resp = Response::new(message);
                let md = resp.metadata_mut();
                if let Some(id) = answer.request_id.as_deref() {
                    insert(md, "request-id", id);
                }
                mark(md, client_request_id);
                Ok(resp)
            }
            // The store holds what this process encoded; nothing else can
            // be there, but a caller is told rather than panicked at.
            Err(e) => {
                let mut status =
                    Status::internal(format!("the remembered answer could not be read: {e}"));
                mark(status.metadata_mut(), client_request_id);
                Err(status)
            }
        },
        Err(mut status) => {
            mark(status.metadata_mut(), client_request_id);
            Err(status)
        }
    }
}

fn mark(md: &mut MetadataMap, client_request_id: &str) {
    insert(md, "client-request-id", client_request_id);
    md.insert(REPLAY_HEADER, MetadataValue::from_static("true"));
}

/// A refusal by the store (reused id, store full, the first call still
/// running at the deadline), with this call's `client-request-id`.
pub fn refusal(mut status: Status, client_request_id: &str) -> Status {
    insert(
        status.metadata_mut(),
        "client-request-id",
        client_request_id,
    );
    status
}

fn insert(md: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(v) = MetadataValue::try_from(value) {
        md.insert(key, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphFailure;
    use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
    use tonic::Code;

    #[test]
    fn a_request_id_is_empty_or_a_uuid() {
        assert_eq!(request_id(""), Ok(None));
        let id = Uuid::from_u128(0x5d630f12_0f12_4d63_920f_635d120f635d);
        for spelling in [
            "5d630f12-0f12-4d63-920f-635d120f635d",
            "5D630F12-0F12-4D63-920F-635D120F635D",
            "5d630f120f124d63920f635d120f635d",
        ] {
            assert_eq!(request_id(spelling), Ok(Some(id)), "{spelling}");
        }
        for bad in [
            "x",
            "5d630f12-0f12-4d63-920f",
            " 5d630f12-0f12-4d63-920f-635d120f635d",
        ] {
            let e = request_id(bad).expect_err(bad);
            assert_eq!(e.violations[0].field, "request_id");
        }
    }

    #[test]
    fn the_fingerprint_ignores_the_request_id_and_nothing_else() {
        let update = |name: &str, id: &str| UpdateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(SecurityConfigurationTask {
                display_name: Some(name.into()),
                ..Default::default()
            }),
            request_id: id.into(),
            ..Default::default()
        };
        let a = update("a", "5d630f12-0f12-4d63-920f-635d120f635d");
        assert_eq!(
            fingerprint(&a),
            fingerprint(&update("a", "5D630F12-0F12-4D63-920F-635D120F635D"))
        );
        assert_ne!(fingerprint(&a), fingerprint(&update("b", &a.request_id)));
        let mut dry = a.clone();
        dry.validate_only = true;
        assert_ne!(fingerprint(&a), fingerprint(&dry));
    }

    fn graph(status: u16) -> CallError {
        CallError::Graph(GraphError::Status(Box::new(GraphFailure {
            status,
            code: None,
            message: None,
            request_id: None,
            client_request_id: None,
            date: None,
            retry_after: None,
        })))
    }

    #[test]
    fn answers_where_graph_acted_or_refused_for_good_are_remembered() {
        assert!(worth_remembering(Outcome::Applied, None));
        assert!(worth_remembering(Outcome::Unknown, Some(&graph(500))));
        assert!(worth_remembering(Outcome::Unknown, Some(&graph(429))));
        for definitive in [400, 403, 404, 409] {
            assert!(
                worth_remembering(Outcome::NotApplied, Some(&graph(definitive))),
                "{definitive}"
            );
        }
        for transient in [401, 408, 429, 503] {
            assert!(
                !worth_remembering(Outcome::NotApplied, Some(&graph(transient))),
                "{transient}"
            );
        }
        for nothing_done in [
            CallError::Invalid(InvalidRequest::single("id", "bad")),
            CallError::Graph(GraphError::Throttled(std::time::Duration::from_secs(1))),
            CallError::Graph(GraphError::Connect("refused".into())),
            CallError::Graph(GraphError::Timeout),
        ] {
            assert!(
                !worth_remembering(Outcome::NotApplied, Some(&nothing_done)),
                "{nothing_done:?}"
            );
        }
    }

    #[test]
    fn a_replay_carries_the_first_answer_and_says_it_is_one() {
        let task = SecurityConfigurationTask {
            id: "5d630f12-0f12-5d63-120f-635d120f635d".into(),
            ..Default::default()
        };
        let mut first = Response::new(task.clone());
        first
            .metadata_mut()
            .insert("request-id", MetadataValue::from_static("graph-1"));
        first
            .metadata_mut()
            .insert("client-request-id", MetadataValue::from_static("first"));
        let kept = to_remember(&Ok(first), Outcome::Applied, Audited::default());
        assert_eq!(kept.outcome, Outcome::Applied);
        let again = replay::<SecurityConfigurationTask>(kept.answer, "second").expect("ok");
        assert_eq!(again.get_ref(), &task);
        let md = again.metadata();
        assert_eq!(
            md.get("idempotent-replay").map(|v| v.to_str().ok()),
            Some(Some("true"))
        );
        assert_eq!(
            md.get("request-id").map(|v| v.to_str().ok()),
            Some(Some("graph-1"))
        );
        assert_eq!(
            md.get("client-request-id").map(|v| v.to_str().ok()),
            Some(Some("second"))
        );

        let mut failed = Status::not_found("gone");
        failed
            .metadata_mut()
            .insert("client-request-id", MetadataValue::from_static("first"));
        let again = replay::<SecurityConfigurationTask>(
            to_remember::<SecurityConfigurationTask>(
                &Err(failed),
                Outcome::NotApplied,
                Audited::default(),
            )
            .answer,
            "second",
        )
        .expect_err("the failure");
        assert_eq!(again.code(), Code::NotFound);
        assert_eq!(
            again
                .metadata()
                .get("client-request-id")
                .map(|v| v.to_str().ok()),
            Some(Some("second"))
        );
        assert_eq!(
            again
                .metadata()
                .get("idempotent-replay")
                .map(|v| v.to_str().ok()),
            Some(Some("true"))
        );
    }
}
