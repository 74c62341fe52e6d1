//! One client-credentials token request: a form POST to Entra ID.

use super::credential::{ClientAuth, Credential};
use super::error::{TokenError, TokenErrorKind};
use crate::graph::body::{self, BodyError};
use http::{header, HeaderValue};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait for the token endpoint.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Refresh this long before the token expires (or at half its life, if shorter).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token as the cache keeps it.
#[derive(Clone)]
pub(crate) struct Token {
    /// `Bearer {access_token}`, marked sensitive.
    pub header: HeaderValue,
    /// Until then no refresh is needed.
    pub fresh_until: Instant,
    /// From then on it cannot be used.
    pub expires_at: Instant,
    pub lifetime: Duration,
}

impl Token {
    /// A token that lives `lifetime` from `issued` (when it was asked for, to
    /// err on the early side): fresh until `lifetime - min(5 min, lifetime / 2)`.
    pub(crate) fn new(header: HeaderValue, issued: Instant, lifetime: Duration) -> Self {
        let ahead = REFRESH_AHEAD.min(lifetime / 2);
        Self {
            header,
            fresh_until: issued + (lifetime - ahead),
            expires_at: issued + lifetime,
            lifetime,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: Seconds,
}

/// `expires_in`: a number from Entra ID v2, a string from some older endpoints.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

/// The default `AZURE_TOKEN_MAX_ANSWER_BYTES`: a token answer is a few
/// kilobytes.
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Asks Entra ID for a token; `issued` is when the request started. The
/// answer is read up to `max_answer_bytes` (after decompression): a success
/// past it is a transient failure, an error past it is read for what fits.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    credential: &Credential,
    issued: Instant,
    max_answer_bytes: u64,
) -> Result<Token, TokenError> {
    let token_url = credential.token_url();
    let auth = credential.client_auth(&token_url).await?;
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", credential.client_id.as_str()),
        ("scope", credential.scope.as_str()),
    ];
    match &auth {
        ClientAuth::Secret(secret) => form.push(("client_secret", secret.expose())),
        ClientAuth::Assertion(assertion) => {
            form.push(("client_assertion_type", JWT_BEARER));
            form.push(("client_assertion", assertion.expose()));
        }
    }
    let resp = http
        .post(&token_url)
        .timeout(TOKEN_REQUEST_TIMEOUT)
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenError::unreachable(crate::graph::transport_failure(&e)))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let limit = usize::try_from(max_answer_bytes).unwrap_or(usize::MAX);
        let body = body::read_prefix(resp, limit).await;
        return Err(TokenError::from_response(status, &body));
    }
    let body = match body::read_limited(resp, max_answer_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { limit }) => {
            return Err(TokenError::local(
                TokenErrorKind::Transient,
                format!(
                    "Entra ID's token answer is larger than {limit} bytes (AZURE_TOKEN_MAX_ANSWER_BYTES); it was not read"
                ),
            ))
        }
        Err(BodyError::Broken(e)) => {
            return Err(TokenError::unreachable(crate::graph::transport_failure(&e)))
        }
    };
    let odd = |what: &str| {
        TokenError::local(
            TokenErrorKind::Transient,
            format!("Entra ID's token answer {what}"),
        )
    };
    let token: TokenResponse =
        serde_json::from_slice(&body).map_err(|_| odd("is not the expected JSON"))?;
    if token
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(odd("is not a Bearer token"));
    }
    let seconds = match token.expires_in {
        Seconds::Number(n) => Some(n),
        Seconds::Text(t) => t.trim().parse().ok(),
    }
    .filter(|n| *n > 0)
    .ok_or_else(|| odd("has no usable expires_in"))?;
    if token.access_token.is_empty() {
        return Err(odd("has an empty access_token"));
    }
    let mut header = HeaderValue::try_from(format!("Bearer {}", token.access_token))
        .map_err(|_| odd("holds a token that is not a valid header value"))?;
    header.set_sensitive(true);
    // Entra ID's tokens live about an hour; a day bounds a nonsense answer.
    let lifetime = Duration::from_secs(seconds.min(86_400));
    Ok(Token::new(header, issued, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_until_leaves_five_minutes_or_half_the_life() {
        let t0 = Instant::now();
        let h = HeaderValue::from_static("Bearer x");
        let long = Token::new(h.clone(), t0, Duration::from_secs(3599));
        assert_eq!(long.fresh_until, t0 + Duration::from_secs(3299));
        assert_eq!(long.expires_at, t0 + Duration::from_secs(3599));
        let short = Token::new(h, t0, Duration::from_secs(120));
        assert_eq!(short.fresh_until, t0 + Duration::from_secs(60));
        assert_eq!(short.expires_at, t0 + Duration::from_secs(120));
    }
}
