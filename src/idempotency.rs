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
//! The memory is per process: with more than one replica, a duplicate that
//! reaches another replica is not seen here.

use crate::audit::Outcome;
use crate::methods::Method;
use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
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
}

/// The store. Cheap to clone; clones share the entries.
#[derive(Clone)]
pub struct Idempotency {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("window", &self.shared.window)
            .field("max_entries", &self.shared.max_entries)
            .field("entries", &self.len())
            .finish()
    }
}

struct Shared {
    window: Duration,
    max_entries: usize,
    clock: Clock,
    /// `graph_gateway_idempotency_entries`, set whenever the count changes.
    gauge: Gauge,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// The answered entries, oldest first (answers are remembered in clock
    /// order, so this is also expiry order).
    answered: VecDeque<Answered>,
    /// Tells an entry from a later one under the same key.
    next_generation: u64,
}

struct Entry {
    fingerprint: Fingerprint,
    generation: u64,
    stage: Stage,
}

enum Stage {
    /// The leader is at work; dropping the sender (when the answer is
    /// remembered or the entry removed) wakes every waiter.
    Running(watch::Sender<()>),
    Answered(Remembered),
}

struct Answered {
    at: Instant,
    key: Key,
    generation: u64,
}

impl Idempotency {
    /// A store keeping answers for `window`, holding at most `max_entries`
    /// (at least one).
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Self::with_clock(window, max_entries, Clock::Tokio, Gauge::default())
    }

    /// As [`Self::new`], keeping `gauge` at the number of entries held.
    pub fn counted(window: Duration, max_entries: usize, gauge: Gauge) -> Self {
        Self::with_clock(window, max_entries, Clock::Tokio, gauge)
    }

    fn with_clock(window: Duration, max_entries: usize, clock: Clock, gauge: Gauge) -> Self {
        Self {
            shared: Arc::new(Shared {
                window,
                max_entries: max_entries.max(1),
                clock,
                gauge,
                state: Mutex::default(),
            }),
        }
    }

    /// The most entries held.
    pub fn max_entries(&self) -> usize {
        self.shared.max_entries
    }

    /// Entries held, running or answered (expired ones may still count
    /// until the next call looks).
    pub fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls waiting for the leader under `key`.
    #[cfg(test)]
    fn waiting(&self, key: &Key) -> usize {
        match self.shared.lock().entries.get(key) {
            Some(Entry {
                stage: Stage::Running(leader),
                ..
            }) => leader.receiver_count(),
            _ => 0,
        }
    }

    /// Looks `key` up for a request with `fingerprint`; waits while the
    /// same request runs under it. Cancel-safe: dropping the future
    /// mid-wait leaves the store as it was.
    pub async fn begin(&self, key: Key, fingerprint: Fingerprint) -> Begin {
        loop {
            let mut running = {
                let mut state = self.shared.lock();
                state.expire(self.shared.clock.now(), self.shared.window);
                let full = state.entries.len() >= self.shared.max_entries;
                match state.entries.get(&key) {
                    Some(entry) if entry.fingerprint != fingerprint => return Begin::Reused,
                    Some(Entry {
                        stage: Stage::Answered(answer),
                        ..
                    }) => return Begin::Replay(answer.clone()),
                    Some(Entry {
                        stage: Stage::Running(leader),
                        ..
                    }) => leader.subscribe(),
                    None => {
                        if full && !state.evict_oldest() {
                            self.shared.count(&state);
                            return Begin::Full;
                        }
                        let generation = state.next_generation;
                        state.next_generation += 1;
                        let (leader, _) = watch::channel(());
                        state.entries.insert(
                            key.clone(),
                            Entry {
                                fingerprint,
                                generation,
                                stage: Stage::Running(leader),
                            },
                        );
                        self.shared.count(&state);
                        return Begin::Lead(Lease {
                            shared: self.shared.clone(),
                            key,
                            generation,
                            done: false,
                        });
                    }
                }
            };
            // Nothing is ever sent: this returns once the leader's sender is
            // dropped, because it remembered an answer or gave up. Look again
            // either way.
            let _ = running.changed().await;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements; a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, state: &State) {
        self.gauge
            .set(i64::try_from(state.entries.len()).unwrap_or(i64::MAX));
    }
}

