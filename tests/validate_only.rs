//! Dry runs (`validate_only`, AIP-163) of Update and SetStatus over loopback
//! against the emulator: validated in full, the task read once, the answer
//! what the call would leave, and nothing written to Graph (the emulator's
//! journal holds no write, its store is unchanged); the audit record says
//! `validated`.

mod common;

use common::logs::Logs;
use common::Harness;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskPriority as Priority, DeviceAppManagementTaskStatus as Status,
    KeyValuePair, SecurityConfigurationTask, SetSecurityConfigurationTaskStatusRequest,
    UpdateSecurityConfigurationTaskRequest,
};
use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;

fn methods(h: &Harness) -> Vec<String> {
    h.emulator()
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect()
}

/// Renames the task, clears its description, raises its priority and
/// replaces its settings.
fn change(id: &str, validate_only: bool) -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: id.into(),
            display_name: Some("renamed in a dry run".into()),
            priority: Priority::Low as i32,
            intended_settings: vec![KeyValuePair {
                name: "only".into(),
                value: None,
            }],
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: [
                "display_name",
                "description",
                "priority",
                "intended_settings",
            ]
            .map(String::from)
            .to_vec(),
        }),
        validate_only,
        ..Default::default()
    }
}

fn set(id: &str, status: Status, validate_only: bool) -> SetSecurityConfigurationTaskStatusRequest {
    SetSecurityConfigurationTaskStatusRequest {
        id: id.into(),
        status: status as i32,
        note: "dry-run note 93e1".into(),
        validate_only,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_dry_run_update_sends_no_patch_and_answers_the_task_with_the_change() {
    let (logs, _capturing) = Logs::capture();
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let before = h.emulator().task(id);
    let dry = h
        .client
        .update_security_configuration_task(change(id, true))
        .await
        .expect("validated")
        .into_inner();
    assert_eq!(dry.display_name.as_deref(), Some("renamed in a dry run"));
    assert_eq!(dry.description, None);
    assert_eq!(dry.priority, Priority::Low as i32);
    assert_eq!(dry.intended_settings.len(), 1);
    assert_eq!(dry.intended_settings[0].name, "only");
    // Untouched fields are the task as read.
    assert_eq!(dry.creator.as_deref(), Some("Creator value"));
    assert_eq!(methods(&h), ["GET"]);
    assert_eq!(h.emulator().task(id), before);

    let audits = logs.audits();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["rpc"], "UpdateSecurityConfigurationTask");
    assert_eq!(audits[0]["outcome"], "validated");
    assert_eq!(audits[0]["code"], "OK");
    assert_eq!(
        audits[0]["fields"],
        "display_name,description,priority,intended_settings"
    );

    // The same change for real leaves exactly what the dry run answered.
    let real = h
        .client
        .update_security_configuration_task(change(id, false))
        .await
        .expect("applied")
        .into_inner();
    assert_eq!(real, dry);
    assert_eq!(methods(&h), ["GET", "PATCH"]);
}

#[tokio::test]
async fn an_invalid_dry_run_update_is_still_invalid_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    let mut req = change(seed::EXAMPLE_TASK_ID, true);
    req.update_mask = Some(FieldMask {
        paths: vec!["no_such_field".into(), "due_date_time".into()],
    });
    let e = h
        .client
        .update_security_configuration_task(req)
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    let fields: Vec<_> = e
        .get_details_bad_request()
        .expect("BadRequest")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        ["update_mask", "security_configuration_task.due_date_time"]
    );
    assert_eq!(h.emulator().received(), 0);
}

#[tokio::test]
async fn a_dry_run_update_of_another_type_or_a_missing_task_is_refused_after_one_read() {
    let mut h = Harness::start().await;
    let e = h
        .client
        .update_security_configuration_task(change(seed::APP_VULNERABILITY_TASK_ID, true))
        .await
        .expect_err("other type");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        e.get_details_error_info().expect("ErrorInfo").reason,
        "NOT_A_SECURITY_CONFIGURATION_TASK"
    );
    let e = h
        .client
        .update_security_configuration_task(change("00000000-0000-4000-8000-000000000000", true))
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(methods(&h), ["GET", "GET"]);
}

#[tokio::test]
async fn an_update_with_a_request_id_is_applied() {
    let mut h = Harness::start().await;
    let mut req = change(seed::EXAMPLE_TASK_ID, false);
    req.request_id = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b".into();
    let got = h
        .client
        .update_security_configuration_task(req)
        .await
        .expect("applied")
        .into_inner();
    assert_eq!(got.display_name.as_deref(), Some("renamed in a dry run"));
    assert_eq!(methods(&h), ["PATCH"]);
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        "renamed in a dry run"
    );
}

#[tokio::test]
async fn a_dry_run_status_change_reads_once_and_answers_the_status_set() {
    let (logs, _capturing) = Logs::capture();
    let mut h = Harness::start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let before = h.emulator().task(id);
    let dry = h
        .client
        .set_security_configuration_task_status(set(id, Status::Rejected, true))
        .await
        .expect("validated")
        .into_inner();
    assert_eq!(dry.status, Status::Rejected as i32);
    assert_eq!(dry.display_name.as_deref(), Some("Display Name value"));
    assert_eq!(methods(&h), ["GET"]);
    assert_eq!(h.emulator().task(id), before);
    assert!(h.emulator().status_notes(id).is_empty());

    let audits = logs.audits();
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(audits[0]["rpc"], "SetSecurityConfigurationTaskStatus");
    assert_eq!(audits[0]["outcome"], "validated");
    assert_eq!(audits[0]["status"], "rejected");
    assert_eq!(audits[0]["note_bytes"], "dry-run note 93e1".len());
    assert!(!logs.text().contains("dry-run note 93e1"));

    let real = h
        .client
        .set_security_configuration_task_status(set(id, Status::Rejected, false))
        .await
        .expect("applied")
        .into_inner();
    assert_eq!(real, dry);
}

#[tokio::test]
async fn a_dry_run_status_change_is_refused_as_the_real_one_would_be() {
    let mut h = Harness::start().await;
    let e = h
        .client
        .set_security_configuration_task_status(set(
            seed::APP_VULNERABILITY_TASK_ID,
            Status::Completed,
            true,
        ))
        .await
        .expect_err("other type");
    assert_eq!(e.code(), Code::FailedPrecondition);
    let e = h
        .client
        .set_security_configuration_task_status(set(
            "00000000-0000-4000-8000-000000000000",
            Status::Completed,
            true,
        ))
        .await
        .expect_err("missing");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(methods(&h), ["GET", "GET"]);
    let e = h
        .client
        .set_security_configuration_task_status(set(
            seed::EXAMPLE_TASK_ID,
            Status::Unspecified,
            true,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(methods(&h), ["GET", "GET"]);
}
