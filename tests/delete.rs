//! DeleteSecurityConfigurationTask end to end: a tonic client over loopback,
//! the gateway, and the emulator, whose journal shows what reached Graph and
//! whose store shows what Graph holds.

mod common;

use common::audit_log::AuditLog;
use common::{fault, Harness};
use graph_grpc_gateway::emulator::{seed, Fault};
use graph_grpc_gateway::proto::v1::DeleteSecurityConfigurationTaskRequest;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

const RPC: &str = "DeleteSecurityConfigurationTask";
const MISSING: &str = "00000000-0000-4000-8000-000000000000";

fn delete(id: &str) -> DeleteSecurityConfigurationTaskRequest {
    DeleteSecurityConfigurationTaskRequest {
        id: id.into(),
        ..Default::default()
    }
}

/// Method and path of every request that reached the emulator.
fn sent(h: &Harness) -> Vec<(String, String)> {
    h.emulator()
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path_and_query))
        .collect()
}

fn at(method: &str, id: &str) -> (String, String) {
    (
        method.to_owned(),
        format!("/beta/deviceAppManagement/deviceAppManagementTasks/{id}"),
    )
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_delete_checks_the_type_then_deletes() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let resp = h
        .client
        .delete_security_configuration_task(delete(seed::COMPLETED_TASK_ID))
        .await
        .expect("OK");
    let request_id = resp
        .metadata()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("Graph's request-id")
        .to_owned();
    assert_eq!(h.emulator().task(seed::COMPLETED_TASK_ID), None, "deleted");
    assert_eq!(
        sent(&h),
        [
            at("GET", seed::COMPLETED_TASK_ID),
            at("DELETE", seed::COMPLETED_TASK_ID)
        ]
    );
    let records = audits.of(RPC);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["task_id"], seed::COMPLETED_TASK_ID);
    assert_eq!(records[0]["outcome"], "applied");
    assert_eq!(records[0]["code"], "OK");
    assert_eq!(records[0]["graph_request_id"], request_id);
}

#[tokio::test]
async fn a_missing_task_is_not_found_and_no_delete_is_sent() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let status = h
        .client
        .delete_security_configuration_task(delete(MISSING))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "ITEM_NOT_FOUND");
    assert_eq!(sent(&h), [at("GET", MISSING)]);
    let records = audits.of(RPC);
    assert_eq!(records[0]["outcome"], "not_applied");
    assert_eq!(records[0]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn allow_missing_answers_ok_for_a_missing_task_without_a_delete() {
    let mut h = Harness::start().await;
    h.client
        .delete_security_configuration_task(DeleteSecurityConfigurationTaskRequest {
            allow_missing: true,
            ..delete(MISSING)
        })
        .await
        .expect("OK: allow_missing");
    assert_eq!(sent(&h), [at("GET", MISSING)]);
    assert_eq!(h.emulator().tasks().len(), seed::ALL_TASK_IDS.len());
}

#[tokio::test]
async fn a_task_deleted_between_the_check_and_the_delete_counts_as_missing() {
    let mut h = Harness::start().await;
    // The GET passes; the DELETE finds the task gone (Graph's 404).
    h.emulator().push_faults([
        Fault::unchanged(),
        fault(404).with_code("itemNotFound"),
        Fault::unchanged(),
        fault(404).with_code("itemNotFound"),
    ]);
    let status = h
        .client
        .delete_security_configuration_task(delete(seed::FIREWALL_TASK_ID))
        .await
        .expect_err("gone meanwhile");
    assert_eq!(status.code(), Code::NotFound);
    h.client
        .delete_security_configuration_task(DeleteSecurityConfigurationTaskRequest {
            allow_missing: true,
            ..delete(seed::FIREWALL_TASK_ID)
        })
        .await
        .expect("OK: allow_missing");
    let deletes = sent(&h).into_iter().filter(|(m, _)| m == "DELETE").count();
    assert_eq!(deletes, 2, "one DELETE each, not sent again");
}

#[tokio::test]
async fn a_task_of_another_type_is_refused_and_kept() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    let inserted = h.emulator().insert(json!({
        "@odata.type": "#microsoft.graph.appVulnerabilityTask",
        "id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "displayName": "an app task",
    }));
    for id in [seed::APP_VULNERABILITY_TASK_ID, inserted.as_str()] {
        let status = h
            .client
            .delete_security_configuration_task(DeleteSecurityConfigurationTaskRequest {
                allow_missing: true,
                ..delete(id)
            })
            .await
            .expect_err("another type");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(reason(&status), "NOT_A_SECURITY_CONFIGURATION_TASK");
        assert!(h.emulator().task(id).is_some(), "not deleted");
    }
    assert_eq!(
        sent(&h),
        [
            at("GET", seed::APP_VULNERABILITY_TASK_ID),
            at("GET", &inserted)
        ],
        "no DELETE"
    );
    let records = audits.of(RPC);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["outcome"], "not_applied");
    assert_eq!(records[0]["code"], "FAILED_PRECONDITION");
}

