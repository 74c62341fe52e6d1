//! Safe retries (AIP-155): the gateway's memory of the mutating calls that
//! carried a `request_id`, so that a client that sends the same call again
//! (its answer was lost, its connection dropped, it timed out) gets the
//! first call's answer instead of a second write to Graph.
//!
//! An entry is keyed by who called (the policy's caller name), which RPC,
//! and the `request_id`; it holds a [`Fingerprint`] of the request and,
//! once the first call is over, its [`Remembered`] answer. For a key seen
//! before, [`Idempotency::begin`] says:
//! - the same request, answered: [`Begin::Replay`] the answer, with no call
//!   to Graph;
//! - the same request, still running: wait for it (without polling; a
//!   waiter that is dropped leaves nothing behind), then as above;
//! - another request under the same key: [`Begin::Reused`], which the
//!   caller answers `INVALID_ARGUMENT` (`REQUEST_ID_REUSED`).
//!
//! A new key is [`Begin::Lead`]: the call runs, holding a [`Lease`] on the
//! entry. [`Lease::remember`] keeps its answer and wakes the waiters;
//! [`Lease::forget`] (or dropping the lease unfinished, as when the call is
//! cancelled) removes the entry, and the waiters try again: one of them
//! becomes the new leader and runs the call.
//!
//! Which answers to remember (the caller of [`Lease::remember`] decides,
//! by this rule; the service writes it once, in `service::idempotent`): an answer where Graph took the request, or may have taken
//! it (the outcome was applied, or is unknown), and Graph's definitive
//! refusals (not found, another task type, a request Graph rejected). Not
//! an answer where nothing happened and the same call could succeed later:
//! throttled, Graph unavailable or the deadline passed before anything was
//! sent, a request that failed validation. Those are forgotten, so the
//! client's retry with the same `request_id` really runs again. A call
//! dropped after a request may have reached Graph is remembered as an
//! unknown outcome, so its retries never send it again.
//!
//! Entries last [`Idempotency::new`]'s `window` from when their answer was
//! remembered (`GATEWAY_IDEMPOTENCY_WINDOW`, 10 minutes by default), and at
//! most `max_entries` are held (`GATEWAY_IDEMPOTENCY_MAX_ENTRIES`,
//! 100,000): a new key when the store is full evicts the oldest answered
//! entry. Entries still running are never evicted; if every entry is
//! running, the new call is refused ([`Begin::Full`], which the caller
//! answers `RESOURCE_EXHAUSTED` with nothing sent) rather than run without
//! the protection its `request_id` asked for.
//!
//! With the budget's Redis (`GRAPH_BUDGET_REDIS_URL`), the memory is shared
//! by the replicas ([`SharedStore`], in `shared.rs`): a duplicate that
//! reaches another replica is replayed too, waits for the first call there,
//! or is refused as a reuse, by the same rules. Each process still keeps
//! its own memory in front ([`local`]), so its own duplicates wait without
//! asking Redis; a call that leads here then claims the shared entry, and
//! its answer is written to both. When Redis does not answer, the call goes
//! on with this process's memory alone (counted in
//! `graph_gateway_idempotency_store_errors_total`): the gateway never fails a
//! call because Redis is down, and a duplicate reaching another replica
//! meanwhile runs again.

mod codec;
mod local;
mod shared;
#[cfg(test)]
mod tests;

pub use shared::{SharedStore, CLAIM_LEASE};

use crate::audit::Outcome;
use crate::methods::Method;
use bytes::Bytes;
use local::{Clock, Local, LocalLease};
use prometheus_client::metrics::gauge::Gauge;
use shared::{Claim, SharedBegin};
use std::sync::Arc;
use std::time::Duration;
use tonic::Status;
use uuid::Uuid;

/// Who asked for what, under which `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The policy's caller name (`anonymous` without a policy): two callers
    /// never share an entry, whatever ids they choose.
    pub caller: Arc<str>,
    pub method: Method,
    pub request_id: Uuid,
}

/// SHA-256 of the request message as the gateway decoded it, re-encoded
/// with prost, with its `request_id` cleared.
///
/// The `request_id` is in the key, parsed: two spellings of one UUID
/// (upper and lower case, with or without hyphens) are one key, and with
/// the field cleared they are one request too, rather than a reuse. A
/// cryptographic digest, because a collision would answer one request with
/// another's outcome: a caller must not be able to make two different
/// requests match. Fields the gateway does not know are not re-encoded, so
/// they are no part of the fingerprint (they change nothing the gateway
/// does); the request messages have no map fields, whose encoding order
/// would vary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `request`, whose `request_id` the caller cleared.
    pub fn of(request: &impl prost::Message) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &request.encode_to_vec());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// A successful answer: the response message, prost-encoded (so one store
/// serves every RPC; the service decodes it back on a replay), and Graph's
/// `request-id` for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub message: Bytes,
    pub request_id: Option<String>,
}

