//! The ids of a batch read (AIP-231), checked before anything is sent.

use super::{IdSegment, InvalidRequest};
use std::collections::HashMap;

/// The most ids one batch read takes.
pub const MAX_BATCH_IDS: usize = 1000;

/// `ids` as Graph path segments, in their order: 1 to [`MAX_BATCH_IDS`]
/// GUIDs, none twice (a GUID in another case is the same task). Every bad
/// id is named by its index, `ids[3]`.
pub fn batch_ids(ids: &[String]) -> Result<Vec<IdSegment>, InvalidRequest> {
    if ids.is_empty() {
        return Err(InvalidRequest::single("ids", "required: at least one id"));
    }
    if ids.len() > MAX_BATCH_IDS {
        return Err(InvalidRequest::single(
            "ids",
            format!("at most {MAX_BATCH_IDS} ids, got {}", ids.len()),
        ));
    }
    let mut invalid = InvalidRequest::default();
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(ids.len());
    let mut segments = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match IdSegment::new(id) {
            Ok(segment) => {
                if let Some(first) = seen.insert(id.to_ascii_lowercase(), i) {
                    invalid.push(format!("ids[{i}]"), format!("repeats ids[{first}]"));
                }
                segments.push(segment);
            }
            Err(why) => invalid.push(format!("ids[{i}]"), why),
        }
    }
    invalid.or_ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "5d630f12-0f12-5d63-120f-635d120f635d";
    const B: &str = "0b7a3f4e-2c1d-4e8f-9a6b-5c4d3e2f1a01";

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn fields(e: &InvalidRequest) -> Vec<(&str, &str)> {
        e.violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect()
    }

    #[test]
    fn guids_in_order_are_the_segments() {
        let got = batch_ids(&ids(&[B, A])).expect("valid");
        let got: Vec<&str> = got.iter().map(IdSegment::as_str).collect();
        assert_eq!(got, [B, A]);
    }

    #[test]
    fn every_bad_id_is_named_by_its_index() {
        let e = batch_ids(&ids(&[A, "", "nope", B])).expect_err("invalid");
        let f = fields(&e);
        assert_eq!(f.len(), 2, "{f:?}");
        assert_eq!(f[0].0, "ids[1]");
        assert_eq!(f[0].1, "required");
        assert_eq!(f[1].0, "ids[2]");
    }

    #[test]
    fn an_id_twice_in_any_case_is_refused() {
        let e = batch_ids(&ids(&[A, B, &A.to_ascii_uppercase()])).expect_err("a repeat");
        assert_eq!(fields(&e), [("ids[2]", "repeats ids[0]")]);
    }

    #[test]
    fn none_or_too_many_ids_are_refused() {
        let e = batch_ids(&[]).expect_err("none");
        assert_eq!(fields(&e)[0].0, "ids");
        let many = vec![A.to_owned(); MAX_BATCH_IDS + 1];
        let e = batch_ids(&many).expect_err("too many");
        assert_eq!(fields(&e).len(), 1, "one violation, not a thousand");
        assert!(fields(&e)[0].1.contains("1000"), "{e:?}");
    }

    #[test]
    fn a_thousand_repeats_keep_the_answer_small() {
        let e = batch_ids(&vec![A.to_owned(); MAX_BATCH_IDS]).expect_err("repeats");
        assert_eq!(e.violations.len(), super::super::MAX_VIOLATIONS);
        assert_eq!(e.omitted, MAX_BATCH_IDS - 1 - super::super::MAX_VIOLATIONS);
    }
}
