use std::io::Write as _;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{expect_error, json, start};
use crate::emulator::seed;

#[tokio::test]
async fn patch_merges_and_answers_200_with_the_whole_object() {
    let h = start().await;
    let before = h.emulator().task(seed::FIREWALL_TASK_ID).expect("seeded");
    let change = json!({
        "@odata.type": "#microsoft.graph.securityConfigurationTask",
        "displayName": "Renamed",
        "creatorNotes": null,
        "dueDateTime": "2030-12-31T23:59:59.9999999+05:30",
        "managedDeviceCount": 65536,
        "endpointSecurityPolicyProfile": "firewallRules",
        "intendedSettings": [
            {"@odata.type": "microsoft.graph.keyValuePair", "name": "EnableFirewall", "value": null}
        ],
        "displayName@odata.type": "#String"
    });
    let response = h.patch(seed::FIREWALL_TASK_ID, &change).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response).await;
    assert_eq!(body["displayName"], "Renamed");
    assert_eq!(
        body["dueDateTime"], "2030-12-31T23:59:59.9999999+05:30",
        "kept exactly"
    );
    assert_eq!(body["managedDeviceCount"], 65536);
    assert_eq!(body["creatorNotes"], Value::Null);
    assert_eq!(body["intendedSettings"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        body["intendedSettings"][0]["@odata.type"],
        "microsoft.graph.keyValuePair"
    );
    assert_eq!(
        body["createdDateTime"], before["createdDateTime"],
        "untouched"
    );
    assert_eq!(
        body["applicablePlatform"], before["applicablePlatform"],
        "untouched"
    );
    assert!(
        body.get("displayName@odata.type").is_none(),
        "annotations not stored"
    );

    let stored = h.emulator().task(seed::FIREWALL_TASK_ID).expect("stored");
    let mut answered = body.clone();
    if let Some(object) = answered.as_object_mut() {
        object.remove("@odata.context");
    }
    assert_eq!(stored, answered);
}

