//! The outbound stack, one tower layer per concern, outermost first:
//!
//! ```text
//! admission (bounded queue; the budget's turn; in-flight cap) -> auth -> throttle gate
//!     -> retry -> attempt budget -> attempt timeout -> HTTP
//! ```
//!
//! Intune's budget ([`crate::budget`]) is taken at admission for the first
//! attempt and by the attempt-budget layer for each retry.
//!
//! The whole call is bounded by the caller's deadline (or the configured call
//! timeout) in [`super::GraphClient`].

mod admit;
mod authorize;
mod budget;
mod delivery;
mod exchange;
mod retry;
mod shared;
mod throttle;
mod timeout;

pub use admit::Admission;
pub(crate) use exchange::describe;
pub use retry::{budget as retry_budget, RetrySettings};
pub use throttle::{ThrottleGate, DEFAULT_MAX_RETRY_AFTER};

use super::TokenCache;
use crate::metrics::Metrics;
use ::http::HeaderValue;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One logical Graph request, as it travels down the stack.
#[derive(Debug, Clone)]
pub struct GraphRequest {
    pub method: ::http::Method,
    /// Absolute; cheap to clone (shared bytes), so a retry re-sends it
    /// without copying.
    pub uri: ::http::Uri,
    /// `Bytes`, so a retry re-sends it without copying.
    pub body: Option<Bytes>,
    pub client_request_id: Arc<str>,
    /// When the whole call, retries included, must be over.
    pub deadline: Instant,
    /// Set by the auth layer.
    pub authorization: Option<HeaderValue>,
    /// 0 for the first attempt; sent as `Retry-Attempt` on retries.
    pub attempt: u32,
    /// Marked just before an attempt is handed to the HTTP client.
    pub sent: crate::graph::Sent,
    /// When a failed attempt may be sent again.
    pub resend: Resend,
    /// Who the call is for, for a fair share of the budget.
    pub caller: crate::budget::Caller,
    /// The budget tokens each attempt takes.
    pub cost: crate::budget::Cost,
    /// The budget tokens taken for the next attempt, handed from admission
    /// (or from a caller that took them itself, as a batch does) to the
    /// attempt that uses them; retries take their own.
    pub grant: GrantSlot,
}

/// Budget tokens on their way down the stack: shared by the clones of a
/// request, taken once.
#[derive(Debug, Clone, Default)]
pub struct GrantSlot(Arc<std::sync::Mutex<Vec<crate::budget::Grant>>>);

impl GrantSlot {
    pub fn put(&self, grants: Vec<crate::budget::Grant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = grants;
    }

    /// The tokens, if any are here; the slot is empty afterwards.
    pub fn take(&self) -> Option<Vec<crate::budget::Grant>> {
        let grants = std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        (!grants.is_empty()).then_some(grants)
    }

    fn is_empty(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }
}

/// When a failed attempt of a request may be sent again: decided per
/// request by what it does at Graph, not by the retry layer guessing from
/// the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A read: after any failure another attempt may cure (429, 503, 504, a
    /// lost connection, a timeout, an answer that broke off).
    AfterAnyFailure,
    /// A write: only when Graph said it did not act (429, 503) or the
    /// attempt provably never left ([`crate::graph::GraphError::Connect`]).
    /// After a timeout, a lost connection, another 5xx or a success whose
    /// body broke off, Graph may have applied it: sending it again could
    /// overwrite another writer's change (PATCH) or act twice (a POST that
    /// creates: Graph takes no client key, so a second POST is a second task).
    OnlyIfNotTaken,
}

impl Resend {
    /// What a request with this method may be: only GET reads.
    pub fn for_method(method: &::http::Method) -> Self {
        if *method == ::http::Method::GET {
            Self::AfterAnyFailure
        } else {
            Self::OnlyIfNotTaken
        }
    }
}

/// The assembled stack, and each layer of it.
pub type GraphService = shared::Shared;

/// What the stack needs to know.
#[derive(Debug, Clone)]
pub struct StackSettings {
    pub retry: RetrySettings,
    /// Longest wait for one attempt.
    pub attempt_timeout: Duration,
    /// Graph calls in flight at once, and calls that may wait for a turn.
    pub admission: Admission,
    /// The longest delay Graph may ask for (`Retry-After`) that the gateway
    /// keeps: the shared pause, a retry's wait and callers' `RetryInfo`.
    pub max_retry_after: Duration,
    /// The largest answer body read from Graph, after decompression.
    pub max_answer_bytes: u64,
    /// The largest answer body read from Entra ID's token endpoint, after
    /// decompression.
    pub token_max_answer_bytes: u64,
    /// Intune's budget, paced before Graph refuses; `None`: off.
    pub budget: Option<crate::budget::BudgetSettings>,
    /// Where replicas share the budget (when it is on) and the `request_id`
    /// memory, if they do.
    pub budget_store: Option<SharedBudget>,
    /// Whether each attempt's span also records its full URL, `url.full`
    /// (`GATEWAY_TRACE_URL_FULL`); off, only `url.template`.
    pub trace_url_full: bool,
}

/// The budget shared through Redis, and whose budget it is.
#[derive(Debug, Clone)]
pub struct SharedBudget {
    pub redis: crate::budget::redis::RedisSettings,
    pub key: crate::budget::redis::BudgetKey,
}

/// Builds the stack around `http`.
pub fn build(
    http: crate::graph::Clients<super::GraphHttp>,
    tokens: Option<Arc<TokenCache>>,
    settings: &StackSettings,
    gate: Arc<ThrottleGate>,
    budget: Arc<tower::retry::budget::TpsBudget>,
    pace: Option<Arc<crate::budget::Budget>>,
    metrics: Arc<Metrics>,
) -> GraphService {
    let svc = exchange::service(
        http,
        exchange::Limits {
            max_retry_after: settings.max_retry_after,
            max_answer_bytes: settings.max_answer_bytes,
            trace_url_full: settings.trace_url_full,
        },
    );
    let svc = timeout::layer(svc, settings.attempt_timeout);
    let svc = match &pace {
        Some(pace) => budget::layer(svc, pace.clone()),
        None => svc,
    };
    let svc = retry::layer(
        svc,
        settings.retry.clone(),
        budget,
        gate.clone(),
        metrics.clone(),
    );
    let svc = throttle::layer(svc, gate, metrics.clone());
    let svc = match tokens {
        Some(tokens) => authorize::layer(svc, tokens),
        None => svc,
    };
    admit::layer(svc, settings.admission, pace, metrics)
}
