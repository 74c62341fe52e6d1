//! Microsoft Entra ID's v2 token endpoint (client credentials only) and the
//! bearer check Graph routes make when [`EmulatorOptions::require_auth`] is
//! on.
//!
//! Issued access tokens are opaque random strings remembered with their
//! tenant and expiry. Client assertions are decoded and checked for shape
//! and lifetime, never for their signature.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE,
};
use axum::http::StatusCode;
use axum::response::Response;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::datetime;
use super::error::GraphError;
use super::faults::{ErrorDialect, FaultBody, ScriptedFault};
use super::options::EmulatorOptions;
use super::reply::{self, RequestIds, CLIENT_REQUEST_ID};
use super::Emulator;

/// The only grant the endpoint serves.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Most token requests kept in the log (the count goes on).
pub const TOKEN_LOG_CAPACITY: usize = 10_000;
/// Issued tokens kept before expired ones are forgotten.
const TOKEN_PRUNE_THRESHOLD: usize = 10_000;
/// Clock skew Entra tolerates on an assertion's `nbf`.
const NBF_SKEW_SECS: i64 = 300;
/// Graph's application id, as its `WWW-Authenticate` names it.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

const X_MS_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");

/// How a token request proved the client's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Secret,
    Assertion,
}

/// One request to the token endpoint, as the emulator understood it. The
/// client secret itself is never kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenRequestRecord {
    /// The `{tenant}` path segment.
    pub tenant: String,
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    /// `Assertion` when a `client_assertion` was sent, else `Secret` when a
    /// non-empty `client_secret` was, else `None`.
    pub credential: Option<CredentialKind>,
    pub secret_present: bool,
    pub client_assertion_type: Option<String>,
    /// The assertion's decoded JOSE header (`alg`, `typ`, `x5t#S256`...),
    /// when it decodes.
    pub assertion_header: Option<Value>,
    /// The assertion's decoded claims (`aud`, `iss`, `sub`, `exp`...), when
    /// they decode.
    pub assertion_claims: Option<Value>,
    /// HTTP status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The AADSTS code of a refusal by the endpoint's own checks.
    pub error_code: Option<u32>,
    /// Whether an access token was issued (even if the answer was then cut
    /// or dropped by a scripted fault).
    pub issued: bool,
}

struct IssuedToken {
    tenant: String,
    /// The `client_id` it was issued to: the app Intune's limits meter.
    client_id: String,
    /// `None` when the lifetime does not fit in an `Instant`: never expires.
    expires_at: Option<Instant>,
}

/// What a Graph request's `Authorization` header amounts to.
#[derive(Debug, PartialEq, Eq)]
pub enum Bearer {
    Missing,
    Unknown,
    Expired { tenant: String, client_id: String },
    Valid { tenant: String, client_id: String },
}

impl Bearer {
    /// The tenant to meter the request under.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Bearer::Expired { tenant, .. } | Bearer::Valid { tenant, .. } => Some(tenant),
            Bearer::Missing | Bearer::Unknown => None,
        }
    }

    /// The app (client id) to meter the request under.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Bearer::Expired { client_id, .. } | Bearer::Valid { client_id, .. } => Some(client_id),
            Bearer::Missing | Bearer::Unknown => None,
        }
    }

    /// Graph's 401 for a bearer that is not valid, if it is not.
    pub fn refusal(&self, ids: &RequestIds, host: &str) -> Option<Response> {
        let (message, token_sent) = match self {
            Bearer::Valid { .. } => return None,
            Bearer::Missing => ("Access token is empty.", false),
            Bearer::Unknown => ("Access token validation failure. Invalid audience.", true),
            Bearer::Expired { .. } => ("Lifetime validation failed, the token is expired.", true),
        };
        let error = GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        let mut response = ids.error(&error);
        let mut challenge = format!(
            "Bearer realm=\"\", authorization_uri=\"http://{host}/common/oauth2/authorize\", \
             client_id=\"{GRAPH_APP_ID}\""
        );
        if token_sent {
            challenge.push_str(", error=\"invalid_token\"");
        }
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        Some(response)
    }
}

/// Token-endpoint state: issued tokens, the request log and count, and the
/// scripted token faults.
#[derive(Default)]
pub struct AuthState {
    tokens: HashMap<String, IssuedToken>,
    log: VecDeque<TokenRequestRecord>,
    count: u64,
    faults: VecDeque<ScriptedFault>,
}

