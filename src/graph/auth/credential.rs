//! The gateway's identity in Entra ID: an app registration (tenant and
//! client id) and one way of proving it.

use super::certificate::ClientCertificate;
use super::error::{TokenError, TokenErrorKind};
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use url::Url;

/// Everything a token request needs.
#[derive(Debug, Clone)]
pub struct Credential {
    /// e.g. `https://login.microsoftonline.com`.
    pub authority_host: Url,
    pub tenant_id: String,
    pub client_id: String,
    /// `https://{graph host}/.default`: tokens are per cloud.
    pub scope: String,
    pub kind: CredentialKind,
}

/// How the app proves who it is.
#[derive(Debug, Clone)]
pub enum CredentialKind {
    /// `AZURE_CLIENT_SECRET`: a client secret.
    ClientSecret(Secret),
    /// `AZURE_CLIENT_SECRET_FILE`: a file holding the client secret (a
    /// mounted Kubernetes secret), read for every token request so a
    /// rotated secret needs no restart.
    ClientSecretFile(PathBuf),
    /// `AZURE_CLIENT_CERTIFICATE_PATH`: a PEM file with the RSA private key
    /// and its certificate, read for every token request.
    Certificate(PathBuf),
    /// `AZURE_FEDERATED_TOKEN_FILE`: a federated token (e.g. a Kubernetes
    /// service-account token for workload identity), read fresh for every
    /// token request because it rotates.
    FederatedTokenFile(PathBuf),
}

/// What the token request carries to prove the identity.
pub(crate) enum ClientAuth {
    Secret(Secret),
    Assertion(Secret),
}

impl Credential {
    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host.as_str().trim_end_matches('/'),
            self.tenant_id
        )
    }

    /// Reads the credential's file now, as a token request would: for
    /// failing at start rather than at the first call.
    pub fn check(&self) -> Result<(), String> {
        self.kind.check()
    }

    /// The secret or assertion for one token request, reading files afresh.
    pub(crate) async fn client_auth(&self, token_url: &str) -> Result<ClientAuth, TokenError> {
        let path = match &self.kind {
            CredentialKind::ClientSecret(s) => return Ok(ClientAuth::Secret(s.clone())),
            CredentialKind::ClientSecretFile(p)
            | CredentialKind::Certificate(p)
            | CredentialKind::FederatedTokenFile(p) => p.clone(),
        };
        let var = self.kind.variable();
        let bytes = tokio::fs::read(&path)
            .await
            // A rotation swaps the file under us: worth another try.
            .map_err(|e| {
                TokenError::local(
                    TokenErrorKind::Transient,
                    format!("{var} {}", unreadable(&path, &e)),
                )
            })?;
        let bad = |why: String| {
            TokenError::local(
                TokenErrorKind::BadCredentials,
                format!("{var} {}: {why}", path.display()),
            )
        };
        match &self.kind {
            CredentialKind::Certificate(_) => {
                let cert = ClientCertificate::from_pem(&bytes).map_err(bad)?;
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let jwt = cert
                    .assertion(token_url, &self.client_id, now)
                    .map_err(bad)?;
                Ok(ClientAuth::Assertion(jwt))
            }
            kind => {
                let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".into()))?;
                let value = Secret::new(text.trim());
                if value.is_empty() {
                    return Err(bad("is empty".into()));
                }
                Ok(match kind {
                    CredentialKind::FederatedTokenFile(_) => ClientAuth::Assertion(value),
                    _ => ClientAuth::Secret(value),
                })
            }
        }
    }
}

impl CredentialKind {
    /// Reads the credential's file now, as a token request would; the error
    /// names the file and why, never its contents.
    pub fn check(&self) -> Result<(), String> {
        match self {
            CredentialKind::ClientSecret(s) if s.expose().trim().is_empty() => {
                Err("is empty".into())
            }
            CredentialKind::ClientSecret(_) => Ok(()),
            CredentialKind::ClientSecretFile(path) | CredentialKind::FederatedTokenFile(path) => {
                read_text(path).map(drop)
            }
            CredentialKind::Certificate(path) => {
                let pem = std::fs::read(path).map_err(|e| unreadable(path, &e))?;
                let cert = ClientCertificate::from_pem(&pem)
                    .map_err(|why| format!("{}: {why}", path.display()))?;
                tracing::debug!(
                    x5t_s256 = cert.thumbprint_sha256(),
                    "client certificate loaded"
                );
                Ok(())
            }
        }
    }

    /// The environment variable that selects this kind.
    pub fn variable(&self) -> &'static str {
        match self {
            Self::ClientSecret(_) => "AZURE_CLIENT_SECRET",
            Self::ClientSecretFile(_) => "AZURE_CLIENT_SECRET_FILE",
            Self::Certificate(_) => "AZURE_CLIENT_CERTIFICATE_PATH",
            Self::FederatedTokenFile(_) => "AZURE_FEDERATED_TOKEN_FILE",
        }
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClientSecret(_) => "client_secret",
            Self::ClientSecretFile(_) => "client_secret_file",
            Self::Certificate(_) => "client_certificate",
            Self::FederatedTokenFile(_) => "workload_identity",
        }
    }
}

/// A small text file's trimmed contents, or why not (never the contents).
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| unreadable(path, &e))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: is not UTF-8 text", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{}: is empty", path.display()));
    }
    Ok(text.to_owned())
}

fn unreadable(path: &Path, e: &std::io::Error) -> String {
    format!("{}: cannot be read ({})", path.display(), io_reason(e))
}

/// The kind of I/O failure, without the OS message's extra detail.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        kind => kind.to_string(),
    }
}
