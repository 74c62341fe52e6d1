//! The issuer's signing keys: which JWKs are usable, and for which
//! algorithms.
//!
//! Only asymmetric signature keys are kept. The algorithm a token may use is
//! decided by the key: an RSA key without `alg` takes RS* and PS*, one with
//! `alg` takes exactly that; an EC key takes the one algorithm of its curve.
//! Keys for encryption (`use` other than `sig`, `key_ops` without
//! `verify`), symmetric keys (`oct`), and key types or sizes that are not
//! accepted are skipped, so one odd key never spoils the set.

use super::error::JwtError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::sync::Arc;

/// RSA moduli accepted, in bits (ring's bounds for RS* and PS*).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=8192;

/// The algorithm a token's header names, if it is one this verifier
/// accepts: RS256/384/512, PS256/384/512, ES256, ES384.
pub(super) fn accepted_algorithm(name: &str) -> Result<Algorithm, JwtError> {
    let alg = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        other => {
            // Name only algorithms we know of: the header is the caller's text.
            const KNOWN: [&str; 9] = [
                "none", "HS256", "HS384", "HS512", "EdDSA", "Ed25519", "ES512", "ES256K", "RS1",
            ];
            let shown = KNOWN
                .iter()
                .find(|k| k.eq_ignore_ascii_case(other))
                .map_or("an unknown algorithm", |k| k);
            return Err(JwtError::AlgorithmRefused(format!(
                "{shown} is not accepted; only RS*, PS*, ES256 and ES384"
            )));
        }
    };
    Ok(alg)
}

/// Which algorithms a key verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allows {
    /// An RSA key that names no `alg`: PKCS#1 v1.5 and PSS with any SHA-2.
    AnyRsa,
    Only(Algorithm),
}

impl Allows {
    fn permits(self, alg: Algorithm) -> bool {
        match self {
            Self::AnyRsa => is_rsa(alg),
            Self::Only(only) => only == alg,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AnyRsa => "RS* and PS*".to_owned(),
            Self::Only(alg) => format!("{alg:?}"),
        }
    }
}

fn is_rsa(alg: Algorithm) -> bool {
    matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}

/// One usable signing key.
pub(super) struct Key {
    kid: Option<String>,
    allows: Allows,
    decoding: DecodingKey,
}

