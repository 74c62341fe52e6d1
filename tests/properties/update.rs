//! `patch_request` on any request: it never panics, refuses exactly the
//! requests the documented rules refuse (naming exactly the fields they
//! name), every refusal becomes INVALID_ARGUMENT with BadRequest details
//! naming real request fields, and every acceptance is the PATCH the rules
//! call for.

use crate::descriptor;
use crate::oracle;
use crate::strategies::{any_request, valid_request};
use graph_grpc_gateway::proto::v1::UpdateSecurityConfigurationTaskRequest;
use graph_grpc_gateway::status::CallError;
use graph_grpc_gateway::translate::{
    patch_request, InvalidRequest, PatchRequest, MAX_VIOLATIONS, ODATA_TYPE,
};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use tonic::Code;
use tonic_types::StatusExt;

const REQUEST: &str = ".graphgateway.v1.UpdateSecurityConfigurationTaskRequest";

/// The most header bytes a refusal may take: gRPC clients cap a response's
/// headers at 16 KiB by default (HTTP/2 counts 32 more per header), and the
/// answer's own metadata needs room beside the status.
const STATUS_HEADER_BUDGET: usize = 10 * 1024;

/// The refusal as the caller receives it: the status, through the one
/// mapping, with its details encoded and decoded again.
pub fn check_refusal(root: &str, e: &InvalidRequest) -> Result<(), TestCaseError> {
    let status = CallError::Invalid(e.clone()).to_status();
    prop_assert_eq!(status.code(), Code::InvalidArgument);
    let bad = status
        .get_details_bad_request()
        .ok_or_else(|| TestCaseError::fail("no BadRequest details"))?;
    prop_assert!(!bad.field_violations.is_empty());
    prop_assert_eq!(bad.field_violations.len(), e.violations.len());
    for v in &bad.field_violations {
        prop_assert!(
            descriptor::names_field(root, &v.field),
            "violation names no request field: {:?}",
            v.field
        );
        prop_assert!(!v.description.is_empty(), "{} has no description", v.field);
    }
    // As it goes on the wire: grpc-status, grpc-message, grpc-status-details-bin.
    let http = status.into_http::<()>();
    let size: usize = http
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    prop_assert!(
        size <= STATUS_HEADER_BUDGET,
        "the status takes {} header bytes",
        size
    );
    Ok(())
}

/// The PATCH holds exactly the selected fields, each as the rules say.
fn check_patch(
    req: &UpdateSecurityConfigurationTaskRequest,
    patch: &PatchRequest,
) -> Result<(), TestCaseError> {
    let task = req
        .security_configuration_task
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("accepted without a task"))?;
    let decoded = percent_decode_str(patch.id.as_str()).decode_utf8();
    prop_assert_eq!(decoded.as_deref().ok(), Some(task.id.as_str()));

    let selected = oracle::selected(req);
    let sent: Vec<&str> = patch.fields.iter().map(|f| f.proto_name()).collect();
    prop_assert_eq!(&sent, &selected);

    let body: serde_json::Value = serde_json::from_slice(&patch.body)
        .map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
    let object = body
        .as_object()
        .ok_or_else(|| TestCaseError::fail("body is not an object"))?;
    prop_assert_eq!(
        object.get("@odata.type").and_then(|t| t.as_str()),
        Some(ODATA_TYPE)
    );
    let mut keys: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "@odata.type")
        .collect();
    let mut want: Vec<String> = selected.iter().map(|f| oracle::camel_case(f)).collect();
    keys.sort_unstable();
    want.sort_unstable();
    prop_assert_eq!(keys, want);
    for field in selected {
        let value = &object[&oracle::camel_case(field)];
        oracle::holds(task, field, value).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn patch_request_follows_the_rules(req in any_request()) {
        let expected = oracle::expected_violations(&req);
        match patch_request(&req) {
            Ok(patch) => {
                prop_assert!(expected.is_empty(), "accepted, but the rules refuse {:?}", expected);
                check_patch(&req, &patch)?;
            }
            Err(e) => {
                let mut got: Vec<String> = e.violations.iter().map(|v| v.field.clone()).collect();
                got.sort();
                if expected.len() <= MAX_VIOLATIONS {
                    prop_assert_eq!(got, expected, "{}", e);
                    prop_assert_eq!(e.omitted, 0);
                } else {
                    // The first ones are kept, the rest counted.
                    prop_assert_eq!(got.len(), MAX_VIOLATIONS);
                    prop_assert_eq!(e.omitted, expected.len() - MAX_VIOLATIONS);
                    let mut left = expected.clone();
                    for field in &got {
                        let at = left.iter().position(|f| f == field);
                        prop_assert!(at.is_some(), "{} is not among {:?}", field, expected);
                        left.remove(at.unwrap_or_default());
                    }
                }
                check_refusal(REQUEST, &e)?;
            }
        }
    }

    #[test]
    fn valid_requests_are_accepted(req in valid_request()) {
        prop_assert_eq!(oracle::expected_violations(&req), Vec::<String>::new());
        let patch = patch_request(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_patch(&req, &patch)?;
    }
}

#[test]
fn oracle_knows_every_task_field() {
    let fields = descriptor::field_names(".graphgateway.v1.SecurityConfigurationTask");
    assert_eq!(fields, oracle::PROTO_FIELDS);
    assert!(descriptor::names_field(
        REQUEST,
        "security_configuration_task.intended_settings[12].name"
    ));
    assert!(!descriptor::names_field(
        REQUEST,
        "security_configuration_task.status[0]"
    ));
    assert!(!descriptor::names_field(
        REQUEST,
        "security_configuration_task.bogus"
    ));
}
