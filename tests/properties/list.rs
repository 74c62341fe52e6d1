//! `list_query` and page tokens on any input: no panic; a refusal is
//! INVALID_ARGUMENT naming real request fields; a first-page query holds
//! `$top` and at most one `$filter` whatever the filter says; a page token
//! works with the filter it was issued for, and only with that one; and
//! every token made from a nextLink is accepted back, continuing exactly
//! where the link points.

use crate::strategies::{any_text, awkward_string, string_near};
use crate::update::check_refusal;
use graph_grpc_gateway::proto::v1::ListSecurityConfigurationTasksRequest;
use graph_grpc_gateway::translate::{list_query, next_page_token};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use url::Url;

const REQUEST: &str = ".graphgateway.v1.ListSecurityConfigurationTasksRequest";
/// "`page_size` (default 100, at most 999)".
const DEFAULT_PAGE_SIZE: i32 = 100;
const MAX_PAGE_SIZE: i32 = 999;
/// The longest filter accepted, in bytes.
const MAX_FILTER_BYTES: usize = 2048;
const COLLECTION: &str =
    "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks";

/// The limits a filter must keep whatever its expression: its OData is
/// checked by the gateway's own parser, which these tests take as given.
fn filter_within_limits(filter: &str) -> bool {
    filter.len() <= MAX_FILTER_BYTES && !filter.chars().any(char::is_control)
}

/// A filter the gateway's parser takes: a string comparison, the string
/// anything printable (quotes doubled, as OData escapes them).
fn string_filter() -> impl Strategy<Value = String> {
    let text = prop_oneof![awkward_string(), any::<String>()]
        .prop_map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>());
    (
        proptest::sample::select(&["displayName", "assignedTo", "status"][..]),
        text,
    )
        .prop_map(|(property, text)| format!("{property} eq '{}'", text.replace('\'', "''")))
        .prop_filter("within the limit", |f| f.len() <= MAX_FILTER_BYTES)
}

fn any_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        2 => Just("status eq 'pending'".to_owned()),
        1 => Just("x&$select=id#y".to_owned()),
        1 => Just("displayName eq 'x&$select=id#y' and status eq 'a $top=1 &$skip=2&$filter=evil'".to_owned()),
        4 => string_filter(),
        3 => any_text(),
        1 => string_near(MAX_FILTER_BYTES),
    ]
}

fn any_page_size() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => -2..=1001i32,
        1 => any::<i32>(),
        1 => Just(0),
    ]
}

/// A skip token: Graph's are opaque, usually base64, possibly with
/// characters a URL carries percent-encoded.
fn skip_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_-]{1,200}",
        // Graph encodes what would end the value; what a URL carries
        // percent-encoded (spaces, quotes, non-ASCII) may come raw.
        // Control characters never appear raw in a URL Graph writes (URL
        // parsers drop them at the ends of a link).
        1 => awkward_string()
            .prop_map(|s| {
                s.chars()
                    .filter(|c| !"#&=%+".contains(*c) && !c.is_control())
                    .collect::<String>()
            })
            .prop_filter("not empty", |s| !s.trim().is_empty()),
        1 => (1000..5000usize).prop_map(|n| "s".repeat(n)),
    ]
}

/// The query of a nextLink as Graph writes it: `$top`, a skip token or
/// offset, and the filter echoed back, percent-encoded, in any order.
fn graph_link_query(filter: &str) -> impl Strategy<Value = String> {
    let filter = filter.to_owned();
    (
        1..=999i32,
        skip_token(),
        proptest::option::of(0..1_000_000u32),
        any::<bool>(),
        Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
    )
        .prop_map(move |(top, skip, offset, echo, order)| {
            let mut pairs = vec![format!("$top={top}"), format!("$skiptoken={skip}")];
            if let Some(offset) = offset {
                pairs.push(format!("$skip={offset}"));
            }
            if echo && !filter.is_empty() {
                let encoded: String = utf8_percent_encode(&filter, NON_ALPHANUMERIC).collect();
                pairs.push(format!("$filter={encoded}"));
            }
            let n = pairs.len();
            pairs.rotate_left(usize::try_from(order % n as u64).unwrap_or(0));
            pairs.join("&")
        })
}

/// Any nextLink query: Graph's shape, or anything at all.
fn any_link_query() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => graph_link_query("status eq 'pending'"),
        1 => awkward_string(),
        1 => any::<String>(),
        1 => "[ -~]{1,64}",
    ]
}

/// The URL the gateway asks for with `query` (it sets the query on its own
/// collection URL).
fn url_with(query: &str) -> Url {
    let mut url = Url::parse(COLLECTION).expect("collection URL");
    url.set_query(Some(query));
    url
}

