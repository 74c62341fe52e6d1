//! List filters end to end: refused by the gateway with the byte offset of
//! the problem, or forwarded byte for byte; and where the gateway accepts a
//! filter that the emulator does not evaluate, the emulator's refusal still
//! comes back as a precise INVALID_ARGUMENT.

mod common;

use common::Harness;
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

#[tokio::test]
async fn filters_outside_the_emulators_subset_get_its_precise_refusal() {
    let mut h = Harness::start().await;
    for (filter, detail) in [
        ("status ne 'pending'", "the operator 'ne' is not supported"),
        (
            "managedDeviceCount gt 1",
            "the operator 'gt' is not supported",
        ),
        ("status eq 'a' or status eq 'b'", "unexpected 'or'"),
        ("not status eq 'a'", "'not'"),
        (
            "id eq 5d630f12-0f12-5d63-120f-635d120f635d",
            "is not a valid literal",
        ),
    ] {
        let before = h.emulator().requests().len();
        let status = h
            .client
            .list_security_configuration_tasks(list(filter))
            .await
            .expect_err("the emulator refuses it");
        assert_eq!(
            h.emulator().requests().len(),
            before + 1,
            "{filter}: sent once"
        );
        assert_eq!(last_filter_sent(&h).as_deref(), Some(filter));
        assert_eq!(status.code(), Code::InvalidArgument, "{filter}: {status:?}");
        assert!(
            status.message().starts_with("Invalid filter clause")
                && status.message().contains(detail),
            "{filter}: {}",
            status.message()
        );
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.domain, "graph.microsoft.com");
        assert_eq!(info.metadata["http-status"], "400");
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
