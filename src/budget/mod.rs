//! Intune's Graph budget, spent before Graph has to refuse: 100 writes and
//! 1,000 requests per 20 s per app per tenant (`GRAPH_WRITE_BUDGET`,
//! `GRAPH_REQUEST_BUDGET`). Every Graph request takes a token of the request
//! budget, every write (POST, PATCH, DELETE) one of the write budget too;
//! token requests to Entra ID take none.
//!
//! - **Metering**: a sliding-window log per budget ([`window`]), the
//!   strictest reading of "N per 20 s": whether Graph counts in fixed or in
//!   sliding windows, a log that never holds more than N tokens in any
//!   window never earns a 429. (GCRA with a burst of N would let up to
//!   2N - 1 requests into one 20 s span; GCRA without a burst spaces every
//!   request 200 ms apart and gives up bursts the budget allows.)
//! - **Pacing**: a call that finds no token waits in a weighted fair queue
//!   ([`fair`]) by caller, up to its deadline; one whose deadline comes
//!   before its turn fails at once, unsent, with the earliest time it could
//!   run ([`Exhausted`], `RESOURCE_EXHAUSTED` `GRAPH_BUDGET_EXHAUSTED` with
//!   a `RetryInfo`). Reads and writes wait in separate lanes: a read needs
//!   only a request token, so it never waits behind writes.
//! - **429s** still come when the real budget is smaller than configured;
//!   each lowers the pace ([`pace`]), which recovers gradually.
//! - **Replicas** share one budget through a [`store::Store`] (Redis) when
//!   `GRAPH_BUDGET_REDIS_URL` is set; when it does not answer, each replica
//!   falls back to its local share (`GRAPH_BUDGET_LOCAL_SHARE`), counting
//!   the other replicas' tokens the store last showed until they leave the
//!   window ([`Seen`]), and goes back to the store when it answers again.
//! - **Time for the request**: a token is handed out no later than
//!   [`send_by`] the call's deadline, so a request that Graph counts (and
//!   may apply) always has time for its answer to come back.

pub mod fair;
pub mod metrics;
pub mod pace;
pub mod rate;
pub mod redis;
pub mod store;
pub mod window;

pub use rate::Rate;

pub use store::{Answer, Limits, Store, StoreDown, Take, Used};

use fair::{FairQueue, Place};
use pace::{Change, Pace};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use window::Log;

use crate::metrics::Metrics;

/// The budgets' sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    pub requests: Rate,
    pub writes: Rate,
    /// The share of each budget (percent) a replica spends alone while the
    /// shared store does not answer.
    pub local_share_percent: f64,
}

impl Default for BudgetSettings {
    /// Intune's per-app limits, the whole budget for this replica.
    fn default() -> Self {
        Self {
            requests: Rate::new(1000, Duration::from_secs(20)),
            writes: Rate::new(100, Duration::from_secs(20)),
            local_share_percent: 100.0,
        }
    }
}

/// Which tokens a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A GET: a request token.
    Read,
    /// A POST, PATCH or DELETE: a write token and a request token.
    Write,
}

impl Lane {
    pub fn for_method(method: &http::Method) -> Self {
        if *method == http::Method::GET {
            Self::Read
        } else {
            Self::Write
        }
    }

    /// The budget that binds this lane, as metrics name it.
    pub fn budget(self) -> &'static str {
        match self {
            Self::Read => metrics::REQUESTS,
            Self::Write => metrics::WRITES,
        }
    }
}

/// The tokens one Graph request takes: a read one request token, a write
/// one of each, and a `$batch` as many as its items (Graph counts each
/// item on its own; the envelope itself is not a request it meters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    pub reads: u32,
    pub writes: u32,
}

impl Cost {
    pub fn for_method(method: &http::Method) -> Self {
        Self::of(Lane::for_method(method))
    }

    pub fn of(lane: Lane) -> Self {
        match lane {
            Lane::Read => Self {
                reads: 1,
                writes: 0,
            },
            Lane::Write => Self {
                reads: 0,
                writes: 1,
            },
        }
    }

    /// One lane per token, writes first (the scarcer budget).
    fn lanes(self) -> impl Iterator<Item = Lane> {
        let writes = std::iter::repeat_n(Lane::Write, self.writes as usize);
        writes.chain(std::iter::repeat_n(Lane::Read, self.reads as usize))
    }
}

