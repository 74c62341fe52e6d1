//! Hostile input through a real gRPC client, the gateway and the emulator:
//! ids, page tokens, filters and metadata built to reach another path, add
//! query options or headers, or point the gateway at another host. Each is
//! refused with INVALID_ARGUMENT and a `BadRequest` naming the field, or is
//! harmless; the emulator's request journal then proves what reached Graph:
//! only the task collection or one task id under it, only the query options
//! the gateway sends itself, and no header the caller chose.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::Harness;
use graph_grpc_gateway::emulator::{seed, RecordedRequest};
use graph_grpc_gateway::proto::v1::{
    ListSecurityConfigurationTasksRequest, SecurityConfigurationTask,
    UpdateSecurityConfigurationTaskRequest,
};
use percent_encoding::percent_decode_str;
use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const COLLECTION: &str = "/beta/deviceAppManagement/deviceAppManagementTasks";

/// Headers the gateway itself sends to Graph; anything else is a leak.
const OUTBOUND_HEADERS: [&str; 11] = [
    "host",
    "authorization",
    "client-request-id",
    "return-client-request-id",
    "accept",
    "accept-encoding",
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    "retry-attempt",
];

/// Asserts `status` is INVALID_ARGUMENT with a violation of `field`.
fn assert_refused(status: &Status, field: &str, input: &str) {
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "{input:?}: {status:?}"
    );
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("{input:?}: no BadRequest in {status:?}"));
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "{input:?}: {field} not named in {bad:?}"
    );
}

/// What a recorded request asked for: the collection (with its query) or
/// one task (its id, decoded).
#[derive(Debug, PartialEq)]
enum Target {
    Collection(Vec<(String, String)>),
    Task(String),
}

/// Reads a journal entry, failing on anything outside the collection, any
/// query on a task, and any header the gateway does not send itself.
fn target(r: &RecordedRequest) -> Target {
    assert!(
        matches!(r.method.as_str(), "GET" | "PATCH"),
        "unexpected method: {r:?}"
    );
    for (name, value) in &r.headers {
        assert!(
            OUTBOUND_HEADERS.contains(&name.as_str()),
            "a header the gateway does not send reached Graph: {name}: {value}"
        );
        assert!(
            !value.to_ascii_lowercase().contains("evil"),
            "a caller's value reached Graph: {name}: {value}"
        );
    }
    let (path, query) = match r.path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (r.path_and_query.as_str(), None),
    };
    if path == COLLECTION {
        assert_eq!(r.method, "GET", "{r:?}");
        let params: Vec<(String, String)> = query
            .unwrap_or_default()
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_decode_str(value)
                    .decode_utf8()
                    .expect("UTF-8")
                    .into_owned();
                (name.to_owned(), value)
            })
            .collect();
        for (name, _) in &params {
            assert!(
                ["$top", "$filter", "$skiptoken", "$skip"].contains(&name.as_str()),
                "unexpected query option {name}: {r:?}"
            );
            assert_eq!(
                params.iter().filter(|(n, _)| n == name).count(),
                1,
                "{name} repeated: {r:?}"
            );
        }
        return Target::Collection(params);
    }
    let segment = path
        .strip_prefix(COLLECTION)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or_else(|| panic!("a path outside the collection: {r:?}"));
    assert!(query.is_none(), "a task request with a query: {r:?}");
    assert!(!segment.contains('/'), "more than one segment: {r:?}");
    let id = percent_decode_str(segment)
        .decode_utf8()
        .expect("UTF-8")
        .into_owned();
    assert!(id != "." && id != "..", "a relative segment: {r:?}");
    Target::Task(id)
}

/// The journal entries after the first `from`, read by [`target`].
fn sent_since(h: &Harness, from: usize) -> Vec<Target> {
    h.emulator().requests()[from..].iter().map(target).collect()
}

