//! Structured logs with `tracing`: JSON lines or human-readable, by flag;
//! and, when an OTLP endpoint is set, the gateway's spans exported as
//! OpenTelemetry traces ([`otel`]).

mod batch;
mod collector;
mod export_queue;
mod log_fields;
pub mod otel;
pub mod otlp;
pub mod spans;
mod unentered;

use crate::cli::{LogArgs, LogFormat};
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{Directive, ParseError};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Writes the log lines still gathered, and exports the spans still
/// queued, when dropped: keep it until exit.
pub struct LogGuard(
    #[allow(dead_code)] Option<batch::Guard>,
    #[allow(dead_code)] Option<otel::TraceGuard>,
);

/// The spans exported as traces: the gateway's own, not its libraries'
/// (tonic, hyper, h2), and spans only: a log event is never a span event,
/// so no log text reaches the collector. A sampled call's server span
/// (a span with an `rpc.system` field, opened only for a sampled call),
/// and spans under a recorded span; no other: a call that is not sampled
/// opens a log-only span instead, and nothing under it is made for the
/// trace layer.
struct Exported;

fn exported(meta: &tracing::Metadata<'_>) -> bool {
    meta.is_span() && meta.target().starts_with(env!("CARGO_CRATE_NAME"))
}

fn server_span(meta: &tracing::Metadata<'_>) -> bool {
    meta.fields().field("rpc.system").is_some()
}

