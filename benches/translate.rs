//! Translation cost against the serde floor, side by side.
//!
//! `encode/gateway` is a full update (every writable field, no mask) through
//! `translate::patch_request`: validation plus the JSON body. `encode/serde_floor`
//! serialises a plain struct holding the same data under the same JSON names,
//! with the date already formatted: what any serializer has to pay.
//!
//! `decode/gateway` reads the seed example's response (id, createdDateTime,
//! 7-digit fractions at -08:00) through `translate::task_from_graph`;
//! `decode/serde_floor` deserialises the same bytes into plain `String`s.
//!
//! Run: `cargo bench --bench translate` (each benchmark warms up 1 s and
//! measures 3 s; criterion's own flags still override that).

use criterion::{criterion_group, criterion_main, Criterion};
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskCategory as Category, DeviceAppManagementTaskPriority as Priority,
    DeviceAppManagementTaskStatus as Status,
    EndpointSecurityConfigurationApplicablePlatform as Platform,
    EndpointSecurityConfigurationProfileType as Profile,
    EndpointSecurityConfigurationType as Policy, KeyValuePair, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use graph_grpc_gateway::translate;
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::Duration;

const ID: &str = "5d630f12-0f12-5d63-120f-635d120f635d";

/// (name, value) of the intended settings, as a task from the seed would carry.
const SETTINGS: [(&str, Option<&str>); 4] = [
    ("AllowRealtimeMonitoring", Some("1")),
    ("CloudBlockLevel", Some("High")),
    ("SubmitSamplesConsent", Some("SendSafeSamplesAutomatically")),
    ("ExcludedExtensions", None),
];

/// The seed example's response to a PATCH: the update, plus id and
/// createdDateTime, dates at -08:00 with 7 fractional digits.
const RESPONSE: &str = concat!(
    r##"{"@odata.type":"#microsoft.graph.securityConfigurationTask","##,
    r#""id":"5d630f12-0f12-5d63-120f-635d120f635d","#,
    r#""displayName":"Display Name value","description":"Description value","#,
    r#""createdDateTime":"2017-01-01T00:02:43.5775965-08:00","#,
    r#""dueDateTime":"2017-01-01T00:02:18.1994089-08:00","#,
    r#""category":"advancedThreatProtection","priority":"high","creator":"Creator value","#,
    r#""creatorNotes":"Creator Notes value","assignedTo":"Assigned To value","status":"pending","#,
    r#""applicablePlatform":"macOS","endpointSecurityPolicy":"antivirus","#,
    r#""endpointSecurityPolicyProfile":"antivirus","insights":"Insights value","#,
    r#""managedDeviceCount":2,"intendedSettings":["#,
    r#"{"@odata.type":"microsoft.graph.keyValuePair","name":"AllowRealtimeMonitoring","value":"1"},"#,
    r#"{"@odata.type":"microsoft.graph.keyValuePair","name":"CloudBlockLevel","value":"High"},"#,
    r#"{"@odata.type":"microsoft.graph.keyValuePair","name":"SubmitSamplesConsent","value":"SendSafeSamplesAutomatically"},"#,
    r#"{"@odata.type":"microsoft.graph.keyValuePair","name":"ExcludedExtensions","value":null}]}"#,
);

fn full_update() -> UpdateSecurityConfigurationTaskRequest {
    UpdateSecurityConfigurationTaskRequest {
        security_configuration_task: Some(SecurityConfigurationTask {
            id: ID.into(),
            display_name: Some("Display Name value".into()),
            description: Some("Description value".into()),
            created_date_time: None,
            due_date_time: Some(prost_types::Timestamp {
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
            intended_settings: SETTINGS
                .iter()
                .map(|(name, value)| KeyValuePair {
                    name: (*name).into(),
                    value: value.map(Into::into),
                })
                .collect(),
        }),
        update_mask: None,
        ..Default::default()
    }
}

#[derive(Serialize)]
struct PlainKeyValue {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    name: String,
    value: Option<String>,
}

/// The PATCH body as plain data: what a serializer cannot avoid writing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlainPatch {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    display_name: String,
    description: String,
    due_date_time: String,
    category: &'static str,
    priority: &'static str,
    creator: String,
    creator_notes: String,
    assigned_to: String,
    status: &'static str,
    endpoint_security_policy: &'static str,
    applicable_platform: &'static str,
    endpoint_security_policy_profile: &'static str,
    insights: String,
    managed_device_count: i32,
    intended_settings: Vec<PlainKeyValue>,
}

fn plain_patch() -> PlainPatch {
    PlainPatch {
        odata_type: translate::ODATA_TYPE,
        display_name: "Display Name value".into(),
        description: "Description value".into(),
        due_date_time: "2017-01-01T08:02:18.1994089Z".into(),
        category: "advancedThreatProtection",
        priority: "high",
        creator: "Creator value".into(),
        creator_notes: "Creator Notes value".into(),
        assigned_to: "Assigned To value".into(),
        status: "pending",
        endpoint_security_policy: "antivirus",
        applicable_platform: "macOS",
        endpoint_security_policy_profile: "antivirus",
        insights: "Insights value".into(),
        managed_device_count: 2,
        intended_settings: SETTINGS
            .iter()
            .map(|(name, value)| PlainKeyValue {
                odata_type: "microsoft.graph.keyValuePair",
                name: (*name).into(),
                value: value.map(Into::into),
            })
            .collect(),
    }
}

#[derive(Deserialize)]
#[allow(dead_code)] // read only to be built
struct PlainTaskKeyValue {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

/// The Graph task as plain data: what a deserializer cannot avoid building.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read only to be built
struct PlainTask {
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    created_date_time: Option<String>,
    #[serde(default)]
    due_date_time: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    creator: Option<String>,
    #[serde(default)]
    creator_notes: Option<String>,
    #[serde(default)]
    assigned_to: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    applicable_platform: Option<String>,
    #[serde(default)]
    endpoint_security_policy: Option<String>,
    #[serde(default)]
    endpoint_security_policy_profile: Option<String>,
    #[serde(default)]
    insights: Option<String>,
    #[serde(default)]
    managed_device_count: Option<i64>,
    #[serde(default)]
    intended_settings: Option<Vec<Option<PlainTaskKeyValue>>>,
}

fn encode(c: &mut Criterion) {
    let req = full_update();
    let plain = plain_patch();
    // Both sides write the same JSON, or the comparison means nothing.
    let gateway = translate::patch_request(&req).expect("valid update").body;
    let floor = serde_json::to_vec(&plain).expect("json");
    assert_eq!(gateway, floor, "the two bodies differ");

    let mut g = c.benchmark_group("encode");
    g.bench_function("gateway", |b| {
        b.iter(|| translate::patch_request(black_box(&req)))
    });
    g.bench_function("serde_floor", |b| {
        b.iter(|| serde_json::to_vec(black_box(&plain)))
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let body = RESPONSE.as_bytes();
    let decoded = translate::task_from_graph(body).expect("decodes");
    assert!(decoded.unknown_enum_values.is_empty());
    assert_eq!(decoded.task.intended_settings.len(), SETTINGS.len());
    assert!(decoded.task.created_date_time.is_some());
    serde_json::from_slice::<PlainTask>(body).expect("plain decodes");

    let mut g = c.benchmark_group("decode");
    g.bench_function("gateway", |b| {
        b.iter(|| translate::task_from_graph(black_box(body)))
    });
    g.bench_function("serde_floor", |b| {
        b.iter(|| serde_json::from_slice::<PlainTask>(black_box(body)))
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the machine is small and shared.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode, decode
}
criterion_main!(benches);
