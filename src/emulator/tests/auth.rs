use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use super::{expect_error, json, secret_form, start, start_with, CLIENT_ID, GRAPH_SCOPE};
use crate::emulator::{seed, CredentialKind, Emulator, EmulatorOptions, Fault, TokenRequestRecord};

const TENANT: &str = "8a7b6c5d-4e3f-2a1b-0c9d-8e7f6a5b4c3d";

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    )
    .expect("fits")
}

fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn assertion(header: &Value, claims: &Value) -> String {
    format!("{}.{}.c2lnbmF0dXJl", segment(header), segment(claims))
}

fn assertion_form(assertion: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", CLIENT_ID.into()),
        ("scope", GRAPH_SCOPE.into()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        ),
        ("client_assertion", assertion.into()),
    ]
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts Entra's error shape; returns the body.
async fn expect_entra_error(
    response: Response,
    status: StatusCode,
    error: &str,
    code: u64,
) -> Value {
    assert_eq!(response.status(), status);
    assert!(header(&response, "x-ms-request-id").is_some());
    let body = json(response).await;
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for id in ["trace_id", "correlation_id"] {
        let value = body[id].as_str().expect(id);
        assert!(uuid::Uuid::parse_str(value).is_ok(), "{id}: {value}");
        assert!(description.contains(value), "{description}");
    }
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert_eq!(timestamp.len(), "2016-01-09 02:02:12Z".len(), "{timestamp}");
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
    body
}

#[tokio::test]
async fn client_secret_gets_a_bearer_token_graph_then_accepts() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_require_auth(true),
    ))
    .await;
    let response = h.request_token(TENANT, &secret_form()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store, no-cache")
    );
    let text = response.text().await.expect("body");
    assert!(
        text.starts_with(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":""#
        ),
        "{text}"
    );
    let body: Value = serde_json::from_str(&text).expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert!(token.len() >= 40, "{token}");

    let answer = h.get_as(&h.task_url(seed::EXAMPLE_TASK_ID), token).await;
    assert_eq!(answer.status(), StatusCode::OK);

    assert_eq!(h.emulator().token_request_count(), 1);
    assert_eq!(
        h.emulator().received(),
        1,
        "the token endpoint is no Graph route"
    );
    let records = h.emulator().token_requests();
    assert_eq!(
        records,
        vec![TokenRequestRecord {
            tenant: TENANT.into(),
            grant_type: Some("client_credentials".into()),
            client_id: Some(CLIENT_ID.into()),
            scope: Some(GRAPH_SCOPE.into()),
            credential: Some(CredentialKind::Secret),
            secret_present: true,
            client_assertion_type: None,
            assertion_header: None,
            assertion_claims: None,
            status: Some(200),
            error_code: None,
            issued: true,
        }]
    );
    let printed = format!("{records:?} {}", json!(records));
    assert!(!printed.contains("s3cret"), "the secret is never kept");
}

#[tokio::test]
async fn client_assertion_is_decoded_and_recorded() {
    let h = start().await;
    let jwt_header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": "3q2-7w"});
    let claims = json!({
        "aud": format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "jti": "b4e7c2d1",
        "nbf": unix_now() - 10,
        "exp": unix_now() + 600
    });
    let form = assertion_form(&assertion(&jwt_header, &claims));
    let response = h
        .client
        .post(h.token_url(TENANT))
        .form(&form)
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["token_type"], "Bearer");

    let record = h.emulator().token_requests().pop().expect("recorded");
    assert_eq!(record.credential, Some(CredentialKind::Assertion));
    assert!(!record.secret_present);
    assert_eq!(record.assertion_header, Some(jwt_header));
    assert_eq!(record.assertion_claims, Some(claims));
    assert!(record.issued);

    let over_http = json(h.get(&h.control("/token-requests")).await).await;
    assert_eq!(over_http["count"], 1);
    assert_eq!(
        over_http["requests"][0]["assertion_header"]["x5t#S256"],
        "3q2-7w"
    );
    assert_eq!(over_http["requests"][0]["credential"], "assertion");
}

