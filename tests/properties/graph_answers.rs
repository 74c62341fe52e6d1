//! `task_from_graph` and `page_from_graph` on any bytes and any JSON: they
//! never panic, and a well-typed task reads back faithfully.

use graph_grpc_gateway::translate::{page_from_graph, task_from_graph, ODATA_TYPE};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The properties a securityConfigurationTask has, as Graph names them.
const PROPERTIES: &[&str] = &[
    "@odata.type",
    "id",
    "displayName",
    "description",
    "createdDateTime",
    "dueDateTime",
    "category",
    "priority",
    "creator",
    "creatorNotes",
    "assignedTo",
    "status",
    "applicablePlatform",
    "endpointSecurityPolicy",
    "endpointSecurityPolicyProfile",
    "insights",
    "managedDeviceCount",
    "intendedSettings",
];

fn any_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(vec![0i64, -1, 65_536, i64::from(i32::MAX) + 1])
            .prop_map(Value::from),
    ]
}

fn any_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any_number(),
        any::<String>().prop_map(Value::from),
        proptest::sample::select(vec![
            ODATA_TYPE,
            "#microsoft.graph.appVulnerabilityTask",
            "pending",
            "antivirus",
            "macOS",
            "2017-01-01T00:02:18.1994089-08:00",
            "9999-12-31T23:59:59.9999999-14:00",
            "0001-01-01T00:00:00+14:00",
            "2021-09-14T19:05:24",
            "",
        ])
        .prop_map(Value::from),
    ]
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    any_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the task's property names, each holding anything.
fn task_shaped() -> impl Strategy<Value = Value> {
    btree_map(
        proptest::sample::select(PROPERTIES),
        any_json(),
        0..PROPERTIES.len(),
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

/// A page: `value` holding task-shaped items (or anything), maybe a nextLink.
fn page_shaped() -> impl Strategy<Value = Value> {
    let items = prop_oneof![
        4 => vec(task_shaped(), 0..5).prop_map(Value::Array),
        1 => any_json(),
    ];
    (items, proptest::option::of(any_json())).prop_map(|(value, link)| {
        let mut page = Map::new();
        page.insert("value".into(), value);
        if let Some(link) = link {
            page.insert("@odata.nextLink".into(), link);
        }
        Value::Object(page)
    })
}

/// Bytes that are JSON of some shape, or not JSON at all.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => vec(any::<u8>(), 0..256),
        2 => any_json().prop_map(|v| v.to_string().into_bytes()),
        3 => task_shaped().prop_map(|v| v.to_string().into_bytes()),
        3 => page_shaped().prop_map(|v| v.to_string().into_bytes()),
        // Valid JSON cut short, or with a byte changed.
        2 => (page_shaped(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, b)| {
            let mut bytes = v.to_string().into_bytes();
            let i = at.index(bytes.len());
            if b % 2 == 0 { bytes.truncate(i) } else { bytes[i] = b }
            bytes
        }),
    ]
}

/// A DateTimeOffset Graph might write: any instant in range, any offset
/// within ±14:00, 0 to 7 fractional digits.
fn graph_date() -> impl Strategy<Value = (i64, u32, String)> {
    (
        -62_135_596_800i64 + 86_400..253_402_300_799 - 86_400,
        0..10_000_000u32,
        -14 * 3600..=14 * 3600i32,
    )
        .prop_filter_map("representable", |(seconds, ticks, offset)| {
            let offset = UtcOffset::from_whole_seconds(offset / 60 * 60).ok()?;
            let at = OffsetDateTime::from_unix_timestamp(seconds)
                .ok()?
                .replace_nanosecond(ticks * 100)
                .ok()?
                .to_offset(offset);
            Some((seconds, ticks * 100, at.format(&Rfc3339).ok()?))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn graph_answers_never_panic(body in any_body()) {
        let task = task_from_graph(&body);
        let page = page_from_graph(&body);
        if let Ok(page) = page {
            // serde skips the parts of a body it does not read without
            // checking their `\u` escapes, so a page may be read from a body
            // whose ignored parts hold a lone surrogate; nothing else that is
            // not JSON may pass.
            let parsed: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) if e.to_string().contains("unicode") => return Ok(()),
                Err(e) => return Err(TestCaseError::fail(format!("a page was read from non-JSON: {e}"))),
            };
            let items = parsed["value"].as_array().map_or(0, Vec::len);
            prop_assert_eq!(page.tasks.len() + page.other_types_skipped, items);
        }
        if let Ok(decoded) = task {
            for u in &decoded.unknown_enum_values {
                prop_assert!(!u.graph_type.is_empty());
            }
        }
    }

    #[test]
    fn well_typed_tasks_read_faithfully(
        id in any::<String>(),
        name in proptest::option::of(any::<String>()),
        status in proptest::option::of(prop_oneof![Just("pending".to_owned()), Just("active".to_owned()), any::<String>()]),
        due in graph_date(),
        count in any::<i32>(),
        settings in vec((any::<String>(), proptest::option::of(any::<String>())), 0..4),
    ) {
        let body = json!({
            "@odata.type": ODATA_TYPE,
            "id": id,
            "displayName": name,
            "status": status,
            "dueDateTime": due.2,
            "managedDeviceCount": count,
            "intendedSettings": settings.iter().map(|(n, v)| json!({"@odata.type": "microsoft.graph.keyValuePair", "name": n, "value": v})).collect::<Vec<_>>(),
        });
        let decoded = task_from_graph(body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let t = decoded.task;
        prop_assert_eq!(t.id, id);
        prop_assert_eq!(t.display_name, name);
        let due_read = t.due_date_time.expect("dueDateTime read");
        prop_assert_eq!((due_read.seconds, due_read.nanos), (due.0, i32::try_from(due.1).expect("nanos")));
        prop_assert_eq!(t.managed_device_count, Some(count));
        let read: Vec<(String, Option<String>)> = t.intended_settings.into_iter().map(|kv| (kv.name, kv.value)).collect();
        prop_assert_eq!(read, settings);
        // A member is either known (non-zero) or reported as unknown.
        let reported = decoded.unknown_enum_values.iter().any(|u| u.graph_type == "deviceAppManagementTaskStatus");
        match status {
            None => prop_assert!(t.status == 0 && !reported),
            Some(s) => prop_assert!((t.status != 0) != reported, "{s:?} read as {}", t.status),
        }
    }
}
