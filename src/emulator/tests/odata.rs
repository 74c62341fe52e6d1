//! The OData segments after the task collection that are not a task id, over
//! HTTP: what Graph answers for them, so that a client which lets a caller's
//! id reach one of them is seen to get something other than a task.

use reqwest::StatusCode;

use super::{expect_error, json, start};
use crate::emulator::seed;

#[tokio::test]
async fn a_type_cast_answers_a_collection_of_that_type() {
    let h = start().await;
    let cast = "microsoft.graph.securityConfigurationTask";
    let body = json(h.get(&format!("{}/{cast}", h.collection())).await).await;
    assert_eq!(
        body["@odata.context"],
        h.url(&format!(
            "/$metadata#deviceAppManagement/deviceAppManagementTasks/{cast}"
        ))
    );
    let ids: Vec<_> = body["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids, seed::SECURITY_CONFIGURATION_TASK_IDS);
    assert!(body.get("id").is_none(), "a collection, not a task");

    let other = json(
        h.get(&format!(
            "{}/microsoft.graph.appVulnerabilityTask?$top=1",
            h.collection()
        ))
        .await,
    )
    .await;
    assert_eq!(other["value"][0]["id"], seed::APP_VULNERABILITY_TASK_ID);
    assert_eq!(other["value"].as_array().map(Vec::len), Some(1));

    // Paged: the next link keeps the cast.
    let first = json(h.get(&format!("{}/{cast}?$top=2", h.collection())).await).await;
    let next = first["@odata.nextLink"].as_str().expect("a next page");
    assert!(
        next.contains(&format!("/deviceAppManagementTasks/{cast}?")),
        "{next}"
    );
    let second = json(h.get(next).await).await;
    assert_eq!(second["value"][0]["id"], seed::COMPLETED_TASK_ID);
    assert!(second.get("@odata.nextLink").is_none());

    expect_error(
        h.get(&format!("{}/microsoft.graph.user", h.collection()))
            .await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
}

#[tokio::test]
async fn count_answers_a_plain_text_number() {
    let h = start().await;
    let all = h.get(&format!("{}/$count", h.collection())).await;
    assert_eq!(all.status(), StatusCode::OK);
    assert!(all.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    assert_eq!(all.text().await.expect("text"), "5");
    let cast = h
        .get(&format!(
            "{}/microsoft.graph.securityConfigurationTask/$count",
            h.collection()
        ))
        .await;
    assert_eq!(cast.text().await.expect("text"), "3");
    let filtered = h
        .get(&format!(
            "{}/$count?$filter=status%20eq%20'completed'",
            h.collection()
        ))
        .await;
    assert_eq!(filtered.text().await.expect("text"), "1");
}

#[tokio::test]
async fn ref_answers_the_entity_reference_and_value_is_refused() {
    let h = start().await;
    let id = seed::EXAMPLE_TASK_ID;
    let reference = json(h.get(&format!("{}/$ref", h.task_url(id))).await).await;
    assert_eq!(reference["@odata.context"], h.url("/$metadata#$ref"));
    assert_eq!(reference["@odata.id"], h.task_url(id));
    assert!(reference.get("id").is_none(), "a reference, not the task");

    let missing = "00000000-0000-0000-0000-000000000000";
    expect_error(
        h.get(&format!("{}/$ref", h.task_url(missing))).await,
        StatusCode::NOT_FOUND,
        "itemNotFound",
    )
    .await;
    let message = expect_error(
        h.get(&format!("{}/$value", h.task_url(id))).await,
        StatusCode::BAD_REQUEST,
        "BadRequest",
    )
    .await;
    assert!(message.contains("$value"), "{message}");
    for segment in ["$ref", "$value", "$metadata", "$batch"] {
        expect_error(
            h.get(&format!("{}/{segment}", h.collection())).await,
            StatusCode::BAD_REQUEST,
            "BadRequest",
        )
        .await;
    }
}
