//! Prometheus metrics, served as text on the admin port's `/metrics`.

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram,
};
use prometheus_client::registry::Registry;
use std::time::Duration;

mod process;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcName {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphLabels {
    method: &'static str,
    /// The HTTP status, or `error` when no answer came.
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnumLabels {
    graph_type: &'static str,
}

/// The gateway's metrics. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    /// The `process_*` families, which carry no prefix.
    process: Registry,
    token_requests: Family<ResultLabels, Counter>,
    token_ready: Gauge,
    ready: Gauge,
    rpc_calls: Family<RpcLabels, Counter>,
    rpc_seconds: Family<RpcName, Histogram>,
    batch_items: Family<RpcLabels, Counter>,
    graph_requests: Family<GraphLabels, Counter>,
    unknown_enum_values: Family<EnumLabels, Counter>,
    retries: Family<ReasonLabels, Counter>,
    retries_skipped: Family<ReasonLabels, Counter>,
    load_shed: Counter,
    graph_queued: Gauge,
    throttle_waits: Counter,
    throttle_fail_fast: Counter,
    access_denied: Family<ReasonLabels, Counter>,
    tls_reloads: Family<ReasonLabels, Counter>,
    grpc_connections_closed: Family<ReasonLabels, Counter>,
    grpc_calls_refused: Family<ReasonLabels, Counter>,
    grpc_connections_open: Gauge,
    grpc_calls_in_flight: Gauge,
    idempotent_replays: Family<RpcName, Counter>,
    idempotency_entries: Gauge,
    idempotency_store: IdempotencyStoreMetrics,
    /// The Graph budget's metrics (`graph_gateway_budget_*`).
    pub budget: crate::budget::metrics::BudgetMetrics,
    /// Gauges computed when scraped (each returns false once what it reads
    /// is gone).
    refreshers: std::sync::Mutex<Vec<Refresher>>,
}

type Refresher = Box<dyn Fn() -> bool + Send + Sync>;

fn latency_histogram() -> Histogram {
    // 250 µs .. ~65 s: Graph's own latency is tens to hundreds of ms.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.00025, 2.0, 19,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("graph_gateway");
        let rpc_calls = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_calls",
            "gRPC calls handled, by RPC and status code",
            rpc_calls.clone(),
        );
        let rpc_seconds = Family::<RpcName, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "grpc_call_duration_seconds",
            "gRPC call latency, by RPC",
            rpc_seconds.clone(),
        );
        let batch_items = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_batch_items",
            "Items of batch write calls, by RPC and the item's own status code (the call itself answers OK with each item's outcome)",
            batch_items.clone(),
        );
        let spans = &*crate::telemetry::otel::SPANS;
        registry.register(
            "trace_spans_exported",
            "Spans sent to the OTLP collector",
            spans.exported.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans not exported, by reason: queue_full (the collector is slow or gone: spans are dropped, never waited for), export_failed (it refused or did not answer)",
            spans.dropped.clone(),
        );
        let graph_requests = Family::<GraphLabels, Counter>::default();
        registry.register(
            "graph_requests",
            "Requests sent to Microsoft Graph, by method and HTTP status",
            graph_requests.clone(),
        );
        let unknown_enum_values = Family::<EnumLabels, Counter>::default();
        registry.register(
            "graph_unknown_enum_values",
            "Enum members Graph sent that this gateway does not know (read as UNSPECIFIED)",
            unknown_enum_values.clone(),
        );
        let retries = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "graph_retries",
            "Graph requests retried, by what failed (429, 503, 504, connect, attempt_timeout, body)",
            retries.clone(),
        );
        let retries_skipped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "graph_retries_skipped",
            "Retryable failures returned without a retry, by why (deadline, budget)",
            retries_skipped.clone(),
        );
        let load_shed = Counter::default();
        registry.register(
            "graph_load_shed",
            "Calls turned away unsent: every Graph call slot busy and the wait queue full, or the deadline passed while waiting",
            load_shed.clone(),
        );
        let graph_queued = Gauge::default();
        registry.register(
            "graph_queued",
            "Calls waiting for a Graph call slot (GRAPH_MAX_IN_FLIGHT) right now",
            graph_queued.clone(),
        );
        let throttle_waits = Counter::default();
        registry.register(
            "graph_throttle_waits",
            "Calls that waited out Graph's throttle pause before being sent",
            throttle_waits.clone(),
        );
        let throttle_fail_fast = Counter::default();
        registry.register(
            "graph_throttle_fail_fast",
            "Calls failed at once because Graph's throttle pause outlasts their deadline",
            throttle_fail_fast.clone(),
        );
        let access_denied = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "access_denied",
            "gRPC calls refused before reaching the service, by reason (NO_CREDENTIALS, TOKEN_EXPIRED, CALLER_UNKNOWN, RPC_NOT_ALLOWED, RATE_LIMITED, ...)",
            access_denied.clone(),
        );
        let tls_reloads = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Checks of the TLS files that found a change, by result (replaced, refused)",
            tls_reloads.clone(),
        );
        let grpc_connections_closed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "grpc_connections_closed",
            "gRPC connections the gateway closed, by reason (handshake_timeout, tls_handshake_failed, idle, max_age)",
            grpc_connections_closed.clone(),
        );
        let grpc_calls_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "grpc_calls_refused",
            "gRPC calls refused before the access check, by reason (max_concurrent_calls)",
            grpc_calls_refused.clone(),
        );
        let grpc_connections_open = Gauge::default();
        registry.register(
            "grpc_connections_open",
            "gRPC connections holding a connection slot (GATEWAY_MAX_CONNECTIONS) right now",
            grpc_connections_open.clone(),
        );
        let grpc_calls_in_flight = Gauge::default();
        registry.register(
            "grpc_calls_in_flight",
            "gRPC calls open across all connections (GATEWAY_MAX_CONCURRENT_CALLS) right now",
            grpc_calls_in_flight.clone(),
        );
        let idempotent_replays = Family::<RpcName, Counter>::default();
        registry.register(
            "idempotent_replays",
            "Calls answered from the request_id store without running again, by RPC",
            idempotent_replays.clone(),
        );
        let idempotency_entries = Gauge::default();
        registry.register(
            "idempotency_entries",
            "Calls with a request_id the gateway remembers, running or answered (GATEWAY_IDEMPOTENCY_MAX_ENTRIES) right now",
            idempotency_entries.clone(),
        );
        let idempotency_store = IdempotencyStoreMetrics::default();
        registry.register(
            "idempotency_store_errors",
            "Calls to the shared request_id memory (the budget's Redis) that failed, by why (timeout, unreachable, script, corrupt); the call went on with this replica's memory",
            idempotency_store.errors.clone(),
        );
        registry.register(
            "idempotency_shared",
            "1 while the request_id memory is shared through Redis (GRAPH_BUDGET_REDIS_URL) and Redis answers, 0 while this replica remembers alone",
            idempotency_store.shared.clone(),
        );
        let token_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "token_requests",
            "Access token requests to Microsoft Entra ID, by result (ok, or why it failed: transient, bad_credentials, forbidden)",
            token_requests.clone(),
        );
        let token_ready = Gauge::default();
        registry.register(
            "token_ready",
            "1 while the gateway holds an access token for Graph it can use (or one that expired with no failed request since), 0 while it has none",
            token_ready.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while the gateway answers ready on /readyz (started, not draining, a Graph token in hand), 0 otherwise",
            ready.clone(),
        );
        let budget = crate::budget::metrics::BudgetMetrics::register(&mut registry);
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        Self {
            process,
            token_requests,
            token_ready,
            ready,
            idempotency_store,
            budget,
            refreshers: std::sync::Mutex::default(),
            idempotent_replays,
            idempotency_entries,
            grpc_connections_closed,
            grpc_calls_refused,
            grpc_connections_open,
            grpc_calls_in_flight,
            access_denied,
            tls_reloads,
            retries,
            retries_skipped,
            load_shed,
            graph_queued,
            throttle_waits,
            throttle_fail_fast,
            registry,
            rpc_calls,
            rpc_seconds,
            batch_items,
            graph_requests,
            unknown_enum_values,
        }
    }
}

