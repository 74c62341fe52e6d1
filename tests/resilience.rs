//! Surviving a struggling Graph: what is retried and when, Retry-After in
//! both forms, deadlines shorter than Graph's delay, the retry budget, the
//! shared throttle pause, load shedding and redirects.

mod common;

use common::{config, fake_cloud, fault, get, without_retries, Harness};
use graph_grpc_gateway::budget::{BudgetSettings, Rate};
use graph_grpc_gateway::config::GraphTarget;
use graph_grpc_gateway::emulator::{seed, Fault};
use graph_grpc_gateway::graph::Admission;
use graph_grpc_gateway::proto::v1::{
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tonic::{Code, Request};
use tonic_types::StatusExt;

async fn metrics(h: &Harness) -> String {
    reqwest::get(h.admin_url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn throttled_and_unavailable_answers_are_retried() {
    let mut h = Harness::start().await;
    for (status, retry_after) in [(429, Some("0")), (503, None), (504, None)] {
        h.emulator().reset();
        h.emulator().push_faults([Fault {
            retry_after: retry_after.map(str::to_owned),
            ..fault(status)
        }]);
        let got = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .unwrap_or_else(|s| panic!("{status} then OK: {s:?}"))
            .into_inner();
        assert_eq!(got.id, seed::EXAMPLE_TASK_ID);
        assert_eq!(h.emulator().received(), 2, "{status}: one retry");
    }
    let text = metrics(&h).await;
    for reason in ["429", "503", "504"] {
        let line = format!("graph_gateway_graph_retries_total{{reason=\"{reason}\"}} 1");
        assert!(text.contains(&line), "{line}\n{text}");
    }
}

#[tokio::test]
async fn an_update_is_retried_and_applied_once() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([fault(503), fault(429)]);
    let req = UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: seed::EXAMPLE_TASK_ID.into(),
            insights: Some("after two retries".into()),
            ..Default::default()
        }),
        update_mask: None,
        ..Default::default()
    };
    let got = h
        .client
        .update_security_configuration_task(req)
        .await
        .expect("OK after retries")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("after two retries"));
    let methods: Vec<_> = h
        .emulator()
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["PATCH", "PATCH", "PATCH"]);
    let stored = h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task");
    assert_eq!(stored["insights"], "after two retries");
}

#[tokio::test]
async fn other_failures_are_not_retried() {
    let mut h = Harness::start().await;
    // (A 401 is sent once more with a new token: see tests/tokens.rs.)
    for status in [400, 403, 404, 409, 500, 502] {
        h.emulator().reset();
        h.emulator().push_faults([fault(status)]);
        let _ = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err("fails");
        assert_eq!(h.emulator().received(), 1, "{status} is not retried");
    }
}

#[tokio::test]
async fn retries_stop_after_the_limit_with_the_last_failure() {
    let mut h = Harness::start().await;
    h.emulator()
        .push_faults([fault(503), fault(503), fault(503), fault(503)]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("gives up");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(
        h.emulator().received(),
        4,
        "the first attempt and 3 retries"
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let mut h = Harness::start().await;
    let start = SystemTime::now();
    let date = httpdate::fmt_http_date(start + Duration::from_secs(2));
    // HTTP dates have whole seconds: this is what Graph asked for.
    let asked = httpdate::parse_http_date(&date)
        .expect("date")
        .duration_since(start)
        .unwrap_or_default();
    h.emulator().push_faults([Fault {
        retry_after: Some(date),
        ..fault(429)
    }]);
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK after waiting");
    assert_eq!(h.emulator().received(), 2);
    // A lower bound only: the retry cannot have been sent before the date.
    assert!(start.elapsed().expect("clock") >= asked);
}

#[tokio::test]
async fn an_exhausted_budget_stops_retries() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.retry.budget_percent = 0.0;
    cfg.graph_stack.retry.budget_min_per_second = 0;
    let mut h = Harness::with_config(cfg).await;
    h.emulator().push_faults([fault(503)]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("no budget");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(h.emulator().received(), 1);
    let text = metrics(&h).await;
    assert!(
        text.contains("graph_gateway_graph_retries_skipped_total{reason=\"budget\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deadline_shorter_than_graphs_delay_fails_at_once_with_retry_info() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault {
        retry_after: Some("30".into()),
        ..fault(503)
    }]);
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.set_timeout(Duration::from_secs(5));
    let s = h
        .client
        .get_security_configuration_task(req)
        .await
        .expect_err("too late to retry");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(
        s.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(30))
    );
    assert_eq!(h.emulator().received(), 1);
}

