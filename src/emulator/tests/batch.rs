//! `POST /beta/$batch` over real HTTP: the envelope's checks, items through
//! the same pipeline as requests sent alone (journal, faults, chaos, Intune
//! limits, auth), the seeded order, and faults on the envelope itself.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use super::{expect_error, json, start, start_with, Harness, COLLECTION};
use crate::emulator::{
    seed, Chaos, Emulator, EmulatorOptions, Fault, IntuneLimits, RequestKind, ScriptedFault,
};

impl Harness {
    /// `POST /beta/$batch` with `envelope` as JSON.
    async fn batch(&self, envelope: &Value) -> Response {
        self.client
            .post(self.url("/$batch"))
            .json(envelope)
            .send()
            .await
            .expect("POST $batch")
    }

    async fn batch_as(&self, envelope: &Value, token: &str) -> Response {
        self.client
            .post(self.url("/$batch"))
            .bearer_auth(token)
            .json(envelope)
            .send()
            .await
            .expect("POST $batch")
    }
}

fn task_path(id: &str) -> String {
    format!("{COLLECTION}/{id}")
}

/// A PATCH item setting `displayName` of task `task`.
fn rename(id: &str, task: &str, name: &str) -> Value {
    json!({
        "id": id,
        "method": "PATCH",
        "url": task_path(task),
        "headers": {"Content-Type": "application/json"},
        "body": {"displayName": name},
    })
}

fn get(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

fn envelope(requests: Vec<Value>) -> Value {
    json!({ "requests": requests })
}

/// The 200 batch answer's responses.
async fn responses(response: Response) -> Vec<Value> {
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    body["responses"].as_array().expect("responses").clone()
}

/// The response with `id`.
fn item<'a>(responses: &'a [Value], id: &str) -> &'a Value {
    responses
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response {id}: {responses:?}"))
}

fn ids(responses: &[Value]) -> Vec<String> {
    responses
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Asserts an item carries Graph's error body with `status` and `code`.
fn expect_item_error(answer: &Value, status: u16, code: &str) -> String {
    assert_eq!(answer["status"], status, "{answer}");
    let error = &answer["body"]["error"];
    assert_eq!(error["code"], code, "{answer}");
    assert!(error["innerError"]["request-id"].is_string(), "{answer}");
    assert!(error["innerError"]["date"].is_string(), "{answer}");
    error["message"].as_str().expect("message").to_owned()
}

fn display_name(h: &Harness, id: &str) -> Value {
    h.emulator().task(id).expect("task")["displayName"].clone()
}

#[tokio::test]
async fn twenty_items_each_answered_and_logged_as_a_request_of_its_own() {
    let h = start().await;
    let requests: Vec<Value> = (1..=20)
        .map(|i| rename(&i.to_string(), seed::EXAMPLE_TASK_ID, &format!("name {i}")))
        .collect();
    let response = h.batch(&envelope(requests)).await;
    let envelope_id = response
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id")
        .to_owned();
    let answers = responses(response).await;
    assert_eq!(answers.len(), 20);
    let expected: BTreeSet<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(ids(&answers).into_iter().collect::<BTreeSet<_>>(), expected);
    for i in 1..=20 {
        let answer = item(&answers, &i.to_string());
        assert_eq!(answer["status"], 200, "{answer}");
        assert_eq!(answer["body"]["displayName"], format!("name {i}"));
        assert!(answer["headers"]["Content-Type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/json")));
    }
    assert_eq!(
        display_name(&h, seed::EXAMPLE_TASK_ID),
        "name 20",
        "items are applied in the order listed"
    );

    // The envelope, then each item, as requests of their own.
    let log = h.emulator().requests();
    assert_eq!(log.len(), 21);
    assert_eq!(h.emulator().received(), 21);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path_and_query, "/beta/$batch");
    assert_eq!(
        log[0].kind,
        RequestKind::Batch {
            request_id: envelope_id.clone()
        }
    );
    for (n, entry) in log[1..].iter().enumerate() {
        let id = (n + 1).to_string();
        assert_eq!(entry.method, "PATCH");
        assert_eq!(
            entry.path_and_query,
            format!("/beta{}", task_path(seed::EXAMPLE_TASK_ID))
        );
        assert_eq!(
            entry.body,
            Some(json!({"displayName": format!("name {id}")}))
        );
        assert!(entry
            .headers
            .contains(&("content-type".into(), "application/json".into())));
        assert_eq!(
            entry.kind,
            RequestKind::BatchItem {
                id,
                batch_request_id: envelope_id.clone()
            }
        );
    }
    let over_http = json(h.get(&h.control("/requests?log=true")).await).await;
    assert_eq!(over_http["requests"][0]["kind"]["type"], "batch");
    assert_eq!(over_http["requests"][1]["kind"]["type"], "batch_item");
    assert_eq!(over_http["requests"][1]["kind"]["id"], "1");
}

