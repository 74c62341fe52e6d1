//! Every filter the gateway accepts is one the emulator evaluates: filters
//! generated from the gateway's grammar (each comparison operator, each
//! kind of literal on each kind of property, `and`, `or`, `not` and
//! parentheses) pass the gateway's check and are answered 200 by the
//! emulator over real HTTP, never "Invalid filter clause".

use graph_grpc_gateway::emulator::Emulator;
use graph_grpc_gateway::translate::filter;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::net::SocketAddr;

const CASES: u32 = 256;

const OPERATORS: [&str; 6] = ["eq", "ne", "gt", "ge", "lt", "le"];
const STRINGS: [&str; 6] = [
    "displayName",
    "description",
    "creator",
    "creatorNotes",
    "assignedTo",
    "insights",
];
const ENUMS: [&str; 6] = [
    "status",
    "priority",
    "category",
    "applicablePlatform",
    "endpointSecurityPolicy",
    "endpointSecurityPolicyProfile",
];
const MEMBERS: [&str; 8] = [
    "pending",
    "active",
    "completed",
    "high",
    "none",
    "windows10AndLater",
    "firewall",
    "notYetAMember",
];

/// A single-quoted OData string of printable text, quotes doubled.
fn quoted() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,12}",
        1 => "\\PC{0,4}",
    ]
    .prop_map(|s| format!("'{}'", s.replace('\'', "''")))
}

fn date() -> impl Strategy<Value = String> {
    (
        1990..2100i32,
        1..=12u8,
        1..=28u8,
        0..24u8,
        0..60u8,
        proptest::option::of("[0-9]{1,7}"),
        prop_oneof![
            Just("Z".to_owned()),
            Just("+02:00".to_owned()),
            Just("-08:00".to_owned())
        ],
    )
        .prop_map(|(y, mo, d, h, mi, fraction, offset)| {
            let fraction = fraction.map_or_else(String::new, |f| format!(".{f}"));
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:18{fraction}{offset}")
        })
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

/// `property op literal`, the literal suiting the property.
fn comparison() -> impl Strategy<Value = String> {
    let op = || proptest::sample::select(&OPERATORS[..]);
    let null = || Just("null".to_owned());
    prop_oneof![
        (
            proptest::sample::select(&STRINGS[..]),
            op(),
            prop_oneof![4 => quoted(), 1 => null()]
        ),
        (
            proptest::sample::select(&ENUMS[..]),
            op(),
            prop_oneof![
                4 => proptest::sample::select(&MEMBERS[..]).prop_map(|m| format!("'{m}'")),
                1 => quoted(),
                1 => null(),
            ]
        ),
        (
            Just("id"),
            op(),
            prop_oneof![3 => guid(), 1 => quoted(), 1 => null()]
        ),
        (
            Just("managedDeviceCount"),
            op(),
            prop_oneof![4 => any::<i32>().prop_map(|n| n.to_string()), 1 => null()]
        ),
        (
            proptest::sample::select(&["dueDateTime", "createdDateTime"][..]),
            op(),
            prop_oneof![4 => date(), 1 => null()]
        ),
    ]
    .prop_map(|(property, op, literal)| format!("{property} {op} {literal}"))
}

/// Comparisons joined by `and`/`or`, negated, parenthesised.
fn accepted_filter() -> impl Strategy<Value = String> {
    comparison().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

#[test]
fn every_filter_the_gateway_accepts_is_evaluated_by_the_emulator() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let running = rt
        .block_on(Emulator::new().spawn(SocketAddr::from(([127, 0, 0, 1], 0))))
        .expect("emulator on loopback");
    let collection = format!(
        "{}/deviceAppManagement/deviceAppManagementTasks",
        running.base_url
    );
    let http = reqwest::Client::new();
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&accepted_filter(), |text| {
        prop_assert!(
            filter::validate(&text).is_ok(),
            "the gateway refuses {:?}: {:?}",
            text,
            filter::validate(&text)
        );
        let url = reqwest::Url::parse_with_params(&collection, [("$filter", text.as_str())])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (status, body) = rt.block_on(async {
            let response = http.get(url).send().await.expect("answers");
            let status = response.status();
            (status, response.text().await.unwrap_or_default())
        });
        prop_assert_eq!(status.as_u16(), 200, "{:?}: {}", text, body);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(running.emulator.received() >= u64::from(CASES));
}
