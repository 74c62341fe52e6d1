//! Trace export over OTLP, configured by OpenTelemetry's environment names
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`). Off when no endpoint is set: then no layer
//! is installed and a call pays nothing for it.
//!
//! Spans leave through a queue of its own, never through the call: a span
//! that ends is put in a bounded queue without waiting, and one thread,
//! with a small runtime of its own, exports them in batches. A slow or dead
//! collector fills the queue; spans that find it full are dropped and
//! counted (`graph_gateway_trace_spans_dropped_total{reason}`), and no call
//! is slowed or failed by it.

use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::Sampler;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::cli::TraceArgs;

/// The transports OTLP names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
}

/// How traces are sampled (`OTEL_TRACES_SAMPLER` and its argument).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
    /// The caller's decision when it sent one, else the inner setting.
    ParentBased(Root),
}

/// The root decision of a parent-based sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

/// Trace export, checked.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    pub endpoint: url::Url,
    pub transport: Transport,
    pub service_name: String,
    pub resource: Vec<(String, String)>,
    pub sampler: SamplerSetting,
}

impl TraceSettings {
    /// The settings `args` give, `None` when no endpoint is set; every
    /// problem named.
    pub fn from_args(args: &TraceArgs) -> Result<Option<Self>, Vec<String>> {
        let mut problems = Vec::new();
        let Some(endpoint) = args
            .otlp_endpoint
            .as_deref()
            .filter(|e| !e.trim().is_empty())
        else {
            return Ok(None);
        };
        let endpoint = match url::Url::parse(endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            _ => {
                problems.push(format!(
                    "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL, got {endpoint:?}"
                ));
                None
            }
        };
        let transport = match args.otlp_protocol.as_str() {
            "grpc" => Some(Transport::Grpc),
            "http/protobuf" => Some(Transport::HttpProtobuf),
            other => {
                problems.push(format!(
                    "OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf, got {other:?}"
                ));
                None
            }
        };
        let ratio = match args.traces_sampler_arg.as_deref() {
            None | Some("") => Some(1.0),
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Some(r),
                _ => {
                    problems.push(format!(
                        "OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got {raw:?}"
                    ));
                    None
                }
            },
        };
        let sampler = match (args.traces_sampler.as_str(), ratio) {
            ("always_on", _) => Some(SamplerSetting::AlwaysOn),
            ("always_off", _) => Some(SamplerSetting::AlwaysOff),
            ("traceidratio", Some(r)) => Some(SamplerSetting::Ratio(r)),
            ("parentbased_always_on", _) => Some(SamplerSetting::ParentBased(Root::AlwaysOn)),
            ("parentbased_always_off", _) => Some(SamplerSetting::ParentBased(Root::AlwaysOff)),
            ("parentbased_traceidratio", Some(r)) => {
                Some(SamplerSetting::ParentBased(Root::Ratio(r)))
            }
            ("traceidratio" | "parentbased_traceidratio", None) => None,
            (other, _) => {
                problems.push(format!(
                    "OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, got {other:?}"
                ));
                None
            }
        };
        let resource = match resource_attributes(&args.resource_attributes) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e);
                Vec::new()
            }
        };
        match (endpoint, transport, sampler) {
            (Some(endpoint), Some(transport), Some(sampler)) if problems.is_empty() => {
                Ok(Some(Self {
                    endpoint,
                    transport,
                    service_name: args.service_name.clone(),
                    resource,
                    sampler,
                }))
            }
            _ => Err(problems),
        }
    }

    fn sampler(&self) -> Sampler {
        let root = |r: Root| match r {
            Root::AlwaysOn => Sampler::AlwaysOn,
            Root::AlwaysOff => Sampler::AlwaysOff,
            Root::Ratio(r) => Sampler::TraceIdRatioBased(r),
        };
        match self.sampler {
            SamplerSetting::AlwaysOn => Sampler::AlwaysOn,
            SamplerSetting::AlwaysOff => Sampler::AlwaysOff,
            SamplerSetting::Ratio(r) => Sampler::TraceIdRatioBased(r),
            SamplerSetting::ParentBased(r) => Sampler::ParentBased(Box::new(root(r))),
        }
    }

    /// The resource (`service.name` first, then the other attributes)
    /// and scope every export carries.
    pub(super) fn envelope(&self) -> super::otlp::Envelope {
        super::otlp::Envelope::new(
            std::iter::once(("service.name", self.service_name.as_str())).chain(
                self.resource
                    .iter()
                    .filter(|(k, _)| k != "service.name")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
            "graph-grpc-gateway",
        )
    }

    /// Where spans are posted: the endpoint as given for gRPC; with
    /// `/v1/traces` added for HTTP, as the OTLP exporter convention says.
    pub(super) fn export_url(&self) -> String {
        match self.transport {
            Transport::Grpc => self.endpoint.as_str().trim_end_matches('/').to_owned(),
            Transport::HttpProtobuf => {
                format!("{}/v1/traces", self.endpoint.as_str().trim_end_matches('/'))
            }
        }
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs separated by commas,
/// values percent-decoded.
fn resource_attributes(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!(
                "OTEL_RESOURCE_ATTRIBUTES: {pair:?} is not key=value"
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("OTEL_RESOURCE_ATTRIBUTES: {pair:?} has no key"));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            format!("OTEL_RESOURCE_ATTRIBUTES: the value of {key:?} is not valid percent-encoding")
        })?;
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why spans were dropped, as `/metrics` labels them.
pub type DropLabels = Vec<(&'static str, &'static str)>;

/// What became of the spans handed to the exporter, for `/metrics`.
pub struct SpanCounters {
    pub exported: Counter,
    /// By `reason`: `queue_full` (the collector is slow or gone),
    /// `export_failed` (it refused or did not answer).
    pub dropped: Family<DropLabels, Counter>,
}

impl SpanCounters {
    pub(super) fn dropped(&self, reason: &'static str, n: u64) {
        self.dropped
            .get_or_create(&vec![("reason", reason)])
            .inc_by(n);
    }
}

/// The process's one set of span counters (spans leave the process through
/// one exporter, installed once).
pub static SPANS: LazyLock<SpanCounters> = LazyLock::new(|| SpanCounters {
    exported: Counter::default(),
    dropped: Family::default(),
});

static ON: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported: the service reads the caller's trace
/// context only then.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Keeps the exporter until the process ends; dropping it exports what is
/// queued (for a few seconds at most).
pub struct TraceGuard(Arc<super::export_queue::Queue>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        self.0.shutdown(Duration::from_secs(5));
    }
}

/// The trace layer for `settings`, exporting through the queue.
pub fn layer(settings: &TraceSettings) -> (super::spans::SpanLayer, TraceGuard) {
    let queue = super::export_queue::Queue::start(settings.clone());
    let layer = super::spans::SpanLayer::new(settings.sampler(), queue.clone());
    ON.store(true, Ordering::Relaxed);
    (layer, TraceGuard(queue))
}

/// The caller's W3C trace context (`traceparent`, `tracestate`) and
/// `baggage`, read from gRPC metadata.
pub fn extract(metadata: &tonic::metadata::MetadataMap) -> opentelemetry::Context {
    extract_headers(metadata.as_ref())
}

/// The same, read from an HTTP/2 request's headers (before tonic reads
/// them as metadata), without copying them.
pub fn extract_headers(headers: &http::HeaderMap) -> opentelemetry::Context {
    // Without either header the propagators find nothing: the empty
    // context, without their work (most calls of a caller that does not
    // trace).
    if !headers.contains_key("traceparent") && !headers.contains_key("baggage") {
        return opentelemetry::Context::new();
    }
    propagator().extract(&Headers(headers))
}

fn propagator() -> &'static TextMapCompositePropagator {
    static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
        TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])
    });
    &PROPAGATOR
}

/// Headers as gRPC metadata has them: binary (`-bin`) entries are not text.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key.ends_with("-bin") {
            return None;
        }
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(http::HeaderName::as_str)
            .filter(|k| !k.ends_with("-bin"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TraceArgs {
        TraceArgs {
            otlp_endpoint: Some("http://collector:4317".into()),
            otlp_protocol: "grpc".into(),
            service_name: "graph-grpc-gateway".into(),
            resource_attributes: String::new(),
            traces_sampler: "parentbased_always_on".into(),
            traces_sampler_arg: None,
            trace_url_full: false,
        }
    }

    #[test]
    fn no_endpoint_is_no_tracing() {
        for none in [None, Some(String::new()), Some("  ".into())] {
            let got = TraceSettings::from_args(&TraceArgs {
                otlp_endpoint: none,
                ..args()
            });
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
    }

    #[test]
    fn samplers_follow_the_opentelemetry_names() {
        for (name, arg, want) in [
            ("always_on", None, SamplerSetting::AlwaysOn),
            ("always_off", None, SamplerSetting::AlwaysOff),
            ("traceidratio", Some("0.25"), SamplerSetting::Ratio(0.25)),
            (
                "parentbased_always_on",
                None,
                SamplerSetting::ParentBased(Root::AlwaysOn),
            ),
            (
                "parentbased_always_off",
                None,
                SamplerSetting::ParentBased(Root::AlwaysOff),
            ),
            (
                "parentbased_traceidratio",
                Some("0.1"),
                SamplerSetting::ParentBased(Root::Ratio(0.1)),
            ),
            (
                "parentbased_traceidratio",
                None,
                SamplerSetting::ParentBased(Root::Ratio(1.0)),
            ),
        ] {
            let got = TraceSettings::from_args(&TraceArgs {
                traces_sampler: name.into(),
                traces_sampler_arg: arg.map(str::to_owned),
                ..args()
            })
            .expect("valid")
            .expect("on");
            assert_eq!(got.sampler, want, "{name} {arg:?}");
        }
    }

    #[test]
    fn every_bad_setting_is_named() {
        let got = TraceSettings::from_args(&TraceArgs {
            otlp_endpoint: Some("collector:4317".into()),
            otlp_protocol: "http/json".into(),
            traces_sampler: "sometimes".into(),
            traces_sampler_arg: Some("2".into()),
            resource_attributes: "novalue".into(),
            ..args()
        })
        .expect_err("invalid");
        let text = got.join("\n");
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_RESOURCE_ATTRIBUTES",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
    }

    #[test]
    fn resource_attributes_are_percent_decoded_pairs() {
        assert_eq!(
            resource_attributes("k8s.pod.name=gw-1, team=sec%20ops%2Cblue ,").expect("valid"),
            [
                ("k8s.pod.name".to_owned(), "gw-1".to_owned()),
                ("team".to_owned(), "sec ops,blue".to_owned())
            ]
        );
        assert!(resource_attributes("=x").is_err());
        assert!(resource_attributes("a=%zz").is_err());
        assert!(resource_attributes("a=%4").is_err());
    }

    #[test]
    fn http_posts_to_v1_traces() {
        let grpc = TraceSettings::from_args(&args())
            .expect("valid")
            .expect("on");
        assert_eq!(grpc.export_url(), "http://collector:4317");
        let http = TraceSettings::from_args(&TraceArgs {
            otlp_endpoint: Some("https://collector.example:4318/".into()),
            otlp_protocol: "http/protobuf".into(),
            ..args()
        })
        .expect("valid")
        .expect("on");
        assert_eq!(
            http.export_url(),
            "https://collector.example:4318/v1/traces"
        );
    }
}
