//! SetSecurityConfigurationTaskStatus over loopback against the emulator:
//! what reaches Graph (the emulator's journal), what Graph then holds (its
//! store), what the caller is answered, and what the logs and the audit
//! record say (never the note).

mod common;

use common::logs::Logs;
use common::metrics::Scrape;
use common::{fault, without_retries, Harness};
use graph_grpc_gateway::emulator::{seed, Fault, RecordedRequest};
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskStatus as Status, SetSecurityConfigurationTaskStatusRequest,
};
use serde_json::{json, Value};
use tonic::Code;
use tonic_types::StatusExt;

const NOTE: &str = "closed after review 5a1c";

fn set(id: &str, status: Status, note: &str) -> SetSecurityConfigurationTaskStatusRequest {
    SetSecurityConfigurationTaskStatusRequest {
        id: id.into(),
        status: status as i32,
        note: note.into(),
        ..Default::default()
    }
}

/// (method, path after the task collection) of each request Graph got.
fn journal(h: &Harness) -> Vec<(String, String)> {
    h.emulator()
        .requests()
        .into_iter()
        .map(|r: RecordedRequest| {
            let path = r
                .path_and_query
                .trim_start_matches("/beta/deviceAppManagement/deviceAppManagementTasks/")
                .to_owned();
            (r.method, path)
        })
        .collect()
}

fn calls(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

fn stored_status(h: &Harness, id: &str) -> Value {
    h.emulator().task(id).expect("stored")["status"].clone()
}

fn field_names(s: &tonic::Status) -> Vec<String> {
    s.get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn ok_sets_the_status_in_graph_and_answers_the_task_read_back() {
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    assert_eq!(stored_status(&h, id), "pending");
    let answer = h
        .client
        .set_security_configuration_task_status(set(id, Status::Completed, NOTE))
        .await
        .expect("OK");
    assert!(answer.metadata().get("request-id").is_some());
    let task = answer.into_inner();
    assert_eq!(task.id, id);
    assert_eq!(task.status, Status::Completed as i32);
    assert_eq!(task.display_name.as_deref(), Some("Display Name value"));
    assert_eq!(stored_status(&h, id), "completed");
    assert_eq!(h.emulator().status_notes(id), [NOTE]);
    // One read for the type, the action, and the task read back after 204.
    assert_eq!(
        journal(&h),
        calls(&[
            ("GET", id),
            ("POST", &format!("{id}/updateStatus")),
            ("GET", id)
        ])
    );
    let post = &h.emulator().requests()[1];
    assert_eq!(
        post.body,
        Some(json!({"status": "completed", "note": NOTE}))
    );
    assert!(!format!("{task:?}").contains(NOTE));
}

#[tokio::test]
async fn an_empty_note_is_sent_as_an_empty_string() {
    let mut h = Harness::start().await;
    let id = seed::FIREWALL_TASK_ID;
    h.client
        .set_security_configuration_task_status(set(id, Status::Rejected, ""))
        .await
        .expect("OK");
    assert_eq!(stored_status(&h, id), "rejected");
    assert_eq!(
        h.emulator().requests()[1].body,
        Some(json!({"status": "rejected", "note": ""}))
    );
}

#[tokio::test]
async fn an_unspecified_status_is_invalid_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    let e = h
        .client
        .set_security_configuration_task_status(set(
            seed::EXAMPLE_TASK_ID,
            Status::Unspecified,
            NOTE,
        ))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(field_names(&e), ["status"]);
    let mut undefined = set(seed::EXAMPLE_TASK_ID, Status::Active, NOTE);
    undefined.status = 42;
    let e = h
        .client
        .set_security_configuration_task_status(undefined)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(field_names(&e), ["status"]);
    assert!(
        e.message().contains("42 is not a member"),
        "{}",
        e.message()
    );
    assert!(h.emulator().requests().is_empty());
    assert_eq!(h.emulator().received(), 0);
    assert_eq!(stored_status(&h, seed::EXAMPLE_TASK_ID), "pending");
}

#[tokio::test]
async fn a_bad_id_is_invalid_and_every_problem_is_named_at_once() {
    let mut h = Harness::start().await;
    for id in ["", "../users", "microsoft.graph.securityConfigurationTask"] {
        let e = h
            .client
            .set_security_configuration_task_status(set(id, Status::Active, ""))
            .await
            .expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{id}");
        assert_eq!(field_names(&e), ["id"]);
    }
    let e = h
        .client
        .set_security_configuration_task_status(set("nope", Status::Unspecified, "secret\u{1b}[2J"))
        .await
        .expect_err("refused");
    assert_eq!(field_names(&e), ["id", "status", "note"]);
    assert!(!e.message().contains("secret"), "{}", e.message());
    assert_eq!(h.emulator().received(), 0);
}

#[tokio::test]
async fn a_task_of_another_type_is_failed_precondition_and_not_changed() {
    let (logs, _capturing) = Logs::capture();
    let mut h = Harness::start().await;
    let id = seed::APP_VULNERABILITY_TASK_ID;
    let before = h.emulator().task(id);
    let e = h
        .client
        .set_security_configuration_task_status(set(id, Status::Completed, NOTE))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        e.get_details_error_info().expect("ErrorInfo").reason,
        "NOT_A_SECURITY_CONFIGURATION_TASK"
    );
    assert_eq!(journal(&h), calls(&[("GET", id)]));
    assert_eq!(h.emulator().task(id), before);
    assert!(h.emulator().status_notes(id).is_empty());
    // The type check is a read: the record says nothing was changed.
    let audits = logs.audits();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["outcome"], "not_applied");
    assert_eq!(audits[0]["code"], "FAILED_PRECONDITION");
}

