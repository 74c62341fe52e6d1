//! The trace layer: the gateway's own `tracing` spans recorded as
//! OpenTelemetry spans ([`Record`]) and handed to the export queue when
//! they close.
//!
//! It follows the field conventions OpenTelemetry's `tracing` bridge
//! established: `otel.name` names the span, `otel.kind` gives its kind,
//! `otel.status_code = "ERROR"` marks it failed, and every other field is
//! an attribute (the log-only `trace_id` and `span_id` fields, which
//! repeat the span's own ids, excepted). A span with no gateway span above
//! it starts a trace; the server span of a call takes the caller's W3C
//! context as its parent ([`set_parent`]), and the sampler decides there.
//!
//! Why not the bridge itself: it builds an SDK span builder per span with
//! owned attribute values, starts an SDK span at its end, and its exporter
//! converts each span again into protobuf messages; at full sampling that
//! was most of a call's added CPU (see PERFORMANCE.md, "Tracing"). A
//! record here is one allocation for its text and one for its attributes,
//! and the exporter writes the protobuf straight from it.

use super::otlp::{Kind, Name, Range, Record, Value};
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample,
};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Values};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Where ended spans go.
pub trait Sink: Send + Sync + 'static {
    fn push(&self, span: Record);
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

/// Marks a span whose trace is not sampled: it and its children are not
/// exported (the filter does not even pass the children on).
pub struct Unsampled;

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether the sampler keeps a trace whose parent is `parent` (`None`: a
/// new trace), and the trace state it gives the span.
fn sample(
    parent: Option<&opentelemetry::Context>,
    trace_id: TraceId,
    name: &str,
) -> (bool, String) {
    let result =
        tracer()
            .sampler
            .should_sample(parent, trace_id, name, &SpanKind::Server, &[], &[]);
    let kept = result.decision == SamplingDecision::RecordAndSample;
    (kept, result.trace_state.header())
}

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ids = &tracer().ids;
        let parent = match span.parent() {
            None => None,
            Some(p) => {
                let theirs = p.extensions();
                if theirs.get::<Unsampled>().is_some() {
                    drop(theirs);
                    span.extensions_mut().insert(Unsampled);
                    return;
                }
                theirs.get::<Open>().map(|o| (o.0.trace_id, o.0.span_id))
            }
        };
        let start = now_unix_nanos();
        let name = attrs.metadata().name();
        let mut record = match parent {
            Some((trace_id, parent_id)) => {
                let mut r = Record::new(trace_id, ids.new_span_id().to_bytes(), name, start);
                r.parent_span_id = Some(parent_id);
                r
            }
            None => Record::new(
                ids.new_trace_id().to_bytes(),
                ids.new_span_id().to_bytes(),
                name,
                start,
            ),
        };
        attrs.record(&mut Fields(&mut record));
        let mut extensions = span.extensions_mut();
        if parent.is_none() {
            let (kept, state) = sample(None, TraceId::from_bytes(record.trace_id), name);
            record.trace_state = state;
            if !kept {
                extensions.insert(Unsampled);
            }
        }
        extensions.insert(Open(record));
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
        let mut extensions = span.extensions_mut();
        if extensions.get_mut::<Unsampled>().is_some() {
            return;
        }
        if let Some(Open(mut record)) = extensions.remove::<Open>() {
            drop(extensions);
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

/// Makes `parent` (the caller's W3C context, when it sent one) the parent
/// of `span`, a span with no gateway span above it, and samples its trace
/// again with it: a caller's trace id and decision are followed as the
/// sampler says. The span's ids, when it is recorded.
pub fn set_parent(span: &tracing::Span, parent: &opentelemetry::Context) -> Option<Ids> {
    let remote = parent.span().span_context().clone();
    let mut ids = None;
    span.with_subscriber(|(id, dispatch)| {
        let Some(span) = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .and_then(|registry| registry.span(id))
        else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(Open(record)) = extensions.get_mut::<Open>() else {
            return;
        };
        let name = span.name();
        let (kept, state) = if remote.is_valid() {
            record.trace_id = remote.trace_id().to_bytes();
            record.parent_span_id = Some(remote.span_id().to_bytes());
            record.parent_remote = remote.is_remote();
            sample(Some(parent), remote.trace_id(), name)
        } else {
            sample(None, TraceId::from_bytes(record.trace_id), name)
        };
        record.trace_state = state;
        ids = Some(Ids {
            trace_id: TraceId::from_bytes(record.trace_id),
            span_id: opentelemetry::trace::SpanId::from_bytes(record.span_id),
            sampled: kept,
        });
        if kept {
            extensions.remove::<Unsampled>();
        } else if extensions.get_mut::<Unsampled>().is_none() {
            extensions.insert(Unsampled);
        }
    });
    ids
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
        fn push(&self, span: Record) {
            self.0.lock().expect("not poisoned").push(span);
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
                let span = tracing::info_span!("rpc");
                ids.push(set_parent(&span, &context(flags)).expect("recorded"));
                let _enter = span.enter();
                tracing::info_span!("child").in_scope(|| {});
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