impl AuthState {
    /// Checks an `Authorization` header against the issued tokens.
    pub fn bearer(&self, header: Option<&HeaderValue>, now: Instant) -> Bearer {
        let Some(token) = header.and_then(|v| v.to_str().ok()).and_then(bearer_token) else {
            return Bearer::Missing;
        };
        match self.tokens.get(token) {
            None => Bearer::Unknown,
            Some(issued) if issued.expires_at.is_some_and(|at| now >= at) => Bearer::Expired {
                tenant: issued.tenant.clone(),
                client_id: issued.client_id.clone(),
            },
            Some(issued) => Bearer::Valid {
                tenant: issued.tenant.clone(),
                client_id: issued.client_id.clone(),
            },
        }
    }

    fn issue(&mut self, tenant: &str, client_id: &str, lifetime: Duration, now: Instant) -> String {
        if self.tokens.len() >= TOKEN_PRUNE_THRESHOLD {
            self.tokens
                .retain(|_, t| t.expires_at.is_none_or(|at| now < at));
        }
        let mut raw = [0_u8; 32];
        raw[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        raw[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let token = URL_SAFE_NO_PAD.encode(raw);
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                expires_at: now.checked_add(lifetime),
            },
        );
        token
    }

    /// Every access token issued and still held, so that a test can look
    /// for them where they must not appear (the request log keeps none).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens.keys().cloned().collect()
    }

    /// Every issued token expires at `now`.
    pub fn expire_all(&mut self, now: Instant) {
        for token in self.tokens.values_mut() {
            token.expires_at = Some(now);
        }
    }

    /// Counts a token request and hands it the next scripted token fault.
    fn admit(&mut self) -> Option<ScriptedFault> {
        self.count += 1;
        self.faults.pop_front()
    }

    fn log(&mut self, record: TokenRequestRecord) {
        if self.log.len() >= TOKEN_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(record);
    }

    pub fn push_faults(&mut self, faults: impl IntoIterator<Item = ScriptedFault>) {
        self.faults.extend(faults);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }

    pub fn requests(&self) -> Vec<TokenRequestRecord> {
        self.log.iter().cloned().collect()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Forgets requests, count and faults; issued tokens stay valid.
    pub fn reset(&mut self) {
        self.log.clear();
        self.count = 0;
        self.faults.clear();
    }
}

/// The token in `Bearer <token>` (scheme case-insensitive), if non-empty.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Ids of one token-endpoint answer.
pub struct EntraIds {
    trace_id: String,
    /// The client's `client-request-id` when it is a GUID (as MSAL sends),
    /// else a fresh one.
    correlation_id: String,
}

impl EntraIds {
    fn new(headers: &HeaderMap) -> Self {
        let correlation_id = headers
            .get(CLIENT_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v.trim()).ok())
            .unwrap_or_else(Uuid::new_v4);
        EntraIds {
            trace_id: Uuid::new_v4().to_string(),
            correlation_id: correlation_id.to_string(),
        }
    }

    fn stamp(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.trace_id) {
            headers.insert(X_MS_REQUEST_ID, value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.correlation_id) {
            headers.insert(CLIENT_REQUEST_ID, value);
        }
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache"),
        );
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    }

    /// Entra's error body.
    fn error_bytes(&self, error: &str, code: u32, description: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: String,
            error_codes: [u32; 1],
            timestamp: &'a str,
            trace_id: &'a str,
            correlation_id: &'a str,
            error_uri: String,
        }
        let timestamp = datetime::now_entra_timestamp();
        let body = Body {
            error,
            error_description: format!(
                "AADSTS{code}: {description}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}",
                self.trace_id, self.correlation_id
            ),
            error_codes: [code],
            timestamp: &timestamp,
            trace_id: &self.trace_id,
            correlation_id: &self.correlation_id,
            error_uri: format!("https://login.microsoftonline.com/error?code={code}"),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Content type of every token-endpoint JSON answer.
const ENTRA_JSON: &str = "application/json; charset=utf-8";

impl ErrorDialect for EntraIds {
    /// A scripted fault's error: `code` is the OAuth `error`; a `message`
    /// starting `AADSTSnnn: ` supplies the code number.
    fn error_body(
        &self,
        status: u16,
        code: Option<&str>,
        message: Option<&str>,
    ) -> (&'static str, Vec<u8>) {
        let (default_error, default_code, default_text) = match status {
            401 => (
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. (scripted by the Graph emulator)",
            ),
            429 | 500..=599 => (
                "temporarily_unavailable",
                90_033,
                "A transient error has occurred. Please try again. (scripted by the Graph emulator)",
            ),
            _ => (
                "invalid_request",
                9_002_313,
                "Invalid request. Request is malformed or invalid. (scripted by the Graph emulator)",
            ),
        };
        let (number, text) = match message {
            Some(message) => split_aadsts(message).unwrap_or((default_code, message)),
            None => (default_code, default_text),
        };
        let body = self.error_bytes(code.unwrap_or(default_error), number, text);
        (ENTRA_JSON, body)
    }
}

/// `("AADSTS70011: text")` -> `(70011, "text")`.
fn split_aadsts(message: &str) -> Option<(u32, &str)> {
    let rest = message.strip_prefix("AADSTS")?;
    let (number, text) = rest.split_once(':')?;
    Some((number.parse().ok()?, text.trim_start()))
}

/// A refusal by the endpoint's own checks.
#[derive(Debug, PartialEq, Eq)]
struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl EntraError {
    fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    fn missing(parameter: &str) -> Self {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn malformed() -> Self {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9_002_313,
            "Invalid request. Request is malformed or invalid.",
        )
    }

    fn invalid_assertion(problem: &str) -> Self {
        EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_027,
            format!("Client assertion failed validation: {problem}."),
        )
    }

    fn respond(&self, ids: &EntraIds) -> Response {
        let body = ids.error_bytes(self.error, self.code, &self.description);
        reply::with_body(self.status, ENTRA_JSON, body)
    }
}

