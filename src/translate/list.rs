//! `ListSecurityConfigurationTasksRequest` -> the Graph collection query, and
//! page tokens.
//!
//! A page token carries only the query part of Graph's `@odata.nextLink`,
//! never its scheme, host or path: the gateway always sends it to its own
//! configured collection URL, so a token cannot point the gateway elsewhere.
//! It is bound to the filter it was issued for, and every token the gateway
//! issues it accepts again.
//!
//! A filter is checked against the subset Graph evaluates (`filter.rs`) and
//! then forwarded byte for byte, percent-encoded as one query value.

use super::error::{quoted, InvalidRequest, ResponseError};
use crate::proto::v1::ListSecurityConfigurationTasksRequest;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use url::Url;

/// Page size when the caller leaves it at 0.
pub const DEFAULT_PAGE_SIZE: i32 = 100;
/// The largest `$top` sent; larger page sizes are lowered to it (AIP-158).
pub const MAX_PAGE_SIZE: i32 = 999;
/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 2048;
/// The longest page token issued or accepted, in bytes. A token carries
/// Graph's paging options (its skip token is opaque and can run to
/// kilobytes) as base64 of JSON, 4/3 of their size and more with escapes.
pub const MAX_TOKEN_BYTES: usize = 32 * 1024;

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Serialize, Deserialize)]
struct Token {
    /// The query of Graph's nextLink, without its `$filter`.
    q: String,
    /// FNV-1a of the filter the token was issued for.
    f: u64,
    /// Whether the nextLink carried the filter: the next page then carries
    /// the caller's filter again, as the gateway sent it first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    r: bool,
}

fn fingerprint(filter: &str) -> u64 {
    filter.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The query string (without `?`) for one page of the collection.
pub fn list_query(req: &ListSecurityConfigurationTasksRequest) -> Result<String, InvalidRequest> {
    let mut errors = InvalidRequest::default();
    if req.page_size < 0 {
        errors.push("page_size", "must not be negative");
    }
    if req.filter.len() > MAX_FILTER_BYTES {
        errors.push("filter", format!("longer than {MAX_FILTER_BYTES} bytes"));
    }
    if req.filter.chars().any(char::is_control) {
        errors.push("filter", "holds control characters");
    } else if !req.filter.is_empty() && req.filter.len() <= MAX_FILTER_BYTES {
        if let Err(e) = super::filter::validate(&req.filter) {
            errors.push("filter", e.to_string());
        }
    }
    if !req.page_token.is_empty() {
        match decode_token(&req.page_token, &req.filter) {
            Ok(query) => return errors.or_ok(query),
            Err(why) => {
                errors.push("page_token", why);
                return Err(errors);
            }
        }
    }
    let size = match req.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n => n.clamp(1, MAX_PAGE_SIZE),
    };
    let mut query = format!("$top={size}");
    push_filter(&mut query, &req.filter);
    errors.or_ok(query)
}

/// Appends `&$filter=` and the filter, percent-encoded as one value.
fn push_filter(query: &mut String, filter: &str) {
    if !filter.is_empty() {
        query.push_str("&$filter=");
        query.extend(utf8_percent_encode(filter, QUERY_VALUE));
    }
}

