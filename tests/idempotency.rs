//! Safe retries over real loopback calls: a mutating call repeated with the
//! same `request_id` is answered from the gateway's memory, and the
//! emulator's journal proves what reached Graph.

mod common;

use common::{new_request_id, reason, rename, replayed};

use common::issuer::Issuer;
use common::process::{serve_emulator, Running};
use common::{config, Harness};
use graph_grpc_gateway::config::{Callers, Config, GraphTarget, Inbound};
use graph_grpc_gateway::emulator::{seed, Emulator, Fault, FaultBody};
use graph_grpc_gateway::proto::v1::DeleteSecurityConfigurationTaskRequest;
use graph_grpc_gateway::security::policy::Policy;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use tonic_types::StatusExt;

const RPC_UPDATE: &str = "UpdateSecurityConfigurationTask";

/// Longer than anything the tests wait for; reaching it is a failure.
const PATIENCE: Duration = Duration::from_secs(30);

fn delete(id: &str, request_id: &str) -> DeleteSecurityConfigurationTaskRequest {
    DeleteSecurityConfigurationTaskRequest {
        id: id.into(),
        request_id: request_id.into(),
        ..Default::default()
    }
}

/// The requests with `method` that reached Graph for the task `id`.
fn sent(emulator: &Emulator, method: &str, id: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path_and_query.contains(id))
        .count()
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(h: &Harness, series: &str) -> Option<f64> {
    h.gateway.metrics.render().lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test]
async fn a_repeated_update_sends_one_patch_and_the_repeat_is_a_replay() {
    let mut h = Harness::start().await;
    let id = new_request_id();
    let first = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "renamed once", &id))
        .await
        .expect("the first call runs");
    assert_eq!(replayed(first.metadata()), None);
    let second = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "renamed once", &id))
        .await
        .expect("the repeat is answered");
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 1);
    assert_eq!(replayed(second.metadata()), Some("true"));
    assert_eq!(second.get_ref(), first.get_ref());
    assert_eq!(
        second.metadata().get("request-id"),
        first.metadata().get("request-id"),
        "the replay carries Graph's request-id of the first call"
    );
    assert!(second.metadata().get("client-request-id").is_some());
    assert_eq!(
        metric(
            &h,
            &format!("graph_gateway_idempotent_replays_total{{rpc=\"{RPC_UPDATE}\"}}")
        ),
        Some(1.0)
    );
    // Without a request_id, the same call runs again.
    h.client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "renamed once", ""))
        .await
        .expect("runs");
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_send_one_patch_and_get_the_same_answer() {
    let h = Harness::start().await;
    // The first PATCH is applied and its answer held back in Graph.
    h.emulator().push_faults([Fault {
        body: FaultBody::Unchanged,
        ..Fault::new(200)
    }
    .delayed(Duration::from_secs(2))]);
    let id = new_request_id();
    let call = |client: &common::Client| {
        let mut client = client.clone();
        let request = rename(seed::FIREWALL_TASK_ID, "renamed by both", &id);
        tokio::spawn(async move { client.update_security_configuration_task(request).await })
    };
    let first = call(&h.client);
    // The first call's PATCH has reached Graph: a bounded look at the journal.
    tokio::time::timeout(PATIENCE, async {
        while sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first PATCH reaches Graph");
    assert!(!first.is_finished(), "the first call is held in Graph");
    let second = call(&h.client);
    let (first, second) = (
        first.await.expect("joins").expect("the first call"),
        second.await.expect("joins").expect("the duplicate"),
    );
    assert_eq!(sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID), 1);
    assert_eq!(first.get_ref(), second.get_ref());
    assert_eq!(
        first.get_ref().display_name.as_deref(),
        Some("renamed by both")
    );
    assert_eq!(replayed(first.metadata()), None);
    assert_eq!(replayed(second.metadata()), Some("true"));
    assert_eq!(
        first.metadata().get("request-id"),
        second.metadata().get("request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_whose_deadline_comes_while_the_first_runs_is_told_so_and_sends_nothing() {
    let h = Harness::start().await;
    h.emulator().push_faults([Fault {
        body: FaultBody::Unchanged,
        ..Fault::new(200)
    }
    .delayed(Duration::from_secs(3))]);
    let id = new_request_id();
    let request = rename(seed::FIREWALL_TASK_ID, "held", &id);
    let first = tokio::spawn({
        let mut client = h.client.clone();
        let request = request.clone();
        async move { client.update_security_configuration_task(request).await }
    });
    tokio::time::timeout(PATIENCE, async {
        while sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first PATCH reaches Graph");
    let mut impatient = Request::new(request.clone());
    impatient.set_timeout(Duration::from_millis(300));
    let status = h
        .client
        .clone()
        .update_security_configuration_task(impatient)
        .await
        .expect_err("its deadline comes first");
    assert!(!first.is_finished(), "the first call is still held");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "REQUEST_ID_IN_PROGRESS");
    let first = first.await.expect("joins").expect("the first call");
    assert_eq!(sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID), 1);
    // Asked again, the first call's answer.
    let again = h
        .client
        .clone()
        .update_security_configuration_task(request)
        .await
        .expect("replayed");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.get_ref(), first.get_ref());
    assert_eq!(sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_call_dropped_after_its_patch_left_makes_retries_unknown_never_resent() {
    let h = Harness::start().await;
    h.emulator().push_faults([Fault {
        body: FaultBody::Unchanged,
        ..Fault::new(200)
    }
    .delayed(Duration::from_secs(3))]);
    let id = new_request_id();
    let request = rename(seed::FIREWALL_TASK_ID, "dropped", &id);
    let first = tokio::spawn({
        let mut client = h.client.clone();
        let request = request.clone();
        async move { client.update_security_configuration_task(request).await }
    });
    tokio::time::timeout(PATIENCE, async {
        while sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first PATCH reaches Graph");
    // The caller goes away: its stream is reset, the gateway drops the call.
    first.abort();
    let status = h
        .client
        .clone()
        .update_security_configuration_task(request)
        .await
        .expect_err("the outcome is unknown");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "OUTCOME_UNKNOWN");
    assert_eq!(replayed(status.metadata()), Some("true"));
    assert_eq!(
        sent(h.emulator(), "PATCH", seed::FIREWALL_TASK_ID),
        1,
        "never sent again"
    );
}

#[tokio::test]
async fn the_same_request_id_with_another_request_is_refused_and_sends_nothing() {
    let mut h = Harness::start().await;
    let id = new_request_id();
    h.client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "first", &id))
        .await
        .expect("the first call runs");
    let before = h.emulator().requests().len();
    let status = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "another", &id))
        .await
        .expect_err("reused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(h.emulator().requests().len(), before, "nothing sent");
    // The first answer is still what a true repeat gets.
    let again = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "first", &id))
        .await
        .expect("a true repeat");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.get_ref().display_name.as_deref(), Some("first"));
}

