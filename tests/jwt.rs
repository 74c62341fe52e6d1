//! Bearer-JWT verification against an issuer's JWKS: keys made here, tokens
//! signed with `jsonwebtoken::encode`, and the key set served over loopback
//! by a real axum server that counts its requests.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use graph_grpc_gateway::security::jwt::{
    JwtError, JwtSettings, JwtVerifier, VerifiedToken, MAX_JWKS_BYTES, MAX_TOKEN_BYTES,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::Generate;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

const ISSUER: &str = "https://login.example.test/tenant-1/v2.0";
const AUDIENCE: &str = "api://graph-grpc-gateway";

// ---- keys and tokens ----------------------------------------------------

/// A signing key as the issuer holds it: the private half to sign with, the
/// public half as a JWK.
struct TestKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn rsa_private(slot: usize) -> &'static rsa::PrivateKey {
    static KEYS: [OnceLock<rsa::PrivateKey>; 2] = [OnceLock::new(), OnceLock::new()];
    KEYS[slot].get_or_init(rsa::PrivateKey::generate)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// RSA key `slot` (0 or 1) published as `kid`, with no `alg` (as Entra ID
/// publishes its keys).
fn rsa_key(slot: usize, kid: &str) -> TestKey {
    let private = rsa_private(slot);
    let public = private.to_public_key();
    let der = private.to_pkcs1_der().expect("PKCS#1 DER");
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::RS256,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "n": b64(&public.n_bytes()),
            "e": b64(&public.e_bytes()),
        }),
    }
}

/// A fresh P-256 key published as `kid`.
fn ec_key(kid: &str) -> TestKey {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("P-256 pair");
    let point = pair.public_key().as_ref();
    assert_eq!(point.len(), 65, "uncompressed point");
    TestKey {
        kid: kid.to_owned(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC",
            "use": "sig",
            "crv": "P-256",
            "kid": kid,
            "x": b64(&point[1..33]),
            "y": b64(&point[33..]),
        }),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Claims that pass: this issuer, this audience, valid for ten minutes.
fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-reporting",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
    })
}

/// `claims()` with `changes` applied (`null` removes a claim).
fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (name, value) in changes.as_object().expect("object") {
        if value.is_null() {
            c.as_object_mut().unwrap().remove(name);
        } else {
            c[name] = value.clone();
        }
    }
    c
}

fn sign_as(key: &TestKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key.encoding).expect("signed")
}

fn sign(key: &TestKey, claims: &Value) -> String {
    sign_as(key, key.alg, Some(&key.kid), claims)
}

/// A token assembled by hand: any header, any claims, any signature.
fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

// ---- the issuer ---------------------------------------------------------

/// The issuer's JWKS endpoint, which the test can swap, fail, hold and count.
struct IssuerState {
    jwks: Mutex<Value>,
    /// Requests to `/keys`.
    requests: AtomicUsize,
    failing: AtomicBool,
    /// While set, `/keys` answers only once `gate` is opened.
    held: AtomicBool,
    gate: watch::Sender<bool>,
}

struct Issuer {
    state: Arc<IssuerState>,
    addr: SocketAddr,
}

impl Issuer {
    async fn start(keys: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, keys)
    }

    fn start_on(listener: TcpListener, keys: Value) -> Self {
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(IssuerState {
            jwks: Mutex::new(keys),
            requests: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            held: AtomicBool::new(false),
            gate: watch::Sender::new(false),
        });
        let app = Router::new()
            .route("/keys", get(serve_keys))
            .route("/not-json", get(|| async { "<html>keys moved</html>" }))
            .route(
                "/error",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route("/huge", get(|| async { Json(huge_jwks()) }))
            .route("/huge-streamed", get(huge_streamed))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { state, addr }
    }

    fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://{}{path}", self.addr)).expect("url")
    }

    fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    fn publish(&self, keys: Value) {
        *self.state.jwks.lock().unwrap() = keys;
    }

    fn verifier(&self, path: &str, refresh: Duration) -> JwtVerifier {
        let mut settings = JwtSettings::new(ISSUER, vec![AUDIENCE.to_owned()], self.url(path));
        settings.refresh = refresh;
        JwtVerifier::new(settings, reqwest::Client::new())
    }
}

