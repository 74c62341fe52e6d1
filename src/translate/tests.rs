//! Translation both ways, against the seed page's payloads and Graph's facts.

use super::*;
use crate::proto::v1::{
    DeviceAppManagementTaskCategory as Category, DeviceAppManagementTaskPriority as Priority,
    DeviceAppManagementTaskStatus as Status,
    EndpointSecurityConfigurationApplicablePlatform as Platform,
    EndpointSecurityConfigurationProfileType as Profile,
    EndpointSecurityConfigurationType as Policy, KeyValuePair, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use prost_types::{FieldMask, Timestamp};
use serde_json::{json, Value};

const EXAMPLE_ID: &str = "5d630f12-0f12-5d63-120f-635d120f635d";

/// The seed page's update example with real values (Graph's documented example).
fn example_patch_json() -> Value {
    json!({"@odata.type":"#microsoft.graph.securityConfigurationTask","displayName":"Display Name value",
     "description":"Description value","dueDateTime":"2017-01-01T00:02:18.1994089-08:00",
     "category":"advancedThreatProtection","priority":"high","creator":"Creator value",
     "creatorNotes":"Creator Notes value","assignedTo":"Assigned To value","status":"pending",
     "endpointSecurityPolicy":"antivirus","applicablePlatform":"macOS","endpointSecurityPolicyProfile":"antivirus",
     "insights":"Insights value","managedDeviceCount":2,
     "intendedSettings":[{"@odata.type":"microsoft.graph.keyValuePair","name":"Name value","value":"Value value"}]})
}

/// The example's response: the same object plus id and createdDateTime.
fn example_response_json() -> Value {
    let mut v = example_patch_json();
    v["id"] = json!(EXAMPLE_ID);
    v["createdDateTime"] = json!("2017-01-01T00:02:43.5775965-08:00");
    v
}

fn example_task() -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        id: EXAMPLE_ID.into(),
        display_name: Some("Display Name value".into()),
        description: Some("Description value".into()),
        created_date_time: None,
        due_date_time: Some(Timestamp {
            seconds: 1_483_257_738,
            nanos: 199_408_900,
        }),
        category: Category::AdvancedThreatProtection as i32,
        priority: Priority::High as i32,
        creator: Some("Creator value".into()),
        creator_notes: Some("Creator Notes value".into()),
        assigned_to: Some("Assigned To value".into()),
        status: Status::Pending as i32,
        applicable_platform: Platform::MacOs as i32,
        endpoint_security_policy: Policy::Antivirus as i32,
        endpoint_security_policy_profile: Profile::Antivirus as i32,
        insights: Some("Insights value".into()),
        managed_device_count: Some(2),
        intended_settings: vec![KeyValuePair {
            name: "Name value".into(),
            value: Some("Value value".into()),
        }],
    }
}

fn update(
    task: SecurityConfigurationTask,
    mask: Option<&[&str]>,
) -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(task),
        update_mask: mask.map(|paths| FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..Default::default()
    }
}

fn body_of(req: &UpdateSecurityConfigurationTaskRequest) -> Value {
    let patch = patch_request(req).expect("valid request");
    serde_json::from_slice(&patch.body).expect("json body")
}

fn violations(req: &UpdateSecurityConfigurationTaskRequest) -> Vec<(String, String)> {
    patch_request(req)
        .expect_err("invalid request")
        .violations
        .into_iter()
        .map(|v| (v.field, v.description))
        .collect()
}

fn id_only() -> SecurityConfigurationTask {
    SecurityConfigurationTask {
        id: EXAMPLE_ID.into(),
        ..Default::default()
    }
}

/// Normalises the example's -08:00 due date to the UTC form the gateway sends.
fn utc_due(mut v: Value) -> Value {
    v["dueDateTime"] = json!("2017-01-01T08:02:18.1994089Z");
    v
}

#[test]
fn seed_example_encodes_to_the_documented_patch() {
    assert_eq!(
        body_of(&update(example_task(), None)),
        utc_due(example_patch_json())
    );
}