fn hostile_ids() -> Vec<String> {
    [
        // Segments OData reads as something other than a key: a type cast
        // (a collection answers), a count, a reference, a raw value.
        "microsoft.graph.securityConfigurationTask",
        "microsoft.graph.appVulnerabilityTask",
        "$count",
        "$ref",
        "$value",
        "$metadata",
        "$batch",
        // Paths, queries, hosts.
        "../../users",
        "..",
        ".",
        "x/../y",
        "%2e%2e",
        "%2e%2e%2fusers",
        "a/b",
        "a\\b",
        "x?$select=id",
        "x#frag",
        "x&$expand=all",
        "@evil.example",
        "user@evil.example:443",
        "http://evil.example/",
        "//evil.example/x",
        " leading space",
        "tâche ✓ 任务",
        "\u{202e}evil",
        "%00",
        // A GUID with something more, or in another spelling.
        "5d630f12-0f12-5d63-120f-635d120f635d/$ref",
        "5d630f12-0f12-5d63-120f-635d120f635d/$value",
        "5d630f12-0f12-5d63-120f-635d120f635d/microsoft.graph.securityConfigurationTask",
        "5d630f12-0f12-5d63-120f-635d120f635d?$select=id",
        "{5d630f12-0f12-5d63-120f-635d120f635d}",
        "5d630f120f125d63120f635d120f635d",
        "5d630f12-0f12-5d63-120f-635d120f635d ",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(["a".repeat(257), "x".repeat(10 * 1024)])
    .collect()
}

/// Asserts `status` refuses `field` for not being a GUID, saying the form.
fn assert_not_a_guid(status: &Status, field: &str, id: &str) {
    assert_refused(status, field, id);
    let bad = status.get_details_bad_request().expect("BadRequest");
    let violation = bad
        .field_violations
        .iter()
        .find(|v| v.field == field)
        .expect("the field");
    assert!(
        violation
            .description
            .contains("must be a GUID such as 5d630f12-0f12-5d63-120f-635d120f635d"),
        "{id:?}: {violation:?}"
    );
}

#[tokio::test]
async fn ids_that_are_not_guids_are_refused_before_anything_is_sent() {
    let mut h = Harness::start().await;
    for id in hostile_ids() {
        let status = h
            .client
            .get_security_configuration_task(common::get(&id))
            .await
            .expect_err("refused");
        assert_not_a_guid(&status, "id", &id);

        let update = UpdateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(SecurityConfigurationTask {
                id: id.clone(),
                display_name: Some("renamed".into()),
                ..Default::default()
            }),
            update_mask: None,
            ..Default::default()
        };
        let status = h
            .client
            .update_security_configuration_task(update)
            .await
            .expect_err("refused");
        assert_not_a_guid(&status, "security_configuration_task.id", &id);
    }
    assert_eq!(h.emulator().received(), 0, "a refused id reached Graph");
    assert!(h.emulator().requests().is_empty());

    // A GUID in capitals is one: sent as given, one segment, not found.
    let upper = "5D630F12-0F12-5D63-120F-635D120F6FFF";
    let status = h
        .client
        .get_security_configuration_task(common::get(upper))
        .await
        .expect_err("not found");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(sent_since(&h, 0), vec![Target::Task(upper.to_owned())]);
    // Nothing else changed: the seeded task still holds its name.
    let task = h
        .client
        .get_security_configuration_task(common::get(seed::EXAMPLE_TASK_ID))
        .await
        .expect("OK")
        .into_inner();
    assert_ne!(task.display_name.as_deref(), Some("renamed"));
}

fn list(page_token: &str, filter: &str) -> ListSecurityConfigurationTasksRequest {
    ListSecurityConfigurationTasksRequest {
        page_size: 2,
        page_token: page_token.into(),
        filter: filter.into(),
    }
}

/// A page token as an attacker would make one: the service's format with a
/// query of their choosing.
fn forged_token(query: &str, fingerprint_of: &str) -> String {
    let f = fingerprint_of
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    URL_SAFE_NO_PAD.encode(serde_json::json!({"q": query, "f": f}).to_string())
}

#[tokio::test]
async fn hostile_page_tokens_are_refused_or_only_continue_the_listing() {
    let mut h = Harness::start().await;
    let filter = "status eq 'pending'";
    let first = h
        .client
        .list_security_configuration_tasks(ListSecurityConfigurationTasksRequest {
            page_size: 1,
            ..list("", filter)
        })
        .await
        .expect("OK")
        .into_inner();
    let real = first.next_page_token;
    assert!(!real.is_empty(), "the seed has more than one page");

    let mut hostile = vec![
        ("not base64 !".to_owned(), filter),
        (URL_SAFE_NO_PAD.encode("{\"q\":1}"), filter),
        ("A".repeat(64 * 1024), filter),
        (real.clone(), ""),
        (real.clone(), "status eq 'active'"),
    ];
    for query in [
        "$top=1&$select=id",
        "$top=1&$expand=assignments",
        "$skiptoken=x&$skiptoken=y",
        "$top=1&api-version=evil",
        "$top=1#frag",
        "$top=1 &$select=id",
        "$filter=startswith(displayName,'x')",
        "$filter=status%20eq%20%27a%27%26%24select%3Did",
        "/../../users?$top=1",
        "http://evil.example/?$top=1",
    ] {
        hostile.push((forged_token(query, filter), filter));
    }
    let before = h.emulator().requests().len();
    for (token, filter) in &hostile {
        let status = h
            .client
            .list_security_configuration_tasks(list(token, filter))
            .await
            .expect_err("refused");
        assert_refused(&status, "page_token", token);
    }
    assert!(
        sent_since(&h, before).is_empty(),
        "a hostile token reached Graph"
    );

    // The real token continues the same listing, with the same options.
    let before = h.emulator().requests().len();
    h.client
        .list_security_configuration_tasks(list(&real, filter))
        .await
        .expect("the real token works");
    for sent in sent_since(&h, before) {
        let Target::Collection(params) = sent else {
            panic!("a list reached a task: {sent:?}");
        };
        assert!(
            params.contains(&("$filter".into(), filter.into())),
            "{params:?}"
        );
        assert!(params.iter().any(|(n, _)| n == "$skiptoken"), "{params:?}");
    }
}

