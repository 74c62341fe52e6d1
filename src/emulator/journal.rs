//! What the emulator remembers about Graph traffic: the request count, the
//! request log, the queue of scripted faults and the chaos generator.
//!
//! All sit behind one lock so that the Nth request logged is exactly the one
//! that consumed the Nth fault and the Nth chaos draw, whatever the
//! concurrency.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use super::chaos::ChaosRng;
use super::faults::ScriptedFault;
use super::options::Chaos;

/// Most bytes the request log holds (an estimate of each entry's size:
/// its strings, headers and body as JSON). Past it the oldest entries are
/// dropped, so the log stays bounded however long the emulator runs and
/// however large the bodies; `Emulator::received` still counts everything.
pub const REQUEST_LOG_BYTES: usize = 8 * 1024 * 1024;

/// Bytes counted for each entry and each header beyond their text.
const ENTRY_OVERHEAD: usize = 128;
const HEADER_OVERHEAD: usize = 16;

/// One request that reached a Graph route (under `/beta`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub path_and_query: String,
    pub client_request_id: Option<String>,
    /// The `Authorization` header, redacted ([`redact_authorization`]):
    /// which scheme was sent, and a fingerprint that tells two credentials
    /// apart without keeping either.
    pub authorization: Option<String>,
    /// Every header as received, in order, names lower case (values not
    /// UTF-8 are replaced, `Authorization` redacted): what proves which
    /// headers a client sent.
    pub headers: Vec<(String, String)>,
    /// The body after any `Content-Encoding: gzip` is undone: `None` when
    /// empty, the parsed value when it is JSON, otherwise a JSON string
    /// holding the text (invalid UTF-8 replaced by U+FFFD). A body too
    /// large for the log is replaced by a note of its size.
    pub body: Option<Value>,
}

impl RecordedRequest {
    /// The bytes this entry is counted as in the log.
    fn size(&self) -> usize {
        let strings = [&self.client_request_id, &self.authorization]
            .into_iter()
            .flatten()
            .map(String::len)
            .sum::<usize>();
        let headers = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + HEADER_OVERHEAD)
            .sum::<usize>();
        let body = self
            .body
            .as_ref()
            .map_or(0, |b| serde_json::to_vec(b).map_or(0, |json| json.len()));
        ENTRY_OVERHEAD + self.method.len() + self.path_and_query.len() + strings + headers + body
    }
}

/// `Bearer <redacted sha256:0123456789ab>`: the scheme as sent (when it
/// is a plain word), and the first 48 bits of the SHA-256 of the whole
/// value, so tests can see that a token was sent, and whether two requests
/// carried the same one, while the log holds no credential.
pub fn redact_authorization(value: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, value);
    let fingerprint: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let scheme = value
        .split(|b| *b == b' ')
        .next()
        .filter(|s| value.len() > s.len() && (1..=32).contains(&s.len()))
        .filter(|s| s.iter().all(u8::is_ascii_alphabetic))
        .map(|s| String::from_utf8_lossy(s).into_owned());
    match scheme {
        Some(scheme) => format!("{scheme} <redacted sha256:{fingerprint}>"),
        None => format!("<redacted sha256:{fingerprint}>"),
    }
}

pub struct Journal {
    received: u64,
    /// Each entry with the bytes it is counted as.
    log: VecDeque<(usize, RecordedRequest)>,
    log_bytes: usize,
    faults: VecDeque<ScriptedFault>,
    chaos: ChaosRng,
}

/// What a Graph-route request drew on arrival.
pub struct Admission {
    /// The next scripted fault, if one was queued.
    pub fault: Option<ScriptedFault>,
    /// The chaos status drawn for it, if chaos is on and the draw hit.
    pub chaos: Option<u16>,
}