impl<S> Filter<S> for Exported
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: &Context<'_, S>) -> bool {
        // The context sees the spans this layer sees: the nearest one is
        // the server span or one under it.
        exported(meta)
            && (server_span(meta)
                || cx
                    .lookup_current()
                    .is_some_and(|parent| spans::recording(&parent.extensions())))
    }

    fn callsite_enabled(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if exported(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
}

/// Installs the global subscriber; a second call (as in tests) is a no-op.
///
/// Lines are formatted on the calling thread and gathered in memory; a
/// writer thread writes them to stderr in one system call per interval (see
/// [`batch`]). An audit record per update cost about 7 µs of CPU with a write
/// each, and a wake-up of the writer per line added about 20 µs of latency at
/// one call in flight; see PERFORMANCE.md. No line is dropped: when the
/// buffer is full, logging waits.
pub fn init(args: &LogArgs, trace: Option<&otel::TraceSettings>) -> LogGuard {
    let (filter, refused) = match filter(&args.log) {
        Ok(filter) => (filter, None),
        Err(e) => (
            // `info` and the audit directive always parse (the tests say so).
            filter("info").unwrap_or_else(|_| EnvFilter::new("info,audit=info")),
            Some(e),
        ),
    };
    let (writer, guard) = batch::spawn(std::io::stderr());
    let span_scoped = span_scoped(&args.log);
    let lines = match args.log_format {
        LogFormat::Json => unentered_unless(
            span_scoped,
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .fmt_fields(log_fields::LogFields)
                .with_writer(writer)
                .with_filter(filter),
        ),
        LogFormat::Pretty => unentered_unless(
            span_scoped,
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_filter(filter),
        ),
    };
    let (traces, trace_guard) = match trace {
        Some(settings) => {
            let (layer, guard) = otel::layer(settings);
            let layer = unentered::Unentered(layer.with_filter(Exported));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(traces)
        .try_init();
    if let Some(e) = refused {
        tracing::warn!(filter = %args.log, error = %e, "GATEWAY_LOG is not a valid filter; logging at info");
    }
    LogGuard(guard, trace_guard)
}

/// Whether a filter has a span directive (`[span{field=value}]=level`):
/// only such a filter needs to hear enters and exits, to know which spans
/// a line is written in.
fn span_scoped(spec: &str) -> bool {
    spec.contains('[')
}

/// The log layer, boxed; not told of enters and exits unless `entered`
/// ([`unentered`]).
fn unentered_unless<S, L>(entered: bool, layer: L) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S> + Send + Sync + 'static,
{
    if entered {
        layer.boxed()
    } else {
        unentered::Unentered(layer).boxed()
    }
}

/// The filter `GATEWAY_LOG` says, with the audit target at `info` whatever
/// it says: an update never goes unrecorded because of a quiet (or an
/// `audit=off`) level.
///
/// The directive is added to the parsed filter, where it takes the place of
/// any directive the filter has for the same target (`audit=off`,
/// `audit=warn`); directives for other targets, `my_audit_thing` among
/// them, keep their meaning. Audit records are written at `info`, so a more
/// verbose `audit=debug` loses nothing.
fn filter(spec: &str) -> Result<EnvFilter, ParseError> {
    Ok(EnvFilter::builder().parse(spec)?.add_directive(audit()?))
}

/// `audit=info`.
fn audit() -> Result<Directive, ParseError> {
    format!("{}=info", crate::audit::TARGET).parse()
}

#[cfg(test)]
mod tests {
    use super::filter;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Lines written by a subscriber, kept for the test to read.
    #[derive(Clone, Default)]
    pub(super) struct Lines(pub(super) Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The messages of these events that pass the filter `spec`.
    fn passed(spec: &str) -> Vec<&'static str> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(spec).expect(spec))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "audit", "audit-info");
            tracing::info!(target: "my_audit_thing", "thing-info");
            tracing::debug!(target: "my_audit_thing", "thing-debug");
            tracing::info!(target: "graph_grpc_gateway::service", "gateway-info");
            tracing::debug!(target: "graph_grpc_gateway::service", "gateway-debug");
            tracing::info!(target: "hyper", "hyper-info");
            tracing::warn!(target: "hyper", "hyper-warn");
        });
        let text = String::from_utf8(lines.0.lock().expect("not poisoned").clone()).expect("utf-8");
        [
            "audit-info",
            "thing-info",
            "thing-debug",
            "gateway-info",
            "gateway-debug",
            "hyper-info",
            "hyper-warn",
        ]
        .into_iter()
        .filter(|m| text.contains(&format!(" {m}\n")))
        .collect()
    }

    #[test]
    fn audit_records_pass_whatever_the_filter_says() {
        for (spec, expected) in [
            (
                "info",
                &[
                    "audit-info",
                    "thing-info",
                    "gateway-info",
                    "hyper-info",
                    "hyper-warn",
                ][..],
            ),
            ("", &["audit-info"][..]),
            ("warn", &["audit-info", "hyper-warn"][..]),
            ("off", &["audit-info"][..]),
            // Audit records cannot be turned off or down.
            (
                "info,audit=off",
                &[
                    "audit-info",
                    "thing-info",
                    "gateway-info",
                    "hyper-info",
                    "hyper-warn",
                ][..],
            ),
            ("warn,audit=error", &["audit-info", "hyper-warn"][..]),
            // Another target whose name holds "audit" is not the audit target.
            (
                "warn,my_audit_thing=debug",
                &["audit-info", "thing-info", "thing-debug", "hyper-warn"][..],
            ),
            (
                "graph_grpc_gateway=debug",
                &["audit-info", "gateway-info", "gateway-debug"][..],
            ),
            (
                "warn,graph_grpc_gateway=debug",
                &["audit-info", "gateway-info", "gateway-debug", "hyper-warn"][..],
            ),
        ] {
            assert_eq!(passed(spec), expected, "GATEWAY_LOG={spec:?}");
        }
    }

    #[test]
    fn a_span_directive_still_sees_which_span_a_line_is_in() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let spec = "warn,[rpc]=debug";
        // As `init` builds it, and, to show what it would lose, unentered.
        for (entered, expected) in [(super::span_scoped(spec), true), (false, false)] {
            let lines = Lines::default();
            let writer = lines.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(filter(spec).expect(spec));
            let subscriber =
                tracing_subscriber::registry().with(super::unentered_unless(entered, layer));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!("outside");
                tracing::info_span!("rpc").in_scope(|| tracing::debug!("inside"));
            });
            let text =
                String::from_utf8(lines.0.lock().expect("not poisoned").clone()).expect("utf-8");
            assert!(!text.contains("outside"), "{text}");
            assert_eq!(
                text.contains("inside"),
                expected,
                "entered: {entered}: {text}"
            );
        }
    }

    #[test]
    fn a_filter_that_does_not_parse_is_an_error() {
        for bad in ["info,audit=loud", "[unclosed=info", "=info="] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }
}
