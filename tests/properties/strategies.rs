//! Generators of update requests: any request at all (for the validation
//! properties), and valid ones only (for the properties that send them).
//!
//! The arbitrary generators lean on the edges the validation rules draw:
//! strings around 16 KiB in one- and two-byte characters, enum values one
//! past the last member, timestamps one tick, one second and one nanosecond
//! outside the range, counts around 0 and 65,536, lists around 1,000 entries.

use crate::oracle::{self, ENUM_FIELDS, MAX_SECONDS, MIN_SECONDS, PROTO_FIELDS};
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::{
    KeyValuePair, SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest,
};
use proptest::collection::vec;
use proptest::prelude::*;
use prost_types::{FieldMask, Timestamp};

/// Characters that mean something to URLs, JSON or terminals.
const AWKWARD: &[&str] = &[
    "/",
    "?",
    "#",
    "&",
    "$",
    "%",
    "%2e",
    ".",
    "..",
    "@",
    ":",
    "\\",
    " ",
    "\"",
    "'",
    "\u{0}",
    "\n",
    "\u{7f}",
    "\u{85}",
    "\u{200b}",
    "\u{feff}",
    "é",
    "😀",
    "\u{10ffff}",
    "{",
    "}",
    "[",
    "]",
];

/// Short strings assembled from awkward pieces and letters.
pub fn awkward_string() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            3 => proptest::sample::select(AWKWARD).prop_map(str::to_owned),
            1 => "[a-zA-Z0-9]{1,4}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// A string exactly around `limit` bytes, of one- or two-byte characters.
pub fn string_near(limit: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        (limit - 2..=limit + 2).prop_map(|n| "a".repeat(n)),
        (limit / 2 - 1..=limit / 2 + 1).prop_map(|n| "é".repeat(n)),
    ]
}

/// Any string: unicode with control characters, awkward pieces, or around
/// the 16 KiB limit.
pub fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => awkward_string(),
        1 => string_near(oracle::MAX_STRING_BYTES),
    ]
}

/// Path segments that mean something to OData or to URL resolution.
const ODATA_SEGMENTS: &[&str] = &[
    "microsoft.graph.securityConfigurationTask",
    "microsoft.graph.appVulnerabilityTask",
    "$count",
    "$ref",
    "$value",
    "$metadata",
    ".",
    "..",
    "...",
    "%2e%2e",
    "x/../y",
];

/// Any GUID, in lower, upper or mixed case.
pub fn any_guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// A GUID one edit away from the accepted form: braces, no hyphens, a digit
/// too many or too few, a non-hex digit, an OData suffix, a space.
fn near_guid() -> impl Strategy<Value = String> {
    (any_guid(), 0..8usize, "[g-zG-Z ./$_]").prop_map(|(g, how, c)| match how {
        0 => format!("{{{g}}}"),
        1 => g.replace('-', ""),
        2 => format!("{g}0"),
        3 => g[..g.len() - 1].to_owned(),
        4 => format!("{c}{}", &g[1..]),
        5 => format!("{g}/$ref"),
        6 => format!("{g} "),
        _ => format!("{}{c}{}", &g[..20], &g[21..]),
    })
}

/// Task ids: seeded and random GUIDs, near misses, OData segments, empty,
/// long, anything.
pub fn any_id() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => proptest::sample::select(&seed::ALL_TASK_IDS[..]).prop_map(str::to_owned),
        2 => any_guid(),
        2 => near_guid(),
        1 => Just(String::new()),
        1 => proptest::sample::select(ODATA_SEGMENTS).prop_map(str::to_owned),
        1 => string_near(256),
        2 => any::<String>(),
        2 => awkward_string(),
    ]
}

/// An enum number: every member, zero, one past the end, any `i32`.
pub fn any_enum(members: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        4 => 0..=members + 1,
        1 => any::<i32>(),
        1 => proptest::sample::select(vec![-1, i32::MIN, i32::MAX]),
    ]
}

pub fn any_timestamp() -> impl Strategy<Value = Timestamp> {
    let seconds = prop_oneof![
        3 => MIN_SECONDS..=MAX_SECONDS,
        1 => proptest::sample::select(vec![
            MIN_SECONDS - 1,
            MIN_SECONDS,
            MAX_SECONDS,
            MAX_SECONDS + 1,
            0,
            -1,
            i64::MIN,
            i64::MAX,
        ]),
        1 => any::<i64>(),
    ];
    let nanos = prop_oneof![
        3 => (0..10_000_000i32).prop_map(|t| t * 100),
        1 => proptest::sample::select(vec![
            -1,
            -100,
            1,
            99,
            150,
            999_999_900,
            999_999_999,
            1_000_000_000,
            i32::MIN,
            i32::MAX,
        ]),
        1 => any::<i32>(),
    ];
    (seconds, nanos).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

pub fn any_count() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => 0..=oracle::MAX_MANAGED_DEVICE_COUNT,
        1 => proptest::sample::select(vec![-1, 0, 65_536, 65_537, i32::MIN, i32::MAX]),
        1 => any::<i32>(),
    ]
}

