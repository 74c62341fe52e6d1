//! Access tokens for Graph from Microsoft Entra ID: OAuth 2.0 client
//! credentials with a client secret (or a file holding one), a certificate
//! (a signed client assertion) or a federated token (workload identity).
//!
//! Ours, not `azure_identity`'s: it refuses `http://` authorities (no loopback token endpoint in tests), reads certificates only as PKCS#12 through OpenSSL, re-reads the federated token file only every 10 min, and adds ~30 crates (a second reqwest, aws-lc, OpenSSL).

mod cache;
mod certificate;
mod cloud;
mod credential;
mod error;
mod request;

#[cfg(test)]
mod redaction;

pub use cache::{Clock, SystemClock, TokenCache, TokenHealth};
pub use cloud::Cloud;
pub use credential::{Credential, CredentialKind};
pub use error::{TokenError, TokenErrorKind};