#[tokio::test]
async fn envelopes_graph_refuses_answer_400_and_run_nothing() {
    let h = start().await;
    let before = display_name(&h, seed::EXAMPLE_TASK_ID);
    let many: Vec<Value> = (1..=21)
        .map(|i| rename(&i.to_string(), seed::EXAMPLE_TASK_ID, "too many"))
        .collect();
    let message = expect_error(
        h.batch(&envelope(many)).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    assert!(message.contains("21 requests"), "{message}");

    let twice = envelope(vec![
        rename("1", seed::EXAMPLE_TASK_ID, "twice"),
        get("1", COLLECTION),
    ]);
    let message = expect_error(h.batch(&twice).await, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert_eq!(message, "Request Id 1 has to be unique in a batch.");

    let no_content_type = envelope(vec![json!({
        "id": "1", "method": "PATCH", "url": task_path(seed::EXAMPLE_TASK_ID),
        "body": {"displayName": "untyped"},
    })]);
    let message = expect_error(
        h.batch(&no_content_type).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    assert_eq!(
        message,
        "Write request id : 1 does not contain Content-Type header or body."
    );

    for bad in [
        envelope(vec![get(
            "1",
            "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks",
        )]),
        envelope(vec![json!({"id": "1", "url": COLLECTION})]),
        envelope(vec![json!({"method": "GET", "url": COLLECTION})]),
        envelope(vec![json!({"id": "1", "method": "GET"})]),
        envelope(vec![]),
        json!({"request": [get("1", COLLECTION)]}),
    ] {
        let message =
            expect_error(h.batch(&bad).await, StatusCode::BAD_REQUEST, "BadRequest").await;
        assert_eq!(message, "Invalid batch payload format.", "{bad}");
    }
    let unparseable = h
        .client
        .post(h.url("/$batch"))
        .header("content-type", "application/json")
        .body("{\"requests\": [")
        .send()
        .await
        .expect("POST $batch");
    let message = expect_error(unparseable, StatusCode::BAD_REQUEST, "BadRequest").await;
    assert_eq!(message, "Invalid batch payload format.");

    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), before);
    let log = h.emulator().requests();
    assert_eq!(log.len(), 10, "envelopes only");
    assert!(log
        .iter()
        .all(|r| matches!(r.kind, RequestKind::Batch { .. })));

    // Only POST reaches the batch route.
    let wrong = h.get(&h.url("/$batch")).await;
    assert_eq!(
        wrong.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..])
    );
    expect_error(wrong, StatusCode::METHOD_NOT_ALLOWED, "BadRequest").await;
}

/// The ids of a 20-item GET batch in the order answered.
async fn order(h: &Harness) -> Vec<String> {
    let requests = (1..=20)
        .map(|i| get(&i.to_string(), &task_path(seed::EXAMPLE_TASK_ID)))
        .collect();
    ids(&responses(h.batch(&envelope(requests)).await).await)
}

fn seeded(seed: u64) -> Emulator {
    Emulator::with_options(EmulatorOptions::default().with_batch_order_seed(seed))
}

