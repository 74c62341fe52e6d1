//! Inbound security over real loopback connections: TLS with certificate
//! rotation, mutual TLS, bearer JWTs checked against a JWKS served in the
//! test, the per-RPC allowlist, rate limits and connection limits. A refused
//! call must never reach the emulator.

mod common;

use common::issuer::{self, Issuer};
use common::pki::{self, Ca, Dir, Leaf};
use common::{config, get, Client};
use graph_grpc_gateway::config::{Callers, Config, GraphTarget, Inbound, Transport};
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::security_configuration_task_service_client::SecurityConfigurationTaskServiceClient;
use graph_grpc_gateway::proto::v1::{
    ListSecurityConfigurationTasksRequest, UpdateSecurityConfigurationTaskRequest,
};
use graph_grpc_gateway::security::policy::Policy;
use graph_grpc_gateway::security::tls::{ClientAuth, TlsSettings};
use graph_grpc_gateway::server::Gateway;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};
use tonic_types::StatusExt;

/// A gateway against the in-process emulator with `inbound`.
async fn gateway(inbound: Inbound) -> Gateway {
    let cfg = Config {
        inbound,
        ..config(GraphTarget::Emulator)
    };
    let gw = Gateway::start(cfg).await.expect("gateway starts");
    // The request log is off by default; these tests read it.
    let emulator = emulator(&gw);
    emulator.set_options(emulator.options().with_record_requests(true));
    gw
}

fn tls(dir: &Dir, server: &Leaf, client_ca: Option<&Ca>, auth: ClientAuth) -> Transport {
    let (cert_file, key_file) = pki::write_server(dir, server);
    let client_ca_file = client_ca.map(|ca| dir.write("client-ca.pem", ca.pem()));
    Transport::Tls(TlsSettings {
        cert_file,
        key_file,
        client_ca_file,
        client_auth: auth,
        reload_interval: Duration::from_millis(100),
    })
}

fn inbound(transport: Transport, policy: Option<&str>) -> Inbound {
    Inbound {
        transport,
        callers: match policy {
            Some(text) => Callers::Policy(Arc::new(Policy::from_toml(text).expect("policy"))),
            None => Callers::Anyone,
        },
        ..Inbound::open()
    }
}

/// A TLS client trusting `ca`, presenting `identity` if given.
async fn tls_client(gw: &Gateway, ca: &Ca, identity: Option<&Leaf>) -> Result<Client, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert_pem, &leaf.key_pem));
    }
    let channel = Channel::from_shared(format!("https://{}", gw.grpc_addr))
        .expect("uri")
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(SecurityConfigurationTaskServiceClient::new(channel))
}

async fn plain_client(gw: &Gateway) -> Client {
    common::connect(gw.grpc_addr).await
}

fn rename(id: &str, name: &str) -> UpdateSecurityConfigurationTaskRequest {
    common::rename(id, name, "")
}

fn with_bearer<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    req
}

fn patches(gw: &Gateway) -> usize {
    emulator(gw)
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count()
}

fn emulator(gw: &Gateway) -> &graph_grpc_gateway::emulator::Emulator {
    &gw.emulator.as_ref().expect("emulator").emulator
}

fn reason(status: &tonic::Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// A raw TLS client: how the server ends a connection from a client with
/// `identity` (or none), after the handshake's first read.
async fn handshake_refusal(gw: &Gateway, ca: &Ca, identity: Option<&Leaf>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let builder = rustls_client(ca);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![pem_der(&leaf.cert_pem).expect("der").into()],
                rustls_pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())
                    .expect("key"),
            )
            .expect("client auth"),
    };
    let tcp = tokio::net::TcpStream::connect(gw.grpc_addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => return e.to_string(),
    };
    let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    let mut buf = [0u8; 64];
    match stream.read(&mut buf).await {
        Ok(n) => format!("read {n} bytes"),
        Err(e) => e.to_string(),
    }
}

fn rustls_client(
    ca: &Ca,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pem_der(&ca.pem()).expect("CA der"),
        ))
        .expect("root");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
}