#[test]
fn seed_example_response_decodes_every_field() {
    let body = serde_json::to_vec(&example_response_json()).expect("json");
    let decoded = task_from_graph(&body).expect("decodes");
    let mut want = example_task();
    want.created_date_time = Some(Timestamp {
        seconds: 1_483_257_763,
        nanos: 577_596_500,
    });
    assert_eq!(decoded.task, want);
    assert!(decoded.unknown_enum_values.is_empty());
}

#[test]
fn every_writable_field_round_trips_through_graph_json() {
    let task = example_task();
    let body = body_of(&update(task.clone(), Some(&["*"])));
    let mut answer = body.clone();
    answer["id"] = json!(EXAMPLE_ID);
    let decoded = task_from_graph(&serde_json::to_vec(&answer).expect("json")).expect("decodes");
    assert_eq!(decoded.task, task);
    let sent: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    for f in fields::Field::all().filter(|f| !f.is_output_only()) {
        assert!(
            sent.contains(&f.graph_name().to_owned()),
            "{} missing",
            f.graph_name()
        );
    }
}

#[test]
fn every_enum_member_is_sent_and_read_as_graph_spells_it() {
    type Setter = fn(&mut SecurityConfigurationTask, i32);
    let cases: [(&enums::GraphEnum, &str, Setter); 6] = [
        (&enums::CATEGORY, "category", |t, v| t.category = v),
        (&enums::PRIORITY, "priority", |t, v| t.priority = v),
        (&enums::STATUS, "status", |t, v| t.status = v),
        (&enums::APPLICABLE_PLATFORM, "applicablePlatform", |t, v| {
            t.applicable_platform = v
        }),
        (
            &enums::ENDPOINT_SECURITY_POLICY,
            "endpointSecurityPolicy",
            |t, v| t.endpoint_security_policy = v,
        ),
        (
            &enums::ENDPOINT_SECURITY_POLICY_PROFILE,
            "endpointSecurityPolicyProfile",
            |t, v| t.endpoint_security_policy_profile = v,
        ),
    ];
    for (table, graph_name, set) in cases {
        for (i, member) in table.members.iter().enumerate() {
            let value = i32::try_from(i + 1).expect("small");
            let mut task = id_only();
            set(&mut task, value);
            let body = body_of(&update(task.clone(), None));
            assert_eq!(body[graph_name], json!(member));
            let mut answer = json!({"@odata.type": ODATA_TYPE, "id": EXAMPLE_ID});
            answer[graph_name] = json!(member);
            let read =
                task_from_graph(&serde_json::to_vec(&answer).expect("json")).expect("decodes");
            assert_eq!(read.task, task, "{graph_name}={member}");
        }
    }
}

#[test]
fn without_mask_only_populated_fields_are_sent() {
    let mut task = id_only();
    task.display_name = Some(String::new()); // present and empty is populated
    task.managed_device_count = Some(0);
    task.created_date_time = Some(Timestamp::default()); // output only
    let patch = patch_request(&update(task, None)).expect("valid");
    let body: Value = serde_json::from_slice(&patch.body).expect("json");
    assert_eq!(
        body,
        json!({"@odata.type": ODATA_TYPE, "displayName": "", "managedDeviceCount": 0})
    );
    assert_eq!(
        patch.fields.iter().collect::<Vec<_>>(),
        [
            fields::Field::DisplayName,
            fields::Field::ManagedDeviceCount
        ]
    );
    assert_eq!(patch.id.as_str(), EXAMPLE_ID);
}

#[test]
fn mask_sends_exactly_the_named_fields() {
    let body = body_of(&update(example_task(), Some(&["display_name", "status"])));
    assert_eq!(
        body,
        json!({"@odata.type": ODATA_TYPE, "displayName": "Display Name value", "status": "pending"})
    );
}

#[test]
fn mask_naming_an_unset_nullable_string_clears_it() {
    let body = body_of(&update(
        id_only(),
        Some(&["description", "assigned_to", "insights"]),
    ));
    assert_eq!(
        body,
        json!({"@odata.type": ODATA_TYPE, "description": null, "assignedTo": null, "insights": null})
    );
}

