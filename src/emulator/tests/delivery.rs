//! Faults that change how (or whether) an answer reaches the client.

use std::time::Duration;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{json, start, Harness};
use crate::emulator::{seed, Fault};

fn display_name(h: &Harness) -> Value {
    h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"].clone()
}

async fn send_patch(h: &Harness, name: &str) -> reqwest::Result<reqwest::Response> {
    h.client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .json(&json!({"displayName": name}))
        .send()
        .await
}

#[tokio::test]
async fn truncated_applies_then_cuts_the_body() {
    let h = start().await;
    h.emulator().push_faults([Fault::truncated()]);
    let response = send_patch(&h, "cut").await.expect("headers arrive");
    assert_eq!(response.status(), StatusCode::OK);
    let announced: usize = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert!(announced > 100, "the full entity: {announced}");
    let body = response.bytes().await;
    assert!(body.is_err(), "the body is cut short: {body:?}");
    assert_eq!(display_name(&h), "cut", "applied");
    // The next request gets a whole answer.
    assert_eq!(
        json(h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await).await["displayName"],
        "cut"
    );
}

#[tokio::test]
async fn truncated_without_a_body_drops_the_connection() {
    let h = start().await;
    h.emulator().push_faults([Fault::truncated()]);
    let response = h
        .client
        .delete(h.task_url(seed::EXAMPLE_TASK_ID))
        .send()
        .await;
    assert!(response.is_err(), "{response:?}");
    assert!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).is_none(),
        "applied"
    );
}

#[tokio::test]
async fn drop_connection_sends_nothing_and_applies_nothing() {
    let h = start().await;
    h.emulator().push_faults([Fault::drop_connection()]);
    let error = send_patch(&h, "lost").await.expect_err("no response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(display_name(&h), "Display Name value", "not applied");
    assert_eq!(h.emulator().received(), 1);
    assert_eq!(
        send_patch(&h, "next").await.expect("answered").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn drop_after_apply_sends_nothing_but_applies() {
    let h = start().await;
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let error = send_patch(&h, "applied in silence")
        .await
        .expect_err("no response");
    assert!(!error.is_status(), "{error:?}");
    assert_eq!(display_name(&h), "applied in silence");
}

#[tokio::test]
async fn not_json_answers_200_with_an_html_page() {
    let h = start().await;
    h.emulator()
        .push_faults([Fault::not_json(), Fault::not_json()]);
    let response = h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/html; charset=utf-8"[..])
    );
    assert!(response.headers().get("request-id").is_some());
    let text = response.text().await.expect("text");
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err());

    let patch = send_patch(&h, "not applied").await.expect("answered");
    assert_eq!(patch.status(), StatusCode::OK);
    assert!(patch.json::<Value>().await.is_err());
    assert_eq!(display_name(&h), "Display Name value", "not applied");
}

#[tokio::test]
async fn a_delayed_answer_arrives_after_a_later_request_but_applies_at_once() {
    let h = start().await;
    h.emulator()
        .push_faults([Fault::unchanged().delayed(Duration::from_secs(2))]);
    let client = h.client.clone();
    let url = h.task_url(seed::EXAMPLE_TASK_ID);
    let slow = tokio::spawn(async move {
        client
            .patch(url)
            .json(&json!({"displayName": "slow"}))
            .send()
            .await
            .map(|r| r.status())
    });
    // The PATCH is applied before its answer is held back. (The timeout
    // only turns a regression into a failure instead of a hang.)
    let applied = async {
        while display_name(&h) != "slow" {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), applied)
        .await
        .expect("the PATCH is applied while its answer waits");
    let fast = h.get(&h.collection()).await;
    assert_eq!(fast.status(), StatusCode::OK);
    assert!(!slow.is_finished(), "the delayed answer is still held back");
    assert_eq!(slow.await.expect("task").expect("answered"), StatusCode::OK);
}

#[tokio::test]
async fn a_client_timeout_on_a_delayed_answer_leaves_the_change_applied() {
    let h = start().await;
    h.emulator()
        .push_faults([Fault::unchanged().delayed(Duration::from_secs(60))]);
    let error = h
        .client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .timeout(Duration::from_millis(300))
        .json(&json!({"displayName": "applied, answer late"}))
        .send()
        .await
        .expect_err("times out");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(display_name(&h), "applied, answer late");
}

#[tokio::test]
async fn delayed_faults_over_the_control_route() {
    let h = start().await;
    let response = h
        .client
        .post(h.control("/faults"))
        .json(&json!([
            {"body": "DropAfterApply", "delay_ms": 10},
            {"status": 200, "body": "NotJson"},
            {"status": 200, "body": "Truncated"}
        ]))
        .send()
        .await
        .expect("POST faults");
    assert_eq!(json(response).await, json!({"queued": 3, "pending": 3}));
    assert!(send_patch(&h, "a").await.is_err());
    assert_eq!(display_name(&h), "a");
    let html = h.get(&h.collection()).await;
    assert!(html.json::<Value>().await.is_err());
    let cut = send_patch(&h, "b").await.expect("headers");
    assert!(cut.bytes().await.is_err());
    assert_eq!(display_name(&h), "b");
}