/// The page token for Graph's nextLink, bound to `filter`; `None` when the
/// link has no query to continue from.
///
/// The query kept is the one a client following the link would send: the
/// link is parsed as a URL (a relative one against a placeholder base), so
/// whatever is not a query character (spaces, quotes, non-ASCII) comes out
/// percent-encoded, as it goes on the wire. A link that is not a URL, that
/// does more than continue the listing, or that is too long for a token, is
/// an answer the gateway cannot page through: an error now, never a token
/// refused on the next call or a silently shortened listing.
pub fn next_page_token(next_link: &str, filter: &str) -> Result<Option<String>, ResponseError> {
    let unreadable = |why: String| ResponseError::Malformed(format!("@odata.nextLink {why}"));
    let base = Url::parse("https://graph.invalid/").map_err(|e| unreadable(e.to_string()))?;
    let link = Url::options()
        .base_url(Some(&base))
        .parse(next_link)
        .map_err(|e| unreadable(format!("is not a URL: {e}")))?;
    let mut carried_filter = false;
    let rest: Vec<&str> = link
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| {
            let is_filter = pair.starts_with("$filter=");
            carried_filter |= is_filter;
            !is_filter && !pair.is_empty()
        })
        .collect();
    if rest.is_empty() {
        return Ok(None);
    }
    let query = rest.join("&");
    check_continuation(&query).map_err(|why| unreadable(format!("{why}: {}", quoted(&query))))?;
    let token = Token {
        q: query,
        f: fingerprint(filter),
        r: carried_filter,
    };
    let json = serde_json::to_vec(&token).map_err(|e| unreadable(e.to_string()))?;
    let token = URL_SAFE_NO_PAD.encode(json);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unreadable(format!(
            "is too long to carry in a page token ({} bytes)",
            next_link.len()
        )));
    }
    Ok(Some(token))
}

fn decode_token(token: &str, filter: &str) -> Result<String, &'static str> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err("too long to be a page token of this service");
    }
    let json = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "not a page token of this service")?;
    let token: Token =
        serde_json::from_slice(&json).map_err(|_| "not a page token of this service")?;
    if token.f != fingerprint(filter) {
        return Err("issued for another filter; send the same filter as the first page");
    }
    // The query is appended to the collection URL as is, so it must be a
    // query and nothing else.
    let is_query_char = |c: char| c.is_ascii_graphic() && c != '#';
    if token.q.is_empty() || !token.q.chars().all(is_query_char) {
        return Err("not a page token of this service");
    }
    check_continuation(&token.q)?;
    let mut query = token.q;
    if token.r {
        push_filter(&mut query, filter);
    }
    Ok(query)
}

/// The query options a continuation may carry: Graph's paging options.
const CONTINUATION_OPTIONS: [&str; 3] = ["$top", "$skip", "$skiptoken"];