#[tokio::test]
async fn a_request_id_that_is_not_a_uuid_is_invalid_and_sends_nothing() {
    let mut h = Harness::start().await;
    for bad in ["not-a-uuid", "5d630f12-0f12-5d63-120f", "\u{0}"] {
        let status = h
            .client
            .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "x", bad))
            .await
            .expect_err(bad);
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["request_id"], "{bad:?}");
        let status = h
            .client
            .delete_security_configuration_task(delete(seed::COMPLETED_TASK_ID, bad))
            .await
            .expect_err(bad);
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
    }
    assert!(h.emulator().requests().is_empty(), "nothing sent");
}

#[tokio::test]
async fn a_repeated_delete_sends_one_delete_and_the_repeat_is_a_replay() {
    let mut h = Harness::start().await;
    let id = new_request_id();
    let first = h
        .client
        .delete_security_configuration_task(delete(seed::COMPLETED_TASK_ID, &id))
        .await
        .expect("deleted");
    assert_eq!(replayed(first.metadata()), None);
    assert!(h.emulator().task(seed::COMPLETED_TASK_ID).is_none());
    let deletes = sent(h.emulator(), "DELETE", seed::COMPLETED_TASK_ID);
    // The repeat is told OK, as the first call was, not NOT_FOUND.
    let second = h
        .client
        .delete_security_configuration_task(delete(seed::COMPLETED_TASK_ID, &id))
        .await
        .expect("the repeat is answered as the first was");
    assert_eq!(replayed(second.metadata()), Some("true"));
    assert_eq!(
        sent(h.emulator(), "DELETE", seed::COMPLETED_TASK_ID),
        deletes
    );
    assert_eq!(deletes, 1);
    // A new request_id is a new call: the task is gone now.
    let status = h
        .client
        .delete_security_configuration_task(delete(seed::COMPLETED_TASK_ID, &new_request_id()))
        .await
        .expect_err("gone");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn a_throttled_first_attempt_is_not_remembered_and_the_retry_runs() {
    let mut h = common::without_retries().await;
    h.emulator().push_faults([Fault::new(429)]);
    let id = new_request_id();
    let status = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "after a 429", &id))
        .await
        .expect_err("throttled");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 1);
    let retry = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "after a 429", &id))
        .await
        .expect("the retry runs");
    assert_eq!(replayed(retry.metadata()), None);
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 2);
    assert_eq!(retry.get_ref().display_name.as_deref(), Some("after a 429"));
    // And that answer is remembered.
    let again = h
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "after a 429", &id))
        .await
        .expect("replayed");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 2);
}

