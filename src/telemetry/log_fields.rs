//! Span fields as JSON log lines show them: a span's own fields, without
//! the ones written for the trace exporter (`otel.*`, the `rpc.*`
//! attributes of OpenTelemetry's conventions, which the plain `rpc` field
//! already says, and `url.full`, which `GATEWAY_TRACE_URL_FULL` asks of
//! traces only), and added to cheaply.
//!
//! tracing-subscriber's JSON fields parse and re-serialize a span's fields
//! each time one is recorded; a server span records up to six after it
//! opens (request ids, trace ids, the status code). Here a recorded field
//! that log lines do not show costs nothing, and a new one is spliced in.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The JSON log layer's field formatter.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogFields;

/// Whether log lines show the field `name`.
fn shown(name: &str) -> bool {
    !(name.starts_with("otel.") || name.starts_with("rpc.") || name == "url.full")
}

/// Collects the shown fields as JSON values.
#[derive(Default)]
struct Collect(Map<String, Value>);

impl Collect {
    fn put(&mut self, field: &Field, value: Value) {
        if shown(field.name()) {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if shown(field.name()) {
            self.put(field, Value::from(format!("{value:?}")));
        }
    }
}

fn write_object(writer: &mut Writer<'_>, map: &Map<String, Value>) -> fmt::Result {
    let text = serde_json::to_string(map).map_err(|_| fmt::Error)?;
    writer.write_str(&text)
}

impl<'w> FormatFields<'w> for LogFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut collect = Collect::default();
        fields.record(&mut collect);
        write_object(&mut writer, &collect.0)
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut collect = Collect::default();
        fields.record(&mut collect);
        if collect.0.is_empty() {
            return Ok(());
        }
        let text = current.fields.as_str();
        let fresh = collect
            .0
            .keys()
            .all(|key| !text.contains(&format!("\"{key}\":")));
        match text.strip_suffix('}') {
            // Fields not there yet: spliced in before the closing brace.
            Some(open) if fresh => {
                let added = serde_json::to_string(&collect.0).map_err(|_| fmt::Error)?;
                let mut out = String::with_capacity(text.len() + added.len());
                out.push_str(open);
                if open.len() > 1 {
                    out.push(',');
                }
                out.push_str(&added[1..]);
                current.fields = out;
            }
            // A field recorded again (or text that is not an object):
            // merged the slow way, the later value winning.
            _ => {
                let mut map: Map<String, Value> = serde_json::from_str(text).unwrap_or_default();
                map.extend(collect.0);
                current.fields = serde_json::to_string(&map).map_err(|_| fmt::Error)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::LogFields;
    use crate::telemetry::tests::Lines;

    /// The `span` object of the one JSON line `run` logs.
    fn span_of(run: impl FnOnce()) -> serde_json::Value {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(LogFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(lines.0.lock().expect("not poisoned").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect(&text);
        line["span"].clone()
    }

    #[test]
    fn exporter_fields_stay_out_and_recorded_fields_come_in() {
        let span = span_of(|| {
            let span = tracing::info_span!(
                "rpc",
                otel.name = "svc/Method",
                rpc.system = "grpc",
                rpc.grpc.status_code = tracing::field::Empty,
                rpc = "Method",
                client_request_id = tracing::field::Empty,
                request_id = tracing::field::Empty,
                trace_id = tracing::field::Empty,
            );
            span.record("client_request_id", "c-1");
            span.record("rpc.grpc.status_code", 0);
            span.record("trace_id", "0af7651916cd43dd8448eb211c80319c");
            span.record("request_id", "quote\"d");
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(
            span,
            serde_json::json!({
                "name": "rpc",
                "rpc": "Method",
                "client_request_id": "c-1",
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
                "request_id": "quote\"d",
            })
        );
    }

    #[test]
    fn the_full_url_of_an_attempt_stays_out_and_its_template_comes_in() {
        let span = span_of(|| {
            let span = tracing::info_span!(
                "graph request",
                url.template = tracing::field::Empty,
                url.full = tracing::field::Empty,
            );
            span.record("url.template", "/beta/tasks/{id}");
            span.record("url.full", "https://graph.example/beta/tasks/5d630f12");
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(
            span,
            serde_json::json!({"name": "graph request", "url.template": "/beta/tasks/{id}"})
        );
    }

    #[test]
    fn a_field_recorded_twice_keeps_its_last_value() {
        let span = span_of(|| {
            let span = tracing::info_span!("rpc", request_id = tracing::field::Empty);
            span.record("request_id", "first");
            span.record("request_id", "second");
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(
            span,
            serde_json::json!({"name": "rpc", "request_id": "second"})
        );
    }

    #[test]
    fn a_span_without_fields_then_one() {
        let span = span_of(|| {
            let span = tracing::info_span!("step", n = tracing::field::Empty);
            span.record("n", 3);
            span.in_scope(|| tracing::info!("inside"));
        });
        assert_eq!(span, serde_json::json!({"name": "step", "n": 3}));
    }
}
