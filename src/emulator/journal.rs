//! What the emulator remembers about traffic: the request count, the request
//! log and the queue of scripted faults.
//!
//! All three sit behind one lock so that the Nth request logged is exactly the
//! one that consumed the Nth fault, whatever the concurrency.

use std::collections::VecDeque;

use serde::Serialize;
use serde_json::Value;

use super::faults::Fault;

/// Most requests kept in the log. The emulator doubles as a constant-cost
/// benchmark backend, so the log drops its oldest entries past this instead
/// of growing without bound; `Emulator::received` still counts everything.
pub const REQUEST_LOG_CAPACITY: usize = 100_000;

/// One request that reached a Graph route (under `/beta`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub path_and_query: String,
    pub client_request_id: Option<String>,
    pub authorization: Option<String>,
    /// The body after any `Content-Encoding: gzip` is undone: `None` when
    /// empty, the parsed value when it is JSON, otherwise a JSON string
    /// holding the text (invalid UTF-8 replaced by U+FFFD).
    pub body: Option<Value>,
}

#[derive(Default)]
pub struct Journal {
    received: u64,
    log: VecDeque<RecordedRequest>,
    faults: VecDeque<Fault>,
}

impl Journal {
    /// Logs a Graph-route request and hands it the next scripted fault, if any.
    pub fn admit(&mut self, request: RecordedRequest) -> Option<Fault> {
        self.received += 1;
        if self.log.len() >= REQUEST_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(request);
        self.faults.pop_front()
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.iter().cloned().collect()
    }

    pub fn push_faults(&mut self, faults: impl IntoIterator<Item = Fault>) {
        self.faults.extend(faults);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }
}