/// The form fields of a token request; `duplicate` names the first
/// parameter sent twice.
struct TokenForm {
    fields: HashMap<String, String>,
    duplicate: Option<String>,
}

impl TokenForm {
    fn parse(body: &[u8]) -> Self {
        let mut fields = HashMap::new();
        let mut duplicate = None;
        for (key, value) in form_urlencoded::parse(body) {
            if fields.contains_key(key.as_ref()) {
                duplicate.get_or_insert_with(|| key.clone().into_owned());
                continue;
            }
            fields.insert(key.into_owned(), value.into_owned());
        }
        TokenForm { fields, duplicate }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A field that is present and not blank.
    fn filled(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }
}

/// A client assertion split into its decoded parts.
struct Jwt {
    header: Value,
    claims: Value,
}

/// Base64url with or without padding, as JWT producers differ.
const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_jwt(assertion: &str) -> Result<Jwt, String> {
    let parts: Vec<&str> = assertion.trim().split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(format!(
            "a JWT has 3 dot-separated parts, this one has {}",
            parts.len()
        ));
    };
    let object = |part: &str, name: &str| -> Result<Value, String> {
        let bytes = JWT_BASE64
            .decode(part)
            .map_err(|e| format!("the {name} is not base64url: {e}"))?;
        match serde_json::from_slice(&bytes) {
            Ok(value @ Value::Object(_)) => Ok(value),
            Ok(_) => Err(format!("the {name} is not a JSON object")),
            Err(e) => Err(format!("the {name} is not JSON: {e}")),
        }
    };
    let header = object(header, "header")?;
    let claims = object(claims, "payload")?;
    if signature.is_empty() || JWT_BASE64.decode(signature).is_err() {
        return Err("the signature part is empty or not base64url".into());
    }
    Ok(Jwt { header, claims })
}

/// A NumericDate claim as whole seconds.
fn numeric_date(claims: &Value, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| format!("the '{name}' claim is not a NumericDate")),
    }
}

/// Shape and lifetime checks of a decoded assertion at `now` (Unix seconds).
fn check_assertion(jwt: &Jwt, now: i64) -> Result<(), EntraError> {
    for claim in ["aud", "iss", "sub"] {
        let present = match jwt.claims.get(claim) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(items)) => claim == "aud" && !items.is_empty(),
            _ => false,
        };
        if !present {
            return Err(EntraError::invalid_assertion(&format!(
                "the '{claim}' claim is missing"
            )));
        }
    }
    let exp = numeric_date(&jwt.claims, "exp").map_err(|p| EntraError::invalid_assertion(&p))?;
    let Some(exp) = exp else {
        return Err(EntraError::invalid_assertion("the 'exp' claim is missing"));
    };
    let nbf = numeric_date(&jwt.claims, "nbf").map_err(|p| EntraError::invalid_assertion(&p))?;
    let not_yet = nbf.is_some_and(|nbf| nbf > now.saturating_add(NBF_SKEW_SECS));
    if exp <= now || not_yet {
        let from = nbf
            .or(numeric_date(&jwt.claims, "iat").ok().flatten())
            .map_or_else(|| "(not given)".to_owned(), datetime::entra_instant);
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, \
                 assertion valid from {from}, expiry time of assertion {}. Review the \
                 documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                datetime::entra_instant(now),
                datetime::entra_instant(exp)
            ),
        ));
    }
    Ok(())
}