#[tokio::test]
async fn answers_come_in_an_order_the_seed_reproduces() {
    let a = start_with(seeded(7)).await;
    let b = start_with(seeded(7)).await;
    let c = start_with(seeded(8)).await;
    let first = order(&a).await;
    let second = order(&a).await;
    assert_eq!(first, order(&b).await, "same seed, same orders");
    assert_eq!(second, order(&b).await);
    let listed: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_ne!(first, listed, "shuffled");
    assert_ne!(first, second, "each batch draws its own order");
    assert_ne!(first, order(&c).await, "another seed, other orders");

    // Setting the options restarts the orders from the seed.
    let options = json(a.get(&a.control("/options")).await).await;
    assert_eq!(options["batch_order_seed"], 7);
    let put = a
        .client
        .put(a.control("/options"))
        .json(&json!({"batch_order_seed": 7, "record_requests": true}))
        .send()
        .await
        .expect("PUT options");
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(order(&a).await, first);

    // The default seed is a seed too.
    let d = start().await;
    let e = start().await;
    assert_eq!(order(&d).await, order(&e).await);
}

#[tokio::test]
async fn a_scripted_429_on_one_item_comes_back_inside_the_200_with_its_retry_after() {
    let h = start().await;
    h.emulator()
        .push_faults([Fault::unchanged(), Fault::throttled("2.5")]);
    let batch = envelope(vec![
        rename("a", seed::EXAMPLE_TASK_ID, "first"),
        rename("b", seed::FIREWALL_TASK_ID, "throttled"),
        rename("c", seed::COMPLETED_TASK_ID, "third"),
    ]);
    let answers = responses(h.batch(&batch).await).await;
    assert_eq!(item(&answers, "a")["status"], 200);
    assert_eq!(item(&answers, "c")["status"], 200);
    let throttled = item(&answers, "b");
    expect_item_error(throttled, 429, "TooManyRequests");
    assert_eq!(throttled["headers"]["Retry-After"], "2.5");
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), "first");
    assert_eq!(display_name(&h, seed::COMPLETED_TASK_ID), "third");
    assert_ne!(
        display_name(&h, seed::FIREWALL_TASK_ID),
        "throttled",
        "a throttled item is not applied"
    );
    assert_eq!(h.emulator().pending_faults(), 0);
}

#[tokio::test]
async fn chaos_draws_once_per_item_never_for_the_envelope() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_chaos(
            Chaos::new(1, 100.0)
                .with_statuses([503])
                .with_retry_after("1"),
        ),
    ))
    .await;
    let batch = envelope(vec![
        get("1", &task_path(seed::EXAMPLE_TASK_ID)),
        get("2", COLLECTION),
    ]);
    let answers = responses(h.batch(&batch).await).await;
    for id in ["1", "2"] {
        let answer = item(&answers, id);
        expect_item_error(answer, 503, "serviceNotAvailable");
        assert_eq!(answer["headers"]["Retry-After"], "1");
    }
    assert_eq!(h.emulator().chaos_faults_injected(), 2);
}

const CONTOSO: &str = "contoso.onmicrosoft.com";
const APP_A: &str = "aaaaaaaa-0000-0000-0000-00000000000a";

/// `n` PATCH items of the sample task, ids `1..=n`.
fn writes(n: usize) -> Value {
    envelope(
        (1..=n)
            .map(|i| rename(&i.to_string(), seed::EXAMPLE_TASK_ID, &format!("w{i}")))
            .collect(),
    )
}

#[tokio::test]
async fn intune_limits_count_each_item_and_not_the_envelope() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default()
            .with_require_auth(true)
            .with_intune_limits(IntuneLimits::scaled(1.0)),
    ))
    .await;
    let token = h.token_for_app(CONTOSO, APP_A).await;
    // 95 writes in five batches: all admitted.
    for size in [20, 20, 20, 20, 15] {
        let answers = responses(h.batch_as(&writes(size), &token).await).await;
        assert!(answers.iter().all(|a| a["status"] == 200), "{answers:?}");
    }
    // Five more fill the app's 100 writes; the sixth item is refused.
    let answers = responses(h.batch_as(&writes(6), &token).await).await;
    for id in 1..=5 {
        assert_eq!(item(&answers, &id.to_string())["status"], 200);
    }
    let refused = item(&answers, "6");
    let message = expect_item_error(refused, 429, "TooManyRequests");
    assert!(message.contains("100 writes per 20s"), "{message}");
    let retry_after = refused["headers"]["Retry-After"]
        .as_str()
        .expect("Retry-After");
    let (secs, millis) = retry_after.split_once('.').expect("a fraction");
    assert_eq!(millis.len(), 3, "{retry_after}");
    assert!(secs.parse::<u64>().is_ok_and(|s| s <= 20), "{retry_after}");
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), "w5");

    let report = h.emulator().intune_usage();
    assert_eq!(report.admitted_writes, 100);
    assert_eq!(report.admitted_requests, 100, "envelopes are not metered");
    assert_eq!(report.throttled, 1);
}