#[test]
fn mask_naming_an_unset_non_nullable_field_is_refused() {
    for path in [
        "due_date_time",
        "category",
        "priority",
        "status",
        "applicable_platform",
        "endpoint_security_policy",
        "endpoint_security_policy_profile",
        "managed_device_count",
    ] {
        let v = violations(&update(id_only(), Some(&[path])));
        assert_eq!(v.len(), 1, "{path}: {v:?}");
        assert_eq!(v[0].0, format!("security_configuration_task.{path}"));
        assert!(v[0].1.contains("cannot be cleared"), "{path}: {}", v[0].1);
    }
}

#[test]
fn mask_naming_intended_settings_replaces_the_list_even_with_nothing() {
    let body = body_of(&update(id_only(), Some(&["intended_settings"])));
    assert_eq!(
        body,
        json!({"@odata.type": ODATA_TYPE, "intendedSettings": []})
    );
}

#[test]
fn intended_settings_keep_a_null_value() {
    let mut task = id_only();
    task.intended_settings = vec![KeyValuePair {
        name: "n".into(),
        value: None,
    }];
    let body = body_of(&update(task, None));
    assert_eq!(
        body["intendedSettings"],
        json!([{"@odata.type": "microsoft.graph.keyValuePair", "name": "n", "value": null}])
    );
}

#[test]
fn star_sends_every_writable_field_and_clears_the_unset_nullables() {
    let mut task = example_task();
    task.description = None;
    let body = body_of(&update(task, Some(&["*"])));
    assert_eq!(body["description"], Value::Null);
    assert_eq!(body.as_object().expect("object").len(), 16);
    assert!(body.get("id").is_none() && body.get("createdDateTime").is_none());
}

#[test]
fn output_only_paths_are_ignored_but_not_alone() {
    let body = body_of(&update(
        example_task(),
        Some(&["id", "created_date_time", "priority"]),
    ));
    assert_eq!(body, json!({"@odata.type": ODATA_TYPE, "priority": "high"}));
    let v = violations(&update(example_task(), Some(&["id", "created_date_time"])));
    assert_eq!(v[0].0, "update_mask");
    assert!(v[0].1.contains("nothing to update"));
}

#[test]
fn unknown_nested_and_indexed_paths_are_named() {
    let v = violations(&update(example_task(), Some(&["bogus"])));
    assert_eq!(
        v,
        [(
            "update_mask".to_owned(),
            "unknown path \"bogus\"".to_owned()
        )]
    );
    let v = violations(&update(example_task(), Some(&["intended_settings.name"])));
    assert!(v[0].1.contains("\"intended_settings.name\"") && v[0].1.contains("nested or indexed"));
    let v = violations(&update(example_task(), Some(&["intended_settings[0]"])));
    assert!(v[0].1.contains("nested or indexed"));
    let v = violations(&update(example_task(), Some(&["displayName"])));
    assert!(v[0].1.contains("\"display_name\""), "{}", v[0].1);
}

#[test]
fn a_path_named_twice_is_refused_once_by_name() {
    for paths in [
        &["display_name", "display_name"][..],
        &["display_name", "priority", "display_name", "display_name"],
        &["id", "id", "priority"],
        &["*", "*"],
    ] {
        let repeated = paths[0];
        let v = violations(&update(example_task(), Some(paths)));
        assert_eq!(
            v,
            [(
                "update_mask".to_owned(),
                format!("path \"{repeated}\" is named more than once")
            )],
            "{paths:?}"
        );
    }
    // The Graph spelling is not a second name for the field: it is refused
    // as unknown, so the field is never named twice under two spellings.
    let v = violations(&update(
        example_task(),
        Some(&["display_name", "displayName"]),
    ));
    assert_eq!(v.len(), 1);
    assert!(
        v[0].1.starts_with("unknown path \"displayName\""),
        "{}",
        v[0].1
    );
}

#[test]
fn an_id_that_is_not_a_guid_is_refused_naming_the_form() {
    for id in [
        "$count",
        "microsoft.graph.securityConfigurationTask",
        "x/../y",
    ] {
        let mut task = example_task();
        task.id = id.into();
        assert_eq!(
            violations(&update(task, None)),
            [(
                "security_configuration_task.id".to_owned(),
                crate::translate::NOT_A_GUID.to_owned()
            )],
            "{id}"
        );
    }
}

