//! The gateway end to end over loopback: a tonic client, the gateway, and the
//! emulator reached through the real HTTP client.

mod common;

use common::metrics::Scrape;
use common::{fault, get, without_retries, Harness};
use graph_grpc_gateway::emulator::{seed, Fault, FaultBody};
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskPriority as Priority, DeviceAppManagementTaskStatus as Status,
    EndpointSecurityConfigurationProfileType as Profile, KeyValuePair,
    ListSecurityConfigurationTasksRequest, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use prost_types::{FieldMask, Timestamp};
use serde_json::{json, Value};
use tonic::{Code, Request};
use tonic_types::StatusExt;

fn update(
    task: SecurityConfigurationTask,
    mask: Option<&[&str]>,
) -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(task),
        update_mask: mask.map(|p| FieldMask {
            paths: p.iter().map(|s| (*s).to_owned()).collect(),
        }),
        ..Default::default()
    }
}

fn task(id: &str) -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        id: id.into(),
        ..Default::default()
    }
}

fn stored(h: &Harness, id: &str) -> Value {
    h.emulator().task(id).expect("task stored")
}

#[tokio::test]
async fn update_without_mask_sends_the_populated_fields_and_returns_graph_state() {
    let mut h = Harness::start().await;
    let before = stored(&h, seed::EXAMPLE_TASK_ID);
    let mut t = task(seed::EXAMPLE_TASK_ID);
    t.display_name = Some("Rotate BitLocker keys".into());
    t.status = Status::Active as i32;
    t.managed_device_count = Some(0);
    t.due_date_time = Some(Timestamp {
        seconds: 1_767_225_600,
        nanos: 123_456_700,
    });
    let resp = h
        .client
        .update_security_configuration_task(update(t, None))
        .await
        .expect("OK");
    let request_id = resp
        .metadata()
        .get("request-id")
        .expect("request-id")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(resp.metadata().get("client-request-id").is_some());
    let got = resp.into_inner();
    assert_eq!(got.display_name.as_deref(), Some("Rotate BitLocker keys"));
    assert_eq!(got.status, Status::Active as i32);
    assert_eq!(got.managed_device_count, Some(0));
    assert_eq!(
        got.due_date_time.as_ref().map(|d| (d.seconds, d.nanos)),
        Some((1_767_225_600, 123_456_700))
    );
    // Untouched fields keep Graph's values.
    assert_eq!(got.description.as_deref(), before["description"].as_str());
    assert!(got.created_date_time.is_some());

    let after = stored(&h, seed::EXAMPLE_TASK_ID);
    assert_eq!(after["displayName"], "Rotate BitLocker keys");
    assert_eq!(after["status"], "active");
    assert_eq!(after["managedDeviceCount"], 0);
    assert_eq!(after["dueDateTime"], "2026-01-01T00:00:00.1234567Z");
    assert_eq!(after["description"], before["description"]);

    let reqs = h.emulator().requests();
    let patch = reqs.last().expect("a request");
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.path_and_query,
        format!(
            "/beta/deviceAppManagement/deviceAppManagementTasks/{}",
            seed::EXAMPLE_TASK_ID
        )
    );
    assert!(
        patch
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer ")),
        "the emulator's own token is sent"
    );
    let body = patch.body.as_ref().expect("json body");
    assert_eq!(
        body["@odata.type"],
        "#microsoft.graph.securityConfigurationTask"
    );
    let keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    assert_eq!(keys.len(), 5, "only the populated fields: {keys:?}");
    assert!(!request_id.is_empty());
}

#[tokio::test]
async fn update_mask_clears_named_nullables_and_replaces_settings() {
    let mut h = Harness::start().await;
    let mut t = task(seed::EXAMPLE_TASK_ID);
    t.priority = Priority::Low as i32;
    t.display_name = Some("ignored: not in the mask".into());
    let got = h
        .client
        .update_security_configuration_task(update(
            t,
            Some(&["description", "intended_settings", "priority"]),
        ))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.description, None);
    assert!(got.intended_settings.is_empty());
    assert_eq!(got.priority, Priority::Low as i32);
    let after = stored(&h, seed::EXAMPLE_TASK_ID);
    assert_eq!(after["description"], Value::Null);
    assert_eq!(after["intendedSettings"], json!([]));
    assert_ne!(after["displayName"], "ignored: not in the mask");
}