#[tokio::test]
async fn the_envelopes_bearer_authorises_its_items() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_require_auth(true),
    ))
    .await;
    let batch = envelope(vec![json!({
        "id": "1", "method": "GET", "url": task_path(seed::EXAMPLE_TASK_ID),
        "headers": {"Authorization": "Bearer not-a-token"},
    })]);
    let refused = h.batch(&batch).await;
    assert!(refused.headers().get("www-authenticate").is_some());
    expect_error(
        refused,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    let token = h.token_for_app(CONTOSO, APP_A).await;
    let answers = responses(h.batch_as(&batch, &token).await).await;
    assert_eq!(item(&answers, "1")["status"], 200);
    let log = h.emulator().requests();
    let item_log = log.last().expect("the item");
    assert_eq!(item_log.authorization, log[log.len() - 2].authorization);
}

#[tokio::test]
async fn items_graph_would_refuse_get_their_own_400_404_405_inside_the_200() {
    let h = start().await;
    let batch = envelope(vec![
        get("unknown", "/users"),
        get("missing", &task_path("no-such-task")),
        json!({"id": "put", "method": "PUT", "url": task_path(seed::EXAMPLE_TASK_ID),
               "headers": {"Content-Type": "application/json"}, "body": {}}),
        json!({"id": "odd", "method": "FOO", "url": COLLECTION}),
        json!({"id": "nested", "method": "POST", "url": "/$batch",
               "headers": {"Content-Type": "application/json"}, "body": {"requests": []}}),
        get(
            "filtered",
            &format!("{COLLECTION}?$filter=status eq 'completed'"),
        ),
        get("count", &format!("{COLLECTION}/$count")),
    ]);
    let answers = responses(h.batch(&batch).await).await;
    let message = expect_item_error(item(&answers, "unknown"), 400, "BadRequest");
    assert!(message.contains("'users'"), "{message}");
    expect_item_error(item(&answers, "missing"), 404, "itemNotFound");
    let put = item(&answers, "put");
    expect_item_error(put, 405, "BadRequest");
    assert_eq!(put["headers"]["Allow"], "GET, PATCH, DELETE");
    expect_item_error(item(&answers, "odd"), 405, "BadRequest");
    expect_item_error(item(&answers, "nested"), 400, "BadRequest");
    let filtered = item(&answers, "filtered");
    assert_eq!(filtered["status"], 200, "{filtered}");
    let values = filtered["body"]["value"].as_array().expect("value");
    assert!(!values.is_empty());
    assert!(values.iter().all(|t| t["status"] == "completed"));
    assert_eq!(
        item(&answers, "count")["body"],
        seed::ALL_TASK_IDS.len(),
        "a plain-text number"
    );
}

#[tokio::test]
async fn depends_on_runs_in_order_and_a_failed_dependency_answers_424() {
    let h = start().await;
    let batch = envelope(vec![
        rename("1", "no-such-task", "x"),
        json!({"id": "2", "method": "PATCH", "url": task_path(seed::EXAMPLE_TASK_ID),
               "headers": {"Content-Type": "application/json"},
               "body": {"displayName": "never"}, "dependsOn": ["1"]}),
        rename("3", seed::FIREWALL_TASK_ID, "runs"),
        json!({"id": "4", "method": "GET", "url": task_path(seed::FIREWALL_TASK_ID),
               "dependsOn": ["3"]}),
    ]);
    let answers = responses(h.batch(&batch).await).await;
    expect_item_error(item(&answers, "1"), 404, "itemNotFound");
    expect_item_error(item(&answers, "2"), 424, "FailedDependency");
    assert_eq!(item(&answers, "3")["status"], 200);
    let after = item(&answers, "4");
    assert_eq!(after["status"], 200);
    assert_eq!(after["body"]["displayName"], "runs", "ran after 3");
    assert_ne!(display_name(&h, seed::EXAMPLE_TASK_ID), "never");
    // The item that never ran never reached a route.
    assert_eq!(h.emulator().received(), 4);
}

