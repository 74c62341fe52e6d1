//! List filters end to end: refused by the gateway with the byte offset of
//! the problem, or forwarded byte for byte; and every operator the gateway
//! accepts is evaluated by the emulator, selecting exactly the right tasks,
//! so what is sent is shown to be understood.

mod common;

use common::Harness;
use graph_grpc_gateway::emulator::seed;
use graph_grpc_gateway::proto::v1::{
    DeviceAppManagementTaskStatus, ListSecurityConfigurationTasksRequest,
};
use percent_encoding::percent_decode_str;
use tonic::Code;
use tonic_types::StatusExt;

fn list(filter: &str) -> ListSecurityConfigurationTasksRequest {
    ListSecurityConfigurationTasksRequest {
        page_size: 50,
        page_token: String::new(),
        filter: filter.into(),
    }
}

/// The `$filter` value of the last request the emulator received, decoded.
fn last_filter_sent(h: &Harness) -> Option<String> {
    let last = h.emulator().requests().pop()?;
    let (_, query) = last.path_and_query.split_once('?')?;
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("$filter=")?;
        Some(percent_decode_str(value).decode_utf8().ok()?.into_owned())
    })
}

#[tokio::test]
async fn filters_the_emulator_evaluates_arrive_unchanged_and_select() {
    let mut h = Harness::start().await;
    for (filter, status) in [
        (
            "status eq 'pending'",
            DeviceAppManagementTaskStatus::Pending,
        ),
        (
            "(status eq 'active')",
            DeviceAppManagementTaskStatus::Active,
        ),
        (
            "(status eq 'pending') and (status eq 'pending')",
            DeviceAppManagementTaskStatus::Pending,
        ),
    ] {
        let page = h
            .client
            .list_security_configuration_tasks(list(filter))
            .await
            .expect("OK")
            .into_inner();
        assert_eq!(last_filter_sent(&h).as_deref(), Some(filter));
        assert!(!page.security_configuration_tasks.is_empty(), "{filter}");
        assert!(
            page.security_configuration_tasks
                .iter()
                .all(|t| t.status == status as i32),
            "{filter}"
        );
    }
}

/// The ids of every page of `filter`, in order.
async fn ids_for(h: &mut Harness, filter: &str) -> Vec<String> {
    let page = h
        .client
        .list_security_configuration_tasks(list(filter))
        .await
        .unwrap_or_else(|s| panic!("{filter}: {s:?}"))
        .into_inner();
    assert!(page.next_page_token.is_empty(), "{filter}: one page");
    assert_eq!(last_filter_sent(h).as_deref(), Some(filter));
    page.security_configuration_tasks
        .into_iter()
        .map(|t| t.id)
        .collect()
}

#[tokio::test]
async fn every_operator_the_gateway_accepts_selects_the_right_tasks() {
    // The seeded securityConfigurationTasks, in collection order:
    // EXAMPLE   pending   high  count 2   due 2017-01-01T08:02:18Z  "Display Name value"
    // FIREWALL  active    low   count 12  due 2023-05-16T15:00:00Z  "Turn on Windows Defender Firewall"
    // COMPLETED completed none  count 0   due 2022-12-01T05:00:00Z  "Encrypt OS drives with BitLocker"
    use seed::{COMPLETED_TASK_ID as C, EXAMPLE_TASK_ID as E, FIREWALL_TASK_ID as F};
    let mut h = Harness::start().await;
    let by_id = format!("id eq {F}");
    let not_id = format!("id ne {E}");
    let upper_id = format!("id eq {}", F.to_uppercase());
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("status eq 'pending'", vec![E]),
        ("status ne 'pending'", vec![F, C]),
        ("managedDeviceCount gt 2", vec![F]),
        ("managedDeviceCount ge 2", vec![E, F]),
        ("managedDeviceCount lt 12", vec![E, C]),
        ("managedDeviceCount le 0", vec![C]),
        // Enum members in Graph's declared order: unknown, pending, active, completed, rejected.
        ("status gt 'pending'", vec![F, C]),
        ("status le 'active'", vec![E, F]),
        // Strings by code point.
        ("displayName lt 'F'", vec![E, C]),
        ("displayName ge 'Turn'", vec![F]),
        // Dates as instants, whatever the offset written.
        ("dueDateTime lt 2023-01-01T00:00:00Z", vec![E, C]),
        ("dueDateTime ge 2023-05-16T17:00:00+02:00", vec![F]),
        ("dueDateTime gt 2022-12-01T00:00:00-05:00", vec![F]),
        ("dueDateTime le 2022-12-01T05:00:00Z", vec![E, C]),
        ("status eq 'pending' or status eq 'completed'", vec![E, C]),
        ("not status eq 'active'", vec![E, C]),
        ("not (status eq 'active')", vec![E, C]),
        (
            "not status eq 'active' and managedDeviceCount gt 0",
            vec![E],
        ),
        (
            "status eq 'completed' or status eq 'pending' and managedDeviceCount gt 5",
            vec![C],
        ),
        (
            "(status eq 'completed' or status eq 'pending') and managedDeviceCount lt 5",
            vec![E, C],
        ),
        (
            "(priority eq 'low' or priority eq 'high') and not (managedDeviceCount ge 10)",
            vec![E],
        ),
        ("displayName ne null", vec![E, F, C]),
        ("displayName eq null", vec![]),
        ("managedDeviceCount gt null", vec![]),
        (&by_id, vec![F]),
        (&upper_id, vec![F]),
        (&not_id, vec![F, C]),
    ];
    for (filter, want) in cases {
        assert_eq!(ids_for(&mut h, filter).await, want, "{filter}");
    }
}

#[tokio::test]
async fn refused_filters_say_what_and_where_and_never_reach_graph() {
    let mut h = Harness::start().await;
    let before = h.emulator().requests().len();
    for (filter, description) in [
        (
            "Status eq 'pending'",
            "at byte 0: unknown property 'Status'",
        ),
        (
            "status eq 'pending' and contains(displayName,'x')",
            "at byte 24: 'contains(' calls a function",
        ),
        ("status eq 'pending", "at byte 10: unbalanced quote"),
        ("(status eq 'pending'", "at byte 0: unbalanced '('"),
        (
            "managedDeviceCount eq 'two'",
            "at byte 22: 'managedDeviceCount' is Edm.Int32",
        ),
    ] {
        let status = h
            .client
            .list_security_configuration_tasks(list(filter))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations.len(), 1, "{bad:?}");
        assert_eq!(bad.field_violations[0].field, "filter");
        assert!(
            bad.field_violations[0].description.starts_with(description),
            "{filter}: {}",
            bad.field_violations[0].description
        );
    }
    assert_eq!(
        h.emulator().requests().len(),
        before,
        "nothing reached Graph"
    );
}
