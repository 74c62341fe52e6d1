//! `status_change` on any request: it never panics, accepts exactly what the
//! rules accept (a GUID id, a status member, a note of at most 16 KiB with
//! no control character but tab, line feed and carriage return), sends the
//! note exactly as given, and never repeats the note in what it refuses.

use crate::oracle;
use crate::strategies::{any_enum, any_id, awkward_string, string_near};
use graph_grpc_gateway::proto::v1::SetSecurityConfigurationTaskStatusRequest;
use graph_grpc_gateway::translate::{status_change, MAX_NOTE_BYTES};
use proptest::prelude::*;
use serde_json::Value;

/// Marks the note, so that a message repeating any of it is seen.
const MARK: &str = "notemark";

const MEMBERS: [&str; 5] = ["unknown", "pending", "active", "completed", "rejected"];

fn any_note() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        awkward_string(),
        any::<String>(),
        "[\\PC\t\n\r]{0,40}",
        string_near(MAX_NOTE_BYTES),
    ]
}

fn note_is_valid(note: &str) -> bool {
    note.len() <= MAX_NOTE_BYTES
        && note
            .chars()
            .all(|c| !(c <= '\u{1f}' || ('\u{7f}'..='\u{9f}').contains(&c)) || "\t\n\r".contains(c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn status_changes_follow_the_rules(
        id in any_id(),
        status in any_enum(5),
        note in any_note(),
        marked in any::<bool>(),
    ) {
        let note = if marked { format!("{MARK}{note}") } else { note };
        let req = SetSecurityConfigurationTaskStatusRequest {
            id: id.clone(),
            status,
            note: note.clone(),
            ..Default::default()
        };
        let valid = oracle::id_is_valid(&id) && (1..=5).contains(&status) && note_is_valid(&note);
        match status_change(&req) {
            Ok(change) => {
                prop_assert!(valid, "accepted {:?}", req);
                let body: Value = serde_json::from_slice(&change.body).expect("JSON");
                let object = body.as_object().expect("object");
                prop_assert_eq!(object.len(), 2);
                prop_assert_eq!(body["status"].as_str(), Some(MEMBERS[(status - 1) as usize]));
                prop_assert_eq!(body["note"].as_str(), Some(note.as_str()));
                prop_assert_eq!(change.note_bytes, note.len());
                prop_assert_eq!(change.id.as_str(), id.as_str());
            }
            Err(e) => {
                prop_assert!(!valid, "refused {:?}: {}", req, e);
                prop_assert!(!e.violations.is_empty());
                if marked {
                    prop_assert!(!e.to_string().contains(MARK), "{}", e);
                    for v in &e.violations {
                        prop_assert!(!v.description.contains(MARK));
                    }
                }
            }
        }
    }
}
