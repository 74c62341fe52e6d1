//! End-to-end tests: a real emulator on 127.0.0.1:0 driven by reqwest.

mod auth;
mod batch;
mod chaos;
mod control;
mod delivery;
mod faults;
mod headers;
mod intune_limits;
mod lifecycle;
mod list;
mod odata;
mod patch;
mod status;
mod tasks;
mod throttle;

use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use super::{Emulator, RunningEmulator};

pub(super) const COLLECTION: &str = "/deviceAppManagement/deviceAppManagementTasks";

pub(super) struct Harness {
    pub running: RunningEmulator,
    pub client: Client,
}

/// A seeded emulator on a free loopback port.
pub(super) async fn start() -> Harness {
    start_with(Emulator::new()).await
}

/// Serves `emulator` with its request log turned on, since the tests read it.
pub(super) async fn start_with(emulator: Emulator) -> Harness {
    emulator.set_options(emulator.options().with_record_requests(true));
    let addr = "127.0.0.1:0".parse().expect("literal address");
    let running = emulator.spawn(addr).await.expect("bind loopback");
    let client = Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    Harness { running, client }
}

impl Harness {
    pub fn emulator(&self) -> &Emulator {
        &self.running.emulator
    }

    /// `path` under the Graph base URL (`/beta`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url)
    }

    pub fn collection(&self) -> String {
        self.url(COLLECTION)
    }

    pub fn task_url(&self, id: &str) -> String {
        format!("{}/{id}", self.collection())
    }

    /// A control route under `/_emulator`.
    pub fn control(&self, path: &str) -> String {
        format!("http://{}/_emulator{path}", self.running.addr)
    }

    pub async fn get(&self, url: &str) -> Response {
        self.client.get(url).send().await.expect("GET")
    }

    /// The token endpoint for `tenant`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("http://{}/{tenant}/oauth2/v2.0/token", self.running.addr)
    }

    /// A token request with these form fields.
    pub async fn request_token(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.token_url(tenant))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// An access token for the app `client_id` in `tenant`, by client
    /// secret.
    pub async fn token_for_app(&self, tenant: &str, client_id: &str) -> String {
        let response = self
            .request_token(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("scope", GRAPH_SCOPE),
                    ("client_secret", "s3cret~value"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        json(response).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// An access token for `tenant`, by client secret.
    pub async fn token(&self, tenant: &str) -> String {
        let response = self.request_token(tenant, &secret_form()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json(response).await;
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// GET with `Authorization: Bearer token`.
    pub async fn get_as(&self, url: &str, token: &str) -> Response {
        self.client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn patch(&self, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.task_url(id))
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }
}

pub(super) const CLIENT_ID: &str = "0f3c3a1e-7d2b-4c1a-9e0f-3b5d7c9e1a2b";
pub(super) const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A valid client-credentials form with a client secret.
pub(super) fn secret_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("scope", GRAPH_SCOPE),
        ("client_secret", "s3cret~value"),
    ]
}

pub(super) async fn json(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts Graph's error shape and returns the message.
pub(super) async fn expect_error(response: Response, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body = json(response).await;
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["innerError"]["request-id"].is_string(), "{body}");
    assert!(error["innerError"]["date"].is_string(), "{body}");
    error["message"].as_str().expect("message").to_owned()
}