#[tokio::test]
async fn a_missing_task_is_not_found_and_nothing_is_posted() {
    let (logs, _capturing) = Logs::capture();
    let mut h = Harness::start().await;
    let id = "00000000-0000-4000-8000-000000000000";
    let e = h
        .client
        .set_security_configuration_task_status(set(id, Status::Active, NOTE))
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(journal(&h), calls(&[("GET", id)]));
    let audits = logs.audits();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["outcome"], "not_applied");
    assert_eq!(audits[0]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_lost_answer_is_confirmed_by_reading_the_status_back() {
    let (logs, _guard) = Logs::capture();
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    // The type check passes; the action is applied, then its connection drops.
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_after_apply()]);
    let task = h
        .client
        .set_security_configuration_task_status(set(id, Status::Rejected, NOTE))
        .await
        .expect("confirmed")
        .into_inner();
    assert_eq!(task.status, Status::Rejected as i32);
    // Sent once: the read-back showed the new status.
    assert_eq!(
        journal(&h),
        calls(&[
            ("GET", id),
            ("POST", &format!("{id}/updateStatus")),
            ("GET", id)
        ])
    );
    assert_eq!(h.emulator().status_notes(id), [NOTE]);
    let audits = logs.audits();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["outcome"], "applied");
    assert_eq!(audits[0]["confirmed_by"], "read_back");
    assert_eq!(audits[0]["resent"], false);
    assert!(!logs.text().contains(NOTE));
}

#[tokio::test]
async fn an_action_dropped_before_graph_took_it_is_sent_once_more_after_the_read_back() {
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_connection()]);
    let task = h
        .client
        .set_security_configuration_task_status(set(id, Status::Active, NOTE))
        .await
        .expect("sent again")
        .into_inner();
    assert_eq!(task.status, Status::Active as i32);
    let action = format!("{id}/updateStatus");
    assert_eq!(
        journal(&h),
        calls(&[
            ("GET", id),
            ("POST", &action),
            ("GET", id),
            ("POST", &action),
            ("GET", id)
        ])
    );
    assert_eq!(h.emulator().status_notes(id), [NOTE]);
}

#[tokio::test]
async fn a_lost_answer_to_the_status_the_task_had_cannot_be_confirmed_so_it_is_sent_once_more() {
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_after_apply()]);
    let task = h
        .client
        .set_security_configuration_task_status(set(id, Status::Pending, NOTE))
        .await
        .expect("sent again")
        .into_inner();
    assert_eq!(task.status, Status::Pending as i32);
    let action = format!("{id}/updateStatus");
    assert_eq!(
        journal(&h),
        calls(&[
            ("GET", id),
            ("POST", &action),
            ("GET", id),
            ("POST", &action),
            ("GET", id)
        ])
    );
    // The state is the same; Graph kept the note twice.
    assert_eq!(h.emulator().status_notes(id), [NOTE, NOTE]);
}

