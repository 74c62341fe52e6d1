//! A real OTLP trace collector on loopback, one per test: OTLP/gRPC (tonic)
//! and OTLP/HTTP protobuf (axum, `POST /v1/traces`) on free ports, keeping
//! every export it receives, so tests prove what the gateway's exporter put
//! on the wire (and what it never did) rather than what it meant to send.
//!
//! It can also play a dead collector (every export refused: gRPC
//! `UNAVAILABLE`, HTTP 503) or a slow one (every answer held back), for the
//! exporter's resilience. Tests wait on what was received through a watch
//! channel signalled on each export, against a deadline.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode as SpanStatus};
use prost::Message;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The media type of OTLP/HTTP protobuf bodies.
const PROTOBUF: &str = "application/x-protobuf";

/// How an export reached the collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// One span as the collector received it, flattened out of its resource
/// and scope.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub name: String,
    pub kind: SpanKind,
    /// Lowercase hex, 32 digits.
    pub trace_id: String,
    /// Lowercase hex, 16 digits.
    pub span_id: String,
    /// Lowercase hex; empty for a root span.
    pub parent_span_id: String,
    /// Every value as text: strings as they are, numbers and booleans by
    /// `to_string`, anything else by `Debug`.
    pub attributes: BTreeMap<String, String>,
    /// `Unset` when the span carries no status.
    pub status: SpanStatus,
    pub status_message: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// The attributes of the resource the span came under (`service.name`…).
    pub resource: BTreeMap<String, String>,
    /// The instrumentation scope's name.
    pub scope: String,
    pub transport: Transport,
}

/// What the collector has received so far.
#[derive(Default)]
struct Received {
    /// Spans of the exports it accepted.
    spans: Vec<ReceivedSpan>,
    /// Every body (HTTP) or message re-encoded (gRPC), accepted or not.
    raw: Vec<u8>,
    /// Exports received, accepted or not.
    requests: usize,
}

struct Shared {
    received: watch::Sender<Received>,
    refusing: AtomicBool,
    delay: Mutex<Duration>,
}

impl Shared {
    /// Records one export (`request` is `None` when its body did not
    /// decode) and says whether it is accepted.
    fn receive(
        &self,
        raw: &[u8],
        request: Option<ExportTraceServiceRequest>,
        transport: Transport,
    ) -> bool {
        let accepted = !self.refusing.load(Ordering::SeqCst) && request.is_some();
        self.received.send_modify(|r| {
            r.requests += 1;
            r.raw.extend_from_slice(raw);
            if let (true, Some(request)) = (accepted, request) {
                r.spans.extend(flatten(request, transport));
            }
        });
        accepted
    }

    /// Holds the answer back by the delay set with
    /// [`OtlpReceiver::set_delay`]: the collector's own slowness.
    async fn answer_late(&self) {
        let delay = *self.delay.lock().expect("delay lock");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

/// A collector serving OTLP/gRPC and OTLP/HTTP on loopback until dropped.
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    servers: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// A collector that accepts every export, answering at once.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared {
            received: watch::Sender::new(Received::default()),
            refusing: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
        });

        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("grpc bind");
        let grpc_addr = grpc.local_addr().expect("grpc addr");
        let service = TraceServiceServer::new(Grpc(shared.clone()));
        let grpc_server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(grpc))
                .await
                .expect("OTLP/gRPC server");
        });

        let http = TcpListener::bind("127.0.0.1:0").await.expect("http bind");
        let http_addr = http.local_addr().expect("http addr");
        let router = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export_http))
            .with_state(shared.clone());
        let http_server = tokio::spawn(async move {
            axum::serve(http, router).await.expect("OTLP/HTTP server");
        });

        Self {
            shared,
            grpc_addr,
            http_addr,
            servers: vec![grpc_server, http_server],
        }
    }

    /// A dead collector: listening, but answering every export with gRPC
    /// `UNAVAILABLE` or HTTP 503 (see [`Self::set_refusing`]).
    pub async fn start_refusing() -> Self {
        let receiver = Self::start().await;
        receiver.set_refusing(true);
        receiver
    }

    /// Refuse (or accept again) every export from now on. Refused exports
    /// count in [`Self::requests`] and [`Self::raw_bytes`], since they were
    /// sent, but their spans are not in [`Self::spans`].
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Hold every answer back by `delay` from now on (zero: answer at
    /// once). An export is recorded when it arrives, before the wait.
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("delay lock") = delay;
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The OTLP/HTTP base, `http://127.0.0.1:PORT`: as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, exporters post to `<base>/v1/traces`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every span of every accepted export so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.received.borrow().spans.clone()
    }

    /// Everything exported so far, concatenated: HTTP bodies as received,
    /// gRPC messages re-encoded. For proving a secret was never exported.
    pub fn raw_bytes(&self) -> Vec<u8> {
        self.shared.received.borrow().raw.clone()
    }

    /// Exports received so far, accepted or refused.
    pub fn requests(&self) -> usize {
        self.shared.received.borrow().requests
    }

    /// The spans once `what` holds for them, checked now and after each
    /// export. Panics with the spans seen so far when `timeout` passes
    /// first.
    pub async fn wait_for(
        &self,
        what: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedSpan> {
        let mut rx = self.shared.received.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|r| what(&r.spans))).await;
        match waited {
            Ok(received) => received.expect("the sender lives in self").spans.clone(),
            Err(_) => panic!(
                "the collector did not receive the expected spans within {timeout:?}; \
                 {} exports, spans: {:#?}",
                self.requests(),
                self.spans()
            ),
        }
    }

    /// Once at least `n` exports arrived, accepted or refused. Panics when
    /// `timeout` passes first.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let mut rx = self.shared.received.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|r| r.requests >= n)).await;
        if waited.is_err() {
            panic!(
                "the collector received {} exports within {timeout:?}, not {n}",
                self.requests()
            );
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// The OTLP/gRPC trace service.
struct Grpc(Arc<Shared>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let accepted = self
            .0
            .receive(&request.encode_to_vec(), Some(request), Transport::Grpc);
        self.0.answer_late().await;
        if accepted {
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        } else {
            Err(tonic::Status::unavailable("collector refusing exports"))
        }
    }
}

/// `POST /v1/traces`: OTLP/HTTP with a protobuf body.
async fn export_http(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROTOBUF));
    let request = if protobuf {
        ExportTraceServiceRequest::decode(body.as_ref()).ok()
    } else {
        None
    };
    let decoded = request.is_some();
    let accepted = shared.receive(&body, request, Transport::Http);
    shared.answer_late().await;
    if accepted {
        let answer = ExportTraceServiceResponse::default().encode_to_vec();
        ([(header::CONTENT_TYPE, PROTOBUF)], answer).into_response()
    } else if !protobuf {
        StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response()
    } else if !decoded {
        StatusCode::BAD_REQUEST.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

/// The spans of an export, each with its resource and scope.
fn flatten(request: ExportTraceServiceRequest, transport: Transport) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = attributes(
            &resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default(),
        );
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                out.push(ReceivedSpan {
                    name: span.name,
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    status: SpanStatus::try_from(status.code).unwrap_or(SpanStatus::Unset),
                    status_message: status.message,
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    resource: resource.clone(),
                    scope: scope.clone(),
                    transport,
                });
            }
        }
    }
    out
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                None => String::new(),
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
