//! Prometheus metrics, served as text on the admin port's `/metrics`.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::{counter::Counter, family::Family, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

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
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnumLabels {
    graph_type: &'static str,
}

/// The gateway's metrics. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    rpc_calls: Family<RpcLabels, Counter>,
    rpc_seconds: Family<RpcName, Histogram>,
    graph_requests: Family<GraphLabels, Counter>,
    unknown_enum_values: Family<EnumLabels, Counter>,
}

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
        Self {
            registry,
            rpc_calls,
            rpc_seconds,
            graph_requests,
            unknown_enum_values,
        }
    }
}

impl Metrics {
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

    /// Records one Graph request; `status` is `None` when no answer came.
    pub fn graph_request(&self, method: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
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