#[tokio::test]
async fn an_envelope_fault_that_replaces_the_answer_runs_nothing() {
    let h = start().await;
    let before = display_name(&h, seed::EXAMPLE_TASK_ID);
    h.emulator().push_faults([
        ScriptedFault::from(Fault::throttled("3")).on_batch(),
        Fault::new(500).into(),
    ]);
    let response = h.batch(&writes(3)).await;
    assert_eq!(
        response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"3"[..])
    );
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests").await;
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), before);
    assert_eq!(h.emulator().received(), 1, "no item ran");
    assert_eq!(
        h.emulator().pending_faults(),
        1,
        "the request fault is left for the next request"
    );
    let response = h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn envelope_faults_after_apply_break_the_answer_once_the_items_are_stored() {
    let h = start().await;
    let post = |faults: Value| {
        let h = &h;
        async move {
            let response = h
                .client
                .post(h.control("/faults"))
                .json(&faults)
                .send()
                .await
                .expect("POST faults");
            assert_eq!(response.status(), StatusCode::OK);
        }
    };

    post(json!([{"target": "batch", "status": 502, "body": "ErrorAfterApply"}])).await;
    let response = h
        .batch(&envelope(vec![rename("1", seed::EXAMPLE_TASK_ID, "5xx")]))
        .await;
    expect_error(response, StatusCode::BAD_GATEWAY, "UnknownError").await;
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), "5xx");

    post(json!([{"target": "batch", "body": "DropAfterApply"}])).await;
    let dropped = h
        .client
        .post(h.url("/$batch"))
        .json(&envelope(vec![rename(
            "1",
            seed::EXAMPLE_TASK_ID,
            "dropped",
        )]))
        .send()
        .await;
    assert!(dropped.is_err(), "no answer at all: {dropped:?}");
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), "dropped");

    post(json!([{"target": "batch", "body": "Truncated"}])).await;
    let cut = h
        .batch(&envelope(vec![rename("1", seed::EXAMPLE_TASK_ID, "cut")]))
        .await;
    assert_eq!(cut.status(), StatusCode::OK);
    assert!(cut.bytes().await.is_err(), "the body is cut short");
    assert_eq!(display_name(&h, seed::EXAMPLE_TASK_ID), "cut");
}

#[tokio::test]
async fn envelope_faults_can_omit_an_item_or_name_one_no_request_had() {
    let h = start().await;
    let refused = h
        .client
        .post(h.control("/faults"))
        .json(&json!([{"body": "OmitResponse"}]))
        .send()
        .await
        .expect("POST faults");
    assert_eq!(
        refused.status(),
        StatusCode::BAD_REQUEST,
        "only an envelope can omit an item"
    );
    h.emulator().push_faults([
        ScriptedFault::from(Fault::omit_response()).on_batch(),
        ScriptedFault::from(Fault::unknown_response_id()).on_batch(),
    ]);

    let answers = responses(h.batch(&writes(3)).await).await;
    let seen: BTreeSet<String> = ids(&answers).into_iter().collect();
    assert_eq!(seen, BTreeSet::from(["2".to_owned(), "3".to_owned()]));
    assert_eq!(
        display_name(&h, seed::EXAMPLE_TASK_ID),
        "w3",
        "every item ran"
    );

    let answers = responses(h.batch(&writes(3)).await).await;
    let seen: BTreeSet<String> = ids(&answers).into_iter().collect();
    assert_eq!(
        seen,
        BTreeSet::from(["1-unknown".to_owned(), "2".to_owned(), "3".to_owned()])
    );
    assert_eq!(h.emulator().pending_faults(), 0);
}

#[tokio::test]
async fn a_batch_answer_is_held_back_by_the_latency() {
    let latency = Duration::from_millis(300);
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_latency(latency),
    ))
    .await;
    let started = Instant::now();
    let answers = responses(h.batch(&writes(5)).await).await;
    assert_eq!(answers.len(), 5);
    assert!(
        started.elapsed() >= latency,
        "the envelope is held back by at least one latency"
    );
}
