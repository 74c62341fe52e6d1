//! Intune's budget through the gateway, over loopback against the
//! emulator: a call whose turn comes after its deadline is refused unsent
//! with `GRAPH_BUDGET_EXHAUSTED` and a `RetryInfo`; reads go while writes
//! wait; and writes paced by the budget never earn a 429 from an emulator
//! that enforces Intune's limits.

mod common;

use common::metrics::Scrape;
use common::Harness;
use graph_grpc_gateway::budget::{BudgetSettings, Rate};
use graph_grpc_gateway::config::GraphTarget;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::emulator::IntuneLimits;
use graph_grpc_gateway::proto::v1::{
    BatchUpdateSecurityConfigurationTasksRequest, UpdateSecurityConfigurationTaskRequest,
};
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

fn rename(id: &str, name: String) -> tonic::Request<UpdateSecurityConfigurationTaskRequest> {
    tonic::Request::new(common::rename(id, &name, ""))
}

fn patches(h: &Harness) -> usize {
    h.emulator()
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

async fn with_budget(writes: Rate, requests: Rate) -> Harness {
    let mut cfg = common::config(GraphTarget::Emulator);
    cfg.graph_stack.budget = Some(BudgetSettings {
        writes,
        requests,
        local_share_percent: 100.0,
    });
    Harness::with_config(cfg).await
}

#[tokio::test]
async fn a_write_whose_turn_is_past_its_deadline_is_refused_unsent_and_reads_still_go() {
    let hour = Duration::from_secs(3600);
    let mut h = with_budget(Rate::new(3, hour), Rate::new(1000, hour)).await;
    let id = seed::EXAMPLE_TASK_ID;
    for i in 0..3 {
        h.client
            .update_security_configuration_task(rename(id, format!("paced {i}")))
            .await
            .expect("inside the budget");
    }
    assert_eq!(patches(&h), 3);
    let mut late = rename(id, "one too many".into());
    late.set_timeout(Duration::from_secs(5));
    let status = h
        .client
        .update_security_configuration_task(late)
        .await
        .expect_err("no write token for an hour");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "GRAPH_BUDGET_EXHAUSTED");
    assert_eq!(
        info.metadata.get("budget").map(String::as_str),
        Some("writes")
    );
    let retry = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        retry > Duration::from_secs(3000) && retry <= hour,
        "{retry:?}"
    );
    assert_eq!(patches(&h), 3, "the refused write was never sent");
    // Reads take only a request token: they are not behind the writes.
    h.client
        .get_security_configuration_task(common::get(id))
        .await
        .expect("a read goes");
    let metrics = Scrape::get(&h.admin_url("/metrics")).await;
    let writes = [("budget", "writes")];
    assert_eq!(
        metrics.value("graph_gateway_budget_refused_total", &writes),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metrics.value("graph_gateway_budget_tokens_left", &writes),
        Some(0.0),
        "{metrics}"
    );
    let ready = reqwest::get(h.admin_url("/readyz"))
        .await
        .expect("readyz")
        .text()
        .await
        .expect("text");
    assert!(ready.contains("graph budget: local"), "{ready}");
}

#[tokio::test]
async fn writes_paced_by_the_budget_earn_no_429_from_intune_limits() {
    // The emulator meters Intune's limits at 1/20 scale: 100 writes per 1 s.
    let second = Duration::from_secs(1);
    let h = with_budget(Rate::new(100, second), Rate::new(1000, second)).await;
    let emulator = h.emulator();
    emulator.set_options(
        emulator
            .options()
            .with_intune_limits(IntuneLimits { scale: 20.0 }),
    );
    let id = seed::EXAMPLE_TASK_ID;
    let mut callers = Vec::new();
    for c in 0..8 {
        let mut client = h.client.clone();
        callers.push(tokio::spawn(async move {
            for i in 0..40 {
                let mut req = rename(id, format!("caller {c} write {i}"));
                req.set_timeout(Duration::from_secs(30));
                client
                    .update_security_configuration_task(req)
                    .await
                    .expect("paced, then sent");
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller");
    }
    assert_eq!(patches(&h), 320, "every write reached the emulator once");
    assert_eq!(
        emulator.intune_throttled(),
        0,
        "no 429 the budget could have foreseen"
    );
}

#[tokio::test]
async fn a_batch_update_goes_at_the_budgets_pace_and_earns_no_429() {
    // 100 writes per 1 s, and the emulator meters Intune's limits at the
    // same 1/20 scale: 250 updates in one call need three windows.
    let second = Duration::from_secs(1);
    let mut h = with_budget(Rate::new(100, second), Rate::new(1000, second)).await;
    let emulator = h.emulator();
    emulator.set_options(
        emulator
            .options()
            .with_intune_limits(IntuneLimits { scale: 20.0 }),
    );
    let ids = common::seed_tasks(&h, 250);
    let requests = ids
        .iter()
        .map(|id| common::rename(id, "bulk", ""))
        .collect();
    let mut req = tonic::Request::new(BatchUpdateSecurityConfigurationTasksRequest {
        requests,
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(30));
    let answer = h
        .client
        .batch_update_security_configuration_tasks(req)
        .await
        .expect("OK")
        .into_inner();
    assert!(
        answer.failed_requests.is_empty(),
        "{:?}",
        answer.failed_requests
    );
    assert_eq!(patches(&h), 250, "every update reached the emulator once");
    assert_eq!(
        h.emulator().intune_throttled(),
        0,
        "each item took its token: no 429 the budget could have foreseen"
    );
    let metrics = Scrape::get(&h.admin_url("/metrics")).await;
    let waited = metrics
        .value(
            "graph_gateway_budget_wait_seconds_sum",
            &[("budget", "writes")],
        )
        .unwrap_or_default();
    assert!(waited > 0.0, "the batch waited for the budget:\n{metrics}");
}
