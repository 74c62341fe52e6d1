//! The `tracing` scenario's OTLP collector: a real OTLP/gRPC trace service
//! on loopback that decodes every export and counts its spans by the
//! `service.name` of their resource, so each gateway of the scenario (told
//! apart by `OTEL_SERVICE_NAME`) has its own count. It keeps nothing else:
//! what it costs the machine is one decode per export.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Spans received, by service name.
type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// The collector, serving until dropped.
pub struct OtlpSink {
    counts: Counts,
    endpoint: String,
    server: JoinHandle<()>,
}

impl OtlpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let counts = Counts::default();
        let service = TraceServiceServer::new(Sink(counts.clone()));
        let server = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
            if let Err(e) = served {
                eprintln!("the OTLP sink stopped: {e}");
            }
        });
        Ok(Self {
            counts,
            endpoint,
            server,
        })
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for a gateway exporting here.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Spans received so far from `service`.
    pub fn spans(&self, service: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(service).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Sink(Counts);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut by_service: BTreeMap<String, u64> = BTreeMap::new();
        for resource_spans in &request.get_ref().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            let spans: usize = resource_spans
                .scope_spans
                .iter()
                .map(|s| s.spans.len())
                .sum();
            *by_service.entry(service).or_default() += spans as u64;
        }
        let mut counts = self
            .0
            .lock()
            .map_err(|_| tonic::Status::internal("span counts poisoned"))?;
        for (service, n) in by_service {
            *counts.entry(service).or_default() += n;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
