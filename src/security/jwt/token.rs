//! One token: its header read before any key is chosen, then the signature
//! and claims checked with the chosen key.

use super::error::JwtError;
use super::keys::{accepted_algorithm, Key};
use super::{JwtSettings, VerifiedToken};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::{Duration, UNIX_EPOCH};

/// The most clock skew honoured, whatever the settings say: a day.
const MAX_LEEWAY_SECS: u64 = 86_400;

/// What the header says, once its algorithm is known to be acceptable.
#[derive(Debug)]
pub(super) struct Header {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// Reads the header of a compact JWS (`header.claims.signature`), refusing
/// `none`, HMAC and unknown algorithms before anything else is looked at.
pub(super) fn read_header(token: &str) -> Result<Header, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "not three dot-separated parts (header.claims.signature)",
        ));
    };
    if header.is_empty() || claims.is_empty() {
        return Err(JwtError::Malformed("empty header or claims"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let raw: RawHeader = serde_json::from_slice(&bytes)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with a string alg"))?;
    let alg = accepted_algorithm(&raw.alg)?;
    if raw.crit.is_some() {
        return Err(JwtError::Malformed(
            "header names critical extensions (crit), which are not supported",
        ));
    }
    Ok(Header { alg, kid: raw.kid })
}

/// Verifies the signature with `key`, then the claims against `settings`.
pub(super) fn check(
    token: &str,
    header: &Header,
    key: &Key,
    settings: &JwtSettings,
) -> Result<VerifiedToken, JwtError> {
    let mut validation = Validation::new(header.alg);
    // Bounded so that jsonwebtoken's `now - leeway` cannot underflow.
    validation.leeway = settings.leeway.as_secs().min(MAX_LEEWAY_SECS);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_audience(&settings.audiences);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, key.decoding(), &validation)
        .map_err(|e| refusal(e.kind()))?
        .claims;

    // jsonwebtoken takes an array `iss` holding the issuer; ours must be it.
    if claims.get("iss").and_then(Value::as_str) != Some(settings.issuer.as_str()) {
        return Err(JwtError::WrongIssuer);
    }
    // jsonwebtoken skips an `nbf` it cannot read; an unreadable one refuses.
    if claims.get("nbf").is_some_and(|nbf| seconds(nbf).is_none()) {
        return Err(JwtError::Malformed("nbf is not a NumericDate"));
    }
    let exp = claims
        .get("exp")
        .and_then(seconds)
        .ok_or(JwtError::MissingExpiry)?;
    let expires_at = UNIX_EPOCH
        .checked_add(Duration::from_secs(exp))
        .ok_or(JwtError::Malformed("exp is out of range"))?;
    let subject = match claims.get(&settings.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(JwtError::MissingSubject {
                claim: settings.subject_claim.clone(),
            })
        }
    };
    Ok(VerifiedToken {
        subject,
        issuer: settings.issuer.clone(),
        expires_at,
    })
}

/// A NumericDate as whole seconds (fractions dropped), as jsonwebtoken
/// reads it: a non-negative number.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

/// jsonwebtoken's finding as ours. Its messages are not passed on: JSON
/// errors can quote the claims.
fn refusal(kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => JwtError::BadSignature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
        ErrorKind::InvalidAudience => JwtError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => JwtError::WrongIssuer,
            "aud" => JwtError::WrongAudience,
            _ => JwtError::MissingExpiry,
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            JwtError::AlgorithmRefused("the token's algorithm does not fit the key".to_owned())
        }
        ErrorKind::Base64(_) => JwtError::Malformed("a part is not base64url"),
        ErrorKind::Json(_) => JwtError::Malformed("claims are not a JSON object of valid claims"),
        ErrorKind::Utf8(_) => JwtError::Malformed("a part is not UTF-8"),
        _ => JwtError::Malformed("not a valid JWT"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn header_is_read_before_any_key_is_chosen() {
        let token = format!("{}.{}.sig", b64(r#"{"alg":"RS256","kid":"k1"}"#), b64("{}"));
        let h = read_header(&token).unwrap();
        assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::RS256, Some("k1")));
        let no_kid = format!("{}.{}.", b64(r#"{"alg":"ES256"}"#), b64("{}"));
        assert_eq!(read_header(&no_kid).unwrap().kid, None);
    }

    #[test]
    fn malformed_headers_and_refused_algorithms() {
        let reason = |t: &str| read_header(t).unwrap_err().reason();
        let claims = b64("{}");
        for (token, want) in [
            (String::new(), "TOKEN_MALFORMED"),
            ("a.b".to_owned(), "TOKEN_MALFORMED"),
            ("a.b.c.d".to_owned(), "TOKEN_MALFORMED"),
            (format!(".{claims}.x"), "TOKEN_MALFORMED"),
            (
                format!("{}..x", b64(r#"{"alg":"RS256"}"#)),
                "TOKEN_MALFORMED",
            ),
            (format!("!!!.{claims}.x"), "TOKEN_MALFORMED"),
            (format!("{}.{claims}.x", b64("[]")), "TOKEN_MALFORMED"),
            (
                format!("{}.{claims}.x", b64(r#"{"alg":7}"#)),
                "TOKEN_MALFORMED",
            ),
            (
                format!("{}.{claims}.x", b64(r#"{"kid":"k"}"#)),
                "TOKEN_MALFORMED",
            ),
            (
                format!("{}.{claims}.x", b64(r#"{"alg":"RS256","crit":["exp"]}"#)),
                "TOKEN_MALFORMED",
            ),
            (
                format!("{}.{claims}.", b64(r#"{"alg":"none"}"#)),
                "TOKEN_ALGORITHM_REFUSED",
            ),
            (
                format!("{}.{claims}.x", b64(r#"{"alg":"HS256"}"#)),
                "TOKEN_ALGORITHM_REFUSED",
            ),
            (
                format!("{}.{claims}.x", b64(r#"{"alg":"EdDSA"}"#)),
                "TOKEN_ALGORITHM_REFUSED",
            ),
        ] {
            assert_eq!(reason(&token), want, "{token}");
        }
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(
            seconds(&serde_json::json!(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(
            seconds(&serde_json::json!(1_700_000_000.9)),
            Some(1_700_000_000)
        );
        assert_eq!(seconds(&serde_json::json!(-1)), None);
        assert_eq!(seconds(&serde_json::json!("1700000000")), None);
        assert_eq!(seconds(&serde_json::json!(null)), None);
    }
}