impl Key {
    pub(super) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The keys taken from one answer of the issuer.
#[derive(Default)]
pub(super) struct KeySet {
    keys: Vec<Arc<Key>>,
}

/// What the key set holds for a token.
pub(super) enum Selection {
    /// The key to verify the token with.
    Key(Arc<Key>),
    /// No key has the token's `kid` (or, without a `kid`, none fits its
    /// algorithm): the set may be out of date.
    Unknown,
    /// A key has the `kid`, but is not for the token's algorithm.
    WrongAlgorithm { key_allows: String },
    /// The token names no `kid` and several keys fit its algorithm.
    Ambiguous(usize),
}

/// One JWK as published, every member optional so that a key of a shape we
/// do not know is skipped rather than failing the set.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Reads a JWKS document. Fails when it is not one, or holds no usable
    /// signing key; the message never quotes the document.
    pub(super) fn parse(body: &[u8]) -> Result<Self, String> {
        let raw: RawSet = serde_json::from_slice(body).map_err(|e| {
            format!(
                "the answer is not a JSON key set {{\"keys\": [...]}} (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let total = raw.keys.len();
        let mut keys = Vec::with_capacity(total);
        for value in raw.keys {
            let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            match serde_json::from_value::<RawJwk>(value)
                .map_err(|_| "members of the wrong type")
                .and_then(usable_key)
            {
                Ok(key) => keys.push(Arc::new(key)),
                Err(why) => tracing::debug!(kid = kid.as_deref(), why, "JWKS key skipped"),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "the key set holds no usable signing key ({total} published, all skipped)"
            ));
        }
        Ok(Self { keys })
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key for a token with this `kid` and algorithm.
    pub(super) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection {
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                let Some(first) = named.peek().map(|k| k.allows) else {
                    return Selection::Unknown;
                };
                match named.find(|k| k.allows.permits(alg)) {
                    Some(key) => Selection::Key(Arc::clone(key)),
                    None => Selection::WrongAlgorithm {
                        key_allows: first.describe(),
                    },
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.allows.permits(alg));
                match (fitting.next(), fitting.count()) {
                    (None, _) => Selection::Unknown,
                    (Some(key), 0) => Selection::Key(Arc::clone(key)),
                    (Some(_), more) => Selection::Ambiguous(more + 1),
                }
            }
        }
    }
}

/// The key a JWK describes, or why it is skipped.
fn usable_key(jwk: RawJwk) -> Result<Key, &'static str> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (use)");
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("not a verification key (key_ops)");
    }
    let named = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(accepted_algorithm(name).map_err(|_| "algorithm not accepted")?),
    };
    match jwk.kty.as_deref() {
        Some("RSA") => {
            let allows = match named {
                None => Allows::AnyRsa,
                Some(alg) if is_rsa(alg) => Allows::Only(alg),
                Some(_) => return Err("alg is not an RSA algorithm"),
            };
            let n = decode(jwk.n.as_deref()).ok_or("no valid n")?;
            let e = decode(jwk.e.as_deref()).ok_or("no valid e")?;
            let n = strip_leading_zeros(&n);
            if !RSA_BITS.contains(&bit_length(n)) {
                return Err("RSA modulus outside 2048..=8192 bits");
            }
            let e = strip_leading_zeros(&e);
            if e.is_empty() || e.len() > 4 {
                return Err("RSA exponent out of range");
            }
            Ok(Key {
                kid: jwk.kid,
                allows,
                decoding: DecodingKey::from_rsa_raw_components(n, e),
            })
        }
        Some("EC") => {
            let (alg, size) = match jwk.crv.as_deref() {
                Some("P-256") => (Algorithm::ES256, 32),
                Some("P-384") => (Algorithm::ES384, 48),
                _ => return Err("curve not accepted"),
            };
            if named.is_some_and(|named| named != alg) {
                return Err("alg does not match the curve");
            }
            let x = decode(jwk.x.as_deref()).ok_or("no valid x")?;
            let y = decode(jwk.y.as_deref()).ok_or("no valid y")?;
            if x.len() != size || y.len() != size {
                return Err("coordinates of the wrong size for the curve");
            }
            // The uncompressed point, as ring reads an EC public key.
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(Key {
                kid: jwk.kid,
                allows: Allows::Only(alg),
                decoding: DecodingKey::from_ec_der(&point),
            })
        }
        Some("oct") => Err("symmetric key"),
        _ => Err("key type not accepted"),
    }
}