/// Who is asking, for fairness.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Arc<str>,
    /// The caller's share relative to others (the policy's `weight`, 1 by
    /// default).
    pub weight: u32,
}

impl Default for Caller {
    fn default() -> Self {
        Self {
            name: Arc::from("anonymous"),
            weight: 1,
        }
    }
}

/// The call's turn would come after its deadline (or did not come before
/// it): refused unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    pub lane: Lane,
    /// The earliest the call could run, from when it was refused.
    pub retry_after: Duration,
}

/// How the budget is taken right now, for readiness and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// This replica alone (no shared store configured).
    Local,
    /// From the shared store.
    Shared,
    /// The shared store did not answer: this replica's local share.
    Fallback,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Shared => "shared",
            Self::Fallback => "local share (shared store not answering)",
        }
    }
}

/// A token, held while its request is at Graph. Dropping it records the
/// answer's time: the token stays in the window until a window after it.
pub struct Grant {
    inner: Arc<Inner>,
    lane: Lane,
    /// The token's name in the shared store.
    member: Option<Arc<str>>,
    used: bool,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("lane", &self.lane).finish()
    }
}

impl Grant {
    /// The lane this token was taken for.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The call was not sent after all (it failed on its way to Graph, or
    /// provably never left): the token frees at once instead of staying a
    /// window in the log.
    pub fn give_back(mut self) {
        self.used = false;
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        let now = Instant::now();
        {
            let mut st = self.inner.lock();
            let write = self.lane == Lane::Write;
            for log in st.logs(write) {
                if self.used {
                    log.answered(now);
                } else {
                    log.give_back();
                }
            }
            if self.used && self.inner.store.is_some() {
                let member = self.member.clone().unwrap_or_else(|| self.inner.member());
                st.mine.hold(now, member, write, self.inner.window());
            }
        }
        if let (Some(member), Some(store)) = (self.member.take(), self.inner.store.clone()) {
            let write = self.lane == Lane::Write;
            let used = self.used;
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    // Best effort: a token not re-stamped still leaves the
                    // shared window a window after it was taken, and one not
                    // given back frees a window after it was taken.
                    let _ = if used {
                        store.release(write, member).await
                    } else {
                        store.give_back(member).await
                    };
                });
            }
        }
        if !self.used {
            // A token went back: a waiter may go now.
            self.inner.wake.notify_one();
        }
    }
}

struct Waiter {
    tx: oneshot::Sender<Grant>,
    enqueued: Instant,
}

#[derive(Default)]
struct LaneQueue {
    queue: FairQueue<Waiter>,
    /// No token for this lane before then (the store said so, or the logs).
    blocked_until: Option<Instant>,
}

struct Side {
    log: Log,
    pace: Pace,
    /// The local share, used while the shared store is down.
    share: u32,
    name: &'static str,
    /// What the shared store last said of this budget's window.
    seen: Option<Seen>,
}

/// The shared window as the store last counted it: `count` tokens of every
/// replica, `own` of them this replica's, at `at`.
///
/// A replica that loses the store knows only its own tokens; its local
/// share alone would let the replicas together overspend the window they
/// shared a moment ago (one that spent little while another spent much).
/// So it counts the others' tokens as spent at `at` until they leave the
/// window, and only then has its whole share.
#[derive(Debug, Clone, Copy)]
struct Seen {
    count: u32,
    own: u32,
    at: Instant,
}

struct State {
    requests: Side,
    writes: Side,
    reads_q: LaneQueue,
    writes_q: LaneQueue,
    /// The shared store answered last time (always false without one).
    store_up: bool,
    last_wait_log: Option<Instant>,
    probing: bool,
    /// With a shared store: this replica's tokens of the last window, to
    /// put back when it returns to the store.
    mine: Mine,
}

/// This replica's used tokens of the last window, oldest first.
///
/// The store has not seen the ones spent while it did not answer, and a
/// Redis that restarted has lost them all: a replica that went back to it
/// without them would let the replicas together spend the window twice.
#[derive(Default)]
struct Mine(std::collections::VecDeque<(Instant, Arc<str>, bool)>);