fn any_setting() -> impl Strategy<Value = KeyValuePair> {
    let name = prop_oneof![
        1 => Just(String::new()),
        4 => any_text(),
    ];
    (name, proptest::option::of(any_text())).prop_map(|(name, value)| KeyValuePair { name, value })
}

pub fn any_settings() -> impl Strategy<Value = Vec<KeyValuePair>> {
    let small_pair = ("[a-z]{0,3}", proptest::option::of("[a-z]{0,3}"))
        .prop_map(|(name, value)| KeyValuePair { name, value });
    prop_oneof![
        8 => vec(any_setting(), 0..4),
        1 => vec(small_pair, oracle::MAX_INTENDED_SETTINGS - 1..=oracle::MAX_INTENDED_SETTINGS + 1),
    ]
}

/// Mask paths: field names, `*`, Graph's camelCase names, nested and indexed
/// paths, and anything.
pub fn any_mask_path() -> impl Strategy<Value = String> {
    let field = || proptest::sample::select(PROTO_FIELDS);
    prop_oneof![
        6 => field().prop_map(str::to_owned),
        1 => Just("*".to_owned()),
        1 => field().prop_map(oracle::camel_case),
        1 => (field(), "[a-z]{1,5}").prop_map(|(f, sub)| format!("{f}.{sub}")),
        1 => (field(), 0..3u8).prop_map(|(f, i)| format!("{f}[{i}]")),
        1 => Just(String::new()),
        1 => any_text(),
    ]
}

/// No mask, a few paths (often one named twice), or dozens (more problems
/// than one answer lists).
pub fn any_mask() -> impl Strategy<Value = Option<FieldMask>> {
    let repeated = (vec(any_mask_path(), 1..4), any::<proptest::sample::Index>()).prop_map(
        |(mut paths, i)| {
            let again = paths[i.index(paths.len())].clone();
            paths.push(again);
            paths
        },
    );
    let paths = prop_oneof![
        5 => vec(any_mask_path(), 0..6),
        1 => repeated,
        1 => vec(any_mask_path(), 20..40),
    ];
    proptest::option::weighted(0.7, paths).prop_map(|paths| paths.map(|paths| FieldMask { paths }))
}

/// Any task: every field independently set or not, to anything.
pub fn any_task() -> impl Strategy<Value = SecurityConfigurationTask> {
    let strings = vec(proptest::option::weighted(0.5, any_text()), 6);
    let enums = (
        any_enum(ENUM_FIELDS[0].1),
        any_enum(ENUM_FIELDS[1].1),
        any_enum(ENUM_FIELDS[2].1),
        any_enum(ENUM_FIELDS[3].1),
        any_enum(ENUM_FIELDS[4].1),
        any_enum(ENUM_FIELDS[5].1),
    );
    let dates = (
        proptest::option::of(any_timestamp()),
        proptest::option::of(any_timestamp()),
    );
    (
        any_id(),
        strings,
        enums,
        dates,
        proptest::option::of(any_count()),
        any_settings(),
    )
        .prop_map(|(id, strings, enums, dates, count, settings)| {
            let mut s = strings.into_iter();
            SecurityConfigurationTask {
                id,
                display_name: s.next().flatten(),
                description: s.next().flatten(),
                creator: s.next().flatten(),
                creator_notes: s.next().flatten(),
                assigned_to: s.next().flatten(),
                insights: s.next().flatten(),
                category: enums.0,
                priority: enums.1,
                status: enums.2,
                applicable_platform: enums.3,
                endpoint_security_policy: enums.4,
                endpoint_security_policy_profile: enums.5,
                created_date_time: dates.0,
                due_date_time: dates.1,
                managed_device_count: count,
                intended_settings: settings,
            }
        })
}

/// Any update request, including one without a task.
pub fn any_request() -> impl Strategy<Value = UpdateSecurityConfigurationTaskRequest> {
    (proptest::option::weighted(0.97, any_task()), any_mask()).prop_map(|(task, update_mask)| {
        UpdateSecurityConfigurationTaskRequest {
            security_configuration_task: task,
            update_mask,
            ..Default::default()
        }
    })
}

/// A string Graph takes: any unicode (control characters included, JSON
/// escapes them) up to the limit.
fn valid_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => awkward_string(),
        1 => Just("a".repeat(oracle::MAX_STRING_BYTES)),
        1 => Just("é".repeat(oracle::MAX_STRING_BYTES / 2)),
    ]
}

