//! Intune's service limits over real HTTP: per app and per tenant, writes
//! and requests, the sliding window, what counts and what does not.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use super::{expect_error, json, start_with, Harness};
use crate::emulator::{seed, Emulator, EmulatorOptions, IntuneLimits, ANONYMOUS_APP};

const CONTOSO: &str = "contoso.onmicrosoft.com";
const FABRIKAM: &str = "fabrikam.onmicrosoft.com";
const APP_A: &str = "aaaaaaaa-0000-0000-0000-00000000000a";
const APP_B: &str = "bbbbbbbb-0000-0000-0000-00000000000b";
const APP_C: &str = "cccccccc-0000-0000-0000-00000000000c";

/// An emulator with the limits at `scale`, demanding tokens.
async fn limited(scale: f64) -> Harness {
    start_with(Emulator::with_options(
        EmulatorOptions::default()
            .with_require_auth(true)
            .with_intune_limits(IntuneLimits::scaled(scale)),
    ))
    .await
}

/// A PATCH of the sample task, with `token` when given.
async fn write(h: &Harness, token: Option<&str>, name: &str) -> Response {
    let mut request = h
        .client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .header("client-request-id", "write-1");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .json(&json!({"displayName": name}))
        .send()
        .await
        .expect("PATCH")
}

async fn read(h: &Harness, token: &str) -> Response {
    h.get_as(&h.task_url(seed::EXAMPLE_TASK_ID), token).await
}

/// `Retry-After` as Graph sends it with a fraction: `S.mmm`, more than 0.
fn fractional_retry_after(response: &Response) -> Duration {
    let text = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .expect("Retry-After")
        .to_owned();
    let (secs, millis) = text.split_once('.').expect("a fraction");
    assert_eq!(millis.len(), 3, "milliseconds: {text}");
    let secs: u64 = secs.parse().expect("seconds");
    let millis: u64 = millis.parse().expect("milliseconds");
    let wait = Duration::from_secs(secs) + Duration::from_millis(millis);
    assert!(!wait.is_zero(), "never 0: {text}");
    wait
}

/// Asserts a 429 from the limits with Graph's body; returns its wait and
/// message.
async fn expect_throttled(response: Response) -> (Duration, String) {
    assert!(response.headers().get("request-id").is_some());
    let wait = fractional_retry_after(&response);
    let message = expect_error(response, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests").await;
    (wait, message)
}

fn usage<'a>(report: &'a Value, tenant: &str, app: &str) -> &'a Value {
    report["apps"]
        .as_array()
        .and_then(|apps| {
            apps.iter()
                .find(|u| u["tenant"] == tenant && u["app"] == app)
        })
        .unwrap_or_else(|| panic!("no usage for {app} in {tenant}: {report}"))
}

#[tokio::test]
async fn writes_past_the_app_limit_get_429_with_a_fractional_retry_after_reads_pass_until_1000() {
    let h = limited(1.0).await;
    let token = h.token_for_app(CONTOSO, APP_A).await;
    for i in 0..100 {
        let answer = write(&h, Some(&token), &format!("write {i}")).await;
        assert!(
            answer.status().is_success(),
            "write {i}: {}",
            answer.status()
        );
    }
    let refused = write(&h, Some(&token), "the 101st").await;
    assert_eq!(
        refused
            .headers()
            .get("client-request-id")
            .map(|v| v.as_bytes()),
        Some(&b"write-1"[..]),
        "request ids as on every answer"
    );
    let (wait, message) = expect_throttled(refused).await;
    assert!(wait <= Duration::from_secs(20), "{wait:?}");
    assert!(
        message.contains(&format!("App '{APP_A}' in tenant '{CONTOSO}'")),
        "{message}"
    );
    assert!(message.contains("100 writes per 20s"), "{message}");
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        "write 99",
        "a refused write is not applied"
    );

    // Reads pass while writes are refused, until the app's 1000 requests
    // (the 100 admitted writes among them; the refusal is not counted).
    for i in 0..900 {
        assert_eq!(read(&h, &token).await.status(), StatusCode::OK, "read {i}");
    }
    let (_, message) = expect_throttled(read(&h, &token).await).await;
    assert!(message.contains("1000 requests per 20s"), "{message}");

    assert_eq!(h.emulator().intune_throttled(), 2);
    assert_eq!(h.emulator().intune_admitted_writes(), 100);
    assert_eq!(h.emulator().intune_admitted_requests(), 1000);
    let stats = json(h.get(&h.control("/stats")).await).await;
    assert_eq!(stats["intune_throttled"], 2, "{stats}");
    assert_eq!(stats["intune_admitted_writes"], 100, "{stats}");
    assert_eq!(stats["intune_admitted_requests"], 1000, "{stats}");
    let report = json(h.get(&h.control("/intune-limits")).await).await;
    let app = usage(&report, CONTOSO, APP_A);
    assert_eq!(app["peak_writes"], 100, "{report}");
    assert_eq!(app["peak_offered_writes"], 101, "{report}");
    assert_eq!(app["peak_requests"], 1000, "{report}");
    assert_eq!(app["refused_writes"], 1, "{report}");
    assert_eq!(app["refused_requests"], 2, "{report}");
    assert_eq!(report["tenants"][0]["tenant"], CONTOSO, "{report}");
    assert_eq!(report["tenants"][0]["app"], Value::Null, "{report}");

    h.emulator().reset();
    assert_eq!(h.emulator().intune_throttled(), 0);
    assert!(
        write(&h, Some(&token), "after reset")
            .await
            .status()
            .is_success(),
        "reset empties the windows"
    );
}

