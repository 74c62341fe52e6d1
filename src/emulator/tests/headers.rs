use reqwest::{Response, StatusCode};
use serde_json::json;

use super::{json, start};
use crate::emulator::seed;
use crate::emulator::Fault;

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn request_id(response: &Response) -> String {
    let id = header(response, "request-id").expect("request-id header");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    id
}

#[tokio::test]
async fn every_answer_has_a_fresh_request_id_and_echoes_client_request_id() {
    let h = start().await;
    h.emulator().push_faults([Fault::throttled("1")]);
    let client_id = "6f1c0c5e-8a1b-4b7e-9d8e-0c2f4a6b8d10";
    let mut seen = Vec::new();
    for url in [
        h.task_url(seed::EXAMPLE_TASK_ID), // consumed by the fault
        h.task_url(seed::EXAMPLE_TASK_ID),
        h.task_url("missing"),
        h.url("/nowhere"),
        h.collection(),
    ] {
        let response = h
            .client
            .get(&url)
            .header("client-request-id", client_id)
            .send()
            .await
            .expect("GET");
        assert_eq!(
            header(&response, "client-request-id").as_deref(),
            Some(client_id)
        );
        seen.push(request_id(&response));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "request ids are unique");
}

#[tokio::test]
async fn error_body_carries_the_same_ids_as_the_headers() {
    let h = start().await;
    let response = h
        .client
        .get(h.task_url("missing"))
        .header("client-request-id", "client-1")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let content_type = header(&response, "content-type").expect("content type");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let id = request_id(&response);
    let body = json(response).await;
    let error = body["error"].as_object().expect("error object");
    assert_eq!(
        error.keys().collect::<Vec<_>>(),
        ["code", "innerError", "message"],
        "no other members"
    );
    let inner = &body["error"]["innerError"];
    assert_eq!(inner["request-id"], id);
    assert_eq!(inner["client-request-id"], "client-1");
    let date = inner["date"].as_str().expect("date");
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    assert!(
        time::PrimitiveDateTime::parse(date, format).is_ok(),
        "{date}"
    );
}

#[tokio::test]
async fn without_client_request_id_graph_reuses_the_request_id() {
    let h = start().await;
    let response = h.get(&h.task_url("missing")).await;
    let id = request_id(&response);
    assert_eq!(header(&response, "client-request-id"), Some(id.clone()));
    let body = json(response).await;
    assert_eq!(body["error"]["innerError"]["client-request-id"], id);
}

#[tokio::test]
async fn success_bodies_are_odata_json() {
    let h = start().await;
    let response = h
        .patch(seed::EXAMPLE_TASK_ID, &json!({"displayName": "n"}))
        .await;
    let content_type = header(&response, "content-type").expect("content type");
    assert!(
        content_type.starts_with("application/json;odata.metadata=minimal"),
        "{content_type}"
    );
    assert_eq!(header(&response, "odata-version").as_deref(), Some("4.0"));
}