#[tokio::test]
async fn hostile_filters_are_refused_or_sent_as_one_value() {
    let mut h = Harness::start().await;
    let before = h.emulator().requests().len();
    for filter in [
        "status eq 'a'&$select=id",
        "status eq 'a'&$expand=x",
        "$select=id",
        "status eq 'a'#",
        "status eq 'a' or 1 eq 1",
        "status eq 'a')&(",
        "status eq 'a\u{0}'",
        "status eq 'a'\r\nx-evil: 1",
        "startswith(displayName,'a')",
        "intendedSettings/any(s:s/name eq 'x')",
        "http://evil.example/",
    ] {
        let status = h
            .client
            .list_security_configuration_tasks(list("", filter))
            .await
            .expect_err("refused");
        assert_refused(&status, "filter", filter);
    }
    let long = format!("displayName eq '{}'", "x".repeat(4096));
    let status = h
        .client
        .list_security_configuration_tasks(list("", &long))
        .await
        .expect_err("too long");
    assert_refused(&status, "filter", "a long filter");
    assert!(
        sent_since(&h, before).is_empty(),
        "a refused filter reached Graph"
    );

    // Query syntax inside a string literal is data: one $filter value.
    let filter = "displayName eq '&$select=id#/../../users?x=''1'''";
    let before = h.emulator().requests().len();
    let page = h
        .client
        .list_security_configuration_tasks(list("", filter))
        .await
        .expect("a valid filter")
        .into_inner();
    assert!(page.security_configuration_tasks.is_empty());
    assert_eq!(
        sent_since(&h, before),
        vec![Target::Collection(vec![
            ("$top".into(), "2".into()),
            ("$filter".into(), filter.into()),
        ])]
    );
}

/// A Get carrying `metadata`, as raw bytes.
fn get_with(
    metadata: &[(&'static str, &[u8])],
) -> Request<graph_grpc_gateway::proto::v1::GetSecurityConfigurationTaskRequest> {
    let mut request = Request::new(common::get(seed::EXAMPLE_TASK_ID));
    for (name, value) in metadata {
        let value = MetadataValue::<Ascii>::try_from(*value).expect("a valid header value");
        request
            .metadata_mut()
            .insert(MetadataKey::from_static(name), value);
    }
    request
}

#[tokio::test]
async fn caller_metadata_never_becomes_an_outbound_header() {
    let mut h = Harness::start().await;
    // A gRPC header value cannot hold CR or LF at all: the client refuses it.
    assert!(MetadataValue::<Ascii>::try_from(&b"a\r\nx-evil: 1"[..]).is_err());

    let before = h.emulator().requests().len();
    let passed_through: [&[(&'static str, &[u8])]; 6] = [
        &[("x-forwarded-host", b"evil.example")],
        &[("x-forwarded-for", b"203.0.113.7, evil.example")],
        &[("forwarded", b"host=evil.example;proto=http")],
        &[("host", b"evil.example")],
        &[("authorization", b"Bearer evil-caller-token")],
        &[("x-evil", b"evil"), ("user-agent", b"evil-agent")],
    ];
    for metadata in passed_through {
        h.client
            .get_security_configuration_task(get_with(metadata))
            .await
            .unwrap_or_else(|s| panic!("{metadata:?}: {s:?}"));
    }
    let sent = h.emulator().requests()[before..].to_vec();
    assert_eq!(sent.len(), passed_through.len());
    for r in &sent {
        assert_eq!(target(r), Target::Task(seed::EXAMPLE_TASK_ID.into()));
        let auth = r.authorization.as_deref().unwrap_or_default();
        assert!(
            auth.starts_with("Bearer ") && !auth.contains("evil"),
            "{auth}"
        );
    }

    // Request ids that cannot be forwarded are refused, naming the key.
    let before = h.emulator().requests().len();
    for (key, value) in [
        ("client-request-id", &b"a\tx-evil: 1"[..]),
        ("client-request-id", b"evil.example/../x"),
        ("client-request-id", b"caf\xc3\xa9"),
        ("x-request-id", b"a b"),
        ("x-request-id", &[b'a'; 129]),
    ] {
        let status = h
            .client
            .get_security_configuration_task(get_with(&[(key, value)]))
            .await
            .expect_err("refused");
        assert_refused(&status, &format!("metadata {key}"), key);
    }
    assert!(
        sent_since(&h, before).is_empty(),
        "a refused call reached Graph"
    );

    // A good request id is forwarded as the one client-request-id.
    let before = h.emulator().requests().len();
    h.client
        .get_security_configuration_task(get_with(&[("client-request-id", b"trace:abc_1.2")]))
        .await
        .expect("OK");
    let sent = &h.emulator().requests()[before..];
    assert_eq!(sent.len(), 1);
    let ids: Vec<_> = sent[0]
        .headers
        .iter()
        .filter(|(name, _)| name == "client-request-id")
        .collect();
    assert_eq!(
        ids,
        [&("client-request-id".to_owned(), "trace:abc_1.2".to_owned())]
    );
}
