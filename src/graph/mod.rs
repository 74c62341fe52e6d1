//! The Graph client: sends the requests translation built, to Graph or to the
//! emulator, through the outbound [`stack`] (load shedding, tokens, the shared
//! throttle pause, retries, per-attempt timeouts, pooled HTTP/2 with gzip and
//! rustls), and reads the answers into success bodies or [`GraphError`]s.

pub mod auth;
pub mod batch;
mod batching;
pub mod body;
mod pool;
pub use pool::Clients;
mod error;
pub mod stack;
pub mod transport;

pub use auth::{TokenCache, TokenError, TokenErrorKind, TokenHealth};
pub use batching::{ItemAnswer, CHUNKS_IN_FLIGHT};
pub use error::{
    clip, parse_retry_after, AnswerTooLarge, GraphError, GraphFailure, Overload, MAX_MESSAGE_BYTES,
};
pub use stack::{Admission, RetrySettings, StackSettings, ThrottleGate, DEFAULT_MAX_RETRY_AFTER};
pub use transport::{GraphHttp, GraphHttpConfig};

use crate::metrics::Metrics;
use crate::translate::IdSegment;
use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Method, Uri};
use stack::{GraphRequest, GraphService, Resend};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};
use tower::ServiceExt;
use url::Url;

/// The task collection, below the Graph base URL.
pub const COLLECTION_PATH: &str = "/deviceAppManagement/deviceAppManagementTasks";

/// Per-call facts every Graph request carries.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Sent as `client-request-id`; Graph echoes it and logs it.
    pub client_request_id: String,
    /// The caller's gRPC deadline, if it set one.
    pub deadline: Option<Instant>,
    /// Whether a request of this call may have reached Graph.
    pub sent: Sent,
    /// Who called, for a fair share of Intune's budget.
    pub caller: crate::budget::Caller,
}

/// Whether any request of a call may have reached Graph: set just before an
/// attempt is handed to the HTTP client, cleared again when that attempt
/// provably never left (see [`GraphError::Connect`]). Clones share it, so
/// what records a call can still read it after the call's future is gone.
#[derive(Debug, Clone, Default)]
pub struct Sent(Arc<AtomicBool>);