#[tokio::test]
async fn update_with_star_sends_every_writable_field() {
    let mut h = Harness::start().await;
    let mut t = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK")
        .into_inner();
    t.endpoint_security_policy_profile = Profile::FirewallRules as i32;
    t.intended_settings = vec![KeyValuePair {
        name: "EnableFirewall".into(),
        value: Some("true".into()),
    }];
    let got = h
        .client
        .update_security_configuration_task(update(t.clone(), Some(&["*"])))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got, t);
    let body = h
        .emulator()
        .requests()
        .last()
        .and_then(|r| r.body.clone())
        .expect("body");
    assert_eq!(
        body.as_object().expect("object").len(),
        16,
        "every writable field plus @odata.type"
    );
}

/// Problems enough to fill the response headers many times over (a
/// megabyte-long mask path, thousands of paths, a thousand bad settings)
/// still reach the caller as INVALID_ARGUMENT with BadRequest details, not
/// as a transport error.
#[tokio::test]
async fn huge_invalid_updates_are_still_invalid_argument() {
    let mut h = Harness::start().await;
    let long_path = "x".repeat(1 << 20);
    let wide_path = "é".repeat(8000);
    let many_paths: Vec<String> = (0..20_000).map(|i| format!("p{i}")).collect();
    let many: Vec<&str> = many_paths.iter().map(String::as_str).collect();
    let mut bad_settings = task(seed::EXAMPLE_TASK_ID);
    bad_settings.intended_settings = vec![
        KeyValuePair {
            name: String::new(),
            value: None,
        };
        1000
    ];
    let cases = [
        update(task(seed::EXAMPLE_TASK_ID), Some(&[long_path.as_str()])),
        update(task(seed::EXAMPLE_TASK_ID), Some(&[wide_path.as_str()])),
        update(task(seed::EXAMPLE_TASK_ID), Some(&many)),
        update(bad_settings, None),
    ];
    for req in cases {
        let status = h
            .client
            .update_security_configuration_task(req)
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        let bad = status.get_details_bad_request().expect("BadRequest");
        let reported = bad.field_violations.len();
        assert!((1..=graph_grpc_gateway::translate::MAX_VIOLATIONS).contains(&reported));
        assert!(status.message().len() < 4096, "{}", status.message());
    }
    assert_eq!(h.emulator().received(), 0);
}

#[tokio::test]
async fn invalid_updates_name_the_field_and_never_reach_graph() {
    let mut h = Harness::start().await;
    let long = "x".repeat(graph_grpc_gateway::translate::update::MAX_STRING_BYTES + 1);
    let cases: Vec<(UpdateSecurityConfigurationTaskRequest, &str)> = vec![
        (
            UpdateSecurityConfigurationTaskRequest::default(),
            "security_configuration_task",
        ),
        (
            update(task(""), Some(&["display_name"])),
            "security_configuration_task.id",
        ),
        (
            update(task(".."), Some(&["display_name"])),
            "security_configuration_task.id",
        ),
        (
            update(task(seed::EXAMPLE_TASK_ID), None),
            "security_configuration_task",
        ),
        (
            update(task(seed::EXAMPLE_TASK_ID), Some(&["bogus"])),
            "update_mask",
        ),
        (
            update(
                task(seed::EXAMPLE_TASK_ID),
                Some(&["intended_settings.name"]),
            ),
            "update_mask",
        ),
        (
            update(task(seed::EXAMPLE_TASK_ID), Some(&["status"])),
            "security_configuration_task.status",
        ),
        (
            update(task(seed::EXAMPLE_TASK_ID), Some(&["id"])),
            "update_mask",
        ),
        (
            update(
                SecurityConfigurationTask {
                    managed_device_count: Some(65_537),
                    ..task(seed::EXAMPLE_TASK_ID)
                },
                None,
            ),
            "security_configuration_task.managed_device_count",
        ),
        (
            update(
                SecurityConfigurationTask {
                    due_date_time: Some(Timestamp {
                        seconds: 253_402_300_800,
                        nanos: 0,
                    }),
                    ..task(seed::EXAMPLE_TASK_ID)
                },
                None,
            ),
            "security_configuration_task.due_date_time",
        ),
        (
            update(
                SecurityConfigurationTask {
                    priority: 99,
                    ..task(seed::EXAMPLE_TASK_ID)
                },
                None,
            ),
            "security_configuration_task.priority",
        ),
        (
            update(
                SecurityConfigurationTask {
                    insights: Some(long),
                    ..task(seed::EXAMPLE_TASK_ID)
                },
                None,
            ),
            "security_configuration_task.insights",
        ),
        (
            update(
                SecurityConfigurationTask {
                    intended_settings: vec![KeyValuePair::default()],
                    ..task(seed::EXAMPLE_TASK_ID)
                },
                None,
            ),
            "security_configuration_task.intended_settings[0].name",
        ),
    ];
    for (req, field) in cases {
        let status = h
            .client
            .update_security_configuration_task(req)
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        let bad = status
            .get_details_bad_request()
            .expect("BadRequest details");
        assert!(
            bad.field_violations.iter().any(|v| v.field == field),
            "{field} not in {:?}",
            bad.field_violations
        );
        assert!(status.metadata().get("client-request-id").is_some());
    }
    assert_eq!(h.emulator().received(), 0, "nothing may reach Graph");
}

