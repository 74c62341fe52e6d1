//! The trace layer: the gateway's own `tracing` spans recorded as
//! OpenTelemetry spans ([`Record`]) and handed to the export queue when
//! they close.
//!
//! It follows the field conventions OpenTelemetry's `tracing` bridge
//! established: `otel.name` names the span, `otel.kind` gives its kind,
//! `otel.status_code = "ERROR"` marks it failed, and every other field is
//! an attribute (the log-only `trace_id` and `span_id` fields, which
//! repeat the span's own ids, excepted). A trace starts at a call's server
//! span: the sampler decides, in the caller's W3C context, before the span
//! is opened ([`decide`]); a sampled call's server span is opened with the
//! decision ([`open_root`]), and only spans under a recorded span are
//! recorded (the [`super::Exported`] filter does not even let the others
//! be made). A call that is not sampled has no span for the trace layer.
//!
//! Why not the bridge itself: it builds an SDK span builder per span with
//! owned attribute values, starts an SDK span at its end, and its exporter
//! converts each span again into protobuf messages; at full sampling that
//! was most of a call's added CPU (see PERFORMANCE.md, "Tracing"). A
//! record here holds its attributes and their text in itself (the span's
//! one allocation is the registry's box for it), and the exporter writes
//! the protobuf straight from it.

use super::otlp::{Kind, Name, Range, Record, Value};
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use std::cell::Cell;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Values};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where ended spans go.
pub trait Sink: Send + Sync + 'static {
    /// `span` has ended; it is dropped when this returns.
    fn push(&self, span: &Record);
}

/// The layer, installed with the [`super::Exported`] filter.
pub struct SpanLayer {
    sink: Arc<dyn Sink>,
}

/// What the process samples with, and how it makes ids: one of each, as
/// there is one trace layer.
struct Tracer {
    sampler: Sampler,
    ids: RandomIdGenerator,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();

fn tracer() -> &'static Tracer {
    TRACER.get_or_init(|| Tracer {
        sampler: Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        ids: RandomIdGenerator::default(),
    })
}

impl SpanLayer {
    /// The layer, sampling with `sampler` (the first layer's sampler is
    /// the process's).
    pub fn new(sampler: Sampler, sink: Arc<dyn Sink>) -> Self {
        let _ = TRACER.set(Tracer {
            sampler,
            ids: RandomIdGenerator::default(),
        });
        Self { sink }
    }
}

/// A span's record while it is open.
struct Open(Record);

/// Whether a span (by its extensions) is being recorded: the filter lets
/// a span be made under such a span only.
pub fn recording(extensions: &tracing_subscriber::registry::Extensions<'_>) -> bool {
    extensions.get::<Open>().is_some()
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ids = &tracer().ids;
        let start = now_unix_nanos();
        let name = attrs.metadata().name();
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<Open>()
                .map(|o| (o.0.trace_id, o.0.span_id))
        });
        let mut record = match parent {
            Some((trace_id, parent_id)) => {
                let mut r = Record::new(trace_id, ids.new_span_id().to_bytes(), name, start);
                r.parent_span_id = Some(parent_id);
                r
            }
            None => {
                // A server span, opened with its decision ([`open_root`]);
                // without one, a new trace, sampled here.
                let root = ROOT
                    .with(Cell::take)
                    .unwrap_or_else(|| decide(&opentelemetry::Context::new()));
                if !root.ids.sampled {
                    return;
                }
                let mut r = Record::new(
                    root.ids.trace_id.to_bytes(),
                    root.ids.span_id.to_bytes(),
                    name,
                    start,
                );
                r.parent_span_id = root.parent;
                r.parent_remote = root.remote;
                r.trace_state = root.trace_state;
                r
            }
        };
        attrs.record(&mut Fields(&mut record));
        span.extensions_mut().insert(Open(record));
    }

    fn on_record(&self, id: &Id, values: &Values<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<Open>() {
            values.record(&mut Fields(&mut open.0));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        // The record is handed over where it is: the registry drops it
        // with the span.
        let mut extensions = span.extensions_mut();
        if let Some(Open(record)) = extensions.get_mut::<Open>() {
            record.end_unix_nanos = now_unix_nanos().max(record.start_unix_nanos);
            self.sink.push(record);
        }
    }
}

/// The ids a span has in its trace, for log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub trace_id: TraceId,
    pub span_id: opentelemetry::trace::SpanId,
    pub sampled: bool,
}

thread_local! {
    /// The decision for the server span about to be opened on this thread.
    static ROOT: Cell<Option<Root>> = const { Cell::new(None) };
}

/// A call's trace, decided before its server span is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub ids: Ids,
    parent: Option<[u8; 8]>,
    remote: bool,
    trace_state: String,
}

/// A call's trace: the caller's (when `parent` holds a valid span
/// context) or a new one, and whether the sampler keeps it.
pub fn decide(parent: &opentelemetry::Context) -> Root {
    let tracer = tracer();
    let caller = parent.span().span_context().clone();
    let caller = caller.is_valid().then_some(caller);
    let trace_id = caller
        .as_ref()
        .map_or_else(|| tracer.ids.new_trace_id(), |sc| sc.trace_id());
    let result = tracer.sampler.should_sample(
        caller.as_ref().map(|_| parent),
        trace_id,
        "rpc",
        &SpanKind::Server,
        &[],
        &[],
    );
    Root {
        ids: Ids {
            trace_id,
            span_id: tracer.ids.new_span_id(),
            sampled: result.decision == SamplingDecision::RecordAndSample,
        },
        parent: caller.as_ref().map(|sc| sc.span_id().to_bytes()),
        remote: caller.as_ref().is_some_and(|sc| sc.is_remote()),
        trace_state: result.trace_state.header(),
    }
}

