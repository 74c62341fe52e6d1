//! Secret hygiene of the real binary: with every log line on (JSON, `debug`),
//! each credential kind is driven through token refusals, token endpoint
//! failures and timeouts, Graph 401/403/500 and broken connections, and
//! invalid requests. Nothing it writes and no gRPC status it returns may
//! show a secret, a private key, a federated or signed assertion, or an
//! access token.
//!
//! To cover another secret, add it to the list given to [`assert_no_secrets`].

mod common;

use common::temp::TempDir;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::fault;
use common::process::Running;
use graph_grpc_gateway::cli::{Cli, Command as CliCommand};
use graph_grpc_gateway::config::{Config, Credential, CredentialKind, GraphTarget};
use graph_grpc_gateway::emulator::{
    seed, Emulator, EmulatorOptions, Fault, FaultBody, RunningEmulator, ScriptedFault,
};
use graph_grpc_gateway::proto::v1::{
    GetSecurityConfigurationTaskRequest, ListSecurityConfigurationTasksRequest,
    SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use graph_grpc_gateway::secret::Secret;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::Generate;
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const TENANT: &str = "contoso";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
/// How long any one step may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(30);

// ---- the check ----------------------------------------------------------

/// Fails if `shown` holds any of `forbidden`, or anything shaped like a
/// secret whatever its value: a bearer credential, a JWT (a signed or
/// federated assertion), or PEM private key text.
fn assert_no_secrets(shown: &str, forbidden: &[String]) {
    for secret in forbidden {
        assert!(
            secret.len() >= 8,
            "forbidden values must be long enough to mean something: {secret:?}"
        );
        if let Some(at) = shown.find(secret.as_str()) {
            panic!("a secret value is shown: {}", context(shown, at));
        }
    }
    for marker in [
        "Bearer ",
        "bearer ",
        "PRIVATE KEY",
        "client_secret=",
        "client_assertion=",
    ] {
        if let Some(at) = shown.find(marker) {
            panic!("{marker:?} is shown: {}", context(shown, at));
        }
    }
    if let Some(at) = find_jwt(shown) {
        panic!("a JWT is shown: {}", context(shown, at));
    }
}

/// Where a JWT starts: `eyJ` (base64url of `{"`), base64url text, a dot, and
/// `eyJ` again for the claims.
fn find_jwt(text: &str) -> Option<usize> {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
    text.match_indices("eyJ").map(|(at, _)| at).find(|&at| {
        let rest = &text.as_bytes()[at..];
        let header = rest.iter().take_while(|b| is_b64(b)).count();
        header >= 10 && rest[header..].starts_with(b".eyJ")
    })
}

/// A short window of `text` around `at`, for the failure message.
fn context(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(120);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 120).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("...{}...", &text[start..end])
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let jwt = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
    );
    let forbidden = vec!["the-secret-value".to_owned()];
    for leak in [
        "log: the-secret-value".to_owned(),
        "authorization: Bearer abc".to_owned(),
        "-----BEGIN PRIVATE KEY-----".to_owned(),
        format!("assertion {jwt} sent"),
        "form: client_secret=abc".to_owned(),
    ] {
        let caught = std::panic::catch_unwind(|| assert_no_secrets(&leak, &forbidden));
        assert!(caught.is_err(), "not caught: {leak}");
    }
    assert_no_secrets(
        "request_id=5d630f12-0f12-5d63-120f-635d120f635d eyJhbGciOi without a dot",
        &forbidden,
    );
}

// ---- secret-holding types ----------------------------------------------

#[test]
fn configuration_types_redact_their_secrets() {
    const VALUE: &str = "config-secret-value-1";
    let credential = Credential {
        authority_host: "https://login.microsoftonline.com".parse().expect("url"),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        scope: "https://graph.microsoft.com/.default".into(),
        kind: CredentialKind::ClientSecret(Secret::new(VALUE)),
    };
    let cli = <Cli as clap::Parser>::try_parse_from([
        "graph-grpc-gateway",
        "serve",
        "--tenant-id",
        TENANT,
        "--client-id",
        CLIENT,
        "--plaintext",
        "--allow-unauthenticated",
    ])
    .expect("parses");
    let CliCommand::Serve(mut args) = cli.command else {
        panic!("serve parses as serve");
    };
    args.client_secret = Some(Secret::new(VALUE));
    let config = Config::from_args((*args).clone()).expect("valid configuration");
    let target = GraphTarget::Graph {
        base_url: "https://graph.microsoft.com/beta".parse().expect("url"),
        credential: Box::new(credential.clone()),
    };
    let shown = format!(
        "{credential:?} {:?} {args:?} {config:?} {target:?} {} {:?}",
        credential.kind,
        Secret::new(VALUE),
        Secret::new(VALUE)
    );
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(shown.contains(CLIENT), "the rest still shows: {shown}");
    assert_no_secrets(&shown, &[VALUE.to_owned()]);
}

// ---- the binary ---------------------------------------------------------

