//! BatchUpdateSecurityConfigurationTasks and
//! BatchSetSecurityConfigurationTaskStatus through the gateway (a real
//! tonic client over loopback) against the emulator's `$batch`, which
//! answers items in a shuffled order: chunks of 20, throttled items sent
//! again after their own `Retry-After`, Graph's refusals in
//! `failed_requests` with the single call's details, an envelope that
//! breaks off after its items ran (read back, nothing sent twice), dry
//! runs that write nothing, and one audit record per item.

mod common;

use common::audit_log::AuditLog;
use common::metrics::Scrape;
use common::{
    fault, new_request_id, reason, rename, replayed, seed_tasks, violated_fields, Harness,
};
use graph_grpc_gateway::emulator::{seed, Fault, RequestKind, ScriptedFault};
use graph_grpc_gateway::proto::v1::{
    BatchSetSecurityConfigurationTaskStatusRequest, BatchUpdateSecurityConfigurationTasksRequest,
    BatchUpdateSecurityConfigurationTasksResponse, SecurityConfigurationTask,
    SetSecurityConfigurationTaskStatusRequest, UpdateSecurityConfigurationTaskRequest,
};
use prost::Message;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_types::StatusExt;

/// `DEVICE_APP_MANAGEMENT_TASK_STATUS_COMPLETED`.
const COMPLETED: i32 = 4;

const BATCH_UPDATE: &str = "BatchUpdateSecurityConfigurationTasks";

fn renames(ids: &[String], prefix: &str) -> Vec<UpdateSecurityConfigurationTaskRequest> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| rename(id, &format!("{prefix} {i}"), ""))
        .collect()
}

fn batch(
    requests: Vec<UpdateSecurityConfigurationTaskRequest>,
) -> BatchUpdateSecurityConfigurationTasksRequest {
    BatchUpdateSecurityConfigurationTasksRequest {
        requests,
        ..Default::default()
    }
}

/// The Graph items the emulator ran with `method` on a task path (not the
/// envelopes), in the order it ran them.
fn items(h: &Harness, method: &str) -> Vec<String> {
    h.emulator()
        .requests()
        .into_iter()
        .filter(|r| matches!(r.kind, RequestKind::BatchItem { .. }) && r.method == method)
        .map(|r| r.path_and_query)
        .collect()
}

/// The `$batch` envelopes whose items include one with `method`.
fn envelopes_with(h: &Harness, method: &str) -> usize {
    let log = h.emulator().requests();
    let carrying: BTreeSet<String> = log
        .iter()
        .filter_map(|r| match &r.kind {
            RequestKind::BatchItem {
                batch_request_id, ..
            } if r.method == method => Some(batch_request_id.clone()),
            _ => None,
        })
        .collect();
    carrying.len()
}

fn display_name(h: &Harness, id: &str) -> String {
    h.emulator().task(id).expect("the task")["displayName"]
        .as_str()
        .expect("a name")
        .to_owned()
}

/// A failed item's status as a call's own, so its details can be read.
fn item_status(status: &tonic_types::Status) -> tonic::Status {
    tonic::Status::with_details(
        Code::from_i32(status.code),
        status.message.clone(),
        status.encode_to_vec().into(),
    )
}

/// Sends `request`, which must be answered OK with no item failed.
async fn all_applied(
    h: &mut Harness,
    request: impl tonic::IntoRequest<BatchUpdateSecurityConfigurationTasksRequest>,
) -> BatchUpdateSecurityConfigurationTasksResponse {
    let answer = h
        .client
        .batch_update_security_configuration_tasks(request)
        .await
        .expect("OK")
        .into_inner();
    assert!(
        answer.failed_requests.is_empty(),
        "{:?}",
        answer.failed_requests
    );
    answer
}

fn assert_renamed(
    h: &Harness,
    ids: &[String],
    answer: &BatchUpdateSecurityConfigurationTasksResponse,
    prefix: &str,
) {
    assert_eq!(answer.security_configuration_tasks.len(), ids.len());
    for (i, (task, id)) in answer
        .security_configuration_tasks
        .iter()
        .zip(ids)
        .enumerate()
    {
        let want = format!("{prefix} {i}");
        assert_eq!(&task.id, id, "item {i} answers its own task");
        assert_eq!(task.display_name.as_deref(), Some(want.as_str()));
        assert_eq!(display_name(h, id), want);
    }
}