#[tokio::test]
async fn an_id_that_is_not_a_guid_is_refused_and_nothing_is_sent() {
    let mut h = Harness::start().await;
    let status = h
        .client
        .get_security_configuration_task(get("../../users?$x=1#f"))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status.get_details_bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "id");
    assert!(
        bad.field_violations[0]
            .description
            .starts_with("must be a GUID such as "),
        "{bad:?}"
    );
    assert_eq!(h.emulator().received(), 0);
}

#[tokio::test]
async fn get_reads_every_field_and_missing_ids_are_not_found() {
    let mut h = Harness::start().await;
    let got = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.id, seed::EXAMPLE_TASK_ID);
    assert_eq!(got.display_name.as_deref(), Some("Display Name value"));
    assert_eq!(got.managed_device_count, Some(2));
    assert_eq!(got.intended_settings.len(), 1);
    assert_eq!(
        got.created_date_time.as_ref().map(|t| (t.seconds, t.nanos)),
        Some((1_483_257_763, 577_596_500))
    );

    let status = h
        .client
        .get_security_configuration_task(get("00000000-0000-0000-0000-000000000000"))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::NotFound);
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "ITEM_NOT_FOUND");
    assert_eq!(info.domain, "graph.microsoft.com");
    assert!(info.metadata.contains_key("request-id") && info.metadata.contains_key("date"));
    assert_eq!(
        status
            .metadata()
            .get("request-id")
            .and_then(|v| v.to_str().ok()),
        info.metadata.get("request-id").map(String::as_str)
    );
}

#[tokio::test]
async fn a_task_of_another_type_is_refused() {
    let mut h = Harness::start().await;
    let status = h
        .client
        .get_security_configuration_task(get(seed::APP_VULNERABILITY_TASK_ID))
        .await
        .expect_err("other type");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("not a securityConfigurationTask"),
        "{}",
        status.message()
    );
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata["odata-type"],
        "#microsoft.graph.appVulnerabilityTask"
    );

    // Graph itself refuses a securityConfigurationTask PATCH on it; nothing changes.
    let before = stored(&h, seed::APP_VULNERABILITY_TASK_ID);
    let mut t = task(seed::APP_VULNERABILITY_TASK_ID);
    t.display_name = Some("hijack".into());
    let status = h
        .client
        .update_security_configuration_task(update(t, None))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(stored(&h, seed::APP_VULNERABILITY_TASK_ID), before);
}

#[tokio::test]
async fn graph_204_is_read_back_with_a_get() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault {
        body: FaultBody::NoContentAfterApply,
        ..fault(204)
    }]);
    let mut t = task(seed::EXAMPLE_TASK_ID);
    t.assigned_to = Some("secops@contoso.com".into());
    let got = h
        .client
        .update_security_configuration_task(update(t, None))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.assigned_to.as_deref(), Some("secops@contoso.com"));
    assert_eq!(got.display_name.as_deref(), Some("Display Name value"));
    let methods: Vec<_> = h
        .emulator()
        .requests()
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["PATCH", "GET"]);
    assert_eq!(
        stored(&h, seed::EXAMPLE_TASK_ID)["assignedTo"],
        "secops@contoso.com"
    );
}