impl Mine {
    fn hold(&mut self, at: Instant, member: Arc<str>, write: bool, window: Duration) {
        while self.0.front().is_some_and(|(t, ..)| *t + window <= at) {
            self.0.pop_front();
        }
        self.0.push_back((at, member, write));
    }

    /// The tokens still in the window ending `now`, with their ages.
    fn held(&self, now: Instant, window: Duration) -> Vec<store::Held> {
        self.0
            .iter()
            .filter(|(at, ..)| *at + window > now)
            .map(|(at, member, write)| store::Held {
                member: member.clone(),
                age: now.saturating_duration_since(*at),
                write: *write,
            })
            .collect()
    }
}

struct Inner {
    state: Mutex<State>,
    wake: Arc<Notify>,
    store: Option<Arc<dyn Store>>,
    metrics: Arc<Metrics>,
    settings: BudgetSettings,
    member_prefix: String,
    seq: AtomicU64,
    dispatcher: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the dispatcher see the budget is gone, and end.
        self.wake.notify_one();
    }
}

/// How long a replica waits between asks to a shared store that did not
/// answer.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// At most one "calls are waiting" log line per this long.
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The least and the most of a call's time kept for its attempt: a token
/// handed out later than [`send_by`] would be spent on a request with too
/// little time to be answered.
const ATTEMPT_RESERVE_MIN: Duration = Duration::from_millis(50);
const ATTEMPT_RESERVE_MAX: Duration = Duration::from_secs(1);

/// The latest a call with `deadline` may get its token, seen at `now`: a
/// fifth of the time it has left (at least 50 ms, at most 1 s) stays for
/// the request itself.
///
/// A token handed out just before the deadline would send a request that
/// Graph counts and may apply, but whose answer cannot come back in time:
/// the caller would learn only that the outcome is unknown. Refusing it
/// unsent, with the time it could run, is the honest answer.
pub fn send_by(deadline: Instant, now: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let reserve = (left / 5).clamp(ATTEMPT_RESERVE_MIN, ATTEMPT_RESERVE_MAX);
    deadline.checked_sub(reserve).unwrap_or(now).max(now)
}

impl State {
    fn logs(&mut self, write: bool) -> impl Iterator<Item = &mut Log> {
        let writes = write.then_some(&mut self.writes.log);
        std::iter::once(&mut self.requests.log).chain(writes)
    }

    fn lane(&mut self, lane: Lane) -> &mut LaneQueue {
        match lane {
            Lane::Read => &mut self.reads_q,
            Lane::Write => &mut self.writes_q,
        }
    }
}

impl Side {
    fn new(rate: Rate, share_percent: f64, name: &'static str) -> Self {
        Self {
            log: Log::new(rate.window),
            pace: Pace::new(rate.tokens, rate.window),
            share: rate.share(share_percent).tokens,
            name,
            seen: None,
        }
    }

    /// The store counted `count` tokens in this budget's window just now.
    fn saw(&mut self, count: u32, now: Instant) {
        let own = self.log.used(now);
        self.seen = Some(Seen {
            count,
            own,
            at: now,
        });
    }

    /// The store stopped answering: the others' tokens it last counted stay
    /// in the local log until they leave the window.
    fn seed_from_seen(&mut self, now: Instant) {
        if let Some(seen) = self.seen.take() {
            if now < seen.at + self.log.window() {
                self.log.seed(seen.at, seen.count.saturating_sub(seen.own));
            }
        }
    }

    /// The limit in force: the pace, held to the local share when asked.
    fn limit(&mut self, now: Instant, metrics: &Metrics, local_share: bool) -> u32 {
        let (limit, change) = self.pace.limit(now);
        if let Some(Change::Raised(to)) = change {
            metrics.budget.pace_change(self.name, true);
            tracing::info!(
                budget = self.name,
                limit = to,
                "Graph budget pace raised after a window without 429s"
            );
        }
        if local_share {
            limit.min(self.share)
        } else {
            limit
        }
    }
}

/// The gateway's Graph budget: cheap to share (`Arc`), one per Graph
/// client.
pub struct Budget {
    inner: Arc<Inner>,
}

