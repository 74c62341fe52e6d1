//! Create and delete under the journal, scripted faults and chaos, as the
//! other routes are.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{expect_error, start, start_with, Harness};
use crate::emulator::{seed, Chaos, Emulator, EmulatorOptions, Fault};

const SECURITY_TASK: &str = "#microsoft.graph.securityConfigurationTask";

async fn post(h: &Harness, body: &Value) -> reqwest::Result<reqwest::Response> {
    h.client.post(h.collection()).json(body).send().await
}

fn named(h: &Harness, name: &str) -> Vec<Value> {
    h.emulator()
        .tasks()
        .into_iter()
        .filter(|t| t["displayName"] == name)
        .collect()
}

#[tokio::test]
async fn a_create_is_in_the_journal_with_its_body() {
    let h = start().await;
    let body = json!({"@odata.type": SECURITY_TASK, "displayName": "journaled"});
    let response = post(&h, &body).await.expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let requests = h.emulator().requests();
    let last = requests.last().expect("recorded");
    assert_eq!(last.method, "POST");
    assert_eq!(
        last.path_and_query,
        "/beta/deviceAppManagement/deviceAppManagementTasks"
    );
    assert_eq!(last.body.as_ref(), Some(&body));
}

#[tokio::test]
async fn the_created_task_has_the_posted_type() {
    let h = start().await;
    let response = post(
        &h,
        &json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask", "displayName": "app"}),
    )
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.expect("json");
    let id = body["id"].as_str().expect("id");
    let stored = h.emulator().task(id).expect("stored");
    assert_eq!(
        stored["@odata.type"],
        "#microsoft.graph.appVulnerabilityTask"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_like_graph() {
    let h = start().await;
    let response = h
        .client
        .post(h.collection())
        .header("content-type", "application/json")
        .body("{\"@odata.type\":")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("Graph's error body");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(
        body["error"]["innerError"]["request-id"].is_string(),
        "{body}"
    );
    assert_eq!(h.emulator().tasks().len(), seed::ALL_TASK_IDS.len());
}

#[tokio::test]
async fn drop_after_apply_creates_the_task_and_answers_nothing() {
    let h = start().await;
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let body = json!({"@odata.type": SECURITY_TASK, "displayName": "silent"});
    let error = post(&h, &body).await.expect_err("no response");
    assert!(!error.is_status(), "{error:?}");
    assert_eq!(named(&h, "silent").len(), 1, "applied exactly once");
    assert_eq!(h.emulator().received(), 1);
}

#[tokio::test]
async fn truncated_creates_the_task_and_cuts_its_answer() {
    let h = start().await;
    h.emulator().push_faults([Fault::truncated()]);
    let body = json!({"@odata.type": SECURITY_TASK, "displayName": "cut"});
    let response = post(&h, &body).await.expect("headers arrive");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.bytes().await.is_err(), "the body is cut short");
    assert_eq!(named(&h, "cut").len(), 1);
}

#[tokio::test]
async fn a_replacing_fault_creates_nothing() {
    let h = start().await;
    h.emulator().push_faults([
        Fault::new(503),
        Fault::throttled("1"),
        Fault::drop_connection(),
    ]);
    let body = json!({"@odata.type": SECURITY_TASK, "displayName": "refused"});
    for want in [Some(503), Some(429), None] {
        let got = post(&h, &body).await.ok().map(|r| r.status().as_u16());
        assert_eq!(got, want);
    }
    assert!(named(&h, "refused").is_empty());
    assert_eq!(h.emulator().tasks().len(), seed::ALL_TASK_IDS.len());
}

#[tokio::test]
async fn drop_after_apply_deletes_and_answers_nothing() {
    let h = start().await;
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let response = h
        .client
        .delete(h.task_url(seed::FIREWALL_TASK_ID))
        .send()
        .await;
    assert!(response.is_err(), "{response:?}");
    assert_eq!(h.emulator().task(seed::FIREWALL_TASK_ID), None, "applied");
    // Deleting again is Graph's 404.
    let again = h
        .client
        .delete(h.task_url(seed::FIREWALL_TASK_ID))
        .send()
        .await
        .expect("answered");
    let message = expect_error(again, StatusCode::NOT_FOUND, "itemNotFound").await;
    assert!(message.contains(seed::FIREWALL_TASK_ID), "{message}");
    let methods: Vec<String> = h
        .emulator()
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["DELETE", "DELETE"]);
}

#[tokio::test]
async fn chaos_faulted_creates_and_deletes_are_not_applied() {
    let chaos = Chaos::new(11, 50.0).with_statuses([500, 503]);
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_chaos(chaos),
    ))
    .await;
    let (mut created, mut refused) = (0usize, 0u64);
    for i in 0..40 {
        let body = json!({"@odata.type": SECURITY_TASK, "displayName": format!("c{i}")});
        let status = post(&h, &body).await.expect("answered").status();
        let stored = named(&h, &format!("c{i}")).len();
        if status == StatusCode::CREATED {
            created += 1;
            assert_eq!(stored, 1, "create {i}");
        } else {
            refused += 1;
            assert_eq!(stored, 0, "create {i}: {status}");
        }
    }
    assert!(
        created > 0 && refused > 0,
        "{created} created, {refused} refused"
    );
    let before = h.emulator().tasks().len();
    let mut deleted = 0;
    for task in h.emulator().tasks() {
        let id = task["id"].as_str().expect("id").to_owned();
        let status = h
            .client
            .delete(h.task_url(&id))
            .send()
            .await
            .expect("answered")
            .status();
        let gone = h.emulator().task(&id).is_none();
        assert_eq!(gone, status == StatusCode::NO_CONTENT, "{id}: {status}");
        if gone {
            deleted += 1;
            continue;
        }
        refused += 1;
    }
    assert_eq!(h.emulator().tasks().len(), before - deleted);
    assert_eq!(h.emulator().chaos_faults_injected(), refused);
}