fn valid_timestamp() -> impl Strategy<Value = Timestamp> {
    let seconds = prop_oneof![
        4 => MIN_SECONDS..=MAX_SECONDS,
        1 => proptest::sample::select(vec![MIN_SECONDS, MAX_SECONDS, 0, -1]),
    ];
    let ticks = prop_oneof![
        3 => 0..10_000_000i32,
        1 => proptest::sample::select(vec![0, 1, 9_999_999]),
    ];
    (seconds, ticks).prop_map(|(seconds, ticks)| Timestamp {
        seconds,
        nanos: ticks * 100,
    })
}

fn valid_settings() -> impl Strategy<Value = Vec<KeyValuePair>> {
    let name = prop_oneof![3 => "[A-Za-z][A-Za-z0-9]{0,12}", 1 => valid_text().prop_filter("a name", |n| !n.is_empty())];
    vec(
        (name, proptest::option::of(valid_text()))
            .prop_map(|(name, value)| KeyValuePair { name, value }),
        0..4,
    )
}

/// A writable-field mask: names, `*`, output-only names, each at most once
/// (a path named twice is refused).
fn valid_mask() -> impl Strategy<Value = Option<FieldMask>> {
    let path = prop_oneof![
        8 => proptest::sample::select(PROTO_FIELDS).prop_map(str::to_owned),
        1 => Just("*".to_owned()),
    ];
    let distinct = vec(path, 1..5).prop_map(|paths| {
        let mut seen = Vec::with_capacity(paths.len());
        for p in paths {
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        seen
    });
    proptest::option::weighted(0.6, distinct).prop_map(|p| p.map(|paths| FieldMask { paths }))
}

/// An update the gateway must accept, for one of the seeded
/// securityConfigurationTasks: values in range, and every non-nullable field
/// the mask names is set.
pub fn valid_request() -> impl Strategy<Value = UpdateSecurityConfigurationTaskRequest> {
    let id = proptest::sample::select(&seed::SECURITY_CONFIGURATION_TASK_IDS[..]);
    let strings = vec(proptest::option::of(valid_text()), 6);
    let enum_in = |n: i32| 1..=n;
    let enums = (
        enum_in(ENUM_FIELDS[0].1),
        enum_in(ENUM_FIELDS[1].1),
        enum_in(ENUM_FIELDS[2].1),
        enum_in(ENUM_FIELDS[3].1),
        enum_in(ENUM_FIELDS[4].1),
        enum_in(ENUM_FIELDS[5].1),
    );
    // Which enums are left unset (so unmasked requests send only some).
    let unset = vec(any::<bool>(), 6);
    (
        id,
        strings,
        (enums, unset),
        proptest::option::of(valid_timestamp()),
        proptest::option::of(0..=oracle::MAX_MANAGED_DEVICE_COUNT),
        valid_settings(),
        valid_mask(),
    )
        .prop_map(
            |(id, strings, (enums, unset), due, count, settings, mut update_mask)| {
                // A mask naming only output-only fields names nothing to send.
                if let Some(mask) = update_mask.as_mut() {
                    if mask.paths.iter().all(|p| oracle::is_output_only(p)) {
                        mask.paths.push("display_name".to_owned());
                    }
                }
                let mut s = strings.into_iter();
                let mut e = [enums.0, enums.1, enums.2, enums.3, enums.4, enums.5];
                let masked = update_mask.as_ref().is_some_and(|m| !m.paths.is_empty());
                let named = |f: &str| {
                    update_mask
                        .as_ref()
                        .is_some_and(|m| m.paths.iter().any(|p| p == f || p == "*"))
                };
                for (i, (field, _)) in ENUM_FIELDS.iter().enumerate() {
                    if unset[i] && !named(field) {
                        e[i] = 0;
                    }
                }
                let mut task = SecurityConfigurationTask {
                    id: id.to_owned(),
                    display_name: s.next().flatten(),
                    description: s.next().flatten(),
                    creator: s.next().flatten(),
                    creator_notes: s.next().flatten(),
                    assigned_to: s.next().flatten(),
                    insights: s.next().flatten(),
                    category: e[0],
                    priority: e[1],
                    status: e[2],
                    applicable_platform: e[3],
                    endpoint_security_policy: e[4],
                    endpoint_security_policy_profile: e[5],
                    created_date_time: None,
                    due_date_time: due,
                    managed_device_count: count,
                    intended_settings: settings,
                };
                // A named date or count must be set: Graph cannot clear them.
                if named("due_date_time") && task.due_date_time.is_none() {
                    task.due_date_time = Some(Timestamp {
                        seconds: 1_483_257_738,
                        nanos: 199_408_900,
                    });
                }
                if named("managed_device_count") && task.managed_device_count.is_none() {
                    task.managed_device_count = Some(0);
                }
                // Without a mask, something must be populated.
                if !masked && task.display_name.is_none() {
                    task.display_name = Some("updated".to_owned());
                }
                UpdateSecurityConfigurationTaskRequest {
                    security_configuration_task: Some(task),
                    update_mask,
                    ..Default::default()
                }
            },
        )
}