#[tokio::test]
async fn forty_five_updates_go_as_three_batches_and_come_back_in_request_order() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 45);
    let answer = all_applied(&mut h, batch(renames(&ids, "renamed"))).await;
    // The emulator lists each batch's answers shuffled: each task is
    // answered under its own item, in the request's order.
    assert_renamed(&h, &ids, &answer, "renamed");
    let patches = items(&h, "PATCH");
    assert_eq!(patches.len(), 45, "one PATCH per update, none twice");
    assert_eq!(envelopes_with(&h, "PATCH"), 3, "45 updates in 3 batches");
    let singles = h
        .emulator()
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Single)
        .count();
    assert_eq!(singles, 0, "nothing sent outside a batch");
}

#[tokio::test]
async fn throttled_items_are_sent_again_after_their_retry_after() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 45);
    // The first five items Graph runs are answered 429 inside the 200.
    h.emulator()
        .push_faults((0..5).map(|_| Fault::throttled("1")));
    let started = Instant::now();
    let answer = all_applied(&mut h, batch(renames(&ids, "paced"))).await;
    let elapsed = started.elapsed();
    assert_renamed(&h, &ids, &answer, "paced");
    let patches = items(&h, "PATCH");
    assert_eq!(patches.len(), 50, "45 updates and the 5 throttled again");
    let distinct: BTreeSet<&String> = patches.iter().collect();
    assert_eq!(distinct.len(), 45);
    assert!(
        envelopes_with(&h, "PATCH") >= 4,
        "the throttled items went in a later batch"
    );
    assert!(
        elapsed >= Duration::from_secs(1),
        "the items waited out their Retry-After: {elapsed:?}"
    );
}

#[tokio::test]
async fn graph_refusals_reach_failed_requests_with_the_single_calls_details() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 6);
    h.emulator().push_faults([fault(403), fault(409)]);
    let answer = h
        .client
        .batch_update_security_configuration_tasks(batch(renames(&ids, "ok")))
        .await
        .expect("the batch answers OK with each item's outcome")
        .into_inner();
    assert_eq!(
        answer.failed_requests.len(),
        2,
        "{:?}",
        answer.failed_requests
    );
    let mut codes = BTreeSet::new();
    for (&index, status) in &answer.failed_requests {
        let i = usize::try_from(index).expect("an index");
        let status = item_status(status);
        codes.insert(status.code() as i32);
        assert!(
            status
                .message()
                .starts_with(&format!("requests[{i}] ({}): ", ids[i])),
            "{}",
            status.message()
        );
        let info = status.get_details_error_info().expect("Graph's ErrorInfo");
        assert_eq!(info.domain, "graph.microsoft.com");
        let http = &info.metadata["http-status"];
        assert!(http == "403" || http == "409", "{http}");
        assert!(info.metadata.contains_key("request-id"), "{info:?}");
        assert_eq!(
            answer.security_configuration_tasks[i],
            SecurityConfigurationTask::default(),
            "a failed item's task is unset"
        );
        assert_eq!(
            display_name(&h, &ids[i]),
            format!("task {i}"),
            "not applied"
        );
    }
    assert_eq!(
        codes,
        BTreeSet::from([Code::PermissionDenied as i32, Code::Aborted as i32])
    );
    for (i, id) in ids.iter().enumerate() {
        if !answer.failed_requests.contains_key(&(i as i32)) {
            assert_eq!(display_name(&h, id), format!("ok {i}"));
            assert_eq!(answer.security_configuration_tasks[i].id, *id);
        }
    }
    assert_eq!(items(&h, "PATCH").len(), 6, "refusals are not sent again");
    let metrics = Scrape::get(&h.admin_url("/metrics")).await;
    for (code, n) in [("OK", 4.0), ("PERMISSION_DENIED", 1.0), ("ABORTED", 1.0)] {
        assert_eq!(
            metrics.value(
                "graph_gateway_grpc_batch_items_total",
                &[("rpc", BATCH_UPDATE), ("code", code)]
            ),
            Some(n),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn an_envelope_that_breaks_after_its_items_ran_is_read_back_and_nothing_is_sent_twice() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 25);
    let (audit, _capturing) = AuditLog::capture();
    // The first envelope runs its 20 items, then answers 502.
    h.emulator()
        .push_faults([ScriptedFault::from(Fault::error_after_apply(502)).on_batch()]);
    let answer = all_applied(&mut h, batch(renames(&ids, "after"))).await;
    assert_renamed(&h, &ids, &answer, "after");
    assert_eq!(
        items(&h, "PATCH").len(),
        25,
        "no update that ran is sent again"
    );
    assert_eq!(
        items(&h, "GET").len(),
        20,
        "the 20 items of the broken envelope are read back"
    );
    let records = audit.of(BATCH_UPDATE);
    assert_eq!(records.len(), 25, "{records:?}");
    let confirmed = records
        .iter()
        .filter(|r| r.get("confirmed_by").map(String::as_str) == Some("read_back"))
        .count();
    assert_eq!(confirmed, 20, "{records:?}");
    assert!(
        records.iter().all(|r| r["outcome"] == "applied"),
        "{records:?}"
    );
}

