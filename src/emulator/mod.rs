//! A built-in Microsoft Graph beta emulator for `deviceAppManagementTasks`,
//! in memory, in the spirit of Azurite for Azure Storage.
//!
//! Users try the gateway against it without a tenant, and the gateway's tests
//! run against it over real HTTP. It answers the way Graph does (routes,
//! validation, error bodies, request ids, paging), issues tokens the way
//! Microsoft Entra ID does, and can be scripted or told to fail: throttling,
//! proxy HTML pages, empty bodies, 204 after PATCH, cut and dropped
//! connections, slow answers, random faults from a seed, per-tenant budgets,
//! Intune's service limits.
//!
//! # Routes
//!
//! Graph routes live under `/beta`, with Graph's JSON batching at
//! `POST /beta/$batch` (see [`batch`] for the envelope, what refuses it
//! whole, `dependsOn` and the answer). The token endpoint is
//! `POST /{tenant}/oauth2/v2.0/token` (client credentials with a client
//! secret or a JWT client assertion; it is not a Graph route and does not
//! count in [`Emulator::received`]). Control routes live under `/_emulator`:
//! - `POST /_emulator/faults`: JSON array of [`ScriptedFault`]s (a
//!   [`Fault`]'s fields plus optional `delay_ms` and `target`) for the next
//!   Graph requests (`"target": "batch"`: the next `$batch` envelopes);
//!   answers `{"queued": N, "pending": M}`;
//! - `POST /_emulator/token-faults`: the same for the next token requests;
//! - `GET /_emulator/requests`: `{"received": N}`, plus `"requests"` with
//!   `?log=true`;
//! - `GET /_emulator/token-requests`: `{"count": N, "requests": [...]}`
//!   ([`TokenRequestRecord`]s);
//! - `GET /_emulator/stats`: `{"received", "token_requests",
//!   "chaos_faults_injected", "throttled", "intune_throttled",
//!   "intune_admitted_requests", "intune_admitted_writes", "pending_faults",
//!   "pending_token_faults"}`;
//! - `GET /_emulator/intune-limits`: the [`IntuneReport`] (per app and per
//!   tenant: admitted and refused requests and writes, and the most any one
//!   window held);
//! - `GET /_emulator/options` and `PUT /_emulator/options`: the
//!   [`EmulatorOptions`] as JSON (PUT replaces them whole; absent fields take
//!   their defaults; answers the options now in effect);
//! - `POST /_emulator/expire-tokens`: every issued token expires now;
//! - `POST /_emulator/reset`.
//!
//! # Options
//!
//! [`EmulatorOptions`] (all off by default, so a plain emulator is open):
//! - `require_auth`: Graph routes demand `Authorization: Bearer <token>`
//!   issued here and unexpired, else 401 `InvalidAuthenticationToken` with a
//!   `WWW-Authenticate: Bearer ...` challenge;
//! - `token_lifetime` (default 3599 s): `expires_in` of issued tokens;
//! - `rejected_client_secrets`: secrets the token endpoint refuses with
//!   AADSTS7000215 (any other non-empty secret is accepted);
//! - `chaos`: [`Chaos`], seeded random faults (default statuses 429, 500,
//!   502, 503, 504) answered instead of applying the request;
//! - `latency`: added to every Graph-route answer; each item of a `$batch`
//!   is held back by it as a request alone would be, and the items run in
//!   parallel, so a batch answers after about one latency, not one per item
//!   (with `dependsOn`, sequentially: one latency per item);
//! - `batch_order_seed`: seeds the order `$batch` answers list their items
//!   in (default 0: shuffled, reproducibly);
//! - `tenant_budget`: [`TenantBudget`], a fixed window of requests per
//!   tenant (the bearer token's tenant, else `"anonymous"`); past it, 429
//!   `TooManyRequests` with `Retry-After` in whole seconds until the window
//!   resets;
//! - `intune_limits`: [`IntuneLimits`], Intune's service limits as Graph
//!   enforces them (per app per tenant 100 writes and 1000 requests, per
//!   tenant 200 writes and 2000 requests, per 20 s / `scale`), metered with a
//!   sliding window log; past them, 429 `TooManyRequests` with a fractional
//!   `Retry-After` (`1.234`). The app is the bearer token's client id, else
//!   `"anonymous"`.
//!
//! `EmulatorOptions` deserialises from JSON (see its module doc for the
//! form), for a CLI flag or environment variable.
//!
//! # Order of checks on a Graph route
//!
//! Every Graph request is counted and logged, consumes the next scripted
//! fault and makes one chaos draw (when chaos is on), in arrival order. Then:
//! a scripted fault that replaces the answer is sent (nothing else is
//! checked); otherwise the bearer is checked (with `require_auth`), then the
//! Intune limits (so a request refused for its bearer is not metered: Graph
//! could not tell its app), then the
//! tenant budget, then the chaos draw is used unless a scripted fault was
//! consumed; then the request is processed, and a scripted fault that applies
//! the request shapes how the answer is delivered. Latency and the fault's
//! `delay_ms` hold the answer back after processing.
//!
//! # `$batch`
//!
//! The envelope is counted and logged ([`RequestKind::Batch`]) and takes the
//! next fault scripted for envelopes (`"target": "batch"`); it makes no chaos
//! draw and is not metered by the Intune limits or the tenant budget (Graph
//! counts each request inside a batch, not the batch). A fault that replaces
//! its answer is sent before anything runs; otherwise its bearer is checked
//! (with `require_auth`: the envelope's token authorises every item, whatever
//! `Authorization` an item names), then its shape (400 for the whole batch).
//! Then each item, in the order listed, goes through exactly the checks
//! above as a request of its own: counted and logged
//! ([`RequestKind::BatchItem`]), its own scripted fault and chaos draw,
//! bearer, Intune limits, tenant budget, processing. Each item's answer
//! (a 429 with its own `Retry-After`, a 404, a 405...) goes inside the 200,
//! and an envelope fault that applies shapes the whole answer: cut, dropped,
//! a 5xx after the items were stored (`ErrorAfterApply`), an item left out
//! (`OmitResponse`) or an id no request had (`UnknownResponseId`).
//!
//! Where it knowingly differs from Graph:
//! - without `require_auth`, `Authorization` is logged, never checked; with
//!   it, only tokens from this emulator's token endpoint are accepted, and
//!   neither scopes nor roles are checked;
//! - the token endpoint serves only the client-credentials grant, accepts any
//!   tenant and client id, and never checks assertion signatures;
//! - list options beyond `$top`, `$skiptoken` and a `$filter` subset
//!   (comparisons, `and`, `or`, `not`, parentheses, `isof`; no functions or
//!   lambdas) answer 400 rather than being ignored (`$select`,
//!   `$orderby`, `$count`...); query options on single-task routes are ignored;
//! - only `/beta/deviceAppManagement/deviceAppManagementTasks` (and
//!   `/beta/$batch` over it) is served,
//!   with the OData segments a loose task id could reach: a type cast
//!   (`/microsoft.graph.securityConfigurationTask`, a collection of that
//!   type), `/$count` (a plain-text number, also after a cast), `/{id}/$ref`
//!   (the entity reference) and `/{id}/$value` (400); any other path under
//!   `/beta`, and any other `$` segment, is an unknown segment (400);
//! - DateTimeOffset values are stored as sent (validated, not normalised).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod auth;
mod batch;
mod body;
mod bulk;
mod chaos;
mod datetime;
mod error;
mod faults;
mod filter;
pub mod intune_limits;
mod journal;
mod options;
mod query;
mod reply;
mod routes;
mod schema;
pub mod seed;
mod store;
mod tasks;
#[cfg(test)]
mod tests;
mod throttle;

