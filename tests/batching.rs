//! The Graph client's JSON batching (src/graph/batching.rs) over real HTTP
//! against the emulator's `POST /beta/$batch`: chunks of 20, answers
//! matched by id in the emulator's shuffled order, throttled items sent
//! again after their own `Retry-After`, envelopes that fail or cannot be
//! trusted, and a budget token per item.

mod common;

use graph_grpc_gateway::budget::{BudgetSettings, Rate};
use graph_grpc_gateway::emulator::{
    seed, Emulator, EmulatorOptions, Fault, FaultBody, RequestKind, RunningEmulator, ScriptedFault,
};
use graph_grpc_gateway::graph::batch::Item;
use graph_grpc_gateway::graph::{
    self, CallContext, GraphClient, GraphError, ItemAnswer, COLLECTION_PATH,
};
use graph_grpc_gateway::metrics::Metrics;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn emulator(tasks: usize) -> (RunningEmulator, Vec<String>) {
    let running = Emulator::with_options(EmulatorOptions::default().with_record_requests(true))
        .spawn(common::loopback())
        .await
        .expect("emulator");
    let template = seed::tasks()
        .into_iter()
        .find(|t| t["id"] == seed::EXAMPLE_TASK_ID)
        .expect("the example task");
    let ids = (0..tasks)
        .map(|_| {
            let mut task = template.clone();
            task["id"] = json!(uuid::Uuid::new_v4().to_string());
            running.emulator.insert(task)
        })
        .collect();
    (running, ids)
}

fn client(
    running: &RunningEmulator,
    budget: Option<BudgetSettings>,
) -> (GraphClient, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let mut settings = common::fast_retries();
    settings.budget = budget;
    let client = GraphClient::new(
        graph::GraphHttp::new(false).expect("client"),
        &running.base_url.parse().expect("url"),
        None,
        Duration::from_secs(20),
        &settings,
        metrics.clone(),
    );
    (client, metrics)
}

fn ctx() -> CallContext {
    CallContext {
        client_request_id: uuid::Uuid::new_v4().to_string(),
        deadline: None,
        sent: Default::default(),
        caller: Default::default(),
    }
}

fn url(id: &str) -> String {
    format!("{COLLECTION_PATH}/{id}")
}

fn get(id: &str) -> Item {
    Item {
        method: http::Method::GET,
        url: url(id),
        body: None,
    }
}

fn rename(id: &str, name: &str) -> Item {
    Item {
        method: http::Method::PATCH,
        url: url(id),
        body: Some(
            serde_json::to_vec(&json!({"displayName": name}))
                .expect("json")
                .into(),
        ),
    }
}

/// The id of the task in an answer.
fn answered_id(answer: &ItemAnswer) -> String {
    let resp = answer.result.as_ref().expect("answered OK");
    let task: Value = serde_json::from_slice(&resp.body).expect("a task");
    task["id"].as_str().expect("an id").to_owned()
}

/// How many `$batch` envelopes and batch items the emulator logged.
fn envelopes_and_items(emulator: &Emulator) -> (usize, usize) {
    let log = emulator.requests();
    let envelopes = log
        .iter()
        .filter(|r| matches!(r.kind, RequestKind::Batch { .. }))
        .count();
    let items = log
        .iter()
        .filter(|r| matches!(r.kind, RequestKind::BatchItem { .. }))
        .count();
    (envelopes, items)
}

#[tokio::test]
async fn forty_five_reads_go_as_three_batches_and_come_back_in_order() {
    let (running, ids) = emulator(45).await;
    let (client, _) = client(&running, None);
    let items: Vec<Item> = ids.iter().map(|id| get(id)).collect();
    let answers = client.batch(&items, &ctx()).await;
    assert_eq!(answers.len(), 45);
    for (id, answer) in ids.iter().zip(&answers) {
        assert_eq!(&answered_id(answer), id, "matched by id, not position");
        assert!(answer.sent);
    }
    assert_eq!(envelopes_and_items(&running.emulator), (3, 45));
}

