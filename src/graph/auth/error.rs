//! Why no token could be had, read from Entra ID's answer, without the
//! secret, assertion or token that went into or came out of the request.

use serde::Deserialize;
use std::fmt;

/// What a failed token request means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenErrorKind {
    /// Worth retrying: no connection, a timeout, 5xx, 429, an unreadable
    /// token file mid-rotation.
    Transient,
    /// The credential is wrong, expired or names an app or tenant that does
    /// not exist (or is disabled): no retry helps until it is fixed.
    BadCredentials,
    /// Entra ID understood the request and refused it (403).
    Forbidden,
}

impl TokenErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::BadCredentials => "bad_credentials",
            Self::Forbidden => "forbidden",
        }
    }
}

/// A failed attempt to get an access token.
///
/// Carries only what is safe to log and to show a caller: the HTTP status,
/// the OAuth `error`, the first AADSTS code, `trace_id` and `correlation_id`
/// (which Microsoft support asks for), and a fixed description of what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    kind: TokenErrorKind,
    what: String,
    status: Option<u16>,
    error: Option<String>,
    aadsts: Option<u32>,
    correlation_id: Option<String>,
    trace_id: Option<String>,
}

/// Entra ID's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// AADSTS codes that mean the app registration or tenant is wrong, whatever
/// the status: application disabled, not found in the directory, tenant
/// not found, tenant identifier invalid.
const MISCONFIGURED: [u32; 4] = [7000112, 700016, 90002, 900023];

impl TokenError {
    /// No answer: connection refused, reset, DNS, TLS.
    pub(crate) fn unreachable(why: &str) -> Self {
        Self::local(
            TokenErrorKind::Transient,
            format!("token endpoint unreachable: {why}"),
        )
    }

    /// A failure on this side, before or after the exchange.
    pub(crate) fn local(kind: TokenErrorKind, what: impl Into<String>) -> Self {
        Self {
            kind,
            what: what.into(),
            status: None,
            error: None,
            aadsts: None,
            correlation_id: None,
            trace_id: None,
        }
    }

    /// Reads a non-success answer of the token endpoint. The body need not
    /// be JSON (a proxy may answer HTML or nothing).
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let (error, aadsts, trace_id, correlation_id) = match parsed {
            Some(b) => {
                let aadsts = b
                    .error_codes
                    .first()
                    .and_then(|c| u32::try_from(*c).ok())
                    .or_else(|| b.error_description.as_deref().and_then(first_aadsts));
                (
                    b.error.filter(|e| is_code(e)),
                    aadsts,
                    b.trace_id.filter(|id| is_id(id)),
                    b.correlation_id.filter(|id| is_id(id)),
                )
            }
            None => (None, None, None, None),
        };
        let kind = classify(status, error.as_deref(), aadsts);
        Self {
            kind,
            what: format!("Entra ID answered {status}"),
            status: Some(status),
            error,
            aadsts,
            correlation_id,
            trace_id,
        }
    }

    pub fn kind(&self) -> TokenErrorKind {
        self.kind
    }

    /// The token endpoint's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The OAuth `error`, e.g. `invalid_client`.
    pub fn error_code(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The first AADSTS code, e.g. `7000215` for an invalid client secret.
    pub fn aadsts(&self) -> Option<u32> {
        self.aadsts
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }
}

fn classify(status: u16, error: Option<&str>, aadsts: Option<u32>) -> TokenErrorKind {
    match status {
        408 | 429 | 500..=599 => TokenErrorKind::Transient,
        _ if aadsts.is_some_and(|c| MISCONFIGURED.contains(&c)) => TokenErrorKind::BadCredentials,
        _ if error == Some("temporarily_unavailable") => TokenErrorKind::Transient,
        403 => TokenErrorKind::Forbidden,
        // invalid_client, unauthorized_client, invalid_grant, invalid_request,
        // invalid_scope...: nothing changes until the configuration does.
        400..=499 => TokenErrorKind::BadCredentials,
        // A redirect (not followed) or a success without a token.
        _ => TokenErrorKind::Transient,
    }
}

