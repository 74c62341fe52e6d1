//! The admin HTTP server: liveness, readiness and metrics, on their own port
//! so that probes and scrapes never compete with gRPC traffic.

use crate::graph::TokenCache;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod limits;

pub use limits::{
    serve, HEADER_READ_TIMEOUT, MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEAD_BYTES, REQUEST_TIMEOUT,
};

/// Whether the gateway should receive traffic: serving (started, not
/// draining) and holding a usable Graph access token. Liveness (`/healthz`)
/// never depends on it.
pub struct Readiness {
    started: AtomicBool,
    tokens: TokenCache,
    /// How the Graph budget is taken, for the details (never a reason to
    /// be unready: without the shared store a replica paces on its share).
    budget: std::sync::OnceLock<Box<dyn Fn() -> Option<crate::budget::Mode> + Send + Sync>>,
}

impl Readiness {
    pub fn new(tokens: TokenCache) -> Self {
        Self {
            started: AtomicBool::new(false),
            tokens,
            budget: std::sync::OnceLock::new(),
        }
    }

    /// Reports the budget's mode in the details from now on.
    pub fn with_budget_mode(
        &self,
        mode: impl Fn() -> Option<crate::budget::Mode> + Send + Sync + 'static,
    ) {
        let _ = self.budget.set(Box::new(mode));
    }

    /// The lines after `ready` / `not ready`.
    fn details(&self) -> String {
        match self.budget.get().and_then(|mode| mode()) {
            Some(mode) => format!("graph budget: {}\n", mode.as_str()),
            None => String::new(),
        }
    }

    pub fn set_started(&self, started: bool) {
        self.started.store(started, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.started.load(Ordering::Acquire) && self.token_ready()
    }

    /// Whether a Graph access token can be handed out.
    pub fn token_ready(&self) -> bool {
        self.tokens.health().is_ready()
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Arc<Readiness>,
}

/// `/healthz` (the process is alive; never depends on Graph), `/readyz`
/// (serving; not while starting or draining) and `/metrics` (Prometheus text).
pub fn router(metrics: Arc<Metrics>, ready: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, ready })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let details = s.ready.details();
    if s.ready.get() {
        (StatusCode::OK, format!("ready\n{details}"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{details}"),
        )
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
