//! Server reflection in both protocol versions, as real tools use it.
//! (Multi-threaded runtimes: the tools run as blocking child processes
//! while the in-process gateway serves them.)

mod common;

use common::Harness;
use std::process::Command;

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