#[tokio::test]
async fn a_lost_answer_whose_read_back_fails_is_unknown() {
    let mut h = without_retries().await;
    let id = seed::EXAMPLE_TASK_ID;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_after_apply(), fault(503)]);
    let e = h
        .client
        .set_security_configuration_task_status(set(id, Status::Completed, NOTE))
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(
        e.get_details_error_info().expect("ErrorInfo").reason,
        "UPDATE_OUTCOME_UNKNOWN"
    );
    assert_eq!(stored_status(&h, id), "completed");
    assert!(!e.message().contains(NOTE));
}

#[tokio::test]
async fn applied_but_not_read_back_is_unavailable_and_says_applied() {
    let mut h = without_retries().await;
    let id = seed::EXAMPLE_TASK_ID;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::unchanged(), fault(503)]);
    let e = h
        .client
        .set_security_configuration_task_status(set(id, Status::Completed, NOTE))
        .await
        .expect_err("read-back failed");
    assert_eq!(e.code(), Code::Unavailable);
    let info = e.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "UPDATE_APPLIED_READ_BACK_FAILED");
    assert_eq!(
        info.metadata.get("applied").map(String::as_str),
        Some("true")
    );
    assert_eq!(stored_status(&h, id), "completed");
}

#[tokio::test]
async fn graph_refusing_the_action_changes_nothing() {
    let mut h = without_retries().await;
    let id = seed::EXAMPLE_TASK_ID;
    h.emulator().push_faults([Fault::unchanged(), fault(403)]);
    let e = h
        .client
        .set_security_configuration_task_status(set(id, Status::Completed, NOTE))
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(stored_status(&h, id), "pending");
    assert_eq!(
        journal(&h),
        calls(&[("GET", id), ("POST", &format!("{id}/updateStatus"))])
    );
}

#[tokio::test]
async fn the_note_is_in_no_log_line_and_the_audit_record_has_its_length() {
    let (logs, _guard) = Logs::capture();
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let note = format!("{NOTE} – ✓");
    h.client
        .set_security_configuration_task_status(set(id, Status::Completed, &note))
        .await
        .expect("OK");
    // Refused by Graph, and refused by the gateway: neither says the note.
    h.emulator().push_faults([Fault::unchanged(), fault(400)]);
    let refused = h
        .client
        .set_security_configuration_task_status(set(id, Status::Active, &note))
        .await
        .expect_err("Graph refused");
    assert!(!refused.message().contains(NOTE));
    let invalid = h
        .client
        .set_security_configuration_task_status(set(id, Status::Active, &format!("{note}\0")))
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(!invalid.message().contains(NOTE));

    let audits = logs.audits();
    assert_eq!(audits.len(), 3, "{audits:?}");
    let ok = &audits[0];
    assert_eq!(ok["rpc"], "SetSecurityConfigurationTaskStatus");
    assert_eq!(ok["task_id"], id);
    assert_eq!(ok["status"], "completed");
    assert_eq!(ok["note_bytes"], note.len());
    assert_eq!(ok["outcome"], "applied");
    assert_eq!(ok["code"], "OK");
    assert_eq!(audits[1]["status"], "active");
    assert_eq!(audits[1]["note_bytes"], note.len());
    assert_eq!(audits[1]["outcome"], "not_applied");
    assert_eq!(audits[2]["outcome"], "not_applied");
    assert_eq!(audits[2]["code"], "INVALID_ARGUMENT");
    let text = logs.text();
    assert!(
        text.contains("SetSecurityConfigurationTaskStatus"),
        "logs captured"
    );
    assert!(!text.contains(NOTE), "the note shows in the logs:\n{text}");
    // The metrics do not carry it either.
    let metrics = Scrape::get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metrics.value(
            "graph_gateway_grpc_calls_total",
            &[
                ("rpc", "SetSecurityConfigurationTaskStatus"),
                ("code", "OK")
            ]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(!metrics.text().contains(NOTE));
}
