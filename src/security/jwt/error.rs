//! Why a bearer token was not accepted.
//!
//! Every message is built from fixed text, numbers and settings: never from
//! the token, its claims or the issuer's answer, since a caller (or a log
//! reader) must not be able to make the gateway echo a credential.

/// A bearer token that was refused, or keys that could not be had.
///
/// `Display` says what was wrong for logs and the gRPC status message;
/// [`JwtError::reason`] is the stable code for `google.rpc.ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Longer than the cap, refused before any parsing.
    #[error("bearer token is longer than {limit} bytes")]
    TooLarge { limit: usize },
    /// Not a compact JWS with a JSON header and claims.
    #[error("bearer token is malformed: {0}")]
    Malformed(&'static str),
    /// `none`, HMAC, an unknown algorithm, or one the key is not for.
    #[error("bearer token algorithm refused: {0}")]
    AlgorithmRefused(String),
    /// No key of the issuer's set has the token's `kid`.
    #[error("bearer token is signed with a key the issuer does not publish: {0}")]
    UnknownKey(String),
    /// The signature does not verify with the issuer's key.
    #[error("bearer token signature is not valid")]
    BadSignature,
    /// `exp` (plus the allowed clock skew) has passed.
    #[error("bearer token has expired")]
    Expired,
    /// `nbf` (less the allowed clock skew) is still to come.
    #[error("bearer token is not valid yet")]
    NotYetValid,
    /// The token has no `exp` claim (or not a number).
    #[error("bearer token has no expiry (exp)")]
    MissingExpiry,
    /// `iss` is missing or is not exactly the configured issuer.
    #[error("bearer token is not from the expected issuer")]
    WrongIssuer,
    /// `aud` is missing or names none of the configured audiences.
    #[error("bearer token is not meant for this service (audience)")]
    WrongAudience,
    /// The claim that names the caller is missing, empty or not a string.
    #[error("bearer token has no caller in its {claim:?} claim")]
    MissingSubject { claim: String },
    /// The issuer's key set could not be fetched (and none is held), or its
    /// answer was unusable.
    #[error("signing keys unavailable: {0}")]
    JwksUnavailable(String),
}

impl JwtError {
    /// The `google.rpc.ErrorInfo` reason: stable, SCREAMING_SNAKE_CASE.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "TOKEN_TOO_LARGE",
            Self::Malformed(_) => "TOKEN_MALFORMED",
            Self::AlgorithmRefused(_) => "TOKEN_ALGORITHM_REFUSED",
            Self::UnknownKey(_) => "TOKEN_UNKNOWN_KEY",
            Self::BadSignature => "TOKEN_BAD_SIGNATURE",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
            Self::MissingExpiry => "TOKEN_MISSING_EXPIRY",
            Self::WrongIssuer => "TOKEN_WRONG_ISSUER",
            Self::WrongAudience => "TOKEN_WRONG_AUDIENCE",
            Self::MissingSubject { .. } => "TOKEN_MISSING_SUBJECT",
            Self::JwksUnavailable(_) => "JWKS_UNAVAILABLE",
        }
    }

    /// True when the fault is the gateway's or the issuer's, not the
    /// caller's: the call may succeed later with the same token, so it maps
    /// to `UNAVAILABLE` rather than `UNAUTHENTICATED`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::JwksUnavailable(_))
    }
}

/// A `kid` fit to appear in a message: short, and of the characters key ids
/// are made of; anything else is not shown.
pub(super) fn printable_kid(kid: &str) -> String {
    let fits = !kid.is_empty()
        && kid.len() <= 128
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=:".contains(&b));
    if fits {
        format!("kid {kid:?}")
    } else {
        "a kid that cannot be shown".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct() {
        let all = [
            JwtError::TooLarge { limit: 1 },
            JwtError::Malformed("x"),
            JwtError::AlgorithmRefused("x".into()),
            JwtError::UnknownKey("x".into()),
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::MissingExpiry,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::MissingSubject {
                claim: "sub".into(),
            },
            JwtError::JwksUnavailable("x".into()),
        ];
        let mut reasons: Vec<_> = all.iter().map(JwtError::reason).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
        assert!(reasons
            .iter()
            .all(|r| r.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
        assert_eq!(
            all.iter().filter(|e| e.is_unavailable()).count(),
            1,
            "only missing keys are the gateway's fault"
        );
    }

    #[test]
    fn kids_are_shown_only_when_plain() {
        assert_eq!(printable_kid("abc-1_2"), "kid \"abc-1_2\"");
        assert_eq!(printable_kid("a\"b"), "a kid that cannot be shown");
        assert_eq!(printable_kid(""), "a kid that cannot be shown");
        assert_eq!(
            printable_kid(&"k".repeat(129)),
            "a kid that cannot be shown"
        );
    }
}
