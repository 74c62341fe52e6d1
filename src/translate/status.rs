//! `SetSecurityConfigurationTaskStatusRequest` -> the body of Graph's
//! `updateStatus` action, `{"status":"<member>","note":"<note>"}`.
//!
//! The note is free text a person reads in Intune, and may say why a task
//! was rejected: it is private to the caller and Graph, so no message made
//! here quotes it (only its length and the position of a bad character).
//!
//! - `status` must be a member of `deviceAppManagementTaskStatus`: not
//!   UNSPECIFIED, not a number the proto does not define.
//! - The note is at most [`MAX_NOTE_BYTES`] bytes (Graph documents no limit;
//!   this is the bound every other free-text string of a task has), and holds
//!   no control characters other than tab, line feed and carriage return: a
//!   note is text for a person, and a control character in it is either a
//!   mistake or an escape sequence aimed at whoever displays it.
//! - An empty note is sent as `""`, never left out: the action declares the
//!   parameter, and an empty string is a valid `Edm.String` whatever Graph
//!   decides about a missing one.
//!
//! Every problem is reported at once.

use super::enums::{self, EnumValueError};
use super::error::InvalidRequest;
use super::ids::IdSegment;
use crate::proto::v1::SetSecurityConfigurationTaskStatusRequest;
use serde::Serialize;

/// The longest note accepted, in bytes (as for a task's string properties).
pub const MAX_NOTE_BYTES: usize = super::update::MAX_STRING_BYTES;

/// A validated status change, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// The task id as one path segment.
    pub id: IdSegment,
    /// The proto value of the status set.
    pub status: i32,
    /// Graph's member for it, e.g. `completed`.
    pub member: &'static str,
    /// The JSON body of the action.
    pub body: Vec<u8>,
    /// The note's length in bytes; the note itself is only in `body`.
    pub note_bytes: usize,
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    note: &'a str,
}

/// Validates a status change and builds its body. Nothing is sent when this
/// fails.
pub fn status_change(
    req: &SetSecurityConfigurationTaskStatusRequest,
) -> Result<StatusChange, InvalidRequest> {
    let mut errors = InvalidRequest::default();
    let id = IdSegment::new(&req.id)
        .map_err(|why| errors.push("id", why))
        .ok();
    let member = match enums::STATUS.to_graph(req.status) {
        Ok(member) => Some(member),
        Err(EnumValueError::Unspecified) => {
            errors.push(
                "status",
                format!("required: one of {}", enums::STATUS.members.join(", ")),
            );
            None
        }
        Err(EnumValueError::OutOfRange) => {
            errors.push(
                "status",
                format!(
                    "{} is not a member of {}",
                    req.status,
                    enums::STATUS.graph_type
                ),
            );
            None
        }
    };
    if let Some(why) = note_problem(&req.note) {
        errors.push("note", why);
    }
    // A part is missing only when its problem was reported.
    let (Some(id), Some(member), true) = (id, member, errors.violations.is_empty()) else {
        return Err(errors);
    };
    let body = serde_json::to_vec(&Body {
        status: member,
        note: &req.note,
    })
    .map_err(|e| InvalidRequest::single("note", format!("cannot be written as JSON: {e}")))?;
    Ok(StatusChange {
        id,
        status: req.status,
        member,
        body,
        note_bytes: req.note.len(),
    })
}

/// What is wrong with a note, without quoting it.
fn note_problem(note: &str) -> Option<String> {
    if note.len() > MAX_NOTE_BYTES {
        return Some(format!("{} bytes; at most {MAX_NOTE_BYTES}", note.len()));
    }
    let (at, c) = note.char_indices().find(|(_, c)| is_refused_control(*c))?;
    Some(format!(
        "contains the control character U+{:04X} at byte {at}; only tab, line feed and carriage return are allowed",
        u32::from(c)
    ))
}