/// A credential for the binary: its environment and the values it must
/// never show.
struct Setup {
    env: Vec<(&'static str, String)>,
    forbidden: Vec<String>,
    /// The client secret the emulator should refuse, for a secret credential.
    secret: Option<String>,
    _dir: TempDir,
}

fn client_secret() -> Setup {
    let secret = format!("cs-{}", uuid::Uuid::new_v4().simple());
    Setup {
        env: vec![("AZURE_CLIENT_SECRET", secret.clone())],
        forbidden: vec![secret.clone()],
        secret: Some(secret),
        _dir: TempDir::new(),
    }
}

fn client_secret_file() -> Setup {
    let secret = format!("csf-{}", uuid::Uuid::new_v4().simple());
    let dir = TempDir::new();
    let path = dir.write("client-secret", format!("{secret}\n"));
    Setup {
        env: vec![("AZURE_CLIENT_SECRET_FILE", path.display().to_string())],
        forbidden: vec![secret.clone()],
        secret: Some(secret),
        _dir: dir,
    }
}

fn certificate() -> Setup {
    let key = rsa::PrivateKey::generate();
    let key_pem = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let pair = rcgen::KeyPair::from_pem(&key_pem).expect("rcgen takes the RSA key");
    let cert = rcgen::CertificateParams::new(vec!["gateway-secrets-test".to_owned()])
        .expect("params")
        .self_signed(&pair)
        .expect("self-signed");
    let dir = TempDir::new();
    let path = dir.write("client.pem", format!("{}{}", key_pem.as_str(), cert.pem()));
    // Every line of the key's base64, so that no part of it may show.
    let forbidden = key_pem
        .lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_owned)
        .collect();
    Setup {
        env: vec![("AZURE_CLIENT_CERTIFICATE_PATH", path.display().to_string())],
        forbidden,
        secret: None,
        _dir: dir,
    }
}

fn federated_token() -> Setup {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "aud": "api://AzureADTokenExchange",
        "iss": "https://oidc.example/issuer",
        "sub": "system:serviceaccount:intune:gateway",
        "nbf": now - 10,
        "exp": now + 3600,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let jwt = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
    );
    let dir = TempDir::new();
    let path = dir.write("token", &jwt);
    let signature = jwt.rsplit('.').next().expect("three parts").to_owned();
    Setup {
        env: vec![("AZURE_FEDERATED_TOKEN_FILE", path.display().to_string())],
        forbidden: vec![jwt, signature],
        secret: None,
        _dir: dir,
    }
}

/// The emulator, requiring tokens it issued.
async fn emulator() -> RunningEmulator {
    Emulator::with_options(EmulatorOptions::default().with_require_auth(true))
        .spawn(common::loopback())
        .await
        .expect("emulator")
}

/// Starts the binary against `em` with every log line on, and connects.
async fn start(em: &RunningEmulator, setup: &Setup) -> (Running, common::Client) {
    let base_url = em.base_url.clone();
    let authority = format!("http://{}", em.addr);
    let args = [
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--graph-base-url",
        &base_url,
        "--authority-host",
        &authority,
        "--graph-max-retries",
        "0",
        "--plaintext",
        "--allow-unauthenticated",
        "--log-format",
        "json",
        "--log",
        "debug",
    ];
    let mut env = vec![
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("AZURE_CLIENT_ID", CLIENT.to_owned()),
    ];
    env.extend(setup.env.iter().cloned());
    let running = Running::spawn_capturing_stdout(&args, &env);
    // The emulator serves on this runtime's other worker meanwhile.
    let line = tokio::task::block_in_place(|| {
        running.wait_for_line("graph-grpc-gateway serving", PATIENCE)
    });
    let json: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    let addr = json["grpc_addr"]
        .as_str()
        .expect("grpc_addr logged")
        .parse()
        .expect("an address");
    (running, common::connect(addr).await)
}

/// Everything the gRPC answers showed: messages, metadata and details.
#[derive(Default)]
struct Answers {
    text: String,
    codes: Vec<Code>,
}

impl Answers {
    fn record<T>(&mut self, result: &Result<tonic::Response<T>, Status>) {
        match result {
            Ok(response) => self.text += &format!("OK {:?}\n", response.metadata()),
            Err(status) => {
                self.codes.push(status.code());
                self.text += &format!(
                    "{:?} {} {:?} {:?} {}\n",
                    status.code(),
                    status.message(),
                    status.metadata(),
                    status.get_error_details(),
                    String::from_utf8_lossy(status.details())
                );
            }
        }
    }
}

fn get_request(
    id: &str,
    timeout: Option<Duration>,
) -> Request<GetSecurityConfigurationTaskRequest> {
    let mut request = Request::new(common::get(id));
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Gets the example task until `done` holds for the answer's code, failing
/// after [`PATIENCE`]. Polls: the token cache pauses after a failure.
async fn get_until(
    client: &mut common::Client,
    answers: &mut Answers,
    done: impl Fn(Code) -> bool,
    timeout: Option<Duration>,
) -> Code {
    let deadline = Instant::now() + PATIENCE;
    let mut every = tokio::time::interval(Duration::from_millis(50));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let result = client
            .get_security_configuration_task(get_request(seed::EXAMPLE_TASK_ID, timeout))
            .await;
        answers.record(&result);
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        if done(code) {
            return code;
        }
        assert!(
            Instant::now() < deadline,
            "still {code:?}: {}",
            answers.text
        );
    }
}