#[test]
fn empty_mask_means_no_mask() {
    let with_empty = body_of(&update(example_task(), Some(&[])));
    assert_eq!(with_empty, body_of(&update(example_task(), None)));
}

#[test]
fn nothing_to_update_is_refused() {
    let v = violations(&update(id_only(), None));
    assert_eq!(v[0].0, "security_configuration_task");
    assert!(v[0].1.starts_with("nothing to update"));
}

#[test]
fn missing_task_or_id_is_refused() {
    let req = UpdateSecurityConfigurationTaskRequest::default();
    assert_eq!(
        violations(&req)[0],
        ("security_configuration_task".into(), "required".into())
    );
    let mut task = example_task();
    task.id.clear();
    assert_eq!(
        violations(&update(task, None))[0],
        ("security_configuration_task.id".into(), "required".into())
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut task = example_task();
    task.id.clear();
    task.managed_device_count = Some(65_537);
    task.status = 42;
    task.due_date_time = Some(Timestamp {
        seconds: timestamp::MAX_SECONDS + 1,
        nanos: 0,
    });
    let fields: Vec<_> = violations(&update(task, Some(&["*", "nope"])))
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    for want in [
        "security_configuration_task.id",
        "update_mask",
        "security_configuration_task.managed_device_count",
        "security_configuration_task.status",
        "security_configuration_task.due_date_time",
    ] {
        assert!(fields.iter().any(|f| f == want), "{want} not in {fields:?}");
    }
}

#[test]
fn managed_device_count_bounds() {
    for (n, ok) in [
        (-1, false),
        (0, true),
        (65_536, true),
        (65_537, false),
        (i32::MAX, false),
    ] {
        let mut task = id_only();
        task.managed_device_count = Some(n);
        assert_eq!(patch_request(&update(task, None)).is_ok(), ok, "{n}");
    }
}

#[test]
fn size_limits() {
    let mut task = id_only();
    task.insights = Some("x".repeat(update::MAX_STRING_BYTES + 1));
    assert_eq!(
        violations(&update(task, None))[0].0,
        "security_configuration_task.insights"
    );

    let mut task = id_only();
    task.intended_settings = (0..=update::MAX_INTENDED_SETTINGS)
        .map(|i| KeyValuePair {
            name: i.to_string(),
            value: None,
        })
        .collect();
    assert!(violations(&update(task, None))[0]
        .1
        .contains("at most 1000"));

    let mut task = id_only();
    task.intended_settings = vec![KeyValuePair::default()];
    assert_eq!(
        violations(&update(task, None))[0].0,
        "security_configuration_task.intended_settings[0].name"
    );
}

#[test]
fn timestamps_outside_graph_are_refused() {
    let mut task = id_only();
    task.due_date_time = Some(Timestamp {
        seconds: 0,
        nanos: 1,
    });
    assert!(violations(&update(task, None))[0].1.contains("100 ns"));
}

#[test]
fn reading_tolerates_unknowns_nulls_and_missing() {
    let body = json!({
        "@odata.type": ODATA_TYPE, "id": "x", "someNewProperty": {"deep": [1, 2]},
        "displayName": null, "status": "someFutureStatus", "priority": "high",
        "intendedSettings": [null, {"name": "a", "value": null}], "managedDeviceCount": null,
        "dueDateTime": "2020-02-29T23:59:59.9999999+14:00"
    });
    let decoded = task_from_graph(&serde_json::to_vec(&body).expect("json")).expect("decodes");
    assert_eq!(decoded.task.display_name, None);
    assert_eq!(decoded.task.status, 0);
    assert_eq!(decoded.task.priority, Priority::High as i32);
    assert_eq!(
        decoded.unknown_enum_values,
        [UnknownEnumValue {
            graph_type: "deviceAppManagementTaskStatus",
            value: "someFutureStatus".into()
        }]
    );
    assert_eq!(
        decoded.task.intended_settings,
        [KeyValuePair {
            name: "a".into(),
            value: None
        }]
    );
    assert_eq!(
        decoded.task.due_date_time,
        Some(Timestamp {
            seconds: 1_582_970_399,
            nanos: 999_999_900
        })
    );
}

#[test]
fn another_task_type_is_not_a_security_task() {
    let body =
        br##"{"@odata.type":"#microsoft.graph.appVulnerabilityTask","id":"x","appName":"a"}"##;
    assert_eq!(
        task_from_graph(body),
        Err(ResponseError::NotSecurityTask {
            odata_type: "#microsoft.graph.appVulnerabilityTask".into()
        })
    );
}

#[test]
fn malformed_bodies_are_errors_not_panics() {
    for body in [
        &b""[..],
        b"<html>Bad Gateway</html>",
        b"{",
        b"[]",
        b"{\"displayName\": 5}",
        b"{\"dueDateTime\": \"tomorrow\"}",
        b"{\"managedDeviceCount\": 99999999999}",
    ] {
        assert!(
            matches!(task_from_graph(body), Err(ResponseError::Malformed(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_page_keeps_only_security_tasks() {
    let body = json!({
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#deviceAppManagement/deviceAppManagementTasks",
        "value": [
            {"@odata.type": ODATA_TYPE, "id": "a"},
            {"@odata.type": "#microsoft.graph.appVulnerabilityTask", "id": "b"},
            {"id": "c"},
            {"@odata.type": ODATA_TYPE, "id": "d", "category": "somethingNew"}
        ],
        "@odata.nextLink": "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks?$skiptoken=x"
    });
    let page = page_from_graph(&serde_json::to_vec(&body).expect("json")).expect("decodes");
    let ids: Vec<_> = page.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "d"]);
    assert_eq!(page.other_types_skipped, 2);
    assert_eq!(page.unknown_enum_values.len(), 1);
    assert!(page.next_link.is_some());
}

#[test]
fn a_single_task_answer_must_be_the_task_asked_for() {
    let id = "5d630f12-0f12-5d63-120f-635d120f635d";
    let answer = |v: Value| task_answer(&serde_json::to_vec(&v).expect("json"), id);
    let decoded =
        answer(json!({"@odata.type": ODATA_TYPE, "id": id, "displayName": "d"})).expect("the task");
    assert_eq!(decoded.task.id, id);
    // Graph's GUIDs compare without regard to case.
    assert!(answer(json!({"@odata.type": ODATA_TYPE, "id": id.to_uppercase()})).is_ok());
    assert_eq!(
        answer(json!({})),
        Err(ResponseError::NotTheTask(Unexpected::NoODataType))
    );
    assert_eq!(
        answer(json!({"id": id, "displayName": "d"})),
        Err(ResponseError::NotTheTask(Unexpected::NoODataType))
    );
    assert_eq!(
        answer(json!({"@odata.type": ODATA_TYPE, "displayName": "d"})),
        Err(ResponseError::NotTheTask(Unexpected::NoId))
    );
    let other =
        answer(json!({"@odata.type": ODATA_TYPE, "id": "00000000-0000-4000-8000-000000000001"}));
    assert_eq!(
        other,
        Err(ResponseError::NotTheTask(Unexpected::OtherId {
            asked: format!("\"{id}\""),
            got: "\"00000000-0000-4000-8000-000000000001\"".into(),
        }))
    );
    let message = other.expect_err("another task").to_string();
    assert!(message.contains("not the task asked for"), "{message}");
    // A task of another type stays that error.
    assert_eq!(
        answer(json!({"@odata.type": "#microsoft.graph.appVulnerabilityTask", "id": id})),
        Err(ResponseError::NotSecurityTask {
            odata_type: "#microsoft.graph.appVulnerabilityTask".into()
        })
    );
    // An id quoted in the error is cut short, whatever Graph sent.
    let long = "x".repeat(10_000);
    let Err(ResponseError::NotTheTask(Unexpected::OtherId { got, .. })) =
        answer(json!({"@odata.type": ODATA_TYPE, "id": long}))
    else {
        panic!("another id")
    };
    assert!(got.len() < 80, "{got}");
}