#[tokio::test]
async fn throttled_items_go_again_after_their_own_retry_after_and_failures_stay_theirs() {
    let (running, ids) = emulator(20).await;
    let (client, metrics) = client(&running, None);
    // The first five items the emulator runs are throttled; then one is
    // not found.
    let mut faults: Vec<ScriptedFault> = (0..5).map(|_| Fault::throttled("0.05").into()).collect();
    faults.push(Fault::new(404).into());
    running.emulator.push_faults(faults);
    let items: Vec<Item> = ids
        .iter()
        .map(|id| rename(id, "renamed in a batch"))
        .collect();
    let answers = client.batch(&items, &ctx()).await;
    let failed: Vec<(usize, u16)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match &a.result {
            Err(GraphError::Status(f)) => Some((i, f.status)),
            Err(e) => panic!("item {i}: {e}"),
            Ok(_) => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "only the 404 is a failure: {failed:?}");
    assert_eq!(failed[0].1, 404);
    for (i, (id, answer)) in ids.iter().zip(&answers).enumerate() {
        if i != failed[0].0 {
            assert_eq!(&answered_id(answer), id);
            let task = running.emulator.task(id).expect("task");
            assert_eq!(task["displayName"], "renamed in a batch");
        }
    }
    // 20 items, then the 5 throttled ones again: two envelopes.
    assert_eq!(envelopes_and_items(&running.emulator), (2, 25));
    let text = metrics.render();
    assert!(
        text.contains("graph_gateway_graph_retries_total{reason=\"batch_item_429\"} 5"),
        "{text}"
    );
}

#[tokio::test]
async fn an_envelope_broken_off_after_its_writes_ran_leaves_them_unknown_and_reads_go_again() {
    let (running, ids) = emulator(4).await;
    let (client, _) = client(&running, None);
    running.emulator.push_faults([ScriptedFault::from(Fault {
        body: FaultBody::DropAfterApply,
        ..Fault::new(200)
    })
    .on_batch()]);
    let items = vec![
        rename(&ids[0], "applied, answer lost"),
        get(&ids[1]),
        rename(&ids[2], "applied, answer lost"),
        get(&ids[3]),
    ];
    let answers = client.batch(&items, &ctx()).await;
    for i in [0, 2] {
        assert!(
            matches!(answers[i].result, Err(GraphError::Lost(_))),
            "a write whose answer was lost is not reported done or failed: {:?}",
            answers[i].result
        );
        assert!(answers[i].sent, "it may have reached Graph");
        let task = running.emulator.task(&ids[i]).expect("task");
        assert_eq!(task["displayName"], "applied, answer lost", "it had run");
    }
    for i in [1, 3] {
        assert_eq!(answered_id(&answers[i]), ids[i], "the read went again");
    }
    // The writes were never sent again: one envelope of four, one of two reads.
    assert_eq!(envelopes_and_items(&running.emulator), (2, 6));
}

#[tokio::test]
async fn an_answer_that_leaves_out_an_item_is_not_trusted_for_any() {
    let (running, ids) = emulator(3).await;
    let (client, _) = client(&running, None);
    running.emulator.push_faults([ScriptedFault::from(Fault {
        body: FaultBody::OmitResponse,
        ..Fault::new(200)
    })
    .on_batch()]);
    let items = vec![rename(&ids[0], "x"), rename(&ids[1], "y"), get(&ids[2])];
    let answers = client.batch(&items, &ctx()).await;
    assert!(matches!(answers[0].result, Err(GraphError::Lost(_))));
    assert!(matches!(answers[1].result, Err(GraphError::Lost(_))));
    assert_eq!(answered_id(&answers[2]), ids[2]);
    assert_eq!(envelopes_and_items(&running.emulator), (2, 4));
}

#[tokio::test]
async fn each_item_takes_its_own_budget_token_and_a_batch_goes_at_the_budgets_pace() {
    let (running, ids) = emulator(8).await;
    let window = Duration::from_millis(1500);
    let budget = BudgetSettings {
        requests: Rate::new(1000, window),
        writes: Rate::new(5, window),
        local_share_percent: 100.0,
    };
    let (client, _) = client(&running, Some(budget));
    let items: Vec<Item> = ids.iter().map(|id| rename(id, "paced")).collect();
    let answers = client.batch(&items, &ctx()).await;
    for (id, answer) in ids.iter().zip(&answers) {
        assert_eq!(&answered_id(answer), id);
    }
    // Five writes fit in the window: the other three went in a later
    // envelope, once tokens freed.
    let (envelopes, items) = envelopes_and_items(&running.emulator);
    assert_eq!(items, 8, "no item sent twice");
    assert!(envelopes >= 2, "{envelopes} envelopes");
    let sizes: Vec<usize> = running
        .emulator
        .requests()
        .iter()
        .filter(|r| matches!(r.kind, RequestKind::Batch { .. }))
        .map(|r| {
            r.body
                .as_ref()
                .and_then(|b| b["requests"].as_array().map(Vec::len))
                .unwrap_or(0)
        })
        .collect();
    assert!(
        sizes.iter().all(|n| *n <= 5),
        "never more than the window: {sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<usize>(), 8);
}