/// Drives one credential kind through every failure, then checks all the
/// process wrote and all the answers it gave.
async fn provoke_everything(setup: Setup) {
    let em = emulator().await;
    let (running, mut client) = start(&em, &setup).await;
    let mut answers = Answers::default();
    let ok = |c: Code| c == Code::Ok;

    // A token, used.
    get_until(&mut client, &mut answers, ok, None).await;

    // Graph refuses: 401 twice (the token is replaced once, then given up
    // on), 403, 500, a broken connection, a body cut short.
    for (faults, refused) in [
        (vec![fault(401), fault(401)], true),
        (vec![fault(403)], true),
        (vec![fault(500)], true),
        (vec![Fault::drop_connection()], true),
        // A GET whose answer broke off may be read again.
        (vec![Fault::truncated()], false),
    ] {
        em.emulator.push_faults(faults);
        let result = client
            .get_security_configuration_task(get_request(seed::EXAMPLE_TASK_ID, None))
            .await;
        answers.record(&result);
        assert!(!refused || result.is_err(), "{}", answers.text);
    }
    assert_eq!(em.emulator.pending_faults(), 0, "every Graph fault served");

    // Invalid requests, refused before Graph.
    let bad_list = ListSecurityConfigurationTasksRequest {
        page_size: -1,
        page_token: "forged".into(),
        filter: "startswith(displayName,'x')".into(),
    };
    answers.record(&client.list_security_configuration_tasks(bad_list).await);
    let bad_update = UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: "../x".into(),
            managed_device_count: Some(-5),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["bogus".into(), "status".into()],
        }),
        ..Default::default()
    };
    answers.record(&client.update_security_configuration_task(bad_update).await);
    let mut bad_metadata = get_request(seed::EXAMPLE_TASK_ID, None);
    bad_metadata
        .metadata_mut()
        .insert("client-request-id", "not valid!".parse().expect("ascii"));
    answers.record(&client.get_security_configuration_task(bad_metadata).await);

    // The token endpoint fails: 500, then a broken connection, then a slow
    // answer past the caller's deadline; each time Graph has first revoked
    // the token the gateway holds, so it must get a new one.
    let token_failures = [
        (ScriptedFault::from(Fault::new(500)), None),
        (ScriptedFault::from(Fault::drop_connection()), None),
        (
            Fault::new(503).delayed(Duration::from_secs(2)),
            Some(Duration::from_millis(500)),
        ),
    ];
    for (token_fault, timeout) in token_failures {
        em.emulator.expire_tokens();
        em.emulator.push_token_faults([token_fault]);
        get_until(&mut client, &mut answers, |c| c != Code::Ok, timeout).await;
        get_until(&mut client, &mut answers, ok, None).await;
    }

    // Entra ID refuses the credential (AADSTS7000215).
    em.emulator.expire_tokens();
    match &setup.secret {
        Some(secret) => em.emulator.set_options(
            em.emulator
                .options()
                .with_rejected_client_secret(secret.clone()),
        ),
        None => em.emulator.push_token_faults([Fault {
            status: 401,
            code: Some("invalid_client".into()),
            message: Some("AADSTS7000215: Invalid client secret provided.".into()),
            retry_after: None,
            body: FaultBody::GraphError,
        }]),
    }
    get_until(
        &mut client,
        &mut answers,
        |c| c == Code::Unauthenticated,
        None,
    )
    .await;
    assert!(answers.text.contains("AADSTS7000215"), "{}", answers.text);

    let transcript = tokio::task::block_in_place(|| running.finish(PATIENCE));
    assert!(
        transcript.contains("obtained an access token")
            && transcript.contains("\"level\":\"DEBUG\""),
        "debug logs captured: {transcript}"
    );

    // What must not show: the credential, and every token the emulator
    // issued (as the gateway sent them to Graph).
    let tokens = em.emulator.token_requests();
    assert!(
        tokens.iter().filter(|t| t.issued).count() >= 5,
        "{tokens:?}"
    );
    let mut forbidden = setup.forbidden.clone();
    forbidden.extend(em.emulator.issued_tokens());
    assert!(forbidden.len() > setup.forbidden.len(), "tokens were sent");
    assert_no_secrets(&transcript, &forbidden);
    assert_no_secrets(&answers.text, &forbidden);
    em.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_never_shows() {
    provoke_everything(client_secret()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_file_never_shows() {
    provoke_everything(client_secret_file()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_key_and_assertions_never_show() {
    provoke_everything(certificate()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_token_never_shows() {
    provoke_everything(federated_token()).await;
}