impl State {
    /// Removes the answered entries older than `window`.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(oldest) = self.answered.front() {
            if now.saturating_duration_since(oldest.at) < window {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Removes the oldest answered entry; `false` if there is none.
    fn evict_oldest(&mut self) -> bool {
        while !self.answered.is_empty() {
            if self.pop_oldest() {
                return true;
            }
        }
        false
    }

    /// Pops the front of the queue and its entry, if it is still the one
    /// the queue names.
    fn pop_oldest(&mut self) -> bool {
        let Some(oldest) = self.answered.pop_front() else {
            return false;
        };
        match self.entries.get(&oldest.key) {
            Some(entry) if entry.generation == oldest.generation => {
                self.entries.remove(&oldest.key);
                true
            }
            _ => false,
        }
    }
}

/// The leader's hold on an entry: remember the answer or forget the entry.
/// Dropped unfinished (the call was cancelled), it forgets.
#[derive(Debug)]
pub struct Lease {
    shared: Arc<Shared>,
    key: Key,
    generation: u64,
    done: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Idempotency")
    }
}

impl Lease {
    /// Keeps `answer` for the window and hands it to every waiter.
    pub fn remember(mut self, answer: Remembered) {
        self.done = true;
        let mut state = self.shared.lock();
        // Read under the lock, so the queue stays in clock order.
        let now = self.shared.clock.now();
        let leader = match state.entries.get_mut(&self.key) {
            Some(entry) if entry.generation == self.generation => {
                std::mem::replace(&mut entry.stage, Stage::Answered(answer))
            }
            _ => return,
        };
        state.answered.push_back(Answered {
            at: now,
            key: self.key.clone(),
            generation: self.generation,
        });
        state.expire(now, self.shared.window);
        self.shared.count(&state);
        drop(state);
        // Wakes the waiters, who find the answer.
        drop(leader);
    }

    /// Removes the entry: the call's answer is not one to remember. A
    /// waiter becomes the new leader.
    pub fn forget(self) {
        drop(self);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        let removed = match state.entries.get(&self.key) {
            Some(entry) if entry.generation == self.generation => state.entries.remove(&self.key),
            _ => None,
        };
        self.shared.count(&state);
        drop(state);
        // Wakes the waiters, who find the key free.
        drop(removed);
    }
}

/// Where the store reads the time: tokio's clock, or, in tests, one they move.
enum Clock {
    Tokio,
    #[cfg(test)]
    Manual(Arc<Mutex<Instant>>),
}