impl Journal {
    /// An empty journal whose chaos sequence starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Journal {
            received: 0,
            log: VecDeque::new(),
            log_bytes: 0,
            faults: VecDeque::new(),
            chaos: ChaosRng::new(seed),
        }
    }

    /// Logs a Graph-route request and hands it the next scripted fault and,
    /// when chaos is on, its draw (made whether or not a fault pre-empts it,
    /// so the draws follow arrival order alone).
    pub fn admit(&mut self, request: Option<RecordedRequest>, chaos: Option<&Chaos>) -> Admission {
        self.received += 1;
        if let Some(request) = request {
            self.record(request);
        }
        Admission {
            fault: self.faults.pop_front(),
            chaos: chaos.and_then(|chaos| self.chaos.draw(chaos)),
        }
    }

    /// Appends `request`, dropping the oldest entries until it fits in
    /// [`REQUEST_LOG_BYTES`]; a body that alone would not fit is replaced
    /// by a note of its size.
    fn record(&mut self, mut request: RecordedRequest) {
        let mut size = request.size();
        if size > REQUEST_LOG_BYTES {
            request.body = Some(Value::String(format!(
                "<a body of about {size} bytes, more than the request log's {REQUEST_LOG_BYTES}>"
            )));
            size = request.size();
        }
        while self.log_bytes + size > REQUEST_LOG_BYTES {
            match self.log.pop_front() {
                Some((dropped, _)) => self.log_bytes -= dropped,
                None => break,
            }
        }
        self.log_bytes += size;
        self.log.push_back((size, request));
    }

    /// Restarts the chaos sequence from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.chaos = ChaosRng::new(seed);
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.iter().map(|(_, r)| r.clone()).collect()
    }

    pub fn push_faults(&mut self, faults: impl IntoIterator<Item = ScriptedFault>) {
        self.faults.extend(faults);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body_bytes: usize) -> RecordedRequest {
        RecordedRequest {
            method: "PATCH".into(),
            path_and_query: "/beta/x".into(),
            client_request_id: None,
            authorization: None,
            headers: vec![("host".into(), "h".into())],
            body: (body_bytes > 0).then(|| Value::String("b".repeat(body_bytes))),
        }
    }

    fn bytes(journal: &Journal) -> usize {
        journal.log.iter().map(|(_, r)| r.size()).sum()
    }

    #[test]
    fn the_log_is_bounded_by_bytes_dropping_the_oldest_first() {
        let mut journal = Journal::new(0);
        let each = REQUEST_LOG_BYTES / 10;
        for n in 0..25 {
            let mut r = request(each);
            r.path_and_query = format!("/beta/{n}");
            journal.admit(Some(r), None);
            assert!(bytes(&journal) <= REQUEST_LOG_BYTES);
            assert_eq!(journal.log_bytes, bytes(&journal));
        }
        assert_eq!(journal.received(), 25);
        let kept: Vec<_> = journal
            .requests()
            .into_iter()
            .map(|r| r.path_and_query)
            .collect();
        assert_eq!(kept.len(), 9, "ten bodies and their overhead do not fit");
        assert_eq!(kept.first().map(String::as_str), Some("/beta/16"));
        assert_eq!(kept.last().map(String::as_str), Some("/beta/24"));
    }

    #[test]
    fn small_requests_are_bounded_too() {
        let mut journal = Journal::new(0);
        let each = request(0).size();
        for _ in 0..(REQUEST_LOG_BYTES / each + 1000) {
            journal.admit(Some(request(0)), None);
        }
        assert_eq!(journal.requests().len(), REQUEST_LOG_BYTES / each);
    }

    #[test]
    fn a_body_larger_than_the_log_is_noted_not_kept() {
        let mut journal = Journal::new(0);
        journal.admit(Some(request(10)), None);
        journal.admit(Some(request(REQUEST_LOG_BYTES + 1)), None);
        let kept = journal.requests();
        assert_eq!(kept.len(), 2);
        let note = kept[1].body.as_ref().and_then(Value::as_str).expect("note");
        assert!(note.starts_with("<a body of about "), "{note}");
        assert!(bytes(&journal) <= REQUEST_LOG_BYTES);
    }

    #[test]
    fn authorization_is_redacted_to_its_scheme_and_a_fingerprint() {
        let one = redact_authorization(b"Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.secret");
        assert!(one.starts_with("Bearer <redacted sha256:"), "{one}");
        assert!(!one.contains("eyJ0") && !one.contains("secret"), "{one}");
        assert_eq!(one.len(), "Bearer <redacted sha256:>".len() + 12);
        assert_eq!(
            one,
            redact_authorization(b"Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.secret")
        );
        assert_ne!(one, redact_authorization(b"Bearer another-token"));
        for odd in [&b"secret-without-scheme"[..], b"", b"Bearer", b"\xff\xfe x"] {
            let redacted = redact_authorization(odd);
            assert!(redacted.starts_with("<redacted sha256:"), "{redacted}");
        }
    }
}
