//! Task ids as URL path segments.
//!
//! An id comes from the caller and ends up in a URL: it must only ever name
//! one segment under the task collection, never another path, query or host.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;

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
        // The common case, a GUID: nothing to encode and nothing to refuse.
        if id.bytes().all(is_unreserved) {
            return Ok(Self(id.to_owned()));
        }
        if id.chars().any(char::is_control) {
            return Err("holds control characters");
        }
        Ok(Self(
            Cow::from(utf8_percent_encode(id, SEGMENT)).into_owned(),
        ))
    }

    /// The encoded segment.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An RFC 3986 unreserved byte: the bytes `SEGMENT` leaves as they are.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
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
    fn unreserved_is_what_the_encoder_leaves_alone() {
        for b in 0..=u8::MAX {
            let leaves = b.is_ascii() && {
                let one = char::from(b).to_string();
                utf8_percent_encode(&one, SEGMENT).to_string() == one
            };
            assert_eq!(is_unreserved(b), leaves, "byte {b:#04x}");
        }
    }

    #[test]
    fn encoding_matches_the_percent_encoder_whole() {
        for id in [
            "5d630f12-0f12-5d63-120f-635d120f635d",
            "a b",
            "ü/",
            "x?y#z",
            "%",
            "~._-",
            "tail ",
        ] {
            assert_eq!(
                IdSegment::new(id).expect("valid").as_str(),
                utf8_percent_encode(id, SEGMENT).to_string(),
                "{id}"
            );
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
