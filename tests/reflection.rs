//! Server reflection in both protocol versions, as real tools use it.
//! (Multi-threaded runtimes: the tools run as blocking child processes
//! while the in-process gateway serves them.)

mod common;

use common::issuer::Issuer;
use common::Harness;
use graph_grpc_gateway::config::{Callers, Config, GraphTarget, Inbound};
use graph_grpc_gateway::security::policy::Policy;
use graph_grpc_gateway::server::Gateway;
use std::process::Command;
use std::sync::Arc;
use tonic::transport::Channel;

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} not runnable ({e}): run the tests with scripts/test.sh")
    });
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_serves_the_service_to_buf() {
    let h = Harness::start().await;
    let url = format!("http://{}", h.gateway.grpc_addr);
    let methods = run(
        "buf",
        &[
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-protocol",
            "grpc-v1",
            "--list-methods",
            &url,
        ],
    );
    for rpc in [
        "graphgateway.v1.SecurityConfigurationTaskService/GetSecurityConfigurationTask",
        "graphgateway.v1.SecurityConfigurationTaskService/ListSecurityConfigurationTasks",
        "graphgateway.v1.SecurityConfigurationTaskService/UpdateSecurityConfigurationTask",
        "grpc.health.v1.Health/Check",
    ] {
        assert!(methods.contains(rpc), "{rpc} not in:\n{methods}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_describes_messages_and_error_details_to_grpcurl() {
    let h = Harness::start().await;
    let addr = h.gateway.grpc_addr.to_string();
    let described = run(
        "grpcurl",
        &[
            "-plaintext",
            &addr,
            "describe",
            "graphgateway.v1.SecurityConfigurationTask",
        ],
    );
    assert!(
        described.contains("optional int32 managed_device_count = 16;"),
        "{described}"
    );
    assert!(
        described.contains("Graph `managedDeviceCount`"),
        "comments are served: {described}"
    );
    for detail in [
        "google.rpc.BadRequest",
        "google.rpc.ErrorInfo",
        "google.rpc.RetryInfo",
    ] {
        let out = run("grpcurl", &["-plaintext", &addr, "describe", detail]);
        assert!(out.contains("message"), "{detail}: {out}");
    }
}

/// A gateway on plaintext loopback whose callers `policy` decides.
async fn gateway_with_policy(policy: &str) -> Gateway {
    let config = Config {
        inbound: Inbound {
            callers: Callers::Policy(Arc::new(Policy::from_toml(policy).expect("policy"))),
            ..Inbound::open()
        },
        ..common::config(GraphTarget::Emulator)
    };
    Gateway::start(config).await.expect("gateway starts")
}

/// grpcurl's output and whether it succeeded, run off the runtime's threads.
async fn grpcurl(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("grpcurl")
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                panic!("grpcurl not runnable ({e}): run the tests with scripts/test.sh")
            });
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .expect("grpcurl ran")
}

async fn health_serving(gw: &Gateway) {
    let channel = Channel::from_shared(format!("http://{}", gw.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let answer = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "graphgateway.v1.SecurityConfigurationTaskService".into(),
        })
        .await
        .expect("health answers without credentials");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
}

const TASK_SERVICE: &str = "graphgateway.v1.SecurityConfigurationTaskService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_policy_reflection_answers_only_named_callers_unless_made_public() {
    let issuer = Issuer::start().await;
    let named = format!(
        "{}\n[[callers]]\nname = \"reader\"\nidentities = [\"jwt:reader-app\"]\nrpcs = [\"ListSecurityConfigurationTasks\"]\n",
        issuer.policy_section()
    );
    let gw = gateway_with_policy(&named).await;
    let addr = gw.grpc_addr.to_string();
    let list = |extra: &[String]| {
        let mut args = vec!["-plaintext".to_owned()];
        args.extend_from_slice(extra);
        args.extend([addr.clone(), "list".to_owned()]);
        args
    };

    // No identity: refused, and the refusal is counted.
    let (ok, text) = grpcurl(list(&[])).await;
    assert!(!ok && text.contains("Unauthenticated"), "{text}");
    assert!(!text.contains(TASK_SERVICE), "{text}");
    // A valid token for a subject the policy does not name: refused too.
    let stranger = format!("authorization: Bearer {}", issuer.token("stranger-app"));
    let (ok, text) = grpcurl(list(&["-H".into(), stranger])).await;
    assert!(!ok && text.contains("PermissionDenied"), "{text}");
    // A caller the policy names may reflect, whatever RPCs it may call.
    let reader = format!("authorization: Bearer {}", issuer.token("reader-app"));
    let (ok, text) = grpcurl(list(&["-H".into(), reader])).await;
    assert!(ok && text.contains(TASK_SERVICE), "{text}");
    // Health stays open for probes.
    health_serving(&gw).await;
    // (grpcurl asks v1, then v1alpha: each refusal is counted.)
    let metrics = gw.metrics.render();
    for reason in ["NO_CREDENTIALS", "CALLER_UNKNOWN"] {
        assert!(
            metrics.contains(&format!(
                "graph_gateway_access_denied_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    gw.shutdown().await.expect("stops");

    // The policy makes it public: anyone may list.
    let gw = gateway_with_policy(&format!("[public]\nreflection = true\n\n{named}")).await;
    let addr = gw.grpc_addr.to_string();
    let (ok, text) = grpcurl(vec!["-plaintext".into(), addr, "list".into()]).await;
    assert!(ok && text.contains(TASK_SERVICE), "{text}");
    health_serving(&gw).await;
    gw.shutdown().await.expect("stops");
}
