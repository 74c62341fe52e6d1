//! `IdSegment::new` on any string: it never panics, refuses exactly the ids
//! the rules refuse (anything but a GUID: OData segments, near-miss GUIDs,
//! paths), and an accepted id stays one path segment under the task
//! collection, whichever way the URL is put together.

use crate::oracle;
use crate::strategies::{any_id, awkward_string};
use graph_grpc_gateway::translate::IdSegment;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use url::Url;

const COLLECTION: [&str; 3] = ["beta", "deviceAppManagement", "deviceAppManagementTasks"];

/// The collection URLs the gateway is configured with: a cloud's, and the
/// emulator's on loopback.
const BASES: [&str; 2] = [
    "https://graph.microsoft.com/beta/deviceAppManagement/deviceAppManagementTasks",
    "http://127.0.0.1:40123/beta/deviceAppManagement/deviceAppManagementTasks",
];

/// `url` is the base plus exactly one segment, `id` encoded, and nothing else.
fn check_url(base: &Url, url: &Url, id: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(url.scheme(), base.scheme());
    prop_assert_eq!(url.host_str(), base.host_str());
    prop_assert_eq!(url.port(), base.port());
    prop_assert_eq!(url.username(), "");
    prop_assert_eq!(url.password(), None);
    prop_assert_eq!(url.query(), None);
    prop_assert_eq!(url.fragment(), None);
    let segments: Vec<&str> = url
        .path_segments()
        .ok_or_else(|| TestCaseError::fail("no path"))?
        .collect();
    prop_assert_eq!(segments.len(), COLLECTION.len() + 1, "{}", url);
    prop_assert_eq!(&segments[..COLLECTION.len()], &COLLECTION[..]);
    let last = percent_decode_str(segments[COLLECTION.len()]).decode_utf8();
    prop_assert_eq!(last.as_deref().ok(), Some(id));
    Ok(())
}

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![any_id(), awkward_string(), any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn ids_stay_one_segment(id in any_string()) {
        match IdSegment::new(&id) {
            Err(why) => {
                prop_assert!(!oracle::id_is_valid(&id), "{:?} refused: {}", id, why);
                prop_assert!(!why.is_empty());
            }
            Ok(segment) => {
                prop_assert!(oracle::id_is_valid(&id), "{:?} accepted", id);
                for base in BASES {
                    let base = Url::parse(base).expect("base URL");
                    // Joined as text and parsed, as a reader of logs would.
                    let joined = Url::parse(&format!("{base}/{}", segment.as_str()))
                        .map_err(|e| TestCaseError::fail(format!("{id:?}: {e}")))?;
                    check_url(&base, &joined, &id)?;
                    // Joined as the Graph client does: the path set whole.
                    let mut set = base.clone();
                    set.set_path(&format!("{}/{}", base.path(), segment.as_str()));
                    check_url(&base, &set, &id)?;
                }
            }
        }
    }
}