impl Sent {
    /// True once an attempt was handed to the HTTP client and not known to
    /// have stayed unsent.
    pub fn may_have_reached_graph(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Marks an attempt as handed over; true if an earlier one already was.
    pub(crate) fn mark(&self) -> bool {
        self.0.swap(true, Ordering::AcqRel)
    }

    /// The attempt just marked never left, and no earlier one had been sent.
    pub(crate) fn unmark(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A successful Graph answer.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    /// Graph's `request-id` header.
    pub request_id: Option<String>,
    pub body: Bytes,
}

/// Talks to one Graph endpoint (the real one or the emulator).
pub struct GraphClient {
    /// For list queries, which Url encodes as it sets them.
    collection_url: Url,
    /// The scheme and host of every request, parsed once: a task URI only
    /// adds to the collection's path, so no call parses a URL.
    target: Option<(Scheme, Authority)>,
    /// The collection's path, as the URL has it.
    collection_path: String,
    stack: GraphService,
    /// The whole call's budget, retries included, when the caller sets no
    /// shorter deadline.
    call_timeout: Duration,
    gate: Arc<ThrottleGate>,
    /// Shared with the retry layer.
    retry_budget: Arc<TpsBudget>,
    /// Intune's budget, when on.
    pace: Option<Arc<crate::budget::Budget>>,
    metrics: Arc<Metrics>,
    /// `{base}/$batch`.
    batch_uri: Result<Uri, GraphError>,
    /// How a batch's throttled items are sent again.
    retry_settings: RetrySettings,
    max_retry_after: Duration,
}

/// The HTTP client of token and key-set requests (Graph calls have their
/// own, [`GraphHttp`], which does the same on hyper directly). `HTTPS_PROXY`,
/// `HTTP_PROXY` and `NO_PROXY` are honoured unless `use_proxy` is false (the
/// in-process emulator is on loopback and must never go through a proxy).
pub fn http_client(use_proxy: bool) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder();
    let builder = if use_proxy {
        builder
    } else {
        builder.no_proxy()
    };

    builder
        .user_agent(concat!("graph-grpc-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .gzip(true)
        // Graph does not redirect these routes; following one could carry
        // the bearer token somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl GraphClient {
    /// A client for the Graph API at `base_url` (e.g. `https://graph.microsoft.com/beta`),
    /// sending with `http`: one client for every thread, or one per thread.
    pub fn new(
        http: impl Into<Clients<GraphHttp>>,
        base_url: &Url,
        tokens: Option<Arc<TokenCache>>,
        call_timeout: Duration,
        settings: &StackSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let gate = Arc::new(ThrottleGate::new(settings.max_retry_after));
        let retry_budget = stack::retry_budget(&settings.retry);
        let pace = settings.budget.map(|b| {
            let store = settings.budget_store.as_ref().and_then(|shared| {
                match crate::budget::redis::RedisStore::new(&shared.redis, &shared.key) {
                    Ok(store) => Some(Arc::new(store) as Arc<dyn crate::budget::Store>),
                    Err(e) => {
                        tracing::error!(error = %e, "the shared Graph budget cannot be used; pacing this replica alone");
                        None
                    }
                }
            });
            Arc::new(crate::budget::Budget::new(b, store, metrics.clone()))
        });
        let collection_url = with_path(base_url, &[COLLECTION_PATH]);
        let collection_uri = request_uri(&collection_url);
        let target = collection_uri.as_ref().ok().and_then(|uri| {
            let parts = uri.clone().into_parts();
            Some((parts.scheme?, parts.authority?))
        });
        let http: Clients<GraphHttp> = http.into();
        let http = match &collection_uri {
            Ok(uri) => {
                let uri = uri.clone();
                http.map(move |client| client.for_target(&uri))
            }
            Err(_) => http,
        };
        Self {
            collection_path: collection_url.path().to_owned(),
            collection_url,
            target,
            stack: stack::build(
                http,
                tokens,
                settings,
                gate.clone(),
                retry_budget.clone(),
                pace.clone(),
                metrics.clone(),
            ),
            pace,
            retry_budget,
            call_timeout,
            gate,
            metrics,
            batch_uri: request_uri(&batching::batch_url(base_url)),
            retry_settings: settings.retry.clone(),
            max_retry_after: settings.max_retry_after,
        }
    }

    /// Takes one retry from the budget the retry layer spends from; false
    /// when it is spent.
    pub fn withdraw_retry(&self, reason: &'static str) -> bool {
        if self.retry_budget.withdraw() {
            self.metrics.retry(reason);
            true
        } else {
            self.metrics.retry_skipped("budget");
            false
        }
    }

    /// Intune's budget, when it is on.
    pub fn budget(&self) -> Option<&crate::budget::Budget> {
        self.pace.as_deref()
    }

    /// The throttle pause shared by this client's calls.
    pub fn throttle_gate(&self) -> &ThrottleGate {
        &self.gate
    }

    /// `GET /deviceAppManagement/deviceAppManagementTasks/{id}`.
    pub async fn get_task(
        &self,
        id: &IdSegment,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::GET, self.task_uri(id, ""), None, ctx)
            .await
    }

    /// `PATCH /deviceAppManagement/deviceAppManagementTasks/{id}`.
    pub async fn patch_task(
        &self,
        id: &IdSegment,
        body: impl Into<Bytes>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::PATCH, self.task_uri(id, ""), Some(body.into()), ctx)
            .await
    }

    /// `POST /deviceAppManagement/deviceAppManagementTasks`: creates a task.
    /// Not idempotent (Graph takes no client key), so it is sent again only
    /// when Graph said it did not act or it never left ([`Resend`]).
    pub async fn create_task(
        &self,
        body: impl Into<Bytes>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::POST, self.uri(&[]), Some(body.into()), ctx)
            .await
    }

    /// `DELETE /deviceAppManagement/deviceAppManagementTasks/{id}`.
    pub async fn delete_task(
        &self,
        id: &IdSegment,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        self.send(Method::DELETE, self.task_uri(id, ""), None, ctx)
            .await
    }

    /// `GET /deviceAppManagement/deviceAppManagementTasks?{query}`.
    pub async fn list_tasks(
        &self,
        query: &str,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let mut url = self.collection_url.clone();
        url.set_query(Some(query));
        self.send(Method::GET, request_uri(&url), None, ctx).await
    }

