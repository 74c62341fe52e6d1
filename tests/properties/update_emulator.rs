//! Valid updates, as `patch_request` writes them, sent over real HTTP to the
//! emulator: Graph's stand-in takes every one, stores exactly what the
//! request set, leaves every other property as it was, and the stored task
//! reads back (through `task_from_graph`) as the request set it.

use crate::oracle;
use crate::strategies::valid_request;
use graph_grpc_gateway::emulator::Emulator;
use graph_grpc_gateway::proto::v1::UpdateSecurityConfigurationTaskRequest;
use graph_grpc_gateway::translate::{patch_request, task_from_graph};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use std::net::SocketAddr;

/// Modest, so the suite stays fast: each case is two GETs and a PATCH.
const CASES: u32 = 64;

struct Target {
    http: reqwest::Client,
    collection: String,
}

impl Target {
    async fn get(&self, segment: &str) -> Result<(Value, Vec<u8>), TestCaseError> {
        let resp = self
            .http
            .get(format!("{}/{segment}", self.collection))
            .send()
            .await
            .map_err(|e| TestCaseError::fail(format!("GET: {e}")))?;
        prop_assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| TestCaseError::fail(format!("GET body: {e}")))?
            .to_vec();
        let json = serde_json::from_slice(&bytes)
            .map_err(|e| TestCaseError::fail(format!("GET body is not JSON: {e}")))?;
        Ok((json, bytes))
    }
}

async fn check(
    target: &Target,
    req: UpdateSecurityConfigurationTaskRequest,
) -> Result<(), TestCaseError> {
    let task = req
        .security_configuration_task
        .clone()
        .ok_or_else(|| TestCaseError::fail("no task"))?;
    let patch = patch_request(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let segment = patch.id.as_str().to_owned();
    let (before, _) = target.get(&segment).await?;

    let resp = target
        .http
        .patch(format!("{}/{segment}", target.collection))
        .header("content-type", "application/json")
        .body(patch.body)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("PATCH: {e}")))?;
    let status = resp.status().as_u16();
    let answer = resp.text().await.unwrap_or_default();
    prop_assert!(
        status == 200 || status == 204,
        "the emulator refused the PATCH: {} {}",
        status,
        answer
    );

    let (after, raw) = target.get(&segment).await?;
    let selected = oracle::selected(&req);
    let sent: Vec<String> = selected.iter().map(|f| oracle::camel_case(f)).collect();
    for field in &selected {
        oracle::holds(&task, field, &after[oracle::camel_case(field)])
            .map_err(TestCaseError::fail)?;
    }
    let untouched = before
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !sent.contains(k));
    for (key, value) in untouched {
        prop_assert_eq!(&after[key], value, "{} changed without being sent", key);
    }

    let read = task_from_graph(&raw)
        .map_err(|e| TestCaseError::fail(format!("stored task does not read: {e}")))?;
    prop_assert!(read.unknown_enum_values.is_empty());
    let got = read.task;
    for field in &selected {
        let same = match *field {
            "display_name" => got.display_name == task.display_name,
            "description" => got.description == task.description,
            "creator" => got.creator == task.creator,
            "creator_notes" => got.creator_notes == task.creator_notes,
            "assigned_to" => got.assigned_to == task.assigned_to,
            "insights" => got.insights == task.insights,
            "due_date_time" => got.due_date_time == task.due_date_time,
            "category" => got.category == task.category,
            "priority" => got.priority == task.priority,
            "status" => got.status == task.status,
            "applicable_platform" => got.applicable_platform == task.applicable_platform,
            "endpoint_security_policy" => {
                got.endpoint_security_policy == task.endpoint_security_policy
            }
            "endpoint_security_policy_profile" => {
                got.endpoint_security_policy_profile == task.endpoint_security_policy_profile
            }
            "managed_device_count" => got.managed_device_count == task.managed_device_count,
            "intended_settings" => got.intended_settings == task.intended_settings,
            other => return Err(TestCaseError::fail(format!("unexpected field {other}"))),
        };
        prop_assert!(same, "{} does not read back as sent", field);
    }
    prop_assert_eq!(got.id, task.id);
    Ok(())
}

#[test]
fn valid_updates_are_stored_by_the_emulator() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let running = rt
        .block_on(Emulator::new().spawn(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("emulator on loopback");
    let target = Target {
        http: reqwest::Client::new(),
        collection: format!(
            "{}/deviceAppManagement/deviceAppManagementTasks",
            running.base_url
        ),
    };
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&valid_request(), |req| rt.block_on(check(&target, req)));
    if let Err(e) = result {
        panic!("{e}");
    }
    // Every case reached the emulator: a GET, the PATCH and a GET each.
    assert!(running.emulator.received() >= u64::from(CASES) * 3);
}
