//! OData query options of the list route, and the `@odata.nextLink` that
//! carries them to the next page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::GraphError;
use super::filter::Filter;

pub const DEFAULT_TOP: usize = 100;
pub const MAX_TOP: usize = 999;

/// Options Graph knows for this collection but the emulator does not
/// evaluate; refused so a client never trusts an ignored option.
const UNSUPPORTED: &[&str] = &[
    "$skip", "$orderby", "$select", "$count", "$search", "$expand", "$format", "$apply",
];

/// Prefix inside the opaque `$skiptoken`, so tokens from elsewhere are refused.
const TOKEN_PREFIX: &str = "emulator-after:";

/// Everything that encodes into a URL query value except RFC 3986's unreserved set.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug)]
pub struct ListQuery {
    pub top: usize,
    /// Resume after this sequence number (from `$skiptoken`).
    pub after: Option<u64>,
    /// The filter's text, carried into nextLink, and its parse.
    pub filter: Option<(String, Filter)>,
}

impl ListQuery {
    /// Reads the raw query string of a list request.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, GraphError> {
        let mut top = None;
        let mut after = None;
        let mut filter = None;
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "$top" => set_once(&mut top, &name, parse_top(&value)?)?,
                "$skiptoken" => set_once(&mut after, &name, parse_skiptoken(&value)?)?,
                "$filter" => {
                    let parsed = Filter::parse(&value).map_err(|detail| {
                        GraphError::bad_request(format!("Invalid filter clause: {detail}."))
                    })?;
                    set_once(&mut filter, &name, (value.into_owned(), parsed))?
                }
                option if UNSUPPORTED.contains(&option) => {
                    return Err(GraphError::bad_request(format!(
                        "The query option '{option}' is not supported by the Graph emulator."
                    )))
                }
                option if option.starts_with('$') => {
                    return Err(GraphError::bad_request(format!(
                        "The query parameter '{option}' is not supported."
                    )))
                }
                // Graph ignores custom (non-$) parameters.
                _ => {}
            }
        }
        Ok(ListQuery {
            top: top.unwrap_or(DEFAULT_TOP),
            after,
            filter,
        })
    }

    /// The absolute nextLink resuming after `seq`.
    pub fn next_link(&self, origin: &str, path: &str, seq: u64) -> String {
        let token = URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{seq}"));
        let mut link = format!("{origin}{path}?$top={}&$skiptoken={token}", self.top);
        if let Some((text, _)) = &self.filter {
            link.push_str("&$filter=");
            link.extend(utf8_percent_encode(text, QUERY_VALUE));
        }
        link
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), GraphError> {
    if slot.replace(value).is_some() {
        return Err(GraphError::bad_request(format!(
            "Query option '{name}' was specified more than once, but it must be specified at \
             most once."
        )));
    }
    Ok(())
}

fn parse_top(text: &str) -> Result<usize, GraphError> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_TOP).contains(&n) => Ok(n),
        Ok(_) => Err(GraphError::bad_request(format!(
            "Invalid value '{text}' for $top query option: it must be between 1 and {MAX_TOP}."
        ))),
        Err(_) => Err(GraphError::bad_request(format!(
            "Invalid value '{text}' for $top query option found. The $top query option \
             requires a non-negative integer value."
        ))),
    }
}

fn parse_skiptoken(text: &str) -> Result<u64, GraphError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix(TOKEN_PREFIX)?.parse().ok())
        .ok_or_else(|| GraphError::bad_request(format!("The $skiptoken '{text}' is invalid.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let q = ListQuery::parse(None).expect("no options");
        assert_eq!(q.top, DEFAULT_TOP);
        let q = ListQuery::parse(Some("$top=2&$filter=status%20eq%20'a+b'&x=1")).expect("ok");
        let link = q.next_link("http://h:1", "/beta/x", 7);
        assert_eq!(
            link,
            "http://h:1/beta/x?$top=2&$skiptoken=ZW11bGF0b3ItYWZ0ZXI6Nw&$filter=status%20eq%20%27a%20b%27"
        );
        let query = link.split_once('?').map(|(_, q)| q);
        let again = ListQuery::parse(query).expect("own link parses");
        assert_eq!(again.after, Some(7));
        assert_eq!(
            again.filter.map(|f| f.0),
            Some("status eq 'a b'".to_owned())
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "$top=0",
            "$top=1000",
            "$top=abc",
            "$top=-1",
            "$top=1&$top=2",
            "$skiptoken=nope",
            "$skiptoken=",
            "$filter=status%20or%20x",
            "$orderby=displayName",
            "$bogus=1",
        ] {
            let err = ListQuery::parse(Some(bad)).expect_err(bad);
            assert_eq!(err.code, "BadRequest");
        }
    }
}