impl Metrics {
    /// The outcome of one access token request: `ok`, or the failure's kind.
    pub fn token_request(&self, result: &'static str) {
        self.token_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Whether a Graph access token is in hand, and whether `/readyz`
    /// answers ready (both set when scraped).
    pub fn set_readiness(&self, token_ready: bool, ready: bool) {
        self.token_ready.set(i64::from(token_ready));
        self.ready.set(i64::from(ready));
    }

    /// A call the access layer refused.
    pub fn access_denied(&self, reason: &'static str) {
        self.access_denied
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A change of the TLS files: `replaced` or `refused`.
    pub fn tls_reload(&self, reason: &'static str) {
        self.tls_reloads
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records one finished gRPC call.
    pub fn rpc(&self, rpc: &'static str, code: tonic::Code, elapsed: Duration) {
        self.rpc_calls
            .get_or_create(&RpcLabels {
                rpc,
                code: code_name(code),
            })
            .inc();
        self.rpc_seconds
            .get_or_create(&RpcName { rpc })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one item of a batch write call, answered `code`.
    pub fn batch_item(&self, rpc: &'static str, code: tonic::Code) {
        self.batch_items
            .get_or_create(&RpcLabels {
                rpc,
                code: code_name(code),
            })
            .inc();
    }

    /// Records one Graph request; `status` is `None` when no answer came.
    pub fn graph_request(&self, method: &'static str, status: Option<u16>) {
        let status = status.map_or("error", status_label);
        self.graph_requests
            .get_or_create(&GraphLabels { method, status })
            .inc();
    }

    /// Records an enum member Graph sent that is not in this gateway's proto.
    pub fn unknown_enum_value(&self, graph_type: &'static str) {
        self.unknown_enum_values
            .get_or_create(&EnumLabels { graph_type })
            .inc();
    }

    /// Records a retry of a Graph request.
    pub fn retry(&self, reason: &'static str) {
        self.retries.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Records a retryable failure returned without a retry.
    pub fn retry_skipped(&self, reason: &'static str) {
        self.retries_skipped
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn load_shed(&self) {
        self.load_shed.inc();
    }

    pub fn graph_queued_inc(&self) {
        self.graph_queued.inc();
    }

    pub fn graph_queued_dec(&self) {
        self.graph_queued.dec();
    }

    pub fn throttle_wait(&self) {
        self.throttle_waits.inc();
    }

    pub fn throttle_fail_fast(&self) {
        self.throttle_fail_fast.inc();
    }

    /// A gRPC connection the gateway closed, by reason.
    pub fn grpc_connection_closed(&self, reason: &'static str) {
        self.grpc_connections_closed
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A gRPC call refused before the access check, by reason.
    pub fn grpc_call_refused(&self, reason: &'static str) {
        self.grpc_calls_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// A gRPC connection took (`1`) or gave back (`-1`) its slot.
    pub fn grpc_connections_open_add(&self, by: i64) {
        self.grpc_connections_open.inc_by(by);
    }

    /// A gRPC call opened (`1`) or ended (`-1`).
    pub fn grpc_calls_in_flight_add(&self, by: i64) {
        self.grpc_calls_in_flight.inc_by(by);
    }

    /// A call answered from the request_id store, by RPC.
    pub fn idempotent_replay(&self, rpc: &'static str) {
        self.idempotent_replays
            .get_or_create(&RpcName { rpc })
            .inc();
    }

    /// The gauge of the request_id store's entries, for the store to keep.
    pub fn idempotency_entries(&self) -> Gauge {
        self.idempotency_entries.clone()
    }

    /// The shared request_id memory's metrics, for the store to keep.
    pub fn idempotency_store(&self) -> IdempotencyStoreMetrics {
        self.idempotency_store.clone()
    }

    /// Runs `refresh` before every render, until it returns false.
    pub fn on_render(&self, refresh: impl Fn() -> bool + Send + Sync + 'static) {
        self.refreshers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(refresh));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.refreshers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|refresh| refresh());
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.process);
        let _ = encode_eof(&mut out);
        out
    }
}

/// The shared request_id memory's error counter and gauge.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyStoreMetrics {
    errors: Family<ReasonLabels, Counter>,
    shared: Gauge,
}

impl IdempotencyStoreMetrics {
    /// A call to Redis failed, or found an entry it could not read.
    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Whether the memory is shared now.
    pub fn set_shared(&self, shared: bool) {
        self.shared.set(i64::from(shared));
    }
}

/// "100" to "599" as static strings, so counting a Graph answer allocates nothing.
fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (100..600u16).map(|s| s.to_string()).collect());
    status
        .checked_sub(100)
        .and_then(|i| labels.get(usize::from(i)))
        .map_or("other", String::as_str)
}

/// The canonical gRPC code name, as Prometheus label value.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
