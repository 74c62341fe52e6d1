//! Entra ID credentials and the token cache, against a fake token endpoint
//! on loopback and a clock the tests move by hand.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use graph_grpc_gateway::graph::auth::{
    Clock, Credential, CredentialKind, TokenCache, TokenError, TokenErrorKind, TokenHealth,
};
use graph_grpc_gateway::graph::GraphError;
use graph_grpc_gateway::secret::Secret;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::sha2::{Digest, Sha256};
use rsa::Generate;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Barrier, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

const TENANT: &str = "tenant-1";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const SCOPE: &str = "https://graph.microsoft.com/.default";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const TRACE: &str = "0a1b2c3d-0000-4000-8000-00000000aaaa";
const CORRELATION: &str = "5e6f7a8b-0000-4000-8000-00000000bbbb";

/// A hand-moved clock.
struct TestClock {
    base: Instant,
    offset_ms: AtomicU64,
}

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            offset_ms: AtomicU64::new(0),
        })
    }

    fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// A scripted answer; without one the endpoint hands out `access-token-{n}`.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
}

/// A stand-in for Entra ID's token endpoint.
#[derive(Clone)]
struct FakeEntra {
    url: String,
    requests: Arc<Mutex<Vec<Form>>>,
    count: Arc<AtomicUsize>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    expires_in: Arc<AtomicU64>,
    /// While set, requests wait for a permit of `release`.
    hold: Arc<AtomicBool>,
    release: Arc<Semaphore>,
    arrived: Arc<Mutex<Option<mpsc::UnboundedSender<usize>>>>,
}

type Form = HashMap<String, String>;

impl FakeEntra {
    async fn start() -> (Self, mpsc::UnboundedReceiver<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = FakeEntra {
            url,
            requests: Arc::default(),
            count: Arc::default(),
            script: Arc::default(),
            expires_in: Arc::new(AtomicU64::new(3600)),
            hold: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
            arrived: Arc::new(Mutex::new(Some(tx))),
        };
        let app = Router::new()
            .route(&format!("/{TENANT}/oauth2/v2.0/token"), post(token))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, rx)
    }

    fn then(&self, status: u16, body: impl Into<String>) {
        self.script.lock().expect("lock").push_back(Reply {
            status,
            body: body.into(),
        });
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    fn form(&self, n: usize) -> Form {
        self.requests.lock().expect("lock")[n - 1].clone()
    }

    fn token_url(&self) -> String {
        format!("{}/{TENANT}/oauth2/v2.0/token", self.url)
    }

    fn credential(&self, kind: CredentialKind) -> Credential {
        Credential {
            authority_host: self.url.parse().expect("url"),
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            scope: SCOPE.into(),
            kind,
        }
    }

    fn cache(&self, kind: CredentialKind, clock: &Arc<TestClock>) -> TokenCache {
        TokenCache::with_clock(reqwest::Client::new(), self.credential(kind), clock.clone())
    }
}

async fn token(
    State(fake): State<FakeEntra>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/x-www-form-urlencoded")
    );
    let form: Form = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    fake.requests.lock().expect("lock").push(form);
    let n = fake.count.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(tx) = fake.arrived.lock().expect("lock").as_ref() {
        let _ = tx.send(n);
    }
    if fake.hold.load(Ordering::SeqCst) {
        fake.release.acquire().await.expect("open").forget();
    }
    let scripted = fake.script.lock().expect("lock").pop_front();
    match scripted {
        Some(r) => (StatusCode::from_u16(r.status).expect("status"), r.body),
        None => (
            StatusCode::OK,
            json!({
                "token_type": "Bearer",
                "expires_in": fake.expires_in.load(Ordering::SeqCst),
                "ext_expires_in": 3599,
                "access_token": format!("access-token-{n}"),
            })
            .to_string(),
        ),
    }
}

fn bearer(n: usize) -> String {
    format!("Bearer access-token-{n}")
}

