//! The test collector (tests/common/otlp.rs) against the real OTLP exporter:
//! spans made by the SDK, exported over OTLP/gRPC and OTLP/HTTP protobuf,
//! come back with their names, ids, parents, attributes and resource; a
//! refusing collector fails the export and keeps nothing.

mod common;

use common::otlp::{OtlpReceiver, ReceivedSpan, Transport};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as WireKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as WireStatus;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cr3t-never-exported";

/// Keeps the SDK's finished spans, so the test exports them itself, in its
/// own runtime.
#[derive(Debug, Clone, Default)]
struct Finished(Arc<Mutex<Vec<SpanData>>>);

impl SpanProcessor for Finished {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().expect("lock").push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// A parent `GET /tasks` (server) with one child `graph call` (client),
/// both ended, as the SDK records them.
fn two_spans() -> Vec<SpanData> {
    let finished = Finished::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(finished.clone())
        .build();
    let tracer = provider.tracer("otlp-receiver-test");
    let parent = tracer
        .span_builder("GET /tasks")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("rpc.method", "GetTask"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("retried", true),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(parent);
    let mut child = tracer
        .span_builder("graph call")
        .with_kind(SpanKind::Client)
        .start_with_context(&tracer, &cx);
    child.set_attribute(KeyValue::new("graph.attempts", 2.5));
    child.set_status(Status::error("throttled"));
    child.end();
    cx.span().end();
    let spans = finished.0.lock().expect("lock").clone();
    assert_eq!(spans.len(), 2, "both spans ended");
    spans
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("graph-grpc-gateway-test")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build()
}

/// The OTLP/HTTP client for the exporter: the tests' reqwest.
#[derive(Debug)]
struct Reqwest(reqwest::Client);

#[tonic::async_trait]
impl opentelemetry_http::HttpClient for Reqwest {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut out = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            out = out.header(name, value);
        }
        Ok(out.body(answer.bytes().await?)?)
    }
}

fn grpc_exporter(receiver: &OtlpReceiver) -> opentelemetry_otlp::SpanExporter {
    grpc_exporter_within(receiver, WAIT)
}

fn grpc_exporter_within(
    receiver: &OtlpReceiver,
    timeout: Duration,
) -> opentelemetry_otlp::SpanExporter {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.grpc_endpoint())
        .with_timeout(timeout)
        .build()
        .expect("gRPC exporter");
    exporter.set_resource(&resource());
    exporter
}

fn http_exporter(receiver: &OtlpReceiver) -> opentelemetry_otlp::SpanExporter {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(Reqwest(reqwest::Client::new()))
        .with_endpoint(format!("{}/v1/traces", receiver.http_endpoint()))
        .with_timeout(WAIT)
        .build()
        .expect("HTTP exporter");
    exporter.set_resource(&resource());
    exporter
}

