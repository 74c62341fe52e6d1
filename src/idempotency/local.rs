//! The memory of one process: today's entries in a map, waiters woken by a
//! channel the leader drops, answers expiring in clock order, and the bound
//! on entries (see the rules in [`super`]).

use super::{Begin, Fingerprint, Key, Lease, Remembered};
use prometheus_client::metrics::gauge::Gauge;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The memory of this process. Cheap to clone; clones share the entries.
#[derive(Clone)]
pub(super) struct Local {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
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

impl Local {
    /// A store keeping answers for `window`, holding at most `max_entries`
    /// (at least one), keeping `gauge` at the number of entries held.
    pub(super) fn new(window: Duration, max_entries: usize, clock: Clock, gauge: Gauge) -> Self {
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
    pub(super) fn max_entries(&self) -> usize {
        self.shared.max_entries
    }

    /// Entries held, running or answered (expired ones may still count
    /// until the next call looks).
    pub(super) fn len(&self) -> usize {
        self.shared.lock().entries.len()
    }

    /// Calls waiting for the leader under `key`.
    #[cfg(test)]
    pub(super) fn waiting(&self, key: &Key) -> usize {
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
    pub(super) async fn begin(&self, key: Key, fingerprint: Fingerprint) -> Begin {
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
                        return Begin::Lead(Lease::local(LocalLease {
                            shared: self.shared.clone(),
                            key,
                            generation,
                            done: false,
                        }));
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

/// The leader's hold on an entry of this process: remember the answer or
/// forget the entry. Dropped unfinished (the call was cancelled), it forgets.
#[derive(Debug)]
pub(super) struct LocalLease {
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

impl LocalLease {
    /// Keeps `answer` for the window and hands it to every waiter.
    pub(super) fn remember(mut self, answer: Remembered) {
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
}

impl Drop for LocalLease {
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
pub(super) enum Clock {
    Tokio,
    #[cfg(test)]
    Manual(Arc<Mutex<Instant>>),
}

impl Clock {
    pub(super) fn now(&self) -> Instant {
        match self {
            Clock::Tokio => Instant::now(),
            #[cfg(test)]
            Clock::Manual(now) => *now.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}