#[tokio::test]
async fn federated_assertions_need_not_name_the_client() {
    // A Kubernetes service-account token: iss and sub are the cluster's.
    let h = start().await;
    let claims = json!({
        "aud": ["api://AzureADTokenExchange"],
        "iss": "https://oidc.prod-aks.azure.com/abc/",
        "sub": "system:serviceaccount:gateway:graph-grpc-gateway",
        "exp": unix_now() + 3600
    });
    let form = assertion_form(&assertion(&json!({"alg": "RS256", "kid": "k1"}), &claims));
    let response = h
        .client
        .post(h.token_url(TENANT))
        .form(&form)
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_errors_have_entra_shape_and_codes() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_rejected_client_secret("wrong-secret"),
    ))
    .await;
    let valid = secret_form();
    let with = |key: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        let mut form: Vec<_> = valid.iter().copied().filter(|(k, _)| *k != key).collect();
        form.push((key, value));
        form
    };
    let without = |key: &str| -> Vec<(&'static str, &'static str)> {
        valid.iter().copied().filter(|(k, _)| *k != key).collect()
    };
    let expired = assertion(
        &json!({"alg": "RS256"}),
        &json!({"aud": "a", "iss": CLIENT_ID, "sub": CLIENT_ID, "exp": unix_now() - 60}),
    );
    let no_iss = assertion(
        &json!({"alg": "RS256"}),
        &json!({"aud": "a", "sub": CLIENT_ID, "exp": unix_now() + 60}),
    );
    let mut cases: Vec<Case> = vec![
        (
            owned(&without("grant_type")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
        ),
        (
            owned(&with("grant_type", "password")),
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
        ),
        (
            owned(&without("client_id")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
        ),
        (
            owned(&without("scope")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
        ),
        (
            owned(&with("scope", "https://graph.microsoft.com/User.Read")),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70_011,
        ),
        (
            owned(&without("client_secret")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_216,
        ),
        (
            owned(&with("client_secret", "")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_216,
        ),
        (
            owned(&with("client_secret", "wrong-secret")),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
        ),
        (
            assertion_form("not-a-jwt"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_027,
        ),
        (
            assertion_form("e30.bm90IGpzb24.c2ln"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_027,
        ),
        (
            assertion_form(&no_iss),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_027,
        ),
        (
            assertion_form(&expired),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_024,
        ),
    ];
    let mut duplicated = owned(&valid);
    duplicated.push(("scope", GRAPH_SCOPE.into()));
    cases.push((
        duplicated,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        9_000_411,
    ));

    for (form, status, error, code) in cases {
        let response = h
            .client
            .post(h.token_url(TENANT))
            .form(&form)
            .send()
            .await
            .expect("token request");
        let body = expect_entra_error(response, status, error, code).await;
        assert!(body.get("access_token").is_none());
    }
    let records = h.emulator().token_requests();
    assert_eq!(records.len(), 13);
    assert!(records.iter().all(|r| !r.issued && r.error_code.is_some()));
    assert_eq!(records[11].error_code, Some(700_024));
    assert!(
        records[11].assertion_claims.is_some(),
        "decoded though expired"
    );
}

/// A token form, the status, `error` and AADSTS code it must meet.
type Case = (Vec<(&'static str, String)>, StatusCode, &'static str, u64);

fn owned(form: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

#[tokio::test]
async fn correlation_id_echoes_a_guid_client_request_id() {
    let h = start().await;
    let correlation = "11111111-2222-4333-8444-555555555555";
    let response = h
        .client
        .post(h.token_url(TENANT))
        .header("client-request-id", correlation)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(
        header(&response, "client-request-id").as_deref(),
        Some(correlation)
    );
    let body = expect_entra_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900_144,
    )
    .await;
    assert_eq!(body["correlation_id"], correlation);
}

#[tokio::test]
async fn token_faults_answer_the_next_token_requests_only() {
    let h = start().await;
    h.emulator().push_token_faults([
        Fault::new(503).with_retry_after("2"),
        Fault::raw(502, "<html>Bad gateway</html>"),
        Fault::new(400)
            .with_code("invalid_grant")
            .with_message("AADSTS50173: The provided grant has expired."),
        Fault::drop_connection(),
    ]);
    assert_eq!(h.emulator().pending_token_faults(), 4);

    // A Graph request does not consume token faults.
    assert_eq!(h.get(&h.collection()).await.status(), StatusCode::OK);
    assert_eq!(h.emulator().pending_token_faults(), 4);

    let response = h.request_token(TENANT, &secret_form()).await;
    assert_eq!(header(&response, "retry-after").as_deref(), Some("2"));
    expect_entra_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        90_033,
    )
    .await;

    let response = h.request_token(TENANT, &secret_form()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.text().await.expect("text"),
        "<html>Bad gateway</html>"
    );

    let response = h.request_token(TENANT, &secret_form()).await;
    let body = expect_entra_error(response, StatusCode::BAD_REQUEST, "invalid_grant", 50_173).await;
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS50173: The provided grant has expired.")));

    let dropped = h
        .client
        .post(h.token_url(TENANT))
        .form(&secret_form())
        .send()
        .await;
    assert!(dropped.is_err(), "no response: {dropped:?}");

    h.token(TENANT).await;
    assert_eq!(h.emulator().token_request_count(), 5);
    assert_eq!(h.emulator().pending_token_faults(), 0);
    let statuses: Vec<Option<u16>> = h
        .emulator()
        .token_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(503), Some(502), Some(400), None, Some(200)]);
    assert_eq!(h.emulator().received(), 1);
}

#[tokio::test]
async fn token_lifetime_is_honoured() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default()
            .with_require_auth(true)
            .with_token_lifetime(Duration::from_secs(120)),
    ))
    .await;
    let body = json(h.request_token(TENANT, &secret_form()).await).await;
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["ext_expires_in"], 120);

    // A zero lifetime issues tokens that are already expired.
    h.emulator().set_options(
        EmulatorOptions::default()
            .with_require_auth(true)
            .with_token_lifetime(Duration::ZERO),
    );
    let body = json(h.request_token(TENANT, &secret_form()).await).await;
    assert_eq!(body["expires_in"], 0);
    let token = body["access_token"].as_str().expect("token");
    let message = expect_error(
        h.get_as(&h.collection(), token).await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(message, "Lifetime validation failed, the token is expired.");
}

#[tokio::test]
async fn graph_refuses_missing_unknown_and_expired_bearers() {
    let h = start_with(Emulator::with_options(
        EmulatorOptions::default().with_require_auth(true),
    ))
    .await;
    let url = h.task_url(seed::EXAMPLE_TASK_ID);

    let missing = h.get(&url).await;
    let challenge = header(&missing, WWW_AUTHENTICATE.as_str()).expect("challenge");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(!challenge.contains("invalid_token"), "{challenge}");
    let message = expect_error(
        missing,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(message, "Access token is empty.");

    let unknown = h.get_as(&url, "made-up-token").await;
    let challenge = header(&unknown, WWW_AUTHENTICATE.as_str()).expect("challenge");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let message = expect_error(
        unknown,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    assert!(
        message.starts_with("Access token validation failure"),
        "{message}"
    );

    let token = h.token(TENANT).await;
    assert_eq!(h.get_as(&url, &token).await.status(), StatusCode::OK);
    h.emulator().expire_tokens();
    let expired = h.get_as(&url, &token).await;
    assert!(header(&expired, WWW_AUTHENTICATE.as_str()).is_some());
    let message = expect_error(
        expired,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    )
    .await;
    assert_eq!(message, "Lifetime validation failed, the token is expired.");

    // A refused PATCH is not applied.
    let refused = h
        .client
        .patch(&url)
        .bearer_auth(&token)
        .json(&json!({"displayName": "sneaky"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task")["displayName"],
        "Display Name value"
    );

    let fresh = h.token(TENANT).await;
    assert_eq!(h.get_as(&url, &fresh).await.status(), StatusCode::OK);
    assert_eq!(h.emulator().received(), 6);
}

#[tokio::test]
async fn without_require_auth_any_or_no_bearer_passes() {
    let h = start().await;
    let url = h.collection();
    assert_eq!(h.get(&url).await.status(), StatusCode::OK);
    assert_eq!(h.get_as(&url, "anything").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn options_control_routes_switch_auth_on_and_expire_tokens() {
    let h = start().await;
    let defaults = json(h.get(&h.control("/options")).await).await;
    assert_eq!(
        defaults,
        json!({
            "require_auth": false,
            "token_lifetime": "59m 59s",
            "rejected_client_secrets": [],
            "chaos": null,
            "latency": "0s",
            "record_requests": true,
            "tenant_budget": null,
            "intune_limits": null,
            "batch_order_seed": 0
        })
    );
    let put = h
        .client
        .put(h.control("/options"))
        .json(&json!({"require_auth": true, "token_lifetime": "10m"}))
        .send()
        .await
        .expect("PUT options");
    assert_eq!(put.status(), StatusCode::OK);
    let now = json(put).await;
    assert_eq!(now["require_auth"], true);
    assert_eq!(now["token_lifetime"], "10m");
    assert_eq!(now["latency"], "0s", "absent fields take defaults");
    assert!(h.emulator().options().require_auth);

    assert_eq!(
        h.get(&h.collection()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let token = json(h.request_token(TENANT, &secret_form()).await).await;
    assert_eq!(token["expires_in"], 600);
    let token = token["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        h.get_as(&h.collection(), &token).await.status(),
        StatusCode::OK
    );

    let expire = h
        .client
        .post(h.control("/expire-tokens"))
        .send()
        .await
        .expect("POST expire-tokens");
    assert_eq!(expire.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.get_as(&h.collection(), &token).await.status(),
        StatusCode::UNAUTHORIZED
    );

    for bad in [
        json!({"requireAuth": true}),
        json!({"chaos": {"seed": 1, "percent": 150}}),
        json!({"latency": "soon"}),
        json!([]),
    ] {
        let refused = h
            .client
            .put(h.control("/options"))
            .json(&bad)
            .send()
            .await
            .expect("PUT options");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json(refused).await["error"].is_string());
    }
    assert!(
        h.emulator().options().require_auth,
        "refused PUTs change nothing"
    );

    let faults = h
        .client
        .post(h.control("/token-faults"))
        .json(&json!([{"status": 500}, {"body": "DropConnection", "delay_ms": 1}]))
        .send()
        .await
        .expect("POST token-faults");
    assert_eq!(json(faults).await, json!({"queued": 2, "pending": 2}));
    let stats = json(h.get(&h.control("/stats")).await).await;
    assert_eq!(stats["pending_token_faults"], 2);
    assert_eq!(stats["token_requests"], 1);
    assert_eq!(stats["received"], 3);
}