impl Budget {
    /// A budget this replica keeps alone, or shares through `store`.
    pub fn new(
        settings: BudgetSettings,
        store: Option<Arc<dyn Store>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let share = if store.is_some() {
            settings.local_share_percent
        } else {
            100.0
        };
        let state = State {
            requests: Side::new(settings.requests, share, metrics::REQUESTS),
            writes: Side::new(settings.writes, share, metrics::WRITES),
            reads_q: LaneQueue::default(),
            writes_q: LaneQueue::default(),
            store_up: store.is_some(),
            last_wait_log: None,
            probing: false,
            mine: Mine::default(),
        };
        metrics.budget.set_shared(store.is_some());
        let budget = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                wake: Arc::new(Notify::new()),
                store,
                metrics,
                settings,
                member_prefix: uuid::Uuid::new_v4().simple().to_string(),
                seq: AtomicU64::new(0),
                dispatcher: AtomicBool::new(false),
            }),
        };
        let weak = Arc::downgrade(&budget.inner);
        budget.inner.metrics.on_render(move || {
            let Some(inner) = weak.upgrade() else {
                return false;
            };
            Budget { inner }.refresh_metrics();
            true
        });
        budget
    }

    pub fn settings(&self) -> BudgetSettings {
        self.inner.settings
    }

    /// How the budget is taken right now.
    pub fn mode(&self) -> Mode {
        if self.inner.store.is_none() {
            Mode::Local
        } else if self.inner.lock().store_up {
            Mode::Shared
        } else {
            Mode::Fallback
        }
    }

    /// A token now, if one is free with nobody waiting and no shared store
    /// to ask: the path of every call while the budget has room.
    pub fn try_acquire(&self, lane: Lane) -> Option<Grant> {
        let inner = &self.inner;
        let mut st = inner.lock();
        if st.store_up || !st.lane(lane).queue.is_empty() {
            return None;
        }
        inner.take_local(&mut st, lane, Instant::now()).ok()?;
        drop(st);
        inner.metrics.budget.waited(lane, Duration::ZERO);
        Some(inner.grant(lane, None))
    }

    /// Waits for a token for a request in `lane`, fairly among callers, up
    /// to `deadline` less the time its request needs ([`send_by`]).
    pub async fn acquire(
        &self,
        caller: &Caller,
        lane: Lane,
        deadline: Instant,
    ) -> Result<Grant, Exhausted> {
        let inner = &self.inner;
        let now = Instant::now();
        let deadline = send_by(deadline, now);
        let (place, mut rx) = {
            let mut st = inner.lock();
            let shared = st.store_up;
            if !shared
                && st.lane(lane).queue.is_empty()
                && inner.take_local(&mut st, lane, now).is_ok()
            {
                drop(st);
                inner.metrics.budget.waited(lane, Duration::ZERO);
                return Ok(inner.grant(lane, None));
            }
            let (tx, rx) = oneshot::channel();
            let place =
                st.lane(lane)
                    .queue
                    .push(&caller.name, caller.weight, Waiter { tx, enqueued: now });
            let turn = inner.estimate(&mut st, lane, place, now);
            if turn > deadline {
                st.lane(lane).queue.remove(place);
                drop(st);
                inner.metrics.budget.refused(lane);
                return Err(Exhausted {
                    lane,
                    retry_after: turn.saturating_duration_since(now),
                });
            }
            if st
                .last_wait_log
                .is_none_or(|at| now >= at + WAIT_LOG_INTERVAL)
            {
                st.last_wait_log = Some(now);
                let waiting = st.reads_q.queue.len() + st.writes_q.queue.len();
                tracing::info!(
                    budget = lane.budget(),
                    waiting,
                    mode = if shared { "shared" } else { "local" },
                    "calls are waiting for the Graph budget"
                );
            }
            (place, rx)
        };
        self.start_dispatcher();
        inner.wake.notify_one();
        match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(Ok(grant)) => {
                inner.metrics.budget.waited(lane, now.elapsed());
                Ok(grant)
            }
            // The dispatcher ended (the budget is being dropped) or the
            // deadline came first: either way the call was not sent.
            Ok(Err(_)) | Err(_) => {
                let mut st = inner.lock();
                st.lane(lane).queue.remove(place);
                // A grant sent just as the deadline came goes back unused.
                let late = rx.try_recv().ok();
                let now = Instant::now();
                let turn = inner.estimate_next(&mut st, lane, now);
                drop(st);
                drop(late);
                inner.metrics.budget.refused(lane);
                Err(Exhausted {
                    lane,
                    retry_after: turn
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1)),
                })
            }
        }
    }

    /// Every token `cost` names, if each is free now (see
    /// [`Budget::try_acquire`]); none are kept otherwise.
    pub fn try_acquire_cost(&self, cost: Cost) -> Option<Vec<Grant>> {
        let mut grants = Vec::with_capacity((cost.reads + cost.writes) as usize);
        for lane in cost.lanes() {
            match self.try_acquire(lane) {
                Some(grant) => grants.push(grant),
                None => {
                    grants.into_iter().for_each(Grant::give_back);
                    return None;
                }
            }
        }
        Some(grants)
    }

    /// Waits for every token `cost` names, one after another in the fair
    /// queue, up to `deadline`. If one does not come in time, those already
    /// taken go back unused.
    pub async fn acquire_cost(
        &self,
        caller: &Caller,
        cost: Cost,
        deadline: Instant,
    ) -> Result<Vec<Grant>, Exhausted> {
        let mut grants = Vec::with_capacity((cost.reads + cost.writes) as usize);
        for lane in cost.lanes() {
            let grant = match self.try_acquire(lane) {
                Some(grant) => Ok(grant),
                None => self.acquire(caller, lane, deadline).await,
            };
            match grant {
                Ok(grant) => grants.push(grant),
                Err(e) => {
                    grants.into_iter().for_each(Grant::give_back);
                    return Err(e);
                }
            }
        }
        Ok(grants)
    }

    /// Graph answered 429 to a request in `lane`: the budget is smaller
    /// than configured; lower the pace.
    pub fn throttled(&self, lane: Lane) {
        let inner = &self.inner;
        let now = Instant::now();
        let mut st = inner.lock();
        let side = match lane {
            Lane::Read => &mut st.requests,
            Lane::Write => &mut st.writes,
        };
        inner.metrics.budget.throttled(side.name);
        if let Some(Change::Lowered(to)) = side.pace.throttled(now) {
            inner.metrics.budget.pace_change(side.name, false);
            tracing::warn!(
                budget = side.name,
                limit = to,
                configured = side.pace.configured(),
                "Graph answered 429 inside the configured budget; pacing lower"
            );
        }
    }

    /// Brings the gauges up to date (called before `/metrics` renders).
    pub fn refresh_metrics(&self) {
        let inner = &self.inner;
        let now = Instant::now();
        let mut st = inner.lock();
        let local_share = inner.store.is_some() && !st.store_up;
        let waiting = [st.reads_q.queue.len(), st.writes_q.queue.len()];
        let st = &mut *st;
        for (side, waiting) in [(&mut st.requests, waiting[0]), (&mut st.writes, waiting[1])] {
            let limit = side.limit(now, &inner.metrics, local_share);
            let left = side.log.left(now, limit);
            inner
                .metrics
                .budget
                .set_levels(side.name, left, limit, waiting);
        }
        inner.metrics.budget.set_shared(st.store_up);
    }

    fn start_dispatcher(&self) {
        if self.inner.dispatcher.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = self.inner.wake.clone();
        tokio::spawn(dispatch(weak, wake));
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn grant(self: &Arc<Self>, lane: Lane, member: Option<Arc<str>>) -> Grant {
        Grant {
            inner: self.clone(),
            lane,
            member,
            used: true,
        }
    }

    /// Takes the lane's tokens from the local logs, or says when they free.
    fn take_local(&self, st: &mut State, lane: Lane, now: Instant) -> Result<(), Instant> {
        let local_share = self.store.is_some();
        let write = lane == Lane::Write;
        let request_limit = st.requests.limit(now, &self.metrics, local_share);
        let mut free = st.requests.log.free_at(now, request_limit, 0);
        if write {
            let write_limit = st.writes.limit(now, &self.metrics, local_share);
            free = free.max(st.writes.log.free_at(now, write_limit, 0));
        }
        if free > now {
            return Err(free);
        }
        for log in st.logs(write) {
            log.take();
        }
        Ok(())
    }

    /// When the waiter at `place` should get its token.
    fn estimate(&self, st: &mut State, lane: Lane, place: Place, now: Instant) -> Instant {
        let ahead = st.lane(lane).queue.ahead(place);
        self.turn(st, lane, ahead, now)
    }

    /// When a call joining the lane now would get its token.
    fn estimate_next(&self, st: &mut State, lane: Lane, now: Instant) -> Instant {
        let ahead = st.lane(lane).queue.len();
        self.turn(st, lane, ahead, now)
    }

    fn turn(&self, st: &mut State, lane: Lane, ahead: usize, now: Instant) -> Instant {
        let local_share = self.store.is_some() && !st.store_up;
        let mut at = {
            let limit = st.requests.limit(now, &self.metrics, local_share);
            st.requests.log.free_at(now, limit, ahead)
        };
        if lane == Lane::Write {
            let limit = st.writes.limit(now, &self.metrics, local_share);
            at = at.max(st.writes.log.free_at(now, limit, ahead));
        }
        if st.store_up {
            // The store knows every replica's tokens; this one only its own.
            // From the store's last "wait", the ones ahead go one spacing
            // apart.
            if let Some(blocked) = st.lane(lane).blocked_until.filter(|b| *b > now) {
                let rate = match lane {
                    Lane::Read => self.settings.requests,
                    Lane::Write => self.settings.writes,
                };
                let spacing = rate.window / rate.tokens.max(1);
                let ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
                at = at.max(blocked + spacing.saturating_mul(ahead));
            }
        }
        at
    }

    fn limits(&self, st: &mut State, now: Instant) -> Limits {
        let requests = st.requests.limit(now, &self.metrics, false);
        let writes = st.writes.limit(now, &self.metrics, false);
        Limits {
            requests: Rate::new(requests, self.settings.requests.window),
            writes: Rate::new(writes, self.settings.writes.window),
        }
    }

    /// The longer of the two budgets' windows.
    fn window(&self) -> Duration {
        self.settings
            .requests
            .window
            .max(self.settings.writes.window)
    }

    fn member(&self) -> Arc<str> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{}:{n}", self.member_prefix))
    }

    /// The lane whose head should be served next: of the lanes with
    /// waiters and not blocked, the one whose head came first.
    fn next_lane(&self, st: &mut State, now: Instant) -> Option<Lane> {
        let mut best: Option<(Instant, Lane)> = None;
        for lane in [Lane::Read, Lane::Write] {
            let q = st.lane(lane);
            q.queue.retain(|w| !w.tx.is_closed());
            if q.blocked_until.is_some_and(|b| b > now) {
                continue;
            }
            if let Some((_, w)) = q.queue.peek() {
                if best.is_none_or(|(at, _)| w.enqueued < at) {
                    best = Some((w.enqueued, lane));
                }
            }
        }
        best.map(|(_, lane)| lane)
    }

    /// Takes the lane's head out with its token, to be sent once the lock
    /// is let go (a token that goes back takes the lock).
    fn hand_over(
        self: &Arc<Self>,
        st: &mut State,
        lane: Lane,
        member: Option<Arc<str>>,
    ) -> Option<(Waiter, Grant)> {
        let shared = member.is_some();
        let grant = Grant {
            inner: self.clone(),
            lane,
            member,
            used: false,
        };
        let (_, waiter) = st.lane(lane).queue.pop()?;
        if shared {
            // Counted locally too, so a fallback knows this replica's
            // recent spending.
            for log in st.logs(lane == Lane::Write) {
                log.take();
            }
        }
        Some((waiter, grant))
    }

    /// The lane's head with a token already taken from the local logs; the
    /// token goes back if there is no head after all.
    fn hand_over_local(self: &Arc<Self>, st: &mut State, lane: Lane) -> Option<(Waiter, Grant)> {
        match st.lane(lane).queue.pop() {
            Some((_, waiter)) => Some((
                waiter,
                Grant {
                    inner: self.clone(),
                    lane,
                    member: None,
                    used: false,
                },
            )),
            None => {
                for log in st.logs(lane == Lane::Write) {
                    log.give_back();
                }
                None
            }
        }
    }

    /// The store did not answer: use the local share until it does.
    fn store_failed(self: &Arc<Self>, st: &mut State, why: StoreDown) {
        if st.store_up {
            st.store_up = false;
            let now = Instant::now();
            st.requests.seed_from_seen(now);
            st.writes.seed_from_seen(now);
            self.metrics.budget.fallback(why.0);
            self.metrics.budget.set_shared(false);
            tracing::warn!(
                why = why.0,
                "the shared Graph budget store did not answer; using this replica's local share"
            );
        }
        for lane in [Lane::Read, Lane::Write] {
            st.lane(lane).blocked_until = None;
        }
        if !st.probing {
            st.probing = true;
            let weak = Arc::downgrade(self);
            tokio::spawn(probe(weak));
        }
    }
}