#[tokio::test]
async fn an_envelope_lost_after_its_items_ran_leaves_no_item_misreported() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 3);
    h.emulator()
        .push_faults([ScriptedFault::from(Fault::omit_response()).on_batch()]);
    let answer = all_applied(&mut h, batch(renames(&ids, "omitted"))).await;
    assert_renamed(&h, &ids, &answer, "omitted");
    assert_eq!(items(&h, "PATCH").len(), 3, "each update sent once");
}

#[tokio::test]
async fn validate_only_reads_in_a_batch_and_writes_nothing() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 22);
    let (audit, _capturing) = AuditLog::capture();
    let answer = h
        .client
        .batch_update_security_configuration_tasks(BatchUpdateSecurityConfigurationTasksRequest {
            validate_only: true,
            ..batch(renames(&ids, "dry"))
        })
        .await
        .expect("OK")
        .into_inner();
    assert!(answer.failed_requests.is_empty());
    for (i, (task, id)) in answer
        .security_configuration_tasks
        .iter()
        .zip(&ids)
        .enumerate()
    {
        assert_eq!(&task.id, id);
        assert_eq!(
            task.display_name.as_deref(),
            Some(format!("dry {i}").as_str())
        );
        assert_eq!(display_name(&h, id), format!("task {i}"), "unchanged");
    }
    let log = h.emulator().requests();
    assert!(log.iter().all(|r| r.method != "PATCH"), "no write sent");
    assert_eq!(items(&h, "GET").len(), 22);
    let records = audit.of(BATCH_UPDATE);
    assert_eq!(records.len(), 22);
    assert!(
        records.iter().all(|r| r["outcome"] == "validated"),
        "{records:?}"
    );
}

#[tokio::test]
async fn every_item_is_audited_with_the_batchs_request_id_and_a_retry_replays_it() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 4);
    let (audit, _capturing) = AuditLog::capture();
    h.emulator().push_faults([fault(403)]);
    let request_id = new_request_id();
    let request = BatchUpdateSecurityConfigurationTasksRequest {
        request_id: request_id.clone(),
        ..batch(renames(&ids, "audited"))
    };
    let first = h
        .client
        .batch_update_security_configuration_tasks(request.clone())
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(first.failed_requests.len(), 1);
    let failed =
        usize::try_from(*first.failed_requests.keys().next().expect("one")).expect("index");
    let records = audit.of(BATCH_UPDATE);
    assert_eq!(records.len(), 4, "{records:?}");
    for (i, (record, id)) in records.iter().zip(&ids).enumerate() {
        assert_eq!(&record["task_id"], id, "one record per item, in order");
        assert_eq!(record["request_id"], request_id);
        assert_eq!(record["fields"], "display_name");
        if i == failed {
            assert_eq!(record["code"], "PERMISSION_DENIED");
            assert_eq!(record["outcome"], "not_applied");
        } else {
            assert_eq!(record["code"], "OK");
            assert_eq!(record["outcome"], "applied");
            assert!(!record["graph_request_id"].is_empty(), "{record:?}");
        }
    }

    let sent = h.emulator().received();
    let again = h
        .client
        .batch_update_security_configuration_tasks(request)
        .await
        .expect("replayed");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.into_inner(), first);
    assert_eq!(h.emulator().received(), sent, "a replay sends nothing");
    let records = audit.of(BATCH_UPDATE);
    assert_eq!(records.len(), 8);
    for (i, record) in records[4..].iter().enumerate() {
        assert_eq!(record["replay"], "true");
        assert_eq!(&record["task_id"], &ids[i]);
        let want = if i == failed {
            "PERMISSION_DENIED"
        } else {
            "OK"
        };
        assert_eq!(record["code"], want, "{record:?}");
    }
}