async fn header(cache: &TokenCache) -> String {
    let value = cache.authorization().await.expect("token");
    assert!(value.is_sensitive());
    value.to_str().expect("ascii").to_owned()
}

fn token_error(result: Result<http::HeaderValue, GraphError>) -> TokenError {
    match result {
        Err(GraphError::Token(e)) => e,
        Err(other) => panic!("not a token error: {other}"),
        Ok(_) => panic!("a token was handed out"),
    }
}

/// A guard against hanging: a test fails rather than waits forever.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("finished in time")
}

/// A fresh folder for credential files, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gw-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- client secret ------------------------------------------------------

#[tokio::test]
async fn client_secret_is_posted_as_a_form() {
    let (fake, _arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(
        CredentialKind::ClientSecret(Secret::new("s3cret-value")),
        &clock,
    );
    assert_eq!(header(&cache).await, bearer(1));
    let form = fake.form(1);
    let expected: Form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("scope", SCOPE),
        ("client_secret", "s3cret-value"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(form, expected);
    // Cached afterwards.
    assert_eq!(header(&cache).await, bearer(1));
    assert_eq!(fake.count(), 1);
}

#[tokio::test]
async fn client_secret_file_is_read_for_every_token_request() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let path = dir.write("client-secret", "first-secret\n");
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecretFile(path.clone()), &clock);
    assert_eq!(header(&cache).await, bearer(1));
    assert_eq!(fake.form(1)["client_secret"], "first-secret");
    assert!(!fake.form(1).contains_key("client_assertion"));

    // Kubernetes rotates the mounted secret; no restart.
    dir.write("client-secret", "second-secret");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(header(&cache).await, bearer(2));
    assert_eq!(fake.form(2)["client_secret"], "second-secret");

    // A file emptied by mistake is bad credentials, and says which setting.
    dir.write("client-secret", "\n");
    clock.advance(Duration::from_secs(3600));
    let e = token_error(cache.authorization().await);
    assert_eq!(e.kind(), TokenErrorKind::BadCredentials);
    assert!(
        e.to_string().contains("AZURE_CLIENT_SECRET_FILE") && e.to_string().contains("is empty"),
        "{e}"
    );
    assert_eq!(fake.count(), 2, "nothing sent without a secret");
}

// ---- certificate --------------------------------------------------------

fn test_key() -> &'static rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(rsa::PrivateKey::generate)
}

/// A self-signed certificate for the test key, named `name`.
fn certificate(name: &str) -> rcgen::Certificate {
    let pem = test_key().to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let pair = rcgen::KeyPair::from_pem(&pem).expect("rcgen takes the RSA key");
    rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&pair)
        .expect("self-signed")
}

/// A certificate for some other (ECDSA) key, e.g. a CA in the chain.
fn foreign_certificate(name: &str) -> rcgen::Certificate {
    let pair = rcgen::KeyPair::generate().expect("ECDSA key");
    rcgen::CertificateParams::new(vec![name.to_owned()])
        .expect("params")
        .self_signed(&pair)
        .expect("self-signed")
}

fn b64url_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

/// Checks a client assertion against the certificate and returns its claims.
fn verify_assertion(jwt: &str, cert_der: &[u8], audience: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "header.claims.signature");
    let header = b64url_json(parts[0]);
    let claims = b64url_json(parts[1]);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(
        header["x5t#S256"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der)),
        "SHA-256 thumbprint of the certificate"
    );
    assert_eq!(
        header["x5t"],
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            cert_der
        )),
        "SHA-1 thumbprint of the certificate"
    );
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    test_key()
        .to_public_key()
        .pkcs1v15_verify::<Sha256>(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("RS256 signature verifies with the certificate's key");

    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["iss"], CLIENT);
    assert_eq!(claims["sub"], CLIENT);
    uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).expect("jti is a UUID");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let iat = claims["iat"].as_u64().expect("iat");
    assert!(iat.abs_diff(now) <= 60, "iat {iat} is now ({now})");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 600));
    claims
}