/// Everything the endpoint checks, in Entra's order, before issuing.
fn validate(
    form: &TokenForm,
    jwt: Option<&Result<Jwt, String>>,
    options: &EmulatorOptions,
    now: i64,
) -> Result<(), EntraError> {
    if let Some(name) = &form.duplicate {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            9_000_411,
            format!("The request is not properly formatted. The parameter '{name}' is duplicated."),
        ));
    }
    let grant = form
        .filled("grant_type")
        .ok_or_else(|| EntraError::missing("grant_type"))?;
    if grant != CLIENT_CREDENTIALS {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let client_id = form
        .filled("client_id")
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let scope = form
        .filled("scope")
        .ok_or_else(|| EntraError::missing("scope"))?;
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if !matches!(scopes.as_slice(), [one] if one.ends_with("/.default") && one.len() > "/.default".len())
    {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70_011,
            format!(
                "The provided request must include a 'scope' input parameter. The provided value \
                 for the input parameter 'scope' is not valid. The scope {scope} is not valid. \
                 Client credential flows must have a single scope value with /.default suffixed \
                 to the resource identifier."
            ),
        ));
    }
    let secret = form.filled("client_secret");
    match (secret, jwt) {
        (Some(_), Some(_)) => Err(EntraError::malformed()),
        (None, None) => Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_216,
            "'client_assertion', 'client_secret' or 'request' is required for the \
             'client_credentials' grant type.",
        )),
        (Some(secret), None) => {
            if options.rejected_client_secrets.iter().any(|s| s == secret) {
                Err(EntraError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the \
                         request is the client secret value, not the client secret ID, for a \
                         secret added to app '{client_id}'."
                    ),
                ))
            } else {
                Ok(())
            }
        }
        (None, Some(jwt)) => {
            match form.filled("client_assertion_type") {
                None => return Err(EntraError::missing("client_assertion_type")),
                Some(kind) if kind != JWT_BEARER => return Err(EntraError::malformed()),
                Some(_) => {}
            }
            let jwt = jwt.as_ref().map_err(|p| EntraError::invalid_assertion(p))?;
            check_assertion(jwt, now)
        }
    }
}

/// Entra's success body, in its key order.
fn token_body(token: &str, lifetime: Duration) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        token_type: &'a str,
        expires_in: u64,
        ext_expires_in: u64,
        access_token: &'a str,
    }
    let secs = lifetime.as_secs();
    serde_json::to_vec(&Body {
        token_type: "Bearer",
        expires_in: secs,
        ext_expires_in: secs,
        access_token: token,
    })
    .unwrap_or_default()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token_endpoint(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ids = EntraIds::new(&headers);
    let form = TokenForm::parse(&body);
    let jwt = form.filled("client_assertion").map(decode_jwt);
    let (header, claims) = match &jwt {
        Some(Ok(jwt)) => (Some(jwt.header.clone()), Some(jwt.claims.clone())),
        _ => (None, None),
    };
    let secret_present = form.filled("client_secret").is_some();
    let mut record = TokenRequestRecord {
        tenant: tenant.clone(),
        grant_type: form.get("grant_type").map(str::to_owned),
        client_id: form.get("client_id").map(str::to_owned),
        scope: form.get("scope").map(str::to_owned),
        credential: if jwt.is_some() {
            Some(CredentialKind::Assertion)
        } else if secret_present {
            Some(CredentialKind::Secret)
        } else {
            None
        },
        secret_present,
        client_assertion_type: form.get("client_assertion_type").map(str::to_owned),
        assertion_header: header,
        assertion_claims: claims,
        status: None,
        error_code: None,
        issued: false,
    };
    let scripted = emulator.auth().admit();
    let options = emulator.current_options();
    let delay = scripted
        .as_ref()
        .map_or(Duration::ZERO, ScriptedFault::delay);
    let fault = scripted.map(|s| s.fault);
    let mut response = match &fault {
        Some(fault) if !fault.body.applies() => fault.respond_in(&ids),
        _ => {
            let real = match validate(&form, jwt.as_ref(), &options, datetime::now_unix()) {
                Ok(()) => {
                    let lifetime = options.token_lifetime;
                    // `validate` made sure it is there.
                    let client_id = form.filled("client_id").unwrap_or_default();
                    let token = emulator
                        .auth()
                        .issue(&tenant, client_id, lifetime, Instant::now());
                    record.issued = true;
                    reply::with_body(StatusCode::OK, ENTRA_JSON, token_body(&token, lifetime))
                }
                Err(error) => {
                    record.error_code = Some(error.code);
                    error.respond(&ids)
                }
            };
            match &fault {
                Some(fault) => fault.finish_in(real, &ids).await,
                None => real,
            }
        }
    };
    let dropped = fault.as_ref().is_some_and(|f| {
        matches!(
            f.body,
            FaultBody::DropConnection | FaultBody::DropAfterApply
        )
    });
    record.status = (!dropped).then(|| response.status().as_u16());
    emulator.auth().log(record);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    ids.stamp(&mut response);
    response
}

