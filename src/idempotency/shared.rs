//! The memory shared by the replicas, in the budget's Redis
//! (`GRAPH_BUDGET_REDIS_URL`): a duplicate that reaches another replica finds
//! the first call's entry there.
//!
//! An entry is one hash per key, `ggw:idem:<tenant>:<client>:<caller>:<rpc>:<request_id>`
//! (each part escaped, so no caller name can reach into another's keys),
//! holding the layout version, the request's fingerprint, the state
//! (`running` or `answered`), the token of the call that claimed it, and once
//! answered the answer ([`super::codec`]). Two scripts, each one round trip:
//! - `begin.lua` reads the entry and, when there is none (or what is there
//!   cannot be read), claims it for this call with a lease of
//!   [`CLAIM_LEASE`], which the leader renews while its call runs;
//! - `finish.lua` ends the claim if it is still the leader's: with the answer
//!   (kept for the window, from now), or by removing the entry (a forgotten
//!   answer, a cancelled call), or renews it.
//!
//! A duplicate of a call running on another replica looks again, after a
//! pause that doubles from 10 ms to 200 ms, until it is answered (a replay),
//! removed or expired (this call claims it and runs), or the caller's
//! deadline. A leader that dies stops renewing: its claim expires within
//! [`CLAIM_LEASE`] and a waiter runs the call.
//!
//! Every call to Redis is bounded by the budget's timeout
//! (`GRAPH_BUDGET_REDIS_TIMEOUT`). When Redis does not answer, the call goes
//! on with this replica's memory alone ([`SharedBegin::Down`]): counted in
//! `graph_gateway_idempotency_store_errors_total{reason}`, with
//! `graph_gateway_idempotency_shared` at 0 until Redis answers again.

use super::{codec, Fingerprint, Key, Remembered};
use crate::budget::redis::{BudgetKey, RedisStore, StoreError};
use crate::metrics::IdempotencyStoreMetrics;
use redis::Script;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

const BEGIN: &str = include_str!("begin.lua");
const FINISH: &str = include_str!("finish.lua");

/// How long a claim holds unless its leader renews it (a third of it apart).
pub const CLAIM_LEASE: Duration = Duration::from_secs(5);
/// The first pause between looks at an entry running elsewhere, and the
/// longest.
const FIRST_LOOK: Duration = Duration::from_millis(10);
const LONGEST_LOOK: Duration = Duration::from_millis(200);
/// Unreadable answers replaced in one look-up before the call goes on with
/// the local memory alone.
const UNREADABLE_TRIES: usize = 3;

/// The shared memory. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisStore,
    /// `ggw:idem:<tenant>:<client>:`, escaped.
    prefix: String,
    window: Duration,
    lease: Duration,
    begin: Script,
    finish: Script,
    metrics: IdempotencyStoreMetrics,
    /// Whether the last call to Redis was answered (for the gauge and for
    /// logging the change only).
    up: AtomicBool,
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("prefix", &self.inner.prefix)
            .field("window", &self.inner.window)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

/// What the shared memory says of a call.
#[derive(Debug)]
pub(super) enum SharedBegin {
    /// This call claimed the entry: run it, then remember or forget.
    Lead(Claim),
    Replay(Remembered),
    Reused,
    /// The same request still runs elsewhere after the window: give up.
    Busy,
    /// Redis did not answer (counted): go on with the local memory alone.
    Down,
}

/// The step a claim ends (or goes on) with.
enum Step<'a> {
    Remember(&'a [u8]),
    Renew,
    Forget,
}

impl SharedStore {
    /// The memory of the gateway acting for `namespace` (the budget's tenant
    /// and app), keeping answers for `window`, through `redis` (the budget's
    /// settings). Nothing connects until the first call.
    pub fn new(
        redis: RedisStore,
        namespace: &BudgetKey,
        window: Duration,
        metrics: IdempotencyStoreMetrics,
    ) -> Self {
        metrics.set_shared(true);
        Self {
            inner: Arc::new(Inner {
                redis,
                prefix: format!(
                    "ggw:idem:{}:{}:",
                    escape(&namespace.tenant),
                    escape(&namespace.app)
                ),
                window,
                lease: CLAIM_LEASE,
                begin: Script::new(BEGIN),
                finish: Script::new(FINISH),
                metrics,
                up: AtomicBool::new(true),
            }),
        }
    }