#[tokio::test]
async fn certificate_makes_a_signed_client_assertion() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let cert = certificate("gateway-test");
    let key_pem = test_key().to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let path = dir.write("client.pem", format!("{}{}", key_pem.as_str(), cert.pem()));
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::Certificate(path), &clock);
    cache.warm_up().await.expect("token");

    let form = fake.form(1);
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], CLIENT);
    assert_eq!(form["scope"], SCOPE);
    assert_eq!(form["client_assertion_type"], JWT_BEARER);
    assert!(!form.contains_key("client_secret"));
    let first = verify_assertion(&form["client_assertion"], cert.der(), &fake.token_url());

    clock.advance(Duration::from_secs(3600));
    cache.warm_up().await.expect("token");
    let second = verify_assertion(
        &fake.form(2)["client_assertion"],
        cert.der(),
        &fake.token_url(),
    );
    assert_ne!(first["jti"], second["jti"], "a new assertion per request");
}

#[tokio::test]
async fn pkcs1_keys_chains_and_rotated_certificates_work() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let other = foreign_certificate("some-ca");
    let leaf = certificate("gateway-test");
    let key_pem = test_key().to_pkcs1_pem(LineEnding::LF).expect("pkcs1");
    assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    // Another certificate first: the one matching the key is the leaf.
    let path = dir.write(
        "client.pem",
        format!("{}{}{}", other.pem(), key_pem.as_str(), leaf.pem()),
    );
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::Certificate(path.clone()), &clock);
    assert_eq!(header(&cache).await, bearer(1));
    verify_assertion(
        &fake.form(1)["client_assertion"],
        leaf.der(),
        &fake.token_url(),
    );

    // cert-manager renews the certificate in place: the next request uses it.
    let renewed = certificate("gateway-test-renewed");
    dir.write(
        "client.pem",
        format!("{}{}", renewed.pem(), key_pem.as_str()),
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(header(&cache).await, bearer(2));
    verify_assertion(
        &fake.form(2)["client_assertion"],
        renewed.der(),
        &fake.token_url(),
    );
}

#[tokio::test]
async fn a_certificate_of_another_key_is_refused() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let foreign = foreign_certificate("x");
    let key_pem = test_key().to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let path = dir.write(
        "client.pem",
        format!("{}{}", key_pem.as_str(), foreign.pem()),
    );
    let credential = fake.credential(CredentialKind::Certificate(path));
    let why = credential.check().expect_err("mismatch");
    assert!(why.contains("matches its private key"), "{why}");
    assert!(!why.contains("PRIVATE KEY-----"), "{why}");
}

// ---- workload identity --------------------------------------------------

#[tokio::test]
async fn federated_token_file_is_read_fresh_for_every_request() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let path = dir.write("azure-identity-token", "eyJhbGciOiJSUzI1NiJ9.first.sig");
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::FederatedTokenFile(path), &clock);
    assert_eq!(header(&cache).await, bearer(1));
    let form = fake.form(1);
    assert_eq!(form["client_assertion_type"], JWT_BEARER);
    assert_eq!(form["client_assertion"], "eyJhbGciOiJSUzI1NiJ9.first.sig");
    assert_eq!(form["client_id"], CLIENT);
    assert_eq!(form["scope"], SCOPE);
    assert!(!form.contains_key("client_secret"));

    // The kubelet rotates the projected token.
    dir.write("azure-identity-token", "eyJhbGciOiJSUzI1NiJ9.second.sig\n");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(header(&cache).await, bearer(2));
    assert_eq!(
        fake.form(2)["client_assertion"],
        "eyJhbGciOiJSUzI1NiJ9.second.sig"
    );
}

// ---- single flight, refresh ahead, expiry -------------------------------

