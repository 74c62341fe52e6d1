//! The `updateStatus` action: its spellings, its answer, what it keeps, and
//! how it meets the journal, scripted faults and chaos like every route.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{expect_error, start, start_with, Harness};
use crate::emulator::{seed, Chaos, Emulator, EmulatorOptions, Fault};

fn action(h: &Harness, id: &str, spelling: &str) -> String {
    format!("{}/{spelling}", h.task_url(id))
}

async fn post(h: &Harness, url: &str, body: &Value) -> reqwest::Response {
    h.client.post(url).json(body).send().await.expect("POST")
}

#[tokio::test]
async fn both_spellings_set_the_status_and_answer_204_without_a_body() {
    let h = start().await;
    let id = seed::EXAMPLE_TASK_ID;
    for (spelling, status) in [
        ("updateStatus", "completed"),
        ("microsoft.graph.updateStatus", "rejected"),
        ("Microsoft.Graph.UpdateStatus", "active"),
    ] {
        let response = post(
            &h,
            &action(&h, id, spelling),
            &json!({"status": status, "note": spelling}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{spelling}");
        assert!(response.headers().get("request-id").is_some());
        assert!(response.bytes().await.expect("body").is_empty());
        assert_eq!(h.emulator().task(id).expect("task")["status"], status);
    }
    assert_eq!(
        h.emulator().status_notes(id),
        [
            "updateStatus",
            "microsoft.graph.updateStatus",
            "Microsoft.Graph.UpdateStatus"
        ]
    );
}

#[tokio::test]
async fn the_note_is_kept_but_never_returned() {
    let h = start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let note = "private reason 8d1f";
    let response = post(
        &h,
        &action(&h, id, "updateStatus"),
        &json!({"status": "rejected", "note": note}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.emulator().status_notes(id), [note]);
    let task = h.emulator().task(id).expect("task");
    assert!(!task.to_string().contains(note), "{task}");
    assert!(task.get("note").is_none());
    for url in [h.task_url(id), h.collection()] {
        let text = h.get(&url).await.text().await.expect("text");
        assert!(!text.contains(note), "{url}: {text}");
    }
    // A note left out or null is kept as empty.
    for body in [
        json!({"status": "pending"}),
        json!({"status": "active", "note": null}),
    ] {
        let response = post(&h, &action(&h, id, "updateStatus"), &body).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(h.emulator().status_notes(id), [note, "", ""]);
    // A deleted task's notes go with it.
    let response = h
        .client
        .delete(h.task_url(id))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(h.emulator().status_notes(id).is_empty());
}

#[tokio::test]
async fn a_status_that_is_not_a_member_is_400_and_changes_nothing() {
    let h = start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let url = action(&h, id, "microsoft.graph.updateStatus");
    let before = h.emulator().task(id).expect("task");
    for bad in [
        json!({"status": "finished", "note": "n"}),
        json!({"status": 2}),
        json!({"status": "active", "note": 7}),
        json!({"status": "active", "reason": "x"}),
    ] {
        let message = expect_error(
            post(&h, &url, &bad).await,
            StatusCode::BAD_REQUEST,
            "invalidRequest",
        )
        .await;
        assert!(!message.is_empty(), "{bad}");
    }
    assert_eq!(h.emulator().task(id), Some(before));
    assert!(h.emulator().status_notes(id).is_empty());
}

#[tokio::test]
async fn any_task_type_takes_the_action() {
    // Graph declares the action on the base type: the type check is the
    // client's to make.
    let h = start().await;
    let id = seed::APP_VULNERABILITY_TASK_ID;
    let response = post(
        &h,
        &action(&h, id, "updateStatus"),
        &json!({"status": "completed", "note": ""}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let task = h.emulator().task(id).expect("task");
    assert_eq!(task["status"], "completed");
    assert_eq!(task["@odata.type"], "#microsoft.graph.appVulnerabilityTask");
}

#[tokio::test]
async fn the_journal_records_the_action_with_its_body() {
    let h = start().await;
    let url = action(&h, seed::EXAMPLE_TASK_ID, "updateStatus");
    let body = json!({"status": "completed", "note": "done"});
    let response = h
        .client
        .post(&url)
        .header("client-request-id", "0d8f3f5e-1111-4a2b-9c3d-222233334444")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let requests = h.emulator().requests();
    let last = requests.last().expect("recorded");
    assert_eq!(last.method, "POST");
    assert_eq!(
        last.path_and_query,
        format!(
            "/beta/deviceAppManagement/deviceAppManagementTasks/{}/updateStatus",
            seed::EXAMPLE_TASK_ID
        )
    );
    assert_eq!(last.body, Some(body));
    assert_eq!(
        last.client_request_id.as_deref(),
        Some("0d8f3f5e-1111-4a2b-9c3d-222233334444")
    );
}

#[tokio::test]
async fn faults_replace_or_follow_the_action() {
    let h = start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let url = action(&h, id, "updateStatus");
    // A replacing fault: not applied.
    h.emulator().push_faults([Fault::new(503)]);
    let response = post(&h, &url, &json!({"status": "completed", "note": "a"})).await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "serviceNotAvailable",
    )
    .await;
    assert_eq!(h.emulator().task(id).expect("task")["status"], "pending");
    assert!(h.emulator().status_notes(id).is_empty());
    // Applied, then the connection drops: the client gets no answer, the
    // status is set.
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let lost = h
        .client
        .post(&url)
        .json(&json!({"status": "rejected", "note": "b"}))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(h.emulator().task(id).expect("task")["status"], "rejected");
    assert_eq!(h.emulator().status_notes(id), ["b"]);
    // Dropped before it is applied.
    h.emulator().push_faults([Fault::drop_connection()]);
    let lost = h
        .client
        .post(&url)
        .json(&json!({"status": "active", "note": "c"}))
        .send()
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(h.emulator().task(id).expect("task")["status"], "rejected");
    assert_eq!(h.emulator().status_notes(id), ["b"]);
    assert_eq!(h.emulator().pending_faults(), 0);
}

#[tokio::test]
async fn chaos_refuses_some_actions_and_those_change_nothing() {
    let emulator = Emulator::with_options(
        EmulatorOptions::default().with_chaos(Chaos::new(11, 50.0).with_statuses([503])),
    );
    let h = start_with(emulator).await;
    let id = seed::EXAMPLE_TASK_ID;
    let url = action(&h, id, "updateStatus");
    let (mut applied, mut refused) = (0, 0);
    for i in 0..40 {
        let status = if i % 2 == 0 { "active" } else { "completed" };
        let response = post(&h, &url, &json!({"status": status, "note": i.to_string()})).await;
        match response.status() {
            StatusCode::NO_CONTENT => {
                applied += 1;
                assert_eq!(h.emulator().task(id).expect("task")["status"], status);
            }
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        applied > 0 && refused > 0,
        "{applied} applied, {refused} refused"
    );
    assert_eq!(h.emulator().chaos_faults_injected(), refused);
    assert_eq!(h.emulator().status_notes(id).len(), applied as usize);
}