#[tokio::test]
async fn invalid_items_are_named_by_their_index_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 3);
    let before = h.emulator().received();
    let mut bad = renames(&ids, "x");
    bad[1].update_mask = Some(prost_types::FieldMask {
        paths: vec!["no_such_field".into()],
    });
    bad[2] = rename(&ids[0].to_uppercase(), "again", "");
    let mut with_own_id = renames(&ids[..1], "y");
    with_own_id[0].request_id = new_request_id();
    with_own_id[0].validate_only = true;
    let cases: Vec<(Vec<UpdateSecurityConfigurationTaskRequest>, Vec<&str>)> = vec![
        (vec![], vec!["requests"]),
        (
            bad,
            vec![
                "requests[1].update_mask",
                "requests[2].security_configuration_task.id",
            ],
        ),
        (
            with_own_id,
            vec!["requests[0].request_id", "requests[0].validate_only"],
        ),
        (
            renames(&vec![ids[0].clone(); 1001], "many"),
            vec!["requests"],
        ),
    ];
    for (requests, fields) in cases {
        let status = h
            .client
            .batch_update_security_configuration_tasks(batch(requests))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let got = violated_fields(&status);
        for field in &fields {
            assert!(
                got.iter().any(|f| f.starts_with(field)),
                "{field} in {got:?}"
            );
        }
    }
    assert_eq!(h.emulator().received(), before, "nothing reached Graph");
}

#[tokio::test]
async fn status_changes_read_every_task_first_and_refuse_other_types_per_item() {
    let mut h = Harness::start().await;
    let mut ids = seed_tasks(&h, 3);
    ids.insert(1, seed::APP_VULNERABILITY_TASK_ID.into());
    let (audit, _capturing) = AuditLog::capture();
    let requests: Vec<SetSecurityConfigurationTaskStatusRequest> = ids
        .iter()
        .map(|id| SetSecurityConfigurationTaskStatusRequest {
            id: id.clone(),
            status: COMPLETED,
            note: "rolled out by the policy team".into(),
            ..Default::default()
        })
        .collect();
    let answer = h
        .client
        .batch_set_security_configuration_task_status(
            BatchSetSecurityConfigurationTaskStatusRequest {
                requests,
                ..Default::default()
            },
        )
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(
        answer.failed_requests.len(),
        1,
        "{:?}",
        answer.failed_requests
    );
    let other = item_status(&answer.failed_requests[&1]);
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    assert_eq!(reason(&other), "NOT_A_SECURITY_CONFIGURATION_TASK");
    let posts = items(&h, "POST");
    assert_eq!(posts.len(), 3, "no action for the task of another type");
    assert!(posts.iter().all(|p| p.ends_with("/updateStatus")));
    for i in [0, 2, 3] {
        let task = &answer.security_configuration_tasks[i];
        assert_eq!(task.id, ids[i]);
        assert_eq!(task.status, COMPLETED, "read back after the action");
        assert_eq!(
            h.emulator().task(&ids[i]).expect("task")["status"],
            json!("completed")
        );
    }
    let records = audit.of("BatchSetSecurityConfigurationTaskStatus");
    assert_eq!(records.len(), 4);
    assert_eq!(records[1]["code"], "FAILED_PRECONDITION");
    for record in &records {
        assert_eq!(record["note_bytes"], "29", "{record:?}");
        assert!(
            !record.values().any(|v| v.contains("policy team")),
            "the note's text is never recorded"
        );
    }
}
#[tokio::test]
async fn an_item_throttled_past_the_deadline_fails_alone_with_the_delay_graph_asked_for() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 3);
    // Graph asks one item to wait longer than the call has left.
    h.emulator().push_faults([Fault::throttled("30")]);
    let mut request = tonic::Request::new(batch(renames(&ids, "late")));
    request.set_timeout(Duration::from_secs(3));
    let answer = h
        .client
        .batch_update_security_configuration_tasks(request)
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(
        answer.failed_requests.len(),
        1,
        "{:?}",
        answer.failed_requests
    );
    let (&index, status) = answer.failed_requests.iter().next().expect("one");
    let status = item_status(status);
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert!(
        retry
            .retry_delay
            .is_some_and(|d| d >= Duration::from_secs(29)),
        "{retry:?}"
    );
    let i = usize::try_from(index).expect("index");
    assert_eq!(
        display_name(&h, &ids[i]),
        format!("task {i}"),
        "not applied"
    );
    assert_eq!(items(&h, "PATCH").len(), 3, "not sent again");
}

