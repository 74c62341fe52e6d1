//! CreateSecurityConfigurationTask end to end: a tonic client over loopback,
//! the gateway, and the emulator, whose journal shows what reached Graph and
//! whose store shows what Graph holds.

mod common;

use common::audit_log::AuditLog;
use common::{config, fault, Harness};
use graph_grpc_gateway::config::GraphTarget;
use graph_grpc_gateway::emulator::{seed, Fault};
use graph_grpc_gateway::proto::v1::{
    CreateSecurityConfigurationTaskRequest, DeviceAppManagementTaskPriority as Priority,
    DeviceAppManagementTaskStatus as Status, KeyValuePair, SecurityConfigurationTask,
};
use prost_types::Timestamp;
use serde_json::{json, Value};
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

const RPC: &str = "CreateSecurityConfigurationTask";
const SECURITY_TASK: &str = "#microsoft.graph.securityConfigurationTask";

fn new_task(name: &str) -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        display_name: Some(name.into()),
        priority: Priority::High as i32,
        status: Status::Pending as i32,
        managed_device_count: Some(3),
        due_date_time: Some(Timestamp {
            seconds: 1_767_225_600,
            nanos: 500_000_000,
        }),
        intended_settings: vec![KeyValuePair {
            name: "bitlocker".into(),
            value: Some("on".into()),
        }],
        ..Default::default()
    }
}

fn create(task: SecurityConfigurationTask) -> CreateSecurityConfigurationTaskRequest {
    CreateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(task),
        ..Default::default()
    }
}

/// The POSTs that reached the emulator.
fn posts(h: &Harness) -> Vec<Value> {
    h.emulator()
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.body.unwrap_or(Value::Null))
        .collect()
}

/// The stored tasks with this display name.
fn stored_named(h: &Harness, name: &str) -> Vec<Value> {
    h.emulator()
        .tasks()
        .into_iter()
        .filter(|t| t["displayName"] == name)
        .collect()
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_create_answers_graphs_new_task_and_graph_holds_it() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let resp = h
        .client
        .create_security_configuration_task(create(new_task("Rotate keys")))
        .await
        .expect("OK");
    let request_id = resp
        .metadata()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("Graph's request-id")
        .to_owned();
    let task = resp.into_inner();
    assert!(uuid::Uuid::parse_str(&task.id).is_ok(), "{}", task.id);
    assert!(task.created_date_time.is_some(), "Graph's createdDateTime");
    assert_eq!(task.display_name.as_deref(), Some("Rotate keys"));
    assert_eq!(task.priority, Priority::High as i32);
    assert_eq!(task.managed_device_count, Some(3));

    let stored = h.emulator().task(&task.id).expect("in Graph's store");
    assert_eq!(stored["@odata.type"], SECURITY_TASK);
    assert_eq!(stored["displayName"], "Rotate keys");
    assert_eq!(stored["dueDateTime"], "2026-01-01T00:00:00.5000000Z");
    assert_eq!(
        h.emulator().tasks().len(),
        seed::ALL_TASK_IDS.len() + 1,
        "exactly one task created"
    );
    assert_eq!(posts(&h).len(), 1);

    let records = audits.of(RPC);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["task_id"], task.id);
    assert_eq!(r["outcome"], "applied");
    assert_eq!(r["code"], "OK");
    assert_eq!(r["graph_request_id"], request_id);
    assert_eq!(
        r["fields"],
        "display_name,due_date_time,priority,status,managed_device_count,intended_settings"
    );
}

#[tokio::test]
async fn id_and_created_date_time_in_the_request_are_not_sent() {
    let mut h = Harness::start().await;
    let mut t = new_task("output only");
    t.id = seed::EXAMPLE_TASK_ID.into();
    t.created_date_time = Some(Timestamp {
        seconds: 1,
        nanos: 0,
    });
    let task = h
        .client
        .create_security_configuration_task(create(t))
        .await
        .expect("OK")
        .into_inner();
    assert_ne!(task.id, seed::EXAMPLE_TASK_ID, "Graph's own id");
    assert_ne!(task.created_date_time.map(|t| t.seconds), Some(1));
    let sent = posts(&h);
    assert_eq!(sent.len(), 1);
    let body = sent[0].as_object().expect("a JSON object");
    assert_eq!(body["@odata.type"], SECURITY_TASK);
    assert!(!body.contains_key("id"), "{body:?}");
    assert!(!body.contains_key("createdDateTime"), "{body:?}");
    // The seeded task the id named is untouched.
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("seeded")["displayName"],
        "Display Name value"
    );
}

