//! A built-in Microsoft Graph beta emulator for `deviceAppManagementTasks`,
//! in memory, in the spirit of Azurite for Azure Storage.
//!
//! Users try the gateway against it without a tenant, and the gateway's tests
//! run against it over real HTTP. It answers the way Graph does (routes,
//! validation, error bodies, request ids, paging) and can be scripted to
//! fail: throttling, proxy HTML pages, empty bodies, 204 after PATCH.
//!
//! Graph routes live under `/beta`; control routes under `/_emulator`:
//! `POST /_emulator/faults` (JSON array of [`Fault`]),
//! `GET /_emulator/requests` (`{"received": N}`, plus `"requests"` with
//! `?log=true`) and `POST /_emulator/reset`.
//!
//! Where it knowingly differs from Graph:
//! - no authentication: `Authorization` is logged, never checked;
//! - list options beyond `$top`, `$skiptoken` and a `$filter` subset (`eq`,
//!   `and`, `isof`) answer 400 rather than being ignored (`$select`,
//!   `$orderby`, `$count`...); query options on single-task routes are ignored;
//! - only `/beta/deviceAppManagement/deviceAppManagementTasks` is served;
//!   any other path under `/beta` is an unknown segment (400);
//! - DateTimeOffset values are stored as sent (validated, not normalised).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod body;
mod datetime;
mod error;
mod faults;
mod filter;
mod journal;
mod query;
mod reply;
mod routes;
mod schema;
pub mod seed;
mod store;
mod tasks;
#[cfg(test)]
mod tests;

pub use faults::{Fault, FaultBody};
pub use journal::{RecordedRequest, REQUEST_LOG_CAPACITY};

use journal::Journal;
use store::TaskStore;

/// The emulator's state; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

struct Shared {
    store: RwLock<TaskStore>,
    journal: Mutex<Journal>,
    /// What [`Emulator::reset`] restores.
    initial: Vec<(String, Value)>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("tasks", &self.store_read().len())
            .field("received", &self.received())
            .field("pending_faults", &self.pending_faults())
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
        let initial: Vec<(String, Value)> = tasks.into_iter().map(keyed).collect();
        Emulator {
            shared: Arc::new(Shared {
                store: RwLock::new(TaskStore::with_tasks(initial.clone())),
                journal: Mutex::new(Journal::default()),
                initial,
            }),
        }
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
    /// faulted ones included, since creation or the last reset.
    pub fn received(&self) -> u64 {
        self.journal().received()
    }

    /// The Graph-route requests in arrival order (at most the last
    /// [`REQUEST_LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.journal().requests()
    }

    /// The stored task as Graph would return it (without `@odata.context`).
    pub fn task(&self, id: &str) -> Option<Value> {
        self.store_read().get(id).cloned()
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
    /// request, in order, after any faults already queued.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.journal().push_faults(faults);
    }

    /// Faults queued and not yet consumed.
    pub fn pending_faults(&self) -> usize {
        self.journal().pending_faults()
    }

    /// Restores the tasks the emulator was created with (the seed for
    /// [`Emulator::new`], none for [`Emulator::empty`]) and clears faults,
    /// the request log and the request count.
    pub fn reset(&self) {
        *self.store_write() = TaskStore::with_tasks(self.shared.initial.clone());
        *self.journal() = Journal::default();
    }

    fn admit(&self, request: RecordedRequest) -> Option<Fault> {
        self.journal().admit(request)
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