/// Opens a sampled call's server span with `open`, the trace and ids
/// `root` decided.
pub fn open_root(root: Root, open: impl FnOnce() -> tracing::Span) -> tracing::Span {
    ROOT.with(|r| r.set(Some(root)));
    let span = open();
    // Not taken when the layer did not see the span open.
    ROOT.with(Cell::take);
    span
}

/// Writes a span's fields into its record.
struct Fields<'a>(&'a mut Record);

impl Fields<'_> {
    /// A text value kept at `range` of the record's text.
    fn text(&mut self, field: &Field, range: Range) {
        let record = &mut *self.0;
        match field.name() {
            "otel.name" => record.name = Name::Text(range),
            "otel.kind" => {
                if let Some(kind) = Kind::parse(record.str(range)) {
                    record.kind = kind;
                }
            }
            "otel.status_code" => record.error = record.str(range).eq_ignore_ascii_case("error"),
            "trace_id" | "span_id" => {}
            name => record.set(name, Value::Text(range)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let range = self.0.keep(value);
        self.text(field, range);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "trace_id" | "span_id") {
            return;
        }
        let range = self.0.keep_with(|s| {
            let _ = write!(s, "{value:?}");
        });
        self.text(field, range);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), Value::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(
            field.name(),
            Value::Int(i64::try_from(value).unwrap_or(i64::MAX)),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), Value::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), Value::Float(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Default)]
    struct Kept(Mutex<Vec<Record>>);

    impl Sink for Kept {
        fn push(&self, span: &Record) {
            self.0.lock().expect("not poisoned").push(span.clone());
        }
    }

    fn recorded(f: impl FnOnce()) -> Vec<Record> {
        let kept = Arc::new(Kept::default());
        let layer = SpanLayer::new(
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            kept.clone(),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let spans = std::mem::take(&mut *kept.0.lock().expect("not poisoned"));
        spans
    }

    #[test]
    fn fields_become_attributes_and_otel_fields_name_kind_and_status() {
        let spans = recorded(|| {
            let span = tracing::info_span!(
                "rpc",
                otel.name = %format_args!("svc/{}", "Method"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.grpc.status_code = tracing::field::Empty,
                attempt = 2u64,
                cache_hit = true,
                trace_id = "not an attribute",
            );
            span.record("rpc.grpc.status_code", 14i64);
            span.record("otel.status_code", "ERROR");
            let _enter = span.enter();
            tracing::info_span!("access").in_scope(|| {});
        });
        assert_eq!(spans.len(), 2, "{spans:?}");
        let (access, server) = (&spans[0], &spans[1]);
        assert_eq!(server.name(), "svc/Method");
        assert_eq!(server.kind, Kind::Server);
        assert!(server.error);
        assert_eq!(server.attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            server.attribute("rpc.grpc.status_code").as_deref(),
            Some("14")
        );
        assert_eq!(server.attribute("attempt").as_deref(), Some("2"));
        assert_eq!(server.attribute("cache_hit").as_deref(), Some("true"));
        assert_eq!(server.attribute("trace_id"), None);
        assert_eq!(server.attribute("otel.name"), None);
        assert!(server.parent_span_id.is_none(), "a new trace");
        assert_eq!(access.name(), "access");
        assert_eq!(access.kind, Kind::Internal);
        assert_eq!(access.trace_id, server.trace_id);
        assert_eq!(access.parent_span_id, Some(server.span_id));
        assert_ne!(access.span_id, server.span_id);
        assert!(access.start_unix_nanos >= server.start_unix_nanos);
        assert!(access.end_unix_nanos <= server.end_unix_nanos);
    }

    #[test]
    fn a_callers_context_is_the_parent_and_its_decision_is_followed() {
        use opentelemetry::propagation::TextMapPropagator;
        use opentelemetry_sdk::propagation::TraceContextPropagator;
        let context = |flags: &str| {
            let mut carrier = std::collections::HashMap::new();
            carrier.insert(
                "traceparent".to_owned(),
                format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"),
            );
            carrier.insert("tracestate".to_owned(), "caller=1".to_owned());
            TraceContextPropagator::new().extract(&carrier)
        };
        let mut ids = Vec::new();
        let spans = recorded(|| {
            for flags in ["01", "00"] {
                let root = decide(&context(flags));
                ids.push(root.ids);
                if root.ids.sampled {
                    let span = open_root(root, || tracing::info_span!("rpc"));
                    let _enter = span.enter();
                    tracing::info_span!("child").in_scope(|| {});
                }
            }
        });
        assert!(ids[0].sampled && !ids[1].sampled, "{ids:?}");
        assert_eq!(
            ids[1].trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "an unsampled call still has the caller's trace id for its logs"
        );
        // Only the sampled call's two spans.
        assert_eq!(spans.len(), 2, "{spans:?}");
        let server = spans.iter().find(|s| s.name() == "rpc").expect("server");
        assert_eq!(
            TraceId::from_bytes(server.trace_id).to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            server.parent_span_id,
            Some(0x00f0_67aa_0ba9_02b7u64.to_be_bytes())
        );
        assert!(server.parent_remote);
        assert_eq!(server.trace_state, "caller=1");
        assert_eq!(ids[0].span_id.to_bytes(), server.span_id);
    }
}
