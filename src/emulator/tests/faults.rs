use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;

use super::{expect_error, json, start};
use crate::emulator::{seed, Fault, FaultBody};

#[tokio::test]
async fn graph_error_fault_uses_default_code_and_passes_retry_after() {
    let h = start().await;
    h.emulator().push_faults([
        Fault::throttled("7"),
        Fault::new(503).with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Fault::new(403)
            .with_code("Authorization_RequestDenied")
            .with_message("Insufficient privileges."),
    ]);
    let url = h.task_url(seed::EXAMPLE_TASK_ID);

    let response = h.get(&url).await;
    assert_eq!(
        response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"7"[..])
    );
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests").await;

    let response = h.get(&url).await;
    assert_eq!(
        response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"Wed, 21 Oct 2015 07:28:00 GMT"[..])
    );
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "serviceNotAvailable",
    )
    .await;

    let response = h.get(&url).await;
    let message = expect_error(
        response,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    )
    .await;
    assert_eq!(message, "Insufficient privileges.");

    assert_eq!(h.get(&url).await.status(), StatusCode::OK, "faults used up");
}

#[tokio::test]
async fn raw_and_empty_faults_send_what_a_proxy_would() {
    let h = start().await;
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    h.emulator().push_faults([
        Fault::raw(502, html),
        Fault::empty(504),
        Fault::raw(500, "oops"),
    ]);
    let url = h.collection();

    let response = h.get(&url).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    assert_eq!(
        content_type.as_ref().map(|v| v.as_bytes()),
        Some(&b"text/html; charset=utf-8"[..])
    );
    assert!(response.headers().get("request-id").is_some());
    assert_eq!(response.text().await.expect("text"), html);

    let response = h.get(&url).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(response.headers().get(CONTENT_TYPE).is_none());
    assert!(response.bytes().await.expect("body").is_empty());

    let response = h.get(&url).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.text().await.expect("text"), "oops");
}

#[tokio::test]
async fn no_content_after_apply_applies_the_patch_then_answers_204() {
    let h = start().await;
    h.emulator().push_faults([Fault::no_content_after_apply()]);
    let response = h
        .patch(seed::EXAMPLE_TASK_ID, &json!({"displayName": "applied"}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().get("request-id").is_some());
    assert!(response.bytes().await.expect("body").is_empty());
    let stored = h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task");
    assert_eq!(stored["displayName"], "applied");
    let fetched = json(h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await).await;
    assert_eq!(fetched["displayName"], "applied");
}

#[tokio::test]
async fn no_content_after_apply_leaves_errors_alone() {
    let h = start().await;
    h.emulator().push_faults([
        Fault::no_content_after_apply(),
        Fault::no_content_after_apply(),
    ]);
    let response = h.patch("missing", &json!({"displayName": "x"})).await;
    expect_error(response, StatusCode::NOT_FOUND, "itemNotFound").await;
    let response = h
        .patch(seed::EXAMPLE_TASK_ID, &json!({"status": "nope"}))
        .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalidRequest").await;
}

#[tokio::test]
async fn faults_are_consumed_in_order_one_per_request_on_any_graph_route() {
    let h = start().await;
    h.emulator()
        .push_faults([500, 503, 429, 404].map(Fault::new));
    assert_eq!(h.emulator().pending_faults(), 4);
    let statuses = [
        h.get(&h.collection()).await.status(),
        h.get(&h.url("/not/a/route")).await.status(),
        h.patch(seed::EXAMPLE_TASK_ID, &json!({"displayName": "blocked"}))
            .await
            .status(),
        h.client
            .delete(h.task_url(seed::EXAMPLE_TASK_ID))
            .send()
            .await
            .expect("DELETE")
            .status(),
        h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await.status(),
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [500, 503, 429, 404, 200]);
    let task = h
        .emulator()
        .task(seed::EXAMPLE_TASK_ID)
        .expect("not deleted");
    assert_eq!(
        task["displayName"], "Display Name value",
        "faulted PATCH not applied"
    );
    assert_eq!(h.emulator().received(), 5, "faulted requests count");
    assert_eq!(h.emulator().pending_faults(), 0);
}

#[tokio::test]
async fn an_unsendable_fault_answers_500_instead_of_panicking() {
    let h = start().await;
    h.emulator().push_faults([Fault {
        status: 42,
        code: None,
        message: None,
        retry_after: None,
        body: FaultBody::GraphError,
    }]);
    let message = expect_error(
        h.get(&h.collection()).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "UnknownError",
    )
    .await;
    assert!(message.contains("42"), "{message}");
}