#[tokio::test]
async fn validate_only_checks_with_one_get_and_deletes_nothing() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.client
        .delete_security_configuration_task(DeleteSecurityConfigurationTaskRequest {
            validate_only: true,
            ..delete(seed::EXAMPLE_TASK_ID)
        })
        .await
        .expect("OK: would delete");
    assert!(h.emulator().task(seed::EXAMPLE_TASK_ID).is_some());
    assert_eq!(sent(&h), [at("GET", seed::EXAMPLE_TASK_ID)]);
    let status = h
        .client
        .delete_security_configuration_task(DeleteSecurityConfigurationTaskRequest {
            validate_only: true,
            ..delete(seed::APP_VULNERABILITY_TASK_ID)
        })
        .await
        .expect_err("would refuse");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let records = audits.of(RPC);
    assert_eq!(records[0]["outcome"], "validated");
    assert_eq!(records[0]["code"], "OK");
    assert_eq!(records[1]["outcome"], "not_applied");
}

#[tokio::test]
async fn a_bad_id_is_invalid_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    for id in [
        "",
        "not-a-guid",
        "../deviceAppManagementTasks",
        &"a".repeat(5000),
    ] {
        let status = h
            .client
            .delete_security_configuration_task(delete(id))
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{id:.40}");
        let violations = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations;
        assert_eq!(violations[0].field, "id");
    }
    assert!(h.emulator().requests().is_empty(), "nothing reached Graph");
}

#[tokio::test]
async fn a_delete_whose_answer_is_lost_is_confirmed_by_reading_the_task() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = Harness::start().await;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_after_apply()]);
    h.client
        .delete_security_configuration_task(delete(seed::FIREWALL_TASK_ID))
        .await
        .expect("OK: the read shows it gone");
    assert_eq!(h.emulator().task(seed::FIREWALL_TASK_ID), None);
    assert_eq!(
        sent(&h),
        [
            at("GET", seed::FIREWALL_TASK_ID),
            at("DELETE", seed::FIREWALL_TASK_ID),
            at("GET", seed::FIREWALL_TASK_ID),
        ]
    );
    let records = audits.of(RPC);
    assert_eq!(records[0]["outcome"], "applied");
    assert_eq!(records[0]["confirmed_by"], "read_back");
}

#[tokio::test]
async fn a_delete_lost_before_graph_took_it_is_sent_once_more() {
    let mut h = Harness::start().await;
    // The first DELETE gets a 504 without acting; the read shows the task
    // still there, so it is sent once more.
    h.emulator().push_faults([Fault::unchanged(), fault(504)]);
    h.client
        .delete_security_configuration_task(delete(seed::FIREWALL_TASK_ID))
        .await
        .expect("OK after the second DELETE");
    assert_eq!(h.emulator().task(seed::FIREWALL_TASK_ID), None);
    let methods: Vec<String> = sent(&h).into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["GET", "DELETE", "GET", "DELETE"]);
}

#[tokio::test]
async fn a_delete_whose_outcome_cannot_be_read_is_unknown() {
    let (audits, _guard) = AuditLog::capture();
    let mut h = common::without_retries().await;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::drop_after_apply(), fault(500)]);
    let status = h
        .client
        .delete_security_configuration_task(delete(seed::FIREWALL_TASK_ID))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(reason(&status), "OUTCOME_UNKNOWN");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata["id"], seed::FIREWALL_TASK_ID);
    assert_eq!(info.metadata["applied"], "unknown");
    assert_eq!(audits.of(RPC)[0]["outcome"], "unknown");
}
