//! A stand-in for Entra ID and Graph, for behaviours the emulator does not
//! script: a call held until the test releases it, a call never answered,
//! answers that fail a set number of times, and a redirect to another host.

use super::loopback;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use graph_grpc_gateway::config::{Credential, CredentialKind, GraphTarget};
use graph_grpc_gateway::secret::Secret;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The task ids the fake answers for, each with its own behaviour (ids are
/// GUIDs, or the gateway sends nothing).
pub const FAST: &str = "0000fa57-0000-4000-8000-000000000001";
pub const HELD: &str = "00000e1d-0000-4000-8000-000000000002";
pub const FLAKY: &str = "0000f1a6-0000-4000-8000-000000000003";
pub const REDIRECT: &str = "00000ed1-0000-4000-8000-000000000004";
pub const SLOW: &str = "00005104-0000-4000-8000-000000000005";

#[derive(Clone, Default)]
pub struct FakeCloud {
    pub token_requests: Arc<Mutex<Vec<String>>>,
    pub authorizations: Arc<Mutex<Vec<String>>>,
    /// `held` answers once `release` is notified; `arrived` says it was asked.
    pub arrived: Arc<Notify>,
    pub release: Arc<Notify>,
    /// `flaky` answers 503 this many times, then the task.
    pub flaky_failures: Arc<AtomicU32>,
    /// The `Retry-Attempt` header of each `flaky` request ("" when absent).
    pub retry_attempts: Arc<Mutex<Vec<String>>>,
    /// Where `redirect` points.
    pub redirect_to: Arc<Mutex<String>>,
}

fn task_json(id: &str) -> Json<serde_json::Value> {
    Json(
        json!({"@odata.type": "#microsoft.graph.securityConfigurationTask", "id": id, "displayName": "d"}),
    )
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn token(State(c): State<FakeCloud>, body: String) -> Json<serde_json::Value> {
    c.token_requests.lock().expect("lock").push(body);
    Json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "test-access-token"}),
    )
}

async fn fast(State(c): State<FakeCloud>, headers: HeaderMap) -> Json<serde_json::Value> {
    c.authorizations
        .lock()
        .expect("lock")
        .push(header(&headers, "authorization"));
    task_json(FAST)
}

async fn held(State(c): State<FakeCloud>) -> Json<serde_json::Value> {
    c.arrived.notify_one();
    c.release.notified().await;
    task_json(HELD)
}

async fn flaky(State(c): State<FakeCloud>, headers: HeaderMap) -> Response {
    c.retry_attempts
        .lock()
        .expect("lock")
        .push(header(&headers, "retry-attempt"));
    let left = c.flaky_failures.load(Ordering::SeqCst);
    if left > 0 {
        c.flaky_failures.store(left - 1, Ordering::SeqCst);
        let body = json!({"error": {"code": "serviceNotAvailable", "message": "try later"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    task_json(FLAKY).into_response()
}

async fn redirect(State(c): State<FakeCloud>) -> Response {
    let to = c.redirect_to.lock().expect("lock").clone();
    (StatusCode::FOUND, [("location", to)]).into_response()
}

/// Starts the fake on loopback; returns its base URL.
pub async fn start() -> (String, FakeCloud) {
    let cloud = FakeCloud::default();
    let tasks = "/beta/deviceAppManagement/deviceAppManagementTasks";
    let app = Router::new()
        .route("/tenant-1/oauth2/v2.0/token", post(token))
        .route(&format!("{tasks}/{FAST}"), get(fast))
        .route(&format!("{tasks}/{HELD}"), get(held))
        .route(&format!("{tasks}/{FLAKY}"), get(flaky))
        .route(&format!("{tasks}/{REDIRECT}"), get(redirect))
        .route(
            &format!("{tasks}/{SLOW}"),
            get(std::future::pending::<&'static str>),
        )
        .route("/steal", get(fast))
        .with_state(cloud.clone());
    let listener = TcpListener::bind(loopback()).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, cloud)
}

/// Graph and Entra ID both at `base`, with a client secret.
pub fn graph_with_credentials(base: &str) -> GraphTarget {
    GraphTarget::Graph {
        base_url: format!("{base}/beta").parse().expect("url"),
        credential: Box::new(Credential {
            authority_host: base.parse().expect("url"),
            tenant_id: "tenant-1".into(),
            client_id: "client-1".into(),
            scope: "https://graph.microsoft.com/.default".into(),
            kind: CredentialKind::ClientSecret(Secret::new("top-secret-value")),
        }),
    }
}