/// The `Authorization` header of a request, for [`AuthState::bearer`].
pub fn authorization(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(AUTHORIZATION)
}

/// A JSON summary of the token log for the control route.
pub fn token_requests_json(emulator: &Emulator) -> Value {
    let auth = emulator.auth();
    json!({"count": auth.count(), "requests": auth.requests()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
    }

    fn jwt(claims: &Value) -> String {
        format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "PS256", "typ": "JWT"})),
            b64(claims)
        )
    }

    #[test]
    fn decodes_and_checks_assertions() {
        let now = 1_700_000_000;
        let good = json!({"aud": "a", "iss": "i", "sub": "s", "exp": now + 600});
        let decoded = decode_jwt(&jwt(&good)).expect("decodes");
        assert_eq!(decoded.header["alg"], "PS256");
        assert_eq!(check_assertion(&decoded, now), Ok(()));

        let expired = decode_jwt(&jwt(
            &json!({"aud": "a", "iss": "i", "sub": "s", "exp": now}),
        ))
        .expect("decodes");
        assert_eq!(
            check_assertion(&expired, now).map_err(|e| e.code),
            Err(700_024)
        );
        let early = decode_jwt(&jwt(
            &json!({"aud": "a", "iss": "i", "sub": "s", "exp": now + 9000, "nbf": now + 4000}),
        ))
        .expect("decodes");
        assert_eq!(
            check_assertion(&early, now).map_err(|e| e.code),
            Err(700_024)
        );
        let no_sub =
            decode_jwt(&jwt(&json!({"aud": ["a"], "iss": "i", "exp": now + 60}))).expect("decodes");
        assert_eq!(
            check_assertion(&no_sub, now).map_err(|e| e.code),
            Err(700_027)
        );

        for bad in [
            "a.b",
            "a.b.c.d",
            "!!.e30.c2ln",
            "e30.bm90IGpzb24.c2ln",
            "e30.e30.",
            "W10.e30.c2ln",
        ] {
            assert!(decode_jwt(bad).is_err(), "{bad}");
        }
        assert!(decode_jwt("e30=.e30.c2ln").is_ok(), "padding tolerated");
    }

    #[test]
    fn bearer_tokens_and_expiry() {
        let mut auth = AuthState::default();
        let now = Instant::now();
        let token = auth.issue("t1", "app1", Duration::from_secs(60), now);
        let header = HeaderValue::from_str(&format!("bearer {token}")).expect("header");
        assert_eq!(
            auth.bearer(Some(&header), now),
            Bearer::Valid {
                tenant: "t1".into(),
                client_id: "app1".into()
            }
        );
        assert_eq!(
            auth.bearer(Some(&header), now + Duration::from_secs(60)),
            Bearer::Expired {
                tenant: "t1".into(),
                client_id: "app1".into()
            }
        );
        for missing in ["", "Bearer", "Bearer   ", "Basic abc"] {
            let value = HeaderValue::from_static(missing);
            assert_eq!(
                auth.bearer(Some(&value), now),
                Bearer::Missing,
                "{missing:?}"
            );
        }
        assert_eq!(auth.bearer(None, now), Bearer::Missing);
        let other = HeaderValue::from_static("Bearer nope");
        assert_eq!(auth.bearer(Some(&other), now), Bearer::Unknown);
        let forever = auth.issue("t2", "app2", Duration::MAX, now);
        auth.expire_all(now);
        let header = HeaderValue::from_str(&format!("Bearer {forever}")).expect("header");
        assert_eq!(
            auth.bearer(Some(&header), now),
            Bearer::Expired {
                tenant: "t2".into(),
                client_id: "app2".into()
            }
        );
    }

    #[test]
    fn scripted_messages_carry_their_code() {
        assert_eq!(split_aadsts("AADSTS50058: text"), Some((50_058, "text")));
        assert_eq!(split_aadsts("no code"), None);
        assert_eq!(split_aadsts("AADSTSxx: text"), None);
    }
}