/// Asks the shared store once a second until it answers, then puts this
/// replica's tokens of the last window back in it ([`Mine`]) and goes back
/// to it.
async fn probe(weak: Weak<Inner>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(inner) = weak.upgrade() else { return };
        let Some(store) = inner.store.clone() else {
            return;
        };
        if store.ping().await.is_err() {
            continue;
        }
        let window = inner.window();
        let held = inner.lock().mine.held(Instant::now(), window);
        if store.restore(window, held).await.is_ok() {
            let mut st = inner.lock();
            st.store_up = true;
            st.probing = false;
            drop(st);
            inner.metrics.budget.set_shared(true);
            tracing::info!("the shared Graph budget store answers again; sharing the budget");
            inner.wake.notify_one();
            return;
        }
    }
}

/// Serves the queues: hands each waiting call its token when one frees,
/// asking the shared store when there is one.
async fn dispatch(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        let Some(inner) = weak.upgrade() else { return };
        let next = serve(&inner).await;
        drop(inner);
        match next {
            Some(at) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Hands out every token it can now; returns when to look again (`None`:
/// when woken).
async fn serve(inner: &Arc<Inner>) -> Option<Instant> {
    loop {
        let now = Instant::now();
        let (lane, shared, limits) = {
            let mut st = inner.lock();
            let Some(lane) = inner.next_lane(&mut st, now) else {
                let blocked = [st.reads_q.blocked_until, st.writes_q.blocked_until];
                let waiting = [!st.reads_q.queue.is_empty(), !st.writes_q.queue.is_empty()];
                return blocked
                    .into_iter()
                    .zip(waiting)
                    .filter_map(|(b, w)| b.filter(|_| w))
                    .min();
            };
            if st.store_up {
                let limits = inner.limits(&mut st, now);
                (lane, true, Some(limits))
            } else {
                match inner.take_local(&mut st, lane, now) {
                    Ok(()) => {
                        st.lane(lane).blocked_until = None;
                        // Taken for the head: if it is gone, the token
                        // goes back when the grant drops, unlocked.
                        let handed = inner.hand_over_local(&mut st, lane);
                        drop(st);
                        if let Some((waiter, grant)) = handed {
                            send(waiter, grant);
                        }
                    }
                    Err(free) => st.lane(lane).blocked_until = Some(free),
                }
                (lane, false, None)
            }
        };
        if !shared {
            continue;
        }
        let Some(store) = inner.store.clone() else {
            continue;
        };
        let Some(limits) = limits else { continue };
        let member = inner.member();
        let answer = store
            .take(lane == Lane::Write, limits, member.clone())
            .await;
        let now = Instant::now();
        let mut st = inner.lock();
        match answer {
            Ok(Answer { take, used }) => {
                let handed = match take {
                    Take::Granted => {
                        st.lane(lane).blocked_until = None;
                        inner.hand_over(&mut st, lane, Some(member))
                    }
                    Take::Wait(wait) => {
                        st.lane(lane).blocked_until =
                            Some(now + wait.max(Duration::from_millis(1)));
                        None
                    }
                };
                st.requests.saw(used.requests, now);
                st.writes.saw(used.writes, now);
                drop(st);
                if let Some((waiter, grant)) = handed {
                    send(waiter, grant);
                }
            }
            Err(why) => inner.store_failed(&mut st, why),
        }
    }
}

/// Gives a waiter its token, marked used once it arrives; a waiter that
/// left gives it back.
fn send(waiter: Waiter, mut grant: Grant) {
    grant.used = true;
    if let Err(mut grant) = waiter.tx.send(grant) {
        grant.used = false;
        drop(grant);
    }
}

#[cfg(test)]
mod tests;