impl Clock {
    fn now(&self) -> Instant {
        match self {
            Clock::Tokio => Instant::now(),
            #[cfg(test)]
            Clock::Manual(now) => *now.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tonic::Code;

    const WINDOW: Duration = Duration::from_secs(600);

    /// A store on a clock the test moves.
    fn store(max_entries: usize) -> (Idempotency, Arc<Mutex<Instant>>, Gauge) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let gauge = Gauge::default();
        let store = Idempotency::with_clock(
            WINDOW,
            max_entries,
            Clock::Manual(now.clone()),
            gauge.clone(),
        );
        (store, now, gauge)
    }

    fn advance(clock: &Mutex<Instant>, by: Duration) {
        *clock.lock().expect("clock") += by;
    }

    fn key(caller: &str, method: Method, id: u128) -> Key {
        Key {
            caller: caller.into(),
            method,
            request_id: Uuid::from_u128(id),
        }
    }

    fn print(n: u8) -> Fingerprint {
        Fingerprint([n; 32])
    }

    fn ok(text: &'static str) -> Answer {
        Answer {
            message: Bytes::from_static(text.as_bytes()),
            request_id: Some(format!("graph-{text}")),
        }
    }

    fn answer(text: &'static str) -> Remembered {
        Remembered {
            answer: Ok(ok(text)),
            outcome: Outcome::Applied,
            audited: Audited::default(),
        }
    }

    /// Polls `fut` once, without a runtime: `Pending` means it waits.
    fn poll_once<F: Future + ?Sized>(fut: &mut Pin<Box<F>>) -> Poll<F::Output> {
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    fn lead(begin: Begin) -> Lease {
        match begin {
            Begin::Lead(lease) => lease,
            other => panic!("expected to lead, got {other:?}"),
        }
    }

    fn replay(begin: Begin) -> Remembered {
        match begin {
            Begin::Replay(answer) => answer,
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    fn replayed(begin: Begin) -> Answer {
        replay(begin).answer.expect("a remembered success")
    }

    fn ready<T>(poll: Poll<T>) -> T {
        match poll {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("still waiting"),
        }
    }

    #[tokio::test]
    async fn a_sequential_duplicate_replays_the_remembered_answer() {
        let (store, _, gauge) = store(10);
        let k = key("patcher", Method::Update, 1);
        lead(store.begin(k.clone(), print(1)).await).remember(answer("task"));
        assert_eq!(replayed(store.begin(k.clone(), print(1)).await), ok("task"));
        assert_eq!(replayed(store.begin(k, print(1)).await), ok("task"));
        assert_eq!(store.len(), 1);
        assert_eq!(gauge.get(), 1);
    }

    #[tokio::test]
    async fn a_remembered_failure_replays_the_same_status() {
        let (store, _, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        lead(store.begin(k.clone(), print(1)).await).remember(Remembered {
            answer: Err(Status::not_found("no such task")),
            outcome: Outcome::NotApplied,
            audited: Audited::default(),
        });
        let again = replay(store.begin(k, print(1)).await);
        assert_eq!(again.outcome, Outcome::NotApplied);
        let again = again.answer.expect_err("the failure");
        assert_eq!(again.code(), Code::NotFound);
        assert_eq!(again.message(), "no such task");
    }

    #[tokio::test]
    async fn a_concurrent_duplicate_waits_for_the_first_and_gets_its_answer() {
        let (store, _, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        let mut second = Box::pin(store.begin(k.clone(), print(1)));
        let mut third = Box::pin(store.begin(k, print(1)));
        assert!(
            poll_once(&mut second).is_pending(),
            "waits while the first runs"
        );
        assert!(
            poll_once(&mut third).is_pending(),
            "waits while the first runs"
        );
        first.remember(answer("task"));
        assert_eq!(replayed(ready(poll_once(&mut second))), ok("task"));
        assert_eq!(replayed(ready(poll_once(&mut third))), ok("task"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_on_another_task_is_woken_by_the_answer() {
        let (store, _, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        let waiter = tokio::spawn({
            let (store, k) = (store.clone(), k.clone());
            async move { store.begin(k, print(1)).await }
        });
        // A bounded look at the store's state until the waiter is waiting.
        for _ in 0..10_000 {
            if store.waiting(&k) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(store.waiting(&k), 1, "the duplicate waits for the first");
        first.remember(answer("task"));
        let answer = waiter.await.expect("the waiter finishes");
        assert_eq!(replayed(answer), ok("task"));
        assert_eq!(store.waiting(&k), 0);
    }

    #[tokio::test]
    async fn another_request_under_the_same_key_is_reused_whether_answered_or_running() {
        let (store, _, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        assert!(matches!(
            store.begin(k.clone(), print(2)).await,
            Begin::Reused
        ));
        first.remember(answer("task"));
        assert!(matches!(
            store.begin(k.clone(), print(2)).await,
            Begin::Reused
        ));
        // The entry is untouched.
        assert_eq!(replayed(store.begin(k, print(1)).await), ok("task"));
    }

    #[tokio::test]
    async fn an_answer_is_kept_for_the_window_and_then_gone() {
        let (store, clock, gauge) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        // The window counts from the answer, not from the start.
        advance(&clock, WINDOW * 2);
        first.remember(answer("task"));
        advance(&clock, WINDOW - Duration::from_millis(1));
        assert_eq!(replayed(store.begin(k.clone(), print(1)).await), ok("task"));
        advance(&clock, Duration::from_millis(1));
        // Gone: the same key runs again, even with another request.
        let again = lead(store.begin(k.clone(), print(2)).await);
        assert_eq!(gauge.get(), 1);
        again.remember(answer("second"));
        assert_eq!(replayed(store.begin(k, print(2)).await), ok("second"));
    }

    #[tokio::test]
    async fn a_running_call_does_not_expire() {
        let (store, clock, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        let _first = lead(store.begin(k.clone(), print(1)).await);
        advance(&clock, WINDOW * 10);
        let mut second = Box::pin(store.begin(k, print(1)));
        assert!(poll_once(&mut second).is_pending());
    }

    #[tokio::test]
    async fn a_full_store_evicts_the_oldest_answer_first() {
        let (store, clock, gauge) = store(2);
        let (a, b, c) = (
            key("patcher", Method::Update, 1),
            key("patcher", Method::Update, 2),
            key("patcher", Method::Update, 3),
        );
        lead(store.begin(a.clone(), print(1)).await).remember(answer("a"));
        advance(&clock, Duration::from_secs(1));
        lead(store.begin(b.clone(), print(1)).await).remember(answer("b"));
        advance(&clock, Duration::from_secs(1));
        lead(store.begin(c.clone(), print(1)).await).remember(answer("c"));
        assert_eq!(store.len(), 2);
        assert_eq!(gauge.get(), 2);
        assert_eq!(replayed(store.begin(b, print(1)).await), ok("b"));
        assert_eq!(replayed(store.begin(c.clone(), print(1)).await), ok("c"));
        // `a` was evicted: it runs again (and evicts `b`, now the oldest).
        lead(store.begin(a, print(1)).await).remember(answer("a again"));
        assert_eq!(store.len(), 2);
        assert_eq!(replayed(store.begin(c, print(1)).await), ok("c"));
    }

    #[tokio::test]
    async fn a_running_call_is_never_evicted_and_a_store_full_of_them_refuses() {
        let (store, _, _) = store(2);
        let (a, b, c) = (
            key("patcher", Method::Update, 1),
            key("patcher", Method::Update, 2),
            key("patcher", Method::Update, 3),
        );
        let running = lead(store.begin(a.clone(), print(1)).await);
        lead(store.begin(b.clone(), print(1)).await).remember(answer("b"));
        // Full: the answered `b` goes, the running `a` stays.
        let third = lead(store.begin(c.clone(), print(1)).await);
        assert!(matches!(store.begin(b, print(1)).await, Begin::Full));
        let mut waiter = Box::pin(store.begin(a, print(1)));
        assert!(poll_once(&mut waiter).is_pending(), "a is still running");
        running.remember(answer("a"));
        assert_eq!(replayed(ready(poll_once(&mut waiter))), ok("a"));
        third.forget();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn a_forgotten_or_dropped_lease_lets_a_waiter_lead() {
        let (store, _, gauge) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        let mut second = Box::pin(store.begin(k.clone(), print(1)));
        let mut third = Box::pin(store.begin(k.clone(), print(1)));
        assert!(poll_once(&mut second).is_pending());
        assert!(poll_once(&mut third).is_pending());
        first.forget();
        // One waiter leads; the other waits for it.
        let second = lead(ready(poll_once(&mut second)));
        assert!(poll_once(&mut third).is_pending());
        // Dropped unfinished, as when its call is cancelled.
        drop(second);
        let third = lead(ready(poll_once(&mut third)));
        assert_eq!(gauge.get(), 1);
        drop(third);
        assert!(store.is_empty());
        assert_eq!(gauge.get(), 0);
        lead(store.begin(k, print(1)).await);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_nothing_behind() {
        let (store, _, _) = store(10);
        let k = key("patcher", Method::Update, 1);
        let first = lead(store.begin(k.clone(), print(1)).await);
        let mut gone = Box::pin(store.begin(k.clone(), print(1)));
        assert!(poll_once(&mut gone).is_pending());
        drop(gone);
        let mut waiter = Box::pin(store.begin(k.clone(), print(1)));
        assert!(poll_once(&mut waiter).is_pending());
        first.remember(answer("task"));
        assert_eq!(replayed(ready(poll_once(&mut waiter))), ok("task"));
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn other_callers_and_other_rpcs_with_the_same_request_id_are_independent() {
        let (store, _, _) = store(10);
        let id = 7;
        let patcher = key("patcher", Method::Update, id);
        lead(store.begin(patcher.clone(), print(1)).await).remember(answer("patcher"));
        // Another caller, the same id and request: its own call.
        let other = key("auditor", Method::Update, id);
        lead(store.begin(other.clone(), print(1)).await).remember(answer("auditor"));
        // Another RPC, the same caller and id: its own call too.
        let other_rpc = key("patcher", Method::Get, id);
        lead(store.begin(other_rpc, print(2)).await);
        assert_eq!(
            replayed(store.begin(patcher, print(1)).await),
            ok("patcher")
        );
        assert_eq!(replayed(store.begin(other, print(1)).await), ok("auditor"));
    }

    #[tokio::test]
    async fn the_metrics_show_the_entries_held_and_the_replays() {
        let metrics = crate::metrics::Metrics::default();
        let store = Idempotency::counted(WINDOW, 10, metrics.idempotency_entries());
        let k = key("patcher", Method::Update, 1);
        lead(store.begin(k.clone(), print(1)).await).remember(answer("task"));
        replayed(store.begin(k, print(1)).await);
        metrics.idempotent_replay(Method::Update.name());
        let text = metrics.render();
        assert!(
            text.contains("graph_gateway_idempotency_entries 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "graph_gateway_idempotent_replays_total{rpc=\"UpdateSecurityConfigurationTask\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_fingerprint_tells_requests_apart_and_not_copies() {
        use crate::proto::v1::{SecurityConfigurationTask, UpdateSecurityConfigurationTaskRequest};
        let request = |name: &str| UpdateSecurityConfigurationTaskRequest {
            security_configuration_task: Some(SecurityConfigurationTask {
                id: "5d630f12-0f12-5d63-120f-635d120f635d".into(),
                display_name: Some(name.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            Fingerprint::of(&request("a")),
            Fingerprint::of(&request("a"))
        );
        assert_ne!(
            Fingerprint::of(&request("a")),
            Fingerprint::of(&request("b"))
        );
        assert_eq!(format!("{:?}", print(0xab)), "abababababababab…");
    }
}