/// What a call answered (the message, or the status it failed with), and
/// what the audit record said of it, so a replay's record says the same.
#[derive(Debug, Clone)]
pub struct Remembered {
    pub answer: Result<Answer, Status>,
    /// What the call did at Graph.
    pub outcome: Outcome,
    /// What its audit record named besides the outcome.
    pub audited: Audited,
}

/// What the first call's audit record named, so a replay's names the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audited {
    /// The task it acted on, when the request did not name it (Create).
    pub task_id: Option<String>,
    /// Proto names of the fields sent, comma-separated.
    pub fields: String,
    /// The Graph status member set (SetStatus).
    pub status: Option<&'static str>,
    /// The note's length in bytes (SetStatus).
    pub note_bytes: Option<usize>,
    /// A batch call's items, in request order: what each did and was
    /// answered, so a replay writes the same record for each.
    pub items: Vec<AuditedItem>,
}

/// What one item of a batch call did at Graph, and its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditedItem {
    pub outcome: Outcome,
    pub code: tonic::Code,
}

/// What to do with a call that carries a `request_id`.
#[derive(Debug)]
pub enum Begin {
    /// The first call with this key: run it, then remember or forget.
    Lead(Lease),
    /// The same request was answered: answer the same, without running it.
    Replay(Remembered),
    /// Another request was sent under this key.
    Reused,
    /// The store is full of calls still running: refuse this one.
    Full,
    /// The same request still runs on another replica, a whole window
    /// after this call began waiting: refuse this one.
    InProgress,
}

/// The store: this process's memory, and the replicas' when shared. Cheap
/// to clone; clones share the entries.
#[derive(Clone, Debug)]
pub struct Idempotency {
    local: Local,
    shared: Option<SharedStore>,
}

impl Idempotency {
    /// A store keeping answers for `window`, holding at most `max_entries`
    /// (at least one).
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Self::counted(window, max_entries, Gauge::default())
    }

    /// As [`Self::new`], keeping `gauge` at the number of entries held.
    pub fn counted(window: Duration, max_entries: usize, gauge: Gauge) -> Self {
        Self {
            local: Local::new(window, max_entries, Clock::Tokio, gauge),
            shared: None,
        }
    }

    #[cfg(test)]
    fn with_clock(window: Duration, max_entries: usize, clock: Clock, gauge: Gauge) -> Self {
        Self {
            local: Local::new(window, max_entries, clock, gauge),
            shared: None,
        }
    }

    /// The same store, sharing its entries with the replicas through
    /// `shared`.
    pub fn sharing(mut self, shared: SharedStore) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Whether the entries are shared with other replicas.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The most entries held by this process.
    pub fn max_entries(&self) -> usize {
        self.local.max_entries()
    }

    /// Entries held by this process, running or answered (expired ones may
    /// still count until the next call looks).
    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls waiting for this process's leader under `key`.
    #[cfg(test)]
    fn waiting(&self, key: &Key) -> usize {
        self.local.waiting(key)
    }

    /// Looks `key` up for a request with `fingerprint`; waits while the
    /// same request runs under it, here or (shared) on another replica.
    /// Cancel-safe: dropping the future mid-wait leaves the store as it was
    /// (a shared claim made in the very round trip that is dropped runs
    /// out with its lease).
    pub async fn begin(&self, key: Key, fingerprint: Fingerprint) -> Begin {
        let begun = self.local.begin(key.clone(), fingerprint).await;
        let Some(shared) = &self.shared else {
            return begun;
        };
        let mut lease = match begun {
            Begin::Lead(lease) => lease,
            other => return other,
        };
        // Leading here; now among the replicas. Whatever Redis says other
        // than "lead", this process's entry goes (a waiter here asks again).
        match shared.begin(&key, fingerprint).await {
            SharedBegin::Lead(claim) => {
                lease.claim = Some(claim);
                Begin::Lead(lease)
            }
            SharedBegin::Replay(remembered) => Begin::Replay(remembered),
            SharedBegin::Reused => Begin::Reused,
            SharedBegin::Busy => Begin::InProgress,
            SharedBegin::Down => Begin::Lead(lease),
        }
    }
}

/// The leader's hold on an entry: remember the answer or forget the entry.
/// Dropped unfinished (the call was cancelled), it forgets.
#[derive(Debug)]
pub struct Lease {
    local: LocalLease,
    /// The claim on the shared entry, when there is one.
    claim: Option<Claim>,
}

impl Lease {
    fn local(local: LocalLease) -> Self {
        Self { local, claim: None }
    }

    /// Keeps `answer` for the window and hands it to every waiter (on other
    /// replicas once Redis has it, a round trip later).
    pub fn remember(self, answer: Remembered) {
        let Self { local, claim } = self;
        if let Some(claim) = claim {
            claim.remember(&answer);
        }
        local.remember(answer);
    }

    /// Removes the entry: the call's answer is not one to remember. A
    /// waiter becomes the new leader.
    pub fn forget(self) {
        drop(self);
    }
}
