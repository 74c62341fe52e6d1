//! The policy over the lifecycle RPCs: a caller allowed only to read is
//! refused Create, Delete and SetStatus with `PERMISSION_DENIED` before
//! anything reaches Graph, and each refusal leaves one audit record naming
//! the RPC it refused. A caller allowed them gets through, so the refusals
//! are the policy's doing and not a broken route.

mod common;

use common::audit_log::AuditLog;
use common::issuer::Issuer;
use common::{config, get};
use graph_grpc_gateway::config::{Callers, Config, GraphTarget, Inbound};
use graph_grpc_gateway::emulator::{seed, Emulator};
use graph_grpc_gateway::proto::v1::{
    CreateSecurityConfigurationTaskRequest, DeleteSecurityConfigurationTaskRequest,
    DeviceAppManagementTaskStatus, SecurityConfigurationTask,
    SetSecurityConfigurationTaskStatusRequest,
};
use graph_grpc_gateway::security::policy::Policy;
use graph_grpc_gateway::server::Gateway;
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use tonic_types::StatusExt;

fn with_bearer<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    req
}

fn create() -> CreateSecurityConfigurationTaskRequest {
    CreateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            display_name: Some("Turn on tamper protection".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn delete(id: &str) -> DeleteSecurityConfigurationTaskRequest {
    DeleteSecurityConfigurationTaskRequest {
        id: id.into(),
        ..Default::default()
    }
}

fn set_status(id: &str) -> SetSecurityConfigurationTaskStatusRequest {
    SetSecurityConfigurationTaskStatusRequest {
        id: id.into(),
        status: DeviceAppManagementTaskStatus::Completed.into(),
        note: "done".into(),
        ..Default::default()
    }
}

fn emulator(gw: &Gateway) -> &Emulator {
    &gw.emulator.as_ref().expect("emulator").emulator
}

#[tokio::test]
async fn a_reader_is_refused_every_lifecycle_rpc_before_graph_and_each_refusal_is_audited() {
    let (audits, _guard) = AuditLog::capture();
    let issuer = Issuer::start().await;
    let policy = format!(
        "{}\n[[callers]]\nname = \"reader\"\nidentities = [\"jwt:reader-app\"]\n\
         rpcs = [\"GetSecurityConfigurationTask\", \"ListSecurityConfigurationTasks\"]\n\n\
         [[callers]]\nname = \"owner\"\nidentities = [\"jwt:owner-app\"]\n\
         rpcs = [\"CreateSecurityConfigurationTask\", \"DeleteSecurityConfigurationTask\", \
         \"SetSecurityConfigurationTaskStatus\"]\n",
        issuer.policy_section()
    );
    let cfg = Config {
        inbound: Inbound {
            callers: Callers::Policy(Arc::new(Policy::from_toml(&policy).expect("policy"))),
            ..Inbound::open()
        },
        ..config(GraphTarget::Emulator)
    };
    let gw = Gateway::start(cfg).await.expect("gateway starts");
    let emulator = emulator(&gw).clone();
    emulator.set_options(emulator.options().with_record_requests(true));
    let mut client = common::connect(gw.grpc_addr).await;
    let reader = issuer.token("reader-app");
    let owner = issuer.token("owner-app");

    // The reader may read: its token and identity work.
    client
        .get_security_configuration_task(with_bearer(get(seed::EXAMPLE_TASK_ID), &reader))
        .await
        .expect("the reader may Get");
    let reads = emulator.requests().len();
    assert_eq!(reads, 1, "{:?}", emulator.requests());
    let before = emulator.task(seed::EXAMPLE_TASK_ID).expect("seeded");
    let tasks_before = emulator.tasks().len();

    let refusals = [
        (
            "CreateSecurityConfigurationTask",
            client
                .create_security_configuration_task(with_bearer(create(), &reader))
                .await
                .map(drop),
        ),
        (
            "DeleteSecurityConfigurationTask",
            client
                .delete_security_configuration_task(with_bearer(
                    delete(seed::EXAMPLE_TASK_ID),
                    &reader,
                ))
                .await
                .map(drop),
        ),
        (
            "SetSecurityConfigurationTaskStatus",
            client
                .set_security_configuration_task_status(with_bearer(
                    set_status(seed::EXAMPLE_TASK_ID),
                    &reader,
                ))
                .await
                .map(drop),
        ),
    ];
    for (rpc, result) in &refusals {
        let status = result.as_ref().expect_err(rpc);
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "RPC_NOT_ALLOWED", "{rpc}");
        assert!(status.message().contains("reader"), "{rpc}: {status:?}");
        let records: Vec<_> = audits
            .of(rpc)
            .into_iter()
            .filter(|r| r.get("outcome").map(String::as_str) == Some("refused"))
            .collect();
        assert_eq!(records.len(), 1, "{rpc}: {:?}", audits.records());
        assert_eq!(records[0]["caller"], "reader", "{rpc}");
    }
    // Nothing reached Graph, and nothing changed there.
    assert_eq!(
        emulator.requests().len(),
        reads,
        "{:?}",
        emulator.requests()
    );
    assert_eq!(emulator.received(), 1);
    assert_eq!(emulator.task(seed::EXAMPLE_TASK_ID), Some(before));
    assert_eq!(emulator.tasks().len(), tasks_before);

    // The owner may: the same calls go through to Graph.
    let created = client
        .create_security_configuration_task(with_bearer(create(), &owner))
        .await
        .expect("the owner may Create")
        .into_inner();
    assert!(emulator.task(&created.id).is_some());
    let set = client
        .set_security_configuration_task_status(with_bearer(set_status(&created.id), &owner))
        .await
        .expect("the owner may SetStatus")
        .into_inner();
    assert_eq!(
        set.status,
        i32::from(DeviceAppManagementTaskStatus::Completed)
    );
    client
        .delete_security_configuration_task(with_bearer(delete(&created.id), &owner))
        .await
        .expect("the owner may Delete");
    assert!(emulator.task(&created.id).is_none());
    for rpc in [
        "CreateSecurityConfigurationTask",
        "DeleteSecurityConfigurationTask",
        "SetSecurityConfigurationTaskStatus",
    ] {
        assert!(
            audits
                .of(rpc)
                .iter()
                .any(|r| r.get("caller").map(String::as_str) == Some("owner")
                    && r.get("outcome").map(String::as_str) == Some("applied")),
            "{rpc}: {:?}",
            audits.records()
        );
    }
}