#[tokio::test]
async fn list_pages_through_only_security_tasks() {
    let mut h = Harness::start().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut calls = 0;
    loop {
        let page = h
            .client
            .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
                page_size: 1,
                page_token: token.clone(),
                filter: String::new(),
            })
            .await
            .expect("OK")
            .into_inner();
        calls += 1;
        assert!(page.security_configuration_tasks.len() <= 1);
        seen.extend(page.security_configuration_tasks.into_iter().map(|t| t.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
        assert!(calls < 50, "paging does not end");
    }
    let reqs = h.emulator().requests();
    let all: Vec<Value> = seen.iter().map(|id| stored(&h, id)).collect();
    assert!(all
        .iter()
        .all(|t| t["@odata.type"] == "#microsoft.graph.securityConfigurationTask"));
    assert!(seen.contains(&seed::EXAMPLE_TASK_ID.to_owned()));
    assert!(!seen.contains(&seed::APP_VULNERABILITY_TASK_ID.to_owned()));
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no task twice: {seen:?}");
    // Every Graph request stayed on the collection path.
    assert!(reqs.iter().all(|r| r
        .path_and_query
        .starts_with("/beta/deviceAppManagement/deviceAppManagementTasks?")));
    // One page answer in one call: the whole collection in one page holds the same tasks.
    let whole = h
        .client
        .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest::default())
        .await
        .expect("OK")
        .into_inner();
    let whole_ids: Vec<_> = whole
        .security_configuration_tasks
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(whole_ids, seen);
    assert!(whole.next_page_token.is_empty());
}

/// Graph echoes the filter in its nextLink; with the longest filter, every
/// character percent-encoded, the page token still carries it and paging
/// goes on to the end.
#[tokio::test]
async fn list_pages_on_with_the_longest_filter() {
    let mut h = Harness::start().await;
    let name = "é".repeat(1000);
    let mut want = Vec::new();
    for _ in 0..3 {
        let mut t = h
            .emulator()
            .task(seed::EXAMPLE_TASK_ID)
            .expect("seeded task");
        t["id"] = Value::Null;
        t["displayName"] = json!(name);
        want.push(h.emulator().insert(t));
    }
    let filter = format!("displayName eq '{name}'");
    assert!(filter.len() <= 2048, "{} bytes", filter.len());
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let page = h
            .client
            .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
                page_size: 1,
                page_token: token.clone(),
                filter: filter.clone(),
            })
            .await
            .expect("every page OK")
            .into_inner();
        seen.extend(page.security_configuration_tasks.into_iter().map(|t| t.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, want);
}

#[tokio::test]
async fn list_filter_is_passed_to_graph_and_binds_the_token() {
    let mut h = Harness::start().await;
    let page = h
        .client
        .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
            page_size: 10,
            page_token: String::new(),
            filter: "status eq 'pending'".into(),
        })
        .await
        .expect("OK")
        .into_inner();
    assert!(!page.security_configuration_tasks.is_empty());
    assert!(page
        .security_configuration_tasks
        .iter()
        .all(|t| t.status == Status::Pending as i32));
    let status = h
        .client
        .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
            page_size: 1,
            page_token: "bm90IGEgdG9rZW4".into(),
            filter: String::new(),
        })
        .await
        .expect_err("bad token");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = h
        .client
        .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
            page_size: 1,
            page_token: String::new(),
            filter: "nonsense(".into(),
        })
        .await
        .expect_err("Graph refuses the filter");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn every_graph_status_maps_through_the_table() {
    let mut h = without_retries().await;
    let table = [
        (400, Code::InvalidArgument),
        (401, Code::Unauthenticated),
        (403, Code::PermissionDenied),
        (404, Code::NotFound),
        (405, Code::Unimplemented),
        (409, Code::Aborted),
        (412, Code::Aborted),
        (413, Code::ResourceExhausted),
        (415, Code::InvalidArgument),
        (422, Code::InvalidArgument),
        (423, Code::FailedPrecondition),
        (429, Code::ResourceExhausted),
        (500, Code::Internal),
        (501, Code::Unimplemented),
        (502, Code::Unavailable),
        (503, Code::Unavailable),
        (504, Code::DeadlineExceeded),
        (507, Code::ResourceExhausted),
        (509, Code::ResourceExhausted),
    ];
    for (http, code) in table {
        // A refused token is replaced and the call sent once more.
        let copies = if http == 401 { 2 } else { 1 };
        let injected = Fault {
            code: Some("someGraphCode".into()),
            message: Some(format!("injected {http}")),
            ..fault(http)
        };
        h.emulator()
            .push_faults(std::iter::repeat_n(injected, copies));
        let status = h
            .client
            .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
            .await
            .expect_err("fault");
        assert_eq!(status.code(), code, "HTTP {http}");
        assert_eq!(status.message(), format!("injected {http}"));
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "SOME_GRAPH_CODE");
        assert_eq!(info.domain, "graph.microsoft.com");
        assert_eq!(info.metadata["http-status"], http.to_string());
        assert!(status.metadata().get("request-id").is_some(), "HTTP {http}");
    }
}

