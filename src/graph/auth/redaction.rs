//! Every type here that holds a secret, a key or an assertion prints
//! without it, through `Debug` and `Display` alike. (The cached token's
//! header is marked sensitive; `tests/auth.rs` checks that.)

use super::certificate::ClientCertificate;
use super::credential::{ClientAuth, Credential, CredentialKind};
use crate::secret::Secret;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::Generate;
use std::path::PathBuf;

const SECRET: &str = "redaction-test-secret-value";

fn credential(kind: CredentialKind) -> Credential {
    Credential {
        authority_host: "https://login.microsoftonline.com".parse().expect("url"),
        tenant_id: "contoso".into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        scope: "https://graph.microsoft.com/.default".into(),
        kind,
    }
}

/// A PEM with a fresh RSA key and a self-signed certificate for it.
fn key_and_certificate() -> String {
    let key = rsa::PrivateKey::generate();
    let key_pem = key.to_pkcs8_pem(LineEnding::LF).expect("pkcs8");
    let pair = rcgen::KeyPair::from_pem(&key_pem).expect("rcgen takes the RSA key");
    let cert = rcgen::CertificateParams::new(vec!["redaction-test".to_owned()])
        .expect("params")
        .self_signed(&pair)
        .expect("self-signed");
    format!("{}{}", key_pem.as_str(), cert.pem())
}

#[test]
fn credentials_print_without_their_secret() {
    let kinds = [
        CredentialKind::ClientSecret(Secret::new(SECRET)),
        CredentialKind::ClientSecretFile(PathBuf::from("/var/run/secrets/client-secret")),
        CredentialKind::Certificate(PathBuf::from("/var/run/secrets/client.pem")),
        CredentialKind::FederatedTokenFile(PathBuf::from("/var/run/secrets/token")),
    ];
    for kind in kinds {
        let shown = format!("{kind:?} {:?} {:#?}", credential(kind.clone()), kind);
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("contoso"), "the rest still shows: {shown}");
    }
    let shown = format!("{:?}", CredentialKind::ClientSecret(Secret::new(SECRET)));
    assert_eq!(shown, "ClientSecret([redacted])");
}

#[test]
fn client_auth_holds_only_redacting_values() {
    for auth in [
        ClientAuth::Secret(Secret::new(SECRET)),
        ClientAuth::Assertion(Secret::new(SECRET)),
    ] {
        let (ClientAuth::Secret(value) | ClientAuth::Assertion(value)) = &auth;
        assert_eq!(format!("{value} {value:?}"), "[redacted] [redacted]");
        assert_eq!(value.expose(), SECRET);
    }
}

#[test]
fn a_certificate_prints_its_thumbprint_and_its_assertions_nothing() {
    let pem = key_and_certificate();
    let cert = ClientCertificate::from_pem(pem.as_bytes()).expect("usable");
    let assertion = cert
        .assertion(
            "https://login.example/t/oauth2/v2.0/token",
            "client",
            1_700_000_000,
        )
        .expect("signed");
    let shown = format!("{cert:?} {cert:#?} {assertion} {assertion:?}");
    assert!(shown.contains(cert.thumbprint_sha256()), "{shown}");
    assert!(!shown.contains(assertion.expose()), "{shown}");
    assert!(!shown.contains("eyJ"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !shown.contains(line),
            "key or certificate text shown: {line}"
        );
    }
}
