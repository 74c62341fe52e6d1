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
    /// Every header as received, in order, names lower case (values not
    /// UTF-8 are replaced): what proves which headers a client sent.
    pub headers: Vec<(String, String)>,
    /// The body after any `Content-Encoding: gzip` is undone: `None` when
    /// empty, the parsed value when it is JSON, otherwise a JSON string
    /// holding the text (invalid UTF-8 replaced by U+FFFD).
    pub body: Option<Value>,
}

pub struct Journal {
    received: u64,
    log: VecDeque<RecordedRequest>,
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
            if self.log.len() >= REQUEST_LOG_CAPACITY {
                self.log.pop_front();
            }
            self.log.push_back(request);
        }
        Admission {
            fault: self.faults.pop_front(),
            chaos: chaos.and_then(|chaos| self.chaos.draw(chaos)),
        }
    }

    /// Restarts the chaos sequence from `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.chaos = ChaosRng::new(seed);
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.iter().cloned().collect()
    }

    pub fn push_faults(&mut self, faults: impl IntoIterator<Item = ScriptedFault>) {
        self.faults.extend(faults);
    }

    pub fn pending_faults(&self) -> usize {
        self.faults.len()
    }
}