#[tokio::test]
async fn retry_after_past_the_deadline_becomes_retry_info_at_once() {
    let mut h = Harness::start().await;
    h.emulator().push_faults([Fault {
        retry_after: Some("17".into()),
        ..fault(429)
    }]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("429");
    assert_eq!(s.code(), Code::ResourceExhausted);
    let retry = s.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(17)));
    assert_eq!(
        h.emulator().received(),
        1,
        "not retried: 17 s is past the 10 s budget"
    );
}

#[tokio::test]
async fn odd_error_bodies_map_cleanly() {
    let mut h = without_retries().await;
    h.emulator().push_faults([
        Fault {
            body: FaultBody::Raw("<html><body>502 Bad Gateway</body></html>".into()),
            ..fault(502)
        },
        Fault {
            body: FaultBody::Empty,
            ..fault(503)
        },
    ]);
    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("502");
    assert_eq!(s.code(), Code::Unavailable);
    assert_eq!(
        s.get_details_error_info().expect("ErrorInfo").reason,
        "HTTP_502"
    );

    let s = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect_err("503");
    assert_eq!(s.code(), Code::Unavailable);
    assert!(s.get_details_retry_info().is_none());
}

#[tokio::test]
async fn failed_update_is_never_reported_ok() {
    let mut h = Harness::start().await;
    let before = stored(&h, seed::EXAMPLE_TASK_ID);
    h.emulator().push_faults([fault(500)]);
    let mut t = task(seed::EXAMPLE_TASK_ID);
    t.display_name = Some("lost?".into());
    let s = h
        .client
        .update_security_configuration_task(update(t, None))
        .await
        .expect_err("500");
    assert_eq!(s.code(), Code::Internal);
    assert_eq!(stored(&h, seed::EXAMPLE_TASK_ID), before);
}

#[tokio::test]
async fn request_ids_round_trip() {
    let mut h = Harness::start().await;
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.metadata_mut().insert(
        "client-request-id",
        "6f1c2f0e-3b0a-4c1e-9b59-7c1d1c0e2a11"
            .parse()
            .expect("ascii"),
    );
    let resp = h
        .client
        .get_security_configuration_task(req)
        .await
        .expect("OK");
    assert_eq!(
        resp.metadata().get("client-request-id").expect("echoed"),
        "6f1c2f0e-3b0a-4c1e-9b59-7c1d1c0e2a11"
    );
    let recorded = h.emulator().requests().pop().expect("sent");
    assert_eq!(
        recorded.client_request_id.as_deref(),
        Some("6f1c2f0e-3b0a-4c1e-9b59-7c1d1c0e2a11")
    );

    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.metadata_mut()
        .insert("x-request-id", "mesh-trace-42".parse().expect("ascii"));
    let resp = h
        .client
        .get_security_configuration_task(req)
        .await
        .expect("OK");
    assert_eq!(
        resp.metadata().get("client-request-id").expect("echoed"),
        "mesh-trace-42"
    );

    let resp = h
        .client
        .get_security_configuration_task(get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK");
    let generated = resp
        .metadata()
        .get("client-request-id")
        .expect("generated")
        .to_str()
        .expect("ascii");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    let recorded = h.emulator().requests().pop().expect("sent");
    assert_eq!(recorded.client_request_id.as_deref(), Some(generated));

    let sent_before = h.emulator().received();
    let mut req = Request::new(get(seed::EXAMPLE_TASK_ID));
    req.metadata_mut()
        .insert("client-request-id", "has spaces".parse().expect("ascii"));
    let s = h
        .client
        .get_security_configuration_task(req)
        .await
        .expect_err("bad id");
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(h.emulator().received(), sent_before);
}

#[tokio::test]
async fn unknown_enum_members_read_as_unspecified_and_are_counted() {
    let mut h = Harness::start().await;
    let mut t = stored(&h, seed::EXAMPLE_TASK_ID);
    t["id"] = json!("11111111-2222-3333-4444-555555555555");
    t["status"] = json!("someFutureStatus");
    h.emulator().insert(t);
    let got = h
        .client
        .get_security_configuration_task(get("11111111-2222-3333-4444-555555555555"))
        .await
        .expect("OK")
        .into_inner();
    assert_eq!(got.status, 0);
    let metrics = Scrape::get(&h.admin_url("/metrics")).await;
    assert_eq!(
        metrics.value(
            "graph_gateway_graph_unknown_enum_values_total",
            &[("graph_type", "deviceAppManagementTaskStatus")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