/// The decoded `name=value` pairs of a query, as Graph reads them.
fn pairs(query: &str) -> Vec<(String, String)> {
    url_with(query)
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The pairs the next page must send: the link's own, its filter replaced
/// by the caller's (the gateway never sends a filter from a token).
fn continuation(link_query: &str, filter: &str) -> Vec<(String, String)> {
    let mut want: Vec<(String, String)> = pairs(link_query)
        .into_iter()
        .filter(|(k, _)| k != "$filter")
        .collect();
    if !filter.is_empty() && pairs(link_query).iter().any(|(k, _)| k == "$filter") {
        want.push(("$filter".to_owned(), filter.to_owned()));
    }
    want
}

/// The first page with `filter` is accepted.
fn filter_accepted(filter: &str) -> bool {
    list_query(&ListSecurityConfigurationTasksRequest {
        page_size: 0,
        page_token: String::new(),
        filter: filter.to_owned(),
    })
    .is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn first_pages_follow_the_rules(page_size in any_page_size(), filter in any_filter(), token in prop_oneof![Just(String::new()), awkward_string(), any::<String>()]) {
        let req = ListSecurityConfigurationTasksRequest { page_size, page_token: token.clone(), filter: filter.clone() };
        match list_query(&req) {
            Err(e) => {
                check_refusal(REQUEST, &e)?;
                let mut fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
                fields.sort_unstable();
                fields.dedup();
                // What must be named, and what may be (an expression the
                // parser refuses).
                let must = [
                    ("filter", !filter_within_limits(&filter)),
                    ("page_size", page_size < 0),
                    ("page_token", !token.is_empty()),
                ];
                for (field, named) in must {
                    if named {
                        prop_assert!(fields.contains(&field), "{} not named: {}", field, e);
                    }
                }
                for field in &fields {
                    let may = match *field {
                        "filter" => !filter.is_empty(),
                        "page_size" => page_size < 0,
                        "page_token" => !token.is_empty(),
                        _ => false,
                    };
                    prop_assert!(may, "{} named: {}", field, e);
                }
            }
            Ok(query) => {
                prop_assert!(page_size >= 0 && filter_within_limits(&filter) && token.is_empty(), "accepted {:?}", req);
                prop_assert!(!query.contains('#'));
                let params: Vec<&str> = query.split('&').collect();
                let size = match page_size { 0 => DEFAULT_PAGE_SIZE, n => n.min(MAX_PAGE_SIZE) };
                prop_assert_eq!(params[0], format!("$top={size}"));
                if filter.is_empty() {
                    prop_assert_eq!(params.len(), 1);
                } else {
                    prop_assert_eq!(params.len(), 2, "{}", query);
                    let value = params[1].strip_prefix("$filter=")
                        .ok_or_else(|| TestCaseError::fail(format!("second parameter: {query}")))?;
                    prop_assert!(!value.contains('$') && !value.contains('='), "{}", value);
                    let decoded = percent_decode_str(value).decode_utf8()
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(decoded, filter.as_str());
                    // The URL sent carries the same two parameters.
                    prop_assert_eq!(pairs(&query), vec![("$top".to_owned(), size.to_string()), ("$filter".to_owned(), filter.clone())]);
                }
            }
        }
    }

    #[test]
    fn page_tokens_are_bound_to_their_filter(
        (filter, query) in any_filter().prop_flat_map(|f| { let q = graph_link_query(&f); (Just(f), q) }),
        other in any_filter(),
        page_size in any_page_size(),
    ) {
        prop_assume!(filter_accepted(&filter));
        let token = next_page_token(&format!("{COLLECTION}?{query}#frag"), &filter)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .ok_or_else(|| TestCaseError::fail("no token for a link with a query"))?;
        // The page size of later pages is the one Graph's link carries.
        let page = |filter: &str| list_query(&ListSecurityConfigurationTasksRequest { page_size: page_size.max(0), page_token: token.clone(), filter: filter.to_owned() });
        let next = page(&filter).map_err(|e| TestCaseError::fail(format!("own token refused: {e}")))?;
        prop_assert_eq!(pairs(&next), continuation(&query, &filter));
        if other != filter {
            let e = page(&other).err().ok_or_else(|| TestCaseError::fail("token worked with another filter"))?;
            prop_assert!(e.violations.iter().any(|v| v.field == "page_token"), "{}", e);
            check_refusal(REQUEST, &e)?;
        }
    }

    #[test]
    fn tokens_from_any_link_are_accepted_back(query in any_link_query(), filter in prop_oneof![Just(String::new()), Just("status eq 'pending'".to_owned()), string_filter()]) {
        prop_assume!(filter_accepted(&filter));
        let link = format!("{COLLECTION}?{query}");
        // What the URL parser makes of the link is what Graph meant.
        let meant = Url::parse(&link).ok().and_then(|u| u.query().map(str::to_owned)).unwrap_or_default();
        match next_page_token(&link, &filter) {
            Ok(Some(token)) => {
                let next = list_query(&ListSecurityConfigurationTasksRequest { page_size: 0, page_token: token, filter: filter.clone() })
                    .map_err(|e| TestCaseError::fail(format!("own token refused: {e}")))?;
                prop_assert_eq!(pairs(&next), continuation(&meant, &filter));
            }
            // Nothing to continue from: the listing ends.
            Ok(None) => prop_assert!(meant.split('&').all(|p| p.is_empty() || p.starts_with("$filter="))),
            // A link that does more than page on is an unreadable answer.
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn graph_shaped_links_always_page_on(query in graph_link_query("status eq 'pending'")) {
        let link = format!("{COLLECTION}?{query}");
        let token = next_page_token(&link, "status eq 'pending'")
            .map_err(|e| TestCaseError::fail(format!("{link}: {e}")))?;
        prop_assert!(token.is_some());
    }
}