/// The leaf certificate the server presents to a fresh TLS handshake.
async fn served_certificate(gw: &Gateway, ca: &Ca) -> Vec<u8> {
    let config = rustls_client(ca).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(gw.grpc_addr)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let stream = connector.connect(name, tcp).await.expect("handshake");
    stream.get_ref().1.peer_certificates().expect("certificate")[0].to_vec()
}

use rustls_pki_types::pem::PemObject;

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .ok()
        .map(|c| c.to_vec())
}

/// Polls `probe` until it holds, for at most ten seconds.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if probe().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "never happened: {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_calls_and_a_rotated_certificate_without_a_restart() {
    let dir = Dir::new();
    let ca = Ca::new("server CA");
    let first = ca.server();
    let gw = gateway(inbound(tls(&dir, &first, None, ClientAuth::Required), None)).await;

    let mut client = tls_client(&gw, &ca, None).await.expect("TLS connects");
    let task = client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("Get over TLS")
        .into_inner();
    assert_eq!(task.id, seed::EXAMPLE_TASK_ID);
    assert_eq!(served_certificate(&gw, &ca).await, first.der);

    // A plaintext client cannot talk to a TLS port.
    let plain = Channel::from_shared(format!("http://{}", gw.grpc_addr))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    // Either the connection or the call fails (whether the HTTP/2 preface
    // is refused before connect returns is a race), and nothing is sent.
    let before = emulator(&gw).received();
    let served = match plain {
        Ok(channel) => SecurityConfigurationTaskServiceClient::new(channel)
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .is_ok(),
        Err(_) => false,
    };
    assert!(!served, "plaintext on a TLS port was served");
    assert_eq!(emulator(&gw).received(), before, "plaintext reached Graph");

    // Rotation: new files, same paths; new handshakes get the new certificate.
    let second = ca.server();
    pki::write_server(&dir, &second);
    eventually("the rotated certificate is served", || async {
        served_certificate(&gw, &ca).await == second.der
    })
    .await;
    // The connection opened before the rotation still works.
    client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("old connection still served");
    let reloads = gw.metrics.render();
    assert!(
        reloads.contains("graph_gateway_tls_reloads_total{reason=\"replaced\"}"),
        "{reloads}"
    );

    // A broken rotation keeps the last good certificate.
    dir.write("server.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    eventually("the broken files are refused", || async {
        gw.metrics
            .render()
            .contains("graph_gateway_tls_reloads_total{reason=\"refused\"}")
    })
    .await;
    assert_eq!(served_certificate(&gw, &ca).await, second.der);
    gw.shutdown().await.expect("stops");
}

const MTLS_POLICY: &str = r#"
[[callers]]
name = "patcher"
identities = ["uri:spiffe://cluster.local/ns/security/sa/patcher"]
rpcs = ["*"]

[[callers]]
name = "dashboard"
identities = ["dns:dashboard.monitoring.svc"]
rpcs = ["GetSecurityConfigurationTask", "ListSecurityConfigurationTasks"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_names_the_caller_and_the_allowlist_decides() {
    let dir = Dir::new();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let gw = gateway(inbound(
        tls(
            &dir,
            &server_ca.server(),
            Some(&client_ca),
            ClientAuth::Required,
        ),
        Some(MTLS_POLICY),
    ))
    .await;

    // No client certificate, or one from another CA: the handshake itself
    // is refused (TLS 1.3 reports it with the first read, so either the
    // connect or the call fails), and nothing reaches Graph.
    let stranger = Ca::new("someone else").client("patcher", None, None);
    for (identity, alert) in [
        (None, "CertificateRequired"),
        (Some(&stranger), "UnknownCA"),
    ] {
        let served = match tls_client(&gw, &server_ca, identity).await {
            Ok(mut c) => c
                .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
                .await
                .is_ok(),
            Err(_) => false,
        };
        assert!(!served, "{alert}: served without the handshake");
        let failure = handshake_refusal(&gw, &server_ca, identity).await;
        assert!(failure.contains(alert), "{alert}: {failure}");
    }
    assert_eq!(emulator(&gw).received(), 0, "reached Graph");

    // The dashboard may read but not write; the write never reaches Graph.
    let dashboard = client_ca.client("dashboard", Some("dashboard.monitoring.svc"), None);
    let mut c = tls_client(&gw, &server_ca, Some(&dashboard))
        .await
        .expect("connects");
    c.get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("dashboard may Get");
    c.list_security_configuration_tasks(ListSecurityConfigurationTasksRequest::default())
        .await
        .expect("dashboard may List");
    let before = patches(&gw);
    let denied = c
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "dashboard was here"))
        .await
        .expect_err("dashboard may not Update");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(reason(&denied), "RPC_NOT_ALLOWED");
    assert!(denied.message().contains("dashboard"), "{denied:?}");
    assert_eq!(patches(&gw), before, "a denied update reached Graph");
    assert_ne!(
        emulator(&gw).task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        json!("dashboard was here")
    );

    // The patcher (known by its SPIFFE URI) may update.
    let patcher = client_ca.client(
        "patcher",
        None,
        Some("spiffe://cluster.local/ns/security/sa/patcher"),
    );
    let mut c = tls_client(&gw, &server_ca, Some(&patcher))
        .await
        .expect("connects");
    c.update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "patched over mTLS"))
        .await
        .expect("patcher may Update");
    assert_eq!(patches(&gw), before + 1);

    // A valid certificate the policy does not name: PERMISSION_DENIED.
    let unknown = client_ca.client("intruder", Some("intruder.default.svc"), None);
    let mut c = tls_client(&gw, &server_ca, Some(&unknown))
        .await
        .expect("connects");
    let status = c
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("unknown caller");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), "CALLER_UNKNOWN");
    assert!(
        status.message().contains("dns:intruder.default.svc"),
        "{status:?}"
    );
    gw.shutdown().await.expect("stops");
}

