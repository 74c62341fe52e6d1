//! `HTTP_PROXY`/`HTTPS_PROXY` and `NO_PROXY` are honoured for Graph and
//! token requests. The proxy here is the fake cloud itself: it answers
//! absolute-form requests for a Graph host where nothing listens.

mod common;

use common::process::Running;
use common::{connect, fake_cloud};
use graph_grpc_gateway::proto::v1::GetSecurityConfigurationTaskRequest;
use std::time::Duration;
use tonic::Code;

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts `serve` against an unreachable "Graph" with `proxy_env` set, and
/// makes one Get.
async fn get_through(
    proxy_env: &[(&str, String)],
) -> (Result<String, Code>, fake_cloud::FakeCloud) {
    let (proxy_url, proxy) = fake_cloud::start().await;
    let nowhere = format!("http://127.0.0.1:{}", closed_port());
    let mut env = vec![
        ("AZURE_TENANT_ID", "tenant-1".to_owned()),
        ("AZURE_CLIENT_ID", "client-1".to_owned()),
        ("AZURE_CLIENT_SECRET", "proxy-test-secret".to_owned()),
        ("AZURE_AUTHORITY_HOST", nowhere.clone()),
        ("GRAPH_BASE_URL", format!("{nowhere}/beta")),
        ("HTTP_PROXY", proxy_url),
        ("GATEWAY_PLAINTEXT", "true".to_owned()),
        ("GATEWAY_ALLOW_UNAUTHENTICATED", "true".to_owned()),
    ];
    env.extend(proxy_env.iter().cloned());
    let gw = Running::spawn_with_env(
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
        &env,
    );
    let line = gw.wait_for_line("graph-grpc-gateway serving", Duration::from_secs(60));
    let addr = line
        .split('"')
        .find(|p| p.starts_with("127.0.0.1:") && !p.ends_with(":0"))
        .expect("grpc_addr in the log line")
        .parse()
        .expect("addr");
    let mut client = connect(addr).await;
    let result = client
        .get_security_configuration_task(GetSecurityConfigurationTaskRequest {
            id: fake_cloud::FAST.into(),
        })
        .await
        .map(|r| r.into_inner().id)
        .map_err(|s| s.code());
    (result, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_and_token_requests_go_through_the_proxy() {
    let (result, proxy) = get_through(&[]).await;
    assert_eq!(result, Ok(fake_cloud::FAST.to_owned()));
    assert_eq!(proxy.token_requests.lock().expect("lock").len(), 1);
    assert_eq!(
        *proxy.authorizations.lock().expect("lock"),
        ["Bearer test-access-token"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_hosts_are_reached_directly() {
    let (result, proxy) = get_through(&[("NO_PROXY", "127.0.0.1".to_owned())]).await;
    assert_eq!(
        result,
        Err(Code::Unavailable),
        "direct, to where nothing listens"
    );
    assert!(proxy.token_requests.lock().expect("lock").is_empty());
}
