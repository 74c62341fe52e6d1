//! End-to-end tests: a real emulator on 127.0.0.1:0 driven by reqwest.

mod control;
mod faults;
mod headers;
mod list;
mod patch;
mod tasks;

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

pub(super) async fn start_with(emulator: Emulator) -> Harness {
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

    pub async fn patch(&self, id: &str, body: &Value) -> Response {
        self.client
            .patch(self.task_url(id))
            .json(body)
            .send()
            .await
            .expect("PATCH")
    }
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
