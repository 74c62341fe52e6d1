//! The budget shared by replicas, in Redis: every replica takes its tokens
//! from one pair of sliding-window logs per tenant and app, so three replicas
//! together stay inside Intune's budget instead of each spending all of it.
//!
//! Each budget (requests, writes) is a sorted set of the tokens taken in the
//! last window, scored by the Redis server's clock in milliseconds (so the
//! replicas' clocks do not matter). [`RedisStore::take`] runs one Lua script
//! (`take.lua`, one round trip) that drops what left the window, counts, and
//! either adds the token to both logs (a write needs room in both) or answers
//! how long until one is free. [`RedisStore::take_lease`] takes up to `n`
//! tokens in the same round trip. [`RedisStore::release`] re-stamps a token
//! with the time its Graph answer came back: Graph counts a request when it
//! arrives, which is no earlier than it was sent, so counting from the answer
//! never lets a window end before Graph's does.
//!
//! The keys are `graph-grpc-gateway:{<tenant>/<app>}:requests` and
//! `...:writes`: the hash tag puts both in one cluster slot, as a script that
//! touches both requires.
//!
//! Redis is optional and may be down: [`RedisStore::new`] never connects
//! (the gateway starts without Redis), every call is bounded by the
//! settings' `timeout`, and a lost connection is re-made by the client's
//! `ConnectionManager` on a later call. The caller decides what to do
//! without Redis (the local share of the budget). No error of this module
//! shows the URL, the password or text from the server.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError, Script, ServerErrorKind};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

pub use super::store::{Held, Used};

/// Where the shared budget lives.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://host[:port][/db]` or `rediss://...` (TLS, always verified).
    pub url: String,
    /// Read from a file by the config; overrides a password in the URL.
    pub password: Option<String>,
    /// Bound on every call (connecting included).
    pub timeout: Duration,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"[redacted]")
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisSettings {
    /// Parses and validates the URL. The message never contains the URL's
    /// text or the password.
    pub fn check(&self) -> Result<(), String> {
        self.connection_info().map(|_| ())
    }

    fn connection_info(&self) -> Result<ConnectionInfo, String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("the Redis URL does not parse ({e})"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            _ => return Err("the Redis URL must start with redis:// or rediss://".into()),
        };
        if url.host().is_none() {
            return Err("the Redis URL has no host".into());
        }
        if url.fragment().is_some() {
            // The client reads `#insecure` as "do not verify the server's
            // certificate"; nothing else is accepted there either.
            return Err("the Redis URL may not have a #fragment (TLS is always verified)".into());
        }
        let db = url.path().trim_matches('/');
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err("the Redis URL's path must be a database number".into());
        }
        if let Some((name, _)) = url.query_pairs().find(|(name, _)| name != "protocol") {
            // The name only: a value could be anything.
            let name: String = name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(32)
                .collect();
            return Err(format!(
                "the Redis URL has an unknown query parameter {name:?}"
            ));
        }
        let info = url
            .into_connection_info()
            .map_err(|e| format!("the Redis URL is not a valid Redis URL ({})", e.category()))?;
        let info = match &self.password {
            Some(password) => {
                let redis = info.redis_settings().clone().set_password(password);
                info.set_redis_settings(redis)
            }
            None => info,
        };
        if tls {
            // rustls picks the process's provider; make sure there is one
            // (ring, as the rest of the crate), whoever runs first.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(info)
    }
}

/// Whose budget: Intune meters per app per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    pub tenant: String,
    pub app: String,
}

impl BudgetKey {
    /// The request log's key and the write log's, in one cluster slot.
    pub fn redis_keys(&self) -> [String; 2] {
        let tag = format!("graph-grpc-gateway:{{{}/{}}}", self.tenant, self.app);
        [format!("{tag}:requests"), format!("{tag}:writes")]
    }
}

/// Tokens per window of each budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests: u32,
    pub writes: u32,
    pub window: Duration,
}

