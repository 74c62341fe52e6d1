//! The gateway and Entra ID tokens, against the emulator's token endpoint:
//! readiness follows the token, refused and unavailable tokens map to precise
//! statuses without reaching Graph, and a token Graph refuses is replaced.

mod common;

use common::{config, get, loopback, Harness};
use graph_grpc_gateway::config::{Cloud, Credential, CredentialKind, GraphTarget};
use graph_grpc_gateway::emulator::{seed, EmulatorOptions, Fault, RunningEmulator};
use graph_grpc_gateway::secret::Secret;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

const REJECTED: &str = "rejected-secret-value";

/// A standalone emulator that requires tokens and refuses [`REJECTED`].
async fn emulator() -> RunningEmulator {
    let options = EmulatorOptions::default()
        .with_require_auth(true)
        .with_rejected_client_secret(REJECTED)
        .with_record_requests(true);
    graph_grpc_gateway::emulator::Emulator::with_options(options)
        .spawn(loopback())
        .await
        .expect("emulator")
}

fn target(em: &RunningEmulator, secret: &str) -> GraphTarget {
    GraphTarget::Graph {
        base_url: em.base_url.parse().expect("url"),
        credential: Box::new(Credential {
            authority_host: format!("http://{}", em.addr).parse().expect("url"),
            tenant_id: "contoso".into(),
            client_id: "gateway".into(),
            scope: Cloud::Global.scope(),
            kind: CredentialKind::ClientSecret(Secret::new(secret)),
        }),
    }
}

async fn readyz(h: &Harness) -> u16 {
    reqwest::get(h.admin_url("/readyz"))
        .await
        .expect("readyz")
        .status()
        .as_u16()
}

async fn grpc_health(h: &Harness) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.gateway.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "graphgateway.v1.SecurityConfigurationTaskService".into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

#[tokio::test]
async fn with_a_token_the_gateway_is_ready_and_sends_it() {
    let em = emulator().await;
    let mut h = Harness::with_config(config(target(&em, "good-secret"))).await;
    assert_eq!(readyz(&h).await, 200);
    assert_eq!(grpc_health(&h).await, ServingStatus::Serving as i32);
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK");
    assert_eq!(
        em.emulator.token_request_count(),
        1,
        "warmed up once, then cached"
    );
    let sent = em.emulator.requests().pop().expect("a Graph request");
    assert!(sent.authorization.is_some_and(|a| a.starts_with("Bearer ")));
}

#[tokio::test]
async fn refused_credentials_are_unauthenticated_and_not_ready() {
    let em = emulator().await;
    let mut h = Harness::with_config(config(target(&em, REJECTED))).await;
    assert_eq!(readyz(&h).await, 503);
    assert_eq!(grpc_health(&h).await, ServingStatus::NotServing as i32);
    let healthz = reqwest::get(h.admin_url("/healthz"))
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200, "liveness does not depend on Graph");

    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("no token");
    assert_eq!(s.code(), Code::Unauthenticated);
    let info = s.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "TOKEN_REFUSED");
    assert_eq!(info.metadata["aadsts"], "AADSTS7000215");
    assert!(info.metadata.contains_key("correlation-id"));
    assert!(info.metadata.contains_key("trace-id"));
    assert!(
        !format!("{s:?}").contains(REJECTED),
        "the secret never shows"
    );
    assert_eq!(em.emulator.received(), 0, "nothing reached Graph");
}

#[tokio::test]
async fn an_unavailable_token_endpoint_is_unavailable() {
    let em = emulator().await;
    em.emulator.push_token_faults([Fault {
        status: 503,
        code: None,
        message: None,
        retry_after: None,
        body: graph_grpc_gateway::emulator::FaultBody::Empty,
    }]);
    let mut h = Harness::with_config(config(target(&em, "good-secret"))).await;
    assert_eq!(readyz(&h).await, 503, "no token yet");
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("no token yet");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "TOKEN_UNAVAILABLE"
    );
    assert_eq!(em.emulator.received(), 0);
}

#[tokio::test]
async fn a_token_graph_refuses_is_replaced_once() {
    let em = emulator().await;
    let mut h = Harness::with_config(config(target(&em, "good-secret"))).await;
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK");
    // Revoked behind the gateway's back: Graph now answers 401.
    em.emulator.expire_tokens();
    h.client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK with a new token");
    assert_eq!(em.emulator.token_request_count(), 2);
    let auths: Vec<_> = em
        .emulator
        .requests()
        .into_iter()
        .map(|r| r.authorization.unwrap_or_default())
        .collect();
    assert_eq!(
        auths.len(),
        3,
        "first call, refused attempt, retried attempt"
    );
    assert_eq!(auths[0], auths[1]);
    assert_ne!(auths[1], auths[2]);
}