#[tokio::test]
async fn unspecified_enums_and_unset_fields_are_left_to_graph() {
    let mut h = Harness::start().await;
    let t = SecurityConfigurationTask {
        display_name: Some("minimal".into()),
        ..Default::default()
    };
    let task = h
        .client
        .create_security_configuration_task(create(t))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(
        posts(&h),
        [json!({"@odata.type": SECURITY_TASK, "displayName": "minimal"})]
    );
    // Graph's defaults come back.
    assert_eq!(task.priority, Priority::None as i32);
}

#[tokio::test]
async fn an_invalid_create_names_each_field_and_sends_nothing() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let mut t = new_task("bad");
    t.managed_device_count = Some(70_000);
    t.status = 99;
    t.due_date_time = Some(Timestamp {
        seconds: 0,
        nanos: 1,
    });
    let status = h
        .client
        .create_security_configuration_task(create(t))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "security_configuration_task.due_date_time",
            "security_configuration_task.status",
            "security_configuration_task.managed_device_count",
        ]
    );
    let missing = h
        .client
        .create_security_configuration_task(CreateSecurityConfigurationTaskRequest::default())
        .await
        .expect_err("refused");
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(
        missing
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations[0]
            .field,
        "security_configuration_task"
    );
    assert!(h.emulator().requests().is_empty(), "nothing reached Graph");
    assert_eq!(h.emulator().tasks().len(), seed::ALL_TASK_IDS.len());
    let records = audits.of(RPC);
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r["outcome"] == "not_applied" && r["code"] == "INVALID_ARGUMENT"));
}

#[tokio::test]
async fn validate_only_answers_the_task_as_it_would_be_sent_and_posts_nothing() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let mut t = new_task("dry run");
    t.id = "ignored".into();
    t.created_date_time = Some(Timestamp {
        seconds: 5,
        nanos: 0,
    });
    let answer = h
        .client
        .create_security_configuration_task(CreateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(t),
            validate_only: true,
            ..Default::default()
        })
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(
        answer,
        SecurityConfigurationTask {
            id: String::new(),
            created_date_time: None,
            ..new_task("dry run")
        }
    );
    assert!(h.emulator().requests().is_empty(), "no POST, no read");
    assert!(stored_named(&h, "dry run").is_empty());
    let records = audits.of(RPC);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "validated");
    assert_eq!(records[0]["code"], "OK");
}

/// Asserts a create whose outcome is unknown, sent exactly once.
async fn assert_unknown_and_sent_once(h: &mut Harness, name: &str) {
    let status = h
        .client
        .create_security_configuration_task(create(new_task(name)))
        .await
        .expect_err("outcome unknown");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "OUTCOME_UNKNOWN");
    assert_eq!(info.metadata["applied"], "unknown");
    assert_eq!(info.metadata["list-with"], "ListSecurityConfigurationTasks");
    assert!(
        status.get_details_retry_info().is_none(),
        "no RetryInfo: a blind retry may create twice"
    );
    assert_eq!(posts(h).len(), 1, "never sent again");
}

#[tokio::test]
async fn a_create_applied_then_dropped_is_unknown_and_never_sent_again() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::drop_after_apply()]);
    assert_unknown_and_sent_once(&mut h, "dropped").await;
    assert_eq!(stored_named(&h, "dropped").len(), 1, "created exactly once");
    let records = audits.of(RPC);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "unknown");
    assert_eq!(records[0]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn a_create_whose_answer_is_late_is_unknown_and_never_sent_again() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.attempt_timeout = Duration::from_millis(300);
    let mut h = Harness::with_config(cfg).await;
    h.emulator()
        .push_faults([Fault::unchanged().delayed(Duration::from_secs(5))]);
    assert_unknown_and_sent_once(&mut h, "late").await;
    assert_eq!(
        stored_named(&h, "late").len(),
        1,
        "applied at once, answered late"
    );
}

#[tokio::test]
async fn a_create_answered_504_is_unknown_and_never_sent_again() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([fault(504), fault(504)]);
    assert_unknown_and_sent_once(&mut h, "gateway timeout").await;
    assert_eq!(h.emulator().pending_faults(), 1, "no second attempt");
}