#[tokio::test]
async fn a_throttle_pause_is_shared_by_every_call() {
    let mut h = without_retries().await;
    h.emulator().push_faults([Fault {
        retry_after: Some("1".into()),
        ..fault(429)
    }]);
    let first = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("throttled");
    assert_eq!(first.code(), Code::ResourceExhausted);

    // A call that cannot wait out the pause fails at once, unsent.
    let mut hurried = Request::new(get(seed::EXAMPLE_TASK_ID));
    hurried.set_timeout(Duration::from_millis(200));
    let s = h
        .client
        .get_security_configuration_task(hurried)
        .await
        .expect_err("fails fast");
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "GRAPH_THROTTLED"
    );
    assert!(s.get_details_retry_info().is_some());
    assert_eq!(h.emulator().received(), 1, "the hurried call was not sent");

    // A call that can wait is sent once the pause is over.
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK after the pause");
    assert_eq!(h.emulator().received(), 2);
    let text = metrics(&h).await;
    assert!(
        text.contains("graph_gateway_graph_throttle_waits_total 1"),
        "{text}"
    );
    assert!(
        text.contains("graph_gateway_graph_throttle_fail_fast_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn retries_carry_retry_attempt() {
    let (url, cloud) = fake_cloud::start().await;
    cloud.flaky_failures.store(2, Ordering::SeqCst);
    let mut h = Harness::with_config(config(fake_cloud::graph_with_credentials(&url))).await;
    let got = h
        .client
        .get_security_configuration_task(get(fake_cloud::FLAKY))
        .await
        .expect("OK on the third attempt")
        .into_inner();
    assert_eq!(got.id, fake_cloud::FLAKY);
    assert_eq!(*cloud.retry_attempts.lock().expect("lock"), ["", "1", "2"]);
}

/// A gateway in front of the fake cloud with room for `max_in_flight` Graph
/// calls and `max_queued` waiting ones.
async fn admitting(max_in_flight: usize, max_queued: usize) -> (Harness, fake_cloud::FakeCloud) {
    let (url, cloud) = fake_cloud::start().await;
    let mut cfg = config(fake_cloud::graph_with_credentials(&url));
    cfg.graph_stack.admission = Admission {
        max_in_flight,
        max_queued,
    };
    (Harness::with_config(cfg).await, cloud)
}

/// A call Graph holds until `cloud.release`.
type Held =
    tokio::task::JoinHandle<Result<tonic::Response<SecurityConfigurationTask>, tonic::Status>>;

/// Starts a call that Graph holds until `cloud.release`; returns once Graph
/// has it.
async fn hold_the_only_slot(h: &Harness, cloud: &fake_cloud::FakeCloud) -> Held {
    let mut holder = h.client.clone();
    let held = tokio::spawn(async move {
        holder
            .get_security_configuration_task(get(fake_cloud::HELD))
            .await
    });
    cloud.arrived.notified().await;
    held
}

/// Lets Graph answer the held call, which must then complete OK.
async fn release_the_slot(cloud: &fake_cloud::FakeCloud, held: Held) {
    cloud.release.notify_one();
    held.await
        .expect("joined")
        .expect("the held call completes");
}

/// Waits until the gateway reports `n` calls waiting for a Graph slot.
async fn until_queued(h: &Harness, n: u32) {
    let want = format!("graph_gateway_graph_queued {n}\n");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !metrics(h).await.contains(&want) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the call queued");
}

fn assert_overloaded(s: &tonic::Status, message: &str) {
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "GATEWAY_OVERLOADED"
    );
    assert!(s.message().contains(message), "{s:?}");
}

#[tokio::test]
async fn calls_past_the_cap_wait_their_turn_and_a_full_queue_refuses_at_once() {
    let (h, cloud) = admitting(1, 1).await;
    let held = hold_the_only_slot(&h, &cloud).await;
    let mut waiter = h.client.clone();
    let waiting = tokio::spawn(async move {
        waiter
            .get_security_configuration_task(get(fake_cloud::FAST))
            .await
    });
    until_queued(&h, 1).await;

    let mut third = h.client.clone();
    let s = third
        .get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect_err("the queue is full");
    assert_overloaded(&s, "in flight and waiting");
    assert!(
        cloud.authorizations.lock().expect("lock").is_empty(),
        "neither the waiting nor the refused call was sent"
    );

    release_the_slot(&cloud, held).await;
    let got = waiting
        .await
        .expect("joined")
        .expect("the waiting call gets its turn")
        .into_inner();
    assert_eq!(got.id, fake_cloud::FAST);
    assert_eq!(cloud.authorizations.lock().expect("lock").len(), 1);
    let m = metrics(&h).await;
    assert!(m.contains("graph_gateway_graph_queued 0\n"), "{m}");
    assert!(m.contains("graph_gateway_graph_load_shed_total 1\n"), "{m}");
}

