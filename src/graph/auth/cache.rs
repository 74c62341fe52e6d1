//! The token cache: one token, refreshed ahead of expiry, one request at a
//! time.
//!
//! - Fresh (before `expires_in - min(5 min, expires_in / 2)`): used as is.
//! - In the refresh window: used as is, and the first caller to notice
//!   starts a refresh in the background; nobody waits for it. If it fails,
//!   the token is still used until it really expires.
//! - Cold or expired: callers wait for the one request in flight.
//!
//! Requests run in their own task, so a caller whose deadline passes does
//! not cancel the request the others wait for. After a failure, callers get
//! that failure without a new request for a short, growing pause (1 s, 2 s...
//! up to 30 s), so bad credentials do not hammer Entra ID.

use super::credential::Credential;
use super::error::{TokenError, TokenErrorKind};
use super::request::{request_token, Token, DEFAULT_MAX_ANSWER_BYTES};
use crate::graph::GraphError;
use http::HeaderValue;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The longest pause after repeated failures.
const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(30);

/// Where the cache reads the time: the system's, or a test's.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// `tokio::time::Instant::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Whether the cache can hand out a token, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHealth {
    /// No token has been obtained yet (and no attempt has failed).
    NotYetObtained,
    /// A valid token is held, or one was and has expired with no failed
    /// attempt since (the next call fetches a new one).
    Ready,
    /// No valid token, and the last attempts failed.
    Failing { consecutive_failures: u32 },
}

impl TokenHealth {
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }
}

type Outcome = Result<HeaderValue, TokenError>;

/// Access tokens for Graph, cached. Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    credential: Credential,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// The most of a token answer that is read.
    max_answer_bytes: u64,
    /// Told each request's result: `ok`, or the failure's kind.
    observer: std::sync::OnceLock<Observer>,
}

type Observer = Box<dyn Fn(&'static str) + Send + Sync>;

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// The request in flight; its outcome arrives on the channel.
    in_flight: Option<watch::Receiver<Option<Outcome>>>,
    consecutive_failures: u32,
    last_failure: Option<(Instant, TokenError)>,
}

/// What a caller needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A token that can be used now.
    Valid,
    /// A token not due for refresh (start-up, tests).
    Fresh,
}

enum Next {
    Use(HeaderValue),
    Wait(watch::Receiver<Option<Outcome>>),
    Fail(TokenError),
}

impl TokenCache {
    pub fn new(http: reqwest::Client, credential: Credential) -> Self {
        Self::with_clock(http, credential, Arc::new(SystemClock))
    }

    /// A cache reading the time from `clock`.
    pub fn with_clock(
        http: reqwest::Client,
        credential: Credential,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::with_answer_limit(http, credential, clock, DEFAULT_MAX_ANSWER_BYTES)
    }

