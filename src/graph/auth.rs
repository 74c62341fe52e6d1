//! Access tokens for Graph from Microsoft Entra ID (OAuth 2.0 client
//! credentials with a client secret).
//!
//! The flow is one form POST, so it is ours rather than a dependency's. The
//! token is cached and refreshed ahead of expiry; the lock is held across the
//! refresh, so concurrent calls on a cold cache cause one token request.

use super::error::GraphError;
use crate::config::ClientSecretCredential;
use http::HeaderValue;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Refresh this long before the token expires (or at half its life, if shorter).
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

struct Cached {
    header: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// A client-secret credential with its cached token.
pub struct TokenCache {
    http: reqwest::Client,
    credential: ClientSecretCredential,
    cached: Mutex<Option<Cached>>,
}

impl TokenCache {
    pub fn new(http: reqwest::Client, credential: ClientSecretCredential) -> Self {
        Self {
            http,
            credential,
            cached: Mutex::new(None),
        }
    }

    /// The `Authorization` header value, fetching a token when needed.
    pub async fn authorization(&self) -> Result<HeaderValue, GraphError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.header.clone());
        }
        let fresh = self.fetch().await?;
        let header = fresh.header.clone();
        *cached = Some(fresh);
        Ok(header)
    }

    async fn fetch(&self) -> Result<Cached, GraphError> {
        let c = &self.credential;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose()),
            ("scope", c.scope.as_str()),
        ];
        let resp = self
            .http
            .post(c.token_url())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                GraphError::Token(format!("token endpoint unreachable: {}", without_url(&e)))
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            GraphError::Token(format!("token answer unreadable: {}", without_url(&e)))
        })?;
        if !status.is_success() {
            let why = serde_json::from_slice::<TokenErrorResponse>(&body)
                .map(|e| {
                    format!(
                        "{} {} (AADSTS {:?}, correlation_id {})",
                        status.as_u16(),
                        e.error.unwrap_or_default(),
                        e.error_codes,
                        e.correlation_id.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|_| format!("{}", status.as_u16()));
            return Err(GraphError::Token(format!("token endpoint refused: {why}")));
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| GraphError::Token("token answer is not JSON".into()))?;
        let mut header = HeaderValue::try_from(format!("Bearer {}", token.access_token))
            .map_err(|_| GraphError::Token("token is not a valid header value".into()))?;
        header.set_sensitive(true);
        let life = Duration::from_secs(token.expires_in);
        let ahead = REFRESH_AHEAD.min(life / 2);
        Ok(Cached {
            header,
            refresh_at: Instant::now() + life.saturating_sub(ahead),
        })
    }
}

/// reqwest errors print the URL; the token URL names the tenant, so keep
/// only the kind of failure.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}