pub use auth::{CredentialKind, TokenRequestRecord, TOKEN_LOG_CAPACITY};
pub use faults::{Fault, FaultBody, FaultTarget, ScriptedFault};
pub use intune_limits::{IntuneLimit, IntuneRefusal, IntuneReport, IntuneUsage, ANONYMOUS_APP};
pub use journal::{redact_authorization, RecordedRequest, RequestKind, REQUEST_LOG_BYTES};
pub use options::{
    Chaos, EmulatorOptions, IntuneLimits, TenantBudget, DEFAULT_CHAOS_STATUSES, INTUNE_SCALES,
    INTUNE_WINDOW,
};

use auth::AuthState;
use intune_limits::IntuneMeter;
use journal::Journal;
use store::TaskStore;
use throttle::Windows;

/// The emulator's state; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

struct Shared {
    store: RwLock<TaskStore>,
    journal: Mutex<Journal>,
    /// Swapped whole, so a request works with one consistent snapshot.
    options: RwLock<Arc<EmulatorOptions>>,
    auth: Mutex<AuthState>,
    windows: Mutex<Windows>,
    intune: Mutex<IntuneMeter>,
    chaos_injected: AtomicU64,
    /// What [`Emulator::reset`] restores.
    initial: Vec<(String, Value)>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("tasks", &self.store_read().len())
            .field("received", &self.received())
            .field("pending_faults", &self.pending_faults())
            .field("options", &*self.current_options())
            .finish()
    }
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator::new()
    }
}

