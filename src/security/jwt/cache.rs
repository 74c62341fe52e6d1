//! The issuer's keys, held between requests and fetched as little as
//! possible.
//!
//! - Cold (no key set yet): callers wait for the one fetch in flight.
//! - Held: used as is. Once `refresh` has passed since the last good fetch,
//!   the first caller to notice starts a fetch in the background; nobody
//!   waits for it, and if it fails the keys held stay in use.
//! - A `kid` the set does not have: callers wait for one fetch, at most one
//!   such fetch per [`FORCED_FETCH_INTERVAL`], so tokens with made-up key ids
//!   cannot make the gateway hammer the issuer.
//! - After a failed fetch, no new one for a pause (1 s, doubling up to 30 s,
//!   never longer than `refresh`); callers meanwhile get that failure.
//!
//! Fetches are single-flight: one at a time, and a caller that waited while
//! another fetch ran takes that fetch's outcome instead of starting its own.
//! Each fetch runs in its own task holding the lock, so a caller whose
//! deadline passes does not cancel the fetch others wait for.

use super::error::JwtError;
use super::fetch::download;
use super::keys::KeySet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use url::Url;

/// At most one fetch per this interval for a token whose `kid` is not in the
/// set.
pub const FORCED_FETCH_INTERVAL: Duration = Duration::from_secs(30);

/// The longest pause after failed fetches.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(30);

/// The keys as one moment saw them, and which fetch they came from.
pub(super) struct Snapshot {
    pub(super) keys: Arc<KeySet>,
    generation: u64,
}

/// Why a fetch is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// No keys are held yet.
    Load,
    /// The keys held are due for refreshing.
    Refresh,
    /// A token names a `kid` the keys held do not have.
    UnknownKid,
}

#[derive(Clone)]
pub(super) struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    url: Url,
    refresh: Duration,
    state: Mutex<State>,
    /// Held for the whole of a fetch: the single flight.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

struct State {
    keys: Option<Arc<KeySet>>,
    /// Counts finished fetches, good or failed.
    generation: u64,
    /// The last fetch's failure, if it failed.
    last_failure: Option<String>,
    /// When the keys held are due for refreshing (`None`: never).
    stale_at: Option<Instant>,
    /// No fetch before this, after failures.
    retry_at: Option<Instant>,
    consecutive_failures: u32,
    /// When the last fetch for an unknown `kid` started.
    last_forced: Option<Instant>,
    /// A background refresh is under way.
    refreshing: bool,
}