#[tokio::test]
async fn a_call_whose_deadline_passes_while_it_waits_is_refused_unsent() {
    let (h, cloud) = admitting(1, 8).await;
    let held = hold_the_only_slot(&h, &cloud).await;
    let mut req = Request::new(get(fake_cloud::FAST));
    req.set_timeout(Duration::from_millis(300));
    let s = h
        .client
        .clone()
        .get_security_configuration_task(req)
        .await
        .expect_err("no slot before the deadline");
    assert_overloaded(&s, "deadline passed while waiting");
    assert!(cloud.authorizations.lock().expect("lock").is_empty());
    let m = metrics(&h).await;
    assert!(m.contains("graph_gateway_graph_queued 0\n"), "{m}");
    release_the_slot(&cloud, held).await;
}

#[tokio::test]
async fn calls_past_the_in_flight_cap_are_shed_when_nothing_may_wait() {
    let (h, cloud) = admitting(1, 0).await;
    let held = hold_the_only_slot(&h, &cloud).await;
    let mut other = h.client.clone();
    let s = other
        .get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect_err("shed");
    assert_overloaded(&s, "in flight and waiting");
    assert!(
        cloud.authorizations.lock().expect("lock").is_empty(),
        "shed before sending"
    );
    release_the_slot(&cloud, held).await;
    other
        .get_security_configuration_task(get(fake_cloud::FAST))
        .await
        .expect("room again");
}

#[tokio::test]
async fn redirects_are_not_followed_so_the_token_stays_home() {
    let (url, cloud) = fake_cloud::start().await;
    let (elsewhere, thief) = fake_cloud::start().await;
    *cloud.redirect_to.lock().expect("lock") = format!("{elsewhere}/steal");
    let mut h = Harness::with_config(config(fake_cloud::graph_with_credentials(&url))).await;
    let s = h
        .client
        .get_security_configuration_task(get(fake_cloud::REDIRECT))
        .await
        .expect_err("a redirect is an error");
    assert_eq!(s.code(), Code::Unknown);
    assert!(thief.authorizations.lock().expect("lock").is_empty());
}

fn set_insights(value: &str) -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: seed::EXAMPLE_TASK_ID.into(),
            insights: Some(value.into()),
            ..Default::default()
        }),
        update_mask: None,
        ..Default::default()
    }
}

fn methods(h: &Harness) -> Vec<String> {
    h.emulator()
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect()
}

#[tokio::test]
async fn a_connection_dropped_before_any_answer_is_read_again_or_read_back() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::drop_connection()]);
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("read again");
    assert_eq!(methods(&h), ["GET", "GET"]);

    // The PATCH may have reached Graph: the task is read back first, and
    // since it does not hold the change, the PATCH is sent once more.
    h.emulator().reset();
    h.emulator().push_faults([Fault::drop_connection()]);
    let got = h
        .client
        .update_security_configuration_task(set_insights("after a drop"))
        .await
        .expect("sent again")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("after a drop"));
    assert_eq!(methods(&h), ["PATCH", "GET", "PATCH"]);
}

#[tokio::test]
async fn a_connection_dropped_after_graph_applied_the_patch_is_confirmed_by_reading_it_back() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::drop_after_apply()]);
    let got = h
        .client
        .update_security_configuration_task(set_insights("applied, then dropped"))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("applied, then dropped"));
    // Exactly one PATCH: the read-back showed Graph had taken it.
    assert_eq!(methods(&h), ["PATCH", "GET"]);
}

#[tokio::test]
async fn a_patch_whose_attempt_timed_out_is_read_back_not_sent_blindly_again() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.attempt_timeout = Duration::from_millis(200);
    let mut h = Harness::with_config(cfg).await;
    // Applied at once; the answer comes long after the attempt's timeout.
    h.emulator()
        .push_faults([Fault::unchanged().delayed(Duration::from_secs(30))]);
    let got = h
        .client
        .update_security_configuration_task(set_insights("slow answer"))
        .await
        .expect("confirmed by reading the task back")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("slow answer"));
    assert_eq!(methods(&h), ["PATCH", "GET"]);
    let text = metrics(&h).await;
    assert!(
        !text.contains("graph_gateway_graph_retries_total{reason=\"attempt_timeout\"}"),
        "{text}"
    );
}