fn decode(value: Option<&str>) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value?).ok()
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(unsigned: &[u8]) -> usize {
    match unsigned.first() {
        None => 0,
        Some(&top) => unsigned.len() * 8 - top.leading_zeros() as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: &str) -> serde_json::Value {
        // A modulus of exactly 2048 bits: only the size is checked here.
        let mut n = vec![0xC5u8; 256];
        n[255] |= 1;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn ec_jwk(kid: &str, crv: &str, size: usize) -> serde_json::Value {
        json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&vec![1; size]), "y": b64(&vec![2; size])})
    }

    fn set(keys: Vec<serde_json::Value>) -> Result<KeySet, String> {
        KeySet::parse(json!({ "keys": keys }).to_string().as_bytes())
    }

    fn selected(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> &'static str {
        match set.select(kid, alg) {
            Selection::Key(_) => "key",
            Selection::Unknown => "unknown",
            Selection::WrongAlgorithm { .. } => "wrong-alg",
            Selection::Ambiguous(_) => "ambiguous",
        }
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        for ok in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
        ] {
            assert!(accepted_algorithm(ok).is_ok(), "{ok}");
        }
        for refused in [
            "none", "None", "HS256", "HS384", "HS512", "EdDSA", "ES512", "rs256", "",
        ] {
            let e = accepted_algorithm(refused).unwrap_err();
            assert_eq!(e.reason(), "TOKEN_ALGORITHM_REFUSED", "{refused}");
        }
        let e = accepted_algorithm("<script>").unwrap_err().to_string();
        assert!(
            e.contains("an unknown algorithm") && !e.contains("script"),
            "{e}"
        );
    }

    #[test]
    fn rsa_keys_take_their_family_or_their_alg() {
        let mut pinned = rsa_jwk("pinned");
        pinned["alg"] = json!("PS384");
        let keys = set(vec![rsa_jwk("any"), pinned]).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(selected(&keys, Some("any"), Algorithm::RS256), "key");
        assert_eq!(selected(&keys, Some("any"), Algorithm::PS512), "key");
        assert_eq!(selected(&keys, Some("any"), Algorithm::ES256), "wrong-alg");
        assert_eq!(selected(&keys, Some("pinned"), Algorithm::PS384), "key");
        assert_eq!(
            selected(&keys, Some("pinned"), Algorithm::RS256),
            "wrong-alg"
        );
        assert_eq!(selected(&keys, Some("other"), Algorithm::RS256), "unknown");
        assert_eq!(selected(&keys, None, Algorithm::RS256), "key");
        assert_eq!(selected(&keys, None, Algorithm::PS384), "ambiguous");
        assert_eq!(selected(&keys, None, Algorithm::ES256), "unknown");
    }

    #[test]
    fn ec_keys_take_their_curve_algorithm() {
        let keys = set(vec![
            ec_jwk("p256", "P-256", 32),
            ec_jwk("p384", "P-384", 48),
        ])
        .unwrap();
        assert_eq!(selected(&keys, Some("p256"), Algorithm::ES256), "key");
        assert_eq!(selected(&keys, Some("p256"), Algorithm::ES384), "wrong-alg");
        assert_eq!(selected(&keys, Some("p384"), Algorithm::ES384), "key");
        assert_eq!(selected(&keys, Some("p384"), Algorithm::RS256), "wrong-alg");
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let mut enc = rsa_jwk("enc");
        enc["use"] = json!("enc");
        let mut wrap = rsa_jwk("wrap");
        wrap["key_ops"] = json!(["wrapKey"]);
        let mut oaep = rsa_jwk("oaep");
        oaep["alg"] = json!("RSA-OAEP");
        let mut hs = rsa_jwk("hs");
        hs["alg"] = json!("HS256");
        let mut small = rsa_jwk("small");
        small["n"] = json!(b64(&[0xC5; 128]));
        let mut mismatched = ec_jwk("mismatched", "P-256", 32);
        mismatched["alg"] = json!("ES384");
        let skipped = vec![
            enc,
            wrap,
            oaep,
            hs,
            small,
            mismatched,
            ec_jwk("p521", "P-521", 66),
            ec_jwk("short", "P-256", 31),
            json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"}),
            json!({"kty": "RSA", "kid": "no-n", "e": "AQAB"}),
            json!({"kty": 7, "kid": "odd"}),
            json!("not an object"),
        ];
        let mut verify = rsa_jwk("verify");
        verify["use"] = json!("sig");
        verify["key_ops"] = json!(["verify"]);
        let mut all = skipped.clone();
        all.push(verify);
        let keys = set(all).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(selected(&keys, Some("verify"), Algorithm::RS256), "key");
        assert_eq!(selected(&keys, Some("enc"), Algorithm::RS256), "unknown");
        assert_eq!(selected(&keys, Some("secret"), Algorithm::RS256), "unknown");

        let e = set(skipped).err().unwrap();
        assert!(e.contains("no usable signing key (13 published"), "{e}");
    }

    #[test]
    fn a_document_that_is_not_a_key_set_is_refused_without_quoting_it() {
        for body in [
            &b"<html>secret-ish</html>"[..],
            b"{\"keys\": {}}",
            b"[]",
            b"",
        ] {
            let e = KeySet::parse(body).err().unwrap();
            assert!(e.starts_with("the answer is not a JSON key set"), "{e}");
            assert!(!e.contains("secret-ish"), "{e}");
        }
        assert!(set(vec![]).err().unwrap().contains("no usable signing key"));
    }
}