#[tokio::test]
async fn a_missing_task_is_remembered_as_graphs_definitive_refusal() {
    let mut h = Harness::start().await;
    let missing = "00000000-0000-4000-8000-000000000001";
    let id = new_request_id();
    for _ in 0..2 {
        let status = h
            .client
            .update_security_configuration_task(rename(missing, "x", &id))
            .await
            .expect_err("no such task");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(sent(h.emulator(), "PATCH", missing), 1);
}

fn with_bearer<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_callers_with_the_same_request_id_do_not_share_an_answer() {
    let issuer = Issuer::start().await;
    let policy = format!(
        "{}\n[[callers]]\nname = \"one\"\nidentities = [\"jwt:one-app\"]\nrpcs = [\"*\"]\n\n[[callers]]\nname = \"two\"\nidentities = [\"jwt:two-app\"]\nrpcs = [\"*\"]\n",
        issuer.policy_section()
    );
    let mut h = Harness::with_config(Config {
        inbound: Inbound {
            callers: Callers::Policy(Arc::new(Policy::from_toml(&policy).expect("policy"))),
            ..Inbound::open()
        },
        ..config(GraphTarget::Emulator)
    })
    .await;
    let id = new_request_id();
    let (one, two) = (issuer.token("one-app"), issuer.token("two-app"));
    let first = h
        .client
        .update_security_configuration_task(with_bearer(
            rename(seed::EXAMPLE_TASK_ID, "by one", &id),
            &one,
        ))
        .await
        .expect("one's call");
    // The other caller, the same request_id and another request: not a reuse,
    // its own call.
    let second = h
        .client
        .update_security_configuration_task(with_bearer(
            rename(seed::EXAMPLE_TASK_ID, "by two", &id),
            &two,
        ))
        .await
        .expect("two's call");
    assert_eq!(replayed(first.metadata()), None);
    assert_eq!(replayed(second.metadata()), None);
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 2);
    assert_eq!(second.get_ref().display_name.as_deref(), Some("by two"));
    // Each is remembered for its own caller.
    let again = h
        .client
        .update_security_configuration_task(with_bearer(
            rename(seed::EXAMPLE_TASK_ID, "by one", &id),
            &one,
        ))
        .await
        .expect("one's repeat");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.get_ref().display_name.as_deref(), Some("by one"));
    assert_eq!(sent(h.emulator(), "PATCH", seed::EXAMPLE_TASK_ID), 2);
}

/// The replay's audit record says it is one, with the first call's outcome:
/// from the real binary's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_audited_as_one_with_the_first_calls_outcome() {
    let gw = tokio::task::spawn_blocking(|| {
        let gw = Running::spawn(&serve_emulator(&["--log-format", "json"]));
        let line = gw.wait_for_line("graph-grpc-gateway serving", PATIENCE);
        (gw, line)
    })
    .await
    .expect("spawned");
    let (gw, line) = gw;
    let serving: Value = serde_json::from_str(&line).expect("json log line");
    let addr = serving["grpc_addr"].as_str().expect("grpc_addr").to_owned();
    let mut client = common::connect(addr.parse().expect("address")).await;
    let id = new_request_id();
    for _ in 0..2 {
        client
            .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "audited", &id))
            .await
            .expect("answered");
    }
    let audits: Vec<Value> = tokio::task::spawn_blocking(move || {
        let mut audits = Vec::new();
        while audits.len() < 2 {
            let line = gw.lines.recv_timeout(PATIENCE).expect("an audit record");
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["target"] == "audit" {
                    audits.push(v);
                }
            }
        }
        gw.terminate();
        audits
    })
    .await
    .expect("read");
    let (first, replay) = (&audits[0], &audits[1]);
    assert_eq!(first["replay"], false, "{first}");
    assert_eq!(replay["replay"], true, "{replay}");
    for record in [first, replay] {
        assert_eq!(record["outcome"], "applied", "{record}");
        assert_eq!(record["request_id"], id.as_str(), "{record}");
        assert_eq!(record["rpc"], RPC_UPDATE, "{record}");
        assert_eq!(record["code"], "OK", "{record}");
        assert_eq!(record["fields"], "display_name", "{record}");
    }
    assert_eq!(replay["graph_request_id"], first["graph_request_id"]);
}
