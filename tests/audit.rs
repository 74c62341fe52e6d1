//! The audit trail of the real binary: one JSON record per mutating call
//! under the `audit` target, naming the caller, task, field names and
//! outcome; and, at trace level, no value or bearer token in any log line.

mod common;

use common::issuer::Issuer;
use common::pki::Dir;
use common::process::Running;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::{
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use prost_types::FieldMask;
use serde_json::Value;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

const SECRET_VALUE: &str = "quarterly-value-7f3a9";

fn update(
    name: &str,
    mask: &[&str],
    token: &str,
) -> Request<UpdateSecurityConfigurationTaskRequest> {
    let mut req = Request::new(UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: seed::EXAMPLE_TASK_ID.into(),
            display_name: Some(name.into()),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: mask.iter().map(|p| (*p).to_owned()).collect(),
        }),
    });
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    req.metadata_mut().insert(
        "client-request-id",
        MetadataValue::from_static("audit-test-1"),
    );
    req
}

/// Every log line until `count` audit records have arrived.
fn lines_until_audits(gw: &Running, count: usize) -> (Vec<String>, Vec<Value>) {
    let mut lines = Vec::new();
    let mut audits = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while audits.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = gw
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("{} audit records of {count}: {e}", audits.len()));
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if v["target"] == "audit" {
                audits.push(v);
            }
        }
        lines.push(line);
    }
    (lines, audits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_update_leaves_one_audit_record_with_names_not_values() {
    let issuer = Issuer::start().await;
    let dir = Dir::new();
    let policy = dir.write(
        "policy.toml",
        format!(
            "{}\n[[callers]]\nname = \"writer\"\nidentities = [\"jwt:writer-app\"]\nrpcs = [\"*\"]\n\n[[callers]]\nname = \"reader\"\nidentities = [\"jwt:reader-app\"]\nrpcs = [\"GetSecurityConfigurationTask\"]\n",
            issuer.policy_section()
        ),
    );
    let policy = policy.to_str().expect("utf-8").to_owned();
    let gw = tokio::task::spawn_blocking(move || {
        let gw = Running::spawn(&[
            "serve",
            "--emulator",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--policy-file",
            &policy,
            "--log-format",
            "json",
            "--log",
            "trace",
        ]);
        let line = gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
        (gw, line)
    })
    .await
    .expect("spawned");
    let (gw, line) = gw;
    let serving: Value = serde_json::from_str(&line).expect("json log line");
    let addr = serving["grpc_addr"].as_str().expect("grpc_addr").to_owned();
    let mut client = SecurityConfigurationTaskServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");

    let writer = issuer.token("writer-app");
    let reader = issuer.token("reader-app");
    let ok = client
        .update_security_configuration_task(update(SECRET_VALUE, &["display_name"], &writer))
        .await
        .expect("writer updates");
    let request_id = ok
        .metadata()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request-id")
        .to_owned();
    let invalid = client
        .update_security_configuration_task(update(SECRET_VALUE, &["no_such_field"], &writer))
        .await
        .expect_err("invalid mask");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let denied = client
        .update_security_configuration_task(update(SECRET_VALUE, &["display_name"], &reader))
        .await
        .expect_err("reader may not update");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let (lines, audits) = tokio::task::spawn_blocking(move || lines_until_audits(&gw, 3))
        .await
        .expect("lines");
    let applied = &audits[0];
    assert_eq!(applied["rpc"], "UpdateSecurityConfigurationTask");
    assert_eq!(applied["caller"], "writer");
    assert_eq!(applied["via"], "jwt");
    assert_eq!(applied["task_id"], seed::EXAMPLE_TASK_ID);
    assert_eq!(applied["fields"], "display_name");
    assert_eq!(applied["outcome"], "applied");
    assert_eq!(applied["code"], "OK");
    assert_eq!(applied["graph_request_id"], request_id.as_str());
    assert_eq!(applied["client_request_id"], "audit-test-1");
    assert!(applied["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert!(applied["timestamp"].is_string(), "{applied}");

    let refused = &audits[1];
    assert_eq!(refused["caller"], "writer");
    assert_eq!(refused["outcome"], "not_applied");
    assert_eq!(refused["code"], "INVALID_ARGUMENT");

    let denied = &audits[2];
    assert_eq!(denied["caller"], "reader");
    assert_eq!(denied["outcome"], "refused");
    assert_eq!(denied["reason"], "RPC_NOT_ALLOWED");

    for line in &lines {
        for forbidden in [SECRET_VALUE, writer.as_str(), reader.as_str()] {
            assert!(
                !line.contains(forbidden),
                "a value or token in the log: {line}"
            );
        }
    }
}
