//! Graph's JSON batching envelope (`POST /beta/$batch`): the body that
//! carries up to [`MAX_ITEMS`] requests, and the reading of its answer into
//! one result per request, each as a single request's answer would be
//! ([`GraphResponse`] or [`GraphError::Status`]), so every item is judged by
//! the same rules as a call of its own.
//!
//! Graph answers 200 whenever the envelope parsed, with the items' answers
//! in any order: they are matched by `id`, never by position. An answer
//! that is not the envelope Graph sends, or that leaves out an item, names
//! one twice or names one that was not sent is an [`EnvelopeError`]: the
//! whole answer is then untrusted, and what its items did must be learnt
//! another way (for a write, by reading it back).

use super::{GraphError, GraphFailure, GraphResponse};
use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Graph's limit of requests in one batch.
pub const MAX_ITEMS: usize = 20;

/// One request of a batch: relative to the version root (no host, no
/// `/beta`), with a JSON body when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub method: http::Method,
    /// `/deviceAppManagement/deviceAppManagementTasks/{id}`, ...
    pub url: String,
    pub body: Option<Bytes>,
}

/// The envelope of `items`, item `i` under the id `i + 1` (unique in the
/// batch, as Graph requires). A body is sent as the JSON it is, with the
/// `Content-Type` Graph requires beside it; no item depends on another.
///
/// Bodies are JSON the gateway built; one that does not parse is sent as a
/// JSON string rather than breaking the envelope (Graph then refuses that
/// item alone).
pub fn envelope(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + items.len() * 160);
    out.extend_from_slice(br#"{"requests":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"id":""#);
        out.extend_from_slice((i + 1).to_string().as_bytes());
        out.extend_from_slice(br#"","method":"#);
        push_string(&mut out, item.method.as_str());
        out.extend_from_slice(br#","url":"#);
        push_string(&mut out, &item.url);
        if let Some(body) = &item.body {
            out.extend_from_slice(br#","headers":{"Content-Type":"application/json"},"body":"#);
            if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                out.extend_from_slice(body);
            } else {
                push_string(&mut out, &String::from_utf8_lossy(body));
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str cannot fail.
    if let Ok(json) = serde_json::to_vec(s) {
        out.extend_from_slice(&json);
    }
}

/// Why an answer to a batch cannot be trusted item by item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not the JSON of a batch answer.
    Unreadable,
    /// No answer for the item with this id.
    Missing(String),
    /// An answer for an id no item had, or for one twice.
    Unexpected(String),
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable => f.write_str("the batch answer is not Graph's batch JSON"),
            Self::Missing(id) => write!(f, "the batch answer has no answer for item {id}"),
            Self::Unexpected(id) => {
                write!(
                    f,
                    "the batch answer has an unexpected answer for item {}",
                    clip_id(id)
                )
            }
        }
    }
}

/// An id from the answer, held short (it came from the wire).
fn clip_id(id: &str) -> &str {
    super::clip(id, 32)
}

#[derive(Deserialize)]
struct Answer {
    responses: Vec<ItemAnswer>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    id: String,
    status: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Option<Box<serde_json::value::RawValue>>,
}

/// Reads the 200 answer to a batch of `sent` items into each item's
/// answer, in the items' order.
pub fn answers(
    body: &[u8],
    sent: usize,
    now: SystemTime,
    max_retry_after: Duration,
) -> Result<Vec<Result<GraphResponse, GraphError>>, EnvelopeError> {
    let answer: Answer = serde_json::from_slice(body).map_err(|_| EnvelopeError::Unreadable)?;
    let mut slots: Vec<Option<Result<GraphResponse, GraphError>>> = vec![None; sent];
    for item in answer.responses {
        let index = item
            .id
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=sent).contains(n))
            .map(|n| n - 1)
            .ok_or_else(|| EnvelopeError::Unexpected(item.id.clone()))?;
        if slots[index].is_some() {
            return Err(EnvelopeError::Unexpected(item.id));
        }
        slots[index] = Some(item.into_result(now, max_retry_after));
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| slot.ok_or_else(|| EnvelopeError::Missing((i + 1).to_string())))
        .collect()
}

