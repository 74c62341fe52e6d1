//! What the emulator remembers about Graph traffic: the request count, the
//! request log, the queues of scripted faults (for requests and for `$batch`
//! envelopes), the chaos generator and the generator of `$batch` answer
//! orders.
//!
//! All sit behind one lock so that the Nth request logged is exactly the one
//! that consumed the Nth fault and the Nth chaos draw, whatever the
//! concurrency.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use super::chaos::ChaosRng;
use super::faults::{FaultTarget, ScriptedFault};
use super::options::{Chaos, EmulatorOptions};

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
    /// Whether it came alone, as a `$batch` envelope, or as an item of one.
    pub kind: RequestKind,
}

/// How a request reached a Graph route. In JSON, `{"type": "single"}`,
/// `{"type": "batch", "request_id": ...}` or
/// `{"type": "batch_item", "id": ..., "batch_request_id": ...}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestKind {
    /// A request of its own.
    #[default]
    Single,
    /// A `POST /beta/$batch` envelope; its items are logged after it, each
    /// as a [`RequestKind::BatchItem`]. `request_id` is the envelope's
    /// `request-id`.
    Batch { request_id: String },
    /// One request inside a `$batch`: its `id` in the batch and the
    /// envelope's `request-id`. Its method, path (under `/beta`), headers
    /// and body are the item's; `Authorization` and `Host` are the
    /// envelope's, which authorise it.
    BatchItem {
        id: String,
        batch_request_id: String,
    },
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
        let kind = match &self.kind {
            RequestKind::Single => 0,
            RequestKind::Batch { request_id } => request_id.len(),
            RequestKind::BatchItem {
                id,
                batch_request_id,
            } => id.len() + batch_request_id.len(),
        };
        ENTRY_OVERHEAD
            + self.method.len()
            + self.path_and_query.len()
            + strings
            + headers
            + body
            + kind
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
    /// Faults for the next `$batch` envelopes.
    batch_faults: VecDeque<ScriptedFault>,
    chaos: ChaosRng,
    batch_order: ChaosRng,
}

/// What a Graph-route request drew on arrival.
pub struct Admission {
    /// The next scripted fault, if one was queued.
    pub fault: Option<ScriptedFault>,
    /// The chaos status drawn for it, if chaos is on and the draw hit.
    pub chaos: Option<u16>,
}

impl Journal {
    /// An empty journal whose chaos sequence and `$batch` orders start from
    /// the seeds in `options`.
    pub fn new(options: &EmulatorOptions) -> Self {
        Journal {
            received: 0,
            log: VecDeque::new(),
            log_bytes: 0,
            faults: VecDeque::new(),
            batch_faults: VecDeque::new(),
            chaos: ChaosRng::new(chaos_seed(options)),
            batch_order: ChaosRng::new(options.batch_order_seed),
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

    /// Logs a `$batch` envelope and hands it the next fault meant for an
    /// envelope. An envelope makes no chaos draw: its items do.
    pub fn admit_batch(&mut self, request: Option<RecordedRequest>) -> Option<ScriptedFault> {
        self.received += 1;
        if let Some(request) = request {
            self.record(request);
        }
        self.batch_faults.pop_front()
    }

    /// The order a `$batch` answer of `n` items lists them in (indices
    /// into the batch's requests).
    pub fn batch_order(&mut self, n: usize) -> Vec<usize> {
        self.batch_order.permutation(n)
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

    /// Restarts the chaos sequence and the `$batch` orders from the seeds
    /// in `options`.
    pub fn reseed(&mut self, options: &EmulatorOptions) {
        self.chaos = ChaosRng::new(chaos_seed(options));
        self.batch_order = ChaosRng::new(options.batch_order_seed);
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Queues each fault for its [`FaultTarget`].
    pub fn push_faults(&mut self, faults: impl IntoIterator<Item = ScriptedFault>) {
        for fault in faults {
            match fault.target {
                FaultTarget::Request => self.faults.push_back(fault),
                FaultTarget::Batch => self.batch_faults.push_back(fault),
            }
        }
    }

    /// Faults queued for requests and for envelopes together.
    pub fn pending_faults(&self) -> usize {
        self.faults.len() + self.batch_faults.len()
    }
}

fn chaos_seed(options: &EmulatorOptions) -> u64 {
    options.chaos.as_ref().map_or(0, |chaos| chaos.seed)
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
            kind: RequestKind::Single,
        }
    }

    fn bytes(journal: &Journal) -> usize {
        journal.log.iter().map(|(_, r)| r.size()).sum()
    }

    #[test]
    fn the_log_is_bounded_by_bytes_dropping_the_oldest_first() {
        let mut journal = Journal::new(&EmulatorOptions::default());
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
        let mut journal = Journal::new(&EmulatorOptions::default());
        let each = request(0).size();
        for _ in 0..(REQUEST_LOG_BYTES / each + 1000) {
            journal.admit(Some(request(0)), None);
        }
        assert_eq!(journal.requests().len(), REQUEST_LOG_BYTES / each);
    }

    #[test]
    fn a_body_larger_than_the_log_is_noted_not_kept() {
        let mut journal = Journal::new(&EmulatorOptions::default());
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
