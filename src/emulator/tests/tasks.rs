use reqwest::header::{ALLOW, LOCATION};
use reqwest::StatusCode;
use serde_json::json;

use super::{expect_error, json, start};
use crate::emulator::seed;

#[tokio::test]
async fn get_returns_the_stored_object_with_context() {
    let h = start().await;
    let body = json(h.get(&h.task_url(seed::EXAMPLE_TASK_ID)).await).await;
    assert_eq!(
        body["@odata.context"],
        h.url("/$metadata#deviceAppManagement/deviceAppManagementTasks/$entity")
    );
    let mut without_context = body.clone();
    if let Some(object) = without_context.as_object_mut() {
        object.remove("@odata.context");
    }
    assert_eq!(
        Some(without_context),
        h.emulator().task(seed::EXAMPLE_TASK_ID)
    );
    assert_eq!(body["createdDateTime"], "2017-01-01T00:02:43.5775965-08:00");
    assert_eq!(
        body["intendedSettings"][0]["@odata.type"],
        "microsoft.graph.keyValuePair"
    );
}

#[tokio::test]
async fn missing_task_is_404_item_not_found() {
    let h = start().await;
    let missing = "00000000-0000-0000-0000-000000000000";
    let message = expect_error(
        h.get(&h.task_url(missing)).await,
        StatusCode::NOT_FOUND,
        "itemNotFound",
    )
    .await;
    assert!(message.contains(missing), "{message}");
    for response in [
        h.patch(missing, &json!({"displayName": "x"})).await,
        h.client
            .delete(h.task_url(missing))
            .send()
            .await
            .expect("DELETE"),
        h.client
            .post(format!("{}/updateStatus", h.task_url(missing)))
            .json(&json!({"status": "active"}))
            .send()
            .await
            .expect("POST"),
    ] {
        expect_error(response, StatusCode::NOT_FOUND, "itemNotFound").await;
    }
}

#[tokio::test]
async fn create_answers_201_with_id_created_date_and_location() {
    let h = start().await;
    let response = h
        .client
        .post(h.collection())
        .json(&json!({
            "@odata.type": "#microsoft.graph.securityConfigurationTask",
            "displayName": "New task",
            "status": "pending",
            "applicablePlatform": "windows10AndLater",
            "intendedSettings": [{"name": "a", "value": "b"}]
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("Location");
    let body = json(response).await;
    let id = body["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(location, h.task_url(id));
    let created = body["createdDateTime"].as_str().expect("createdDateTime");
    assert_eq!(
        created.len(),
        "2024-01-01T00:00:00.0000000Z".len(),
        "{created}"
    );
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    assert_eq!(body["displayName"], "New task");
    assert_eq!(
        body["priority"], "none",
        "defaults fill what the body left out"
    );
    assert_eq!(body["managedDeviceCount"], 0);

    let fetched = json(h.get(&location).await).await;
    assert_eq!(fetched["displayName"], "New task");
    let listed = json(h.get(&h.collection()).await).await;
    assert_eq!(listed["value"][5]["id"], id, "new tasks go last");
}

#[tokio::test]
async fn create_refuses_bodies_that_are_not_tasks() {
    let h = start().await;
    for body in [
        json!({"displayName": "no type"}),
        json!({"@odata.type": "#microsoft.graph.user"}),
        json!({"@odata.type": "#microsoft.graph.securityConfigurationTask", "status": "bogus"}),
        json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask", "intendedSettings": []}),
        json!({"@odata.type": "#microsoft.graph.securityConfigurationTask", "id": "mine"}),
        json!([]),
    ] {
        let response = h
            .client
            .post(h.collection())
            .json(&body)
            .send()
            .await
            .expect("POST");
        expect_error(response, StatusCode::BAD_REQUEST, "invalidRequest").await;
    }
    assert_eq!(h.emulator().tasks().len(), seed::ALL_TASK_IDS.len());
}

#[tokio::test]
async fn delete_answers_204_and_removes() {
    let h = start().await;
    let response = h
        .client
        .delete(h.task_url(seed::COMPLETED_TASK_ID))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.expect("body").is_empty());
    assert_eq!(h.emulator().task(seed::COMPLETED_TASK_ID), None);
    let again = h.get(&h.task_url(seed::COMPLETED_TASK_ID)).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn update_status_answers_204_and_sets_status() {
    let h = start().await;
    let url = format!("{}/updateStatus", h.task_url(seed::EXAMPLE_TASK_ID));
    let response = h
        .client
        .post(&url)
        .json(&json!({"status": "rejected", "note": "not applicable"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let task = h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task");
    assert_eq!(task["status"], "rejected");

    for bad in [
        json!({"status": "finished"}),
        json!({"note": "no status"}),
        json!({"status": null}),
        json!("active"),
    ] {
        let response = h.client.post(&url).json(&bad).send().await.expect("POST");
        expect_error(response, StatusCode::BAD_REQUEST, "invalidRequest").await;
    }
    let task = h.emulator().task(seed::EXAMPLE_TASK_ID).expect("task");
    assert_eq!(task["status"], "rejected");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_graph() {
    let h = start().await;
    for (path, segment) in [
        ("/users", "users"),
        ("/deviceAppManagement/mobileApps", "mobileApps"),
        (
            &format!(
                "/deviceAppManagement/deviceAppManagementTasks/{}/assign",
                seed::EXAMPLE_TASK_ID
            ) as &str,
            "assign",
        ),
    ] {
        let message = expect_error(
            h.get(&h.url(path)).await,
            StatusCode::BAD_REQUEST,
            "BadRequest",
        )
        .await;
        assert_eq!(
            message,
            format!("Resource not found for the segment '{segment}'.")
        );
    }

    let cases = [
        (
            reqwest::Method::PUT,
            h.task_url(seed::EXAMPLE_TASK_ID),
            "GET, PATCH, DELETE",
        ),
        (reqwest::Method::DELETE, h.collection(), "GET, POST"),
        (
            reqwest::Method::GET,
            format!("{}/updateStatus", h.task_url(seed::EXAMPLE_TASK_ID)),
            "POST",
        ),
    ];
    for (method, url, allow) in cases {
        let response = h
            .client
            .request(method, &url)
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.headers().get(ALLOW).map(|v| v.as_bytes()),
            Some(allow.as_bytes())
        );
        let message = expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "BadRequest").await;
        assert!(
            message.starts_with("No HTTP resource was found"),
            "{message}"
        );
    }

    let fallback = h
        .client
        .get(format!("http://{}/v1.0/users", h.running.addr))
        .send()
        .await
        .expect("GET");
    assert_eq!(fallback.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.emulator().received(), 6, "only /beta counts");
}