/// C0 and C1 controls and DEL, except tab, line feed and carriage return.
fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::DeviceAppManagementTaskStatus as Status;
    use crate::translate::EXAMPLE_ID;
    use serde_json::{json, Value};

    fn req(id: &str, status: i32, note: &str) -> SetSecurityConfigurationTaskStatusRequest {
        SetSecurityConfigurationTaskStatusRequest {
            id: id.into(),
            status,
            note: note.into(),
            ..Default::default()
        }
    }

    fn body(change: &StatusChange) -> Value {
        serde_json::from_slice(&change.body).expect("json")
    }

    fn fields(e: &InvalidRequest) -> Vec<&str> {
        e.violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn every_member_is_sent_with_its_graph_name() {
        for (status, member) in [
            (Status::Unknown, "unknown"),
            (Status::Pending, "pending"),
            (Status::Active, "active"),
            (Status::Completed, "completed"),
            (Status::Rejected, "rejected"),
        ] {
            let change = status_change(&req(EXAMPLE_ID, status as i32, "why")).expect("valid");
            assert_eq!(change.member, member);
            assert_eq!(change.status, status as i32);
            assert_eq!(change.id.as_str(), EXAMPLE_ID);
            assert_eq!(body(&change), json!({"status": member, "note": "why"}));
        }
    }

    #[test]
    fn the_body_has_exactly_status_and_note_and_an_empty_note_is_sent_empty() {
        let change = status_change(&req(EXAMPLE_ID, Status::Completed as i32, "")).expect("ok");
        assert_eq!(change.body, br#"{"status":"completed","note":""}"#);
        assert_eq!(change.note_bytes, 0);
    }

    #[test]
    fn the_note_is_escaped_and_its_length_counted_in_bytes() {
        let note = "line \"one\"\r\n\tzwei – drei ✓";
        let change = status_change(&req(EXAMPLE_ID, Status::Rejected as i32, note)).expect("ok");
        assert_eq!(body(&change)["note"], note);
        assert_eq!(change.note_bytes, note.len());
        assert_ne!(change.note_bytes, note.chars().count());
    }

    #[test]
    fn unspecified_and_undefined_statuses_are_refused() {
        for (status, says) in [
            (
                0,
                "required: one of unknown, pending, active, completed, rejected",
            ),
            (6, "6 is not a member of deviceAppManagementTaskStatus"),
            (-1, "-1 is not a member of deviceAppManagementTaskStatus"),
            (i32::MAX, "is not a member"),
        ] {
            let e = status_change(&req(EXAMPLE_ID, status, "")).expect_err("refused");
            assert_eq!(fields(&e), ["status"], "{status}");
            assert!(e.violations[0].description.contains(says), "{e}");
        }
    }

    #[test]
    fn ids_must_be_guids() {
        for (id, says) in [
            ("", "required"),
            ("x/../y", "must be a GUID"),
            (
                "microsoft.graph.securityConfigurationTask",
                "must be a GUID",
            ),
        ] {
            let e = status_change(&req(id, Status::Active as i32, "")).expect_err("refused");
            assert_eq!(fields(&e), ["id"]);
            assert!(e.violations[0].description.contains(says), "{e}");
        }
    }

    #[test]
    fn the_longest_note_passes_and_one_byte_more_does_not() {
        let longest = "n".repeat(MAX_NOTE_BYTES);
        assert!(status_change(&req(EXAMPLE_ID, 2, &longest)).is_ok());
        let e = status_change(&req(EXAMPLE_ID, 2, &format!("{longest}n"))).expect_err("long");
        assert_eq!(fields(&e), ["note"]);
        assert_eq!(
            e.violations[0].description,
            format!("{} bytes; at most {MAX_NOTE_BYTES}", MAX_NOTE_BYTES + 1)
        );
    }

    #[test]
    fn control_characters_are_refused_without_quoting_the_note() {
        let secret = "ticket 4711 secret";
        for (c, code) in [
            ('\0', "U+0000"),
            ('\u{1b}', "U+001B"),
            ('\u{7f}', "U+007F"),
            ('\u{85}', "U+0085"),
            ('\u{8}', "U+0008"),
        ] {
            let note = format!("{secret}{c}[31m");
            let e = status_change(&req(EXAMPLE_ID, 2, &note)).expect_err("control");
            assert_eq!(fields(&e), ["note"]);
            let why = &e.violations[0].description;
            assert!(why.contains(code), "{why}");
            assert!(why.contains(&format!("at byte {}", secret.len())), "{why}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        for allowed in ["a\tb", "a\nb", "a\r\nb", "emoji 🙂", "ümlaut"] {
            assert!(
                status_change(&req(EXAMPLE_ID, 2, allowed)).is_ok(),
                "{allowed:?}"
            );
        }
    }

    #[test]
    fn a_refused_long_note_is_not_quoted_either() {
        let note = format!("{}\u{1b}", "secret ".repeat(MAX_NOTE_BYTES / 7 + 1));
        let e = status_change(&req(EXAMPLE_ID, 2, &note)).expect_err("refused");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = status_change(&req("nope", 0, "\u{7}")).expect_err("refused");
        assert_eq!(fields(&e), ["id", "status", "note"]);
        let e = status_change(&req("", 99, &"x".repeat(MAX_NOTE_BYTES + 1))).expect_err("x");
        assert_eq!(fields(&e), ["id", "status", "note"]);
    }
}