impl Limits {
    /// The window in whole milliseconds, at least 1 (the logs' resolution).
    fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What [`RedisStore::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Granted,
    /// No room: the earliest time from now a token could be free.
    Wait(Duration),
}

/// What [`RedisStore::take_lease`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This many tokens (1 ..= n), named by [`lease_member`] for
    /// `0 .. granted`.
    Granted(u32),
    /// No room for even one: the earliest time from now one could be free.
    Wait(Duration),
}

/// The name of a lease's `i`th token, for [`RedisStore::release`].
pub fn lease_member(member: &str, i: u32) -> String {
    format!("{member}#{i}")
}

/// Why the shared budget could not answer. Every text is fixed here: no URL,
/// no password, nothing the server wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No answer within the settings' timeout.
    #[error("Redis did not answer in time")]
    Timeout,
    /// No usable connection (refused, lost, authentication refused, TLS).
    #[error("Redis is unreachable: {0}")]
    Unreachable(&'static str),
    /// Redis answered, with an error or an answer the script never gives.
    #[error("the budget script failed in Redis: {0}")]
    Script(&'static str),
    /// The settings are unusable (see [`RedisSettings::check`]).
    #[error("the Redis settings are invalid: {0}")]
    Config(String),
}

const TAKE: &str = include_str!("take.lua");
const RELEASE: &str = include_str!("release.lua");
const RESTORE: &str = include_str!("restore.lua");

/// One budget (tenant and app) in Redis; cheap to clone, clones share the
/// connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Replaced by a fresh (lazy) one after an error the manager does not
    /// recover from by itself (it reconnects after I/O errors only).
    manager: RwLock<ConnectionManager>,
    keys: [String; 2],
    /// The window of the last take, for how long a release keeps the keys
    /// (Intune's 20 s until then).
    window_ms: AtomicU64,
    timeout: Duration,
    take: Script,
    release: Script,
    restore: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.inner.keys)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Builds the client and a lazy connection manager: nothing connects
    /// until the first call, so a Redis that is down neither blocks nor
    /// fails start-up. Must run inside a Tokio runtime.
    pub fn new(settings: &RedisSettings, key: &BudgetKey) -> Result<Self, StoreError> {
        let info = settings.connection_info().map_err(StoreError::Config)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Config("the store needs a Tokio runtime".into()));
        }
        let client = redis::Client::open(info)
            .map_err(|_| StoreError::Config("the Redis client refused the URL".into()))?;
        let timeout = settings.timeout;
        // No retries inside the manager: a connection attempt fails at once
        // (the caller falls back to its local share) and the next call makes
        // a new one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| StoreError::Config(format!("the Redis client: {}", e.category())))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                manager: RwLock::new(manager),
                keys: key.redis_keys(),
                window_ms: AtomicU64::new(20_000),
                timeout,
                take: Script::new(TAKE),
                release: Script::new(RELEASE),
                restore: Script::new(RESTORE),
            }),
        })
    }

    /// Takes one token of the request budget and, for a write, one of the
    /// write budget, atomically: granted only if both have room. `member`
    /// names the token and must be unique in the window (a token taken
    /// twice under one name counts once).
    pub async fn take(
        &self,
        write: bool,
        limits: Limits,
        member: &str,
    ) -> Result<Take, StoreError> {
        Ok(self.take_counted(write, limits, member).await?.0)
    }

    /// As [`RedisStore::take`], with how many tokens each log holds in the
    /// window after it, every replica's together.
    pub async fn take_counted(
        &self,
        write: bool,
        limits: Limits,
        member: &str,
    ) -> Result<(Take, Used), StoreError> {
        let (lease, used) = self.lease(write, limits, member, 1).await?;
        let take = match lease {
            Lease::Granted(_) => Take::Granted,
            Lease::Wait(wait) => Take::Wait(wait),
        };
        Ok((take, used))
    }

    /// As [`RedisStore::take`], for up to `n` tokens in the same round trip
    /// (fewer when the budget has less room; `n` = 0 counts as 1). The
    /// tokens are named [`lease_member`]`(member, i)`.
    pub async fn take_lease(
        &self,
        write: bool,
        limits: Limits,
        member: &str,
        n: u32,
    ) -> Result<Lease, StoreError> {
        // A lease of one is named like one, so it can be released by it.
        match n.max(1) {
            1 => match self
                .lease(write, limits, &lease_member(member, 0), 1)
                .await?
                .0
            {
                Lease::Granted(_) => Ok(Lease::Granted(1)),
                wait => Ok(wait),
            },
            n => Ok(self.lease(write, limits, member, n).await?.0),
        }
    }

    /// The script's answer, and how full both logs are after it.
    async fn lease(
        &self,
        write: bool,
        limits: Limits,
        member: &str,
        n: u32,
    ) -> Result<(Lease, Used), StoreError> {
        let window_ms = limits.window_ms();
        self.inner.window_ms.store(window_ms, Ordering::Relaxed);
        let mut invocation = self.inner.take.prepare_invoke();
        invocation
            .key(&self.inner.keys[0])
            .key(&self.inner.keys[1])
            .arg(u8::from(write))
            .arg(limits.requests)
            .arg(limits.writes)
            .arg(window_ms)
            .arg(member)
            .arg(n);
        let mut conn = self.manager();
        let answer: (i64, i64, i64, i64) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        let count = |c: i64| u32::try_from(c).unwrap_or(if c < 0 { 0 } else { u32::MAX });
        let used = Used {
            requests: count(answer.2),
            writes: count(answer.3),
        };
        let lease = match answer {
            (granted, ..) if granted > 0 => {
                Lease::Granted(u32::try_from(granted).unwrap_or(n).min(n))
            }
            (0, wait_ms, ..) if wait_ms > 0 => Lease::Wait(Duration::from_millis(
                u64::try_from(wait_ms).unwrap_or(1).min(window_ms),
            )),
            _ => return Err(StoreError::Script("unexpected answer")),
        };
        Ok((lease, used))
    }

    /// Re-stamps `member`'s entries (both logs for a write) with the server's
    /// time now, the time its Graph answer came back. A member no longer
    /// logged is left out. One round trip; run it off the latency path.
    pub async fn release(&self, write: bool, member: &str) -> Result<(), StoreError> {
        let mut invocation = self.inner.release.prepare_invoke();
        invocation
            .key(&self.inner.keys[0])
            .key(&self.inner.keys[1])
            .arg(u8::from(write))
            .arg(self.inner.window_ms.load(Ordering::Relaxed))
            .arg(member);
        let mut conn = self.manager();
        let _moved: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Takes `member`'s entries out of the logs: its token was never used
    /// (the call left before it was sent), so it frees at once for every
    /// replica. One round trip (`ZREM` on both logs, in one transaction).
    pub async fn give_back(&self, member: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zrem(&self.inner.keys[0], member)
            .zrem(&self.inner.keys[1], member);
        let mut conn = self.manager();
        let _removed: (i64, i64) = self.bounded(pipe.query_async(&mut conn)).await?;
        Ok(())
    }

    /// Puts `tokens` (this replica's of the last `window`) back in the
    /// logs, each stamped its age before the server's time now; a token
    /// still logged keeps its entry. One round trip.
    pub async fn restore(&self, window: Duration, tokens: &[Held]) -> Result<(), StoreError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.inner.restore.prepare_invoke();
        invocation
            .key(&self.inner.keys[0])
            .key(&self.inner.keys[1])
            .arg(window_ms);
        for token in tokens {
            invocation
                .arg(&*token.member)
                .arg(u64::try_from(token.age.as_millis()).unwrap_or(u64::MAX))
                .arg(u8::from(token.write));
        }
        let mut conn = self.manager();
        let _added: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// One PING, within the timeout: whether the shared budget is usable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.manager();
        let pong: String = self
            .bounded(redis::cmd("PING").query_async(&mut conn))
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Script("unexpected answer"))
        }
    }

    fn manager(&self) -> ConnectionManager {
        self.inner
            .manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `call` within the timeout and tells its error.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.inner.timeout, call).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                let error = tell(&e);
                if renews(&e) {
                    self.renew();
                }
                Err(error)
            }
        }
    }

    /// A new lazy manager in place of one that will not recover by itself.
    fn renew(&self) {
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            self.inner.config.clone(),
        ) {
            *self
                .inner
                .manager
                .write()
                .unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }
}

/// Whether the manager keeps failing after `e` unless replaced: it
/// reconnects after I/O errors only, so a connection refused at the
/// handshake (authentication, TLS set-up) would fail every later call.
fn renews(e: &RedisError) -> bool {
    !e.is_io_error()
        && matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::InvalidClientConfig
                | ErrorKind::Client
                | ErrorKind::Parse
                | ErrorKind::RESP3NotSupported
        )
        || refused_authentication(e)
}

/// NOAUTH / WRONGPASS, or Redis 7 closing an unauthenticated connection
/// that sent more than a few arguments ("Protocol error: unauthenticated
/// multibulk length", as the budget script's call does). Read to classify,
/// never shown.
fn refused_authentication(e: &RedisError) -> bool {
    matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
        || e.kind() == ErrorKind::AuthenticationFailed
        || e.detail().is_some_and(|d| d.contains("unauthenticated"))
}

/// The redacted kind of `e`: fixed texts only.
fn tell(e: &RedisError) -> StoreError {
    if e.is_timeout() {
        return StoreError::Timeout;
    }
    if e.is_io_error() {
        return StoreError::Unreachable(if e.is_connection_refusal() {
            "connection refused"
        } else if e.is_connection_dropped() {
            "connection lost"
        } else {
            "I/O error"
        });
    }
    if refused_authentication(e) {
        return StoreError::Unreachable("authentication refused");
    }
    match e.code() {
        Some("NOPERM") => return StoreError::Script("not permitted by the ACL"),
        Some("OOM") => return StoreError::Script("out of memory"),
        Some("WRONGTYPE") => return StoreError::Script("a budget key holds another type"),
        Some("BUSY") => return StoreError::Unreachable("server busy"),
        _ => {}
    }
    match e.kind() {
        ErrorKind::AuthenticationFailed => StoreError::Unreachable("authentication refused"),
        ErrorKind::InvalidClientConfig | ErrorKind::Client => {
            StoreError::Unreachable("connection set-up failed (TLS?)")
        }
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => StoreError::Unreachable("server not serving writes"),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            StoreError::Script("unexpected answer")
        }
        _ => StoreError::Script("server error"),
    }
}

impl StoreError {
    /// The short word metrics and logs name it by.
    fn word(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable(_) => "unreachable",
            Self::Script(_) => "script",
            Self::Config(_) => "config",
        }
    }
}

/// The pacing's view of the store. Both budgets are metered in one script
/// call over one window: the longer of the two, which never lets either
/// budget's window hold more than its limit.
impl super::Store for RedisStore {
    fn take(
        &self,
        write: bool,
        limits: super::Limits,
        member: Arc<str>,
    ) -> super::store::StoreFuture<Result<super::Answer, super::StoreDown>> {
        let store = self.clone();
        Box::pin(async move {
            let limits = Limits {
                requests: limits.requests.tokens,
                writes: limits.writes.tokens,
                window: limits.requests.window.max(limits.writes.window),
            };
            match store.take_counted(write, limits, &member).await {
                Ok((take, used)) => Ok(super::Answer {
                    take: match take {
                        Take::Granted => super::Take::Granted,
                        Take::Wait(wait) => super::Take::Wait(wait),
                    },
                    used,
                }),
                Err(e) => Err(super::StoreDown(e.word())),
            }
        })
    }

    fn release(
        &self,
        write: bool,
        member: Arc<str>,
    ) -> super::store::StoreFuture<Result<(), super::StoreDown>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .release(write, &member)
                .await
                .map_err(|e| super::StoreDown(e.word()))
        })
    }

    fn give_back(
        &self,
        member: Arc<str>,
    ) -> super::store::StoreFuture<Result<(), super::StoreDown>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .give_back(&member)
                .await
                .map_err(|e| super::StoreDown(e.word()))
        })
    }

    fn restore(
        &self,
        window: Duration,
        tokens: Vec<Held>,
    ) -> super::store::StoreFuture<Result<(), super::StoreDown>> {
        let store = self.clone();
        Box::pin(async move {
            store
                .restore(window, &tokens)
                .await
                .map_err(|e| super::StoreDown(e.word()))
        })
    }

    fn ping(&self) -> super::store::StoreFuture<Result<(), super::StoreDown>> {
        let store = self.clone();
        Box::pin(async move { store.ping().await.map_err(|e| super::StoreDown(e.word())) })
    }
}