/// `n` concurrent `authorization()` calls, released together.
async fn concurrent_calls(cache: &TokenCache, n: usize) -> Vec<String> {
    let start = Arc::new(Barrier::new(n));
    let mut calls = JoinSet::new();
    for _ in 0..n {
        let cache = cache.clone();
        let start = start.clone();
        calls.spawn(async move {
            start.wait().await;
            header(&cache).await
        });
    }
    bounded(calls.join_all()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_calls_make_one_token_request() {
    let (fake, mut arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecret(Secret::new("s")), &clock);

    // Cold cache: the endpoint holds the one request until all callers are in.
    fake.hold.store(true, Ordering::SeqCst);
    let calls = {
        let cache = cache.clone();
        tokio::spawn(async move { concurrent_calls(&cache, 1000).await })
    };
    assert_eq!(bounded(arrived.recv()).await, Some(1));
    fake.release.add_permits(1);
    let headers = bounded(calls).await.expect("calls");
    assert_eq!(headers, vec![bearer(1); 1000]);
    assert_eq!(fake.count(), 1, "one request for a cold cache");

    // Expired: again exactly one.
    fake.hold.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        cache.health(),
        TokenHealth::Ready,
        "expired but not failing"
    );
    let headers = concurrent_calls(&cache, 1000).await;
    assert_eq!(headers, vec![bearer(2); 1000]);
    assert_eq!(fake.count(), 2, "one request for an expired cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_refresh_window_nobody_waits_for_the_refresh() {
    let (fake, mut arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecret(Secret::new("s")), &clock);
    cache.warm_up().await.expect("token");
    assert_eq!(arrived.recv().await, Some(1));

    // 3600 s token: fresh until 3300 s; at 3400 s it is due but valid.
    clock.advance(Duration::from_secs(3400));
    fake.hold.store(true, Ordering::SeqCst);
    // Every caller gets the old token at once while the refresh is held.
    let headers = concurrent_calls(&cache, 200).await;
    assert_eq!(headers, vec![bearer(1); 200]);
    assert_eq!(
        bounded(arrived.recv()).await,
        Some(2),
        "one refresh started"
    );
    assert_eq!(fake.count(), 2);
    assert_eq!(header(&cache).await, bearer(1));

    fake.release.add_permits(1);
    // warm_up joins the refresh in flight rather than starting another.
    bounded(cache.warm_up()).await.expect("refreshed");
    assert_eq!(header(&cache).await, bearer(2));
    assert_eq!(fake.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_expiry_callers_wait_for_the_one_request() {
    let (fake, mut arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecret(Secret::new("s")), &clock);
    cache.warm_up().await.expect("token");
    assert_eq!(arrived.recv().await, Some(1));

    clock.advance(Duration::from_secs(3600));
    fake.hold.store(true, Ordering::SeqCst);
    let calls = {
        let cache = cache.clone();
        tokio::spawn(async move { concurrent_calls(&cache, 50).await })
    };
    assert_eq!(bounded(arrived.recv()).await, Some(2));
    fake.release.add_permits(1);
    // Only the new token exists after the release: they all waited for it.
    let headers = bounded(calls).await.expect("calls");
    assert_eq!(headers, vec![bearer(2); 50]);
    assert_eq!(fake.count(), 2);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_old_token_until_it_expires() {
    let (fake, _arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecret(Secret::new("s")), &clock);
    cache.warm_up().await.expect("token");

    fake.then(503, "<html>Service Unavailable</html>");
    clock.advance(Duration::from_secs(3400));
    assert_eq!(
        header(&cache).await,
        bearer(1),
        "refresh started in the background"
    );
    let e = cache.warm_up().await.expect_err("the refresh failed");
    assert_eq!(e.kind(), TokenErrorKind::Transient);
    assert_eq!(e.status(), Some(503));

    // Still valid: used, and the cache stays ready.
    assert_eq!(header(&cache).await, bearer(1));
    assert_eq!(cache.health(), TokenHealth::Ready);
    assert_eq!(fake.count(), 2, "no new request right after a failure");

    // Expired with the last refresh failed: not ready until a token comes.
    clock.advance(Duration::from_secs(200));
    assert_eq!(
        cache.health(),
        TokenHealth::Failing {
            consecutive_failures: 1
        }
    );
    assert_eq!(header(&cache).await, bearer(3));
    assert_eq!(cache.health(), TokenHealth::Ready);
}

#[tokio::test]
async fn health_follows_obtained_failing_and_recovered_tokens() {
    let (fake, _arrived) = FakeEntra::start().await;
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::ClientSecret(Secret::new("s")), &clock);
    assert_eq!(cache.health(), TokenHealth::NotYetObtained);
    assert!(!cache.health().is_ready());

    let invalid_client = entra_error("invalid_client", 7000215, "Invalid client secret provided.");
    fake.then(401, invalid_client.clone());
    fake.then(401, invalid_client);
    let e = cache.warm_up().await.expect_err("bad secret");
    assert_eq!(e.kind(), TokenErrorKind::BadCredentials);
    assert_eq!(
        cache.health(),
        TokenHealth::Failing {
            consecutive_failures: 1
        }
    );
    // Right after a failure the same answer comes back without a request.
    let again = token_error(cache.authorization().await);
    assert_eq!(again, e);
    assert_eq!(fake.count(), 1);

    clock.advance(Duration::from_secs(1));
    token_error(cache.authorization().await);
    assert_eq!(fake.count(), 2);
    assert_eq!(
        cache.health(),
        TokenHealth::Failing {
            consecutive_failures: 2
        }
    );
    // The pause doubles: 1 s is not enough now, 2 s is.
    clock.advance(Duration::from_secs(1));
    token_error(cache.authorization().await);
    assert_eq!(fake.count(), 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!(header(&cache).await, bearer(3));
    assert_eq!(cache.health(), TokenHealth::Ready);
    assert!(cache.health().is_ready());
}

// ---- errors -------------------------------------------------------------

fn entra_error(error: &str, code: u32, description: &str) -> String {
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {TRACE} Correlation ID: {CORRELATION} Timestamp: 2024-05-01 10:00:00Z"),
        "error_codes": [code],
        "timestamp": "2024-05-01 10:00:00Z",
        "trace_id": TRACE,
        "correlation_id": CORRELATION,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
    .to_string()
}

#[tokio::test]
async fn entra_errors_are_classified_and_carry_their_ids() {
    let cases = [
        (
            401,
            entra_error("invalid_client", 7000215, "Invalid client secret provided."),
            TokenErrorKind::BadCredentials,
            Some(7000215),
        ),
        (
            400,
            entra_error(
                "unauthorized_client",
                700016,
                "Application with identifier 'x' was not found in the directory 'y'.",
            ),
            TokenErrorKind::BadCredentials,
            Some(700016),
        ),
        (
            400,
            entra_error(
                "unauthorized_client",
                7000112,
                "Application 'x' is disabled.",
            ),
            TokenErrorKind::BadCredentials,
            Some(7000112),
        ),
        (
            400,
            entra_error("invalid_request", 90002, "Tenant 'y' not found."),
            TokenErrorKind::BadCredentials,
            Some(90002),
        ),
        (
            400,
            entra_error(
                "invalid_grant",
                70021,
                "No matching federated identity record found for presented assertion.",
            ),
            TokenErrorKind::BadCredentials,
            Some(70021),
        ),
        (
            403,
            entra_error(
                "access_denied",
                50105,
                "The signed in user is not assigned to a role.",
            ),
            TokenErrorKind::Forbidden,
            Some(50105),
        ),
        (
            429,
            entra_error("temporarily_unavailable", 50196, "Client request loop."),
            TokenErrorKind::Transient,
            Some(50196),
        ),
        (
            500,
            entra_error("server_error", 50000, "There was an error issuing a token."),
            TokenErrorKind::Transient,
            Some(50000),
        ),
        (
            503,
            "<html>Service Unavailable</html>".to_owned(),
            TokenErrorKind::Transient,
            None,
        ),
    ];
    for (status, body, kind, code) in cases {
        let (fake, _arrived) = FakeEntra::start().await;
        fake.then(status, body);
        let clock = TestClock::new();
        let cache = fake.cache(
            CredentialKind::ClientSecret(Secret::new("never-shown-secret")),
            &clock,
        );
        let e = token_error(cache.authorization().await);
        assert_eq!(e.kind(), kind, "{status}");
        assert_eq!(e.status(), Some(status));
        assert_eq!(e.aadsts(), code);
        if code.is_some() {
            assert_eq!(e.correlation_id(), Some(CORRELATION));
            assert_eq!(e.trace_id(), Some(TRACE));
        }
        let shown = format!("{e} {e:?} {} {:?}", GraphError::Token(e.clone()), cache);
        assert!(!shown.contains("never-shown-secret"), "{shown}");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_transient() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let credential = Credential {
        authority_host: url.parse().expect("url"),
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        scope: SCOPE.into(),
        kind: CredentialKind::ClientSecret(Secret::new("s")),
    };
    let cache = TokenCache::new(reqwest::Client::new(), credential);
    let e = cache.warm_up().await.expect_err("nothing listens");
    assert_eq!(e.kind(), TokenErrorKind::Transient);
    assert_eq!(
        e.to_string(),
        "token endpoint unreachable: connection failed"
    );
    assert_eq!(
        cache.health(),
        TokenHealth::Failing {
            consecutive_failures: 1
        }
    );
}

#[tokio::test]
async fn a_missing_token_file_is_transient_and_named() {
    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let path = dir.0.join("not-yet-projected");
    let clock = TestClock::new();
    let cache = fake.cache(CredentialKind::FederatedTokenFile(path.clone()), &clock);
    let e = cache.warm_up().await.expect_err("no file");
    assert_eq!(e.kind(), TokenErrorKind::Transient);
    assert_eq!(
        e.to_string(),
        format!(
            "AZURE_FEDERATED_TOKEN_FILE {}: cannot be read (no such file)",
            path.display()
        )
    );
    assert_eq!(fake.count(), 0);
}

// ---- nothing secret shows ----------------------------------------------

/// Log lines written by the cache, captured.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_assertion_or_token_shows_in_errors_debug_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let (fake, _arrived) = FakeEntra::start().await;
    let dir = TempDir::new();
    let federated = dir.write("token", "federated-assertion-text");
    let key_pem = test_key().to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let cert = certificate("gateway-test");
    let pem = dir.write("client.pem", format!("{}{}", key_pem.as_str(), cert.pem()));
    let secret_file = dir.write("secret", "secret-from-file");
    let kinds = [
        CredentialKind::ClientSecret(Secret::new("plain-secret-value")),
        CredentialKind::ClientSecretFile(secret_file),
        CredentialKind::FederatedTokenFile(federated),
        CredentialKind::Certificate(pem),
    ];
    let mut shown = String::new();
    for kind in kinds {
        let clock = TestClock::new();
        let cache = fake.cache(kind, &clock);
        // A token, then a refused refresh.
        let token = cache.authorization().await.expect("token");
        shown += &format!("{token:?} {cache:?} {:?}", cache.credential());
        fake.then(
            401,
            entra_error("invalid_client", 7000215, "Invalid client secret provided."),
        );
        clock.advance(Duration::from_secs(3600));
        let e = token_error(cache.authorization().await);
        shown += &format!("{e} {e:?} {}", GraphError::Token(e.clone()));
    }
    let assertions: Vec<String> = fake
        .requests
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|f| f.get("client_assertion").cloned())
        .collect();
    assert_eq!(assertions.len(), 4, "federated and certificate, twice each");
    shown += &String::from_utf8_lossy(&logs.0.lock().expect("lock"));
    assert!(
        shown.contains("obtained an access token"),
        "logs captured: {shown}"
    );
    for secret in [
        "plain-secret-value",
        "secret-from-file",
        "federated-assertion-text",
        "access-token-",
        "PRIVATE KEY",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(assertions)
    {
        assert!(!shown.contains(&secret), "{secret} shown in: {shown}");
    }
}