impl Emulator {
    /// An emulator holding the sample tasks of [`seed`].
    pub fn new() -> Self {
        Emulator::with_tasks(seed::tasks())
    }

    /// An emulator holding no tasks.
    pub fn empty() -> Self {
        Emulator::with_tasks(Vec::new())
    }

    /// An emulator holding `tasks`, stored as [`Emulator::insert`] stores them.
    pub fn with_tasks(tasks: impl IntoIterator<Item = Value>) -> Self {
        Emulator::build(tasks, EmulatorOptions::default())
    }

    /// An emulator holding the sample tasks of [`seed`], behaving as
    /// `options` say.
    pub fn with_options(options: EmulatorOptions) -> Self {
        Emulator::build(seed::tasks(), options)
    }

    fn build(tasks: impl IntoIterator<Item = Value>, options: EmulatorOptions) -> Self {
        let initial: Vec<(String, Value)> = tasks.into_iter().map(keyed).collect();
        Emulator {
            shared: Arc::new(Shared {
                store: RwLock::new(TaskStore::with_tasks(initial.clone())),
                journal: Mutex::new(Journal::new(&options)),
                options: RwLock::new(Arc::new(options)),
                auth: Mutex::new(AuthState::default()),
                windows: Mutex::new(Windows::default()),
                intune: Mutex::new(IntuneMeter::default()),
                chaos_injected: AtomicU64::new(0),
                initial,
            }),
        }
    }

    /// The options in effect.
    pub fn options(&self) -> EmulatorOptions {
        (*self.current_options()).clone()
    }

    /// Replaces the options from the next request on. The chaos sequence
    /// restarts from the (new) seed on every call.
    pub fn set_options(&self, options: EmulatorOptions) {
        let mut journal = self.journal();
        journal.reseed(&options);
        *self
            .shared
            .options
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(options);
    }

