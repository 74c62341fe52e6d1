//! The ids of a batch read (AIP-231) and the items of a batch write
//! (AIP-234), checked in full before anything is sent.

use super::{IdSegment, InvalidRequest};
use std::collections::HashMap;

/// The most ids one batch read takes, and the most items one batch write
/// takes.
pub const MAX_BATCH_IDS: usize = 1000;

/// What the batch check reads of one item of a batch write.
pub struct ItemFields<'a> {
    /// The task it names, and the field that names it
    /// (`security_configuration_task.id`).
    pub id: &'a str,
    pub id_field: &'static str,
    /// Its own `request_id` and `validate_only`, which must be unset: the
    /// batch's apply to every item.
    pub request_id: &'a str,
    pub validate_only: bool,
}

/// Checks every item of a batch write with `check` (the single call's own
/// translation, so an item follows exactly its rules), and answers the
/// items' translations in their order. Every violation is named under its
/// item, `requests[7].security_configuration_task.status`; two items naming
/// one task (in any case) are refused, since Graph runs a batch's requests
/// in any order; 1 to [`MAX_BATCH_IDS`] items.
pub fn batch_items<R, T>(
    requests: &[R],
    fields: impl Fn(&R) -> ItemFields<'_>,
    check: impl Fn(&R) -> Result<T, InvalidRequest>,
) -> Result<Vec<T>, InvalidRequest> {
    if requests.is_empty() {
        return Err(InvalidRequest::single(
            "requests",
            "required: at least one request",
        ));
    }
    if requests.len() > MAX_BATCH_IDS {
        return Err(InvalidRequest::single(
            "requests",
            format!("at most {MAX_BATCH_IDS} requests, got {}", requests.len()),
        ));
    }
    let mut invalid = InvalidRequest::default();
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(requests.len());
    let mut items = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let f = fields(request);
        if !f.request_id.is_empty() {
            invalid.push(
                format!("requests[{i}].request_id"),
                "must be empty: the batch's request_id covers every item",
            );
        }
        if f.validate_only {
            invalid.push(
                format!("requests[{i}].validate_only"),
                "must be unset: the batch's validate_only applies to every item",
            );
        }
        if !f.id.is_empty() {
            if let Some(first) = seen.insert(f.id.to_ascii_lowercase(), i) {
                invalid.push(
                    format!("requests[{i}].{}", f.id_field),
                    format!("names the same task as requests[{first}]: Graph runs a batch's requests in any order"),
                );
            }
        }
        match check(request) {
            Ok(item) => items.push(item),
            Err(e) => {
                for v in e.violations {
                    invalid.push(format!("requests[{i}].{}", v.field), v.description);
                }
                invalid.omitted += e.omitted;
            }
        }
    }
    invalid.or_ok(items)
}

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

    struct Req {
        id: &'static str,
        request_id: &'static str,
        validate_only: bool,
    }

    fn req(id: &'static str) -> Req {
        Req {
            id,
            request_id: "",
            validate_only: false,
        }
    }

    fn item_fields(r: &Req) -> ItemFields<'_> {
        ItemFields {
            id: r.id,
            id_field: "task.id",
            request_id: r.request_id,
            validate_only: r.validate_only,
        }
    }

    /// The single call's check: an id that is a GUID.
    fn check(r: &Req) -> Result<IdSegment, InvalidRequest> {
        IdSegment::new(r.id).map_err(|why| InvalidRequest::single("task.id", why))
    }

    #[test]
    fn valid_items_are_translated_in_order() {
        let got = batch_items(&[req(B), req(A)], item_fields, check).expect("valid");
        let got: Vec<&str> = got.iter().map(IdSegment::as_str).collect();
        assert_eq!(got, [B, A]);
    }

    #[test]
    fn every_items_violations_are_named_under_its_index() {
        let reqs = [
            req(A),
            req("nope"),
            Req {
                request_id: A,
                validate_only: true,
                ..req(B)
            },
            req("5D630F12-0F12-5D63-120F-635D120F635D"),
        ];
        let e = batch_items(&reqs, item_fields, check).expect_err("invalid");
        let f: Vec<&str> = fields(&e).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            f,
            [
                "requests[1].task.id",
                "requests[2].request_id",
                "requests[2].validate_only",
                "requests[3].task.id",
            ]
        );
        assert!(fields(&e)[3].1.contains("requests[0]"), "{e:?}");
    }

    #[test]
    fn no_items_or_too_many_are_refused_in_one_violation() {
        let none: [Req; 0] = [];
        let e = batch_items(&none, item_fields, check).expect_err("none");
        assert_eq!(fields(&e)[0].0, "requests");
        let many: Vec<Req> = (0..=MAX_BATCH_IDS).map(|_| req(A)).collect();
        let e = batch_items(&many, item_fields, check).expect_err("too many");
        assert_eq!(fields(&e).len(), 1, "{e:?}");
        assert!(fields(&e)[0].1.contains("1000"), "{e:?}");
    }

    #[test]
    fn a_thousand_repeats_keep_the_answer_small() {
        let e = batch_ids(&vec![A.to_owned(); MAX_BATCH_IDS]).expect_err("repeats");
        assert_eq!(e.violations.len(), super::super::MAX_VIOLATIONS);
        assert_eq!(e.omitted, MAX_BATCH_IDS - 1 - super::super::MAX_VIOLATIONS);
    }
}