/// Checks that a token's query only continues the listing: each of
/// [`CONTINUATION_OPTIONS`] at most once, with a value of its kind. A token
/// is not signed (any replica must read any other's), so a forged one must
/// not be able to add `$select`, `$expand`, another `$filter` or any other
/// option to what the gateway sends; the filter sent is always the
/// caller's, checked.
fn check_continuation(query: &str) -> Result<(), &'static str> {
    let mut seen = [false; CONTINUATION_OPTIONS.len()];
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(index) = CONTINUATION_OPTIONS.iter().position(|o| *o == name) else {
            return Err("carries a query option other than $top, $skip and $skiptoken");
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err("repeats a query option");
        }
        let digits =
            !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit());
        let ok = match name {
            "$top" => {
                digits
                    && value
                        .parse::<i32>()
                        .is_ok_and(|n| (1..=MAX_PAGE_SIZE).contains(&n))
            }
            "$skip" => digits,
            _ => !value.is_empty(),
        };
        if !ok {
            return Err("carries a query option whose value no page of this collection has");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        page_size: i32,
        page_token: &str,
        filter: &str,
    ) -> ListSecurityConfigurationTasksRequest {
        ListSecurityConfigurationTasksRequest {
            page_size,
            page_token: page_token.to_owned(),
            filter: filter.to_owned(),
        }
    }

    #[test]
    fn first_page_query() {
        assert_eq!(list_query(&req(0, "", "")).as_deref(), Ok("$top=100"));
        assert_eq!(list_query(&req(5, "", "")).as_deref(), Ok("$top=5"));
        assert_eq!(list_query(&req(5000, "", "")).as_deref(), Ok("$top=999"));
        assert_eq!(
            list_query(&req(2, "", "status eq 'pending'")).as_deref(),
            Ok("$top=2&$filter=status%20eq%20%27pending%27")
        );
    }

    #[test]
    fn filter_cannot_add_query_parameters() {
        let e = list_query(&req(1, "", "x&$select=id#y")).expect_err("refused");
        assert_eq!(e.violations[0].field, "filter");
        assert!(e.violations[0].description.starts_with("at byte 1: '&'"));
        // Inside a string literal the same characters are data, encoded.
        let q = list_query(&req(1, "", "displayName eq 'x&$select=id#y'")).expect("valid");
        assert_eq!(
            q,
            "$top=1&$filter=displayName%20eq%20%27x%26%24select%3Did%23y%27"
        );
    }

    #[test]
    fn valid_filters_are_forwarded_byte_for_byte() {
        let filter = "(status eq 'It''s ✓' or not managedDeviceCount ge -2) and dueDateTime lt 2017-01-01T00:02:18.1994089-08:00";
        let q = list_query(&req(1, "", filter)).expect("valid");
        let encoded = q.strip_prefix("$top=1&$filter=").expect("filter last");
        let decoded = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .expect("utf-8");
        assert_eq!(decoded, filter);
    }

    #[test]
    fn an_invalid_filter_is_refused_even_with_a_page_token() {
        let filter = "status eq 'a' or";
        let token = next_page_token("https://g/x?$skiptoken=1", filter)
            .expect("a URL")
            .expect("token");
        let e = list_query(&req(0, &token, filter)).expect_err("bad filter");
        assert_eq!(e.violations.len(), 1);
        assert_eq!(e.violations[0].field, "filter");
        assert!(e.violations[0].description.contains("at byte 16"));
    }

    #[test]
    fn bad_input_is_named() {
        let e = list_query(&req(-1, "", "")).expect_err("negative");
        assert_eq!(e.violations[0].field, "page_size");
        let e = list_query(&req(0, "", "a\u{0}b")).expect_err("control");
        assert_eq!(e.violations[0].field, "filter");
        let e = list_query(&req(0, "garbage!", "")).expect_err("token");
        assert_eq!(e.violations[0].field, "page_token");
    }

    #[test]
    fn token_round_trip_keeps_only_the_query() {
        let link = "https://evil.example/other/path?$top=2&$skiptoken=abc#frag";
        let token = next_page_token(link, "status eq 'a'")
            .expect("a URL")
            .expect("token");
        assert_eq!(
            list_query(&req(0, &token, "status eq 'a'")).as_deref(),
            Ok("$top=2&$skiptoken=abc")
        );
    }

    #[test]
    fn token_is_bound_to_its_filter() {
        let token = next_page_token("https://g/x?$skiptoken=1", "status eq 'pending'")
            .expect("a URL")
            .expect("token");
        let e = list_query(&req(0, &token, "")).expect_err("other filter");
        assert!(e.violations[0].description.contains("another filter"));
    }

    #[test]
    fn forged_token_with_fragment_or_spaces_is_refused() {
        for q in ["a b", "x#y", ""] {
            let forged =
                URL_SAFE_NO_PAD.encode(format!("{{\"q\":\"{q}\",\"f\":{}}}", fingerprint("")));
            assert!(list_query(&req(0, &forged, "")).is_err(), "{q}");
        }
    }

    fn forged(q: &str, filter: &str) -> String {
        let token = Token {
            q: q.to_owned(),
            f: fingerprint(filter),
            r: false,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("json"))
    }

    #[test]
    fn a_token_only_continues_the_listing() {
        let filter = "status eq 'a'";
        for q in [
            "$top=2&$skiptoken=abc",
            "$skiptoken=abc",
            "$top=999&$skip=20",
        ] {
            assert_eq!(
                list_query(&req(0, &forged(q, filter), filter)).as_deref(),
                Ok(q),
                "{q}"
            );
        }
        for (q, why) in [
            ("$top=1&$select=id", "other than $top"),
            ("$expand=x", "other than $top"),
            ("$top=1&api-version=2", "other than $top"),
            ("$top=2&$filter=status%20eq%20%27b%27", "other than $top"),
            ("$top=1&$top=2", "repeats"),
            ("$skiptoken=a&&$top=1", "other than $top"),
            ("$top=1000", "whose value"),
            ("$top=0", "whose value"),
            ("$top=-1", "whose value"),
            ("$top=1e3", "whose value"),
            ("$skip=x", "whose value"),
            ("$skiptoken=", "whose value"),
            ("$skiptoken", "whose value"),
            ("%24top=1", "other than $top"),
            ("$TOP=1", "other than $top"),
        ] {
            let e = list_query(&req(0, &forged(q, filter), filter)).expect_err(q);
            assert_eq!(e.violations[0].field, "page_token", "{q}");
            assert!(e.violations[0].description.contains(why), "{q}: {e}");
        }
    }

    #[test]
    fn a_carried_filter_is_sent_again_as_the_gateway_sent_it() {
        let filter = "displayName eq 'a+b' and dueDateTime lt 2017-01-01T00:00:00+01:00";
        let first = list_query(&req(2, "", filter)).expect("valid");
        let sent = first.strip_prefix("$top=2").expect("top first");
        // Graph may write the filter its own way in the nextLink.
        let link = "https://g/x?$top=2&$filter=displayName+eq+'a+b'+and+x&$skiptoken=s1";
        let token = next_page_token(link, filter)
            .expect("a URL")
            .expect("token");
        assert_eq!(
            list_query(&req(0, &token, filter)).as_deref(),
            Ok(format!("$top=2&$skiptoken=s1{sent}").as_str())
        );
        // A link without the filter is continued without it.
        let token = next_page_token("https://g/x?$skiptoken=s2", filter)
            .expect("a URL")
            .expect("token");
        assert_eq!(
            list_query(&req(0, &token, filter)).as_deref(),
            Ok("$skiptoken=s2")
        );
        // A link with nothing but the filter does not continue.
        assert_eq!(next_page_token("https://g/x?$filter=x", filter), Ok(None));
    }

    #[test]
    fn link_without_query_ends_paging() {
        assert_eq!(next_page_token("https://g/x", ""), Ok(None));
        assert_eq!(next_page_token("https://g/x?", ""), Ok(None));
        assert_eq!(next_page_token("https://g/x?#frag", ""), Ok(None));
    }

    /// A token keeps the query as it goes on the wire, so the gateway never
    /// issues a token it would then refuse.
    #[test]
    fn link_query_is_kept_as_sent() {
        let cases: [(&str, Option<&str>); 4] = [
            ("https://g/x? ", None),
            ("https://g/x?$skiptoken=a b", Some("$skiptoken=a%20b")),
            (
                "https://g/x?$skiptoken=\"é\"",
                Some("$skiptoken=%22%C3%A9%22"),
            ),
            ("/beta/x?$skiptoken=1", Some("$skiptoken=1")),
        ];
        for (link, query) in cases {
            let token = next_page_token(link, "").expect("a URL");
            let next = token.map(|t| list_query(&req(0, &t, "")).expect("accepted"));
            assert_eq!(next.as_deref(), query, "{link}");
        }
    }

    /// A long skip token beside the longest filter, echoed: the token still
    /// works, and the filter sent again is the caller's.
    #[test]
    fn long_links_page_on() {
        let filter = format!("displayName eq '{}'", "é".repeat(1000));
        let echoed: String = utf8_percent_encode(&filter, QUERY_VALUE).collect();
        let link = format!(
            "https://g/x?$top=999&$skiptoken={}&$filter={echoed}",
            "s".repeat(4000)
        );
        let token = next_page_token(&link, &filter)
            .expect("a URL")
            .expect("token");
        let query = list_query(&req(0, &token, &filter)).expect("own token accepted");
        assert!(query.ends_with(&echoed));
    }

    #[test]
    fn unusable_links_are_errors() {
        assert!(next_page_token("https://[::1/x?$skiptoken=a", "").is_err());
        for query in ["$select=id", "$top=1&$top=2", "$top=0", "\u{7f}"] {
            let link = format!("https://g/x?{query}");
            assert!(next_page_token(&link, "").is_err(), "{query}");
        }
        let huge = format!("https://g/x?$skiptoken={}", "b".repeat(MAX_TOKEN_BYTES));
        assert!(next_page_token(&huge, "").is_err());
    }
}