#[tokio::test]
async fn a_create_refused_with_429_or_503_is_sent_again_and_creates_one_task() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.emulator().push_faults([fault(429), fault(503)]);
    let task = h
        .client
        .create_security_configuration_task(create(new_task("throttled")))
        .await
        .expect("OK after Graph did not act twice")
        .into_inner();
    assert_eq!(posts(&h).len(), 3);
    let stored = stored_named(&h, "throttled");
    assert_eq!(stored.len(), 1, "one task");
    assert_eq!(stored[0]["id"], task.id);
    assert_eq!(audits.of(RPC)[0]["outcome"], "applied");
}

#[tokio::test]
async fn a_created_task_whose_answer_is_cut_is_applied_and_not_sent_again() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::truncated()]);
    let status = h
        .client
        .create_security_configuration_task(create(new_task("cut")))
        .await
        .expect_err("the answer is lost");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(reason(&status), "CREATED_ANSWER_LOST");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["applied"], "true");
    assert!(status.get_details_retry_info().is_none());
    assert_eq!(posts(&h).len(), 1);
    assert_eq!(stored_named(&h, "cut").len(), 1);
    let records = audits.of(RPC);
    assert_eq!(records[0]["outcome"], "applied");
    assert_eq!(records[0]["code"], "INTERNAL");
}

#[tokio::test]
async fn a_create_graph_refuses_is_not_applied() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.emulator()
        .push_faults([fault(400).with_code("invalidRequest")]);
    let status = h
        .client
        .create_security_configuration_task(create(new_task("refused")))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "INVALID_REQUEST");
    assert_eq!(posts(&h).len(), 1);
    assert_eq!(audits.of(RPC)[0]["outcome"], "not_applied");
}

#[tokio::test]
async fn a_success_that_is_not_the_created_task_is_applied_and_not_sent_again() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    // A proxy's HTML page with 200 in place of Graph's answer.
    h.emulator().push_faults([Fault::not_json()]);
    let status = h
        .client
        .create_security_configuration_task(create(new_task("html")))
        .await
        .expect_err("the answer is unusable");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(reason(&status), "CREATED_ANSWER_LOST");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["answer-reason"], "GRAPH_ANSWER_UNREADABLE");
    assert_eq!(posts(&h).len(), 1);
    assert_eq!(audits.of(RPC)[0]["outcome"], "applied");
}

fn with_request_id(
    task: SecurityConfigurationTask,
    request_id: &str,
) -> CreateSecurityConfigurationTaskRequest {
    CreateSecurityConfigurationTaskRequest {
        request_id: request_id.into(),
        ..create(task)
    }
}

#[tokio::test]
async fn a_repeated_create_is_answered_with_the_first_task_and_posts_once() {
    let mut h = Harness::start().await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = h
        .client
        .create_security_configuration_task(with_request_id(new_task("once"), &request_id))
        .await
        .expect("OK");
    assert!(first.metadata().get("idempotent-replay").is_none());
    let again = h
        .client
        .create_security_configuration_task(with_request_id(new_task("once"), &request_id))
        .await
        .expect("OK");
    assert_eq!(
        again
            .metadata()
            .get("idempotent-replay")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again.get_ref(), first.get_ref(), "the first call's task");
    assert_eq!(posts(&h).len(), 1, "one POST for two calls");
    assert_eq!(stored_named(&h, "once").len(), 1, "one task in Graph");
}

#[tokio::test]
async fn a_create_of_unknown_outcome_replays_unknown_and_never_posts_again() {
    let mut h = Harness::start().await;
    let request_id = uuid::Uuid::new_v4().to_string();
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let first = h
        .client
        .create_security_configuration_task(with_request_id(new_task("lost"), &request_id))
        .await
        .expect_err("the answer was lost");
    assert_eq!(first.code(), tonic::Code::Unavailable);
    assert_eq!(reason(&first), "OUTCOME_UNKNOWN");
    for _ in 0..2 {
        let again = h
            .client
            .create_security_configuration_task(with_request_id(new_task("lost"), &request_id))
            .await
            .expect_err("the same unknown outcome");
        assert_eq!(again.code(), tonic::Code::Unavailable);
        assert_eq!(reason(&again), "OUTCOME_UNKNOWN");
        assert_eq!(
            again
                .metadata()
                .get("idempotent-replay")
                .and_then(|v| v.to_str().ok()),
            Some("true")
        );
    }
    assert_eq!(posts(&h).len(), 1, "the POST is never sent again");
    assert_eq!(stored_named(&h, "lost").len(), 1, "Graph created it once");
}
