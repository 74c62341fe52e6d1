use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{json, start, start_with};
use crate::emulator::{redact_authorization, seed, Emulator, RecordedRequest, RequestKind};

#[tokio::test]
async fn control_routes_script_faults_count_and_reset() {
    let h = start().await;
    let faults = json!([
        {"status": 429, "retry_after": "3"},
        {"status": 502, "body": {"Raw": "<html>bad gateway</html>"}},
        {"status": 503, "body": "Empty"},
        {"status": 204, "body": "NoContentAfterApply"}
    ]);
    let response = h
        .client
        .post(h.control("/faults"))
        .json(&faults)
        .send()
        .await
        .expect("POST faults");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await, json!({"queued": 4, "pending": 4}));

    let url = h.task_url(seed::EXAMPLE_TASK_ID);
    let first = h.get(&url).await;
    assert_eq!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        first.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"3"[..])
    );
    assert_eq!(h.get(&url).await.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(h.get(&url).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let applied = h
        .patch(seed::EXAMPLE_TASK_ID, &json!({"priority": "low"}))
        .await;
    assert_eq!(applied.status(), StatusCode::NO_CONTENT);

    let counted = json(h.get(&h.control("/requests")).await).await;
    assert_eq!(
        counted,
        json!({"received": 4}),
        "control routes do not count"
    );

    let reset = h
        .client
        .post(h.control("/reset"))
        .send()
        .await
        .expect("POST reset");
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        json(h.get(&h.control("/requests")).await).await["received"],
        0
    );
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID),
        seed::tasks().into_iter().next()
    );
}

#[tokio::test]
async fn bad_fault_scripts_are_refused_whole() {
    let h = start().await;
    for body in [
        json!({"status": "429"}),
        json!([{"status": 429}, {"status": 700}]),
        json!([{"status": 429, "retry_after": "a\nb"}]),
        json!([{"status": 500, "body": "Sometimes"}]),
    ] {
        let response = h
            .client
            .post(h.control("/faults"))
            .json(&body)
            .send()
            .await
            .expect("POST faults");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(h.emulator().pending_faults(), 0);
    let single = h
        .client
        .post(h.control("/faults"))
        .json(&json!({"status": 500}))
        .send()
        .await
        .expect("POST faults");
    assert_eq!(single.status(), StatusCode::OK);
    assert_eq!(h.emulator().pending_faults(), 1);
}

#[tokio::test]
async fn request_log_records_what_the_gateway_sent() {
    let h = start().await;
    h.client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .header("authorization", "Bearer token-1")
        .header("client-request-id", "c-1")
        .json(&json!({"displayName": "logged"}))
        .send()
        .await
        .expect("PATCH");
    h.client
        .post(h.collection())
        .body("not json")
        .send()
        .await
        .expect("POST");
    h.get(&format!(
        "{}?$top=1&$filter=status%20eq%20%27x%27",
        h.collection()
    ))
    .await;

    let log = h.emulator().requests();
    assert_eq!(
        log[0],
        RecordedRequest {
            method: "PATCH".into(),
            path_and_query: format!(
                "/beta/deviceAppManagement/deviceAppManagementTasks/{}",
                seed::EXAMPLE_TASK_ID
            ),
            client_request_id: Some("c-1".into()),
            authorization: Some(redact_authorization(b"Bearer token-1")),
            headers: log[0].headers.clone(),
            body: Some(json!({"displayName": "logged"})),
            kind: RequestKind::Single,
        }
    );
    assert!(log[0]
        .headers
        .contains(&("client-request-id".into(), "c-1".into())));
    assert_eq!(log[1].body, Some(Value::String("not json".into())));
    assert_eq!(
        log[2].path_and_query,
        "/beta/deviceAppManagement/deviceAppManagementTasks?$top=1&$filter=status%20eq%20%27x%27"
    );
    assert_eq!(log[2].body, None);

    assert!(log[0].headers.contains(&(
        "authorization".into(),
        redact_authorization(b"Bearer token-1")
    )));

    let over_http = json(h.get(&h.control("/requests?log=true")).await).await;
    assert_eq!(over_http["received"], 3);
    let redacted = over_http["requests"][0]["authorization"]
        .as_str()
        .expect("authorization");
    assert!(
        redacted.starts_with("Bearer <redacted sha256:"),
        "{redacted}"
    );
    assert!(
        !over_http.to_string().contains("token-1"),
        "the credential is not kept: {over_http}"
    );
}

#[tokio::test]
async fn the_request_log_is_off_unless_asked_for() {
    let emulator = Emulator::new();
    assert!(!emulator.options().record_requests);
    let running = emulator
        .spawn("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("bind loopback");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let task = format!(
        "{}/deviceAppManagement/deviceAppManagementTasks/{}",
        running.base_url,
        seed::EXAMPLE_TASK_ID
    );
    let get = || {
        client
            .get(&task)
            .header("authorization", "Bearer kept-nowhere")
    };
    assert_eq!(get().send().await.expect("GET").status(), 200);
    assert_eq!(running.emulator.received(), 1, "counted");
    assert!(running.emulator.requests().is_empty(), "not logged");

    // Asked for at run time, it logs from then on.
    let put = client
        .put(format!(
            "{}/_emulator/options",
            running.base_url.trim_end_matches("/beta")
        ))
        .body(r#"{"record_requests": true}"#)
        .send()
        .await
        .expect("PUT options");
    assert_eq!(put.status(), 200);
    assert_eq!(get().send().await.expect("GET").status(), 200);
    let log = running.emulator.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].authorization,
        Some(redact_authorization(b"Bearer kept-nowhere"))
    );
    assert_eq!(running.emulator.received(), 2);
}

#[tokio::test]
async fn reset_restores_what_the_emulator_started_with() {
    let h = start_with(Emulator::empty()).await;
    let id = h.emulator().insert(json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "status": "someFutureStatus"
    }));
    let fetched = json(h.get(&h.task_url(&id)).await).await;
    assert_eq!(fetched["status"], "someFutureStatus", "stored as is");
    h.emulator().reset();
    assert!(h.emulator().tasks().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_are_all_answered_and_counted() {
    let h = start().await;
    // Bounded in flight so the test stays under the default fd limit.
    let in_flight = Arc::new(Semaphore::new(100));
    let mut requests = JoinSet::new();
    for i in 0..2000_u32 {
        let client = h.client.clone();
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("semaphore");
        let url = if i % 2 == 0 {
            h.task_url(seed::FIREWALL_TASK_ID)
        } else {
            format!("{}?$top=2", h.collection())
        };
        requests.spawn(async move {
            let status = client.get(url).send().await.map(|r| r.status());
            drop(permit);
            status
        });
    }
    while let Some(joined) = requests.join_next().await {
        let status = joined.expect("task").expect("response");
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(h.emulator().received(), 2000);
    assert_eq!(h.emulator().requests().len(), 2000);
    h.running.shutdown().await;
}