    /// A cache reading the time from `clock` that reads at most
    /// `max_answer_bytes` of a token answer (`AZURE_TOKEN_MAX_ANSWER_BYTES`).
    pub fn with_answer_limit(
        http: reqwest::Client,
        credential: Credential,
        clock: Arc<dyn Clock>,
        max_answer_bytes: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                credential,
                clock,
                state: Mutex::new(State::default()),
                max_answer_bytes,
                observer: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Tells `observe` the result of every token request from now on: `ok`,
    /// or the failure's kind (`transient`, `bad_credentials`, `forbidden`).
    /// Only the first observer set is kept.
    pub fn on_request(&self, observe: impl Fn(&'static str) + Send + Sync + 'static) {
        let _ = self.inner.observer.set(Box::new(observe));
    }

    pub fn credential(&self) -> &Credential {
        &self.inner.credential
    }

    /// The `Authorization` header value for a Graph request.
    pub async fn authorization(&self) -> Result<HeaderValue, GraphError> {
        use tracing::Instrument;
        let span = tracing::debug_span!("token", token.cache_hit = tracing::field::Empty);
        self.get(Need::Valid)
            .instrument(span)
            .await
            .map_err(GraphError::Token)
    }

    /// Obtains a fresh token now (joining a request already in flight), for
    /// start-up: the error says why there is none.
    pub async fn warm_up(&self) -> Result<(), TokenError> {
        self.get(Need::Fresh).await.map(drop)
    }

    /// Forgets the cached token if it is still `rejected`, after Graph
    /// refused it (revoked, or expired early): the next call fetches anew.
    pub fn invalidate(&self, rejected: &HeaderValue) {
        let mut s = self.inner.lock();
        if s.token.as_ref().is_some_and(|t| t.header == *rejected) {
            tracing::info!("Graph refused the cached access token; fetching a new one");
            s.token = None;
        }
    }

    /// Whether a token can be handed out, for readiness.
    pub fn health(&self) -> TokenHealth {
        let now = self.inner.clock.now();
        let s = self.inner.lock();
        match &s.token {
            Some(t) if now < t.expires_at => TokenHealth::Ready,
            _ if s.consecutive_failures > 0 => TokenHealth::Failing {
                consecutive_failures: s.consecutive_failures,
            },
            Some(_) => TokenHealth::Ready,
            None => TokenHealth::NotYetObtained,
        }
    }

    async fn get(&self, need: Need) -> Outcome {
        let span = tracing::Span::current();
        let mut rx = match self.next(need) {
            Next::Use(header) => {
                span.record("token.cache_hit", true);
                return Ok(header);
            }
            Next::Fail(e) => return Err(e),
            Next::Wait(rx) => {
                span.record("token.cache_hit", false);
                rx
            }
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        outcome.unwrap_or_else(|| {
            Err(TokenError::local(
                TokenErrorKind::Transient,
                "the token request ended without an answer",
            ))
        })
    }

    /// Decides, under the lock, whether to use the cached token, wait for
    /// the request in flight, start one, or repeat a recent failure.
    fn next(&self, need: Need) -> Next {
        let now = self.inner.clock.now();
        let mut s = self.inner.lock();
        // A request task that died (runtime shutting down) left a closed channel.
        if s.in_flight
            .as_ref()
            .is_some_and(|rx| rx.has_changed().is_err())
        {
            s.in_flight = None;
        }
        if let Some(t) = &s.token {
            if now < t.fresh_until {
                return Next::Use(t.header.clone());
            }
            if now < t.expires_at && need == Need::Valid {
                let header = t.header.clone();
                if s.in_flight.is_none() && !s.pausing(now) {
                    tracing::debug!("refreshing the access token ahead of its expiry");
                    drop(self.start(&mut s));
                }
                return Next::Use(header);
            }
        }
        if let Some(rx) = &s.in_flight {
            return Next::Wait(rx.clone());
        }
        if s.pausing(now) {
            if let Some((_, e)) = &s.last_failure {
                return Next::Fail(e.clone());
            }
        }
        Next::Wait(self.start(&mut s))
    }

    /// Starts the one token request; its outcome updates the cache, then
    /// goes to every waiter.
    fn start(&self, s: &mut State) -> watch::Receiver<Option<Outcome>> {
        let (tx, rx) = watch::channel(None);
        s.in_flight = Some(rx.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let issued = inner.clock.now();
            let result = request_token(
                &inner.http,
                &inner.credential,
                issued,
                inner.max_answer_bytes,
            )
            .await;
            let outcome = inner.settle(result);
            let _ = tx.send(Some(outcome));
        });
        rx
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step: a panic
        // elsewhere does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, result: Result<Token, TokenError>) -> Outcome {
        let now = self.clock.now();
        let mut s = self.lock();
        s.in_flight = None;
        let kind = self.credential.kind.name();
        if let Some(observe) = self.observer.get() {
            observe(match &result {
                Ok(_) => "ok",
                Err(e) => e.kind().as_str(),
            });
        }
        match result {
            Ok(token) => {
                tracing::info!(
                    credential = kind,
                    expires_in_secs = token.lifetime.as_secs(),
                    "obtained an access token for Graph"
                );
                let header = token.header.clone();
                s.token = Some(token);
                s.consecutive_failures = 0;
                s.last_failure = None;
                Ok(header)
            }
            Err(e) => {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                let still_valid = s.token.as_ref().is_some_and(|t| now < t.expires_at);
                tracing::warn!(
                    credential = kind,
                    error = %e,
                    error_kind = e.kind().as_str(),
                    consecutive_failures = s.consecutive_failures,
                    still_valid,
                    "token request failed"
                );
                s.last_failure = Some((now, e.clone()));
                Err(e)
            }
        }
    }
}

impl State {
    /// Within the pause after a failure: 1 s, doubling per consecutive
    /// failure, at most 30 s.
    fn pausing(&self, now: Instant) -> bool {
        let Some((at, _)) = &self.last_failure else {
            return false;
        };
        let doublings = self.consecutive_failures.saturating_sub(1).min(5);
        let pause = (Duration::from_secs(1) * (1 << doublings)).min(MAX_FAILURE_PAUSE);
        now < *at + pause
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("credential", &self.inner.credential)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}
