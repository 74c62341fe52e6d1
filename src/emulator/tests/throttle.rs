use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::json;

use super::{expect_error, json, start_with};
use crate::emulator::{seed, Emulator, EmulatorOptions, TenantBudget};

const CONTOSO: &str = "contoso.onmicrosoft.com";
const FABRIKAM: &str = "fabrikam.onmicrosoft.com";

fn budget(requests: u32) -> EmulatorOptions {
    EmulatorOptions::default()
        .with_tenant_budget(TenantBudget::new(requests, Duration::from_secs(3600)))
}

#[tokio::test]
async fn a_tenant_past_its_budget_gets_429_with_retry_after_others_do_not() {
    let h = start_with(Emulator::with_options(budget(3).with_require_auth(true))).await;
    let contoso = h.token(CONTOSO).await;
    let fabrikam = h.token(FABRIKAM).await;
    let url = h.task_url(seed::EXAMPLE_TASK_ID);
    for _ in 0..3 {
        assert_eq!(h.get_as(&url, &contoso).await.status(), StatusCode::OK);
    }
    let throttled = h.get_as(&url, &contoso).await;
    let retry_after: u64 = throttled
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    expect_error(throttled, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests").await;

    // A throttled PATCH is not applied.
    let patch = h
        .client
        .patch(&url)
        .bearer_auth(&contoso)
        .json(&json!({"displayName": "throttled"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(patch.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        "Display Name value"
    );

    for _ in 0..3 {
        assert_eq!(h.get_as(&url, &fabrikam).await.status(), StatusCode::OK);
    }
    assert_eq!(
        h.get_as(&url, &fabrikam).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(h.emulator().throttled(), 3);
    let stats = json(h.get(&h.control("/stats")).await).await;
    assert_eq!(stats["throttled"], 3);

    h.emulator().reset();
    assert_eq!(h.emulator().throttled(), 0);
    assert_eq!(
        h.get_as(&url, &contoso).await.status(),
        StatusCode::OK,
        "reset opens new windows and keeps tokens"
    );
}

#[tokio::test]
async fn requests_without_a_known_token_share_the_anonymous_budget() {
    let h = start_with(Emulator::with_options(budget(2))).await;
    let url = h.collection();
    assert_eq!(h.get(&url).await.status(), StatusCode::OK);
    assert_eq!(
        h.get_as(&url, "not-issued-here").await.status(),
        StatusCode::OK
    );
    let message = expect_error(
        h.get(&url).await,
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
    )
    .await;
    assert!(message.contains("anonymous"), "{message}");
    let token = h.token(CONTOSO).await;
    assert_eq!(h.get_as(&url, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_window_reopens_once_it_has_passed() {
    // A zero-length window: every request opens a new one.
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_tenant_budget(TenantBudget::new(1, Duration::ZERO)),
    ))
    .await;
    for _ in 0..5 {
        assert_eq!(h.get(&h.collection()).await.status(), StatusCode::OK);
    }
    assert_eq!(h.emulator().throttled(), 0);
}
