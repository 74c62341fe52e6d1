//! A token issuer for the tests: an ES256 key made in the test, its JWKS
//! served over HTTP on loopback, and tokens signed with it.

use axum::routing::get;
use axum::Json;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

pub const ISSUER: &str = "https://issuer.test/tenant/v2.0";
pub const AUDIENCE: &str = "api://graph-grpc-gateway";

pub struct Issuer {
    pub jwks_url: String,
    key: EncodingKey,
    kid: String,
    _server: tokio::task::JoinHandle<()>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

impl Issuer {
    /// Serves the JWKS on an ephemeral loopback port.
    pub async fn start() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("pair");
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let kid = format!("key-{}", uuid::Uuid::new_v4());
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]});
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/keys", get(move || async move { Json(jwks) }));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            jwks_url: format!("http://{addr}/keys"),
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            kid,
            _server: server,
        }
    }

    /// A token for `subject`, valid for an hour.
    pub fn token(&self, subject: &str) -> String {
        self.sign(&json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject,
            "iat": now(), "exp": now() + 3600,
        }))
    }

    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.key).expect("signs")
    }

    /// The policy's `[jwt]` section for this issuer.
    pub fn policy_section(&self) -> String {
        format!(
            "[jwt]\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\njwks_url = \"{}\"\n",
            self.jwks_url
        )
    }
}