impl KeyCache {
    pub(super) fn new(http: reqwest::Client, url: Url, refresh: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                url,
                refresh,
                state: Mutex::new(State {
                    keys: None,
                    generation: 0,
                    last_failure: None,
                    stale_at: None,
                    retry_at: None,
                    consecutive_failures: 0,
                    last_forced: None,
                    refreshing: false,
                }),
                fetching: Arc::new(tokio::sync::Mutex::new(())),
            }),
        }
    }

    pub(super) fn url(&self) -> &Url {
        &self.inner.url
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every update is a
        // plain assignment), so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a key set is held (for readiness).
    pub(super) fn has_keys(&self) -> bool {
        self.state().keys.is_some()
    }

    /// The keys held, fetching them first if none are; starts a background
    /// refresh when they are due.
    pub(super) async fn keys(&self) -> Result<Snapshot, JwtError> {
        let generation = {
            let state = self.state();
            if let Some(keys) = &state.keys {
                let snapshot = Snapshot {
                    keys: Arc::clone(keys),
                    generation: state.generation,
                };
                drop(state);
                self.refresh_if_due();
                return Ok(snapshot);
            }
            state.generation
        };
        self.fetch(generation, Purpose::Load).await?;
        let state = self.state();
        match &state.keys {
            Some(keys) => Ok(Snapshot {
                keys: Arc::clone(keys),
                generation: state.generation,
            }),
            None => Err(unavailable(state.last_failure.as_deref())),
        }
    }

    /// For a `kid` missing from `seen`: the keys after one more fetch, or
    /// `None` when a fetch for an unknown `kid` ran too recently.
    pub(super) async fn keys_for_unknown_kid(
        &self,
        seen: &Snapshot,
    ) -> Result<Option<Snapshot>, JwtError> {
        if !self.fetch(seen.generation, Purpose::UnknownKid).await? {
            return Ok(None);
        }
        let state = self.state();
        Ok(state.keys.as_ref().map(|keys| Snapshot {
            keys: Arc::clone(keys),
            generation: state.generation,
        }))
    }

    fn refresh_if_due(&self) {
        let now = Instant::now();
        let generation = {
            let mut state = self.state();
            let due = state.stale_at.is_some_and(|at| now >= at)
                && state.retry_at.is_none_or(|at| now >= at);
            if !due || state.refreshing {
                return;
            }
            state.refreshing = true;
            state.generation
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _done = RefreshDone(&this);
            // A failure is logged and kept as the last failure; the keys held stay in use.
            let _ = this.fetch(generation, Purpose::Refresh).await;
        });
    }

    /// Runs one fetch unless another finished since `seen_generation` (its
    /// outcome is then this one's), a failure pause is on, or (for an
    /// unknown `kid`) such a fetch ran too recently. `Ok(false)` only in
    /// that last case.
    async fn fetch(&self, seen_generation: u64, purpose: Purpose) -> Result<bool, JwtError> {
        let flight = Arc::clone(&self.inner.fetching).lock_owned().await;
        let now = Instant::now();
        {
            let mut state = self.state();
            if state.generation != seen_generation {
                return match &state.last_failure {
                    None => Ok(true),
                    Some(failure) => Err(unavailable(Some(failure))),
                };
            }
            let forced_too_soon = purpose == Purpose::UnknownKid
                && state
                    .last_forced
                    .is_some_and(|at| now.duration_since(at) < FORCED_FETCH_INTERVAL);
            if forced_too_soon {
                return Ok(false);
            }
            if state.retry_at.is_some_and(|at| now < at) {
                return Err(unavailable(state.last_failure.as_deref()));
            }
            if purpose == Purpose::UnknownKid {
                state.last_forced = Some(now);
            }
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _flight = flight;
            this.fetch_now(purpose).await
        });
        match task.await {
            Ok(outcome) => outcome.map(|()| true),
            Err(_) => Err(JwtError::JwksUnavailable(
                "the key set fetch stopped unexpectedly".to_owned(),
            )),
        }
    }

    async fn fetch_now(&self, purpose: Purpose) -> Result<(), JwtError> {
        let outcome = download(&self.inner.http, &self.inner.url).await;
        let now = Instant::now();
        let mut state = self.state();
        state.generation += 1;
        match outcome {
            Ok(keys) => {
                tracing::debug!(jwks_url = %self.inner.url, keys = keys.len(), ?purpose, "JWKS fetched");
                state.keys = Some(Arc::new(keys));
                state.last_failure = None;
                state.stale_at = now.checked_add(self.inner.refresh);
                state.retry_at = None;
                state.consecutive_failures = 0;
                Ok(())
            }
            Err(failure) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                let pause = failure_pause(state.consecutive_failures).min(self.inner.refresh);
                state.retry_at = now.checked_add(pause);
                tracing::warn!(
                    error = %failure,
                    ?purpose,
                    consecutive_failures = state.consecutive_failures,
                    keys_held = state.keys.is_some(),
                    "JWKS fetch failed"
                );
                let error = unavailable(Some(&failure));
                state.last_failure = Some(failure);
                Err(error)
            }
        }
    }
}

/// 1 s after the first failure, doubling, up to 30 s.
fn failure_pause(consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(5);
    (Duration::from_secs(1) * (1 << doublings)).min(MAX_FAILURE_PAUSE)
}

fn unavailable(failure: Option<&str>) -> JwtError {
    JwtError::JwksUnavailable(failure.unwrap_or("no key set fetched yet").to_owned())
}

/// Clears `refreshing` when a background refresh ends, however it ends.
struct RefreshDone<'a>(&'a KeyCache);

impl Drop for RefreshDone<'_> {
    fn drop(&mut self) {
        self.0.state().refreshing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_pause_doubles_up_to_thirty_seconds() {
        let pauses: Vec<u64> = (1..=8).map(|n| failure_pause(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(failure_pause(u32::MAX), MAX_FAILURE_PAUSE);
    }
}