#[tokio::test]
async fn patch_of_other_types_uses_their_properties() {
    let h = start().await;
    let ok = h
        .patch(
            seed::APP_VULNERABILITY_TASK_ID,
            &json!({"appVersion": "23.01", "mobileAppCount": 3, "mitigationType": "update"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let ok = h
        .patch(
            seed::UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
            &json!({"unmanagedDevices": [{"deviceName": "x", "anything": [1, 2]}]}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    for (id, body) in [
        (
            seed::APP_VULNERABILITY_TASK_ID,
            json!({"intendedSettings": []}),
        ),
        (
            seed::UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
            json!({"unmanagedDevices": [1]}),
        ),
        (
            seed::UNMANAGED_DEVICE_DISCOVERY_TASK_ID,
            json!({"appName": "x"}),
        ),
    ] {
        expect_error(
            h.patch(id, &body).await,
            StatusCode::BAD_REQUEST,
            "invalidRequest",
        )
        .await;
    }
}

/// Each rule: a body Graph refuses with 400 invalidRequest, and the property
/// its message must name.
fn refused_bodies() -> Vec<(Value, &'static str)> {
    vec![
        (json!({"colour": "red"}), "colour"),
        (json!({"DisplayName": "case matters"}), "DisplayName"),
        (json!({"displayName": 42}), "displayName"),
        (json!({"managedDeviceCount": "2"}), "managedDeviceCount"),
        (json!({"priority": 1}), "priority"),
        (json!({"status": "done"}), "status"),
        (json!({"category": "malware"}), "category"),
        (json!({"applicablePlatform": "linux"}), "applicablePlatform"),
        (
            json!({"endpointSecurityPolicy": "Antivirus"}),
            "endpointSecurityPolicy",
        ),
        (
            json!({"endpointSecurityPolicyProfile": "x"}),
            "endpointSecurityPolicyProfile",
        ),
        (json!({"dueDateTime": null}), "dueDateTime"),
        (json!({"status": null}), "status"),
        (json!({"priority": null}), "priority"),
        (json!({"managedDeviceCount": null}), "managedDeviceCount"),
        (json!({"id": seed::EXAMPLE_TASK_ID}), "id"),
        (
            json!({"createdDateTime": "2017-01-01T00:02:43.5775965-08:00"}),
            "createdDateTime",
        ),
        (
            json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask"}),
            "@odata.type",
        ),
        (json!({"@odata.type": 7}), "@odata.type"),
        (json!({"dueDateTime": "2017-01-01T00:02:18"}), "dueDateTime"),
        (
            json!({"dueDateTime": "2017-01-01T00:02:18.19940891Z"}),
            "dueDateTime",
        ),
        (json!({"dueDateTime": "01/01/2017"}), "dueDateTime"),
        (
            json!({"managedDeviceCount": 2147483648_i64}),
            "managedDeviceCount",
        ),
        (json!({"managedDeviceCount": 2.5}), "managedDeviceCount"),
        (json!({"intendedSettings": "a=b"}), "intendedSettings"),
        (
            json!({"intendedSettings": [["a", "b"]]}),
            "intendedSettings",
        ),
        (
            json!({"intendedSettings": [{"name": 1, "value": "b"}]}),
            "intendedSettings",
        ),
        (
            json!({"intendedSettings": [{"name": "a", "value": 2}]}),
            "intendedSettings",
        ),
        (
            json!({"intendedSettings": [{"value": "b"}]}),
            "intendedSettings",
        ),
        (
            json!({"intendedSettings": [{"name": "a", "extra": "b"}]}),
            "intendedSettings",
        ),
        (
            json!({"intendedSettings": [{"@odata.type": "#microsoft.graph.user", "name": "a"}]}),
            "intendedSettings",
        ),
        (json!({"intendedSettings": null}), "intendedSettings"),
    ]
}

#[tokio::test]
async fn patch_refusals_are_400_invalid_request_naming_the_property() {
    let h = start().await;
    let before = h.emulator().task(seed::EXAMPLE_TASK_ID);
    for (body, property) in refused_bodies() {
        let response = h.patch(seed::EXAMPLE_TASK_ID, &body).await;
        let message = expect_error(response, StatusCode::BAD_REQUEST, "invalidRequest").await;
        assert!(
            message.contains(&format!("'{property}'")),
            "{body}: {message}"
        );
    }
    assert_eq!(
        h.emulator().task(seed::EXAMPLE_TASK_ID),
        before,
        "nothing applied"
    );
}

#[tokio::test]
async fn patch_body_must_be_a_json_object() {
    let h = start().await;
    for raw in [
        "[]",
        "\"text\"",
        "42",
        "null",
        "{\"displayName\":",
        "<xml/>",
        "",
    ] {
        let response = h
            .client
            .patch(h.task_url(seed::EXAMPLE_TASK_ID))
            .header(CONTENT_TYPE, "application/json")
            .body(raw)
            .send()
            .await
            .expect("PATCH");
        expect_error(response, StatusCode::BAD_REQUEST, "invalidRequest").await;
    }
}

#[tokio::test]
async fn patch_accepts_gzip_bodies_like_the_graph_sdks_send() {
    let h = start().await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(br#"{"displayName":"zipped"}"#)
        .expect("compress");
    let compressed = encoder.finish().expect("compress");
    let response = h
        .client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .header(CONTENT_TYPE, "application/json")
        .header(CONTENT_ENCODING, "gzip")
        .body(compressed)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json(response).await["displayName"], "zipped");
    assert_eq!(
        h.emulator().requests().last().and_then(|r| r.body.clone()),
        Some(json!({"displayName": "zipped"}))
    );

    let response = h
        .client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .header(CONTENT_ENCODING, "br")
        .body("{}")
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let h = start().await;
    let huge = format!(r#"{{"displayName":"{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let response = h
        .client
        .patch(h.task_url(seed::EXAMPLE_TASK_ID))
        .header(CONTENT_TYPE, "application/json")
        .body(huge)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
