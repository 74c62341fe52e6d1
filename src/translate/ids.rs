//! Task ids as URL path segments.
//!
//! An id comes from the caller and ends up in a URL, right after the task
//! collection. Graph gives these tasks GUIDs, and anything else there means
//! something else to OData: `microsoft.graph.securityConfigurationTask` is a
//! type cast (a collection answers), `$count` a number, `$ref` and `$value`
//! other resources, `..` another path. So only the form Graph gives (the
//! hyphenated 8-4-4-4-12 hexadecimal GUID, either case) is accepted, and it
//! needs no encoding: every character of it is unreserved in a URL.

/// The longest id an audit record repeats of a refused id, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// A GUID in the form Graph gives task ids, for messages and docs.
pub const EXAMPLE_ID: &str = "5d630f12-0f12-5d63-120f-635d120f635d";

/// Why a non-empty id is refused.
pub const NOT_A_GUID: &str = "must be a GUID such as 5d630f12-0f12-5d63-120f-635d120f635d \
     (32 hexadecimal digits in groups of 8-4-4-4-12, hyphenated, without braces)";

/// The length of each hyphen-separated group of a GUID.
/// A GUID's length, and where its hyphens are (`8-4-4-4-12`).
const GUID_LEN: usize = 36;
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// A task id, checked to be a GUID: exactly one path segment that OData
/// reads as a key and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSegment(String);

impl IdSegment {
    /// Checks an id; the error says why it is refused.
    pub fn new(id: &str) -> Result<Self, &'static str> {
        if id.is_empty() {
            return Err("required");
        }
        if !is_guid(id) {
            return Err(NOT_A_GUID);
        }
        Ok(Self(id.to_owned()))
    }

    /// The segment, the id as given (a GUID needs no encoding).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `8-4-4-4-12` hexadecimal digits, hyphenated, either case. Byte by byte:
/// it runs on every call's id and on every path segment a traced Graph
/// attempt names.
pub fn is_guid(id: &str) -> bool {
    id.len() == GUID_LEN
        && id.bytes().enumerate().all(|(i, b)| {
            if HYPHENS.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_passes_unchanged_in_either_case() {
        for id in [
            EXAMPLE_ID,
            "5D630F12-0F12-5D63-120F-635D120F635D",
            "00000000-0000-0000-0000-000000000000",
            "aBcDeF01-2345-6789-abcd-EF0123456789",
        ] {
            assert_eq!(IdSegment::new(id).map(|s| s.0), Ok(id.to_owned()));
        }
    }

    #[test]
    fn odata_segments_and_paths_are_refused() {
        for hostile in [
            "microsoft.graph.securityConfigurationTask",
            "microsoft.graph.appVulnerabilityTask",
            "$count",
            "$ref",
            "$value",
            "$metadata",
            "$batch",
            ".",
            "..",
            "x/../y",
            "%2e%2e",
            "../../users",
            "a/b",
            "x?$select=id",
            "x#frag",
            "@evil.example",
            "a b",
            "ü/",
            "\\..\\x",
            "x;y=z",
            "5d630f12-0f12-5d63-120f-635d120f635d/$ref",
            "5d630f12-0f12-5d63-120f-635d120f635d/$value",
            "5d630f12-0f12-5d63-120f-635d120f635d?x",
            "5d630f12-0f12-5d63-120f-635d120f635d ",
            " 5d630f12-0f12-5d63-120f-635d120f635d",
            "5d630f12-0f12-5d63-120f-635d120f635d\n",
            "5d630f12-0f12-5d63-120f-635d120f635d-",
            "-5d630f12-0f12-5d63-120f-635d120f635d",
            "{5d630f12-0f12-5d63-120f-635d120f635d}",
            "(5d630f12-0f12-5d63-120f-635d120f635d)",
            "5d630f120f125d63120f635d120f635d",
            "urn:uuid:5d630f12-0f12-5d63-120f-635d120f635d",
            "5d630f12-0f12-5d63-120f-635d120f635",
            "5d630f12-0f12-5d63-120f-635d120f635d0",
            "5d630f12-0f12-5d63-120f635d-120f635d",
            "5d630f1g-0f12-5d63-120f-635d120f635d",
            "5d630f12--0f12-5d63-120f-635d120f635d",
            "５d630f12-0f12-5d63-120f-635d120f635d",
            "'5d630f12-0f12-5d63-120f-635d120f635d'",
        ] {
            assert_eq!(IdSegment::new(hostile), Err(NOT_A_GUID), "{hostile:?}");
        }
        assert!(IdSegment::new(&"a".repeat(257)).is_err());
    }

    #[test]
    fn refusals_say_what_is_expected() {
        assert_eq!(IdSegment::new(""), Err("required"));
        assert!(NOT_A_GUID.contains(EXAMPLE_ID));
        assert!(is_guid(EXAMPLE_ID));
    }

    #[test]
    fn a_guid_is_exactly_one_unencoded_segment() {
        let base = "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks/";
        let seg = IdSegment::new(EXAMPLE_ID).expect("guid");
        let url = reqwest::Url::parse(&format!("{base}{}", seg.as_str())).expect("url");
        let segments: Vec<_> = url.path_segments().expect("path").collect();
        assert_eq!(
            segments,
            [
                "beta",
                "deviceAppManagement",
                "deviceAppManagementTasks",
                EXAMPLE_ID
            ]
        );
        assert_eq!(url.query(), None);
    }
}