#[tokio::test]
async fn two_apps_each_get_their_own_100_writes_and_the_tenant_caps_them_at_200() {
    let h = limited(1.0).await;
    let a = h.token_for_app(CONTOSO, APP_A).await;
    let b = h.token_for_app(CONTOSO, APP_B).await;
    let c = h.token_for_app(CONTOSO, APP_C).await;
    let elsewhere = h.token_for_app(FABRIKAM, APP_A).await;
    for (app, token) in [(APP_A, &a), (APP_B, &b)] {
        for i in 0..100 {
            let answer = write(&h, Some(token), app).await;
            assert!(answer.status().is_success(), "{app} write {i}");
        }
        let (_, message) = expect_throttled(write(&h, Some(token), app).await).await;
        assert!(message.contains(&format!("App '{app}'")), "{message}");
    }
    // A third app has written nothing, but the tenant's 200 are spent.
    let (_, message) = expect_throttled(write(&h, Some(&c), "c").await).await;
    assert!(
        message.contains(&format!("Tenant '{CONTOSO}' (all apps together)")),
        "{message}"
    );
    assert!(message.contains("200 writes per 20s"), "{message}");
    assert_eq!(read(&h, &c).await.status(), StatusCode::OK, "reads pass");
    // The same app id in another tenant has its own windows.
    assert!(write(&h, Some(&elsewhere), "f").await.status().is_success());

    let report = h.emulator().intune_usage();
    assert_eq!(report.throttled, 3);
    assert_eq!(report.admitted_writes, 201);
    let tenant = report
        .tenants
        .iter()
        .find(|t| t.tenant == CONTOSO)
        .expect("contoso");
    assert_eq!((tenant.peak_writes, tenant.refused_writes), (200, 3));
    let app_c = report
        .apps
        .iter()
        .find(|u| u.app.as_deref() == Some(APP_C))
        .expect("app c");
    assert_eq!((app_c.admitted_writes, app_c.admitted_requests), (0, 1));
}

#[tokio::test]
async fn the_window_slides_a_write_is_admitted_once_the_retry_after_has_passed() {
    // Scale 20: 100 writes per second. No token: the anonymous app.
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_intune_limits(IntuneLimits::scaled(20.0)),
    ))
    .await;
    for i in 0..100 {
        assert!(
            write(&h, None, "w").await.status().is_success(),
            "write {i}"
        );
    }
    let first = write(&h, None, "refused").await;
    let (wait, message) = expect_throttled(first).await;
    assert!(wait <= Duration::from_secs(1), "{wait:?}");
    assert!(message.contains("100 writes per 1s"), "{message}");
    assert!(
        message.contains(&format!("App '{ANONYMOUS_APP}'")),
        "{message}"
    );
    // Nothing was admitted since: the same oldest entry binds, sooner.
    let (again, _) = expect_throttled(write(&h, None, "refused").await).await;
    assert!(again <= wait, "{again:?} after {wait:?}");

    // The behaviour under test is the wait itself: exactly what was told.
    tokio::time::sleep(again).await;
    let admitted = write(&h, None, "after the wait").await;
    assert!(admitted.status().is_success(), "{}", admitted.status());
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        "after the wait"
    );
    let report = h.emulator().intune_usage();
    assert_eq!(report.admitted_writes, 101);
    assert_eq!(
        report.apps[0].peak_writes, 100,
        "never more than 100 in a window"
    );
    assert_eq!(report.apps[0].app.as_deref(), Some(ANONYMOUS_APP));
}

