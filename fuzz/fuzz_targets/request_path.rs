//! Any bytes as a gRPC request message (the first byte picks Update, Get or
//! List; the rest is decoded as protobuf, as tonic would): validation never
//! panics, a refusal is INVALID_ARGUMENT with at least one field violation,
//! and what is accepted stays inside the task collection's URL.
#![no_main]

use graph_grpc_gateway::proto::v1::{
    GetSecurityConfigurationTaskRequest, ListSecurityConfigurationTasksRequest,
    UpdateSecurityConfigurationTaskRequest,
};
use graph_grpc_gateway::status::CallError;
use graph_grpc_gateway::translate::{
    is_guid, list_query, patch_request, IdSegment, InvalidRequest,
};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use prost::Message;
use tonic::Code;
use url::Url;

const COLLECTION: &str =
    "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks";

fn refused(e: InvalidRequest) {
    assert!(!e.violations.is_empty());
    let status = CallError::Invalid(e).to_status();
    assert_eq!(status.code(), Code::InvalidArgument);
}

/// Only a GUID is accepted, sent as given, and the segment keeps the URL on
/// the collection, one segment deeper.
fn one_segment(id: &str, segment: &IdSegment) {
    assert!(is_guid(id), "{id:?} accepted");
    assert_eq!(segment.as_str(), id);
    let url = Url::parse(&format!("{COLLECTION}/{}", segment.as_str())).expect("URL");
    assert_eq!(url.host_str(), Some("graph.microsoft.com"));
    assert_eq!((url.query(), url.fragment()), (None, None));
    let segments: Vec<&str> = url.path_segments().expect("path").collect();
    assert_eq!(segments.len(), 4, "{url}");
    let last = percent_decode_str(segments[3])
        .decode_utf8()
        .expect("UTF-8");
    assert_eq!(last, id);
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, message)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let Ok(req) = UpdateSecurityConfigurationTaskRequest::decode(message) else {
                return;
            };
            match patch_request(&req) {
                Ok(patch) => {
                    let task = req
                        .security_configuration_task
                        .as_ref()
                        .expect("accepted with a task");
                    one_segment(&task.id, &patch.id);
                    let body: serde_json::Value =
                        serde_json::from_slice(&patch.body).expect("the PATCH body is JSON");
                    assert!(body.is_object());
                    assert!(!patch.fields.is_empty());
                }
                Err(e) => refused(e),
            }
        }
        1 => {
            let Ok(req) = GetSecurityConfigurationTaskRequest::decode(message) else {
                return;
            };
            if let Ok(segment) = IdSegment::new(&req.id) {
                one_segment(&req.id, &segment);
            }
        }
        _ => {
            let Ok(req) = ListSecurityConfigurationTasksRequest::decode(message) else {
                return;
            };
            match list_query(&req) {
                Ok(query) => {
                    assert!(!query.contains('#'), "{query}");
                    if req.page_token.is_empty() {
                        let params = query.split('&').count();
                        assert_eq!(params, if req.filter.is_empty() { 1 } else { 2 }, "{query}");
                    }
                }
                Err(e) => refused(e),
            }
        }
    }
});