    /// As configured, with claims that hold for `lease` unless renewed.
    pub fn with_claim_lease(self, lease: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                redis: inner.redis.clone(),
                prefix: inner.prefix.clone(),
                window: inner.window,
                lease: lease.max(Duration::from_millis(30)),
                begin: Script::new(BEGIN),
                finish: Script::new(FINISH),
                metrics: inner.metrics.clone(),
                up: AtomicBool::new(inner.up.load(Ordering::Relaxed)),
            }),
        }
    }

    /// The Redis key of `key`'s entry.
    pub fn entry_key(&self, key: &Key) -> String {
        format!(
            "{}{}:{}:{}",
            self.inner.prefix,
            escape(&key.caller),
            key.method.name(),
            key.request_id.as_hyphenated()
        )
    }

    /// Looks `key` up for a request with `fingerprint`, claiming it when
    /// free; waits (looking again) while the same request runs elsewhere.
    pub(super) async fn begin(&self, key: &Key, fingerprint: Fingerprint) -> SharedBegin {
        let entry = self.entry_key(key);
        let fingerprint = hex(&fingerprint.0);
        let token = Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut pause = FIRST_LOOK;
        let mut unreadable = 0;
        loop {
            let answer = match self.look(&entry, &fingerprint, &token).await {
                Ok(answer) => answer,
                Err(e) => {
                    self.down(&e);
                    return SharedBegin::Down;
                }
            };
            match answer.first().map(Vec::as_slice) {
                Some(b"lead") => {
                    if answer.get(1).is_some_and(|c| c == b"1") {
                        self.inner.metrics.error("corrupt");
                        tracing::warn!(
                            "an unreadable request_id entry in Redis was replaced by this call's"
                        );
                    }
                    return SharedBegin::Lead(Claim::start(self.clone(), entry, token));
                }
                Some(b"reused") => return SharedBegin::Reused,
                Some(b"answered") => {
                    let (Some(theirs), Some(bytes)) = (answer.get(1), answer.get(2)) else {
                        return self.unexpected();
                    };
                    match codec::decode(bytes) {
                        Ok(remembered) => return SharedBegin::Replay(remembered),
                        Err(e) => {
                            // Never replayed: removed (if still the same
                            // entry), and looked up again, which claims it.
                            self.inner.metrics.error("corrupt");
                            tracing::warn!(error = %e, "an unreadable answer in the shared request_id memory is dropped");
                            unreadable += 1;
                            if unreadable > UNREADABLE_TRIES {
                                return SharedBegin::Down;
                            }
                            let theirs = String::from_utf8_lossy(theirs).into_owned();
                            if let Err(e) = self.step(&entry, &theirs, Step::Forget).await {
                                self.down(&e);
                                return SharedBegin::Down;
                            }
                            continue;
                        }
                    }
                }
                Some(b"running") => {
                    if started.elapsed() >= self.inner.window {
                        return SharedBegin::Busy;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LONGEST_LOOK);
                }
                _ => return self.unexpected(),
            }
        }
    }

    fn unexpected(&self) -> SharedBegin {
        self.down(&StoreError::Script("unexpected answer"));
        SharedBegin::Down
    }

    async fn look(
        &self,
        entry: &str,
        fingerprint: &str,
        token: &str,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut invocation = self.inner.begin.prepare_invoke();
        invocation
            .key(entry)
            .arg(fingerprint)
            .arg(token)
            .arg(millis(self.inner.lease));
        let answer = self.inner.redis.invoke(&invocation).await?;
        self.up();
        Ok(answer)
    }

    /// Runs `step` on the claim `token` holds on `entry`: true if it was
    /// still that claim.
    async fn step(&self, entry: &str, token: &str, step: Step<'_>) -> Result<bool, StoreError> {
        let mut invocation = self.inner.finish.prepare_invoke();
        invocation.key(entry).arg(token);
        match step {
            Step::Remember(answer) => invocation
                .arg("remember")
                .arg(millis(self.inner.window))
                .arg(answer),
            Step::Renew => invocation.arg("renew").arg(millis(self.inner.lease)),
            Step::Forget => invocation.arg("forget"),
        };
        let changed: i64 = self.inner.redis.invoke(&invocation).await?;
        self.up();
        Ok(changed == 1)
    }

    /// Runs `step` in the background and counts its failure.
    fn step_later(&self, entry: String, token: String, step: Step<'static>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Outside a runtime nothing can be sent: the claim runs out.
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            if let Err(e) = store.step(&entry, &token, step).await {
                store.down(&e);
            }
        });
    }

    fn up(&self) {
        if !self.inner.up.swap(true, Ordering::Relaxed) {
            tracing::info!("the shared request_id memory answers again");
        }
        self.inner.metrics.set_shared(true);
    }

    fn down(&self, e: &StoreError) {
        self.inner.metrics.error(e.word());
        self.inner.metrics.set_shared(false);
        if self.inner.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "the shared request_id memory does not answer; calls with a request_id are remembered by this replica alone until it does");
        }
    }
}

