//! The lame-duck period: on SIGTERM the gateway says NOT_SERVING at once
//! (gRPC health, `/readyz`) but keeps accepting and serving new connections
//! for `GATEWAY_SHUTDOWN_DELAY`, while Kubernetes stops routing to it; then
//! it drains and exits 0. Against the real binary as a child process.

mod common;

use common::process::{blocking, serve_emulator, Running};
use common::{config, connect, get, Harness};
use graph_grpc_gateway::config::GraphTarget;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::server::Drain;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SERVICE: &str = "graphgateway.v1.SecurityConfigurationTaskService";

/// Health of the server and of the service, each asked on a new connection.
async fn health(addr: &str) -> Vec<i32> {
    let mut statuses = Vec::new();
    for service in ["", SERVICE] {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("a new connection is accepted");
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        statuses.push(status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_not_serving_and_still_serves_new_connections_for_the_delay() {
    let gw = Running::spawn_with_env(
        &serve_emulator(&["--log-format", "json"]),
        &[("GATEWAY_SHUTDOWN_DELAY", "5s".to_owned())],
    );
    let (gw, line) = blocking(gw, |gw| {
        gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60))
    })
    .await;
    let serving: Value = serde_json::from_str(&line).expect("json log line");
    let grpc = serving["grpc_addr"].as_str().expect("grpc_addr").to_owned();
    let admin = serving["admin_addr"]
        .as_str()
        .expect("admin_addr")
        .to_owned();
    let serving_now = ServingStatus::Serving as i32;
    assert_eq!(health(&grpc).await, [serving_now, serving_now]);

    let signalled = Instant::now();
    gw.terminate();
    let (gw, _) = blocking(gw, |gw| {
        gw.wait_for_line("lame duck", Duration::from_secs(30))
    })
    .await;
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(health(&grpc).await, [not_serving, not_serving]);
    let readyz = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .expect("the admin port still answers");
    assert_eq!(readyz.status(), 503);

    // The scenario: a client that connects a second after the signal,
    // before its load balancer has caught up, is still served.
    tokio::time::sleep_until(signalled + Duration::from_secs(1)).await;
    let mut late = connect(grpc.parse().expect("addr")).await;
    let got = late
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("a call on a new connection during the delay succeeds");
    assert_eq!(got.into_inner().id, seed::EXAMPLE_TASK_ID);
    drop(late);

    let (mut gw, _) = blocking(gw, |gw| {
        gw.wait_for_line("draining", Duration::from_secs(30));
        gw.wait_for_line("drained", Duration::from_secs(30));
    })
    .await;
    let status = gw.child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_during_the_delay_then_drains() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.shutdown_delay = Duration::from_secs(5);
    let Harness { gateway, client } = Harness::with_config(cfg).await;
    drop(client);
    let grpc = gateway.grpc_addr.to_string();
    let admin = gateway.admin_addr;
    let stopping = tokio::spawn(gateway.shutdown());
    // Health turns first: wait for it.
    let not_serving = ServingStatus::NotServing as i32;
    let turned = tokio::time::timeout(Duration::from_secs(30), async {
        while health(&grpc).await != [not_serving, not_serving] {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(turned.is_ok(), "health never said NOT_SERVING");
    let readyz = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .expect("answers");
    assert_eq!(readyz.status(), 503);
    let mut late = connect(grpc.parse().expect("addr")).await;
    late.get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("served during the delay");
    drop(late);
    assert_eq!(
        stopping.await.expect("joined").expect("stops"),
        Drain::Complete
    );
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "the port is closed after the drain"
    );
}
