use reqwest::StatusCode;
use serde_json::Value;

use super::{expect_error, json, start, Harness};
use crate::emulator::seed;

/// Follows nextLink from `first` to the end; returns the ids per page.
async fn pages(h: &Harness, first: String) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first);
    while let Some(url) = next.take() {
        assert!(pages.len() < 20, "nextLink loop");
        let response = h.get(&url).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body = json(response).await;
        let ids = body["value"]
            .as_array()
            .expect("value array")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect();
        pages.push(ids);
        next = body["@odata.nextLink"].as_str().map(str::to_owned);
    }
    pages
}

fn flat(pages: &[Vec<String>]) -> Vec<&str> {
    pages.iter().flatten().map(String::as_str).collect()
}

#[tokio::test]
async fn paging_follows_next_link_through_every_task_once() {
    let h = start().await;
    let pages = pages(&h, format!("{}?$top=2", h.collection())).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(flat(&pages), seed::ALL_TASK_IDS);
}

#[tokio::test]
async fn list_shape_and_next_link_from_host_header() {
    let h = start().await;
    let body = json(h.get(&format!("{}?$top=4", h.collection())).await).await;
    assert_eq!(
        body["@odata.context"],
        h.url("/$metadata#deviceAppManagement/deviceAppManagementTasks")
    );
    let link = body["@odata.nextLink"].as_str().expect("nextLink");
    let prefix = format!("{}?$top=4&$skiptoken=", h.collection());
    assert!(link.starts_with(&prefix), "{link}");
    assert_eq!(
        body["value"][1]["@odata.type"],
        "#microsoft.graph.appVulnerabilityTask"
    );

    let response = h
        .client
        .get(format!("{}?$top=4", h.collection()))
        .header("host", "graph.example:8443")
        .send()
        .await
        .expect("GET");
    let link = json(response).await["@odata.nextLink"].clone();
    assert!(link
        .as_str()
        .is_some_and(|l| l.starts_with("http://graph.example:8443/beta/deviceAppManagement/")));
}

#[tokio::test]
async fn default_page_holds_everything_without_next_link() {
    let h = start().await;
    let body = json(h.get(&h.collection()).await).await;
    assert_eq!(body["value"].as_array().map(Vec::len), Some(5));
    assert!(body.get("@odata.nextLink").is_none());

    let empty = super::start_with(crate::emulator::Emulator::empty()).await;
    let body = json(empty.get(&empty.collection()).await).await;
    assert_eq!(body["value"], Value::Array(vec![]));
}

#[tokio::test]
async fn paging_survives_deletes_between_pages() {
    let h = start().await;
    let first = json(h.get(&format!("{}?$top=2", h.collection())).await).await;
    let next = first["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    h.client
        .delete(h.task_url(seed::FIREWALL_TASK_ID))
        .send()
        .await
        .expect("DELETE");
    let rest = pages(&h, next).await;
    assert_eq!(
        flat(&rest),
        [
            seed::UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
            seed::COMPLETED_TASK_ID
        ]
    );
}

async fn filtered(h: &Harness, filter: &str) -> Vec<String> {
    let url = reqwest::Url::parse_with_params(&h.collection(), [("$filter", filter)]).expect("url");
    flat(&pages(h, url.to_string()).await)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn filter_eq_on_strings_enums_numbers() {
    let h = start().await;
    assert_eq!(
        filtered(&h, "status eq 'active'").await,
        [seed::APP_VULNERABILITY_TASK_ID, seed::FIREWALL_TASK_ID]
    );
    assert_eq!(
        filtered(&h, "managedDeviceCount eq 12").await,
        [seed::FIREWALL_TASK_ID]
    );
    assert_eq!(
        filtered(&h, "status eq 'active' and priority eq 'high'").await,
        [seed::APP_VULNERABILITY_TASK_ID]
    );
    assert_eq!(
        filtered(&h, "displayName eq 'Display Name value'").await,
        [seed::EXAMPLE_TASK_ID]
    );
    assert!(filtered(&h, "status eq 'rejected'").await.is_empty());
}

#[tokio::test]
async fn filter_isof_pages_with_filter_in_next_link() {
    let h = start().await;
    let first = format!(
        "{}?$top=1&$filter=isof('microsoft.graph.securityConfigurationTask')",
        h.collection()
    );
    let body = json(h.get(&first).await).await;
    let link = body["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        link.ends_with("&$filter=isof%28%27microsoft.graph.securityConfigurationTask%27%29"),
        "{link}"
    );
    let pages = pages(&h, first).await;
    assert_eq!(pages.len(), 3, "no trailing empty page");
    assert_eq!(flat(&pages), seed::SECURITY_CONFIGURATION_TASK_IDS);

    assert_eq!(
        filtered(
            &h,
            "isof('microsoft.graph.unmanagedDeviceDiscoveryTask') and status eq 'pending'"
        )
        .await,
        [seed::UNMANAGED_DEVICE_DISCOVERY_TASK_ID]
    );
}

#[tokio::test]
async fn bad_query_options_are_400_bad_request() {
    let h = start().await;
    for query in [
        "$filter=status has 'pending'",
        "$filter=startswith(displayName,'D')",
        "$filter=nonsense eq 1",
        "$filter=",
    ] {
        let url = format!("{}?{query}", h.collection());
        let message = expect_error(h.get(&url).await, StatusCode::BAD_REQUEST, "BadRequest").await;
        assert!(message.starts_with("Invalid filter clause"), "{message}");
    }
    for query in [
        "$top=0",
        "$top=1000",
        "$top=ten",
        "$skiptoken=bogus",
        "$orderby=displayName",
    ] {
        let url = format!("{}?{query}", h.collection());
        expect_error(h.get(&url).await, StatusCode::BAD_REQUEST, "BadRequest").await;
    }
    let ok = h.get(&format!("{}?$top=999", h.collection())).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn filter_with_every_operator_over_http() {
    let h = start().await;
    use seed::{
        APP_VULNERABILITY_TASK_ID as A, COMPLETED_TASK_ID as C, EXAMPLE_TASK_ID as E,
        FIREWALL_TASK_ID as F, UNMANAGED_DEVICE_DISCOVERY_TASK_ID as U,
    };
    for (filter, want) in [
        ("status ne 'active'", vec![E, U, C]),
        ("managedDeviceCount gt 12", vec![A]),
        ("managedDeviceCount ge 12", vec![A, F]),
        ("managedDeviceCount lt 2", vec![C]),
        ("managedDeviceCount le 2", vec![E, C]),
        ("priority gt 'none'", vec![E, A, F]),
        ("dueDateTime lt 2023-01-01T00:00:00Z", vec![E, C]),
        ("status eq 'completed' or priority eq 'low'", vec![F, C]),
        ("not (status eq 'pending')", vec![A, F, C]),
        (
            "isof('microsoft.graph.securityConfigurationTask') and not status eq 'active'",
            vec![E, C],
        ),
    ] {
        assert_eq!(filtered(&h, filter).await, want, "{filter}");
    }
    let by_guid = format!("id eq {}", F.to_uppercase());
    assert_eq!(filtered(&h, &by_guid).await, [F]);
}