impl ItemAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn into_result(
        self,
        now: SystemTime,
        max_retry_after: Duration,
    ) -> Result<GraphResponse, GraphError> {
        let request_id = self.header("request-id").map(str::to_owned);
        let body = self
            .body
            .as_ref()
            .map(|b| Bytes::copy_from_slice(b.get().as_bytes()))
            .unwrap_or_default();
        if (200..300).contains(&self.status) {
            Ok(GraphResponse {
                status: self.status,
                request_id,
                body,
            })
        } else {
            Err(GraphError::Status(Box::new(GraphFailure::from_response(
                self.status,
                request_id,
                self.header("retry-after"),
                &body,
                now,
                max_retry_after,
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const MAX: Duration = Duration::from_secs(60);
    const TASK: &str =
        "/deviceAppManagement/deviceAppManagementTasks/5f3c2b1a-0000-4000-8000-000000000001";

    fn patch(body: &'static str) -> Item {
        Item {
            method: http::Method::PATCH,
            url: TASK.into(),
            body: Some(Bytes::from_static(body.as_bytes())),
        }
    }

    fn get() -> Item {
        Item {
            method: http::Method::GET,
            url: TASK.into(),
            body: None,
        }
    }

    fn read(items: &[Item]) -> Value {
        serde_json::from_slice(&envelope(items)).expect("the envelope is JSON")
    }

    #[test]
    fn the_envelope_numbers_items_and_sends_bodies_as_json_with_their_content_type() {
        let v = read(&[patch(r#"{"status":"completed"}"#), get()]);
        assert_eq!(
            v,
            json!({"requests": [
                {"id": "1", "method": "PATCH", "url": TASK,
                 "headers": {"Content-Type": "application/json"},
                 "body": {"status": "completed"}},
                {"id": "2", "method": "GET", "url": TASK},
            ]})
        );
        assert!(v["requests"][1].get("dependsOn").is_none());
    }

    #[test]
    fn a_body_that_is_not_json_cannot_break_the_envelope() {
        let v = read(&[patch(r#"{"a":1}],"x":{"#)]);
        assert_eq!(v["requests"][0]["body"], json!(r#"{"a":1}],"x":{"#));
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn urls_are_escaped_as_json_strings() {
        let item = Item {
            method: http::Method::GET,
            url: "/a\"b\\c".into(),
            body: None,
        };
        assert_eq!(read(&[item])["requests"][0]["url"], json!("/a\"b\\c"));
    }

    fn answer(
        v: Value,
        sent: usize,
    ) -> Result<Vec<Result<GraphResponse, GraphError>>, EnvelopeError> {
        answers(
            &serde_json::to_vec(&v).expect("json"),
            sent,
            SystemTime::now(),
            MAX,
        )
    }

    #[test]
    fn answers_are_matched_by_id_not_by_position() {
        let got = answer(
            json!({"responses": [
                {"id": "3", "status": 204, "headers": {"request-id": "r3"}},
                {"id": "1", "status": 200, "headers": {"Request-Id": "r1"}, "body": {"id": "one"}},
                {"id": "2", "status": 404, "body": {"error": {"code": "ResourceNotFound", "message": "gone"}}},
            ]}),
            3,
        )
        .expect("a whole answer");
        let first = got[0].as_ref().expect("200");
        assert_eq!(first.status, 200);
        assert_eq!(
            first.request_id.as_deref(),
            Some("r1"),
            "headers in any case"
        );
        assert_eq!(
            &first.body[..],
            br#"{"id":"one"}"#,
            "the item's body as sent"
        );
        match &got[1] {
            Err(GraphError::Status(f)) => {
                assert_eq!(f.status, 404);
                assert_eq!(f.code.as_deref(), Some("ResourceNotFound"));
                assert_eq!(f.message.as_deref(), Some("gone"));
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let third = got[2].as_ref().expect("204");
        assert_eq!((third.status, third.body.is_empty()), (204, true));
        assert_eq!(third.request_id.as_deref(), Some("r3"));
    }

    #[test]
    fn a_throttled_item_carries_its_own_retry_after_held_to_the_limit() {
        let got = answer(
            json!({"responses": [
                {"id": "1", "status": 429, "headers": {"Retry-After": "2.128"},
                 "body": {"error": {"code": "TooManyRequests", "message": "slow down"}}},
                {"id": "2", "status": 503, "headers": {"retry-after": "3600"}},
            ]}),
            2,
        )
        .expect("a whole answer");
        match (&got[0], &got[1]) {
            (Err(GraphError::Status(a)), Err(GraphError::Status(b))) => {
                assert_eq!(a.status, 429);
                assert_eq!(a.retry_after, Some(Duration::from_millis(2128)));
                assert_eq!(b.retry_after, Some(MAX), "held to the limit");
            }
            other => panic!("expected two failures, got {other:?}"),
        }
    }

    #[test]
    fn an_answer_missing_an_item_or_naming_one_twice_or_one_never_sent_is_untrusted() {
        let ok = |id: &str| json!({"id": id, "status": 204});
        assert_eq!(
            answer(json!({"responses": [ok("1")]}), 2).err(),
            Some(EnvelopeError::Missing("2".into()))
        );
        assert_eq!(
            answer(json!({"responses": [ok("1"), ok("1"), ok("2")]}), 2).err(),
            Some(EnvelopeError::Unexpected("1".into()))
        );
        for stranger in ["0", "3", "01x", "", "-1", "99999999999999999999999"] {
            assert_eq!(
                answer(json!({"responses": [ok("1"), ok("2"), ok(stranger)]}), 2).err(),
                Some(EnvelopeError::Unexpected(stranger.into())),
                "{stranger:?}"
            );
        }
    }

    #[test]
    fn what_is_not_a_batch_answer_is_unreadable() {
        for body in [
            &b"<html>busy</html>"[..],
            b"",
            b"{}",
            b"{\"responses\":{}}",
            b"{\"responses\":[{\"id\":1,\"status\":200}]}",
            b"{\"responses\":[{\"id\":\"1\",\"status\":\"200\"}]}",
            b"{\"responses\":[{\"id\":\"1\",\"status\":99999}]}",
            b"{\"responses\":[{\"id\":\"1\",\"status\":200,\"headers\":{\"a\":1}}]}",
        ] {
            assert_eq!(
                answers(body, 1, SystemTime::now(), MAX).err(),
                Some(EnvelopeError::Unreadable),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_unexpected_id_is_shown_short() {
        let long = "x".repeat(500);
        let text = EnvelopeError::Unexpected(long).to_string();
        assert!(text.len() < 120, "{text}");
    }
}
