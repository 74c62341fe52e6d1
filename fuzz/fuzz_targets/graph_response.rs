//! Any bytes as a Graph answer: reading a task or a page never panics, and
//! every page token made from a page's nextLink is one the gateway itself
//! accepts for the next page.
#![no_main]

use graph_grpc_gateway::proto::v1::ListSecurityConfigurationTasksRequest;
use graph_grpc_gateway::translate::{
    list_query, next_page_token, page_from_graph, task_from_graph,
};
use libfuzzer_sys::fuzz_target;

/// The filter the token is bound to; any valid one will do.
const FILTER: &str = "status eq 'pending'";

fuzz_target!(|body: &[u8]| {
    if let Ok(decoded) = task_from_graph(body) {
        assert!(decoded
            .unknown_enum_values
            .iter()
            .all(|u| !u.graph_type.is_empty()));
    }
    let Ok(page) = page_from_graph(body) else {
        return;
    };
    let Some(link) = page.next_link.as_deref() else {
        return;
    };
    // A link that cannot be paged through is reported as an unreadable answer.
    let Ok(Some(token)) = next_page_token(link, FILTER) else {
        return;
    };
    let next = ListSecurityConfigurationTasksRequest {
        page_size: 0,
        page_token: token,
        filter: FILTER.to_owned(),
    };
    if let Err(e) = list_query(&next) {
        panic!(
            "a page token issued for {:?} is refused: {e}",
            page.next_link
        );
    }
});