/// `AADSTS7000215: Invalid client secret provided...` -> 7000215.
fn first_aadsts(description: &str) -> Option<u32> {
    let at = description.find("AADSTS")? + "AADSTS".len();
    let digits: String = description[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// An OAuth error code: short, lowercase letters and underscores. Anything
/// else is dropped rather than echoed.
fn is_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// A trace or correlation id: a GUID.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// What a few AADSTS codes mean, for operators reading the log.
fn aadsts_meaning(code: u32) -> Option<&'static str> {
    Some(match code {
        7000215 => "invalid client secret",
        7000222 => "client secret expired",
        7000112 => "application is disabled",
        700016 => "application not found in the tenant",
        90002 => "tenant not found",
        900023 => "tenant identifier is not valid",
        700027 => "client assertion signature not valid, or certificate not registered on the app",
        700024 => "client assertion is outside its valid time range",
        70021 => "no federated identity credential on the app matches the token",
        700211 => "no federated identity credential matches the token's issuer",
        70011 => "scope not valid",
        500011 => "resource not found in the tenant (check GRAPH_CLOUD)",
        _ => return None,
    })
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(error) = &self.error {
            write!(f, " {error}")?;
        }
        if let Some(code) = self.aadsts {
            write!(f, " AADSTS{code}")?;
            if let Some(meaning) = aadsts_meaning(code) {
                write!(f, " ({meaning})")?;
            }
        }
        if let Some(id) = &self.trace_id {
            write!(f, " trace_id={id}")?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " correlation_id={id}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TokenError {}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenErrorKind::*;

    const TRACE: &str = "0a1b2c3d-0000-4000-8000-00000000aaaa";
    const CORRELATION: &str = "5e6f7a8b-0000-4000-8000-00000000bbbb";

    fn entra(error: &str, code: u64, description: &str) -> Vec<u8> {
        serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {TRACE} Correlation ID: {CORRELATION} Timestamp: 2024-05-01 10:00:00Z"),
            "error_codes": [code],
            "timestamp": "2024-05-01 10:00:00Z",
            "trace_id": TRACE,
            "correlation_id": CORRELATION,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn entra_error_bodies_are_classified() {
        let cases: &[(u16, &str, u64, &str, TokenErrorKind)] = &[
            (401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app 'app'.", BadCredentials),
            (401, "invalid_client", 7000222, "The provided client secret keys for app 'app' are expired.", BadCredentials),
            (400, "unauthorized_client", 700016, "Application with identifier 'app' was not found in the directory 'contoso'.", BadCredentials),
            (400, "unauthorized_client", 7000112, "Application 'app'(name) is disabled.", BadCredentials),
            (400, "invalid_request", 90002, "Tenant 'contoso' not found. Check to make sure you have the correct tenant ID.", BadCredentials),
            (400, "invalid_request", 900023, "Specified tenant identifier 'x' is neither a valid DirectoryName nor a valid external domain.", BadCredentials),
            (400, "invalid_grant", 70021, "No matching federated identity record found for presented assertion.", BadCredentials),
            (401, "invalid_client", 700027, "Client assertion contains an invalid signature.", BadCredentials),
            (400, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter.", BadCredentials),
            (403, "access_denied", 7000218, "The request was denied.", Forbidden),
            (403, "unauthorized_client", 700016, "Application not found.", BadCredentials),
            (429, "temporarily_unavailable", 50196, "The server terminated an operation because it encountered a client request loop.", Transient),
            (503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.", Transient),
            (500, "server_error", 50000, "There was an error issuing a token.", Transient),
        ];
        for (status, error, code, description, kind) in cases {
            let e = TokenError::from_response(*status, &entra(error, *code, description));
            assert_eq!(e.kind(), *kind, "{status} {error} {code}");
            assert_eq!(e.status(), Some(*status));
            assert_eq!(e.error_code(), Some(*error));
            assert_eq!(e.aadsts(), Some(*code as u32));
            assert_eq!(e.trace_id(), Some(TRACE));
            assert_eq!(e.correlation_id(), Some(CORRELATION));
            let text = e.to_string();
            assert!(
                text.contains(&format!("AADSTS{code}")) && text.contains(CORRELATION),
                "{text}"
            );
            // The description names the app and tenant: it is not repeated.
            assert!(
                !text.contains("'app'") && !text.contains("contoso"),
                "{text}"
            );
        }
    }

    #[test]
    fn aadsts_is_read_from_the_description_without_error_codes() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let e = TokenError::from_response(401, body);
        assert_eq!(e.aadsts(), Some(7000215));
        assert_eq!(
            e.to_string(),
            "Entra ID answered 401 invalid_client AADSTS7000215 (invalid client secret)"
        );
    }

    #[test]
    fn non_json_answers_classify_by_status() {
        for (status, body, kind) in [
            (502, &b"<html>Bad Gateway</html>"[..], Transient),
            (504, b"", Transient),
            (408, b"", Transient),
            (401, b"", BadCredentials),
            (400, b"<html>Bad Request</html>", BadCredentials),
            (403, b"Forbidden", Forbidden),
            (302, b"", Transient),
        ] {
            let e = TokenError::from_response(status, body);
            assert_eq!(e.kind(), kind, "{status}");
            assert_eq!(e.to_string(), format!("Entra ID answered {status}"));
        }
    }

    #[test]
    fn odd_fields_are_dropped_not_echoed() {
        let body = br#"{"error":"client_secret=hunter2","trace_id":"<script>","correlation_id":"hunter2 hunter2","error_codes":[99999999999]}"#;
        let e = TokenError::from_response(400, body);
        assert_eq!(
            (e.error_code(), e.trace_id(), e.correlation_id(), e.aadsts()),
            (None, None, None, None)
        );
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }
}