/// Entra ID answers (the fake cloud, kept running in the second value);
/// Graph's port has nothing listening.
async fn graph_unreachable() -> (graph_grpc_gateway::config::Config, fake_cloud::FakeCloud) {
    let (url, cloud) = fake_cloud::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let graph = format!("http://{}/beta", closed.local_addr().expect("addr"));
    drop(closed);
    let mut target = fake_cloud::graph_with_credentials(&url);
    if let GraphTarget::Graph { base_url, .. } = &mut target {
        *base_url = graph.parse().expect("url");
    }
    (config(target), cloud)
}

#[tokio::test]
async fn a_patch_that_could_not_connect_is_sent_again() {
    let (cfg, _cloud) = graph_unreachable().await;
    let mut h = Harness::with_config(cfg).await;
    let s = h
        .client
        .update_security_configuration_task(set_insights("never sent"))
        .await
        .expect_err("Graph is unreachable");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "GRAPH_UNREACHABLE"
    );
    let text = metrics(&h).await;
    assert!(
        text.contains("graph_gateway_graph_retries_total{reason=\"connect\"} 3"),
        "sent again on each connect failure, up to the limit:\n{text}"
    );
}

#[tokio::test]
async fn attempts_that_never_reached_graph_give_their_budget_tokens_back() {
    let (mut cfg, _cloud) = graph_unreachable().await;
    let hour = Duration::from_secs(3600);
    cfg.graph_stack.budget = Some(BudgetSettings {
        writes: Rate::new(2, hour),
        requests: Rate::new(1000, hour),
        local_share_percent: 100.0,
    });
    let mut h = Harness::with_config(cfg).await;
    // Three attempts each, none sent: with two write tokens an hour, every
    // call still reaches its own connect failure, never the budget's end.
    for _ in 0..3 {
        let s = h
            .client
            .update_security_configuration_task(set_insights("never sent"))
            .await
            .expect_err("Graph is unreachable");
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert_eq!(
            s.get_details_error_info().expect("ErrorInfo").reason,
            "GRAPH_UNREACHABLE"
        );
    }
    let text = metrics(&h).await;
    assert!(
        text.contains("graph_gateway_budget_tokens_left{budget=\"writes\"} 2"),
        "{text}"
    );
    assert!(
        !text.contains("graph_gateway_budget_refused_total{budget=\"writes\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_get_answered_with_a_body_that_is_not_the_task_is_internal() {
    let mut h = without_retries().await;
    let another = serde_json::json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "id": "00000000-0000-4000-8000-000000000001",
    })
    .to_string();
    for (body, problem) in [
        ("{}".to_owned(), "missing_odata_type"),
        (another, "id_mismatch"),
    ] {
        h.emulator().push_faults([Fault::raw(200, body)]);
        let s = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err("not the task");
        assert_eq!(s.code(), Code::Internal, "{s:?}");
        let info = s.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "GRAPH_ANSWER_UNEXPECTED");
        assert_eq!(info.metadata["problem"], problem);
        assert!(!info.metadata.contains_key("applied"));
    }
}

#[tokio::test]
async fn a_success_answer_cut_short_is_read_back() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::truncated()]);
    let got = h
        .client
        .update_security_configuration_task(set_insights("cut short"))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.insights.as_deref(), Some("cut short"));
    assert_eq!(methods(&h), ["PATCH", "GET"], "not re-sent: read back");
}

#[tokio::test]
async fn a_success_answer_that_is_not_json_is_an_error() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault::not_json()]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("HTML is not a task");
    assert_eq!(s.code(), Code::Internal);
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "GRAPH_ANSWER_UNREADABLE"
    );
}

#[tokio::test]
async fn a_slow_attempt_times_out_and_is_retried() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.graph_stack.attempt_timeout = Duration::from_millis(200);
    let mut h = Harness::with_config(cfg).await;
    h.emulator()
        .push_faults([Fault::unchanged().delayed(Duration::from_secs(5))]);
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("the second attempt answers");
    assert_eq!(methods(&h), ["GET", "GET"]);
    let text = metrics(&h).await;
    assert!(
        text.contains("graph_gateway_graph_retries_total{reason=\"attempt_timeout\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn graphs_tenant_throttling_is_waited_out_not_hammered() {
    let mut h = Harness::start().await;
    let options =
        h.emulator()
            .options()
            .with_tenant_budget(graph_grpc_gateway::emulator::TenantBudget::new(
                3,
                Duration::from_secs(1),
            ));
    h.emulator().set_options(options);
    for _ in 0..6 {
        h.client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect("OK, after waiting out Graph's Retry-After when throttled");
    }
    let throttled = h.emulator().throttled();
    assert!(throttled >= 1, "the budget was hit");
    // Each 429 cost one request: the retry came after Retry-After, not before.
    assert_eq!(h.emulator().received(), 6 + throttled);
}
