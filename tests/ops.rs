//! Operating the gateway: health, reflection, admin endpoints, deadlines,
//! unreachable Graph, tokens, and graceful shutdown.

mod common;

use common::{config, connect, fake_cloud, get, loopback, Harness};
use graph_grpc_gateway::config::GraphTarget;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::server::Drain;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test]
async fn health_reports_serving_for_the_service_and_overall() {
    let h = Harness::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.gateway.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let mut health = HealthClient::new(channel);
    for service in ["", "graphgateway.v1.SecurityConfigurationTaskService"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner();
        assert_eq!(resp.status, ServingStatus::Serving as i32, "{service:?}");
    }
}

#[tokio::test]
async fn admin_endpoints_answer_and_metrics_count_calls() {
    let mut h = Harness::start().await;
    assert_eq!(
        reqwest::get(h.admin_url("/healthz"))
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(h.admin_url("/readyz"))
            .await
            .expect("readyz")
            .status(),
        200
    );
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK");
    let _ = h
        .client
        .get_security_configuration_task(get("0000dead-0000-4000-8000-000000000404"))
        .await
        .expect_err("404");
    let resp = reqwest::get(h.admin_url("/metrics"))
        .await
        .expect("metrics");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("text");
    for line in [
        "graph_gateway_grpc_calls_total{rpc=\"GetSecurityConfigurationTask\",code=\"OK\"} 1",
        "graph_gateway_grpc_calls_total{rpc=\"GetSecurityConfigurationTask\",code=\"NOT_FOUND\"} 1",
        "graph_gateway_graph_requests_total{method=\"GET\",status=\"200\"} 1",
        "graph_gateway_graph_requests_total{method=\"GET\",status=\"404\"} 1",
        "graph_gateway_grpc_call_duration_seconds_count{rpc=\"GetSecurityConfigurationTask\"} 2",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[tokio::test]
async fn unreachable_graph_is_unavailable() {
    let closed = TcpListener::bind(loopback()).await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut h = Harness::with_config(config(fake_cloud::graph_with_credentials(&format!(
        "http://127.0.0.1:{port}"
    ))))
    .await;
    let s = h
        .client
        .get_security_configuration_task(get("0000dead-0000-4000-8000-000000000001"))
        .await
        .expect_err("down");
    assert_eq!(s.code(), Code::Unavailable);
}

#[tokio::test]
async fn client_secret_token_is_fetched_once_and_sent_as_bearer() {
    let (url, cloud) = fake_cloud::start().await;
    let mut h = Harness::with_config(config(fake_cloud::graph_with_credentials(&url))).await;
    for _ in 0..3 {
        let got = h
            .client
            .get_security_configuration_task(get(fake_cloud::FAST))
            .await
            .expect("OK")
            .into_inner();
        assert_eq!(got.id, fake_cloud::FAST);
    }
    let token_requests = cloud.token_requests.lock().expect("lock").clone();
    assert_eq!(token_requests.len(), 1, "cached after the first call");
    let form = &token_requests[0];
    for part in [
        "grant_type=client_credentials",
        "client_id=client-1",
        "client_secret=top-secret-value",
        "scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
    ] {
        assert!(form.contains(part), "{part} not in {form}");
    }
    let auths = cloud.authorizations.lock().expect("lock").clone();
    assert_eq!(auths, vec!["Bearer test-access-token"; 3]);
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_graph_call() {
    let (url, _cloud) = fake_cloud::start().await;
    let mut h = Harness::with_config(config(fake_cloud::graph_with_credentials(&url))).await;
    let mut req = Request::new(get(fake_cloud::SLOW));
    req.set_timeout(Duration::from_millis(300));
    let s = h
        .client
        .get_security_configuration_task(req)
        .await
        .expect_err("deadline");
    assert_eq!(s.code(), Code::DeadlineExceeded);
}

#[tokio::test]
async fn graph_timeout_applies_without_a_caller_deadline() {
    let (url, _cloud) = fake_cloud::start().await;
    let mut cfg = config(fake_cloud::graph_with_credentials(&url));
    cfg.graph_timeout = Duration::from_millis(200);
    let mut h = Harness::with_config(cfg).await;
    let s = h
        .client
        .get_security_configuration_task(get(fake_cloud::SLOW))
        .await
        .expect_err("timeout");
    assert_eq!(s.code(), Code::DeadlineExceeded);
    assert!(s.metadata().get("client-request-id").is_some());
}

#[tokio::test]
async fn shutdown_drains_and_closes_the_ports() {
    let mut h = Harness::start().await;
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK");
    let grpc = h.gateway.grpc_addr;
    let admin = h.gateway.admin_addr;
    let Harness { gateway, client } = h;
    drop(client);
    assert_eq!(gateway.shutdown().await.expect("stops"), Drain::Complete);
    assert!(
        tokio::net::TcpStream::connect(grpc).await.is_err(),
        "gRPC port closed"
    );
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "admin port closed"
    );
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let mut cfg = config(GraphTarget::Emulator);
    cfg.max_message_bytes = 4096;
    let mut h = Harness::with_config(cfg).await;
    let s = h
        .client
        .get_security_configuration_task(get(&"x".repeat(10_000)))
        .await
        .expect_err("too big");
    assert_eq!(s.code(), Code::OutOfRange, "{s:?}");
    assert_eq!(h.emulator().received(), 0);
    let _ = connect(h.gateway.grpc_addr).await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish_and_refuses_new_ones() {
    let (url, cloud) = fake_cloud::start().await;
    let h = Harness::with_config(config(fake_cloud::graph_with_credentials(&url))).await;
    let Harness { gateway, client } = h;
    let grpc = gateway.grpc_addr;
    let mut in_flight = client.clone();
    let call = tokio::spawn(async move {
        in_flight
            .get_security_configuration_task(get(fake_cloud::HELD))
            .await
    });
    cloud.arrived.notified().await;
    let stopping = tokio::spawn(gateway.shutdown());
    // The listener closes while the call is still waiting on Graph.
    let refused = loop {
        match tokio::net::TcpStream::connect(grpc).await {
            Err(_) => break true,
            Ok(_) if stopping.is_finished() => break false,
            Ok(_) => tokio::task::yield_now().await,
        }
    };
    assert!(refused, "new connections refused while draining");
    cloud.release.notify_one();
    let answer = call
        .await
        .expect("joined")
        .expect("in-flight call completes OK");
    assert_eq!(answer.into_inner().id, fake_cloud::HELD);
    drop(client);
    assert_eq!(
        stopping.await.expect("joined").expect("stops"),
        Drain::Complete
    );
}

#[tokio::test]
async fn shutdown_abandons_calls_past_the_drain_timeout() {
    let (url, cloud) = fake_cloud::start().await;
    let mut cfg = config(fake_cloud::graph_with_credentials(&url));
    cfg.drain_timeout = Duration::from_millis(100);
    let Harness { gateway, client } = Harness::with_config(cfg).await;
    let mut in_flight = client.clone();
    let call = tokio::spawn(async move {
        in_flight
            .get_security_configuration_task(get(fake_cloud::HELD))
            .await
    });
    cloud.arrived.notified().await;
    assert_eq!(gateway.shutdown().await.expect("stops"), Drain::Abandoned);
    call.abort();
}