#[tokio::test]
async fn the_token_endpoint_control_routes_and_refused_bearers_do_not_count() {
    let h = limited(1.0).await;
    let token = h.token_for_app(CONTOSO, APP_A).await;
    for i in 0..99 {
        assert!(
            write(&h, Some(&token), "w").await.status().is_success(),
            "{i}"
        );
    }
    // None of these is a Graph request Intune's limits meter: 20 token
    // requests, control routes (writes among them), requests refused 401.
    for _ in 0..20 {
        h.token_for_app(CONTOSO, APP_A).await;
    }
    for _ in 0..5 {
        let queued = h
            .client
            .post(h.control("/faults"))
            .json(&json!([]))
            .send()
            .await
            .expect("POST faults");
        assert_eq!(queued.status(), StatusCode::OK);
        assert_eq!(h.get(&h.control("/stats")).await.status(), StatusCode::OK);
        assert_eq!(
            h.get(&h.control("/intune-limits")).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            write(&h, None, "no bearer").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(h.emulator().intune_admitted_requests(), 99);
    assert!(
        write(&h, Some(&token), "the 100th")
            .await
            .status()
            .is_success(),
        "nothing else took a place in the window"
    );
    expect_throttled(write(&h, Some(&token), "the 101st").await).await;
    let report = h.emulator().intune_usage();
    assert_eq!(report.apps.len(), 1, "{report:?}");
    assert_eq!(report.admitted_requests, 100);
}

#[tokio::test]
async fn put_options_turns_the_limits_on_and_refuses_nonsense_scales() {
    let h = start_with(Emulator::new()).await;
    for bad in [
        json!({"intune_limits": {"scale": 0}}),
        json!({"intune_limits": {"scale": 0.5}}),
        json!({"intune_limits": {"scale": -10}}),
        json!({"intune_limits": {"scale": 1000.5}}),
        json!({"intune_limits": {"scale": "fast"}}),
        json!({"intune_limits": {"per": "2s"}}),
    ] {
        let refused = h
            .client
            .put(h.control("/options"))
            .json(&bad)
            .send()
            .await
            .expect("PUT options");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json(refused).await["error"].is_string(), "{bad}");
    }
    // A number out of f64's range is refused too (JSON has no infinity).
    let huge = h
        .client
        .put(h.control("/options"))
        .header("content-type", "application/json")
        .body(r#"{"intune_limits": {"scale": 1e400}}"#)
        .send()
        .await
        .expect("PUT options");
    assert_eq!(huge.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        h.emulator().options().intune_limits,
        None,
        "refusals change nothing"
    );

    let put = |body: Value| {
        let request = h.client.put(h.control("/options")).json(&body);
        async move { json(request.send().await.expect("PUT options")).await }
    };
    let on = put(json!({"intune_limits": {}})).await;
    assert_eq!(on["intune_limits"]["scale"], 1.0, "{on}");
    let on = put(json!({"intune_limits": {"scale": 1000}})).await;
    assert_eq!(on["intune_limits"]["scale"], 1000.0, "{on}");
    assert_eq!(
        h.emulator().options().intune_limits,
        Some(IntuneLimits::scaled(1000.0))
    );
    assert!(write(&h, None, "w").await.status().is_success());
    assert_eq!(
        h.emulator().intune_admitted_writes(),
        1,
        "metered from now on"
    );
}

#[tokio::test]
async fn items_admitted_one_by_one_share_the_windows_of_graph_requests() {
    let h = limited(1.0).await;
    let token = h.token_for_app(CONTOSO, APP_A).await;
    // What a `$batch` route does for each inner write.
    for i in 0..100 {
        assert_eq!(
            h.emulator().admit_intune(CONTOSO, APP_A, true),
            Ok(()),
            "{i}"
        );
    }
    let refusal = h
        .emulator()
        .admit_intune(CONTOSO, APP_A, true)
        .expect_err("the app's 100 are spent");
    assert!(refusal.retry_after > Duration::ZERO);
    expect_throttled(write(&h, Some(&token), "over HTTP").await).await;
    assert_eq!(read(&h, &token).await.status(), StatusCode::OK);

    // With the limits off nothing is metered.
    let plain = Emulator::new();
    for _ in 0..200 {
        assert_eq!(plain.admit_intune(CONTOSO, APP_A, true), Ok(()));
    }
    assert_eq!(plain.intune_admitted_writes(), 0);
}