    /// Every token-endpoint request (at most the last
    /// [`TOKEN_LOG_CAPACITY`]), in the order they were answered.
    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        self.auth().requests()
    }

    /// How many requests reached the token endpoint, faulted ones included.
    pub fn token_request_count(&self) -> u64 {
        self.auth().count()
    }

    /// Scripts the answers of the next token requests, one per request, in
    /// order. A `GraphError` body becomes Entra's error body (`code` is the
    /// OAuth `error`; a message starting `AADSTSnnn: ` gives the code).
    pub fn push_token_faults<F: Into<ScriptedFault>>(&self, faults: impl IntoIterator<Item = F>) {
        self.auth().push_faults(faults.into_iter().map(Into::into));
    }

    /// Token faults queued and not yet consumed.
    pub fn pending_token_faults(&self) -> usize {
        self.auth().pending_faults()
    }

    /// Every token issued so far expires now (Graph routes then answer 401
    /// "Lifetime validation failed" under `require_auth`).
    pub fn expire_tokens(&self) {
        self.auth().expire_all(Instant::now());
    }

    /// Graph requests answered with a chaos fault.
    pub fn chaos_faults_injected(&self) -> u64 {
        self.shared.chaos_injected.load(Ordering::Relaxed)
    }

    /// Graph requests answered 429 for exceeding their tenant's budget.
    pub fn throttled(&self) -> u64 {
        self.windows().throttled()
    }

    /// Graph requests answered 429 by the Intune limits
    /// ([`EmulatorOptions::intune_limits`]).
    pub fn intune_throttled(&self) -> u64 {
        self.intune().throttled()
    }

    /// Graph requests (any method) the Intune limits admitted.
    pub fn intune_admitted_requests(&self) -> u64 {
        self.intune().admitted_requests()
    }

    /// Graph writes (POST, PUT, PATCH, DELETE) the Intune limits admitted.
    pub fn intune_admitted_writes(&self) -> u64 {
        self.intune().admitted_writes()
    }

    /// Everything the Intune limits counted, per app per tenant and per
    /// tenant, including the most admitted writes (and the most writes
    /// offered, refused ones included) any one window held: a test checks
    /// a budget was kept with `peak_offered_writes <= 100`, or that it was
    /// never exceeded here with `throttled == 0`.
    pub fn intune_usage(&self) -> IntuneReport {
        self.intune().report()
    }

    /// Meters one request of `app` in `tenant` against the Intune limits in
    /// effect, now: `Err` (nothing counted against the windows, the refusal
    /// counted) when a window is full. Does nothing when the limits are off.
    ///
    /// Graph routes call it once per request. `POST /beta/$batch` calls it
    /// once per item, in the order listed, and answers each refused item 429
    /// inside the batch (with [`IntuneRefusal::error`] and
    /// [`IntuneRefusal::retry_after_text`]), as Graph throttles each item on
    /// its own; the envelope itself is not a Graph request that counts.
    pub fn admit_intune(
        &self,
        tenant: &str,
        app: &str,
        is_write: bool,
    ) -> Result<(), IntuneRefusal> {
        match &self.current_options().intune_limits {
            Some(limits) => self.meter_intune(limits, tenant, app, is_write),
            None => Ok(()),
        }
    }

    /// [`Emulator::admit_intune`] under the given limits (a request's own
    /// options snapshot). The clock is read under the meter's lock so that
    /// times enter the log in order.
    fn meter_intune(
        &self,
        limits: &IntuneLimits,
        tenant: &str,
        app: &str,
        is_write: bool,
    ) -> Result<(), IntuneRefusal> {
        let mut meter = self.intune();
        meter.admit(limits.window(), tenant, app, is_write, Instant::now())
    }

    /// Graph routes under `/beta` and control routes under `/_emulator`.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves a seeded emulator on `addr` (use port 0 for any free port) in a
    /// tokio task.
    pub async fn bind(addr: SocketAddr) -> io::Result<RunningEmulator> {
        Emulator::new().spawn(addr).await
    }

    /// Serves this emulator on `addr` in a tokio task.
    pub async fn spawn(self, addr: SocketAddr) -> io::Result<RunningEmulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, self.clone(), async move {
            // Either a send or the sender's drop means stop.
            let _ = stopped.await;
        }));
        Ok(RunningEmulator {
            base_url: format!("http://{addr}/beta"),
            addr,
            emulator: self,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// How many requests reached Graph routes (anything under `/beta`),
    /// faulted ones included, since creation or the last reset. A `$batch`
    /// counts once for its envelope and once for each item that ran.
    pub fn received(&self) -> u64 {
        self.journal().received()
    }

    /// The Graph-route requests in arrival order, when the request log is on
    /// ([`EmulatorOptions::record_requests`]): the newest that fit in
    /// [`REQUEST_LOG_BYTES`], `Authorization` values redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.journal().requests()
    }

    /// Every access token the token endpoint issued and still holds.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.auth().issued_tokens()
    }

    /// The stored task as Graph would return it (without `@odata.context`).
    pub fn task(&self, id: &str) -> Option<Value> {
        self.store_read().get(id).cloned()
    }

    /// The notes `updateStatus` recorded for the task, oldest first (a
    /// missing or null note as `""`). Graph keeps them and never returns
    /// them, so no route answers them.
    pub fn status_notes(&self, id: &str) -> Vec<String> {
        self.store_read().notes(id).to_vec()
    }

    /// Every stored task, in collection order.
    pub fn tasks(&self) -> Vec<Value> {
        self.store_read().page(None, usize::MAX, |_| true).items
    }

    /// Stores `task` as is, for test setup, and returns its id. A task
    /// without a string `"id"` gets a new UUID (written into it when it is an
    /// object). Replacing an existing id keeps the task's place in the list.
    pub fn insert(&self, task: Value) -> String {
        let (id, task) = keyed(task);
        self.store_write().put(id.clone(), task);
        id
    }

    /// Scripts the answers of the next Graph-route requests, one fault per
    /// request, in order, after any faults already queued. Takes [`Fault`]s
    /// or, for delayed answers, [`ScriptedFault`]s (see [`Fault::delayed`]).
    pub fn push_faults<F: Into<ScriptedFault>>(&self, faults: impl IntoIterator<Item = F>) {
        self.journal()
            .push_faults(faults.into_iter().map(Into::into));
    }

    /// Faults queued and not yet consumed.
    pub fn pending_faults(&self) -> usize {
        self.journal().pending_faults()
    }

    /// Restores the tasks the emulator was created with (the seed for
    /// [`Emulator::new`], none for [`Emulator::empty`]); clears Graph and
    /// token faults, request logs and counts, the chaos and throttling
    /// counters, tenant windows and the Intune limits' logs; restarts the chaos sequence. Options
    /// stay as they are, and so do issued tokens (clients may hold them).
    pub fn reset(&self) {
        *self.store_write() = TaskStore::with_tasks(self.shared.initial.clone());
        *self.journal() = Journal::new(&self.current_options());
        self.auth().reset();
        *self.windows() = Windows::default();
        *self.intune() = IntuneMeter::default();
        self.shared.chaos_injected.store(0, Ordering::Relaxed);
    }

    /// Admits a Graph request; also returns the options it is to be
    /// served under, read under the same lock as the chaos draw.
    fn admit(
        &self,
        request: impl FnOnce() -> RecordedRequest,
    ) -> (journal::Admission, Arc<EmulatorOptions>) {
        let options = self.current_options();
        let request = options.record_requests.then(request);
        let mut journal = self.journal();
        let admission = journal.admit(request, options.chaos.as_ref());
        (admission, options)
    }

    /// Admits a `$batch` envelope: counted and logged, handed the next
    /// envelope fault; also returns the options it is served under.
    fn admit_batch(
        &self,
        request: impl FnOnce() -> RecordedRequest,
    ) -> (Option<ScriptedFault>, Arc<EmulatorOptions>) {
        let options = self.current_options();
        let request = options.record_requests.then(request);
        let fault = self.journal().admit_batch(request);
        (fault, options)
    }

    /// The order the next `$batch` answer of `n` items lists them in.
    fn batch_order(&self, n: usize) -> Vec<usize> {
        self.journal().batch_order(n)
    }

    fn current_options(&self) -> Arc<EmulatorOptions> {
        Arc::clone(
            &self
                .shared
                .options
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn count_chaos_fault(&self) {
        self.shared.chaos_injected.fetch_add(1, Ordering::Relaxed);
    }

    fn auth(&self) -> MutexGuard<'_, AuthState> {
        self.shared
            .auth
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn intune(&self) -> MutexGuard<'_, IntuneMeter> {
        self.shared
            .intune
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn windows(&self) -> MutexGuard<'_, Windows> {
        self.shared
            .windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // Locks never guard an invariant a panic could break half-way, so a
    // poisoned lock is still usable.
    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.shared
            .journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn store_read(&self) -> RwLockReadGuard<'_, TaskStore> {
        self.shared
            .store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn store_write(&self) -> RwLockWriteGuard<'_, TaskStore> {
        self.shared
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The id a task is stored under, assigning one when it has none.
fn keyed(mut task: Value) -> (String, Value) {
    if let Some(id) = task.get("id").and_then(Value::as_str) {
        return (id.to_owned(), task);
    }
    let id = Uuid::new_v4().to_string();
    if let Some(object) = task.as_object_mut() {
        object.insert("id".into(), id.clone().into());
    }
    (id, task)
}

/// An emulator serving in a tokio task. Dropping it stops the server (the
/// listener closes; requests in flight finish).
#[derive(Debug)]
pub struct RunningEmulator {
    /// `http://127.0.0.1:PORT/beta`: the Graph base URL to give a client.
    pub base_url: String,
    pub addr: SocketAddr,
    pub emulator: Emulator,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
}

/// How long [`RunningEmulator::shutdown`] lets requests in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl RunningEmulator {
    /// Stops accepting connections and waits for requests in flight (up to
    /// a few seconds, then the server task is aborted).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `emulator` on `listener` until `shutdown` resolves (for the
/// `graph-grpc-gateway emulator --addr` command).
pub async fn serve(
    listener: TcpListener,
    emulator: Emulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "Graph emulator listening; Graph base URL http://{addr}/beta");
    }
    axum::serve(listener, emulator.router())
        .with_graceful_shutdown(shutdown)
        .await
}
