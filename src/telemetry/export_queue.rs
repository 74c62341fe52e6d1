//! The span processor: ended spans go into a bounded queue in memory, and
//! one thread, with a small runtime of its own, exports them in batches.
//!
//! A span's end costs a lock and a push: the export thread is woken only
//! when the queue gets its first span or a full batch, not once per span
//! (a wake-up per span, through a channel, cost more CPU per call than the
//! span itself). A slow or dead collector fills the queue; spans that find
//! it full are dropped and counted, and no call waits for the collector.

use super::otel::{TraceSettings, Transport, SPANS};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Spans held for export at most; more are dropped.
pub const QUEUE_SPANS: usize = 2048;
/// Spans sent in one export at most.
const BATCH_SPANS: usize = 512;
/// How long a span waits for others to share its export.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// How long one export may take before its spans count as failed.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the calls hand the export thread.
#[derive(Debug, Default)]
struct Pending {
    spans: Vec<SpanData>,
    /// When the oldest queued span came.
    since: Option<Instant>,
    resource: Option<Resource>,
    /// Callers waiting for everything queued to be exported.
    flushes: Vec<mpsc::Sender<()>>,
    /// The processor is gone: export what is left and stop.
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The span processor the tracer provider is built with.
#[derive(Debug)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    pub fn start(settings: TraceSettings) -> Self {
        let shared = Arc::new(Shared::default());
        let theirs = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("trace-export".into())
            .spawn(move || export_loop(&settings, &theirs));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the trace exporter; spans will be dropped");
            shared.lock().closed = true;
        }
        Self { shared }
    }

    fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let (ack, done) = mpsc::channel();
        {
            let mut pending = self.shared.lock();
            if pending.closed {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            pending.flushes.push(ack);
        }
        self.shared.wake.notify_one();
        done.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let queued = {
            let mut pending = self.shared.lock();
            if pending.closed || pending.spans.len() >= QUEUE_SPANS {
                None
            } else {
                pending.spans.push(span);
                pending.since.get_or_insert_with(Instant::now);
                Some(pending.spans.len())
            }
        };
        match queued {
            None => SPANS.dropped("queue_full", 1),
            // The thread sleeps while the queue is empty, and until a batch
            // is due otherwise: only these two need it awake.
            Some(1 | BATCH_SPANS) => self.shared.wake.notify_one(),
            Some(_) => {}
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush(EXPORT_TIMEOUT)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.flush(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.lock().resource = Some(resource.clone());
        self.shared.wake.notify_one();
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// What the export thread takes from the queue in one go.
struct Taken {
    spans: Vec<SpanData>,
    resource: Option<Resource>,
    flushes: Vec<mpsc::Sender<()>>,
    closed: bool,
}

/// Waits until a batch is full, the oldest span has waited
/// [`BATCH_DELAY`], someone asks for a flush, or the processor is gone;
/// then takes what is there.
fn take(shared: &Shared) -> Taken {
    let mut pending = shared.lock();
    loop {
        let due = pending.since.map(|at| at + BATCH_DELAY);
        let now = Instant::now();
        if pending.closed
            || !pending.flushes.is_empty()
            || pending.resource.is_some()
            || pending.spans.len() >= BATCH_SPANS
            || due.is_some_and(|due| due <= now)
        {
            break;
        }
        pending = match due {
            None => shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner()),
            Some(due) => {
                shared
                    .wake
                    .wait_timeout(pending, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
    pending.since = None;
    Taken {
        spans: std::mem::take(&mut pending.spans),
        resource: pending.resource.take(),
        flushes: std::mem::take(&mut pending.flushes),
        closed: pending.closed,
    }
}

/// The export thread: a current-thread runtime of its own (the OTLP
/// clients need one), batches of up to [`BATCH_SPANS`].
fn export_loop(settings: &TraceSettings, shared: &Shared) {
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            let exporter = rt.block_on(async { exporter(settings) });
            exporter.map(|e| (rt, e)).map_err(|e| e.to_string())
        });
    let (runtime, mut exporter) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the trace exporter; spans will be dropped");
            let mut pending = shared.lock();
            pending.closed = true;
            let lost = std::mem::take(&mut pending.spans).len();
            SPANS.dropped("export_failed", lost as u64);
            return;
        }
    };
    loop {
        let taken = take(shared);
        if let Some(resource) = &taken.resource {
            exporter.set_resource(resource);
        }
        let mut spans = taken.spans;
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(BATCH_SPANS));
            export(&runtime, &exporter, std::mem::replace(&mut spans, rest));
        }
        for ack in taken.flushes {
            let _ = ack.send(());
        }
        if taken.closed {
            // Flushes that came after the last take are answered by the
            // dropped sender: their `recv` fails at once.
            return;
        }
    }
}

fn export(runtime: &tokio::runtime::Runtime, exporter: &Exporter, spans: Vec<SpanData>) {
    let n = spans.len() as u64;
    let result = runtime
        .block_on(async { tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(spans)).await });
    match result {
        Ok(Ok(())) => {
            SPANS.exported.inc_by(n);
        }
        Ok(Err(e)) => {
            SPANS.dropped("export_failed", n);
            tracing::debug!(error = %e, spans = n, "the trace collector refused an export");
        }
        Err(_) => {
            SPANS.dropped("export_failed", n);
            tracing::debug!(spans = n, "an export to the trace collector timed out");
        }
    }
}

type Exporter = opentelemetry_otlp::SpanExporter;

fn exporter(settings: &TraceSettings) -> Result<Exporter, opentelemetry_otlp::ExporterBuildError> {
    let url = settings.export_url();
    match settings.transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
        Transport::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(HttpClient::default())
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build(),
    }
}

/// The OTLP/HTTP exporter's client: the gateway's own reqwest.
#[derive(Debug, Clone)]
struct HttpClient(reqwest::Client);

impl Default for HttpClient {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self(client)
    }
}

#[tonic::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .0
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?;
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}
