//! One request for the issuer's key set: bounded in time and size, so a slow
//! or hostile endpoint cannot stall verification or exhaust memory.

use super::keys::KeySet;
use crate::graph::body::{read_limited, BodyError};
use crate::graph::{is_loopback, transport_failure};
use std::time::Duration;
use url::Url;

/// Largest key set accepted. Entra ID's is about 10 KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Longest a key set request may take, body included.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// `https://`, or `http://` for a loopback host; no credentials, no fragment.
pub(super) fn check_url(url: &Url) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err("the JWKS URL must not carry credentials or a fragment".to_owned());
    }
    let scheme_ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(url),
        _ => false,
    };
    if !scheme_ok {
        return Err(format!(
            "the JWKS URL must be https:// (http:// only for a loopback host): {url}"
        ));
    }
    Ok(())
}

/// Fetches and reads the key set. The error says what failed, never quoting
/// the answer.
pub(super) async fn download(http: &reqwest::Client, url: &Url) -> Result<KeySet, String> {
    check_url(url)?;
    let failed = |what: String| format!("GET {url}: {what}");
    let response = http
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .timeout(JWKS_TIMEOUT)
        .send()
        .await
        .map_err(|e| failed(transport_failure(&e).to_owned()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("HTTP {}", status.as_u16())));
    }
    let body = match read_limited(response, MAX_JWKS_BYTES as u64).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return Err(failed(format!(
                "the answer is larger than {MAX_JWKS_BYTES} bytes"
            )))
        }
        Err(BodyError::Broken(e)) => return Err(failed(transport_failure(&e).to_owned())),
    };
    KeySet::parse(&body).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback() {
        for ok in [
            "https://login.microsoftonline.com/common/discovery/v2.0/keys",
            "http://127.0.0.1:8080/keys",
            "http://[::1]:1/keys",
            "http://localhost/keys",
        ] {
            assert_eq!(check_url(&Url::parse(ok).unwrap()), Ok(()), "{ok}");
        }
        for bad in [
            "http://login.microsoftonline.com/keys",
            "http://10.0.0.1/keys",
            "ftp://127.0.0.1/keys",
            "https://user:pw@issuer.example/keys",
            "http://user:pw@10.0.0.1/keys",
            "https://issuer.example/keys#frag",
            "file:///etc/keys.json",
        ] {
            let e = check_url(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(!e.contains("pw@"), "{e}");
        }
    }
}