async fn serve_keys(State(state): State<Arc<IssuerState>>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.held.load(Ordering::SeqCst) {
        let mut open = state.gate.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
    if state.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    let keys = state.jwks.lock().unwrap().clone();
    Json(keys).into_response()
}

/// Valid JSON, larger than the cap.
fn huge_jwks() -> Value {
    json!({ "keys": [], "padding": "x".repeat(MAX_JWKS_BYTES) })
}

/// The same without a length, in chunks.
async fn huge_streamed() -> Response {
    let body = huge_jwks().to_string().into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
    Response::new(Body::from_stream(tokio_stream::iter(chunks)))
}

// ---- helpers ------------------------------------------------------------

/// Polls `probe` until it yields a value, failing after 15 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The refusal, checked never to show the token.
async fn refusal(verifier: &JwtVerifier, token: &str) -> JwtError {
    let e = verifier
        .verify(token)
        .await
        .expect_err("the token must be refused");
    let (shown, debug) = (e.to_string(), format!("{e:?}"));
    if token.len() >= 8 {
        assert!(!shown.contains(token) && !debug.contains(token), "{shown}");
        for part in token.split('.').filter(|p| p.len() >= 8) {
            assert!(!shown.contains(part) && !debug.contains(part), "{shown}");
        }
    }
    e
}

fn accepted(result: Result<VerifiedToken, JwtError>) -> VerifiedToken {
    match result {
        Ok(token) => token,
        Err(e) => panic!("refused: {} ({e})", e.reason()),
    }
}

// ---- tests --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_name_their_caller() {
    let rsa = rsa_key(0, "rsa-a");
    let ec = ec_key("ec-1");
    let issuer = Issuer::start(jwks(&[&rsa, &ec])).await;
    let verifier = issuer.verifier("/keys", Duration::from_secs(3600));
    assert!(!verifier.has_keys());
    verifier.warm_up().await.expect("keys fetched");
    assert!(verifier.has_keys());

    let c = claims();
    let ok = accepted(verifier.verify(&sign(&rsa, &c)).await);
    assert_eq!(ok.subject, "svc-reporting");
    assert_eq!(ok.issuer, ISSUER);
    let exp = c["exp"].as_u64().unwrap();
    assert_eq!(ok.expires_at, UNIX_EPOCH + Duration::from_secs(exp));

    // The RSA key has no alg: every RS* and PS* is its to verify.
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS512,
    ] {
        let token = sign_as(&rsa, alg, Some("rsa-a"), &c);
        assert_eq!(
            accepted(verifier.verify(&token).await).subject,
            "svc-reporting"
        );
    }
    assert_eq!(
        accepted(verifier.verify(&sign(&ec, &c)).await).subject,
        "svc-reporting"
    );

    // aud as an array naming us among others; exp just past, within the leeway.
    let array_aud = claims_with(json!({"aud": ["api://someone-else", AUDIENCE]}));
    accepted(verifier.verify(&sign(&rsa, &array_aud)).await);
    let just_expired = claims_with(json!({"exp": now() - 30}));
    accepted(verifier.verify(&sign(&rsa, &just_expired)).await);
    // Without a kid, the one key that fits the algorithm is used.
    accepted(
        verifier
            .verify(&sign_as(&rsa, Algorithm::RS256, None, &c))
            .await,
    );
    accepted(
        verifier
            .verify(&sign_as(&ec, Algorithm::ES256, None, &c))
            .await,
    );

    // Another subject claim names the caller, as Entra ID's app tokens do.
    let mut settings = verifier.settings().clone();
    settings.subject_claim = "azp".to_owned();
    let by_azp = JwtVerifier::new(settings, reqwest::Client::new());
    let app = claims_with(json!({"azp": "0b5e8d6c-client-app"}));
    assert_eq!(
        accepted(by_azp.verify(&sign(&rsa, &app)).await).subject,
        "0b5e8d6c-client-app"
    );
    let e = refusal(&by_azp, &sign(&rsa, &c)).await;
    assert_eq!(e.reason(), "TOKEN_MISSING_SUBJECT");
    assert!(e.to_string().contains("\"azp\""), "{e}");

    assert_eq!(issuer.requests(), 2, "one fetch per verifier, then cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_has_its_reason() {
    let rsa = rsa_key(0, "rsa-a");
    let ec = ec_key("ec-1");
    let issuer = Issuer::start(jwks(&[&rsa, &ec])).await;
    let verifier = issuer.verifier("/keys", Duration::from_secs(3600));
    verifier.warm_up().await.expect("keys fetched");

    let good = sign(&rsa, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    // Claims changed after signing.
    let forged_claims = claims_with(json!({"sub": "admin"}));
    let tampered_claims = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged_claims.to_string().as_bytes()),
        parts[2]
    );
    // One signature byte changed (well inside, so the base64 stays canonical).
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[100] ^= 0x01;
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    // Signed by a key the issuer does not hold, under the issuer's kid.
    let impostor = rsa_key(1, "rsa-a");
    // alg none.
    let none = raw_token(
        &json!({"alg": "none", "typ": "JWT", "kid": "rsa-a"}),
        &claims(),
        "",
    );
    // HS256 "signed" with the issuer's public key, in the forms an attacker
    // might guess a verifier would use as the HMAC secret.
    let public = rsa_private(0).to_public_key();
    let secrets: Vec<Vec<u8>> = vec![
        public
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
            .into_bytes(),
        public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
        rsa.jwk.to_string().into_bytes(),
        public.n_bytes().to_vec(),
    ];
    let hs256: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some("rsa-a".to_owned());
            encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap()
        })
        .collect();
    let oversize = sign(
        &rsa,
        &claims_with(json!({"pad": "p".repeat(MAX_TOKEN_BYTES)})),
    );
    assert!(oversize.len() > MAX_TOKEN_BYTES);

    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            sign(&rsa, &claims_with(json!({"exp": now() - 120}))),
            "TOKEN_EXPIRED",
        ),
        (
            "not yet valid",
            sign(&rsa, &claims_with(json!({"nbf": now() + 600}))),
            "TOKEN_NOT_YET_VALID",
        ),
        (
            "no exp",
            sign(&rsa, &claims_with(json!({"exp": null}))),
            "TOKEN_MISSING_EXPIRY",
        ),
        (
            "exp not a number",
            sign(&rsa, &claims_with(json!({"exp": "tomorrow"}))),
            "TOKEN_MISSING_EXPIRY",
        ),
        (
            "wrong issuer",
            sign(
                &rsa,
                &claims_with(json!({"iss": "https://evil.example.test/"})),
            ),
            "TOKEN_WRONG_ISSUER",
        ),
        (
            "issuer not exact",
            sign(&rsa, &claims_with(json!({"iss": format!("{ISSUER}/")}))),
            "TOKEN_WRONG_ISSUER",
        ),
        (
            "issuer as an array",
            sign(&rsa, &claims_with(json!({"iss": [ISSUER]}))),
            "TOKEN_WRONG_ISSUER",
        ),
        (
            "no issuer",
            sign(&rsa, &claims_with(json!({"iss": null}))),
            "TOKEN_WRONG_ISSUER",
        ),
        (
            "wrong audience",
            sign(&rsa, &claims_with(json!({"aud": "api://other"}))),
            "TOKEN_WRONG_AUDIENCE",
        ),
        (
            "audiences without ours",
            sign(&rsa, &claims_with(json!({"aud": ["api://a", "api://b"]}))),
            "TOKEN_WRONG_AUDIENCE",
        ),
        (
            "no audience",
            sign(&rsa, &claims_with(json!({"aud": null}))),
            "TOKEN_WRONG_AUDIENCE",
        ),
        ("tampered claims", tampered_claims, "TOKEN_BAD_SIGNATURE"),
        (
            "tampered signature",
            tampered_signature,
            "TOKEN_BAD_SIGNATURE",
        ),
        (
            "no signature",
            format!("{}.{}.", parts[0], parts[1]),
            "TOKEN_BAD_SIGNATURE",
        ),
        (
            "impostor key",
            sign(&impostor, &claims()),
            "TOKEN_BAD_SIGNATURE",
        ),
        (
            "unknown kid",
            sign_as(&rsa, Algorithm::RS256, Some("rsa-unknown"), &claims()),
            "TOKEN_UNKNOWN_KEY",
        ),
        ("alg none", none, "TOKEN_ALGORITHM_REFUSED"),
        (
            "ES256 under an RSA kid",
            sign_as(&ec, Algorithm::ES256, Some("rsa-a"), &claims()),
            "TOKEN_ALGORITHM_REFUSED",
        ),
        (
            "RS256 under an EC kid",
            sign_as(&rsa, Algorithm::RS256, Some("ec-1"), &claims()),
            "TOKEN_ALGORITHM_REFUSED",
        ),
        (
            "no subject",
            sign(&rsa, &claims_with(json!({"sub": null}))),
            "TOKEN_MISSING_SUBJECT",
        ),
        (
            "empty subject",
            sign(&rsa, &claims_with(json!({"sub": ""}))),
            "TOKEN_MISSING_SUBJECT",
        ),
        (
            "subject not a string",
            sign(&rsa, &claims_with(json!({"sub": 42}))),
            "TOKEN_MISSING_SUBJECT",
        ),
        (
            "nbf not a number",
            sign(&rsa, &claims_with(json!({"nbf": "now"}))),
            "TOKEN_MALFORMED",
        ),
        ("oversize", oversize, "TOKEN_TOO_LARGE"),
        ("garbage", "not-a-jwt".to_owned(), "TOKEN_MALFORMED"),
        ("empty", String::new(), "TOKEN_MALFORMED"),
        (
            "three junk parts",
            "abc.def.ghi".to_owned(),
            "TOKEN_MALFORMED",
        ),
        (
            "with the scheme",
            format!("Bearer {good}"),
            "TOKEN_MALFORMED",
        ),
        (
            "claims not an object",
            sign(&rsa, &json!(["not", "an", "object"])),
            "TOKEN_MALFORMED",
        ),
    ];
    for (i, token) in hs256.into_iter().enumerate() {
        cases.push((
            [
                "HS256 with PEM",
                "HS256 with DER",
                "HS256 with JWK",
                "HS256 with n",
            ][i],
            token,
            "TOKEN_ALGORITHM_REFUSED",
        ));
    }

    let mut reasons = BTreeSet::new();
    for (what, token, want) in &cases {
        let e = refusal(&verifier, token).await;
        assert_eq!(e.reason(), *want, "{what}: {e}");
        assert!(!e.is_unavailable(), "{what}");
        reasons.insert(e.reason());
    }
    assert_eq!(reasons.len(), 11, "{reasons:?}");
    // The token that all the above were made from passes.
    assert_eq!(
        accepted(verifier.verify(&good).await).subject,
        "svc-reporting"
    );
    // The warm-up, and one fetch for the unknown kid; nothing else asked the issuer.
    assert_eq!(issuer.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_needs_one_fetch_for_a_hundred_callers() {
    let old = rsa_key(0, "2024-key");
    let new = rsa_key(1, "2025-key");
    let issuer = Issuer::start(jwks(&[&old])).await;
    let verifier = issuer.verifier("/keys", Duration::from_secs(3600));
    verifier.warm_up().await.expect("keys fetched");
    let old_token = sign(&old, &claims());
    accepted(verifier.verify(&old_token).await);
    assert_eq!(issuer.requests(), 1);

    // The issuer rotates: the old key goes, the new one comes. The fetch it
    // causes is held open until all 100 callers are in.
    issuer.publish(jwks(&[&new]));
    issuer.state.held.store(true, Ordering::SeqCst);
    let new_token = Arc::new(sign(&new, &claims()));
    let entered = Arc::new(AtomicUsize::new(0));
    let mut callers = JoinSet::new();
    for _ in 0..100 {
        let (verifier, token, entered) = (
            verifier.clone(),
            Arc::clone(&new_token),
            Arc::clone(&entered),
        );
        callers.spawn(async move {
            entered.fetch_add(1, Ordering::SeqCst);
            verifier.verify(&token).await
        });
    }
    eventually("all callers in and the fetch at the issuer", || {
        let ready = entered.load(Ordering::SeqCst) == 100 && issuer.requests() == 2;
        async move { ready.then_some(()) }
    })
    .await;
    issuer.state.gate.send_replace(true);
    while let Some(outcome) = callers.join_next().await {
        assert_eq!(accepted(outcome.expect("caller")).subject, "svc-reporting");
    }
    assert_eq!(issuer.requests(), 2, "one fetch for 100 callers");

    // The old key is gone; made-up kids get no fetch of their own (one
    // forced fetch per 30 s, and it was just spent).
    let e = refusal(&verifier, &old_token).await;
    assert_eq!(e.reason(), "TOKEN_UNKNOWN_KEY");
    assert!(e.to_string().contains("2024-key"), "{e}");
    let mut callers = JoinSet::new();
    for i in 0..100 {
        let verifier = verifier.clone();
        let token = sign_as(
            &new,
            Algorithm::RS256,
            Some(&format!("made-up-{i}")),
            &claims(),
        );
        callers.spawn(async move { verifier.verify(&token).await });
    }
    while let Some(outcome) = callers.join_next().await {
        let e = outcome.expect("caller").expect_err("unknown kid");
        assert_eq!(e.reason(), "TOKEN_UNKNOWN_KEY");
    }
    assert_eq!(
        issuer.requests(),
        2,
        "made-up kids cannot hammer the issuer"
    );
    accepted(verifier.verify(&new_token).await);

    // A cold verifier and 100 callers with a kid nobody publishes: one fetch
    // to load the keys, one for the unknown kid.
    let cold = issuer.verifier("/keys", Duration::from_secs(3600));
    let mut callers = JoinSet::new();
    for _ in 0..100 {
        let cold = cold.clone();
        let token = sign_as(&new, Algorithm::RS256, Some("never-published"), &claims());
        callers.spawn(async move { cold.verify(&token).await });
    }
    while let Some(outcome) = callers.join_next().await {
        let e = outcome.expect("caller").expect_err("unknown kid");
        assert_eq!(e.reason(), "TOKEN_UNKNOWN_KEY");
    }
    assert_eq!(issuer.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_refresh_on_schedule_and_survive_failed_refreshes() {
    let old = rsa_key(0, "old");
    let new = rsa_key(1, "new");
    let issuer = Issuer::start(jwks(&[&old])).await;
    let verifier = issuer.verifier("/keys", Duration::from_millis(200));
    verifier.warm_up().await.expect("keys fetched");
    let old_token = sign(&old, &claims());
    let new_token = sign(&new, &claims());
    // Spend the forced fetch, so only the schedule can bring new keys.
    let e = refusal(&verifier, &new_token).await;
    assert_eq!(e.reason(), "TOKEN_UNKNOWN_KEY");
    let after_forced = issuer.requests();
    assert_eq!(after_forced, 2);

    // The issuer fails: refreshes keep being tried, and the keys held keep working.
    issuer.state.failing.store(true, Ordering::SeqCst);
    eventually("two failed refreshes", || {
        let verifier = verifier.clone();
        let token = old_token.clone();
        let requests = issuer.requests();
        async move {
            accepted(verifier.verify(&token).await);
            (requests >= after_forced + 2).then_some(())
        }
    })
    .await;
    accepted(verifier.verify(&old_token).await);

    // The issuer is back, rotated: a scheduled refresh brings the new key in
    // and the old one out.
    issuer.publish(jwks(&[&new]));
    issuer.state.failing.store(false, Ordering::SeqCst);
    eventually("the new key through a scheduled refresh", || {
        let verifier = verifier.clone();
        let token = new_token.clone();
        async move {
            match verifier.verify(&token).await {
                Ok(ok) => Some(ok),
                Err(e) => {
                    // Unknown until the refresh; unavailable if the wait
                    // was for a refresh that met the issuer still failing.
                    assert!(
                        ["TOKEN_UNKNOWN_KEY", "JWKS_UNAVAILABLE"].contains(&e.reason()),
                        "{e}"
                    );
                    None
                }
            }
        }
    })
    .await;
    let e = refusal(&verifier, &old_token).await;
    assert_eq!(e.reason(), "TOKEN_UNKNOWN_KEY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_at_start_then_up() {
    let key = rsa_key(0, "rsa-a");
    // A port with nobody listening (yet).
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let settings = JwtSettings::new(
        ISSUER,
        vec![AUDIENCE.to_owned()],
        url::Url::parse(&format!("http://{addr}/keys")).unwrap(),
    );
    let verifier = JwtVerifier::new(settings, reqwest::Client::new());
    let token = sign(&key, &claims());

    let e = verifier.warm_up().await.expect_err("nobody is listening");
    assert_eq!(e.reason(), "JWKS_UNAVAILABLE");
    assert!(e.is_unavailable());
    assert!(e.to_string().contains("connection failed"), "{e}");
    assert!(!verifier.has_keys());
    let e = refusal(&verifier, &token).await;
    assert_eq!(e.reason(), "JWKS_UNAVAILABLE");
    // What needs no key is refused all the same.
    let none = raw_token(&json!({"alg": "none"}), &claims(), "");
    assert_eq!(
        refusal(&verifier, &none).await.reason(),
        "TOKEN_ALGORITHM_REFUSED"
    );

    let listener = TcpListener::bind(addr).await.expect("the same port again");
    let issuer = Issuer::start_on(listener, jwks(&[&key]));
    let ok = eventually("the issuer's keys", || {
        let verifier = verifier.clone();
        let token = token.clone();
        async move {
            match verifier.verify(&token).await {
                Ok(ok) => Some(ok),
                Err(e) => {
                    assert_eq!(e.reason(), "JWKS_UNAVAILABLE", "{e}");
                    None
                }
            }
        }
    })
    .await;
    assert_eq!(ok.subject, "svc-reporting");
    assert!(verifier.has_keys());
    assert_eq!(issuer.requests(), 1);
    verifier.warm_up().await.expect("held");
    assert_eq!(issuer.requests(), 1, "warm_up fetches only without keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_key_sets_are_unavailable() {
    let key = rsa_key(0, "rsa-a");
    let issuer = Issuer::start(jwks(&[&key])).await;
    let token = sign(&key, &claims());
    for (path, says) in [
        ("/not-json", "not a JSON key set"),
        ("/error", "HTTP 500"),
        ("/huge", "larger than 262144 bytes"),
        ("/huge-streamed", "larger than 262144 bytes"),
        ("/missing", "HTTP 404"),
    ] {
        let verifier = issuer.verifier(path, Duration::from_secs(3600));
        let e = verifier.warm_up().await.expect_err(path);
        assert_eq!(e.reason(), "JWKS_UNAVAILABLE", "{path}");
        assert!(e.to_string().contains(says), "{path}: {e}");
        let e = refusal(&verifier, &token).await;
        assert_eq!(e.reason(), "JWKS_UNAVAILABLE", "{path}");
        assert!(e.to_string().contains(says), "{path}: {e}");
    }

    // Encryption and symmetric keys are never used to verify.
    let mut enc = key.jwk.clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("rsa-enc");
    let hmac_secret = b"a shared secret that must never verify anything";
    let oct = json!({"kty": "oct", "kid": "hmac", "k": b64(hmac_secret)});
    issuer.publish(json!({"keys": [key.jwk.clone(), enc, oct]}));
    let verifier = issuer.verifier("/keys", Duration::from_secs(3600));
    verifier.warm_up().await.expect("the signing key is usable");
    let under_enc = sign_as(&key, Algorithm::RS256, Some("rsa-enc"), &claims());
    assert_eq!(
        refusal(&verifier, &under_enc).await.reason(),
        "TOKEN_UNKNOWN_KEY"
    );
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".to_owned());
    let hs = encode(&header, &claims(), &EncodingKey::from_secret(hmac_secret)).unwrap();
    assert_eq!(
        refusal(&verifier, &hs).await.reason(),
        "TOKEN_ALGORITHM_REFUSED"
    );
    accepted(verifier.verify(&token).await);

    // Only the signing key left standing is no key at all.
    issuer.publish(json!({"keys": [{"kty": "oct", "kid": "hmac", "k": b64(hmac_secret)}]}));
    let verifier = issuer.verifier("/keys", Duration::from_secs(3600));
    let e = verifier.warm_up().await.expect_err("no usable key");
    assert!(e.to_string().contains("no usable signing key"), "{e}");
}

#[test]
fn settings_refuse_plain_http_to_other_hosts() {
    let mut settings = JwtSettings::new(
        ISSUER,
        vec![AUDIENCE.to_owned()],
        url::Url::parse("https://login.example.test/tenant-1/discovery/v2.0/keys").unwrap(),
    );
    assert_eq!(settings.validate(), Ok(()));
    settings.jwks_url = url::Url::parse("http://login.example.test/keys").unwrap();
    let problems = settings.validate().unwrap_err();
    assert!(problems[0].contains("https://"), "{problems:?}");
    settings.jwks_url = url::Url::parse("http://127.0.0.1:8080/keys").unwrap();
    assert_eq!(settings.validate(), Ok(()));
}