fn jwt_policy(issuer: &Issuer, extra: &str) -> String {
    format!(
        "[public]\nhealth = true\nreflection = false\n\n{}\n{extra}\n[[callers]]\nname = \"reader\"\nidentities = [\"jwt:reader-app\"]\nrpcs = [\"GetSecurityConfigurationTask\", \"ListSecurityConfigurationTasks\"]\n\n[[callers]]\nname = \"writer\"\nidentities = [\"jwt:writer-app\"]\nrpcs = [\"*\"]\n",
        issuer.policy_section()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_identify_callers_and_bad_ones_are_unauthenticated() {
    let issuer = Issuer::start().await;
    let gw = gateway(inbound(
        Transport::Plaintext,
        Some(&jwt_policy(&issuer, "")),
    ))
    .await;
    let mut c = plain_client(&gw).await;
    let before = patches(&gw);

    // No credentials at all.
    let status = c
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(reason(&status), "NO_CREDENTIALS");

    // The reader reads, and may not write.
    let reader = issuer.token("reader-app");
    c.get_security_configuration_task(with_bearer(get(seed::EXAMPLE_TASK_ID), &reader))
        .await
        .expect("reader may Get");
    let status = c
        .update_security_configuration_task(with_bearer(
            rename(seed::EXAMPLE_TASK_ID, "reader was here"),
            &reader,
        ))
        .await
        .expect_err("reader may not Update");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), "RPC_NOT_ALLOWED");

    // Each bad token gets UNAUTHENTICATED with its reason, and no message
    // repeats the token.
    let expired = issuer.sign(&json!({
        "iss": issuer::ISSUER, "aud": issuer::AUDIENCE, "sub": "writer-app",
        "iat": issuer::now() - 7200, "exp": issuer::now() - 3600,
    }));
    let wrong_audience = issuer.sign(&json!({
        "iss": issuer::ISSUER, "aud": "api://someone-else", "sub": "writer-app",
        "exp": issuer::now() + 3600,
    }));
    let mut tampered = issuer.token("writer-app");
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let foreign = Issuer::start().await.token("writer-app");
    for (token, expected) in [
        (expired.as_str(), "TOKEN_EXPIRED"),
        (wrong_audience.as_str(), "TOKEN_WRONG_AUDIENCE"),
        (tampered.as_str(), "TOKEN_BAD_SIGNATURE"),
        (foreign.as_str(), "TOKEN_UNKNOWN_KEY"),
        ("not-a-jwt", "TOKEN_MALFORMED"),
    ] {
        let status = c
            .update_security_configuration_task(with_bearer(
                rename(seed::EXAMPLE_TASK_ID, "should not happen"),
                token,
            ))
            .await
            .expect_err(expected);
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{expected}: {status:?}"
        );
        assert_eq!(reason(&status), expected, "{status:?}");
        assert!(
            !status.message().contains(token),
            "token echoed: {status:?}"
        );
    }
    // A valid token for a subject the policy does not name.
    let status = c
        .get_security_configuration_task(with_bearer(
            get(seed::EXAMPLE_TASK_ID),
            &issuer.token("stranger"),
        ))
        .await
        .expect_err("unknown subject");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(reason(&status), "CALLER_UNKNOWN");
    assert_eq!(patches(&gw), before, "a refused call reached Graph");

    // The writer writes.
    c.update_security_configuration_task(with_bearer(
        rename(seed::EXAMPLE_TASK_ID, "written with a token"),
        &issuer.token("writer-app"),
    ))
    .await
    .expect("writer may Update");
    assert_eq!(patches(&gw), before + 1);

    // Health is public in this policy; reflection is not.
    let channel = Channel::from_shared(format!("http://{}", gw.grpc_addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health without credentials");
    assert_eq!(health.into_inner().status, 1, "SERVING");
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let refused = reflection
        .server_reflection_info(tokio_stream::iter(vec![
            tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                        String::new(),
                    ),
                ),
            },
        ]))
        .await
        .expect_err("reflection needs a caller here");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let metrics = gw.metrics.render();
    assert!(
        metrics.contains("graph_gateway_access_denied_total{reason=\"TOKEN_EXPIRED\"} 1"),
        "{metrics}"
    );
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_limit_gets_resource_exhausted_with_retry_info() {
    let issuer = Issuer::start().await;
    // One call per thousand seconds after a burst of two: the third call is
    // refused whatever the machine's speed.
    let policy = jwt_policy(
        &issuer,
        "[defaults]\nrate_limit = { per_second = 0.001, burst = 2 }\n",
    );
    let gw = gateway(inbound(Transport::Plaintext, Some(&policy))).await;
    let mut c = plain_client(&gw).await;
    let reader = issuer.token("reader-app");
    for _ in 0..2 {
        c.get_security_configuration_task(with_bearer(get(seed::EXAMPLE_TASK_ID), &reader))
            .await
            .expect("within the burst");
    }
    let status = c
        .get_security_configuration_task(with_bearer(get(seed::EXAMPLE_TASK_ID), &reader))
        .await
        .expect_err("over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "RATE_LIMITED");
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(
        delay > Duration::from_secs(900) && delay <= Duration::from_secs(1000),
        "{delay:?}"
    );
    // Limits are per caller: the writer still has its own burst.
    c.get_security_configuration_task(with_bearer(
        get(seed::EXAMPLE_TASK_ID),
        &issuer.token("writer-app"),
    ))
    .await
    .expect("another caller is not limited by the reader");
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let gw = gateway(Inbound {
        max_connections: 1,
        ..Inbound::open()
    })
    .await;
    let mut first = plain_client(&gw).await;
    first
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("first connection served");
    // The second connection is not accepted while the first is open: its
    // call runs out of deadline.
    let second = Channel::from_shared(format!("http://{}", gw.grpc_addr))
        .expect("uri")
        .timeout(Duration::from_millis(300))
        .connect_lazy();
    let mut second = SecurityConfigurationTaskServiceClient::new(second);
    let waited = second
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("not accepted yet");
    assert!(
        matches!(
            waited.code(),
            Code::Cancelled | Code::DeadlineExceeded | Code::Unavailable
        ),
        "{waited:?}"
    );
    drop(first);
    drop(second);
    let mut third = SecurityConfigurationTaskServiceClient::new(
        Channel::from_shared(format!("http://{}", gw.grpc_addr))
            .expect("uri")
            .timeout(Duration::from_secs(20))
            .connect_lazy(),
    );
    third
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("served once the first connection closed");
    gw.shutdown().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_metadata_are_refused_before_graph() {
    let gw = gateway(Inbound::open()).await;
    let mut c = plain_client(&gw).await;
    let before = emulator(&gw).requests().len();
    // A message past GATEWAY_MAX_MESSAGE_BYTES (4 MiB in the test config).
    let huge = rename(seed::EXAMPLE_TASK_ID, &"x".repeat(5 * 1024 * 1024));
    let status = c
        .update_security_configuration_task(huge)
        .await
        .expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // Metadata past the header list limit.
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.metadata_mut().insert(
        "x-padding",
        MetadataValue::try_from("y".repeat(32 * 1024)).expect("ascii"),
    );
    let refused = c.get_security_configuration_task(req).await;
    assert!(refused.is_err(), "oversized metadata accepted");
    assert_eq!(emulator(&gw).requests().len(), before, "reached Graph");
    gw.shutdown().await.expect("stops");
}

/// grpcurl (Go's gRPC and TLS stack) against the TLS port: mutual TLS for
/// reflection and the call, and a bearer token in `-H`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_calls_over_mutual_tls_with_a_bearer_token() {
    let found = std::process::Command::new("grpcurl")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found,
        "grpcurl is not on PATH: run the tests with scripts/test.sh, or `source scripts/tools.sh` first"
    );
    let issuer = Issuer::start().await;
    let dir = Dir::new();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let policy = format!(
        "{}\n[public]\nhealth = true\nreflection = false\n\n[[callers]]\nname = \"operator\"\nidentities = [\"cn:operator\"]\nrpcs = [\"GetSecurityConfigurationTask\"]\n\n[[callers]]\nname = \"writer\"\nidentities = [\"jwt:writer-app\"]\nrpcs = [\"*\"]\n",
        issuer.policy_section()
    );
    let gw = gateway(inbound(
        tls(
            &dir,
            &server_ca.server(),
            Some(&client_ca),
            ClientAuth::Required,
        ),
        Some(&policy),
    ))
    .await;
    let operator = client_ca.client("operator", None, None);
    let ca_file = dir.write("server-ca.pem", server_ca.pem());
    let cert_file = dir.write("operator.crt", &operator.cert_pem);
    let key_file = dir.write("operator.key", &operator.key_pem);
    let addr = gw.grpc_addr.to_string();
    let tls_args: Vec<String> = vec![
        "-cacert".into(),
        ca_file.display().to_string(),
        "-cert".into(),
        cert_file.display().to_string(),
        "-key".into(),
        key_file.display().to_string(),
    ];
    let grpcurl = move |extra: Vec<String>| {
        let mut cmd = std::process::Command::new("grpcurl");
        cmd.args(&tls_args).args(extra);
        cmd.output().expect("grpcurl runs")
    };
    let get = format!("{{\"id\": \"{}\"}}", seed::EXAMPLE_TASK_ID);
    let method = "graphgateway.v1.SecurityConfigurationTaskService/GetSecurityConfigurationTask";
    let update = "graphgateway.v1.SecurityConfigurationTaskService/UpdateSecurityConfigurationTask";
    let body = format!(
        "{{\"security_configuration_task\": {{\"id\": \"{}\", \"display_name\": \"via grpcurl\"}}, \"update_mask\": {{\"paths\": [\"display_name\"]}}}}",
        seed::EXAMPLE_TASK_ID
    );
    let token = issuer.token("writer-app");
    let (read, write_as_operator, write_with_token) = {
        let (addr, get, body, token) = (addr.clone(), get.clone(), body.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let read = grpcurl(vec!["-d".into(), get, addr.clone(), method.into()]);
            let as_operator = grpcurl(vec!["-d".into(), body.clone(), addr.clone(), update.into()]);
            let with_token = grpcurl(vec![
                "-H".into(),
                format!("authorization: Bearer {token}"),
                "-d".into(),
                body,
                addr,
                update.into(),
            ]);
            (read, as_operator, with_token)
        })
        .await
        .expect("grpcurl ran")
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(read.status.success(), "{}", text(&read));
    assert!(
        text(&read).contains(seed::EXAMPLE_TASK_ID),
        "{}",
        text(&read)
    );
    assert!(!write_as_operator.status.success());
    assert!(
        text(&write_as_operator).contains("PermissionDenied"),
        "{}",
        text(&write_as_operator)
    );
    assert!(
        write_with_token.status.success(),
        "{}",
        text(&write_with_token)
    );
    assert!(text(&write_with_token).contains("via grpcurl"));
    assert_eq!(
        emulator(&gw).task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        json!("via grpcurl")
    );
    gw.shutdown().await.expect("stops");
}
