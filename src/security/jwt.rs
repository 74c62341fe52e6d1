//! Bearer JWTs from one configured issuer, verified against the keys the
//! issuer publishes (its JWKS).
//!
//! What a token must be to be accepted:
//!
//! - at most [`MAX_TOKEN_BYTES`] long, a compact JWS `header.claims.signature`;
//! - signed with an asymmetric algorithm (RS256/384/512, PS256/384/512,
//!   ES256, ES384) that the key permits: the key decides, the header only
//!   picks among what the key allows, so `none` and HMAC (including an
//!   HS256 token "signed" with the public key) are refused;
//! - signed by the key its `kid` names (without a `kid`, the one key that
//!   fits its algorithm);
//! - `exp` present and not passed, `nbf` (if present) reached, both with
//!   `leeway` for clock skew; `iss` exactly the issuer; `aud` (a string or
//!   an array) naming one of the audiences;
//! - the subject claim (`sub`, or e.g. `azp`, `appid`, `oid`) a non-empty
//!   string: it names the caller.
//!
//! How the keys are kept (see `cache.rs`): fetched once, refreshed every
//! `refresh` in the background, re-fetched once for an unknown `kid` (at
//! most once per 30 s), old keys kept when a fetch fails.
//!
//! Errors never carry the token: see [`JwtError`].

mod cache;
mod error;
mod fetch;
mod keys;
mod token;

pub use cache::FORCED_FETCH_INTERVAL;
pub use error::JwtError;
pub use fetch::{JWKS_TIMEOUT, MAX_JWKS_BYTES};

use cache::KeyCache;
use error::printable_kid;
use keys::Selection;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use url::Url;

/// Longest bearer token accepted; longer ones are refused unread. Entra ID's
/// access tokens are 1 to 2 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Which tokens to accept and where the keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// `aud` must contain one of these (a non-empty list).
    pub audiences: Vec<String>,
    /// The issuer's JWKS: `https://`, or `http://` only for a loopback host.
    pub jwks_url: Url,
    /// Clock skew allowed for `exp` and `nbf` (whole seconds count).
    pub leeway: Duration,
    /// How often the keys are fetched again.
    pub refresh: Duration,
    /// The claim that names the caller.
    pub subject_claim: String,
}

impl JwtSettings {
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
    pub const DEFAULT_SUBJECT_CLAIM: &'static str = "sub";

    /// Settings with the default leeway (60 s), refresh (1 h) and subject
    /// claim (`sub`).
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>, jwks_url: Url) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            jwks_url,
            leeway: Self::DEFAULT_LEEWAY,
            refresh: Self::DEFAULT_REFRESH,
            subject_claim: Self::DEFAULT_SUBJECT_CLAIM.to_owned(),
        }
    }

    /// Every problem with the settings, for start-up. A verifier built from
    /// settings that fail this refuses every token rather than accept one
    /// wrongly.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.issuer.trim().is_empty() {
            problems.push("the JWT issuer is empty".to_owned());
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            problems
                .push("the JWT audiences must be a non-empty list of non-empty names".to_owned());
        }
        if let Err(e) = fetch::check_url(&self.jwks_url) {
            problems.push(e);
        }
        if self.leeway > Duration::from_secs(600) {
            problems.push("the JWT leeway must be at most 10 minutes".to_owned());
        }
        if self.refresh < Duration::from_secs(1) {
            problems.push("the JWKS refresh interval must be at least 1 s".to_owned());
        }
        if self.subject_claim.trim().is_empty() {
            problems.push("the JWT subject claim name is empty".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A token that passed: who is calling, for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The subject claim's value.
    pub subject: String,
    pub issuer: String,
    /// `exp`.
    pub expires_at: SystemTime,
}

/// Verifies bearer tokens. Cheap to clone: clones share the keys. Needs a
/// Tokio runtime (fetches run as tasks).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: JwtSettings,
    keys: KeyCache,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.settings.issuer)
            .field("jwks_url", &self.inner.keys.url().as_str())
            .field("has_keys", &self.has_keys())
            .finish()
    }
}

impl JwtVerifier {
    /// Fetches nothing yet: see [`JwtVerifier::warm_up`].
    pub fn new(settings: JwtSettings, http: reqwest::Client) -> Self {
        let keys = KeyCache::new(http, settings.jwks_url.clone(), settings.refresh);
        Self {
            inner: Arc::new(Inner { settings, keys }),
        }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.inner.settings
    }

    /// Fetches the keys if none are held yet (for start-up and readiness);
    /// `Ok` once a key set is held.
    pub async fn warm_up(&self) -> Result<(), JwtError> {
        self.inner.keys.keys().await.map(drop)
    }

    /// Whether a key set is held, without fetching.
    pub fn has_keys(&self) -> bool {
        self.inner.keys.has_keys()
    }

    /// Verifies `token` (the JWT itself, without `Bearer `).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLarge {
                limit: MAX_TOKEN_BYTES,
            });
        }
        let header = token::read_header(token)?;
        let mut snapshot = self.inner.keys.keys().await?;
        let mut fetched_for_kid = false;
        let key = loop {
            match snapshot.keys.select(header.kid.as_deref(), header.alg) {
                Selection::Key(key) => break key,
                Selection::WrongAlgorithm { key_allows } => {
                    return Err(JwtError::AlgorithmRefused(format!(
                        "the token says {:?}, its key is for {key_allows}",
                        header.alg
                    )));
                }
                Selection::Ambiguous(count) => {
                    return Err(JwtError::UnknownKey(format!(
                        "the token names no kid and {count} keys fit its algorithm"
                    )));
                }
                Selection::Unknown if !fetched_for_kid => {
                    fetched_for_kid = true;
                    match self.inner.keys.keys_for_unknown_kid(&snapshot).await? {
                        Some(newer) => snapshot = newer,
                        None => return Err(unknown_key(header.kid.as_deref())),
                    }
                }
                Selection::Unknown => return Err(unknown_key(header.kid.as_deref())),
            }
        };
        token::check(token, &header, &key, &self.inner.settings)
    }
}

fn unknown_key(kid: Option<&str>) -> JwtError {
    JwtError::UnknownKey(match kid {
        Some(kid) => printable_kid(kid),
        None => "the token names no kid and no key fits its algorithm".to_owned(),
    })
}

/// The token in an `authorization` value of the form `Bearer <token>`
/// (scheme case-insensitive), or `None`.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JwtSettings {
        JwtSettings::new(
            "https://issuer.example/",
            vec!["api://gateway".to_owned()],
            Url::parse("https://issuer.example/keys").unwrap(),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let s = settings();
        assert_eq!(s.leeway, Duration::from_secs(60));
        assert_eq!(s.refresh, Duration::from_secs(3600));
        assert_eq!(s.subject_claim, "sub");
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let mut s = settings();
        s.issuer = " ".to_owned();
        s.audiences = vec![];
        s.jwks_url = Url::parse("http://issuer.example/keys").unwrap();
        s.leeway = Duration::from_secs(3600);
        s.refresh = Duration::from_millis(10);
        s.subject_claim = String::new();
        assert_eq!(s.validate().unwrap_err().len(), 6);
        s = settings();
        s.audiences = vec!["ok".to_owned(), String::new()];
        assert_eq!(s.validate().unwrap_err().len(), 1);
    }

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
