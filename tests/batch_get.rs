//! BatchGetSecurityConfigurationTasks through the gateway (a real tonic
//! client over loopback) against the emulator's `$batch`: the tasks in the
//! order asked from 20-item batches, an atomic failure naming the item, and
//! nothing sent for a request that fails validation.

mod common;

use common::{seed_tasks, Client, Harness};
use graph_grpc_gateway::emulator::{seed, Fault, RequestKind};
use graph_grpc_gateway::proto::v1::BatchGetSecurityConfigurationTasksRequest;
use tonic::Code;
use tonic_types::StatusExt;

fn batch_get(ids: &[String]) -> BatchGetSecurityConfigurationTasksRequest {
    BatchGetSecurityConfigurationTasksRequest { ids: ids.to_vec() }
}

fn envelopes_and_items(h: &Harness) -> (usize, usize) {
    let log = h.emulator().requests();
    let count = |f: fn(&RequestKind) -> bool| log.iter().filter(|r| f(&r.kind)).count();
    (
        count(|k| matches!(k, RequestKind::Batch { .. })),
        count(|k| matches!(k, RequestKind::BatchItem { .. })),
    )
}

async fn refused(client: &mut Client, ids: &[String]) -> tonic::Status {
    client
        .batch_get_security_configuration_tasks(batch_get(ids))
        .await
        .expect_err("refused")
}

#[tokio::test]
async fn forty_five_tasks_come_back_in_the_order_asked_from_three_batches() {
    let mut h = Harness::start().await;
    let mut ids = seed_tasks(&h, 45);
    ids.reverse();
    // Five reads throttled inside the batch answers: sent again, unseen.
    h.emulator()
        .push_faults((0..5).map(|_| Fault::throttled("0.05")));
    let got = h
        .client
        .batch_get_security_configuration_tasks(batch_get(&ids))
        .await
        .expect("OK")
        .into_inner()
        .security_configuration_tasks;
    let got_ids: Vec<&str> = got.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(got[0].display_name.as_deref(), Some("task 44"));
    let (envelopes, items) = envelopes_and_items(&h);
    assert_eq!(items, 50, "45 reads and the 5 throttled again");
    assert!((3..=4).contains(&envelopes), "{envelopes} envelopes");
}

#[tokio::test]
async fn a_missing_task_or_one_of_another_type_fails_the_call_naming_it() {
    let mut h = Harness::start().await;
    let mut ids = seed_tasks(&h, 3);
    ids.insert(2, "00000000-0000-0000-0000-000000000000".into());
    let status = refused(&mut h.client, &ids).await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("ids[2] (00000000-0000-0000-0000-000000000000): "),
        "{}",
        status.message()
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "ITEM_NOT_FOUND", "the single Get's details");

    let mut ids = seed_tasks(&h, 2);
    ids.push(seed::APP_VULNERABILITY_TASK_ID.into());
    let status = refused(&mut h.client, &ids).await;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().starts_with("ids[2] ("),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("not a securityConfigurationTask"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn bad_ids_are_named_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    let ids = seed_tasks(&h, 2);
    let before = h.emulator().received();
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec![], vec!["ids"]),
        (
            vec![ids[0].clone(), "not-a-guid".into(), ids[0].to_uppercase()],
            vec!["ids[1]", "ids[2]"],
        ),
        (vec![ids[1].clone(); 1001], vec!["ids"]),
    ];
    for (ask, fields) in cases {
        let status = refused(&mut h.client, &ask).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(common::violated_fields(&status), fields);
    }
    assert_eq!(h.emulator().received(), before, "nothing reached Graph");
}