#[tokio::test]
async fn an_item_answered_504_is_read_back_and_sent_once_more_only_if_it_did_not_land() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 2);
    let (audit, _capturing) = AuditLog::capture();
    // The first item Graph runs is applied and answered 504; the second is
    // answered 504 without being applied.
    h.emulator()
        .push_faults([Fault::error_after_apply(504), fault(504)]);
    let answer = all_applied(&mut h, batch(renames(&ids, "gateway timeout"))).await;
    assert_renamed(&h, &ids, &answer, "gateway timeout");
    assert_eq!(
        items(&h, "PATCH").len(),
        3,
        "only the write that did not land went again"
    );
    assert_eq!(items(&h, "GET").len(), 2, "both were read back");
    let records = audit.of(BATCH_UPDATE);
    assert_eq!(records.len(), 2, "{records:?}");
    let confirmed = records
        .iter()
        .filter(|r| r.get("confirmed_by").map(String::as_str) == Some("read_back"))
        .count();
    let resent = records.iter().filter(|r| r["resent"] == "true").count();
    assert_eq!((confirmed, resent), (1, 1), "{records:?}");
    assert!(
        records.iter().all(|r| r["outcome"] == "applied"),
        "{records:?}"
    );
}

#[tokio::test]
async fn status_changes_are_checked_in_full_and_a_dry_run_only_reads() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 2);
    let before = h.emulator().received();
    let change = |id: &str, status: i32| SetSecurityConfigurationTaskStatusRequest {
        id: id.into(),
        status,
        ..Default::default()
    };
    let status = h
        .client
        .batch_set_security_configuration_task_status(
            BatchSetSecurityConfigurationTaskStatusRequest {
                requests: vec![change(&ids[0], COMPLETED), change(&ids[1], 0)],
                ..Default::default()
            },
        )
        .await
        .expect_err("an item without a status");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["requests[1].status"]);
    assert_eq!(h.emulator().received(), before, "nothing reached Graph");

    let answer = h
        .client
        .batch_set_security_configuration_task_status(
            BatchSetSecurityConfigurationTaskStatusRequest {
                requests: ids.iter().map(|id| change(id, COMPLETED)).collect(),
                validate_only: true,
                ..Default::default()
            },
        )
        .await
        .expect("OK")
        .into_inner();
    assert!(answer.failed_requests.is_empty());
    for (task, id) in answer.security_configuration_tasks.iter().zip(&ids) {
        assert_eq!(&task.id, id);
        assert_eq!(task.status, COMPLETED, "what the change would make");
        assert_eq!(h.emulator().task(id).expect("task")["status"], "pending");
    }
    let log = h.emulator().requests();
    assert!(log
        .iter()
        .all(|r| r.method != "POST" || r.path_and_query.ends_with("$batch")));
    assert_eq!(items(&h, "GET").len(), 2);
}