/// A call's claim on a shared entry, renewed while held. Remembered, the
/// answer is written; dropped unfinished, the entry is removed. Either is
/// sent in the background: the call does not wait for Redis to end.
pub(super) struct Claim {
    store: SharedStore,
    entry: String,
    token: String,
    renewal: JoinHandle<()>,
    done: bool,
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claim")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

impl Claim {
    fn start(store: SharedStore, entry: String, token: String) -> Self {
        let renewal = tokio::spawn({
            let (store, entry, token) = (store.clone(), entry.clone(), token.clone());
            async move {
                let started = Instant::now();
                let every = store.inner.lease / 3;
                // A call never runs a window long; bounded all the same.
                while started.elapsed() < store.inner.window {
                    tokio::time::sleep(every).await;
                    match store.step(&entry, &token, Step::Renew).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("a call's claim on its shared request_id entry ran out before it finished; a duplicate elsewhere may run");
                            return;
                        }
                        Err(e) => store.down(&e),
                    }
                }
            }
        });
        Self {
            store,
            entry,
            token,
            renewal,
            done: false,
        }
    }

    /// Writes `answer` as the entry's, kept for the window from now.
    pub(super) fn remember(mut self, answer: &Remembered) {
        self.done = true;
        self.renewal.abort();
        let bytes = codec::encode(answer);
        let (store, entry, token) = (
            self.store.clone(),
            std::mem::take(&mut self.entry),
            std::mem::take(&mut self.token),
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(e) = store.step(&entry, &token, Step::Remember(&bytes)).await {
                store.down(&e);
            }
        });
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.renewal.abort();
        if !self.done {
            self.store.step_later(
                std::mem::take(&mut self.entry),
                std::mem::take(&mut self.token),
                Step::Forget,
            );
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `text` with every byte but ASCII letters, digits, `-`, `.` and `_` as
/// `%XX`: no part of a key can contain the `:` between parts.
fn escape(text: &str) -> String {
    use std::fmt::Write;
    text.bytes()
        .fold(String::with_capacity(text.len()), |mut s, b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
                s.push(char::from(b));
            } else {
                let _ = write!(s, "%{b:02X}");
            }
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_are_escaped_so_none_reaches_into_another() {
        assert_eq!(escape("patcher"), "patcher");
        assert_eq!(escape("a:b"), "a%3Ab");
        assert_eq!(escape("x%3Ay"), "x%253Ay");
        assert_eq!(escape("{ü}"), "%7B%C3%BC%7D");
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }
}
