//! Task ids as URL path segments.
//!
//! An id comes from the caller and ends up in a URL: it must only ever name
//! one segment under the task collection, never another path, query or host.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The longest id accepted. Graph ids are GUIDs (36 characters).
pub const MAX_ID_BYTES: usize = 256;

/// Everything but RFC 3986 unreserved characters is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A task id, checked and percent-encoded as exactly one path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSegment(String);

impl IdSegment {
    /// Checks an id and encodes it; the error says why it is refused.
    pub fn new(id: &str) -> Result<Self, &'static str> {
        if id.is_empty() {
            return Err("required");
        }
        if id.len() > MAX_ID_BYTES {
            return Err("longer than 256 bytes");
        }
        // URL parsers resolve "." and ".." (even percent-encoded) as
        // relative segments, which would leave the task collection.
        if id == "." || id == ".." {
            return Err("not a task id");
        }
        if id.chars().any(char::is_control) {
            return Err("holds control characters");
        }
        Ok(Self(utf8_percent_encode(id, SEGMENT).to_string()))
    }

    /// The encoded segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_passes_unchanged() {
        let id = "5d630f12-0f12-5d63-120f-635d120f635d";
        assert_eq!(IdSegment::new(id).map(|s| s.0), Ok(id.to_owned()));
    }

    #[test]
    fn hostile_ids_stay_one_segment() {
        let base = "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks/";
        for hostile in [
            "../../users",
            "a/b",
            "x?$select=id",
            "x#frag",
            "@evil.example",
            "%2e%2e",
            "a b",
            "ü/",
            "\\..\\x",
            "x;y=z",
        ] {
            let seg = IdSegment::new(hostile).expect("encodable");
            let url = reqwest::Url::parse(&format!("{base}{}", seg.as_str())).expect("url");
            assert_eq!(url.host_str(), Some("graph.microsoft.com"), "{hostile}");
            assert_eq!(url.query(), None, "{hostile}");
            assert_eq!(url.fragment(), None, "{hostile}");
            let segments: Vec<_> = url.path_segments().expect("path").collect();
            assert_eq!(segments.len(), 4, "{hostile} -> {url}");
            assert_eq!(
                segments[..3],
                ["beta", "deviceAppManagement", "deviceAppManagementTasks"]
            );
            let decoded = percent_encoding::percent_decode_str(segments[3])
                .decode_utf8()
                .expect("utf8");
            assert_eq!(decoded, hostile);
        }
    }

    #[test]
    fn refuses_empty_dots_long_and_control() {
        assert_eq!(IdSegment::new(""), Err("required"));
        assert_eq!(IdSegment::new("."), Err("not a task id"));
        assert_eq!(IdSegment::new(".."), Err("not a task id"));
        assert!(IdSegment::new(&"a".repeat(257)).is_err());
        assert!(IdSegment::new(&"a".repeat(256)).is_ok());
        assert!(IdSegment::new("a\nb").is_err());
    }
}