    /// `{collection}/{id}{rest}`.
    fn task_uri(&self, id: &IdSegment, rest: &str) -> Result<Uri, GraphError> {
        self.uri(&["/", id.as_str(), rest])
    }

    /// The collection's URI with `parts` appended to its path: no URL is
    /// parsed (a task id is a GUID, which needs no encoding).
    fn uri(&self, parts: &[&str]) -> Result<Uri, GraphError> {
        let (scheme, authority) = self.target.clone().ok_or_else(unusable_url)?;
        let mut path = String::with_capacity(
            self.collection_path.len() + parts.iter().map(|p| p.len()).sum::<usize>(),
        );
        path.push_str(&self.collection_path);
        for part in parts {
            path.push_str(part);
        }
        Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|_| unusable_url())
    }

    async fn send(
        &self,
        method: Method,
        uri: Result<Uri, GraphError>,
        body: Option<Bytes>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let uri = uri?;
        let deadline = self.deadline(ctx);
        let method_name = method_name(&method);
        let resend = Resend::for_method(&method);
        let cost = crate::budget::Cost::for_method(&method);
        let req = GraphRequest {
            method,
            uri,
            body,
            client_request_id: ctx.client_request_id.as_str().into(),
            deadline,
            authorization: None,
            attempt: 0,
            sent: ctx.sent.clone(),
            resend,
            caller: ctx.caller.clone(),
            cost,
            grant: stack::GrantSlot::default(),
        };
        let result = tokio::time::timeout_at(deadline, self.stack.clone().oneshot(req))
            .await
            .unwrap_or(Err(GraphError::Timeout));
        self.metrics
            .graph_request(method_name, answered_status(&result));
        result
    }

    /// When a call's Graph work must be over: the caller's deadline, or the
    /// call timeout when that comes first.
    fn deadline(&self, ctx: &CallContext) -> Instant {
        let own = Instant::now() + self.call_timeout;
        ctx.deadline.map_or(own, |d| d.min(own))
    }

    /// `POST /deviceAppManagement/deviceAppManagementTasks/{id}/updateStatus`
    /// with `{"status":..,"note":..}`; Graph answers 204. Setting a status
    /// leaves the same state however often it is done, but each send may
    /// record its note: after a lost answer the service reads the task back
    /// before it sends the action again.
    pub async fn update_status(
        &self,
        id: &IdSegment,
        body: impl Into<Bytes>,
        ctx: &CallContext,
    ) -> Result<GraphResponse, GraphError> {
        let uri = self.task_uri(id, "/updateStatus");
        self.send(Method::POST, uri, Some(body.into()), ctx).await
    }
}

/// The HTTP status Graph answered, if it answered.
fn answered_status(result: &Result<GraphResponse, GraphError>) -> Option<u16> {
    match result {
        Ok(r) => Some(r.status),
        Err(GraphError::Status(f)) => Some(f.status),
        Err(GraphError::AnswerTooLarge(a)) => Some(a.status),
        Err(_) => None,
    }
}

/// A URL as the request URI it is sent with.
fn request_uri(url: &Url) -> Result<Uri, GraphError> {
    Uri::try_from(url.as_str()).map_err(|_| unusable_url())
}

/// A Graph URL that is no request URI: nothing was sent.
fn unusable_url() -> GraphError {
    GraphError::Connect("the Graph URL is not a valid request URI".into())
}

/// `base` with `parts` appended to its path (which has no trailing slash).
fn with_path(base: &Url, parts: &[&str]) -> Url {
    let mut path = String::with_capacity(128);
    path.push_str(base.path().trim_end_matches('/'));
    for part in parts {
        path.push_str(part);
    }
    let mut url = base.clone();
    url.set_path(&path);
    url
}

/// The kind of a failed HTTP exchange, without reqwest's text (which repeats
/// the URL, naming the tenant, and can be long). Shared by token and key-set
/// requests.
pub fn transport_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_body() || e.is_decode() {
        "answer interrupted"
    } else {
        "request failed"
    }
}

/// True for `localhost` and loopback addresses: the only hosts plain
/// `http://` is allowed to.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PATCH => "PATCH",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}