fn hex32(bytes: [u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex16(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The received spans are the SDK's, field by field.
fn assert_received(received: &[ReceivedSpan], sent: &[SpanData], transport: Transport) {
    assert_eq!(received.len(), 2, "{received:#?}");
    let by_name = |name: &str| {
        received
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} in {received:#?}"))
    };
    let sent_parent = sent
        .iter()
        .find(|s| s.name == "GET /tasks")
        .expect("parent");
    let sent_child = sent.iter().find(|s| s.name == "graph call").expect("child");
    let parent = by_name("GET /tasks");
    let child = by_name("graph call");

    for span in [parent, child] {
        assert_eq!(span.transport, transport);
        assert_eq!(span.scope, "otlp-receiver-test");
        assert_eq!(span.resource["service.name"], "graph-grpc-gateway-test");
        assert_eq!(span.resource["deployment.environment"], "test");
        assert_eq!(
            span.trace_id,
            hex32(sent_parent.span_context.trace_id().to_bytes())
        );
        assert_eq!(span.trace_id.len(), 32);
        assert!(span.start_unix_nanos > 0 && span.end_unix_nanos >= span.start_unix_nanos);
    }
    assert_eq!(
        parent.span_id,
        hex16(sent_parent.span_context.span_id().to_bytes())
    );
    assert_eq!(parent.parent_span_id, "", "a root span");
    assert_eq!(parent.kind, WireKind::Server);
    assert_eq!(parent.status, WireStatus::Unset);
    assert_eq!(parent.attributes["rpc.method"], "GetTask");
    assert_eq!(parent.attributes["http.response.status_code"], "200");
    assert_eq!(parent.attributes["retried"], "true");

    assert_eq!(
        child.span_id,
        hex16(sent_child.span_context.span_id().to_bytes())
    );
    assert_eq!(child.parent_span_id, parent.span_id);
    assert_eq!(child.kind, WireKind::Client);
    assert_eq!(child.status, WireStatus::Error);
    assert_eq!(child.status_message, "throttled");
    assert_eq!(child.attributes["graph.attempts"], "2.5");
}

#[tokio::test]
async fn spans_exported_over_grpc_are_received_as_sent() {
    let receiver = OtlpReceiver::start().await;
    let sent = two_spans();
    grpc_exporter(&receiver)
        .export(sent.clone())
        .await
        .expect("export accepted");

    let received = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    assert_received(&received, &sent, Transport::Grpc);
    assert_eq!(receiver.requests(), 1);
    let raw = receiver.raw_bytes();
    assert!(contains(&raw, b"GET /tasks") && contains(&raw, b"graph-grpc-gateway-test"));
    assert!(!contains(&raw, SECRET.as_bytes()));
}

#[tokio::test]
async fn spans_exported_over_http_protobuf_are_received_as_sent() {
    let receiver = OtlpReceiver::start().await;
    let sent = two_spans();
    http_exporter(&receiver)
        .export(sent.clone())
        .await
        .expect("export accepted");

    let received = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    assert_received(&received, &sent, Transport::Http);
    assert_eq!(receiver.requests(), 1);
    let raw = receiver.raw_bytes();
    assert!(contains(&raw, b"GET /tasks") && contains(&raw, b"graph-grpc-gateway-test"));
    assert!(!contains(&raw, SECRET.as_bytes()));
}

#[tokio::test]
async fn raw_bytes_show_a_value_that_was_exported() {
    let receiver = OtlpReceiver::start().await;
    let mut sent = two_spans();
    sent[0].attributes.push(KeyValue::new("token", SECRET));
    grpc_exporter(&receiver)
        .export(sent.clone())
        .await
        .expect("gRPC export");
    http_exporter(&receiver)
        .export(sent)
        .await
        .expect("HTTP export");

    let received = receiver.wait_for(|s| s.len() >= 4, WAIT).await;
    let raw = receiver.raw_bytes();
    assert_eq!(receiver.requests(), 2);
    assert_eq!(
        raw.windows(SECRET.len())
            .filter(|w| *w == SECRET.as_bytes())
            .count(),
        2,
        "once in each export"
    );
    let with_token: Vec<_> = received
        .iter()
        .filter(|s| s.attributes.contains_key("token"))
        .collect();
    assert_eq!(with_token.len(), 2, "{received:#?}");
}

#[tokio::test]
async fn a_refusing_collector_fails_exports_and_keeps_no_spans_until_it_accepts() {
    let receiver = OtlpReceiver::start_refusing().await;
    let grpc = grpc_exporter(&receiver);
    let http = http_exporter(&receiver);

    assert!(grpc.export(two_spans()).await.is_err(), "gRPC UNAVAILABLE");
    assert!(http.export(two_spans()).await.is_err(), "HTTP 503");
    receiver.wait_for_requests(2, WAIT).await;
    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    assert!(
        contains(&receiver.raw_bytes(), b"GET /tasks"),
        "refused exports were still sent"
    );

    receiver.set_refusing(false);
    grpc.export(two_spans()).await.expect("accepted again");
    let received = receiver.wait_for(|s| s.len() >= 2, WAIT).await;
    assert!(received.iter().all(|s| s.transport == Transport::Grpc));
}

#[tokio::test]
async fn a_slow_collector_holds_its_answer_back_past_the_exporter_timeout() {
    let receiver = OtlpReceiver::start().await;
    receiver.set_delay(Duration::from_secs(60));
    let grpc = grpc_exporter_within(&receiver, Duration::from_millis(500));

    // Received on arrival, but no answer came within the exporter's timeout.
    assert!(
        grpc.export(two_spans()).await.is_err(),
        "answered despite the delay"
    );
    receiver.wait_for(|s| s.len() >= 2, WAIT).await;

    receiver.set_delay(Duration::ZERO);
    grpc.export(two_spans())
        .await
        .expect("answered at once again");
}

#[tokio::test]
async fn an_http_body_that_is_not_protobuf_is_refused_and_keeps_nothing() {
    let receiver = OtlpReceiver::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/traces", receiver.http_endpoint());

    let json = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("answered");
    assert_eq!(json.status(), 415);
    let garbage = client
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .expect("answered");
    assert_eq!(garbage.status(), 400);
    assert_eq!(receiver.requests(), 2);
    assert!(receiver.spans().is_empty());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
