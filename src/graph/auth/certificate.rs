//! Certificate credentials: a PEM file with an RSA private key and its
//! certificate, turned into a signed client assertion (RFC 7523) per token
//! request.

use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::{PemObject, SectionKind};
use std::fmt;

/// How long a client assertion is valid.
pub(crate) const ASSERTION_LIFETIME_SECS: u64 = 600;

/// An RSA key and the thumbprints of its certificate.
pub(crate) struct ClientCertificate {
    key: RsaKeyPair,
    /// base64url SHA-256 of the certificate's DER: the `x5t#S256` header.
    x5t_s256: String,
    /// base64url SHA-1 of the certificate's DER: the `x5t` header, for
    /// tenants and older Entra ID endpoints that only know that one.
    x5t: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Reads a PEM file's contents: one unencrypted RSA private key (PKCS#8
    /// `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`) and its certificate,
    /// possibly followed by the chain. Errors never quote the file.
    pub(crate) fn from_pem(pem: &[u8]) -> Result<Self, String> {
        if contains(pem, b"ENCRYPTED") {
            return Err(
                "the private key is encrypted; give an unencrypted PEM (e.g. `openssl pkcs8 -nocrypt`)"
                    .into(),
            );
        }
        let mut keys = Vec::new();
        let mut certificates = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            match section.map_err(|_| "not a valid PEM file".to_owned())? {
                (SectionKind::PrivateKey, der) => {
                    keys.push(RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                        format!("the PKCS#8 private key is not a usable RSA key ({e})")
                    })?)
                }
                (SectionKind::RsaPrivateKey, der) => {
                    keys.push(RsaKeyPair::from_der(&der).map_err(|e| {
                        format!("the PKCS#1 private key is not a usable RSA key ({e})")
                    })?)
                }
                (SectionKind::EcPrivateKey, _) => {
                    return Err(
                        "the private key is an EC key; Entra ID certificate credentials need RSA"
                            .into(),
                    )
                }
                (SectionKind::Certificate, der) => certificates.push(der),
                _ => {}
            }
        }
        let key = match keys.len() {
            1 => keys.remove(0),
            0 => {
                return Err(
                    "no PEM private key (PRIVATE KEY or RSA PRIVATE KEY) found; PKCS#12 files need converting to PEM"
                        .into(),
                )
            }
            n => return Err(format!("{n} private keys found; keep only one")),
        };
        if certificates.is_empty() {
            return Err("no PEM CERTIFICATE found beside the private key".into());
        }
        // The certificate's SubjectPublicKeyInfo holds the key's RSAPublicKey
        // DER verbatim: that picks the leaf out of a chain.
        let public = key.public().as_ref();
        let leaf = certificates
            .iter()
            .find(|der| contains(der, public))
            .ok_or_else(|| "no certificate in the file matches its private key".to_owned())?;
        Ok(Self {
            x5t_s256: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, leaf)),
            x5t: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, leaf)),
            key,
        })
    }

    /// base64url SHA-256 thumbprint of the certificate (public, for logs).
    pub(crate) fn thumbprint_sha256(&self) -> &str {
        &self.x5t_s256
    }

    /// A client assertion JWT for `audience` (the token URL), signed RS256,
    /// valid from `now` (seconds since the Unix epoch) for ten minutes.
    pub(crate) fn assertion(
        &self,
        audience: &str,
        client_id: &str,
        now: u64,
    ) -> Result<Secret, String> {
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t#S256": self.x5t_s256,
            "x5t": self.x5t,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(Secret::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_refused_without_quoting_them() {
        for (pem, why) in [
            (&b""[..], "no PEM private key"),
            (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a usable RSA key"),
            (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "not a usable RSA key"),
            (b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            (b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", "EC key"),
            (b"-----BEGIN PRIVATE KEY-----\nAA!!secret-bytes\n-----END PRIVATE KEY-----\n", "not a valid PEM"),
        ] {
            let e = ClientCertificate::from_pem(pem).expect_err(why);
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("AAAA") && !e.contains("secret-bytes"), "{e}");
        }
    }
}
